//! [`Snapshot`]: the API-shaped copies an execution keeps of what it ran, shared between the
//! executions that ran the same content.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// A JSON value shared between the records that hold the same content (an execution's
/// `action`, `runner`, `rule`, `trigger` and `trigger_type`). Cloning it counts a reference
/// instead of copying the value, and its compact JSON text is produced once, at the first
/// store write, and copied into every document written after.
///
/// It serialises, deserialises, compares and prints exactly as the [`Value`] it holds, which
/// it dereferences to; [`Snapshot::make_mut`] changes it (for this holder only).
#[derive(Clone)]
pub struct Snapshot(Arc<Held>);

struct Held {
    value: Value,
    /// `value` as compact JSON text, once asked for.
    text: OnceLock<Option<Box<RawValue>>>,
    /// The hash of `text`, once asked for.
    key: OnceLock<Option<Box<str>>>,
}

impl Snapshot {
    /// A snapshot of `value`.
    pub fn new(value: Value) -> Self {
        Self(Arc::new(Held {
            value,
            text: OnceLock::new(),
            key: OnceLock::new(),
        }))
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.0.value
    }

    /// The value, copied only if another holder shares it.
    pub fn into_value(self) -> Value {
        match Arc::try_unwrap(self.0) {
            Ok(held) => held.value,
            Err(shared) => shared.value.clone(),
        }
    }

    /// The value to change in place; copied first if another holder shares it, so the
    /// others keep theirs.
    pub fn make_mut(&mut self) -> &mut Value {
        if Arc::get_mut(&mut self.0).is_none() {
            *self = Self::new(self.0.value.clone());
        }
        let held = Arc::get_mut(&mut self.0).expect("unshared: copied just above when shared");
        held.text = OnceLock::new();
        held.key = OnceLock::new();
        &mut held.value
    }

    /// Whether `self` and `other` are one shared value (not just equal ones).
    pub fn shares(&self, other: &Snapshot) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The value as compact JSON text, produced on the first call and kept; `None` if it
    /// cannot be written as JSON (not for a [`Value`]: its keys are strings).
    pub(crate) fn text(&self) -> Option<&RawValue> {
        self.0
            .text
            .get_or_init(|| {
                serde_json::to_string(&self.0.value)
                    .ok()
                    .and_then(|t| RawValue::from_string(t).ok())
            })
            .as_deref()
    }

    /// The name of this content: 32 hex digits of the SHA-256 of [`Snapshot::text`], computed
    /// on the first call and kept; `None` when there is no text. A store that keeps each
    /// snapshot once writes this in the documents that hold it (see [`SnapshotField::Key`]).
    pub(crate) fn key(&self) -> Option<&str> {
        self.0
            .key
            .get_or_init(|| {
                let text = self.text()?;
                let digest = Sha256::digest(text.get().as_bytes());
                let mut key = String::with_capacity(32);
                crate::store::push_hex(&mut key, &digest[..16]);
                Some(key.into_boxed_str())
            })
            .as_deref()
    }

    /// The key of a reference written by [`SnapshotField::Key`], when this value is one
    /// (`{"$snapshot": KEY}` and nothing else).
    pub(crate) fn reference(&self) -> Option<&str> {
        match &self.0.value {
            Value::Object(map) if map.len() == 1 => map.get(REFERENCE)?.as_str(),
            _ => None,
        }
    }
}

/// The one field of a snapshot reference in a stored document.
const REFERENCE: &str = "$snapshot";

impl Deref for Snapshot {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0.value
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Self::new(Value::Null)
    }
}

impl From<Value> for Snapshot {
    fn from(value: Value) -> Self {
        Self::new(value)
    }
}

impl From<Snapshot> for Value {
    fn from(snapshot: Snapshot) -> Self {
        snapshot.into_value()
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.shares(other) || self.0.value == other.0.value
    }
}

impl PartialEq<Value> for Snapshot {
    fn eq(&self, other: &Value) -> bool {
        self.0.value == *other
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.value.fmt(f)
    }
}

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Snapshot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self::new)
    }
}

/// A snapshot as a document field.
pub(crate) enum SnapshotField<'a> {
    /// Its kept text (see [`Snapshot::text`]), or the value when there is none.
    Text(&'a Snapshot),
    /// A reference to it, `{"$snapshot": KEY}` (see [`Snapshot::key`]), for a store that keeps
    /// the text once under its key; its text when it has no key.
    Key(&'a Snapshot),
}

impl Serialize for SnapshotField<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let snapshot = match *self {
            Self::Key(snapshot) => match snapshot.key() {
                Some(key) => {
                    let mut map = serializer.serialize_map(Some(1))?;
                    map.serialize_entry(REFERENCE, key)?;
                    return map.end();
                }
                None => snapshot,
            },
            Self::Text(snapshot) => snapshot,
        };
        match snapshot.text() {
            Some(text) => text.serialize(serializer),
            None => snapshot.value().serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_writes_as_its_value() {
        let value = json!({"b": 1, "a": [true, null, "é\n"], "c": {"x": 1.5}});
        let snapshot = Snapshot::new(value.clone());
        assert_eq!(
            serde_json::to_string(&snapshot).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&SnapshotField::Text(&snapshot)).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
        assert_eq!(
            serde_json::to_value(SnapshotField::Text(&snapshot)).unwrap(),
            value
        );
        let back: Snapshot = serde_json::from_str(&serde_json::to_string(&value).unwrap()).unwrap();
        assert_eq!(back, snapshot);
        assert_eq!(back, value);
        assert_eq!(format!("{back:?}"), format!("{value:?}"));
    }

    #[test]
    fn clones_share_and_a_change_is_the_changers_own() {
        let first = Snapshot::new(json!({"ref": "a.b"}));
        let mut second = first.clone();
        assert!(second.shares(&first));
        assert_eq!(first.text().map(RawValue::get), Some(r#"{"ref":"a.b"}"#));
        second.make_mut()["ref"] = json!("c.d");
        assert!(!second.shares(&first));
        assert_eq!(first["ref"], "a.b");
        assert_eq!(second["ref"], "c.d");
        assert_eq!(second.text().map(RawValue::get), Some(r#"{"ref":"c.d"}"#));
        assert_eq!(second.into_value(), json!({"ref": "c.d"}));
    }

    #[test]
    fn a_reference_names_the_content() {
        let first = Snapshot::new(json!({"ref": "a.b", "n": [1, 2]}));
        let key = first.key().unwrap().to_owned();
        assert_eq!(key.len(), 32);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        // Equal content, equal key; other content, another key.
        assert_eq!(
            Snapshot::new(json!({"ref": "a.b", "n": [1, 2]})).key(),
            Some(key.as_str())
        );
        let mut changed = first.clone();
        changed.make_mut()["ref"] = json!("c.d");
        assert_ne!(changed.key(), Some(key.as_str()));
        // Written as a reference, read back as one.
        let text = serde_json::to_string(&SnapshotField::Key(&first)).unwrap();
        assert_eq!(text, format!(r#"{{"$snapshot":"{key}"}}"#));
        let back: Snapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back.reference(), Some(key.as_str()));
        assert_eq!(first.reference(), None);
        assert_eq!(
            Snapshot::new(json!({"$snapshot": "k", "other": 1})).reference(),
            None
        );
    }
}
