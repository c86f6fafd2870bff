//! Runner types: the named executors an action's `runner_type` refers to (`local-shell-cmd`,
//! `python-script`, `orquesta`, …) and the runner parameters each one accepts.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::diagnostic::{FieldPath, Issues, Severity};
use crate::model::fields::Fields;
use crate::schema;

/// A runner type as StackStorm's `runner.yaml` describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunnerType {
    /// The name actions use in `runner_type`.
    pub name: String,
    /// What the runner does.
    pub description: String,
    /// A disabled runner refuses to run actions.
    pub enabled: bool,
    /// Parameters the runner itself reads, in StackStorm's parameter dialect (shared with the
    /// parameter schemas of the actions that use the runner).
    pub runner_parameters: Arc<Map<String, Value>>,
    /// The result key holding the action's main output (`result`, `body`, `output`, …).
    pub output_key: Option<String>,
    /// Schema of the runner's result.
    pub output_schema: Map<String, Value>,
}

impl RunnerType {
    /// A runner type with no runner parameters (for runners written in Rust).
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        RunnerType {
            name: name.into(),
            description: description.into(),
            enabled: true,
            runner_parameters: Arc::default(),
            output_key: None,
            output_schema: Map::new(),
        }
    }

    /// Declare the runner parameters (a `{name: definition}` mapping).
    pub fn with_parameters(mut self, parameters: Map<String, Value>) -> Self {
        self.runner_parameters = Arc::new(parameters);
        self
    }

    /// Set the output key.
    pub fn with_output_key(mut self, key: impl Into<String>) -> Self {
        self.output_key = Some(key.into());
        self
    }

    /// Read one entry of a `runner.yaml` list.
    pub(crate) fn read(value: &Value, path: FieldPath, issues: &mut Issues) -> Option<Self> {
        let mut f = Fields::of(value, path, "a runner type", issues)?;
        let name = f.req_str("name", issues)?.to_owned();
        let description = f.str("description", issues).unwrap_or_default().to_owned();
        let enabled = f.bool("enabled", issues).unwrap_or(true);
        let runner_parameters = f
            .object("runner_parameters", issues)
            .cloned()
            .unwrap_or_default();
        schema::check_parameters(&runner_parameters, &f.child("runner_parameters"), issues);
        let output_key = f.str("output_key", issues).map(str::to_owned);
        let output_schema = f
            .object("output_schema", issues)
            .cloned()
            .unwrap_or_default();
        f.accept(&[
            "runner_package",
            "runner_module",
            "query_module",
            "aliases",
            "id",
            "uid",
        ]);
        f.finish("a runner type", Severity::Error, issues);
        Some(RunnerType {
            name,
            description,
            enabled,
            runner_parameters: Arc::new(runner_parameters),
            output_key,
            output_schema,
        })
    }
}
