//! Trigger instances, rule enforcements and traces.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::params;
use rusqlite::types::Value;

use super::connection::{insert_error, sql_error};
use super::filter::Where;
use super::writer::Db;
use super::{Shared, direction, doc_by_id, found, from_doc, purge_limit, to_doc};
use crate::store::{
    Listing, Page, RuleEnforcementFilter, RuleEnforcementRecord, RuleEnforcementStore, StoreError,
    StoreResult, Timestamp, TraceComponent, TraceComponentKind, TraceFilter, TraceRecord,
    TraceStore, TriggerInstanceFilter, TriggerInstanceRecord, TriggerInstanceStatus,
    TriggerInstanceStore, to_micros,
};

/// Delete up to `limit` rows of `table` whose `column` is before `cutoff`, oldest rows first.
fn purge(db: &Db<'_, '_>, table: &str, column: &str, cutoff: i64, limit: i64) -> StoreResult<u64> {
    db.conn()
        .prepare_cached(&format!(
            "DELETE FROM {table} WHERE seq IN \
             (SELECT seq FROM {table} WHERE {column} < ?1 ORDER BY seq LIMIT ?2)"
        ))
        .and_then(|mut s| s.execute(params![cutoff, limit]))
        .map(|n| n as u64)
        .map_err(sql_error)
}

/// Parse each page row's doc.
fn listing<T: serde::de::DeserializeOwned>(
    what: &'static str,
    (docs, total): (Vec<String>, u64),
) -> StoreResult<Listing<T>> {
    let items = docs
        .iter()
        .map(|doc| from_doc(what, doc))
        .collect::<StoreResult<Vec<T>>>()?;
    Ok(Listing { items, total })
}

const TRIGGER_INSTANCE: &str = "trigger instance";

/// A trigger instance as its row, built off the writer thread.
pub(super) struct TriggerInstanceRow {
    id: String,
    trigger: String,
    trigger_type: Option<String>,
    status: &'static str,
    time: i64,
    doc: String,
}

impl TriggerInstanceRow {
    pub(super) fn new(instance: &TriggerInstanceRecord) -> StoreResult<Self> {
        Ok(Self {
            doc: to_doc(TRIGGER_INSTANCE, instance)?,
            id: instance.id.clone(),
            trigger: instance.trigger.clone(),
            trigger_type: instance.trigger_type.clone(),
            status: instance.status.as_str(),
            time: to_micros(instance.occurrence_time),
        })
    }

    /// Insert it (one statement).
    pub(super) fn insert(&self, db: &Db<'_, '_>) -> StoreResult<()> {
        db.with_statement(
            "INSERT INTO trigger_instances (id, trigger_ref, trigger_type, status, \
                 occurrence_time, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            |s| {
                s.execute(params![
                    self.id,
                    self.trigger,
                    self.trigger_type,
                    self.status,
                    self.time,
                    self.doc
                ])
            },
        )
        .map(|_| ())
        .map_err(|e| insert_error(TRIGGER_INSTANCE, &self.id, e))
    }
}

/// Set a trigger instance's status (one statement).
pub(super) fn set_trigger_instance_status(
    db: &Db<'_, '_>,
    id: &str,
    status: TriggerInstanceStatus,
) -> StoreResult<()> {
    let changed = db
        .with_statement(
            "UPDATE trigger_instances SET status = ?1, \
             doc = json_set(doc, '$.status', ?1) WHERE id = ?2",
            |s| s.execute(params![status.as_str(), id]),
        )
        .map_err(sql_error)?;
    found(changed, TRIGGER_INSTANCE, id)
}

/// The trigger instances of one store.
pub(super) struct TriggerInstances(pub(super) Arc<Shared>);

#[async_trait]
impl TriggerInstanceStore for TriggerInstances {
    async fn create(&self, instance: &TriggerInstanceRecord) -> StoreResult<()> {
        let row = TriggerInstanceRow::new(instance)?;
        self.0.write_one(move |db| row.insert(db)).await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<TriggerInstanceRecord>> {
        let id = id.to_owned();
        let doc = self
            .0
            .read(move |db| doc_by_id(db, "trigger_instances", &id))
            .await?;
        doc.map(|d| from_doc(TRIGGER_INSTANCE, &d)).transpose()
    }

    async fn set_status(&self, id: &str, status: TriggerInstanceStatus) -> StoreResult<()> {
        let id = id.to_owned();
        self.0
            .write_one(move |db| set_trigger_instance_status(db, &id, status))
            .await
    }

    async fn list(
        &self,
        filter: &TriggerInstanceFilter,
        page: Page,
    ) -> StoreResult<Listing<TriggerInstanceRecord>> {
        let mut sql = Where::new();
        sql.one_of("id", &filter.ids);
        sql.eq("trigger_ref", filter.trigger.as_deref());
        sql.eq("trigger_type", filter.trigger_type.as_deref());
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        // The status index leaves out `processed` (migration 7).
        sql.one_of_partial(
            "status",
            &statuses,
            TriggerInstanceStatus::Processed.as_str(),
        );
        sql.after("occurrence_time", filter.timestamp_gt);
        sql.before("occurrence_time", filter.timestamp_lt);
        let dir = direction(filter.sort);
        let order = format!("occurrence_time {dir}, id {dir}");
        let rows = self
            .0
            .read(move |db| sql.page(db, "trigger_instances", "doc", &order, page, |r| r.get(0)))
            .await?;
        listing(TRIGGER_INSTANCE, rows)
    }

    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64> {
        let limit = purge_limit(batch)?;
        let cutoff = to_micros(cutoff);
        self.0
            .write_one(move |db| purge(db, "trigger_instances", "occurrence_time", cutoff, limit))
            .await
    }
}

const ENFORCEMENT: &str = "rule enforcement";

/// A rule enforcement as its row, built off the writer thread.
pub(super) struct EnforcementRow {
    id: String,
    rule_ref: String,
    rule_id: Option<String>,
    execution: Option<String>,
    trigger_instance: String,
    at: i64,
    doc: String,
}

impl EnforcementRow {
    pub(super) fn new(record: &RuleEnforcementRecord) -> StoreResult<Self> {
        let e = &record.enforcement;
        Ok(Self {
            doc: to_doc(ENFORCEMENT, record)?,
            id: record.id.clone(),
            rule_ref: e.rule.reference.clone(),
            rule_id: e.rule.id.clone(),
            execution: e.execution_id.clone(),
            trigger_instance: e.trigger_instance_id.clone(),
            at: to_micros(e.enforced_at),
        })
    }

    /// Insert it (one statement).
    pub(super) fn insert(&self, db: &Db<'_, '_>) -> StoreResult<()> {
        db.with_statement(
            "INSERT INTO rule_enforcements (id, rule_ref, rule_id, execution_id, \
                 trigger_instance_id, enforced_at, doc) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            |s| {
                s.execute(params![
                    self.id,
                    self.rule_ref,
                    self.rule_id,
                    self.execution,
                    self.trigger_instance,
                    self.at,
                    self.doc
                ])
            },
        )
        .map(|_| ())
        .map_err(|e| insert_error(ENFORCEMENT, &self.id, e))
    }
}

/// The rule enforcements of one store.
pub(super) struct RuleEnforcements(pub(super) Arc<Shared>);

#[async_trait]
impl RuleEnforcementStore for RuleEnforcements {
    async fn create(&self, record: &RuleEnforcementRecord) -> StoreResult<()> {
        let row = EnforcementRow::new(record)?;
        self.0.write_one(move |db| row.insert(db)).await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<RuleEnforcementRecord>> {
        let id = id.to_owned();
        let doc = self
            .0
            .read(move |db| doc_by_id(db, "rule_enforcements", &id))
            .await?;
        doc.map(|d| from_doc(ENFORCEMENT, &d)).transpose()
    }

    async fn set_execution(&self, id: &str, execution_id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        let execution = execution_id.to_owned();
        self.0
            .write_one(move |db| {
                let changed = db
                    .with_statement(
                        "UPDATE rule_enforcements SET execution_id = ?1, \
                         doc = json_set(doc, '$.execution_id', ?1) WHERE id = ?2",
                        |s| s.execute(params![execution, id]),
                    )
                    .map_err(sql_error)?;
                found(changed, ENFORCEMENT, &id)
            })
            .await
    }

    async fn list(
        &self,
        filter: &RuleEnforcementFilter,
        page: Page,
    ) -> StoreResult<Listing<RuleEnforcementRecord>> {
        let mut sql = Where::new();
        sql.one_of("id", &filter.ids);
        sql.eq("rule_ref", filter.rule_ref.as_deref());
        sql.eq("rule_id", filter.rule_id.as_deref());
        sql.eq("execution_id", filter.execution.as_deref());
        sql.eq("trigger_instance_id", filter.trigger_instance.as_deref());
        sql.after("enforced_at", filter.enforced_at_gt);
        sql.before("enforced_at", filter.enforced_at_lt);
        let dir = direction(filter.sort);
        let order = format!("enforced_at {dir}, id {dir}");
        let rows = self
            .0
            .read(move |db| sql.page(db, "rule_enforcements", "doc", &order, page, |r| r.get(0)))
            .await?;
        listing(ENFORCEMENT, rows)
    }

    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64> {
        let limit = purge_limit(batch)?;
        let cutoff = to_micros(cutoff);
        self.0
            .write_one(move |db| purge(db, "rule_enforcements", "enforced_at", cutoff, limit))
            .await
    }
}

const TRACE: &str = "trace";

/// Record that trace `trace_id` holds the object (one row however often it is added).
fn link(db: &Db<'_, '_>, trace_id: &str, kind: &str, object_id: &str) -> StoreResult<()> {
    db.with_statement(
        "INSERT OR IGNORE INTO trace_links (kind, object_id, trace_id) VALUES (?1, ?2, ?3)",
        |s| s.execute(params![kind, object_id, trace_id]),
    )
    .map(|_| ())
    .map_err(sql_error)
}

/// A new trace as its rows, built off the writer thread.
pub(super) struct TraceRow {
    id: String,
    tag: String,
    start: i64,
    doc: String,
    components: Vec<(&'static str, String)>,
}

impl TraceRow {
    pub(super) fn new(record: &TraceRecord) -> StoreResult<Self> {
        let components: Vec<(&'static str, String)> = [
            (
                TraceComponentKind::TriggerInstance,
                &record.trigger_instances,
            ),
            (TraceComponentKind::Rule, &record.rules),
            (
                TraceComponentKind::ActionExecution,
                &record.action_executions,
            ),
        ]
        .into_iter()
        .flat_map(|(kind, list)| {
            list.iter()
                .map(move |c| (kind.as_str(), c.object_id.clone()))
        })
        .collect();
        Ok(Self {
            doc: to_doc(TRACE, record)?,
            id: record.id.clone(),
            tag: record.trace_tag.clone(),
            start: to_micros(record.start_timestamp),
            components,
        })
    }

    /// Insert it and its links (several statements: needs a savepoint).
    pub(super) fn insert(&self, db: &Db<'_, '_>) -> StoreResult<()> {
        db.with_statement(
            "INSERT INTO traces (id, trace_tag, start_timestamp, doc) \
                 VALUES (?1, ?2, ?3, ?4)",
            |s| s.execute(params![self.id, self.tag, self.start, self.doc]),
        )
        .map_err(|e| insert_error(TRACE, &self.id, e))?;
        for (kind, object_id) in &self.components {
            link(db, &self.id, kind, object_id)?;
        }
        Ok(())
    }
}

/// A component to append to a trace, built off the writer thread.
pub(super) struct ComponentRow {
    trace_id: String,
    kind: TraceComponentKind,
    object_id: String,
    json: String,
}

impl ComponentRow {
    pub(super) fn new(
        trace_id: &str,
        kind: TraceComponentKind,
        component: &TraceComponent,
    ) -> StoreResult<Self> {
        Ok(Self {
            json: to_doc(TRACE, component)?,
            trace_id: trace_id.to_owned(),
            kind,
            object_id: component.object_id.clone(),
        })
    }

    /// Append it as a row of its own: the trace's doc is not rewritten, so appending stays
    /// cheap however many components a trace has (a workflow's trace holds two per task).
    pub(super) fn add(&self, db: &Db<'_, '_>) -> StoreResult<()> {
        let exists = db
            .with_statement("SELECT 1 FROM traces WHERE id = ?1", |s| {
                s.exists([&self.trace_id])
            })
            .map_err(sql_error)?;
        found(usize::from(exists), TRACE, &self.trace_id)?;
        db.with_statement(
            "INSERT INTO trace_appended (trace_id, kind, doc) VALUES (?1, ?2, ?3)",
            |s| s.execute(params![self.trace_id, self.kind.as_str(), self.json]),
        )
        .map_err(sql_error)?;
        link(db, &self.trace_id, self.kind.as_str(), &self.object_id)
    }
}

/// A stored trace: its doc (with the components it was created with) and the components
/// appended since, in the order added.
fn load_trace(db: &Db<'_, '_>, id: &str, doc: &str) -> StoreResult<TraceRecord> {
    let mut record: TraceRecord = from_doc(TRACE, doc)?;
    let mut statement = db
        .conn()
        .prepare_cached("SELECT kind, doc FROM trace_appended WHERE trace_id = ?1 ORDER BY seq")
        .map_err(sql_error)?;
    let rows = statement
        .query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(sql_error)?;
    for row in rows {
        let (kind, doc) = row.map_err(sql_error)?;
        let component: TraceComponent = from_doc(TRACE, &doc)?;
        let list = match kind.parse::<TraceComponentKind>() {
            Ok(TraceComponentKind::TriggerInstance) => &mut record.trigger_instances,
            Ok(TraceComponentKind::Rule) => &mut record.rules,
            Ok(TraceComponentKind::ActionExecution) => &mut record.action_executions,
            Err(_) => {
                return Err(StoreError::Corrupt(format!(
                    "trace {id} has a component of unknown kind {kind:?}"
                )));
            }
        };
        list.push(component);
    }
    Ok(record)
}

/// Deletes the links of the traces a purge of `(cutoff, limit)` deletes: those of the
/// components each was created with (in its doc) and of those appended since.
static PURGE_LINKS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let created = [
        (TraceComponentKind::TriggerInstance, "trigger_instances"),
        (TraceComponentKind::Rule, "rules"),
        (TraceComponentKind::ActionExecution, "action_executions"),
    ]
    .map(|(kind, list)| {
        format!(
            "SELECT '{}', c.value ->> 'object_id', d.id FROM doomed d, json_each(d.doc, '$.{list}') c",
            kind.as_str()
        )
    })
    .join(" UNION ALL ");
    format!(
        "WITH doomed AS (SELECT id, doc FROM traces WHERE start_timestamp < ?1 ORDER BY seq \
         LIMIT ?2) DELETE FROM trace_links WHERE (kind, object_id, trace_id) IN ({created} \
         UNION ALL SELECT a.kind, a.doc ->> 'object_id', a.trace_id \
         FROM doomed d JOIN trace_appended a ON a.trace_id = d.id)"
    )
});

/// The traces of one store.
pub(super) struct Traces(pub(super) Arc<Shared>);

#[async_trait]
impl TraceStore for Traces {
    async fn create(&self, record: &TraceRecord) -> StoreResult<()> {
        let row = TraceRow::new(record)?;
        self.0.write_repeatable(move |db| row.insert(db)).await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<TraceRecord>> {
        let id = id.to_owned();
        self.0
            .read(move |db| {
                doc_by_id(db, "traces", &id)?
                    .map(|doc| load_trace(db, &id, &doc))
                    .transpose()
            })
            .await
    }

    async fn add_component(
        &self,
        trace_id: &str,
        kind: TraceComponentKind,
        component: &TraceComponent,
    ) -> StoreResult<()> {
        let row = ComponentRow::new(trace_id, kind, component)?;
        self.0.write_repeatable(move |db| row.add(db)).await
    }

    async fn list(&self, filter: &TraceFilter, page: Page) -> StoreResult<Listing<TraceRecord>> {
        let mut sql = Where::new();
        sql.one_of("id", &filter.ids);
        sql.eq("trace_tag", filter.trace_tag.as_deref());
        for (kind, object_id) in [
            (TraceComponentKind::ActionExecution, &filter.execution),
            (TraceComponentKind::Rule, &filter.rule),
            (
                TraceComponentKind::TriggerInstance,
                &filter.trigger_instance,
            ),
        ] {
            if let Some(object_id) = object_id {
                sql.clause(
                    "id IN (SELECT trace_id FROM trace_links WHERE kind = ? AND object_id = ?)",
                    [
                        Value::Text(kind.as_str().to_owned()),
                        Value::Text(object_id.clone()),
                    ],
                );
            }
        }
        let dir = direction(filter.sort);
        let order = format!("start_timestamp {dir}, id {dir}");
        let (items, total) = self
            .0
            .read(move |db| {
                let (rows, total) = sql.page(db, "traces", "id, doc", &order, page, |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?;
                let items = rows
                    .iter()
                    .map(|(id, doc)| load_trace(db, id, doc))
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok((items, total))
            })
            .await?;
        Ok(Listing { items, total })
    }

    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64> {
        let limit = purge_limit(batch)?;
        let cutoff = to_micros(cutoff);
        self.0
            .write(move |db| {
                // The same traces in each statement: the oldest `limit` before `cutoff`.
                db.conn()
                    .prepare_cached(&PURGE_LINKS)
                    .and_then(|mut s| s.execute(params![cutoff, limit]))
                    .map_err(sql_error)?;
                db.with_statement(
                    "DELETE FROM trace_appended WHERE trace_id IN (SELECT id FROM traces \
                         WHERE start_timestamp < ?1 ORDER BY seq LIMIT ?2)",
                    |s| s.execute(params![cutoff, limit]),
                )
                .map_err(sql_error)?;
                purge(db, "traces", "start_timestamp", cutoff, limit)
            })
            .await
    }
}
