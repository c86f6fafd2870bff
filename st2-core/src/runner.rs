//! Runners: what executes an action. StackStorm's built-in runners live in `st2-runners` (and
//! `orquesta` in `st2-workflow`); a Rust program adds its own by implementing [`Runner`] and
//! registering it under a runner type name.
//!
//! ```
//! use async_trait::async_trait;
//! use serde_json::json;
//! use st2_core::runner::{RunContext, RunOutcome, Runner, RunnerError, RunnerRegistry};
//!
//! #[derive(Debug)]
//! struct Echo;
//!
//! #[async_trait]
//! impl Runner for Echo {
//!     async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
//!         Ok(RunOutcome::succeeded(json!({"echo": ctx.parameters})))
//!     }
//! }
//!
//! let mut runners = RunnerRegistry::new();
//! runners.register("echo", Echo).unwrap();
//! assert!(runners.register("echo", Echo).is_err(), "a name is registered once");
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::datastore::Datastore;
use crate::model::action::Action;
use crate::model::runner_type::RunnerType;
use crate::store::{
    ExecutionRecord, ExecutionStatus, InquiryRecord, OutputType, StatePart, TaskRecord,
};

/// Where a runner sends output while it runs (stdout/stderr lines, streamed to the output store
/// and the event stream).
///
/// # Contract
/// `emit` returns at once and never fails; the engine buffers and stores the lines in order.
///
/// # Errors
/// None.
pub trait OutputSink: Send + Sync + fmt::Debug {
    /// One chunk of output, usually a line including its newline.
    fn emit(&self, output_type: OutputType, data: &str);
}

/// An output sink that drops everything (tools and tests that do not stream).
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardOutput;

impl OutputSink for DiscardOutput {
    fn emit(&self, _output_type: OutputType, _data: &str) {}
}

/// Cancellation of one execution, as the runner sees it.
#[derive(Debug, Clone)]
pub struct Cancellation {
    receiver: watch::Receiver<bool>,
}

/// The engine's side of a [`Cancellation`].
#[derive(Debug, Clone)]
pub struct Canceller {
    sender: Arc<watch::Sender<bool>>,
}

impl Cancellation {
    /// A new pair: the runner holds the [`Cancellation`], the engine the [`Canceller`].
    pub fn new() -> (Canceller, Cancellation) {
        let (sender, receiver) = watch::channel(false);
        (
            Canceller {
                sender: Arc::new(sender),
            },
            Cancellation { receiver },
        )
    }

    /// A cancellation that never fires.
    pub fn never() -> Cancellation {
        Self::new().1
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Wait until cancellation is requested (forever if the engine dropped its side without
    /// cancelling).
    pub async fn cancelled(&self) {
        let mut receiver = self.receiver.clone();
        if receiver.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Canceller {
    /// Request cancellation.
    pub fn cancel(&self) {
        let _ = self.sender.send(true);
    }
}

/// Everything a runner gets for one execution.
#[derive(Clone)]
pub struct RunContext {
    /// The execution's id.
    pub execution_id: String,
    /// The action.
    pub action: Arc<Action>,
    /// Its runner type.
    pub runner_type: Arc<RunnerType>,
    /// The action's parameters, rendered and cast (runner parameters excluded).
    pub parameters: Map<String, Value>,
    /// The runner parameters, rendered and cast, defaults applied.
    pub runner_parameters: Map<String, Value>,
    /// The execution context (`user`, `pack`, `parent`, …).
    pub context: Map<String, Value>,
    /// The pack's directory on disk (entry points resolve under `<pack>/actions/`).
    pub pack_dir: Option<PathBuf>,
    /// The pack's config with the config schema's defaults filled in (what StackStorm gives
    /// Python actions as `self.config`).
    pub config: Map<String, Value>,
    /// Environment variables StackStorm gives process runners (`ST2_ACTION_PACK_NAME`,
    /// `ST2_ACTION_EXECUTION_ID`, `ST2_ACTION_API_URL`, `ST2_ACTION_AUTH_TOKEN`, …).
    pub env: BTreeMap<String, String>,
    /// Values a shell command refers to by variable name instead of containing them (see
    /// `st2-runners`' local shell runner): name → value.
    pub shell_values: BTreeMap<String, String>,
    /// Where output goes.
    pub output: Arc<dyn OutputSink>,
    /// Cancellation of this execution.
    pub cancel: Cancellation,
    /// The engine's clock.
    pub clock: Arc<dyn Clock>,
    /// The datastore, for runners that read or write keys.
    pub datastore: Option<Datastore>,
    /// The engine's services (child executions, inquiries, announcements); `None` when a
    /// runner is called outside an engine.
    pub services: Option<Arc<dyn RunnerServices>>,
    /// When the engine resumes a paused execution: the result it had when it paused (a runner
    /// that supports pause continues from there). `None` for a first run.
    pub resume: Option<Value>,
}

impl RunContext {
    /// The engine's services, or a [`RunnerError::Failed`] naming the runner that needs them.
    ///
    /// # Errors
    /// [`RunnerError::Failed`] when the runner runs outside an engine.
    pub fn services(&self) -> Result<&Arc<dyn RunnerServices>, RunnerError> {
        self.services.as_ref().ok_or_else(|| {
            RunnerError::Failed(format!(
                "runner {:?} needs the engine's services, and this run has none",
                self.runner_type.name
            ))
        })
    }
}

/// A child execution a runner starts (an action-chain node, a workflow task).
#[derive(Debug, Clone, PartialEq)]
pub struct ChildRequest {
    /// Action ref.
    pub action: String,
    /// Parameters, already rendered by the runner (the engine renders them once more with the
    /// child's context, as StackStorm renders every live action's parameters).
    pub parameters: Map<String, Value>,
    /// Extra context keys (`chain`: the node, …). The engine sets `parent`, `user` and the
    /// trace from the calling execution.
    pub context: Map<String, Value>,
    /// The notify settings the child gets instead of its action's (`None`: the action's).
    pub notify: Option<Value>,
    /// The child's execution id, chosen by the runner so it can record the child before
    /// starting it (`None`: the engine picks one). Starting a child whose id exists already
    /// returns the stored child.
    pub id: Option<String>,
    /// Wait this many milliseconds before scheduling the child (a workflow task's `delay`).
    pub delay_ms: Option<u64>,
}

impl ChildRequest {
    /// Run `action` with `parameters`.
    pub fn new(action: impl Into<String>, parameters: Map<String, Value>) -> Self {
        ChildRequest {
            action: action.into(),
            parameters,
            context: Map::new(),
            notify: None,
            id: None,
            delay_ms: None,
        }
    }
}

/// The durable state a runner keeps for its execution (a workflow's conductor state), as
/// [`RunnerServices::load_state`] returns it.
#[derive(Debug, Clone)]
pub struct RunnerState {
    /// A short status string (the workflow's status).
    pub status: String,
    /// The runner's state, as the JSON text it saved.
    pub state: Box<RawValue>,
    /// The task records saved with [`RunnerServices::save_task`], in creation order.
    pub tasks: Vec<TaskRecord>,
    /// The parts saved with [`RunnerServices::save_state_parts`], in key order.
    pub parts: Vec<StatePart>,
}

/// Equal when every field is; the states compare as JSON values.
impl PartialEq for RunnerState {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status
            && self.tasks == other.tasks
            && self.parts == other.parts
            && crate::store::same_json(&self.state, &other.state)
    }
}

/// [`RunnerServices::save_state_and_start`] one call after the other: save the state, then
/// start each child (its own outcome each). What the trait's default does, and what an
/// implementation that commits them together falls back to.
pub(crate) async fn save_then_start<S: RunnerServices + ?Sized>(
    services: &S,
    status: &str,
    state: Box<RawValue>,
    parts: Vec<StatePart>,
    tasks: Vec<TaskRecord>,
    children: Vec<ChildRequest>,
) -> Result<Vec<Result<ExecutionRecord, RunnerError>>, RunnerError> {
    services
        .save_state_parts(status, state, parts, tasks)
        .await?;
    let mut started = Vec::with_capacity(children.len());
    for child in children {
        started.push(services.start_child(child).await);
    }
    Ok(started)
}

/// What the engine offers the runner of one execution: child executions (action-chain,
/// workflows), inquiries, triggers and announcements. Every call acts on behalf of that
/// execution (its user, its trace; children get it as `parent`).
///
/// # Contract
/// - `start_child` stores the child (status `requested`) before it returns; the child runs
///   through the scheduler and workers like any execution.
/// - `wait_child` returns once the child is completed, `paused` or `pending`, or fails with
///   [`RunnerError::Failed`] when the engine stops.
/// - None of them panic; store failures come back as [`RunnerError::Failed`].
///
/// # Errors
/// [`RunnerError::UnknownAction`] from `start_child` for an action the engine does not know;
/// [`RunnerError::Failed`] with the reason otherwise (bad parameters, store failure).
#[async_trait]
pub trait RunnerServices: Send + Sync + fmt::Debug {
    /// Start a child execution of the calling one.
    async fn start_child(&self, request: ChildRequest) -> Result<ExecutionRecord, RunnerError>;
    /// Wait until execution `id` is completed, `paused` or `pending`.
    async fn wait_child(&self, id: &str) -> Result<ExecutionRecord, RunnerError>;
    /// Wait until at least one of `ids` is completed, `paused` or `pending`, the calling
    /// execution is asked to pause or cancel, or `timeout` passes; returns the records of
    /// those of `ids` that are (possibly none). Lends the runner slot while it waits, once
    /// for all of `ids`.
    async fn wait_any(
        &self,
        ids: &[String],
        timeout: Option<std::time::Duration>,
    ) -> Result<Vec<ExecutionRecord>, RunnerError>;
    /// The state the calling execution's runner saved last (`None` on a first run).
    async fn load_state(&self) -> Result<Option<RunnerState>, RunnerError>;
    /// The state another execution's runner saved last (a re-run continues from it).
    async fn load_state_of(&self, execution_id: &str) -> Result<Option<RunnerState>, RunnerError>;
    /// Save the calling execution's runner state (replacing the previous one); it survives a
    /// crash, and the runner finds it again when the engine runs it again.
    async fn save_state(&self, status: &str, state: Value) -> Result<(), RunnerError>;
    /// Create or replace one task record of the calling execution's state (its
    /// `workflow_id` is set by the engine); [`RunnerServices::save_state`] must have run once.
    async fn save_task(&self, task: TaskRecord) -> Result<(), RunnerError>;
    /// Save the state as [`RunnerServices::save_state`] does, together with named parts of it
    /// (each replaced, or removed when its text is `None`; parts not named keep their stored
    /// text) and task records (as [`RunnerServices::save_task`]), all in one write: a runner
    /// whose state grows writes only what changed. [`RunnerServices::load_state`] returns the
    /// parts. Default: `save_state` and `save_task` one by one, without parts.
    ///
    /// The state comes as JSON text (`serde_json::value::to_raw_value`): a runner that saves
    /// often serialises it once, and the store writes that text as it is.
    async fn save_state_parts(
        &self,
        status: &str,
        state: Box<RawValue>,
        parts: Vec<StatePart>,
        tasks: Vec<TaskRecord>,
    ) -> Result<(), RunnerError> {
        if !parts.is_empty() {
            return Err(RunnerError::Failed(
                "these runner services keep no state parts".to_owned(),
            ));
        }
        let state = serde_json::from_str(state.get())
            .map_err(|e| RunnerError::Failed(format!("the state is not JSON: {e}")))?;
        self.save_state(status, state).await?;
        for task in tasks {
            self.save_task(task).await?;
        }
        Ok(())
    }
    /// Save the state as [`RunnerServices::save_state_parts`] does and then start `children`
    /// as [`RunnerServices::start_child`] does, each child's outcome in their order: a runner
    /// that records its children in its state before starting them (so that after a crash it
    /// knows what it started) makes one call, and the engine commits the state and the
    /// children together where it can. An `Err` means the state was not saved and no child
    /// was started. Default: the two, one after the other.
    async fn save_state_and_start(
        &self,
        status: &str,
        state: Box<RawValue>,
        parts: Vec<StatePart>,
        tasks: Vec<TaskRecord>,
        children: Vec<ChildRequest>,
    ) -> Result<Vec<Result<ExecutionRecord, RunnerError>>, RunnerError> {
        save_then_start(self, status, state, parts, tasks, children).await
    }
    /// The current record of execution `id` (the calling one included: a runner that supports
    /// pause looks for `pausing` here).
    async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, RunnerError>;
    /// Cancel execution `id` (a child, when the caller is canceled).
    async fn cancel(&self, id: &str) -> Result<(), RunnerError>;
    /// Pause execution `id` (a child that supports pause).
    async fn pause(&self, id: &str) -> Result<(), RunnerError>;
    /// Resume paused execution `id`.
    async fn resume(&self, id: &str) -> Result<(), RunnerError>;
    /// The resolved config of `pack` (what templates see as `config_context`); empty when the
    /// pack has none. Default: empty.
    async fn pack_config(&self, pack: &str) -> Result<Map<String, Value>, RunnerError> {
        let _ = pack;
        Ok(Map::new())
    }
    /// Store a new inquiry for the calling execution (whose id it must carry).
    async fn create_inquiry(&self, inquiry: InquiryRecord) -> Result<(), RunnerError>;
    /// Dispatch a trigger instance (without validating its payload, as StackStorm's internal
    /// dispatcher), in the calling execution's trace.
    async fn dispatch(&self, trigger: &str, payload: Value) -> Result<(), RunnerError>;
    /// Publish `payload` on the event stream as an announcement on `route`.
    fn announce(&self, route: &str, payload: Value);
}

impl fmt::Debug for RunContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Parameters may hold secrets: show only their names.
        f.debug_struct("RunContext")
            .field("execution_id", &self.execution_id)
            .field("action", &self.action.reference)
            .field("runner_type", &self.runner_type.name)
            .field("parameters", &self.parameters.keys().collect::<Vec<_>>())
            .field(
                "runner_parameters",
                &self.runner_parameters.keys().collect::<Vec<_>>(),
            )
            .field("resume", &self.resume.is_some())
            .field("config", &self.config.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The final (or, for asynchronous runners, current) status: `succeeded`, `failed`,
    /// `timeout`, `canceled`, `pending`, `paused`, `running`.
    pub status: ExecutionStatus,
    /// The result.
    pub result: Value,
    /// Keys to merge into the execution's context.
    pub context: Map<String, Value>,
}

impl RunOutcome {
    /// A success with `result`.
    pub fn succeeded(result: Value) -> Self {
        Self::with_status(ExecutionStatus::Succeeded, result)
    }

    /// A failure with `result`.
    pub fn failed(result: Value) -> Self {
        Self::with_status(ExecutionStatus::Failed, result)
    }

    /// Any status with `result`.
    pub fn with_status(status: ExecutionStatus, result: Value) -> Self {
        Self {
            status,
            result,
            context: Map::new(),
        }
    }
}

/// Why a runner could not run an action. The engine ends the execution `failed` with
/// `{"error": <message>, "traceback": <detail>}`, as StackStorm does for runner exceptions.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A parameter the runner needs is missing or has the wrong shape.
    #[error("invalid parameter {name:?}: {message}")]
    Parameter {
        /// The parameter.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The action's entry point is missing or unreadable.
    #[error("entry point {path:?}: {message}")]
    EntryPoint {
        /// The path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A child execution names an action the engine does not know (from
    /// [`RunnerServices::start_child`]).
    #[error("Action \"{0}\" cannot be found.")]
    UnknownAction(String),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

/// Runs actions of one runner type.
///
/// # Contract
/// - `run` returns when the action finished (or, for asynchronous runners such as workflows, when
///   it reached a status the engine tracks, e.g. `running` or `pending`).
/// - It watches `ctx.cancel`: once cancelled it stops the work (killing child processes) and
///   returns `canceled`.
/// - It enforces its own `timeout` runner parameter, returning `timeout`.
/// - It never panics on bad parameters; it returns [`RunnerError::Parameter`] or a `failed`
///   outcome.
///
/// # Errors
/// [`RunnerError`] when the action could not be run at all.
#[async_trait]
pub trait Runner: Send + Sync + fmt::Debug {
    /// Run one execution.
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError>;

    /// Whether this runner supports pause and resume (StackStorm: action-chain and orquesta).
    /// Such a runner watches its own status through [`RunnerServices::execution`], returns
    /// `paused` when it sees `pausing`, and continues from [`RunContext::resume`] when run
    /// again. Default: no.
    fn supports_pause(&self) -> bool {
        false
    }

    /// Whether this runner continues an execution whose previous run died with its process
    /// (StackStorm: none; here: workflows, which keep their state with
    /// [`RunnerServices::save_state`]). The engine runs such an execution again when its lease
    /// expires, instead of ending it `abandoned`, and leaves it `running` on shutdown. Default:
    /// no.
    fn resumes_after_crash(&self) -> bool {
        false
    }
}

/// Registering a runner name twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a runner named {0:?} is already registered")]
pub struct DuplicateRunner(pub String);

/// The runners of one engine, by runner type name.
#[derive(Debug, Default, Clone)]
pub struct RunnerRegistry {
    runners: HashMap<String, Arc<dyn Runner>>,
}

impl RunnerRegistry {
    /// No runners.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `runner` under `name`.
    ///
    /// # Errors
    /// [`DuplicateRunner`] when the name is taken.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        runner: impl Runner + 'static,
    ) -> Result<(), DuplicateRunner> {
        self.register_arc(name, Arc::new(runner))
    }

    /// Register a shared runner under `name`.
    ///
    /// # Errors
    /// [`DuplicateRunner`] when the name is taken.
    pub fn register_arc(
        &mut self,
        name: impl Into<String>,
        runner: Arc<dyn Runner>,
    ) -> Result<(), DuplicateRunner> {
        let name = name.into();
        if self.runners.contains_key(&name) {
            return Err(DuplicateRunner(name));
        }
        self.runners.insert(name, runner);
        Ok(())
    }

    /// The runner registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Runner>> {
        self.runners.get(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.runners.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancellation_wakes_waiters() {
        let (canceller, cancel) = Cancellation::new();
        assert!(!cancel.is_cancelled());
        let waiter = tokio::spawn({
            let cancel = cancel.clone();
            async move { cancel.cancelled().await }
        });
        canceller.cancel();
        waiter.await.expect("woke");
        assert!(cancel.is_cancelled());
    }
}
