//! `st2kv.system.x` and `st2kv.user.x`: datastore lookups inside templates, with the quirks of
//! StackStorm's `KeyValueLookup` objects (a missing key renders as the empty string, attribute
//! access builds dotted key names, the object is always truthy and never equal to a string,
//! methods are refused by the sandbox).

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Error, ErrorKind, State};

use crate::datastore::{KeyValueRead, KvScope};
use crate::expr::python::str_repr;

/// A (possibly partial) datastore key: `st2kv.system` itself, or `st2kv.system.a.b`.
pub struct KvLookup {
    store: Arc<dyn KeyValueRead>,
    scope: KvScope,
    prefix: String,
}

impl fmt::Debug for KvLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KvLookup({})", self.key_name())
    }
}

impl KvLookup {
    /// The root lookup of a scope (`st2kv.system` or `st2kv.user`).
    pub fn root(store: Arc<dyn KeyValueRead>, scope: KvScope) -> Self {
        KvLookup {
            store,
            scope,
            prefix: String::new(),
        }
    }

    /// True for `st2kv.user` lookups (which, as in StackStorm, have no integer conversion).
    pub fn is_user(&self) -> bool {
        matches!(self.scope, KvScope::User(_))
    }

    /// The key as written in a template, for messages: `st2kv.system.x`.
    pub fn key_name(&self) -> String {
        let scope = match self.scope {
            KvScope::System => "st2kv.system",
            KvScope::User(_) => "st2kv.user",
        };
        if self.prefix.is_empty() {
            scope.to_owned()
        } else {
            format!("{scope}.{}", self.prefix)
        }
    }

    /// The stored value; the empty string when the key does not exist.
    ///
    /// # Errors
    /// For the bare scope (`{{ st2kv.system }}`, a `KeyError` in StackStorm) and when the
    /// datastore cannot be read.
    pub fn value(&self) -> Result<String, Error> {
        if self.prefix.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "KeyError: {} is not a key; name one, e.g. {}.my_key",
                    self.key_name(),
                    self.key_name()
                ),
            ));
        }
        self.store
            .get(&self.scope, &self.prefix)
            .map(Option::unwrap_or_default)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
    }

    /// Python's `repr()` of the lookup (its value, quoted).
    pub fn repr(&self) -> String {
        str_repr(&self.value().unwrap_or_default())
    }

    fn child(&self, key: &str) -> KvLookup {
        let prefix = if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        };
        KvLookup {
            store: self.store.clone(),
            scope: self.scope.clone(),
            prefix,
        }
    }
}

impl Object for KvLookup {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        Some(Value::from_object(self.child(key)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::NonEnumerable
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "SecurityError: access to attribute '{method}' of 'KeyValueLookup' object is unsafe"
            ),
        ))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value().unwrap_or_default())
    }
}
