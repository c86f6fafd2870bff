//! A runner written in Rust: `word-count` counts the words, lines and characters of its `text`
//! parameter. The pack in `packs/text_tools` has an action that uses it
//! (`runner_type: word-count`); `src/main.rs` registers the runner, runs that action and prints
//! the result.
//!
//! What every runner does, shown on a small one:
//!
//! - it reads its action parameters from [`RunContext::parameters`] and checks them itself,
//!   returning [`RunnerError::Parameter`] for a missing or ill-typed one (an action's metadata
//!   decides the schema, and any action may name this runner);
//! - it reads its runner parameters (here `timeout`, declared with the [`RunnerType`]) from
//!   [`RunContext::runner_parameters`], defaults applied;
//! - it returns `canceled` as soon as [`RunContext::cancel`] fires and `timeout` when its
//!   `timeout` passes;
//! - it may stream output lines through [`RunContext::output`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use st2_core::model::RunnerType;
use st2_core::runner::{RunContext, RunOutcome, Runner, RunnerError};
use st2_core::store::{ExecutionStatus, OutputType, Store};
use st2_core::{Engine, EngineError};

/// The runner type name actions use in `runner_type`.
pub const RUNNER_NAME: &str = "word-count";

/// The action of the example pack that runs on this runner.
pub const ACTION: &str = "text_tools.count_words";

/// The runner type: its name, what it does and the runner parameters it reads (StackStorm's
/// `runner.yaml` entry, written in Rust).
pub fn runner_type() -> RunnerType {
    let parameters = json!({
        "timeout": {
            "type": "integer",
            "default": 60,
            "description": "Seconds before the count is given up and the execution times out."
        }
    });
    RunnerType::new(
        RUNNER_NAME,
        "Counts the words, lines and characters of the text parameter.",
    )
    .with_parameters(parameters.as_object().cloned().unwrap_or_default())
}

/// The `word-count` runner.
#[derive(Debug, Default, Clone, Copy)]
pub struct WordCount;

#[async_trait]
impl Runner for WordCount {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        let text = match ctx.parameters.get("text") {
            Some(Value::String(text)) => text.clone(),
            Some(other) => {
                return Err(RunnerError::Parameter {
                    name: "text".into(),
                    message: format!("expected a string, got {other}"),
                });
            }
            None => {
                return Err(RunnerError::Parameter {
                    name: "text".into(),
                    message: "missing; the word-count runner needs the text to count".into(),
                });
            }
        };
        let timeout = ctx
            .runner_parameters
            .get("timeout")
            .and_then(Value::as_u64)
            .unwrap_or(60);
        ctx.output.emit(
            OutputType::Stdout,
            &format!("counting {} characters\n", text.chars().count()),
        );

        // Counting a large text is CPU work: do it off the async threads, and stay responsive
        // to a cancel or the timeout meanwhile.
        let counting = tokio::task::spawn_blocking(move || count(&text));
        tokio::select! {
            // Checked first, so a cancel that already happened wins over a finished count.
            biased;
            () = ctx.cancel.cancelled() => Ok(RunOutcome::with_status(
                ExecutionStatus::Canceled,
                json!({"error": "The count was canceled."}),
            )),
            () = tokio::time::sleep(Duration::from_secs(timeout)) => Ok(RunOutcome::with_status(
                ExecutionStatus::Timeout,
                json!({"error": format!("Action failed to complete in {timeout} seconds")}),
            )),
            counted = counting => counted
                .map(RunOutcome::succeeded)
                .map_err(|e| RunnerError::Failed(format!("counting failed: {e}"))),
        }
    }
}

/// The counts of `text`: `{"words", "lines", "characters", "longest_word"}`.
pub fn count(text: &str) -> Value {
    let longest = text.split_whitespace().fold("", |longest, w| {
        if w.chars().count() > longest.chars().count() {
            w
        } else {
            longest
        }
    });
    json!({
        "words": text.split_whitespace().count(),
        "lines": text.lines().count(),
        "characters": text.chars().count(),
        "longest_word": longest,
    })
}

/// The example pack holding `text_tools.count_words`, found from this crate's manifest so the
/// program runs from any working directory.
pub fn pack_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packs/text_tools")
}

/// Start an engine on `store` with the example pack and the `word-count` runner.
///
/// # Errors
/// As [`st2_core::EngineBuilder::start`].
pub async fn start(store: Arc<dyn Store>) -> Result<Engine, EngineError> {
    Engine::builder()
        .store(store)
        .pack_dir(pack_dir())
        .runner(runner_type(), WordCount)
        .start()
        .await
}
