//! Random YAQL never panics: it parses or fails with an error, and what parses evaluates to a
//! value or an error. (Hostile inputs -- deep nesting, huge repetitions, endless sequences --
//! are tested next to the engine, in `src/expr/yaql/tests.rs`.)

use proptest::prelude::*;
use serde_json::json;
use st2_core::expr::Scope;
use st2_core::expr::yaql::{Yaql, YaqlValue};

/// Pieces random expressions are made of: YAQL's tokens, operators, functions and literals.
const PIECES: &[&str] = &[
    "$",
    "$.",
    "$x",
    "$1",
    ".",
    "?.",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=>",
    "->",
    "+",
    "-",
    "*",
    "/",
    "mod",
    "=",
    "!=",
    "<",
    ">",
    "<=",
    ">=",
    "in",
    "and",
    "or",
    "not",
    "=~",
    "!~",
    "'a'",
    "\"b\"",
    "`c`",
    "1",
    "0",
    "2.5",
    "-3",
    "true",
    "false",
    "null",
    "x",
    "len",
    "where",
    "select",
    "orderBy",
    "groupBy",
    "distinct",
    "range",
    "sequence",
    "dict",
    "list",
    "set",
    "toList",
    "join",
    "split",
    "regex",
    "let",
    "def",
    "switch",
    "sum",
    "max",
    "aggregate",
    "first",
    "take",
    "skip",
    "flatten",
    "datetime",
    "timespan",
    "str",
    "int",
    "float",
    " ",
    "\n",
    "\\",
    "é",
    "__x",
];

fn expression() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(PIECES), 0..30).prop_map(|v| v.concat()),
        ".{0,60}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_expressions_never_panic(text in expression()) {
        let yaql = Yaql::new();
        let data = YaqlValue::from_json(&json!({"a": [1, 2, 3], "b": {"c": "d"}, "s": "text"}));
        if let Ok(expr) = yaql.compile(&text) {
            let _ = yaql.evaluate(&expr, Some(&data), &Scope::default());
        }
    }
}
