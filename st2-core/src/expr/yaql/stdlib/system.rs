//! Contexts and branching: `let`, `with`, `def`, `unpack`, `assert`, `call`, `switch`,
//! `selectCase`, `switchCase`, `selectAllCases`, `examine`, `coalesce`.

use std::sync::Arc;

use super::{Builder, Call, D, Kind, Slot, T, o, p};
use crate::expr::ErrorKind;
use crate::expr::yaql::eval::{Ev, Frame, Name, R, err, positional, value_error};
use crate::expr::yaql::stream::{Gen, VecStream};
use crate::expr::yaql::value::{Opaque, OpaqueKind, YaqlValue};

const F: Kind = Kind::Function;
const M: Kind = Kind::Method;

fn context(frame: Arc<Frame>) -> YaqlValue {
    YaqlValue::Opaque(Opaque(OpaqueKind::Context(frame)))
}

fn let_(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut vars = positional(c.rest_values());
    vars.extend(c.kw.iter().map(|(k, v)| (Name::Key(k.clone()), v.clone())));
    let frame = Frame::child(Some(c.frame.clone()), vars, Vec::new());
    let v = context(frame);
    ev.check_depth(&v)?;
    Ok(v)
}

fn with_(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let frame = Frame::child(
        Some(c.frame.clone()),
        positional(c.rest_values()),
        Vec::new(),
    );
    let v = context(frame);
    ev.check_depth(&v)?;
    Ok(v)
}

fn def_(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let name: Arc<str> = Arc::from(c.s(0));
    let Some(body) = c.lam(1) else {
        return Err(value_error("def() needs a function body"));
    };
    let frame = Frame::child(
        Some(c.frame.clone()),
        Vec::new(),
        vec![(name, body.node.clone())],
    );
    Ok(context(frame))
}

fn unpack(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let names: Vec<YaqlValue> = c.rest_values();
    let items = ev.collect(c.v(0))?;
    let vars = if names.is_empty() {
        positional(items)
    } else {
        if names.len() != items.len() {
            return Err(value_error(format!(
                "Cannot unpack {} elements into {}",
                items.len().min(names.len() + 1),
                names.len()
            )));
        }
        names
            .iter()
            .zip(items)
            .map(|(n, v)| (Name::parse(n.as_str().unwrap_or("")), v))
            .collect()
    };
    let v = context(Frame::child(Some(c.frame.clone()), vars, Vec::new()));
    ev.check_depth(&v)?;
    Ok(v)
}

fn assert_(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut obj = c.v(0).clone();
    if matches!(&obj, YaqlValue::Opaque(o) if matches!(o.0, OpaqueKind::Iter(_))) {
        let items = ev.collect(&obj)?;
        obj = memorized(items);
    }
    let ok = match c.lam(1) {
        Some(l) => ev.call_lambda(l, std::slice::from_ref(&obj))?.truthy(),
        None => false,
    };
    if !ok {
        let message = if c.has(2) { c.s(2) } else { "Assertion failed" };
        return Err(err(ErrorKind::Assertion, message));
    }
    Ok(obj)
}

fn call_(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let name = c.s(0).to_owned();
    let args = match c.v(1) {
        YaqlValue::List(l) => l.to_vec(),
        _ => Vec::new(),
    };
    let kwargs = match c.v(2) {
        YaqlValue::Dict(d) => d
            .iter()
            .filter_map(|(k, v)| match k {
                YaqlValue::Str(s) if is_keyword(s) => Some((s.clone(), v.clone())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let frame = c.frame.clone();
    ev.call_with_values(&frame, &name, args, kwargs)
}

/// yaql's keyword pattern: an identifier not starting with `__`.
fn is_keyword(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if (c.is_alphabetic() || c == '_'))
        && !s.starts_with("__")
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn switch(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    for slot in &c.rest {
        if let Slot::Rule(cond, value) = slot
            && ev.call_lambda(cond, &[])?.truthy()
        {
            return ev.call_lambda(value, &[]);
        }
    }
    Ok(YaqlValue::Null)
}

fn select_case(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let lambdas = c.rest_lambdas();
    for (i, l) in lambdas.iter().enumerate() {
        if ev.call_lambda(l, &[])?.truthy() {
            return Ok(YaqlValue::Int(i as i64));
        }
    }
    Ok(YaqlValue::Int(lambdas.len() as i64))
}

fn select_all_cases(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let lambdas = c.rest_lambdas();
    let mut i = 0usize;
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            while i < lambdas.len() {
                let idx = i;
                i += 1;
                if ev.call_lambda(&lambdas[idx], &[])?.truthy() {
                    return Ok(Some(YaqlValue::Int(idx as i64)));
                }
            }
            Ok(None)
        }),
        0,
    )
}

fn examine(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let lambdas = c.rest_lambdas();
    let mut i = 0usize;
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            let Some(l) = lambdas.get(i) else {
                return Ok(None);
            };
            i += 1;
            Ok(Some(YaqlValue::Bool(ev.call_lambda(l, &[])?.truthy())))
        }),
        0,
    )
}

fn switch_case(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let lambdas = c.rest_lambdas();
    let case = c.int(0);
    if case >= 0 && (case as usize) < lambdas.len() {
        return ev.call_lambda(&lambdas[case as usize], &[]);
    }
    match lambdas.last() {
        Some(l) => ev.call_lambda(l, &[]),
        None => Ok(YaqlValue::Null),
    }
}

fn coalesce(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    for l in c.rest_lambdas() {
        let v = ev.call_lambda(&l, &[])?;
        if !matches!(v, YaqlValue::Null) {
            return Ok(v);
        }
    }
    Ok(YaqlValue::Null)
}

/// A re-iterable snapshot (yaql's `memorize()`).
pub(crate) fn memorized(items: Vec<YaqlValue>) -> YaqlValue {
    YaqlValue::Opaque(Opaque(OpaqueKind::View(Arc::new(items), true)))
}

/// An iterator over `items` (for results yaql produces as generators).
pub(crate) fn iter_of(ev: &mut Ev<'_>, items: Vec<YaqlValue>) -> R<YaqlValue> {
    let depth = items.iter().map(YaqlValue::depth).max().unwrap_or(0);
    ev.lazy(VecStream::new(items), depth)
}

pub(crate) fn register(lib: &mut Builder) {
    lib.add("let", F, &[], let_).rest(T::Any).kwrest();
    lib.add("with", F, &[], with_).rest(T::Any);
    lib.add("def", F, &[p("name", T::Str), p("func", T::Lambda)], def_);
    lib.add("unpack", M, &[p("sequence", T::Iterable)], unpack)
        .rest(T::Str);
    lib.add(
        "assert",
        M,
        &[
            p("obj", T::Any),
            p("condition", T::Lambda),
            o("message", T::Str, D::Absent),
        ],
        assert_,
    );
    lib.add(
        "call",
        F,
        &[
            p("name", T::Str),
            p("args", T::Sequence),
            p("kwargs", T::Mapping),
        ],
        call_,
    );
    lib.add("switch", F, &[], switch).rest(T::Rule).no_kwargs();
    lib.add("selectCase", F, &[], select_case).rest(T::Lambda);
    lib.add("selectAllCases", F, &[], select_all_cases)
        .rest(T::Lambda);
    lib.add("examine", F, &[], examine).rest(T::Lambda);
    lib.add("switchCase", M, &[p("case", T::Int)], switch_case)
        .rest(T::Lambda);
    lib.add("coalesce", F, &[], coalesce).rest(T::Lambda);
}
