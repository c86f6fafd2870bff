//! Trigger instances, rule enforcements and traces.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{Params, PgStore, batch_limit, direction, doc, get, json, pg_error, pg_error_for};
use crate::store::{
    Listing, Page, RuleEnforcementFilter, RuleEnforcementRecord, RuleEnforcementStore, StoreError,
    StoreResult, Timestamp, TraceComponent, TraceComponentKind, TraceFilter, TraceRecord,
    TraceStore, TriggerInstanceFilter, TriggerInstanceRecord, TriggerInstanceStore, to_micros,
};

pub(super) const INSERT_TRIGGER_INSTANCE: &str = "INSERT INTO trigger_instances
        (id, trigger_ref, trigger_type, status, occurrence_time, doc)
    VALUES ($1, $2, $3, $4, $5, $6)";

pub(super) const SET_TRIGGER_INSTANCE_STATUS: &str =
    "UPDATE trigger_instances SET status = $2 WHERE id = $1";

pub(super) const INSERT_ENFORCEMENT: &str = "INSERT INTO rule_enforcements
        (id, rule_ref, rule_id, execution_id, trigger_instance_id, enforced_at, doc)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(super) const INSERT_TRACE: &str = "INSERT INTO traces (id, trace_tag, start_ts,
        trigger_instance_ids, rule_ids, execution_ids, doc)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

impl PgStore {
    /// Run a prepared statement that returns no rows; returns how many rows it touched.
    pub(super) async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: &'static str,
        id: &str,
    ) -> StoreResult<u64> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client
            .execute(&statement, params)
            .await
            .map_err(|e| pg_error_for(e, what, id))
    }

    /// At most one row of a prepared statement.
    pub(super) async fn one(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query_opt(&statement, params).await.map_err(pg_error)
    }

    /// Every row of a prepared statement.
    pub(super) async fn all(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query(&statement, params).await.map_err(pg_error)
    }

    /// Delete up to `batch` rows of `table` whose `column` is before `cutoff`, oldest first.
    /// `table`, `key` and `column` are constants of this module, never input.
    pub(super) async fn purge_older(
        &self,
        table: &str,
        key: &str,
        column: &str,
        cutoff: Timestamp,
        batch: u64,
    ) -> StoreResult<u64> {
        let limit = batch_limit(batch)?;
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN (
                SELECT {key} FROM {table} WHERE {column} < $1 ORDER BY {column} LIMIT $2)"
        );
        self.exec(&sql, &[&to_micros(cutoff), &limit], "record", "")
            .await
    }
}

pub(super) fn not_found(what: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_owned(),
    }
}

fn trigger_instance_of(row: &Row) -> StoreResult<TriggerInstanceRecord> {
    let mut record: TriggerInstanceRecord = doc(row, 0, "trigger instance")?;
    let status: String = get(row, 1)?;
    record.status = status
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("trigger instance status: {e}")))?;
    Ok(record)
}

#[async_trait]
impl TriggerInstanceStore for PgStore {
    async fn create(&self, instance: &TriggerInstanceRecord) -> StoreResult<()> {
        self.exec(
            INSERT_TRIGGER_INSTANCE,
            &[
                &instance.id,
                &instance.trigger,
                &instance.trigger_type,
                &instance.status.as_str(),
                &to_micros(instance.occurrence_time),
                &json(instance),
            ],
            "trigger instance",
            &instance.id,
        )
        .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> StoreResult<Option<TriggerInstanceRecord>> {
        self.one(
            "SELECT doc, status FROM trigger_instances WHERE id = $1",
            &[&id],
        )
        .await?
        .as_ref()
        .map(trigger_instance_of)
        .transpose()
    }

    async fn set_status(
        &self,
        id: &str,
        status: crate::store::TriggerInstanceStatus,
    ) -> StoreResult<()> {
        let n = self
            .exec(
                SET_TRIGGER_INSTANCE_STATUS,
                &[&id, &status.as_str()],
                "trigger instance",
                id,
            )
            .await?;
        if n == 0 {
            return Err(not_found("trigger instance", id));
        }
        Ok(())
    }

    async fn list(
        &self,
        filter: &TriggerInstanceFilter,
        page: Page,
    ) -> StoreResult<Listing<TriggerInstanceRecord>> {
        let mut p = Params::default();
        p.any_of("id", &filter.ids);
        p.eq("trigger_ref", filter.trigger.as_ref());
        p.eq("trigger_type", filter.trigger_type.as_ref());
        if !filter.statuses.is_empty() {
            let statuses: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect();
            let n = p.bind(statuses);
            p.and(format!("status = ANY({n})"));
        }
        p.between("occurrence_time", filter.timestamp_gt, filter.timestamp_lt);
        let dir = direction(filter.sort);
        let (rows, total) = self
            .page(
                "doc, status",
                "trigger_instances",
                &format!("occurrence_time {dir}, id {dir}"),
                p,
                page,
            )
            .await?;
        let items = rows
            .iter()
            .map(trigger_instance_of)
            .collect::<StoreResult<_>>()?;
        Ok(Listing { items, total })
    }

    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64> {
        self.purge_older("trigger_instances", "id", "occurrence_time", cutoff, batch)
            .await
    }
}

fn enforcement_of(row: &Row) -> StoreResult<RuleEnforcementRecord> {
    let mut record: RuleEnforcementRecord = doc(row, 0, "rule enforcement")?;
    record.enforcement.execution_id = get(row, 1)?;
    Ok(record)
}

#[async_trait]
impl RuleEnforcementStore for PgStore {
    async fn create(&self, record: &RuleEnforcementRecord) -> StoreResult<()> {
        let e = &record.enforcement;
        self.exec(
            INSERT_ENFORCEMENT,
            &[
                &record.id,
                &e.rule.reference,
                &e.rule.id,
                &e.execution_id,
                &e.trigger_instance_id,
                &to_micros(e.enforced_at),
                &json(record),
            ],
            "rule enforcement",
            &record.id,
        )
        .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> StoreResult<Option<RuleEnforcementRecord>> {
        self.one(
            "SELECT doc, execution_id FROM rule_enforcements WHERE id = $1",
            &[&id],
        )
        .await?
        .as_ref()
        .map(enforcement_of)
        .transpose()
    }

    async fn set_execution(&self, id: &str, execution_id: &str) -> StoreResult<()> {
        let n = self
            .exec(
                "UPDATE rule_enforcements SET execution_id = $2 WHERE id = $1",
                &[&id, &execution_id],
                "rule enforcement",
                id,
            )
            .await?;
        if n == 0 {
            return Err(not_found("rule enforcement", id));
        }
        Ok(())
    }

    async fn list(
        &self,
        filter: &RuleEnforcementFilter,
        page: Page,
    ) -> StoreResult<Listing<RuleEnforcementRecord>> {
        let mut p = Params::default();
        p.any_of("id", &filter.ids);
        for (value, column) in [
            (&filter.rule_ref, "rule_ref"),
            (&filter.rule_id, "rule_id"),
            (&filter.execution, "execution_id"),
            (&filter.trigger_instance, "trigger_instance_id"),
        ] {
            p.eq(column, value.as_ref());
        }
        p.between("enforced_at", filter.enforced_at_gt, filter.enforced_at_lt);
        let dir = direction(filter.sort);
        let (rows, total) = self
            .page(
                "doc, execution_id",
                "rule_enforcements",
                &format!("enforced_at {dir}, id {dir}"),
                p,
                page,
            )
            .await?;
        let items = rows
            .iter()
            .map(enforcement_of)
            .collect::<StoreResult<_>>()?;
        Ok(Listing { items, total })
    }

    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64> {
        self.purge_older("rule_enforcements", "id", "enforced_at", cutoff, batch)
            .await
    }
}

pub(super) fn object_ids(components: &[TraceComponent]) -> Vec<&str> {
    components.iter().map(|c| c.object_id.as_str()).collect()
}

/// The appending statement for one list of a trace (constant per kind).
pub(super) fn add_component_sql(kind: TraceComponentKind) -> &'static str {
    match kind {
        TraceComponentKind::TriggerInstance => {
            "UPDATE traces SET
                doc = jsonb_set(doc::jsonb, '{trigger_instances}',
                    coalesce(doc::jsonb -> 'trigger_instances', '[]'::jsonb)
                        || jsonb_build_array($2::jsonb))::json,
                trigger_instance_ids = array_append(trigger_instance_ids, $3::text)
             WHERE id = $1"
        }
        TraceComponentKind::Rule => {
            "UPDATE traces SET
                doc = jsonb_set(doc::jsonb, '{rules}',
                    coalesce(doc::jsonb -> 'rules', '[]'::jsonb)
                        || jsonb_build_array($2::jsonb))::json,
                rule_ids = array_append(rule_ids, $3::text)
             WHERE id = $1"
        }
        TraceComponentKind::ActionExecution => {
            "UPDATE traces SET
                doc = jsonb_set(doc::jsonb, '{action_executions}',
                    coalesce(doc::jsonb -> 'action_executions', '[]'::jsonb)
                        || jsonb_build_array($2::jsonb))::json,
                execution_ids = array_append(execution_ids, $3::text)
             WHERE id = $1"
        }
    }
}

#[async_trait]
impl TraceStore for PgStore {
    async fn create(&self, record: &TraceRecord) -> StoreResult<()> {
        self.exec(
            INSERT_TRACE,
            &[
                &record.id,
                &record.trace_tag,
                &to_micros(record.start_timestamp),
                &object_ids(&record.trigger_instances),
                &object_ids(&record.rules),
                &object_ids(&record.action_executions),
                &json(record),
            ],
            "trace",
            &record.id,
        )
        .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> StoreResult<Option<TraceRecord>> {
        self.one("SELECT doc FROM traces WHERE id = $1", &[&id])
            .await?
            .map(|row| doc(&row, 0, "trace"))
            .transpose()
    }

    async fn add_component(
        &self,
        trace_id: &str,
        kind: TraceComponentKind,
        component: &TraceComponent,
    ) -> StoreResult<()> {
        // One UPDATE: the row lock serialises concurrent appends, and each re-reads the
        // latest version, so every append lands.
        let n = self
            .exec(
                add_component_sql(kind),
                &[&trace_id, &json(component), &component.object_id],
                "trace",
                trace_id,
            )
            .await?;
        if n == 0 {
            return Err(not_found("trace", trace_id));
        }
        Ok(())
    }

    async fn list(&self, filter: &TraceFilter, page: Page) -> StoreResult<Listing<TraceRecord>> {
        let mut p = Params::default();
        p.any_of("id", &filter.ids);
        p.eq("trace_tag", filter.trace_tag.as_ref());
        for (value, column) in [
            (&filter.execution, "execution_ids"),
            (&filter.rule, "rule_ids"),
            (&filter.trigger_instance, "trigger_instance_ids"),
        ] {
            if let Some(value) = value {
                let n = p.bind(vec![value.clone()]);
                p.and(format!("{column} @> {n}::text[]"));
            }
        }
        let dir = direction(filter.sort);
        let (rows, total) = self
            .page(
                "doc",
                "traces",
                &format!("start_ts {dir}, id {dir}"),
                p,
                page,
            )
            .await?;
        let items = rows
            .iter()
            .map(|row| doc(row, 0, "trace"))
            .collect::<StoreResult<_>>()?;
        Ok(Listing { items, total })
    }

    async fn purge_before(&self, cutoff: Timestamp, batch: u64) -> StoreResult<u64> {
        self.purge_older("traces", "id", "start_ts", cutoff, batch)
            .await
    }
}
