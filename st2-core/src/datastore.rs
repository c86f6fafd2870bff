//! The datastore as expressions see it: StackStorm's key-value pairs, read by
//! `{{ st2kv.system.x }}`, `{{ st2kv.user.x }}` and pack configs. The full store (writes,
//! TTLs, listing) implements this trait.

use std::collections::HashMap;
use std::sync::RwLock;

/// The two datastore scopes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvScope {
    /// `st2kv.system`: shared keys.
    System,
    /// `st2kv.user`: keys of one user (StackStorm stores them as `<user>:<name>`).
    User(String),
}

/// Reading the datastore failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("datastore read failed: {0}")]
pub struct DatastoreError(pub String);

/// Read access to key-value pairs.
///
/// # Contract
/// `get` returns the value as stored: the ciphertext for secret items (callers decrypt with
/// `decrypt_kv` or the crypto key), `None` for missing or expired keys.
///
/// # Errors
/// A [`DatastoreError`] when the backing store cannot be read.
pub trait KeyValueRead: Send + Sync {
    /// The stored value of `name` in `scope`.
    fn get(&self, scope: &KvScope, name: &str) -> Result<Option<String>, DatastoreError>;
}

/// An in-memory datastore, for tests and offline tools.
#[derive(Debug, Default)]
pub struct MemoryKeyValues {
    items: RwLock<HashMap<(KvScope, String), String>>,
}

impl MemoryKeyValues {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set a value.
    pub fn set(&self, scope: KvScope, name: impl Into<String>, value: impl Into<String>) {
        // A poisoned lock only means another writer panicked mid-insert; the map is still usable.
        let mut items = self.items.write().unwrap_or_else(|e| e.into_inner());
        items.insert((scope, name.into()), value.into());
    }
}

impl KeyValueRead for MemoryKeyValues {
    fn get(&self, scope: &KvScope, name: &str) -> Result<Option<String>, DatastoreError> {
        let items = self.items.read().unwrap_or_else(|e| e.into_inner());
        Ok(items.get(&(scope.clone(), name.to_owned())).cloned())
    }
}
