//! Starting the engine's services and recovering what a previous run left unfinished.

use std::collections::HashMap;
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
    if roles.timers {
        inner.spawn(timers(inner.clone()));
    }
    if roles.gc && inner.settings.retention.is_some() {
        inner.spawn(garbage_collector(inner.clone()));
    }
    if roles.gc && inner.settings.expire_inquiries {
        inner.spawn(inquiry_expiry(inner.clone()));
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
        if inner.leads("gc", inner.settings.gc_interval * 3).await {
            let _ = crate::store::retention::purge(inner.store.as_ref(), &policy).await;
        }
        sleep_or_stop(&inner, inner.settings.gc_interval).await;
    }
}

/// Time out pending inquiries older than their `ttl` (minutes) every `inquiry_check`.
async fn inquiry_expiry(inner: Arc<Inner>) {
    while !inner.stopping.is_cancelled() {
        // A failed pass is retried at the next one.
        if inner
            .leads("inquiries", inner.settings.inquiry_check * 3)
            .await
        {
            let _ = executions::expire_inquiries(&inner).await;
        }
        sleep_or_stop(&inner, inner.settings.inquiry_check).await;
    }
}

/// One timer the rules listen to.
struct Timer {
    trigger: crate::rules::matcher::TriggerRef,
    reference: String,
    schedule: crate::timers::TimerSchedule,
    next: Option<crate::store::Timestamp>,
}

/// The timers engine (st2timersengine): fire `core.st2.IntervalTimer`, `DateTimer` and
/// `CronTimer` triggers the loaded rules listen to, by the engine's clock. A firing's trigger
/// instance id derives from the trigger and the fire time, so several nodes running timers
/// fire each one once. Rules added, changed or removed while it runs take effect at once: a
/// new timer's schedule starts when it appears, and a timer no rule uses any more stops.
pub(crate) async fn timers(inner: Arc<Inner>) {
    use crate::timers::{timer_payload, trace_tag};
    use std::sync::atomic::Ordering;
    let mut timers: HashMap<String, Timer> = HashMap::new();
    let mut seen = None;
    while !inner.stopping.is_cancelled() {
        let generation = inner.triggers_generation.load(Ordering::Acquire);
        if seen != Some(generation) {
            seen = Some(generation);
            follow_rules(&inner, &mut timers);
        }
        let now = inner.now();
        for timer in timers.values_mut() {
            while let Some(due) = timer.next.filter(|d| *d <= now) {
                let mut request = super::triggers::DispatchRequest::to_trigger(
                    timer.trigger.clone(),
                    timer_payload(due),
                );
                let name = timer
                    .reference
                    .split_once('.')
                    .map_or(timer.reference.as_str(), |(_, n)| n);
                request.trace_tag = Some(trace_tag(&timer.trigger.trigger_type, name));
                request.id = Some(super::snapshot::derived_id(
                    &format!("{:08x}", due.timestamp().max(0)),
                    &format!("timer:{}:{}", timer.reference, due.timestamp_micros()),
                ));
                request.validate = false;
                if super::triggers::dispatch(&inner, request).await.is_err() {
                    // The store is unavailable: try this firing again at the next tick.
                    break;
                }
                timer.next = timer.schedule.next_after(due);
            }
        }
        let soonest = timers.values().filter_map(|t| t.next).min();
        let wait = soonest
            .map_or(inner.settings.timer_tick, |soonest| {
                (soonest - inner.now()).to_std().unwrap_or_default()
            })
            .min(inner.settings.timer_tick);
        tokio::select! {
            () = sleep_or_stop(&inner, wait.max(std::time::Duration::from_millis(1))) => {}
            () = inner.triggers_changed.notified() => {}
        }
    }
}

/// Bring `timers` in line with the triggers the rules listen to now: keep the timers still
/// used (and their next firing), start the new ones from now, drop the others.
fn follow_rules(inner: &Inner, timers: &mut HashMap<String, Timer>) {
    use crate::timers::{TimerKind, TimerSchedule};
    let triggers: Vec<(String, crate::rules::matcher::TriggerRef)> = {
        let t = inner.triggers.read().unwrap_or_else(|e| e.into_inner());
        t.iter()
            .filter(|(_, v)| TimerKind::from_trigger_type(&v.trigger_type).is_some())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    timers.retain(|reference, _| triggers.iter().any(|(r, _)| r == reference));
    let start = inner.now();
    for (reference, trigger) in triggers {
        if timers.contains_key(&reference) {
            continue;
        }
        // A rule with bad timer parameters is in `Engine::diagnostics`; it cannot fire.
        let Ok(schedule) = TimerSchedule::from_trigger(
            &trigger.trigger_type,
            &trigger.parameters,
            &inner.settings.timer_timezone,
        ) else {
            continue;
        };
        let schedule = schedule.with_start(start);
        let next = schedule.next_after(start);
        timers.insert(
            reference.clone(),
            Timer {
                trigger,
                reference,
                schedule,
                next,
            },
        );
    }
}
