//! The pack loader reads every content type the way StackStorm does, and gives each kind of bad
//! input a diagnostic with file, line and column while everything else keeps loading.

use std::path::{Path, PathBuf};

use serde_json::json;
use st2_core::diagnostic::{Diagnostic, Severity};
use st2_core::loader::{LoadOptions, LoadReport, load};
use st2_core::model::{RuleKind, RunnerType};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A temporary packs directory built file by file.
struct Packs {
    dir: tempfile::TempDir,
}

impl Packs {
    fn new() -> Self {
        Packs {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A pack with a valid manifest.
    fn pack(&self, name: &str) -> &Self {
        self.file(
            &format!("{name}/pack.yaml"),
            &format!("name: {name}\ndescription: test\nversion: 0.1.0\nauthor: tests\n"),
        )
    }

    fn file(&self, rel: &str, text: &str) -> &Self {
        self.bytes(rel, text.as_bytes())
    }

    fn bytes(&self, rel: &str, bytes: &[u8]) -> &Self {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        self
    }

    fn load(&self) -> LoadReport {
        load(&LoadOptions::default().packs_dir(self.path()))
    }
}

/// The diagnostics of one file (path relative to the packs directory).
fn diags<'r>(report: &'r LoadReport, root: &Path, rel: &str) -> Vec<&'r Diagnostic> {
    let file = root.join(rel);
    report
        .diagnostics
        .iter()
        .filter(|d| d.file == file)
        .collect()
}

/// The only diagnostic of a file, which must exist.
fn only<'r>(report: &'r LoadReport, root: &Path, rel: &str) -> &'r Diagnostic {
    let d = diags(report, root, rel);
    assert_eq!(d.len(), 1, "expected one diagnostic for {rel}, got {d:#?}");
    d[0]
}

const ACTION: &str = "name: a\nrunner_type: local-shell-cmd\n";

// ---------------------------------------------------------------- a valid pack of every kind

#[test]
fn a_pack_with_every_content_type_loads_without_diagnostics() {
    let f = fixtures();
    let report = load(
        &LoadOptions::default()
            .packs_dir(f.join("packs"))
            .configs_dir(f.join("configs")),
    );
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    assert_eq!(report.packs(), ["good_pack"]);
    let c = report.contents("good_pack");
    assert_eq!(
        c.actions,
        [
            "good_pack.backup",
            "good_pack.deploy",
            "good_pack.greet",
            "good_pack.lookup"
        ]
    );
    assert_eq!(
        c.trigger_types,
        [
            "good_pack.deployed",
            "good_pack.message",
            "good_pack.queue_event"
        ]
    );
    assert_eq!(c.sensors, ["good_pack.QueueWatcher"]);
    assert_eq!(
        c.rules,
        [
            "good_pack.every_minute",
            "good_pack.fallback",
            "good_pack.on_webhook"
        ]
    );
    assert_eq!(
        c.policies,
        ["good_pack.backup.retry", "good_pack.greet.concurrency"]
    );
    assert_eq!(c.aliases, ["good_pack.greet"]);
    let s = report.summary();
    assert_eq!((s.packs, s.actions, s.errors, s.warnings), (1, 4, 0, 0));

    let cat = &report.catalog;
    let pack = cat.pack("good_pack").unwrap();
    assert_eq!(pack.meta.version, "1.2.0");
    assert!(!pack.builtin);

    // Action: runner parameters merged, an overridden runner default wins.
    let greet = cat.action("good_pack.greet").unwrap();
    assert_eq!(greet.schema.property("timeout").unwrap()["default"], 10);
    assert_eq!(greet.schema.property("timeout").unwrap()["type"], "integer");
    assert!(greet.schema.is_immutable("cmd"));
    let cleaned = greet.schema.validate(&json!({})).unwrap();
    assert_eq!(cleaned["who"], "world");
    assert!(greet.schema.validate(&json!({"nope": 1})).is_err());

    let backup = cat.action("good_pack.backup").unwrap();
    assert_eq!(
        backup.schema.positional(),
        [("source", 0.0), ("target", 1.0)]
    );
    assert_eq!(
        backup.schema.secret_names().collect::<Vec<_>>(),
        ["sudo_password", "password"]
    );
    let notify = backup.notify.as_ref().unwrap();
    assert_eq!(notify.on_failure.as_ref().unwrap().routes, ["ops"]);
    assert_eq!(backup.tags[0].name, "team");

    let lookup = cat.action("good_pack.lookup").unwrap();
    assert_eq!(lookup.output_schema["properties"]["value"]["secret"], true);
    assert!(cat.action("good_pack.deploy").unwrap().is_workflow());

    // Sensor and its trigger types.
    let sensor = cat.sensor("good_pack.QueueWatcher").unwrap();
    assert_eq!(sensor.poll_interval, Some(30.0));
    assert_eq!(sensor.origin.metadata_file, "sensors/queue_watcher.yaml");
    assert!(
        cat.trigger_type("good_pack.queue_event")
            .unwrap()
            .takes_parameters()
    );
    assert!(
        !cat.trigger_type("good_pack.message")
            .unwrap()
            .takes_parameters()
    );

    // Rules.
    let on_webhook = cat.rule("good_pack.on_webhook").unwrap();
    assert!(on_webhook.enabled);
    assert_eq!(on_webhook.trigger.parameters["url"], "greet");
    assert_eq!(on_webhook.criteria.len(), 3);
    assert_eq!(
        on_webhook.criteria["trigger.body.tags"]["pattern"]["item.name"]["pattern"],
        "urgent"
    );
    assert!(
        !cat.rule("good_pack.every_minute").unwrap().enabled,
        "disabled unless enabled"
    );
    assert_eq!(
        cat.rule("good_pack.fallback").unwrap().kind,
        RuleKind::Backstop
    );

    // Policies get their type's defaults.
    let concurrency = cat.policy("good_pack.greet.concurrency").unwrap();
    assert_eq!(concurrency.parameters["action"], "delay");

    // Alias, both format forms.
    let alias = cat.alias("good_pack.greet").unwrap();
    assert_eq!(alias.formats[0].representation, ["greet {{ who }}"]);
    assert_eq!(alias.formats[1].representation.len(), 2);

    // Config schema and values.
    let schema = cat.config_schema("good_pack").unwrap();
    assert!(schema.attributes.contains_key("api_token"));
    let config = cat.config("good_pack").unwrap();
    assert_eq!(config.values["api_url"], "https://service.example.invalid");
}

#[test]
fn the_core_pack_is_built_in_and_a_directory_may_replace_it() {
    let report = load(&LoadOptions::default());
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    assert!(report.packs().is_empty());
    let core = report.catalog.pack("core").unwrap();
    assert!(core.builtin);
    for action in [
        "core.local",
        "core.local_sudo",
        "core.remote",
        "core.remote_sudo",
        "core.http",
        "core.noop",
        "core.echo",
        "core.inject_trigger",
        "core.pause",
        "core.ask",
        "core.uuid",
        "core.error",
        "core.announcement",
        "core.sendmail",
    ] {
        assert!(report.catalog.action(action).is_some(), "{action}");
    }
    assert!(report.catalog.trigger_type("core.st2.webhook").is_some());
    assert!(report.catalog.policy_type("action.retry").is_some());
    assert!(report.catalog.runner_type("winrm-ps-script").is_some());

    let packs = Packs::new();
    packs
        .pack("core")
        .file("core/actions/only.yaml", "name: only\nrunner_type: noop\n");
    let report = packs.load();
    assert!(report.catalog.action("core.only").is_some());
    assert!(
        report.catalog.action("core.local").is_none(),
        "the directory replaced it"
    );
    assert!(!report.catalog.pack("core").unwrap().builtin);
    assert!(report.catalog.trigger_type("core.st2.webhook").is_some());
}

#[test]
fn runners_written_in_rust_can_be_registered_once() {
    let packs = Packs::new();
    packs
        .pack("p")
        .file("p/actions/a.yaml", "name: a\nrunner_type: my-runner\n");
    let runner = RunnerType::new("my-runner", "mine");
    let report = load(
        &LoadOptions::default()
            .packs_dir(packs.path())
            .runner_type(runner.clone()),
    );
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    assert!(report.catalog.action("p.a").is_some());

    let report = load(
        &LoadOptions::default()
            .runner_type(runner.clone())
            .runner_type(RunnerType::new("noop", "again")),
    );
    assert_eq!(report.error_count(), 1);
    assert!(report.diagnostics[0].message.contains("registered twice"));
}

// ---------------------------------------------------------------- discovery

#[test]
fn only_top_level_yaml_files_are_content() {
    let packs = Packs::new();
    packs
        .pack("p")
        .file("p/actions/a.yml", "name: a\nrunner_type: noop\n")
        .file("p/actions/config.yaml", "not: an action\n")
        .file("p/actions/.hidden.yaml", "not: an action\n")
        .file("p/actions/readme.md", "# not yaml\n")
        .file("p/actions/workflows/wf.yaml", "version: 1.0\n")
        .file("p/actions/chains/c.yaml", "chain: []\n");
    let report = packs.load();
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    assert_eq!(report.contents("p").actions, ["p.a"]);
    let a = report.catalog.action("p.a").unwrap();
    assert_eq!(a.origin.metadata_file, "actions/a.yml");
}

#[test]
fn the_first_packs_directory_wins_and_refs_must_be_unique() {
    let first = Packs::new();
    first
        .pack("p")
        .file("p/actions/a.yaml", "name: a\nrunner_type: noop\n");
    let second = Packs::new();
    second
        .pack("p")
        .file("p/actions/b.yaml", "name: b\nrunner_type: noop\n");
    second.file(
        "other/pack.yaml",
        "ref: p\nname: other\ndescription: d\nversion: 0.1.0\nauthor: a\n",
    );
    let report = load(
        &LoadOptions::default()
            .packs_dir(first.path())
            .packs_dir(second.path()),
    );
    assert_eq!(report.contents("p").actions, ["p.a"]);
    let dup = only(&report, second.path(), "p/pack.yaml");
    assert_eq!(dup.severity, Severity::Warning);
    assert!(dup.message.contains("already found"));
    let clash = only(&report, second.path(), "other/pack.yaml");
    assert!(
        clash.is_error() && clash.message.contains("already used"),
        "{clash}"
    );
}

#[test]
fn a_missing_packs_directory_is_an_error() {
    let report = load(&LoadOptions::default().packs_dir("/nonexistent/packs"));
    assert_eq!(report.error_count(), 1);
    assert!(
        report.diagnostics[0]
            .message
            .contains("cannot read packs directory")
    );
}

#[test]
fn single_pack_directories_can_be_given() {
    let packs = Packs::new();
    packs
        .pack("p")
        .file("p/actions/a.yaml", "name: a\nrunner_type: noop\n");
    let report = load(&LoadOptions::default().pack_dir(packs.path().join("p")));
    assert_eq!(report.packs(), ["p"]);
    let report = load(&LoadOptions::default().pack_dir(packs.path()));
    assert_eq!(report.error_count(), 1);
    assert!(report.diagnostics[0].message.contains("no pack.yaml"));
}

// ---------------------------------------------------------------- YAML problems

#[test]
fn yaml_problems_name_the_file_and_line_and_hide_nothing_else() {
    let packs = Packs::new();
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for n in 'b'..='j' {
        bomb.push_str(&format!(
            "{n}: &{n} [{0}, {0}, {0}, {0}, {0}, {0}, {0}, {0}, {0}, {0}]\n",
            format_args!("*{prev}")
        ));
        prev = n;
    }
    packs
        .pack("p")
        .file("p/actions/good.yaml", "name: good\nrunner_type: noop\n")
        .file(
            "p/actions/syntax.yaml",
            "name: s\nparameters: [a, b\nrunner_type: noop\n",
        )
        .file("p/actions/bomb.yaml", &bomb)
        .file(
            "p/actions/big.yaml",
            &format!(
                "name: big\nrunner_type: noop\ndescription: {}\n",
                "x".repeat(2 * 1024 * 1024)
            ),
        )
        .bytes(
            "p/actions/latin1.yaml",
            b"name: caf\xe9\nrunner_type: noop\n",
        )
        .file(
            "p/actions/dup.yaml",
            "name: dup\nrunner_type: noop\nname: dup\n",
        )
        .file("p/actions/empty.yaml", "")
        .file("p/actions/list.yaml", "- name: x\n")
        .file(
            "p/actions/two.yaml",
            "name: a\nrunner_type: noop\n---\nname: b\n",
        );
    let report = packs.load();
    let root = packs.path();

    assert!(
        report.catalog.action("p.good").is_some(),
        "good files still load"
    );
    let syntax = only(&report, root, "p/actions/syntax.yaml");
    assert!(syntax.is_error() && syntax.message.starts_with("invalid YAML"));
    assert!(syntax.line >= 2, "{syntax}");
    let bomb = only(&report, root, "p/actions/bomb.yaml");
    assert!(bomb.is_error() && bomb.message.contains("values"), "{bomb}");
    let big = only(&report, root, "p/actions/big.yaml");
    assert!(
        big.is_error() && big.message.contains("larger than the 1048576-byte limit"),
        "{big}"
    );
    let latin1 = only(&report, root, "p/actions/latin1.yaml");
    assert!(
        latin1.is_error() && latin1.message.contains("UTF-8"),
        "{latin1}"
    );
    assert_eq!((latin1.line, latin1.column), (1, 10));
    let dup = only(&report, root, "p/actions/dup.yaml");
    assert_eq!(dup.severity, Severity::Warning);
    assert_eq!((dup.line, dup.column), (3, 1));
    assert!(report.catalog.action("p.dup").is_some());
    let empty = only(&report, root, "p/actions/empty.yaml");
    assert!(empty.is_error() && empty.message.contains("empty"));
    let list = only(&report, root, "p/actions/list.yaml");
    assert!(
        list.is_error() && list.message.contains("must be a mapping, not a list"),
        "{list}"
    );
    let two = only(&report, root, "p/actions/two.yaml");
    assert!(two.is_error() && two.message.contains("more than one YAML document"));
}

#[test]
fn the_file_size_cap_is_configurable() {
    let packs = Packs::new();
    packs.pack("p").file("p/actions/a.yaml", ACTION);
    let mut options = LoadOptions::default().packs_dir(packs.path());
    options.limits.max_bytes = 16;
    let report = load(&options);
    assert!(
        report
            .diagnostics
            .iter()
            .any(|d| d.message.contains("16-byte limit"))
    );
}

#[test]
fn yaml_bombs_and_deep_nesting_never_hang_or_panic() {
    let packs = Packs::new();
    packs
        .pack("p")
        .file(
            "p/rules/deep.yaml",
            &format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000)),
        )
        .file(
            "p/rules/deep_map.yaml",
            &(0..500)
                .map(|i| format!("{}a:\n", "  ".repeat(i)))
                .collect::<String>(),
        );
    let report = packs.load();
    assert_eq!(report.error_count(), 2, "{:#?}", report.diagnostics);
    let deep_map = only(&report, packs.path(), "p/rules/deep_map.yaml");
    assert!(
        deep_map.message.contains("nesting deeper than 64 levels"),
        "{deep_map}"
    );
}

// ---------------------------------------------------------------- pack.yaml

#[test]
fn manifest_problems() {
    let packs = Packs::new();
    packs
        .file(
            "badver/pack.yaml",
            "name: badver\ndescription: d\nversion: 1.0\nauthor: a\n",
        )
        .file("badver/actions/a.yaml", "name: a\nrunner_type: noop\n")
        .file(
            "Bad-Name/pack.yaml",
            "name: Also Bad\ndescription: d\nversion: 0.1.0\nauthor: a\n",
        )
        .file("missing/pack.yaml", "name: missing\n");
    let report = packs.load();
    let root = packs.path();
    let badver = only(&report, root, "badver/pack.yaml");
    assert!(
        badver.message.contains("`1.0` is not a semantic version"),
        "{badver}"
    );
    assert_eq!((badver.line, badver.column), (3, 10));
    assert!(
        report.catalog.action("badver.a").is_some(),
        "content of a pack with a broken manifest is still loaded and checked"
    );
    let bad_name = diags(&report, root, "Bad-Name/pack.yaml");
    assert!(
        bad_name
            .iter()
            .any(|d| d.message.contains("not a valid ref"))
    );
    let missing = diags(&report, root, "missing/pack.yaml");
    let messages: Vec<_> = missing.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "required field `description` is missing",
            "required field `version` is missing",
            "required field `author` is missing"
        ]
    );
}

// ---------------------------------------------------------------- actions

#[test]
fn action_problems() {
    let packs = Packs::new();
    packs
        .pack("p")
        .file("p/actions/unknown_field.yaml", "name: a1\nrunner_type: noop\nrunnr: x\n")
        .file("p/actions/wrong_type.yaml", "name: a2\nrunner_type: noop\nenabled: 'yes'\n")
        .file("p/actions/no_runner.yaml", "name: a3\n")
        .file("p/actions/unknown_runner.yaml", "name: a4\nrunner_type: nope\n")
        .file(
            "p/actions/bad_param.yaml",
            "name: a5\nrunner_type: noop\nparameters:\n  p:\n    type: stringa\n  q:\n    type: string\n    example: 1\n",
        )
        .file(
            "p/actions/override.yaml",
            "name: a6\nrunner_type: local-shell-cmd\nparameters:\n  sudo:\n    type: string\n",
        )
        .file(
            "p/actions/positions.yaml",
            "name: a7\nrunner_type: local-shell-script\nentry_point: x.sh\nparameters:\n  a:\n    type: string\n    position: 0\n  b:\n    type: string\n    position: 2\n",
        )
        .file(
            "p/actions/immutable.yaml",
            "name: a8\nrunner_type: noop\nparameters:\n  a:\n    type: string\n    immutable: true\n",
        )
        .file("p/actions/wrong_pack.yaml", "name: a9\npack: other\nrunner_type: noop\n")
        .file(
            "p/actions/bad_name.yaml",
            "name: a10\nrunner_type: noop\nparameters:\n  bad-name:\n    type: string\n",
        );
    let report = packs.load();
    let root = packs.path();
    let d = only(&report, root, "p/actions/unknown_field.yaml");
    assert_eq!((d.line, d.column), (3, 1));
    assert_eq!(d.message, "unknown field `runnr` in action metadata");
    let d = only(&report, root, "p/actions/wrong_type.yaml");
    assert_eq!(
        d.message,
        "`enabled` must be a boolean, not a string (\"yes\")"
    );
    assert_eq!((d.line, d.column), (3, 10));
    let d = only(&report, root, "p/actions/no_runner.yaml");
    assert_eq!(d.message, "required field `runner_type` is missing");
    let d = only(&report, root, "p/actions/unknown_runner.yaml");
    assert!(d.message.contains("runner type `nope` does not exist"));
    assert_eq!(d.line, 2);
    let d = diags(&report, root, "p/actions/bad_param.yaml");
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d[0].message.contains("type `stringa`") && d[0].line == 5);
    assert!(d[1].message.contains("unknown keyword `example`") && d[1].line == 8);
    let d = only(&report, root, "p/actions/override.yaml");
    assert!(
        d.message
            .contains("`type` of runner parameter `sudo` cannot be overridden")
    );
    let d = only(&report, root, "p/actions/positions.yaml");
    assert!(d.message.contains("not contiguous"));
    let d = only(&report, root, "p/actions/immutable.yaml");
    assert!(d.message.contains("needs a default"));
    let d = only(&report, root, "p/actions/wrong_pack.yaml");
    assert!(d.message.contains("its `pack` field says `other`"));
    let d = only(&report, root, "p/actions/bad_name.yaml");
    assert!(d.message.contains("`bad-name` is invalid"));
    assert!(report.diagnostics.iter().all(Diagnostic::is_error));
    assert!(report.contents("p").actions.is_empty());
}

#[test]
fn many_actions_are_kept_packed_and_compiled_when_used() {
    // More action files than one loader job packs together, so the pack's actions span
    // several packed chunks; one name is defined twice, in different chunks.
    let packs = Packs::new();
    packs.pack("many");
    for i in 0..75 {
        packs.file(
            &format!("many/actions/a{i:02}.yaml"),
            &format!(
                "name: act{i:02}\nrunner_type: local-shell-cmd\ndescription: action {i}\n\
                 parameters:\n  count:\n    type: integer\n    default: {i}\n  cmd:\n    default: echo {i}\n"
            ),
        );
    }
    packs.file(
        "many/actions/z_again.yaml",
        "name: act03\nrunner_type: noop\ndescription: the later one\n",
    );
    let report = packs.load();
    let root = packs.path();
    let d = only(&report, root, "many/actions/z_again.yaml");
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(
        d.message,
        "action `many.act03` is also defined in actions/a03.yaml; this definition replaces it"
    );
    assert_eq!((d.line, d.column), (1, 7));
    assert_eq!(report.error_count(), 0, "{:#?}", report.diagnostics);

    let cat = &report.catalog;
    assert_eq!(report.contents("many").actions.len(), 75);
    for i in (0..75).filter(|i| *i != 3) {
        let reference = format!("many.act{i:02}");
        assert!(cat.has_action(&reference));
        let a = cat.action(&reference).unwrap();
        assert_eq!(a.reference, reference);
        assert_eq!(a.name, format!("act{i:02}"));
        assert_eq!(a.pack(), "many");
        assert_eq!(a.origin.metadata_file, format!("actions/a{i:02}.yaml"));
        assert_eq!(
            a.description.as_deref(),
            Some(format!("action {i}").as_str())
        );
        assert_eq!(a.runner_type, "local-shell-cmd");
        assert_eq!(a.parameters["count"]["default"], json!(i));
        // The runner's parameters are merged in, the action's defaults winning.
        let merged = a.schema.properties();
        assert_eq!(merged["cmd"]["default"], json!(format!("echo {i}")));
        assert!(merged.contains_key("sudo"));
        // Compiled once: the same action on every lookup.
        assert!(std::sync::Arc::ptr_eq(a, cat.action(&reference).unwrap()));
    }
    let again = cat.action("many.act03").unwrap();
    assert_eq!(again.runner_type, "noop");
    assert_eq!(again.description.as_deref(), Some("the later one"));
    assert_eq!(again.origin.metadata_file, "actions/z_again.yaml");

    // Listing compiles what is not compiled yet, in ref order, without keeping it.
    let listed: Vec<_> = cat.actions().filter(|a| a.pack() == "many").collect();
    assert_eq!(listed.len(), 75);
    assert!(listed.windows(2).all(|w| w[0].reference < w[1].reference));
    assert_eq!(listed[40].parameters["count"]["default"], json!(40));
    assert_eq!(
        cat.action_refs().filter(|r| r.starts_with("many.")).count(),
        75
    );
    assert!(!cat.has_action("many.nope") && cat.action("many.nope").is_none());

    // A copy of the catalog, and taking actions out of it.
    let mut copy = cat.clone();
    let removed = copy.remove_action("many.act70").unwrap();
    assert_eq!(removed.parameters["count"]["default"], json!(70));
    assert!(copy.action("many.act70").is_none() && cat.action("many.act70").is_some());
    let contents = copy.remove_pack("many");
    assert_eq!(contents.actions.len(), 74);
    assert!(copy.action("many.act00").is_none() && copy.action("core.local").is_some());
}

#[test]
fn tolerated_action_problems_are_warnings() {
    let packs = Packs::new();
    packs.pack("p").file(
        "p/actions/a.yaml",
        "name: a\nrunner_type: noop\nparameters:\n  port:\n    type: string\n    default: 3306\n  loose:\n    description: no type\n  choice:\n    type: string\n    enum: [x, y]\n    default: z\n  nested:\n    type: object\n    properties:\n      x:\n        type: array\n        item: {type: string}\n",
    );
    let report = packs.load();
    assert_eq!(report.error_count(), 0, "{:#?}", report.diagnostics);
    let messages: Vec<_> = report
        .diagnostics
        .iter()
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(messages.len(), 4, "{messages:#?}");
    assert!(messages[0].contains("3306"));
    assert!(messages[1].contains("no `type`"));
    assert!(messages[2].contains("not one of its `enum` values"));
    assert!(messages[3].contains("unknown keyword `item` is ignored (did you mean `items`?)"));
    assert!(report.catalog.action("p.a").is_some());
}

// ---------------------------------------------------------------- rules

#[test]
fn rule_problems() {
    let packs = Packs::new();
    let rule = |extra: &str| {
        format!(
            "name: r\ntrigger:\n  type: core.st2.webhook\n  parameters:\n    url: x\naction:\n  ref: core.noop\n{extra}"
        )
    };
    packs
        .pack("p")
        .file("p/rules/operator.yaml", &rule("criteria:\n  trigger.a:\n    type: equalz\n    pattern: 1\n"))
        .file("p/rules/pattern.yaml", &rule("criteria:\n  trigger.a:\n    type: exists\n"))
        .file("p/rules/criterion_type.yaml", &rule("criteria:\n  trigger.a: 5\n"))
        .file("p/rules/unknown_field.yaml", &rule("priority: 1\n"))
        .file("p/rules/no_trigger_type.yaml", "name: r\ntrigger:\n  type: nope.event\naction:\n  ref: core.noop\n")
        .file("p/rules/unregistered_type.yaml", "name: r2\ntrigger:\n  type: nope.event\n  parameters: {a: 1}\naction:\n  ref: core.noop\n")
        .file("p/rules/no_url.yaml", "name: r3\ntrigger:\n  type: core.st2.webhook\naction:\n  ref: core.noop\n")
        .file("p/rules/bad_timer.yaml", "name: r4\ntrigger:\n  type: core.st2.IntervalTimer\n  parameters:\n    unit: fortnights\n    delta: 1\naction:\n  ref: core.noop\n")
        .file("p/rules/no_action.yaml", "name: r5\ntrigger:\n  type: core.st2.webhook\n  parameters: {url: y}\naction:\n  ref: nope.act\n")
        .file("p/rules/bad_params.yaml", "name: r6\ntrigger:\n  type: core.st2.webhook\n  parameters: {url: z}\naction:\n  ref: core.local\n  parameters:\n    command: ls\n");
    let report = packs.load();
    let root = packs.path();
    let d = only(&report, root, "p/rules/operator.yaml");
    assert!(d.message.contains("operator `equalz` is not one of"));
    assert_eq!(d.line, 10);
    let d = only(&report, root, "p/rules/pattern.yaml");
    assert!(d.message.contains("no `pattern`"));
    let d = only(&report, root, "p/rules/criterion_type.yaml");
    assert!(d.message.contains("must be a mapping"));
    let d = only(&report, root, "p/rules/unknown_field.yaml");
    assert_eq!(d.message, "unknown field `priority` in a rule");
    let d = only(&report, root, "p/rules/no_trigger_type.yaml");
    assert!(
        d.is_error()
            && d.message
                .contains("trigger type `nope.event` does not exist")
    );
    let d = only(&report, root, "p/rules/unregistered_type.yaml");
    assert_eq!(d.severity, Severity::Warning);
    let d = diags(&report, root, "p/rules/no_url.yaml");
    assert!(d[0].is_error() && d[0].message.contains("url"), "{d:#?}");
    let d = only(&report, root, "p/rules/bad_timer.yaml");
    assert!(d.is_error() && d.message.contains("fortnights"), "{d}");
    assert_eq!(d.line, 5);
    let d = only(&report, root, "p/rules/no_action.yaml");
    assert_eq!(d.severity, Severity::Warning);
    assert!(d.message.contains("action `nope.act` is not loaded"));
    let d = diags(&report, root, "p/rules/bad_params.yaml");
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d.iter().all(|d| d.severity == Severity::Warning));
    assert!(
        d.iter()
            .any(|d| d.message.contains("has no parameter `command`"))
    );
    assert!(
        d.iter()
            .any(|d| d.message.contains("required parameter `cmd`"))
    );
    assert_eq!(report.contents("p").rules, ["p.r2", "p.r5", "p.r6"]);
}

#[test]
fn rules_can_use_trigger_types_and_actions_of_other_packs() {
    let packs = Packs::new();
    packs
        .pack("a")
        .file(
            "a/rules/r.yaml",
            "name: r\nenabled: true\ntrigger:\n  type: b.event\naction:\n  ref: b.act\n",
        )
        .pack("b")
        .file("b/triggers/event.yaml", "name: event\n")
        .file("b/actions/act.yaml", "name: act\nrunner_type: noop\n");
    let report = packs.load();
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    assert!(report.catalog.rule("a.r").unwrap().enabled);
}

// ---------------------------------------------------------------- sensors and trigger types

#[test]
fn sensor_and_trigger_type_problems() {
    let packs = Packs::new();
    packs
        .pack("p")
        .file("p/sensors/no_entry.yaml", "class_name: S1\n")
        .file("p/sensors/fast.yaml", "class_name: S2\nentry_point: s.py\npoll_interval: 1\n")
        .file("p/sensors/extra.yaml", "class_name: S3\nentry_point: s.py\ncolour: blue\ntrigger_types:\n  - name: t\n    shape: round\n")
        .file("p/triggers/no_name.yaml", "description: nameless\n")
        .file("p/triggers/dup.yaml", "name: t\n");
    let report = packs.load();
    let root = packs.path();
    let d = only(&report, root, "p/sensors/no_entry.yaml");
    assert_eq!(d.message, "required field `entry_point` is missing");
    let d = only(&report, root, "p/sensors/fast.yaml");
    assert!(d.message.contains("at least 4 seconds"));
    let d = diags(&report, root, "p/sensors/extra.yaml");
    let messages: Vec<_> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "unknown field `colour` in sensor metadata is ignored",
            "trigger type `p.t` is also defined in triggers/dup.yaml; this definition replaces it",
            "unknown field `shape` in a trigger type is ignored",
        ]
    );
    assert_eq!(
        d[1].line, 5,
        "the duplicate points at the trigger type's name"
    );
    assert!(report.catalog.sensor("p.S3").is_some());
    let d = only(&report, root, "p/triggers/no_name.yaml");
    assert_eq!(d.message, "required field `name` is missing");
}

// ---------------------------------------------------------------- policies and aliases

#[test]
fn policy_and_alias_problems() {
    let packs = Packs::new();
    let policy = |name: &str, ty: &str, params: &str| {
        format!("name: {name}\nresource_ref: p.a\npolicy_type: {ty}\nparameters:\n{params}")
    };
    packs
        .pack("p")
        .file("p/actions/a.yaml", "name: a\nrunner_type: noop\n")
        .file("p/policies/unknown.yaml", &policy("u", "action.nope", "  x: 1\n"))
        .file("p/policies/bad.yaml", &policy("b", "action.retry", "  retry_on: always\n"))
        .file("p/policies/extra.yaml", &policy("e", "action.concurrency", "  threshold: 1\n  colour: red\n"))
        .file("p/policies/one.yaml", &policy("one", "action.concurrency", "  threshold: 1\n"))
        .file("p/policies/two.yaml", &policy("two", "action.concurrency", "  threshold: 2\n"))
        .file("p/policies/orphan.yaml", "name: o\nresource_ref: p.gone\npolicy_type: action.retry\nparameters:\n  retry_on: timeout\n")
        .file("p/aliases/format.yaml", "name: al\naction_ref: p.a\nformats:\n  - 5\n")
        .file("p/aliases/orphan.yaml", "name: al2\naction_ref: p.gone\nformats: ['x']\n");
    let report = packs.load();
    let root = packs.path();
    let d = only(&report, root, "p/policies/unknown.yaml");
    assert!(
        d.message
            .contains("policy type `action.nope` does not exist")
    );
    let d = only(&report, root, "p/policies/bad.yaml");
    assert!(d.message.contains("always"), "{d}");
    assert_eq!(d.line, 5);
    let d = only(&report, root, "p/policies/extra.yaml");
    assert!(d.message.contains("colour"), "{d}");
    assert!(diags(&report, root, "p/policies/one.yaml").is_empty());
    let d = only(&report, root, "p/policies/two.yaml");
    assert!(
        d.is_error()
            && d.message
                .contains("already has a `action.concurrency` policy")
    );
    let d = only(&report, root, "p/policies/orphan.yaml");
    assert_eq!(d.severity, Severity::Warning);
    let d = only(&report, root, "p/aliases/format.yaml");
    assert!(d.is_error() && d.message.contains("a format must be a string"));
    assert_eq!((d.line, d.column), (4, 5));
    let d = only(&report, root, "p/aliases/orphan.yaml");
    assert_eq!(d.severity, Severity::Warning);
}

// ---------------------------------------------------------------- configs and overrides

#[test]
fn config_problems() {
    let packs = Packs::new();
    let schema =
        "key:\n  type: string\n  required: true\nsecret:\n  type: string\n  secret: true\n";
    packs
        .pack("a")
        .file("a/config.schema.yaml", schema)
        .pack("b")
        .file("b/config.schema.yaml", schema)
        .pack("c")
        .file("c/config.schema.yaml", "")
        .file("c/config.yaml", "key: old\n")
        .pack("d")
        .file("d/config.schema.yaml", schema);
    let configs = tempfile::tempdir().unwrap();
    std::fs::write(configs.path().join("a.yaml"), "secret: x\n").unwrap();
    std::fs::write(configs.path().join("b.yaml"), "key: 5\n").unwrap();
    std::fs::write(
        configs.path().join("d.yaml"),
        "key: k\nsecret: \"{{ st2kv.system.s | decrypt_kv }}\"\n",
    )
    .unwrap();
    let report = load(
        &LoadOptions::default()
            .packs_dir(packs.path())
            .configs_dir(configs.path()),
    );
    let d = only(&report, configs.path(), "a.yaml");
    assert!(d.message.contains("\"key\" is a required property"), "{d}");
    let d = only(&report, configs.path(), "b.yaml");
    assert!(d.message.contains("5 is not of type \"string\""), "{d}");
    assert_eq!((d.line, d.column), (1, 6));
    let d = only(&report, configs.path(), "d.yaml");
    assert!(d.message.contains("decrypt_kv"));
    let d = only(&report, packs.path(), "c/config.schema.yaml");
    assert_eq!(d.message, "config schema is empty");
    let d = only(&report, packs.path(), "c/config.yaml");
    assert_eq!(d.severity, Severity::Warning);
}

#[test]
fn overrides_switch_resources_on_and_off() {
    let packs = Packs::new();
    packs
        .pack("p")
        .file("p/actions/a1.yaml", "name: a1\nrunner_type: noop\n")
        .file("p/actions/a2.yaml", "name: a2\nrunner_type: noop\n")
        .file("p/rules/r.yaml", "name: r\ntrigger:\n  type: core.st2.webhook\n  parameters: {url: x}\naction:\n  ref: p.a1\n")
        .file("p/sensors/s.yaml", "class_name: S\nentry_point: s.py\n");
    let overrides = tempfile::tempdir().unwrap();
    std::fs::write(
        overrides.path().join("_global.yaml"),
        "actions:\n  defaults:\n    enabled: false\nsensors:\n  defaults:\n    enabled: false\n",
    )
    .unwrap();
    std::fs::write(
        overrides.path().join("p.yaml"),
        "actions:\n  exceptions:\n    a2:\n      enabled: true\nrules:\n  defaults:\n    enabled: true\n    priority: 1\npolicies: {}\n",
    )
    .unwrap();
    let report = load(
        &LoadOptions::default()
            .packs_dir(packs.path())
            .overrides_dir(overrides.path()),
    );
    let cat = &report.catalog;
    assert!(!cat.action("p.a1").unwrap().enabled);
    assert!(cat.action("p.a2").unwrap().enabled);
    assert!(cat.rule("p.r").unwrap().enabled);
    assert!(!cat.sensor("p.S").unwrap().enabled);
    assert!(
        cat.action("core.local")
            .map(|a| !a.enabled)
            .unwrap_or(false),
        "global applies to core"
    );
    let d = diags(&report, overrides.path(), "p.yaml");
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d[0].is_error() && d[0].message.contains("`priority` cannot be overridden"));
    assert_eq!(d[1].severity, Severity::Warning);
}

// ---------------------------------------------------------------- robustness

#[test]
fn mutated_packs_never_panic_and_keep_loading_the_rest() {
    let seeds: Vec<(String, String)> = [
        "actions/backup.yaml",
        "rules/on_webhook.yaml",
        "sensors/queue_watcher.yaml",
        "policies/backup_retry.yaml",
        "aliases/greet.yaml",
        "config.schema.yaml",
        "pack.yaml",
    ]
    .iter()
    .map(|rel| {
        let text = std::fs::read_to_string(fixtures().join("packs/good_pack").join(rel)).unwrap();
        (rel.to_string(), text)
    })
    .collect();
    let alphabet: &[u8] = b" \n:-[]{}&*!|'\"#0123456789abtrue.";
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..200 {
        let packs = Packs::new();
        packs
            .pack("p")
            .file("p/actions/fine.yaml", "name: fine\nrunner_type: noop\n");
        let (rel, text) = &seeds[round % seeds.len()];
        let mut bytes = text.as_bytes().to_vec();
        for _ in 0..(1 + next() % 6) {
            let at = (next() as usize) % (bytes.len() + 1);
            let byte = alphabet[(next() as usize) % alphabet.len()];
            if at < bytes.len() && next() % 2 == 0 {
                bytes[at] = byte;
            } else {
                bytes.insert(at, byte);
            }
        }
        packs.bytes(&format!("p/{rel}"), &bytes);
        let report = packs.load();
        assert!(
            report.catalog.actions().any(|a| a.name == "fine"),
            "round {round}: {:#?}",
            report.diagnostics
        );
    }
}
