//! `st2d bench workflow`: Orquesta workflows through the engine in this process on a fresh
//! SQLite file (`synchronous=NORMAL`; `--db PATH` names one and keeps it), every task a
//! `core.noop` child execution. Prints one line per measurement:
//!
//! * `with-items: N items in X ms` — one workflow with one with-items task over N items
//!   (`--items`, `--concurrency`), from the run request to the workflow's final status;
//! * `sequence: N tasks in X ms (Y transitions/s)` — one workflow of N tasks in a row
//!   (`--tasks`);
//! * `parallel: W workflows x T tasks in X ms (Y transitions/s)` — W sequences of T tasks at
//!   once (`--workflows`, `--tasks-each`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::{Map, json};
use st2_core::engine::{Engine, EngineSettings};
use st2_core::runner::RunnerRegistry;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionStatus, Store};
use st2_workflow::OrquestaRunner;

#[derive(Debug, Args)]
pub struct WorkflowArgs {
    /// Items of the with-items run (0: skip it).
    #[arg(long, default_value_t = 1000)]
    items: u64,
    /// The with-items task's concurrency (0: unlimited).
    #[arg(long, default_value_t = 0)]
    concurrency: u64,
    /// Tasks of the sequence run (0: skip it).
    #[arg(long, default_value_t = 200)]
    tasks: u64,
    /// Workflows of the parallel run (0: skip it).
    #[arg(long, default_value_t = 50)]
    workflows: u64,
    /// Tasks of each workflow in the parallel run.
    #[arg(long, default_value_t = 20)]
    tasks_each: u64,
    /// Executions run at once.
    #[arg(long, default_value_t = 256)]
    max_running: usize,
    /// The SQLite file to use (kept afterwards, to inspect what the runs wrote) instead of a
    /// fresh temporary one.
    #[arg(long)]
    db: Option<PathBuf>,
}

const WAIT: Duration = Duration::from_secs(600);

fn write_pack(dir: &Path, args: &WorkflowArgs) -> anyhow::Result<()> {
    let pack = dir.join("wfbench");
    let actions = pack.join("actions");
    std::fs::create_dir_all(actions.join("workflows"))?;
    std::fs::write(
        pack.join("pack.yaml"),
        "ref: wfbench\nname: wfbench\ndescription: workflow bench\nversion: 0.1.0\nauthor: bench\n",
    )?;
    let action = |name: &str| {
        format!(
            "name: {name}\nrunner_type: orquesta\nentry_point: workflows/{name}.yaml\nenabled: true\n"
        )
    };
    let concurrency = if args.concurrency > 0 {
        format!("\n      concurrency: {}", args.concurrency)
    } else {
        String::new()
    };
    std::fs::write(actions.join("items.yaml"), action("items"))?;
    std::fs::write(
        actions.join("workflows/items.yaml"),
        format!(
            "version: 1.0\ntasks:\n  each:\n    with:\n      items: <% range({}) %>{concurrency}\n    action: core.noop\n",
            args.items
        ),
    )?;
    for (name, n) in [("sequence", args.tasks), ("chain", args.tasks_each)] {
        std::fs::write(actions.join(format!("{name}.yaml")), action(name))?;
        let mut wf = String::from("version: 1.0\ntasks:\n");
        for i in 0..n.max(1) {
            wf.push_str(&format!("  t{i}:\n    action: core.noop\n"));
            if i + 1 < n {
                wf.push_str(&format!("    next:\n      - do: t{}\n", i + 1));
            }
        }
        std::fs::write(actions.join(format!("workflows/{name}.yaml")), wf)?;
    }
    Ok(())
}

pub async fn run(args: WorkflowArgs) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("temporary directory")?;
    write_pack(scratch.path(), &args)?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::file(
            args.db
                .clone()
                .unwrap_or_else(|| scratch.path().join("bench.db")),
        ))
        .await
        .context("opening the store")?,
    );
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners)?;
    runners.register("orquesta", OrquestaRunner::new())?;
    let engine = Engine::builder()
        .store(store.clone())
        .pack_dir(scratch.path().join("wfbench"))
        .runners(runners)
        .settings(EngineSettings {
            max_running: args.max_running,
            ..EngineSettings::default()
        })
        .start()
        .await?;
    if let Some(d) = engine.diagnostics().iter().find(|d| d.is_error()) {
        anyhow::bail!("bench pack: {}: {}", d.file.display(), d.message);
    }
    if args.items > 0 {
        let ms = timed(&engine, "wfbench.items", 1).await?;
        println!("with-items: {} items in {ms:.0} ms", args.items);
    }
    if args.tasks > 0 {
        let ms = timed(&engine, "wfbench.sequence", 1).await?;
        let rate = args.tasks as f64 / (ms / 1000.0);
        println!(
            "sequence: {} tasks in {ms:.0} ms ({rate:.0} transitions/s)",
            args.tasks
        );
    }
    if args.workflows > 0 {
        let ms = timed(&engine, "wfbench.chain", args.workflows).await?;
        let rate = (args.workflows * args.tasks_each) as f64 / (ms / 1000.0);
        println!(
            "parallel: {} workflows x {} tasks in {ms:.0} ms ({rate:.0} transitions/s)",
            args.workflows, args.tasks_each
        );
    }
    engine.shutdown().await;
    store.close().await?;
    Ok(())
}

/// Run `count` executions of `action` at once; milliseconds until all succeeded.
async fn timed(engine: &Engine, action: &str, count: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(engine.run(action, Map::new(), Map::new()).await?.id);
    }
    for id in ids {
        let done = engine.wait(&id, WAIT).await?;
        if done.status != ExecutionStatus::Succeeded {
            anyhow::bail!("{action} ended {}: {}", done.status, json!(done.result));
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}
