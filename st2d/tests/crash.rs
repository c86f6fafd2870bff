//! Crash safety: an engine killed with SIGKILL mid-load and restarted on the same database
//! processes every accepted trigger instance, brings every execution to a final status, and
//! runs no action twice (each execution appends its id to a file at most once).

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionFilter, Page, Store, TriggerInstanceFilter, TriggerInstanceStatus};

fn bench(db: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_st2d"));
    cmd.args([
        "bench",
        "pipeline",
        "--action",
        "mix",
        "--lease-ms",
        "1000",
        "--db",
    ])
    .arg(db)
    .args(extra);
    cmd
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_killed_engine_loses_nothing_and_repeats_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("st2.db");
    let appended = dir.path().join("appended.txt");

    let mut child = bench(&db, &["--count", "600", "--rate", "150"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start st2d bench");
    // Kill it once it is well into the work, but before it is done.
    let started = Instant::now();
    while lines(&appended).len() < 40 && started.elapsed() < Duration::from_secs(60) {
        if let Some(status) = child.try_wait().expect("poll") {
            panic!("st2d ended before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let before = lines(&appended).len();
    assert!(before >= 40, "the load never got going");

    let resumed = bench(&db, &["--resume"]).output().expect("resume");
    assert!(
        resumed.status.success(),
        "resume failed: {}",
        String::from_utf8_lossy(&resumed.stderr)
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(SqliteOptions::file(&db))
                .await
                .expect("open"),
        );
        let instances = store
            .trigger_instances()
            .list(
                &TriggerInstanceFilter {
                    trigger: Some("bench.event".into()),
                    ..TriggerInstanceFilter::default()
                },
                Page::all(),
            )
            .await
            .expect("instances");
        assert!(!instances.items.is_empty());
        assert!(
            instances.items.len() < 600,
            "the kill came after all triggers were dispatched"
        );
        for ti in &instances.items {
            assert_eq!(ti.status, TriggerInstanceStatus::Processed, "{}", ti.id);
        }
        let executions = store
            .executions()
            .list(
                &ExecutionFilter {
                    trigger_type: Some("bench.event".into()),
                    ..ExecutionFilter::default()
                },
                Page::all(),
            )
            .await
            .expect("executions");
        assert_eq!(
            executions.items.len(),
            instances.items.len(),
            "one execution per accepted trigger instance"
        );
        let mut ids = HashSet::new();
        for e in &executions.items {
            assert!(e.status.is_completed(), "{} is {}", e.id, e.status);
            ids.insert(e.id.clone());
        }
        let appended = lines(&appended);
        let unique: HashSet<&String> = appended.iter().collect();
        assert_eq!(unique.len(), appended.len(), "an action ran twice");
        for id in &appended {
            assert!(ids.contains(id), "{id} is not a bench execution");
        }
        store.close().await.expect("close");
    });
}
