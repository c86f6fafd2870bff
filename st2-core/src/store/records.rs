//! What the store keeps, one type per aggregate, with StackStorm's field names and status
//! strings. The JSON form of each record is what the REST API shows (before the API adds derived
//! fields such as `web_url` or `elapsed_seconds`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::rules::enforce::RuleEnforcement;

use super::StoreError;
pub use super::snapshot::Snapshot;
use super::snapshot::SnapshotField;

/// A point in time, UTC. The store keeps microseconds, as StackStorm does.
pub type Timestamp = DateTime<Utc>;

/// Truncate a timestamp to the microsecond, the precision every backend stores.
pub fn to_micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

/// The timestamp `micros` microseconds after the epoch (saturating at the representable range).
pub fn from_micros(micros: i64) -> Timestamp {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// StackStorm's string for this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = StoreError;

            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(StoreError::Invalid(format!(
                        concat!("unknown ", stringify!($name), " {:?}"),
                        other
                    ))),
                }
            }
        }
    };
}

string_enum! {
    /// Where a trigger instance is in the rules engine.
    TriggerInstanceStatus {
        /// Stored, not yet looked at.
        Pending => "pending",
        /// The rules engine is matching it.
        Processing => "processing",
        /// Every matching rule was enforced.
        Processed => "processed",
        /// Matching failed.
        ProcessingFailed => "processing_failed",
    }
}

string_enum! {
    /// StackStorm's execution statuses (`st2common/constants/action.py`).
    ExecutionStatus {
        /// Created, waiting for the scheduler.
        Requested => "requested",
        /// Policies allowed it; waiting for a runner.
        Scheduled => "scheduled",
        /// Held back by a delay or a policy.
        Delayed => "delayed",
        /// A runner is running it.
        Running => "running",
        /// Finished well.
        Succeeded => "succeeded",
        /// Finished badly.
        Failed => "failed",
        /// Ran out of time.
        Timeout => "timeout",
        /// Its runner went away.
        Abandoned => "abandoned",
        /// Being canceled.
        Canceling => "canceling",
        /// Canceled.
        Canceled => "canceled",
        /// Waiting for an inquiry response.
        Pending => "pending",
        /// Being paused (workflows).
        Pausing => "pausing",
        /// Paused (workflows).
        Paused => "paused",
        /// Being resumed (workflows).
        Resuming => "resuming",
    }
}

impl ExecutionStatus {
    /// StackStorm's COMPLETED group: succeeded, failed, timeout, canceled, abandoned.
    pub fn is_completed(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Timeout | Self::Canceled | Self::Abandoned
        )
    }
}

string_enum! {
    /// Which stream an output chunk came from.
    OutputType {
        /// Standard output.
        Stdout => "stdout",
        /// Standard error.
        Stderr => "stderr",
        /// Runner-produced output (e.g. a workflow's messages).
        Output => "output",
    }
}

string_enum! {
    /// An inquiry's state.
    InquiryStatus {
        /// Waiting for a response.
        Pending => "pending",
        /// Answered.
        Succeeded => "succeeded",
        /// Its TTL ran out first.
        Timeout => "timeout",
        /// Its workflow was canceled.
        Canceled => "canceled",
    }
}

/// Ascending or descending, by the aggregate's natural time field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SortOrder {
    /// Oldest first.
    Ascending,
    /// Newest first (StackStorm's default for executions).
    #[default]
    Descending,
}

/// `limit` / `offset` of a listing. `limit: None` returns everything from `offset` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Page {
    /// At most this many items.
    pub limit: Option<u64>,
    /// Skip this many first.
    pub offset: u64,
}

impl Page {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// The first `limit` items.
    pub fn first(limit: u64) -> Self {
        Self {
            limit: Some(limit),
            offset: 0,
        }
    }
}

/// One page of a listing plus the number of items matching the filter (`X-Total-Count`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listing<T> {
    /// The page.
    pub items: Vec<T>,
    /// All matches, ignoring limit and offset.
    pub total: u64,
}

/// A trigger instance: one occurrence of a trigger with its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerInstanceRecord {
    /// Id.
    pub id: String,
    /// The trigger's ref (for parameter-less triggers, the trigger type's ref).
    pub trigger: String,
    /// The trigger type's ref, kept so listings can filter by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_type: Option<String>,
    /// The payload.
    pub payload: Value,
    /// When it happened.
    #[serde(serialize_with = "crate::store::rfc3339::serialize")]
    pub occurrence_time: Timestamp,
    /// Where the rules engine is with it.
    pub status: TriggerInstanceStatus,
}

/// Which trigger instances a listing returns. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerInstanceFilter {
    /// Only these ids.
    pub ids: Vec<String>,
    /// Trigger ref.
    pub trigger: Option<String>,
    /// Trigger type ref.
    pub trigger_type: Option<String>,
    /// Any of these statuses.
    pub statuses: Vec<TriggerInstanceStatus>,
    /// `occurrence_time > t`.
    pub timestamp_gt: Option<Timestamp>,
    /// `occurrence_time < t`.
    pub timestamp_lt: Option<Timestamp>,
    /// By occurrence time; newest first by default.
    pub sort: SortOrder,
}

/// One entry of an execution's `log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    /// When.
    #[serde(serialize_with = "crate::store::rfc3339::serialize")]
    pub timestamp: Timestamp,
    /// The new status.
    pub status: ExecutionStatus,
}

/// StackStorm's ActionExecution record (spec §5.2); it also carries what StackStorm keeps in
/// the LiveAction (`notify`, `runner_info`, `callback`), since here there is one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// Id (also the liveaction id).
    pub id: String,
    /// Bumped by the store on every update; an update must present the revision it read.
    #[serde(default)]
    pub revision: u64,
    /// The action's ref.
    pub action_ref: String,
    /// A snapshot of the action as the API shows it.
    pub action: Snapshot,
    /// A snapshot of the runner type.
    pub runner: Snapshot,
    /// Status.
    pub status: ExecutionStatus,
    /// The parameters it was requested with.
    pub parameters: Map<String, Value>,
    /// The result.
    #[serde(default)]
    pub result: Value,
    /// The context (`user`, `pack`, `parent`, `trace_context`, `orquesta`, …).
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Parent execution id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Child execution ids, in creation order. Derived by the store from the children's
    /// `parent`; whatever a caller puts here is ignored on write.
    #[serde(default)]
    pub children: Vec<String>,
    /// When it was requested.
    #[serde(serialize_with = "crate::store::rfc3339::serialize")]
    pub start_timestamp: Timestamp,
    /// When it completed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::store::rfc3339::serialize_option"
    )]
    pub end_timestamp: Option<Timestamp>,
    /// Every status change.
    #[serde(default)]
    pub log: Vec<StatusChange>,
    /// Requested delay in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u64>,
    /// The notify spec copied from the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Value>,
    /// Which runner process ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_info: Option<Value>,
    /// The rule that started it (API dict), for rule-initiated runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Snapshot>,
    /// The trigger of the rule-initiated run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Snapshot>,
    /// The trigger type of the rule-initiated run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_type: Option<Snapshot>,
    /// The trigger instance of the rule-initiated run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_instance: Option<Value>,
    /// The workflow execution this is a task of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_execution: Option<String>,
    /// The task execution this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_execution: Option<String>,
}

/// The values of an execution that listings filter on, derived the same way by every backend.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecutionKeys {
    /// `context.user`.
    pub user: Option<String>,
    /// `runner.name`.
    pub runner: Option<String>,
    /// `rule.ref`.
    pub rule: Option<String>,
    /// `trigger.ref`.
    pub trigger: Option<String>,
    /// `trigger_type.ref`.
    pub trigger_type: Option<String>,
    /// `trigger_instance.id`.
    pub trigger_instance: Option<String>,
}

impl ExecutionRecord {
    /// The filterable values of this record.
    pub fn keys(&self) -> ExecutionKeys {
        fn text(v: Option<&Value>, key: &str) -> Option<String> {
            v.and_then(|v| v.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        }
        ExecutionKeys {
            user: self
                .context
                .get("user")
                .and_then(Value::as_str)
                .map(str::to_owned),
            runner: text(Some(&self.runner), "name"),
            rule: text(self.rule.as_deref(), "ref"),
            trigger: text(self.trigger.as_deref(), "ref"),
            trigger_type: text(self.trigger_type.as_deref(), "ref"),
            trigger_instance: text(self.trigger_instance.as_ref(), "id"),
        }
    }

    /// The snapshots this record holds, by field name (a store that keeps each once writes
    /// references to them).
    pub(crate) fn snapshots(&self) -> impl Iterator<Item = (&'static str, &Snapshot)> {
        [
            ("action", Some(&self.action)),
            ("runner", Some(&self.runner)),
            ("rule", self.rule.as_ref()),
            ("trigger", self.trigger.as_ref()),
            ("trigger_type", self.trigger_type.as_ref()),
        ]
        .into_iter()
        .filter_map(|(field, snapshot)| Some((field, snapshot?)))
    }

    /// [`ExecutionRecord::snapshots`], to change in place.
    pub(crate) fn snapshots_mut(&mut self) -> impl Iterator<Item = (&'static str, &mut Snapshot)> {
        [
            ("action", Some(&mut self.action)),
            ("runner", Some(&mut self.runner)),
            ("rule", self.rule.as_mut()),
            ("trigger", self.trigger.as_mut()),
            ("trigger_type", self.trigger_type.as_mut()),
        ]
        .into_iter()
        .filter_map(|(field, snapshot)| Some((field, snapshot?)))
    }

    /// What a store writes as this record's JSON document at `revision` with `children`: the
    /// same text as serialising the record so changed, with each snapshot's kept text copied
    /// in instead of written out again (a batch writes a shared record at its next revision
    /// without copying it), or with `by_key`, a reference to it (`{"$snapshot": KEY}`, for a
    /// store that keeps each snapshot once under [`Snapshot::key`]).
    pub(crate) fn doc_at<'a>(
        &'a self,
        revision: &'a u64,
        children: &'a Vec<String>,
        by_key: bool,
    ) -> impl Serialize + 'a {
        let field = move |snapshot: &'a Snapshot| {
            if by_key {
                SnapshotField::Key(snapshot)
            } else {
                SnapshotField::Text(snapshot)
            }
        };
        // Every field named: a field added to the record and not here does not compile.
        let ExecutionRecord {
            id,
            revision: _,
            action_ref,
            action,
            runner,
            status,
            parameters,
            result,
            context,
            parent,
            children: _,
            start_timestamp,
            end_timestamp,
            log,
            delay,
            notify,
            runner_info,
            rule,
            trigger,
            trigger_type,
            trigger_instance,
            workflow_execution,
            task_execution,
        } = self;
        ExecutionDoc {
            id,
            revision,
            action_ref,
            action: field(action),
            runner: field(runner),
            status,
            parameters,
            result,
            context,
            parent,
            children,
            start_timestamp,
            end_timestamp,
            log,
            delay,
            notify,
            runner_info,
            rule: rule.as_ref().map(field),
            trigger: trigger.as_ref().map(field),
            trigger_type: trigger_type.as_ref().map(field),
            trigger_instance,
            workflow_execution,
            task_execution,
        }
    }
}

/// [`ExecutionRecord`] borrowed for writing (see [`ExecutionRecord::doc_at`]); the fields, their
/// order and their `skip_serializing_if` are the record's.
#[derive(Serialize)]
struct ExecutionDoc<'a> {
    id: &'a String,
    revision: &'a u64,
    action_ref: &'a String,
    action: SnapshotField<'a>,
    runner: SnapshotField<'a>,
    status: &'a ExecutionStatus,
    parameters: &'a Map<String, Value>,
    result: &'a Value,
    context: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: &'a Option<String>,
    children: &'a Vec<String>,
    #[serde(serialize_with = "crate::store::rfc3339::serialize_ref")]
    start_timestamp: &'a Timestamp,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::store::rfc3339::serialize_option_ref"
    )]
    end_timestamp: &'a Option<Timestamp>,
    log: &'a Vec<StatusChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delay: &'a Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify: &'a Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runner_info: &'a Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<SnapshotField<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger: Option<SnapshotField<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_type: Option<SnapshotField<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_instance: &'a Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow_execution: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_execution: &'a Option<String>,
}

/// Which executions a listing returns by their parent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ParentFilter {
    /// Any.
    #[default]
    Any,
    /// Only top-level executions (`parent=null`).
    TopLevel,
    /// Only children of this execution.
    Of(String),
}

/// Which executions a listing returns (the `GET /executions` filters). Empty fields do not
/// filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionFilter {
    /// Only these ids.
    pub ids: Vec<String>,
    /// Action ref.
    pub action: Option<String>,
    /// Any of these statuses.
    pub statuses: Vec<ExecutionStatus>,
    /// Parent.
    pub parent: ParentFilter,
    /// `context.user`.
    pub user: Option<String>,
    /// Runner name.
    pub runner: Option<String>,
    /// Rule ref.
    pub rule: Option<String>,
    /// Trigger ref.
    pub trigger: Option<String>,
    /// Trigger type ref.
    pub trigger_type: Option<String>,
    /// Trigger instance id.
    pub trigger_instance: Option<String>,
    /// `start_timestamp > t`.
    pub timestamp_gt: Option<Timestamp>,
    /// `start_timestamp < t`.
    pub timestamp_lt: Option<Timestamp>,
    /// By start timestamp (then action ref); newest first by default.
    pub sort: SortOrder,
}

/// A chunk of output to append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOutput {
    /// The execution.
    pub execution_id: String,
    /// The action's ref.
    pub action_ref: String,
    /// The runner's name.
    pub runner_ref: String,
    /// When it was produced.
    #[serde(serialize_with = "crate::store::rfc3339::serialize")]
    pub timestamp: Timestamp,
    /// stdout, stderr or output.
    pub output_type: OutputType,
    /// The text, usually one line with its newline.
    pub data: String,
}

/// A stored output chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// Position in the store's global append order; later chunks have larger numbers.
    pub seq: u64,
    /// What was appended.
    #[serde(flatten)]
    pub chunk: NewOutput,
}

/// A stored rule enforcement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleEnforcementRecord {
    /// Id.
    pub id: String,
    /// The enforcement.
    #[serde(flatten)]
    pub enforcement: RuleEnforcement,
}

/// Which rule enforcements a listing returns. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleEnforcementFilter {
    /// Only these ids.
    pub ids: Vec<String>,
    /// Rule ref.
    pub rule_ref: Option<String>,
    /// Rule id.
    pub rule_id: Option<String>,
    /// Execution id.
    pub execution: Option<String>,
    /// Trigger instance id.
    pub trigger_instance: Option<String>,
    /// `enforced_at > t`.
    pub enforced_at_gt: Option<Timestamp>,
    /// `enforced_at < t`.
    pub enforced_at_lt: Option<Timestamp>,
    /// By enforcement time; newest first by default.
    pub sort: SortOrder,
}

string_enum! {
    /// The two datastore scopes, with StackStorm's full names.
    KeyScope {
        /// Shared keys.
        System => "st2kv.system",
        /// Per-user keys, stored under `<user>:<name>`.
        User => "st2kv.user",
    }
}

/// A stored key-value pair. `name` is the stored name: user-scoped keys carry their user as
/// `<user>:<name>`, as in StackStorm. A secret's `value` is its ciphertext; the store never sees
/// the plain text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValueRecord {
    /// Id.
    pub id: String,
    /// Scope.
    pub scope: KeyScope,
    /// Stored name.
    pub name: String,
    /// Value (ciphertext when `secret`).
    pub value: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether `value` is encrypted.
    #[serde(default)]
    pub secret: bool,
    /// When it expires; expired pairs read as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_timestamp: Option<Timestamp>,
}

/// An authentication token. The store keeps only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Id.
    pub id: String,
    /// Lower-case hex SHA-256 of the token.
    pub token_hash: String,
    /// Whose.
    pub user: String,
    /// When it stops working.
    pub expiry: Timestamp,
    /// Anything the auth service records.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// When it was issued.
    pub created_at: Timestamp,
}

/// An API key. The store keeps only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Id.
    pub id: String,
    /// Lower-case hex SHA-256 of the key.
    pub key_hash: String,
    /// Whose.
    pub user: String,
    /// Anything the caller records.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Disabled keys do not authenticate.
    pub enabled: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A workflow execution: the conductor's state, opaque to the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowRecord {
    /// Id.
    pub id: String,
    /// The action execution running the workflow.
    pub execution_id: String,
    /// Bumped on every update; an update must present the revision it read.
    #[serde(default)]
    pub revision: u64,
    /// The workflow's status (orquesta's strings).
    pub status: String,
    /// The conductor's serialised state, as JSON text: the store writes and reads it without
    /// building a tree of it (the runner parses it into its own types).
    pub state: Box<RawValue>,
    /// Created.
    pub created_at: Timestamp,
    /// Last written.
    #[serde(serialize_with = "crate::store::rfc3339::serialize")]
    pub updated_at: Timestamp,
}

/// Equal when every field is; the states compare as JSON values (a backend may store the
/// text reformatted).
impl PartialEq for WorkflowRecord {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.execution_id == other.execution_id
            && self.revision == other.revision
            && self.status == other.status
            && self.created_at == other.created_at
            && self.updated_at == other.updated_at
            && same_json(&self.state, &other.state)
    }
}

/// Whether two JSON texts hold the same value.
pub fn same_json(a: &RawValue, b: &RawValue) -> bool {
    let value = |text: &RawValue| serde_json::from_str::<Value>(text.get());
    a.get() == b.get() || matches!((value(a), value(b)), (Ok(a), Ok(b)) if a == b)
}

/// A task execution within a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Id.
    pub id: String,
    /// The workflow execution.
    pub workflow_id: String,
    /// The task's name in the spec.
    pub task_id: String,
    /// The route (branch) it ran on.
    pub task_route: u32,
    /// Its status (orquesta's strings).
    pub status: String,
    /// Everything else the conductor keeps about it.
    pub doc: Value,
    /// Created.
    pub created_at: Timestamp,
    /// Last written.
    #[serde(serialize_with = "crate::store::rfc3339::serialize")]
    pub updated_at: Timestamp,
}

/// An inquiry (spec §12); its id is the execution id of the `core.ask` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InquiryRecord {
    /// The inquirer execution's id.
    pub id: String,
    /// Status.
    pub status: InquiryStatus,
    /// The response schema.
    pub schema: Value,
    /// Route for notifications.
    #[serde(default)]
    pub route: String,
    /// Minutes until it times out; 0 never.
    #[serde(default)]
    pub ttl: u64,
    /// Users allowed to respond (empty: anyone).
    #[serde(default)]
    pub users: Vec<String>,
    /// Roles allowed to respond (empty: any).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The parent (workflow) execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The response, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// When it was asked.
    pub created_at: Timestamp,
    /// When it was answered or timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
}

/// What caused a trace component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausedBy {
    /// `trigger_instance`, `rule` or `action_execution`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The cause's id (`<rule id>:<trigger instance id>` for rules).
    pub id: String,
}

/// One object in a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceComponent {
    /// The object's id.
    pub object_id: String,
    /// Its ref (trigger ref, rule ref or action ref).
    #[serde(rename = "ref", default)]
    pub reference: String,
    /// When it was added.
    #[serde(serialize_with = "crate::store::rfc3339::serialize")]
    pub updated_at: Timestamp,
    /// Its cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<CausedBy>,
}

string_enum! {
    /// The three lists of a trace.
    TraceComponentKind {
        /// `trigger_instances`.
        TriggerInstance => "trigger_instance",
        /// `rules`.
        Rule => "rule",
        /// `action_executions`.
        ActionExecution => "action_execution",
    }
}

/// A trace: which trigger instances, rules and executions belong to one chain of events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// Id.
    pub id: String,
    /// The tag (need not be unique).
    pub trace_tag: String,
    /// Trigger instances, in the order added.
    #[serde(default)]
    pub trigger_instances: Vec<TraceComponent>,
    /// Rules, in the order added.
    #[serde(default)]
    pub rules: Vec<TraceComponent>,
    /// Executions, in the order added.
    #[serde(default)]
    pub action_executions: Vec<TraceComponent>,
    /// When it started.
    #[serde(serialize_with = "crate::store::rfc3339::serialize")]
    pub start_timestamp: Timestamp,
}

/// Which traces a listing returns. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceFilter {
    /// Only these ids.
    pub ids: Vec<String>,
    /// Tag.
    pub trace_tag: Option<String>,
    /// Has this execution.
    pub execution: Option<String>,
    /// Has this rule (by rule id).
    pub rule: Option<String>,
    /// Has this trigger instance.
    pub trigger_instance: Option<String>,
    /// By start timestamp; newest first by default.
    pub sort: SortOrder,
}

impl TraceFilter {
    /// The traces holding object `id` in their list of `kind` (its `execution`, `rule` or
    /// `trigger_instance` filter).
    pub fn holding(kind: TraceComponentKind, id: impl Into<String>) -> Self {
        let mut filter = TraceFilter::default();
        let slot = match kind {
            TraceComponentKind::ActionExecution => &mut filter.execution,
            TraceComponentKind::Rule => &mut filter.rule,
            TraceComponentKind::TriggerInstance => &mut filter.trigger_instance,
        };
        *slot = Some(id.into());
        filter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn every_field() -> ExecutionRecord {
        let now = from_micros(1_764_000_000_123_456);
        ExecutionRecord {
            id: "65f0c0ffee0000000000abcd".into(),
            revision: 3,
            action_ref: "core.local".into(),
            action: json!({"ref": "core.local", "parameters": {"cmd": {"type": "string"}}}).into(),
            runner: json!({"name": "local-shell-cmd", "é": "\n\u{1}"}).into(),
            status: ExecutionStatus::Succeeded,
            parameters: json!({"cmd": "true"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            result: json!({"stdout": "", "return_code": 0}),
            context: json!({"user": "stanley"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            parent: Some("p".into()),
            children: vec!["c".into()],
            start_timestamp: now,
            end_timestamp: Some(now),
            log: vec![StatusChange {
                timestamp: now,
                status: ExecutionStatus::Requested,
            }],
            delay: Some(5),
            notify: Some(json!({"on-complete": {}})),
            runner_info: Some(json!({"hostname": "h"})),
            rule: Some(json!({"ref": "p.r", "n": 1.5}).into()),
            trigger: Some(json!({"ref": "core.st2.webhook"}).into()),
            trigger_type: Some(json!({"ref": "core.st2.webhook", "tags": []}).into()),
            trigger_instance: Some(json!({"id": "ti"})),
            workflow_execution: Some("w".into()),
            task_execution: Some("t".into()),
        }
    }

    /// The document of `record` as it is (its own revision and children).
    fn doc(record: &ExecutionRecord) -> String {
        serde_json::to_string(&record.doc_at(&record.revision, &record.children, false)).unwrap()
    }

    #[test]
    fn the_stored_document_is_the_records_json() {
        let mut record = every_field();
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(doc(&record), text);
        // Again, from the kept snapshot texts.
        assert_eq!(doc(&record), text);
        // At another revision, without children: the record so changed.
        let mut next = record.clone();
        next.revision += 1;
        next.children.clear();
        assert_eq!(
            serde_json::to_string(&record.doc_at(&next.revision, &Vec::new(), false)).unwrap(),
            serde_json::to_string(&next).unwrap()
        );
        let back: ExecutionRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, record);
        // The store's writer writes the same text, itself.
        for by_key in [false, true] {
            let doc = record.doc_at(&record.revision, &record.children, by_key);
            assert_eq!(
                crate::store::json::to_string(&doc).unwrap(),
                serde_json::to_string(&doc).unwrap()
            );
            assert!(crate::store::json::written_here(&doc));
        }

        // Optional fields left out the same way; a snapshot changed after its text was kept.
        record.parent = None;
        record.end_timestamp = None;
        record.rule = None;
        record.trigger_instance = None;
        record.action.make_mut()["ref"] = json!("core.other");
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.contains("core.other"));
        assert_eq!(doc(&record), text);
    }
}
