//! StackStorm's datastore (key-value pairs).
//!
//! Two views: [`KeyValueRead`], the synchronous read expressions use (`{{ st2kv.system.x }}`,
//! `{{ st2kv.user.x }}`, pack configs); and [`Datastore`], the full service over the store:
//! scopes with per-user names, TTLs, prefix listing, and secrets encrypted in StackStorm's own
//! format before they reach the store, so exported values move between StackStorm and here
//! unchanged.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use crate::crypto::{CryptoError, CryptoKey, Secret};
use crate::store::{KeyScope, KeyValueRecord, Listing, Page, Store, StoreError, new_id};

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

/// [`KeyValueRead`] over the store, for templates (`{{ st2kv.system.x }}`) evaluated by the
/// engine.
///
/// # Contract
/// Reads block the calling thread until the store answers. Call them from a blocking thread
/// (`tokio::task::spawn_blocking`), which is where the engine renders templates; on a
/// multi-threaded runtime a worker thread works too (the read runs under `block_in_place`).
#[derive(Clone)]
pub struct StoreKeyValues {
    store: Arc<dyn Store>,
    handle: tokio::runtime::Handle,
}

impl fmt::Debug for StoreKeyValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreKeyValues")
            .field("backend", &self.store.backend())
            .finish()
    }
}

impl StoreKeyValues {
    /// Reads of `store`, run on `handle`'s runtime.
    pub fn new(store: Arc<dyn Store>, handle: tokio::runtime::Handle) -> Self {
        Self { store, handle }
    }
}

impl KeyValueRead for StoreKeyValues {
    fn get(&self, scope: &KvScope, name: &str) -> Result<Option<String>, DatastoreError> {
        let (scope, stored) = match scope {
            KvScope::System => (KeyScope::System, name.to_owned()),
            KvScope::User(user) => (KeyScope::User, format!("{user}:{name}")),
        };
        let read = || {
            self.handle
                .block_on(self.store.key_values().get(scope, &stored))
        };
        let record = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(read)
            }
            _ => read(),
        };
        record
            .map(|r| r.map(|r| r.value))
            .map_err(|e| DatastoreError(e.to_string()))
    }
}

/// Which keys a datastore call addresses: StackStorm's scopes with the user for user scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySelector {
    /// `st2kv.system`.
    System,
    /// `st2kv.user` of this user.
    User(String),
}

impl KeySelector {
    fn scope(&self) -> KeyScope {
        match self {
            Self::System => KeyScope::System,
            Self::User(_) => KeyScope::User,
        }
    }

    /// The name the store keeps: `<user>:<name>` in user scope, as StackStorm.
    pub fn stored_name(&self, name: &str) -> String {
        match self {
            Self::System => name.to_owned(),
            Self::User(user) => format!("{user}:{name}"),
        }
    }
}

/// The local (per pack and class) namespace of sensors and Python actions:
/// `<pack>.<ClassName>:<name>` (StackStorm's `services/datastore.py`).
pub fn local_name(pack: &str, class_name: &str, name: &str) -> String {
    format!("{pack}.{class_name}:{name}")
}

/// A value to write (`PUT /v1/keys/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyWrite {
    /// The value. For `encrypted: true`, the ciphertext.
    pub value: String,
    /// Encrypt the value before storing it.
    pub secret: bool,
    /// The value is already ciphertext (from `st2 key load` of an export): it is checked and
    /// stored unchanged. Requires `secret`.
    pub encrypted: bool,
    /// Seconds until the pair expires.
    pub ttl: Option<u64>,
    /// Description.
    pub description: Option<String>,
}

/// A pair as the datastore API shows it.
#[derive(Clone, PartialEq)]
pub struct KeyValue {
    /// The stored record (for a secret, `value` is the ciphertext).
    pub record: KeyValueRecord,
    /// The name without the user prefix.
    pub name: String,
    /// The owner, for user scope.
    pub user: Option<String>,
    /// The plain value of a secret, when decryption was asked for.
    pub decrypted: Option<Secret>,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("scope", &self.record.scope)
            .field("name", &self.name)
            .field("user", &self.user)
            .field("secret", &self.record.secret)
            .field(
                "value",
                &if self.record.secret {
                    "********"
                } else {
                    self.record.value.as_str()
                },
            )
            .finish()
    }
}

impl KeyValue {
    fn from_record(record: KeyValueRecord) -> Self {
        let (user, name) = match record.scope {
            KeyScope::System => (None, record.name.clone()),
            KeyScope::User => match record.name.split_once(':') {
                Some((user, name)) => (Some(user.to_owned()), name.to_owned()),
                None => (None, record.name.clone()),
            },
        };
        Self {
            record,
            name,
            user,
            decrypted: None,
        }
    }

    /// The value to show: the plain text when decrypted, else what is stored (the ciphertext
    /// for a secret, as StackStorm shows it with `encrypted: true`).
    pub fn shown_value(&self) -> &str {
        match &self.decrypted {
            Some(plain) => plain.expose(),
            None => &self.record.value,
        }
    }

    /// Whether the shown value is ciphertext (`encrypted` in the API).
    pub fn shows_ciphertext(&self) -> bool {
        self.record.secret && self.decrypted.is_none()
    }
}

/// What a write changed, for the `core.st2.key_value_pair.*` triggers.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyChange {
    /// The pair before (absent or expired: `None`).
    pub previous: Option<KeyValue>,
    /// The pair after.
    pub current: KeyValue,
}

/// Why a datastore call failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyValueError {
    /// A secret was written or decrypted but no key is configured (StackStorm's
    /// `CryptoKeyNotSetupException`).
    #[error(
        "crypto key is not set up: secrets need a key file (keyvalue.encryption_key_path / --crypto-key)"
    )]
    CryptoKeyNotSetup,
    /// `encrypted` without `secret`, an empty name, …
    #[error("{0}")]
    Invalid(String),
    /// A value given as ciphertext does not decrypt with our key, or a stored one no longer does.
    #[error("key {name:?}: {source}")]
    Crypto {
        /// The key's name.
        name: String,
        /// What went wrong.
        source: CryptoError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// StackStorm's datastore over a [`KeyValueStore`](crate::store::KeyValueStore): scopes, user prefixes, TTLs, and secrets
/// encrypted with StackStorm's key format before they reach the store.
#[derive(Clone)]
pub struct Datastore {
    store: Arc<dyn Store>,
    key: Option<Arc<CryptoKey>>,
    listener: Option<Arc<dyn KeyListener>>,
}

/// Told about every write a [`Datastore`] made, after it is stored. The engine turns these into
/// StackStorm's `core.st2.key_value_pair.*` triggers, whoever wrote (API, sensor, action).
///
/// # Contract
/// Called on the writer's task right after the store accepted the write; must not block (hand
/// slow work to a task).
///
/// # Errors
/// None: a listener cannot fail the write.
pub trait KeyListener: Send + Sync {
    /// A pair was created or replaced.
    fn written(&self, change: &KeyChange);
    /// A pair was deleted.
    fn deleted(&self, pair: &KeyValue);
}

impl fmt::Debug for Datastore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Datastore")
            .field("backend", &self.store.backend())
            .field("has_key", &self.key.is_some())
            .finish()
    }
}

impl Datastore {
    /// A datastore over `store`, encrypting with `key` (secrets are refused without one).
    pub fn new(store: Arc<dyn Store>, key: Option<CryptoKey>) -> Self {
        Self {
            store,
            key: key.map(Arc::new),
            listener: None,
        }
    }

    /// A datastore over `store` sharing an already loaded key.
    pub fn new_shared(store: Arc<dyn Store>, key: Option<Arc<CryptoKey>>) -> Self {
        Self {
            store,
            key,
            listener: None,
        }
    }

    /// Blocking read access for templates (`{{ st2kv.system.x }}`), run on `handle`'s runtime
    /// (see [`StoreKeyValues`]: call it from a blocking thread).
    pub fn key_values(&self, handle: tokio::runtime::Handle) -> StoreKeyValues {
        StoreKeyValues::new(self.store.clone(), handle)
    }

    /// The key secrets are encrypted with, for templates' `decrypt_kv` (`None`: no key set up).
    pub fn crypto_key(&self) -> Option<Arc<CryptoKey>> {
        self.key.clone()
    }

    /// Tell `listener` about every write.
    pub fn with_listener(mut self, listener: Arc<dyn KeyListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    fn key(&self) -> Result<&CryptoKey, KeyValueError> {
        self.key.as_deref().ok_or(KeyValueError::CryptoKeyNotSetup)
    }

    /// Create or replace `name` in `selector`'s scope.
    ///
    /// # Errors
    /// [`KeyValueError::Invalid`] for an empty name or `encrypted` without `secret`;
    /// [`KeyValueError::CryptoKeyNotSetup`] for a secret without a key;
    /// [`KeyValueError::Crypto`] when an `encrypted` value does not decrypt with the key.
    pub async fn set(
        &self,
        selector: &KeySelector,
        name: &str,
        write: KeyWrite,
    ) -> Result<KeyChange, KeyValueError> {
        if name.is_empty() {
            return Err(KeyValueError::Invalid("key name must not be empty".into()));
        }
        if write.encrypted && !write.secret {
            return Err(KeyValueError::Invalid(
                "\"encrypted\" requires \"secret\": an already encrypted value is a secret".into(),
            ));
        }
        let value = if write.encrypted {
            self.key()?
                .decrypt(&write.value)
                .map_err(|source| KeyValueError::Crypto {
                    name: name.to_owned(),
                    source,
                })?;
            write.value
        } else if write.secret {
            self.key()?
                .encrypt(&write.value)
                .map_err(|source| KeyValueError::Crypto {
                    name: name.to_owned(),
                    source,
                })?
        } else {
            write.value
        };
        let expire_timestamp = match write.ttl {
            Some(secs) => {
                let secs = i64::try_from(secs)
                    .ok()
                    .and_then(chrono::TimeDelta::try_seconds)
                    .ok_or_else(|| KeyValueError::Invalid(format!("ttl {secs} is too large")))?;
                Some(self.store.clock().now() + secs)
            }
            None => None,
        };
        let record = KeyValueRecord {
            id: new_id(),
            scope: selector.scope(),
            name: selector.stored_name(name),
            value,
            description: write.description,
            secret: write.secret,
            expire_timestamp,
        };
        let previous = self.store.key_values().put(&record).await?;
        let current = match self
            .store
            .key_values()
            .get(record.scope, &record.name)
            .await?
        {
            Some(stored) => stored,
            None => record,
        };
        let change = KeyChange {
            previous: previous.map(KeyValue::from_record),
            current: KeyValue::from_record(current),
        };
        if let Some(listener) = &self.listener {
            listener.written(&change);
        }
        Ok(change)
    }

    /// One pair, decrypted when `decrypt` is set and it is a secret.
    ///
    /// # Errors
    /// [`KeyValueError::CryptoKeyNotSetup`] or [`KeyValueError::Crypto`] when decryption was
    /// asked for and fails; store errors.
    pub async fn get(
        &self,
        selector: &KeySelector,
        name: &str,
        decrypt: bool,
    ) -> Result<Option<KeyValue>, KeyValueError> {
        let record = self
            .store
            .key_values()
            .get(selector.scope(), &selector.stored_name(name))
            .await?;
        record
            .map(|r| self.present(KeyValue::from_record(r), decrypt))
            .transpose()
    }

    /// Pairs of one scope (all scopes when `selector` is `None`: system first, then every
    /// user's), whose name (without the user prefix in user scope) starts with `prefix`.
    ///
    /// # Errors
    /// As [`Datastore::get`].
    pub async fn list(
        &self,
        selector: Option<&KeySelector>,
        prefix: Option<&str>,
        decrypt: bool,
        page: Page,
    ) -> Result<Listing<KeyValue>, KeyValueError> {
        let (scope, stored_prefix) = match selector {
            Some(sel) => (
                Some(sel.scope()),
                Some(sel.stored_name(prefix.unwrap_or(""))),
            ),
            None => (None, prefix.map(str::to_owned)),
        };
        let listing = self
            .store
            .key_values()
            .list(scope, stored_prefix.as_deref(), page)
            .await?;
        let items = listing
            .items
            .into_iter()
            .map(|r| self.present(KeyValue::from_record(r), decrypt))
            .collect::<Result<_, _>>()?;
        Ok(Listing {
            items,
            total: listing.total,
        })
    }

    /// Delete a pair; returns it, `None` if it did not exist.
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete(
        &self,
        selector: &KeySelector,
        name: &str,
    ) -> Result<Option<KeyValue>, KeyValueError> {
        let removed = self
            .store
            .key_values()
            .delete(selector.scope(), &selector.stored_name(name))
            .await?;
        let removed = removed.map(KeyValue::from_record);
        if let (Some(listener), Some(pair)) = (&self.listener, &removed) {
            listener.deleted(pair);
        }
        Ok(removed)
    }

    /// The plain value of `name`, secret or not: what `{{ st2kv.system.x | decrypt_kv }}` and
    /// the Python action service see.
    ///
    /// # Errors
    /// As [`Datastore::get`].
    pub async fn reveal(
        &self,
        selector: &KeySelector,
        name: &str,
    ) -> Result<Option<Secret>, KeyValueError> {
        Ok(self.get(selector, name, true).await?.map(|kv| {
            kv.decrypted
                .unwrap_or_else(|| Secret::new(kv.record.value.clone()))
        }))
    }

    fn present(&self, mut kv: KeyValue, decrypt: bool) -> Result<KeyValue, KeyValueError> {
        if decrypt && kv.record.secret {
            let plain =
                self.key()?
                    .decrypt(&kv.record.value)
                    .map_err(|source| KeyValueError::Crypto {
                        name: kv.name.clone(),
                        source,
                    })?;
            kv.decrypted = Some(Secret::new(plain));
        }
        Ok(kv)
    }
}
