//! Query methods: `select`, `where`, `orderBy`, `groupBy`, aggregation, slicing, generators.
//! Most return lazy iterators, as yaql's do, so infinite sources (`sequence()`, `cycle()`)
//! work as long as something (`take`, `first`) bounds them.

use std::cmp::Ordering as Cmp;
use std::collections::VecDeque;
use std::sync::Arc;

use super::math::sort_cmp;
use super::system::{iter_of, memorized};
use super::{Builder, Call, D, Kind, T, o, p};
use crate::expr::ErrorKind;
use crate::expr::yaql::eval::{Ev, Lambda, R, err, type_error, value_error};
use crate::expr::yaql::parser::BinOp;
use crate::expr::yaql::stream::{self, Chain, Filter, Gen, Map, Ordering, Slice, Src};
use crate::expr::yaql::value::{DictBuilder, Opaque, OpaqueKind, Seen, YaqlValue, py_eq};

const F: Kind = Kind::Function;
const M: Kind = Kind::Method;
const E: Kind = Kind::Extension;

fn stop_iteration(msg: &str) -> crate::expr::yaql::eval::Error {
    err(ErrorKind::Value, format!("StopIteration: {msg}"))
}

fn lambda(c: &Call, i: usize) -> R<&Lambda> {
    c.lam(i)
        .ok_or_else(|| type_error("'NoneType' object is not callable"))
}

fn src(c: &Call, i: usize) -> R<(Src, u32)> {
    let v = c.v(i);
    Ok((stream::iterate(v)?, v.depth()))
}

fn where_(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (s, depth) = src(c, 0)?;
    let f = lambda(c, 1)?.clone();
    ev.lazy(Filter::new(s, f), depth)
}

fn select(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (s, depth) = src(c, 0)?;
    let f = lambda(c, 1)?.clone();
    ev.lazy(Map::new(s, f), depth)
}

fn non_negative(n: i64, what: &str) -> R<usize> {
    usize::try_from(n).map_err(|_| {
        value_error(format!(
            "{what} argument for islice() must be None or an integer: 0 <= x <= sys.maxsize."
        ))
    })
}

fn skip(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (s, depth) = src(c, 0)?;
    let n = non_negative(c.int(1), "Indices")?;
    ev.lazy(
        Slice {
            src: s,
            skip: n,
            take: None,
        },
        depth,
    )
}

fn limit(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (s, depth) = src(c, 0)?;
    let n = non_negative(c.int(1), "Stop")?;
    ev.lazy(
        Slice {
            src: s,
            skip: 0,
            take: Some(n),
        },
        depth,
    )
}

fn append(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (s, depth) = src(c, 0)?;
    let extra = c.rest_values();
    let depth = extra.iter().map(YaqlValue::depth).fold(depth, u32::max);
    let parts: VecDeque<Src> = [s, Box::new(stream::VecStream::new(extra)) as Src].into();
    ev.lazy(Chain { parts }, depth)
}

fn concat(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut parts = VecDeque::new();
    let mut depth = 0;
    for v in c.rest_values() {
        depth = depth.max(v.depth());
        parts.push_back(stream::iterate(&v)?);
    }
    ev.lazy(Chain { parts }, depth)
}

fn distinct(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, depth) = src(c, 0)?;
    let key = c.lam(1).cloned();
    let mut seen = Seen::default();
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            while let Some(t) = ev.pull(&mut *s)? {
                let k = match &key {
                    Some(l) => ev.call_lambda(l, std::slice::from_ref(&t))?,
                    None => t.clone(),
                };
                if seen.insert(k).1 {
                    ev.check_len(seen.len())?;
                    return Ok(Some(t));
                }
            }
            Ok(None)
        }),
        depth,
    )
}

fn enumerate(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, depth) = src(c, 0)?;
    let mut i = c.int(1);
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| match ev.pull(&mut *s)? {
            Some(t) => {
                let pair = YaqlValue::from(vec![YaqlValue::Int(i), t]);
                i = i.saturating_add(1);
                Ok(Some(pair))
            }
            None => Ok(None),
        }),
        depth.saturating_add(1),
    )
}

fn any(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, _) = src(c, 0)?;
    while let Some(t) = ev.pull(&mut *s)? {
        let ok = match c.lam(1) {
            Some(l) => ev.call_lambda(l, &[t])?.truthy(),
            None => true,
        };
        if ok {
            return Ok(YaqlValue::Bool(true));
        }
    }
    Ok(YaqlValue::Bool(false))
}

fn all(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, _) = src(c, 0)?;
    while let Some(t) = ev.pull(&mut *s)? {
        let ok = match c.lam(1) {
            Some(l) => ev.call_lambda(l, &[t])?.truthy(),
            None => t.truthy(),
        };
        if !ok {
            return Ok(YaqlValue::Bool(false));
        }
    }
    Ok(YaqlValue::Bool(true))
}

fn count(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    match c.v(0) {
        YaqlValue::List(l) => Ok(YaqlValue::Int(l.len() as i64)),
        YaqlValue::Set(s) => Ok(YaqlValue::Int(s.len() as i64)),
        _ => {
            let (mut s, _) = src(c, 0)?;
            let mut n = 0i64;
            while ev.pull(&mut *s)?.is_some() {
                n += 1;
            }
            Ok(YaqlValue::Int(n))
        }
    }
}

fn memorize(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    match c.v(0) {
        v @ YaqlValue::Opaque(o) if matches!(o.0, OpaqueKind::Iter(_)) => {
            let items = ev.collect(v)?;
            Ok(memorized(items))
        }
        other => Ok(other.clone()),
    }
}

/// `functools.reduce(f, collection[, seed])`.
fn reduce_with(
    ev: &mut Ev<'_>,
    collection: &YaqlValue,
    seed: Option<YaqlValue>,
    mut f: impl FnMut(&mut Ev<'_>, YaqlValue, YaqlValue) -> R<YaqlValue>,
) -> R<YaqlValue> {
    let mut s = stream::iterate(collection)?;
    let mut acc = match seed {
        Some(v) => v,
        None => match ev.pull(&mut *s)? {
            Some(v) => v,
            None => {
                return Err(type_error(
                    "reduce() of empty iterable with no initial value",
                ));
            }
        },
    };
    while let Some(t) = ev.pull(&mut *s)? {
        acc = f(ev, acc, t)?;
    }
    Ok(acc)
}

fn seed(c: &Call, i: usize) -> Option<YaqlValue> {
    c.has(i).then(|| c.v(i).clone())
}

fn sum(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    reduce_with(ev, c.v(0), seed(c, 1), |ev, a, b| {
        ev.apply_binary(BinOp::Add, a, b)
    })
}

fn max_(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    reduce_with(ev, c.v(0), seed(c, 1), |_, a, b| {
        Ok(if super::math::compare(BinOp::Gt, &b, &a)? {
            b
        } else {
            a
        })
    })
}

fn min_(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    reduce_with(ev, c.v(0), seed(c, 1), |_, a, b| {
        Ok(if super::math::compare(BinOp::Gt, &b, &a)? {
            a
        } else {
            b
        })
    })
}

fn aggregate(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let f = lambda(c, 1)?.clone();
    reduce_with(ev, c.v(0), seed(c, 2), move |ev, a, b| {
        ev.call_lambda(&f, &[a, b])
    })
}

fn first(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, _) = src(c, 0)?;
    match ev.pull(&mut *s)? {
        Some(v) => Ok(v),
        None if c.has(1) => Ok(c.v(1).clone()),
        None => Err(stop_iteration("")),
    }
}

fn single(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, _) = src(c, 0)?;
    let Some(v) = ev.pull(&mut *s)? else {
        return Err(stop_iteration(""));
    };
    if ev.pull(&mut *s)?.is_some() {
        return Err(stop_iteration("Collection contains more than one item"));
    }
    Ok(v)
}

fn last(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, _) = src(c, 0)?;
    let mut last = None;
    while let Some(v) = ev.pull(&mut *s)? {
        last = Some(v);
    }
    match last {
        Some(v) => Ok(v),
        None if c.has(1) => Ok(c.v(1).clone()),
        None => Err(stop_iteration("")),
    }
}

fn select_many(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, depth) = src(c, 0)?;
    let f = lambda(c, 1)?.clone();
    let mut inner: Option<Src> = None;
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            loop {
                if let Some(i) = &mut inner {
                    if let Some(v) = ev.pull(&mut **i)? {
                        return Ok(Some(v));
                    }
                    inner = None;
                }
                let Some(item) = ev.pull(&mut *s)? else {
                    return Ok(None);
                };
                let r = ev.call_lambda(&f, &[item])?;
                if stream::is_iterable(&r) {
                    inner = Some(stream::iterate(&r)?);
                } else {
                    return Ok(Some(r));
                }
            }
        }),
        depth,
    )
}

fn range_stream(ev: &mut Ev<'_>, start: i64, stop: i64, step: i64) -> R<YaqlValue> {
    if step == 0 {
        return Err(value_error("range() arg 3 must not be zero"));
    }
    let mut cur = start;
    ev.lazy(
        Gen(move |_: &mut Ev<'_>| {
            if (step > 0 && cur < stop) || (step < 0 && cur > stop) {
                let v = cur;
                match cur.checked_add(step) {
                    Some(n) => cur = n,
                    None => cur = stop,
                }
                Ok(Some(YaqlValue::Int(v)))
            } else {
                Ok(None)
            }
        }),
        0,
    )
}

fn range1(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    range_stream(ev, 0, c.int(0), 1)
}

fn range3(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    range_stream(ev, c.int(0), c.int(1), c.int(2))
}

fn sequence(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut cur = c.int(0);
    let step = c.int(1);
    ev.lazy(
        Gen(move |_: &mut Ev<'_>| {
            let v = cur;
            cur = cur
                .checked_add(step)
                .ok_or_else(super::super::eval::overflow)?;
            Ok(Some(YaqlValue::Int(v)))
        }),
        0,
    )
}

/// Sort `items` by their key vectors (`<`/`>` on each key in turn), stably.
fn sort_items(
    ev: &mut Ev<'_>,
    items: &[YaqlValue],
    keys: &[Vec<YaqlValue>],
    descending: &[bool],
) -> R<Vec<YaqlValue>> {
    let n = items.len();
    let log = (usize::BITS - n.leading_zeros()) as u64;
    ev.step(n as u64 * log.max(1) * descending.len().max(1) as u64)?;
    let cmp = |a: usize, b: usize| -> R<Cmp> {
        for (f, desc) in descending.iter().enumerate() {
            match sort_cmp(&keys[a][f], &keys[b][f])? {
                Cmp::Equal => continue,
                c => return Ok(if *desc { c.reverse() } else { c }),
            }
        }
        Ok(Cmp::Equal)
    };
    let order = merge_sort((0..n).collect(), &cmp)?;
    Ok(order.into_iter().map(|i| items[i].clone()).collect())
}

/// A stable merge sort whose comparison may fail (and need not be a total order: NaN keys
/// and mixed types must not make sorting panic).
fn merge_sort(v: Vec<usize>, cmp: &dyn Fn(usize, usize) -> R<Cmp>) -> R<Vec<usize>> {
    let mut src = v;
    let n = src.len();
    let mut dst = vec![0usize; n];
    let mut width = 1;
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j, mut k) = (start, mid, start);
            while i < mid && j < end {
                if cmp(src[j], src[i])? == Cmp::Less {
                    dst[k] = src[j];
                    j += 1;
                } else {
                    dst[k] = src[i];
                    i += 1;
                }
                k += 1;
            }
            dst[k..k + (mid - i)].copy_from_slice(&src[i..mid]);
            k += mid - i;
            dst[k..k + (end - j)].copy_from_slice(&src[j..end]);
            start = end;
        }
        std::mem::swap(&mut src, &mut dst);
        width *= 2;
    }
    Ok(src)
}

fn ordering(
    ev: &mut Ev<'_>,
    items: Vec<YaqlValue>,
    keys: Vec<Vec<YaqlValue>>,
    descending: Vec<bool>,
) -> R<YaqlValue> {
    let sorted = sort_items(ev, &items, &keys, &descending)?;
    let v = YaqlValue::Opaque(Opaque(OpaqueKind::Ordering(Arc::new(Ordering {
        items,
        keys,
        descending,
        sorted: Arc::new(sorted),
    }))));
    ev.check_depth(&v)?;
    Ok(v)
}

fn order_by_dir(ev: &mut Ev<'_>, c: &Call, desc: bool) -> R<YaqlValue> {
    let items = ev.collect(c.v(0))?;
    let f = lambda(c, 1)?.clone();
    let mut keys = Vec::with_capacity(items.len());
    for t in &items {
        keys.push(vec![ev.call_lambda(&f, std::slice::from_ref(t))?]);
    }
    ordering(ev, items, keys, vec![desc])
}

fn order_by(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    order_by_dir(ev, c, false)
}

fn order_by_descending(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    order_by_dir(ev, c, true)
}

fn then_by_dir(ev: &mut Ev<'_>, c: &Call, desc: bool) -> R<YaqlValue> {
    let YaqlValue::Opaque(Opaque(OpaqueKind::Ordering(ord))) = c.v(0) else {
        return Err(type_error("thenBy() needs the result of orderBy()"));
    };
    let f = lambda(c, 1)?.clone();
    let mut keys = ord.keys.clone();
    for (i, t) in ord.items.iter().enumerate() {
        keys[i].push(ev.call_lambda(&f, std::slice::from_ref(t))?);
    }
    let mut descending = ord.descending.clone();
    descending.push(desc);
    ordering(ev, ord.items.clone(), keys, descending)
}

fn then_by(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    then_by_dir(ev, c, false)
}

fn then_by_descending(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    then_by_dir(ev, c, true)
}

fn group_by(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, depth) = src(c, 0)?;
    let key_sel = lambda(c, 1)?.clone();
    let value_sel = c.lam(2).cloned();
    let aggregator = c.lam(3).cloned();
    let mut keys = Seen::default();
    let mut groups: Vec<Vec<YaqlValue>> = Vec::new();
    let mut total = 0usize;
    while let Some(t) = ev.pull(&mut *s)? {
        let value = match &value_sel {
            Some(l) => ev.call_lambda(l, std::slice::from_ref(&t))?,
            None => t.clone(),
        };
        let key = ev.call_lambda(&key_sel, &[t])?;
        let (i, new) = keys.insert(key);
        if new {
            groups.push(Vec::new());
        }
        groups[i].push(value);
        total += 1;
        ev.check_len(total)?;
    }
    let mut pending: VecDeque<(YaqlValue, Vec<YaqlValue>)> =
        keys.into_values().into_iter().zip(groups).collect();
    let mut failure: Option<crate::expr::yaql::eval::Error> = None;
    let mut allow_fallback = true;
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            let Some((key, values)) = pending.pop_front() else {
                return Ok(None);
            };
            let values = ev.list(values)?;
            let Some(agg) = &aggregator else {
                return Ok(Some(YaqlValue::from(vec![key, values])));
            };
            if failure.is_none() {
                match ev.call_lambda(agg, std::slice::from_ref(&values)) {
                    Err(e)
                        if matches!(e.kind, ErrorKind::NoMatchingFunction | ErrorKind::Index) =>
                    {
                        failure = Some(e);
                    }
                    Err(e) => return Err(e),
                    Ok(result) => {
                        let v = match &values {
                            YaqlValue::List(v) => v.clone(),
                            _ => return Err(type_error("group values")),
                        };
                        let like_old = v.len() == 2
                            && matches!(&result, YaqlValue::List(r)
                                if r.len() == 2 && py_eq(&r[0], &v[0]));
                        if !like_old {
                            allow_fallback = false;
                        }
                        return Ok(Some(YaqlValue::from(vec![key, result])));
                    }
                }
            }
            if allow_fallback {
                let item = YaqlValue::from(vec![key, values]);
                if let Ok(r) = ev.call_lambda(agg, &[item]) {
                    let two = match &r {
                        YaqlValue::List(l) => l.len() == 2,
                        YaqlValue::Str(s) => s.chars().count() == 2,
                        YaqlValue::Dict(d) => d.len() == 2,
                        YaqlValue::Set(s) => s.len() == 2,
                        _ => false,
                    };
                    if two {
                        return Ok(Some(r));
                    }
                }
            }
            Err(failure
                .clone()
                .unwrap_or_else(|| type_error("groupBy aggregator failed")))
        }),
        depth.saturating_add(1),
    )
}

fn join(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, depth) = src(c, 0)?;
    let other = ev.collect(c.v(1))?;
    let pred = lambda(c, 2)?.clone();
    let sel = lambda(c, 3)?.clone();
    let mut current: Option<YaqlValue> = None;
    let mut j = 0usize;
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            loop {
                let item = match &current {
                    Some(i) if j < other.len() => i.clone(),
                    _ => match ev.pull(&mut *s)? {
                        Some(i) => {
                            current = Some(i.clone());
                            j = 0;
                            if other.is_empty() {
                                continue;
                            }
                            i
                        }
                        None => return Ok(None),
                    },
                };
                let o = other[j].clone();
                j += 1;
                ev.step(1)?;
                if ev.call_lambda(&pred, &[item.clone(), o.clone()])?.truthy() {
                    return ev.call_lambda(&sel, &[item, o]).map(Some);
                }
            }
        }),
        depth,
    )
}

fn zip_streams(ev: &mut Ev<'_>, c: &Call, longest: bool) -> R<YaqlValue> {
    let mut streams = Vec::new();
    let mut depth = 0;
    for v in c.rest_values() {
        depth = depth.max(v.depth());
        streams.push(stream::iterate(&v)?);
    }
    let default =
        c.kw.iter()
            .find(|(k, _)| &**k == "default")
            .map_or(YaqlValue::Null, |(_, v)| v.clone());
    if c.kw.iter().any(|(k, _)| &**k != "default") || (!longest && !c.kw.is_empty()) {
        return Err(type_error("unexpected keyword argument"));
    }
    let mut done = vec![false; streams.len()];
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            if streams.is_empty() {
                return Ok(None);
            }
            let mut row = Vec::with_capacity(streams.len());
            let mut any = false;
            for (i, s) in streams.iter_mut().enumerate() {
                let item = if done[i] { None } else { ev.pull(&mut **s)? };
                match item {
                    Some(v) => {
                        any = true;
                        row.push(v);
                    }
                    None => {
                        if !longest {
                            return Ok(None);
                        }
                        done[i] = true;
                        row.push(default.clone());
                    }
                }
            }
            Ok(any.then(|| YaqlValue::from(row)))
        }),
        depth.saturating_add(1),
    )
}

fn zip(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    zip_streams(ev, c, false)
}

fn zip_longest(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    zip_streams(ev, c, true)
}

fn repeat(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let value = c.v(0).clone();
    let depth = value.depth();
    let times = c.int(1);
    let mut left = if times < 0 { None } else { Some(times) };
    ev.lazy(
        Gen(move |_: &mut Ev<'_>| match &mut left {
            Some(0) => Ok(None),
            Some(n) => {
                *n -= 1;
                Ok(Some(value.clone()))
            }
            None => Ok(Some(value.clone())),
        }),
        depth,
    )
}

fn cycle(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, depth) = src(c, 0)?;
    let mut saved: Vec<YaqlValue> = Vec::new();
    let mut first_pass = true;
    let mut i = 0usize;
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            if first_pass {
                if let Some(v) = ev.pull(&mut *s)? {
                    saved.push(v.clone());
                    ev.check_len(saved.len())?;
                    return Ok(Some(v));
                }
                first_pass = false;
            }
            if saved.is_empty() {
                return Ok(None);
            }
            let v = saved[i % saved.len()].clone();
            i = (i + 1) % saved.len();
            Ok(Some(v))
        }),
        depth,
    )
}

fn take_while(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, depth) = src(c, 0)?;
    let f = lambda(c, 1)?.clone();
    let mut done = false;
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            if done {
                return Ok(None);
            }
            match ev.pull(&mut *s)? {
                Some(t) if ev.call_lambda(&f, std::slice::from_ref(&t))?.truthy() => Ok(Some(t)),
                _ => {
                    done = true;
                    Ok(None)
                }
            }
        }),
        depth,
    )
}

fn skip_while(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, depth) = src(c, 0)?;
    let f = lambda(c, 1)?.clone();
    let mut skipping = true;
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            while let Some(t) = ev.pull(&mut *s)? {
                if skipping && ev.call_lambda(&f, std::slice::from_ref(&t))?.truthy() {
                    continue;
                }
                skipping = false;
                return Ok(Some(t));
            }
            Ok(None)
        }),
        depth,
    )
}

fn index_of(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, _) = src(c, 0)?;
    let mut i = 0i64;
    while let Some(t) = ev.pull(&mut *s)? {
        if py_eq(&t, c.v(1)) {
            return Ok(YaqlValue::Int(i));
        }
        i += 1;
    }
    Ok(YaqlValue::Int(-1))
}

fn last_index_of(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, _) = src(c, 0)?;
    let (mut i, mut found) = (0i64, -1i64);
    while let Some(t) = ev.pull(&mut *s)? {
        if py_eq(&t, c.v(1)) {
            found = i;
        }
        i += 1;
    }
    Ok(YaqlValue::Int(found))
}

fn index_where(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, _) = src(c, 0)?;
    let f = lambda(c, 1)?;
    let mut i = 0i64;
    while let Some(t) = ev.pull(&mut *s)? {
        if ev.call_lambda(f, &[t])?.truthy() {
            return Ok(YaqlValue::Int(i));
        }
        i += 1;
    }
    Ok(YaqlValue::Int(-1))
}

fn last_index_where(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, _) = src(c, 0)?;
    let f = lambda(c, 1)?;
    let (mut i, mut found) = (0i64, -1i64);
    while let Some(t) = ev.pull(&mut *s)? {
        if ev.call_lambda(f, &[t])?.truthy() {
            found = i;
        }
        i += 1;
    }
    Ok(YaqlValue::Int(found))
}

fn slice(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, depth) = src(c, 0)?;
    let n = non_negative(c.int(1), "Stop")?;
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            let mut chunk = Vec::new();
            while chunk.len() < n {
                match ev.pull(&mut *s)? {
                    Some(v) => chunk.push(v),
                    None => break,
                }
            }
            if chunk.is_empty() {
                Ok(None)
            } else {
                ev.list(chunk).map(Some)
            }
        }),
        depth.saturating_add(1),
    )
}

fn split_where(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let items = ev.collect(c.v(0))?;
    let f = lambda(c, 1)?;
    let mut out = Vec::new();
    let mut start = 0;
    for (end, t) in items.iter().enumerate() {
        if ev.call_lambda(f, std::slice::from_ref(t))?.truthy() {
            out.push(ev.list(items[start..end].to_vec())?);
            start = end + 1;
        }
    }
    if start != items.len() {
        out.push(ev.list(items[start..].to_vec())?);
    }
    iter_of(ev, out)
}

fn slice_where(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let items = ev.collect(c.v(0))?;
    let f = lambda(c, 1)?;
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev: Option<YaqlValue> = None;
    for (end, t) in items.iter().enumerate() {
        let p2 = ev.call_lambda(f, std::slice::from_ref(t))?;
        if let Some(p1) = &prev
            && !py_eq(p1, &p2)
        {
            out.push(ev.list(items[start..end].to_vec())?);
            start = end;
        }
        prev = Some(p2);
    }
    if start != items.len() {
        out.push(ev.list(items[start..].to_vec())?);
    }
    iter_of(ev, out)
}

fn split_at(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let items = ev.collect(c.v(0))?;
    let (a, _) = super::strings::slice_bounds(items.len(), c.int(1), None);
    let left = ev.list(items[..a].to_vec())?;
    let right = ev.list(items[a..].to_vec())?;
    ev.list(vec![left, right])
}

fn accumulate(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (mut s, depth) = src(c, 0)?;
    let f = lambda(c, 1)?.clone();
    let mut total: Option<YaqlValue> = seed(c, 2);
    let mut started = false;
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            if !started {
                started = true;
                if total.is_none() {
                    match ev.pull(&mut *s)? {
                        Some(v) => total = Some(v),
                        None => {
                            return Err(type_error(
                                "accumulate() of empty sequence with no initial value",
                            ));
                        }
                    }
                }
                return Ok(total.clone());
            }
            match ev.pull(&mut *s)? {
                Some(x) => {
                    let t = total.take().unwrap_or_default();
                    let next = ev.call_lambda(&f, &[t, x])?;
                    total = Some(next.clone());
                    Ok(Some(next))
                }
                None => Ok(None),
            }
        }),
        depth,
    )
}

fn reverse(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    super::collections::reversed(ev, c.v(0))
}

fn merge_dicts(
    ev: &mut Ev<'_>,
    d1: &crate::expr::yaql::value::YaqlDict,
    d2: &crate::expr::yaql::value::YaqlDict,
    list_merger: Option<&Lambda>,
    item_merger: Option<&Lambda>,
    max_levels: i64,
) -> R<YaqlValue> {
    ev.enter()?;
    let r = merge_dicts_inner(ev, d1, d2, list_merger, item_merger, max_levels);
    ev.leave();
    r
}

fn merge_dicts_inner(
    ev: &mut Ev<'_>,
    d1: &crate::expr::yaql::value::YaqlDict,
    d2: &crate::expr::yaql::value::YaqlDict,
    list_merger: Option<&Lambda>,
    item_merger: Option<&Lambda>,
    max_levels: i64,
) -> R<YaqlValue> {
    let mut b = DictBuilder::with_capacity(d1.len() + d2.len());
    for (k, v1) in d1.iter() {
        let merged = match d2.get(k) {
            None => v1.clone(),
            Some(v2) => {
                if max_levels != 1 && matches!(v2, YaqlValue::Dict(_)) {
                    let (YaqlValue::Dict(a), YaqlValue::Dict(bd)) = (v1, v2) else {
                        return Err(type_error(format!(
                            "Cannot merge <class '{}'> with <class 'dict'>",
                            v1.type_name()
                        )));
                    };
                    let next = if max_levels == 0 { 0 } else { max_levels - 1 };
                    merge_dicts(ev, a, bd, list_merger, item_merger, next)?
                } else if max_levels != 1 && matches!(v2, YaqlValue::List(_)) {
                    let (YaqlValue::List(a), YaqlValue::List(l2)) = (v1, v2) else {
                        return Err(type_error(format!(
                            "Cannot merge <class '{}'> with <class 'tuple'>",
                            v1.type_name()
                        )));
                    };
                    match list_merger {
                        Some(l) => ev.call_lambda(l, &[v1.clone(), v2.clone()])?,
                        None => {
                            let mut seen = Seen::default();
                            let mut out = Vec::new();
                            for x in a.iter().chain(l2.iter()) {
                                if seen.insert(x.clone()).1 {
                                    out.push(x.clone());
                                }
                            }
                            ev.list(out)?
                        }
                    }
                } else {
                    match item_merger {
                        Some(l) => ev.call_lambda(l, &[v1.clone(), v2.clone()])?,
                        None => v2.clone(),
                    }
                }
            }
        };
        b.insert(k.clone(), merged);
    }
    for (k, v2) in d2.iter() {
        if !d1.contains_key(k) {
            b.insert(k.clone(), v2.clone());
        }
    }
    ev.dict(b)
}

fn merge_with(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (YaqlValue::Dict(a), YaqlValue::Dict(b)) = (c.v(0), c.v(1)) else {
        return Err(type_error("mergeWith() needs two dicts"));
    };
    merge_dicts(ev, a, b, c.lam(2), c.lam(3), c.int(4))
}

fn is_iterable(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(stream::is_iterable(c.v(0))))
}

fn generate(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut current = c.v(0).clone();
    let pred = lambda(c, 1)?.clone();
    let producer = lambda(c, 2)?.clone();
    let selector = c.lam(3).cloned();
    let decycle = c.v(4).truthy();
    let mut seen = Seen::default();
    let mut done = false;
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            if done
                || !ev
                    .call_lambda(&pred, std::slice::from_ref(&current))?
                    .truthy()
            {
                done = true;
                return Ok(None);
            }
            if decycle {
                if !seen.insert(current.clone()).1 {
                    done = true;
                    return Ok(None);
                }
                ev.check_len(seen.len())?;
            }
            let out = match &selector {
                Some(s) => ev.call_lambda(s, std::slice::from_ref(&current))?,
                None => current.clone(),
            };
            let next = ev.call_lambda(&producer, std::slice::from_ref(&current))?;
            ev.check_depth(&next)?;
            current = next;
            Ok(Some(out))
        }),
        0,
    )
}

fn generate_many(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut queue: VecDeque<YaqlValue> = VecDeque::from([c.v(0).clone()]);
    let producer = lambda(c, 1)?.clone();
    let selector = c.lam(2).cloned();
    let decycle = c.v(3).truthy();
    let depth_first = c.v(4).truthy();
    let mut seen = Seen::default();
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            while let Some(item) = queue.pop_front() {
                if decycle {
                    if !seen.insert(item.clone()).1 {
                        continue;
                    }
                    ev.check_len(seen.len())?;
                }
                let out = match &selector {
                    Some(s) => ev.call_lambda(s, std::slice::from_ref(&item))?,
                    None => item.clone(),
                };
                let produced = ev.call_lambda(&producer, &[item])?;
                let produced = ev.collect(&produced)?;
                if depth_first {
                    for v in produced.into_iter().rev() {
                        queue.push_front(v);
                    }
                } else {
                    queue.extend(produced);
                }
                ev.check_len(queue.len())?;
                return Ok(Some(out));
            }
            Ok(None)
        }),
        0,
    )
}

fn default_if_empty(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let v = c.v(0);
    match v {
        YaqlValue::List(l) => Ok(if l.is_empty() {
            c.v(1).clone()
        } else {
            v.clone()
        }),
        YaqlValue::Set(s) => Ok(if s.is_empty() {
            c.v(1).clone()
        } else {
            v.clone()
        }),
        _ => {
            let items = ev.collect(v)?;
            Ok(if items.is_empty() {
                c.v(1).clone()
            } else {
                memorized(items)
            })
        }
    }
}

pub(crate) fn register(lib: &mut Builder) {
    let coll_lambda = [p("collection", T::Iterable), p("predicate", T::Lambda)];
    lib.add("where", M, &coll_lambda, where_);
    lib.add("filter", M, &coll_lambda, where_);
    lib.add(
        "select",
        M,
        &[p("collection", T::Iterable), p("selector", T::Lambda)],
        select,
    );
    lib.add(
        "map",
        M,
        &[p("collection", T::Iterable), p("selector", T::Lambda)],
        select,
    );
    lib.add(
        "limit",
        M,
        &[p("collection", T::Iterable), p("count", T::Int)],
        limit,
    );
    lib.add(
        "take",
        M,
        &[p("collection", T::Iterable), p("count", T::Int)],
        limit,
    );
    lib.add(
        "skip",
        M,
        &[p("collection", T::Iterable), p("count", T::Int)],
        skip,
    );
    lib.add("append", E, &[p("collection", T::Iterable)], append)
        .rest(T::Any);
    lib.add(
        "distinct",
        E,
        &[
            p("collection", T::Iterable),
            o("keySelector", T::Lambda, D::Null),
        ],
        distinct,
    );
    lib.add(
        "enumerate",
        E,
        &[p("collection", T::Iterable), o("start", T::Int, D::I(0))],
        enumerate,
    );
    lib.add(
        "any",
        E,
        &[
            p("collection", T::Iterable),
            o("predicate", T::Lambda, D::Null),
        ],
        any,
    );
    lib.add(
        "all",
        E,
        &[
            p("collection", T::Iterable),
            o("predicate", T::Lambda, D::Null),
        ],
        all,
    );
    lib.add("concat", E, &[], concat).rest(T::Iterable);
    lib.add("len", E, &[p("collection", T::Iterator)], count);
    lib.add("count", M, &[p("collection", T::Iterable)], count);
    lib.add("memorize", M, &[p("collection", T::Iterable)], memorize);
    for (name, imp) in [("sum", sum as super::Imp), ("max", max_), ("min", min_)] {
        lib.add(
            name,
            M,
            &[
                p("collection", T::Iterable),
                o("initial", T::Any, D::Absent),
            ],
            imp,
        );
    }
    lib.add(
        "first",
        M,
        &[
            p("collection", T::Iterable),
            o("default", T::Any, D::Absent),
        ],
        first,
    );
    lib.add("single", M, &[p("collection", T::Iterable)], single);
    lib.add(
        "last",
        M,
        &[
            p("collection", T::Iterable),
            o("default", T::Any, D::Absent),
        ],
        last,
    );
    lib.add(
        "selectMany",
        M,
        &[p("collection", T::Iterable), p("selector", T::Lambda)],
        select_many,
    );
    lib.add("range", F, &[p("stop", T::Int)], range1);
    lib.add(
        "range",
        F,
        &[
            p("start", T::Int),
            p("stop", T::Int),
            o("step", T::Int, D::I(1)),
        ],
        range3,
    );
    lib.add(
        "sequence",
        F,
        &[o("start", T::Int, D::I(0)), o("step", T::Int, D::I(1))],
        sequence,
    );
    let by = [p("collection", T::Iterable), p("selector", T::Lambda)];
    lib.add("orderBy", M, &by, order_by);
    lib.add("orderByDescending", M, &by, order_by_descending);
    let then = [p("collection", T::Ordering), p("selector", T::Lambda)];
    lib.add("thenBy", M, &then, then_by);
    lib.add("thenByDescending", M, &then, then_by_descending);
    lib.add(
        "groupBy",
        M,
        &[
            p("collection", T::Iterable),
            p("keySelector", T::Lambda),
            o("valueSelector", T::Lambda, D::Null),
            o("aggregator", T::Lambda, D::Null),
        ],
        group_by,
    );
    lib.add(
        "join",
        M,
        &[
            p("collection1", T::Iterable),
            p("collection2", T::Iterable),
            p("predicate", T::Lambda),
            p("selector", T::Lambda),
        ],
        join,
    );
    lib.add("zip", M, &[], zip).rest(T::Iterable);
    lib.add("zipLongest", M, &[], zip_longest)
        .rest(T::Iterable)
        .kwrest();
    lib.add(
        "repeat",
        M,
        &[p("value", T::Any), o("times", T::Int, D::I(-1))],
        repeat,
    );
    lib.add("cycle", M, &[p("collection", T::Iterable)], cycle);
    lib.add("takeWhile", M, &coll_lambda, take_while);
    lib.add("skipWhile", M, &coll_lambda, skip_while);
    lib.add(
        "indexOf",
        M,
        &[p("collection", T::Iterable), p("item", T::Any)],
        index_of,
    );
    lib.add(
        "lastIndexOf",
        M,
        &[p("collection", T::Iterable), p("item", T::Any)],
        last_index_of,
    );
    lib.add("indexWhere", M, &coll_lambda, index_where);
    lib.add("lastIndexWhere", M, &coll_lambda, last_index_where);
    lib.add(
        "slice",
        M,
        &[p("collection", T::Iterable), p("length", T::Int)],
        slice,
    );
    lib.add("splitWhere", M, &coll_lambda, split_where);
    lib.add("sliceWhere", M, &coll_lambda, slice_where);
    lib.add(
        "splitAt",
        M,
        &[p("collection", T::Iterable), p("index", T::Int)],
        split_at,
    );
    for name in ["aggregate", "reduce"] {
        lib.add(
            name,
            M,
            &[
                p("collection", T::Iterable),
                p("selector", T::Lambda),
                o("seed", T::Any, D::Absent),
            ],
            aggregate,
        );
    }
    lib.add(
        "accumulate",
        M,
        &[
            p("collection", T::Iterable),
            p("selector", T::Lambda),
            o("seed", T::Any, D::Absent),
        ],
        accumulate,
    );
    lib.add("reverse", M, &[p("collection", T::Iterable)], reverse);
    lib.add(
        "mergeWith",
        M,
        &[
            p("dict", T::Mapping),
            p("another", T::Mapping),
            o("listMerger", T::Lambda, D::Null),
            o("itemMerger", T::Lambda, D::Null),
            o("maxLevels", T::Int, D::I(0)),
        ],
        merge_with,
    );
    lib.add("isIterable", F, &[p("value", T::Any)], is_iterable);
    lib.add(
        "generate",
        F,
        &[
            p("initial", T::Any),
            p("predicate", T::Lambda),
            p("producer", T::Lambda),
            o("selector", T::Lambda, D::Null),
            o("decycle", T::Bool, D::B(false)),
        ],
        generate,
    );
    lib.add(
        "generateMany",
        F,
        &[
            p("initial", T::Any),
            p("producer", T::Lambda),
            o("selector", T::Lambda, D::Null),
            o("decycle", T::Bool, D::B(false)),
            o("depthFirst", T::Bool, D::B(false)),
        ],
        generate_many,
    );
    lib.add(
        "defaultIfEmpty",
        M,
        &[p("collection", T::Iterable), p("default", T::Iterable)],
        default_if_empty,
    );
}
