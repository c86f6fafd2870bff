//! The `inquirer` and `announcement` runners under the engine: `core.ask` waits `pending`
//! until a valid response from an allowed user (or its ttl) ends it, with the inquiry trigger
//! dispatched; announcements reach the event stream; pause is refused for runners that
//! cannot pause.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::{Map, Value, json};
use st2_core::clock::ManualClock;
use st2_core::engine::{Engine, EngineError, EngineEvent, EngineSettings};
use st2_core::runner::RunnerRegistry;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionStatus, InquiryStatus, Page, Store, TriggerInstanceFilter};

const WAIT: Duration = Duration::from_secs(30);

fn params(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

struct Setup {
    engine: Engine,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
}

async fn engine() -> Setup {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    );
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("a time"),
    ));
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners).expect("register");
    let engine = Engine::builder()
        .store(store.clone())
        .pack_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine/asks"))
        .runners(runners)
        .clock(clock.clone())
        .settings(EngineSettings {
            heartbeat: Duration::from_millis(200),
            idle_poll: Duration::from_millis(100),
            inquiry_check: Duration::from_millis(50),
            ..EngineSettings::default()
        })
        .start()
        .await
        .expect("engine starts");
    Setup {
        engine,
        store,
        clock,
    }
}

/// Wait until execution `id` has `status` (pending is not completed, so `Engine::wait` does
/// not apply).
async fn wait_for_status(engine: &Engine, id: &str, status: ExecutionStatus) -> Value {
    for _ in 0..600 {
        let record = engine.get(id).await.expect("get").expect("exists");
        if record.status == status {
            return record.result;
        }
        assert!(
            !record.status.is_completed(),
            "ended {} instead: {}",
            record.status,
            record.result
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("execution {id} never reached {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_ask_waits_for_a_valid_response() {
    let Setup { engine, store, .. } = engine().await;
    let ask = engine
        .run("core.ask", Map::new(), Map::new())
        .await
        .expect("runs");
    let result = wait_for_status(&engine, &ask.id, ExecutionStatus::Pending).await;
    assert_eq!(result["ttl"], json!(1440));
    assert_eq!(result["route"], json!(""));
    assert_eq!(result["users"], json!([]));
    assert_eq!(
        result["schema"]["properties"]["continue"]["type"],
        json!("boolean"),
        "StackStorm's default schema"
    );
    let inquiry = store
        .inquiries()
        .get(&ask.id)
        .await
        .expect("store")
        .expect("the inquiry has the execution's id");
    assert_eq!(inquiry.status, InquiryStatus::Pending);
    // The inquiry trigger went out with the id and route.
    let filter = TriggerInstanceFilter {
        trigger: Some("core.st2.generic.inquiry".to_owned()),
        ..TriggerInstanceFilter::default()
    };
    let instances = store
        .trigger_instances()
        .list(&filter, Page::all())
        .await
        .expect("list")
        .items;
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].payload, json!({"id": ask.id, "route": ""}));

    // A response that does not fit the schema leaves it pending.
    let bad = engine
        .respond_inquiry(&ask.id, json!({"continue": "yes please"}), "someone")
        .await;
    assert!(
        matches!(&bad, Err(EngineError::InvalidState(m)) if m.contains("schema")),
        "{bad:?}"
    );
    wait_for_status(&engine, &ask.id, ExecutionStatus::Pending).await;

    let done = engine
        .respond_inquiry(&ask.id, json!({"continue": true}), "someone")
        .await
        .expect("responds");
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.result["response"], json!({"continue": true}));
    assert_eq!(
        done.result["ttl"],
        json!(1440),
        "the earlier result is kept"
    );
    let again = engine
        .respond_inquiry(&ask.id, json!({"continue": false}), "someone")
        .await;
    assert!(
        matches!(&again, Err(EngineError::InvalidState(m)) if m.contains("already")),
        "{again:?}"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_listed_users_may_respond() {
    let Setup { engine, .. } = engine().await;
    let ask = engine
        .run("asks.approve", Map::new(), Map::new())
        .await
        .expect("runs");
    let result = wait_for_status(&engine, &ask.id, ExecutionStatus::Pending).await;
    assert_eq!(result["route"], json!("approvals"));
    assert_eq!(result["users"], json!(["ops"]));
    let refused = engine
        .respond_inquiry(&ask.id, json!({"approved": true}), "mallory")
        .await;
    assert!(
        matches!(&refused, Err(EngineError::InvalidState(m)) if m.contains("permission")),
        "{refused:?}"
    );
    let missing = engine
        .respond_inquiry(&ask.id, json!({"reason": "no field approved"}), "ops")
        .await;
    assert!(missing.is_err(), "a required property is missing");
    let done = engine
        .respond_inquiry(
            &ask.id,
            json!({"approved": true, "reason": "ship it"}),
            "ops",
        )
        .await
        .expect("responds");
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inquiry_times_out_after_its_ttl() {
    let Setup {
        engine,
        store,
        clock,
    } = engine().await;
    let ask = engine
        .run("asks.approve", Map::new(), Map::new())
        .await
        .expect("runs");
    wait_for_status(&engine, &ask.id, ExecutionStatus::Pending).await;
    // Five whole minutes is not more than a ttl of 5.
    clock.advance(TimeDelta::seconds(5 * 60 + 59));
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_for_status(&engine, &ask.id, ExecutionStatus::Pending).await;
    clock.advance(TimeDelta::seconds(2));
    let done = engine.wait(&ask.id, WAIT).await.expect("times out");
    assert_eq!(done.status, ExecutionStatus::Timeout);
    assert_eq!(done.result["route"], json!("approvals"), "result kept");
    let inquiry = store
        .inquiries()
        .get(&ask.id)
        .await
        .expect("store")
        .expect("exists");
    assert_eq!(inquiry.status, InquiryStatus::Timeout);
    let late = engine
        .respond_inquiry(&ask.id, json!({"approved": true}), "ops")
        .await;
    assert!(
        matches!(&late, Err(EngineError::InvalidState(m)) if m.contains("timed out")),
        "{late:?}"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_reach_the_event_stream() {
    let Setup { engine, .. } = engine().await;
    let mut events = engine.subscribe();
    let run = engine
        .run(
            "asks.shout",
            params(json!({"text": "disk full"})),
            Map::new(),
        )
        .await
        .expect("runs");
    let done = engine.wait(&run.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    let payload = json!({"text": "disk full", "level": 3});
    assert_eq!(
        done.result,
        json!({"output": payload, "text": "disk full", "level": 3})
    );
    let announced = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(e @ EngineEvent::Announcement { .. }) => return e,
                Ok(_) => continue,
                Err(e) => panic!("stream ended: {e}"),
            }
        }
    })
    .await
    .expect("announced");
    assert_eq!(announced.name(), "st2.announcement__alerts");
    let EngineEvent::Announcement { payload: got, .. } = announced else {
        unreachable!()
    };
    assert_eq!(got, payload);

    // Without the experimental flag StackStorm refuses to run it.
    let off = engine
        .run(
            "asks.announce_off",
            params(json!({"message": "hi"})),
            Map::new(),
        )
        .await
        .expect("runs");
    let done = engine.wait(&off.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(
        done.result["error"],
        json!("Experimental flag is missing for action asks.announce_off")
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_needs_a_runner_that_can_pause() {
    let Setup { engine, .. } = engine().await;
    let run = engine
        .run("core.local", params(json!({"cmd": "sleep 5"})), Map::new())
        .await
        .expect("runs");
    wait_for_status(&engine, &run.id, ExecutionStatus::Running).await;
    let refused = engine.pause(&run.id, "someone").await;
    assert!(
        matches!(&refused, Err(EngineError::InvalidState(m)) if m.contains("does not support pause")),
        "{refused:?}"
    );
    let refused = engine.resume(&run.id, "someone").await;
    assert!(refused.is_err(), "{refused:?}");
    engine.cancel(&run.id, "someone").await.expect("cancels");
    let done = engine.wait(&run.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Canceled);
    engine.shutdown().await;
}
