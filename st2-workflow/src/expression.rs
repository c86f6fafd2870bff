//! Orquesta's expression evaluation: how a workflow value (`input` defaults, `publish`,
//! `when`, task `input`, `output`, ...) is rendered against the workflow context
//! (`orquesta.expressions.base.evaluate`).
//!
//! * Values are walked recursively (mapping keys and values, list items); only strings are
//!   evaluated. A string holding Jinja (`{{ }}` or `{% %}`) is handled by Jinja, otherwise one
//!   holding YAQL (`<% %>`) by YAQL, otherwise it is returned as is. A string mixing both is
//!   evaluated as Jinja only: the YAQL part stays text.
//! * Delimiters are found by Orquesta's regular expressions: non-greedy and on one line
//!   (`<%.*?%>`, `{{.*?}}`, `{%.*?%}`).
//! * A string that is exactly one expression keeps the value's type (`"<% ctx(l) %>"` is a
//!   list). Otherwise every expression is replaced by Python's `str()` of its value
//!   (`None`, `True`, `{'k': 'v'}`).
//! * A string result is evaluated again by the same language (a context value holding
//!   `<% ... %>` is expanded), up to [`MAX_REEVALUATION`] levels.
//! * Jinja text with `{% %}` blocks is rendered as a whole (always a string) and then scanned
//!   again. A Jinja expression that is undefined is left in the text, and any `{{ }}` left at
//!   the end is an error ("There are unresolved variables").
//! * `$` is not bound in YAQL: workflows read data with `ctx()`.
//!
//! Compiled YAQL expressions are cached by text, so evaluating the same workflow value again
//! costs only the evaluation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};
use st2_core::crypto::CryptoKey;
use st2_core::expr::jinja::value::{py_str, to_json};
use st2_core::expr::jinja::{Jinja, JinjaConfig, RenderContext, convert_error};
use st2_core::expr::yaql::{Expression, Yaql, YaqlValue};
use st2_core::expr::{ErrorKind, ExprError, Functions, Language, Scope};

/// How deep string results are re-evaluated before giving up (Orquesta recurses until Python's
/// recursion limit).
pub const MAX_REEVALUATION: usize = 32;

/// Compiled YAQL expressions kept per evaluator before the cache is emptied.
const CACHE_ENTRIES: usize = 4096;

/// Why evaluating a workflow value failed. `Display` gives Orquesta's message, e.g.
/// `Unable to evaluate expression '<% ctx(x) %>'. VariableUndefinedError: ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationError {
    /// The language whose evaluator failed.
    pub language: Language,
    /// The expression (with delimiters) that failed, or the whole text for unresolved Jinja.
    pub expression: String,
    /// What kind of failure the engine reported.
    pub kind: ErrorKind,
    /// Orquesta's message.
    pub message: String,
}

impl EvaluationError {
    /// Orquesta's exception class: `YaqlEvaluationException` or `JinjaEvaluationException`.
    pub fn class(&self) -> &'static str {
        match self.language {
            Language::Yaql => "YaqlEvaluationException",
            Language::Jinja => "JinjaEvaluationException",
        }
    }

    fn wrap(language: Language, expression: &str, e: &ExprError) -> Self {
        let message = if e.kind == ErrorKind::Key && language == Language::Yaql {
            format!(
                "Unable to resolve key '{}' in expression '{expression}' from context.",
                e.message.trim_matches('\'')
            )
        } else {
            // Orquesta's own exception for a missing context variable.
            let class = if e.kind == ErrorKind::Undefined
                && e.message.starts_with("The variable \"")
                && e.message.ends_with("is undefined.")
            {
                "VariableUndefinedError"
            } else {
                e.kind.python_class()
            };
            format!(
                "Unable to evaluate expression '{expression}'. {class}: {}",
                e.message
            )
        };
        EvaluationError {
            language,
            expression: expression.to_owned(),
            kind: e.kind,
            message,
        }
    }
}

impl fmt::Display for EvaluationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvaluationError {}

/// A span of a text that one delimiter pattern matched.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

/// Non-greedy, single-line matches of `open.*?close` (Python `re.findall` without DOTALL).
fn find_all(text: &str, open: &str, close: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(open) {
        let start = from + i;
        let body = start + open.len();
        let line_end = text[body..].find('\n').map_or(text.len(), |n| body + n);
        match text[body..line_end].find(close) {
            Some(j) => {
                let end = body + j + close.len();
                out.push(Span { start, end });
                from = end;
            }
            // No match starting here; the regex moves on one character.
            None => {
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    out
}

fn yaql_spans(text: &str) -> Vec<Span> {
    find_all(text, "<%", "%>")
}

fn jinja_spans(text: &str) -> Vec<Span> {
    find_all(text, "{{", "}}")
}

fn jinja_block_spans(text: &str) -> Vec<Span> {
    find_all(text, "{%", "%}")
}

/// Python's `str.strip(chars).strip()`.
fn strip_delimiter<'a>(expr: &'a str, chars: &str) -> &'a str {
    expr.trim_matches(|c| chars.contains(c)).trim()
}

/// True when `text` holds an expression of either language.
pub fn has_expressions(text: &str) -> bool {
    has_jinja(text) || !yaql_spans(text).is_empty()
}

fn has_jinja(text: &str) -> bool {
    !jinja_spans(text).is_empty() || !jinja_block_spans(text).is_empty()
}

/// Evaluates workflow values as Orquesta does, with YAQL and Jinja sharing one function table.
pub struct Evaluator {
    yaql: Yaql,
    jinja: Jinja,
    cache: RwLock<HashMap<String, Expression>>,
    tagged: bool,
}

impl fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evaluator")
            .field("functions", self.yaql.functions())
            .finish_non_exhaustive()
    }
}

impl Default for Evaluator {
    fn default() -> Self {
        Evaluator::new()
    }
}

impl Evaluator {
    /// Orquesta's functions and StackStorm's data functions (`from_json_string`, `regex_*`,
    /// `version_*`, ...), no datastore key.
    pub fn new() -> Self {
        let mut functions = crate::functions::orquesta_functions();
        // The two tables have no name in common.
        let _ = functions.extend(&st2_core::expr::jinja::functions::st2_functions());
        Evaluator::with_functions(functions, None)
    }

    /// An evaluator over `functions`; `crypto_key` is what Jinja's `decrypt_kv` uses. In YAQL,
    /// `ctx()`, `item()` and `result()` are Orquesta's native versions, which read the context
    /// without copying it.
    pub fn with_functions(functions: Functions, crypto_key: Option<Arc<CryptoKey>>) -> Self {
        Evaluator {
            yaql: crate::functions::with_native_orquesta_functions(Yaql::with_functions(
                functions.clone(),
            )),
            jinja: Jinja::new(JinjaConfig {
                crypto_key,
                functions,
                fuel: None,
            }),
            cache: RwLock::new(HashMap::new()),
            tagged: false,
        }
    }

    /// Give YAQL values JSON cannot hold in the conformance files' encoding (`{"$set": [...]}`,
    /// `{"$datetime": ...}`, ...) instead of their plain JSON form (a list, an ISO string, ...).
    #[must_use]
    pub fn with_tagged_output(mut self) -> Self {
        self.tagged = true;
        self
    }

    /// Evaluate every expression in `statement` against the workflow context `data` (which
    /// holds the variables plus Orquesta's `__current_task`, `__current_item` and `__state`).
    ///
    /// # Errors
    /// The first expression that fails.
    pub fn evaluate(
        &self,
        statement: &Value,
        data: &Map<String, Value>,
    ) -> Result<Value, EvaluationError> {
        self.evaluate_in(statement, &Arc::new(Scope::from_context(data)))
    }

    /// Evaluate `statement` in a prepared scope. A caller evaluating many values against the
    /// same context (a task's input, publish and transitions) builds the [`Scope`] once, and
    /// YAQL's `ctx()` then reuses the data it already converted.
    ///
    /// # Errors
    /// The first expression that fails.
    pub fn evaluate_in(
        &self,
        statement: &Value,
        scope: &Arc<Scope>,
    ) -> Result<Value, EvaluationError> {
        match statement {
            Value::String(s) => self.text(s, scope),
            Value::Array(items) => items
                .iter()
                .map(|v| self.evaluate_in(v, scope))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (k, v) in map {
                    let key = match self.text(k, scope)? {
                        Value::String(s) => s,
                        other => st2_core::expr::python::str(&other),
                    };
                    out.insert(key, self.evaluate_in(v, scope)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// Evaluate one string.
    ///
    /// # Errors
    /// As [`Evaluator::evaluate`].
    pub fn evaluate_text(
        &self,
        text: &str,
        data: &Map<String, Value>,
    ) -> Result<Value, EvaluationError> {
        self.text(text, &Arc::new(Scope::from_context(data)))
    }

    /// Check that every expression in `statement` parses (Orquesta's inspection): returns one
    /// message per problem; a string mixing YAQL and Jinja is a problem too.
    pub fn check_syntax(&self, statement: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check_into(statement, &mut out);
        out
    }

    fn check_into(&self, statement: &Value, out: &mut Vec<String>) {
        match statement {
            Value::String(text) => {
                let yaql = yaql_spans(text);
                if has_jinja(text) {
                    if !yaql.is_empty() {
                        out.push(format!(
                            "Expression \"{text}\" mixes YAQL and Jinja, which is not supported."
                        ));
                    }
                    if let Err(e) = self.jinja.check(text) {
                        out.push(format!("JinjaGrammarException: {} ({text})", e.message));
                    }
                } else {
                    for span in yaql {
                        let expr = &text[span.start..span.end];
                        if let Err(e) = self.compiled(strip_delimiter(expr, "<%>")) {
                            out.push(format!("YaqlGrammarException: {} ({expr})", e.message));
                        }
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.check_into(v, out)),
            Value::Object(map) => {
                for (k, v) in map {
                    self.check_into(&Value::String(k.clone()), out);
                    self.check_into(v, out);
                }
            }
            _ => {}
        }
    }

    fn text(&self, text: &str, scope: &Arc<Scope>) -> Result<Value, EvaluationError> {
        if has_jinja(text) {
            self.jinja_evaluate(text, scope)
        } else if !yaql_spans(text).is_empty() {
            self.yaql_evaluate(text, scope, 0)
        } else {
            Ok(Value::String(text.to_owned()))
        }
    }

    fn compiled(&self, text: &str) -> Result<Expression, ExprError> {
        if let Some(e) = self.cache.read().ok().and_then(|c| c.get(text).cloned()) {
            return Ok(e);
        }
        let e = self.yaql.compile(text)?;
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(text.to_owned(), e.clone());
        }
        Ok(e)
    }

    fn yaql_evaluate(
        &self,
        text: &str,
        scope: &Scope,
        depth: usize,
    ) -> Result<Value, EvaluationError> {
        let spans = yaql_spans(text);
        let mut output = Value::String(text.to_owned());
        for span in &spans {
            let expr = &text[span.start..span.end];
            let fail = |e: &ExprError| EvaluationError::wrap(Language::Yaql, expr, e);
            if depth >= MAX_REEVALUATION {
                return Err(fail(&ExprError::new(
                    ErrorKind::Limit,
                    "maximum recursion depth exceeded while re-evaluating a result",
                )));
            }
            let compiled = self
                .compiled(strip_delimiter(expr, "<%>"))
                .map_err(|e| fail(&e))?;
            let result = self
                .yaql
                .evaluate(&compiled, None, scope)
                .map_err(|e| fail(&e))?;
            let result = match result.as_str() {
                Some(s) => match self.yaql_evaluate(s, scope, depth + 1)? {
                    Value::String(s) => Text::Str(s),
                    other => Text::Json(other),
                },
                None => Text::Yaql(result),
            };
            output = match output {
                Value::String(current) if spans.len() > 1 || current.len() > expr.len() => {
                    Value::String(current.replace(expr, &result.python_str()))
                }
                _ => result.into_json(self.tagged),
            };
        }
        Ok(output)
    }

    fn jinja_context(&self, scope: &Arc<Scope>) -> RenderContext {
        let mut data = scope.vars.clone();
        data.extend(scope.internals.clone());
        let mut vars = Map::new();
        for key in ["__state", "__current_task", "__current_item"] {
            vars.insert(
                key.to_owned(),
                scope.internals.get(key).cloned().unwrap_or(Value::Null),
            );
        }
        vars.insert("__vars".to_owned(), Value::Object(data));
        let mut ctx = RenderContext::new(vars);
        ctx.scope = Some(scope.clone());
        ctx
    }

    fn jinja_evaluate(&self, text: &str, scope: &Arc<Scope>) -> Result<Value, EvaluationError> {
        let ctx = self.jinja_context(scope);
        // `{% raw %}` blocks are set aside as `{0}`, `{1}`, ... and rendered at the very end.
        let raw = find_all(text, "{% raw %}", "{% endraw %}");
        let mut text = text.to_owned();
        let raw_blocks: Vec<String> = raw
            .iter()
            .map(|s| text[s.start..s.end].to_owned())
            .collect();
        for (i, block) in raw_blocks.iter().enumerate() {
            text = text.replace(block, &format!("{{{i}}}"));
        }
        let output = self.jinja_expand(&text, &ctx, 0)?;
        let Value::String(mut output) = output else {
            return Ok(output);
        };
        let left: Vec<&str> = jinja_spans(&output)
            .iter()
            .map(|s| strip_delimiter(&output[s.start..s.end], "{}"))
            .collect();
        if !left.is_empty() {
            return Err(EvaluationError {
                language: Language::Jinja,
                expression: text.clone(),
                kind: ErrorKind::Undefined,
                message: format!("There are unresolved variables: {}", left.join(", ")),
            });
        }
        if !raw_blocks.is_empty() {
            for (i, block) in raw_blocks.iter().enumerate() {
                output = output.replace(&format!("{{{i}}}"), block);
            }
            output = self
                .jinja
                .render(&output, &ctx)
                .map_err(|e| EvaluationError::wrap(Language::Jinja, &output, &e))?;
        }
        Ok(Value::String(output))
    }

    fn jinja_expand(
        &self,
        text: &str,
        ctx: &RenderContext,
        depth: usize,
    ) -> Result<Value, EvaluationError> {
        let spans = jinja_spans(text);
        let has_blocks = !jinja_block_spans(text).is_empty();
        if depth >= MAX_REEVALUATION {
            return Err(EvaluationError::wrap(
                Language::Jinja,
                text,
                &ExprError::new(
                    ErrorKind::Limit,
                    "maximum recursion depth exceeded while re-evaluating a result",
                ),
            ));
        }
        if has_blocks {
            let rendered = self
                .jinja
                .render(text, ctx)
                .map_err(|e| EvaluationError::wrap(Language::Jinja, text, &e))?;
            // Rendering can leave new inline expressions behind.
            return self.jinja_expand(&rendered, ctx, depth + 1);
        }
        let mut output = Value::String(text.to_owned());
        for span in &spans {
            let expr = &text[span.start..span.end];
            let fail = |e: &ExprError| EvaluationError::wrap(Language::Jinja, expr, e);
            let Some(result) = self
                .jinja
                .eval_defined(strip_delimiter(expr, "{}"), ctx)
                .map_err(|e| fail(&e))?
            else {
                // Undefined: the expression stays in the text.
                continue;
            };
            let result = match result
                .as_str()
                .filter(|_| result.kind() == minijinja::value::ValueKind::String)
            {
                Some(s) => match self.jinja_expand(s, ctx, depth + 1)? {
                    Value::String(s) => Text::Str(s),
                    other => Text::Json(other),
                },
                None => Text::Jinja(result),
            };
            output = match output {
                Value::String(current) if spans.len() > 1 || current.len() > expr.len() => {
                    let shown = result.jinja_str().map_err(|e| fail(&e))?;
                    Value::String(current.replace(expr, &shown))
                }
                _ => result.into_jinja_json().map_err(|e| fail(&e))?,
            };
        }
        Ok(output)
    }
}

/// An expression's result before it is placed: kept as the engine's value so `str()` is
/// printed the engine's way.
enum Text {
    Str(String),
    Json(Value),
    Yaql(YaqlValue),
    Jinja(minijinja::Value),
}

impl Text {
    fn python_str(&self) -> String {
        match self {
            Text::Str(s) => s.clone(),
            Text::Json(v) => st2_core::expr::python::str(v),
            Text::Yaql(v) => v.python_str(),
            Text::Jinja(v) => py_str(v).unwrap_or_default(),
        }
    }

    fn jinja_str(&self) -> Result<String, ExprError> {
        match self {
            Text::Jinja(v) => py_str(v).map_err(convert_error),
            other => Ok(other.python_str()),
        }
    }

    fn into_json(self, tagged: bool) -> Value {
        match self {
            Text::Str(s) => Value::String(s),
            Text::Json(v) => v,
            Text::Yaql(v) if tagged => v.to_tagged_json(),
            Text::Yaql(v) => v.to_json(),
            Text::Jinja(v) => to_json(&v).unwrap_or(Value::Null),
        }
    }

    fn into_jinja_json(self) -> Result<Value, ExprError> {
        match self {
            Text::Jinja(v) => to_json(&v).map_err(convert_error),
            other => Ok(other.into_json(false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_single_line_and_non_greedy() {
        let spans = |t: &str| {
            yaql_spans(t)
                .iter()
                .map(|s| t[s.start..s.end].to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(spans("<% a %> and <% b %>"), ["<% a %>", "<% b %>"]);
        assert!(spans("<% a\n %>").is_empty());
        assert_eq!(spans("<% '%>' %>"), ["<% '%>"]);
        assert_eq!(spans("<%<% x %>"), ["<%<% x %>"]);
        assert_eq!(strip_delimiter("<%ctx(a)%>", "<%>"), "ctx(a)");
        assert_eq!(strip_delimiter("{{ {'a': 1} }}", "{}"), "{'a': 1}");
    }
}
