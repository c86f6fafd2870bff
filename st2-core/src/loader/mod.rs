//! The pack loader: finds packs in directories, reads every resource file the way StackStorm's
//! registrars do, and returns a [`Catalog`] together with *every* diagnostic.
//!
//! StackStorm's rules, kept here:
//! * a pack is a directory holding `pack.yaml`; with several packs directories the first one
//!   holding a pack of a given name wins;
//! * only the top level of `actions/`, `rules/`, `sensors/`, `triggers/`, `policies/` and
//!   `aliases/` is read, files ending in `.yaml` or `.yml`, in sorted order (so workflow
//!   definitions in `actions/workflows/` are not mistaken for actions), and
//!   `actions/config.yaml` is skipped;
//! * content is registered kind by kind across all packs (trigger types, sensors, actions,
//!   rules, aliases, policies), so a rule can use a trigger type or an action from another pack;
//! * one bad file is reported and skipped; everything else still loads.
//!
//! Files are read and checked in parallel; cross-references are resolved afterwards.

mod overrides;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::builtin::{self, EmbeddedFile};
use crate::catalog::{Catalog, PackContents, PackedActions};
use crate::diagnostic::{Anchor, Diagnostic, FieldPath, Issue, Issues, Position};
use crate::model::action::ActionSpec;
use crate::model::alias::ActionAliasSpec;
use crate::model::config::{ConfigSchema, PackConfig};
use crate::model::pack::PackIdentity;
use crate::model::policy::PolicySpec;
use crate::model::rule::RuleSpec;
use crate::model::sensor::SensorSpec;
use crate::model::trigger_type::{Placement, TriggerTypeSpec};
use crate::model::{
    ActionAlias, ContentKind, Origin, Pack, PackMeta, Policy, RunnerType, Sensor, TriggerType,
};
use crate::reference::{SYSTEM_PACK, is_valid_pack_ref};
use crate::schema::Schema;
use crate::yaml::{self, Document, YamlLimits};

use overrides::{OverrideFile, PackOverrides};

/// What to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Directories whose sub-directories are packs (StackStorm's `packs_base_paths`).
    pub packs_dirs: Vec<PathBuf>,
    /// Individual pack directories.
    pub pack_dirs: Vec<PathBuf>,
    /// Where `<pack>.yaml` config values live (StackStorm's `<base_path>/configs`).
    pub configs_dir: Option<PathBuf>,
    /// Where `_global.yaml` and `<pack>.yaml` overrides live (`<base_path>/overrides`).
    pub overrides_dir: Option<PathBuf>,
    /// Size and nesting limits for every file.
    pub limits: YamlLimits,
    /// Load the built-in content (runner, policy and system trigger types, the `core` pack).
    /// A `core` pack found in a directory replaces the built-in one.
    pub builtin: bool,
    /// Extra runner types (runners written in Rust) actions may use.
    pub runner_types: Vec<RunnerType>,
    /// Worker threads for reading files; 0 means one per CPU.
    pub threads: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            packs_dirs: Vec::new(),
            pack_dirs: Vec::new(),
            configs_dir: None,
            overrides_dir: None,
            limits: YamlLimits::default(),
            builtin: true,
            runner_types: Vec::new(),
            threads: 0,
        }
    }
}

impl LoadOptions {
    /// Load the packs found in `dir`.
    pub fn packs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.packs_dirs.push(dir.into());
        self
    }

    /// Load the single pack in `dir`.
    pub fn pack_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.pack_dirs.push(dir.into());
        self
    }

    /// Read pack config values from `dir`.
    pub fn configs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.configs_dir = Some(dir.into());
        self
    }

    /// Read overrides from `dir`.
    pub fn overrides_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.overrides_dir = Some(dir.into());
        self
    }

    /// Make a runner type written in Rust available to actions.
    pub fn runner_type(mut self, runner: RunnerType) -> Self {
        self.runner_types.push(runner);
        self
    }
}

/// The result of a load: the catalog and every diagnostic, sorted by file and line.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Everything that loaded.
    pub catalog: Catalog,
    /// Everything found wrong, errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
    loaded_packs: Vec<String>,
}

/// Counts for the summary line of `st2d pack validate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Packs loaded from directories.
    pub packs: usize,
    /// Actions in them.
    pub actions: usize,
    /// Rules.
    pub rules: usize,
    /// Sensors.
    pub sensors: usize,
    /// Trigger types defined by their files.
    pub trigger_types: usize,
    /// Policies.
    pub policies: usize,
    /// Action aliases.
    pub aliases: usize,
    /// Error diagnostics.
    pub errors: usize,
    /// Warning diagnostics.
    pub warnings: usize,
}

impl LoadReport {
    /// Refs of the packs loaded from directories (built-in packs excluded), sorted.
    pub fn packs(&self) -> &[String] {
        &self.loaded_packs
    }

    /// What a pack's files define (system trigger types built into `core` are not listed).
    pub fn contents(&self, pack: &str) -> PackContents {
        let mut contents = self.catalog.contents_of(pack);
        contents.trigger_types.retain(|r| {
            self.catalog
                .trigger_type(r)
                .is_some_and(|t| !t.origin.metadata_file.is_empty())
        });
        contents
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    /// Counts of what loaded and of the diagnostics.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            packs: self.loaded_packs.len(),
            errors: self.error_count(),
            warnings: self.diagnostics.len() - self.error_count(),
            ..Summary::default()
        };
        for pack in &self.loaded_packs {
            let c = self.contents(pack);
            s.actions += c.actions.len();
            s.rules += c.rules.len();
            s.sensors += c.sensors.len();
            s.trigger_types += c.trigger_types.len();
            s.policies += c.policies.len();
            s.aliases += c.aliases.len();
        }
        s
    }
}

/// Load packs as `options` says.
pub fn load(options: &LoadOptions) -> LoadReport {
    let mut diagnostics = Vec::new();
    let mut catalog = Catalog::new();
    if options.builtin {
        for r in builtin::runner_types() {
            catalog.insert_runner_type(r);
        }
        for p in builtin::policy_types() {
            catalog.insert_policy_type(p);
        }
        for t in builtin::trigger_types() {
            catalog.insert_trigger_type(t);
        }
    }
    for r in &options.runner_types {
        if catalog.runner_type(&r.name).is_some() {
            diagnostics.push(Diagnostic::error(
                "<runner types>",
                Position::default(),
                format!("runner type `{}` is registered twice", r.name),
            ));
        } else {
            catalog.insert_runner_type(r.clone());
        }
    }

    let mut packs = discover(options, &mut diagnostics);
    let overrides = read_overrides(options, &packs, &mut diagnostics);
    if options.builtin {
        for (reference, files) in builtin::BUILTIN_PACKS {
            if !packs.iter().any(|p| p.identity.reference == *reference) {
                packs.push(builtin_pack(reference, files, &mut diagnostics));
            }
        }
    }
    packs.sort_by(|a, b| a.identity.reference.cmp(&b.identity.reference));

    let mut jobs = Vec::new();
    for kind in ContentKind::ALL {
        for (index, pack) in packs.iter().enumerate() {
            if kind == ContentKind::Actions {
                // Only names: every job is alive until the load ends, and a pack may have
                // thousands of actions.
                let mut names = pack
                    .file_names(kind, &mut diagnostics)
                    .into_iter()
                    .peekable();
                while names.peek().is_some() {
                    jobs.push(Job::Actions {
                        pack: index,
                        names: names.by_ref().take(ACTIONS_PER_JOB).collect(),
                    });
                }
                continue;
            }
            for file in pack.files(kind, &mut diagnostics) {
                jobs.push(Job::Resource {
                    pack: index,
                    kind,
                    file,
                });
            }
        }
    }
    for index in 0..packs.len() {
        jobs.push(Job::Config { pack: index });
    }

    let context = JobContext {
        packs: &packs,
        catalog: &catalog,
        overrides: &overrides,
        options,
    };
    let outputs = run_jobs(&jobs, &context, options.threads);

    for pack in &packs {
        catalog.insert_pack(Pack {
            meta: pack.meta.clone(),
            path: pack.dir.clone(),
            builtin: pack.builtin,
        });
    }
    register(outputs, &jobs, &packs, &mut catalog, &mut diagnostics);

    diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    let loaded_packs = packs
        .iter()
        .filter(|p| !p.builtin)
        .map(|p| p.identity.reference.clone())
        .collect();
    LoadReport {
        catalog,
        diagnostics,
        loaded_packs,
    }
}

/// Where a file's text comes from.
#[derive(Debug, Clone)]
enum Source {
    Disk,
    Embedded(&'static str),
}

/// One file to read, with the name diagnostics use for it.
#[derive(Debug, Clone)]
struct FileRef {
    display: PathBuf,
    source: Source,
    /// Path relative to the pack directory (`actions/local.yaml`).
    metadata_file: String,
}

impl FileRef {
    fn disk(path: PathBuf, metadata_file: String) -> Self {
        FileRef {
            display: path,
            source: Source::Disk,
            metadata_file,
        }
    }
}

/// A pack found on disk (or built in), before its content is read.
#[derive(Debug)]
struct PackEntry {
    identity: PackIdentity,
    meta: PackMeta,
    dir: Option<PathBuf>,
    builtin: bool,
    embedded: &'static [EmbeddedFile],
    /// Prefix of the paths diagnostics show for this pack's files.
    display_root: PathBuf,
}

impl PackEntry {
    /// The top-level `*.yaml`/`*.yml` files of one content folder, sorted.
    fn files(&self, kind: ContentKind, diagnostics: &mut Vec<Diagnostic>) -> Vec<FileRef> {
        self.file_names(kind, diagnostics)
            .iter()
            .map(|name| self.file(kind, name))
            .collect()
    }

    /// The file `name` of one content folder.
    fn file(&self, kind: ContentKind, name: &str) -> FileRef {
        let metadata_file = format!("{}/{name}", kind.dir());
        if self.builtin {
            let text = self
                .embedded
                .iter()
                .find(|f| f.path == metadata_file)
                .map_or("", |f| f.text);
            return FileRef {
                display: self.display_root.join(&metadata_file),
                source: Source::Embedded(text),
                metadata_file,
            };
        }
        let dir = self.dir.as_deref().unwrap_or(Path::new(""));
        FileRef::disk(dir.join(&metadata_file), metadata_file)
    }

    /// The names of the top-level `*.yaml`/`*.yml` files of one content folder, sorted.
    fn file_names(&self, kind: ContentKind, diagnostics: &mut Vec<Diagnostic>) -> Vec<Box<str>> {
        let dir_name = kind.dir();
        if self.builtin {
            let mut names: Vec<Box<str>> = self
                .embedded
                .iter()
                .filter_map(|f| {
                    let (d, rest) = f.path.split_once('/')?;
                    (d == dir_name && !rest.contains('/')).then(|| rest.into())
                })
                .collect();
            names.sort();
            return names;
        }
        let Some(pack_dir) = &self.dir else {
            return Vec::new();
        };
        let folder = pack_dir.join(dir_name);
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Vec::new(),
            Err(e) => {
                diagnostics.push(Diagnostic::error(
                    &folder,
                    Position::default(),
                    format!("cannot read the folder: {e}"),
                ));
                return Vec::new();
            }
        };
        let mut names: Vec<Box<str>> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
                if !is_yaml || name.starts_with('.') {
                    return None;
                }
                if kind == ContentKind::Actions && (name == "config.yaml" || name == "config.yml") {
                    return None;
                }
                // Follow symlinks; skip directories named like YAML files.
                if !entry.path().is_file() {
                    return None;
                }
                Some(name.into_boxed_str())
            })
            .collect();
        names.sort();
        names
    }
}

fn builtin_pack(
    reference: &str,
    embedded: &'static [EmbeddedFile],
    diagnostics: &mut Vec<Diagnostic>,
) -> PackEntry {
    let display_root = PathBuf::from("<builtin>").join(reference);
    let manifest = embedded
        .iter()
        .find(|f| f.path == "pack.yaml")
        .map(|f| f.text)
        .unwrap_or_default();
    let file = FileRef {
        display: display_root.join("pack.yaml"),
        source: Source::Embedded(manifest),
        metadata_file: "pack.yaml".to_owned(),
    };
    let meta = read_manifest(&file, reference, &YamlLimits::default(), diagnostics)
        .unwrap_or_else(|| fallback_meta(reference));
    PackEntry {
        identity: PackIdentity {
            reference: reference.to_owned(),
            dir_name: reference.to_owned(),
        },
        meta,
        dir: None,
        builtin: true,
        embedded,
        display_root,
    }
}

/// Find the packs to load.
fn discover(options: &LoadOptions, diagnostics: &mut Vec<Diagnostic>) -> Vec<PackEntry> {
    let mut candidates: Vec<(String, PathBuf)> = Vec::new();
    let mut seen_dirs: HashMap<String, PathBuf> = HashMap::new();
    for base in &options.packs_dirs {
        let entries = match std::fs::read_dir(base) {
            Ok(entries) => entries,
            Err(e) => {
                diagnostics.push(Diagnostic::error(
                    base,
                    Position::default(),
                    format!("cannot read packs directory: {e}"),
                ));
                continue;
            }
        };
        let mut found: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let path = e.path();
                (name != "__pycache__" && path.is_dir() && path.join("pack.yaml").is_file())
                    .then_some((name, path))
            })
            .collect();
        found.sort();
        for (name, path) in found {
            if let Some(first) = seen_dirs.get(&name) {
                diagnostics.push(Diagnostic::warning(
                    path.join("pack.yaml"),
                    Position::default(),
                    format!(
                        "pack `{name}` was already found in {}; this copy is ignored",
                        first.display()
                    ),
                ));
                continue;
            }
            seen_dirs.insert(name.clone(), path.clone());
            candidates.push((name, path));
        }
    }
    for dir in &options.pack_dirs {
        let manifest = dir.join("pack.yaml");
        if !manifest.is_file() {
            diagnostics.push(Diagnostic::error(
                dir,
                Position::default(),
                "not a pack directory: it has no pack.yaml",
            ));
            continue;
        }
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        if seen_dirs.contains_key(&name) {
            diagnostics.push(Diagnostic::warning(
                manifest,
                Position::default(),
                format!("pack `{name}` is given twice; this copy is ignored"),
            ));
            continue;
        }
        seen_dirs.insert(name.clone(), dir.clone());
        candidates.push((name, dir.clone()));
    }

    let mut packs: Vec<PackEntry> = Vec::new();
    let mut refs: HashMap<String, PathBuf> = HashMap::new();
    for (dir_name, dir) in candidates {
        let manifest = FileRef::disk(dir.join("pack.yaml"), "pack.yaml".to_owned());
        let meta = match read_manifest(&manifest, &dir_name, &options.limits, diagnostics) {
            Some(meta) => meta,
            None if is_valid_pack_ref(&dir_name) => fallback_meta(&dir_name),
            None => {
                diagnostics.push(Diagnostic::error(
                    &manifest.display,
                    Position::default(),
                    "the pack's content is not loaded: it has no valid ref",
                ));
                continue;
            }
        };
        if let Some(other) = refs.get(&meta.reference) {
            diagnostics.push(Diagnostic::error(
                &manifest.display,
                Position::default(),
                format!(
                    "pack ref `{}` is already used by {}; this pack is not loaded",
                    meta.reference,
                    other.display()
                ),
            ));
            continue;
        }
        refs.insert(meta.reference.clone(), dir.clone());
        packs.push(PackEntry {
            identity: PackIdentity {
                reference: meta.reference.clone(),
                dir_name,
            },
            meta,
            display_root: dir.clone(),
            dir: Some(dir),
            builtin: false,
            embedded: &[],
        });
    }
    packs
}

/// A stand-in manifest for a pack whose `pack.yaml` is invalid, so its content is still checked
/// and loaded (as StackStorm registers it).
fn fallback_meta(reference: &str) -> PackMeta {
    PackMeta {
        reference: reference.to_owned(),
        name: reference.to_owned(),
        description: String::new(),
        version: "0.0.0".to_owned(),
        author: String::new(),
        email: None,
        contributors: Vec::new(),
        keywords: Vec::new(),
        stackstorm_version: None,
        python_versions: Vec::new(),
        dependencies: Vec::new(),
        system: serde_json::Map::new(),
    }
}

fn read_manifest(
    file: &FileRef,
    dir_name: &str,
    limits: &YamlLimits,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<PackMeta> {
    let doc = read_document(file, limits, diagnostics)?;
    let mut issues = Issues::new();
    let meta = PackMeta::read(&doc.to_json(), dir_name, &mut issues);
    place(&file.display, &doc, issues.into_vec(), diagnostics);
    meta
}

fn read_overrides(
    options: &LoadOptions,
    packs: &[PackEntry],
    diagnostics: &mut Vec<Diagnostic>,
) -> OverrideSet {
    let mut set = OverrideSet::default();
    let Some(dir) = &options.overrides_dir else {
        return set;
    };
    let mut read = |name: &str, global: bool| -> Option<OverrideFile> {
        let path = dir.join(format!("{name}.yaml"));
        if !path.is_file() {
            return None;
        }
        let file = FileRef::disk(path, String::new());
        let doc = read_document(&file, &options.limits, diagnostics)?;
        let mut issues = Issues::new();
        let overrides = OverrideFile::read(&doc.to_json(), global, &mut issues);
        place(&file.display, &doc, issues.into_vec(), diagnostics);
        Some(overrides)
    };
    set.global = read("_global", true);
    for pack in packs {
        if let Some(file) = read(&pack.identity.dir_name, false) {
            set.packs.insert(pack.identity.dir_name.clone(), file);
        }
    }
    if !packs.iter().any(|p| p.identity.reference == SYSTEM_PACK)
        && let Some(file) = read(SYSTEM_PACK, false)
    {
        set.packs.insert(SYSTEM_PACK.to_owned(), file);
    }
    set
}

#[derive(Debug, Default)]
struct OverrideSet {
    global: Option<OverrideFile>,
    packs: HashMap<String, OverrideFile>,
}

impl OverrideSet {
    fn for_pack(&self, dir_name: &str) -> PackOverrides<'_> {
        PackOverrides {
            global: self.global.as_ref(),
            pack: self.packs.get(dir_name),
        }
    }
}

/// Read and parse one file, reporting problems as diagnostics.
fn read_document(
    file: &FileRef,
    limits: &YamlLimits,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Document> {
    let result = match &file.source {
        Source::Embedded(text) => yaml::parse_str(text, limits),
        Source::Disk => match std::fs::metadata(&file.display) {
            Ok(m) if m.len() > limits.max_bytes as u64 => Err(yaml::YamlError::TooLarge {
                size: m.len(),
                limit: limits.max_bytes,
            }),
            Ok(_) => match std::fs::read(&file.display) {
                Ok(bytes) => yaml::parse_bytes(&bytes, limits),
                Err(e) => {
                    diagnostics.push(Diagnostic::error(
                        &file.display,
                        Position::default(),
                        format!("cannot read the file: {e}"),
                    ));
                    return None;
                }
            },
            Err(e) => {
                diagnostics.push(Diagnostic::error(
                    &file.display,
                    Position::default(),
                    format!("cannot read the file: {e}"),
                ));
                return None;
            }
        },
    };
    match result {
        Ok(doc) => {
            for (pos, message) in &doc.warnings {
                diagnostics.push(Diagnostic::warning(&file.display, *pos, message.clone()));
            }
            Some(doc)
        }
        Err(e) => {
            diagnostics.push(Diagnostic::error(
                &file.display,
                e.position(),
                format!("invalid YAML: {e}"),
            ));
            None
        }
    }
}

/// Turn document issues into diagnostics with lines and columns.
fn place(file: &Path, doc: &Document, issues: Vec<Issue>, diagnostics: &mut Vec<Diagnostic>) {
    for issue in issues {
        let pos = doc.locate(&issue.path, issue.anchor);
        diagnostics.push(Diagnostic::new(file, pos, issue.severity, issue.message));
    }
}

/// Action files one job reads: their metadata is packed together (see [`PackedActions`]),
/// and a few dozen deflate to a fraction of what each would alone.
const ACTIONS_PER_JOB: usize = 32;

/// A unit of work for the file readers.
#[derive(Debug)]
enum Job {
    Resource {
        pack: usize,
        kind: ContentKind,
        file: FileRef,
    },
    /// Action files of one pack (their names in `actions/`), in order.
    Actions {
        pack: usize,
        names: Vec<Box<str>>,
    },
    Config {
        pack: usize,
    },
}

struct JobContext<'a> {
    packs: &'a [PackEntry],
    catalog: &'a Catalog,
    overrides: &'a OverrideSet,
    options: &'a LoadOptions,
}

/// What reading one file produced (boxed, so that the list of every job's output stays
/// small).
#[derive(Debug)]
enum Loaded {
    Nothing,
    TriggerType(Box<TriggerType>),
    Sensor(Box<Sensor>, Vec<TriggerType>),
    /// The actions of a [`Job::Actions`], packed: the worker's allocation is the one the
    /// catalog keeps (a copy made on the registering thread would leave the worker's freed in
    /// an arena that nothing allocates from again).
    Actions(Box<LoadedActions>),
    Rule(Box<RuleSpec>),
    Policy(Box<Policy>),
    Alias(Box<ActionAlias>),
    Config(Box<(Option<ConfigSchema>, Option<PackConfig>)>),
}

/// What one job loaded. Outputs come back in the order of their jobs, which hold the files:
/// an output holds nothing that only registering needs, since every output of a load is alive
/// at once and what a worker allocated is freed into that worker's arena, which nothing
/// allocates from again.
#[derive(Debug)]
struct Output {
    pack: usize,
    loaded: Loaded,
    /// Kept for files whose references are resolved later (rules, policies, aliases).
    doc: Option<Box<Document>>,
    /// Where the loaded resources are named, for duplicate warnings: `name` first (a sensor's
    /// first trigger type's), then the rest of a sensor's (its other trigger types', then its
    /// `class_name`).
    name: Position,
    more_names: Vec<Position>,
    diagnostics: Vec<Diagnostic>,
}

/// The actions one [`Job::Actions`] loaded.
#[derive(Debug)]
struct LoadedActions {
    packed: Arc<PackedActions>,
    /// Per action packed, in order: its ref, where its name is and the index of its file's
    /// name in the job's names.
    actions: Vec<(String, Position, usize)>,
}

/// The `i`th of an output's name positions ([`Output::name`], then [`Output::more_names`]).
fn name_at(name: Position, more_names: &[Position], i: usize) -> Position {
    match i {
        0 => name,
        i => more_names.get(i - 1).copied().unwrap_or_default(),
    }
}

impl Job {
    fn file(&self) -> Option<&FileRef> {
        match self {
            Job::Resource { file, .. } => Some(file),
            Job::Actions { .. } | Job::Config { .. } => None,
        }
    }
}

fn run_jobs(jobs: &[Job], context: &JobContext<'_>, threads: usize) -> Vec<Output> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
    .min(jobs.len().div_ceil(32).max(1));
    if threads <= 1 {
        return jobs.iter().map(|job| run_job(job, context)).collect();
    }
    // One slot per job, filled in place: no per-worker lists to grow, merge and sort (they
    // were the largest allocations of a load and left the allocator's heaps fragmented).
    let next = AtomicUsize::new(0);
    let slots: Vec<OnceLock<Output>> = std::iter::repeat_with(OnceLock::new)
        .take(jobs.len())
        .collect();
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let (Some(job), Some(slot)) = (jobs.get(i), slots.get(i)) else {
                break;
            };
            // Each index is taken by exactly one worker, so the slot is empty.
            let _ = slot.set(run_job(job, context));
        }
    };
    // The calling thread is one of the workers: one thread fewer to start, and one allocator
    // heap (glibc gives each new thread its own arena) fewer left holding freed memory.
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(work);
        }
        work();
    });
    // Every slot is filled once the scope has joined (a worker that panicked re-raises its
    // panic there).
    slots.into_iter().filter_map(OnceLock::into_inner).collect()
}

fn run_job(job: &Job, cx: &JobContext<'_>) -> Output {
    match job {
        Job::Resource { pack, kind, file } => run_resource(*pack, *kind, file, cx),
        Job::Actions { pack, names } => run_actions(*pack, names, cx),
        Job::Config { pack } => run_config(*pack, cx),
    }
}

fn run_resource(
    pack_index: usize,
    kind: ContentKind,
    file: &FileRef,
    cx: &JobContext<'_>,
) -> Output {
    let pack = &cx.packs[pack_index];
    let mut diagnostics = Vec::new();
    let mut output = Output {
        pack: pack_index,
        loaded: Loaded::Nothing,
        doc: None,
        name: Position::default(),
        more_names: Vec::new(),
        diagnostics: Vec::new(),
    };
    let Some((doc, value)) = read_resource(pack, kind, file, cx, &mut diagnostics) else {
        output.diagnostics = diagnostics;
        return output;
    };

    let origin = Origin {
        pack: pack.identity.reference.clone(),
        metadata_file: file.metadata_file.clone(),
    };
    let mut issues = Issues::new();
    let identity = &pack.identity;
    let root = FieldPath::root();
    let keep_doc;
    output.loaded = match kind {
        ContentKind::Triggers => {
            keep_doc = false;
            TriggerTypeSpec::read(&value, root, identity, Placement::File, &mut issues)
                .filter(|_| !issues.has_errors())
                .map_or(Loaded::Nothing, |spec| {
                    Loaded::TriggerType(Box::new(spec.compile(origin)))
                })
        }
        ContentKind::Sensors => {
            keep_doc = false;
            SensorSpec::read(&value, identity, &mut issues)
                .filter(|_| !issues.has_errors())
                .map_or(Loaded::Nothing, |spec| {
                    let (sensor, types) = spec.compile(origin);
                    Loaded::Sensor(Box::new(sensor), types)
                })
        }
        ContentKind::Actions => {
            // Read in batches by `run_actions`.
            keep_doc = false;
            Loaded::Nothing
        }
        ContentKind::Rules => {
            keep_doc = true;
            RuleSpec::read(&value, identity, &mut issues)
                .filter(|_| !issues.has_errors())
                .map_or(Loaded::Nothing, |spec| Loaded::Rule(Box::new(spec)))
        }
        ContentKind::Policies => {
            keep_doc = true;
            match PolicySpec::read(&value, identity, &mut issues).filter(|_| !issues.has_errors()) {
                Some(spec) => {
                    let policy_type = cx.catalog.policy_type(&spec.policy_type).map(|p| &**p);
                    spec.compile(origin, policy_type, &mut issues)
                        .map_or(Loaded::Nothing, |p| Loaded::Policy(Box::new(p)))
                }
                None => Loaded::Nothing,
            }
        }
        ContentKind::Aliases => {
            keep_doc = true;
            ActionAliasSpec::read(&value, identity, &mut issues)
                .filter(|_| !issues.has_errors())
                .map_or(Loaded::Nothing, |spec| {
                    Loaded::Alias(Box::new(spec.compile(origin)))
                })
        }
    };
    place(&file.display, &doc, issues.into_vec(), &mut diagnostics);
    let at = |path: FieldPath| doc.locate(&path, Anchor::Value);
    match &output.loaded {
        Loaded::Nothing | Loaded::Config(..) => {}
        Loaded::Sensor(_, types) => {
            let mut names = (0..types.len())
                .map(|i| at(FieldPath::root().key("trigger_types").index(i).key("name")))
                .chain(std::iter::once(at(FieldPath::root().key("class_name"))));
            output.name = names.next().unwrap_or_default();
            output.more_names = names.collect();
        }
        _ => output.name = at(FieldPath::root().key("name")),
    }
    if keep_doc && !matches!(output.loaded, Loaded::Nothing) {
        output.doc = Some(Box::new(doc));
    }
    output.diagnostics = diagnostics;
    output
}

/// Read one resource file as JSON with the pack's overrides applied; `None` (reported) when it
/// cannot be parsed or is empty.
fn read_resource(
    pack: &PackEntry,
    kind: ContentKind,
    file: &FileRef,
    cx: &JobContext<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<(Document, Value)> {
    let doc = read_document(file, &cx.options.limits, diagnostics)?;
    let mut value = doc.to_json();
    if value.is_null() {
        diagnostics.push(Diagnostic::error(
            &file.display,
            Position::START,
            format!("the file is empty (expected {})", kind.noun()),
        ));
        return None;
    }
    apply_override(
        kind,
        &mut value,
        &cx.overrides.for_pack(&pack.identity.dir_name),
    );
    Some((doc, value))
}

/// Read and check a batch of action files of one pack; keep each action that compiles as its
/// metadata, packed with the others (compiled again when first used).
fn run_actions(pack_index: usize, names: &[Box<str>], cx: &JobContext<'_>) -> Output {
    let pack = &cx.packs[pack_index];
    let mut diagnostics = Vec::new();
    let mut texts = Vec::new();
    let mut actions = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let file = &pack.file(ContentKind::Actions, name);
        let Some((doc, value)) =
            read_resource(pack, ContentKind::Actions, file, cx, &mut diagnostics)
        else {
            continue;
        };
        let mut issues = Issues::new();
        let action = ActionSpec::read(&value, &pack.identity, &mut issues)
            .filter(|_| !issues.has_errors())
            .and_then(|spec| {
                let runner = cx.catalog.runner_type(&spec.runner_type).map(|r| &**r);
                let origin = Origin {
                    pack: pack.identity.reference.clone(),
                    metadata_file: file.metadata_file.clone(),
                };
                spec.compile(origin, runner, &mut issues)
            });
        place(&file.display, &doc, issues.into_vec(), &mut diagnostics);
        if let Some(action) = action {
            let name = doc.locate(&FieldPath::root().key("name"), Anchor::Value);
            texts.push((file.metadata_file.clone(), value.to_string()));
            actions.push((action.reference, name, i));
        }
    }
    let loaded = if actions.is_empty() {
        Loaded::Nothing
    } else {
        Loaded::Actions(Box::new(LoadedActions {
            packed: Arc::new(PackedActions::new(pack.identity.clone(), &texts)),
            actions,
        }))
    };
    Output {
        pack: pack_index,
        loaded,
        doc: None,
        name: Position::default(),
        more_names: Vec::new(),
        diagnostics,
    }
}

/// Apply `enabled` overrides to a resource before it is read, as StackStorm does.
fn apply_override(kind: ContentKind, value: &mut Value, overrides: &PackOverrides<'_>) {
    let key = match kind {
        ContentKind::Sensors => "class_name",
        ContentKind::Actions | ContentKind::Rules | ContentKind::Aliases => "name",
        ContentKind::Triggers | ContentKind::Policies => return,
    };
    let Some(obj) = value.as_object_mut() else {
        return;
    };
    let Some(name) = obj.get(key).and_then(Value::as_str) else {
        return;
    };
    if let Some(enabled) = overrides.enabled_for(kind, name) {
        obj.insert("enabled".to_owned(), Value::Bool(enabled));
    }
}

fn run_config(pack_index: usize, cx: &JobContext<'_>) -> Output {
    let pack = &cx.packs[pack_index];
    let mut diagnostics = Vec::new();
    let mut schema = None;
    let mut config = None;
    if let Some(dir) = &pack.dir {
        let legacy = dir.join("config.yaml");
        if legacy.is_file() {
            diagnostics.push(Diagnostic::warning(
                &legacy,
                Position::default(),
                "config.yaml inside a pack is not read (StackStorm dropped it in v2.4); put the values in the configs directory as <pack>.yaml",
            ));
        }
        let schema_path = dir.join("config.schema.yaml");
        if schema_path.is_file() {
            let file = FileRef::disk(schema_path, "config.schema.yaml".to_owned());
            if let Some(doc) = read_document(&file, &cx.options.limits, &mut diagnostics) {
                let mut issues = Issues::new();
                schema = ConfigSchema::read(&doc.to_json(), &mut issues);
                place(&file.display, &doc, issues.into_vec(), &mut diagnostics);
            }
        }
    }
    if let Some(configs_dir) = &cx.options.configs_dir {
        let path = configs_dir.join(format!("{}.yaml", pack.identity.dir_name));
        if path.is_file() {
            let file = FileRef::disk(path, String::new());
            if let Some(doc) = read_document(&file, &cx.options.limits, &mut diagnostics) {
                let mut issues = Issues::new();
                config = PackConfig::read(
                    &doc.to_json(),
                    &pack.identity.reference,
                    schema.as_ref(),
                    &mut issues,
                );
                place(&file.display, &doc, issues.into_vec(), &mut diagnostics);
            }
        }
    }
    Output {
        pack: pack_index,
        loaded: Loaded::Config(Box::new((schema, config))),
        doc: None,
        name: Position::default(),
        more_names: Vec::new(),
        diagnostics,
    }
}

/// Register everything read, kind by kind, resolving references between resources.
fn register(
    outputs: Vec<Output>,
    jobs: &[Job],
    packs: &[PackEntry],
    catalog: &mut Catalog,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut rules = Vec::new();
    let mut aliases = Vec::new();
    let mut policies = Vec::new();
    for (mut output, job) in outputs.into_iter().zip(jobs) {
        diagnostics.append(&mut output.diagnostics);
        let file = job.file();
        let display = file.map_or(Path::new(""), |f| f.display.as_path());
        let at = |i: usize| (display, name_at(output.name, &output.more_names, i));
        match output.loaded {
            Loaded::Nothing => {}
            Loaded::TriggerType(t) => {
                if let Some(old) = catalog.insert_trigger_type(*t) {
                    duplicate_warning(at(0), "trigger type", &*old, diagnostics);
                }
            }
            Loaded::Sensor(sensor, types) => {
                let count = types.len();
                for (i, t) in types.into_iter().enumerate() {
                    if let Some(old) = catalog.insert_trigger_type(t) {
                        duplicate_warning(at(i), "trigger type", &*old, diagnostics);
                    }
                }
                if let Some(old) = catalog.insert_sensor(*sensor) {
                    duplicate_warning(at(count), "sensor", &*old, diagnostics);
                }
            }
            Loaded::Actions(loaded) => {
                let names = match job {
                    Job::Actions { names, .. } => names.as_slice(),
                    _ => &[],
                };
                for (index, (reference, name, file)) in loaded.actions.into_iter().enumerate() {
                    let packed = loaded.packed.clone();
                    if let Some(old) = catalog.insert_packed_action(reference, packed, index) {
                        let pack = &packs[output.pack];
                        let display = names
                            .get(file)
                            .map(|n| pack.file(ContentKind::Actions, n).display)
                            .unwrap_or_default();
                        duplicate_warning((&display, name), "action", &*old, diagnostics);
                    }
                }
            }
            Loaded::Rule(spec) => rules.push((output.pack, file, output.doc, spec)),
            Loaded::Alias(alias) => aliases.push((file, output.doc, alias)),
            Loaded::Policy(policy) => policies.push((file, output.doc, policy)),
            Loaded::Config(config) => {
                let (schema, config) = *config;
                let pack = &packs[output.pack].identity.reference;
                if let Some(schema) = schema {
                    catalog.insert_config_schema(pack, schema);
                }
                if let Some(config) = config {
                    catalog.insert_config(config);
                }
            }
        }
    }

    let mut trigger_schemas: HashMap<String, Schema> = HashMap::new();
    for (pack, file, doc, spec) in rules {
        let (Some(file), Some(doc)) = (file, doc) else {
            continue;
        };
        let origin = Origin {
            pack: packs[pack].identity.reference.clone(),
            metadata_file: file.metadata_file.clone(),
        };
        let mut issues = Issues::new();
        let trigger_type = catalog.trigger_type(&spec.trigger.trigger_type).cloned();
        let schema = trigger_type.as_ref().map(|t| {
            trigger_schemas
                .entry(t.reference.clone())
                .or_insert_with(|| Schema::for_object(Value::Object(t.parameters_schema.clone())))
        });
        let action = catalog.action(&spec.action.reference).cloned();
        let rule = spec.compile(
            origin,
            trigger_type.as_deref().zip(schema.map(|s| &*s)),
            action.as_deref(),
            &mut issues,
        );
        place(&file.display, &doc, issues.into_vec(), diagnostics);
        if let Some(rule) = rule
            && let Some(old) = catalog.insert_rule(rule)
        {
            let pos = doc.locate(&FieldPath::root().key("name"), Anchor::Value);
            duplicate_warning((&file.display, pos), "rule", &*old, diagnostics);
        }
    }

    for (file, doc, alias) in aliases {
        let (Some(file), Some(doc)) = (file, doc) else {
            continue;
        };
        if !catalog.has_action(&alias.action_ref) {
            let pos = doc.locate(&FieldPath::root().key("action_ref"), Anchor::Value);
            let message = "the alias fails until it is";
            diagnostics.push(action_not_loaded(
                &file.display,
                pos,
                &alias.action_ref,
                message,
            ));
        }
        if let Some(old) = catalog.insert_alias(*alias) {
            let pos = doc.locate(&FieldPath::root().key("name"), Anchor::Value);
            duplicate_warning((&file.display, pos), "action alias", &*old, diagnostics);
        }
    }

    let mut applied: HashSet<(String, String)> = HashSet::new();
    for (file, doc, policy) in policies {
        let (Some(file), Some(doc)) = (file, doc) else {
            continue;
        };
        if !applied.insert((policy.resource_ref.clone(), policy.policy_type.clone())) {
            let pos = doc.locate(&FieldPath::root().key("policy_type"), Anchor::Value);
            diagnostics.push(Diagnostic::error(
                &file.display,
                pos,
                format!(
                    "action `{}` already has a `{}` policy; an action takes one policy of each type",
                    policy.resource_ref, policy.policy_type
                ),
            ));
            continue;
        }
        if !catalog.has_action(&policy.resource_ref) {
            let pos = doc.locate(&FieldPath::root().key("resource_ref"), Anchor::Value);
            let message = "the policy applies once it is";
            diagnostics.push(action_not_loaded(
                &file.display,
                pos,
                &policy.resource_ref,
                message,
            ));
        }
        if let Some(old) = catalog.insert_policy(*policy) {
            let pos = doc.locate(&FieldPath::root().key("name"), Anchor::Value);
            duplicate_warning((&file.display, pos), "policy", &*old, diagnostics);
        }
    }
}

/// StackStorm registers aliases and policies naming an action it does not have; warn.
fn action_not_loaded(file: &Path, pos: Position, action: &str, consequence: &str) -> Diagnostic {
    Diagnostic::warning(
        file,
        pos,
        format!("action `{action}` is not loaded; {consequence}"),
    )
}

/// Something with a ref and an origin, as the catalog stores it.
trait Registered {
    fn reference(&self) -> &str;
    fn origin(&self) -> &Origin;
}

macro_rules! registered {
    ($($ty:ty),*) => {$(
        impl Registered for $ty {
            fn reference(&self) -> &str {
                &self.reference
            }
            fn origin(&self) -> &Origin {
                &self.origin
            }
        }
    )*};
}

registered!(
    TriggerType,
    Sensor,
    crate::model::Action,
    crate::model::Rule,
    ActionAlias,
    Policy
);

/// StackStorm updates a resource registered twice; the later definition wins, with a warning.
fn duplicate_warning(
    (file, pos): (&Path, Position),
    what: &str,
    previous: &dyn Registered,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let origin = previous.origin();
    let where_ = if origin.metadata_file.is_empty() {
        "built in".to_owned()
    } else {
        format!("defined in {}", origin.metadata_file)
    };
    diagnostics.push(Diagnostic::warning(
        file,
        pos,
        format!(
            "{what} `{}` is also {where_}; this definition replaces it",
            previous.reference()
        ),
    ));
}
