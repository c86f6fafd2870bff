//! `local-shell-cmd` and `local-shell-script`: run a command or a pack's script on this host
//! (StackStorm's `contrib/runners/local_runner`).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use st2_core::runner::{RunContext, RunOutcome, Runner, RunnerError};
use st2_core::store::ExecutionStatus;

use crate::command_line::{ShellLine, script_arguments};
use crate::parameter::{bad, opt_bool, opt_str, read_env, read_timeout};
use crate::process::{self, Ending, ProcessSpec};

/// StackStorm's default `timeout` of the local runners, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 60;

/// Settings of the local runners (StackStorm's `system_user` option).
#[derive(Debug, Clone, Default)]
pub struct LocalShellSettings {
    /// Run commands as this user (through `sudo -E -H -u <user>`) when it is not the user the
    /// runner runs as. `None` runs them as the runner's user.
    pub system_user: Option<String>,
}

/// The runner parameters both local runners read.
#[derive(Debug)]
struct LocalParams {
    cmd: Option<String>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    kwarg_op: String,
    sudo: bool,
    sudo_password: Option<String>,
    timeout: Duration,
    timeout_text: String,
    debug: Option<bool>,
}

impl LocalParams {
    fn read(params: &Map<String, Value>) -> Result<Self, RunnerError> {
        let env = read_env(params)?;
        let (timeout, timeout_text) = read_timeout(params, DEFAULT_TIMEOUT)?;
        Ok(LocalParams {
            cmd: opt_str(params, "cmd")?,
            cwd: opt_str(params, "cwd")?
                .filter(|c| !c.is_empty())
                .map(PathBuf::from),
            env,
            kwarg_op: opt_str(params, "kwarg_op")?.unwrap_or_else(|| "--".to_owned()),
            sudo: opt_bool(params, "sudo")?.unwrap_or(false),
            sudo_password: opt_str(params, "sudo_password")?.filter(|p| !p.is_empty()),
            timeout,
            timeout_text,
            debug: opt_bool(params, "debug")?,
        })
    }
}

/// The user this process runs as.
pub(crate) fn current_user() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::current())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// How the command is wrapped: not at all, in `sudo`, or in `sudo -u <system user>`.
fn wrap(inner: ShellLine, params: &LocalParams, settings: &LocalShellSettings) -> ShellLine {
    let other_user = settings
        .system_user
        .as_deref()
        .filter(|u| current_user().as_deref() != Some(*u));
    if !params.sudo && other_user.is_none() {
        return inner;
    }
    let mut line = ShellLine::new().word("sudo");
    if params.sudo_password.is_some() {
        line = line.word("-S");
    }
    line = line.word("-E");
    if !params.sudo
        && let Some(user) = other_user
    {
        line = line.word("-H").word("-u").word(user);
    }
    line.word("--").word("bash").word("-c").word(inner.as_str())
}

/// The variables added to the inherited environment: the `env` parameter, the execution's
/// `ST2_ACTION_*` variables, then the values the command refers to.
fn environment(
    params: &LocalParams,
    ctx: &RunContext,
) -> Result<Vec<(String, String)>, RunnerError> {
    let mut env = params.env.clone();
    if let Some(debug) = params.debug
        && !ctx.env.contains_key("ST2_ACTION_DEBUG")
    {
        env.push((
            "ST2_ACTION_DEBUG".to_owned(),
            if debug { "True" } else { "False" }.to_owned(),
        ));
    }
    for (k, v) in ctx.env.iter().chain(&ctx.shell_values) {
        if v.contains('\0') || k.contains('\0') || k.contains('=') || k.is_empty() {
            return Err(RunnerError::Failed(format!(
                "environment variable {k:?} cannot be passed to a process (NUL or `=`)"
            )));
        }
        env.push((k.clone(), v.clone()));
    }
    Ok(env)
}

/// Run the final command line and turn the process into StackStorm's result.
async fn execute(
    line: ShellLine,
    params: &LocalParams,
    ctx: &RunContext,
    uses_sudo: bool,
) -> Result<RunOutcome, RunnerError> {
    let spec = ProcessSpec {
        command: line.to_string(),
        cwd: params.cwd.clone(),
        env: environment(params, ctx)?,
        stdin: params
            .sudo_password
            .as_ref()
            .filter(|_| uses_sudo)
            .map(|p| format!("{p}\n")),
        timeout: params.timeout,
    };
    let run = process::run(spec, ctx.output.clone(), &ctx.cancel)
        .await
        .map_err(|e| RunnerError::Failed(format!("could not start the command: {e}")))?;
    let mut exit_code = run.exit_code;
    let mut error = None;
    if run.ending == Ending::TimedOut || exit_code == -9 {
        exit_code = -9;
        error = Some(format!(
            "Action failed to complete in {} seconds",
            params.timeout_text
        ));
    }
    if params.sudo_password.is_some() && has_incorrect_password_attempts(&run.stderr) {
        let user = sudo_prompt_user(&run.stderr).unwrap_or("unknown");
        error = Some(format!(
            "Invalid sudo password provided or sudo is not configured for this user ({user})"
        ));
        exit_code = -1;
    }
    let succeeded = exit_code == 0;
    let mut result = Map::new();
    result.insert("failed".into(), json!(!succeeded));
    result.insert("succeeded".into(), json!(succeeded));
    result.insert("return_code".into(), json!(exit_code));
    result.insert("stdout".into(), auto_parse(strip_shell_chars(&run.stdout)));
    result.insert("stderr".into(), auto_parse(strip_shell_chars(&run.stderr)));
    if let Some(error) = error {
        result.insert("error".into(), Value::String(error));
    }
    let status = if run.ending == Ending::Canceled {
        ExecutionStatus::Canceled
    } else {
        status_for(exit_code)
    };
    Ok(RunOutcome::with_status(status, Value::Object(result)))
}

/// StackStorm's exit code → status map: 0 succeeded, −9 timeout, −15 abandoned, anything else
/// failed.
pub fn status_for(exit_code: i64) -> ExecutionStatus {
    match exit_code {
        0 => ExecutionStatus::Succeeded,
        -9 => ExecutionStatus::Timeout,
        -15 => ExecutionStatus::Abandoned,
        _ => ExecutionStatus::Failed,
    }
}

/// StackStorm's `strip_shell_chars`: one trailing `\n`, then one trailing `\r`.
pub fn strip_shell_chars(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

/// The value `text` stands for when it is JSON (`"42"` → 42, `"{…}"` → an object), else the
/// text (StackStorm's `jsonify.json_loads` of `stdout` and `stderr`).
pub fn auto_parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// `re.search(r"sudo: \d+ incorrect password attempts", stderr)`.
pub(crate) fn has_incorrect_password_attempts(stderr: &str) -> bool {
    stderr.match_indices("sudo: ").any(|(at, m)| {
        let rest = &stderr[at + m.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(" incorrect password attempts")
    })
}

/// `re.search(r"\[sudo\] password for (.+?)\:", stderr)`: the user named in sudo's prompt.
pub(crate) fn sudo_prompt_user(stderr: &str) -> Option<&str> {
    stderr
        .match_indices("[sudo] password for ")
        .find_map(|(at, m)| {
            let rest = &stderr[at + m.len()..];
            let line = rest.split('\n').next().unwrap_or_default();
            // `.+?` needs one character before the colon.
            line.get(1..)
                .and_then(|tail| tail.find(':'))
                .map(|end| &line[..end + 1])
        })
}

/// `local-shell-cmd`: runs the `cmd` runner parameter with `bash -c`. Action parameters are not
/// passed to it; templates in `cmd` refer to them (the engine renders `cmd` with
/// [`st2_core::expr::shell::render_shell_command`] and passes the values in
/// [`RunContext::shell_values`]).
#[derive(Debug, Clone, Default)]
pub struct LocalShellCommandRunner {
    settings: Arc<LocalShellSettings>,
}

impl LocalShellCommandRunner {
    /// A runner with `settings`.
    pub fn new(settings: LocalShellSettings) -> Self {
        LocalShellCommandRunner {
            settings: Arc::new(settings),
        }
    }
}

#[async_trait]
impl Runner for LocalShellCommandRunner {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        if !ctx.action.entry_point.is_empty() {
            return Err(RunnerError::Failed(
                "entry_point is only valid for local-shell-script runner".to_owned(),
            ));
        }
        let params = LocalParams::read(&ctx.runner_parameters)?;
        let Some(cmd) = params.cmd.clone() else {
            return Err(bad("cmd", "is required"));
        };
        let line = wrap(ShellLine::raw_script(cmd), &params, &self.settings);
        let uses_sudo = line.as_str().starts_with("sudo ");
        execute(line, &params, &ctx, uses_sudo).await
    }
}

/// `local-shell-script`: runs the action's `entry_point` (under `<pack>/actions/`) with the
/// action parameters as arguments (named `--name=value` first, then positional by `position`).
#[derive(Debug, Clone, Default)]
pub struct LocalShellScriptRunner {
    settings: Arc<LocalShellSettings>,
}

impl LocalShellScriptRunner {
    /// A runner with `settings`.
    pub fn new(settings: LocalShellSettings) -> Self {
        LocalShellScriptRunner {
            settings: Arc::new(settings),
        }
    }
}

/// StackStorm's `get_entry_point_abs_path`: an absolute entry point must lie inside the pack;
/// a relative one, normalised already (no `..`, `.` or doubled `/`), resolves under
/// `<pack>/actions/`.
///
/// # Errors
/// [`RunnerError::EntryPoint`] when the path leaves the pack or the file does not exist.
pub fn resolve_entry_point(pack_dir: &Path, entry_point: &str) -> Result<PathBuf, RunnerError> {
    let fail = |message: &str| RunnerError::EntryPoint {
        path: entry_point.to_owned(),
        message: message.to_owned(),
    };
    let path = Path::new(entry_point);
    let resolved = if path.is_absolute() {
        if !path.starts_with(pack_dir) || path.components().any(|c| c == Component::ParentDir) {
            return Err(fail("is located outside of the pack directory"));
        }
        path.to_path_buf()
    } else {
        let normal = path.components().all(|c| matches!(c, Component::Normal(_)))
            && !entry_point.contains("//")
            && !entry_point.ends_with('/');
        if !normal {
            return Err(fail(
                "is not a normalised path inside the pack's actions/ directory",
            ));
        }
        pack_dir.join("actions").join(path)
    };
    if !resolved.is_file() {
        return Err(RunnerError::EntryPoint {
            path: resolved.display().to_string(),
            message: "no such file".to_owned(),
        });
    }
    Ok(resolved)
}

fn read_only_fs(path: &Path) -> bool {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        .unwrap_or(false)
}

#[async_trait]
impl Runner for LocalShellScriptRunner {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        if ctx.action.entry_point.is_empty() {
            return Err(RunnerError::Failed(
                "Missing entry_point action metadata attribute".to_owned(),
            ));
        }
        let params = LocalParams::read(&ctx.runner_parameters)?;
        if opt_str(&ctx.runner_parameters, "content_version")?.is_some_and(|v| !v.is_empty()) {
            return Err(bad(
                "content_version",
                "running a pack at another git revision is not supported yet",
            ));
        }
        let Some(pack_dir) = ctx.pack_dir.as_deref() else {
            return Err(RunnerError::EntryPoint {
                path: ctx.action.entry_point.clone(),
                message: "the pack's directory is not known".to_owned(),
            });
        };
        let script = resolve_entry_point(pack_dir, &ctx.action.entry_point)?;
        let script_text = script.to_string_lossy().into_owned();
        let arguments = script_arguments(&ctx.action.parameters, &ctx.parameters, &params.kwarg_op);
        let inner = ShellLine::new().word(&script_text).quoted_words(&arguments);
        let wrapped = wrap(inner, &params, &self.settings);
        let uses_sudo = wrapped.as_str().starts_with("sudo ");
        let line = if read_only_fs(&script) {
            wrapped
        } else {
            ShellLine::new()
                .word("chmod")
                .word("+x")
                .word(&script_text)
                .then(wrapped)
        };
        execute(line, &params, &ctx, uses_sudo).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripping_and_parsing() {
        assert_eq!(strip_shell_chars("a\r\n"), "a");
        assert_eq!(strip_shell_chars("a\n\n"), "a\n");
        assert_eq!(strip_shell_chars("a\n\r"), "a\n");
        assert_eq!(auto_parse("42"), json!(42));
        assert_eq!(auto_parse("007"), json!("007"));
        assert_eq!(auto_parse("{\"a\": [1]}"), json!({"a": [1]}));
        assert_eq!(auto_parse("\"s\""), json!("s"));
        assert_eq!(auto_parse("null"), Value::Null);
        assert_eq!(auto_parse(""), json!(""));
    }

    #[test]
    fn sudo_messages() {
        let stderr =
            "[sudo] password for stanley: Sorry, try again.\nsudo: 3 incorrect password attempts\n";
        assert!(has_incorrect_password_attempts(stderr));
        assert_eq!(sudo_prompt_user(stderr), Some("stanley"));
        assert!(!has_incorrect_password_attempts(
            "sudo: 1 incorrect password attempt\n"
        ));
        assert_eq!(sudo_prompt_user("nothing"), None);
    }

    #[test]
    fn status_map() {
        assert_eq!(status_for(0), ExecutionStatus::Succeeded);
        assert_eq!(status_for(1), ExecutionStatus::Failed);
        assert_eq!(status_for(2), ExecutionStatus::Failed);
        assert_eq!(status_for(-9), ExecutionStatus::Timeout);
        assert_eq!(status_for(-15), ExecutionStatus::Abandoned);
    }

    #[test]
    fn wrapping() {
        let params = LocalParams::read(
            json!({"sudo": true, "sudo_password": "pw"})
                .as_object()
                .expect("object"),
        )
        .expect("valid");
        let line = wrap(
            ShellLine::raw_script("echo 'hi'"),
            &params,
            &LocalShellSettings::default(),
        );
        assert_eq!(
            line.as_str(),
            "sudo -S -E -- bash -c 'echo '\"'\"'hi'\"'\"''"
        );
        let plain = LocalParams::read(&Map::new()).expect("valid");
        let other = LocalShellSettings {
            system_user: Some("nobody-such".to_owned()),
        };
        assert_eq!(
            wrap(ShellLine::raw_script("id"), &plain, &other).as_str(),
            "sudo -E -H -u nobody-such -- bash -c id"
        );
    }

    #[test]
    fn entry_points() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("actions/sub")).expect("mkdir");
        std::fs::write(dir.path().join("actions/sub/x.sh"), "").expect("write");
        assert!(resolve_entry_point(dir.path(), "sub/x.sh").is_ok());
        for bad in [
            "../x.sh",
            "sub/../sub/x.sh",
            "./sub/x.sh",
            "sub//x.sh",
            "/etc/passwd",
        ] {
            assert!(
                matches!(
                    resolve_entry_point(dir.path(), bad),
                    Err(RunnerError::EntryPoint { .. })
                ),
                "{bad}"
            );
        }
        let abs = dir.path().join("actions/sub/x.sh");
        assert!(resolve_entry_point(dir.path(), &abs.to_string_lossy()).is_ok());
        assert!(resolve_entry_point(dir.path(), "missing.sh").is_err());
    }
}
