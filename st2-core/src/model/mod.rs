//! The content of packs, as StackStorm defines it: packs, actions, rules, sensors, trigger types,
//! policies, action aliases, runner types and pack configs.
//!
//! Each content type lives in one file that reads top to bottom: the YAML is first read into a
//! plain `*Spec` (every field checked, every problem recorded with its path), then `compile`
//! resolves references and builds the runtime object (`Action` with its merged parameter
//! schema, `Rule` with parsed criteria, …). Compiling never stops at the first problem.

pub(crate) mod fields;

pub mod action;
pub mod alias;
pub mod config;
pub mod operator;
pub mod pack;
pub mod policy;
pub mod rule;
pub mod runner_type;
pub mod sensor;
pub mod trigger_type;

pub use action::{Action, ActionSpec, Notify, NotifySettings, action_from_json};
pub use alias::{ActionAlias, ActionAliasSpec, AliasFormat, alias_from_json};
pub use config::{ConfigSchema, PackConfig};
pub use operator::Operator;
pub use pack::{Pack, PackMeta};
pub use policy::{Policy, PolicySpec, PolicyType, policy_from_json};
pub use rule::{Criterion, Rule, RuleAction, RuleKind, RuleSpec, RuleTrigger, rule_from_json};
pub use runner_type::RunnerType;
pub use sensor::{Sensor, SensorSpec};
pub use trigger_type::{TriggerType, TriggerTypeSpec};

use serde::Serialize;

/// A `{name, value}` tag on an action, rule or trigger type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    /// Tag name.
    pub name: String,
    /// Tag value.
    pub value: String,
}

/// The kinds of content a pack holds, named as StackStorm names its folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentKind {
    /// `triggers/`: stand-alone trigger types.
    Triggers,
    /// `sensors/`: sensor metadata (and the trigger types they declare).
    Sensors,
    /// `actions/`: action metadata.
    Actions,
    /// `rules/`.
    Rules,
    /// `aliases/`: ChatOps action aliases.
    Aliases,
    /// `policies/`.
    Policies,
}

impl ContentKind {
    /// All kinds, in StackStorm's registration order (trigger types before the rules that use
    /// them, actions before the policies and aliases that name them).
    pub const ALL: [ContentKind; 6] = [
        ContentKind::Triggers,
        ContentKind::Sensors,
        ContentKind::Actions,
        ContentKind::Rules,
        ContentKind::Aliases,
        ContentKind::Policies,
    ];

    /// The folder name inside a pack.
    pub fn dir(self) -> &'static str {
        match self {
            ContentKind::Triggers => "triggers",
            ContentKind::Sensors => "sensors",
            ContentKind::Actions => "actions",
            ContentKind::Rules => "rules",
            ContentKind::Aliases => "aliases",
            ContentKind::Policies => "policies",
        }
    }

    /// A singular noun with article, for messages ("an action").
    pub fn noun(self) -> &'static str {
        match self {
            ContentKind::Triggers => "a trigger type",
            ContentKind::Sensors => "a sensor",
            ContentKind::Actions => "an action",
            ContentKind::Rules => "a rule",
            ContentKind::Aliases => "an action alias",
            ContentKind::Policies => "a policy",
        }
    }
}

/// Where a resource was defined: the pack it belongs to and its metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Origin {
    /// The owning pack's ref.
    pub pack: String,
    /// The metadata file relative to the pack directory (StackStorm's `metadata_file`), e.g.
    /// `actions/local.yaml`. Empty for content created in code.
    pub metadata_file: String,
}

/// Read the `pack:` field of a resource file: it may be absent or empty (the resource then
/// belongs to the pack being loaded) or name that pack (by ref or, as StackStorm compares it,
/// by directory name). Returns an error message when it names another pack.
pub(crate) fn check_pack_field(
    fields: &mut fields::Fields<'_>,
    pack: &crate::model::pack::PackIdentity,
    issues: &mut crate::diagnostic::Issues,
) {
    if let Some(declared) = fields.str("pack", issues)
        && !declared.is_empty()
        && declared != pack.reference
        && declared != pack.dir_name
    {
        issues.error(
            &fields.child("pack"),
            format!(
                "resource is in pack `{}` but its `pack` field says `{declared}`",
                pack.reference
            ),
        );
    }
}

/// The first half of compiling a resource given as an API body (`POST /actions`, `/rules`,
/// `/policies`): read its spec with `read` as if it were a file of the pack its `pack` field
/// names (`default` when absent or empty). Returns the spec, the origin to compile it with and
/// the issues so far; when the body cannot be read, every error found (or `not_an_object` when
/// the reader recorded none).
pub(crate) fn read_api_body<S>(
    value: &serde_json::Value,
    not_an_object: &str,
    read: impl FnOnce(
        &serde_json::Value,
        &pack::PackIdentity,
        &mut crate::diagnostic::Issues,
    ) -> Option<S>,
) -> Result<(S, Origin, crate::diagnostic::Issues), Vec<String>> {
    let pack = value
        .get("pack")
        .and_then(serde_json::Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or("default")
        .to_owned();
    let identity = pack::PackIdentity {
        reference: pack.clone(),
        dir_name: pack.clone(),
    };
    let mut issues = crate::diagnostic::Issues::new();
    let spec = read(value, &identity, &mut issues);
    let Some(spec) = spec.filter(|_| !issues.has_errors()) else {
        let mut found = error_messages(issues);
        if found.is_empty() {
            found.push(not_an_object.to_owned());
        }
        return Err(found);
    };
    let origin = Origin {
        pack,
        metadata_file: String::new(),
    };
    Ok((spec, origin, issues))
}

/// The second half: what compiling produced, or every error recorded on the way.
pub(crate) fn compiled<T>(
    compiled: Option<T>,
    issues: crate::diagnostic::Issues,
) -> Result<T, Vec<String>> {
    match compiled {
        Some(value) if !issues.has_errors() => Ok(value),
        _ => Err(error_messages(issues)),
    }
}

/// The errors among `issues` as `<field>: <message>` lines (for content given as JSON, where
/// there is no file line to point at).
pub(crate) fn error_messages(issues: crate::diagnostic::Issues) -> Vec<String> {
    issues
        .into_vec()
        .into_iter()
        .filter(|i| i.severity == crate::diagnostic::Severity::Error)
        .map(|i| {
            if i.path.is_root() {
                i.message
            } else {
                format!("{}: {}", i.path, i.message)
            }
        })
        .collect()
}
