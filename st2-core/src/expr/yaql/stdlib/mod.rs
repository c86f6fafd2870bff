//! yaql's standard library: every function as a set of overloads with typed parameters, and
//! the overload resolution that picks one for a call.
//!
//! Resolution follows yaql: candidates are filtered by arity and keyword names and by the types
//! of constant and lazy arguments; the remaining arguments are evaluated once; the first
//! candidate whose parameter types accept the values is called. No candidate means
//! "No function matches supplied arguments"; no function of that name at all means
//! "Unknown function".

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::eval::{Ev, Frame, Lambda, R, Src, no_matching, no_matching_method};
use super::parser::Node;
use super::stream;
use super::value::{OpaqueKind, YaqlValue};

pub(crate) mod collections;
pub(crate) mod datetime;
pub(crate) mod math;
pub(crate) mod queries;
pub(crate) mod regex;
pub(crate) mod strings;
pub(crate) mod system;

/// How a function can be called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `f(x)` only.
    Function,
    /// `x.f()` only.
    Method,
    /// Both (yaql's extension methods).
    Extension,
}

/// Parameter types (yaql's smart types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum T {
    /// Any value, null included.
    Any,
    /// A string.
    Str,
    /// A string or null.
    StrN,
    /// A Python `int` (booleans included, as in Python).
    Int,
    /// An int or null.
    IntN,
    /// An integer, not a boolean (yaql's `Integer`).
    Integer,
    /// An int or float, not a boolean.
    Num,
    /// A number or null.
    NumN,
    /// A boolean.
    Bool,
    /// Anything iterable but strings and dicts.
    Iterable,
    /// A lazy iterator.
    Iterator,
    /// A list.
    Sequence,
    /// A dict.
    Mapping,
    /// A set.
    Set,
    /// A datetime.
    DateTime,
    /// A timespan.
    Timespan,
    /// A timespan or null.
    TimespanN,
    /// A regex object.
    Regex,
    /// An `orderBy` result.
    Ordering,
    /// A lazily evaluated expression (yaql's `Lambda`).
    Lambda,
    /// A `key => value` pair, not evaluated.
    Rule,
    /// A `key => value` pair, both sides evaluated.
    Pair,
}

impl T {
    fn lazy(self) -> bool {
        matches!(self, T::Lambda | T::Rule)
    }

    /// Whether an evaluated value fits.
    pub(crate) fn accepts(self, v: &YaqlValue) -> bool {
        use YaqlValue as V;
        match self {
            T::Any => true,
            T::Str => matches!(v, V::Str(_)),
            T::StrN => matches!(v, V::Str(_) | V::Null),
            T::Int => matches!(v, V::Int(_) | V::Bool(_)),
            T::IntN => matches!(v, V::Int(_) | V::Bool(_) | V::Null),
            T::Integer => matches!(v, V::Int(_)),
            T::Num => matches!(v, V::Int(_) | V::Float(_)),
            T::NumN => matches!(v, V::Int(_) | V::Float(_) | V::Null),
            T::Bool => matches!(v, V::Bool(_)),
            T::Iterable => stream::is_iterable(v),
            T::Iterator => matches!(
                v,
                V::Opaque(o) if matches!(o.0, OpaqueKind::Iter(_) | OpaqueKind::View(_, true))
            ),
            T::Sequence => matches!(v, V::List(_)),
            T::Mapping => matches!(v, V::Dict(_)),
            T::Set => matches!(v, V::Set(_)),
            T::DateTime => matches!(v, V::DateTime(_)),
            T::Timespan => matches!(v, V::Timespan(_)),
            T::TimespanN => matches!(v, V::Timespan(_) | V::Null),
            T::Regex => matches!(v, V::Regex(_)),
            T::Ordering => matches!(v, V::Opaque(o) if matches!(o.0, OpaqueKind::Ordering(_))),
            T::Lambda => true,
            T::Rule | T::Pair => false,
        }
    }
}

/// A parameter's default.
#[derive(Clone, Copy, Debug)]
pub(crate) enum D {
    /// Required.
    Req,
    /// Optional; absent when not given (yaql's `NO_VALUE`).
    Absent,
    /// `null`.
    Null,
    /// An integer.
    I(i64),
    /// A boolean.
    B(bool),
}

/// One parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct P {
    pub(crate) name: &'static str,
    pub(crate) ty: T,
    pub(crate) default: D,
}

/// A required parameter.
pub(crate) const fn p(name: &'static str, ty: T) -> P {
    P {
        name,
        ty,
        default: D::Req,
    }
}

/// An optional parameter.
pub(crate) const fn o(name: &'static str, ty: T, default: D) -> P {
    P { name, ty, default }
}

/// The implementation of an overload.
pub(crate) type Imp = fn(&mut Ev<'_>, &Call) -> R<YaqlValue>;

/// One overload of a function.
pub(crate) struct Overload {
    pub(crate) kind: Kind,
    pub(crate) params: Vec<P>,
    /// Type of `*args`, when the function takes them.
    pub(crate) rest: Option<T>,
    /// Whether `**kwargs` are taken.
    pub(crate) kwrest: bool,
    /// `key => value` arguments are passed positionally (yaql's `no_kwargs`).
    pub(crate) no_kwargs: bool,
    pub(crate) imp: Imp,
}

/// A resolved argument.
#[derive(Clone)]
pub(crate) enum Slot {
    /// An evaluated value.
    V(YaqlValue),
    /// Not given (no default).
    Absent,
    /// A lazily evaluated expression.
    Lambda(Lambda),
    /// An unevaluated `key => value`.
    Rule(Lambda, Lambda),
    /// An evaluated `key => value`.
    Pair(YaqlValue, YaqlValue),
}

static NULL: YaqlValue = YaqlValue::Null;

/// The arguments of one call, resolved against an overload.
pub(crate) struct Call {
    /// One slot per parameter (the receiver first for methods).
    pub(crate) args: Vec<Slot>,
    /// `*args`.
    pub(crate) rest: Vec<Slot>,
    /// `**kwargs`.
    pub(crate) kw: Vec<(Arc<str>, YaqlValue)>,
    /// The frame of the call site.
    pub(crate) frame: Arc<Frame>,
}

impl Call {
    /// The value of parameter `i` (null when absent or not a value).
    pub(crate) fn v(&self, i: usize) -> &YaqlValue {
        match self.args.get(i) {
            Some(Slot::V(v)) => v,
            _ => &NULL,
        }
    }

    /// True when parameter `i` was given or has a default.
    pub(crate) fn has(&self, i: usize) -> bool {
        !matches!(self.args.get(i), Some(Slot::Absent) | None)
    }

    /// Parameter `i` as an integer (booleans count as 0/1).
    pub(crate) fn int(&self, i: usize) -> i64 {
        match self.v(i) {
            YaqlValue::Int(n) => *n,
            YaqlValue::Bool(b) => i64::from(*b),
            _ => 0,
        }
    }

    /// Parameter `i` as a string (empty when not one).
    pub(crate) fn s(&self, i: usize) -> &str {
        self.v(i).as_str().unwrap_or("")
    }

    /// Parameter `i` as a lambda (none when null or absent).
    pub(crate) fn lam(&self, i: usize) -> Option<&Lambda> {
        match self.args.get(i) {
            Some(Slot::Lambda(l)) => Some(l),
            _ => None,
        }
    }

    /// The values of `*args`.
    pub(crate) fn rest_values(&self) -> Vec<YaqlValue> {
        self.rest
            .iter()
            .map(|s| match s {
                Slot::V(v) => v.clone(),
                _ => YaqlValue::Null,
            })
            .collect()
    }

    /// The lambdas of `*args`.
    pub(crate) fn rest_lambdas(&self) -> Vec<Lambda> {
        self.rest
            .iter()
            .filter_map(|s| match s {
                Slot::Lambda(l) => Some(l.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The standard library: overloads by name, for function calls and for method calls.
pub(crate) struct Library {
    functions: HashMap<&'static str, Vec<Overload>>,
    methods: HashMap<&'static str, Vec<Overload>>,
}

impl Library {
    /// The shared standard library.
    pub(crate) fn standard() -> &'static Library {
        static LIB: OnceLock<Library> = OnceLock::new();
        LIB.get_or_init(|| {
            let mut lib = Builder::default();
            system::register(&mut lib);
            math::register(&mut lib);
            strings::register(&mut lib);
            collections::register(&mut lib);
            queries::register(&mut lib);
            regex::register(&mut lib);
            datetime::register(&mut lib);
            lib.finish()
        })
    }

    pub(crate) fn functions(&self, name: &str) -> Option<&[Overload]> {
        self.functions.get(name).map(Vec::as_slice)
    }

    pub(crate) fn methods(&self, name: &str) -> Option<&[Overload]> {
        self.methods.get(name).map(Vec::as_slice)
    }
}

/// Collects overloads while the library is built.
#[derive(Default)]
pub(crate) struct Builder {
    entries: Vec<(&'static str, Overload)>,
}

impl Builder {
    /// Add an overload; returns it for further settings.
    pub(crate) fn add(
        &mut self,
        name: &'static str,
        kind: Kind,
        params: &[P],
        imp: Imp,
    ) -> &mut Overload {
        self.entries.push((
            name,
            Overload {
                kind,
                params: params.to_vec(),
                rest: None,
                kwrest: false,
                no_kwargs: false,
                imp,
            },
        ));
        let last = self.entries.len() - 1;
        &mut self.entries[last].1
    }

    fn finish(self) -> Library {
        let mut functions: HashMap<&'static str, Vec<Overload>> = HashMap::new();
        let mut methods: HashMap<&'static str, Vec<Overload>> = HashMap::new();
        for (name, o) in self.entries {
            match o.kind {
                Kind::Function => functions.entry(name).or_default().push(o),
                Kind::Method => methods.entry(name).or_default().push(o),
                Kind::Extension => {
                    let copy = Overload {
                        kind: o.kind,
                        params: o.params.clone(),
                        rest: o.rest,
                        kwrest: o.kwrest,
                        no_kwargs: o.no_kwargs,
                        imp: o.imp,
                    };
                    functions.entry(name).or_default().push(copy);
                    methods.entry(name).or_default().push(o);
                }
            }
        }
        Library { functions, methods }
    }
}

impl Overload {
    /// `*args` of type `t`.
    pub(crate) fn rest(&mut self, t: T) -> &mut Self {
        self.rest = Some(t);
        self
    }

    /// `**kwargs`.
    pub(crate) fn kwrest(&mut self) -> &mut Self {
        self.kwrest = true;
        self
    }

    /// `key => value` arguments are positional.
    pub(crate) fn no_kwargs(&mut self) -> &mut Self {
        self.no_kwargs = true;
        self
    }
}

/// Where a parameter's argument comes from.
#[derive(Clone, Copy)]
enum From_ {
    Pos(usize),
    Kw(usize),
    Default,
}

struct Mapping {
    params: Vec<From_>,
    rest: Vec<usize>,
    kwrest: Vec<usize>,
}

/// Shape check before evaluation: lazy parameters need the right kind of expression, and
/// constants are checked by value.
fn precheck(ty: T, src: &Src<'_>) -> bool {
    match (ty, src) {
        (T::Rule | T::Pair, Src::Rule(..)) => true,
        (T::Rule | T::Pair, _) => false,
        (_, Src::Rule(..)) => false,
        (T::Lambda, Src::Node(_)) => true,
        (T::Lambda, Src::Val(v)) => matches!(v, YaqlValue::Null),
        (T::Lambda, Src::Missing) => true,
        (t, Src::Val(v)) => t.accepts(v),
        (t, Src::Node(n)) => match &***n {
            Node::Const(v) => t.accepts(v),
            Node::Keyword(k) => t.accepts(&YaqlValue::Str(k.clone())),
            _ => true,
        },
        (_, Src::Missing) => true,
    }
}

fn map_args(o: &Overload, pos: &[Src<'_>], kw: &[(Arc<str>, Src<'_>)]) -> Option<Mapping> {
    let mut params = Vec::with_capacity(o.params.len());
    let mut used_kw = vec![false; kw.len()];
    let mut rest = Vec::new();
    for (i, src) in pos.iter().enumerate() {
        if i < o.params.len() {
            let p = &o.params[i];
            if kw.iter().any(|(k, _)| &**k == p.name) {
                return None;
            }
            if matches!(src, Src::Missing) {
                if matches!(p.default, D::Req) {
                    return None;
                }
                params.push(From_::Default);
            } else {
                if !precheck(p.ty, src) {
                    return None;
                }
                params.push(From_::Pos(i));
            }
        } else {
            let t = o.rest?;
            if !matches!(src, Src::Missing) && !precheck(t, src) {
                return None;
            }
            rest.push(i);
        }
    }
    for p in o.params.iter().skip(pos.len()) {
        match kw.iter().position(|(k, _)| &**k == p.name) {
            Some(j) => {
                if !precheck(p.ty, &kw[j].1) {
                    return None;
                }
                used_kw[j] = true;
                params.push(From_::Kw(j));
            }
            None if matches!(p.default, D::Req) => return None,
            None => params.push(From_::Default),
        }
    }
    let mut kwrest = Vec::new();
    for (j, used) in used_kw.iter().enumerate() {
        if !used {
            if !o.kwrest {
                return None;
            }
            kwrest.push(j);
        }
    }
    Some(Mapping {
        params,
        rest,
        kwrest,
    })
}

fn default_slot(d: D) -> Slot {
    match d {
        D::Req | D::Absent => Slot::Absent,
        D::Null => Slot::V(YaqlValue::Null),
        D::I(i) => Slot::V(YaqlValue::Int(i)),
        D::B(b) => Slot::V(YaqlValue::Bool(b)),
    }
}

/// Resolve and call one of `overloads`.
pub(crate) fn dispatch(
    ev: &mut Ev<'_>,
    frame: &Arc<Frame>,
    name: &str,
    overloads: &[Overload],
    pos: Vec<Src<'_>>,
    kw: Vec<(Arc<str>, Src<'_>)>,
    receiver: Option<&YaqlValue>,
) -> R<YaqlValue> {
    let not_found = || match receiver {
        Some(r) => no_matching_method(name, r),
        None => no_matching(name),
    };
    let mut candidates: Vec<(&Overload, Mapping)> = Vec::with_capacity(overloads.len());
    for o in overloads {
        if let Some(m) = map_args(o, &pos, &kw) {
            candidates.push((o, m));
        }
    }
    let Some((first, first_map)) = candidates.first() else {
        return Err(not_found());
    };
    // Laziness of each argument, as the first candidate sees it.
    let mut lazy_pos = vec![false; pos.len()];
    let mut lazy_kw = vec![false; kw.len()];
    let mut pair_pos = vec![false; pos.len()];
    for (pi, from) in first_map.params.iter().enumerate() {
        let ty = first.params[pi].ty;
        match from {
            From_::Pos(i) => {
                lazy_pos[*i] = ty.lazy();
                pair_pos[*i] = ty == T::Pair;
            }
            From_::Kw(j) => lazy_kw[*j] = ty.lazy(),
            From_::Default => {}
        }
    }
    if let Some(t) = first.rest {
        for &i in &first_map.rest {
            lazy_pos[i] = t.lazy();
            pair_pos[i] = t == T::Pair;
        }
    }
    // Evaluate the eager arguments once, in order.
    let mut pos_vals: Vec<Option<Slot>> = Vec::with_capacity(pos.len());
    for (i, src) in pos.iter().enumerate() {
        pos_vals.push(match src {
            Src::Val(v) => Some(Slot::V(v.clone())),
            Src::Missing => None,
            Src::Node(n) if lazy_pos[i] => Some(lazy_slot(n, frame)),
            Src::Node(n) => Some(Slot::V(ev.eval(n, frame)?)),
            Src::Rule(k, v) if pair_pos[i] => {
                let k = ev.eval(k, frame)?;
                let v = ev.eval(v, frame)?;
                Some(Slot::Pair(k, v))
            }
            Src::Rule(k, v) => Some(Slot::Rule(
                Lambda {
                    node: (*k).clone(),
                    frame: frame.clone(),
                },
                Lambda {
                    node: (*v).clone(),
                    frame: frame.clone(),
                },
            )),
        });
    }
    let mut kw_vals: Vec<Slot> = Vec::with_capacity(kw.len());
    for (j, (_, src)) in kw.iter().enumerate() {
        kw_vals.push(match src {
            Src::Val(v) => Slot::V(v.clone()),
            Src::Node(n) if lazy_kw[j] => lazy_slot(n, frame),
            Src::Node(n) => Slot::V(ev.eval(n, frame)?),
            _ => Slot::Absent,
        });
    }
    for (o, m) in &candidates {
        if let Some(call) = bind(o, m, &pos_vals, &kw, &kw_vals, frame) {
            let result = (o.imp)(ev, &call)?;
            ev.check_depth(&result)?;
            return Ok(result);
        }
    }
    Err(not_found())
}

fn lazy_slot(n: &Arc<Node>, frame: &Arc<Frame>) -> Slot {
    Slot::Lambda(Lambda {
        node: n.clone(),
        frame: frame.clone(),
    })
}

/// Check evaluated arguments against an overload; the call when they fit.
fn bind(
    o: &Overload,
    m: &Mapping,
    pos_vals: &[Option<Slot>],
    kw: &[(Arc<str>, Src<'_>)],
    kw_vals: &[Slot],
    frame: &Arc<Frame>,
) -> Option<Call> {
    let fits = |ty: T, slot: &Slot| -> Option<Slot> {
        match (ty, slot) {
            (T::Lambda, Slot::Lambda(_)) => Some(slot.clone()),
            (T::Lambda, Slot::V(YaqlValue::Null)) => Some(Slot::Absent),
            (T::Rule, Slot::Rule(..)) | (T::Pair, Slot::Pair(..)) => Some(slot.clone()),
            (t, Slot::V(v)) if !t.lazy() && t.accepts(v) => Some(slot.clone()),
            _ => None,
        }
    };
    let mut args = Vec::with_capacity(o.params.len());
    for (pi, from) in m.params.iter().enumerate() {
        let p = &o.params[pi];
        args.push(match from {
            From_::Default => default_slot(p.default),
            From_::Pos(i) => match &pos_vals[*i] {
                Some(slot) => fits(p.ty, slot)?,
                None => default_slot(p.default),
            },
            From_::Kw(j) => fits(p.ty, &kw_vals[*j])?,
        });
    }
    let mut rest = Vec::with_capacity(m.rest.len());
    if let Some(t) = o.rest {
        for &i in &m.rest {
            rest.push(match &pos_vals[i] {
                Some(slot) => fits(t, slot)?,
                None => Slot::V(YaqlValue::Null),
            });
        }
    }
    let mut kwargs = Vec::with_capacity(m.kwrest.len());
    for &j in &m.kwrest {
        match &kw_vals[j] {
            Slot::V(v) => kwargs.push((kw[j].0.clone(), v.clone())),
            _ => return None,
        }
    }
    Some(Call {
        args,
        rest,
        kw: kwargs,
        frame: frame.clone(),
    })
}
