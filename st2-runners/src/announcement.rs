//! `announcement`: publishes the action's parameters on the event stream (StackStorm's
//! `contrib/runners/announcement_runner`, where it goes to the announcement exchange).
//!
//! The runner parameter `experimental` must be true (StackStorm refuses to run otherwise);
//! `route` (default `general`) names the stream event, `st2.announcement__<route>`. The result
//! is `{"output": <parameters>, ...<parameters>}`.

use async_trait::async_trait;
use serde_json::{Value, json};
use st2_core::runner::{RunContext, RunOutcome, Runner, RunnerError};

/// Announces and succeeds.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnnouncementRunner;

#[async_trait]
impl Runner for AnnouncementRunner {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        if ctx.runner_parameters.get("experimental") != Some(&Value::Bool(true)) {
            return Err(RunnerError::Failed(format!(
                "Experimental flag is missing for action {}",
                ctx.action.reference
            )));
        }
        let route = match ctx.runner_parameters.get("route") {
            None | Some(Value::Null) => "general".to_owned(),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => s.clone(),
            Some(other) => {
                return Err(RunnerError::Parameter {
                    name: "route".into(),
                    message: format!("expected a string of 1 to 255 characters, found {other}"),
                });
            }
        };
        let payload = Value::Object(ctx.parameters.clone());
        ctx.services()?.announce(&route, payload.clone());
        let mut result = json!({ "output": payload });
        if let Value::Object(out) = &mut result {
            for (k, v) in &ctx.parameters {
                out.insert(k.clone(), v.clone());
            }
        }
        Ok(RunOutcome::succeeded(result))
    }
}
