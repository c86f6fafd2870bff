//! Rule criteria, evaluated as StackStorm's rule filter (`st2reactor/rules/filter.py`)
//! evaluates them.
//!
//! A rule's `criteria` mapping is compiled once ([`Criteria::compile`]): keys are parsed as
//! JSONPath, static patterns are prepared for their operator (regexes compiled), templated
//! patterns are kept for rendering, `search` children and Rhai scripts are compiled. Nothing in
//! compilation fails: what StackStorm would only notice while evaluating stays an evaluation
//! error, and [`Criteria::problems`] lists what is wrong whatever the payload, so a loader can
//! reject the rule up front.
//!
//! Evaluating ([`Criteria::evaluate`]) follows StackStorm step by step:
//!
//! * empty criteria always match; non-empty criteria never match an empty or null payload;
//! * criteria are checked in mapping order and the first false one ends the evaluation;
//! * a criterion without `type` is false;
//! * the pattern is rendered first (strings only): a template with `{{ }}` is rendered with
//!   `| to_complex` inserted and JSON-decoded, so `"{{ trigger.n }}"` keeps the number's type;
//!   if the result is not JSON the template is rendered again as plain text;
//! * the key (everything before the first `#`) is a JSONPath into
//!   `{"trigger": payload, "system": <datastore>}`; the value is the first match, or null;
//! * the operator is applied with Python's semantics.
//!
//! A criterion that raises (a template error, a key JSONPath cannot parse, an operator failing
//! on the types it got) is false and is recorded as a [`Failure`]: StackStorm writes a failed
//! rule enforcement for each. An unknown operator name outside `search` is not caught by
//! StackStorm at all: the whole trigger instance fails ([`Unrecoverable`]).
//!
//! Two extensions StackStorm does not have (rules using them do not load in StackStorm):
//! an `or` entry holding a list of criteria mappings, which holds when any of them holds, and the
//! `rhai` operator, whose pattern is a Rhai script over `value` and `trigger`.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::datastore::KeyValueRead;
use crate::expr::ExprError;
use crate::expr::jinja::filters::PATTERN_COMPLEX;
use crate::expr::jinja::{Jinja, KvAccess, RenderContext};
use crate::expr::jsonpath::{JsonPath, Step};
use crate::expr::rhai::{Rhai, RhaiScript};
use crate::model::operator::Operator;
use crate::rules::operators::{self, OperatorError};

/// The key of the `or` extension.
pub const OR_KEY: &str = "or";

/// What a criterion raised while being evaluated. StackStorm records each as a failed rule
/// enforcement; the criterion counts as false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The criterion's key as written (`trigger.body.status`, `item.name#2`).
    pub key: String,
    /// The stage that failed, in StackStorm's words (`Failed to render pattern value "..." for
    /// key "..."`, `Failed transforming criteria key ...`, `There might be a problem with the
    /// criteria in rule ...`).
    pub stage: Stage,
    /// The Python exception class StackStorm reports (`TypeError`, `re.error`, ...).
    pub class: &'static str,
    /// The exception's message.
    pub message: String,
}

/// Where a criterion failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Rendering the pattern.
    Pattern,
    /// Resolving the key.
    Key,
    /// Applying the operator.
    Operator,
}

impl Failure {
    /// StackStorm's `failure_reason` text for this failure in rule `rule`.
    pub fn reason(&self, rule: &str, pattern: &Value) -> String {
        let what = match self.stage {
            Stage::Pattern => format!(
                "Failed to render pattern value \"{}\" for key \"{}\"",
                crate::expr::python::str(pattern),
                self.key
            ),
            Stage::Key => format!("Failed transforming criteria key {}", self.key),
            Stage::Operator => {
                format!("There might be a problem with the criteria in rule {rule}")
            }
        };
        format!("{what}: {}", self.message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "criterion `{}`: {}: {}",
            self.key, self.class, self.message
        )
    }
}

/// An error StackStorm does not catch: it fails the whole trigger instance
/// (`processing_failed`) rather than one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecoverable {
    /// The Python exception class (`Exception` for an unknown operator).
    pub class: &'static str,
    /// The message.
    pub message: String,
}

impl fmt::Display for Unrecoverable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

impl std::error::Error for Unrecoverable {}

/// The result of evaluating criteria against one payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Whether the rule matches.
    pub matched: bool,
    /// What raised along the way, in evaluation order.
    pub failures: Vec<Failure>,
}

/// A problem that makes a criterion fail for every payload (reported at load time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: from the top-level criterion down to the failing one.
    pub path: Vec<PathPart>,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// What is wrong.
    pub message: String,
}

/// One step of a [`Problem`]'s path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPart {
    /// A criterion, by key (a `search` child follows its parent).
    Criterion(String),
    /// The n-th group of an `or` entry.
    OrGroup(usize),
}

impl Problem {
    /// The path as text: `trigger.items > item.name`, `or[1] > trigger.x`.
    pub fn location(&self) -> String {
        let mut out = String::new();
        for part in &self.path {
            match part {
                PathPart::Criterion(k) => {
                    if !out.is_empty() {
                        out.push_str(" > ");
                    }
                    out.push_str(k);
                }
                PathPart::OrGroup(i) => {
                    if !out.is_empty() {
                        out.push_str(" > ");
                    }
                    out.push_str(&format!("{OR_KEY}[{i}]"));
                }
            }
        }
        out
    }
}

/// What kind of [`Problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The key is not JSONPath.
    Key,
    /// No operator, or one StackStorm does not know.
    Operator,
    /// The pattern cannot be used with its operator (an invalid regex, a non-numeric
    /// `timediff` pattern, a Rhai script that does not compile).
    Pattern,
    /// `search` without a valid condition or a mapping of child criteria.
    Search,
    /// An `or` entry that is not a list of criteria mappings.
    Or,
}

/// Everything an evaluation needs besides the payload.
#[derive(Clone)]
pub struct Environment<'a> {
    /// StackStorm's Jinja environment, for templated patterns.
    pub jinja: &'a Jinja,
    /// The datastore `st2kv.system` / `system` read (empty when `None`).
    pub kv: Option<Arc<dyn KeyValueRead>>,
    /// The Rhai engine for `rhai` criteria.
    pub rhai: &'a Rhai,
    /// "Now", for `timediff_*`.
    pub now: DateTime<Utc>,
}

impl fmt::Debug for Environment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Compiled criteria. Cheap to share; evaluation takes `&self`.
#[derive(Debug, Clone)]
pub struct Criteria {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
enum Entry {
    Criterion(Box<Criterion>),
    /// The `or` extension: holds when any of the groups holds.
    AnyOf(Vec<Criteria>),
    /// An `or` entry that is not a list of mappings.
    BadOr(String),
}

#[derive(Debug, Clone)]
struct Criterion {
    key: String,
    /// The key up to its first `#`, parsed.
    path: Result<KeyPath, String>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// No `type`: false.
    NoType,
    /// An operator name StackStorm does not know (or not a string).
    Unknown { name: Value, pattern: Value },
    Op {
        op: Operator,
        /// The name as written was not `search` exactly (StackStorm then calls the search
        /// function without its condition, which raises).
        search_spelled_otherwise: bool,
        pattern: Pattern,
        condition: Option<Value>,
    },
}

#[derive(Debug, Clone)]
enum Pattern {
    /// A pattern that needs no rendering (null, numbers, lists, mappings, and strings with
    /// nothing for Jinja to do), prepared for its operator.
    Static {
        value: Value,
        is_string: bool,
        prepared: Result<operators::Compiled, OperatorError>,
    },
    /// A string Jinja has to render.
    Template {
        source: String,
        /// The source with `| to_complex` inserted, when it holds `{{ }}`.
        complex: Option<String>,
    },
    /// `search` children, compiled.
    Search { raw: Value, children: Criteria },
    /// `rhai`: the script.
    Rhai {
        source: Value,
        script: Result<RhaiScript, String>,
    },
}

/// A compiled criteria key.
#[derive(Debug, Clone)]
enum KeyPath {
    /// `<root>.a.b[0]`: a context entry, then plain steps.
    Steps { root: Root, rest: Vec<Step> },
    /// Anything else `jsonpath_rw` accepts.
    General(JsonPath),
}

/// The context entry a key starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    /// The payload, in rule criteria.
    Trigger,
    /// The list item, in `search` children.
    Item,
    /// The datastore (legacy name).
    System,
    /// The datastore, once a pattern has been rendered.
    St2kv,
    /// Anything else: never found.
    Other,
}

/// `({{)\s*(.*)\s*(}})`, StackStorm's greedy rewrite of a templated pattern.
fn complex_rewrite(source: &str) -> Option<String> {
    if !source.contains("{{") {
        return None;
    }
    let mut out = String::with_capacity(source.len() + 16);
    let mut changed = false;
    // `.` does not match a newline: each line is rewritten on its own.
    for (i, line) in source.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let Some(open) = line.find("{{") else {
            out.push_str(line);
            continue;
        };
        let Some(close) = line.rfind("}}").filter(|c| *c >= open + 2) else {
            out.push_str(line);
            continue;
        };
        let inner = line[open + 2..close].trim_start_matches(char::is_whitespace);
        out.push_str(&line[..open]);
        out.push_str("{{");
        out.push_str(inner);
        out.push_str(" | ");
        out.push_str(PATTERN_COMPLEX);
        out.push_str("}}");
        out.push_str(&line[close + 2..]);
        changed = true;
    }
    changed.then_some(out)
}

/// A string pattern Jinja would change: it holds a delimiter or ends with a newline (which
/// rendering drops).
fn needs_render(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#") || s.ends_with('\n')
}

fn compile_key(key: &str) -> Result<KeyPath, String> {
    let field = key.split('#').next().unwrap_or(key);
    let path = JsonPath::parse(field).map_err(|e| e.message)?;
    Ok(match path.steps() {
        Some(mut steps) if matches!(steps.first(), Some(Step::Field(_))) => {
            let rest = steps.split_off(1);
            let root = match steps.pop() {
                Some(Step::Field(name)) => match name.as_str() {
                    "trigger" => Root::Trigger,
                    "item" => Root::Item,
                    "system" => Root::System,
                    "st2kv" => Root::St2kv,
                    _ => Root::Other,
                },
                _ => Root::Other,
            };
            KeyPath::Steps { root, rest }
        }
        _ => KeyPath::General(path),
    })
}

impl Criteria {
    /// Criteria that always match.
    pub fn empty() -> Self {
        Criteria {
            entries: Vec::new(),
        }
    }

    /// Compile a rule's `criteria` mapping (see the module docs).
    pub fn compile(map: &Map<String, Value>, rhai: &Rhai) -> Self {
        let entries = map
            .iter()
            .map(|(key, spec)| {
                if key == OR_KEY
                    && let Value::Array(groups) = spec
                {
                    let groups: Option<Vec<Criteria>> = groups
                        .iter()
                        .map(|g| g.as_object().map(|m| Criteria::compile(m, rhai)))
                        .collect();
                    return match groups {
                        Some(groups) => Entry::AnyOf(groups),
                        None => Entry::BadOr("`or` must be a list of criteria mappings".to_owned()),
                    };
                }
                Entry::Criterion(Box::new(Criterion::compile(key, spec, rhai)))
            })
            .collect();
        Criteria { entries }
    }

    /// When the first criterion is `equals` with a plain pattern on a plain key under the
    /// payload (`trigger.service: {type: equals, pattern: web}`): the key's steps after
    /// `trigger` and the pattern. Such criteria cannot match a payload whose value there is not
    /// equal to the pattern, and they stop right there without raising, so a matcher may skip
    /// them by looking the value up in an index.
    pub fn leading_equality(&self) -> Option<(&[Step], &Value)> {
        let Entry::Criterion(c) = self.entries.first()? else {
            return None;
        };
        let Kind::Op {
            op: Operator::Equals,
            pattern:
                Pattern::Static {
                    value,
                    prepared: Ok(_),
                    ..
                },
            ..
        } = &c.kind
        else {
            return None;
        };
        match c.path.as_ref().ok()? {
            KeyPath::Steps {
                root: Root::Trigger,
                rest,
            } => Some((rest, value)),
            _ => None,
        }
    }

    /// True when there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What fails whatever the payload: unknown operators, patterns the operator cannot use
    /// (an invalid regex, a non-numeric `timediff` pattern), keys that are not JSONPath,
    /// `search` without a valid condition or child mapping, Rhai scripts that do not compile.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        self.collect_problems(&[], &mut out);
        out
    }

    fn collect_problems(&self, prefix: &[PathPart], out: &mut Vec<Problem>) {
        for entry in &self.entries {
            match entry {
                Entry::Criterion(c) => c.collect_problems(prefix, out),
                Entry::AnyOf(groups) => {
                    for (i, g) in groups.iter().enumerate() {
                        let mut p = prefix.to_vec();
                        p.push(PathPart::OrGroup(i));
                        g.collect_problems(&p, out);
                    }
                }
                Entry::BadOr(message) => {
                    let mut path = prefix.to_vec();
                    path.push(PathPart::Criterion(OR_KEY.to_owned()));
                    out.push(Problem {
                        path,
                        kind: ProblemKind::Or,
                        message: message.clone(),
                    });
                }
            }
        }
    }

    /// Evaluate against a trigger payload.
    ///
    /// # Errors
    /// [`Unrecoverable`] for what StackStorm does not catch (an unknown operator name).
    pub fn evaluate(
        &self,
        payload: &Value,
        env: &Environment<'_>,
    ) -> Result<Outcome, Unrecoverable> {
        let mut outcome = Outcome::default();
        if self.entries.is_empty() {
            outcome.matched = true;
            return Ok(outcome);
        }
        if is_empty_payload(payload) {
            return Ok(outcome);
        }
        let mut lookup = Lookup::new("trigger", payload);
        outcome.matched = self.all(&mut lookup, env, &mut outcome.failures)?;
        Ok(outcome)
    }

    /// All entries hold, checked in order until one does not.
    fn all(
        &self,
        lookup: &mut Lookup<'_>,
        env: &Environment<'_>,
        failures: &mut Vec<Failure>,
    ) -> Result<bool, Unrecoverable> {
        for entry in &self.entries {
            let ok = match entry {
                Entry::Criterion(c) => c.check(lookup, env, failures)?,
                Entry::AnyOf(groups) => {
                    let mut any = false;
                    for g in groups {
                        if g.all(lookup, env, failures)? {
                            any = true;
                            break;
                        }
                    }
                    any
                }
                Entry::BadOr(message) => {
                    failures.push(Failure {
                        key: OR_KEY.to_owned(),
                        stage: Stage::Operator,
                        class: "TypeError",
                        message: message.clone(),
                    });
                    false
                }
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn is_empty_payload(payload: &Value) -> bool {
    match payload {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

/// The data one criteria evaluation looks keys up in: `{<prefix>: data, "system": <lookup>}`,
/// plus `st2kv` once a string pattern has been rendered (StackStorm's rendering adds it to the
/// very dictionary the keys are then looked up in).
struct Lookup<'a> {
    prefix: &'static str,
    root: Root,
    data: &'a Value,
    st2kv_added: bool,
}

/// What a key resolved to.
enum Found<'a> {
    /// A JSON value (null when nothing matched).
    Json(Cow<'a, Value>),
    /// A datastore lookup object (`system.x`, `st2kv.system.x`): never None, equal to nothing.
    DatastoreLookup,
}

impl<'a> Lookup<'a> {
    fn new(prefix: &'static str, data: &'a Value) -> Self {
        Lookup {
            prefix,
            root: if prefix == "item" {
                Root::Item
            } else {
                Root::Trigger
            },
            data,
            st2kv_added: false,
        }
    }

    fn resolve(&self, path: &KeyPath) -> Found<'a> {
        match path {
            KeyPath::Steps { root, rest } => {
                if *root == self.root {
                    let mut v = self.data;
                    for step in rest {
                        match step.apply(v) {
                            Some(next) => v = next,
                            None => return Found::Json(Cow::Owned(Value::Null)),
                        }
                    }
                    return Found::Json(Cow::Borrowed(v));
                }
                let fields_only =
                    |steps: &[Step]| steps.iter().all(|s| matches!(s, Step::Field(_)));
                let datastore = match root {
                    Root::System => fields_only(rest),
                    Root::St2kv if self.st2kv_added => {
                        matches!(rest.first(), Some(Step::Field(s)) if s == "system")
                            && fields_only(&rest[1..])
                    }
                    _ => false,
                };
                if datastore {
                    Found::DatastoreLookup
                } else {
                    Found::Json(Cow::Owned(Value::Null))
                }
            }
            KeyPath::General(path) => {
                // Rare shapes (`$..x`, `*`, unions): search a JSON copy of the context, where
                // the datastore entries are plain markers.
                let mut context = Map::new();
                context.insert(self.prefix.to_owned(), self.data.clone());
                let found = path.first(&Value::Object(context)).cloned();
                Found::Json(Cow::Owned(found.unwrap_or(Value::Null)))
            }
        }
    }
}

impl Criterion {
    fn compile(key: &str, spec: &Value, rhai: &Rhai) -> Criterion {
        let path = compile_key(key);
        let kind = match spec.as_object() {
            // StackStorm reads `"type" in criterion`: a non-mapping raises there, which the
            // registration schema prevents; treat it as a criterion without a type.
            None => Kind::NoType,
            Some(spec) => match spec.get("type") {
                None => Kind::NoType,
                Some(name) => {
                    let pattern = spec.get("pattern").cloned().unwrap_or(Value::Null);
                    let op = name.as_str().and_then(Operator::from_name_ignore_case);
                    match op {
                        None => Kind::Unknown {
                            name: name.clone(),
                            pattern,
                        },
                        Some(op) => Kind::Op {
                            op,
                            search_spelled_otherwise: op == Operator::Search
                                && name.as_str() != Some("search"),
                            condition: spec.get("condition").cloned(),
                            pattern: Pattern::compile(op, pattern, rhai),
                        },
                    }
                }
            },
        };
        Criterion {
            key: key.to_owned(),
            path,
            kind,
        }
    }

    fn collect_problems(&self, prefix: &[PathPart], out: &mut Vec<Problem>) {
        let mut path = prefix.to_vec();
        path.push(PathPart::Criterion(self.key.clone()));
        let mut found: Vec<(ProblemKind, String)> = Vec::new();
        if let Err(e) = &self.path {
            found.push((
                ProblemKind::Key,
                format!("the key is not a valid JSONPath: {e}"),
            ));
        }
        match &self.kind {
            Kind::NoType => found.push((ProblemKind::Operator, "no operator (`type`)".to_owned())),
            Kind::Unknown { name, .. } => found.push((
                ProblemKind::Operator,
                format!("unknown operator {}", crate::expr::python::repr(name)),
            )),
            Kind::Op {
                op,
                search_spelled_otherwise,
                pattern,
                condition,
            } => {
                if *search_spelled_otherwise {
                    found.push((
                        ProblemKind::Operator,
                        "the `search` operator must be written in lower case".to_owned(),
                    ));
                }
                match pattern {
                    Pattern::Static {
                        prepared: Err(e), ..
                    } => found.push((
                        ProblemKind::Pattern,
                        format!("pattern unusable for `{op}`: {e}"),
                    )),
                    Pattern::Rhai { script: Err(e), .. } => found.push((
                        ProblemKind::Pattern,
                        format!("Rhai script does not compile: {e}"),
                    )),
                    Pattern::Search { children, .. } => {
                        let valid = condition
                            .as_ref()
                            .and_then(Value::as_str)
                            .is_some_and(|c| crate::model::rule::SEARCH_CONDITIONS.contains(&c));
                        if !valid {
                            found.push((
                                ProblemKind::Search,
                                "`search` needs a `condition` of any, all, any2any or all2any"
                                    .to_owned(),
                            ));
                        }
                        children.collect_problems(&path, out);
                    }
                    _ if *op == Operator::Search => found.push((
                        ProblemKind::Search,
                        "the `search` pattern must be a mapping of item criteria".to_owned(),
                    )),
                    _ => {}
                }
            }
        }
        out.extend(found.into_iter().map(|(kind, message)| Problem {
            path: path.clone(),
            kind,
            message,
        }));
    }

    /// One criterion: `Ok(false)` with a recorded failure when it raises.
    fn check(
        &self,
        lookup: &mut Lookup<'_>,
        env: &Environment<'_>,
        failures: &mut Vec<Failure>,
    ) -> Result<bool, Unrecoverable> {
        let (op, pattern, condition, search_spelled_otherwise) = match &self.kind {
            Kind::NoType => return Ok(false),
            Kind::Unknown { name, pattern } => {
                // StackStorm renders the pattern and resolves the key before it looks the
                // operator up, so their failures come first.
                if let Some(s) = pattern.as_str() {
                    lookup.st2kv_added = true;
                    if needs_render(s)
                        && let Err(f) =
                            render_pattern(s, complex_rewrite(s).as_deref(), lookup, env)
                    {
                        failures.push(self.failure(Stage::Pattern, f.0, f.1));
                        return Ok(false);
                    }
                }
                if let Err(e) = &self.path {
                    failures.push(self.failure(Stage::Key, "Exception", e.clone()));
                    return Ok(false);
                }
                let message = match name.as_str() {
                    Some(n) => format!("Invalid operator: {}", n.to_lowercase()),
                    None => format!(
                        "'{}' object has no attribute 'lower'",
                        crate::expr::python::type_name(name)
                    ),
                };
                let class = if name.is_string() {
                    "Exception"
                } else {
                    "AttributeError"
                };
                // Inside `search`, the parent criterion catches it (see `search`).
                return Err(Unrecoverable { class, message });
            }
            Kind::Op {
                op,
                pattern,
                condition,
                search_spelled_otherwise,
            } => (*op, pattern, condition, *search_spelled_otherwise),
        };

        // 1. The pattern.
        let rendered: Rendered<'_> = match pattern {
            Pattern::Static {
                value,
                is_string,
                prepared,
            } => {
                if *is_string {
                    lookup.st2kv_added = true;
                }
                Rendered::Static(value, prepared)
            }
            Pattern::Template { source, complex } => {
                lookup.st2kv_added = true;
                match render_pattern(source, complex.as_deref(), lookup, env) {
                    Ok(v) => Rendered::Dynamic(v),
                    Err((class, message)) => {
                        failures.push(self.failure(Stage::Pattern, class, message));
                        return Ok(false);
                    }
                }
            }
            Pattern::Search { raw, .. } => Rendered::Raw(raw),
            Pattern::Rhai { source, .. } => {
                if source.is_string() {
                    lookup.st2kv_added = true;
                }
                Rendered::Raw(source)
            }
        };

        // 2. The key.
        let path = match &self.path {
            Ok(p) => p,
            Err(e) => {
                failures.push(self.failure(Stage::Key, "Exception", e.clone()));
                return Ok(false);
            }
        };
        let found = lookup.resolve(path);

        // 3. The operator.
        let result = match (op, pattern) {
            (Operator::Search, Pattern::Search { children, .. }) => {
                if search_spelled_otherwise {
                    Err(("TypeError", "search() missing 2 required positional arguments: 'criteria_condition' and 'check_function'".to_owned()))
                } else {
                    search(&found, children, condition.as_ref(), env, failures)?
                }
            }
            (Operator::Search, _) => {
                if search_spelled_otherwise {
                    Err(("TypeError", "search() missing 2 required positional arguments: 'criteria_condition' and 'check_function'".to_owned()))
                } else {
                    Err((
                        "AttributeError",
                        format!(
                            "'{}' object has no attribute 'items'",
                            crate::expr::python::type_name(rendered.value())
                        ),
                    ))
                }
            }
            (Operator::Rhai, Pattern::Rhai { script, .. }) => {
                rhai_check(script, &found, lookup.data, env)
            }
            (op, _) => apply(op, &rendered, &found, env.now),
        };
        match result {
            Ok(b) => Ok(b),
            Err((class, message)) => {
                failures.push(self.failure(Stage::Operator, class, message));
                Ok(false)
            }
        }
    }

    fn failure(&self, stage: Stage, class: &'static str, message: String) -> Failure {
        Failure {
            key: self.key.clone(),
            stage,
            class,
            message,
        }
    }
}

impl Pattern {
    fn compile(op: Operator, pattern: Value, rhai: &Rhai) -> Pattern {
        match (op, &pattern) {
            (Operator::Search, Value::Object(children)) => Pattern::Search {
                children: Criteria::compile(children, rhai),
                raw: pattern,
            },
            (Operator::Rhai, Value::String(script)) => Pattern::Rhai {
                script: rhai.compile(script).map_err(|e| e.message),
                source: pattern,
            },
            (Operator::Rhai, other) => Pattern::Rhai {
                script: Err(format!(
                    "the pattern of a `rhai` criterion is a script, not {}",
                    crate::expr::python::type_name(other)
                )),
                source: pattern,
            },
            (_, Value::String(s)) if needs_render(s) => Pattern::Template {
                complex: complex_rewrite(s),
                source: s.clone(),
            },
            _ => Pattern::Static {
                is_string: pattern.is_string(),
                prepared: operators::Compiled::new(op, &pattern),
                value: pattern,
            },
        }
    }
}

/// A pattern ready for its operator.
enum Rendered<'p> {
    Static(&'p Value, &'p Result<operators::Compiled, OperatorError>),
    Dynamic(Value),
    /// `search` children and Rhai scripts: not used as an operator pattern.
    Raw(&'p Value),
}

impl Rendered<'_> {
    fn value(&self) -> &Value {
        match self {
            Rendered::Static(v, _) | Rendered::Raw(v) => v,
            Rendered::Dynamic(v) => v,
        }
    }
}

type Raised = (&'static str, String);

fn expr_raised(e: &ExprError) -> Raised {
    let class = e.kind.python_class();
    // Jinja's messages carry the class as a prefix ("TypeError: ..."); keep the text only.
    let message = e
        .message
        .strip_prefix(class)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(&e.message)
        .to_owned();
    (class, message)
}

/// Render a templated pattern as StackStorm does: with `| to_complex` and JSON-decoded when
/// that works, else as plain text.
fn render_pattern(
    source: &str,
    complex: Option<&str>,
    lookup: &Lookup<'_>,
    env: &Environment<'_>,
) -> Result<Value, Raised> {
    let mut vars = Map::new();
    vars.insert(lookup.prefix.to_owned(), lookup.data.clone());
    // Without a datastore, `st2kv` lookups see an empty one (shared, built once).
    static EMPTY: std::sync::OnceLock<Arc<dyn KeyValueRead>> = std::sync::OnceLock::new();
    let store = match &env.kv {
        Some(store) => store.clone(),
        None => EMPTY
            .get_or_init(|| Arc::new(crate::datastore::MemoryKeyValues::new()))
            .clone(),
    };
    let ctx = RenderContext::new(vars).with_kv(KvAccess {
        store,
        user: None,
        legacy_system: true,
    });
    if let Some(complex) = complex {
        match env.jinja.render(complex, &ctx) {
            Ok(text) => {
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    return Ok(v);
                }
            }
            // Only a JSON decoding error falls back to the plain render; anything the
            // template raised is the criterion's failure.
            Err(e) => return Err(expr_raised(&e)),
        }
    }
    env.jinja
        .render(source, &ctx)
        .map(Value::String)
        .map_err(|e| expr_raised(&e))
}

/// The operator on the found value.
fn apply(
    op: Operator,
    pattern: &Rendered<'_>,
    found: &Found<'_>,
    now: DateTime<Utc>,
) -> Result<bool, Raised> {
    match found {
        Found::Json(value) => {
            let prepared;
            let compiled = match pattern {
                Rendered::Static(_, Ok(c)) => c,
                Rendered::Static(_, Err(e)) => return Err((e.class, e.message.clone())),
                Rendered::Dynamic(v) => {
                    prepared = operators::Compiled::new(op, v).map_err(|e| (e.class, e.message))?;
                    &prepared
                }
                Rendered::Raw(v) => {
                    prepared = operators::Compiled::new(op, v).map_err(|e| (e.class, e.message))?;
                    &prepared
                }
            };
            compiled.test(value, now).map_err(|e| (e.class, e.message))
        }
        Found::DatastoreLookup => lookup_operator(op, pattern.value()),
    }
}

/// Operators applied to a datastore lookup object: it is never None and equals nothing.
fn lookup_operator(op: Operator, pattern: &Value) -> Result<bool, Raised> {
    let unusable = |what: &str| {
        Err((
            "TypeError",
            format!("a datastore lookup object cannot be used with `{what}`"),
        ))
    };
    match op {
        Operator::Exists => Ok(true),
        Operator::NotExists => Ok(false),
        Operator::Equals => Ok(false),
        Operator::NotEquals => Ok(true),
        Operator::Inside | Operator::NotInside => match pattern {
            Value::Null => Ok(false),
            Value::Array(_) | Value::Object(_) => Ok(op == Operator::NotInside),
            _ => unusable(op.name()),
        },
        other => unusable(other.name()),
    }
}

/// `search`: child criteria over the items of the value (a mapping counts as one item). Every
/// child is evaluated for every item, as StackStorm builds its lists before `any`/`all`.
fn search(
    found: &Found<'_>,
    children: &Criteria,
    condition: Option<&Value>,
    env: &Environment<'_>,
    failures: &mut Vec<Failure>,
) -> Result<Result<bool, Raised>, Unrecoverable> {
    let (items_any, patterns_any) = match condition.and_then(Value::as_str) {
        Some("any") => (true, false),
        Some("all") => (false, false),
        Some("all2any") => (false, true),
        Some("any2any") => (true, true),
        other => {
            let shown = other.map_or_else(
                || condition.map_or("None".to_owned(), crate::expr::python::str),
                str::to_owned,
            );
            return Ok(Err((
                "UnrecognizedConditionError",
                format!(
                    "The '{shown}' condition is not recognized for type search, 'any', 'all', 'any2any' and 'all2any' are allowed"
                ),
            )));
        }
    };
    let value = match found {
        Found::Json(v) => v.as_ref(),
        Found::DatastoreLookup => {
            return Ok(Err((
                "TypeError",
                "a datastore lookup object cannot be searched".to_owned(),
            )));
        }
    };
    let chars: Vec<Value>;
    let single;
    let items: &[Value] = match value {
        Value::Array(items) => items,
        Value::Object(_) => {
            single = [value.clone()];
            &single
        }
        Value::String(s) => {
            chars = s.chars().map(|c| Value::String(c.to_string())).collect();
            &chars
        }
        other => {
            return Ok(Err((
                "TypeError",
                format!(
                    "'{}' object is not iterable",
                    crate::expr::python::type_name(other)
                ),
            )));
        }
    };
    let mut per_item = Vec::with_capacity(items.len());
    for item in items {
        let mut lookup = Lookup::new("item", item);
        let mut results = Vec::with_capacity(children.entries.len());
        for entry in &children.entries {
            let ok = match entry {
                Entry::Criterion(c) => match c.check(&mut lookup, env, failures) {
                    Ok(b) => b,
                    // An unknown child operator raises through `search`: the parent fails.
                    Err(u) => return Ok(Err((u.class, u.message))),
                },
                Entry::AnyOf(groups) => {
                    let mut any = false;
                    for g in groups {
                        match g.all(&mut lookup, env, failures) {
                            Ok(true) => {
                                any = true;
                                break;
                            }
                            Ok(false) => {}
                            Err(u) => return Ok(Err((u.class, u.message))),
                        }
                    }
                    any
                }
                Entry::BadOr(message) => return Ok(Err(("TypeError", message.clone()))),
            };
            results.push(ok);
        }
        per_item.push(if patterns_any {
            results.iter().any(|b| *b)
        } else {
            results.iter().all(|b| *b)
        });
    }
    Ok(Ok(if items_any {
        per_item.iter().any(|b| *b)
    } else {
        per_item.iter().all(|b| *b)
    }))
}

/// `rhai`: run the script with `value` and `trigger` (the payload, or `item` inside `search`).
fn rhai_check(
    script: &Result<RhaiScript, String>,
    found: &Found<'_>,
    data: &Value,
    env: &Environment<'_>,
) -> Result<bool, Raised> {
    let script = script.as_ref().map_err(|e| ("RhaiError", e.clone()))?;
    let mut vars = Map::new();
    let value = match found {
        Found::Json(v) => v.as_ref().clone(),
        Found::DatastoreLookup => Value::Null,
    };
    vars.insert("value".to_owned(), value);
    vars.insert("trigger".to_owned(), data.clone());
    match env.rhai.run(script, &vars) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err((
            "RhaiError",
            format!(
                "a `rhai` criterion must return a bool, not {}",
                crate::expr::python::type_name(&other)
            ),
        )),
        Err(e) => Err(("RhaiError", e.message)),
    }
}
