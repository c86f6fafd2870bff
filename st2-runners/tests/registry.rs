//! Contract: `register_builtin` registers the built-in runners
//! under StackStorm's names, once; `noop` succeeds with StackStorm's result.

mod common;

use common::Packs;
use serde_json::json;
use st2_core::runner::RunnerRegistry;
use st2_core::store::ExecutionStatus;

#[tokio::test]
async fn builtin_runners_are_registered_and_noop_succeeds() {
    let mut registry = RunnerRegistry::new();
    st2_runners::register_builtin(&mut registry).expect("registers");
    assert_eq!(
        registry.names(),
        [
            "action-chain",
            "announcement",
            "http-request",
            "inquirer",
            "local-shell-cmd",
            "local-shell-script",
            "noop",
            "remote-shell-cmd",
            "remote-shell-script",
            "rhai-script"
        ]
    );
    assert!(st2_runners::register_builtin(&mut registry).is_err());

    let packs = Packs::load();
    let (ctx, _) = packs.context("core.noop", json!({}), json!({}));
    let outcome = registry
        .get("noop")
        .expect("noop")
        .run(ctx)
        .await
        .expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    assert_eq!(
        outcome.result,
        json!({"failed": false, "succeeded": true, "return_code": 0})
    );

    let (ctx, _) = packs.context("core.local", json!({"cmd": "echo 1"}), json!({}));
    let outcome = registry
        .get("local-shell-cmd")
        .expect("registered")
        .run(ctx)
        .await
        .expect("runs");
    assert_eq!(outcome.result["stdout"], json!(1));
}
