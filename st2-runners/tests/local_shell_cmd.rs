//! Contract: `local-shell-cmd` runs `cmd` with bash, streams its output, and returns
//! StackStorm's result and status; `core.echo`, `core.local` and `core.local_sudo` behave as in
//! StackStorm, except that rendered values are never executed.

mod common;

use std::time::{Duration, Instant};

use common::Packs;
use serde_json::{Value, json};
use st2_core::runner::{Runner, RunnerError};
use st2_core::store::{ExecutionStatus, OutputType};
use st2_runners::LocalShellCommandRunner;

async fn run_cmd(
    packs: &Packs,
    cmd: &str,
    extra: Value,
) -> (st2_core::runner::RunOutcome, Vec<(OutputType, String)>) {
    let mut params = json!({"cmd": cmd});
    if let (Value::Object(p), Value::Object(e)) = (&mut params, extra) {
        p.extend(e);
    }
    let (ctx, recorder) = packs.context("core.local", params, json!({}));
    let outcome = LocalShellCommandRunner::default()
        .run(ctx)
        .await
        .expect("runs");
    (outcome, recorder.chunks())
}

#[tokio::test]
async fn echo_succeeds_with_stripped_output() {
    let packs = Packs::load();
    let (outcome, _) = run_cmd(&packs, "echo hello; printf 'x\\r\\n' >&2", json!({})).await;
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    assert_eq!(
        outcome.result,
        json!({"failed": false, "succeeded": true, "return_code": 0, "stdout": "hello", "stderr": "x"})
    );
}

#[tokio::test]
async fn exit_codes_map_to_statuses() {
    let packs = Packs::load();
    for (cmd, code, status) in [
        ("exit 1", 1, ExecutionStatus::Failed),
        ("exit 3", 3, ExecutionStatus::Failed),
        ("kill -TERM $$", -15, ExecutionStatus::Abandoned),
        ("kill -KILL $$", -9, ExecutionStatus::Timeout),
    ] {
        let (outcome, _) = run_cmd(&packs, cmd, json!({})).await;
        assert_eq!(outcome.status, status, "{cmd}");
        assert_eq!(outcome.result["return_code"], json!(code), "{cmd}");
        assert_eq!(outcome.result["succeeded"], json!(false), "{cmd}");
        assert_eq!(outcome.result["failed"], json!(true), "{cmd}");
    }
    // StackStorm reads any -9 as its own timeout kill.
    let (outcome, _) = run_cmd(&packs, "kill -KILL $$", json!({"timeout": 5})).await;
    assert_eq!(
        outcome.result["error"],
        json!("Action failed to complete in 5 seconds")
    );
}

#[tokio::test]
async fn output_is_streamed_line_by_line_in_order() {
    let packs = Packs::load();
    let (outcome, chunks) = run_cmd(
        &packs,
        "echo a; echo b >&2; sleep 0.2; echo c; sleep 0.2; echo d >&2",
        json!({}),
    )
    .await;
    assert_eq!(outcome.result["stdout"], json!("a\nc"));
    assert_eq!(outcome.result["stderr"], json!("b\nd"));
    let pos = |t: OutputType, s: &str| {
        chunks
            .iter()
            .position(|(ty, d)| *ty == t && d == s)
            .unwrap_or_else(|| panic!("{s:?} missing from {chunks:?}"))
    };
    let (a, b, c, d) = (
        pos(OutputType::Stdout, "a\n"),
        pos(OutputType::Stderr, "b\n"),
        pos(OutputType::Stdout, "c\n"),
        pos(OutputType::Stderr, "d\n"),
    );
    assert!(a < c && b < c && c < d, "{chunks:?}");
    assert_eq!(chunks.len(), 4);
}

#[tokio::test]
async fn lines_arrive_while_the_command_runs() {
    let packs = Packs::load();
    let (ctx, recorder) = packs.context(
        "core.local",
        json!({"cmd": "echo first; sleep 1; echo second"}),
        json!({}),
    );
    let run = tokio::spawn(async move { LocalShellCommandRunner::default().run(ctx).await });
    let start = Instant::now();
    while recorder.chunks().is_empty() {
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "no output while running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!run.is_finished());
    assert_eq!(
        recorder.chunks(),
        [(OutputType::Stdout, "first\n".to_owned())]
    );
    let outcome = run.await.expect("joins").expect("runs");
    assert_eq!(outcome.result["stdout"], json!("first\nsecond"));
}

#[tokio::test]
async fn json_output_is_parsed() {
    let packs = Packs::load();
    let (outcome, _) = run_cmd(&packs, r#"echo '{"a": [1, 2]}'; echo 42 >&2"#, json!({})).await;
    assert_eq!(outcome.result["stdout"], json!({"a": [1, 2]}));
    assert_eq!(outcome.result["stderr"], json!(42));
    let (outcome, _) = run_cmd(&packs, "echo 007; echo '\"quoted\"' >&2", json!({})).await;
    assert_eq!(outcome.result["stdout"], json!("007"));
    assert_eq!(outcome.result["stderr"], json!("quoted"));
}

#[tokio::test]
async fn env_and_cwd() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let cwd = dir.path().canonicalize().expect("canonical");
    let (outcome, _) = run_cmd(
        &packs,
        r#"echo "$GREETING $ST2_ACTION_PACK_NAME $ST2_ACTION_EXECUTION_ID"; pwd"#,
        json!({"env": {"GREETING": "hello there"}, "cwd": cwd.to_string_lossy()}),
    )
    .await;
    assert_eq!(
        outcome.result["stdout"],
        json!(format!("hello there core exec-1\n{}", cwd.display()))
    );
}

/// An `env` parameter's `PATH` is what the command searches, not where the shell comes from:
/// the shell still starts (builtins run), and programs are looked up on the given `PATH`.
#[tokio::test]
async fn a_path_in_env_does_not_change_the_shell() {
    let packs = Packs::load();
    let (outcome, _) = run_cmd(
        &packs,
        "echo \"$PATH\"; ls /",
        json!({"env": {"PATH": "/nonexistent"}}),
    )
    .await;
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert_eq!(outcome.result["return_code"], json!(127));
    assert_eq!(outcome.result["stdout"], json!("/nonexistent"));
    let stderr = outcome.result["stderr"].as_str().expect("stderr text");
    assert!(stderr.contains("ls: command not found"), "{stderr}");
}

#[tokio::test]
async fn core_echo_prints_values_as_text() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    for message in [
        "\"; touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "it's \"quoted\"",
        "two\nlines; touch pwned",
        "*",
        "${HOME}",
        "-n",
    ] {
        let (ctx, _) = packs.cmd_context(
            "core.echo",
            "echo \"{{message}}\"",
            json!({"kwarg_op": "--", "sudo": false, "timeout": 60, "cwd": dir.path().to_string_lossy()}),
            json!({"message": message}),
        );
        let outcome = LocalShellCommandRunner::default()
            .run(ctx)
            .await
            .expect("runs");
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{message}");
        // `echo -n` prints nothing, in StackStorm too.
        let expected = if message == "-n" { "" } else { message };
        assert_eq!(outcome.result["stdout"], json!(expected), "{message}");
    }
    assert!(!dir.path().join("pwned").exists(), "a message was executed");
}

#[tokio::test]
async fn core_error_writes_to_stderr_and_succeeds() {
    let packs = Packs::load();
    let (ctx, _) = packs.cmd_context(
        "core.error",
        ">&2 echo \"{{message}}\"",
        json!({}),
        json!({"message": "$(id) oops"}),
    );
    let outcome = LocalShellCommandRunner::default()
        .run(ctx)
        .await
        .expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    assert_eq!(outcome.result["stderr"], json!("$(id) oops"));
    assert_eq!(outcome.result["stdout"], json!(""));
}

#[tokio::test]
async fn core_local_runs_shell_syntax() {
    let packs = Packs::load();
    let (outcome, _) = run_cmd(
        &packs,
        "for i in a b; do echo $i; done | wc -l && true",
        json!({}),
    )
    .await;
    assert_eq!(outcome.result["stdout"], json!(2));
}

/// A `sudo` stand-in on PATH: logs its arguments and standard input, refuses any password but
/// `right` the way sudo words it, then runs the command after `--`.
fn fake_sudo(dir: &std::path::Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let script = r#"#!/bin/sh
printf '%s\n' "$@" > "$SUDO_LOG"
if [ "$1" = "-S" ]; then
  read -r pw
  printf '%s' "$pw" > "$SUDO_LOG.stdin"
  if [ "$pw" != "right" ]; then
    echo "[sudo] password for stanley: Sorry, try again." >&2
    echo "sudo: 3 incorrect password attempts" >&2
    exit 1
  fi
fi
while [ "$1" != "--" ]; do shift; done
shift
exec "$@"
"#;
    std::fs::write(bin.join("sudo"), script).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("sudo"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    format!(
        "{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        bin.display()
    )
}

#[tokio::test]
async fn core_local_sudo_wraps_the_command() {
    let packs = Packs::load();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = fake_sudo(dir.path());
    let log = dir.path().join("sudo.log");
    let env = json!({"PATH": path, "SUDO_LOG": log.to_string_lossy()});

    let (ctx, _) = packs.context(
        "core.local_sudo",
        json!({"cmd": "echo 'as root'", "sudo": true, "env": env}),
        json!({}),
    );
    let outcome = LocalShellCommandRunner::default()
        .run(ctx)
        .await
        .expect("runs");
    assert_eq!(outcome.result["stdout"], json!("as root"));
    let args = std::fs::read_to_string(&log).expect("sudo ran");
    assert_eq!(args, "-E\n--\nbash\n-c\necho 'as root'\n");

    let (ctx, _) = packs.context(
        "core.local_sudo",
        json!({"cmd": "echo ok", "sudo": true, "sudo_password": "right", "env": env}),
        json!({}),
    );
    let outcome = LocalShellCommandRunner::default()
        .run(ctx)
        .await
        .expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    assert_eq!(
        std::fs::read_to_string(&log).expect("log"),
        "-S\n-E\n--\nbash\n-c\necho ok\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("sudo.log.stdin")).expect("stdin"),
        "right"
    );

    let (ctx, _) = packs.context(
        "core.local_sudo",
        json!({"cmd": "echo ok", "sudo": true, "sudo_password": "wrong", "env": env}),
        json!({}),
    );
    let outcome = LocalShellCommandRunner::default()
        .run(ctx)
        .await
        .expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert_eq!(outcome.result["return_code"], json!(-1));
    assert_eq!(
        outcome.result["error"],
        json!("Invalid sudo password provided or sudo is not configured for this user (stanley)")
    );
}

#[tokio::test]
async fn bad_parameters_are_errors() {
    let packs = Packs::load();
    for (params, name) in [
        (json!({}), "cmd"),
        (json!({"cmd": 5}), "cmd"),
        (json!({"cmd": "true", "timeout": "soon"}), "timeout"),
        (json!({"cmd": "true", "env": "A=1"}), "env"),
        (json!({"cmd": "true", "env": {"A": 1}}), "env"),
        (json!({"cmd": "true", "env": {"A=B": "1"}}), "env"),
        (json!({"cmd": "true", "env": {"A": "a\u{0}b"}}), "env"),
        (json!({"cmd": "true", "sudo": "yes"}), "sudo"),
        (json!({"cmd": "true", "cwd": ["x"]}), "cwd"),
    ] {
        let (ctx, _) = packs.context("core.local", params.clone(), json!({}));
        match LocalShellCommandRunner::default().run(ctx).await {
            Err(RunnerError::Parameter { name: got, .. }) => assert_eq!(got, name, "{params}"),
            other => panic!("{params}: {other:?}"),
        }
    }
    let (ctx, _) = packs.context(
        "core.local",
        json!({"cmd": "true", "cwd": "/no/such/dir"}),
        json!({}),
    );
    assert!(matches!(
        LocalShellCommandRunner::default().run(ctx).await,
        Err(RunnerError::Failed(_))
    ));
    // A script action cannot run on the command runner.
    let (ctx, _) = packs.context("shelltest.env", json!({"cmd": "true"}), json!({}));
    assert!(matches!(
        LocalShellCommandRunner::default().run(ctx).await,
        Err(RunnerError::Failed(m)) if m.contains("entry_point")
    ));
}

#[tokio::test]
async fn action_parameters_only_reach_the_command_through_templates() {
    let packs = Packs::load();
    let (ctx, _) = packs.cmd_context(
        "shelltest.cmd",
        "echo \"[$*]\" '{{ text }}' {{ text }}",
        json!({}),
        json!({"text": "a  b"}),
    );
    let outcome = LocalShellCommandRunner::default()
        .run(ctx)
        .await
        .expect("runs");
    assert_eq!(outcome.result["stdout"], json!("[] a  b a b"));
}
