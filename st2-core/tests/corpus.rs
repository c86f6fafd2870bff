//! Every real pack in `../shared/corpus` loads; exactly the files StackStorm itself rejects get
//! errors, and the resource counts of every pack are pinned.

use std::collections::BTreeSet;
use std::path::PathBuf;

use st2_core::loader::{LoadOptions, load};

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    assert!(
        dir.join("packs").is_dir(),
        "the shared corpus is missing at {} (CI keeps ../shared beside the checkout)",
        dir.display()
    );
    dir
}

/// (pack ref, [actions, rules, sensors, trigger types, policies, aliases])
const COUNTS: &[(&str, [usize; 6])] = &[
    ("ansible", [8, 0, 0, 0, 0, 0]),
    ("aws", [3581, 0, 2, 2, 0, 3]),
    ("azure", [22, 0, 0, 0, 0, 2]),
    ("chatops", [6, 2, 0, 0, 0, 0]),
    ("consul", [41, 0, 0, 0, 0, 0]),
    ("core", [16, 0, 0, 0, 0, 0]),
    ("csv", [3, 0, 0, 0, 0, 0]),
    ("default", [0, 0, 0, 0, 0, 0]),
    ("docker", [3, 0, 1, 2, 0, 0]),
    ("dummy_pack_1", [3, 1, 3, 4, 2, 3]),
    ("dummy_pack_15", [0, 0, 0, 0, 0, 0]),
    ("dummy_pack_17", [0, 0, 0, 0, 0, 0]),
    ("dummy_pack_2", [1, 0, 0, 0, 0, 0]),
    ("dummy_pack_5", [0, 0, 0, 0, 0, 0]),
    ("dummy_pack_6_ref", [0, 0, 0, 0, 0, 0]),
    ("dummy_pack_7", [1, 0, 0, 0, 0, 0]),
    ("dummy_pack_9", [1, 0, 0, 0, 0, 0]),
    (
        "dummy_pack_schema_with_additional_items_1",
        [0, 0, 0, 0, 0, 0],
    ),
    ("dummy_pack_schema_with_nested_object_1", [0, 0, 0, 0, 0, 0]),
    ("examples", [117, 6, 4, 5, 0, 1]),
    ("git", [7, 1, 1, 1, 0, 0]),
    ("github", [31, 1, 1, 1, 0, 7]),
    ("influxdb", [3, 0, 0, 0, 0, 0]),
    ("jira", [32, 0, 2, 2, 0, 0]),
    ("kubernetes", [366, 2, 33, 31, 0, 0]),
    ("linux", [19, 0, 1, 1, 0, 0]),
    ("mssql", [6, 0, 0, 0, 0, 0]),
    ("orquesta_tests", [66, 0, 0, 0, 1, 0]),
    ("packs", [16, 0, 0, 0, 0, 4]),
    ("pagerduty", [65, 0, 0, 0, 0, 4]),
    ("salt", [162, 0, 0, 0, 0, 2]),
    ("slack", [194, 0, 1, 1, 0, 0]),
    ("st2", [24, 0, 0, 0, 0, 12]),
    ("terraform", [13, 0, 0, 0, 0, 0]),
    ("vault", [13, 0, 0, 0, 0, 0]),
    ("xml", [2, 0, 0, 0, 0, 0]),
];

/// The files StackStorm's own registration rejects, relative to the corpus directory.
///
/// The first four are the ones the corpus README names. The last two are rejected by
/// StackStorm too (its own unit tests assert it): `test_policies_registrar.py`
/// (`"100 is greater than the maximum of 5"` for dummy_pack_2's policy_3) and
/// `test_configs_registrar.py` (`1000 is not of type 'array'` for dummy_pack_6's config).
const REJECTED: &[&str] = &[
    "packs/dummy_pack_15/actions/my_action.yaml",
    "packs/dummy_pack_1/policies/policy_2.yaml",
    "packs/dummy_pack_5/actions/invalid.yaml",
    "packs/dummy_pack_6/actions/invalid.yaml",
    "packs/dummy_pack_2/policies/policy_3.yaml",
    "configs/dummy_pack_6.yaml",
];

#[test]
fn every_corpus_pack_loads_and_only_rejected_files_have_errors() {
    let dir = corpus();
    let report = load(
        &LoadOptions::default()
            .packs_dir(dir.join("packs"))
            .configs_dir(dir.join("configs")),
    );

    let error_files: BTreeSet<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            d.file
                .strip_prefix(&dir)
                .unwrap_or(&d.file)
                .display()
                .to_string()
        })
        .collect();
    let expected: BTreeSet<String> = REJECTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        error_files,
        expected,
        "errors:\n{}",
        report
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // One error per rejected file, each naming what is wrong.
    let messages: Vec<&str> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(messages.len(), REJECTED.len(), "{messages:#?}");
    assert!(messages.iter().any(|m| m.contains("`stringa`")));
    assert!(
        messages
            .iter()
            .any(|m| m.contains("action.mock_policy_error"))
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("greater than the maximum of 5"))
    );

    let packs: Vec<&str> = report.packs().iter().map(String::as_str).collect();
    let expected_packs: Vec<&str> = COUNTS.iter().map(|(p, _)| *p).collect();
    assert_eq!(packs, expected_packs);
    for (pack, counts) in COUNTS {
        let c = report.contents(pack);
        let got = [
            c.actions.len(),
            c.rules.len(),
            c.sensors.len(),
            c.trigger_types.len(),
            c.policies.len(),
            c.aliases.len(),
        ];
        assert_eq!(&got, counts, "resource counts of pack {pack}");
    }
}

#[test]
fn tolerated_problems_are_warnings() {
    let dir = corpus();
    let report = load(&LoadOptions::default().packs_dir(dir.join("packs")));
    let count = |needle: &str| {
        report
            .diagnostics
            .iter()
            .filter(|d| !d.is_error() && d.message.contains(needle))
            .count()
    };
    // Parameters whose default does not match their type (42 in actions, 4 in config
    // schemas), or that have no type even after the runner's definition is merged in (8 in
    // actions, 1 in a config schema): StackStorm registers them, so they load, with a warning.
    assert_eq!(count("is not of its type"), 42 + 4);
    assert_eq!(count("has no `type`"), 8 + 1);
    // Misspelled keywords inside nested schemas (aws `roles`, pagerduty `item`).
    assert_eq!(count("unknown keyword"), 2);
    let aws = report.catalog.action("aws.rds_create_db_instance");
    assert!(
        aws.is_some(),
        "an action with a mistyped default still loads"
    );
}

#[test]
fn corpus_content_is_read_as_stackstorm_reads_it() {
    let dir = corpus();
    let report = load(
        &LoadOptions::default()
            .packs_dir(dir.join("packs"))
            .configs_dir(dir.join("configs")),
    );
    let cat = &report.catalog;

    // Ref resolution: explicit `ref`, else the directory name.
    assert!(cat.pack("dummy_pack_6_ref").is_some());
    assert!(cat.pack("dummy_pack_7").is_some());

    // Actions get runner and action parameters merged.
    let echo = cat.action("core.echo").unwrap();
    assert_eq!(echo.runner_type, "local-shell-cmd");
    assert!(echo.schema.is_immutable("cmd"));
    assert!(
        echo.schema.has_property("timeout"),
        "runner parameter merged in"
    );
    assert_eq!(echo.origin.metadata_file, "actions/echo.yaml");
    let sendmail = cat.action("core.sendmail").unwrap();
    let positions: Vec<&str> = sendmail
        .schema
        .positional()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(positions[..3], ["sendmail_binary", "from", "to"]);

    // Rules are disabled unless `enabled: true`; criteria are parsed.
    let rule = cat.rule("examples.sample_rule_with_webhook").unwrap();
    assert_eq!(rule.trigger.trigger_type, "core.st2.webhook");
    assert!(!rule.criteria.is_empty());

    // Sensors declare trigger types in their pack.
    let k8s = cat
        .sensors()
        .find(|s| s.pack() == "kubernetes")
        .expect("kubernetes sensors");
    assert!(
        k8s.trigger_types
            .iter()
            .all(|t| t.starts_with("kubernetes."))
    );

    // Policies get their type's defaults.
    let policy = cat.policy("dummy_pack_1.test_policy_1").unwrap();
    assert_eq!(policy.parameters["action"], "delay");

    // Aliases keep both format forms.
    assert!(
        cat.aliases()
            .any(|a| a.formats.iter().any(|f| f.representation.len() > 1
                || f.display.as_deref() != f.representation.first().map(String::as_str)))
    );

    // A `|` block ending the file without a newline has no final newline (as in PyYAML).
    let alias = cat.alias("azure.get_scale_size").unwrap();
    let format = alias.result.as_ref().unwrap()["format"].as_str().unwrap();
    assert!(format.ends_with("{% endif %}"), "{format:?}");

    // Config values are validated and kept.
    assert!(cat.config("dummy_pack_1").is_some());
    assert!(
        cat.config("dummy_pack_6_ref").is_none(),
        "its config is rejected"
    );
    assert!(cat.config_schema("aws").is_some());
}

/// What a load produced, in a comparable form: every diagnostic, and per resource its ref with
/// what the API presents of it.
fn loaded_form(threads: usize) -> (Vec<st2_core::diagnostic::Diagnostic>, Vec<String>) {
    let dir = corpus();
    let mut options = LoadOptions::default()
        .packs_dir(dir.join("packs"))
        .configs_dir(dir.join("configs"));
    options.threads = threads;
    let report = load(&options);
    let cat = &report.catalog;
    let mut resources = Vec::new();
    for a in cat.actions() {
        resources.push(format!(
            "action {} {} {:?} {} {} {} {}",
            a.reference,
            a.origin.metadata_file,
            a.description,
            serde_json::to_string(&*a.parameters).unwrap(),
            serde_json::to_string(a.schema.properties()).unwrap(),
            serde_json::to_string(&a.output_schema).unwrap(),
            serde_json::to_string(&a.notify).unwrap(),
        ));
    }
    resources.extend(
        cat.rules()
            .map(|r| format!("rule {} {:?}", r.reference, r.origin)),
    );
    resources.extend(
        cat.sensors()
            .map(|s| format!("sensor {} {:?}", s.reference, s.origin)),
    );
    resources.extend(
        cat.trigger_types()
            .map(|t| format!("trigger type {} {:?}", t.reference, t.parameters_schema)),
    );
    resources.extend(cat.policies().map(|p| format!("policy {}", p.reference)));
    resources.extend(cat.aliases().map(|a| format!("alias {}", a.reference)));
    resources.extend(cat.packs().map(|p| format!("pack {}", p.meta.reference)));
    (report.diagnostics, resources)
}

#[test]
fn loading_on_several_threads_gives_what_one_thread_gives() {
    let (one_diagnostics, one) = loaded_form(1);
    let (many_diagnostics, many) = loaded_form(4);
    assert!(one.len() > 4800, "{} resources", one.len());
    assert_eq!(one_diagnostics, many_diagnostics);
    assert_eq!(one, many);
}
