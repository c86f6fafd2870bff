//! `st2d workflow`: offline tools for Orquesta workflows.
//!
//! `simulate WORKFLOW.yaml [MOCKS.json] [--inputs JSON] [--mode wave|fifo]` runs the workflow
//! through the conductor with mocked action results and prints the report as JSON
//! (see docs/workflows.md). `check WORKFLOW.yaml` loads and inspects a workflow.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value};
use st2_workflow::expression::Evaluator;
use st2_workflow::simulate::{Mode, simulate_file};
use st2_workflow::spec::WorkflowSpec;

/// `st2d workflow` subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Run a workflow with mocked action results and print what happened as JSON.
    Simulate(SimulateArgs),
    /// Load and inspect a workflow; print every problem with file and line.
    Check {
        /// The workflow YAML file.
        workflow: PathBuf,
    },
}

/// Completion order of mocked executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Complete a whole batch of next tasks, then ask again (orquesta's unit tests).
    Wave,
    /// Complete one execution at a time in dispatch order (StackStorm).
    Fifo,
}

/// Arguments of `st2d workflow simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The workflow YAML file.
    workflow: PathBuf,
    /// Mocked results: `{"<task>": [{"status": "...", "result": ...}, ...]}`.
    mocks: Option<PathBuf>,
    /// Workflow input as a JSON object.
    #[arg(long)]
    inputs: Option<String>,
    /// Completion order.
    #[arg(long, value_enum, default_value = "wave")]
    mode: ModeArg,
}

/// Run a `workflow` subcommand.
pub fn run(command: WorkflowCommand) -> ExitCode {
    match command {
        WorkflowCommand::Simulate(args) => match simulate(&args) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("st2d workflow simulate: {e}");
                ExitCode::from(2)
            }
        },
        WorkflowCommand::Check { workflow } => {
            let checked =
                WorkflowSpec::from_file(&workflow).and_then(|spec| spec.inspect(&Evaluator::new()));
            match checked {
                Ok(()) => {
                    println!("{}: ok", workflow.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<Value> {
    let mocks = match &args.mocks {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read mocks {}: {e}", path.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("mocks {} is not JSON: {e}", path.display()))?
        }
        None => Value::Object(Map::new()),
    };
    let inputs = match &args.inputs {
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(m)) => m,
            Ok(Value::Null) => Map::new(),
            Ok(_) => anyhow::bail!("--inputs must be a JSON object"),
            Err(e) => anyhow::bail!("--inputs is not JSON: {e}"),
        },
        None => Map::new(),
    };
    let mode = match args.mode {
        ModeArg::Wave => Mode::Wave,
        ModeArg::Fifo => Mode::Fifo,
    };
    Ok(simulate_file(&args.workflow, &mocks, &inputs, mode)?)
}
