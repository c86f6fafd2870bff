//! Python's in-place container methods in templates: `list.append`, `dict.update`, ….
//!
//! minijinja's lists and maps are immutable values, while Jinja2 templates in StackStorm packs
//! build lists the Python way (`{% set hosts = [] %}{% for … %}{% set _ =
//! hosts.append(h) %}{% endfor %}`). A template that calls one of Python's mutating methods
//! ([`mutates`]) is therefore rendered with mutable containers: the lists and dicts of its
//! context, and the list and dict literals it writes (rewritten to pass through the
//! [`FILTER`] filter by [`rewrite`]), become [`PyList`] / [`PyDict`] objects, shared by
//! reference as Python's are. Templates without such a call keep minijinja's own values.
//!
//! Lists built by filters (`x | list`, `dict(a=1)`) stay immutable; calling a mutating
//! method on one is an error that says so. A container can never be made to hold itself
//! (Python prints such a list as `[...]`; here printing, comparing and serialising recurse),
//! and a list or dict holds at most [`MAX_ITEMS`] entries.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

use super::kv::KvLookup;
use super::percent::{Tok, matching, rewrite_tags, tokens};
use super::value::{PyTuple, from_json, repr, type_error, value_error};

/// The filter a rewritten literal passes through.
pub const FILTER: &str = "__st2_mutable";

/// The most entries one list or dict may hold.
pub const MAX_ITEMS: usize = 1 << 20;

/// How deep [`holds`] looks for a container inside a value before giving up.
const MAX_DEPTH: usize = 256;

/// Python's methods that change a list or a dict in place.
const MUTATORS: &[&str] = &[
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "reverse",
    "sort",
    "update",
    "setdefault",
    "popitem",
];

/// Whether a template (or expression) calls one of Python's mutating methods
/// (`.append(`, `.update(`, …).
pub fn mutates(template: &str) -> bool {
    template.match_indices('.').any(|(i, _)| {
        let rest = &template[i + 1..];
        MUTATORS.iter().any(|m| {
            rest.strip_prefix(m)
                .is_some_and(|r| r.trim_start().starts_with('('))
        })
    })
}

/// Rewrite every list and dict literal in a template's tags to pass through [`FILTER`]:
/// `[1, 2]` → `([1, 2]|__st2_mutable)`. Text outside the tags is left alone.
pub fn rewrite(template: &str) -> Cow<'_, str> {
    rewrite_tags(template, rewrite_region)
}

/// Rewrite the literals of a bare expression (the inside of `{{ }}`).
pub fn rewrite_expression(expression: &str) -> Cow<'_, str> {
    rewrite_region(expression).map_or(Cow::Borrowed(expression), Cow::Owned)
}

/// Names after which `[` opens a list rather than a subscript.
const KEYWORDS: &[&str] = &[
    "in",
    "not",
    "and",
    "or",
    "if",
    "else",
    "elif",
    "is",
    "for",
    "set",
    "do",
    "with",
    "print",
    "return",
    "recursive",
];

fn rewrite_region(body: &str) -> Option<String> {
    let toks = tokens(body);
    // (position, closing?, text): a literal's `(` goes before it, `|filter)` after it.
    let mut inserts: Vec<(usize, bool, &str)> = Vec::new();
    let mut prev: Option<(Tok, usize, usize)> = None;
    for (j, &(kind, start, end)) in toks.iter().enumerate() {
        let literal = match kind {
            Tok::Open('{') => true,
            Tok::Open('[') => match prev {
                None => true,
                Some((Tok::Name, s, e)) => KEYWORDS.contains(&&body[s..e]),
                Some((Tok::Str | Tok::Num | Tok::Close(_), _, _)) => false,
                Some(_) => true,
            },
            _ => false,
        };
        if literal && let Some(m) = matching(&toks, j) {
            inserts.push((start, false, "("));
            inserts.push((toks[m].2, true, ")"));
        }
        if kind != Tok::Space {
            prev = Some((kind, start, end));
        }
    }
    if inserts.is_empty() {
        return None;
    }
    // Closings before openings at one position; otherwise in position order.
    inserts.sort_by_key(|&(pos, closing, _)| (pos, !closing));
    let mut out = String::with_capacity(body.len() + inserts.len() * 10);
    let mut at = 0;
    for (pos, closing, text) in inserts {
        out.push_str(&body[at..pos]);
        if closing {
            out.push('|');
            out.push_str(FILTER);
        }
        out.push_str(text);
        at = pos;
    }
    out.push_str(&body[at..]);
    Some(out)
}

/// The [`FILTER`] filter: a list or dict literal's value as a mutable container.
pub fn mutable(value: Value) -> Value {
    if value.downcast_object_ref::<PyList>().is_some()
        || value.downcast_object_ref::<PyDict>().is_some()
        || value.is_tuple()
        || value.is_kwargs()
    {
        return value;
    }
    match value.kind() {
        ValueKind::Seq => match value.try_iter() {
            Ok(items) => Value::from_object(PyList::new(items.collect())),
            Err(_) => value,
        },
        ValueKind::Map => match value.try_iter() {
            Ok(keys) => {
                let map = keys
                    .map(|k| {
                        let v = value.get_item(&k).unwrap_or_default();
                        (k, v)
                    })
                    .collect();
                Value::from_object(PyDict::new(map))
            }
            Err(_) => value,
        },
        _ => value,
    }
}

/// A JSON value as template data with mutable lists and dicts.
pub fn from_json_mutable(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Array(items) => {
            Value::from_object(PyList::new(items.iter().map(from_json_mutable).collect()))
        }
        serde_json::Value::Object(map) => Value::from_object(PyDict::new(
            map.iter()
                .map(|(k, v)| (Value::from(k.as_str()), from_json_mutable(v)))
                .collect(),
        )),
        scalar => from_json(scalar),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Positional arguments and keyword arguments of a method call.
fn split_args(args: &[Value]) -> Result<(&[Value], Option<Kwargs>), Error> {
    match args.last() {
        Some(last) if last.is_kwargs() => Ok((
            &args[..args.len() - 1],
            Some(Kwargs::try_from(last.clone())?),
        )),
        _ => Ok((args, None)),
    }
}

/// Python's arity check for a method taking between `min` and `max` positional arguments
/// and no keyword arguments.
fn positional<'a>(
    owner: &str,
    method: &str,
    args: &'a [Value],
    min: usize,
    max: usize,
) -> Result<&'a [Value], Error> {
    let (pos, kwargs) = split_args(args)?;
    if kwargs.is_some_and(|k| k.args().next().is_some()) {
        return Err(type_error(format!(
            "{owner}.{method}() takes no keyword arguments"
        )));
    }
    if pos.len() < min || pos.len() > max {
        return Err(type_error(format!(
            "{owner}.{method}() takes {} ({} given)",
            match (min, max) {
                (0, 0) => "no arguments".to_owned(),
                (a, b) if a == b =>
                    format!("exactly {a} argument{}", if a == 1 { "" } else { "s" }),
                (a, b) => format!("from {a} to {b} arguments"),
            },
            pos.len()
        )));
    }
    Ok(pos)
}

fn index_error(message: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("IndexError: {message}"),
    )
}

fn too_large() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("MemoryError: a list or dict may hold at most {MAX_ITEMS} items"),
    )
}

/// Whether `value` is, or holds at any depth, the container at `target`.
fn holds(value: &Value, target: *const (), depth: usize) -> Result<bool, Error> {
    if depth > MAX_DEPTH {
        return Err(value_error("value nested too deeply"));
    }
    let address = value
        .downcast_object_ref::<PyList>()
        .map(|l| std::ptr::from_ref(l).cast::<()>())
        .or_else(|| {
            value
                .downcast_object_ref::<PyDict>()
                .map(|d| std::ptr::from_ref(d).cast::<()>())
        });
    if address.is_some_and(|a| std::ptr::eq(a, target)) {
        return Ok(true);
    }
    if value.as_object().is_none() || value.downcast_object_ref::<KvLookup>().is_some() {
        return Ok(false);
    }
    let is_map = match value.kind() {
        ValueKind::Seq => false,
        ValueKind::Map => true,
        _ => return Ok(false),
    };
    for item in value.try_iter()? {
        let item = if is_map { value.get_item(&item)? } else { item };
        if holds(&item, target, depth + 1)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Refuse `value` when it would make the container at `target` hold itself.
fn admit(value: &Value, target: *const ()) -> Result<(), Error> {
    if holds(value, target, 0)? {
        return Err(value_error("a list or dict cannot be made to hold itself"));
    }
    Ok(())
}

/// A Python list: mutable, shared by reference.
#[derive(Debug, Default)]
pub struct PyList(Mutex<Vec<Value>>);

impl PyList {
    /// A list holding `items`.
    pub fn new(items: Vec<Value>) -> Self {
        PyList(Mutex::new(items))
    }

    /// Refuse a value that would make this list hold itself.
    fn admit(self: &Arc<Self>, value: &Value) -> Result<(), Error> {
        admit(value, Arc::as_ptr(self).cast::<()>())
    }

    fn len(&self) -> usize {
        lock(&self.0).len()
    }

    /// A Python index (negative counts from the end) as a position, if in range.
    fn position(&self, index: i64) -> Option<usize> {
        let len = i64::try_from(self.len()).ok()?;
        let i = if index < 0 { len + index } else { index };
        if (0..len).contains(&i) {
            usize::try_from(i).ok()
        } else {
            None
        }
    }
}

fn as_index(v: &Value) -> Result<i64, Error> {
    if v.is_integer() {
        return i64::try_from(v.clone()).map_err(|_| index_error("index out of range"));
    }
    Err(type_error(format!(
        "'{}' object cannot be interpreted as an integer",
        super::value::type_name(v)
    )))
}

impl Object for PyList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let i = self.position(key.as_i64()?)?;
        lock(&self.0).get(i).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(lock(&self.0).clone())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let none = Value::from(());
        match method {
            "append" => {
                let a = positional("list", method, args, 1, 1)?;
                self.admit(&a[0])?;
                let mut items = lock(&self.0);
                if items.len() >= MAX_ITEMS {
                    return Err(too_large());
                }
                items.push(a[0].clone());
                Ok(none)
            }
            "extend" => {
                let a = positional("list", method, args, 1, 1)?;
                let new: Vec<Value> = a[0]
                    .try_iter()
                    .map_err(|_| {
                        type_error(format!(
                            "'{}' object is not iterable",
                            super::value::type_name(&a[0])
                        ))
                    })?
                    .collect();
                for v in &new {
                    self.admit(v)?;
                }
                let mut items = lock(&self.0);
                if items.len() + new.len() > MAX_ITEMS {
                    return Err(too_large());
                }
                items.extend(new);
                Ok(none)
            }
            "insert" => {
                let a = positional("list", method, args, 2, 2)?;
                let index = as_index(&a[0])?;
                self.admit(&a[1])?;
                let mut items = lock(&self.0);
                if items.len() >= MAX_ITEMS {
                    return Err(too_large());
                }
                let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                let at = if index < 0 {
                    (len + index).max(0)
                } else {
                    index.min(len)
                };
                items.insert(usize::try_from(at).unwrap_or(0), a[1].clone());
                Ok(none)
            }
            "pop" => {
                let a = positional("list", method, args, 0, 1)?;
                if self.len() == 0 {
                    return Err(index_error("pop from empty list"));
                }
                let index = a.first().map(as_index).transpose()?.unwrap_or(-1);
                let i = self
                    .position(index)
                    .ok_or_else(|| index_error("pop index out of range"))?;
                Ok(lock(&self.0).remove(i))
            }
            "remove" => {
                let a = positional("list", method, args, 1, 1)?;
                let found = lock(&self.0).iter().position(|v| *v == a[0]);
                match found {
                    Some(i) => {
                        lock(&self.0).remove(i);
                        Ok(none)
                    }
                    None => Err(value_error("list.remove(x): x not in list")),
                }
            }
            "clear" => {
                positional("list", method, args, 0, 0)?;
                lock(&self.0).clear();
                Ok(none)
            }
            "reverse" => {
                positional("list", method, args, 0, 0)?;
                lock(&self.0).reverse();
                Ok(none)
            }
            "sort" => {
                let (pos, kwargs) = split_args(args)?;
                if !pos.is_empty() {
                    return Err(type_error("sort() takes no positional arguments"));
                }
                let mut reverse = false;
                if let Some(kwargs) = kwargs {
                    for key in kwargs.args() {
                        match key {
                            "reverse" => reverse = kwargs.peek::<Value>(key)?.is_true(),
                            other => {
                                return Err(type_error(format!(
                                    "'{other}' is an invalid keyword argument for sort()"
                                )));
                            }
                        }
                    }
                }
                let mut items = lock(&self.0).clone();
                sort_values(&mut items)?;
                if reverse {
                    items.reverse();
                }
                *lock(&self.0) = items;
                Ok(none)
            }
            "index" => {
                let a = positional("list", method, args, 1, 1)?;
                let found = lock(&self.0).iter().position(|v| *v == a[0]);
                found
                    .map(Value::from)
                    .ok_or_else(|| value_error(format!("{} is not in list", repr(&a[0]))))
            }
            "copy" => {
                positional("list", method, args, 0, 0)?;
                Ok(Value::from_object(PyList::new(lock(&self.0).clone())))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&repr(&Value::from_dyn_object(self.clone())))
    }
}

/// Sort as Python does for the types it can order: numbers with numbers, strings with
/// strings; anything else mixed is a `TypeError`.
fn sort_values(items: &mut [Value]) -> Result<(), Error> {
    let rank = |v: &Value| match v.kind() {
        ValueKind::Number | ValueKind::Bool => 0,
        ValueKind::String => 1,
        ValueKind::Seq => 2,
        _ => 3,
    };
    if let Some(first) = items.first() {
        let r = rank(first);
        if r == 3 || items.iter().any(|v| rank(v) != r) {
            return Err(type_error(
                "'<' not supported between instances of these types",
            ));
        }
    }
    items.sort();
    Ok(())
}

/// A Python dict: mutable, shared by reference, in insertion order.
#[derive(Debug, Default)]
pub struct PyDict(Mutex<IndexMap<Value, Value>>);

impl PyDict {
    /// A dict holding `map`.
    pub fn new(map: IndexMap<Value, Value>) -> Self {
        PyDict(Mutex::new(map))
    }

    fn admit(self: &Arc<Self>, value: &Value) -> Result<(), Error> {
        admit(value, Arc::as_ptr(self).cast::<()>())
    }

    fn insert_all(self: &Arc<Self>, pairs: Vec<(Value, Value)>) -> Result<(), Error> {
        for (_, v) in &pairs {
            self.admit(v)?;
        }
        let mut map = lock(&self.0);
        for (k, v) in pairs {
            if map.len() >= MAX_ITEMS && !map.contains_key(&k) {
                return Err(too_large());
            }
            map.insert(k, v);
        }
        Ok(())
    }
}

fn key_error(key: &Value) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("KeyError: {}", repr(key)),
    )
}

/// The pairs of a mapping, or of an iterable of two-item sequences (`dict.update`'s
/// argument).
fn pairs_of(value: &Value) -> Result<Vec<(Value, Value)>, Error> {
    if value.kind() == ValueKind::Map {
        return value
            .try_iter()?
            .map(|k| {
                let v = value.get_item(&k)?;
                Ok((k, v))
            })
            .collect();
    }
    let items = value.try_iter().map_err(|_| {
        type_error(format!(
            "'{}' object is not iterable",
            super::value::type_name(value)
        ))
    })?;
    items
        .enumerate()
        .map(|(i, item)| {
            let parts: Vec<Value> = item
                .try_iter()
                .map_err(|_| {
                    type_error(format!(
                        "cannot convert dictionary update sequence element #{i} to a sequence"
                    ))
                })?
                .collect();
            match <[Value; 2]>::try_from(parts) {
                Ok([k, v]) => Ok((k, v)),
                Err(parts) => Err(value_error(format!(
                    "dictionary update sequence element #{i} has length {}; 2 is required",
                    parts.len()
                ))),
            }
        })
        .collect()
}

impl Object for PyDict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        lock(&self.0).get(key).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(lock(&self.0).keys().cloned().collect())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(lock(&self.0).len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let none = Value::from(());
        match method {
            "update" => {
                let (pos, kwargs) = split_args(args)?;
                if pos.len() > 1 {
                    return Err(type_error(format!(
                        "update expected at most 1 argument, got {}",
                        pos.len()
                    )));
                }
                let mut pairs = match pos.first() {
                    Some(other) => pairs_of(other)?,
                    None => Vec::new(),
                };
                if let Some(kwargs) = kwargs {
                    for key in kwargs.args() {
                        pairs.push((Value::from(key), kwargs.peek::<Value>(key)?));
                    }
                }
                self.insert_all(pairs)?;
                Ok(none)
            }
            "setdefault" => {
                let a = positional("dict", method, args, 1, 2)?;
                if let Some(v) = lock(&self.0).get(&a[0]) {
                    return Ok(v.clone());
                }
                let default = a.get(1).cloned().unwrap_or_else(|| none.clone());
                self.insert_all(vec![(a[0].clone(), default.clone())])?;
                Ok(default)
            }
            "pop" => {
                let a = positional("dict", method, args, 1, 2)?;
                let removed = lock(&self.0).shift_remove(&a[0]);
                match (removed, a.get(1)) {
                    (Some(v), _) => Ok(v),
                    (None, Some(default)) => Ok(default.clone()),
                    (None, None) => Err(key_error(&a[0])),
                }
            }
            "popitem" => {
                positional("dict", method, args, 0, 0)?;
                let last = lock(&self.0).pop();
                match last {
                    Some((k, v)) => Ok(Value::from_object(PyTuple(vec![k, v]))),
                    None => Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "KeyError: 'popitem(): dictionary is empty'",
                    )),
                }
            }
            "clear" => {
                positional("dict", method, args, 0, 0)?;
                lock(&self.0).clear();
                Ok(none)
            }
            "copy" => {
                positional("dict", method, args, 0, 0)?;
                Ok(Value::from_object(PyDict::new(lock(&self.0).clone())))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&repr(&Value::from_dyn_object(self.clone())))
    }
}

/// The error for a mutating method called on a list or dict that cannot change in place
/// (one built by a filter or function), or `None` for any other call.
pub fn immutable_error(value: &Value, method: &str) -> Option<Error> {
    let is_container = matches!(value.kind(), ValueKind::Seq | ValueKind::Map)
        && !value.is_tuple()
        && value.downcast_object_ref::<KvLookup>().is_none();
    (is_container && MUTATORS.contains(&method)).then(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "{method}() cannot change this value in place: only lists and dicts from the \
                 context or written as literals in the template can be (copy it into a literal \
                 first, e.g. `{{% set x = [] + value %}}`)"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mutating_calls() {
        assert!(mutates("{{ l.append(4) }}"));
        assert!(mutates("{% set _ = d.update ({'a': 1}) %}"));
        assert!(!mutates("{{ l | join(',') }}{{ d.items() }}"));
        assert!(!mutates("{{ x.appendix }}"));
    }

    #[test]
    fn rewrites_literals_not_subscripts() {
        assert_eq!(
            rewrite("{% set x = [] %}{{ y[0] }}{{ {'a': [1]} }}"),
            "{% set x = ([]|__st2_mutable) %}{{ y[0] }}{{ ({'a': ([1]|__st2_mutable)}|__st2_mutable) }}"
        );
        assert_eq!(
            rewrite("{% for i in [1, 2] %}{{ f([3])[0] }}{% endfor %}"),
            "{% for i in ([1, 2]|__st2_mutable) %}{{ f(([3]|__st2_mutable))[0] }}{% endfor %}"
        );
        assert_eq!(rewrite("text [1] {x}"), "text [1] {x}");
    }
}
