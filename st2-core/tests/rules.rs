//! The rules engine end to end: rules that cannot work are rejected at load with file and line,
//! the extensions (`or`, `rhai`) load and match, the matcher indexes by trigger and follows
//! runtime changes, and enforcement renders, casts and validates action parameters or records
//! why it could not.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use st2_core::catalog::Catalog;
use st2_core::datastore::{KvScope, MemoryKeyValues};
use st2_core::diagnostic::Severity;
use st2_core::expr::jinja::{Jinja, JinjaConfig};
use st2_core::expr::rhai::{Rhai, RhaiLimits};
use st2_core::loader::{LoadOptions, LoadReport, load};
use st2_core::rules::criteria::Environment;
use st2_core::rules::enforce::{EnforcementStatus, Enforcer, criteria_failure};
use st2_core::rules::matcher::{CompiledRule, Matcher, TriggerInstance, TriggerRef};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packs")
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A pack `rt` with one action `rt.echo` and the given rule files.
fn pack_with_rules(rules: &[(&str, &str)]) -> (tempfile::TempDir, LoadReport) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "rt/pack.yaml",
        "name: rt\ndescription: test\nversion: 0.1.0\nauthor: tests\n",
    );
    write(
        root,
        "rt/triggers/event.yaml",
        "name: event\ndescription: an event\n",
    );
    write(
        root,
        "rt/actions/echo.yaml",
        "name: echo\nrunner_type: local-shell-cmd\nentry_point: ''\nenabled: true\n\
         parameters:\n  count:\n    type: integer\n  flag:\n    type: boolean\n  message:\n    type: string\n    default: hi\n\
         \x20 cmd:\n    immutable: true\n    default: 'echo {{ message }}'\n",
    );
    write(
        root,
        "rt/actions/idle.yaml",
        "name: idle\nrunner_type: local-shell-cmd\nentry_point: ''\nenabled: false\nparameters: {}\n",
    );
    for (name, text) in rules {
        write(root, &format!("rt/rules/{name}.yaml"), text);
    }
    let report = load(&LoadOptions::default().packs_dir(root));
    (dir, report)
}

fn errors(report: &LoadReport) -> Vec<String> {
    report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            format!(
                "{}:{}: {}",
                d.file.file_name().unwrap_or_default().to_string_lossy(),
                d.line,
                d.message
            )
        })
        .collect()
}

fn env<'a>(jinja: &'a Jinja, rhai: &'a Rhai) -> Environment<'a> {
    Environment {
        jinja,
        kv: None,
        rhai,
        now: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    }
}

fn instance(trigger: TriggerRef, payload: Value) -> TriggerInstance {
    TriggerInstance {
        id: "ti-1".into(),
        trigger,
        payload,
        occurrence_time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    }
}

#[test]
fn rules_that_cannot_work_are_rejected_at_load_with_their_line() {
    let (_dir, report) = pack_with_rules(&[
        (
            "bad_regex",
            "name: bad_regex\nenabled: true\ntrigger:\n  type: rt.event\ncriteria:\n  trigger.a:\n    type: regex\n    pattern: '(unclosed'\naction:\n  ref: rt.echo\n",
        ),
        (
            "bad_op",
            "name: bad_op\nenabled: true\ntrigger:\n  type: rt.event\ncriteria:\n  trigger.a:\n    type: bogus\n    pattern: 1\naction:\n  ref: rt.echo\n",
        ),
        (
            "bad_key",
            "name: bad_key\nenabled: true\ntrigger:\n  type: rt.event\ncriteria:\n  trigger.a[:\n    type: equals\n    pattern: 1\naction:\n  ref: rt.echo\n",
        ),
        (
            "bad_timediff",
            "name: bad_timediff\nenabled: true\ntrigger:\n  type: rt.event\ncriteria:\n  trigger.at:\n    type: timediff_lt\n    pattern: soon\naction:\n  ref: rt.echo\n",
        ),
        (
            "bad_rhai",
            "name: bad_rhai\nenabled: true\ntrigger:\n  type: rt.event\ncriteria:\n  trigger.a:\n    type: rhai\n    pattern: 'value >'\naction:\n  ref: rt.echo\n",
        ),
        (
            "good",
            "name: good\nenabled: true\ntrigger:\n  type: rt.event\ncriteria:\n  trigger.a:\n    type: regex\n    pattern: '^ok$'\naction:\n  ref: rt.echo\n",
        ),
    ]);
    let errors = errors(&report);
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("bad_regex.yaml:8: pattern unusable for `regex`"),
        "{errors:#?}"
    );
    assert!(has("bad_op.yaml:7:"), "{errors:#?}");
    assert!(
        has("bad_key.yaml:6: the key is not a valid JSONPath"),
        "{errors:#?}"
    );
    assert!(
        has("bad_timediff.yaml:8: pattern unusable for `timediff_lt`"),
        "{errors:#?}"
    );
    assert!(
        has("bad_rhai.yaml:8: Rhai script does not compile"),
        "{errors:#?}"
    );
    // Everything else still loads.
    let refs: Vec<&str> = report
        .catalog
        .rules()
        .map(|r| r.reference.as_str())
        .collect();
    assert_eq!(refs, ["rt.good"]);
}

#[test]
fn or_groups_and_rhai_criteria_load_and_match() {
    let (_dir, report) = pack_with_rules(&[(
        "either",
        "name: either\nenabled: true\ntrigger:\n  type: rt.event\ncriteria:\n  trigger.env:\n    type: equals\n    pattern: prod\n  or:\n    - trigger.severity:\n        type: greaterthan\n        pattern: 3\n    - trigger.host:\n        type: rhai\n        pattern: 'value.starts_with(\"db\") && trigger.severity >= 2'\naction:\n  ref: rt.echo\n",
    )]);
    assert!(errors(&report).is_empty(), "{:?}", errors(&report));
    let rule = report.catalog.rule("rt.either").expect("loaded");
    let (jinja, rhai) = (
        Jinja::new(JinjaConfig::default()),
        Rhai::new(RhaiLimits::default()),
    );
    let compiled = CompiledRule::new((**rule).clone(), &rhai).expect("compiles");
    let check = |payload: Value| compiled.evaluate(&payload, &env(&jinja, &rhai)).unwrap();
    assert!(check(json!({"env": "prod", "severity": 4, "host": "web1"})).matched);
    assert!(check(json!({"env": "prod", "severity": 2, "host": "db1"})).matched);
    assert!(!check(json!({"env": "prod", "severity": 2, "host": "web1"})).matched);
    assert!(!check(json!({"env": "dev", "severity": 5, "host": "db1"})).matched);
    // A script failing on the value's type is a failure, not a crash.
    let out = check(json!({"env": "prod", "severity": 1, "host": 7}));
    assert!(!out.matched);
    assert_eq!(out.failures.len(), 1, "{:?}", out.failures);
}

#[test]
fn the_matcher_indexes_by_trigger_and_follows_changes() {
    let report = load(&LoadOptions::default().packs_dir(fixtures()));
    let (jinja, rhai) = (
        Jinja::new(JinjaConfig::default()),
        Rhai::new(RhaiLimits::default()),
    );
    let matcher = Matcher::new();
    for rule in report.catalog.rules() {
        matcher.insert(CompiledRule::new((**rule).clone(), &rhai).expect("compiles"));
    }
    assert_eq!(matcher.len(), 3);
    let webhook = |url: &str| TriggerRef {
        trigger_type: "core.st2.webhook".into(),
        parameters: json!({"url": url}).as_object().cloned().unwrap(),
    };
    let payload = json!({"body": {"name": "ada", "count": 3, "tags": [{"name": "urgent"}]}});
    let env = env(&jinja, &rhai);

    let m = matcher
        .match_instance(&instance(webhook("greet"), payload.clone()), &env)
        .unwrap();
    assert_eq!(m.matched.len(), 1);
    assert_eq!(m.matched[0].rule.reference, "good_pack.on_webhook");
    // Another webhook URL is another trigger: no rule listens to it.
    let m = matcher
        .match_instance(&instance(webhook("other"), payload.clone()), &env)
        .unwrap();
    assert!(m.matched.is_empty());

    // Disabled at run time, then enabled again.
    assert!(matcher.set_enabled("good_pack.on_webhook", false));
    let m = matcher
        .match_instance(&instance(webhook("greet"), payload.clone()), &env)
        .unwrap();
    assert!(m.matched.is_empty());
    assert!(matcher.set_enabled("good_pack.on_webhook", true));

    // The backstop matches only when nothing else does.
    let message = TriggerRef::of_type("good_pack.message");
    let m = matcher
        .match_instance(&instance(message.clone(), json!({"x": 1})), &env)
        .unwrap();
    assert_eq!(m.matched.len(), 1);
    assert_eq!(m.matched[0].rule.reference, "good_pack.fallback");
    let mut standard = (*matcher.get("good_pack.fallback").unwrap().rule).clone();
    standard.reference = "good_pack.first".into();
    standard.name = "first".into();
    standard.kind = st2_core::model::RuleKind::Standard;
    matcher.insert(CompiledRule::new(standard, &rhai).unwrap());
    let m = matcher
        .match_instance(&instance(message.clone(), json!({"x": 1})), &env)
        .unwrap();
    let refs: Vec<&str> = m
        .matched
        .iter()
        .map(|r| r.rule.reference.as_str())
        .collect();
    assert_eq!(refs, ["good_pack.first"]);

    // Removed.
    assert!(matcher.remove("good_pack.first").is_some());
    assert!(matcher.remove("good_pack.first").is_none());
    assert_eq!(matcher.len(), 3);
}

#[test]
fn a_criterion_that_raises_is_a_failed_enforcement_and_the_next_instance_still_matches() {
    let (_dir, report) = pack_with_rules(&[(
        "cmp",
        "name: cmp\nenabled: true\ntrigger:\n  type: rt.event\ncriteria:\n  trigger.n:\n    type: lessthan\n    pattern: 10\naction:\n  ref: rt.echo\n",
    )]);
    let (jinja, rhai) = (
        Jinja::new(JinjaConfig::default()),
        Rhai::new(RhaiLimits::default()),
    );
    let matcher = Matcher::new();
    let rule = report.catalog.rule("rt.cmp").unwrap();
    matcher.insert(CompiledRule::new((**rule).clone(), &rhai).unwrap());
    let env = env(&jinja, &rhai);
    let event = TriggerRef::of_type("rt.event");

    let bad = instance(event.clone(), json!({"n": "not a number"}));
    let m = matcher.match_instance(&bad, &env).unwrap();
    assert!(m.matched.is_empty());
    assert_eq!(m.failed.len(), 1);
    let (rule, failures) = &m.failed[0];
    assert_eq!(failures[0].class, "TypeError");
    let record = criteria_failure(&rule.rule, &bad, &failures[0], env.now);
    assert_eq!(record.status, EnforcementStatus::Failed);
    let reason = record.failure_reason.unwrap();
    assert!(
        reason.starts_with("Failed to match rule \"rt.cmp\" against trigger instance \"ti-1\": There might be a problem with the criteria in rule rt.cmp: "),
        "{reason}"
    );

    let good = instance(event, json!({"n": 3}));
    assert_eq!(
        matcher.match_instance(&good, &env).unwrap().matched.len(),
        1
    );
}

fn enforcer<'a>(catalog: &'a Catalog, jinja: &'a Jinja) -> Enforcer<'a> {
    let store = Arc::new(MemoryKeyValues::new());
    store.set(KvScope::System, "greeting", "hello");
    Enforcer {
        catalog,
        jinja,
        datastore: Some(store),
        system_user: "stanley",
        trace_context: Some(json!({"id": "trace-1", "trace_tag": "t"})),
        now: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    }
}

fn rule_for(action: &str, parameters: Value) -> st2_core::model::Rule {
    let text = format!(
        "name: r\nenabled: true\ntrigger:\n  type: rt.event\naction:\n  ref: {action}\n  parameters: {parameters}\n"
    );
    let (_dir, report) = pack_with_rules(&[("r", &text)]);
    let rule = report
        .catalog
        .rule("rt.r")
        .unwrap_or_else(|| panic!("{:?}", errors(&report)));
    (**rule).clone()
}

#[test]
fn enforcement_renders_casts_and_validates_parameters() {
    let (_dir, report) = pack_with_rules(&[]);
    let jinja = Jinja::new(JinjaConfig::default());
    let e = enforcer(&report.catalog, &jinja);
    let event = instance(
        TriggerRef::of_type("rt.event"),
        json!({"n": 5, "ok": "true", "who": "ada"}),
    );

    let rule = rule_for(
        "rt.echo",
        json!({"count": "{{ trigger.n }}", "flag": "{{ trigger.ok }}", "message": "{{ st2kv.system.greeting }} {{ trigger.who }}"}),
    );
    let out = e.enforce(&rule, &event);
    assert_eq!(
        out.record.status,
        EnforcementStatus::Succeeded,
        "{:?}",
        out.record
    );
    let request = out.request.expect("an execution");
    assert_eq!(request.action, "rt.echo");
    assert_eq!(
        Value::Object(request.parameters),
        json!({"count": 5, "flag": true, "message": "hello ada"})
    );
    assert_eq!(request.context["user"], "stanley");
    assert_eq!(request.context["pack"], "rt");
    assert_eq!(request.context["rule"]["name"], "r");
    assert_eq!(request.context["trigger_instance"]["id"], "ti-1");
    assert_eq!(request.context["trace_context"]["id"], "trace-1");
    assert_eq!(out.record.rule.uid, "rule:rt:r");

    // A parameter the action does not have: the schema refuses it, no execution.
    let rule = rule_for("rt.echo", json!({"colour": "red"}));
    let out = e.enforce(&rule, &event);
    assert_eq!(out.record.status, EnforcementStatus::Failed);
    assert!(out.request.is_none());
    assert!(
        out.record
            .failure_reason
            .as_deref()
            .unwrap_or("")
            .contains("colour"),
        "{:?}",
        out.record.failure_reason
    );

    // A value that cannot be cast: rendering fails, the execution is created failed.
    let rule = rule_for("rt.echo", json!({"count": "{{ trigger.who }}"}));
    let out = e.enforce(&rule, &event);
    assert_eq!(out.record.status, EnforcementStatus::Failed);
    assert!(out.request.is_some_and(|r| r.error.is_some()));

    // An immutable parameter.
    let rule = rule_for("rt.echo", json!({"cmd": "rm -rf /"}));
    let out = e.enforce(&rule, &event);
    assert!(out.request.is_none());
    assert_eq!(
        out.record.failure_reason.as_deref(),
        Some("Override of immutable parameter(s) ['cmd'] is unsupported.")
    );

    // A template that fails: StackStorm still creates the execution, failed at once.
    let rule = rule_for(
        "rt.echo",
        json!({"message": "{{ trigger.missing.deeper }}"}),
    );
    let out = e.enforce(&rule, &event);
    assert_eq!(out.record.status, EnforcementStatus::Failed);
    let request = out.request.expect("a failed execution");
    assert!(request.error.is_some());

    // A disabled action, a missing action.
    let out = e.enforce(&rule_for("rt.idle", json!({})), &event);
    assert_eq!(
        out.record.failure_reason.as_deref(),
        Some("Unable to execute. Action \"rt.idle\" is disabled.")
    );
    let out = e.enforce(&rule_for("rt.nope", json!({})), &event);
    assert_eq!(
        out.record.failure_reason.as_deref(),
        Some("Action \"rt.nope\" doesn't exist")
    );
    assert!(out.request.is_none());
}
