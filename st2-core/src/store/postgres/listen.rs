//! Wake-ups across nodes.
//!
//! - The notifier: after an enqueue (release, reap) commits, the queue's name goes to a
//!   background task that sends `pg_notify(channel, queue)` for every distinct name waiting, in
//!   one transaction with `synchronous_commit` off. Notifying from the enqueuing transaction
//!   itself would serialise every enqueue of the database on PostgreSQL's notify lock, held
//!   across the commit's WAL flush; coalescing keeps enqueues concurrent (group commit) and
//!   sends one notification per queue per batch. Wake-ups are best effort: a lost one only
//!   delays a waiter until its timeout.
//! - The listener: one dedicated connection per store `LISTEN`s to the channel and forwards
//!   every notification (its payload is a queue name) to the in-process [`Wakeups`], so a worker
//!   waiting on one node wakes when another node enqueues. It reconnects with back-off when its
//!   connection drops.

use std::collections::HashSet;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use super::Wakeups;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Most queue names sent in one notifying transaction.
const MAX_BATCH: usize = 256;

/// Start the notifier task: it sends a notification for every queue name received on the
/// returned sender. It ends when every sender is dropped.
pub(super) fn spawn_notifier(
    pool: Pool,
    channel: String,
) -> (mpsc::UnboundedSender<String>, JoinHandle<()>) {
    let (sender, mut receiver) = mpsc::unbounded_channel::<String>();
    let handle = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
            batch.sort_unstable();
            batch.dedup();
            // Best effort: on failure the waiters elsewhere wake at their timeout.
            let _ = notify(&pool, &channel, &batch).await;
            batch.clear();
        }
    });
    (sender, handle)
}

async fn notify(pool: &Pool, channel: &str, queues: &[String]) -> Result<(), String> {
    let mut client = pool.get().await.map_err(|e| e.to_string())?;
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    // Nothing durable happens here: do not wait for a WAL flush.
    tx.batch_execute("SET LOCAL synchronous_commit TO off")
        .await
        .map_err(|e| e.to_string())?;
    let statement = tx
        .prepare_cached("SELECT count(pg_notify($1, q)) FROM unnest($2::text[]) AS q")
        .await
        .map_err(|e| e.to_string())?;
    tx.query_one(&statement, &[&channel, &queues])
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())
}

/// Start the listener task; abort the returned handle to stop it.
pub(super) fn spawn(
    config: Config,
    channel: String,
    wakeups: Wakeups,
    waited: Arc<Mutex<HashSet<String>>>,
    listening: Arc<AtomicBool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = MIN_BACKOFF;
        loop {
            // Whatever ended the session (refused, dropped, shut down), try again later.
            let _ = listen_once(
                &config,
                &channel,
                &wakeups,
                &waited,
                &listening,
                &mut backoff,
            )
            .await;
            listening.store(false, Ordering::SeqCst);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// One session: connect, `LISTEN`, forward notifications until the connection ends.
async fn listen_once(
    config: &Config,
    channel: &str,
    wakeups: &Wakeups,
    waited: &Mutex<HashSet<String>>,
    listening: &AtomicBool,
    backoff: &mut Duration,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    // The connection must be polled for the LISTEN to complete, and afterwards to receive.
    let mut driver = pin!(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => wakeups.notify(n.payload()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    // The channel is `st2_work` or `st2_work_<validated schema identifier>`.
    let listen = format!("LISTEN \"{channel}\"");
    tokio::select! {
        ended = &mut driver => return ended,
        done = client.batch_execute(&listen) => done?,
    }
    listening.store(true, Ordering::SeqCst);
    *backoff = MIN_BACKOFF;
    // Notifications sent while this node was not listening are lost: wake every queue anyone
    // waited on, once (spurious wake-ups are allowed).
    let queues: Vec<String> = waited
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect();
    for queue in queues {
        wakeups.notify(&queue);
    }
    let ended = driver.await;
    drop(client);
    ended
}
