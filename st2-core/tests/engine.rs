//! The engine's pipeline on a real SQLite store: trigger → rule → execution → runner → result,
//! the lifecycle it records, policies, cancel, notifications, traces, bad input and recovery.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use st2_core::engine::{DispatchRequest, EngineEvent, Roles, RunRequest};
use st2_core::model::RunnerType;
use st2_core::rules::matcher::TriggerRef;
use st2_core::runner::{RunContext, RunOutcome, Runner, RunnerError};
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{
    ClaimRequest, ExecutionFilter, ExecutionRecord, ExecutionStatus, Page, RuleEnforcementFilter,
    Store, TraceFilter, TraceRecord, TriggerInstanceFilter, TriggerInstanceStatus,
};
use st2_core::{Engine, EngineError, EngineSettings};

const WAIT: Duration = Duration::from_secs(20);

/// Returns its parameters; fails when `message` is "fail".
#[derive(Debug)]
struct Echo;

#[async_trait]
impl Runner for Echo {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        ctx.output.emit(
            st2_core::store::OutputType::Stdout,
            &format!("echo {}\n", ctx.execution_id),
        );
        let result = Value::Object(ctx.parameters.clone());
        if ctx.parameters.get("message") == Some(&json!("fail")) {
            return Ok(RunOutcome::failed(result));
        }
        Ok(RunOutcome::succeeded(result))
    }
}

/// Waits `seconds` or until canceled.
#[derive(Debug)]
struct Slow;

#[async_trait]
impl Runner for Slow {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        let seconds = ctx
            .parameters
            .get("seconds")
            .and_then(Value::as_f64)
            .unwrap_or(30.0);
        ctx.output
            .emit(st2_core::store::OutputType::Stdout, "sleeping\n");
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs_f64(seconds)) => {
                Ok(RunOutcome::succeeded(json!({"slept": seconds})))
            }
            () = ctx.cancel.cancelled() => {
                Ok(RunOutcome::with_status(ExecutionStatus::Canceled, json!({})))
            }
        }
    }
}

/// Panics.
#[derive(Debug)]
struct Panics;

#[async_trait]
impl Runner for Panics {
    async fn run(&self, _ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        panic!("runner exploded");
    }
}

/// Reports `pending`, as the inquirer runner does.
#[derive(Debug)]
struct Ask;

#[async_trait]
impl Runner for Ask {
    async fn run(&self, _ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        Ok(RunOutcome::with_status(
            ExecutionStatus::Pending,
            json!({"schema": {"type": "object"}}),
        ))
    }
}

/// Reports a status a runner cannot report.
#[derive(Debug)]
struct Garbage;

#[async_trait]
impl Runner for Garbage {
    async fn run(&self, _ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        Ok(RunOutcome::with_status(
            ExecutionStatus::Requested,
            json!("??"),
        ))
    }
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine/enginetest")
}

fn params(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn test_settings() -> EngineSettings {
    EngineSettings {
        policy_delay: Duration::from_millis(100),
        idle_poll: Duration::from_millis(100),
        reap_interval: Duration::from_millis(100),
        heartbeat: Duration::from_millis(200),
        ..EngineSettings::default()
    }
}

async fn start_on(store: Arc<dyn Store>, settings: EngineSettings) -> Engine {
    let runner_type = |name: &str| RunnerType::new(name, "test runner");
    Engine::builder()
        .store(store)
        .pack_dir(fixture())
        .settings(settings)
        .runner(runner_type("test-echo"), Echo)
        .runner(runner_type("test-slow"), Slow)
        .runner(runner_type("test-panic"), Panics)
        .runner(runner_type("test-ask"), Ask)
        .runner(runner_type("test-garbage"), Garbage)
        .start()
        .await
        .expect("engine starts")
}

async fn memory_store() -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    )
}

async fn start() -> Engine {
    start_on(memory_store().await, test_settings()).await
}

/// A trigger instance as stored.
async fn stored_instance(engine: &Engine, id: &str) -> st2_core::store::TriggerInstanceRecord {
    engine
        .store()
        .trigger_instances()
        .get(id)
        .await
        .expect("read")
        .expect("stored")
}

/// The executions a trigger instance caused, once the rules engine processed it.
async fn processed(engine: &Engine, ti: &str) -> Vec<ExecutionRecord> {
    let (_, ids) = engine.wait_processed(ti, WAIT).await.expect("processed");
    let mut executions = Vec::new();
    for id in ids {
        executions.push(engine.get(&id).await.expect("read").expect("exists"));
    }
    executions
}

/// Executions matching `filter`, once `done` holds for them (the last ones seen after 10 s).
async fn list_until(
    engine: &Engine,
    filter: &ExecutionFilter,
    done: impl Fn(&[ExecutionRecord]) -> bool,
) -> Vec<ExecutionRecord> {
    let mut found = Vec::new();
    for _ in 0..400 {
        found = engine.list(filter, Page::all()).await.expect("list").items;
        if done(&found) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    found
}

/// Instances of `trigger` whose payload `wanted` accepts, once there is one.
async fn instances_of(
    engine: &Engine,
    trigger: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Vec<st2_core::store::TriggerInstanceRecord> {
    let filter = TriggerInstanceFilter {
        trigger: Some(trigger.to_owned()),
        ..TriggerInstanceFilter::default()
    };
    for _ in 0..400 {
        let listing = engine
            .store()
            .trigger_instances()
            .list(&filter, Page::all())
            .await
            .expect("list");
        let found: Vec<_> = listing
            .items
            .into_iter()
            .filter(|t| wanted(&t.payload))
            .collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {trigger} instance turned up");
}

/// The traces execution `id` is part of.
async fn traces_of(engine: &Engine, id: &str) -> Vec<TraceRecord> {
    engine
        .store()
        .traces()
        .list(
            &TraceFilter {
                execution: Some(id.to_owned()),
                ..TraceFilter::default()
            },
            Page::all(),
        )
        .await
        .expect("traces")
        .items
}

async fn wait_status(engine: &Engine, id: &str, status: ExecutionStatus) -> ExecutionRecord {
    for _ in 0..400 {
        let got = engine.get(id).await.expect("read").expect("exists");
        if got.status == status {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let got = engine.get(id).await.expect("read").expect("exists");
    panic!(
        "execution {id} never reached {status}; it is {}",
        got.status
    );
}

fn statuses(record: &ExecutionRecord) -> Vec<&'static str> {
    record.log.iter().map(|c| c.status.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_trigger_runs_the_rule_action_and_records_everything() {
    let engine = start().await;
    let ti = engine
        .dispatch("enginetest.event", json!({"name": "go team", "count": 3}))
        .await
        .expect("dispatch");
    let executions = processed(&engine, &ti.id).await;
    assert_eq!(executions.len(), 1, "one rule matched");
    let done = engine
        .wait(&executions[0].id, WAIT)
        .await
        .expect("finishes");
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(
        done.parameters,
        params(json!({"message": "hello go team", "count": 3}))
    );
    assert_eq!(
        statuses(&done),
        ["requested", "scheduled", "running", "succeeded"]
    );
    assert_eq!(done.result["message"], "hello go team");
    assert_eq!(
        done.rule.as_ref().expect("rule")["ref"],
        "enginetest.on_event"
    );
    assert_eq!(done.context["user"], "stanley");
    assert_eq!(done.context["trigger_instance"]["id"], ti.id.as_str());
    assert!(done.end_timestamp.is_some());
    assert_eq!(
        stored_instance(&engine, &ti.id).await.status,
        TriggerInstanceStatus::Processed
    );
    let enforcements = engine
        .store()
        .rule_enforcements()
        .list(
            &RuleEnforcementFilter {
                trigger_instance: Some(ti.id.clone()),
                ..RuleEnforcementFilter::default()
            },
            Page::all(),
        )
        .await
        .expect("enforcements");
    assert_eq!(enforcements.items.len(), 1);
    assert_eq!(
        enforcements.items[0].enforcement.execution_id.as_deref(),
        Some(done.id.as_str())
    );
    let traces = traces_of(&engine, &done.id).await;
    assert_eq!(traces.len(), 1);
    let trace = &traces[0];
    assert_eq!(trace.trace_tag, format!("trigger_instance-{}", ti.id));
    assert_eq!(trace.trigger_instances[0].object_id, ti.id);
    assert_eq!(trace.rules[0].reference, "enginetest.on_event");
    let output = engine.output(&done.id).await.expect("output");
    assert_eq!(output.len(), 1);
    assert_eq!(output[0].chunk.data, format!("echo {}\n", done.id));
    // The action trigger follows and joins the trace.
    let action_trigger =
        wait_for_trigger(&engine, "core.st2.generic.actiontrigger", &done.id).await;
    assert_eq!(action_trigger.payload["status"], "succeeded");
    assert_eq!(action_trigger.payload["action_ref"], "enginetest.echo");
    assert_eq!(action_trigger.payload["runner_ref"], "test-echo");
}

/// A rule that reads nothing from the datastore is matched while the instance is dispatched:
/// the instance is stored `processed` with the execution it started, in one commit, and the
/// events still tell the story in StackStorm's order (instance created, execution created,
/// instance processed). A rule that reads the datastore leaves the instance `pending` for the
/// rules service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_rules_read_no_datastore_is_stored_processed_with_its_executions() {
    use st2_core::datastore::{KeySelector, KeyWrite};
    let engine = start().await;
    let mut events = engine.subscribe();
    let ti = engine
        .dispatch("enginetest.event", json!({"name": "go now", "count": 1}))
        .await
        .expect("dispatch");
    assert_eq!(ti.status, TriggerInstanceStatus::Processed);
    assert_eq!(
        stored_instance(&engine, &ti.id).await.status,
        TriggerInstanceStatus::Processed
    );
    let executions = engine
        .store()
        .executions()
        .list(
            &ExecutionFilter {
                trigger_instance: Some(ti.id.clone()),
                ..ExecutionFilter::default()
            },
            Page::all(),
        )
        .await
        .expect("list");
    assert_eq!(executions.items.len(), 1, "stored before dispatch returned");
    let execution_id = executions.items[0].id.clone();
    let mut order = Vec::new();
    while let Ok(event) = events.try_recv() {
        match event {
            EngineEvent::TriggerInstance(i) if i.id == ti.id => {
                assert_eq!(i.status, TriggerInstanceStatus::Pending, "as accepted");
                order.push("instance created");
            }
            EngineEvent::ExecutionCreated(e) if e.id == execution_id => {
                order.push("execution created");
            }
            EngineEvent::TriggerInstanceProcessed {
                instance,
                executions,
            } if instance.id == ti.id => {
                assert_eq!(instance.status, TriggerInstanceStatus::Processed);
                assert_eq!(executions, std::slice::from_ref(&execution_id));
                order.push("instance processed");
            }
            _ => {}
        }
    }
    assert_eq!(
        order,
        [
            "instance created",
            "execution created",
            "instance processed"
        ]
    );
    let (_, ids) = engine
        .wait_processed(&ti.id, WAIT)
        .await
        .expect("processed");
    assert_eq!(ids, std::slice::from_ref(&execution_id));
    engine.wait(&execution_id, WAIT).await.expect("done");

    // The same trigger with a rule whose parameters read the datastore.
    let write = KeyWrite {
        value: "kv".into(),
        ..KeyWrite::default()
    };
    engine
        .datastore()
        .set(&KeySelector::System, "who", write)
        .await
        .expect("set");
    let rule = st2_core::model::rule_from_json(
        &json!({
            "name": "on_event_kv", "pack": "enginetest", "enabled": true,
            "trigger": {"type": "enginetest.event"},
            "criteria": {"trigger.name": {"type": "equals", "pattern": "kv"}},
            "action": {"ref": "enginetest.echo",
                       "parameters": {"message": "{{ st2kv.system.who }}"}},
        }),
        &engine.catalog(),
    )
    .expect("valid rule");
    engine.put_rule(rule).expect("put");
    let ti = engine
        .dispatch("enginetest.event", json!({"name": "kv", "count": 2}))
        .await
        .expect("dispatch");
    assert_eq!(
        ti.status,
        TriggerInstanceStatus::Pending,
        "left to the service"
    );
    let executions = processed(&engine, &ti.id).await;
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].parameters["message"], "kv");
    engine.shutdown().await;
}

/// A rule on `core.st2.generic.actiontrigger` is matched in the batch that finishes the run:
/// the action trigger instance is stored `processed` with the execution its rule starts, which
/// joins the run's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_on_the_action_trigger_starts_its_action_with_the_finished_run() {
    let engine = start().await;
    let rule = st2_core::model::rule_from_json(
        &json!({
            "name": "on_failure", "pack": "enginetest", "enabled": true,
            "trigger": {"type": "core.st2.generic.actiontrigger"},
            "criteria": {"trigger.status": {"type": "equals", "pattern": "failed"}},
            "action": {"ref": "enginetest.echo",
                       "parameters": {"message": "after {{ trigger.execution_id }}"}},
        }),
        &engine.catalog(),
    )
    .expect("valid rule");
    engine.put_rule(rule).expect("put");
    let created = engine
        .run(
            "enginetest.echo",
            params(json!({"message": "fail"})),
            Map::new(),
        )
        .await
        .expect("run");
    let done = engine.wait(&created.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Failed);
    let instance = wait_for_trigger(&engine, "core.st2.generic.actiontrigger", &done.id).await;
    assert_eq!(instance.status, TriggerInstanceStatus::Processed);
    let (_, ids) = engine
        .wait_processed(&instance.id, WAIT)
        .await
        .expect("processed");
    assert_eq!(ids.len(), 1, "the rule started one execution");
    let followup = engine.wait(&ids[0], WAIT).await.expect("done");
    assert_eq!(followup.status, ExecutionStatus::Succeeded);
    assert_eq!(
        followup.parameters["message"],
        format!("after {}", done.id).as_str()
    );
    let traces = traces_of(&engine, &followup.id).await;
    assert_eq!(traces.len(), 1);
    assert!(
        traces[0]
            .action_executions
            .iter()
            .any(|c| c.object_id == done.id),
        "the follow-up joins the failed run's trace"
    );
    // Its own action trigger (succeeded) matches nothing: no third execution.
    let after = wait_for_trigger(&engine, "core.st2.generic.actiontrigger", &followup.id).await;
    let (_, none) = engine
        .wait_processed(&after.id, WAIT)
        .await
        .expect("processed");
    assert!(none.is_empty());
    engine.shutdown().await;
}

async fn wait_for_trigger(
    engine: &Engine,
    trigger: &str,
    execution_id: &str,
) -> st2_core::store::TriggerInstanceRecord {
    instances_of(engine, trigger, |p| p["execution_id"] == execution_id)
        .await
        .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_matching_and_broken_rules_leave_the_engine_running() {
    let engine = start().await;
    let ti = engine
        .dispatch("enginetest.event", json!({"name": "stop"}))
        .await
        .expect("dispatch");
    assert!(processed(&engine, &ti.id).await.is_empty());

    // A rule whose action does not exist: a failed enforcement, no execution.
    let ghost = engine
        .dispatch("enginetest.event", json!({"name": "ghost"}))
        .await
        .expect("dispatch");
    assert!(processed(&engine, &ghost.id).await.is_empty());
    let enforcements = engine
        .store()
        .rule_enforcements()
        .list(
            &RuleEnforcementFilter {
                trigger_instance: Some(ghost.id.clone()),
                ..RuleEnforcementFilter::default()
            },
            Page::all(),
        )
        .await
        .expect("enforcements");
    assert_eq!(enforcements.items.len(), 1);
    assert_eq!(
        enforcements.items[0].enforcement.failure_reason.as_deref(),
        Some("Action \"enginetest.nope\" doesn't exist")
    );

    // Unknown triggers and payloads that break the schema are refused at the door.
    assert!(matches!(
        engine.dispatch("enginetest.nope", json!({})).await,
        Err(EngineError::UnknownTrigger(_))
    ));
    let err = engine
        .dispatch("enginetest.event", json!({"name": "go", "count": "many"}))
        .await
        .expect_err("count must be an integer");
    assert!(matches!(err, EngineError::InvalidPayload { .. }), "{err}");

    // Still working.
    let ti = engine
        .dispatch("enginetest.event", json!({"name": "go again", "count": 1}))
        .await
        .expect("dispatch");
    let executions = processed(&engine, &ti.id).await;
    let done = engine.wait(&executions[0].id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_trigger_with_parameters_reaches_its_rule() {
    let engine = start().await;
    let hook = TriggerRef {
        trigger_type: "core.st2.webhook".into(),
        parameters: params(json!({"url": "sample"})),
    };
    assert!(
        engine
            .parameterized_triggers()
            .iter()
            .any(|(_, t)| *t == hook)
    );
    let ti = engine
        .dispatch_with(DispatchRequest::to_trigger(
            hook,
            json!({"body": {"text": "from a hook"}, "headers": {}}),
        ))
        .await
        .expect("dispatch");
    let (instance, executions) = engine
        .wait_processed(&ti.id, WAIT)
        .await
        .expect("processed");
    assert_eq!(instance.status, TriggerInstanceStatus::Processed);
    assert_eq!(executions.len(), 1);
    let done = engine.wait(&executions[0], WAIT).await.expect("done");
    assert_eq!(done.parameters["message"], "from a hook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_checks_parameters_and_masks_secrets_in_the_action_trigger() {
    let engine = start().await;
    let created = engine
        .run(
            "enginetest.echo",
            params(json!({"message": "hi", "token": "s3cret"})),
            Map::new(),
        )
        .await
        .expect("run");
    assert_eq!(created.status, ExecutionStatus::Scheduled);
    let done = engine.wait(&created.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.result["count"], 1, "defaults are applied at run time");
    let at = wait_for_trigger(&engine, "core.st2.generic.actiontrigger", &done.id).await;
    assert_eq!(at.payload["parameters"]["token"], "********");

    let missing = engine
        .run("enginetest.echo", Map::new(), Map::new())
        .await
        .expect_err("message is required");
    assert!(
        matches!(missing, EngineError::InvalidParameters(_)),
        "{missing}"
    );
    assert!(missing.to_string().contains("message"), "{missing}");
    let bad_type = engine
        .run(
            "enginetest.echo",
            params(json!({"message": "x", "count": "many"})),
            Map::new(),
        )
        .await
        .expect_err("count is an integer");
    assert!(bad_type.to_string().contains("count"), "{bad_type}");
    assert!(matches!(
        engine.run("enginetest.nope", Map::new(), Map::new()).await,
        Err(EngineError::UnknownAction(_))
    ));
    assert!(matches!(
        engine
            .run(
                "enginetest.disabled",
                params(json!({"message": "x"})),
                Map::new()
            )
            .await,
        Err(EngineError::ActionDisabled(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_runner_fails_its_execution_only() {
    let engine = start().await;
    let boom = engine
        .run("enginetest.boom", Map::new(), Map::new())
        .await
        .expect("run");
    let done = engine.wait(&boom.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.result["error"].as_str().unwrap_or_default();
    assert!(error.contains("runner exploded"), "{error}");
    let next = engine
        .run(
            "enginetest.echo",
            params(json!({"message": "after"})),
            Map::new(),
        )
        .await
        .expect("run");
    assert_eq!(
        engine.wait(&next.id, WAIT).await.expect("done").status,
        ExecutionStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_action_and_a_delayed_one() {
    let engine = start().await;
    let slow = engine
        .run(
            "enginetest.slow",
            params(json!({"seconds": 30})),
            Map::new(),
        )
        .await
        .expect("run");
    wait_status(&engine, &slow.id, ExecutionStatus::Running).await;
    let canceling = engine.cancel(&slow.id, "alice").await.expect("cancel");
    assert!(
        matches!(
            canceling.status,
            ExecutionStatus::Canceling | ExecutionStatus::Canceled
        ),
        "{}",
        canceling.status
    );
    let done = engine.wait(&slow.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Canceled);
    assert_eq!(done.context["cancelled_by"], "alice");
    assert_eq!(done.result["message"], "Action canceled by user.");
    assert_eq!(
        statuses(&done),
        ["requested", "scheduled", "running", "canceling", "canceled"]
    );

    let mut request = RunRequest::new("enginetest.echo", params(json!({"message": "later"})));
    request.delay_ms = Some(60_000);
    let delayed = engine.run_with(request).await.expect("run");
    assert_eq!(delayed.status, ExecutionStatus::Delayed);
    let canceled = engine.cancel(&delayed.id, "bob").await.expect("cancel");
    assert_eq!(canceled.status, ExecutionStatus::Canceled);
    assert!(matches!(
        engine.cancel(&delayed.id, "bob").await,
        Err(EngineError::InvalidState(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_changed_between_creation_and_claim_is_read_again() {
    // One run at a time: the second execution waits for its claim, kept in memory as it was
    // stored, while a cancel changes it in the store. The claim must see the cancel.
    let engine = start_on(
        memory_store().await,
        EngineSettings {
            max_running: 1,
            ..test_settings()
        },
    )
    .await;
    let slow = engine
        .run(
            "enginetest.slow",
            params(json!({"seconds": 0.5})),
            Map::new(),
        )
        .await
        .expect("run");
    wait_status(&engine, &slow.id, ExecutionStatus::Running).await;
    let waiting = engine
        .run(
            "enginetest.echo",
            params(json!({"message": "hi"})),
            Map::new(),
        )
        .await
        .expect("run");
    assert_eq!(waiting.status, ExecutionStatus::Scheduled);
    let canceled = engine.cancel(&waiting.id, "alice").await.expect("cancel");
    assert_eq!(canceled.status, ExecutionStatus::Canceled);
    assert_eq!(
        engine.wait(&slow.id, WAIT).await.expect("done").status,
        ExecutionStatus::Succeeded
    );
    // A later run goes through, so the runner slot has been free for the canceled one too.
    let later = engine
        .run(
            "enginetest.echo",
            params(json!({"message": "next"})),
            Map::new(),
        )
        .await
        .expect("run");
    assert_eq!(
        engine.wait(&later.id, WAIT).await.expect("done").status,
        ExecutionStatus::Succeeded
    );
    let after = engine
        .get(&waiting.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(after.status, ExecutionStatus::Canceled);
    assert_eq!(statuses(&after), ["requested", "scheduled", "canceled"]);
    assert!(
        engine.output(&waiting.id).await.expect("output").is_empty(),
        "never ran"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_policy_requests_the_action_again_up_to_its_count() {
    let engine = start().await;
    let first = engine
        .run("enginetest.flaky", Map::new(), Map::new())
        .await
        .expect("run");
    assert_eq!(
        engine.wait(&first.id, WAIT).await.expect("done").status,
        ExecutionStatus::Failed
    );
    let filter = ExecutionFilter {
        action: Some("enginetest.flaky".into()),
        ..ExecutionFilter::default()
    };
    let all = list_until(&engine, &filter, |found| {
        found.len() == 3 && found.iter().all(|e| e.status.is_completed())
    })
    .await;
    assert_eq!(all.len(), 3, "the first run and two retries");
    let mut counts: Vec<u64> = all
        .iter()
        .filter_map(|e| e.context.get("policies"))
        .filter_map(|p| p["retry"]["retry_count"].as_u64())
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 2]);
    // No fourth run appears.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        engine
            .list(&filter, Page::all())
            .await
            .expect("list")
            .items
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_policy_holds_back_same_attribute_runs() {
    let engine = start().await;
    let run = |key: &'static str| {
        let engine = engine.clone();
        async move {
            engine
                .run(
                    "enginetest.slow",
                    params(json!({"seconds": 30, "key": key})),
                    Map::new(),
                )
                .await
                .expect("run")
        }
    };
    let first = run("a").await;
    wait_status(&engine, &first.id, ExecutionStatus::Running).await;
    let second = run("a").await;
    let other = run("b").await;
    wait_status(&engine, &other.id, ExecutionStatus::Running).await;
    wait_status(&engine, &second.id, ExecutionStatus::Delayed).await;
    engine.cancel(&first.id, "test").await.expect("cancel");
    wait_status(&engine, &second.id, ExecutionStatus::Running).await;
    engine.cancel(&second.id, "test").await.expect("cancel");
    engine.cancel(&other.id, "test").await.expect("cancel");
    let second = engine.wait(&second.id, WAIT).await.expect("done");
    assert!(statuses(&second).contains(&"delayed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_sends_a_notify_trigger_per_route() {
    let engine = start().await;
    let created = engine
        .run(
            "enginetest.notified",
            params(json!({"message": "hi"})),
            Map::new(),
        )
        .await
        .expect("run");
    let done = engine.wait(&created.id, WAIT).await.expect("done");
    let notify = wait_for_trigger(&engine, "core.st2.generic.notifytrigger", &done.id).await;
    assert_eq!(notify.payload["message"], "done with hi");
    assert_eq!(notify.payload["data"]["result"], r#"{"message": "hi"}"#);
    // A default is not among the execution's parameters: the template stays as written,
    // as StackStorm sends it.
    let created = engine
        .run("enginetest.notified", Map::new(), Map::new())
        .await
        .expect("run");
    let done = engine.wait(&created.id, WAIT).await.expect("done");
    let notify = wait_for_trigger(&engine, "core.st2.generic.notifytrigger", &done.id).await;
    assert_eq!(
        notify.payload["message"],
        "done with {{ action_parameters.message }}"
    );
    assert_eq!(notify.payload["route"], "chat");
    assert_eq!(notify.payload["channel"], "chat");
    assert_eq!(notify.payload["status"], "succeeded");
    assert!(notify.payload["data"]["result"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_an_execution() {
    let engine = start().await;
    let mut events = engine.subscribe();
    let created = engine
        .run(
            "enginetest.echo",
            params(json!({"message": "hi"})),
            Map::new(),
        )
        .await
        .expect("run");
    engine.wait(&created.id, WAIT).await.expect("done");
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        if event.execution_id() == Some(created.id.as_str()) {
            seen.push(event.name());
        }
    }
    assert_eq!(seen[0], "st2.execution__create");
    assert!(seen.contains(&"st2.execution.output__create".to_owned()));
    assert_eq!(
        seen.last().map(String::as_str),
        Some("st2.execution__update")
    );
    let _ = EngineEvent::Announcement {
        route: "x".into(),
        payload: json!({}),
    };
}

/// A run is stored with its trace entry in one batch: it starts a trace of its own, joins the
/// trace it names, and still runs (outside any trace) when the trace it names is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_starts_joins_or_goes_on_without_its_trace() {
    let engine = start().await;
    let first = engine
        .run(
            "enginetest.echo",
            params(json!({"message": "a"})),
            Map::new(),
        )
        .await
        .expect("run");
    let own = traces_of(&engine, &first.id).await;
    assert_eq!(own.len(), 1, "a trace of its own");
    assert_eq!(own[0].trace_tag, format!("execution-{}", first.id));

    let mut joining = RunRequest::new("enginetest.echo", params(json!({"message": "b"})));
    joining.trace_id = Some(own[0].id.clone());
    let second = engine.run_with(joining).await.expect("run");
    let joined = traces_of(&engine, &second.id).await;
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].id, own[0].id, "the trace it named");
    assert_eq!(joined[0].action_executions.len(), 2);

    let mut orphan = RunRequest::new("enginetest.echo", params(json!({"message": "c"})));
    orphan.trace_id = Some("no-such-trace".into());
    let third = engine.run_with(orphan).await.expect("runs without it");
    let done = engine.wait(&third.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert!(traces_of(&engine, &third.id).await.is_empty());
}

/// An execution is stored with its queue item in one commit, so a worker may update it before
/// its creator announces it: subscribers still see every execution created before updated,
/// whether `run` or a rule started it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_execution_is_announced_created_before_any_update() {
    let engine = Arc::new(start().await);
    let mut events = engine.subscribe();
    let mut runs = tokio::task::JoinSet::new();
    for n in 0..100 {
        let engine = engine.clone();
        runs.spawn(async move {
            if n % 4 == 0 {
                let ti = engine
                    .dispatch(
                        "enginetest.event",
                        json!({"name": format!("go {n}"), "count": n}),
                    )
                    .await
                    .expect("dispatch");
                let (_, ids) = engine
                    .wait_processed(&ti.id, WAIT)
                    .await
                    .expect("processed");
                ids
            } else {
                let run = engine
                    .run(
                        "enginetest.echo",
                        params(json!({"message": n.to_string()})),
                        Map::new(),
                    )
                    .await
                    .expect("run");
                vec![run.id]
            }
        });
    }
    let mut ids = Vec::new();
    while let Some(started) = runs.join_next().await {
        ids.extend(started.expect("starts"));
    }
    assert_eq!(ids.len(), 100, "one execution each");
    for id in &ids {
        engine.wait(id, WAIT).await.expect("done");
    }
    let mut first: HashMap<String, String> = HashMap::new();
    let mut updates: HashMap<String, usize> = HashMap::new();
    loop {
        match events.try_recv() {
            Ok(event) => {
                let name = event.name();
                if let Some(id) = event.execution_id() {
                    if name == "st2.execution__update" {
                        *updates.entry(id.to_owned()).or_default() += 1;
                    }
                    // Updates and output lines alike come after the creation.
                    if name.starts_with("st2.execution") {
                        first.entry(id.to_owned()).or_insert(name);
                    }
                }
            }
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                panic!("{n} events lost: the test's channel is too small")
            }
            Err(_) => break,
        }
    }
    for id in &ids {
        assert_eq!(
            first.get(id).map(String::as_str),
            Some("st2.execution__create"),
            "{id} is created first"
        );
        assert!(
            updates.get(id).copied().unwrap_or(0) >= 2,
            "{id} runs and finishes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_seen_on_the_event_stream_is_in_the_stored_output() {
    // Lines go to subscribers at once and to the store in batches; a reader that saw a line
    // live and then reads the stored output (the output stream does, to send what came before
    // it subscribed) must find it there, or a line would be lost between the two.
    let engine = start().await;
    for _ in 0..20 {
        let mut events = engine.subscribe();
        let slow = engine
            .run(
                "enginetest.slow",
                params(json!({"seconds": 30})),
                Map::new(),
            )
            .await
            .expect("run");
        let line = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(EngineEvent::Output(o)) = events.recv().await
                    && o.execution_id == slow.id
                {
                    return o.data.clone();
                }
            }
        })
        .await
        .expect("a line");
        assert_eq!(line, "sleeping\n");
        let stored = engine.output(&slow.id).await.expect("output");
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert_eq!(stored[0].chunk.data, "sleeping\n");
        engine.cancel(&slow.id, "alice").await.expect("cancel");
        engine.wait(&slow.id, WAIT).await.expect("done");
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_accepted_by_a_stopped_engine_is_finished_by_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = dir.path().join("st2.db");
    let open = || async {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(SqliteOptions::file(&url))
                .await
                .expect("store"),
        );
        store
    };
    let idle = EngineSettings {
        roles: Roles {
            rules: false,
            scheduler: false,
            runner: false,
            timers: false,
            sensors: false,
            gc: false,
        },
        ..test_settings()
    };
    let store = open().await;
    let first = start_on(store.clone(), idle).await;
    let ti = first
        .dispatch("enginetest.event", json!({"name": "go later", "count": 2}))
        .await
        .expect("dispatch");
    let queued = first
        .run(
            "enginetest.echo",
            params(json!({"message": "queued"})),
            Map::new(),
        )
        .await
        .expect("run");
    let mut later = RunRequest::new("enginetest.echo", params(json!({"message": "later"})));
    later.delay_ms = Some(300);
    let delayed = first.run_with(later).await.expect("run");
    assert_eq!(delayed.status, ExecutionStatus::Delayed);
    first.shutdown().await;
    drop(first);
    store.close().await.expect("close");

    let second = start_on(open().await, test_settings()).await;
    let executions = processed(&second, &ti.id).await;
    assert_eq!(executions.len(), 1);
    for id in [
        executions[0].id.as_str(),
        queued.id.as_str(),
        delayed.id.as_str(),
    ] {
        let done = second.wait(id, WAIT).await.expect("done");
        assert_eq!(done.status, ExecutionStatus::Succeeded);
    }
    // The delay was kept in the store across the restart.
    let done = second.wait(&delayed.id, WAIT).await.expect("done");
    assert_eq!(
        statuses(&done),
        ["requested", "delayed", "scheduled", "running", "succeeded"]
    );
    let waited = done.log[2].timestamp - done.start_timestamp;
    assert!(waited >= chrono::TimeDelta::milliseconds(300), "{waited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_whose_runner_died_is_abandoned() {
    let store = memory_store().await;
    let no_runner = EngineSettings {
        roles: Roles {
            runner: false,
            ..Roles::default()
        },
        ..test_settings()
    };
    let engine = start_on(store.clone(), no_runner).await;
    let created = engine
        .run(
            "enginetest.echo",
            params(json!({"message": "lost"})),
            Map::new(),
        )
        .await
        .expect("run");
    // A worker that claims the item, marks the execution running and dies.
    let leases = store
        .queue()
        .claim(&ClaimRequest::one(
            "run",
            "doomed",
            Duration::from_millis(300),
        ))
        .await
        .expect("claim");
    assert_eq!(leases.len(), 1);
    let mut record = store
        .executions()
        .get(&created.id)
        .await
        .expect("read")
        .expect("exists");
    st2_core::engine::lifecycle::transition(
        &mut record,
        ExecutionStatus::Running,
        chrono::Utc::now(),
    )
    .expect("scheduled → running");
    record.runner_info = Some(json!({"queue_item": leases[0].item.id}));
    store.executions().update(&record).await.expect("update");
    engine.shutdown().await;

    // A node with runners finds the expired lease and gives the execution up.
    let rescuer = start_on(store.clone(), test_settings()).await;
    let done = rescuer.wait(&created.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Abandoned);
}

/// Dispatches one event, then stops.
#[derive(Debug)]
struct OneShot;

#[async_trait]
impl st2_core::sensor::Sensor for OneShot {
    async fn run(
        &self,
        ctx: st2_core::sensor::SensorContext,
    ) -> Result<(), st2_core::sensor::SensorError> {
        ctx.set_value("seen", "yes", None, true, false).await?;
        ctx.dispatch("enginetest.event", json!({"name": "go sensor", "count": 1}))
            .await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_sensor_dispatches_into_the_pipeline() {
    let engine = Engine::builder()
        .store(memory_store().await)
        .pack_dir(fixture())
        .settings(test_settings())
        .runner(RunnerType::new("test-echo", "test runner"), Echo)
        .sensor("enginetest.OneShot", OneShot)
        .start()
        .await
        .expect("engine starts");
    let filter = ExecutionFilter {
        action: Some("enginetest.echo".into()),
        ..ExecutionFilter::default()
    };
    let found = list_until(&engine, &filter, |found| !found.is_empty()).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].parameters["message"], "hello go sensor");
    let spawns = engine
        .store()
        .trigger_instances()
        .list(
            &TriggerInstanceFilter {
                trigger: Some("core.st2.sensor.process_spawn".into()),
                ..TriggerInstanceFilter::default()
            },
            Page::all(),
        )
        .await
        .expect("list");
    assert_eq!(spawns.items.len(), 1);
    assert_eq!(spawns.items[0].payload["id"], "OneShot");
    let seen = engine
        .datastore()
        .get(
            &st2_core::datastore::KeySelector::System,
            "enginetest.OneShot:seen",
            false,
        )
        .await
        .expect("read")
        .expect("the sensor wrote it");
    assert_eq!(seen.record.value, "yes");
    // A sensor's write dispatches the key-value trigger too, as StackStorm's sensor service.
    key_triggers(
        &engine,
        "core.st2.key_value_pair.create",
        "enginetest.OneShot:seen",
    )
    .await;
    engine.shutdown().await;
}

/// An engine on the fixture packs whose clock the test moves, looking at it every 20 ms;
/// returns it, the clock and the time it started at.
async fn engine_on_manual_clock() -> (
    Engine,
    Arc<st2_core::clock::ManualClock>,
    chrono::DateTime<chrono::Utc>,
) {
    let start = chrono::DateTime::from_timestamp(1_750_000_000, 0).expect("valid");
    let clock = Arc::new(st2_core::clock::ManualClock::new(start));
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory().with_clock(clock.clone()))
            .await
            .expect("store"),
    );
    let engine = Engine::builder()
        .store(store)
        .clock(clock.clone())
        .pack_dir(fixture())
        .settings(EngineSettings {
            timer_tick: Duration::from_millis(20),
            ..test_settings()
        })
        .runner(RunnerType::new("test-echo", "test runner"), Echo)
        .start()
        .await
        .expect("engine starts");
    (engine, clock, start)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_timers_fire_by_the_engine_clock() {
    let (engine, clock, start) = engine_on_manual_clock().await;
    let filter = ExecutionFilter {
        action: Some("enginetest.tick".into()),
        ..ExecutionFilter::default()
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        engine
            .list(&filter, Page::all())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    clock.advance(chrono::TimeDelta::minutes(61));
    let ticks = list_until(&engine, &filter, |found| !found.is_empty()).await;
    assert_eq!(ticks.len(), 1, "one firing in 61 minutes");
    let fired = start + chrono::TimeDelta::hours(1);
    assert_eq!(
        ticks[0].parameters["message"],
        format!("tick at {}", fired.format("%Y-%m-%d %H:%M:%S+00:00"))
    );
    let ti = ticks[0]
        .trigger_instance
        .as_ref()
        .expect("trigger instance");
    assert!(
        ti["trigger"]
            .as_str()
            .unwrap_or_default()
            .starts_with("core.")
    );
    clock.advance(chrono::TimeDelta::hours(2));
    let ticks = list_until(&engine, &filter, |found| found.len() == 3).await;
    assert_eq!(ticks.len(), 3, "two more firings in the next two hours");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_rules_added_and_removed_at_runtime_start_and_stop_at_once() {
    let (engine, clock, _) = engine_on_manual_clock().await;
    let rule = st2_core::model::rule_from_json(
        &json!({
            "name": "half_hourly", "pack": "enginetest", "enabled": true,
            "trigger": {"type": "core.st2.IntervalTimer", "parameters": {"unit": "minutes", "delta": 30}},
            "action": {"ref": "enginetest.tick", "parameters": {"message": "half {{ trigger.executed_at }}"}},
        }),
        &engine.catalog(),
    )
    .expect("valid rule");
    engine.put_rule(rule).expect("put");
    // The timers engine picks the new timer up at once; its schedule starts now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let filter = ExecutionFilter {
        action: Some("enginetest.tick".into()),
        ..ExecutionFilter::default()
    };
    let half = |found: &[ExecutionRecord]| {
        found
            .iter()
            .filter(|e| {
                e.parameters["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("half"))
            })
            .count()
    };
    clock.advance(chrono::TimeDelta::minutes(31));
    let ticks = list_until(&engine, &filter, |found| half(found) == 1).await;
    assert_eq!(
        half(&ticks),
        1,
        "the added rule's timer fired without a restart"
    );
    assert_eq!(ticks.len(), 1, "the hourly timer has not fired yet");

    assert!(engine.remove_rule("enginetest.half_hourly").is_some());
    tokio::time::sleep(Duration::from_millis(200)).await;
    clock.advance(chrono::TimeDelta::minutes(60));
    // The hourly rule still fires; the removed one does not.
    let ticks = list_until(&engine, &filter, |found| found.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ticks_after = engine.list(&filter, Page::all()).await.expect("list").items;
    assert_eq!(ticks.len(), 2, "{ticks:?}");
    assert_eq!(ticks_after.len(), 2);
    assert_eq!(half(&ticks_after), 1, "the removed rule's timer stopped");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_rules_role_leaves_instances_to_one_with_it() {
    let store = memory_store().await;
    let rules = start_on(
        store.clone(),
        EngineSettings {
            pending_sweep: Duration::from_millis(100),
            ..test_settings()
        },
    )
    .await;
    let api_only = start_on(
        store.clone(),
        EngineSettings {
            roles: Roles {
                rules: false,
                scheduler: false,
                runner: false,
                timers: false,
                sensors: false,
                gc: false,
            },
            ..test_settings()
        },
    )
    .await;
    let ti = api_only
        .dispatch(
            "enginetest.event",
            json!({"name": "go elsewhere", "count": 1}),
        )
        .await
        .expect("dispatch");
    let (_, executions) = rules.wait_processed(&ti.id, WAIT).await.expect("processed");
    assert_eq!(executions.len(), 1);
    let done = rules.wait(&executions[0], WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Succeeded);
}

async fn key_triggers(engine: &Engine, trigger: &str, name: &str) -> Vec<Value> {
    instances_of(engine, trigger, |p| {
        p.get("object")
            .or_else(|| p.get("new_object"))
            .and_then(|o| o.get("name"))
            == Some(&json!(name))
    })
    .await
    .into_iter()
    .map(|t| t.payload)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datastore_writes_dispatch_key_value_triggers() {
    use st2_core::datastore::{KeySelector, KeyWrite};
    let engine = start().await;
    let kv = engine.datastore();
    let write = |v: &str| KeyWrite {
        value: v.into(),
        ..KeyWrite::default()
    };
    kv.set(&KeySelector::System, "color", write("red"))
        .await
        .expect("set");
    let created = key_triggers(&engine, "core.st2.key_value_pair.create", "color").await;
    assert_eq!(created[0]["object"]["value"], "red");
    kv.set(&KeySelector::System, "color", write("blue"))
        .await
        .expect("set");
    let updated = key_triggers(&engine, "core.st2.key_value_pair.update", "color").await;
    assert_eq!(updated[0]["object"]["value"], "blue");
    let changed = key_triggers(&engine, "core.st2.key_value_pair.value_change", "color").await;
    assert_eq!(changed[0]["old_object"]["value"], "red");
    assert_eq!(changed[0]["new_object"]["value"], "blue");
    kv.delete(&KeySelector::System, "color")
        .await
        .expect("delete");
    key_triggers(&engine, "core.st2.key_value_pair.delete", "color").await;
}

/// Run `enginetest.echo` with a live parameter read from the datastore.
async fn run_with_a_datastore_parameter() {
    use st2_core::datastore::{KeySelector, KeyWrite};
    let engine = start().await;
    let write = KeyWrite {
        value: "hello".into(),
        ..KeyWrite::default()
    };
    engine
        .datastore()
        .set(&KeySelector::System, "greeting", write)
        .await
        .expect("set");
    let created = engine
        .run(
            "enginetest.echo",
            params(json!({"message": "{{ st2kv.system.greeting }} there"})),
            Map::new(),
        )
        .await
        .expect("run");
    assert_eq!(created.parameters["message"], "hello there");
    let done = engine.wait(&created.id, WAIT).await.expect("done");
    assert_eq!(done.result["message"], "hello there");
    engine.shutdown().await;
}

// Rendering runs in place on a multi-thread runtime (a datastore read steps aside from the
// worker) and on a blocking thread elsewhere: both read the datastore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_parameters_read_the_datastore_on_a_multi_thread_runtime() {
    run_with_a_datastore_parameter().await;
}

#[tokio::test]
async fn live_parameters_read_the_datastore_on_a_current_thread_runtime() {
    run_with_a_datastore_parameter().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_reporting_garbage_fails_its_execution() {
    let engine = start().await;
    let created = engine
        .run("enginetest.garbage", Map::new(), Map::new())
        .await
        .expect("run");
    let done = engine.wait(&created.id, WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.result["error"].as_str().unwrap_or_default();
    assert!(error.contains("requested"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inquiry_response_completes_the_pending_execution() {
    let engine = start().await;
    let created = engine
        .run("enginetest.ask", Map::new(), Map::new())
        .await
        .expect("run");
    wait_status(&engine, &created.id, ExecutionStatus::Pending).await;
    let inquiry = st2_core::store::InquiryRecord {
        id: created.id.clone(),
        status: st2_core::store::InquiryStatus::Pending,
        schema: json!({
            "type": "object",
            "properties": {"continue": {"type": "boolean", "required": true}},
        }),
        route: String::new(),
        ttl: 1440,
        users: vec!["alice".into()],
        roles: Vec::new(),
        parent: None,
        response: None,
        created_at: chrono::Utc::now(),
        resolved_at: None,
    };
    engine
        .store()
        .inquiries()
        .create(&inquiry)
        .await
        .expect("inquiry");
    let refused = engine
        .respond_inquiry(&created.id, json!({"continue": true}), "mallory")
        .await
        .expect_err("mallory is not among the users");
    assert!(refused.to_string().contains("permission"), "{refused}");
    let invalid = engine
        .respond_inquiry(&created.id, json!({"continue": "yes"}), "alice")
        .await
        .expect_err("continue is a boolean");
    assert!(invalid.to_string().contains("schema"), "{invalid}");
    let done = engine
        .respond_inquiry(&created.id, json!({"continue": true}), "alice")
        .await
        .expect("respond");
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.result["response"], json!({"continue": true}));
    let again = engine
        .respond_inquiry(&created.id, json!({"continue": true}), "alice")
        .await
        .expect_err("already answered");
    assert!(again.to_string().contains("already"), "{again}");
}

/// The same pipeline on PostgreSQL (CI sets `ST2_TEST_PG_URL`): a rule's execution, retries
/// through the schedule queue with `not_before`, cancel of a running action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_on_postgresql() {
    use st2_core::store::postgres::{PgOptions, PgStore};
    let Some(url) = std::env::var("ST2_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("ST2_TEST_PG_URL is not set: skipping the PostgreSQL engine test");
        return;
    };
    let schema = format!("st2e_{}", st2_core::store::new_id());
    let pg = Arc::new(
        PgStore::connect(PgOptions::new(&url).schema(&schema).pool_size(8))
            .await
            .expect("connect"),
    );
    let store: Arc<dyn Store> = pg.clone();
    let engine = start_on(store, test_settings()).await;

    let ti = engine
        .dispatch(
            "enginetest.event",
            json!({"name": "go postgres", "count": 2}),
        )
        .await
        .expect("dispatch");
    let (instance, executions) = engine
        .wait_processed(&ti.id, WAIT)
        .await
        .expect("processed");
    assert_eq!(instance.status, TriggerInstanceStatus::Processed);
    assert_eq!(executions.len(), 1);
    let done = engine.wait(&executions[0], WAIT).await.expect("done");
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(
        done.parameters,
        params(json!({"message": "hello go postgres", "count": 2}))
    );

    let first = engine
        .run("enginetest.flaky", Map::new(), Map::new())
        .await
        .expect("run");
    engine.wait(&first.id, WAIT).await.expect("done");
    let filter = ExecutionFilter {
        action: Some("enginetest.flaky".into()),
        ..ExecutionFilter::default()
    };
    let all = list_until(&engine, &filter, |found| {
        found.len() == 3 && found.iter().all(|e| e.status.is_completed())
    })
    .await;
    assert_eq!(all.len(), 3, "the first run and two retries");

    let slow = engine
        .run(
            "enginetest.slow",
            params(json!({"seconds": 30})),
            Map::new(),
        )
        .await
        .expect("run");
    wait_status(&engine, &slow.id, ExecutionStatus::Running).await;
    engine.cancel(&slow.id, "tester").await.expect("cancel");
    assert_eq!(
        engine.wait(&slow.id, WAIT).await.expect("done").status,
        ExecutionStatus::Canceled
    );
    engine.shutdown().await;
    pg.drop_schema().await.expect("drop schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_and_bad_timers_are_reported() {
    let store = memory_store().await;
    let err = Engine::builder()
        .store(store.clone())
        .settings(EngineSettings {
            pending_sweep: Duration::ZERO,
            ..EngineSettings::default()
        })
        .start()
        .await
        .expect_err("a zero period is refused");
    assert!(err.to_string().contains("pending_sweep"), "{err}");
    let err = Engine::builder()
        .store(store.clone())
        .settings(EngineSettings {
            heartbeat: Duration::from_secs(60),
            ..EngineSettings::default()
        })
        .start()
        .await
        .expect_err("a heartbeat after the lease expiry is refused");
    assert!(err.to_string().contains("heartbeat"), "{err}");

    let engine = start_on(store, test_settings()).await;
    let cron = engine
        .diagnostics()
        .iter()
        .find(|d| d.message.contains("enginetest.bad_cron"))
        .expect("the bad cron rule is reported");
    assert!(cron.is_error());
    assert!(cron.message.contains("minute"), "{}", cron.message);
    assert!(
        cron.file.ends_with("rules/bad_cron.yaml"),
        "{:?}",
        cron.file
    );
}

/// Two nodes on one PostgreSQL store: one scheduler decides at a time (the `scheduler` lead),
/// so a concurrency policy of one holds across both: runs of the same key never overlap, and
/// every run of either node completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_concurrency_policy() {
    use st2_core::store::postgres::{PgOptions, PgStore};
    let Some(url) = std::env::var("ST2_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("ST2_TEST_PG_URL is not set: skipping the two-node engine test");
        return;
    };
    let schema = format!("st2e_{}", st2_core::store::new_id());
    let connect = || async {
        let pg: Arc<dyn Store> = Arc::new(
            PgStore::connect(PgOptions::new(&url).schema(&schema).pool_size(4))
                .await
                .expect("connect"),
        );
        pg
    };
    let node = |name: &str| EngineSettings {
        node_name: name.to_owned(),
        ..test_settings()
    };
    let a = start_on(connect().await, node("node-a")).await;
    let b = start_on(connect().await, node("node-b")).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let engine = if i % 2 == 0 { &a } else { &b };
        let run = engine
            .run(
                "enginetest.slow",
                params(json!({"seconds": 0.2, "key": "shared"})),
                Map::new(),
            )
            .await
            .expect("run");
        ids.push(run.id);
    }
    let mut spans = Vec::new();
    for id in &ids {
        let done = a.wait(id, WAIT).await.expect("done");
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
        let started = done
            .log
            .iter()
            .find(|c| c.status == ExecutionStatus::Running)
            .map(|c| c.timestamp)
            .expect("it ran");
        spans.push((started, done.end_timestamp.expect("ended")));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "runs of one key overlapped: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// Makes [`OneShot`] for sensors whose entry point ends in `.oneshot`, nothing for others.
#[derive(Debug)]
struct OneShotFactory;

impl st2_core::sensor::SensorFactory for OneShotFactory {
    fn create(
        &self,
        metadata: &st2_core::model::Sensor,
        _pack_dir: Option<&std::path::Path>,
    ) -> Option<Arc<dyn st2_core::sensor::Sensor>> {
        metadata
            .entry_point
            .ends_with(".oneshot")
            .then(|| Arc::new(OneShot) as Arc<dyn st2_core::sensor::Sensor>)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensor_factories_start_the_enabled_sensors_packs_declare() {
    let report = st2_core::loader::load(
        &st2_core::LoadOptions::default()
            .pack_dir(fixture())
            .runner_type(RunnerType::new("test-echo", "test runner")),
    );
    let mut catalog = report.catalog;
    let sensor = |class_name: &str, entry_point: &str, enabled: bool| st2_core::model::Sensor {
        reference: format!("enginetest.{class_name}"),
        class_name: class_name.to_owned(),
        origin: st2_core::model::Origin {
            pack: "enginetest".to_owned(),
            metadata_file: format!("sensors/{class_name}.yaml"),
        },
        entry_point: entry_point.to_owned(),
        description: None,
        enabled,
        poll_interval: None,
        trigger_types: Vec::new(),
    };
    catalog.insert_sensor(sensor("OneShot", "one.oneshot", true));
    catalog.insert_sensor(sensor("Disabled", "off.oneshot", false));
    catalog.insert_sensor(sensor("Foreign", "other.py", true));
    let engine = Engine::builder()
        .store(memory_store().await)
        .catalog(catalog)
        .settings(test_settings())
        .runner(RunnerType::new("test-echo", "test runner"), Echo)
        .sensor_factory(OneShotFactory)
        .start()
        .await
        .expect("engine starts");
    let filter = ExecutionFilter {
        action: Some("enginetest.echo".into()),
        ..ExecutionFilter::default()
    };
    let found = list_until(&engine, &filter, |found| !found.is_empty()).await;
    assert_eq!(found[0].parameters["message"], "hello go sensor");
    let refs: Vec<String> = engine
        .sensor_statuses()
        .into_iter()
        .map(|s| s.reference)
        .collect();
    assert_eq!(
        refs,
        ["enginetest.OneShot"],
        "disabled and unclaimed sensors do not run"
    );
    engine.shutdown().await;
}

/// Runs until shut down, counting its starts.
#[derive(Debug)]
struct Watcher(Arc<std::sync::atomic::AtomicUsize>);

#[async_trait]
impl st2_core::sensor::Sensor for Watcher {
    async fn run(
        &self,
        ctx: st2_core::sensor::SensorContext,
    ) -> Result<(), st2_core::sensor::SensorError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ctx.shutdown.cancelled().await;
        Ok(())
    }
}

#[derive(Debug)]
struct WatcherFactory(Arc<std::sync::atomic::AtomicUsize>);

impl st2_core::sensor::SensorFactory for WatcherFactory {
    fn create(
        &self,
        metadata: &st2_core::model::Sensor,
        _pack_dir: Option<&std::path::Path>,
    ) -> Option<Arc<dyn st2_core::sensor::Sensor>> {
        (metadata.entry_point == "watch.rs")
            .then(|| Arc::new(Watcher(self.0.clone())) as Arc<dyn st2_core::sensor::Sensor>)
    }
}

/// Where sensor `reference` is in its life, if it was ever started.
fn sensor_state(engine: &Engine, reference: &str) -> Option<st2_core::sensor::SensorState> {
    engine
        .sensor_statuses()
        .into_iter()
        .find(|s| s.reference == reference)
        .map(|s| s.state)
}

/// Wait until `starts` counts `want` sensor starts.
async fn starts_reach(starts: &std::sync::atomic::AtomicUsize, want: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    while starts.load(std::sync::atomic::Ordering::SeqCst) < want {
        assert!(std::time::Instant::now() < deadline, "sensor never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensors_are_disabled_and_enabled_while_the_engine_runs() {
    use st2_core::sensor::SensorState;
    let report = st2_core::loader::load(
        &st2_core::LoadOptions::default()
            .pack_dir(fixture())
            .runner_type(RunnerType::new("test-echo", "test runner")),
    );
    let mut catalog = report.catalog;
    for (class_name, enabled) in [("Watch", true), ("Later", false), ("Overridden", true)] {
        catalog.insert_sensor(st2_core::model::Sensor {
            reference: format!("enginetest.{class_name}"),
            class_name: class_name.to_owned(),
            origin: st2_core::model::Origin {
                pack: "enginetest".to_owned(),
                metadata_file: format!("sensors/{class_name}.yaml"),
            },
            entry_point: "watch.rs".to_owned(),
            description: None,
            enabled,
            poll_interval: None,
            trigger_types: Vec::new(),
        });
    }
    let starts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let engine = Engine::builder()
        .store(memory_store().await)
        .catalog(catalog)
        .settings(test_settings())
        .runner(RunnerType::new("test-echo", "test runner"), Echo)
        .sensor_factory(WatcherFactory(starts.clone()))
        // What an earlier run recorded through the API wins over the file.
        .sensor_enabled("enginetest.Overridden", false)
        .sensor_enabled("enginetest.Nonexistent", true)
        .start()
        .await
        .expect("engine starts");
    let state = |reference: &str| sensor_state(&engine, reference);
    let until = |want: usize| starts_reach(&starts, want);
    until(1).await;
    assert_eq!(state("enginetest.Watch"), Some(SensorState::Running));
    assert_eq!(state("enginetest.Later"), None);
    assert_eq!(state("enginetest.Overridden"), None);
    assert!(
        !engine
            .catalog()
            .sensor("enginetest.Overridden")
            .expect("known")
            .enabled
    );

    // Disable: stopped at once, recorded in the catalog.
    let off = engine
        .set_sensor_enabled("enginetest.Watch", false)
        .await
        .expect("known sensor");
    assert!(!off.enabled);
    assert_eq!(state("enginetest.Watch"), Some(SensorState::Stopped));
    // Enable the one that was off, and the stopped one again: both run.
    assert!(
        engine
            .set_sensor_enabled("enginetest.Later", true)
            .await
            .expect("known")
            .enabled
    );
    engine
        .set_sensor_enabled("enginetest.Watch", true)
        .await
        .expect("known");
    until(3).await;
    // Enabling a running sensor does not start a second copy.
    engine
        .set_sensor_enabled("enginetest.Watch", true)
        .await
        .expect("known");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(
        engine
            .set_sensor_enabled("enginetest.Nope", true)
            .await
            .is_none()
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensors_follow_a_replaced_catalog() {
    use st2_core::sensor::SensorState;
    let load = || {
        st2_core::loader::load(
            &st2_core::LoadOptions::default()
                .pack_dir(fixture())
                .runner_type(RunnerType::new("test-echo", "test runner")),
        )
        .catalog
    };
    let sensor = |class_name: &str| st2_core::model::Sensor {
        reference: format!("enginetest.{class_name}"),
        class_name: class_name.to_owned(),
        origin: st2_core::model::Origin {
            pack: "enginetest".to_owned(),
            metadata_file: format!("sensors/{class_name}.yaml"),
        },
        entry_point: "watch.rs".to_owned(),
        description: None,
        enabled: true,
        poll_interval: None,
        trigger_types: Vec::new(),
    };
    let mut catalog = load();
    catalog.insert_sensor(sensor("Old"));
    let starts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let engine = Engine::builder()
        .store(memory_store().await)
        .catalog(catalog)
        .settings(test_settings())
        .runner(RunnerType::new("test-echo", "test runner"), Echo)
        .sensor_factory(WatcherFactory(starts.clone()))
        .start()
        .await
        .expect("engine starts");
    let state = |reference: &str| sensor_state(&engine, reference);
    let until = |want: usize| starts_reach(&starts, want);
    until(1).await;

    // Packs registered again: `Old` is gone, `New` appeared.
    let mut catalog = load();
    catalog.insert_sensor(sensor("New"));
    assert!(engine.replace_catalog(catalog).is_empty());
    engine.sync_sensors(&[]).await;
    until(2).await;
    assert_eq!(state("enginetest.Old"), Some(SensorState::Stopped));
    assert_eq!(state("enginetest.New"), Some(SensorState::Running));
    // Registering another pack leaves it alone; registering its own pack restarts it.
    engine.sync_sensors(&["other".to_owned()]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 2);
    engine.sync_sensors(&["enginetest".to_owned()]).await;
    until(3).await;
    assert_eq!(state("enginetest.New"), Some(SensorState::Running));
    // The pack removed: its sensor stops.
    engine.remove_pack("enginetest");
    engine.sync_sensors(&[]).await;
    assert_eq!(state("enginetest.New"), Some(SensorState::Stopped));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depths_count_the_work_waiting_in_each_queue() {
    let engine = start().await;
    let depths = engine.queue_depths().await.expect("depths");
    let names: Vec<&str> = depths.iter().map(|(q, _)| *q).collect();
    assert_eq!(names, ["run", "schedule"]);
    let mut request = RunRequest::new("enginetest.echo", params(json!({"message": "later"})));
    request.delay_ms = Some(60_000);
    let delayed = engine.run_with(request).await.expect("run");
    assert_eq!(delayed.status, ExecutionStatus::Delayed);
    let depths = engine.queue_depths().await.expect("depths");
    let waiting: u64 = depths.iter().map(|(_, d)| d.delayed).sum();
    assert_eq!(waiting, 1, "{depths:?}");
    engine.shutdown().await;
}
