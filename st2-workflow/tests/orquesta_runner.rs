//! The `orquesta` runner under a real engine: tasks run as child executions with StackStorm's
//! context, publish and output flow through, with-items respects its concurrency and records
//! each item, failures end the workflow `failed` with errors naming the task, cancel and
//! pause/resume cascade, subworkflows nest, and an engine killed mid-workflow continues it on
//! the next start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use st2_core::engine::{Engine, EngineSettings};
use st2_core::runner::RunnerRegistry;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{
    ExecutionFilter, ExecutionRecord, ExecutionStatus, Page, ParentFilter, Store,
};
use st2_workflow::OrquestaRunner;

const WAIT: Duration = Duration::from_secs(60);

fn packs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wfpacks")
}

fn settings() -> EngineSettings {
    EngineSettings {
        heartbeat: Duration::from_millis(100),
        idle_poll: Duration::from_millis(50),
        lease: Duration::from_millis(1500),
        reap_interval: Duration::from_millis(200),
        ..EngineSettings::default()
    }
}

async fn engine_on(store: Arc<dyn Store>) -> Engine {
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners).expect("built-in runners");
    runners
        .register("orquesta", OrquestaRunner::new())
        .expect("orquesta");
    Engine::builder()
        .store(store)
        .packs_dir(packs())
        .runners(runners)
        .settings(settings())
        .start()
        .await
        .expect("engine starts")
}

async fn engine() -> Engine {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    );
    engine_on(store).await
}

fn params(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Request `action` with parameters `p`: the execution as first stored.
async fn start(engine: &Engine, action: &str, p: Value) -> ExecutionRecord {
    engine
        .run(action, params(p), Map::new())
        .await
        .expect("requested")
}

async fn run(engine: &Engine, action: &str, p: Value) -> ExecutionRecord {
    let started = start(engine, action, p).await;
    engine.wait(&started.id, WAIT).await.expect("completes")
}

async fn children(engine: &Engine, parent: &ExecutionRecord) -> Vec<ExecutionRecord> {
    let mut out = Vec::new();
    let parent = engine.get(&parent.id).await.expect("get").expect("stored");
    for id in &parent.children {
        out.push(engine.get(id).await.expect("get").expect("child stored"));
    }
    out
}

async fn wait_for(engine: &Engine, id: &str, status: ExecutionStatus) -> ExecutionRecord {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = engine.get(id).await.expect("get").expect("stored");
        if r.status == status {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never reached {status}: {}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first child of `parent` running `task`, once it exists.
async fn child_of(engine: &Engine, parent: &str, task: &str) -> ExecutionRecord {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let p = engine.get(parent).await.expect("get").expect("stored");
        for id in &p.children {
            let c = engine.get(id).await.expect("get").expect("child");
            if c.context["orquesta"]["task_name"] == json!(task) {
                return c;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no child for {task}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_publishes_and_renders_its_output() {
    let engine = engine().await;
    let done = run(&engine, "wftest.sequence", json!({"name": "rust"})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    assert_eq!(
        done.result,
        json!({"output": {"greeting": "hello rust", "shouted": "HELLO RUST", "user": "stanley"}})
    );
    let kids = children(&engine, &done).await;
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[0].action_ref, "core.echo");
    assert_eq!(kids[1].action_ref, "core.local");
    for (kid, task) in kids.iter().zip(["greet", "shout"]) {
        assert_eq!(kid.parent.as_deref(), Some(done.id.as_str()));
        assert_eq!(kid.context["orquesta"]["task_name"], json!(task));
        assert_eq!(
            kid.context["orquesta"]["workflow_execution_id"],
            json!(done.id)
        );
        assert_eq!(kid.context["parent"]["execution_id"], json!(done.id));
        assert_eq!(kid.status, ExecutionStatus::Succeeded);
    }
    // The state is kept: the workflow record and one task record per task.
    let wf = engine
        .store()
        .workflows()
        .get_by_execution(&done.id)
        .await
        .expect("read")
        .expect("workflow record");
    assert_eq!(wf.status, "succeeded");
    let tasks = engine
        .store()
        .workflows()
        .list_tasks(&wf.id)
        .await
        .expect("tasks");
    let names: Vec<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(names, ["greet", "shout"]);
    assert!(tasks.iter().all(|t| t.status == "succeeded"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_items_keeps_to_its_concurrency_and_records_every_item() {
    let engine = engine().await;
    let done = run(
        &engine,
        "wftest.items",
        json!({"count": 12, "concurrency": 3}),
    )
    .await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    let outs: Vec<String> = (0..12).map(|i| format!("item-{i}")).collect();
    assert_eq!(done.result["output"]["outs"], json!(outs));
    let kids = children(&engine, &done).await;
    assert_eq!(
        kids.len(),
        12,
        "one child per item, created when handed out"
    );
    let mut items: Vec<i64> = kids
        .iter()
        .map(|k| k.context["orquesta"]["item_id"].as_i64().expect("item id"))
        .collect();
    items.sort_unstable();
    assert_eq!(items, (0..12).collect::<Vec<_>>());
    // Never more than 3 unfinished at once: at each child's creation, count the children
    // created before it and not yet ended.
    for k in &kids {
        let open = kids
            .iter()
            .filter(|o| {
                o.start_timestamp <= k.start_timestamp
                    && o.end_timestamp.is_none_or(|e| e > k.start_timestamp)
            })
            .count();
        assert!(open <= 3, "{open} children unfinished at once");
    }
    let wf = engine
        .store()
        .workflows()
        .get_by_execution(&done.id)
        .await
        .expect("read")
        .expect("workflow record");
    let tasks = engine
        .store()
        .workflows()
        .list_tasks(&wf.id)
        .await
        .expect("tasks");
    assert_eq!(tasks.len(), 1);
    let recorded = tasks[0].doc["result"]["items"]
        .as_array()
        .expect("items")
        .clone();
    assert_eq!(recorded.len(), 12);
    assert!(recorded.iter().all(|i| i["status"] == json!("succeeded")));
    assert_eq!(recorded[5]["result"]["stdout"], json!("item-5"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_end_the_workflow_failed_with_errors_naming_the_task() {
    let engine = engine().await;
    let done = run(&engine, "wftest.failing", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{}", done.result);
    let errors = done.result["errors"].as_array().expect("errors").clone();
    let text = serde_json::to_string(&errors).expect("json");
    assert!(
        text.contains("ctx(code) / 0"),
        "the error names the expression: {text}"
    );
    assert!(
        errors.iter().any(|e| e["task_id"] == json!("report")),
        "the error names the task: {text}"
    );
    // As orquesta: the failed action is logged with its result even though a transition
    // handled it.
    assert!(
        errors
            .iter()
            .any(|e| e["task_id"] == json!("boom") && e["result"]["return_code"] == json!(3)),
        "{text}"
    );
    assert!(done.result.get("output").is_some());

    // A workflow that does not pass inspection fails before any task runs.
    let broken = run(&engine, "wftest.broken", json!({})).await;
    assert_eq!(broken.status, ExecutionStatus::Failed);
    let text = broken.result["errors"].to_string();
    assert!(text.contains("missing"), "{text}");
    assert!(
        text.contains("broken.yaml"),
        "the error names the file: {text}"
    );
    assert!(children(&engine, &broken).await.is_empty());
    engine.shutdown().await;
}

/// Children handed out together are saved and started in one commit; when one of them cannot
/// start, they start one by one instead: that task fails with the reason, the others run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_cannot_start_fails_and_its_siblings_still_run() {
    let engine = engine().await;
    let done = run(&engine, "wftest.unstartable", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{}", done.result);
    let text = done.result["errors"].to_string();
    assert!(
        text.contains("wftest.no_such_action"),
        "the error names the action: {text}"
    );
    assert!(
        done.result["errors"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["task_id"] == json!("missing"))),
        "the error names the task: {text}"
    );
    let children = children(&engine, &done).await;
    assert_eq!(
        children.len(),
        1,
        "only the task that could start has a child"
    );
    assert_eq!(children[0].context["orquesta"]["task_name"], json!("fine"));
    assert_eq!(children[0].status, ExecutionStatus::Succeeded);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_cascades_to_the_running_task() {
    let engine = engine().await;
    let started = start(&engine, "wftest.slow", json!({"seconds": 30})).await;
    let child = child_of(&engine, &started.id, "wait").await;
    wait_for(&engine, &child.id, ExecutionStatus::Running).await;
    engine.cancel(&started.id, "tester").await.expect("cancel");
    let done = engine.wait(&started.id, WAIT).await.expect("ends");
    assert_eq!(done.status, ExecutionStatus::Canceled, "{}", done.result);
    let child = engine.get(&child.id).await.expect("get").expect("child");
    assert_eq!(child.status, ExecutionStatus::Canceled);
    // `after` never ran.
    assert_eq!(children(&engine, &done).await.len(), 1);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_waits_for_the_running_task_and_resume_continues() {
    let engine = engine().await;
    let started = start(&engine, "wftest.slow", json!({"seconds": 1})).await;
    let child = child_of(&engine, &started.id, "wait").await;
    wait_for(&engine, &child.id, ExecutionStatus::Running).await;
    let pausing = engine.pause(&started.id, "tester").await.expect("pause");
    assert_eq!(pausing.status, ExecutionStatus::Pausing);
    let paused = wait_for(&engine, &started.id, ExecutionStatus::Paused).await;
    // The running task finished; the next one did not start.
    assert_eq!(children(&engine, &paused).await.len(), 1);
    let child = engine.get(&child.id).await.expect("get").expect("child");
    assert_eq!(child.status, ExecutionStatus::Succeeded);
    engine.resume(&started.id, "tester").await.expect("resume");
    let done = engine.wait(&started.id, WAIT).await.expect("ends");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    assert_eq!(done.result["output"], json!({"done": true}));
    assert_eq!(children(&engine, &done).await.len(), 2);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_is_noticed_while_children_keep_finishing() {
    // Items finish every few milliseconds, so the workflow's waits keep returning finished
    // children: the pause must not get lost among them.
    let engine = engine().await;
    let started = start(
        &engine,
        "wftest.items",
        json!({"count": 200, "concurrency": 8}),
    )
    .await;
    let first = child_of(&engine, &started.id, "each").await;
    wait_for(&engine, &first.id, ExecutionStatus::Succeeded).await;
    engine.pause(&started.id, "tester").await.expect("pause");
    let paused = wait_for(&engine, &started.id, ExecutionStatus::Paused).await;
    let ran = children(&engine, &paused).await.len();
    assert!(
        ran < 200,
        "the pause was noticed only after all {ran} items"
    );
    engine.resume(&started.id, "tester").await.expect("resume");
    let done = engine.wait(&started.id, WAIT).await.expect("ends");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    assert_eq!(children(&engine, &done).await.len(), 200);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subworkflow_runs_as_a_task() {
    let engine = engine().await;
    let done = run(&engine, "wftest.parent", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    assert_eq!(done.result["output"]["inner"], json!("HELLO SUB"));
    let kids = children(&engine, &done).await;
    assert_eq!(kids.len(), 1);
    assert_eq!(children(&engine, &kids[0]).await.len(), 2);
    engine.shutdown().await;
}

/// Start an engine on `db` in its own runtime, run `wftest.delayed`, and kill the runtime
/// (no shutdown: as if the process died) once the delayed first task is stored.
fn start_and_crash(db: &Path) -> String {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let id = runtime.block_on(async {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(SqliteOptions::file(db))
                .await
                .expect("store"),
        );
        let engine = engine_on(store).await;
        let started = start(&engine, "wftest.delayed", json!({})).await;
        let first = child_of(&engine, &started.id, "first").await;
        wait_for(&engine, &first.id, ExecutionStatus::Delayed).await;
        started.id
    });
    runtime.shutdown_background();
    id
}

#[test]
fn a_killed_engine_continues_the_workflow_on_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("st2.db");
    let id = start_and_crash(&db);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(SqliteOptions::file(&db))
                .await
                .expect("store reopens"),
        );
        let engine = engine_on(store.clone()).await;
        let done = engine.wait(&id, WAIT).await.expect("the workflow ends");
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
        assert_eq!(done.result["output"]["said"], json!("second"));
        // Each task ran exactly once.
        let all = store
            .executions()
            .list(
                &ExecutionFilter {
                    parent: ParentFilter::Of(id.clone()),
                    ..ExecutionFilter::default()
                },
                Page::default(),
            )
            .await
            .expect("list");
        let mut refs: Vec<String> = all.items.iter().map(|e| e.action_ref.clone()).collect();
        refs.sort();
        assert_eq!(refs, ["core.echo", "core.noop"]);
        engine.shutdown().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inquiry_pauses_the_workflow_and_the_answer_resumes_it() {
    let engine = engine().await;
    let started = start(&engine, "wftest.asking", json!({})).await;
    let ask = child_of(&engine, &started.id, "approve").await;
    wait_for(&engine, &ask.id, ExecutionStatus::Pending).await;
    wait_for(&engine, &started.id, ExecutionStatus::Paused).await;
    engine
        .respond_inquiry(&ask.id, json!({"approved": true}), "stanley")
        .await
        .expect("answered");
    let done = engine.wait(&started.id, WAIT).await.expect("ends");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    assert_eq!(done.result["output"]["said"], json!("approved=True"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_reads_the_task_execution_records() {
    let engine = engine().await;
    let done = run(&engine, "wftest.records", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    assert_eq!(
        done.result["output"],
        json!({"own_status": "succeeded", "own_out": "one", "second": "one-first", "missing": 0})
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_and_workflow_timeouts_cancel_what_runs_too_long() {
    let engine = engine().await;
    // Task level: the action is canceled after a second and reported as `timeout`; the task
    // fails (as orquesta fails a task whose action timed out) and a transition handles it.
    let started = std::time::Instant::now();
    let done = run(&engine, "wftest.timeouts", json!({"seconds": 1})).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    assert_eq!(
        done.result["output"]["outcome"],
        json!("The task \"slow\" timed out.")
    );
    let kids = children(&engine, &done).await;
    assert_eq!(kids[0].status, ExecutionStatus::Canceled);
    assert_eq!(kids.len(), 2);

    // Workflow level: the `timeout` runner parameter.
    let started = std::time::Instant::now();
    let run_id = engine
        .run_with({
            let mut r = st2_core::engine::RunRequest::new(
                "wftest.slow",
                params(json!({"seconds": 30, "timeout": 1})),
            );
            r.user = Some("stanley".into());
            r
        })
        .await
        .expect("requested")
        .id;
    let done = engine.wait(&run_id, WAIT).await.expect("ends");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(done.status, ExecutionStatus::Timeout, "{}", done.result);
    assert!(
        done.result["errors"]
            .to_string()
            .contains("timed out after 1 seconds"),
        "{}",
        done.result
    );
    let kids = children(&engine, &done).await;
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].status, ExecutionStatus::Canceled);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_workflow_re_runs_from_the_failed_task() {
    let engine = engine().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ready");
    let failed = run(
        &engine,
        "wftest.flaky",
        json!({"path": path.display().to_string()}),
    )
    .await;
    assert_eq!(failed.status, ExecutionStatus::Failed, "{}", failed.result);
    assert_eq!(children(&engine, &failed).await.len(), 2);
    std::fs::write(&path, "").expect("file");
    let again = engine
        .re_run_with(
            &failed.id,
            st2_core::engine::ReRunRequest {
                tasks: vec!["check".into()],
                ..Default::default()
            },
        )
        .await
        .expect("re-run requested");
    assert_eq!(again.context["re-run"]["ref"], json!(failed.id));
    let done = engine.wait(&again.id, WAIT).await.expect("ends");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    assert_eq!(done.result["output"]["found"], json!("found"));
    // Only the failed task ran again; `first` kept its earlier result.
    let kids = children(&engine, &done).await;
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].context["orquesta"]["task_name"], json!("check"));
    // Re-running from a task that never ran is refused with a clear error.
    let bad = engine
        .re_run_with(
            &failed.id,
            st2_core::engine::ReRunRequest {
                tasks: vec!["nope".into()],
                ..Default::default()
            },
        )
        .await
        .expect("requested");
    let bad = engine.wait(&bad.id, WAIT).await.expect("ends");
    assert_eq!(bad.status, ExecutionStatus::Failed);
    assert!(bad.result.to_string().contains("nope"), "{}", bad.result);
    engine.shutdown().await;
}
