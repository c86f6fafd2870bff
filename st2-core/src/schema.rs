//! StackStorm's parameter schema dialect.
//!
//! Action parameters, runner parameters, pack config schemas and policy parameters are written
//! as a mapping `{name: <property schema>}` in a JSON-schema draft 4 dialect with StackStorm's
//! additions:
//!
//! * `required: true` on the property itself (draft 3 style) instead of a `required` list;
//! * `secret`, `immutable` and `position` keywords;
//! * when validating, every optional property (or one whose default is null) also accepts
//!   `null`, and defaults are filled in for missing *or null* values before validation.
//!
//! This module checks such definitions the way StackStorm's registration does
//! ([`check_parameters`]), merges runner and action parameters ([`merge_parameters`]), and
//! compiles the result into a draft-4 validator ([`Schema`]).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock};

use regex::Regex;
use serde_json::{Map, Value, json};

use crate::diagnostic::{FieldPath, Issues};
use crate::model::fields::{describe, kind, show};

/// The simple type names a parameter `type` may take.
pub const SIMPLE_TYPES: &[&str] = &[
    "array", "boolean", "integer", "null", "number", "object", "string",
];

/// Attributes of a runner parameter an action may change when it re-declares the parameter.
pub const RUNNER_PARAM_OVERRIDABLE_ATTRS: &[&str] =
    &["default", "description", "enum", "immutable", "required"];

static PARAM_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\w+$").expect("static regex"));

/// True when `name` is a valid parameter name (Python's `^\w+$`). ASCII names, which are
/// nearly all, are checked without the regex: a start checks every action's parameters.
pub fn is_valid_parameter_name(name: &str) -> bool {
    if name.is_ascii() {
        return !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    }
    PARAM_NAME.is_match(name)
}

/// True when a string holds a Jinja expression (`{{` or `{%`), i.e. is rendered before use
/// (the expression engine's test, offered here for schema users).
pub use crate::expr::jinja::is_template;

/// Where a schema sits, which decides the keywords it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// A parameter definition: one simple `type`, no `format`.
    Parameter,
    /// A schema nested inside one (`items`, `properties`, …): `type` may be a list, `format` ok.
    Nested,
}

/// Check a `{name: definition}` mapping the way StackStorm validates action parameters, config
/// schemas and runner parameters at registration: what it rejects is an error. See
/// [`lint_parameters`] for what it accepts but is likely a mistake.
pub fn check_parameters(params: &Map<String, Value>, path: &FieldPath, issues: &mut Issues) {
    for (name, definition) in params {
        let p = path.key(name);
        if !is_valid_parameter_name(name) {
            issues.at_key(
                &p,
                crate::diagnostic::Severity::Error,
                format!(
                    "parameter name `{name}` is invalid: only letters, digits and `_` are allowed"
                ),
            );
        }
        check_schema(
            definition,
            &p,
            Level::Parameter,
            &format!("parameter `{name}`"),
            issues,
        );
    }
}

/// Warn about definitions StackStorm accepts but that are likely mistakes: no `type`, a default
/// that does not match the type or the `enum`. `definitions` are the effective ones (for an
/// action: runner parameters merged with the action's); only `names` are looked at.
pub fn lint_parameters<'a>(
    definitions: &Map<String, Value>,
    names: impl IntoIterator<Item = &'a String>,
    path: &FieldPath,
    issues: &mut Issues,
) {
    for name in names {
        if let Some(def) = definitions.get(name) {
            warn_on_suspicious_definition(name, def, &path.key(name), issues);
        }
    }
}

/// Check one definition (a parameter, or an output schema) against StackStorm's meta-schema.
pub(crate) fn check_definition(
    definition: &Value,
    path: &FieldPath,
    what: &str,
    issues: &mut Issues,
) {
    check_schema(definition, path, Level::Parameter, what, issues);
}

fn warn_on_suspicious_definition(name: &str, def: &Value, path: &FieldPath, issues: &mut Issues) {
    let Some(def) = def.as_object() else { return };
    if def.is_empty() {
        return;
    }
    let declared = def.get("type").and_then(Value::as_str);
    if declared.is_none() && !def.contains_key("anyOf") && !def.contains_key("oneOf") {
        let required = def.get("required").and_then(Value::as_bool) == Some(true);
        let effect = if required {
            "any value is accepted"
        } else {
            "StackStorm then accepts only a string or null"
        };
        issues.warning(path, format!("parameter `{name}` has no `type`; {effect}"));
    }
    let Some(default) = def.get("default") else {
        return;
    };
    if default.is_null() || default.as_str().is_some_and(is_template) {
        return;
    }
    if let Some(ty) = declared
        && !value_has_type(default, ty)
    {
        issues.warning(
            &path.key("default"),
            format!(
                "default {} of parameter `{name}` is not of its type `{ty}` (StackStorm loads it anyway)",
                describe(default)
            ),
        );
    }
    if let Some(choices) = def.get("enum").and_then(Value::as_array)
        && !choices.iter().any(|c| py_eq(c, default))
    {
        issues.warning(
            &path.key("default"),
            format!(
                "default {} of parameter `{name}` is not one of its `enum` values",
                show(default)
            ),
        );
    }
}

/// Draft-4 type check of a value against one simple type name.
pub fn value_has_type(v: &Value, ty: &str) -> bool {
    match ty {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => false,
    }
}

fn check_schema(v: &Value, path: &FieldPath, level: Level, what: &str, issues: &mut Issues) {
    let Some(obj) = v.as_object() else {
        issues.error(
            path,
            format!("{what} must be a mapping, not {}", describe(v)),
        );
        return;
    };
    for (key, value) in obj {
        let p = path.key(key);
        let mut bad = |expected: &str| {
            issues.error(
                &p,
                format!(
                    "{what}: `{key}` must be {expected}, not {}",
                    describe(value)
                ),
            );
        };
        match key.as_str() {
            "id" | "$schema" | "title" | "description" => {
                if !value.is_string() {
                    bad("a string");
                }
            }
            "pattern" => match value.as_str() {
                None => bad("a string"),
                Some(pattern) => {
                    if let Err(e) = jsonschema::draft4::new(&json!({ "pattern": pattern })) {
                        issues.warning(
                            &p,
                            format!(
                                "{what}: `pattern` is not a valid regular expression, so validation of this value always fails: {e}"
                            ),
                        );
                    }
                }
            },
            "format" if level == Level::Nested => {
                if !value.is_string() {
                    bad("a string");
                }
            }
            "default" => {}
            "multipleOf" => {
                if !value.as_f64().is_some_and(|n| n > 0.0) {
                    bad("a number greater than 0");
                }
            }
            "maximum" | "minimum" => {
                if !value.is_number() {
                    bad("a number");
                }
            }
            "exclusiveMaximum" | "exclusiveMinimum" => {
                if !value.is_boolean() {
                    bad("a boolean");
                } else {
                    let needs = if key == "exclusiveMaximum" {
                        "maximum"
                    } else {
                        "minimum"
                    };
                    if !obj.contains_key(needs) {
                        issues.error(&p, format!("{what}: `{key}` needs `{needs}`"));
                    }
                }
            }
            "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties"
            | "minProperties" => {
                if !(value.is_u64()) {
                    bad("a non-negative integer");
                }
            }
            "required" | "secret" | "immutable" | "uniqueItems" => {
                if !value.is_boolean() {
                    bad("a boolean");
                }
            }
            "position" => {
                if !value.as_f64().is_some_and(|n| n >= 0.0) {
                    bad("a number of at least 0");
                }
            }
            "additionalItems" | "additionalProperties" => {
                if !value.is_boolean() {
                    check_schema(value, &p, Level::Nested, what, issues);
                }
            }
            "not" => check_schema(value, &p, Level::Nested, what, issues),
            "items" => match value {
                Value::Array(items) if !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        check_schema(item, &p.index(i), Level::Nested, what, issues);
                    }
                }
                Value::Object(_) => check_schema(value, &p, Level::Nested, what, issues),
                _ => bad("a schema or a non-empty list of schemas"),
            },
            "allOf" | "anyOf" | "oneOf" => match value {
                Value::Array(items) if !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        check_schema(item, &p.index(i), Level::Nested, what, issues);
                    }
                }
                _ => bad("a non-empty list of schemas"),
            },
            "definitions" | "properties" | "patternProperties" => match value {
                Value::Object(map) => {
                    for (name, sub) in map {
                        check_schema(sub, &p.key(name), Level::Nested, what, issues);
                    }
                }
                _ => bad("a mapping of schemas"),
            },
            "dependencies" => match value {
                Value::Object(map) => {
                    for (name, dep) in map {
                        match dep {
                            Value::Array(names)
                                if !names.is_empty()
                                    && names.iter().all(Value::is_string)
                                    && unique(names) => {}
                            Value::Object(_) => {
                                check_schema(dep, &p.key(name), Level::Nested, what, issues);
                            }
                            _ => issues.error(
                                &p.key(name),
                                format!(
                                    "{what}: dependency `{name}` must be a schema or a list of distinct names"
                                ),
                            ),
                        }
                    }
                }
                _ => bad("a mapping"),
            },
            "enum" => match value {
                Value::Array(items) if !items.is_empty() && unique(items) => {}
                _ => bad("a non-empty list of distinct values"),
            },
            "type" => check_type_keyword(value, &p, level, what, issues),
            // StackStorm rejects unknown keywords. Inside nested schemas its older releases
            // accepted them (and they never affect validation), so real packs carry some.
            _ if level == Level::Nested => issues.at_key(
                &p,
                crate::diagnostic::Severity::Warning,
                format!(
                    "{what}: unknown keyword `{key}` is ignored{}",
                    suggestion(key)
                ),
            ),
            _ => issues.at_key(
                &p,
                crate::diagnostic::Severity::Error,
                format!("{what}: unknown keyword `{key}`{}", suggestion(key)),
            ),
        }
    }
}

/// The schema keywords StackStorm's dialect knows (`format` only inside nested schemas).
pub(crate) const KEYWORDS: &[&str] = &[
    "id",
    "$schema",
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "additionalItems",
    "items",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "secret",
    "additionalProperties",
    "definitions",
    "properties",
    "patternProperties",
    "dependencies",
    "enum",
    "type",
    "position",
    "immutable",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "format",
];

/// ` (did you mean `items`?)` when a known keyword is one or two edits away.
fn suggestion(key: &str) -> String {
    KEYWORDS
        .iter()
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

fn check_type_keyword(v: &Value, path: &FieldPath, level: Level, what: &str, issues: &mut Issues) {
    let is_simple = |t: &Value| t.as_str().is_some_and(|s| SIMPLE_TYPES.contains(&s));
    let ok = match (v, level) {
        (Value::String(_), _) => is_simple(v),
        (Value::Array(items), Level::Nested) => {
            !items.is_empty() && items.iter().all(is_simple) && unique(items)
        }
        _ => false,
    };
    if !ok {
        let expected = SIMPLE_TYPES.join(", ");
        let message = match v {
            Value::String(s) => {
                format!("{what}: type `{s}` is not one of {expected}")
            }
            Value::Array(_) if level == Level::Parameter => {
                format!("{what}: `type` must be a single type name ({expected}), not a list")
            }
            other => format!(
                "{what}: `type` must be one of {expected}, not {}",
                show(other)
            ),
        };
        issues.error(path, message);
    }
}

fn unique(items: &[Value]) -> bool {
    items
        .iter()
        .enumerate()
        .all(|(i, a)| items[..i].iter().all(|b| b != a))
}

/// Python's `==` on JSON-like values: `1 == 1.0`, `True == 1`, containers compared item-wise.
pub fn py_eq(a: &Value, b: &Value) -> bool {
    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| py_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// Deep-merge `overlay` into `base` (StackStorm's `deep_update`): nested mappings merge key by
/// key, anything else is replaced.
pub fn deep_merge(base: &mut Map<String, Value>, overlay: &Map<String, Value>) {
    for (k, v) in overlay {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => deep_merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The parameters of an action as StackStorm validates them: runner parameters overlaid with
/// the action's own declarations, attribute by attribute.
pub fn merge_parameters(
    runner: &Map<String, Value>,
    action: &Map<String, Value>,
) -> Map<String, Value> {
    let mut merged = runner.clone();
    deep_merge(&mut merged, action);
    merged
}

/// StackStorm's registration rules for an action's parameters against its runner's: re-declared
/// runner parameters may only change `default`, `description`, `enum`, `immutable` and
/// `required`; positions are unique and contiguous; an immutable parameter needs a default and a
/// runner-immutable parameter cannot be re-declared immutable.
pub fn check_against_runner(
    action_ref: &str,
    action: &Map<String, Value>,
    runner: &Map<String, Value>,
    path: &FieldPath,
    issues: &mut Issues,
) {
    let mut positions: Vec<(f64, &str)> = Vec::new();
    for (name, meta) in action {
        let Some(meta) = meta.as_object() else {
            continue;
        };
        let p = path.key(name);
        let runner_meta = runner.get(name).and_then(Value::as_object);
        if let Some(runner_meta) = runner_meta {
            for (attr, value) in meta {
                if RUNNER_PARAM_OVERRIDABLE_ATTRS.contains(&attr.as_str()) {
                    continue;
                }
                let theirs = runner_meta.get(attr).unwrap_or(&Value::Null);
                if !py_eq(value, theirs) {
                    issues.error(
                        &p.key(attr),
                        format!(
                            "the attribute `{attr}` of runner parameter `{name}` cannot be overridden in action `{action_ref}` (only default, description, enum, immutable and required can)"
                        ),
                    );
                }
            }
        }
        if let Some(pos) = meta.get("position").and_then(Value::as_f64) {
            if let Some((_, other)) = positions.iter().find(|(q, _)| *q == pos) {
                issues.error(
                    &p.key("position"),
                    format!(
                        "parameters `{name}` and `{other}` have the same position {pos}; positions must be unique"
                    ),
                );
            } else {
                positions.push((pos, name));
            }
        }
        if meta.contains_key("immutable") {
            match runner_meta {
                Some(runner_meta) if runner_meta.contains_key("immutable") => issues.error(
                    &p.key("immutable"),
                    format!(
                        "parameter `{name}` is declared immutable by the runner and cannot be re-declared immutable in the action"
                    ),
                ),
                Some(runner_meta)
                    if !meta.contains_key("default") && !runner_meta.contains_key("default") =>
                {
                    issues.error(
                        &p,
                        format!("immutable parameter `{name}` needs a default value"),
                    );
                }
                None if !meta.contains_key("default") => issues.error(
                    &p,
                    format!("immutable parameter `{name}` needs a default value"),
                ),
                _ => {}
            }
        }
    }
    if positions.len() > 1 || positions.iter().any(|(p, _)| p.fract() != 0.0) {
        let mut sorted: Vec<f64> = positions.iter().map(|(p, _)| *p).collect();
        sorted.sort_by(f64::total_cmp);
        let contiguous = sorted.iter().all(|p| p.fract() == 0.0)
            && sorted.windows(2).all(|w| w[1] - w[0] == 1.0);
        if !contiguous {
            let shown: Vec<String> = sorted.iter().map(|p| p.to_string()).collect();
            issues.error(
                path,
                format!(
                    "parameter positions [{}] are not contiguous integers",
                    shown.join(", ")
                ),
            );
        }
    }
}

/// A parameter that fails validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The parameter (top-level name), empty when the problem concerns the whole set.
    pub parameter: String,
    /// JSON pointer to the failing value, e.g. `/hosts` or `/env/PATH`.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parameter.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "parameter `{}`: {}", self.parameter, self.message)
        }
    }
}

/// Why a schema could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema at `{pointer}`: {message}")]
pub struct SchemaError {
    /// Where in the (normalised) schema the problem is.
    pub pointer: String,
    /// What the schema compiler said.
    pub message: String,
}

/// An object schema in StackStorm's dialect: properties as written, and a draft-4 validator
/// that behaves like StackStorm's `validate(..., use_default=True, allow_default_none=True)`.
///
/// The validator is compiled on first use, so loading thousands of actions stays cheap; call
/// [`Schema::check`] to compile eagerly and surface a schema that cannot compile.
pub struct Schema {
    properties: Properties,
    shape: Shape,
    // Boxed, like the maps below: a catalog holds thousands of schemas that are never
    // compiled or merged, and an empty `OnceLock` of the value itself would cost its full size.
    compiled: OnceLock<Box<Result<Compiled, SchemaError>>>,
}

/// A `{name: definition}` parameter map held as compact JSON text until it is first read, or
/// parsed until its text is first asked for.
///
/// As text a map takes a fraction of the memory of a parsed one, and many are never read.
/// An action compiled from the catalog's packed metadata already has the map parsed: it
/// keeps that, and writes the text only if someone asks for it. Reading derefs to the parsed
/// map, parsed once and kept.
pub struct ParamMap {
    /// Compact JSON; set when `parsed` is not.
    text: OnceLock<Box<str>>,
    /// Whether the text holds `{{` or `{%` (a default may be a Jinja template).
    templated: OnceLock<bool>,
    parsed: OnceLock<Box<Map<String, Value>>>,
}

impl ParamMap {
    /// Keep `map` as text.
    pub fn new(map: &Map<String, Value>) -> ParamMap {
        // A map of JSON values always serialises.
        let json = serde_json::to_string(map).unwrap_or_else(|_| "{}".into());
        let templated = crate::expr::jinja::is_template(&json);
        ParamMap {
            text: OnceLock::from(json.into_boxed_str()),
            templated: OnceLock::from(templated),
            parsed: OnceLock::new(),
        }
    }

    /// Keep `map` parsed; its text is written when first asked for.
    pub fn parsed(map: Map<String, Value>) -> ParamMap {
        ParamMap {
            text: OnceLock::new(),
            templated: OnceLock::new(),
            parsed: OnceLock::from(Box::new(map)),
        }
    }

    /// The map as compact JSON text.
    pub fn as_json(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.text.get_or_init(|| {
            // Without text the map is parsed, and a map of JSON values always serialises.
            let map = self.parsed.get().map(|m| serde_json::to_string(&**m));
            match map {
                Some(Ok(json)) => json.into_boxed_str(),
                _ => "{}".into(),
            }
        }))
    }

    /// Whether some definition (a default, most likely) may be a Jinja template.
    pub fn may_hold_templates(&self) -> bool {
        *self
            .templated
            .get_or_init(|| crate::expr::jinja::is_template(&self.as_json()))
    }

    fn parse(&self) -> Map<String, Value> {
        // The text was written from a map, so it parses back to the same map.
        serde_json::from_str(&self.as_json()).unwrap_or_default()
    }
}

impl std::ops::Deref for ParamMap {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Map<String, Value> {
        self.parsed.get_or_init(|| Box::new(self.parse()))
    }
}

impl From<Map<String, Value>> for ParamMap {
    fn from(map: Map<String, Value>) -> ParamMap {
        ParamMap::new(&map)
    }
}

impl Default for ParamMap {
    fn default() -> ParamMap {
        ParamMap::new(&Map::new())
    }
}

impl Clone for ParamMap {
    fn clone(&self) -> ParamMap {
        ParamMap {
            text: self.text.clone(),
            templated: self.templated.clone(),
            // A copy with text parses when read; without text the parsed map is all there is.
            parsed: match self.text.get() {
                Some(_) => OnceLock::new(),
                None => self.parsed.clone(),
            },
        }
    }
}

impl PartialEq for ParamMap {
    fn eq(&self, other: &ParamMap) -> bool {
        matches!((self.text.get(), other.text.get()), (Some(a), Some(b)) if a == b)
            || **self == **other
    }
}

impl fmt::Debug for ParamMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl serde::Serialize for ParamMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.parsed.get() {
            Some(map) => (**map).serialize(serializer),
            // Presenting a catalog (`GET /actions`) must not keep every map parsed.
            None => self.parse().serialize(serializer),
        }
    }
}

/// The property definitions: as given, or a runner's and an action's merged on first use.
enum Properties {
    Given(Box<Map<String, Value>>),
    Merged {
        base: Arc<Map<String, Value>>,
        over: Arc<ParamMap>,
        merged: OnceLock<Box<Map<String, Value>>>,
    },
}

/// How the object schema is built from what was given.
#[derive(Debug, Clone)]
enum Shape {
    /// A `{name: definition}` set (StackStorm's `get_schema_for_resource_parameters`).
    Parameters { allow_additional: bool },
    /// A whole object schema.
    Object(Box<Value>),
}

struct Compiled {
    with_nulls: Value,
    validator: jsonschema::Validator,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema")
            .field("properties", self.properties())
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl Schema {
    /// The schema StackStorm builds for a set of parameters (`get_schema_for_resource_parameters`):
    /// an object whose properties are the given definitions (an empty definition accepts any
    /// value) and which rejects unknown keys unless `allow_additional` is set.
    pub fn for_parameters(params: Map<String, Value>, allow_additional: bool) -> Schema {
        Schema {
            properties: Properties::Given(Box::new(params)),
            shape: Shape::Parameters { allow_additional },
            compiled: OnceLock::new(),
        }
    }

    /// [`Schema::for_parameters`] of a runner's parameters with an action's merged over them
    /// ([`merge_parameters`]), rejecting unknown keys. The merge is made on first use and
    /// both sides stay shared, so an action that is never run costs only its own
    /// definitions.
    pub fn for_merged_parameters(runner: Arc<Map<String, Value>>, action: Arc<ParamMap>) -> Schema {
        Schema {
            properties: Properties::Merged {
                base: runner,
                over: action,
                merged: OnceLock::new(),
            },
            shape: Shape::Parameters {
                allow_additional: false,
            },
            compiled: OnceLock::new(),
        }
    }

    /// A whole object schema written in StackStorm's dialect (trigger parameter schemas).
    pub fn for_object(schema: Value) -> Schema {
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Schema {
            properties: Properties::Given(Box::new(properties)),
            shape: Shape::Object(Box::new(schema)),
            compiled: OnceLock::new(),
        }
    }

    fn object_schema(&self) -> Value {
        match &self.shape {
            Shape::Object(schema) => (**schema).clone(),
            Shape::Parameters { .. } if self.properties().is_empty() => json!({}),
            Shape::Parameters { allow_additional } => {
                let properties: Map<String, Value> = self
                    .properties()
                    .iter()
                    .map(|(name, def)| {
                        let def = match def {
                            Value::Object(m) if m.is_empty() => any_type(),
                            Value::Null => any_type(),
                            other => other.clone(),
                        };
                        (name.clone(), def)
                    })
                    .collect();
                json!({
                    "type": "object",
                    "properties": Value::Object(properties),
                    "additionalProperties": allow_additional,
                })
            }
        }
    }

    fn compiled(&self) -> Result<&Compiled, &SchemaError> {
        self.compiled
            .get_or_init(|| Box::new(self.compile()))
            .as_ref()
            .as_ref()
    }

    fn compile(&self) -> Result<Compiled, SchemaError> {
        let with_nulls = allow_default_none(&self.object_schema());
        let draft4 = to_draft4(&with_nulls);
        let validator = jsonschema::draft4::options()
            .should_validate_formats(false)
            .build(&draft4)
            .map_err(|e| SchemaError {
                pointer: e.schema_path().to_string(),
                message: e.to_string(),
            })?;
        Ok(Compiled {
            with_nulls,
            validator,
        })
    }

    /// Compile the validator now.
    ///
    /// # Errors
    /// [`SchemaError`] when the schema cannot be compiled (for instance an invalid regex in
    /// `pattern`).
    pub fn check(&self) -> Result<(), SchemaError> {
        self.compiled().map(|_| ()).map_err(Clone::clone)
    }

    /// The property definitions as written (for parameters: merged runner + action).
    pub fn properties(&self) -> &Map<String, Value> {
        match &self.properties {
            Properties::Given(map) => map,
            Properties::Merged { base, over, merged } => {
                merged.get_or_init(|| Box::new(merge_parameters(base, over)))
            }
        }
    }

    /// The definition of one property.
    pub fn property(&self, name: &str) -> Option<&Map<String, Value>> {
        self.properties().get(name).and_then(Value::as_object)
    }

    /// True when the property is declared (it may still be an empty, any-type definition).
    pub fn has_property(&self, name: &str) -> bool {
        self.properties().contains_key(name)
    }

    fn flag(&self, name: &str, attr: &str) -> bool {
        self.property(name)
            .and_then(|p| p.get(attr))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// True when the property is marked `secret: true`.
    pub fn is_secret(&self, name: &str) -> bool {
        self.flag(name, "secret")
    }

    /// True when the property is marked `immutable: true`.
    pub fn is_immutable(&self, name: &str) -> bool {
        self.flag(name, "immutable")
    }

    /// True when the property is marked `required: true`.
    pub fn is_required(&self, name: &str) -> bool {
        self.flag(name, "required")
    }

    /// Names of the properties marked `secret: true`.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.properties()
            .keys()
            .filter(|k| self.is_secret(k))
            .map(String::as_str)
    }

    /// Properties with a `position`, ordered by it.
    pub fn positional(&self) -> Vec<(&str, f64)> {
        let mut out: Vec<(&str, f64)> = self
            .properties()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.get("position")?.as_f64()?)))
            .collect();
        out.sort_by(|a, b| a.1.total_cmp(&b.1));
        out
    }

    /// Fill in defaults and validate, as StackStorm does: defaults replace missing *or null*
    /// values (recursively into nested objects and arrays), then the draft-4 validator runs.
    /// Returns the cleaned instance, or every violation.
    ///
    /// # Errors
    /// All violations found, each naming the parameter it concerns; a schema that cannot be
    /// compiled is reported as a single violation.
    pub fn validate(&self, instance: &Value) -> Result<Value, Vec<Violation>> {
        let compiled = self.compiled().map_err(|e| {
            vec![Violation {
                parameter: String::new(),
                pointer: String::new(),
                message: e.to_string(),
            }]
        })?;
        let mut cleaned = instance.clone();
        if compiled.with_nulls.get("type").and_then(Value::as_str) == Some("object") {
            assign_defaults_object(&mut cleaned, &compiled.with_nulls);
        }
        let violations: Vec<Violation> = compiled
            .validator
            .iter_errors(&cleaned)
            .map(|e| {
                let pointer = e.instance_path().to_string();
                let parameter = pointer
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .replace("~1", "/")
                    .replace("~0", "~");
                Violation {
                    parameter,
                    pointer,
                    message: e.to_string(),
                }
            })
            .collect();
        if violations.is_empty() {
            Ok(cleaned)
        } else {
            Err(violations)
        }
    }
}

fn any_type() -> Value {
    json!({"anyOf": [
        {"type": "array"}, {"type": "boolean"}, {"type": "integer"},
        {"type": "number"}, {"type": "object"}, {"type": "string"}
    ]})
}

fn is_nullable_list(items: &[Value]) -> bool {
    items.iter().any(|t| {
        t.as_str() == Some("null") || t.get("type").and_then(Value::as_str) == Some("null")
    })
}

fn type_includes(schema: &Map<String, Value>, ty: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(s)) => s == ty,
        Some(Value::Array(items)) => items.iter().any(|t| t.as_str() == Some(ty)),
        _ => false,
    }
}

/// StackStorm's `modify_schema_allow_default_none`: every property that is optional or whose
/// default is null also accepts null (a property without `type` becomes `["string", "null"]`),
/// recursively into object properties and array items that declare properties.
fn allow_default_none(schema: &Value) -> Value {
    let mut schema = schema.clone();
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return schema;
    };
    for prop in props.values_mut() {
        let Some(p) = prop.as_object_mut() else {
            continue;
        };
        let optional = !p.get("required").and_then(Value::as_bool).unwrap_or(false);
        let default_is_none = p.get("default").is_none_or(Value::is_null);
        if optional && default_is_none || p.get("default").is_some_and(Value::is_null) {
            if let Some(Value::Array(any)) = p.get_mut("anyOf") {
                if !is_nullable_list(any) {
                    any.push(json!({"type": "null"}));
                }
            } else if let Some(Value::Array(one)) = p.get_mut("oneOf") {
                if !is_nullable_list(one) {
                    one.push(json!({"type": "null"}));
                }
            } else if let Some(Value::Array(types)) = p.get_mut("type") {
                if !is_nullable_list(types) {
                    types.push(json!("null"));
                }
            } else {
                let ty = p.get("type").cloned().unwrap_or_else(|| json!("string"));
                if ty.as_str() != Some("null") {
                    p.insert("type".to_owned(), json!([ty, "null"]));
                }
            }
        }
        if type_includes(p, "array")
            && let Some(items) = p.get_mut("items")
            && items
                .get("properties")
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        {
            *items = allow_default_none(items);
        }
        if type_includes(p, "object")
            && p.get("properties")
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        {
            *prop = allow_default_none(prop);
        }
    }
    schema
}

/// Rewrite StackStorm's dialect as plain draft 4: a property's `required: true` becomes an entry
/// in its parent's `required` list, everywhere in the tree.
fn to_draft4(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            let mut required: Vec<Value> = Vec::new();
            for (k, v) in map {
                match k.as_str() {
                    "required" if v.is_boolean() => {}
                    "properties" => {
                        if let Value::Object(props) = v {
                            let mut converted = Map::with_capacity(props.len());
                            for (name, sub) in props {
                                if sub.get("required").and_then(Value::as_bool) == Some(true) {
                                    required.push(Value::String(name.clone()));
                                }
                                converted.insert(name.clone(), to_draft4(sub));
                            }
                            out.insert(k.clone(), Value::Object(converted));
                        } else {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                    "patternProperties" | "definitions" | "dependencies" => {
                        out.insert(k.clone(), map_values(v, to_draft4));
                    }
                    "items"
                    | "additionalItems"
                    | "additionalProperties"
                    | "not"
                    | "allOf"
                    | "anyOf"
                    | "oneOf" => {
                        out.insert(k.clone(), to_draft4(v));
                    }
                    // `default`, `enum` and the like hold data, not schemas.
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            if !required.is_empty() {
                let mut seen = HashSet::new();
                required.retain(|r| seen.insert(r.as_str().unwrap_or_default().to_owned()));
                out.insert("required".to_owned(), Value::Array(required));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_draft4).collect()),
        other => other.clone(),
    }
}

fn map_values(v: &Value, f: fn(&Value) -> Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), f(v))).collect()),
        other => other.clone(),
    }
}

/// StackStorm's `assign_default_values` for an object.
fn assign_defaults_object(instance: &mut Value, schema: &Value) {
    let Some(obj) = instance.as_object_mut() else {
        return;
    };
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let dependencies = schema.get("dependencies").and_then(Value::as_object);
    for (name, prop) in props {
        let mut has_default = prop.get("default").is_some();
        if has_default
            && let Some(deps) = dependencies
                .and_then(|d| d.get(name))
                .and_then(Value::as_array)
        {
            for dep in deps.iter().filter_map(Value::as_str) {
                let dep_has_default = props.get(dep).and_then(|d| d.get("default")).is_some();
                if !dep_has_default && !obj.contains_key(dep) {
                    has_default = false;
                    break;
                }
            }
        }
        if has_default && obj.get(name).is_none_or(Value::is_null) {
            obj.insert(
                name.clone(),
                prop.get("default").cloned().unwrap_or(Value::Null),
            );
        }
        let Some(value) = obj.get_mut(name).filter(|v| !v.is_null()) else {
            continue;
        };
        let Some(p) = prop.as_object() else { continue };
        if type_includes(p, "array") {
            assign_defaults_array(value, prop);
        } else if type_includes(p, "object") {
            assign_defaults_object(value, prop);
        }
    }
}

/// StackStorm's `assign_default_values` for an array.
fn assign_defaults_array(instance: &mut Value, schema: &Value) {
    let Some(items) = instance.as_array_mut() else {
        return;
    };
    let item_schemas: Vec<&Value> = match schema.get("items") {
        Some(Value::Object(_)) => {
            let s = schema.get("items").unwrap_or(&Value::Null);
            vec![s; items.len()]
        }
        Some(Value::Array(list)) => list.iter().collect(),
        _ => return,
    };
    for (item, item_schema) in items.iter_mut().zip(item_schemas) {
        if item.is_null()
            && let Some(default) = item_schema.get("default")
        {
            *item = default.clone();
        }
        if item.is_null() {
            continue;
        }
        let Some(s) = item_schema.as_object() else {
            continue;
        };
        if type_includes(s, "array") {
            assign_defaults_array(item, item_schema);
        }
        if type_includes(s, "object") {
            assign_defaults_object(item, item_schema);
        }
    }
}

/// The kind name of a JSON value (`string`, `integer`, …), as used in StackStorm's messages.
pub fn kind_of(v: &Value) -> &'static str {
    kind(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Severity;

    #[test]
    fn param_maps_keep_text_until_read_and_serialise_without_parsing_for_good() {
        let map = params(json!({
            "cmd": {"type": "string", "required": true, "description": "é \"quoted\""},
            "n": {"type": "integer", "default": 3}
        }));
        let kept = ParamMap::new(&map);
        assert_eq!(
            kept.as_json(),
            r#"{"cmd":{"type":"string","required":true,"description":"é \"quoted\""},"n":{"type":"integer","default":3}}"#
        );
        // Serialising (as the API does for every action) does not keep the parse.
        assert_eq!(
            serde_json::to_value(&kept).unwrap(),
            Value::Object(map.clone())
        );
        assert!(kept.parsed.get().is_none());
        // Reading parses once, in the written order.
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["cmd", "n"]);
        assert!(kept.parsed.get().is_some());
        assert_eq!(*kept, map);
        assert_eq!(kept, ParamMap::from(map.clone()));
        assert_eq!(kept.clone().get("n"), map.get("n"));
        assert!(ParamMap::default().is_empty());
    }

    #[test]
    fn parameter_names_are_python_word_characters() {
        for ok in ["a", "cmd", "_x1", "Param_2", "naïve", "数据", "x\u{0301}"] {
            assert!(is_valid_parameter_name(ok), "{ok}");
        }
        for bad in ["", "bad-name", "a b", "a.b", "ü-x", "x\n"] {
            assert!(!is_valid_parameter_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn large_param_maps_are_kept_as_text_and_read_back_whole() {
        // Forty parameters the way the AWS pack writes them.
        let mut defs = Map::new();
        for i in 0..40 {
            defs.insert(
                format!("Param{i}"),
                json!({"type": "string", "description": format!("The value of the {i}th field.")}),
            );
        }
        defs.insert(
            "region".into(),
            json!({"type": "string", "default": "{{ config_context.region }}"}),
        );
        let json = serde_json::to_string(&defs).unwrap();
        let kept = ParamMap::new(&defs);
        assert_eq!(kept.as_json(), json);
        assert!(kept.may_hold_templates());
        assert_eq!(
            serde_json::to_value(&kept).unwrap(),
            Value::Object(defs.clone())
        );
        assert!(kept.parsed.get().is_none());
        assert_eq!(*kept, defs);
        assert_eq!(kept, ParamMap::new(&defs));
        assert_eq!(
            kept.clone().keys().next_back().map(String::as_str),
            Some("region")
        );
        // Kept parsed, the text is written when asked for and reads the same.
        let parsed = ParamMap::parsed(defs.clone());
        assert!(parsed.text.get().is_none());
        assert!(parsed.may_hold_templates());
        assert_eq!(parsed.as_json(), json);
        assert_eq!(parsed, kept);
        let copy = ParamMap::parsed(defs.clone()).clone();
        assert_eq!(*copy, defs);
        assert_eq!(copy.as_json(), json);
        let small = ParamMap::new(&params(json!({"n": {"type": "integer"}})));
        assert!(!small.may_hold_templates());
        assert_eq!(small.as_json(), r#"{"n":{"type":"integer"}}"#);
    }

    #[test]
    fn merged_schemas_merge_on_first_use_and_share_both_sides() {
        let runner = Arc::new(params(json!({
            "cmd": {"type": "string", "description": "runner's"},
            "timeout": {"type": "integer", "default": 60}
        })));
        let action = Arc::new(ParamMap::new(&params(json!({
            "cmd": {"default": "date", "immutable": true},
            "extra": {"type": "boolean", "secret": true}
        }))));
        let schema = Schema::for_merged_parameters(runner.clone(), action.clone());
        assert_eq!(
            Value::Object(schema.properties().clone()),
            json!({
                "cmd": {"type": "string", "description": "runner's", "default": "date", "immutable": true},
                "timeout": {"type": "integer", "default": 60},
                "extra": {"type": "boolean", "secret": true}
            })
        );
        assert!(schema.is_immutable("cmd") && schema.is_secret("extra"));
        assert_eq!(Arc::strong_count(&runner), 2);
        assert_eq!(Arc::strong_count(&action), 2);
        assert!(schema.validate(&json!({"cmd": "x", "bogus": 1})).is_err());
    }

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn messages(issues: &Issues) -> Vec<(Severity, String)> {
        issues
            .iter()
            .map(|i| (i.severity, i.message.clone()))
            .collect()
    }

    #[test]
    fn rejects_unknown_types_and_keywords() {
        let mut issues = Issues::new();
        check_parameters(
            &params(json!({
                "a": {"type": "stringa"},
                "b": {"type": "string", "format": "uri"},
                "c": {"type": ["string", "null"]},
                "d": {"type": "object", "properties": {"x": {"type": ["string", "null"], "format": "uri"}}},
                "e": {"type": "string", "required": "yes"},
                "bad-name": {"type": "string"}
            })),
            &FieldPath::root(),
            &mut issues,
        );
        let m = messages(&issues);
        assert!(m[0].1.contains("type `stringa` is not one of"), "{m:?}");
        assert!(m[1].1.contains("unknown keyword `format`"), "{m:?}");
        assert!(m[2].1.contains("not a list"), "{m:?}");
        assert!(m[3].1.contains("`required` must be a boolean"), "{m:?}");
        assert!(m[4].1.contains("`bad-name` is invalid"), "{m:?}");
        assert_eq!(m.len(), 5, "{m:?}");
    }

    #[test]
    fn warns_on_missing_type_and_mismatched_default() {
        let mut issues = Issues::new();
        let defs = params(json!({
                "port": {"type": "string", "default": 3306},
                "flag": {"type": "boolean", "default": 0},
                "templ": {"type": "integer", "default": "{{ x }}"},
                "any": {"description": "no type"},
                "empty": {},
                "choice": {"type": "string", "enum": ["a"], "default": "b"}
        }));
        lint_parameters(&defs, defs.keys(), &FieldPath::root(), &mut issues);
        let m = messages(&issues);
        assert!(m.iter().all(|(s, _)| *s == Severity::Warning), "{m:?}");
        assert_eq!(m.len(), 4, "{m:?}");
    }

    #[test]
    fn runner_overrides_positions_and_immutables() {
        let runner = params(json!({
            "sudo": {"type": "boolean", "default": false},
            "dir": {"type": "string", "default": "/tmp", "immutable": true},
            "kwarg_op": {"type": "string", "default": "--"}
        }));
        let ok = params(json!({
            "sudo": {"immutable": true, "default": true, "description": "x"},
            "kwarg_op": {"immutable": true},
            "a": {"type": "string", "position": 0},
            "b": {"type": "string", "position": 1}
        }));
        let mut issues = Issues::new();
        check_against_runner("p.a", &ok, &runner, &FieldPath::root(), &mut issues);
        assert!(messages(&issues).is_empty(), "{:?}", messages(&issues));

        let bad = params(json!({
            "sudo": {"type": "string"},
            "dir": {"immutable": true},
            "c": {"type": "string", "immutable": true},
            "a": {"type": "string", "position": 0},
            "b": {"type": "string", "position": 2},
            "d": {"type": "string", "position": 0}
        }));
        let mut issues = Issues::new();
        check_against_runner("p.a", &bad, &runner, &FieldPath::root(), &mut issues);
        let m = messages(&issues);
        assert_eq!(m.len(), 5, "{m:?}");
        assert!(
            m[0].1
                .contains("`type` of runner parameter `sudo` cannot be overridden")
        );
        assert!(m[1].1.contains("declared immutable by the runner"));
        assert!(m[2].1.contains("needs a default"));
        assert!(m[3].1.contains("same position"));
        assert!(m[4].1.contains("not contiguous"));
    }

    #[test]
    fn validates_like_stackstorm() {
        let merged = merge_parameters(
            &params(json!({
                "cmd": {"type": "string"},
                "timeout": {"type": "integer", "default": 60},
                "env": {"type": "object"}
            })),
            &params(json!({
                "cmd": {"required": true},
                "count": {"type": "integer"},
                "anything": {},
                "nested": {"type": "object", "properties": {
                    "host": {"type": "string", "required": true},
                    "port": {"type": "integer", "default": 22}
                }}
            })),
        );
        let schema = Schema::for_parameters(merged, false);
        assert!(schema.is_required("cmd"));

        let cleaned = schema
            .validate(
                &json!({"cmd": "ls", "timeout": null, "count": null, "anything": [1],
                              "nested": {"host": "h", "port": null}}),
            )
            .unwrap();
        assert_eq!(cleaned["timeout"], json!(60));
        assert_eq!(cleaned["count"], Value::Null);
        assert_eq!(cleaned["nested"]["port"], json!(22));

        let errors = schema
            .validate(&json!({"timeout": "x", "unknown": 1, "nested": {}}))
            .unwrap_err();
        let names: Vec<_> = errors.iter().map(|v| v.parameter.as_str()).collect();
        assert!(names.contains(&"timeout"), "{errors:?}");
        assert!(names.contains(&"nested"), "{errors:?}");
        assert!(
            errors.iter().any(|v| v.message.contains("cmd")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|v| v.message.contains("unknown")),
            "{errors:?}"
        );
    }

    #[test]
    fn untyped_optional_parameter_accepts_only_strings_and_null() {
        let schema = Schema::for_parameters(params(json!({"p": {"description": "d"}})), false);
        assert!(schema.validate(&json!({"p": "x"})).is_ok());
        assert!(schema.validate(&json!({"p": null})).is_ok());
        assert!(schema.validate(&json!({"p": 5})).is_err());
    }

    #[test]
    fn bad_pattern_fails_to_compile() {
        let schema = Schema::for_parameters(
            params(json!({"p": {"type": "string", "pattern": "("}})),
            false,
        );
        let err = schema.check().unwrap_err();
        assert!(!err.message.is_empty());
        assert_eq!(schema.validate(&json!({"p": "x"})).unwrap_err().len(), 1);
    }

    #[test]
    fn python_equality() {
        assert!(py_eq(&json!(1), &json!(1.0)));
        assert!(py_eq(&json!(true), &json!(1)));
        assert!(!py_eq(&json!("1"), &json!(1)));
        assert!(py_eq(&json!({"a": [1]}), &json!({"a": [1.0]})));
    }
}
