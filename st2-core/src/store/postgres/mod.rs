//! The PostgreSQL store: several st2 nodes sharing one database.
//!
//! ```no_run
//! # async fn demo() -> Result<(), st2_core::store::StoreError> {
//! use st2_core::store::Store;
//! use st2_core::store::postgres::{PgOptions, PgStore};
//!
//! let store = PgStore::connect(PgOptions::new("postgres://st2@db.internal/st2")).await?;
//! let running = store.executions().get("5f0c0ffee0ddf00dcafe0001").await?;
//! # let _ = running; Ok(()) }
//! ```
//!
//! # Layout
//! - Every record keeps its whole document in a `json` column (`json` rather than `jsonb`, so the
//!   key order of payloads, parameters and results and any `\u0000` escape round-trip exactly, as
//!   they do in StackStorm's MongoDB), with real indexed columns next to it for every value a
//!   listing filters or sorts on. Timestamps are `bigint` microseconds since the epoch, the
//!   precision of the record types, so they round-trip exactly.
//! - The schema is created by numbered migrations (`st2-core/migrations/postgres/*.sql`, compiled
//!   in) applied at [`PgStore::connect`] inside one transaction holding an advisory lock, so
//!   several nodes may start at once; `schema_migrations` records the applied versions.
//! - Every "now" (lease expiry, TTLs, `not_before`) is the store's [`Clock`] passed to SQL as a
//!   parameter, never the server's `now()`, so tests drive time with a
//!   [`ManualClock`](crate::clock::ManualClock).
//! - The work queue claims with one `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)` statement;
//!   fences come from a sequence. After an enqueue or release commits, a background task
//!   `pg_notify`s a channel that a dedicated connection of every node `LISTEN`s to, so waiters
//!   on every node wake up.
//!
//! # Failures
//! SQLSTATEs map to [`StoreError`]: `unique_violation` → [`StoreError::Conflict`], `disk_full`
//! → [`StoreError::DiskFull`], a refused, closed or shut-down connection or a pool timeout →
//! [`StoreError::Unavailable`]. While the server is down calls fail with `Unavailable` (after
//! retrying to connect for [`PgOptions::acquire_timeout`]); they work again once it is back, as
//! the pool verifies every connection before handing it out and replaces broken ones.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{NoTls, Row};

use crate::clock::{Clock, SystemClock};

use super::{
    ApiKeyStore, ExecutionOutputStore, ExecutionStore, InquiryStore, KeyValueStore, Page,
    RuleEnforcementStore, SortOrder, Store, StoreError, StoreResult, Timestamp, TokenStore,
    TraceStore, TriggerInstanceStore, Wakeups, WorkQueue, WorkflowStore, to_micros,
};

mod auth;
mod batch;
mod events;
mod executions;
mod listen;
mod migrate;
mod queue;
mod workflows;

pub use migrate::LATEST_VERSION;

/// The longest schema name [`PgOptions::schema`] accepts (PostgreSQL allows 63 bytes; the
/// notification channel appends a prefix to it).
pub const MAX_SCHEMA_LEN: usize = 48;

/// How to reach the database.
///
/// Connections are plain TCP or Unix sockets without TLS (`NoTls`): fine on loopback, a Unix
/// socket or a private network. A URL asking for `sslmode=require` is refused by
/// [`PgStore::connect`] with [`StoreError::Invalid`] rather than silently connecting in clear
/// text; put a TLS-terminating proxy (or an SSH tunnel) in front of a remote server.
///
/// Its `Debug` output hides the password of the URL.
#[derive(Clone)]
pub struct PgOptions {
    url: String,
    clock: Arc<dyn Clock>,
    pool_size: usize,
    schema: Option<String>,
    acquire_timeout: Duration,
    connect_timeout: Duration,
}

impl PgOptions {
    /// Connect with a libpq-style URL or key-value string
    /// (`postgres://user@host:5432/db`, `host=/run/postgresql dbname=st2`), the system clock,
    /// 16 pooled connections and the server's default schema.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            clock: Arc::new(SystemClock),
            pool_size: 16,
            schema: None,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Use this clock for leases, expiry and TTLs.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Keep at most `n` pooled connections (at least 1; default 16). The wake-up listener uses
    /// one more.
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// Keep every table in this PostgreSQL schema (created if missing), through the
    /// `search_path` of every connection. The name must be a plain lower-case identifier
    /// (`[a-z_][a-z0-9_]*`, at most [`MAX_SCHEMA_LEN`] bytes). Tests use it to isolate themselves
    /// in a throwaway schema.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = Some(name.into());
        self
    }

    /// How long a call keeps retrying to get a working connection (server down, restarting,
    /// every pooled connection busy) before failing with [`StoreError::Unavailable`]. Default 5 s.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// How long one attempt to open a connection may take. Default 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// The schema [`PgStore::drop_schema`] may drop: a configured one that is neither `public` nor a
/// system schema.
fn droppable(schema: Option<&str>) -> StoreResult<&str> {
    let Some(schema) = schema else {
        return Err(StoreError::Invalid(
            "drop_schema: this store uses the server's default schema; refusing to drop it".into(),
        ));
    };
    if schema == "public" || schema == "information_schema" || schema.starts_with("pg_") {
        return Err(StoreError::Invalid(format!(
            "drop_schema: refusing to drop the {schema:?} schema"
        )));
    }
    if !valid_schema_name(schema) {
        return Err(StoreError::Invalid(format!(
            "drop_schema: bad name {schema:?}"
        )));
    }
    Ok(schema)
}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &redact(&self.url))
            .field("clock", &self.clock)
            .field("pool_size", &self.pool_size)
            .field("schema", &self.schema)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// A connection string with its password replaced by `***` (URL user info, a `password=` query
/// parameter or key-value pair).
fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@') {
            let userinfo = &out[rest..rest + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    let mut from = 0;
    while let Some(i) = out[from..].find("password=") {
        let start = from + i + "password=".len();
        let end = out[start..]
            .find(['&', ' '])
            .map_or(out.len(), |j| start + j);
        out.replace_range(start..end, "***");
        from = start + 3;
    }
    out
}

fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= MAX_SCHEMA_LEN
}

/// A store over PostgreSQL. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    clock: Arc<dyn Clock>,
    schema: Option<String>,
    channel: String,
    acquire_timeout: Duration,
    wakeups: Wakeups,
    /// Queues someone waited on: after the listener reconnects it wakes them all, since
    /// notifications sent while it was away are lost.
    waited: Arc<Mutex<HashSet<String>>>,
    listening: Arc<AtomicBool>,
    /// Queue names to `pg_notify` (see `listen::spawn_notifier`).
    notifier: tokio::sync::mpsc::UnboundedSender<String>,
    /// The listener and notifier tasks, aborted at shutdown.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.abort();
        }
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.inner.schema)
            .field("pool", &self.inner.pool.status())
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connect, create the schema if asked, apply pending migrations and start the wake-up
    /// listener. Must run inside a Tokio runtime (the pool and the listener spawn tasks on it).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a malformed URL, a bad schema name or `sslmode=require`;
    /// [`StoreError::Unavailable`] when the server cannot be reached within the acquire timeout;
    /// [`StoreError::SchemaTooNew`] when the database was migrated by a newer build.
    pub async fn connect(options: PgOptions) -> StoreResult<PgStore> {
        let mut config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("PostgreSQL connection string: {e}")))?;
        if matches!(config.get_ssl_mode(), SslMode::Require) {
            return Err(StoreError::Invalid(
                "the PostgreSQL URL asks for sslmode=require, but this build connects without \
                 TLS; use sslmode=disable or prefer over a trusted network, or a TLS proxy"
                    .into(),
            ));
        }
        if let Some(schema) = &options.schema
            && !valid_schema_name(schema)
        {
            return Err(StoreError::Invalid(format!(
                "schema name {schema:?}: use [a-z_][a-z0-9_]*, at most {MAX_SCHEMA_LEN} bytes"
            )));
        }
        if let Some(schema) = &options.schema {
            let mut server_options = config.get_options().unwrap_or_default().to_owned();
            if !server_options.is_empty() {
                server_options.push(' ');
            }
            server_options.push_str(&format!("-c search_path={schema}"));
            config.options(server_options);
        }
        if config.get_application_name().is_none() {
            config.application_name("st2-rs");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // Hand out a pooled connection only if its socket is still open: after a server
                // restart or `pg_terminate_backend` the closed ones are dropped and replaced.
                // (A test query per checkout, `Verified`, would cost a round trip per call.)
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Backend(format!("building the connection pool: {e}")))?;
        let channel = match &options.schema {
            Some(schema) => format!("st2_work_{schema}"),
            None => "st2_work".to_owned(),
        };
        let (notifier, notifier_task) = listen::spawn_notifier(pool.clone(), channel.clone());
        let inner = Arc::new(Inner {
            pool,
            clock: options.clock,
            schema: options.schema,
            channel,
            acquire_timeout: options.acquire_timeout,
            wakeups: Wakeups::new(),
            waited: Arc::default(),
            listening: Arc::default(),
            notifier,
            tasks: Mutex::new(vec![notifier_task]),
            closed: AtomicBool::new(false),
        });
        let store = PgStore { inner };
        {
            let mut client = store.client().await?;
            migrate::migrate(&mut client, store.inner.schema.as_deref()).await?;
        }
        let mut listen_config = config;
        listen_config.keepalives_idle(Duration::from_secs(30));
        let handle = listen::spawn(
            listen_config,
            store.inner.channel.clone(),
            store.inner.wakeups.clone(),
            store.inner.waited.clone(),
            store.inner.listening.clone(),
        );
        store
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
        Ok(store)
    }

    /// The schema this store keeps its tables in, when one was configured.
    pub fn schema_name(&self) -> Option<&str> {
        self.inner.schema.as_deref()
    }

    /// Whether the wake-up listener is currently connected and listening (it reconnects with
    /// back-off after losing its connection). Wake-ups from other nodes arrive only while it is.
    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::SeqCst)
    }

    /// The newest migration version applied to the database.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn schema_version(&self) -> StoreResult<i64> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(pg_error)?;
        get(&row, 0)
    }

    /// Drop this store's schema with everything in it, then close the store. For tests that
    /// isolate themselves in a throwaway schema ([`PgOptions::schema`]).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] when no schema was configured or it is `public` or a system schema
    /// (`pg_*`, `information_schema`): those are never dropped. Backend errors otherwise.
    pub async fn drop_schema(&self) -> StoreResult<()> {
        let schema = droppable(self.inner.schema.as_deref())?;
        let client = self.client().await?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await
            .map_err(pg_error)?;
        drop(client);
        self.shutdown();
        Ok(())
    }

    fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.pool.close();
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.abort();
        }
        self.inner.listening.store(false, Ordering::SeqCst);
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn now_micros(&self) -> i64 {
        to_micros(self.now())
    }

    /// A pooled, verified connection, retrying with short back-off for at most the acquire
    /// timeout while the server cannot be reached.
    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        let deadline = tokio::time::Instant::now() + self.inner.acquire_timeout;
        let mut delay = Duration::from_millis(25);
        loop {
            let error = match self.inner.pool.get().await {
                Ok(client) => return Ok(client),
                Err(PoolError::Closed) => {
                    return Err(StoreError::Unavailable("the store is closed".into()));
                }
                Err(PoolError::Timeout(kind)) => StoreError::Unavailable(format!(
                    "no database connection available ({kind:?} timeout)"
                )),
                Err(PoolError::Backend(e)) => pg_error(e),
                Err(PoolError::PostCreateHook(e)) => StoreError::Unavailable(e.to_string()),
                Err(PoolError::NoRuntimeSpecified) => {
                    return Err(StoreError::Backend("the pool has no runtime".into()));
                }
            };
            if !error.is_transient() || tokio::time::Instant::now() + delay > deadline {
                return Err(error);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// Run a page query and its count query, pipelined on one connection (a page of
    /// everything is its own count).
    async fn page(
        &self,
        select: &str,
        table: &str,
        order: &str,
        mut params: Params,
        page: Page,
    ) -> StoreResult<(Vec<Row>, u64)> {
        let from_where = params.table_where(table);
        let count_sql = format!("SELECT count(*) FROM {from_where}");
        let count_params = params.len();
        let limit = params.bind(page.limit.map(clamp_i64));
        let offset = params.bind(clamp_i64(page.offset));
        let page_sql = format!(
            "SELECT {select} FROM {from_where} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
        );
        let client = self.client().await?;
        let refs = params.refs();
        if page.limit.is_none() && page.offset == 0 {
            let statement = client.prepare_cached(&page_sql).await.map_err(pg_error)?;
            let rows = client.query(&statement, &refs).await.map_err(pg_error)?;
            let total = rows.len() as u64;
            return Ok((rows, total));
        }
        let (count, rows) = tokio::try_join!(
            async {
                let statement = client.prepare_cached(&count_sql).await?;
                client.query_one(&statement, &refs[..count_params]).await
            },
            async {
                let statement = client.prepare_cached(&page_sql).await?;
                client.query(&statement, &refs).await
            }
        )
        .map_err(pg_error)?;
        let total: i64 = get(&count, 0)?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }
}

/// Query parameters built up alongside a dynamic `WHERE` clause.
#[derive(Default)]
struct Params {
    values: Vec<Box<dyn ToSql + Sync + Send>>,
    conditions: Vec<String>,
}

impl Params {
    /// Add a parameter; returns its placeholder (`$n`).
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    /// Add a condition (ANDed).
    fn and(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// `column = value` when a value is given.
    fn eq(&mut self, column: &str, value: Option<&String>) {
        if let Some(value) = value {
            let n = self.bind(value.clone());
            self.and(format!("{column} = {n}"));
        }
    }

    /// `column = ANY(values)` when the list is not empty.
    fn any_of(&mut self, column: &str, values: &[String]) {
        if !values.is_empty() {
            let n = self.bind(values.to_vec());
            self.and(format!("{column} = ANY({n})"));
        }
    }

    /// `column > t` and `column < t` (microseconds) for the bounds given.
    fn between(&mut self, column: &str, after: Option<Timestamp>, before: Option<Timestamp>) {
        if let Some(t) = after {
            let n = self.bind(to_micros(t));
            self.and(format!("{column} > {n}"));
        }
        if let Some(t) = before {
            let n = self.bind(to_micros(t));
            self.and(format!("{column} < {n}"));
        }
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    /// `table WHERE …` (or just `table`).
    fn table_where(&self, table: &str) -> String {
        if self.conditions.is_empty() {
            table.to_owned()
        } else {
            format!("{table} WHERE {}", self.conditions.join(" AND "))
        }
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| &**v as &(dyn ToSql + Sync))
            .collect()
    }
}

/// `ASC` or `DESC`.
fn direction(sort: SortOrder) -> &'static str {
    match sort {
        SortOrder::Ascending => "ASC",
        SortOrder::Descending => "DESC",
    }
}

/// A `u64` as a PostgreSQL `bigint`, saturating.
fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `bigint` count or sequence number as `u64` (never negative here; 0 if it were).
fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Refuse a zero batch size.
fn batch_limit(batch: u64) -> StoreResult<i64> {
    if batch == 0 {
        return Err(StoreError::Invalid("batch size must be at least 1".into()));
    }
    Ok(clamp_i64(batch))
}

/// A record serialised for a `json` column.
fn json<T: Serialize>(value: &T) -> Json<&T> {
    Json(value)
}

/// One column of a row.
/// Why a compare-and-set update of `what` `id` in `table` (expecting revision `expected`)
/// changed nothing: the row is gone ([`StoreError::NotFound`]) or its revision moved
/// ([`StoreError::Conflict`]).
async fn lost_update(
    client: &impl deadpool_postgres::GenericClient,
    table: &str,
    what: &'static str,
    id: &str,
    expected: u64,
) -> StoreError {
    let sql = format!("SELECT revision FROM {table} WHERE id = $1");
    let row = match client.query_opt(&sql, &[&id]).await {
        Ok(row) => row,
        Err(e) => return pg_error(e),
    };
    match row {
        None => StoreError::NotFound {
            what,
            id: id.to_owned(),
        },
        Some(row) => match get::<i64>(&row, 0) {
            Ok(stored) => StoreError::Conflict {
                what,
                id: id.to_owned(),
                reason: format!("stale revision {expected} (stored revision is {stored})"),
            },
            Err(e) => e,
        },
    }
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx)
        .map_err(|e| StoreError::Corrupt(format!("reading column {idx}: {e}")))
}

/// A stored document.
fn doc<T: DeserializeOwned>(row: &Row, idx: usize, what: &str) -> StoreResult<T> {
    row.try_get::<_, Json<T>>(idx)
        .map(|Json(v)| v)
        .map_err(|e| StoreError::Corrupt(format!("a stored {what} does not parse: {e}")))
}

/// Map a PostgreSQL error with no record context.
fn pg_error(error: tokio_postgres::Error) -> StoreError {
    pg_error_for(error, "record", "")
}

/// Map a PostgreSQL error; `what` and `id` name the record for conflicts.
fn pg_error_for(error: tokio_postgres::Error, what: &'static str, id: &str) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        let message = db.message().to_owned();
        if *code == SqlState::UNIQUE_VIOLATION {
            let reason = match (db.constraint(), db.detail()) {
                (_, Some(detail)) => format!("already exists ({detail})"),
                (Some(constraint), None) => format!("violates {constraint}"),
                (None, None) => "already exists".to_owned(),
            };
            return StoreError::Conflict {
                what,
                id: id.to_owned(),
                reason,
            };
        }
        if *code == SqlState::DISK_FULL
            || *code == SqlState::OUT_OF_MEMORY
            || *code == SqlState::INSUFFICIENT_RESOURCES
        {
            return StoreError::DiskFull(message);
        }
        let sqlstate = code.code();
        if sqlstate.starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::QUERY_CANCELED
            || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        {
            return StoreError::Unavailable(format!("{message} (SQLSTATE {sqlstate})"));
        }
        if sqlstate.starts_with("22") {
            // Data exceptions: a NUL character in a text value, a number out of range, …
            return StoreError::Invalid(format!("{message} (SQLSTATE {sqlstate})"));
        }
        return StoreError::Backend(format!("{message} (SQLSTATE {sqlstate})"));
    }
    if error.is_closed() {
        return StoreError::Unavailable("the connection to PostgreSQL was closed".into());
    }
    let text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return StoreError::Unavailable(format!("{text}: {cause}"));
        }
        source = cause.source();
    }
    if text.contains("timeout") || text.contains("connecting") {
        return StoreError::Unavailable(text);
    }
    StoreError::Backend(text)
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    fn trigger_instances(&self) -> &dyn TriggerInstanceStore {
        self
    }

    fn executions(&self) -> &dyn ExecutionStore {
        self
    }

    fn execution_output(&self) -> &dyn ExecutionOutputStore {
        self
    }

    fn rule_enforcements(&self) -> &dyn RuleEnforcementStore {
        self
    }

    fn key_values(&self) -> &dyn KeyValueStore {
        self
    }

    fn tokens(&self) -> &dyn TokenStore {
        self
    }

    fn api_keys(&self) -> &dyn ApiKeyStore {
        self
    }

    fn workflows(&self) -> &dyn WorkflowStore {
        self
    }

    fn inquiries(&self) -> &dyn InquiryStore {
        self
    }

    fn traces(&self) -> &dyn TraceStore {
        self
    }

    fn queue(&self) -> &dyn WorkQueue {
        self
    }

    async fn write_batch(
        &self,
        writes: Vec<super::BatchWrite>,
    ) -> StoreResult<Vec<super::BatchWritten>> {
        self.write_all(writes).await
    }

    async fn close(&self) -> StoreResult<()> {
        // Every write commits before it is acknowledged: nothing to flush.
        self.shutdown();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        assert!(valid_schema_name("st2"));
        assert!(valid_schema_name("_t_01"));
        assert!(!valid_schema_name(""));
        assert!(!valid_schema_name("1abc"));
        assert!(!valid_schema_name("Abc"));
        assert!(!valid_schema_name("a\"b"));
        assert!(!valid_schema_name("a b"));
        assert!(!valid_schema_name(&"a".repeat(MAX_SCHEMA_LEN + 1)));
    }

    #[test]
    fn debug_hides_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact("postgres://u@h/db?password=secret&x=1"),
            "postgres://u@h/db?password=***&x=1"
        );
        assert_eq!(
            redact("host=h password=secret dbname=d"),
            "host=h password=*** dbname=d"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        let shown = format!("{:?}", PgOptions::new("postgres://u:hunter2@h/db"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn never_drops_public_or_system_schemas() {
        for bad in [
            None,
            Some("public"),
            Some("pg_catalog"),
            Some("pg_temp"),
            Some("information_schema"),
        ] {
            assert!(
                matches!(droppable(bad), Err(StoreError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert_eq!(droppable(Some("st2t_x")).ok(), Some("st2t_x"));
    }

    #[tokio::test]
    async fn refuses_sslmode_require_and_bad_schema() {
        let err = PgStore::connect(PgOptions::new(
            "postgres://u@127.0.0.1:1/db?sslmode=require",
        ))
        .await
        .err();
        assert!(matches!(err, Some(StoreError::Invalid(_))), "{err:?}");
        let err = PgStore::connect(PgOptions::new("postgres://u@127.0.0.1:1/db").schema("x;y"))
            .await
            .err();
        assert!(matches!(err, Some(StoreError::Invalid(_))), "{err:?}");
        let err = PgStore::connect(PgOptions::new("postgres://u@127.0.0.1:1/db?x=%"))
            .await
            .err();
        assert!(err.is_some());
    }

    /// Raise each SQLSTATE on the server and check what it maps to.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlstates_map_to_store_errors() {
        let Ok(url) = std::env::var("ST2_TEST_PG_URL") else {
            eprintln!("ST2_TEST_PG_URL is not set: skipping");
            return;
        };
        let schema = format!("st2t_{}", crate::store::new_id());
        let store = PgStore::connect(PgOptions::new(url).schema(schema.as_str()).pool_size(2))
            .await
            .expect("connect");
        let client = store.client().await.expect("client");
        for (sqlstate, check) in [
            (
                "23505",
                (|e| matches!(e, StoreError::Conflict { .. })) as fn(&StoreError) -> bool,
            ),
            ("53100", |e| matches!(e, StoreError::DiskFull(_))),
            ("57P01", |e| matches!(e, StoreError::Unavailable(_))),
            ("57P03", |e| matches!(e, StoreError::Unavailable(_))),
            ("08006", |e| matches!(e, StoreError::Unavailable(_))),
            ("40001", |e| matches!(e, StoreError::Unavailable(_))),
            ("22021", |e| matches!(e, StoreError::Invalid(_))),
            ("XX000", |e| matches!(e, StoreError::Backend(_))),
        ] {
            let sql = format!(
                "DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{sqlstate}'; END $$"
            );
            let error = client.batch_execute(&sql).await.expect_err("raised");
            let mapped = pg_error_for(error, "thing", "id1");
            assert!(check(&mapped), "{sqlstate} mapped to {mapped:?}");
        }
        drop(client);
        store.drop_schema().await.expect("drop");
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        let started = std::time::Instant::now();
        let err = PgStore::connect(
            PgOptions::new("postgres://u@127.0.0.1:1/db")
                .acquire_timeout(Duration::from_millis(300)),
        )
        .await
        .err();
        assert!(matches!(err, Some(StoreError::Unavailable(_))), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
