//! `st2d`: the reference daemon and offline tools of the st2 Rust engine.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// StackStorm-compatible automation engine: daemon and tools.
#[derive(Debug, Parser)]
#[command(name = "st2d", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure the engine (see docs/performance.md).
    Bench {
        #[command(subcommand)]
        command: commands::bench::BenchCommand,
    },
    /// Evaluate expressions: JSON lines `{"expr": ..., "context": {...}}` on stdin, one JSON
    /// line `{"value": ...}` or `{"error": ..., "message": ...}` out per case.
    Expr(commands::expr::ExprArgs),
    /// Work with rules.
    Rule {
        #[command(subcommand)]
        command: RuleCommand,
    },
    /// Work with packs.
    Pack {
        #[command(subcommand)]
        command: commands::pack::PackCommand,
    },
    /// Offline tools for Orquesta workflows (simulate with mocked results, check).
    Workflow {
        #[command(subcommand)]
        command: commands::workflow::WorkflowCommand,
    },
    /// Operate on a store (SQLite or PostgreSQL) without running the daemon.
    Store {
        #[command(subcommand)]
        command: commands::store::StoreCommand,
    },
}

#[derive(Debug, Subcommand)]
enum RuleCommand {
    /// Does a rule match a trigger instance, and with which action parameters? (StackStorm's
    /// st2-rule-tester.) Exit 0 on a match, 1 on no match, 2 on an error.
    Test(commands::rule::TestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench { command } => commands::bench::run(command),
        Command::Pack { command } => commands::pack::run(command),
        Command::Expr(args) => commands::expr::run(args),
        Command::Store { command } => commands::store::run(command),
        Command::Workflow { command } => commands::workflow::run(command),
        Command::Rule {
            command: RuleCommand::Test(args),
        } => commands::rule::run(args),
    }
}
