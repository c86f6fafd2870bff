//! Orquesta workflow definitions: YAML → [`WorkflowSpec`], with every problem reported as a
//! [`Diagnostic`] carrying the file, line and column.
//!
//! Reading follows Orquesta's native v1.0 schema: top-level `version`, `description`, `name`,
//! `tags`, `input`, `vars`, `tasks` (required), `output`; tasks with `action`, `input`, `next`,
//! `join`, `with`, `retry`, `delay` (and `timeout`, our addition). Inline action parameters (`core.echo message="hi"`) and
//! string-form `publish` are parsed with Orquesta's inline-parameter rules
//! ([`parse_inline_params`]). [`WorkflowSpec::inspect`] then checks what the schema cannot:
//! `do` targets that name no task, reserved task names, a workflow without a start task,
//! tasks no start task leads to, joins that cannot be satisfied, with-items without an action,
//! and expressions that do not parse.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};
use st2_core::diagnostic::{Diagnostic, Position};
use st2_core::yaml::{self, MapEntry, Node, NodeKind, YamlLimits};

use crate::expression::Evaluator;

/// Task names reserved for engine commands.
pub const ENGINE_COMMANDS: [&str; 4] = ["continue", "fail", "noop", "retry"];

/// `join:` of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// `join: all`: every inbound task.
    All,
    /// `join: N`: at least N inbound tasks.
    Count(u64),
}

/// `with:` of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct WithItems {
    /// The expression that yields the item list (the part after `in` for the named form).
    pub items: String,
    /// The item names of `x, y in EXPR`, if given.
    pub keys: Option<Vec<String>>,
    /// `concurrency`: an integer or an expression; `None` runs every item at once.
    pub concurrency: Option<Value>,
}

/// `retry:` of a task, or the retry `do: retry` sets up.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySpec {
    /// Condition; `None` retries abended attempts only.
    pub when: Option<String>,
    /// How many retries: an integer or an expression.
    pub count: Value,
    /// Seconds before each retry: an integer or an expression.
    pub delay: Option<Value>,
}

/// One `next:` item.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionSpec {
    /// `when:` condition; `None` fires on any completion.
    pub when: Option<String>,
    /// `publish:` in order.
    pub publish: Vec<(String, Value)>,
    /// `do:` targets (task names or engine commands).
    pub targets: Vec<String>,
    /// Where the item is written.
    pub pos: Position,
}

/// One task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// The task name.
    pub name: String,
    /// Where the name is written.
    pub pos: Position,
    /// The action reference (inline parameters removed), if any.
    pub action: Option<String>,
    /// The action input (a map, or an expression string that yields one).
    pub input: Option<Value>,
    /// Transitions in document order.
    pub next: Vec<TransitionSpec>,
    /// Barrier.
    pub join: Option<Join>,
    /// With-items.
    pub with: Option<WithItems>,
    /// Retry spec written under `retry:`.
    pub retry: Option<RetrySpec>,
    /// Task delay: an integer or an expression.
    pub delay: Option<Value>,
    /// Task timeout in seconds (an addition to Orquesta, st2 #6177): an integer or an
    /// expression. A task action still running after it is canceled and the task ends
    /// `timeout`.
    pub timeout: Option<Value>,
}

/// A parsed workflow definition.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowSpec {
    /// The file it was read from (for diagnostics).
    pub file: PathBuf,
    /// `description:`.
    pub description: Option<String>,
    /// `input:` names with their defaults (`null` for a bare name).
    pub input: Vec<(String, Value)>,
    /// `vars:` in order.
    pub vars: Vec<(String, Value)>,
    /// `output:` in order.
    pub output: Vec<(String, Value)>,
    /// Tasks in document order.
    pub tasks: Vec<TaskSpec>,
    index: HashMap<String, usize>,
}

/// Why a workflow could not be used: every problem found, each with file and line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct SpecError(pub Vec<Diagnostic>);

struct Reader {
    file: PathBuf,
    problems: Vec<Diagnostic>,
}

impl Reader {
    fn error(&mut self, pos: Position, message: impl Into<String>) {
        self.problems
            .push(Diagnostic::error(self.file.clone(), pos, message));
    }

    fn entries<'n>(&mut self, node: &'n Node, what: &str) -> &'n [MapEntry] {
        match &node.kind {
            NodeKind::Map(entries) => {
                let mut seen = BTreeSet::new();
                for e in entries {
                    if !seen.insert(e.key.as_str()) {
                        self.error(
                            e.key_pos,
                            format!(
                                "Failed to load workflow definition because found duplicate key \"{}\".",
                                e.key
                            ),
                        );
                    }
                }
                entries
            }
            _ => {
                self.error(node.pos, format!("{what} must be a mapping"));
                &[]
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Str(s) if !s.is_empty() => Some(s.clone()),
            _ => {
                self.error(node.pos, format!("{what} must be a non-empty string"));
                None
            }
        }
    }

    /// A list of one-key maps (`vars`, `output`, `publish`); `allow_bare` accepts name strings
    /// (`input`).
    fn pairs(&mut self, node: &Node, what: &str, allow_bare: bool) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        let NodeKind::Seq(items) = &node.kind else {
            if node.kind != NodeKind::Null {
                self.error(node.pos, format!("{what} must be a list"));
            }
            return out;
        };
        for item in items {
            match &item.kind {
                NodeKind::Str(s) if allow_bare => out.push((s.clone(), Value::Null)),
                NodeKind::Map(entries) if entries.len() == 1 => {
                    out.push((entries[0].key.clone(), entries[0].value.to_json()));
                }
                _ => self.error(
                    item.pos,
                    format!(
                        "each item of {what} must be a one-key mapping `name: value`{}",
                        if allow_bare { " or a name" } else { "" }
                    ),
                ),
            }
        }
        out
    }

    fn int_or_expr(&mut self, node: &Node, what: &str) -> Option<Value> {
        match &node.kind {
            NodeKind::Int(i) if *i >= 0 => Some(Value::from(*i)),
            NodeKind::Str(s) if !s.is_empty() => Some(Value::String(s.clone())),
            _ => {
                self.error(
                    node.pos,
                    format!("{what} must be an integer >= 0 or an expression"),
                );
                None
            }
        }
    }

    fn task(&mut self, name: &str, pos: Position, node: &Node) -> TaskSpec {
        let mut task = TaskSpec {
            name: name.to_owned(),
            pos,
            action: None,
            input: None,
            next: Vec::new(),
            join: None,
            with: None,
            retry: None,
            delay: None,
            timeout: None,
        };
        if node.kind == NodeKind::Null {
            return task;
        }
        let what = format!("task \"{name}\"");
        for e in self.entries(node, &what) {
            let v = &e.value;
            match e.key.as_str() {
                "action" => task.action = self.string(v, &format!("{what}: action")),
                "input" => match &v.kind {
                    NodeKind::Map(entries) if !entries.is_empty() => task.input = Some(v.to_json()),
                    NodeKind::Str(s) if !s.is_empty() => task.input = Some(v.to_json()),
                    _ => self.error(
                        v.pos,
                        format!("{what}: input must be a non-empty mapping or an expression"),
                    ),
                },
                "next" => match &v.kind {
                    NodeKind::Seq(items) => {
                        for item in items {
                            if let Some(t) = self.transition(&what, item) {
                                task.next.push(t);
                            }
                        }
                    }
                    NodeKind::Null => {}
                    _ => self.error(v.pos, format!("{what}: next must be a list")),
                },
                "join" => match &v.kind {
                    NodeKind::Str(s) if s == "all" => task.join = Some(Join::All),
                    NodeKind::Int(i) if *i >= 0 => task.join = Some(Join::Count(*i as u64)),
                    _ => self.error(
                        v.pos,
                        format!("{what}: join must be \"all\" or an integer >= 0"),
                    ),
                },
                "with" => task.with = self.with_items(&what, v),
                "retry" => task.retry = self.retry(&what, v),
                "delay" => task.delay = self.int_or_expr(v, &format!("{what}: delay")),
                "timeout" => task.timeout = self.int_or_expr(v, &format!("{what}: timeout")),
                other => self.error(
                    e.key_pos,
                    format!("{what}: additional property \"{other}\" is not allowed"),
                ),
            }
        }
        // Inline parameters after the action reference replace any input block.
        if let Some(action) = &task.action
            && let Some(space) = action.find(' ')
        {
            let params = parse_inline_params(action);
            if !params.is_empty() {
                let input: Map<String, Value> = params.into_iter().collect();
                task.action = Some(action[..space].to_owned());
                task.input = Some(Value::Object(input));
            }
        }
        task
    }

    fn transition(&mut self, what: &str, node: &Node) -> Option<TransitionSpec> {
        let mut t = TransitionSpec {
            when: None,
            publish: Vec::new(),
            targets: Vec::new(),
            pos: node.pos,
        };
        for e in self.entries(node, &format!("{what}: a next item")) {
            let v = &e.value;
            match e.key.as_str() {
                "when" => t.when = self.string(v, &format!("{what}: when")),
                "publish" => match &v.kind {
                    NodeKind::Str(s) => {
                        t.publish = parse_inline_params(s);
                    }
                    _ => t.publish = self.pairs(v, &format!("{what}: publish"), false),
                },
                "do" => match &v.kind {
                    NodeKind::Str(s) => {
                        t.targets = s.split(',').map(|x| x.trim().to_owned()).collect();
                    }
                    NodeKind::Seq(items) => {
                        for item in items {
                            if let Some(s) = self.string(item, &format!("{what}: do item")) {
                                t.targets.push(s);
                            }
                        }
                    }
                    NodeKind::Null => {}
                    _ => self.error(
                        v.pos,
                        format!("{what}: do must be a task name or a list of names"),
                    ),
                },
                other => self.error(
                    e.key_pos,
                    format!("{what}: additional property \"{other}\" is not allowed in next"),
                ),
            }
        }
        t.targets.retain(|x| !x.is_empty());
        if t.targets.is_empty() {
            t.targets.push("continue".to_owned());
        }
        Some(t)
    }

    fn with_items(&mut self, what: &str, node: &Node) -> Option<WithItems> {
        let (items, concurrency) = match &node.kind {
            NodeKind::Str(s) => (Some(s.clone()), None),
            NodeKind::Map(_) => {
                let mut items = None;
                let mut concurrency = None;
                for e in self.entries(node, &format!("{what}: with")) {
                    match e.key.as_str() {
                        "items" => items = self.string(&e.value, &format!("{what}: with.items")),
                        "concurrency" => {
                            concurrency = match &e.value.kind {
                                NodeKind::Null => None,
                                _ => {
                                    self.int_or_expr(&e.value, &format!("{what}: with.concurrency"))
                                }
                            }
                        }
                        other => self.error(
                            e.key_pos,
                            format!(
                                "{what}: additional property \"{other}\" is not allowed in with"
                            ),
                        ),
                    }
                }
                if items.is_none() {
                    self.error(node.pos, format!("{what}: with needs items"));
                }
                (items, concurrency)
            }
            _ => {
                self.error(
                    node.pos,
                    format!("{what}: with must be an expression or a mapping"),
                );
                (None, None)
            }
        };
        let items = items?;
        let parsed = parse_items(&items);
        match parsed {
            Some((keys, expr)) => Some(WithItems {
                items: expr,
                keys,
                concurrency,
            }),
            None => {
                self.error(
                    node.pos,
                    format!(
                        "{what}: with items \"{items}\" must be an expression or `x, y in EXPRESSION`"
                    ),
                );
                None
            }
        }
    }

    fn retry(&mut self, what: &str, node: &Node) -> Option<RetrySpec> {
        let mut when = None;
        let mut count = None;
        let mut delay = None;
        for e in self.entries(node, &format!("{what}: retry")) {
            match e.key.as_str() {
                "when" => when = self.string(&e.value, &format!("{what}: retry.when")),
                "count" => count = self.int_or_expr(&e.value, &format!("{what}: retry.count")),
                "delay" => delay = self.int_or_expr(&e.value, &format!("{what}: retry.delay")),
                other => self.error(
                    e.key_pos,
                    format!("{what}: additional property \"{other}\" is not allowed in retry"),
                ),
            }
        }
        match count {
            Some(count) => Some(RetrySpec { when, count, delay }),
            None => {
                self.error(node.pos, format!("{what}: retry needs count"));
                None
            }
        }
    }
}

/// Split `with.items` into the item names and the expression: `EXPR` or `x, y in EXPR`.
fn parse_items(items: &str) -> Option<(Option<Vec<String>>, String)> {
    static NAMED: LazyLock<Regex> = LazyLock::new(|| {
        // The pattern is a literal, so it compiles.
        Regex::new(r"^\s*((?:\w+,\s?|\s+)*\w+)\s+in\s+(.+?)\s*$").expect("valid regex")
    });
    let is_expr = |s: &str| {
        let s = s.trim();
        (s.starts_with("<%") && s.ends_with("%>")) || (s.starts_with("{{") && s.ends_with("}}"))
    };
    if let Some(i) = items.find(" in ") {
        if let Some(c) = NAMED.captures(items)
            && is_expr(&c[2])
        {
            let keys = items[..i].replace(' ', "");
            let keys = keys.split(',').map(str::to_owned).collect();
            return Some((Some(keys), items[i + 4..].trim().to_owned()));
        }
        if is_expr(items) {
            return Some((None, items.trim().to_owned()));
        }
        return None;
    }
    is_expr(items).then(|| (None, items.trim().to_owned()))
}

/// Orquesta's inline parameters (`a=1 b="x" c=[1, 2] d=<% ctx(x) %>`), in order. Values that
/// match none of the forms (bare words, JSON objects) are dropped, as in Orquesta.
pub fn parse_inline_params(text: &str) -> Vec<(String, Value)> {
    static PARAMS: LazyLock<Regex> = LazyLock::new(|| {
        let forms = [
            r"\[.*\]\s*",
            r#""[^"]*"\s*"#,
            r"'[^']*'\s*",
            r"[-]?\d*\.\d+",
            r"[-]?\d+",
            r"(?i:true)",
            r"(?i:false)",
            r"null",
            r"\{\{.*?\}\}",
            r"\{%.*?%\}",
            r"<%.*?%>",
        ];
        // Built from literals, so it compiles.
        Regex::new(&format!(r"(\w+)=({})", forms.join("|"))).expect("valid regex")
    });
    static QUOTED: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#""[^"]*"|'[^']*'"#).expect("valid regex"));
    let mut out = Vec::new();
    for c in PARAMS.captures_iter(text) {
        let key = c[1].to_owned();
        let raw = c[2].trim();
        let quoted = QUOTED.is_match(raw);
        let mut v = raw;
        v = v.strip_prefix('"').unwrap_or(v);
        v = v.strip_suffix('"').unwrap_or(v);
        v = v.strip_prefix('\'').unwrap_or(v);
        v = v.strip_suffix('\'').unwrap_or(v);
        let braces = !v.is_empty() && v.starts_with('{') && v.ends_with('}');
        let quotes_in_string = !v.is_empty() && quoted && !braces;
        let value = if quotes_in_string {
            Value::String(v.to_owned())
        } else {
            let lowered;
            let text = if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
                lowered = v.to_ascii_lowercase();
                lowered.as_str()
            } else {
                v
            };
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(v.to_owned()))
        };
        out.push((key, value));
    }
    out
}

/// The context names a value reads with `ctx(name)`, `ctx('name')`, `ctx("name")` or
/// `ctx().name` (a bare `ctx(name)` only in YAQL, where a bare word is a string).
fn collect_ctx_refs(v: &Value, out: &mut Vec<String>) {
    static QUOTED: LazyLock<Regex> = LazyLock::new(|| {
        // A literal pattern, so it compiles.
        Regex::new(r#"ctx\(\s*(?:'(\w+)'|"(\w+)")\s*\)|ctx\(\s*\)\.(\w+)"#).expect("valid regex")
    });
    static BARE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"ctx\(\s*([A-Za-z_]\w*)\s*\)").expect("valid regex"));
    match v {
        Value::String(s) => {
            if !s.contains("ctx(") {
                return;
            }
            for c in QUOTED.captures_iter(s) {
                if let Some(m) = c.get(1).or_else(|| c.get(2)).or_else(|| c.get(3)) {
                    out.push(m.as_str().to_owned());
                }
            }
            let jinja = s.contains("{{") || s.contains("{%");
            if !jinja {
                for c in BARE.captures_iter(s) {
                    out.push(c[1].to_owned());
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_ctx_refs(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                collect_ctx_refs(&Value::String(k.clone()), out);
                collect_ctx_refs(x, out);
            }
        }
        _ => {}
    }
}

impl WorkflowSpec {
    /// Read a workflow file.
    ///
    /// # Errors
    /// [`SpecError`] with every problem found (an unreadable file, bad YAML, schema errors).
    pub fn from_file(path: &Path) -> Result<WorkflowSpec, SpecError> {
        let bytes = std::fs::read(path).map_err(|e| {
            SpecError(vec![Diagnostic::error(
                path,
                Position::START,
                format!("cannot read workflow file: {e}"),
            )])
        })?;
        let text = String::from_utf8_lossy(&bytes);
        WorkflowSpec::parse(path, &text)
    }

    /// Parse workflow YAML; `file` names it in diagnostics.
    ///
    /// # Errors
    /// [`SpecError`] with every problem found.
    pub fn parse(file: &Path, text: &str) -> Result<WorkflowSpec, SpecError> {
        let doc = yaml::parse_str(text, &YamlLimits::default()).map_err(|e| {
            SpecError(vec![Diagnostic::error(
                file,
                e.position(),
                format!("invalid YAML: {e}"),
            )])
        })?;
        let mut r = Reader {
            file: file.to_owned(),
            problems: Vec::new(),
        };
        let mut spec = WorkflowSpec {
            file: file.to_owned(),
            description: None,
            input: Vec::new(),
            vars: Vec::new(),
            output: Vec::new(),
            tasks: Vec::new(),
            index: HashMap::new(),
        };
        let mut has_tasks = false;
        for e in r.entries(&doc.root, "the workflow definition") {
            let v = &e.value;
            match e.key.as_str() {
                "version" => {
                    let ok = match &v.kind {
                        NodeKind::Float(f) => (*f - 1.0).abs() < f64::EPSILON,
                        NodeKind::Int(i) => *i == 1,
                        NodeKind::Str(s) => s == "1.0",
                        _ => false,
                    };
                    if !ok {
                        r.error(v.pos, "version must be 1.0");
                    }
                }
                "description" => spec.description = r.string(v, "description"),
                "name" | "tags" => {}
                "input" => spec.input = r.pairs(v, "input", true),
                "vars" => spec.vars = r.pairs(v, "vars", false),
                "output" => spec.output = r.pairs(v, "output", false),
                "tasks" => {
                    has_tasks = true;
                    let entries = r.entries(v, "tasks");
                    if entries.is_empty() {
                        r.error(v.pos, "tasks must have at least one task");
                    }
                    for t in entries {
                        if !t.key.chars().all(|c| c.is_alphanumeric() || c == '_') {
                            r.error(
                                t.key_pos,
                                format!("task name \"{}\" must match ^\\w+$", t.key),
                            );
                        }
                        let task = r.task(&t.key, t.key_pos, &t.value);
                        spec.index.insert(task.name.clone(), spec.tasks.len());
                        spec.tasks.push(task);
                    }
                }
                other => r.error(
                    e.key_pos,
                    format!("additional property \"{other}\" is not allowed at the top level"),
                ),
            }
        }
        if !has_tasks && r.problems.is_empty() {
            r.error(
                doc.root.pos,
                "the workflow has no tasks (`tasks` is required)",
            );
        }
        if r.problems.is_empty() {
            Ok(spec)
        } else {
            // Report what inspection finds in the readable parts too, so one run shows all.
            if let Err(more) = spec.inspect(&Evaluator::new()) {
                r.problems.extend(more.0);
            }
            r.problems.sort_by_key(|d| (d.line, d.column));
            Err(SpecError(r.problems))
        }
    }

    /// The task named `name`.
    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.index.get(name).map(|&i| &self.tasks[i])
    }

    /// Check what the schema cannot: undefined `do` targets, reserved names, start tasks,
    /// reachability, joins, with-items without action, expression syntax.
    ///
    /// # Errors
    /// [`SpecError`] with every problem found.
    pub fn inspect(&self, evaluator: &Evaluator) -> Result<(), SpecError> {
        let mut problems = Vec::new();
        let mut err = |pos: Position, m: String| {
            problems.push(Diagnostic::error(self.file.clone(), pos, m));
        };
        let mut inbound: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for task in &self.tasks {
            if ENGINE_COMMANDS.contains(&task.name.as_str()) {
                err(
                    task.pos,
                    format!(
                        "The task name \"{}\" is reserved with special function.",
                        task.name
                    ),
                );
            }
            if task.with.is_some() && task.action.is_none() {
                err(
                    task.pos,
                    format!("The task \"{}\" has with items but no action.", task.name),
                );
            }
            for t in &task.next {
                for target in &t.targets {
                    if !ENGINE_COMMANDS.contains(&target.as_str()) && self.task(target).is_none() {
                        err(t.pos, format!("The task \"{target}\" is not defined."));
                    }
                    inbound
                        .entry(target.as_str())
                        .or_default()
                        .insert(task.name.as_str());
                }
            }
        }
        let starts: Vec<&str> = self
            .tasks
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| !inbound.contains_key(n))
            .collect();
        if starts.is_empty() && !self.tasks.is_empty() {
            err(
                self.tasks[0].pos,
                "Unable to identify any tasks to start the workflow. If the starting task is \
                 part of a cycle, add a task outside the cycle to start the workflow."
                    .to_owned(),
            );
        }
        // Reachability from the start tasks.
        let mut seen: BTreeSet<&str> = starts.iter().copied().collect();
        let mut todo: Vec<&str> = starts.clone();
        while let Some(name) = todo.pop() {
            if let Some(task) = self.task(name) {
                for t in &task.next {
                    for target in &t.targets {
                        if seen.insert(target.as_str()) {
                            todo.push(target.as_str());
                        }
                    }
                }
            }
        }
        if !starts.is_empty() {
            for task in &self.tasks {
                if !seen.contains(task.name.as_str()) {
                    err(
                        task.pos,
                        format!(
                            "The task \"{}\" is unreachable: no start task leads to it.",
                            task.name
                        ),
                    );
                }
            }
        }
        for task in &self.tasks {
            if let Some(join) = task.join {
                let n = inbound.get(task.name.as_str()).map_or(0, BTreeSet::len);
                if n == 0 {
                    err(
                        task.pos,
                        format!(
                            "The join task \"{}\" has no inbound task transitions.",
                            task.name
                        ),
                    );
                }
                if let Join::Count(c) = join
                    && c as usize > n
                {
                    err(
                        task.pos,
                        format!(
                            "The join task \"{}\" waits for {c} inbound tasks but only {n} lead to it.",
                            task.name
                        ),
                    );
                }
            }
        }
        self.check_context_references(&mut err);
        self.check_join_levels(&mut err);
        // Expression syntax.
        let mut check = |pos: Position, v: &Value| {
            for e in evaluator.check_syntax(v) {
                err(pos, e);
            }
        };
        for (_, v) in self.input.iter().chain(&self.vars).chain(&self.output) {
            check(Position::START, v);
        }
        for task in &self.tasks {
            if let Some(a) = &task.action {
                check(task.pos, &Value::String(a.clone()));
            }
            if let Some(i) = &task.input {
                check(task.pos, i);
            }
            if let Some(d) = &task.delay {
                check(task.pos, d);
            }
            if let Some(t) = &task.timeout {
                check(task.pos, t);
            }
            if let Some(w) = &task.with {
                check(task.pos, &Value::String(w.items.clone()));
            }
            for t in &task.next {
                if let Some(w) = &t.when {
                    check(t.pos, &Value::String(w.clone()));
                }
                for (_, v) in &t.publish {
                    check(t.pos, v);
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SpecError(problems))
        }
    }

    /// A join is unreachable when its inbound tasks come from different levels of nested
    /// forks (split tasks referenced by several transitions): the set of splits on the way
    /// to each inbound task must equal the join's own.
    fn check_join_levels(&self, err: &mut impl FnMut(Position, String)) {
        let next_of = |name: &str| -> Vec<&str> {
            self.task(name)
                .map(|t| {
                    t.next
                        .iter()
                        .flat_map(|n| n.targets.iter().map(String::as_str))
                        .filter(|x| self.task(x).is_some())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut inbound_count: HashMap<&str, usize> = HashMap::new();
        for t in &self.tasks {
            for n in &t.next {
                for target in &n.targets {
                    *inbound_count.entry(target.as_str()).or_default() += 1;
                }
            }
        }
        let in_cycle = |name: &str| -> bool {
            let mut seen = BTreeSet::new();
            let mut todo = next_of(name);
            while let Some(n) = todo.pop() {
                if n == name {
                    return true;
                }
                if seen.insert(n) {
                    todo.extend(next_of(n));
                }
            }
            false
        };
        let opens_route = |t: &TaskSpec| {
            t.join.is_none()
                && inbound_count.get(t.name.as_str()).copied().unwrap_or(0) > 1
                && !in_cycle(&t.name)
        };
        let mut splits: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        let mut prev: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        let mut todo: Vec<&str> = self
            .tasks
            .iter()
            .filter(|t| !inbound_count.contains_key(t.name.as_str()))
            .map(|t| t.name.as_str())
            .collect();
        let mut visited: BTreeSet<&str> = todo.iter().copied().collect();
        for &start in &todo {
            splits.insert(start, BTreeSet::new());
        }
        while let Some(name) = todo.pop() {
            let Some(task) = self.task(name) else {
                continue;
            };
            let mut mine = splits.get(name).cloned().unwrap_or_default();
            if opens_route(task) {
                mine.insert(name);
                splits.insert(name, mine.clone());
            }
            for next in next_of(name) {
                prev.entry(next).or_default().insert(name);
                let set = splits.entry(next).or_default();
                let before = set.len();
                set.extend(mine.iter().copied());
                // Visit each task once, and again whenever new splits reach it.
                if visited.insert(next) || set.len() != before {
                    todo.push(next);
                }
            }
        }
        for task in self.tasks.iter().filter(|t| t.join.is_some()) {
            let own = splits.get(task.name.as_str()).cloned().unwrap_or_default();
            let uneven = prev.get(task.name.as_str()).is_some_and(|ps| {
                ps.iter()
                    .any(|p| splits.get(p).cloned().unwrap_or_default() != own)
            });
            if uneven {
                err(
                    task.pos,
                    format!(
                        "The join task \"{}\" is unreachable: its inbound tasks come from \
                         different levels of nested forks, so the join level is ambiguous.",
                        task.name
                    ),
                );
            }
        }
    }

    /// Context references (`ctx(x)`, `ctx('x')`, `ctx().x`) to names that no path assigns
    /// before use (inputs, vars, publishes on the way, and StackStorm's `st2`/`parent`
    /// keys), and references to private `__` names.
    fn check_context_references(&self, err: &mut impl FnMut(Position, String)) {
        let mut base: BTreeSet<String> =
            ["st2", "parent"].iter().map(|s| (*s).to_owned()).collect();
        let report = |pos: Position,
                      v: &Value,
                      known: &BTreeSet<String>,
                      err: &mut dyn FnMut(Position, String)| {
            let mut names = Vec::new();
            collect_ctx_refs(v, &mut names);
            for name in names {
                if name.starts_with("__") {
                    err(
                        pos,
                        format!("The variable \"{name}\" is private and cannot be referenced."),
                    );
                } else if !known.contains(&name) {
                    err(
                        pos,
                        format!("The variable \"{name}\" is referenced before assignment."),
                    );
                }
            }
        };
        for (name, v) in &self.input {
            report(Position::START, v, &base, err);
            base.insert(name.clone());
        }
        for (name, v) in &self.vars {
            report(Position::START, v, &base, err);
            base.insert(name.clone());
        }
        // Names available when each task starts: the union over every path leading to it.
        let mut available: HashMap<&str, BTreeSet<String>> = HashMap::new();
        for t in &self.tasks {
            available.insert(t.name.as_str(), BTreeSet::new());
        }
        let starts: Vec<&str> = self
            .tasks
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| {
                !self
                    .tasks
                    .iter()
                    .any(|t| t.next.iter().any(|x| x.targets.iter().any(|y| y == n)))
            })
            .collect();
        for s in &starts {
            available.insert(s, base.clone());
        }
        loop {
            let mut changed = false;
            for t in &self.tasks {
                let here = available.get(t.name.as_str()).cloned().unwrap_or_default();
                for tr in &t.next {
                    let mut out = here.clone();
                    out.extend(tr.publish.iter().map(|(n, _)| n.clone()));
                    for target in &tr.targets {
                        if let Some(set) = available.get_mut(target.as_str()) {
                            let before = set.len();
                            set.extend(out.iter().cloned());
                            changed |= set.len() != before;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
        for t in &self.tasks {
            let known = available.get(t.name.as_str()).cloned().unwrap_or_default();
            let mut values: Vec<Value> = Vec::new();
            values.extend(t.action.clone().map(Value::String));
            values.extend(t.input.clone());
            values.extend(t.delay.clone());
            values.extend(t.timeout.clone());
            if let Some(w) = &t.with {
                values.push(Value::String(w.items.clone()));
                values.extend(w.concurrency.clone());
            }
            if let Some(r) = &t.retry {
                values.extend(r.when.clone().map(Value::String));
                values.push(r.count.clone());
                values.extend(r.delay.clone());
            }
            for v in &values {
                report(t.pos, v, &known, err);
            }
            for tr in &t.next {
                let mut rolling = known.clone();
                if let Some(w) = &tr.when {
                    report(tr.pos, &Value::String(w.clone()), &rolling, err);
                }
                for (name, v) in &tr.publish {
                    report(tr.pos, v, &rolling, err);
                    rolling.insert(name.clone());
                }
            }
        }
    }

    /// True when any value of the workflow mentions `needle` (used to decide whether
    /// expressions need the conductor state, e.g. for `task_status()`).
    pub fn mentions(&self, needle: &str) -> bool {
        let pairs = |p: &[(String, Value)]| p.iter().any(|(_, v)| mentions_in(v, needle));
        pairs(&self.input)
            || pairs(&self.vars)
            || pairs(&self.output)
            || self.tasks.iter().any(|t| t.mentions(needle))
    }
}

pub(crate) fn mentions_in(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s.contains(needle),
        Value::Array(a) => a.iter().any(|x| mentions_in(x, needle)),
        Value::Object(m) => m
            .iter()
            .any(|(k, x)| k.contains(needle) || mentions_in(x, needle)),
        _ => false,
    }
}

impl TaskSpec {
    /// True when any value of the task (action, input, delay, items, retry, transitions)
    /// mentions `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        let pairs = |p: &[(String, Value)]| p.iter().any(|(_, v)| mentions_in(v, needle));
        self.action.as_deref().is_some_and(|a| a.contains(needle))
            || self.input.as_ref().is_some_and(|v| mentions_in(v, needle))
            || self.delay.as_ref().is_some_and(|v| mentions_in(v, needle))
            || self
                .timeout
                .as_ref()
                .is_some_and(|v| mentions_in(v, needle))
            || self.with.as_ref().is_some_and(|w| {
                w.items.contains(needle)
                    || w.concurrency
                        .as_ref()
                        .is_some_and(|c| mentions_in(c, needle))
            })
            || self.retry.as_ref().is_some_and(|r| {
                r.when.as_deref().is_some_and(|w| w.contains(needle))
                    || mentions_in(&r.count, needle)
                    || r.delay.as_ref().is_some_and(|d| mentions_in(d, needle))
            })
            || self
                .next
                .iter()
                .any(|n| n.when.as_deref().is_some_and(|w| w.contains(needle)) || pairs(&n.publish))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_params_follow_orquesta() {
        let p = parse_inline_params(
            r#"core.echo a=1 b="x y" c=[1, 2] d=TRUE e=abc f=null g=<% ctx(x) %>"#,
        );
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "d", "f", "g"]);
        assert_eq!(p[0].1, Value::from(1));
        assert_eq!(p[1].1, Value::from("x y"));
        assert_eq!(p[2].1, serde_json::json!([1, 2]));
        assert_eq!(p[3].1, Value::Bool(true));
        assert_eq!(p[4].1, Value::Null);
        assert_eq!(p[5].1, Value::from("<% ctx(x) %>"));
    }

    #[test]
    fn items_forms() {
        assert_eq!(
            parse_items("<% ctx(xs) %>"),
            Some((None, "<% ctx(xs) %>".to_owned()))
        );
        assert_eq!(
            parse_items("x, y in <% zip(ctx(a), ctx(b)) %>"),
            Some((
                Some(vec!["x".to_owned(), "y".to_owned()]),
                "<% zip(ctx(a), ctx(b)) %>".to_owned()
            ))
        );
        assert_eq!(parse_items("item(member), item(message)"), None);
    }

    #[test]
    fn problems_carry_lines() {
        let text =
            "version: 1.0\ntasks:\n  t1:\n    action: core.noop\n    next:\n      - do: nope\n";
        let spec = WorkflowSpec::parse(Path::new("wf.yaml"), text).expect("parses");
        let err = spec
            .inspect(&Evaluator::new())
            .expect_err("undefined target");
        assert_eq!(err.0[0].line, 6);
        assert!(err.0[0].message.contains("\"nope\" is not defined"));
    }
}
