//! `action-chain`: runs the tasks of a chain definition one after another, each choosing the
//! next by `on-success` / `on-failure` (StackStorm's `contrib/runners/action_chain_runner`).
//!
//! Each task is a child execution started through [`RunnerServices`]; its parameters are
//! rendered with the chain's parameters, earlier task results (`{{ c1.stdout }}`,
//! `{{ __results.c1 }}`), `vars` and published variables, the datastore and `action_context`.
//! The result is `{tasks: [...], published: {...}}` (plus `error` and `traceback` when the chain
//! itself failed). The chain pauses when asked to, or when a task is paused or waits for an
//! inquiry, and continues from its paused result when resumed.

mod definition;
mod templates;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use st2_core::datastore::KeyValueRead;
use st2_core::expr::jinja::{Jinja, JinjaConfig};
use st2_core::runner::{ChildRequest, RunContext, RunOutcome, Runner, RunnerError, RunnerServices};
use st2_core::store::{ExecutionRecord, ExecutionStatus, Timestamp};

pub use definition::{ActionChain, DefinitionError, Node, load, parse};
use templates::{KvNames, RenderFailure, Templates};

/// The key under which templates see every task result so far.
const RESULTS_KEY: &str = "__results";

/// How long a canceled chain waits for its running task to stop.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// Settings of the action-chain runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionChainSettings {
    /// The most task runs one chain execution may make (its paused runs included). StackStorm
    /// has no bound, so a cycle through `on-success`/`on-failure` that never breaks runs
    /// forever; here the chain fails with an error naming the bound instead.
    pub max_task_runs: usize,
}

impl Default for ActionChainSettings {
    fn default() -> Self {
        ActionChainSettings {
            max_task_runs: 1_000,
        }
    }
}

/// Runs action chains.
#[derive(Debug, Clone, Default)]
pub struct ActionChainRunner {
    settings: ActionChainSettings,
}

impl ActionChainRunner {
    /// A runner with `settings`.
    pub fn new(settings: ActionChainSettings) -> Self {
        ActionChainRunner { settings }
    }
}

#[async_trait]
impl Runner for ActionChainRunner {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        let services = ctx.services()?.clone();
        if ctx.action.entry_point.is_empty() {
            return Err(RunnerError::Failed(
                "Missing entry_point action metadata attribute".to_owned(),
            ));
        }
        let Some(pack_dir) = ctx.pack_dir.clone() else {
            return Err(RunnerError::EntryPoint {
                path: ctx.action.entry_point.clone(),
                message: "the pack's directory is not known".to_owned(),
            });
        };
        let path = crate::local::resolve_entry_point(&pack_dir, &ctx.action.entry_point)?;
        let chain_name = ctx.action.reference.clone();
        let chain = tokio::task::spawn_blocking(move || load(&path, &chain_name))
            .await
            .map_err(|e| RunnerError::Failed(format!("reading the chain stopped: {e}")))?
            .map_err(|e| RunnerError::Failed(e.to_string()))?;
        let display_published = match ctx.runner_parameters.get("display_published") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(RunnerError::Parameter {
                    name: "display_published".into(),
                    message: format!("expected a boolean, found {other}"),
                });
            }
        };
        let skip_notify = match ctx.runner_parameters.get("skip_notify") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(python_str).collect(),
            Some(other) => {
                return Err(RunnerError::Parameter {
                    name: "skip_notify".into(),
                    message: format!("expected a list of task names, found {other}"),
                });
            }
        };
        let chain_notify = services
            .execution(&ctx.execution_id)
            .await?
            .and_then(|r| r.notify);
        let config = services.pack_config(ctx.action.pack()).await?;
        let (jinja, kv) = match &ctx.datastore {
            Some(ds) => (
                Jinja::new(JinjaConfig {
                    crypto_key: ds.crypto_key(),
                    ..JinjaConfig::default()
                }),
                Some(Arc::new(ds.key_values(tokio::runtime::Handle::current()))
                    as Arc<dyn KeyValueRead>),
            ),
            None => (Jinja::new(JinjaConfig::default()), None),
        };
        let mut run = ChainRun {
            services,
            chain,
            templates: Templates::new(Arc::new(jinja), kv),
            display_published,
            skip_notify,
            chain_notify,
            config,
            max_task_runs: self.settings.max_task_runs,
            vars: Map::new(),
            results: Map::new(),
            tasks: Vec::new(),
            published: Map::new(),
            error: None,
            status: ExecutionStatus::Failed,
        };
        Ok(run.run(&ctx).await)
    }

    fn supports_pause(&self) -> bool {
        true
    }
}

fn python_str(v: &Value) -> String {
    st2_core::expr::python::str(v)
}

fn isotime(t: Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Where the loop goes next.
enum Step {
    /// Run this node as a new task.
    Run(String),
    /// Wait for (after resuming it, if paused) the task's execution, then go on from its node.
    Continue(String, String),
    /// The chain is over.
    Done,
}

/// How waiting for a task ended.
enum Waited {
    Finished(ExecutionRecord),
    /// The chain was canceled; the task's record as it stopped, if it did.
    Canceled(Option<ExecutionRecord>),
}

struct ChainRun {
    services: Arc<dyn RunnerServices>,
    chain: ActionChain,
    templates: Templates,
    display_published: bool,
    skip_notify: Vec<String>,
    chain_notify: Option<Value>,
    /// The chain's pack config (`config_context`).
    config: Map<String, Value>,
    max_task_runs: usize,
    vars: Map<String, Value>,
    /// Task results by task name, as templates see them.
    results: Map<String, Value>,
    tasks: Vec<Value>,
    published: Map<String, Value>,
    error: Option<(String, String)>,
    status: ExecutionStatus,
}

impl ChainRun {
    fn result(&self) -> Value {
        let mut result = Map::new();
        result.insert("tasks".into(), Value::Array(self.tasks.clone()));
        if self.display_published {
            result.insert("published".into(), Value::Object(self.published.clone()));
        }
        if let Some((error, traceback)) = &self.error {
            result.insert("error".into(), Value::String(error.clone()));
            result.insert("traceback".into(), Value::String(traceback.clone()));
        }
        Value::Object(result)
    }

    fn outcome(&self, status: ExecutionStatus) -> RunOutcome {
        RunOutcome::with_status(status, self.result())
    }

    /// Paused: the variables are kept in the execution's context (`vars`), as StackStorm.
    fn paused(&self) -> RunOutcome {
        let mut outcome = self.outcome(ExecutionStatus::Paused);
        outcome
            .context
            .insert("vars".into(), Value::Object(self.vars.clone()));
        outcome
    }

    fn fail(&mut self, error: String, where_: String) {
        self.status = ExecutionStatus::Failed;
        self.error = Some((error, where_));
    }

    fn traceback(ctx: &RunContext, task: &str) -> String {
        format!(
            "in action chain {} ({}), task \"{task}\"",
            ctx.action.reference, ctx.action.entry_point
        )
    }

    async fn run(&mut self, ctx: &RunContext) -> RunOutcome {
        // vars see the chain's parameters and the datastore (user scope of the chain's user).
        let user = ctx
            .context
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or("stanley")
            .to_owned();
        match self
            .templates
            .render_values_blocking(
                self.chain.vars.clone(),
                ctx.parameters.clone(),
                KvNames::Vars(user),
            )
            .await
        {
            Ok(vars) => self.vars = vars,
            Err(e) => {
                self.error = Some((
                    format!(
                        "Failed initializing ``vars`` in chain. Failed rendering value for variable \"{}\" (template string={}): {}",
                        e.key, e.template, e.message
                    ),
                    format!(
                        "in action chain {} ({})",
                        ctx.action.reference, ctx.action.entry_point
                    ),
                ));
                return self.outcome(ExecutionStatus::Failed);
            }
        }
        let mut step = match &ctx.resume {
            Some(previous) => match self.restore(ctx, previous).await {
                Ok(step) => step,
                Err(outcome) => return outcome,
            },
            None => Step::Run(self.chain.default.clone()),
        };
        // What task templates see as `action_context`: the chain's own context under `parent`.
        let mut parent = ctx.context.clone();
        parent.remove("vars");
        parent.insert(
            "execution_id".into(),
            Value::String(ctx.execution_id.clone()),
        );
        let action_context = json!({ "parent": parent });

        loop {
            let (node_name, waited, created_at) = match step {
                Step::Done => break,
                Step::Continue(node, execution_id) => {
                    let created_at = ctx.clock.now();
                    let waited = self.continue_task(ctx, &execution_id).await;
                    (node, waited, created_at)
                }
                Step::Run(node) => {
                    if ctx.cancel.is_cancelled() {
                        return self.outcome(ExecutionStatus::Canceled);
                    }
                    if self.tasks.len() >= self.max_task_runs {
                        self.fail(
                            format!(
                                "Action chain exceeded {} task runs (the runner's max_task_runs) before reaching task \"{node}\": a cycle through on-success/on-failure never ended.",
                                self.max_task_runs
                            ),
                            Self::traceback(ctx, &node),
                        );
                        break;
                    }
                    let created_at = ctx.clock.now();
                    match self.start_task(ctx, &node, &action_context).await {
                        Ok(Ok(child)) => {
                            let waited = self.wait(ctx, &child.id).await;
                            (node, waited, created_at)
                        }
                        Ok(Err(task_error)) => {
                            // The task could not be requested: it failed, on-failure decides.
                            self.results.insert(node.clone(), task_error.clone());
                            self.tasks.push(task_entry(
                                &node,
                                None,
                                ExecutionStatus::Failed,
                                task_error,
                                created_at,
                                ctx.clock.now(),
                            ));
                            self.status = ExecutionStatus::Failed;
                            step = match self.next(ctx, &node, false) {
                                Some(s) => s,
                                None => break,
                            };
                            continue;
                        }
                        Err(()) => break,
                    }
                }
            };
            let child = match waited {
                Waited::Finished(child) => child,
                Waited::Canceled(child) => {
                    if let Some(child) = child {
                        self.tasks.push(task_entry(
                            &node_name,
                            Some(&child.id),
                            child.status,
                            child.result.clone(),
                            created_at,
                            ctx.clock.now(),
                        ));
                    }
                    return self.outcome(ExecutionStatus::Canceled);
                }
            };
            self.results.insert(node_name.clone(), child.result.clone());
            self.tasks.push(task_entry(
                &node_name,
                Some(&child.id),
                child.status,
                child.result.clone(),
                created_at,
                ctx.clock.now(),
            ));
            if let Err(e) = self.publish(ctx, &node_name, &child.result).await {
                self.fail(
                    format!(
                        "Failed rendering value for publish parameter \"{}\" in task \"{node_name}\" (template string={}): {}",
                        e.key, e.template, e.message
                    ),
                    Self::traceback(ctx, &node_name),
                );
                break;
            }
            step = match child.status {
                ExecutionStatus::Succeeded => {
                    self.status = ExecutionStatus::Succeeded;
                    self.next(ctx, &node_name, true)
                }
                ExecutionStatus::Timeout => {
                    self.status = ExecutionStatus::Timeout;
                    self.next(ctx, &node_name, false)
                }
                ExecutionStatus::Failed | ExecutionStatus::Abandoned => {
                    self.status = ExecutionStatus::Failed;
                    self.next(ctx, &node_name, false)
                }
                ExecutionStatus::Canceled => return self.outcome(ExecutionStatus::Canceled),
                ExecutionStatus::Paused | ExecutionStatus::Pending => return self.paused(),
                _ => Some(Step::Done),
            }
            .unwrap_or(Step::Done);
            if let Some(outcome) = self.requested_stop(ctx).await {
                return outcome;
            }
        }
        self.outcome(self.status)
    }

    /// A cancel or pause asked of the chain while its task ran.
    async fn requested_stop(&self, ctx: &RunContext) -> Option<RunOutcome> {
        if ctx.cancel.is_cancelled() {
            return Some(self.outcome(ExecutionStatus::Canceled));
        }
        let current = self.services.execution(&ctx.execution_id).await.ok()??;
        match current.status {
            ExecutionStatus::Canceling | ExecutionStatus::Canceled => {
                Some(self.outcome(ExecutionStatus::Canceled))
            }
            ExecutionStatus::Pausing | ExecutionStatus::Paused => Some(self.paused()),
            _ => None,
        }
    }

    /// The step after `node` by `on-success` (`success`) or `on-failure`; `None` after a
    /// chain-level failure (a name that is no node).
    fn next(&mut self, ctx: &RunContext, node: &str, success: bool) -> Option<Step> {
        let current = self.chain.node(node)?;
        let target = if success {
            current.on_success.clone()
        } else {
            current.on_failure.clone()
        };
        let Some(target) = target else {
            return Some(Step::Done);
        };
        if self.chain.node(&target).is_some() {
            return Some(Step::Run(target));
        }
        self.fail(
            format!(
                "Failed to get next node \"{node}\". Unable to find node with name \"{target}\"."
            ),
            Self::traceback(ctx, node),
        );
        None
    }

    /// Render the node's parameters and request its execution. `Ok(Err(error))`: the request
    /// failed (a task error); `Err(())`: a chain-level failure, already recorded.
    async fn start_task(
        &mut self,
        ctx: &RunContext,
        node_name: &str,
        action_context: &Value,
    ) -> Result<Result<ExecutionRecord, Value>, ()> {
        let Some(node) = self.chain.node(node_name).cloned() else {
            self.fail(
                format!("Unable to find node with name \"{node_name}\"."),
                Self::traceback(ctx, node_name),
            );
            return Err(());
        };
        let mut context = ctx.parameters.clone();
        context.extend(self.results.clone());
        context.extend(self.vars.clone());
        context.insert(RESULTS_KEY.into(), Value::Object(self.results.clone()));
        context.insert("action_context".into(), action_context.clone());
        context.insert("config_context".into(), Value::Object(self.config.clone()));
        let parameters = match self
            .templates
            .render_values_blocking(node.parameters.clone(), context, KvNames::Task)
            .await
        {
            Ok(p) => p,
            Err(RenderFailure {
                key,
                template,
                message,
            }) => {
                self.fail(
                    format!(
                        "Failed to run task \"{node_name}\". Parameter rendering failed. Failed rendering value for action parameter \"{key}\" in task \"{node_name}\" (template string={template}): {message}"
                    ),
                    Self::traceback(ctx, node_name),
                );
                return Err(());
            }
        };
        let mut request = ChildRequest::new(node.action.clone(), parameters);
        request.context.insert("chain".into(), node.spec.clone());
        if !self.skip_notify.contains(&node.name) {
            request.notify = node.notify.clone().or_else(|| self.chain_notify.clone());
        }
        match self.services.start_child(request).await {
            Ok(child) => Ok(Ok(child)),
            Err(RunnerError::UnknownAction(action)) => {
                self.fail(
                    format!(
                        "Failed to run task \"{node_name}\". Action with reference \"{action}\" doesn't exist."
                    ),
                    Self::traceback(ctx, node_name),
                );
                Err(())
            }
            Err(e) => Ok(Err(json!({
                "error": format!("Failed running task \"{node_name}\". {e}"),
                "traceback": Self::traceback(ctx, node_name),
            }))),
        }
    }

    /// Wait for a task, canceling it when the chain is canceled.
    async fn wait(&self, ctx: &RunContext, id: &str) -> Waited {
        tokio::select! {
            waited = self.services.wait_child(id) => match waited {
                Ok(record) => Waited::Finished(record),
                // The engine stops: the chain ends with it.
                Err(_) => Waited::Canceled(None),
            },
            () = ctx.cancel.cancelled() => {
                let _ = self.services.cancel(id).await;
                let stopped = tokio::time::timeout(CANCEL_WAIT, self.services.wait_child(id))
                    .await
                    .ok()
                    .and_then(Result::ok);
                Waited::Canceled(stopped)
            }
        }
    }

    /// Resume a paused task (a pending or running one is only waited for), then wait for it.
    async fn continue_task(&self, ctx: &RunContext, id: &str) -> Waited {
        if let Ok(Some(record)) = self.services.execution(id).await
            && record.status == ExecutionStatus::Paused
            && let Err(e) = self.services.resume(id).await
        {
            let mut failed = record;
            failed.status = ExecutionStatus::Failed;
            failed.result = json!({"error": format!("Failed to resume task: {e}")});
            return Waited::Finished(failed);
        }
        self.wait(ctx, id).await
    }

    /// Publish the node's variables (also after a failure, as StackStorm).
    async fn publish(
        &mut self,
        ctx: &RunContext,
        node_name: &str,
        result: &Value,
    ) -> Result<(), RenderFailure> {
        let Some(node) = self.chain.node(node_name) else {
            return Ok(());
        };
        if node.publish.is_empty() {
            return Ok(());
        }
        let mut context = ctx.parameters.clone();
        context.insert(node_name.to_owned(), result.clone());
        context.extend(self.results.clone());
        context.extend(self.vars.clone());
        context.insert(RESULTS_KEY.into(), Value::Object(self.results.clone()));
        let published = self
            .templates
            .render_values_blocking(node.publish.clone(), context, KvNames::Task)
            .await?;
        self.vars.extend(published.clone());
        if self.display_published {
            self.published.extend(published);
        }
        Ok(())
    }

    /// Continue a paused chain from its paused result: variables from `context.vars`, results
    /// from `tasks`, the last task refreshed from its execution.
    async fn restore(&mut self, ctx: &RunContext, previous: &Value) -> Result<Step, RunOutcome> {
        if let Some(Value::Object(saved)) = ctx.context.get("vars") {
            self.vars.extend(saved.clone());
        }
        self.tasks = previous
            .get("tasks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Object(p)) = previous.get("published") {
            self.published = p.clone();
        }
        if let Some(error) = previous.get("error") {
            self.error = Some((
                python_str(error),
                previous
                    .get("traceback")
                    .map(python_str)
                    .unwrap_or_default(),
            ));
        }
        for task in &self.tasks {
            if let Some(name) = task.get("name").and_then(Value::as_str) {
                let result = task.get("result").cloned().unwrap_or(Value::Null);
                self.results.insert(name.to_owned(), result);
            }
        }
        let Some(last) = self.tasks.last().cloned() else {
            return Ok(Step::Run(self.chain.default.clone()));
        };
        let name = last
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let state = last
            .get("state")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<ExecutionStatus>().ok())
            .unwrap_or(ExecutionStatus::Failed);
        let execution_id = last.get("execution_id").and_then(Value::as_str);
        let child = match execution_id {
            Some(id) => self.services.execution(id).await.ok().flatten(),
            None => None,
        };
        let status = child.as_ref().map_or(state, |c| c.status);
        if let Some(child) = &child
            && child.status != state
        {
            let updated_at = child.end_timestamp.map_or_else(
                || last.get("updated_at").cloned().unwrap_or(Value::Null),
                |t| Value::String(isotime(t)),
            );
            if let Some(Value::Object(entry)) = self.tasks.last_mut() {
                entry.insert("state".into(), Value::String(child.status.to_string()));
                entry.insert("result".into(), child.result.clone());
                entry.insert("updated_at".into(), updated_at);
            }
            // As StackStorm: the refreshed result is reachable under `<task>.result` (the
            // inquiry example reads `task1.result.response`).
            let seen = self
                .results
                .entry(name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !seen.is_object() {
                *seen = Value::Object(Map::new());
            }
            if let Value::Object(seen) = seen {
                seen.insert("result".into(), child.result.clone());
            }
        }
        let step = match status {
            ExecutionStatus::Canceled => return Err(self.outcome(ExecutionStatus::Canceled)),
            ExecutionStatus::Pending => return Err(self.paused()),
            ExecutionStatus::Succeeded => {
                self.status = ExecutionStatus::Succeeded;
                self.next(ctx, &name, true)
            }
            s if s.is_completed() => {
                self.status = ExecutionStatus::Failed;
                self.next(ctx, &name, false)
            }
            // Paused (or already resuming): resume it and wait for it again.
            _ => {
                self.tasks.pop();
                match execution_id {
                    Some(id) => Some(Step::Continue(name, id.to_owned())),
                    None => Some(Step::Done),
                }
            }
        };
        step.ok_or_else(|| self.outcome(ExecutionStatus::Failed))
    }
}

/// One entry of the result's `tasks` (StackStorm's `_format_action_exec_result`).
fn task_entry(
    name: &str,
    execution_id: Option<&str>,
    status: ExecutionStatus,
    result: Value,
    created_at: Timestamp,
    updated_at: Timestamp,
) -> Value {
    json!({
        "id": name,
        "name": name,
        "execution_id": execution_id,
        "liveaction_id": execution_id,
        "workflow": null,
        "created_at": isotime(created_at),
        "updated_at": isotime(updated_at),
        "state": status.as_str(),
        "result": result,
    })
}
