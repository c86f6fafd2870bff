//! Runner workers (StackStorm's st2actionrunner) and post-run work (st2notifier): claim an
//! execution under a lease, run it, write the result, dispatch the action and notify
//! triggers, apply the retry policy, then finish the lease.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::executions::{
    NewExecution, RETRY_MIN_DELAY_MS, SHELL_CONTEXT_KEY, TraceLink, create_execution, trace_of,
    update_with, write_changed,
};
use super::lifecycle::{self, is_failure};
use super::snapshot::{self, derived_id, isotime};
use super::triggers::DispatchRequest;
use super::{EngineError, EngineEvent, Inner, RUN_QUEUE, SCHEDULE_QUEUE};
use crate::expr::jinja::RenderContext;
use crate::expr::render::{ShellCapture, final_params_render, render_final_params};
use crate::expr::shell::ShellCommand;
use crate::rules::enforce::shell_parameters;
use crate::runner::{Cancellation, Canceller, OutputSink, RunContext, RunOutcome};
use crate::store::{
    BatchWrite, BatchWritten, ClaimRequest, ExecutionRecord, ExecutionStatus, Lease, NewOutput,
    OutputType, StoreError,
};

/// What the output writer receives.
#[derive(Debug)]
pub(crate) enum OutputMessage {
    Line(NewOutput),
    Flush(oneshot::Sender<()>),
}

/// Output of one execution: each line goes to the event stream at once and to the store in
/// batches.
struct EngineOutput {
    inner: Arc<Inner>,
    execution_id: String,
    action_ref: String,
    runner_ref: String,
    /// Whether a line was emitted (then the run's end waits until the lines are stored).
    emitted: Arc<AtomicBool>,
}

impl std::fmt::Debug for EngineOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOutput")
            .field("execution_id", &self.execution_id)
            .finish_non_exhaustive()
    }
}

impl OutputSink for EngineOutput {
    fn emit(&self, output_type: OutputType, data: &str) {
        self.emitted.store(true, Ordering::Relaxed);
        let chunk = NewOutput {
            execution_id: self.execution_id.clone(),
            action_ref: self.action_ref.clone(),
            runner_ref: self.runner_ref.clone(),
            timestamp: self.inner.now(),
            output_type,
            data: data.to_owned(),
        };
        // Queued for the store before it is announced: whoever sees the line and then asks
        // for the stored output (`Engine::output` flushes this queue) finds it there.
        let announced = self
            .inner
            .listened()
            .map(|events| (events, Arc::new(chunk.clone())));
        let _ = self.inner.output_tx.send(OutputMessage::Line(chunk));
        // After the execution's created event, as its updates (a runner may start before
        // its creator announces it).
        if let Some((events, chunk)) = announced {
            self.inner
                .created_first
                .send(events, &self.execution_id, EngineEvent::Output(chunk));
        }
    }
}

/// Append output in batches, in order.
pub(crate) async fn output_writer(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<OutputMessage>,
) {
    let mut batch = Vec::new();
    let mut waiters = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                OutputMessage::Line(l) => batch.push(l),
                OutputMessage::Flush(w) => waiters.push(w),
            }
            if batch.len() >= 512 {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            // Output is best effort: a failed append must not fail the execution.
            let _ = inner.store.execution_output().append(&batch).await;
            batch.clear();
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

/// Wait until every line emitted so far is stored.
pub(crate) async fn flush_output(inner: &Inner) {
    let (tx, rx) = oneshot::channel();
    if inner.output_tx.send(OutputMessage::Flush(tx)).is_ok() {
        let _ = rx.await;
    }
}

/// The runner service: claim run items while there is room, run each in its own task.
pub(crate) async fn runner_service(inner: Arc<Inner>) {
    let slots = inner.runner_slots.clone();
    let worker = format!("{}:runner", inner.settings.node_name);
    let mut running = tokio::task::JoinSet::new();
    loop {
        let free = slots.available_permits();
        if free == 0 {
            // Wait for a slot.
            let Ok(p) = slots.clone().acquire_owned().await else {
                break;
            };
            drop(p);
            continue;
        }
        let request = ClaimRequest {
            queue: RUN_QUEUE.to_owned(),
            worker: worker.clone(),
            tags: inner.settings.worker_tags.clone(),
            lease_for: inner.settings.lease,
            max_items: free.min(inner.settings.claim_batch.max(1)),
        };
        let Some(leases) = inner.claim_or_wait(&request).await else {
            break;
        };
        while running.try_join_next().is_some() {}
        let mut kept = Vec::new();
        for lease in leases {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            if let Some(record) = kept_start(&inner, &lease) {
                kept.push((lease, record, permit));
                continue;
            }
            let inner = inner.clone();
            running.spawn(async move {
                // A store failure leaves the item leased; it comes back when the lease
                // expires and is handled again.
                let _ = handle(&inner, lease).await;
                drop(permit);
            });
        }
        if !kept.is_empty() {
            // In its own task: the next claim does not wait for these writes.
            let inner = inner.clone();
            running.spawn(async move { start_kept(&inner, kept).await });
        }
    }
    // Stopping: each run ends `abandoned` and writes so before the service ends.
    while running.join_next().await.is_some() {}
}

/// One run item: do what the execution's status calls for.
async fn handle(inner: &Arc<Inner>, lease: Lease) -> Result<(), EngineError> {
    let queue = inner.store.queue();
    let Some(id) = lease
        .item
        .payload
        .get("execution_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        queue.finish(lease.reference()).await?;
        return Ok(());
    };
    let Some(record) = inner.store.executions().get(&id).await? else {
        queue.finish(lease.reference()).await?;
        return Ok(());
    };
    // Scheduled or resuming: run it. Running (pausing, canceling) under this item whose lease
    // expired, with a runner that keeps its state: run it again, it continues where the
    // previous run stopped.
    let runs = matches!(
        record.status,
        ExecutionStatus::Scheduled | ExecutionStatus::Resuming
    ) || (matches!(
        record.status,
        ExecutionStatus::Running | ExecutionStatus::Pausing | ExecutionStatus::Canceling
    ) && holder_item(&record) == Some(lease.item.id)
        && resumes_after_crash(inner, &record));
    if runs {
        return match run_execution(inner, &lease, record).await? {
            RunEnd::Open => finish(inner, &lease).await,
            RunEnd::ItemFinished => Ok(()),
            RunEnd::Left => release(inner, &lease).await,
        };
    }
    let now = inner.now();
    match record.status {
        ExecutionStatus::Running | ExecutionStatus::Canceling
            if holder_item(&record) == Some(lease.item.id) =>
        {
            // This item ran it and its lease expired: the runner is gone.
            let to = if record.status == ExecutionStatus::Canceling {
                ExecutionStatus::Canceled
            } else {
                ExecutionStatus::Abandoned
            };
            let updated = update_with(inner, record, |r| {
                let result = if to == ExecutionStatus::Canceled {
                    r.result.clone()
                } else {
                    json!({})
                };
                lifecycle::complete(r, to, result, now).is_ok()
            })
            .await?;
            if let Some(u) = updated {
                post_run(inner, &u).await?;
            }
        }
        ExecutionStatus::Canceling if holder_item(&record).is_none() => {
            let updated = update_with(inner, record, |r| {
                lifecycle::transition(r, ExecutionStatus::Canceled, now).is_ok()
            })
            .await?;
            if let Some(u) = updated {
                post_run(inner, &u).await?;
            }
        }
        ExecutionStatus::Requested | ExecutionStatus::Delayed => {
            super::executions::enqueue(inner, &record, SCHEDULE_QUEUE, None).await?;
        }
        // Finished before the item was: redo post-run (it writes nothing twice).
        status
            if status.is_completed()
                && (holder_item(&record) == Some(lease.item.id)
                    || holder_item(&record).is_none()) =>
        {
            post_run(inner, &record).await?;
        }
        _ => {}
    }
    finish(inner, &lease).await
}

/// The run item is done.
async fn finish(inner: &Arc<Inner>, lease: &Lease) -> Result<(), EngineError> {
    match inner.store.queue().finish(lease.reference()).await {
        Ok(()) | Err(StoreError::LeaseLost { .. }) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Give a run item back to its queue (its runner stopped with the engine and continues on
/// the next start).
async fn release(inner: &Arc<Inner>, lease: &Lease) -> Result<(), EngineError> {
    match inner.store.queue().release(lease.reference(), None).await {
        Ok(()) | Err(StoreError::LeaseLost { .. }) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether the execution's runner continues after a crash.
fn resumes_after_crash(inner: &Inner, record: &ExecutionRecord) -> bool {
    record
        .runner
        .get("name")
        .and_then(Value::as_str)
        .and_then(|name| inner.runners.get(name))
        .is_some_and(|runner| runner.resumes_after_crash())
}

/// The queue item whose claim started the execution.
fn holder_item(record: &ExecutionRecord) -> Option<i64> {
    record
        .runner_info
        .as_ref()
        .and_then(|i| i.get("queue_item"))
        .and_then(Value::as_i64)
}

/// Everything the runner needs, prepared off the async threads (templates may read the
/// datastore).
struct Prepared {
    context: RunContext,
}

/// What [`prepare_run`] reads of the execution (not the whole record: its snapshots stay
/// where they are).
struct RunInput {
    id: String,
    action_ref: String,
    context: Map<String, Value>,
    parameters: Map<String, Value>,
}

impl RunInput {
    fn of(record: &ExecutionRecord) -> Self {
        Self {
            id: record.id.clone(),
            action_ref: record.action_ref.clone(),
            context: record.context.clone(),
            parameters: record.parameters.clone(),
        }
    }
}

/// Whether [`prepare_run`] for `input` reads nothing from the datastore (so it may run on
/// an async thread): the action's pack has no config (whose dynamic values would be
/// rendered) and no parameter value, action parameter or runner parameter holds template
/// text. An unknown action or runner: the preparation only fails with its message.
fn prepares_inline(inner: &Inner, input: &RunInput) -> bool {
    let catalog = inner.catalog();
    let Some(action) = catalog.action(&input.action_ref) else {
        return true;
    };
    let Some(runner_type) = catalog.runner_type(&action.runner_type) else {
        return true;
    };
    catalog.config(action.pack()).is_none()
        && !input.parameters.values().any(holds_template)
        && !input.context.contains_key(SHELL_CONTEXT_KEY)
        && !action.parameters.may_hold_templates()
        && !runner_type.runner_parameters.values().any(holds_template)
}

/// Whether any string in `value` may be a Jinja template.
fn holds_template(value: &Value) -> bool {
    match value {
        Value::String(s) => crate::expr::jinja::is_template(s),
        Value::Array(items) => items.iter().any(holds_template),
        Value::Object(map) => {
            map.keys().any(|k| crate::expr::jinja::is_template(k))
                || map.values().any(holds_template)
        }
        _ => false,
    }
}

fn prepare_run(
    inner: &Arc<Inner>,
    record: RunInput,
    resume: Option<Value>,
    canceller_cancel: crate::runner::Cancellation,
    emitted: Arc<AtomicBool>,
) -> Result<Prepared, String> {
    let RunInput {
        id,
        action_ref,
        context: mut action_context,
        parameters,
    } = record;
    let catalog = inner.catalog();
    let action = catalog
        .action(&action_ref)
        .cloned()
        .ok_or_else(|| format!("Action \"{action_ref}\" cannot be found."))?;
    let runner_type = catalog
        .runner_type(&action.runner_type)
        .cloned()
        .ok_or_else(|| format!("Runner \"{}\" cannot be found.", action.runner_type))?;
    if !runner_type.enabled {
        return Err(format!(
            "Runner \"{}\" has been disabled by the administrator.",
            runner_type.name
        ));
    }
    let mut shell: BTreeMap<String, ShellCommand> = action_context
        .remove(SHELL_CONTEXT_KEY)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let capture = ShellCapture::new(
        shell_parameters(&action.runner_type)
            .iter()
            .filter(|n| !shell.contains_key(**n))
            .copied(),
    );
    // The context (the pack's config rendered, the action context copied) only when
    // something renders.
    let (mut runner_parameters, parameters) = if final_params_render(
        &runner_type.runner_parameters,
        &action.parameters,
        &parameters,
    ) {
        let pctx = inner.param_context(&catalog, &action, action_context.clone(), capture.clone());
        render_final_params(
            &inner.jinja,
            &runner_type.runner_parameters,
            &action.parameters,
            &parameters,
            &pctx,
        )
        .map_err(|e| e.to_string())?
    } else {
        (Map::new(), Map::new())
    };
    shell.extend(capture.take());
    let mut shell_values = BTreeMap::new();
    for (name, command) in shell {
        if runner_parameters.contains_key(&name) {
            runner_parameters.insert(name, Value::String(command.script));
            shell_values.extend(command.values);
        }
    }
    let pack_dir = catalog.pack(action.pack()).and_then(|p| p.path.clone());
    let user = action_context
        .get("user")
        .and_then(Value::as_str)
        .unwrap_or(&inner.settings.system_user)
        .to_owned();
    let config = inner.pack_config(&catalog, action.pack(), &user)?;
    let mut env = BTreeMap::new();
    env.insert("ST2_ACTION_PACK_NAME".to_owned(), action.pack().to_owned());
    env.insert("ST2_ACTION_EXECUTION_ID".to_owned(), id.clone());
    env.insert(
        "ST2_ACTION_API_URL".to_owned(),
        inner.settings.api_url.clone(),
    );
    env.insert("ST2_ACTION_DEBUG".to_owned(), "False".to_owned());
    let output = Arc::new(EngineOutput {
        inner: inner.clone(),
        execution_id: id.clone(),
        action_ref,
        runner_ref: runner_type.name.clone(),
        emitted,
    });
    Ok(Prepared {
        context: RunContext {
            execution_id: id.clone(),
            action,
            runner_type,
            parameters,
            runner_parameters,
            context: action_context,
            pack_dir,
            config,
            env,
            shell_values,
            output,
            cancel: canceller_cancel,
            clock: inner.clock.clone(),
            datastore: Some(inner.datastore.clone()),
            services: Some(Arc::new(super::runner_services::EngineServices::new(
                inner.clone(),
                id.clone(),
                user,
            ))),
            resume,
        },
    })
}

/// What the `running` write changes: the runner info (this lease), and the status from
/// scheduled or resuming; a record already running (run again after a crash) keeps its
/// status when `again`.
fn start_change(
    inner: &Inner,
    lease: &Lease,
    again: bool,
) -> impl FnMut(&mut ExecutionRecord) -> bool + use<> {
    let now = inner.now();
    let runner_info = json!({
        "hostname": inner.settings.node_name,
        "pid": std::process::id(),
        "queue_item": lease.item.id,
        "fence": lease.fence,
    });
    move |r: &mut ExecutionRecord| {
        r.runner_info = Some(runner_info.clone());
        match r.status {
            ExecutionStatus::Scheduled | ExecutionStatus::Resuming => {
                lifecycle::transition(r, ExecutionStatus::Running, now).is_ok()
            }
            // Run again after a crash: the status stays.
            ExecutionStatus::Running | ExecutionStatus::Pausing | ExecutionStatus::Canceling => {
                again
            }
            _ => false,
        }
    }
}

/// The `running` record of a claimed item's execution when this engine kept it as it stored
/// it `scheduled` ([`RecentExecutions`]): the kept record changed as the `running` write
/// changes it, not written yet. `None` when nothing was kept for it (it is read then).
///
/// [`RecentExecutions`]: super::recent::RecentExecutions
fn kept_start(inner: &Inner, lease: &Lease) -> Option<ExecutionRecord> {
    let id = lease.item.payload.get("execution_id")?.as_str()?;
    let mut record = inner.recent.take(id)?;
    (record.status == ExecutionStatus::Scheduled
        && holder_item(&record).is_none()
        && start_change(inner, lease, false)(&mut record))
    .then_some(record)
}

/// Start the executions [`kept_start`] found for a claim without reading them back: their
/// `running` writes as one batch at the kept revisions, then each run in its own task. When
/// the batch fails (a record changed since it was kept, by a cancel or another node; nothing
/// was written), each item is handled as one whose record is read from the store. Returns
/// when every run has ended.
async fn start_kept(inner: &Arc<Inner>, kept: Vec<(Lease, ExecutionRecord, OwnedSemaphorePermit)>) {
    let mut running = tokio::task::JoinSet::new();
    // Shared with the batch, not copied: each is the only holder again once it is written.
    let kept: Vec<_> = kept
        .into_iter()
        .map(|(lease, record, permit)| (lease, Arc::new(record), permit))
        .collect();
    let writes = kept
        .iter()
        .map(|(_, record, _)| BatchWrite::UpdateExecution(Arc::clone(record)))
        .collect();
    let written = inner.store.write_batch(writes).await;
    let Ok(written) = written else {
        for (lease, _, permit) in kept {
            let inner = inner.clone();
            running.spawn(async move {
                let _ = handle(&inner, lease).await;
                drop(permit);
            });
        }
        while running.join_next().await.is_some() {}
        return;
    };
    for ((lease, record, permit), outcome) in kept.into_iter().zip(written) {
        let mut record = Arc::unwrap_or_clone(record);
        if let BatchWritten::Execution { revision, children } = outcome {
            record.revision = revision;
            record.children = children;
        }
        inner.execution_updated(&record.id, record.status, || record.clone());
        let inner = inner.clone();
        running.spawn(async move {
            // As in `handle`: a store failure leaves the item leased until its lease expires.
            let _ = match run_started(&inner, &lease, record, None).await {
                Ok(RunEnd::Open) => finish(&inner, &lease).await,
                Ok(RunEnd::ItemFinished) => Ok(()),
                Ok(RunEnd::Left) => release(&inner, &lease).await,
                Err(e) => Err(e),
            };
            drop(permit);
        });
    }
    while running.join_next().await.is_some() {}
}

/// Run a scheduled (or resuming) execution, or one whose runner continues after a crash; how
/// its queue item stands afterwards.
async fn run_execution(
    inner: &Arc<Inner>,
    lease: &Lease,
    record: ExecutionRecord,
) -> Result<RunEnd, EngineError> {
    // A resumed execution's runner continues from the result it paused with.
    let resume = (record.status == ExecutionStatus::Resuming).then(|| record.result.clone());
    let again = matches!(
        record.status,
        ExecutionStatus::Running | ExecutionStatus::Pausing | ExecutionStatus::Canceling
    );
    let Some(running) = update_with(inner, record, start_change(inner, lease, again)).await? else {
        return Ok(RunEnd::Open);
    };
    run_started(inner, lease, running, resume).await
}

/// Run an execution whose `running` write (this lease's) is stored; how its queue item
/// stands afterwards.
async fn run_started(
    inner: &Arc<Inner>,
    lease: &Lease,
    running: ExecutionRecord,
    resume: Option<Value>,
) -> Result<RunEnd, EngineError> {
    let (canceller, cancellation) = Cancellation::new();
    inner
        .cancellers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(running.id.clone(), canceller.clone());
    let emitted = Arc::new(AtomicBool::new(false));
    let outcome = run_runner(
        inner,
        lease,
        &running,
        resume,
        cancellation,
        &canceller,
        &emitted,
    )
    .await;
    inner
        .cancellers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&running.id);
    if emitted.load(Ordering::Relaxed) {
        // The final status is written once its output is stored.
        flush_output(inner).await;
    }
    let Some((status, result, extra_context)) = outcome else {
        return Ok(RunEnd::Left);
    };
    // A workflow runner's canceled result is its progress so far (StackStorm keeps an
    // action chain's tasks); other runners' results give way to the cancel message.
    let keeps_result = running
        .runner
        .get("name")
        .and_then(Value::as_str)
        .and_then(|name| inner.runners.get(name))
        .is_some_and(|runner| runner.supports_pause());
    let now = inner.now();
    let finish = |r: &mut ExecutionRecord| {
        for (k, v) in &extra_context {
            r.context.insert(k.clone(), v.clone());
        }
        match r.status {
            ExecutionStatus::Canceled => false,
            ExecutionStatus::Canceling => {
                let result = if status == ExecutionStatus::Canceled && !keeps_result {
                    r.result.clone()
                } else {
                    result.clone()
                };
                let to = if status.is_completed() {
                    ExecutionStatus::Canceled
                } else {
                    return false;
                };
                lifecycle::complete(r, to, result, now).is_ok()
            }
            _ => {
                if status.is_completed() {
                    lifecycle::complete(r, status, result.clone(), now).is_ok()
                } else {
                    r.result = result.clone();
                    lifecycle::transition(r, status, now).is_ok()
                }
            }
        }
    };
    let id = running.id.clone();
    let mut next = running;
    if !finish(&mut next) {
        return Ok(RunEnd::Open);
    }
    // Most runs end with the result, the action trigger and the item's finish: one batch.
    // Else one write after the other.
    let finished = match finish_batched(inner, lease, next).await {
        Finished::Batched => return Ok(RunEnd::ItemFinished),
        Finished::Alone(next) => write_changed(inner, *next, true, finish).await?,
        // The batch failed and wrote nothing: start over from the stored record.
        Finished::Failed => {
            let stored = super::executions::stored(inner, &id).await?;
            update_with(inner, stored, finish).await?
        }
    };
    if let Some(f) = finished
        && f.status.is_completed()
    {
        post_run(inner, &f).await?;
    }
    Ok(RunEnd::Open)
}

/// How a run left its queue item.
enum RunEnd {
    /// Still leased: finish it.
    Open,
    /// Finished with the run's last batch.
    ItemFinished,
    /// The runner stopped with the engine and continues on the next start: give it back.
    Left,
}

/// How [`finish_batched`] went.
enum Finished {
    /// The batch committed.
    Batched,
    /// Not tried: the record (changed, not stored) is written on its own.
    Alone(Box<ExecutionRecord>),
    /// Tried and failed; nothing was written.
    Failed,
}

/// Write a completed run's record (already changed), what [`post_run`] writes for it and the
/// finish of its queue item as one batch, when post-run is only the action trigger (no retry
/// policy, no notifications; the trace known from the context). Rules listening to the action
/// trigger are matched here when they read nothing from the datastore, and what they start
/// joins the batch (the instance stored `processed`), as at dispatch.
async fn finish_batched(inner: &Arc<Inner>, lease: &Lease, record: ExecutionRecord) -> Finished {
    if !record.status.is_completed()
        || matches!(record.notify, Some(Value::Object(_)))
        || retry_policy(inner, &record).is_some()
    {
        return Finished::Alone(Box::new(record));
    }
    let Some(trace_id) = record
        .context
        .get("trace_context")
        .and_then(|t| t.get("id_"))
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Finished::Alone(Box::new(record));
    };
    // The action trigger, with what the rules listening to it start when they can be
    // matched here (else it is stored pending for the rules service).
    let mut action_trigger = if inner.settings.action_trigger {
        match super::triggers::accept(
            inner,
            action_trigger_request(inner, &record, Some(trace_id)),
        ) {
            Ok(accepted) => Some(accepted.matched(inner)),
            Err(_) => return Finished::Alone(Box::new(record)),
        }
    } else {
        None
    };
    // Shared with the batch, kept for the update event (whoever subscribes by the time it is
    // sent gets it).
    let record = Arc::new(record);
    let mut writes = vec![BatchWrite::UpdateExecution(Arc::clone(&record))];
    match &mut action_trigger {
        Some(Ok(matched)) => writes.extend(matched.writes()),
        Some(Err(accepted)) => writes.extend(accepted.writes()),
        None => {}
    }
    writes.push(BatchWrite::FinishWork(lease.reference()));
    let creating = match &action_trigger {
        Some(Ok(matched)) => matched.prepare(inner),
        _ => Vec::new(),
    };
    let Ok(written) = inner.store.write_batch(writes).await else {
        // Post-run is redone from the stored record, the action trigger with it.
        if let Some(Ok(matched)) = action_trigger {
            matched.abandon(inner, creating);
        }
        return Finished::Failed;
    };
    if let Some(BatchWritten::Execution { revision, children }) = written.into_iter().next() {
        let mut stored = Arc::unwrap_or_clone(record);
        stored.revision = revision;
        stored.children = children;
        let id = stored.id.clone();
        inner.execution_updated(&id, stored.status, || stored);
    }
    match action_trigger {
        Some(Ok(matched)) => {
            matched.stored(inner, creating);
        }
        Some(Err(accepted)) => (*accepted).stored(inner),
        None => {}
    }
    Finished::Batched
}

/// The `core.st2.generic.actiontrigger` dispatch for a completed execution.
fn action_trigger_request(
    inner: &Inner,
    record: &ExecutionRecord,
    trace_id: Option<String>,
) -> DispatchRequest {
    let catalog = inner.catalog();
    let action = catalog.action(&record.action_ref).cloned();
    let runner = action
        .as_ref()
        .and_then(|a| catalog.runner_type(&a.runner_type).cloned());
    let payload = json!({
        "execution_id": record.id,
        "status": record.status.as_str(),
        "start_timestamp": isotime(record.start_timestamp),
        "action_name": action.as_ref().map(|a| a.name.clone()).unwrap_or_default(),
        "action_ref": record.action_ref,
        "runner_ref": record.runner.get("name").cloned().unwrap_or(Value::Null),
        "parameters": snapshot::mask_secrets(&record.parameters, action.as_deref(), runner.as_deref()),
        "result": record.result,
    });
    let mut request = DispatchRequest::new("core.st2.generic.actiontrigger", payload);
    request.id = Some(derived_id(&record.id, "actiontrigger"));
    request.validate = false;
    request.trace_id = trace_id;
    request
}

/// Run the runner in its own task (a panic fails the execution, not the engine), extending
/// the lease while it runs and noticing a cancel requested elsewhere. `None` when the engine
/// stopped a runner that resumes after a crash (it is left as it is, to continue later).
/// `emitted` is set when the run emits output.
async fn run_runner(
    inner: &Arc<Inner>,
    lease: &Lease,
    record: &ExecutionRecord,
    resume: Option<Value>,
    cancellation: crate::runner::Cancellation,
    canceller: &Canceller,
    emitted: &Arc<AtomicBool>,
) -> Option<(ExecutionStatus, Value, Map<String, Value>)> {
    let input = RunInput::of(record);
    let prepared = if prepares_inline(inner, &input) {
        // Nothing to render and no pack config: no datastore read, so no blocking thread.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            prepare_run(inner, input, resume, cancellation, Arc::clone(emitted))
        }))
        .map_err(|_| "preparing the run panicked".to_owned())
    } else {
        let inner2 = inner.clone();
        let emitted = Arc::clone(emitted);
        tokio::task::spawn_blocking(move || {
            prepare_run(&inner2, input, resume, cancellation, emitted)
        })
        .await
        .map_err(|e| format!("preparing the run panicked: {e}"))
    };
    let prepared = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(message)) | Err(message) => return Some(failed(message)),
    };
    let runner_name = prepared.context.runner_type.name.clone();
    let Some(runner) = inner.runners.get(&runner_name).cloned() else {
        return Some(failed(format!(
            "Runner \"{runner_name}\" is not available in this engine."
        )));
    };
    let is_workflow = prepared.context.action.is_workflow();
    let durable = runner.resumes_after_crash();
    let mut task = tokio::spawn(async move { runner.run(prepared.context).await });
    let heartbeat = inner.settings.heartbeat;
    let joined = loop {
        tokio::select! {
            joined = &mut task => break joined,
            () = tokio::time::sleep(heartbeat) => {
                match inner.store.queue().heartbeat(lease.reference(), inner.settings.lease).await {
                    Ok(_) => {}
                    // Another holder has it now. A runner that keeps its state is only
                    // stopped here (the other run continues it; cancelling would cancel its
                    // children); others are cancelled.
                    Err(StoreError::LeaseLost { .. }) if durable => {
                        task.abort();
                        return None;
                    }
                    Err(StoreError::LeaseLost { .. }) => canceller.cancel(),
                    Err(_) => {}
                }
                if let Ok(Some(current)) = inner.store.executions().get(&record.id).await
                    && matches!(current.status, ExecutionStatus::Canceling | ExecutionStatus::Canceled)
                {
                    canceller.cancel();
                }
            }
            () = inner.stopping.cancelled() => {
                if durable {
                    // It continues on the next start, from its saved state.
                    task.abort();
                    return None;
                }
                // Shutting down with work in flight: StackStorm's action runner marks it
                // abandoned. Stop the runner (it kills its process) and say so.
                canceller.cancel();
                if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
                    task.abort();
                }
                return Some((ExecutionStatus::Abandoned, json!({}), Map::new()));
            }
        }
    };
    Some(match joined {
        Ok(Ok(outcome)) => shape(outcome, is_workflow),
        Ok(Err(e)) => failed(e.to_string()),
        Err(e) if e.is_panic() => {
            let message = e
                .into_panic()
                .downcast::<String>()
                .map(|s| *s)
                .or_else(|p| p.downcast::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|_| "unknown panic".to_owned());
            failed(format!("The runner panicked: {message}"))
        }
        Err(_) => (ExecutionStatus::Abandoned, json!({}), Map::new()),
    })
}

fn failed(message: String) -> (ExecutionStatus, Value, Map<String, Value>) {
    (
        ExecutionStatus::Failed,
        json!({"error": message, "traceback": ""}),
        Map::new(),
    )
}

/// StackStorm's handling of what a runner returned: string results are JSON-decoded when
/// they parse; an empty result of a non-workflow action is a failure.
fn shape(outcome: RunOutcome, is_workflow: bool) -> (ExecutionStatus, Value, Map<String, Value>) {
    let RunOutcome {
        status,
        result,
        context,
    } = outcome;
    let result = match result {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    };
    if result.is_null() && !is_workflow && status.is_completed() {
        return failed("Failed to execute action.".to_owned());
    }
    let allowed = matches!(
        status,
        ExecutionStatus::Succeeded
            | ExecutionStatus::Failed
            | ExecutionStatus::Timeout
            | ExecutionStatus::Canceled
            | ExecutionStatus::Abandoned
            | ExecutionStatus::Running
            | ExecutionStatus::Pending
            | ExecutionStatus::Paused
    );
    if !allowed {
        return failed(format!(
            "The runner returned status {status}, which a runner cannot report."
        ));
    }
    (status, result, context)
}

/// After an execution completed: the retry policy, the notify triggers and the action
/// trigger (StackStorm's notifier). Every record written here has an id derived from the
/// execution's, so running this twice writes nothing twice.
pub(crate) async fn post_run(
    inner: &Arc<Inner>,
    record: &ExecutionRecord,
) -> Result<(), EngineError> {
    if !record.status.is_completed() {
        return Ok(());
    }
    apply_retry(inner, record).await?;
    let trace_id = match record
        .context
        .get("trace_context")
        .and_then(|t| t.get("id_"))
        .and_then(Value::as_str)
    {
        Some(id) => Some(id.to_owned()),
        None => trace_of(inner, &record.id).await,
    };
    send_notifications(inner, record, trace_id.as_deref()).await?;
    if inner.settings.action_trigger {
        let request = action_trigger_request(inner, record, trace_id);
        super::triggers::dispatch(inner, request).await?;
    }
    Ok(())
}

async fn send_notifications(
    inner: &Arc<Inner>,
    record: &ExecutionRecord,
    trace_id: Option<&str>,
) -> Result<(), EngineError> {
    let Some(Value::Object(notify)) = &record.notify else {
        return Ok(());
    };
    let mut kinds = vec![("on-complete", "completed")];
    if record.status == ExecutionStatus::Succeeded {
        kinds.push(("on-success", "succeeded"));
    }
    if is_failure(record.status) {
        kinds.push(("on-failure", "failed"));
    }
    for (kind, word) in kinds {
        let Some(settings) = notify.get(kind) else {
            continue;
        };
        let routes: Vec<String> = settings
            .get("routes")
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty())
            .or_else(|| settings.get("channels").and_then(Value::as_array))
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if routes.is_empty() {
            continue;
        }
        let (message, data) = {
            let inner2 = inner.clone();
            let record2 = record.clone();
            let settings2 = settings.clone();
            let word = word.to_owned();
            tokio::task::spawn_blocking(move || {
                render_notification(&inner2, &record2, &settings2, &word)
            })
            .await
            .unwrap_or_else(|e| (format!("notification failed to render: {e}"), Map::new()))
        };
        for route in routes {
            let payload = json!({
                "execution_id": record.id,
                "status": record.status.as_str(),
                "start_timestamp": isotime(record.start_timestamp),
                "end_timestamp": record.end_timestamp.map(isotime),
                "action_ref": record.action_ref,
                "runner_ref": record.runner.get("name").cloned().unwrap_or(Value::Null),
                "route": route,
                "channel": route,
                "message": message,
                "data": data,
            });
            let mut request = DispatchRequest::new("core.st2.generic.notifytrigger", payload);
            request.id = Some(derived_id(&record.id, &format!("notify:{kind}:{route}")));
            request.validate = false;
            request.trace_id = trace_id.map(str::to_owned);
            super::triggers::dispatch(inner, request).await?;
        }
    }
    Ok(())
}

fn render_notification(
    inner: &Inner,
    record: &ExecutionRecord,
    settings: &Value,
    word: &str,
) -> (String, Map<String, Value>) {
    let mut vars = Map::new();
    vars.insert(
        "action_parameters".into(),
        Value::Object(record.parameters.clone()),
    );
    vars.insert(
        "action_context".into(),
        Value::Object(record.context.clone()),
    );
    vars.insert("action_results".into(), record.result.clone());
    let ctx = RenderContext::new(vars).with_kv(crate::expr::jinja::KvAccess {
        store: inner.kv_read.clone(),
        user: None,
        legacy_system: false,
    });
    // As StackStorm: a template that fails to render is sent as written.
    let message = match settings.get("message").and_then(Value::as_str) {
        Some(m) => inner.jinja.render(m, &ctx).unwrap_or_else(|_| m.to_owned()),
        None => format!("Action {} {word}.", record.action_ref),
    };
    let written = match settings.get("data") {
        Some(Value::Object(d)) => d.clone(),
        _ => Map::new(),
    };
    let mut data = Map::new();
    for (k, v) in &written {
        let value = match v {
            Value::String(s) => match inner.jinja.render(s, &ctx) {
                Ok(text) => Value::String(text),
                Err(_) => {
                    data = written.clone();
                    break;
                }
            },
            other => other.clone(),
        };
        data.insert(k.clone(), value);
    }
    data.insert(
        "result".into(),
        Value::String(snapshot::py_json_dumps(&record.result)),
    );
    (message, data)
}

/// StackStorm's `action.retry`: a failed (or timed-out) top-level execution is requested
/// again, after the policy's delay, up to `max_retry_count` times. The delay is the new
/// execution's `delay`, so it waits in the store (StackStorm waits in memory).
async fn apply_retry(inner: &Arc<Inner>, record: &ExecutionRecord) -> Result<(), EngineError> {
    if record.context.contains_key("parent") || record.parent.is_some() {
        return Ok(());
    }
    let Some(policy) = retry_policy(inner, record) else {
        return Ok(());
    };
    let retry_on = policy
        .parameters
        .get("retry_on")
        .and_then(Value::as_str)
        .unwrap_or("failure");
    let applies = match retry_on {
        "timeout" => record.status == ExecutionStatus::Timeout,
        _ => matches!(
            record.status,
            ExecutionStatus::Failed | ExecutionStatus::Abandoned
        ),
    };
    if !applies {
        return Ok(());
    }
    let max = policy
        .parameters
        .get("max_retry_count")
        .and_then(Value::as_u64)
        .unwrap_or(2);
    let count = record
        .context
        .get("policies")
        .and_then(|p| p.get("retry"))
        .and_then(|r| r.get("retry_count"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if count + 1 > max {
        return Ok(());
    }
    let delay_ms = policy
        .parameters
        .get("delay")
        .and_then(Value::as_f64)
        .map(|s| (s * 1000.0).max(0.0) as u64)
        .filter(|d| *d > 0)
        .unwrap_or(RETRY_MIN_DELAY_MS);
    let mut context = record.context.clone();
    let policies = context.entry("policies").or_insert_with(|| json!({}));
    if let Value::Object(p) = policies {
        p.insert(
            "retry".into(),
            json!({
                "applied_policy": policy.reference,
                "retry_count": count + 1,
                "retried_liveaction_id": record.id,
            }),
        );
    }
    let shell = context
        .remove(SHELL_CONTEXT_KEY)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let trace = match trace_of(inner, &record.id).await {
        Some(t) => TraceLink::Join(t),
        None => TraceLink::Managed,
    };
    let new = NewExecution {
        id: derived_id(&record.id, "retry"),
        action: record.action_ref.clone(),
        parameters: record.parameters.clone(),
        context,
        shell,
        error: None,
        delay_ms: Some(delay_ms),
        parent: None,
        rule: record.rule.clone(),
        trigger: record.trigger.clone(),
        trigger_type: record.trigger_type.clone(),
        trigger_instance: record.trigger_instance.clone(),
        trace,
        notify: record.notify.clone(),
    };
    create_execution(inner, new).await?;
    Ok(())
}

/// The enabled `action.retry` policy of a top-level execution's action, if any.
fn retry_policy(inner: &Inner, record: &ExecutionRecord) -> Option<Arc<crate::model::Policy>> {
    if record.context.contains_key("parent") || record.parent.is_some() {
        return None;
    }
    inner
        .catalog()
        .policies()
        .find(|p| {
            p.enabled && p.resource_ref == record.action_ref && p.policy_type == "action.retry"
        })
        .cloned()
}
