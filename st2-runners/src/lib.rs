//! StackStorm's built-in runners for `st2-core`: `noop`, `local-shell-cmd`,
//! `local-shell-script`, `remote-shell-cmd` and `remote-shell-script`.
//!
//! ```
//! use st2_core::runner::RunnerRegistry;
//!
//! let mut runners = RunnerRegistry::new();
//! st2_runners::register_builtin(&mut runners).expect("an empty registry");
//! assert_eq!(
//!     runners.names(),
//!     [
//!         "local-shell-cmd",
//!         "local-shell-script",
//!         "noop",
//!         "remote-shell-cmd",
//!         "remote-shell-script"
//!     ]
//! );
//! ```
//!
//! The local runners run `bash -c <command>` in a new process group, stream each output line
//! to [`st2_core::runner::OutputSink`] as it arrives, and on timeout or cancellation kill the
//! whole group. Their result is StackStorm's `{failed, succeeded, return_code, stdout, stderr}`
//! (plus `error`), with `stdout` and `stderr` parsed as JSON when they are JSON.
//!
//! `cmd` templates are rendered by the engine with
//! [`st2_core::expr::shell::render_shell_command`]: values reach the command as environment
//! variables ([`st2_core::runner::RunContext::shell_values`]), never as shell syntax.
//!
//! The remote runners ([`remote`]) run commands and scripts over SSH (russh) on several hosts,
//! exporting the same values in the remote command line, quoted.

pub mod command_line;
pub mod local;
pub mod noop;
mod params;
mod process;
pub mod remote;

use st2_core::runner::{DuplicateRunner, RunnerRegistry};

pub use local::{LocalShellCommandRunner, LocalShellScriptRunner, LocalShellSettings};
pub use noop::NoopRunner;
pub use remote::{RemoteSettings, RemoteShellCommandRunner, RemoteShellScriptRunner};

/// Settings of the built-in runners.
#[derive(Debug, Clone, Default)]
pub struct BuiltinSettings {
    /// `local-shell-cmd` and `local-shell-script`.
    pub local: LocalShellSettings,
    /// `remote-shell-cmd` and `remote-shell-script`.
    pub remote: RemoteSettings,
}

/// Register `noop`, the local and the remote shell runners with default settings.
///
/// # Errors
/// [`DuplicateRunner`] when one of the names is taken.
pub fn register_builtin(registry: &mut RunnerRegistry) -> Result<(), DuplicateRunner> {
    register_builtin_with(registry, BuiltinSettings::default())
}

/// Register `noop`, `local-shell-cmd`, `local-shell-script`, `remote-shell-cmd` and
/// `remote-shell-script` with `settings`.
///
/// # Errors
/// [`DuplicateRunner`] when one of the names is taken.
pub fn register_builtin_with(
    registry: &mut RunnerRegistry,
    settings: BuiltinSettings,
) -> Result<(), DuplicateRunner> {
    registry.register("noop", NoopRunner)?;
    registry.register(
        "local-shell-cmd",
        LocalShellCommandRunner::new(settings.local.clone()),
    )?;
    registry.register(
        "local-shell-script",
        LocalShellScriptRunner::new(settings.local),
    )?;
    let (remote_cmd, remote_script) = remote::runners(settings.remote);
    registry.register("remote-shell-cmd", remote_cmd)?;
    registry.register("remote-shell-script", remote_script)?;
    Ok(())
}
