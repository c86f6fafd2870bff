//! Contract: on timeout or cancellation the local runners kill the command's whole process
//! group (backgrounded grandchildren included) and return promptly with `timeout` (return code
//! -9 and StackStorm's error text) or `canceled`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Packs;
use serde_json::json;
use st2_core::runner::{Cancellation, Runner};
use st2_core::store::ExecutionStatus;
use st2_runners::LocalShellCommandRunner;

/// Whether `pid` is gone (or a zombie waiting for a reaper).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

async fn assert_dies(pid_file: &Path) {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .expect("the grandchild wrote its pid")
        .trim()
        .parse()
        .expect("a pid");
    let start = Instant::now();
    while !is_dead(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "grandchild {pid} survived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let cmd = format!(
        "sleep 30 & echo $! > {}; echo started; sleep 30",
        pid_file.display()
    );
    let (ctx, _) = packs.context("core.local", json!({"cmd": cmd, "timeout": 1}), json!({}));
    let start = Instant::now();
    let outcome = LocalShellCommandRunner::default()
        .run(ctx)
        .await
        .expect("runs");
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(elapsed >= Duration::from_secs(1), "took {elapsed:?}");
    assert_eq!(outcome.status, ExecutionStatus::Timeout);
    assert_eq!(outcome.result["return_code"], json!(-9));
    assert_eq!(outcome.result["succeeded"], json!(false));
    assert_eq!(outcome.result["stdout"], json!("started"));
    assert_eq!(
        outcome.result["error"],
        json!("Action failed to complete in 1 seconds")
    );
    assert_dies(&pid_file).await;
}

#[tokio::test]
async fn output_held_open_by_a_grandchild_counts_against_the_timeout() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    // The shell exits at once; its background child keeps stdout open.
    let cmd = format!("sleep 30 & echo $! > {}", pid_file.display());
    let (ctx, _) = packs.context("core.local", json!({"cmd": cmd, "timeout": 1}), json!({}));
    let start = Instant::now();
    let outcome = LocalShellCommandRunner::default()
        .run(ctx)
        .await
        .expect("runs");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(outcome.status, ExecutionStatus::Timeout);
    assert_dies(&pid_file).await;
}

#[tokio::test]
async fn background_processes_with_their_own_output_are_left_alone() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let cmd = format!(
        "sleep 2 >/dev/null 2>&1 & echo $! > {}; echo done",
        pid_file.display()
    );
    let (ctx, _) = packs.context("core.local", json!({"cmd": cmd, "timeout": 10}), json!({}));
    let outcome = LocalShellCommandRunner::default()
        .run(ctx)
        .await
        .expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    assert!(!is_dead(pid), "a daemonised child was killed");
}

#[tokio::test]
async fn cancel_kills_the_group_and_returns_canceled() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let cmd = format!(
        "sleep 30 & echo $! > {}; echo started; sleep 30",
        pid_file.display()
    );
    let (mut ctx, recorder) = packs.context("core.local", json!({"cmd": cmd}), json!({}));
    let (canceller, cancel) = Cancellation::new();
    ctx.cancel = cancel;
    let run = tokio::spawn(async move { LocalShellCommandRunner::default().run(ctx).await });
    let start = Instant::now();
    while recorder.chunks().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled_at = Instant::now();
    canceller.cancel();
    let outcome = run.await.expect("joins").expect("runs");
    assert!(cancelled_at.elapsed() < Duration::from_secs(2));
    assert_eq!(outcome.status, ExecutionStatus::Canceled);
    assert_eq!(outcome.result["stdout"], json!("started"));
    assert_eq!(outcome.result["succeeded"], json!(false));
    assert_dies(&pid_file).await;
}
