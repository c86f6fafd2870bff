//! Contract: `python-script` runs a pack's StackStorm Python action unchanged: the result is
//! exactly `{stdout, stderr, exit_code, result}` with stdout unstripped (output of processes
//! the action starts included), a raised exception ends `failed` with exit code 1, the
//! traceback in stderr and result `"None"`, `(False, data)` ends `failed` keeping `data`,
//! `self.config` holds the schema defaults, `action_service` keys live in system scope as
//! `<pack>.<ClassName>:<name>`, `from lib.x import` works, and a timeout or cancel kills the
//! process.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Packs;
use serde_json::{Value, json};
use st2_core::datastore::{Datastore, KeySelector};
use st2_core::runner::{Cancellation, Runner, RunnerError};
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionStatus, OutputType, Store};
use st2_runners::{PythonRunner, PythonSettings};

fn runner(dir: &tempfile::TempDir) -> PythonRunner {
    PythonRunner::new(PythonSettings {
        runtime_dir: dir.path().join("runtime"),
        ..PythonSettings::default()
    })
}

fn keys(result: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = result
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn result_has_stackstorms_keys_and_unstripped_output() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let (ctx, recorder) = packs.context(
        "pyactions.echo",
        json!({}),
        json!({"message": "hi", "count": 2}),
    );
    let outcome = runner(&dir).run(ctx).await.expect("runs");
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    let result = &outcome.result;
    assert_eq!(keys(result), ["exit_code", "result", "stderr", "stdout"]);
    assert_eq!(result["exit_code"], json!(0));
    assert_eq!(
        result["stdout"],
        json!("line one\n\nfrom a child process\n"),
        "print output and a child's output, not stripped"
    );
    let stderr = result["stderr"].as_str().expect("text");
    assert!(stderr.starts_with("to stderr\n"), "{stderr}");
    assert!(
        stderr.contains("actions.python.EchoAction: INFO     logged hi"),
        "{stderr}"
    );
    assert_eq!(result["result"]["message"], json!("hi"));
    assert_eq!(result["result"]["count"], json!(2));
    assert_eq!(
        result["result"]["shouted"],
        json!("HI!"),
        "from lib.helpers import"
    );
    assert_eq!(
        result["result"]["config"],
        json!({"region": "eu-west-1", "retries": {"count": 3}}),
        "config schema defaults"
    );
    let streamed: String = recorder
        .chunks()
        .into_iter()
        .filter(|(t, _)| *t == OutputType::Stdout)
        .map(|(_, text)| text)
        .collect();
    assert_eq!(streamed, "line one\n\nfrom a child process\n");
}

#[tokio::test]
async fn an_exception_fails_with_the_traceback_and_result_none() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let (ctx, _) = packs.context("pyactions.boom", json!({}), json!({"text": "kaboom"}));
    let outcome = runner(&dir).run(ctx).await.expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    let result = &outcome.result;
    assert_eq!(keys(result), ["exit_code", "result", "stderr", "stdout"]);
    assert_eq!(result["exit_code"], json!(1));
    assert_eq!(result["result"], json!("None"));
    assert_eq!(result["stdout"], json!("before the failure\n"));
    let stderr = result["stderr"].as_str().expect("text");
    assert!(
        stderr.starts_with("Traceback (most recent call last):"),
        "{stderr}"
    );
    assert!(stderr.contains("boom.py"), "{stderr}");
    assert!(
        stderr.trim_end().ends_with("ValueError: kaboom"),
        "{stderr}"
    );
}

#[tokio::test]
async fn status_tuples_decide_the_status_and_keep_the_data() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let runner = runner(&dir);
    let (ctx, _) = packs.context("pyactions.status", json!({}), json!({"ok": false}));
    let outcome = runner.run(ctx).await.expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert_eq!(outcome.result["result"], json!({"why": "not ok"}));
    assert_eq!(outcome.result["exit_code"], json!(0));

    let (ctx, _) = packs.context("pyactions.status", json!({}), json!({"ok": true}));
    let outcome = runner.run(ctx).await.expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    assert_eq!(outcome.result["result"], json!([1, 2, 3]));

    // A result JSON cannot encode comes back as its str() with a status.
    let (ctx, _) = packs.context("pyactions.opaque", json!({}), json!({}));
    let outcome = runner.run(ctx).await.expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    assert_eq!(outcome.result["result"], json!("<a thing>"));

    // A status that is not a boolean is an error, as in StackStorm.
    let (ctx, _) = packs.context("pyactions.badstatus", json!({}), json!({}));
    match runner.run(ctx).await {
        Err(RunnerError::Failed(message)) => {
            assert!(
                message.contains("must either be True or False"),
                "{message}"
            )
        }
        other => panic!("expected a runner error, got {other:?}"),
    }
}

#[tokio::test]
async fn old_style_constructors_and_missing_config_keys() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let (ctx, _) = packs.context("pyactions.legacy", json!({}), json!({}));
    let outcome = runner(&dir).run(ctx).await.expect("runs");
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    let result = &outcome.result["result"];
    assert_eq!(
        result["has_service"],
        json!(true),
        "assigned after construction"
    );
    assert_eq!(result["region"], json!("eu-west-1"));
    assert_eq!(result["scope"], json!("system"));
    let missing = result["missing"].as_str().expect("an error message");
    assert!(
        missing.contains("pyactions") && missing.contains("no_such_setting"),
        "{missing}"
    );
}

#[tokio::test]
async fn action_service_keys_live_in_system_scope_under_the_class() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    );
    let datastore = Datastore::new(store, None);
    let (mut ctx, _) = packs.context("pyactions.kv", json!({}), json!({"value": "41"}));
    ctx.datastore = Some(datastore.clone());
    let outcome = runner(&dir).run(ctx).await.expect("runs");
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    let result = &outcome.result["result"];
    assert_eq!(result["got"], json!("41"));
    assert_eq!(result["missing"], Value::Null);
    assert_eq!(
        result["names"],
        json!(["pyactions.KvAction:counter", "pyactions.KvAction:scratch"])
    );
    assert_eq!(result["deleted"], json!(true));
    assert_eq!(result["deleted_again"], json!(false));
    assert_eq!(result["global"], json!("g"));
    assert_eq!(result["scope_error"], json!("Scope user is unsupported."));
    let stored = datastore
        .get(&KeySelector::System, "pyactions.KvAction:counter", false)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(stored.shown_value(), "41");
    assert!(
        datastore
            .get(&KeySelector::System, "pyactions.KvAction:scratch", false)
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn without_a_datastore_gets_return_none_and_sets_raise() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let (ctx, _) = packs.context("pyactions.kv", json!({}), json!({"value": "1"}));
    let outcome = runner(&dir).run(ctx).await.expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    let stderr = outcome.result["stderr"].as_str().expect("text");
    assert!(stderr.contains("no datastore is available"), "{stderr}");
}

fn pid_alive(pid_file: &std::path::Path) -> bool {
    let pid = std::fs::read_to_string(pid_file).expect("pid written");
    std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
}

#[tokio::test]
async fn a_timeout_kills_the_action() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let (ctx, _) = packs.context(
        "pyactions.sleepy",
        json!({"timeout": 1}),
        json!({"seconds": 60, "pid_file": pid_file}),
    );
    let started = Instant::now();
    let outcome = runner(&dir).run(ctx).await.expect("runs");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(outcome.status, ExecutionStatus::Timeout);
    let result = &outcome.result;
    assert_eq!(result["exit_code"], json!(-9));
    assert_eq!(result["result"], json!("None"));
    assert_eq!(result["stdout"], json!("sleeping\n"));
    assert_eq!(
        result["error"],
        json!("Action failed to complete in 1 seconds")
    );
    assert!(!pid_alive(&pid_file), "the Python process is gone");
}

#[tokio::test]
async fn cancellation_kills_the_action() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let (mut ctx, _) = packs.context(
        "pyactions.sleepy",
        json!({}),
        json!({"seconds": 60, "pid_file": pid_file}),
    );
    let (canceller, cancel) = Cancellation::new();
    ctx.cancel = cancel;
    let watched = pid_file.clone();
    tokio::spawn(async move {
        while !watched.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        canceller.cancel();
    });
    let started = Instant::now();
    let outcome = runner(&dir).run(ctx).await.expect("runs");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(outcome.status, ExecutionStatus::Canceled);
    assert!(!pid_alive(&pid_file), "the Python process is gone");
}

#[tokio::test]
async fn bad_code_fails_with_a_clear_message() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let runner = runner(&dir);

    let (ctx, _) = packs.context("pyactions.missing", json!({}), json!({}));
    match runner.run(ctx).await {
        Err(e @ RunnerError::EntryPoint { .. }) => {
            assert!(e.to_string().contains("not_there.py"), "{e}")
        }
        other => panic!("expected an entry point error, got {other:?}"),
    }

    let (ctx, _) = packs.context("pyactions.syntax", json!({}), json!({}));
    let outcome = runner.run(ctx).await.expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert_eq!(outcome.result["exit_code"], json!(1));
    assert_eq!(outcome.result["result"], json!("None"));
    let stderr = outcome.result["stderr"].as_str().expect("text");
    assert!(stderr.contains("Failed to load action class"), "{stderr}");
    assert!(stderr.contains("syntax.py"), "{stderr}");
    assert!(stderr.contains("SyntaxError"), "{stderr}");

    let (ctx, _) = packs.context(
        "pyactions.echo",
        json!({}),
        json!({"message": "m", "count": 1, "bogus": true}),
    );
    let outcome = runner.run(ctx).await.expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    let stderr = outcome.result["stderr"].as_str().expect("text");
    assert!(
        stderr.contains("got an unexpected keyword argument 'bogus'"),
        "{stderr}"
    );

    let (ctx, _) = packs.context(
        "pyactions.echo",
        json!({"timeout": "soon"}),
        json!({"message": "m"}),
    );
    match runner.run(ctx).await {
        Err(RunnerError::Parameter { name, .. }) => assert_eq!(name, "timeout"),
        other => panic!("expected a parameter error, got {other:?}"),
    }
}
