//! The SQLite store's own contract: files that cannot be written, full disks, corrupt files and
//! newer schemas fail with the right `StoreError` and never panic; group commit acknowledges a
//! write only once it has committed; memory and file databases behave alike.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use st2_core::clock::ManualClock;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{
    ClaimRequest, ExecutionFilter, ExecutionRecord, ExecutionStatus, InquiryRecord, InquiryStatus,
    KeyScope, KeyValueRecord, NewWorkItem, Page, ParentFilter, SortOrder, Store, StoreError,
    TraceComponent, TraceComponentKind, TraceFilter, TraceRecord, TriggerInstanceFilter,
    TriggerInstanceStatus, from_micros, new_id,
};

fn start() -> DateTime<Utc> {
    from_micros(1_700_000_000_123_456)
}

fn execution(id: &str, parent: Option<&str>, offset_secs: i64) -> ExecutionRecord {
    serde_json::from_value(json!({
        "id": id,
        "action_ref": "core.local",
        "action": {"ref": "core.local", "runner_type": "local-shell-cmd"},
        "runner": {"name": "local-shell-cmd"},
        "status": "requested",
        "parameters": {"cmd": "echo hi"},
        "context": {"user": "stanley"},
        "parent": parent,
        "start_timestamp": start() + TimeDelta::seconds(offset_secs),
    }))
    .expect("a valid execution")
}

async fn memory() -> SqliteStore {
    SqliteStore::open(SqliteOptions::memory())
        .await
        .expect("open in memory")
}

async fn file_store(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open(SqliteOptions::file(path))
        .await
        .expect("open the file")
}

#[tokio::test]
async fn a_path_that_cannot_be_created_is_unavailable_and_names_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").expect("write file");
    let path = file.join("st2.db");
    let error = SqliteStore::open(SqliteOptions::file(&path))
        .await
        .expect_err("a database under a regular file cannot be created");
    match &error {
        StoreError::Unavailable(message) => {
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_garbage_file_is_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("garbage.db");
    let garbage: Vec<u8> = (0..16_384u32).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(&path, garbage).expect("write garbage");
    let error = SqliteStore::open(SqliteOptions::file(&path))
        .await
        .expect_err("garbage is not a database");
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("st2.db");
    let store = SqliteStore::open(SqliteOptions::file(&path))
        .await
        .expect("open");
    store.close().await.expect("close");
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.pragma_update(None, "user_version", 999)
            .expect("set version");
    }
    let error = SqliteStore::open(SqliteOptions::file(&path))
        .await
        .expect_err("a newer schema");
    match &error {
        StoreError::SchemaTooNew { found, supported } => {
            assert_eq!(*found, 999);
            assert!(*supported >= 1 && *supported < 999);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(error.to_string().contains("newer"), "{error}");
}

/// A store at `path` capped at 512 KiB, written by 8 concurrent `write`s a round (each given
/// the round and its number, returning the ids it wrote and whether the store took them) until
/// the cap refuses some; the ids acknowledged and refused, after the store is closed.
async fn fill_until_full<W, F>(path: &std::path::Path, write: W) -> (Vec<String>, Vec<String>)
where
    W: Fn(Arc<SqliteStore>, i64, usize) -> F,
    F: std::future::Future<Output = (Vec<String>, Result<(), StoreError>)> + Send + 'static,
{
    let store = Arc::new(
        SqliteStore::open(SqliteOptions::file(path).max_size(512 * 1024))
            .await
            .expect("open"),
    );
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    // Concurrent writers so the failing write shares its batch with others.
    for round in 0..400 {
        let tasks: Vec<_> = (0..8)
            .map(|k| tokio::spawn(write(Arc::clone(&store), round, k)))
            .collect();
        for task in tasks {
            let (ids, outcome) = task.await.expect("task");
            match outcome {
                Ok(()) => acknowledged.extend(ids),
                Err(StoreError::DiskFull(_)) => refused.extend(ids),
                Err(other) => panic!("expected DiskFull, got {other:?}"),
            }
        }
        if !refused.is_empty() && round > 2 {
            break;
        }
    }
    assert!(!refused.is_empty(), "the size cap was never reached");
    assert!(!acknowledged.is_empty());
    // Earlier data stays readable.
    for id in &acknowledged {
        assert!(
            store.executions().get(id).await.expect("get").is_some(),
            "{id}"
        );
    }
    store.close().await.expect("close");
    (acknowledged, refused)
}

/// After a reopen of `path`: exactly `acknowledged` is stored, nothing of `refused`.
async fn only_acknowledged_after_reopen(
    path: &std::path::Path,
    mut acknowledged: Vec<String>,
    refused: &[String],
) {
    let reopened = SqliteStore::open(SqliteOptions::file(path))
        .await
        .expect("reopen");
    let all = reopened
        .executions()
        .list(&ExecutionFilter::default(), Page::all())
        .await
        .expect("list");
    let mut stored: Vec<String> = all.items.into_iter().map(|r| r.id).collect();
    stored.sort();
    acknowledged.sort();
    assert_eq!(
        stored, acknowledged,
        "exactly the acknowledged writes, whole"
    );
    for id in refused {
        assert!(
            reopened.executions().get(id).await.expect("get").is_none(),
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_write_and_keeps_every_acknowledged_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("small.db");
    let (acknowledged, refused) = fill_until_full(&path, |store, round, k| async move {
        let id = format!("{round:012}{k:012}");
        let mut record = execution(&id, None, round);
        record.result = json!({"stdout": "x".repeat(2000)});
        let outcome = store.executions().create(&record).await.map(|_| ());
        (vec![id], outcome)
    })
    .await;
    only_acknowledged_after_reopen(&path, acknowledged, &refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_whole_write_batches_and_keeps_every_acknowledged_one() {
    // Write batches share savepoints with their neighbours; when one fails on the full disk,
    // its group is undone and the others run again alone. Each batch writes two executions:
    // both or neither may be there afterwards.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("small.db");
    let (acknowledged, refused) = fill_until_full(&path, |store, round, k| async move {
        let ids: Vec<String> = (0..2).map(|n| format!("{round:010}{k:06}{n:08}")).collect();
        let writes = ids
            .iter()
            .map(|id| {
                let mut record = execution(id, None, round);
                record.result = json!({"stdout": "x".repeat(1500)});
                st2_core::store::BatchWrite::CreateExecution(Arc::new(record))
            })
            .collect();
        let outcome = store
            .write_batch(writes)
            .await
            .map(|written| assert_eq!(written.len(), 2));
        (ids, outcome)
    })
    .await;
    only_acknowledged_after_reopen(&path, acknowledged, &refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_keeps_every_acknowledged_write_across_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("st2.db");
    let store = Arc::new(
        SqliteStore::open(SqliteOptions::file(&path))
            .await
            .expect("open"),
    );
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..50 {
                let id = format!("{t:012}{i:012}");
                store
                    .executions()
                    .create(&execution(&id, None, i))
                    .await
                    .expect("create");
                ids.push(id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.expect("task"));
    }
    // A duplicate in the middle of concurrent writes fails alone.
    let again = store
        .executions()
        .create(&execution(&ids[7], None, 0))
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
    store.close().await.expect("close");
    assert!(matches!(
        store.executions().get(&ids[0]).await,
        Err(StoreError::Unavailable(_))
    ));
    let reopened = SqliteStore::open(SqliteOptions::file(&path))
        .await
        .expect("reopen");
    let all = reopened
        .executions()
        .list(&ExecutionFilter::default(), Page::all())
        .await
        .expect("list");
    assert_eq!(all.total, 1600);
    for id in ids.iter().step_by(97) {
        assert!(reopened.executions().get(id).await.expect("get").is_some());
    }
}

/// A little of every aggregate, so both the read pool and the in-memory path are exercised.
async fn smoke(store: &dyn Store) {
    let executions = store.executions();
    let parent = executions
        .create(&execution("000000000000000000000001", None, 0))
        .await
        .expect("create parent");
    assert_eq!(parent.revision, 1);
    for (n, id) in ["000000000000000000000003", "000000000000000000000002"]
        .iter()
        .enumerate()
    {
        executions
            .create(&execution(id, Some(&parent.id), n as i64 + 1))
            .await
            .expect("create child");
    }
    let got = executions
        .get(&parent.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        got.children,
        ["000000000000000000000003", "000000000000000000000002"]
    );
    let mut running = got.clone();
    running.status = ExecutionStatus::Running;
    let updated = executions.update(&running).await.expect("update");
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.children.len(), 2);
    assert!(matches!(
        executions.update(&running).await,
        Err(StoreError::Conflict { .. })
    ));
    let top = executions
        .list(
            &ExecutionFilter {
                parent: ParentFilter::TopLevel,
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .expect("list");
    assert_eq!(top.total, 1);
    assert_eq!(top.items[0].children.len(), 2);
    assert_eq!(top.items[0].status, ExecutionStatus::Running);
    let children = executions
        .list(
            &ExecutionFilter {
                parent: ParentFilter::Of(parent.id.clone()),
                sort: st2_core::store::SortOrder::Ascending,
                ..Default::default()
            },
            Page {
                limit: Some(1),
                offset: 1,
            },
        )
        .await
        .expect("list children");
    assert_eq!(children.total, 2);
    assert_eq!(children.items[0].id, "000000000000000000000002");

    let kv = store.key_values();
    let pair = KeyValueRecord {
        id: new_id(),
        scope: KeyScope::System,
        name: "a.b".into(),
        value: "1".into(),
        description: None,
        secret: false,
        expire_timestamp: None,
    };
    assert!(kv.put(&pair).await.expect("put").is_none());
    let replaced = kv
        .put(&KeyValueRecord {
            id: new_id(),
            value: "2".into(),
            ..pair.clone()
        })
        .await
        .expect("put again");
    assert_eq!(replaced.map(|p| p.value), Some("1".into()));
    let now = kv
        .get(KeyScope::System, "a.b")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (now.id.as_str(), now.value.as_str()),
        (pair.id.as_str(), "2")
    );
    let listed = kv.list(None, Some("a."), Page::all()).await.expect("list");
    assert_eq!(listed.total, 1);

    let trace = TraceRecord {
        id: new_id(),
        trace_tag: "tag".into(),
        trigger_instances: vec![],
        rules: vec![],
        action_executions: vec![],
        start_timestamp: start(),
    };
    store.traces().create(&trace).await.expect("trace");
    store
        .traces()
        .add_component(
            &trace.id,
            TraceComponentKind::ActionExecution,
            &TraceComponent {
                object_id: parent.id.clone(),
                reference: "core.local".into(),
                updated_at: start(),
                caused_by: None,
            },
        )
        .await
        .expect("add component");
    let found = store
        .traces()
        .list(
            &TraceFilter {
                execution: Some(parent.id.clone()),
                ..Default::default()
            },
            Page::all(),
        )
        .await
        .expect("list traces");
    assert_eq!(found.total, 1);
    assert_eq!(found.items[0].action_executions[0].object_id, parent.id);

    let inquiry = InquiryRecord {
        id: new_id(),
        status: InquiryStatus::Pending,
        schema: json!({"type": "object"}),
        route: String::new(),
        ttl: 0,
        users: vec![],
        roles: vec![],
        parent: None,
        response: None,
        created_at: start(),
        resolved_at: None,
    };
    store.inquiries().create(&inquiry).await.expect("inquiry");
    let resolved = store
        .inquiries()
        .resolve(
            &inquiry.id,
            InquiryStatus::Succeeded,
            Some(json!({"ok": true})),
            start(),
        )
        .await
        .expect("resolve");
    assert_eq!(resolved.status, InquiryStatus::Succeeded);
    assert_eq!(resolved.response, Some(json!({"ok": true})));
    assert_eq!(resolved.resolved_at, Some(start()));
    match store
        .inquiries()
        .resolve(&inquiry.id, InquiryStatus::Timeout, None, start())
        .await
    {
        Err(StoreError::Conflict { reason, .. }) => assert!(reason.contains("succeeded")),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn memory_and_file_databases_behave_alike() {
    let store = memory().await;
    smoke(&store).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = SqliteStore::open(SqliteOptions::file(dir.path().join("st2.db")))
        .await
        .expect("open file");
    smoke(&file).await;
}

#[tokio::test]
async fn leases_are_fenced_and_expire_by_the_store_clock() {
    let clock = Arc::new(ManualClock::new(start()));
    let store = SqliteStore::open(SqliteOptions::memory().with_clock(clock.clone()))
        .await
        .expect("open");
    let queue = store.queue();
    let first = queue
        .enqueue(NewWorkItem::new("runner", json!({"n": 1})))
        .await
        .expect("enqueue");
    let mut tagged = NewWorkItem::new("runner", json!({"n": 2}));
    tagged.required_tag = Some("gpu".into());
    queue.enqueue(tagged).await.expect("enqueue tagged");
    let mut later = NewWorkItem::new("runner", json!({"n": 3}));
    later.not_before = Some(start() + TimeDelta::seconds(60));
    queue.enqueue(later).await.expect("enqueue later");
    let depth = queue.depth("runner").await.expect("depth");
    assert_eq!((depth.ready, depth.delayed, depth.leased), (2, 1, 0));

    let lease_for = Duration::from_secs(30);
    let mut request = ClaimRequest::one("runner", "w1", lease_for);
    request.max_items = 10;
    let leases = queue.claim(&request).await.expect("claim");
    assert_eq!(leases.len(), 1, "the tagged and the delayed item wait");
    assert_eq!(leases[0].item.id, first);
    assert_eq!(leases[0].item.payload, json!({"n": 1}));
    assert_eq!(leases[0].item.attempts, 1);
    let held = leases[0].reference();

    clock.advance(TimeDelta::seconds(20));
    queue
        .heartbeat(held, lease_for)
        .await
        .expect("heartbeat in time");
    clock.advance(TimeDelta::seconds(41));
    assert!(matches!(
        queue.heartbeat(held, lease_for).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(queue.reap_expired().await.expect("reap"), 1);
    request.tags = vec!["gpu".into()];
    let again = queue.claim(&request).await.expect("claim again");
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|l| l.fence > held.fence));
    assert_eq!(again[0].item.id, first);
    assert_eq!(again[0].item.attempts, 2);
    assert!(matches!(
        queue.finish(held).await,
        Err(StoreError::LeaseLost { .. })
    ));
    for lease in &again {
        queue.finish(lease.reference()).await.expect("finish");
    }
    assert_eq!(
        queue.depth("runner").await.expect("depth"),
        Default::default()
    );
    assert!(matches!(
        queue
            .claim(&ClaimRequest {
                max_items: 0,
                ..request
            })
            .await,
        Err(StoreError::Invalid(_))
    ));
}

/// `(key, text)` rows of a table.
type Rows = Vec<(String, String)>;

/// The raw documents and snapshot rows of the database at `path` (closed).
fn raw_rows(path: &std::path::Path) -> (Rows, Rows) {
    let conn = rusqlite::Connection::open(path).expect("raw open");
    let rows = |sql: &str| -> Rows {
        conn.prepare(sql)
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Rows>>()
            })
            .expect(sql)
    };
    (
        rows("SELECT id, doc FROM executions ORDER BY seq"),
        rows("SELECT key, doc FROM snapshots ORDER BY key"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_stored_once_and_read_back_in_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("st2.db");
    let store = file_store(&path).await;
    let mut written = Vec::new();
    for i in 0..20 {
        let mut record = execution(&format!("e{i:02}"), None, i);
        if i % 2 == 1 {
            record.rule = Some(json!({"ref": "demo.r", "criteria": {}}).into());
            record.trigger_type = Some(json!({"ref": "core.st2.webhook"}).into());
        }
        written.push(store.executions().create(&record).await.expect("create"));
    }
    // Updated in a write batch too.
    let mut running = written[3].clone();
    running.status = ExecutionStatus::Running;
    written[3] = store.executions().update(&running).await.expect("update");
    for record in &written {
        let back = store.executions().get(&record.id).await.expect("get");
        assert_eq!(back.as_ref(), Some(record));
    }
    store.close().await.expect("close");

    let (docs, snapshots) = raw_rows(&path);
    // action, runner, rule, trigger type: once each, whatever the number of executions.
    assert_eq!(snapshots.len(), 4, "{snapshots:?}");
    for (id, doc) in &docs {
        assert!(doc.contains(r#""action":{"$snapshot":""#), "{id}: {doc}");
        assert!(!doc.contains("local-shell-cmd"), "{id}: {doc}");
    }

    // A new process (nothing in memory) reads them back from the table; listings too.
    let store = file_store(&path).await;
    for record in &written {
        let back = store.executions().get(&record.id).await.expect("get");
        assert_eq!(back.as_ref(), Some(record));
    }
    let listing = store
        .executions()
        .list(&ExecutionFilter::default(), Page::default())
        .await
        .expect("list");
    assert_eq!(listing.items.len(), written.len());
    for item in &listing.items {
        assert_eq!(Some(item), written.iter().find(|w| w.id == item.id));
    }
    store.close().await.expect("close");
}

#[tokio::test]
async fn documents_that_hold_their_snapshots_still_read_and_a_missing_one_is_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("st2.db");
    let store = file_store(&path).await;
    let old = store
        .executions()
        .create(&execution("old", None, 0))
        .await
        .expect("create");
    let mut other = execution("other", None, 1);
    other.action = json!({"ref": "core.other"}).into();
    store.executions().create(&other).await.expect("create");
    store.close().await.expect("close");
    {
        // `old` as an earlier version wrote it: the snapshots in the document. `other`'s
        // action snapshot lost.
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        let whole = serde_json::to_string(&old).expect("json");
        conn.execute("UPDATE executions SET doc = ?1 WHERE id = 'old'", [&whole])
            .expect("rewrite");
        conn.execute("DELETE FROM snapshots WHERE doc LIKE '%core.other%'", [])
            .expect("lose a snapshot");
    }
    let store = file_store(&path).await;
    let back = store.executions().get("old").await.expect("get");
    assert_eq!(back, Some(old));
    let error = store
        .executions()
        .get("other")
        .await
        .expect_err("its snapshot is gone");
    match &error {
        StoreError::Corrupt(message) => {
            assert!(message.contains("snapshot"), "{message}");
            // Which execution, which field.
            assert!(
                message.contains("execution other") && message.contains("`action`"),
                "{message}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The rest of the store goes on working.
    store
        .executions()
        .create(&execution("next", None, 2))
        .await
        .expect("create after");
    store.close().await.expect("close");
}

#[tokio::test]
async fn a_snapshot_whose_first_write_failed_is_written_with_the_next_execution() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("st2.db");
    let store = file_store(&path).await;
    store
        .executions()
        .create(&execution("taken", None, 0))
        .await
        .expect("create");
    // A new snapshot with a duplicate id: the write fails.
    let mut duplicate = execution("taken", None, 1);
    duplicate.action = json!({"ref": "core.fresh"}).into();
    store
        .executions()
        .create(&duplicate)
        .await
        .expect_err("the id is taken");
    let mut next = duplicate.clone();
    next.id = "next".into();
    let created = store.executions().create(&next).await.expect("create");
    store.close().await.expect("close");
    let store = file_store(&path).await;
    let back = store.executions().get("next").await.expect("get");
    assert_eq!(back, Some(created));
    store.close().await.expect("close");
}

/// A database at `path` as a build of schema `version` left it: the migrations up to it,
/// applied by hand.
fn database_at_schema(path: &std::path::Path, version: usize) -> rusqlite::Connection {
    const MIGRATIONS: [&str; 6] = [
        include_str!("../migrations/sqlite/0001_init.sql"),
        include_str!("../migrations/sqlite/0002_claim_by_tag.sql"),
        include_str!("../migrations/sqlite/0003_leaders.sql"),
        include_str!("../migrations/sqlite/0004_workflow_parts.sql"),
        include_str!("../migrations/sqlite/0005_snapshots.sql"),
        include_str!("../migrations/sqlite/0006_trace_links.sql"),
    ];
    let conn = rusqlite::Connection::open(path).expect("raw open");
    for sql in &MIGRATIONS[..version] {
        conn.execute_batch(sql).expect("old migration");
    }
    conn.pragma_update(None, "user_version", version as i64)
        .expect("set version");
    conn
}

/// A database of schema 5 holds its traces' components in `trace_components` (one row per
/// component, the appended ones with their JSON); migration 6 moves them to `trace_links` and
/// `trace_appended`, and the traces read and filter as before.
#[tokio::test]
async fn traces_of_schema_5_read_and_filter_the_same_after_migration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("st2.db");
    {
        let conn = database_at_schema(&path, 5);
        let component =
            |id: &str| json!({"object_id": id, "ref": format!("ref-{id}"), "updated_at": start()});
        let doc = json!({
            "id": "t1", "trace_tag": "old",
            "trigger_instances": [component("ti1")],
            "rules": [component("r1")],
            "action_executions": [component("ex1")],
            "start_timestamp": start(),
        });
        conn.execute(
            "INSERT INTO traces (id, trace_tag, start_timestamp, doc) VALUES ('t1', 'old', 1, ?1)",
            [doc.to_string()],
        )
        .expect("trace");
        for (kind, object, appended) in [
            ("trigger_instance", "ti1", None),
            ("rule", "r1", None),
            ("action_execution", "ex1", None),
            ("action_execution", "ex2", Some(component("ex2"))),
            ("trigger_instance", "ti2", Some(component("ti2"))),
            ("action_execution", "ex3", Some(component("ex3"))),
        ] {
            conn.execute(
                "INSERT INTO trace_components (trace_id, kind, object_id, doc) \
                 VALUES ('t1', ?1, ?2, ?3)",
                rusqlite::params![kind, object, appended.map(|c| c.to_string())],
            )
            .expect("component");
        }
    }
    let store = SqliteStore::open(SqliteOptions::file(&path))
        .await
        .expect("open and migrate");
    let traces = store.traces();
    let got = traces.get("t1").await.expect("get").expect("the trace");
    let objects = |list: &[TraceComponent]| -> Vec<String> {
        list.iter().map(|c| c.object_id.clone()).collect()
    };
    assert_eq!(objects(&got.trigger_instances), ["ti1", "ti2"]);
    assert_eq!(objects(&got.rules), ["r1"]);
    assert_eq!(objects(&got.action_executions), ["ex1", "ex2", "ex3"]);
    let by = TraceFilter::holding;
    for (kind, id) in [
        (TraceComponentKind::ActionExecution, "ex3"),
        (TraceComponentKind::ActionExecution, "ex1"),
        (TraceComponentKind::Rule, "r1"),
        (TraceComponentKind::TriggerInstance, "ti2"),
    ] {
        let found = traces.list(&by(kind, id), Page::all()).await.expect("list");
        assert_eq!(found.total, 1, "{id}");
        assert_eq!(found.items[0].id, "t1", "{id}");
    }
    // Appending after the migration numbers on from the migrated components.
    traces
        .add_component(
            "t1",
            TraceComponentKind::ActionExecution,
            &TraceComponent {
                object_id: "ex4".into(),
                reference: "ref-ex4".into(),
                updated_at: start(),
                caused_by: None,
            },
        )
        .await
        .expect("append");
    let got = traces.get("t1").await.expect("get").expect("the trace");
    assert_eq!(
        objects(&got.action_executions),
        ["ex1", "ex2", "ex3", "ex4"]
    );
    store.close().await.expect("close");
}

/// Migration 7 rebuilds the status indexes without the status most rows end in: the rows of
/// a schema-6 database filter by status as before, and new rows join them.
#[tokio::test]
async fn statuses_of_schema_6_filter_the_same_after_migration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("st2.db");
    let statuses = [
        "pending",
        "processed",
        "processing_failed",
        "processed",
        "processing",
    ];
    {
        let conn = database_at_schema(&path, 6);
        for (n, status) in statuses.iter().enumerate() {
            let id = format!("ti{n}");
            let doc = json!({
                "id": id, "trigger": "core.t", "trigger_type": "core.t", "payload": {},
                "occurrence_time": start() + TimeDelta::seconds(n as i64), "status": status,
            });
            conn.execute(
                "INSERT INTO trigger_instances (id, trigger_ref, trigger_type, status, \
                 occurrence_time, doc) VALUES (?1, 'core.t', 'core.t', ?2, ?3, ?4)",
                rusqlite::params![id, status, n as i64, doc.to_string()],
            )
            .expect("instance");
        }
    }
    let store = SqliteStore::open(SqliteOptions::file(&path))
        .await
        .expect("open and migrate");
    let instances = store.trigger_instances();
    instances
        .set_status("ti0", TriggerInstanceStatus::Processed)
        .await
        .expect("set status");
    let of = |statuses: Vec<TriggerInstanceStatus>| {
        let filter = TriggerInstanceFilter {
            statuses,
            sort: SortOrder::Ascending,
            ..TriggerInstanceFilter::default()
        };
        let instances = store.trigger_instances();
        async move {
            let page = instances.list(&filter, Page::all()).await.expect("list");
            let ids: Vec<String> = page.items.into_iter().map(|i| i.id).collect();
            assert_eq!(ids.len() as u64, page.total);
            ids
        }
    };
    assert_eq!(
        of(vec![TriggerInstanceStatus::Processed]).await,
        ["ti0", "ti1", "ti3"]
    );
    assert_eq!(
        of(vec![
            TriggerInstanceStatus::ProcessingFailed,
            TriggerInstanceStatus::Processing,
            TriggerInstanceStatus::Pending,
        ])
        .await,
        ["ti2", "ti4"]
    );
    assert_eq!(
        of(vec![
            TriggerInstanceStatus::Processing,
            TriggerInstanceStatus::Processed,
        ])
        .await,
        ["ti0", "ti1", "ti3", "ti4"]
    );
    store.close().await.expect("close");
    // The index holds only the rows not `processed`.
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let indexed: i64 = conn
        .query_row(
            "SELECT count(*) FROM trigger_instances INDEXED BY trigger_instances_status \
             WHERE status <> 'processed'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(indexed, 2);
}

/// A writer cache far smaller than one transaction's changes (SQLite then writes changed pages
/// to the log before the commit) loses nothing: every record of a large batch reads back, and a
/// batch that fails leaves nothing behind.
#[tokio::test]
async fn a_writer_cache_smaller_than_a_batch_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("st2.db");
    let store = SqliteStore::open(SqliteOptions::file(&path).writer_cache_kib(1))
        .await
        .expect("open");
    let records: Vec<ExecutionRecord> = (0..3000)
        .map(|n| {
            let mut r = execution(&format!("big{n:05}"), None, n);
            r.result = json!({"stdout": "x".repeat(500)});
            r
        })
        .collect();
    store
        .executions()
        .create_many(&records)
        .await
        .expect("a batch bigger than the cache");
    // A batch whose last record collides: none of it lands.
    let mut failing: Vec<ExecutionRecord> = (0..1000)
        .map(|n| execution(&format!("new{n:05}"), None, n))
        .collect();
    failing.push(execution("big00007", None, 0));
    assert!(store.executions().create_many(&failing).await.is_err());
    store.close().await.expect("close");

    let store = SqliteStore::open(SqliteOptions::file(&path))
        .await
        .expect("reopen");
    let listed = store
        .executions()
        .list(&ExecutionFilter::default(), Page::all())
        .await
        .expect("list");
    assert_eq!(listed.total, 3000);
    let got = store
        .executions()
        .get("big02999")
        .await
        .expect("get")
        .expect("the last record");
    assert_eq!(got.result, records[2999].result);
    assert!(
        store
            .executions()
            .get("new00000")
            .await
            .expect("get")
            .is_none()
    );
    store.close().await.expect("close");
}
