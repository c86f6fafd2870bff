//! The leased work queue over `work_items`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use super::{PgStore, StoreError, clamp_i64, get, pg_error};
use crate::store::queue::{
    ClaimRequest, Lease, LeaseRef, NewWorkItem, QueueDepth, WorkItem, WorkQueue,
};
use crate::store::{Timestamp, from_micros, to_micros};

/// Longest queue name: it travels as a `NOTIFY` payload (at most 8000 bytes).
const MAX_QUEUE_NAME: usize = 1000;

const CLAIM: &str = "UPDATE work_items w
    SET state = 'leased', fence = nextval('work_fence'), leased_by = $5,
        lease_expires_at = $6, attempts = w.attempts + 1
    FROM (SELECT id FROM work_items
          WHERE queue = $1 AND state = 'ready' AND not_before <= $2
            AND (required_tag IS NULL OR required_tag = ANY($3))
          ORDER BY not_before, id
          LIMIT $4
          FOR UPDATE SKIP LOCKED) c
    WHERE w.id = c.id
    RETURNING w.id, w.queue, w.payload, w.required_tag, w.not_before, w.enqueued_at,
              w.attempts, w.fence";

/// The claim of a worker without tags (uses the index that leads with the tag).
const CLAIM_UNTAGGED: &str = "UPDATE work_items w
    SET state = 'leased', fence = nextval('work_fence'), leased_by = $5,
        lease_expires_at = $6, attempts = w.attempts + 1
    FROM (SELECT id FROM work_items
          WHERE queue = $1 AND state = 'ready' AND not_before <= $2
            AND required_tag IS NULL AND cardinality($3::text[]) = 0
          ORDER BY not_before, id
          LIMIT $4
          FOR UPDATE SKIP LOCKED) c
    WHERE w.id = c.id
    RETURNING w.id, w.queue, w.payload, w.required_tag, w.not_before, w.enqueued_at,
              w.attempts, w.fence";

pub(super) const ENQUEUE: &str = "INSERT INTO work_items (queue, payload, required_tag, not_before,
        enqueued_at)
    VALUES ($1, $2, $3, $4, $5) RETURNING id";

const HEARTBEAT: &str = "UPDATE work_items SET lease_expires_at = $4
    WHERE id = $1 AND fence = $2 AND state = 'leased' AND lease_expires_at > $3
    RETURNING lease_expires_at";

pub(super) const FINISH: &str = "DELETE FROM work_items
    WHERE id = $1 AND fence = $2 AND state = 'leased' AND lease_expires_at > $3";

const RELEASE: &str = "UPDATE work_items
    SET state = 'ready', fence = NULL, leased_by = NULL, lease_expires_at = NULL,
        not_before = $4
    WHERE id = $1 AND fence = $2 AND state = 'leased' AND lease_expires_at > $3
    RETURNING queue";

const REAP: &str = "WITH r AS (
        UPDATE work_items
        SET state = 'ready', fence = NULL, leased_by = NULL, lease_expires_at = NULL
        WHERE state = 'leased' AND lease_expires_at <= $1
        RETURNING queue)
    SELECT queue, count(*) FROM r GROUP BY queue";

const LEAD: &str = "INSERT INTO leaders (role, holder, expires_at) VALUES ($1, $2, $3)
    ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE leaders.holder = excluded.holder OR leaders.expires_at <= $4";

const DEPTH: &str = "SELECT
        count(*) FILTER (WHERE state = 'ready' AND not_before <= $2),
        count(*) FILTER (WHERE state = 'ready' AND not_before > $2),
        count(*) FILTER (WHERE state = 'leased')
    FROM work_items WHERE queue = $1";

/// A duration as microseconds, refusing what does not fit.
fn micros(d: Duration) -> Result<i64, StoreError> {
    i64::try_from(d.as_micros())
        .map_err(|_| StoreError::Invalid(format!("lease duration {d:?} is too large")))
}

/// `now + lease_for` in microseconds, refusing expiries past the representable range.
fn expiry(now: i64, lease_for: Duration) -> Result<i64, StoreError> {
    let max = to_micros(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    now.checked_add(micros(lease_for)?)
        .filter(|t| *t <= max)
        .ok_or_else(|| StoreError::Invalid(format!("lease duration {lease_for:?} is too large")))
}

pub(super) fn check_queue(queue: &str) -> Result<(), StoreError> {
    if queue.len() > MAX_QUEUE_NAME {
        return Err(StoreError::Invalid(format!(
            "queue name longer than {MAX_QUEUE_NAME} bytes"
        )));
    }
    Ok(())
}

fn lease_of(row: &Row, expires_at: i64) -> Result<Lease, StoreError> {
    let Json(payload): Json<Value> = row
        .try_get(2)
        .map_err(|e| StoreError::Corrupt(format!("a work item payload does not parse: {e}")))?;
    let attempts: i32 = get(row, 6)?;
    Ok(Lease {
        item: WorkItem {
            id: get(row, 0)?,
            queue: get(row, 1)?,
            payload,
            required_tag: get(row, 3)?,
            not_before: from_micros(get(row, 4)?),
            enqueued_at: from_micros(get(row, 5)?),
            attempts: u32::try_from(attempts).unwrap_or(0),
        },
        fence: get(row, 7)?,
        expires_at: from_micros(expires_at),
    })
}

#[async_trait]
impl WorkQueue for PgStore {
    async fn enqueue(&self, item: NewWorkItem) -> Result<i64, StoreError> {
        check_queue(&item.queue)?;
        let now = self.now_micros();
        let not_before = item.not_before.map(to_micros).unwrap_or(now);
        let client = self.client().await?;
        let statement = client.prepare_cached(ENQUEUE).await.map_err(pg_error)?;
        let row = client
            .query_one(
                &statement,
                &[
                    &item.queue,
                    &Json(&item.payload),
                    &item.required_tag,
                    &not_before,
                    &now,
                ],
            )
            .await
            .map_err(pg_error)?;
        let id: i64 = get(&row, 0)?;
        self.wake(&item.queue);
        Ok(id)
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<Lease>, StoreError> {
        if request.max_items == 0 {
            return Err(StoreError::Invalid("max_items must be at least 1".into()));
        }
        let now = self.now_micros();
        let expires_at = expiry(now, request.lease_for)?;
        let limit = clamp_i64(u64::try_from(request.max_items).unwrap_or(u64::MAX));
        let client = self.client().await?;
        let sql = if request.tags.is_empty() {
            CLAIM_UNTAGGED
        } else {
            CLAIM
        };
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        let rows = client
            .query(
                &statement,
                &[
                    &request.queue,
                    &now,
                    &request.tags,
                    &limit,
                    &request.worker,
                    &expires_at,
                ],
            )
            .await
            .map_err(pg_error)?;
        let mut leases = rows
            .iter()
            .map(|row| lease_of(row, expires_at))
            .collect::<Result<Vec<_>, _>>()?;
        leases.sort_by_key(|l| (l.item.not_before, l.item.id));
        Ok(leases)
    }

    async fn heartbeat(
        &self,
        lease: LeaseRef,
        lease_for: Duration,
    ) -> Result<Timestamp, StoreError> {
        let now = self.now_micros();
        let expires_at = expiry(now, lease_for)?;
        let client = self.client().await?;
        let statement = client.prepare_cached(HEARTBEAT).await.map_err(pg_error)?;
        let row = client
            .query_opt(
                &statement,
                &[&lease.item_id, &lease.fence, &now, &expires_at],
            )
            .await
            .map_err(pg_error)?;
        match row {
            Some(_) => Ok(from_micros(expires_at)),
            None => Err(lost(lease)),
        }
    }

    async fn finish(&self, lease: LeaseRef) -> Result<(), StoreError> {
        let now = self.now_micros();
        let client = self.client().await?;
        let statement = client.prepare_cached(FINISH).await.map_err(pg_error)?;
        let n = client
            .execute(&statement, &[&lease.item_id, &lease.fence, &now])
            .await
            .map_err(pg_error)?;
        if n == 0 {
            return Err(lost(lease));
        }
        Ok(())
    }

    async fn release(
        &self,
        lease: LeaseRef,
        not_before: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let now = self.now_micros();
        let not_before = not_before.map(to_micros).unwrap_or(now);
        let client = self.client().await?;
        let statement = client.prepare_cached(RELEASE).await.map_err(pg_error)?;
        let row = client
            .query_opt(
                &statement,
                &[&lease.item_id, &lease.fence, &now, &not_before],
            )
            .await
            .map_err(pg_error)?;
        let Some(row) = row else {
            return Err(lost(lease));
        };
        let queue: String = get(&row, 0)?;
        self.wake(&queue);
        Ok(())
    }

    async fn reap_expired(&self) -> Result<u64, StoreError> {
        let now = self.now_micros();
        let client = self.client().await?;
        let statement = client.prepare_cached(REAP).await.map_err(pg_error)?;
        let rows = client.query(&statement, &[&now]).await.map_err(pg_error)?;
        let mut total = 0u64;
        for row in &rows {
            let queue: String = get(row, 0)?;
            let n: i64 = get(row, 1)?;
            total += u64::try_from(n).unwrap_or(0);
            self.wake(&queue);
        }
        Ok(total)
    }

    async fn depth(&self, queue: &str) -> Result<QueueDepth, StoreError> {
        let now = self.now_micros();
        let client = self.client().await?;
        let statement = client.prepare_cached(DEPTH).await.map_err(pg_error)?;
        let row = client
            .query_one(&statement, &[&queue, &now])
            .await
            .map_err(pg_error)?;
        let count = |i: usize| -> Result<u64, StoreError> {
            let n: i64 = get(&row, i)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(QueueDepth {
            ready: count(0)?,
            delayed: count(1)?,
            leased: count(2)?,
        })
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) {
        {
            let mut waited = self.inner.waited.lock().unwrap_or_else(|e| e.into_inner());
            if !waited.contains(queue) {
                waited.insert(queue.to_owned());
            }
        }
        self.inner.wakeups.wait(queue, timeout).await;
    }

    async fn lead(&self, role: &str, holder: &str, term: Duration) -> Result<bool, StoreError> {
        let now = self.now_micros();
        let expires_at = expiry(now, term)?;
        let client = self.client().await?;
        let statement = client.prepare_cached(LEAD).await.map_err(pg_error)?;
        let changed = client
            .execute(&statement, &[&role, &holder, &expires_at, &now])
            .await
            .map_err(pg_error)?;
        Ok(changed == 1)
    }
}

impl PgStore {
    /// Wake waiters of `queue`: at once in this process, through the notifier on other nodes.
    pub(super) fn wake(&self, queue: &str) {
        self.inner.wakeups.notify(queue);
        // The notifier only stops when the store shuts down; nobody is left to wake then.
        let _ = self.inner.notifier.send(queue.to_owned());
    }
}

pub(super) fn lost(lease: LeaseRef) -> StoreError {
    StoreError::LeaseLost {
        item_id: lease.item_id,
        fence: lease.fence,
    }
}
