//! The PostgreSQL store's own guarantees, beyond the cross-backend conformance suite: migrations
//! applied once when several nodes start together and refused when the database is newer,
//! claims exclusive across separate pools (separate "nodes"), wake-ups crossing nodes through
//! LISTEN/NOTIFY, recovery after the server kills every connection, and a round trip of each
//! aggregate (documents, derived children, NUL characters, the store clock for expiry).
//!
//! Needs `ST2_TEST_PG_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); without it every
//! test prints a notice and passes. Each test works in its own random schema and drops it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::{Map, Value, json};
use st2_core::clock::{Clock, ManualClock};
use st2_core::store::postgres::{LATEST_VERSION, PgOptions, PgStore};
use st2_core::store::*;

fn url() -> Option<String> {
    match std::env::var("ST2_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("ST2_TEST_PG_URL is not set: skipping the PostgreSQL store test");
            None
        }
    }
}

/// The URL with an `application_name` so a test can find its own server backends.
fn url_named(url: &str, name: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={name}")
}

fn fresh_schema() -> String {
    format!("st2t_{}", new_id())
}

/// Drops the schema even when the test panics.
struct SchemaGuard {
    url: String,
    schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let url = self.url.clone();
        let schema = self.schema.clone();
        // A fresh thread and runtime: this may run inside (or after) the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    let driver = tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .await;
                    drop(client);
                    let _ = driver.await;
                }
            });
        })
        .join();
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

async fn open(url: &str, schema: &str, clock: Arc<dyn Clock>) -> PgStore {
    PgStore::connect(
        PgOptions::new(url)
            .schema(schema)
            .with_clock(clock)
            .pool_size(8),
    )
    .await
    .expect("connect")
}

fn execution(id: &str, parent: Option<&str>, at: DateTime<Utc>) -> ExecutionRecord {
    let mut parameters = Map::new();
    // Key order and a NUL character must survive.
    parameters.insert("zeta".into(), json!(1));
    parameters.insert("alpha".into(), json!("a\u{0}b"));
    ExecutionRecord {
        id: id.into(),
        revision: 0,
        action_ref: "core.local".into(),
        action: json!({"ref": "core.local"}).into(),
        runner: json!({"name": "local-shell-cmd"}).into(),
        status: ExecutionStatus::Requested,
        parameters,
        result: Value::Null,
        context: Map::from_iter([("user".to_owned(), json!("stanley"))]),
        parent: parent.map(str::to_owned),
        children: vec!["ignored".into()],
        start_timestamp: at,
        end_timestamp: None,
        log: vec![],
        delay: None,
        notify: None,
        runner_info: None,
        rule: Some(json!({"ref": "pack.rule"}).into()),
        trigger: None,
        trigger_type: None,
        trigger_instance: None,
        workflow_execution: None,
        task_execution: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_nodes_starting_at_once_migrate_once() {
    let Some(url) = url() else { return };
    let schema = fresh_schema();
    let _guard = SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
    };
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        let schema = schema.clone();
        tasks.push(tokio::spawn(async move {
            PgStore::connect(PgOptions::new(url).schema(schema).pool_size(2)).await
        }));
    }
    let mut stores = Vec::new();
    for task in tasks {
        stores.push(task.await.expect("join").expect("every node connects"));
    }
    assert_eq!(stores[0].schema_version().await.unwrap(), LATEST_VERSION);
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".schema_migrations"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), LATEST_VERSION);

    // A database migrated by a newer build is refused.
    client
        .batch_execute(&format!(
            "INSERT INTO \"{schema}\".schema_migrations (version) VALUES (9999)"
        ))
        .await
        .unwrap();
    let err = PgStore::connect(PgOptions::new(url.clone()).schema(schema.clone()))
        .await
        .err();
    assert!(
        matches!(err, Some(StoreError::SchemaTooNew { found: 9999, supported }) if supported == LATEST_VERSION),
        "{err:?}"
    );
    stores[0].drop_schema().await.unwrap();
    // A dropped (closed) store refuses further calls.
    assert!(matches!(
        stores[0].executions().get("x").await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_round_trip() {
    let Some(url) = url() else { return };
    let schema = fresh_schema();
    let _guard = SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
    };
    let clock = Arc::new(ManualClock::new(start()));
    let store = open(&url, &schema, clock.clone()).await;
    assert_eq!(store.backend(), "postgres");

    // Executions: children derived in creation order, CAS on revision, exact timestamps.
    let t0 = start() + TimeDelta::microseconds(123_457);
    let parent = store
        .executions()
        .create(&execution("p1", None, t0))
        .await
        .unwrap();
    assert_eq!(parent.revision, 1);
    assert!(parent.children.is_empty());
    store
        .executions()
        .create_many(&[
            execution("c2", Some("p1"), t0 + TimeDelta::seconds(1)),
            execution("c1", Some("p1"), t0 + TimeDelta::seconds(2)),
        ])
        .await
        .unwrap();
    let got = store.executions().get("p1").await.unwrap().unwrap();
    assert_eq!(got.children, vec!["c2", "c1"]);
    assert_eq!(got.start_timestamp, t0);
    let keys: Vec<&String> = got.parameters.keys().collect();
    assert_eq!(keys, ["zeta", "alpha"]);
    assert_eq!(got.parameters["alpha"], json!("a\u{0}b"));
    let mut running = got.clone();
    running.status = ExecutionStatus::Running;
    let updated = store.executions().update(&running).await.unwrap();
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.children, vec!["c2", "c1"]);
    assert!(matches!(
        store.executions().update(&running).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .executions()
            .update(&execution("nope", None, t0))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.executions().create(&execution("p1", None, t0)).await,
        Err(StoreError::Conflict { .. })
    ));
    let listing = store
        .executions()
        .list(
            &ExecutionFilter {
                parent: ParentFilter::Of("p1".into()),
                sort: SortOrder::Ascending,
                ..Default::default()
            },
            Page::first(1),
        )
        .await
        .unwrap();
    assert_eq!(listing.total, 2);
    assert_eq!(listing.items[0].id, "c2");
    let listing = store
        .executions()
        .list(
            &ExecutionFilter {
                user: Some("stanley".into()),
                rule: Some("pack.rule".into()),
                statuses: vec![ExecutionStatus::Running],
                ..Default::default()
            },
            Page::all(),
        )
        .await
        .unwrap();
    assert_eq!(listing.total, 1);
    assert_eq!(listing.items[0].children, vec!["c2", "c1"]);

    // Output: seq order, NUL characters, filters.
    let chunk = |data: &str, output_type| NewOutput {
        execution_id: "p1".into(),
        action_ref: "core.local".into(),
        runner_ref: "local-shell-cmd".into(),
        timestamp: t0,
        output_type,
        data: data.into(),
    };
    store
        .execution_output()
        .append(&[
            chunk("one\n", OutputType::Stdout),
            chunk("err\u{0}\n", OutputType::Stderr),
            chunk("two\n", OutputType::Stdout),
        ])
        .await
        .unwrap();
    let all = store
        .execution_output()
        .list("p1", None, None)
        .await
        .unwrap();
    let data: Vec<&str> = all.iter().map(|c| c.chunk.data.as_str()).collect();
    assert_eq!(data, ["one\n", "err\u{0}\n", "two\n"]);
    let after = store
        .execution_output()
        .list("p1", Some(OutputType::Stdout), Some(all[0].seq))
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].chunk.data, "two\n");

    // Completed executions purge with their output.
    let mut done = updated.clone();
    done.status = ExecutionStatus::Succeeded;
    done.end_timestamp = Some(t0 + TimeDelta::seconds(5));
    store.executions().update(&done).await.unwrap();
    assert!(matches!(
        store.executions().purge_before(t0, 0).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        store
            .executions()
            .purge_before(t0 + TimeDelta::seconds(10), 100)
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .execution_output()
            .list("p1", None, None)
            .await
            .unwrap()
            .is_empty()
    );

    // Key-value pairs expire by the store clock; a replaced pair keeps its id.
    let pair = |id: &str, name: &str, value: &str, expire: Option<DateTime<Utc>>| KeyValueRecord {
        id: id.into(),
        scope: KeyScope::System,
        name: name.into(),
        value: value.into(),
        description: None,
        secret: false,
        expire_timestamp: expire,
    };
    assert!(
        store
            .key_values()
            .put(&pair("k1", "a.x", "1", None))
            .await
            .unwrap()
            .is_none()
    );
    let previous = store
        .key_values()
        .put(&pair(
            "k2",
            "a.x",
            "2",
            Some(start() + TimeDelta::seconds(10)),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(previous.value, "1");
    let now = store
        .key_values()
        .get(KeyScope::System, "a.x")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((now.id.as_str(), now.value.as_str()), ("k1", "2"));
    store
        .key_values()
        .put(&KeyValueRecord {
            scope: KeyScope::User,
            ..pair("k3", "bob:a.y", "3", None)
        })
        .await
        .unwrap();
    let listing = store
        .key_values()
        .list(None, Some("a"), Page::all())
        .await
        .unwrap();
    assert_eq!(listing.total, 1);
    let listing = store
        .key_values()
        .list(None, None, Page::all())
        .await
        .unwrap();
    let names: Vec<&str> = listing.items.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a.x", "bob:a.y"]);
    clock.advance(TimeDelta::seconds(10));
    assert!(
        store
            .key_values()
            .get(KeyScope::System, "a.x")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .key_values()
            .put(&pair("k4", "a.x", "4", None))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .key_values()
            .get(KeyScope::System, "a.x")
            .await
            .unwrap()
            .unwrap()
            .id,
        "k4"
    );

    // Tokens: expiry by the store clock, unique hash.
    let token = TokenRecord {
        id: "t1".into(),
        token_hash: "h1".into(),
        user: "stanley".into(),
        expiry: clock.now() + TimeDelta::seconds(60),
        metadata: Map::new(),
        created_at: clock.now(),
    };
    store.tokens().create(&token).await.unwrap();
    assert!(matches!(
        store
            .tokens()
            .create(&TokenRecord {
                id: "t2".into(),
                ..token.clone()
            })
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.tokens().get_by_hash("h1").await.unwrap(),
        Some(token.clone())
    );
    clock.advance(TimeDelta::seconds(60));
    assert_eq!(
        store.tokens().get_by_hash("h1").await.unwrap(),
        Some(token),
        "an expired token is kept until purged"
    );
    assert_eq!(store.tokens().purge_expired(10).await.unwrap(), 1);
    assert_eq!(store.tokens().get_by_hash("h1").await.unwrap(), None);

    // API keys.
    let key = ApiKeyRecord {
        id: "ak1".into(),
        key_hash: "kh1".into(),
        user: "stanley".into(),
        metadata: Map::new(),
        enabled: true,
        created_at: clock.now(),
    };
    store.api_keys().create(&key).await.unwrap();
    store.api_keys().set_enabled("ak1", false).await.unwrap();
    assert!(
        !store
            .api_keys()
            .get_by_hash("kh1")
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    assert!(matches!(
        store.api_keys().set_enabled("nope", true).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.api_keys().list(Page::all()).await.unwrap().total, 1);
    assert!(store.api_keys().delete("ak1").await.unwrap());

    // Workflows and tasks.
    let wf = WorkflowRecord {
        id: "wf1".into(),
        execution_id: "p1".into(),
        revision: 0,
        status: "running".into(),
        state: serde_json::value::to_raw_value(&json!({"b": 1, "a": 2})).expect("json"),
        created_at: clock.now(),
        updated_at: clock.now(),
    };
    let wf = store.workflows().create(&wf).await.unwrap();
    assert_eq!(wf.revision, 1);
    let wf2 = store.workflows().update(&wf).await.unwrap();
    assert_eq!(wf2.revision, 2);
    assert!(matches!(
        store.workflows().update(&wf).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.workflows().get_by_execution("p1").await.unwrap(),
        Some(wf2.clone())
    );
    for (id, name) in [("t-b", "b"), ("t-a", "a")] {
        store
            .workflows()
            .put_task(&TaskRecord {
                id: id.into(),
                workflow_id: "wf1".into(),
                task_id: name.into(),
                task_route: 0,
                status: "running".into(),
                doc: json!({}),
                created_at: clock.now(),
                updated_at: clock.now(),
            })
            .await
            .unwrap();
    }
    let mut task = store.workflows().get_task("t-b").await.unwrap().unwrap();
    task.status = "succeeded".into();
    store.workflows().put_task(&task).await.unwrap();
    let tasks = store.workflows().list_tasks("wf1").await.unwrap();
    let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["t-b", "t-a"]);
    assert_eq!(tasks[0].status, "succeeded");
    assert!(store.workflows().delete("wf1").await.unwrap());
    assert!(
        store
            .workflows()
            .list_tasks("wf1")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.workflows().delete("wf1").await.unwrap());

    // Inquiries resolve exactly once.
    let inquiry = InquiryRecord {
        id: "i1".into(),
        status: InquiryStatus::Pending,
        schema: json!({"type": "object"}),
        route: String::new(),
        ttl: 0,
        users: vec![],
        roles: vec![],
        parent: None,
        response: None,
        created_at: clock.now(),
        resolved_at: None,
    };
    store.inquiries().create(&inquiry).await.unwrap();
    let resolved = store
        .inquiries()
        .resolve(
            "i1",
            InquiryStatus::Succeeded,
            Some(json!({"ok": true})),
            clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(resolved.status, InquiryStatus::Succeeded);
    assert_eq!(resolved.response, Some(json!({"ok": true})));
    match store
        .inquiries()
        .resolve("i1", InquiryStatus::Timeout, None, clock.now())
        .await
    {
        Err(StoreError::Conflict { reason, .. }) => assert!(reason.contains("succeeded")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store
            .inquiries()
            .resolve("nope", InquiryStatus::Timeout, None, clock.now())
            .await,
        Err(StoreError::NotFound { .. })
    ));

    // Traces: concurrent appends all land, filters find by component.
    let trace = TraceRecord {
        id: "tr1".into(),
        trace_tag: "tag".into(),
        trigger_instances: vec![],
        rules: vec![],
        action_executions: vec![],
        start_timestamp: clock.now(),
    };
    store.traces().create(&trace).await.unwrap();
    let mut appends = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let at = clock.now();
        appends.push(tokio::spawn(async move {
            store
                .traces()
                .add_component(
                    "tr1",
                    TraceComponentKind::ActionExecution,
                    &TraceComponent {
                        object_id: format!("e{i}"),
                        reference: "core.local".into(),
                        updated_at: at,
                        caused_by: None,
                    },
                )
                .await
        }));
    }
    for append in appends {
        append.await.unwrap().unwrap();
    }
    let got = store.traces().get("tr1").await.unwrap().unwrap();
    assert_eq!(got.action_executions.len(), 20);
    let found = store
        .traces()
        .list(
            &TraceFilter {
                execution: Some("e7".into()),
                ..Default::default()
            },
            Page::all(),
        )
        .await
        .unwrap();
    assert_eq!(found.total, 1);
    assert!(matches!(
        store
            .traces()
            .add_component("nope", TraceComponentKind::Rule, &got.action_executions[0])
            .await,
        Err(StoreError::NotFound { .. })
    ));

    store.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_are_exclusive_across_nodes_and_leases_expire() {
    let Some(url) = url() else { return };
    let schema = fresh_schema();
    let _guard = SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
    };
    let clock = Arc::new(ManualClock::new(start()));
    let a = open(&url, &schema, clock.clone()).await;
    let b = open(&url, &schema, clock.clone()).await;
    const ITEMS: usize = 1000;
    for i in 0..ITEMS {
        a.queue()
            .enqueue(NewWorkItem::new("runner", json!({ "i": i })))
            .await
            .unwrap();
    }
    assert_eq!(a.queue().depth("runner").await.unwrap().ready, ITEMS as u64);
    let mut workers = Vec::new();
    for w in 0..8 {
        let store = if w % 2 == 0 { a.clone() } else { b.clone() };
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let mut request =
                    ClaimRequest::one("runner", format!("w{w}"), Duration::from_secs(60));
                request.max_items = 3;
                let leases = store.queue().claim(&request).await.unwrap();
                if leases.is_empty() {
                    break;
                }
                for lease in leases {
                    store.queue().finish(lease.reference()).await.unwrap();
                    got.push((lease.item.id, lease.fence));
                }
            }
            got
        }));
    }
    let mut items = HashSet::new();
    let mut fences = HashSet::new();
    for worker in workers {
        for (item, fence) in worker.await.unwrap() {
            assert!(items.insert(item), "item {item} claimed twice");
            assert!(fences.insert(fence), "fence {fence} issued twice");
        }
    }
    assert_eq!(items.len(), ITEMS);
    assert_eq!(
        a.queue().depth("runner").await.unwrap(),
        QueueDepth::default()
    );

    // Tags, not_before, and lease expiry by the store clock.
    let mut tagged = NewWorkItem::new("runner", json!("tagged"));
    tagged.required_tag = Some("gpu".into());
    a.queue().enqueue(tagged).await.unwrap();
    let mut later = NewWorkItem::new("runner", json!("later"));
    later.not_before = Some(clock.now() + TimeDelta::seconds(30));
    a.queue().enqueue(later).await.unwrap();
    let plain = ClaimRequest::one("runner", "w", Duration::from_secs(10));
    assert!(a.queue().claim(&plain).await.unwrap().is_empty());
    assert_eq!(
        a.queue().depth("runner").await.unwrap(),
        QueueDepth {
            ready: 1,
            delayed: 1,
            leased: 0
        }
    );
    let gpu = ClaimRequest {
        tags: vec!["gpu".into()],
        ..plain.clone()
    };
    let lease = a.queue().claim(&gpu).await.unwrap().remove(0);
    assert_eq!(lease.item.payload, json!("tagged"));
    assert_eq!(lease.expires_at, clock.now() + TimeDelta::seconds(10));
    clock.advance(TimeDelta::seconds(5));
    let expiry = a
        .queue()
        .heartbeat(lease.reference(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(expiry, clock.now() + TimeDelta::seconds(10));
    clock.advance(TimeDelta::seconds(10));
    assert!(matches!(
        b.queue()
            .heartbeat(lease.reference(), Duration::from_secs(10))
            .await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(b.queue().reap_expired().await.unwrap(), 1);
    let again = b.queue().claim(&gpu).await.unwrap().remove(0);
    assert_eq!(again.item.id, lease.item.id);
    assert_eq!(again.item.attempts, 2);
    assert!(again.fence > lease.fence);
    assert!(matches!(
        a.queue().finish(lease.reference()).await,
        Err(StoreError::LeaseLost { .. })
    ));
    b.queue().release(again.reference(), None).await.unwrap();
    clock.advance(TimeDelta::seconds(30));
    let both = a
        .queue()
        .claim(&ClaimRequest {
            max_items: 5,
            ..gpu.clone()
        })
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    assert!(matches!(
        a.queue()
            .claim(&ClaimRequest {
                max_items: 0,
                ..gpu.clone()
            })
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        a.queue()
            .heartbeat(both[0].reference(), Duration::from_secs(u64::MAX))
            .await,
        Err(StoreError::Invalid(_))
    ));
    a.drop_schema().await.unwrap();
}

async fn wait_listening(store: &PgStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.is_listening() {
        assert!(Instant::now() < deadline, "the listener never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enqueue_on_one_node_wakes_a_waiter_on_another() {
    let Some(url) = url() else { return };
    let schema = fresh_schema();
    let _guard = SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
    };
    let clock: Arc<dyn Clock> = Arc::new(st2_core::clock::SystemClock);
    let a = open(&url, &schema, clock.clone()).await;
    let b = open(&url, &schema, clock).await;
    wait_listening(&a).await;
    let waiter = {
        let a = a.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            a.queue()
                .wait_for_work("remote", Duration::from_secs(20))
                .await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.queue()
        .enqueue(NewWorkItem::new("remote", json!(1)))
        .await
        .unwrap();
    let waited = waiter.await.unwrap();
    assert!(waited < Duration::from_secs(10), "woke after {waited:?}");
    a.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovers_after_the_server_kills_every_connection() {
    let Some(url) = url() else { return };
    let schema = fresh_schema();
    let _guard = SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
    };
    let clock: Arc<dyn Clock> = Arc::new(st2_core::clock::SystemClock);
    let store = open(&url_named(&url, &schema), &schema, clock.clone()).await;
    let other = open(&url, &schema, clock).await;
    wait_listening(&store).await;
    for i in 0..20 {
        store
            .queue()
            .enqueue(NewWorkItem::new("q", json!(i)))
            .await
            .unwrap();
    }
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut claimed = HashMap::new();
    for round in 0..3 {
        let killed = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = $1",
                &[&schema],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        assert!(killed >= 1, "round {round}: nothing to kill");
        // The pool replaces the dead connections: the next calls work (a call already running
        // on a killed connection may fail, as Unavailable).
        let mut ok = false;
        for _ in 0..5 {
            match store
                .queue()
                .claim(&ClaimRequest::one("q", "w", Duration::from_secs(60)))
                .await
            {
                Ok(leases) => {
                    for lease in leases {
                        claimed.insert(lease.item.id, lease.fence);
                        store.queue().finish(lease.reference()).await.unwrap();
                    }
                    ok = true;
                    break;
                }
                Err(e) => assert!(e.is_transient(), "{e:?}"),
            }
        }
        assert!(ok, "round {round}: the store did not recover");
    }
    assert_eq!(claimed.len(), 3);
    // The listener reconnected: a remote enqueue still wakes this node.
    wait_listening(&store).await;
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            store
                .queue()
                .wait_for_work("wake", Duration::from_secs(20))
                .await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    other
        .queue()
        .enqueue(NewWorkItem::new("wake", json!(1)))
        .await
        .unwrap();
    assert!(waiter.await.unwrap() < Duration::from_secs(10));
    other.drop_schema().await.unwrap();
}
