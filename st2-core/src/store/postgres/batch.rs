//! [`Store::write_batch`](crate::store::Store::write_batch): the writes in order in one
//! transaction, with the same statements as the aggregate methods.

use tokio_postgres::types::Json;

use super::events::{
    INSERT_ENFORCEMENT, INSERT_TRACE, INSERT_TRIGGER_INSTANCE, SET_TRIGGER_INSTANCE_STATUS,
    add_component_sql, not_found, object_ids,
};
use super::executions::{ExecutionColumns, update_execution};
use super::queue::{ENQUEUE, FINISH, check_queue, lost};
use super::workflows::save_workflow;
use super::{PgStore, get, json, pg_error, pg_error_for};
use crate::store::{BatchWrite, BatchWritten, StoreResult, to_micros};

impl PgStore {
    pub(super) async fn write_all(
        &self,
        writes: Vec<BatchWrite>,
    ) -> StoreResult<Vec<BatchWritten>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        for write in &writes {
            if let BatchWrite::Enqueue(item) = write {
                check_queue(&item.queue)?;
            }
        }
        let now = self.now_micros();
        let mut client = self.client().await?;
        // Dropped without a commit (any error below), the transaction rolls back.
        let tx = client.transaction().await.map_err(pg_error)?;
        let mut written = Vec::with_capacity(writes.len());
        let mut queues = Vec::new();
        for write in &writes {
            written.push(match write {
                BatchWrite::CreateTriggerInstance(instance) => {
                    let statement = tx
                        .prepare_cached(INSERT_TRIGGER_INSTANCE)
                        .await
                        .map_err(pg_error)?;
                    tx.execute(
                        &statement,
                        &[
                            &instance.id,
                            &instance.trigger,
                            &instance.trigger_type,
                            &instance.status.as_str(),
                            &to_micros(instance.occurrence_time),
                            &json(instance),
                        ],
                    )
                    .await
                    .map_err(|e| pg_error_for(e, "trigger instance", &instance.id))?;
                    BatchWritten::Done
                }
                BatchWrite::SetTriggerInstanceStatus { id, status } => {
                    let statement = tx
                        .prepare_cached(SET_TRIGGER_INSTANCE_STATUS)
                        .await
                        .map_err(pg_error)?;
                    let n = tx
                        .execute(&statement, &[id, &status.as_str()])
                        .await
                        .map_err(|e| pg_error_for(e, "trigger instance", id))?;
                    if n == 0 {
                        return Err(not_found("trigger instance", id));
                    }
                    BatchWritten::Done
                }
                BatchWrite::CreateExecution(record) => {
                    ExecutionColumns::new(std::slice::from_ref(&**record))
                        .insert(&tx, &record.id)
                        .await?;
                    BatchWritten::Execution {
                        revision: 1,
                        children: Vec::new(),
                    }
                }
                BatchWrite::UpdateExecution(record) => {
                    let (revision, children) = update_execution(&tx, record).await?;
                    BatchWritten::Execution { revision, children }
                }
                BatchWrite::CreateRuleEnforcement(record) => {
                    let e = &record.enforcement;
                    let statement = tx
                        .prepare_cached(INSERT_ENFORCEMENT)
                        .await
                        .map_err(pg_error)?;
                    tx.execute(
                        &statement,
                        &[
                            &record.id,
                            &e.rule.reference,
                            &e.rule.id,
                            &e.execution_id,
                            &e.trigger_instance_id,
                            &to_micros(e.enforced_at),
                            &json(record),
                        ],
                    )
                    .await
                    .map_err(|e| pg_error_for(e, "rule enforcement", &record.id))?;
                    BatchWritten::Done
                }
                BatchWrite::CreateTrace(record) => {
                    let statement = tx.prepare_cached(INSERT_TRACE).await.map_err(pg_error)?;
                    tx.execute(
                        &statement,
                        &[
                            &record.id,
                            &record.trace_tag,
                            &to_micros(record.start_timestamp),
                            &object_ids(&record.trigger_instances),
                            &object_ids(&record.rules),
                            &object_ids(&record.action_executions),
                            &json(record),
                        ],
                    )
                    .await
                    .map_err(|e| pg_error_for(e, "trace", &record.id))?;
                    BatchWritten::Done
                }
                BatchWrite::AddTraceComponent {
                    trace_id,
                    kind,
                    component,
                } => {
                    let statement = tx
                        .prepare_cached(add_component_sql(*kind))
                        .await
                        .map_err(pg_error)?;
                    let n = tx
                        .execute(
                            &statement,
                            &[trace_id, &json(component), &component.object_id],
                        )
                        .await
                        .map_err(|e| pg_error_for(e, "trace", trace_id))?;
                    if n == 0 {
                        return Err(not_found("trace", trace_id));
                    }
                    BatchWritten::Done
                }
                BatchWrite::Enqueue(item) => {
                    let not_before = item.not_before.map(to_micros).unwrap_or(now);
                    let statement = tx.prepare_cached(ENQUEUE).await.map_err(pg_error)?;
                    let row = tx
                        .query_one(
                            &statement,
                            &[
                                &item.queue,
                                &Json(&item.payload),
                                &item.required_tag,
                                &not_before,
                                &now,
                            ],
                        )
                        .await
                        .map_err(pg_error)?;
                    queues.push(item.queue.as_str());
                    BatchWritten::WorkItem(get(&row, 0)?)
                }
                BatchWrite::FinishWork(lease) => {
                    let statement = tx.prepare_cached(FINISH).await.map_err(pg_error)?;
                    let n = tx
                        .execute(&statement, &[&lease.item_id, &lease.fence, &now])
                        .await
                        .map_err(pg_error)?;
                    if n == 0 {
                        return Err(lost(*lease));
                    }
                    BatchWritten::Done
                }
                BatchWrite::SaveWorkflow {
                    record,
                    parts,
                    tasks,
                } => BatchWritten::Workflow(save_workflow(&tx, record, parts, tasks).await?),
            });
        }
        tx.commit().await.map_err(pg_error)?;
        queues.sort_unstable();
        queues.dedup();
        for queue in queues {
            self.wake(queue);
        }
        Ok(written)
    }
}
