//! Copying one store into another: how a user moves from the embedded SQLite store to
//! PostgreSQL (`st2d store copy`).
//!
//! The copy reads each aggregate page by page from the source and writes it to the target, so
//! it works between any two backends. It copies history and configuration: executions with
//! their output, trigger instances, rule enforcements, key-value pairs (secrets stay
//! ciphertext: keep the same key file), API keys, inquiries and traces. It does not copy
//! in-flight work: the source must be drained (no queued work items, no execution that has not
//! completed), which [`copy_store`] checks first. Tokens are not copied either; users log in
//! again.

use serde::Serialize;

use super::{
    ExecutionFilter, KeyScope, Page, SortOrder, Store, StoreError, StoreResult,
    TriggerInstanceFilter,
};
use super::{RuleEnforcementFilter, TraceComponentKind, TraceFilter};

/// Queue names checked for leftover work before copying.
pub const DEFAULT_QUEUES: &[&str] = &["scheduler", "runner", "workflow", "notifier"];

/// How many records were copied, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CopyReport {
    /// Executions.
    pub executions: u64,
    /// Output chunks.
    pub execution_output: u64,
    /// Trigger instances.
    pub trigger_instances: u64,
    /// Rule enforcements.
    pub rule_enforcements: u64,
    /// Key-value pairs.
    pub key_values: u64,
    /// API keys.
    pub api_keys: u64,
    /// Inquiries.
    pub inquiries: u64,
    /// Traces.
    pub traces: u64,
}

const PAGE: u64 = 1000;

fn page(offset: u64) -> Page {
    Page {
        limit: Some(PAGE),
        offset,
    }
}

/// Check that `source` holds no in-flight work: no item on any of `queues` and no execution
/// that has not completed.
///
/// # Errors
/// [`StoreError::Invalid`] describing what is still in flight; store errors.
pub async fn check_drained(source: &dyn Store, queues: &[&str]) -> StoreResult<()> {
    for queue in queues {
        let depth = source.queue().depth(queue).await?;
        let held = depth.ready + depth.delayed + depth.leased;
        if held > 0 {
            return Err(StoreError::Invalid(format!(
                "the source store still has {held} work item(s) on queue {queue:?}; stop st2d after \
                 its work finishes, then copy"
            )));
        }
    }
    let open = super::ExecutionStatus::ALL
        .iter()
        .copied()
        .filter(|s| !s.is_completed())
        .collect();
    let unfinished = source
        .executions()
        .list(
            &ExecutionFilter {
                statuses: open,
                ..Default::default()
            },
            Page::first(1),
        )
        .await?;
    if unfinished.total > 0 {
        return Err(StoreError::Invalid(format!(
            "the source store has {} execution(s) that have not completed (e.g. {}); let them \
             finish or cancel them, then copy",
            unfinished.total,
            unfinished
                .items
                .first()
                .map(|e| e.id.as_str())
                .unwrap_or("?")
        )));
    }
    Ok(())
}

/// Copy everything [`CopyReport`] counts from `source` into `target`, after
/// [`check_drained`] on [`DEFAULT_QUEUES`]. Records that already exist in the target (same id)
/// make the copy fail with [`StoreError::Conflict`]: copy into an empty database.
///
/// # Errors
/// The first store error; what was copied before it stays in the target.
pub async fn copy_store(source: &dyn Store, target: &dyn Store) -> StoreResult<CopyReport> {
    check_drained(source, DEFAULT_QUEUES).await?;
    let mut report = CopyReport::default();

    // Executions oldest first, so parents exist before their children and children keep their
    // order.
    let filter = ExecutionFilter {
        sort: SortOrder::Ascending,
        ..Default::default()
    };
    let mut offset = 0;
    loop {
        let batch = source.executions().list(&filter, page(offset)).await?;
        if batch.items.is_empty() {
            break;
        }
        target.executions().create_many(&batch.items).await?;
        for execution in &batch.items {
            let chunks = source
                .execution_output()
                .list(&execution.id, None, None)
                .await?;
            if !chunks.is_empty() {
                let new: Vec<_> = chunks.into_iter().map(|c| c.chunk).collect();
                target.execution_output().append(&new).await?;
                report.execution_output += new.len() as u64;
            }
        }
        report.executions += batch.items.len() as u64;
        offset += batch.items.len() as u64;
    }

    let filter = TriggerInstanceFilter {
        sort: SortOrder::Ascending,
        ..Default::default()
    };
    offset = 0;
    loop {
        let batch = source
            .trigger_instances()
            .list(&filter, page(offset))
            .await?;
        if batch.items.is_empty() {
            break;
        }
        for item in &batch.items {
            target.trigger_instances().create(item).await?;
        }
        report.trigger_instances += batch.items.len() as u64;
        offset += batch.items.len() as u64;
    }

    let filter = RuleEnforcementFilter {
        sort: SortOrder::Ascending,
        ..Default::default()
    };
    offset = 0;
    loop {
        let batch = source
            .rule_enforcements()
            .list(&filter, page(offset))
            .await?;
        if batch.items.is_empty() {
            break;
        }
        for item in &batch.items {
            target.rule_enforcements().create(item).await?;
        }
        report.rule_enforcements += batch.items.len() as u64;
        offset += batch.items.len() as u64;
    }

    for scope in [KeyScope::System, KeyScope::User] {
        offset = 0;
        loop {
            let batch = source
                .key_values()
                .list(Some(scope), None, page(offset))
                .await?;
            if batch.items.is_empty() {
                break;
            }
            for item in &batch.items {
                target.key_values().put(item).await?;
            }
            report.key_values += batch.items.len() as u64;
            offset += batch.items.len() as u64;
        }
    }

    offset = 0;
    loop {
        let batch = source.api_keys().list(page(offset)).await?;
        if batch.items.is_empty() {
            break;
        }
        for item in &batch.items {
            target.api_keys().create(item).await?;
        }
        report.api_keys += batch.items.len() as u64;
        offset += batch.items.len() as u64;
    }

    offset = 0;
    loop {
        let batch = source.inquiries().list(None, page(offset)).await?;
        if batch.items.is_empty() {
            break;
        }
        for item in &batch.items {
            target.inquiries().create(item).await?;
        }
        report.inquiries += batch.items.len() as u64;
        offset += batch.items.len() as u64;
    }

    let filter = TraceFilter {
        sort: SortOrder::Ascending,
        ..Default::default()
    };
    offset = 0;
    loop {
        let batch = source.traces().list(&filter, page(offset)).await?;
        if batch.items.is_empty() {
            break;
        }
        for trace in &batch.items {
            let mut bare = trace.clone();
            bare.trigger_instances.clear();
            bare.rules.clear();
            bare.action_executions.clear();
            target.traces().create(&bare).await?;
            for (kind, components) in [
                (
                    TraceComponentKind::TriggerInstance,
                    &trace.trigger_instances,
                ),
                (TraceComponentKind::Rule, &trace.rules),
                (
                    TraceComponentKind::ActionExecution,
                    &trace.action_executions,
                ),
            ] {
                for component in components {
                    target
                        .traces()
                        .add_component(&trace.id, kind, component)
                        .await?;
                }
            }
        }
        report.traces += batch.items.len() as u64;
        offset += batch.items.len() as u64;
    }
    Ok(report)
}
