//! The work queue: durable items claimed under a lease with a fence token.
//!
//! A worker claims items from a named queue; each claim is a [`Lease`] that expires unless the
//! worker heartbeats. Heartbeat, finish and release must present the lease's fence: after a lease
//! expires and the reaper hands the item to someone else, the old holder's fence is stale and
//! every call it makes is refused with [`StoreError::LeaseLost`].
//! Items may require a worker tag, pinning them to the workers that carry it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;

use super::StoreError;
use super::records::Timestamp;

/// An item to put on a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewWorkItem {
    /// Queue name (`scheduler`, `runner`, …).
    pub queue: String,
    /// What the worker needs to do the work.
    pub payload: Value,
    /// Only workers carrying this tag may claim it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_tag: Option<String>,
    /// Not claimable before this time (delays, retry back-off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
}

impl NewWorkItem {
    /// An item claimable at once by any worker of `queue`.
    pub fn new(queue: impl Into<String>, payload: Value) -> Self {
        Self {
            queue: queue.into(),
            payload,
            required_tag: None,
            not_before: None,
        }
    }
}

/// A stored work item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    /// Id, increasing in enqueue order.
    pub id: i64,
    /// Queue name.
    pub queue: String,
    /// Payload.
    pub payload: Value,
    /// Tag a claimer must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_tag: Option<String>,
    /// Earliest claim time.
    pub not_before: Timestamp,
    /// When it was enqueued.
    pub enqueued_at: Timestamp,
    /// How many times it has been claimed (this claim included).
    pub attempts: u32,
}

/// What a worker asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Queue name.
    pub queue: String,
    /// Who is claiming (recorded on the item, for operators).
    pub worker: String,
    /// The tags this worker carries; items with no required tag are always claimable.
    pub tags: Vec<String>,
    /// How long the lease lasts without a heartbeat.
    pub lease_for: Duration,
    /// Claim up to this many items at once (at least 1).
    pub max_items: usize,
}

impl ClaimRequest {
    /// Claim one item of `queue` as `worker`, leased for `lease_for`.
    pub fn one(queue: impl Into<String>, worker: impl Into<String>, lease_for: Duration) -> Self {
        Self {
            queue: queue.into(),
            worker: worker.into(),
            tags: Vec::new(),
            lease_for,
            max_items: 1,
        }
    }
}

/// Proof of holding an item: its id and the fence of the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseRef {
    /// The item.
    pub item_id: i64,
    /// The fence token: strictly greater for every new claim of any item in the store.
    pub fence: i64,
}

/// A claimed item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The item.
    pub item: WorkItem,
    /// The fence this claim must present.
    pub fence: i64,
    /// When the lease runs out unless extended.
    pub expires_at: Timestamp,
}

impl Lease {
    /// The reference to present on heartbeat, finish and release.
    pub fn reference(&self) -> LeaseRef {
        LeaseRef {
            item_id: self.item.id,
            fence: self.fence,
        }
    }
}

/// How many items a queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Claimable now.
    pub ready: u64,
    /// Waiting for their `not_before`.
    pub delayed: u64,
    /// Under a lease (expired or not).
    pub leased: u64,
}

/// The work queue.
///
/// # Contract
/// - `claim` is atomic: across all workers, threads, processes and nodes sharing the store, an
///   item is held by at most one unexpired lease, and each claim gets a fence larger than every
///   fence issued before it.
/// - Items are claimed in `not_before`, then enqueue order; an item is claimable when its
///   `not_before` is not after the store clock's now, it is not leased, and its required tag (if
///   any) is among the claimer's tags.
/// - `heartbeat`, `finish` and `release` succeed only for the current holder: same item, same
///   fence, lease not yet expired by the store clock.
/// - `reap_expired` returns items whose lease expired to the queue (claimable again at once).
/// - `enqueue` and `release` wake waiters of that queue ([`WorkQueue::wait_for_work`]).
/// - `lead` gives a role to one holder at a time: it succeeds for the current holder (renewing)
///   or when nobody holds the role or the holder's term expired by the store clock.
///
/// # Errors
/// [`StoreError::LeaseLost`] when a lease is stale; [`StoreError::Invalid`] for a request that
/// cannot be served (`max_items` 0, a lease duration too large); backend errors otherwise.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Put an item on its queue; returns its id.
    async fn enqueue(&self, item: NewWorkItem) -> Result<i64, StoreError>;

    /// Claim up to `max_items` claimable items.
    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<Lease>, StoreError>;

    /// Extend a lease to `now + lease_for`; returns the new expiry.
    async fn heartbeat(
        &self,
        lease: LeaseRef,
        lease_for: Duration,
    ) -> Result<Timestamp, StoreError>;

    /// The work is done: remove the item.
    async fn finish(&self, lease: LeaseRef) -> Result<(), StoreError>;

    /// Give the item back unfinished, claimable again from `not_before` (now when `None`).
    async fn release(
        &self,
        lease: LeaseRef,
        not_before: Option<Timestamp>,
    ) -> Result<(), StoreError>;

    /// Return every item whose lease has expired to its queue; returns how many.
    async fn reap_expired(&self) -> Result<u64, StoreError>;

    /// How many items `queue` holds, by state.
    async fn depth(&self, queue: &str) -> Result<QueueDepth, StoreError>;

    /// Wait until work may have arrived on `queue` or `timeout` passed. Spurious wake-ups are
    /// allowed; callers claim and wait again.
    async fn wait_for_work(&self, queue: &str, timeout: Duration);

    /// Take or renew the lead of `role` (`gc`, `timers`) for `holder` until `now + term`;
    /// `true` when `holder` leads now. Nodes that share a store call this before each round
    /// of a job one node at a time should do; a crashed leader's term runs out.
    async fn lead(&self, role: &str, holder: &str, term: Duration) -> Result<bool, StoreError>;
}

/// In-process wake-ups, one [`Notify`] per queue name. Backends call [`Wakeups::notify`] after
/// an enqueue commits (and, for PostgreSQL, when a `NOTIFY` from another node arrives).
#[derive(Debug, Default, Clone)]
pub struct Wakeups {
    queues: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Wakeups {
    /// No queues yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&self, queue: &str) -> Arc<Notify> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.entry(queue.to_owned()).or_default().clone()
    }

    /// Wake every waiter of `queue` (or, if none waits, the next one to wait).
    pub fn notify(&self, queue: &str) {
        let notify = self.get(queue);
        notify.notify_waiters();
        notify.notify_one();
    }

    /// Wait for [`Wakeups::notify`] on `queue`, at most `timeout`.
    pub async fn wait(&self, queue: &str, timeout: Duration) {
        let notify = self.get(queue);
        let _ = tokio::time::timeout(timeout, notify.notified()).await;
    }
}
