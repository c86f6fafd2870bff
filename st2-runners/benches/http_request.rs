//! `http-request` throughput: many executions through `Runner::run` against a local server
//! (plain HTTP and HTTPS), concurrently, on one two-thread runtime shared with the server.
//! Prints executions per second; criterion's `thrpt` line is executions per second too.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Packs;
use common::http_server::TestServer;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use st2_core::runner::{RunContext, Runner};
use st2_core::store::ExecutionStatus;
use st2_runners::HttpRequestRunner;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

/// Run `count` executions with at most `concurrency` in flight; returns the time taken.
async fn run_many(
    runner: &Arc<HttpRequestRunner>,
    template: &RunContext,
    count: u64,
    concurrency: usize,
) -> Duration {
    let started = Instant::now();
    let mut in_flight = JoinSet::new();
    let mut started_runs = 0;
    while started_runs < count || !in_flight.is_empty() {
        while started_runs < count && in_flight.len() < concurrency {
            let runner = runner.clone();
            let ctx = template.clone();
            in_flight.spawn(async move { runner.run(ctx).await });
            started_runs += 1;
        }
        if let Some(done) = in_flight.join_next().await {
            let outcome = done.expect("no panic").expect("runs");
            assert_eq!(
                outcome.status,
                ExecutionStatus::Succeeded,
                "{}",
                outcome.result
            );
            black_box(outcome);
        }
    }
    started.elapsed()
}

struct Setup {
    runtime: Runtime,
    runner: Arc<HttpRequestRunner>,
    http: RunContext,
    https: RunContext,
    _packs: Packs,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (http_server, https_server) =
        runtime.block_on(async { (TestServer::http().await, TestServer::https().await) });
    let packs = Packs::load();
    let (http, _) = packs.context(
        "core.http",
        json!({"url": http_server.url("/ok")}),
        json!({"params": {"n": 1}}),
    );
    let (https, _) = packs.context(
        "core.http",
        json!({"url": https_server.url("/ok"), "verify_ssl_cert": false}),
        json!({"params": {"n": 1}}),
    );
    Setup {
        runtime,
        runner: Arc::new(HttpRequestRunner::new()),
        http,
        https,
        _packs: packs,
    }
}

/// CPU time this process used so far (user + system), from `/proc/self/stat` (Linux; the
/// kernel's clock ticks are 1/100 s); `None` elsewhere.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn report(s: &Setup) {
    for (name, ctx, concurrency) in [
        ("http, 1 at a time", &s.http, 1),
        ("http, 64 concurrent", &s.http, 64),
        ("https, 64 concurrent", &s.https, 64),
    ] {
        let count = 20_000;
        // Warm up: connections and the clients.
        s.runtime
            .block_on(run_many(&s.runner, ctx, 500, concurrency));
        let cpu_before = cpu_time();
        let took = s
            .runtime
            .block_on(run_many(&s.runner, ctx, count, concurrency));
        let cpu = cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        // CPU per execution covers the runner and the local server together; it does not
        // depend on what else the machine is doing, unlike the wall-clock rate.
        let cpu_text = cpu
            .map(|c| {
                format!(
                    ", {:.0} µs CPU each (runner + server)",
                    c.as_secs_f64() * 1e6 / count as f64
                )
            })
            .unwrap_or_default();
        println!(
            "http-request {name}: {count} executions in {:.2} s = {:.0} executions/s{cpu_text}",
            took.as_secs_f64(),
            count as f64 / took.as_secs_f64()
        );
    }
}

fn bench(c: &mut Criterion) {
    let s = setup();
    report(&s);
    let mut group = c.benchmark_group("http_request");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    for (name, ctx, concurrency) in [
        ("http_64_concurrent", &s.http, 64),
        ("https_64_concurrent", &s.https, 64),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                s.runtime
                    .block_on(run_many(&s.runner, ctx, iters, concurrency))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
