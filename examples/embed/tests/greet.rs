//! The embedding example works end to end: a dispatched `hello_st2.event` makes the rule
//! `greet_on_event` run `hello_st2.greet`, which succeeds and prints the configured greeting,
//! and `cargo run -p example-embed` prints that execution.

use std::process::Command;

use st2_core::store::ExecutionStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatched_event_is_greeted_by_its_rule() {
    let data = tempfile::tempdir().expect("temp dir");
    let execution = example_embed::greet(&data.path().join("st2.db"), "Ada Lovelace")
        .await
        .expect("the example runs");

    assert_eq!(execution.status, ExecutionStatus::Succeeded);
    assert_eq!(execution.action_ref, "hello_st2.greet");
    assert_eq!(
        execution.rule.as_ref().expect("started by a rule")["ref"],
        "hello_st2.greet_on_event"
    );
    // `greeting` comes from examples/configs/hello_st2.yaml.
    assert_eq!(execution.result["stdout"], "Hi, Ada Lovelace!");
    assert_eq!(execution.result["return_code"], 0);
}

#[test]
fn the_program_prints_the_execution() {
    let out = Command::new(env!("CARGO_BIN_EXE_example-embed"))
        .arg("Grace Hopper")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("the example program starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("hello_st2.greet succeeded ("),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""stdout": "Hi, Grace Hopper!""#),
        "{stdout}"
    );
}
