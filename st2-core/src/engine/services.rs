//! Starting the engine's services and recovering what a previous run left unfinished.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::executions::{self, sleep_or_stop};
use super::triggers::{self, Pending};
use super::worker::{self, OutputMessage};
use super::{Engine, EngineError, Inner};

/// Spawn every service the settings' roles ask for, after recovery.
pub(crate) async fn start(
    engine: &Engine,
    rules_rx: mpsc::UnboundedReceiver<Pending>,
    output_rx: mpsc::UnboundedReceiver<OutputMessage>,
) -> Result<(), EngineError> {
    let inner = engine.inner.clone();
    let roles = inner.settings.roles;
    // The output writer ends when the engine (its sender) is dropped, after the last line.
    tokio::spawn(worker::output_writer(inner.clone(), output_rx));
    if roles.rules {
        inner.spawn(triggers::rules_service(inner.clone(), rules_rx));
        triggers::recover(&inner).await?;
    }
    if roles.scheduler || roles.runner {
        executions::recover(&inner).await?;
    }
    if roles.scheduler {
        inner.spawn(executions::scheduler_service(inner.clone()));
    }
    if roles.runner {
        inner.spawn(worker::runner_service(inner.clone()));
    }
    inner.spawn(reaper(inner.clone()));
    if roles.gc && inner.settings.retention.is_some() {
        inner.spawn(garbage_collector(inner.clone()));
    }
    Ok(())
}

/// Return expired leases to their queues, so another worker finds what a dead one held.
async fn reaper(inner: Arc<Inner>) {
    while !inner.stopping.is_cancelled() {
        let _ = inner.store.queue().reap_expired().await;
        sleep_or_stop(&inner, inner.settings.reap_interval).await;
    }
}

/// Purge on the configured TTLs every `gc_interval`.
async fn garbage_collector(inner: Arc<Inner>) {
    let Some(policy) = inner.settings.retention.clone() else {
        return;
    };
    while !inner.stopping.is_cancelled() {
        // A failed pass is retried at the next interval; what it deleted stays deleted.
        let _ = crate::store::retention::purge(inner.store.as_ref(), &policy).await;
        sleep_or_stop(&inner, inner.settings.gc_interval).await;
    }
}
