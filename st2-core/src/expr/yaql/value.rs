//! YAQL values: JSON data plus what yaql adds (sets, non-string dict keys, datetimes,
//! timespans, regex objects) and the engine's internal kinds (lazy iterators, views, contexts).
//!
//! Values are immutable and cheap to clone: containers live behind [`Arc`]. Equality and
//! hashing follow Python (`1 = 1.0`, `true = 1`, dicts and sets ignore order), so sets and dict
//! keys behave as in yaql.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use serde_json::{Map, Number, Value};

use super::eval::Frame;
use super::stream::{LazyIter, Ordering};
use crate::expr::pyregex::PyRegex;
use crate::expr::python::{float_repr, str_repr};

/// A YAQL value.
#[derive(Clone, Default)]
pub enum YaqlValue {
    /// `null` (Python `None`).
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer. yaql has arbitrary precision; this engine uses 64 bits and fails the
    /// evaluation (with [`crate::expr::ErrorKind::Limit`]) when arithmetic overflows.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(Arc<str>),
    /// A list (yaql's tuples and lists alike).
    List(YaqlList),
    /// A mapping, in insertion order; keys may be any hashable value.
    Dict(YaqlDict),
    /// A set, in insertion order (Python's order cannot be reproduced).
    Set(YaqlSet),
    /// A timezone-aware datetime.
    DateTime(DateTime<FixedOffset>),
    /// A timespan (Python `timedelta`), in microseconds.
    Timespan(i64),
    /// A compiled regular expression (`regex(...)`).
    Regex(YaqlRegex),
    /// An engine-internal value: a lazy iterator, a dict view, an ordering, a context.
    Opaque(Opaque),
}

/// An immutable list.
#[derive(Clone)]
pub struct YaqlList(Arc<ListData>);

struct ListData {
    items: Vec<YaqlValue>,
    depth: u32,
    opaque: bool,
}

/// An immutable mapping with Python key semantics, in insertion order.
#[derive(Clone)]
pub struct YaqlDict(Arc<DictData>);

struct DictData {
    table: Table<(YaqlValue, YaqlValue)>,
    depth: u32,
    opaque: bool,
}

/// An immutable set with Python semantics, in insertion order.
#[derive(Clone)]
pub struct YaqlSet(Arc<SetData>);

struct SetData {
    table: Table<YaqlValue>,
    depth: u32,
    opaque: bool,
}

/// A compiled regular expression value.
#[derive(Clone, Debug)]
pub struct YaqlRegex(pub(crate) Arc<PyRegex>);

impl YaqlRegex {
    /// The compiled expression.
    pub fn regex(&self) -> &PyRegex {
        &self.0
    }
}

/// An engine-internal value. It never appears in a finalized result except as a context (the
/// result of `let(...)` without `->`), which converts to JSON as `null`.
#[derive(Clone)]
pub struct Opaque(pub(crate) OpaqueKind);

#[derive(Clone)]
pub(crate) enum OpaqueKind {
    /// A lazy, single-pass iterator (what yaql's query methods return).
    Iter(LazyIter),
    /// A re-iterable collection that is not a sequence: `dict.values()` (false), or a
    /// `memorize()`d iterator (true), which still counts as an iterator.
    View(Arc<Vec<YaqlValue>>, bool),
    /// The result of `orderBy`, extended by `thenBy`.
    Ordering(Arc<Ordering>),
    /// A context for `->` (`let`, `with`, `def`, `unpack`).
    Context(Arc<Frame>),
}

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &self.0 {
            OpaqueKind::Iter(_) => "<iterator>",
            OpaqueKind::View(..) => "<view>",
            OpaqueKind::Ordering(_) => "<ordering>",
            OpaqueKind::Context(_) => "<context>",
        })
    }
}

impl fmt::Debug for YaqlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            YaqlValue::Null => f.write_str("Null"),
            YaqlValue::Bool(b) => write!(f, "Bool({b})"),
            YaqlValue::Int(i) => write!(f, "Int({i})"),
            YaqlValue::Float(x) => write!(f, "Float({x:?})"),
            YaqlValue::Str(s) => write!(f, "Str({s:?})"),
            YaqlValue::List(l) => f.debug_list().entries(l.iter()).finish(),
            YaqlValue::Dict(d) => f.debug_map().entries(d.iter()).finish(),
            YaqlValue::Set(s) => f.debug_set().entries(s.iter()).finish(),
            YaqlValue::DateTime(d) => write!(f, "DateTime({})", d.to_rfc3339()),
            YaqlValue::Timespan(us) => write!(f, "Timespan({us}us)"),
            YaqlValue::Regex(r) => write!(f, "Regex({:?})", r.0.pattern()),
            YaqlValue::Opaque(o) => o.fmt(f),
        }
    }
}

impl fmt::Debug for YaqlList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Debug for YaqlDict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl fmt::Debug for YaqlSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl PartialEq for YaqlValue {
    /// Python's `==`.
    fn eq(&self, other: &Self) -> bool {
        py_eq(self, other)
    }
}

// ------------------------------------------------------------------------------------------
// Containers
// ------------------------------------------------------------------------------------------

fn child_info<'a>(items: impl Iterator<Item = &'a YaqlValue>) -> (u32, bool) {
    let mut depth = 0;
    let mut opaque = false;
    for v in items {
        depth = depth.max(v.depth());
        opaque |= v.has_opaque();
    }
    (depth.saturating_add(1), opaque)
}

impl YaqlList {
    /// A list of `items`.
    pub fn new(items: Vec<YaqlValue>) -> Self {
        let (depth, opaque) = child_info(items.iter());
        YaqlList(Arc::new(ListData {
            items,
            depth,
            opaque,
        }))
    }

    /// The items.
    pub fn as_slice(&self) -> &[YaqlValue] {
        &self.0.items
    }

    /// The items, copied out (without copying when this is the only reference).
    pub fn into_vec(self) -> Vec<YaqlValue> {
        match Arc::try_unwrap(self.0) {
            Ok(data) => data.items,
            Err(shared) => shared.items.clone(),
        }
    }

    pub(crate) fn ptr_eq(&self, other: &YaqlList) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for YaqlList {
    type Target = [YaqlValue];
    fn deref(&self) -> &[YaqlValue] {
        &self.0.items
    }
}

/// Hashes already are hashes: the table's hasher passes them through.
#[derive(Default)]
struct PassHasher(u64);

impl Hasher for PassHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Something stored by key in a [`Table`].
trait Keyed {
    fn key(&self) -> &YaqlValue;
}

impl Keyed for YaqlValue {
    fn key(&self) -> &YaqlValue {
        self
    }
}

impl Keyed for (YaqlValue, YaqlValue) {
    fn key(&self) -> &YaqlValue {
        &self.0
    }
}

/// Entries in insertion order, unique by key (Python equality), with a hash index once there
/// are more than a few.
#[derive(Clone)]
struct Table<E> {
    entries: Vec<E>,
    index: Option<HashMap<u64, u32, BuildHasherDefault<PassHasher>>>,
    /// For each entry, the next entry with the same hash.
    chain: Vec<u32>,
}

impl<E> Default for Table<E> {
    fn default() -> Self {
        Table {
            entries: Vec::new(),
            index: None,
            chain: Vec::new(),
        }
    }
}

const INDEX_THRESHOLD: usize = 8;
const NO_NEXT: u32 = u32::MAX;

impl<E: Keyed> Table<E> {
    fn with_capacity(n: usize) -> Self {
        Table {
            entries: Vec::with_capacity(n),
            index: None,
            chain: Vec::new(),
        }
    }

    fn from_entries(entries: Vec<E>) -> Self {
        let mut t = Table {
            entries,
            index: None,
            chain: Vec::new(),
        };
        if t.entries.len() > INDEX_THRESHOLD {
            t.build_index();
        }
        t
    }

    fn find(&self, key: &YaqlValue) -> Option<usize> {
        match &self.index {
            None => self.entries.iter().position(|e| py_eq(e.key(), key)),
            Some(index) => {
                let mut i = *index.get(&py_hash(key))?;
                while i != NO_NEXT {
                    let idx = i as usize;
                    if py_eq(self.entries[idx].key(), key) {
                        return Some(idx);
                    }
                    i = self.chain[idx];
                }
                None
            }
        }
    }

    fn build_index(&mut self) {
        let n = self.entries.len();
        let mut index = HashMap::with_capacity_and_hasher(n * 2, Default::default());
        let mut chain = vec![NO_NEXT; n];
        let mut last: HashMap<u64, u32, BuildHasherDefault<PassHasher>> =
            HashMap::with_capacity_and_hasher(n, Default::default());
        for (i, e) in self.entries.iter().enumerate() {
            let h = py_hash(e.key());
            let i = i as u32;
            match last.insert(h, i) {
                Some(prev) => chain[prev as usize] = i,
                None => {
                    index.insert(h, i);
                }
            }
        }
        self.index = Some(index);
        self.chain = chain;
    }

    /// Append an entry whose key is not present.
    fn push(&mut self, e: E) {
        let n = self.entries.len();
        if let Some(index) = &mut self.index {
            let h = py_hash(e.key());
            match index.get(&h) {
                Some(&first) => {
                    let mut i = first as usize;
                    while self.chain[i] != NO_NEXT {
                        i = self.chain[i] as usize;
                    }
                    self.chain[i] = n as u32;
                }
                None => {
                    index.insert(h, n as u32);
                }
            }
            self.chain.push(NO_NEXT);
            self.entries.push(e);
        } else {
            self.entries.push(e);
            if self.entries.len() > INDEX_THRESHOLD {
                self.build_index();
            }
        }
    }
}

/// A growing set of values with Python set semantics (for `distinct`, `groupBy`, ...).
#[derive(Default)]
pub(crate) struct Seen(Table<YaqlValue>);

impl Seen {
    /// Add `v`; its position and whether it was new.
    pub(crate) fn insert(&mut self, v: YaqlValue) -> (usize, bool) {
        match self.0.find(&v) {
            Some(i) => (i, false),
            None => {
                self.0.push(v);
                (self.0.entries.len() - 1, true)
            }
        }
    }

    /// The values, in insertion order.
    pub(crate) fn into_values(self) -> Vec<YaqlValue> {
        self.0.entries
    }

    /// Number of values.
    pub(crate) fn len(&self) -> usize {
        self.0.entries.len()
    }
}

/// Builds a [`YaqlDict`]: later values for an equal key replace earlier ones, the key keeps its
/// first position (Python `dict`).
#[derive(Default)]
pub struct DictBuilder {
    table: Table<(YaqlValue, YaqlValue)>,
}

impl fmt::Debug for DictBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DictBuilder")
            .field("len", &self.table.entries.len())
            .finish()
    }
}

impl DictBuilder {
    /// An empty builder with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        DictBuilder {
            table: Table::with_capacity(n),
        }
    }

    /// Set `key` to `value`.
    pub fn insert(&mut self, key: YaqlValue, value: YaqlValue) {
        match self.table.find(&key) {
            Some(i) => self.table.entries[i].1 = value,
            None => self.table.push((key, value)),
        }
    }

    /// Remove `key` if present.
    pub fn remove(&mut self, key: &YaqlValue) {
        if let Some(i) = self.table.find(key) {
            let mut entries = std::mem::take(&mut self.table.entries);
            entries.remove(i);
            self.table = Table::from_entries(entries);
        }
    }

    /// Number of entries so far.
    pub fn len(&self) -> usize {
        self.table.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.table.entries.is_empty()
    }

    /// The finished dict.
    pub fn build(self) -> YaqlDict {
        let mut depth = 0;
        let mut opaque = false;
        for (k, v) in &self.table.entries {
            depth = depth.max(k.depth()).max(v.depth());
            opaque |= k.has_opaque() || v.has_opaque();
        }
        YaqlDict(Arc::new(DictData {
            table: self.table,
            depth: depth.saturating_add(1),
            opaque,
        }))
    }
}

impl YaqlDict {
    /// The value for `key`.
    pub fn get(&self, key: &YaqlValue) -> Option<&YaqlValue> {
        self.0.table.find(key).map(|i| &self.0.table.entries[i].1)
    }

    /// The value for a string key.
    pub fn get_str(&self, key: &str) -> Option<&YaqlValue> {
        if self.0.table.index.is_none() {
            for (k, v) in &self.0.table.entries {
                if let YaqlValue::Str(s) = k
                    && &**s == key
                {
                    return Some(v);
                }
            }
            return None;
        }
        self.get(&YaqlValue::Str(key.into()))
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &YaqlValue) -> bool {
        self.0.table.find(key).is_some()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.table.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.table.entries.is_empty()
    }

    /// Entries in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&YaqlValue, &YaqlValue)> {
        self.0.table.entries.iter().map(|(k, v)| (k, v))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &YaqlValue> {
        self.0.table.entries.iter().map(|(k, _)| k)
    }

    /// Values in order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &YaqlValue> {
        self.0.table.entries.iter().map(|(_, v)| v)
    }

    /// A builder holding a copy of this dict's entries.
    pub fn to_builder(&self) -> DictBuilder {
        DictBuilder {
            table: self.0.table.clone(),
        }
    }

    pub(crate) fn ptr_eq(&self, other: &YaqlDict) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl FromIterator<(YaqlValue, YaqlValue)> for YaqlDict {
    fn from_iter<I: IntoIterator<Item = (YaqlValue, YaqlValue)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut b = DictBuilder::with_capacity(iter.size_hint().0);
        for (k, v) in iter {
            b.insert(k, v);
        }
        b.build()
    }
}

impl YaqlSet {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.table.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.table.entries.is_empty()
    }

    /// True when `v` is an element.
    pub fn contains(&self, v: &YaqlValue) -> bool {
        self.0.table.find(v).is_some()
    }

    /// Elements in insertion order.
    pub fn iter(&self) -> std::slice::Iter<'_, YaqlValue> {
        self.0.table.entries.iter()
    }

    /// Elements in insertion order, as a slice.
    pub fn as_slice(&self) -> &[YaqlValue] {
        &self.0.table.entries
    }

    /// `self <= other`.
    pub fn is_subset(&self, other: &YaqlSet) -> bool {
        self.len() <= other.len() && self.iter().all(|v| other.contains(v))
    }
}

impl FromIterator<YaqlValue> for YaqlSet {
    fn from_iter<I: IntoIterator<Item = YaqlValue>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut seen = Seen(Table::with_capacity(iter.size_hint().0));
        for v in iter {
            seen.insert(v);
        }
        let (depth, opaque) = child_info(seen.0.entries.iter());
        YaqlSet(Arc::new(SetData {
            table: seen.0,
            depth,
            opaque,
        }))
    }
}

// ------------------------------------------------------------------------------------------
// Python equality and hashing
// ------------------------------------------------------------------------------------------

/// The integer a float equals, when it is integral and fits.
fn float_as_int(f: f64) -> Option<i64> {
    if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

/// Python's `==`.
pub(crate) fn py_eq(a: &YaqlValue, b: &YaqlValue) -> bool {
    use YaqlValue as V;
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Str(x), V::Str(y)) => x == y,
        (V::Int(x), V::Int(y)) => x == y,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Float(x), V::Float(y)) => x == y,
        (V::Int(x), V::Bool(y)) | (V::Bool(y), V::Int(x)) => *x == i64::from(*y),
        (V::Int(x), V::Float(y)) | (V::Float(y), V::Int(x)) => float_as_int(*y) == Some(*x),
        (V::Bool(x), V::Float(y)) | (V::Float(y), V::Bool(x)) => *y == f64::from(u8::from(*x)),
        (V::List(x), V::List(y)) => {
            x.ptr_eq(y) || (x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| py_eq(p, q)))
        }
        (V::Dict(x), V::Dict(y)) => {
            x.ptr_eq(y)
                || (x.len() == y.len()
                    && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w))))
        }
        (V::Set(x), V::Set(y)) => x.len() == y.len() && x.is_subset(y),
        (V::DateTime(x), V::DateTime(y)) => x == y,
        (V::Timespan(x), V::Timespan(y)) => x == y,
        (V::Regex(x), V::Regex(y)) => x.0.pattern() == y.0.pattern() && x.0.flags() == y.0.flags(),
        (V::Opaque(x), V::Opaque(y)) => match (&x.0, &y.0) {
            (OpaqueKind::Iter(p), OpaqueKind::Iter(q)) => p.ptr_eq(q),
            (OpaqueKind::View(p, _), OpaqueKind::View(q, _)) => Arc::ptr_eq(p, q),
            (OpaqueKind::Ordering(p), OpaqueKind::Ordering(q)) => Arc::ptr_eq(p, q),
            (OpaqueKind::Context(p), OpaqueKind::Context(q)) => Arc::ptr_eq(p, q),
            _ => false,
        },
        _ => false,
    }
}

fn mix(h: u64) -> u64 {
    // splitmix64 finalizer
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash consistent with [`py_eq`].
pub(crate) fn py_hash(v: &YaqlValue) -> u64 {
    use YaqlValue as V;
    match v {
        V::Null => 0x6e75_6c6c,
        V::Bool(b) => mix(u64::from(*b)),
        V::Int(i) => mix(*i as u64),
        V::Float(f) => match float_as_int(*f) {
            Some(i) => mix(i as u64),
            None => mix(f.to_bits() ^ 0x0f10_a700),
        },
        V::Str(s) => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in s.as_bytes() {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            mix(h)
        }
        V::List(l) => {
            let mut h: u64 = 0x1157;
            for item in l.iter() {
                h = mix(h ^ py_hash(item));
            }
            h
        }
        V::Dict(d) => {
            let mut h: u64 = 0xd1c7;
            for (k, v) in d.iter() {
                h ^= mix(py_hash(k).wrapping_add(py_hash(v).rotate_left(17)));
            }
            h
        }
        V::Set(s) => {
            let mut h: u64 = 0x5e7;
            for k in s.iter() {
                h ^= mix(py_hash(k));
            }
            h
        }
        V::DateTime(d) => mix(d.timestamp_micros() as u64 ^ 0xda7e),
        V::Timespan(us) => mix(*us as u64 ^ 0x7153),
        V::Regex(r) => py_hash(&V::Str(r.0.pattern().into())) ^ 0x5e9e,
        V::Opaque(o) => match &o.0 {
            OpaqueKind::Iter(p) => mix(p.addr() as u64),
            OpaqueKind::View(p, _) => mix(Arc::as_ptr(p) as usize as u64),
            OpaqueKind::Ordering(p) => mix(Arc::as_ptr(p) as usize as u64),
            OpaqueKind::Context(p) => mix(Arc::as_ptr(p) as usize as u64),
        },
    }
}

// ------------------------------------------------------------------------------------------
// Conversions
// ------------------------------------------------------------------------------------------

impl From<bool> for YaqlValue {
    fn from(b: bool) -> Self {
        YaqlValue::Bool(b)
    }
}

impl From<i64> for YaqlValue {
    fn from(i: i64) -> Self {
        YaqlValue::Int(i)
    }
}

impl From<f64> for YaqlValue {
    fn from(f: f64) -> Self {
        YaqlValue::Float(f)
    }
}

impl From<&str> for YaqlValue {
    fn from(s: &str) -> Self {
        YaqlValue::Str(s.into())
    }
}

impl From<String> for YaqlValue {
    fn from(s: String) -> Self {
        YaqlValue::Str(s.into())
    }
}

impl From<Vec<YaqlValue>> for YaqlValue {
    fn from(items: Vec<YaqlValue>) -> Self {
        YaqlValue::List(YaqlList::new(items))
    }
}

impl YaqlValue {
    /// Convert JSON data (lists become lists, objects dicts with string keys; integers that do
    /// not fit 64 bits become floats).
    pub fn from_json(v: &Value) -> YaqlValue {
        match v {
            Value::Null => YaqlValue::Null,
            Value::Bool(b) => YaqlValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => YaqlValue::Int(i),
                None => YaqlValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => YaqlValue::Str(s.as_str().into()),
            Value::Array(items) => YaqlValue::List(YaqlList::new(
                items.iter().map(YaqlValue::from_json).collect(),
            )),
            Value::Object(map) => YaqlValue::from_json_map(map),
        }
    }

    /// A JSON object as a dict.
    pub fn from_json_map(map: &Map<String, Value>) -> YaqlValue {
        // JSON object keys are unique strings: no duplicate check needed.
        let entries = map
            .iter()
            .map(|(k, v)| (YaqlValue::Str(k.as_str().into()), YaqlValue::from_json(v)))
            .collect();
        YaqlValue::Dict(
            DictBuilder {
                table: Table::from_entries(entries),
            }
            .build(),
        )
    }

    /// Plain JSON for callers: sets become arrays (in insertion order), datetimes ISO 8601
    /// strings, timespans seconds (float), non-string dict keys their Python `str()`,
    /// non-finite floats and internal values `null`, regexes their pattern.
    pub fn to_json(&self) -> Value {
        match self {
            YaqlValue::List(l) => Value::Array(l.iter().map(YaqlValue::to_json).collect()),
            YaqlValue::Set(s) => Value::Array(s.iter().map(YaqlValue::to_json).collect()),
            YaqlValue::Dict(d) => json_dict(d),
            other => other.json_scalar(),
        }
    }

    fn json_scalar(&self) -> Value {
        match self {
            YaqlValue::Null => Value::Null,
            YaqlValue::Bool(b) => Value::Bool(*b),
            YaqlValue::Int(i) => Value::Number((*i).into()),
            YaqlValue::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            YaqlValue::Str(s) => Value::String(s.to_string()),
            YaqlValue::DateTime(d) => Value::String(isoformat(d, 'T')),
            YaqlValue::Timespan(us) => {
                Number::from_f64(*us as f64 / 1e6).map_or(Value::Null, Value::Number)
            }
            YaqlValue::Regex(r) => Value::String(r.0.pattern().to_owned()),
            YaqlValue::Opaque(o) => match &o.0 {
                OpaqueKind::View(items, _) => {
                    Value::Array(items.iter().map(YaqlValue::to_json).collect())
                }
                OpaqueKind::Ordering(o) => {
                    Value::Array(o.sorted().iter().map(YaqlValue::to_json).collect())
                }
                _ => Value::Null,
            },
            YaqlValue::List(_) | YaqlValue::Set(_) | YaqlValue::Dict(_) => Value::Null,
        }
    }

    /// The encoding of the conformance files: `{"$set": [...]}` (sorted by JSON text),
    /// `{"$datetime": iso}`, `{"$timespan_us": n}`, `{"$dict": [[k, v], ...]}` when a key is not
    /// a string, `{"$float": "nan"|"inf"|"-inf"}`, `{"$repr": ...}` for anything else.
    pub fn to_tagged_json(&self) -> Value {
        // Containers recurse through small helper frames (values may be nested deeply).
        match self {
            YaqlValue::List(l) => Value::Array(l.iter().map(YaqlValue::to_tagged_json).collect()),
            YaqlValue::Set(s) => tagged_set(s),
            YaqlValue::Dict(d) => tagged_dict(d),
            other => other.tagged_scalar(),
        }
    }

    fn tagged_scalar(&self) -> Value {
        match self {
            YaqlValue::Float(f) if !f.is_finite() => tag(
                "$float",
                Value::String(
                    if f.is_nan() {
                        "nan"
                    } else if *f > 0.0 {
                        "inf"
                    } else {
                        "-inf"
                    }
                    .to_owned(),
                ),
            ),
            YaqlValue::DateTime(d) => tag("$datetime", Value::String(isoformat(d, 'T'))),
            YaqlValue::Timespan(us) => tag("$timespan_us", Value::Number((*us).into())),
            YaqlValue::Regex(_) | YaqlValue::Opaque(_) => {
                tag("$repr", Value::String(self.python_repr()))
            }
            other => other.to_json(),
        }
    }

    /// Python's `str()` of this (finalized) value, as Orquesta prints a YAQL result inside a
    /// string: `None`, `True`, `[1, 'a']`, `{'k': 'v'}`, `{'a', 'b'}` (sets in insertion
    /// order), floats as `repr()`, datetimes as `2020-02-01 00:00:00+00:00`.
    pub fn python_str(&self) -> String {
        let mut out = String::new();
        write_py(self, &mut out, Style::Final, true);
        out
    }

    /// Python's `repr()` of this (finalized) value.
    pub fn python_repr(&self) -> String {
        let mut out = String::new();
        write_py(self, &mut out, Style::Final, false);
        out
    }

    /// Python's `str()` of the value as yaql holds it internally (lists are tuples, sets
    /// frozensets): what yaql's `str()` function returns for containers.
    pub(crate) fn yaql_str(&self) -> String {
        let mut out = String::new();
        write_py(self, &mut out, Style::Internal, true);
        out
    }

    /// Nesting depth (scalars are 0).
    pub(crate) fn depth(&self) -> u32 {
        match self {
            YaqlValue::List(l) => l.0.depth,
            YaqlValue::Dict(d) => d.0.depth,
            YaqlValue::Set(s) => s.0.depth,
            YaqlValue::Opaque(o) => match &o.0 {
                OpaqueKind::Iter(it) => it.depth(),
                OpaqueKind::Context(f) => f.depth(),
                OpaqueKind::View(items, _) => child_info(items.iter()).0,
                OpaqueKind::Ordering(ord) => child_info(ord.sorted().iter()).0,
            },
            _ => 0,
        }
    }

    /// True when an internal value (iterator, view, ...) is inside.
    pub(crate) fn has_opaque(&self) -> bool {
        match self {
            YaqlValue::List(l) => l.0.opaque,
            YaqlValue::Dict(d) => d.0.opaque,
            YaqlValue::Set(s) => s.0.opaque,
            YaqlValue::Opaque(_) => true,
            _ => false,
        }
    }

    /// Python's truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            YaqlValue::Null => false,
            YaqlValue::Bool(b) => *b,
            YaqlValue::Int(i) => *i != 0,
            YaqlValue::Float(f) => *f != 0.0,
            YaqlValue::Str(s) => !s.is_empty(),
            YaqlValue::List(l) => !l.is_empty(),
            YaqlValue::Dict(d) => !d.is_empty(),
            YaqlValue::Set(s) => !s.is_empty(),
            YaqlValue::Timespan(us) => *us != 0,
            YaqlValue::DateTime(_) | YaqlValue::Regex(_) => true,
            YaqlValue::Opaque(o) => match &o.0 {
                OpaqueKind::View(v, memo) => *memo || !v.is_empty(),
                _ => true,
            },
        }
    }

    /// Python's type name (for messages such as "unhashable type: 'list'").
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            YaqlValue::Null => "NoneType",
            YaqlValue::Bool(_) => "bool",
            YaqlValue::Int(_) => "int",
            YaqlValue::Float(_) => "float",
            YaqlValue::Str(_) => "str",
            YaqlValue::List(_) => "tuple",
            YaqlValue::Dict(_) => "dict",
            YaqlValue::Set(_) => "frozenset",
            YaqlValue::DateTime(_) => "datetime.datetime",
            YaqlValue::Timespan(_) => "datetime.timedelta",
            YaqlValue::Regex(_) => "re.Pattern",
            YaqlValue::Opaque(o) => match &o.0 {
                OpaqueKind::Iter(_) => "generator",
                OpaqueKind::View(_, true) => "RememberingIterator",
                OpaqueKind::View(_, false) => "dict_values",
                OpaqueKind::Ordering(_) => "OrderingIterable",
                OpaqueKind::Context(_) => "Context",
            },
        }
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            YaqlValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn tag(k: &str, v: Value) -> Value {
    let mut m = Map::new();
    m.insert(k.to_owned(), v);
    Value::Object(m)
}

fn tagged_set(s: &YaqlSet) -> Value {
    let mut items: Vec<(String, Value)> = s
        .iter()
        .map(|v| {
            let j = v.to_tagged_json();
            (j.to_string(), j)
        })
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    tag(
        "$set",
        Value::Array(items.into_iter().map(|p| p.1).collect()),
    )
}

fn tagged_dict(d: &YaqlDict) -> Value {
    if d.keys().all(|k| matches!(k, YaqlValue::Str(_))) {
        Value::Object(
            d.iter()
                .map(|(k, v)| (k.python_str(), v.to_tagged_json()))
                .collect(),
        )
    } else {
        tag(
            "$dict",
            Value::Array(
                d.iter()
                    .map(|(k, v)| Value::Array(vec![k.to_tagged_json(), v.to_tagged_json()]))
                    .collect(),
            ),
        )
    }
}

fn json_dict(d: &YaqlDict) -> Value {
    Value::Object(
        d.iter()
            .map(|(k, v)| (k.python_str(), v.to_json()))
            .collect(),
    )
}

// ------------------------------------------------------------------------------------------
// Python printing
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Finalized data: lists print as `[..]`, sets as `{..}`.
    Final,
    /// yaql's internal data: tuples `(..)`, frozensets `frozenset({..})`.
    Internal,
}

/// Python `datetime.isoformat(sep)`.
pub(crate) fn isoformat(d: &DateTime<FixedOffset>, sep: char) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    );
    let us = d.nanosecond() / 1000 % 1_000_000;
    if us != 0 {
        let _ = write!(s, ".{us:06}");
    }
    s.push_str(&offset_text(d.offset().local_minus_utc()));
    s
}

/// `+HH:MM` (or `+HH:MM:SS`) as Python prints a UTC offset.
pub(crate) fn offset_text(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, a % 3600 / 60, a % 60);
    if s != 0 {
        format!("{sign}{h:02}:{m:02}:{s:02}")
    } else {
        format!("{sign}{h:02}:{m:02}")
    }
}

/// A timedelta split as Python normalizes it: days (any sign), seconds 0..86399,
/// microseconds 0..999999.
pub(crate) fn timedelta_parts(us: i64) -> (i64, i64, i64) {
    let days = us.div_euclid(86_400_000_000);
    let rest = us.rem_euclid(86_400_000_000);
    (days, rest / 1_000_000, rest % 1_000_000)
}

/// Python `str(timedelta)`: `1 day, 2:00:00`, `0:00:00.500000`.
pub(crate) fn timedelta_str(us: i64) -> String {
    let (days, secs, micros) = timedelta_parts(us);
    let mut s = String::new();
    if days != 0 {
        let _ = write!(s, "{days} day{}, ", if days.abs() != 1 { "s" } else { "" });
    }
    let _ = write!(
        s,
        "{}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    if micros != 0 {
        let _ = write!(s, ".{micros:06}");
    }
    s
}

fn timedelta_repr(us: i64) -> String {
    let (days, secs, micros) = timedelta_parts(us);
    let mut parts = Vec::new();
    if days != 0 {
        parts.push(format!("days={days}"));
    }
    if secs != 0 {
        parts.push(format!("seconds={secs}"));
    }
    if micros != 0 {
        parts.push(format!("microseconds={micros}"));
    }
    if parts.is_empty() {
        "datetime.timedelta(0)".to_owned()
    } else {
        format!("datetime.timedelta({})", parts.join(", "))
    }
}

fn datetime_repr(d: &DateTime<FixedOffset>) -> String {
    let mut s = format!(
        "datetime.datetime({}, {}, {}, {}, {}",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute()
    );
    let us = d.nanosecond() / 1000 % 1_000_000;
    if d.second() != 0 || us != 0 {
        let _ = write!(s, ", {}", d.second());
    }
    if us != 0 {
        let _ = write!(s, ", {us}");
    }
    let off = d.offset().local_minus_utc();
    if off == 0 {
        s.push_str(", tzinfo=tzutc())");
    } else {
        let _ = write!(s, ", tzinfo=tzoffset(None, {off}))");
    }
    s
}

fn regex_repr(r: &PyRegex) -> String {
    let f = r.flags();
    let mut flags = Vec::new();
    if f.ignore_case {
        flags.push("re.IGNORECASE");
    }
    if f.multiline {
        flags.push("re.MULTILINE");
    }
    if f.dot_all {
        flags.push("re.DOTALL");
    }
    if flags.is_empty() {
        format!("re.compile({})", str_repr(r.pattern()))
    } else {
        format!("re.compile({}, {})", str_repr(r.pattern()), flags.join("|"))
    }
}

fn write_py(v: &YaqlValue, out: &mut String, style: Style, top: bool) {
    match v {
        YaqlValue::Null => out.push_str("None"),
        YaqlValue::Bool(true) => out.push_str("True"),
        YaqlValue::Bool(false) => out.push_str("False"),
        YaqlValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        YaqlValue::Float(f) => out.push_str(&float_repr(*f)),
        YaqlValue::Str(s) => {
            if top {
                out.push_str(s);
            } else {
                out.push_str(&str_repr(s));
            }
        }
        YaqlValue::List(l) => write_seq(l.iter(), l.len(), out, style),
        YaqlValue::Dict(d) => {
            out.push('{');
            for (i, (k, v)) in d.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py(k, out, style, false);
                out.push_str(": ");
                write_py(v, out, style, false);
            }
            out.push('}');
        }
        YaqlValue::Set(s) => {
            let (open, close, empty) = match style {
                Style::Final => ("{", "}", "set()"),
                Style::Internal => ("frozenset({", "})", "frozenset()"),
            };
            if s.is_empty() {
                out.push_str(empty);
                return;
            }
            out.push_str(open);
            for (i, item) in s.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py(item, out, style, false);
            }
            out.push_str(close);
        }
        YaqlValue::DateTime(d) => {
            if top {
                out.push_str(&isoformat(d, ' '));
            } else {
                out.push_str(&datetime_repr(d));
            }
        }
        YaqlValue::Timespan(us) => {
            if top {
                out.push_str(&timedelta_str(*us));
            } else {
                out.push_str(&timedelta_repr(*us));
            }
        }
        YaqlValue::Regex(r) => out.push_str(&regex_repr(&r.0)),
        YaqlValue::Opaque(o) => match &o.0 {
            OpaqueKind::View(_, true) => out.push_str("<RememberingIterator object>"),
            OpaqueKind::View(items, false) => {
                out.push_str("dict_values(");
                write_seq(items.iter(), 2, out, Style::Final);
                out.push(')');
            }
            OpaqueKind::Iter(_) => out.push_str("<generator object>"),
            OpaqueKind::Ordering(_) => {
                out.push_str("<yaql.standard_library.queries.OrderingIterable object>")
            }
            OpaqueKind::Context(_) => out.push_str("<yaql.language.contexts.Context object>"),
        },
    }
}

fn write_seq<'a>(
    items: impl Iterator<Item = &'a YaqlValue>,
    len: usize,
    out: &mut String,
    style: Style,
) {
    let (open, close) = match style {
        Style::Final => ('[', ']'),
        Style::Internal => ('(', ')'),
    };
    out.push(open);
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_py(item, out, style, false);
    }
    if style == Style::Internal && len == 1 {
        out.push(',');
    }
    out.push(close);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn s(x: &str) -> YaqlValue {
        YaqlValue::from(x)
    }

    #[test]
    fn python_equality_and_hashing() {
        let one = YaqlValue::Int(1);
        for other in [YaqlValue::Float(1.0), YaqlValue::Bool(true)] {
            assert!(py_eq(&one, &other));
            assert_eq!(py_hash(&one), py_hash(&other));
        }
        assert!(!py_eq(&YaqlValue::Int(1), &s("1")));
        assert!(!py_eq(&YaqlValue::Null, &YaqlValue::Bool(false)));
        let a = YaqlValue::from_json(&json!({"a": 1, "b": [1, 2]}));
        let b = YaqlValue::from_json(&json!({"b": [1.0, 2], "a": true}));
        assert!(py_eq(&a, &b));
        assert_eq!(py_hash(&a), py_hash(&b));
    }

    #[test]
    fn dict_keeps_first_key_and_last_value() {
        let d: YaqlDict = vec![
            (YaqlValue::Int(1), s("a")),
            (YaqlValue::Bool(true), s("b")),
            (s("x"), s("c")),
        ]
        .into_iter()
        .collect();
        assert_eq!(d.len(), 2);
        assert!(matches!(d.keys().next(), Some(YaqlValue::Int(1))));
        assert_eq!(d.get(&YaqlValue::Float(1.0)), Some(&s("b")));
    }

    #[test]
    fn large_tables_use_the_index() {
        let d: YaqlDict = (0..100)
            .map(|i| (YaqlValue::Int(i % 50), YaqlValue::Int(i)))
            .collect();
        assert_eq!(d.len(), 50);
        assert_eq!(d.get(&YaqlValue::Float(7.0)), Some(&YaqlValue::Int(57)));
        assert_eq!(d.get_str("x"), None);
        let set: YaqlSet = (0..40).map(|i| s(&format!("k{}", i % 20))).collect();
        assert_eq!(set.len(), 20);
        assert!(set.contains(&s("k19")));
        let mut b = d.to_builder();
        b.remove(&YaqlValue::Int(3));
        let d2 = b.build();
        assert_eq!(d2.len(), 49);
        assert_eq!(d2.get(&YaqlValue::Int(4)), Some(&YaqlValue::Int(54)));
    }

    #[test]
    fn printing_like_python() {
        let v = YaqlValue::from_json(&json!([1, "a", null, true, 1.5, {"k": [2]}]));
        assert_eq!(v.python_str(), "[1, 'a', None, True, 1.5, {'k': [2]}]");
        assert_eq!(v.yaql_str(), "(1, 'a', None, True, 1.5, {'k': (2,)})");
        let set: YaqlSet = vec![YaqlValue::Int(1)].into_iter().collect();
        assert_eq!(YaqlValue::Set(set.clone()).python_str(), "{1}");
        assert_eq!(YaqlValue::Set(set).yaql_str(), "frozenset({1})");
        let utc = FixedOffset::east_opt(0).map(|o| o.with_ymd_and_hms(2020, 2, 1, 0, 0, 0));
        if let Some(chrono::LocalResult::Single(d)) = utc {
            assert_eq!(
                YaqlValue::DateTime(d).python_str(),
                "2020-02-01 00:00:00+00:00"
            );
            assert_eq!(
                YaqlValue::DateTime(d).to_tagged_json(),
                json!({"$datetime": "2020-02-01T00:00:00+00:00"})
            );
        } else {
            panic!("valid date");
        }
        assert_eq!(timedelta_str(93_600_000_000), "1 day, 2:00:00");
        assert_eq!(timedelta_str(-1), "-1 day, 23:59:59.999999");
        assert_eq!(timedelta_repr(0), "datetime.timedelta(0)");
    }

    #[test]
    fn tagged_json_encodings() {
        let d: YaqlDict = vec![(YaqlValue::Int(1), s("a"))].into_iter().collect();
        assert_eq!(
            YaqlValue::Dict(d).to_tagged_json(),
            json!({"$dict": [[1, "a"]]})
        );
        let set: YaqlSet = vec![s("b"), s("a")].into_iter().collect();
        assert_eq!(
            YaqlValue::Set(set).to_tagged_json(),
            json!({"$set": ["a", "b"]})
        );
        assert_eq!(
            YaqlValue::Float(f64::NAN).to_tagged_json(),
            json!({"$float": "nan"})
        );
        assert_eq!(
            YaqlValue::Timespan(5).to_tagged_json(),
            json!({"$timespan_us": 5})
        );
        let round = json!({"a": [1, 2.5, "x", null, {"b": false}]});
        assert_eq!(YaqlValue::from_json(&round).to_json(), round);
    }
}
