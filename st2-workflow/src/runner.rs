//! The `orquesta` runner: runs a workflow's tasks as child executions through the engine.
//!
//! The runner drives a [`Conductor`] with the engine's [`RunnerServices`]: every action a task
//! hands out becomes a child execution (carrying `context.orquesta.*` and the workflow as its
//! `parent`), and each child's completion goes back to the conductor as an event. The
//! conductor state, the children handed out and the task records are saved through
//! [`RunnerServices::save_state`] before any child starts, so an engine killed mid-workflow
//! continues it on the next start ([`Runner::resumes_after_crash`]): children that were
//! recorded but not started are started (under the id recorded for them, so never twice),
//! and children that finished meanwhile are fed back in.
//!
//! Pause, resume and cancel come from the engine: the runner watches its own execution for
//! `pausing` and `canceling`, passes the request to the conductor, cascades a cancel to the
//! running children (the engine cascades a pause to children that support it), and returns
//! `paused` or `canceled` once no child is active. A paused workflow continues from its saved
//! state when resumed; an inquiry answered under a paused workflow resumes it.
//!
//! A with-items task's children are created only when the conductor hands the item out (never
//! more unfinished than its `concurrency`), and each item's status and result are written to
//! the task record as the item completes, so they are visible while the task runs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use st2_core::runner::{
    ChildRequest, RunContext, RunOutcome, Runner, RunnerError, RunnerServices, RunnerState,
};
use st2_core::store::{ExecutionRecord, ExecutionStatus, StatePart, TaskRecord};

use crate::conductor::{
    Conductor, ConductorState, NextTask, StagedTask, TaskEntry, TaskEvent, Workflow,
};
use crate::expression::Evaluator;
use crate::spec::WorkflowSpec;
use crate::status::Status;

/// How long the runner waits for children before it looks at paused or pending children and
/// its own status again.
const POLL: Duration = Duration::from_secs(1);

/// Children started at once (one batch of writes; a with-items task may hand out thousands).
const START_BATCH: usize = 64;

/// A save's writes ([`Driver::take_save`]).
struct Save {
    status: &'static str,
    head: Box<serde_json::value::RawValue>,
    parts: Vec<StatePart>,
    tasks: Vec<TaskRecord>,
}

/// The `orquesta` runner. Compiled workflows are cached by entry point file (and reloaded when
/// the file changes), so a workflow is parsed and inspected once, not per execution.
#[derive(Debug, Default)]
pub struct OrquestaRunner {
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    workflow: Arc<Workflow>,
}

impl OrquestaRunner {
    /// A runner with an empty workflow cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The compiled workflow of the action's entry point, or the errors that stop it.
    fn workflow(&self, ctx: &RunContext) -> Result<Arc<Workflow>, Vec<Value>> {
        let error = |message: String| vec![json!({"type": "error", "message": message})];
        if ctx.action.entry_point.is_empty() {
            return Err(error(
                "Missing entry_point action metadata attribute".to_owned(),
            ));
        }
        let Some(pack_dir) = ctx.pack_dir.as_ref() else {
            return Err(error(format!(
                "the workflow {:?} has no pack directory to read it from",
                ctx.action.entry_point
            )));
        };
        let path = pack_dir.join("actions").join(&ctx.action.entry_point);
        let meta = std::fs::metadata(&path)
            .map_err(|e| error(format!("Unable to read workflow {}: {e}", path.display())))?;
        let (modified, len) = (meta.modified().ok(), meta.len());
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = cache.get(&path)
                && c.modified == modified
                && c.len == len
            {
                return Ok(c.workflow.clone());
            }
        }
        let spec = WorkflowSpec::from_file(&path).map_err(|e| spec_errors(&e))?;
        let workflow = Workflow::compile(spec, evaluator(ctx)).map_err(|e| spec_errors(&e))?;
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
            path,
            Cached {
                modified,
                len,
                workflow: workflow.clone(),
            },
        );
        Ok(workflow)
    }
}

fn spec_errors(e: &crate::spec::SpecError) -> Vec<Value> {
    e.0.iter()
        .map(|d| json!({"type": "content", "message": d.to_string()}))
        .collect()
}

/// Orquesta's and StackStorm's functions, with `st2kv` over the engine's datastore.
fn evaluator(ctx: &RunContext) -> Evaluator {
    let mut functions = crate::orquesta_functions();
    let _ = functions.extend(&st2_core::expr::jinja::functions::st2_functions());
    let _ = functions.register("task", crate::functions::task);
    let crypto = ctx.datastore.as_ref().and_then(|d| d.crypto_key());
    match (&ctx.datastore, tokio::runtime::Handle::try_current()) {
        (Some(datastore), Ok(handle)) => crate::datastore::register_st2kv(
            &mut functions,
            Arc::new(datastore.key_values(handle)),
            crypto.clone(),
        ),
        _ => crate::datastore::register_st2kv(
            &mut functions,
            Arc::new(st2_core::datastore::MemoryKeyValues::new()),
            None,
        ),
    }
    Evaluator::with_functions(functions, crypto)
}

#[async_trait]
impl Runner for OrquestaRunner {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        let services = ctx.services()?.clone();
        let workflow = match self.workflow(&ctx) {
            Ok(w) => w,
            Err(errors) => {
                return Ok(RunOutcome::failed(
                    json!({"errors": errors, "output": null}),
                ));
            }
        };
        let uses_task_records = workflow.uses_task_records();
        let reads_datastore = workflow.spec.mentions("st2kv");
        let mut driver = Driver {
            conductor: Some(Conductor::new(workflow.clone())),
            workflow,
            services,
            ctx,
            saved: Saved::default(),
            records: HashMap::new(),
            dirty: Vec::new(),
            stored: StoredParts::default(),
            items: HashMap::new(),
            uses_task_records,
            reads_datastore,
        };
        driver.load_or_start().await?;
        driver.drive().await
    }

    fn supports_pause(&self) -> bool {
        true
    }

    fn resumes_after_crash(&self) -> bool {
        true
    }
}

/// What the runner saves besides the conductor state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Saved {
    /// The conductor's state.
    conductor: ConductorState,
    /// Children handed out and not yet fed back, by execution id.
    #[serde(default)]
    children: BTreeMap<String, Child>,
    /// `"<task>__r<route>"` → the id of its current task record.
    #[serde(default)]
    tasks: BTreeMap<String, String>,
    /// When the workflow times out (milliseconds since the epoch; the `timeout` runner
    /// parameter, an addition: st2 #5116).
    #[serde(default)]
    deadline_ms: Option<i64>,
    /// The workflow timed out: it is being (or was) canceled and ends `timeout`.
    #[serde(default)]
    timed_out: bool,
}

/// One child execution of a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Child {
    task: String,
    route: usize,
    #[serde(default)]
    item: Option<usize>,
    #[serde(default)]
    items_count: Option<usize>,
    action: String,
    input: Map<String, Value>,
    #[serde(default)]
    delay_ms: Option<u64>,
    /// Its task record.
    record: String,
    /// The last status fed to the conductor (`running` once handed out).
    seen: String,
    /// Started (the execution exists). A child recorded but not started when the engine
    /// stopped is started on the next run.
    #[serde(default)]
    started: bool,
    /// When the task times out (milliseconds since the epoch; the task's `timeout`).
    #[serde(default)]
    deadline_ms: Option<i64>,
    /// Its task timed out: it was canceled, and its cancel is reported as `timeout`.
    #[serde(default)]
    timed_out: bool,
}

/// A child's hash finds the children changed since the last save without serialising them
/// all. Every field counts except `input`, which is set when the child is recorded and never
/// changed (a change of it alone would not be saved: keep it that way).
impl std::hash::Hash for Child {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let Child {
            task,
            route,
            item,
            items_count,
            action,
            input: _,
            delay_ms,
            record,
            seen,
            started,
            deadline_ms,
            timed_out,
        } = self;
        (task, route, item, items_count, action, delay_ms).hash(state);
        (record, seen, started, deadline_ms, timed_out).hash(state);
    }
}

/// The head of the saved state: [`Saved`] without the parts stored apart (contexts, task
/// entries and children), serialised without copying the conductor state. It loads as a
/// [`Saved`] whose parts are then filled in from the stored parts.
#[derive(Serialize)]
struct Head<'a> {
    conductor: ConductorHead<'a>,
    tasks: &'a BTreeMap<String, String>,
    deadline_ms: Option<i64>,
    timed_out: bool,
}

/// [`ConductorState`] with its contexts and sequence left empty (they are parts).
#[derive(Serialize)]
struct ConductorHead<'a> {
    status: Option<Status>,
    contexts: &'a [Map<String, Value>],
    routes: &'a [Vec<String>],
    sequence: &'a [TaskEntry],
    tasks: &'a BTreeMap<String, usize>,
    staged: &'a [StagedTask],
    errors: &'a [Value],
    output: &'a Option<Map<String, Value>>,
    output_rendered: bool,
}

/// The state parts as stored: how many contexts (they never change once added) and a hash
/// of the fields of each task entry and each child (only those that changed are serialised).
#[derive(Debug, Default)]
struct StoredParts {
    contexts: usize,
    sequence: Vec<u64>,
    children: HashMap<String, u64>,
}

const CONTEXT_PART: &str = "ctx.";
const ENTRY_PART: &str = "seq.";
const CHILD_PART: &str = "child.";

/// A hash of `value` that is never 0 (0 marks a task entry not loaded yet).
fn value_hash<T: std::hash::Hash + ?Sized>(value: &T) -> u64 {
    use std::hash::Hasher;
    let mut hasher = PartHasher::default();
    value.hash(&mut hasher);
    hasher.finish().max(1)
}

/// Tells a part as it is from the part as it was saved: a word at a time, each step a
/// bijection of the state and of the word (xor, odd multiply, rotate), so two inputs that
/// differ in one word always differ; a final avalanche. Faster than SipHash on the many
/// small writes a task entry makes, and never used for maps keyed by outside input.
#[derive(Default)]
struct PartHasher {
    state: u64,
}

impl PartHasher {
    fn mix(&mut self, word: u64) {
        self.state = (self.state ^ word)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(31);
    }
}

impl std::hash::Hasher for PartHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for chunk in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = words.remainder();
        // The tail with its length, so "a" and "a\0" differ.
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 60));
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    fn finish(&self) -> u64 {
        // splitmix64's finaliser.
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl StoredParts {
    /// Put one stored part into `saved` and remember it as stored.
    fn load(&mut self, saved: &mut Saved, key: &str, text: &str) -> Result<(), String> {
        let index = |rest: &str| {
            rest.parse::<usize>()
                .map_err(|_| format!("the part {key:?} has no index"))
        };
        let parse_error = |e: serde_json::Error| format!("the part {key:?}: {e}");
        if let Some(rest) = key.strip_prefix(CONTEXT_PART) {
            let i = index(rest)?;
            let contexts = &mut saved.conductor.contexts;
            if contexts.len() <= i {
                contexts.resize(i + 1, Map::new());
            }
            contexts[i] = serde_json::from_str(text).map_err(parse_error)?;
            self.contexts = self.contexts.max(i + 1);
        } else if let Some(rest) = key.strip_prefix(ENTRY_PART) {
            let i = index(rest)?;
            let entry: TaskEntry = serde_json::from_str(text).map_err(parse_error)?;
            let sequence = &mut saved.conductor.sequence;
            while sequence.len() <= i {
                // A placeholder, replaced by its own part (checked below).
                sequence.push(entry.clone());
                self.sequence.push(0);
            }
            // 0 marks a placeholder.
            self.sequence[i] = value_hash(&entry);
            sequence[i] = entry;
        } else if let Some(id) = key.strip_prefix(CHILD_PART) {
            let child: Child = serde_json::from_str(text).map_err(parse_error)?;
            self.children.insert(id.to_owned(), value_hash(&child));
            saved.children.insert(id.to_owned(), child);
        } else {
            return Err(format!("unknown part {key:?}"));
        }
        Ok(())
    }

    /// After [`StoredParts::load`] of every part: every task entry was among them.
    fn check(&self) -> Result<(), String> {
        match self.sequence.iter().position(|h| *h == 0) {
            Some(missing) => Err(format!("task entry {missing} is missing")),
            None => Ok(()),
        }
    }

    /// The parts that differ from the stored ones (new or changed texts, and removals), noted
    /// as stored.
    fn changes(
        &mut self,
        state: &ConductorState,
        children: &BTreeMap<String, Child>,
    ) -> Result<Vec<StatePart>, serde_json::Error> {
        let mut parts = Vec::new();
        for (i, context) in state.contexts.iter().enumerate().skip(self.contexts) {
            parts.push(StatePart {
                key: format!("{CONTEXT_PART}{i}"),
                doc: Some(st2_core::store::json::to_string(context)?),
            });
        }
        for i in state.contexts.len()..self.contexts {
            parts.push(StatePart {
                key: format!("{CONTEXT_PART}{i}"),
                doc: None,
            });
        }
        self.contexts = state.contexts.len();
        for (i, entry) in state.sequence.iter().enumerate() {
            let hash = value_hash(entry);
            if self.sequence.get(i) == Some(&hash) {
                continue;
            }
            let text = st2_core::store::json::to_string(entry)?;
            match self.sequence.get_mut(i) {
                Some(h) => *h = hash,
                None => self.sequence.push(hash),
            }
            parts.push(StatePart {
                key: format!("{ENTRY_PART}{i}"),
                doc: Some(text),
            });
        }
        for i in state.sequence.len()..self.sequence.len() {
            parts.push(StatePart {
                key: format!("{ENTRY_PART}{i}"),
                doc: None,
            });
        }
        self.sequence.truncate(state.sequence.len());
        for (id, child) in children {
            let hash = value_hash(child);
            if self.children.insert(id.clone(), hash) == Some(hash) {
                continue;
            }
            parts.push(StatePart {
                key: format!("{CHILD_PART}{id}"),
                doc: Some(st2_core::store::json::to_string(child)?),
            });
        }
        self.children.retain(|id, _| {
            let kept = children.contains_key(id);
            if !kept {
                parts.push(StatePart {
                    key: format!("{CHILD_PART}{id}"),
                    doc: None,
                });
            }
            kept
        });
        Ok(parts)
    }
}

struct Driver {
    workflow: Arc<Workflow>,
    /// `None` only while a step runs on a blocking thread.
    conductor: Option<Conductor>,
    services: Arc<dyn RunnerServices>,
    ctx: RunContext,
    saved: Saved,
    /// Task records by id.
    records: HashMap<String, TaskRecord>,
    /// Task records changed since the last save.
    dirty: Vec<String>,
    /// What the stored state parts hold, to save only the parts that changed.
    stored: StoredParts,
    /// With-items results so far, by `"<task>__r<route>"`.
    items: HashMap<String, Vec<Value>>,
    /// Expressions call `task()`: the conductor gets the task records.
    uses_task_records: bool,
    /// Expressions call `st2kv()`: conductor steps run on a blocking thread.
    reads_datastore: bool,
}

fn task_key(task: &str, route: usize) -> String {
    format!("{task}__r{route}")
}

fn to_status(status: ExecutionStatus) -> Status {
    Status::parse(&status.to_string()).unwrap_or(Status::Failed)
}

fn execution_status(status: Status) -> ExecutionStatus {
    match status {
        Status::Succeeded => ExecutionStatus::Succeeded,
        Status::Timeout => ExecutionStatus::Timeout,
        Status::Canceled => ExecutionStatus::Canceled,
        Status::Abandoned => ExecutionStatus::Abandoned,
        Status::Paused => ExecutionStatus::Paused,
        Status::Pending => ExecutionStatus::Pending,
        Status::Failed => ExecutionStatus::Failed,
        _ => ExecutionStatus::Running,
    }
}

fn fail(message: impl Into<String>) -> RunnerError {
    RunnerError::Failed(message.into())
}

impl Driver {
    fn conductor(&self) -> &Conductor {
        self.conductor
            .as_ref()
            .unwrap_or_else(|| unreachable!("the conductor is back after every step"))
    }

    fn status(&self) -> Option<Status> {
        self.conductor().state.status
    }

    /// Run `f` on the conductor (on a blocking thread when expressions read the datastore).
    async fn step<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Conductor) -> R + Send + 'static,
    ) -> Result<R, RunnerError> {
        let mut conductor = self
            .conductor
            .take()
            .ok_or_else(|| fail("the workflow conductor is busy"))?;
        if self.uses_task_records {
            let records = self
                .saved
                .tasks
                .iter()
                .filter_map(|(key, id)| Some((key.clone(), self.records.get(id)?.doc.clone())))
                .collect();
            conductor.set_task_records(records);
        }
        let run = move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut conductor)));
            (conductor, out)
        };
        // Only `st2kv()` blocks (it reads the store); other steps run here.
        let (conductor, out) = if self.reads_datastore {
            tokio::task::spawn_blocking(run)
                .await
                .map_err(|e| fail(format!("the workflow step stopped: {e}")))?
        } else {
            run()
        };
        self.conductor = Some(conductor);
        out.map_err(|_| fail("the workflow conductor panicked"))
    }

    /// The context StackStorm gives a workflow: `st2` (and `parent` under a parent).
    fn st2_context(&self) -> Map<String, Value> {
        let c = &self.ctx.context;
        let mut st2 = Map::new();
        st2.insert(
            "action_execution_id".into(),
            self.ctx.execution_id.clone().into(),
        );
        st2.insert(
            "api_url".into(),
            self.ctx
                .env
                .get("ST2_ACTION_API_URL")
                .cloned()
                .unwrap_or_else(|| "http://127.0.0.1:9101/v1".to_owned())
                .into(),
        );
        st2.insert(
            "user".into(),
            c.get("user").cloned().unwrap_or_else(|| "stanley".into()),
        );
        st2.insert("pack".into(), self.ctx.action.pack().to_owned().into());
        st2.insert("action".into(), self.ctx.action.reference.clone().into());
        st2.insert("runner".into(), self.ctx.runner_type.name.clone().into());
        for key in ["api_user", "source_channel"] {
            if let Some(v) = c.get(key) {
                st2.insert(key.into(), v.clone());
            }
        }
        st2.insert(
            "workflow_execution_id".into(),
            self.ctx.execution_id.clone().into(),
        );
        let mut out = Map::new();
        out.insert("st2".into(), Value::Object(st2));
        if let Some(parent) = c.get("parent") {
            out.insert("parent".into(), parent.clone());
        }
        out
    }

    /// Take over a saved state (this execution's, or the original's for a re-run).
    fn restore(&mut self, stored: RunnerState) -> Result<(), RunnerError> {
        let broken = |e: String| fail(format!("the saved workflow state does not load: {e}"));
        self.saved = serde_json::from_str(stored.state.get()).map_err(|e| broken(e.to_string()))?;
        self.stored = StoredParts::default();
        for part in &stored.parts {
            let Some(text) = &part.doc else {
                continue;
            };
            self.stored
                .load(&mut self.saved, &part.key, text)
                .map_err(broken)?;
        }
        self.stored.check().map_err(broken)?;
        let state = std::mem::take(&mut self.saved.conductor);
        self.conductor = Some(Conductor::restore(self.workflow.clone(), state));
        for record in stored.tasks {
            if let Some(items) = record.doc.get("result").and_then(|r| r.get("items"))
                && let Value::Array(items) = items
            {
                let results = items
                    .iter()
                    .map(|i| i.get("result").cloned().unwrap_or(Value::Null))
                    .collect();
                self.items.insert(
                    task_key(&record.task_id, record.task_route as usize),
                    results,
                );
            }
            self.records.insert(record.id.clone(), record);
        }
        Ok(())
    }

    /// Continue from the saved state, re-run the original workflow from the tasks asked for,
    /// or start the workflow.
    async fn load_or_start(&mut self) -> Result<(), RunnerError> {
        if let Some(stored) = self.services.load_state().await? {
            return self.restore(stored);
        }
        self.set_deadline();
        let rerun = self.ctx.context.get("re-run").cloned();
        if let Some(rerun) = rerun
            && rerun
                .get("tasks")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty())
        {
            return self.rerun(&rerun).await;
        }
        let inputs = self.ctx.parameters.clone();
        let parent = self.st2_context();
        self.step(move |c| {
            c.start(&inputs, &parent);
        })
        .await?;
        self.save().await
    }

    /// The `timeout` runner parameter, from now.
    fn set_deadline(&mut self) {
        if let Some(secs) = self
            .ctx
            .runner_parameters
            .get("timeout")
            .and_then(Value::as_i64)
            && secs > 0
        {
            self.saved.deadline_ms = Some(self.now_ms().saturating_add(secs.saturating_mul(1000)));
        }
    }

    /// A re-run from tasks (StackStorm's `re-run` context: `ref`, `tasks` as `name` or
    /// `name.route`, `reset`): the original's state and task records are copied, and the
    /// conductor re-stages the tasks.
    async fn rerun(&mut self, rerun: &Value) -> Result<(), RunnerError> {
        let original = rerun.get("ref").and_then(Value::as_str).unwrap_or_default();
        let stored = self.services.load_state_of(original).await?.ok_or_else(|| {
            fail(format!(
                "Unable to rerun workflow execution: execution \"{original}\" has no workflow state."
            ))
        })?;
        let deadline = self.saved.deadline_ms;
        self.restore(stored)?;
        // This execution's record holds none of the original's parts yet.
        self.stored = StoredParts::default();
        self.saved.deadline_ms = deadline;
        self.saved.timed_out = false;
        self.saved.children.clear();
        // The copied task records get ids of their own.
        let records: Vec<TaskRecord> = self.records.drain().map(|(_, r)| r).collect();
        let mut renamed = HashMap::new();
        for mut record in records {
            let id = st2_core::store::new_id();
            renamed.insert(record.id.clone(), id.clone());
            record.id = id.clone();
            if let Value::Object(doc) = &mut record.doc {
                doc.insert("task_execution_id".into(), id.clone().into());
                doc.insert(
                    "workflow_execution_id".into(),
                    self.ctx.execution_id.clone().into(),
                );
            }
            self.records.insert(id.clone(), record);
            self.dirty.push(id);
        }
        for id in self.saved.tasks.values_mut() {
            if let Some(new) = renamed.get(id) {
                id.clone_from(new);
            }
        }
        let names = |key: &str| -> Vec<String> {
            rerun
                .get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut tasks = Vec::new();
        for t in names("tasks") {
            let (name, route) = match t.rsplit_once('.') {
                Some((n, r)) if r.parse::<usize>().is_ok() => {
                    (n.to_owned(), r.parse::<usize>().unwrap_or(0))
                }
                _ => (t.clone(), 0),
            };
            tasks.push((name, route));
        }
        let reset = names("reset");
        let reset_items = tasks.iter().any(|(n, _)| reset.contains(n));
        self.step(move |c| c.request_rerun(&tasks, reset_items))
            .await?
            .map_err(|e| fail(format!("Unable to rerun workflow execution: {e}")))?;
        self.save().await
    }

    /// Save the state and the changed task records, in one write: the small head of the
    /// state, and of its parts (contexts, task entries, children) only those that changed.
    async fn save(&mut self) -> Result<(), RunnerError> {
        let save = self.take_save()?;
        self.services
            .save_state_parts(save.status, save.head, save.parts, save.tasks)
            .await
    }

    /// What [`Driver::save`] writes; the parts are counted as saved from here on.
    fn take_save(&mut self) -> Result<Save, RunnerError> {
        let status = self.status().map_or("requested", Status::as_str);
        let conductor = self
            .conductor
            .as_ref()
            .ok_or_else(|| fail("the workflow conductor is busy"))?;
        let parts = self
            .stored
            .changes(&conductor.state, &self.saved.children)
            .map_err(|e| fail(format!("the workflow state cannot be saved: {e}")))?;
        let state = &conductor.state;
        let head = Head {
            conductor: ConductorHead {
                status: state.status,
                contexts: &[],
                routes: &state.routes,
                sequence: &[],
                tasks: &state.tasks,
                staged: &state.staged,
                errors: &state.errors,
                output: &state.output,
                output_rendered: state.output_rendered,
            },
            tasks: &self.saved.tasks,
            deadline_ms: self.saved.deadline_ms,
            timed_out: self.saved.timed_out,
        };
        let head = serde_json::value::to_raw_value(&head)
            .map_err(|e| fail(format!("the workflow state cannot be saved: {e}")))?;
        let tasks = std::mem::take(&mut self.dirty)
            .iter()
            .filter_map(|id| self.records.get(id).cloned())
            .collect();
        Ok(Save {
            status,
            head,
            parts,
            tasks,
        })
    }

    /// Save, and start the children recorded and not started yet, in one call: the engine
    /// commits the state and the children together. Past [`START_BATCH`] children, the rest
    /// start as [`Driver::start_children`] starts them.
    async fn save_and_start(&mut self) -> Result<(), RunnerError> {
        let save = self.take_save()?;
        let (ids, requests): (Vec<String>, Vec<ChildRequest>) = self
            .saved
            .children
            .iter()
            .filter(|(_, c)| !c.started)
            .take(START_BATCH)
            .map(|(id, c)| (id.clone(), self.child_request(id, c)))
            .unzip();
        let started = self
            .services
            .save_state_and_start(save.status, save.head, save.parts, save.tasks, requests)
            .await?;
        self.started(&ids, started).await?;
        self.start_children().await
    }

    /// Note the outcome of starting each of `ids`: started, or its task failed.
    async fn started(
        &mut self,
        ids: &[String],
        outcomes: Vec<Result<ExecutionRecord, RunnerError>>,
    ) -> Result<(), RunnerError> {
        for (id, started) in ids.iter().zip(outcomes) {
            match started {
                Ok(_) => {
                    if let Some(c) = self.saved.children.get_mut(id) {
                        c.started = true;
                    }
                }
                Err(e) => {
                    let Some(child) = self.saved.children.remove(id) else {
                        continue;
                    };
                    let result = json!({"errors": [{"message": e.to_string()}]});
                    self.complete_child(&child, Status::Failed, result).await?;
                }
            }
        }
        Ok(())
    }

    fn now(&self) -> String {
        self.ctx.clock.now().to_rfc3339()
    }

    fn now_ms(&self) -> i64 {
        self.ctx.clock.now().timestamp_millis()
    }

    /// The nearest deadline (workflow or task) still ahead of us, if any.
    fn next_deadline(&self) -> Option<i64> {
        let tasks = self
            .saved
            .children
            .values()
            .filter(|c| !c.timed_out)
            .filter_map(|c| c.deadline_ms);
        let workflow = self.saved.deadline_ms.filter(|_| !self.saved.timed_out);
        tasks.chain(workflow).min()
    }

    /// Cancel what ran past its deadline: a task's action (the task then ends `timeout`) or,
    /// past the workflow's, the whole workflow (it ends `timeout`).
    async fn enforce_deadlines(&mut self) -> Result<(), RunnerError> {
        let now = self.now_ms();
        if !self.saved.timed_out
            && self.saved.deadline_ms.is_some_and(|d| d <= now)
            && !self.status().is_some_and(Status::is_completed)
        {
            self.saved.timed_out = true;
            let seconds = self
                .ctx
                .runner_parameters
                .get("timeout")
                .cloned()
                .unwrap_or(Value::Null);
            if let Some(c) = self.conductor.as_mut() {
                c.state.errors.push(json!({
                    "type": "error",
                    "message": format!(
                        "The workflow timed out after {} seconds.",
                        st2_core::expr::python::str(&seconds)
                    ),
                }));
            }
            self.apply_request(Status::Canceling).await?;
            return Ok(());
        }
        let expired: Vec<String> = self
            .saved
            .children
            .iter()
            .filter(|(_, c)| !c.timed_out && c.deadline_ms.is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(c) = self.saved.children.get_mut(&id) {
                c.timed_out = true;
            }
            self.save().await?;
            self.services.cancel(&id).await?;
        }
        Ok(())
    }

    fn touch(&mut self, id: &str) {
        if !self.dirty.iter().any(|d| d == id) {
            self.dirty.push(id.to_owned());
        }
    }

    /// The task record of a task handed out now: a new one, except for a with-items task
    /// that is already running (its record is reused).
    fn task_record(&mut self, t: &NextTask) -> String {
        let key = task_key(&t.id, t.route);
        if t.with_items
            && let Some(id) = self.saved.tasks.get(&key)
            && self.records.get(id).is_some_and(|r| r.status == "running")
        {
            return id.clone();
        }
        let id = st2_core::store::new_id();
        let now = self.ctx.clock.now();
        let mut doc = Map::new();
        doc.insert("task_execution_id".into(), id.clone().into());
        doc.insert(
            "workflow_execution_id".into(),
            self.ctx.execution_id.clone().into(),
        );
        doc.insert("task_name".into(), t.id.clone().into());
        doc.insert("task_id".into(), t.id.clone().into());
        doc.insert("route".into(), t.route.into());
        doc.insert("status".into(), "running".into());
        doc.insert("start_timestamp".into(), self.now().into());
        doc.insert("end_timestamp".into(), Value::Null);
        doc.insert("itemized".into(), t.with_items.into());
        if let Some(n) = t.items_count {
            doc.insert("items_count".into(), n.into());
            doc.insert("result".into(), json!({"items": vec![Value::Null; n]}));
            self.items.insert(key.clone(), vec![Value::Null; n]);
        } else {
            doc.insert("result".into(), Value::Null);
        }
        self.records.insert(
            id.clone(),
            TaskRecord {
                id: id.clone(),
                workflow_id: String::new(),
                task_id: t.id.clone(),
                task_route: u32::try_from(t.route).unwrap_or(u32::MAX),
                status: "running".to_owned(),
                doc: Value::Object(doc),
                created_at: now,
                updated_at: now,
            },
        );
        self.saved.tasks.insert(key, id.clone());
        self.touch(&id);
        id
    }

    /// Record a child's (or an action-less task's) status and result in its task record.
    fn record_result(
        &mut self,
        record: &str,
        item: Option<(usize, usize)>,
        status: Status,
        result: &Value,
    ) {
        let now = self.ctx.clock.now();
        let stamp = self.now();
        let Some(r) = self.records.get_mut(record) else {
            return;
        };
        let Value::Object(doc) = &mut r.doc else {
            return;
        };
        match item {
            Some((item_id, count)) => {
                let items = doc
                    .entry("result")
                    .or_insert_with(|| json!({"items": vec![Value::Null; count]}));
                if let Some(slot) = items
                    .get_mut("items")
                    .and_then(Value::as_array_mut)
                    .and_then(|a| a.get_mut(item_id))
                {
                    *slot = json!({"status": status.as_str(), "result": result});
                }
                let all = items
                    .get("items")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|i| i.get("status").and_then(Value::as_str))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                if all
                    .iter()
                    .all(|s| s.and_then(Status::parse).is_some_and(Status::is_completed))
                {
                    let ok = all.iter().all(|s| *s == Some("succeeded"));
                    let final_status = if ok { "succeeded" } else { "failed" };
                    doc.insert("status".into(), final_status.into());
                    doc.insert("end_timestamp".into(), stamp.into());
                    r.status = final_status.to_owned();
                }
            }
            None => {
                // StackStorm overwrites a task's result only with a truthy one.
                if crate::truthy(result) || doc.get("result").is_none_or(Value::is_null) {
                    doc.insert("result".into(), result.clone());
                }
                doc.insert("status".into(), status.as_str().into());
                if status.is_completed() {
                    doc.insert("end_timestamp".into(), stamp.into());
                }
                r.status = status.as_str().to_owned();
            }
        }
        r.updated_at = now;
        let id = r.id.clone();
        self.touch(&id);
    }

    /// Hand out what the conductor says to run: record the children, mark them running,
    /// complete action-less tasks; returns whether anything was handed out.
    async fn hand_out(&mut self) -> Result<bool, RunnerError> {
        let tasks = self.step(Conductor::next_tasks).await?;
        if tasks.is_empty() {
            return Ok(false);
        }
        for t in tasks {
            let record = self.task_record(&t);
            if t.with_items && t.items_count == Some(0) {
                let key = task_key(&t.id, t.route);
                self.items.insert(key, Vec::new());
                self.record_result(&record, None, Status::Succeeded, &json!([]));
                let (id, route) = (t.id.clone(), t.route);
                self.step(move |c| {
                    let run = TaskEvent::Action {
                        status: Status::Running,
                        result: Value::Null,
                    };
                    let done = TaskEvent::Action {
                        status: Status::Succeeded,
                        result: json!([]),
                    };
                    let _ = c
                        .update_task(&id, route, &run)
                        .and_then(|()| c.update_task(&id, route, &done));
                })
                .await?;
                continue;
            }
            for a in &t.actions {
                let running = match a.item_id {
                    Some(item_id) => TaskEvent::Item {
                        item_id,
                        status: Status::Running,
                        result: Value::Null,
                        accumulated: Value::Null,
                    },
                    None => TaskEvent::Action {
                        status: Status::Running,
                        result: Value::Null,
                    },
                };
                let (id, route) = (t.id.clone(), t.route);
                self.step(move |c| c.update_task(&id, route, &running))
                    .await?
                    .map_err(|e| fail(e.to_string()))?;
                let Some(action) = &a.action else {
                    // An action-less task succeeds at once.
                    self.record_result(&record, None, Status::Succeeded, &Value::Null);
                    let (id, route) = (t.id.clone(), t.route);
                    self.step(move |c| {
                        c.update_task(
                            &id,
                            route,
                            &TaskEvent::Action {
                                status: Status::Succeeded,
                                result: Value::Null,
                            },
                        )
                    })
                    .await?
                    .map_err(|e| fail(e.to_string()))?;
                    continue;
                };
                let input = match &a.input {
                    Value::Object(m) => m.clone(),
                    Value::Null => Map::new(),
                    other => {
                        let message = format!(
                            "The input of task \"{}\" must be a dict, not {}.",
                            t.id,
                            st2_core::expr::python::str(other)
                        );
                        self.fail_child(&t, a.item_id, &record, &message).await?;
                        continue;
                    }
                };
                let Value::String(action) = action else {
                    let message = format!(
                        "The action of task \"{}\" must be a string, not {}.",
                        t.id,
                        st2_core::expr::python::str(action)
                    );
                    self.fail_child(&t, a.item_id, &record, &message).await?;
                    continue;
                };
                let child_id = st2_core::store::new_id();
                let deadline_ms = t.timeout.map(|secs| {
                    let delay = t.delay.filter(|d| *d > 0).unwrap_or(0);
                    self.now_ms()
                        .saturating_add(delay.saturating_add(secs).saturating_mul(1000))
                });
                let delay_ms = t
                    .delay
                    .filter(|d| *d > 0)
                    .map(|d| u64::try_from(d).unwrap_or(0).saturating_mul(1000));
                self.saved.children.insert(
                    child_id,
                    Child {
                        task: t.id.clone(),
                        route: t.route,
                        item: a.item_id,
                        items_count: t.items_count,
                        action: action.clone(),
                        input,
                        delay_ms,
                        record: record.clone(),
                        seen: Status::Running.as_str().to_owned(),
                        started: false,
                        deadline_ms,
                        timed_out: false,
                    },
                );
            }
        }
        Ok(true)
    }

    /// A task whose action cannot be requested fails with `message`.
    async fn fail_child(
        &mut self,
        t: &NextTask,
        item: Option<usize>,
        record: &str,
        message: &str,
    ) -> Result<(), RunnerError> {
        let result = json!({"errors": [{"message": message}]});
        self.complete(
            &t.id,
            t.route,
            item.map(|i| (i, t.items_count.unwrap_or(0))),
            record,
            Status::Failed,
            result,
        )
        .await
    }

    /// Start every recorded child not started yet (after the state that records them is
    /// saved). A child that cannot be created fails its task.
    async fn start_children(&mut self) -> Result<(), RunnerError> {
        let pending: Vec<String> = self
            .saved
            .children
            .iter()
            .filter(|(_, c)| !c.started)
            .map(|(id, _)| id.clone())
            .collect();
        // Started a batch at a time, concurrently, so the store commits them together (one
        // child, the usual case of a sequence, is started in place).
        for batch in pending.chunks(START_BATCH) {
            let mut requests: Vec<(usize, ChildRequest)> = batch
                .iter()
                .enumerate()
                .filter_map(|(n, id)| {
                    let child = self.saved.children.get(id)?;
                    Some((n, self.child_request(id, child)))
                })
                .collect();
            let mut outcomes = Vec::with_capacity(requests.len());
            if requests.len() == 1 {
                let (n, request) = requests.remove(0);
                outcomes.push((n, self.services.start_child(request).await));
            } else {
                let mut starts = tokio::task::JoinSet::new();
                for (n, request) in requests {
                    let services = self.services.clone();
                    starts.spawn(async move { (n, services.start_child(request).await) });
                }
                while let Some(joined) = starts.join_next().await {
                    let (n, started) =
                        joined.map_err(|e| fail(format!("starting a task stopped: {e}")))?;
                    outcomes.push((n, started));
                }
                outcomes.sort_by_key(|(n, _)| *n);
            }
            let (ids, outcomes): (Vec<String>, Vec<_>) = outcomes
                .into_iter()
                .map(|(n, started)| (batch[n].clone(), started))
                .unzip();
            self.started(&ids, outcomes).await?;
        }
        Ok(())
    }

    /// The child execution request of a recorded child.
    fn child_request(&self, id: &str, child: &Child) -> ChildRequest {
        let mut orquesta = Map::new();
        orquesta.insert(
            "workflow_execution_id".into(),
            self.ctx.execution_id.clone().into(),
        );
        orquesta.insert("task_execution_id".into(), child.record.clone().into());
        orquesta.insert("task_name".into(), child.task.clone().into());
        orquesta.insert("task_id".into(), child.task.clone().into());
        orquesta.insert("task_route".into(), child.route.into());
        if let Some(item) = child.item {
            orquesta.insert("item_id".into(), item.into());
        }
        let mut request = ChildRequest::new(child.action.clone(), child.input.clone());
        request
            .context
            .insert("orquesta".into(), Value::Object(orquesta));
        request.context.insert(
            "pack".into(),
            child.action.split_once('.').map_or("", |(p, _)| p).into(),
        );
        request.id = Some(id.to_owned());
        request.delay_ms = child.delay_ms;
        request
    }

    /// Feed a recorded child's status to the conductor.
    async fn complete_child(
        &mut self,
        child: &Child,
        status: Status,
        result: Value,
    ) -> Result<(), RunnerError> {
        let item = child.item.map(|i| (i, child.items_count.unwrap_or(0)));
        self.complete(
            &child.task,
            child.route,
            item,
            &child.record,
            status,
            result,
        )
        .await
    }

    /// Feed one task (or item) status to the conductor.
    async fn complete(
        &mut self,
        task: &str,
        route: usize,
        item: Option<(usize, usize)>,
        record: &str,
        status: Status,
        result: Value,
    ) -> Result<(), RunnerError> {
        self.record_result(record, item, status, &result);
        // The results of every item so far only matter to the conductor when this event can
        // complete the task: when no other item of it is still out. Copying them for every
        // item would make a with-items task quadratic.
        let others_out = self
            .saved
            .children
            .values()
            .any(|c| c.task == task && c.route == route);
        let event = match item {
            Some((item_id, count)) => {
                let key = task_key(task, route);
                let results = self
                    .items
                    .entry(key)
                    .or_insert_with(|| vec![Value::Null; count]);
                if results.len() < count {
                    results.resize(count, Value::Null);
                }
                if let Some(slot) = results.get_mut(item_id) {
                    *slot = result.clone();
                }
                TaskEvent::Item {
                    item_id,
                    status,
                    result,
                    accumulated: if others_out {
                        Value::Null
                    } else {
                        Value::Array(results.clone())
                    },
                }
            }
            None => TaskEvent::Action { status, result },
        };
        let (task, route) = (task.to_owned(), route);
        // A stale event (the task moved on) changes nothing; it is not the workflow's error.
        let _ = self
            .step(move |c| c.update_task(&task, route, &event))
            .await?;
        Ok(())
    }

    /// A child reached `record.status`: feed it in; completed children are forgotten.
    async fn child_settled(&mut self, record: &ExecutionRecord) -> Result<(), RunnerError> {
        let Some(child) = self.saved.children.get(&record.id).cloned() else {
            return Ok(());
        };
        let mut status = to_status(record.status);
        let mut result = record.result.clone();
        if child.timed_out && status == Status::Canceled {
            status = Status::Timeout;
            if let Value::Object(m) = &mut result {
                m.insert(
                    "error".into(),
                    format!("The task \"{}\" timed out.", child.task).into(),
                );
            } else {
                result = json!({"error": format!("The task \"{}\" timed out.", child.task)});
            }
        }
        // Only settled statuses are events for the conductor (and `running` again after a
        // pause); `canceling`, `scheduled` and the like are not.
        let settled = status.is_completed()
            || matches!(status, Status::Paused | Status::Pending)
            || (status == Status::Running && child.seen != Status::Running.as_str());
        if !settled || child.seen == status.as_str() {
            return Ok(());
        }
        if status.is_completed() {
            self.saved.children.remove(&record.id);
        } else if let Some(c) = self.saved.children.get_mut(&record.id) {
            c.seen = status.as_str().to_owned();
        }
        self.complete_child(&child, status, result).await
    }

    /// Read every child again (after a restart, a resume, or while some are paused or
    /// pending) and feed in what changed.
    async fn refresh_children(&mut self) -> Result<(), RunnerError> {
        let ids: Vec<String> = self.saved.children.keys().cloned().collect();
        for id in ids {
            match self.services.execution(&id).await? {
                Some(record) => self.child_settled(&record).await?,
                // Recorded but never created (the engine stopped in between): start it.
                None => {
                    if let Some(c) = self.saved.children.get_mut(&id) {
                        c.started = false;
                    }
                }
            }
        }
        Ok(())
    }

    fn active_children(&self) -> Vec<String> {
        self.saved
            .children
            .iter()
            .filter(|(_, c)| c.started && c.seen == Status::Running.as_str())
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn own_status_request(record: Option<&ExecutionRecord>) -> Option<Status> {
        match record.map(|r| r.status) {
            Some(ExecutionStatus::Pausing) => Some(Status::Pausing),
            Some(ExecutionStatus::Canceling | ExecutionStatus::Canceled) => Some(Status::Canceling),
            _ => None,
        }
    }

    /// Pass a pause or cancel request of the execution to the conductor; a cancel goes on to
    /// every unfinished child.
    async fn apply_request(&mut self, requested: Status) -> Result<(), RunnerError> {
        let current = self.status();
        let already = match requested {
            Status::Pausing => matches!(current, Some(Status::Pausing | Status::Paused)),
            _ => matches!(current, Some(Status::Canceling | Status::Canceled)),
        };
        if already || current.is_some_and(Status::is_completed) {
            return Ok(());
        }
        let _ = self.step(move |c| c.request_status(requested)).await?;
        if requested == Status::Canceling {
            let ids: Vec<String> = self.saved.children.keys().cloned().collect();
            for id in ids {
                self.services.cancel(&id).await?;
            }
        }
        self.save().await
    }

    /// Resume after a pause: the conductor goes `resuming`, paused children are resumed.
    async fn resume(&mut self) -> Result<(), RunnerError> {
        if self.status() != Some(Status::Paused) && self.status() != Some(Status::Pausing) {
            return Ok(());
        }
        let _ = self.step(|c| c.request_status(Status::Resuming)).await?;
        let paused: Vec<String> = self
            .saved
            .children
            .iter()
            .filter(|(_, c)| c.seen == Status::Paused.as_str())
            .map(|(id, _)| id.clone())
            .collect();
        for id in paused {
            // Resumed already (by whoever resumed this one) or finished: nothing to do.
            let _ = self.services.resume(&id).await;
            if let Some(child) = self.saved.children.get_mut(&id) {
                child.seen = Status::Running.as_str().to_owned();
            }
            if let Some(child) = self.saved.children.get(&id).cloned() {
                self.complete_child(&child, Status::Running, Value::Null)
                    .await?;
            }
        }
        self.save().await
    }

    /// The workflow's result as StackStorm shapes it: `output`, and `errors` when it did not
    /// succeed.
    fn result(&self) -> Value {
        let state = &self.conductor().state;
        let mut out = Map::new();
        if state.status.is_some_and(|s| s != Status::Succeeded) && !state.errors.is_empty() {
            out.insert("errors".into(), Value::Array(state.errors.clone()));
        }
        out.insert(
            "output".into(),
            state.output.clone().map_or(Value::Null, Value::Object),
        );
        Value::Object(out)
    }

    async fn drive(&mut self) -> Result<RunOutcome, RunnerError> {
        // Whatever happened while no run watched: a pause or cancel requested, a resume,
        // children that finished.
        // Children's completions go in before the resume, as StackStorm's do (an answered
        // inquiry completes its task while the workflow is still paused).
        let own = self.services.execution(&self.ctx.execution_id).await?;
        let requested = Self::own_status_request(own.as_ref());
        if let Some(requested) = requested {
            self.apply_request(requested).await?;
        }
        self.refresh_children().await?;
        if requested.is_none() && self.ctx.resume.is_some() {
            self.resume().await?;
        }
        loop {
            if self.ctx.cancel.is_cancelled() {
                self.apply_request(Status::Canceling).await?;
            }
            let handed = self.hand_out().await?;
            self.step(Conductor::render_output).await?;
            if handed {
                self.save_and_start().await?;
                // Children that could not start were fed back in: look again.
                if self.saved.children.values().any(|c| !c.started) {
                    continue;
                }
            } else {
                self.save().await?;
            }
            let status = self.status().unwrap_or(Status::Failed);
            let active = self.active_children();
            if status.is_completed() && active.is_empty() {
                self.save().await?;
                let status = if self.saved.timed_out && status == Status::Canceled {
                    ExecutionStatus::Timeout
                } else {
                    execution_status(status)
                };
                return Ok(RunOutcome::with_status(status, self.result()));
            }
            if status == Status::Paused && active.is_empty() {
                self.save().await?;
                return Ok(RunOutcome::with_status(
                    ExecutionStatus::Paused,
                    self.result(),
                ));
            }
            if active.is_empty() && !handed {
                // Nothing runs and nothing was handed out: only paused or pending children
                // (or a conductor that stopped); look at them again shortly.
                if self.saved.children.is_empty()
                    && !matches!(status, Status::Pausing | Status::Canceling)
                {
                    let mut result = self.result();
                    if let Value::Object(m) = &mut result {
                        m.entry("errors").or_insert_with(|| {
                            json!([{"type": "error", "message": format!(
                                "The workflow stopped in status {} with nothing left to run.",
                                status.as_str()
                            )}])
                        });
                    }
                    return Ok(RunOutcome::failed(result));
                }
            }
            let wait = match self.next_deadline() {
                Some(d) => POLL.min(Duration::from_millis(
                    u64::try_from(d.saturating_sub(self.now_ms())).unwrap_or(0),
                )),
                None => POLL,
            };
            let settled = tokio::select! {
                r = self.services.wait_any(&active, Some(wait)) => r?,
                () = self.ctx.cancel.cancelled() => Vec::new(),
            };
            for record in &settled {
                self.child_settled(record).await?;
            }
            self.enforce_deadlines().await?;
            if settled.is_empty() {
                self.refresh_children().await?;
                let own = self.services.execution(&self.ctx.execution_id).await?;
                if let Some(requested) = Self::own_status_request(own.as_ref()) {
                    self.apply_request(requested).await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_both_ways() {
        for s in [
            ExecutionStatus::Succeeded,
            ExecutionStatus::Failed,
            ExecutionStatus::Timeout,
            ExecutionStatus::Canceled,
            ExecutionStatus::Abandoned,
            ExecutionStatus::Paused,
            ExecutionStatus::Pending,
        ] {
            assert_eq!(execution_status(to_status(s)), s);
        }
    }

    fn entry(id: &str) -> TaskEntry {
        TaskEntry {
            id: id.into(),
            route: 0,
            ctxs_in: vec![0],
            ctxs_out: BTreeMap::new(),
            prev: BTreeMap::new(),
            next: BTreeMap::new(),
            status: Some(Status::Running),
            term: false,
            retry: None,
        }
    }

    fn child(task: &str) -> Child {
        Child {
            task: task.into(),
            route: 0,
            item: None,
            items_count: None,
            action: "core.noop".into(),
            input: Map::new(),
            delay_ms: None,
            record: "r".into(),
            seen: "running".into(),
            started: false,
            deadline_ms: None,
            timed_out: false,
        }
    }

    /// Load `parts` into an empty state, as a restart does.
    fn reload(parts: &[StatePart]) -> (Saved, StoredParts) {
        let mut saved = Saved::default();
        let mut stored = StoredParts::default();
        for part in parts {
            stored
                .load(&mut saved, &part.key, part.doc.as_deref().expect("text"))
                .expect("loads");
        }
        stored.check().expect("complete");
        (saved, stored)
    }

    #[test]
    fn only_changed_parts_are_saved_and_they_load_back() {
        let mut state = ConductorState::default();
        state
            .contexts
            .push(Map::from_iter([("x".to_owned(), json!(1))]));
        state.sequence = (0..12).map(|i| entry(&format!("t{i}"))).collect();
        let mut children = BTreeMap::from([("c1".to_owned(), child("t11"))]);
        let mut stored = StoredParts::default();
        let first = stored.changes(&state, &children).expect("serialises");
        assert_eq!(first.len(), 1 + 12 + 1, "everything, the first time");
        assert!(stored.changes(&state, &children).expect("same").is_empty());

        // One entry completes, one is added, a child is replaced by another.
        state.sequence[11].status = Some(Status::Succeeded);
        state.sequence.push(entry("t12"));
        children.remove("c1");
        children.insert("c2".into(), child("t12"));
        let second = stored.changes(&state, &children).expect("serialises");
        let mut keys: Vec<(&str, bool)> = second
            .iter()
            .map(|p| (p.key.as_str(), p.doc.is_some()))
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                ("child.c1", false),
                ("child.c2", true),
                ("seq.11", true),
                ("seq.12", true)
            ]
        );

        // What the store holds after both saves loads back into the same state, and a save
        // right after the reload writes nothing.
        let mut held: BTreeMap<String, StatePart> = BTreeMap::new();
        for part in first.into_iter().chain(second) {
            match part.doc {
                Some(_) => {
                    held.insert(part.key.clone(), part);
                }
                None => {
                    held.remove(&part.key);
                }
            }
        }
        let parts: Vec<StatePart> = held.into_values().collect();
        let (saved, mut reloaded) = reload(&parts);
        assert_eq!(saved.conductor.sequence, state.sequence);
        assert_eq!(saved.conductor.contexts, state.contexts);
        assert_eq!(
            saved.children.keys().collect::<Vec<_>>(),
            children.keys().collect::<Vec<_>>()
        );
        assert!(
            reloaded
                .changes(&state, &children)
                .expect("same")
                .is_empty()
        );
        // A child's status changing (started, then seen succeeded) is a change of its part.
        for change in [
            |c: &mut Child| c.started = true,
            |c: &mut Child| c.seen = "succeeded".into(),
            |c: &mut Child| c.timed_out = true,
        ] {
            change(children.get_mut("c2").expect("c2"));
            let saved = reloaded.changes(&state, &children).expect("serialises");
            assert_eq!(saved.len(), 1);
            assert_eq!(saved[0].key, "child.c2");
            let text = saved[0].doc.as_deref().expect("a text");
            let back: Child = serde_json::from_str(text).expect("a child");
            assert_eq!(value_hash(&back), value_hash(&children["c2"]));
        }
    }

    #[test]
    fn the_part_hash_tells_changed_entries_apart() {
        let mut seen = std::collections::HashSet::new();
        let base = entry("t1");
        let mut variants = vec![base.clone()];
        let mut e = base.clone();
        e.status = Some(Status::Succeeded);
        variants.push(e.clone());
        e.term = true;
        variants.push(e.clone());
        e.next.insert("t2__t0".into(), true);
        variants.push(e.clone());
        e.next.insert("t2__t0".into(), false);
        variants.push(e.clone());
        e.prev.insert("t0__t0".into(), 3);
        variants.push(e.clone());
        e.ctxs_out.insert("t2__t0".into(), 4);
        variants.push(e.clone());
        e.route = 1;
        variants.push(e.clone());
        e.id = "t1a".into();
        variants.push(e);
        for v in &variants {
            assert!(seen.insert(value_hash(v)), "{v:?} hashes like another");
        }
        assert_eq!(value_hash(&base), value_hash(&base.clone()));
        assert_ne!(value_hash("a"), value_hash("a\0"));
        assert_ne!(value_hash(&("ab", "c")), value_hash(&("a", "bc")));
    }

    #[test]
    fn a_missing_task_entry_part_is_an_error() {
        let mut saved = Saved::default();
        let mut stored = StoredParts::default();
        let text = serde_json::to_string(&entry("t1")).expect("serialises");
        stored.load(&mut saved, "seq.1", &text).expect("loads");
        assert!(stored.check().is_err(), "entry 0 is missing");
        assert!(stored.load(&mut saved, "other.1", "{}").is_err());
        assert!(stored.load(&mut saved, "seq.x", &text).is_err());
    }

    #[test]
    fn saved_state_round_trips() {
        let mut saved = Saved::default();
        saved.children.insert(
            "c1".into(),
            Child {
                task: "t".into(),
                route: 0,
                item: Some(2),
                items_count: Some(3),
                action: "core.noop".into(),
                input: Map::new(),
                delay_ms: None,
                record: "r".into(),
                seen: "running".into(),
                started: true,
                deadline_ms: Some(5),
                timed_out: false,
            },
        );
        let back: Saved = serde_json::from_value(serde_json::to_value(&saved).expect("serialises"))
            .expect("loads");
        assert_eq!(back.children["c1"].item, Some(2));
        assert_eq!(back.children["c1"].deadline_ms, Some(5));
    }
}
