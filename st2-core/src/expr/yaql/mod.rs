//! YAQL 3.x, as yaql 3.2.0 evaluates it inside Orquesta 1.6.0.
//!
//! ```
//! use st2_core::expr::Scope;
//! use st2_core::expr::yaql::{Yaql, YaqlValue};
//! use serde_json::json;
//!
//! let yaql = Yaql::new();
//! let expr = yaql.compile("$.vms.where($.cpu > 2).select($.name)").expect("valid YAQL");
//! let data = YaqlValue::from_json(&json!({"vms": [{"name": "a", "cpu": 4}, {"name": "b", "cpu": 1}]}));
//! let result = yaql.evaluate(&expr, Some(&data), &Scope::default()).expect("evaluates");
//! assert_eq!(result.to_json(), json!(["a"]));
//! ```
//!
//! * Compile once ([`Yaql::compile`]), evaluate many times ([`Yaql::evaluate`]); an
//!   [`Expression`] is immutable and shareable across threads.
//! * Semantics follow yaql: bare identifiers are strings, every operator resolves by argument
//!   types without coercion (`'a' + 1` fails), `int / int` floors, `and`/`or` return an
//!   operand, `null` sorts first, query methods are lazy (`sequence().take(3)` ends), results
//!   are finalized (iterators become lists, sets stay sets).
//! * Functions registered in a [`Functions`] table (Orquesta's `ctx()`, `task_status()`, ...)
//!   are called with JSON arguments when the standard library has no function of that name;
//!   [`NativeFunction`]s skip the JSON conversion and read the scope through a cache.
//! * Every evaluation runs under [`Limits`] (steps, nesting, collection and string sizes,
//!   total allocation; the grammar itself refuses input nested deeper than 200 levels).
//!   Exceeding one is [`ErrorKind::Limit`](crate::expr::ErrorKind::Limit), never a hang, a
//!   stack overflow or an out-of-memory abort.
//!
//! Differences from yaql worth knowing: integers are 64-bit (overflow is a `Limit` error, not
//! a big integer); sets keep insertion order (Python's hash order cannot be reproduced);
//! `str()` prints every list as a tuple; `datetime(string)` understands ISO 8601, RFC 2822 and
//! common date layouts rather than everything `dateutil` guesses.

mod eval;
mod lexer;
mod native;
mod parser;
mod stdlib;
mod stream;
mod value;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

pub use eval::Limits;
pub use native::{NativeCall, NativeFunction};
pub use value::{DictBuilder, Opaque, YaqlDict, YaqlList, YaqlRegex, YaqlSet, YaqlValue};

use crate::expr::{ExprError, Functions, Scope};

/// A compiled YAQL expression: parse once, evaluate many times. Cheap to clone.
#[derive(Clone)]
pub struct Expression {
    source: Arc<str>,
    root: Arc<parser::Node>,
}

impl Expression {
    /// The text it was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

/// A YAQL engine: the standard library plus registered functions.
#[derive(Clone)]
pub struct Yaql {
    lib: &'static stdlib::Library,
    functions: Functions,
    natives: Arc<eval::Natives>,
    cache: Arc<native::ConversionCache>,
    limits: Limits,
}

impl fmt::Debug for Yaql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yaql")
            .field("functions", &self.functions)
            .field("natives", &self.natives.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for Yaql {
    fn default() -> Self {
        Yaql::new()
    }
}

impl Yaql {
    /// An engine with the standard library only.
    pub fn new() -> Self {
        Yaql::with_functions(Functions::new())
    }

    /// An engine with the standard library and `functions` (callable as `name(args)` when the
    /// standard library has no function of that name).
    pub fn with_functions(functions: Functions) -> Self {
        Yaql {
            lib: stdlib::Library::standard(),
            functions,
            natives: Arc::new(eval::Natives::new()),
            cache: Arc::new(native::ConversionCache::default()),
            limits: Limits::default(),
        }
    }

    /// The same engine with `function` callable as `name(args)` on YAQL values. It is looked
    /// up after the standard library and before [`Functions`] entries of the same name.
    pub fn with_native(
        mut self,
        name: impl Into<String>,
        function: impl NativeFunction + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.natives).insert(name.into(), Arc::new(function));
        self
    }

    /// The same engine with other resource limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The resource limits of each evaluation.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The registered functions.
    pub fn functions(&self) -> &Functions {
        &self.functions
    }

    /// Parse `text`.
    ///
    /// # Errors
    /// [`ErrorKind::Syntax`](crate::expr::ErrorKind::Syntax) for lexical and grammar errors
    /// (yaql's messages: "Parse error: unexpected ')' at position 7 of expression ...",
    /// "Lexical error: illegal character ..."), [`ErrorKind::Limit`](crate::expr::ErrorKind::Limit)
    /// for input nested too deeply.
    pub fn compile(&self, text: &str) -> Result<Expression, ExprError> {
        Ok(Expression {
            source: text.into(),
            root: parser::parse(text)?,
        })
    }

    /// Evaluate `expr` with `$` bound to `data` (`None`: `$` is unbound, so `$` is null and
    /// `$.x` fails as in Orquesta) and `scope` visible to registered functions. The result is
    /// finalized.
    ///
    /// # Errors
    /// The yaql failure as an [`ExprError`]: unknown functions, no matching overload, key and
    /// index errors, division by zero, failed assertions, exceeded limits, ...
    pub fn evaluate(
        &self,
        expr: &Expression,
        data: Option<&YaqlValue>,
        scope: &Scope,
    ) -> Result<YaqlValue, ExprError> {
        let mut ev = eval::Ev::new(
            self.lib,
            &self.functions,
            &self.natives,
            &self.cache,
            scope,
            self.limits,
        );
        let frame = eval::Frame::root(data);
        let v = ev.eval(&expr.root, &frame).map_err(|e| *e)?;
        ev.finalize(v).map_err(|e| *e)
    }

    /// Compile and evaluate `text` in one go.
    ///
    /// # Errors
    /// As [`Yaql::compile`] and [`Yaql::evaluate`].
    pub fn evaluate_str(
        &self,
        text: &str,
        data: Option<&YaqlValue>,
        scope: &Scope,
    ) -> Result<YaqlValue, ExprError> {
        let expr = self.compile(text)?;
        self.evaluate(&expr, data, scope)
    }
}
