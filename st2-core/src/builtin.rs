//! Content compiled into the library, so nothing needs installing: StackStorm's runner types,
//! policy types, system trigger types and the `core` pack.
//!
//! The content is kept as YAML files under `st2-core/builtin/` in exactly the formats users
//! write, and goes through the same loader as any pack.

use serde_json::Value;

use crate::diagnostic::{FieldPath, Issues};
use crate::model::pack::PackIdentity;
use crate::model::trigger_type::{Placement, TriggerTypeSpec};
use crate::model::{Origin, PolicyType, RunnerType, TriggerType};
use crate::reference::SYSTEM_PACK;
use crate::yaml::{YamlLimits, parse_str};

/// A file compiled into the library.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedFile {
    /// Path relative to the pack directory, e.g. `actions/local.yaml`.
    pub path: &'static str,
    /// The file's text.
    pub text: &'static str,
}

macro_rules! embed {
    ($pack:literal: $($path:literal),* $(,)?) => {
        &[$(EmbeddedFile { path: $path, text: include_str!(concat!("../builtin/packs/", $pack, "/", $path)) }),*]
    };
}

/// The built-in `core` pack.
pub const CORE_PACK: &[EmbeddedFile] = embed![
    "core":
    "pack.yaml",
    "actions/announcement.yaml",
    "actions/ask.yaml",
    "actions/echo.yaml",
    "actions/error.yaml",
    "actions/http.yaml",
    "actions/inject_trigger.yaml",
    "actions/local.yaml",
    "actions/local_sudo.yaml",
    "actions/noop.yaml",
    "actions/pause.yaml",
    "actions/remote.yaml",
    "actions/remote_sudo.yaml",
    "actions/sendmail.yaml",
    "actions/uuid.yaml",
    "actions/winrm_cmd.yaml",
    "actions/winrm_ps_cmd.yaml",
];

/// The built-in `packs` pack: `packs.install` and `packs.uninstall`, run by the
/// `pack-manager` runner (which the server registers).
pub const PACKS_PACK: &[EmbeddedFile] = embed![
    "packs":
    "pack.yaml",
    "actions/install.yaml",
    "actions/uninstall.yaml",
];

/// The packs compiled into the library, by ref; a pack with the same ref found in a packs
/// directory replaces the built-in one.
pub const BUILTIN_PACKS: &[(&str, &[EmbeddedFile])] =
    &[(SYSTEM_PACK, CORE_PACK), ("packs", PACKS_PACK)];

const RUNNERS: &str = include_str!("../builtin/runners.yaml");
const POLICY_TYPES: &str = include_str!("../builtin/policy_types.yaml");
const TRIGGER_TYPES: &str = include_str!("../builtin/trigger_types.yaml");

/// Parse one embedded list file. The files are part of this crate and the test
/// `builtin_content_is_clean` proves they parse without a single issue, so a failure here is a
/// build defect, not bad input.
fn embedded_list(name: &str, text: &str) -> Vec<Value> {
    let doc = parse_str(text, &YamlLimits::default())
        .unwrap_or_else(|e| panic!("built-in {name} is not valid YAML: {e}"));
    match doc.to_json() {
        Value::Array(items) => items,
        _ => panic!("built-in {name} must be a list"),
    }
}

fn read_all<T>(
    name: &str,
    text: &str,
    read: impl Fn(&Value, FieldPath, &mut Issues) -> Option<T>,
) -> Vec<T> {
    let mut issues = Issues::new();
    let items: Vec<T> = embedded_list(name, text)
        .iter()
        .enumerate()
        .filter_map(|(i, v)| read(v, FieldPath::root().index(i), &mut issues))
        .collect();
    assert!(
        !issues.has_errors(),
        "built-in {name} has errors: {:?}",
        issues.into_vec()
    );
    items
}

/// StackStorm's runner types with their runner parameters.
pub fn runner_types() -> Vec<RunnerType> {
    read_all("runners.yaml", RUNNERS, RunnerType::read)
}

/// StackStorm's policy types.
pub fn policy_types() -> Vec<PolicyType> {
    read_all("policy_types.yaml", POLICY_TYPES, PolicyType::read)
}

/// The system trigger types of pack `core` (webhook, timers, engine events).
pub fn trigger_types() -> Vec<TriggerType> {
    let core = PackIdentity {
        reference: SYSTEM_PACK.to_owned(),
        dir_name: SYSTEM_PACK.to_owned(),
    };
    read_all("trigger_types.yaml", TRIGGER_TYPES, |v, path, issues| {
        TriggerTypeSpec::read(v, path, &core, Placement::InSensor, issues)
    })
    .into_iter()
    .map(|spec| {
        spec.compile(Origin {
            pack: SYSTEM_PACK.to_owned(),
            metadata_file: String::new(),
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_content_is_clean() {
        let runners = runner_types();
        let names: Vec<_> = runners.iter().map(|r| r.name.as_str()).collect();
        for expected in [
            "noop",
            "local-shell-cmd",
            "local-shell-script",
            "remote-shell-cmd",
            "remote-shell-script",
            "http-request",
            "python-script",
            "action-chain",
            "orquesta",
            "inquirer",
            "announcement",
            "rhai-script",
            "winrm-cmd",
            "winrm-ps-cmd",
            "winrm-ps-script",
        ] {
            assert!(names.contains(&expected), "missing runner {expected}");
        }
        let policy_refs: Vec<_> = policy_types().into_iter().map(|p| p.reference).collect();
        assert_eq!(
            policy_refs,
            [
                "action.concurrency",
                "action.concurrency.attr",
                "action.retry"
            ]
        );
        let triggers: Vec<_> = trigger_types().into_iter().map(|t| t.reference).collect();
        assert_eq!(triggers.len(), 14);
        assert!(triggers.contains(&"core.st2.webhook".to_owned()));
        assert!(triggers.contains(&"core.st2.CronTimer".to_owned()));
    }
}
