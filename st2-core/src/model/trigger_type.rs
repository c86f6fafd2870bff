//! Trigger types: the kinds of events rules can react to. A pack declares them in
//! `triggers/*.yaml` or inside a sensor's `trigger_types` list; the system ones
//! (`core.st2.webhook`, the timers, …) are built in.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::diagnostic::{FieldPath, Issues, Severity};
use crate::model::fields::{Fields, read_tags};
use crate::model::pack::PackIdentity;
use crate::model::{Origin, Tag, check_pack_field};
use crate::reference;
use crate::schema::Schema;

/// A trigger type as written.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerTypeSpec {
    /// Name, unique in the pack (may contain dots: `st2.webhook`).
    pub name: String,
    /// What the events are.
    pub description: Option<String>,
    /// JSON schema of the event payload.
    pub payload_schema: Map<String, Value>,
    /// JSON schema of the parameters a rule gives (empty: the type takes none).
    pub parameters_schema: Map<String, Value>,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// A registered trigger type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerType {
    /// `<pack>.<name>`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Name within the pack.
    pub name: String,
    /// Where it was defined.
    #[serde(flatten)]
    pub origin: Origin,
    /// What the events are.
    pub description: Option<String>,
    /// JSON schema of the payload.
    pub payload_schema: Map<String, Value>,
    /// JSON schema of rule parameters.
    pub parameters_schema: Map<String, Value>,
    /// Tags.
    pub tags: Vec<Tag>,
}

impl TriggerType {
    /// The pack it belongs to.
    pub fn pack(&self) -> &str {
        &self.origin.pack
    }

    /// True when rules must give parameters to use it (a webhook URL, a timer interval); types
    /// without parameters have a single implicit trigger.
    pub fn takes_parameters(&self) -> bool {
        !self.parameters_schema.is_empty()
    }
}

/// Where a trigger type definition sits, which decides how its `pack` field is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// A `triggers/*.yaml` file: `pack`, if given, must name this pack.
    File,
    /// An item of a sensor's `trigger_types`: the pack is always the sensor's.
    InSensor,
}

impl TriggerTypeSpec {
    /// Read a trigger type definition. StackStorm keeps only the fields it knows and ignores
    /// the others, so unknown fields are warnings.
    pub(crate) fn read(
        value: &Value,
        path: FieldPath,
        pack: &PackIdentity,
        placement: Placement,
        issues: &mut Issues,
    ) -> Option<Self> {
        let mut f = Fields::of(value, path, "a trigger type", issues)?;
        match placement {
            Placement::File => check_pack_field(&mut f, pack, issues),
            Placement::InSensor => f.accept(&["pack"]),
        }
        let name = f.req_str("name", issues);
        let description = f.str("description", issues).map(str::to_owned);
        let payload_schema = f
            .object("payload_schema", issues)
            .cloned()
            .unwrap_or_default();
        let parameters_schema = f
            .object("parameters_schema", issues)
            .cloned()
            .unwrap_or_default();
        for (key, schema) in [
            ("parameters_schema", &parameters_schema),
            ("payload_schema", &payload_schema),
        ] {
            if !schema.is_empty()
                && let Err(e) = Schema::for_object(Value::Object(schema.clone())).check()
            {
                issues.warning(
                    &f.child(key),
                    format!("`{key}` cannot be used to validate anything: {e}"),
                );
            }
        }
        let tags = read_tags(&mut f, issues);
        f.accept(&["metadata_file", "id", "ref", "uid"]);
        f.finish("a trigger type", Severity::Warning, issues);
        Some(TriggerTypeSpec {
            name: name?.to_owned(),
            description,
            payload_schema,
            parameters_schema,
            tags,
        })
    }

    /// The registered trigger type.
    pub(crate) fn compile(self, origin: Origin) -> TriggerType {
        TriggerType {
            reference: reference::join(&origin.pack, &self.name),
            name: self.name,
            origin,
            description: self.description,
            payload_schema: self.payload_schema,
            parameters_schema: self.parameters_schema,
            tags: self.tags,
        }
    }
}
