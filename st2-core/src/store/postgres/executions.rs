//! Executions (children derived from `parent`) and their output.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use super::{
    Params, PgStore, batch_limit, clamp_i64, direction, doc, get, json, lost_update, pg_error,
    pg_error_for, to_u64,
};
use crate::store::{
    ExecutionFilter, ExecutionOutputStore, ExecutionRecord, ExecutionStatus, ExecutionStore,
    Listing, NewOutput, OutputChunk, OutputType, Page, ParentFilter, StoreError, StoreResult,
    Timestamp, from_micros, to_micros,
};

const INSERT_EXECUTIONS: &str = "INSERT INTO executions (id, revision, action_ref, status, parent,
        user_name, runner, rule_ref, trigger_ref, trigger_type, trigger_instance, start_ts,
        end_ts, doc)
    SELECT id, 1, action_ref, status, parent, user_name, runner, rule_ref, trigger_ref,
        trigger_type, trigger_instance, start_ts, end_ts, doc
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::bigint[],
                $13::json[])
        WITH ORDINALITY AS r(id, action_ref, status, parent, user_name, runner, rule_ref,
            trigger_ref, trigger_type, trigger_instance, start_ts, end_ts, doc, ord)
    ORDER BY ord";

const UPDATE_EXECUTION: &str = "UPDATE executions SET revision = revision + 1, action_ref = $3,
        status = $4, parent = $5, user_name = $6, runner = $7, rule_ref = $8, trigger_ref = $9,
        trigger_type = $10, trigger_instance = $11, start_ts = $12, end_ts = $13, doc = $14
    WHERE id = $1 AND revision = $2
    RETURNING revision";

const CHILDREN: &str =
    "SELECT parent, id FROM executions WHERE parent = ANY($1) ORDER BY parent, seq";

const COMPLETED: [ExecutionStatus; 5] = [
    ExecutionStatus::Succeeded,
    ExecutionStatus::Failed,
    ExecutionStatus::Timeout,
    ExecutionStatus::Canceled,
    ExecutionStatus::Abandoned,
];

/// The stored form: revision set, children cleared (they are derived).
fn stored(record: &ExecutionRecord, revision: u64) -> ExecutionRecord {
    let mut record = record.clone();
    record.revision = revision;
    record.children.clear();
    record
}

fn execution_of(row: &Row) -> StoreResult<ExecutionRecord> {
    let mut record: ExecutionRecord = doc(row, 0, "execution")?;
    let revision: i64 = get(row, 1)?;
    record.revision = to_u64(revision);
    record.children.clear();
    Ok(record)
}

/// The columns of [`INSERT_EXECUTIONS`] for `records`, one array per column.
pub(super) struct ExecutionColumns {
    text: [Vec<Option<String>>; 10],
    start: Vec<i64>,
    end: Vec<Option<i64>>,
    docs: Vec<Json<ExecutionRecord>>,
}

impl ExecutionColumns {
    pub(super) fn new(records: &[ExecutionRecord]) -> Self {
        let mut text: [Vec<Option<String>>; 10] = Default::default();
        let mut start = Vec::with_capacity(records.len());
        let mut end = Vec::with_capacity(records.len());
        let mut docs = Vec::with_capacity(records.len());
        for record in records {
            let keys = record.keys();
            let values = [
                Some(record.id.clone()),
                Some(record.action_ref.clone()),
                Some(record.status.as_str().to_owned()),
                record.parent.clone(),
                keys.user,
                keys.runner,
                keys.rule,
                keys.trigger,
                keys.trigger_type,
                keys.trigger_instance,
            ];
            for (column, value) in text.iter_mut().zip(values) {
                column.push(value);
            }
            start.push(to_micros(record.start_timestamp));
            end.push(record.end_timestamp.map(to_micros));
            docs.push(Json(stored(record, 1)));
        }
        Self {
            text,
            start,
            end,
            docs,
        }
    }

    /// Insert them (one statement); `id` names the record in a conflict.
    pub(super) async fn insert(&self, client: &impl GenericClient, id: &str) -> StoreResult<()> {
        let statement = client
            .prepare_cached(INSERT_EXECUTIONS)
            .await
            .map_err(pg_error)?;
        let [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9] = &self.text;
        client
            .execute(
                &statement,
                &[
                    c0,
                    c1,
                    c2,
                    c3,
                    c4,
                    c5,
                    c6,
                    c7,
                    c8,
                    c9,
                    &self.start,
                    &self.end,
                    &self.docs,
                ],
            )
            .await
            .map_err(|e| pg_error_for(e, "execution", id))?;
        Ok(())
    }
}

/// Replace `record` stored at its revision (compare-and-set) on `client`; the new revision
/// and the execution's children.
pub(super) async fn update_execution(
    client: &impl GenericClient,
    record: &ExecutionRecord,
) -> StoreResult<(u64, Vec<String>)> {
    let next = record.revision.checked_add(1).ok_or_else(|| {
        StoreError::Invalid(format!("execution {}: revision overflow", record.id))
    })?;
    let new = stored(record, next);
    let keys = record.keys();
    let statement = client
        .prepare_cached(UPDATE_EXECUTION)
        .await
        .map_err(pg_error)?;
    let ids = [record.id.clone()];
    let (updated, mut children) = tokio::try_join!(
        async {
            client
                .query_opt(
                    &statement,
                    &[
                        &record.id,
                        &clamp_i64(record.revision),
                        &record.action_ref,
                        &record.status.as_str(),
                        &record.parent,
                        &keys.user,
                        &keys.runner,
                        &keys.rule,
                        &keys.trigger,
                        &keys.trigger_type,
                        &keys.trigger_instance,
                        &to_micros(record.start_timestamp),
                        &record.end_timestamp.map(to_micros),
                        &json(&new),
                    ],
                )
                .await
                .map_err(|e| pg_error_for(e, "execution", &record.id))
        },
        children_of(client, &ids)
    )?;
    if updated.is_none() {
        return Err(lost_update(
            client,
            "executions",
            "execution",
            &record.id,
            record.revision,
        )
        .await);
    }
    Ok((next, children.remove(&record.id).unwrap_or_default()))
}

/// The children of each of `ids`, in creation order.
async fn children_of(
    client: &impl GenericClient,
    ids: &[String],
) -> StoreResult<HashMap<String, Vec<String>>> {
    let mut children: HashMap<String, Vec<String>> = HashMap::new();
    if ids.is_empty() {
        return Ok(children);
    }
    let statement = client.prepare_cached(CHILDREN).await.map_err(pg_error)?;
    let rows = client.query(&statement, &[&ids]).await.map_err(pg_error)?;
    for row in &rows {
        let parent: String = get(row, 0)?;
        let id: String = get(row, 1)?;
        children.entry(parent).or_default().push(id);
    }
    Ok(children)
}

impl PgStore {
    async fn insert_executions(&self, records: &[ExecutionRecord]) -> StoreResult<()> {
        let columns = ExecutionColumns::new(records);
        let client = self.client().await?;
        let id = match records {
            [one] => one.id.as_str(),
            _ => "",
        };
        columns.insert(&client, id).await
    }
}

#[async_trait]
impl ExecutionStore for PgStore {
    async fn create(&self, record: &ExecutionRecord) -> StoreResult<ExecutionRecord> {
        self.insert_executions(std::slice::from_ref(record)).await?;
        Ok(stored(record, 1))
    }

    async fn create_many(&self, records: &[ExecutionRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.insert_executions(records).await
    }

    async fn get_without_children(&self, id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT doc, revision FROM executions WHERE id = $1")
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(&statement, &[&id])
            .await
            .map_err(pg_error)?;
        row.map(|row| execution_of(&row)).transpose()
    }

    async fn get(&self, id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT doc, revision FROM executions WHERE id = $1")
            .await
            .map_err(pg_error)?;
        let ids = [id.to_owned()];
        let (row, mut children) = tokio::try_join!(
            async { client.query_opt(&statement, &[&id]).await.map_err(pg_error) },
            children_of(&client, &ids)
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut record = execution_of(&row)?;
        record.children = children.remove(id).unwrap_or_default();
        Ok(Some(record))
    }

    async fn update(&self, record: &ExecutionRecord) -> StoreResult<ExecutionRecord> {
        let client = self.client().await?;
        let (revision, children) = update_execution(&client, record).await?;
        let mut new = stored(record, revision);
        new.children = children;
        Ok(new)
    }

    async fn list(
        &self,
        filter: &ExecutionFilter,
        page: Page,
    ) -> StoreResult<Listing<ExecutionRecord>> {
        let mut p = Params::default();
        p.any_of("id", &filter.ids);
        p.eq("action_ref", filter.action.as_ref());
        if !filter.statuses.is_empty() {
            let statuses: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect();
            let n = p.bind(statuses);
            p.and(format!("status = ANY({n})"));
        }
        match &filter.parent {
            ParentFilter::Any => {}
            ParentFilter::TopLevel => p.and("parent IS NULL".into()),
            ParentFilter::Of(parent) => p.eq("parent", Some(parent)),
        }
        for (value, column) in [
            (&filter.user, "user_name"),
            (&filter.runner, "runner"),
            (&filter.rule, "rule_ref"),
            (&filter.trigger, "trigger_ref"),
            (&filter.trigger_type, "trigger_type"),
            (&filter.trigger_instance, "trigger_instance"),
        ] {
            p.eq(column, value.as_ref());
        }
        p.between("start_ts", filter.timestamp_gt, filter.timestamp_lt);
        let dir = direction(filter.sort);
        let (rows, total) = self
            .page(
                "doc, revision",
                "executions",
                &format!("start_ts {dir}, id {dir}"),
                p,
                page,
            )
            .await?;
        let mut items = rows
            .iter()
            .map(execution_of)
            .collect::<StoreResult<Vec<_>>>()?;
        if !items.is_empty() {
            let ids: Vec<String> = items.iter().map(|r| r.id.clone()).collect();
            let client = self.client().await?;
            let mut children = children_of(&client, &ids).await?;
            for item in &mut items {
                item.children = children.remove(&item.id).unwrap_or_default();
            }
        }
        Ok(Listing { items, total })
    }

    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64> {
        let limit = batch_limit(batch)?;
        let statuses: Vec<&str> = COMPLETED.iter().map(|s| s.as_str()).collect();
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "WITH victims AS MATERIALIZED (
                    SELECT id FROM executions
                    WHERE status = ANY($1) AND start_ts < $2 AND end_ts < $2
                    ORDER BY start_ts LIMIT $3),
                out AS (DELETE FROM execution_output o USING victims v
                        WHERE o.execution_id = v.id),
                del AS (DELETE FROM executions e USING victims v WHERE e.id = v.id
                        RETURNING e.id)
                SELECT count(*) FROM del",
            )
            .await
            .map_err(pg_error)?;
        let row = client
            .query_one(&statement, &[&statuses, &to_micros(cutoff), &limit])
            .await
            .map_err(pg_error)?;
        let n: i64 = get(&row, 0)?;
        Ok(to_u64(n))
    }
}

#[async_trait]
impl ExecutionOutputStore for PgStore {
    async fn append(&self, chunks: &[NewOutput]) -> StoreResult<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let mut execution_ids = Vec::with_capacity(chunks.len());
        let mut action_refs = Vec::with_capacity(chunks.len());
        let mut runner_refs = Vec::with_capacity(chunks.len());
        let mut timestamps = Vec::with_capacity(chunks.len());
        let mut types = Vec::with_capacity(chunks.len());
        let mut data = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            execution_ids.push(chunk.execution_id.as_str());
            action_refs.push(chunk.action_ref.as_str());
            runner_refs.push(chunk.runner_ref.as_str());
            timestamps.push(to_micros(chunk.timestamp));
            types.push(chunk.output_type.as_str());
            data.push(chunk.data.as_bytes());
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO execution_output
                    (execution_id, action_ref, runner_ref, ts, output_type, data)
                SELECT execution_id, action_ref, runner_ref, ts, output_type, data
                FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                            $6::bytea[])
                    WITH ORDINALITY AS c(execution_id, action_ref, runner_ref, ts,
                                         output_type, data, ord)
                ORDER BY ord",
            )
            .await
            .map_err(pg_error)?;
        client
            .execute(
                &statement,
                &[
                    &execution_ids,
                    &action_refs,
                    &runner_refs,
                    &timestamps,
                    &types,
                    &data,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn list(
        &self,
        execution_id: &str,
        output_type: Option<OutputType>,
        after_seq: Option<u64>,
    ) -> StoreResult<Vec<OutputChunk>> {
        let mut p = Params::default();
        let n = p.bind(execution_id.to_owned());
        p.and(format!("execution_id = {n}"));
        if let Some(output_type) = output_type {
            let n = p.bind(output_type.as_str());
            p.and(format!("output_type = {n}"));
        }
        if let Some(after) = after_seq {
            let n = p.bind(clamp_i64(after));
            p.and(format!("seq > {n}"));
        }
        let sql = format!(
            "SELECT seq, execution_id, action_ref, runner_ref, ts, output_type, data FROM {} \
             ORDER BY seq",
            p.table_where("execution_output")
        );
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
        let rows = client
            .query(&statement, &p.refs())
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let seq: i64 = get(row, 0)?;
                let output_type: String = get(row, 5)?;
                let data: Vec<u8> = get(row, 6)?;
                Ok(OutputChunk {
                    seq: to_u64(seq),
                    chunk: NewOutput {
                        execution_id: get(row, 1)?,
                        action_ref: get(row, 2)?,
                        runner_ref: get(row, 3)?,
                        timestamp: from_micros(get(row, 4)?),
                        output_type: output_type
                            .parse()
                            .map_err(|e| StoreError::Corrupt(format!("output type: {e}")))?,
                        data: String::from_utf8(data)
                            .map_err(|e| StoreError::Corrupt(format!("output data: {e}")))?,
                    },
                })
            })
            .collect()
    }

    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64> {
        let limit = batch_limit(batch)?;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "DELETE FROM execution_output WHERE seq IN (
                    SELECT seq FROM execution_output WHERE ts < $1 ORDER BY ts LIMIT $2)",
            )
            .await
            .map_err(pg_error)?;
        let n = client
            .execute(&statement, &[&to_micros(cutoff), &limit])
            .await
            .map_err(pg_error)?;
        Ok(n)
    }
}
