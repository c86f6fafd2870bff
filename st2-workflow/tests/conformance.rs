//! Orquesta conformance: every case of `shared/conformance/orquesta/cases.jsonl` runs through
//! the simulator and is compared with what orquesta 1.6.0 produced (status, task sequence,
//! routes, output, terminal tasks, executions, error entries). Prints `N passed, M failed` and the first
//! failures; asserts that at least [`FLOOR`] cases pass (raised as support grows).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value};
use st2_workflow::simulate::{Mode, simulate_file};

/// Cases that must pass (never lowered).
const FLOOR: usize = 676;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/orquesta")
}

/// Integers and floats are different values here (`2` is not `2.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.is_f64() == y.is_f64()) && x.as_f64() == y.as_f64()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn pick(v: &Value, keys: &[&str]) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = v {
        for k in keys {
            if let Some(x) = m.get(*k) {
                out.insert((*k).to_owned(), x.clone());
            }
        }
    }
    Value::Object(out)
}

fn list(v: &Value, keys: &[&str]) -> Value {
    Value::Array(
        v.as_array()
            .map(|a| a.iter().map(|x| pick(x, keys)).collect())
            .unwrap_or_default(),
    )
}

/// The first differing part, or `None` when the actual report matches.
fn compare(expected: &Value, actual: &Value) -> Option<String> {
    for key in ["workflow_status", "routes", "output", "term_tasks"] {
        let e = expected.get(key).unwrap_or(&Value::Null);
        let a = actual.get(key).unwrap_or(&Value::Null);
        if !same(e, a) {
            return Some(format!("{key}: expected {e}, got {a}"));
        }
    }
    let seq = ["task_id", "route", "status"];
    let e = list(&expected["task_sequence"], &seq);
    let a = list(&actual["task_sequence"], &seq);
    if !same(&e, &a) {
        return Some(format!("task_sequence:\n  expected {e}\n  got      {a}"));
    }
    let ex = [
        "task_id",
        "route",
        "item_id",
        "action",
        "input",
        "delay",
        "status",
        "result",
        "items_count",
    ];
    let e = list(&expected["executions"], &ex);
    let a = list(&actual["executions"], &ex);
    if !same(&e, &a) {
        return Some(format!("executions:\n  expected {e}\n  got      {a}"));
    }
    let er = ["type", "task_id", "route", "task_transition_id", "result"];
    let e = list(&expected["errors"], &er);
    let a = list(&actual["errors"], &er);
    if !same(&e, &a) {
        let msgs = |v: &Value| list(v, &["message"]);
        return Some(format!(
            "errors:\n  expected {e}\n  got      {a}\n  expected messages {}\n  got messages      {}",
            msgs(&expected["errors"]),
            msgs(&actual["errors"])
        ));
    }
    None
}

#[test]
fn orquesta_conformance() {
    let dir = dir();
    let text = std::fs::read_to_string(dir.join("cases.jsonl")).expect("cases.jsonl is readable");
    let filter = std::env::var("ORQ_CASE").ok();
    let started = Instant::now();
    let mut passed = 0;
    let mut failures = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("each line is JSON");
        let id = case["id"].as_str().unwrap_or("?").to_owned();
        if let Some(f) = &filter
            && !id.contains(f.as_str())
        {
            continue;
        }
        let workflow = dir.join(case["workflow"].as_str().unwrap_or(""));
        let inputs = case["inputs"].as_object().cloned().unwrap_or_default();
        let mode = if case["mode"] == "fifo" {
            Mode::Fifo
        } else {
            Mode::Wave
        };
        let outcome = simulate_file(&workflow, &case["mocks"], &inputs, mode);
        let diff = match outcome {
            Ok(actual) => {
                if std::env::var("ORQ_MESSAGES").is_ok() {
                    let e = list(&case["expected"]["errors"], &["message"]);
                    let a = list(&actual["errors"], &["message"]);
                    if e != a {
                        println!("MESSAGES {id}\n  expected {e}\n  got      {a}");
                    }
                }
                compare(&case["expected"], &actual)
            }
            Err(e) => Some(format!("error: {e}")),
        };
        match diff {
            None => passed += 1,
            Some(d) => failures.push((id, d)),
        }
    }
    let elapsed = started.elapsed();
    println!(
        "orquesta conformance: {passed} passed, {} failed ({:.2?})",
        failures.len(),
        elapsed
    );
    let shown: usize = std::env::var("ORQ_SHOW")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    for (id, d) in failures.iter().take(shown) {
        println!("--- {id}\n{d}");
    }
    if std::env::var("ORQ_IDS").is_ok() {
        for (id, _) in &failures {
            println!("FAILED {id}");
        }
    }
    assert!(
        passed >= FLOOR,
        "{passed} cases passed, fewer than the floor of {FLOOR}"
    );
}
