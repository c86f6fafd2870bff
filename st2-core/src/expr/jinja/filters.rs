//! StackStorm's Jinja filters (`st2common/expressions/functions`), with Python's behaviour on
//! every input the conformance cases exercise.

use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate, Timelike};
use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

use super::args::{bind, flag};
use super::kv::KvLookup;
use super::value::{
    DumpOptions, PyTuple, dumps, from_json, py_str, to_json, type_error, type_name, value_error,
};
use crate::crypto::CryptoKey;
use crate::expr::jsonpath::JsonPath;
use crate::expr::pyregex::{Flags, PyRegex};
use crate::expr::pyyaml::{YamlDumpOptions, dump as yaml_dump};
use crate::yaml::{YamlLimits, parse_str as yaml_parse};

/// The marker `use_none` returns for null; parameter casting turns it back into null.
pub const NONE_MAGIC_VALUE: &str = "%*****__%NONE%__*****%";

fn expr_error(e: crate::expr::ExprError) -> Error {
    let class = match e.kind {
        crate::expr::ErrorKind::Value => "ValueError",
        crate::expr::ErrorKind::Index => "IndexError",
        crate::expr::ErrorKind::Type => "TypeError",
        crate::expr::ErrorKind::Syntax => "SyntaxError",
        other => other.python_class(),
    };
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{class}: {}", e.message),
    )
}

fn no_lookup(v: &Value, filter: &str) -> Result<(), Error> {
    if v.downcast_object_ref::<KvLookup>().is_some() {
        return Err(type_error(format!(
            "{filter}: Object of type KeyValueLookup is not usable here; pipe it through `string` first"
        )));
    }
    Ok(())
}

/// `to_json_string(value, indent=None, sort_keys=False, separators=(",", ": "))`.
pub fn to_json_string(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind(
        "to_json_string",
        args,
        &["indent", "sort_keys", "separators"],
        0,
    )?;
    no_lookup(&value, "to_json_string")?;
    let mut opts = DumpOptions {
        item_sep: ",".into(),
        ..DumpOptions::default()
    };
    if let Some(indent) = a[0].as_ref().filter(|v| !v.is_none()) {
        opts.indent = Some(match indent.kind() {
            ValueKind::Number => {
                " ".repeat(usize::try_from(indent.as_i64().unwrap_or(0).max(0)).unwrap_or(0))
            }
            ValueKind::String => indent.as_str().unwrap_or_default().to_owned(),
            _ => return Err(type_error("indent must be an integer or a string")),
        });
    }
    opts.sort_keys = flag(&a[1], false);
    if let Some(seps) = a[2].as_ref().filter(|v| !v.is_none()) {
        let parts: Vec<Value> = seps.try_iter()?.collect();
        match parts.as_slice() {
            [item, key] => {
                opts.item_sep = py_str(item)?;
                opts.key_sep = py_str(key)?;
            }
            _ => return Err(value_error("separators must be a pair")),
        }
    }
    dumps(&value, &opts).map(Value::from)
}

/// `from_json_string(value)`: parse `str(value)` as JSON.
pub fn from_json_string(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("from_json_string", args, &[], 0)?;
    let text = py_str(&value)?;
    let parsed: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| value_error(format!("JSONDecodeError: {e}")))?;
    Ok(from_json(&parsed))
}

/// `to_yaml_string(value, indent=None, allow_unicode=True)`.
pub fn to_yaml_string(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("to_yaml_string", args, &["indent", "allow_unicode"], 0)?;
    let mut opts = YamlDumpOptions::default();
    if let Some(i) = a[0].as_ref().and_then(Value::as_i64) {
        opts.indent = usize::try_from(i).unwrap_or(2);
    }
    opts.allow_unicode = flag(&a[1], true);
    yaml_dump(&value, &opts).map(Value::from)
}

/// `from_yaml_string(value)`: parse `str(value)` as YAML, as PyYAML reads it.
pub fn from_yaml_string(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("from_yaml_string", args, &[], 0)?;
    let text = py_str(&value)?;
    let doc = yaml_parse(&text, &YamlLimits::default())
        .map_err(|e| value_error(format!("YAMLError: {e}")))?;
    Ok(from_json(&doc.to_json()))
}

/// `to_complex(value)`: `json.dumps(value)`.
pub fn to_complex(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("to_complex", args, &[], 0)?;
    no_lookup(&value, "to_complex")?;
    dumps(&value, &DumpOptions::default()).map(Value::from)
}

/// The filter rule criteria patterns are rendered through: `to_complex`, except that a
/// datastore lookup gives its value. StackStorm's `to_complex` fails on a lookup, which makes
/// the documented `{{ st2kv.system.key }}` criteria pattern always fail (st2 #4043); see
/// `docs/compatibility.md`.
pub const PATTERN_COMPLEX: &str = "__st2_pattern_complex";

/// See [`PATTERN_COMPLEX`].
pub fn pattern_complex(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("to_complex", args, &[], 0)?;
    if let Some(lookup) = value.downcast_object_ref::<KvLookup>() {
        return dumps(&Value::from(lookup.value()?), &DumpOptions::default()).map(Value::from);
    }
    dumps(&value, &DumpOptions::default()).map(Value::from)
}

/// `json_escape(value)`: `json.dumps(value)` with every leading and trailing `"` removed.
pub fn json_escape(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("json_escape", args, &[], 0)?;
    no_lookup(&value, "json_escape")?;
    let s = dumps(&value, &DumpOptions::default())?;
    Ok(Value::from(s.trim_matches('"')))
}

/// `jsonpath_query(value, query)`: every match, or null when there is none.
pub fn jsonpath_query(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("jsonpath_query", args, &["query"], 1)?;
    let query = py_str(a[0].as_ref().unwrap_or(&Value::UNDEFINED))?;
    let path = JsonPath::parse(&query).map_err(expr_error)?;
    let data = to_json(&value)?;
    let found = path.find(&data);
    if found.is_empty() {
        return Ok(Value::from(()));
    }
    Ok(Value::from(
        found.into_iter().map(from_json).collect::<Vec<_>>(),
    ))
}

fn regex_args(
    name: &str,
    value: &Value,
    args: &[Value],
    extra: &[&str],
) -> Result<(String, Vec<Option<Value>>), Error> {
    let mut names = vec!["pattern"];
    names.extend_from_slice(extra);
    names.push("ignorecase");
    let required = if name == "regex_replace" { 2 } else { 1 };
    let a = bind(name, args, &names, required)?;
    Ok((py_str(value)?, a))
}

fn compile(pattern: &Value, ignorecase: bool) -> Result<PyRegex, Error> {
    let p = pattern
        .as_str()
        .ok_or_else(|| type_error("first argument must be string or compiled pattern"))?;
    PyRegex::new(p, Flags::ignore_case(ignorecase)).map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("re.error: {}", e.message),
        )
    })
}

/// `regex_match(value, pattern, ignorecase=False)`: `re.match`, anchored at the start.
pub fn regex_match(value: Value, args: &[Value]) -> Result<Value, Error> {
    let (text, a) = regex_args("regex_match", &value, args, &[])?;
    let re = compile(
        a[0].as_ref().unwrap_or(&Value::UNDEFINED),
        flag(&a[1], false),
    )?;
    Ok(Value::from(
        re.match_start(&text).map_err(expr_error)?.is_some(),
    ))
}

/// `regex_search(value, pattern, ignorecase=False)`: `re.search`.
pub fn regex_search(value: Value, args: &[Value]) -> Result<Value, Error> {
    let (text, a) = regex_args("regex_search", &value, args, &[])?;
    let re = compile(
        a[0].as_ref().unwrap_or(&Value::UNDEFINED),
        flag(&a[1], false),
    )?;
    Ok(Value::from(re.search(&text).map_err(expr_error)?.is_some()))
}

/// `regex_replace(value, pattern, replacement, ignorecase=False)`: `re.sub`.
pub fn regex_replace(value: Value, args: &[Value]) -> Result<Value, Error> {
    let (text, a) = regex_args("regex_replace", &value, args, &["replacement"])?;
    let re = compile(
        a[0].as_ref().unwrap_or(&Value::UNDEFINED),
        flag(&a[2], false),
    )?;
    let repl = py_str(a[1].as_ref().unwrap_or(&Value::UNDEFINED))?;
    re.sub(&text, &repl, 0).map(Value::from).map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("re.error: {}", e.message),
        )
    })
}

/// `regex_substring(value, pattern, result_index=0, ignorecase=False)`: `re.findall(...)[i]`.
pub fn regex_substring(value: Value, args: &[Value]) -> Result<Value, Error> {
    let (text, a) = regex_args("regex_substring", &value, args, &["result_index"])?;
    let re = compile(
        a[0].as_ref().unwrap_or(&Value::UNDEFINED),
        flag(&a[2], false),
    )?;
    let index = a[1].as_ref().map_or(Ok(0), |v| {
        v.as_i64()
            .ok_or_else(|| type_error("list indices must be integers"))
    })?;
    let all = re.find_all(&text).map_err(expr_error)?;
    let len = all.len() as i64;
    let idx = if index < 0 { len + index } else { index };
    let item = usize::try_from(idx)
        .ok()
        .and_then(|i| all.get(i))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "IndexError: list index out of range",
            )
        })?;
    Ok(match item {
        serde_json::Value::Array(groups) => {
            Value::from_object(PyTuple(groups.iter().map(from_json).collect()))
        }
        other => from_json(other),
    })
}

/// `to_human_time_from_seconds(seconds)`: `1h3m5s` style, with StackStorm's quirks (months are
/// dropped, under a second prints `<n>μs`).
pub fn to_human_time_from_seconds(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("to_human_time_from_seconds", args, &[], 0)?;
    let assertion = || {
        Error::new(
            ErrorKind::InvalidOperation,
            "AssertionError: seconds must be a number",
        )
    };
    if !matches!(value.kind(), ValueKind::Number | ValueKind::Bool) {
        return Err(assertion());
    }
    let is_float = value.kind() == ValueKind::Number && !value.is_integer();
    let f = super::value::as_f64(&value).ok_or_else(assertion)?;
    if f == 0.0 {
        return Ok(Value::from("0s"));
    }
    if f < 1.0 {
        return Ok(Value::from(format!(
            "{}\u{03BC}s",
            super::value::number_repr(&value)
        )));
    }
    let secs: i64 = if is_float {
        let r = f.round();
        // Python rounds half to even.
        let r = if (f - f.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
            r - f.signum()
        } else {
            r
        };
        r as i64
    } else if value.kind() == ValueKind::Bool {
        1
    } else {
        value.as_i64().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "OverflowError: too many seconds",
            )
        })?
    };
    let start = NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or_else(assertion)?;
    let date = Duration::try_seconds(secs)
        .and_then(|d| start.checked_add_signed(d))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "OverflowError: date value out of range",
            )
        })?;
    let parts = [
        i64::from(date.year() - 1),
        i64::from(date.day() - 1),
        i64::from(date.hour()),
        i64::from(date.minute()),
        i64::from(date.second()),
    ];
    let Some(first) = parts.iter().position(|p| *p != 0) else {
        return Ok(Value::from("0s"));
    };
    let units = ["y", "d", "h", "m", "s"];
    let mut out = String::new();
    for (p, u) in parts[first..].iter().zip(&units[first..]) {
        out.push_str(&format!("{p}{u}"));
    }
    Ok(Value::from(out))
}

/// A semantic version as Python's `semver` 3 parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SemVer {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Option<String>,
}

fn semver_input(v: &Value, what: &str) -> Result<String, Error> {
    match v.kind() {
        ValueKind::String if v.downcast_object_ref::<KvLookup>().is_none() => {
            Ok(v.as_str().unwrap_or_default().to_owned())
        }
        _ => Err(type_error(format!(
            "{what}: expected a version string, not {}",
            type_name(v)
        ))),
    }
}

fn parse_semver(s: &str) -> Result<SemVer, Error> {
    use std::sync::LazyLock;
    static RE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(concat!(
            r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)",
            r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?",
            r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
        ))
        .expect("static regex")
    });
    let bad = || value_error(format!("{s} is not valid SemVer string"));
    let c = RE.captures(s).ok_or_else(bad)?;
    let num = |i: usize| -> Result<u64, Error> {
        c.get(i)
            .ok_or_else(bad)?
            .as_str()
            .parse()
            .map_err(|_| bad())
    };
    Ok(SemVer {
        major: num(1)?,
        minor: num(2)?,
        patch: num(3)?,
        pre: c.get(4).map(|m| m.as_str().to_owned()),
    })
}

fn compare_pre(a: &Option<String>, b: &Option<String>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => {
            let pa: Vec<&str> = a.split('.').collect();
            let pb: Vec<&str> = b.split('.').collect();
            for (x, y) in pa.iter().zip(&pb) {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(i), Ok(j)) => i.cmp(&j),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            pa.len().cmp(&pb.len())
        }
    }
}

fn semver_cmp(a: &SemVer, b: &SemVer) -> std::cmp::Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| compare_pre(&a.pre, &b.pre))
}

fn version_pair(name: &str, value: &Value, args: &[Value]) -> Result<(SemVer, SemVer), Error> {
    let a = bind(name, args, &["pattern"], 1)?;
    let v = parse_semver(&semver_input(value, name)?)?;
    let other = parse_semver(&semver_input(
        a[0].as_ref().unwrap_or(&Value::UNDEFINED),
        name,
    )?)?;
    Ok((v, other))
}

fn ordering_value(o: std::cmp::Ordering) -> i64 {
    match o {
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => 1,
    }
}

/// `version_compare(value, pattern)`: -1, 0 or 1.
pub fn version_compare(value: Value, args: &[Value]) -> Result<Value, Error> {
    let (a, b) = version_pair("version_compare", &value, args)?;
    Ok(Value::from(ordering_value(semver_cmp(&a, &b))))
}

/// `version_more_than(value, pattern)`.
pub fn version_more_than(value: Value, args: &[Value]) -> Result<Value, Error> {
    let (a, b) = version_pair("version_more_than", &value, args)?;
    Ok(Value::from(semver_cmp(&a, &b).is_gt()))
}

/// `version_less_than(value, pattern)`.
pub fn version_less_than(value: Value, args: &[Value]) -> Result<Value, Error> {
    let (a, b) = version_pair("version_less_than", &value, args)?;
    Ok(Value::from(semver_cmp(&a, &b).is_lt()))
}

/// `version_equal(value, pattern)`.
pub fn version_equal(value: Value, args: &[Value]) -> Result<Value, Error> {
    let (a, b) = version_pair("version_equal", &value, args)?;
    Ok(Value::from(semver_cmp(&a, &b).is_eq()))
}

/// `version_match(value, ">=1.2.0")`: operators `<`, `>`, `<=`, `>=`, `==`, `!=` (none means
/// `==`).
pub fn version_match(value: Value, args: &[Value]) -> Result<Value, Error> {
    let a = bind("version_match", args, &["pattern"], 1)?;
    let v = parse_semver(&semver_input(&value, "version_match")?)?;
    let expr = semver_input(a[0].as_ref().unwrap_or(&Value::UNDEFINED), "version_match")?;
    let (op, rest) = ["<=", ">=", "==", "!=", "<", ">"]
        .iter()
        .find_map(|op| expr.strip_prefix(op).map(|r| (*op, r)))
        .unwrap_or(("==", expr.as_str()));
    if rest.starts_with(['<', '>', '=', '!', '~', '^']) {
        return Err(value_error(format!(
            "'{expr}' is not a valid match expression"
        )));
    }
    let other = parse_semver(rest)?;
    let o = semver_cmp(&v, &other);
    Ok(Value::from(match op {
        "<" => o.is_lt(),
        ">" => o.is_gt(),
        "<=" => o.is_le(),
        ">=" => o.is_ge(),
        "!=" => o.is_ne(),
        _ => o.is_eq(),
    }))
}

fn bump(
    name: &str,
    value: &Value,
    args: &[Value],
    f: impl Fn(&SemVer) -> String,
) -> Result<Value, Error> {
    bind(name, args, &[], 0)?;
    let v = parse_semver(&semver_input(value, name)?)?;
    Ok(Value::from(f(&v)))
}

/// `version_bump_major(value)`.
pub fn version_bump_major(value: Value, args: &[Value]) -> Result<Value, Error> {
    bump("version_bump_major", &value, args, |v| {
        format!("{}.0.0", v.major + 1)
    })
}

/// `version_bump_minor(value)`.
pub fn version_bump_minor(value: Value, args: &[Value]) -> Result<Value, Error> {
    bump("version_bump_minor", &value, args, |v| {
        format!("{}.{}.0", v.major, v.minor + 1)
    })
}

/// `version_bump_patch(value)`.
pub fn version_bump_patch(value: Value, args: &[Value]) -> Result<Value, Error> {
    bump("version_bump_patch", &value, args, |v| {
        format!("{}.{}.{}", v.major, v.minor, v.patch + 1)
    })
}

/// `version_strip_patch(value)`: `MAJOR.MINOR`.
pub fn version_strip_patch(value: Value, args: &[Value]) -> Result<Value, Error> {
    bump("version_strip_patch", &value, args, |v| {
        format!("{}.{}", v.major, v.minor)
    })
}

/// `use_none(value)`: the null marker for null, the value otherwise.
pub fn use_none(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("use_none", args, &[], 0)?;
    if value.is_undefined() {
        return Err(Error::new(ErrorKind::UndefinedError, "value is undefined"));
    }
    Ok(if value.is_none() {
        Value::from(NONE_MAGIC_VALUE)
    } else {
        value
    })
}

fn path_arg(name: &str, value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::String if value.downcast_object_ref::<KvLookup>().is_none() => {
            Ok(value.as_str().unwrap_or_default().to_owned())
        }
        _ => Err(type_error(format!(
            "{name}: expected str, bytes or os.PathLike object, not {}",
            type_name(value)
        ))),
    }
}

/// `basename(path)`: `os.path.basename`.
pub fn basename(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("basename", args, &[], 0)?;
    let p = path_arg("basename", &value)?;
    Ok(Value::from(p.rsplit('/').next().unwrap_or_default()))
}

/// `dirname(path)`: `os.path.dirname`.
pub fn dirname(value: Value, args: &[Value]) -> Result<Value, Error> {
    bind("dirname", args, &[], 0)?;
    let p = path_arg("dirname", &value)?;
    let head = match p.rfind('/') {
        Some(i) => &p[..=i],
        None => "",
    };
    let trimmed = head.trim_end_matches('/');
    Ok(Value::from(if trimmed.is_empty() { head } else { trimmed }))
}

/// `decrypt_kv(value)`: decrypt a datastore ciphertext (a lookup's value, or any string).
pub fn decrypt_kv(
    key: Option<&Arc<CryptoKey>>,
    value: Value,
    args: &[Value],
) -> Result<Value, Error> {
    bind("decrypt_kv", args, &[], 0)?;
    let text = if let Some(kv) = value.downcast_object_ref::<KvLookup>() {
        let v = kv.value()?;
        if v.is_empty() {
            return Err(value_error(format!(
                "Referenced datastore item \"{}\" doesn't exist or it contains an empty string",
                kv.key_name()
            )));
        }
        v
    } else {
        py_str(&value)?
    };
    let key = key.ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            "CryptoKeyNotSetupException: no datastore encryption key is configured",
        )
    })?;
    key.decrypt(&text).map(Value::from).map_err(|e| {
        let class = match e {
            crate::crypto::CryptoError::NotHex(_) => "binascii.Error",
            crate::crypto::CryptoError::BadSignature => "InvalidSignature",
            _ => "ValueError",
        };
        Error::new(ErrorKind::InvalidOperation, format!("{class}: {e}"))
    })
}
