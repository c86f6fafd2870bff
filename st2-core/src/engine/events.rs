//! What the engine tells subscribers: the events st2stream publishes (`st2.execution__create`,
//! `st2.execution__update`, `st2.execution.output__create`, `st2.trigger_instance__create`,
//! `st2.announcement__<route>`). The daemon turns them into server-sent events.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::store::{ExecutionRecord, NewOutput, TriggerInstanceRecord};

/// One event of the engine's stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", content = "data")]
pub enum EngineEvent {
    /// An execution was created.
    #[serde(rename = "st2.execution__create")]
    ExecutionCreated(Arc<ExecutionRecord>),
    /// An execution changed (status, result, …).
    #[serde(rename = "st2.execution__update")]
    ExecutionUpdated(Arc<ExecutionRecord>),
    /// A line of output of a running execution.
    #[serde(rename = "st2.execution.output__create")]
    Output(Arc<NewOutput>),
    /// A trigger instance was accepted.
    #[serde(rename = "st2.trigger_instance__create")]
    TriggerInstance(Arc<TriggerInstanceRecord>),
    /// The rules engine finished with a trigger instance (`processed` or
    /// `processing_failed`), with the executions its rules started.
    #[serde(rename = "st2.trigger_instance__update")]
    TriggerInstanceProcessed {
        /// The instance, as stored.
        instance: Arc<TriggerInstanceRecord>,
        /// Ids of the executions it started.
        executions: Vec<String>,
    },
    /// An action alias was created, changed or deleted through the API
    /// (`st2.actionalias__create|update|delete`).
    #[serde(rename = "st2.actionalias")]
    ActionAlias {
        /// `create`, `update` or `delete`.
        verb: String,
        /// The alias as the API shows it.
        alias: Value,
    },
    /// An announcement (the `announcement` runner).
    #[serde(rename = "st2.announcement")]
    Announcement {
        /// The route.
        route: String,
        /// What was announced.
        payload: Value,
    },
}

impl EngineEvent {
    /// StackStorm's event name (`st2.execution__update`, or `st2.announcement__<route>`).
    pub fn name(&self) -> String {
        match self {
            EngineEvent::ExecutionCreated(_) => "st2.execution__create".into(),
            EngineEvent::ExecutionUpdated(_) => "st2.execution__update".into(),
            EngineEvent::Output(_) => "st2.execution.output__create".into(),
            EngineEvent::TriggerInstance(_) => "st2.trigger_instance__create".into(),
            EngineEvent::TriggerInstanceProcessed { .. } => "st2.trigger_instance__update".into(),
            EngineEvent::ActionAlias { verb, .. } => format!("st2.actionalias__{verb}"),
            EngineEvent::Announcement { route, .. } => format!("st2.announcement__{route}"),
        }
    }

    /// The execution this event is about, if any.
    pub fn execution_id(&self) -> Option<&str> {
        match self {
            EngineEvent::ExecutionCreated(e) | EngineEvent::ExecutionUpdated(e) => Some(&e.id),
            EngineEvent::Output(o) => Some(&o.execution_id),
            _ => None,
        }
    }
}
