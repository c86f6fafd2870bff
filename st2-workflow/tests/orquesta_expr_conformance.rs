//! Every case of `../shared/conformance/orquesta-expr-cases.tsv` (recorded from orquesta 1.6.0's
//! `orquesta.expressions.base.evaluate`) gives the same value here, or fails where orquesta
//! fails.

#[path = "../../st2-core/tests/support/conformance.rs"]
mod conformance;

use std::collections::BTreeSet;

use conformance::{assert_only_listed_differ, conformance_file, same, tsv_cases};
use serde_json::Value;
use st2_workflow::expression::Evaluator;

#[test]
fn orquesta_expression_cases() {
    let text = conformance_file("orquesta-expr-cases.tsv");
    let evaluator = Evaluator::new();
    let (mut passed, mut failures, mut failed_lines) = (0, Vec::new(), BTreeSet::new());
    for (line, cols) in tsv_cases(&text) {
        assert_eq!(cols.len(), 3, "line {line}: expected 3 columns");
        let context: Value = serde_json::from_str(cols[1]).expect("context JSON");
        let expected: Value = serde_json::from_str(cols[2]).expect("expectation JSON");
        let data = context.as_object().cloned().unwrap_or_default();
        let got = evaluator.evaluate_text(cols[0], &data);
        let ok = match (&got, expected.get("value")) {
            (Ok(v), Some(want)) => same(v, want),
            (Err(_), None) => true,
            _ => false,
        };
        if ok {
            passed += 1;
        } else {
            failed_lines.insert(line);
            failures.push(format!(
                "line {line}: {}\n    expected {expected}\n    got      {}",
                cols[0],
                match &got {
                    Ok(v) => format!("value {v}"),
                    Err(e) => format!("error {}", e.message),
                }
            ));
        }
    }
    println!(
        "orquesta-expr-cases.tsv: {passed} passed, {} failed",
        failures.len()
    );
    for f in &failures {
        println!("{f}");
    }
    assert!(passed > 0);
    assert_only_listed_differ("orquesta-expr-cases.tsv", &failed_lines);
}

#[test]
fn values_are_walked_and_typed() {
    let evaluator = Evaluator::new();
    let data = serde_json::json!({"n": 5, "l": [1, 2], "name": "x"});
    let data = data.as_object().cloned().unwrap_or_default();
    let statement = serde_json::json!({
        "count": "<% ctx(n) %>",
        "items": ["{{ ctx('l') }}", "n=<% ctx(n) %>", 7, null],
        "<% ctx(name) %>": "{% if ctx('n') > 3 %}big{% endif %}",
    });
    let out = evaluator.evaluate(&statement, &data).expect("evaluates");
    assert_eq!(
        out,
        serde_json::json!({
            "count": 5,
            "items": [[1, 2], "n=5", 7, null],
            "x": "big",
        })
    );
}

#[test]
fn self_referencing_results_stop() {
    let evaluator = Evaluator::new();
    let data = serde_json::json!({"a": "<% ctx(a) %>", "j": "{{ ctx('j') }}"});
    let data = data.as_object().cloned().unwrap_or_default();
    assert!(evaluator.evaluate_text("<% ctx(a) %>", &data).is_err());
    assert!(evaluator.evaluate_text("{{ ctx('j') }}", &data).is_err());
}
