//! Contract: `remote-shell-cmd` and `remote-shell-script` against a real OpenSSH server on
//! loopback: StackStorm's per-host results and status rules, env/cwd, JSON output, timeouts,
//! login and connection failures, the script with its `lib/` copied and removed, cancellation,
//! streamed output, values of a rendered `cmd` reaching the command unevaluated, and kept
//! connections.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Packs;
use common::sshd::{Sshd, free_port};
use serde_json::{Map, Value, json};
use st2_core::engine::{Engine, EngineSettings};
use st2_core::runner::{Cancellation, Runner, RunnerRegistry};
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionStatus, OutputType, Store};
use st2_runners::remote::{RemoteSettings, RemoteShellCommandRunner, RemoteShellScriptRunner};

/// Runner parameters logging in to `sshd` as root with its client key.
fn login(sshd: &Sshd, extra: Value) -> Value {
    let mut params = json!({
        "hosts": "127.0.0.1",
        "port": sshd.port,
        "username": "root",
        "private_key": sshd.client_key().display().to_string(),
        "timeout": 20,
    });
    if let (Value::Object(base), Value::Object(extra)) = (&mut params, extra) {
        base.extend(extra);
    }
    params
}

fn cmd_runner() -> RemoteShellCommandRunner {
    RemoteShellCommandRunner::new(RemoteSettings::default())
}

#[tokio::test]
async fn command_on_one_host_streams_and_returns_stackstorms_result() {
    let sshd = Sshd::start();
    let packs = Packs::load();
    let (ctx, recorder) = packs.context(
        "core.remote",
        login(
            &sshd,
            json!({"cmd": "echo hello; echo oops >&2; echo '{\"a\": [1, 2]}'"}),
        ),
        json!({}),
    );
    let outcome = cmd_runner().run(ctx).await.expect("runs");
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    let host = &outcome.result["127.0.0.1"];
    assert_eq!(host["stdout"], json!("hello\n{\"a\": [1, 2]}"));
    assert_eq!(host["stderr"], json!("oops"));
    assert_eq!(host["return_code"], json!(0));
    assert_eq!(host["succeeded"], json!(true));
    assert_eq!(host["failed"], json!(false));
    let chunks = recorder.chunks();
    assert!(
        chunks.contains(&(OutputType::Stdout, "hello\n".to_owned())),
        "{chunks:?}"
    );
    assert!(
        chunks.contains(&(OutputType::Stderr, "oops\n".to_owned())),
        "{chunks:?}"
    );

    // Output that is JSON as a whole is parsed.
    let (ctx, _) = packs.context(
        "core.remote",
        login(&sshd, json!({"cmd": "echo '{\"a\": [1, 2]}'; echo 42 >&2"})),
        json!({}),
    );
    let outcome = cmd_runner().run(ctx).await.expect("runs");
    assert_eq!(outcome.result["127.0.0.1"]["stdout"], json!({"a": [1, 2]}));
    assert_eq!(outcome.result["127.0.0.1"]["stderr"], json!(42));
}

#[tokio::test]
async fn several_hosts_run_in_parallel_and_fail_together() {
    let sshd = Sshd::start();
    let packs = Packs::load();
    let (ctx, recorder) = packs.context(
        "core.remote",
        login(
            &sshd,
            json!({
                "hosts": "127.0.0.1, localhost",
                "parallel": true,
                "cmd": "date +%s%N; sleep 1; date +%s%N",
            }),
        ),
        json!({}),
    );
    let outcome = cmd_runner().run(ctx).await.expect("runs");
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    // Each host printed when it started and ended: the two runs overlap.
    let span = |host: &str| -> (u128, u128) {
        let text = outcome.result[host]["stdout"].as_str().unwrap_or_default();
        let times: Vec<u128> = text.lines().filter_map(|l| l.parse().ok()).collect();
        assert_eq!(times.len(), 2, "{text:?}");
        (times[0], times[1])
    };
    let (a, b) = (span("127.0.0.1"), span("localhost"));
    assert!(
        a.0 < b.1 && b.0 < a.1,
        "the hosts ran one after the other: {a:?} {b:?}"
    );
    assert!(
        recorder.chunks().is_empty(),
        "output of several hosts is not streamed"
    );

    // One host fails: the execution fails, each host keeps its own result. Entries sharing
    // a host name are told apart by their port.
    let closed = free_port();
    let hosts = format!("127.0.0.1:{}, 127.0.0.1:{closed}", sshd.port);
    let (ctx, _) = packs.context(
        "core.remote",
        login(&sshd, json!({"hosts": hosts, "cmd": "true"})),
        json!({}),
    );
    let outcome = cmd_runner().run(ctx).await.expect("runs");
    assert_eq!(
        outcome.status,
        ExecutionStatus::Failed,
        "{}",
        outcome.result
    );
    let good = &outcome.result[format!("127.0.0.1:{}", sshd.port)];
    assert_eq!(good["succeeded"], json!(true), "{}", outcome.result);
    let bad = &outcome.result[format!("127.0.0.1:{closed}")];
    assert_eq!(bad["return_code"], json!(255));
    assert_eq!(bad["timeout"], json!(false));
    let error = bad["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("Failed connecting to host 127.0.0.1."),
        "{error}"
    );
    assert!(error.contains(&closed.to_string()), "{error}");
    assert!(bad.get("traceback").is_some());
}

#[tokio::test]
async fn env_cwd_key_material_and_exit_codes() {
    let sshd = Sshd::start();
    let packs = Packs::load();
    let work = tempfile::tempdir().expect("tempdir");
    let key = std::fs::read_to_string(sshd.client_key()).expect("key");
    let (ctx, _) = packs.context(
        "core.remote",
        login(
            &sshd,
            json!({
                "private_key": key,
                "cwd": work.path().display().to_string(),
                "env": {"GREETING": "it's a \"test\" $(id)"},
                "cmd": "echo \"$GREETING\"; pwd; echo \"$ST2_ACTION_PACK_NAME\"; echo bad >&2; exit 3",
            }),
        ),
        json!({}),
    );
    let outcome = cmd_runner().run(ctx).await.expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    let host = &outcome.result["127.0.0.1"];
    assert_eq!(
        host["stdout"],
        json!(format!(
            "it's a \"test\" $(id)\n{}\ncore",
            work.path().display()
        ))
    );
    assert_eq!(host["stderr"], json!("bad"));
    assert_eq!(host["return_code"], json!(3));
    assert_eq!(host["failed"], json!(true));
    assert_eq!(host["succeeded"], json!(false));
}

#[tokio::test]
async fn timeout_ends_every_host_within_the_limit() {
    let sshd = Sshd::start();
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("still-running");
    let cmd = format!(
        "echo started; sleep 3; touch {}; sleep 30",
        marker.display()
    );
    let (ctx, _) = packs.context(
        "core.remote",
        login(&sshd, json!({"cmd": cmd, "timeout": 2})),
        json!({}),
    );
    let started = Instant::now();
    let outcome = cmd_runner().run(ctx).await.expect("runs");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        outcome.status,
        ExecutionStatus::Timeout,
        "{}",
        outcome.result
    );
    let host = &outcome.result["127.0.0.1"];
    assert_eq!(host["return_code"], json!(-9));
    assert_eq!(host["timeout"], json!(true));
    assert_eq!(host["stdout"], json!("started"));
    let error = host["error"].as_str().unwrap_or_default();
    assert!(error.contains("didn't finish in 2 seconds"), "{error}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!marker.exists(), "the remote command survived its timeout");

    // Connecting counts against the timeout too: a port that accepts but never speaks SSH.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let (ctx, _) = packs.context(
        "core.remote",
        login(&sshd, json!({"port": port, "cmd": "true", "timeout": 1})),
        json!({}),
    );
    let started = Instant::now();
    let outcome = cmd_runner().run(ctx).await.expect("runs");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        outcome.status,
        ExecutionStatus::Timeout,
        "{}",
        outcome.result
    );
}

#[tokio::test]
async fn login_failures_are_per_host_errors() {
    let sshd = Sshd::start();
    let packs = Packs::load();
    for extra in [
        json!({"password": "not-the-password"}),
        json!({"private_key": sshd.stranger_key().display().to_string()}),
    ] {
        let mut extra = extra;
        extra["cmd"] = json!("true");
        let (ctx, _) = packs.context("core.remote", login(&sshd, extra.clone()), json!({}));
        let outcome = cmd_runner().run(ctx).await.expect("runs");
        assert_eq!(outcome.status, ExecutionStatus::Failed, "{extra}");
        let host = &outcome.result["127.0.0.1"];
        assert_eq!(host["return_code"], json!(255));
        assert_eq!(host["failed"], json!(true));
        let error = host["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("Authentication failed for user \"root\""),
            "{error}"
        );
        assert!(!error.contains("not-the-password"), "{error}");
    }

    // Bad parameters are errors naming the parameter.
    for (extra, name) in [
        (json!({"private_key": "/no/such/key"}), "private_key"),
        (json!({"hosts": " , "}), "hosts"),
        (json!({"hosts": "a:b"}), "hosts"),
        (json!({"port": "22"}), "port"),
        (json!({"env": {"A": 1}}), "env"),
    ] {
        let mut params = login(&sshd, extra);
        params["cmd"] = json!("true");
        let (ctx, _) = packs.context("core.remote", params, json!({}));
        let err = cmd_runner().run(ctx).await.expect_err("bad parameter");
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[tokio::test]
async fn script_runs_with_arguments_and_lib_then_its_directory_is_removed() {
    let sshd = Sshd::start();
    let packs = Packs::load();
    let base = tempfile::tempdir().expect("tempdir");
    let cwd = tempfile::tempdir().expect("tempdir");
    let (ctx, recorder) = packs.context(
        "remotetest.greet",
        login(
            &sshd,
            json!({
                "dir": base.path().display().to_string(),
                "cwd": cwd.path().display().to_string(),
            }),
        ),
        json!({"who": "world $(id)", "loud": true, "times": 2}),
    );
    let runner = RemoteShellScriptRunner::new(RemoteSettings::default());
    let outcome = runner.run(ctx).await.expect("runs");
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    let remote_dir = base.path().join("exec-1");
    let expected = [
        "hello, world $(id)".to_owned(),
        "[--loud]".to_owned(),
        "[--times=2]".to_owned(),
        "[world $(id)]".to_owned(),
        format!("dir={}", remote_dir.display()),
        format!("cwd={}", cwd.path().display()),
        "mode=744".to_owned(),
        "pack=remotetest".to_owned(),
    ]
    .join("\n");
    assert_eq!(outcome.result["127.0.0.1"]["stdout"], json!(expected));
    assert!(
        !remote_dir.exists(),
        "the execution's directory was left behind"
    );
    assert!(!recorder.chunks().is_empty());

    // A directory someone else made first is neither used nor removed.
    std::fs::create_dir(&remote_dir).expect("mkdir");
    std::fs::write(remote_dir.join("theirs"), "x").expect("write");
    let (ctx, _) = packs.context(
        "remotetest.greet",
        login(&sshd, json!({"dir": base.path().display().to_string()})),
        json!({"who": "again"}),
    );
    let outcome = runner.run(ctx).await.expect("runs");
    assert_eq!(
        outcome.status,
        ExecutionStatus::Failed,
        "{}",
        outcome.result
    );
    let host = &outcome.result["127.0.0.1"];
    assert_eq!(host["return_code"], json!(255));
    let error = host["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("Failed sending file(s) to host"),
        "{error}"
    );
    assert!(error.contains("File exists"), "{error}");
    assert!(remote_dir.join("theirs").exists());
    std::fs::remove_dir_all(&remote_dir).expect("cleanup");

    // Arguments are data: `$(sleep 30)` is not run (it would time out).
    let (ctx, _) = packs.context(
        "remotetest.greet",
        login(
            &sshd,
            json!({"dir": base.path().display().to_string(), "timeout": 10}),
        ),
        json!({"who": "$(sleep 30)"}),
    );
    let outcome = runner.run(ctx).await.expect("runs");
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "arguments are data"
    );
    assert!(!remote_dir.exists());
}

#[tokio::test]
async fn cancel_closes_the_channel_and_returns_canceled() {
    let sshd = Sshd::start();
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("still-running");
    let cmd = format!("echo begun; sleep 2; touch {}; sleep 30", marker.display());
    let (mut ctx, recorder) =
        packs.context("core.remote", login(&sshd, json!({"cmd": cmd})), json!({}));
    let (canceller, cancel) = Cancellation::new();
    ctx.cancel = cancel;
    let run = tokio::spawn(async move { cmd_runner().run(ctx).await });
    // Cancel once the command runs (its first line has arrived).
    let waiting = Instant::now();
    while recorder.chunks().is_empty() {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "the command never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    canceller.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("returns promptly")
        .expect("joins")
        .expect("runs");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(
        outcome.status,
        ExecutionStatus::Canceled,
        "{}",
        outcome.result
    );
    assert_eq!(outcome.result["127.0.0.1"]["stdout"], json!("begun"));
    // The command's shell was killed, not just left without its channel.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!marker.exists(), "the remote command survived the cancel");
}

#[tokio::test]
async fn rendered_values_reach_the_remote_command_as_text() {
    let sshd = Sshd::start();
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("pwned");
    let text = format!(
        "it's \"x\" $(touch {m}) `touch {m}` ; touch {m} \\ $HOME",
        m = marker.display()
    );
    let (ctx, _) = packs.cmd_context(
        "core.remote",
        "echo \"{{ text }}\"; echo '{{ text }}'",
        login(&sshd, json!({})),
        json!({"text": text}),
    );
    assert!(!ctx.shell_values.is_empty());
    let outcome = cmd_runner().run(ctx).await.expect("runs");
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    assert_eq!(
        outcome.result["127.0.0.1"]["stdout"],
        json!(format!("{text}\n{text}"))
    );
    assert!(!marker.exists(), "a value ran as shell syntax");
}

#[tokio::test]
async fn connections_are_kept_between_executions_only_when_asked() {
    let sshd = Sshd::start();
    let packs = Packs::load();
    // `SSH_CLIENT` holds the client's port: the same port means the same connection.
    let client_port = |runner: RemoteShellCommandRunner| {
        let packs = &packs;
        let sshd = &sshd;
        async move {
            let (ctx, _) = packs.context(
                "core.remote",
                login(sshd, json!({"cmd": "echo \"$SSH_CLIENT\" | cut -d' ' -f2"})),
                json!({}),
            );
            let outcome = runner.run(ctx).await.expect("runs");
            assert_eq!(
                outcome.status,
                ExecutionStatus::Succeeded,
                "{}",
                outcome.result
            );
            outcome.result["127.0.0.1"]["stdout"].clone()
        }
    };
    let kept = cmd_runner();
    let first = client_port(kept.clone()).await;
    assert_eq!(client_port(kept.clone()).await, first);

    let fresh = RemoteShellCommandRunner::new(RemoteSettings {
        keep_idle: Duration::ZERO,
        ..RemoteSettings::default()
    });
    let one = client_port(fresh.clone()).await;
    assert_ne!(client_port(fresh).await, one);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_runs_remote_actions() {
    let sshd = Sshd::start();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    );
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners).expect("register");
    let engine = Engine::builder()
        .store(store)
        .pack_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packs/remotetest"))
        .runners(runners)
        .settings(EngineSettings {
            heartbeat: Duration::from_millis(200),
            idle_poll: Duration::from_millis(100),
            ..EngineSettings::default()
        })
        .start()
        .await
        .expect("engine starts");
    let scratch = tempfile::tempdir().expect("tempdir");
    let marker = scratch.path().join("pwned");
    let message = format!("\"$(touch {m})\" '; touch {m}", m = marker.display());
    let Value::Object(mut params) = login(&sshd, json!({"message": message})) else {
        unreachable!("login builds an object")
    };
    let created = engine
        .run("remotetest.echo", params.clone(), Map::new())
        .await
        .expect("run");
    let done = engine
        .wait(&created.id, Duration::from_secs(30))
        .await
        .expect("done");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(done.result["127.0.0.1"]["stdout"], json!(message));
    assert!(!marker.exists(), "the message ran as shell syntax");
    let output = engine.output(&done.id).await.expect("output");
    assert_eq!(output[0].chunk.data, format!("{message}\n"));

    params.remove("message");
    params.insert("who".to_owned(), json!("engine"));
    params.insert(
        "dir".to_owned(),
        json!(scratch.path().display().to_string()),
    );
    let created = engine
        .run("remotetest.greet", params, Map::new())
        .await
        .expect("run");
    let done = engine
        .wait(&created.id, Duration::from_secs(30))
        .await
        .expect("done");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    let stdout = done.result["127.0.0.1"]["stdout"]
        .as_str()
        .unwrap_or_default();
    assert!(stdout.starts_with("hello, engine\n[engine]\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("dir={}/{}", scratch.path().display(), done.id)),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("cwd=/tmp\nmode=744\npack=remotetest"),
        "{stdout}"
    );
    assert!(
        !scratch.path().join(&done.id).exists(),
        "the script's directory was left behind"
    );
}
