//! st2-workflow: the Orquesta-compatible workflow language for st2-core.
//!
//! * [`spec`]: workflow YAML → [`spec::WorkflowSpec`], inspection with file and line;
//! * [`graph`]: the task graph (transitions, joins, splits, cycles, retry);
//! * [`status`]: Orquesta's statuses and state machines;
//! * [`conductor`]: the pure conductor (state + event → new state + next tasks);
//! * [`runner`]: the `orquesta` runner, which runs workflows through the engine;
//! * [`simulate`]: running a workflow with mocked action results (`st2d workflow simulate`);
//! * [`functions`] and [`expression`]: Orquesta's expression functions and evaluation;
//! * [`datastore`]: StackStorm's `st2kv()` over a datastore.

#![warn(missing_docs)]

pub mod conductor;
pub mod datastore;
pub mod expression;
pub mod functions;
pub mod graph;
pub mod runner;
pub mod simulate;
pub mod spec;
pub mod status;

pub use functions::{
    orquesta_functions, orquesta_yaql, register_orquesta_functions, with_native_orquesta_functions,
};
pub use runner::OrquestaRunner;

use serde_json::Value;

/// Python truthiness of a JSON value (`0`, `""`, `[]`, `{}`, `null` and `false` are false).
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}
