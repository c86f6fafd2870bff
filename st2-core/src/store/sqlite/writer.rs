//! The writer thread: it owns the only read-write connection and commits in groups.
//!
//! Callers send jobs (closures over the connection) down a channel. The thread takes everything
//! queued (up to `max_batch`) into one transaction, runs each job inside its own savepoint (a
//! failing job is rolled back to it and gets its error, the others proceed), commits, and only
//! then replies: a write is acknowledged once its batch has committed. When the commit fails,
//! every job of the batch gets the error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

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

/// The handle callers hold: a channel to the writer thread.
pub(super) struct Writer {
    sender: mpsc::Sender<Message>,
    closed: AtomicBool,
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
    /// Start the writer thread over `conn` (already configured and migrated).
    pub(super) fn spawn(
        conn: Connection,
        clock: Arc<dyn Clock>,
        max_batch: usize,
    ) -> StoreResult<Self> {
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("st2-sqlite-writer".into())
            .spawn(move || writer_loop(conn, clock, receiver, max_batch.max(1)))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            sender,
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
        self.sender.send(Message::Job(job)).map_err(|_| gone())?;
        // A dropped reply means the thread stopped (or died) before answering.
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Let queued jobs finish, close the connection and stop the thread. Later calls fail.
    pub(super) async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (reply, done) = oneshot::channel();
        if self.sender.send(Message::Close(reply)).is_ok() {
            let _ = done.await;
        }
    }
}

struct Inbox {
    batch: Vec<Box<dyn Job>>,
    closing: Vec<oneshot::Sender<()>>,
}

impl Inbox {
    fn take(&mut self, message: Message) {
        match message {
            Message::Job(job) => self.batch.push(job),
            Message::Close(reply) => self.closing.push(reply),
        }
    }
}

fn writer_loop(
    conn: Connection,
    clock: Arc<dyn Clock>,
    receiver: mpsc::Receiver<Message>,
    max_batch: usize,
) {
    let db = Db::new(&conn, clock.as_ref());
    let mut inbox = Inbox {
        batch: Vec::with_capacity(max_batch),
        closing: Vec::new(),
    };
    'serve: loop {
        match receiver.recv() {
            Ok(message) => inbox.take(message),
            // Every handle is gone and nothing is queued.
            Err(_) => break,
        }
        loop {
            let mut took = false;
            while inbox.batch.len() < max_batch {
                match receiver.try_recv() {
                    Ok(message) => {
                        inbox.take(message);
                        took = true;
                    }
                    Err(_) => break,
                }
            }
            if !inbox.batch.is_empty() {
                commit_batch(&db, &mut inbox.batch);
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
    drop(receiver);
    let _ = conn.close();
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
