//! Pins YAQL evaluation (st2-core's engine plus the Orquesta functions) to yaql 3.2.0 inside
//! Orquesta 1.6.0: every case of `shared/conformance/yaql-cases.tsv` must give the recorded
//! value (ints and floats distinct, sets as sets, key order ignored) or fail where yaql fails,
//! both with the JSON functions (`Yaql::with_functions(orquesta_functions())`) and with their
//! native versions (`orquesta_yaql()`).

#[path = "../../st2-core/tests/support/conformance.rs"]
mod conformance;

use std::collections::BTreeSet;

use conformance::{assert_only_listed_differ, conformance_file, same, tsv_cases};
use serde_json::Value;
use st2_core::expr::Scope;
use st2_core::expr::yaql::{Yaql, YaqlValue};
use st2_workflow::{orquesta_functions, orquesta_yaql};

#[test]
fn yaql_cases() {
    let text = conformance_file("yaql-cases.tsv");
    let engines = [
        ("functions", Yaql::with_functions(orquesta_functions())),
        ("native", orquesta_yaql()),
    ];
    let (mut passed, mut failures, mut failed_lines) = (0, Vec::new(), BTreeSet::new());
    for (line, cols) in tsv_cases(&text) {
        assert_eq!(cols.len(), 3, "line {line}: expected 3 columns");
        let (expr, context, expected) = (cols[0], cols[1], cols[2]);
        let context: Value = serde_json::from_str(context)
            .unwrap_or_else(|e| panic!("line {line}: bad context: {e}"));
        let expected: Value = serde_json::from_str(expected)
            .unwrap_or_else(|e| panic!("line {line}: bad expectation: {e}"));
        let Value::Object(map) = &context else {
            panic!("line {line}: context is not an object");
        };
        let scope = Scope::from_context(map);
        let data = YaqlValue::from_json(&context);
        let mut failed = Vec::new();
        for (engine, yaql) in &engines {
            let got = yaql.evaluate_str(expr, Some(&data), &scope);
            let ok = match (&got, expected.get("value")) {
                (Ok(v), Some(want)) => same(&v.to_tagged_json(), want),
                (Err(_), None) => expected.get("error").is_some(),
                _ => false,
            };
            if !ok {
                let got = match got {
                    Ok(v) => format!("value {}", v.to_tagged_json()),
                    Err(e) => format!("error {:?}: {}", e.kind, e.message),
                };
                failed.push(format!("    got ({engine:9}) {got}"));
            }
        }
        if failed.is_empty() {
            passed += 1;
        } else {
            failed_lines.insert(line);
            failures.push(format!(
                "line {line}: {expr}\n    expected {expected}\n{}",
                failed.join("\n")
            ));
        }
    }
    println!("yaql-cases.tsv: {passed} passed, {} failed", failures.len());
    for f in &failures {
        println!("{f}");
    }
    assert!(passed > 0, "no cases found");
    assert_only_listed_differ("yaql-cases.tsv", &failed_lines);
}
