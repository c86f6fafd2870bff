//! `remote-shell-cmd` throughput against an OpenSSH server on loopback: sequential executions
//! of `true` per second, reusing one kept connection versus opening a connection for each.
//!
//! `cargo bench -p st2-runners --bench remote_shell` (needs `/usr/sbin/sshd` and
//! `ssh-keygen`; runs as root or as a user sshd accepts keys for).
//!
//! A fixed round of each first prints commands per second; criterion then measures the same.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Packs;
use common::sshd::Sshd;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use st2_core::runner::Runner;
use st2_core::store::ExecutionStatus;
use st2_runners::remote::{RemoteSettings, RemoteShellCommandRunner};

const ROUND: u32 = 200;

struct Setup {
    sshd: Sshd,
    packs: Packs,
    runtime: tokio::runtime::Runtime,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            sshd: Sshd::start(),
            packs: Packs::load(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    /// Run `true` once on the server.
    fn run_once(&self, runner: &RemoteShellCommandRunner) {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".to_owned());
        let (ctx, _) = self.packs.context(
            "core.remote",
            json!({
                "hosts": "127.0.0.1",
                "port": self.sshd.port,
                "username": user,
                "private_key": self.sshd.client_key().display().to_string(),
                "cmd": "true",
            }),
            json!({}),
        );
        let outcome = self.runtime.block_on(runner.run(ctx)).expect("runs");
        assert_eq!(
            outcome.status,
            ExecutionStatus::Succeeded,
            "{}",
            outcome.result
        );
    }
}

fn runner(kept: bool) -> RemoteShellCommandRunner {
    RemoteShellCommandRunner::new(RemoteSettings {
        keep_idle: if kept {
            Duration::from_secs(60)
        } else {
            Duration::ZERO
        },
        ..RemoteSettings::default()
    })
}

fn bench(c: &mut Criterion) {
    let setup = Setup::new();
    for (name, kept) in [("kept_connection", true), ("new_connection", false)] {
        let runner = runner(kept);
        setup.run_once(&runner);
        let started = Instant::now();
        for _ in 0..ROUND {
            setup.run_once(&runner);
        }
        let elapsed = started.elapsed();
        println!(
            "remote-shell-cmd {name}: {ROUND} sequential executions in {elapsed:.2?}, \
             {:.0} commands/s",
            f64::from(ROUND) / elapsed.as_secs_f64()
        );
    }
    let mut group = c.benchmark_group("remote_shell_cmd");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    for (name, kept) in [("kept_connection", true), ("new_connection", false)] {
        let runner = runner(kept);
        group.bench_function(name, |b| b.iter(|| setup.run_once(&runner)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
