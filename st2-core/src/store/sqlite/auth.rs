//! Authentication tokens and API keys, looked up by hash.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::connection::{is_unique_violation, sql_error};
use super::filter::Where;
use super::{Shared, found, from_doc, purge_limit, to_doc};
use crate::store::{
    ApiKeyRecord, ApiKeyStore, Listing, Page, StoreError, StoreResult, TokenRecord, TokenStore,
    to_micros,
};

/// A duplicate id or hash.
fn duplicate(what: &'static str, id: &str, error: rusqlite::Error) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict {
            what,
            id: id.to_owned(),
            reason: "its id or hash already exists".into(),
        }
    } else {
        sql_error(error)
    }
}

const TOKEN: &str = "token";

/// The tokens of one store.
pub(super) struct Tokens(pub(super) Arc<Shared>);

#[async_trait]
impl TokenStore for Tokens {
    async fn create(&self, token: &TokenRecord) -> StoreResult<()> {
        let doc = to_doc(TOKEN, token)?;
        let id = token.id.clone();
        let hash = token.token_hash.clone();
        let expiry = to_micros(token.expiry);
        self.0
            .write_one(move |db| {
                db.with_statement(
                    "INSERT INTO tokens (id, token_hash, expiry, doc) VALUES (?1, ?2, ?3, ?4)",
                    |s| s.execute(params![id, hash, expiry, doc]),
                )
                .map(|_| ())
                .map_err(|e| duplicate(TOKEN, &id, e))
            })
            .await
    }

    async fn get_by_hash(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>> {
        let hash = token_hash.to_owned();
        let doc: Option<String> = self
            .0
            .read(move |db| {
                db.with_statement("SELECT doc FROM tokens WHERE token_hash = ?1", |s| {
                    s.query_row(params![hash], |r| r.get(0)).optional()
                })
                .map_err(sql_error)
            })
            .await?;
        doc.map(|d| from_doc(TOKEN, &d)).transpose()
    }

    async fn delete_by_hash(&self, token_hash: &str) -> StoreResult<bool> {
        let hash = token_hash.to_owned();
        self.0
            .write_one(move |db| {
                db.with_statement("DELETE FROM tokens WHERE token_hash = ?1", |s| {
                    s.execute([hash])
                })
                .map(|n| n > 0)
                .map_err(sql_error)
            })
            .await
    }

    async fn purge_expired(&self, batch: u64) -> StoreResult<u64> {
        let limit = purge_limit(batch)?;
        self.0
            .write_one(move |db| {
                db.with_statement(
                    "DELETE FROM tokens WHERE seq IN \
                         (SELECT seq FROM tokens WHERE expiry <= ?1 ORDER BY expiry LIMIT ?2)",
                    |s| s.execute(params![db.now(), limit]),
                )
                .map(|n| n as u64)
                .map_err(sql_error)
            })
            .await
    }
}

const API_KEY: &str = "API key";

/// The API keys of one store.
pub(super) struct ApiKeys(pub(super) Arc<Shared>);

#[async_trait]
impl ApiKeyStore for ApiKeys {
    async fn create(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let doc = to_doc(API_KEY, key)?;
        let id = key.id.clone();
        let hash = key.key_hash.clone();
        let created = to_micros(key.created_at);
        self.0
            .write_one(move |db| {
                db.with_statement(
                    "INSERT INTO api_keys (id, key_hash, created_at, doc) \
                         VALUES (?1, ?2, ?3, ?4)",
                    |s| s.execute(params![id, hash, created, doc]),
                )
                .map(|_| ())
                .map_err(|e| duplicate(API_KEY, &id, e))
            })
            .await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let id = id.to_owned();
        let doc: Option<String> = self
            .0
            .read(move |db| {
                db.with_statement("SELECT doc FROM api_keys WHERE id = ?1", |s| {
                    s.query_row([id], |r| r.get(0)).optional()
                })
                .map_err(sql_error)
            })
            .await?;
        doc.map(|d| from_doc(API_KEY, &d)).transpose()
    }

    async fn get_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let hash = key_hash.to_owned();
        let doc: Option<String> = self
            .0
            .read(move |db| {
                db.with_statement("SELECT doc FROM api_keys WHERE key_hash = ?1", |s| {
                    s.query_row([hash], |r| r.get(0)).optional()
                })
                .map_err(sql_error)
            })
            .await?;
        doc.map(|d| from_doc(API_KEY, &d)).transpose()
    }

    async fn list(&self, page: Page) -> StoreResult<Listing<ApiKeyRecord>> {
        let sql = Where::new();
        let (docs, total) = self
            .0
            .read(move |db| {
                sql.page(db, "api_keys", "doc", "created_at ASC, id ASC", page, |r| {
                    r.get::<_, String>(0)
                })
            })
            .await?;
        let items = docs
            .iter()
            .map(|d| from_doc(API_KEY, d))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Listing { items, total })
    }

    async fn set_enabled(&self, id: &str, enabled: bool) -> StoreResult<()> {
        let id = id.to_owned();
        let value = if enabled { "true" } else { "false" };
        self.0
            .write_one(move |db| {
                let changed = db
                    .with_statement(
                        "UPDATE api_keys SET doc = json_set(doc, '$.enabled', json(?1)) \
                         WHERE id = ?2",
                        |s| s.execute(params![value, id]),
                    )
                    .map_err(sql_error)?;
                found(changed, API_KEY, &id)
            })
            .await
    }

    async fn delete(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.0
            .write_one(move |db| {
                db.with_statement("DELETE FROM api_keys WHERE id = ?1", |s| s.execute([id]))
                    .map(|n| n > 0)
                    .map_err(sql_error)
            })
            .await
    }
}
