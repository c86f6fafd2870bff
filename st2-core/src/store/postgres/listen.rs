//! The wake-up listener: one dedicated connection per store `LISTEN`s to the work channel and
//! forwards every notification (its payload is a queue name) to the in-process [`Wakeups`], so
//! a worker waiting on one node wakes when another node enqueues. It reconnects with back-off
//! when its connection drops.

use std::collections::HashSet;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use super::Wakeups;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
