//! Numbered schema migrations, applied at connect under an advisory lock.

use deadpool_postgres::Client;

use super::{StoreError, StoreResult, get, pg_error};

/// Every migration this build knows, in order: (version, SQL).
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_claim_by_tag.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/postgres/0003_leaders.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/postgres/0004_workflow_parts.sql"),
    ),
];

/// The newest schema version this build knows.
pub const LATEST_VERSION: i64 = 4;

/// Key of the transaction-scoped advisory lock serialising migrations ("ST2R"); the second key
/// is a hash of the schema name, so stores in different schemas do not wait for each other.
const LOCK_KEY: i32 = 0x5354_3252;

/// Create the schema if needed and apply every migration newer than the database's version, all
/// in one transaction holding the advisory lock: of several nodes starting at once, one applies
/// them and the others then find nothing to do.
pub(super) async fn migrate(client: &mut Client, schema: Option<&str>) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1::int4, hashtext($2::text))",
        &[&LOCK_KEY, &schema.unwrap_or("")],
    )
    .await
    .map_err(pg_error)?;
    if let Some(schema) = schema {
        // The name was validated as a plain identifier ([a-z_][a-z0-9_]*).
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET LOCAL search_path TO \"{schema}\""
        ))
        .await
        .map_err(pg_error)?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    bigint PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(pg_error)?;
    let row = tx
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg_error)?;
    let current: i64 = get(&row, 0)?;
    if current > LATEST_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: LATEST_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|e| {
            let error = pg_error(e);
            match error {
                StoreError::Backend(message) => {
                    StoreError::Backend(format!("migration {version}: {message}"))
                }
                other => other,
            }
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_and_latest_is_last() {
        for (i, (version, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i64 + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.0), Some(LATEST_VERSION));
    }
}
