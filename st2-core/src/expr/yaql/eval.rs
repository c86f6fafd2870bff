//! The evaluator: walks the expression tree with a chain of context frames, dispatches calls to
//! the standard library, `def`-ined functions and registered functions, applies the operators,
//! and finalizes results as yaql does. Every evaluation runs under a budget (steps, nesting,
//! sizes) so hostile input fails with [`ErrorKind::Limit`] instead of exhausting the machine.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::native::{ConversionCache, NativeCall, NativeFunction};
use super::parser::{Arg, BinOp, Node, UnOp};
use super::stdlib::{self, Library};
use super::stream::{self, LazyIter, Stream};
use super::value::{
    DictBuilder, Opaque, OpaqueKind, YaqlDict, YaqlList, YaqlSet, YaqlValue, py_eq,
};
use crate::expr::{ErrorKind, ExprError, FunctionCall, Functions, Language, Scope};

/// Native functions by name.
pub(crate) type Natives = std::collections::HashMap<String, Arc<dyn NativeFunction>>;

/// Keyword arguments, in the order given.
pub(crate) type Keywords = Vec<(Arc<str>, YaqlValue)>;

/// Result of evaluation steps.
pub(crate) type R<T> = Result<T, Error>;

/// An evaluation error, boxed so that results stay small on the hot paths.
pub(crate) type Error = Box<ExprError>;

/// Resource limits of one evaluation. Exceeding one fails the evaluation with
/// [`ErrorKind::Limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Evaluation steps: tree nodes visited, iterator items produced, sort comparisons.
    pub max_steps: u64,
    /// Nesting of evaluation: tree depth, lambda and function calls, chained iterators.
    pub max_depth: u32,
    /// Elements of one collection.
    pub max_collection: usize,
    /// Bytes of one string.
    pub max_string: usize,
    /// Nesting of one value (lists in lists, iterators over iterators, contexts).
    pub max_value_depth: u32,
    /// Bytes allocated for strings and collections over the whole evaluation (a collection
    /// element counts 32 bytes).
    pub max_alloc: u64,
}

impl Default for Limits {
    /// 10 million steps, 160 levels of nesting, 1 million elements, 10 MB strings, values
    /// nested 300 deep, 256 MB of allocations.
    fn default() -> Self {
        Limits {
            max_steps: 10_000_000,
            max_depth: 160,
            max_collection: 1_000_000,
            max_string: 10_000_000,
            max_value_depth: 300,
            max_alloc: 256_000_000,
        }
    }
}

pub(crate) fn err(kind: ErrorKind, msg: impl Into<String>) -> Error {
    Box::new(ExprError::new(kind, msg))
}

pub(crate) fn no_function(name: &str) -> Error {
    err(
        ErrorKind::UnknownFunction,
        format!("Unknown function \"{name}\""),
    )
}

pub(crate) fn no_matching(name: &str) -> Error {
    err(
        ErrorKind::NoMatchingFunction,
        format!("No function \"{name}\" matches supplied arguments"),
    )
}

pub(crate) fn no_matching_method(name: &str, receiver: &YaqlValue) -> Error {
    err(
        ErrorKind::NoMatchingFunction,
        format!(
            "No method \"{name}\" for receiver {} matches supplied arguments",
            receiver.yaql_str()
        ),
    )
}

pub(crate) fn key_error(key: &YaqlValue) -> Error {
    err(ErrorKind::Key, key.python_repr())
}

pub(crate) fn type_error(msg: impl Into<String>) -> Error {
    err(ErrorKind::Type, msg)
}

pub(crate) fn value_error(msg: impl Into<String>) -> Error {
    err(ErrorKind::Value, msg)
}

pub(crate) fn limit_error(msg: impl Into<String>) -> Error {
    err(ErrorKind::Limit, msg)
}

pub(crate) fn overflow() -> Error {
    limit_error("integer overflow (this engine's integers are 64-bit)")
}

/// The name of a context variable: `$1`, `$2`... (`$` is `$1`) or `$name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Name {
    /// A positional variable.
    Pos(u32),
    /// A named variable.
    Key(Arc<str>),
}

impl Name {
    /// The name of `$text` (`""` is `$`, which is `$1`).
    pub(crate) fn parse(text: &str) -> Name {
        if text.is_empty() {
            return Name::Pos(1);
        }
        let canonical =
            text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
        match text.parse::<u32>() {
            Ok(n) if canonical => Name::Pos(n),
            _ => Name::Key(text.into()),
        }
    }

    fn is(&self, other: &Name) -> bool {
        match (self, other) {
            (Name::Pos(a), Name::Pos(b)) => a == b,
            (Name::Key(a), Name::Key(b)) => a == b,
            _ => false,
        }
    }
}

/// The variables of one frame (most frames hold one: a lambda's argument).
enum Vars {
    None,
    One(Name, YaqlValue),
    Many(Vec<(Name, YaqlValue)>),
}

/// A context frame: variables (`$name`, `$1`...) and `def`-ined functions, over a parent.
pub(crate) struct Frame {
    parent: Option<Arc<Frame>>,
    vars: Vars,
    funcs: Vec<(Arc<str>, Arc<Node>)>,
    depth: u32,
}

impl Frame {
    /// The root frame, with `$` bound to `data` when given.
    pub(crate) fn root(data: Option<&YaqlValue>) -> Arc<Frame> {
        match data {
            Some(d) => Frame::one(None, Name::Pos(1), d.clone()),
            None => Frame::child(None, Vec::new(), Vec::new()),
        }
    }

    /// A frame binding one variable.
    pub(crate) fn one(parent: Option<Arc<Frame>>, name: Name, value: YaqlValue) -> Arc<Frame> {
        let depth = parent.as_ref().map_or(0, |p| p.depth).max(value.depth());
        Arc::new(Frame {
            parent,
            vars: Vars::One(name, value),
            funcs: Vec::new(),
            depth: depth.saturating_add(1),
        })
    }

    pub(crate) fn child(
        parent: Option<Arc<Frame>>,
        vars: Vec<(Name, YaqlValue)>,
        funcs: Vec<(Arc<str>, Arc<Node>)>,
    ) -> Arc<Frame> {
        let mut depth = parent.as_ref().map_or(0, |p| p.depth);
        for (_, v) in &vars {
            depth = depth.max(v.depth());
        }
        let vars = if vars.is_empty() {
            Vars::None
        } else {
            Vars::Many(vars)
        };
        Arc::new(Frame {
            parent,
            vars,
            funcs,
            depth: depth.saturating_add(1),
        })
    }

    pub(crate) fn depth(&self) -> u32 {
        self.depth
    }

    fn lookup(&self, name: &Name) -> Option<&YaqlValue> {
        let mut f = self;
        loop {
            match &f.vars {
                Vars::None => {}
                Vars::One(k, v) => {
                    if k.is(name) {
                        return Some(v);
                    }
                }
                Vars::Many(vars) => {
                    for (k, v) in vars.iter().rev() {
                        if k.is(name) {
                            return Some(v);
                        }
                    }
                }
            }
            f = f.parent.as_deref()?;
        }
    }

    /// A `def`-ined function and the frame it was defined in.
    fn find_func(self: &Arc<Frame>, name: &str) -> Option<(Arc<Node>, Arc<Frame>)> {
        let mut f = self;
        loop {
            if let Some((_, body)) = f.funcs.iter().rev().find(|(n, _)| &**n == name) {
                return Some((body.clone(), f.clone()));
            }
            f = f.parent.as_ref()?;
        }
    }
}

/// An argument evaluated lazily: an expression with the frame it is evaluated in.
#[derive(Clone)]
pub(crate) struct Lambda {
    pub(crate) node: Arc<Node>,
    pub(crate) frame: Arc<Frame>,
}

/// One evaluation: the engine's tables, the caller's scope and the budget.
pub(crate) struct Ev<'a> {
    pub(crate) lib: &'a Library,
    pub(crate) functions: &'a Functions,
    pub(crate) natives: &'a Natives,
    pub(crate) cache: &'a ConversionCache,
    pub(crate) scope: &'a Scope,
    limits: Limits,
    steps: u64,
    depth: u32,
    alloc: u64,
}

/// A source of a call argument.
pub(crate) enum Src<'n> {
    /// An already evaluated value (a receiver, or `call()` arguments).
    Val(YaqlValue),
    /// An expression.
    Node(&'n Arc<Node>),
    /// An empty slot.
    Missing,
    /// `key => value` passed positionally (functions without keyword arguments).
    Rule(&'n Arc<Node>, &'n Arc<Node>),
}

impl<'a> Ev<'a> {
    pub(crate) fn new(
        lib: &'a Library,
        functions: &'a Functions,
        natives: &'a Natives,
        cache: &'a ConversionCache,
        scope: &'a Scope,
        limits: Limits,
    ) -> Self {
        Ev {
            lib,
            functions,
            natives,
            cache,
            scope,
            limits,
            steps: 0,
            depth: 0,
            alloc: 0,
        }
    }

    /// Count `n` steps against the budget.
    pub(crate) fn step(&mut self, n: u64) -> R<()> {
        self.steps += n;
        if self.steps > self.limits.max_steps {
            return Err(limit_error(format!(
                "evaluation exceeded {} steps",
                self.limits.max_steps
            )));
        }
        Ok(())
    }

    /// Enter one level of nesting.
    pub(crate) fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            self.depth -= 1;
            return Err(limit_error(format!(
                "evaluation nested deeper than {} levels",
                self.limits.max_depth
            )));
        }
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Charge an allocation of `bytes` against the budget.
    pub(crate) fn charge(&mut self, bytes: u64) -> R<()> {
        self.alloc += bytes;
        if self.alloc > self.limits.max_alloc {
            return Err(limit_error(format!(
                "evaluation allocated more than {} bytes",
                self.limits.max_alloc
            )));
        }
        Ok(())
    }

    /// Refuse a collection of `n` elements before building it.
    pub(crate) fn check_len(&mut self, n: usize) -> R<()> {
        if n > self.limits.max_collection {
            return Err(limit_error(format!(
                "collection of more than {} elements",
                self.limits.max_collection
            )));
        }
        self.charge(n as u64 * 32)
    }

    /// Refuse a string of `n` bytes before building it.
    pub(crate) fn check_str_len(&mut self, n: usize) -> R<()> {
        if n > self.limits.max_string {
            return Err(limit_error(format!(
                "string longer than {} bytes",
                self.limits.max_string
            )));
        }
        self.charge(n as u64)
    }

    /// Refuse a value nested too deeply (its drop and printing would recurse too far).
    pub(crate) fn check_depth(&self, v: &YaqlValue) -> R<()> {
        if v.depth() > self.limits.max_value_depth {
            return Err(limit_error(format!(
                "value nested deeper than {} levels",
                self.limits.max_value_depth
            )));
        }
        Ok(())
    }

    /// A list value, within limits.
    pub(crate) fn list(&mut self, items: Vec<YaqlValue>) -> R<YaqlValue> {
        self.check_len(items.len())?;
        let v = YaqlValue::List(YaqlList::new(items));
        self.check_depth(&v)?;
        Ok(v)
    }

    /// A string value, within limits.
    pub(crate) fn string(&mut self, s: String) -> R<YaqlValue> {
        self.check_str_len(s.len())?;
        Ok(YaqlValue::Str(s.into()))
    }

    /// A dict value, within limits.
    pub(crate) fn dict(&mut self, b: DictBuilder) -> R<YaqlValue> {
        self.check_len(b.len())?;
        let v = YaqlValue::Dict(b.build());
        self.check_depth(&v)?;
        Ok(v)
    }

    /// A set value, within limits.
    pub(crate) fn set(&mut self, items: impl IntoIterator<Item = YaqlValue>) -> R<YaqlValue> {
        let s: YaqlSet = items.into_iter().collect();
        self.check_len(s.len())?;
        let v = YaqlValue::Set(s);
        self.check_depth(&v)?;
        Ok(v)
    }

    /// A lazy iterator value over `s` (whose sources have nesting `depth`).
    pub(crate) fn lazy(&mut self, s: impl Stream + 'static, depth: u32) -> R<YaqlValue> {
        let it = LazyIter::new(Box::new(s), depth.saturating_add(1));
        let v = YaqlValue::Opaque(Opaque(OpaqueKind::Iter(it)));
        self.check_depth(&v)?;
        Ok(v)
    }

    // --------------------------------------------------------------------------------------
    // Tree walking
    // --------------------------------------------------------------------------------------

    /// Evaluate `node` in `frame`.
    pub(crate) fn eval(&mut self, node: &Arc<Node>, frame: &Arc<Frame>) -> R<YaqlValue> {
        self.step(1)?;
        self.enter()?;
        let r = self.eval_node(node, frame);
        self.leave();
        r
    }

    fn eval_node(&mut self, node: &Arc<Node>, frame: &Arc<Frame>) -> R<YaqlValue> {
        match &**node {
            Node::Const(v) => Ok(v.clone()),
            Node::Keyword(k) => Ok(YaqlValue::Str(k.clone())),
            Node::Var(name) => Ok(self.var(frame, name)),
            Node::Wrap(inner) => self.eval(inner, frame),
            Node::Call { name, args } => self.call(frame, name, args, None),
            Node::Dot { recv, member, safe } => {
                // `$.a.b` over dicts: read in place instead of copying each step.
                if let Some(v) = lookup_path(node, frame) {
                    return Ok(v.clone());
                }
                let r = self.eval(recv, frame)?;
                if *safe && matches!(r, YaqlValue::Null) {
                    return Ok(YaqlValue::Null);
                }
                self.dot(frame, r, member)
            }
            Node::Binary { op, left, right } => self.binary(frame, *op, left, right),
            Node::Unary { op, operand } => {
                let v = self.eval(operand, frame)?;
                unary(*op, v)
            }
            Node::Index { target, args } => {
                let t = self.eval(target, frame)?;
                self.dispatch_named(frame, "#indexer", args, Some(t), false)
            }
            Node::List(args) => self.dispatch_named(frame, "#list", args, None, false),
            Node::Map(args) => self.dispatch_named(frame, "#map", args, None, false),
        }
    }

    /// `$name`: frames first, then the orquesta values kept in the scope, else null.
    fn var(&self, frame: &Arc<Frame>, name: &Name) -> YaqlValue {
        if let Some(v) = frame.lookup(name) {
            return v.clone();
        }
        let Name::Key(name) = name else {
            return YaqlValue::Null;
        };
        match &**name {
            "__vars" => {
                let mut all = self.scope.vars.clone();
                for (k, v) in &self.scope.internals {
                    all.insert(k.clone(), v.clone());
                }
                YaqlValue::from_json_map(&all)
            }
            "__state" | "__current_task" | "__current_item" => self
                .scope
                .internals
                .get(&**name)
                .map_or(YaqlValue::Null, YaqlValue::from_json),
            _ => YaqlValue::Null,
        }
    }

    /// `receiver.member`.
    fn dot(&mut self, frame: &Arc<Frame>, receiver: YaqlValue, member: &Arc<Node>) -> R<YaqlValue> {
        match &**member {
            Node::Call { name, args } => self.call(frame, name, args, Some(receiver)),
            Node::Keyword(key) => self.property(receiver, key),
            _ => Err(no_matching("#operator_.")),
        }
    }

    /// `receiver.key` for a bare identifier: a dict key, a property of each element of a
    /// collection (lazily), or a datetime/timespan property.
    pub(crate) fn property(&mut self, receiver: YaqlValue, key: &Arc<str>) -> R<YaqlValue> {
        match &receiver {
            YaqlValue::Dict(d) => d
                .get_str(key)
                .cloned()
                .ok_or_else(|| key_error(&YaqlValue::Str(key.clone()))),
            YaqlValue::List(_) | YaqlValue::Set(_) => {
                let depth = receiver.depth();
                let src = stream::iterate(&receiver)?;
                self.lazy(stream::PropertyMap::new(src, key.clone()), depth)
            }
            YaqlValue::Opaque(o) if !matches!(o.0, OpaqueKind::Context(_)) => {
                let depth = receiver.depth();
                let src = stream::iterate(&receiver)?;
                self.lazy(stream::PropertyMap::new(src, key.clone()), depth)
            }
            _ => match stdlib::datetime::property(&receiver, key) {
                Some(r) => r,
                None => Err(no_function(&format!("#property#{key}"))),
            },
        }
    }

    // --------------------------------------------------------------------------------------
    // Calls
    // --------------------------------------------------------------------------------------

    /// `name(args)` (no receiver) or `receiver.name(args)`.
    fn call(
        &mut self,
        frame: &Arc<Frame>,
        name: &Arc<str>,
        args: &[Arg],
        receiver: Option<YaqlValue>,
    ) -> R<YaqlValue> {
        let name: &str = name.trim_end_matches('_');
        match receiver {
            None => {
                if let Some((body, def_frame)) = frame.find_func(name) {
                    let (pos, kw) = self.eval_plain_args(frame, args)?;
                    return self.call_lambda_kw(
                        &Lambda {
                            node: body,
                            frame: def_frame,
                        },
                        pos,
                        kw,
                    );
                }
                if self.lib.functions(name).is_some() {
                    return self.dispatch_named(frame, name, args, None, false);
                }
                if self.natives.contains_key(name) {
                    let (pos, kw) = self.eval_plain_args(frame, args)?;
                    return self.call_native(name, pos, kw);
                }
                if self.functions.get(name).is_some() {
                    let (pos, kw) = self.eval_plain_args(frame, args)?;
                    return self.call_registered(name, pos, kw);
                }
                Err(no_function(name))
            }
            Some(recv) => {
                if self.lib.methods(name).is_some() {
                    return self.dispatch_named(frame, name, args, Some(recv), true);
                }
                Err(err(
                    ErrorKind::UnknownFunction,
                    format!("Unknown method \"{name}\" for receiver {}", recv.yaql_str()),
                ))
            }
        }
    }

    /// Call `name` with already evaluated arguments (yaql's `call()` function).
    pub(crate) fn call_with_values(
        &mut self,
        frame: &Arc<Frame>,
        name: &str,
        pos: Vec<YaqlValue>,
        kw: Vec<(Arc<str>, YaqlValue)>,
    ) -> R<YaqlValue> {
        let name = name.trim_end_matches('_');
        if let Some((body, def_frame)) = frame.find_func(name) {
            return self.call_lambda_kw(
                &Lambda {
                    node: body,
                    frame: def_frame,
                },
                pos,
                kw,
            );
        }
        if let Some(overloads) = self.lib.functions(name) {
            let pos_src = pos.into_iter().map(Src::Val).collect();
            let kw_src = kw.into_iter().map(|(k, v)| (k, Src::Val(v))).collect();
            return stdlib::dispatch(self, frame, name, overloads, pos_src, kw_src, None);
        }
        if self.natives.contains_key(name) {
            return self.call_native(name, pos, kw);
        }
        if self.functions.get(name).is_some() {
            return self.call_registered(name, pos, kw);
        }
        Err(no_function(name))
    }

    fn dispatch_named(
        &mut self,
        frame: &Arc<Frame>,
        name: &str,
        args: &[Arg],
        receiver: Option<YaqlValue>,
        method: bool,
    ) -> R<YaqlValue> {
        let lib = self.lib;
        let overloads = if method {
            lib.methods(name)
        } else {
            lib.functions(name)
        };
        let Some(overloads) = overloads else {
            return Err(no_function(name));
        };
        let no_kwargs = overloads.iter().all(|o| o.no_kwargs);
        let mut pos: Vec<Src<'_>> = Vec::with_capacity(args.len() + 1);
        let mut kw: Vec<(Arc<str>, Src<'_>)> = Vec::new();
        let recv_for_error = receiver.clone();
        if let Some(r) = receiver {
            pos.push(Src::Val(r));
        }
        for a in args {
            match a {
                Arg::Pos(n) => pos.push(Src::Node(n)),
                Arg::Missing => pos.push(Src::Missing),
                Arg::Named(k, v) => {
                    if no_kwargs {
                        pos.push(Src::Rule(k, v));
                    } else {
                        let Node::Keyword(key) = &**k else {
                            return Err(type_error(
                                "keyword argument names must be identifiers (yaql's \
                                 MappingTranslationException)",
                            ));
                        };
                        if kw.iter().any(|(n, _)| n == key) {
                            return Err(type_error(format!(
                                "keyword argument \"{key}\" given twice"
                            )));
                        }
                        kw.push((key.clone(), Src::Node(v)));
                    }
                }
            }
        }
        stdlib::dispatch(
            self,
            frame,
            name,
            overloads,
            pos,
            kw,
            recv_for_error.as_ref(),
        )
    }

    /// Arguments of a plain call (`def`-ined or registered functions): all evaluated, `k => v`
    /// pairs become keyword arguments.
    fn eval_plain_args(
        &mut self,
        frame: &Arc<Frame>,
        args: &[Arg],
    ) -> R<(Vec<YaqlValue>, Keywords)> {
        let mut pos = Vec::with_capacity(args.len());
        let mut kw = Vec::new();
        for a in args {
            match a {
                Arg::Pos(n) => pos.push(self.eval(n, frame)?),
                Arg::Missing => pos.push(YaqlValue::Null),
                Arg::Named(k, v) => {
                    let Node::Keyword(key) = &**k else {
                        return Err(type_error(
                            "keyword argument names must be identifiers (yaql's \
                             MappingTranslationException)",
                        ));
                    };
                    let value = self.eval(v, frame)?;
                    kw.push((key.clone(), value));
                }
            }
        }
        Ok((pos, kw))
    }

    /// Call a [`NativeFunction`](super::NativeFunction).
    fn call_native(&mut self, name: &str, pos: Vec<YaqlValue>, kw: Keywords) -> R<YaqlValue> {
        let Some(f) = self.natives.get(name).cloned() else {
            return Err(no_function(name));
        };
        let mut pos = pos;
        for v in &mut pos {
            *v = self.finalize(std::mem::take(v))?;
        }
        let mut kw = kw;
        for (_, v) in &mut kw {
            *v = self.finalize(std::mem::take(v))?;
        }
        let v = f.call(&NativeCall {
            name,
            args: &pos,
            kwargs: &kw,
            scope: self.scope,
            cache: self.cache,
        })?;
        self.check_depth(&v)?;
        Ok(v)
    }

    /// Call a function registered through [`Functions`]: JSON in, JSON out.
    fn call_registered(
        &mut self,
        name: &str,
        pos: Vec<YaqlValue>,
        kw: Vec<(Arc<str>, YaqlValue)>,
    ) -> R<YaqlValue> {
        let Some(f) = self.functions.get(name).cloned() else {
            return Err(no_function(name));
        };
        let mut args = Vec::with_capacity(pos.len());
        for v in pos {
            args.push(self.finalize(v)?.to_json());
        }
        let mut kwargs = Map::new();
        for (k, v) in kw {
            kwargs.insert(k.to_string(), self.finalize(v)?.to_json());
        }
        let result: Value = f.call(&FunctionCall {
            name,
            args: &args,
            kwargs: &kwargs,
            scope: self.scope,
            language: Language::Yaql,
        })?;
        let v = YaqlValue::from_json(&result);
        self.check_depth(&v)?;
        Ok(v)
    }

    /// Call a lambda with positional arguments (`$1`, `$2`, ... and `$` = `$1`).
    pub(crate) fn call_lambda(&mut self, lambda: &Lambda, args: &[YaqlValue]) -> R<YaqlValue> {
        let parent = Some(lambda.frame.clone());
        let frame = match args {
            [] => Frame::child(parent, Vec::new(), Vec::new()),
            [one] => Frame::one(parent, Name::Pos(1), one.clone()),
            _ => Frame::child(parent, positional(args.iter().cloned()), Vec::new()),
        };
        self.eval(&lambda.node, &frame)
    }

    /// Call a lambda with one argument, reusing `cache`'s frame when nothing else holds it
    /// (the per-item calls of `select`, `where`, ...).
    pub(crate) fn call_lambda1(
        &mut self,
        lambda: &Lambda,
        arg: YaqlValue,
        cache: &mut Option<Arc<Frame>>,
    ) -> R<YaqlValue> {
        let depth = lambda.frame.depth.max(arg.depth()).saturating_add(1);
        let frame = match cache {
            Some(f) => match Arc::get_mut(f) {
                Some(m) => {
                    m.depth = depth;
                    m.vars = Vars::One(Name::Pos(1), arg);
                    None
                }
                None => Some(Frame::one(Some(lambda.frame.clone()), Name::Pos(1), arg)),
            },
            None => Some(Frame::one(Some(lambda.frame.clone()), Name::Pos(1), arg)),
        };
        if let Some(f) = frame {
            *cache = Some(f);
        }
        match cache {
            Some(f) => self.eval(&lambda.node, f),
            None => Ok(YaqlValue::Null),
        }
    }

    /// Call a lambda with positional and keyword arguments (`$name`).
    pub(crate) fn call_lambda_kw(
        &mut self,
        lambda: &Lambda,
        pos: Vec<YaqlValue>,
        kw: Vec<(Arc<str>, YaqlValue)>,
    ) -> R<YaqlValue> {
        let mut vars = positional(pos);
        vars.extend(kw.into_iter().map(|(k, v)| (Name::Key(k), v)));
        let frame = Frame::child(Some(lambda.frame.clone()), vars, Vec::new());
        self.eval(&lambda.node, &frame)
    }

    /// Evaluate a lambda directly in `frame` (yaql's `with_context` lambdas).
    pub(crate) fn call_in_frame(&mut self, lambda: &Lambda, frame: &Arc<Frame>) -> R<YaqlValue> {
        self.eval(&lambda.node, frame)
    }

    // --------------------------------------------------------------------------------------
    // Operators
    // --------------------------------------------------------------------------------------

    fn binary(
        &mut self,
        frame: &Arc<Frame>,
        op: BinOp,
        left: &Arc<Node>,
        right: &Arc<Node>,
    ) -> R<YaqlValue> {
        match op {
            BinOp::And => {
                let l = self.eval(left, frame)?;
                if l.truthy() {
                    self.eval(right, frame)
                } else {
                    Ok(l)
                }
            }
            BinOp::Or => {
                let l = self.eval(left, frame)?;
                if l.truthy() {
                    Ok(l)
                } else {
                    self.eval(right, frame)
                }
            }
            BinOp::Arrow => {
                let l = self.eval(left, frame)?;
                match &l {
                    YaqlValue::Opaque(Opaque(OpaqueKind::Context(ctx))) => {
                        let ctx = ctx.clone();
                        self.eval(right, &ctx)
                    }
                    _ => Err(no_matching("#operator_->")),
                }
            }
            _ => {
                let l = self.eval(left, frame)?;
                let r = self.eval(right, frame)?;
                self.apply_binary(op, l, r)
            }
        }
    }

    /// A binary operator on evaluated operands.
    pub(crate) fn apply_binary(&mut self, op: BinOp, l: YaqlValue, r: YaqlValue) -> R<YaqlValue> {
        use stdlib::math as ops;
        match op {
            BinOp::Eq => Ok(YaqlValue::Bool(py_eq(&l, &r))),
            BinOp::Ne => Ok(YaqlValue::Bool(!py_eq(&l, &r))),
            BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
                ops::compare(op, &l, &r).map(YaqlValue::Bool)
            }
            BinOp::In => ops::contains(self, &l, &r),
            BinOp::Add => ops::add(self, l, r),
            BinOp::Sub => ops::sub(self, l, r),
            BinOp::Mul => ops::mul(self, l, r),
            BinOp::Div => ops::div(l, r),
            BinOp::Mod => ops::modulo(l, r),
            BinOp::Match | BinOp::NotMatch => {
                let m = stdlib::regex::matches_operator(&l, &r)?;
                Ok(YaqlValue::Bool(if op == BinOp::Match { m } else { !m }))
            }
            BinOp::And | BinOp::Or | BinOp::Arrow => Err(no_matching(op.function_name())),
        }
    }

    // --------------------------------------------------------------------------------------
    // Iteration and results
    // --------------------------------------------------------------------------------------

    /// All items of an iterable value (pulling lazy iterators), within limits.
    pub(crate) fn collect(&mut self, v: &YaqlValue) -> R<Vec<YaqlValue>> {
        match v {
            YaqlValue::List(l) => Ok(l.to_vec()),
            YaqlValue::Set(s) => Ok(s.as_slice().to_vec()),
            YaqlValue::Opaque(o) => match &o.0 {
                OpaqueKind::View(items, _) => Ok(items.as_ref().clone()),
                OpaqueKind::Ordering(ord) => Ok(ord.sorted().as_ref().clone()),
                _ => {
                    let mut s = stream::iterate(v)?;
                    self.drain(&mut *s)
                }
            },
            _ => Err(type_error(format!(
                "'{}' object is not iterable",
                v.type_name()
            ))),
        }
    }

    /// All items of an iterable value, consuming it (a lazy iterator nobody else holds is
    /// read directly).
    pub(crate) fn collect_owned(&mut self, v: YaqlValue) -> R<Vec<YaqlValue>> {
        match v {
            YaqlValue::Opaque(Opaque(OpaqueKind::Iter(it))) => {
                let mut s = stream::iterate_owned(it);
                self.drain(&mut *s)
            }
            other => self.collect(&other),
        }
    }

    /// Pull every item of `s`.
    pub(crate) fn drain(&mut self, s: &mut dyn Stream) -> R<Vec<YaqlValue>> {
        let mut out = Vec::new();
        while let Some(item) = self.pull(s)? {
            if out.len() >= self.limits.max_collection {
                return Err(limit_error(format!(
                    "collection of more than {} elements",
                    self.limits.max_collection
                )));
            }
            out.push(item);
        }
        self.charge(out.len() as u64 * 32)?;
        Ok(out)
    }

    /// The next item of `s`, counted against the budget.
    pub(crate) fn pull(&mut self, s: &mut dyn Stream) -> R<Option<YaqlValue>> {
        self.step(1)?;
        self.enter()?;
        let r = s.next(self);
        self.leave();
        r
    }

    /// yaql's output conversion: iterators and views become lists, dict keys and set
    /// elements must be hashable once converted (a list there is a `TypeError`), sets stay
    /// sets, contexts stay as they are.
    pub(crate) fn finalize(&mut self, v: YaqlValue) -> R<YaqlValue> {
        if !v.has_opaque() && !needs_hash_check(&v) {
            return Ok(v);
        }
        self.enter()?;
        let r = self.finalize_inner(v);
        self.leave();
        r
    }

    fn finalize_inner(&mut self, v: YaqlValue) -> R<YaqlValue> {
        match v {
            YaqlValue::List(l) => {
                let mut out = Vec::with_capacity(l.len());
                for item in l.iter() {
                    out.push(self.finalize(item.clone())?);
                }
                self.list(out)
            }
            YaqlValue::Dict(d) => {
                let mut b = DictBuilder::with_capacity(d.len());
                for (k, v) in d.iter() {
                    let k = self.finalize(k.clone())?;
                    unhashable(&k)?;
                    b.insert(k, self.finalize(v.clone())?);
                }
                self.dict(b)
            }
            YaqlValue::Set(s) => {
                let mut out = Vec::with_capacity(s.len());
                for item in s.iter() {
                    let item = self.finalize(item.clone())?;
                    unhashable(&item)?;
                    out.push(item);
                }
                self.set(out)
            }
            YaqlValue::Opaque(o) => match &o.0 {
                OpaqueKind::Context(_) => Ok(YaqlValue::Opaque(o)),
                _ => {
                    let mut items = self.collect_owned(YaqlValue::Opaque(o))?;
                    for item in &mut items {
                        if item.has_opaque() || needs_hash_check(item) {
                            *item = self.finalize(std::mem::take(item))?;
                        }
                    }
                    self.list(items)
                }
            },
            other => Ok(other),
        }
    }
}

/// `$.a.b...` read in place when every step is a dict key that is present.
fn lookup_path<'f>(node: &Node, frame: &'f Frame) -> Option<&'f YaqlValue> {
    match node {
        Node::Var(name) => frame.lookup(name),
        Node::Dot {
            recv,
            member,
            safe: false,
        } => match &**member {
            Node::Keyword(key) => match lookup_path(recv, frame)? {
                YaqlValue::Dict(d) => d.get_str(key),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// Whether finalizing must look inside `v` (sets and dicts with non-string keys must be
/// checked for unhashable members).
fn needs_hash_check(v: &YaqlValue) -> bool {
    match v {
        YaqlValue::Set(s) => !s.is_empty(),
        YaqlValue::Dict(d) => d
            .iter()
            .any(|(k, v)| !matches!(k, YaqlValue::Str(_)) || needs_hash_check(v)),
        YaqlValue::List(l) => l.iter().any(needs_hash_check),
        _ => false,
    }
}

/// Python refuses lists, dicts and sets as set elements and dict keys.
fn unhashable(v: &YaqlValue) -> R<()> {
    let name = match v {
        YaqlValue::List(_) => "list",
        YaqlValue::Dict(_) => "dict",
        YaqlValue::Set(_) => "set",
        _ => return Ok(()),
    };
    Err(type_error(format!("unhashable type: '{name}'")))
}

fn unary(op: UnOp, v: YaqlValue) -> R<YaqlValue> {
    match (op, &v) {
        (UnOp::Not, _) => Ok(YaqlValue::Bool(!v.truthy())),
        (UnOp::Plus, YaqlValue::Int(_) | YaqlValue::Float(_) | YaqlValue::Timespan(_)) => Ok(v),
        (UnOp::Minus, YaqlValue::Int(i)) => {
            i.checked_neg().map(YaqlValue::Int).ok_or_else(overflow)
        }
        (UnOp::Minus, YaqlValue::Float(f)) => Ok(YaqlValue::Float(-f)),
        (UnOp::Minus, YaqlValue::Timespan(us)) => us
            .checked_neg()
            .map(YaqlValue::Timespan)
            .ok_or_else(overflow),
        _ => Err(no_matching(op.function_name())),
    }
}

/// Variables `$1`, `$2`, ... for `values`.
pub(crate) fn positional(values: impl IntoIterator<Item = YaqlValue>) -> Vec<(Name, YaqlValue)> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (Name::Pos(i as u32 + 1), v))
        .collect()
}

/// A dict value from string keys (used by regex match records).
pub(crate) fn record(entries: Vec<(&str, YaqlValue)>) -> YaqlValue {
    let d: YaqlDict = entries
        .into_iter()
        .map(|(k, v)| (YaqlValue::from(k), v))
        .collect();
    YaqlValue::Dict(d)
}
