//! Helpers shared by the conformance tests of every crate: reading `../shared/conformance`,
//! comparing values, and the cases `docs/compatibility.md` lists as differing from StackStorm.
//!
//! In `docs/compatibility.md`, every table row whose first cell names a conformance file (`jinja-cases.tsv`, ...) and
//! whose second cell is a line number is one listed case. Conformance tests fail both when an
//! unlisted case differs and when a listed case no longer differs, so the document and the
//! code cannot drift apart.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

/// `../shared/conformance`, beside the checkout (as in CI).
pub fn conformance_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance");
    assert!(
        dir.is_dir(),
        "missing {} (CI keeps ../shared beside the checkout)",
        dir.display()
    );
    dir
}

/// `../shared/conformance/<name>`, read whole.
pub fn conformance_file(name: &str) -> String {
    let path = conformance_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The cases of a conformance TSV: (line number, columns), comment and blank lines skipped.
pub fn tsv_cases(text: &str) -> Vec<(usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.split('\t').collect()))
        .collect()
}

/// Decode the cell escapes of `jinja-cases.tsv`: `\\`, `\t`, `\n`, `\r`.
pub fn unescape(cell: &str) -> String {
    let mut out = String::new();
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// JSON equality with ints and floats kept apart, `{"$set": [...]}` compared as sets and object
/// keys compared without order.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() != y.is_f64() {
                return false;
            }
            match (x.as_i64(), y.as_i64()) {
                (Some(p), Some(q)) => p == q,
                _ => x.as_f64() == y.as_f64() && x.as_u64() == y.as_u64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            if let (Some(Value::Array(p)), Some(Value::Array(q)), 1, 1) =
                (x.get("$set"), y.get("$set"), x.len(), y.len())
            {
                return p.len() == q.len()
                    && p.iter().all(|i| q.iter().any(|j| same(i, j)))
                    && q.iter().all(|j| p.iter().any(|i| same(i, j)));
            }
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Line numbers listed for `file` (e.g. `"jinja-cases.tsv"`).
pub fn listed_differences(file: &str) -> BTreeSet<usize> {
    let doc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/compatibility.md");
    let text = std::fs::read_to_string(&doc)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", doc.display()));
    let mut lines = BTreeSet::new();
    for row in text.lines() {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // "| file | line | ..." splits into ["", file, line, ...].
        if cells.len() < 4 || !cells[0].is_empty() {
            continue;
        }
        if cells[1].trim_matches('`') != file {
            continue;
        }
        let line: usize = cells[2]
            .parse()
            .unwrap_or_else(|_| panic!("{}: bad line number in row {row:?}", doc.display()));
        assert!(lines.insert(line), "{file}:{line} listed twice");
    }
    lines
}

/// Compare the cases that failed with the listed ones; panics naming every mismatch.
pub fn assert_only_listed_differ(file: &str, failed: &BTreeSet<usize>) {
    let listed = listed_differences(file);
    let unexpected: Vec<_> = failed.difference(&listed).collect();
    let fixed: Vec<_> = listed.difference(failed).collect();
    assert!(
        unexpected.is_empty() && fixed.is_empty(),
        "{file}: cases differing from StackStorm but not listed in docs/compatibility.md: \
         {unexpected:?}; listed there but now matching (remove them): {fixed:?}"
    );
}
