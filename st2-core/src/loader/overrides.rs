//! Overrides: `<overrides dir>/_global.yaml` and `<overrides dir>/<pack>.yaml` switch resources
//! on or off without editing the pack (StackStorm 3.7+).
//!
//! ```yaml
//! actions:
//!   defaults: {enabled: false}
//!   exceptions:
//!     my_action: {enabled: true}
//! ```
//! Keys are `actions`, `rules`, `sensors` (by class name) and `aliases`; only `enabled` may be
//! overridden; `exceptions` apply in pack files only.

use std::collections::HashMap;

use serde_json::Value;

use crate::diagnostic::{FieldPath, Issues, Severity};
use crate::model::ContentKind;
use crate::model::fields::{Fields, describe};

/// The override settings for one content kind, from one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KindOverride {
    pub defaults_enabled: Option<bool>,
    pub exceptions: HashMap<String, bool>,
}

/// One override file, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OverrideFile {
    pub kinds: HashMap<ContentKind, KindOverride>,
}

const OVERRIDABLE: &[(&str, ContentKind)] = &[
    ("actions", ContentKind::Actions),
    ("rules", ContentKind::Rules),
    ("sensors", ContentKind::Sensors),
    ("aliases", ContentKind::Aliases),
];

impl OverrideFile {
    /// Read an override file; `global` marks `_global.yaml`, where `exceptions` are ignored.
    pub(crate) fn read(value: &Value, global: bool, issues: &mut Issues) -> OverrideFile {
        let mut file = OverrideFile::default();
        if value.is_null() {
            return file;
        }
        let Some(mut f) = Fields::of(value, FieldPath::root(), "an override file", issues) else {
            return file;
        };
        for (key, kind) in OVERRIDABLE {
            let Some(section) = f.value(key) else {
                continue;
            };
            let path = f.child(key);
            let Some(mut sf) = Fields::of(section, path.clone(), "an override section", issues)
            else {
                continue;
            };
            let mut rules = KindOverride::default();
            if let Some(defaults) = sf.value("defaults") {
                rules.defaults_enabled = read_enabled(defaults, &path.key("defaults"), issues);
            }
            if let Some(exceptions) = sf.object("exceptions", issues) {
                if global {
                    issues.warning(
                        &path.key("exceptions"),
                        "`exceptions` are ignored in _global.yaml; put them in the pack's override file",
                    );
                } else {
                    for (name, v) in exceptions {
                        if let Some(enabled) =
                            read_enabled(v, &path.key("exceptions").key(name), issues)
                        {
                            rules.exceptions.insert(name.clone(), enabled);
                        }
                    }
                }
            }
            sf.finish("an override section", Severity::Warning, issues);
            file.kinds.insert(*kind, rules);
        }
        f.finish(
            "an override file (only actions, rules, sensors and aliases can be overridden)",
            Severity::Warning,
            issues,
        );
        file
    }
}

fn read_enabled(v: &Value, path: &FieldPath, issues: &mut Issues) -> Option<bool> {
    let Some(map) = v.as_object() else {
        issues.error(
            path,
            format!(
                "must be a mapping like `{{enabled: false}}`, not {}",
                describe(v)
            ),
        );
        return None;
    };
    let mut enabled = None;
    for (k, val) in map {
        if k == "enabled" {
            match val.as_bool() {
                Some(b) => enabled = Some(b),
                None => issues.error(
                    &path.key(k),
                    format!("`enabled` must be a boolean, not {}", describe(val)),
                ),
            }
        } else {
            issues.at_key(
                &path.key(k),
                Severity::Error,
                format!("`{k}` cannot be overridden; only `enabled` can"),
            );
        }
    }
    enabled
}

/// The overrides in force for one pack: the global file, then the pack's own file.
#[derive(Debug, Clone, Default)]
pub(crate) struct PackOverrides<'a> {
    pub global: Option<&'a OverrideFile>,
    pub pack: Option<&'a OverrideFile>,
}

impl PackOverrides<'_> {
    /// The `enabled` value the overrides impose on a resource, if any.
    pub(crate) fn enabled_for(&self, kind: ContentKind, name: &str) -> Option<bool> {
        let mut result = None;
        if let Some(k) = self.global.and_then(|g| g.kinds.get(&kind)) {
            result = k.defaults_enabled.or(result);
        }
        if let Some(k) = self.pack.and_then(|p| p.kinds.get(&kind)) {
            result = k.defaults_enabled.or(result);
            result = k.exceptions.get(name).copied().or(result);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pack_exceptions_beat_pack_defaults_beat_global_defaults() {
        let mut issues = Issues::new();
        let global = OverrideFile::read(
            &json!({"actions": {"defaults": {"enabled": false}}, "rules": {"defaults": {"enabled": true}}}),
            true,
            &mut issues,
        );
        let pack = OverrideFile::read(
            &json!({"actions": {"defaults": {"enabled": true}, "exceptions": {"a1": {"enabled": false}}}}),
            false,
            &mut issues,
        );
        assert!(issues.iter().next().is_none());
        let o = PackOverrides {
            global: Some(&global),
            pack: Some(&pack),
        };
        assert_eq!(o.enabled_for(ContentKind::Actions, "a1"), Some(false));
        assert_eq!(o.enabled_for(ContentKind::Actions, "a2"), Some(true));
        assert_eq!(o.enabled_for(ContentKind::Rules, "r"), Some(true));
        assert_eq!(o.enabled_for(ContentKind::Sensors, "S"), None);
    }

    #[test]
    fn only_enabled_can_be_overridden() {
        let mut issues = Issues::new();
        let file = OverrideFile::read(
            &json!({"actions": {"defaults": {"enabled": false, "timeout": 5}}, "policies": {}}),
            false,
            &mut issues,
        );
        let msgs: Vec<_> = issues
            .iter()
            .map(|i| (i.severity, i.message.clone()))
            .collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert_eq!(msgs[0].0, Severity::Error);
        assert_eq!(msgs[1].0, Severity::Warning);
        assert_eq!(
            file.kinds[&ContentKind::Actions].defaults_enabled,
            Some(false)
        );
    }
}
