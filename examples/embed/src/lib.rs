//! Embedding the engine: open a store, load packs, dispatch a trigger and follow the execution
//! its rule starts to its result.
//!
//! [`greet`] is the whole program; `src/main.rs` calls it and prints what it returns, and
//! `docs/embedding.md` explains each call. The engine loads the example pack
//! `examples/packs/hello_st2` with its config from `examples/configs`: its rule
//! `greet_on_event` runs `hello_st2.greet` (a `local-shell-cmd` action that echoes
//! `"<greeting>, <name>!"`) for every `hello_st2.event` whose `name` is made of letters and
//! spaces.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use st2_core::Engine;
use st2_core::engine::EngineEvent;
use st2_core::runner::RunnerRegistry;
use st2_core::store::ExecutionRecord;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};

/// How long to wait for the rule to start the action, and for the action to finish.
pub const WAIT: Duration = Duration::from_secs(30);

/// The repository's `examples/` directory (the example packs and their configs), found from
/// this crate's manifest so the program runs from any working directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Start an engine storing in the SQLite file `db` (created if missing), dispatch a
/// `hello_st2.event` naming `name`, and return the execution the rule `greet_on_event`
/// started, once it finished.
///
/// # Errors
/// The store cannot be opened, the engine cannot start, the payload does not fit the trigger
/// type's schema, no rule started an execution within [`WAIT`] (a name the rule's criteria
/// refuse, such as one with digits), or the execution did not finish within [`WAIT`].
pub async fn greet(db: &Path, name: &str) -> anyhow::Result<ExecutionRecord> {
    // The store keeps everything: trigger instances, executions, the work queue.
    let store = SqliteStore::open(SqliteOptions::file(db)).await?;
    // StackStorm's noop, local-shell-cmd, local-shell-script and http-request runners.
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners)?;
    let engine = Engine::builder()
        .store(Arc::new(store))
        .packs_dir(examples_dir().join("packs"))
        .configs_dir(examples_dir().join("configs"))
        .runners(runners)
        .start()
        .await?;

    // Subscribe before dispatching, so the execution's creation cannot be missed.
    let mut events = engine.subscribe();
    let instance = engine
        .dispatch("hello_st2.event", json!({"name": name}))
        .await?;
    let started = tokio::time::timeout(WAIT, async {
        loop {
            if let EngineEvent::ExecutionCreated(execution) = events.recv().await?
                && started_by(&execution, &instance.id)
            {
                return anyhow::Ok(execution);
            }
        }
    })
    .await
    .context("no rule started an execution for the trigger instance")??;

    let finished = engine.wait(&started.id, WAIT).await?;
    engine.shutdown().await;
    Ok(finished)
}

/// Whether `execution` was started by a rule for trigger instance `instance_id`.
pub fn started_by(execution: &ExecutionRecord, instance_id: &str) -> bool {
    execution
        .trigger_instance
        .as_ref()
        .and_then(|ti| ti.get("id"))
        .and_then(|id| id.as_str())
        == Some(instance_id)
}

/// The Rust snippets of `docs/embedding.md`, compiled (and those not marked `no_run`, run) as
/// doctests of this crate so the guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/embedding.md")]
pub struct EmbeddingGuide;
