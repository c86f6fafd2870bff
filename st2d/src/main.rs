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
    /// Run the daemon: StackStorm's REST API, auth and webhooks on 127.0.0.1:9101/9100/9102,
    /// the engine, the packs (see docs/operations.md).
    Serve(Box<st2d::server::config::ServeArgs>),
    /// Manage the users of the htpasswd users file.
    User {
        #[command(subcommand)]
        command: commands::user::UserCommand,
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
        Command::Serve(args) => serve(*args),
        Command::User { command } => commands::user::run(command),
        Command::Rule {
            command: RuleCommand::Test(args),
        } => commands::rule::run(args),
    }
}

fn serve(args: st2d::server::config::ServeArgs) -> ExitCode {
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(st2d::server::serve::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Log to stderr; `ST2D_LOG` (or `RUST_LOG`) filters, default `info`.
fn init_logging(format: st2d::server::config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("ST2D_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        st2d::server::config::LogFormat::Json => builder.json().try_init(),
        st2d::server::config::LogFormat::Text => builder.try_init(),
    };
}
