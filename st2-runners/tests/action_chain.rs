//! The `action-chain` runner under a real engine: tasks run in order as child executions,
//! publish and Jinja see earlier results, `on-failure` and the final status follow StackStorm,
//! chain-level errors (rendering, unknown action, bad definitions, the iteration bound) fail the
//! chain with a message naming the task or file, and cancel, pause/resume and inquiries stop and
//! continue the chain where it was.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use st2_core::datastore::{KeySelector, KeyWrite};
use st2_core::engine::{Engine, EngineSettings};
use st2_core::runner::{RunContext, RunOutcome, Runner, RunnerError, RunnerRegistry};
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionRecord, ExecutionStatus, Store};
use st2_runners::{
    ActionChainRunner, ActionChainSettings, InquirerRunner, LocalShellCommandRunner, NoopRunner,
};

const WAIT: Duration = Duration::from_secs(60);

fn params(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// The chain runner, taking `delay` longer to report `paused` (the window in which an answer
/// can arrive before the chain has paused).
#[derive(Debug)]
struct SlowToPause {
    chain: ActionChainRunner,
    delay: Duration,
}

#[async_trait]
impl Runner for SlowToPause {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        let outcome = self.chain.run(ctx).await?;
        if outcome.status == ExecutionStatus::Paused {
            tokio::time::sleep(self.delay).await;
        }
        Ok(outcome)
    }

    fn supports_pause(&self) -> bool {
        true
    }
}

/// An engine over the chain fixture packs; the chain runner allows `max_task_runs` tasks.
async fn engine_with(max_task_runs: usize) -> Engine {
    engine_built(max_task_runs, Duration::ZERO).await
}

async fn engine_built(max_task_runs: usize, pause_delay: Duration) -> Engine {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    );
    let mut runners = RunnerRegistry::new();
    runners.register("noop", NoopRunner).expect("noop");
    runners
        .register(
            "local-shell-cmd",
            LocalShellCommandRunner::new(Default::default()),
        )
        .expect("local");
    runners
        .register("inquirer", InquirerRunner)
        .expect("inquirer");
    let chain = ActionChainRunner::new(ActionChainSettings { max_task_runs });
    if pause_delay.is_zero() {
        runners.register("action-chain", chain).expect("chain");
    } else {
        runners
            .register(
                "action-chain",
                SlowToPause {
                    chain,
                    delay: pause_delay,
                },
            )
            .expect("chain");
    }
    Engine::builder()
        .store(store)
        .packs_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chains"))
        .configs_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chain_configs"))
        .runners(runners)
        .settings(EngineSettings {
            heartbeat: Duration::from_millis(100),
            idle_poll: Duration::from_millis(50),
            ..EngineSettings::default()
        })
        .start()
        .await
        .expect("engine starts")
}

async fn engine() -> Engine {
    engine_with(ActionChainSettings::default().max_task_runs).await
}

async fn run(engine: &Engine, action: &str, p: Value) -> ExecutionRecord {
    let started = engine
        .run(action, params(p), Map::new())
        .await
        .expect("requested");
    engine.wait(&started.id, WAIT).await.expect("completes")
}

fn tasks(record: &ExecutionRecord) -> Vec<Value> {
    record.result["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn task_names(record: &ExecutionRecord) -> Vec<String> {
    tasks(record)
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn error(record: &ExecutionRecord) -> String {
    record.result["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Poll until `id` satisfies `done`.
async fn until(
    engine: &Engine,
    id: &str,
    done: impl Fn(&ExecutionRecord) -> bool,
) -> ExecutionRecord {
    for _ in 0..600 {
        let record = engine.get(id).await.expect("get").expect("exists");
        if done(&record) {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("execution {id} never reached the expected state");
}

async fn child(engine: &Engine, record: &ExecutionRecord, index: usize) -> ExecutionRecord {
    let id = record.children.get(index).expect("child").clone();
    engine.get(&id).await.expect("get").expect("child exists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_chain_publishes_and_renders_earlier_results() {
    let engine = engine().await;
    let done = run(&engine, "chaintest.sequential", json!({"input": "hi"})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(task_names(&done), ["c1", "c2", "c3"]);
    // Published values render to strings (lists through their JSON text).
    assert_eq!(
        done.result["published"],
        json!({"greeting": "hi world", "num": "2", "both": ["hi", "0"]})
    );
    let t = tasks(&done);
    assert_eq!(t[1]["result"]["stdout"], json!("hi world hi 2"));
    for (i, task) in t.iter().enumerate() {
        assert_eq!(task["id"], task["name"]);
        assert_eq!(task["state"], json!("succeeded"));
        assert_eq!(task["workflow"], Value::Null);
        assert_eq!(task["execution_id"], json!(done.children[i]));
        assert_eq!(task["liveaction_id"], task["execution_id"]);
        assert!(
            task["created_at"]
                .as_str()
                .unwrap_or_default()
                .ends_with("+00:00"),
            "{task}"
        );
    }
    let hidden = run(
        &engine,
        "chaintest.sequential",
        json!({"input": "hi", "display_published": false}),
    )
    .await;
    assert_eq!(hidden.status, ExecutionStatus::Succeeded);
    assert!(
        hidden.result.get("published").is_none(),
        "{:?}",
        hidden.result
    );
    // Children carry the parent and the node; the target action's types cast the values.
    let c3 = child(&engine, &done, 2).await;
    assert_eq!(c3.parent.as_deref(), Some(done.id.as_str()));
    assert_eq!(c3.context["parent"]["execution_id"], json!(done.id));
    assert_eq!(c3.context["chain"]["name"], json!("c3"));
    assert_eq!(c3.context["chain"]["params"]["count"], json!("{{ num }}"));
    assert_eq!(c3.parameters["count"], json!(2));
    assert_eq!(c3.parameters["items"], json!(["hi", "0"]));
    assert_eq!(c3.result["stdout"], json!(2));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_path_and_final_status() {
    let engine = engine().await;
    // A failure handled by a succeeding on-failure task ends succeeded; publish runs for the
    // failed task too.
    let done = run(&engine, "chaintest.onfailure", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(task_names(&done), ["c1", "c2"]);
    assert_eq!(tasks(&done)[0]["state"], json!("failed"));
    assert_eq!(done.result["published"], json!({"code": "3"}));
    assert_eq!(tasks(&done)[1]["result"]["stdout"], json!("recovered 3"));

    // The status of the last task decides.
    let done = run(
        &engine,
        "chaintest.onfailure",
        json!({"second": "exit 4; echo"}),
    )
    .await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{:?}", done.result);
    assert_eq!(task_names(&done), ["c1", "c2"]);
    assert!(
        done.result.get("error").is_none(),
        "task failures are no chain error"
    );

    // A timed-out last task ends the chain `timeout`.
    let done = run(&engine, "chaintest.timeout", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Timeout, "{:?}", done.result);
    assert_eq!(tasks(&done)[0]["state"], json!("timeout"));

    // A task whose execution cannot even be requested (its parameters are invalid) failed:
    // its error is its result and on-failure handles it.
    let done = run(&engine, "chaintest.badparams", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    let t = tasks(&done);
    assert_eq!(t[0]["state"], json!("failed"));
    assert_eq!(t[0]["execution_id"], Value::Null);
    assert!(
        t[0]["result"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Failed running task \"c1\".")),
        "{}",
        t[0]
    );
    assert_eq!(t[1]["result"]["stdout"], json!("handled True"));
    assert_eq!(done.children.len(), 1);

    // StackStorm's own example references a task it does not define: it fails before
    // anything runs, as in StackStorm.
    let done = run(&engine, "examples.echochain_task_failure", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert!(done.children.is_empty());
    assert!(
        error(&done).contains(
            "Unable to find node with name \"c4\" referenced in \"on-failure\" in task \"c1\"."
        ),
        "{}",
        error(&done)
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendering_failures_and_unknown_actions_fail_the_chain() {
    let engine = engine().await;
    let done = run(&engine, "chaintest.renderfail", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(task_names(&done), ["c1"], "c2 never ran");
    let e = error(&done);
    assert!(
        e.starts_with("Failed to run task \"c2\". Parameter rendering failed."),
        "{e}"
    );
    assert!(
        e.contains(
            "Failed rendering value for action parameter \"cmd\" in task \"c2\" (template string=echo {{ s1 }}):"
        ),
        "{e}"
    );
    assert!(
        done.result["traceback"]
            .as_str()
            .is_some_and(|t| t.contains("c2"))
    );
    assert_eq!(done.children.len(), 1);

    let done = run(&engine, "chaintest.varsfail", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert!(done.children.is_empty());
    assert_eq!(done.result["tasks"], json!([]));
    assert_eq!(done.result["published"], json!({}));
    assert!(
        error(&done).starts_with("Failed initializing ``vars`` in chain.")
            && error(&done).contains("\"x\""),
        "{}",
        error(&done)
    );

    let done = run(&engine, "chaintest.publishfail", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(task_names(&done), ["c1"], "the task list is kept");
    assert!(
        error(&done).contains(
            "Failed rendering value for publish parameter \"p1\" in task \"c1\" (template string={{ not_defined }}):"
        ),
        "{}",
        error(&done)
    );

    let done = run(&engine, "chaintest.unknownaction", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(task_names(&done), ["c1"]);
    assert_eq!(
        error(&done),
        "Failed to run task \"c2\". Action with reference \"core.invalid-action\" doesn't exist."
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vars_default_node_and_start_node() {
    let engine = engine().await;
    let ds = engine.datastore();
    ds.set(
        &KeySelector::System,
        "colour",
        KeyWrite {
            value: "blue".into(),
            ..KeyWrite::default()
        },
    )
    .await
    .expect("set");
    ds.set(
        &KeySelector::User("stanley".into()),
        "secret_word",
        KeyWrite {
            value: "xyzzy".into(),
            ..KeyWrite::default()
        },
    )
    .await
    .expect("set");
    let done = run(&engine, "chaintest.vars", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(task_names(&done), ["c2"], "default names the start node");
    assert_eq!(
        tasks(&done)[0]["result"]["stdout"],
        json!("Lakshmi blue xyzzy 6 blue hello")
    );

    let done = run(&engine, "chaintest.nodefault", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(
        task_names(&done),
        ["first", "second"],
        "without default: the first node nothing references"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_stops_at_the_iteration_bound() {
    let engine = engine_with(5).await;
    let done = run(&engine, "chaintest.cycle", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(task_names(&done), ["ping", "pong", "ping", "pong", "ping"]);
    assert!(
        error(&done).contains("exceeded 5 task runs"),
        "{}",
        error(&done)
    );
    assert_eq!(done.children.len(), 5);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definition_errors_name_the_file_and_node() {
    let engine = engine().await;
    let done = run(&engine, "chaintest.badnode", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let e = error(&done);
    assert!(e.contains("chains/badnode.yaml"), "{e}");
    assert!(
        e.contains(
            "Unable to find node with name \"c5\" referenced in \"on-success\" in task \"c1\"."
        ),
        "{e}"
    );
    assert!(e.contains("task \"c1\": unknown field \"colour\""), "{e}");
    assert!(done.children.is_empty());

    let done = run(&engine, "chaintest.badyaml", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert!(
        error(&done).contains("Failed to parse action chain definition from")
            && error(&done).contains("chains/badyaml.yaml"),
        "{}",
        error(&done)
    );

    let done = run(&engine, "chaintest.missing", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert!(
        error(&done).contains("chains/missing.yaml"),
        "{}",
        error(&done)
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_chain_cancels_the_running_task() {
    let engine = engine().await;
    let started = engine
        .run("chaintest.slow", params(json!({"seconds": 30})), Map::new())
        .await
        .expect("requested");
    let running = until(&engine, &started.id, |r| !r.children.is_empty()).await;
    let task_id = running.children[0].clone();
    until(&engine, &task_id, |r| r.status == ExecutionStatus::Running).await;
    engine.cancel(&started.id, "stanley").await.expect("cancel");
    let done = engine.wait(&started.id, WAIT).await.expect("completes");
    assert_eq!(done.status, ExecutionStatus::Canceled);
    let task = engine.wait(&task_id, WAIT).await.expect("task completes");
    assert_eq!(task.status, ExecutionStatus::Canceled);
    assert_eq!(done.children, [task_id], "the next task never started");
    // As StackStorm, the canceled chain's result keeps its tasks.
    assert_eq!(task_names(&done), ["wait"], "{:?}", done.result);
    assert_eq!(tasks(&done)[0]["state"], json!("canceled"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_continue_where_the_chain_stopped() {
    let engine = engine().await;
    let started = engine
        .run("chaintest.slow", params(json!({"seconds": 1})), Map::new())
        .await
        .expect("requested");
    let running = until(&engine, &started.id, |r| !r.children.is_empty()).await;
    let pausing = engine.pause(&running.id, "stanley").await.expect("pause");
    assert_eq!(pausing.status, ExecutionStatus::Pausing);
    // The running task finishes, then the chain stops.
    let paused = until(&engine, &started.id, |r| {
        r.status == ExecutionStatus::Paused
    })
    .await;
    assert_eq!(task_names(&paused), ["wait"]);
    assert_eq!(paused.context["vars"], json!({"waited": "1"}));
    assert_eq!(paused.children.len(), 1);

    engine.resume(&started.id, "stanley").await.expect("resume");
    let done = engine.wait(&started.id, WAIT).await.expect("completes");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(task_names(&done), ["wait", "after"]);
    assert_eq!(tasks(&done)[1]["result"]["stdout"], json!("after 1"));
    assert_eq!(done.result["published"], json!({"waited": "1"}));
    assert_eq!(done.children.len(), 2);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_a_chain_pauses_its_sub_chain_and_resume_resumes_it() {
    let engine = engine().await;
    let started = engine
        .run("chaintest.parent", Map::new(), Map::new())
        .await
        .expect("requested");
    let running = until(&engine, &started.id, |r| !r.children.is_empty()).await;
    let sub_id = running.children[0].clone();
    until(&engine, &sub_id, |r| r.status == ExecutionStatus::Running).await;
    engine.pause(&started.id, "stanley").await.expect("pause");
    let paused = until(&engine, &started.id, |r| {
        r.status == ExecutionStatus::Paused
    })
    .await;
    assert_eq!(tasks(&paused)[0]["state"], json!("paused"));
    let sub = engine.get(&sub_id).await.expect("get").expect("sub");
    assert_eq!(sub.status, ExecutionStatus::Paused);
    assert_eq!(task_names(&sub), ["wait"]);

    engine.resume(&started.id, "stanley").await.expect("resume");
    let done = engine.wait(&started.id, WAIT).await.expect("completes");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(task_names(&done), ["sub", "done"]);
    assert_eq!(tasks(&done)[0]["state"], json!("succeeded"));
    assert_eq!(tasks(&done)[1]["result"]["stdout"], json!(1));
    let sub = engine.get(&sub_id).await.expect("get").expect("sub");
    assert_eq!(task_names(&sub), ["wait", "after"]);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inquiry_pauses_the_chain_and_its_response_resumes_it() {
    let engine = engine().await;
    let started = engine
        .run("examples.chain-test-inquiry", Map::new(), Map::new())
        .await
        .expect("requested");
    let paused = until(&engine, &started.id, |r| {
        r.status == ExecutionStatus::Paused
    })
    .await;
    assert_eq!(task_names(&paused), ["task1"]);
    assert_eq!(tasks(&paused)[0]["state"], json!("pending"));
    let inquiry = paused.children[0].clone();

    // A response that does not fit the schema is refused; everything stays as it was.
    let refused = engine
        .respond_inquiry(&inquiry, json!({"secondfactor": 42}), "stanley")
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let ask = engine.get(&inquiry).await.expect("get").expect("ask");
    assert_eq!(ask.status, ExecutionStatus::Pending);
    let still = engine.get(&started.id).await.expect("get").expect("chain");
    assert_eq!(still.status, ExecutionStatus::Paused);

    engine
        .respond_inquiry(&inquiry, json!({"secondfactor": "bar"}), "stanley")
        .await
        .expect("accepted");
    let done = engine.wait(&started.id, WAIT).await.expect("completes");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(task_names(&done), ["task1", "task2"]);
    assert_eq!(tasks(&done)[0]["state"], json!("succeeded"));
    assert_eq!(
        tasks(&done)[0]["result"]["response"],
        json!({"secondfactor": "bar"})
    );
    assert_eq!(
        tasks(&done)[1]["result"]["stdout"],
        json!("We can now authenticate to foo service with bar")
    );

    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_chain_has_paused_still_resumes_it() {
    let engine = engine_built(
        ActionChainSettings::default().max_task_runs,
        Duration::from_millis(700),
    )
    .await;
    let started = engine
        .run("examples.chain-test-inquiry", Map::new(), Map::new())
        .await
        .expect("requested");
    let running = until(&engine, &started.id, |r| !r.children.is_empty()).await;
    let inquiry = running.children[0].clone();
    until(&engine, &inquiry, |r| r.status == ExecutionStatus::Pending).await;
    let chain = engine.get(&started.id).await.expect("get").expect("chain");
    assert_eq!(chain.status, ExecutionStatus::Running, "not paused yet");
    engine
        .respond_inquiry(&inquiry, json!({"secondfactor": "quick"}), "stanley")
        .await
        .expect("accepted");
    let done = engine.wait(&started.id, WAIT).await.expect("completes");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(
        tasks(&done)[1]["result"]["stdout"],
        json!("We can now authenticate to foo service with quick")
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_pack_chains_run() {
    let engine = engine().await;
    let done = run(&engine, "examples.echochain", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(task_names(&done), ["c1", "c2", "c3"]);
    assert_eq!(
        tasks(&done)[1]["result"]["stdout"],
        json!(format!("c2: parent exec is {}.", done.id))
    );

    // The chain's notify goes to its tasks, except those in skip_notify (c2 here).
    assert!(done.notify.is_some());
    assert_eq!(child(&engine, &done, 0).await.notify, done.notify);
    assert_eq!(child(&engine, &done, 1).await.notify, None);

    let done = run(&engine, "examples.echochain-param", json!({"input1": "x"})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(
        tasks(&done)[2]["result"]["stdout"],
        json!("c3 c2 c1, input x")
    );

    let done = run(&engine, "examples.chain-sequential", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert_eq!(task_names(&done), ["task1", "task2", "task3"]);
    assert_eq!(
        done.result["published"],
        json!({"greeting": "Lakshmi, All your base are belong to us!"})
    );
    engine.shutdown().await;
}
