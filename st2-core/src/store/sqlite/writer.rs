//! The writer thread: it owns the only read-write connection and commits in groups.
//!
//! Callers send jobs (closures over the connection) down a channel. The thread takes everything
//! queued (up to `max_batch`) into one transaction, runs each job inside its own savepoint (a
//! failing job is rolled back to it and gets its error, the others proceed; neighbouring jobs
//! that can run again share one until one of them fails), commits, and only
//! then replies: a write is acknowledged once its batch has committed. When the commit fails,
//! every job of the batch gets the error.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, PrepFlags, Statement};
use tokio::sync::oneshot;

use super::checkpoint::{Checkpointer, passive_checkpoint};
use super::connection::{copy_error, sql_error};
use super::snapshots::Ledger;
use crate::clock::Clock;
use crate::store::{StoreError, StoreResult};

/// What a job sees: the connection (inside the batch transaction, for the writer) and the
/// store's clock.
pub(super) struct Db<'c, 'k> {
    conn: &'c Connection,
    clock: &'c dyn Clock,
    ledger: Option<&'c Ledger>,
    kept: Option<&'k Kept<'c>>,
}

/// The statements the writer keeps prepared for its whole life, by the address and length of
/// their `'static` SQL text: finding one compares two words instead of hashing the text and
/// moving the statement out of an LRU list and back (rusqlite's statement cache, about 1,200
/// instructions per use; the writer runs some twenty statements per execution it stores).
#[derive(Default)]
pub(super) struct Kept<'c> {
    statements: RefCell<Vec<KeptStatement<'c>>>,
}

/// One kept statement: its SQL text's address and length, and the statement.
struct KeptStatement<'c> {
    address: usize,
    len: usize,
    statement: Rc<RefCell<Statement<'c>>>,
}

impl<'c> Kept<'c> {
    /// The statement kept for `sql`, prepared on first use.
    fn get(&self, conn: &'c Connection, sql: &'static str) -> rusqlite::Result<KeptHandle<'c>> {
        // A `'static` text's address and length name it: no other text of that length lives
        // there for the life of the process.
        let (address, len) = (sql.as_ptr().addr(), sql.len());
        let mut statements = self.statements.borrow_mut();
        if let Some(kept) = statements
            .iter()
            .find(|k| k.address == address && k.len == len)
        {
            return Ok(Rc::clone(&kept.statement));
        }
        // Persistent, as rusqlite's cache prepares them: SQLite keeps such a statement out of
        // the connection's small-allocation pool (lookaside), which statements held for good
        // would otherwise fill, sending every other small allocation to `malloc`.
        let statement = Rc::new(RefCell::new(
            conn.prepare_with_flags(sql, PrepFlags::SQLITE_PREPARE_PERSISTENT)?,
        ));
        statements.push(KeptStatement {
            address,
            len,
            statement: Rc::clone(&statement),
        });
        Ok(statement)
    }
}

type KeptHandle<'c> = Rc<RefCell<Statement<'c>>>;

impl<'c> Db<'c, '_> {
    /// A view of `conn` with `clock`.
    pub(super) fn new(conn: &'c Connection, clock: &'c dyn Clock) -> Self {
        Self {
            conn,
            clock,
            ledger: None,
            kept: None,
        }
    }

    /// Run `work` with the prepared statement for `sql`: the writer's kept one, or (on a read
    /// connection, or while the kept one is in use further up the stack) one from the
    /// connection's statement cache.
    pub(super) fn with_statement<T>(
        &self,
        sql: &'static str,
        work: impl FnOnce(&mut Statement<'c>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        if let Some(kept) = self.kept {
            let statement = kept.get(self.conn, sql)?;
            if let Ok(mut statement) = statement.try_borrow_mut() {
                let done = work(&mut statement);
                // Let go of the bound values, as rusqlite's cache does: SQLite's copies of the
                // bound text (documents of a kilobyte and more) would otherwise stay with the
                // statement until its next use.
                statement.clear_bindings();
                return done;
            }
        }
        let mut statement = self.conn.prepare_cached(sql)?;
        work(&mut statement)
    }

    /// The connection.
    pub(super) fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// The writer's account of the snapshots stored (`None` for a reader).
    pub(super) fn ledger(&self) -> Option<&'c Ledger> {
        self.ledger
    }

    /// The store clock's now, in microseconds.
    pub(super) fn now(&self) -> i64 {
        crate::store::to_micros(self.clock.now())
    }

    /// Run a statement that returns no rows (a kept one on the writer).
    pub(super) fn exec(&self, sql: &'static str) -> StoreResult<()> {
        self.with_statement(sql, |s| s.execute([]))
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
    fn run(&mut self, db: &Db<'_, '_>) -> Result<(), StoreError>;
    /// Whether it ran and succeeded (so far).
    fn succeeded(&self) -> bool;
    /// Replace its outcome with a failure (its batch did not commit).
    fn fail(&mut self, error: StoreError);
    /// Send the outcome to the caller.
    fn reply(self: Box<Self>);
    /// Whether it can run again after [`Job::reset`] (its work only writes through the
    /// connection), so it may share a savepoint with its neighbours.
    fn repeatable(&self) -> bool {
        false
    }
    /// Forget the outcome of a run whose writes were undone, to run again.
    fn reset(&mut self) {}
}

/// A job's outcome so far (`None`: it has not run, or its run was undone to run again).
struct Outcome<T>(Option<StoreResult<T>>);

impl<T> Outcome<T> {
    /// Keep `outcome`; returns a copy of its error, if any.
    fn set(&mut self, outcome: StoreResult<T>) -> Result<(), StoreError> {
        let copy = match &outcome {
            Ok(_) => Ok(()),
            Err(e) => Err(copy_error(e)),
        };
        self.0 = Some(outcome);
        copy
    }

    fn succeeded(&self) -> bool {
        matches!(self.0, Some(Ok(_)))
    }

    fn fail(&mut self, error: StoreError) {
        self.0 = Some(Err(error));
    }

    /// What the caller is told.
    fn into_reply(self) -> StoreResult<T> {
        self.0
            .unwrap_or_else(|| Err(StoreError::Backend("a write job never ran".into())))
    }
}

struct Pending<T, F> {
    work: Option<F>,
    savepoint: bool,
    outcome: Outcome<T>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Db<'_, '_>) -> StoreResult<T> + Send + 'static,
{
    fn needs_savepoint(&self) -> bool {
        self.savepoint
    }

    fn run(&mut self, db: &Db<'_, '_>) -> Result<(), StoreError> {
        let Some(work) = self.work.take() else {
            return Err(StoreError::Backend("a write job ran twice".into()));
        };
        self.outcome.set(work(db))
    }

    fn succeeded(&self) -> bool {
        self.outcome.succeeded()
    }

    fn fail(&mut self, error: StoreError) {
        self.outcome.fail(error);
    }

    fn reply(self: Box<Self>) {
        // The caller may have gone away (its future dropped): nothing to tell then.
        let _ = self.reply.send(self.outcome.into_reply());
    }
}

/// A job whose work can run again (see [`Job::repeatable`]).
struct Repeatable<T, F> {
    work: F,
    outcome: Outcome<T>,
    /// The outcome, and the work itself: what it holds is freed by the caller, not on the
    /// writer thread.
    reply: oneshot::Sender<(StoreResult<T>, F)>,
}

impl<T, F> Job for Repeatable<T, F>
where
    T: Send + 'static,
    F: FnMut(&Db<'_, '_>) -> StoreResult<T> + Send + 'static,
{
    fn needs_savepoint(&self) -> bool {
        true
    }

    fn run(&mut self, db: &Db<'_, '_>) -> Result<(), StoreError> {
        self.outcome.set((self.work)(db))
    }

    fn succeeded(&self) -> bool {
        self.outcome.succeeded()
    }

    fn fail(&mut self, error: StoreError) {
        self.outcome.fail(error);
    }

    fn reply(self: Box<Self>) {
        let _ = self.reply.send((self.outcome.into_reply(), self.work));
    }

    fn repeatable(&self) -> bool {
        true
    }

    fn reset(&mut self) {
        self.outcome.0 = None;
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
        F: FnOnce(&Db<'_, '_>) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.submit(Box::new(Pending {
            work: Some(work),
            savepoint,
            outcome: Outcome(None),
            reply,
        }))?;
        // A dropped reply means the thread stopped (or died) before answering.
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Run `work`, which may run several statements but writes nothing outside the
    /// connection (so it can run again if a job beside it fails), in the writer; resolves
    /// once its batch has committed.
    pub(super) async fn run_repeatable<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Db<'_, '_>) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.submit(Box::new(Repeatable {
            work,
            outcome: Outcome(None),
            reply,
        }))?;
        answer
            .await
            .map_or_else(|_| Err(gone()), |(outcome, _work)| outcome)
    }

    /// Queue `job` for the thread, unless the writer is closed.
    fn submit(&self, job: Box<dyn Job>) -> StoreResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(gone());
        }
        self.mailbox.send(Message::Job(job)).map_err(|_| gone())
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
    let ledger = Ledger::default();
    let kept = Kept::default();
    let db = Db {
        ledger: Some(&ledger),
        kept: Some(&kept),
        ..Db::new(&conn, clock.as_ref())
    };
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
                ledger.settle(&conn);
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
    // The kept statements borrow the connection: finalised before it closes.
    drop(kept);
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

/// Run `batch` in one transaction, commit, then reply to all. Each job runs in its own
/// savepoint, except that consecutive jobs that can run again share one: only if one of them
/// fails are the others rolled back and run again, each in its own. (A savepoint copies every
/// page its job is the first to change, so jobs that all touch the same pages copy them once
/// per group instead of once per job.) The jobs that can run again go first (the batch's
/// callers all wait for it, so their order is theirs to give), and a group that opens the
/// transaction needs no savepoint at all: the transaction itself is rolled back and begun
/// again when one of them fails.
fn commit_batch(db: &Db<'_, '_>, batch: &mut Vec<Box<dyn Job>>) {
    // Stable: each kind keeps its order.
    batch.sort_by_key(|job| !job.repeatable());
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
    // Jobs before this one run alone (a group failed over them).
    let mut alone_until = 0;
    // A job of a failed group that failed itself (its writes undone, its error kept).
    let mut failed_in_group = None;
    while index < total {
        if failed_in_group == Some(index) {
            failed_in_group = None;
            index += 1;
            continue;
        }
        let mut ran = None;
        if index >= alone_until && batch[index].repeatable() {
            let end = (index..total)
                .find(|&i| !batch[i].repeatable())
                .unwrap_or(total);
            if index == start {
                // Nothing written yet in this transaction.
                match run_opening_group(db, &mut batch[index..end]) {
                    Opening::Ran(r) => ran = Some(r),
                    Opening::Lost(error) => {
                        // Rolled back, and no transaction could begin again.
                        fail_since_all(batch, start, &error);
                        start = total;
                        break;
                    }
                }
            } else if end - index >= 2 {
                ran = run_group(db, &mut batch[index..end]);
                if ran.is_none() {
                    alone_until = end;
                }
            }
        }
        let ran = ran.unwrap_or_else(|| match run_alone(db, &mut *batch[index]) {
            None => Ran::Done(1),
            Some(error) => Ran::Abandoned { at: 0, error },
        });
        match ran {
            Ran::Done(count) => index += count,
            Ran::Failed { at } => {
                alone_until = index + at;
                failed_in_group = Some(index + at);
            }
            Ran::Abandoned { at, error } => {
                // The transaction is lost: fail what it held, start another for the rest.
                let failed = index + at;
                if !db.conn().is_autocommit() {
                    let _ = db.exec("ROLLBACK");
                }
                fail_since(batch, start, failed + 1, &error);
                start = failed + 1;
                index = failed + 1;
                if start < total
                    && let Err(error) = db.exec("BEGIN IMMEDIATE")
                {
                    fail_since_all(batch, start, &error);
                    start = total;
                    break;
                }
            }
        }
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

/// How a job, or a group of jobs, ran.
enum Ran {
    /// This many jobs ran (each succeeded or failed with its writes undone).
    Done(usize),
    /// The group's job `at` failed; the group's writes were undone, those of the jobs before
    /// `at` included, and they are ready to run again.
    Failed { at: usize },
    /// The transaction could not go on after job `at` (SQLite rolled it back, or undoing the
    /// failed job failed): everything it held is lost.
    Abandoned { at: usize, error: StoreError },
}

/// Run `job` in its own savepoint when it needs one; returns the error that ends the
/// transaction, if any (a failed job whose writes were undone does not).
fn run_alone(db: &Db<'_, '_>, job: &mut dyn Job) -> Option<StoreError> {
    let savepoint = job.needs_savepoint();
    if savepoint && let Err(error) = db.exec("SAVEPOINT job") {
        job.fail(error);
        return None;
    }
    match job.run(db) {
        Ok(()) if savepoint => match db.exec("RELEASE job") {
            Ok(()) => None,
            Err(error) => {
                job.fail(copy_error(&error));
                Some(error)
            }
        },
        Ok(()) => None,
        // SQLite rolled the whole transaction back (a full disk, an I/O error): the jobs
        // before this one lost their writes too.
        Err(error) if db.conn().is_autocommit() => Some(error),
        Err(_) if savepoint => db
            .exec("ROLLBACK TO job")
            .and_then(|()| db.exec("RELEASE job"))
            .err(),
        // A single statement that failed undid itself.
        Err(_) => None,
    }
}

/// Run repeatable `jobs` in one savepoint; `None` if it cannot be opened (run them alone).
fn run_group(db: &Db<'_, '_>, jobs: &mut [Box<dyn Job>]) -> Option<Ran> {
    db.exec("SAVEPOINT jobs").ok()?;
    for at in 0..jobs.len() {
        let Err(error) = jobs[at].run(db) else {
            continue;
        };
        if db.conn().is_autocommit() {
            return Some(Ran::Abandoned { at, error });
        }
        if let Err(error) = db
            .exec("ROLLBACK TO jobs")
            .and_then(|()| db.exec("RELEASE jobs"))
        {
            return Some(Ran::Abandoned { at, error });
        }
        for job in &mut jobs[..at] {
            job.reset();
        }
        return Some(Ran::Failed { at });
    }
    Some(match db.exec("RELEASE jobs") {
        Ok(()) => Ran::Done(jobs.len()),
        Err(error) => {
            let at = jobs.len() - 1;
            for job in jobs.iter_mut() {
                job.fail(copy_error(&error));
            }
            Ran::Abandoned { at, error }
        }
    })
}

/// How [`run_opening_group`] went.
enum Opening {
    /// As [`run_group`]: done, or one failed and the transaction is open again, empty.
    Ran(Ran),
    /// One failed, the transaction was rolled back and a new one could not begin.
    Lost(StoreError),
}

/// Run repeatable `jobs` that open the transaction, without a savepoint: when one fails, the
/// transaction (holding only their writes) is rolled back and begun again.
fn run_opening_group(db: &Db<'_, '_>, jobs: &mut [Box<dyn Job>]) -> Opening {
    for at in 0..jobs.len() {
        let Err(error) = jobs[at].run(db) else {
            continue;
        };
        if db.conn().is_autocommit() {
            // SQLite rolled it back itself (a full disk, an I/O error).
            return Opening::Ran(Ran::Abandoned { at, error });
        }
        if let Err(error) = db.exec("ROLLBACK") {
            return Opening::Ran(Ran::Abandoned { at, error });
        }
        for job in &mut jobs[..at] {
            job.reset();
        }
        return match db.exec("BEGIN IMMEDIATE") {
            Ok(()) => Opening::Ran(Ran::Failed { at }),
            Err(error) => Opening::Lost(error),
        };
    }
    Opening::Ran(Ran::Done(jobs.len()))
}

/// Fail every job from `from` on, whether it ran or not.
fn fail_since_all(batch: &mut [Box<dyn Job>], from: usize, error: &StoreError) {
    for job in batch.iter_mut().skip(from) {
        job.fail(copy_error(error));
    }
}
