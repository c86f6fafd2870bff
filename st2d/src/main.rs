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
    /// Evaluate expressions: JSON lines `{"expr": ..., "context": {...}}` on stdin, one JSON
    /// line `{"value": ...}` or `{"error": ..., "message": ...}` out per case.
    Expr(commands::expr::ExprArgs),
    /// Work with packs.
    Pack {
        #[command(subcommand)]
        command: commands::pack::PackCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Pack { command } => commands::pack::run(command),
        Command::Expr(args) => commands::expr::run(args),
    }
}
