//! Rule matching throughput: 1,000 rules over 20 trigger types (3 criteria each, one a regex)
//! against 100,000 trigger instances, and the cost of one criteria evaluation.
//!
//! `cargo bench -p st2-core --bench rules`

use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use st2_core::expr::jinja::{Jinja, JinjaConfig};
use st2_core::expr::rhai::{Rhai, RhaiLimits};
use st2_core::model::Origin;
use st2_core::model::rule::{Rule, RuleAction, RuleKind, RuleTrigger};
use st2_core::rules::criteria::Environment;
use st2_core::rules::matcher::{CompiledRule, Matcher, TriggerInstance, TriggerRef};

const TYPES: usize = 20;
const RULES: usize = 1_000;
const INSTANCES: usize = 100_000;

/// Rule `i`; with `indexed`, its first criterion is the `equals` on the service (which the
/// matcher indexes), else the `greaterthan` comes first and every rule of the trigger type is
/// evaluated for every instance.
fn rule(i: usize, indexed: bool) -> Rule {
    let trigger_type = format!("monitoring.alert_{}", i % TYPES);
    // Each rule of a trigger type watches one service: an instance concerns one of them.
    let service = format!("svc-{}", i / TYPES);
    let criteria = if indexed {
        json!({
            "trigger.service": {"type": "equals", "pattern": service},
            "trigger.severity": {"type": "greaterthan", "pattern": 2},
            "trigger.host": {"type": "regex", "pattern": "^web-\\d+\\.prod\\."},
        })
    } else {
        json!({
            "trigger.severity": {"type": "greaterthan", "pattern": 2},
            "trigger.service": {"type": "equals", "pattern": service},
            "trigger.host": {"type": "regex", "pattern": "^web-\\d+\\.prod\\."},
        })
    };
    Rule {
        reference: format!("bench.rule_{i}"),
        name: format!("rule_{i}"),
        origin: Origin {
            pack: "bench".into(),
            metadata_file: String::new(),
        },
        description: None,
        enabled: true,
        kind: RuleKind::Standard,
        trigger: RuleTrigger {
            trigger_type,
            parameters: Map::new(),
        },
        criteria: criteria.as_object().cloned().unwrap_or_default(),
        action: RuleAction {
            reference: "core.noop".into(),
            parameters: Map::new(),
        },
        context: Map::new(),
        tags: Vec::new(),
    }
}

fn instances() -> Vec<TriggerInstance> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..INSTANCES)
        .map(|i| {
            let r = next();
            let payload = json!({
                "service": format!("svc-{}", r % (RULES / TYPES) as u64),
                "severity": (r >> 8) % 5,
                "host": if (r >> 16) % 2 == 0 { format!("web-{}.prod.example.com", r % 97) } else { "db-1.staging.example.com".to_owned() },
                "message": "disk usage above threshold",
            });
            TriggerInstance {
                id: format!("ti-{i}"),
                trigger: TriggerRef::of_type(format!("monitoring.alert_{}", (r >> 24) as usize % TYPES)),
                payload,
                occurrence_time: Utc::now(),
            }
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let jinja = Jinja::new(JinjaConfig::default());
    let rhai = Rhai::new(RhaiLimits::default());
    let env = Environment {
        jinja: &jinja,
        kv: None,
        rhai: &rhai,
        now: Utc::now(),
    };
    let instances = instances();
    let mut group = c.benchmark_group("rules");
    group.sample_size(10);
    group.throughput(Throughput::Elements(INSTANCES as u64));
    for (name, indexed) in [
        ("match_100k_instances_1000_rules", true),
        ("match_100k_instances_1000_rules_unindexed", false),
    ] {
        let matcher = Matcher::new();
        for i in 0..RULES {
            matcher.insert(CompiledRule::new(rule(i, indexed), &rhai).expect("compiles"));
        }
        let matched: usize = instances
            .iter()
            .map(|ti| {
                matcher
                    .match_instance(ti, &env)
                    .map_or(0, |m| m.matched.len())
            })
            .sum();
        assert!(matched > INSTANCES / 10, "{matched} matches");
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0;
                for ti in &instances {
                    if let Ok(m) = matcher.match_instance(black_box(ti), &env) {
                        n += m.matched.len();
                    }
                }
                n
            })
        });
    }
    group.finish();

    // One rule whose three criteria all hold: every criterion is evaluated.
    let one = CompiledRule::new(rule(0, true), &rhai).expect("compiles");
    let payload: Value =
        json!({"service": "svc-0", "severity": 4, "host": "web-7.prod.example.com"});
    let mut group = c.benchmark_group("criteria");
    group.throughput(Throughput::Elements(3));
    group.bench_function("three_criteria_all_evaluated", |b| {
        b.iter(|| one.evaluate(black_box(&payload), &env))
    });
    group.finish();
}

criterion_group!(rules, benches);
criterion_main!(rules);
