//! What the engine tells subscribers: the events st2stream publishes (`st2.execution__create`,
//! `st2.execution__update`, `st2.execution.output__create`, `st2.trigger_instance__create`,
//! `st2.announcement__<route>`). The daemon turns them into server-sent events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use serde::Serialize;
use serde_json::Value;

use crate::store::{ExecutionRecord, NewOutput, TriggerInstanceRecord};

/// Updates (and output lines) of executions whose creation is not announced yet, held back
/// until it is. An execution is stored with its queue item in one commit, so a runner worker
/// may claim, update and run it before its creator announces it; subscribers must still see
/// it created first.
#[derive(Debug, Default)]
pub(crate) struct CreatedFirst {
    /// How many creations are in flight (checked without the lock).
    pending: AtomicUsize,
    /// Their ids and the updates held back for each.
    held: Mutex<HashMap<String, Vec<EngineEvent>>>,
}

impl CreatedFirst {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<EngineEvent>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hold back updates of `id` from now until [`CreatedFirst::release`].
    pub(crate) fn hold(&self, id: &str) {
        let mut held = self.lock();
        held.insert(id.to_owned(), Vec::new());
        self.pending.store(held.len(), Ordering::Release);
    }

    /// Send `event` (an update or output line of `id`) now, or keep it for after `id`'s
    /// creation.
    pub(crate) fn send(
        &self,
        sender: &broadcast::Sender<EngineEvent>,
        id: &str,
        event: EngineEvent,
    ) {
        if self.pending.load(Ordering::Acquire) > 0 {
            let mut held = self.lock();
            if let Some(updates) = held.get_mut(id) {
                updates.push(event);
                return;
            }
        }
        // A subscriber that went away in between is fine.
        let _ = sender.send(event);
    }

    /// Stop holding `id`: send `created` (when it was stored) and then the updates held back.
    pub(crate) fn release(
        &self,
        sender: Option<&broadcast::Sender<EngineEvent>>,
        id: &str,
        created: Option<EngineEvent>,
    ) {
        let mut held = self.lock();
        let updates = held.remove(id).unwrap_or_default();
        self.pending.store(held.len(), Ordering::Release);
        // Sent under the lock, so no later update of `id` can overtake them.
        if let (Some(sender), Some(created)) = (sender, created) {
            let _ = sender.send(created);
            for update in updates {
                let _ = sender.send(update);
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(n: u64) -> EngineEvent {
        EngineEvent::Announcement {
            route: "test".into(),
            payload: json!(n),
        }
    }

    fn received(rx: &mut broadcast::Receiver<EngineEvent>) -> Vec<Value> {
        let mut seen = Vec::new();
        while let Ok(EngineEvent::Announcement { payload, .. }) = rx.try_recv() {
            seen.push(payload);
        }
        seen
    }

    #[test]
    fn updates_of_an_execution_being_created_follow_its_created_event() {
        let (tx, mut rx) = broadcast::channel(16);
        let first = CreatedFirst::default();
        first.hold("a");
        first.send(&tx, "a", event(1));
        first.send(&tx, "b", event(2));
        assert_eq!(
            received(&mut rx),
            [json!(2)],
            "only b's update goes at once"
        );
        first.release(Some(&tx), "a", Some(event(0)));
        first.send(&tx, "a", event(3));
        assert_eq!(received(&mut rx), [json!(0), json!(1), json!(3)]);
    }

    #[test]
    fn a_creation_that_failed_drops_what_it_held_and_holds_nothing_more() {
        let (tx, mut rx) = broadcast::channel(16);
        let first = CreatedFirst::default();
        first.hold("a");
        first.send(&tx, "a", event(1));
        first.release(None, "a", None);
        assert_eq!(received(&mut rx), Vec::<Value>::new());
        first.send(&tx, "a", event(2));
        assert_eq!(received(&mut rx), [json!(2)]);
        assert_eq!(first.pending.load(Ordering::Acquire), 0);
    }
}
