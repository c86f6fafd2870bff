//! StackStorm's execution statuses and the transitions between them (spec §5.4), enforced on
//! every status change and recorded in the execution's `log`.

use serde_json::Value;

use crate::store::{ExecutionRecord, ExecutionStatus, StatusChange, Timestamp};

use ExecutionStatus::*;

/// StackStorm's CANCELABLE group.
pub fn is_cancelable(status: ExecutionStatus) -> bool {
    matches!(
        status,
        Requested | Scheduled | Delayed | Running | Pausing | Paused | Resuming | Pending
    )
}

/// StackStorm's FAILED group: failed, timeout, abandoned.
pub fn is_failure(status: ExecutionStatus) -> bool {
    matches!(status, Failed | Timeout | Abandoned)
}

/// Whether an execution may go from `from` to `to`.
///
/// Completed executions never change again (StackStorm ignores later writes), and `canceled`
/// is terminal even for a runner that finishes late.
pub fn allowed(from: ExecutionStatus, to: ExecutionStatus) -> bool {
    if from.is_completed() {
        return false;
    }
    match (from, to) {
        (Requested, Delayed | Scheduled | Canceling | Canceled | Failed) => true,
        (Delayed, Delayed | Scheduled | Canceling | Canceled | Failed) => true,
        (Scheduled, Running | Canceling | Canceled | Failed | Abandoned) => true,
        (Running, Succeeded | Failed | Timeout | Abandoned | Canceling | Canceled) => true,
        (Running, Pending | Pausing | Paused) => true,
        (Pending, Succeeded | Failed | Timeout | Canceling | Canceled | Abandoned | Running) => {
            true
        }
        // A runner that finishes its last step while a pause was being requested.
        (
            Pausing,
            Paused | Canceling | Canceled | Running | Succeeded | Failed | Timeout | Abandoned,
        ) => true,
        (Paused, Resuming | Canceling | Canceled | Running | Abandoned) => true,
        (Resuming, Running | Canceling | Canceled | Failed | Abandoned) => true,
        (Canceling, Canceled | Abandoned) => true,
        // A runner reporting its final result while a cancel was being requested.
        (Canceling, Succeeded | Failed | Timeout) => true,
        _ => false,
    }
}

/// A refused transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("execution {id}: cannot go from {from} to {to}")]
pub struct TransitionError {
    /// The execution.
    pub id: String,
    /// Its status.
    pub from: ExecutionStatus,
    /// The status asked for.
    pub to: ExecutionStatus,
}

/// Move `record` to `to` at `now`: check the transition, append to the log and set
/// `end_timestamp` for completed statuses.
///
/// # Errors
/// [`TransitionError`] when StackStorm's lifecycle does not allow it.
pub fn transition(
    record: &mut ExecutionRecord,
    to: ExecutionStatus,
    now: Timestamp,
) -> Result<(), TransitionError> {
    if !allowed(record.status, to) {
        return Err(TransitionError {
            id: record.id.clone(),
            from: record.status,
            to,
        });
    }
    record.status = to;
    record.log.push(StatusChange {
        timestamp: now,
        status: to,
    });
    if to.is_completed() {
        record.end_timestamp = Some(now);
    }
    Ok(())
}

/// Finish `record` with `status` and `result` (a completed status), if the lifecycle allows.
///
/// # Errors
/// As [`transition`].
pub fn complete(
    record: &mut ExecutionRecord,
    status: ExecutionStatus,
    result: Value,
    now: Timestamp,
) -> Result<(), TransitionError> {
    transition(record, status, now)?;
    record.result = result;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_is_terminal() {
        for from in ExecutionStatus::ALL.iter().filter(|s| s.is_completed()) {
            for to in ExecutionStatus::ALL {
                assert!(!allowed(*from, *to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn the_normal_path_is_allowed() {
        assert!(allowed(Requested, Scheduled));
        assert!(allowed(Scheduled, Running));
        assert!(allowed(Running, Succeeded));
        assert!(allowed(Requested, Delayed));
        assert!(allowed(Delayed, Scheduled));
        assert!(allowed(Running, Canceling));
        assert!(allowed(Canceling, Canceled));
        assert!(!allowed(Requested, Running));
        assert!(!allowed(Scheduled, Succeeded));
    }
}
