//! Run a workflow through the conductor with mocked action results (`st2d workflow
//! simulate`), the way the Orquesta conformance cases were recorded.
//!
//! Mocks: `{"<task>": [{"status", "result"}, ...]}`, consumed in completion order; a task not
//! listed, or whose list is used up, succeeds with result `null`; action-less tasks never
//! consume one. Modes ([`Mode`]): `wave` completes every action of one `next_tasks` batch
//! before asking again; `fifo` queues actions as they are handed out and completes one at a
//! time, asking for next tasks after each. The conductor state is serialised and read back
//! between steps, as StackStorm stores it.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::conductor::{Conductor, ConductorState, NextTask, TaskEvent, Workflow};
use crate::expression::Evaluator;
use crate::spec::WorkflowSpec;
use crate::status::Status;

/// Order in which mocked executions complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Orquesta's unit-test order: a whole batch, then the next batch.
    Wave,
    /// StackStorm's order: one completion at a time, in dispatch order.
    Fifo,
}

/// One mocked execution outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Mock {
    /// Status the execution ends with.
    pub status: Status,
    /// Result.
    pub result: Value,
}

/// Mocked outcomes per task, plus the optional `__inputs__` (workflow input; `--inputs`
/// wins key by key), `__context__` (the parent execution context, e.g. `{"st2": {"user":
/// ...}}`) and `__default__` (the outcome of tasks without a mock, instead of succeeded with
/// `null`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mocks {
    per_task: HashMap<String, VecDeque<Mock>>,
    /// `__inputs__`.
    pub inputs: Map<String, Value>,
    /// `__context__`.
    pub context: Map<String, Value>,
    default: Option<Mock>,
}

fn mock_of(task: &str, i: usize, m: &Value) -> Result<Mock, SimulateError> {
    let status = m
        .get("status")
        .and_then(Value::as_str)
        .and_then(Status::parse)
        .ok_or_else(|| {
            SimulateError::Mocks(format!(
                "\"{task}\"[{i}] needs a \"status\" such as \"succeeded\" or \"failed\""
            ))
        })?;
    Ok(Mock {
        status,
        result: m.get("result").cloned().unwrap_or(Value::Null),
    })
}

/// Why a simulation could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimulateError {
    /// The workflow does not load or fails inspection.
    #[error("{0}")]
    Spec(#[from] crate::spec::SpecError),
    /// The mock document does not fit the format.
    #[error("invalid mocks: {0}")]
    Mocks(String),
    /// The inputs are not a JSON object.
    #[error("invalid inputs: {0}")]
    Inputs(String),
    /// The conductor refused an event (a driver bug) or the run did not end.
    #[error("simulation failed: {0}")]
    Run(String),
}

impl Mocks {
    /// Read the mocks document.
    ///
    /// # Errors
    /// [`SimulateError::Mocks`] naming the offending key.
    pub fn from_json(doc: &Value) -> Result<Mocks, SimulateError> {
        let Value::Object(map) = doc else {
            return Err(SimulateError::Mocks(
                "the document must be a JSON object".into(),
            ));
        };
        let mut mocks = Mocks::default();
        for (task, list) in map {
            let object = |what: &str| match list {
                Value::Object(m) => Ok(m.clone()),
                _ => Err(SimulateError::Mocks(format!(
                    "\"{what}\" must be a JSON object"
                ))),
            };
            match task.as_str() {
                "__inputs__" => {
                    mocks.inputs = object(task)?;
                    continue;
                }
                "__context__" => {
                    mocks.context = object(task)?;
                    continue;
                }
                "__default__" => {
                    mocks.default = Some(mock_of(task, 0, list)?);
                    continue;
                }
                _ => {}
            }
            let Value::Array(list) = list else {
                return Err(SimulateError::Mocks(format!(
                    "\"{task}\" must be a list of {{\"status\", \"result\"}} objects"
                )));
            };
            let mut q = VecDeque::new();
            for (i, m) in list.iter().enumerate() {
                q.push_back(mock_of(task, i, m)?);
            }
            mocks.per_task.insert(task.clone(), q);
        }
        Ok(mocks)
    }

    fn take(&mut self, task: &str) -> Mock {
        self.per_task
            .get_mut(task)
            .and_then(VecDeque::pop_front)
            .or_else(|| self.default.clone())
            .unwrap_or(Mock {
                status: Status::Succeeded,
                result: Value::Null,
            })
    }
}

/// Most events one simulation may send before it is stopped as runaway (a workflow that loops
/// forever); [`simulate_limited`] takes another limit.
pub const MAX_EVENTS: usize = 20_000;

/// One execution handed out and not yet completed.
#[derive(Debug, Clone)]
struct Dispatched {
    task_id: String,
    route: usize,
    item_id: Option<usize>,
    items_count: Option<usize>,
    action: Option<Value>,
    input: Value,
    delay: Option<i64>,
}

struct Driver {
    workflow: Arc<Workflow>,
    state: ConductorState,
    mocks: Mocks,
    executions: Vec<Value>,
    item_results: HashMap<(String, usize), Vec<Value>>,
    events: usize,
    max_events: usize,
}

impl Driver {
    /// The conductor over the current state (moved out; put back with `keep` or `store`).
    fn conductor(&mut self) -> Conductor {
        Conductor::restore(self.workflow.clone(), std::mem::take(&mut self.state))
    }

    /// Put the state back as it is.
    fn keep(&mut self, c: Conductor) {
        self.state = c.state;
    }

    /// Store the state the way StackStorm does: serialised and read back.
    fn store(&mut self, c: Conductor) -> Result<(), SimulateError> {
        let json = serde_json::to_vec(&c.state).map_err(|e| SimulateError::Run(e.to_string()))?;
        self.state =
            serde_json::from_slice(&json).map_err(|e| SimulateError::Run(e.to_string()))?;
        Ok(())
    }

    fn count(&mut self) -> Result<(), SimulateError> {
        self.events += 1;
        if self.events > self.max_events {
            return Err(SimulateError::Run(format!(
                "stopped after {} events (the workflow loops forever?)",
                self.max_events
            )));
        }
        Ok(())
    }

    fn next_tasks(&mut self) -> Result<Vec<NextTask>, SimulateError> {
        let mut c = self.conductor();
        let tasks = c.next_tasks();
        c.render_output();
        self.keep(c);
        Ok(tasks)
    }

    /// Mark an execution running; returns it for later completion. Empty with-items tasks
    /// complete here.
    fn dispatch(&mut self, t: &NextTask) -> Result<Vec<Dispatched>, SimulateError> {
        let mut c = self.conductor();
        let mut out = Vec::new();
        if t.with_items && t.items_count == Some(0) {
            out.push(Dispatched {
                task_id: t.id.clone(),
                route: t.route,
                item_id: None,
                items_count: Some(0),
                action: None,
                input: Value::Null,
                delay: t.delay,
            });
            self.keep(c);
            return Ok(out);
        }
        if t.with_items {
            let key = (t.id.clone(), t.route);
            let fresh = c
                .state
                .staged
                .iter()
                .find(|s| s.id == t.id && s.route == t.route)
                .and_then(|s| s.items.as_ref())
                .is_none_or(|items| items.iter().all(Option::is_none));
            if fresh || !self.item_results.contains_key(&key) {
                self.item_results
                    .insert(key, vec![Value::Null; t.items_count.unwrap_or(0)]);
            }
        }
        for a in &t.actions {
            self.count()?;
            let event = match a.item_id {
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
            c.update_task(&t.id, t.route, &event)
                .map_err(|e| SimulateError::Run(e.to_string()))?;
            out.push(Dispatched {
                task_id: t.id.clone(),
                route: t.route,
                item_id: a.item_id,
                items_count: t.items_count,
                action: a.action.clone(),
                input: a.input.clone(),
                delay: t.delay,
            });
        }
        self.keep(c);
        Ok(out)
    }

    /// An empty with-items task is marked running and succeeded with result `[]`. A copy
    /// handed out again before it ran (fifo) finds it completed and changes nothing.
    fn complete_empty(&mut self, d: &Dispatched) -> Result<(), SimulateError> {
        self.count()?;
        let mut c = self.conductor();
        let run = TaskEvent::Action {
            status: Status::Running,
            result: Value::Null,
        };
        let done = TaskEvent::Action {
            status: Status::Succeeded,
            result: json!([]),
        };
        // A second copy of an already completed task is refused; that is the point.
        let _ = c
            .update_task(&d.task_id, d.route, &run)
            .and_then(|()| c.update_task(&d.task_id, d.route, &done));
        c.render_output();
        self.executions.push(json!({
            "task_id": d.task_id, "route": d.route, "item_id": null, "items_count": 0,
            "action": null, "input": null, "status": "succeeded", "result": []
        }));
        self.store(c)
    }

    fn complete(&mut self, d: &Dispatched) -> Result<(), SimulateError> {
        if d.items_count == Some(0) {
            return self.complete_empty(d);
        }
        self.count()?;
        let mock = if d.action.is_some() {
            self.mocks.take(&d.task_id)
        } else {
            Mock {
                status: Status::Succeeded,
                result: Value::Null,
            }
        };
        let mut c = self.conductor();
        let event = match d.item_id {
            Some(item_id) => {
                let key = (d.task_id.clone(), d.route);
                let results = self
                    .item_results
                    .entry(key)
                    .or_insert_with(|| vec![Value::Null; d.items_count.unwrap_or(0)]);
                if let Some(slot) = results.get_mut(item_id) {
                    *slot = mock.result.clone();
                }
                TaskEvent::Item {
                    item_id,
                    status: mock.status,
                    result: mock.result.clone(),
                    accumulated: Value::Array(results.clone()),
                }
            }
            None => TaskEvent::Action {
                status: mock.status,
                result: mock.result.clone(),
            },
        };
        c.update_task(&d.task_id, d.route, &event)
            .map_err(|e| SimulateError::Run(e.to_string()))?;
        c.render_output();
        let mut entry = Map::new();
        entry.insert("task_id".into(), d.task_id.clone().into());
        entry.insert("route".into(), d.route.into());
        if let Some(i) = d.item_id {
            entry.insert("item_id".into(), i.into());
        }
        entry.insert("action".into(), d.action.clone().unwrap_or(Value::Null));
        entry.insert("input".into(), d.input.clone());
        if let Some(delay) = d.delay {
            entry.insert("delay".into(), delay.into());
        }
        entry.insert("status".into(), mock.status.as_str().into());
        entry.insert("result".into(), mock.result);
        self.executions.push(Value::Object(entry));
        self.store(c)
    }
}

/// Load, inspect and simulate `workflow_file`; returns the report document
/// (`executions`, `task_sequence`, `routes`, `term_tasks`, `workflow_status`, `output`,
/// `errors`).
///
/// # Errors
/// [`SimulateError`] when the workflow does not load or pass inspection, or the run does not
/// end.
pub fn simulate_file(
    workflow_file: &Path,
    mocks: &Value,
    inputs: &Map<String, Value>,
    mode: Mode,
) -> Result<Value, SimulateError> {
    let spec = WorkflowSpec::from_file(workflow_file)?;
    let workflow = Workflow::compile(spec, simulation_evaluator())?;
    simulate(&workflow, Mocks::from_json(mocks)?, inputs, mode)
}

/// Orquesta's and StackStorm's functions, with `st2kv` over an empty datastore (lookups
/// with a `default` give the default, others fail as a missing key does).
pub fn simulation_evaluator() -> Evaluator {
    let mut functions = crate::orquesta_functions();
    // The StackStorm data functions share no name with Orquesta's.
    let _ = functions.extend(&st2_core::expr::jinja::functions::st2_functions());
    crate::datastore::register_st2kv(
        &mut functions,
        Arc::new(st2_core::datastore::MemoryKeyValues::new()),
        None,
    );
    Evaluator::with_functions(functions, None)
}

/// Simulate a compiled workflow.
///
/// # Errors
/// [`SimulateError::Run`] when the conductor refuses an event or the run does not end.
pub fn simulate(
    workflow: &Arc<Workflow>,
    mocks: Mocks,
    inputs: &Map<String, Value>,
    mode: Mode,
) -> Result<Value, SimulateError> {
    simulate_limited(workflow, mocks, inputs, mode, MAX_EVENTS)
}

/// [`simulate`], stopping with an error after `max_events` events.
///
/// # Errors
/// As [`simulate`].
pub fn simulate_limited(
    workflow: &Arc<Workflow>,
    mocks: Mocks,
    inputs: &Map<String, Value>,
    mode: Mode,
    max_events: usize,
) -> Result<Value, SimulateError> {
    let mut c = Conductor::new(workflow.clone());
    let mut all_inputs = mocks.inputs.clone();
    all_inputs.extend(inputs.clone());
    c.start(&all_inputs, &mocks.context);
    c.render_output();
    let mut d = Driver {
        workflow: workflow.clone(),
        state: c.state,
        mocks,
        executions: Vec::new(),
        item_results: HashMap::new(),
        events: 0,
        max_events,
    };
    match mode {
        Mode::Wave => loop {
            let tasks = d.next_tasks()?;
            if tasks.is_empty() {
                break;
            }
            for t in &tasks {
                for x in d.dispatch(t)? {
                    d.complete(&x)?;
                }
            }
        },
        Mode::Fifo => {
            let mut queue: VecDeque<Dispatched> = VecDeque::new();
            loop {
                let tasks = d.next_tasks()?;
                for t in &tasks {
                    queue.extend(d.dispatch(t)?);
                }
                let Some(x) = queue.pop_front() else {
                    break;
                };
                d.complete(&x)?;
            }
        }
    }
    let c = d.conductor();
    Ok(report(&c, std::mem::take(&mut d.executions)))
}

fn report(c: &Conductor, executions: Vec<Value>) -> Value {
    let s = &c.state;
    let sequence: Vec<Value> = s
        .sequence
        .iter()
        .map(|e| json!({"task_id": e.id, "route": e.route, "status": e.status.map(Status::as_str)}))
        .collect();
    let term: Vec<Value> = s
        .sequence
        .iter()
        .filter(|e| e.term)
        .map(|e| json!([e.id, e.route]))
        .collect();
    json!({
        "executions": executions,
        "task_sequence": sequence,
        "routes": s.routes,
        "term_tasks": term,
        "workflow_status": s.status.map(Status::as_str),
        "output": s.output,
        "errors": s.errors,
    })
}
