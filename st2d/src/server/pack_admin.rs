//! Pack install and uninstall: the `pack-manager` runner behind the built-in `packs.install`
//! and `packs.uninstall` actions (StackStorm runs Python workflows for them; the observable
//! result is the same: an execution whose `result.output.packs_list` names the packs).
//!
//! ```text
//! install <source>: parse (dir | file:// | git URL, `=ref` / `#ref`)
//!   ─► fetch into <packs dir>/.st2-install-<id>/fetched (copy, or `git clone` + checkout)
//!   ─► read pack.yaml: ref, stackstorm_version, dependencies
//!   ─► validate the pack alone with the loader (any error: stop, nothing changed)
//!   ─► swap: the old directory moved aside, the new one renamed into place
//!   ─► register (as POST /packs/register); on failure the old directory comes back
//! uninstall <pack>: refuse system packs and packs outside the packs directories
//!   ─► directory renamed aside ─► content unregistered ─► directory deleted
//! ```
//!
//! Only local directories and git repositories are sources: without internet access there is
//! no StackStorm Exchange index to resolve a bare pack name.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use st2_core::model::PackMeta;
use st2_core::runner::{RunContext, RunOutcome, Runner, RunnerError};
use st2_core::store::{ExecutionStatus, OutputType};

use super::ApiState;
use super::routes::packs::register_from_disk;
use super::rules_file;

/// The runner type name of `packs.install` / `packs.uninstall`.
pub const RUNNER_NAME: &str = "pack-manager";

/// Packs that are part of every installation and cannot be installed over or removed
/// (StackStorm's system packs).
pub const SYSTEM_PACKS: &[&str] = &["core", "packs"];

/// The StackStorm version packs' `stackstorm_version` ranges are checked against (what
/// `GET /v1` reports).
pub const STACKSTORM_VERSION: (u64, u64, u64) = (3, 9, 0);

/// Connects the runner to the API state (packs directories, data files); one pack operation
/// runs at a time.
#[derive(Debug, Default)]
pub struct PackAdmin {
    state: OnceLock<Weak<ApiState>>,
    busy: tokio::sync::Mutex<()>,
}

impl PackAdmin {
    /// A new, unattached admin.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Use `state` from now on (the first call wins; [`super::router`] makes it).
    pub fn attach(&self, state: &Arc<ApiState>) {
        let _ = self.state.set(Arc::downgrade(state));
    }

    fn state(&self) -> Result<Arc<ApiState>, RunnerError> {
        self.state.get().and_then(Weak::upgrade).ok_or_else(|| {
            RunnerError::Failed(
                "pack management needs the API server (st2d serve); it is not running".to_owned(),
            )
        })
    }
}

/// The `pack-manager` runner.
#[derive(Debug, Clone)]
pub struct PackRunner {
    admin: Arc<PackAdmin>,
    python: Option<PythonPacks>,
}

/// What sets up and removes the virtualenvs of installed packs.
#[derive(Debug, Clone)]
struct PythonPacks {
    runner: st2_runners::PythonRunner,
    virtualenvs_dir: PathBuf,
}

impl PackRunner {
    /// A runner working through `admin`.
    pub fn new(admin: Arc<PackAdmin>) -> Self {
        Self {
            admin,
            python: None,
        }
    }

    /// Give installed packs with a `requirements.txt` a virtualenv through `python` (as
    /// StackStorm's `packs.setup_virtualenv`), and remove `<virtualenvs_dir>/<pack>` on
    /// uninstall.
    pub fn with_python(
        mut self,
        python: st2_runners::PythonRunner,
        virtualenvs_dir: PathBuf,
    ) -> Self {
        self.python = Some(PythonPacks {
            runner: python,
            virtualenvs_dir,
        });
        self
    }
}

#[async_trait]
impl Runner for PackRunner {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        let state = self.admin.state()?;
        let packs = string_list(&ctx.parameters, "packs")?;
        let _one_at_a_time = self.admin.busy.lock().await;
        if let Some(options) = &state.settings.load {
            let dirs = options.packs_dirs.clone();
            let _ = tokio::task::spawn_blocking(move || sweep_stale(&dirs)).await;
        }
        match ctx.action.reference.as_str() {
            "packs.install" => Ok(install(&state, &ctx, &packs, self.python.as_ref()).await),
            "packs.uninstall" => Ok(uninstall(&state, &ctx, &packs, self.python.as_ref()).await),
            other => Err(RunnerError::Failed(format!(
                "the {RUNNER_NAME} runner runs packs.install and packs.uninstall only, not {other}"
            ))),
        }
    }
}

fn string_list(parameters: &Map<String, Value>, name: &str) -> Result<Vec<String>, RunnerError> {
    let bad = || RunnerError::Parameter {
        name: name.to_owned(),
        message: "must be a list of strings".to_owned(),
    };
    match parameters.get(name) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

fn say(ctx: &RunContext, line: &str) {
    ctx.output.emit(OutputType::Stdout, &format!("{line}\n"));
}

/// Where a pack comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackSource {
    /// A local directory that is not a git repository: copied.
    Directory(PathBuf),
    /// A git repository (URL or local path): cloned, then `reference` checked out.
    Git {
        /// What `git clone` is given.
        url: String,
        /// Branch, tag or commit (`URL=ref` or `URL#ref`).
        reference: Option<String>,
    },
}

/// Parse one `packs` entry as StackStorm does, except for bare names: `<path>` or
/// `file://<path>` (a directory, copied unless it is a git repository), a git URL
/// (`https://…`, `ssh://…`, `git@host:…`, `owner/repo` for GitHub), each optionally followed by
/// `=<ref>` (StackStorm's separator) or `#<ref>`.
///
/// # Errors
/// A bare name (no Exchange index here), an empty entry, a missing directory, an option-like
/// URL or ref.
pub fn parse_source(entry: &str) -> Result<PackSource, String> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err("an empty pack name or URL was given".to_owned());
    }
    let (location, reference) = match entry.split_once('=') {
        Some((l, r)) => (l, Some(r)),
        None => match entry.rsplit_once('#') {
            Some((l, r)) => (l, Some(r)),
            None => (entry, None),
        },
    };
    let reference = match reference.map(str::trim) {
        Some("") => return Err(format!("\"{entry}\" names an empty version or ref")),
        Some(r) if r.starts_with('-') => {
            return Err(format!(
                "\"{r}\" is not a valid version, hash, tag or branch"
            ));
        }
        other => other.map(str::to_owned),
    };
    if location.starts_with('-') {
        return Err(format!("\"{location}\" is not a valid pack location"));
    }
    let local = location
        .strip_prefix("file://")
        .map(PathBuf::from)
        .or_else(|| {
            (location.starts_with('/') || location.starts_with("./") || location.starts_with("../"))
                .then(|| PathBuf::from(location))
        });
    if let Some(path) = local {
        if !path.is_dir() {
            return Err(format!(
                "Local pack directory \"{}\" doesn't exist",
                path.display()
            ));
        }
        if is_git_repository(&path) {
            return Ok(PackSource::Git {
                url: path.to_string_lossy().into_owned(),
                reference,
            });
        }
        if let Some(r) = reference {
            return Err(format!(
                "\"{}\" is not a git repository, so no version or ref (\"{r}\") can be checked out",
                path.display()
            ));
        }
        return Ok(PackSource::Directory(path));
    }
    let is_url = location.contains("://")
        || (location.contains('@') && location.contains(':'))
        || location.contains('/');
    if !is_url {
        return Err(format!(
            "Pack \"{location}\" cannot be installed by name: the StackStorm Exchange index is \
             not available here (no internet access). Give a local pack directory (an absolute \
             path or a file:// URL) or a git repository URL."
        ));
    }
    let url = if location.split('/').count() == 2 && !location.contains('@') {
        format!("https://github.com/{location}")
    } else {
        location.to_owned()
    };
    Ok(PackSource::Git { url, reference })
}

fn is_git_repository(path: &Path) -> bool {
    path.join(".git").exists()
        || (path.join("HEAD").is_file()
            && path.join("objects").is_dir()
            && path.join("refs").is_dir())
}

/// A directory removed when dropped (the staging area of one operation).
struct Scratch(PathBuf);

impl Scratch {
    /// The path, no longer removed on drop.
    fn into_path(mut self) -> PathBuf {
        std::mem::take(&mut self.0)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty()
            && self.0.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.0)
        {
            tracing::warn!(path = %self.0.display(), error = %e, "could not remove a pack staging directory");
        }
    }
}

/// How old a staging directory must be before it counts as left behind by an operation that
/// died with its process (an operation on another node sharing the directory may still use a
/// younger one).
pub const STALE_STAGING: Duration = Duration::from_secs(3600);

/// Remove the staging directories (`.st2-install-*`, `.st2-uninstall-*`) older than
/// [`STALE_STAGING`] in `dirs`: what an install or uninstall interrupted by a crash left.
pub fn sweep_stale(dirs: &[PathBuf]) {
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(".st2-install-") || name.starts_with(".st2-uninstall-")) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_STAGING);
            if old && entry.file_type().is_ok_and(|t| t.is_dir()) {
                match std::fs::remove_dir_all(entry.path()) {
                    Ok(()) => {
                        tracing::info!(path = %entry.path().display(), "removed a stale pack staging directory")
                    }
                    Err(e) => {
                        tracing::warn!(path = %entry.path().display(), error = %e, "could not remove a stale pack staging directory")
                    }
                }
            }
        }
    }
}

fn scratch(parent: &Path, kind: &str) -> Result<Scratch, String> {
    let dir = parent.join(format!(".st2-{kind}-{}", st2_core::store::new_id()));
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(Scratch(dir))
}

/// Copy directory `from` to the new directory `to` (symbolic links copied as links).
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
        if kind.is_symlink() {
            let link = std::fs::read_link(&source)
                .map_err(|e| format!("cannot read link {}: {e}", source.display()))?;
            #[cfg(unix)]
            std::os::unix::fs::symlink(&link, &target)
                .map_err(|e| format!("cannot create link {}: {e}", target.display()))?;
            #[cfg(not(unix))]
            std::fs::copy(source.parent().unwrap_or(from).join(&link), &target)
                .map_err(|e| format!("cannot copy {}: {e}", source.display()))?;
        } else if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else {
            std::fs::copy(&source, &target)
                .map_err(|e| format!("cannot copy {}: {e}", source.display()))?;
        }
    }
    Ok(())
}

/// Run `git` with `args` (each its own argument, no shell); its output on failure.
async fn git(args: &[&str], env: &Map<String, Value>) -> Result<String, String> {
    let mut command = tokio::process::Command::new("git");
    command
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        if let Some(v) = v.as_str() {
            command.env(k, v);
        }
    }
    let output = command
        .output()
        .await
        .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(stderr.trim().to_owned())
    }
}

/// The variables `env` may pass to git: proxy settings only (others, such as
/// `GIT_SSH_COMMAND` or `GIT_CONFIG_*`, would let a parameter run commands).
pub const GIT_ENV_ALLOWED: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

/// The `env` parameter as variables for git.
///
/// # Errors
/// A variable not in [`GIT_ENV_ALLOWED`] or a value that is not a string, named.
fn git_env(env: Option<&Value>) -> Result<Map<String, Value>, String> {
    let Some(Value::Object(env)) = env else {
        return Ok(Map::new());
    };
    for (k, v) in env {
        if !GIT_ENV_ALLOWED.contains(&k.as_str()) {
            return Err(format!(
                "env: \"{k}\" is not passed to git; only proxy settings are ({})",
                GIT_ENV_ALLOWED.join(", ")
            ));
        }
        if !v.is_string() {
            return Err(format!("env: \"{k}\" must be a string"));
        }
    }
    Ok(env.clone())
}

/// Fetch `source` into the new directory `into`.
async fn fetch(
    source: &PackSource,
    into: &Path,
    env: &Map<String, Value>,
    ctx: &RunContext,
) -> Result<(), String> {
    let into_text = into.to_string_lossy().into_owned();
    match source {
        PackSource::Directory(dir) => {
            let dir = dir
                .canonicalize()
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            if into.starts_with(&dir) {
                return Err(format!(
                    "\"{}\" holds the packs directory; it cannot be installed as a pack",
                    dir.display()
                ));
            }
            say(ctx, &format!("Copying {}", dir.display()));
            let to = into.to_path_buf();
            tokio::task::spawn_blocking(move || copy_tree(&dir, &to))
                .await
                .map_err(|e| format!("copying failed: {e}"))?
        }
        PackSource::Git { url, reference } => {
            say(ctx, &format!("Cloning {url}"));
            git(&["clone", "--quiet", "--", url, &into_text], env)
                .await
                .map_err(|e| format!("git clone of {url} failed: {e}"))?;
            if let Some(r) = reference {
                checkout(&into_text, url, r, env, ctx).await?;
            }
            Ok(())
        }
    }
}

fn looks_like_version(r: &str) -> bool {
    let parts: Vec<&str> = r.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Check out branch, tag or commit `reference` (then `v<reference>` for a version, as
/// StackStorm tags pack versions).
async fn checkout(
    repo: &str,
    url: &str,
    reference: &str,
    env: &Map<String, Value>,
    ctx: &RunContext,
) -> Result<(), String> {
    let mut candidates = vec![reference.to_owned()];
    if looks_like_version(reference) {
        candidates.push(format!("v{reference}"));
    }
    for candidate in &candidates {
        if git(&["-C", repo, "checkout", "--quiet", candidate, "--"], env)
            .await
            .is_ok()
        {
            say(ctx, &format!("Checked out {candidate}"));
            return Ok(());
        }
    }
    let mut message =
        format!("\"{reference}\" is not a valid version, hash, tag or branch in {url}.");
    if let Ok(tags) = git(&["-C", repo, "tag", "--list"], env).await {
        let versions: Vec<&str> = tags
            .lines()
            .map(|t| t.trim().trim_start_matches('v'))
            .filter(|t| looks_like_version(t))
            .collect();
        if !versions.is_empty() {
            let _ = write!(message, " Available versions are: {}.", versions.join(", "));
        }
    }
    Err(message)
}

fn read_manifest(dir: &Path) -> Result<PackMeta, String> {
    let path = dir.join("pack.yaml");
    if !path.is_file() {
        return Err("Pack is missing a manifest file (pack.yaml).".to_owned());
    }
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read pack.yaml: {e}"))?;
    let doc = st2_core::yaml::parse_bytes(&bytes, &st2_core::yaml::YamlLimits::default())
        .map_err(|e| format!("pack.yaml is not valid YAML: {e}"))?;
    PackMeta::from_manifest(&doc.to_json())
        .map_err(|errors| format!("pack.yaml is not valid: {}", errors.join("; ")))
}

fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.trim().splitn(3, '.');
    let major = parts.next()?.trim().parse().ok()?;
    let minor = parts.next()?.trim().parse().ok()?;
    let patch_text = parts.next()?.trim();
    let digits: String = patch_text
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor, digits.parse().ok()?))
}

/// Whether `version` satisfies every comma-separated constraint of `range` (`>=1.8.0, <2.2.0`,
/// StackStorm's `stackstorm_version`). An unreadable constraint does not match.
pub fn version_in_range(version: (u64, u64, u64), range: &str) -> bool {
    range
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .all(|constraint| {
            let (op, rest) = ["==", ">=", "<=", ">", "<", "="]
                .iter()
                .find_map(|op| constraint.strip_prefix(op).map(|rest| (*op, rest)))
                .unwrap_or(("==", constraint));
            let Some(wanted) = parse_version(rest) else {
                return false;
            };
            match op {
                ">=" => version >= wanted,
                "<=" => version <= wanted,
                ">" => version > wanted,
                "<" => version < wanted,
                _ => version == wanted,
            }
        })
}

/// What one successful install did.
struct Installed {
    reference: String,
    version: String,
    path: PathBuf,
    warnings: Vec<String>,
}

async fn install(
    state: &ApiState,
    ctx: &RunContext,
    entries: &[String],
    python: Option<&PythonPacks>,
) -> RunOutcome {
    let force = ctx.parameters.get("force").and_then(Value::as_bool) == Some(true);
    let skip_dependencies = ctx
        .parameters
        .get("skip_dependencies")
        .and_then(Value::as_bool)
        == Some(true);
    let env = match git_env(ctx.parameters.get("env")) {
        Ok(env) => env,
        Err(message) => return RunOutcome::failed(json!({"error": message})),
    };
    let timeout = Duration::from_secs(
        ctx.parameters
            .get("timeout")
            .and_then(Value::as_u64)
            .unwrap_or(600)
            .max(1),
    );
    let mut done: Vec<Installed> = Vec::new();
    let summary = |done: &[Installed]| {
        json!({
            "packs_list": done.iter().map(|d| d.reference.clone()).collect::<Vec<_>>(),
            "warning_list": done.iter().flat_map(|d| d.warnings.clone()).collect::<Vec<_>>(),
            "conflict_list": null,
        })
    };
    let deadline = tokio::time::Instant::now() + timeout;
    for entry in entries {
        say(ctx, &format!("Installing {entry}"));
        let step = install_one(state, ctx, entry, force, skip_dependencies, &env, deadline).await;
        match step {
            Ok(mut installed) => {
                if let Some(python) = python
                    && installed.path.join("requirements.txt").is_file()
                {
                    let pack = installed.reference.clone();
                    say(ctx, &format!("Setting up the virtualenv of \"{pack}\""));
                    match python.runner.prepare_pack(&pack, &installed.path).await {
                        st2_runners::python::PackEnvironment::Virtualenv(path) => {
                            say(ctx, &format!("Virtualenv ready in {}", path.display()));
                        }
                        st2_runners::python::PackEnvironment::Skipped(why) => {
                            installed.warnings.push(why);
                        }
                        st2_runners::python::PackEnvironment::SystemPython => {}
                    }
                }
                say(
                    ctx,
                    &format!(
                        "Installed pack \"{}\" {} into {}",
                        installed.reference,
                        installed.version,
                        installed.path.display()
                    ),
                );
                done.push(installed);
            }
            Err(Stop::Failed(message)) => {
                let mut output = summary(&done);
                output["message"] = json!(message);
                return RunOutcome::failed(json!({
                    "error": format!("Failed to install pack \"{entry}\": {message}"),
                    "output": output,
                }));
            }
            Err(Stop::Status(status, message)) => {
                return RunOutcome::with_status(
                    status,
                    json!({"error": message, "output": summary(&done)}),
                );
            }
        }
    }
    let mut output = summary(&done);
    output["message"] = json!("Successfully installed packs");
    RunOutcome::succeeded(json!({
        "output": output,
        "packs": done.iter().map(|d| json!({
            "ref": d.reference,
            "version": d.version,
            "path": d.path.to_string_lossy(),
        })).collect::<Vec<_>>(),
    }))
}

/// Why an install step stopped.
enum Stop {
    /// It failed; nothing of this pack changed.
    Failed(String),
    /// Timed out or canceled while fetching; nothing of this pack changed.
    Status(ExecutionStatus, String),
}

impl From<String> for Stop {
    fn from(message: String) -> Self {
        Stop::Failed(message)
    }
}

fn packs_dirs(state: &ApiState) -> Result<Vec<PathBuf>, String> {
    let dirs = state
        .settings
        .load
        .as_ref()
        .map(|o| o.packs_dirs.clone())
        .unwrap_or_default();
    if dirs.is_empty() {
        return Err("this server has no packs directory to install packs into".to_owned());
    }
    Ok(dirs)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

async fn install_one(
    state: &ApiState,
    ctx: &RunContext,
    entry: &str,
    force: bool,
    skip_dependencies: bool,
    env: &Map<String, Value>,
    deadline: tokio::time::Instant,
) -> Result<Installed, Stop> {
    let source = parse_source(entry)?;
    let dirs = packs_dirs(state)?;
    let base = dirs[0].clone();
    std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    let staging = scratch(&base, "install")?;
    let fetched = staging.0.join("fetched");
    tokio::select! {
        r = fetch(&source, &fetched, env, ctx) => r?,
        () = tokio::time::sleep_until(deadline) => {
            return Err(Stop::Status(
                ExecutionStatus::Timeout,
                format!("fetching \"{entry}\" did not finish within the action's timeout"),
            ));
        }
        () = ctx.cancel.cancelled() => {
            return Err(Stop::Status(ExecutionStatus::Canceled, "canceled while fetching".to_owned()));
        }
    }
    let meta = read_manifest(&fetched)?;
    let reference = meta.reference.clone();
    if SYSTEM_PACKS.contains(&reference.as_str()) {
        return Err(Stop::Failed(format!(
            "Pack \"{reference}\" is a system pack and cannot be installed over"
        )));
    }
    if !force
        && let Some(range) = &meta.stackstorm_version
        && !version_in_range(STACKSTORM_VERSION, range)
    {
        let (a, b, c) = STACKSTORM_VERSION;
        return Err(Stop::Failed(format!(
            "Pack \"{reference}\" requires StackStorm \"{range}\", but current version is \
             \"{a}.{b}.{c}\". You can override this restriction by providing the \"force\" \
             flag, but the pack is not guaranteed to work."
        )));
    }
    let catalog = state.engine.catalog();
    let target = base.join(&reference);
    if let Some(existing) = catalog.pack(&reference) {
        match &existing.path {
            Some(path) if !same_dir(path, &target) => {
                return Err(Stop::Failed(format!(
                    "Pack \"{reference}\" is already installed in {}, outside {}; remove it \
                     first",
                    path.display(),
                    base.display()
                )));
            }
            _ => {}
        }
    }
    let mut warnings = Vec::new();
    if !skip_dependencies {
        let missing: Vec<&str> = meta
            .dependencies
            .iter()
            .map(String::as_str)
            .filter(|d| {
                let name = d.split(['=', '#']).next().unwrap_or(d);
                let name = name
                    .trim_end_matches(".git")
                    .rsplit('/')
                    .next()
                    .unwrap_or(name);
                catalog.pack(name).is_none() && !catalog.packs().any(|p| p.meta.name == name)
            })
            .collect();
        if !missing.is_empty() {
            warnings.push(format!(
                "Pack \"{reference}\" depends on {} which {} not installed; dependencies are not \
                 installed automatically here, install them first.",
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" }
            ));
        }
    }
    // The pack directory carries its ref as its name while it is checked.
    let staged = staging.0.join(&reference);
    std::fs::rename(&fetched, &staged)
        .map_err(|e| format!("cannot rename {}: {e}", fetched.display()))?;
    validate(state, &staged).await?;
    let old_config = target.join("config.yaml");
    if old_config.is_file() {
        std::fs::copy(&old_config, staged.join("config.yaml"))
            .map_err(|e| format!("cannot keep {}: {e}", old_config.display()))?;
    }
    let previous = staging.0.join("previous");
    let had_previous = target.exists();
    if had_previous {
        std::fs::rename(&target, &previous)
            .map_err(|e| format!("cannot move the installed {} aside: {e}", target.display()))?;
    }
    if let Err(e) = std::fs::rename(&staged, &target) {
        let restored = !had_previous || std::fs::rename(&previous, &target).is_ok();
        return Err(Stop::Failed(format!(
            "cannot move the pack into {}: {e}{}",
            target.display(),
            if restored {
                ""
            } else {
                "; the previous version could not be put back"
            }
        )));
    }
    if let Err(e) = register_from_disk(state, vec![reference.clone()], true).await {
        // Put the previous state back: the old directory (if any), registered again.
        let failed = staging.0.join("failed");
        let mut restored = std::fs::rename(&target, &failed).is_ok();
        if restored && had_previous {
            restored = std::fs::rename(&previous, &target).is_ok();
        }
        let again = register_from_disk(state, Vec::new(), false).await;
        return Err(Stop::Failed(format!(
            "registering the pack failed: {}{}",
            e.message,
            if restored && again.is_ok() {
                "; the previous state was restored"
            } else {
                "; the previous state could not be fully restored"
            }
        )));
    }
    Ok(Installed {
        reference,
        version: meta.version,
        path: target,
        warnings,
    })
}

/// Load the staged pack on its own, as registering would: any error refuses it.
async fn validate(state: &ApiState, staged: &Path) -> Result<(), String> {
    let mut options = state.settings.load.clone().unwrap_or_default();
    options.packs_dirs.clear();
    options.pack_dirs = vec![staged.to_path_buf()];
    let report = tokio::task::spawn_blocking(move || st2_core::load(&options))
        .await
        .map_err(|e| format!("checking the pack failed: {e}"))?;
    let errors: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_error() && d.file.starts_with(staged))
        .map(|d| {
            let file = d.file.strip_prefix(staged).unwrap_or(&d.file);
            format!("{}:{}: {}", file.display(), d.line, d.message)
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("the pack is not valid: {}", errors.join("; ")))
    }
}

async fn uninstall(
    state: &ApiState,
    ctx: &RunContext,
    packs: &[String],
    python: Option<&PythonPacks>,
) -> RunOutcome {
    let blocked: Vec<&str> = packs
        .iter()
        .map(String::as_str)
        .filter(|p| SYSTEM_PACKS.contains(p))
        .collect();
    if !blocked.is_empty() {
        return RunOutcome::failed(json!({
            "error": format!(
                "Uninstall includes an uninstallable pack - {}.",
                blocked.join(", ")
            ),
        }));
    }
    let mut removed = Vec::new();
    for pack in packs {
        match uninstall_one(state, pack).await {
            Ok(path) => {
                say(
                    ctx,
                    &format!("Removed pack \"{pack}\" ({})", path.display()),
                );
                if let Some(python) = python {
                    let venv = python.virtualenvs_dir.join(pack);
                    if venv.is_dir() {
                        let gone =
                            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&venv))
                                .await;
                        say(
                            ctx,
                            &if matches!(gone, Ok(Ok(()))) {
                                format!("Removed the virtualenv of \"{pack}\"")
                            } else {
                                format!("Could not remove the virtualenv of \"{pack}\"")
                            },
                        );
                    }
                }
                removed.push(pack.clone());
            }
            Err(message) => {
                return RunOutcome::failed(json!({
                    "error": format!("Failed to uninstall pack \"{pack}\": {message}"),
                    "output": {"packs_list": removed},
                }));
            }
        }
    }
    RunOutcome::succeeded(json!({
        "output": {"packs_list": removed, "message": "Successfully uninstalled packs"},
    }))
}

async fn uninstall_one(state: &ApiState, pack: &str) -> Result<PathBuf, String> {
    let dirs = packs_dirs(state)?;
    let catalog = state.engine.catalog();
    let Some(loaded) = catalog.pack(pack) else {
        return Err(format!("pack \"{pack}\" is not installed"));
    };
    let Some(path) = loaded.path.clone() else {
        return Err(format!("pack \"{pack}\" is built in and cannot be removed"));
    };
    let parent = path.parent().unwrap_or(&path);
    if !dirs.iter().any(|d| same_dir(d, parent)) {
        return Err(format!(
            "pack \"{pack}\" was loaded from {}, which is not in a packs directory ({}); it is \
             not removed",
            path.display(),
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // The directory disappears at once (a rename), then the content, then the files.
    let trash = scratch(parent, "uninstall")?;
    std::fs::rename(&path, trash.0.join(pack))
        .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    let before = state.engine.catalog();
    let contents = state.engine.remove_pack(pack);
    // Its sensors stop with it; its aliases' deletion is announced.
    state.engine.sync_sensors(&[]).await;
    for reference in &contents.aliases {
        if let Some(alias) = before.alias(reference) {
            state
                .engine
                .alias_changed("delete", super::routes::aliases::present(alias));
        }
    }
    tracing::info!(pack, ?contents, "pack unregistered");
    for file in [
        &state.settings.rules_file,
        &state.settings.actions_file,
        &state.settings.policies_file,
    ]
    .into_iter()
    .flatten()
    {
        rules_file::forget_pack(file, pack).await?;
    }
    let doomed = trash.into_path();
    tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&doomed))
        .await
        .map_err(|e| format!("removing the directory failed: {e}"))?
        .map_err(|e| format!("removing the directory failed: {e}"))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_paths_git_urls_with_refs_and_never_bare_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_string_lossy().into_owned();
        assert_eq!(
            parse_source(&path),
            Ok(PackSource::Directory(dir.path().to_path_buf()))
        );
        assert_eq!(
            parse_source(&format!("file://{path}")),
            Ok(PackSource::Directory(dir.path().to_path_buf()))
        );
        assert!(
            parse_source(&format!("{path}=1.0.0"))
                .expect_err("a ref needs git")
                .contains("not a git repository")
        );
        assert_eq!(
            parse_source("https://example.invalid/x/stackstorm-foo.git=v1.2.0"),
            Ok(PackSource::Git {
                url: "https://example.invalid/x/stackstorm-foo.git".into(),
                reference: Some("v1.2.0".into()),
            })
        );
        assert_eq!(
            parse_source("https://example.invalid/x/foo#dev"),
            Ok(PackSource::Git {
                url: "https://example.invalid/x/foo".into(),
                reference: Some("dev".into()),
            })
        );
        assert_eq!(
            parse_source("StackStorm-Exchange/stackstorm-aws"),
            Ok(PackSource::Git {
                url: "https://github.com/StackStorm-Exchange/stackstorm-aws".into(),
                reference: None,
            })
        );
        let by_name = parse_source("aws").expect_err("names need the Exchange");
        assert!(by_name.contains("cannot be installed by name"), "{by_name}");
        assert!(parse_source("https://x.invalid/r=--upload-pack=evil").is_err());
        assert!(parse_source("--upload-pack=x").is_err());
        assert!(
            parse_source("/does/not/exist/anywhere")
                .expect_err("missing")
                .contains("doesn't exist")
        );
    }

    #[test]
    fn only_proxy_settings_reach_git() {
        assert_eq!(git_env(None), Ok(Map::new()));
        let ok = json!({"https_proxy": "http://proxy.invalid:3128"});
        assert_eq!(git_env(Some(&ok)).expect("allowed").len(), 1);
        let bad = git_env(Some(&json!({"GIT_SSH_COMMAND": "touch /tmp/x"}))).expect_err("refused");
        assert!(bad.contains("GIT_SSH_COMMAND"), "{bad}");
        assert!(git_env(Some(&json!({"http_proxy": 1}))).is_err());
    }

    #[test]
    fn only_stale_staging_directories_are_swept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().to_path_buf();
        for name in [
            ".st2-install-old",
            ".st2-uninstall-old",
            ".st2-install-new",
            "mypack",
        ] {
            std::fs::create_dir(base.join(name)).expect("dir");
            std::fs::write(base.join(name).join("f"), "x").expect("file");
        }
        let long_ago = std::time::SystemTime::now() - 2 * STALE_STAGING;
        for name in [".st2-install-old", ".st2-uninstall-old", "mypack"] {
            std::fs::File::open(base.join(name))
                .and_then(|f| f.set_modified(long_ago))
                .expect("set mtime");
        }
        sweep_stale(std::slice::from_ref(&base));
        let mut left: Vec<String> = std::fs::read_dir(&base)
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".st2-install-new", "mypack"]);
    }

    #[test]
    fn stackstorm_version_ranges() {
        assert!(version_in_range((3, 9, 0), ">=3.0.0"));
        assert!(version_in_range((3, 9, 0), ">=1.8.0, <4.0.0"));
        assert!(!version_in_range((3, 9, 0), ">=1.8.0, <2.2.0"));
        assert!(version_in_range((3, 9, 0), "==3.9.0"));
        assert!(!version_in_range((3, 9, 0), ">3.9.0"));
        assert!(!version_in_range((3, 9, 0), ">=x"));
    }
}
