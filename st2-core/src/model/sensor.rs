//! Sensors: long-running watchers that turn outside events into triggers. The metadata
//! (`sensors/*.yaml`) names the code to run and declares the trigger types it emits.

use serde::Serialize;
use serde_json::Value;

use crate::diagnostic::{FieldPath, Issues, Severity};
use crate::model::fields::Fields;
use crate::model::pack::PackIdentity;
use crate::model::trigger_type::{Placement, TriggerType, TriggerTypeSpec};
use crate::model::{Origin, check_pack_field};
use crate::reference;

/// StackStorm's smallest accepted `poll_interval`, in seconds.
pub const MINIMUM_POLL_INTERVAL: f64 = 4.0;

/// Sensor metadata as written.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorSpec {
    /// The class implementing the sensor; the sensor ref is `<pack>.<class_name>`.
    pub class_name: String,
    /// The code file, relative to the pack's `sensors/` folder.
    pub entry_point: String,
    /// What it watches.
    pub description: Option<String>,
    /// Disabled sensors are not started.
    pub enabled: bool,
    /// Seconds between polls, for polling sensors.
    pub poll_interval: Option<f64>,
    /// Trigger types the sensor emits (they belong to the sensor's pack).
    pub trigger_types: Vec<TriggerTypeSpec>,
}

/// A registered sensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensor {
    /// `<pack>.<class_name>`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The implementing class.
    pub class_name: String,
    /// Where it was defined.
    #[serde(flatten)]
    pub origin: Origin,
    /// The code file relative to `sensors/`.
    pub entry_point: String,
    /// What it watches.
    pub description: Option<String>,
    /// Disabled sensors are not started.
    pub enabled: bool,
    /// Seconds between polls.
    pub poll_interval: Option<f64>,
    /// Refs of the trigger types it emits.
    pub trigger_types: Vec<String>,
}

impl Sensor {
    /// The pack it belongs to.
    pub fn pack(&self) -> &str {
        &self.origin.pack
    }
}

impl SensorSpec {
    /// Read sensor metadata. StackStorm does not validate sensor files against a schema, so
    /// unknown fields are warnings; a missing `class_name` or `entry_point` is an error.
    pub(crate) fn read(value: &Value, pack: &PackIdentity, issues: &mut Issues) -> Option<Self> {
        let mut f = Fields::of(value, FieldPath::root(), "sensor metadata", issues)?;
        check_pack_field(&mut f, pack, issues);
        let class_name = f.req_str("class_name", issues);
        let entry_point = f.req_str("entry_point", issues);
        let description = f.str("description", issues).map(str::to_owned);
        let enabled = f.bool("enabled", issues).unwrap_or(true);
        let poll_interval = f.number("poll_interval", issues).filter(|p| *p != 0.0);
        if let Some(p) = poll_interval
            && p < MINIMUM_POLL_INTERVAL
        {
            issues.error(
                &f.child("poll_interval"),
                format!(
                    "`poll_interval` must be at least {MINIMUM_POLL_INTERVAL} seconds, not {p}"
                ),
            );
        }
        let mut trigger_types = Vec::new();
        if let Some(items) = f.array("trigger_types", issues) {
            let path = f.child("trigger_types");
            for (i, item) in items.iter().enumerate() {
                if let Some(t) =
                    TriggerTypeSpec::read(item, path.index(i), pack, Placement::InSensor, issues)
                {
                    trigger_types.push(t);
                }
            }
        }
        f.accept(&["metadata_file", "artifact_uri", "id", "ref", "uid"]);
        f.finish("sensor metadata", Severity::Warning, issues);
        Some(SensorSpec {
            class_name: class_name?.to_owned(),
            entry_point: entry_point?.to_owned(),
            description,
            enabled,
            poll_interval,
            trigger_types,
        })
    }

    /// The registered sensor and the trigger types it declares.
    pub(crate) fn compile(self, origin: Origin) -> (Sensor, Vec<TriggerType>) {
        let trigger_types: Vec<TriggerType> = self
            .trigger_types
            .into_iter()
            .map(|t| t.compile(origin.clone()))
            .collect();
        let sensor = Sensor {
            reference: reference::join(&origin.pack, &self.class_name),
            class_name: self.class_name,
            origin,
            entry_point: self.entry_point,
            description: self.description,
            enabled: self.enabled,
            poll_interval: self.poll_interval,
            trigger_types: trigger_types.iter().map(|t| t.reference.clone()).collect(),
        };
        (sensor, trigger_types)
    }
}
