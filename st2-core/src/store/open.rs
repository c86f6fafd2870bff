//! Opening a store from a URL, as `st2d --storage URL` does.
//!
//! | URL | store |
//! |---|---|
//! | `sqlite:///var/lib/st2d/st2.db` | SQLite file at an absolute path |
//! | `sqlite://data/st2.db` | SQLite file relative to the working directory |
//! | `sqlite::memory:` | SQLite in memory (gone when the process exits) |
//! | `postgres://user:pass@host:5432/db` (or `postgresql://`) | PostgreSQL |
//!
//! SQLite URLs take `?synchronous=full` (default `normal`). PostgreSQL URLs are passed to the
//! driver as they are (libpq's keys: `host`, `user`, `dbname`, `application_name`, …), except
//! `pool_size=N` and `schema=NAME`, which this function takes out first.

use std::path::PathBuf;
use std::sync::Arc;

use super::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use super::{Store, StoreError, StoreResult};
use crate::clock::Clock;

/// Open the store `url` names, with `clock` for leases and expiry.
///
/// # Errors
/// [`StoreError::Invalid`] for a URL this build cannot open (unknown scheme, bad option, a
/// PostgreSQL URL in a build without the `postgres` feature); the backend's errors otherwise.
pub async fn open_url(url: &str, clock: Arc<dyn Clock>) -> StoreResult<Arc<dyn Store>> {
    let invalid = |why: &str| StoreError::Invalid(format!("storage URL {url:?}: {why}"));
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let (location, query) = match rest.split_once('?') {
            Some((l, q)) => (l, Some(q)),
            None => (rest, None),
        };
        let mut synchronous = Synchronous::Normal;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("synchronous", v)) if v.eq_ignore_ascii_case("normal") => {
                    synchronous = Synchronous::Normal;
                }
                Some(("synchronous", v)) if v.eq_ignore_ascii_case("full") => {
                    synchronous = Synchronous::Full;
                }
                _ => return Err(invalid(&format!("unknown SQLite option {pair:?}"))),
            }
        }
        let options = if location == ":memory:" || location == "//:memory:" {
            SqliteOptions::memory()
        } else {
            let path = location
                .strip_prefix("//")
                .ok_or_else(|| invalid("SQLite URLs look like sqlite:///abs/path.db"))?;
            if path.is_empty() {
                return Err(invalid("no database path"));
            }
            SqliteOptions::file(PathBuf::from(path))
        };
        let store = SqliteStore::open(options.with_clock(clock).synchronous(synchronous)).await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return open_postgres(url, clock).await;
    }
    Err(invalid(
        "the scheme must be sqlite:// (sqlite::memory:) or postgres://",
    ))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, clock: Arc<dyn Clock>) -> StoreResult<Arc<dyn Store>> {
    use super::postgres::{PgOptions, PgStore};
    let invalid = |why: String| StoreError::Invalid(format!("storage URL: {why}"));
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut kept = Vec::new();
    let mut pool_size = None;
    let mut schema = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("pool_size", v)) => {
                pool_size =
                    Some(v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        invalid(format!("pool_size {v:?} is not a positive number"))
                    })?);
            }
            Some(("schema", v)) => schema = Some(v.to_owned()),
            _ => kept.push(pair),
        }
    }
    let driver_url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut options = PgOptions::new(driver_url).with_clock(clock);
    if let Some(n) = pool_size {
        options = options.pool_size(n);
    }
    if let Some(schema) = schema {
        options = options.schema(schema);
    }
    Ok(Arc::new(PgStore::connect(options).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(url: &str, _clock: Arc<dyn Clock>) -> StoreResult<Arc<dyn Store>> {
    Err(StoreError::Invalid(format!(
        "storage URL {url:?}: this build has no PostgreSQL support (cargo feature `postgres`)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    #[tokio::test]
    async fn sqlite_urls_open_and_bad_urls_say_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("st2.db");
        let url = format!("sqlite://{}?synchronous=full", path.display());
        let store = open_url(&url, Arc::new(SystemClock)).await.expect("open");
        assert_eq!(store.backend(), "sqlite");
        store.close().await.expect("close");
        assert!(path.exists());
        let memory = open_url("sqlite::memory:", Arc::new(SystemClock))
            .await
            .expect("open");
        assert_eq!(memory.backend(), "sqlite");

        for (bad, says) in [
            ("mysql://x", "scheme"),
            ("sqlite:relative.db", "sqlite:///"),
            ("sqlite:///x.db?fast=yes", "unknown SQLite option"),
        ] {
            let err = open_url(bad, Arc::new(SystemClock))
                .await
                .expect_err(bad)
                .to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
