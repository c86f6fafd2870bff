//! `inquirer` (`core.ask`): asks a question and waits for the answer (StackStorm's
//! `contrib/runners/inquirer_runner`).
//!
//! The run stores an inquiry whose id is the execution's, dispatches
//! `core.st2.generic.inquiry` `{id, route}` and returns `pending` with `{schema, roles, users,
//! route, ttl}`. The engine ends the execution when someone responds
//! ([`st2_core::engine::Engine::respond_inquiry`]: `succeeded`, the response added as
//! `response`) or when the `ttl` (minutes) passes (`timeout`). An action-chain parent pauses
//! while its child is pending and is resumed by the response.

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use st2_core::runner::{RunContext, RunOutcome, Runner, RunnerError};
use st2_core::store::{ExecutionStatus, InquiryRecord, InquiryStatus};

/// The trigger every new inquiry dispatches.
pub const INQUIRY_TRIGGER: &str = "core.st2.generic.inquiry";

/// The schema used when an action gives none (StackStorm's default: one boolean `continue`).
pub fn default_schema() -> Value {
    json!({
        "title": "response_data",
        "type": "object",
        "properties": {
            "continue": {
                "type": "boolean",
                "description": "Would you like to continue the workflow?",
                "required": true
            }
        }
    })
}

/// Creates an inquiry and leaves the execution `pending`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InquirerRunner;

fn strings(params: &Map<String, Value>, name: &str) -> Result<Vec<String>, RunnerError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(RunnerError::Parameter {
                    name: name.to_owned(),
                    message: format!("expected a list of names, found {other}"),
                }),
            })
            .collect(),
        Some(other) => Err(RunnerError::Parameter {
            name: name.to_owned(),
            message: format!("expected a list of names, found {other}"),
        }),
    }
}

#[async_trait]
impl Runner for InquirerRunner {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        let params = &ctx.runner_parameters;
        let schema = match params.get("schema") {
            None | Some(Value::Null) => default_schema(),
            Some(Value::Object(s)) => Value::Object(s.clone()),
            Some(other) => {
                return Err(RunnerError::Parameter {
                    name: "schema".into(),
                    message: format!("expected a JSON schema object, found {other}"),
                });
            }
        };
        let roles = strings(params, "roles")?;
        let users = strings(params, "users")?;
        let route = match params.get("route") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(RunnerError::Parameter {
                    name: "route".into(),
                    message: format!("expected a string, found {other}"),
                });
            }
        };
        let ttl = match params.get("ttl") {
            None | Some(Value::Null) => 1440,
            Some(v) => v.as_u64().ok_or_else(|| RunnerError::Parameter {
                name: "ttl".into(),
                message: format!("expected a number of minutes (0 or more), found {v}"),
            })?,
        };
        let services = ctx.services()?;
        let parent = ctx
            .context
            .get("parent")
            .and_then(|p| p.get("execution_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        services
            .create_inquiry(InquiryRecord {
                id: ctx.execution_id.clone(),
                status: InquiryStatus::Pending,
                schema: schema.clone(),
                route: route.clone(),
                ttl,
                users: users.clone(),
                roles: roles.clone(),
                parent,
                response: None,
                created_at: ctx.clock.now(),
                resolved_at: None,
            })
            .await?;
        services
            .dispatch(
                INQUIRY_TRIGGER,
                json!({"id": ctx.execution_id, "route": route}),
            )
            .await?;
        Ok(RunOutcome::with_status(
            ExecutionStatus::Pending,
            json!({
                "schema": schema,
                "roles": roles,
                "users": users,
                "route": route,
                "ttl": ttl,
            }),
        ))
    }
}
