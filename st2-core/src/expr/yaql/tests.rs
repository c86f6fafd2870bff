//! Engine-level tests: semantics spot checks, resource limits, and a randomized robustness run.

use serde_json::{Value, json};

use super::{Limits, Yaql, YaqlValue};
use crate::expr::{ErrorKind, Scope};

fn data() -> YaqlValue {
    YaqlValue::from_json(&json!({"l": [3, 1, 2], "d": {"a": 1}, "s": "Hello"}))
}

fn eval_with(yaql: &Yaql, text: &str) -> Result<Value, ErrorKind> {
    yaql.evaluate_str(text, Some(&data()), &Scope::default())
        .map(|v| v.to_tagged_json())
        .map_err(|e| e.kind)
}

fn eval(text: &str) -> Result<Value, ErrorKind> {
    eval_with(&Yaql::new(), text)
}

/// Run `f` on a thread with a 2 MiB stack (the default for spawned threads).
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f);
    match handle {
        Ok(h) => assert!(h.join().is_ok(), "evaluation thread panicked"),
        Err(e) => panic!("cannot spawn: {e}"),
    }
}

#[test]
fn engine_and_values_are_shareable() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<Yaql>();
    shareable::<super::Expression>();
    shareable::<YaqlValue>();
}

#[test]
fn semantics_spot_checks() {
    let cases: &[(&str, Value)] = &[
        ("10 / 4", json!(2)),
        ("-7 mod 3", json!(2)),
        ("1 = 1.0 and true = 1", json!(true)),
        ("0 or 'x'", json!("x")),
        ("$.l.orderBy($).select($ * 2)", json!([2, 4, 6])),
        ("$.d.keys()", json!({"$set": ["a"]})),
        (
            "[1, 2].toDict($, $ * 10)",
            json!({"$dict": [[1, 10], [2, 20]]}),
        ),
        ("sequence(1, 2).take(3)", json!([1, 3, 5])),
        ("range(10).cycle().take(3)", json!([0, 1, 2])),
        ("let(x => 2) -> $x * $x", json!(4)),
        ("$.s.toUpper() + str(null)", json!("HELLOnull")),
        ("timespan(hours => 36).days", json!(1.5)),
        ("regex('(l+)(o)').search($.s, $3.start)", json!(4)),
    ];
    for (text, want) in cases {
        assert_eq!(eval(text).as_ref(), Ok(want), "{text}");
    }
    for (text, kind) in [
        ("'a' + 1", ErrorKind::NoMatchingFunction),
        ("foo()", ErrorKind::UnknownFunction),
        ("$.s.foo()", ErrorKind::UnknownFunction),
        ("$.d.missing", ErrorKind::Key),
        ("$.l[7]", ErrorKind::Index),
        ("1 / 0", ErrorKind::ZeroDivision),
        ("1.assert($ > 2)", ErrorKind::Assertion),
        ("int('x')", ErrorKind::Value),
        ("[].first()", ErrorKind::Value),
        ("{a => 1}.items()", ErrorKind::Type),
        ("1 +", ErrorKind::Syntax),
        ("__x", ErrorKind::Syntax),
    ] {
        assert_eq!(eval(text), Err(kind), "{text}");
    }
}

#[test]
fn unbound_dollar_is_null() {
    let yaql = Yaql::new();
    let scope = Scope::default();
    assert!(matches!(
        yaql.evaluate_str("$", None, &scope),
        Ok(YaqlValue::Null)
    ));
    let err = yaql.evaluate_str("$.x", None, &scope).err();
    assert_eq!(
        err.map(|e| e.message),
        Some("Unknown function \"#property#x\"".to_owned())
    );
}

#[test]
fn huge_results_hit_limits() {
    for text in [
        "'a' * 1000000000",
        "[1] * 1000000000",
        "range(1000000000000).toList()",
        "sequence()",
        "sequence().select($ * 2)",
        "[1, 2].cycle()",
        "generate(1, true, $ + 1)",
        "range(100000).aggregate([$1], [])",
        "def(f, f($)) -> f(1)",
        "('ab' * 4000000) + ('ab' * 4000000)",
        "range(100).select(range(100000).toList()).len()",
        "9223372036854775807 + 1",
        "let(x => 'x' * 9000000) -> range(100).select($x + $x).len()",
    ] {
        assert_eq!(eval(text), Err(ErrorKind::Limit), "{text}");
    }
}

#[test]
fn custom_limits_apply() {
    let tight = Yaql::new().with_limits(Limits {
        max_steps: 1000,
        ..Limits::default()
    });
    assert_eq!(eval_with(&tight, "range(10).sum()"), Ok(json!(45)));
    assert_eq!(
        eval_with(&tight, "range(10000).sum()"),
        Err(ErrorKind::Limit)
    );
}

#[test]
fn deep_recursion_stays_on_the_stack() {
    on_small_stack(|| {
        for text in [
            "def(f, f($)) -> f(1)".to_owned(),
            "def(f, [f($)]) -> f(1)".to_owned(),
            "def(f, [1].select(f($))) -> f(1)".to_owned(),
            "range(10000).aggregate($1.select($), []).toList()".to_owned(),
            "range(299).aggregate([$1], [])".to_owned(),
            "str(range(299).aggregate([$1], []))".to_owned(),
            "let(x => range(299).aggregate([$1], [])) -> [$x = $x.select($), $x.toSet()]"
                .to_owned(),
            "range(299).aggregate({a => $1}, {}).keys()".to_owned(),
            "range(10000).aggregate(let(p => $1), null)".to_owned(),
            format!("{}1{}", "(".repeat(199), ")".repeat(199)),
            format!("{}1{}", "[".repeat(199), "]".repeat(199)),
            format!("{}{}", "[1].select(".repeat(99), ")".repeat(99)),
            "(".repeat(10_000),
            "[".repeat(10_000),
            "{".repeat(10_000),
            format!("{}1", "-".repeat(10_000)),
            vec!["1"; 10_000].join(" + "),
        ] {
            let _ = eval(&text);
        }
    });
}

/// xorshift64*: deterministic pseudo-random numbers without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const CORPUS: &[&str] = &[
    "$.l.where($ > 1).select($ * 2)",
    "$.d.get(a, 9) + len($.l)",
    "let(x => $.l) -> $x.orderBy($).first()",
    "switch($.s = 'x' => 1, true => [2, {a => 3}])",
    "regex('(l+)').replaceBy($.s, $.value.toUpper())",
    "$.s.split('l').join('-')",
    "range(5).groupBy($ mod 2, $, [$[0], $[1].sum()])",
    "datetime(2020, 1, 2) + timespan(days => 1)",
    "set(1, 2).union(set(3)).toList()",
    "def(f, $ * 2) -> [1, 2].select(f($))",
    "$.l.enumerate().toDict($[0], $[1])",
    "sequence().take(5).aggregate($1 + $2)",
    "{a => 1}.mergeWith({b => [1, 2]})",
    "$.s.substring(1, 3).toLower() =~ 'el'",
    "not $.l.any($ > 5) or null",
    "[1, [2, [3]]].flatten().reverse()",
    "$.l.zip([4, 5]).selectMany($)",
];

const PIECES: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "?.",
    "=>",
    "->",
    "$",
    "$1",
    "$x",
    " ",
    "'a'",
    "\"b\"",
    "`c`",
    "1",
    "2.5",
    "-",
    "+",
    "*",
    "/",
    "mod",
    "=",
    "!=",
    "<",
    ">=",
    "=~",
    "and",
    "or",
    "not",
    "in",
    "true",
    "null",
    "select(",
    "where(",
    "len(",
    "let(",
    "def(",
    "range(",
    "sequence(",
    "cycle()",
    "take(",
    "toList()",
    "str(",
    "regex(",
    "x",
    "\\",
    "'",
    "__",
    "#",
    "@",
    "é",
    "\n",
];

#[test]
fn random_input_never_panics() {
    let yaql = Yaql::new().with_limits(Limits {
        max_steps: 20_000,
        ..Limits::default()
    });
    let scope = Scope::default();
    let data = data();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut outcomes = [0usize; 2];
    for i in 0..3000 {
        let text = if i % 2 == 0 {
            // Mutate a corpus expression: delete, duplicate or insert pieces.
            let base = CORPUS[rng.below(CORPUS.len())];
            let mut chars: Vec<char> = base.chars().collect();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(chars.len() + 1);
                match rng.below(3) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 => {
                        let piece = PIECES[rng.below(PIECES.len())];
                        for (k, c) in piece.chars().enumerate() {
                            chars.insert(at + k, c);
                        }
                    }
                    _ => {
                        let end = (at + rng.below(8)).min(chars.len());
                        let copy: Vec<char> = chars[at..end].to_vec();
                        for (k, c) in copy.into_iter().enumerate() {
                            chars.insert(at + k, c);
                        }
                    }
                }
            }
            chars.into_iter().collect::<String>()
        } else {
            (0..1 + rng.below(12))
                .map(|_| PIECES[rng.below(PIECES.len())])
                .collect::<String>()
        };
        let ok = yaql.evaluate_str(&text, Some(&data), &scope).is_ok();
        outcomes[usize::from(ok)] += 1;
    }
    // Both outcomes occur: the generator exercises evaluation, not only the parser.
    assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
}
