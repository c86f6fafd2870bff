//! `GET /metrics`: Prometheus text exposition of what the store holds and what waits in the
//! work queues. StackStorm itself has no such endpoint (it pushes to statsd), so it sits with
//! the other routes behind authentication; a scraper passes `x-auth-token` or `st2-api-key`
//! as a query parameter or header.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use st2_core::store::{
    ExecutionFilter, ExecutionStatus, InquiryStatus, Page, RuleEnforcementFilter,
    TriggerInstanceFilter, TriggerInstanceStatus,
};

use crate::server::ApiState;
use crate::server::error::ApiResult;

/// The content type of Prometheus' text format.
pub const CONTENT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family: its `# HELP` / `# TYPE` lines and samples (`labels` already rendered).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<ApiState>>) -> ApiResult {
    let store = state.engine.store();
    let one = Page::first(1);
    let mut out = String::new();

    let mut samples = Vec::new();
    for status in ExecutionStatus::ALL {
        let filter = ExecutionFilter {
            statuses: vec![*status],
            ..ExecutionFilter::default()
        };
        let total = store.executions().list(&filter, one).await?.total;
        samples.push((format!("status=\"{}\"", status.as_str()), total));
    }
    family(
        &mut out,
        "st2_executions",
        "gauge",
        "Stored executions by status.",
        &samples,
    );

    let mut samples = Vec::new();
    for (queue, depth) in state.engine.queue_depths().await? {
        for (which, n) in [
            ("ready", depth.ready),
            ("delayed", depth.delayed),
            ("leased", depth.leased),
        ] {
            samples.push((format!("queue=\"{queue}\",state=\"{which}\""), n));
        }
    }
    family(
        &mut out,
        "st2_work_queue_items",
        "gauge",
        "Work items waiting in or leased from each work queue.",
        &samples,
    );

    let mut samples = Vec::new();
    for status in TriggerInstanceStatus::ALL {
        let filter = TriggerInstanceFilter {
            statuses: vec![*status],
            ..TriggerInstanceFilter::default()
        };
        let total = store.trigger_instances().list(&filter, one).await?.total;
        samples.push((format!("status=\"{}\"", status.as_str()), total));
    }
    family(
        &mut out,
        "st2_trigger_instances",
        "gauge",
        "Stored trigger instances by status.",
        &samples,
    );

    let enforcements = store
        .rule_enforcements()
        .list(&RuleEnforcementFilter::default(), one)
        .await?
        .total;
    family(
        &mut out,
        "st2_rule_enforcements",
        "gauge",
        "Stored rule enforcements (rule matches that ran or tried to run an action).",
        &[(String::new(), enforcements)],
    );

    let mut samples = Vec::new();
    for status in InquiryStatus::ALL {
        let total = store.inquiries().list(Some(*status), one).await?.total;
        samples.push((format!("status=\"{}\"", status.as_str()), total));
    }
    family(
        &mut out,
        "st2_inquiries",
        "gauge",
        "Stored inquiries by status.",
        &samples,
    );

    Ok((StatusCode::OK, [(CONTENT_TYPE, CONTENT)], out).into_response())
}
