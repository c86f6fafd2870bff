//! Contract: `local-shell-script` makes the pack's script executable and runs it with
//! StackStorm's arguments (named `--name=value` in parameter order, then positional by
//! `position`, each shell-quoted), never passing runner parameters as arguments.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Packs;
use serde_json::json;
use st2_core::runner::{Runner, RunnerError};
use st2_core::store::ExecutionStatus;
use st2_runners::LocalShellScriptRunner;

#[tokio::test]
async fn arguments_follow_stackstorm() {
    let packs = Packs::load();
    let (ctx, _) = packs.context(
        "shelltest.args",
        json!({"timeout": 10, "env": {"X": "1"}, "sudo": false}),
        json!({
            "name": "x y; touch pwned",
            "verbose": true,
            "quiet": false,
            "count": 3,
            "ratio": 1.5,
            "tags": ["a", "b"],
            "empty": "",
            "first": "it's $(id)",
            "second": 0,
            "flags": ["p", "q"],
            "data": {"k": "v"},
            "switch": true,
        }),
    );
    let script = packs.pack_dir("shelltest").join("actions/print_args.sh");
    assert_eq!(
        std::fs::metadata(&script)
            .expect("meta")
            .permissions()
            .mode()
            & 0o111,
        0
    );
    let outcome = LocalShellScriptRunner::default()
        .run(ctx)
        .await
        .expect("runs");
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    assert_eq!(
        outcome.result["stdout"],
        json!(
            "[--name=x y; touch pwned]\n[--verbose]\n[--count=3]\n[--ratio=1.5]\n[--tags=['a', 'b']]\n\
             [it's $(id)]\n[]\n[p,q]\n[{\"k\":\"v\"}]\n[1]"
        )
    );
    assert_ne!(
        std::fs::metadata(&script)
            .expect("meta")
            .permissions()
            .mode()
            & 0o111,
        0,
        "chmod +x"
    );
}

#[tokio::test]
async fn kwarg_op_and_missing_positionals() {
    let packs = Packs::load();
    let (ctx, _) = packs.context(
        "shelltest.args",
        json!({"kwarg_op": "-"}),
        json!({"name": "n", "switch": false}),
    );
    let outcome = LocalShellScriptRunner::default()
        .run(ctx)
        .await
        .expect("runs");
    assert_eq!(
        outcome.result["stdout"],
        json!("[-name=n]\n[]\n[]\n[]\n[]\n[0]")
    );
}

#[tokio::test]
async fn env_cwd_and_debug() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let cwd = dir.path().canonicalize().expect("canonical");
    let (ctx, _) = packs.context(
        "shelltest.env",
        json!({"cwd": cwd.to_string_lossy(), "env": {"GREETING": "hi"}, "debug": true}),
        json!({}),
    );
    let outcome = LocalShellScriptRunner::default()
        .run(ctx)
        .await
        .expect("runs");
    assert_eq!(
        outcome.result["stdout"],
        json!({"cwd": cwd.to_string_lossy(), "greeting": "hi", "pack": "shelltest", "debug": "True"})
    );
}

#[tokio::test]
async fn entry_point_problems_are_errors() {
    let packs = Packs::load();
    let (mut ctx, _) = packs.context("shelltest.env", json!({}), json!({}));
    let mut action = (*ctx.action).clone();
    action.entry_point = "../../../etc/passwd".to_owned();
    ctx.action = std::sync::Arc::new(action.clone());
    assert!(matches!(
        LocalShellScriptRunner::default().run(ctx.clone()).await,
        Err(RunnerError::EntryPoint { .. })
    ));
    action.entry_point = "missing.sh".to_owned();
    ctx.action = std::sync::Arc::new(action.clone());
    assert!(matches!(
        LocalShellScriptRunner::default().run(ctx.clone()).await,
        Err(RunnerError::EntryPoint { .. })
    ));
    action.entry_point = String::new();
    ctx.action = std::sync::Arc::new(action);
    assert!(matches!(
        LocalShellScriptRunner::default().run(ctx).await,
        Err(RunnerError::Failed(_))
    ));
    let (mut ctx, _) = packs.context("shelltest.env", json!({}), json!({}));
    ctx.pack_dir = None;
    assert!(matches!(
        LocalShellScriptRunner::default().run(ctx).await,
        Err(RunnerError::EntryPoint { .. })
    ));
    let (ctx, _) = packs.context("shelltest.env", json!({"content_version": "v1"}), json!({}));
    assert!(matches!(
        LocalShellScriptRunner::default().run(ctx).await,
        Err(RunnerError::Parameter { name, .. }) if name == "content_version"
    ));
}
