//! Trigger instances: accepting them (dispatch) and the rules service that matches and
//! enforces them (StackStorm's st2rulesengine).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::executions::{
    NewExecution, TraceLink, build_execution, create_execution, queue_for, work_item,
};
use super::snapshot::{self, derived_id};
use super::{Creating, EngineError, EngineEvent, Inner};
use crate::datastore::{DatastoreError, KeyValue, KeyValueRead, KvScope};
use crate::rules::criteria::Environment;
use crate::rules::enforce::{Enforcement, Enforcer, RuleEnforcement, criteria_failure};
use crate::rules::matcher::{CompiledRule, TriggerInstance, TriggerRef};
use crate::schema::Schema;
use crate::store::{
    BatchWrite, CausedBy, ExecutionRecord, Page, RuleEnforcementRecord, SortOrder, StoreError,
    TraceComponent, TraceRecord, TriggerInstanceFilter, TriggerInstanceRecord,
    TriggerInstanceStatus,
};

/// A trigger to dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchRequest {
    /// The trigger's ref: a trigger type's ref for parameter-less triggers, or the ref of a
    /// trigger with parameters (see [`super::Engine::parameterized_triggers`]).
    pub trigger: String,
    /// Or the trigger given by type and parameters (a webhook URL, a timer); wins over
    /// `trigger`.
    pub trigger_ref: Option<TriggerRef>,
    /// The payload.
    pub payload: Value,
    /// The trace tag (default `trigger_instance-<id>`).
    pub trace_tag: Option<String>,
    /// Add the instance to this existing trace instead of starting one.
    pub trace_id: Option<String>,
    /// The instance's id (default: a new one). A dispatch repeated with the same id is
    /// accepted once.
    pub id: Option<String>,
    /// Check the payload against the trigger type's `payload_schema` (when the settings ask
    /// for validation). The engine's own triggers (action, notify, key-value) skip it, as
    /// StackStorm's internal dispatcher does.
    pub validate: bool,
}

impl DispatchRequest {
    /// Dispatch `trigger` with `payload`.
    pub fn new(trigger: impl Into<String>, payload: Value) -> Self {
        DispatchRequest {
            trigger: trigger.into(),
            trigger_ref: None,
            payload,
            trace_tag: None,
            trace_id: None,
            id: None,
            validate: true,
        }
    }

    /// Dispatch the trigger of type `trigger_type` with `parameters`.
    pub fn to_trigger(trigger: TriggerRef, payload: Value) -> Self {
        DispatchRequest {
            trigger: snapshot::trigger_ref_text(&trigger),
            trigger_ref: Some(trigger),
            payload,
            trace_tag: None,
            trace_id: None,
            id: None,
            validate: true,
        }
    }
}

/// A trigger instance waiting for the rules service.
#[derive(Debug)]
pub(crate) struct Pending {
    pub instance: Arc<TriggerInstanceRecord>,
    pub trigger: TriggerRef,
    pub trace_tag: Option<String>,
    pub trace_id: Option<String>,
    /// Matching it on an async thread already found that its rules read the datastore (or
    /// panicked): the rules service decides it on the blocking pool straight away.
    pub blocking: bool,
}

fn resolve_trigger(inner: &Inner, request: &DispatchRequest) -> Result<TriggerRef, EngineError> {
    if let Some(t) = &request.trigger_ref {
        if inner.catalog().trigger_type(&t.trigger_type).is_none() {
            return Err(EngineError::UnknownTrigger(t.trigger_type.clone()));
        }
        return Ok(t.clone());
    }
    if inner.catalog().trigger_type(&request.trigger).is_some() {
        return Ok(TriggerRef::of_type(request.trigger.clone()));
    }
    let triggers = inner.triggers.read().unwrap_or_else(|e| e.into_inner());
    triggers
        .get(&request.trigger)
        .cloned()
        .ok_or_else(|| EngineError::UnknownTrigger(request.trigger.clone()))
}

fn check_payload(inner: &Inner, trigger: &TriggerRef, payload: &Value) -> Result<(), EngineError> {
    if !inner.settings.validate_trigger_payload {
        return Ok(());
    }
    let catalog = inner.catalog();
    let Some(tt) = catalog.trigger_type(&trigger.trigger_type) else {
        return Ok(());
    };
    if tt.payload_schema.is_empty() {
        return Ok(());
    }
    let schema = {
        let mut cache = inner
            .payload_schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache
            .entry(tt.reference.clone())
            .or_insert_with(|| {
                Arc::new(Schema::for_object(Value::Object(tt.payload_schema.clone())))
            })
            .clone()
    };
    schema
        .validate(payload)
        .map(|_| ())
        .map_err(|violations| EngineError::InvalidPayload {
            trigger: trigger.trigger_type.clone(),
            message: violations
                .iter()
                .map(|v| v.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        })
}

/// A trigger instance checked and built, not yet stored.
pub(crate) struct Accepted {
    pending: Pending,
    /// No rule listens: stored `processed` at once with only its trace.
    unheard: bool,
}

/// Check a dispatch request and build its instance: `pending` for the rules service, or
/// `processed` when no rule listens to its trigger.
pub(crate) fn accept(inner: &Inner, request: DispatchRequest) -> Result<Accepted, EngineError> {
    let trigger = resolve_trigger(inner, &request)?;
    if request.validate {
        check_payload(inner, &trigger, &request.payload)?;
    }
    // No rule listens: nothing to match, so the instance is stored processed at once (the
    // rules service would only mark it so) and only its trace is recorded.
    let unheard = inner.matcher.rules_for(&trigger).is_empty();
    let record = TriggerInstanceRecord {
        id: request.id.unwrap_or_else(crate::store::new_id),
        trigger: snapshot::trigger_ref_text(&trigger),
        trigger_type: Some(trigger.trigger_type.clone()),
        payload: request.payload,
        occurrence_time: inner.now(),
        status: if unheard {
            TriggerInstanceStatus::Processed
        } else {
            TriggerInstanceStatus::Pending
        },
    };
    Ok(Accepted {
        pending: Pending {
            instance: Arc::new(record),
            trigger,
            trace_tag: request.trace_tag,
            trace_id: request.trace_id,
            blocking: false,
        },
        unheard,
    })
}

impl Accepted {
    /// The writes that store it, as [`dispatch`] makes them one by one: the instance, and for
    /// an unheard one its trace (which [`dispatch`] would let go when the trace it joins is
    /// gone; a batch holding these fails then, and the caller falls back to [`dispatch`]).
    pub(crate) fn writes(&self) -> Vec<BatchWrite> {
        use crate::store::TraceComponentKind as Kind;
        let record = &self.pending.instance;
        let mut writes = vec![BatchWrite::CreateTriggerInstance(Arc::clone(record))];
        if self.unheard {
            let component = instance_component(record);
            match &self.pending.trace_id {
                Some(trace_id) => writes.push(BatchWrite::AddTraceComponent {
                    trace_id: trace_id.clone(),
                    kind: Kind::TriggerInstance,
                    component,
                }),
                None => writes.push(BatchWrite::CreateTrace(TraceRecord {
                    id: trace_id_of(&self.pending),
                    trace_tag: trace_tag_of(&self.pending),
                    trigger_instances: vec![component],
                    rules: Vec::new(),
                    action_executions: Vec::new(),
                    start_timestamp: record.occurrence_time,
                })),
            }
        }
        writes
    }

    /// Once [`Accepted::writes`] committed: tell subscribers, hand a pending instance to the
    /// rules service.
    pub(crate) fn stored(self, inner: &Inner) {
        let record = &self.pending.instance;
        inner.emit_with(|| EngineEvent::TriggerInstance(Arc::clone(record)));
        if self.unheard {
            // Stored processed: the same record.
            inner.emit_with(|| EngineEvent::TriggerInstanceProcessed {
                instance: Arc::clone(record),
                executions: Vec::new(),
            });
        } else if inner.settings.roles.rules {
            hand_over(inner, self.pending);
        }
    }
}

/// The trace component of a trigger instance that no rule listens to.
fn instance_component(record: &TriggerInstanceRecord) -> TraceComponent {
    TraceComponent {
        object_id: record.id.clone(),
        reference: record.trigger.clone(),
        updated_at: record.occurrence_time,
        caused_by: None,
    }
}

/// Accept a trigger instance and store it.
///
/// * No rule listens: stored `processed` with its trace, one batch.
/// * Rules listen and this node runs them: they are matched here first. When that reads
///   nothing from the datastore (most rules), the instance is stored `processed` together
///   with what the rules started, one batch: what the rules service writes after the
///   instance is stored `pending`, in one commit instead of two.
/// * Otherwise (a datastore read, a batch that failed, an instance dispatched again with
///   its id): stored `pending` and handed to the rules service, which matches it again.
pub(crate) async fn dispatch(
    inner: &Arc<Inner>,
    request: DispatchRequest,
) -> Result<TriggerInstanceRecord, EngineError> {
    let redo = request.id.is_some();
    let mut accepted = accept(inner, request)?;
    if !redo {
        if accepted.unheard {
            if inner.store.write_batch(accepted.writes()).await.is_ok() {
                let record = TriggerInstanceRecord::clone(&accepted.pending.instance);
                accepted.stored(inner);
                return Ok(record);
            }
        } else {
            accepted = match accepted.matched(inner) {
                Ok(mut matched) => {
                    let writes = matched.writes();
                    let creating = matched.prepare(inner);
                    if inner.store.write_batch(writes).await.is_ok() {
                        return Ok(matched.stored(inner, creating));
                    }
                    matched.abandon(inner, creating)
                }
                Err(accepted) => *accepted,
            };
        }
    }
    let Accepted { pending, unheard } = accepted;
    let record = TriggerInstanceRecord::clone(&pending.instance);
    match inner.store.trigger_instances().create(&record).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) if redo => {
            // Already accepted (a step redone after a crash).
            return inner
                .store
                .trigger_instances()
                .get(&record.id)
                .await?
                .ok_or(EngineError::Store(StoreError::NotFound {
                    what: "trigger instance",
                    id: record.id,
                }));
        }
        Err(e) => return Err(e.into()),
    }
    inner.emit_with(|| EngineEvent::TriggerInstance(Arc::clone(&pending.instance)));
    if unheard {
        record_trace(
            inner,
            &pending,
            &trace_id_of(&pending),
            &trace_tag_of(&pending),
            instance_component(&record),
            Vec::new(),
            Vec::new(),
        )
        .await?;
        inner.emit_with(|| EngineEvent::TriggerInstanceProcessed {
            instance: Arc::clone(&pending.instance),
            executions: Vec::new(),
        });
        return Ok(record);
    }
    if inner.settings.roles.rules {
        // The instance is stored: if the service is gone it is picked up at the next start.
        hand_over(inner, pending);
    }
    Ok(record)
}

/// The rules service: take accepted instances and process them, several at once; every
/// `pending_sweep`, also take instances left pending longer than that.
pub(crate) async fn rules_service(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let permits = Arc::new(Semaphore::new(inner.settings.max_matching.max(1)));
    let mut sweep = tokio::time::interval(inner.settings.pending_sweep);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sweep.tick().await;
    loop {
        let pending = tokio::select! {
            p = rx.recv() => p,
            _ = sweep.tick() => {
                let _ = sweep_pending(&inner).await;
                continue;
            }
            () = inner.stopping.cancelled() => None,
        };
        let Some(pending) = pending else { break };
        let id = pending.instance.id.clone();
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            process(&inner, pending).await;
            inner
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            drop(permit);
        });
    }
}

/// Instances pending for longer than a sweep interval that this service does not hold
/// (queued or in progress).
async fn sweep_pending(inner: &Arc<Inner>) -> Result<(), StoreError> {
    let cutoff = inner.now()
        - chrono::TimeDelta::from_std(inner.settings.pending_sweep)
            .unwrap_or_else(|_| chrono::TimeDelta::seconds(5));
    let filter = TriggerInstanceFilter {
        statuses: vec![
            TriggerInstanceStatus::Pending,
            TriggerInstanceStatus::Processing,
        ],
        timestamp_lt: Some(cutoff),
        sort: SortOrder::Ascending,
        ..TriggerInstanceFilter::default()
    };
    let listing = inner
        .store
        .trigger_instances()
        .list(&filter, Page::first(1000))
        .await?;
    for instance in listing.items {
        let held = inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&instance.id);
        if !held {
            requeue(inner, instance);
        }
    }
    Ok(())
}

fn requeue(inner: &Inner, instance: TriggerInstanceRecord) {
    let trigger = {
        let triggers = inner.triggers.read().unwrap_or_else(|e| e.into_inner());
        triggers.get(&instance.trigger).cloned()
    }
    .unwrap_or_else(|| {
        TriggerRef::of_type(
            instance
                .trigger_type
                .clone()
                .unwrap_or_else(|| instance.trigger.clone()),
        )
    });
    hand_over(
        inner,
        Pending {
            instance: Arc::new(instance),
            trigger,
            trace_tag: None,
            trace_id: None,
            blocking: false,
        },
    );
}

/// Give an instance to the rules service unless it already holds it (queued or being
/// processed), so the sweep and recovery never double the work of a busy service.
fn hand_over(inner: &Inner, pending: Pending) {
    let id = pending.instance.id.clone();
    {
        let mut in_flight = inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if !in_flight.insert(id.clone()) {
            return;
        }
    }
    if inner.rules_tx.send(pending).is_err() {
        inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// Trigger instances a previous run accepted but did not finish, oldest first.
pub(crate) async fn recover(inner: &Arc<Inner>) -> Result<u64, StoreError> {
    let filter = TriggerInstanceFilter {
        statuses: vec![
            TriggerInstanceStatus::Pending,
            TriggerInstanceStatus::Processing,
        ],
        sort: SortOrder::Ascending,
        ..TriggerInstanceFilter::default()
    };
    let listing = inner
        .store
        .trigger_instances()
        .list(&filter, Page::all())
        .await?;
    let mut count = 0;
    for instance in listing.items {
        requeue(inner, instance);
        count += 1;
    }
    Ok(count)
}

/// What matching one instance decided.
struct Decision {
    enforcements: Vec<(Arc<CompiledRule>, Enforcement)>,
    failures: Vec<RuleEnforcement>,
    /// A criterion raised what StackStorm does not catch: the instance fails as a whole.
    unrecoverable: bool,
}

/// [`KeyValueRead`] for a decision made on an async thread: it reads nothing (the store's
/// reads block) and notes that it was asked, so the decision is made again on a blocking
/// thread with the datastore.
#[derive(Default)]
struct NoDatastore {
    asked: AtomicBool,
}

impl KeyValueRead for NoDatastore {
    fn get(&self, _scope: &KvScope, _name: &str) -> Result<Option<String>, DatastoreError> {
        self.asked.store(true, Ordering::Relaxed);
        Err(DatastoreError(
            "the datastore is read on a blocking thread".into(),
        ))
    }
}

/// [`decide`] for `pending`: on this thread when nothing it renders reads the datastore (most
/// rules: criteria and parameters without `st2kv`), else on the blocking pool (at once when
/// matching it at dispatch found so).
async fn decide_for(inner: &Arc<Inner>, pending: &Arc<Pending>) -> Result<Decision, EngineError> {
    if !pending.blocking {
        let probe = Arc::new(NoDatastore::default());
        let inline = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decide(inner, pending, probe.clone())
        }));
        if let Ok(decision) = inline
            && !probe.asked.load(Ordering::Relaxed)
        {
            return Ok(decision);
        }
    }
    // It read the datastore (or panicked): decided again where reads may block.
    let inner = inner.clone();
    let pending = pending.clone();
    tokio::task::spawn_blocking(move || {
        let kv = inner.kv_read.clone();
        decide(&inner, &pending, kv)
    })
    .await
    .map_err(|e| EngineError::Setup(format!("rules worker panicked: {e}")))
}

/// Match `pending` against the rules and enforce those that match, reading the datastore
/// through `kv`.
fn decide(inner: &Inner, pending: &Pending, kv: Arc<dyn KeyValueRead>) -> Decision {
    let catalog = inner.catalog();
    let instance = TriggerInstance {
        id: pending.instance.id.clone(),
        trigger: pending.trigger.clone(),
        payload: pending.instance.payload.clone(),
        occurrence_time: pending.instance.occurrence_time,
    };
    let now = inner.now();
    let env = Environment {
        jinja: &inner.jinja,
        kv: Some(kv.clone()),
        rhai: crate::rules::default_rhai(),
        now,
    };
    let mut decision = Decision {
        enforcements: Vec::new(),
        failures: Vec::new(),
        unrecoverable: false,
    };
    let matches = match inner.matcher.match_instance(&instance, &env) {
        Ok(m) => m,
        Err(_) => {
            decision.unrecoverable = true;
            return decision;
        }
    };
    for (rule, failures) in &matches.failed {
        for failure in failures {
            decision
                .failures
                .push(criteria_failure(&rule.rule, &instance, failure, now));
        }
    }
    let trace_tag = trace_tag_of(pending);
    let enforcer = Enforcer {
        catalog: &catalog,
        jinja: &inner.jinja,
        datastore: Some(kv),
        system_user: &inner.settings.system_user,
        trace_context: Some(json!({"id_": trace_id_of(pending), "trace_tag": trace_tag})),
        now,
    };
    for rule in matches.matched {
        let enforcement = enforcer.enforce(&rule.rule, &instance);
        decision.enforcements.push((rule, enforcement));
    }
    decision
}

fn trace_tag_of(pending: &Pending) -> String {
    pending
        .trace_tag
        .clone()
        .unwrap_or_else(|| format!("trigger_instance-{}", pending.instance.id))
}

fn trace_id_of(pending: &Pending) -> String {
    pending
        .trace_id
        .clone()
        .unwrap_or_else(|| derived_id(&pending.instance.id, "trace"))
}

/// A stable id for a rule, derived from its ref (rules loaded from packs have no database id).
pub(crate) fn rule_id(reference: &str) -> String {
    snapshot::content_id("rule", reference)
}

/// `pending`'s rules decided on this thread; `None` when that reads the datastore or panics
/// (`pending` is marked [`Pending::blocking`] then) or fails as a whole.
fn decide_here(inner: &Inner, pending: &mut Pending) -> Option<Decision> {
    let probe = Arc::new(NoDatastore::default());
    let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decide(inner, pending, probe.clone())
    }));
    match decided {
        Ok(decision) if !probe.asked.load(Ordering::Relaxed) => {
            (!decision.unrecoverable).then_some(decision)
        }
        _ => {
            pending.blocking = true;
            None
        }
    }
}

/// `pending`'s instance as stored `processed`.
fn processed(pending: &Pending) -> Arc<TriggerInstanceRecord> {
    let mut done = TriggerInstanceRecord::clone(&pending.instance);
    done.status = TriggerInstanceStatus::Processed;
    Arc::new(done)
}

/// An accepted instance whose rules are matched now, for a batch of the caller's: its
/// writes (the instance stored `processed`, and its outcome).
pub(crate) struct Matched {
    accepted: Accepted,
    outcome: Outcome,
    done: Arc<TriggerInstanceRecord>,
}

impl Accepted {
    /// Match its rules on this thread, to be written with the caller's batch
    /// ([`Matched::writes`]); `Err` (itself) when it is not for that (no rule listens, this node
    /// does not run rules, the rules read the datastore or matching fails): then
    /// [`Accepted::writes`] as usual.
    pub(crate) fn matched(mut self, inner: &Arc<Inner>) -> Result<Matched, Box<Accepted>> {
        if self.unheard || !inner.settings.roles.rules {
            return Err(Box::new(self));
        }
        let Some(decision) = decide_here(inner, &mut self.pending) else {
            return Err(Box::new(self));
        };
        let done = processed(&self.pending);
        let outcome = outcome_of(inner, &self.pending, &decision, Some(&done));
        Ok(Matched {
            accepted: self,
            outcome,
            done,
        })
    }
}

impl Matched {
    /// The writes that store it (taken: call once).
    pub(crate) fn writes(&mut self) -> Vec<BatchWrite> {
        std::mem::take(&mut self.outcome.writes)
    }

    /// Before the batch commits (see [`Outcome::prepare`]).
    pub(crate) fn prepare<'a>(&self, inner: &'a Inner) -> Vec<Creating<'a>> {
        self.outcome.prepare(inner)
    }

    /// The batch did not commit: the instance as accepted, to store `pending` instead.
    pub(crate) fn abandon(self, inner: &Inner, creating: Vec<Creating<'_>>) -> Accepted {
        self.outcome.abandon(inner, creating);
        self.accepted
    }

    /// The batch committed: announce the instance, its executions, and that it was
    /// processed. The instance as stored.
    pub(crate) fn stored(
        self,
        inner: &Inner,
        creating: Vec<Creating<'_>>,
    ) -> TriggerInstanceRecord {
        let Matched {
            accepted,
            outcome,
            done,
        } = self;
        let executions = outcome.announce(inner, &accepted.pending, true, creating);
        inner.emit_with(|| EngineEvent::TriggerInstanceProcessed {
            instance: Arc::clone(&done),
            executions,
        });
        Arc::unwrap_or_clone(done)
    }
}

/// Match, enforce and record one instance. Failures are recorded on the instance
/// (`processing_failed`) and in enforcement records; nothing here stops the service.
pub(crate) async fn process(inner: &Arc<Inner>, pending: Pending) {
    // A store failure leaves the instance pending: the sweep or the next start retries it.
    let _ = process_inner(inner, pending).await;
}

async fn process_inner(inner: &Arc<Inner>, pending: Pending) -> Result<(), EngineError> {
    let pending = Arc::new(pending);
    let decision = decide_for(inner, &pending).await?;
    let ti = &pending.instance;
    let now = inner.now();
    if decision.unrecoverable {
        inner
            .store
            .trigger_instances()
            .set_status(&ti.id, TriggerInstanceStatus::ProcessingFailed)
            .await?;
        let mut done = TriggerInstanceRecord::clone(ti);
        done.status = TriggerInstanceStatus::ProcessingFailed;
        inner.emit_with(|| EngineEvent::TriggerInstanceProcessed {
            instance: Arc::new(done),
            executions: Vec::new(),
        });
        return Ok(());
    }
    if let Some(execution_ids) = process_batched(inner, &pending, &decision).await {
        inner.emit_with(|| EngineEvent::TriggerInstanceProcessed {
            instance: processed(&pending),
            executions: execution_ids,
        });
        return Ok(());
    }
    // The batch failed (nothing of it was written): the same writes one by one, each with
    // its own handling of what a redo after a crash finds already stored.
    let trace_id = trace_id_of(&pending);
    let trace_tag = trace_tag_of(&pending);
    let ti_component = TraceComponent {
        object_id: ti.id.clone(),
        reference: ti.trigger.clone(),
        updated_at: now,
        caused_by: None,
    };
    let mut rule_components = Vec::new();
    let mut execution_components = Vec::new();
    let mut writes = Vec::new();
    for (index, failure) in decision.failures.into_iter().enumerate() {
        let record = RuleEnforcementRecord {
            id: derived_id(
                &ti.id,
                &format!("criteria-failure:{}:{index}", failure.rule.reference),
            ),
            enforcement: failure,
        };
        writes.push(record);
    }
    let catalog = inner.catalog();
    for (rule, enforcement) in decision.enforcements {
        let rule = &rule.rule;
        let rid = rule_id(&rule.reference);
        rule_components.push(TraceComponent {
            object_id: rid.clone(),
            reference: rule.reference.clone(),
            updated_at: now,
            caused_by: Some(CausedBy {
                kind: "trigger_instance".into(),
                id: ti.id.clone(),
            }),
        });
        let mut record = enforcement.record;
        record.rule.id = Some(rid.clone());
        if let Some(request) = enforcement.request {
            let execution_id = derived_id(&ti.id, &format!("execution:{}", rule.reference));
            let mut context = request.context;
            if let Some(Value::Object(rule_ctx)) = context.get_mut("rule") {
                rule_ctx.insert("id".into(), Value::String(rid.clone()));
            }
            let trigger_type = catalog
                .trigger_type(&pending.trigger.trigger_type)
                .map(|tt| inner.snapshots.trigger_type(tt));
            let new = NewExecution {
                id: execution_id.clone(),
                action: request.action,
                parameters: request.parameters,
                context,
                shell: request.shell,
                error: request.error,
                delay_ms: None,
                parent: None,
                rule: Some(inner.snapshots.rule(rule)),
                trigger: Some(inner.snapshots.trigger(&pending.trigger)),
                trigger_type,
                trigger_instance: Some(snapshot::trigger_instance_api(ti)),
                trace: TraceLink::Managed,
                notify: None,
            };
            match create_execution(inner, new).await {
                Ok(_) => {
                    record.execution_id = Some(execution_id.clone());
                    execution_components.push(TraceComponent {
                        object_id: execution_id,
                        reference: rule.action.reference.clone(),
                        updated_at: now,
                        caused_by: Some(CausedBy {
                            kind: "rule".into(),
                            id: format!("{rid}:{}", ti.id),
                        }),
                    });
                }
                Err(e) => {
                    record.status = crate::rules::enforce::EnforcementStatus::Failed;
                    record.failure_reason = Some(e.to_string());
                }
            }
        }
        writes.push(RuleEnforcementRecord {
            id: derived_id(&ti.id, &format!("enforcement:{}", rule.reference)),
            enforcement: record,
        });
    }
    let execution_ids: Vec<String> = execution_components
        .iter()
        .map(|c| c.object_id.clone())
        .collect();
    for record in &writes {
        match inner.store.rule_enforcements().create(record).await {
            Ok(()) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    record_trace(
        inner,
        &pending,
        &trace_id,
        &trace_tag,
        ti_component,
        rule_components,
        execution_components,
    )
    .await?;
    inner
        .store
        .trigger_instances()
        .set_status(&ti.id, TriggerInstanceStatus::Processed)
        .await?;
    inner.emit_with(|| EngineEvent::TriggerInstanceProcessed {
        instance: processed(&pending),
        executions: execution_ids,
    });
    Ok(())
}

/// What [`process_inner`] writes one by one, as one batch: the executions and their queue
/// items, the enforcements, the trace and the instance's status. The ids of the executions
/// started when the batch committed; `None` when it did not (nothing was written then).
async fn process_batched(
    inner: &Arc<Inner>,
    pending: &Pending,
    decision: &Decision,
) -> Option<Vec<String>> {
    let mut outcome = outcome_of(inner, pending, decision, None);
    let writes = std::mem::take(&mut outcome.writes);
    let creating = outcome.prepare(inner);
    if inner.store.write_batch(writes).await.is_err() {
        outcome.abandon(inner, creating);
        return None;
    }
    Some(outcome.announce(inner, pending, false, creating))
}

/// What a decided instance writes ([`process_batched`]), built but not written.
pub(crate) struct Outcome {
    writes: Vec<BatchWrite>,
    /// The executions its writes create.
    created: Vec<Arc<ExecutionRecord>>,
    execution_ids: Vec<String>,
}

impl Outcome {
    /// Before its writes commit: keep its executions for the runner workers (one may claim
    /// a queue item right after the commit) and hold back their updates until their created
    /// events.
    fn prepare<'a>(&self, inner: &'a Inner) -> Vec<Creating<'a>> {
        self.created
            .iter()
            .map(|execution| {
                inner.recent.keep(execution);
                inner.creating(&execution.id)
            })
            .collect()
    }

    /// Its writes did not commit.
    fn abandon(&self, inner: &Inner, creating: Vec<Creating<'_>>) {
        drop(creating);
        for execution in &self.created {
            inner.recent.forget(&execution.id);
        }
    }

    /// Its writes committed: announce the instance (when `new`, as accepted) and then its
    /// executions. The ids of the executions.
    fn announce(
        self,
        inner: &Inner,
        pending: &Pending,
        new: bool,
        creating: Vec<Creating<'_>>,
    ) -> Vec<String> {
        if new {
            inner.emit_with(|| EngineEvent::TriggerInstance(Arc::clone(&pending.instance)));
        }
        for (execution, creating) in self.created.into_iter().zip(creating) {
            creating.announce(execution);
        }
        self.execution_ids
    }
}

/// The writes [`process_batched`] commits, and the executions they create; for an instance
/// not stored yet (`new`: it as it is to be stored), the instance itself in place of its
/// status.
fn outcome_of(
    inner: &Arc<Inner>,
    pending: &Pending,
    decision: &Decision,
    new: Option<&Arc<TriggerInstanceRecord>>,
) -> Outcome {
    use crate::store::TraceComponentKind as Kind;
    let ti = &pending.instance;
    let now = inner.now();
    let mut writes: Vec<_> = new
        .map(|record| BatchWrite::CreateTriggerInstance(Arc::clone(record)))
        .into_iter()
        .collect();
    let mut enforcements = Vec::new();
    let mut created = Vec::new();
    let mut rule_components = Vec::new();
    let mut execution_components = Vec::new();
    for (index, failure) in decision.failures.iter().enumerate() {
        enforcements.push(BatchWrite::CreateRuleEnforcement(RuleEnforcementRecord {
            id: derived_id(
                &ti.id,
                &format!("criteria-failure:{}:{index}", failure.rule.reference),
            ),
            enforcement: failure.clone(),
        }));
    }
    let catalog = inner.catalog();
    for (rule, enforcement) in &decision.enforcements {
        let rule = &rule.rule;
        let rid = rule_id(&rule.reference);
        rule_components.push(TraceComponent {
            object_id: rid.clone(),
            reference: rule.reference.clone(),
            updated_at: now,
            caused_by: Some(CausedBy {
                kind: "trigger_instance".into(),
                id: ti.id.clone(),
            }),
        });
        let mut record = enforcement.record.clone();
        record.rule.id = Some(rid.clone());
        if let Some(request) = &enforcement.request {
            let execution_id = derived_id(&ti.id, &format!("execution:{}", rule.reference));
            let mut context = request.context.clone();
            if let Some(Value::Object(rule_ctx)) = context.get_mut("rule") {
                rule_ctx.insert("id".into(), Value::String(rid.clone()));
            }
            let trigger_type = catalog
                .trigger_type(&pending.trigger.trigger_type)
                .map(|tt| inner.snapshots.trigger_type(tt));
            let new = NewExecution {
                id: execution_id.clone(),
                action: request.action.clone(),
                parameters: request.parameters.clone(),
                context,
                shell: request.shell.clone(),
                error: request.error.clone(),
                delay_ms: None,
                parent: None,
                rule: Some(inner.snapshots.rule(rule)),
                trigger: Some(inner.snapshots.trigger(&pending.trigger)),
                trigger_type,
                trigger_instance: Some(snapshot::trigger_instance_api(ti)),
                trace: TraceLink::Managed,
                notify: None,
            };
            match build_execution(inner, new) {
                Ok((mut execution, _managed)) => {
                    record.execution_id = Some(execution_id.clone());
                    execution_components.push(TraceComponent {
                        object_id: execution_id,
                        reference: rule.action.reference.clone(),
                        updated_at: now,
                        caused_by: Some(CausedBy {
                            kind: "rule".into(),
                            id: format!("{rid}:{}", ti.id),
                        }),
                    });
                    let item = queue_for(&execution)
                        .map(|(queue, not_before)| work_item(&execution, queue, not_before));
                    // Shared with the created event.
                    execution.revision = 1;
                    let execution = Arc::new(execution);
                    created.push(Arc::clone(&execution));
                    writes.push(BatchWrite::CreateExecution(execution));
                    writes.extend(item.map(BatchWrite::Enqueue));
                }
                Err(e) => {
                    record.status = crate::rules::enforce::EnforcementStatus::Failed;
                    record.failure_reason = Some(e.to_string());
                }
            }
        }
        enforcements.push(BatchWrite::CreateRuleEnforcement(RuleEnforcementRecord {
            id: derived_id(&ti.id, &format!("enforcement:{}", rule.reference)),
            enforcement: record,
        }));
    }
    let execution_ids: Vec<String> = execution_components
        .iter()
        .map(|c| c.object_id.clone())
        .collect();
    writes.extend(enforcements);
    let ti_component = TraceComponent {
        object_id: ti.id.clone(),
        reference: ti.trigger.clone(),
        updated_at: now,
        caused_by: None,
    };
    if let Some(trace_id) = &pending.trace_id {
        let adds = std::iter::once((Kind::TriggerInstance, ti_component))
            .chain(rule_components.into_iter().map(|c| (Kind::Rule, c)))
            .chain(
                execution_components
                    .into_iter()
                    .map(|c| (Kind::ActionExecution, c)),
            );
        for (kind, component) in adds {
            writes.push(BatchWrite::AddTraceComponent {
                trace_id: trace_id.clone(),
                kind,
                component,
            });
        }
    } else {
        writes.push(BatchWrite::CreateTrace(TraceRecord {
            id: trace_id_of(pending),
            trace_tag: trace_tag_of(pending),
            trigger_instances: vec![ti_component],
            rules: rule_components,
            action_executions: execution_components,
            start_timestamp: ti.occurrence_time,
        }));
    }
    if new.is_none() {
        writes.push(BatchWrite::SetTriggerInstanceStatus {
            id: ti.id.clone(),
            status: TriggerInstanceStatus::Processed,
        });
    }
    Outcome {
        writes,
        created,
        execution_ids,
    }
}

async fn record_trace(
    inner: &Inner,
    pending: &Pending,
    trace_id: &str,
    trace_tag: &str,
    ti_component: TraceComponent,
    rules: Vec<TraceComponent>,
    executions: Vec<TraceComponent>,
) -> Result<(), EngineError> {
    use crate::store::TraceComponentKind as Kind;
    if pending.trace_id.is_some() {
        // Joining an existing trace (an actiontrigger joins its execution's).
        let traces = inner.store.traces();
        let mut adds = vec![(Kind::TriggerInstance, ti_component)];
        adds.extend(rules.into_iter().map(|c| (Kind::Rule, c)));
        adds.extend(executions.into_iter().map(|c| (Kind::ActionExecution, c)));
        for (kind, component) in adds {
            match traces.add_component(trace_id, kind, &component).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(());
    }
    let trace = TraceRecord {
        id: trace_id.to_owned(),
        trace_tag: trace_tag.to_owned(),
        trigger_instances: vec![ti_component],
        rules,
        action_executions: executions,
        start_timestamp: pending.instance.occurrence_time,
    };
    match inner.store.traces().create(&trace).await {
        Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A key-value pair as `core.st2.key_value_pair.*` payloads show it (secrets masked).
pub(crate) fn key_value_api(kv: &KeyValue) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), json!(kv.record.id));
    object.insert("name".into(), json!(kv.name));
    object.insert(
        "value".into(),
        if kv.record.secret {
            json!(snapshot::MASK)
        } else {
            json!(kv.record.value)
        },
    );
    object.insert("secret".into(), json!(kv.record.secret));
    object.insert("encrypted".into(), json!(kv.record.secret));
    object.insert("scope".into(), json!(kv.record.scope.as_str()));
    if let Some(user) = &kv.user {
        object.insert("user".into(), json!(user));
    }
    Value::Object(object)
}
