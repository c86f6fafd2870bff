//! Every case of `../shared/conformance/criteria-cases.jsonl` (recorded from StackStorm's own
//! rule filter) matches here as it does there, or fails where it fails; exactly the cases
//! `docs/compatibility.md` lists differ.

mod support {
    pub mod conformance;
}

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use serde_json::Value;
use st2_core::datastore::{KvScope, MemoryKeyValues};
use st2_core::expr::jinja::{Jinja, JinjaConfig};
use st2_core::expr::rhai::{Rhai, RhaiLimits};
use st2_core::rules::criteria::{Criteria, Environment};
use support::conformance::{assert_only_listed_differ, conformance_file};

#[test]
fn criteria_cases_match_as_in_stackstorm() {
    let text = conformance_file("criteria-cases.jsonl");
    let jinja = Jinja::new(JinjaConfig::default());
    let rhai = Rhai::new(RhaiLimits::default());
    let now = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid time");
    let (mut passed, mut failed, mut lines) = (0, Vec::new(), BTreeSet::new());
    let mut class_mismatches = 0;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let case: Value = serde_json::from_str(line).expect("a JSON case");
        let criteria = case["criteria"].as_object().cloned().unwrap_or_default();
        let store = Arc::new(MemoryKeyValues::new());
        if let Some(Value::Object(system)) = case.get("st2kv").and_then(|k| k.get("system")) {
            for (k, v) in system {
                store.set(KvScope::System, k.clone(), v.as_str().unwrap_or_default());
            }
        }
        let env = Environment {
            jinja: &jinja,
            kv: Some(store),
            rhai: &rhai,
            now,
        };
        let compiled = Criteria::compile(&criteria, &rhai);
        let got = compiled.evaluate(&case["payload"], &env);
        let expected = &case["expected"];
        let (ok, shown) = match (&got, expected.get("match"), expected.get("error")) {
            (Ok(o), Some(Value::Bool(want)), None) => {
                let want_failures = expected.get("failed_enforcements").is_some();
                (
                    o.matched == *want && want_failures != o.failures.is_empty(),
                    format!("match {} with failures {:?}", o.matched, o.failures),
                )
            }
            (Ok(o), None, Some(Value::String(class))) => {
                let first = o.failures.first().map(|f| f.class);
                if !o.matched && first.is_some() && first != Some(class.as_str()) {
                    class_mismatches += 1;
                    println!("line {line_no}: class {first:?} where StackStorm raised {class}");
                }
                (
                    !o.matched && !o.failures.is_empty(),
                    format!("match {} with failures {:?}", o.matched, o.failures),
                )
            }
            (Err(u), None, Some(_)) => (true, format!("unrecoverable {u}")),
            (Err(u), _, _) => (false, format!("unrecoverable {u}")),
            (Ok(o), _, _) => (
                false,
                format!("match {} with failures {:?}", o.matched, o.failures),
            ),
        };
        if ok {
            passed += 1;
        } else {
            lines.insert(line_no);
            failed.push(format!(
                "line {line_no}: {}\n    expected {expected}\n    got      {shown}",
                case["criteria"]
            ));
        }
    }
    println!(
        "criteria-cases.jsonl: {passed} passed, {} failed ({class_mismatches} errors of another class)",
        failed.len()
    );
    for f in &failed {
        println!("{f}");
    }
    assert!(passed > 0);
    assert_only_listed_differ("criteria-cases.jsonl", &lines);
}
