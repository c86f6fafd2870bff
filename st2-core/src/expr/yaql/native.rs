//! Functions implemented directly on YAQL values, and the conversion cache they read the
//! scope through.
//!
//! A [`Functions`](crate::expr::Functions) entry is called with JSON: its arguments are
//! converted to JSON and its result back, which for Orquesta's `ctx()` means copying the
//! workflow context twice on every evaluation. A [`NativeFunction`] receives YAQL values and
//! returns one, and reads the scope through [`NativeCall::convert`], which converts a JSON
//! value once and hands the same (shared, immutable) YAQL value to later evaluations for as
//! long as the data is unchanged.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::value::YaqlValue;
use crate::expr::{ExprError, Scope};

/// A function working on YAQL values (see the module documentation). Registered with
/// [`Yaql::with_native`](super::Yaql::with_native).
///
/// # Contract
/// Arguments arrive finalized, as a [`Functions`](crate::expr::Functions) entry would see
/// them (lazy query results are lists). The function must not block for long and must not
/// panic.
///
/// # Errors
/// An [`ExprError`] fails the evaluation with that error.
pub trait NativeFunction: Send + Sync {
    /// Call the function.
    fn call(&self, call: &NativeCall<'_>) -> Result<YaqlValue, ExprError>;
}

impl<F> NativeFunction for F
where
    F: Fn(&NativeCall<'_>) -> Result<YaqlValue, ExprError> + Send + Sync,
{
    fn call(&self, call: &NativeCall<'_>) -> Result<YaqlValue, ExprError> {
        self(call)
    }
}

/// One call of a [`NativeFunction`].
#[derive(Debug)]
pub struct NativeCall<'a> {
    /// The name it was called by.
    pub name: &'a str,
    /// Positional arguments.
    pub args: &'a [YaqlValue],
    /// Keyword arguments (`name => value`), in the order given.
    pub kwargs: &'a [(Arc<str>, YaqlValue)],
    /// The evaluation's scope.
    pub scope: &'a Scope,
    pub(crate) cache: &'a ConversionCache,
}

impl NativeCall<'_> {
    /// Keyword argument `name`.
    pub fn kwarg(&self, name: &str) -> Option<&YaqlValue> {
        self.kwargs
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| v)
    }

    /// `value` as a YAQL value. Lists and objects are converted once and shared with later
    /// calls while the value at that address holds the same data.
    pub fn convert(&self, value: &Value) -> YaqlValue {
        match value {
            Value::Array(_) | Value::Object(_) => self.cache.get_or_convert(value),
            scalar => YaqlValue::from_json(scalar),
        }
    }

    /// A JSON object (such as `scope.vars`) as a YAQL dict, cached like [`NativeCall::convert`].
    pub fn convert_map(&self, map: &Map<String, Value>) -> YaqlValue {
        self.cache.get_or_convert_map(map)
    }
}

/// Entries kept before the cache starts over.
const CACHE_ENTRIES: usize = 64;

/// JSON data already converted, by the address it was read from; an entry is used only when
/// the data there is still equal to what was converted.
#[derive(Default)]
pub(crate) struct ConversionCache {
    entries: Mutex<HashMap<usize, (Source, YaqlValue)>>,
}

enum Source {
    Value(Value),
    Map(Map<String, Value>),
}

impl fmt::Debug for ConversionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("ConversionCache")
            .field("entries", &n)
            .finish()
    }
}

impl ConversionCache {
    fn lookup(&self, key: usize, same: impl Fn(&Source) -> bool) -> Option<YaqlValue> {
        let entries = self.entries.lock().ok()?;
        match entries.get(&key) {
            Some((source, converted)) if same(source) => Some(converted.clone()),
            _ => None,
        }
    }

    fn store(&self, key: usize, source: Source, converted: &YaqlValue) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (source, converted.clone()));
        }
    }

    fn get_or_convert(&self, value: &Value) -> YaqlValue {
        let key = value as *const Value as usize;
        if let Some(v) = self.lookup(key, |s| matches!(s, Source::Value(old) if old == value)) {
            return v;
        }
        let converted = YaqlValue::from_json(value);
        self.store(key, Source::Value(value.clone()), &converted);
        converted
    }

    fn get_or_convert_map(&self, map: &Map<String, Value>) -> YaqlValue {
        let key = map as *const Map<String, Value> as usize;
        if let Some(v) = self.lookup(key, |s| matches!(s, Source::Map(old) if old == map)) {
            return v;
        }
        let converted = YaqlValue::from_json_map(map);
        self.store(key, Source::Map(map.clone()), &converted);
        converted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cache_follows_the_data() {
        let cache = ConversionCache::default();
        let mut v = json!([1, 2]);
        let a = cache.get_or_convert(&v);
        let b = cache.get_or_convert(&v);
        assert_eq!(a.to_json(), json!([1, 2]));
        assert_eq!(b.to_json(), json!([1, 2]));
        v[0] = json!(5);
        assert_eq!(cache.get_or_convert(&v).to_json(), json!([5, 2]));
    }
}
