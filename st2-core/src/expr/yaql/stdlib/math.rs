//! Operators and math: arithmetic with Python's rules (int/int floor division, Python modulo,
//! no implicit coercion), comparisons with null ordering, membership, and yaql's math
//! functions.

use std::collections::VecDeque;

use super::{Builder, Call, D, Kind, T, o, p};
use crate::expr::ErrorKind;
use crate::expr::yaql::eval::{Ev, R, err, no_matching, overflow, type_error, value_error};
use crate::expr::yaql::parser::BinOp;
use crate::expr::yaql::stream::{self, Chain};
use crate::expr::yaql::value::{YaqlValue, py_eq};

use std::cmp::Ordering as Cmp;

const F: Kind = Kind::Function;

/// A number operand (booleans are not numbers for arithmetic).
#[derive(Clone, Copy)]
pub(crate) enum Num {
    I(i64),
    F(f64),
}

pub(crate) fn num(v: &YaqlValue) -> Option<Num> {
    match v {
        YaqlValue::Int(i) => Some(Num::I(*i)),
        YaqlValue::Float(f) => Some(Num::F(*f)),
        _ => None,
    }
}

impl Num {
    pub(crate) fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

fn zero_div(msg: &str) -> crate::expr::yaql::eval::Error {
    err(ErrorKind::ZeroDivision, msg)
}

/// Exact comparison of an int with a float (Python compares them without rounding).
fn cmp_int_float(i: i64, f: f64) -> Option<Cmp> {
    if f.is_nan() {
        return None;
    }
    if f >= 9.223_372_036_854_776e18 {
        return Some(Cmp::Less);
    }
    if f < -9.223_372_036_854_776e18 {
        return Some(Cmp::Greater);
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Cmp::Equal => {
            let frac = f - t;
            Some(if frac > 0.0 {
                Cmp::Less
            } else if frac < 0.0 {
                Cmp::Greater
            } else {
                Cmp::Equal
            })
        }
        other => Some(other),
    }
}

fn cmp_num(a: Num, b: Num) -> Option<Cmp> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::F(x), Num::F(y)) => x.partial_cmp(&y),
        (Num::I(x), Num::F(y)) => cmp_int_float(x, y),
        (Num::F(x), Num::I(y)) => cmp_int_float(y, x).map(Cmp::reverse),
    }
}

/// `<`, `>`, `<=`, `>=`: numbers, strings, datetimes, timespans, sets (subset), and null
/// (smaller than anything).
pub(crate) fn compare(op: BinOp, l: &YaqlValue, r: &YaqlValue) -> R<bool> {
    use YaqlValue as V;
    let from_ord = |c: Option<Cmp>| -> bool {
        match c {
            None => false,
            Some(c) => match op {
                BinOp::Lt => c == Cmp::Less,
                BinOp::Gt => c == Cmp::Greater,
                BinOp::Le => c != Cmp::Greater,
                _ => c != Cmp::Less,
            },
        }
    };
    Ok(match (l, r) {
        (V::Null, V::Null) => matches!(op, BinOp::Le | BinOp::Ge),
        (V::Null, _) => matches!(op, BinOp::Lt | BinOp::Le),
        (_, V::Null) => matches!(op, BinOp::Gt | BinOp::Ge),
        (V::Str(a), V::Str(b)) => from_ord(Some(a.cmp(b))),
        (V::DateTime(a), V::DateTime(b)) => from_ord(Some(a.cmp(b))),
        (V::Timespan(a), V::Timespan(b)) => from_ord(Some(a.cmp(b))),
        (V::Set(a), V::Set(b)) => match op {
            BinOp::Lt => a.len() < b.len() && a.is_subset(b),
            BinOp::Le => a.is_subset(b),
            BinOp::Gt => b.len() < a.len() && b.is_subset(a),
            _ => b.is_subset(a),
        },
        _ => match (num(l), num(r)) {
            (Some(a), Some(b)) => from_ord(cmp_num(a, b)),
            _ => return Err(no_matching(op.function_name())),
        },
    })
}

/// Ordering for sorting (`orderBy`): yaql's `<` and `>` operators.
pub(crate) fn sort_cmp(a: &YaqlValue, b: &YaqlValue) -> R<Cmp> {
    if compare(BinOp::Lt, a, b)? {
        Ok(Cmp::Less)
    } else if compare(BinOp::Gt, a, b)? {
        Ok(Cmp::Greater)
    } else {
        Ok(Cmp::Equal)
    }
}

/// `l in r`: substring for strings, membership for collections.
pub(crate) fn contains(ev: &mut Ev<'_>, l: &YaqlValue, r: &YaqlValue) -> R<YaqlValue> {
    match (l, r) {
        (YaqlValue::Str(a), YaqlValue::Str(b)) => Ok(YaqlValue::Bool(b.contains(&**a))),
        (_, YaqlValue::Set(s)) => Ok(YaqlValue::Bool(s.contains(l))),
        (_, YaqlValue::List(items)) => Ok(YaqlValue::Bool(items.iter().any(|x| py_eq(x, l)))),
        (_, coll) if stream::is_iterable(coll) => {
            let mut s = stream::iterate(coll)?;
            while let Some(item) = ev.pull(&mut *s)? {
                if py_eq(&item, l) {
                    return Ok(YaqlValue::Bool(true));
                }
            }
            Ok(YaqlValue::Bool(false))
        }
        _ => Err(no_matching("#operator_in")),
    }
}

fn checked(r: Option<i64>) -> R<YaqlValue> {
    r.map(YaqlValue::Int).ok_or_else(overflow)
}

fn timedelta_from_f64(us: f64) -> R<YaqlValue> {
    if !us.is_finite() || us.abs() >= 9.2e18 {
        return Err(overflow());
    }
    // Python rounds float microseconds half to even.
    Ok(YaqlValue::Timespan(us.round_ties_even() as i64))
}

fn add_micros(d: &chrono::DateTime<chrono::FixedOffset>, us: i64) -> R<YaqlValue> {
    match d.checked_add_signed(chrono::TimeDelta::microseconds(us)) {
        Some(v) => super::datetime::in_range(v),
        None => Err(value_error("date value out of range")),
    }
}

/// `+`.
pub(crate) fn add(ev: &mut Ev<'_>, l: YaqlValue, r: YaqlValue) -> R<YaqlValue> {
    use YaqlValue as V;
    match (&l, &r) {
        (V::Str(a), V::Str(b)) => {
            ev.check_str_len(a.len() + b.len())?;
            let mut s = String::with_capacity(a.len() + b.len());
            s.push_str(a);
            s.push_str(b);
            Ok(V::Str(s.into()))
        }
        (V::List(a), V::List(b)) => {
            ev.check_len(a.len() + b.len())?;
            let mut v = Vec::with_capacity(a.len() + b.len());
            v.extend_from_slice(a);
            v.extend_from_slice(b);
            ev.list(v)
        }
        (V::Set(a), V::Set(b)) => ev.set(a.iter().chain(b.iter()).cloned()),
        (V::Dict(a), V::Dict(b)) => {
            ev.check_len(a.len() + b.len())?;
            let mut out = a.to_builder();
            for (k, v) in b.iter() {
                out.insert(k.clone(), v.clone());
            }
            ev.dict(out)
        }
        (V::DateTime(d), V::Timespan(us)) | (V::Timespan(us), V::DateTime(d)) => add_micros(d, *us),
        (V::Timespan(a), V::Timespan(b)) => a.checked_add(*b).map(V::Timespan).ok_or_else(overflow),
        _ if stream::is_iterable(&l) && stream::is_iterable(&r) => {
            let depth = l.depth().max(r.depth());
            let parts: VecDeque<_> = [stream::iterate(&l)?, stream::iterate(&r)?].into();
            ev.lazy(Chain { parts }, depth)
        }
        _ => match (num(&l), num(&r)) {
            (Some(Num::I(a)), Some(Num::I(b))) => checked(a.checked_add(b)),
            (Some(a), Some(b)) => Ok(V::Float(a.f() + b.f())),
            _ => Err(no_matching("#operator_+")),
        },
    }
}

/// `-`.
pub(crate) fn sub(ev: &mut Ev<'_>, l: YaqlValue, r: YaqlValue) -> R<YaqlValue> {
    use YaqlValue as V;
    match (&l, &r) {
        (V::Set(a), V::Set(b)) => ev.set(a.iter().filter(|x| !b.contains(x)).cloned()),
        (V::DateTime(d), V::Timespan(us)) => match us.checked_neg() {
            Some(n) => add_micros(d, n),
            None => Err(overflow()),
        },
        (V::DateTime(a), V::DateTime(b)) => a
            .signed_duration_since(*b)
            .num_microseconds()
            .map(V::Timespan)
            .ok_or_else(overflow),
        (V::Timespan(a), V::Timespan(b)) => a.checked_sub(*b).map(V::Timespan).ok_or_else(overflow),
        _ => match (num(&l), num(&r)) {
            (Some(Num::I(a)), Some(Num::I(b))) => checked(a.checked_sub(b)),
            (Some(a), Some(b)) => Ok(V::Float(a.f() - b.f())),
            _ => Err(no_matching("#operator_-")),
        },
    }
}

fn int_like(v: &YaqlValue) -> Option<i64> {
    match v {
        YaqlValue::Int(i) => Some(*i),
        YaqlValue::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// `*`.
pub(crate) fn mul(ev: &mut Ev<'_>, l: YaqlValue, r: YaqlValue) -> R<YaqlValue> {
    use YaqlValue as V;
    if let (Some(a), Some(b)) = (num(&l), num(&r)) {
        return match (a, b) {
            (Num::I(a), Num::I(b)) => checked(a.checked_mul(b)),
            (a, b) => Ok(V::Float(a.f() * b.f())),
        };
    }
    match (&l, &r) {
        (V::Str(s), n) | (n, V::Str(s)) if int_like(n).is_some() => {
            let n = int_like(n).unwrap_or(0).max(0) as usize;
            ev.check_str_len(s.len().saturating_mul(n))?;
            Ok(V::Str(s.repeat(n).into()))
        }
        (V::List(items), n) | (n, V::List(items)) if int_like(n).is_some() => {
            let n = int_like(n).unwrap_or(0).max(0) as usize;
            if items.is_empty() {
                return ev.list(Vec::new());
            }
            ev.check_len(items.len().saturating_mul(n))?;
            let mut out = Vec::with_capacity(items.len() * n);
            for _ in 0..n {
                out.extend_from_slice(items);
            }
            ev.list(out)
        }
        (V::Timespan(us), n) | (n, V::Timespan(us)) if num(n).is_some() => match num(n) {
            Some(Num::I(k)) => checked(us.checked_mul(k)).map(|v| match v {
                V::Int(x) => V::Timespan(x),
                other => other,
            }),
            Some(Num::F(f)) => timedelta_from_f64(*us as f64 * f),
            None => Err(no_matching("#operator_*")),
        },
        _ => Err(no_matching("#operator_*")),
    }
}

fn floor_div(a: i64, b: i64) -> R<YaqlValue> {
    if b == 0 {
        return Err(zero_div("integer division or modulo by zero"));
    }
    let q = a.checked_div(b).ok_or_else(overflow)?;
    let r = a.wrapping_rem(b);
    Ok(YaqlValue::Int(if r != 0 && ((r < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }))
}

/// `/`: floor division for two ints, true division otherwise.
pub(crate) fn div(l: YaqlValue, r: YaqlValue) -> R<YaqlValue> {
    use YaqlValue as V;
    match (&l, &r) {
        (V::Timespan(a), V::Timespan(b)) => {
            if *b == 0 {
                return Err(zero_div("float division by zero"));
            }
            Ok(V::Float(*a as f64 / *b as f64))
        }
        (V::Timespan(us), n) => match num(n) {
            Some(n) => {
                if n.f() == 0.0 {
                    return Err(zero_div("division by zero"));
                }
                timedelta_from_f64(*us as f64 / n.f())
            }
            None => Err(no_matching("#operator_/")),
        },
        _ => match (num(&l), num(&r)) {
            (Some(Num::I(a)), Some(Num::I(b))) => floor_div(a, b),
            (Some(a), Some(b)) => {
                if b.f() == 0.0 {
                    return Err(zero_div("float division by zero"));
                }
                Ok(V::Float(a.f() / b.f()))
            }
            _ => Err(no_matching("#operator_/")),
        },
    }
}

/// Python's float `%`.
pub(crate) fn py_fmod(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) { m + b } else { m }
    } else {
        0.0_f64.copysign(b)
    }
}

/// `mod`: Python's modulo (the sign of the divisor).
pub(crate) fn modulo(l: YaqlValue, r: YaqlValue) -> R<YaqlValue> {
    match (num(&l), num(&r)) {
        (Some(Num::I(a)), Some(Num::I(b))) => {
            if b == 0 {
                return Err(zero_div("integer modulo by zero"));
            }
            let m = a.checked_rem(b).unwrap_or(0);
            Ok(YaqlValue::Int(if m != 0 && ((m < 0) != (b < 0)) {
                m + b
            } else {
                m
            }))
        }
        (Some(a), Some(b)) => {
            if b.f() == 0.0 {
                return Err(zero_div("float modulo"));
            }
            Ok(YaqlValue::Float(py_fmod(a.f(), b.f())))
        }
        _ => Err(no_matching("#operator_mod")),
    }
}

// ------------------------------------------------------------------------------------------
// Functions
// ------------------------------------------------------------------------------------------

/// Python `int(text)`: optional sign, digits with single underscores between them, blanks
/// around.
pub(crate) fn parse_py_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let n: i128 = clean.parse().ok()?;
    i64::try_from(if neg { -n } else { n }).ok()
}

/// Python `float(text)`.
pub(crate) fn parse_py_float(text: &str) -> Option<f64> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "nan" | "inf" | "infinity") {
        return lower.parse().ok();
    }
    if t.contains("__") || t.starts_with('_') || t.ends_with('_') {
        return None;
    }
    let clean: String = t.chars().filter(|c| *c != '_').collect();
    if !clean
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    clean.parse().ok()
}

fn int_(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let v = c.v(0);
    match v {
        YaqlValue::Null => Ok(YaqlValue::Int(0)),
        YaqlValue::Int(_) => Ok(v.clone()),
        YaqlValue::Bool(b) => Ok(YaqlValue::Int(i64::from(*b))),
        YaqlValue::Float(f) => {
            if f.is_nan() {
                Err(value_error("cannot convert float NaN to integer"))
            } else if f.is_infinite() {
                Err(value_error("cannot convert float infinity to integer"))
            } else if f.abs() >= 9.223_372_036_854_776e18 {
                Err(overflow())
            } else {
                Ok(YaqlValue::Int(f.trunc() as i64))
            }
        }
        YaqlValue::Str(s) => parse_py_int(s).map(YaqlValue::Int).ok_or_else(|| {
            value_error(format!(
                "invalid literal for int() with base 10: {}",
                crate::expr::python::str_repr(s)
            ))
        }),
        other => Err(type_error(format!(
            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
            other.type_name()
        ))),
    }
}

fn float_(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let v = c.v(0);
    match v {
        YaqlValue::Null => Ok(YaqlValue::Float(0.0)),
        YaqlValue::Int(i) => Ok(YaqlValue::Float(*i as f64)),
        YaqlValue::Bool(b) => Ok(YaqlValue::Float(f64::from(u8::from(*b)))),
        YaqlValue::Float(_) => Ok(v.clone()),
        YaqlValue::Str(s) => parse_py_float(s).map(YaqlValue::Float).ok_or_else(|| {
            value_error(format!(
                "could not convert string to float: {}",
                crate::expr::python::str_repr(s)
            ))
        }),
        other => Err(type_error(format!(
            "float() argument must be a string or a real number, not '{}'",
            other.type_name()
        ))),
    }
}

fn abs_(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    match num(c.v(0)) {
        Some(Num::I(i)) => checked(i.checked_abs()),
        Some(Num::F(f)) => Ok(YaqlValue::Float(f.abs())),
        None => Err(no_matching("abs")),
    }
}

fn sign(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let s = match num(c.v(0)) {
        Some(Num::I(i)) => i.signum(),
        Some(Num::F(f)) if f > 0.0 => 1,
        Some(Num::F(f)) if f < 0.0 => -1,
        _ => 0,
    };
    Ok(YaqlValue::Int(s))
}

/// Python `round(number, ndigits)`: half to even on the exact value.
fn round_(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let nd = c.int(1);
    match num(c.v(0)) {
        Some(Num::I(i)) => {
            if nd >= 0 {
                return Ok(YaqlValue::Int(i));
            }
            if nd < -18 {
                return Ok(YaqlValue::Int(0));
            }
            let p = 10i64.pow((-nd) as u32);
            let q = i.div_euclid(p);
            let r = i.rem_euclid(p);
            let up = r * 2 > p || (r * 2 == p && q % 2 != 0);
            let q = if up { q + 1 } else { q };
            checked(q.checked_mul(p))
        }
        Some(Num::F(f)) => {
            if !f.is_finite() || nd > 330 {
                return Ok(YaqlValue::Float(f));
            }
            if nd >= 0 {
                let text = format!("{:.*}", nd as usize, f);
                return Ok(YaqlValue::Float(text.parse().unwrap_or(f)));
            }
            if nd < -330 {
                return Ok(YaqlValue::Float(0.0_f64.copysign(f)));
            }
            let p = 10f64.powi((-nd) as i32);
            Ok(YaqlValue::Float((f / p).round_ties_even() * p))
        }
        None => Err(no_matching("round")),
    }
}

fn mod_inverse(a: i128, m: i128) -> Option<i128> {
    let (mut old_r, mut r) = (a.rem_euclid(m), m);
    let (mut old_s, mut s) = (1i128, 0i128);
    while r != 0 {
        let q = old_r / r;
        (old_r, r) = (r, old_r - q * r);
        (old_s, s) = (s, old_s - q * s);
    }
    if old_r != 1 {
        return None;
    }
    Some(old_s.rem_euclid(m))
}

fn pow_(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (Some(a), Some(b)) = (num(c.v(0)), num(c.v(1))) else {
        return Err(no_matching("pow"));
    };
    if let Some(m) = num(c.v(2)) {
        let (Num::I(a), Num::I(b), Num::I(m)) = (a, b, m) else {
            return Err(type_error(
                "pow() 3rd argument not allowed unless all arguments are integers",
            ));
        };
        if m == 0 {
            return Err(value_error("pow() 3rd argument cannot be 0"));
        }
        let m128 = i128::from(m).abs();
        let mut base = i128::from(a).rem_euclid(m128);
        let mut exp = i128::from(b);
        if exp < 0 {
            base = mod_inverse(base, m128)
                .ok_or_else(|| value_error("base is not invertible for the given modulus"))?;
            exp = -exp;
        }
        let mut result: i128 = 1 % m128;
        while exp > 0 {
            if exp & 1 == 1 {
                result = result * base % m128;
            }
            base = base * base % m128;
            exp >>= 1;
        }
        // The result takes the sign of the modulus.
        let r = if m < 0 && result != 0 {
            result - m128
        } else {
            result
        };
        return Ok(YaqlValue::Int(r as i64));
    }
    match (a, b) {
        (Num::I(x), Num::I(y)) if y >= 0 => {
            let e = u32::try_from(y).map_err(|_| overflow())?;
            checked(x.checked_pow(e))
        }
        (Num::I(0), Num::I(_)) => Err(zero_div("0.0 cannot be raised to a negative power")),
        _ => {
            let (x, y) = (a.f(), b.f());
            if x == 0.0 && y < 0.0 {
                return Err(zero_div("0.0 cannot be raised to a negative power"));
            }
            if x < 0.0 && y.fract() != 0.0 {
                return Err(value_error(
                    "a negative number raised to a fractional power is a complex number",
                ));
            }
            let r = x.powf(y);
            if r.is_infinite() && x.is_finite() && y.is_finite() {
                return Err(err(
                    ErrorKind::Limit,
                    "(34, 'Numerical result out of range')",
                ));
            }
            Ok(YaqlValue::Float(r))
        }
    }
}

fn max_(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (a, b) = (c.v(0), c.v(1));
    Ok(if compare(BinOp::Gt, b, a)? {
        b.clone()
    } else {
        a.clone()
    })
}

fn min_(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (a, b) = (c.v(0), c.v(1));
    Ok(if compare(BinOp::Gt, b, a)? {
        a.clone()
    } else {
        b.clone()
    })
}

fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x2545_f491, |d| d.as_nanos() as u64)
    })
}

fn random0(_: &mut Ev<'_>, _: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Float(
        (random_u64() >> 11) as f64 / (1u64 << 53) as f64,
    ))
}

fn random2(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (a, b) = (c.int(0), c.int(1));
    if b < a {
        return Err(value_error(format!(
            "empty range in randrange({a}, {})",
            b.saturating_add(1)
        )));
    }
    let span = (i128::from(b) - i128::from(a) + 1) as u128;
    let r = (u128::from(random_u64()) % span) as i128 + i128::from(a);
    Ok(YaqlValue::Int(r as i64))
}

fn bit_and(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Int(c.int(0) & c.int(1)))
}

fn bit_or(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Int(c.int(0) | c.int(1)))
}

fn bit_xor(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Int(c.int(0) ^ c.int(1)))
}

fn bit_not(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Int(!c.int(0)))
}

fn shift_left(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (v, n) = (c.int(0), c.int(1));
    if n < 0 {
        return Err(value_error("negative shift count"));
    }
    if v == 0 {
        return Ok(YaqlValue::Int(0));
    }
    if n >= 63 {
        return Err(overflow());
    }
    let r = v << n;
    if r >> n != v {
        return Err(overflow());
    }
    Ok(YaqlValue::Int(r))
}

fn shift_right(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (v, n) = (c.int(0), c.int(1));
    if n < 0 {
        return Err(value_error("negative shift count"));
    }
    Ok(YaqlValue::Int(v >> n.min(63)))
}

fn is_integer(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(matches!(c.v(0), YaqlValue::Int(_))))
}

fn is_number(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(matches!(
        c.v(0),
        YaqlValue::Int(_) | YaqlValue::Float(_)
    )))
}

fn bool_(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(c.v(0).truthy()))
}

fn is_boolean(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(matches!(c.v(0), YaqlValue::Bool(_))))
}

pub(crate) fn register(lib: &mut Builder) {
    lib.add("abs", F, &[p("op", T::Num)], abs_);
    lib.add("int", F, &[p("value", T::Any)], int_);
    lib.add("float", F, &[p("value", T::Any)], float_);
    lib.add("random", F, &[], random0);
    lib.add("random", F, &[p("from", T::Int), p("to", T::Int)], random2);
    lib.add(
        "bitwiseAnd",
        F,
        &[p("left", T::Int), p("right", T::Int)],
        bit_and,
    );
    lib.add(
        "bitwiseOr",
        F,
        &[p("left", T::Int), p("right", T::Int)],
        bit_or,
    );
    lib.add(
        "bitwiseXor",
        F,
        &[p("left", T::Int), p("right", T::Int)],
        bit_xor,
    );
    lib.add("bitwiseNot", F, &[p("arg", T::Int)], bit_not);
    lib.add(
        "shiftBitsLeft",
        F,
        &[p("value", T::Int), p("bitsNumber", T::Int)],
        shift_left,
    );
    lib.add(
        "shiftBitsRight",
        F,
        &[p("value", T::Int), p("bitsNumber", T::Int)],
        shift_right,
    );
    lib.add("max", F, &[p("a", T::Any), p("b", T::Any)], max_);
    lib.add("min", F, &[p("a", T::Any), p("b", T::Any)], min_);
    lib.add(
        "pow",
        F,
        &[p("a", T::Num), p("b", T::Num), o("c", T::NumN, D::Null)],
        pow_,
    );
    lib.add("sign", F, &[p("num", T::Num)], sign);
    lib.add(
        "round",
        F,
        &[p("number", T::Num), o("ndigits", T::Int, D::I(0))],
        round_,
    );
    lib.add("isInteger", F, &[p("value", T::Any)], is_integer);
    lib.add("isNumber", F, &[p("value", T::Any)], is_number);
    lib.add("bool", F, &[p("value", T::Any)], bool_);
    lib.add("isBoolean", F, &[p("value", T::Any)], is_boolean);
}
