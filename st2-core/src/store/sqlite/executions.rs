//! Executions (children derived from `parent`, revision compare-and-set) and their output.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, ToSql, params};

use super::connection::{insert_error, sql_error};
use super::filter::{Where, json_list};
use super::snapshots::{self, Snapshots, referenced};
use super::writer::Db;
use super::{Shared, direction, doc_by_id, from_doc, purge_limit, to_doc};
use crate::store::{
    ExecutionFilter, ExecutionOutputStore, ExecutionRecord, ExecutionStatus, ExecutionStore,
    Listing, NewOutput, OutputChunk, OutputType, Page, ParentFilter, Snapshot, StoreError,
    StoreResult, Timestamp, from_micros, to_micros,
};

const WHAT: &str = "execution";

/// The executions of one store.
pub(super) struct Executions(pub(super) Arc<Shared>);

/// An execution as its row: the indexed columns and the JSON text, built by the caller.
pub(super) struct ExecutionRow {
    id: String,
    revision: i64,
    action_ref: String,
    status: &'static str,
    parent: Option<String>,
    user: Option<String>,
    runner: Option<String>,
    rule: Option<String>,
    trigger: Option<String>,
    trigger_type: Option<String>,
    trigger_instance: Option<String>,
    start: i64,
    end: Option<i64>,
    doc: String,
    /// The snapshots `doc` refers to.
    snapshots: Vec<Snapshot>,
}

/// No children: what a written execution document holds (they are read from the rows).
const NO_CHILDREN: &Vec<String> = &Vec::new();

impl ExecutionRow {
    /// The row of `record` at its own revision, without children.
    pub(super) fn new(record: &ExecutionRecord) -> StoreResult<Self> {
        Self::at(record, record.revision)
    }

    /// The row of `record` as stored at `revision`, without children.
    pub(super) fn at(record: &ExecutionRecord, revision: u64) -> StoreResult<Self> {
        let keys = record.keys();
        Ok(Self {
            id: record.id.clone(),
            revision: i64::try_from(revision)
                .map_err(|_| StoreError::Invalid("revision out of range".into()))?,
            action_ref: record.action_ref.clone(),
            status: record.status.as_str(),
            parent: record.parent.clone(),
            user: keys.user,
            runner: keys.runner,
            rule: keys.rule,
            trigger: keys.trigger,
            trigger_type: keys.trigger_type,
            trigger_instance: keys.trigger_instance,
            start: to_micros(record.start_timestamp),
            end: record.end_timestamp.map(to_micros),
            doc: to_doc(WHAT, &record.doc_at(&revision, NO_CHILDREN, true))?,
            snapshots: referenced(record),
        })
    }

    /// The values every statement of this row binds, by number: `?1` id, `?2` revision,
    /// `?3` action, `?4` status, `?5` parent, `?6` user, `?7` runner, `?8` rule, `?9` trigger,
    /// `?10` trigger type, `?11` trigger instance, `?12` start, `?13` end, `?14` document,
    /// `?15` the revision an update expects.
    fn values<'a>(&'a self, expected: &'a i64) -> [&'a dyn ToSql; 15] {
        [
            &self.id,
            &self.revision,
            &self.action_ref,
            &self.status,
            &self.parent,
            &self.user,
            &self.runner,
            &self.rule,
            &self.trigger,
            &self.trigger_type,
            &self.trigger_instance,
            &self.start,
            &self.end,
            &self.doc,
            expected,
        ]
    }

    pub(super) fn insert(&self, db: &Db<'_, '_>) -> StoreResult<()> {
        snapshots::store(db, &self.snapshots)?;
        db.with_statement(
            "INSERT INTO executions (id, revision, action_ref, status, parent, username, \
                 runner, rule, trigger_ref, trigger_type, trigger_instance, start_timestamp, \
                 end_timestamp, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                 ?13, ?14)",
            |s| s.execute(&self.values(&0)[..14]),
        )
        .map(|_| ())
        .map_err(|e| insert_error(WHAT, &self.id, e))
    }

    /// Replace the row whose revision is `expected`; how many rows changed.
    fn update(&self, db: &Db<'_, '_>, expected: i64) -> StoreResult<usize> {
        db.with_statement(
            "UPDATE executions SET revision = ?2, action_ref = ?3, status = ?4, parent = ?5, \
                 username = ?6, runner = ?7, rule = ?8, trigger_ref = ?9, trigger_type = ?10, \
                 trigger_instance = ?11, start_timestamp = ?12, end_timestamp = ?13, doc = ?14 \
                 WHERE id = ?1 AND revision = ?15",
            |s| s.execute(&self.values(&expected)[..]),
        )
        .map_err(sql_error)
    }
}

impl ExecutionRow {
    /// Replace the row stored at revision `expected`; the execution's children.
    /// [`StoreError::Conflict`] for a stale revision, [`StoreError::NotFound`] for an unknown
    /// id.
    pub(super) fn replace(&self, db: &Db<'_, '_>, expected: i64) -> StoreResult<Vec<String>> {
        snapshots::store(db, &self.snapshots)?;
        // Every index a statement sets a column of is rewritten, and the indexed columns other
        // than `status` rarely change after creation: the update leaves them out, on condition
        // that the row holds what this one holds. Only when it changes nothing is the row read
        // (unknown, stale, or its other indexed columns changed: then all are set).
        if self.update_status(db, expected)? == 0 {
            self.replace_read_first(db, expected)?;
        }
        children_of(db, &self.id)
    }

    /// [`ExecutionRow::replace`] when the row is not as expected: read its head (not its
    /// document) and update every column, or say why not.
    fn replace_read_first(&self, db: &Db<'_, '_>, expected: i64) -> StoreResult<()> {
        let current = db
            .with_statement("SELECT revision FROM executions WHERE id = ?1", |s| {
                s.query_row([&self.id], |r| r.get::<_, i64>(0)).optional()
            })
            .map_err(sql_error)?;
        match current {
            None => Err(StoreError::NotFound {
                what: WHAT,
                id: self.id.clone(),
            }),
            Some(current) if current != expected => Err(StoreError::Conflict {
                what: WHAT,
                id: self.id.clone(),
                reason: format!("stale revision {expected}: the stored revision is {current}"),
            }),
            Some(_) => match self.update(db, expected)? {
                0 => Err(StoreError::Conflict {
                    what: WHAT,
                    id: self.id.clone(),
                    reason: format!("stale revision {expected}"),
                }),
                _ => Ok(()),
            },
        }
    }

    /// [`ExecutionRow::update`] of the columns that change while an execution runs, where the
    /// other indexed columns hold this row's values; how many rows changed.
    fn update_status(&self, db: &Db<'_, '_>, expected: i64) -> StoreResult<usize> {
        db.with_statement(
            "UPDATE executions SET revision = ?2, status = ?4, end_timestamp = ?13, doc = ?14 \
                 WHERE id = ?1 AND revision = ?15 AND action_ref = ?3 AND parent IS ?5 \
                 AND username IS ?6 AND runner IS ?7 AND rule IS ?8 AND trigger_ref IS ?9 \
                 AND trigger_type IS ?10 AND trigger_instance IS ?11 AND start_timestamp = ?12",
            |s| s.execute(&self.values(&expected)[..]),
        )
        .map_err(sql_error)
    }
}

/// The children of one execution, in creation order.
fn children_of(db: &Db<'_, '_>, id: &str) -> StoreResult<Vec<String>> {
    db.with_statement(
        "SELECT id FROM executions WHERE parent = ?1 ORDER BY seq",
        |s| s.query_map([id], |row| row.get(0))?.collect(),
    )
    .map_err(sql_error)
}

/// The children of each of `ids`, in creation order, with one query.
fn children_of_all(db: &Db<'_, '_>, ids: &[&str]) -> StoreResult<HashMap<String, Vec<String>>> {
    let mut children: HashMap<String, Vec<String>> = HashMap::new();
    if ids.is_empty() {
        return Ok(children);
    }
    let mut statement = db
        .conn()
        .prepare_cached(
            "SELECT parent, id FROM executions \
             WHERE parent IN (SELECT value FROM json_each(?1)) ORDER BY seq",
        )
        .map_err(sql_error)?;
    let mut rows = statement.query([json_list(ids)]).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let parent: String = row.get(0).map_err(sql_error)?;
        let child: String = row.get(1).map_err(sql_error)?;
        children.entry(parent).or_default().push(child);
    }
    Ok(children)
}

/// An execution from its document, with the snapshots it refers to put in place.
fn parse(
    db: &Db<'_, '_>,
    snapshots: &Snapshots,
    doc: &str,
    children: Vec<String>,
) -> StoreResult<ExecutionRecord> {
    let mut record: ExecutionRecord = from_doc(WHAT, doc)?;
    snapshots.resolve(db, &mut record)?;
    record.children = children;
    Ok(record)
}

/// The completed statuses, as a JSON list for `json_each`.
fn completed_statuses() -> String {
    let completed: Vec<&str> = ExecutionStatus::ALL
        .iter()
        .filter(|s| s.is_completed())
        .map(|s| s.as_str())
        .collect();
    json_list(&completed)
}

#[async_trait]
impl ExecutionStore for Executions {
    async fn create(&self, record: &ExecutionRecord) -> StoreResult<ExecutionRecord> {
        let mut stored = record.clone();
        stored.revision = 1;
        stored.children.clear();
        let row = ExecutionRow::new(&stored)?;
        // The row comes back to be freed here, not on the writer thread.
        let row = self
            .0
            .write_one(move |db| row.insert(db).map(|()| row))
            .await?;
        drop(row);
        Ok(stored)
    }

    async fn create_many(&self, records: &[ExecutionRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let rows = records
            .iter()
            .map(|record| ExecutionRow::at(record, 1))
            .collect::<StoreResult<Vec<_>>>()?;
        self.0
            .write_repeatable(move |db| rows.iter().try_for_each(|row| row.insert(db)))
            .await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let id = id.to_owned();
        let snapshots = Arc::clone(&self.0.snapshots);
        self.0
            .read(move |db| {
                doc_by_id(db, "executions", &id)?
                    .map(|doc| parse(db, &snapshots, &doc, children_of(db, &id)?))
                    .transpose()
            })
            .await
    }

    async fn get_without_children(&self, id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let id = id.to_owned();
        let snapshots = Arc::clone(&self.0.snapshots);
        self.0
            .read(move |db| {
                doc_by_id(db, "executions", &id)?
                    .map(|doc| parse(db, &snapshots, &doc, Vec::new()))
                    .transpose()
            })
            .await
    }

    async fn update(&self, record: &ExecutionRecord) -> StoreResult<ExecutionRecord> {
        let expected = record.revision;
        let mut stored = record.clone();
        stored.revision = expected
            .checked_add(1)
            .ok_or_else(|| StoreError::Invalid("revision out of range".into()))?;
        stored.children.clear();
        let row = ExecutionRow::new(&stored)?;
        let expected = i64::try_from(expected)
            .map_err(|_| StoreError::Invalid("revision out of range".into()))?;
        stored.children = self
            .0
            .write_one(move |db| row.replace(db, expected))
            .await?;
        Ok(stored)
    }

    async fn list(
        &self,
        filter: &ExecutionFilter,
        page: Page,
    ) -> StoreResult<Listing<ExecutionRecord>> {
        let mut sql = Where::new();
        sql.one_of("id", &filter.ids);
        sql.eq("action_ref", filter.action.as_deref());
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        // The status index leaves out `succeeded` (migration 7).
        sql.one_of_partial("status", &statuses, ExecutionStatus::Succeeded.as_str());
        match &filter.parent {
            ParentFilter::Any => {}
            ParentFilter::TopLevel => sql.clause("parent IS NULL", []),
            ParentFilter::Of(parent) => sql.eq("parent", Some(parent)),
        }
        sql.eq("username", filter.user.as_deref());
        sql.eq("runner", filter.runner.as_deref());
        sql.eq("rule", filter.rule.as_deref());
        sql.eq("trigger_ref", filter.trigger.as_deref());
        sql.eq("trigger_type", filter.trigger_type.as_deref());
        sql.eq("trigger_instance", filter.trigger_instance.as_deref());
        sql.after("start_timestamp", filter.timestamp_gt);
        sql.before("start_timestamp", filter.timestamp_lt);
        let dir = direction(filter.sort);
        let order = format!("start_timestamp {dir}, id {dir}");
        let snapshots = Arc::clone(&self.0.snapshots);
        self.0
            .read(move |db| {
                let (rows, total) = sql.page(db, "executions", "id, doc", &order, page, |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?;
                let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
                let mut children = children_of_all(db, &ids)?;
                let items = rows
                    .into_iter()
                    .map(|(id, doc)| {
                        let mine = children.remove(&id).unwrap_or_default();
                        parse(db, &snapshots, &doc, mine)
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok(Listing { items, total })
            })
            .await
    }

    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64> {
        let limit = purge_limit(batch)?;
        let cutoff = to_micros(cutoff);
        let completed = completed_statuses();
        self.0
            .write(move |db| {
                const CHOSEN: &str = "SELECT seq FROM executions \
                    WHERE status IN (SELECT value FROM json_each(?1)) AND start_timestamp < ?2 \
                    AND coalesce(end_timestamp, start_timestamp) < ?2 ORDER BY seq LIMIT ?3";
                let conn = db.conn();
                conn.prepare_cached(&format!(
                    "DELETE FROM execution_output WHERE execution_id IN \
                     (SELECT id FROM executions WHERE seq IN ({CHOSEN}))"
                ))
                .and_then(|mut s| s.execute(params![completed, cutoff, limit]))
                .map_err(sql_error)?;
                let deleted = conn
                    .prepare_cached(&format!("DELETE FROM executions WHERE seq IN ({CHOSEN})"))
                    .and_then(|mut s| s.execute(params![completed, cutoff, limit]))
                    .map_err(sql_error)?;
                Ok(deleted as u64)
            })
            .await
    }
}

/// The execution output of one store.
pub(super) struct ExecutionOutput(pub(super) Arc<Shared>);

#[async_trait]
impl ExecutionOutputStore for ExecutionOutput {
    async fn append(&self, chunks: &[NewOutput]) -> StoreResult<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let chunks = chunks.to_vec();
        self.0
            .write(move |db| {
                let mut statement = db
                    .conn()
                    .prepare_cached(
                        "INSERT INTO execution_output (execution_id, action_ref, runner_ref, \
                         timestamp, output_type, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(sql_error)?;
                for chunk in &chunks {
                    statement
                        .execute(params![
                            chunk.execution_id,
                            chunk.action_ref,
                            chunk.runner_ref,
                            to_micros(chunk.timestamp),
                            chunk.output_type.as_str(),
                            chunk.data,
                        ])
                        .map_err(sql_error)?;
                }
                Ok(())
            })
            .await
    }

    async fn list(
        &self,
        execution_id: &str,
        output_type: Option<OutputType>,
        after_seq: Option<u64>,
    ) -> StoreResult<Vec<OutputChunk>> {
        let mut sql = Where::new();
        sql.eq("execution_id", Some(execution_id));
        sql.eq("output_type", output_type.map(OutputType::as_str));
        if let Some(after) = after_seq {
            sql.clause(
                "seq > ?",
                [Value::Integer(i64::try_from(after).unwrap_or(i64::MAX))],
            );
        }
        let rows = self
            .0
            .read(move |db| {
                let (rows, _) = sql.page(
                    db,
                    "execution_output",
                    "seq, execution_id, action_ref, runner_ref, timestamp, output_type, data",
                    "seq",
                    Page::all(),
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, i64>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, String>(6)?,
                        ))
                    },
                )?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(
                |(seq, execution_id, action_ref, runner_ref, timestamp, output_type, data)| {
                    Ok(OutputChunk {
                        seq: u64::try_from(seq).unwrap_or(0),
                        chunk: NewOutput {
                            execution_id,
                            action_ref,
                            runner_ref,
                            timestamp: from_micros(timestamp),
                            output_type: output_type.parse()?,
                            data,
                        },
                    })
                },
            )
            .collect()
    }

    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64> {
        let limit = purge_limit(batch)?;
        let cutoff = to_micros(cutoff);
        self.0
            .write_one(move |db| {
                db.with_statement(
                    "DELETE FROM execution_output WHERE seq IN (SELECT seq FROM \
                         execution_output WHERE timestamp < ?1 ORDER BY seq LIMIT ?2)",
                    |s| s.execute(params![cutoff, limit]),
                )
                .map(|n| n as u64)
                .map_err(sql_error)
            })
            .await
    }
}
