//! Expressions: YAQL (`<% %>`, Orquesta workflows), Jinja (`{{ }}`, `{% %}`, everywhere) and
//! Rhai, evaluated the way StackStorm and Orquesta evaluate them.
//!
//! * [`yaql`]: a YAQL 3.x engine — lexer, Pratt parser, AST compiled once and evaluated many
//!   times, with yaql's standard library and quirks.
//! * [`jinja`]: StackStorm's Jinja environment on minijinja — strict undefined, Python-style
//!   printing, every StackStorm filter, datastore lookups (`st2kv.system.x`).
//! * [`render`]: walking parameter values, keeping the type of whole-string expressions, and
//!   casting rendered values to parameter types as StackStorm does.
//! * [`rhai`]: a sandboxed Rhai engine for `rhai-script` actions and rule criteria.
//! * [`shell`]: shell commands rendered from templates with their values passed as environment
//!   variables, never as shell syntax.
//!
//! Functions that need more than their arguments (Orquesta's `ctx()`, `task_status()`,
//! `result()`, …) are not built into this crate: a caller registers them in a [`Functions`]
//! table, and both languages call them through [`ExprFunction`].

pub mod jinja;
pub mod jsonpath;
pub mod pyliteral;
pub mod pyregex;
pub mod python;
pub mod pyyaml;
pub mod render;
pub mod rhai;
pub mod shell;
pub mod yaql;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// Which expression language an evaluation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    /// YAQL (`<% ... %>` in Orquesta).
    Yaql,
    /// Jinja (`{{ ... }}`, `{% ... %}`).
    Jinja,
}

/// What went wrong, broadly. Callers match on this; the message says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The expression does not parse (YAQL grammar/lexical error, Jinja syntax error).
    Syntax,
    /// A variable, attribute or context value is undefined.
    Undefined,
    /// No function, method or filter has that name.
    UnknownFunction,
    /// A function exists but not for these argument types (yaql's NoMatchingFunction).
    NoMatchingFunction,
    /// A value has the wrong type for the operation (Python's TypeError).
    Type,
    /// A value is of the right type but unusable (Python's ValueError, bad JSON/YAML...).
    Value,
    /// A missing mapping key (Python's KeyError).
    Key,
    /// An index out of range (Python's IndexError).
    Index,
    /// Division or modulo by zero.
    ZeroDivision,
    /// An explicit assertion failed (yaql's `assert`).
    Assertion,
    /// The sandbox refused an operation (unsafe attribute, method on a lookup object).
    Security,
    /// A resource limit was hit: nesting depth, operations, output size, iterations.
    Limit,
    /// Reading the datastore failed, or a datastore item is missing where it is required.
    Datastore,
    /// Decrypting a secret failed (bad ciphertext, wrong key, tampered value).
    Decrypt,
}

impl ErrorKind {
    /// The closest Python exception class name, as StackStorm's conformance cases record it.
    pub fn python_class(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "SyntaxError",
            ErrorKind::Undefined => "UndefinedError",
            ErrorKind::UnknownFunction => "NoFunctionRegisteredException",
            ErrorKind::NoMatchingFunction => "NoMatchingFunctionException",
            ErrorKind::Type => "TypeError",
            ErrorKind::Value => "ValueError",
            ErrorKind::Key => "KeyError",
            ErrorKind::Index => "IndexError",
            ErrorKind::ZeroDivision => "ZeroDivisionError",
            ErrorKind::Assertion => "AssertionError",
            ErrorKind::Security => "SecurityError",
            ErrorKind::Limit => "LimitExceeded",
            ErrorKind::Datastore => "DatastoreError",
            ErrorKind::Decrypt => "DecryptError",
        }
    }
}

/// An expression failed to parse or evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A sentence saying what failed.
    pub message: String,
}

impl ExprError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ExprError {
            kind,
            message: message.into(),
        }
    }
}

/// The data an evaluation can see besides its own variables: what Orquesta keeps under
/// `__current_task`, `__current_item` and `__state`, and anything else a caller needs to pass
/// to its registered functions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// The context variables (`ctx()` in Orquesta; the root data).
    pub vars: Map<String, Value>,
    /// Internal values (`__current_task`, `__current_item`, `__state`, ...), never shown by
    /// `ctx()`.
    pub internals: Map<String, Value>,
}

impl Scope {
    /// A scope over `vars` with no internals.
    pub fn new(vars: Map<String, Value>) -> Self {
        Scope {
            vars,
            internals: Map::new(),
        }
    }

    /// Split a flat context the way Orquesta does: keys starting with `__` are internals.
    pub fn from_context(context: &Map<String, Value>) -> Self {
        let mut scope = Scope::default();
        for (k, v) in context {
            if k.starts_with("__") {
                scope.internals.insert(k.clone(), v.clone());
            } else {
                scope.vars.insert(k.clone(), v.clone());
            }
        }
        scope
    }
}

/// One call of a registered function.
#[derive(Debug)]
pub struct FunctionCall<'a> {
    /// The name it was called by.
    pub name: &'a str,
    /// Positional arguments, converted to JSON.
    pub args: &'a [Value],
    /// Keyword arguments (`name => value` in YAQL, `name=value` in Jinja).
    pub kwargs: &'a Map<String, Value>,
    /// The evaluation's scope.
    pub scope: &'a Scope,
    /// The language calling it.
    pub language: Language,
}

/// A function callable from both YAQL and Jinja (Orquesta's `ctx()`, `zip()`, `task_status()`,
/// StackStorm's `st2kv()`...).
///
/// # Contract
/// The function receives its arguments as JSON values and the evaluation [`Scope`]; it must not
/// block for long and must not panic. In Jinja it is available both as a global function and as
/// a filter (the filtered value is the first argument).
///
/// # Errors
/// An [`ExprError`] fails the whole evaluation with that error.
pub trait ExprFunction: Send + Sync {
    /// Call the function.
    fn call(&self, call: &FunctionCall<'_>) -> Result<Value, ExprError>;
}

impl<F> ExprFunction for F
where
    F: Fn(&FunctionCall<'_>) -> Result<Value, ExprError> + Send + Sync,
{
    fn call(&self, call: &FunctionCall<'_>) -> Result<Value, ExprError> {
        self(call)
    }
}

/// A table of registered functions, shared by the YAQL and Jinja engines of one environment.
#[derive(Clone, Default)]
pub struct Functions {
    table: HashMap<String, Arc<dyn ExprFunction>>,
}

impl fmt::Debug for Functions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.table.keys().collect();
        names.sort();
        f.debug_struct("Functions").field("names", &names).finish()
    }
}

/// Registering the same function name twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("function `{0}` is already registered")]
pub struct DuplicateFunction(pub String);

impl Functions {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `function` under `name`.
    ///
    /// # Errors
    /// [`DuplicateFunction`] when the name is taken.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        function: impl ExprFunction + 'static,
    ) -> Result<(), DuplicateFunction> {
        let name = name.into();
        if self.table.contains_key(&name) {
            return Err(DuplicateFunction(name));
        }
        self.table.insert(name, Arc::new(function));
        Ok(())
    }

    /// Add every function of `other`.
    ///
    /// # Errors
    /// [`DuplicateFunction`] naming the first name both tables hold; nothing is added then.
    pub fn extend(&mut self, other: &Functions) -> Result<(), DuplicateFunction> {
        if let Some(name) = other.table.keys().find(|n| self.table.contains_key(*n)) {
            return Err(DuplicateFunction(name.clone()));
        }
        for (name, f) in &other.table {
            self.table.insert(name.clone(), f.clone());
        }
        Ok(())
    }

    /// The function registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn ExprFunction>> {
        self.table.get(name)
    }

    /// All registered names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.table.keys().map(String::as_str)
    }
}
