//! `st2d expr` reproduces the conformance files: every case goes through the command as a JSON
//! line, and exactly the cases `docs/compatibility.md` lists differ. Bad input lines give an
//! `InputError` line and evaluation carries on.

#[path = "../../st2-core/tests/support/conformance.rs"]
mod conformance;

mod cli;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use cli::{json_lines, st2d_with_input};
use conformance::{
    assert_only_listed_differ, conformance_dir, conformance_file, same, tsv_cases, unescape,
};
use serde_json::{Value, json};

fn st2d_expr(args: &[&str], input: &str) -> Vec<Value> {
    let mut all = vec!["expr"];
    all.extend_from_slice(args);
    let out = st2d_with_input(&all, input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&out)
}

/// Run one conformance file through `st2d expr` and check the outcome case by case.
fn check_file(file: &str, args: &[&str], escaped: bool) {
    let text = conformance_file(file);
    let cases = tsv_cases(&text);
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|(_, cols)| !(file == "jinja-cases.tsv" && cols[0] == "template"))
        .collect();
    let mut input = String::new();
    for (_, cols) in &cases {
        let expr = if escaped {
            unescape(cols[0])
        } else {
            cols[0].to_owned()
        };
        let context: Value = serde_json::from_str(cols[1]).expect("context JSON");
        input.push_str(&json!({"expr": expr, "context": context}).to_string());
        input.push('\n');
    }
    let outputs = st2d_expr(args, &input);
    assert_eq!(outputs.len(), cases.len(), "one output line per case");
    let mut failed = BTreeSet::new();
    for ((line, cols), got) in cases.iter().zip(&outputs) {
        let expected: Value = serde_json::from_str(cols[2]).expect("expectation JSON");
        let ok = match (got.get("value"), expected.get("value")) {
            (Some(v), Some(want)) => same(v, want),
            (None, None) => got.get("error").is_some(),
            _ => false,
        };
        if !ok {
            println!("{file}:{line}: expected {expected}, got {got}");
            failed.insert(*line);
        }
    }
    println!(
        "{file} via st2d expr: {} passed, {} failed",
        cases.len() - failed.len(),
        failed.len()
    );
    assert_only_listed_differ(file, &failed);
}

#[test]
fn jinja_cases() {
    let key = conformance_dir().join("st2-test-crypto-key.json");
    let key = key.to_str().expect("UTF-8 path");
    check_file(
        "jinja-cases.tsv",
        &["--lang", "jinja", "--crypto-key", key],
        true,
    );
}

#[test]
fn yaql_cases() {
    check_file("yaql-cases.tsv", &["--lang", "yaql"], false);
}

#[test]
fn orquesta_cases() {
    check_file("orquesta-expr-cases.tsv", &["--lang", "orquesta"], false);
}

#[test]
fn bad_lines_are_reported_and_skipped() {
    let input = "not json\n[1]\n{\"expr\": 5}\n{\"context\": {}}\n\
        {\"expr\": \"<% 1 + %>\", \"context\": {}}\n\
        {\"expr\": \"<% 1 + 1 %>\", \"context\": {}, \"extra\": 1}\n\
        \n\
        {\"expr\": \"<% 1 + 1 %>\", \"context\": {}}\n";
    let out = st2d_expr(&["--lang", "orquesta"], input);
    let errors: Vec<&str> = out
        .iter()
        .map(|v| v.get("error").and_then(Value::as_str).unwrap_or("-"))
        .collect();
    assert_eq!(
        errors,
        [
            "InputError",
            "InputError",
            "InputError",
            "InputError",
            "YaqlEvaluationException",
            "InputError",
            "-"
        ]
    );
    assert!(
        out[0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("line 1:")
    );
    assert_eq!(out[6], json!({"value": 2}));
}

#[test]
fn a_missing_key_file_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_st2d"))
        .args([
            "expr",
            "--lang",
            "jinja",
            "--crypto-key",
            "/nonexistent/key.json",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("st2d runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/key.json"));
}
