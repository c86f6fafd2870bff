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
    let mut command = Command::new(shell());
    command
        .arg("-c")
        .arg(&spec.command)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    supervise(command, spec.stdin, spec.timeout, true, sink, cancel).await
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
    mut command: Command,
    stdin_text: Option<String>,
    timeout: Duration,
    collect: bool,
    sink: Arc<dyn OutputSink>,
    cancel: &Cancellation,
) -> std::io::Result<ProcessResult> {
    command
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    // The command holds the parent's copies of what it gave the child (a socket as standard
    // input): closing them lets the other end see the child's end of file.
    drop(command);
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
