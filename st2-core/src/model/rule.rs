//! Rules: "when this trigger fires and these criteria hold, run that action with these
//! parameters".

use serde::Serialize;
use serde_json::{Map, Value};

use crate::diagnostic::{FieldPath, Issues, Severity};
use crate::model::action::Action;
use crate::model::fields::{Fields, describe, read_tags};
use crate::model::operator::Operator;
use crate::model::pack::PackIdentity;
use crate::model::trigger_type::TriggerType;
use crate::model::{Origin, Tag, check_pack_field};
use crate::reference;
use crate::schema::Schema;

/// How a rule takes part in matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// Matched for every trigger instance of its trigger.
    #[default]
    Standard,
    /// Matched only when no standard rule matched the trigger instance.
    Backstop,
}

/// The trigger a rule listens to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleTrigger {
    /// The trigger type ref (`core.st2.webhook`, `mypack.event`).
    #[serde(rename = "type")]
    pub trigger_type: String,
    /// Parameters selecting the trigger (a webhook URL, a timer interval).
    pub parameters: Map<String, Value>,
}

/// One criterion: `<key>: {type: <operator>, pattern: <value>}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Criterion {
    /// The key as written, e.g. `trigger.body.status` or `trigger.x#2`.
    pub key: String,
    /// The key without its `#tag` suffix: the path into the payload.
    pub field: String,
    /// The operator.
    pub operator: Operator,
    /// The pattern (may be a Jinja template).
    pub pattern: Value,
    /// For `search`: `any`, `all`, `any2any` or `all2any`.
    pub condition: Option<String>,
    /// For `search`: the criteria applied to each item (keys start with `item.`).
    pub children: Vec<Criterion>,
}

/// The action a rule runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleAction {
    /// Action ref.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Parameters (values may be Jinja templates over `trigger`, `st2kv`, …).
    pub parameters: Map<String, Value>,
}

/// A rule as written.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    /// Name, unique in the pack.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// StackStorm rules are disabled unless `enabled: true` is written.
    pub enabled: bool,
    /// Standard or backstop.
    pub kind: RuleKind,
    /// The trigger.
    pub trigger: RuleTrigger,
    /// Criteria, all of which must hold, as parsed for checking.
    pub criteria: Vec<Criterion>,
    /// The `criteria` mapping as written (what the rules engine compiles and the API shows).
    pub criteria_source: Map<String, Value>,
    /// The action.
    pub action: RuleAction,
    /// Free-form context.
    pub context: Map<String, Value>,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// A registered rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
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
    /// Disabled rules never match.
    pub enabled: bool,
    /// Standard or backstop.
    pub kind: RuleKind,
    /// The trigger.
    pub trigger: RuleTrigger,
    /// The `criteria` mapping as written; `crate::rules::criteria::Criteria::compile` turns
    /// it into something to evaluate.
    pub criteria: Map<String, Value>,
    /// The action.
    pub action: RuleAction,
    /// Free-form context.
    pub context: Map<String, Value>,
    /// Tags.
    pub tags: Vec<Tag>,
}

impl Rule {
    /// The pack it belongs to.
    pub fn pack(&self) -> &str {
        &self.origin.pack
    }
}

/// The trigger types whose parameters StackStorm always validates.
const SYSTEM_TRIGGER_TYPES: &[&str] = &[
    "core.st2.webhook",
    "core.st2.IntervalTimer",
    "core.st2.DateTimer",
    "core.st2.CronTimer",
];

/// The `condition` values of the `search` operator.
pub const SEARCH_CONDITIONS: &[&str] = &["any", "all", "any2any", "all2any"];

/// Compile a rule given as a JSON object (the body of the API's `POST /rules` or `PUT
/// /rules/<id>`) against what `catalog` holds, with the checks a rule file gets. `pack`
/// defaults to `default`; `id`, `ref`, `uid` and `metadata_file` are accepted and ignored.
///
/// # Errors
/// Every error found, as `<field>: <message>` lines (warnings, e.g. an action that is not
/// loaded, are not errors).
pub fn rule_from_json(
    value: &Value,
    catalog: &crate::catalog::Catalog,
) -> Result<Rule, Vec<String>> {
    let (spec, origin, mut issues) =
        crate::model::read_api_body(value, "the rule must be a JSON object", RuleSpec::read)?;
    let trigger_type = catalog.trigger_type(&spec.trigger.trigger_type).cloned();
    let schema = trigger_type
        .as_ref()
        .map(|t| Schema::for_object(Value::Object(t.parameters_schema.clone())));
    let action = catalog.action(&spec.action.reference).cloned();
    let rule = spec.compile(
        origin,
        trigger_type.as_deref().zip(schema.as_ref()),
        action.as_deref(),
        &mut issues,
    );
    crate::model::compiled(rule, issues)
}

impl RuleSpec {
    /// Read a rule file, checking every field as StackStorm's rule schema does.
    pub(crate) fn read(value: &Value, pack: &PackIdentity, issues: &mut Issues) -> Option<Self> {
        let mut f = Fields::of(value, FieldPath::root(), "a rule", issues)?;
        check_pack_field(&mut f, pack, issues);
        let name = f.req_str("name", issues);
        let description = f.str("description", issues).map(str::to_owned);
        let enabled = f.bool("enabled", issues).unwrap_or(false);
        let kind = read_kind(&mut f, issues);
        let trigger = read_trigger(&mut f, issues);
        let criteria_source = f.object("criteria", issues).cloned().unwrap_or_default();
        let criteria = parse_criteria(
            &criteria_source,
            &f.child("criteria"),
            Severity::Error,
            issues,
        );
        let action = read_action(&mut f, issues);
        let context = f.object("context", issues).cloned().unwrap_or_default();
        let tags = read_tags(&mut f, issues);
        f.accept(&["metadata_file", "id", "ref", "uid"]);
        f.finish("a rule", Severity::Error, issues);
        Some(RuleSpec {
            name: name?.to_owned(),
            description,
            enabled,
            kind,
            trigger: trigger?,
            criteria,
            criteria_source,
            action: action?,
            context,
            tags,
        })
    }

    /// Resolve the trigger type and the action. A trigger type that takes no parameters must
    /// exist (StackStorm needs its implicit trigger); parameters are validated against the type's
    /// schema. An action that is not loaded is only a warning: StackStorm registers such rules.
    pub(crate) fn compile(
        self,
        origin: Origin,
        trigger_type: Option<(&TriggerType, &Schema)>,
        action: Option<&Action>,
        issues: &mut Issues,
    ) -> Option<Rule> {
        let before = issues.error_count();
        let trigger_path = FieldPath::root().key("trigger");
        let type_ref = &self.trigger.trigger_type;
        let params = &self.trigger.parameters;
        match trigger_type {
            Some((tt, schema)) => {
                let is_system = SYSTEM_TRIGGER_TYPES.contains(&type_ref.as_str());
                if is_system || tt.takes_parameters() {
                    check_trigger_parameters(tt, schema, params, &trigger_path, issues);
                }
                if issues.error_count() == before && params.is_empty() && tt.takes_parameters() {
                    issues.error(
                        &trigger_path,
                        format!("trigger type `{type_ref}` needs `parameters`"),
                    );
                }
            }
            None if params.is_empty() => issues.error(
                &trigger_path.key("type"),
                format!("trigger type `{type_ref}` does not exist"),
            ),
            None => issues.warning(
                &trigger_path.key("type"),
                format!(
                    "trigger type `{type_ref}` is not defined by any loaded pack; the rule fires only once a pack registers it"
                ),
            ),
        }
        check_criteria(&self.criteria_source, issues);
        let action_path = FieldPath::root().key("action");
        match action {
            Some(a) => check_action_parameters(a, &self.action.parameters, &action_path, issues),
            None => issues.warning(
                &action_path.key("ref"),
                format!(
                    "action `{}` is not loaded; every enforcement of this rule will fail until it is",
                    self.action.reference
                ),
            ),
        }
        if issues.error_count() > before {
            return None;
        }
        Some(Rule {
            reference: reference::join(&origin.pack, &self.name),
            name: self.name,
            origin,
            description: self.description,
            enabled: self.enabled,
            kind: self.kind,
            trigger: self.trigger,
            criteria: self.criteria_source,
            action: self.action,
            context: self.context,
            tags: self.tags,
        })
    }
}

fn read_kind(f: &mut Fields<'_>, issues: &mut Issues) -> RuleKind {
    let Some(map) = f.object("type", issues) else {
        return RuleKind::Standard;
    };
    let mut tf = Fields::new(map, f.child("type"));
    let kind = match tf.req_str("ref", issues) {
        Some("backstop") => RuleKind::Backstop,
        Some("standard") | None => RuleKind::Standard,
        Some(other) => {
            issues.warning(
                &tf.child("ref"),
                format!("rule type `{other}` is unknown; the rule is treated as `standard`"),
            );
            RuleKind::Standard
        }
    };
    let _ = tf.object("parameters", issues);
    tf.finish("the rule `type`", Severity::Error, issues);
    kind
}

fn read_trigger(f: &mut Fields<'_>, issues: &mut Issues) -> Option<RuleTrigger> {
    let map = f.req_object("trigger", issues)?;
    let mut tf = Fields::new(map, f.child("trigger"));
    let trigger_type = tf.req_str("type", issues);
    let parameters = tf.object("parameters", issues).cloned().unwrap_or_default();
    let _ = tf.str("description", issues);
    let _ = tf.str("ref", issues);
    // StackStorm's rule schema allows any other key under `trigger`.
    Some(RuleTrigger {
        trigger_type: trigger_type?.to_owned(),
        parameters,
    })
}

fn read_action(f: &mut Fields<'_>, issues: &mut Issues) -> Option<RuleAction> {
    let map = f.req_object("action", issues)?;
    let mut af = Fields::new(map, f.child("action"));
    let reference = af.req_str("ref", issues);
    let parameters = af.object("parameters", issues).cloned().unwrap_or_default();
    let _ = af.str("description", issues);
    af.finish("the rule `action`", Severity::Error, issues);
    Some(RuleAction {
        reference: reference?.to_owned(),
        parameters,
    })
}

/// Parse a criteria mapping. Top-level problems are errors (StackStorm rejects the rule);
/// problems inside a `search` pattern are reported with `nested` severity (StackStorm only finds
/// them when the rule is evaluated).
pub(crate) fn parse_criteria(
    map: &Map<String, Value>,
    path: &FieldPath,
    severity: Severity,
    issues: &mut Issues,
) -> Vec<Criterion> {
    let mut out = Vec::with_capacity(map.len());
    for (key, spec) in map {
        let p = path.key(key);
        if key == crate::rules::criteria::OR_KEY
            && let Value::Array(groups) = spec
        {
            // The `or` extension: each group is a criteria mapping of its own.
            for (i, group) in groups.iter().enumerate() {
                let gp = p.index(i);
                match group {
                    Value::Object(g) => {
                        parse_criteria(g, &gp, severity, issues);
                    }
                    other => issues.push(
                        &gp,
                        crate::diagnostic::Anchor::Value,
                        severity,
                        format!(
                            "each `or` group must be a criteria mapping, not {}",
                            describe(other)
                        ),
                    ),
                }
            }
            continue;
        }
        let Some(spec) = spec.as_object() else {
            issues.push(
                &p,
                crate::diagnostic::Anchor::Value,
                severity,
                format!(
                    "criterion `{key}` must be a mapping with `type` and `pattern`, not {}",
                    describe(spec)
                ),
            );
            continue;
        };
        let mut cf = Fields::new(spec, p.clone());
        let operator = match cf.value("type") {
            None => {
                issues.push(
                    &p,
                    crate::diagnostic::Anchor::Value,
                    severity,
                    format!("criterion `{key}` has no operator (`type`)"),
                );
                None
            }
            Some(Value::String(name)) => match Operator::from_name(name) {
                Some(op) => Some(op),
                None => {
                    issues.push(
                        &p.key("type"),
                        crate::diagnostic::Anchor::Value,
                        severity,
                        format!(
                            "criterion `{key}`: operator `{name}` is not one of: {}",
                            Operator::all_names()
                        ),
                    );
                    None
                }
            },
            Some(other) => {
                issues.push(
                    &p.key("type"),
                    crate::diagnostic::Anchor::Value,
                    severity,
                    format!(
                        "criterion `{key}`: operator must be a string, not {}",
                        describe(other)
                    ),
                );
                None
            }
        };
        let pattern = cf.value("pattern").cloned();
        if pattern.is_none()
            && let Some(op) = operator
        {
            issues.push(
                &p,
                crate::diagnostic::Anchor::Value,
                severity,
                format!("criterion `{key}`: no `pattern` given for operator `{op}` (StackStorm requires one even for exists/nexists)"),
            );
        }
        let condition = cf.str("condition", issues).map(str::to_owned);
        cf.finish("a criterion", Severity::Warning, issues);
        let (Some(operator), Some(pattern)) = (operator, pattern) else {
            continue;
        };
        let mut children = Vec::new();
        if operator == Operator::Search {
            match condition.as_deref() {
                Some(c) if SEARCH_CONDITIONS.contains(&c) => {}
                Some(c) => issues.warning(
                    &p.key("condition"),
                    format!("`search` condition `{c}` is not one of any, all, any2any, all2any; the criterion always fails"),
                ),
                None => issues.warning(
                    &p,
                    "`search` needs a `condition` (any, all, any2any or all2any); the criterion always fails",
                ),
            }
            match &pattern {
                Value::Object(child) => {
                    children = parse_criteria(child, &p.key("pattern"), Severity::Warning, issues);
                }
                other => issues.warning(
                    &p.key("pattern"),
                    format!(
                        "the `search` pattern must be a mapping of item criteria, not {}",
                        describe(other)
                    ),
                ),
            }
        }
        let field = key.split('#').next().unwrap_or(key).to_owned();
        out.push(Criterion {
            key: key.clone(),
            field,
            operator,
            pattern,
            condition,
            children,
        });
    }
    out
}

/// Criteria that fail whatever the payload -- a key that is not JSONPath, a pattern its
/// operator cannot use (an invalid regex, a non-numeric `timediff` pattern), a Rhai script that
/// does not compile -- make the rule unusable, so it is rejected (StackStorm would register it
/// and fail every evaluation). Unknown operators and malformed `search`/`or` entries are
/// reported by [`parse_criteria`].
fn check_criteria(criteria: &Map<String, Value>, issues: &mut Issues) {
    use crate::rules::criteria::{Criteria, PathPart, ProblemKind};
    let compiled = Criteria::compile(criteria, crate::rules::default_rhai());
    for problem in compiled.problems() {
        if !matches!(problem.kind, ProblemKind::Key | ProblemKind::Pattern) {
            continue;
        }
        let mut path = FieldPath::root().key("criteria");
        let mut in_criterion = false;
        for part in &problem.path {
            match part {
                PathPart::Criterion(key) => {
                    if in_criterion {
                        path = path.key("pattern");
                    }
                    path = path.key(key);
                    in_criterion = true;
                }
                PathPart::OrGroup(i) => {
                    path = path.key(crate::rules::criteria::OR_KEY).index(*i);
                    in_criterion = false;
                }
            }
        }
        match problem.kind {
            ProblemKind::Pattern => issues.error(&path.key("pattern"), problem.message),
            _ => issues.push(
                &path,
                crate::diagnostic::Anchor::Key,
                Severity::Error,
                problem.message,
            ),
        }
    }
}

fn check_trigger_parameters(
    tt: &TriggerType,
    schema: &Schema,
    params: &Map<String, Value>,
    trigger_path: &FieldPath,
    issues: &mut Issues,
) {
    if schema.check().is_err() {
        return; // reported on the trigger type itself
    }
    if let Err(violations) = schema.validate(&Value::Object(params.clone())) {
        let params_path = trigger_path.key("parameters");
        for v in violations {
            let path = if v.parameter.is_empty() || !params.contains_key(&v.parameter) {
                params_path.clone()
            } else {
                params_path.key(&v.parameter)
            };
            issues.error(
                &path,
                format!(
                    "invalid parameters for trigger type `{}`: {}",
                    tt.reference, v.message
                ),
            );
        }
    }
}

/// Parameters the rule passes that the action does not declare make every enforcement fail;
/// so do required parameters that are neither given nor defaulted.
fn check_action_parameters(
    action: &Action,
    params: &Map<String, Value>,
    action_path: &FieldPath,
    issues: &mut Issues,
) {
    let schema = &action.schema;
    for name in params.keys() {
        if !schema.has_property(name) {
            issues.warning(
                &action_path.key("parameters").key(name),
                format!(
                    "action `{}` has no parameter `{name}`; every enforcement of this rule will fail",
                    action.reference
                ),
            );
        } else if schema.is_immutable(name) {
            issues.warning(
                &action_path.key("parameters").key(name),
                format!(
                    "parameter `{name}` of action `{}` is immutable; every enforcement of this rule will fail",
                    action.reference
                ),
            );
        }
    }
    for name in schema.properties().keys() {
        let has_default = schema
            .property(name)
            .and_then(|p| p.get("default"))
            .is_some_and(|d| !d.is_null());
        if schema.is_required(name) && !has_default && !params.contains_key(name) {
            issues.warning(
                action_path,
                format!(
                    "required parameter `{name}` of action `{}` is not given; every enforcement of this rule will fail",
                    action.reference
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pack() -> PackIdentity {
        PackIdentity {
            reference: "p".into(),
            dir_name: "p".into(),
        }
    }

    fn read(v: Value) -> (Option<RuleSpec>, Vec<(Severity, String)>) {
        let mut issues = Issues::new();
        let spec = RuleSpec::read(&v, &pack(), &mut issues);
        (
            spec,
            issues
                .iter()
                .map(|i| (i.severity, i.message.clone()))
                .collect(),
        )
    }

    #[test]
    fn rules_are_disabled_unless_enabled() {
        let (spec, msgs) = read(json!({
            "name": "r", "trigger": {"type": "core.st2.webhook", "parameters": {"url": "x"}},
            "action": {"ref": "core.noop"}
        }));
        assert!(msgs.is_empty(), "{msgs:?}");
        assert!(!spec.unwrap().enabled);
    }

    #[test]
    fn criteria_need_known_operators_and_patterns() {
        let (spec, msgs) = read(json!({
            "name": "r", "trigger": {"type": "t.t"}, "action": {"ref": "a.b"},
            "criteria": {
                "trigger.a": {"type": "equals", "pattern": 1},
                "trigger.b": {"type": "nope", "pattern": 1},
                "trigger.c": {"type": "exists"},
                "trigger.d": "x",
                "trigger.e#2": {"pattern": 1},
                "trigger.f": {"type": "search", "condition": "any", "pattern": {
                    "item.x": {"type": "bad", "pattern": 1}, "item.y": {"type": "eq", "pattern": 2}
                }}
            }
        }));
        let errors: Vec<_> = msgs.iter().filter(|(s, _)| *s == Severity::Error).collect();
        assert_eq!(errors.len(), 4, "{msgs:?}");
        assert!(errors[0].1.contains("operator `nope`"));
        assert!(errors[1].1.contains("no `pattern`"));
        let warnings: Vec<_> = msgs
            .iter()
            .filter(|(s, _)| *s == Severity::Warning)
            .collect();
        assert_eq!(warnings.len(), 1, "{msgs:?}");
        let spec = spec.unwrap();
        assert_eq!(spec.criteria.len(), 2);
        assert_eq!(spec.criteria[1].children.len(), 1);
    }

    #[test]
    fn unknown_fields_are_errors() {
        let (_, msgs) = read(json!({
            "name": "r", "trigger": {"type": "t.t", "anything": 1},
            "action": {"ref": "a.b", "extra": 1}, "priority": 1
        }));
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs.iter().all(|(s, _)| *s == Severity::Error));
    }
}
