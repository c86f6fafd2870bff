//! Several writes that always go together, committed as one: [`Store::write_batch`].
//!
//! The engine's steps each write a handful of records across aggregates (a trigger instance's
//! outcome: its execution, queue item, enforcement, trace and status; a run's end: the
//! execution, the action trigger instance, its trace entry and the queue item's finish). One
//! batch is one transaction: every write lands or none does, and the store pays for one turn
//! (one writer job, one round trip) instead of one per record.
//!
//! [`Store::write_batch`]: super::Store::write_batch

use std::sync::Arc;

use super::StatePart;
use super::queue::{LeaseRef, NewWorkItem};
use super::records::{
    ExecutionRecord, RuleEnforcementRecord, TaskRecord, TraceComponent, TraceComponentKind,
    TraceRecord, TriggerInstanceRecord, TriggerInstanceStatus, WorkflowRecord,
};

/// One write of a batch; each means what the aggregate method of the same name means.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchWrite {
    /// [`TriggerInstanceStore::create`](super::TriggerInstanceStore::create). Shared: the
    /// caller keeps the record for its events without copying it.
    CreateTriggerInstance(Arc<TriggerInstanceRecord>),
    /// [`TriggerInstanceStore::set_status`](super::TriggerInstanceStore::set_status).
    SetTriggerInstanceStatus {
        /// The instance.
        id: String,
        /// Its new status.
        status: TriggerInstanceStatus,
    },
    /// [`ExecutionStore::create`](super::ExecutionStore::create). Shared: the caller keeps
    /// the record (stored at revision 1, without children) without copying it.
    CreateExecution(Arc<ExecutionRecord>),
    /// [`ExecutionStore::update`](super::ExecutionStore::update) (compare-and-set on the
    /// record's revision; stored at the next one, without children). Shared as above.
    UpdateExecution(Arc<ExecutionRecord>),
    /// [`RuleEnforcementStore::create`](super::RuleEnforcementStore::create).
    CreateRuleEnforcement(RuleEnforcementRecord),
    /// [`TraceStore::create`](super::TraceStore::create).
    CreateTrace(TraceRecord),
    /// [`TraceStore::add_component`](super::TraceStore::add_component).
    AddTraceComponent {
        /// The trace.
        trace_id: String,
        /// Which list.
        kind: TraceComponentKind,
        /// The component.
        component: TraceComponent,
    },
    /// [`WorkQueue::enqueue`](super::WorkQueue::enqueue) (waiters are woken after the commit).
    Enqueue(NewWorkItem),
    /// [`WorkQueue::finish`](super::WorkQueue::finish).
    FinishWork(LeaseRef),
    /// [`WorkflowStore::save`](super::WorkflowStore::save): the record (compare-and-set on
    /// its revision), its changed state parts and task records. With the child executions a
    /// save records, in the same batch, a workflow's step is one commit.
    SaveWorkflow {
        /// The record at the revision it was read.
        record: WorkflowRecord,
        /// Parts to replace (`doc`) or remove (`None`). Shared: the caller keeps them to save
        /// another way should the batch fail.
        parts: Arc<[StatePart]>,
        /// Task records to create or replace. Shared as the parts are.
        tasks: Arc<[TaskRecord]>,
    },
}

/// What one write of a committed batch produced, in the order of the writes.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchWritten {
    /// Nothing to report (the write landed).
    Done,
    /// An execution created or updated: its stored revision and its children (creation
    /// order; always empty for a new one).
    Execution {
        /// The stored revision.
        revision: u64,
        /// The children, as [`ExecutionStore::get`](super::ExecutionStore::get) fills them.
        children: Vec<String>,
    },
    /// A work item enqueued: its id.
    WorkItem(i64),
    /// A workflow saved: the record as stored (its new revision).
    Workflow(WorkflowRecord),
}
