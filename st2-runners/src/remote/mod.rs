//! `remote-shell-cmd` and `remote-shell-script`: run a command, or a pack's script, on hosts
//! over SSH (StackStorm's `contrib/runners/remote_runner` on its Paramiko client).
//!
//! Per host: connect and log in (password, else the `private_key`, else the default key
//! files), for a script create `<dir>/<execution id>` and copy the script (mode 0744) and the
//! pack's `actions/lib` next to it, run `export K='v' … && cd <cwd> && <command>` (inside
//! `sudo -E -- bash -c '…'` with `sudo`), delete the directory. The result maps each host to
//! `{stdout, stderr, return_code, succeeded, failed}`; see [`RemoteShellCommandRunner`].

mod command;
mod ssh;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use st2_core::runner::{Cancellation, OutputSink, RunContext, RunOutcome, Runner, RunnerError};
use st2_core::store::ExecutionStatus;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::command_line::{ShellLine, quote, script_arguments};
use crate::local::{
    auto_parse, current_user, has_incorrect_password_attempts, resolve_entry_point,
    strip_shell_chars, sudo_prompt_user,
};
use crate::parameter::{bad, opt_bool, opt_str, read_env, read_timeout};
use command::{MKDIR_FAILED, Wrapping, full_command, install_script};
use ssh::{Connection, Credentials, Exec, ExecEnd, Output, Pool, PoolKey, SshError, UploadError};

/// StackStorm's default `timeout` of the remote runners, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 60;
/// The SSH port used when neither the host nor the `port` parameter names one.
pub const DEFAULT_PORT: u16 = 22;
/// How long removing a script's directory may take, after the script ended.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the remote runners (StackStorm's `[ssh_runner]` and `[system_user]` options).
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// The SSH user when the `username` parameter is unset; `None` uses the name of the user
    /// this process runs as (StackStorm uses `system_user.user`, `stanley`).
    pub default_user: Option<String>,
    /// Key files tried when neither `password` nor `private_key` is given; `None` tries
    /// `~/.ssh/id_ed25519`, `~/.ssh/id_ecdsa` and `~/.ssh/id_rsa` of this process's user
    /// (StackStorm uses `system_user.ssh_key_file`).
    pub default_key_files: Option<Vec<PathBuf>>,
    /// How many hosts of one execution run at once when `parallel` is set
    /// (`max_parallel_actions`, 50).
    pub max_parallel: usize,
    /// How many SSH connections all executions of these runners may be opening at once.
    pub max_connecting: usize,
    /// Count an execution on several hosts as succeeded when any host succeeded
    /// (`allow_partial_failure`, off).
    pub allow_partial_failure: bool,
    /// How long an idle connection is kept for the next execution on the same host, port and
    /// credential; zero closes every connection when its execution ends.
    pub keep_idle: Duration,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            default_user: None,
            default_key_files: None,
            max_parallel: 50,
            max_connecting: 10,
            allow_partial_failure: false,
            keep_idle: Duration::from_secs(30),
        }
    }
}

/// What both remote runners share: settings, the connect limit and the idle connections.
#[derive(Debug)]
struct Shared {
    settings: RemoteSettings,
    connecting: Semaphore,
    pool: Pool,
}

impl Shared {
    fn new(settings: RemoteSettings) -> Arc<Self> {
        Arc::new(Shared {
            connecting: Semaphore::new(settings.max_connecting.max(1)),
            pool: Pool::new(settings.keep_idle),
            settings,
        })
    }
}

/// `remote-shell-cmd`: runs the `cmd` runner parameter on every host in `hosts`.
///
/// The result maps each host (its name, or `name:port` when two entries share a name) to
/// `{stdout, stderr, return_code, succeeded, failed}` with `stdout` and `stderr` parsed as
/// JSON when they are JSON; a host that timed out has `return_code` −9, `timeout: true`,
/// `error` and `traceback`; one that could not be reached or logged into has `return_code`
/// 255, `error` and `traceback`. The execution succeeds when every host succeeded, times out
/// when every host timed out, and fails otherwise.
#[derive(Debug, Clone)]
pub struct RemoteShellCommandRunner {
    shared: Arc<Shared>,
}

/// `remote-shell-script`: copies the action's `entry_point` (and the pack's `actions/lib`) to
/// `<dir>/<execution id>/` on every host, runs it there with the action parameters as
/// arguments (as `local-shell-script` builds them) and deletes the directory. Results as
/// [`RemoteShellCommandRunner`].
#[derive(Debug, Clone)]
pub struct RemoteShellScriptRunner {
    shared: Arc<Shared>,
}

/// Both remote runners with `settings`, sharing their idle connections and connect limit.
pub fn runners(settings: RemoteSettings) -> (RemoteShellCommandRunner, RemoteShellScriptRunner) {
    let shared = Shared::new(settings);
    (
        RemoteShellCommandRunner {
            shared: shared.clone(),
        },
        RemoteShellScriptRunner { shared },
    )
}

impl RemoteShellCommandRunner {
    /// A runner with `settings` and its own idle connections.
    pub fn new(settings: RemoteSettings) -> Self {
        runners(settings).0
    }
}

impl RemoteShellScriptRunner {
    /// A runner with `settings` and its own idle connections.
    pub fn new(settings: RemoteSettings) -> Self {
        runners(settings).1
    }
}

/// One entry of `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// The key of its result.
    label: String,
    host: String,
    port: u16,
}

/// StackStorm's `split_host_port`: `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6
/// address.
fn split_host_port(entry: &str) -> Result<(String, Option<u16>), String> {
    let port = |text: &str| {
        text.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{entry:?} has an invalid port {text:?}"))
    };
    if entry.parse::<IpAddr>().is_ok() {
        return Ok((entry.to_owned(), None));
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let Some((host, tail)) = rest.split_once(']') else {
            return Err(format!("{entry:?} lacks its closing `]`"));
        };
        return match tail {
            "" => Ok((host.to_owned(), None)),
            _ => match tail.strip_prefix(':') {
                Some(p) => Ok((host.to_owned(), Some(port(p)?))),
                None => Err(format!("{entry:?} is not host, host:port or [host]:port")),
            },
        };
    }
    match entry.rsplit_once(':') {
        Some((host, p)) => Ok((host.to_owned(), Some(port(p)?))),
        None => Ok((entry.to_owned(), None)),
    }
}

/// The `hosts` parameter: comma-separated entries, blanks skipped.
fn read_hosts(params: &Map<String, Value>) -> Result<Vec<Target>, RunnerError> {
    let default_port = match params.get("port") {
        None | Some(Value::Null) => DEFAULT_PORT,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("port", format!("{n} is not a TCP port")))?,
        Some(other) => {
            return Err(bad(
                "port",
                format!(
                    "must be an integer, not {}",
                    st2_core::expr::python::type_name(other)
                ),
            ));
        }
    };
    let text = opt_str(params, "hosts")?.unwrap_or_default();
    let mut targets = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, port) = split_host_port(entry).map_err(|m| bad("hosts", m))?;
        if host.is_empty() {
            return Err(bad("hosts", format!("{entry:?} names no host")));
        }
        targets.push(Target {
            label: entry.to_owned(),
            host,
            port: port.unwrap_or(default_port),
        });
    }
    if targets.is_empty() {
        return Err(bad("hosts", "names no host"));
    }
    // Results are keyed by host name, as StackStorm's; entries sharing a name keep their port.
    let names: Vec<String> = targets.iter().map(|t| t.host.clone()).collect();
    for t in &mut targets {
        if names.iter().filter(|n| **n == t.host).count() == 1 {
            t.label = t.host.clone();
        } else if t.label == t.host {
            t.label = format!("{}:{}", t.host, t.port);
        }
    }
    Ok(targets)
}

/// Who to log in as: `username` (else the settings' or this process's user), and `password`,
/// else `private_key` (material or a path, with `passphrase`), else the default key files.
fn read_credentials(
    params: &Map<String, Value>,
    settings: &RemoteSettings,
) -> Result<Credentials, RunnerError> {
    let user = opt_str(params, "username")?
        .filter(|u| !u.is_empty())
        .or_else(|| settings.default_user.clone())
        .or_else(current_user)
        .ok_or_else(|| bad("username", "is unset and this process's user has no name"))?;
    if let Some(password) = opt_str(params, "password")?.filter(|p| !p.is_empty()) {
        return Ok(Credentials::password(user, password));
    }
    let passphrase = opt_str(params, "passphrase")?.filter(|p| !p.is_empty());
    if let Some(key) = opt_str(params, "private_key")?.filter(|k| !k.is_empty()) {
        let key = ssh::load_key(&key, passphrase.as_deref())
            .map_err(|e| bad("private_key", e.to_string()))?;
        return Ok(Credentials::keys(user, vec![Arc::new(key)]));
    }
    let files = settings
        .default_key_files
        .clone()
        .unwrap_or_else(ssh::default_key_files);
    // Keys that cannot be read (or need a passphrase not given) are skipped, as ssh does.
    let keys: Vec<_> = files
        .iter()
        .filter_map(|f| ssh::load_key_file(f, passphrase.as_deref()).ok())
        .map(Arc::new)
        .collect();
    if keys.is_empty() {
        return Err(bad(
            "private_key",
            format!(
                "neither password nor private_key is given and no default key file is usable \
                 (tried {})",
                if files.is_empty() {
                    "~/.ssh/id_ed25519, ~/.ssh/id_ecdsa, ~/.ssh/id_rsa: none exists".to_owned()
                } else {
                    files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ));
    }
    Ok(Credentials::keys(user, keys))
}

/// Everything one execution needs on every host.
/// `Debug` leaves out the command line (it holds exported values) and the sudo password.
struct Job {
    shared: Arc<Shared>,
    credentials: Credentials,
    /// The full command line.
    command: ShellLine,
    /// The sudo password plus newline, written to the command's standard input.
    stdin: Vec<u8>,
    /// `sudo` without a password runs on a pseudo-terminal (`requiretty`), as StackStorm's.
    pty: bool,
    sudo_password: bool,
    timeout: Duration,
    timeout_text: String,
    /// For a script: what to copy first, and the directory to delete after.
    upload: Option<Upload>,
    cancel: Cancellation,
    /// Where output lines go (one host only, as StackStorm streams).
    sink: Option<Arc<dyn OutputSink>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("credentials", &self.credentials)
            .field("pty", &self.pty)
            .field("sudo_password", &self.sudo_password)
            .field("timeout", &self.timeout)
            .field("upload", &self.upload.as_ref().map(|u| &u.remote_dir))
            .finish_non_exhaustive()
    }
}

/// A script and its libraries, to copy to `<dir>/<execution id>`.
#[derive(Debug)]
struct Upload {
    remote_dir: String,
    /// Remote directories to create inside `remote_dir` (those of `lib/`).
    dirs: Vec<String>,
    /// Remote path, content, mode.
    files: Vec<(String, Vec<u8>, u32)>,
}

/// The parameters both runners read, turned into a [`Job`] minus its command.
struct Common {
    targets: Vec<Target>,
    credentials: Credentials,
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    sudo: bool,
    sudo_password: Option<String>,
    timeout: Duration,
    timeout_text: String,
    parallel: bool,
    kwarg_op: String,
}

impl Common {
    fn read(ctx: &RunContext, settings: &RemoteSettings) -> Result<Self, RunnerError> {
        let params = &ctx.runner_parameters;
        let targets = read_hosts(params)?;
        let (timeout, timeout_text) = read_timeout(params, DEFAULT_TIMEOUT)?;
        let mut env: BTreeMap<String, String> = read_env(params)?.into_iter().collect();
        for (k, v) in ctx.env.iter().chain(&ctx.shell_values) {
            if v.contains('\0') || k.contains('\0') || k.contains('=') || k.is_empty() {
                return Err(RunnerError::Failed(format!(
                    "environment variable {k:?} cannot be passed to a command (NUL or `=`)"
                )));
            }
            env.insert(k.clone(), v.clone());
        }
        let credentials = read_credentials(params, settings)?;
        Ok(Common {
            targets,
            credentials,
            env,
            cwd: opt_str(params, "cwd")?.filter(|c| !c.is_empty()),
            sudo: opt_bool(params, "sudo")?.unwrap_or(false),
            sudo_password: opt_str(params, "sudo_password")?.filter(|p| !p.is_empty()),
            timeout,
            timeout_text,
            parallel: opt_bool(params, "parallel")?.unwrap_or(false),
            kwarg_op: opt_str(params, "kwarg_op")?.unwrap_or_else(|| "--".to_owned()),
        })
    }

    /// The job running `inner` (wrapped as StackStorm wraps it).
    fn job(
        self,
        shared: &Arc<Shared>,
        ctx: &RunContext,
        inner: &ShellLine,
        upload: Option<Upload>,
    ) -> (Job, Vec<Target>, bool) {
        let sudo_password = self.sudo && self.sudo_password.is_some();
        let command = full_command(
            inner,
            &Wrapping {
                env: &self.env,
                cwd: self.cwd.as_deref(),
                sudo: self.sudo,
                sudo_password,
            },
        );
        let stdin = match (&self.sudo_password, self.sudo) {
            (Some(p), true) => format!("{p}\n").into_bytes(),
            _ => Vec::new(),
        };
        let sink = (self.targets.len() == 1).then(|| ctx.output.clone());
        let job = Job {
            shared: shared.clone(),
            credentials: self.credentials,
            command,
            stdin,
            pty: self.sudo && !sudo_password,
            sudo_password,
            timeout: self.timeout,
            timeout_text: self.timeout_text,
            upload,
            cancel: ctx.cancel.clone(),
            sink,
        };
        (job, self.targets, self.parallel)
    }
}

#[async_trait]
impl Runner for RemoteShellCommandRunner {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        let common = Common::read(&ctx, &self.shared.settings)?;
        let Some(cmd) = opt_str(&ctx.runner_parameters, "cmd")? else {
            return Err(bad("cmd", "is required"));
        };
        let (job, targets, parallel) =
            common.job(&self.shared, &ctx, &ShellLine::raw_script(cmd), None);
        Ok(run_everywhere(job, targets, parallel).await)
    }
}

#[async_trait]
impl Runner for RemoteShellScriptRunner {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        if ctx.action.entry_point.is_empty() {
            return Err(RunnerError::Failed(format!(
                "Action \"{}\" is missing \"entry_point\" attribute. Perhaps wanted to use \
                 \"remote-shell-cmd\" runner?",
                ctx.action.name
            )));
        }
        let common = Common::read(&ctx, &self.shared.settings)?;
        let Some(pack_dir) = ctx.pack_dir.as_deref() else {
            return Err(RunnerError::EntryPoint {
                path: ctx.action.entry_point.clone(),
                message: "the pack's directory is not known".to_owned(),
            });
        };
        let script = resolve_entry_point(pack_dir, &ctx.action.entry_point)?;
        let dir = opt_str(&ctx.runner_parameters, "dir")?
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/tmp".to_owned());
        let remote_dir = format!("{}/{}", dir.trim_end_matches('/'), ctx.execution_id);
        let upload = read_upload(&script, &remote_dir)?;
        let script_name = script
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let arguments = script_arguments(&ctx.action.parameters, &ctx.parameters, &common.kwarg_op);
        let inner = ShellLine::new()
            .word(&format!("{remote_dir}/{script_name}"))
            .quoted_words(&arguments);
        let (job, targets, parallel) = common.job(&self.shared, &ctx, &inner, Some(upload));
        Ok(run_everywhere(job, targets, parallel).await)
    }
}

/// The script (mode 0744) and, when the script's directory has a `lib/`, everything under it
/// (modes kept), as files under `remote_dir`.
fn read_upload(script: &Path, remote_dir: &str) -> Result<Upload, RunnerError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| RunnerError::EntryPoint {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    };
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut upload = Upload {
        remote_dir: remote_dir.to_owned(),
        dirs: Vec::new(),
        files: vec![(format!("{remote_dir}/{name}"), read(script)?, 0o744)],
    };
    let lib = script.parent().map(|p| p.join("lib"));
    if let Some(lib) = lib.filter(|l| l.is_dir()) {
        collect_dir(&lib, &format!("{remote_dir}/lib"), &mut upload, 0)?;
    }
    Ok(upload)
}

/// Add `local` (a directory) and what it holds to `upload` as `remote`.
fn collect_dir(
    local: &Path,
    remote: &str,
    upload: &mut Upload,
    depth: usize,
) -> Result<(), RunnerError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |path: &Path, e: std::io::Error| RunnerError::EntryPoint {
        path: path.display().to_string(),
        message: format!("cannot be copied to the hosts: {e}"),
    };
    if depth > 32 {
        return Err(RunnerError::EntryPoint {
            path: local.display().to_string(),
            message: "lib/ is nested too deeply (a symbolic link loop?)".to_owned(),
        });
    }
    upload.dirs.push(remote.to_owned());
    let mut entries: Vec<_> = std::fs::read_dir(local)
        .map_err(|e| fail(local, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail(local, e))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| fail(&path, e))?;
        let target = format!("{remote}/{}", entry.file_name().to_string_lossy());
        if meta.is_dir() {
            collect_dir(&path, &target, upload, depth + 1)?;
        } else if meta.is_file() {
            let data = std::fs::read(&path).map_err(|e| fail(&path, e))?;
            upload
                .files
                .push((target, data, meta.permissions().mode() & 0o7777));
        }
    }
    Ok(())
}

/// Run `job` on every target (one at a time unless `parallel`) and combine the results.
async fn run_everywhere(job: Job, targets: Vec<Target>, parallel: bool) -> RunOutcome {
    let limit = if parallel {
        job.shared.settings.max_parallel.max(1)
    } else {
        1
    };
    let slots = Arc::new(Semaphore::new(limit));
    let job = Arc::new(job);
    let mut tasks = JoinSet::new();
    for (index, target) in targets.iter().cloned().enumerate() {
        let job = job.clone();
        let slots = slots.clone();
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = slots.acquire_owned().await;
            (index, run_on_host(&job, &target).await)
        });
    }
    let mut results: Vec<Option<HostResult>> = targets.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            Err(e) => {
                // A panicking host task: report it for the hosts left without a result.
                for slot in results.iter_mut().filter(|r| r.is_none()) {
                    *slot = Some(HostResult::error(
                        255,
                        format!("the host's task failed: {e}"),
                        &Output::default(),
                    ));
                }
            }
        }
    }
    let mut map = Map::new();
    let mut outcomes = Vec::with_capacity(targets.len());
    for (target, result) in targets.iter().zip(results) {
        let result = result
            .unwrap_or_else(|| HostResult::error(255, "no result".to_owned(), &Output::default()));
        outcomes.push(HostEnd {
            succeeded: result.succeeded,
            timed_out: result.timed_out,
            canceled: result.canceled || job.cancel.is_cancelled(),
        });
        map.insert(target.label.clone(), result.value);
    }
    let status = overall_status(&outcomes, job.shared.settings.allow_partial_failure);
    RunOutcome::with_status(status, Value::Object(map))
}

/// How one host ended, for the execution's status.
#[derive(Debug, Clone, Copy, Default)]
struct HostEnd {
    succeeded: bool,
    timed_out: bool,
    canceled: bool,
}

/// StackStorm's `_get_result_status`: `succeeded` when every host succeeded (any host, with
/// `allow_partial_failure`), else `timeout` when every host timed out, else `failed`;
/// `canceled` when the execution was canceled.
fn overall_status(hosts: &[HostEnd], allow_partial_failure: bool) -> ExecutionStatus {
    let succeeded = if allow_partial_failure {
        hosts.iter().any(|h| h.succeeded)
    } else {
        hosts.iter().all(|h| h.succeeded)
    };
    if hosts.iter().any(|h| h.canceled) {
        ExecutionStatus::Canceled
    } else if succeeded {
        ExecutionStatus::Succeeded
    } else if hosts.iter().all(|h| h.timed_out) {
        ExecutionStatus::Timeout
    } else {
        ExecutionStatus::Failed
    }
}

/// One host's result and what it means for the status.
#[derive(Debug)]
struct HostResult {
    value: Value,
    succeeded: bool,
    timed_out: bool,
    canceled: bool,
}

fn output_text(bytes: &[u8], pty: bool) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = strip_shell_chars(&text);
    if pty {
        text.replace("\r\n", "\n")
    } else {
        text.to_owned()
    }
}

impl HostResult {
    /// StackStorm's `_generate_error_result`: `failed`, `return_code` (255, or −9 with
    /// `timeout`), the output so far, `error` and `traceback`.
    fn error(return_code: i64, error: String, output: &Output) -> Self {
        let timed_out = return_code == -9;
        HostResult {
            value: json!({
                "failed": true,
                "succeeded": false,
                "timeout": timed_out,
                "return_code": return_code,
                "stdout": output_text(&output.stdout, false),
                "stderr": output_text(&output.stderr, false),
                "error": error,
                "traceback": "",
            }),
            succeeded: false,
            timed_out,
            canceled: false,
        }
    }

    fn canceled(host: &str, output: &Output) -> Self {
        let mut result = Self::error(-1, format!("Execution canceled on host {host}."), output);
        result.canceled = true;
        result
    }
}

/// Why a host's run stopped early.
enum Stop {
    /// Connecting, copying or running failed; the message is the result's `error`.
    Failed(String),
    /// A reused connection turned out dead before anything ran on it.
    Stale,
    TimedOut,
    Canceled,
}

/// Connect (or reuse a connection), copy, run, clean up; never fails, every problem is a
/// result.
async fn run_on_host(job: &Job, target: &Target) -> HostResult {
    let deadline = Instant::now() + job.timeout;
    let key = PoolKey::new(&target.host, target.port, &job.credentials);
    let mut output = Output::new(job.sink.clone());
    if job.cancel.is_cancelled() {
        return HostResult::canceled(&target.host, &output);
    }
    let mut reused = job.shared.pool.take(&key);
    loop {
        let was_reused = reused.is_some();
        let connection = match reused.take() {
            Some(c) => c,
            None => match connect(job, target, deadline).await {
                Ok(c) => c,
                Err(stop) => return stopped(job, target, stop, &output),
            },
        };
        let mut created = false;
        let ran = run_steps(job, &connection, &mut output, deadline, &mut created).await;
        if let Some(upload) = &job.upload
            && created
        {
            // Remove the script's directory whatever happened, with a little time of its own.
            let rm = format!("rm -rf {}", quote(&upload.remote_dir));
            let _ = connection
                .run_quiet(
                    &rm,
                    b"",
                    Instant::now() + CLEANUP_TIMEOUT,
                    &Cancellation::never(),
                )
                .await;
        }
        return match ran {
            Ok(code) => {
                job.shared.pool.put(key, connection);
                finished(job, code, &output)
            }
            Err(Stop::Stale) if was_reused => continue,
            Err(stop) => {
                connection.close().await;
                stopped(job, target, stop, &output)
            }
        };
    }
}

/// Open a connection to `target`, within the deadline and the shared connect limit.
async fn connect(job: &Job, target: &Target, deadline: Instant) -> Result<Connection, Stop> {
    let opening = async {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = job.shared.connecting.acquire().await;
        Connection::open(&target.host, target.port, &job.credentials).await
    };
    tokio::select! {
        opened = tokio::time::timeout_at(deadline, opening) => match opened {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e @ SshError::Auth { .. })) => Err(Stop::Failed(format!("Connection error. {e}"))),
            Ok(Err(e)) => Err(Stop::Failed(format!(
                "Failed connecting to host {}. {e}",
                target.host
            ))),
            Err(_) => Err(Stop::TimedOut),
        },
        () = job.cancel.cancelled() => Err(Stop::Canceled),
    }
}

/// Copy the script (if any; `created` tells whether its directory was made) and run the
/// command; the command's exit code.
async fn run_steps(
    job: &Job,
    connection: &Connection,
    output: &mut Output,
    deadline: Instant,
    created: &mut bool,
) -> Result<i64, Stop> {
    let upload_failed = |e: UploadError| match e {
        UploadError::Ssh(SshError::OpenChannel(_)) => Stop::Stale,
        UploadError::TimedOut => Stop::TimedOut,
        UploadError::Canceled => Stop::Canceled,
        e => Stop::Failed(format!("Failed sending file(s) to host: {e}")),
    };
    if let Some(upload) = &job.upload {
        // One `sh -s` makes the execution's directory (new and private: it fails if someone
        // made it first), the directories of `lib/` inside it, and writes every file.
        let script = install_script(&upload.remote_dir, &upload.dirs, &upload.files);
        let copied = connection
            .run_quiet("sh -s", script.as_bytes(), deadline, &job.cancel)
            .await;
        *created = !matches!(
            copied,
            Err(UploadError::Remote {
                code: MKDIR_FAILED,
                ..
            } | UploadError::Ssh(SshError::OpenChannel(_)))
        );
        copied.map_err(upload_failed)?;
    }
    let exec = Exec {
        command: job.command.as_str(),
        stdin: &job.stdin,
        pty: job.pty,
    };
    match connection.exec(exec, output, deadline, &job.cancel).await {
        Ok(ExecEnd::Exited(code)) => Ok(code),
        Ok(ExecEnd::TimedOut) => Err(Stop::TimedOut),
        Ok(ExecEnd::Canceled) => Err(Stop::Canceled),
        Err(SshError::OpenChannel(_)) if job.upload.is_none() => Err(Stop::Stale),
        Err(e) => Err(Stop::Failed(format!(
            "Failed executing command on host: {e}"
        ))),
    }
}

fn stopped(job: &Job, target: &Target, stop: Stop, output: &Output) -> HostResult {
    match stop {
        Stop::Failed(message) => HostResult::error(255, message, output),
        Stop::Stale => HostResult::error(
            255,
            format!("Failed connecting to host {}: connection lost", target.host),
            output,
        ),
        Stop::TimedOut => HostResult::error(
            -9,
            format!(
                "Failed executing command on host \"{host}\" Command didn't finish in {t} \
                 seconds or the SSH connection did not succeed in {t} seconds",
                host = target.host,
                t = job.timeout_text
            ),
            output,
        ),
        Stop::Canceled => HostResult::canceled(&target.host, output),
    }
}

/// StackStorm's `_handle_command_result`: the output (parsed as JSON when it is) and the exit
/// code; a refused sudo password is an error result.
fn finished(job: &Job, code: i64, output: &Output) -> HostResult {
    let stdout = output_text(&output.stdout, job.pty);
    let stderr = output_text(&output.stderr, job.pty);
    if job.sudo_password && has_incorrect_password_attempts(&stderr) {
        let user = sudo_prompt_user(&stderr).unwrap_or("unknown");
        return HostResult::error(
            255,
            format!(
                "Invalid sudo password provided or sudo is not configured for this user \
                 ({user})"
            ),
            output,
        );
    }
    let succeeded = code == 0;
    HostResult {
        value: json!({
            "stdout": auto_parse(&stdout),
            "stderr": auto_parse(&stderr),
            "return_code": code,
            "succeeded": succeeded,
            "failed": !succeeded,
        }),
        succeeded,
        timed_out: false,
        canceled: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_entries() {
        assert_eq!(split_host_port("web"), Ok(("web".to_owned(), None)));
        assert_eq!(
            split_host_port("web:2222"),
            Ok(("web".to_owned(), Some(2222)))
        );
        assert_eq!(split_host_port("::1"), Ok(("::1".to_owned(), None)));
        assert_eq!(split_host_port("[::1]"), Ok(("::1".to_owned(), None)));
        assert_eq!(
            split_host_port("[::1]:22"),
            Ok(("::1".to_owned(), Some(22)))
        );
        assert!(split_host_port("web:x").is_err());
        assert!(split_host_port("web:0").is_err());
        assert!(split_host_port("[::1").is_err());

        let params = json!({"hosts": " a, b:2200,, a:2201 ", "port": 2022});
        let targets = read_hosts(params.as_object().expect("object")).expect("valid");
        let labels: Vec<_> = targets
            .iter()
            .map(|t| (t.label.as_str(), t.host.as_str(), t.port))
            .collect();
        assert_eq!(
            labels,
            [
                ("a:2022", "a", 2022),
                ("b", "b", 2200),
                ("a:2201", "a", 2201)
            ]
        );
        for bad in [
            json!({"hosts": " , "}),
            json!({}),
            json!({"hosts": "a", "port": "x"}),
        ] {
            assert!(read_hosts(bad.as_object().expect("object")).is_err());
        }
    }

    #[test]
    fn status_rules() {
        let ok = HostEnd {
            succeeded: true,
            ..HostEnd::default()
        };
        let failed = HostEnd::default();
        let timed_out = HostEnd {
            timed_out: true,
            ..HostEnd::default()
        };
        let canceled = HostEnd {
            canceled: true,
            ..HostEnd::default()
        };
        use ExecutionStatus::*;
        for (hosts, partial, status) in [
            (vec![ok, ok], false, Succeeded),
            (vec![ok, failed], false, Failed),
            (vec![ok, failed], true, Succeeded),
            (vec![failed, failed], true, Failed),
            (vec![timed_out, timed_out], false, Timeout),
            (vec![timed_out, failed], false, Failed),
            (vec![ok, timed_out], false, Failed),
            (vec![ok, canceled], true, Canceled),
        ] {
            assert_eq!(
                overall_status(&hosts, partial),
                status,
                "{hosts:?} {partial}"
            );
        }
    }

    #[test]
    fn credentials_do_not_show_secrets() {
        let settings = RemoteSettings::default();
        let params = json!({"username": "u", "password": "hunter2"});
        let creds = read_credentials(params.as_object().expect("object"), &settings)
            .expect("password credentials");
        let shown = format!("{creds:?}");
        assert!(
            shown.contains("\"u\"") && !shown.contains("hunter2"),
            "{shown}"
        );

        let params = json!({"username": "u", "private_key": "/no/such/key"});
        let err = read_credentials(params.as_object().expect("object"), &settings)
            .expect_err("missing key file");
        assert!(err.to_string().contains("/no/such/key"), "{err}");

        let none = RemoteSettings {
            default_key_files: Some(vec![PathBuf::from("/no/such/id_rsa")]),
            ..RemoteSettings::default()
        };
        let err = read_credentials(json!({}).as_object().expect("object"), &none)
            .expect_err("no usable key");
        assert!(err.to_string().contains("/no/such/id_rsa"), "{err}");
    }
}
