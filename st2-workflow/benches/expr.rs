//! Expression benchmarks: compile once, evaluate many times.
//!
//! `cargo bench -p st2-workflow --bench expr`, then `python3 tools/bench_expr.py` times the
//! same expressions with Python yaql 3.2.0 and Jinja2 3.1.6 and prints the ratios.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use st2_core::expr::Scope;
use st2_core::expr::jinja::{Jinja, JinjaConfig, RenderContext};
use st2_workflow::expression::Evaluator;
use st2_workflow::orquesta_yaql;

const YAQL_EXPR: &str = "ctx(items).where($.size > 2).select($.name)";
const JINJA_TEMPLATE: &str = "{{ trigger.host }}: {{ trigger.status | upper }} after \
    {{ trigger.checks | length }} checks ({{ trigger.checks | map(attribute='name') | join(', ') }})\
    {% if trigger.severity > 3 %} [critical]{% endif %}";

fn items() -> Map<String, Value> {
    let items: Vec<Value> = (0..100)
        .map(|i| json!({"name": format!("item{i}"), "size": i % 5}))
        .collect();
    let mut m = Map::new();
    m.insert("items".to_owned(), Value::Array(items));
    m
}

fn trigger() -> Map<String, Value> {
    let checks: Vec<Value> = (0..5)
        .map(|i| json!({"name": format!("check{i}"), "ok": i % 2 == 0}))
        .collect();
    let mut m = Map::new();
    m.insert(
        "trigger".to_owned(),
        json!({"host": "web-01.example.com", "status": "degraded", "severity": 4, "checks": checks}),
    );
    m
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("expr");

    let yaql = orquesta_yaql();
    let scope = Scope::from_context(&items());
    let compiled = yaql.compile(YAQL_EXPR).expect("compiles");
    let result = yaql.evaluate(&compiled, None, &scope).expect("evaluates");
    assert_eq!(result.to_json().as_array().map(Vec::len), Some(40));
    group.bench_function("yaql_where_select_100", |b| {
        b.iter(|| yaql.evaluate(black_box(&compiled), None, &scope))
    });
    group.bench_function("yaql_compile", |b| {
        b.iter(|| yaql.compile(black_box(YAQL_EXPR)))
    });

    // The workflow path: a whole value string, in a scope prepared once per task.
    let evaluator = Evaluator::new();
    let scope = std::sync::Arc::new(Scope::from_context(&items()));
    let text = Value::String(format!("<% {YAQL_EXPR} %>"));
    group.bench_function("orquesta_where_select_100", |b| {
        b.iter(|| evaluator.evaluate_in(black_box(&text), &scope))
    });

    let jinja = Jinja::new(JinjaConfig::default());
    let ctx = RenderContext::new(trigger());
    let out = jinja.render(JINJA_TEMPLATE, &ctx).expect("renders");
    assert!(out.ends_with("[critical]"), "{out}");
    group.bench_function("jinja_rule_parameter", |b| {
        b.iter(|| jinja.render(black_box(JINJA_TEMPLATE), &ctx))
    });
    group.finish();
}

criterion_group!(expr, benches);
criterion_main!(expr);
