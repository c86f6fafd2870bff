//! Sensors: long-running watchers that turn outside events into triggers. StackStorm runs each
//! Python sensor in its own process; a Rust program implements [`Sensor`], registers it in a
//! [`SensorRegistry`] under its ref `<pack>.<ClassName>`, and a [`SensorSupervisor`] runs it as a
//! Tokio task with StackStorm's supervision rules (spawn/exit triggers, respawn after failures,
//! a grace period on shutdown).
//!
//! The sensor metadata loaded from packs (`sensors/*.yaml`) is
//! [`crate::model::sensor::Sensor`]; this module is about the code that runs.
//!
//! ```
//! use std::sync::Arc;
//!
//! use async_trait::async_trait;
//! use serde_json::json;
//! use st2_core::sensor::{Sensor, SensorContext, SensorError, SensorRegistry};
//!
//! /// Emits one `examples.event` and stops.
//! #[derive(Debug)]
//! struct OneShot;
//!
//! #[async_trait]
//! impl Sensor for OneShot {
//!     async fn run(&self, ctx: SensorContext) -> Result<(), SensorError> {
//!         ctx.dispatch("examples.event", json!({"greeting": "hello"})).await?;
//!         Ok(())
//!     }
//! }
//!
//! let mut sensors = SensorRegistry::new();
//! sensors.register("examples.OneShot", OneShot).unwrap();
//! assert!(sensors.register("examples.OneShot", OneShot).is_err(), "a ref is registered once");
//! assert!(sensors.register("OneShot", OneShot).is_err(), "a ref names its pack");
//! ```

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tokio::task::{AbortHandle, JoinError, JoinHandle};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::datastore::{Datastore, KeySelector, KeyValueError, KeyWrite, local_name};
use crate::reference::{self, InvalidRef, ResourceRef};
use crate::runner::{Cancellation, Canceller};
use crate::store::Page;

/// The trigger dispatched when the supervisor starts a sensor.
pub const SENSOR_SPAWN_TRIGGER: &str = "core.st2.sensor.process_spawn";

/// The trigger dispatched when a sensor's `run` ends on its own (not on shutdown).
pub const SENSOR_EXIT_TRIGGER: &str = "core.st2.sensor.process_exit";

/// Why a trigger could not be dispatched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// No trigger (type) with this ref exists.
    #[error("unknown trigger {0:?}")]
    UnknownTrigger(String),
    /// The payload does not match the trigger type's `payload_schema`.
    #[error("invalid payload for trigger {trigger:?}: {message}")]
    InvalidPayload {
        /// The trigger ref.
        trigger: String,
        /// What is wrong.
        message: String,
    },
    /// The engine cannot accept trigger instances now (store down, shutting down, …).
    #[error("trigger dispatch unavailable: {0}")]
    Unavailable(String),
}

/// Where sensors send trigger instances: the engine implements this.
///
/// # Contract
/// - `dispatch` stores a trigger instance of `trigger` (a trigger or trigger type ref) with
///   `payload` before it returns, and returns its id; rules see it afterwards.
/// - `trace_tag` starts (or joins) the trace with that tag, as StackStorm's `trace_tag`.
/// - It validates the payload against the trigger type's `payload_schema` when the engine is
///   configured to (StackStorm's `system.validate_trigger_payload`).
/// - It may be called concurrently from many sensors.
///
/// # Errors
/// [`DispatchError`] when the trigger is unknown, the payload invalid, or the engine cannot
/// take it.
#[async_trait]
pub trait TriggerDispatcher: Send + Sync {
    /// Dispatch one trigger instance; returns its id.
    async fn dispatch(
        &self,
        trigger: &str,
        payload: Value,
        trace_tag: Option<String>,
    ) -> Result<String, DispatchError>;
}

/// Why a sensor, or a call it made through its [`SensorContext`], failed.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// Dispatching a trigger failed.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// A datastore call failed.
    #[error(transparent)]
    Datastore(#[from] KeyValueError),
    /// The context has no datastore.
    #[error("the sensor has no datastore")]
    NoDatastore,
    /// Anything else (the sensor's own failure).
    #[error("{0}")]
    Failed(String),
}

/// Everything a sensor gets: who it is, its pack's config, trigger dispatch, the datastore (in
/// StackStorm's `sensor_service` shape), the clock and its shutdown signal.
#[derive(Clone)]
pub struct SensorContext {
    /// The sensor ref, `<pack>.<class_name>`.
    pub reference: String,
    /// The pack.
    pub pack: String,
    /// The class name (StackStorm's `class_name`; the `id` of the spawn/exit triggers).
    pub class_name: String,
    /// The pack's config values (StackStorm passes them as the sensor's `config`).
    pub config: Map<String, Value>,
    /// Where triggers go.
    pub dispatcher: Arc<dyn TriggerDispatcher>,
    /// The datastore, for sensors that keep state in keys.
    pub datastore: Option<Datastore>,
    /// The engine's clock.
    pub clock: Arc<dyn Clock>,
    /// Fires when the sensor must stop. [`SensorSupervisor::start`] replaces it with its own.
    pub shutdown: Cancellation,
}

impl fmt::Debug for SensorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Config values may hold secrets: show only their names.
        f.debug_struct("SensorContext")
            .field("reference", &self.reference)
            .field("config", &self.config.keys().collect::<Vec<_>>())
            .field("datastore", &self.datastore)
            .field("shutdown", &self.shutdown.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl SensorContext {
    /// A context for sensor `class_name` of `pack`: empty config, no datastore, a shutdown that
    /// never fires (the supervisor sets its own).
    pub fn new(
        pack: impl Into<String>,
        class_name: impl Into<String>,
        dispatcher: Arc<dyn TriggerDispatcher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let pack = pack.into();
        let class_name = class_name.into();
        Self {
            reference: reference::join(&pack, &class_name),
            pack,
            class_name,
            config: Map::new(),
            dispatcher,
            datastore: None,
            clock,
            shutdown: Cancellation::never(),
        }
    }

    /// A context for the sensor `metadata` describes (its pack and class name).
    pub fn for_metadata(
        metadata: &crate::model::sensor::Sensor,
        dispatcher: Arc<dyn TriggerDispatcher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::new(metadata.pack(), &metadata.class_name, dispatcher, clock)
    }

    /// With the pack's config values.
    pub fn with_config(mut self, config: Map<String, Value>) -> Self {
        self.config = config;
        self
    }

    /// With a datastore.
    pub fn with_datastore(mut self, datastore: Datastore) -> Self {
        self.datastore = Some(datastore);
        self
    }

    /// With a shutdown signal (for running a sensor without a supervisor).
    pub fn with_shutdown(mut self, shutdown: Cancellation) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Dispatch a trigger instance of `trigger` with `payload`; returns its id.
    ///
    /// Unlike StackStorm's `sensor_service.dispatch`, which logs an invalid payload and drops
    /// it, the error comes back to the sensor, which decides.
    ///
    /// # Errors
    /// [`SensorError::Dispatch`].
    pub async fn dispatch(&self, trigger: &str, payload: Value) -> Result<String, SensorError> {
        Ok(self.dispatcher.dispatch(trigger, payload, None).await?)
    }

    /// [`SensorContext::dispatch`] with a trace tag.
    ///
    /// # Errors
    /// [`SensorError::Dispatch`].
    pub async fn dispatch_with_trace_tag(
        &self,
        trigger: &str,
        payload: Value,
        trace_tag: impl Into<String>,
    ) -> Result<String, SensorError> {
        Ok(self
            .dispatcher
            .dispatch(trigger, payload, Some(trace_tag.into()))
            .await?)
    }

    /// The stored name of key `name`: `<pack>.<ClassName>:<name>` when `local`, else `name`.
    pub fn key_name(&self, name: &str, local: bool) -> String {
        if local {
            local_name(&self.pack, &self.class_name, name)
        } else {
            name.to_owned()
        }
    }

    fn datastore(&self) -> Result<&Datastore, SensorError> {
        self.datastore.as_ref().ok_or(SensorError::NoDatastore)
    }

    /// The value of key `name` in system scope (`sensor_service.get_value`): `None` when it is
    /// missing or expired. A secret comes back as its ciphertext unless `decrypt` is set.
    ///
    /// # Errors
    /// [`SensorError::NoDatastore`]; [`SensorError::Datastore`] when the store fails or
    /// decryption was asked for and fails (no crypto key, wrong key).
    pub async fn get_value(
        &self,
        name: &str,
        local: bool,
        decrypt: bool,
    ) -> Result<Option<String>, SensorError> {
        let kv = self
            .datastore()?
            .get(&KeySelector::System, &self.key_name(name, local), decrypt)
            .await?;
        Ok(kv.map(|kv| kv.shown_value().to_owned()))
    }

    /// Create or replace key `name` in system scope (`sensor_service.set_value`). `ttl` is in
    /// seconds; as in StackStorm, `Some(0)` means no expiry. `encrypt` stores the value as a
    /// secret.
    ///
    /// # Errors
    /// [`SensorError::NoDatastore`]; [`SensorError::Datastore`] for an empty name, a secret
    /// without a crypto key, or a store failure.
    pub async fn set_value(
        &self,
        name: &str,
        value: impl Into<String> + Send,
        ttl: Option<u64>,
        local: bool,
        encrypt: bool,
    ) -> Result<(), SensorError> {
        let write = KeyWrite {
            value: value.into(),
            secret: encrypt,
            ttl: ttl.filter(|t| *t > 0),
            ..KeyWrite::default()
        };
        self.datastore()?
            .set(&KeySelector::System, &self.key_name(name, local), write)
            .await?;
        Ok(())
    }

    /// Delete key `name` from system scope (`sensor_service.delete_value`); `false` when it did
    /// not exist.
    ///
    /// # Errors
    /// [`SensorError::NoDatastore`]; [`SensorError::Datastore`] when the store fails.
    pub async fn delete_value(&self, name: &str, local: bool) -> Result<bool, SensorError> {
        let removed = self
            .datastore()?
            .delete(&KeySelector::System, &self.key_name(name, local))
            .await?;
        Ok(removed.is_some())
    }

    /// Keys of system scope as `(stored name, value)` (`sensor_service.list_values`): with
    /// `local`, those whose name starts with `<pack>.<ClassName>:` + `prefix`; without, those
    /// starting with `prefix` (all when `None`). Names are the full stored names, as
    /// StackStorm returns them; secrets come back as ciphertext.
    ///
    /// # Errors
    /// [`SensorError::NoDatastore`]; [`SensorError::Datastore`] when the store fails.
    pub async fn list_values(
        &self,
        local: bool,
        prefix: Option<&str>,
    ) -> Result<Vec<(String, String)>, SensorError> {
        let prefix = if local {
            Some(self.key_name(prefix.unwrap_or(""), true))
        } else {
            prefix.map(str::to_owned)
        };
        let listing = self
            .datastore()?
            .list(
                Some(&KeySelector::System),
                prefix.as_deref(),
                false,
                Page::all(),
            )
            .await?;
        Ok(listing
            .items
            .into_iter()
            .map(|kv| (kv.record.name, kv.record.value))
            .collect())
    }
}

/// A sensor: watches something and dispatches triggers through its context.
///
/// # Contract
/// - `run` is long-running: it returns `Ok(())` only when the sensor has nothing more to do
///   (the supervisor does not restart it) and `Err` on failure (the supervisor restarts it, as
///   StackStorm respawns a sensor process that exited non-zero).
/// - It returns promptly once `ctx.shutdown` is cancelled; the supervisor aborts it after a
///   grace period otherwise.
/// - It may be run again after it returned (a respawn gets a fresh clone of the context), so
///   state that must survive belongs in the datastore or in the sensor behind a lock.
/// - A panic is treated like an `Err` (exit code 1); it never takes the supervisor down.
///
/// # Errors
/// [`SensorError`] when the sensor failed; the supervisor records its message.
#[async_trait]
pub trait Sensor: Send + Sync + fmt::Debug {
    /// Run until done, failed or shut down.
    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError>;
}

/// One poll of a polling sensor (StackStorm's `PollingSensor.poll`); wrap it in [`Polling`] to
/// get a [`Sensor`].
///
/// # Contract
/// `poll` does one round of work and returns; it is not interrupted on shutdown (a long poll
/// may watch `ctx.shutdown` itself), and is called again `poll_interval` after it returned.
///
/// # Errors
/// [`SensorError`] ends the sensor with that error, as an exception from `poll()` ends a
/// StackStorm polling sensor.
#[async_trait]
pub trait Poll: Send + Sync + fmt::Debug {
    /// One poll.
    async fn poll(&self, ctx: &SensorContext) -> Result<(), SensorError>;
}

/// StackStorm's default poll interval for a `PollingSensor` (5 seconds).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// A [`Sensor`] that calls [`Poll::poll`], sleeps `poll_interval`, and repeats until shut down
/// (StackStorm's `PollingSensor.run`: poll first, then sleep).
#[derive(Debug)]
pub struct Polling<P> {
    poller: P,
    interval: Duration,
}

impl<P: Poll> Polling<P> {
    /// Poll with `poller` every `interval` (any duration: StackStorm's 4 second minimum applies
    /// to sensor metadata, not here).
    pub fn new(poller: P, interval: Duration) -> Self {
        Self { poller, interval }
    }

    /// The time between the end of one poll and the start of the next.
    pub fn poll_interval(&self) -> Duration {
        self.interval
    }

    /// The poller.
    pub fn poller(&self) -> &P {
        &self.poller
    }
}

#[async_trait]
impl<P: Poll> Sensor for Polling<P> {
    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError> {
        while !ctx.shutdown.is_cancelled() {
            self.poller.poll(&ctx).await?;
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = ctx.shutdown.cancelled() => break,
            }
        }
        Ok(())
    }
}

/// Makes the [`Sensor`] for sensor metadata loaded from a pack (code written in another
/// language, such as StackStorm's Python sensors). Given to the engine with
/// `EngineBuilder::sensor_factory`.
///
/// # Contract
/// `create` returns `None` for sensors it does not handle, so the next factory is asked; it
/// does no slow work (problems with the sensor's code surface when it runs).
///
/// # Errors
/// None: a sensor that cannot work is returned anyway and fails when run.
pub trait SensorFactory: Send + Sync + fmt::Debug {
    /// The sensor for `metadata`, whose pack lives in `pack_dir` (when known).
    fn create(
        &self,
        metadata: &crate::model::sensor::Sensor,
        pack_dir: Option<&std::path::Path>,
    ) -> Option<Arc<dyn Sensor>>;
}

/// Registering a sensor ref twice, or a ref without its pack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterSensorError {
    /// The ref is taken.
    #[error("a sensor with ref {0:?} is already registered")]
    Duplicate(String),
    /// The ref is not `<pack>.<ClassName>`.
    #[error(transparent)]
    InvalidRef(#[from] InvalidRef),
}

/// The sensors of one engine, by sensor ref `<pack>.<ClassName>`.
#[derive(Debug, Default, Clone)]
pub struct SensorRegistry {
    sensors: HashMap<String, Arc<dyn Sensor>>,
}

impl SensorRegistry {
    /// No sensors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `sensor` under `reference` (`<pack>.<ClassName>`).
    ///
    /// # Errors
    /// [`RegisterSensorError::Duplicate`] when the ref is taken,
    /// [`RegisterSensorError::InvalidRef`] when it has no pack part.
    pub fn register(
        &mut self,
        reference: impl Into<String>,
        sensor: impl Sensor + 'static,
    ) -> Result<(), RegisterSensorError> {
        self.register_arc(reference, Arc::new(sensor))
    }

    /// Register a shared sensor under `reference`.
    ///
    /// # Errors
    /// As [`SensorRegistry::register`].
    pub fn register_arc(
        &mut self,
        reference: impl Into<String>,
        sensor: Arc<dyn Sensor>,
    ) -> Result<(), RegisterSensorError> {
        let reference = reference.into();
        ResourceRef::parse(&reference)?;
        if self.sensors.contains_key(&reference) {
            return Err(RegisterSensorError::Duplicate(reference));
        }
        self.sensors.insert(reference, sensor);
        Ok(())
    }

    /// The sensor registered under `reference`.
    pub fn get(&self, reference: &str) -> Option<&Arc<dyn Sensor>> {
        self.sensors.get(reference)
    }

    /// Registered refs, sorted.
    pub fn references(&self) -> Vec<&str> {
        let mut refs: Vec<&str> = self.sensors.keys().map(String::as_str).collect();
        refs.sort_unstable();
        refs
    }
}

/// How the supervisor restarts and stops sensors. The defaults are StackStorm's
/// (`st2reactor/container/process_container.py`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorSettings {
    /// Restarts in a row after failures before giving up (`SENSOR_MAX_RESPAWN_COUNTS`, 2).
    pub max_respawns: u32,
    /// The delay before restart `n` (counted within a row) is `n × respawn_delay`
    /// (`SENSOR_RESPAWN_DELAY`, 2.5 s).
    pub respawn_delay: Duration,
    /// A sensor that stayed up this long before failing starts a new row of restarts
    /// (`SENSOR_SUCCESSFUL_START_THRESHOLD`, 10 s).
    pub successful_start_threshold: Duration,
    /// How long shutdown waits for sensors before aborting them (`PROCESS_EXIT_TIMEOUT`, 5 s).
    pub shutdown_grace: Duration,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        Self {
            max_respawns: 2,
            respawn_delay: Duration::from_millis(2500),
            successful_start_threshold: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Where a supervised sensor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorState {
    /// Started, its first run not begun yet.
    Starting,
    /// `run` is running.
    Running,
    /// It failed and waits for its restart delay.
    Restarting,
    /// `run` returned `Ok`: done, not restarted.
    Exited,
    /// It failed more times in a row than allowed: not restarted any more.
    GaveUp,
    /// Stopped by [`SensorSupervisor::stop`] or [`SensorSupervisor::shutdown`].
    Stopped,
}

/// What operators see of one supervised sensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorStatus {
    /// The sensor ref.
    pub reference: String,
    /// Whether `run` is running now (`state == Running`).
    pub running: bool,
    /// Where it is in its life.
    pub state: SensorState,
    /// Restarts after failures since it was started (all of them, not only the current row).
    pub restarts: u32,
    /// The exit code of its last run: 0 for `Ok`, 1 for `Err` or a panic (as StackStorm's
    /// sensor process); `None` before the first run ended.
    pub last_exit_code: Option<i32>,
    /// The error or panic message of its last failed run.
    pub last_error: Option<String>,
    /// The last failure to dispatch its spawn or exit trigger (supervision goes on regardless).
    pub last_dispatch_error: Option<String>,
}

impl SensorStatus {
    fn new(reference: String) -> Self {
        Self {
            reference,
            running: false,
            state: SensorState::Starting,
            restarts: 0,
            last_exit_code: None,
            last_error: None,
            last_dispatch_error: None,
        }
    }

    fn set_state(&mut self, state: SensorState) {
        self.state = state;
        self.running = state == SensorState::Running;
    }
}

/// Starting a sensor under supervision failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// A sensor with this ref is already supervised and has not ended.
    #[error("sensor {0:?} is already running")]
    AlreadyRunning(String),
    /// The supervisor was shut down.
    #[error("the sensor supervisor is shut down")]
    ShutDown,
}

type SharedStatus = Arc<Mutex<SensorStatus>>;
type SharedAbort = Arc<Mutex<Option<AbortHandle>>>;

/// Lock a mutex whose holder may have panicked: supervision state stays usable (every update
/// is a plain field assignment, never left half done).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct Supervised {
    reference: String,
    canceller: Canceller,
    status: SharedStatus,
    run: SharedAbort,
    task: Option<JoinHandle<()>>,
}

impl Supervised {
    fn ended(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

#[derive(Debug)]
struct Stopping {
    task: JoinHandle<()>,
    status: SharedStatus,
    run: SharedAbort,
}

/// Runs sensors as Tokio tasks with StackStorm's supervision:
///
/// - on each start it dispatches `core.st2.sensor.process_spawn` with
///   `{"id": <class_name>, "timestamp": <epoch seconds>, "pid": <this process>, "cmd": <ref>}`;
/// - when `run` ends on its own it dispatches `core.st2.sensor.process_exit` with
///   `{"id", "timestamp", "exit_code"}` (0 for `Ok`, 1 for `Err` or a panic);
/// - it restarts a sensor only after a failure, at most
///   [`max_respawns`](SupervisorSettings::max_respawns) times in a row, waiting
///   `n × respawn_delay` before restart `n`; a sensor that stayed up
///   [`successful_start_threshold`](SupervisorSettings::successful_start_threshold) starts a
///   new row;
/// - [`stop`](SensorSupervisor::stop) and [`shutdown`](SensorSupervisor::shutdown) cancel
///   `ctx.shutdown`, wait [`shutdown_grace`](SupervisorSettings::shutdown_grace) and abort what
///   is left. As in StackStorm, a sensor stopped this way gets no exit trigger.
///
/// Trigger timestamps come from the context's [`Clock`]; delays and uptimes are measured with
/// Tokio's timer, so tests run them under `tokio::time::pause()`. A failed spawn or exit
/// dispatch is recorded in [`SensorStatus::last_dispatch_error`] and does not stop supervision.
///
/// Methods that start tasks must be called within a Tokio runtime.
#[derive(Debug, Default)]
pub struct SensorSupervisor {
    settings: SupervisorSettings,
    sensors: Mutex<Vec<Supervised>>,
    shut_down: Mutex<bool>,
}

impl SensorSupervisor {
    /// A supervisor with `settings` and no sensors.
    pub fn new(settings: SupervisorSettings) -> Self {
        Self {
            settings,
            sensors: Mutex::new(Vec::new()),
            shut_down: Mutex::new(false),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &SupervisorSettings {
        &self.settings
    }

    /// Start supervising `sensor` with `ctx` (keyed by `ctx.reference`). The supervisor
    /// replaces `ctx.shutdown` with its own signal. A sensor whose supervision ended (exited,
    /// gave up, stopped) may be started again, with fresh counters.
    ///
    /// # Errors
    /// [`SupervisorError::AlreadyRunning`] when the ref is supervised and has not ended;
    /// [`SupervisorError::ShutDown`] after [`SensorSupervisor::shutdown`].
    pub fn start(
        &self,
        sensor: Arc<dyn Sensor>,
        mut ctx: SensorContext,
    ) -> Result<(), SupervisorError> {
        let shut_down = lock(&self.shut_down);
        if *shut_down {
            return Err(SupervisorError::ShutDown);
        }
        let mut sensors = lock(&self.sensors);
        if let Some(i) = sensors.iter().position(|s| s.reference == ctx.reference) {
            if !sensors[i].ended() {
                return Err(SupervisorError::AlreadyRunning(ctx.reference));
            }
            sensors.remove(i);
        }
        let (canceller, shutdown) = Cancellation::new();
        ctx.shutdown = shutdown;
        let status = Arc::new(Mutex::new(SensorStatus::new(ctx.reference.clone())));
        let run = Arc::new(Mutex::new(None));
        let task = tokio::spawn(supervise(
            sensor,
            ctx.clone(),
            self.settings.clone(),
            status.clone(),
            run.clone(),
        ));
        sensors.push(Supervised {
            reference: ctx.reference,
            canceller,
            status,
            run,
            task: Some(task),
        });
        Ok(())
    }

    /// The state of every sensor started, sorted by ref.
    pub fn statuses(&self) -> Vec<SensorStatus> {
        let mut statuses: Vec<SensorStatus> = lock(&self.sensors)
            .iter()
            .map(|s| lock(&s.status).clone())
            .collect();
        statuses.sort_by(|a, b| a.reference.cmp(&b.reference));
        statuses
    }

    /// The state of sensor `reference`.
    pub fn status(&self, reference: &str) -> Option<SensorStatus> {
        lock(&self.sensors)
            .iter()
            .find(|s| s.reference == reference)
            .map(|s| lock(&s.status).clone())
    }

    /// Stop one sensor: cancel its `ctx.shutdown`, wait up to the grace period, abort it if it
    /// is still running. Returns `false` when no sensor with this ref is supervised.
    pub async fn stop(&self, reference: &str) -> bool {
        let stopping = {
            let mut sensors = lock(&self.sensors);
            let Some(s) = sensors.iter_mut().find(|s| s.reference == reference) else {
                return false;
            };
            s.canceller.cancel();
            s.task.take().map(|task| Stopping {
                task,
                status: s.status.clone(),
                run: s.run.clone(),
            })
        };
        self.wait_or_abort(stopping.into_iter().collect()).await;
        true
    }

    /// Stop every sensor (as [`SensorSupervisor::stop`], with one grace period for all) and
    /// refuse new ones.
    pub async fn shutdown(&self) {
        *lock(&self.shut_down) = true;
        let stopping: Vec<Stopping> = lock(&self.sensors)
            .iter_mut()
            .filter_map(|s| {
                s.canceller.cancel();
                s.task.take().map(|task| Stopping {
                    task,
                    status: s.status.clone(),
                    run: s.run.clone(),
                })
            })
            .collect();
        self.wait_or_abort(stopping).await;
    }

    async fn wait_or_abort(&self, stopping: Vec<Stopping>) {
        let deadline = Instant::now() + self.settings.shutdown_grace;
        for mut s in stopping {
            if tokio::time::timeout_at(deadline, &mut s.task).await.is_ok() {
                continue;
            }
            if let Some(run) = lock(&s.run).take() {
                run.abort();
            }
            s.task.abort();
            // An aborted task ends at its next await point; its result (cancelled) is of no
            // interest.
            let _ = s.task.await;
            let mut status = lock(&s.status);
            status.set_state(SensorState::Stopped);
            status.last_error = Some(format!(
                "did not stop within {:?} of shutdown; aborted",
                self.settings.shutdown_grace
            ));
        }
    }
}

impl Drop for SensorSupervisor {
    fn drop(&mut self) {
        // Dropping a supervisor without shutdown must not leave sensors running unsupervised.
        for s in lock(&self.sensors).iter_mut() {
            s.canceller.cancel();
            if let Some(run) = lock(&s.run).take() {
                run.abort();
            }
            if let Some(task) = s.task.take() {
                task.abort();
            }
        }
    }
}

/// How one run ended.
struct RunEnd {
    exit_code: i32,
    error: Option<String>,
}

impl RunEnd {
    fn of(joined: Result<Result<(), SensorError>, JoinError>) -> Self {
        match joined {
            Ok(Ok(())) => Self {
                exit_code: 0,
                error: None,
            },
            Ok(Err(e)) => Self {
                exit_code: 1,
                error: Some(e.to_string()),
            },
            Err(e) if e.is_panic() => Self {
                exit_code: 1,
                error: Some(format!("panicked: {}", panic_message(e.into_panic()))),
            },
            Err(_) => Self {
                exit_code: 1,
                error: Some("aborted".into()),
            },
        }
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".into()
    }
}

/// Dispatch a supervision trigger, recording a failure in the status. Gives up waiting when
/// the sensor is being stopped.
async fn dispatch_event(ctx: &SensorContext, status: &SharedStatus, trigger: &str, payload: Value) {
    let result = tokio::select! {
        r = ctx.dispatcher.dispatch(trigger, payload, None) => r,
        () = ctx.shutdown.cancelled() => return,
    };
    if let Err(e) = result {
        lock(status).last_dispatch_error = Some(format!("{trigger}: {e}"));
    }
}

/// The supervision loop of one sensor.
async fn supervise(
    sensor: Arc<dyn Sensor>,
    ctx: SensorContext,
    settings: SupervisorSettings,
    status: SharedStatus,
    run_abort: SharedAbort,
) {
    let stopped = |status: &SharedStatus| lock(status).set_state(SensorState::Stopped);
    // Restarts in the current row of failures.
    let mut in_a_row: u32 = 0;
    loop {
        if ctx.shutdown.is_cancelled() {
            return stopped(&status);
        }
        let spawn = json!({
            "id": ctx.class_name,
            "timestamp": ctx.clock.now().timestamp(),
            "pid": std::process::id(),
            "cmd": ctx.reference,
        });
        dispatch_event(&ctx, &status, SENSOR_SPAWN_TRIGGER, spawn).await;

        let started = Instant::now();
        let mut run = tokio::spawn({
            let sensor = sensor.clone();
            let ctx = ctx.clone();
            async move { sensor.run(ctx).await }
        });
        *lock(&run_abort) = Some(run.abort_handle());
        lock(&status).set_state(SensorState::Running);

        let ended = tokio::select! {
            joined = &mut run => Some(joined),
            () = ctx.shutdown.cancelled() => None,
        };
        // On shutdown the run gets the grace period: `stop`/`shutdown` abort it after that.
        let (joined, shutting_down) = match ended {
            Some(joined) => (joined, false),
            None => (run.await, true),
        };
        let end = RunEnd::of(joined);
        {
            let mut status = lock(&status);
            status.last_exit_code = Some(end.exit_code);
            if end.error.is_some() {
                status.last_error.clone_from(&end.error);
            }
        }
        if shutting_down || ctx.shutdown.is_cancelled() {
            // StackStorm forgets a sensor before terminating it: no exit trigger, no respawn.
            return stopped(&status);
        }
        let exit = json!({
            "id": ctx.class_name,
            "timestamp": ctx.clock.now().timestamp(),
            "exit_code": end.exit_code,
        });
        dispatch_event(&ctx, &status, SENSOR_EXIT_TRIGGER, exit).await;

        if end.exit_code == 0 {
            return lock(&status).set_state(SensorState::Exited);
        }
        if started.elapsed() >= settings.successful_start_threshold {
            in_a_row = 0;
        }
        if in_a_row >= settings.max_respawns {
            return lock(&status).set_state(SensorState::GaveUp);
        }
        in_a_row += 1;
        lock(&status).set_state(SensorState::Restarting);
        tokio::select! {
            () = tokio::time::sleep(settings.respawn_delay * in_a_row) => {}
            () = ctx.shutdown.cancelled() => return stopped(&status),
        }
        lock(&status).restarts += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_to_stackstorms_numbers() {
        let s = SupervisorSettings::default();
        assert_eq!(s.max_respawns, 2);
        assert_eq!(s.respawn_delay * 2, Duration::from_secs(5));
        assert_eq!(s.successful_start_threshold, Duration::from_secs(10));
        assert_eq!(s.shutdown_grace, Duration::from_secs(5));
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        assert_eq!(panic_message(Box::new("static")), "static");
        assert_eq!(panic_message(Box::new(String::from("owned"))), "owned");
        assert_eq!(panic_message(Box::new(7_u8)), "(non-string panic payload)");
    }

    #[test]
    fn run_results_map_to_stackstorm_exit_codes() {
        assert_eq!(RunEnd::of(Ok(Ok(()))).exit_code, 0);
        let failed = RunEnd::of(Ok(Err(SensorError::Failed("boom".into()))));
        assert_eq!(
            (failed.exit_code, failed.error.as_deref()),
            (1, Some("boom"))
        );
    }
}
