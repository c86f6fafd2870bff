//! Actions: what a pack can do. Each `actions/*.yaml` names a runner, an entry point and the
//! parameters callers may pass.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::diagnostic::{FieldPath, Issues, Severity};
use crate::model::fields::{Fields, read_tags};
use crate::model::pack::PackIdentity;
use crate::model::runner_type::RunnerType;
use crate::model::{Origin, Tag, check_pack_field};
use crate::reference;
use crate::schema::{self, ParamMap, Schema};

/// An action as written in its metadata file.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionSpec {
    /// Name, unique in the pack.
    pub name: String,
    /// What the action does.
    pub description: Option<String>,
    /// Disabled actions cannot be run.
    pub enabled: bool,
    /// The runner type that executes it.
    pub runner_type: String,
    /// Script or workflow file, relative to the pack's `actions/` folder.
    pub entry_point: String,
    /// The action's own parameter declarations (runner parameters may be re-declared).
    pub parameters: Map<String, Value>,
    /// Schema of the result (also marks result fields as secret).
    pub output_schema: Map<String, Value>,
    /// Notifications sent when executions finish.
    pub notify: Option<Notify>,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// When to notify and how (`notify:` in action metadata).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Notify {
    /// Sent for every finished execution.
    #[serde(rename = "on-complete", skip_serializing_if = "Option::is_none")]
    pub on_complete: Option<NotifySettings>,
    /// Sent when the execution succeeded.
    #[serde(rename = "on-success", skip_serializing_if = "Option::is_none")]
    pub on_success: Option<NotifySettings>,
    /// Sent when it failed, timed out or was abandoned.
    #[serde(rename = "on-failure", skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<NotifySettings>,
}

/// One notification: a message, extra data and the routes (chat channels) it goes to.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct NotifySettings {
    /// Jinja template of the message.
    pub message: Option<String>,
    /// Extra data (values may be templates).
    pub data: Map<String, Value>,
    /// Routes (`routes`, or the deprecated `channels`).
    pub routes: Vec<String>,
}

/// A compiled action: its metadata plus the merged runner + action parameter schema.
#[derive(Debug, Clone)]
pub struct Action {
    /// `<pack>.<name>`.
    pub reference: String,
    /// Name within the pack.
    pub name: String,
    /// Where it was defined.
    pub origin: Origin,
    /// What it does.
    pub description: Option<String>,
    /// Disabled actions cannot be run.
    pub enabled: bool,
    /// The runner type name.
    pub runner_type: String,
    /// Script or workflow file relative to the pack's `actions/` folder.
    pub entry_point: String,
    /// The action's own parameter declarations, as written (shared with [`Action::schema`]).
    pub parameters: Arc<ParamMap>,
    /// Runner and action parameters merged, with a draft-4 validator.
    pub schema: Arc<Schema>,
    /// Schema of the result. Most actions have none, and a catalog holds thousands of actions:
    /// those share one empty map.
    pub output_schema: Arc<Map<String, Value>>,
    /// Notifications.
    pub notify: Option<Box<Notify>>,
    /// Tags.
    pub tags: Vec<Tag>,
}

impl Action {
    /// The pack it belongs to.
    pub fn pack(&self) -> &str {
        &self.origin.pack
    }

    /// True for workflow runners (`action-chain`, `orquesta`), whose executions have children.
    pub fn is_workflow(&self) -> bool {
        matches!(self.runner_type.as_str(), "action-chain" | "orquesta")
    }
}

/// Compile an action given as a JSON object (the body of the API's `POST /actions` or `PUT
/// /actions/<id>`) against the runner types `catalog` holds, with the checks an action file
/// gets. `pack` defaults to `default`; `id`, `ref`, `uid` and `metadata_file` are accepted and
/// ignored. The action's files, if any, are the pack's on disk.
///
/// # Errors
/// Every error found, as `<field>: <message>` lines.
pub fn action_from_json(
    value: &Value,
    catalog: &crate::catalog::Catalog,
) -> Result<Action, Vec<String>> {
    let (spec, origin, mut issues) =
        crate::model::read_api_body(value, "the action must be a JSON object", ActionSpec::read)?;
    let runner = catalog.runner_type(&spec.runner_type).cloned();
    let action = spec.compile(origin, runner.as_deref(), &mut issues);
    crate::model::compiled(action, issues)
}

impl ActionSpec {
    /// Read action metadata, checking every field the way StackStorm's action schema does
    /// (unknown fields are rejected).
    pub(crate) fn read(value: &Value, pack: &PackIdentity, issues: &mut Issues) -> Option<Self> {
        Self::read_with(value, pack, issues, true)
    }

    /// [`ActionSpec::read`] of metadata read before (a packed action of the catalog): the
    /// parameter and output schemas, checked then, are not walked again.
    pub(crate) fn reread(value: &Value, pack: &PackIdentity) -> Option<Self> {
        Self::read_with(value, pack, &mut Issues::new(), false)
    }

    fn read_with(
        value: &Value,
        pack: &PackIdentity,
        issues: &mut Issues,
        check_schemas: bool,
    ) -> Option<Self> {
        let mut f = Fields::of(value, FieldPath::root(), "action metadata", issues)?;
        check_pack_field(&mut f, pack, issues);
        let name = f.req_str("name", issues);
        let description = f.str("description", issues).map(str::to_owned);
        let enabled = f.bool("enabled", issues).unwrap_or(true);
        let runner_type = f.req_str("runner_type", issues);
        let entry_point = f.str("entry_point", issues).unwrap_or_default().to_owned();
        let parameters = f.object("parameters", issues).cloned().unwrap_or_default();
        if check_schemas {
            schema::check_parameters(&parameters, &f.child("parameters"), issues);
        }
        let output_schema = f
            .object("output_schema", issues)
            .cloned()
            .unwrap_or_default();
        if check_schemas {
            check_output_schema(&output_schema, &f.child("output_schema"), issues);
        }
        let notify = read_notify(&mut f, issues);
        let tags = read_tags(&mut f, issues);
        f.accept(&["metadata_file", "id", "ref", "uid"]);
        f.finish("action metadata", Severity::Error, issues);
        Some(ActionSpec {
            name: name?.to_owned(),
            description,
            enabled,
            runner_type: runner_type?.to_owned(),
            entry_point,
            parameters,
            output_schema,
            notify,
            tags,
        })
    }

    /// Resolve the runner and build the merged parameter schema.
    pub(crate) fn compile(
        self,
        origin: Origin,
        runner: Option<&RunnerType>,
        issues: &mut Issues,
    ) -> Option<Action> {
        self.build(origin, runner, issues, true)
    }

    /// [`ActionSpec::compile`] of metadata that compiled before (a packed action of the
    /// catalog): the warnings it had then are not looked for again.
    pub(crate) fn recompile(self, origin: Origin, runner: Option<&RunnerType>) -> Option<Action> {
        self.build(origin, runner, &mut Issues::new(), false)
    }

    fn build(
        self,
        origin: Origin,
        runner: Option<&RunnerType>,
        issues: &mut Issues,
        lint: bool,
    ) -> Option<Action> {
        let reference = reference::join(&origin.pack, &self.name);
        let Some(runner) = runner else {
            issues.error(
                &FieldPath::root().key("runner_type"),
                format!(
                    "runner type `{}` does not exist (action `{reference}`)",
                    self.runner_type
                ),
            );
            return None;
        };
        let params_path = FieldPath::root().key("parameters");
        let before = issues.error_count();
        schema::check_against_runner(
            &reference,
            &self.parameters,
            &runner.runner_parameters,
            &params_path,
            issues,
        );
        if issues.error_count() > before {
            return None;
        }
        if lint {
            let merged = schema::merge_parameters(&runner.runner_parameters, &self.parameters);
            schema::lint_parameters(&merged, self.parameters.keys(), &params_path, issues);
        }
        // The merged definitions are built again when first asked for: thousands of loaded
        // actions are never run, and each would otherwise hold its runner's parameters again.
        let parameters = Arc::new(ParamMap::parsed(self.parameters));
        let compiled =
            Schema::for_merged_parameters(runner.runner_parameters.clone(), parameters.clone());
        Some(Action {
            reference,
            name: self.name,
            origin,
            description: self.description,
            enabled: self.enabled,
            runner_type: self.runner_type,
            entry_point: self.entry_point,
            parameters,
            schema: Arc::new(compiled),
            output_schema: shared_map(self.output_schema),
            notify: self.notify.map(Box::new),
            tags: self.tags,
        })
    }
}

/// `map` behind an `Arc`; every empty map shares one allocation.
fn shared_map(map: Map<String, Value>) -> Arc<Map<String, Value>> {
    static EMPTY: std::sync::LazyLock<Arc<Map<String, Value>>> =
        std::sync::LazyLock::new(|| Arc::new(Map::new()));
    if map.is_empty() {
        EMPTY.clone()
    } else {
        Arc::new(map)
    }
}

/// An output schema is checked like a parameter definition, except that unknown top-level keys
/// are allowed (a "legacy" output schema is a bare mapping of result properties).
fn check_output_schema(schema: &Map<String, Value>, path: &FieldPath, issues: &mut Issues) {
    let known: Map<String, Value> = schema
        .iter()
        .filter(|(k, _)| k.as_str() != "format" && schema::KEYWORDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !known.is_empty() {
        schema::check_definition(&Value::Object(known), path, "output schema", issues);
    }
}

fn read_notify(f: &mut Fields<'_>, issues: &mut Issues) -> Option<Notify> {
    let map = f.object("notify", issues)?;
    let path = f.child("notify");
    let mut nf = Fields::new(map, path.clone());
    let mut notify = Notify::default();
    for (key, slot) in [
        ("on-complete", &mut notify.on_complete),
        ("on-success", &mut notify.on_success),
        ("on-failure", &mut notify.on_failure),
    ] {
        let Some(v) = nf.value(key) else { continue };
        let Some(mut sf) = Fields::of(v, path.key(key), "a notification", issues) else {
            continue;
        };
        let message = sf.str("message", issues).map(str::to_owned);
        let data = sf.object("data", issues).cloned().unwrap_or_default();
        let mut routes = sf.strings("routes", issues);
        routes.extend(sf.strings("channels", issues));
        sf.finish("a notification", Severity::Error, issues);
        *slot = Some(NotifySettings {
            message,
            data,
            routes,
        });
    }
    nf.finish("`notify`", Severity::Error, issues);
    Some(notify)
}
