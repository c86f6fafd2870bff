//! `st2d bench pipeline`: the engine in this process on a SQLite file, fed webhook-style
//! triggers that a rule turns into executions; prints one line:
//! `executions/s: X  p50_ms: Y  p99_ms: Z  peak_rss_mb: W`
//! (latency = trigger accepted → runner started, from the stored timestamps).
//!
//! * `--action noop` runs `core.noop`; `shell` runs `core.local cmd=true`; `mix` alternates
//!   `core.noop` and a shell command appending the execution id to `<db dir>/appended.txt`
//!   (the crash test's load).
//! * `--rate R` dispatches at a steady R triggers/s; without it, as fast as the engine takes
//!   them.
//! * `--backlog N` first parks N executions on the run queue (for a worker tag nobody
//!   carries), to measure dispatch with a deep queue.
//! * `--resume` dispatches nothing: it starts the engine on an existing `--db`, waits until
//!   every accepted trigger instance is processed and every execution is final, and prints
//!   what it found (the crash test's second half).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};
use st2_core::engine::{Engine, EngineEvent, EngineSettings, RunRequest};
use st2_core::runner::RunnerRegistry;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{
    ExecutionFilter, ExecutionStatus, Page, Store, TriggerInstanceFilter, TriggerInstanceStatus,
};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Trigger → rule → execution → runner → result, in process, on a SQLite file.
    Pipeline(PipelineArgs),
    /// Orquesta workflows of noop tasks through the engine (with-items, a sequence, many at
    /// once).
    Workflow(super::bench_workflow::WorkflowArgs),
    /// `st2d serve` started again and again: time to the first authenticated answer, idle
    /// memory.
    Serve(super::bench_serve::ServeArgs),
    /// `st2d serve` taking `POST /v1/webhooks/st2` from keep-alive connections: accepted and
    /// stored per second.
    Webhooks(super::bench_webhooks::WebhooksArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchAction {
    /// `core.noop`.
    Noop,
    /// `core.local cmd=true`.
    Shell,
    /// Alternating `core.noop` and a shell command appending the execution id to a file.
    Mix,
}

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// What each trigger runs.
    #[arg(long, value_enum, default_value_t = BenchAction::Noop)]
    action: BenchAction,
    /// Triggers to dispatch.
    #[arg(long, default_value_t = 20_000)]
    count: u64,
    /// Triggers per second (0: as fast as the engine accepts them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Executions parked on the run queue before the measurement.
    #[arg(long, default_value_t = 0)]
    backlog: u64,
    /// The SQLite file (default: a fresh one in a temporary directory).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Finish the work already in `--db` instead of dispatching.
    #[arg(long, requires = "db")]
    resume: bool,
    /// Executions run at once.
    #[arg(long, default_value_t = 256)]
    max_running: usize,
    /// Lease of a running execution, in milliseconds (short leases let `--resume` find dead
    /// runners sooner).
    #[arg(long, default_value_t = 30_000)]
    lease_ms: u64,
}

pub fn run(command: BenchCommand) -> ExitCode {
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
    let ran = match command {
        BenchCommand::Pipeline(args) => runtime.block_on(pipeline(args)),
        BenchCommand::Workflow(args) => runtime.block_on(super::bench_workflow::run(args)),
        BenchCommand::Serve(args) => super::bench_serve::run(args),
        BenchCommand::Webhooks(args) => runtime.block_on(super::bench_webhooks::run(args)),
    };
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

const TRIGGER: &str = "bench.event";

/// Write the bench pack: a trigger type, the rules for `action`, a parked action.
fn write_pack(dir: &Path, action: BenchAction, append_to: &Path) -> anyhow::Result<PathBuf> {
    let pack = dir.join("bench");
    for sub in ["actions", "rules", "triggers"] {
        std::fs::create_dir_all(pack.join(sub))?;
    }
    std::fs::write(
        pack.join("pack.yaml"),
        "---\nref: bench\nname: bench\ndescription: st2d bench pipeline\nversion: 0.1.0\nauthor: st2d\nemail: bench@example.invalid\n",
    )?;
    std::fs::write(
        pack.join("triggers/event.yaml"),
        "---\nname: event\ndescription: A bench event.\npayload_schema:\n  type: object\n  properties:\n    n:\n      type: integer\n",
    )?;
    std::fs::write(
        pack.join("actions/parked.yaml"),
        "---\nname: parked\nrunner_type: noop\ndescription: Runs only on workers tagged parked.\nenabled: true\ntags:\n  - name: worker_tag\n    value: parked\n",
    )?;
    let rule = |name: &str, criteria: &str, action_ref: &str, params: &str| {
        format!(
            "---\nname: {name}\npack: bench\nenabled: true\ntrigger:\n  type: {TRIGGER}\n{criteria}action:\n  ref: {action_ref}\n{params}"
        )
    };
    let parity = |even: bool| {
        format!(
            "criteria:\n  trigger.parity:\n    type: equals\n    pattern: {}\n",
            if even { "even" } else { "odd" }
        )
    };
    let append = format!(
        "  parameters:\n    cmd: 'echo \"$ST2_ACTION_EXECUTION_ID\" >> {}'\n",
        shell_quote(&append_to.display().to_string())
    );
    let rules = match action {
        BenchAction::Noop => vec![("run_noop", String::new(), "core.noop", String::new())],
        BenchAction::Shell => vec![(
            "run_shell",
            String::new(),
            "core.local",
            "  parameters:\n    cmd: 'true'\n".to_owned(),
        )],
        BenchAction::Mix => vec![
            ("run_noop", parity(true), "core.noop", String::new()),
            ("run_append", parity(false), "core.local", append),
        ],
    };
    for (name, criteria, action_ref, params) in rules {
        std::fs::write(
            pack.join(format!("rules/{name}.yaml")),
            rule(name, &criteria, action_ref, &params),
        )?;
    }
    Ok(pack)
}

fn shell_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

async fn pipeline(args: PipelineArgs) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("temporary directory")?;
    let db = match &args.db {
        Some(p) => p.clone(),
        None => scratch.path().join("bench.db"),
    };
    let db_dir = db
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&db_dir)?;
    let pack = write_pack(scratch.path(), args.action, &db_dir.join("appended.txt"))?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::file(&db))
            .await
            .with_context(|| format!("opening {}", db.display()))?,
    );
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners)?;
    let settings = EngineSettings {
        max_running: args.max_running,
        lease: Duration::from_millis(args.lease_ms),
        heartbeat: Duration::from_millis((args.lease_ms / 3).max(50)),
        reap_interval: Duration::from_millis(200),
        action_trigger: true,
        ..EngineSettings::default()
    };
    let engine = Engine::builder()
        .store(store.clone())
        .pack_dir(&pack)
        .runners(runners)
        .settings(settings)
        .start()
        .await?;
    if let Some(d) = engine.diagnostics().iter().find(|d| d.is_error()) {
        anyhow::bail!("bench pack: {}: {}", d.file.display(), d.message);
    }
    if args.resume {
        return resume(&engine).await;
    }
    if args.backlog > 0 {
        park(&engine, args.backlog).await?;
    }
    let mut events = engine.subscribe();
    let started = Instant::now();
    let waiting = {
        let engine = engine.clone();
        let count = args.count;
        tokio::spawn(async move { wait_done(&engine, &mut events, count).await })
    };
    dispatch_all(&engine, &args).await?;
    let done = waiting.await??;
    let elapsed = started.elapsed();
    // The peak while the pipeline ran, before the latency pass reads every execution back.
    let peak_rss = peak_rss_mb();
    let (p50, p99) = latencies(&engine).await?;
    let rate = done as f64 / elapsed.as_secs_f64();
    println!(
        "executions/s: {rate:.0}  p50_ms: {p50:.2}  p99_ms: {p99:.2}  peak_rss_mb: {peak_rss:.1}"
    );
    engine.shutdown().await;
    store.close().await?;
    Ok(())
}

/// Park `n` executions on the run queue for a worker tag nobody carries.
async fn park(engine: &Engine, n: u64) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let engine = engine.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                engine
                    .run_with(RunRequest::new("bench.parked", Map::new()))
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn dispatch_all(engine: &Engine, args: &PipelineArgs) -> anyhow::Result<()> {
    let payload =
        |n: u64| json!({"n": n, "parity": if n.is_multiple_of(2) { "even" } else { "odd" }});
    if args.rate == 0 {
        let next = Arc::new(AtomicU64::new(0));
        let count = args.count;
        let mut tasks = Vec::new();
        for _ in 0..128 {
            let engine = engine.clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    engine.dispatch(TRIGGER, payload(n)).await?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        return Ok(());
    }
    // Steady rate: dispatch what is due every millisecond, each dispatch in its own task so a
    // slow one does not delay the schedule.
    let start = Instant::now();
    let mut sent = 0;
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while sent < args.count {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * args.rate as f64) as u64).min(args.count);
        while sent < due {
            let engine = engine.clone();
            let p = payload(sent);
            tasks.spawn(async move { engine.dispatch(TRIGGER, p).await.map(|_| ()) });
            sent += 1;
        }
        while let Some(r) = tasks.try_join_next() {
            r??;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

fn bench_filter(statuses: Vec<ExecutionStatus>) -> ExecutionFilter {
    ExecutionFilter {
        trigger_type: Some(TRIGGER.to_owned()),
        statuses,
        ..ExecutionFilter::default()
    }
}

fn completed() -> Vec<ExecutionStatus> {
    ExecutionStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.is_completed())
        .collect()
}

/// Wait until `count` bench executions completed; returns how many did. Counts completions
/// from the event stream (cheap) and checks the store twice a second (events can lag).
async fn wait_done(
    engine: &Engine,
    events: &mut tokio::sync::broadcast::Receiver<EngineEvent>,
    count: u64,
) -> anyhow::Result<u64> {
    let filter = bench_filter(completed());
    let mut seen = 0u64;
    let mut last_check = Instant::now();
    let mut last_progress = (Instant::now(), 0u64);
    loop {
        match tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
            Ok(Ok(EngineEvent::ExecutionUpdated(e)))
                if e.status.is_completed()
                    && e.trigger_type
                        .as_ref()
                        .and_then(|t| t.get("ref"))
                        .and_then(Value::as_str)
                        == Some(TRIGGER) =>
            {
                seen += 1;
                if seen >= count {
                    return Ok(seen);
                }
                continue;
            }
            Ok(Ok(_)) => continue,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) | Err(_) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                anyhow::bail!("the engine stopped");
            }
        }
        if last_check.elapsed() >= Duration::from_millis(500) {
            last_check = Instant::now();
            let done = engine.list(&filter, Page::first(1)).await?.total;
            seen = seen.max(done);
            if done >= count {
                return Ok(done);
            }
            if done != last_progress.1 {
                last_progress = (Instant::now(), done);
            } else if last_progress.0.elapsed() > Duration::from_secs(120) {
                anyhow::bail!("no progress for 120 s: {done} of {count} executions completed");
            }
        }
    }
}

/// Trigger accepted → runner started, p50 and p99 in milliseconds.
async fn latencies(engine: &Engine) -> anyhow::Result<(f64, f64)> {
    let all = engine
        .list(&bench_filter(Vec::new()), Page::all())
        .await?
        .items;
    let mut ms: Vec<f64> = all
        .iter()
        .filter_map(|e| {
            let accepted = e
                .trigger_instance
                .as_ref()?
                .get("occurrence_time")?
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())?;
            let started = e
                .log
                .iter()
                .find(|c| c.status == ExecutionStatus::Running)?
                .timestamp;
            Some((started - accepted.to_utc()).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        if ms.is_empty() {
            0.0
        } else {
            ms[((ms.len() as f64 - 1.0) * q).round() as usize]
        }
    };
    Ok((pick(0.5), pick(0.99)))
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Finish what a killed run left: wait until no trigger instance is pending and no execution
/// is unfinished, then print the counts as JSON.
async fn resume(engine: &Engine) -> anyhow::Result<()> {
    let store = engine.store();
    let open_statuses: Vec<ExecutionStatus> = ExecutionStatus::ALL
        .iter()
        .copied()
        .filter(|s| !s.is_completed())
        .collect();
    let started = Instant::now();
    loop {
        let pending = store
            .trigger_instances()
            .list(
                &TriggerInstanceFilter {
                    statuses: vec![
                        TriggerInstanceStatus::Pending,
                        TriggerInstanceStatus::Processing,
                    ],
                    ..TriggerInstanceFilter::default()
                },
                Page::first(1),
            )
            .await?
            .total;
        let open = engine
            .list(
                &ExecutionFilter {
                    statuses: open_statuses.clone(),
                    ..ExecutionFilter::default()
                },
                Page::first(1),
            )
            .await?
            .total;
        if pending == 0 && open == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("still {pending} trigger instances pending and {open} executions open");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let executions = engine
        .list(&ExecutionFilter::default(), Page::all())
        .await?;
    let mut by_status = Map::new();
    for e in &executions.items {
        let n = by_status
            .entry(e.status.as_str())
            .or_insert(Value::from(0u64));
        *n = Value::from(n.as_u64().unwrap_or(0) + 1);
    }
    let instances = store
        .trigger_instances()
        .list(&TriggerInstanceFilter::default(), Page::first(1))
        .await?
        .total;
    println!(
        "{}",
        json!({"trigger_instances": instances, "executions": executions.total, "by_status": by_status})
    );
    engine.shutdown().await;
    Ok(())
}
