//! Workflow and task statuses and the state machines that move between them, as Orquesta
//! defines them (`orquesta.statuses`, `orquesta.machines`).
//!
//! Events are the status that happened plus context: an action event on a with-items task
//! knows whether other items are active and how the rest ended ([`ItemsContext`]); a task
//! event seen by the workflow knows whether other tasks are active and whether anything is
//! left to do ([`WorkflowContext`]). A (status, event) pair with no rule leaves the status
//! unchanged.

use serde::{Deserialize, Serialize};

/// An execution status (Orquesta's names; `timeout` is Orquesta's `EXPIRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Requested, not yet scheduled.
    Requested,
    /// Scheduled.
    Scheduled,
    /// Delayed.
    Delayed,
    /// Running.
    Running,
    /// Waiting (e.g. an inquiry).
    Pending,
    /// Pausing.
    Pausing,
    /// Paused.
    Paused,
    /// Resuming.
    Resuming,
    /// Waiting for a retry.
    Retrying,
    /// Succeeded.
    Succeeded,
    /// Failed.
    Failed,
    /// Timed out.
    Timeout,
    /// Abandoned.
    Abandoned,
    /// Canceling.
    Canceling,
    /// Canceled.
    Canceled,
}

impl Status {
    /// Orquesta's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::Scheduled => "scheduled",
            Status::Delayed => "delayed",
            Status::Running => "running",
            Status::Pending => "pending",
            Status::Pausing => "pausing",
            Status::Paused => "paused",
            Status::Resuming => "resuming",
            Status::Retrying => "retrying",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Timeout => "timeout",
            Status::Abandoned => "abandoned",
            Status::Canceling => "canceling",
            Status::Canceled => "canceled",
        }
    }

    /// Parse Orquesta's name.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "requested" => Status::Requested,
            "scheduled" => Status::Scheduled,
            "delayed" => Status::Delayed,
            "running" => Status::Running,
            "pending" => Status::Pending,
            "pausing" => Status::Pausing,
            "paused" => Status::Paused,
            "resuming" => Status::Resuming,
            "retrying" => Status::Retrying,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "timeout" | "expired" => Status::Timeout,
            "abandoned" => Status::Abandoned,
            "canceling" => Status::Canceling,
            "canceled" => Status::Canceled,
            _ => return None,
        })
    }

    /// requested, scheduled, delayed, running, pending.
    pub fn is_starting(self) -> bool {
        matches!(
            self,
            Status::Requested
                | Status::Scheduled
                | Status::Delayed
                | Status::Running
                | Status::Pending
        )
    }

    /// Statuses in which `get_next_tasks` hands out work.
    pub fn is_running(self) -> bool {
        matches!(
            self,
            Status::Requested
                | Status::Scheduled
                | Status::Delayed
                | Status::Running
                | Status::Resuming
                | Status::Retrying
        )
    }

    /// requested, scheduled, delayed, running, resuming, pausing, canceling.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Status::Requested
                | Status::Scheduled
                | Status::Delayed
                | Status::Running
                | Status::Resuming
                | Status::Pausing
                | Status::Canceling
        )
    }

    /// failed, timeout, abandoned.
    pub fn is_abended(self) -> bool {
        matches!(self, Status::Failed | Status::Timeout | Status::Abandoned)
    }

    /// succeeded, failed, timeout, abandoned, canceled.
    pub fn is_completed(self) -> bool {
        self.is_abended() || matches!(self, Status::Succeeded | Status::Canceled)
    }
}

/// How the other items of a with-items task stand when one item reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemsContext {
    /// Not a with-items event, or a status that takes no context.
    None,
    /// Another item is still active.
    Active,
    /// No other item is active; the strongest fact about the others.
    Dormant(ItemsRest),
}

/// The rest of the items, for a dormant with-items task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemsRest {
    /// Some item is pending or paused.
    Paused,
    /// Some item is canceled.
    Canceled,
    /// Some item abended.
    Failed,
    /// Some item has not completed.
    Incomplete,
    /// Every other item completed.
    Completed,
}

/// Engine commands sent to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `continue` / `noop`: the pseudo-task succeeds.
    Succeed,
    /// `fail`: the pseudo-task fails.
    Fail,
    /// Retry the task.
    Retry,
}

/// The task status after action status `event` (with `items` context), or `None` when the
/// pair has no rule.
pub fn task_on_action(
    current: Option<Status>,
    event: Status,
    items: ItemsContext,
) -> Option<Status> {
    use ItemsContext as I;
    use ItemsRest as R;
    use Status as S;
    let Some(current) = current else {
        return match (event, items) {
            (S::Requested | S::Scheduled | S::Delayed | S::Running | S::Pending, I::None) => {
                Some(event)
            }
            _ => None,
        };
    };
    match current {
        S::Requested | S::Scheduled | S::Delayed => {
            if items != I::None {
                return None;
            }
            match event {
                S::Requested => None,
                S::Scheduled if current == S::Requested || current == S::Delayed => Some(event),
                S::Delayed if current != S::Delayed => Some(event),
                S::Running
                | S::Pending
                | S::Pausing
                | S::Paused
                | S::Canceling
                | S::Canceled
                | S::Failed
                | S::Timeout
                | S::Abandoned => Some(event),
                _ => None,
            }
        }
        S::Running => match (event, items) {
            (S::Running | S::Pausing | S::Canceling, I::None) => Some(event),
            (S::Pending | S::Paused | S::Canceled | S::Succeeded | S::Failed, I::None) => {
                Some(event)
            }
            (S::Timeout | S::Abandoned, I::None) => Some(S::Failed),
            (S::Pending | S::Paused, I::Active) => Some(S::Pausing),
            (S::Pending | S::Paused, I::Dormant(r)) => Some(match r {
                R::Canceled => S::Canceled,
                R::Failed => S::Failed,
                _ => S::Paused,
            }),
            (S::Canceled, I::Active) => Some(S::Canceling),
            (S::Canceled, I::Dormant(_)) => Some(S::Canceled),
            (S::Failed | S::Timeout | S::Abandoned, I::Dormant(r)) => Some(match r {
                R::Canceled => S::Canceled,
                _ => S::Failed,
            }),
            (S::Succeeded, I::Active) => Some(S::Running),
            (S::Succeeded, I::Dormant(r)) => Some(match r {
                R::Canceled => S::Canceled,
                R::Paused => S::Paused,
                R::Failed => S::Failed,
                R::Incomplete => S::Running,
                R::Completed => S::Succeeded,
            }),
            _ => None,
        },
        S::Pending => match (event, items) {
            (S::Canceled | S::Succeeded | S::Failed, I::None) => Some(event),
            (S::Timeout | S::Abandoned, I::None) => Some(S::Failed),
            _ => None,
        },
        S::Pausing => match (event, items) {
            (S::Paused | S::Resuming | S::Canceling | S::Canceled | S::Failed, I::None) => {
                Some(event)
            }
            (S::Timeout | S::Abandoned, I::None) => Some(S::Failed),
            (S::Pending | S::Paused, I::Dormant(r)) => Some(match r {
                R::Canceled => S::Canceled,
                R::Failed => S::Failed,
                _ => S::Paused,
            }),
            (S::Canceled, I::Dormant(_)) => Some(S::Canceled),
            (S::Failed | S::Timeout | S::Abandoned, I::Dormant(r)) => Some(match r {
                R::Canceled => S::Canceled,
                _ => S::Failed,
            }),
            (S::Succeeded, I::Dormant(r)) => Some(match r {
                R::Canceled => S::Canceled,
                R::Failed => S::Failed,
                R::Completed => S::Succeeded,
                _ => S::Paused,
            }),
            _ => None,
        },
        S::Paused => match (event, items) {
            (S::Running | S::Resuming | S::Canceling | S::Canceled, I::None) => Some(event),
            _ => None,
        },
        S::Resuming | S::Retrying => match (event, items) {
            (S::Running | S::Canceling | S::Canceled, I::None) => Some(event),
            _ => None,
        },
        S::Canceling => match (event, items) {
            (S::Paused | S::Canceled, I::None) => Some(S::Canceled),
            (S::Failed | S::Timeout | S::Abandoned, I::None) => Some(S::Failed),
            (S::Succeeded, I::Dormant(R::Completed)) => Some(S::Succeeded),
            (
                S::Pending
                | S::Paused
                | S::Canceled
                | S::Failed
                | S::Timeout
                | S::Abandoned
                | S::Succeeded,
                I::Dormant(_),
            ) => Some(S::Canceled),
            _ => None,
        },
        S::Succeeded | S::Failed | S::Timeout | S::Abandoned | S::Canceled => None,
    }
}

/// The task status after engine command `command`, or `None` when the pair has no rule.
pub fn task_on_command(current: Option<Status>, command: Command) -> Option<Status> {
    match (current, command) {
        (None, Command::Succeed) => Some(Status::Succeeded),
        (None, Command::Fail) => Some(Status::Failed),
        (Some(Status::Succeeded | Status::Failed), Command::Retry) => Some(Status::Retrying),
        _ => None,
    }
}

/// What the workflow knows when a task reports a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowContext {
    /// Some task is in an active status.
    pub active: bool,
    /// Some task is canceling or canceled.
    pub canceled: bool,
    /// Some task is pausing, paused or pending.
    pub paused: bool,
    /// Something is staged and ready, or the task has next tasks.
    pub incomplete: bool,
}

/// The workflow status after a task reached `task` (`remediated` when an abended task has
/// somewhere to go), or `None` when the pair has no rule.
pub fn workflow_on_task(
    current: Status,
    task: Status,
    remediated: bool,
    ctx: WorkflowContext,
) -> Option<Status> {
    use Status as S;
    let success = task == S::Succeeded || (task.is_abended() && remediated);
    let outcome = |active: S, dormant: S| if ctx.active { active } else { dormant };
    match current {
        S::Running | S::Resuming => {
            if success {
                let resuming = current == S::Resuming;
                return Some(if ctx.canceled {
                    if ctx.active {
                        if resuming {
                            return None;
                        }
                        S::Canceling
                    } else {
                        S::Canceled
                    }
                } else if ctx.paused {
                    if ctx.active {
                        if resuming {
                            return None;
                        }
                        S::Pausing
                    } else {
                        S::Paused
                    }
                } else if ctx.incomplete || ctx.active {
                    S::Running
                } else {
                    S::Succeeded
                });
            }
            match task {
                S::Failed | S::Timeout | S::Abandoned if task == S::Failed => Some(S::Failed),
                S::Pending => Some(outcome(S::Pausing, S::Paused)),
                S::Pausing if current == S::Running => Some(S::Running),
                S::Paused if current == S::Running => Some(outcome(S::Running, S::Paused)),
                S::Canceling => Some(S::Canceling),
                S::Canceled => Some(outcome(S::Canceling, S::Canceled)),
                S::Running if current == S::Resuming => Some(S::Running),
                _ => None,
            }
        }
        S::Pausing => {
            if success {
                return Some(if ctx.active {
                    if ctx.canceled && remediated {
                        S::Canceling
                    } else {
                        S::Pausing
                    }
                } else if ctx.canceled {
                    S::Canceled
                } else {
                    S::Paused
                });
            }
            match task {
                S::Failed => Some(S::Failed),
                S::Pending | S::Paused | S::Retrying => Some(outcome(S::Pausing, S::Paused)),
                S::Canceling => Some(S::Canceling),
                S::Canceled => Some(outcome(S::Canceling, S::Canceled)),
                _ => None,
            }
        }
        S::Paused => match task {
            S::Running | S::Resuming => Some(S::Running),
            _ => None,
        },
        S::Canceling => match task {
            S::Pending | S::Paused | S::Succeeded | S::Failed | S::Canceled | S::Retrying => {
                Some(outcome(S::Canceling, S::Canceled))
            }
            _ if success => Some(outcome(S::Canceling, S::Canceled)),
            _ => None,
        },
        _ => None,
    }
}

/// The workflow status after a requested status (`active`: some task is active;
/// `nothing_left`: a paused workflow with nothing staged or active), or `None` when the
/// request is not valid from `current`.
pub fn workflow_on_request(
    current: Option<Status>,
    requested: Status,
    active: bool,
    nothing_left: bool,
) -> Option<Status> {
    use Status as S;
    let pause_or_cancel = |pause: bool| -> S {
        match (pause, active) {
            (true, true) => S::Pausing,
            (true, false) => S::Paused,
            (false, true) => S::Canceling,
            (false, false) => S::Canceled,
        }
    };
    let pause = matches!(requested, S::Pausing | S::Paused);
    let cancel = matches!(requested, S::Canceling | S::Canceled);
    match current {
        None => matches!(
            requested,
            S::Requested | S::Scheduled | S::Delayed | S::Running | S::Failed
        )
        .then_some(requested),
        Some(S::Requested | S::Scheduled | S::Delayed) => {
            if (pause || cancel) && !active {
                Some(pause_or_cancel(pause))
            } else if matches!(
                requested,
                S::Scheduled | S::Delayed | S::Running | S::Failed
            ) && requested != current?
            {
                Some(requested)
            } else {
                None
            }
        }
        Some(S::Running | S::Resuming | S::Pausing) => {
            if pause || cancel {
                Some(pause_or_cancel(pause))
            } else if requested == S::Failed
                || (requested == S::Succeeded && current == Some(S::Running))
                || (requested == S::Running && current != Some(S::Running))
                || (requested == S::Resuming && current == Some(S::Pausing))
            {
                Some(requested)
            } else {
                None
            }
        }
        Some(S::Paused) => match requested {
            S::Running | S::Resuming if nothing_left => Some(S::Succeeded),
            S::Running | S::Resuming | S::Failed => Some(requested),
            _ if cancel && !active => Some(S::Canceled),
            _ => None,
        },
        Some(S::Canceling) => {
            if cancel {
                Some(pause_or_cancel(false))
            } else if requested == S::Failed {
                Some(S::Failed)
            } else {
                None
            }
        }
        Some(S::Succeeded) => (requested == S::Failed).then_some(S::Failed),
        _ => None,
    }
}
