//! StackStorm's built-in runners for `st2-core`: `noop`, `local-shell-cmd`,
//! `local-shell-script`, `remote-shell-cmd`, `remote-shell-script`, `http-request`, `action-chain`,
//! `inquirer` and `announcement`, and our own `rhai-script`; `python-script` ([`PythonRunner`],
//! with Python sensors through [`PythonSensorFactory`]) is registered with the
//! [`PythonSettings`] you need.
//!
//! ```
//! use st2_core::runner::RunnerRegistry;
//!
//! let mut runners = RunnerRegistry::new();
//! st2_runners::register_builtin(&mut runners).expect("an empty registry");
//! assert_eq!(
//!     runners.names(),
//!     [
//!         "action-chain",
//!         "announcement",
//!         "http-request",
//!         "inquirer",
//!         "local-shell-cmd",
//!         "local-shell-script",
//!         "noop",
//!         "remote-shell-cmd",
//!         "remote-shell-script",
//!         "rhai-script"
//!     ]
//! );
//! ```
//!
//! The local runners run `bash -c <command>` in a new process group, stream each output line
//! to [`st2_core::runner::OutputSink`] as it arrives, and on timeout or cancellation kill the
//! whole group. Their result is StackStorm's `{failed, succeeded, return_code, stdout, stderr}`
//! (plus `error`), with `stdout` and `stderr` parsed as JSON when they are JSON.
//!
//! `http-request` ([`http`]) sends one request with a shared, keep-alive client per TLS,
//! redirect and proxy setting, and returns StackStorm's `{status_code, body, parsed, headers}`.
//!
//! `cmd` templates are rendered by the engine with
//! [`st2_core::expr::shell::render_shell_command`]: values reach the command as environment
//! variables ([`st2_core::runner::RunContext::shell_values`]), never as shell syntax.
//!
//! The remote runners ([`remote`]) run commands and scripts over SSH (russh) on several hosts,
//! exporting the same values in the remote command line, quoted.

pub mod announcement;
pub mod chain;
pub mod command_line;
mod direct;
pub mod http;
pub mod inquirer;
pub mod local;
pub mod noop;
mod parameter;
mod process;
pub mod python;
pub mod remote;
pub mod rhai_script;

use st2_core::runner::{DuplicateRunner, RunnerRegistry};

pub use announcement::AnnouncementRunner;
pub use chain::{ActionChainRunner, ActionChainSettings};
pub use http::HttpRequestRunner;
pub use inquirer::InquirerRunner;
pub use local::{LocalShellCommandRunner, LocalShellScriptRunner, LocalShellSettings};
pub use noop::NoopRunner;
pub use python::{PythonRunner, PythonSensorFactory, PythonSettings};
pub use remote::{RemoteSettings, RemoteShellCommandRunner, RemoteShellScriptRunner};
pub use rhai_script::RhaiScriptRunner;

/// Settings of the built-in runners.
#[derive(Debug, Clone, Default)]
pub struct BuiltinSettings {
    /// `local-shell-cmd` and `local-shell-script`.
    pub local: LocalShellSettings,
    /// `remote-shell-cmd` and `remote-shell-script`.
    pub remote: RemoteSettings,
}

/// Register the built-in runners with default settings.
///
/// # Errors
/// [`DuplicateRunner`] when one of the names is taken.
pub fn register_builtin(registry: &mut RunnerRegistry) -> Result<(), DuplicateRunner> {
    register_builtin_with(registry, BuiltinSettings::default())
}

/// Register the built-in runners with `settings`.
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
    registry.register("action-chain", ActionChainRunner::default())?;
    registry.register("inquirer", InquirerRunner)?;
    registry.register("announcement", AnnouncementRunner)?;
    registry.register("rhai-script", RhaiScriptRunner::default())?;
    registry.register("http-request", HttpRequestRunner::new())?;
    Ok(())
}
