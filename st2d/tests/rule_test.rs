//! `st2d rule test`: exit 0 on a match (printing the rendered parameters), 1 on no match, 2 on
//! an error; `--batch` reproduces StackStorm's rule filter on every criteria conformance case.

#[path = "../../st2-core/tests/support/conformance.rs"]
mod conformance;

mod cli;

use std::collections::BTreeSet;

use cli::{json_lines, st2d, st2d_with_input, stdout};
use conformance::{assert_only_listed_differ, conformance_file};
use serde_json::Value;

fn instance_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("instance.json");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn a_matching_instance_prints_the_rendered_parameters() {
    let out = st2d(&[
        "rule",
        "test",
        "--rule",
        "hello_st2.greet_on_event",
        "--trigger-instance",
        "examples/trigger-instances/hello_event.json",
        "--packs-dir",
        "examples/packs",
        "--configs-dir",
        "examples/configs",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("match: rule hello_st2.greet_on_event runs hello_st2.greet"),
        "{text}"
    );
    assert!(text.contains("\"name\": \"Ada Lovelace\""), "{text}");
    assert!(text.contains("\"greeting\": \"Hi\""), "{text}");
}

#[test]
fn no_match_and_errors_have_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let rule = "examples/packs/hello_st2/rules/greet_on_event.yaml";
    // The criterion wants letters and spaces only.
    let digits = instance_file(
        &dir,
        r#"{"trigger": "hello_st2.event", "payload": {"name": "R2D2"}}"#,
    );
    let out = st2d(&[
        "rule",
        "test",
        "--rule",
        rule,
        "--trigger-instance",
        &digits,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // Another trigger type.
    let other = instance_file(
        &dir,
        r#"{"trigger": "core.st2.webhook", "payload": {"name": "Ada"}}"#,
    );
    let out = st2d(&["rule", "test", "--rule", rule, "--trigger-instance", &other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("listens to `hello_st2.event`"));
    // Unreadable input.
    let out = st2d(&[
        "rule",
        "test",
        "--rule",
        "no/such/rule.yaml",
        "--trigger-instance",
        &other,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let broken = instance_file(&dir, "{not json");
    let out = st2d(&[
        "rule",
        "test",
        "--rule",
        rule,
        "--trigger-instance",
        &broken,
    ]);
    assert_eq!(out.status.code(), Some(2));
}

fn batch(input: &str) -> Vec<Value> {
    let out = st2d_with_input(&["rule", "test", "--batch"], input);
    assert!(out.status.success());
    json_lines(&out)
}

#[test]
fn batch_mode_reproduces_the_criteria_cases() {
    let text = conformance_file("criteria-cases.jsonl");
    let mut input = String::new();
    let mut expected = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut case: Value = serde_json::from_str(line).expect("a case");
        expected.push((n + 1, case["expected"].take()));
        let obj = case.as_object_mut().expect("an object");
        obj.remove("expected");
        input.push_str(&case.to_string());
        input.push('\n');
    }
    let outputs = batch(&input);
    assert_eq!(outputs.len(), expected.len());
    let mut failed = BTreeSet::new();
    for ((line, want), got) in expected.iter().zip(&outputs) {
        let ok = match (want.get("match"), got.get("match")) {
            (Some(w), Some(g)) => {
                w == g
                    && want.get("failed_enforcements").is_some()
                        == got.get("failed_enforcements").is_some()
            }
            (None, None) => got.get("error").is_some(),
            _ => false,
        };
        if !ok {
            println!("line {line}: expected {want}, got {got}");
            failed.insert(*line);
        }
    }
    assert_only_listed_differ("criteria-cases.jsonl", &failed);
}

#[test]
fn batch_mode_reports_bad_lines_and_goes_on() {
    let out = batch(
        "nope\n{\"criteria\": [], \"payload\": {}}\n{\"criteria\": {}, \"payload\": {}, \"extra\": 1}\n\
         {\"criteria\": {\"trigger.a\": {\"type\": \"equals\", \"pattern\": 1}}, \"payload\": {\"a\": 1}}\n",
    );
    let errors: Vec<Option<&str>> = out.iter().map(|v| v["error"].as_str()).collect();
    assert_eq!(
        errors,
        [
            Some("InputError"),
            Some("InputError"),
            Some("InputError"),
            None
        ]
    );
    assert_eq!(out[3]["match"], true);
}
