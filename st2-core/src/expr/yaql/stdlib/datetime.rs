//! Datetimes and timespans: constructors, properties (`dt.year`, `ts.hours`), `format`,
//! `replace`, `now()`. Datetimes are always timezone-aware (a datetime without an offset is
//! UTC, as yaql makes it).

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};
use std::fmt::Write as _;

use super::{Builder, Call, D, Kind, T, o, p};
use crate::expr::yaql::eval::{Ev, R, overflow, value_error};
use crate::expr::yaql::value::YaqlValue;

const F: Kind = Kind::Function;
const M: Kind = Kind::Method;

const US_PER_DAY: i64 = 86_400_000_000;

fn offset_of(c: &Call, i: usize) -> R<FixedOffset> {
    let us = match c.v(i) {
        YaqlValue::Timespan(us) => *us,
        _ => 0,
    };
    fixed_offset(us)
}

fn fixed_offset(us: i64) -> R<FixedOffset> {
    i32::try_from(us.div_euclid(1_000_000))
        .ok()
        .and_then(FixedOffset::east_opt)
        .ok_or_else(|| {
            value_error("offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24).")
        })
}

fn build(
    year: i64,
    month: i64,
    day: i64,
    hms: (i64, i64, i64),
    micro: i64,
    tz: FixedOffset,
) -> R<DateTime<FixedOffset>> {
    if !(1..=9999).contains(&year) {
        return Err(value_error(format!("year {year} is out of range")));
    }
    if !(1..=12).contains(&month) {
        return Err(value_error("month must be in 1..12"));
    }
    let (h, m, s) = hms;
    if !(0..24).contains(&h) {
        return Err(value_error("hour must be in 0..23"));
    }
    if !(0..60).contains(&m) {
        return Err(value_error("minute must be in 0..59"));
    }
    if !(0..60).contains(&s) {
        return Err(value_error("second must be in 0..59"));
    }
    if !(0..1_000_000).contains(&micro) {
        return Err(value_error("microsecond must be in 0..999999"));
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)
        .ok_or_else(|| value_error("day is out of range for month"))?;
    let time = NaiveTime::from_hms_micro_opt(h as u32, m as u32, s as u32, micro as u32)
        .ok_or_else(|| value_error("invalid time"))?;
    tz.from_local_datetime(&date.and_time(time))
        .single()
        .ok_or_else(|| value_error("invalid datetime"))
}

fn datetime_parts(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let tz = offset_of(c, 7)?;
    build(
        c.int(0),
        c.int(1),
        c.int(2),
        (c.int(3), c.int(4), c.int(5)),
        c.int(6),
        tz,
    )
    .map(YaqlValue::DateTime)
}

fn utc() -> FixedOffset {
    Utc.fix()
}

fn datetime_timestamp(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let tz = offset_of(c, 1)?;
    let micros = match c.v(0) {
        YaqlValue::Int(i) => i.checked_mul(1_000_000).ok_or_else(overflow)?,
        YaqlValue::Float(f) => {
            let us = (f * 1e6).round_ties_even();
            if !us.is_finite() || us.abs() > 9.0e18 {
                return Err(value_error("timestamp out of range for platform time_t"));
            }
            us as i64
        }
        _ => 0,
    };
    match DateTime::from_timestamp_micros(micros) {
        Some(d) => in_range(d.with_timezone(&tz)),
        None => Err(value_error("year is out of range")),
    }
}

/// Python `strptime` directives translated to chrono's.
fn chrono_format(fmt: &str) -> String {
    fmt.replace(".%f", "%.f").replace("%f", "%6f")
}

fn parse_with_format(s: &str, fmt: &str) -> Option<DateTime<FixedOffset>> {
    let f = chrono_format(fmt);
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, s, StrftimeItems::new(&f)).ok()?;
    // Python's strptime defaults: 1900-01-01 00:00:00.
    if parsed.year().is_none() && parsed.year_mod_100().is_none() && parsed.isoyear().is_none() {
        parsed.set_year(1900).ok()?;
    }
    if parsed.month().is_none() && parsed.ordinal().is_none() && parsed.week_from_sun().is_none() {
        parsed.set_month(1).ok()?;
    }
    if parsed.day().is_none() && parsed.ordinal().is_none() && parsed.weekday().is_none() {
        parsed.set_day(1).ok()?;
    }
    if parsed.hour_mod_12().is_none() {
        parsed.set_hour(0).ok()?;
    } else if parsed.hour_div_12().is_none() {
        parsed.set_ampm(false).ok()?;
    }
    if parsed.minute().is_none() {
        parsed.set_minute(0).ok()?;
    }
    if parsed.second().is_none() {
        parsed.set_second(0).ok()?;
    }
    let naive = parsed
        .to_naive_date()
        .ok()?
        .and_time(parsed.to_naive_time().ok()?);
    let tz = match parsed.offset() {
        Some(off) => FixedOffset::east_opt(off)?,
        None => utc(),
    };
    tz.from_local_datetime(&naive).single()
}

/// A practical subset of what `dateutil.parser.parse` accepts: ISO 8601 and RFC 2822/3339
/// forms, `YYYY/MM/DD`, `MM/DD/YYYY`, month names, with an optional time and offset.
fn parse_free(s: &str) -> Option<DateTime<FixedOffset>> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d);
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(t) {
        return Some(d);
    }
    let normalized = if t.ends_with('Z') || t.ends_with('z') {
        format!("{}+00:00", &t[..t.len() - 1])
    } else if let Some(rest) = t.strip_suffix(" UTC").or_else(|| t.strip_suffix(" GMT")) {
        format!("{rest}+00:00")
    } else {
        t.to_owned()
    };
    let dates = [
        "%Y-%m-%d",
        "%Y/%m/%d",
        "%m/%d/%Y",
        "%d %B %Y",
        "%d %b %Y",
        "%B %d %Y",
        "%b %d %Y",
        "%B %d, %Y",
        "%b %d, %Y",
        "%Y%m%d",
    ];
    let times = [
        "T%H:%M:%S%.f",
        "T%H:%M:%S",
        "T%H:%M",
        " %H:%M:%S%.f",
        " %H:%M:%S",
        " %H:%M",
        "T%H%M%S",
    ];
    let zones = ["%:z", "%z", " %:z", " %z"];
    for d in dates {
        for tm in times {
            for z in zones {
                if let Ok(v) = DateTime::parse_from_str(&normalized, &format!("{d}{tm}{z}")) {
                    return Some(v);
                }
            }
            if let Ok(v) = NaiveDateTime::parse_from_str(&normalized, &format!("{d}{tm}")) {
                return utc().from_local_datetime(&v).single();
            }
        }
        if let Ok(v) = NaiveDate::parse_from_str(&normalized, d) {
            return utc()
                .from_local_datetime(&v.and_time(NaiveTime::MIN))
                .single();
        }
    }
    for tm in ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"] {
        if let Ok(time) = NaiveTime::parse_from_str(&normalized, tm) {
            let today = Utc::now().date_naive();
            return utc().from_local_datetime(&today.and_time(time)).single();
        }
    }
    None
}

fn datetime_string(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let s = c.s(0);
    let parsed = match c.v(1) {
        YaqlValue::Str(f) if !f.is_empty() => parse_with_format(s, f)
            .ok_or_else(|| value_error(format!("time data {s:?} does not match format {f:?}")))?,
        _ => parse_free(s).ok_or_else(|| value_error(format!("Unknown string format: {s}")))?,
    };
    Ok(YaqlValue::DateTime(parsed))
}

fn timespan(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let units = [US_PER_DAY, 3_600_000_000, 60_000_000, 1_000_000, 1_000, 1];
    let mut total: i64 = 0;
    for (i, unit) in units.iter().enumerate() {
        let part = c.int(i).checked_mul(*unit).ok_or_else(overflow)?;
        total = total.checked_add(part).ok_or_else(overflow)?;
    }
    Ok(YaqlValue::Timespan(total))
}

fn now(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let tz = offset_of(c, 0)?;
    Ok(YaqlValue::DateTime(Utc::now().with_timezone(&tz)))
}

fn localtz(_: &mut Ev<'_>, _: &Call) -> R<YaqlValue> {
    let secs = chrono::Local::now().offset().local_minus_utc();
    Ok(YaqlValue::Timespan(i64::from(secs) * 1_000_000))
}

fn utctz(_: &mut Ev<'_>, _: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Timespan(0))
}

/// Python `strftime` on a datetime: `%f` is microseconds, `%Z` the zone name (`UTC` for
/// UTC, empty for a plain offset), and unknown directives stay as written.
pub(crate) fn strftime(d: &DateTime<FixedOffset>, fmt: &str) -> R<String> {
    const KNOWN: &str = "aAbBcCdDeFgGhHIjklmMnpPrRStTuUVwWxXyYzsf%";
    let mut translated = String::with_capacity(fmt.len() + 8);
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            translated.push(c);
            continue;
        }
        match chars.next() {
            Some('Z') => {
                if d.offset().local_minus_utc() == 0 {
                    translated.push_str("UTC");
                }
            }
            Some('f') => translated.push_str("%6f"),
            Some(k) if KNOWN.contains(k) => {
                translated.push('%');
                translated.push(k);
            }
            Some(other) => {
                translated.push_str("%%");
                translated.push(other);
            }
            None => translated.push_str("%%"),
        }
    }
    let items: Vec<Item<'_>> = StrftimeItems::new(&translated).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(value_error(format!("Invalid format string {fmt:?}")));
    }
    let mut out = String::new();
    write!(out, "{}", d.format_with_items(items.into_iter()))
        .map_err(|_| value_error(format!("Invalid format string {fmt:?}")))?;
    Ok(out)
}

/// A datetime within Python's range (years 1 to 9999).
pub(crate) fn in_range(d: DateTime<FixedOffset>) -> R<YaqlValue> {
    if (1..=9999).contains(&d.year()) {
        Ok(YaqlValue::DateTime(d))
    } else {
        Err(value_error("date value out of range"))
    }
}

fn format_(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let YaqlValue::DateTime(d) = c.v(0) else {
        return Err(value_error("not a datetime"));
    };
    let s = strftime(d, c.s(1))?;
    ev.string(s)
}

fn replace(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let YaqlValue::DateTime(d) = c.v(0) else {
        return Err(value_error("not a datetime"));
    };
    let pick = |i: usize, current: i64| -> i64 {
        match c.v(i) {
            YaqlValue::Null => current,
            _ => c.int(i),
        }
    };
    let tz = match c.v(8) {
        YaqlValue::Timespan(us) => fixed_offset(*us)?,
        _ => *d.offset(),
    };
    let micro = i64::from(d.nanosecond() / 1000 % 1_000_000);
    build(
        pick(1, i64::from(d.year())),
        pick(2, i64::from(d.month())),
        pick(3, i64::from(d.day())),
        (
            pick(4, i64::from(d.hour())),
            pick(5, i64::from(d.minute())),
            pick(6, i64::from(d.second())),
        ),
        pick(7, micro),
        tz,
    )
    .map(YaqlValue::DateTime)
}

fn is_datetime(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(matches!(c.v(0), YaqlValue::DateTime(_))))
}

fn is_timespan(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(matches!(c.v(0), YaqlValue::Timespan(_))))
}

/// yaql's `utc` property: the datetime moved back by its offset, keeping the offset.
fn shifted_utc(d: &DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
    d.checked_sub_signed(chrono::TimeDelta::seconds(i64::from(
        d.offset().local_minus_utc(),
    )))
}

/// `#property#name` for datetimes and timespans; `None` when there is no such property.
pub(crate) fn property(v: &YaqlValue, name: &str) -> Option<R<YaqlValue>> {
    match v {
        YaqlValue::Timespan(us) => {
            let us = *us;
            let f = us as f64;
            Some(Ok(match name {
                "microseconds" => YaqlValue::Int(us),
                "milliseconds" => YaqlValue::Float(f / 1e3),
                "seconds" => YaqlValue::Float(f / 1e6),
                "minutes" => YaqlValue::Float(f / 6e7),
                "hours" => YaqlValue::Float(f / 3.6e9),
                "days" => YaqlValue::Float(f / 8.64e10),
                _ => return None,
            }))
        }
        YaqlValue::DateTime(d) => Some(Ok(match name {
            "year" => YaqlValue::Int(i64::from(d.year())),
            "month" => YaqlValue::Int(i64::from(d.month())),
            "day" => YaqlValue::Int(i64::from(d.day())),
            "hour" => YaqlValue::Int(i64::from(d.hour())),
            "minute" => YaqlValue::Int(i64::from(d.minute())),
            "second" => YaqlValue::Int(i64::from(d.second())),
            "microsecond" => YaqlValue::Int(i64::from(d.nanosecond() / 1000 % 1_000_000)),
            "weekday" => YaqlValue::Int(i64::from(d.weekday().num_days_from_monday())),
            "date" => {
                let midnight = d.date_naive().and_time(NaiveTime::MIN);
                match d.offset().from_local_datetime(&midnight).single() {
                    Some(v) => YaqlValue::DateTime(v),
                    None => return Some(Err(value_error("invalid date"))),
                }
            }
            "time" => {
                let t = d.time();
                YaqlValue::Timespan(
                    i64::from(t.num_seconds_from_midnight()) * 1_000_000
                        + i64::from(t.nanosecond() / 1000 % 1_000_000),
                )
            }
            "offset" => YaqlValue::Timespan(i64::from(d.offset().local_minus_utc()) * 1_000_000),
            "utc" => match shifted_utc(d) {
                Some(v) => YaqlValue::DateTime(v),
                None => return Some(Err(overflow())),
            },
            "timestamp" => match shifted_utc(d) {
                Some(v) => YaqlValue::Float(v.timestamp_micros() as f64 / 1e6),
                None => return Some(Err(overflow())),
            },
            _ => return None,
        })),
        _ => None,
    }
}

pub(crate) fn register(lib: &mut Builder) {
    lib.add(
        "datetime",
        F,
        &[
            p("year", T::Int),
            p("month", T::Int),
            p("day", T::Int),
            o("hour", T::Int, D::I(0)),
            o("minute", T::Int, D::I(0)),
            o("second", T::Int, D::I(0)),
            o("microsecond", T::Int, D::I(0)),
            o("offset", T::Timespan, D::Absent),
        ],
        datetime_parts,
    );
    lib.add(
        "datetime",
        F,
        &[p("timestamp", T::Num), o("offset", T::Timespan, D::Absent)],
        datetime_timestamp,
    );
    lib.add(
        "datetime",
        F,
        &[p("string", T::Str), o("format", T::StrN, D::Null)],
        datetime_string,
    );
    lib.add(
        "timespan",
        F,
        &[
            o("days", T::Int, D::I(0)),
            o("hours", T::Int, D::I(0)),
            o("minutes", T::Int, D::I(0)),
            o("seconds", T::Integer, D::I(0)),
            o("milliseconds", T::Integer, D::I(0)),
            o("microseconds", T::Integer, D::I(0)),
        ],
        timespan,
    );
    lib.add("now", F, &[o("offset", T::Timespan, D::Absent)], now);
    lib.add("localtz", F, &[], localtz);
    lib.add("utctz", F, &[], utctz);
    lib.add(
        "format",
        M,
        &[p("dt", T::DateTime), p("format", T::Str)],
        format_,
    );
    lib.add(
        "replace",
        M,
        &[
            p("dt", T::DateTime),
            o("year", T::IntN, D::Null),
            o("month", T::IntN, D::Null),
            o("day", T::IntN, D::Null),
            o("hour", T::IntN, D::Null),
            o("minute", T::IntN, D::Null),
            o("second", T::IntN, D::Null),
            o("microsecond", T::IntN, D::Null),
            o("offset", T::TimespanN, D::Null),
        ],
        replace,
    );
    lib.add("isDatetime", F, &[p("value", T::Any)], is_datetime);
    lib.add("isTimespan", F, &[p("value", T::Any)], is_timespan);
}
