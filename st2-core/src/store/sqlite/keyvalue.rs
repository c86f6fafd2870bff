//! Key-value pairs, unique on (scope, name); expired pairs read as absent.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params};

use super::connection::sql_error;
use super::filter::Where;
use super::writer::Db;
use super::{Shared, from_doc, purge_limit, to_doc};
use crate::store::{
    KeyScope, KeyValueRecord, KeyValueStore, Listing, Page, StoreResult, to_micros,
};

const WHAT: &str = "key";

/// A stored pair's row.
struct Stored {
    seq: i64,
    id: String,
    expiry: Option<i64>,
    doc: String,
}

/// The stored pair at (scope, name), expired or not.
fn stored(db: &Db<'_, '_>, scope: &str, name: &str) -> StoreResult<Option<Stored>> {
    db.with_statement(
        "SELECT seq, id, expire_timestamp, doc FROM key_values WHERE scope = ?1 AND name = ?2",
        |s| {
            s.query_row([scope, name], |r| {
                Ok(Stored {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    expiry: r.get(2)?,
                    doc: r.get(3)?,
                })
            })
            .optional()
        },
    )
    .map_err(sql_error)
}

fn live(expiry: Option<i64>, now: i64) -> bool {
    expiry.is_none_or(|at| at > now)
}

/// The key-value pairs of one store.
pub(super) struct KeyValues(pub(super) Arc<Shared>);

#[async_trait]
impl KeyValueStore for KeyValues {
    async fn put(&self, pair: &KeyValueRecord) -> StoreResult<Option<KeyValueRecord>> {
        let doc = to_doc(WHAT, pair)?;
        let id = pair.id.clone();
        let scope = pair.scope.as_str();
        let name = pair.name.clone();
        let expiry = pair.expire_timestamp.map(to_micros);
        let previous = self
            .0
            .write(move |db| {
                let conn = db.conn();
                match stored(db, scope, &name)? {
                    None => {
                        conn.prepare_cached(
                            "INSERT INTO key_values (id, scope, name, expire_timestamp, doc) \
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )
                        .and_then(|mut s| s.execute(params![id, scope, name, expiry, doc]))
                        .map_err(sql_error)?;
                        Ok(None)
                    }
                    // A live pair is replaced in place and keeps its id.
                    Some(old) if live(old.expiry, db.now()) => {
                        conn.prepare_cached(
                            "UPDATE key_values SET expire_timestamp = ?1, \
                             doc = json_set(?2, '$.id', ?3) WHERE seq = ?4",
                        )
                        .and_then(|mut s| s.execute(params![expiry, doc, old.id, old.seq]))
                        .map_err(sql_error)?;
                        Ok(Some(old.doc))
                    }
                    // An expired pair is absent: the new one takes its place.
                    Some(old) => {
                        conn.prepare_cached(
                            "UPDATE key_values SET id = ?1, expire_timestamp = ?2, doc = ?3 \
                             WHERE seq = ?4",
                        )
                        .and_then(|mut s| s.execute(params![id, expiry, doc, old.seq]))
                        .map_err(sql_error)?;
                        Ok(None)
                    }
                }
            })
            .await?;
        previous.map(|d| from_doc(WHAT, &d)).transpose()
    }

    async fn get(&self, scope: KeyScope, name: &str) -> StoreResult<Option<KeyValueRecord>> {
        let name = name.to_owned();
        let doc: Option<String> = self
            .0
            .read(move |db| {
                db.with_statement(
                    "SELECT doc FROM key_values WHERE scope = ?1 AND name = ?2 \
                         AND (expire_timestamp IS NULL OR expire_timestamp > ?3)",
                    |s| {
                        s.query_row(params![scope.as_str(), name, db.now()], |r| r.get(0))
                            .optional()
                    },
                )
                .map_err(sql_error)
            })
            .await?;
        doc.map(|d| from_doc(WHAT, &d)).transpose()
    }

    async fn list(
        &self,
        scope: Option<KeyScope>,
        prefix: Option<&str>,
        page: Page,
    ) -> StoreResult<Listing<KeyValueRecord>> {
        let mut sql = Where::new();
        sql.eq("scope", scope.map(KeyScope::as_str));
        if let Some(prefix) = prefix.filter(|p| !p.is_empty()) {
            // substr counts characters, as `starts_with` on the name does.
            let chars = i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX);
            sql.clause(
                "substr(name, 1, ?) = ?",
                [Value::Integer(chars), Value::Text(prefix.to_owned())],
            );
        }
        let now = self.0.now();
        sql.clause(
            "(expire_timestamp IS NULL OR expire_timestamp > ?)",
            [Value::Integer(now)],
        );
        let (docs, total) = self
            .0
            .read(move |db| {
                sql.page(db, "key_values", "doc", "scope ASC, name ASC", page, |r| {
                    r.get::<_, String>(0)
                })
            })
            .await?;
        let items = docs
            .iter()
            .map(|d| from_doc(WHAT, d))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Listing { items, total })
    }

    async fn delete(&self, scope: KeyScope, name: &str) -> StoreResult<Option<KeyValueRecord>> {
        let name = name.to_owned();
        let previous = self
            .0
            .write(move |db| {
                let Some(old) = stored(db, scope.as_str(), &name)? else {
                    return Ok(None);
                };
                db.with_statement("DELETE FROM key_values WHERE seq = ?1", |s| {
                    s.execute([old.seq])
                })
                .map_err(sql_error)?;
                Ok(live(old.expiry, db.now()).then_some(old.doc))
            })
            .await?;
        previous.map(|d| from_doc(WHAT, &d)).transpose()
    }

    async fn purge_expired(&self, batch: u64) -> StoreResult<u64> {
        let limit = purge_limit(batch)?;
        self.0
            .write_one(move |db| {
                db.with_statement(
                    "DELETE FROM key_values WHERE seq IN (SELECT seq FROM key_values \
                         WHERE expire_timestamp <= ?1 ORDER BY expire_timestamp LIMIT ?2)",
                    |s| s.execute(params![db.now(), limit]),
                )
                .map(|n| n as u64)
                .map_err(sql_error)
            })
            .await
    }
}
