//! What the engine offers runners (`RunContext::services`): child executions that carry their
//! parent and run through the scheduler, waiting for them without holding a runner slot (a
//! parent on a one-slot engine still gets its child run), triggers dispatched in the parent's
//! trace, announcements, and clear errors for what cannot be done.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use st2_core::engine::{Engine, EngineEvent, EngineSettings};
use st2_core::model::RunnerType;
use st2_core::runner::{ChildRequest, RunContext, RunOutcome, Runner, RunnerError};
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionStatus, Page, Store, TriggerInstanceFilter};

const WAIT: Duration = Duration::from_secs(30);

/// Runs `depth` levels of itself, then a leaf; returns what its child returned.
#[derive(Debug)]
struct Parent;

#[async_trait]
impl Runner for Parent {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        let services = ctx.services()?;
        let depth = ctx
            .parameters
            .get("depth")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let mut request = if depth > 0 {
            ChildRequest::new(
                "svc.parent",
                json!({"depth": depth - 1})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )
        } else {
            ChildRequest::new(
                "svc.leaf",
                json!({"word": "hello"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )
        };
        request
            .context
            .insert("chain".into(), json!({"name": "step"}));
        let child = services.start_child(request).await?;
        let done = services.wait_child(&child.id).await?;
        services
            .dispatch("svc.happened", json!({"child": done.id}))
            .await?;
        services.announce("parents", json!({"child": done.id}));
        let unknown = services
            .start_child(ChildRequest::new("svc.nothing", Map::new()))
            .await
            .expect_err("an unknown action is refused");
        Ok(RunOutcome::with_status(
            done.status,
            json!({
                "child": done.id,
                "child_parent": done.parent,
                "child_context_parent": done.context.get("parent").and_then(|p| p.get("execution_id")).cloned(),
                "child_chain": done.context.get("chain").cloned(),
                "child_result": done.result,
                "unknown": unknown.to_string(),
            }),
        ))
    }
}

/// Echoes its parameters.
#[derive(Debug)]
struct Leaf;

#[async_trait]
impl Runner for Leaf {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        Ok(RunOutcome::succeeded(json!({"echo": ctx.parameters})))
    }
}

fn write_pack(dir: &Path) {
    std::fs::create_dir_all(dir.join("actions")).expect("mkdir");
    std::fs::create_dir_all(dir.join("triggers")).expect("mkdir");
    std::fs::write(
        dir.join("pack.yaml"),
        "ref: svc\nname: svc\ndescription: runner services\nversion: 0.1.0\nauthor: t\nemail: t@example.invalid\n",
    )
    .expect("pack");
    std::fs::write(
        dir.join("actions/parent.yaml"),
        "name: parent\nrunner_type: test-parent\nenabled: true\nparameters:\n  depth:\n    type: integer\n    default: 0\n",
    )
    .expect("action");
    std::fs::write(
        dir.join("actions/leaf.yaml"),
        "name: leaf\nrunner_type: test-leaf\nenabled: true\nparameters:\n  word:\n    type: string\n",
    )
    .expect("action");
    std::fs::write(
        dir.join("triggers/happened.yaml"),
        "name: happened\npack: svc\ndescription: a parent finished\n",
    )
    .expect("trigger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parents_run_children_on_a_single_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_pack(&dir.path().join("svc"));
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    );
    let engine = Engine::builder()
        .store(store.clone())
        .pack_dir(dir.path().join("svc"))
        .runner(RunnerType::new("test-parent", "parent"), Parent)
        .runner(RunnerType::new("test-leaf", "leaf"), Leaf)
        .settings(EngineSettings {
            max_running: 1,
            idle_poll: Duration::from_millis(100),
            heartbeat: Duration::from_millis(200),
            ..EngineSettings::default()
        })
        .start()
        .await
        .expect("engine starts");
    let mut events = engine.subscribe();
    // Three parents deep, then a leaf: four executions waiting on one another, one slot.
    let top = engine
        .run(
            "svc.parent",
            json!({"depth": 2}).as_object().cloned().unwrap_or_default(),
            Map::new(),
        )
        .await
        .expect("runs");
    let done = engine.wait(&top.id, WAIT).await.expect("finishes");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    let child_id = done.result["child"].as_str().expect("a child").to_owned();
    assert_eq!(done.result["child_parent"], json!(top.id));
    assert_eq!(done.result["child_context_parent"], json!(top.id));
    assert_eq!(done.result["child_chain"], json!({"name": "step"}));
    assert_eq!(done.children, vec![child_id.clone()]);
    assert!(
        done.result["unknown"]
            .as_str()
            .is_some_and(|m| m.contains("svc.nothing")),
        "{}",
        done.result["unknown"]
    );
    // Down at the bottom, the leaf echoed its parameters.
    let mut id = child_id;
    loop {
        let record = engine.get(&id).await.expect("get").expect("exists");
        assert_eq!(record.status, ExecutionStatus::Succeeded);
        if record.action_ref == "svc.leaf" {
            assert_eq!(record.result, json!({"echo": {"word": "hello"}}));
            break;
        }
        id = record.result["child"].as_str().expect("a child").to_owned();
    }
    // Each parent dispatched svc.happened in its own trace and announced.
    let filter = TriggerInstanceFilter {
        trigger: Some("svc.happened".to_owned()),
        ..TriggerInstanceFilter::default()
    };
    let instances = store
        .trigger_instances()
        .list(&filter, Page::all())
        .await
        .expect("list")
        .items;
    assert_eq!(instances.len(), 3);
    let mut announced = 0;
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await
    {
        if let EngineEvent::Announcement { route, .. } = event {
            assert_eq!(route, "parents");
            announced += 1;
        }
    }
    assert_eq!(announced, 3);
    engine.shutdown().await;
}
