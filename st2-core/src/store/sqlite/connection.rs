//! Opening connections: pragmas, migrations, and what SQLite's errors mean to callers.

use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use crate::store::{StoreError, StoreResult};

/// The schema migrations, in order: (version, SQL). A database records the last one applied in
/// `PRAGMA user_version`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../../migrations/sqlite/0002_claim_by_tag.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/sqlite/0003_leaders.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/sqlite/0004_workflow_parts.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/sqlite/0005_snapshots.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/sqlite/0006_trace_links.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/sqlite/0007_partial_status.sql"),
    ),
];

/// The newest schema version this build knows.
pub(super) fn newest_schema() -> i64 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

/// How many prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 256;

/// What SQLite's error means for the caller.
pub(super) fn sql_error(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let text = match message {
                Some(message) => format!("{message} ({failure})"),
                None => failure.to_string(),
            };
            match failure.code {
                ErrorCode::DiskFull => StoreError::DiskFull(text),
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::Corrupt(text),
                ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
                | ErrorCode::SystemIoFailure
                | ErrorCode::NoLargeFileSupport
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked => StoreError::Unavailable(text),
                ErrorCode::ConstraintViolation => StoreError::Conflict {
                    what: "record",
                    id: String::new(),
                    reason: text,
                },
                _ => StoreError::Backend(text),
            }
        }
        _ => StoreError::Backend(error.to_string()),
    }
}

/// Whether `error` is a uniqueness (or primary key) violation.
pub(super) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == ErrorCode::ConstraintViolation
                && (failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    )
}

/// Map an insert's error: a uniqueness violation is a [`StoreError::Conflict`] on `what` `id`.
pub(super) fn insert_error(what: &'static str, id: &str, error: rusqlite::Error) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict {
            what,
            id: id.to_owned(),
            reason: "already exists".into(),
        }
    } else {
        sql_error(error)
    }
}

/// The same error again (errors are not `Clone`; a failed batch tells every job).
pub(super) fn copy_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::NotFound { what, id } => StoreError::NotFound {
            what,
            id: id.clone(),
        },
        StoreError::Conflict { what, id, reason } => StoreError::Conflict {
            what,
            id: id.clone(),
            reason: reason.clone(),
        },
        StoreError::LeaseLost { item_id, fence } => StoreError::LeaseLost {
            item_id: *item_id,
            fence: *fence,
        },
        StoreError::Invalid(m) => StoreError::Invalid(m.clone()),
        StoreError::SchemaTooNew { found, supported } => StoreError::SchemaTooNew {
            found: *found,
            supported: *supported,
        },
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::DiskFull(m) => StoreError::DiskFull(m.clone()),
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Backend(m) => StoreError::Backend(m.clone()),
    }
}

/// Name the database in errors about the file itself.
pub(super) fn locate(location: &str, error: StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("{location}: {m}")),
        StoreError::Corrupt(m) => StoreError::Corrupt(format!("{location}: {m}")),
        StoreError::DiskFull(m) => StoreError::DiskFull(format!("{location}: {m}")),
        other => other,
    }
}

/// How the writer connection is set up.
#[derive(Debug, Clone)]
pub(super) struct WriterSettings {
    /// `PRAGMA synchronous` value.
    pub synchronous: &'static str,
    /// Busy timeout.
    pub busy_timeout: Duration,
    /// `PRAGMA cache_size` (negative: KiB).
    pub cache_size: i64,
    /// The most bytes the database may hold.
    pub max_size: Option<u64>,
}

fn configure(conn: &Connection, busy_timeout: Duration, cache_size: i64) -> StoreResult<()> {
    conn.busy_timeout(busy_timeout).map_err(sql_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plan each statement once, whatever values are bound to it. Without this guarantee SQLite
    // re-prepares (parses and plans again) a cached statement such as `... WHERE parent = ?1
    // ORDER BY seq` or `... LIMIT ?3` each time a different value is bound, in case the value
    // allows a better plan: a parse per children query, trace or workflow read and claim. Our
    // statements never need a value-dependent plan (partial indexes are matched by literal
    // conditions, nothing uses `LIKE ?`, no statistics are gathered).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(sql_error)?;
    conn.pragma_update(None, "cache_size", cache_size)
        .map_err(sql_error)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(sql_error)?;
    // Read pages through a memory map: a reader's page cache is dropped whenever another
    // connection commits, and re-reading through `pread` costs a system call per page.
    conn.query_row("PRAGMA mmap_size = 268435456", [], |_| Ok(()))
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(()),
            other => Err(other),
        })
        .map_err(sql_error)?;
    Ok(())
}

/// Open the read-write connection (`None`: a private in-memory database), configure it and
/// bring its schema up to date.
pub(super) fn open_writer(
    path: Option<&Path>,
    settings: &WriterSettings,
) -> StoreResult<Connection> {
    let mut conn = match path {
        Some(path) => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
        None => Connection::open_in_memory(),
    }
    .map_err(sql_error)?;
    configure(&conn, settings.busy_timeout, settings.cache_size)?;
    if path.is_some() {
        // The first statement that reads the file: a file that is not a database fails here.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(sql_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "cannot switch the database to WAL mode (it stays in {mode:?} mode)"
            )));
        }
    }
    conn.pragma_update(None, "synchronous", settings.synchronous)
        .map_err(sql_error)?;
    migrate(&mut conn)?;
    // The pages the migrations read stay cached otherwise; a daemon that then idles keeps them.
    conn.execute_batch("PRAGMA shrink_memory")
        .map_err(sql_error)?;
    if let Some(bytes) = settings.max_size {
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .map_err(sql_error)?;
        let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page_size.max(512);
        conn.query_row(
            &format!("PRAGMA max_page_count = {}", pages.max(1)),
            [],
            |_| Ok(()),
        )
        .map_err(sql_error)?;
    }
    Ok(conn)
}

/// Open a read-only connection to the (already migrated) file at `path`.
pub(super) fn open_reader(
    path: &Path,
    busy_timeout: Duration,
    cache_size: i64,
) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_error)?;
    configure(&conn, busy_timeout, cache_size)?;
    Ok(conn)
}

/// Open the checkpointer's read-write connection to the (already migrated) file at `path`,
/// and hand checkpoints over to it: the writer's own automatic checkpoints are turned off.
pub(super) fn open_checkpointer(
    path: &Path,
    writer: &Connection,
    busy_timeout: Duration,
) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_error)?;
    conn.busy_timeout(busy_timeout).map_err(sql_error)?;
    writer
        .query_row("PRAGMA wal_autocheckpoint = 0", [], |_| Ok(()))
        .map_err(sql_error)?;
    // Once the log starts over, keep at most this much of the old file.
    writer
        .query_row("PRAGMA journal_size_limit = 67108864", [], |_| Ok(()))
        .map_err(sql_error)?;
    Ok(conn)
}

fn schema_version(conn: &Connection) -> StoreResult<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sql_error)
}

/// Apply every migration newer than the database's version, each in its own transaction.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let supported = newest_schema();
    let found = schema_version(conn)?;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for (version, sql) in MIGRATIONS {
        if *version <= found {
            continue;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        // Another process may have migrated meanwhile.
        let now = schema_version(&tx)?;
        if now > supported {
            return Err(StoreError::SchemaTooNew {
                found: now,
                supported,
            });
        }
        if now >= *version {
            continue;
        }
        tx.execute_batch(sql).map_err(|e| match sql_error(e) {
            StoreError::Backend(m) => {
                StoreError::Backend(format!("schema migration {version} failed: {m}"))
            }
            other => other,
        })?;
        tx.pragma_update(None, "user_version", version)
            .map_err(sql_error)?;
        tx.commit().map_err(sql_error)?;
    }
    Ok(())
}
