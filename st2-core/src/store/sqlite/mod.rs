//! The embedded store: one SQLite file (or a private in-memory database).
//!
//! * One writer thread owns the read-write connection and commits in groups: every write
//!   queued while the previous batch was committing goes into the next transaction, each in its
//!   own savepoint, and is acknowledged only after that transaction commits.
//! * Reads run on a small pool of read-only connections (WAL lets them proceed while the writer
//!   commits) through [`tokio::task::spawn_blocking`]. An in-memory database has a single
//!   connection, so its reads go through the writer thread too.
//! * The schema is migrated at open from the numbered files in `st2-core/migrations/sqlite/`;
//!   the version applied is kept in `PRAGMA user_version`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), st2_core::store::StoreError> {
//! use st2_core::store::Store;
//! use st2_core::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
//!
//! let store = SqliteStore::open(
//!     SqliteOptions::file("/var/lib/st2/st2.db").synchronous(Synchronous::Full),
//! )
//! .await?;
//! let depth = store.queue().depth("scheduler").await?;
//! # let _ = depth;
//! store.close().await?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::{Clock, SystemClock};
use crate::store::{
    ApiKeyStore, BatchWrite, BatchWritten, ExecutionOutputStore, ExecutionStore, InquiryStore,
    KeyValueStore, LeaseRef, Page, RuleEnforcementStore, SortOrder, Store, StoreError, StoreResult,
    TokenStore, TraceStore, TriggerInstanceStatus, TriggerInstanceStore, Wakeups, WorkQueue,
    WorkflowStore,
};

mod auth;
mod checkpoint;
mod connection;
mod events;
mod executions;
mod filter;
mod keyvalue;
mod queue;
mod snapshots;
mod workflows;
mod writer;

use checkpoint::Checkpointer;
use connection::{WriterSettings, locate, open_checkpointer, open_reader, open_writer};
use writer::{Db, Writer};

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Commits survive a crash of the process; the last commits before a power loss may be
    /// lost (the database stays consistent). Fast: WAL is synced at checkpoints only.
    #[default]
    Normal,
    /// Every commit is synced to disk before it is acknowledged.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// Where and how to open the database.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    path: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    synchronous: Synchronous,
    read_connections: usize,
    max_batch: usize,
    busy_timeout: Duration,
    cache_kib: i64,
    writer_cache_kib: i64,
    max_size: Option<u64>,
}

impl SqliteOptions {
    fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            clock: Arc::new(SystemClock),
            synchronous: Synchronous::Normal,
            read_connections: 4,
            max_batch: 1024,
            busy_timeout: Duration::from_secs(5),
            cache_kib: 64 * 1024,
            writer_cache_kib: 2 * 1024,
            max_size: None,
        }
    }

    /// A database file, created (with its schema) if missing.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::new(Some(path.into()))
    }

    /// A private in-memory database, gone when the store closes (tests, `st2d` dry runs).
    pub fn memory() -> Self {
        Self::new(None)
    }

    /// The clock for leases and expiry (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The durability of each commit (default [`Synchronous::Normal`]).
    pub fn synchronous(mut self, level: Synchronous) -> Self {
        self.synchronous = level;
        self
    }

    /// How many read-only connections serve reads (default 4, at least 1). Ignored in memory.
    pub fn read_connections(mut self, n: usize) -> Self {
        self.read_connections = n.max(1);
        self
    }

    /// At most this many writes per transaction (default 1024, at least 1).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// How long a connection waits for a lock held by another process (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The page cache of the read connections, in KiB (default 64 MiB: a quarter each), and
    /// of an in-memory database's one connection.
    pub fn cache_kib(mut self, kib: u32) -> Self {
        self.cache_kib = i64::from(kib.max(64));
        self
    }

    /// The page cache of a database file's writer connection, in KiB (default 2 MiB, at least
    /// 256 KiB). The writer reads little: the pages its transactions change and the upper
    /// levels of the B-trees they walk. A larger cache mostly keeps pages it appended and
    /// never reads again; filling it costs memory and the page faults that grow the heap
    /// (`docs/performance.md`, "The writer's page cache").
    pub fn writer_cache_kib(mut self, kib: u32) -> Self {
        self.writer_cache_kib = i64::from(kib.max(256));
        self
    }

    /// Cap the database at about `bytes` (SQLite's `max_page_count`): a write that does not fit
    /// fails with [`StoreError::DiskFull`] and is not committed, as on a full disk.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    fn location(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => ":memory:".into(),
        }
    }
}

/// The read-only connections of a file database. A read takes the first free connection, so
/// that a lightly used store works with the first connection only (one warm page cache); the
/// others are opened when concurrent reads first need them.
struct ReadPool {
    slots: Box<[Mutex<ReadSlot>]>,
    path: PathBuf,
    busy_timeout: Duration,
    cache_size: i64,
    clock: Arc<dyn Clock>,
}

enum ReadSlot {
    /// Not needed yet.
    Unopened,
    Open(Connection),
    /// The store is closed.
    Closed,
}

impl ReadPool {
    /// Run `work` in a read transaction on the first free connection (or wait for the first
    /// one).
    fn run<T>(&self, work: impl FnOnce(&Db<'_, '_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut held = None;
        for slot in self.slots.iter() {
            match slot.try_lock() {
                Ok(guard) => {
                    held = Some(guard);
                    break;
                }
                // A panic elsewhere cannot leave a connection half-used: reads are
                // transactions that end below.
                Err(TryLockError::Poisoned(poisoned)) => {
                    held = Some(poisoned.into_inner());
                    break;
                }
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let mut guard = match held {
            Some(guard) => guard,
            None => match self.slots.first() {
                Some(slot) => slot.lock().unwrap_or_else(|e| e.into_inner()),
                None => return Err(StoreError::Unavailable("no read connections".into())),
            },
        };
        if matches!(*guard, ReadSlot::Unopened) {
            let conn = open_reader(&self.path, self.busy_timeout, self.cache_size)
                .map_err(|e| locate(&self.path.display().to_string(), e))?;
            *guard = ReadSlot::Open(conn);
        }
        let ReadSlot::Open(conn) = &*guard else {
            return Err(StoreError::Unavailable("the store is closed".into()));
        };
        let db = Db::new(conn, self.clock.as_ref());
        db.exec("BEGIN")?;
        let outcome = work(&db);
        if db.exec("COMMIT").is_err() && !conn.is_autocommit() {
            let _ = db.exec("ROLLBACK");
        }
        outcome
    }

    fn close(&self) {
        for slot in self.slots.iter() {
            let state = std::mem::replace(
                &mut *slot.lock().unwrap_or_else(|e| e.into_inner()),
                ReadSlot::Closed,
            );
            if let ReadSlot::Open(conn) = state {
                let _ = conn.close();
            }
        }
    }
}

/// What every aggregate of one store shares.
struct Shared {
    location: String,
    clock: Arc<dyn Clock>,
    writer: Writer,
    readers: Option<Arc<ReadPool>>,
    wakeups: Wakeups,
    /// The executions' snapshots read so far.
    snapshots: Arc<snapshots::Snapshots>,
}

impl Shared {
    /// Run `work` (any number of statements) in the writer, in its own savepoint; resolves once
    /// its batch has committed.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_, '_>) -> StoreResult<T> + Send + 'static,
    {
        self.writer
            .run(true, work)
            .await
            .map_err(|e| locate(&self.location, e))
    }

    /// Run `work` (any number of statements, writing nothing but through the connection, so
    /// that it can run again) in the writer; it shares a savepoint with neighbouring such
    /// jobs. Resolves once its batch has committed.
    async fn write_repeatable<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Db<'_, '_>) -> StoreResult<T> + Send + 'static,
    {
        self.writer
            .run_repeatable(work)
            .await
            .map_err(|e| locate(&self.location, e))
    }

    /// Run `work`, which modifies with at most ONE statement (SQLite undoes a failed statement
    /// itself, so it needs no savepoint), in the writer. Writes that are right to keep whether
    /// or not that statement succeeds may come before it: the snapshot rows an execution's
    /// document refers to ([`snapshots::store`]).
    async fn write_one<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_, '_>) -> StoreResult<T> + Send + 'static,
    {
        self.writer
            .run(false, work)
            .await
            .map_err(|e| locate(&self.location, e))
    }

    /// Run `work`, which only reads, in one read transaction.
    async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_, '_>) -> StoreResult<T> + Send + 'static,
    {
        let outcome = match &self.readers {
            Some(pool) => {
                let pool = Arc::clone(pool);
                tokio::task::spawn_blocking(move || pool.run(work))
                    .await
                    .unwrap_or_else(|e| Err(StoreError::Backend(format!("a read failed: {e}"))))
            }
            None => self.writer.run(false, work).await,
        };
        outcome.map_err(|e| locate(&self.location, e))
    }

    fn now(&self) -> i64 {
        crate::store::to_micros(self.clock.now())
    }
}

/// The embedded SQLite store.
pub struct SqliteStore {
    shared: Arc<Shared>,
    trigger_instances: events::TriggerInstances,
    executions: executions::Executions,
    execution_output: executions::ExecutionOutput,
    rule_enforcements: events::RuleEnforcements,
    key_values: keyvalue::KeyValues,
    tokens: auth::Tokens,
    api_keys: auth::ApiKeys,
    workflows: workflows::Workflows,
    inquiries: workflows::Inquiries,
    traces: events::Traces,
    queue: queue::Queue,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.shared.location)
            .field("writer", &self.shared.writer)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open (creating and migrating as needed) the database `options` names.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be opened or written,
    /// [`StoreError::Corrupt`] when it is not a database, [`StoreError::SchemaTooNew`] when a
    /// newer build wrote it.
    pub async fn open(options: SqliteOptions) -> StoreResult<SqliteStore> {
        let location = options.location();
        let settings = WriterSettings {
            synchronous: options.synchronous.pragma(),
            busy_timeout: options.busy_timeout,
            cache_size: if options.path.is_some() {
                -options.writer_cache_kib
            } else {
                -options.cache_kib
            },
            max_size: options.max_size,
        };
        let path = options.path.clone();
        let busy = options.busy_timeout;
        let conn = tokio::task::spawn_blocking(move || {
            let writer = open_writer(path.as_deref(), &settings)?;
            let checkpointer = match &path {
                Some(path) => Some(open_checkpointer(path, &writer, busy)?),
                None => None,
            };
            Ok((writer, checkpointer))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("{location}: cannot open: {e}")))?
        .map_err(|e| match e {
            StoreError::Unavailable(m) => {
                StoreError::Unavailable(format!("{location}: cannot open the database: {m}"))
            }
            other => locate(&location, other),
        })?;
        let readers = match &options.path {
            Some(path) => Some(Arc::new(open_readers(path, &options).await?)),
            None => None,
        };
        let (conn, checkpointer) = conn;
        let checkpointer = checkpointer.map(Checkpointer::spawn).transpose()?;
        let writer = Writer::spawn(
            conn,
            Arc::clone(&options.clock),
            options.max_batch,
            checkpointer,
        )?;
        let shared = Arc::new(Shared {
            location,
            clock: options.clock,
            writer,
            readers,
            wakeups: Wakeups::new(),
            snapshots: Arc::default(),
        });
        Ok(SqliteStore {
            trigger_instances: events::TriggerInstances(Arc::clone(&shared)),
            executions: executions::Executions(Arc::clone(&shared)),
            execution_output: executions::ExecutionOutput(Arc::clone(&shared)),
            rule_enforcements: events::RuleEnforcements(Arc::clone(&shared)),
            key_values: keyvalue::KeyValues(Arc::clone(&shared)),
            tokens: auth::Tokens(Arc::clone(&shared)),
            api_keys: auth::ApiKeys(Arc::clone(&shared)),
            workflows: workflows::Workflows(Arc::clone(&shared)),
            inquiries: workflows::Inquiries(Arc::clone(&shared)),
            traces: events::Traces(Arc::clone(&shared)),
            queue: queue::Queue(Arc::clone(&shared)),
            shared,
        })
    }

    /// Where the database lives (`:memory:` for an in-memory one).
    pub fn location(&self) -> &str {
        &self.shared.location
    }
}

/// The read connections: the first is opened now (so that a file that cannot be read fails
/// here), the others on first use.
async fn open_readers(path: &Path, options: &SqliteOptions) -> StoreResult<ReadPool> {
    let count = options.read_connections.max(1);
    let busy_timeout = options.busy_timeout;
    let cache_size = -(options.cache_kib / 4).max(64);
    let location = options.location();
    let first = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || open_reader(&path, busy_timeout, cache_size))
            .await
            .map_err(|e| StoreError::Unavailable(format!("{location}: cannot open: {e}")))?
            .map_err(|e| locate(&location, e))?
    };
    let slots = std::iter::once(ReadSlot::Open(first))
        .chain(std::iter::repeat_with(|| ReadSlot::Unopened))
        .take(count)
        .map(Mutex::new)
        .collect();
    Ok(ReadPool {
        slots,
        path: path.to_path_buf(),
        busy_timeout,
        cache_size,
        clock: Arc::clone(&options.clock),
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    fn trigger_instances(&self) -> &dyn TriggerInstanceStore {
        &self.trigger_instances
    }

    fn executions(&self) -> &dyn ExecutionStore {
        &self.executions
    }

    fn execution_output(&self) -> &dyn ExecutionOutputStore {
        &self.execution_output
    }

    fn rule_enforcements(&self) -> &dyn RuleEnforcementStore {
        &self.rule_enforcements
    }

    fn key_values(&self) -> &dyn KeyValueStore {
        &self.key_values
    }

    fn tokens(&self) -> &dyn TokenStore {
        &self.tokens
    }

    fn api_keys(&self) -> &dyn ApiKeyStore {
        &self.api_keys
    }

    fn workflows(&self) -> &dyn WorkflowStore {
        &self.workflows
    }

    fn inquiries(&self) -> &dyn InquiryStore {
        &self.inquiries
    }

    fn traces(&self) -> &dyn TraceStore {
        &self.traces
    }

    fn queue(&self) -> &dyn WorkQueue {
        &self.queue
    }

    async fn write_batch(&self, writes: Vec<BatchWrite>) -> StoreResult<Vec<BatchWritten>> {
        /// One write, its rows built (and JSON serialised) off the writer thread.
        enum Row {
            TriggerInstance(events::TriggerInstanceRow),
            TriggerInstanceStatus(String, TriggerInstanceStatus),
            NewExecution(executions::ExecutionRow),
            Execution(executions::ExecutionRow, i64, u64),
            Enforcement(events::EnforcementRow),
            Trace(events::TraceRow),
            Component(events::ComponentRow),
            Enqueue(queue::WorkItemRow),
            Finish(LeaseRef),
            Workflow(Box<workflows::SaveRows>),
        }
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = Vec::with_capacity(writes.len());
        let mut queues = Vec::new();
        // The workflow records saved, as they will be stored, by the index of their write.
        let mut saved = Vec::new();
        for write in writes {
            let rows_so_far = rows.len();
            rows.push(match write {
                BatchWrite::CreateTriggerInstance(r) => {
                    Row::TriggerInstance(events::TriggerInstanceRow::new(&r)?)
                }
                BatchWrite::SetTriggerInstanceStatus { id, status } => {
                    Row::TriggerInstanceStatus(id, status)
                }
                BatchWrite::CreateExecution(r) => {
                    Row::NewExecution(executions::ExecutionRow::at(&r, 1)?)
                }
                BatchWrite::UpdateExecution(r) => {
                    let expected = i64::try_from(r.revision)
                        .map_err(|_| StoreError::Invalid("revision out of range".into()))?;
                    let next = r
                        .revision
                        .checked_add(1)
                        .ok_or_else(|| StoreError::Invalid("revision out of range".into()))?;
                    Row::Execution(executions::ExecutionRow::at(&r, next)?, expected, next)
                }
                BatchWrite::CreateRuleEnforcement(r) => {
                    Row::Enforcement(events::EnforcementRow::new(&r)?)
                }
                BatchWrite::CreateTrace(r) => Row::Trace(events::TraceRow::new(&r)?),
                BatchWrite::AddTraceComponent {
                    trace_id,
                    kind,
                    component,
                } => Row::Component(events::ComponentRow::new(&trace_id, kind, &component)?),
                BatchWrite::Enqueue(item) => {
                    queues.push(item.queue.clone());
                    Row::Enqueue(queue::WorkItemRow::new(item)?)
                }
                BatchWrite::FinishWork(lease) => Row::Finish(lease),
                BatchWrite::SaveWorkflow {
                    record,
                    parts,
                    tasks,
                } => {
                    let (stored, rows) = workflows::SaveRows::new(&record, &parts, &tasks)?;
                    saved.push((rows_so_far, stored));
                    Row::Workflow(Box::new(rows))
                }
            });
        }
        // One job (sharing a savepoint with its neighbours while none fails): a failing write
        // undoes the whole batch.
        let mut written = self
            .shared
            .write_repeatable(move |db| {
                let mut written = Vec::with_capacity(rows.len());
                for row in &rows {
                    written.push(match row {
                        Row::TriggerInstance(r) => r.insert(db).map(|()| BatchWritten::Done)?,
                        Row::TriggerInstanceStatus(id, status) => {
                            events::set_trigger_instance_status(db, id, *status)?;
                            BatchWritten::Done
                        }
                        Row::NewExecution(r) => {
                            r.insert(db)?;
                            BatchWritten::Execution {
                                revision: 1,
                                children: Vec::new(),
                            }
                        }
                        Row::Execution(r, expected, revision) => BatchWritten::Execution {
                            revision: *revision,
                            children: r.replace(db, *expected)?,
                        },
                        Row::Enforcement(r) => r.insert(db).map(|()| BatchWritten::Done)?,
                        Row::Trace(r) => r.insert(db).map(|()| BatchWritten::Done)?,
                        Row::Component(r) => r.add(db).map(|()| BatchWritten::Done)?,
                        Row::Enqueue(r) => BatchWritten::WorkItem(r.insert(db)?),
                        Row::Finish(lease) => {
                            queue::finish(db, *lease)?;
                            BatchWritten::Done
                        }
                        Row::Workflow(rows) => {
                            rows.apply(db)?;
                            BatchWritten::Done
                        }
                    });
                }
                Ok(written)
            })
            .await?;
        for (index, stored) in saved {
            if let Some(slot) = written.get_mut(index) {
                *slot = BatchWritten::Workflow(stored);
            }
        }
        queues.sort();
        queues.dedup();
        for name in &queues {
            self.shared.wakeups.notify(name);
        }
        Ok(written)
    }

    async fn close(&self) -> StoreResult<()> {
        self.shared.writer.close().await;
        if let Some(pool) = &self.shared.readers {
            let pool = Arc::clone(pool);
            tokio::task::spawn_blocking(move || pool.close())
                .await
                .map_err(|e| StoreError::Backend(format!("closing the read connections: {e}")))?;
        }
        Ok(())
    }
}

/// A record's JSON text (serialised by the caller, so the writer thread only runs SQL).
///
/// Written into a buffer the thread keeps, then copied into a string of its exact length: one
/// allocation per document, however long, instead of one per doubling of a growing buffer.
fn to_doc<T: Serialize>(what: &'static str, record: &T) -> StoreResult<String> {
    /// A buffer grown past this by a large document is not kept.
    const KEEP: usize = 64 * 1024;
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let invalid = |e: &dyn std::fmt::Display| {
        StoreError::Invalid(format!("{what} cannot be stored as JSON: {e}"))
    };
    BUFFER.with(|buffer| {
        // A serialiser that calls back into here (it never should) gets a buffer of its own.
        let mut own = Vec::new();
        let mut held = buffer.try_borrow_mut();
        let text = match held.as_deref_mut() {
            Ok(kept) => kept,
            Err(_) => &mut own,
        };
        text.clear();
        let written = crate::store::json::to_writer(&mut *text, record)
            .map_err(|e| invalid(&e))
            .and_then(|()| {
                std::str::from_utf8(text)
                    .map(str::to_owned)
                    .map_err(|e| invalid(&e))
            });
        if text.capacity() > KEEP {
            *text = Vec::new();
        }
        written
    })
}

/// A record back from its JSON text.
fn from_doc<T: DeserializeOwned>(what: &'static str, doc: &str) -> StoreResult<T> {
    serde_json::from_str(doc)
        .map_err(|e| StoreError::Corrupt(format!("a stored {what} cannot be read: {e}")))
}

/// One row's `doc` by id.
fn doc_by_id(db: &Db<'_, '_>, table: &str, id: &str) -> StoreResult<Option<String>> {
    db.conn()
        .prepare_cached(&format!("SELECT doc FROM {table} WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(connection::sql_error)
}

/// `LIMIT` and `OFFSET` of a page (`-1`: no limit).
fn limit_offset(page: Page) -> (i64, i64) {
    let limit = page
        .limit
        .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
    (limit, offset)
}

/// A purge's batch size as a `LIMIT`.
fn purge_limit(batch: u64) -> StoreResult<i64> {
    if batch == 0 {
        return Err(StoreError::Invalid(
            "a purge batch must be at least 1".into(),
        ));
    }
    Ok(i64::try_from(batch).unwrap_or(i64::MAX))
}

/// `ASC` or `DESC`.
fn direction(sort: SortOrder) -> &'static str {
    match sort {
        SortOrder::Ascending => "ASC",
        SortOrder::Descending => "DESC",
    }
}

/// `NotFound` unless a statement changed a row.
fn found(changed: usize, what: &'static str, id: &str) -> StoreResult<()> {
    if changed == 0 {
        Err(StoreError::NotFound {
            what,
            id: id.to_owned(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_exact_whatever_came_before_on_the_thread() {
        let big = serde_json::json!({"text": "x".repeat(100_000)});
        let small = serde_json::json!({"a": [1, "two", null]});
        assert_eq!(to_doc("t", &small).unwrap(), r#"{"a":[1,"two",null]}"#);
        let text = to_doc("t", &big).unwrap();
        assert_eq!(text.len(), 100_011);
        assert_eq!(text.capacity(), text.len());
        assert_eq!(to_doc("t", &small).unwrap(), r#"{"a":[1,"two",null]}"#);
        // What serde_json refuses is an error naming the record.
        let mut keyed = std::collections::HashMap::new();
        keyed.insert(vec![1u8], 1);
        let error = to_doc("trace", &keyed).unwrap_err();
        assert!(
            error.to_string().contains("trace cannot be stored as JSON"),
            "{error}"
        );
    }

    fn states(store: &SqliteStore) -> Vec<&'static str> {
        let Some(pool) = &store.shared.readers else {
            return Vec::new();
        };
        pool.slots
            .iter()
            .map(
                |slot| match *slot.lock().unwrap_or_else(|e| e.into_inner()) {
                    ReadSlot::Unopened => "unopened",
                    ReadSlot::Open(_) => "open",
                    ReadSlot::Closed => "closed",
                },
            )
            .collect()
    }

    /// How often `sql` was prepared again over one run per set of values in `bind`.
    fn reprepares(db: &Db<'_, '_>, sql: &str, bind: &[&[&str]]) -> i32 {
        let mut statement = db.conn().prepare_cached(sql).expect("prepare");
        for values in bind {
            let mut rows = statement
                .query(rusqlite::params_from_iter(values.iter()))
                .expect("query");
            while rows.next().expect("row").is_some() {}
        }
        statement.get_status(rusqlite::StatementStatus::RePrepare)
    }

    #[tokio::test]
    async fn cached_statements_are_not_prepared_again_when_other_values_are_bound() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(SqliteOptions::file(dir.path().join("st2.db")))
            .await
            .expect("open");
        store
            .shared
            .write(|db| {
                db.exec(
                    "INSERT INTO executions (id, revision, action_ref, status, parent, \
                     start_timestamp, doc) VALUES ('p', 1, 'core.noop', 'running', NULL, 1, '{}'), \
                     ('c1', 1, 'core.noop', 'running', 'p', 2, '{}'), \
                     ('c2', 1, 'core.noop', 'running', 'p', 3, '{}')",
                )
            })
            .await
            .expect("rows");
        let pool = Arc::clone(store.shared.readers.as_ref().expect("readers"));
        // A bound LIMIT made SQLite re-plan on every new value before the planner was told to
        // keep its plans; so did the children query on the engine's database (measured in
        // `st2d bench workflow`: a re-prepare per execution update), though not on this small
        // one.
        let (children, claims) = pool
            .run(|db| {
                Ok((
                    reprepares(
                        db,
                        "SELECT id FROM executions WHERE parent = ?1 ORDER BY seq",
                        &[&["p"], &["c1"], &["p"], &["c2"], &["x"]],
                    ),
                    reprepares(
                        db,
                        "SELECT id FROM work_items WHERE queue = ?1 AND state = 0 \
                         ORDER BY not_before, id LIMIT ?2",
                        &[
                            &["q", "1"],
                            &["q", "2"],
                            &["r", "3"],
                            &["q", "4"],
                            &["s", "5"],
                        ],
                    ),
                ))
            })
            .expect("read");
        assert_eq!((children, claims), (0, 0));
        store.close().await.expect("close");
    }

    #[tokio::test]
    async fn reads_one_at_a_time_use_the_first_connection_and_the_others_open_when_needed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteStore::open(SqliteOptions::file(dir.path().join("st2.db")).read_connections(3))
                .await
                .expect("open");
        assert_eq!(states(&store), ["open", "unopened", "unopened"]);
        for _ in 0..5 {
            assert!(
                store
                    .executions()
                    .get("missing")
                    .await
                    .expect("read")
                    .is_none()
            );
        }
        assert_eq!(states(&store), ["open", "unopened", "unopened"]);

        // While the first connection is busy, a read opens the second.
        let pool = Arc::clone(
            store
                .shared
                .readers
                .as_ref()
                .expect("a file store has readers"),
        );
        let busy = pool.slots[0].lock().expect("first slot");
        pool.run(|_| Ok(())).expect("read");
        drop(busy);
        assert_eq!(states(&store), ["open", "open", "unopened"]);

        store.close().await.expect("close");
        assert_eq!(states(&store), ["closed", "closed", "closed"]);
        match store.executions().get("missing").await {
            Err(StoreError::Unavailable(message)) => {
                assert!(message.contains("closed"), "{message}")
            }
            other => panic!("a closed store answered {other:?}"),
        }
    }

    /// The writer's kept statements: reused across jobs and batches with fresh bindings each
    /// time; one used again while in use further up the stack (the same SQL text) runs
    /// through the statement cache instead; a schema change in between re-prepares it.
    #[tokio::test]
    async fn kept_statements_are_reused_nested_and_survive_a_schema_change() {
        static INSERT: &str = "INSERT INTO t (k, v) VALUES (?1, ?2)";
        static COUNT: &str = "SELECT count(*), coalesce(sum(v), 0) FROM t WHERE k = ?1";
        let store = SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("open");
        store
            .shared
            .write(|db| db.exec("CREATE TABLE t (k TEXT, v INTEGER)"))
            .await
            .expect("table");
        for n in 0..5_i64 {
            store
                .shared
                .write(move |db| {
                    db.with_statement(INSERT, |s| s.execute(rusqlite::params!["a", n]))
                        .map_err(connection::sql_error)?;
                    Ok(())
                })
                .await
                .expect("insert");
        }
        let nested = store
            .shared
            .write(|db| {
                db.with_statement(COUNT, |outer| {
                    let (count, sum): (i64, i64) =
                        outer.query_row(["a"], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    // The same text again while `outer` is borrowed.
                    let inner: i64 =
                        db.with_statement(COUNT, |inner| inner.query_row(["b"], |r| r.get(0)))?;
                    Ok((count, sum, inner))
                })
                .map_err(connection::sql_error)
            })
            .await
            .expect("nested");
        assert_eq!(nested, (5, 10, 0));
        store
            .shared
            .write(|db| db.exec("ALTER TABLE t ADD COLUMN w INTEGER"))
            .await
            .expect("alter");
        let after: i64 = store
            .shared
            .write(|db| {
                db.with_statement(INSERT, |s| s.execute(rusqlite::params!["b", 7]))
                    .and_then(|_| {
                        db.with_statement(COUNT, |s| s.query_row(["b"], |r| r.get::<_, i64>(1)))
                    })
                    .map_err(connection::sql_error)
            })
            .await
            .expect("after the change");
        assert_eq!(after, 7_i64);
        store.close().await.expect("close");
    }

    #[tokio::test]
    async fn jobs_sharing_a_savepoint_fail_alone_and_the_others_write_once() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let store = Arc::new(
            SqliteStore::open(SqliteOptions::memory())
                .await
                .expect("open"),
        );
        store
            .shared
            .write(|db| db.exec("CREATE TABLE t (job INTEGER, k INTEGER)"))
            .await
            .expect("table");
        // Hold the writer so that every job below lands in one batch.
        let holding = Arc::new(AtomicBool::new(false));
        let hold = {
            let (store, holding) = (Arc::clone(&store), Arc::clone(&holding));
            tokio::spawn(async move {
                store
                    .shared
                    .write(move |_| {
                        holding.store(true, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        Ok(())
                    })
                    .await
            })
        };
        while !holding.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let failing = [5, 9];
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..13).map(|_| AtomicUsize::new(0)).collect());
        let mut tasks = Vec::new();
        for job in 1..=12_i64 {
            let (store, runs) = (Arc::clone(&store), Arc::clone(&runs));
            let fails = failing.contains(&job);
            tasks.push(tokio::spawn(async move {
                let insert = move |db: &Db<'_, '_>, k: i64| {
                    db.conn()
                        .execute("INSERT INTO t (job, k) VALUES (?1, ?2)", [job, k])
                        .map(|_| ())
                        .map_err(connection::sql_error)
                };
                if job == 7 {
                    // One that cannot run again, between two groups.
                    return store
                        .shared
                        .write(move |db| {
                            runs[7].fetch_add(1, Ordering::SeqCst);
                            insert(db, 1)?;
                            insert(db, 2)
                        })
                        .await;
                }
                store
                    .shared
                    .write_repeatable(move |db| {
                        runs[usize::try_from(job).expect("small")].fetch_add(1, Ordering::SeqCst);
                        insert(db, 1)?;
                        if fails {
                            return Err(StoreError::Invalid(format!("job {job} fails")));
                        }
                        insert(db, 2)
                    })
                    .await
            }));
        }
        hold.await.expect("task").expect("hold");
        for (n, task) in tasks.into_iter().enumerate() {
            let job = n + 1;
            let outcome = task.await.expect("task");
            if failing.contains(&(job as i64)) {
                assert!(
                    matches!(&outcome, Err(StoreError::Invalid(m)) if m == &format!("job {job} fails")),
                    "{job}: {outcome:?}"
                );
            } else {
                assert!(outcome.is_ok(), "{job}: {outcome:?}");
            }
        }
        let rows: Vec<(i64, i64)> = store
            .shared
            .read(|db| {
                let mut s = db
                    .conn()
                    .prepare("SELECT job, count(*) FROM t GROUP BY job ORDER BY job")
                    .map_err(connection::sql_error)?;
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(Iterator::collect)
                    .map_err(connection::sql_error)
            })
            .await
            .expect("rows");
        let want: Vec<(i64, i64)> = (1..=12)
            .filter(|j| !failing.contains(j))
            .map(|j| (j, 2))
            .collect();
        assert_eq!(rows, want, "each job's rows once, none of a failed one");
        // The jobs grouped before a failing one ran twice: undone with the group, then alone.
        // Job 7 (which cannot run again) ran after all the others: 1 to 4 opened the
        // transaction (undone with it when 5 failed), 6, 8 and 9 formed the next group.
        let runs: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
        assert_eq!(runs[1..], [2, 2, 2, 2, 1, 2, 1, 2, 1, 1, 1, 1]);
    }
}
