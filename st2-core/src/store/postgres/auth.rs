//! Key-value pairs, tokens and API keys.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{Params, PgStore, batch_limit, doc, get, json, pg_error, pg_error_for};
use crate::store::{
    ApiKeyRecord, ApiKeyStore, KeyScope, KeyValueRecord, KeyValueStore, Listing, Page, StoreError,
    StoreResult, TokenRecord, TokenStore, to_micros,
};

fn pair_of(row: &Row) -> StoreResult<KeyValueRecord> {
    doc(row, 0, "key-value pair")
}

/// Whether a stored expiry (microseconds) has passed at `now`.
fn expired(expire_at: Option<i64>, now: i64) -> bool {
    matches!(expire_at, Some(t) if t <= now)
}

#[async_trait]
impl KeyValueStore for PgStore {
    async fn put(&self, pair: &KeyValueRecord) -> StoreResult<Option<KeyValueRecord>> {
        let now = self.now_micros();
        let scope = pair.scope.as_str();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let select = tx
            .prepare_cached(
                "SELECT doc, expire_at FROM key_values WHERE scope = $1 AND name = $2
                 FOR UPDATE",
            )
            .await
            .map_err(pg_error)?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO key_values (scope, name, id, expire_at, doc)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, name) DO NOTHING",
            )
            .await
            .map_err(pg_error)?;
        let update = tx
            .prepare_cached(
                "UPDATE key_values SET id = $3, expire_at = $4, doc = $5
                 WHERE scope = $1 AND name = $2",
            )
            .await
            .map_err(pg_error)?;
        let expire_at = pair.expire_timestamp.map(to_micros);
        // A concurrent first put of the same key makes our INSERT a no-op: then the row exists
        // and the next SELECT … FOR UPDATE sees (and locks) it. Two rounds always suffice.
        let mut previous = None;
        let mut done = false;
        for _ in 0..3 {
            let row = tx
                .query_opt(&select, &[&scope, &pair.name])
                .await
                .map_err(pg_error)?;
            match row {
                Some(row) => {
                    let old = pair_of(&row)?;
                    let old_expiry: Option<i64> = get(&row, 1)?;
                    let mut new = pair.clone();
                    if !expired(old_expiry, now) {
                        new.id = old.id.clone();
                        previous = Some(old);
                    }
                    tx.execute(
                        &update,
                        &[&scope, &pair.name, &new.id, &expire_at, &json(&new)],
                    )
                    .await
                    .map_err(|e| pg_error_for(e, "key", &pair.name))?;
                    done = true;
                    break;
                }
                None => {
                    let n = tx
                        .execute(
                            &insert,
                            &[&scope, &pair.name, &pair.id, &expire_at, &json(pair)],
                        )
                        .await
                        .map_err(|e| pg_error_for(e, "key", &pair.name))?;
                    if n == 1 {
                        done = true;
                        break;
                    }
                }
            }
        }
        if !done {
            return Err(StoreError::Conflict {
                what: "key",
                id: pair.name.clone(),
                reason: "concurrent writes kept racing".into(),
            });
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(previous)
    }

    async fn get(&self, scope: KeyScope, name: &str) -> StoreResult<Option<KeyValueRecord>> {
        self.one(
            "SELECT doc FROM key_values WHERE scope = $1 AND name = $2
                AND (expire_at IS NULL OR expire_at > $3)",
            &[&scope.as_str(), &name, &self.now_micros()],
        )
        .await?
        .as_ref()
        .map(pair_of)
        .transpose()
    }

    async fn list(
        &self,
        scope: Option<KeyScope>,
        prefix: Option<&str>,
        page: Page,
    ) -> StoreResult<Listing<KeyValueRecord>> {
        let mut p = Params::default();
        let n = p.bind(self.now_micros());
        p.and(format!("(expire_at IS NULL OR expire_at > {n})"));
        if let Some(scope) = scope {
            let n = p.bind(scope.as_str());
            p.and(format!("scope = {n}"));
        }
        if let Some(prefix) = prefix.filter(|p| !p.is_empty()) {
            let n = p.bind(prefix.to_owned());
            p.and(format!("starts_with(name, {n})"));
        }
        let (rows, total) = self
            .page("doc", "key_values", "scope ASC, name ASC", p, page)
            .await?;
        let items = rows.iter().map(pair_of).collect::<StoreResult<_>>()?;
        Ok(Listing { items, total })
    }

    async fn delete(&self, scope: KeyScope, name: &str) -> StoreResult<Option<KeyValueRecord>> {
        let now = self.now_micros();
        let row = self
            .one(
                "DELETE FROM key_values WHERE scope = $1 AND name = $2
                 RETURNING doc, expire_at",
                &[&scope.as_str(), &name],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let expire_at: Option<i64> = get(&row, 1)?;
        if expired(expire_at, now) {
            return Ok(None);
        }
        pair_of(&row).map(Some)
    }

    async fn purge_expired(&self, batch: u64) -> StoreResult<u64> {
        let limit = batch_limit(batch)?;
        self.exec(
            "DELETE FROM key_values WHERE (scope, name) IN (
                SELECT scope, name FROM key_values WHERE expire_at <= $1 LIMIT $2)",
            &[&self.now_micros(), &limit],
            "key",
            "",
        )
        .await
    }
}

#[async_trait]
impl TokenStore for PgStore {
    async fn create(&self, token: &TokenRecord) -> StoreResult<()> {
        self.exec(
            "INSERT INTO tokens (id, token_hash, expiry, doc) VALUES ($1, $2, $3, $4)",
            &[
                &token.id,
                &token.token_hash,
                &to_micros(token.expiry),
                &json(token),
            ],
            "token",
            &token.id,
        )
        .await?;
        Ok(())
    }

    async fn get_by_hash(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>> {
        self.one(
            "SELECT doc FROM tokens WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?
        .map(|row| doc(&row, 0, "token"))
        .transpose()
    }

    async fn delete_by_hash(&self, token_hash: &str) -> StoreResult<bool> {
        let n = self
            .exec(
                "DELETE FROM tokens WHERE token_hash = $1",
                &[&token_hash],
                "token",
                "",
            )
            .await?;
        Ok(n > 0)
    }

    async fn purge_expired(&self, batch: u64) -> StoreResult<u64> {
        let limit = batch_limit(batch)?;
        self.exec(
            "DELETE FROM tokens WHERE id IN (
                SELECT id FROM tokens WHERE expiry <= $1 ORDER BY expiry LIMIT $2)",
            &[&self.now_micros(), &limit],
            "token",
            "",
        )
        .await
    }
}

fn api_key_of(row: &Row) -> StoreResult<ApiKeyRecord> {
    let mut record: ApiKeyRecord = doc(row, 0, "API key")?;
    record.enabled = get(row, 1)?;
    Ok(record)
}

#[async_trait]
impl ApiKeyStore for PgStore {
    async fn create(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        self.exec(
            "INSERT INTO api_keys (id, key_hash, enabled, created_at, doc)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &key.id,
                &key.key_hash,
                &key.enabled,
                &to_micros(key.created_at),
                &json(key),
            ],
            "API key",
            &key.id,
        )
        .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.one("SELECT doc, enabled FROM api_keys WHERE id = $1", &[&id])
            .await?
            .as_ref()
            .map(api_key_of)
            .transpose()
    }

    async fn get_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.one(
            "SELECT doc, enabled FROM api_keys WHERE key_hash = $1",
            &[&key_hash],
        )
        .await?
        .as_ref()
        .map(api_key_of)
        .transpose()
    }

    async fn list(&self, page: Page) -> StoreResult<Listing<ApiKeyRecord>> {
        let (rows, total) = self
            .page(
                "doc, enabled",
                "api_keys",
                "created_at ASC, id ASC",
                Params::default(),
                page,
            )
            .await?;
        let items = rows.iter().map(api_key_of).collect::<StoreResult<_>>()?;
        Ok(Listing { items, total })
    }

    async fn set_enabled(&self, id: &str, enabled: bool) -> StoreResult<()> {
        let n = self
            .exec(
                "UPDATE api_keys SET enabled = $2 WHERE id = $1",
                &[&id, &enabled],
                "API key",
                id,
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "API key",
                id: id.to_owned(),
            });
        }
        Ok(())
    }

    async fn delete(&self, id: &str) -> StoreResult<bool> {
        let n = self
            .exec("DELETE FROM api_keys WHERE id = $1", &[&id], "API key", id)
            .await?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_inclusive() {
        assert!(!expired(None, 10));
        assert!(expired(Some(10), 10));
        assert!(!expired(Some(11), 10));
    }
}
