//! Creating executions (StackStorm's `create_request`), scheduling them through delays and
//! concurrency policies (st2scheduler), cancel, re-run and inquiry responses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{Map, Value, json};

use super::lifecycle::{self, is_cancelable};
use super::snapshot::derived_id;
use super::{EngineError, Inner, RUN_QUEUE, SCHEDULE_QUEUE};
use crate::expr::render::{ShellCapture, live_params_render, render_live_params};
use crate::expr::shell::ShellCommand;
use crate::model::{Action, Policy};
use crate::rules::enforce::shell_parameters;
use crate::store::{
    BatchWrite, BatchWritten, CausedBy, ClaimRequest, ExecutionFilter, ExecutionRecord,
    ExecutionStatus, InquiryStatus, Lease, NewWorkItem, Page, Snapshot, StatusChange, StoreError,
    Timestamp, TraceComponent, TraceComponentKind, TraceFilter, TraceRecord,
};

/// Context key holding the shell commands rendered for a `cmd` parameter (the command with
/// its values beside it; see `crate::expr::shell`).
pub(crate) const SHELL_CONTEXT_KEY: &str = "shell_commands";

/// An action to run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// Action ref.
    pub action: String,
    /// Parameters (may hold templates, rendered as StackStorm renders live parameters).
    pub parameters: Map<String, Value>,
    /// Extra context (`user`, `api_user`, `source_channel`, …).
    pub context: Map<String, Value>,
    /// Who asks (default: the context's `user`, else the system user).
    pub user: Option<String>,
    /// Wait this many milliseconds before scheduling (`delay`).
    pub delay_ms: Option<u64>,
    /// The parent execution (workflow tasks).
    pub parent: Option<String>,
    /// The trace tag of a new trace (default `execution-<id>`).
    pub trace_tag: Option<String>,
    /// Join this trace instead of starting one.
    pub trace_id: Option<String>,
    /// The execution's id (default: a new one).
    pub id: Option<String>,
    /// Notify settings instead of the action's (action-chain nodes).
    pub notify: Option<Value>,
}

impl RunRequest {
    /// Run `action` with `parameters`.
    pub fn new(action: impl Into<String>, parameters: Map<String, Value>) -> Self {
        RunRequest {
            action: action.into(),
            parameters,
            context: Map::new(),
            user: None,
            delay_ms: None,
            parent: None,
            trace_tag: None,
            trace_id: None,
            id: None,
            notify: None,
        }
    }
}

/// How a new execution joins a trace.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TraceLink {
    /// The caller records the trace (the rules service writes it whole).
    Managed,
    /// Start a trace with this tag.
    New(String),
    /// Add to this trace.
    Join(String),
}

/// Everything needed to create one execution.
#[derive(Debug, Clone)]
pub(crate) struct NewExecution {
    pub id: String,
    pub action: String,
    pub parameters: Map<String, Value>,
    pub context: Map<String, Value>,
    pub shell: BTreeMap<String, ShellCommand>,
    pub error: Option<String>,
    pub delay_ms: Option<u64>,
    pub parent: Option<String>,
    pub rule: Option<Snapshot>,
    pub trigger: Option<Snapshot>,
    pub trigger_type: Option<Snapshot>,
    pub trigger_instance: Option<Value>,
    pub trace: TraceLink,
    /// Notify settings instead of the action's.
    pub notify: Option<Value>,
}

fn concurrency_policies(inner: &Inner, action: &str) -> Vec<Arc<Policy>> {
    inner
        .catalog()
        .policies()
        .filter(|p| {
            p.enabled
                && p.resource_ref == action
                && matches!(
                    p.policy_type.as_str(),
                    "action.concurrency" | "action.concurrency.attr"
                )
        })
        .cloned()
        .collect()
}

/// Create an execution and queue it: `scheduled` on the run queue when nothing holds it back,
/// else `requested`/`delayed` on the schedule queue. A request whose parameters failed to
/// render is created `failed` with the error as its result, as StackStorm does.
///
/// The record, its trace entry and its queue item are one batch: one commit, and never an
/// execution without its queue item.
pub(crate) async fn create_execution(
    inner: &Arc<Inner>,
    new: NewExecution,
) -> Result<ExecutionRecord, EngineError> {
    let (mut stored, trace) = build_execution(inner, new)?;
    stored.revision = 1;
    let stored = Arc::new(stored);
    let queue = queue_for(&stored);
    let traced = trace_write(&stored, &trace);
    let joins = matches!(traced, Some(BatchWrite::AddTraceComponent { .. }));
    let traced_new = matches!(traced, Some(BatchWrite::CreateTrace(_)));
    let item = queue.map(|(queue, not_before)| work_item(&stored, queue, not_before));
    let batch = |with_trace: bool| {
        let mut writes = vec![BatchWrite::CreateExecution(Arc::clone(&stored))];
        if with_trace {
            writes.extend(traced.clone());
        }
        writes.extend(item.clone().map(BatchWrite::Enqueue));
        writes
    };
    // Kept before the batch commits: a runner worker may claim the queue item right after
    // (and its updates wait for the created event).
    if queue.is_some() {
        inner.recent.keep(&stored);
    }
    let creating = inner.creating(&stored.id);
    let mut written = inner.store.write_batch(batch(true)).await;
    if let Err(e) = &written {
        // The trace to join is gone (retention), or the new one exists already (not the
        // execution): the execution goes on without that trace write.
        let retry = match e {
            StoreError::NotFound { .. } => joins,
            StoreError::Conflict { .. } => {
                traced_new && matches!(inner.store.executions().get(&stored.id).await, Ok(None))
            }
            _ => false,
        };
        if retry {
            written = inner.store.write_batch(batch(false)).await;
        }
    }
    if let Err(e) = written {
        drop(creating);
        if queue.is_some() {
            inner.recent.forget(&stored.id);
        }
        if !matches!(e, StoreError::Conflict { .. }) {
            return Err(e.into());
        }
        // Created before a crash: queue it again only if it still waits.
        let existing = self::stored(inner, &stored.id).await?;
        if let Some((queue, not_before)) = queue_for(&existing) {
            enqueue(inner, &existing, queue, not_before).await?;
        }
        return Ok(existing);
    }
    creating.announce(Arc::clone(&stored));
    Ok(Arc::unwrap_or_clone(stored))
}

/// The record [`create_execution`] stores for `new` (revision 0, in its first status) and
/// how it joins a trace; nothing is written.
pub(crate) fn build_execution(
    inner: &Arc<Inner>,
    new: NewExecution,
) -> Result<(ExecutionRecord, TraceLink), EngineError> {
    let catalog = inner.catalog();
    let action = catalog
        .action(&new.action)
        .cloned()
        .ok_or_else(|| EngineError::UnknownAction(new.action.clone()))?;
    let runner = catalog.runner_type(&action.runner_type).cloned();
    let now = inner.now();
    let mut context = new.context;
    context
        .entry("pack")
        .or_insert_with(|| Value::String(action.pack().to_owned()));
    if !new.shell.is_empty() {
        context.insert(
            SHELL_CONTEXT_KEY.into(),
            serde_json::to_value(&new.shell).unwrap_or(Value::Null),
        );
    }
    let mut record = ExecutionRecord {
        id: new.id,
        revision: 0,
        action_ref: action.reference.clone(),
        action: inner.snapshots.action(&action),
        runner: runner
            .as_ref()
            .map(|r| inner.snapshots.runner(r))
            .unwrap_or_default(),
        status: ExecutionStatus::Requested,
        parameters: new.parameters,
        result: json!({}),
        context,
        parent: new.parent,
        children: Vec::new(),
        start_timestamp: now,
        end_timestamp: None,
        log: vec![StatusChange {
            timestamp: now,
            status: ExecutionStatus::Requested,
        }],
        delay: new.delay_ms.filter(|d| *d > 0),
        notify: new.notify.or_else(|| {
            action
                .notify
                .as_ref()
                .and_then(|n| serde_json::to_value(n).ok())
        }),
        runner_info: None,
        rule: new.rule,
        trigger: new.trigger,
        trigger_type: new.trigger_type,
        trigger_instance: new.trigger_instance,
        workflow_execution: None,
        task_execution: None,
    };
    // Transitions checked: requested → failed / delayed / scheduled are allowed.
    if let Some(error) = new.error {
        let _ = lifecycle::complete(
            &mut record,
            ExecutionStatus::Failed,
            json!({"error": error, "traceback": ""}),
            now,
        );
    } else if record.delay.is_some() {
        let _ = lifecycle::transition(&mut record, ExecutionStatus::Delayed, now);
    } else if concurrency_policies(inner, &action.reference).is_empty() {
        let _ = lifecycle::transition(&mut record, ExecutionStatus::Scheduled, now);
    }
    Ok((record, new.trace))
}

/// The stored record of execution `id`.
///
/// # Errors
/// [`EngineError::UnknownExecution`] when there is none; store errors.
pub(crate) async fn stored(inner: &Inner, id: &str) -> Result<ExecutionRecord, EngineError> {
    inner
        .store
        .executions()
        .get(id)
        .await?
        .ok_or_else(|| EngineError::UnknownExecution(id.to_owned()))
}

/// Execution `id` as [`stored`] reads it, with `children` left empty.
pub(crate) async fn stored_without_children(
    inner: &Inner,
    id: &str,
) -> Result<ExecutionRecord, EngineError> {
    inner
        .store
        .executions()
        .get_without_children(id)
        .await?
        .ok_or_else(|| EngineError::UnknownExecution(id.to_owned()))
}

/// Which queue an execution in `record`'s state belongs on, if any.
pub(crate) fn queue_for(record: &ExecutionRecord) -> Option<(&'static str, Option<Timestamp>)> {
    match record.status {
        ExecutionStatus::Requested | ExecutionStatus::Delayed => {
            let due = record.delay.map(|d| {
                record.start_timestamp
                    + TimeDelta::milliseconds(i64::try_from(d).unwrap_or(i64::MAX / 2))
            });
            Some((SCHEDULE_QUEUE, due))
        }
        ExecutionStatus::Scheduled | ExecutionStatus::Resuming => Some((RUN_QUEUE, None)),
        _ => None,
    }
}

pub(crate) async fn enqueue(
    inner: &Inner,
    record: &ExecutionRecord,
    queue: &str,
    not_before: Option<Timestamp>,
) -> Result<(), EngineError> {
    inner
        .store
        .queue()
        .enqueue(work_item(record, queue, not_before))
        .await?;
    Ok(())
}

/// The queue item that stands for `record` waiting on `queue`.
pub(crate) fn work_item(
    record: &ExecutionRecord,
    queue: &str,
    not_before: Option<Timestamp>,
) -> NewWorkItem {
    let mut item = NewWorkItem::new(queue, json!({"execution_id": record.id}));
    item.not_before = not_before;
    item.required_tag = required_tag(record);
    item
}

/// Runner affinity: an action tagged `{name: worker_tag, value: <tag>}` runs only on workers
/// carrying that tag.
pub(crate) fn required_tag(record: &ExecutionRecord) -> Option<String> {
    record
        .action
        .get("tags")?
        .as_array()?
        .iter()
        .find(|t| t.get("name").and_then(Value::as_str) == Some("worker_tag"))
        .and_then(|t| t.get("value"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The write that puts `record` on its trace: a component of the trace it joins, or a new
/// trace; none when the caller records the trace itself.
fn trace_write(record: &ExecutionRecord, link: &TraceLink) -> Option<BatchWrite> {
    let component = TraceComponent {
        object_id: record.id.clone(),
        reference: record.action_ref.clone(),
        updated_at: record.start_timestamp,
        caused_by: record.parent.as_ref().map(|p| CausedBy {
            kind: "action_execution".into(),
            id: p.clone(),
        }),
    };
    match link {
        TraceLink::Managed => None,
        TraceLink::Join(trace_id) => Some(BatchWrite::AddTraceComponent {
            trace_id: trace_id.clone(),
            kind: TraceComponentKind::ActionExecution,
            component,
        }),
        TraceLink::New(tag) => Some(BatchWrite::CreateTrace(TraceRecord {
            id: derived_id(&record.id, "trace"),
            trace_tag: tag.clone(),
            trigger_instances: Vec::new(),
            rules: Vec::new(),
            action_executions: vec![component],
            start_timestamp: record.start_timestamp,
        })),
    }
}

/// The trace an execution belongs to.
pub(crate) async fn trace_of(inner: &Inner, execution_id: &str) -> Option<String> {
    let filter = TraceFilter::holding(TraceComponentKind::ActionExecution, execution_id);
    inner
        .store
        .traces()
        .list(&filter, Page::first(1))
        .await
        .ok()?
        .items
        .into_iter()
        .next()
        .map(|t| t.id)
}

/// Rendered parameters and the shell commands among them.
type Prepared = (Map<String, Value>, BTreeMap<String, ShellCommand>);

/// Render live parameters and check them against the action's schema (the API path: errors
/// are returned, nothing is created).
fn prepare(
    inner: &Inner,
    action: &Action,
    parameters: &Map<String, Value>,
    context: &Map<String, Value>,
) -> Result<Prepared, EngineError> {
    let catalog = inner.catalog();
    let no_runner_params = Map::new();
    let runner_params = catalog
        .runner_type(&action.runner_type)
        .map_or(&no_runner_params, |r| &r.runner_parameters);
    let capture = ShellCapture::new(shell_parameters(&action.runner_type).iter().copied());
    // The context (the pack's config rendered, the action context copied) only when
    // something renders.
    let rendered = if live_params_render(runner_params, &action.parameters, parameters) {
        let pctx = inner.param_context(&catalog, action, context.clone(), capture.clone());
        render_live_params(
            &inner.jinja,
            runner_params,
            &action.parameters,
            parameters,
            &pctx,
        )?
    } else {
        Map::new()
    };
    crate::rules::enforce::check_request(action, runner_params, &rendered)
        .map_err(EngineError::InvalidParameters)?;
    Ok((rendered, capture.take()))
}

pub(crate) async fn run(
    inner: &Arc<Inner>,
    request: RunRequest,
) -> Result<ExecutionRecord, EngineError> {
    // Only the parent's id, context and trace are used: its children (a with-items workflow
    // has thousands) are not read.
    let parent = match &request.parent {
        Some(id) => Some(stored_without_children(inner, id).await?),
        None => None,
    };
    run_under(inner, request, parent.as_ref()).await
}

/// [`run`] with the parent execution (`request.parent`) already read, without its children;
/// a parent starting many children reads itself once.
pub(crate) async fn run_under(
    inner: &Arc<Inner>,
    request: RunRequest,
    parent: Option<&ExecutionRecord>,
) -> Result<ExecutionRecord, EngineError> {
    let new = new_under(inner, request, parent).await?;
    create_execution(inner, new).await
}

/// What [`run_under`] creates for `request` (its parameters rendered and checked, its context
/// and trace decided); nothing is written.
pub(crate) async fn new_under(
    inner: &Arc<Inner>,
    request: RunRequest,
    parent: Option<&ExecutionRecord>,
) -> Result<NewExecution, EngineError> {
    debug_assert_eq!(parent.map(|p| &p.id), request.parent.as_ref());
    let catalog = inner.catalog();
    let action = catalog
        .action(&request.action)
        .cloned()
        .ok_or_else(|| EngineError::UnknownAction(request.action.clone()))?;
    if !action.enabled {
        return Err(EngineError::ActionDisabled(action.reference.clone()));
    }
    let mut context = request.context;
    let user = request
        .user
        .or_else(|| {
            context
                .get("user")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| {
            parent
                .as_ref()
                .and_then(|p| p.context.get("user"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| inner.settings.system_user.clone());
    context.insert("user".into(), Value::String(user));
    if let Some(p) = &parent {
        let mut parent_ctx = p.context.clone();
        parent_ctx.insert("execution_id".into(), Value::String(p.id.clone()));
        context.insert("parent".into(), Value::Object(parent_ctx));
    }
    // Rendering may read the datastore, which blocks. On a multi-thread runtime those reads
    // step aside themselves (`block_in_place`, see `StoreKeyValues`), so it runs here without
    // a hop to a blocking thread; elsewhere it goes to one.
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let (parameters, shell) = if multi_thread {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            prepare(inner, &action, &request.parameters, &context)
        }))
        .map_err(|_| EngineError::InvalidParameters("rendering panicked".into()))??
    } else {
        let inner2 = inner.clone();
        let action2 = action.clone();
        let params = request.parameters.clone();
        let ctx = context.clone();
        tokio::task::spawn_blocking(move || prepare(&inner2, &action2, &params, &ctx))
            .await
            .map_err(|e| EngineError::InvalidParameters(format!("rendering panicked: {e}")))??
    };
    let id = request.id.unwrap_or_else(crate::store::new_id);
    let trace = match (&request.trace_id, &parent) {
        (Some(t), _) => TraceLink::Join(t.clone()),
        (None, Some(p)) => match trace_of(inner, &p.id).await {
            Some(t) => TraceLink::Join(t),
            None => TraceLink::New(format!("execution-{id}")),
        },
        (None, None) => TraceLink::New(
            request
                .trace_tag
                .clone()
                .unwrap_or_else(|| format!("execution-{id}")),
        ),
    };
    if let TraceLink::Join(t) = &trace {
        context.insert(
            "trace_context".into(),
            json!({"id_": t, "trace_tag": request.trace_tag}),
        );
    } else if let TraceLink::New(tag) = &trace {
        context.insert(
            "trace_context".into(),
            json!({"id_": derived_id(&id, "trace"), "trace_tag": tag}),
        );
    }
    let new = NewExecution {
        id,
        action: action.reference.clone(),
        parameters,
        context,
        shell,
        error: None,
        delay_ms: request.delay_ms,
        parent: request.parent,
        rule: None,
        trigger: None,
        trigger_type: None,
        trigger_instance: None,
        trace,
        notify: request.notify,
    };
    Ok(new)
}

/// Create the executions `news` as [`create_execution`] does (each with its trace entry and
/// queue item), in one batch with `first`: writes that must land with them, such as the state
/// of the runner that records them. Returns what `first`'s writes produced and the stored
/// executions. An error means nothing was written; the caller may write them one by one then
/// ([`create_execution`] copes with a trace gone or an execution that exists already).
pub(crate) async fn create_together(
    inner: &Arc<Inner>,
    first: Vec<BatchWrite>,
    news: Vec<NewExecution>,
) -> Result<(Vec<BatchWritten>, Vec<ExecutionRecord>), EngineError> {
    let leading = first.len();
    let mut writes = first;
    let mut created = Vec::with_capacity(news.len());
    for new in news {
        let (mut stored, trace) = build_execution(inner, new)?;
        stored.revision = 1;
        let stored = Arc::new(stored);
        let queue = queue_for(&stored);
        writes.push(BatchWrite::CreateExecution(Arc::clone(&stored)));
        writes.extend(trace_write(&stored, &trace));
        writes.extend(
            queue.map(|(queue, not_before)| {
                BatchWrite::Enqueue(work_item(&stored, queue, not_before))
            }),
        );
        created.push((stored, queue.is_some()));
    }
    // As in `create_execution`: kept, and their updates held back, before the batch commits.
    for (stored, queued) in &created {
        if *queued {
            inner.recent.keep(stored);
        }
    }
    let creating: Vec<_> = created
        .iter()
        .map(|(stored, _)| inner.creating(&stored.id))
        .collect();
    match inner.store.write_batch(writes).await {
        Ok(mut written) => {
            written.truncate(leading);
            let records = created
                .into_iter()
                .zip(creating)
                .map(|((stored, _), creating)| {
                    creating.announce(Arc::clone(&stored));
                    Arc::unwrap_or_clone(stored)
                })
                .collect();
            Ok((written, records))
        }
        Err(e) => {
            drop(creating);
            for (stored, queued) in &created {
                if *queued {
                    inner.recent.forget(&stored.id);
                }
            }
            Err(e.into())
        }
    }
}

/// How to run an execution again (`POST /executions/<id>/re_run`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReRunRequest {
    /// Parameters merged over the original's (or replacing them with `no_merge`).
    pub parameters: Map<String, Value>,
    /// Do not start from the original's parameters.
    pub no_merge: bool,
    /// Who asks.
    pub user: Option<String>,
    /// Workflow tasks to re-run from (`name` or `name.route`); empty: run the whole action
    /// again.
    pub tasks: Vec<String>,
    /// With-items tasks among `tasks` whose items all run again (not only the failed ones).
    pub reset: Vec<String>,
    /// Wait this many milliseconds before scheduling.
    pub delay_ms: Option<u64>,
}

pub(crate) async fn re_run(
    inner: &Arc<Inner>,
    id: &str,
    again: ReRunRequest,
) -> Result<ExecutionRecord, EngineError> {
    let original = stored(inner, id).await?;
    let mut params = if again.no_merge {
        Map::new()
    } else {
        original.parameters.clone()
    };
    for (k, v) in again.parameters {
        params.insert(k, v);
    }
    let mut request = RunRequest::new(original.action_ref.clone(), params);
    let mut rerun = Map::new();
    rerun.insert("ref".into(), Value::String(original.id.clone()));
    if !again.tasks.is_empty() {
        rerun.insert("tasks".into(), json!(again.tasks));
        rerun.insert("reset".into(), json!(again.reset));
    }
    request
        .context
        .insert("re-run".into(), Value::Object(rerun));
    request.user = again.user;
    request.delay_ms = again.delay_ms;
    request.trace_id = trace_of(inner, &original.id).await;
    run(inner, request).await
}

/// Write `record` (read at its revision) after `change`, retrying on a concurrent update by
/// re-reading. Returns `None` when `change` declines (returns false) for the current state.
pub(crate) async fn update_with(
    inner: &Inner,
    record: ExecutionRecord,
    change: impl FnMut(&mut ExecutionRecord) -> bool,
) -> Result<Option<ExecutionRecord>, EngineError> {
    write_changed(inner, record, false, change).await
}

/// [`update_with`] for a record `change` was already applied to (`changed`), as read at its
/// revision: written as it is, `change` applied again only to what a conflict reads.
pub(crate) async fn write_changed(
    inner: &Inner,
    record: ExecutionRecord,
    mut changed: bool,
    mut change: impl FnMut(&mut ExecutionRecord) -> bool,
) -> Result<Option<ExecutionRecord>, EngineError> {
    let id = record.id.clone();
    // Changed in place: on a conflict it is read again, so the original is not kept.
    let mut next = record;
    for _ in 0..16 {
        if !changed && !change(&mut next) {
            return Ok(None);
        }
        changed = false;
        match inner.store.executions().update(&next).await {
            Ok(stored) => {
                inner.execution_updated(&stored.id, stored.status, || stored.clone());
                return Ok(Some(stored));
            }
            Err(StoreError::Conflict { .. }) => {
                next = stored(inner, &id).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(EngineError::InvalidState(format!(
        "execution {id} keeps changing; gave up updating it"
    )))
}

pub(crate) async fn cancel(
    inner: &Arc<Inner>,
    id: &str,
    user: &str,
) -> Result<ExecutionRecord, EngineError> {
    let record = stored(inner, id).await?;
    if record.status == ExecutionStatus::Canceling {
        return Ok(record);
    }
    if !is_cancelable(record.status) {
        return Err(EngineError::InvalidState(format!(
            "Action cannot be canceled. State = {}.",
            record.status
        )));
    }
    let now = inner.now();
    let result = json!({"message": "Action canceled by user.", "user": user});
    let updated = update_with(inner, record, |r| {
        if !is_cancelable(r.status) {
            return false;
        }
        r.context
            .insert("cancelled_by".into(), Value::String(user.to_owned()));
        let direct = r.parent.is_none()
            && !matches!(
                r.status,
                ExecutionStatus::Running | ExecutionStatus::Pending | ExecutionStatus::Paused
            );
        let to = if direct {
            ExecutionStatus::Canceled
        } else {
            ExecutionStatus::Canceling
        };
        if lifecycle::transition(r, to, now).is_err() {
            return false;
        }
        r.result = result.clone();
        true
    })
    .await?;
    let Some(updated) = updated else {
        return stored(inner, id).await;
    };
    // A runner in this process stops at once; one on another node notices at its next
    // heartbeat.
    let canceller = inner
        .cancellers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned();
    if let Some(c) = canceller {
        c.cancel();
    } else if updated.status == ExecutionStatus::Canceling
        && !matches!(
            updated.log.iter().rev().nth(1).map(|c| c.status),
            Some(ExecutionStatus::Running)
        )
    {
        // Nothing runs it (a child waiting in a queue): finish the cancel here.
        let finished = update_with(inner, updated.clone(), |r| {
            lifecycle::transition(r, ExecutionStatus::Canceled, now).is_ok()
        })
        .await?;
        if let Some(f) = finished {
            return Ok(f);
        }
    }
    Ok(updated)
}

pub(crate) async fn respond_inquiry(
    inner: &Arc<Inner>,
    id: &str,
    response: Value,
    user: &str,
) -> Result<ExecutionRecord, EngineError> {
    let inquiry = inner
        .store
        .inquiries()
        .get(id)
        .await?
        .ok_or_else(|| EngineError::UnknownInquiry(id.to_owned()))?;
    match inquiry.status {
        InquiryStatus::Pending => {}
        InquiryStatus::Timeout => {
            return Err(EngineError::InvalidState(format!(
                "Inquiry \"{id}\" timed out and cannot be responded to."
            )));
        }
        _ => {
            return Err(EngineError::InvalidState(format!(
                "Inquiry \"{id}\" has already been responded to."
            )));
        }
    }
    if !inquiry.users.is_empty() && !inquiry.users.iter().any(|u| u == user) {
        return Err(EngineError::InvalidState(format!(
            "User \"{user}\" does not have permission to respond to inquiry \"{id}\"."
        )));
    }
    let schema = crate::schema::Schema::for_object(inquiry.schema.clone());
    if let Err(violations) = schema.validate(&response) {
        return Err(EngineError::InvalidState(format!(
            "Response for inquiry \"{id}\" did not pass schema validation: {}",
            violations
                .iter()
                .map(|v| v.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    inner
        .store
        .inquiries()
        .resolve(
            id,
            InquiryStatus::Succeeded,
            Some(response.clone()),
            inner.now(),
        )
        .await?;
    let record = stored(inner, id).await?;
    let now = inner.now();
    let updated = update_with(inner, record, |r| {
        let mut result = match &r.result {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        result.insert("response".into(), response.clone());
        if lifecycle::complete(r, ExecutionStatus::Succeeded, Value::Object(result), now).is_err() {
            return false;
        }
        true
    })
    .await?
    .ok_or_else(|| {
        EngineError::InvalidState(format!("execution {id} is not waiting for a response"))
    })?;
    super::worker::post_run(inner, &updated).await?;
    resume_root_chain(inner, &updated, user).await?;
    Ok(updated)
}

/// After an inquiry under an action-chain or a workflow was answered or timed out: resume the
/// root execution, which paused when the inquiry went `pending` (StackStorm's inquiry
/// service resumes the root).
pub(crate) async fn resume_root_chain(
    inner: &Arc<Inner>,
    record: &ExecutionRecord,
    user: &str,
) -> Result<(), EngineError> {
    let Some(parent_id) = &record.parent else {
        return Ok(());
    };
    let Some(parent) = inner.store.executions().get(parent_id).await? else {
        return Ok(());
    };
    let mut root = parent;
    for _ in 0..64 {
        let Some(up) = &root.parent else { break };
        match inner.store.executions().get(up).await? {
            Some(r) => root = r,
            None => break,
        }
    }
    // Still stopping: resume once it has. A chain that is still `running` has not yet seen
    // its task wait for this inquiry (it is about to pause): wait for it too, or the answer
    // would come before the pause and nobody would resume the chain.
    // A workflow that is still `running` either has not yet seen the task go pending (it is
    // about to pause: wait briefly) or runs other tasks (it sees the answer by itself).
    let runner = root.runner.get("name").and_then(Value::as_str);
    let is_chain = runner == Some("action-chain");
    let is_workflow = runner == Some("orquesta");
    let stopping = |r: &ExecutionRecord| {
        r.status == ExecutionStatus::Pausing
            || ((is_chain || is_workflow) && r.status == ExecutionStatus::Running)
    };
    if stopping(&root) {
        let wait = if is_workflow { 3 } else { 30 };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
        root = match wait_until(inner, &root.id, Some(deadline), |r| !stopping(r)).await {
            Ok(r) => r,
            // Still running after the wait: it will not pause for this inquiry.
            Err(EngineError::WaitTimeout(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
    }
    if root.status == ExecutionStatus::Paused {
        resume(inner, &root.id, user).await?;
    }
    Ok(())
}

/// The scheduler: executions on the schedule queue wait for their delay, then pass the
/// concurrency policies (one at a time per node, so counts are not raced locally).
pub(crate) async fn scheduler_service(inner: Arc<Inner>) {
    let request = ClaimRequest {
        queue: SCHEDULE_QUEUE.to_owned(),
        worker: format!("{}:scheduler", inner.settings.node_name),
        tags: Vec::new(),
        lease_for: inner.settings.lease,
        max_items: inner.settings.claim_batch.max(1),
    };
    // One scheduler decides at a time across the nodes sharing the store, so concurrency
    // policies count executions no other node is admitting at the same moment. The lead is
    // renewed every third of its term; a node that does not lead waits and asks again.
    let term = inner.settings.lease;
    let mut renewed: Option<tokio::time::Instant> = None;
    while !inner.stopping.is_cancelled() {
        if renewed.is_none_or(|at| at.elapsed() >= term / 3) {
            if inner.leads("scheduler", term).await {
                renewed = Some(tokio::time::Instant::now());
            } else {
                renewed = None;
                sleep_or_stop(&inner, inner.settings.idle_poll).await;
                continue;
            }
        }
        let Some(leases) = inner.claim_or_wait(&request).await else {
            break;
        };
        for lease in leases {
            let _ = schedule_one(&inner, &lease).await;
        }
    }
}

pub(crate) async fn sleep_or_stop(inner: &Inner, d: Duration) {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        () = inner.stopping.cancelled() => {}
    }
}

async fn schedule_one(inner: &Arc<Inner>, lease: &Lease) -> Result<(), EngineError> {
    let queue = inner.store.queue();
    let Some(id) = lease
        .item
        .payload
        .get("execution_id")
        .and_then(Value::as_str)
    else {
        queue.finish(lease.reference()).await?;
        return Ok(());
    };
    let Some(record) = inner.store.executions().get(id).await? else {
        queue.finish(lease.reference()).await?;
        return Ok(());
    };
    if !matches!(
        record.status,
        ExecutionStatus::Requested | ExecutionStatus::Delayed
    ) {
        queue.finish(lease.reference()).await?;
        return Ok(());
    }
    let now = inner.now();
    if let Some((_, Some(due))) = queue_for(&record)
        && due > now
    {
        queue.release(lease.reference(), Some(due)).await?;
        return Ok(());
    }
    let verdict = apply_concurrency(inner, &record).await?;
    match verdict {
        Verdict::Run => {
            let updated = update_with(inner, record, |r| {
                matches!(
                    r.status,
                    ExecutionStatus::Requested | ExecutionStatus::Delayed
                ) && lifecycle::transition(r, ExecutionStatus::Scheduled, now).is_ok()
            })
            .await?;
            if let Some(u) = updated {
                enqueue(inner, &u, RUN_QUEUE, None).await?;
            }
            queue.finish(lease.reference()).await?;
        }
        Verdict::Delay => {
            if record.status != ExecutionStatus::Delayed {
                update_with(inner, record, |r| {
                    lifecycle::transition(r, ExecutionStatus::Delayed, now).is_ok()
                })
                .await?;
            }
            let again = now
                + TimeDelta::from_std(inner.settings.policy_delay)
                    .unwrap_or_else(|_| TimeDelta::seconds(2));
            queue.release(lease.reference(), Some(again)).await?;
        }
        Verdict::Cancel => {
            let updated = update_with(inner, record, |r| {
                lifecycle::transition(r, ExecutionStatus::Canceling, now).is_ok()
                    && lifecycle::complete(
                        r,
                        ExecutionStatus::Canceled,
                        json!({"message": "Action execution canceled by user."}),
                        now,
                    )
                    .is_ok()
            })
            .await?;
            if let Some(u) = updated {
                super::worker::post_run(inner, &u).await?;
            }
            queue.finish(lease.reference()).await?;
        }
    }
    Ok(())
}

enum Verdict {
    Run,
    Delay,
    Cancel,
}

/// StackStorm's `action.concurrency` and `action.concurrency.attr`: count the action's
/// `scheduled` and `running` executions (with the same attribute values), compare to the
/// threshold.
async fn apply_concurrency(
    inner: &Inner,
    record: &ExecutionRecord,
) -> Result<Verdict, EngineError> {
    for policy in concurrency_policies(inner, &record.action_ref) {
        let threshold = policy
            .parameters
            .get("threshold")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let on_limit = policy
            .parameters
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("delay");
        let filter = ExecutionFilter {
            action: Some(record.action_ref.clone()),
            statuses: vec![ExecutionStatus::Scheduled, ExecutionStatus::Running],
            ..ExecutionFilter::default()
        };
        let count = if policy.policy_type == "action.concurrency.attr" {
            let attributes: Vec<String> = policy
                .parameters
                .get("attributes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let listing = inner.store.executions().list(&filter, Page::all()).await?;
            listing
                .items
                .iter()
                .filter(|other| {
                    attributes
                        .iter()
                        .all(|attr| match record.parameters.get(attr) {
                            Some(v) => other.parameters.get(attr) == Some(v),
                            None => true,
                        })
                })
                .count() as u64
        } else {
            inner
                .store
                .executions()
                .list(&filter, Page::first(1))
                .await?
                .total
        };
        if count >= threshold {
            return Ok(if on_limit == "cancel" {
                Verdict::Cancel
            } else {
                Verdict::Delay
            });
        }
    }
    Ok(Verdict::Run)
}

/// Executions a previous run left waiting go back on their queue (a duplicate item is
/// harmless: whoever comes second finds the execution already moved on).
pub(crate) async fn recover(inner: &Arc<Inner>) -> Result<u64, EngineError> {
    let filter = ExecutionFilter {
        statuses: vec![
            ExecutionStatus::Requested,
            ExecutionStatus::Delayed,
            ExecutionStatus::Scheduled,
        ],
        sort: crate::store::SortOrder::Ascending,
        ..ExecutionFilter::default()
    };
    let listing = inner.store.executions().list(&filter, Page::all()).await?;
    let mut count = 0;
    for record in listing.items {
        if let Some((queue, not_before)) = queue_for(&record) {
            enqueue(inner, &record, queue, not_before).await?;
            count += 1;
        }
    }
    Ok(count)
}

/// The delay StackStorm's retry policy waits when none is configured.
pub(crate) const RETRY_MIN_DELAY_MS: u64 = 100;

/// Whether the runner of `record`'s action supports pause and resume.
fn pausable(inner: &Inner, record: &ExecutionRecord) -> Result<(), EngineError> {
    let runner = record
        .runner
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match inner.runners.get(runner) {
        Some(r) if r.supports_pause() => Ok(()),
        _ => Err(EngineError::InvalidState(format!(
            "Runner \"{runner}\" does not support pause and resume."
        ))),
    }
}

/// A pause or resume request: the status it starts from, the one it sets, the statuses in
/// which it is already done, and how its messages and context key name it.
struct Request {
    from: ExecutionStatus,
    to: ExecutionStatus,
    done: [ExecutionStatus; 2],
    verb: &'static str,
    by: &'static str,
}

/// Move execution `id` from `request.from` to `request.to` on behalf of `user` (recording
/// who in the context). `Ok((record, false))` when it already was where the request leads.
async fn request(
    inner: &Arc<Inner>,
    id: &str,
    user: &str,
    request: &Request,
) -> Result<(ExecutionRecord, bool), EngineError> {
    let record = stored(inner, id).await?;
    pausable(inner, &record)?;
    if request.done.contains(&record.status) {
        return Ok((record, false));
    }
    if record.status != request.from {
        return Err(EngineError::InvalidState(format!(
            "Unable to {} execution \"{id}\" because it is not in a {} state (state is {})",
            request.verb, request.from, record.status
        )));
    }
    let now = inner.now();
    let updated = update_with(inner, record, |r| {
        if r.status != request.from {
            return false;
        }
        r.context
            .insert(request.by.into(), Value::String(user.to_owned()));
        lifecycle::transition(r, request.to, now).is_ok()
    })
    .await?;
    match updated {
        Some(u) => Ok((u, true)),
        None => Ok((stored(inner, id).await?, false)),
    }
}

/// Pause execution `id` (StackStorm's `request_pause`): a running execution of a runner that
/// supports pause becomes `pausing`; its runner stops after the current step and reports
/// `paused`. Running children that support pause are paused with it.
pub(crate) async fn pause(
    inner: &Arc<Inner>,
    id: &str,
    user: &str,
) -> Result<ExecutionRecord, EngineError> {
    let (updated, changed) = request(
        inner,
        id,
        user,
        &Request {
            from: ExecutionStatus::Running,
            to: ExecutionStatus::Pausing,
            done: [ExecutionStatus::Pausing, ExecutionStatus::Paused],
            verb: "pause",
            by: "paused_by",
        },
    )
    .await?;
    if changed {
        for child in &updated.children {
            if let Some(c) = inner.store.executions().get(child).await?
                && c.status == ExecutionStatus::Running
                && pausable(inner, &c).is_ok()
            {
                Box::pin(pause(inner, &c.id, user)).await?;
            }
        }
    }
    Ok(updated)
}

/// Resume paused execution `id` (StackStorm's `request_resume`): it becomes `resuming` and
/// goes back on the run queue; its runner is called again with the result it paused with.
pub(crate) async fn resume(
    inner: &Arc<Inner>,
    id: &str,
    user: &str,
) -> Result<ExecutionRecord, EngineError> {
    let (updated, changed) = request(
        inner,
        id,
        user,
        &Request {
            from: ExecutionStatus::Paused,
            to: ExecutionStatus::Resuming,
            done: [ExecutionStatus::Running, ExecutionStatus::Resuming],
            verb: "resume",
            by: "resumed_by",
        },
    )
    .await?;
    if changed {
        enqueue(inner, &updated, RUN_QUEUE, None).await?;
    }
    Ok(updated)
}

/// Wait until execution `id` satisfies `done` (or `deadline` passes, or the engine stops).
pub(crate) async fn wait_until(
    inner: &Inner,
    id: &str,
    deadline: Option<tokio::time::Instant>,
    done: impl Fn(&ExecutionRecord) -> bool,
) -> Result<ExecutionRecord, EngineError> {
    // Registered before the first read, so no update after it is missed.
    let watch = inner.watchers.watch([id]);
    loop {
        let record = stored(inner, id).await?;
        if done(&record) {
            return Ok(record);
        }
        // Wake on this execution's updates.
        let until = next_look(deadline);
        loop {
            if let Some(update) = watch.take().into_iter().find(|e| done(e)) {
                return Ok(Arc::unwrap_or_clone(update));
            }
            if !updated_before(inner, &watch, until).await? {
                break;
            }
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Err(EngineError::WaitTimeout(id.to_owned()));
        }
    }
}

/// When a wait looks at the store again: in 500 ms (updates made by other nodes are not
/// announced here), or at `deadline` when that is sooner.
fn next_look(deadline: Option<tokio::time::Instant>) -> tokio::time::Instant {
    let soon = tokio::time::Instant::now() + Duration::from_millis(500);
    deadline.map_or(soon, |d| soon.min(d))
}

/// Wait for an update on `watch`: `true` when one came, `false` when `until` came first.
async fn updated_before(
    inner: &Inner,
    watch: &super::watch::Watch,
    until: tokio::time::Instant,
) -> Result<bool, EngineError> {
    tokio::select! {
        woke = tokio::time::timeout_at(until, watch.changed()) => Ok(woke.is_ok()),
        () = inner.stopping.cancelled() => Err(EngineError::ShuttingDown),
    }
}

/// What [`wait_registered`] waits for.
pub(crate) struct Waiting<'a> {
    /// The executions waited for, all registered on the watch.
    pub(crate) ids: &'a [String],
    /// Those of `ids` registered only now: updates made before were not seen, so their
    /// stored status is read first.
    pub(crate) unread: &'a [String],
    /// The caller's own execution, registered on the watch too.
    pub(crate) own: Option<&'a str>,
    /// Whether `own` was registered only now.
    pub(crate) own_unread: bool,
}

/// Wait until at least one of `waiting.ids` has a status `done` accepts, `waiting.own` (the
/// caller's own execution, when given) satisfies `wake`, or `deadline` passes; returns the
/// records of `ids` that are done (possibly none). `updates` is a watch the caller keeps
/// registered between waits (a workflow waiting for its children again and again, see
/// [`super::watch`]), so only what was registered just now is read from the store before
/// waiting (one query for all of them, returning only the done ones); everything is read
/// again at least every 500 ms, for updates made by other nodes.
pub(crate) async fn wait_registered(
    inner: &Inner,
    updates: &super::watch::Watch,
    waiting: Waiting<'_>,
    deadline: Option<tokio::time::Instant>,
    done: impl Fn(ExecutionStatus) -> bool,
    wake: impl Fn(&ExecutionRecord) -> bool,
) -> Result<Vec<ExecutionRecord>, EngineError> {
    let wanted: std::collections::HashSet<&str> = waiting.ids.iter().map(String::as_str).collect();
    // The statuses `done` accepts, so the store returns only those records (one query for
    // all of `ids`, not one read each).
    let done_statuses: Vec<ExecutionStatus> = ExecutionStatus::ALL
        .iter()
        .copied()
        .filter(|s| done(*s))
        .collect();
    let mut first = true;
    loop {
        let (to_read, read_own) = if first {
            (waiting.unread, waiting.own_unread)
        } else {
            (waiting.ids, true)
        };
        first = false;
        let mut ready = Vec::new();
        for chunk in to_read.chunks(500) {
            let filter = ExecutionFilter {
                ids: chunk.to_vec(),
                statuses: done_statuses.clone(),
                ..ExecutionFilter::default()
            };
            let found = inner.store.executions().list(&filter, Page::all()).await?;
            ready.extend(found.items.into_iter().filter(|r| done(r.status)));
        }
        if !ready.is_empty() {
            return Ok(ready);
        }
        if let Some(own) = waiting.own
            && read_own
            && wake(&stored_without_children(inner, own).await?)
        {
            return Ok(Vec::new());
        }
        let until = next_look(deadline);
        loop {
            let mut ready: Vec<ExecutionRecord> = Vec::new();
            let mut woken = Vec::new();
            for update in updates.take() {
                if wanted.contains(update.id.as_str()) && done(update.status) {
                    // The latest update of each execution.
                    ready.retain(|r| r.id != update.id);
                    ready.push(Arc::unwrap_or_clone(update));
                } else if waiting.own == Some(update.id.as_str()) && wake(&update) {
                    woken.push(update);
                }
            }
            if !ready.is_empty() {
                // The caller handles its children first; the update of its own execution
                // (a pause or cancel asked for) wakes its next wait, which a watch kept
                // registered would otherwise never see again.
                updates.put_back(woken);
                return Ok(ready);
            }
            if !woken.is_empty() {
                return Ok(Vec::new());
            }
            if !updated_before(inner, updates, until).await? {
                break;
            }
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Ok(Vec::new());
        }
    }
}

/// StackStorm's inquiry GC: every pending inquiry with `ttl > 0` whose age in whole minutes
/// exceeds its `ttl` becomes `timeout`, its execution `timeout` (result kept), post-run runs
/// and an action-chain root is resumed so the chain can handle the failure. Returns how many
/// expired.
pub(crate) async fn expire_inquiries(inner: &Arc<Inner>) -> Result<usize, EngineError> {
    let mut expired = 0;
    let mut offset = 0;
    loop {
        let page = inner
            .store
            .inquiries()
            .list(
                Some(InquiryStatus::Pending),
                Page {
                    offset,
                    limit: Some(200),
                },
            )
            .await?;
        let count = page.items.len();
        for inquiry in page.items {
            let now = inner.now();
            let minutes = (now - inquiry.created_at).num_seconds() / 60;
            if inquiry.ttl == 0 || minutes <= i64::try_from(inquiry.ttl).unwrap_or(i64::MAX) {
                offset += 1;
                continue;
            }
            match inner
                .store
                .inquiries()
                .resolve(&inquiry.id, InquiryStatus::Timeout, None, now)
                .await
            {
                Ok(_) => {}
                // Answered in between.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            expired += 1;
            let Some(record) = inner.store.executions().get(&inquiry.id).await? else {
                continue;
            };
            let updated = update_with(inner, record, |r| {
                let result = r.result.clone();
                lifecycle::complete(r, ExecutionStatus::Timeout, result, now).is_ok()
            })
            .await?;
            if let Some(u) = updated {
                super::worker::post_run(inner, &u).await?;
                let user = inner.settings.system_user.clone();
                resume_root_chain(inner, &u, &user).await?;
            }
        }
        if count < 200 {
            return Ok(expired);
        }
    }
}
