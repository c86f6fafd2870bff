//! The store contract, one suite for every backend: SQLite on a file and in memory always,
//! PostgreSQL when `ST2_TEST_PG_URL` is set (CI sets it). Each test gets a fresh store and a
//! manual clock.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta};
use serde_json::{Map, Value, json};
use st2_core::clock::{Clock, ManualClock};
use st2_core::rules::enforce::{EnforcementStatus, RuleEnforcement, RuleSpecRef};
use st2_core::store::retention::{RetentionPolicy, purge};
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::*;

// ---------------------------------------------------------------------------------------------
// Harness

struct Harness {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    reopen: Reopen,
}

enum Reopen {
    File(tempfile::TempDir),
    Memory,
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        schema: String,
    },
}

fn start_time() -> Timestamp {
    DateTime::from_timestamp(1_750_000_000, 123_456_000).expect("valid timestamp")
}

impl Harness {
    async fn sqlite_file() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(start_time()));
        let store = SqliteStore::open(
            SqliteOptions::file(dir.path().join("st2.db")).with_clock(clock.clone()),
        )
        .await
        .expect("open sqlite file store");
        Harness {
            store: Arc::new(store),
            clock,
            reopen: Reopen::File(dir),
        }
    }

    async fn sqlite_memory() -> Harness {
        let clock = Arc::new(ManualClock::new(start_time()));
        let store = SqliteStore::open(SqliteOptions::memory().with_clock(clock.clone()))
            .await
            .expect("open sqlite memory store");
        Harness {
            store: Arc::new(store),
            clock,
            reopen: Reopen::Memory,
        }
    }

    #[cfg(feature = "postgres")]
    async fn postgres() -> Option<Harness> {
        let Ok(url) = std::env::var("ST2_TEST_PG_URL") else {
            eprintln!("ST2_TEST_PG_URL is not set: skipping the PostgreSQL store conformance run");
            return None;
        };
        let schema = format!("st2conf_{}", new_id());
        let clock = Arc::new(ManualClock::new(start_time()));
        let store = Self::connect_pg(&url, &schema, clock.clone()).await;
        Some(Harness {
            store,
            clock,
            reopen: Reopen::Postgres { url, schema },
        })
    }

    #[cfg(feature = "postgres")]
    async fn connect_pg(url: &str, schema: &str, clock: Arc<ManualClock>) -> Arc<dyn Store> {
        use st2_core::store::postgres::{PgOptions, PgStore};
        let store = PgStore::connect(
            PgOptions::new(url)
                .schema(schema)
                .with_clock(clock as Arc<dyn Clock>),
        )
        .await
        .expect("connect to ST2_TEST_PG_URL");
        Arc::new(store)
    }

    /// Close the store and open the same database again (file and PostgreSQL only).
    async fn reopened(&self) -> Option<Arc<dyn Store>> {
        match &self.reopen {
            Reopen::Memory => None,
            Reopen::File(dir) => {
                self.store.close().await.expect("close");
                let store = SqliteStore::open(
                    SqliteOptions::file(dir.path().join("st2.db")).with_clock(self.clock.clone()),
                )
                .await
                .expect("reopen sqlite file store");
                Some(Arc::new(store))
            }
            #[cfg(feature = "postgres")]
            Reopen::Postgres { url, schema } => {
                self.store.close().await.expect("close");
                Some(Self::connect_pg(url, schema, self.clock.clone()).await)
            }
        }
    }

    async fn finish(self) {
        let _ = self.store.close().await;
        #[cfg(feature = "postgres")]
        if let Reopen::Postgres { url, schema } = &self.reopen {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect to drop the test schema");
            tokio::spawn(connection);
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await
                .expect("drop the test schema");
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite_file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let h = super::Harness::sqlite_file().await;
                    super::$name(&h).await;
                    h.finish().await;
                }
            )*
        }
        mod sqlite_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let h = super::Harness::sqlite_memory().await;
                    super::$name(&h).await;
                    h.finish().await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(h) = super::Harness::postgres().await else { return };
                    super::$name(&h).await;
                    h.finish().await;
                }
            )*
        }
    };
}

conformance!(
    trigger_instances_round_trip_filter_sort_and_page,
    trigger_instances_refuse_duplicates_and_unknown_ids,
    executions_round_trip_every_field,
    executions_update_is_compare_and_set,
    executions_derive_children_in_creation_order,
    executions_filter_like_the_api,
    executions_create_many_is_all_or_nothing,
    executions_purge_only_old_completed_ones_with_their_output,
    output_appends_in_order_and_filters,
    rule_enforcements_round_trip_and_filter,
    key_values_upsert_scope_prefix_and_expiry,
    tokens_by_hash_with_expiry,
    api_keys_crud,
    workflows_compare_and_set_and_tasks,
    workflows_save_parts_and_tasks_in_one_write,
    inquiries_resolve_exactly_once,
    traces_append_components_concurrently_and_filter,
    queue_claims_in_order_with_tags_and_delays,
    queue_fences_refuse_stale_holders_after_expiry,
    queue_race_eight_claimers_ten_thousand_items,
    queue_wakes_waiters_on_enqueue,
    queue_leads_one_holder_per_role,
    acknowledged_writes_survive_reopen,
    retention_purges_by_ttl_in_batches,
    batch_writes_land_together_in_order,
    batch_is_all_or_nothing,
    batch_enqueue_wakes_waiters,
    batch_saves_a_workflow_with_the_children_it_records,
    executions_update_moves_every_filter,
);

// ---------------------------------------------------------------------------------------------
// Builders

fn at(h: &Harness, secs: i64) -> Timestamp {
    h.now() + TimeDelta::seconds(secs)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("expected an object, got {other}"),
    }
}

fn instance(id: &str, trigger: &str, t: Timestamp) -> TriggerInstanceRecord {
    TriggerInstanceRecord {
        id: id.to_owned(),
        trigger: trigger.to_owned(),
        trigger_type: Some(format!("{trigger}_type")),
        payload: json!({"n": id, "nested": {"list": [1, 2.5, "é", null, true]}}),
        occurrence_time: t,
        status: TriggerInstanceStatus::Pending,
    }
}

fn execution(id: &str, action: &str, start: Timestamp) -> ExecutionRecord {
    ExecutionRecord {
        id: id.to_owned(),
        revision: 0,
        action_ref: action.to_owned(),
        action: json!({"ref": action, "runner_type": "local-shell-cmd", "parameters": {}}).into(),
        runner: json!({"name": "local-shell-cmd"}).into(),
        status: ExecutionStatus::Requested,
        parameters: obj(json!({"cmd": "echo hi"})),
        result: json!({}),
        context: obj(json!({"user": "stanley", "pack": "core"})),
        parent: None,
        children: Vec::new(),
        start_timestamp: start,
        end_timestamp: None,
        log: vec![StatusChange {
            timestamp: start,
            status: ExecutionStatus::Requested,
        }],
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

fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| id(i).to_owned()).collect()
}

fn enforcement(id: &str, rule: &str, ti: &str, t: Timestamp) -> RuleEnforcementRecord {
    RuleEnforcementRecord {
        id: id.to_owned(),
        enforcement: RuleEnforcement {
            trigger_instance_id: ti.to_owned(),
            rule: RuleSpecRef {
                reference: rule.to_owned(),
                id: Some(format!("id-{rule}")),
                uid: format!("rule:{}", rule.replace('.', ":")),
            },
            execution_id: None,
            failure_reason: None,
            status: EnforcementStatus::Succeeded,
            enforced_at: t,
        },
    }
}

fn pair(scope: KeyScope, name: &str, value: &str) -> KeyValueRecord {
    KeyValueRecord {
        id: new_id(),
        scope,
        name: name.to_owned(),
        value: value.to_owned(),
        description: None,
        secret: false,
        expire_timestamp: None,
    }
}

fn is_conflict<T: std::fmt::Debug>(r: StoreResult<T>) -> bool {
    matches!(r, Err(StoreError::Conflict { .. }))
}

fn is_not_found<T: std::fmt::Debug>(r: StoreResult<T>) -> bool {
    matches!(r, Err(StoreError::NotFound { .. }))
}

fn is_lease_lost<T: std::fmt::Debug>(r: StoreResult<T>) -> bool {
    matches!(r, Err(StoreError::LeaseLost { .. }))
}

// ---------------------------------------------------------------------------------------------
// Trigger instances

async fn trigger_instances_round_trip_filter_sort_and_page(h: &Harness) {
    let s = h.store.trigger_instances();
    for i in 0..10 {
        let trigger = if i % 2 == 0 { "core.even" } else { "core.odd" };
        s.create(&instance(&format!("ti{i:02}"), trigger, at(h, i)))
            .await
            .expect("create");
    }
    let got = s.get("ti03").await.expect("get").expect("exists");
    assert_eq!(got, instance("ti03", "core.odd", at(h, 3)));
    assert!(s.get("nope").await.expect("get").is_none());

    s.set_status("ti03", TriggerInstanceStatus::Processed)
        .await
        .expect("set status");
    assert_eq!(
        s.get("ti03").await.expect("get").expect("exists").status,
        TriggerInstanceStatus::Processed
    );

    // Default sort: newest first; total ignores paging.
    let page = s
        .list(&TriggerInstanceFilter::default(), Page::first(3))
        .await
        .expect("list");
    assert_eq!(page.total, 10);
    assert_eq!(ids(&page.items, |i| &i.id), ["ti09", "ti08", "ti07"]);

    let filter = TriggerInstanceFilter {
        trigger: Some("core.even".into()),
        sort: SortOrder::Ascending,
        ..Default::default()
    };
    let page = s
        .list(
            &filter,
            Page {
                limit: Some(2),
                offset: 1,
            },
        )
        .await
        .expect("list");
    assert_eq!(page.total, 5);
    assert_eq!(ids(&page.items, |i| &i.id), ["ti02", "ti04"]);
    // The total of the last page, short or empty, whatever the offset.
    for (limit, offset, items) in [
        (Some(3), 3, 2),
        (Some(2), 4, 1),
        (Some(5), 0, 5),
        (Some(2), 5, 0),
        (Some(2), 9, 0),
        (None, 2, 3),
        (None, 7, 0),
        (Some(0), 0, 0),
    ] {
        let page = s.list(&filter, Page { limit, offset }).await.expect("list");
        assert_eq!(
            (page.items.len(), page.total),
            (items, 5),
            "limit {limit:?} offset {offset}"
        );
    }

    let filter = TriggerInstanceFilter {
        trigger_type: Some("core.odd_type".into()),
        timestamp_gt: Some(at(h, 3)),
        timestamp_lt: Some(at(h, 9)),
        ..Default::default()
    };
    let page = s.list(&filter, Page::all()).await.expect("list");
    assert_eq!(ids(&page.items, |i| &i.id), ["ti07", "ti05"]);

    let filter = TriggerInstanceFilter {
        statuses: vec![TriggerInstanceStatus::Processed],
        ..Default::default()
    };
    assert_eq!(
        ids(
            &s.list(&filter, Page::all()).await.expect("list").items,
            |i| &i.id
        ),
        ["ti03"]
    );
    // The statuses the SQLite index holds (all but `processed`), alone and with a trigger.
    let filter = TriggerInstanceFilter {
        statuses: vec![
            TriggerInstanceStatus::Pending,
            TriggerInstanceStatus::Processing,
        ],
        sort: SortOrder::Ascending,
        ..Default::default()
    };
    let page = s.list(&filter, Page::first(3)).await.expect("list");
    assert_eq!(ids(&page.items, |i| &i.id), ["ti00", "ti01", "ti02"]);
    assert_eq!(page.total, 9);
    let filter = TriggerInstanceFilter {
        statuses: vec![TriggerInstanceStatus::Pending],
        trigger: Some("core.odd".into()),
        ..Default::default()
    };
    let page = s.list(&filter, Page::all()).await.expect("list");
    assert_eq!(
        ids(&page.items, |i| &i.id),
        ["ti09", "ti07", "ti05", "ti01"]
    );
    let filter = TriggerInstanceFilter {
        ids: vec!["ti01".into(), "ti04".into(), "missing".into()],
        ..Default::default()
    };
    assert_eq!(s.list(&filter, Page::all()).await.expect("list").total, 2);

    // Retention deletes in batches.
    assert_eq!(s.purge_before(at(h, 5), 3).await.expect("purge"), 3);
    assert_eq!(s.purge_before(at(h, 5), 3).await.expect("purge"), 2);
    assert_eq!(s.purge_before(at(h, 5), 3).await.expect("purge"), 0);
    assert_eq!(
        s.list(&TriggerInstanceFilter::default(), Page::all())
            .await
            .expect("list")
            .total,
        5
    );
}

async fn trigger_instances_refuse_duplicates_and_unknown_ids(h: &Harness) {
    let s = h.store.trigger_instances();
    s.create(&instance("dup", "core.t", h.now()))
        .await
        .expect("create");
    assert!(is_conflict(
        s.create(&instance("dup", "core.other", h.now())).await
    ));
    assert_eq!(
        s.get("dup").await.expect("get").expect("kept").trigger,
        "core.t"
    );
    assert!(is_not_found(
        s.set_status("missing", TriggerInstanceStatus::Processing)
            .await
    ));
}

// ---------------------------------------------------------------------------------------------
// Executions

async fn executions_round_trip_every_field(h: &Harness) {
    let s = h.store.executions();
    let mut full = execution("e-full", "examples.full", h.now());
    full.status = ExecutionStatus::Succeeded;
    full.result = json!({"stdout": "héllo\n", "return_code": 0, "big": [1, 2, {"x": null}]});
    full.end_timestamp = Some(at(h, 2));
    full.delay = Some(1500);
    full.notify = Some(json!({"on-complete": {"routes": ["slack"]}}));
    full.runner_info = Some(json!({"hostname": "node1", "pid": 42}));
    full.rule = Some(json!({"ref": "examples.r", "id": "r1"}).into());
    full.trigger = Some(json!({"ref": "core.t"}).into());
    full.trigger_type = Some(json!({"ref": "core.tt"}).into());
    full.trigger_instance = Some(json!({"id": "ti1"}));
    full.workflow_execution = Some("wf1".into());
    full.task_execution = Some("task1".into());
    full.log.push(StatusChange {
        timestamp: at(h, 2),
        status: ExecutionStatus::Succeeded,
    });
    let created = s.create(&full).await.expect("create");
    assert_eq!(created.revision, 1);
    let mut expected = full.clone();
    expected.revision = 1;
    assert_eq!(created, expected);
    assert_eq!(s.get("e-full").await.expect("get"), Some(expected));
    assert!(s.get("missing").await.expect("get").is_none());
    assert!(is_conflict(s.create(&full).await));
}

async fn executions_update_is_compare_and_set(h: &Harness) {
    let s = h.store.executions();
    let created = s
        .create(&execution("e1", "core.local", h.now()))
        .await
        .expect("create");
    let mut running = created.clone();
    running.status = ExecutionStatus::Running;
    let updated = s.update(&running).await.expect("update");
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.status, ExecutionStatus::Running);

    // A writer holding the old revision loses.
    let mut stale = created.clone();
    stale.status = ExecutionStatus::Canceled;
    assert!(is_conflict(s.update(&stale).await));
    let stored = s.get("e1").await.expect("get").expect("exists");
    assert_eq!(stored.status, ExecutionStatus::Running);
    assert_eq!(stored.revision, 2);

    let mut unknown = execution("ghost", "core.local", h.now());
    unknown.revision = 1;
    assert!(is_not_found(s.update(&unknown).await));

    // Concurrent updates from the same revision: exactly one wins.
    let base = s.get("e1").await.expect("get").expect("exists");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = h.store.clone();
        let mut attempt = base.clone();
        attempt.result = json!({"writer": i});
        tasks.push(tokio::spawn(async move {
            store.executions().update(&attempt).await.is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.expect("join"));
    }
    assert_eq!(wins, 1);
    assert_eq!(s.get("e1").await.expect("get").expect("exists").revision, 3);
}

async fn executions_derive_children_in_creation_order(h: &Harness) {
    let s = h.store.executions();
    s.create(&execution("parent", "examples.wf", h.now()))
        .await
        .expect("create");
    // Children created with later ids first, to prove order is creation order, not id order.
    for (i, id) in ["c3", "c1", "c2"].iter().enumerate() {
        let mut child = execution(id, "core.local", at(h, i as i64 + 1));
        child.parent = Some("parent".into());
        child.children = vec!["ignored".into()];
        let created = s.create(&child).await.expect("create child");
        assert!(created.children.is_empty());
    }
    let parent = s.get("parent").await.expect("get").expect("exists");
    assert_eq!(parent.children, ["c3", "c1", "c2"]);
    assert_eq!(
        parent.revision, 1,
        "adding children does not bump the parent"
    );
    // The same record without its children, for readers that do not need them.
    let alone = s
        .get_without_children("parent")
        .await
        .expect("get")
        .expect("exists");
    assert!(alone.children.is_empty());
    let mut whole = parent.clone();
    whole.children.clear();
    assert_eq!(alone, whole);
    assert!(s.get_without_children("nope").await.expect("get").is_none());
    let listed = s
        .list(
            &ExecutionFilter {
                ids: vec!["parent".into()],
                ..Default::default()
            },
            Page::all(),
        )
        .await
        .expect("list");
    assert_eq!(listed.items[0].children, ["c3", "c1", "c2"]);
    let kids = s
        .list(
            &ExecutionFilter {
                parent: ParentFilter::Of("parent".into()),
                sort: SortOrder::Ascending,
                ..Default::default()
            },
            Page::all(),
        )
        .await
        .expect("list");
    assert_eq!(ids(&kids.items, |e| &e.id), ["c3", "c1", "c2"]);
    let top = s
        .list(
            &ExecutionFilter {
                parent: ParentFilter::TopLevel,
                ..Default::default()
            },
            Page::all(),
        )
        .await
        .expect("list");
    assert_eq!(ids(&top.items, |e| &e.id), ["parent"]);
}

async fn executions_filter_like_the_api(h: &Harness) {
    let s = h.store.executions();
    let mut records = Vec::new();
    for i in 0..12i64 {
        let action = ["core.local", "core.http", "examples.wf"][(i % 3) as usize];
        let mut e = execution(&format!("x{i:02}"), action, at(h, i));
        e.status = if i % 2 == 0 {
            ExecutionStatus::Succeeded
        } else {
            ExecutionStatus::Failed
        };
        e.context
            .insert("user".into(), json!(if i < 6 { "alice" } else { "bob" }));
        e.runner =
            json!({"name": if i % 3 == 1 { "http-request" } else { "local-shell-cmd" }}).into();
        if i % 4 == 0 {
            e.rule = Some(json!({"ref": "examples.r", "id": "r1"}).into());
            e.trigger = Some(json!({"ref": "core.t"}).into());
            e.trigger_type = Some(json!({"ref": "core.st2.webhook"}).into());
            e.trigger_instance = Some(json!({"id": format!("ti{i}")}));
        }
        records.push(e);
    }
    s.create_many(&records).await.expect("create many");

    let list = |f: ExecutionFilter| async move {
        let listing = s.list(&f, Page::all()).await.expect("list");
        assert_eq!(listing.total as usize, listing.items.len());
        ids(&listing.items, |e| &e.id)
    };
    assert_eq!(
        list(ExecutionFilter::default()).await.len(),
        12,
        "no filter: everything"
    );
    assert_eq!(
        list(ExecutionFilter {
            action: Some("core.http".into()),
            ..Default::default()
        })
        .await,
        ["x10", "x07", "x04", "x01"]
    );
    assert_eq!(
        list(ExecutionFilter {
            action: Some("core.http".into()),
            statuses: vec![ExecutionStatus::Succeeded],
            sort: SortOrder::Ascending,
            ..Default::default()
        })
        .await,
        ["x04", "x10"]
    );
    assert_eq!(
        list(ExecutionFilter {
            statuses: vec![ExecutionStatus::Failed, ExecutionStatus::Succeeded],
            user: Some("alice".into()),
            ..Default::default()
        })
        .await,
        ["x05", "x04", "x03", "x02", "x01", "x00"]
    );
    assert_eq!(
        list(ExecutionFilter {
            runner: Some("http-request".into()),
            user: Some("bob".into()),
            ..Default::default()
        })
        .await,
        ["x10", "x07"]
    );
    assert_eq!(
        list(ExecutionFilter {
            rule: Some("examples.r".into()),
            ..Default::default()
        })
        .await,
        ["x08", "x04", "x00"]
    );
    assert_eq!(
        list(ExecutionFilter {
            trigger: Some("core.t".into()),
            trigger_type: Some("core.st2.webhook".into()),
            trigger_instance: Some("ti4".into()),
            ..Default::default()
        })
        .await,
        ["x04"]
    );
    assert_eq!(
        list(ExecutionFilter {
            timestamp_gt: Some(at(h, 2)),
            timestamp_lt: Some(at(h, 6)),
            ..Default::default()
        })
        .await,
        ["x05", "x04", "x03"]
    );
    assert_eq!(
        list(ExecutionFilter {
            statuses: vec![ExecutionStatus::Running],
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    // A status the SQLite index leaves out (`succeeded`) and ones it holds, alone and with
    // other filters, newest first and oldest first.
    assert_eq!(
        list(ExecutionFilter {
            statuses: vec![ExecutionStatus::Failed],
            ..Default::default()
        })
        .await,
        ["x11", "x09", "x07", "x05", "x03", "x01"]
    );
    assert_eq!(
        list(ExecutionFilter {
            statuses: vec![ExecutionStatus::Failed, ExecutionStatus::Running],
            action: Some("core.http".into()),
            sort: SortOrder::Ascending,
            ..Default::default()
        })
        .await,
        ["x01", "x07"]
    );
    assert_eq!(
        list(ExecutionFilter {
            statuses: vec![ExecutionStatus::Succeeded],
            user: Some("bob".into()),
            ..Default::default()
        })
        .await,
        ["x10", "x08", "x06"]
    );
    let failed = s
        .list(
            &ExecutionFilter {
                statuses: vec![ExecutionStatus::Failed],
                ..Default::default()
            },
            Page {
                limit: Some(2),
                offset: 1,
            },
        )
        .await
        .expect("list");
    assert_eq!(ids(&failed.items, |e| &e.id), ["x09", "x07"]);
    assert_eq!(failed.total, 6);

    // Paging keeps the total.
    let page = s
        .list(
            &ExecutionFilter::default(),
            Page {
                limit: Some(5),
                offset: 10,
            },
        )
        .await
        .expect("list");
    assert_eq!(page.total, 12);
    assert_eq!(ids(&page.items, |e| &e.id), ["x01", "x00"]);

    // Equal start timestamps still give a stable order.
    let same = at(h, 100);
    for id in ["t-b", "t-a", "t-c"] {
        s.create(&execution(id, "core.same", same))
            .await
            .expect("create");
    }
    let first = list(ExecutionFilter {
        action: Some("core.same".into()),
        ..Default::default()
    })
    .await;
    let second = list(ExecutionFilter {
        action: Some("core.same".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(first.len(), 3);
    assert_eq!(first, second);
}

async fn executions_create_many_is_all_or_nothing(h: &Harness) {
    let s = h.store.executions();
    s.create(&execution("exists", "core.local", h.now()))
        .await
        .expect("create");
    let batch = vec![
        execution("new1", "core.local", h.now()),
        execution("exists", "core.local", h.now()),
        execution("new2", "core.local", h.now()),
    ];
    assert!(s.create_many(&batch).await.is_err());
    assert!(s.get("new1").await.expect("get").is_none());
    assert!(s.get("new2").await.expect("get").is_none());
    s.create_many(&[
        execution("new1", "core.local", h.now()),
        execution("new2", "core.local", h.now()),
    ])
    .await
    .expect("create many");
    assert_eq!(
        s.get("new2").await.expect("get").expect("exists").revision,
        1
    );
}

async fn executions_purge_only_old_completed_ones_with_their_output(h: &Harness) {
    let s = h.store.executions();
    let mut old_done = execution("old-done", "core.local", at(h, -100));
    old_done.status = ExecutionStatus::Succeeded;
    old_done.end_timestamp = Some(at(h, -90));
    let mut old_running = execution("old-running", "core.local", at(h, -100));
    old_running.status = ExecutionStatus::Running;
    let mut ended_late = execution("ended-late", "core.local", at(h, -100));
    ended_late.status = ExecutionStatus::Failed;
    ended_late.end_timestamp = Some(at(h, 10));
    let mut new_done = execution("new-done", "core.local", at(h, 5));
    new_done.status = ExecutionStatus::Succeeded;
    new_done.end_timestamp = Some(at(h, 6));
    s.create_many(&[old_done, old_running, ended_late, new_done])
        .await
        .expect("create");
    h.store
        .execution_output()
        .append(&[NewOutput {
            execution_id: "old-done".into(),
            action_ref: "core.local".into(),
            runner_ref: "local-shell-cmd".into(),
            timestamp: at(h, -95),
            output_type: OutputType::Stdout,
            data: "bye\n".into(),
        }])
        .await
        .expect("append");

    assert_eq!(s.purge_before(h.now(), 10).await.expect("purge"), 1);
    assert!(s.get("old-done").await.expect("get").is_none());
    assert!(s.get("old-running").await.expect("get").is_some());
    assert!(s.get("ended-late").await.expect("get").is_some());
    assert!(s.get("new-done").await.expect("get").is_some());
    assert!(
        h.store
            .execution_output()
            .list("old-done", None, None)
            .await
            .expect("list")
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Output

async fn output_appends_in_order_and_filters(h: &Harness) {
    let o = h.store.execution_output();
    let line = |exec: &str, kind: OutputType, data: &str, secs: i64| NewOutput {
        execution_id: exec.into(),
        action_ref: "core.local".into(),
        runner_ref: "local-shell-cmd".into(),
        timestamp: at(h, secs),
        output_type: kind,
        data: data.into(),
    };
    o.append(&[
        line("a", OutputType::Stdout, "one\n", 1),
        line("a", OutputType::Stderr, "warn\n", 2),
        line("b", OutputType::Stdout, "other\n", 2),
    ])
    .await
    .expect("append");
    o.append(&[line("a", OutputType::Stdout, "two\n", 3)])
        .await
        .expect("append");

    let all = o.list("a", None, None).await.expect("list");
    let data: Vec<_> = all.iter().map(|c| c.chunk.data.as_str()).collect();
    assert_eq!(data, ["one\n", "warn\n", "two\n"]);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(all[0].chunk, line("a", OutputType::Stdout, "one\n", 1));

    let stdout = o
        .list("a", Some(OutputType::Stdout), None)
        .await
        .expect("list");
    assert_eq!(stdout.len(), 2);
    let after = o.list("a", None, Some(all[0].seq)).await.expect("list");
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].chunk.data, "warn\n");

    assert_eq!(o.purge_before(at(h, 3), 100).await.expect("purge"), 3);
    assert_eq!(o.list("a", None, None).await.expect("list").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Rule enforcements

async fn rule_enforcements_round_trip_and_filter(h: &Harness) {
    let s = h.store.rule_enforcements();
    for i in 0..6i64 {
        let rule = if i < 4 { "examples.a" } else { "examples.b" };
        let mut e = enforcement(&format!("re{i}"), rule, &format!("ti{i}"), at(h, i));
        if i == 5 {
            e.enforcement.status = EnforcementStatus::Failed;
            e.enforcement.failure_reason = Some("boom".into());
        }
        s.create(&e).await.expect("create");
    }
    assert!(is_conflict(
        s.create(&enforcement("re0", "x.y", "t", h.now())).await
    ));
    assert_eq!(
        s.get("re5").await.expect("get"),
        Some({
            let mut e = enforcement("re5", "examples.b", "ti5", at(h, 5));
            e.enforcement.status = EnforcementStatus::Failed;
            e.enforcement.failure_reason = Some("boom".into());
            e
        })
    );
    s.set_execution("re1", "exec-1").await.expect("set");
    assert!(is_not_found(s.set_execution("nope", "exec-1").await));
    assert_eq!(
        s.get("re1")
            .await
            .expect("get")
            .expect("exists")
            .enforcement
            .execution_id
            .as_deref(),
        Some("exec-1")
    );

    let list = |f: RuleEnforcementFilter| async move {
        ids(&s.list(&f, Page::all()).await.expect("list").items, |e| {
            &e.id
        })
    };
    assert_eq!(
        list(RuleEnforcementFilter {
            rule_ref: Some("examples.a".into()),
            ..Default::default()
        })
        .await,
        ["re3", "re2", "re1", "re0"]
    );
    assert_eq!(
        list(RuleEnforcementFilter {
            rule_id: Some("id-examples.b".into()),
            sort: SortOrder::Ascending,
            ..Default::default()
        })
        .await,
        ["re4", "re5"]
    );
    assert_eq!(
        list(RuleEnforcementFilter {
            execution: Some("exec-1".into()),
            ..Default::default()
        })
        .await,
        ["re1"]
    );
    assert_eq!(
        list(RuleEnforcementFilter {
            trigger_instance: Some("ti2".into()),
            ..Default::default()
        })
        .await,
        ["re2"]
    );
    assert_eq!(
        list(RuleEnforcementFilter {
            enforced_at_gt: Some(at(h, 1)),
            enforced_at_lt: Some(at(h, 4)),
            ..Default::default()
        })
        .await,
        ["re3", "re2"]
    );
    let page = s
        .list(&RuleEnforcementFilter::default(), Page::first(2))
        .await
        .expect("list");
    assert_eq!((page.items.len(), page.total), (2, 6));
    assert_eq!(s.purge_before(at(h, 2), 1).await.expect("purge"), 1);
    assert_eq!(s.purge_before(at(h, 2), 10).await.expect("purge"), 1);
    assert!(s.get("re1").await.expect("get").is_none());
}

// ---------------------------------------------------------------------------------------------
// Key-value pairs

async fn key_values_upsert_scope_prefix_and_expiry(h: &Harness) {
    let s = h.store.key_values();
    assert!(
        s.put(&pair(KeyScope::System, "app.url", "http://a"))
            .await
            .expect("put")
            .is_none()
    );
    let first_id = s
        .get(KeyScope::System, "app.url")
        .await
        .expect("get")
        .expect("exists")
        .id;
    let previous = s
        .put(&pair(KeyScope::System, "app.url", "http://b"))
        .await
        .expect("put")
        .expect("replaced");
    assert_eq!(previous.value, "http://a");
    let now = s
        .get(KeyScope::System, "app.url")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(now.value, "http://b");
    assert_eq!(now.id, first_id, "a replaced pair keeps its id");

    // Same name, other scope: a different pair.
    s.put(&pair(KeyScope::User, "stanley:app.url", "mine"))
        .await
        .expect("put");
    s.put(&pair(KeyScope::System, "app.port", "80"))
        .await
        .expect("put");
    s.put(&pair(KeyScope::System, "other", "x"))
        .await
        .expect("put");
    let mut secret = pair(KeyScope::System, "app.token", "A1B2C3");
    secret.secret = true;
    secret.description = Some("api token".into());
    s.put(&secret).await.expect("put");
    let read = s
        .get(KeyScope::System, "app.token")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (
            read.secret,
            read.description.as_deref(),
            read.value.as_str()
        ),
        (true, Some("api token"), "A1B2C3")
    );

    let names = |l: Listing<KeyValueRecord>| -> Vec<String> {
        l.items
            .iter()
            .map(|p| format!("{}/{}", p.scope, p.name))
            .collect()
    };
    assert_eq!(
        names(
            s.list(Some(KeyScope::System), Some("app."), Page::all())
                .await
                .expect("list")
        ),
        [
            "st2kv.system/app.port",
            "st2kv.system/app.token",
            "st2kv.system/app.url"
        ]
    );
    assert_eq!(
        names(s.list(None, Some("st"), Page::all()).await.expect("list")),
        ["st2kv.user/stanley:app.url"]
    );
    let all = s.list(None, None, Page::first(2)).await.expect("list");
    assert_eq!(all.total, 5);
    assert_eq!(
        names(all),
        ["st2kv.system/app.port", "st2kv.system/app.token"],
        "system scope first, then by name"
    );
    // A prefix is a plain starts-with: `%` and `_` are not wildcards.
    s.put(&pair(KeyScope::System, "a_b", "1"))
        .await
        .expect("put");
    s.put(&pair(KeyScope::System, "axb", "1"))
        .await
        .expect("put");
    s.put(&pair(KeyScope::System, "a%c", "1"))
        .await
        .expect("put");
    assert_eq!(
        names(
            s.list(Some(KeyScope::System), Some("a_"), Page::all())
                .await
                .expect("list")
        ),
        ["st2kv.system/a_b"]
    );
    assert_eq!(
        names(
            s.list(Some(KeyScope::System), Some("a%"), Page::all())
                .await
                .expect("list")
        ),
        ["st2kv.system/a%c"]
    );

    // Expiry follows the store clock.
    let mut temp = pair(KeyScope::System, "temp", "soon gone");
    temp.expire_timestamp = Some(at(h, 60));
    s.put(&temp).await.expect("put");
    assert!(
        s.get(KeyScope::System, "temp")
            .await
            .expect("get")
            .is_some()
    );
    h.clock.advance(TimeDelta::seconds(61));
    assert!(
        s.get(KeyScope::System, "temp")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        s.list(Some(KeyScope::System), Some("temp"), Page::all())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert!(
        s.put(&pair(KeyScope::System, "temp", "again"))
            .await
            .expect("put")
            .is_none(),
        "an expired pair counts as absent"
    );
    let mut temp2 = pair(KeyScope::System, "temp2", "x");
    temp2.expire_timestamp = Some(at(h, 1));
    s.put(&temp2).await.expect("put");
    h.clock.advance(TimeDelta::seconds(2));
    assert_eq!(s.purge_expired(100).await.expect("purge"), 1);

    let deleted = s
        .delete(KeyScope::System, "other")
        .await
        .expect("delete")
        .expect("existed");
    assert_eq!(deleted.value, "x");
    assert!(
        s.delete(KeyScope::System, "other")
            .await
            .expect("delete")
            .is_none()
    );
    assert!(
        s.get(KeyScope::User, "stanley:app.url")
            .await
            .expect("get")
            .is_some()
    );
}

// ---------------------------------------------------------------------------------------------
// Tokens and API keys

async fn tokens_by_hash_with_expiry(h: &Harness) {
    let s = h.store.tokens();
    let token = TokenRecord {
        id: new_id(),
        token_hash: "aa".repeat(32),
        user: "stanley".into(),
        expiry: at(h, 3600),
        metadata: obj(json!({"service": false})),
        created_at: h.now(),
    };
    s.create(&token).await.expect("create");
    assert_eq!(
        s.get_by_hash(&token.token_hash).await.expect("get"),
        Some(token.clone())
    );
    let mut same_hash = token.clone();
    same_hash.id = new_id();
    assert!(is_conflict(s.create(&same_hash).await));
    assert!(
        s.get_by_hash(&"bb".repeat(32))
            .await
            .expect("get")
            .is_none()
    );

    h.clock.advance(TimeDelta::seconds(3601));
    // An expired token is still found (its expiry says so) until it is purged.
    let expired = s
        .get_by_hash(&token.token_hash)
        .await
        .expect("get")
        .expect("an expired token is kept until purged");
    assert!(expired.expiry <= h.now());
    let fresh = TokenRecord {
        id: new_id(),
        token_hash: "cc".repeat(32),
        expiry: at(h, 10),
        ..token.clone()
    };
    s.create(&fresh).await.expect("create");
    assert_eq!(s.purge_expired(100).await.expect("purge"), 1);
    assert!(
        s.get_by_hash(&token.token_hash)
            .await
            .expect("get")
            .is_none()
    );
    assert!(s.delete_by_hash(&fresh.token_hash).await.expect("delete"));
    assert!(!s.delete_by_hash(&fresh.token_hash).await.expect("delete"));
}

async fn api_keys_crud(h: &Harness) {
    let s = h.store.api_keys();
    let key = |id: &str, hash: &str, secs: i64| ApiKeyRecord {
        id: id.into(),
        key_hash: hash.into(),
        user: "stanley".into(),
        metadata: obj(json!({"used_by": "ci"})),
        enabled: true,
        created_at: at(h, secs),
    };
    s.create(&key("k2", "h2", 2)).await.expect("create");
    s.create(&key("k1", "h1", 1)).await.expect("create");
    assert!(is_conflict(s.create(&key("k3", "h1", 3)).await));
    assert_eq!(s.get("k1").await.expect("get"), Some(key("k1", "h1", 1)));
    assert_eq!(
        s.get_by_hash("h2")
            .await
            .expect("get")
            .map(|k| k.id)
            .as_deref(),
        Some("k2")
    );
    let listed = s.list(Page::all()).await.expect("list");
    assert_eq!(ids(&listed.items, |k| &k.id), ["k1", "k2"]);
    s.set_enabled("k1", false).await.expect("disable");
    assert!(!s.get("k1").await.expect("get").expect("exists").enabled);
    assert!(is_not_found(s.set_enabled("nope", false).await));
    assert!(s.delete("k1").await.expect("delete"));
    assert!(!s.delete("k1").await.expect("delete"));
    assert_eq!(s.list(Page::all()).await.expect("list").total, 1);
}

// ---------------------------------------------------------------------------------------------
// Workflows

async fn workflows_compare_and_set_and_tasks(h: &Harness) {
    let s = h.store.workflows();
    let wf = WorkflowRecord {
        id: "wf1".into(),
        execution_id: "exec-wf".into(),
        revision: 0,
        status: "running".into(),
        state: serde_json::value::to_raw_value(
            &json!({"graph": {"nodes": [1, 2]}, "ctx": {"x": "é"}}),
        )
        .expect("json"),
        created_at: h.now(),
        updated_at: h.now(),
    };
    let created = s.create(&wf).await.expect("create");
    assert_eq!(created.revision, 1);
    assert!(is_conflict(s.create(&wf).await));
    assert_eq!(
        s.get_by_execution("exec-wf")
            .await
            .expect("get")
            .map(|w| w.id),
        Some("wf1".into())
    );
    // Should one execution have two (runs racing at their first save), both backends give
    // the same one: the newest.
    let mut second = wf.clone();
    second.id = "wf1-later".into();
    s.create(&second).await.expect("create");
    assert_eq!(
        s.get_by_execution("exec-wf")
            .await
            .expect("get")
            .map(|w| w.id),
        Some("wf1-later".into())
    );
    assert!(s.delete("wf1-later").await.expect("delete"));
    let mut next = created.clone();
    next.status = "succeeded".into();
    next.updated_at = at(h, 5);
    let updated = s.update(&next).await.expect("update");
    assert_eq!(updated.revision, 2);
    assert!(is_conflict(s.update(&next).await), "stale revision");
    assert_eq!(s.get("wf1").await.expect("get"), Some(updated));

    let task = |id: &str, name: &str, secs: i64| TaskRecord {
        id: id.into(),
        workflow_id: "wf1".into(),
        task_id: name.into(),
        task_route: 0,
        status: "running".into(),
        doc: json!({"items": []}),
        created_at: at(h, secs),
        updated_at: at(h, secs),
    };
    s.put_task(&task("t-b", "second", 2)).await.expect("put");
    s.put_task(&task("t-a", "first", 1)).await.expect("put");
    let mut done = task("t-b", "second", 2);
    done.status = "succeeded".into();
    s.put_task(&done).await.expect("replace");
    assert_eq!(s.get_task("t-b").await.expect("get"), Some(done));
    let tasks = s.list_tasks("wf1").await.expect("list");
    assert_eq!(ids(&tasks, |t| &t.id), ["t-b", "t-a"], "creation order");
    assert!(s.delete("wf1").await.expect("delete"));
    assert!(s.get("wf1").await.expect("get").is_none());
    assert!(s.list_tasks("wf1").await.expect("list").is_empty());
    assert!(!s.delete("wf1").await.expect("delete"));
}

async fn workflows_save_parts_and_tasks_in_one_write(h: &Harness) {
    let s = h.store.workflows();
    let wf = WorkflowRecord {
        id: "wf-parts".into(),
        execution_id: "exec-parts".into(),
        revision: 0,
        status: "running".into(),
        state: serde_json::value::to_raw_value(&json!({"head": 1})).expect("json"),
        created_at: h.now(),
        updated_at: h.now(),
    };
    let created = s.create(&wf).await.expect("create");
    let part = |key: &str, doc: Option<&str>| StatePart {
        key: key.into(),
        doc: doc.map(str::to_owned),
    };
    let task = TaskRecord {
        id: "t-parts".into(),
        workflow_id: "wf-parts".into(),
        task_id: "each".into(),
        task_route: 0,
        status: "running".into(),
        doc: json!({"items": [null, null]}),
        created_at: h.now(),
        updated_at: h.now(),
    };
    let saved = s
        .save(
            &created,
            &[
                part("seq.1", Some(r#"{"b":2}"#)),
                part("seq.0", Some(r#"{"a":1}"#)),
                part("child.x", Some("{}")),
            ],
            std::slice::from_ref(&task),
        )
        .await
        .expect("save");
    assert_eq!(saved.revision, 2);
    assert_eq!(
        s.list_parts("wf-parts").await.expect("parts"),
        [
            part("child.x", Some("{}")),
            part("seq.0", Some(r#"{"a":1}"#)),
            part("seq.1", Some(r#"{"b":2}"#)),
        ],
        "key order, texts as given"
    );
    assert_eq!(
        s.list_tasks("wf-parts").await.expect("tasks"),
        std::slice::from_ref(&task)
    );
    // A stale revision writes nothing: neither the parts nor the tasks.
    let mut other = task.clone();
    other.id = "t-stale".into();
    assert!(is_conflict(
        s.save(&created, &[part("seq.2", Some("{}"))], &[other])
            .await
    ));
    assert_eq!(s.list_parts("wf-parts").await.expect("parts").len(), 3);
    assert!(s.get_task("t-stale").await.expect("get").is_none());
    // Replace one, remove one, keep the rest.
    let mut next = saved.clone();
    next.state = serde_json::value::to_raw_value(&json!({"head": 2})).expect("json");
    let saved = s
        .save(
            &next,
            &[part("seq.1", Some(r#"{"b":3}"#)), part("child.x", None)],
            &[],
        )
        .await
        .expect("save");
    assert_eq!(saved.revision, 3);
    assert_eq!(
        s.list_parts("wf-parts").await.expect("parts"),
        [
            part("seq.0", Some(r#"{"a":1}"#)),
            part("seq.1", Some(r#"{"b":3}"#)),
        ]
    );
    assert_eq!(
        s.get("wf-parts")
            .await
            .expect("get")
            .map(|w| serde_json::from_str::<Value>(w.state.get()).expect("json")),
        Some(json!({"head": 2}))
    );
    let mut missing = saved.clone();
    missing.id = "nope".into();
    assert!(matches!(
        s.save(&missing, &[], &[]).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(s.delete("wf-parts").await.expect("delete"));
    assert!(s.list_parts("wf-parts").await.expect("parts").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Inquiries

async fn inquiries_resolve_exactly_once(h: &Harness) {
    let s = h.store.inquiries();
    let inquiry = |id: &str, secs: i64| InquiryRecord {
        id: id.into(),
        status: InquiryStatus::Pending,
        schema: json!({"type": "object", "properties": {"continue": {"type": "boolean"}}}),
        route: "ops".into(),
        ttl: 1440,
        users: vec!["stanley".into()],
        roles: Vec::new(),
        parent: Some("wf-exec".into()),
        response: None,
        created_at: at(h, secs),
        resolved_at: None,
    };
    s.create(&inquiry("i1", 1)).await.expect("create");
    s.create(&inquiry("i2", 2)).await.expect("create");
    assert!(is_conflict(s.create(&inquiry("i1", 3)).await));
    assert_eq!(s.get("i1").await.expect("get"), Some(inquiry("i1", 1)));

    let resolved = s
        .resolve(
            "i1",
            InquiryStatus::Succeeded,
            Some(json!({"continue": true})),
            at(h, 10),
        )
        .await
        .expect("resolve");
    assert_eq!(resolved.status, InquiryStatus::Succeeded);
    assert_eq!(resolved.response, Some(json!({"continue": true})));
    assert_eq!(resolved.resolved_at, Some(at(h, 10)));
    assert!(is_conflict(
        s.resolve("i1", InquiryStatus::Timeout, None, at(h, 11))
            .await
    ));
    assert!(is_not_found(
        s.resolve("nope", InquiryStatus::Timeout, None, at(h, 11))
            .await
    ));

    let pending = s
        .list(Some(InquiryStatus::Pending), Page::all())
        .await
        .expect("list");
    assert_eq!(ids(&pending.items, |i| &i.id), ["i2"]);
    let all = s.list(None, Page::all()).await.expect("list");
    assert_eq!(ids(&all.items, |i| &i.id), ["i2", "i1"], "newest first");

    // Racing responders: exactly one wins.
    let mut racers = Vec::new();
    for n in 0..8 {
        let store = h.store.clone();
        let when = at(h, 20);
        racers.push(tokio::spawn(async move {
            store
                .inquiries()
                .resolve(
                    "i2",
                    InquiryStatus::Succeeded,
                    Some(json!({"who": n})),
                    when,
                )
                .await
                .is_ok()
        }));
    }
    let mut wins = 0;
    for r in racers {
        wins += usize::from(r.await.expect("join"));
    }
    assert_eq!(wins, 1);
}

// ---------------------------------------------------------------------------------------------
// Traces

async fn traces_append_components_concurrently_and_filter(h: &Harness) {
    let s = h.store.traces();
    let trace = |id: &str, tag: &str, secs: i64| TraceRecord {
        id: id.into(),
        trace_tag: tag.into(),
        trigger_instances: Vec::new(),
        rules: Vec::new(),
        action_executions: Vec::new(),
        start_timestamp: at(h, secs),
    };
    s.create(&trace("tr1", "deploy-42", 1))
        .await
        .expect("create");
    s.create(&trace("tr2", "deploy-42", 2))
        .await
        .expect("create");
    s.create(&trace("tr3", "other", 3)).await.expect("create");
    assert!(is_conflict(s.create(&trace("tr1", "x", 0)).await));

    let component = |object: &str, caused: Option<(&str, &str)>| TraceComponent {
        object_id: object.into(),
        reference: format!("ref-{object}"),
        updated_at: at(h, 5),
        caused_by: caused.map(|(kind, id)| CausedBy {
            kind: kind.into(),
            id: id.into(),
        }),
    };
    s.add_component(
        "tr1",
        TraceComponentKind::TriggerInstance,
        &component("ti1", None),
    )
    .await
    .expect("add");
    s.add_component(
        "tr1",
        TraceComponentKind::Rule,
        &component("rule1", Some(("trigger_instance", "ti1"))),
    )
    .await
    .expect("add");
    assert!(is_not_found(
        s.add_component("nope", TraceComponentKind::Rule, &component("r", None))
            .await
    ));

    let mut adders = Vec::new();
    for n in 0..20 {
        let store = h.store.clone();
        let c = component(&format!("ex{n:02}"), Some(("rule", "rule1:ti1")));
        adders.push(tokio::spawn(async move {
            store
                .traces()
                .add_component("tr1", TraceComponentKind::ActionExecution, &c)
                .await
        }));
    }
    for a in adders {
        a.await.expect("join").expect("add");
    }
    let got = s.get("tr1").await.expect("get").expect("exists");
    assert_eq!(got.trigger_instances, [component("ti1", None)]);
    assert_eq!(
        got.rules,
        [component("rule1", Some(("trigger_instance", "ti1")))]
    );
    let mut executions = ids(&got.action_executions, |c| &c.object_id);
    executions.sort();
    assert_eq!(executions.len(), 20);
    assert_eq!(executions[0], "ex00");

    let list = |f: TraceFilter| async move {
        let l = s.list(&f, Page::all()).await.expect("list");
        assert_eq!(l.total as usize, l.items.len());
        ids(&l.items, |t| &t.id)
    };
    assert_eq!(
        list(TraceFilter {
            trace_tag: Some("deploy-42".into()),
            ..Default::default()
        })
        .await,
        ["tr2", "tr1"]
    );
    assert_eq!(
        list(TraceFilter {
            execution: Some("ex07".into()),
            ..Default::default()
        })
        .await,
        ["tr1"]
    );
    assert_eq!(
        list(TraceFilter {
            rule: Some("rule1".into()),
            ..Default::default()
        })
        .await,
        ["tr1"]
    );
    assert_eq!(
        list(TraceFilter {
            trigger_instance: Some("ti1".into()),
            sort: SortOrder::Ascending,
            ..Default::default()
        })
        .await,
        ["tr1"]
    );
    assert_eq!(
        list(TraceFilter {
            execution: Some("ti1".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new(),
        "filters look only in their own list"
    );
    assert_eq!(s.purge_before(at(h, 3), 10).await.expect("purge"), 2);
    assert!(s.get("tr1").await.expect("get").is_none());
    assert!(s.get("tr3").await.expect("get").is_some());
    let by = TraceFilter::holding;
    for (kind, id) in [
        (TraceComponentKind::ActionExecution, "ex07"),
        (TraceComponentKind::Rule, "rule1"),
        (TraceComponentKind::TriggerInstance, "ti1"),
    ] {
        assert_eq!(
            list(by(kind, id)).await,
            Vec::<String>::new(),
            "a purged trace is not found by {id}"
        );
    }

    // Components a trace is created with are found as appended ones are, and go with it.
    let mut born = trace("tr5", "born", 4);
    born.trigger_instances = vec![component("ti5", None)];
    born.rules = vec![component("rule1", Some(("trigger_instance", "ti5")))];
    born.action_executions = vec![component("ex50", Some(("rule", "rule1:ti5")))];
    s.create(&born).await.expect("create");
    s.add_component(
        "tr5",
        TraceComponentKind::ActionExecution,
        &component("ex51", None),
    )
    .await
    .expect("add");
    let born_objects = [
        (TraceComponentKind::TriggerInstance, "ti5"),
        (TraceComponentKind::Rule, "rule1"),
        (TraceComponentKind::ActionExecution, "ex50"),
        (TraceComponentKind::ActionExecution, "ex51"),
    ];
    for (kind, id) in born_objects {
        assert_eq!(list(by(kind, id)).await, ["tr5"], "{id}");
    }
    let got = s.get("tr5").await.expect("get").expect("exists");
    assert_eq!(
        ids(&got.action_executions, |c| &c.object_id),
        ["ex50", "ex51"]
    );
    assert_eq!(s.purge_before(at(h, 5), 10).await.expect("purge"), 2);
    for (kind, id) in born_objects {
        assert_eq!(list(by(kind, id)).await, Vec::<String>::new(), "{id}");
    }
}

// ---------------------------------------------------------------------------------------------
// Work queue

const LEASE: Duration = Duration::from_secs(30);

async fn queue_claims_in_order_with_tags_and_delays(h: &Harness) {
    let q = h.store.queue();
    let a = q
        .enqueue(NewWorkItem::new("runner", json!({"n": "a"})))
        .await
        .expect("enqueue");
    let b = q
        .enqueue(NewWorkItem::new("runner", json!({"n": "b"})))
        .await
        .expect("enqueue");
    let mut windows_only = NewWorkItem::new("runner", json!({"n": "win"}));
    windows_only.required_tag = Some("windows".into());
    let win = q.enqueue(windows_only).await.expect("enqueue");
    let mut later = NewWorkItem::new("runner", json!({"n": "later"}));
    later.not_before = Some(at(h, 60));
    let late = q.enqueue(later).await.expect("enqueue");
    q.enqueue(NewWorkItem::new("scheduler", json!({"n": "elsewhere"})))
        .await
        .expect("enqueue");
    assert!(a < b && b < win && win < late, "ids grow in enqueue order");

    assert_eq!(
        q.depth("runner").await.expect("depth"),
        QueueDepth {
            ready: 3,
            delayed: 1,
            leased: 0
        }
    );

    // A worker without tags gets a, then b, never the tagged item or the delayed one.
    // Leases long enough to outlive the clock moves below.
    let long = Duration::from_secs(300);
    let mut request = ClaimRequest::one("runner", "w1", long);
    request.max_items = 10;
    let claimed = q.claim(&request).await.expect("claim");
    assert_eq!(
        claimed.iter().map(|l| l.item.id).collect::<Vec<_>>(),
        [a, b]
    );
    assert_eq!(claimed[0].item.payload, json!({"n": "a"}));
    assert_eq!(claimed[0].item.attempts, 1);
    assert_eq!(claimed[0].item.queue, "runner");
    assert_eq!(claimed[0].expires_at, h.now() + TimeDelta::seconds(300));
    assert!(claimed[0].fence < claimed[1].fence);
    assert!(q.claim(&request).await.expect("claim").is_empty());

    // A tagged worker gets the tagged item.
    let mut tagged = ClaimRequest::one("runner", "w2", long);
    tagged.tags = vec!["linux".into(), "windows".into()];
    let got = q.claim(&tagged).await.expect("claim");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].item.id, win);
    assert_eq!(got[0].item.required_tag.as_deref(), Some("windows"));

    // The delayed item becomes claimable when its time comes.
    h.clock.advance(TimeDelta::seconds(59));
    assert!(q.claim(&request).await.expect("claim").is_empty());
    h.clock.advance(TimeDelta::seconds(1));
    let due = q.claim(&request).await.expect("claim");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].item.id, late);

    // finish removes; release puts back (optionally later), counting the next attempt.
    for lease in claimed.iter().skip(1).chain(got.iter()) {
        q.finish(lease.reference()).await.expect("finish");
    }
    q.release(claimed[0].reference(), Some(at(h, 10)))
        .await
        .expect("release");
    q.release(due[0].reference(), None).await.expect("release");
    assert!(
        is_lease_lost(q.finish(claimed[0].reference()).await),
        "released leases are gone"
    );
    assert_eq!(
        q.depth("runner").await.expect("depth"),
        QueueDepth {
            ready: 1,
            delayed: 1,
            leased: 0
        }
    );
    let again = q.claim(&request).await.expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].item.id, late);
    assert_eq!(again[0].item.attempts, 2);
    assert!(again[0].fence > due[0].fence);

    let zero = ClaimRequest {
        max_items: 0,
        ..request.clone()
    };
    assert!(matches!(q.claim(&zero).await, Err(StoreError::Invalid(_))));
    assert_eq!(
        q.depth("scheduler").await.expect("depth"),
        QueueDepth {
            ready: 1,
            delayed: 0,
            leased: 0
        }
    );
}

async fn queue_leads_one_holder_per_role(h: &Harness) {
    let q = h.store.queue();
    let term = Duration::from_secs(30);
    assert!(q.lead("gc", "node-a", term).await.expect("lead"));
    assert!(
        !q.lead("gc", "node-b", term).await.expect("lead"),
        "a holds gc"
    );
    assert!(
        q.lead("timers", "node-b", term).await.expect("lead"),
        "roles are apart"
    );
    // The holder renews; the term runs from the renewal.
    h.clock.advance(TimeDelta::seconds(20));
    assert!(q.lead("gc", "node-a", term).await.expect("renew"));
    h.clock.advance(TimeDelta::seconds(20));
    assert!(
        !q.lead("gc", "node-b", term).await.expect("lead"),
        "renewed at 20 s"
    );
    // A holder that stops renewing loses the role when its term runs out.
    h.clock.advance(TimeDelta::seconds(11));
    assert!(q.lead("gc", "node-b", term).await.expect("take over"));
    assert!(
        !q.lead("gc", "node-a", term).await.expect("lead"),
        "b holds gc now"
    );
    assert!(
        q.lead("gc", "node-a", Duration::MAX).await.is_err(),
        "an endless term is refused"
    );
}

async fn queue_fences_refuse_stale_holders_after_expiry(h: &Harness) {
    let q = h.store.queue();
    q.enqueue(NewWorkItem::new("runner", json!({"job": 1})))
        .await
        .expect("enqueue");
    let first = q
        .claim(&ClaimRequest::one("runner", "w1", LEASE))
        .await
        .expect("claim")
        .pop()
        .expect("one item");

    // Heartbeats before expiry extend the lease.
    h.clock.advance(TimeDelta::seconds(20));
    let extended = q
        .heartbeat(first.reference(), LEASE)
        .await
        .expect("heartbeat");
    assert_eq!(extended, h.now() + TimeDelta::seconds(30));
    h.clock.advance(TimeDelta::seconds(20));
    assert_eq!(q.reap_expired().await.expect("reap"), 0, "still leased");
    assert!(
        q.claim(&ClaimRequest::one("runner", "w2", LEASE))
            .await
            .expect("claim")
            .is_empty()
    );

    // Past expiry the holder is refused everything, before and after the reaper runs.
    h.clock.advance(TimeDelta::seconds(11));
    assert!(is_lease_lost(q.heartbeat(first.reference(), LEASE).await));
    assert_eq!(q.reap_expired().await.expect("reap"), 1);
    assert_eq!(q.reap_expired().await.expect("reap"), 0);
    let second = q
        .claim(&ClaimRequest::one("runner", "w2", LEASE))
        .await
        .expect("claim")
        .pop()
        .expect("requeued item");
    assert_eq!(second.item.id, first.item.id);
    assert_eq!(second.item.attempts, 2);
    assert!(second.fence > first.fence);
    assert!(is_lease_lost(q.finish(first.reference()).await));
    assert!(is_lease_lost(q.release(first.reference(), None).await));
    assert!(is_lease_lost(q.heartbeat(first.reference(), LEASE).await));
    q.finish(second.reference()).await.expect("finish");
    assert!(is_lease_lost(q.finish(second.reference()).await));
    assert_eq!(
        q.depth("runner").await.expect("depth"),
        QueueDepth::default()
    );
    assert!(is_lease_lost(
        q.finish(LeaseRef {
            item_id: 987_654,
            fence: 1
        })
        .await
    ));
}

async fn queue_race_eight_claimers_ten_thousand_items(h: &Harness) {
    const ITEMS: usize = 10_000;
    let q = h.store.queue();
    let mut producers = Vec::new();
    for p in 0..4 {
        let store = h.store.clone();
        producers.push(tokio::spawn(async move {
            for i in 0..ITEMS / 4 {
                store
                    .queue()
                    .enqueue(NewWorkItem::new("race", json!({"n": p * (ITEMS / 4) + i})))
                    .await
                    .expect("enqueue");
            }
        }));
    }
    let mut claimers = Vec::new();
    for w in 0..8 {
        let store = h.store.clone();
        claimers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut idle_rounds = 0;
            let mut request = ClaimRequest::one("race", format!("worker-{w}"), LEASE);
            request.max_items = 1 + w % 3;
            while idle_rounds < 50 {
                let leases = store.queue().claim(&request).await.expect("claim");
                if leases.is_empty() {
                    idle_rounds += 1;
                    tokio::task::yield_now().await;
                    store
                        .queue()
                        .wait_for_work("race", Duration::from_millis(20))
                        .await;
                    continue;
                }
                idle_rounds = 0;
                for lease in leases {
                    seen.push(lease.item.payload["n"].as_u64().expect("n") as usize);
                    store
                        .queue()
                        .finish(lease.reference())
                        .await
                        .expect("finish by the only holder");
                }
            }
            seen
        }));
    }
    for p in producers {
        p.await.expect("producer");
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.expect("claimer"));
    }
    let distinct: HashSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), ITEMS, "every item claimed once, none twice");
    assert_eq!(distinct.len(), ITEMS);
    assert_eq!(q.depth("race").await.expect("depth"), QueueDepth::default());
}

async fn queue_wakes_waiters_on_enqueue(h: &Harness) {
    let store = h.store.clone();
    let waiter = tokio::spawn(async move {
        let started = std::time::Instant::now();
        store
            .queue()
            .wait_for_work("wake", Duration::from_secs(30))
            .await;
        started.elapsed()
    });
    // Let the waiter start waiting, then enqueue.
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.store
        .queue()
        .enqueue(NewWorkItem::new("wake", json!({})))
        .await
        .expect("enqueue");
    let waited = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter woke")
        .expect("join");
    assert!(waited < Duration::from_secs(10), "woke after {waited:?}");
}

// ---------------------------------------------------------------------------------------------
// Durability

async fn acknowledged_writes_survive_reopen(h: &Harness) {
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = h.store.clone();
        let start = h.now();
        writers.push(tokio::spawn(async move {
            for i in 0..50 {
                store
                    .executions()
                    .create(&execution(&format!("d{w}-{i}"), "core.local", start))
                    .await
                    .expect("create");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    h.store
        .key_values()
        .put(&pair(KeyScope::System, "kept", "yes"))
        .await
        .expect("put");
    h.store
        .queue()
        .enqueue(NewWorkItem::new("durable", json!({"x": 1})))
        .await
        .expect("enqueue");
    let Some(reopened) = h.reopened().await else {
        return;
    };
    let listing = reopened
        .executions()
        .list(&ExecutionFilter::default(), Page::first(1))
        .await
        .expect("list");
    assert_eq!(listing.total, 400);
    assert_eq!(
        reopened
            .key_values()
            .get(KeyScope::System, "kept")
            .await
            .expect("get")
            .map(|p| p.value),
        Some("yes".into())
    );
    assert_eq!(
        reopened
            .queue()
            .depth("durable")
            .await
            .expect("depth")
            .ready,
        1
    );
    reopened.close().await.expect("close");
}

// ---------------------------------------------------------------------------------------------
// Retention

async fn retention_purges_by_ttl_in_batches(h: &Harness) {
    let day = 86_400;
    let old = at(h, -3 * day);
    let mut records = Vec::new();
    for i in 0..25 {
        let mut e = execution(&format!("old{i:02}"), "core.local", old);
        e.status = ExecutionStatus::Succeeded;
        e.end_timestamp = Some(old);
        records.push(e);
    }
    let mut running = execution("old-running", "core.local", old);
    running.status = ExecutionStatus::Running;
    records.push(running);
    records.push(execution("fresh", "core.local", h.now()));
    h.store
        .executions()
        .create_many(&records)
        .await
        .expect("create");
    for i in 0..7 {
        h.store
            .trigger_instances()
            .create(&instance(&format!("ti{i}"), "core.t", old))
            .await
            .expect("create");
    }
    h.store
        .trigger_instances()
        .create(&instance("ti-new", "core.t", h.now()))
        .await
        .expect("create");
    let mut expiring = pair(KeyScope::System, "gone", "x");
    expiring.expire_timestamp = Some(at(h, -1));
    h.store.key_values().put(&expiring).await.expect("put");

    let policy = RetentionPolicy {
        action_executions_ttl: Some(2),
        trigger_instances_ttl: Some(2),
        batch_size: 4,
        pause_between_batches: Duration::ZERO,
        ..Default::default()
    };
    let report = purge(h.store.as_ref(), &policy).await.expect("purge");
    assert_eq!(report.executions, 25);
    assert_eq!(report.trigger_instances, 7);
    assert_eq!(report.key_values, 1);
    let left = h
        .store
        .executions()
        .list(&ExecutionFilter::default(), Page::all())
        .await
        .expect("list");
    let mut left = ids(&left.items, |e| &e.id);
    left.sort();
    assert_eq!(left, ["fresh", "old-running"]);
    assert_eq!(
        purge(h.store.as_ref(), &policy).await.expect("purge"),
        Default::default()
    );
}

// ---------------------------------------------------------------------------------------------
// Batches

fn trace_record(id: &str, t: Timestamp) -> TraceRecord {
    TraceRecord {
        id: id.into(),
        trace_tag: format!("tag-{id}"),
        trigger_instances: Vec::new(),
        rules: Vec::new(),
        action_executions: Vec::new(),
        start_timestamp: t,
    }
}

fn component(object: &str, t: Timestamp) -> TraceComponent {
    TraceComponent {
        object_id: object.into(),
        reference: format!("ref-{object}"),
        updated_at: t,
        caused_by: None,
    }
}

async fn batch_writes_land_together_in_order(h: &Harness) {
    let s = &h.store;
    assert_eq!(
        s.write_batch(Vec::new()).await.expect("empty batch"),
        Vec::new()
    );
    // A trigger instance's outcome: execution, queue item, enforcement, trace, status.
    s.trigger_instances()
        .create(&instance("bti1", "core.t", at(h, 0)))
        .await
        .expect("instance");
    let mut e = execution("bex1", "core.local", at(h, 1));
    e.status = ExecutionStatus::Scheduled;
    e.revision = 7; // ignored: a new execution is revision 1
    let mut en = enforcement("ben1", "pack.rule", "bti1", at(h, 1));
    en.enforcement.execution_id = Some("bex1".into());
    let mut trace = trace_record("btr1", at(h, 0));
    trace.trigger_instances.push(component("bti1", at(h, 0)));
    let written = s
        .write_batch(vec![
            BatchWrite::CreateExecution(Arc::new(e.clone())),
            BatchWrite::Enqueue(NewWorkItem::new("batch", json!({"execution_id": "bex1"}))),
            BatchWrite::CreateRuleEnforcement(en.clone()),
            BatchWrite::CreateTrace(trace),
            BatchWrite::AddTraceComponent {
                trace_id: "btr1".into(),
                kind: TraceComponentKind::ActionExecution,
                component: component("bex1", at(h, 1)),
            },
            BatchWrite::SetTriggerInstanceStatus {
                id: "bti1".into(),
                status: TriggerInstanceStatus::Processed,
            },
        ])
        .await
        .expect("batch");
    assert_eq!(written.len(), 6);
    assert_eq!(
        written[0],
        BatchWritten::Execution {
            revision: 1,
            children: Vec::new()
        }
    );
    let BatchWritten::WorkItem(item_id) = written[1] else {
        panic!("an enqueue reports its item id, got {:?}", written[1]);
    };
    assert!(written[2..].iter().all(|w| *w == BatchWritten::Done));
    let stored = s
        .executions()
        .get("bex1")
        .await
        .expect("get")
        .expect("stored");
    let mut expected = e.clone();
    expected.revision = 1;
    assert_eq!(stored, expected);
    assert_eq!(
        s.rule_enforcements().get("ben1").await.expect("get"),
        Some(en)
    );
    let trace = s.traces().get("btr1").await.expect("get").expect("trace");
    assert_eq!(ids(&trace.trigger_instances, |c| &c.object_id), ["bti1"]);
    assert_eq!(ids(&trace.action_executions, |c| &c.object_id), ["bex1"]);
    let by_execution = s
        .traces()
        .list(
            &TraceFilter {
                execution: Some("bex1".into()),
                ..TraceFilter::default()
            },
            Page::all(),
        )
        .await
        .expect("list");
    assert_eq!(ids(&by_execution.items, |t| &t.id), ["btr1"]);
    let ti = s
        .trigger_instances()
        .get("bti1")
        .await
        .expect("get")
        .expect("ti");
    assert_eq!(ti.status, TriggerInstanceStatus::Processed);
    let processed = s
        .trigger_instances()
        .list(
            &TriggerInstanceFilter {
                statuses: vec![TriggerInstanceStatus::Processed],
                ..TriggerInstanceFilter::default()
            },
            Page::all(),
        )
        .await
        .expect("list");
    assert_eq!(processed.total, 1);

    // A run's end: the execution updated, an action trigger instance, the item finished.
    let leases = s
        .queue()
        .claim(&ClaimRequest::one("batch", "w1", Duration::from_secs(30)))
        .await
        .expect("claim");
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].item.id, item_id);
    assert_eq!(leases[0].item.payload, json!({"execution_id": "bex1"}));
    let mut child = execution("bex2", "core.noop", at(h, 2));
    child.parent = Some("bex1".into());
    s.executions().create(&child).await.expect("child");
    let mut done = stored.clone();
    done.status = ExecutionStatus::Succeeded;
    done.result = json!({"stdout": "ok"});
    done.end_timestamp = Some(at(h, 3));
    let mut action_trigger = instance("bti2", "core.st2.generic.actiontrigger", at(h, 3));
    action_trigger.status = TriggerInstanceStatus::Processed;
    let written = s
        .write_batch(vec![
            BatchWrite::UpdateExecution(Arc::new(done.clone())),
            BatchWrite::CreateTriggerInstance(Arc::new(action_trigger.clone())),
            BatchWrite::AddTraceComponent {
                trace_id: "btr1".into(),
                kind: TraceComponentKind::TriggerInstance,
                component: component("bti2", at(h, 3)),
            },
            BatchWrite::FinishWork(leases[0].reference()),
        ])
        .await
        .expect("batch");
    assert_eq!(
        written,
        vec![
            BatchWritten::Execution {
                revision: 2,
                children: vec!["bex2".into()]
            },
            BatchWritten::Done,
            BatchWritten::Done,
            BatchWritten::Done,
        ]
    );
    let stored = s
        .executions()
        .get("bex1")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored.revision, 2);
    assert_eq!(stored.status, ExecutionStatus::Succeeded);
    assert_eq!(stored.result, json!({"stdout": "ok"}));
    assert_eq!(stored.children, ["bex2"]);
    assert_eq!(
        s.trigger_instances().get("bti2").await.expect("get"),
        Some(action_trigger)
    );
    let trace = s.traces().get("btr1").await.expect("get").expect("trace");
    assert_eq!(
        ids(&trace.trigger_instances, |c| &c.object_id),
        ["bti1", "bti2"]
    );
    assert_eq!(
        s.queue().depth("batch").await.expect("depth"),
        QueueDepth::default()
    );
    // The revision moved: the old record is stale for the single update as for a batch.
    assert!(is_conflict(s.executions().update(&done).await));
}

/// A workflow's step as one batch: its state saved (compare-and-set) with the children it
/// records; a stale or missing state record writes none of them.
async fn batch_saves_a_workflow_with_the_children_it_records(h: &Harness) {
    let s = &h.store;
    let wf = WorkflowRecord {
        id: "bwf1".into(),
        execution_id: "bwx0".into(),
        revision: 0,
        status: "running".into(),
        state: serde_json::value::to_raw_value(&json!({"head": 1})).expect("json"),
        created_at: h.now(),
        updated_at: h.now(),
    };
    let created = s.workflows().create(&wf).await.expect("create");
    let part = |key: &str, doc: &str| StatePart {
        key: key.into(),
        doc: Some(doc.to_owned()),
    };
    let task = TaskRecord {
        id: "bwt1".into(),
        workflow_id: "bwf1".into(),
        task_id: "first".into(),
        task_route: 0,
        status: "running".into(),
        doc: json!({"n": 1}),
        created_at: h.now(),
        updated_at: h.now(),
    };
    let child = |id: &str| {
        let mut c = execution(id, "core.noop", at(h, 1));
        c.parent = Some("bwx0".into());
        c.status = ExecutionStatus::Scheduled;
        c
    };
    let mut next = created.clone();
    next.state = serde_json::value::to_raw_value(&json!({"head": 2})).expect("json");
    let written = s
        .write_batch(vec![
            BatchWrite::SaveWorkflow {
                record: next.clone(),
                parts: Arc::from([part("child.bwx1", "{}")]),
                tasks: Arc::from([task.clone()]),
            },
            BatchWrite::CreateExecution(Arc::new(child("bwx1"))),
            BatchWrite::Enqueue(NewWorkItem::new("bw", json!({"execution_id": "bwx1"}))),
        ])
        .await
        .expect("batch");
    assert_eq!(written.len(), 3);
    let BatchWritten::Workflow(saved) = &written[0] else {
        panic!(
            "a workflow save reports the record as stored, got {:?}",
            written[0]
        );
    };
    assert_eq!(saved.revision, 2);
    assert_eq!(
        s.workflows().get("bwf1").await.expect("get").as_ref(),
        Some(saved)
    );
    assert_eq!(
        s.workflows().list_parts("bwf1").await.expect("parts"),
        [part("child.bwx1", "{}")]
    );
    assert_eq!(
        s.workflows().list_tasks("bwf1").await.expect("tasks"),
        std::slice::from_ref(&task)
    );
    assert!(s.executions().get("bwx1").await.expect("get").is_some());

    // A stale revision (another run saved since) or an unknown record: nothing lands.
    let mut missing = saved.clone();
    missing.id = "bwf-missing".into();
    let failing: Vec<(WorkflowRecord, BatchCheck)> = vec![
        (next.clone(), |r| {
            matches!(
                r,
                Err(StoreError::Conflict {
                    what: "workflow",
                    ..
                })
            )
        }),
        (missing, |r| {
            matches!(
                r,
                Err(StoreError::NotFound {
                    what: "workflow",
                    ..
                })
            )
        }),
    ];
    for (record, expected) in failing {
        let name = record.id.clone();
        let outcome = s
            .write_batch(vec![
                BatchWrite::SaveWorkflow {
                    record,
                    parts: Arc::from([part("child.bwx2", "{}")]),
                    tasks: Arc::from([]),
                },
                BatchWrite::CreateExecution(Arc::new(child("bwx2"))),
                BatchWrite::Enqueue(NewWorkItem::new("bw", json!({"execution_id": "bwx2"}))),
            ])
            .await;
        assert!(expected(&outcome), "{name}: {outcome:?}");
        assert!(s.executions().get("bwx2").await.expect("get").is_none());
    }
    // A child that fails undoes the save before it.
    let outcome = s
        .write_batch(vec![
            BatchWrite::SaveWorkflow {
                record: saved.clone(),
                parts: Arc::from([part("child.bwx3", "{}")]),
                tasks: Arc::from([]),
            },
            BatchWrite::CreateExecution(Arc::new(child("bwx1"))),
        ])
        .await;
    assert!(is_conflict(outcome));
    assert_eq!(
        s.workflows()
            .get("bwf1")
            .await
            .expect("get")
            .map(|w| w.revision),
        Some(2)
    );
    assert_eq!(
        s.workflows().list_parts("bwf1").await.expect("parts"),
        [part("child.bwx1", "{}")]
    );
    assert_eq!(
        s.queue().depth("bw").await.expect("depth"),
        QueueDepth {
            ready: 1,
            delayed: 0,
            leased: 0
        }
    );
}

/// What a failed batch must have returned.
type BatchCheck = fn(&StoreResult<Vec<BatchWritten>>) -> bool;

async fn batch_is_all_or_nothing(h: &Harness) {
    let s = &h.store;
    s.trigger_instances()
        .create(&instance("ati1", "core.t", at(h, 0)))
        .await
        .expect("instance");
    let e = s
        .executions()
        .create(&execution("aex1", "core.local", at(h, 0)))
        .await
        .expect("execution");
    s.traces()
        .create(&trace_record("atr1", at(h, 0)))
        .await
        .expect("trace");
    s.queue()
        .enqueue(NewWorkItem::new("all", json!({"n": 1})))
        .await
        .expect("enqueue");
    let lease = s
        .queue()
        .claim(&ClaimRequest::one("all", "w1", Duration::from_secs(10)))
        .await
        .expect("claim")
        .remove(0);
    // Writes that succeed, then one that fails: nothing of the batch lands.
    let fresh = || {
        vec![
            BatchWrite::CreateTriggerInstance(Arc::new(instance("ati2", "core.t", at(h, 1)))),
            BatchWrite::CreateExecution(Arc::new(execution("aex2", "core.local", at(h, 1)))),
            BatchWrite::Enqueue(NewWorkItem::new("all", json!({"n": 2}))),
            BatchWrite::CreateRuleEnforcement(enforcement("aen1", "p.r", "ati1", at(h, 1))),
            BatchWrite::CreateTrace(trace_record("atr2", at(h, 1))),
            BatchWrite::SetTriggerInstanceStatus {
                id: "ati1".into(),
                status: TriggerInstanceStatus::Processed,
            },
            BatchWrite::AddTraceComponent {
                trace_id: "atr1".into(),
                kind: TraceComponentKind::Rule,
                component: component("r1", at(h, 1)),
            },
        ]
    };
    let mut stale = e.clone();
    stale.revision = 0;
    stale.status = ExecutionStatus::Running;
    let mut unknown = e.clone();
    unknown.id = "aex-missing".into();
    let mut expired = lease.reference();
    expired.fence += 1000;
    let failing: Vec<(BatchWrite, BatchCheck)> = vec![
        (BatchWrite::UpdateExecution(Arc::new(stale)), |r| {
            matches!(r, Err(StoreError::Conflict { .. }))
        }),
        (BatchWrite::UpdateExecution(Arc::new(unknown)), |r| {
            matches!(r, Err(StoreError::NotFound { .. }))
        }),
        (
            BatchWrite::CreateTriggerInstance(Arc::new(instance("ati1", "core.t", at(h, 2)))),
            |r| matches!(r, Err(StoreError::Conflict { .. })),
        ),
        (
            BatchWrite::CreateExecution(Arc::new(execution("aex1", "core.local", at(h, 2)))),
            |r| matches!(r, Err(StoreError::Conflict { .. })),
        ),
        (
            BatchWrite::CreateTrace(trace_record("atr1", at(h, 2))),
            |r| matches!(r, Err(StoreError::Conflict { .. })),
        ),
        (
            BatchWrite::AddTraceComponent {
                trace_id: "atr-missing".into(),
                kind: TraceComponentKind::Rule,
                component: component("r2", at(h, 2)),
            },
            |r| matches!(r, Err(StoreError::NotFound { .. })),
        ),
        (
            BatchWrite::SetTriggerInstanceStatus {
                id: "ati-missing".into(),
                status: TriggerInstanceStatus::Processed,
            },
            |r| matches!(r, Err(StoreError::NotFound { .. })),
        ),
        (BatchWrite::FinishWork(expired), |r| {
            matches!(r, Err(StoreError::LeaseLost { .. }))
        }),
    ];
    for (last, expected) in failing {
        let name = format!("{last:?}");
        let mut writes = fresh();
        writes.push(last);
        let outcome = s.write_batch(writes).await;
        assert!(expected(&outcome), "{name}: {outcome:?}");
        assert_eq!(
            s.trigger_instances().get("ati2").await.expect("get"),
            None,
            "{name}"
        );
        assert_eq!(
            s.executions().get("aex2").await.expect("get"),
            None,
            "{name}"
        );
        assert_eq!(
            s.rule_enforcements().get("aen1").await.expect("get"),
            None,
            "{name}"
        );
        assert_eq!(s.traces().get("atr2").await.expect("get"), None, "{name}");
        let ti = s
            .trigger_instances()
            .get("ati1")
            .await
            .expect("get")
            .expect("ti");
        assert_eq!(ti.status, TriggerInstanceStatus::Pending, "{name}");
        let trace = s.traces().get("atr1").await.expect("get").expect("trace");
        assert!(trace.rules.is_empty(), "{name}");
        assert_eq!(
            s.queue().depth("all").await.expect("depth"),
            QueueDepth {
                ready: 0,
                delayed: 0,
                leased: 1
            },
            "{name}"
        );
        let stored = s
            .executions()
            .get("aex1")
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(stored, e, "{name}");
    }
    // A failure in the middle undoes the writes before it, and the lease still holds.
    let mut writes = fresh();
    writes.insert(2, BatchWrite::FinishWork(expired));
    writes.push(BatchWrite::FinishWork(lease.reference()));
    assert!(is_lease_lost(s.write_batch(writes).await));
    assert_eq!(s.trigger_instances().get("ati2").await.expect("get"), None);
    s.queue()
        .finish(lease.reference())
        .await
        .expect("lease still held");
}

async fn batch_enqueue_wakes_waiters(h: &Harness) {
    let store = h.store.clone();
    let waiter = tokio::spawn(async move {
        let started = std::time::Instant::now();
        store
            .queue()
            .wait_for_work("batch-wake", Duration::from_secs(30))
            .await;
        started.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.store
        .write_batch(vec![BatchWrite::Enqueue(NewWorkItem::new(
            "batch-wake",
            json!({}),
        ))])
        .await
        .expect("batch");
    let waited = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter woke")
        .expect("join");
    assert!(waited < Duration::from_secs(10), "woke after {waited:?}");
}

/// An update is found by every filter column it changed and no longer by the old values,
/// whether it changed only the status or the columns set at creation too.
async fn executions_update_moves_every_filter(h: &Harness) {
    let s = h.store.executions();
    s.create(&execution("mp", "core.local", at(h, 0)))
        .await
        .expect("parent");
    let created = s
        .create(&execution("mv", "core.local", at(h, 1)))
        .await
        .expect("create");
    let count = |filter: ExecutionFilter| async move {
        s.list(&filter, Page::all()).await.expect("list").total
    };
    // The status (and the end) alone.
    let mut done = created.clone();
    done.status = ExecutionStatus::Succeeded;
    done.end_timestamp = Some(at(h, 2));
    let done = s.update(&done).await.expect("update");
    let by_status = |status| ExecutionFilter {
        statuses: vec![status],
        ..ExecutionFilter::default()
    };
    assert_eq!(count(by_status(ExecutionStatus::Succeeded)).await, 1);
    assert_eq!(count(by_status(ExecutionStatus::Requested)).await, 1);
    // Every column a listing filters on.
    let mut moved = done.clone();
    moved.action_ref = "core.remote".into();
    moved.parent = Some("mp".into());
    moved.context.insert("user".into(), json!("moved-user"));
    moved.runner = json!({"name": "remote-shell-cmd"}).into();
    moved.rule = Some(json!({"ref": "p.moved"}).into());
    moved.trigger = Some(json!({"ref": "p.trigger"}).into());
    moved.trigger_type = Some(json!({"ref": "p.trigger_type"}).into());
    moved.trigger_instance = Some(json!({"id": "ti-moved"}));
    moved.start_timestamp = at(h, -10);
    let moved = s.update(&moved).await.expect("update");
    assert_eq!(moved.revision, 3);
    let filters = [
        ExecutionFilter {
            action: Some("core.remote".into()),
            ..ExecutionFilter::default()
        },
        ExecutionFilter {
            parent: ParentFilter::Of("mp".into()),
            ..ExecutionFilter::default()
        },
        ExecutionFilter {
            user: Some("moved-user".into()),
            ..ExecutionFilter::default()
        },
        ExecutionFilter {
            runner: Some("remote-shell-cmd".into()),
            ..ExecutionFilter::default()
        },
        ExecutionFilter {
            rule: Some("p.moved".into()),
            ..ExecutionFilter::default()
        },
        ExecutionFilter {
            trigger: Some("p.trigger".into()),
            ..ExecutionFilter::default()
        },
        ExecutionFilter {
            trigger_type: Some("p.trigger_type".into()),
            ..ExecutionFilter::default()
        },
        ExecutionFilter {
            trigger_instance: Some("ti-moved".into()),
            ..ExecutionFilter::default()
        },
        ExecutionFilter {
            timestamp_lt: Some(at(h, -5)),
            ..ExecutionFilter::default()
        },
    ];
    for filter in filters {
        let found = s.list(&filter, Page::all()).await.expect("list");
        assert_eq!(ids(&found.items, |e| &e.id), ["mv"], "{filter:?}");
    }
    assert_eq!(
        count(ExecutionFilter {
            action: Some("core.local".into()),
            ..ExecutionFilter::default()
        })
        .await,
        1
    );
    assert_eq!(
        count(ExecutionFilter {
            user: Some("stanley".into()),
            ..ExecutionFilter::default()
        })
        .await,
        1
    );
    assert_eq!(count(by_status(ExecutionStatus::Succeeded)).await, 1);
    let parent = s.get("mp").await.expect("get").expect("parent");
    assert_eq!(parent.children, ["mv"]);
    let stored = s.get("mv").await.expect("get").expect("moved");
    let mut expected = moved.clone();
    expected.children = Vec::new();
    assert_eq!(stored, expected);
}
