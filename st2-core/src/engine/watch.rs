//! Waiters on particular executions (`Engine::wait`, a workflow or chain waiting for its
//! children): each is told of the updates of the executions it names, and only of those.
//!
//! Waiting through the engine's event channel meant every waiter received every event: with a
//! hundred workflows each waiting for its current task, every update of any execution woke
//! all hundred to find that it was not theirs. Here an update is handed to the waiters
//! registered for its id, in the order updates are announced.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::store::{ExecutionRecord, ExecutionStatus};

/// Which statuses a wait wants to hear of (`None`: every update).
pub(crate) type Wants = Option<fn(ExecutionStatus) -> bool>;

/// The registered waiters of one engine, by execution id.
#[derive(Default)]
pub(crate) struct Watchers {
    /// How many waits are registered (the update path skips the map while there are none).
    active: AtomicUsize,
    by_id: Mutex<HashMap<String, Vec<Arc<Slot>>>>,
}

/// One wait's mailbox: the updates handed to it and the signal that there are some.
#[derive(Default)]
struct Slot {
    updates: Mutex<Vec<Arc<ExecutionRecord>>>,
    ready: Notify,
    /// The statuses it is told of (a workflow waiting for its children to end is not told
    /// that they run).
    wants: Wants,
}

impl Slot {
    fn wants(&self, status: ExecutionStatus) -> bool {
        self.wants.is_none_or(|wants| wants(status))
    }

    fn updates(&self) -> MutexGuard<'_, Vec<Arc<ExecutionRecord>>> {
        self.updates.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Watchers {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Vec<Arc<Slot>>>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a wait on `ids` (duplicates are ignored); it receives every update announced
    /// from now on until it is dropped. More ids can be added to it later.
    pub(crate) fn watch<'a>(self: &Arc<Self>, ids: impl IntoIterator<Item = &'a str>) -> Watch {
        self.watch_for(ids, None)
    }

    /// [`Watchers::watch`] for the updates to a status `wants` accepts only.
    pub(crate) fn watch_for<'a>(
        self: &Arc<Self>,
        ids: impl IntoIterator<Item = &'a str>,
        wants: Wants,
    ) -> Watch {
        self.active.fetch_add(1, Ordering::AcqRel);
        let mut watch = Watch {
            watchers: Arc::clone(self),
            ids: HashSet::new(),
            slot: Arc::new(Slot {
                wants,
                ..Slot::default()
            }),
        };
        for id in ids {
            watch.add(id);
        }
        watch
    }

    /// Whether some wait registered on `id` wants to hear of its update to `status`.
    pub(crate) fn is_watched(&self, id: &str, status: ExecutionStatus) -> bool {
        self.active.load(Ordering::Acquire) > 0
            && self
                .map()
                .get(id)
                .is_some_and(|slots| slots.iter().any(|s| s.wants(status)))
    }

    /// Hand `record` to the waits registered on its id that want its status.
    pub(crate) fn deliver(&self, record: &Arc<ExecutionRecord>) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        let map = self.map();
        for slot in map.get(&record.id).into_iter().flatten() {
            if slot.wants(record.status) {
                slot.updates().push(Arc::clone(record));
                slot.ready.notify_one();
            }
        }
    }

    fn unregister(&self, map: &mut HashMap<String, Vec<Arc<Slot>>>, id: &str, slot: &Arc<Slot>) {
        if let Some(slots) = map.get_mut(id) {
            slots.retain(|s| !Arc::ptr_eq(s, slot));
            if slots.is_empty() {
                map.remove(id);
            }
        }
    }
}

/// A registered wait; dropping it unregisters.
pub(crate) struct Watch {
    watchers: Arc<Watchers>,
    ids: HashSet<String>,
    slot: Arc<Slot>,
}

impl Watch {
    /// Also receive the updates of `id`; whether it was not registered before (so updates made
    /// before now were not seen).
    pub(crate) fn add(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        self.watchers
            .map()
            .entry(id.to_owned())
            .or_default()
            .push(Arc::clone(&self.slot));
        self.ids.insert(id.to_owned());
        true
    }

    /// Stop receiving the updates of the ids `keep` refuses.
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        if self.ids.iter().all(|id| keep(id)) {
            return;
        }
        let mut map = self.watchers.map();
        let slot = &self.slot;
        let watchers = &self.watchers;
        self.ids.retain(|id| {
            let kept = keep(id);
            if !kept {
                watchers.unregister(&mut map, id, slot);
            }
            kept
        });
    }

    /// The updates handed over since the last call, oldest first.
    pub(crate) fn take(&self) -> Vec<Arc<ExecutionRecord>> {
        std::mem::take(&mut *self.slot.updates())
    }

    /// Hand `kept` back, ahead of anything handed over since: the next [`Watch::take`] returns
    /// it again (an update a wait looked at but did not act on).
    pub(crate) fn put_back(&self, kept: Vec<Arc<ExecutionRecord>>) {
        if kept.is_empty() {
            return;
        }
        let mut updates = self.slot.updates();
        let later = std::mem::replace(&mut *updates, kept);
        updates.extend(later);
    }

    /// Resolves once an update is handed over (at once if one was since the last call).
    pub(crate) async fn changed(&self) {
        self.slot.ready.notified().await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        {
            let mut map = self.watchers.map();
            for id in &self.ids {
                self.watchers.unregister(&mut map, id, &self.slot);
            }
        }
        self.watchers.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Arc<ExecutionRecord> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "id": id,
                "action_ref": "core.noop",
                "action": {},
                "runner": {},
                "status": "succeeded",
                "parameters": {},
                "result": {},
                "context": {},
                "children": [],
                "start_timestamp": "2026-11-26T00:00:00Z",
                "log": [],
            }))
            .expect("a record"),
        )
    }

    #[tokio::test]
    async fn a_wait_gets_the_updates_of_its_ids_only_and_unregisters_when_dropped() {
        let watchers = Arc::new(Watchers::default());
        let mut wait = watchers.watch(["a", "b", "a"]);
        let other = watchers.watch(["c"]);
        assert!(
            watchers.is_watched("a", ExecutionStatus::Running)
                && watchers.is_watched("c", ExecutionStatus::Running)
        );
        assert!(!watchers.is_watched("d", ExecutionStatus::Running));

        watchers.deliver(&record("a"));
        watchers.deliver(&record("c"));
        watchers.deliver(&record("b"));
        // Handed over before anyone waited: `changed` resolves at once.
        wait.changed().await;
        let ids: Vec<String> = wait.take().iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(wait.take().is_empty());
        assert_eq!(other.take().len(), 1);

        // Ids added later receive what comes after; ids let go receive nothing more.
        assert!(wait.add("d") && !wait.add("a"));
        wait.retain(|id| id != "b");
        assert!(
            !watchers.is_watched("b", ExecutionStatus::Running)
                && watchers.is_watched("d", ExecutionStatus::Running)
        );
        watchers.deliver(&record("b"));
        watchers.deliver(&record("d"));
        let ids: Vec<String> = wait.take().iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, ["d"]);

        // What is put back comes first next time.
        watchers.deliver(&record("a"));
        wait.put_back(vec![record("d")]);
        let ids: Vec<String> = wait.take().iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, ["d", "a"]);

        drop(wait);
        assert!(
            !watchers.is_watched("a", ExecutionStatus::Running)
                && !watchers.is_watched("d", ExecutionStatus::Running)
        );
        drop(other);
        assert_eq!(watchers.active.load(Ordering::Acquire), 0);
        assert!(watchers.map().is_empty());
    }

    #[tokio::test]
    async fn two_waits_on_one_id_both_get_its_update() {
        let watchers = Arc::new(Watchers::default());
        let first = watchers.watch(["x"]);
        let second = watchers.watch(["x"]);
        watchers.deliver(&record("x"));
        assert_eq!(first.take().len(), 1);
        assert_eq!(second.take().len(), 1);
        drop(first);
        assert!(watchers.is_watched("x", ExecutionStatus::Running));
        drop(second);
        assert!(!watchers.is_watched("x", ExecutionStatus::Running));
    }

    #[test]
    fn a_wait_for_some_statuses_hears_of_those_only() {
        let watchers = Arc::new(Watchers::default());
        let ends = watchers.watch_for(["a"], Some(ExecutionStatus::is_completed));
        assert!(!watchers.is_watched("a", ExecutionStatus::Running));
        assert!(watchers.is_watched("a", ExecutionStatus::Succeeded));
        let mut running = (*record("a")).clone();
        running.status = ExecutionStatus::Running;
        watchers.deliver(&Arc::new(running));
        assert!(ends.take().is_empty(), "not told that it runs");
        watchers.deliver(&record("a"));
        assert_eq!(ends.take().len(), 1, "told that it ended");
        // Another wait on the same id hears of everything.
        let all = watchers.watch(["a"]);
        assert!(watchers.is_watched("a", ExecutionStatus::Running));
        drop(all);
        assert!(!watchers.is_watched("a", ExecutionStatus::Running));
    }
}
