//! Shared helpers: the fixture pack, run contexts, and an output sink that records lines.

#![allow(dead_code)]

pub mod http_server;
pub mod sshd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use st2_core::builtin;
use st2_core::catalog::Catalog;
use st2_core::clock::SystemClock;
use st2_core::expr::jinja::{Jinja, JinjaConfig, RenderContext};
use st2_core::expr::shell::render_shell_command;
use st2_core::loader::{LoadOptions, load};
use st2_core::runner::{Cancellation, OutputSink, RunContext};
use st2_core::store::OutputType;

/// Records every chunk it receives, in order.
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Vec<(OutputType, String)>>);

impl OutputSink for Recorder {
    fn emit(&self, output_type: OutputType, data: &str) {
        self.0
            .lock()
            .expect("not poisoned")
            .push((output_type, data.to_owned()));
    }
}

impl Recorder {
    /// The chunks so far.
    pub fn chunks(&self) -> Vec<(OutputType, String)> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// The fixture pack copied into a fresh directory (scripts are not executable there, as in a
/// pack just unpacked), loaded with the built-in `core` pack.
pub struct Packs {
    pub dir: tempfile::TempDir,
    pub catalog: Catalog,
}

impl Packs {
    pub fn load() -> Packs {
        Self::load_from("tests/fixtures/packs")
    }

    /// The packs in `source` (relative to the crate) copied and loaded the same way.
    pub fn load_from(source: &str) -> Packs {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
        copy_dir(&source, dir.path());
        let report = load(&LoadOptions::default().packs_dir(dir.path()));
        assert_eq!(report.error_count(), 0, "{:?}", report.diagnostics);
        Packs {
            catalog: report.catalog,
            dir,
        }
    }

    pub fn pack_dir(&self, pack: &str) -> PathBuf {
        self.dir.path().join(pack)
    }

    /// A context for `action` with these runner and action parameters.
    pub fn context(
        &self,
        action: &str,
        runner_parameters: Value,
        parameters: Value,
    ) -> (RunContext, Arc<Recorder>) {
        let action = self
            .catalog
            .action(action)
            .unwrap_or_else(|| panic!("no action {action}"))
            .clone();
        let runner_type = builtin::runner_types()
            .into_iter()
            .find(|r| r.name == action.runner_type)
            .expect("a built-in runner type");
        let recorder = Arc::new(Recorder::default());
        let pack_dir = (action.pack() != "core").then(|| self.pack_dir(action.pack()));
        let config = self.catalog.resolved_config(action.pack());
        let mut env = BTreeMap::new();
        env.insert("ST2_ACTION_PACK_NAME".to_owned(), action.pack().to_owned());
        env.insert("ST2_ACTION_EXECUTION_ID".to_owned(), "exec-1".to_owned());
        let ctx = RunContext {
            execution_id: "exec-1".to_owned(),
            action,
            runner_type: Arc::new(runner_type),
            parameters: object(parameters),
            runner_parameters: object(runner_parameters),
            context: Map::new(),
            pack_dir,
            config,
            env,
            shell_values: BTreeMap::new(),
            output: recorder.clone(),
            cancel: Cancellation::never(),
            clock: Arc::new(SystemClock),
            datastore: None,
            services: None,
            resume: None,
        };
        (ctx, recorder)
    }

    /// A context for a `local-shell-cmd` action whose `cmd` template is rendered the way the
    /// engine renders it: values as environment variables.
    pub fn cmd_context(
        &self,
        action: &str,
        template: &str,
        mut runner_parameters: Value,
        parameters: Value,
    ) -> (RunContext, Arc<Recorder>) {
        let jinja = Jinja::new(JinjaConfig::default());
        let cmd = render_shell_command(
            &jinja,
            template,
            &RenderContext::new(object(parameters.clone())),
        )
        .expect("cmd renders");
        if let Value::Object(map) = &mut runner_parameters {
            map.insert("cmd".to_owned(), Value::String(cmd.script));
        }
        let (mut ctx, recorder) = self.context(action, runner_parameters, parameters);
        ctx.shell_values = cmd.values;
        (ctx, recorder)
    }
}

pub fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => panic!("not an object: {other}"),
    }
}

/// Copy `from` into `to` recursively, every file mode 0644 (scripts not executable).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
            let mut perms = std::fs::metadata(&target).expect("meta").permissions();
            use std::os::unix::fs::PermissionsExt;
            perms.set_mode(0o644);
            std::fs::set_permissions(&target, perms).expect("chmod");
        }
    }
}
