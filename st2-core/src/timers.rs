//! Timer schedules: when the `core.st2.IntervalTimer`, `core.st2.DateTimer` and
//! `core.st2.CronTimer` triggers fire.
//!
//! This module only computes. [`TimerSchedule::from_trigger`] validates a timer trigger's
//! parameters and compiles them; [`TimerSchedule::next_after`] answers "when does it fire next?".
//! The timers service reads its [`Clock`](crate::clock::Clock), waits until that instant,
//! dispatches the trigger with [`timer_payload`] and [`trace_tag`], and asks again with the
//! instant it just fired at.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use serde_json::json;
//! use st2_core::timers::{TimerSchedule, CRON_TIMER, DEFAULT_TIMEZONE};
//!
//! let params = json!({"day_of_week": "mon-fri", "hour": 9, "timezone": "UTC"});
//! let schedule =
//!     TimerSchedule::from_trigger(CRON_TIMER, params.as_object().unwrap(), DEFAULT_TIMEZONE)?;
//! // Saturday 2024-05-04: the next weekday at 09:00:00 is Monday.
//! let after = Utc.with_ymd_and_hms(2024, 5, 4, 12, 0, 0).unwrap();
//! assert_eq!(
//!     schedule.next_after(after),
//!     Some(Utc.with_ymd_and_hms(2024, 5, 6, 9, 0, 0).unwrap())
//! );
//! # Ok::<(), st2_core::timers::TimerError>(())
//! ```
//!
//! StackStorm's timers engine hands these parameters to APScheduler 3.x; the semantics here are
//! APScheduler's:
//!
//! * **IntervalTimer** fires every `delta × unit` of elapsed (absolute) time, the first time one
//!   interval after the schedule was started (see [`TimerSchedule::with_start`]).
//! * **DateTimer** fires once at `date`. A naive date is local time in the trigger's time zone;
//!   a date that carries an offset (`Z`, `+02:00`) is taken as written. Dates in the past never
//!   fire.
//! * **CronTimer** fires at every second whose local wall-clock time, in the trigger's time zone,
//!   matches all eight fields (`year, month, day, week, day_of_week, hour, minute, second`). Fields
//!   left out that are more significant than the least significant field given are `*`; those
//!   less significant take their minimum (month and day 1, hour, minute and second 0); `week` and
//!   `day_of_week` default to `*`. So `{hour: 3}` fires daily at 03:00:00 and `{minute: 30}`
//!   hourly at hh:30:00, and `{}` fires every second. `day_of_week` counts 0 = Monday.
//!
//! Expressions (comma-separated lists of them, case-insensitive): `*`, `*/n`, `a`, `a-b`,
//! `a-b/n`, `a/n` (`a` up to the field's maximum, every `n`); month names `jan`..`dec` and
//! ranges of them in `month`; weekday names `mon`..`sun` and ranges of them in `day_of_week`; in
//! `day`, `last` (the month's last day) and `1st`..`5th`/`last` followed by a weekday name
//! (`last fri`, `1st mon`). Steps count from the start of the range (`*/5` on `day` is 1, 6, 11,
//! …). Field ranges: year 1970–9999, month 1–12, day 1–31, week 1–53 (ISO week), day_of_week
//! 0–6, hour 0–23, minute and second 0–59.
//!
//! **Time zones.** A trigger's `timezone` parameter (an IANA name, case-sensitive as Python's
//! `zoneinfo`) wins; otherwise the caller's default applies (`timersengine.local_timezone`,
//! [`DEFAULT_TIMEZONE`] unless configured). StackStorm itself builds its APScheduler triggers
//! without the scheduler's zone, so there a timer without `timezone` runs in the host's local
//! zone; the configured default is the documented intent and what this module does.
//!
//! **Daylight saving.** A cron local time that does not exist (the hour skipped in spring) is
//! skipped, and one that occurs twice (the hour repeated in autumn) fires once, at its first
//! occurrence. APScheduler 3.11 differs here: it fires a skipped 02:30 at 03:30 new time, and in
//! the repeated hour it can return fire times that go back in time. A DateTimer's naive date that
//! does not exist is read with the offset in force just before the gap (02:30 on a spring-forward
//! night at 02:00 fires at 03:30 new time, as APScheduler does), and an ambiguous one means its
//! first occurrence.
//!
//! **Search bound.** Cron schedules are searched up to the end of year [`LAST_CRON_YEAR`] (9999,
//! APScheduler's largest year); a schedule that never matches (`month: 2, day: 30`) returns
//! `None`. The search jumps field by field (year, month, day, hour, minute, second), so even a
//! schedule that never fires is settled in a few tens of thousands of cheap steps.

use std::str::FromStr;

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use serde_json::{Map, Value};

/// Reference of the interval timer trigger type.
pub const INTERVAL_TIMER: &str = "core.st2.IntervalTimer";
/// Reference of the one-shot date timer trigger type.
pub const DATE_TIMER: &str = "core.st2.DateTimer";
/// Reference of the cron timer trigger type.
pub const CRON_TIMER: &str = "core.st2.CronTimer";
/// StackStorm's default for `timersengine.local_timezone`, the zone of timers without a
/// `timezone` parameter.
pub const DEFAULT_TIMEZONE: &str = "America/Los_Angeles";
/// The last year searched for a cron fire time.
pub const LAST_CRON_YEAR: i32 = 9999;

/// The longest interval accepted, in seconds: Python's largest `timedelta` (999999999 days).
const MAX_INTERVAL_SECONDS: i64 = 999_999_999 * 86_400;
const FIRST_CRON_YEAR: i32 = 1970;

/// The three kinds of timer trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// `core.st2.IntervalTimer`: every `delta` `unit`s.
    Interval,
    /// `core.st2.DateTimer`: once, at `date`.
    Date,
    /// `core.st2.CronTimer`: whenever the local time matches the cron fields.
    Cron,
}

impl TimerKind {
    /// The kind of a trigger type reference, or `None` if it is not a timer.
    pub fn from_trigger_type(trigger_type: &str) -> Option<Self> {
        match trigger_type {
            INTERVAL_TIMER => Some(Self::Interval),
            DATE_TIMER => Some(Self::Date),
            CRON_TIMER => Some(Self::Cron),
            _ => None,
        }
    }

    /// The trigger type reference of this kind (`core.st2.IntervalTimer`, …).
    pub fn trigger_type(self) -> &'static str {
        match self {
            Self::Interval => INTERVAL_TIMER,
            Self::Date => DATE_TIMER,
            Self::Cron => CRON_TIMER,
        }
    }

    fn parameters(self) -> &'static [&'static str] {
        match self {
            Self::Interval => &["unit", "delta", "timezone"],
            Self::Date => &["date", "timezone"],
            Self::Cron => &[
                "year",
                "month",
                "day",
                "week",
                "day_of_week",
                "hour",
                "minute",
                "second",
                "timezone",
            ],
        }
    }
}

/// Why a timer trigger's parameters do not make a schedule.
///
/// Every variant about a parameter names it; [`TimerError::parameter`] returns that name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimerError {
    /// The trigger type is not one of the three timers.
    #[error(
        "`{trigger_type}` is not a timer trigger type (expected {INTERVAL_TIMER}, {DATE_TIMER} \
         or {CRON_TIMER})"
    )]
    UnknownTriggerType {
        /// The reference given.
        trigger_type: String,
    },
    /// A required parameter is missing (or null).
    #[error("parameter `{parameter}` is required")]
    MissingParameter {
        /// The parameter's name.
        parameter: &'static str,
    },
    /// A parameter the trigger type does not define (its schema forbids extra properties).
    #[error("parameter `{parameter}` is not a parameter of {trigger_type}")]
    UnknownParameter {
        /// The parameter's name.
        parameter: String,
        /// The trigger type reference.
        trigger_type: &'static str,
    },
    /// A parameter has the wrong JSON type.
    #[error("parameter `{parameter}` must be {expected}, got {found}")]
    WrongType {
        /// The parameter's name.
        parameter: &'static str,
        /// What it must be, e.g. "a string".
        expected: &'static str,
        /// The JSON type found, e.g. "a boolean".
        found: &'static str,
    },
    /// `unit` is not weeks, days, hours, minutes or seconds.
    #[error(
        "parameter `unit`: unknown unit `{unit}` (expected weeks, days, hours, minutes or seconds)"
    )]
    UnknownUnit {
        /// The unit given.
        unit: String,
    },
    /// `delta` is not a positive integer, or the interval is too long.
    #[error("parameter `delta`: {reason}, got {delta}")]
    InvalidDelta {
        /// The value given, as JSON.
        delta: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `date` is not a date-time this module can read.
    #[error("parameter `date`: cannot read `{date}` as a date-time: {reason}")]
    InvalidDate {
        /// The text given.
        date: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A cron field's expression is malformed or out of range.
    #[error("parameter `{field}`: invalid cron expression `{expression}`: {reason}")]
    InvalidCronField {
        /// The field (`month`, `day_of_week`, …).
        field: &'static str,
        /// The whole expression given for the field.
        expression: String,
        /// What is wrong, naming the offending part.
        reason: String,
    },
    /// The `timezone` parameter is not an IANA time zone name.
    #[error("parameter `timezone`: unknown time zone `{timezone}`")]
    UnknownTimezone {
        /// The name given.
        timezone: String,
    },
    /// The caller's default time zone is not an IANA time zone name.
    #[error("the default time zone `{timezone}` is not a known time zone")]
    UnknownDefaultTimezone {
        /// The name given.
        timezone: String,
    },
}

impl TimerError {
    /// The trigger parameter this error is about, if it is about one.
    pub fn parameter(&self) -> Option<&str> {
        match self {
            Self::UnknownTriggerType { .. } | Self::UnknownDefaultTimezone { .. } => None,
            Self::MissingParameter { parameter } | Self::WrongType { parameter, .. } => {
                Some(parameter)
            }
            Self::UnknownParameter { parameter, .. } => Some(parameter),
            Self::UnknownUnit { .. } => Some("unit"),
            Self::InvalidDelta { .. } => Some("delta"),
            Self::InvalidDate { .. } => Some("date"),
            Self::InvalidCronField { field, .. } => Some(field),
            Self::UnknownTimezone { .. } => Some("timezone"),
        }
    }
}

/// A compiled timer: a validated trigger that can say when it fires next.
///
/// Built by [`TimerSchedule::from_trigger`]; immutable afterwards (except for
/// [`TimerSchedule::with_start`], which returns a new value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerSchedule {
    timezone: Tz,
    plan: Plan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Interval {
        every: TimeDelta,
        start: DateTime<Utc>,
    },
    Date {
        at: DateTime<Utc>,
    },
    Cron(CronSpec),
}

impl TimerSchedule {
    /// Validates a timer trigger's `parameters` and compiles them.
    ///
    /// `trigger_type` is the trigger type reference (`core.st2.IntervalTimer`,
    /// `core.st2.DateTimer` or `core.st2.CronTimer`); `parameters` is the trigger's parameters
    /// object; `default_timezone` is the IANA zone for timers without a `timezone` parameter
    /// (StackStorm's `timersengine.local_timezone`, [`DEFAULT_TIMEZONE`] unless configured). It is
    /// only checked when it is used. Null parameters count as absent.
    ///
    /// An interval schedule starts at the Unix epoch until [`TimerSchedule::with_start`] says
    /// otherwise.
    ///
    /// # Errors
    ///
    /// A [`TimerError`] naming the parameter for: a trigger type that is not a timer; a missing
    /// `unit`, `delta` or `date`; a parameter the trigger type does not define; a wrong JSON type;
    /// an unknown unit; a `delta` that is not an integer > 0 or makes an interval longer than
    /// 999999999 days; an unreadable date; a malformed or out-of-range cron field; an unknown
    /// time zone.
    pub fn from_trigger(
        trigger_type: &str,
        parameters: &Map<String, Value>,
        default_timezone: &str,
    ) -> Result<Self, TimerError> {
        let kind = TimerKind::from_trigger_type(trigger_type).ok_or_else(|| {
            TimerError::UnknownTriggerType {
                trigger_type: trigger_type.to_owned(),
            }
        })?;
        if let Some(unknown) = parameters
            .keys()
            .find(|key| !kind.parameters().contains(&key.as_str()))
        {
            return Err(TimerError::UnknownParameter {
                parameter: unknown.clone(),
                trigger_type: kind.trigger_type(),
            });
        }
        let timezone = timezone_parameter(parameters, default_timezone)?;
        let plan = match kind {
            TimerKind::Interval => Plan::Interval {
                every: interval_parameters(parameters)?,
                start: DateTime::UNIX_EPOCH,
            },
            TimerKind::Date => Plan::Date {
                at: date_parameter(parameters, timezone)?,
            },
            TimerKind::Cron => Plan::Cron(CronSpec::from_parameters(parameters)?),
        };
        Ok(Self { timezone, plan })
    }

    /// Anchors an interval schedule at `start`, the moment the timer was set up.
    ///
    /// APScheduler's `IntervalTrigger`, as StackStorm creates it, first fires one interval after
    /// the job was added and then every interval after that: the fire times are
    /// `start + k × interval` for k ≥ 1. The timers service passes its clock's `now()` when it
    /// (re)loads the trigger. Without this call the anchor is 1970-01-01T00:00:00Z, which aligns
    /// fire times to multiples of the interval since the epoch. Date and cron schedules do not
    /// depend on a start and are returned unchanged.
    #[must_use]
    pub fn with_start(mut self, start: DateTime<Utc>) -> Self {
        if let Plan::Interval { start: anchor, .. } = &mut self.plan {
            *anchor = start;
        }
        self
    }

    /// Which of the three timers this is.
    pub fn kind(&self) -> TimerKind {
        match self.plan {
            Plan::Interval { .. } => TimerKind::Interval,
            Plan::Date { .. } => TimerKind::Date,
            Plan::Cron(_) => TimerKind::Cron,
        }
    }

    /// The time zone the schedule is evaluated in (its `timezone` parameter, else the default).
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The interval of an interval schedule, `None` for the other kinds.
    pub fn interval(&self) -> Option<TimeDelta> {
        match self.plan {
            Plan::Interval { every, .. } => Some(every),
            _ => None,
        }
    }

    /// The first fire time strictly after `after`, or `None` if the timer never fires again.
    ///
    /// Interval: `start + k × interval` for the smallest k ≥ 1 that is after `after`. Date: the
    /// date if it is after `after`. Cron: the first whole second after `after` whose local time
    /// matches, up to the end of year [`LAST_CRON_YEAR`]. Never panics; `None` also when the
    /// answer would not be representable.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.plan {
            Plan::Interval { every, start } => next_interval(*start, *every, after),
            Plan::Date { at } => (*at > after).then_some(*at),
            Plan::Cron(spec) => spec.next_after(self.timezone, after),
        }
    }
}

/// The payload of a timer trigger instance fired at `fired_at`.
///
/// StackStorm sends `{"executed_at": str(utcnow), "schedule": null}` where `executed_at` is
/// Python's `str()` of an aware UTC datetime: `2024-05-01 10:00:00.123456+00:00`, without the
/// fraction when the microseconds are zero (`2024-05-01 10:00:00+00:00`). Sub-microsecond digits
/// are dropped. `schedule` is always null (StackStorm reads a `time` parameter no timer has).
pub fn timer_payload(fired_at: DateTime<Utc>) -> Value {
    serde_json::json!({
        "executed_at": python_utc_string(fired_at),
        "schedule": null,
    })
}

/// The trace tag StackStorm gives a timer's trigger instances: the trigger type's name (its
/// reference without the pack, e.g. `st2.IntervalTimer`), a dash and the trigger's name.
///
/// `trace_tag("core.st2.CronTimer", "nightly")` is `st2.CronTimer-nightly`. A reference without a
/// pack is used whole.
pub fn trace_tag(trigger_type: &str, trigger_name: &str) -> String {
    let type_name = trigger_type
        .split_once('.')
        .map_or(trigger_type, |(_pack, name)| name);
    format!("{type_name}-{trigger_name}")
}

fn python_utc_string(at: DateTime<Utc>) -> String {
    let micros = (at.nanosecond() / 1_000).min(999_999);
    let mut text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if micros != 0 {
        text.push_str(&format!(".{micros:06}"));
    }
    text.push_str("+00:00");
    text
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A parameter's value, with null read as absent.
fn present<'a>(parameters: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    parameters.get(name).filter(|value| !value.is_null())
}

fn timezone_parameter(
    parameters: &Map<String, Value>,
    default_timezone: &str,
) -> Result<Tz, TimerError> {
    match present(parameters, "timezone") {
        None => Tz::from_str(default_timezone).map_err(|_| TimerError::UnknownDefaultTimezone {
            timezone: default_timezone.to_owned(),
        }),
        Some(Value::String(name)) => Tz::from_str(name).map_err(|_| TimerError::UnknownTimezone {
            timezone: name.clone(),
        }),
        Some(other) => Err(TimerError::WrongType {
            parameter: "timezone",
            expected: "a string",
            found: json_type(other),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// IntervalTimer

fn interval_parameters(parameters: &Map<String, Value>) -> Result<TimeDelta, TimerError> {
    let unit_seconds: i64 = match present(parameters, "unit") {
        None => return Err(TimerError::MissingParameter { parameter: "unit" }),
        Some(Value::String(unit)) => match unit.as_str() {
            "weeks" => 7 * 86_400,
            "days" => 86_400,
            "hours" => 3_600,
            "minutes" => 60,
            "seconds" => 1,
            _ => return Err(TimerError::UnknownUnit { unit: unit.clone() }),
        },
        Some(other) => {
            return Err(TimerError::WrongType {
                parameter: "unit",
                expected: "a string",
                found: json_type(other),
            });
        }
    };
    let delta = match present(parameters, "delta") {
        None => return Err(TimerError::MissingParameter { parameter: "delta" }),
        Some(Value::Number(number)) => number,
        Some(other) => {
            return Err(TimerError::WrongType {
                parameter: "delta",
                expected: "an integer",
                found: json_type(other),
            });
        }
    };
    let invalid = |reason| TimerError::InvalidDelta {
        delta: delta.to_string(),
        reason,
    };
    if delta.is_f64() {
        return Err(invalid("must be an integer"));
    }
    // An integer that is not an i64 is a u64 beyond i64::MAX: far too long anyway.
    let count = delta
        .as_i64()
        .ok_or_else(|| invalid("the interval is longer than 999999999 days"))?;
    if count <= 0 {
        return Err(invalid("must be greater than 0"));
    }
    count
        .checked_mul(unit_seconds)
        .filter(|seconds| *seconds <= MAX_INTERVAL_SECONDS)
        .and_then(TimeDelta::try_seconds)
        .ok_or_else(|| invalid("the interval is longer than 999999999 days"))
}

fn next_interval(
    start: DateTime<Utc>,
    every: TimeDelta,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    const NANOS: i128 = 1_000_000_000;
    let every_nanos = i128::from(every.num_seconds()) * NANOS;
    if every_nanos <= 0 {
        return None;
    }
    let elapsed = after.signed_duration_since(start);
    let elapsed_nanos =
        i128::from(elapsed.num_seconds()) * NANOS + i128::from(elapsed.subsec_nanos());
    // The smallest k >= 1 with k * every > elapsed.
    let k = if elapsed_nanos < every_nanos {
        1
    } else {
        elapsed_nanos / every_nanos + 1
    };
    let offset_seconds = i64::try_from(k.checked_mul(i128::from(every.num_seconds()))?).ok()?;
    start.checked_add_signed(TimeDelta::try_seconds(offset_seconds)?)
}

// ---------------------------------------------------------------------------------------------
// DateTimer

fn date_parameter(
    parameters: &Map<String, Value>,
    timezone: Tz,
) -> Result<DateTime<Utc>, TimerError> {
    let text = match present(parameters, "date") {
        None => return Err(TimerError::MissingParameter { parameter: "date" }),
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(TimerError::WrongType {
                parameter: "date",
                expected: "a string",
                found: json_type(other),
            });
        }
    };
    let invalid = |reason: String| TimerError::InvalidDate {
        date: text.clone(),
        reason,
    };
    let (local, offset) = parse_date_time(text).map_err(invalid)?;
    match offset {
        Some(offset) => offset
            .from_local_datetime(&local)
            .single()
            .map(|at| at.to_utc())
            .ok_or_else(|| invalid("the date is out of range".to_owned())),
        None => local_to_utc(timezone, local)
            .ok_or_else(|| invalid(format!("no such local time in {timezone}"))),
    }
}

/// A naive local time in `tz` as UTC: the first occurrence of an ambiguous time; a time in a gap
/// read with the offset in force before the gap.
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    if let Some(at) = tz.from_local_datetime(&local).earliest() {
        return Some(at.to_utc());
    }
    // Gaps are at most a day long (Pacific/Apia skipped 2011-12-30); step back out of it.
    (1..=48).find_map(|hours| {
        let before = local.checked_sub_signed(TimeDelta::hours(hours))?;
        let offset = tz.from_local_datetime(&before).latest()?.offset().fix();
        let utc =
            local.checked_sub_signed(TimeDelta::seconds(i64::from(offset.local_minus_utc())))?;
        Some(utc.and_utc())
    })
}

/// Reads the date-time forms StackStorm users write:
/// `YYYY-MM-DD`, then optionally `T` or spaces and `HH:MM[:SS[.fraction]]`, then optionally
/// (after optional spaces) `Z`, `UTC`, `GMT`, `±HH`, `±HHMM` or `±HH:MM`. `/` may separate the
/// date's parts instead of `-`.
fn parse_date_time(text: &str) -> Result<(NaiveDateTime, Option<FixedOffset>), String> {
    let mut input = Scanner::new(text.trim());
    let year = input
        .number(4, 4)
        .ok_or("expected a four-digit year first")?;
    let separator = match input.peek() {
        Some(b @ (b'-' | b'/')) => b,
        _ => return Err("expected `-` after the year".to_owned()),
    };
    input.bump();
    let month = input.number(1, 2).ok_or("expected the month")?;
    if !input.eat(separator) {
        return Err(format!(
            "expected `{}` after the month",
            char::from(separator)
        ));
    }
    let day = input.number(1, 2).ok_or("expected the day")?;
    let date = i32::try_from(year)
        .ok()
        .and_then(|year| NaiveDate::from_ymd_opt(year, month, day))
        .ok_or_else(|| format!("there is no day {year:04}-{month:02}-{day:02}"))?;

    let mut time = NaiveTime::MIN;
    let had_spaces = input.spaces() > 0;
    let has_time = if had_spaces {
        input.peek().is_some_and(|b| b.is_ascii_digit())
    } else {
        input.eat(b'T') || input.eat(b't')
    };
    if has_time {
        let hour = input.number(1, 2).ok_or("expected the hour")?;
        if !input.eat(b':') {
            return Err("expected `:` after the hour".to_owned());
        }
        let minute = input.number(2, 2).ok_or("expected two-digit minutes")?;
        let (mut second, mut nanos) = (0, 0);
        if input.eat(b':') {
            second = input.number(2, 2).ok_or("expected two-digit seconds")?;
            if input.eat(b'.') || input.eat(b',') {
                let digits = input.digits();
                if digits.is_empty() {
                    return Err("expected digits after the decimal point".to_owned());
                }
                // Nanosecond precision; further digits are dropped.
                nanos = digits
                    .bytes()
                    .chain(std::iter::repeat(b'0'))
                    .take(9)
                    .fold(0, |acc, b| acc * 10 + u32::from(b - b'0'));
            }
        }
        time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)
            .ok_or_else(|| format!("there is no time {hour:02}:{minute:02}:{second:02}"))?;
    }

    input.spaces();
    let offset = parse_offset(&mut input)?;
    input.spaces();
    if !input.at_end() {
        return Err(format!("unexpected `{}`", input.rest()));
    }
    Ok((date.and_time(time), offset))
}

fn parse_offset(input: &mut Scanner<'_>) -> Result<Option<FixedOffset>, String> {
    let rest = input.rest();
    for name in ["z", "utc", "gmt"] {
        if rest.len() >= name.len()
            && rest.is_char_boundary(name.len())
            && rest[..name.len()].eq_ignore_ascii_case(name)
        {
            input.advance(name.len());
            return Ok(FixedOffset::east_opt(0));
        }
    }
    let sign = match input.peek() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Ok(None),
    };
    input.bump();
    let hours = input
        .number(2, 2)
        .ok_or("expected two-digit offset hours")?;
    let colon = input.eat(b':');
    let minutes = match input.number(2, 2) {
        Some(minutes) => minutes,
        None if colon => return Err("expected two-digit offset minutes".to_owned()),
        None => 0,
    };
    if hours > 23 || minutes > 59 {
        return Err(format!("offset {hours:02}:{minutes:02} is out of range"));
    }
    let seconds = i32::try_from(hours * 3_600 + minutes * 60).unwrap_or(i32::MAX);
    Ok(FixedOffset::east_opt(sign * seconds))
}

/// A cursor over ASCII text for the date parser.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    fn advance(&mut self, by: usize) {
        self.pos += by;
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        if hit {
            self.bump();
        }
        hit
    }

    fn spaces(&mut self) -> usize {
        let start = self.pos;
        while self.peek() == Some(b' ') {
            self.bump();
        }
        self.pos - start
    }

    /// The run of ASCII digits at the cursor (possibly empty), consumed.
    fn digits(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.bump();
        }
        // Digits are ASCII, so both ends are character boundaries.
        self.text.get(start..self.pos).unwrap_or_default()
    }

    /// A number of at least `min` and at most `max` digits (further digits are left for the
    /// next read); `None`, consuming nothing, if there are fewer than `min`.
    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.pos;
        while self.pos - start < max && self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.bump();
        }
        let digits = self.text.get(start..self.pos).unwrap_or_default();
        if digits.len() < min {
            self.pos = start;
            return None;
        }
        digits.parse().ok()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// CronTimer

/// The eight cron fields, most significant first (the discriminant is the position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Year,
    Month,
    Day,
    Week,
    DayOfWeek,
    Hour,
    Minute,
    Second,
}

impl Field {
    const ALL: [Field; 8] = [
        Field::Year,
        Field::Month,
        Field::Day,
        Field::Week,
        Field::DayOfWeek,
        Field::Hour,
        Field::Minute,
        Field::Second,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::Year => "year",
            Field::Month => "month",
            Field::Day => "day",
            Field::Week => "week",
            Field::DayOfWeek => "day_of_week",
            Field::Hour => "hour",
            Field::Minute => "minute",
            Field::Second => "second",
        }
    }

    fn min(self) -> u32 {
        match self {
            Field::Year => 1970,
            Field::Month | Field::Day | Field::Week => 1,
            Field::DayOfWeek | Field::Hour | Field::Minute | Field::Second => 0,
        }
    }

    /// The largest value; `day`'s real maximum is the month's length.
    fn max(self) -> u32 {
        match self {
            Field::Year => 9999,
            Field::Month => 12,
            Field::Day => 31,
            Field::Week => 53,
            Field::DayOfWeek => 6,
            Field::Hour => 23,
            Field::Minute | Field::Second => 59,
        }
    }

    /// What an omitted field less significant than every given field means.
    fn default_expression(self) -> &'static str {
        match self {
            Field::Year | Field::Week | Field::DayOfWeek => "*",
            Field::Month | Field::Day => "1",
            Field::Hour | Field::Minute | Field::Second => "0",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Field::Month => "`*`, `*/n`, `a`, `a-b`, `a-b/n`, `a/n` or month names like `jan-mar`",
            Field::Day => {
                "`*`, `*/n`, `a`, `a-b`, `a-b/n`, `a/n`, `last` or `1st mon` .. `last sun`"
            }
            Field::DayOfWeek => {
                "`*`, `*/n`, `a`, `a-b`, `a-b/n`, `a/n` or weekday names like `mon-fri`"
            }
            _ => "`*`, `*/n`, `a`, `a-b`, `a-b/n` or `a/n`",
        }
    }
}

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Which occurrence of a weekday in a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occurrence {
    /// 0 = first … 4 = fifth.
    Nth(u32),
    Last,
}

/// One expression of a comma-separated cron field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    /// `*` or `*/step`.
    All { step: Option<u32> },
    /// `first`, `first-last`, `first-last/step` or `first/step` (to the field's maximum).
    Range {
        first: u32,
        last: Option<u32>,
        step: Option<u32>,
    },
    /// `last` in `day`.
    LastDayOfMonth,
    /// `1st mon` … `last sun` in `day`; weekday 0 = Monday.
    WeekdayOfMonth {
        occurrence: Occurrence,
        weekday: u32,
    },
}

/// The shape of one month, for the month-dependent `day` expressions.
#[derive(Debug, Clone, Copy)]
struct MonthShape {
    /// Weekday of the 1st, 0 = Monday.
    first_weekday: u32,
    days: u32,
}

impl MonthShape {
    fn of(year: i32, month: u32) -> Option<Self> {
        let first = NaiveDate::from_ymd_opt(year, month, 1)?;
        let next = if month == 12 {
            NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        let days = u32::try_from(next.signed_duration_since(first).num_days()).ok()?;
        Some(Self {
            first_weekday: first.weekday().num_days_from_monday(),
            days,
        })
    }
}

impl Expr {
    /// The smallest value ≥ `from` in `min..=max` this expression allows.
    fn next_value(&self, from: u32, min: u32, max: u32, month: Option<MonthShape>) -> Option<u32> {
        match *self {
            Expr::All { step } => stepped(from.max(min), min, step, max),
            Expr::Range { first, last, step } => {
                let low = min.max(first);
                let high = last.map_or(max, |last| last.min(max));
                stepped(from.max(low), low, step, high)
            }
            Expr::LastDayOfMonth => month.map(|m| m.days).filter(|days| *days >= from),
            Expr::WeekdayOfMonth {
                occurrence,
                weekday,
            } => {
                let month = month?;
                let first_hit = (weekday + 7 - month.first_weekday) % 7 + 1;
                let day = match occurrence {
                    Occurrence::Nth(n) => first_hit + 7 * n,
                    Occurrence::Last => first_hit + (month.days - first_hit) / 7 * 7,
                };
                (day <= month.days && day >= from).then_some(day)
            }
        }
    }
}

/// `value` rounded up onto `base + k × step`, if that is still ≤ `high`.
fn stepped(value: u32, base: u32, step: Option<u32>, high: u32) -> Option<u32> {
    let value = match step {
        Some(step) if step > 0 => value + (step - (value - base) % step) % step,
        _ => value,
    };
    (value <= high).then_some(value)
}

/// A compiled cron field: the union of its expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Matcher {
    exprs: Vec<Expr>,
}

impl Matcher {
    fn parse(field: Field, text: &str) -> Result<Self, TimerError> {
        let error = |reason: String| TimerError::InvalidCronField {
            field: field.name(),
            expression: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(error("the expression is empty".to_owned()));
        }
        let exprs = trimmed
            .split(',')
            .map(|part| parse_expr(field, part.trim()).map_err(error))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { exprs })
    }

    fn next_value(&self, from: u32, min: u32, max: u32, month: Option<MonthShape>) -> Option<u32> {
        self.exprs
            .iter()
            .filter_map(|expr| expr.next_value(from, min, max, month))
            .min()
    }

    fn matches(&self, value: u32, min: u32, max: u32) -> bool {
        self.next_value(value, min, max, None) == Some(value)
    }
}

fn parse_expr(field: Field, part: &str) -> Result<Expr, String> {
    if part.is_empty() {
        return Err("a list item is empty".to_owned());
    }
    let lower = part.to_ascii_lowercase();
    let unrecognized = || {
        format!(
            "`{part}` is not a {} expression (expected {})",
            field.name(),
            field.hint()
        )
    };

    if let Some(rest) = lower.strip_prefix('*') {
        let step = match rest.strip_prefix('/') {
            None if rest.is_empty() => None,
            None => return Err(unrecognized()),
            Some(step) => Some(parse_number(step).ok_or_else(unrecognized)?),
        };
        return check_all(field, step);
    }

    if field == Field::Day {
        if lower == "last" {
            return Ok(Expr::LastDayOfMonth);
        }
        if let Some((position, weekday)) = lower.split_once(' ') {
            let occurrence = match position {
                "1st" => Occurrence::Nth(0),
                "2nd" => Occurrence::Nth(1),
                "3rd" => Occurrence::Nth(2),
                "4th" => Occurrence::Nth(3),
                "5th" => Occurrence::Nth(4),
                "last" => Occurrence::Last,
                _ => return Err(unrecognized()),
            };
            let weekday = name_index(&WEEKDAY_NAMES, weekday.trim_start())
                .ok_or_else(|| format!("unknown weekday name `{}`", weekday.trim_start()))?;
            return Ok(Expr::WeekdayOfMonth {
                occurrence,
                weekday,
            });
        }
    }

    if lower.starts_with(|c: char| c.is_ascii_alphabetic()) {
        let (names, offset, kind) = match field {
            Field::Month => (&MONTH_NAMES[..], 1, "month"),
            Field::DayOfWeek => (&WEEKDAY_NAMES[..], 0, "weekday"),
            _ => return Err(unrecognized()),
        };
        if lower.contains('/') {
            return Err(format!("`{part}`: a step cannot follow {kind} names"));
        }
        let lookup = |name: &str| {
            name_index(names, name)
                .map(|index| index + offset)
                .ok_or_else(|| format!("unknown {kind} name `{name}`"))
        };
        let (first, last) = match lower.split_once('-') {
            Some((first, last)) => (lookup(first)?, Some(lookup(last)?)),
            None => (lookup(&lower)?, None),
        };
        return check_range(field, first, last, None);
    }

    let (range, step) = match lower.split_once('/') {
        Some((range, step)) => (range, Some(parse_number(step).ok_or_else(unrecognized)?)),
        None => (lower.as_str(), None),
    };
    let (first, last) = match range.split_once('-') {
        Some((first, last)) => (
            parse_number(first).ok_or_else(unrecognized)?,
            Some(parse_number(last).ok_or_else(unrecognized)?),
        ),
        None => (parse_number(range).ok_or_else(unrecognized)?, None),
    };
    check_range(field, first, last, step)
}

/// A non-empty run of ASCII digits; values past `u32::MAX` saturate (and fail range checks).
fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u32, |acc, b| {
        acc.saturating_mul(10).saturating_add(u32::from(b - b'0'))
    }))
}

fn name_index(names: &[&str], name: &str) -> Option<u32> {
    names
        .iter()
        .position(|candidate| *candidate == name)
        .and_then(|index| u32::try_from(index).ok())
}

fn check_step(step: Option<u32>, span: u32) -> Result<(), String> {
    match step {
        Some(0) => Err("the step must be greater than 0".to_owned()),
        Some(step) if step > span => Err(format!(
            "the step {step} is larger than the range of the expression ({span})"
        )),
        _ => Ok(()),
    }
}

fn check_all(field: Field, step: Option<u32>) -> Result<Expr, String> {
    check_step(step, field.max() - field.min())?;
    Ok(Expr::All { step })
}

fn check_range(
    field: Field,
    first: u32,
    last: Option<u32>,
    step: Option<u32>,
) -> Result<Expr, String> {
    let (min, max) = (field.min(), field.max());
    for value in std::iter::once(first).chain(last) {
        if value < min || value > max {
            return Err(format!("the value {value} is out of range {min}-{max}"));
        }
    }
    if let Some(last) = last
        && first > last
    {
        return Err(format!("the range {first}-{last} starts after it ends"));
    }
    // A single value is the range first-first; `first/step` runs to the maximum.
    let last = match (last, step) {
        (None, None) => Some(first),
        (last, _) => last,
    };
    check_step(step, last.unwrap_or(max) - first)?;
    Ok(Expr::Range { first, last, step })
}

/// A compiled `core.st2.CronTimer`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CronSpec {
    year: Matcher,
    month: Matcher,
    day: Matcher,
    week: Matcher,
    day_of_week: Matcher,
    hour: Matcher,
    minute: Matcher,
    second: Matcher,
}

impl CronSpec {
    fn from_parameters(parameters: &Map<String, Value>) -> Result<Self, TimerError> {
        // APScheduler's defaulting: omitted fields after the least significant given one take
        // their default (minimum), the others are `*`.
        let least_significant_given = Field::ALL
            .iter()
            .rposition(|field| present(parameters, field.name()).is_some());
        let compile = |field: Field| {
            let text = match present(parameters, field.name()) {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Number(number)) if !number.is_f64() => number.to_string(),
                Some(other) => {
                    return Err(TimerError::WrongType {
                        parameter: field.name(),
                        expected: "a string or an integer",
                        found: json_type(other),
                    });
                }
                None if least_significant_given.is_some_and(|last| field as usize > last) => {
                    field.default_expression().to_owned()
                }
                None => "*".to_owned(),
            };
            Matcher::parse(field, &text)
        };
        Ok(Self {
            year: compile(Field::Year)?,
            month: compile(Field::Month)?,
            day: compile(Field::Day)?,
            week: compile(Field::Week)?,
            day_of_week: compile(Field::DayOfWeek)?,
            hour: compile(Field::Hour)?,
            minute: compile(Field::Minute)?,
            second: compile(Field::Second)?,
        })
    }

    fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz).naive_local();
        let mut from = local
            .with_nanosecond(0)?
            .checked_add_signed(TimeDelta::seconds(1))?;
        loop {
            let candidate = self.next_local(from)?;
            // Skip local times that do not exist, and the second occurrence of repeated ones
            // (an ambiguous time fires once, at its first occurrence).
            if let Some(at) = tz.from_local_datetime(&candidate).earliest()
                && at.to_utc() > after
            {
                return Some(at.to_utc());
            }
            from = candidate.checked_add_signed(TimeDelta::seconds(1))?;
        }
    }

    /// The first local time ≥ `from` (whole seconds) matching every field, up to the end of
    /// [`LAST_CRON_YEAR`]. Each step either returns or moves `t` forward to the start of the next
    /// candidate year, month, day, hour or minute, so the loop ends.
    fn next_local(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let midnight = |year: i32, month: u32, day: u32| {
            NaiveDate::from_ymd_opt(year, month, day).map(|date| date.and_time(NaiveTime::MIN))
        };
        let mut t = from.with_nanosecond(0)?;
        loop {
            let date = t.date();
            let (year, month, day) = (date.year(), date.month(), date.day());
            if year > LAST_CRON_YEAR {
                return None;
            }
            if year < FIRST_CRON_YEAR {
                t = midnight(FIRST_CRON_YEAR, 1, 1)?;
                continue;
            }
            let year_value = u32::try_from(year).ok()?;
            match self.year.next_value(year_value, 1970, 9999, None) {
                None => return None,
                Some(next) if next != year_value => {
                    t = midnight(i32::try_from(next).ok()?, 1, 1)?;
                    continue;
                }
                Some(_) => {}
            }
            match self.month.next_value(month, 1, 12, None) {
                None => {
                    t = midnight(year.checked_add(1)?, 1, 1)?;
                    continue;
                }
                Some(next) if next != month => {
                    t = midnight(year, next, 1)?;
                    continue;
                }
                Some(_) => {}
            }
            let shape = MonthShape::of(year, month)?;
            match self.next_day(date, shape) {
                None => {
                    t = midnight(year, month, shape.days)?
                        .checked_add_signed(TimeDelta::days(1))?;
                    continue;
                }
                Some(next) if next != day => {
                    t = midnight(year, month, next)?;
                    continue;
                }
                Some(_) => {}
            }
            let (hour, minute) = (t.hour(), t.minute());
            match self.hour.next_value(hour, 0, 23, None) {
                None => {
                    t = date.succ_opt()?.and_time(NaiveTime::MIN);
                    continue;
                }
                Some(next) if next != hour => {
                    t = date.and_hms_opt(next, 0, 0)?;
                    continue;
                }
                Some(_) => {}
            }
            match self.minute.next_value(minute, 0, 59, None) {
                None => {
                    t = date
                        .and_hms_opt(hour, 0, 0)?
                        .checked_add_signed(TimeDelta::hours(1))?;
                    continue;
                }
                Some(next) if next != minute => {
                    t = date.and_hms_opt(hour, next, 0)?;
                    continue;
                }
                Some(_) => {}
            }
            match self.second.next_value(t.second(), 0, 59, None) {
                None => {
                    t = date
                        .and_hms_opt(hour, minute, 0)?
                        .checked_add_signed(TimeDelta::minutes(1))?;
                }
                Some(second) => return date.and_hms_opt(hour, minute, second),
            }
        }
    }

    /// The first day ≥ `date`'s day in its month matching `day`, `week` and `day_of_week`.
    fn next_day(&self, date: NaiveDate, shape: MonthShape) -> Option<u32> {
        let mut from = date.day();
        while let Some(day) = self.day.next_value(from, 1, shape.days, Some(shape)) {
            let candidate = date.with_day(day)?;
            if self.week.matches(candidate.iso_week().week(), 1, 53)
                && self
                    .day_of_week
                    .matches(candidate.weekday().num_days_from_monday(), 0, 6)
            {
                return Some(day);
            }
            from = day + 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test timestamps are valid RFC 3339")
            .to_utc()
    }

    fn cron(params: Value) -> TimerSchedule {
        let params = params.as_object().cloned().unwrap_or_default();
        TimerSchedule::from_trigger(CRON_TIMER, &params, "UTC").expect("valid cron parameters")
    }

    fn cron_error(params: Value) -> TimerError {
        let params = params.as_object().cloned().unwrap_or_default();
        TimerSchedule::from_trigger(CRON_TIMER, &params, "UTC").expect_err("invalid parameters")
    }

    #[test]
    fn expressions_parse_to_their_shapes() {
        assert_eq!(
            parse_expr(Field::Minute, "*/5"),
            Ok(Expr::All { step: Some(5) })
        );
        assert_eq!(
            parse_expr(Field::Hour, "9-17/2"),
            Ok(Expr::Range {
                first: 9,
                last: Some(17),
                step: Some(2)
            })
        );
        assert_eq!(
            parse_expr(Field::Minute, "5/20"),
            Ok(Expr::Range {
                first: 5,
                last: None,
                step: Some(20)
            })
        );
        assert_eq!(
            parse_expr(Field::DayOfWeek, "Mon-FRI"),
            Ok(Expr::Range {
                first: 0,
                last: Some(4),
                step: None
            })
        );
        assert_eq!(
            parse_expr(Field::Month, "dec"),
            Ok(Expr::Range {
                first: 12,
                last: Some(12),
                step: None
            })
        );
        assert_eq!(parse_expr(Field::Day, "LAST"), Ok(Expr::LastDayOfMonth));
        assert_eq!(
            parse_expr(Field::Day, "last   fri"),
            Ok(Expr::WeekdayOfMonth {
                occurrence: Occurrence::Last,
                weekday: 4
            })
        );
    }

    #[test]
    fn expressions_reject_what_apscheduler_rejects() {
        for (field, text) in [
            (Field::Month, "13"),
            (Field::Month, "0"),
            (Field::DayOfWeek, "7"),
            (Field::Hour, "24"),
            (Field::Minute, "*/0"),
            (Field::Minute, "*/60"),
            (Field::Minute, "10-5"),
            (Field::Minute, "50/20"),
            (Field::Day, "32"),
            (Field::Week, "54"),
            (Field::Year, "1969"),
            (Field::Hour, "mon"),
            (Field::DayOfWeek, "monday"),
            (Field::DayOfWeek, "fri-mon"),
            (Field::DayOfWeek, "mon-fri/2"),
            (Field::Day, "6th mon"),
            (Field::Day, "last monday"),
            (Field::Hour, "last"),
            (Field::Second, "1-"),
            (Field::Second, "-1"),
            (Field::Second, "99999999999999999999"),
        ] {
            assert!(
                parse_expr(field, text).is_err(),
                "{} accepted `{text}`",
                field.name()
            );
        }
    }

    #[test]
    fn steps_count_from_the_start_of_the_range() {
        let expr = parse_expr(Field::Day, "*/5").expect("valid");
        let days: Vec<u32> = (1..=31)
            .filter(|day| expr.next_value(*day, 1, 31, None) == Some(*day))
            .collect();
        assert_eq!(days, [1, 6, 11, 16, 21, 26, 31]);
        let expr = parse_expr(Field::Minute, "7-30/10").expect("valid");
        assert_eq!(expr.next_value(0, 0, 59, None), Some(7));
        assert_eq!(expr.next_value(8, 0, 59, None), Some(17));
        assert_eq!(expr.next_value(28, 0, 59, None), None);
    }

    #[test]
    fn weekday_of_month_positions() {
        // May 2024 starts on a Wednesday and has 31 days.
        let may = MonthShape::of(2024, 5).expect("valid month");
        let at = |text: &str| {
            parse_expr(Field::Day, text)
                .expect("valid")
                .next_value(1, 1, 31, Some(may))
        };
        assert_eq!(at("1st wed"), Some(1));
        assert_eq!(at("1st mon"), Some(6));
        assert_eq!(at("5th fri"), Some(31));
        assert_eq!(at("5th sat"), None);
        assert_eq!(at("last sun"), Some(26));
        assert_eq!(at("last"), Some(31));
    }

    #[test]
    fn omitted_fields_follow_the_defaulting_rule() {
        // {month: 6}: year `*`, then day 1, hour/minute/second 0.
        let schedule = cron(json!({"month": "jun"}));
        assert_eq!(
            schedule.next_after(utc("2024-07-01T00:00:00Z")),
            Some(utc("2025-06-01T00:00:00Z"))
        );
        // {year: 2030} fires once, at its first second.
        let schedule = cron(json!({"year": 2030}));
        assert_eq!(
            schedule.next_after(utc("2024-07-01T00:00:00Z")),
            Some(utc("2030-01-01T00:00:00Z"))
        );
        assert_eq!(schedule.next_after(utc("2030-01-01T00:00:00Z")), None);
        // No field at all: every second.
        let schedule = cron(json!({}));
        assert_eq!(
            schedule.next_after(utc("2024-07-01T00:00:00.5Z")),
            Some(utc("2024-07-01T00:00:01Z"))
        );
    }

    #[test]
    fn week_field_is_the_iso_week() {
        // ISO week 1 of 2025 starts on Monday 2024-12-30.
        let schedule = cron(json!({"week": 1, "hour": 0}));
        assert_eq!(
            schedule.next_after(utc("2024-12-01T00:00:00Z")),
            Some(utc("2024-12-30T00:00:00Z"))
        );
        // Week 53 exists in 2026 (it starts on Monday 2026-12-28) but not in 2025.
        let schedule = cron(json!({"week": 53, "hour": 0}));
        assert_eq!(
            schedule.next_after(utc("2025-01-01T00:00:00Z")),
            Some(utc("2026-12-28T00:00:00Z"))
        );
    }

    #[test]
    fn null_fields_count_as_omitted() {
        let schedule = cron(json!({"hour": 3, "minute": null, "timezone": null}));
        assert_eq!(
            schedule.next_after(utc("2024-05-01T03:00:00Z")),
            Some(utc("2024-05-02T03:00:00Z"))
        );
    }

    #[test]
    fn cron_type_errors_name_the_field() {
        let error = cron_error(json!({"minute": true}));
        assert_eq!(error.parameter(), Some("minute"));
        assert_eq!(
            error.to_string(),
            "parameter `minute` must be a string or an integer, got a boolean"
        );
        assert_eq!(cron_error(json!({"hour": 1.5})).parameter(), Some("hour"));
        assert_eq!(cron_error(json!({"hour": -1})).parameter(), Some("hour"));
    }

    #[test]
    fn dates_parse_in_the_forms_users_write() {
        let naive = |text: &str| {
            let (at, offset) = parse_date_time(text).expect("readable date");
            (at.to_string(), offset.map(|o| o.local_minus_utc()))
        };
        assert_eq!(
            naive("2014-07-30 05:04:20"),
            ("2014-07-30 05:04:20".to_owned(), None)
        );
        assert_eq!(
            naive("2014-07-30T05:04:20Z"),
            ("2014-07-30 05:04:20".to_owned(), Some(0))
        );
        assert_eq!(
            naive("2014-07-30T05:04:20.25+05:30"),
            ("2014-07-30 05:04:20.250".to_owned(), Some(19_800))
        );
        assert_eq!(
            naive("2014-07-30 05:04 -0800"),
            ("2014-07-30 05:04:00".to_owned(), Some(-28_800))
        );
        assert_eq!(
            naive("2014/7/3 5:04:20 UTC"),
            ("2014-07-03 05:04:20".to_owned(), Some(0))
        );
        assert_eq!(
            naive("2014-07-30"),
            ("2014-07-30 00:00:00".to_owned(), None)
        );
        for bad in [
            "",
            "tomorrow",
            "2014-13-01",
            "2014-02-30 00:00:00",
            "2014-07-30 25:00:00",
            "2014-07-30T",
            "2014-07-30 05:04:20 +25:00",
            "2014-07-30 05:04:20 nonsense",
            "14-07-30",
        ] {
            assert!(parse_date_time(bad).is_err(), "accepted `{bad}`");
        }
    }

    #[test]
    fn naive_dates_in_a_dst_gap_or_overlap() {
        let tz = Tz::America__New_York;
        let gap = NaiveDate::from_ymd_opt(2024, 3, 10)
            .and_then(|d| d.and_hms_opt(2, 30, 0))
            .expect("valid");
        assert_eq!(local_to_utc(tz, gap), Some(utc("2024-03-10T07:30:00Z")));
        let overlap = NaiveDate::from_ymd_opt(2024, 11, 3)
            .and_then(|d| d.and_hms_opt(1, 30, 0))
            .expect("valid");
        assert_eq!(local_to_utc(tz, overlap), Some(utc("2024-11-03T05:30:00Z")));
    }

    #[test]
    fn intervals_never_overflow() {
        let schedule = TimerSchedule::from_trigger(
            INTERVAL_TIMER,
            json!({"unit": "days", "delta": 999_999_999})
                .as_object()
                .expect("object"),
            "UTC",
        )
        .expect("the longest interval is allowed");
        // 999999999 days from the epoch is past chrono's last representable instant.
        assert_eq!(schedule.next_after(DateTime::<Utc>::UNIX_EPOCH), None);
        assert_eq!(schedule.next_after(DateTime::<Utc>::MAX_UTC), None);
        let schedule = TimerSchedule::from_trigger(
            INTERVAL_TIMER,
            json!({"unit": "seconds", "delta": 1})
                .as_object()
                .expect("object"),
            "UTC",
        )
        .expect("valid");
        assert_eq!(schedule.next_after(DateTime::<Utc>::MAX_UTC), None);
        assert_eq!(
            schedule.next_after(DateTime::<Utc>::MIN_UTC),
            Some(DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(1))
        );
    }

    #[test]
    fn python_str_of_utc_datetimes() {
        assert_eq!(
            python_utc_string(utc("2024-05-01T10:00:00.000001Z")),
            "2024-05-01 10:00:00.000001+00:00"
        );
        assert_eq!(
            python_utc_string(utc("0999-01-02T03:04:05Z")),
            "0999-01-02 03:04:05+00:00"
        );
    }
}
