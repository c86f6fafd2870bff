//! `st2d pack validate` prints one `path:line:col: severity: message` line per diagnostic and a
//! summary, or one JSON object with `--json`, and exits 0 without errors, 1 with, 2 on bad usage.

mod cli;

use std::path::Path;

use cli::{st2d, stdout, workspace};

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_example_pack_is_clean() {
    let out = st2d(&[
        "pack",
        "validate",
        "--packs-dir",
        "examples/packs",
        "--configs-dir",
        "examples/configs",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        "1 packs, 3 actions, 3 rules, 1 sensors, 2 trigger types, 1 policies, 1 aliases; 0 errors, 0 warnings\n"
    );
}

#[test]
fn problems_are_printed_compiler_style_and_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "p/pack.yaml",
        "name: p\ndescription: d\nversion: 0.1.0\nauthor: a\n",
    );
    write(root, "p/actions/ok.yaml", "name: ok\nrunner_type: noop\n");
    write(
        root,
        "p/actions/bad.yaml",
        "name: bad\nrunner_type: noop\nenabled: maybe\n",
    );
    write(
        root,
        "p/actions/warn.yaml",
        "name: warn\nrunner_type: noop\nparameters:\n  port:\n    type: string\n    default: 80\n",
    );
    let packs_dir = root.to_str().unwrap();
    let out = st2d(&["pack", "validate", "--packs-dir", packs_dir]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        lines[0],
        format!(
            "{}:3:10: error: `enabled` must be a boolean, not a string (\"maybe\")",
            root.join("p/actions/bad.yaml").display()
        )
    );
    assert!(lines[1].starts_with(&format!(
        "{}:6:14: warning: default an integer (80)",
        root.join("p/actions/warn.yaml").display()
    )));
    assert_eq!(
        lines[2],
        "1 packs, 2 actions, 0 rules, 0 sensors, 0 trigger types, 0 policies, 0 aliases; 1 errors, 1 warnings"
    );

    // Warnings alone do not fail the run.
    std::fs::remove_file(root.join("p/actions/bad.yaml")).unwrap();
    let out = st2d(&["pack", "validate", "--packs-dir", packs_dir]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn json_output_lists_packs_and_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "p/pack.yaml",
        "name: p\ndescription: d\nversion: 0.1.0\nauthor: a\n",
    );
    write(root, "p/actions/a.yaml", "name: a\nrunner_type: nope\n");
    write(root, "p/actions/b.yaml", "name: b\nrunner_type: noop\n");
    write(
        root,
        "p/rules/r.yaml",
        "name: r\ntrigger:\n  type: core.st2.webhook\n  parameters: {url: x}\naction:\n  ref: p.b\n",
    );
    let out = st2d(&[
        "pack",
        "validate",
        "--json",
        root.join("p").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["packs"],
        serde_json::json!({"p": {
            "actions": ["p.b"], "rules": ["p.r"], "sensors": [], "trigger_types": [],
            "policies": [], "aliases": []
        }})
    );
    let d = &v["diagnostics"][0];
    assert_eq!(
        d["file"],
        root.join("p/actions/a.yaml").display().to_string()
    );
    assert_eq!(d["line"], 2);
    assert_eq!(d["column"], 14);
    assert_eq!(d["severity"], "error");
    assert!(d["message"].as_str().unwrap().contains("`nope`"));
    assert_eq!(v["diagnostics"].as_array().unwrap().len(), 1);
}

#[test]
fn the_corpus_validates_with_only_the_files_stackstorm_rejects() {
    let corpus = workspace().join("../shared/corpus");
    let out = st2d(&[
        "pack",
        "validate",
        "--packs-dir",
        corpus.join("packs").to_str().unwrap(),
        "--configs-dir",
        corpus.join("configs").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.ends_with(
            "36 packs, 4822 actions, 13 rules, 49 sensors, 50 trigger types, 3 policies, 38 aliases; 6 errors, 64 warnings\n"
        ),
        "{}",
        text.lines().last().unwrap_or_default()
    );
}

#[test]
fn bad_usage_and_missing_directories() {
    let out = st2d(&["pack", "validate", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = st2d(&["pack", "validate", "--packs-dir", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("/nonexistent:1:1: error: cannot read packs directory"));
    let out = st2d(&[
        "pack",
        "validate",
        "--max-file-size",
        "10",
        "examples/packs/hello_st2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("larger than the 10-byte limit"));
}
