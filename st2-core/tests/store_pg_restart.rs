//! A PostgreSQL restart in the middle of work: while the server is down calls fail with
//! `Unavailable` (never a panic, never an acknowledged write that was lost), and once it is back
//! the same store works again without being reopened.
//!
//! Needs `ST2_TEST_PG_URL` and `ST2_TEST_PG_RESTART_CMD` (a shell command that restarts that
//! server; `.ci/run` sets both). Alone in its test binary, so no other test sees the restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use st2_core::clock::SystemClock;
use st2_core::store::postgres::{PgOptions, PgStore};
use st2_core::store::*;

fn execution(id: &str) -> ExecutionRecord {
    ExecutionRecord {
        id: id.to_owned(),
        revision: 0,
        action_ref: "core.noop".into(),
        action: json!({"ref": "core.noop"}).into(),
        runner: json!({"name": "noop"}).into(),
        status: ExecutionStatus::Requested,
        parameters: Default::default(),
        result: json!({}),
        context: Default::default(),
        parent: None,
        children: Vec::new(),
        start_timestamp: Utc::now(),
        end_timestamp: None,
        log: Vec::new(),
        delay: None,
        notify: None,
        runner_info: None,
        rule: None,
        trigger: None,
        trigger_type: None,
        trigger_instance: None,
        workflow_execution: None,
        task_execution: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_survives_a_server_restart() {
    let (Ok(url), Ok(restart)) = (
        std::env::var("ST2_TEST_PG_URL"),
        std::env::var("ST2_TEST_PG_RESTART_CMD"),
    ) else {
        eprintln!(
            "ST2_TEST_PG_URL or ST2_TEST_PG_RESTART_CMD is not set: skipping the restart test"
        );
        return;
    };
    let store = Arc::new(
        PgStore::connect(
            PgOptions::new(url)
                .schema(format!("st2restart_{}", new_id()))
                .with_clock(Arc::new(SystemClock))
                .acquire_timeout(Duration::from_secs(2)),
        )
        .await
        .expect("connect"),
    );

    // A writer that keeps creating executions through the restart.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let store = store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut failures = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = format!("r{n:06}");
                match store.executions().create(&execution(&id)).await {
                    Ok(_) => acknowledged.push((id, Instant::now())),
                    Err(e) => failures.push(e),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (acknowledged, failures)
        })
    };

    tokio::time::sleep(Duration::from_millis(300)).await;
    let restarted_at = Instant::now();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&restart)
        .status()
        .await
        .expect("run the restart command");
    assert!(status.success(), "{restart:?} failed: {status}");

    // Wait until writes succeed again (the store reconnects by itself), then a little more.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if store
            .executions()
            .create(&execution(&format!("probe-{}", new_id())))
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the store never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failures) = writer.await.expect("the writer did not panic");

    for e in &failures {
        assert!(
            e.is_transient(),
            "a failure during the restart must be Unavailable: {e:?}"
        );
    }
    assert!(
        acknowledged.iter().any(|(_, at)| *at > restarted_at),
        "writes succeed after the restart"
    );
    // Every acknowledged write is there.
    for (id, _) in &acknowledged {
        assert!(
            store.executions().get(id).await.expect("get").is_some(),
            "acknowledged write {id} was lost"
        );
    }
    eprintln!(
        "restart: {} writes acknowledged, {} refused as unavailable",
        acknowledged.len(),
        failures.len()
    );
    store.drop_schema().await.expect("drop the test schema");
}
