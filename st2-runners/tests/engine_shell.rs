//! The local shell runners under the engine: trigger data rendered into `cmd` reaches the
//! shell as data, the `timeout` runner parameter ends an execution `timeout` with StackStorm's
//! message, and cancel kills the whole process group.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use st2_core::engine::{Engine, EngineSettings};
use st2_core::runner::RunnerRegistry;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionFilter, ExecutionStatus, Page, Store};

const WAIT: Duration = Duration::from_secs(30);

fn params(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

async fn engine() -> Engine {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    );
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners).expect("register");
    Engine::builder()
        .store(store)
        .pack_dir(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine/shellrules"),
        )
        .runners(runners)
        .settings(EngineSettings {
            heartbeat: Duration::from_millis(200),
            idle_poll: Duration::from_millis(100),
            ..EngineSettings::default()
        })
        .start()
        .await
        .expect("engine starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_data_reaches_the_shell_as_text() {
    let engine = engine().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.txt");
    let marker = dir.path().join("pwned");
    let text = format!(
        "\"; touch {} #  $(touch {}) `id`",
        marker.display(),
        marker.display()
    );
    let ti = engine
        .dispatch(
            "shellrules.message",
            json!({"text": text, "out": out.display().to_string()}),
        )
        .await
        .expect("dispatch");
    let filter = ExecutionFilter {
        trigger_instance: Some(ti.id.clone()),
        ..ExecutionFilter::default()
    };
    let mut executions = Vec::new();
    for _ in 0..400 {
        executions = engine.list(&filter, Page::all()).await.expect("list").items;
        if executions.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(executions.len(), 2, "both rules enforced");
    for e in &executions {
        let done = engine.wait(&e.id, WAIT).await.expect("done");
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
        // The execution shows the command as StackStorm would have rendered it.
        let shown = done.parameters["cmd"].as_str().unwrap_or_default();
        assert!(shown.contains(&text), "{shown}");
    }
    assert!(!marker.exists(), "trigger data ran as shell syntax");
    let written = std::fs::read_to_string(&out).expect("output file");
    let mut lines: Vec<&str> = written.lines().collect();
    lines.sort_unstable();
    // Bare text is still split into words and re-joined by echo, as StackStorm's would be.
    let bare_words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(lines.len(), 2, "{written}");
    assert_eq!(lines[0], format!("bare: {}", bare_words.join(" ")));
    assert_eq!(lines[1], format!("quoted: {text}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_ends_the_execution_with_stackstorms_message() {
    let engine = engine().await;
    let created = engine
        .run(
            "core.local",
            params(json!({"cmd": "sleep 30", "timeout": 1})),
            Map::new(),
        )
        .await
        .expect("run");
    let done = engine.wait(&created.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Timeout);
    let error = done.result["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Action failed to complete in 1 seconds"),
        "{:?}",
        done.result
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_the_process_group() {
    let engine = engine().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("still-running");
    let cmd = format!("(sleep 2; touch {}) & sleep 30", marker.display());
    let created = engine
        .run("core.local", params(json!({"cmd": cmd})), Map::new())
        .await
        .expect("run");
    for _ in 0..400 {
        let e = engine
            .get(&created.id)
            .await
            .expect("read")
            .expect("exists");
        if e.status == ExecutionStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    engine.cancel(&created.id, "tester").await.expect("cancel");
    let done = engine.wait(&created.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Canceled);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !marker.exists(),
        "a process of the group survived the cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_echo_renders_its_immutable_command_safely() {
    let engine = engine().await;
    let created = engine
        .run(
            "core.echo",
            params(json!({"message": "$(echo injected)"})),
            Map::new(),
        )
        .await
        .expect("run");
    let done = engine.wait(&created.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(done.result["stdout"], "$(echo injected)");
    let output = engine.output(&done.id).await.expect("output");
    assert_eq!(output[0].chunk.data, "$(echo injected)\n");
}
