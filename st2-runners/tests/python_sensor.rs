//! Contract: a pack's Python sensors run unchanged: a `PollingSensor` started by the engine
//! (through `EngineBuilder::sensor_factory`) polls, keeps state with `sensor_service`
//! `get_value`/`set_value` under `<pack>.<ClassName>:<name>`, and dispatches a trigger that a
//! rule turns into a `python-script` execution, which sees the pack config (configs dir values
//! and schema defaults). Run directly, a sensor's dispatches carry their trace tags, an
//! exception ends the run with its message, and a shutdown stops it after `cleanup()`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use st2_core::clock::SystemClock;
use st2_core::datastore::KeySelector;
use st2_core::engine::{Engine, EngineSettings};
use st2_core::loader::{LoadOptions, load};
use st2_core::runner::{Cancellation, RunnerRegistry};
use st2_core::sensor::{DispatchError, SensorContext, SensorFactory, TriggerDispatcher};
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionFilter, ExecutionStatus, Page, Store};
use st2_runners::{PythonRunner, PythonSettings};

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/engine")
        .join(path)
}

fn python(dir: &tempfile::TempDir) -> PythonRunner {
    PythonRunner::new(PythonSettings {
        runtime_dir: dir.path().join("runtime"),
        ..PythonSettings::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_sensor_dispatch_becomes_a_python_execution() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    );
    // The config's `region` is a template over this key: the sensor sees it rendered.
    st2_core::datastore::Datastore::new(store.clone(), None)
        .set(
            &st2_core::datastore::KeySelector::System,
            "sensor_region",
            st2_core::datastore::KeyWrite {
                value: "ap-south-1".into(),
                ..Default::default()
            },
        )
        .await
        .expect("set");
    let python = python(&dir);
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners).expect("register");
    runners
        .register("python-script", python.clone())
        .expect("register python");
    let engine = Engine::builder()
        .store(store)
        .pack_dir(fixture("pysensors"))
        .configs_dir(fixture("configs"))
        .runners(runners)
        .sensor_factory(python.sensor_factory())
        .settings(EngineSettings {
            heartbeat: Duration::from_millis(200),
            idle_poll: Duration::from_millis(100),
            ..EngineSettings::default()
        })
        .start()
        .await
        .expect("engine starts");
    assert!(
        engine.diagnostics().is_empty(),
        "{:?}",
        engine.diagnostics()
    );

    let filter = ExecutionFilter {
        action: Some("pysensors.record".to_owned()),
        ..ExecutionFilter::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let execution = loop {
        let found = engine.list(&filter, Page::all()).await.expect("list").items;
        if let Some(first) = found.into_iter().next() {
            break first;
        }
        assert!(
            Instant::now() < deadline,
            "no execution; sensors: {:?}",
            engine.sensor_statuses()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let done = engine
        .wait(&execution.id, Duration::from_secs(30))
        .await
        .expect("finishes");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    let result = done.result;
    assert_eq!(
        result["result"],
        json!({"count": 1, "region": "ap-south-1", "api_key": "from-the-configs-dir"})
    );

    let statuses = engine.sensor_statuses();
    let counting = statuses
        .iter()
        .find(|s| s.reference == "pysensors.CountingSensor")
        .expect("the enabled Python sensor runs");
    assert!(counting.running, "{counting:?}");
    assert!(
        statuses
            .iter()
            .all(|s| s.reference != "pysensors.OneShotSensor"),
        "disabled sensors are not started"
    );

    let datastore = engine.datastore();
    let count = datastore
        .get(
            &KeySelector::System,
            "pysensors.CountingSensor:count",
            false,
        )
        .await
        .expect("read")
        .expect("the sensor's key");
    assert_eq!(count.shown_value(), "1");
    let last = datastore
        .get(&KeySelector::System, "pysensors.RecordAction:last", false)
        .await
        .expect("read")
        .expect("the action's key");
    assert_eq!(last.shown_value(), "1");
    engine.shutdown().await;
}

/// Records dispatches; refuses unknown triggers.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(String, Value, Option<String>)>>);

#[async_trait]
impl TriggerDispatcher for Recorder {
    async fn dispatch(
        &self,
        trigger: &str,
        payload: Value,
        trace_tag: Option<String>,
    ) -> Result<String, DispatchError> {
        if trigger != "pysensors.event" {
            return Err(DispatchError::UnknownTrigger(trigger.to_owned()));
        }
        let mut seen = self.0.lock().expect("not poisoned");
        seen.push((trigger.to_owned(), payload, trace_tag));
        Ok(format!("ti-{}", seen.len()))
    }
}

fn direct(
    class: &str,
    config: Value,
    dir: &tempfile::TempDir,
) -> (
    Arc<dyn st2_core::sensor::Sensor>,
    SensorContext,
    Arc<Recorder>,
) {
    let report = load(&LoadOptions::default().pack_dir(fixture("pysensors")));
    let metadata = report
        .catalog
        .sensor(&format!("pysensors.{class}"))
        .expect("sensor metadata")
        .clone();
    let sensor = python(dir)
        .sensor_factory()
        .create(&metadata, Some(&fixture("pysensors")))
        .expect("a Python sensor");
    let recorder = Arc::new(Recorder::default());
    let config: Map<String, Value> = config.as_object().cloned().unwrap_or_default();
    let ctx = SensorContext::for_metadata(&metadata, recorder.clone(), Arc::new(SystemClock))
        .with_config(config);
    (sensor, ctx, recorder)
}

#[tokio::test]
async fn a_sensor_dispatches_with_trace_tags_and_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sensor, ctx, recorder) = direct("OneShotSensor", json!({}), &dir);
    sensor.run(ctx).await.expect("ends cleanly");
    let seen = recorder.0.lock().expect("not poisoned").clone();
    assert_eq!(
        seen,
        [(
            "pysensors.event".to_owned(),
            json!({"count": 1, "region": "here"}),
            Some("once".to_owned())
        )],
        "a refused dispatch is logged, not fatal"
    );
}

#[tokio::test]
async fn a_sensor_exception_ends_the_run_with_its_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sensor, ctx, _) = direct("BrokenSensor", json!({}), &dir);
    let error = sensor.run(ctx).await.expect_err("fails").to_string();
    assert!(error.contains("exited with code 1"), "{error}");
    assert!(error.contains("RuntimeError: sensor broke"), "{error}");
}

#[tokio::test]
async fn shutdown_stops_a_sensor_after_cleanup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = dir.path().join("started");
    let cleaned = dir.path().join("cleaned");
    let (sensor, ctx, _) = direct(
        "BlockingSensor",
        json!({"started_marker": started, "cleanup_marker": cleaned}),
        &dir,
    );
    let (stop, shutdown) = Cancellation::new();
    let run = tokio::spawn({
        let ctx = ctx.with_shutdown(shutdown);
        async move { sensor.run(ctx).await }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the sensor never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops in time")
        .expect("joins");
    assert!(ended.is_ok(), "{ended:?}");
    assert_eq!(
        std::fs::read_to_string(&cleaned).expect("cleanup ran"),
        "cleaned up"
    );
}
