//! Enforcing a matched rule: render its action parameters and produce the execution request
//! plus the rule enforcement record, as StackStorm's `st2reactor/rules/enforcer.py` does.
//!
//! * The action must exist (`Action "x" doesn't exist`) and be enabled.
//! * The rule's `action.parameters` are rendered with StackStorm's live-parameter rendering
//!   (`trigger` is the payload; `st2kv`, `action_context` and `config_context` are available),
//!   together with the templated defaults of the action and its runner, then cast to their
//!   declared types.
//! * When rendering fails, StackStorm still creates the execution and fails it at once with the
//!   error: the request carries that error ([`ExecutionRequest::error`]) and the enforcement is
//!   failed.
//! * Otherwise the parameters are validated against the action's schema, and overriding an
//!   `immutable` parameter is refused; either failure fails the enforcement without an
//!   execution.
//!
//! Nothing is stored here: the caller persists the record and creates the execution, then
//! fills in [`RuleEnforcement::execution_id`].

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::criteria::Failure;
use super::matcher::TriggerInstance;
use crate::catalog::Catalog;
use crate::datastore::KeyValueRead;
use crate::expr::jinja::Jinja;
use crate::expr::render::{ParamContext, ShellCapture, live_params_render, render_live_params};
use crate::expr::shell::ShellCommand;
use crate::model::action::Action;
use crate::model::rule::Rule;

/// Whether an enforcement kicked off an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnforcementStatus {
    /// An execution was requested.
    Succeeded,
    /// Something failed; see the failure reason.
    Failed,
}

/// The rule an enforcement is about, as StackStorm records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpecRef {
    /// `pack.name`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The stored rule's id, when it has one.
    pub id: Option<String>,
    /// `rule:<pack>:<name>`.
    pub uid: String,
}

/// StackStorm's RuleEnforcement record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEnforcement {
    /// The trigger instance that was matched.
    pub trigger_instance_id: String,
    /// The rule.
    pub rule: RuleSpecRef,
    /// The execution it started (filled in by whoever creates the execution).
    pub execution_id: Option<String>,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// Succeeded or failed.
    pub status: EnforcementStatus,
    /// When.
    #[serde(serialize_with = "crate::store::rfc3339::serialize")]
    pub enforced_at: DateTime<Utc>,
}

/// An execution to create.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionRequest {
    /// Action ref.
    pub action: String,
    /// Rendered and cast parameters (the rule's unrendered ones when rendering failed).
    pub parameters: Map<String, Value>,
    /// The execution context: `trigger_instance`, `rule`, `user`, `pack`, `trace_context`.
    pub context: Map<String, Value>,
    /// Set when the parameters could not be rendered: the execution is created and failed at
    /// once with this error as its result.
    pub error: Option<String>,
    /// Shell-command parameters (`cmd` of `local-shell-cmd` / `remote-shell-cmd`) rendered with
    /// their values kept beside the command (see [`crate::expr::shell`]); `parameters` holds
    /// them as StackStorm would show them.
    pub shell: BTreeMap<String, ShellCommand>,
}

/// The parameters of `runner_type` that are shell commands rendered with
/// [`crate::expr::shell::render_shell_command`].
pub fn shell_parameters(runner_type: &str) -> &'static [&'static str] {
    match runner_type {
        "local-shell-cmd" | "remote-shell-cmd" => &["cmd"],
        _ => &[],
    }
}

/// What enforcing one rule for one trigger instance produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Enforcement {
    /// The execution to create, if any.
    pub request: Option<ExecutionRequest>,
    /// The record to store.
    pub record: RuleEnforcement,
}

/// What enforcement reads.
#[derive(Clone)]
pub struct Enforcer<'a> {
    /// Actions and runner types.
    pub catalog: &'a Catalog,
    /// StackStorm's Jinja environment.
    pub jinja: &'a Jinja,
    /// The datastore templates read.
    pub datastore: Option<Arc<dyn KeyValueRead>>,
    /// The user executions run as (StackStorm's `system_user`, `stanley` by default).
    pub system_user: &'a str,
    /// The trace the trigger instance belongs to (`{"id": ..., "trace_tag": ...}`).
    pub trace_context: Option<Value>,
    /// "Now".
    pub now: DateTime<Utc>,
}

impl std::fmt::Debug for Enforcer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer")
            .field("system_user", &self.system_user)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// The rule part of an enforcement record.
pub fn rule_spec(rule: &Rule, id: Option<&str>) -> RuleSpecRef {
    RuleSpecRef {
        reference: rule.reference.clone(),
        id: id.map(str::to_owned),
        uid: format!("rule:{}:{}", rule.pack(), rule.name),
    }
}

/// The failed enforcement StackStorm writes when a criterion raises.
pub fn criteria_failure(
    rule: &Rule,
    instance: &TriggerInstance,
    failure: &Failure,
    now: DateTime<Utc>,
) -> RuleEnforcement {
    let pattern = criterion_pattern(&rule.criteria, &failure.key);
    RuleEnforcement {
        trigger_instance_id: instance.id.clone(),
        rule: rule_spec(rule, None),
        execution_id: None,
        failure_reason: Some(format!(
            "Failed to match rule \"{}\" against trigger instance \"{}\": {}",
            rule.reference,
            instance.id,
            failure.reason(&rule.reference, &pattern)
        )),
        status: EnforcementStatus::Failed,
        enforced_at: now,
    }
}

/// The pattern written for `key` (searched in `search` children too), for failure messages.
fn criterion_pattern(criteria: &Map<String, Value>, key: &str) -> Value {
    if let Some(p) = criteria.get(key).and_then(|c| c.get("pattern")) {
        return p.clone();
    }
    for spec in criteria.values() {
        if let Some(Value::Object(children)) = spec.get("pattern") {
            let p = criterion_pattern(children, key);
            if !p.is_null() {
                return p;
            }
        }
    }
    Value::Null
}

impl Enforcer<'_> {
    /// Enforce `rule` for `instance` (see the module docs).
    pub fn enforce(&self, rule: &Rule, instance: &TriggerInstance) -> Enforcement {
        let mut record = RuleEnforcement {
            trigger_instance_id: instance.id.clone(),
            rule: rule_spec(rule, None),
            execution_id: None,
            failure_reason: None,
            status: EnforcementStatus::Succeeded,
            enforced_at: self.now,
        };
        let (request, failure) = self.request(rule, instance);
        if let Some(reason) = failure {
            record.status = EnforcementStatus::Failed;
            record.failure_reason = Some(reason);
        }
        Enforcement { request, record }
    }

    fn request(
        &self,
        rule: &Rule,
        instance: &TriggerInstance,
    ) -> (Option<ExecutionRequest>, Option<String>) {
        let action_ref = &rule.action.reference;
        let Some(action) = self.catalog.action(action_ref) else {
            return (None, Some(format!("Action \"{action_ref}\" doesn't exist")));
        };
        let no_runner_params = Map::new();
        let runner_params = self
            .catalog
            .runner_type(&action.runner_type)
            .map_or(&no_runner_params, |r| &r.runner_parameters);
        let mut context = Map::new();
        context.insert(
            "trigger_instance".to_owned(),
            json!({"id": instance.id, "name": null}),
        );
        context.insert("rule".to_owned(), json!({"id": null, "name": rule.name}));
        context.insert(
            "user".to_owned(),
            Value::String(self.system_user.to_owned()),
        );
        context.insert("pack".to_owned(), Value::String(action.pack().to_owned()));
        if let Some(trace) = &self.trace_context {
            context.insert("trace_context".to_owned(), trace.clone());
        }
        let capture = ShellCapture::new(shell_parameters(&action.runner_type).iter().copied());
        // Built only when something renders (a rule that passes no parameters to an action
        // without templated defaults renders nothing).
        let rendered =
            if live_params_render(runner_params, &action.parameters, &rule.action.parameters) {
                let mut additional = Map::new();
                additional.insert("trigger".to_owned(), instance.payload.clone());
                let pctx = ParamContext {
                    shell: Some(capture.clone()),
                    action_context: context.clone(),
                    config: self
                        .catalog
                        .config(action.pack())
                        .map(|c| c.values.clone())
                        .unwrap_or_default(),
                    datastore: self.datastore.clone(),
                    system_user: self.system_user.to_owned(),
                    additional,
                };
                render_live_params(
                    self.jinja,
                    runner_params,
                    &action.parameters,
                    &rule.action.parameters,
                    &pctx,
                )
            } else {
                Ok(Map::new())
            };
        let parameters = match rendered {
            Ok(p) => p,
            Err(e) => {
                // StackStorm creates the execution anyway and fails it with the error.
                let message = e.to_string();
                let request = ExecutionRequest {
                    action: action_ref.clone(),
                    parameters: rule.action.parameters.clone(),
                    context,
                    error: Some(message.clone()),
                    shell: BTreeMap::new(),
                };
                return (Some(request), Some(message));
            }
        };
        if let Err(reason) = check_request(action, runner_params, &parameters) {
            return (None, Some(reason));
        }
        let request = ExecutionRequest {
            action: action_ref.clone(),
            parameters,
            context,
            error: None,
            shell: capture.take(),
        };
        (Some(request), None)
    }
}

/// StackStorm's `create_request` checks: the action is enabled, the parameters fit its schema,
/// and no immutable parameter is overridden.
pub(crate) fn check_request(
    action: &Action,
    runner_params: &Map<String, Value>,
    parameters: &Map<String, Value>,
) -> Result<(), String> {
    if !action.enabled {
        return Err(format!(
            "Unable to execute. Action \"{}\" is disabled.",
            action.reference
        ));
    }
    if let Err(violations) = action.schema.validate(&Value::Object(parameters.clone())) {
        let text: Vec<String> = violations.iter().map(|v| v.message.clone()).collect();
        return Err(text.join("; "));
    }
    let immutable = |defs: &Map<String, Value>, name: &str| {
        defs.get(name)
            .and_then(|d| d.get("immutable"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let overridden: Vec<String> = parameters
        .keys()
        .filter(|k| immutable(&action.parameters, k) || immutable(runner_params, k))
        .map(|k| format!("'{k}'"))
        .collect();
    if !overridden.is_empty() {
        return Err(format!(
            "Override of immutable parameter(s) [{}] is unsupported.",
            overridden.join(", ")
        ));
    }
    Ok(())
}
