//! Action aliases: ChatOps commands ("run {{cmd}} on {{hosts}}") mapped to actions.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::diagnostic::{FieldPath, Issues, Severity};
use crate::model::fields::{Fields, describe};
use crate::model::pack::PackIdentity;
use crate::model::{Origin, check_pack_field};
use crate::reference;

/// One accepted command format. Written either as a plain string (used for matching and as
/// help text) or as `{display, representation: [...], match_multiple}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasFormat {
    /// Help text shown to chat users.
    pub display: Option<String>,
    /// The formats commands are matched against.
    pub representation: Vec<String>,
    /// Matched only when no ordinary format matches.
    pub match_multiple: bool,
    /// Written as a plain string (shown back that way by the API).
    #[serde(skip)]
    pub written_as_string: bool,
}

impl AliasFormat {
    /// A format written as a plain string: its own help text and only representation.
    pub fn plain(format: &str) -> Self {
        AliasFormat {
            display: Some(format.to_owned()),
            representation: vec![format.to_owned()],
            match_multiple: false,
            written_as_string: true,
        }
    }

    /// The format as StackStorm stores it: the string, or `{display, representation,
    /// match_multiple}` (`match_multiple` only when set).
    pub fn to_json(&self) -> Value {
        if self.written_as_string {
            return Value::String(self.display.clone().unwrap_or_default());
        }
        let mut m = Map::new();
        if let Some(d) = &self.display {
            m.insert("display".into(), Value::String(d.clone()));
        }
        m.insert(
            "representation".into(),
            Value::Array(
                self.representation
                    .iter()
                    .map(|r| Value::String(r.clone()))
                    .collect(),
            ),
        );
        if self.match_multiple {
            m.insert("match_multiple".into(), Value::Bool(true));
        }
        Value::Object(m)
    }
}

/// An alias as written.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionAliasSpec {
    /// Name, unique in the pack.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Disabled aliases never match.
    pub enabled: bool,
    /// The action it runs.
    pub action_ref: String,
    /// Accepted command formats.
    pub formats: Vec<AliasFormat>,
    /// Acknowledgement message settings (`enabled`, `format`, `extra`, `append_url`).
    pub ack: Option<Map<String, Value>>,
    /// Result message settings (`enabled`, `format`, `extra`).
    pub result: Option<Map<String, Value>>,
    /// Adapter-specific extras.
    pub extra: Map<String, Value>,
    /// Parameters always passed to the action (Jinja allowed).
    pub immutable_parameters: Map<String, Value>,
}

/// A registered action alias.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionAlias {
    /// `<pack>.<name>`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Name within the pack.
    pub name: String,
    /// Where it was defined.
    #[serde(flatten)]
    pub origin: Origin,
    /// What it does.
    pub description: Option<String>,
    /// Disabled aliases never match.
    pub enabled: bool,
    /// The action it runs.
    pub action_ref: String,
    /// Accepted command formats.
    pub formats: Vec<AliasFormat>,
    /// Acknowledgement message settings.
    pub ack: Option<Map<String, Value>>,
    /// Result message settings.
    pub result: Option<Map<String, Value>>,
    /// Adapter-specific extras.
    pub extra: Map<String, Value>,
    /// Parameters always passed to the action.
    pub immutable_parameters: Map<String, Value>,
}

impl ActionAlias {
    /// The pack it belongs to.
    pub fn pack(&self) -> &str {
        &self.origin.pack
    }
}

/// Compile an alias given as a JSON object (the body of the API's `POST /actionalias` or `PUT
/// /actionalias/<id>`), with the checks an alias file gets. `pack` is required (as in
/// StackStorm's `ActionAliasAPI`); `id`, `ref` and `uid` are accepted and ignored,
/// `metadata_file` is kept.
///
/// # Errors
/// Every error found, as `<field>: <message>` lines.
pub fn alias_from_json(value: &Value) -> Result<ActionAlias, Vec<String>> {
    let Value::Object(object) = value else {
        return Err(vec!["the action alias must be a JSON object".to_owned()]);
    };
    let pack = match object.get("pack") {
        Some(Value::String(p)) if !p.is_empty() => p.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(vec!["'pack' is a required property".to_owned()]);
        }
        Some(other) => {
            return Err(vec![format!(
                "pack: must be a string, not {}",
                describe(other)
            )]);
        }
    };
    let identity = PackIdentity {
        reference: pack.clone(),
        dir_name: pack.clone(),
    };
    let mut issues = Issues::new();
    let spec = ActionAliasSpec::read(value, &identity, &mut issues);
    let Some(spec) = spec.filter(|_| !issues.has_errors()) else {
        let mut found = crate::model::error_messages(issues);
        if found.is_empty() {
            found.push("the action alias is not valid".to_owned());
        }
        return Err(found);
    };
    let metadata_file = object
        .get("metadata_file")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(spec.compile(Origin {
        pack,
        metadata_file,
    }))
}

impl ActionAliasSpec {
    /// Read an alias file (unknown fields are rejected, as by StackStorm's alias schema).
    pub(crate) fn read(value: &Value, pack: &PackIdentity, issues: &mut Issues) -> Option<Self> {
        let mut f = Fields::of(value, FieldPath::root(), "an action alias", issues)?;
        check_pack_field(&mut f, pack, issues);
        let name = f.req_str("name", issues);
        let description = f.str("description", issues).map(str::to_owned);
        let enabled = f.bool("enabled", issues).unwrap_or(true);
        let action_ref = f.req_str("action_ref", issues);
        let formats = read_formats(&mut f, issues);
        let ack = read_message_settings(&mut f, "ack", issues);
        let result = read_message_settings(&mut f, "result", issues);
        let extra = f.object("extra", issues).cloned().unwrap_or_default();
        let immutable_parameters = f
            .object("immutable_parameters", issues)
            .cloned()
            .unwrap_or_default();
        f.accept(&["metadata_file", "id", "ref", "uid"]);
        f.finish("an action alias", Severity::Error, issues);
        Some(ActionAliasSpec {
            name: name?.to_owned(),
            description,
            enabled,
            action_ref: action_ref?.to_owned(),
            formats,
            ack,
            result,
            extra,
            immutable_parameters,
        })
    }

    /// The registered alias.
    pub(crate) fn compile(self, origin: Origin) -> ActionAlias {
        ActionAlias {
            reference: reference::join(&origin.pack, &self.name),
            name: self.name,
            origin,
            description: self.description,
            enabled: self.enabled,
            action_ref: self.action_ref,
            formats: self.formats,
            ack: self.ack,
            result: self.result,
            extra: self.extra,
            immutable_parameters: self.immutable_parameters,
        }
    }
}

fn read_formats(f: &mut Fields<'_>, issues: &mut Issues) -> Vec<AliasFormat> {
    let path = f.child("formats");
    let Some(items) = f.array("formats", issues) else {
        return Vec::new();
    };
    let mut formats = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        match item {
            Value::String(s) => formats.push(AliasFormat::plain(s)),
            Value::Object(map) => {
                // StackStorm's schema only types `display` and `representation`; other keys
                // (`match_multiple`) are allowed.
                let mut ff = Fields::new(map, p.clone());
                let display = ff.str("display", issues).map(str::to_owned);
                let representation = ff.strings("representation", issues);
                let match_multiple = match ff.value("match_multiple") {
                    Some(Value::Bool(b)) => *b,
                    Some(other) => {
                        issues.warning(
                            &p.key("match_multiple"),
                            format!("`match_multiple` should be a boolean, not {}", describe(other)),
                        );
                        false
                    }
                    None => false,
                };
                formats.push(AliasFormat {
                    display,
                    representation,
                    match_multiple,
                    written_as_string: false,
                });
            }
            other => issues.error(
                &p,
                format!(
                    "a format must be a string or a mapping with `display` and `representation`, not {}",
                    describe(other)
                ),
            ),
        }
    }
    formats
}

fn read_message_settings(
    f: &mut Fields<'_>,
    key: &'static str,
    issues: &mut Issues,
) -> Option<Map<String, Value>> {
    let map = f.object(key, issues)?;
    let path = f.child(key);
    let mut mf = Fields::new(map, path);
    let _ = mf.bool("enabled", issues);
    let _ = mf.str("format", issues);
    let _ = mf.object("extra", issues);
    if key == "ack" {
        let _ = mf.bool("append_url", issues);
    }
    Some(map.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_bodies_compile_or_name_the_field() {
        let alias = alias_from_json(&json!({
            "name": "greet", "pack": "examples", "action_ref": "core.echo",
            "formats": ["greet {{message}}"], "id": "x", "ref": "y"
        }))
        .expect("valid");
        assert_eq!(alias.reference, "examples.greet");
        assert!(alias.formats[0].written_as_string);
        assert_eq!(alias.formats[0].to_json(), json!("greet {{message}}"));
        assert_eq!(
            alias_from_json(&json!({"name": "a", "action_ref": "core.echo"})).unwrap_err(),
            ["'pack' is a required property"]
        );
        let errors =
            alias_from_json(&json!({"name": "a", "pack": "p", "action_ref": 3})).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains("action_ref")),
            "{errors:?}"
        );
        let errors = alias_from_json(&json!({"name": "a", "pack": "p", "action_ref": "x",
            "bogus": 1}))
        .unwrap_err();
        assert!(errors.iter().any(|e| e.contains("bogus")), "{errors:?}");
    }

    #[test]
    fn both_format_forms() {
        let pack = PackIdentity {
            reference: "p".into(),
            dir_name: "p".into(),
        };
        let mut issues = Issues::new();
        let spec = ActionAliasSpec::read(
            &json!({
                "name": "a", "action_ref": "core.remote",
                "formats": [
                    "run {{cmd}}",
                    {"display": "run {{cmd}} on {{hosts}}",
                     "representation": ["(run|execute) {{cmd}}( on {{hosts=localhost}})?"],
                     "match_multiple": true}
                ]
            }),
            &pack,
            &mut issues,
        )
        .unwrap();
        assert!(!issues.has_errors());
        assert_eq!(spec.formats[0].representation, ["run {{cmd}}"]);
        assert!(spec.formats[1].match_multiple);
        assert_eq!(
            spec.formats[1].display.as_deref(),
            Some("run {{cmd}} on {{hosts}}")
        );
    }
}
