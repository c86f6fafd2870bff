//! The conductor: workflow state + event → new state + next tasks, with no I/O.
//!
//! [`Workflow`] is the compiled, shared part (spec, graph, evaluator), kept in an `Arc` and
//! never re-parsed. [`ConductorState`] is the plain, serde-serialisable part a driver stores
//! between events: the workflow status, the list of contexts (each task refers to contexts by
//! index, so nothing is deep-copied per task), the routes, the sequence of task state
//! entries, the staged tasks, the error log and the output.
//!
//! A driver calls [`Conductor::start`], then repeatedly [`Conductor::next_tasks`], sends
//! `running` and completion events with [`Conductor::update_task`], and reads the output once
//! the status is completed.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use st2_core::expr::Scope;

use crate::expression::Evaluator;
use crate::graph::WorkflowGraph;
use crate::spec::{Join, SpecError, WorkflowSpec};
use crate::status::{
    Command, ItemsContext, ItemsRest, Status, WorkflowContext, task_on_action, task_on_command,
    workflow_on_request, workflow_on_task,
};

/// A compiled workflow: spec, graph and evaluator, shared between conductors.
#[derive(Debug)]
pub struct Workflow {
    /// The spec.
    pub spec: WorkflowSpec,
    /// The composed graph.
    pub graph: WorkflowGraph,
    /// The expression evaluator.
    pub evaluator: Evaluator,
    /// Tasks whose expressions read the conductor state (`succeeded()`, `task_status()`, ...).
    state_readers: std::collections::HashSet<String>,
    /// The output reads the conductor state.
    output_reads_state: bool,
}

/// The functions that read the conductor state (`__state`).
/// (`task(` is StackStorm's `task()`, which needs the routes.)
const STATE_READERS: [&str; 6] = [
    "task_status",
    "__state",
    "succeeded",
    "failed",
    "completed",
    "task(",
];

impl Workflow {
    /// Whether an expression calls StackStorm's `task()` (the driver then keeps the task
    /// records in the conductor with [`Conductor::set_task_records`]).
    pub fn uses_task_records(&self) -> bool {
        self.spec.mentions("task(")
    }

    /// Compile an inspected spec.
    ///
    /// # Errors
    /// [`SpecError`] when inspection finds problems.
    pub fn compile(spec: WorkflowSpec, evaluator: Evaluator) -> Result<Arc<Workflow>, SpecError> {
        spec.inspect(&evaluator)?;
        let graph = WorkflowGraph::compose(&spec);
        let reads = |v: &Value| STATE_READERS.iter().any(|f| crate::spec::mentions_in(v, f));
        let state_readers = spec
            .tasks
            .iter()
            .filter(|t| {
                STATE_READERS.iter().any(|f| t.mentions(f))
                    || graph
                        .find(&t.name)
                        .and_then(|n| graph.nodes[n].retry.as_ref())
                        .and_then(|r| r.when.clone())
                        .is_some_and(|w| reads(&Value::String(w)))
            })
            .map(|t| t.name.clone())
            .collect();
        let output_reads_state = spec.output.iter().any(|(_, v)| reads(v));
        Ok(Arc::new(Workflow {
            spec,
            graph,
            evaluator,
            state_readers,
            output_reads_state,
        }))
    }
}

/// Retry bookkeeping of a task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RetryState {
    /// Condition.
    pub when: Option<String>,
    /// Retries allowed.
    pub count: i64,
    /// Delay before each retry.
    pub delay: Option<i64>,
    /// Retries done.
    pub tally: i64,
}

/// One task state entry (one run of a task on a route).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskEntry {
    /// Task name.
    pub id: String,
    /// Route index.
    pub route: usize,
    /// Indexes of the contexts merged into the task's input context.
    #[serde(with = "indexes")]
    pub ctxs_in: Vec<usize>,
    /// Context published per transition id.
    #[serde(default)]
    pub ctxs_out: BTreeMap<String, usize>,
    /// Back references `"<prev>__t<key>"` → sequence index.
    #[serde(default)]
    pub prev: BTreeMap<String, usize>,
    /// Evaluated transitions `"<target>__t<key>"` → fired.
    #[serde(default)]
    pub next: BTreeMap<String, bool>,
    /// Status (`None` until the first event).
    pub status: Option<Status>,
    /// Terminal entry.
    #[serde(default)]
    pub term: bool,
    /// Retry bookkeeping.
    #[serde(default)]
    pub retry: Option<RetryState>,
}

/// A task waiting to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagedTask {
    /// Task name.
    pub id: String,
    /// Route index.
    pub route: usize,
    /// Input context indexes.
    #[serde(with = "indexes")]
    pub ctxs_in: Vec<usize>,
    /// Back references.
    #[serde(default)]
    pub prev: BTreeMap<String, usize>,
    /// Inbound criteria satisfied.
    pub ready: bool,
    /// With-items item statuses (`None` = not started).
    #[serde(default)]
    pub items: Option<Vec<Option<Status>>>,
    /// A failed with-items task kept for rerun.
    #[serde(default)]
    pub completed: bool,
    /// Returned even after the workflow failed.
    #[serde(default)]
    pub run_on_fail: bool,
    /// Set when staged for a retry.
    #[serde(default)]
    pub retry: Option<RetryState>,
}

/// The serialisable state of one workflow execution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConductorState {
    /// Workflow status (`None` before start).
    pub status: Option<Status>,
    /// Contexts; 0 is the initial one.
    pub contexts: Vec<Map<String, Value>>,
    /// Routes: the split transition ids that opened each.
    pub routes: Vec<Vec<String>>,
    /// Task state entries in creation order.
    pub sequence: Vec<TaskEntry>,
    /// `"<task>__r<route>"` → latest sequence index.
    pub tasks: BTreeMap<String, usize>,
    /// Staged tasks.
    pub staged: Vec<StagedTask>,
    /// Error log (`{type, message, task_id?, route?, task_transition_id?, result?}`).
    pub errors: Vec<Value>,
    /// Rendered output.
    pub output: Option<Map<String, Value>>,
    /// Output already rendered.
    #[serde(default)]
    pub output_rendered: bool,
}

/// One action to run for a task.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    /// Rendered action reference (`None` for an action-less task).
    pub action: Option<Value>,
    /// Rendered input.
    pub input: Value,
    /// Item index for with-items.
    pub item_id: Option<usize>,
}

/// A task handed out by [`Conductor::next_tasks`].
#[derive(Debug, Clone, PartialEq)]
pub struct NextTask {
    /// Task name.
    pub id: String,
    /// Route.
    pub route: usize,
    /// Actions to run now.
    pub actions: Vec<ActionRequest>,
    /// Delay in seconds (task delay, or the retry delay).
    pub delay: Option<i64>,
    /// Timeout in seconds of each action of the task (`timeout:`, an addition to Orquesta).
    pub timeout: Option<i64>,
    /// Number of items for with-items tasks.
    pub items_count: Option<usize>,
    /// True for with-items tasks.
    pub with_items: bool,
}

/// An event for a task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskEvent {
    /// An action execution reached `status`.
    Action {
        /// Status.
        status: Status,
        /// Result.
        result: Value,
    },
    /// One item of a with-items task reached `status`.
    Item {
        /// Item index.
        item_id: usize,
        /// Status.
        status: Status,
        /// The item result.
        result: Value,
        /// Results of every item so far, in item order.
        accumulated: Value,
    },
}

/// Why an event could not be applied (a driver error, not a workflow failure).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConductorError {
    /// The task is neither staged nor has a state entry on that route.
    #[error("task \"{0}\" on route {1} is not staged and has not run")]
    UnknownTask(String, usize),
    /// The workflow cannot move to the requested status.
    #[error("the workflow cannot go from {from} to {to}")]
    InvalidTransition {
        /// Current status.
        from: String,
        /// Requested status.
        to: String,
    },
}

enum Inbound {
    Satisfied,
    Wip,
    NotSatisfied,
}

/// A conductor: a compiled workflow and the state of one execution.
#[derive(Debug, Clone)]
pub struct Conductor {
    workflow: Arc<Workflow>,
    /// The state (serialise it to store the execution).
    pub state: ConductorState,
    /// StackStorm's task execution records (`"<task>__r<route>"` → record) for `task()`;
    /// kept by the driver, not part of the state.
    task_records: Option<Arc<Value>>,
}

fn task_key(id: &str, route: usize) -> String {
    format!("{id}__r{route}")
}

/// Recursive merge: maps are merged key by key, anything else replaced.
pub fn merge_into(left: &mut Map<String, Value>, right: &Map<String, Value>) {
    for (k, v) in right {
        match (left.get_mut(k), v) {
            (Some(Value::Object(l)), Value::Object(r)) => merge_into(l, r),
            _ => {
                left.insert(k.clone(), v.clone());
            }
        }
    }
}

impl Conductor {
    /// A conductor for a new execution (nothing evaluated yet).
    pub fn new(workflow: Arc<Workflow>) -> Self {
        Conductor {
            workflow,
            state: ConductorState::default(),
            task_records: None,
        }
    }

    /// A conductor over a stored state.
    pub fn restore(workflow: Arc<Workflow>, state: ConductorState) -> Self {
        Conductor {
            workflow,
            state,
            task_records: None,
        }
    }

    /// The task execution records StackStorm's `task()` reads: `"<task>__r<route>"` → the
    /// newest record of that task.
    pub fn set_task_records(&mut self, records: Map<String, Value>) {
        self.task_records = Some(Arc::new(Value::Object(records)));
    }

    /// The workflow status.
    pub fn status(&self) -> Option<Status> {
        self.state.status
    }

    /// Render inputs and vars into the initial context, stage the start tasks and set the
    /// workflow `running` (or `failed` when inputs or vars do not render).
    pub fn start(&mut self, inputs: &Map<String, Value>, parent: &Map<String, Value>) {
        let wf = self.workflow.clone();
        let mut rolling = parent.clone();
        let mut errors = Vec::new();
        for (name, default) in &wf.spec.input {
            let value = inputs.get(name).unwrap_or(default);
            match wf.evaluator.evaluate(value, &rolling) {
                Ok(v) => {
                    rolling.insert(name.clone(), v);
                }
                Err(e) => errors.push(format!("{}: {e}", e.class())),
            }
        }
        for (name, value) in &wf.spec.vars {
            match wf.evaluator.evaluate(value, &rolling) {
                Ok(v) => {
                    rolling.insert(name.clone(), v);
                }
                Err(e) => errors.push(format!("{}: {e}", e.class())),
            }
        }
        self.state.status = Some(Status::Running);
        if !errors.is_empty() {
            for m in errors {
                self.log_error(m, None, None, None, None);
            }
            self.state.status = Some(Status::Failed);
            return;
        }
        self.state.contexts.push(rolling);
        self.state.routes.push(Vec::new());
        for &root in &wf.graph.roots {
            self.state.staged.push(StagedTask {
                id: wf.graph.nodes[root].name.clone(),
                route: 0,
                ctxs_in: vec![0],
                prev: BTreeMap::new(),
                ready: true,
                items: None,
                completed: false,
                run_on_fail: false,
                retry: None,
            });
        }
    }

    /// Ask for a workflow status (e.g. `failed`, `paused`, `canceled`).
    ///
    /// # Errors
    /// [`ConductorError::InvalidTransition`] when the status cannot be reached.
    pub fn request_status(&mut self, status: Status) -> Result<(), ConductorError> {
        self.items_on_request(status);
        let current = self.state.status;
        let active = self.has_active_tasks();
        let nothing_left = !active && !self.has_staged_tasks();
        match workflow_on_request(current, status, active, nothing_left) {
            Some(s) => {
                self.state.status = Some(s);
                Ok(())
            }
            None if current == Some(status) => Ok(()),
            None => Err(ConductorError::InvalidTransition {
                from: current.map_or("null", Status::as_str).to_owned(),
                to: status.as_str().to_owned(),
            }),
        }
    }

    /// A pause or cancel request reaches running with-items tasks: they pause (cancel) at
    /// once when no item is active, and go pausing (canceling) otherwise.
    fn items_on_request(&mut self, status: Status) {
        let pause = matches!(status, Status::Pausing | Status::Paused);
        let cancel = matches!(status, Status::Canceling | Status::Canceled);
        if !pause && !cancel {
            return;
        }
        let latest: Vec<usize> = self.state.tasks.values().copied().collect();
        for i in latest {
            let Some(entry) = self.state.sequence.get(i) else {
                continue;
            };
            if entry.status != Some(Status::Running) {
                continue;
            }
            let Some(items) = self
                .staged_index(&entry.id, entry.route)
                .and_then(|si| self.state.staged[si].items.as_ref())
            else {
                continue;
            };
            let active = items.iter().any(|s| s.is_some_and(Status::is_active));
            let incomplete = items.iter().any(|s| !s.is_some_and(Status::is_completed));
            if !incomplete {
                continue;
            }
            let new = match (pause, active) {
                (true, true) => Status::Pausing,
                (true, false) => Status::Paused,
                (false, true) => Status::Canceling,
                (false, false) => Status::Canceled,
            };
            self.state.sequence[i].status = Some(new);
        }
    }

    fn fail_workflow(&mut self) {
        let _ = self.request_status(Status::Failed);
    }

    fn log_error(
        &mut self,
        message: String,
        task_id: Option<&str>,
        route: Option<usize>,
        transition: Option<&str>,
        result: Option<&Value>,
    ) {
        let mut entry = Map::new();
        entry.insert("type".into(), "error".into());
        entry.insert("message".into(), message.into());
        if let Some(t) = task_id {
            entry.insert("task_id".into(), t.into());
        }
        if let Some(r) = route {
            entry.insert("route".into(), r.into());
        }
        if let Some(t) = transition {
            entry.insert("task_transition_id".into(), t.into());
        }
        if let Some(r) = result
            && !r.is_null()
        {
            entry.insert("result".into(), r.clone());
        }
        let entry = Value::Object(entry);
        if !self.state.errors.contains(&entry) {
            self.state.errors.push(entry);
        }
    }

    fn entry_index(&self, id: &str, route: usize) -> Option<usize> {
        // A stored state that points past its sequence counts as "not run".
        self.state
            .tasks
            .get(&task_key(id, route))
            .copied()
            .filter(|&i| i < self.state.sequence.len())
    }

    fn entry(&self, id: &str, route: usize) -> Option<&TaskEntry> {
        self.entry_index(id, route).map(|i| &self.state.sequence[i])
    }

    fn staged_index(&self, id: &str, route: usize) -> Option<usize> {
        self.state
            .staged
            .iter()
            .position(|s| s.id == id && s.route == route)
    }

    fn latest_entries(&self) -> impl Iterator<Item = &TaskEntry> {
        self.state
            .tasks
            .values()
            .filter_map(|&i| self.state.sequence.get(i))
    }

    fn has_active_tasks(&self) -> bool {
        self.latest_entries()
            .any(|t| t.status.is_some_and(Status::is_active))
    }

    fn has_status(&self, statuses: &[Status]) -> bool {
        self.latest_entries()
            .any(|t| t.status.is_some_and(|s| statuses.contains(&s)))
    }

    fn has_staged_tasks(&self) -> bool {
        self.state.staged.iter().any(|s| s.ready && !s.completed)
    }

    fn remove_staged(&mut self, id: &str, route: usize) {
        if let Some(i) = self.staged_index(id, route) {
            let busy = self.state.staged[i]
                .items
                .as_ref()
                .is_some_and(|items| items.iter().any(|s| s.is_some_and(Status::is_active)));
            if !busy {
                self.state.staged.remove(i);
            }
        }
    }

    /// The merged context of `ctxs`.
    pub fn context_of(&self, ctxs: &[usize]) -> Map<String, Value> {
        let mut out = Map::new();
        for &i in ctxs {
            if let Some(c) = self.state.contexts.get(i) {
                if out.is_empty() {
                    out = c.clone();
                } else {
                    merge_into(&mut out, c);
                }
            }
        }
        out
    }

    /// The part of the state `succeeded()`, `task_status()` and friends read: the task
    /// pointers, the routes and the status of each latest entry (`null` for older entries).
    fn state_view(&self) -> Value {
        let mut sequence = vec![Value::Null; self.state.sequence.len()];
        for &i in self.state.tasks.values() {
            if let (Some(slot), Some(e)) = (sequence.get_mut(i), self.state.sequence.get(i)) {
                *slot = json!({"status": e.status.map(Status::as_str)});
            }
        }
        json!({"tasks": self.state.tasks, "sequence": sequence, "routes": self.state.routes,
               "status": self.state.status.map(Status::as_str)})
    }

    fn scope(
        &self,
        ctx: Map<String, Value>,
        current_task: Value,
        item: Option<&Value>,
    ) -> Arc<Scope> {
        let mut scope = Scope::from_context(&ctx);
        let reads_state = current_task
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| self.workflow.state_readers.contains(id));
        scope
            .internals
            .insert("__current_task".into(), current_task);
        if reads_state {
            scope.internals.insert("__state".into(), self.state_view());
            if let Some(records) = &self.task_records {
                scope
                    .internals
                    .insert("__st2_tasks".into(), Value::clone(records));
            }
        }
        if let Some(item) = item {
            scope
                .internals
                .insert("__current_item".into(), item.clone());
        }
        Arc::new(scope)
    }

    fn evaluate(&self, v: &Value, scope: &Arc<Scope>) -> Result<Value, String> {
        self.workflow
            .evaluator
            .evaluate_in(v, scope)
            .map_err(|e| format!("{}: {e}", e.class()))
    }

    /// The tasks to run now, sorted by (task, route). Rendering errors are logged for every
    /// candidate, then the workflow fails and nothing is returned.
    pub fn next_tasks(&mut self) -> Vec<NextTask> {
        let status = self.state.status;
        let failed = status == Some(Status::Failed);
        let candidates: Vec<usize> = (0..self.state.staged.len())
            .filter(|&i| {
                let s = &self.state.staged[i];
                s.ready && !s.completed && (!failed || s.run_on_fail)
            })
            .collect();
        if !status.is_some_and(Status::is_running) && (!failed || candidates.is_empty()) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for i in candidates {
            match self.render_task(i) {
                Ok(Some(t)) => out.push(t),
                Ok(None) => {}
                Err(m) => {
                    let s = &self.state.staged[i];
                    errors.push((m, s.id.clone(), s.route));
                }
            }
        }
        if !errors.is_empty() {
            for (m, id, route) in errors {
                self.log_error(m, Some(&id), Some(route), None, None);
            }
            self.fail_workflow();
            return Vec::new();
        }
        out.sort_by(|a, b| a.id.cmp(&b.id).then(a.route.cmp(&b.route)));
        out
    }

    fn render_task(&mut self, staged: usize) -> Result<Option<NextTask>, String> {
        let wf = self.workflow.clone();
        let (id, route) = {
            let s = &self.state.staged[staged];
            (s.id.clone(), s.route)
        };
        let ctx = self.context_of(&self.state.staged[staged].ctxs_in);
        let scope = self.scope(ctx, json!({"id": id, "route": route}), None);
        let Some(task) = wf.spec.task(&id) else {
            return Ok(None);
        };
        let mut next = NextTask {
            id: id.clone(),
            route,
            actions: Vec::new(),
            delay: None,
            timeout: None,
            items_count: None,
            with_items: task.with.is_some(),
        };
        let input_of = |scope: &Arc<Scope>| -> Result<Value, String> {
            match &task.input {
                Some(v) => self.evaluate(v, scope),
                None => Ok(Value::Null),
            }
        };
        let action_of = |scope: &Arc<Scope>| -> Result<Option<Value>, String> {
            match &task.action {
                Some(a) => self.evaluate(&Value::String(a.clone()), scope).map(Some),
                None => Ok(None),
            }
        };
        let mut concurrency = None;
        match &task.with {
            None => {
                let action = action_of(&scope)?;
                let input = input_of(&scope)?;
                next.actions.push(ActionRequest {
                    action,
                    input,
                    item_id: None,
                });
            }
            Some(with) => {
                let items = self.evaluate(&Value::String(with.items.clone()), &scope)?;
                let Value::Array(items) = items else {
                    return Err(format!(
                        "TypeError: The value of \"{}\" is not type of list.",
                        with.items
                    ));
                };
                // Every item is rendered on the first visit (so every rendering error shows);
                // later visits render only the items that can start now.
                let first_visit = self.state.staged[staged]
                    .items
                    .as_ref()
                    .is_none_or(Vec::is_empty);
                let wanted = if first_visit {
                    None
                } else {
                    if let Some(c) = &with.concurrency {
                        concurrency = Some(self.evaluate(c, &scope)?);
                    }
                    Some(self.startable_items(staged, items.len(), concurrency.as_ref()))
                };
                for (idx, item) in items.iter().enumerate() {
                    if wanted.as_ref().is_some_and(|w| !w[idx]) {
                        continue;
                    }
                    let item = match &with.keys {
                        Some(keys) => match item {
                            Value::Array(values) => Value::Object(
                                keys.iter().cloned().zip(values.iter().cloned()).collect(),
                            ),
                            other if keys.len() == 1 => {
                                json!({ keys[0].clone(): other.clone() })
                            }
                            other => other.clone(),
                        },
                        None => item.clone(),
                    };
                    let item_scope = Arc::new(Scope {
                        vars: scope.vars.clone(),
                        internals: {
                            let mut m = scope.internals.clone();
                            m.insert("__current_item".into(), item);
                            m
                        },
                    });
                    let action = action_of(&item_scope)?;
                    let input = input_of(&item_scope)?;
                    next.actions.push(ActionRequest {
                        action,
                        input,
                        item_id: Some(idx),
                    });
                }
                next.items_count = Some(items.len());
                if first_visit && let Some(c) = &with.concurrency {
                    concurrency = Some(self.evaluate(c, &scope)?);
                }
            }
        }
        if let Some(delay) = &task.delay {
            let truthy = !matches!(delay, Value::Number(n) if n.as_i64() == Some(0));
            if truthy {
                let v = match delay {
                    Value::String(_) => self.evaluate(delay, &scope)?,
                    other => other.clone(),
                };
                match v.as_i64() {
                    Some(d) if v.is_i64() || v.is_u64() => next.delay = Some(d),
                    _ => {
                        return Err(
                            "TypeError: The value of task delay is not type of integer.".into()
                        );
                    }
                }
            }
        }
        if let Some(timeout) = &task.timeout {
            let v = match timeout {
                Value::String(_) => self.evaluate(timeout, &scope)?,
                other => other.clone(),
            };
            match v.as_i64() {
                Some(t) if t > 0 && (v.is_i64() || v.is_u64()) => next.timeout = Some(t),
                _ => {
                    return Err(
                        "TypeError: The value of task timeout is not a positive integer.".into(),
                    );
                }
            }
        }
        if let Some(count) = next.items_count {
            let allowed = self.startable_items(staged, count, concurrency.as_ref());
            let s = &mut self.state.staged[staged];
            if s.items.as_ref().is_none_or(Vec::is_empty) {
                s.items = Some(vec![None; count]);
            }
            next.actions.retain(|a| {
                a.item_id
                    .is_some_and(|i| allowed.get(i).copied().unwrap_or(false))
            });
        }
        if let Some(retry) = &self.state.staged[staged].retry {
            next.delay = Some(retry.delay.unwrap_or(0));
        }
        if !next.actions.is_empty() || next.items_count == Some(0) {
            Ok(Some(next))
        } else {
            Ok(None)
        }
    }

    /// Which items of a with-items task may start now: not started yet, at most
    /// `concurrency` active at once (a concurrency below 1 counts as 1).
    fn startable_items(
        &self,
        staged: usize,
        count: usize,
        concurrency: Option<&Value>,
    ) -> Vec<bool> {
        let statuses: Vec<Option<Status>> = match &self.state.staged[staged].items {
            Some(items) if !items.is_empty() => items.clone(),
            _ => vec![None; count],
        };
        let active = statuses
            .iter()
            .filter(|s| s.is_some_and(Status::is_active))
            .count();
        let mut room = match concurrency.and_then(Value::as_i64) {
            Some(c) => (c.max(1) - active as i64).max(0) as usize,
            None => usize::MAX,
        };
        let mut out = vec![false; count.max(statuses.len())];
        for (i, s) in statuses.iter().enumerate() {
            if s.is_none() && room > 0 {
                out[i] = true;
                room -= 1;
            }
        }
        out
    }

    fn add_entry(
        &mut self,
        id: &str,
        route: usize,
        ctxs_in: Vec<usize>,
        prev: BTreeMap<String, usize>,
    ) -> Result<usize, String> {
        let wf = self.workflow.clone();
        let ctxs_in = if ctxs_in.is_empty() { vec![0] } else { ctxs_in };
        let mut retry = None;
        if let Some(spec) = wf
            .graph
            .find(id)
            .and_then(|n| wf.graph.nodes[n].retry.as_ref())
        {
            let ctx = self.context_of(&ctxs_in);
            let int = |v: &Value, what: &str| -> Result<i64, String> {
                let v = match v {
                    Value::String(_) => wf
                        .evaluator
                        .evaluate(v, &ctx)
                        .map_err(|e| format!("{}: {e}", e.class()))?,
                    other => other.clone(),
                };
                v.as_i64()
                    .filter(|_| v.is_i64() || v.is_u64())
                    .ok_or_else(|| {
                        format!("ValueError: The retry {what} for task \"{id}\" is not an integer.")
                    })
            };
            retry = Some(RetryState {
                when: spec.when.clone(),
                count: int(&spec.count, "count")?,
                delay: spec.delay.as_ref().map(|d| int(d, "delay")).transpose()?,
                tally: 0,
            });
        }
        self.state.sequence.push(TaskEntry {
            id: id.to_owned(),
            route,
            ctxs_in,
            ctxs_out: BTreeMap::new(),
            prev,
            next: BTreeMap::new(),
            status: None,
            term: false,
            retry,
        });
        let idx = self.state.sequence.len() - 1;
        self.state.tasks.insert(task_key(id, route), idx);
        Ok(idx)
    }

    /// Apply an action (or item) event to task `id` on `route`.
    ///
    /// # Errors
    /// [`ConductorError::UnknownTask`] when the task is not staged and has not run.
    pub fn update_task(
        &mut self,
        id: &str,
        route: usize,
        event: &TaskEvent,
    ) -> Result<(), ConductorError> {
        self.apply(id, route, Ev::Task(event))
    }

    fn apply(&mut self, id: &str, route: usize, event: Ev<'_>) -> Result<(), ConductorError> {
        let wf = self.workflow.clone();
        let node = wf
            .graph
            .find(id)
            .ok_or_else(|| ConductorError::UnknownTask(id.to_owned(), route))?;
        let is_command = wf.graph.is_command(node);
        let staged = self
            .staged_index(id, route)
            .map(|i| self.state.staged[i].clone());
        let mut entry = self.entry_index(id, route);
        if staged.is_none() && entry.is_none() {
            return Err(ConductorError::UnknownTask(id.to_owned(), route));
        }
        let event_status = event.status();
        let new_entry = |this: &mut Self| -> Result<usize, ConductorError> {
            let s = staged
                .as_ref()
                .ok_or_else(|| ConductorError::UnknownTask(id.to_owned(), route))?;
            match this.add_entry(id, s.route, s.ctxs_in.clone(), s.prev.clone()) {
                Ok(i) => Ok(i),
                Err(m) => {
                    this.log_error(m, Some(id), Some(route), None, None);
                    this.fail_workflow();
                    Err(ConductorError::UnknownTask(id.to_owned(), route))
                }
            }
        };
        if entry.is_none() || is_command {
            entry = Some(match new_entry(self) {
                Ok(i) => i,
                Err(_) => return Ok(()),
            });
        }
        let mut idx = entry.unwrap_or_default();
        if self.state.sequence[idx]
            .status
            .is_some_and(Status::is_completed)
            && event_status.is_some_and(Status::is_starting)
        {
            idx = match new_entry(self) {
                Ok(i) => i,
                Err(_) => return Ok(()),
            };
        }
        let staged_has_items = staged.as_ref().is_some_and(|s| s.items.is_some());
        if event_status.is_some() && staged.is_some() && !staged_has_items {
            self.remove_staged(id, route);
        }
        let mut items_ctx = ItemsContext::None;
        if let Ev::Task(TaskEvent::Item {
            item_id, status, ..
        }) = event
            && let Some(si) = self.staged_index(id, route)
            && let Some(items) = self.state.staged[si].items.as_mut()
        {
            if let Some(slot) = items.get_mut(*item_id) {
                *slot = Some(*status);
            }
            if matches!(
                status,
                Status::Resuming
                    | Status::Pending
                    | Status::Paused
                    | Status::Succeeded
                    | Status::Failed
                    | Status::Timeout
                    | Status::Abandoned
                    | Status::Canceled
            ) {
                let others: Vec<Option<Status>> = items
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i != item_id)
                    .map(|(_, s)| *s)
                    .collect();
                let active = others.iter().any(|s| s.is_some_and(Status::is_active));
                items_ctx = if active {
                    ItemsContext::Active
                } else if others
                    .iter()
                    .any(|s| matches!(s, Some(Status::Pending | Status::Paused)))
                {
                    ItemsContext::Dormant(ItemsRest::Paused)
                } else if others.contains(&Some(Status::Canceled)) {
                    ItemsContext::Dormant(ItemsRest::Canceled)
                } else if others.iter().any(|s| s.is_some_and(Status::is_abended)) {
                    ItemsContext::Dormant(ItemsRest::Failed)
                } else if others.iter().any(|s| !s.is_some_and(Status::is_completed)) {
                    ItemsContext::Dormant(ItemsRest::Incomplete)
                } else {
                    ItemsContext::Dormant(ItemsRest::Completed)
                };
            }
        }
        if event_status == Some(Status::Failed) {
            self.log_error(
                "Execution failed. See result for details.".into(),
                Some(id),
                None,
                None,
                event.result(),
            );
        }
        let old = self.state.sequence[idx].status;
        let new = match event {
            Ev::Task(TaskEvent::Action { status, .. }) => {
                task_on_action(old, *status, ItemsContext::None)
            }
            Ev::Task(TaskEvent::Item { status, .. }) => task_on_action(old, *status, items_ctx),
            Ev::Command(c) => task_on_command(old, c),
        };
        if let Some(new) = new {
            self.state.sequence[idx].status = Some(new);
        }
        let new = self.state.sequence[idx].status;
        if new == Some(Status::Retrying) {
            let (ctxs_in, prev, retry) = {
                let e = &mut self.state.sequence[idx];
                if let Some(r) = e.retry.as_mut() {
                    r.tally += 1;
                }
                (e.ctxs_in.clone(), e.prev.clone(), e.retry.clone())
            };
            self.remove_staged(id, route);
            self.state.staged.push(StagedTask {
                id: id.to_owned(),
                route,
                ctxs_in,
                prev,
                ready: true,
                items: None,
                completed: false,
                run_on_fail: false,
                retry,
            });
        }
        let with_items = wf.graph.nodes[node]
            .task
            .is_some_and(|t| wf.spec.tasks[t].with.is_some());
        let mut current_scope = None;
        if let Some(status) = new.filter(|s| s.is_completed()) {
            if with_items && status.is_abended() {
                if let Some(si) = self.staged_index(id, route) {
                    self.state.staged[si].completed = true;
                }
            } else {
                self.remove_staged(id, route);
            }
            let result = match event {
                Ev::Task(TaskEvent::Item { accumulated, .. }) => {
                    if accumulated.is_null() {
                        json!([])
                    } else {
                        accumulated.clone()
                    }
                }
                Ev::Task(TaskEvent::Action { result, .. }) => {
                    if with_items && result.is_null() {
                        json!([])
                    } else {
                        result.clone()
                    }
                }
                Ev::Command(_) => Value::Null,
            };
            let e = &self.state.sequence[idx];
            let ctx = self.context_of(&e.ctxs_in);
            let scope = self.scope(
                ctx,
                json!({"id": id, "route": route, "result": result}),
                None,
            );
            if self.state.status.is_some_and(Status::is_active) {
                let retry = self.state.sequence[idx].retry.clone();
                if let Some(r) = retry
                    && r.tally < r.count
                {
                    let go = match &r.when {
                        None => status.is_abended(),
                        Some(w) => match self.evaluate(&Value::String(w.clone()), &scope) {
                            Ok(v) => crate::truthy(&v),
                            Err(m) => {
                                self.log_error(m, Some(id), Some(route), None, None);
                                self.fail_workflow();
                                false
                            }
                        },
                    };
                    if go {
                        return self.apply(id, route, Ev::Command(Command::Retry));
                    }
                }
            }
            current_scope = Some(scope);
        }
        let mut queue: Vec<(String, usize, Command)> = Vec::new();
        if let (Some(status), Some(scope)) = (new, current_scope)
            && status.is_completed()
            && new != old
        {
            let outgoing = wf.graph.nodes[node].outgoing.clone();
            if outgoing.is_empty() {
                self.state.sequence[idx].term = true;
            }
            let mut has_fail = false;
            let mut ready_targets = Vec::new();
            for e in outgoing {
                let edge = &wf.graph.edges[e];
                let fired = match &edge.when {
                    None => Ok(true),
                    Some(w) => self
                        .evaluate(&Value::String(w.clone()), &scope)
                        .map(|v| crate::truthy(&v)),
                };
                let fired = match fired {
                    Ok(f) => f,
                    Err(m) => {
                        self.log_error(m, Some(id), Some(route), Some(&edge.id), None);
                        self.fail_workflow();
                        continue;
                    }
                };
                self.state.sequence[idx].next.insert(edge.id.clone(), fired);
                if !fired {
                    continue;
                }
                let target = &wf.graph.nodes[edge.target];
                // Publish for this target.
                let mut new_ctx = Map::new();
                let mut errors = Vec::new();
                if let Some(t) = wf.graph.nodes[node].task {
                    let transition = &wf.spec.tasks[t].next[edge.transition];
                    if transition.targets.contains(&target.name) {
                        let mut rolling = (*scope).clone();
                        for (name, value) in &transition.publish {
                            let s = Arc::new(rolling.clone());
                            match self.evaluate(value, &s) {
                                Ok(v) => {
                                    if name.starts_with("__") {
                                        rolling.internals.insert(name.clone(), v.clone());
                                    } else {
                                        rolling.vars.insert(name.clone(), v.clone());
                                    }
                                    new_ctx.insert(name.clone(), v);
                                }
                                Err(m) => errors.push(m),
                            }
                        }
                    }
                }
                if !errors.is_empty() {
                    for m in errors {
                        self.log_error(m, Some(id), Some(route), Some(&edge.id), None);
                    }
                    self.fail_workflow();
                    continue;
                }
                let mut out_ctxs = self.state.sequence[idx].ctxs_in.clone();
                if !new_ctx.is_empty() {
                    self.state.contexts.push(new_ctx);
                    let ci = self.state.contexts.len() - 1;
                    out_ctxs.push(ci);
                    let e = &mut self.state.sequence[idx];
                    e.ctxs_out.clear();
                    e.ctxs_out.insert(edge.id.clone(), ci);
                }
                let next_route = self.route_for(edge.target, &edge.backref, route);
                let target_name = target.name.clone();
                let si = match self.staged_index(&target_name, next_route) {
                    Some(si) => {
                        if let Some(p) = out_ctxs.iter().position(|&c| c == 0) {
                            out_ctxs.remove(p);
                        }
                        let s = &mut self.state.staged[si];
                        s.ctxs_in.extend(out_ctxs);
                        s.prev.insert(edge.backref.clone(), idx);
                        s.items = None;
                        s.completed = false;
                        si
                    }
                    None => {
                        self.state.staged.push(StagedTask {
                            id: target_name.clone(),
                            route: next_route,
                            ctxs_in: out_ctxs,
                            prev: BTreeMap::from([(edge.backref.clone(), idx)]),
                            ready: false,
                            items: None,
                            completed: false,
                            run_on_fail: false,
                            retry: None,
                        });
                        self.state.staged.len() - 1
                    }
                };
                let ready = matches!(self.inbound(edge.target, route), Inbound::Satisfied);
                self.state.staged[si].ready = ready;
                if wf.graph.is_command(edge.target) {
                    let cmd = if target_name == "fail" {
                        has_fail = true;
                        Command::Fail
                    } else {
                        Command::Succeed
                    };
                    queue.push((target_name, next_route, cmd));
                } else if ready {
                    ready_targets.push((target_name, next_route));
                }
            }
            if has_fail {
                for (t, r) in ready_targets {
                    if let Some(si) = self.staged_index(&t, r) {
                        self.state.staged[si].run_on_fail = true;
                    }
                }
            }
        }
        if let Some(status) = new {
            self.workflow_task_event(id, route, status);
        }
        for (t, r, c) in queue {
            self.apply(&t, r, Ev::Command(c))?;
        }
        // The entry that completed the workflow is terminal (its publishes reach the output).
        if self.state.status.is_some_and(Status::is_completed) {
            self.state.sequence[idx].term = true;
        }
        Ok(())
    }

    fn route_for(&mut self, target: usize, backref: &str, route: usize) -> usize {
        let node = &self.workflow.graph.nodes[target];
        if !node.split || node.in_cycle {
            return route;
        }
        let Some(old) = self.state.routes.get(route) else {
            return route;
        };
        if old.iter().any(|x| x == backref) {
            return route;
        }
        let mut new = old.clone();
        new.push(backref.to_owned());
        self.state.routes.push(new);
        self.state.routes.len() - 1
    }

    fn inbound(&self, node: usize, route: usize) -> Inbound {
        let g = &self.workflow.graph;
        let preds = g.predecessors(node);
        let mut eval: Vec<Option<bool>> = vec![None; preds.len()];
        for &e in &g.nodes[node].incoming {
            let edge = &g.edges[e];
            let p = preds.iter().position(|&x| x == edge.source).unwrap_or(0);
            let Some(entry) = self.entry(&g.nodes[edge.source].name, route) else {
                continue;
            };
            let satisfied = entry.next.get(&edge.id).copied().unwrap_or(false);
            if eval[p] != Some(true) {
                eval[p] = Some(satisfied);
            }
        }
        let required = match g.nodes[node].barrier {
            Some(Join::All) => preds.len(),
            Some(Join::Count(n)) if n > 0 => n as usize,
            _ => 1,
        };
        if eval.iter().filter(|x| **x == Some(true)).count() >= required {
            return Inbound::Satisfied;
        }
        if eval.contains(&None) && (self.has_active_tasks() || self.has_staged_tasks()) {
            return Inbound::Wip;
        }
        Inbound::NotSatisfied
    }

    fn has_next(&self, id: &str, route: usize, eval_join: bool) -> bool {
        let Some(entry) = self.entry(id, route) else {
            return false;
        };
        if !entry.status.is_some_and(Status::is_completed) {
            return false;
        }
        let g = &self.workflow.graph;
        let Some(node) = g.find(id) else {
            return false;
        };
        for &e in &g.nodes[node].outgoing {
            let edge = &g.edges[e];
            if g.nodes[edge.target].name == "continue" {
                continue;
            }
            if !entry.next.get(&edge.id).copied().unwrap_or(false) {
                continue;
            }
            if g.nodes[edge.target].barrier.is_some() {
                if !eval_join {
                    return true;
                }
                if matches!(self.inbound(edge.target, route), Inbound::NotSatisfied) {
                    continue;
                }
            }
            return true;
        }
        false
    }

    fn workflow_task_event(&mut self, id: &str, route: usize, status: Status) {
        let Some(current) = self.state.status else {
            return;
        };
        let has_next = self.has_next(id, route, true);
        let remediated = status.is_abended() && (has_next || self.has_next(id, route, false));
        let ctx = WorkflowContext {
            active: self.has_active_tasks(),
            canceled: self.has_status(&[Status::Canceling, Status::Canceled]),
            paused: self.has_status(&[Status::Pausing, Status::Paused, Status::Pending]),
            incomplete: self.has_staged_tasks() || has_next,
        };
        let Some(new) = workflow_on_task(current, status, remediated, ctx) else {
            return;
        };
        self.state.status = Some(new);
        if new.is_completed() {
            let g = self.workflow.graph.clone();
            let unreachable: Vec<(String, usize)> = self
                .state
                .staged
                .iter()
                .filter(|s| !s.ready)
                .filter_map(|s| {
                    let n = g.find(&s.id)?;
                    (g.nodes[n].barrier.is_some()
                        && matches!(self.inbound(n, s.route), Inbound::NotSatisfied))
                    .then(|| (s.id.clone(), s.route))
                })
                .collect();
            if !unreachable.is_empty() {
                self.state.status = Some(Status::Failed);
                for (t, r) in unreachable {
                    self.log_error(
                        format!(
                            "UnreachableJoinError: The join task|route \"{t}|{r}\" is partially satisfied but unreachable."
                        ),
                        Some(&t),
                        Some(r),
                        None,
                        None,
                    );
                }
            }
        }
    }

    /// Re-run a completed workflow from its failed terminal tasks (`tasks` empty) or from the
    /// given `(task, route)` entries: each gets a fresh entry and is staged again (a failed
    /// with-items task restarts its abended items, or all items with `reset_items`), its
    /// errors are dropped, terminal tasks with fired transitions continue, the output is
    /// cleared and the workflow goes to `resuming`.
    ///
    /// # Errors
    /// [`ConductorError::InvalidTransition`] when the workflow has not completed;
    /// [`ConductorError::UnknownTask`] for a requested task that has not run.
    pub fn request_rerun(
        &mut self,
        tasks: &[(String, usize)],
        reset_items: bool,
    ) -> Result<(), ConductorError> {
        let status = self.state.status;
        if !status.is_some_and(Status::is_completed) {
            return Err(ConductorError::InvalidTransition {
                from: status.map_or("null", Status::as_str).to_owned(),
                to: Status::Resuming.as_str().to_owned(),
            });
        }
        let mut candidates: Vec<usize> = Vec::new();
        if tasks.is_empty() {
            candidates.extend((0..self.state.sequence.len()).filter(|&i| {
                let e = &self.state.sequence[i];
                e.term && e.status.is_some_and(Status::is_abended)
            }));
        } else {
            for (id, route) in tasks {
                let i = self
                    .entry_index(id, *route)
                    .ok_or_else(|| ConductorError::UnknownTask(id.clone(), *route))?;
                candidates.push(i);
            }
        }
        candidates.sort_by(|&a, &b| {
            let (x, y) = (&self.state.sequence[a], &self.state.sequence[b]);
            x.id.cmp(&y.id).then(x.route.cmp(&y.route))
        });
        candidates.dedup();
        let wf = self.workflow.clone();
        for i in candidates {
            let (id, route, ctxs_in, prev) = {
                let e = &mut self.state.sequence[i];
                e.term = false;
                (e.id.clone(), e.route, e.ctxs_in.clone(), e.prev.clone())
            };
            self.state
                .errors
                .retain(|e| e.get("task_id").and_then(Value::as_str) != Some(id.as_str()));
            let with_items = wf.spec.task(&id).is_some_and(|t| t.with.is_some());
            let staged = self.staged_index(&id, route);
            if with_items && let Some(si) = staged {
                let s = &mut self.state.staged[si];
                s.completed = false;
                if let Some(items) = s.items.as_mut() {
                    for item in items.iter_mut() {
                        if reset_items || item.is_some_and(Status::is_abended) {
                            *item = None;
                        }
                    }
                }
            } else {
                if let Err(m) = self.add_entry(&id, route, ctxs_in.clone(), prev.clone()) {
                    self.log_error(m, Some(&id), Some(route), None, None);
                    continue;
                }
                self.state.staged.push(StagedTask {
                    id: id.clone(),
                    route,
                    ctxs_in,
                    prev,
                    ready: true,
                    items: None,
                    completed: false,
                    run_on_fail: false,
                    retry: None,
                });
            }
        }
        for e in &mut self.state.sequence {
            if e.term && e.next.values().any(|&fired| fired) {
                e.term = false;
            }
        }
        self.state.output = None;
        self.state.output_rendered = false;
        self.state.status = Some(Status::Resuming);
        Ok(())
    }

    /// The terminal context: the in-context of the first terminal entry, then the others'
    /// (without the initial context) merged in sequence order.
    pub fn terminal_context(&self) -> Map<String, Value> {
        let mut out = Map::new();
        let mut first = true;
        for e in self.state.sequence.iter().filter(|e| e.term) {
            if first {
                out = self.context_of(&e.ctxs_in);
                first = false;
            } else {
                let mut ctxs = e.ctxs_in.clone();
                if let Some(p) = ctxs.iter().position(|&c| c == 0) {
                    ctxs.remove(p);
                }
                merge_into(&mut out, &self.context_of(&ctxs));
            }
        }
        out
    }

    /// Render the workflow output once the workflow has completed (an error fails the
    /// workflow unless it timed out, was abandoned or canceled).
    pub fn render_output(&mut self) {
        let Some(status) = self.state.status.filter(|s| s.is_completed()) else {
            return;
        };
        if self.state.output_rendered {
            return;
        }
        self.state.output_rendered = true;
        let wf = self.workflow.clone();
        let ctx = self.terminal_context();
        let mut scope = Scope::from_context(&ctx);
        if wf.output_reads_state {
            scope.internals.insert("__state".into(), self.state_view());
            if let Some(records) = &self.task_records {
                scope
                    .internals
                    .insert("__st2_tasks".into(), Value::clone(records));
            }
        }
        let mut out = Map::new();
        let mut errors = Vec::new();
        for (name, value) in &wf.spec.output {
            match self.evaluate(value, &Arc::new(scope.clone())) {
                Ok(v) => {
                    scope.vars.insert(name.clone(), v.clone());
                    out.insert(name.clone(), v);
                }
                Err(m) => errors.push(m),
            }
        }
        if !out.is_empty() {
            self.state.output = Some(out);
        }
        if !errors.is_empty() {
            for m in errors {
                self.log_error(m, None, None, None, None);
            }
            if !matches!(
                status,
                Status::Timeout | Status::Abandoned | Status::Canceled
            ) {
                self.fail_workflow();
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Ev<'a> {
    Task(&'a TaskEvent),
    Command(Command),
}

impl Ev<'_> {
    fn status(&self) -> Option<Status> {
        match self {
            Ev::Task(TaskEvent::Action { status, .. } | TaskEvent::Item { status, .. }) => {
                Some(*status)
            }
            Ev::Command(Command::Succeed) => Some(Status::Succeeded),
            Ev::Command(Command::Fail) => Some(Status::Failed),
            Ev::Command(Command::Retry) => Some(Status::Retrying),
        }
    }

    fn result(&self) -> Option<&Value> {
        match self {
            Ev::Task(TaskEvent::Action { result, .. } | TaskEvent::Item { result, .. }) => {
                Some(result)
            }
            Ev::Command(_) => None,
        }
    }
}

/// Context index lists in the serialised state, compactly: each run of consecutive indexes
/// is written `[first, last]`, a lone index as itself (`[0, 1, 2, 3, 7]` → `[[0, 3], 7]`).
/// A long chain's tasks each inherit every earlier context, so writing the lists out in full
/// makes the stored state grow with the square of the tasks. Plain lists read as before.
mod indexes {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Item {
        One(usize),
        Run([usize; 2]),
    }

    pub(super) fn serialize<S: Serializer>(list: &[usize], s: S) -> Result<S::Ok, S::Error> {
        let mut out: Vec<Item> = Vec::new();
        let mut i = 0;
        while i < list.len() {
            let mut j = i;
            while j + 1 < list.len() && list[j + 1] == list[j] + 1 {
                j += 1;
            }
            if j > i {
                out.push(Item::Run([list[i], list[j]]));
            } else {
                out.push(Item::One(list[i]));
            }
            i = j + 1;
        }
        out.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
        let items = Vec::<Item>::deserialize(d)?;
        let mut out = Vec::new();
        for item in items {
            match item {
                Item::One(i) => out.push(i),
                Item::Run([a, b]) if a <= b && b - a < 10_000_000 => out.extend(a..=b),
                Item::Run([a, b]) => {
                    return Err(D::Error::custom(format!(
                        "bad context index run [{a}, {b}]"
                    )));
                }
            }
        }
        Ok(out)
    }

    #[cfg(test)]
    mod tests {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct T {
            #[serde(with = "super")]
            v: Vec<usize>,
        }

        #[test]
        fn runs_round_trip_and_plain_lists_still_read() {
            let t = T {
                v: vec![0, 1, 2, 3, 7, 5, 6, 9],
            };
            let json = serde_json::to_value(&t).expect("serialises");
            assert_eq!(json, serde_json::json!({"v": [[0, 3], 7, [5, 6], 9]}));
            assert_eq!(serde_json::from_value::<T>(json).expect("reads"), t);
            let plain: T =
                serde_json::from_value(serde_json::json!({"v": [0, 2, 1]})).expect("plain");
            assert_eq!(plain.v, vec![0, 2, 1]);
            assert!(serde_json::from_value::<T>(serde_json::json!({"v": [[3, 1]]})).is_err());
        }
    }
}
