//! `python-script`: runs a pack's Python action class unchanged (StackStorm's
//! `contrib/runners/python_runner`), and Python sensors ([`PythonSensorFactory`]).
//!
//! Each execution starts `python -u main.py action` from a small package embedded in this
//! crate (`st2-runners/python/`: `st2common.runners.base_action.Action`,
//! `st2reactor.sensor.base.Sensor`/`PollingSensor`, the datastore services), with the pack's
//! `actions/lib` on `PYTHONPATH`. The job (file, parameters, config) and the datastore calls
//! travel over a socket given to the child as standard input; its stdout and stderr stay its
//! own and are streamed and captured as the result's `stdout`/`stderr`.
//!
//! The result is StackStorm's `{stdout, stderr, exit_code, result}` (plus `error` on
//! timeout): `stdout` is not stripped, `result` is what `run()` returned (`"None"` when it
//! raised), and a `(False, data)` return ends `failed` with `data` as the result.

mod channel;
mod sensor;
mod shim;
mod venv;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use st2_core::datastore::Datastore;
use st2_core::expr::python;
use st2_core::runner::{RunContext, RunOutcome, Runner, RunnerError};
use st2_core::store::ExecutionStatus;
use tokio::process::Command;

use crate::local::resolve_entry_point;
use crate::process::{self, Ending};

pub use sensor::{PythonSensor, PythonSensorFactory};
pub use venv::PackEnvironment;

/// StackStorm's default `timeout` of `python-script`, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 600;

/// The exit code of an action whose `run()` returned a status that is not a boolean.
const INVALID_STATUS_EXIT_CODE: i64 = 220;

/// Where Python runs.
#[derive(Debug, Clone)]
pub struct PythonSettings {
    /// The system interpreter, for packs without a virtualenv (default `python3` from `PATH`;
    /// resolved once to the real executable, so a pyenv shim costs nothing per execution).
    pub python: PathBuf,
    /// Where the embedded Python package is written (a `python-<hash>` directory per content).
    pub runtime_dir: PathBuf,
    /// Where pack virtualenvs live (`<dir>/<pack>`); `None`: every pack uses the system
    /// interpreter.
    pub virtualenvs_dir: Option<PathBuf>,
    /// Extra arguments for `pip install` (an `--index-url` of a mirror, `--no-index`, …).
    pub pip_args: Vec<String>,
    /// How long creating one pack's virtualenv may take.
    pub pip_timeout: Duration,
}

impl Default for PythonSettings {
    fn default() -> Self {
        Self {
            python: PathBuf::from("python3"),
            runtime_dir: std::env::temp_dir().join("st2-rs-python"),
            virtualenvs_dir: None,
            pip_args: Vec::new(),
            pip_timeout: Duration::from_secs(600),
        }
    }
}

/// What the Python runner and sensors share: settings, the package directory and the resolved
/// system interpreter (each found once).
#[derive(Debug)]
pub(crate) struct PythonEnv {
    settings: PythonSettings,
    package: Mutex<Option<PathBuf>>,
    system_python: Mutex<Option<PathBuf>>,
}

impl PythonEnv {
    fn new(settings: PythonSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            package: Mutex::new(None),
            system_python: Mutex::new(None),
        })
    }

    /// The entry point of the embedded package, written on first use.
    fn entry(&self) -> Result<PathBuf, String> {
        let mut package = self.package.lock().unwrap_or_else(PoisonError::into_inner);
        if package.is_none() {
            let dir = shim::install(&self.settings.runtime_dir).map_err(|e| {
                format!(
                    "cannot write the Python support package to {}: {e}",
                    self.settings.runtime_dir.display()
                )
            })?;
            *package = Some(dir);
        }
        Ok(package
            .as_ref()
            .map(|dir| dir.join(shim::ENTRY))
            .unwrap_or_default())
    }

    /// The pack's virtualenv directory, when virtualenvs are configured.
    fn virtualenv(&self, pack: &str) -> Option<PathBuf> {
        self.settings
            .virtualenvs_dir
            .as_ref()
            .map(|dir| dir.join(pack))
    }

    /// The interpreter for `pack`: its virtualenv's when it has one, else the system one.
    async fn interpreter(&self, pack: &str) -> (PathBuf, Option<PathBuf>) {
        if let Some(venv) = self.virtualenv(pack) {
            let python = venv.join("bin").join("python");
            if python.is_file() {
                return (python, Some(venv));
            }
        }
        if let Some(python) = self
            .system_python
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return (python, None);
        }
        let resolved = Command::new(&self.settings.python)
            .args(["-c", "import sys; print(sys.executable)"])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| self.settings.python.clone());
        *self
            .system_python
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(resolved.clone());
        (resolved, None)
    }

    /// The command running the embedded entry point in `mode` (`action`/`sensor`) for `pack`:
    /// `PYTHONPATH` is the pack's `actions/lib`, `PATH` starts with the virtualenv's `bin`.
    async fn command(&self, pack: &str, pack_dir: &Path, mode: &str) -> Result<Command, String> {
        let entry = self.entry()?;
        let (python, venv) = self.interpreter(pack).await;
        let mut command = Command::new(&python);
        command
            .arg("-u")
            .arg(entry)
            .arg(mode)
            .env("PYTHONPATH", pack_dir.join("actions").join("lib"))
            .kill_on_drop(true);
        if let Some(venv) = venv {
            let mut path = std::ffi::OsString::from(venv.join("bin"));
            if let Some(inherited) = std::env::var_os("PATH") {
                path.push(":");
                path.push(inherited);
            }
            command.env("PATH", path).env("VIRTUAL_ENV", venv);
        }
        Ok(command)
    }
}

/// The channel host of an action: datastore access only.
struct ActionHost(Option<Datastore>);

#[async_trait]
impl channel::Host for ActionHost {
    fn datastore(&self) -> Option<&Datastore> {
        self.0.as_ref()
    }

    async fn dispatch(&self, _: &str, _: Value, _: Option<String>) -> Result<Value, String> {
        Err("actions cannot dispatch triggers".to_owned())
    }
}

/// The runner parameters `python-script` reads.
#[derive(Debug)]
struct PythonParams {
    env: Vec<(String, String)>,
    timeout: Duration,
    timeout_text: String,
    log_level: String,
}

fn bad(name: &str, message: impl Into<String>) -> RunnerError {
    RunnerError::Parameter {
        name: name.to_owned(),
        message: message.into(),
    }
}

impl PythonParams {
    fn read(params: &Map<String, Value>) -> Result<Self, RunnerError> {
        let mut env = Vec::new();
        match params.get("env") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    let Value::String(v) = v else {
                        return Err(bad(
                            "env",
                            format!(
                                "the value of {k:?} must be a string, not {}",
                                python::type_name(v)
                            ),
                        ));
                    };
                    if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                        return Err(bad("env", format!("{k:?} cannot be passed to a process")));
                    }
                    // As StackStorm: the action's PYTHONPATH is the runner's to set.
                    if !k.eq_ignore_ascii_case("pythonpath") {
                        env.push((k.clone(), v.clone()));
                    }
                }
            }
            Some(other) => {
                return Err(bad(
                    "env",
                    format!("must be an object, not {}", python::type_name(other)),
                ));
            }
        }
        let (timeout, timeout_text) = match params.get("timeout") {
            None | Some(Value::Null) => (
                Duration::from_secs(DEFAULT_TIMEOUT),
                DEFAULT_TIMEOUT.to_string(),
            ),
            Some(Value::Number(n)) => {
                let secs = n.as_f64().unwrap_or(0.0).max(0.0);
                let duration = Duration::try_from_secs_f64(secs)
                    .map_err(|e| bad("timeout", format!("{n} seconds: {e}")))?;
                (duration, python::str(&Value::Number(n.clone())))
            }
            Some(other) => {
                return Err(bad(
                    "timeout",
                    format!("must be a number, not {}", python::type_name(other)),
                ));
            }
        };
        let log_level = match params.get("log_level") {
            None | Some(Value::Null) => "DEBUG".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(bad(
                    "log_level",
                    format!("must be a string, not {}", python::type_name(other)),
                ));
            }
        };
        if params
            .get("content_version")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
        {
            return Err(bad(
                "content_version",
                "running a pack at another git revision is not supported yet",
            ));
        }
        Ok(Self {
            env,
            timeout,
            timeout_text,
            log_level,
        })
    }
}

/// `python-script`: runs the `Action` subclass in the action's `entry_point` (under
/// `<pack>/actions/`), calling `run(**parameters)` in a fresh interpreter per execution (the
/// pack's virtualenv's when [`PythonRunner::prepare_pack`] made one).
#[derive(Debug, Clone)]
pub struct PythonRunner {
    env: Arc<PythonEnv>,
}

impl Default for PythonRunner {
    fn default() -> Self {
        Self::new(PythonSettings::default())
    }
}

impl PythonRunner {
    /// A runner with `settings`.
    pub fn new(settings: PythonSettings) -> Self {
        Self {
            env: PythonEnv::new(settings),
        }
    }

    /// The sensor factory running the Python sensors of loaded packs with the same settings
    /// (give it to `EngineBuilder::sensor_factory`).
    pub fn sensor_factory(&self) -> PythonSensorFactory {
        PythonSensorFactory::from_env(self.env.clone())
    }

    /// Prepare `pack` (in `pack_dir`) for running: with a `requirements.txt` and a
    /// virtualenvs directory, create `<virtualenvs_dir>/<pack>` and `pip install` the
    /// requirements into it; the daemon calls this when it registers a pack. Never fails: a
    /// virtualenv that cannot be made (no index reachable, no `venv` module) is reported in
    /// the outcome and the pack keeps the interpreter it had (the system one at first).
    pub async fn prepare_pack(&self, pack: &str, pack_dir: &Path) -> PackEnvironment {
        venv::prepare(&self.env, pack, pack_dir).await
    }
}

#[async_trait]
impl Runner for PythonRunner {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        if ctx.action.entry_point.is_empty() {
            return Err(RunnerError::Failed(format!(
                "Action \"{}\" is missing entry_point attribute",
                ctx.action.reference
            )));
        }
        let params = PythonParams::read(&ctx.runner_parameters)?;
        let Some(pack_dir) = ctx.pack_dir.as_deref() else {
            return Err(RunnerError::EntryPoint {
                path: ctx.action.entry_point.clone(),
                message: "the pack's directory is not known".to_owned(),
            });
        };
        let file = resolve_entry_point(pack_dir, &ctx.action.entry_point)?;
        let pack = ctx.action.pack().to_owned();
        let mut command = self
            .env
            .command(&pack, pack_dir, "action")
            .await
            .map_err(RunnerError::Failed)?;
        command
            .envs(params.env.iter().map(|(k, v)| (k, v)))
            .envs(ctx.env.iter());
        let job = json!({
            "pack": pack,
            "file": file,
            "parameters": ctx.parameters,
            "config": ctx.config,
            "user": ctx.context.get("user"),
            "log_level": params.log_level,
        });
        let host = Arc::new(ActionHost(ctx.datastore.clone()));
        let channel = channel::open(job, host)
            .map_err(|e| RunnerError::Failed(format!("cannot open the action's channel: {e}")))?;
        command.stdin(channel.child_end);
        let run = process::supervise(
            command,
            None,
            params.timeout,
            true,
            ctx.output.clone(),
            &ctx.cancel,
        )
        .await
        .map_err(|e| RunnerError::Failed(format!("could not start Python: {e}")))?;
        let served = channel.served;
        let abort = served.abort_handle();
        let message = match tokio::time::timeout(Duration::from_secs(2), served).await {
            Ok(Ok(message)) => message,
            _ => {
                abort.abort();
                None
            }
        };
        outcome(run, message, &params)
    }
}

/// StackStorm's `_get_output_values` and `_get_final_status`.
fn outcome(
    run: process::ProcessResult,
    message: Option<Map<String, Value>>,
    params: &PythonParams,
) -> Result<RunOutcome, RunnerError> {
    let timed_out = run.ending == Ending::TimedOut;
    let exit_code = if timed_out { -9 } else { run.exit_code };
    if exit_code == INVALID_STATUS_EXIT_CODE && run.ending == Ending::Exited {
        return Err(RunnerError::Failed(run.stderr));
    }
    let (action_status, result) = match message {
        Some(mut m) => (
            m.get("status").and_then(Value::as_bool),
            m.remove("result").unwrap_or(Value::Null),
        ),
        None => (None, Value::String("None".to_owned())),
    };
    let mut output = Map::new();
    output.insert("stdout".into(), Value::String(run.stdout));
    output.insert("stderr".into(), Value::String(run.stderr));
    output.insert("exit_code".into(), json!(exit_code));
    output.insert("result".into(), result);
    if timed_out {
        output.insert(
            "error".into(),
            Value::String(format!(
                "Action failed to complete in {} seconds",
                params.timeout_text
            )),
        );
    }
    let status = match run.ending {
        Ending::Canceled => ExecutionStatus::Canceled,
        Ending::TimedOut => ExecutionStatus::Timeout,
        Ending::Exited => match (action_status, exit_code) {
            (Some(true), 0) | (None, 0) => ExecutionStatus::Succeeded,
            _ => ExecutionStatus::Failed,
        },
    };
    Ok(RunOutcome::with_status(status, Value::Object(output)))
}
