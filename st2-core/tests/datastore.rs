//! The datastore service: StackStorm's scopes and user names, TTLs, and secrets stored
//! encrypted in StackStorm's format, so values exported from StackStorm load unchanged.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta};
use st2_core::clock::ManualClock;
use st2_core::crypto::{CryptoError, CryptoKey};
use st2_core::datastore::{Datastore, KeySelector, KeyValueError, KeyWrite, local_name};
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{KeyScope, Page, Store};

/// A value StackStorm encrypted with the shared test key.
const ST2_CIPHERTEXT: &str = "30303030306C82A197E9F7735E1B64BAF4DDED19481DC6C9D2599BBBDC5BCF91A3D9C6B3DA4F90F62A9BA5DC0FF3BBE5BD242D3E84926E3521";

fn st2_test_key() -> CryptoKey {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance/st2-test-crypto-key.json");
    CryptoKey::load(&path).expect("the shared StackStorm test key")
}

async fn open(key: Option<CryptoKey>) -> (Datastore, Arc<dyn Store>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(1_750_000_000, 0).expect("valid"),
    ));
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory().with_clock(clock.clone()))
            .await
            .expect("open"),
    );
    (Datastore::new(store.clone(), key), store, clock)
}

fn plain(value: &str) -> KeyWrite {
    KeyWrite {
        value: value.into(),
        ..Default::default()
    }
}

fn secret(value: &str) -> KeyWrite {
    KeyWrite {
        value: value.into(),
        secret: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_in_stackstorms_format() {
    let (ds, store, _) = open(Some(st2_test_key())).await;
    let change = ds
        .set(&KeySelector::System, "db.password", secret("s3cr3t"))
        .await
        .expect("set");
    assert!(change.previous.is_none());

    let raw = store
        .key_values()
        .get(KeyScope::System, "db.password")
        .await
        .expect("get")
        .expect("stored");
    assert!(raw.secret);
    assert_ne!(raw.value, "s3cr3t");
    assert!(raw.value.starts_with("3030303030"), "keyczar header");
    assert_eq!(
        st2_test_key().decrypt(&raw.value).expect("decrypts"),
        "s3cr3t"
    );

    let shown = ds
        .get(&KeySelector::System, "db.password", false)
        .await
        .expect("get")
        .expect("exists");
    assert!(shown.shows_ciphertext());
    assert_eq!(shown.shown_value(), raw.value);
    assert!(!format!("{shown:?}").contains(&raw.value));
    let decrypted = ds
        .get(&KeySelector::System, "db.password", true)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(decrypted.shown_value(), "s3cr3t");
    assert!(!decrypted.shows_ciphertext());
    let debug = format!("{decrypted:?}");
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert_eq!(
        ds.reveal(&KeySelector::System, "db.password")
            .await
            .expect("reveal")
            .expect("exists")
            .expose(),
        "s3cr3t"
    );
}

#[tokio::test]
async fn stackstorm_exports_load_unchanged_and_bad_ones_are_refused() {
    let (ds, store, _) = open(Some(st2_test_key())).await;
    let imported = KeyWrite {
        value: ST2_CIPHERTEXT.into(),
        secret: true,
        encrypted: true,
        ..Default::default()
    };
    ds.set(&KeySelector::System, "wall", imported)
        .await
        .expect("import");
    let raw = store
        .key_values()
        .get(KeyScope::System, "wall")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(raw.value, ST2_CIPHERTEXT, "stored unchanged");
    assert_eq!(
        ds.reveal(&KeySelector::System, "wall")
            .await
            .expect("reveal")
            .expect("exists")
            .expose(),
        "Build a wall"
    );

    // Ciphertext from another key is refused, and nothing is written.
    let foreign = CryptoKey::generate()
        .expect("key")
        .encrypt("x")
        .expect("enc");
    let err = ds
        .set(
            &KeySelector::System,
            "foreign",
            KeyWrite {
                value: foreign,
                secret: true,
                encrypted: true,
                ..Default::default()
            },
        )
        .await
        .expect_err("wrong key");
    assert!(matches!(
        err,
        KeyValueError::Crypto {
            source: CryptoError::BadSignature,
            ..
        }
    ));
    assert!(
        ds.get(&KeySelector::System, "foreign", false)
            .await
            .expect("get")
            .is_none()
    );

    let err = ds
        .set(
            &KeySelector::System,
            "x",
            KeyWrite {
                value: ST2_CIPHERTEXT.into(),
                encrypted: true,
                ..Default::default()
            },
        )
        .await
        .expect_err("encrypted without secret");
    assert!(err.to_string().contains("requires \"secret\""), "{err}");
}

#[tokio::test]
async fn secrets_need_a_key() {
    let (ds, _, _) = open(None).await;
    assert!(matches!(
        ds.set(&KeySelector::System, "s", secret("v")).await,
        Err(KeyValueError::CryptoKeyNotSetup)
    ));
    ds.set(&KeySelector::System, "plain", plain("v"))
        .await
        .expect("plain values need no key");
}

#[tokio::test]
async fn user_scope_names_prefixes_and_ttl() {
    let (ds, store, clock) = open(Some(st2_test_key())).await;
    let alice = KeySelector::User("alice".into());
    let bob = KeySelector::User("bob".into());
    ds.set(&alice, "token", plain("a1")).await.expect("set");
    ds.set(&alice, "tick", plain("a2")).await.expect("set");
    ds.set(&bob, "token", plain("b1")).await.expect("set");
    ds.set(&KeySelector::System, "token", plain("sys"))
        .await
        .expect("set");

    assert!(
        store
            .key_values()
            .get(KeyScope::User, "alice:token")
            .await
            .expect("get")
            .is_some(),
        "stored as <user>:<name>"
    );
    let mine = ds
        .list(Some(&alice), Some("to"), false, Page::all())
        .await
        .expect("list");
    let names: Vec<_> = mine
        .items
        .iter()
        .map(|kv| (kv.name.as_str(), kv.user.as_deref(), kv.shown_value()))
        .collect();
    assert_eq!(names, [("token", Some("alice"), "a1")]);
    assert_eq!(
        ds.list(Some(&alice), None, false, Page::all())
            .await
            .expect("list")
            .total,
        2
    );
    let everything = ds.list(None, None, false, Page::all()).await.expect("list");
    assert_eq!(everything.total, 4);
    assert_eq!(everything.items[0].record.scope, KeyScope::System);

    let change = ds.set(&alice, "token", plain("a3")).await.expect("update");
    assert_eq!(
        change.previous.as_ref().map(|kv| kv.shown_value()),
        Some("a1")
    );
    assert_eq!(change.current.shown_value(), "a3");

    ds.set(
        &KeySelector::System,
        "lease",
        KeyWrite {
            value: "short".into(),
            ttl: Some(60),
            ..Default::default()
        },
    )
    .await
    .expect("set");
    let lease = ds
        .get(&KeySelector::System, "lease", false)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        lease.record.expire_timestamp,
        Some(DateTime::from_timestamp(1_750_000_060, 0).expect("valid"))
    );
    clock.advance(TimeDelta::seconds(60));
    assert!(
        ds.get(&KeySelector::System, "lease", false)
            .await
            .expect("get")
            .is_none()
    );

    let removed = ds.delete(&bob, "token").await.expect("delete");
    assert_eq!(removed.map(|kv| kv.name), Some("token".into()));
    assert!(ds.delete(&bob, "token").await.expect("delete").is_none());
    assert!(
        ds.set(&KeySelector::System, "", plain("x"))
            .await
            .is_err_and(|e| matches!(e, KeyValueError::Invalid(_)))
    );
    assert_eq!(
        local_name("slack", "SlackSensor", "cursor"),
        "slack.SlackSensor:cursor"
    );
}
