//! The action-chain definition (StackStorm's `models/system/actionchain.py`): the YAML file at
//! the action's `entry_point`, checked before anything runs.

use std::path::Path;

use serde_json::{Map, Value};
use st2_core::expr::jinja::is_template;
use st2_core::yaml::{YamlLimits, parse_bytes};

/// Why a chain definition cannot run. Every message names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The file cannot be read or is not YAML.
    #[error("Failed to parse action chain definition from \"{file}\": {message}")]
    Parse {
        /// The chain file.
        file: String,
        /// Why.
        message: String,
    },
    /// The YAML does not describe a chain (unknown fields, wrong types, unknown nodes, …).
    #[error("Invalid action chain definition in \"{file}\": {}", problems.join("; "))]
    Invalid {
        /// The chain file.
        file: String,
        /// Every problem found, each naming its task.
        problems: Vec<String>,
    },
}

/// One task of the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The task name.
    pub name: String,
    /// The action ref it runs.
    pub action: String,
    /// Its parameters (`parameters`, or the legacy `params`), templates unrendered.
    pub parameters: Map<String, Value>,
    /// The task to run after success (`on-success`).
    pub on_success: Option<String>,
    /// The task to run after failure or timeout (`on-failure`).
    pub on_failure: Option<String>,
    /// Variables to publish from the result, templates unrendered.
    pub publish: Map<String, Value>,
    /// The task's notify settings.
    pub notify: Option<Value>,
    /// The node as StackStorm gives it to the child in `context.chain` (fields with `_`).
    pub spec: Value,
}

/// A checked chain definition.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionChain {
    /// The tasks, in file order.
    pub chain: Vec<Node>,
    /// The task the chain starts with.
    pub default: String,
    /// `vars`, templates unrendered.
    pub vars: Map<String, Value>,
}

impl ActionChain {
    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.chain.iter().find(|n| n.name == name)
    }
}

const CHAIN_FIELDS: [&str; 3] = ["chain", "default", "vars"];
const NODE_FIELDS: [&str; 8] = [
    "name",
    "ref",
    "params",
    "parameters",
    "on-success",
    "on-failure",
    "publish",
    "notify",
];
const NOTIFY_FIELDS: [&str; 3] = ["on-complete", "on-failure", "on-success"];

/// Read and check the chain at `path`; `chain_name` (the action ref) names it in messages.
///
/// # Errors
/// [`DefinitionError::Parse`] when the file is missing or not YAML,
/// [`DefinitionError::Invalid`] listing every problem of the definition.
pub fn load(path: &Path, chain_name: &str) -> Result<ActionChain, DefinitionError> {
    let file = path.display().to_string();
    let parse_error = |message: String| DefinitionError::Parse {
        file: file.clone(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| parse_error(e.to_string()))?;
    let document =
        parse_bytes(&bytes, &YamlLimits::default()).map_err(|e| parse_error(e.to_string()))?;
    parse(&document.to_json(), &file, chain_name)
}

fn object<'a>(
    value: Option<&'a Value>,
    what: &str,
    problems: &mut Vec<String>,
) -> Option<&'a Map<String, Value>> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => {
            problems.push(format!("{what} must be a mapping, not {other}"));
            None
        }
    }
}

fn string(value: Option<&Value>, what: &str, problems: &mut Vec<String>) -> Option<String> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problems.push(format!("{what} must be a string, not {other}"));
            None
        }
    }
}

fn parse_node(index: usize, value: &Value, problems: &mut Vec<String>) -> Option<Node> {
    let Value::Object(fields) = value else {
        problems.push(format!("chain item {index} must be a mapping, not {value}"));
        return None;
    };
    let name = string(
        fields.get("name"),
        &format!("chain item {index}: \"name\""),
        problems,
    );
    let label = match &name {
        Some(n) => format!("task \"{n}\""),
        None => {
            problems.push(format!("chain item {index}: \"name\" is required"));
            format!("chain item {index}")
        }
    };
    for key in fields.keys().filter(|k| !NODE_FIELDS.contains(&k.as_str())) {
        problems.push(format!(
            "{label}: unknown field \"{key}\" (allowed: {})",
            NODE_FIELDS.join(", ")
        ));
    }
    let action = string(fields.get("ref"), &format!("{label}: \"ref\""), problems);
    if action.is_none() && fields.get("ref").is_none_or(Value::is_null) {
        problems.push(format!("{label}: \"ref\" is required"));
    }
    let params = object(
        fields.get("params"),
        &format!("{label}: \"params\""),
        problems,
    );
    let parameters = object(
        fields.get("parameters"),
        &format!("{label}: \"parameters\""),
        problems,
    );
    let parameters = match (params, parameters) {
        (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => {
            problems.push(format!(
                "{label}: Either \"params\" or \"parameters\" attribute needs to be provided, but not both"
            ));
            Map::new()
        }
        (a, b) => b
            .filter(|b| !b.is_empty())
            .or(a)
            .cloned()
            .unwrap_or_default(),
    };
    let on_success = string(
        fields.get("on-success"),
        &format!("{label}: \"on-success\""),
        problems,
    )
    .filter(|s| !s.is_empty());
    let on_failure = string(
        fields.get("on-failure"),
        &format!("{label}: \"on-failure\""),
        problems,
    )
    .filter(|s| !s.is_empty());
    let publish = object(
        fields.get("publish"),
        &format!("{label}: \"publish\""),
        problems,
    )
    .cloned()
    .unwrap_or_default();
    let notify = object(
        fields.get("notify"),
        &format!("{label}: \"notify\""),
        problems,
    )
    .cloned();
    if let Some(notify) = &notify {
        for key in notify
            .keys()
            .filter(|k| !NOTIFY_FIELDS.contains(&k.as_str()))
        {
            problems.push(format!(
                "{label}: unknown notify field \"{key}\" (allowed: {})",
                NOTIFY_FIELDS.join(", ")
            ));
        }
    }
    let mut spec = Map::new();
    for field in NODE_FIELDS {
        spec.insert(
            field.replace('-', "_"),
            fields.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    Some(Node {
        name: name?,
        action: action?,
        parameters,
        on_success,
        on_failure,
        publish,
        notify: notify.map(Value::Object),
        spec: Value::Object(spec),
    })
}

/// A name that is checked: not a template (StackStorm resolves those at run time, and does
/// not find them).
fn unknown(name: Option<&String>, names: &[&str]) -> Option<String> {
    name.filter(|n| !is_template(n) && !names.contains(&n.as_str()))
        .cloned()
}

/// Check a chain definition already read as JSON.
///
/// # Errors
/// [`DefinitionError::Invalid`] listing every problem.
pub fn parse(value: &Value, file: &str, chain_name: &str) -> Result<ActionChain, DefinitionError> {
    let mut problems = Vec::new();
    let invalid = |problems: Vec<String>| DefinitionError::Invalid {
        file: file.to_owned(),
        problems,
    };
    let Value::Object(fields) = value else {
        return Err(invalid(vec![format!(
            "the definition must be a mapping with a \"chain\" list, not {value}"
        )]));
    };
    for key in fields
        .keys()
        .filter(|k| !CHAIN_FIELDS.contains(&k.as_str()))
    {
        problems.push(format!(
            "unknown field \"{key}\" (allowed: {})",
            CHAIN_FIELDS.join(", ")
        ));
    }
    let items = match fields.get("chain") {
        Some(Value::Array(items)) => items.as_slice(),
        None | Some(Value::Null) => {
            problems.push("\"chain\" is required".to_owned());
            &[]
        }
        Some(other) => {
            problems.push(format!("\"chain\" must be a list of tasks, not {other}"));
            &[]
        }
    };
    let nodes: Vec<Node> = items
        .iter()
        .enumerate()
        .filter_map(|(i, v)| parse_node(i, v, &mut problems))
        .collect();
    let default = string(fields.get("default"), "\"default\"", &mut problems);
    let vars = object(fields.get("vars"), "\"vars\"", &mut problems)
        .cloned()
        .unwrap_or_default();

    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            problems.push(format!("task \"{name}\" is defined twice"));
        }
    }
    for node in &nodes {
        for (field, target) in [
            ("on-success", node.on_success.as_ref()),
            ("on-failure", node.on_failure.as_ref()),
        ] {
            if let Some(missing) = unknown(target, &names) {
                problems.push(format!(
                    "Unable to find node with name \"{missing}\" referenced in \"{field}\" in task \"{}\".",
                    node.name
                ));
            }
        }
    }
    if let Some(missing) = unknown(default.as_ref(), &names) {
        problems.push(format!(
            "Unable to find node with name \"{missing}\" referenced in \"default\"."
        ));
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let default = match default.filter(|d| !d.is_empty()) {
        Some(d) => d,
        None => start_node(&nodes).ok_or_else(|| {
            invalid(vec![format!(
                "Failed to find default node in {chain_name}."
            )])
        })?,
    };
    Ok(ActionChain {
        chain: nodes,
        default,
        vars,
    })
}

/// StackStorm's start node without `default`: the first node no `on-success`/`on-failure`
/// names, else the first node.
fn start_node(nodes: &[Node]) -> Option<String> {
    let referenced = |name: &str| {
        nodes
            .iter()
            .any(|n| n.on_success.as_deref() == Some(name) || n.on_failure.as_deref() == Some(name))
    };
    nodes
        .iter()
        .find(|n| !referenced(&n.name))
        .or_else(|| nodes.first())
        .map(|n| n.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn start_node_is_the_first_unreferenced_one() {
        let chain = parse(
            &json!({"chain": [
                {"name": "b", "ref": "core.noop", "on-success": "c"},
                {"name": "a", "ref": "core.noop", "on-success": "b"},
                {"name": "c", "ref": "core.noop"}
            ]}),
            "f.yaml",
            "p.c",
        )
        .expect("valid");
        assert_eq!(chain.default, "a");
        let looped = parse(
            &json!({"chain": [
                {"name": "a", "ref": "core.noop", "on-success": "b"},
                {"name": "b", "ref": "core.noop", "on-success": "a"}
            ]}),
            "f.yaml",
            "p.c",
        )
        .expect("valid");
        assert_eq!(looped.default, "a", "all referenced: the first node");
    }

    #[test]
    fn every_problem_is_reported_with_its_task() {
        let err = parse(
            &json!({"chain": [
                {"name": "c1", "ref": "core.noop", "on-success": "c5", "colour": 1},
                {"name": "c2", "ref": "core.noop", "params": {"a": 1}, "parameters": {"b": 2},
                 "on-failure": "{{ dynamic }}"}
            ], "default": "nope", "extra": true}),
            "chains/x.yaml",
            "p.c",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"chains/x.yaml\""), "{err}");
        assert!(err.contains("unknown field \"extra\""), "{err}");
        assert!(
            err.contains("task \"c1\": unknown field \"colour\""),
            "{err}"
        );
        assert!(
            err.contains(
                "Unable to find node with name \"c5\" referenced in \"on-success\" in task \"c1\"."
            ),
            "{err}"
        );
        assert!(err.contains("not both"), "{err}");
        assert!(
            err.contains("Unable to find node with name \"nope\" referenced in \"default\"."),
            "{err}"
        );
        assert!(
            !err.contains("dynamic"),
            "template names are not checked: {err}"
        );
    }

    #[test]
    fn empty_chains_have_no_start() {
        let err = parse(&json!({"chain": []}), "f.yaml", "p.c").unwrap_err();
        assert!(
            err.to_string()
                .contains("Failed to find default node in p.c.")
        );
    }
}
