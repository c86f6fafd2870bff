//! Every case of `../shared/conformance/jinja-cases.tsv` (recorded from StackStorm's own Jinja
//! environment) renders to the same text here, or fails where StackStorm fails.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};
use st2_core::crypto::CryptoKey;
use st2_core::datastore::{KvScope, MemoryKeyValues};
use st2_core::expr::jinja::{Jinja, JinjaConfig, KvAccess, RenderContext};
use support::conformance::{assert_only_listed_differ, conformance_dir, unescape};

mod support {
    pub mod conformance;
}

#[test]
fn jinja_cases_render_as_in_stackstorm() {
    let dir = conformance_dir();
    let key = Arc::new(CryptoKey::load(&dir.join("st2-test-crypto-key.json")).unwrap());
    let jinja = Jinja::new(JinjaConfig {
        crypto_key: Some(key),
        ..JinjaConfig::default()
    });
    let text = std::fs::read_to_string(dir.join("jinja-cases.tsv")).unwrap();
    let (mut passed, mut failed) = (0, Vec::new());
    let mut failed_lines = BTreeSet::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let cells: Vec<&str> = line.split('\t').collect();
        assert_eq!(cells.len(), 3, "line {}: {line}", n + 1);
        let template = unescape(cells[0]);
        let mut context: Map<String, Value> = serde_json::from_str(cells[1]).unwrap();
        let expected: Value = serde_json::from_str(cells[2]).unwrap();
        let store = Arc::new(MemoryKeyValues::new());
        if let Some(Value::Object(kv)) = context.remove("st2kv") {
            for (scope, items) in kv {
                let scope = if scope == "user" {
                    KvScope::User("stanley".into())
                } else {
                    KvScope::System
                };
                for (k, v) in items.as_object().cloned().unwrap_or_default() {
                    store.set(scope.clone(), k, v.as_str().unwrap_or_default());
                }
            }
        }
        let ctx = RenderContext::new(context).with_kv(KvAccess {
            store,
            user: Some("stanley".into()),
            legacy_system: false,
        });
        let got = jinja.render(&template, &ctx);
        let ok = match (&got, expected.get("value")) {
            (Ok(text), Some(Value::String(want))) => text == want,
            (Err(_), None) => true,
            _ => false,
        };
        if ok {
            passed += 1;
        } else {
            failed_lines.insert(n + 1);
            failed.push(format!(
                "line {}: {template:?}\n    expected {expected}\n    got      {}",
                n + 1,
                match &got {
                    Ok(t) => format!("{t:?}"),
                    Err(e) => format!(
                        "error {:?}: {}",
                        e.kind,
                        e.message.lines().next().unwrap_or_default()
                    ),
                }
            ));
        }
    }
    println!("jinja-cases.tsv: {passed} passed, {} failed", failed.len());
    for f in &failed {
        println!("{f}");
    }
    assert_only_listed_differ("jinja-cases.tsv", &failed_lines);
}
