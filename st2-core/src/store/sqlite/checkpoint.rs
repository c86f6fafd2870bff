//! WAL checkpoints on their own thread and connection, so the writer never stalls copying the
//! log back into the database (and syncing both) in the middle of a stream of commits.
//!
//! The writer nudges the checkpointer after each commit; the checkpointer runs a `PASSIVE`
//! checkpoint at most every [`INTERVAL`] while commits keep coming, and once more after they
//! stop. A passive checkpoint running beside a busy writer never quite reaches the end of the
//! log, and SQLite only rewinds the log once all of it is checkpointed, so when the log has
//! grown past [`OVERSIZED_FRAMES`] the writer runs one checkpoint itself between two batches
//! (cheap: only the frames since the last background checkpoint remain), after which its next
//! transaction starts the log over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::store::{StoreError, StoreResult};

/// How often a checkpoint runs while commits keep coming. Short on purpose: a checkpoint's
/// cost to the writer grows with the pages it copies and syncs (the writer's log appends wait
/// behind the database file's flush), so many small checkpoints stall commits less than a few
/// large ones. Measured at a steady 1,000 executions/s on SQLite (docs/performance.md): p99
/// trigger → runner started 13–20 ms at 100 ms, 5–6 ms at 10 ms, 3 ms with no checkpoint at
/// all; burst throughput the same.
const INTERVAL: Duration = Duration::from_millis(10);

/// A log this long (in pages) makes the writer checkpoint between two batches.
const OVERSIZED_FRAMES: i64 = 16_384;

/// Run a passive checkpoint on `conn`; returns the log's length in frames.
pub(super) fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

/// The writer's handle on the checkpointer thread.
pub(super) struct Checkpointer {
    nudge: SyncSender<()>,
    oversized: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    /// Start the checkpointer over `conn`, a read-write connection to the writer's file.
    pub(super) fn spawn(conn: Connection) -> StoreResult<Self> {
        let (nudge, nudges) = mpsc::sync_channel(1);
        let oversized = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&oversized);
        let thread = std::thread::Builder::new()
            .name("st2-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(conn, nudges, flag))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Self {
            nudge,
            oversized,
            thread,
        })
    }

    /// Something was committed.
    pub(super) fn nudge(&self) {
        match self.nudge.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            // The thread is gone; the writer then checkpoints on its own (see `oversized`).
            Err(TrySendError::Disconnected(())) => self.oversized.store(true, Ordering::Relaxed),
        }
    }

    /// Run a last checkpoint, close the connection and wait for the thread to end.
    pub(super) fn finish(self) {
        drop(self.nudge);
        // A panic in the thread has nothing left to clean up.
        let _ = self.thread.join();
    }

    /// Whether the writer should checkpoint now (clears the request).
    pub(super) fn take_oversized(&self) -> bool {
        self.oversized.swap(false, Ordering::Relaxed)
    }
}

fn checkpoint_loop(conn: Connection, nudges: mpsc::Receiver<()>, oversized: Arc<AtomicBool>) {
    let mut pending = false;
    let mut last = Instant::now();
    loop {
        // Idle (nothing committed since the last checkpoint): sleep until a commit. Otherwise
        // wait out the rest of the interval, taking further nudges on the way.
        let received = if pending {
            nudges.recv_timeout(INTERVAL.saturating_sub(last.elapsed()))
        } else {
            nudges.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        let stop = match received {
            Ok(()) => {
                pending = true;
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if pending && (stop || last.elapsed() >= INTERVAL) {
            // Errors (a busy database, a full disk) leave the log as it is: the next checkpoint,
            // or the writer's, tries again.
            if let Ok(frames) = passive_checkpoint(&conn)
                && frames >= OVERSIZED_FRAMES
            {
                oversized.store(true, Ordering::Relaxed);
            }
            pending = false;
            last = Instant::now();
        }
        if stop {
            break;
        }
    }
    let _ = conn.close();
}
