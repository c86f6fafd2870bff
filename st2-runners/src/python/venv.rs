//! Pack virtualenvs: `python -m venv` and `pip install -r requirements.txt` when a pack is
//! registered.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use super::PythonEnv;

/// What [`super::PythonRunner::prepare_pack`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackEnvironment {
    /// The pack has no `requirements.txt`: it runs on the system interpreter.
    SystemPython,
    /// The virtualenv at this path was created with the pack's requirements.
    Virtualenv(std::path::PathBuf),
    /// No virtualenv was made; the message says why (no virtualenvs directory configured,
    /// pip could not reach an index, …). The pack keeps the interpreter it had.
    Skipped(String),
}

/// Run `command` to its end within the pip timeout; its output on failure.
async fn run_step(env: &PythonEnv, mut command: Command, what: &str) -> Result<(), String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(env.settings.pip_timeout, command.output())
        .await
        .map_err(|_| format!("{what} did not finish in {:?}", env.settings.pip_timeout))?
        .map_err(|e| format!("{what} could not be started: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last: Vec<&str> = stderr.lines().rev().take(5).collect();
    let last: Vec<&str> = last.into_iter().rev().collect();
    Err(format!(
        "{what} failed ({}): {}",
        output.status,
        last.join(" | ")
    ))
}

pub(super) async fn prepare(env: &PythonEnv, pack: &str, pack_dir: &Path) -> PackEnvironment {
    let requirements = pack_dir.join("requirements.txt");
    if !requirements.is_file() {
        return PackEnvironment::SystemPython;
    }
    let Some(target) = env.virtualenv(pack) else {
        return PackEnvironment::Skipped(format!(
            "pack {pack} has a requirements.txt but no virtualenvs directory is configured; \
             it runs on the system Python"
        ));
    };
    let Some(parent) = target.parent() else {
        return PackEnvironment::Skipped(format!("{} has no parent", target.display()));
    };
    if let Err(e) = std::fs::create_dir_all(parent) {
        return PackEnvironment::Skipped(format!("cannot create {}: {e}", parent.display()));
    }
    // A new virtualenv is removed again when pip fails; an existing one is updated in place
    // and left as it was by a failed pip.
    let fresh = !target.join("bin").join("python").is_file();
    let mut create = Command::new(&env.settings.python);
    create.arg("-m").arg("venv").arg(&target);
    let mut install = Command::new(target.join("bin").join("python"));
    install
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--retries",
            "0",
            "--timeout",
            "15",
            "-r",
        ])
        .arg(&requirements)
        .args(&env.settings.pip_args)
        .current_dir(pack_dir);
    let steps = async {
        if fresh {
            run_step(env, create, "python -m venv").await?;
        }
        run_step(env, install, "pip install -r requirements.txt").await
    };
    match steps.await {
        Ok(()) => PackEnvironment::Virtualenv(target),
        Err(message) => {
            if fresh {
                let _ = std::fs::remove_dir_all(&target);
            }
            PackEnvironment::Skipped(format!(
                "virtualenv for pack {pack} not ready: {message}; the pack runs on {}",
                if fresh {
                    "the system Python"
                } else {
                    "its virtualenv as it was"
                }
            ))
        }
    }
}
