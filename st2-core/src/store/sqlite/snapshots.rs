//! Executions' snapshots kept once per content (the `snapshots` table).
//!
//! An execution's document holds what it ran (action, runner type, rule, trigger, trigger
//! type) as the API shows them: about half of a rule-started execution's document, the same
//! for every execution of one action and rule, and written again at every status change. The
//! documents hold `{"$snapshot": KEY}` instead (see [`Snapshot::key`]); the text is stored once
//! under its key, by the same write that first refers to it, and read back into one shared
//! [`Snapshot`] per key. Documents written before this (whole snapshots) read as they did.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension};

use super::connection::sql_error;
use super::from_doc;
use super::writer::Db;
use crate::store::{ExecutionRecord, Snapshot, StoreError, StoreResult};

/// How many snapshots a store keeps in memory; past this it starts over (the table has them).
const CACHED: usize = 4_096;

/// The snapshots of `record` that its document refers to by key.
pub(super) fn referenced(record: &ExecutionRecord) -> Vec<Snapshot> {
    record
        .snapshots()
        .filter(|(_, s)| s.key().is_some())
        .map(|(_, s)| s.clone())
        .collect()
}

/// Store each of `snapshots` that the table may not hold yet, in the caller's transaction.
/// Keeping one is right whether or not the row that refers to it is then written (a snapshot
/// row is only ever its key's content), so a job that writes one row needs no savepoint for it.
pub(super) fn store(db: &Db<'_, '_>, snapshots: &[Snapshot]) -> StoreResult<()> {
    for snapshot in snapshots {
        let (Some(key), Some(text)) = (snapshot.key(), snapshot.text()) else {
            continue;
        };
        if db.ledger().is_some_and(|l| l.holds(key)) {
            continue;
        }
        db.with_statement(
            "INSERT OR IGNORE INTO snapshots (key, doc) VALUES (?1, ?2)",
            |s| s.execute([key, text.get()]),
        )
        .map_err(sql_error)?;
        if let Some(ledger) = db.ledger() {
            ledger.written(key);
        }
    }
    Ok(())
}

/// The writer's account of which keys the table holds, so that a snapshot is written once
/// rather than offered again with every execution. Only the writer thread uses it.
#[derive(Default)]
pub(super) struct Ledger {
    /// Keys found committed in the table.
    stored: RefCell<HashSet<Box<str>>>,
    /// Keys written since the last [`Ledger::settle`]: their transaction, or the savepoint of
    /// the job that wrote them, may still be undone.
    pending: RefCell<Vec<Box<str>>>,
}

impl Ledger {
    fn holds(&self, key: &str) -> bool {
        self.stored.borrow().contains(key)
    }

    fn written(&self, key: &str) {
        self.pending.borrow_mut().push(key.into());
    }

    /// After a batch ended (committed or not, outside any transaction): count as stored the
    /// pending keys the table holds now. Rare: only a snapshot's first write does anything.
    pub(super) fn settle(&self, conn: &Connection) {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        for key in pending {
            let held = conn
                .prepare_cached("SELECT 1 FROM snapshots WHERE key = ?1")
                .and_then(|mut s| s.exists([&*key]))
                .unwrap_or(false);
            if held {
                let mut stored = self.stored.borrow_mut();
                if stored.len() >= CACHED {
                    stored.clear();
                }
                stored.insert(key);
            }
        }
    }
}

/// The snapshots read so far, shared by every record read that refers to them.
#[derive(Default)]
pub(super) struct Snapshots {
    known: Mutex<HashMap<Box<str>, Snapshot>>,
}

impl Snapshots {
    /// Put the snapshots `record`'s document refers to in their places.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when one is not in the table or cannot be read.
    pub(super) fn resolve(&self, db: &Db<'_, '_>, record: &mut ExecutionRecord) -> StoreResult<()> {
        let id = record.id.clone();
        for (field, slot) in record.snapshots_mut() {
            if let Some(key) = slot.reference() {
                let found = self.get(db, key).map_err(|e| match e {
                    StoreError::Corrupt(why) => {
                        StoreError::Corrupt(format!("execution {id}, field `{field}`: {why}"))
                    }
                    other => other,
                })?;
                *slot = found;
            }
        }
        Ok(())
    }

    fn get(&self, db: &Db<'_, '_>, key: &str) -> StoreResult<Snapshot> {
        if let Some(found) = self.lock().get(key) {
            return Ok(found.clone());
        }
        let doc: Option<String> = db
            .with_statement("SELECT doc FROM snapshots WHERE key = ?1", |s| {
                s.query_row([key], |r| r.get(0)).optional()
            })
            .map_err(sql_error)?;
        let doc = doc.ok_or_else(|| {
            StoreError::Corrupt(format!("it refers to snapshot {key}, which is not stored"))
        })?;
        let snapshot: Snapshot = from_doc("snapshot", &doc)?;
        let mut known = self.lock();
        if known.len() >= CACHED {
            known.clear();
        }
        known.insert(key.into(), snapshot.clone());
        Ok(snapshot)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Snapshot>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}
