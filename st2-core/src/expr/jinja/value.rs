//! Python semantics for minijinja values: `str()`/`repr()` printing, tuples, `json.dumps`, and
//! conversions to and from JSON.

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Error, ErrorKind};

use super::kv::KvLookup;
use crate::expr::python::{float_repr, str_repr};

/// A Python tuple: a sequence that prints as `(1, 'a')`.
#[derive(Debug, Clone)]
pub struct PyTuple(pub Vec<Value>);

impl Object for PyTuple {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let idx = key.as_i64()?;
        let len = self.0.len() as i64;
        let idx = if idx < 0 { len + idx } else { idx };
        self.0.get(usize::try_from(idx).ok()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.len())
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&tuple_repr(&self.0))
    }
}

fn tuple_repr(items: &[Value]) -> String {
    let mut out = String::from("(");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&repr(item));
    }
    if items.len() == 1 {
        out.push(',');
    }
    out.push(')');
    out
}

/// A Python `TypeError`.
pub fn type_error(message: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("TypeError: {}", message.into()),
    )
}

/// A Python `ValueError`.
pub fn value_error(message: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("ValueError: {}", message.into()),
    )
}

/// Python's `str()` of a value. Datastore lookups give their stored value.
///
/// # Errors
/// When a lookup cannot be read (the bare `st2kv.system`, a datastore failure).
pub fn py_str(v: &Value) -> Result<String, Error> {
    if let Some(kv) = v.downcast_object_ref::<KvLookup>() {
        return kv.value();
    }
    Ok(match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_owned(),
        _ => repr(v),
    })
}

/// Python's `repr()` of a value.
pub fn repr(v: &Value) -> String {
    if let Some(t) = v.downcast_object_ref::<PyTuple>() {
        return tuple_repr(&t.0);
    }
    if let Some(kv) = v.downcast_object_ref::<KvLookup>() {
        return kv.repr();
    }
    if v.is_tuple()
        && let Ok(items) = v.try_iter()
    {
        return tuple_repr(&items.collect::<Vec<_>>());
    }
    match v.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::None => "None".to_owned(),
        ValueKind::Bool => if v.is_true() { "True" } else { "False" }.to_owned(),
        ValueKind::Number => number_repr(v),
        ValueKind::String => str_repr(v.as_str().unwrap_or_default()),
        ValueKind::Bytes => bytes_repr(v.as_bytes().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let mut out = String::from("[");
            if let Ok(iter) = v.try_iter() {
                for (i, item) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&repr(&item));
                }
            }
            out.push(']');
            out
        }
        ValueKind::Map => {
            let mut out = String::from("{");
            if let Ok(iter) = v.try_iter() {
                for (i, key) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let item = v.get_item(&key).unwrap_or_default();
                    out.push_str(&repr(&key));
                    out.push_str(": ");
                    out.push_str(&repr(&item));
                }
            }
            out.push('}');
            out
        }
        _ => v.to_string(),
    }
}

/// An integer prints as is, a float as Python's `repr()`.
pub fn number_repr(v: &Value) -> String {
    if v.is_integer() {
        return v.to_string();
    }
    match f64::try_from(v.clone()) {
        Ok(f) => float_repr(f),
        Err(_) => v.to_string(),
    }
}

fn bytes_repr(b: &[u8]) -> String {
    let mut out = String::from("b'");
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push('\'');
    out
}

/// A value as a float, the way Python arithmetic sees numbers and booleans.
pub fn as_f64(v: &Value) -> Option<f64> {
    match v.kind() {
        ValueKind::Number => f64::try_from(v.clone()).ok(),
        ValueKind::Bool => Some(if v.is_true() { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// Options of Python's `json.dumps`.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// `indent`: `None` for one line, else the text put before each nested item.
    pub indent: Option<String>,
    /// `sort_keys`.
    pub sort_keys: bool,
    /// Item separator (`", "` by default, `","` for StackStorm's `to_json_string`).
    pub item_sep: String,
    /// Key separator (`": "`).
    pub key_sep: String,
    /// `ensure_ascii`: escape everything outside ASCII as `\uXXXX`.
    pub ensure_ascii: bool,
    /// Escape `<`, `>`, `&` and `'` too (Jinja's `tojson`).
    pub html_safe: bool,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            indent: None,
            sort_keys: false,
            item_sep: ", ".to_owned(),
            key_sep: ": ".to_owned(),
            ensure_ascii: true,
            html_safe: false,
        }
    }
}

/// Python's `json.dumps(value, ...)`.
///
/// # Errors
/// A `TypeError` for values JSON cannot hold (undefined, datastore lookups, other objects).
pub fn dumps(v: &Value, opts: &DumpOptions) -> Result<String, Error> {
    let mut out = String::new();
    dump_value(v, opts, 0, &mut out)?;
    Ok(out)
}

fn dump_value(v: &Value, opts: &DumpOptions, level: usize, out: &mut String) -> Result<(), Error> {
    if level > 200 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "value nested too deeply",
        ));
    }
    if let Some(t) = v.downcast_object_ref::<PyTuple>() {
        return dump_seq(t.0.iter().cloned(), t.0.len(), opts, level, out);
    }
    match v.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                out.push_str(&v.to_string());
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                out.push_str(&if f.is_nan() {
                    "NaN".to_owned()
                } else if f.is_infinite() {
                    if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
                } else {
                    float_repr(f)
                });
            }
        }
        ValueKind::String => dump_str(v.as_str().unwrap_or_default(), opts, out),
        ValueKind::Seq | ValueKind::Iterable
            if v.as_object()
                .is_none_or(|_| v.downcast_object_ref::<KvLookup>().is_none()) =>
        {
            let items: Vec<Value> = v.try_iter()?.collect();
            let len = items.len();
            dump_seq(items.into_iter(), len, opts, level, out)?;
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if opts.sort_keys {
                keys.sort_by_key(|k| key_text(k).unwrap_or_default());
            }
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                newline(opts, level + 1, out);
                let text = key_text(key)?;
                dump_str(&text, opts, out);
                out.push_str(&opts.key_sep);
                let item = v.get_item(key)?;
                dump_value(&item, opts, level + 1, out)?;
            }
            newline(opts, level, out);
            out.push('}');
        }
        _ => {
            return Err(type_error(format!(
                "Object of type {} is not JSON serializable",
                type_name(v)
            )));
        }
    }
    Ok(())
}

fn dump_seq(
    items: impl Iterator<Item = Value>,
    len: usize,
    opts: &DumpOptions,
    level: usize,
    out: &mut String,
) -> Result<(), Error> {
    if len == 0 {
        out.push_str("[]");
        return Ok(());
    }
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(&opts.item_sep);
        }
        newline(opts, level + 1, out);
        dump_value(&item, opts, level + 1, out)?;
    }
    newline(opts, level, out);
    out.push(']');
    Ok(())
}

fn newline(opts: &DumpOptions, level: usize, out: &mut String) {
    if let Some(indent) = &opts.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(indent);
        }
    }
}

/// How `json.dumps` turns a mapping key into text (`True` → `"true"`, `1` → `"1"`).
fn key_text(k: &Value) -> Result<String, Error> {
    Ok(match k.kind() {
        ValueKind::String => k.as_str().unwrap_or_default().to_owned(),
        ValueKind::None => "null".to_owned(),
        ValueKind::Bool => if k.is_true() { "true" } else { "false" }.to_owned(),
        ValueKind::Number => number_repr(k),
        _ => {
            return Err(type_error(format!(
                "keys must be str, int, float, bool or None, not {}",
                type_name(k)
            )));
        }
    })
}

fn dump_str(s: &str, opts: &DumpOptions, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\'' if opts.html_safe => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if opts.ensure_ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's type name of a value, for messages.
pub fn type_name(v: &Value) -> &'static str {
    if v.downcast_object_ref::<KvLookup>().is_some() {
        return "KeyValueLookup";
    }
    if v.downcast_object_ref::<PyTuple>().is_some() {
        return "tuple";
    }
    match v.kind() {
        ValueKind::Undefined => "StrictUndefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

/// A minijinja value as JSON (non-finite floats become null, tuples lists, map keys text).
///
/// # Errors
/// For values JSON cannot hold at all (undefined, lookups, other objects).
pub fn to_json(v: &Value) -> Result<serde_json::Value, Error> {
    use serde_json::Value as J;
    if let Some(t) = v.downcast_object_ref::<PyTuple>() {
        return t
            .0
            .iter()
            .map(to_json)
            .collect::<Result<Vec<_>, _>>()
            .map(J::Array);
    }
    Ok(match v.kind() {
        ValueKind::None => J::Null,
        ValueKind::Bool => J::Bool(v.is_true()),
        ValueKind::Number => {
            if let Ok(i) = i64::try_from(v.clone()) {
                J::from(i)
            } else if let Ok(u) = u64::try_from(v.clone()) {
                J::from(u)
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f).map_or(J::Null, J::Number)
            }
        }
        ValueKind::String => J::String(v.as_str().unwrap_or_default().to_owned()),
        ValueKind::Bytes => {
            J::String(String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned())
        }
        ValueKind::Seq | ValueKind::Iterable if v.downcast_object_ref::<KvLookup>().is_none() => {
            J::Array(
                v.try_iter()?
                    .map(|i| to_json(&i))
                    .collect::<Result<_, _>>()?,
            )
        }
        ValueKind::Map => {
            let mut map = serde_json::Map::new();
            for key in v.try_iter()? {
                let item = v.get_item(&key)?;
                map.insert(key_text(&key)?, to_json(&item)?);
            }
            J::Object(map)
        }
        _ => {
            return Err(type_error(format!(
                "Object of type {} is not JSON serializable",
                type_name(v)
            )));
        }
    })
}

/// A JSON value as a minijinja value (key order kept).
pub fn from_json(v: &serde_json::Value) -> Value {
    Value::from(minijinja::value::Serde(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_like_python() {
        let v = from_json(&json!({"a": [1, "x", null, true, 2.5], "b": {}}));
        assert_eq!(repr(&v), "{'a': [1, 'x', None, True, 2.5], 'b': {}}");
        let t = Value::from_object(PyTuple(vec![Value::from(1)]));
        assert_eq!(repr(&t), "(1,)");
        assert_eq!(py_str(&Value::from("s")).unwrap(), "s");
    }

    #[test]
    fn dumps_like_python_json() {
        let v = from_json(&json!({"x": 1, "y": "two", "z": null, "u": "é"}));
        let st2 = DumpOptions {
            item_sep: ",".into(),
            ..DumpOptions::default()
        };
        assert_eq!(
            dumps(&v, &st2).unwrap(),
            r#"{"x": 1,"y": "two","z": null,"u": "\u00e9"}"#
        );
        let indented = DumpOptions {
            indent: Some("  ".into()),
            ..st2
        };
        assert_eq!(
            dumps(&from_json(&json!({"a": [1]})), &indented).unwrap(),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
        assert_eq!(
            dumps(&Value::from(f64::INFINITY), &DumpOptions::default()).unwrap(),
            "Infinity"
        );
        assert!(dumps(&Value::UNDEFINED, &DumpOptions::default()).is_err());
    }
}
