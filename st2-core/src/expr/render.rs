//! Rendering action parameters the way StackStorm does (`st2common/util/param.py`) and casting
//! them to their declared types (`st2common/util/casts.py`).
//!
//! Parameters may reference each other by name (`"{{ other }}"`), the datastore
//! (`{{ st2kv.system.x }}`), the execution context (`{{ action_context.user }}`), the pack
//! config (`{{ config_context.token }}`) and extra contexts such as a rule's `trigger`. They are
//! rendered in dependency order; a missing or cyclic dependency is an error before anything is
//! rendered. Strings render to strings and are then cast by the parameter's `type`; a list or
//! mapping holding templates is rendered through its JSON text, where an element that is exactly
//! `"{{name}}"` keeps the referenced value's type.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use regex::Regex;
use serde_json::{Map, Value};

use super::jinja::filters::NONE_MAGIC_VALUE;
use super::jinja::{Jinja, KvAccess, RenderContext, is_template};
use super::shell::{ShellCommand, render_shell_command};
use crate::datastore::KeyValueRead;

/// Rendering or casting parameters failed (StackStorm's `ParamException`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A template references a name that is neither a parameter nor a context.
    #[error("Dependency unsatisfied in variable \"{0}\"")]
    Unsatisfied(String),
    /// Parameters reference each other in a cycle.
    #[error(
        "Cyclic dependency found in the following variables: {0}. Likely the variable is referencing itself"
    )]
    Cycle(String),
    /// A template failed to render.
    #[error("Failed to render parameter \"{name}\": {message}")]
    Render {
        /// The parameter.
        name: String,
        /// Why.
        message: String,
    },
    /// A value cannot be cast to the parameter's declared type.
    #[error("Failed to cast parameter \"{name}\" to {ty}: {message}")]
    Cast {
        /// The parameter.
        name: String,
        /// The declared type.
        ty: String,
        /// Why.
        message: String,
    },
}

/// What templates may read besides the parameters themselves.
#[derive(Clone, Default)]
pub struct ParamContext {
    /// The execution context (`action_context`): `user`, `api_user`, `pack`, `parent`, ...
    pub action_context: Map<String, Value>,
    /// The resolved pack config (`config_context`).
    pub config: Map<String, Value>,
    /// The datastore (`st2kv.system`, `st2kv.user`).
    pub datastore: Option<Arc<dyn KeyValueRead>>,
    /// The system user, used for `st2kv.user` when the context names no user.
    pub system_user: String,
    /// More named values (a rule's `trigger`).
    pub additional: Map<String, Value>,
    /// Parameters that are shell commands (`cmd` of the shell runners): their templates are
    /// rendered with [`render_shell_command`], the value becomes the command as StackStorm
    /// would show it, and the command itself is kept here for the runner.
    pub shell: Option<Arc<ShellCapture>>,
}

/// The shell commands rendered for [`ParamContext::shell`] parameters.
#[derive(Debug, Default)]
pub struct ShellCapture {
    names: Vec<String>,
    commands: Mutex<BTreeMap<String, ShellCommand>>,
}

impl ShellCapture {
    /// Capture the parameters named `names`.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Arc<Self> {
        Arc::new(ShellCapture {
            names: names.into_iter().map(Into::into).collect(),
            commands: Mutex::default(),
        })
    }

    fn wants(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    fn record(&self, name: &str, command: ShellCommand) {
        let mut commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        commands.insert(name.to_owned(), command);
    }

    /// The commands rendered so far, by parameter name.
    pub fn take(&self) -> BTreeMap<String, ShellCommand> {
        let mut commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *commands)
    }
}

impl std::fmt::Debug for ParamContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamContext")
            .field("action_context", &self.action_context)
            .field("additional", &self.additional)
            .finish_non_exhaustive()
    }
}

/// A node of the dependency graph: a plain value, or a template to render (StackStorm keeps
/// both attributes and renders the template when there is one).
#[derive(Debug, Clone, Default)]
struct Node {
    template: Option<Value>,
    value: Option<Value>,
    is_context: bool,
}

struct Graph<'j> {
    jinja: &'j Jinja,
    order: Vec<String>,
    nodes: HashMap<String, Node>,
    edges: Vec<(String, String)>,
}

impl<'j> Graph<'j> {
    fn new(jinja: &'j Jinja) -> Self {
        Graph {
            jinja,
            order: Vec::new(),
            nodes: HashMap::new(),
            edges: Vec::new(),
        }
    }

    fn touch(&mut self, name: &str) -> &mut Node {
        if !self.nodes.contains_key(name) {
            self.order.push(name.to_owned());
        }
        self.nodes.entry(name.to_owned()).or_default()
    }

    fn add_context(&mut self, name: &str) {
        let node = self.touch(name);
        node.is_context = true;
        node.value = Some(Value::Null);
    }

    /// StackStorm's `_process`: a template node with an edge per variable it reads, or a value.
    fn process(&mut self, name: &str, value: &Value) {
        if templated(value) {
            let source = match value {
                Value::String(s) => s.clone(),
                other => serde_json::to_string(other).unwrap_or_default(),
            };
            if let Ok(deps) = self.jinja.undeclared_variables(&source) {
                self.touch(name).template = Some(value.clone());
                let mut deps: Vec<String> = deps.into_iter().collect();
                deps.sort();
                for dep in deps {
                    self.touch(&dep);
                    self.edges.push((dep, name.to_owned()));
                }
                return;
            }
        }
        let node = self.touch(name);
        node.value = Some(value.clone());
    }

    /// StackStorm's `_process_defaults`, action schema first, then runner schema.
    fn process_defaults(&mut self, schemas: &[&Map<String, Value>]) {
        for schema in schemas {
            for (name, def) in schema.iter() {
                let absent = !self.nodes.contains_key(name);
                let is_none = self
                    .nodes
                    .get(name)
                    .is_none_or(|n| n.value.as_ref().is_none_or(Value::is_null));
                let immutable = def
                    .get("immutable")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if absent || is_none || immutable {
                    let default = def.get("default").cloned().unwrap_or(Value::Null);
                    self.process(name, &default);
                }
            }
        }
    }

    fn validate(&self) -> Result<Vec<String>, ParamError> {
        for name in &self.order {
            let node = &self.nodes[name];
            if node.value.is_none() && node.template.is_none() {
                return Err(ParamError::Unsatisfied(name.clone()));
            }
        }
        // Kahn's algorithm, taking ready nodes in insertion order.
        let mut indegree: HashMap<&str, usize> =
            self.order.iter().map(|n| (n.as_str(), 0)).collect();
        for (_, to) in &self.edges {
            *indegree.entry(to.as_str()).or_default() += 1;
        }
        let mut sorted = Vec::with_capacity(self.order.len());
        let mut done: BTreeSet<&str> = BTreeSet::new();
        loop {
            let next = self
                .order
                .iter()
                .find(|n| !done.contains(n.as_str()) && indegree[n.as_str()] == 0);
            let Some(next) = next else { break };
            done.insert(next.as_str());
            sorted.push(next.clone());
            for (from, to) in &self.edges {
                if from == next
                    && let Some(d) = indegree.get_mut(to.as_str())
                {
                    *d = d.saturating_sub(1);
                }
            }
        }
        if sorted.len() < self.order.len() {
            let mut cyclic: Vec<&str> = self
                .order
                .iter()
                .map(String::as_str)
                .filter(|n| !done.contains(n))
                .collect();
            cyclic.sort();
            return Err(ParamError::Cycle(cyclic.join(", ")));
        }
        Ok(sorted)
    }
}

static BARE_REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#""\{\{([A-z0-9_-]+)\}\}""#).expect("static regex"));

/// Render `template`, the template of parameter `name`, in `ctx` (the base context with the
/// parameters rendered before it).
fn render_template(
    jinja: &Jinja,
    name: &str,
    template: &Value,
    ctx: &RenderContext,
    shell: Option<&ShellCapture>,
) -> Result<Value, ParamError> {
    let fail = |message: String| ParamError::Render {
        name: name.to_owned(),
        message,
    };
    match template {
        Value::String(s) if shell.is_some_and(|c| c.wants(name)) => {
            let command = render_shell_command(jinja, s, ctx).map_err(|e| fail(e.to_string()))?;
            let display = Value::String(command.display.clone());
            if let Some(capture) = shell {
                capture.record(name, command);
            }
            Ok(display)
        }
        Value::String(s) => jinja
            .render(s, ctx)
            .map(Value::String)
            .map_err(|e| fail(e.message)),
        complex => {
            let encoded = serde_json::to_string(complex).map_err(|e| fail(e.to_string()))?;
            let rewritten = BARE_REFERENCE.replace_all(&encoded, "{{$1 | to_complex}}");
            let text = jinja.render(&rewritten, ctx).map_err(|e| fail(e.message))?;
            serde_json::from_str(&text).map_err(|e| fail(format!("JSONDecodeError: {e}")))
        }
    }
}

fn base_context(ctx: &ParamContext) -> RenderContext {
    let user = ctx
        .action_context
        .get("api_user")
        .or_else(|| ctx.action_context.get("user"))
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map_or_else(|| ctx.system_user.clone(), str::to_owned);
    let mut vars = Map::new();
    vars.insert(
        "action_context".into(),
        Value::Object(ctx.action_context.clone()),
    );
    vars.insert("config_context".into(), Value::Object(ctx.config.clone()));
    for (k, v) in &ctx.additional {
        vars.insert(k.clone(), v.clone());
    }
    RenderContext {
        vars,
        kv: ctx.datastore.clone().map(|store| KvAccess {
            store,
            user: Some(user),
            legacy_system: false,
        }),
        scope: None,
    }
}

fn resolve(
    jinja: &Jinja,
    graph: &Graph<'_>,
    ctx: &ParamContext,
) -> Result<Map<String, Value>, ParamError> {
    let order = graph.validate()?;
    // The context templates render in: the base context (built at the first template: most
    // parameters are plain values) and every parameter rendered so far.
    let mut scope: Option<RenderContext> = None;
    let mut rendered = Map::new();
    for name in order {
        let node = &graph.nodes[&name];
        if node.is_context {
            continue;
        }
        let value = match &node.template {
            None => node.value.clone().unwrap_or(Value::Null),
            Some(template) => {
                let scope = scope.get_or_insert_with(|| {
                    let mut base = base_context(ctx);
                    for (k, v) in &rendered {
                        base.vars.insert(k.clone(), v.clone());
                    }
                    base
                });
                render_template(jinja, &name, template, scope, ctx.shell.as_deref())?
            }
        };
        if let Some(scope) = &mut scope {
            scope.vars.insert(name.clone(), value.clone());
        }
        rendered.insert(name, value);
    }
    Ok(rendered)
}

/// Whether [`Graph::process`] takes `value` for a template: a string that is one, or a list or
/// dict whose Python text is one (StackStorm renders those from their `str()`).
fn templated(value: &Value) -> bool {
    match value {
        Value::String(s) => is_template(s),
        Value::Array(_) | Value::Object(_) => is_template(&super::python::repr(value)),
        _ => false,
    }
}

fn new_graph<'j>(jinja: &'j Jinja, ctx: &ParamContext) -> Graph<'j> {
    let mut g = Graph::new(jinja);
    for name in ["st2kv", "action_context", "config_context"] {
        g.add_context(name);
    }
    for name in ctx.additional.keys() {
        g.add_context(name);
    }
    g
}

/// Final parameters split into (runner parameters, action parameters).
pub type SplitParams = (Map<String, Value>, Map<String, Value>);

/// StackStorm's `render_live_params`: render the parameters a caller (API, rule, workflow)
/// supplied, plus templated defaults, and cast them. Non-template defaults are left for
/// [`render_final_params`].
///
/// # Errors
/// [`ParamError`] for missing or cyclic dependencies, render failures and bad casts.
pub fn render_live_params(
    jinja: &Jinja,
    runner_params: &Map<String, Value>,
    action_params: &Map<String, Value>,
    params: &Map<String, Value>,
    ctx: &ParamContext,
) -> Result<Map<String, Value>, ParamError> {
    if !live_params_render(runner_params, action_params, params) {
        return Ok(Map::new());
    }
    let mut g = new_graph(jinja, ctx);
    for (name, value) in params {
        g.process(name, value);
    }
    g.process_defaults(&[action_params, runner_params]);
    let rendered = resolve(jinja, &g, ctx)?;
    cast_params_from(params.keys(), &rendered, &[action_params, runner_params])
}

/// Whether [`render_live_params`] has anything to render: a parameter supplied, or a default
/// that is a template. When not, the result (the supplied parameters, cast) is empty, nothing
/// can fail, and the context is not read: a caller need not build one.
pub fn live_params_render(
    runner_params: &Map<String, Value>,
    action_params: &Map<String, Value>,
    params: &Map<String, Value>,
) -> bool {
    !params.is_empty()
        || [action_params, runner_params]
            .iter()
            .flat_map(|schema| schema.values())
            .any(|def| def.get("default").is_some_and(templated))
}

/// Whether [`render_final_params`] has anything to render: parameters supplied or declared
/// (an action and runner without parameters, given none, like `core.noop`, have none). When
/// not, both halves of the result are empty and the context is not read.
pub fn final_params_render(
    runner_params: &Map<String, Value>,
    action_params: &Map<String, Value>,
    params: &Map<String, Value>,
) -> bool {
    !(params.is_empty() && action_params.is_empty() && runner_params.is_empty())
}

/// StackStorm's `render_final_params`: at run time, fill in every default, cast everything,
/// and split into (runner parameters, action parameters). Supplied values are not rendered
/// again.
///
/// # Errors
/// As [`render_live_params`].
pub fn render_final_params(
    jinja: &Jinja,
    runner_params: &Map<String, Value>,
    action_params: &Map<String, Value>,
    params: &Map<String, Value>,
    ctx: &ParamContext,
) -> Result<SplitParams, ParamError> {
    if !final_params_render(runner_params, action_params, params) {
        return Ok((Map::new(), Map::new()));
    }
    let mut g = new_graph(jinja, ctx);
    for (name, value) in params {
        let node = g.touch(name);
        node.value = Some(value.clone());
    }
    g.process_defaults(&[action_params, runner_params]);
    let rendered = resolve(jinja, &g, ctx)?;
    let names: Vec<String> = rendered.keys().cloned().collect();
    let cast = cast_params_from(names.iter(), &rendered, &[action_params, runner_params])?;
    let mut runner = Map::new();
    let mut action = Map::new();
    for (k, v) in cast {
        if runner_params.contains_key(&k) {
            runner.insert(k, v);
        } else if action_params.contains_key(&k) {
            action.insert(k, v);
        }
    }
    Ok((runner, action))
}

fn cast_params_from<'a>(
    names: impl Iterator<Item = &'a String>,
    rendered: &Map<String, Value>,
    schemas: &[&Map<String, Value>],
) -> Result<Map<String, Value>, ParamError> {
    let mut result = Map::new();
    let names: Vec<&String> = names.collect();
    for name in &names {
        // The last schema declaring the parameter decides its type (runner after action).
        let schema = schemas.iter().rev().find_map(|s| s.get(name.as_str()));
        let value = rendered.get(name.as_str()).cloned().unwrap_or(Value::Null);
        result.insert((*name).clone(), cast_param(name, value, schema)?);
    }
    for schema in schemas {
        for (name, def) in schema.iter() {
            if def
                .get("immutable")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                continue;
            }
            let Some(default) = def.get("default") else {
                continue;
            };
            let current = rendered.get(name).unwrap_or(&Value::Null);
            if crate::schema::py_eq(default, current) {
                continue;
            }
            if !default.as_str().is_some_and(is_template) {
                continue;
            }
            if names.contains(&name) {
                continue;
            }
            result.insert(name.clone(), cast_param(name, current.clone(), Some(def))?);
        }
    }
    Ok(result)
}

fn cast_param(name: &str, value: Value, schema: Option<&Value>) -> Result<Value, ParamError> {
    let Some(ty) = schema.and_then(|s| s.get("type")).and_then(Value::as_str) else {
        return Ok(value);
    };
    cast(&value, ty).map_err(|message| ParamError::Cast {
        name: name.to_owned(),
        ty: ty.to_owned(),
        message,
    })
}

fn cast_none(v: &Value) -> Value {
    match v {
        Value::String(s) if s == NONE_MAGIC_VALUE => Value::Null,
        other => other.clone(),
    }
}

/// StackStorm's cast of a rendered value to a parameter type (`st2common/util/casts.py`).
///
/// # Errors
/// A message saying why the value does not convert (Python's `int()`, `float()`,
/// `ast.literal_eval` rules).
pub fn cast(value: &Value, ty: &str) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        "string" => match value {
            Value::String(_) => Ok(cast_none(value)),
            other => Err(format!(
                "Value \"{}\" must either be a string or None. Got \"{}\".",
                super::python::str(other),
                crate::expr::python::type_name(other)
            )),
        },
        "integer" => {
            let v = cast_none(value);
            py_int(&v).map(Value::from)
        }
        "number" => {
            let v = cast_none(value);
            py_float(&v).map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number))
        }
        "boolean" => match cast_none(value) {
            Value::String(s) => {
                let mut chars = s.chars();
                let capitalized: String = match chars.next() {
                    Some(c) => c
                        .to_uppercase()
                        .chain(chars.flat_map(char::to_lowercase))
                        .collect(),
                    None => String::new(),
                };
                super::pyliteral::literal_eval(&capitalized)
            }
            other => Ok(other),
        },
        "object" | "array" => match cast_none(value) {
            Value::String(s) => match serde_json::from_str::<Value>(&s) {
                Ok(v) => Ok(v),
                Err(_) => super::pyliteral::literal_eval(&s),
            },
            other => Ok(other),
        },
        _ => Ok(value.clone()),
    }
}

/// Python's `int(x)`.
fn py_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Null => Err(
            "int() argument must be a string, a bytes-like object or a real number, not 'NoneType'"
                .into(),
        ),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i64)
            })
            .ok_or_else(|| format!("cannot convert {n} to integer")),
        Value::String(s) => {
            let t = s.trim();
            let cleaned: String = t.chars().filter(|c| *c != '_').collect();
            if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
                return Err(format!("invalid literal for int() with base 10: '{s}'"));
            }
            cleaned
                .parse::<i64>()
                .map_err(|_| format!("invalid literal for int() with base 10: '{s}'"))
        }
        other => Err(format!(
            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
            crate::expr::python::type_name(other)
        )),
    }
}

/// Python's `float(x)`.
fn py_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64().ok_or_else(|| "not a number".to_owned()),
        Value::String(s) => {
            let t = s.trim().to_lowercase();
            match t.as_str() {
                "inf" | "+inf" | "infinity" => return Ok(f64::INFINITY),
                "-inf" | "-infinity" => return Ok(f64::NEG_INFINITY),
                _ => {}
            }
            t.replace('_', "")
                .parse::<f64>()
                .ok()
                .filter(|_| !t.contains("__") && !t.is_empty())
                .ok_or_else(|| format!("could not convert string to float: '{s}'"))
        }
        other => Err(format!(
            "float() argument must be a string or a real number, not '{}'",
            crate::expr::python::type_name(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::{KvScope, MemoryKeyValues};
    use crate::expr::jinja::JinjaConfig;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn parameters_render_in_dependency_order_and_cast() {
        let jinja = Jinja::new(JinjaConfig::default());
        let store = Arc::new(MemoryKeyValues::new());
        store.set(KvScope::System, "greeting", "Hello");
        let runner =
            map(json!({"timeout": {"type": "integer", "default": 60}, "cmd": {"type": "string"}}));
        let action = map(json!({
            "name": {"type": "string", "default": "world"},
            "count": {"type": "integer"},
            "tags": {"type": "array"},
            "cmd": {"default": "echo {{ greeting }} {{ name }}", "immutable": true},
            "greeting": {"type": "string", "default": "{{ st2kv.system.greeting }}"}
        }));
        let ctx = ParamContext {
            shell: None,
            datastore: Some(store),
            system_user: "stanley".into(),
            additional: map(json!({"trigger": {"n": "5", "list": [1, 2]}})),
            ..ParamContext::default()
        };
        let params = map(json!({"count": "{{ trigger.n }}", "tags": ["{{trigger}}", "x"]}));
        let live = render_live_params(&jinja, &runner, &action, &params, &ctx).unwrap();
        assert_eq!(live["count"], json!(5));
        assert_eq!(live["tags"], json!([{"n": "5", "list": [1, 2]}, "x"]));
        assert_eq!(
            live["greeting"],
            json!("Hello"),
            "templated defaults are rendered live"
        );
        assert!(
            !live.contains_key("timeout"),
            "plain defaults wait for the final render"
        );

        let (runner_p, action_p) =
            render_final_params(&jinja, &runner, &action, &live, &ctx).unwrap();
        assert_eq!(runner_p["timeout"], json!(60));
        assert_eq!(runner_p["cmd"], json!("echo Hello world"));
        assert_eq!(action_p["count"], json!(5));
    }

    #[test]
    fn missing_and_cyclic_dependencies_are_errors() {
        let jinja = Jinja::new(JinjaConfig::default());
        let ctx = ParamContext::default();
        let empty = Map::new();
        let err = render_live_params(
            &jinja,
            &empty,
            &empty,
            &map(json!({"a": "{{ nope }}"})),
            &ctx,
        )
        .unwrap_err();
        assert_eq!(err, ParamError::Unsatisfied("nope".into()));
        let err = render_live_params(
            &jinja,
            &empty,
            &empty,
            &map(json!({"a": "{{ b }}", "b": "{{ a }}"})),
            &ctx,
        )
        .unwrap_err();
        assert!(
            matches!(err, ParamError::Cycle(ref names) if names == "a, b"),
            "{err}"
        );
    }

    #[test]
    fn nothing_supplied_renders_only_templated_defaults() {
        let jinja = Jinja::new(JinjaConfig::default());
        let ctx = ParamContext::default();
        let empty = Map::new();
        assert_eq!(
            render_live_params(&jinja, &empty, &empty, &empty, &ctx),
            Ok(Map::new())
        );
        assert_eq!(
            render_final_params(&jinja, &empty, &empty, &empty, &ctx),
            Ok((Map::new(), Map::new()))
        );
        // Plain defaults: nothing live; final has them.
        let plain = map(json!({"n": {"type": "integer", "default": 3}, "l": {"default": [1]}}));
        assert_eq!(
            render_live_params(&jinja, &empty, &plain, &empty, &ctx),
            Ok(Map::new())
        );
        let (_, action) = render_final_params(&jinja, &empty, &plain, &empty, &ctx).unwrap();
        assert_eq!(action, map(json!({"n": 3, "l": [1]})));
        // A templated default is rendered live (so it fails there), a string one or one
        // inside a list alike.
        for default in [json!("{{ nope }}"), json!(["{{ nope }}"])] {
            let templated = map(json!({"t": {"default": default}}));
            assert_eq!(
                render_live_params(&jinja, &templated, &empty, &empty, &ctx),
                Err(ParamError::Unsatisfied("nope".into())),
                "{default}"
            );
            assert!(live_params_render(&templated, &empty, &empty));
            assert!(live_params_render(&empty, &templated, &empty));
        }
        // What the callers check before building a context, as the renderers decide.
        assert!(!live_params_render(&empty, &empty, &empty));
        assert!(!live_params_render(&empty, &plain, &empty));
        assert!(live_params_render(&empty, &empty, &map(json!({"a": 1}))));
        assert!(!final_params_render(&empty, &empty, &empty));
        assert!(final_params_render(&empty, &plain, &empty));
        assert!(final_params_render(&plain, &empty, &empty));
        assert!(final_params_render(&empty, &empty, &map(json!({"a": 1}))));
    }

    #[test]
    fn casts_follow_python() {
        assert_eq!(cast(&json!("5"), "integer"), Ok(json!(5)));
        assert!(cast(&json!("5.0"), "integer").is_err());
        assert_eq!(cast(&json!(5.9), "integer"), Ok(json!(5)));
        assert_eq!(cast(&json!("true"), "boolean"), Ok(json!(true)));
        assert_eq!(cast(&json!("1"), "boolean"), Ok(json!(1)));
        assert!(cast(&json!("yes"), "boolean").is_err());
        assert_eq!(cast(&json!("{'a': 1}"), "object"), Ok(json!({"a": 1})));
        assert_eq!(cast(&json!("[1, 2]"), "array"), Ok(json!([1, 2])));
        assert_eq!(cast(&json!(NONE_MAGIC_VALUE), "string"), Ok(Value::Null));
        assert!(cast(&json!(5), "string").is_err());
        assert_eq!(cast(&json!("1e3"), "number"), Ok(json!(1000.0)));
    }
}
