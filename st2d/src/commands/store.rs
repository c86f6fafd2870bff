//! `st2d store`: operate on a store without running the daemon.
//!
//! * `migrate --storage URL`: open the database, apply pending migrations, report the backend.
//! * `copy --from URL --to URL`: copy history and configuration from one store into another
//!   (SQLite → PostgreSQL); the source must be drained.
//! * `gc --storage URL [--executions-ttl DAYS] …`: one garbage-collection pass with StackStorm's
//!   TTL options.
//!
//! Exit 0 on success, 1 when the store refused (e.g. an undrained source), 2 on a bad URL or an
//! unreachable database.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use st2_core::clock::SystemClock;
use st2_core::store::copy::copy_store;
use st2_core::store::open::open_url;
use st2_core::store::retention::{RetentionPolicy, purge};
use st2_core::store::{Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Open a database and apply pending migrations.
    Migrate(MigrateArgs),
    /// Copy history and configuration from one store into another, empty one.
    Copy(CopyArgs),
    /// Run one garbage-collection pass.
    Gc(GcArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// `sqlite:///path/st2.db` or `postgres://user@host/db`.
    #[arg(long, env = "ST2D_STORAGE", value_name = "URL")]
    storage: String,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to read (left unchanged).
    #[arg(long, value_name = "URL")]
    from: String,
    /// The store to write (should be empty).
    #[arg(long, value_name = "URL")]
    to: String,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// `sqlite:///path/st2.db` or `postgres://user@host/db`.
    #[arg(long, env = "ST2D_STORAGE", value_name = "URL")]
    storage: String,
    /// Delete completed executions older than this many days.
    #[arg(long, value_name = "DAYS")]
    executions_ttl: Option<u32>,
    /// Delete execution output older than this many days (StackStorm's default: 7).
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    executions_output_ttl: u32,
    /// Delete trigger instances older than this many days.
    #[arg(long, value_name = "DAYS")]
    trigger_instances_ttl: Option<u32>,
    /// Delete rule enforcements older than this many days.
    #[arg(long, value_name = "DAYS")]
    rule_enforcements_ttl: Option<u32>,
    /// Delete traces older than this many days.
    #[arg(long, value_name = "DAYS")]
    traces_ttl: Option<u32>,
    /// Rows per delete.
    #[arg(long, default_value_t = 500)]
    batch_size: u64,
}

pub fn run(command: StoreCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("st2d store: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        match command {
            StoreCommand::Migrate(args) => migrate(args).await,
            StoreCommand::Copy(args) => copy(args).await,
            StoreCommand::Gc(args) => gc(args).await,
        }
    })
}

fn fail(what: &str, e: &StoreError) -> ExitCode {
    eprintln!("st2d store {what}: {e}");
    match e {
        StoreError::Invalid(_) | StoreError::Unavailable(_) | StoreError::SchemaTooNew { .. } => {
            ExitCode::from(2)
        }
        _ => ExitCode::from(1),
    }
}

async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_url(url, Arc::new(SystemClock)).await
}

async fn migrate(args: MigrateArgs) -> ExitCode {
    match open(&args.storage).await {
        Ok(store) => {
            let closed = store.close().await;
            println!(
                "{}",
                json!({"backend": store.backend(), "schema": "up to date"})
            );
            match closed {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail("migrate", &e),
            }
        }
        Err(e) => fail("migrate", &e),
    }
}

async fn copy(args: CopyArgs) -> ExitCode {
    let (source, target) = match (open(&args.from).await, open(&args.to).await) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => return fail("copy", &e),
    };
    let result = copy_store(source.as_ref(), target.as_ref()).await;
    let _ = source.close().await;
    let closed = target.close().await;
    match (result, closed) {
        (Ok(report), Ok(())) => {
            println!("{}", json!({ "copied": report }));
            ExitCode::SUCCESS
        }
        (Err(e), _) | (_, Err(e)) => fail("copy", &e),
    }
}

async fn gc(args: GcArgs) -> ExitCode {
    let policy = RetentionPolicy {
        action_executions_ttl: args.executions_ttl,
        action_executions_output_ttl: Some(args.executions_output_ttl),
        trigger_instances_ttl: args.trigger_instances_ttl,
        rule_enforcements_ttl: args.rule_enforcements_ttl,
        traces_ttl: args.traces_ttl,
        batch_size: args.batch_size,
        pause_between_batches: Duration::from_millis(10),
    };
    if let Err(e) = policy.validate() {
        return fail("gc", &e);
    }
    let store = match open(&args.storage).await {
        Ok(s) => s,
        Err(e) => return fail("gc", &e),
    };
    let result = purge(store.as_ref(), &policy).await;
    let closed = store.close().await;
    match (result, closed) {
        (Ok(report), Ok(())) => {
            println!("{}", json!({ "deleted": report }));
            ExitCode::SUCCESS
        }
        (Err(e), _) | (_, Err(e)) => fail("gc", &e),
    }
}
