//! The leased work queue: claims in one writer transaction, fences from a store-wide counter.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;

use super::connection::sql_error;
use super::writer::Db;
use super::{Shared, from_doc, to_doc};
use crate::store::{
    ClaimRequest, Lease, LeaseRef, NewWorkItem, QueueDepth, StoreError, StoreResult, Timestamp,
    WorkItem, WorkQueue, from_micros, to_micros,
};

const WHAT: &str = "work item payload";

/// The work queue of one store.
pub(super) struct Queue(pub(super) Arc<Shared>);

/// A lease duration in microseconds.
fn lease_micros(lease_for: Duration) -> StoreResult<i64> {
    i64::try_from(lease_for.as_micros())
        .map_err(|_| StoreError::Invalid(format!("lease duration {lease_for:?} is too large")))
}

/// `now + lease`, refused past the last representable time.
fn expiry(now: i64, lease: i64) -> StoreResult<i64> {
    now.checked_add(lease)
        .filter(|at| *at <= to_micros(chrono::DateTime::<chrono::Utc>::MAX_UTC))
        .ok_or_else(|| StoreError::Invalid(format!("a lease of {lease} µs is too large")))
}

/// A claimed row before its payload is parsed (the writer does no JSON work).
struct Claimed {
    id: i64,
    queue: String,
    payload: String,
    required_tag: Option<String>,
    not_before: i64,
    enqueued_at: i64,
    attempts: i64,
    fence: i64,
    expires_at: i64,
}

impl Claimed {
    fn lease(self) -> StoreResult<Lease> {
        Ok(Lease {
            item: WorkItem {
                id: self.id,
                queue: self.queue,
                payload: from_doc(WHAT, &self.payload)?,
                required_tag: self.required_tag,
                not_before: from_micros(self.not_before),
                enqueued_at: from_micros(self.enqueued_at),
                attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            },
            fence: self.fence,
            expires_at: from_micros(self.expires_at),
        })
    }
}

fn lost(lease: LeaseRef) -> StoreError {
    StoreError::LeaseLost {
        item_id: lease.item_id,
        fence: lease.fence,
    }
}

/// The claimable items of a queue, oldest first.
fn claimable(
    db: &Db<'_, '_>,
    queue: &str,
    tags: Option<&str>,
    now: i64,
    limit: i64,
) -> StoreResult<Vec<i64>> {
    let conn = db.conn();
    let statement = match tags {
        None => conn.prepare_cached(
            "SELECT id FROM work_items WHERE queue = ?1 AND state = 0 AND not_before <= ?2 \
             AND required_tag IS NULL ORDER BY not_before, id LIMIT ?3",
        ),
        Some(_) => conn.prepare_cached(
            "SELECT id FROM work_items WHERE queue = ?1 AND state = 0 AND not_before <= ?2 \
             AND (required_tag IS NULL OR required_tag IN (SELECT value FROM json_each(?4))) \
             ORDER BY not_before, id LIMIT ?3",
        ),
    };
    let mut statement = statement.map_err(sql_error)?;
    let params: Vec<rusqlite::types::Value> = match tags {
        None => vec![queue.to_owned().into(), now.into(), limit.into()],
        Some(tags) => vec![
            queue.to_owned().into(),
            now.into(),
            limit.into(),
            tags.to_owned().into(),
        ],
    };
    let rows = statement
        .query_map(rusqlite::params_from_iter(params), |r| r.get(0))
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<i64>>>()
        .map_err(sql_error)?;
    Ok(rows)
}

/// A new work item as its row, built off the writer thread.
pub(super) struct WorkItemRow {
    pub(super) queue: String,
    payload: String,
    tag: Option<String>,
    not_before: Option<i64>,
}

impl WorkItemRow {
    pub(super) fn new(item: NewWorkItem) -> StoreResult<Self> {
        Ok(Self {
            payload: to_doc(WHAT, &item.payload)?,
            not_before: item.not_before.map(to_micros),
            queue: item.queue,
            tag: item.required_tag,
        })
    }

    /// Insert it (one statement); its id. The caller wakes the queue's waiters after the
    /// commit.
    pub(super) fn insert(&self, db: &Db<'_, '_>) -> StoreResult<i64> {
        let now = db.now();
        db.with_statement(
            "INSERT INTO work_items (queue, payload, required_tag, not_before, \
                 enqueued_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            |s| {
                s.insert(params![
                    self.queue,
                    self.payload,
                    self.tag,
                    self.not_before.unwrap_or(now),
                    now
                ])
            },
        )
        .map_err(sql_error)
    }
}

/// Remove a finished item held under `lease` (one statement).
pub(super) fn finish(db: &Db<'_, '_>, lease: LeaseRef) -> StoreResult<()> {
    let changed = db
        .with_statement(
            "DELETE FROM work_items WHERE id = ?1 AND fence = ?2 AND state = 1 \
             AND lease_expires_at > ?3",
            |s| s.execute(params![lease.item_id, lease.fence, db.now()]),
        )
        .map_err(sql_error)?;
    if changed == 0 {
        return Err(lost(lease));
    }
    Ok(())
}

#[async_trait]
impl WorkQueue for Queue {
    async fn enqueue(&self, item: NewWorkItem) -> Result<i64, StoreError> {
        let row = WorkItemRow::new(item)?;
        let (id, row) = self
            .0
            .write_one(move |db| row.insert(db).map(|id| (id, row)))
            .await?;
        self.0.wakeups.notify(&row.queue);
        Ok(id)
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<Lease>, StoreError> {
        if request.max_items == 0 {
            return Err(StoreError::Invalid(
                "a claim must ask for at least one item".into(),
            ));
        }
        let lease = lease_micros(request.lease_for)?;
        let limit = i64::try_from(request.max_items).unwrap_or(i64::MAX);
        let queue = request.queue.clone();
        let worker = request.worker.clone();
        let tags = (!request.tags.is_empty()).then(|| {
            let tags: Vec<&str> = request.tags.iter().map(String::as_str).collect();
            super::filter::json_list(&tags)
        });
        let claimed = self
            .0
            .write_repeatable(move |db| {
                let now = db.now();
                let expires_at = expiry(now, lease)?;
                let ids = claimable(db, &queue, tags.as_deref(), now, limit)?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let conn = db.conn();
                let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
                let last: i64 = db
                    .with_statement(
                        "UPDATE queue_fence SET value = value + ?1 WHERE id = 1 RETURNING value",
                        |s| s.query_row([count], |r| r.get(0)),
                    )
                    .map_err(sql_error)?;
                let mut mark = conn
                    .prepare_cached(
                        "UPDATE work_items SET state = 1, fence = ?1, lease_expires_at = ?2, \
                         worker = ?3, attempts = attempts + 1 WHERE id = ?4 \
                         RETURNING queue, payload, required_tag, not_before, enqueued_at, attempts",
                    )
                    .map_err(sql_error)?;
                let mut claimed = Vec::with_capacity(ids.len());
                for (fence, id) in (last - count + 1..).zip(ids) {
                    let row = mark
                        .query_row(params![fence, expires_at, worker, id], |r| {
                            Ok(Claimed {
                                id,
                                queue: r.get(0)?,
                                payload: r.get(1)?,
                                required_tag: r.get(2)?,
                                not_before: r.get(3)?,
                                enqueued_at: r.get(4)?,
                                attempts: r.get(5)?,
                                fence,
                                expires_at,
                            })
                        })
                        .map_err(sql_error)?;
                    claimed.push(row);
                }
                Ok(claimed)
            })
            .await?;
        claimed.into_iter().map(Claimed::lease).collect()
    }

    async fn heartbeat(
        &self,
        lease: LeaseRef,
        lease_for: Duration,
    ) -> Result<Timestamp, StoreError> {
        let length = lease_micros(lease_for)?;
        let expires_at = self
            .0
            .write_one(move |db| {
                let now = db.now();
                let expires_at = expiry(now, length)?;
                let changed = db
                    .with_statement(
                        "UPDATE work_items SET lease_expires_at = ?1 WHERE id = ?2 AND fence = ?3 \
                         AND state = 1 AND lease_expires_at > ?4",
                        |s| s.execute(params![expires_at, lease.item_id, lease.fence, now]),
                    )
                    .map_err(sql_error)?;
                if changed == 0 {
                    return Err(lost(lease));
                }
                Ok(expires_at)
            })
            .await?;
        Ok(from_micros(expires_at))
    }

    async fn finish(&self, lease: LeaseRef) -> Result<(), StoreError> {
        self.0.write_one(move |db| finish(db, lease)).await
    }

    async fn release(
        &self,
        lease: LeaseRef,
        not_before: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let not_before = not_before.map(to_micros);
        let queue: String = self
            .0
            .write_one(move |db| {
                let now = db.now();
                let queue: Option<String> = db
                    .with_statement(
                        "UPDATE work_items SET state = 0, not_before = ?1, \
                         lease_expires_at = NULL, worker = NULL WHERE id = ?2 AND fence = ?3 \
                         AND state = 1 AND lease_expires_at > ?4 RETURNING queue",
                        |s| {
                            let mut rows = s.query_map(
                                params![not_before.unwrap_or(now), lease.item_id, lease.fence, now],
                                |r| r.get(0),
                            )?;
                            rows.next().transpose()
                        },
                    )
                    .map_err(sql_error)?;
                queue.ok_or_else(|| lost(lease))
            })
            .await?;
        self.0.wakeups.notify(&queue);
        Ok(())
    }

    async fn reap_expired(&self) -> Result<u64, StoreError> {
        let queues: Vec<String> = self
            .0
            .write_one(move |db| {
                let mut statement = db
                    .conn()
                    .prepare_cached(
                        "UPDATE work_items SET state = 0, lease_expires_at = NULL, worker = NULL \
                         WHERE state = 1 AND lease_expires_at <= ?1 RETURNING queue",
                    )
                    .map_err(sql_error)?;
                let queues = statement
                    .query_map([db.now()], |r| r.get(0))
                    .map_err(sql_error)?
                    .collect::<rusqlite::Result<Vec<String>>>()
                    .map_err(sql_error)?;
                Ok(queues)
            })
            .await?;
        let reaped = queues.len() as u64;
        for queue in queues.into_iter().collect::<BTreeSet<_>>() {
            self.0.wakeups.notify(&queue);
        }
        Ok(reaped)
    }

    async fn depth(&self, queue: &str) -> Result<QueueDepth, StoreError> {
        let queue = queue.to_owned();
        let (ready, delayed, leased) = self
            .0
            .read(move |db| {
                db.conn()
                    .prepare_cached(
                        // Ready items through the claim index, leased ones through the
                        // leases index (there are few: those in flight).
                        "SELECT (SELECT count(*) FROM work_items WHERE queue = ?1 AND state = 0 \
                         AND not_before <= ?2), (SELECT count(*) FROM work_items \
                         WHERE queue = ?1 AND state = 0 AND not_before > ?2), \
                         (SELECT count(*) FROM work_items WHERE state = 1 AND queue = ?1 \
                         AND lease_expires_at IS NOT NULL) + (SELECT count(*) FROM work_items \
                         WHERE state = 1 AND queue = ?1 AND lease_expires_at IS NULL)",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![queue, db.now()], |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, i64>(2)?,
                            ))
                        })
                    })
                    .map_err(sql_error)
            })
            .await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(QueueDepth {
            ready: count(ready),
            delayed: count(delayed),
            leased: count(leased),
        })
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) {
        self.0.wakeups.wait(queue, timeout).await;
    }

    async fn lead(&self, role: &str, holder: &str, term: Duration) -> Result<bool, StoreError> {
        let length = lease_micros(term)?;
        let (role, holder) = (role.to_owned(), holder.to_owned());
        self.0
            .write_one(move |db| {
                let now = db.now();
                let expires_at = expiry(now, length)?;
                let changed = db
                    .with_statement(
                        "INSERT INTO leaders (role, holder, expires_at) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, \
                         expires_at = excluded.expires_at \
                         WHERE leaders.holder = excluded.holder OR leaders.expires_at <= ?4",
                        |s| s.execute(params![role, holder, expires_at, now]),
                    )
                    .map_err(sql_error)?;
                Ok(changed == 1)
            })
            .await
    }
}
