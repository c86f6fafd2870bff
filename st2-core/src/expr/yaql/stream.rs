//! Lazy iteration: yaql's query methods return Python iterators, which are single-pass, shared
//! by every reference, and only computed as far as they are read (`sequence().take(3)` ends).
//! A [`LazyIter`] holds a [`Stream`] that produces items on demand with the evaluator at hand.

use std::sync::{Arc, Mutex, TryLockError};

use super::eval::{Ev, Frame, Lambda, R, limit_error, value_error};
use super::value::{OpaqueKind, YaqlList, YaqlSet, YaqlValue};

/// A producer of items.
pub(crate) trait Stream: Send {
    /// The next item, or `None` at the end.
    fn next(&mut self, ev: &mut Ev<'_>) -> R<Option<YaqlValue>>;
}

/// Nesting limit of streams over streams (a deeper chain could not even be dropped safely).
const MAX_STREAM_DEPTH: u32 = 500;

/// A shared, single-pass iterator value.
#[derive(Clone)]
pub(crate) struct LazyIter {
    inner: Arc<Mutex<Box<dyn Stream>>>,
    depth: u32,
}

impl LazyIter {
    pub(crate) fn new(s: Box<dyn Stream>, depth: u32) -> Self {
        LazyIter {
            inner: Arc::new(Mutex::new(s)),
            depth,
        }
    }

    pub(crate) fn depth(&self) -> u32 {
        self.depth
    }

    pub(crate) fn ptr_eq(&self, other: &LazyIter) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn addr(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }

    /// Pull the next item (fails when the iterator is already being read further up, as a
    /// Python generator does).
    pub(crate) fn next(&self, ev: &mut Ev<'_>) -> R<Option<YaqlValue>> {
        let mut guard = match self.inner.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => {
                return Err(value_error("generator already executing"));
            }
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        ev.pull(&mut **guard)
    }
}

/// The result of `orderBy(...)`, possibly refined by `thenBy(...)`: the source items, the
/// sort keys computed so far, and the sorted order.
pub(crate) struct Ordering {
    pub(crate) items: Vec<YaqlValue>,
    pub(crate) keys: Vec<Vec<YaqlValue>>,
    pub(crate) descending: Vec<bool>,
    pub(crate) sorted: Arc<Vec<YaqlValue>>,
}

impl Ordering {
    pub(crate) fn sorted(&self) -> &Arc<Vec<YaqlValue>> {
        &self.sorted
    }
}

/// Iterate any iterable value: lists, sets, views, orderings (from the start) and lazy
/// iterators (from where they are).
///
/// # Errors
/// A `TypeError` for values that are not iterable (strings and dicts included, as in yaql).
pub(crate) fn iterate(v: &YaqlValue) -> R<Box<dyn Stream>> {
    if v.depth() > MAX_STREAM_DEPTH {
        return Err(limit_error(format!(
            "iterators nested deeper than {MAX_STREAM_DEPTH} levels"
        )));
    }
    Ok(match v {
        YaqlValue::List(l) => Box::new(ListStream {
            list: l.clone(),
            i: 0,
        }),
        YaqlValue::Set(s) => Box::new(SetStream {
            set: s.clone(),
            i: 0,
        }),
        YaqlValue::Opaque(o) => match &o.0 {
            OpaqueKind::Iter(it) => Box::new(Shared::Locked(it.clone())),
            OpaqueKind::View(items, _) => Box::new(VecStream {
                items: items.clone(),
                i: 0,
            }),
            OpaqueKind::Ordering(ord) => Box::new(VecStream {
                items: ord.sorted().clone(),
                i: 0,
            }),
            OpaqueKind::Context(_) => {
                return Err(super::eval::type_error("'Context' object is not iterable"));
            }
        },
        other => {
            return Err(super::eval::type_error(format!(
                "'{}' object is not iterable",
                other.type_name()
            )));
        }
    })
}

/// Iterate a lazy iterator value, taking it over.
pub(crate) fn iterate_owned(it: LazyIter) -> Box<dyn Stream> {
    Box::new(Shared::Locked(it))
}

/// True for values yaql's `Iterable` parameter type accepts.
pub(crate) fn is_iterable(v: &YaqlValue) -> bool {
    match v {
        YaqlValue::List(_) | YaqlValue::Set(_) => true,
        YaqlValue::Opaque(o) => !matches!(o.0, OpaqueKind::Context(_)),
        _ => false,
    }
}

struct ListStream {
    list: YaqlList,
    i: usize,
}

impl Stream for ListStream {
    fn next(&mut self, _: &mut Ev<'_>) -> R<Option<YaqlValue>> {
        let item = self.list.get(self.i).cloned();
        self.i += 1;
        Ok(item)
    }
}

struct SetStream {
    set: YaqlSet,
    i: usize,
}

impl Stream for SetStream {
    fn next(&mut self, _: &mut Ev<'_>) -> R<Option<YaqlValue>> {
        let item = self.set.as_slice().get(self.i).cloned();
        self.i += 1;
        Ok(item)
    }
}

/// Items of a shared vector.
pub(crate) struct VecStream {
    pub(crate) items: Arc<Vec<YaqlValue>>,
    pub(crate) i: usize,
}

impl VecStream {
    pub(crate) fn new(items: Vec<YaqlValue>) -> Self {
        VecStream {
            items: Arc::new(items),
            i: 0,
        }
    }
}

impl Stream for VecStream {
    fn next(&mut self, _: &mut Ev<'_>) -> R<Option<YaqlValue>> {
        let item = self.items.get(self.i).cloned();
        self.i += 1;
        Ok(item)
    }
}

/// Reads a lazy iterator value; once nothing else holds the iterator (the usual case for a
/// chain such as `where(...).select(...)`), takes its stream over and reads it directly.
enum Shared {
    Locked(LazyIter),
    Owned(Box<dyn Stream>),
}

impl Stream for Shared {
    fn next(&mut self, ev: &mut Ev<'_>) -> R<Option<YaqlValue>> {
        if let Shared::Locked(it) = self
            && Arc::strong_count(&it.inner) == 1
        {
            let empty: Box<dyn Stream> = Box::new(Empty);
            let inner = std::mem::replace(&mut it.inner, Arc::new(Mutex::new(empty)));
            if let Ok(m) = Arc::try_unwrap(inner) {
                let s = m.into_inner().unwrap_or_else(|p| p.into_inner());
                *self = Shared::Owned(s);
            }
        }
        match self {
            Shared::Locked(it) => it.next(ev),
            // This pull is already counted by whoever pulls `self`.
            Shared::Owned(s) => s.next(ev),
        }
    }
}

/// The end.
struct Empty;

impl Stream for Empty {
    fn next(&mut self, _: &mut Ev<'_>) -> R<Option<YaqlValue>> {
        Ok(None)
    }
}

/// A boxed source stream.
pub(crate) type Src = Box<dyn Stream>;

/// `select(f)`: `f` applied to each item.
pub(crate) struct Map {
    src: Src,
    f: Lambda,
    frame: Option<Arc<Frame>>,
}

impl Map {
    pub(crate) fn new(src: Src, f: Lambda) -> Self {
        Map {
            src,
            f,
            frame: None,
        }
    }
}

impl Stream for Map {
    fn next(&mut self, ev: &mut Ev<'_>) -> R<Option<YaqlValue>> {
        match ev.pull(&mut *self.src)? {
            Some(item) => ev.call_lambda1(&self.f, item, &mut self.frame).map(Some),
            None => Ok(None),
        }
    }
}

/// `where(p)`: items for which `p` is truthy.
pub(crate) struct Filter {
    src: Src,
    f: Lambda,
    frame: Option<Arc<Frame>>,
}

impl Filter {
    pub(crate) fn new(src: Src, f: Lambda) -> Self {
        Filter {
            src,
            f,
            frame: None,
        }
    }
}

impl Stream for Filter {
    fn next(&mut self, ev: &mut Ev<'_>) -> R<Option<YaqlValue>> {
        while let Some(item) = ev.pull(&mut *self.src)? {
            if ev
                .call_lambda1(&self.f, item.clone(), &mut self.frame)?
                .truthy()
            {
                return Ok(Some(item));
            }
        }
        Ok(None)
    }
}

/// `collection.name`: the property `name` of each item.
pub(crate) struct PropertyMap {
    src: Src,
    key: Arc<str>,
}

impl PropertyMap {
    pub(crate) fn new(src: Src, key: Arc<str>) -> Self {
        PropertyMap { src, key }
    }
}

impl Stream for PropertyMap {
    fn next(&mut self, ev: &mut Ev<'_>) -> R<Option<YaqlValue>> {
        match ev.pull(&mut *self.src)? {
            Some(item) => ev.property(item, &self.key).map(Some),
            None => Ok(None),
        }
    }
}

/// `itertools.islice(src, skip, skip + take)`.
pub(crate) struct Slice {
    pub(crate) src: Src,
    pub(crate) skip: usize,
    pub(crate) take: Option<usize>,
}

impl Stream for Slice {
    fn next(&mut self, ev: &mut Ev<'_>) -> R<Option<YaqlValue>> {
        while self.skip > 0 {
            self.skip -= 1;
            if ev.pull(&mut *self.src)?.is_none() {
                self.take = Some(0);
                return Ok(None);
            }
        }
        match &mut self.take {
            Some(0) => Ok(None),
            Some(n) => {
                *n -= 1;
                ev.pull(&mut *self.src)
            }
            None => ev.pull(&mut *self.src),
        }
    }
}

/// Items of each source in turn.
pub(crate) struct Chain {
    pub(crate) parts: std::collections::VecDeque<Src>,
}

impl Stream for Chain {
    fn next(&mut self, ev: &mut Ev<'_>) -> R<Option<YaqlValue>> {
        while let Some(front) = self.parts.front_mut() {
            if let Some(item) = ev.pull(&mut **front)? {
                return Ok(Some(item));
            }
            self.parts.pop_front();
        }
        Ok(None)
    }
}

/// A generator written as a closure over its own state.
pub(crate) struct Gen<F>(pub(crate) F);

impl<F> Stream for Gen<F>
where
    F: FnMut(&mut Ev<'_>) -> R<Option<YaqlValue>> + Send,
{
    fn next(&mut self, ev: &mut Ev<'_>) -> R<Option<YaqlValue>> {
        (self.0)(ev)
    }
}
