//! Per-execution cost of `python-script` next to a bare `python3 -c pass`: runs a trivial
//! action (`pyactions.status`, one import of `Action`, a tuple returned) N times through the
//! runner and starts the bare interpreter N times, and prints the means and their ratio.
//!
//! `cargo bench -p st2-runners --bench python_overhead -- [N]`

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, json};
use st2_core::builtin;
use st2_core::clock::SystemClock;
use st2_core::loader::{LoadOptions, load};
use st2_core::runner::{Cancellation, DiscardOutput, RunContext, Runner};
use st2_core::store::ExecutionStatus;
use st2_runners::{PythonRunner, PythonSettings};

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(40);
    let packs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packs");
    let report = load(&LoadOptions::default().packs_dir(&packs));
    let action = report
        .catalog
        .action("pyactions.status")
        .expect("fixture action")
        .clone();
    let runner_type = builtin::runner_types()
        .into_iter()
        .find(|r| r.name == "python-script")
        .expect("built-in runner type");
    let runtime = tempfile::tempdir().expect("temp dir");
    let runner = PythonRunner::new(PythonSettings {
        runtime_dir: runtime.path().to_path_buf(),
        ..PythonSettings::default()
    });
    let context = || RunContext {
        execution_id: "bench".to_owned(),
        action: action.clone(),
        runner_type: Arc::new(runner_type.clone()),
        parameters: json!({"ok": true}).as_object().cloned().unwrap_or_default(),
        runner_parameters: Map::new(),
        context: Map::new(),
        pack_dir: Some(packs.join("pyactions")),
        config: Map::new(),
        env: BTreeMap::new(),
        shell_values: BTreeMap::new(),
        output: Arc::new(DiscardOutput),
        cancel: Cancellation::never(),
        clock: Arc::new(SystemClock),
        datastore: None,
        services: None,
        resume: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let python = String::from_utf8(
        Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3")
            .stdout,
    )
    .expect("utf-8")
    .trim()
    .to_owned();

    // Warm up both (shim written, bytecode cached, files in the page cache).
    for _ in 0..3 {
        let outcome = rt.block_on(runner.run(context())).expect("runs");
        assert_eq!(outcome.status, ExecutionStatus::Succeeded);
        bare(&python);
    }
    let mut action_total = Duration::ZERO;
    let mut bare_total = Duration::ZERO;
    // Interleaved, so load from other processes hits both alike.
    for _ in 0..n {
        let started = Instant::now();
        let outcome = rt.block_on(runner.run(context())).expect("runs");
        action_total += started.elapsed();
        assert_eq!(outcome.status, ExecutionStatus::Succeeded);
        let started = Instant::now();
        bare(&python);
        bare_total += started.elapsed();
    }
    let action_ms = action_total.as_secs_f64() * 1000.0 / f64::from(n);
    let bare_ms = bare_total.as_secs_f64() * 1000.0 / f64::from(n);
    println!(
        "python-script: {action_ms:.1} ms/execution, python3 -c pass: {bare_ms:.1} ms, ratio {:.2} (n={n}, {python})",
        action_ms / bare_ms
    );
}

fn bare(python: &str) {
    let status = Command::new(python)
        .args(["-c", "pass"])
        .stdin(Stdio::null())
        .status()
        .expect("python runs");
    assert!(status.success());
}
