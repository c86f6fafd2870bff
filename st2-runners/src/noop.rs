//! `noop`: does nothing and succeeds (StackStorm's `contrib/runners/noop_runner`).

use async_trait::async_trait;
use serde_json::json;
use st2_core::runner::{RunContext, RunOutcome, Runner, RunnerError};

/// Succeeds at once with `{"failed": false, "succeeded": true, "return_code": 0}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopRunner;

#[async_trait]
impl Runner for NoopRunner {
    async fn run(&self, _ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        Ok(RunOutcome::succeeded(json!({
            "failed": false,
            "succeeded": true,
            "return_code": 0,
        })))
    }
}
