//! `st2d rule test`: StackStorm's `st2-rule-tester`. Does this rule match this trigger instance,
//! and with which action parameters?
//!
//! * `--rule FILE|REF --trigger-instance FILE [--packs-dir DIR]...`: prints the verdict and the
//!   rendered action parameters; exit 0 on a match, 1 on no match, 2 on an error (unreadable
//!   files, a criterion StackStorm would not even catch).
//! * `--batch`: JSON lines `{"criteria": {...}, "payload": {...}, "st2kv": {"system": {...},
//!   "user": {...}}}` on stdin, one line out per case: `{"match": true|false}` (plus
//!   `"failed_enforcements": [...]` when a criterion raised but the rule matched anyway) or
//!   `{"error": "<class>", "message": "..."}`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;
use clap::Args;
use serde_json::{Map, Value, json};
use st2_core::catalog::Catalog;
use st2_core::datastore::{KeyValueRead, KvScope, MemoryKeyValues};
use st2_core::expr::jinja::{Jinja, JinjaConfig};
use st2_core::expr::rhai::{Rhai, RhaiLimits};
use st2_core::loader::{LoadOptions, load};
use st2_core::model::rule::{Rule, RuleAction, RuleKind, RuleTrigger};
use st2_core::model::{Origin, Tag};
use st2_core::rules::criteria::{Criteria, Environment};
use st2_core::rules::enforce::Enforcer;
use st2_core::rules::matcher::{CompiledRule, TriggerInstance, TriggerRef};
use st2_core::yaml::{YamlLimits, parse_str};

/// The user executions run as, as in StackStorm's default configuration.
const SYSTEM_USER: &str = "stanley";

#[derive(Debug, Args)]
pub struct TestArgs {
    /// A rule file (YAML or JSON), or a rule ref found in `--packs-dir`.
    #[arg(long, value_name = "FILE|REF", required_unless_present = "batch")]
    rule: Option<String>,
    /// A trigger instance file: `{"trigger": "<trigger type ref>", "payload": {...}}`.
    #[arg(
        long = "trigger-instance",
        value_name = "FILE",
        required_unless_present = "batch"
    )]
    trigger_instance: Option<PathBuf>,
    /// Directories of packs, for rule refs and for the actions rules run (repeatable).
    #[arg(long = "packs-dir", value_name = "DIR")]
    packs_dirs: Vec<PathBuf>,
    /// Directory of pack configs (`config_context` in parameters).
    #[arg(long = "configs-dir", value_name = "DIR")]
    configs_dir: Option<PathBuf>,
    /// Read cases as JSON lines on stdin instead.
    #[arg(long, conflicts_with_all = ["rule", "trigger_instance"])]
    batch: bool,
}

pub fn run(args: TestArgs) -> ExitCode {
    let jinja = Jinja::new(JinjaConfig::default());
    let rhai = Rhai::new(RhaiLimits::default());
    if args.batch {
        return batch(&jinja, &rhai);
    }
    match single(&args, &jinja, &rhai) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("st2d rule test: {message}");
            ExitCode::from(2)
        }
    }
}

fn read_document(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc =
        parse_str(&text, &YamlLimits::default()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(doc.to_json())
}

/// A rule file read the way `st2-rule-tester` reads it: name and pack default to `unknown`,
/// and the rule is enabled whatever it says.
fn rule_from_file(path: &Path) -> Result<Rule, String> {
    let doc = read_document(path)?;
    let Value::Object(map) = doc else {
        return Err(format!("{}: a rule must be a mapping", path.display()));
    };
    let text =
        |v: Option<&Value>, default: &str| v.and_then(Value::as_str).unwrap_or(default).to_owned();
    let pack = text(map.get("pack"), "unknown");
    let name = text(map.get("name"), "unknown");
    let trigger = map.get("trigger").and_then(Value::as_object);
    let Some(trigger_type) = trigger.and_then(|t| t.get("type")).and_then(Value::as_str) else {
        return Err(format!(
            "{}: the rule has no `trigger.type`",
            path.display()
        ));
    };
    let object = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
    let action = object(map.get("action"));
    let kind = match map
        .get("type")
        .and_then(|t| t.get("ref"))
        .and_then(Value::as_str)
    {
        Some("backstop") => RuleKind::Backstop,
        _ => RuleKind::Standard,
    };
    Ok(Rule {
        reference: format!("{pack}.{name}"),
        name,
        origin: Origin {
            pack,
            metadata_file: path.display().to_string(),
        },
        description: None,
        enabled: true,
        kind,
        trigger: RuleTrigger {
            trigger_type: trigger_type.to_owned(),
            parameters: object(trigger.and_then(|t| t.get("parameters"))),
        },
        criteria: object(map.get("criteria")),
        action: RuleAction {
            reference: text(action.get("ref"), ""),
            parameters: object(action.get("parameters")),
        },
        context: object(map.get("context")),
        tags: Vec::<Tag>::new(),
    })
}

fn instance_from_file(path: &Path) -> Result<TriggerInstance, String> {
    let doc = read_document(path)?;
    let trigger = match doc.get("trigger") {
        Some(Value::String(t)) => TriggerRef::of_type(t.clone()),
        Some(Value::Object(t)) => TriggerRef {
            trigger_type: t
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            parameters: t
                .get("parameters")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        },
        _ => {
            return Err(format!(
                "{}: the trigger instance has no `trigger` (a trigger type ref)",
                path.display()
            ));
        }
    };
    Ok(TriggerInstance {
        id: doc
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("rule_tester_instance")
            .to_owned(),
        trigger,
        payload: doc.get("payload").cloned().unwrap_or(Value::Null),
        occurrence_time: Utc::now(),
    })
}

fn single(args: &TestArgs, jinja: &Jinja, rhai: &Rhai) -> Result<bool, String> {
    let catalog = if args.packs_dirs.is_empty() {
        Catalog::new()
    } else {
        load(&LoadOptions {
            packs_dirs: args.packs_dirs.clone(),
            configs_dir: args.configs_dir.clone(),
            ..LoadOptions::default()
        })
        .catalog
    };
    let spec = args.rule.as_deref().unwrap_or_default();
    let rule = if Path::new(spec).is_file() {
        rule_from_file(Path::new(spec))?
    } else {
        match catalog.rule(spec) {
            Some(r) => {
                let mut r = (**r).clone();
                r.enabled = true;
                r
            }
            None => {
                return Err(format!(
                    "`{spec}` is neither a rule file nor a rule in the loaded packs"
                ));
            }
        }
    };
    let path = args.trigger_instance.as_deref().unwrap_or(Path::new(""));
    let instance = instance_from_file(path)?;
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        let _ = writeln!(out, "{line}");
    };
    if rule.trigger.trigger_type != instance.trigger.trigger_type {
        say(format!(
            "no match: rule {} listens to `{}`, the instance is a `{}`",
            rule.reference, rule.trigger.trigger_type, instance.trigger.trigger_type
        ));
        return Ok(false);
    }
    let compiled = CompiledRule::new(rule, rhai).map_err(|problems| {
        problems
            .iter()
            .map(|p| format!("criteria {}: {}", p.location(), p.message))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let store: Arc<dyn KeyValueRead> = Arc::new(MemoryKeyValues::new());
    let env = Environment {
        jinja,
        kv: Some(store.clone()),
        rhai,
        now: Utc::now(),
    };
    let outcome = compiled
        .evaluate(&instance.payload, &env)
        .map_err(|u| format!("the trigger instance fails as a whole: {u}"))?;
    for failure in &outcome.failures {
        say(format!("criterion failed: {failure}"));
    }
    let rule = &compiled.rule;
    if !outcome.matched {
        say(format!("no match: rule {} does not match", rule.reference));
        return Ok(false);
    }
    let enforcer = Enforcer {
        catalog: &catalog,
        jinja,
        datastore: Some(store),
        system_user: SYSTEM_USER,
        trace_context: None,
        now: Utc::now(),
    };
    if catalog.action(&rule.action.reference).is_none() {
        // As st2-rule-tester: without the action, render the rule's own parameters only.
        say(format!(
            "(action {} is not in the loaded packs: its defaults are not applied)",
            rule.action.reference
        ));
    }
    let rendered = if catalog.action(&rule.action.reference).is_some() {
        let enforcement = enforcer.enforce(rule, &instance);
        match (enforcement.request, enforcement.record.failure_reason) {
            (Some(request), None) => Ok(request.parameters),
            (_, Some(reason)) => Err(reason),
            (None, None) => Err("no execution was requested".to_owned()),
        }
    } else {
        render_without_action(rule, &instance, jinja, &enforcer)
    };
    match rendered {
        Ok(params) => {
            say(format!(
                "match: rule {} runs {} with parameters:",
                rule.reference, rule.action.reference
            ));
            say(serde_json::to_string_pretty(&Value::Object(params)).unwrap_or_default());
            Ok(true)
        }
        Err(reason) => {
            say(format!(
                "no match: rule {} matches, but its action parameters fail: {reason}",
                rule.reference
            ));
            Ok(false)
        }
    }
}

fn render_without_action(
    rule: &Rule,
    instance: &TriggerInstance,
    jinja: &Jinja,
    enforcer: &Enforcer<'_>,
) -> Result<Map<String, Value>, String> {
    let mut additional = Map::new();
    additional.insert("trigger".to_owned(), instance.payload.clone());
    let mut context = Map::new();
    context.insert("user".to_owned(), json!(SYSTEM_USER));
    context.insert("rule".to_owned(), json!({"id": null, "name": rule.name}));
    let ctx = st2_core::expr::render::ParamContext {
        shell: None,
        action_context: context,
        config: Map::new(),
        datastore: enforcer.datastore.clone(),
        system_user: SYSTEM_USER.to_owned(),
        additional,
    };
    st2_core::expr::render::render_live_params(
        jinja,
        &Map::new(),
        &Map::new(),
        &rule.action.parameters,
        &ctx,
    )
    .map_err(|e| e.to_string())
}

fn batch(jinja: &Jinja, rhai: &Rhai) -> ExitCode {
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let now = Utc::now();
    for (n, line) in stdin.lock().lines().enumerate() {
        let Ok(line) = line else {
            eprintln!("st2d rule test: stdin is not readable text");
            return ExitCode::from(2);
        };
        if line.trim().is_empty() {
            continue;
        }
        let result = match parse_case(&line) {
            Err(message) => json!({
                "error": "InputError",
                "message": format!("line {}: {message}", n + 1),
            }),
            Ok((criteria, payload, store)) => {
                let env = Environment {
                    jinja,
                    kv: Some(store),
                    rhai,
                    now,
                };
                match Criteria::compile(&criteria, rhai).evaluate(&payload, &env) {
                    Err(u) => json!({"error": u.class, "message": u.message}),
                    Ok(o) if !o.matched && !o.failures.is_empty() => {
                        let first = &o.failures[0];
                        json!({"error": first.class, "message": first.to_string()})
                    }
                    Ok(o) if o.failures.is_empty() => json!({"match": o.matched}),
                    Ok(o) => json!({
                        "match": o.matched,
                        "failed_enforcements": o.failures.iter().map(|f| f.class).collect::<Vec<_>>(),
                    }),
                }
            }
        };
        if writeln!(out, "{result}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::SUCCESS;
        }
    }
    ExitCode::SUCCESS
}

type Case = (Map<String, Value>, Value, Arc<dyn KeyValueRead>);

fn parse_case(line: &str) -> Result<Case, String> {
    let Value::Object(mut case) =
        serde_json::from_str::<Value>(line).map_err(|e| format!("not JSON: {e}"))?
    else {
        return Err("expected an object {\"criteria\": ..., \"payload\": ...}".to_owned());
    };
    let criteria = match case.remove("criteria") {
        Some(Value::Object(c)) => c,
        Some(Value::Null) | None => Map::new(),
        Some(_) => return Err("field `criteria` must be an object".to_owned()),
    };
    let payload = case.remove("payload").unwrap_or(Value::Null);
    let store = MemoryKeyValues::new();
    match case.remove("st2kv") {
        None | Some(Value::Null) => {}
        Some(Value::Object(scopes)) => {
            for (scope, items) in scopes {
                let scope = match scope.as_str() {
                    "system" => KvScope::System,
                    "user" => KvScope::User(SYSTEM_USER.to_owned()),
                    other => return Err(format!("`st2kv.{other}`: scope must be system or user")),
                };
                let Value::Object(items) = items else {
                    return Err("`st2kv` scopes must be objects of strings".to_owned());
                };
                for (k, v) in items {
                    let Value::String(v) = v else {
                        return Err(format!("`st2kv` value of `{k}` must be a string"));
                    };
                    store.set(scope.clone(), k, v);
                }
            }
        }
        Some(_) => return Err("field `st2kv` must be an object".to_owned()),
    }
    if let Some(other) = case.keys().next() {
        return Err(format!(
            "unknown field `{other}` (expected criteria, payload, st2kv)"
        ));
    }
    Ok((criteria, payload, Arc::new(store)))
}
