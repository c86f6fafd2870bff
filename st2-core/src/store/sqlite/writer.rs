//! The writer thread: it owns the only read-write connection and commits in groups.
//!
//! Callers send jobs (closures over the connection) down a channel. The thread takes everything
//! queued (up to `max_batch`) into one transaction, runs each job inside its own savepoint (a
//! failing job is rolled back to it and gets its error, the others proceed), commits, and only
//! then replies: a write is acknowledged once its batch has committed. When the commit fails,
//! every job of the batch gets the error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::checkpoint::{Checkpointer, passive_checkpoint};
use super::connection::{copy_error, sql_error};
use crate::clock::Clock;
use crate::store::{StoreError, StoreResult};

/// What a job sees: the connection (inside the batch transaction, for the writer) and the
/// store's clock.
pub(super) struct Db<'c> {
    conn: &'c Connection,
    clock: &'c dyn Clock,
}

impl<'c> Db<'c> {
    /// A view of `conn` with `clock`.
    pub(super) fn new(conn: &'c Connection, clock: &'c dyn Clock) -> Self {
        Self { conn, clock }
    }

    /// The connection.
    pub(super) fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// The store clock's now, in microseconds.
    pub(super) fn now(&self) -> i64 {
        crate::store::to_micros(self.clock.now())
    }

    /// Run a statement that returns no rows, through the statement cache.
    pub(super) fn exec(&self, sql: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(sql_error)
    }
}

/// A unit of work for the writer.
trait Job: Send {
    /// Whether the job may run several statements (and so needs its own savepoint). A job that
    /// runs one statement is undone by SQLite itself when that statement fails.
    fn needs_savepoint(&self) -> bool;
    /// Run it; on failure, returns a copy of the error it will reply with.
    fn run(&mut self, db: &Db<'_>) -> Result<(), StoreError>;
    /// Whether it ran and succeeded (so far).
    fn succeeded(&self) -> bool;
    /// Replace its outcome with a failure (its batch did not commit).
    fn fail(&mut self, error: StoreError);
    /// Send the outcome to the caller.
    fn reply(self: Box<Self>);
}

struct Pending<T, F> {
    work: Option<F>,
    savepoint: bool,
    outcome: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
{
    fn needs_savepoint(&self) -> bool {
        self.savepoint
    }

    fn run(&mut self, db: &Db<'_>) -> Result<(), StoreError> {
        let Some(work) = self.work.take() else {
            return Err(StoreError::Backend("a write job ran twice".into()));
        };
        let outcome = work(db);
        let copy = match &outcome {
            Ok(_) => Ok(()),
            Err(e) => Err(copy_error(e)),
        };
        self.outcome = Some(outcome);
        copy
    }

    fn succeeded(&self) -> bool {
        matches!(self.outcome, Some(Ok(_)))
    }

    fn fail(&mut self, error: StoreError) {
        self.outcome = Some(Err(error));
    }

    fn reply(self: Box<Self>) {
        let outcome = self
            .outcome
            .unwrap_or_else(|| Err(StoreError::Backend("a write job never ran".into())));
        // The caller may have gone away (its future dropped): nothing to tell then.
        let _ = self.reply.send(outcome);
    }
}

enum Message {
    Job(Box<dyn Job>),
    Close(oneshot::Sender<()>),
}

/// What callers and the writer thread share: the queued messages. A sender wakes the thread
/// only when it waits for as many messages as are now queued (one when idle, the size of the
/// batch it gathers otherwise), not on every send.
struct Mailbox {
    state: Mutex<MailState>,
    ready: Condvar,
}

struct MailState {
    messages: Vec<Message>,
    /// Wake the thread once this many messages are queued (`usize::MAX`: it is not waiting).
    wake_at: usize,
    /// A close is queued.
    closing: bool,
    /// Every handle is gone.
    abandoned: bool,
    /// The thread has stopped: nothing more is accepted.
    stopped: bool,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, MailState> {
        // The state stays consistent whatever panicked while holding the lock.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `message`; gives it back when the thread has stopped.
    fn send(&self, message: Message) -> Result<(), Message> {
        let mut state = self.lock();
        if state.stopped {
            return Err(message);
        }
        let urgent = matches!(message, Message::Close(_));
        state.closing |= urgent;
        state.messages.push(message);
        let wake = urgent || state.messages.len() >= state.wake_at;
        if wake {
            state.wake_at = usize::MAX;
        }
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// The handles are gone: the thread stops once the queue is empty.
    fn abandon(&self) {
        self.lock().abandoned = true;
        self.ready.notify_one();
    }
}

/// Marks the mailbox stopped when the writer thread ends (or dies): queued jobs are dropped,
/// so their callers hear that the store is gone.
struct StopOnExit(Arc<Mailbox>);

impl Drop for StopOnExit {
    fn drop(&mut self) {
        let left = {
            let mut state = self.0.lock();
            state.stopped = true;
            std::mem::take(&mut state.messages)
        };
        drop(left);
    }
}

/// The handle callers hold: the writer thread's mailbox.
pub(super) struct Writer {
    mailbox: Arc<Mailbox>,
    closed: AtomicBool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.mailbox.abandon();
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn gone() -> StoreError {
    StoreError::Unavailable("the store is closed (its writer has stopped)".into())
}

impl Writer {
    /// Start the writer thread over `conn` (already configured and migrated), with the
    /// checkpointer of a file database.
    pub(super) fn spawn(
        conn: Connection,
        clock: Arc<dyn Clock>,
        max_batch: usize,
        checkpointer: Option<Checkpointer>,
    ) -> StoreResult<Self> {
        let mailbox = Arc::new(Mailbox {
            state: Mutex::new(MailState {
                messages: Vec::new(),
                wake_at: usize::MAX,
                closing: false,
                abandoned: false,
                stopped: false,
            }),
            ready: Condvar::new(),
        });
        let inbox = Arc::clone(&mailbox);
        std::thread::Builder::new()
            .name("st2-sqlite-writer".into())
            .spawn(move || writer_loop(conn, clock, inbox, max_batch.max(1), checkpointer))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            mailbox,
            closed: AtomicBool::new(false),
        })
    }

    /// Run `work` in the writer; resolves once its batch has committed. `savepoint` must be
    /// true unless `work` runs at most one modifying statement.
    pub(super) async fn run<T, F>(&self, savepoint: bool, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(gone());
        }
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            work: Some(work),
            savepoint,
            outcome: None,
            reply,
        });
        self.mailbox.send(Message::Job(job)).map_err(|_| gone())?;
        // A dropped reply means the thread stopped (or died) before answering.
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Let queued jobs finish, close the connection and stop the thread. Later calls fail.
    pub(super) async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (reply, done) = oneshot::channel();
        if self.mailbox.send(Message::Close(reply)).is_ok() {
            let _ = done.await;
        }
    }
}

/// A writer idle this long expects no crowd: it commits the next write at once.
const IDLE: Duration = Duration::from_millis(1);
/// Bounds on how long a batch waits for the writers of the previous batch to come back.
const MIN_GATHER: Duration = Duration::from_micros(100);
const MAX_GATHER: Duration = Duration::from_millis(2);

struct Inbox {
    mailbox: Arc<Mailbox>,
    batch: Vec<Box<dyn Job>>,
    closing: Vec<oneshot::Sender<()>>,
    /// Messages moved out of the mailbox, not yet sorted into `batch` (kept for its buffer).
    incoming: Vec<Message>,
}

impl Inbox {
    fn take(&mut self, message: Message) {
        match message {
            Message::Job(job) => self.batch.push(job),
            Message::Close(reply) => self.closing.push(reply),
        }
    }

    /// Move up to `max` jobs (and any close) out of `state`; whether anything was taken.
    fn take_from(&mut self, state: &mut MailState, max: usize) -> bool {
        let room = max.saturating_sub(self.batch.len());
        if state.messages.is_empty() || room == 0 {
            return false;
        }
        if state.messages.len() <= room {
            std::mem::swap(&mut state.messages, &mut self.incoming);
        } else {
            self.incoming.extend(state.messages.drain(..room));
        }
        if !state
            .messages
            .iter()
            .any(|m| matches!(m, Message::Close(_)))
        {
            state.closing = false;
        }
        let mut incoming = std::mem::take(&mut self.incoming);
        for message in incoming.drain(..) {
            self.take(message);
        }
        self.incoming = incoming;
        true
    }

    /// Wait for the first message; false when every handle is gone and nothing is queued.
    fn receive(&mut self, max: usize) -> bool {
        let mailbox = Arc::clone(&self.mailbox);
        let mut state = mailbox.lock();
        loop {
            if self.take_from(&mut state, max) {
                return true;
            }
            if state.abandoned {
                return false;
            }
            state.wake_at = 1;
            state = mailbox.ready.wait(state).unwrap_or_else(|e| e.into_inner());
            state.wake_at = usize::MAX;
        }
    }

    /// Take whatever is queued, up to `max` jobs; whether anything was taken.
    fn drain(&mut self, max: usize) -> bool {
        let mailbox = Arc::clone(&self.mailbox);
        let mut state = mailbox.lock();
        self.take_from(&mut state, max)
    }

    /// Wait until `wanted` jobs are in, a close arrives, or `deadline` passes.
    fn gather(&mut self, wanted: usize, max: usize, deadline: Instant) -> bool {
        let mailbox = Arc::clone(&self.mailbox);
        let mut state = mailbox.lock();
        let mut took = false;
        loop {
            if self.batch.len() + state.messages.len() >= wanted
                || state.closing
                || state.abandoned
                || !self.closing.is_empty()
            {
                break;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            state.wake_at = wanted - self.batch.len();
            let (next, _) = mailbox
                .ready
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            state.wake_at = usize::MAX;
        }
        took |= self.take_from(&mut state, max);
        took
    }
}

/// Group commit. A batch holds what queued up while the previous one committed; when the
/// previous batch answered many callers, they usually come straight back with their next
/// write, so the batch waits for half as many (no longer than the last commit took, within
/// [`MIN_GATHER`]..[`MAX_GATHER`]) instead of committing the first one alone. Half, not all:
/// waiting for every caller of the last batch makes callers and writer take turns (the writer
/// idles while they build their next writes, they idle while it commits); starting once half
/// are back lets the rest build theirs during the commit. Measured side by side
/// (docs/performance.md): 64 callers creating executions 86,000–88,000 → 115,000–119,000
/// records/s, queue cycles 57,000–58,000 → 87,000–90,000/s, the engine's noop pipeline 1.14×.
fn writer_loop(
    conn: Connection,
    clock: Arc<dyn Clock>,
    mailbox: Arc<Mailbox>,
    max_batch: usize,
    checkpointer: Option<Checkpointer>,
) {
    let stop = StopOnExit(Arc::clone(&mailbox));
    let db = Db::new(&conn, clock.as_ref());
    let mut inbox = Inbox {
        mailbox,
        batch: Vec::with_capacity(max_batch),
        closing: Vec::new(),
        incoming: Vec::new(),
    };
    let mut expected: usize = 1;
    let mut last_commit = Duration::ZERO;
    'serve: loop {
        let waiting = Instant::now();
        if !inbox.receive(max_batch) {
            // Every handle is gone and nothing is queued.
            break;
        }
        if waiting.elapsed() >= IDLE {
            expected = 1;
        }
        loop {
            let mut took = inbox.drain(max_batch);
            let wanted = expected.div_ceil(2).min(max_batch);
            if inbox.batch.len() < wanted {
                let deadline = Instant::now() + last_commit.clamp(MIN_GATHER, MAX_GATHER);
                took |= inbox.gather(wanted, max_batch, deadline);
            }
            if !inbox.batch.is_empty() {
                expected = inbox.batch.len();
                let began = Instant::now();
                commit_batch(&db, &mut inbox.batch);
                last_commit = began.elapsed();
                if let Some(checkpointer) = &checkpointer {
                    checkpointer.nudge();
                    if checkpointer.take_oversized() {
                        // Errors leave the log as it is; the next checkpoint tries again.
                        let _ = passive_checkpoint(&conn);
                    }
                }
            }
            if inbox.closing.is_empty() {
                continue 'serve;
            }
            // Closing: run whatever was queued before the close, then stop.
            if !took {
                break 'serve;
            }
        }
    }
    drop(stop);
    let _ = conn.close();
    if let Some(checkpointer) = checkpointer {
        checkpointer.finish();
    }
    for reply in inbox.closing {
        let _ = reply.send(());
    }
}

/// Fail the jobs `from..to` that had succeeded: their transaction was rolled back.
fn fail_since(batch: &mut [Box<dyn Job>], from: usize, to: usize, error: &StoreError) {
    for job in batch.iter_mut().take(to).skip(from) {
        if job.succeeded() {
            job.fail(copy_error(error));
        }
    }
}

/// Run `batch` in one transaction (each job in its own savepoint), commit, then reply to all.
fn commit_batch(db: &Db<'_>, batch: &mut Vec<Box<dyn Job>>) {
    let total = batch.len();
    // The first job of the current transaction.
    let mut start = 0;
    if let Err(error) = db.exec("BEGIN IMMEDIATE") {
        for job in batch.iter_mut() {
            job.fail(copy_error(&error));
        }
        for job in batch.drain(..) {
            job.reply();
        }
        return;
    }
    let mut index = 0;
    while index < total {
        let job = &mut batch[index];
        let savepoint = job.needs_savepoint();
        if savepoint && let Err(error) = db.exec("SAVEPOINT job") {
            job.fail(error);
            index += 1;
            continue;
        }
        let outcome = job.run(db);
        let undo_failed = match outcome {
            Ok(()) if savepoint => match db.exec("RELEASE job") {
                Ok(()) => None,
                Err(error) => {
                    job.fail(copy_error(&error));
                    Some(error)
                }
            },
            Ok(()) => None,
            Err(error) => {
                if db.conn().is_autocommit() {
                    // SQLite rolled the whole transaction back (a full disk, an I/O error): the
                    // jobs before this one lost their writes too.
                    Some(error)
                } else if savepoint {
                    db.exec("ROLLBACK TO job")
                        .and_then(|()| db.exec("RELEASE job"))
                        .err()
                } else {
                    // A single statement that failed undid itself.
                    None
                }
            }
        };
        if let Some(error) = undo_failed {
            // The job cannot be undone on its own: abandon the transaction so far.
            if !db.conn().is_autocommit() {
                let _ = db.exec("ROLLBACK");
            }
            fail_since(batch, start, index + 1, &error);
            start = index + 1;
            if start < total
                && let Err(error) = db.exec("BEGIN IMMEDIATE")
            {
                fail_since_all(batch, start, &error);
                start = total;
                break;
            }
        }
        index += 1;
    }
    if !db.conn().is_autocommit()
        && let Err(error) = db.exec("COMMIT")
    {
        if !db.conn().is_autocommit() {
            let _ = db.exec("ROLLBACK");
        }
        fail_since(batch, start, total, &error);
    }
    for job in batch.drain(..) {
        job.reply();
    }
}

/// Fail every job from `from` on, whether it ran or not.
fn fail_since_all(batch: &mut [Box<dyn Job>], from: usize, error: &StoreError) {
    for job in batch.iter_mut().skip(from) {
        job.fail(copy_error(error));
    }
}
