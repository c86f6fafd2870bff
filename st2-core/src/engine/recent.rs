//! Executions this engine just stored `scheduled`, kept in memory for its runner workers: a
//! worker that claims one starts it from here instead of reading it back from the store.
//!
//! A hint, never the truth: an entry is the record as it was stored at its revision, and the
//! worker's next write presents that revision, so a record changed since (a cancel, another
//! node) fails that write with a conflict and the worker reads the store as it would have.
//! Entries are taken out when used. Past a fixed number, new records are not kept (claims
//! take the oldest items first, so the kept ones are the next to run) unless the oldest entry
//! has waited longer than [`STALE_AFTER`] (an item claimed by another node is never taken
//! here): it is dropped then.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::{ExecutionRecord, ExecutionStatus};

/// How many records are kept at most.
const CAPACITY: usize = 4096;

/// How long a kept record may wait before a newer one may push it out.
const STALE_AFTER: Duration = Duration::from_secs(30);

/// Recently stored `scheduled` executions by id.
#[derive(Debug, Default)]
pub(crate) struct RecentExecutions {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Shared with the batch that stored them (and the created event): taking one copies
    /// it only when someone else still holds it.
    records: HashMap<String, Arc<ExecutionRecord>>,
    /// Ids in the order they came, with when (some already taken).
    order: VecDeque<(Instant, String)>,
}

impl RecentExecutions {
    /// Keep `record` (as stored) when a runner worker will claim it next: scheduled, for any
    /// worker (one that waits for a tagged worker may wait long).
    pub(crate) fn keep(&self, record: &Arc<ExecutionRecord>) {
        if record.status != ExecutionStatus::Scheduled
            || super::executions::required_tag(record).is_some()
        {
            return;
        }
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.records.len() >= CAPACITY || state.order.len() >= 2 * CAPACITY {
            // Ids already taken go first; a record still kept only once it is stale.
            let Some((since, oldest)) = state.order.front() else {
                break;
            };
            if state.records.contains_key(oldest) && now.duration_since(*since) < STALE_AFTER {
                return;
            }
            if let Some((_, oldest)) = state.order.pop_front() {
                state.records.remove(&oldest);
            }
        }
        state.order.push_back((now, record.id.clone()));
        state.records.insert(record.id.clone(), Arc::clone(record));
    }

    /// The record kept for `id`, taken out.
    pub(crate) fn take(&self, id: &str) -> Option<ExecutionRecord> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let record = state.records.remove(id);
        if state.records.is_empty() {
            state.order.clear();
        }
        drop(state);
        record.map(Arc::unwrap_or_clone)
    }

    /// Forget `id` (it changed in a way the kept record does not show).
    pub(crate) fn forget(&self, id: &str) {
        self.take(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::{Map, Value, json};

    fn record(id: &str, status: ExecutionStatus) -> Arc<ExecutionRecord> {
        Arc::new(ExecutionRecord {
            id: id.to_owned(),
            revision: 1,
            action_ref: "core.noop".into(),
            action: json!({}).into(),
            runner: Value::Null.into(),
            status,
            parameters: Map::new(),
            result: json!({}),
            context: Map::new(),
            parent: None,
            children: Vec::new(),
            start_timestamp: Utc::now(),
            end_timestamp: None,
            log: Vec::new(),
            delay: None,
            notify: None,
            runner_info: None,
            rule: None,
            trigger: None,
            trigger_type: None,
            trigger_instance: None,
            workflow_execution: None,
            task_execution: None,
        })
    }

    #[test]
    fn keeps_scheduled_records_until_taken() {
        let recent = RecentExecutions::default();
        recent.keep(&record("a", ExecutionStatus::Scheduled));
        recent.keep(&record("b", ExecutionStatus::Requested));
        assert_eq!(recent.take("a").map(|r| r.id), Some("a".to_owned()));
        assert!(recent.take("a").is_none(), "taken once");
        assert!(
            recent.take("b").is_none(),
            "only scheduled records are kept"
        );
    }

    #[test]
    fn keeps_no_more_past_its_capacity() {
        let recent = RecentExecutions::default();
        for i in 0..=CAPACITY {
            recent.keep(&record(&i.to_string(), ExecutionStatus::Scheduled));
        }
        assert!(
            recent.take(&CAPACITY.to_string()).is_none(),
            "full: the newest was not kept"
        );
        assert!(recent.take("0").is_some(), "the oldest (next to run) stay");
        recent.keep(&record("again", ExecutionStatus::Scheduled));
        assert!(
            recent.take("again").is_some(),
            "room again once one was taken"
        );
        recent.forget("2");
        assert!(recent.take("2").is_none());
        assert!(recent.take("1").is_some());
    }
}
