//! Lists, dicts and sets: literals, conversions, lookups, edits (every edit returns a new
//! value) and set algebra.

use std::collections::VecDeque;
use std::sync::Arc;

use super::system::iter_of;
use super::{Builder, Call, D, Kind, Slot, T, o, p};
use crate::expr::ErrorKind;
use crate::expr::yaql::eval::{Ev, R, err, key_error, no_matching_method, type_error};
use crate::expr::yaql::stream::{self, Gen, Src};
use crate::expr::yaql::value::{DictBuilder, Opaque, OpaqueKind, YaqlSet, YaqlValue};

const F: Kind = Kind::Function;
const M: Kind = Kind::Method;
const E: Kind = Kind::Extension;

fn is_iterator(v: &YaqlValue) -> bool {
    matches!(v, YaqlValue::Opaque(o) if matches!(o.0, OpaqueKind::Iter(_) | OpaqueKind::View(_, true)))
}

/// Arguments of `list(...)` / `set(...)`: iterator arguments are expanded, others kept.
fn expand_iterators(ev: &mut Ev<'_>, args: Vec<YaqlValue>) -> R<Vec<YaqlValue>> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        if is_iterator(&a) {
            out.extend(ev.collect(&a)?);
        } else {
            out.push(a);
        }
        ev.check_len(out.len())?;
    }
    Ok(out)
}

fn list_(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let items = expand_iterators(ev, c.rest_values())?;
    ev.list(items)
}

fn build_list(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    ev.list(c.rest_values())
}

fn to_list(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    match c.v(0) {
        YaqlValue::List(_) => Ok(c.v(0).clone()),
        other => {
            let items = ev.collect(other)?;
            ev.list(items)
        }
    }
}

fn flatten(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let src = c.v(0);
    let depth = src.depth();
    let mut stack: Vec<Src> = vec![stream::iterate(src)?];
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            while let Some(top) = stack.last_mut() {
                match ev.pull(&mut **top)? {
                    Some(item) if stream::is_iterable(&item) => {
                        if stack.len() >= 200 {
                            return Err(err(ErrorKind::Limit, "flatten nested too deeply"));
                        }
                        stack.push(stream::iterate(&item)?);
                    }
                    Some(item) => return Ok(Some(item)),
                    None => {
                        stack.pop();
                    }
                }
            }
            Ok(None)
        }),
        depth,
    )
}

fn list_indexer(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let YaqlValue::List(l) = c.v(0) else {
        return Err(type_error("not a list"));
    };
    let i = c.int(1);
    let n = l.len() as i64;
    let idx = if i < 0 { i + n } else { i };
    if idx < 0 || idx >= n {
        return Err(err(ErrorKind::Index, "tuple index out of range"));
    }
    Ok(l[idx as usize].clone())
}

fn dict_indexer(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    match c.v(0) {
        YaqlValue::Dict(d) => d.get(c.v(1)).cloned().ok_or_else(|| key_error(c.v(1))),
        _ => Err(type_error("not a dict")),
    }
}

fn dict_get(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    match c.v(0) {
        YaqlValue::Dict(d) => Ok(d.get(c.v(1)).cloned().unwrap_or_else(|| c.v(2).clone())),
        _ => Err(type_error("not a dict")),
    }
}

fn pairs_dict(ev: &mut Ev<'_>, slots: &[Slot], base: Option<DictBuilder>) -> R<YaqlValue> {
    let mut b = base.unwrap_or_default();
    for s in slots {
        if let Slot::Pair(k, v) = s {
            b.insert(k.clone(), v.clone());
        }
    }
    ev.dict(b)
}

fn dict_(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    pairs_dict(ev, &c.rest, None)
}

fn dict_from_items(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut items = stream::iterate(c.v(0))?;
    let mut b = DictBuilder::default();
    while let Some(pair) = ev.pull(&mut *items)? {
        let (k, v) = match &pair {
            YaqlValue::Str(s) => {
                let mut cs = s.chars();
                match (cs.next(), cs.next()) {
                    (Some(a), Some(b)) => (
                        YaqlValue::from(a.to_string()),
                        YaqlValue::from(b.to_string()),
                    ),
                    _ => return Err(err(ErrorKind::Value, "")),
                }
            }
            other => {
                let mut s = stream::iterate(other)?;
                let k = ev.pull(&mut *s)?;
                let v = ev.pull(&mut *s)?;
                match (k, v) {
                    (Some(k), Some(v)) => (k, v),
                    _ => return Err(err(ErrorKind::Value, "")),
                }
            }
        };
        b.insert(k, v);
        ev.check_len(b.len())?;
    }
    ev.dict(b)
}

fn to_dict(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut items = stream::iterate(c.v(0))?;
    let mut b = DictBuilder::default();
    while let Some(t) = ev.pull(&mut *items)? {
        let key = match c.lam(1) {
            Some(l) => ev.call_lambda(l, std::slice::from_ref(&t))?,
            None => YaqlValue::Null,
        };
        let value = match c.lam(2) {
            Some(l) => ev.call_lambda(l, std::slice::from_ref(&t))?,
            None => t,
        };
        b.insert(key, value);
        ev.check_len(b.len())?;
    }
    ev.dict(b)
}

fn dict_of(c: &Call) -> R<&crate::expr::yaql::value::YaqlDict> {
    match c.v(0) {
        YaqlValue::Dict(d) => Ok(d),
        _ => Err(type_error("not a dict")),
    }
}

fn dict_set(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut b = dict_of(c)?.to_builder();
    b.insert(c.v(1).clone(), c.v(2).clone());
    ev.dict(b)
}

fn dict_set_many(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut b = dict_of(c)?.to_builder();
    if let YaqlValue::Dict(r) = c.v(1) {
        for (k, v) in r.iter() {
            b.insert(k.clone(), v.clone());
        }
    }
    ev.dict(b)
}

fn dict_set_inline(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let base = dict_of(c)?.to_builder();
    pairs_dict(ev, &c.rest, Some(base))
}

fn dict_keys(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    ev.set(dict_of(c)?.keys().cloned())
}

fn dict_values(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Opaque(Opaque(OpaqueKind::View(
        Arc::new(dict_of(c)?.values().cloned().collect()),
        false,
    ))))
}

fn dict_items(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let items: Vec<YaqlValue> = dict_of(c)?
        .iter()
        .map(|(k, v)| YaqlValue::from(vec![k.clone(), v.clone()]))
        .collect();
    ev.set(items)
}

fn contains(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    super::math::contains(ev, c.v(1), c.v(0))
}

fn contains_key(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(dict_of(c)?.contains_key(c.v(1))))
}

fn contains_value(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let v = c.v(1);
    Ok(YaqlValue::Bool(dict_of(c)?.values().any(|x| x == v)))
}

fn is_list(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(matches!(c.v(0), YaqlValue::List(_))))
}

fn is_dict(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(matches!(c.v(0), YaqlValue::Dict(_))))
}

fn is_set(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(matches!(c.v(0), YaqlValue::Set(_))))
}

fn len_(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Int(match c.v(0) {
        YaqlValue::List(l) => l.len(),
        YaqlValue::Dict(d) => d.len(),
        YaqlValue::Set(s) => s.len(),
        _ => 0,
    } as i64))
}

/// An edit of a collection as a lazy stream: `f(index, item, out)` pushes the items to emit,
/// and `tail(last index, out)` what to emit after the end.
fn edit_stream(
    ev: &mut Ev<'_>,
    src: &YaqlValue,
    mut f: impl FnMut(i64, YaqlValue, &mut VecDeque<YaqlValue>) + Send + 'static,
    tail: impl FnOnce(i64, &mut VecDeque<YaqlValue>) + Send + 'static,
) -> R<YaqlValue> {
    let depth = src.depth();
    let mut s = stream::iterate(src)?;
    let mut i: i64 = -1;
    let mut pending: VecDeque<YaqlValue> = VecDeque::new();
    let mut tail = Some(tail);
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            loop {
                if let Some(v) = pending.pop_front() {
                    return Ok(Some(v));
                }
                let Some(t) = tail.take() else {
                    return Ok(None);
                };
                match ev.pull(&mut *s)? {
                    Some(item) => {
                        tail = Some(t);
                        i += 1;
                        f(i, item, &mut pending);
                    }
                    None => t(i, &mut pending),
                }
            }
        }),
        depth,
    )
}

fn delete(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (position, count) = (c.int(1), c.int(2));
    edit_stream(
        ev,
        c.v(0),
        move |i, t, out| {
            let removed = if count >= 0 {
                position <= i && i < position.saturating_add(count)
            } else {
                i >= position
            };
            if !removed {
                out.push_back(t);
            }
        },
        |_, _| {},
    )
}

/// Whether index `i` is among the `count` items from `position` (a negative count: all from
/// `position` on).
fn in_edit_range(i: i64, position: i64, count: i64) -> bool {
    if count >= 0 {
        position <= i && i < position.saturating_add(count)
    } else {
        i >= position
    }
}

fn replace(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (position, count) = (c.int(1), c.int(3));
    let value = c.v(2).clone();
    let mut yielded = false;
    edit_stream(
        ev,
        c.v(0),
        move |i, t, out| {
            let hit = in_edit_range(i, position, count);
            if hit {
                if !yielded {
                    yielded = true;
                    out.push_back(value.clone());
                }
            } else {
                out.push_back(t);
            }
        },
        |_, _| {},
    )
}

fn replace_many(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (position, count) = (c.int(1), c.int(3));
    let values = ev.collect(c.v(2))?;
    let mut yielded = false;
    edit_stream(
        ev,
        c.v(0),
        move |i, t, out| {
            let hit = in_edit_range(i, position, count);
            if hit {
                if !yielded {
                    yielded = true;
                    out.extend(values.iter().cloned());
                }
            } else {
                out.push_back(t);
            }
        },
        |_, _| {},
    )
}

fn delete_keys(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut b = dict_of(c)?.to_builder();
    for k in c.rest_values() {
        b.remove(&k);
    }
    ev.dict(b)
}

fn delete_all(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut b = dict_of(c)?.to_builder();
    for k in ev.collect(c.v(1))? {
        b.remove(&k);
    }
    ev.dict(b)
}

fn list_insert(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let YaqlValue::List(l) = c.v(0) else {
        return Err(type_error("not a list"));
    };
    let mut items = l.to_vec();
    let n = items.len() as i64;
    let pos = c.int(1);
    let at = if pos < 0 {
        (pos + n).max(0)
    } else {
        pos.min(n)
    };
    items.insert(at as usize, c.v(2).clone());
    ev.list(items)
}

fn iter_insert(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    if let YaqlValue::Set(_) = c.v(0) {
        return Err(no_matching_method("insert", c.v(0)));
    }
    let position = c.int(1);
    let value = c.v(2).clone();
    let value2 = value.clone();
    edit_stream(
        ev,
        c.v(0),
        move |i, t, out| {
            if i == position {
                out.push_back(value.clone());
            }
            out.push_back(t);
        },
        move |last, out| {
            if position > last {
                out.push_back(value2);
            }
        },
    )
}

fn insert_many(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let position = c.int(1);
    let values = ev.collect(c.v(2))?;
    let values2 = values.clone();
    let mut started = false;
    edit_stream(
        ev,
        c.v(0),
        move |i, t, out| {
            if !started {
                started = true;
                if position < 0 {
                    out.extend(values.iter().cloned());
                }
            }
            if i == position {
                out.extend(values.iter().cloned());
            }
            out.push_back(t);
        },
        move |last, out| {
            if last == -1 && position < 0 {
                out.extend(values2.iter().cloned());
            }
            if position > last {
                out.extend(values2);
            }
        },
    )
}

fn set_(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let items = expand_iterators(ev, c.rest_values())?;
    ev.set(items)
}

fn to_set(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let items = ev.collect(c.v(0))?;
    ev.set(items)
}

fn two_sets(c: &Call) -> R<(&YaqlSet, &YaqlSet)> {
    match (c.v(0), c.v(1)) {
        (YaqlValue::Set(a), YaqlValue::Set(b)) => Ok((a, b)),
        _ => Err(type_error("not sets")),
    }
}

fn union(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (a, b) = two_sets(c)?;
    ev.set(a.iter().chain(b.iter()).cloned())
}

fn intersect(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (a, b) = two_sets(c)?;
    ev.set(a.iter().filter(|x| b.contains(x)).cloned())
}

fn difference(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (a, b) = two_sets(c)?;
    ev.set(a.iter().filter(|x| !b.contains(x)).cloned())
}

fn symmetric_difference(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (a, b) = two_sets(c)?;
    let items: Vec<YaqlValue> = a
        .iter()
        .filter(|x| !b.contains(x))
        .chain(b.iter().filter(|x| !a.contains(x)))
        .cloned()
        .collect();
    ev.set(items)
}

fn set_add(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let YaqlValue::Set(s) = c.v(0) else {
        return Err(type_error("not a set"));
    };
    ev.set(s.iter().cloned().chain(c.rest_values()))
}

fn set_remove(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let YaqlValue::Set(s) = c.v(0) else {
        return Err(type_error("not a set"));
    };
    let remove: YaqlSet = c.rest_values().into_iter().collect();
    ev.set(s.iter().filter(|x| !remove.contains(x)).cloned())
}

/// `reverse()`: a materialized, reversed iterator.
pub(crate) fn reversed(ev: &mut Ev<'_>, v: &YaqlValue) -> R<YaqlValue> {
    let mut items = ev.collect(v)?;
    items.reverse();
    iter_of(ev, items)
}

pub(crate) fn register(lib: &mut Builder) {
    lib.add("list", F, &[], list_).rest(T::Any);
    lib.add("#list", F, &[], build_list).rest(T::Any);
    lib.add("toList", M, &[p("collection", T::Iterable)], to_list);
    lib.add("flatten", M, &[p("collection", T::Iterable)], flatten);
    lib.add(
        "#indexer",
        F,
        &[p("list", T::Sequence), p("index", T::Int)],
        list_indexer,
    );
    lib.add(
        "#indexer",
        F,
        &[p("dict", T::Mapping), p("key", T::Any)],
        dict_indexer,
    );
    lib.add(
        "#indexer",
        F,
        &[
            p("dict", T::Mapping),
            p("key", T::Any),
            p("default", T::Any),
        ],
        dict_get,
    );
    lib.add("dict", F, &[], dict_).rest(T::Pair).no_kwargs();
    lib.add("dict", F, &[p("items", T::Iterable)], dict_from_items)
        .no_kwargs();
    lib.add("#map", F, &[], dict_).rest(T::Pair).no_kwargs();
    lib.add(
        "toDict",
        M,
        &[
            p("collection", T::Iterable),
            p("keySelector", T::Lambda),
            o("valueSelector", T::Lambda, D::Null),
        ],
        to_dict,
    );
    lib.add(
        "get",
        M,
        &[
            p("dict", T::Mapping),
            p("key", T::Any),
            o("default", T::Any, D::Null),
        ],
        dict_get,
    );
    lib.add(
        "set",
        M,
        &[p("dict", T::Mapping), p("key", T::Any), p("value", T::Any)],
        dict_set,
    )
    .no_kwargs();
    lib.add(
        "set",
        M,
        &[p("dict", T::Mapping), p("replacements", T::Mapping)],
        dict_set_many,
    )
    .no_kwargs();
    lib.add("set", M, &[p("dict", T::Mapping)], dict_set_inline)
        .rest(T::Pair)
        .no_kwargs();
    lib.add("keys", M, &[p("dict", T::Mapping)], dict_keys);
    lib.add("values", M, &[p("dict", T::Mapping)], dict_values);
    lib.add("items", M, &[p("dict", T::Mapping)], dict_items);
    lib.add(
        "contains",
        M,
        &[p("collection", T::Iterable), p("value", T::Any)],
        contains,
    );
    lib.add(
        "containsKey",
        M,
        &[p("dict", T::Mapping), p("key", T::Any)],
        contains_key,
    );
    lib.add(
        "containsValue",
        M,
        &[p("dict", T::Mapping), p("value", T::Any)],
        contains_value,
    );
    lib.add("isList", F, &[p("arg", T::Any)], is_list);
    lib.add("isDict", F, &[p("arg", T::Any)], is_dict);
    lib.add("isSet", F, &[p("arg", T::Any)], is_set);
    lib.add("len", E, &[p("dict", T::Mapping)], len_);
    lib.add("len", E, &[p("sequence", T::Sequence)], len_);
    lib.add("len", E, &[p("set", T::Set)], len_);
    lib.add(
        "delete",
        M,
        &[
            p("collection", T::Iterable),
            p("position", T::Int),
            o("count", T::Int, D::I(1)),
        ],
        delete,
    );
    lib.add("delete", M, &[p("dict", T::Mapping)], delete_keys)
        .rest(T::Any);
    lib.add(
        "deleteAll",
        M,
        &[p("dict", T::Mapping), p("keys", T::Iterable)],
        delete_all,
    );
    lib.add(
        "replace",
        M,
        &[
            p("collection", T::Iterable),
            p("position", T::Int),
            p("value", T::Any),
            o("count", T::Int, D::I(1)),
        ],
        replace,
    );
    lib.add(
        "replaceMany",
        M,
        &[
            p("collection", T::Iterable),
            p("position", T::Int),
            p("values", T::Iterable),
            o("count", T::Int, D::I(1)),
        ],
        replace_many,
    );
    lib.add(
        "insert",
        M,
        &[
            p("collection", T::Sequence),
            p("position", T::Int),
            p("value", T::Any),
        ],
        list_insert,
    );
    lib.add(
        "insert",
        M,
        &[
            p("collection", T::Iterable),
            p("position", T::Int),
            p("value", T::Any),
        ],
        iter_insert,
    );
    lib.add(
        "insertMany",
        M,
        &[
            p("collection", T::Iterable),
            p("position", T::Int),
            p("values", T::Iterable),
        ],
        insert_many,
    );
    lib.add("set", F, &[], set_).rest(T::Any);
    lib.add("toSet", M, &[p("collection", T::Iterable)], to_set);
    lib.add("union", M, &[p("left", T::Set), p("right", T::Set)], union);
    lib.add(
        "intersect",
        M,
        &[p("left", T::Set), p("right", T::Set)],
        intersect,
    );
    lib.add(
        "difference",
        M,
        &[p("left", T::Set), p("right", T::Set)],
        difference,
    );
    lib.add(
        "symmetricDifference",
        M,
        &[p("left", T::Set), p("right", T::Set)],
        symmetric_difference,
    );
    lib.add("add", M, &[p("set", T::Set)], set_add).rest(T::Any);
    lib.add("remove", M, &[p("set", T::Set)], set_remove)
        .rest(T::Any);
}
