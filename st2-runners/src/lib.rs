//! StackStorm's built-in runners for `st2-core`: `noop`, `local-shell-cmd`,
//! `local-shell-script`, `action-chain`, `inquirer` and `announcement`.
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
//!         "inquirer",
//!         "local-shell-cmd",
//!         "local-shell-script",
//!         "noop"
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

pub mod announcement;
pub mod chain;
pub mod command_line;
pub mod inquirer;
pub mod local;
pub mod noop;
mod process;

use st2_core::runner::{DuplicateRunner, RunnerRegistry};

pub use announcement::AnnouncementRunner;
pub use chain::{ActionChainRunner, ActionChainSettings};
pub use inquirer::InquirerRunner;
pub use local::{LocalShellCommandRunner, LocalShellScriptRunner, LocalShellSettings};
pub use noop::NoopRunner;

/// Register the built-in runners with default settings.
///
/// # Errors
/// [`DuplicateRunner`] when one of the names is taken.
pub fn register_builtin(registry: &mut RunnerRegistry) -> Result<(), DuplicateRunner> {
    register_builtin_with(registry, LocalShellSettings::default())
}

/// Register the built-in runners, the local ones with `settings`.
///
/// # Errors
/// [`DuplicateRunner`] when one of the names is taken.
pub fn register_builtin_with(
    registry: &mut RunnerRegistry,
    settings: LocalShellSettings,
) -> Result<(), DuplicateRunner> {
    registry.register("noop", NoopRunner)?;
    registry.register(
        "local-shell-cmd",
        LocalShellCommandRunner::new(settings.clone()),
    )?;
    registry.register("local-shell-script", LocalShellScriptRunner::new(settings))?;
    registry.register("action-chain", ActionChainRunner::default())?;
    registry.register("inquirer", InquirerRunner)?;
    registry.register("announcement", AnnouncementRunner)?;
    Ok(())
}
