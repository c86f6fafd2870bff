//! Python sensors: a pack's `Sensor`/`PollingSensor` class run in a child Python process,
//! its `sensor_service` calls (dispatch, datastore) answered through the sensor's context.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use st2_core::datastore::Datastore;
use st2_core::model::sensor::Sensor as SensorMetadata;
use st2_core::runner::OutputSink;
use st2_core::sensor::{Sensor, SensorContext, SensorError, SensorFactory};
use st2_core::store::OutputType;

use super::{PythonEnv, PythonSettings, channel};
use crate::process::{self, Ending};

/// How many of the last stderr lines a failed sensor's error quotes.
const STDERR_TAIL: usize = 20;

/// Makes a [`PythonSensor`] for every sensor whose `entry_point` is a `.py` file (give it to
/// `EngineBuilder::sensor_factory`).
#[derive(Debug, Clone)]
pub struct PythonSensorFactory {
    env: Arc<PythonEnv>,
}

impl PythonSensorFactory {
    /// A factory with `settings` (use [`super::PythonRunner::sensor_factory`] to share the
    /// runner's).
    pub fn new(settings: PythonSettings) -> Self {
        Self::from_env(PythonEnv::new(settings))
    }

    pub(crate) fn from_env(env: Arc<PythonEnv>) -> Self {
        Self { env }
    }
}

impl SensorFactory for PythonSensorFactory {
    fn create(
        &self,
        metadata: &SensorMetadata,
        pack_dir: Option<&Path>,
    ) -> Option<Arc<dyn Sensor>> {
        if !metadata.entry_point.ends_with(".py") {
            return None;
        }
        Some(Arc::new(PythonSensor {
            env: self.env.clone(),
            metadata: metadata.clone(),
            pack_dir: pack_dir?.to_path_buf(),
        }))
    }
}

/// One Python sensor class of a pack, run in its own Python process per run (StackStorm's
/// sensor wrapper): `setup()`, then `run()` (for a `PollingSensor`, `poll()` every
/// `poll_interval` seconds), and `cleanup()` when it is stopped (SIGTERM).
#[derive(Debug)]
pub struct PythonSensor {
    env: Arc<PythonEnv>,
    metadata: SensorMetadata,
    pack_dir: PathBuf,
}

/// The channel host of a sensor: its context.
struct SensorHost(SensorContext);

#[async_trait]
impl channel::Host for SensorHost {
    fn datastore(&self) -> Option<&Datastore> {
        self.0.datastore.as_ref()
    }

    async fn dispatch(
        &self,
        trigger: &str,
        payload: Value,
        trace_tag: Option<String>,
    ) -> Result<Value, String> {
        let id = match trace_tag {
            Some(tag) => self.0.dispatch_with_trace_tag(trigger, payload, tag).await,
            None => self.0.dispatch(trigger, payload).await,
        };
        id.map(Value::String).map_err(|e| e.to_string())
    }
}

/// Keeps the last lines of a sensor's stderr for its error message.
#[derive(Debug, Default)]
struct StderrTail(Mutex<VecDeque<String>>);

impl OutputSink for StderrTail {
    fn emit(&self, output_type: OutputType, data: &str) {
        if output_type != OutputType::Stderr {
            return;
        }
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == STDERR_TAIL {
            lines.pop_front();
        }
        lines.push_back(data.to_owned());
    }
}

impl StderrTail {
    fn text(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(String::as_str)
            .collect()
    }
}

#[async_trait]
impl Sensor for PythonSensor {
    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError> {
        let file = self
            .pack_dir
            .join("sensors")
            .join(&self.metadata.entry_point);
        if !file.is_file() {
            return Err(SensorError::Failed(format!(
                "sensor {}: entry point {} does not exist",
                self.metadata.reference,
                file.display()
            )));
        }
        let mut command = self
            .env
            .command(self.metadata.pack(), &self.pack_dir, "sensor")
            .await
            .map_err(SensorError::Failed)?;
        command.env("ST2_SENSOR_REF", &self.metadata.reference);
        let job = json!({
            "pack": self.metadata.pack(),
            "file": file,
            "class_name": self.metadata.class_name,
            "poll_interval": self.metadata.poll_interval,
            "trigger_types": self.metadata.trigger_types,
            "config": ctx.config,
        });
        let shutdown = ctx.shutdown.clone();
        let channel = channel::open(job, Arc::new(SensorHost(ctx)))
            .map_err(|e| SensorError::Failed(format!("cannot open the sensor's channel: {e}")))?;
        command.stdin(channel.child_end);
        let tail = Arc::new(StderrTail::default());
        // A sensor runs until it ends or is stopped: no timeout of its own.
        let forever = Duration::from_secs(100 * 365 * 24 * 3600);
        let run = process::supervise(command, None, forever, false, tail.clone(), &shutdown)
            .await
            .map_err(|e| SensorError::Failed(format!("could not start Python: {e}")))?;
        channel.served.abort();
        match (run.ending, run.exit_code) {
            (Ending::Canceled, _) | (Ending::Exited, 0) => Ok(()),
            (_, code) => Err(SensorError::Failed(format!(
                "sensor {} exited with code {code}: {}",
                self.metadata.reference,
                tail.text().trim_end()
            ))),
        }
    }
}
