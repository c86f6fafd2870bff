//! Jinja2's own filters, tests and Python string methods where minijinja's built-ins differ
//! from what StackStorm (Python Jinja2) does: `str()` of every value, `int`/`float` fallbacks,
//! `tojson` with sorted keys and HTML-safe escapes, case-insensitive `sort`/`unique`/`min`/`max`,
//! `title`, `truncate` with leeway, and a few more string methods.

use std::cmp::Ordering;

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

use super::args::{bind, flag};
use super::kv::KvLookup;
use super::value::{DumpOptions, as_f64, dumps, py_str, type_error, type_name, value_error};

fn arg(a: &[Option<Value>], i: usize) -> Option<&Value> {
    a.get(i).and_then(Option::as_ref)
}

/// `string(value)`: Python's `str()`.
pub fn string(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("string", args, &[], 0)?;
    Ok(Value::from(py_str(&value)?))
}

fn items_of(value: &Value) -> Result<Vec<Value>, Error> {
    if let Some(s) = value.as_str().filter(|_| value.kind() == ValueKind::String) {
        return Ok(s.chars().map(|c| Value::from(c.to_string())).collect());
    }
    if value.downcast_object_ref::<KvLookup>().is_some() {
        return Err(type_error("a datastore lookup cannot be iterated"));
    }
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "cannot iterate an undefined value",
        ));
    }
    Ok(value.try_iter()?.collect())
}

fn attribute(item: &Value, path: Option<&Value>) -> Result<Value, Error> {
    let Some(path) = path.filter(|p| !p.is_none()) else {
        return Ok(item.clone());
    };
    let mut v = item.clone();
    for part in py_str(path)?.split('.') {
        v = match part.parse::<usize>() {
            Ok(i) if v.kind() == ValueKind::Seq => v.get_item_by_index(i)?,
            _ => v.get_attr(part)?,
        };
    }
    Ok(v)
}

/// `join(d='', attribute=None)`: items joined by `str()`.
pub fn join(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("join", args, &["d", "attribute"], 0)?;
    let sep = arg(&a, 0).map(py_str).transpose()?.unwrap_or_default();
    let mut parts = Vec::new();
    for item in items_of(&value)? {
        parts.push(py_str(&attribute(&item, arg(&a, 1))?)?);
    }
    Ok(Value::from(parts.join(&sep)))
}

/// `tojson(indent=None)`: sorted keys, HTML-safe escapes.
pub fn tojson(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("tojson", args, &["indent"], 0)?;
    if value.downcast_object_ref::<KvLookup>().is_some() {
        return Err(type_error(
            "Object of type KeyValueLookup is not JSON serializable",
        ));
    }
    let opts = DumpOptions {
        sort_keys: true,
        html_safe: true,
        indent: arg(&a, 0)
            .and_then(Value::as_i64)
            .map(|n| " ".repeat(usize::try_from(n).unwrap_or(0))),
        ..DumpOptions::default()
    };
    Ok(Value::from_safe_string(dumps(&value, &opts)?))
}

/// Python's `int(text, base)` for the strings Jinja's `int` filter accepts.
fn parse_int(s: &str, base: u32) -> Option<i128> {
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let digits = match base {
        16 => digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
            .unwrap_or(digits),
        8 => digits
            .strip_prefix("0o")
            .or_else(|| digits.strip_prefix("0O"))
            .unwrap_or(digits),
        2 => digits
            .strip_prefix("0b")
            .or_else(|| digits.strip_prefix("0B"))
            .unwrap_or(digits),
        _ => digits,
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let cleaned: String = digits.chars().filter(|c| *c != '_').collect();
    let n = i128::from_str_radix(&cleaned, base).ok()?;
    Some(if neg { -n } else { n })
}

fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim().to_lowercase();
    match t.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => return Some(f64::NAN),
        _ => {}
    }
    if t.contains("__") || t.starts_with('_') || t.ends_with('_') {
        return None;
    }
    let cleaned: String = t.chars().filter(|c| *c != '_').collect();
    if cleaned.is_empty() || cleaned.contains("inf") || cleaned.contains("nan") {
        return None;
    }
    cleaned.parse::<f64>().ok()
}

/// `int(default=0, base=10)`.
pub fn int(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("int", args, &["default", "base"], 0)?;
    let default = arg(&a, 0).cloned().unwrap_or(Value::from(0));
    let base = arg(&a, 1).and_then(Value::as_i64).unwrap_or(10);
    let base = u32::try_from(base).unwrap_or(10);
    if let Some(kv) = value.downcast_object_ref::<KvLookup>() {
        // StackStorm's system lookups convert through float(); user lookups cannot convert.
        if kv.is_user() {
            return Ok(default);
        }
        return Ok(kv
            .value()
            .ok()
            .and_then(|s| parse_float(&s))
            .filter(|f| f.is_finite())
            .map_or(default, |f| Value::from(f.trunc() as i64)));
    }
    Ok(match value.kind() {
        ValueKind::Bool => Value::from(i64::from(value.is_true())),
        ValueKind::Number if value.is_integer() => value,
        ValueKind::Number => match as_f64(&value) {
            Some(f) if f.is_finite() => Value::from(f.trunc() as i64),
            _ => default,
        },
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            match parse_int(s, base) {
                Some(n) => Value::from(n),
                None => match parse_float(s).filter(|f| f.is_finite()) {
                    Some(f) => Value::from(f.trunc() as i64),
                    None => default,
                },
            }
        }
        _ => default,
    })
}

/// `float(default=0.0)`.
pub fn float(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("float", args, &["default"], 0)?;
    let default = arg(&a, 0).cloned().unwrap_or(Value::from(0.0));
    if let Some(kv) = value.downcast_object_ref::<KvLookup>() {
        if kv.is_user() {
            return Ok(default);
        }
        return Ok(kv
            .value()
            .ok()
            .and_then(|s| parse_float(&s))
            .map_or(default, Value::from));
    }
    Ok(match value.kind() {
        ValueKind::Bool | ValueKind::Number => as_f64(&value).map_or(default, Value::from),
        ValueKind::String => {
            parse_float(value.as_str().unwrap_or_default()).map_or(default, Value::from)
        }
        _ => default,
    })
}

/// Python's `round(x, n)`: round half to even on the exact binary value.
fn py_round(x: f64, ndigits: i32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    // Go through the shortest decimal text, as CPython's correctly-rounded algorithm does for
    // the cases that matter (2.675 → 2.67 because 2.675 is 2.67499999... in binary).
    let text = format!("{x:.*}", usize::try_from(ndigits.max(0) + 30).unwrap_or(30));
    let (int_part, frac_part) = text.split_once('.').unwrap_or((&text, ""));
    let nd = usize::try_from(ndigits.max(0)).unwrap_or(0);
    if frac_part.len() <= nd {
        return x;
    }
    let kept = format!("{int_part}.{}", &frac_part[..nd]);
    let rest = &frac_part[nd..];
    let truncated: f64 = kept.parse().unwrap_or(x);
    let step = 10f64.powi(-ndigits);
    let first = rest.as_bytes()[0];
    let tail_nonzero = rest[1..].bytes().any(|b| b != b'0');
    let round_up = match first.cmp(&b'5') {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => {
            if tail_nonzero {
                true
            } else {
                let last_digit = kept.bytes().rev().find(u8::is_ascii_digit).unwrap_or(b'0');
                (last_digit - b'0') % 2 == 1
            }
        }
    };
    if !round_up {
        return truncated;
    }
    let up = truncated.abs() + step;
    let s = format!("{up:.nd$}");
    let r: f64 = s.parse().unwrap_or(up);
    if x < 0.0 { -r } else { r }
}

/// `round(precision=0, method='common')`: always a float.
pub fn round(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("round", args, &["precision", "method"], 0)?;
    let precision = i32::try_from(arg(&a, 0).and_then(Value::as_i64).unwrap_or(0)).unwrap_or(0);
    let method = arg(&a, 1)
        .map(py_str)
        .transpose()?
        .unwrap_or_else(|| "common".into());
    let x = match value.kind() {
        ValueKind::Number | ValueKind::Bool => as_f64(&value).unwrap_or(0.0),
        _ => {
            return Err(type_error(format!(
                "type {} doesn't define __round__ method",
                type_name(&value)
            )));
        }
    };
    let scale = 10f64.powi(precision);
    Ok(Value::from(match method.as_str() {
        "common" => py_round(x, precision),
        "ceil" => (x * scale).ceil() / scale,
        "floor" => (x * scale).floor() / scale,
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "FilterArgumentError: method must be common, ceil or floor",
            ));
        }
    }))
}

/// Python `a + b` on numbers (and strings/lists, which Python allows but sum's 0 start rejects).
fn py_add(a: &Value, b: &Value) -> Result<Value, Error> {
    let numeric = |v: &Value| matches!(v.kind(), ValueKind::Number | ValueKind::Bool);
    if numeric(a) && numeric(b) {
        let ints = (a.is_integer() || a.kind() == ValueKind::Bool)
            && (b.is_integer() || b.kind() == ValueKind::Bool);
        if ints {
            let x = i128::try_from(a.clone()).unwrap_or(i128::from(a.is_true()));
            let y = i128::try_from(b.clone()).unwrap_or(i128::from(b.is_true()));
            return Ok(Value::from(x + y));
        }
        return Ok(Value::from(
            as_f64(a).unwrap_or(0.0) + as_f64(b).unwrap_or(0.0),
        ));
    }
    Err(type_error(format!(
        "unsupported operand type(s) for +: '{}' and '{}'",
        type_name(a),
        type_name(b)
    )))
}

/// `sum(attribute=None, start=0)`.
pub fn sum(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("sum", args, &["attribute", "start"], 0)?;
    let mut total = arg(&a, 1).cloned().unwrap_or(Value::from(0));
    for item in items_of(&value)? {
        total = py_add(&total, &attribute(&item, arg(&a, 0))?)?;
    }
    Ok(total)
}

/// Python ordering of two values (numbers with numbers, strings with strings, lists by item).
fn py_cmp(a: &Value, b: &Value) -> Result<Ordering, Error> {
    match (a.kind(), b.kind()) {
        (ValueKind::Number | ValueKind::Bool, ValueKind::Number | ValueKind::Bool) => {
            let (x, y) = (as_f64(a).unwrap_or(0.0), as_f64(b).unwrap_or(0.0));
            Ok(x.partial_cmp(&y).unwrap_or(Ordering::Equal))
        }
        (ValueKind::String, ValueKind::String) => Ok(a.as_str().cmp(&b.as_str())),
        (ValueKind::Seq, ValueKind::Seq) => {
            let xs: Vec<Value> = a.try_iter()?.collect();
            let ys: Vec<Value> = b.try_iter()?.collect();
            for (x, y) in xs.iter().zip(&ys) {
                let o = py_cmp(x, y)?;
                if o != Ordering::Equal {
                    return Ok(o);
                }
            }
            Ok(xs.len().cmp(&ys.len()))
        }
        _ => Err(type_error(format!(
            "'<' not supported between instances of '{}' and '{}'",
            type_name(a),
            type_name(b)
        ))),
    }
}

fn sort_key(v: &Value, case_sensitive: bool) -> Value {
    match v.as_str() {
        Some(s) if !case_sensitive && v.kind() == ValueKind::String => {
            Value::from(s.to_lowercase())
        }
        _ => v.clone(),
    }
}

/// `sort(reverse=False, case_sensitive=False, attribute=None)`; `attribute` may list several
/// comma-separated attributes.
pub fn sort(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("sort", args, &["reverse", "case_sensitive", "attribute"], 0)?;
    let reverse = flag(&a[0], false);
    let case_sensitive = flag(&a[1], false);
    let attrs: Vec<Option<Value>> = match arg(&a, 2) {
        Some(v) if v.kind() == ValueKind::String => v
            .as_str()
            .unwrap_or_default()
            .split(',')
            .map(|s| Some(Value::from(s.trim())))
            .collect(),
        Some(v) => vec![Some(v.clone())],
        None => vec![None],
    };
    let mut keyed = Vec::new();
    for item in items_of(&value)? {
        let mut keys = Vec::with_capacity(attrs.len());
        for attr in &attrs {
            keys.push(sort_key(&attribute(&item, attr.as_ref())?, case_sensitive));
        }
        keyed.push((keys, item));
    }
    let mut error = None;
    keyed.sort_by(|(x, _), (y, _)| {
        for (a, b) in x.iter().zip(y) {
            match py_cmp(a, b) {
                Ok(Ordering::Equal) => {}
                Ok(o) => return o,
                Err(e) => {
                    error.get_or_insert(e);
                    return Ordering::Equal;
                }
            }
        }
        Ordering::Equal
    });
    if let Some(e) = error {
        return Err(e);
    }
    if reverse {
        keyed.reverse();
    }
    Ok(Value::from(
        keyed.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    ))
}

/// `unique(case_sensitive=False, attribute=None)`: first occurrences, in order.
pub fn unique(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("unique", args, &["case_sensitive", "attribute"], 0)?;
    let case_sensitive = flag(&a[0], false);
    let mut seen: Vec<Value> = Vec::new();
    let mut out = Vec::new();
    for item in items_of(&value)? {
        let key = sort_key(&attribute(&item, arg(&a, 1))?, case_sensitive);
        if !seen.contains(&key) {
            seen.push(key);
            out.push(item);
        }
    }
    Ok(Value::from(out))
}

fn extreme(name: &str, value: Value, args: &[Value], want: Ordering) -> Result<Value, Error> {
    let a = bind(name, args, &["case_sensitive", "attribute"], 0)?;
    let case_sensitive = flag(&a[0], false);
    let mut best: Option<(Value, Value)> = None;
    for item in items_of(&value)? {
        let key = sort_key(&attribute(&item, arg(&a, 1))?, case_sensitive);
        best = match best {
            None => Some((key, item)),
            Some((bk, bv)) => {
                if py_cmp(&key, &bk)? == want {
                    Some((key, item))
                } else {
                    Some((bk, bv))
                }
            }
        };
    }
    Ok(best.map_or(Value::UNDEFINED, |(_, v)| v))
}

/// `min(case_sensitive=False, attribute=None)`; undefined for an empty sequence.
pub fn min(value: Value, args: &[Value]) -> Result<Value, Error> {
    extreme("min", value, args, Ordering::Less)
}

/// `max(case_sensitive=False, attribute=None)`; undefined for an empty sequence.
pub fn max(value: Value, args: &[Value]) -> Result<Value, Error> {
    extreme("max", value, args, Ordering::Greater)
}

/// `first`: undefined for an empty sequence.
pub fn first(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("first", args, &[], 0)?;
    Ok(items_of(&value)?
        .into_iter()
        .next()
        .unwrap_or(Value::UNDEFINED))
}

/// `last`: undefined for an empty sequence.
pub fn last(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("last", args, &[], 0)?;
    Ok(items_of(&value)?
        .into_iter()
        .last()
        .unwrap_or(Value::UNDEFINED))
}

/// `replace(old, new, count=None)`: Python's `str.replace` on `str(value)`.
pub fn replace(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("replace", args, &["old", "new", "count"], 2)?;
    let s = py_str(&value)?;
    let old = py_str(arg(&a, 0).unwrap_or(&Value::UNDEFINED))?;
    let new = py_str(arg(&a, 1).unwrap_or(&Value::UNDEFINED))?;
    let count = arg(&a, 2).and_then(Value::as_i64).filter(|c| *c >= 0);
    Ok(Value::from(py_replace(&s, &old, &new, count)))
}

/// Python's `str.replace`, including the empty-pattern case (insert between characters).
pub fn py_replace(s: &str, old: &str, new: &str, count: Option<i64>) -> String {
    let limit = count.map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(0));
    if old.is_empty() {
        let mut out = String::new();
        let mut done = 0;
        for c in s.chars() {
            if done < limit {
                out.push_str(new);
                done += 1;
            }
            out.push(c);
        }
        if done < limit {
            out.push_str(new);
        }
        return out;
    }
    s.replacen(old, new, limit)
}

/// `title`: Jinja's word-beginning capitalisation.
pub fn title(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("title", args, &[], 0)?;
    let s = py_str(&value)?;
    let mut out = String::with_capacity(s.len());
    let mut start_of_word = true;
    for c in s.chars() {
        if matches!(c, '-' | '(' | '{' | '[' | '<') || c.is_whitespace() {
            out.push(c);
            start_of_word = true;
        } else if start_of_word {
            out.extend(c.to_uppercase());
            start_of_word = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    Ok(Value::from(out))
}

/// `upper`.
pub fn upper(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("upper", args, &[], 0)?;
    Ok(Value::from(py_str(&value)?.to_uppercase()))
}

/// `lower`.
pub fn lower(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("lower", args, &[], 0)?;
    Ok(Value::from(py_str(&value)?.to_lowercase()))
}

/// `capitalize`.
pub fn capitalize(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("capitalize", args, &[], 0)?;
    let s = py_str(&value)?;
    let mut chars = s.chars();
    Ok(Value::from(match chars.next() {
        Some(c) => c
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }))
}

/// `trim(chars=None)`.
pub fn trim(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("trim", args, &["chars"], 0)?;
    let s = py_str(&value)?;
    Ok(Value::from(match arg(&a, 0).filter(|v| !v.is_none()) {
        Some(chars) => {
            let set: Vec<char> = py_str(chars)?.chars().collect();
            s.trim_matches(|c| set.contains(&c)).to_owned()
        }
        None => s.trim().to_owned(),
    }))
}

/// `truncate(length=255, killwords=False, end='...', leeway=5)`.
pub fn truncate(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind(
        "truncate",
        args,
        &["length", "killwords", "end", "leeway"],
        0,
    )?;
    let s = py_str(&value)?;
    let as_int = |v: Option<&Value>, d: i64| -> Result<i64, Error> {
        match v {
            None => Ok(d),
            Some(v) if v.is_integer() => Ok(v.as_i64().unwrap_or(d)),
            Some(v) => Err(type_error(format!(
                "'{}' object cannot be interpreted as an integer",
                type_name(v)
            ))),
        }
    };
    let length = as_int(arg(&a, 0), 255)?;
    let killwords = flag(&a[1], false);
    let end = arg(&a, 2)
        .map(py_str)
        .transpose()?
        .unwrap_or_else(|| "...".into());
    let leeway = as_int(arg(&a, 3), 5)?;
    let chars: Vec<char> = s.chars().collect();
    let len = chars.len() as i64;
    if length < end.chars().count() as i64 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "AssertionError: expected length >= len(end)",
        ));
    }
    if leeway < 0 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "AssertionError: expected leeway >= 0",
        ));
    }
    if len <= length + leeway {
        return Ok(Value::from(s));
    }
    let keep = usize::try_from(length - end.chars().count() as i64).unwrap_or(0);
    let head: String = chars[..keep.min(chars.len())].iter().collect();
    if killwords {
        return Ok(Value::from(format!("{head}{end}")));
    }
    let cut = head.rsplit_once(' ').map_or(head.as_str(), |(h, _)| h);
    Ok(Value::from(format!("{cut}{end}")))
}

/// `wordwrap(width=79, ...)` with Python's `ValueError` for a width below 1.
pub fn wordwrap_checked(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind(
        "wordwrap",
        args,
        &[
            "width",
            "break_long_words",
            "wrapstring",
            "break_on_hyphens",
        ],
        0,
    )?;
    if let Some(w) = arg(&a, 0).and_then(Value::as_i64)
        && w < 1
    {
        return Err(value_error(format!("invalid width {w} (must be > 0)")));
    }
    let mut kwargs: Vec<(&str, Value)> = Vec::new();
    for (i, name) in [
        "width",
        "break_long_words",
        "wrapstring",
        "break_on_hyphens",
    ]
    .iter()
    .enumerate()
    {
        if let Some(v) = arg(&a, i) {
            kwargs.push((name, v.clone()));
        }
    }
    let kw = minijinja::value::Kwargs::from_iter(kwargs);
    minijinja_contrib::filters::wordwrap(&Value::from(py_str(&value)?), kw)
}

/// Python's `str` methods minijinja-contrib's pycompat lacks, then pycompat's own.
pub fn unknown_method(
    state: &mut State<'_, '_>,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let Some(s) = value.as_str().filter(|_| value.kind() == ValueKind::String) {
        match method {
            "rsplit" => {
                let a = bind("rsplit", args, &["sep", "maxsplit"], 0)?;
                let max = arg(&a, 1).and_then(Value::as_i64).unwrap_or(-1);
                let limit = usize::try_from(max).map_or(usize::MAX, |m| m + 1);
                let parts: Vec<Value> = match arg(&a, 0).filter(|v| !v.is_none()) {
                    Some(sep) => {
                        let sep = py_str(sep)?;
                        if sep.is_empty() {
                            return Err(value_error("empty separator"));
                        }
                        let mut p: Vec<&str> = s.rsplitn(limit, sep.as_str()).collect();
                        p.reverse();
                        p.into_iter().map(Value::from).collect()
                    }
                    None => {
                        let words: Vec<&str> = s.split_whitespace().collect();
                        let keep = words.len().saturating_sub(limit.saturating_sub(1));
                        let mut out: Vec<Value> = Vec::new();
                        if max >= 0 && keep > 0 {
                            out.push(Value::from(words[..keep].join(" ")));
                            out.extend(words[keep..].iter().map(|w| Value::from(*w)));
                        } else {
                            out.extend(words.iter().map(|w| Value::from(*w)));
                        }
                        out
                    }
                };
                return Ok(Value::from(parts));
            }
            "zfill" => {
                let a = bind("zfill", args, &["width"], 1)?;
                let width =
                    usize::try_from(arg(&a, 0).and_then(Value::as_i64).unwrap_or(0)).unwrap_or(0);
                check_width(width)?;
                let len = s.chars().count();
                if len >= width {
                    return Ok(Value::from(s));
                }
                let pad = "0".repeat(width - len);
                return Ok(Value::from(match s.strip_prefix(['-', '+']) {
                    Some(rest) => format!("{}{pad}{rest}", &s[..1]),
                    None => format!("{pad}{s}"),
                }));
            }
            "encode" => {
                bind("encode", args, &["encoding", "errors"], 0)?;
                return Ok(Value::from_bytes(s.as_bytes().to_vec()));
            }
            "ljust" | "rjust" | "center" => {
                let a = bind(method, args, &["width", "fillchar"], 1)?;
                let width =
                    usize::try_from(arg(&a, 0).and_then(Value::as_i64).unwrap_or(0)).unwrap_or(0);
                let fill = arg(&a, 1)
                    .and_then(|v| v.as_str())
                    .and_then(|f| f.chars().next())
                    .unwrap_or(' ');
                check_width(width)?;
                let len = s.chars().count();
                if len >= width {
                    return Ok(Value::from(s));
                }
                let total = width - len;
                let (left, right) = match method {
                    "ljust" => (0, total),
                    "rjust" => (total, 0),
                    _ => {
                        let left = total / 2 + (total & width & 1);
                        (left, total - left)
                    }
                };
                let f = fill.to_string();
                return Ok(Value::from(format!(
                    "{}{s}{}",
                    f.repeat(left),
                    f.repeat(right)
                )));
            }
            "swapcase" => {
                return Ok(Value::from(
                    s.chars()
                        .flat_map(|c| {
                            if c.is_uppercase() {
                                c.to_lowercase().collect::<Vec<_>>()
                            } else {
                                c.to_uppercase().collect::<Vec<_>>()
                            }
                        })
                        .collect::<String>(),
                ));
            }
            "casefold" => return Ok(Value::from(s.to_lowercase())),
            _ => {}
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args).map_err(|e| {
        match e.kind() {
            ErrorKind::UnknownMethod => super::mutable::immutable_error(value, method).unwrap_or(e),
            _ => e,
        }
    })
}

/// The `number` test: Python numbers, booleans included.
pub fn is_number(value: Value) -> bool {
    matches!(value.kind(), ValueKind::Number | ValueKind::Bool)
}

/// The `float` test.
pub fn is_float(value: Value) -> bool {
    value.kind() == ValueKind::Number && !value.is_integer()
}

/// The `integer` test (booleans excluded, as in Jinja2).
pub fn is_integer(value: Value) -> bool {
    value.kind() == ValueKind::Number && value.is_integer()
}

/// The `string` test (a datastore lookup is not a string).
pub fn is_string(value: Value) -> bool {
    value.kind() == ValueKind::String && value.downcast_object_ref::<KvLookup>().is_none()
}

/// The `true` test: only the boolean `True`.
pub fn is_true(value: Value) -> bool {
    value.kind() == ValueKind::Bool && value.is_true()
}

/// The `false` test: only the boolean `False`.
pub fn is_false(value: Value) -> bool {
    value.kind() == ValueKind::Bool && !value.is_true()
}

/// The `escaped` test: a value marked safe.
pub fn is_escaped(value: Value) -> bool {
    value.is_safe()
}

/// StackStorm's `in` test: `value in seq` (substring for strings, membership otherwise).
pub fn is_in(value: Value, seq: Value) -> Result<bool, Error> {
    match seq.kind() {
        ValueKind::String => Ok(seq.as_str().unwrap_or_default().contains(&py_str(&value)?)),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            Ok(seq.try_iter()?.any(|item| item == value))
        }
        _ => Err(type_error(format!(
            "argument of type '{}' is not iterable",
            type_name(&seq)
        ))),
    }
}

/// The `sequence` test: anything with a length and items (strings, lists, mappings).
pub fn is_sequence(value: Value) -> bool {
    matches!(
        value.kind(),
        ValueKind::String | ValueKind::Seq | ValueKind::Map
    ) && value.downcast_object_ref::<KvLookup>().is_none()
}

/// Python's `urllib.parse.quote`: keep ASCII letters, digits, `_.-~` and `safe`.
fn url_quote(s: &str, for_qs: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b'/' if !for_qs => out.push('/'),
            b' ' if for_qs => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `urlencode`: a string is quoted keeping `/`; a mapping or a list of pairs becomes a query
/// string with `+` for spaces.
pub fn urlencode(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("urlencode", args, &[], 0)?;
    let pairs: Vec<(Value, Value)> = match value.kind() {
        ValueKind::String => return Ok(Value::from(url_quote(&py_str(&value)?, false))),
        ValueKind::Map => value
            .try_iter()?
            .map(|k| {
                let v = value.get_item(&k).unwrap_or_default();
                (k, v)
            })
            .collect(),
        ValueKind::Seq | ValueKind::Iterable => {
            let mut pairs = Vec::new();
            for item in value.try_iter()? {
                let parts: Vec<Value> = item.try_iter()?.collect();
                match parts.as_slice() {
                    [k, v] => pairs.push((k.clone(), v.clone())),
                    _ => return Err(value_error("urlencode needs pairs")),
                }
            }
            pairs
        }
        _ => return Ok(Value::from(url_quote(&py_str(&value)?, false))),
    };
    let mut parts = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        parts.push(format!(
            "{}={}",
            url_quote(&py_str(&k)?, true),
            url_quote(&py_str(&v)?, true)
        ));
    }
    Ok(Value::from(parts.join("&")))
}

/// The widest padding `zfill`/`ljust`/`rjust`/`center` produce (Python allocates any size).
const MAX_WIDTH: usize = 1 << 20;

fn check_width(width: usize) -> Result<(), Error> {
    if width > MAX_WIDTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("OverflowError: width {width} is larger than {MAX_WIDTH}"),
        ));
    }
    Ok(())
}

const STR_METHODS: &[&str] = &[
    "capitalize",
    "casefold",
    "center",
    "count",
    "encode",
    "endswith",
    "expandtabs",
    "find",
    "format",
    "format_map",
    "index",
    "isalnum",
    "isalpha",
    "isascii",
    "isdecimal",
    "isdigit",
    "isidentifier",
    "islower",
    "isnumeric",
    "isprintable",
    "isspace",
    "istitle",
    "isupper",
    "join",
    "ljust",
    "lower",
    "lstrip",
    "partition",
    "removeprefix",
    "removesuffix",
    "replace",
    "rfind",
    "rindex",
    "rjust",
    "rpartition",
    "rsplit",
    "rstrip",
    "split",
    "splitlines",
    "startswith",
    "strip",
    "swapcase",
    "title",
    "translate",
    "upper",
    "zfill",
];
const LIST_METHODS: &[&str] = &[
    "append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove", "reverse",
    "sort",
];
const DICT_METHODS: &[&str] = &[
    "clear",
    "copy",
    "fromkeys",
    "get",
    "items",
    "keys",
    "pop",
    "popitem",
    "setdefault",
    "update",
    "values",
];

/// A Python bound method: `value | attr('upper')` yields one, and calling it calls the method.
#[derive(Debug)]
struct BoundMethod {
    target: Value,
    name: String,
}

impl std::fmt::Display for BoundMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<built-in method {} of {} object>",
            self.name,
            type_name(&self.target)
        )
    }
}

impl minijinja::value::Object for BoundMethod {
    fn repr(self: &std::sync::Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Plain
    }

    fn call(
        self: &std::sync::Arc<Self>,
        state: &mut State<'_, '_>,
        args: &[Value],
    ) -> Result<Value, Error> {
        self.target.call_method(state, &self.name, args)
    }

    fn render(self: &std::sync::Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result
    where
        Self: Sized + 'static,
    {
        std::fmt::Display::fmt(self, f)
    }
}

/// `attr(name)`: Python's `getattr`: methods of strings, lists and dicts come back as bound
/// methods; dict keys are not attributes (undefined, as in Jinja2).
pub fn attr(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("attr", args, &["name"], 1)?;
    let name = py_str(arg(&a, 0).unwrap_or(&Value::UNDEFINED))?;
    let methods = match value.kind() {
        ValueKind::String => STR_METHODS,
        ValueKind::Seq => LIST_METHODS,
        ValueKind::Map if value.as_object().is_none() => DICT_METHODS,
        ValueKind::Map | ValueKind::Plain => return value.get_attr(&name),
        _ => &[],
    };
    if methods.contains(&name.as_str()) {
        return Ok(Value::from_object(BoundMethod {
            target: value,
            name,
        }));
    }
    Ok(Value::UNDEFINED)
}

/// MarkupSafe's `escape()` of a text.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `center(width=80)`: `str(value).center(width)`.
pub fn center(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("center", args, &["width"], 0)?;
    let width = match arg(&a, 0) {
        Some(w) => usize::try_from(
            w.as_i64()
                .ok_or_else(|| type_error("'width' must be an integer"))?,
        )
        .unwrap_or(0),
        None => 80,
    };
    check_width(width)?;
    let s = py_str(&value)?;
    let len = s.chars().count();
    if len >= width {
        return Ok(Value::from(s));
    }
    let total = width - len;
    let left = total / 2 + (total & width & 1);
    Ok(Value::from(format!(
        "{}{s}{}",
        " ".repeat(left),
        " ".repeat(total - left)
    )))
}

/// `forceescape`: HTML-escape `str(value)`, even if it is marked safe.
pub fn forceescape(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("forceescape", args, &[], 0)?;
    let s = match value.as_str() {
        Some(s) => s.to_owned(),
        None => py_str(&value)?,
    };
    Ok(Value::from_safe_string(html_escape(&s)))
}

/// `random`: one item picked at random.
pub fn random(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("random", args, &[], 0)?;
    let items = items_of(&value)?;
    if items.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "IndexError: Cannot choose from an empty sequence",
        ));
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let i = usize::try_from(u64::from_le_bytes(bytes) % items.len() as u64).unwrap_or(0);
    Ok(items[i].clone())
}

/// `xmlattr(autospace=True)`: a mapping as XML/HTML attributes; `None`/undefined values skipped.
pub fn xmlattr(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("xmlattr", args, &["autospace"], 0)?;
    let autospace = arg(&a, 0).is_none_or(Value::is_true);
    if value.kind() != ValueKind::Map {
        return Err(type_error(format!(
            "'{}' object has no attribute 'items'",
            type_name(&value)
        )));
    }
    let mut parts = Vec::new();
    for key in value.try_iter()? {
        let v = value.get_item(&key)?;
        if v.is_none() || v.is_undefined() {
            continue;
        }
        let k = py_str(&key)?;
        if k.chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '>' | '='))
        {
            return Err(value_error(format!(
                "Invalid character in attribute name: {k:?}"
            )));
        }
        parts.push(format!(
            "{}=\"{}\"",
            html_escape(&k),
            html_escape(&py_str(&v)?)
        ));
    }
    let mut out = parts.join(" ");
    if autospace && !out.is_empty() {
        out.insert(0, ' ');
    }
    Ok(Value::from_safe_string(out))
}

/// `urlize(trim_url_limit=None, nofollow=False, target=None, rel=None, extra_schemes=None)`:
/// URLs and e-mail addresses in the text become links (the text is HTML-escaped).
pub fn urlize(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind(
        "urlize",
        args,
        &[
            "trim_url_limit",
            "nofollow",
            "target",
            "rel",
            "extra_schemes",
        ],
        0,
    )?;
    let limit = arg(&a, 0)
        .filter(|v| !v.is_none())
        .and_then(Value::as_i64)
        .and_then(|n| usize::try_from(n).ok());
    let mut rel: Vec<String> = arg(&a, 3)
        .filter(|v| !v.is_none())
        .map(py_str)
        .transpose()?
        .map(|r| r.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if arg(&a, 1).is_some_and(Value::is_true) {
        rel.push("nofollow".to_owned());
    }
    rel.push("noopener".to_owned());
    rel.sort();
    rel.dedup();
    let mut attrs = format!(" rel=\"{}\"", html_escape(&rel.join(" ")));
    if let Some(t) = arg(&a, 2).filter(|v| !v.is_none()) {
        attrs.push_str(&format!(" target=\"{}\"", html_escape(&py_str(t)?)));
    }
    let extra: Vec<String> = match arg(&a, 4).filter(|v| !v.is_none()) {
        Some(v) => items_of(v)?.iter().map(py_str).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let text = html_escape(&py_str(&value)?);
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(&urlize_word(word, limit, &attrs, &extra));
        word.clear();
    };
    for c in text.chars() {
        if c.is_whitespace() {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    Ok(Value::from_safe_string(out))
}

const HTTP_PATTERN: &str = r"(?ix)
    ^(
        (https?://|www\.)(([\w%-]+\.)+)?([a-z]{2,63}|xn--[\w%]{2,59})
      | ([\w%-]{2,63}\.)+(com|net|int|edu|gov|org|info|mil)
      | (https?://)((([\d]{1,3})(\.[\d]{1,3}){3})|(\[([\da-f]{0,4}:){2}([\da-f]{0,4}:?){1,6}\]))
    )
    (?::[\d]{1,5})?
    (?:[/?\#]\S*)?
    $";

fn urlize_patterns() -> &'static (regex::Regex, regex::Regex, regex::Regex, regex::Regex) {
    static PATTERNS: std::sync::OnceLock<(regex::Regex, regex::Regex, regex::Regex, regex::Regex)> =
        std::sync::OnceLock::new();
    PATTERNS.get_or_init(|| {
        let compile = |p: &str| regex::Regex::new(p).unwrap_or_else(|e| unreachable!("{e}"));
        (
            compile(HTTP_PATTERN),
            compile(r"^\S+@\w[\w.-]*\.\w+$"),
            compile(r"^([(<]|&lt;)+"),
            compile(r"([)>.,\n]|&gt;)+$"),
        )
    })
}

/// One word of `urlize` (Jinja2's `jinja2.utils.urlize` loop body).
fn urlize_word(word: &str, limit: Option<usize>, attrs: &str, extra: &[String]) -> String {
    let (http, email, lead, trail) = urlize_patterns();
    let (mut head, mut middle, mut tail) = (String::new(), word.to_owned(), String::new());
    if let Some(m) = lead.find(&middle) {
        head = m.as_str().to_owned();
        middle = middle[m.end()..].to_owned();
    }
    if [")", ">", ".", ",", "\n", "&gt;"]
        .iter()
        .any(|e| middle.ends_with(e))
        && let Some(m) = trail.find(&middle)
    {
        tail = m.as_str().to_owned();
        middle.truncate(m.start());
    }
    // Balance parentheses inside the URL instead of dropping a trailing one.
    for (open, close) in [("(", ")"), ("<", ">"), ("&lt;", "&gt;")] {
        let opens = middle.matches(open).count();
        if opens <= middle.matches(close).count() {
            continue;
        }
        for _ in 0..opens.min(tail.matches(close).count()) {
            let Some(i) = tail.find(close) else { break };
            let end = i + close.len();
            middle.push_str(&tail[..end]);
            tail = tail[end..].to_owned();
        }
    }
    let shown = |url: &str| match limit {
        Some(n) if url.chars().count() > n => {
            let mut s: String = url.chars().take(n).collect();
            s.push_str("...");
            s
        }
        _ => url.to_owned(),
    };
    if http.is_match(&middle) {
        middle = if middle.starts_with("https://") || middle.starts_with("http://") {
            format!("<a href=\"{middle}\"{attrs}>{}</a>", shown(&middle))
        } else {
            format!("<a href=\"https://{middle}\"{attrs}>{}</a>", shown(&middle))
        };
    } else if let Some(address) = middle.strip_prefix("mailto:").filter(|a| email.is_match(a)) {
        middle = format!("<a href=\"{middle}\">{address}</a>");
    } else if middle.contains('@')
        && !middle.starts_with("www.")
        && !middle.starts_with('@')
        && !middle.contains(':')
        && email.is_match(&middle)
    {
        middle = format!("<a href=\"mailto:{middle}\">{middle}</a>");
    } else {
        for scheme in extra {
            if middle != *scheme && middle.starts_with(scheme.as_str()) {
                middle = format!("<a href=\"{middle}\"{attrs}>{middle}</a>");
            }
        }
    }
    format!("{head}{middle}{tail}")
}

/// `callable`: functions, macros and bound methods.
pub fn is_callable(value: Value) -> bool {
    value.kind() == ValueKind::Plain && value.downcast_object_ref::<KvLookup>().is_none()
}
