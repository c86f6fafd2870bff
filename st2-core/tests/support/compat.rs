//! The conformance cases `docs/compatibility.md` lists as differing from StackStorm.
//!
//! Every table row whose first cell names a conformance file (`jinja-cases.tsv`, ...) and
//! whose second cell is a line number is one listed case. Conformance tests fail both when an
//! unlisted case differs and when a listed case no longer differs, so the document and the
//! code cannot drift apart.

use std::collections::BTreeSet;
use std::path::PathBuf;

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
