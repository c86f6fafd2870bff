//! The engine: trigger → rule → execution → runner → result, as one embeddable object.
//!
//! StackStorm spreads this pipeline over st2rulesengine, st2scheduler, st2actionrunner,
//! st2notifier, st2timersengine, st2sensorcontainer and st2garbagecollector, talking through
//! RabbitMQ. Here each of them is a tokio task of one [`Engine`], and they talk through the
//! store: every step is written before it is work in memory, so a crash loses nothing.
//!
//! ```text
//! dispatch ─► trigger instance (pending) ─► rules: match, render ─► execution + enforcement
//!     ─► [schedule queue: delays, concurrency policies] ─► run queue ─► runner worker
//!     ─► result ─► post-run: actiontrigger, notifytrigger, retry ─► dispatch …
//! ```
//!
//! * **Rules** (`triggers`): each accepted trigger instance is matched against the rules;
//!   every match is enforced (parameters rendered, an execution created, the enforcement
//!   recorded) and the instance marked `processed`. When no rule reads the datastore this
//!   happens at dispatch, and the instance is stored `processed` in the same commit.
//! * **Scheduling**: an execution with no delay and no concurrency policy is created
//!   `scheduled` at once (its log still shows `requested` first); others go through the
//!   `schedule` queue, where delays wait in the store (`not_before`) and policies decide.
//! * **Runner workers** (`worker`) claim `run` items under a lease, mark the execution
//!   `running`, render its final parameters, run the runner while heartbeating the lease, and
//!   write the result.
//! * **Post-run**: the `core.st2.generic.actiontrigger` and notify triggers are dispatched and
//!   the retry policy applied before the queue item is finished. Their ids derive from the
//!   execution's, so doing the step twice after a crash writes nothing twice.
//! * **Recovery** on start: pending trigger instances are processed again (derived ids make it
//!   idempotent); `requested`/`delayed`/`scheduled` executions are queued again; an execution
//!   whose runner died is found when its expired lease comes back and becomes `abandoned`.

pub mod events;
mod executions;
pub mod lifecycle;
mod recent;
mod runner_services;
mod services;
pub mod snapshot;
mod triggers;
pub(crate) mod watch;
mod worker;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::catalog::Catalog;
use crate::clock::{Clock, SystemClock};
use crate::crypto::CryptoKey;
use crate::datastore::{
    Datastore, KeySelector, KeyValue, KeyValueError, KeyValueRead, KeyWrite, StoreKeyValues,
};
use crate::diagnostic::Diagnostic;
use crate::expr::jinja::{Jinja, JinjaConfig};
use crate::expr::render::ParamError;
use crate::loader::LoadOptions;
use crate::model::RunnerType;
use crate::rules::matcher::{CompiledRule, Matcher, TriggerRef};
use crate::runner::{Canceller, Runner, RunnerRegistry};
use crate::store::retention::RetentionPolicy;
use crate::store::{
    ExecutionFilter, ExecutionRecord, Listing, OutputChunk, Page, Store, StoreError,
    TriggerInstanceRecord,
};

pub use events::EngineEvent;
pub use executions::{ReRunRequest, RunRequest};
pub use triggers::DispatchRequest;

/// StackStorm's `system_user`.
pub const SYSTEM_USER: &str = "stanley";

/// Queue names.
pub(crate) const RUN_QUEUE: &str = "run";
pub(crate) const SCHEDULE_QUEUE: &str = "schedule";

/// How many events a subscriber may fall behind before it gets `RecvError::Lagged`.
pub const EVENT_SLOTS: usize = 8192;

/// Which services this engine runs (StackStorm's separate daemons; for scale-out, a node may
/// run only some of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Match trigger instances against rules (st2rulesengine).
    pub rules: bool,
    /// Apply delays and concurrency policies (st2scheduler).
    pub scheduler: bool,
    /// Run actions (st2actionrunner).
    pub runner: bool,
    /// Fire timers (st2timersengine).
    pub timers: bool,
    /// Run sensors (st2sensorcontainer).
    pub sensors: bool,
    /// Purge old records (st2garbagecollector).
    pub gc: bool,
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            rules: true,
            scheduler: true,
            runner: true,
            timers: true,
            sensors: true,
            gc: true,
        }
    }
}

/// How the engine behaves. The defaults are StackStorm's where it has one.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// The user executions run as when nobody else asked (`system_user`).
    pub system_user: String,
    /// The services to run.
    pub roles: Roles,
    /// Executions this node runs at once.
    pub max_running: usize,
    /// Trigger instances the rules service matches at once (an instance matched while it is
    /// dispatched is paced by its dispatcher).
    pub max_matching: usize,
    /// Queue items claimed per round trip.
    pub claim_batch: usize,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// How often a running execution's lease is extended (and a cancel from another node
    /// noticed).
    pub heartbeat: Duration,
    /// How long a worker waits for work before looking again without a wake-up.
    pub idle_poll: Duration,
    /// How often expired leases are returned to their queue.
    pub reap_interval: Duration,
    /// How often the rules service looks for trigger instances still pending after this long
    /// (accepted by a node without the `rules` role, or left by one that stopped).
    pub pending_sweep: Duration,
    /// How long an execution held back by a concurrency policy waits before it is looked at
    /// again (StackStorm: 2.5 s).
    pub policy_delay: Duration,
    /// Tags this node's runner workers carry (runner affinity).
    pub worker_tags: Vec<String>,
    /// This node's name (recorded in `runner_info` and on claims).
    pub node_name: String,
    /// Dispatch `core.st2.generic.actiontrigger` for every finished execution
    /// (`action_sensor.enable`).
    pub action_trigger: bool,
    /// Validate trigger payloads against the trigger type's `payload_schema`
    /// (`system.validate_trigger_payload`).
    pub validate_trigger_payload: bool,
    /// What to purge and when (`None`: keep everything).
    pub retention: Option<RetentionPolicy>,
    /// How often the garbage collector runs (`collection_interval`, 600 s).
    pub gc_interval: Duration,
    /// Time out pending inquiries older than their `ttl` minutes, in the `gc` role
    /// (StackStorm's `garbagecollector.purge_inquiries`, off there by default; on here, since
    /// an inquiry's `ttl` is meant to be honoured).
    pub expire_inquiries: bool,
    /// How often pending inquiries are checked for expiry (60 s).
    pub inquiry_check: Duration,
    /// The API URL actions see in `ST2_ACTION_API_URL`.
    pub api_url: String,
    /// The timezone timers without one use (`timersengine.local_timezone`).
    pub timer_timezone: String,
    /// How often the timers engine looks at the clock at least (it also wakes for the next
    /// firing). Matters with a manual clock, which moves without waking anyone.
    pub timer_tick: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            system_user: SYSTEM_USER.to_owned(),
            roles: Roles::default(),
            max_running: 256,
            max_matching: 64,
            claim_batch: 64,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            idle_poll: Duration::from_secs(1),
            reap_interval: Duration::from_secs(1),
            pending_sweep: Duration::from_secs(5),
            policy_delay: Duration::from_millis(2500),
            worker_tags: Vec::new(),
            node_name: "st2d".to_owned(),
            action_trigger: true,
            validate_trigger_payload: true,
            retention: None,
            gc_interval: Duration::from_secs(600),
            expire_inquiries: true,
            inquiry_check: Duration::from_secs(60),
            api_url: "http://127.0.0.1:9101/v1".to_owned(),
            timer_timezone: crate::timers::DEFAULT_TIMEZONE.to_owned(),
            timer_tick: Duration::from_secs(1),
        }
    }
}

impl EngineSettings {
    /// Refuse settings the services cannot run with (a zero period, a heartbeat that does not
    /// come before the lease expires, a retention TTL below a day).
    ///
    /// # Errors
    /// [`EngineError::Setup`] naming the setting.
    pub fn check(&self) -> Result<(), EngineError> {
        let periods = [
            ("lease", self.lease),
            ("heartbeat", self.heartbeat),
            ("idle_poll", self.idle_poll),
            ("reap_interval", self.reap_interval),
            ("pending_sweep", self.pending_sweep),
            ("gc_interval", self.gc_interval),
            ("inquiry_check", self.inquiry_check),
            ("timer_tick", self.timer_tick),
        ];
        if let Some((name, _)) = periods.iter().find(|(_, d)| d.is_zero()) {
            return Err(EngineError::Setup(format!(
                "settings: {name} must be longer than zero"
            )));
        }
        if self.heartbeat >= self.lease {
            return Err(EngineError::Setup(format!(
                "settings: heartbeat ({:?}) must be shorter than lease ({:?}), or leases expire \
                 under running actions",
                self.heartbeat, self.lease
            )));
        }
        if let Some(retention) = &self.retention {
            retention
                .validate()
                .map_err(|e| EngineError::Setup(format!("settings: retention: {e}")))?;
        }
        Ok(())
    }
}

/// Report rules whose timer parameters do not make a schedule (a bad cron field, an unknown
/// timezone): the timers engine cannot fire them.
fn check_timers(catalog: &Catalog, default_timezone: &str, diagnostics: &mut Vec<Diagnostic>) {
    for rule in catalog.rules() {
        let trigger = &rule.trigger;
        if crate::timers::TimerKind::from_trigger_type(&trigger.trigger_type).is_none() {
            continue;
        }
        if let Err(e) = crate::timers::TimerSchedule::from_trigger(
            &trigger.trigger_type,
            &trigger.parameters,
            default_timezone,
        ) {
            diagnostics.push(Diagnostic::error(
                rule.origin.metadata_file.clone(),
                Default::default(),
                format!("rule {}: {}: {e}", rule.reference, trigger.trigger_type),
            ));
        }
    }
}

/// Why an engine call failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No action with this ref.
    #[error("Action \"{0}\" cannot be found.")]
    UnknownAction(String),
    /// The action is disabled.
    #[error("Unable to execute. Action \"{0}\" is disabled.")]
    ActionDisabled(String),
    /// No trigger (type) with this ref.
    #[error("Trigger \"{0}\" cannot be found.")]
    UnknownTrigger(String),
    /// The payload does not fit the trigger type's `payload_schema`.
    #[error("Failed to validate payload for trigger \"{trigger}\": {message}")]
    InvalidPayload {
        /// The trigger.
        trigger: String,
        /// Why.
        message: String,
    },
    /// Parameters failed to render, cast or validate.
    #[error("{0}")]
    InvalidParameters(String),
    /// No execution with this id.
    #[error("Execution \"{0}\" cannot be found.")]
    UnknownExecution(String),
    /// The execution's status does not allow the request.
    #[error("{0}")]
    InvalidState(String),
    /// No inquiry with this id.
    #[error("Inquiry \"{0}\" cannot be found.")]
    UnknownInquiry(String),
    /// The engine is shutting down or its services are gone.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// Waiting for an execution ran out of time.
    #[error("execution {0} did not finish in time")]
    WaitTimeout(String),
    /// The engine could not be built.
    #[error("engine setup: {0}")]
    Setup(String),
    /// The datastore refused or failed.
    #[error(transparent)]
    KeyValue(#[from] KeyValueError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ParamError> for EngineError {
    fn from(e: ParamError) -> Self {
        EngineError::InvalidParameters(e.to_string())
    }
}

/// Builds an [`Engine`]: store, packs, runners, sensors, clock and settings in.
pub struct EngineBuilder {
    store: Option<Arc<dyn Store>>,
    load: LoadOptions,
    catalog: Option<Catalog>,
    runners: RunnerRegistry,
    extra_runner_types: Vec<RunnerType>,
    clock: Option<Arc<dyn Clock>>,
    settings: EngineSettings,
    crypto_key: Option<CryptoKey>,
    sensors: crate::sensor::SensorRegistry,
    sensor_factories: Vec<Arc<dyn crate::sensor::SensorFactory>>,
    supervisor_settings: crate::sensor::SupervisorSettings,
    sensor_overrides: Vec<(String, bool)>,
    registration_error: Option<String>,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("load", &self.load)
            .field("runners", &self.runners.names())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// The store to use (required).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Load the packs in `dir` (repeatable).
    pub fn packs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.load = self.load.packs_dir(dir);
        self
    }

    /// Load the single pack in `dir` (repeatable).
    pub fn pack_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.load = self.load.pack_dir(dir);
        self
    }

    /// Read pack config values from `dir`.
    pub fn configs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.load = self.load.configs_dir(dir);
        self
    }

    /// Use a catalog loaded elsewhere instead of loading packs.
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Add the runners of `runners` (see `st2_runners::register_builtin` for StackStorm's) to
    /// those already given; a name given twice makes [`EngineBuilder::start`] fail.
    pub fn runners(mut self, runners: RunnerRegistry) -> Self {
        for name in runners.names() {
            if let Some(runner) = runners.get(name)
                && let Err(e) = self.runners.register_arc(name, runner.clone())
            {
                self.registration_error.get_or_insert(e.to_string());
            }
        }
        self
    }

    /// Add a runner written in Rust under `runner_type` (its name, parameters and output
    /// schema), so actions with `runner_type: <name>` run on it.
    pub fn runner(mut self, runner_type: RunnerType, runner: impl Runner + 'static) -> Self {
        if let Err(e) = self.runners.register(runner_type.name.clone(), runner) {
            self.registration_error.get_or_insert(e.to_string());
        }
        self.load = self.load.runner_type(runner_type.clone());
        self.extra_runner_types.push(runner_type);
        self
    }

    /// Add a sensor written in Rust under its ref `<pack>.<ClassName>`; it runs (supervised,
    /// restarted after failures as StackStorm's sensor container does) when the engine has
    /// the `sensors` role.
    pub fn sensor(
        mut self,
        reference: impl Into<String>,
        sensor: impl crate::sensor::Sensor + 'static,
    ) -> Self {
        if let Err(e) = self.sensors.register(reference, sensor) {
            self.registration_error.get_or_insert(e.to_string());
        }
        self
    }

    /// Add a factory for the sensors the loaded packs declare (`sensors/*.yaml`): at start,
    /// each enabled sensor not registered with [`EngineBuilder::sensor`] is offered to the
    /// factories in the order given, and runs when one of them makes it (e.g. st2-runners'
    /// Python sensors).
    pub fn sensor_factory(mut self, factory: impl crate::sensor::SensorFactory + 'static) -> Self {
        self.sensor_factories.push(Arc::new(factory));
        self
    }

    /// Enable or disable a loaded sensor regardless of its file (what was set through the
    /// API before a restart); applied before sensors start. Unknown refs are ignored.
    pub fn sensor_enabled(mut self, reference: impl Into<String>, enabled: bool) -> Self {
        self.sensor_overrides.push((reference.into(), enabled));
        self
    }

    /// How sensors are restarted after failures.
    pub fn supervisor_settings(mut self, settings: crate::sensor::SupervisorSettings) -> Self {
        self.supervisor_settings = settings;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Settings.
    pub fn settings(mut self, settings: EngineSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The key secrets are encrypted with (StackStorm's key file format).
    pub fn crypto_key(mut self, key: CryptoKey) -> Self {
        self.crypto_key = Some(key);
        self
    }

    /// Load the packs, start the services and recover what a previous run left unfinished.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`EngineError::Setup`] without a store or with a runner registered twice; store errors
    /// from recovery. Problems in packs are not errors: the content that loads is used and the
    /// rest is reported by [`Engine::diagnostics`].
    pub async fn start(self) -> Result<Engine, EngineError> {
        if let Some(e) = self.registration_error {
            return Err(EngineError::Setup(e));
        }
        self.settings.check()?;
        let store = self
            .store
            .ok_or_else(|| EngineError::Setup("no store given (EngineBuilder::store)".into()))?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let (catalog, mut diagnostics) = match self.catalog {
            Some(mut c) => {
                for rt in self.extra_runner_types {
                    c.insert_runner_type(rt);
                }
                (c, Vec::new())
            }
            None => {
                let load = self.load;
                let report = tokio::task::spawn_blocking(move || crate::loader::load(&load))
                    .await
                    .map_err(|e| EngineError::Setup(format!("loading packs: {e}")))?;
                (report.catalog, report.diagnostics)
            }
        };
        let mut catalog = catalog;
        for (reference, enabled) in self.sensor_overrides {
            set_sensor_flag(&mut catalog, &reference, enabled);
        }
        let matcher = Matcher::new();
        let rhai = crate::rules::default_rhai();
        for rule in catalog.rules() {
            match CompiledRule::new((**rule).clone(), rhai) {
                Ok(compiled) => {
                    matcher.insert(compiled);
                }
                Err(problems) => {
                    for p in problems {
                        diagnostics.push(Diagnostic::error(
                            rule.origin.metadata_file.clone(),
                            Default::default(),
                            format!(
                                "rule {}: criteria {}: {}",
                                rule.reference,
                                p.location(),
                                p.message
                            ),
                        ));
                    }
                }
            }
        }
        check_timers(&catalog, &self.settings.timer_timezone, &mut diagnostics);
        let key = self.crypto_key.map(Arc::new);
        let jinja = Jinja::new(JinjaConfig {
            crypto_key: key.clone(),
            ..JinjaConfig::default()
        });
        let datastore_store = store.clone();
        let kv_read: Arc<dyn KeyValueRead> = Arc::new(StoreKeyValues::new(
            store.clone(),
            tokio::runtime::Handle::current(),
        ));
        let (rules_tx, rules_rx) = mpsc::unbounded_channel();
        let (output_tx, output_rx) = mpsc::unbounded_channel();
        let shutdown = crate::runner::Cancellation::new();
        let settings_max_running = self.settings.max_running.max(1);
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| Inner {
            datastore: Datastore::new_shared(datastore_store, key.clone())
                .with_listener(Arc::new(KeyTriggers(weak.clone()))),
            store,
            clock,
            settings: self.settings,
            catalog: RwLock::new(Arc::new(catalog)),
            matcher,
            jinja: Arc::new(jinja),
            runners: self.runners,
            kv_read,
            events: OnceLock::new(),
            rules_tx,
            output_tx,
            cancellers: Mutex::new(HashMap::new()),
            triggers: RwLock::new(HashMap::new()),
            triggers_generation: std::sync::atomic::AtomicU64::new(0),
            triggers_changed: tokio::sync::Notify::new(),
            in_flight: Mutex::new(std::collections::HashSet::new()),
            payload_schemas: Mutex::new(HashMap::new()),
            shutdown: shutdown.0,
            stopping: shutdown.1,
            tasks: Mutex::new(Vec::new()),
            diagnostics,
            supervisor: Mutex::new(None),
            sensor_sources: Mutex::new(SensorSources {
                registered: self.sensors,
                factories: self.sensor_factories,
                settings: self.supervisor_settings,
            }),
            runner_slots: Arc::new(tokio::sync::Semaphore::new(settings_max_running)),
            recent: recent::RecentExecutions::default(),
            created_first: events::CreatedFirst::default(),
            snapshots: snapshot::SnapshotCache::default(),
            watchers: Arc::new(watch::Watchers::default()),
        });
        inner.index_triggers();
        let engine = Engine { inner };
        services::start(&engine, rules_rx, output_rx).await?;
        if engine.inner.settings.roles.sensors {
            start_sensors(&engine).await;
        }
        Ok(engine)
    }
}

/// The running pipeline. Cheap to clone; all clones are the same engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.inner.store.backend())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: EngineSettings,
    pub(crate) catalog: RwLock<Arc<Catalog>>,
    pub(crate) matcher: Matcher,
    pub(crate) jinja: Arc<Jinja>,
    pub(crate) runners: RunnerRegistry,
    pub(crate) datastore: Datastore,
    pub(crate) kv_read: Arc<dyn KeyValueRead>,
    /// Made by the first subscriber: [`EVENT_SLOTS`] slots allocated and written up front
    /// (~1 MB), which a daemon nobody listens to does not pay. Before it exists nobody
    /// listens, so nothing is lost: an event is only sent while someone subscribes.
    events: OnceLock<broadcast::Sender<EngineEvent>>,
    /// Updates held back until their execution's creation is announced.
    created_first: events::CreatedFirst,
    pub(crate) rules_tx: mpsc::UnboundedSender<triggers::Pending>,
    pub(crate) output_tx: mpsc::UnboundedSender<worker::OutputMessage>,
    pub(crate) cancellers: Mutex<HashMap<String, Canceller>>,
    /// Triggers with parameters, by ref.
    pub(crate) triggers: RwLock<HashMap<String, TriggerRef>>,
    /// Counts changes of `triggers`, so the timers engine follows rules added, changed or
    /// removed while it runs; `triggers_changed` wakes it.
    pub(crate) triggers_generation: std::sync::atomic::AtomicU64,
    pub(crate) triggers_changed: tokio::sync::Notify,
    /// Trigger instances the rules service holds now (the sweep skips them).
    pub(crate) in_flight: Mutex<std::collections::HashSet<String>>,
    pub(crate) payload_schemas: Mutex<HashMap<String, Arc<crate::schema::Schema>>>,
    pub(crate) shutdown: Canceller,
    pub(crate) stopping: crate::runner::Cancellation,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) supervisor: Mutex<Option<Arc<crate::sensor::SensorSupervisor>>>,
    /// Where sensors come from (kept to start one enabled while the engine runs).
    pub(crate) sensor_sources: Mutex<SensorSources>,
    /// This node's runner slots (`max_running`); a runner waiting for a child lends its slot.
    pub(crate) runner_slots: Arc<tokio::sync::Semaphore>,
    /// Executions just stored `scheduled`, for this node's runner workers to start without
    /// reading them back.
    pub(crate) recent: recent::RecentExecutions,
    /// The action, runner, rule and trigger snapshots executions share.
    pub(crate) snapshots: snapshot::SnapshotCache,
    /// Waiters on particular executions.
    pub(crate) watchers: Arc<watch::Watchers>,
}

/// An execution being created: its updates wait for its created event (see
/// [`Inner::creating`]).
pub(crate) struct Creating<'a> {
    inner: &'a Inner,
    id: String,
    held: bool,
}

impl Creating<'_> {
    /// Announce the execution's creation, then the updates held back meanwhile.
    pub(crate) fn announce(mut self, record: Arc<ExecutionRecord>) {
        if std::mem::take(&mut self.held) {
            let sender = self.inner.listened();
            let event = EngineEvent::ExecutionCreated(record);
            self.inner
                .created_first
                .release(sender, &self.id, Some(event));
        } else {
            self.inner
                .emit_with(|| EngineEvent::ExecutionCreated(record));
        }
    }
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        if self.held {
            // Not stored (or nobody will say): nothing to announce, nothing held any more.
            self.inner.created_first.release(None, &self.id, None);
        }
    }
}

impl Inner {
    /// The sensor supervisor, once a sensor has been started.
    pub(crate) fn supervisor(&self) -> Option<Arc<crate::sensor::SensorSupervisor>> {
        self.supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A pack's config as actions and templates see it: dynamic values (`{{ st2kv.… }}`)
    /// rendered for `user`, secrets decrypted, the schema's defaults filled in. Blocking: it
    /// reads the datastore, so call it off the async threads.
    ///
    /// # Errors
    /// StackStorm's message when a dynamic value fails to render or decrypt.
    pub(crate) fn pack_config(
        &self,
        catalog: &Catalog,
        pack: &str,
        user: &str,
    ) -> Result<Map<String, Value>, String> {
        let Some(config) = catalog.config(pack) else {
            return Ok(catalog.resolved_config(pack));
        };
        let schema = catalog.config_schema(pack);
        let ctx = crate::expr::jinja::RenderContext {
            vars: Map::new(),
            kv: Some(crate::expr::jinja::KvAccess {
                store: self.kv_read.clone(),
                user: Some(user.to_owned()),
                legacy_system: false,
            }),
            scope: None,
        };
        let render = |t: &str| self.jinja.render(t, &ctx).map_err(|e| e.to_string());
        let key = self.datastore.crypto_key();
        let decrypt = |c: &str| match &key {
            Some(k) => k.decrypt(c).map_err(|e| e.to_string()),
            None => Err("no crypto key is set up to decrypt the secret".to_owned()),
        };
        let values = crate::model::config::render_dynamic_values(
            pack,
            &config.values,
            schema.map(|s| s.as_ref()),
            &render,
            &decrypt,
        )?;
        Ok(match schema {
            Some(s) => s.with_defaults(&values),
            None => values,
        })
    }

    /// What templates of `action`'s parameters read: the execution context, the pack config,
    /// the datastore, with `shell` capturing the shell-command parameters.
    pub(crate) fn param_context(
        &self,
        catalog: &Catalog,
        action: &crate::model::Action,
        action_context: Map<String, Value>,
        shell: Arc<crate::expr::render::ShellCapture>,
    ) -> crate::expr::render::ParamContext {
        // A dynamic value that fails to render leaves the setting as written here; the run
        // itself fails with the message (`prepare_run`).
        let user = action_context
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or(&self.settings.system_user);
        let config = self
            .pack_config(catalog, action.pack(), user)
            .unwrap_or_else(|_| catalog.resolved_config(action.pack()));
        crate::expr::render::ParamContext {
            action_context,
            config,
            datastore: Some(self.kv_read.clone()),
            system_user: self.settings.system_user.clone(),
            additional: Map::new(),
            shell: Some(shell),
        }
    }

    /// Claim what `request` asks for. When nothing is claimable (or the store failed), wait
    /// for a wake-up, `idle_poll` or the stop and return no leases. `None` once stopping.
    pub(crate) async fn claim_or_wait(
        &self,
        request: &crate::store::ClaimRequest,
    ) -> Option<Vec<crate::store::Lease>> {
        match self.store.queue().claim(request).await {
            Ok(leases) if !leases.is_empty() => return Some(leases),
            Ok(_) => tokio::select! {
                () = self.store.queue().wait_for_work(&request.queue, self.settings.idle_poll) => {}
                () = self.stopping.cancelled() => {}
            },
            Err(_) => executions::sleep_or_stop(self, self.settings.idle_poll).await,
        }
        (!self.stopping.is_cancelled()).then(Vec::new)
    }

    pub(crate) fn now(&self) -> crate::store::Timestamp {
        self.clock.now()
    }

    /// Whether this node leads `role` (taking or renewing it for `term`), for jobs one node
    /// at a time does when several share a store; a store error counts as not leading.
    pub(crate) async fn leads(&self, role: &str, term: Duration) -> bool {
        self.store
            .queue()
            .lead(role, &self.settings.node_name, term)
            .await
            .unwrap_or(false)
    }

    /// The event channel, when someone subscribes to it now.
    fn listened(&self) -> Option<&broadcast::Sender<EngineEvent>> {
        self.events.get().filter(|e| e.receiver_count() > 0)
    }

    /// Publish the event `make` builds, building it only when someone listens.
    pub(crate) fn emit_with(&self, make: impl FnOnce() -> EngineEvent) {
        if let Some(events) = self.listened() {
            // A subscriber that went away in between is fine.
            let _ = events.send(make());
        }
    }

    /// Execution `id` is about to be stored with its queue item: hold back its updates until
    /// [`Creating::announce`] (while someone listens). Dropped without announcing (the write
    /// failed, or the caller went away mid-write), it lets them go.
    pub(crate) fn creating(&self, id: &str) -> Creating<'_> {
        let held = self.listened().is_some();
        if held {
            self.created_first.hold(id);
        }
        Creating {
            inner: self,
            id: id.to_owned(),
            held,
        }
    }

    /// Announce that execution `id` was updated: to the waits registered on it and to the
    /// event subscribers, building the record (`make`) only when one of them listens.
    pub(crate) fn execution_updated(
        &self,
        id: &str,
        status: crate::store::ExecutionStatus,
        make: impl FnOnce() -> ExecutionRecord,
    ) {
        let watched = self.watchers.is_watched(id, status);
        let events = self.listened();
        if !watched && events.is_none() {
            return;
        }
        let record = Arc::new(make());
        // Published before the waits are told, so a caller whose wait returns finds the
        // event already in the channel.
        if let Some(events) = events {
            self.created_first.send(
                events,
                id,
                EngineEvent::ExecutionUpdated(Arc::clone(&record)),
            );
        }
        if watched {
            self.watchers.deliver(&record);
        }
    }

    /// A new subscriber to the engine's events (the channel is made by the first one).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events
            .get_or_init(|| broadcast::channel(EVENT_SLOTS).0)
            .subscribe()
    }

    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
    }

    /// Remember the triggers (with parameters) the rules listen to, by ref.
    /// Change the loaded catalog in place (copy-on-write: executions holding the old one keep
    /// it).
    fn edit_catalog<R>(&self, edit: impl FnOnce(&mut Catalog) -> R) -> R {
        let mut catalog = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        edit(Arc::make_mut(&mut catalog))
    }

    /// Index the triggers with parameters the rules listen to, replacing the index at once
    /// (a reader never sees it half built).
    pub(crate) fn index_triggers(&self) {
        let catalog = self.catalog();
        let mut fresh = HashMap::new();
        for rule in catalog.rules() {
            let t = TriggerRef {
                trigger_type: rule.trigger.trigger_type.clone(),
                parameters: rule.trigger.parameters.clone(),
            };
            if !t.parameters.is_empty() {
                fresh.insert(snapshot::trigger_ref_text(&t), t);
            }
        }
        *self.triggers.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.triggers_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.triggers_changed.notify_one();
    }
}

impl Engine {
    /// Start building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            store: None,
            load: LoadOptions::default(),
            catalog: None,
            runners: RunnerRegistry::new(),
            extra_runner_types: Vec::new(),
            clock: None,
            settings: EngineSettings::default(),
            crypto_key: None,
            sensors: crate::sensor::SensorRegistry::new(),
            sensor_factories: Vec::new(),
            supervisor_settings: crate::sensor::SupervisorSettings::default(),
            sensor_overrides: Vec::new(),
            registration_error: None,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// How many work items each of the engine's queues (`run`, `schedule`) holds, by state
    /// (for metrics).
    ///
    /// # Errors
    /// [`EngineError::Store`] when the store cannot be read.
    pub async fn queue_depths(
        &self,
    ) -> Result<Vec<(&'static str, crate::store::QueueDepth)>, EngineError> {
        let mut out = Vec::new();
        for queue in [RUN_QUEUE, SCHEDULE_QUEUE] {
            out.push((queue, self.inner.store.queue().depth(queue).await?));
        }
        Ok(out)
    }

    /// What is loaded: packs, actions, rules, trigger types, …
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner.catalog()
    }

    /// Problems found while loading packs and compiling rules (that content is not used).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.inner.diagnostics
    }

    /// The state of each sensor (running, restarts, last error).
    pub fn sensor_statuses(&self) -> Vec<crate::sensor::SensorStatus> {
        self.inner
            .supervisor()
            .map(|s| s.statuses())
            .unwrap_or_default()
    }

    /// The settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    /// Events as they happen (executions created and updated, output lines, trigger
    /// instances, announcements). A subscriber that falls more than [`EVENT_SLOTS`] events
    /// behind gets `RecvError::Lagged` and continues from the newest.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.inner.subscribe()
    }

    /// Dispatch a trigger by ref with `payload` (`sensor_service.dispatch`, `POST
    /// /webhooks/st2`). Returns the stored trigger instance: `processed` when the rules
    /// listening to it were matched and enforced in the same commit (they read nothing from
    /// the datastore), else `pending` for the rules service.
    ///
    /// # Errors
    /// [`EngineError::UnknownTrigger`], [`EngineError::InvalidPayload`], store errors.
    pub async fn dispatch(
        &self,
        trigger: &str,
        payload: Value,
    ) -> Result<TriggerInstanceRecord, EngineError> {
        self.dispatch_with(DispatchRequest::new(trigger, payload))
            .await
    }

    /// Dispatch with a trace tag, or to a trigger with parameters (webhooks, timers).
    ///
    /// # Errors
    /// As [`Engine::dispatch`].
    pub async fn dispatch_with(
        &self,
        request: DispatchRequest,
    ) -> Result<TriggerInstanceRecord, EngineError> {
        triggers::dispatch(&self.inner, request).await
    }

    /// Enable or disable a sensor while the engine runs (the API's `PUT /sensortypes/{ref}`):
    /// the catalog records it, a disabled sensor is stopped (given its grace period) and an
    /// enabled one is started when a registered sensor or a sensor factory provides it and
    /// this node runs sensors. Returns the sensor as now recorded, `None` for an unknown ref.
    /// A later pack registration reads the flag from the sensor's file again.
    pub async fn set_sensor_enabled(
        &self,
        reference: &str,
        enabled: bool,
    ) -> Option<Arc<crate::model::Sensor>> {
        let updated = self
            .inner
            .edit_catalog(|c| set_sensor_flag(c, reference, enabled))?;
        let supervisor = self.inner.supervisor();
        if !enabled {
            if let Some(supervisor) = supervisor {
                supervisor.stop(reference).await;
            }
        } else if self.inner.settings.roles.sensors {
            // A sensor still running is left alone (the supervisor refuses a second start).
            start_sensor(self, reference).await;
        }
        Some(updated)
    }

    /// Bring the running sensors in line with the catalog after it was replaced (packs
    /// registered, installed or removed): sensors no longer in the catalog, or disabled, stop;
    /// those of `restart_packs` restart (their code may have changed, as StackStorm's sensor
    /// container restarts a sensor whose registration was updated); enabled sensors not
    /// running start. Sensors given to the builder in Rust are left alone. Does nothing on a
    /// node that does not run sensors.
    pub async fn sync_sensors(&self, restart_packs: &[String]) {
        if !self.inner.settings.roles.sensors || self.inner.stopping.is_cancelled() {
            return;
        }
        let registered: Vec<String> = self
            .inner
            .sensor_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .registered
            .references()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let supervisor = self.inner.supervisor();
        let catalog = self.catalog();
        if let Some(supervisor) = &supervisor {
            for status in supervisor.statuses() {
                let reference = &status.reference;
                if registered.contains(reference) || !sensor_active(&status) {
                    continue;
                }
                let enabled = catalog.sensor(reference).is_some_and(|s| s.enabled);
                let pack = reference.split_once('.').map_or("", |(p, _)| p);
                if !enabled || restart_packs.iter().any(|p| p == pack) {
                    supervisor.stop(reference).await;
                }
            }
        }
        for metadata in catalog.sensors().filter(|s| s.enabled) {
            // A sensor that ended on its own (exited, gave up) starts again only with its
            // pack's registration.
            let status = supervisor
                .as_ref()
                .and_then(|s| s.status(&metadata.reference));
            let start = match status {
                None => true,
                Some(s) => !sensor_active(&s) && restart_packs.iter().any(|p| p == metadata.pack()),
            };
            if start {
                start_sensor(self, &metadata.reference).await;
            }
        }
    }

    /// Add a rule, or replace the rule with the same ref, while the engine runs (the API's
    /// `POST /rules` / `PUT /rules/<id>`): the next trigger instances are matched against it.
    /// Returns the rule it replaced. A timer rule starts firing at once (its schedule starts
    /// now); the timer of a rule replaced or removed stops unless another rule uses it.
    ///
    /// # Errors
    /// [`EngineError::InvalidParameters`] when the rule's criteria do not compile.
    pub fn put_rule(
        &self,
        rule: crate::model::Rule,
    ) -> Result<Option<Arc<crate::model::Rule>>, EngineError> {
        let compiled =
            CompiledRule::new(rule.clone(), crate::rules::default_rhai()).map_err(|problems| {
                EngineError::InvalidParameters(
                    problems
                        .iter()
                        .map(|p| format!("criteria {}: {}", p.location(), p.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
        let replaced = self.inner.edit_catalog(|c| c.insert_rule(rule));
        self.inner.matcher.insert(compiled);
        // Index again from scratch: the replaced rule's parameterized trigger (another
        // webhook URL, timer) goes unless another rule still listens to it.
        self.inner.index_triggers();
        Ok(replaced)
    }

    /// Replace what is loaded while the engine runs (packs registered again from disk): new
    /// executions and trigger instances use `catalog`'s actions, trigger types and rules.
    /// Runner types the old catalog had and the new one lacks (runners written in Rust) are
    /// kept. Timers follow the new rules at once; sensors follow the new catalog with
    /// [`Engine::sync_sensors`]. Returns the problems of rules whose criteria do not compile
    /// (those rules do not match, as at start).
    pub fn replace_catalog(&self, mut catalog: Catalog) -> Vec<Diagnostic> {
        let old = self.inner.catalog();
        for runner in old.runner_types() {
            if catalog.runner_type(&runner.name).is_none() {
                catalog.insert_runner_type((**runner).clone());
            }
        }
        let mut diagnostics = Vec::new();
        let mut compiled = Vec::new();
        for rule in catalog.rules() {
            match CompiledRule::new((**rule).clone(), crate::rules::default_rhai()) {
                Ok(c) => compiled.push(c),
                Err(problems) => {
                    for p in problems {
                        diagnostics.push(Diagnostic::error(
                            rule.origin.metadata_file.clone(),
                            Default::default(),
                            format!(
                                "rule {}: criteria {}: {}",
                                rule.reference,
                                p.location(),
                                p.message
                            ),
                        ));
                    }
                }
            }
        }
        let kept: std::collections::HashSet<String> =
            compiled.iter().map(|c| c.rule.reference.clone()).collect();
        *self
            .inner
            .catalog
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
        for rule in old.rules() {
            if !kept.contains(&rule.reference) {
                self.inner.matcher.remove(&rule.reference);
            }
        }
        for c in compiled {
            self.inner.matcher.insert(c);
        }
        self.inner
            .payload_schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.inner.index_triggers();
        diagnostics
    }

    /// Add an action, or replace the action with the same ref, while the engine runs (the
    /// API's `POST /actions` / `PUT /actions/<id>`); returns the action it replaced.
    /// Executions already created keep the action they were created with.
    pub fn put_action(&self, action: crate::model::Action) -> Option<Arc<crate::model::Action>> {
        self.inner.edit_catalog(|c| c.insert_action(action))
    }

    /// Remove the action `reference` while the engine runs (`DELETE /actions/<id>`); returns
    /// it. Rules naming it fail their enforcements until it exists again.
    pub fn remove_action(&self, reference: &str) -> Option<Arc<crate::model::Action>> {
        self.inner.edit_catalog(|c| c.remove_action(reference))
    }

    /// Add an action alias, or replace the one with the same ref, while the engine runs (the
    /// API's `POST /actionalias` / `PUT /actionalias/<id>`); returns the alias it replaced.
    pub fn put_alias(
        &self,
        alias: crate::model::ActionAlias,
    ) -> Option<Arc<crate::model::ActionAlias>> {
        self.inner.edit_catalog(|c| c.insert_alias(alias))
    }

    /// Remove the action alias `reference` while the engine runs (`DELETE
    /// /actionalias/<id>`); returns it.
    pub fn remove_alias(&self, reference: &str) -> Option<Arc<crate::model::ActionAlias>> {
        self.inner.edit_catalog(|c| c.remove_alias(reference))
    }

    /// Tell event subscribers that an action alias was created, changed or deleted (`verb`),
    /// with the alias as the API shows it (`st2.actionalias__<verb>` on the stream).
    pub fn alias_changed(&self, verb: &str, alias: Value) {
        self.inner.emit_with(|| EngineEvent::ActionAlias {
            verb: verb.to_owned(),
            alias,
        });
    }

    /// Render every value of `values` with Jinja as StackStorm's `render_values` does:
    /// strings are rendered, lists and mappings through their JSON text (and parsed back),
    /// other values are kept; a value whose text does not change keeps its original type.
    /// Templates see `vars` (and all of it as `__context`) and, when `kv_user` is given,
    /// `st2kv.system` and `st2kv.user` for that user. Reads the datastore off the async
    /// threads.
    ///
    /// # Errors
    /// [`ParamError::Render`] naming the first value that fails to render.
    pub async fn render_values(
        &self,
        values: Map<String, Value>,
        vars: Map<String, Value>,
        kv_user: Option<String>,
    ) -> Result<Map<String, Value>, crate::expr::render::ParamError> {
        use crate::expr::render::ParamError;
        let failed = |name: &str, message: String| ParamError::Render {
            name: name.to_owned(),
            message,
        };
        let inner = self.inner.clone();
        let job = tokio::task::spawn_blocking(move || {
            let mut all = vars.clone();
            all.insert("__context".into(), Value::Object(vars));
            let mut ctx = crate::expr::jinja::RenderContext::new(all);
            if let Some(user) = kv_user {
                ctx = ctx.with_kv(crate::expr::jinja::KvAccess {
                    store: inner.kv_read.clone(),
                    user: Some(user),
                    legacy_system: false,
                });
            }
            let mut out = Map::new();
            for (key, value) in values {
                let (text, structured) = match &value {
                    Value::String(s) => (s.clone(), false),
                    Value::Array(_) | Value::Object(_) => (value.to_string(), true),
                    _ => {
                        out.insert(key, value);
                        continue;
                    }
                };
                let rendered = inner
                    .jinja
                    .render(&text, &ctx)
                    .map_err(|e| failed(&key, e.to_string()))?;
                if rendered == text {
                    out.insert(key, value);
                } else if structured {
                    let parsed =
                        serde_json::from_str(&rendered).map_err(|e| failed(&key, e.to_string()))?;
                    out.insert(key, parsed);
                } else {
                    out.insert(key, Value::String(rendered));
                }
            }
            Ok(out)
        });
        job.await
            .map_err(|e| failed("", format!("rendering stopped: {e}")))?
    }

    /// Remove the rule `reference` while the engine runs (`DELETE /rules/<id>`); returns it.
    pub fn remove_rule(&self, reference: &str) -> Option<Arc<crate::model::Rule>> {
        let removed = self.inner.edit_catalog(|c| c.remove_rule(reference));
        self.inner.matcher.remove(reference);
        self.inner.index_triggers();
        removed
    }

    /// Add a policy, or replace the policy with the same ref, while the engine runs (the
    /// API's `POST /policies` / `PUT /policies/<id>`); returns the policy it replaced. The
    /// scheduler reads policies when it schedules, so the next executions of its action
    /// follow it.
    pub fn put_policy(&self, policy: crate::model::Policy) -> Option<Arc<crate::model::Policy>> {
        self.inner.edit_catalog(|c| c.insert_policy(policy))
    }

    /// Remove the policy `reference` while the engine runs (`DELETE /policies/<id>`);
    /// returns it.
    pub fn remove_policy(&self, reference: &str) -> Option<Arc<crate::model::Policy>> {
        self.inner.edit_catalog(|c| c.remove_policy(reference))
    }

    /// Unregister pack `pack` while the engine runs (`packs.uninstall`): the pack and its
    /// actions, rules, sensors, trigger types, policies, aliases, config and config schema
    /// leave the catalog, its rules stop matching and their parameterized triggers go. Rules
    /// of other packs that use its trigger types or actions stay (their enforcements fail
    /// until the content exists again). Sensors already running keep running until the next
    /// start. Returns what was removed (empty contents when the pack was not loaded).
    pub fn remove_pack(&self, pack: &str) -> crate::catalog::PackContents {
        let removed = self.inner.edit_catalog(|c| c.remove_pack(pack));
        for rule in &removed.rules {
            self.inner.matcher.remove(rule);
        }
        self.inner
            .payload_schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.inner.index_triggers();
        removed
    }

    /// The triggers with parameters the loaded rules listen to (webhook URLs, timers), by ref.
    pub fn parameterized_triggers(&self) -> Vec<(String, TriggerRef)> {
        let triggers = self
            .inner
            .triggers
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = triggers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Wait until the rules engine processed trigger instance `id`; returns it and the ids of
    /// the executions its rules started.
    ///
    /// # Errors
    /// [`EngineError::WaitTimeout`]; store errors.
    pub async fn wait_processed(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<(TriggerInstanceRecord, Vec<String>), EngineError> {
        let mut events = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(ti) = self.inner.store.trigger_instances().get(id).await?
                && !matches!(
                    ti.status,
                    crate::store::TriggerInstanceStatus::Pending
                        | crate::store::TriggerInstanceStatus::Processing
                )
            {
                let filter = ExecutionFilter {
                    trigger_instance: Some(id.to_owned()),
                    sort: crate::store::SortOrder::Ascending,
                    ..ExecutionFilter::default()
                };
                let executions = self.list(&filter, Page::all()).await?;
                return Ok((ti, executions.items.into_iter().map(|e| e.id).collect()));
            }
            let until = (tokio::time::Instant::now() + Duration::from_millis(500)).min(deadline);
            loop {
                match tokio::time::timeout_at(until, events.recv()).await {
                    Ok(Ok(EngineEvent::TriggerInstanceProcessed {
                        instance,
                        executions,
                    })) if instance.id == id => {
                        return Ok((Arc::unwrap_or_clone(instance), executions));
                    }
                    Ok(Ok(_)) => continue,
                    Ok(Err(broadcast::error::RecvError::Closed)) => {
                        return Err(EngineError::ShuttingDown);
                    }
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => break,
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EngineError::WaitTimeout(id.to_owned()));
            }
        }
    }

    /// Run an action (`st2 run`, `POST /executions`): render and check the parameters, create
    /// the execution and queue it. Returns the new execution (status `scheduled`, `delayed`
    /// or `requested`).
    ///
    /// # Errors
    /// [`EngineError::UnknownAction`], [`EngineError::ActionDisabled`],
    /// [`EngineError::InvalidParameters`], store errors.
    pub async fn run(
        &self,
        action: &str,
        parameters: Map<String, Value>,
        context: Map<String, Value>,
    ) -> Result<ExecutionRecord, EngineError> {
        let mut request = RunRequest::new(action, parameters);
        request.context = context;
        self.run_with(request).await
    }

    /// Run an action with a user, delay, parent or trace tag.
    ///
    /// # Errors
    /// As [`Engine::run`].
    pub async fn run_with(&self, request: RunRequest) -> Result<ExecutionRecord, EngineError> {
        executions::run(&self.inner, request).await
    }

    /// Run the action of execution `id` again (`POST /executions/<id>/re_run`): its parameters
    /// merged with `parameters` (unless `no_merge`), `context["re-run"] = {"ref": id}`, the
    /// same trace.
    ///
    /// # Errors
    /// [`EngineError::UnknownExecution`], and as [`Engine::run`].
    pub async fn re_run(
        &self,
        id: &str,
        parameters: Map<String, Value>,
        no_merge: bool,
        user: Option<String>,
    ) -> Result<ExecutionRecord, EngineError> {
        let again = ReRunRequest {
            parameters,
            no_merge,
            user,
            ..ReRunRequest::default()
        };
        executions::re_run(&self.inner, id, again).await
    }

    /// [`Engine::re_run`] with every option: a workflow re-run from `tasks` (StackStorm's
    /// `st2 execution re-run <id> --tasks t1 t2 --no-reset t1`) continues the original
    /// workflow's state from those tasks (`context["re-run"]` carries `tasks` and `reset`).
    ///
    /// # Errors
    /// As [`Engine::re_run`].
    pub async fn re_run_with(
        &self,
        id: &str,
        again: ReRunRequest,
    ) -> Result<ExecutionRecord, EngineError> {
        executions::re_run(&self.inner, id, again).await
    }

    /// One execution.
    ///
    /// # Errors
    /// Store errors.
    pub async fn get(&self, id: &str) -> Result<Option<ExecutionRecord>, EngineError> {
        Ok(self.inner.store.executions().get(id).await?)
    }

    /// Executions matching `filter`.
    ///
    /// # Errors
    /// Store errors.
    pub async fn list(
        &self,
        filter: &ExecutionFilter,
        page: Page,
    ) -> Result<Listing<ExecutionRecord>, EngineError> {
        Ok(self.inner.store.executions().list(filter, page).await?)
    }

    /// The output an execution produced so far. Every line already sent to
    /// [`subscribe`](Self::subscribe) receivers is in it: lines reach the event stream before
    /// the store, so this first waits for those still on their way to the store.
    ///
    /// # Errors
    /// Store errors.
    pub async fn output(&self, id: &str) -> Result<Vec<OutputChunk>, EngineError> {
        worker::flush_output(&self.inner).await;
        Ok(self
            .inner
            .store
            .execution_output()
            .list(id, None, None)
            .await?)
    }

    /// Wait until execution `id` completes (or `timeout` passes) and return it.
    ///
    /// # Errors
    /// [`EngineError::UnknownExecution`], [`EngineError::WaitTimeout`], store errors.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<ExecutionRecord, EngineError> {
        let deadline = tokio::time::Instant::now() + timeout;
        executions::wait_until(&self.inner, id, Some(deadline), |r| r.status.is_completed()).await
    }

    /// Cancel execution `id` on behalf of `user` (StackStorm's `request_cancellation`): one
    /// that is not running yet is `canceled` at once; a running one becomes `canceling`, its
    /// process is killed and it ends `canceled`.
    ///
    /// # Errors
    /// [`EngineError::UnknownExecution`]; [`EngineError::InvalidState`] for a completed one.
    pub async fn cancel(&self, id: &str, user: &str) -> Result<ExecutionRecord, EngineError> {
        executions::cancel(&self.inner, id, user).await
    }

    /// Pause execution `id` on behalf of `user` (`PUT /executions/<id> {"status": "pausing"}`):
    /// a running execution of a runner that supports pause (action-chain, workflows) becomes
    /// `pausing`, then `paused` when its runner stops; running children that support pause are
    /// paused with it. Pausing a `pausing` or `paused` one returns it unchanged.
    ///
    /// # Errors
    /// [`EngineError::UnknownExecution`]; [`EngineError::InvalidState`] when its runner cannot
    /// pause or it is not running.
    pub async fn pause(&self, id: &str, user: &str) -> Result<ExecutionRecord, EngineError> {
        executions::pause(&self.inner, id, user).await
    }

    /// Resume paused execution `id` on behalf of `user`: it becomes `resuming` and its runner
    /// continues where it stopped. Resuming a `running` or `resuming` one returns it unchanged.
    ///
    /// # Errors
    /// [`EngineError::UnknownExecution`]; [`EngineError::InvalidState`] when its runner cannot
    /// pause or it is not paused.
    pub async fn resume(&self, id: &str, user: &str) -> Result<ExecutionRecord, EngineError> {
        executions::resume(&self.inner, id, user).await
    }

    /// Respond to inquiry `id` as `user` (`PUT /inquiries/<id>`).
    ///
    /// # Errors
    /// [`EngineError::UnknownInquiry`]; [`EngineError::InvalidState`] when it is not pending,
    /// the user may not respond, or the response does not fit its schema.
    pub async fn respond_inquiry(
        &self,
        id: &str,
        response: Value,
        user: &str,
    ) -> Result<ExecutionRecord, EngineError> {
        executions::respond_inquiry(&self.inner, id, response, user).await
    }

    /// The datastore, emitting `core.st2.key_value_pair.*` triggers on writes.
    pub fn datastore(&self) -> EngineDatastore {
        EngineDatastore {
            engine: self.clone(),
        }
    }

    /// Stop the services: no new claims, running actions canceled, sensors stopped. Work not
    /// finished stays in the store for the next start.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let supervisor = self
            .inner
            .supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(supervisor) = supervisor {
            supervisor.shutdown().await;
        }
        // Running actions stop (their runners kill their processes) and their executions end
        // `abandoned`, as StackStorm's action runner does on shutdown; the runner service
        // waits for those writes before it ends.
        let cancellers: Vec<Canceller> = self
            .inner
            .cancellers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for c in cancellers {
            c.cancel();
        }
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

/// The datastore of an engine: StackStorm's key-value API. Every write through the engine's
/// datastore, here or by a sensor or runner, dispatches `core.st2.key_value_pair.create` /
/// `update` / `value_change` / `delete`.
#[derive(Debug, Clone)]
pub struct EngineDatastore {
    engine: Engine,
}

impl EngineDatastore {
    /// Set `name` (see [`Datastore::set`]).
    ///
    /// # Errors
    /// As [`Datastore::set`].
    pub async fn set(
        &self,
        selector: &KeySelector,
        name: &str,
        write: KeyWrite,
    ) -> Result<KeyValue, EngineError> {
        let change = self
            .engine
            .inner
            .datastore
            .set(selector, name, write)
            .await?;
        Ok(change.current)
    }

    /// Read `name` (see [`Datastore::get`]).
    ///
    /// # Errors
    /// As [`Datastore::get`].
    pub async fn get(
        &self,
        selector: &KeySelector,
        name: &str,
        decrypt: bool,
    ) -> Result<Option<KeyValue>, EngineError> {
        Ok(self
            .engine
            .inner
            .datastore
            .get(selector, name, decrypt)
            .await?)
    }

    /// List pairs (see [`Datastore::list`]).
    ///
    /// # Errors
    /// As [`Datastore::list`].
    pub async fn list(
        &self,
        selector: Option<&KeySelector>,
        prefix: Option<&str>,
        decrypt: bool,
        page: Page,
    ) -> Result<Listing<KeyValue>, EngineError> {
        Ok(self
            .engine
            .inner
            .datastore
            .list(selector, prefix, decrypt, page)
            .await?)
    }

    /// Delete `name`; returns it, `None` if it did not exist.
    ///
    /// # Errors
    /// As [`Datastore::delete`].
    pub async fn delete(
        &self,
        selector: &KeySelector,
        name: &str,
    ) -> Result<Option<KeyValue>, EngineError> {
        Ok(self.engine.inner.datastore.delete(selector, name).await?)
    }

    /// The underlying datastore service.
    pub fn service(&self) -> &Datastore {
        &self.engine.inner.datastore
    }
}

/// Dispatches for sensors without keeping the engine alive (no reference cycle through the
/// supervisor).
struct SensorDispatcher(std::sync::Weak<Inner>);

#[async_trait::async_trait]
impl crate::sensor::TriggerDispatcher for SensorDispatcher {
    async fn dispatch(
        &self,
        trigger: &str,
        payload: Value,
        trace_tag: Option<String>,
    ) -> Result<String, crate::sensor::DispatchError> {
        use crate::sensor::DispatchError;
        let Some(inner) = self.0.upgrade() else {
            return Err(DispatchError::Unavailable("the engine stopped".into()));
        };
        let mut request = DispatchRequest::new(trigger, payload);
        request.trace_tag = trace_tag;
        match triggers::dispatch(&inner, request).await {
            Ok(ti) => Ok(ti.id),
            Err(EngineError::UnknownTrigger(t)) => Err(DispatchError::UnknownTrigger(t)),
            Err(EngineError::InvalidPayload { trigger, message }) => {
                Err(DispatchError::InvalidPayload { trigger, message })
            }
            Err(e) => Err(DispatchError::Unavailable(e.to_string())),
        }
    }
}

#[async_trait::async_trait]
impl crate::sensor::TriggerDispatcher for Engine {
    async fn dispatch(
        &self,
        trigger: &str,
        payload: Value,
        trace_tag: Option<String>,
    ) -> Result<String, crate::sensor::DispatchError> {
        SensorDispatcher(Arc::downgrade(&self.inner))
            .dispatch(trigger, payload, trace_tag)
            .await
    }
}

/// Where sensors come from: the Rust sensors given to the builder, the factories that make
/// sensors for the packs' `sensors/*.yaml`, and how the supervisor restarts them.
pub(crate) struct SensorSources {
    registered: crate::sensor::SensorRegistry,
    factories: Vec<Arc<dyn crate::sensor::SensorFactory>>,
    settings: crate::sensor::SupervisorSettings,
}

/// Start every sensor registered with the builder, and every enabled sensor of the catalog a
/// factory makes.
async fn start_sensors(engine: &Engine) {
    let references: Vec<String> = {
        let sources = engine
            .inner
            .sensor_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let catalog = engine.catalog();
        let mut refs: Vec<String> = sources
            .registered
            .references()
            .into_iter()
            .map(str::to_owned)
            .collect();
        for metadata in catalog.sensors().filter(|s| s.enabled) {
            if !refs.contains(&metadata.reference) {
                refs.push(metadata.reference.clone());
            }
        }
        refs
    };
    for reference in references {
        start_sensor(engine, &reference).await;
    }
}

/// Whether a supervised sensor is running or will run again (not exited, given up or
/// stopped).
fn sensor_active(status: &crate::sensor::SensorStatus) -> bool {
    use crate::sensor::SensorState;
    matches!(
        status.state,
        SensorState::Starting | SensorState::Running | SensorState::Restarting
    )
}

/// Record sensor `reference` as enabled or not; `None` when the catalog has no such sensor.
fn set_sensor_flag(
    catalog: &mut Catalog,
    reference: &str,
    enabled: bool,
) -> Option<Arc<crate::model::Sensor>> {
    let mut sensor = (**catalog.sensor(reference)?).clone();
    sensor.enabled = enabled;
    catalog.insert_sensor(sensor);
    catalog.sensor(reference).cloned()
}

/// Start sensor `reference` when a registered sensor or a factory provides it; returns
/// whether it started.
async fn start_sensor(engine: &Engine, reference: &str) -> bool {
    if engine.inner.stopping.is_cancelled() {
        // After shutdown: a supervisor made now would never be stopped.
        return false;
    }
    let catalog = engine.catalog();
    let (sensor, settings) = {
        let sources = engine
            .inner
            .sensor_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let sensor = sources.registered.get(reference).cloned().or_else(|| {
            let metadata = catalog.sensor(reference)?;
            let pack_dir = catalog.pack(metadata.pack()).and_then(|p| p.path.clone());
            sources
                .factories
                .iter()
                .find_map(|f| f.create(metadata, pack_dir.as_deref()))
        });
        (sensor, sources.settings.clone())
    };
    let Some(sensor) = sensor else {
        return false;
    };
    let supervisor = engine
        .inner
        .supervisor
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(|| Arc::new(crate::sensor::SensorSupervisor::new(settings)))
        .clone();
    let dispatcher: Arc<dyn crate::sensor::TriggerDispatcher> =
        Arc::new(SensorDispatcher(Arc::downgrade(&engine.inner)));
    let (pack, class_name) = reference.split_once('.').unwrap_or(("", reference));
    // Sensors run as the system user; their config's dynamic values are rendered for it
    // (a value that fails to render is left as written).
    let config = {
        let inner = engine.inner.clone();
        let owned = pack.to_owned();
        tokio::task::spawn_blocking(move || {
            let catalog = inner.catalog();
            inner
                .pack_config(&catalog, &owned, &inner.settings.system_user)
                .unwrap_or_else(|_| catalog.resolved_config(&owned))
        })
        .await
        .unwrap_or_else(|_| catalog.resolved_config(pack))
    };
    let ctx =
        crate::sensor::SensorContext::new(pack, class_name, dispatcher, engine.inner.clock.clone())
            .with_config(config)
            .with_datastore(engine.inner.datastore.clone());
    // Refused only when it runs already or the engine is shutting down.
    supervisor.start(sensor, ctx).is_ok()
}

/// Turns datastore writes into `core.st2.key_value_pair.*` trigger instances.
struct KeyTriggers(std::sync::Weak<Inner>);

impl KeyTriggers {
    fn send(&self, events: Vec<(&'static str, Value)>) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            for (trigger, payload) in events {
                let mut request = DispatchRequest::new(trigger, payload);
                request.validate = false;
                // The write happened; a failed dispatch must not undo or fail it.
                let _ = triggers::dispatch(&inner, request).await;
            }
        });
    }
}

impl crate::datastore::KeyListener for KeyTriggers {
    fn written(&self, change: &crate::datastore::KeyChange) {
        let current = triggers::key_value_api(&change.current);
        let mut events = Vec::new();
        match &change.previous {
            None => events.push((
                "core.st2.key_value_pair.create",
                serde_json::json!({"object": current}),
            )),
            Some(previous) => {
                events.push((
                    "core.st2.key_value_pair.update",
                    serde_json::json!({"object": current}),
                ));
                if previous.record.value != change.current.record.value {
                    events.push((
                        "core.st2.key_value_pair.value_change",
                        serde_json::json!({
                            "old_object": triggers::key_value_api(previous),
                            "new_object": current,
                        }),
                    ));
                }
            }
        }
        self.send(events);
    }

    fn deleted(&self, pair: &KeyValue) {
        self.send(vec![(
            "core.st2.key_value_pair.delete",
            serde_json::json!({"object": triggers::key_value_api(pair)}),
        )]);
    }
}
