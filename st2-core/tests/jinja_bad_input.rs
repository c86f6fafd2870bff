//! Bad templates give an error, never a panic or a hang: deep nesting, huge repetition,
//! runaway loops and recursion, oversized padding and random garbage.

use proptest::prelude::*;
use serde_json::json;
use st2_core::expr::ErrorKind;
use st2_core::expr::jinja::{Jinja, JinjaConfig, RenderContext};

fn jinja() -> Jinja {
    Jinja::new(JinjaConfig::default())
}

fn ctx() -> RenderContext {
    let vars = json!({"l": [1, 2, 3], "s": "abc", "d": {"k": "v"}});
    RenderContext::new(vars.as_object().cloned().unwrap_or_default())
}

fn error_of(template: &str) -> ErrorKind {
    match jinja().render(template, &ctx()) {
        Ok(out) => panic!("{template:.60}: rendered {} bytes", out.len()),
        Err(e) => e.kind,
    }
}

#[test]
fn deep_nesting_is_a_syntax_error() {
    for (open, close) in [("(", ")"), ("[", "]"), ("{", "}")] {
        let t = format!("{{{{ {}1{} }}}}", open.repeat(10_000), close.repeat(10_000));
        assert_eq!(error_of(&t), ErrorKind::Syntax, "{open}");
    }
    let t = format!(
        "{}x{}",
        "{% if true %}".repeat(10_000),
        "{% endif %}".repeat(10_000)
    );
    assert_eq!(error_of(&t), ErrorKind::Syntax);
    for chain in [
        format!("{{{{ {}1 }}}}", "not ".repeat(10_000)),
        format!("{{{{ {}1 }}}}", "-".repeat(10_000)),
        format!("{{{{ 1{} }}}}", "|abs".repeat(10_000)),
        format!("{{{{ d{} }}}}", ".k".repeat(10_000)),
        format!("{{{{ 1{} }}}}", "+1".repeat(10_000)),
        format!("{{% set x = 1{} %}}", "~1".repeat(10_000)),
    ] {
        assert_eq!(error_of(&chain), ErrorKind::Syntax, "{chain:.20}");
        let inner = chain.trim_start_matches("{{").trim_end_matches("}}");
        assert!(jinja().eval(inner, &ctx()).is_err());
    }
    // A long flat list is not nesting.
    let list = format!("{{{{ [{}] | length }}}}", vec!["1"; 10_000].join(","));
    assert_eq!(jinja().render(&list, &ctx()).ok().as_deref(), Some("10000"));
}

#[test]
fn runaway_work_runs_out_of_budget() {
    for t in [
        "{{ 'a' * 1000000000 }}",
        "{{ 'ab' * 100000 * 100000 }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{{ s | indent(1000000000) }}",
    ] {
        assert_eq!(error_of(t), ErrorKind::Limit, "{t}");
    }
    assert_eq!(
        error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
        ErrorKind::Limit
    );
}

#[test]
fn oversized_results_are_refused() {
    for t in [
        "{{ range(1000000000) | list | length }}",
        "{{ l * 1000000000 }}",
        "{{ 10 ** 10 ** 10 }}",
        "{{ s | center(1000000000) }}",
        "{{ s.ljust(1000000000) }}",
        "{{ s.zfill(1000000000) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '%.999999999f' % 1.0 }}",
        "{{ range(0, 10, 0) | list }}",
        "{{ l | batch(0) | list }}",
    ] {
        let kind = error_of(t);
        assert_ne!(kind, ErrorKind::Syntax, "{t}");
    }
}

#[test]
fn large_but_legal_precision_matches_python() {
    // Python prints the exact binary expansion, then zeros.
    let out = jinja()
        .render("{{ '%.2000f' % 0.1 }}", &ctx())
        .unwrap_or_default();
    assert_eq!(out.len(), 2002);
    assert!(out.starts_with("0.1000000000000000055511151231257827021181583404541015625000"));
    assert!(out.ends_with("000"));
}

/// Pieces random templates are made of: the delimiters and syntax Jinja cares about.
const PIECES: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    "|",
    ".",
    ",",
    ":",
    "%",
    "*",
    "**",
    "-",
    "~",
    "=",
    "==",
    "if",
    "else",
    "endif",
    "for",
    "in",
    "endfor",
    "set",
    "macro",
    "endmacro",
    "call",
    "raw",
    "endraw",
    "not",
    "and",
    "or",
    "is",
    "l",
    "s",
    "d",
    "x",
    "1",
    "0",
    "2.5",
    "-",
    "upper",
    "join",
    "map",
    "attr",
    "range",
    "loop",
    "to_json_string",
    "regex_replace",
    "'%s'",
    "'%(k)s'",
    ".append(",
    ".update(",
    ".pop(",
    "varargs",
    "kwargs",
    "caller",
    "do",
    " ",
    "\n",
    "\\",
    "é",
];

fn template() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(PIECES), 0..40).prop_map(|v| v.concat()),
        ".{0,80}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_templates_never_panic(t in template()) {
        let j = jinja();
        let _ = j.check(&t);
        let _ = j.undeclared_variables(&t);
        let _ = j.render(&t, &ctx());
        let inner = t.trim_start_matches("{{").trim_end_matches("}}");
        let _ = j.eval(inner, &ctx());
    }
}

#[test]
fn values_nested_deep_by_a_loop_do_not_overflow_the_stack() {
    // Each iteration nests the carried value one level deeper; releasing (or printing) it
    // recurses once per level. 50,000 levels overflowed a 2 MiB thread stack before such
    // templates rendered on a thread of their own.
    let j = jinja();
    for t in [
        "{% set ns = namespace(cur=[]) %}{% for i in range(50000) %}{% set ns.cur = [ns.cur] %}{% endfor %}{{ ns.cur | length }}",
        "{% set s = [[]] %}{% for i in range(50000) %}{% set n = [] %}{% set _ = s[-1].append(n) %}\
         {% set _ = s.append(n) %}{% endfor %}{{ s[0] | length }}",
    ] {
        assert_eq!(j.render(t, &ctx()).ok().as_deref(), Some("1"), "{t:.40}");
    }
    // As deep as the operation budget allows: out of fuel, still no crash.
    let t = "{% set ns = namespace(cur=[]) %}{% for i in range(1000) %}{% for k in range(1000) %}\
             {% set ns.cur = [ns.cur] %}{% endfor %}{% endfor %}";
    assert_eq!(error_of(t), ErrorKind::Limit);
}
