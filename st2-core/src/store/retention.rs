//! Retention: StackStorm's garbage collector (`[garbagecollector]`, spec §13.4) over the store.
//!
//! Old executions (completed only), their output, trigger instances, rule enforcements and
//! traces are deleted once older than their TTL; expired key-value pairs and tokens always go.
//! Deletion runs in small batches, each its own short write, with a pause between batches, so
//! writers queue behind at most one batch.

use std::time::Duration;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, StoreResult};

/// TTLs and pacing. A TTL of `None` keeps that kind forever (StackStorm's default for all but
/// execution output, which it keeps 7 days).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// `action_executions_ttl`, in days.
    pub action_executions_ttl: Option<u32>,
    /// `action_executions_output_ttl`, in days.
    pub action_executions_output_ttl: Option<u32>,
    /// `trigger_instances_ttl`, in days.
    pub trigger_instances_ttl: Option<u32>,
    /// `rule_enforcements_ttl`, in days.
    pub rule_enforcements_ttl: Option<u32>,
    /// `traces_ttl`, in days.
    pub traces_ttl: Option<u32>,
    /// Rows deleted per write.
    pub batch_size: u64,
    /// Pause between two batches, letting other writes through.
    #[serde(with = "millis")]
    pub pause_between_batches: Duration,
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            action_executions_ttl: None,
            action_executions_output_ttl: Some(7),
            trigger_instances_ttl: None,
            rule_enforcements_ttl: None,
            traces_ttl: None,
            batch_size: 500,
            pause_between_batches: Duration::from_millis(10),
        }
    }
}

/// StackStorm's minimum TTL, in days, for every kind.
pub const MINIMUM_TTL_DAYS: u32 = 1;

impl RetentionPolicy {
    /// Check the TTLs as StackStorm does: none may be below one day; the batch size must be
    /// positive.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] naming the offending option.
    pub fn validate(&self) -> StoreResult<()> {
        for (name, ttl) in [
            ("action_executions_ttl", self.action_executions_ttl),
            (
                "action_executions_output_ttl",
                self.action_executions_output_ttl,
            ),
            ("trigger_instances_ttl", self.trigger_instances_ttl),
            ("rule_enforcements_ttl", self.rule_enforcements_ttl),
            ("traces_ttl", self.traces_ttl),
        ] {
            if let Some(days) = ttl
                && days < MINIMUM_TTL_DAYS
            {
                return Err(StoreError::Invalid(format!(
                    "garbagecollector.{name} is {days}: the minimum is {MINIMUM_TTL_DAYS} day"
                )));
            }
        }
        if self.batch_size == 0 {
            return Err(StoreError::Invalid(
                "garbagecollector batch size must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// How many records one pass deleted, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PurgeReport {
    /// Executions (with their output).
    pub executions: u64,
    /// Output chunks (beyond those of purged executions).
    pub execution_output: u64,
    /// Trigger instances.
    pub trigger_instances: u64,
    /// Rule enforcements.
    pub rule_enforcements: u64,
    /// Traces.
    pub traces: u64,
    /// Expired key-value pairs.
    pub key_values: u64,
    /// Expired tokens.
    pub tokens: u64,
}

/// Run one garbage-collection pass: every kind with a TTL, batch by batch until none is left.
///
/// # Errors
/// [`StoreError::Invalid`] for a bad policy; the first store error otherwise (what was deleted
/// before it stays deleted; the next pass continues).
pub async fn purge(store: &dyn Store, policy: &RetentionPolicy) -> StoreResult<PurgeReport> {
    policy.validate()?;
    let now = store.clock().now();
    let cutoff = |days: u32| now - TimeDelta::days(i64::from(days));
    let batch = policy.batch_size;
    let pause = policy.pause_between_batches;
    let mut report = PurgeReport::default();

    if let Some(days) = policy.action_executions_ttl {
        let before = cutoff(days);
        report.executions = drain(pause, || store.executions().purge_before(before, batch)).await?;
    }
    if let Some(days) = policy.action_executions_output_ttl {
        let before = cutoff(days);
        report.execution_output = drain(pause, || {
            store.execution_output().purge_before(before, batch)
        })
        .await?;
    }
    if let Some(days) = policy.trigger_instances_ttl {
        let before = cutoff(days);
        report.trigger_instances = drain(pause, || {
            store.trigger_instances().purge_before(before, batch)
        })
        .await?;
    }
    if let Some(days) = policy.rule_enforcements_ttl {
        let before = cutoff(days);
        report.rule_enforcements = drain(pause, || {
            store.rule_enforcements().purge_before(before, batch)
        })
        .await?;
    }
    if let Some(days) = policy.traces_ttl {
        let before = cutoff(days);
        report.traces = drain(pause, || store.traces().purge_before(before, batch)).await?;
    }
    report.key_values = drain(pause, || store.key_values().purge_expired(batch)).await?;
    report.tokens = drain(pause, || store.tokens().purge_expired(batch)).await?;
    Ok(report)
}

async fn drain<'a, F, Fut>(pause: Duration, mut one_batch: F) -> StoreResult<u64>
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = StoreResult<u64>> + 'a,
{
    let mut total = 0;
    loop {
        let deleted = one_batch().await?;
        total += deleted;
        if deleted == 0 {
            return Ok(total);
        }
        if pause.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_below_a_day_are_refused() {
        let policy = RetentionPolicy {
            trigger_instances_ttl: Some(0),
            ..Default::default()
        };
        let err = policy.validate().unwrap_err().to_string();
        assert!(
            err.contains("garbagecollector.trigger_instances_ttl"),
            "{err}"
        );
        assert!(RetentionPolicy::default().validate().is_ok());
    }

    #[test]
    fn policies_read_from_config_reject_unknown_fields() {
        let policy: RetentionPolicy =
            serde_json::from_value(serde_json::json!({"traces_ttl": 3})).unwrap();
        assert_eq!(policy.traces_ttl, Some(3));
        assert_eq!(policy.action_executions_output_ttl, Some(7));
        assert!(
            serde_json::from_value::<RetentionPolicy>(serde_json::json!({"trace_ttl": 3})).is_err()
        );
    }
}
