//! One process (`bash -c <command>` for the shell runners) in its own process group, its output streamed line by
//! line while it runs, the whole group killed on timeout or cancellation.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use st2_core::runner::{Cancellation, OutputSink};
use st2_core::store::OutputType;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::direct;

/// How long a process group gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);
/// How long the output readers get to drain once the group is dead.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug)]
pub(crate) struct ProcessSpec {
    /// The command line given to `bash -c`.
    pub command: String,
    /// The working directory (the runner's own when `None`).
    pub cwd: Option<PathBuf>,
    /// Variables added to the inherited environment, in order (later ones win).
    pub env: Vec<(String, String)>,
    /// Text written to standard input (closed afterwards); standard input is empty otherwise.
    pub stdin: Option<String>,
    /// When to give up.
    pub timeout: Duration,
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It exited (or was killed by a signal nobody here sent).
    Exited,
    /// The timeout expired; the group was killed.
    TimedOut,
    /// Cancellation was requested; the group was killed.
    Canceled,
}

/// A finished process.
#[derive(Debug)]
pub(crate) struct ProcessResult {
    /// Its exit code, or minus the signal that killed it (Python's `returncode`).
    pub exit_code: i64,
    /// Everything it wrote to standard output.
    pub stdout: String,
    /// Everything it wrote to standard error.
    pub stderr: String,
    /// How it ended.
    pub ending: Ending,
}

/// Kills the process group when dropped while armed (the run's future was dropped halfway).
struct GroupGuard {
    pgid: Pid,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}

/// The shell commands run with: `bash` as found on this process's `PATH` the first time it is
/// needed, or plain `bash` when it is not found there. Fixing the path means an `env`
/// parameter that sets `PATH` changes what the command finds, not which shell runs it (as in
/// StackStorm, whose shell does not depend on it either), and the spawn stays a `posix_spawn`
/// (with a `PATH` of its own and a bare program name, std forks the whole engine to search
/// that `PATH`).
fn shell() -> &'static Path {
    static SHELL: OnceLock<PathBuf> = OnceLock::new();
    SHELL.get_or_init(|| find_on_path("bash").unwrap_or_else(|| PathBuf::from("bash")))
}

/// The first executable file `name` in a directory of this process's `PATH` (absolute
/// directories only).
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|file| {
            std::fs::metadata(file)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Run `spec`, sending each output line to `sink` as it arrives.
///
/// # Errors
/// The process could not be started (no `bash`, a missing working directory, …).
pub(crate) async fn run(
    spec: ProcessSpec,
    sink: Arc<dyn OutputSink>,
    cancel: &Cancellation,
) -> std::io::Result<ProcessResult> {
    run_with(spec, sink, cancel, true).await
}

/// [`run`], starting the line's program without bash when `direct` and
/// [`direct::plan`] says bash would only replace itself with it.
async fn run_with(
    spec: ProcessSpec,
    sink: Arc<dyn OutputSink>,
    cancel: &Cancellation,
    direct: bool,
) -> std::io::Result<ProcessResult> {
    if let Some(plan) = direct
        .then(|| {
            direct::plan(
                &spec.command,
                spec.cwd.as_deref(),
                &spec.env,
                std::env::vars_os(),
            )
        })
        .flatten()
        .filter(|plan| !plan.make_executable || direct::add_execute_bits(&plan.program).is_ok())
    {
        let mut command = Command::new(&plan.program);
        command.arg0(&plan.arg0).args(&plan.args);
        prepare(&mut command, &spec);
        for name in &plan.remove {
            command.env_remove(name);
        }
        command.envs(plan.set.iter().map(|(k, v)| (k, v)));
        // A program that does not start (a script without `#!`, no permission) goes to
        // bash, which runs it or reports it in its own words.
        if let Ok(child) = spawn_in_group(command) {
            return supervise_child(child, spec.stdin, spec.timeout, true, sink, cancel).await;
        }
    }
    let mut command = Command::new(shell());
    command.arg("-c").arg(&spec.command);
    prepare(&mut command, &spec);
    supervise(command, spec.stdin, spec.timeout, true, sink, cancel).await
}

/// Standard input, the `env` variables and the working directory of `spec`.
fn prepare(command: &mut Command, spec: &ProcessSpec) {
    command
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
}

/// Run `command` (its program, arguments, environment and standard input set by the caller)
/// in a new process group with its output piped and streamed to `sink`; `stdin_text` is
/// written to its standard input when that is piped. The group is killed on timeout or
/// cancellation. With `collect` false the output is only streamed (long-running sensors), and
/// the result's `stdout`/`stderr` are empty.
///
/// # Errors
/// The process could not be started.
pub(crate) async fn supervise(
    command: Command,
    stdin_text: Option<String>,
    timeout: Duration,
    collect: bool,
    sink: Arc<dyn OutputSink>,
    cancel: &Cancellation,
) -> std::io::Result<ProcessResult> {
    let child = spawn_in_group(command)?;
    supervise_child(child, stdin_text, timeout, collect, sink, cancel).await
}

/// Start `command` in a new process group with its output piped.
fn spawn_in_group(mut command: Command) -> std::io::Result<Child> {
    command
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Dropping the command afterwards closes the parent's copies of what it gave the child
    // (a socket as standard input), so the other end sees the child's end of file.
    command.spawn()
}

/// [`supervise`] a started child.
async fn supervise_child(
    mut child: Child,
    stdin_text: Option<String>,
    timeout: Duration,
    collect: bool,
    sink: Arc<dyn OutputSink>,
    cancel: &Cancellation,
) -> std::io::Result<ProcessResult> {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| {
            std::io::Error::other("the process exited before its process group was known")
        })?;
    let mut guard = GroupGuard {
        pgid: Pid::from_raw(pid),
        armed: true,
    };
    if let (Some(text), Some(mut stdin)) = (stdin_text, child.stdin.take()) {
        tokio::spawn(async move {
            // A command that exits without reading its input closes the pipe; that is fine.
            let _ = stdin.write_all(text.as_bytes()).await;
        });
    }
    let stdout = Reader::start(
        child.stdout.take(),
        OutputType::Stdout,
        sink.clone(),
        collect,
    );
    let stderr = Reader::start(child.stderr.take(), OutputType::Stderr, sink, collect);

    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut exited = None;
    let mut ending = Ending::Exited;
    tokio::select! {
        status = child.wait() => exited = Some(status?),
        () = &mut deadline => ending = Ending::TimedOut,
        () = cancel.cancelled() => ending = Ending::Canceled,
    }
    if ending == Ending::Exited {
        // The shell is gone; its output may still be held open by processes it started.
        tokio::select! {
            () = drained(&stdout, &stderr) => {}
            () = &mut deadline => ending = Ending::TimedOut,
            () = cancel.cancelled() => ending = Ending::Canceled,
        }
    }
    if ending != Ending::Exited {
        exited = Some(terminate(guard.pgid, &mut child, exited).await?);
    }
    guard.armed = false;
    let _ = tokio::time::timeout(DRAIN_GRACE, drained(&stdout, &stderr)).await;
    let status = match exited {
        Some(status) => status,
        None => child.wait().await?,
    };
    Ok(ProcessResult {
        exit_code: exit_code(status),
        stdout: stdout.finish(),
        stderr: stderr.finish(),
        ending,
    })
}

/// Python's `returncode`: the exit code, or minus the signal number.
fn exit_code(status: std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => -i64::from(signal),
        (None, None) => -1,
    }
}

/// SIGTERM to the group (sudo relays it to the command it runs), a grace period for the
/// shell, then SIGKILL to whatever is left.
async fn terminate(
    pgid: Pid,
    child: &mut Child,
    exited: Option<std::process::ExitStatus>,
) -> std::io::Result<std::process::ExitStatus> {
    let _ = killpg(pgid, Signal::SIGTERM);
    let mut status = exited;
    if status.is_none()
        && let Ok(result) = tokio::time::timeout(TERM_GRACE, child.wait()).await
    {
        status = Some(result?);
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    match status {
        Some(status) => Ok(status),
        None => child.wait().await,
    }
}

async fn drained(stdout: &Reader, stderr: &Reader) {
    stdout.done().await;
    stderr.done().await;
}

/// A task reading one output stream line by line.
struct Reader {
    text: Arc<Mutex<String>>,
    task: Mutex<Option<JoinHandle<()>>>,
    finished: tokio::sync::watch::Receiver<bool>,
}

impl Reader {
    fn start(
        stream: Option<impl AsyncRead + Unpin + Send + 'static>,
        output_type: OutputType,
        sink: Arc<dyn OutputSink>,
        collect: bool,
    ) -> Reader {
        let text = Arc::new(Mutex::new(String::new()));
        let (done_tx, finished) = tokio::sync::watch::channel(false);
        let collected = text.clone();
        let task = tokio::spawn(async move {
            if let Some(stream) = stream {
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let chunk = String::from_utf8_lossy(&line);
                            sink.emit(output_type, &chunk);
                            if !collect {
                                continue;
                            }
                            collected
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push_str(&chunk);
                        }
                    }
                }
            }
            let _ = done_tx.send(true);
        });
        Reader {
            text,
            task: Mutex::new(Some(task)),
            finished,
        }
    }

    /// Wait until the stream reached its end.
    async fn done(&self) {
        let mut finished = self.finished.clone();
        // The sender only goes away after sending `true` (or if the task was aborted).
        let _ = finished.wait_for(|d| *d).await;
    }

    /// Stop reading and return what was read.
    fn finish(&self) -> String {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        std::mem::take(&mut *self.text.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use st2_core::runner::DiscardOutput;

    async fn both_ways(
        command: &str,
        cwd: Option<&Path>,
        env: &[(&str, &str)],
    ) -> (ProcessResult, ProcessResult) {
        let spec = || ProcessSpec {
            command: command.to_owned(),
            cwd: cwd.map(Path::to_path_buf),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            stdin: None,
            timeout: Duration::from_secs(20),
        };
        let cancel = Cancellation::never();
        let direct = run_with(spec(), Arc::new(DiscardOutput), &cancel, true)
            .await
            .expect("runs");
        let bash = run_with(spec(), Arc::new(DiscardOutput), &cancel, false)
            .await
            .expect("runs");
        (direct, bash)
    }

    /// `local-shell-script`'s line: the script made executable as `chmod +x` makes it, then
    /// run, the same either way.
    #[tokio::test]
    async fn a_script_made_executable_and_run_behaves_as_under_bash() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let with_shebang = dir.path().join("with.sh");
        std::fs::write(
            &with_shebang,
            "#!/bin/sh\necho \"$0 $# $*\"; echo err >&2; exit 3\n",
        )
        .expect("write");
        let without = dir.path().join("without.sh");
        std::fs::write(&without, "echo \"no shebang $1\"\n").expect("write");
        for script in [&with_shebang, &without] {
            let text = script.to_string_lossy().into_owned();
            let line = format!("chmod +x {text} ; {text} one 'two words'");
            let mut results = Vec::new();
            for direct in [true, false] {
                std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o600))
                    .expect("chmod");
                let spec = ProcessSpec {
                    command: line.clone(),
                    cwd: None,
                    env: Vec::new(),
                    stdin: None,
                    timeout: Duration::from_secs(20),
                };
                let run = run_with(
                    spec,
                    Arc::new(DiscardOutput),
                    &Cancellation::never(),
                    direct,
                )
                .await
                .expect("runs");
                let mode = std::fs::metadata(script)
                    .expect("stat")
                    .permissions()
                    .mode();
                results.push((run.exit_code, run.stdout, run.stderr, mode & 0o7777));
            }
            assert_eq!(results[0], results[1], "{line}");
            assert_ne!(results[0].3 & 0o100, 0, "made executable");
        }
    }

    fn sorted_lines(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        lines
    }

    /// A line run without bash prints, exits and sees the environment exactly as under
    /// `bash -c` (up to the order of the variables).
    #[tokio::test]
    async fn a_program_started_directly_behaves_as_under_bash() {
        let dir = tempfile::tempdir().expect("temp dir");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        std::os::unix::fs::symlink(&real, dir.path().join("link")).expect("symlink");
        let no_shebang = real.join("plain.sh");
        std::fs::write(
            &no_shebang,
            "echo from a script without a shebang\nexit 4\n",
        )
        .expect("write");
        let bad_interpreter = real.join("bad.sh");
        std::fs::write(&bad_interpreter, "#!/no/such/interpreter\n").expect("write");
        let not_executable = real.join("data.txt");
        std::fs::write(&not_executable, "x").expect("write");
        for file in [&no_shebang, &bad_interpreter] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let link = dir.path().join("link");
        type Case<'a> = (&'a str, Option<&'a Path>, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            ("true", None, vec![]),
            ("false", None, vec![]),
            ("echo hello 'a  b' \"c d\" ''", None, vec![]),
            ("env", None, vec![]),
            ("env", Some(&real), vec![("SHLVL", "5"), ("OLDPWD", "/tmp")]),
            ("env", Some(&real), vec![("OLDPWD", "/no/such/dir")]),
            ("env", Some(&real), vec![("OLDPWD", "")]),
            ("env", Some(&link), vec![("SHLVL", "-3")]),
            ("env", Some(&real), vec![("PWD", "/definitely/elsewhere")]),
            ("printenv PWD SHLVL _ OLDPWD", Some(&link), vec![]),
            ("ls /no/such/file", None, vec![]),
            ("sh -c 'echo out; echo err >&2; exit 7'", None, vec![]),
            ("./plain.sh", Some(&real), vec![]),
            ("./bad.sh", Some(&real), vec![]),
            ("./data.txt", Some(&real), vec![]),
            ("no-such-program-anywhere --x", None, vec![]),
        ];
        let inherited: Vec<_> = std::env::vars_os().collect();
        for (command, cwd, env) in cases {
            let owned: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let planned = direct::plan(command, cwd, &owned, inherited.clone()).is_some();
            let expected = !matches!(command, "no-such-program-anywhere --x" | "./data.txt");
            assert_eq!(planned, expected, "{command}: planned");
            let (direct, bash) = both_ways(command, cwd, &env).await;
            assert_eq!(direct.exit_code, bash.exit_code, "{command}");
            assert_eq!(direct.stderr, bash.stderr, "{command}");
            assert_eq!(
                sorted_lines(&direct.stdout),
                sorted_lines(&bash.stdout),
                "{command}"
            );
        }
    }
}
