//! The `Sensor` extension point: StackStorm's supervision (spawn/exit triggers, respawn only after failures, at most 2 in a row with 2.5 s × n delays, a row reset after 10 s up, panics as exit code 1, shutdown grace), the `sensor_service` datastore semantics (local `<pack>.<Class>:<name>` names, system scope, secrets), polling sensors and the registry.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta};
use serde_json::{Value, json};
use st2_core::clock::{Clock, ManualClock};
use st2_core::crypto::CryptoKey;
use st2_core::datastore::{Datastore, KeyValueError};
use st2_core::runner::Cancellation;
use st2_core::sensor::{
    DispatchError, Poll, Polling, RegisterSensorError, SENSOR_EXIT_TRIGGER, SENSOR_SPAWN_TRIGGER,
    Sensor, SensorContext, SensorError, SensorRegistry, SensorState, SensorStatus,
    SensorSupervisor, SupervisorError, SupervisorSettings, TriggerDispatcher,
};
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{KeyScope, Store};
use tokio::time::Instant;

const EPOCH: i64 = 1_750_000_000;

/// Records every dispatch; optionally refuses the supervisor's own triggers.
#[derive(Debug, Default)]
struct Recorder {
    dispatched: Mutex<Vec<(String, Value, Option<String>)>>,
    refuse_supervision_triggers: bool,
}

#[async_trait]
impl TriggerDispatcher for Recorder {
    async fn dispatch(
        &self,
        trigger: &str,
        payload: Value,
        trace_tag: Option<String>,
    ) -> Result<String, DispatchError> {
        if self.refuse_supervision_triggers && trigger.starts_with("core.st2.sensor.") {
            return Err(DispatchError::Unavailable("store is down".into()));
        }
        let mut dispatched = self.dispatched.lock().expect("not poisoned");
        dispatched.push((trigger.to_owned(), payload, trace_tag));
        Ok(format!("ti-{}", dispatched.len()))
    }
}

impl Recorder {
    fn triggers(&self) -> Vec<String> {
        let dispatched = self.dispatched.lock().expect("not poisoned");
        dispatched.iter().map(|(t, _, _)| t.clone()).collect()
    }

    fn payloads(&self, trigger: &str) -> Vec<Value> {
        let dispatched = self.dispatched.lock().expect("not poisoned");
        dispatched
            .iter()
            .filter(|(t, _, _)| t == trigger)
            .map(|(_, p, _)| p.clone())
            .collect()
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        DateTime::from_timestamp(EPOCH, 0).expect("valid"),
    ))
}

fn context(class_name: &str, recorder: &Arc<Recorder>) -> SensorContext {
    SensorContext::new("examples", class_name, recorder.clone(), clock())
}

/// Wait (in Tokio time, paused in these tests) until `reference` satisfies `done`.
async fn wait_for(
    supervisor: &SensorSupervisor,
    reference: &str,
    done: impl Fn(&SensorStatus) -> bool,
) -> SensorStatus {
    for _ in 0..100_000 {
        if let Some(status) = supervisor.status(reference)
            && done(&status)
        {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{reference} never reached the expected state");
}

fn ended(status: &SensorStatus) -> bool {
    matches!(
        status.state,
        SensorState::Exited | SensorState::GaveUp | SensorState::Stopped
    )
}

/// Dispatches three triggers, then returns Ok.
#[derive(Debug)]
struct Counter;

#[async_trait]
impl Sensor for Counter {
    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError> {
        for n in 0..3 {
            ctx.dispatch("examples.count", json!({"n": n})).await?;
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_sensor_that_returns_ok_gets_spawn_and_exit_0_and_is_not_respawned() {
    let recorder = Arc::new(Recorder::default());
    let supervisor = SensorSupervisor::new(SupervisorSettings::default());
    supervisor
        .start(Arc::new(Counter), context("Counter", &recorder))
        .expect("start");

    let status = wait_for(&supervisor, "examples.Counter", ended).await;
    tokio::time::sleep(Duration::from_secs(60)).await;

    assert_eq!(
        recorder.triggers(),
        [
            SENSOR_SPAWN_TRIGGER,
            "examples.count",
            "examples.count",
            "examples.count",
            SENSOR_EXIT_TRIGGER
        ]
    );
    assert_eq!(
        recorder.payloads(SENSOR_SPAWN_TRIGGER),
        [json!({
            "id": "Counter",
            "timestamp": EPOCH,
            "pid": std::process::id(),
            "cmd": "examples.Counter",
        })]
    );
    assert_eq!(
        recorder.payloads(SENSOR_EXIT_TRIGGER),
        [json!({"id": "Counter", "timestamp": EPOCH, "exit_code": 0})]
    );
    assert_eq!(
        recorder.payloads("examples.count"),
        [json!({"n": 0}), json!({"n": 1}), json!({"n": 2})]
    );
    assert_eq!(
        status,
        SensorStatus {
            reference: "examples.Counter".into(),
            running: false,
            state: SensorState::Exited,
            restarts: 0,
            last_exit_code: Some(0),
            last_error: None,
            last_dispatch_error: None,
        }
    );
    assert_eq!(supervisor.statuses(), [status]);
}

/// Fails each run after staying up for the next duration of its script (the last one repeats).
#[derive(Debug)]
struct Flaky {
    uptimes: Vec<Duration>,
    starts: Mutex<Vec<Instant>>,
}

impl Flaky {
    fn new(uptimes: &[u64]) -> Self {
        Self {
            uptimes: uptimes.iter().map(|s| Duration::from_secs(*s)).collect(),
            starts: Mutex::new(Vec::new()),
        }
    }

    fn gaps(&self) -> Vec<Duration> {
        let starts = self.starts.lock().expect("not poisoned");
        starts.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[async_trait]
impl Sensor for Flaky {
    async fn run(&self, _ctx: SensorContext) -> Result<(), SensorError> {
        let attempt = {
            let mut starts = self.starts.lock().expect("not poisoned");
            starts.push(Instant::now());
            starts.len() - 1
        };
        let uptime = self.uptimes[attempt.min(self.uptimes.len() - 1)];
        tokio::time::sleep(uptime).await;
        Err(SensorError::Failed(format!("attempt {attempt} failed")))
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_sensor_is_respawned_twice_with_growing_delays_then_given_up() {
    let recorder = Arc::new(Recorder::default());
    let supervisor = SensorSupervisor::new(SupervisorSettings::default());
    let sensor = Arc::new(Flaky::new(&[0]));
    supervisor
        .start(sensor.clone(), context("Flaky", &recorder))
        .expect("start");

    let status = wait_for(&supervisor, "examples.Flaky", ended).await;
    tokio::time::sleep(Duration::from_secs(60)).await;

    assert_eq!(
        sensor.gaps(),
        [Duration::from_millis(2500), Duration::from_millis(5000)]
    );
    assert_eq!(recorder.payloads(SENSOR_SPAWN_TRIGGER).len(), 3);
    assert_eq!(
        recorder.payloads(SENSOR_EXIT_TRIGGER),
        vec![json!({"id": "Flaky", "timestamp": EPOCH, "exit_code": 1}); 3]
    );
    assert_eq!(status.state, SensorState::GaveUp);
    assert!(!status.running);
    assert_eq!(status.restarts, 2);
    assert_eq!(status.last_exit_code, Some(1));
    assert_eq!(status.last_error.as_deref(), Some("attempt 2 failed"));
}

#[tokio::test(start_paused = true)]
async fn a_sensor_staying_up_past_the_threshold_starts_a_new_row_of_respawns() {
    let recorder = Arc::new(Recorder::default());
    let supervisor = SensorSupervisor::new(SupervisorSettings::default());
    // Fails at once twice, then stays up 11 s (past the 10 s threshold), then fails at once.
    let sensor = Arc::new(Flaky::new(&[0, 0, 11, 0]));
    supervisor
        .start(sensor.clone(), context("Flaky", &recorder))
        .expect("start");

    let status = wait_for(&supervisor, "examples.Flaky", ended).await;

    let s = Duration::from_millis;
    assert_eq!(
        sensor.gaps(),
        [s(2500), s(5000), s(11_000 + 2500), s(5000)],
        "the row restarts at 1 × 2.5 s after the long run"
    );
    assert_eq!(status.state, SensorState::GaveUp);
    assert_eq!(status.restarts, 4);
    assert_eq!(recorder.payloads(SENSOR_EXIT_TRIGGER).len(), 5);
}

#[tokio::test(start_paused = true)]
async fn sensor_restart_threshold_and_delays_are_settings() {
    let recorder = Arc::new(Recorder::default());
    let supervisor = SensorSupervisor::new(SupervisorSettings {
        max_respawns: 3,
        respawn_delay: Duration::from_millis(10),
        successful_start_threshold: Duration::from_secs(1),
        shutdown_grace: Duration::from_millis(50),
    });
    let sensor = Arc::new(Flaky::new(&[0, 2, 0]));
    supervisor
        .start(sensor.clone(), context("Flaky", &recorder))
        .expect("start");

    let status = wait_for(&supervisor, "examples.Flaky", ended).await;

    let ms = Duration::from_millis;
    assert_eq!(
        sensor.gaps(),
        [ms(10), ms(2000 + 10), ms(20), ms(30)],
        "after the 2 s run (past the 1 s threshold) the row starts again"
    );
    assert_eq!(status.restarts, 4);
}

/// Panics on every run.
#[derive(Debug)]
struct Panicky;

#[async_trait]
impl Sensor for Panicky {
    async fn run(&self, _ctx: SensorContext) -> Result<(), SensorError> {
        panic!("sensor bug");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_sensor_exits_with_code_1_and_the_supervisor_carries_on() {
    let recorder = Arc::new(Recorder::default());
    let supervisor = SensorSupervisor::new(SupervisorSettings::default());
    supervisor
        .start(Arc::new(Panicky), context("Panicky", &recorder))
        .expect("start");

    let status = wait_for(&supervisor, "examples.Panicky", ended).await;
    assert_eq!(status.state, SensorState::GaveUp);
    assert_eq!(status.restarts, 2);
    assert_eq!(status.last_exit_code, Some(1));
    assert_eq!(status.last_error.as_deref(), Some("panicked: sensor bug"));
    assert_eq!(
        recorder.payloads(SENSOR_EXIT_TRIGGER),
        vec![json!({"id": "Panicky", "timestamp": EPOCH, "exit_code": 1}); 3]
    );

    // Still supervising: another sensor runs to completion, and a given-up sensor may be
    // started again.
    supervisor
        .start(Arc::new(Counter), context("Counter", &recorder))
        .expect("start");
    let counter = wait_for(&supervisor, "examples.Counter", ended).await;
    assert_eq!(counter.state, SensorState::Exited);
    supervisor
        .start(Arc::new(Panicky), context("Panicky", &recorder))
        .expect("a given-up sensor can be started again");
    let again = wait_for(&supervisor, "examples.Panicky", ended).await;
    assert_eq!(again.restarts, 2, "fresh counters");
    assert_eq!(recorder.payloads(SENSOR_SPAWN_TRIGGER).len(), 3 + 1 + 3);
}

/// Sets a flag when dropped: proves an aborted run is really gone.
#[derive(Debug)]
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs until shut down, or forever when `ignore_shutdown`.
#[derive(Debug)]
struct LongRunning {
    ignore_shutdown: bool,
    dropped: Arc<AtomicBool>,
}

impl LongRunning {
    fn new(ignore_shutdown: bool) -> Self {
        Self {
            ignore_shutdown,
            dropped: Arc::new(AtomicBool::new(false)),
        }
    }
}

#[async_trait]
impl Sensor for LongRunning {
    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError> {
        let _flag = DropFlag(self.dropped.clone());
        if self.ignore_shutdown {
            std::future::pending::<()>().await;
        }
        ctx.shutdown.cancelled().await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_a_long_running_sensor_promptly_without_an_exit_trigger() {
    let recorder = Arc::new(Recorder::default());
    let supervisor = SensorSupervisor::new(SupervisorSettings::default());
    let sensor = Arc::new(LongRunning::new(false));
    supervisor
        .start(sensor.clone(), context("Watcher", &recorder))
        .expect("start");
    let running = wait_for(&supervisor, "examples.Watcher", |s| s.running).await;
    assert_eq!(running.state, SensorState::Running);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(
        supervisor
            .status("examples.Watcher")
            .expect("known")
            .running
    );

    let before = Instant::now();
    supervisor.shutdown().await;
    assert_eq!(before.elapsed(), Duration::ZERO, "no waiting for the grace");

    let status = supervisor.status("examples.Watcher").expect("known");
    assert_eq!(status.state, SensorState::Stopped);
    assert!(!status.running);
    assert_eq!(status.last_exit_code, Some(0));
    assert_eq!(status.last_error, None);
    assert!(sensor.dropped.load(Ordering::SeqCst));
    assert_eq!(
        recorder.triggers(),
        [SENSOR_SPAWN_TRIGGER],
        "as StackStorm: no process_exit for a sensor stopped by the container"
    );
    assert_eq!(
        supervisor.start(Arc::new(Counter), context("Counter", &recorder)),
        Err(SupervisorError::ShutDown)
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_aborts_a_sensor_that_ignores_it_after_the_grace_period() {
    let recorder = Arc::new(Recorder::default());
    let supervisor = SensorSupervisor::new(SupervisorSettings::default());
    let stubborn = Arc::new(LongRunning::new(true));
    let polite = Arc::new(LongRunning::new(false));
    supervisor
        .start(stubborn.clone(), context("Stubborn", &recorder))
        .expect("start");
    supervisor
        .start(polite.clone(), context("Polite", &recorder))
        .expect("start");
    wait_for(&supervisor, "examples.Stubborn", |s| s.running).await;
    wait_for(&supervisor, "examples.Polite", |s| s.running).await;

    let before = Instant::now();
    supervisor.shutdown().await;
    assert_eq!(before.elapsed(), Duration::from_secs(5), "one grace period");

    assert!(
        stubborn.dropped.load(Ordering::SeqCst),
        "the run was aborted"
    );
    assert!(polite.dropped.load(Ordering::SeqCst));
    let statuses = supervisor.statuses();
    assert_eq!(
        statuses.iter().map(|s| s.state).collect::<Vec<_>>(),
        [SensorState::Stopped, SensorState::Stopped]
    );
    let stubborn = &statuses[1];
    assert_eq!(stubborn.reference, "examples.Stubborn");
    assert!(
        stubborn
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("aborted")),
        "{stubborn:?}"
    );
    assert_eq!(statuses[0].last_error, None);
}

#[tokio::test(start_paused = true)]
async fn stop_ends_one_sensor_and_leaves_the_others_running() {
    let recorder = Arc::new(Recorder::default());
    let supervisor = SensorSupervisor::new(SupervisorSettings::default());
    supervisor
        .start(Arc::new(LongRunning::new(false)), context("A", &recorder))
        .expect("start");
    supervisor
        .start(Arc::new(LongRunning::new(false)), context("B", &recorder))
        .expect("start");
    wait_for(&supervisor, "examples.A", |s| s.running).await;
    wait_for(&supervisor, "examples.B", |s| s.running).await;
    assert_eq!(
        supervisor.start(Arc::new(Counter), context("A", &recorder)),
        Err(SupervisorError::AlreadyRunning("examples.A".into()))
    );

    assert!(supervisor.stop("examples.A").await);
    assert!(!supervisor.stop("examples.Nope").await);
    tokio::time::sleep(Duration::from_secs(60)).await;

    let states: Vec<_> = supervisor
        .statuses()
        .into_iter()
        .map(|s| (s.reference, s.state))
        .collect();
    assert_eq!(
        states,
        [
            ("examples.A".to_owned(), SensorState::Stopped),
            ("examples.B".to_owned(), SensorState::Running)
        ]
    );
    supervisor.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn failed_sensor_spawn_and_exit_dispatches_are_recorded_and_supervision_goes_on() {
    let recorder = Arc::new(Recorder {
        refuse_supervision_triggers: true,
        ..Recorder::default()
    });
    let supervisor = SensorSupervisor::new(SupervisorSettings::default());
    let sensor = Arc::new(Flaky::new(&[0]));
    supervisor
        .start(sensor.clone(), context("Flaky", &recorder))
        .expect("start");

    let status = wait_for(&supervisor, "examples.Flaky", ended).await;
    assert_eq!(status.state, SensorState::GaveUp);
    assert_eq!(status.restarts, 2, "respawned as usual");
    assert_eq!(
        status.last_dispatch_error.as_deref(),
        Some("core.st2.sensor.process_exit: trigger dispatch unavailable: store is down")
    );
    assert!(recorder.triggers().is_empty());
}

#[tokio::test]
async fn the_sensor_context_dispatches_with_and_without_a_trace_tag() {
    let recorder = Arc::new(Recorder::default());
    let ctx = context("Tagger", &recorder);
    assert_eq!(ctx.reference, "examples.Tagger");
    assert_eq!(
        ctx.dispatch("examples.event", json!({"a": 1}))
            .await
            .expect("dispatched"),
        "ti-1"
    );
    ctx.dispatch_with_trace_tag("examples.event", json!({"a": 2}), "build-42")
        .await
        .expect("dispatched");
    let dispatched = recorder.dispatched.lock().expect("not poisoned").clone();
    assert_eq!(
        dispatched,
        [
            ("examples.event".to_owned(), json!({"a": 1}), None),
            (
                "examples.event".to_owned(),
                json!({"a": 2}),
                Some("build-42".to_owned())
            ),
        ]
    );
}

fn st2_test_key() -> CryptoKey {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance/st2-test-crypto-key.json");
    CryptoKey::load(&path).expect("the shared StackStorm test key")
}

async fn sqlite(clock: Arc<ManualClock>) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(SqliteOptions::memory().with_clock(clock))
            .await
            .expect("open"),
    )
}

#[tokio::test]
async fn sensor_local_keys_live_in_system_scope_under_pack_and_class() {
    let clock = clock();
    let store = sqlite(clock.clone()).await;
    let recorder = Arc::new(Recorder::default());
    let ctx = SensorContext::new(
        "mypack",
        "MySensor",
        recorder,
        clock.clone() as Arc<dyn Clock>,
    )
    .with_datastore(Datastore::new(store.clone(), Some(st2_test_key())));

    ctx.set_value("x", "1", None, true, false)
        .await
        .expect("set");
    let raw = store
        .key_values()
        .get(KeyScope::System, "mypack.MySensor:x")
        .await
        .expect("get")
        .expect("stored under the local name");
    assert_eq!((raw.value.as_str(), raw.secret), ("1", false));
    assert!(
        store
            .key_values()
            .get(KeyScope::User, "mypack.MySensor:x")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        ctx.get_value("x", true, false).await.expect("get"),
        Some("1".into())
    );
    assert_eq!(
        ctx.get_value("x", false, false).await.expect("get"),
        None,
        "the raw name is another key"
    );

    ctx.set_value("shared", "v", None, false, false)
        .await
        .expect("set");
    assert!(
        store
            .key_values()
            .get(KeyScope::System, "shared")
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(
        ctx.get_value("mypack.MySensor:x", false, false)
            .await
            .expect("get"),
        Some("1".into())
    );

    ctx.set_value("xy", "2", None, true, false)
        .await
        .expect("set");
    assert_eq!(
        ctx.list_values(true, None).await.expect("list"),
        [
            ("mypack.MySensor:x".to_owned(), "1".to_owned()),
            ("mypack.MySensor:xy".to_owned(), "2".to_owned())
        ]
    );
    assert_eq!(
        ctx.list_values(true, Some("xy")).await.expect("list"),
        [("mypack.MySensor:xy".to_owned(), "2".to_owned())]
    );
    assert_eq!(
        ctx.list_values(false, Some("sh")).await.expect("list"),
        [("shared".to_owned(), "v".to_owned())]
    );
    assert_eq!(ctx.list_values(false, None).await.expect("list").len(), 3);

    assert!(ctx.delete_value("x", true).await.expect("delete"));
    assert!(!ctx.delete_value("x", true).await.expect("delete"));
    assert_eq!(ctx.get_value("x", true, false).await.expect("get"), None);
}

#[tokio::test]
async fn sensor_encrypted_values_are_secrets_read_back_as_ciphertext_unless_decrypted() {
    let clock = clock();
    let store = sqlite(clock.clone()).await;
    let recorder = Arc::new(Recorder::default());
    let ctx = SensorContext::new("mypack", "MySensor", recorder.clone(), clock.clone())
        .with_datastore(Datastore::new(store.clone(), Some(st2_test_key())));

    ctx.set_value("token", "s3cr3t", None, true, true)
        .await
        .expect("set");
    let raw = store
        .key_values()
        .get(KeyScope::System, "mypack.MySensor:token")
        .await
        .expect("get")
        .expect("stored");
    assert!(raw.secret);
    assert_ne!(raw.value, "s3cr3t");
    assert_eq!(
        st2_test_key()
            .decrypt(&raw.value)
            .expect("StackStorm format"),
        "s3cr3t"
    );
    assert_eq!(
        ctx.get_value("token", true, false).await.expect("get"),
        Some(raw.value.clone())
    );
    assert_eq!(
        ctx.get_value("token", true, true).await.expect("get"),
        Some("s3cr3t".into())
    );
    assert_eq!(
        ctx.list_values(true, None).await.expect("list"),
        [("mypack.MySensor:token".to_owned(), raw.value.clone())]
    );

    // Without a crypto key, secrets can be neither written nor decrypted.
    let keyless = SensorContext::new("mypack", "MySensor", recorder, clock)
        .with_datastore(Datastore::new(store, None));
    assert!(matches!(
        keyless.get_value("token", true, true).await,
        Err(SensorError::Datastore(KeyValueError::CryptoKeyNotSetup))
    ));
    assert!(matches!(
        keyless.set_value("other", "v", None, true, true).await,
        Err(SensorError::Datastore(KeyValueError::CryptoKeyNotSetup))
    ));
    assert_eq!(
        keyless.get_value("token", true, false).await.expect("get"),
        Some(raw.value)
    );
}

#[tokio::test]
async fn sensor_key_ttls_expire_and_zero_means_none() {
    let clock = clock();
    let store = sqlite(clock.clone()).await;
    let ctx = SensorContext::new(
        "mypack",
        "MySensor",
        Arc::new(Recorder::default()),
        clock.clone(),
    )
    .with_datastore(Datastore::new(store, None));

    ctx.set_value("lease", "short", Some(60), true, false)
        .await
        .expect("set");
    ctx.set_value("forever", "long", Some(0), true, false)
        .await
        .expect("set");
    clock.advance(TimeDelta::seconds(61));
    assert_eq!(
        ctx.get_value("lease", true, false).await.expect("get"),
        None
    );
    assert_eq!(
        ctx.get_value("forever", true, false).await.expect("get"),
        Some("long".into())
    );
}

#[tokio::test]
async fn a_sensor_context_without_datastore_says_so() {
    let ctx = context("NoStore", &Arc::new(Recorder::default()));
    assert!(matches!(
        ctx.get_value("x", true, false).await,
        Err(SensorError::NoDatastore)
    ));
    assert!(matches!(
        ctx.set_value("x", "v", None, true, false).await,
        Err(SensorError::NoDatastore)
    ));
    assert!(matches!(
        ctx.delete_value("x", true).await,
        Err(SensorError::NoDatastore)
    ));
    assert!(matches!(
        ctx.list_values(true, None).await,
        Err(SensorError::NoDatastore)
    ));
}

/// Counts polls; fails the poll numbered `fail_at` (1-based) when set.
#[derive(Debug, Default)]
struct Ticker {
    polls: AtomicUsize,
    at: Mutex<Vec<Instant>>,
    fail_at: Option<usize>,
}

#[async_trait]
impl Poll for Ticker {
    async fn poll(&self, ctx: &SensorContext) -> Result<(), SensorError> {
        let n = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
        self.at.lock().expect("not poisoned").push(Instant::now());
        if self.fail_at == Some(n) {
            return Err(SensorError::Failed(format!("poll {n} failed")));
        }
        ctx.dispatch("examples.tick", json!({"n": n})).await?;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_polling_sensor_polls_first_then_every_interval_until_shutdown() {
    let recorder = Arc::new(Recorder::default());
    let (canceller, shutdown) = Cancellation::new();
    let sensor = Arc::new(Polling::new(Ticker::default(), Duration::from_secs(10)));
    assert_eq!(sensor.poll_interval(), Duration::from_secs(10));
    let start = Instant::now();
    let run = tokio::spawn({
        let sensor = sensor.clone();
        let ctx = context("Ticker", &recorder).with_shutdown(shutdown);
        async move { sensor.run(ctx).await }
    });

    tokio::time::sleep(Duration::from_secs(35)).await;
    canceller.cancel();
    let result = tokio::time::timeout(Duration::from_millis(1), run)
        .await
        .expect("returns promptly on shutdown")
        .expect("no panic");
    assert!(result.is_ok());

    let ticker = sensor.poller();
    assert_eq!(ticker.polls.load(Ordering::SeqCst), 4);
    let offsets: Vec<Duration> = ticker
        .at
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|t| *t - start)
        .collect();
    let s = Duration::from_secs;
    assert_eq!(offsets, [s(0), s(10), s(20), s(30)]);
    assert_eq!(recorder.payloads("examples.tick").len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_failing_poll_ends_the_polling_sensor_with_its_error() {
    let recorder = Arc::new(Recorder::default());
    let supervisor = SensorSupervisor::new(SupervisorSettings {
        max_respawns: 0,
        ..SupervisorSettings::default()
    });
    let ticker = Ticker {
        fail_at: Some(3),
        ..Ticker::default()
    };
    supervisor
        .start(
            Arc::new(Polling::new(ticker, Duration::from_millis(100))),
            context("Ticker", &recorder),
        )
        .expect("start");

    let status = wait_for(&supervisor, "examples.Ticker", ended).await;
    assert_eq!(status.state, SensorState::GaveUp);
    assert_eq!(status.last_error.as_deref(), Some("poll 3 failed"));
    assert_eq!(recorder.payloads("examples.tick").len(), 2);
    assert_eq!(
        recorder.payloads(SENSOR_EXIT_TRIGGER),
        [json!({"id": "Ticker", "timestamp": EPOCH, "exit_code": 1})]
    );
}

#[test]
fn the_sensor_registry_holds_each_ref_once() {
    let mut registry = SensorRegistry::new();
    registry
        .register("examples.Counter", Counter)
        .expect("register");
    registry
        .register_arc("examples.Panicky", Arc::new(Panicky))
        .expect("register");
    assert_eq!(
        registry.register("examples.Counter", Counter),
        Err(RegisterSensorError::Duplicate("examples.Counter".into()))
    );
    assert!(matches!(
        registry.register("Counter", Counter),
        Err(RegisterSensorError::InvalidRef(_))
    ));
    assert!(registry.get("examples.Counter").is_some());
    assert!(registry.get("examples.Nope").is_none());
    assert_eq!(
        registry.references(),
        ["examples.Counter", "examples.Panicky"]
    );
}
