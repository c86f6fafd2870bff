//! The engine's side of [`RunnerServices`]: what a runner may ask of the engine while it runs
//! one execution (child executions, inquiries, triggers, announcements).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use super::executions::{self, RunRequest};
use super::triggers::{self, DispatchRequest};
use super::{EngineError, EngineEvent, Inner};
use crate::runner::{ChildRequest, RunnerError, RunnerServices, RunnerState, save_then_start};
use crate::store::{
    BatchWrite, BatchWritten, ExecutionRecord, ExecutionStatus, InquiryRecord, StatePart,
    StoreError, TaskRecord, WorkflowRecord,
};

/// The services of one running execution.
pub(crate) struct EngineServices {
    inner: Arc<Inner>,
    execution_id: String,
    /// The user the execution runs as (whose `st2kv.user` dynamic config values see).
    run_user: String,
    /// The runner state record as last read or written (its revision guards the next write).
    state: tokio::sync::Mutex<Option<WorkflowRecord>>,
    /// The trace the execution belongs to, looked up once (its children join it).
    trace: tokio::sync::OnceCell<Option<String>>,
    /// The execution's own record without its children, read once: its children's context
    /// derives from it (`parent`, `user`), and what changes of it while it runs (its status,
    /// a `paused_by` or `cancelled_by`) does not go into them.
    record: tokio::sync::OnceCell<ExecutionRecord>,
    /// The children (and the execution itself) `wait_any` waits for, registered from one wait
    /// to the next so that only children new since the last wait are read from the store.
    waiting: tokio::sync::Mutex<Option<super::watch::Watch>>,
}

impl EngineServices {
    pub(crate) fn new(inner: Arc<Inner>, execution_id: String, run_user: String) -> Self {
        EngineServices {
            inner,
            execution_id,
            run_user,
            state: tokio::sync::Mutex::new(None),
            trace: tokio::sync::OnceCell::new(),
            record: tokio::sync::OnceCell::new(),
            waiting: tokio::sync::Mutex::new(None),
        }
    }

    /// The execution's trace, read once: a workflow's trace grows with every task, and each
    /// child and each dispatched trigger joins it.
    async fn trace(&self) -> Option<String> {
        self.trace
            .get_or_init(|| executions::trace_of(&self.inner, &self.execution_id))
            .await
            .clone()
    }

    /// The watch kept in `waiting` (held locked by the caller), registered on first use. It
    /// hears of what `wait_any` acts on only: children that end, pause or wait for an
    /// inquiry, and its own execution asked to pause or cancel (not every child's `running`).
    fn watch<'a>(&self, held: &'a mut Option<super::watch::Watch>) -> &'a mut super::watch::Watch {
        held.get_or_insert_with(|| {
            self.inner.watchers.watch_for(
                std::iter::empty::<&str>(),
                Some(|s: ExecutionStatus| {
                    s.is_completed()
                        || matches!(
                            s,
                            ExecutionStatus::Paused
                                | ExecutionStatus::Pending
                                | ExecutionStatus::Pausing
                                | ExecutionStatus::Canceling
                        )
                }),
            )
        })
    }

    fn user(&self) -> String {
        self.inner.settings.system_user.clone()
    }

    /// The runner state record of `execution_id` and what it holds.
    async fn read_state(
        &self,
        execution_id: &str,
    ) -> Result<Option<(WorkflowRecord, RunnerState)>, RunnerError> {
        let workflows = self.inner.store.workflows();
        let record = workflows
            .get_by_execution(execution_id)
            .await
            .map_err(|e| failed(e.into()))?;
        let Some(record) = record else {
            return Ok(None);
        };
        let tasks = workflows
            .list_tasks(&record.id)
            .await
            .map_err(|e| failed(e.into()))?;
        let parts = workflows
            .list_parts(&record.id)
            .await
            .map_err(|e| failed(e.into()))?;
        let state = RunnerState {
            status: record.status.clone(),
            state: record.state.clone(),
            tasks,
            parts,
        };
        Ok(Some((record, state)))
    }

    /// The run request of a child of this execution: it joins this execution's trace.
    async fn child_run(&self, request: ChildRequest) -> RunRequest {
        let mut run = RunRequest::new(request.action, request.parameters);
        run.context = request.context;
        run.parent = Some(self.execution_id.clone());
        run.notify = request.notify;
        run.id = request.id;
        run.delay_ms = request.delay_ms;
        run.trace_id = self.trace().await;
        run
    }

    /// This execution's record, without its children, read once.
    async fn parent(&self) -> Result<&ExecutionRecord, RunnerError> {
        self.record
            .get_or_try_init(|| {
                executions::stored_without_children(&self.inner, &self.execution_id)
            })
            .await
            .map_err(failed)
    }

    /// Registered before it exists, so the next `wait_any` has every update of the child
    /// without reading it first (unless a wait holds the watch right now: then that wait
    /// reads it).
    fn watch_child(&self, run: &RunRequest) {
        if let Some(id) = &run.id
            && let Ok(mut held) = self.waiting.try_lock()
        {
            self.watch(&mut held).add(id);
        }
    }

    /// The id of this execution's runner state record, read once (`None` before the first
    /// save, which creates it).
    async fn state_record_id(&self) -> Result<Option<String>, RunnerError> {
        let mut held = self.state.lock().await;
        if held.is_none() {
            *held = self
                .inner
                .store
                .workflows()
                .get_by_execution(&self.execution_id)
                .await
                .map_err(|e| failed(e.into()))?;
        }
        Ok(held.as_ref().map(|r| r.id.clone()))
    }

    /// [`RunnerServices::save_state_and_start`] as one batch: the state record's update and
    /// every child (with its trace entry and queue item) commit together; `tasks` carry the
    /// record's id. `Ok(None)` when that cannot be done and nothing was written: a child that
    /// cannot start (its error comes from `start_child`) or a batch that failed. An error when
    /// the state was changed by another run.
    async fn save_and_start_together(
        &self,
        status: &str,
        state: &serde_json::value::RawValue,
        parts: &Arc<[StatePart]>,
        tasks: &Arc<[TaskRecord]>,
        children: &[ChildRequest],
    ) -> Result<Option<Vec<Result<ExecutionRecord, RunnerError>>>, RunnerError> {
        let parent = self.parent().await?;
        let mut news = Vec::with_capacity(children.len());
        for child in children {
            let run = self.child_run(child.clone()).await;
            self.watch_child(&run);
            match executions::new_under(&self.inner, run, Some(parent)).await {
                Ok(new) => news.push(new),
                Err(_) => return Ok(None),
            }
        }
        let mut held = self.state.lock().await;
        let Some(current) = held.as_ref() else {
            return Ok(None);
        };
        let mut record = current.clone();
        record.status = status.to_owned();
        record.state = state.to_owned();
        record.updated_at = self.inner.now();
        let save = BatchWrite::SaveWorkflow {
            record,
            parts: Arc::clone(parts),
            tasks: Arc::clone(tasks),
        };
        match executions::create_together(&self.inner, vec![save], news).await {
            Ok((written, created)) => {
                if let Some(BatchWritten::Workflow(mut saved)) = written.into_iter().next() {
                    // Only the id and revision are needed for the next write.
                    saved.state = empty_state();
                    *held = Some(saved);
                }
                Ok(Some(created.into_iter().map(Ok).collect()))
            }
            // Someone else wrote it (another run of this execution): this run must stop.
            Err(EngineError::Store(StoreError::Conflict {
                what: "workflow", ..
            })) => Err(RunnerError::Failed(format!(
                "the state of execution {} was changed by another run",
                self.execution_id
            ))),
            Err(_) => Ok(None),
        }
    }
}

/// A child's start failure as the runner sees it.
fn child_error(e: EngineError) -> RunnerError {
    match e {
        EngineError::UnknownAction(action) => RunnerError::UnknownAction(action),
        other => failed(other),
    }
}

impl fmt::Debug for EngineServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineServices")
            .field("execution_id", &self.execution_id)
            .finish_non_exhaustive()
    }
}

/// A runner slot lent to the pool while its run waits. Taken back before the run goes on; if
/// the wait is abandoned (the run was cancelled), taken back in the background.
struct LentSlot(Option<Arc<Semaphore>>);

impl LentSlot {
    fn lend(slots: Arc<Semaphore>) -> Self {
        slots.add_permits(1);
        LentSlot(Some(slots))
    }

    async fn take_back(mut self) {
        if let Some(slots) = self.0.take()
            && let Ok(permit) = slots.acquire().await
        {
            permit.forget();
        }
    }
}

impl Drop for LentSlot {
    fn drop(&mut self) {
        if let Some(slots) = self.0.take() {
            tokio::spawn(async move {
                if let Ok(permit) = slots.acquire().await {
                    permit.forget();
                }
            });
        }
    }
}

/// The state a held record keeps once written (only its id and revision matter then).
fn empty_state() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::NULL.to_owned()
}

fn failed(e: EngineError) -> RunnerError {
    RunnerError::Failed(e.to_string())
}

#[async_trait]
impl RunnerServices for EngineServices {
    async fn start_child(&self, request: ChildRequest) -> Result<ExecutionRecord, RunnerError> {
        let run = self.child_run(request).await;
        let parent = self.parent().await?;
        self.watch_child(&run);
        executions::run_under(&self.inner, run, Some(parent))
            .await
            .map_err(child_error)
    }

    async fn save_state_and_start(
        &self,
        status: &str,
        state: Box<serde_json::value::RawValue>,
        parts: Vec<StatePart>,
        mut tasks: Vec<TaskRecord>,
        children: Vec<ChildRequest>,
    ) -> Result<Vec<Result<ExecutionRecord, RunnerError>>, RunnerError> {
        if !children.is_empty()
            && let Some(workflow_id) = self.state_record_id().await?
        {
            for task in &mut tasks {
                task.workflow_id.clone_from(&workflow_id);
            }
            // Shared with the batch, so that they are copied only should it fail.
            let parts = Arc::<[StatePart]>::from(parts);
            let tasks = Arc::<[TaskRecord]>::from(tasks);
            if let Some(started) = self
                .save_and_start_together(status, &state, &parts, &tasks, &children)
                .await?
            {
                return Ok(started);
            }
            // A child that cannot start or a batch that failed (a trace gone, a child that
            // exists): one after the other.
            return save_then_start(
                self,
                status,
                state,
                parts.to_vec(),
                tasks.to_vec(),
                children,
            )
            .await;
        }
        // Nothing to start, or a first save (it creates the record).
        save_then_start(self, status, state, parts, tasks, children).await
    }

    async fn wait_child(&self, id: &str) -> Result<ExecutionRecord, RunnerError> {
        // Lend this run's slot while it only waits, so parents waiting for children can never
        // hold every slot the children need; take one back before carrying on.
        let lent = LentSlot::lend(self.inner.runner_slots.clone());
        let waited = executions::wait_until(&self.inner, id, None, |r| {
            r.status.is_completed()
                || matches!(r.status, ExecutionStatus::Paused | ExecutionStatus::Pending)
        })
        .await;
        lent.take_back().await;
        waited.map_err(failed)
    }

    async fn wait_any(
        &self,
        ids: &[String],
        timeout: Option<std::time::Duration>,
    ) -> Result<Vec<ExecutionRecord>, RunnerError> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let lent = LentSlot::lend(self.inner.runner_slots.clone());
        let mut held = self.waiting.lock().await;
        let updates = self.watch(&mut held);
        let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        updates.retain(|id| id == self.execution_id || wanted.contains(id));
        let unread: Vec<String> = ids.iter().filter(|id| updates.add(id)).cloned().collect();
        let own_unread = updates.add(&self.execution_id);
        let waited = executions::wait_registered(
            &self.inner,
            updates,
            executions::Waiting {
                ids,
                unread: &unread,
                own: Some(&self.execution_id),
                own_unread,
            },
            deadline,
            |status| {
                status.is_completed()
                    || matches!(status, ExecutionStatus::Paused | ExecutionStatus::Pending)
            },
            |own| {
                matches!(
                    own.status,
                    ExecutionStatus::Pausing | ExecutionStatus::Canceling
                )
            },
        )
        .await;
        lent.take_back().await;
        waited.map_err(failed)
    }

    async fn load_state(&self) -> Result<Option<RunnerState>, RunnerError> {
        let Some((record, state)) = self.read_state(&self.execution_id).await? else {
            return Ok(None);
        };
        *self.state.lock().await = Some(record);
        Ok(Some(state))
    }

    async fn load_state_of(&self, execution_id: &str) -> Result<Option<RunnerState>, RunnerError> {
        Ok(self.read_state(execution_id).await?.map(|(_, state)| state))
    }

    async fn save_state(&self, status: &str, state: Value) -> Result<(), RunnerError> {
        let state = serde_json::value::to_raw_value(&state)
            .map_err(|e| RunnerError::Failed(format!("the state cannot be saved: {e}")))?;
        self.save_state_parts(status, state, Vec::new(), Vec::new())
            .await
    }

    async fn save_state_parts(
        &self,
        status: &str,
        state: Box<serde_json::value::RawValue>,
        parts: Vec<StatePart>,
        mut tasks: Vec<TaskRecord>,
    ) -> Result<(), RunnerError> {
        let workflows = self.inner.store.workflows();
        let mut held = self.state.lock().await;
        if held.is_none() {
            *held = workflows
                .get_by_execution(&self.execution_id)
                .await
                .map_err(|e| failed(e.into()))?;
        }
        let now = self.inner.now();
        let saved = match held.take() {
            Some(mut record) => {
                record.status = status.to_owned();
                record.state = state;
                record.updated_at = now;
                for task in &mut tasks {
                    task.workflow_id.clone_from(&record.id);
                }
                if parts.is_empty() && tasks.is_empty() {
                    workflows.update(&record).await
                } else {
                    workflows.save(&record, &parts, &tasks).await
                }
            }
            None => {
                let record = WorkflowRecord {
                    id: crate::store::new_id(),
                    execution_id: self.execution_id.clone(),
                    revision: 0,
                    status: status.to_owned(),
                    state,
                    created_at: now,
                    updated_at: now,
                };
                match workflows.create(&record).await {
                    // Parts and tasks of a first save follow in an update of the new record.
                    Ok(created) if !parts.is_empty() || !tasks.is_empty() => {
                        for task in &mut tasks {
                            task.workflow_id.clone_from(&created.id);
                        }
                        workflows.save(&created, &parts, &tasks).await
                    }
                    other => other,
                }
            }
        };
        match saved {
            Ok(mut record) => {
                // Only the id and revision are needed for the next write.
                record.state = empty_state();
                *held = Some(record);
                Ok(())
            }
            // Someone else wrote it (another run of this execution): this run must stop.
            Err(StoreError::Conflict { .. }) => Err(RunnerError::Failed(format!(
                "the state of execution {} was changed by another run",
                self.execution_id
            ))),
            Err(e) => Err(failed(e.into())),
        }
    }

    async fn save_task(&self, mut task: TaskRecord) -> Result<(), RunnerError> {
        let held = self.state.lock().await;
        let Some(record) = held.as_ref() else {
            return Err(RunnerError::Failed(
                "save_task before save_state: the task has no workflow record".to_owned(),
            ));
        };
        task.workflow_id = record.id.clone();
        self.inner
            .store
            .workflows()
            .put_task(&task)
            .await
            .map_err(|e| failed(e.into()))
    }

    async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, RunnerError> {
        self.inner
            .store
            .executions()
            .get(id)
            .await
            .map_err(|e| failed(e.into()))
    }

    async fn cancel(&self, id: &str) -> Result<(), RunnerError> {
        match executions::cancel(&self.inner, id, &self.user()).await {
            Ok(_) => Ok(()),
            // Finished in between: nothing left to cancel.
            Err(EngineError::InvalidState(_)) => Ok(()),
            Err(e) => Err(failed(e)),
        }
    }

    async fn pause(&self, id: &str) -> Result<(), RunnerError> {
        executions::pause(&self.inner, id, &self.user())
            .await
            .map(|_| ())
            .map_err(failed)
    }

    async fn resume(&self, id: &str) -> Result<(), RunnerError> {
        executions::resume(&self.inner, id, &self.user())
            .await
            .map(|_| ())
            .map_err(failed)
    }

    async fn pack_config(&self, pack: &str) -> Result<Map<String, Value>, RunnerError> {
        let inner = self.inner.clone();
        let (pack, user) = (pack.to_owned(), self.run_user.clone());
        tokio::task::spawn_blocking(move || inner.pack_config(&inner.catalog(), &pack, &user))
            .await
            .map_err(|e| RunnerError::Failed(format!("reading the pack config failed: {e}")))?
            .map_err(RunnerError::Failed)
    }

    async fn create_inquiry(&self, inquiry: InquiryRecord) -> Result<(), RunnerError> {
        if inquiry.id != self.execution_id {
            return Err(RunnerError::Failed(format!(
                "an inquiry must carry its execution's id {:?}, not {:?}",
                self.execution_id, inquiry.id
            )));
        }
        match self.inner.store.inquiries().create(&inquiry).await {
            Ok(()) => Ok(()),
            // Asked before a crash: the stored inquiry stands.
            Err(crate::store::StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(failed(e.into())),
        }
    }

    async fn dispatch(&self, trigger: &str, payload: Value) -> Result<(), RunnerError> {
        let mut request = DispatchRequest::new(trigger, payload);
        request.validate = false;
        request.trace_id = self.trace().await;
        triggers::dispatch(&self.inner, request)
            .await
            .map(|_| ())
            .map_err(failed)
    }

    fn announce(&self, route: &str, payload: Value) {
        self.inner.emit_with(|| EngineEvent::Announcement {
            route: route.to_owned(),
            payload,
        });
    }
}
