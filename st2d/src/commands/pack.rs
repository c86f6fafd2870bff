//! `st2d pack validate`: load packs exactly as the engine would and report every problem.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use st2_core::loader::{LoadOptions, LoadReport, load};
use st2_core::yaml::DEFAULT_MAX_FILE_BYTES;

#[derive(Debug, Subcommand)]
pub enum PackCommand {
    /// Check packs: print `path:line:col: error|warning: message` for every problem and a
    /// summary; exit 1 if there is any error.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A directory whose sub-directories are packs (repeatable).
    #[arg(long = "packs-dir", value_name = "DIR")]
    packs_dirs: Vec<PathBuf>,
    /// Directory of pack config values (`<pack>.yaml`).
    #[arg(long = "configs-dir", value_name = "DIR")]
    configs_dir: Option<PathBuf>,
    /// Directory of overrides (`_global.yaml`, `<pack>.yaml`).
    #[arg(long = "overrides-dir", value_name = "DIR")]
    overrides_dir: Option<PathBuf>,
    /// Largest accepted YAML file, in bytes.
    #[arg(long = "max-file-size", value_name = "BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES)]
    max_file_size: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Individual pack directories.
    #[arg(value_name = "PACK_DIR")]
    pack_dirs: Vec<PathBuf>,
}

pub fn run(command: PackCommand) -> ExitCode {
    match command {
        PackCommand::Validate(args) => validate(args),
    }
}

fn validate(args: ValidateArgs) -> ExitCode {
    let mut options = LoadOptions {
        packs_dirs: args.packs_dirs,
        pack_dirs: args.pack_dirs,
        configs_dir: args.configs_dir,
        overrides_dir: args.overrides_dir,
        ..LoadOptions::default()
    };
    options.limits.max_bytes = args.max_file_size;
    let report = load(&options);
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&json_report(&report)).unwrap_or_default();
        s.push('\n');
        s
    } else {
        text_report(&report)
    };
    // A closed stdout (e.g. `| head`) is not an error worth reporting.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    let code = if report.error_count() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    // The process ends here; tearing down thousands of compiled resources one by one would
    // only add to the run time (a tenth of it on a large pack set).
    std::mem::forget(report);
    code
}

fn text_report(report: &LoadReport) -> String {
    let mut out = String::new();
    for d in &report.diagnostics {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    let s = report.summary();
    out.push_str(&format!(
        "{} packs, {} actions, {} rules, {} sensors, {} trigger types, {} policies, {} aliases; {} errors, {} warnings\n",
        s.packs, s.actions, s.rules, s.sensors, s.trigger_types, s.policies, s.aliases, s.errors, s.warnings
    ));
    out
}

fn json_report(report: &LoadReport) -> Value {
    let mut packs = Map::new();
    for pack in report.packs() {
        packs.insert(
            pack.clone(),
            serde_json::to_value(report.contents(pack)).unwrap_or(Value::Null),
        );
    }
    let diagnostics: Vec<Value> = report
        .diagnostics
        .iter()
        .map(|d| {
            json!({
                "file": d.file.display().to_string(),
                "line": d.line,
                "column": d.column,
                "severity": d.severity,
                "message": d.message,
            })
        })
        .collect();
    json!({"packs": packs, "diagnostics": diagnostics})
}
