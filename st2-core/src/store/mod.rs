//! The store: everything persisted, one trait per aggregate, and the leased work queue.
//!
//! Two backends implement every trait here and pass the same conformance suite
//! (`st2-core/tests/store_conformance.rs`): [`sqlite::SqliteStore`], embedded, the default; and
//! `postgres::PgStore` (cargo feature `postgres`), for several nodes sharing one database.
//! A [`Store`] hands out each aggregate's trait object:
//!
//! ```no_run
//! # async fn demo() -> Result<(), st2_core::store::StoreError> {
//! use st2_core::store::{Store, sqlite::{SqliteOptions, SqliteStore}};
//!
//! let store = SqliteStore::open(SqliteOptions::memory()).await?;
//! let running = store.executions().get("5f0c0ffee0ddf00dcafe0001").await?;
//! # let _ = running; Ok(()) }
//! ```
//!
//! Records use StackStorm's field names ([`records`]); the secret values of the datastore reach
//! the store already encrypted ([`crate::datastore`] does that).

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use serde_json::Value;

use crate::clock::Clock;

pub mod batch;
pub mod copy;
pub mod json;
pub mod open;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod queue;
pub mod records;
pub mod retention;
pub(crate) mod rfc3339;
mod snapshot;
pub mod sqlite;

pub use batch::{BatchWrite, BatchWritten};
pub use queue::{
    ClaimRequest, Lease, LeaseRef, NewWorkItem, QueueDepth, Wakeups, WorkItem, WorkQueue,
};
pub use records::*;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such record.
    #[error("{what} {id:?} not found")]
    NotFound {
        /// The aggregate (`execution`, `key`, …).
        what: &'static str,
        /// The id or name asked for.
        id: String,
    },
    /// A write lost a race: a duplicate id or unique key, a stale revision, a status that moved.
    #[error("{what} {id:?}: {reason}")]
    Conflict {
        /// The aggregate.
        what: &'static str,
        /// The id or name.
        id: String,
        /// What conflicted.
        reason: String,
    },
    /// A lease is no longer held by the caller: expired, reaped, finished or claimed again.
    #[error("lease on work item {item_id} with fence {fence} is no longer held")]
    LeaseLost {
        /// The item.
        item_id: i64,
        /// The stale fence.
        fence: i64,
    },
    /// The request itself is wrong (an unknown status string, a zero batch size, …).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The database was written by a newer version of this software.
    #[error(
        "the database schema is version {found}, newer than the newest this build knows ({supported}); \
         upgrade st2d or point it at another database"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The database file is damaged or not a database.
    #[error("the database is corrupt or not a database: {0}")]
    Corrupt(String),
    /// The disk (or the database's size limit) is full; the write was not committed.
    #[error("the disk is full; the write was not committed: {0}")]
    DiskFull(String),
    /// The database cannot be reached or opened right now (a path that cannot be written, a
    /// connection refused or lost). The operation did not happen (or, for a lost connection
    /// during commit, its outcome is unknown and the caller must re-read).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure.
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether retrying later may succeed (the database was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A short alias for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A new 24-hex-digit id: 4 bytes of seconds (as in a MongoDB ObjectId, so ids look like
/// StackStorm's and sort by creation time), a 3-byte counter, then 5 random bytes fixed per
/// process (which keep ids of different processes apart).
///
/// The counter comes before the process bytes (an ObjectId has them the other way round) so
/// that ids made in the same second also sort in the order they were made. With the ids
/// derived from them ([`derived_id`](crate::engine::snapshot::derived_id)), which keep this
/// prefix, every new row then lands at the end of each index on ids instead of at a random
/// place in its second's range, and a commit of many rows changes a few index pages instead
/// of one per row.
pub fn new_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    static PROCESS: std::sync::OnceLock<[u8; 5]> = std::sync::OnceLock::new();
    let process = PROCESS.get_or_init(|| {
        let mut bytes = [0u8; 5];
        // Without OS randomness, fall back to the pid and time: ids stay unique per process.
        if getrandom::fill(&mut bytes).is_err() {
            let seed = u64::from(std::process::id())
                ^ chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64;
            bytes.copy_from_slice(&seed.to_be_bytes()[3..]);
        }
        bytes
    });
    let secs = chrono::Utc::now().timestamp() as u32;
    let count = COUNTER.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..7].copy_from_slice(&count.to_be_bytes()[1..]);
    bytes[7..].copy_from_slice(process);
    let mut out = String::with_capacity(24);
    push_hex(&mut out, &bytes);
    out
}

/// Append `bytes` to `out` as lowercase hex.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Trigger instances.
///
/// # Contract
/// `create` stores a new instance (its id must be new); `set_status` moves it; listings filter,
/// sort by occurrence time (ties by id) and count as [`TriggerInstanceFilter`] says.
///
/// # Errors
/// [`StoreError::Conflict`] for a duplicate id, [`StoreError::NotFound`] for an unknown id.
#[async_trait]
pub trait TriggerInstanceStore: Send + Sync {
    /// Store a new trigger instance.
    async fn create(&self, instance: &TriggerInstanceRecord) -> StoreResult<()>;
    /// One trigger instance.
    async fn get(&self, id: &str) -> StoreResult<Option<TriggerInstanceRecord>>;
    /// Set its status.
    async fn set_status(&self, id: &str, status: TriggerInstanceStatus) -> StoreResult<()>;
    /// A page of matching instances and their total count.
    async fn list(
        &self,
        filter: &TriggerInstanceFilter,
        page: Page,
    ) -> StoreResult<Listing<TriggerInstanceRecord>>;
    /// Delete up to `batch` instances that occurred before `cutoff`; returns how many.
    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64>;
}

/// Executions.
///
/// # Contract
/// - `create` stores a new record with revision 1 and returns it (with `children` empty). A
///   record naming a `parent` appears in that parent's `children` from then on.
/// - `update` replaces the record only if the stored revision equals `record.revision`; the
///   stored and returned record has revision + 1. `children` is derived, never written.
/// - `get` and `list` fill `children` in creation order.
/// - `list` sorts by `start_timestamp` (ties by id, in the same direction).
/// - `purge_before` deletes completed executions (succeeded, failed, timeout, canceled,
///   abandoned) whose start and end are both before `cutoff`, with their output.
///
/// # Errors
/// [`StoreError::Conflict`] for a duplicate id or a stale revision, [`StoreError::NotFound`] when
/// updating an unknown id.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Store a new execution.
    async fn create(&self, record: &ExecutionRecord) -> StoreResult<ExecutionRecord>;
    /// Store many new executions in one write (all or none).
    async fn create_many(&self, records: &[ExecutionRecord]) -> StoreResult<()>;
    /// One execution.
    async fn get(&self, id: &str) -> StoreResult<Option<ExecutionRecord>>;
    /// One execution with `children` left empty: cheaper than [`ExecutionStore::get`] for a
    /// workflow, whose record lists every child (the engine reads a parent this way for each
    /// child it starts). The default reads it whole and drops the children.
    async fn get_without_children(&self, id: &str) -> StoreResult<Option<ExecutionRecord>> {
        Ok(self.get(id).await?.map(|mut r| {
            r.children.clear();
            r
        }))
    }
    /// Replace an execution, compare-and-set on its revision.
    async fn update(&self, record: &ExecutionRecord) -> StoreResult<ExecutionRecord>;
    /// A page of matching executions and their total count.
    async fn list(
        &self,
        filter: &ExecutionFilter,
        page: Page,
    ) -> StoreResult<Listing<ExecutionRecord>>;
    /// Delete up to `batch` completed executions older than `cutoff`; returns how many.
    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64>;
}

/// Execution output, appended while an execution runs.
///
/// # Contract
/// Appended chunks get increasing `seq` numbers; `list` returns an execution's chunks in `seq`
/// order, only those after `after_seq` when given, only one stream when `output_type` is given.
///
/// # Errors
/// Backend errors only.
#[async_trait]
pub trait ExecutionOutputStore: Send + Sync {
    /// Append chunks in order.
    async fn append(&self, chunks: &[NewOutput]) -> StoreResult<()>;
    /// An execution's chunks.
    async fn list(
        &self,
        execution_id: &str,
        output_type: Option<OutputType>,
        after_seq: Option<u64>,
    ) -> StoreResult<Vec<OutputChunk>>;
    /// Delete up to `batch` chunks produced before `cutoff`; returns how many.
    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64>;
}

/// Rule enforcements.
///
/// # Contract
/// As [`TriggerInstanceStore`], sorted by `enforced_at`. `set_execution` records the execution
/// an enforcement started once it exists.
///
/// # Errors
/// [`StoreError::Conflict`] for a duplicate id, [`StoreError::NotFound`] for an unknown id.
#[async_trait]
pub trait RuleEnforcementStore: Send + Sync {
    /// Store a new enforcement.
    async fn create(&self, record: &RuleEnforcementRecord) -> StoreResult<()>;
    /// One enforcement.
    async fn get(&self, id: &str) -> StoreResult<Option<RuleEnforcementRecord>>;
    /// Record the execution the enforcement started.
    async fn set_execution(&self, id: &str, execution_id: &str) -> StoreResult<()>;
    /// A page of matching enforcements and their total count.
    async fn list(
        &self,
        filter: &RuleEnforcementFilter,
        page: Page,
    ) -> StoreResult<Listing<RuleEnforcementRecord>>;
    /// Delete up to `batch` enforcements made before `cutoff`; returns how many.
    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64>;
}

/// Key-value pairs (the datastore's storage; [`crate::datastore::Datastore`] adds encryption).
///
/// # Contract
/// - Unique on (scope, name). `put` creates or replaces and returns the previous pair (expired
///   ones count as absent); a replaced pair keeps its id.
/// - Pairs whose `expire_timestamp` is not after the store clock's now read as absent
///   everywhere and may be deleted at any time.
/// - `list` filters by scope (all scopes when `None`) and by a plain `starts_with` on the stored
///   name, sorted by scope (system first) then name.
///
/// # Errors
/// Backend errors only.
#[async_trait]
pub trait KeyValueStore: Send + Sync {
    /// Create or replace a pair; returns the one replaced.
    async fn put(&self, pair: &KeyValueRecord) -> StoreResult<Option<KeyValueRecord>>;
    /// One pair.
    async fn get(&self, scope: KeyScope, name: &str) -> StoreResult<Option<KeyValueRecord>>;
    /// A page of pairs and the total count.
    async fn list(
        &self,
        scope: Option<KeyScope>,
        prefix: Option<&str>,
        page: Page,
    ) -> StoreResult<Listing<KeyValueRecord>>;
    /// Delete a pair; returns it, `None` if it did not exist.
    async fn delete(&self, scope: KeyScope, name: &str) -> StoreResult<Option<KeyValueRecord>>;
    /// Delete up to `batch` expired pairs; returns how many.
    async fn purge_expired(&self, batch: u64) -> StoreResult<u64>;
}

/// Authentication tokens, looked up by hash.
///
/// # Contract
/// `get_by_hash` returns only unexpired tokens (by the store clock).
///
/// # Errors
/// [`StoreError::Conflict`] for a duplicate id or hash.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Store a token.
    async fn create(&self, token: &TokenRecord) -> StoreResult<()>;
    /// The token with this hash, expired or not until [`TokenStore::purge_expired`] removes
    /// it (so a caller can be told the token expired rather than that it is unknown).
    async fn get_by_hash(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>>;
    /// Delete a token by hash; returns whether it existed.
    async fn delete_by_hash(&self, token_hash: &str) -> StoreResult<bool>;
    /// Delete up to `batch` expired tokens; returns how many.
    async fn purge_expired(&self, batch: u64) -> StoreResult<u64>;
}

/// API keys, looked up by id or hash.
///
/// # Contract
/// `list` sorts by creation time, oldest first.
///
/// # Errors
/// [`StoreError::Conflict`] for a duplicate id or hash, [`StoreError::NotFound`] for an unknown id.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Store a key.
    async fn create(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// One key by id.
    async fn get(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// One key by hash.
    async fn get_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// A page of keys and the total count.
    async fn list(&self, page: Page) -> StoreResult<Listing<ApiKeyRecord>>;
    /// Enable or disable a key.
    async fn set_enabled(&self, id: &str, enabled: bool) -> StoreResult<()>;
    /// Delete a key; returns whether it existed.
    async fn delete(&self, id: &str) -> StoreResult<bool>;
}

/// One named part of a workflow's state, stored apart from the record so that a save writes
/// only the parts that changed (see [`WorkflowStore::save`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePart {
    /// The part's name, unique within its workflow.
    pub key: String,
    /// Its JSON text, stored as given; `None` removes the part.
    pub doc: Option<String>,
}

/// Workflow state: the conductor's state per workflow execution plus task records.
///
/// # Contract
/// `create` stores revision 1; `update` is compare-and-set on the revision, as for executions.
/// `put_task` creates or replaces a task by id. `list_tasks` returns a workflow's tasks in
/// creation order. `save` is `update`, the parts' replacements and removals and `put_task` of
/// each task as one transaction: all land or none. `list_parts` returns a workflow's parts in
/// key order. `delete` removes a workflow, its tasks and its parts.
///
/// # Errors
/// [`StoreError::Conflict`] for a duplicate id or a stale revision, [`StoreError::NotFound`] when
/// updating an unknown workflow.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Store a new workflow execution.
    async fn create(&self, record: &WorkflowRecord) -> StoreResult<WorkflowRecord>;
    /// One workflow execution.
    async fn get(&self, id: &str) -> StoreResult<Option<WorkflowRecord>>;
    /// The workflow execution run by an action execution (the newest, should it have
    /// several).
    async fn get_by_execution(&self, execution_id: &str) -> StoreResult<Option<WorkflowRecord>>;
    /// Replace, compare-and-set on the revision.
    async fn update(&self, record: &WorkflowRecord) -> StoreResult<WorkflowRecord>;
    /// Create or replace a task record.
    async fn put_task(&self, task: &TaskRecord) -> StoreResult<()>;
    /// One task record.
    async fn get_task(&self, id: &str) -> StoreResult<Option<TaskRecord>>;
    /// A workflow's task records.
    async fn list_tasks(&self, workflow_id: &str) -> StoreResult<Vec<TaskRecord>>;
    /// Replace the record (compare-and-set on the revision, as [`WorkflowStore::update`]),
    /// replace or remove its state `parts` and create or replace `tasks`, in one transaction.
    async fn save(
        &self,
        record: &WorkflowRecord,
        parts: &[StatePart],
        tasks: &[TaskRecord],
    ) -> StoreResult<WorkflowRecord>;
    /// A workflow's state parts, in key order (each with its text).
    async fn list_parts(&self, workflow_id: &str) -> StoreResult<Vec<StatePart>>;
    /// Delete a workflow, its tasks and its parts; returns whether it existed.
    async fn delete(&self, id: &str) -> StoreResult<bool>;
}

/// Inquiries.
///
/// # Contract
/// `resolve` moves an inquiry out of `pending` exactly once: it sets the status, the response
/// and `resolved_at` only if the stored status is `pending`, and returns the updated record.
/// `list` sorts by creation time, newest first.
///
/// # Errors
/// [`StoreError::Conflict`] when `resolve` finds it no longer pending (the conflict's reason
/// names the status), [`StoreError::NotFound`] for an unknown id.
#[async_trait]
pub trait InquiryStore: Send + Sync {
    /// Store a new inquiry.
    async fn create(&self, record: &InquiryRecord) -> StoreResult<()>;
    /// One inquiry.
    async fn get(&self, id: &str) -> StoreResult<Option<InquiryRecord>>;
    /// A page of inquiries (all statuses when `status` is `None`) and the total count.
    async fn list(
        &self,
        status: Option<InquiryStatus>,
        page: Page,
    ) -> StoreResult<Listing<InquiryRecord>>;
    /// Resolve a pending inquiry.
    async fn resolve(
        &self,
        id: &str,
        status: InquiryStatus,
        response: Option<Value>,
        at: Timestamp,
    ) -> StoreResult<InquiryRecord>;
}

/// Traces.
///
/// # Contract
/// `add_component` appends atomically (concurrent appends all land). Listing filters match a
/// trace holding the given object id in the matching list.
///
/// # Errors
/// [`StoreError::Conflict`] for a duplicate id, [`StoreError::NotFound`] for an unknown trace.
#[async_trait]
pub trait TraceStore: Send + Sync {
    /// Store a new trace.
    async fn create(&self, record: &TraceRecord) -> StoreResult<()>;
    /// One trace.
    async fn get(&self, id: &str) -> StoreResult<Option<TraceRecord>>;
    /// Append a component to one of a trace's lists.
    async fn add_component(
        &self,
        trace_id: &str,
        kind: TraceComponentKind,
        component: &TraceComponent,
    ) -> StoreResult<()>;
    /// A page of matching traces and their total count.
    async fn list(&self, filter: &TraceFilter, page: Page) -> StoreResult<Listing<TraceRecord>>;
    /// Delete up to `batch` traces started before `cutoff`; returns how many.
    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64>;
}

/// A whole store: every aggregate and the work queue, over one database.
///
/// # Contract
/// Every accessor returns the same object for the store's lifetime. A write acknowledged by any
/// method has committed durably (to the configured synchronous level); a failed write changed
/// nothing. The store's [`Clock`] is the time used for leases, expiry and TTLs.
///
/// # Errors
/// Each aggregate's methods document theirs.
#[async_trait]
pub trait Store: Send + Sync + Debug {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// The clock leases and expiry use.
    fn clock(&self) -> &Arc<dyn Clock>;
    /// Trigger instances.
    fn trigger_instances(&self) -> &dyn TriggerInstanceStore;
    /// Executions.
    fn executions(&self) -> &dyn ExecutionStore;
    /// Execution output.
    fn execution_output(&self) -> &dyn ExecutionOutputStore;
    /// Rule enforcements.
    fn rule_enforcements(&self) -> &dyn RuleEnforcementStore;
    /// Key-value pairs.
    fn key_values(&self) -> &dyn KeyValueStore;
    /// Tokens.
    fn tokens(&self) -> &dyn TokenStore;
    /// API keys.
    fn api_keys(&self) -> &dyn ApiKeyStore;
    /// Workflow state.
    fn workflows(&self) -> &dyn WorkflowStore;
    /// Inquiries.
    fn inquiries(&self) -> &dyn InquiryStore;
    /// Traces.
    fn traces(&self) -> &dyn TraceStore;
    /// The work queue.
    fn queue(&self) -> &dyn WorkQueue;
    /// Apply `writes` in order as one transaction: every write lands or none does. Each write
    /// means what the aggregate method it names means (the same checks, the same errors); the
    /// result holds what each produced, in order. Enqueued items wake their queue's waiters
    /// once the batch has committed.
    ///
    /// # Errors
    /// The error of the first write that failed, as its aggregate method would have returned
    /// it ([`StoreError::Conflict`], [`StoreError::NotFound`], [`StoreError::LeaseLost`], …);
    /// nothing of the batch was written then.
    async fn write_batch(&self, writes: Vec<BatchWrite>) -> StoreResult<Vec<BatchWritten>>;
    /// Flush pending writes and close connections. Later calls fail with
    /// [`StoreError::Unavailable`].
    async fn close(&self) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_object_ids_and_are_unique() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..2_000).map(|_| new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        // The process part is the same for all of them.
        assert!(ids.iter().all(|id| id[14..] == ids[0][14..]));
    }

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        let mut out = String::new();
        push_hex(&mut out, &[0x00, 0x0f, 0xa5, 0xff]);
        assert_eq!(out, "000fa5ff");
    }
}
