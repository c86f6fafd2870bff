//! Contract: `PythonRunner::prepare_pack` gives a pack with a `requirements.txt` its own
//! virtualenv (`<virtualenvs_dir>/<pack>`) with the requirements installed, and its actions
//! run there; when pip cannot install them (no index reachable) it reports why, leaves no
//! virtualenv behind and the pack runs on the system Python; a pack without
//! `requirements.txt` runs on the system Python.

mod common;

use std::path::Path;
use std::process::Command;

use common::Packs;
use serde_json::json;
use st2_core::runner::Runner;
use st2_core::store::ExecutionStatus;
use st2_runners::python::PackEnvironment;
use st2_runners::{PythonRunner, PythonSettings};

fn runner(dir: &Path) -> PythonRunner {
    PythonRunner::new(PythonSettings {
        runtime_dir: dir.join("runtime"),
        virtualenvs_dir: Some(dir.join("virtualenvs")),
        // Offline either way: the only requirement is a local wheel.
        pip_args: vec!["--no-index".to_owned()],
        ..PythonSettings::default()
    })
}

/// A minimal wheel of package `st2rs_fixture_dep` (VALUE = 42), built with the standard
/// library so no build tools or index are needed.
fn write_wheel(dir: &Path) -> std::path::PathBuf {
    let wheel = dir.join("st2rs_fixture_dep-1.0-py3-none-any.whl");
    let script = r#"
import sys, zipfile
files = {
    "st2rs_fixture_dep/__init__.py": "VALUE = 42\n",
    "st2rs_fixture_dep-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: st2rs-fixture-dep\nVersion: 1.0\n",
    "st2rs_fixture_dep-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = "".join("%s,,\n" % name for name in files) + "st2rs_fixture_dep-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
    z.writestr("st2rs_fixture_dep-1.0.dist-info/RECORD", record)
"#;
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&wheel)
        .status()
        .expect("python3 runs");
    assert!(status.success());
    wheel
}

async fn which(runner: &PythonRunner, packs: &Packs) -> serde_json::Value {
    let (ctx, _) = packs.context("venvpack.which", json!({}), json!({}));
    let outcome = runner.run(ctx).await.expect("runs");
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    outcome.result["result"].clone()
}

#[tokio::test]
async fn requirements_are_installed_into_the_packs_virtualenv() {
    let packs = Packs::load_from("tests/fixtures/venv");
    let dir = tempfile::tempdir().expect("temp dir");
    let runner = runner(dir.path());
    let pack_dir = packs.pack_dir("venvpack");

    // No requirements.txt: the system Python.
    assert_eq!(
        runner.prepare_pack("venvpack", &pack_dir).await,
        PackEnvironment::SystemPython
    );
    let before = which(&runner, &packs).await;
    assert_eq!(before["dependency"], json!(null));

    let wheel = write_wheel(dir.path());
    std::fs::write(
        pack_dir.join("requirements.txt"),
        format!("# the pack's dependency\n{}\n", wheel.display()),
    )
    .expect("write requirements");
    let venv = dir.path().join("virtualenvs").join("venvpack");
    match runner.prepare_pack("venvpack", &pack_dir).await {
        PackEnvironment::Virtualenv(path) => assert_eq!(path, venv),
        other => panic!("expected a virtualenv, got {other:?}"),
    }
    let after = which(&runner, &packs).await;
    assert_eq!(after["dependency"], json!(42));
    let prefix = std::fs::canonicalize(after["prefix"].as_str().expect("text")).expect("exists");
    assert_eq!(prefix, std::fs::canonicalize(&venv).expect("exists"));
}

#[tokio::test]
async fn an_unreachable_index_skips_the_virtualenv_with_a_message() {
    let packs = Packs::load_from("tests/fixtures/venv");
    let dir = tempfile::tempdir().expect("temp dir");
    let runner = runner(dir.path());
    let pack_dir = packs.pack_dir("venvpack");
    std::fs::write(
        pack_dir.join("requirements.txt"),
        "st2rs-no-such-package-anywhere==0.0.1\n",
    )
    .expect("write requirements");
    match runner.prepare_pack("venvpack", &pack_dir).await {
        PackEnvironment::Skipped(message) => {
            assert!(message.contains("pip install"), "{message}");
            assert!(message.contains("system Python"), "{message}");
        }
        other => panic!("expected a skipped virtualenv, got {other:?}"),
    }
    assert!(!dir.path().join("virtualenvs/venvpack").exists());
    let result = which(&runner, &packs).await;
    assert_eq!(
        result["dependency"],
        json!(null),
        "runs on the system Python"
    );
}
