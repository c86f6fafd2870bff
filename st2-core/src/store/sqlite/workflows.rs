//! Workflow state (revisioned, with task records) and inquiries.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::connection::{insert_error, sql_error};
use super::filter::Where;
use super::writer::Db;
use super::{Shared, from_doc, to_doc};
use crate::store::{
    InquiryRecord, InquiryStatus, InquiryStore, Listing, Page, StatePart, StoreError, StoreResult,
    TaskRecord, Timestamp, WorkflowRecord, WorkflowStore, to_micros,
};

const WORKFLOW: &str = "workflow";
const TASK: &str = "task";

fn one_doc(db: &Db<'_, '_>, sql: &str, key: &str) -> StoreResult<Option<String>> {
    db.conn()
        .prepare_cached(sql)
        .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
        .map_err(sql_error)
}

fn revision(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Invalid("revision out of range".into()))
}

/// A workflow record's compare-and-set update, built off the writer thread.
struct UpdateRow {
    id: String,
    execution: String,
    expected: i64,
    next: i64,
    doc: String,
}

impl UpdateRow {
    /// The row and the record as it will be stored (its revision bumped).
    fn new(record: &WorkflowRecord) -> StoreResult<(WorkflowRecord, Self)> {
        let expected = revision(record.revision)?;
        let mut stored = record.clone();
        stored.revision = record
            .revision
            .checked_add(1)
            .ok_or_else(|| StoreError::Invalid("revision out of range".into()))?;
        let row = UpdateRow {
            id: stored.id.clone(),
            execution: stored.execution_id.clone(),
            expected,
            next: revision(stored.revision)?,
            doc: to_doc(WORKFLOW, &stored)?,
        };
        Ok((stored, row))
    }

    fn apply(&self, db: &Db<'_, '_>) -> StoreResult<()> {
        let changed = db
            .with_statement(
                "UPDATE workflows SET execution_id = ?1, revision = ?2, doc = ?3 \
                 WHERE id = ?4 AND revision = ?5",
                |s| {
                    s.execute(params![
                        self.execution,
                        self.next,
                        self.doc,
                        self.id,
                        self.expected
                    ])
                },
            )
            .map_err(sql_error)?;
        if changed > 0 {
            return Ok(());
        }
        let current: Option<i64> = db
            .with_statement("SELECT revision FROM workflows WHERE id = ?1", |s| {
                s.query_row([&self.id], |r| r.get(0)).optional()
            })
            .map_err(sql_error)?;
        let id = self.id.clone();
        Err(match current {
            None => StoreError::NotFound { what: WORKFLOW, id },
            Some(current) => StoreError::Conflict {
                what: WORKFLOW,
                id,
                reason: format!(
                    "stale revision {}: the stored revision is {current}",
                    self.expected
                ),
            },
        })
    }
}

/// A task record's upsert, built off the writer thread.
struct TaskRow {
    id: String,
    workflow: String,
    doc: String,
}

impl TaskRow {
    fn new(task: &TaskRecord) -> StoreResult<Self> {
        Ok(TaskRow {
            id: task.id.clone(),
            workflow: task.workflow_id.clone(),
            doc: to_doc(TASK, task)?,
        })
    }

    fn put(&self, db: &Db<'_, '_>) -> StoreResult<()> {
        db.with_statement(
            "INSERT INTO workflow_tasks (id, workflow_id, doc) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET workflow_id = excluded.workflow_id, \
                 doc = excluded.doc",
            |s| s.execute(params![self.id, self.workflow, self.doc]),
        )
        .map(|_| ())
        .map_err(sql_error)
    }
}

/// A workflow's save ([`WorkflowStore::save`]): its record's update, its changed parts and
/// task records, built off the writer thread.
pub(super) struct SaveRows {
    record: UpdateRow,
    parts: Vec<StatePart>,
    tasks: Vec<TaskRow>,
}

impl SaveRows {
    /// The rows and the record as it will be stored (its revision bumped).
    pub(super) fn new(
        record: &WorkflowRecord,
        parts: &[StatePart],
        tasks: &[TaskRecord],
    ) -> StoreResult<(WorkflowRecord, Self)> {
        let (stored, record) = UpdateRow::new(record)?;
        let parts = parts.to_vec();
        let tasks = tasks
            .iter()
            .map(TaskRow::new)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((
            stored,
            SaveRows {
                record,
                parts,
                tasks,
            },
        ))
    }

    pub(super) fn apply(&self, db: &Db<'_, '_>) -> StoreResult<()> {
        self.record.apply(db)?;
        let id = &self.record.id;
        for part in &self.parts {
            match &part.doc {
                Some(doc) => db.with_statement(
                    "INSERT INTO workflow_parts (workflow_id, key, doc) \
                     VALUES (?1, ?2, ?3) \
                     ON CONFLICT (workflow_id, key) DO UPDATE SET doc = excluded.doc",
                    |s| s.execute(params![id, part.key, doc]),
                ),
                None => db.with_statement(
                    "DELETE FROM workflow_parts WHERE workflow_id = ?1 AND key = ?2",
                    |s| s.execute(params![id, part.key]),
                ),
            }
            .map_err(sql_error)?;
        }
        for task in &self.tasks {
            task.put(db)?;
        }
        Ok(())
    }
}

/// The workflow state of one store.
pub(super) struct Workflows(pub(super) Arc<Shared>);

#[async_trait]
impl WorkflowStore for Workflows {
    async fn create(&self, record: &WorkflowRecord) -> StoreResult<WorkflowRecord> {
        let mut stored = record.clone();
        stored.revision = 1;
        let doc = to_doc(WORKFLOW, &stored)?;
        let id = stored.id.clone();
        let execution = stored.execution_id.clone();
        self.0
            .write_one(move |db| {
                db.with_statement(
                    "INSERT INTO workflows (id, execution_id, revision, doc) \
                         VALUES (?1, ?2, 1, ?3)",
                    |s| s.execute(params![id, execution, doc]),
                )
                .map(|_| ())
                .map_err(|e| insert_error(WORKFLOW, &id, e))
            })
            .await?;
        Ok(stored)
    }

    async fn get(&self, id: &str) -> StoreResult<Option<WorkflowRecord>> {
        let id = id.to_owned();
        let doc = self
            .0
            .read(move |db| one_doc(db, "SELECT doc FROM workflows WHERE id = ?1", &id))
            .await?;
        doc.map(|d| from_doc(WORKFLOW, &d)).transpose()
    }

    async fn get_by_execution(&self, execution_id: &str) -> StoreResult<Option<WorkflowRecord>> {
        let execution = execution_id.to_owned();
        let doc = self
            .0
            .read(move |db| {
                one_doc(
                    db,
                    "SELECT doc FROM workflows WHERE execution_id = ?1 ORDER BY seq DESC LIMIT 1",
                    &execution,
                )
            })
            .await?;
        doc.map(|d| from_doc(WORKFLOW, &d)).transpose()
    }

    async fn update(&self, record: &WorkflowRecord) -> StoreResult<WorkflowRecord> {
        let (stored, row) = UpdateRow::new(record)?;
        self.0.write_one(move |db| row.apply(db)).await?;
        Ok(stored)
    }

    async fn put_task(&self, task: &TaskRecord) -> StoreResult<()> {
        let row = TaskRow::new(task)?;
        self.0.write_one(move |db| row.put(db)).await
    }

    async fn save(
        &self,
        record: &WorkflowRecord,
        parts: &[StatePart],
        tasks: &[TaskRecord],
    ) -> StoreResult<WorkflowRecord> {
        let (stored, rows) = SaveRows::new(record, parts, tasks)?;
        self.0.write_repeatable(move |db| rows.apply(db)).await?;
        Ok(stored)
    }

    async fn list_parts(&self, workflow_id: &str) -> StoreResult<Vec<StatePart>> {
        let workflow = workflow_id.to_owned();
        self.0
            .read(move |db| {
                let mut statement = db
                    .conn()
                    .prepare_cached(
                        "SELECT key, doc FROM workflow_parts WHERE workflow_id = ?1 ORDER BY key",
                    )
                    .map_err(sql_error)?;
                let parts = statement
                    .query_map([workflow], |r| {
                        Ok(StatePart {
                            key: r.get(0)?,
                            doc: Some(r.get(1)?),
                        })
                    })
                    .map_err(sql_error)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(sql_error)?;
                Ok(parts)
            })
            .await
    }

    async fn get_task(&self, id: &str) -> StoreResult<Option<TaskRecord>> {
        let id = id.to_owned();
        let doc = self
            .0
            .read(move |db| one_doc(db, "SELECT doc FROM workflow_tasks WHERE id = ?1", &id))
            .await?;
        doc.map(|d| from_doc(TASK, &d)).transpose()
    }

    async fn list_tasks(&self, workflow_id: &str) -> StoreResult<Vec<TaskRecord>> {
        let workflow = workflow_id.to_owned();
        let docs = self
            .0
            .read(move |db| {
                let mut statement = db
                    .conn()
                    .prepare_cached(
                        "SELECT doc FROM workflow_tasks WHERE workflow_id = ?1 ORDER BY seq",
                    )
                    .map_err(sql_error)?;
                let docs = statement
                    .query_map([workflow], |r| r.get::<_, String>(0))
                    .map_err(sql_error)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(sql_error)?;
                Ok(docs)
            })
            .await?;
        docs.iter().map(|d| from_doc(TASK, d)).collect()
    }

    async fn delete(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.0
            .write(move |db| {
                let conn = db.conn();
                conn.prepare_cached("DELETE FROM workflow_tasks WHERE workflow_id = ?1")
                    .and_then(|mut s| s.execute([&id]))
                    .map_err(sql_error)?;
                conn.prepare_cached("DELETE FROM workflow_parts WHERE workflow_id = ?1")
                    .and_then(|mut s| s.execute([&id]))
                    .map_err(sql_error)?;
                conn.prepare_cached("DELETE FROM workflows WHERE id = ?1")
                    .and_then(|mut s| s.execute([&id]))
                    .map(|n| n > 0)
                    .map_err(sql_error)
            })
            .await
    }
}

const INQUIRY: &str = "inquiry";

/// The inquiries of one store.
pub(super) struct Inquiries(pub(super) Arc<Shared>);

#[async_trait]
impl InquiryStore for Inquiries {
    async fn create(&self, record: &InquiryRecord) -> StoreResult<()> {
        let doc = to_doc(INQUIRY, record)?;
        let id = record.id.clone();
        let status = record.status.as_str();
        let created = to_micros(record.created_at);
        self.0
            .write_one(move |db| {
                db.with_statement(
                    "INSERT INTO inquiries (id, status, created_at, doc) \
                         VALUES (?1, ?2, ?3, ?4)",
                    |s| s.execute(params![id, status, created, doc]),
                )
                .map(|_| ())
                .map_err(|e| insert_error(INQUIRY, &id, e))
            })
            .await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<InquiryRecord>> {
        let id = id.to_owned();
        let doc = self
            .0
            .read(move |db| one_doc(db, "SELECT doc FROM inquiries WHERE id = ?1", &id))
            .await?;
        doc.map(|d| from_doc(INQUIRY, &d)).transpose()
    }

    async fn list(
        &self,
        status: Option<InquiryStatus>,
        page: Page,
    ) -> StoreResult<Listing<InquiryRecord>> {
        let mut sql = Where::new();
        sql.eq("status", status.map(InquiryStatus::as_str));
        let (docs, total) = self
            .0
            .read(move |db| {
                sql.page(
                    db,
                    "inquiries",
                    "doc",
                    "created_at DESC, id DESC",
                    page,
                    |r| r.get::<_, String>(0),
                )
            })
            .await?;
        let items = docs
            .iter()
            .map(|d| from_doc(INQUIRY, d))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Listing { items, total })
    }

    async fn resolve(
        &self,
        id: &str,
        status: InquiryStatus,
        response: Option<Value>,
        at: Timestamp,
    ) -> StoreResult<InquiryRecord> {
        let id = id.to_owned();
        let response = to_doc(INQUIRY, &response)?;
        let at = to_doc(INQUIRY, &at)?;
        let doc = self
            .0
            .write_one(move |db| {
                let updated: Option<String> = db
                    .with_statement(
                        "UPDATE inquiries SET status = ?1, doc = json_set(doc, '$.status', ?1, \
                         '$.response', json(?2), '$.resolved_at', json(?3)) \
                         WHERE id = ?4 AND status = 'pending' RETURNING doc",
                        |s| {
                            s.query_row(params![status.as_str(), response, at, id], |r| r.get(0))
                                .optional()
                        },
                    )
                    .map_err(sql_error)?;
                if let Some(doc) = updated {
                    return Ok(doc);
                }
                let current: Option<String> = db
                    .with_statement("SELECT status FROM inquiries WHERE id = ?1", |s| {
                        s.query_row([&id], |r| r.get(0)).optional()
                    })
                    .map_err(sql_error)?;
                Err(match current {
                    None => StoreError::NotFound { what: INQUIRY, id },
                    Some(current) => StoreError::Conflict {
                        what: INQUIRY,
                        id,
                        reason: format!("the inquiry is no longer pending: it is {current}"),
                    },
                })
            })
            .await?;
        from_doc(INQUIRY, &doc)
    }
}
