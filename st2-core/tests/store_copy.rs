//! Moving between stores: `copy_store` carries history and configuration from one backend to
//! another intact (SQLite → SQLite, and SQLite → PostgreSQL when `ST2_TEST_PG_URL` is set), and
//! refuses a source with work still in flight.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta};
use serde_json::json;
use st2_core::clock::{Clock, ManualClock};
use st2_core::rules::enforce::{EnforcementStatus, RuleEnforcement, RuleSpecRef};
use st2_core::store::copy::copy_store;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::*;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        DateTime::from_timestamp(1_750_000_000, 500_000).expect("valid"),
    ))
}

fn execution(id: &str, parent: Option<&str>, start: Timestamp) -> ExecutionRecord {
    ExecutionRecord {
        id: id.to_owned(),
        revision: 0,
        action_ref: "core.local".into(),
        action: json!({"ref": "core.local"}).into(),
        runner: json!({"name": "local-shell-cmd"}).into(),
        status: ExecutionStatus::Succeeded,
        parameters: json!({"cmd": "date"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        result: json!({"stdout": "ok"}),
        context: json!({"user": "stanley"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        parent: parent.map(str::to_owned),
        children: Vec::new(),
        start_timestamp: start,
        end_timestamp: Some(start + TimeDelta::seconds(1)),
        log: Vec::new(),
        delay: None,
        notify: None,
        runner_info: None,
        rule: None,
        trigger: None,
        trigger_type: None,
        trigger_instance: None,
        workflow_execution: None,
        task_execution: None,
    }
}

async fn fill(store: &dyn Store, now: Timestamp) {
    let e = store.executions();
    e.create(&execution("wf", None, now)).await.expect("create");
    for (i, child) in ["c2", "c1"].iter().enumerate() {
        e.create(&execution(
            child,
            Some("wf"),
            now + TimeDelta::seconds(i as i64 + 1),
        ))
        .await
        .expect("create");
    }
    store
        .execution_output()
        .append(&[NewOutput {
            execution_id: "c1".into(),
            action_ref: "core.local".into(),
            runner_ref: "local-shell-cmd".into(),
            timestamp: now,
            output_type: OutputType::Stdout,
            data: "hello\n".into(),
        }])
        .await
        .expect("append");
    store
        .trigger_instances()
        .create(&TriggerInstanceRecord {
            id: "ti1".into(),
            trigger: "core.st2.webhook".into(),
            trigger_type: Some("core.st2.webhook".into()),
            payload: json!({"body": {"x": 1}}),
            occurrence_time: now,
            status: TriggerInstanceStatus::Processed,
        })
        .await
        .expect("create");
    store
        .rule_enforcements()
        .create(&RuleEnforcementRecord {
            id: "re1".into(),
            enforcement: RuleEnforcement {
                trigger_instance_id: "ti1".into(),
                rule: RuleSpecRef {
                    reference: "examples.r".into(),
                    id: Some("r1".into()),
                    uid: "rule:examples:r".into(),
                },
                execution_id: Some("wf".into()),
                failure_reason: None,
                status: EnforcementStatus::Succeeded,
                enforced_at: now,
            },
        })
        .await
        .expect("create");
    for (scope, name, secret) in [
        (KeyScope::System, "url", false),
        (KeyScope::System, "password", true),
        (KeyScope::User, "stanley:pref", false),
    ] {
        store
            .key_values()
            .put(&KeyValueRecord {
                id: new_id(),
                scope,
                name: name.into(),
                value: if secret {
                    "3030303030ABCDEF".into()
                } else {
                    "v".into()
                },
                description: None,
                secret,
                expire_timestamp: None,
            })
            .await
            .expect("put");
    }
    store
        .api_keys()
        .create(&ApiKeyRecord {
            id: "k1".into(),
            key_hash: "ab".repeat(32),
            user: "stanley".into(),
            metadata: Default::default(),
            enabled: true,
            created_at: now,
        })
        .await
        .expect("create");
    store
        .inquiries()
        .create(&InquiryRecord {
            id: "i1".into(),
            status: InquiryStatus::Succeeded,
            schema: json!({"type": "object"}),
            route: String::new(),
            ttl: 0,
            users: Vec::new(),
            roles: Vec::new(),
            parent: None,
            response: Some(json!({"continue": true})),
            created_at: now,
            resolved_at: Some(now),
        })
        .await
        .expect("create");
    store
        .traces()
        .create(&TraceRecord {
            id: "tr1".into(),
            trace_tag: "deploy".into(),
            trigger_instances: Vec::new(),
            rules: Vec::new(),
            action_executions: Vec::new(),
            start_timestamp: now,
        })
        .await
        .expect("create");
    store
        .traces()
        .add_component(
            "tr1",
            TraceComponentKind::ActionExecution,
            &TraceComponent {
                object_id: "wf".into(),
                reference: "core.local".into(),
                updated_at: now,
                caused_by: Some(CausedBy {
                    kind: "rule".into(),
                    id: "r1:ti1".into(),
                }),
            },
        )
        .await
        .expect("add");
}

async fn all_executions(s: &dyn Store) -> Vec<ExecutionRecord> {
    s.executions()
        .list(&ExecutionFilter::default(), Page::all())
        .await
        .expect("list")
        .items
}

async fn output(s: &dyn Store) -> Vec<NewOutput> {
    s.execution_output()
        .list("c1", None, None)
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.chunk)
        .collect()
}

async fn keys(s: &dyn Store) -> Vec<KeyValueRecord> {
    s.key_values()
        .list(None, None, Page::all())
        .await
        .expect("list")
        .items
}

async fn assert_same(source: &dyn Store, target: &dyn Store) {
    assert_eq!(all_executions(source).await, all_executions(target).await);
    assert_eq!(
        target
            .executions()
            .get("wf")
            .await
            .expect("get")
            .expect("copied")
            .children,
        ["c2", "c1"]
    );
    assert_eq!(output(source).await, output(target).await);
    assert_eq!(
        source.trigger_instances().get("ti1").await.expect("get"),
        target.trigger_instances().get("ti1").await.expect("get")
    );
    assert_eq!(
        source.rule_enforcements().get("re1").await.expect("get"),
        target.rule_enforcements().get("re1").await.expect("get")
    );
    assert_eq!(keys(source).await, keys(target).await);
    assert_eq!(
        source.api_keys().get("k1").await.expect("get"),
        target.api_keys().get("k1").await.expect("get")
    );
    assert_eq!(
        source.inquiries().get("i1").await.expect("get"),
        target.inquiries().get("i1").await.expect("get")
    );
    assert_eq!(
        source.traces().get("tr1").await.expect("get"),
        target.traces().get("tr1").await.expect("get")
    );
}

#[tokio::test]
async fn sqlite_to_sqlite_keeps_everything() {
    let clock = clock();
    let dir = tempfile::tempdir().expect("temp dir");
    let source = SqliteStore::open(
        SqliteOptions::file(dir.path().join("from.db")).with_clock(clock.clone()),
    )
    .await
    .expect("open");
    let target = SqliteStore::open(SqliteOptions::memory().with_clock(clock.clone()))
        .await
        .expect("open");
    fill(&source, clock.now()).await;
    let report = copy_store(&source, &target).await.expect("copy");
    assert_eq!(
        (
            report.executions,
            report.execution_output,
            report.key_values,
            report.traces
        ),
        (3, 1, 3, 1)
    );
    assert_same(&source, &target).await;

    // Copying again into the same target conflicts instead of duplicating.
    assert!(matches!(
        copy_store(&source, &target).await,
        Err(StoreError::Conflict { .. })
    ));
}

#[tokio::test]
async fn an_undrained_source_is_refused() {
    let clock = clock();
    let source = SqliteStore::open(SqliteOptions::memory().with_clock(clock.clone()))
        .await
        .expect("open");
    let target = SqliteStore::open(SqliteOptions::memory().with_clock(clock.clone()))
        .await
        .expect("open");
    let mut running = execution("busy", None, clock.now());
    running.status = ExecutionStatus::Running;
    source.executions().create(&running).await.expect("create");
    let err = copy_store(&source, &target).await.expect_err("refused");
    assert!(err.to_string().contains("busy"), "{err}");

    let source = SqliteStore::open(SqliteOptions::memory().with_clock(clock.clone()))
        .await
        .expect("open");
    source
        .queue()
        .enqueue(NewWorkItem::new("runner", json!({})))
        .await
        .expect("enqueue");
    let err = copy_store(&source, &target).await.expect_err("refused");
    assert!(err.to_string().contains("\"runner\""), "{err}");
    assert_eq!(
        target
            .executions()
            .list(&ExecutionFilter::default(), Page::all())
            .await
            .expect("list")
            .total,
        0,
        "nothing was copied"
    );
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn sqlite_to_postgres_keeps_everything() {
    use st2_core::store::postgres::{PgOptions, PgStore};
    let Ok(url) = std::env::var("ST2_TEST_PG_URL") else {
        eprintln!("ST2_TEST_PG_URL is not set: skipping the SQLite → PostgreSQL copy");
        return;
    };
    let clock = clock();
    let source = SqliteStore::open(SqliteOptions::memory().with_clock(clock.clone()))
        .await
        .expect("open");
    let target = PgStore::connect(
        PgOptions::new(url)
            .schema(format!("st2copy_{}", new_id()))
            .with_clock(clock.clone()),
    )
    .await
    .expect("connect");
    fill(&source, clock.now()).await;
    let result = copy_store(&source, &target).await;
    if result.is_ok() {
        assert_same(&source, &target).await;
    }
    target.drop_schema().await.expect("drop the test schema");
    result.expect("copy");
}
