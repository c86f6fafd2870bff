//! Timestamps as text without `core::fmt`: a record's document carries a dozen of them, and
//! chrono writes each through the formatting machinery a character at a time (about a tenth
//! of the CPU an execution costs went there). The text is exactly chrono's; the years and
//! leap seconds these do not cover are left to chrono.

use chrono::{Datelike, Timelike};
use serde::Serializer;

use super::Timestamp;

/// How many digits of the fraction of a second.
#[derive(Clone, Copy)]
enum Fraction {
    /// As chrono's `SecondsFormat::AutoSi`: none, 3, 6 or 9, the fewest that hold it exactly.
    Auto,
    /// Always 6 (microseconds, truncated).
    Micros,
}

/// The longest text written: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const LONGEST: usize = 30;

/// `t` as `YYYY-MM-DDTHH:MM:SS[.fraction]Z` into `buf`; its length, or `None` for a year
/// outside 0..=9999 or a leap second.
fn write(t: &Timestamp, fraction: Fraction, buf: &mut [u8; LONGEST]) -> Option<usize> {
    fn two(buf: &mut [u8], at: usize, n: u32) {
        // Each value written here is below 100.
        buf[at] = b'0' + (n / 10 % 10) as u8;
        buf[at + 1] = b'0' + (n % 10) as u8;
    }
    fn digits(buf: &mut [u8], at: usize, mut n: u32, count: usize) {
        for i in (0..count).rev() {
            buf[at + i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let nano = t.nanosecond();
    if nano >= 1_000_000_000 {
        return None;
    }
    digits(buf, 0, year, 4);
    buf[4] = b'-';
    two(buf, 5, t.month());
    buf[7] = b'-';
    two(buf, 8, t.day());
    buf[10] = b'T';
    two(buf, 11, t.hour());
    buf[13] = b':';
    two(buf, 14, t.minute());
    buf[16] = b':';
    two(buf, 17, t.second());
    let mut len = 19;
    let (value, count) = match fraction {
        Fraction::Auto if nano == 0 => (0, 0),
        Fraction::Auto if nano.is_multiple_of(1_000_000) => (nano / 1_000_000, 3),
        Fraction::Auto if nano.is_multiple_of(1_000) => (nano / 1_000, 6),
        Fraction::Auto => (nano, 9),
        Fraction::Micros => (nano / 1_000, 6),
    };
    if count > 0 {
        buf[len] = b'.';
        digits(buf, len + 1, value, count);
        len += 1 + count;
    }
    buf[len] = b'Z';
    Some(len + 1)
}

/// `#[serde(serialize_with)]` for a [`Timestamp`]: the text chrono's `Serialize` writes.
pub(crate) fn serialize<S: Serializer>(t: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; LONGEST];
    match write(t, Fraction::Auto, &mut buf).and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
        Some(text) => serializer.serialize_str(text),
        None => serde::Serialize::serialize(t, serializer),
    }
}

/// [`serialize`] for a field that borrows its timestamp.
pub(crate) fn serialize_ref<S: Serializer>(
    t: &&Timestamp,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serialize(t, serializer)
}

/// [`serialize`] for an optional timestamp (`null` for none, as chrono's).
pub(crate) fn serialize_option<S: Serializer>(
    t: &Option<Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serializer.serialize_some(&As(t)),
        None => serializer.serialize_none(),
    }
}

/// [`serialize_option`] for a field that borrows its timestamp.
pub(crate) fn serialize_option_ref<S: Serializer>(
    t: &&Option<Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serialize_option(t, serializer)
}

/// A timestamp that serialises through [`serialize`].
struct As<'a>(&'a Timestamp);

impl serde::Serialize for As<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(self.0, serializer)
    }
}

/// StackStorm's isotime text, `2024-05-01T10:00:00.123456Z` (always six digits): chrono's
/// `%Y-%m-%dT%H:%M:%S%.6fZ`.
pub(crate) fn isotime(t: &Timestamp) -> String {
    let mut buf = [0u8; LONGEST];
    match write(t, Fraction::Micros, &mut buf).and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
        Some(text) => text.to_owned(),
        None => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};

    fn chrono_text(t: &Timestamp) -> String {
        serde_json::to_string(t).expect("chrono serialises")
    }

    fn ours(t: &Timestamp) -> String {
        let mut out = Vec::new();
        serialize(t, &mut serde_json::Serializer::new(&mut out)).expect("serialises");
        String::from_utf8(out).expect("utf-8")
    }

    fn samples() -> Vec<Timestamp> {
        let mut all = Vec::new();
        let nanos = [
            0,
            1,
            7,
            999,
            1_000,
            120_000,
            999_000,
            1_000_000,
            5_000_000,
            100_000_000,
            123_456_000,
            123_456_789,
            999_999_999,
        ];
        let bases = [
            Utc.with_ymd_and_hms(2026, 11, 27, 20, 32, 15).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2000, 2, 29, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(42, 6, 7, 8, 9, 10).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 12, 31, 12, 0, 0).unwrap(),
        ];
        for base in bases {
            for n in nanos {
                all.push(base + chrono::TimeDelta::nanoseconds(n));
            }
        }
        // A spread of instants over the years chrono and we both cover, by a fixed stride.
        let mut secs: i64 = -62_000_000_000;
        while secs < 253_000_000_000 {
            let nano = u32::try_from(secs.rem_euclid(1_000_000_007) % 1_000_000_000).unwrap();
            all.push(DateTime::from_timestamp(secs, nano).expect("in range"));
            secs += 7_777_777_777;
        }
        // A leap second, which chrono writes as second 60.
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("leap second");
        all.push(Utc.from_utc_datetime(&leap));
        all
    }

    #[test]
    fn serialises_as_chrono_does() {
        for t in samples() {
            assert_eq!(ours(&t), chrono_text(&t), "{t:?}");
        }
        let some: Option<Timestamp> = samples().first().copied();
        let mut out = Vec::new();
        serialize_option(&some, &mut serde_json::Serializer::new(&mut out)).expect("some");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&some).unwrap()
        );
        let mut out = Vec::new();
        serialize_option(&None, &mut serde_json::Serializer::new(&mut out)).expect("none");
        assert_eq!(String::from_utf8(out).unwrap(), "null");
    }

    #[test]
    fn isotime_is_chronos_six_digit_format() {
        for t in samples() {
            assert_eq!(
                isotime(&t),
                t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                "{t:?}"
            );
        }
    }
}
