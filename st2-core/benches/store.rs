//! Store throughput, backend-agnostic (every workload takes an `Arc<dyn Store>`):
//! - execution records created per second by 64 concurrent callers (group commit);
//! - enqueue → claim → finish cycles per second from 4 concurrent workers.
//!
//! `cargo bench -p st2-core --bench store`
//!
//! `ST2_BENCH_PG_URL=postgres://… cargo bench -p st2-core --bench store` measures PostgreSQL too
//! (in a throwaway schema, dropped afterwards).
//!
//! Each backend first runs a fixed-size round and prints its per-second figures with the CPU
//! time per operation by thread, then criterion measures the same workloads.
//! `STORE_BENCH_QUICK=1` skips criterion; `STORE_BENCH_ONLY=create|cycles|serial` runs one
//! fixed-size round.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ClaimRequest, ExecutionRecord, NewWorkItem, Store};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

/// Concurrent callers creating executions.
const WRITERS: usize = 64;
/// Concurrent queue workers.
const WORKERS: usize = 4;
/// Items each worker enqueues, claims (in one claim) and finishes per round.
const ROUND: usize = 32;

/// A backend under test: a store and whatever must live as long as it (a temp dir).
struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    _keep: Option<tempfile::TempDir>,
    pg: Option<Arc<st2_core::store::postgres::PgStore>>,
}

impl Backend {
    /// Close the store (and drop a PostgreSQL bench schema).
    fn close(&self, runtime: &Runtime) {
        match &self.pg {
            Some(pg) => runtime
                .block_on(pg.drop_schema())
                .expect("drop bench schema"),
            None => runtime.block_on(self.store.close()).expect("close store"),
        }
    }
}

fn sqlite(runtime: &Runtime) -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.db");
    let store = runtime
        .block_on(SqliteStore::open(SqliteOptions::file(path)))
        .expect("open sqlite");
    Backend {
        name: "sqlite",
        store: Arc::new(store),
        _keep: Some(dir),
        pg: None,
    }
}

/// PostgreSQL at `ST2_BENCH_PG_URL`, in a throwaway schema.
fn postgres(runtime: &Runtime) -> Option<Backend> {
    use st2_core::store::postgres::{PgOptions, PgStore};
    let url = std::env::var("ST2_BENCH_PG_URL").ok()?;
    let schema = format!("st2bench_{}", st2_core::store::new_id());
    let store = runtime
        .block_on(PgStore::connect(PgOptions::new(url).schema(schema)))
        .expect("connect to ST2_BENCH_PG_URL");
    let store = Arc::new(store);
    Some(Backend {
        name: "postgres",
        store: store.clone(),
        _keep: None,
        pg: Some(store),
    })
}

/// Every backend to measure: SQLite always, PostgreSQL when `ST2_BENCH_PG_URL` is set.
fn backends(runtime: &Runtime) -> Vec<Backend> {
    let mut all = vec![sqlite(runtime)];
    all.extend(postgres(runtime));
    all
}

fn template() -> ExecutionRecord {
    serde_json::from_value(json!({
        "id": "000000000000000000000000",
        "action_ref": "examples.deploy",
        "action": {
            "ref": "examples.deploy", "pack": "examples", "name": "deploy",
            "runner_type": "local-shell-cmd", "enabled": true,
            "parameters": {"host": {"type": "string", "required": true},
                           "version": {"type": "string", "default": "latest"}}
        },
        "runner": {"name": "local-shell-cmd", "runner_module": "local_runner", "enabled": true},
        "status": "requested",
        "parameters": {"host": "web-1.prod.example.com", "version": "1.2.3"},
        "context": {"user": "stanley", "pack": "examples",
                    "trace_context": {"trace_tag": "deploy-1234"}},
        "start_timestamp": Utc::now(),
        "log": [{"timestamp": Utc::now(), "status": "requested"}],
    }))
    .expect("a valid execution")
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// `total` executions created by `WRITERS` concurrent tasks; how long it took.
async fn create_executions(store: Arc<dyn Store>, total: u64) -> Duration {
    let template = Arc::new(template());
    let began = Instant::now();
    let mut tasks = JoinSet::new();
    for t in 0..WRITERS as u64 {
        let store = Arc::clone(&store);
        let template = Arc::clone(&template);
        let count = total / WRITERS as u64 + u64::from(t < total % WRITERS as u64);
        tasks.spawn(async move {
            let mut record = (*template).clone();
            for _ in 0..count {
                record.id = format!("{:024x}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
                store
                    .executions()
                    .create(&record)
                    .await
                    .expect("create execution");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("writer task");
    }
    began.elapsed()
}

/// At least `total` enqueue → claim → finish cycles from `WORKERS` workers; how long it took
/// and how many cycles ran. Each worker enqueues `ROUND` items concurrently, claims them (one
/// claim of up to `ROUND`), then finishes them concurrently.
async fn queue_cycles(store: Arc<dyn Store>, total: u64) -> (Duration, u64) {
    let rounds = total.div_ceil((WORKERS * ROUND) as u64).max(1);
    let began = Instant::now();
    let mut workers = JoinSet::new();
    for w in 0..WORKERS {
        let store = Arc::clone(&store);
        workers.spawn(async move {
            let queue = format!("bench-{w}");
            let request = ClaimRequest {
                max_items: ROUND,
                ..ClaimRequest::one(
                    queue.clone(),
                    format!("worker-{w}"),
                    Duration::from_secs(60),
                )
            };
            for round in 0..rounds {
                let mut enqueues = JoinSet::new();
                for i in 0..ROUND {
                    let store = Arc::clone(&store);
                    let item = NewWorkItem::new(queue.clone(), json!({"round": round, "i": i}));
                    enqueues.spawn(async move { store.queue().enqueue(item).await });
                }
                while let Some(done) = enqueues.join_next().await {
                    done.expect("enqueue task").expect("enqueue");
                }
                let mut left = ROUND;
                while left > 0 {
                    let leases = store.queue().claim(&request).await.expect("claim");
                    left = left.saturating_sub(leases.len());
                    let mut finishes = JoinSet::new();
                    for lease in leases {
                        let store = Arc::clone(&store);
                        finishes
                            .spawn(async move { store.queue().finish(lease.reference()).await });
                    }
                    while let Some(done) = finishes.join_next().await {
                        done.expect("finish task").expect("finish");
                    }
                }
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("worker task");
    }
    (began.elapsed(), rounds * (WORKERS * ROUND) as u64)
}

/// One enqueue → claim → finish cycle at a time per worker (no pipelining), for comparison.
async fn queue_cycles_serial(store: Arc<dyn Store>, total: u64) -> Duration {
    let began = Instant::now();
    let mut workers = JoinSet::new();
    for w in 0..WORKERS as u64 {
        let store = Arc::clone(&store);
        let count = total / WORKERS as u64;
        workers.spawn(async move {
            let queue = format!("serial-{w}");
            let request = ClaimRequest::one(
                queue.clone(),
                format!("worker-{w}"),
                Duration::from_secs(60),
            );
            for i in 0..count {
                let q = store.queue();
                q.enqueue(NewWorkItem::new(queue.clone(), json!({"i": i})))
                    .await
                    .expect("enqueue");
                for lease in q.claim(&request).await.expect("claim") {
                    q.finish(lease.reference()).await.expect("finish");
                }
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("worker task");
    }
    began.elapsed()
}

/// CPU time used so far by this process's threads, summed by thread name, from
/// `/proc/self/task` (Linux; empty elsewhere).
fn cpu_by_thread() -> std::collections::BTreeMap<String, Duration> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: utime and stime are the 12th and 13th fields after `)`.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map_or("?", |(_, n)| n).to_owned();
        let mut fields = rest.split_whitespace().skip(11);
        let ticks: u64 = fields.next().and_then(|u| u.parse().ok()).unwrap_or(0)
            + fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        // Clock ticks are 1/100 s on Linux.
        *by_name.entry(name).or_insert(Duration::ZERO) += Duration::from_millis(ticks * 10);
    }
    by_name
}

/// Run `work`, printing its rate and the CPU time per operation, by thread.
fn report(label: &str, work: impl FnOnce() -> (Duration, u64)) {
    let before = cpu_by_thread();
    let (took, count) = work();
    let after = cpu_by_thread();
    let mut total = 0.0;
    let mut parts = Vec::new();
    for (name, spent) in &after {
        let spent = spent.saturating_sub(before.get(name).copied().unwrap_or_default());
        let each = spent.as_secs_f64() * 1e6 / count.max(1) as f64;
        total += each;
        if each >= 0.05 {
            parts.push(format!("{name} {each:.1}"));
        }
    }
    println!(
        "{label}: {:.0}/s ({count} in {took:.2?}; CPU µs each: {total:.1} = {})",
        per_second(count, took),
        parts.join(" + ")
    );
}

fn per_second(count: u64, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64().max(1e-9)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for backend in backends(&runtime) {
        let name = backend.name;
        let store = Arc::clone(&backend.store);

        let only = std::env::var("STORE_BENCH_ONLY").unwrap_or_default();
        let run = |what: &str| only.is_empty() || only == what;
        if run("create") {
            report(
                &format!("{name}: executions.create from {WRITERS} tasks, records"),
                || {
                    let n = 200_000;
                    let took = runtime.block_on(create_executions(Arc::clone(&store), n));
                    (took, n)
                },
            );
        }
        if run("cycles") {
            report(
                &format!(
                    "{name}: enqueue → claim → finish from {WORKERS} workers ({ROUND} in flight \
                 each), cycles"
                ),
                || {
                    let (took, cycles) =
                        runtime.block_on(queue_cycles(Arc::clone(&store), 100_000));
                    (took, cycles)
                },
            );
        }
        if run("serial") {
            report(
                &format!(
                    "{name}: enqueue → claim → finish from {WORKERS} workers (one at a time each), \
                 cycles"
                ),
                || {
                    let n = 20_000;
                    let took = runtime.block_on(queue_cycles_serial(Arc::clone(&store), n));
                    (took, n)
                },
            );
        }

        if std::env::var_os("STORE_BENCH_QUICK").is_some() {
            backend.close(&runtime);
            continue;
        }
        let mut group = c.benchmark_group(format!("store/{name}"));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(5));
        group.throughput(Throughput::Elements(1));
        group.bench_function("executions.create x64 tasks", |b| {
            b.iter_custom(|iters| runtime.block_on(create_executions(Arc::clone(&store), iters)))
        });
        group.bench_function("queue cycle x4 workers", |b| {
            b.iter_custom(|iters| {
                let (took, cycles) = runtime.block_on(queue_cycles(Arc::clone(&store), iters));
                // Rounds are whole: scale to the iterations asked for.
                took.mul_f64(iters as f64 / cycles as f64)
            })
        });
        group.finish();
        backend.close(&runtime);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
