//! Workflow state, task records and inquiries.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use super::{
    Params, PgStore, clamp_i64, doc, get, json, lost_update, pg_error, pg_error_for, to_u64,
};
use crate::store::{
    InquiryRecord, InquiryStatus, InquiryStore, Listing, Page, StatePart, StoreError, StoreResult,
    TaskRecord, Timestamp, WorkflowRecord, WorkflowStore, from_micros, to_micros,
};

fn workflow_of(row: &Row) -> StoreResult<WorkflowRecord> {
    let mut record: WorkflowRecord = doc(row, 0, "workflow")?;
    let revision: i64 = get(row, 1)?;
    record.revision = to_u64(revision);
    Ok(record)
}

const UPDATE_WORKFLOW: &str = "UPDATE workflows SET revision = revision + 1, execution_id = $3,
        doc = $4
    WHERE id = $1 AND revision = $2";

const PUT_TASK: &str = "INSERT INTO workflow_tasks (id, workflow_id, doc) VALUES ($1, $2, $3)
    ON CONFLICT (id) DO UPDATE SET workflow_id = EXCLUDED.workflow_id, doc = EXCLUDED.doc";

const PUT_PART: &str = "INSERT INTO workflow_parts (workflow_id, key, doc) VALUES ($1, $2, $3)
    ON CONFLICT (workflow_id, key) DO UPDATE SET doc = EXCLUDED.doc";

const DELETE_PART: &str = "DELETE FROM workflow_parts WHERE workflow_id = $1 AND key = $2";

/// [`WorkflowStore::save`] on `client` (a transaction: the record's update, its parts and
/// tasks land together or not at all); the record as stored.
pub(super) async fn save_workflow(
    client: &impl GenericClient,
    record: &WorkflowRecord,
    parts: &[StatePart],
    tasks: &[TaskRecord],
) -> StoreResult<WorkflowRecord> {
    let next = record
        .revision
        .checked_add(1)
        .ok_or_else(|| StoreError::Invalid(format!("workflow {}: revision overflow", record.id)))?;
    let mut new = record.clone();
    new.revision = next;
    let statement = client
        .prepare_cached(UPDATE_WORKFLOW)
        .await
        .map_err(pg_error)?;
    let n = client
        .execute(
            &statement,
            &[
                &record.id,
                &clamp_i64(record.revision),
                &record.execution_id,
                &json(&new),
            ],
        )
        .await
        .map_err(|e| pg_error_for(e, "workflow", &record.id))?;
    if n == 0 {
        return Err(
            lost_update(client, "workflows", "workflow", &record.id, record.revision).await,
        );
    }
    for part in parts {
        match &part.doc {
            Some(text) => {
                let statement = client.prepare_cached(PUT_PART).await.map_err(pg_error)?;
                client
                    .execute(&statement, &[&record.id, &part.key, text])
                    .await
                    .map_err(pg_error)?;
            }
            None => {
                let statement = client.prepare_cached(DELETE_PART).await.map_err(pg_error)?;
                client
                    .execute(&statement, &[&record.id, &part.key])
                    .await
                    .map_err(pg_error)?;
            }
        }
    }
    for task in tasks {
        let statement = client.prepare_cached(PUT_TASK).await.map_err(pg_error)?;
        client
            .execute(&statement, &[&task.id, &task.workflow_id, &json(task)])
            .await
            .map_err(|e| pg_error_for(e, "task", &task.id))?;
    }
    Ok(new)
}

#[async_trait]
impl WorkflowStore for PgStore {
    async fn create(&self, record: &WorkflowRecord) -> StoreResult<WorkflowRecord> {
        let mut new = record.clone();
        new.revision = 1;
        self.exec(
            "INSERT INTO workflows (id, execution_id, revision, doc) VALUES ($1, $2, 1, $3)",
            &[&new.id, &new.execution_id, &json(&new)],
            "workflow",
            &new.id,
        )
        .await?;
        Ok(new)
    }

    async fn get(&self, id: &str) -> StoreResult<Option<WorkflowRecord>> {
        self.one("SELECT doc, revision FROM workflows WHERE id = $1", &[&id])
            .await?
            .as_ref()
            .map(workflow_of)
            .transpose()
    }

    async fn get_by_execution(&self, execution_id: &str) -> StoreResult<Option<WorkflowRecord>> {
        // Normally one per execution; should there be several, the newest.
        self.one(
            "SELECT doc, revision FROM workflows WHERE execution_id = $1
             ORDER BY seq DESC LIMIT 1",
            &[&execution_id],
        )
        .await?
        .as_ref()
        .map(workflow_of)
        .transpose()
    }

    async fn update(&self, record: &WorkflowRecord) -> StoreResult<WorkflowRecord> {
        self.save(record, &[], &[]).await
    }

    async fn save(
        &self,
        record: &WorkflowRecord,
        parts: &[StatePart],
        tasks: &[TaskRecord],
    ) -> StoreResult<WorkflowRecord> {
        let mut client = self.client().await?;
        // Dropped without a commit (any error below), the transaction rolls back.
        let tx = client.transaction().await.map_err(pg_error)?;
        let saved = save_workflow(&tx, record, parts, tasks).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(saved)
    }

    async fn list_parts(&self, workflow_id: &str) -> StoreResult<Vec<StatePart>> {
        self.all(
            "SELECT key, doc FROM workflow_parts WHERE workflow_id = $1 ORDER BY key",
            &[&workflow_id],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(StatePart {
                key: get(row, 0)?,
                doc: Some(get(row, 1)?),
            })
        })
        .collect()
    }

    async fn put_task(&self, task: &TaskRecord) -> StoreResult<()> {
        self.exec(
            PUT_TASK,
            &[&task.id, &task.workflow_id, &json(task)],
            "task",
            &task.id,
        )
        .await?;
        Ok(())
    }

    async fn get_task(&self, id: &str) -> StoreResult<Option<TaskRecord>> {
        self.one("SELECT doc FROM workflow_tasks WHERE id = $1", &[&id])
            .await?
            .map(|row| doc(&row, 0, "task"))
            .transpose()
    }

    async fn list_tasks(&self, workflow_id: &str) -> StoreResult<Vec<TaskRecord>> {
        self.all(
            "SELECT doc FROM workflow_tasks WHERE workflow_id = $1 ORDER BY seq",
            &[&workflow_id],
        )
        .await?
        .iter()
        .map(|row| doc(row, 0, "task"))
        .collect()
    }

    async fn delete(&self, id: &str) -> StoreResult<bool> {
        let row = self
            .one(
                "WITH tasks AS (DELETE FROM workflow_tasks WHERE workflow_id = $1),
                      parts AS (DELETE FROM workflow_parts WHERE workflow_id = $1),
                      wf AS (DELETE FROM workflows WHERE id = $1 RETURNING id)
                 SELECT count(*) FROM wf",
                &[&id],
            )
            .await?;
        let n: i64 = match row {
            Some(row) => get(&row, 0)?,
            None => 0,
        };
        Ok(n > 0)
    }
}

fn inquiry_of(row: &Row) -> StoreResult<InquiryRecord> {
    let mut record: InquiryRecord = doc(row, 0, "inquiry")?;
    let status: String = get(row, 1)?;
    record.status = status
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("inquiry status: {e}")))?;
    let response: Option<Json<Value>> = row
        .try_get(2)
        .map_err(|e| StoreError::Corrupt(format!("an inquiry response does not parse: {e}")))?;
    record.response = response.map(|Json(v)| v);
    let resolved_at: Option<i64> = get(row, 3)?;
    record.resolved_at = resolved_at.map(from_micros);
    Ok(record)
}

const INQUIRY_COLUMNS: &str = "doc, status, response, resolved_at";

#[async_trait]
impl InquiryStore for PgStore {
    async fn create(&self, record: &InquiryRecord) -> StoreResult<()> {
        self.exec(
            "INSERT INTO inquiries (id, status, created_at, resolved_at, response, doc)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &record.id,
                &record.status.as_str(),
                &to_micros(record.created_at),
                &record.resolved_at.map(to_micros),
                &record.response.as_ref().map(Json),
                &json(record),
            ],
            "inquiry",
            &record.id,
        )
        .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> StoreResult<Option<InquiryRecord>> {
        self.one(
            &format!("SELECT {INQUIRY_COLUMNS} FROM inquiries WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(inquiry_of)
        .transpose()
    }

    async fn list(
        &self,
        status: Option<InquiryStatus>,
        page: Page,
    ) -> StoreResult<Listing<InquiryRecord>> {
        let mut p = Params::default();
        if let Some(status) = status {
            let n = p.bind(status.as_str());
            p.and(format!("status = {n}"));
        }
        let (rows, total) = self
            .page(
                INQUIRY_COLUMNS,
                "inquiries",
                "created_at DESC, id DESC",
                p,
                page,
            )
            .await?;
        let items = rows.iter().map(inquiry_of).collect::<StoreResult<_>>()?;
        Ok(Listing { items, total })
    }

    async fn resolve(
        &self,
        id: &str,
        status: InquiryStatus,
        response: Option<Value>,
        at: Timestamp,
    ) -> StoreResult<InquiryRecord> {
        if status == InquiryStatus::Pending {
            return Err(StoreError::Invalid(
                "an inquiry is resolved to succeeded, timeout or canceled, not pending".into(),
            ));
        }
        let row = self
            .one(
                &format!(
                    "UPDATE inquiries SET status = $2, response = $3, resolved_at = $4
                     WHERE id = $1 AND status = 'pending'
                     RETURNING {INQUIRY_COLUMNS}"
                ),
                &[
                    &id,
                    &status.as_str(),
                    &response.as_ref().map(Json),
                    &to_micros(at),
                ],
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict { reason, .. } => StoreError::Conflict {
                    what: "inquiry",
                    id: id.to_owned(),
                    reason,
                },
                other => other,
            })?;
        if let Some(row) = row {
            return inquiry_of(&row);
        }
        let row = self
            .one("SELECT status FROM inquiries WHERE id = $1", &[&id])
            .await?;
        Err(match row {
            None => StoreError::NotFound {
                what: "inquiry",
                id: id.to_owned(),
            },
            Some(row) => {
                let current: String = get(&row, 0)?;
                StoreError::Conflict {
                    what: "inquiry",
                    id: id.to_owned(),
                    reason: format!("already {current}"),
                }
            }
        })
    }
}
