//! `st2d workflow simulate` prints the conformance report for a real conformance case, and
//! refuses bad input (unreadable or invalid workflow, mocks that are not JSON or do not fit,
//! inputs that are not an object) with a non-zero exit and a message naming the problem.

mod cli;

use std::path::PathBuf;

use cli::{st2d, stdout, workspace};
use serde_json::Value;

fn fixtures() -> PathBuf {
    workspace().join("../shared/conformance/orquesta/workflows/native")
}

#[test]
fn simulate_prints_the_report() {
    let wf = fixtures().join("sequential.yaml");
    let out = st2d(&[
        "workflow",
        "simulate",
        wf.to_str().unwrap_or_default(),
        "--inputs",
        r#"{"name": "Stanley"}"#,
        "--mode",
        "fifo",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    assert_eq!(report["workflow_status"], "succeeded");
    let ids: Vec<&str> = report["task_sequence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["task_id"].as_str())
        .collect();
    // task3 publishes on a transition to `continue`, which is an entry of its own.
    assert_eq!(ids, ["task1", "task2", "task3", "continue"]);
    assert_eq!(report["routes"], serde_json::json!([[]]));
}

#[test]
fn bad_input_exits_non_zero_with_a_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wf = fixtures().join("sequential.yaml");
    let wf = wf.to_str().unwrap_or_default();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "tasks:\n  t1:\n    next:\n      - do: nowhere\n").expect("write");
    let mocks = dir.path().join("mocks.json");
    std::fs::write(&mocks, r#"{"task1": {"status": "failed"}}"#).expect("write");
    let not_json = dir.path().join("not.json");
    std::fs::write(&not_json, "{").expect("write");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![broken.to_str().unwrap_or_default()], "broken.yaml:4"),
        (vec!["/nonexistent/wf.yaml"], "cannot read workflow file"),
        (vec![wf, mocks.to_str().unwrap_or_default()], "\"task1\""),
        (
            vec![wf, not_json.to_str().unwrap_or_default()],
            "is not JSON",
        ),
        (
            vec![wf, "--inputs", "[1]"],
            "--inputs must be a JSON object",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["workflow", "simulate"];
        all.extend(args);
        let out = st2d(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{all:?} succeeded");
        assert!(stderr.contains(needle), "{all:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn check_reports_problems_with_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("wf.yaml");
    std::fs::write(
        &broken,
        "tasks:\n  t1:\n    action: core.noop\n    retry: {}\n",
    )
    .expect("write");
    let out = st2d(&["workflow", "check", broken.to_str().unwrap_or_default()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wf.yaml:4:"),
        "{:?}",
        out
    );
    let ok = fixtures().join("join.yaml");
    let out = st2d(&["workflow", "check", ok.to_str().unwrap_or_default()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
