//! StackStorm's Jinja environment: `SandboxedEnvironment(undefined=StrictUndefined,
//! trim_blocks=True, lstrip_blocks=True)` with StackStorm's filters and its `in` test, on
//! minijinja. Values print the Python way (`True`, `None`, `[1, 'a']`, `{'k': 2.5}`), and
//! `st2kv.system.x` / `st2kv.user.x` read the datastore.

pub mod args;
pub mod compat;
pub mod filters;
pub mod functions;
pub mod kv;
pub mod macros;
pub mod mutable;
pub mod percent;
pub(crate) mod shell;
pub mod value;

use std::borrow::Cow;
use std::sync::{Arc, PoisonError};

use minijinja::value::{Kwargs, Object, Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, State, UndefinedBehavior};
use serde_json::Map;

use super::{ErrorKind as ExprKind, ExprError, FunctionCall, Functions, Language, Scope};
use crate::crypto::CryptoKey;
use crate::datastore::{KeyValueRead, KvScope};
use kv::KvLookup;
use value::{from_json, py_str, to_json};

/// The default operation budget of one render (minijinja "fuel"): enough for any real template,
/// small enough that `{% for i in range(10**9) %}` fails fast.
pub const DEFAULT_FUEL: u64 = 5_000_000;

/// How a [`Jinja`] environment is set up.
#[derive(Debug, Clone, Default)]
pub struct JinjaConfig {
    /// The key `decrypt_kv` decrypts with.
    pub crypto_key: Option<Arc<CryptoKey>>,
    /// Functions available as globals and filters (Orquesta's `ctx()`, ...).
    pub functions: Functions,
    /// Operation budget per render; `None` for [`DEFAULT_FUEL`].
    pub fuel: Option<u64>,
}

/// Datastore access a render gets: `st2kv.system`, and `st2kv.user` for one user.
#[derive(Clone)]
pub struct KvAccess {
    /// The store.
    pub store: Arc<dyn KeyValueRead>,
    /// The user `st2kv.user` reads for (`None`: no `st2kv.user`, as in rule criteria).
    pub user: Option<String>,
    /// Also expose the legacy `system` name (rule criteria and action-chains).
    pub legacy_system: bool,
}

impl std::fmt::Debug for KvAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvAccess")
            .field("user", &self.user)
            .field("legacy_system", &self.legacy_system)
            .finish_non_exhaustive()
    }
}

/// What a template sees.
#[derive(Debug, Clone, Default)]
pub struct RenderContext {
    /// The variables.
    pub vars: Map<String, serde_json::Value>,
    /// Datastore lookups, if any.
    pub kv: Option<KvAccess>,
    /// The scope registered functions read (Orquesta's context and state).
    pub scope: Option<Arc<Scope>>,
}

impl RenderContext {
    /// A context of plain variables.
    pub fn new(vars: Map<String, serde_json::Value>) -> Self {
        RenderContext {
            vars,
            kv: None,
            scope: None,
        }
    }

    /// Add datastore lookups.
    pub fn with_kv(mut self, kv: KvAccess) -> Self {
        self.kv = Some(kv);
        self
    }
}

/// The scope of the current render, reachable from registered functions.
#[derive(Debug)]
struct ScopeHandle(Arc<Scope>);

impl Object for ScopeHandle {}

const SCOPE_VAR: &str = "__st2_scope";

/// A configured Jinja environment. Cheap to share between threads.
pub struct Jinja {
    /// The environment; rendered templates are kept in it, named by their source text.
    env: std::sync::RwLock<Environment<'static>>,
    /// How many templates the environment holds.
    cached: std::sync::atomic::AtomicUsize,
    /// The same environment printing shell-safe references (built on first use).
    shell_env: std::sync::OnceLock<Environment<'static>>,
    /// What both environments were built from.
    config: JinjaConfig,
}

/// Compiled templates kept per environment before the cache is emptied.
const TEMPLATE_CACHE: usize = 2048;

impl std::fmt::Debug for Jinja {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jinja")
    }
}

type FilterFn = fn(Value, &[Value]) -> Result<Value, Error>;

fn add_filter(env: &mut Environment<'static>, name: &'static str, f: FilterFn) {
    env.add_filter(
        name,
        move |value: Value, args: Rest<Value>, kwargs: Kwargs| {
            f(value, &with_kwargs(&args, kwargs))
        },
    );
}

/// Positional arguments followed by the keyword arguments, as [`args::bind`] reads them.
fn with_kwargs(args: &[Value], kwargs: Kwargs) -> Vec<Value> {
    let mut all = args.to_vec();
    if kwargs.args().next().is_some() {
        all.push(Value::from(kwargs));
    }
    all
}

/// Filters StackStorm adds (`st2common/expressions/functions`); Orquesta's function catalog
/// reuses them (see [`functions`]).
const ST2_FILTERS: &[(&str, FilterFn)] = &[
    ("to_json_string", filters::to_json_string),
    ("from_json_string", filters::from_json_string),
    ("to_yaml_string", filters::to_yaml_string),
    ("from_yaml_string", filters::from_yaml_string),
    ("to_complex", filters::to_complex),
    ("json_escape", filters::json_escape),
    ("jsonpath_query", filters::jsonpath_query),
    ("regex_match", filters::regex_match),
    ("regex_search", filters::regex_search),
    ("regex_replace", filters::regex_replace),
    ("regex_substring", filters::regex_substring),
    (
        "to_human_time_from_seconds",
        filters::to_human_time_from_seconds,
    ),
    ("version_compare", filters::version_compare),
    ("version_more_than", filters::version_more_than),
    ("version_less_than", filters::version_less_than),
    ("version_equal", filters::version_equal),
    ("version_match", filters::version_match),
    ("version_bump_major", filters::version_bump_major),
    ("version_bump_minor", filters::version_bump_minor),
    ("version_bump_patch", filters::version_bump_patch),
    ("version_strip_patch", filters::version_strip_patch),
    ("use_none", filters::use_none),
    ("basename", filters::basename),
    ("dirname", filters::dirname),
];

/// Jinja2 filters whose Python behaviour minijinja's differ from, and the internal
/// pattern filter of rule criteria.
const PYTHON_FILTERS: &[(&str, FilterFn)] = &[
    ("string", compat::string),
    ("join", compat::join),
    ("tojson", compat::tojson),
    ("int", compat::int),
    ("float", compat::float),
    ("round", compat::round),
    ("sum", compat::sum),
    ("min", compat::min),
    ("max", compat::max),
    ("first", compat::first),
    ("last", compat::last),
    ("sort", compat::sort),
    ("unique", compat::unique),
    ("replace", compat::replace),
    ("title", compat::title),
    ("upper", compat::upper),
    ("lower", compat::lower),
    ("capitalize", compat::capitalize),
    ("trim", compat::trim),
    ("truncate", compat::truncate),
    ("wordwrap", compat::wordwrap_checked),
    ("attr", compat::attr),
    (filters::PATTERN_COMPLEX, filters::pattern_complex),
    ("center", compat::center),
    ("forceescape", compat::forceescape),
    ("random", compat::random),
    ("xmlattr", compat::xmlattr),
    ("urlize", compat::urlize),
];

/// Names the `filter` and `test` tests know (minijinja does not expose its registry).
const BUILTIN_FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "filesizeformat",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pluralize",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "striptags",
    "sum",
    "title",
    "tojson",
    "trim",
    "truncate",
    "unique",
    "upper",
    "urlencode",
    "wordcount",
    "wordwrap",
];
const BUILTIN_TESTS: &[&str] = &[
    "boolean",
    "callable",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "equalto",
    "escaped",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "greaterthan",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lessthan",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "safe",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];

/// What `{{ … }}` prints: plain text, or shell-safe references (see [`shell`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputMode {
    Text,
    Shell,
}

/// The text an output of `value` prints as: Python's `str()`, or a safe string as it is.
fn printed(value: &Value) -> Result<String, Error> {
    if value.is_safe() {
        return Ok(value.as_str().unwrap_or_default().to_owned());
    }
    py_str(value)
}

/// StackStorm's environment in one output mode.
fn build_environment(config: &JinjaConfig, mode: OutputMode) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(false)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(config.fuel.unwrap_or(DEFAULT_FUEL)));
    env.set_recursion_limit(200);
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(compat::unknown_method);
    env.set_debug(false);
    match mode {
        OutputMode::Text => {
            env.set_formatter(|out, _state, value| {
                // Strict mode already refused undefined variables; what reaches here is the
                // "silent" undefined of an inline `if` without `else`, which Jinja2 prints
                // as nothing.
                if value.is_undefined() {
                    return Ok(());
                }
                if value.is_safe() {
                    return out
                        .write_str(value.as_str().unwrap_or_default())
                        .map_err(Error::from);
                }
                let text = py_str(value)?;
                out.write_str(&text).map_err(Error::from)
            });
            env.add_filter("shell_raw", |value: Value| -> Result<Value, Error> {
                Ok(Value::from(printed(&value)?))
            });
        }
        OutputMode::Shell => {
            env.set_formatter(shell::format_output);
            env.add_filter("shell_raw", shell::shell_raw);
        }
    }
    for (name, f) in ST2_FILTERS.iter().chain(PYTHON_FILTERS) {
        add_filter(&mut env, name, *f);
    }
    add_filter(&mut env, percent::TUPLE_FILTER, percent::percent_tuple);
    add_filter(&mut env, percent::VALUE_FILTER, percent::percent_value);
    env.add_filter(mutable::FILTER, mutable::mutable);
    env.add_filter(macros::FILTER, macros::variadic);
    let key = config.crypto_key.clone();
    env.add_filter(
        "decrypt_kv",
        move |value: Value, args: Rest<Value>, kwargs: Kwargs| {
            filters::decrypt_kv(key.as_ref(), value, &with_kwargs(&args, kwargs))
        },
    );
    env.add_test("number", compat::is_number);
    env.add_test("float", compat::is_float);
    env.add_test("integer", compat::is_integer);
    env.add_test("string", compat::is_string);
    env.add_test("true", compat::is_true);
    env.add_test("false", compat::is_false);
    env.add_test("escaped", compat::is_escaped);
    env.add_test("in", compat::is_in);
    env.add_test("sequence", compat::is_sequence);
    env.add_test("callable", compat::is_callable);
    env.add_filter(
        "urlencode",
        |value: Value, args: Rest<Value>, kwargs: Kwargs| {
            compat::urlencode(value, &with_kwargs(&args, kwargs))
        },
    );
    let mut filter_names: Vec<String> = BUILTIN_FILTERS.iter().map(|s| (*s).to_owned()).collect();
    filter_names.extend(
        ST2_FILTERS
            .iter()
            .chain(PYTHON_FILTERS)
            .map(|(n, _)| (*n).to_owned()),
    );
    filter_names.push("decrypt_kv".to_owned());
    filter_names.push("shell_raw".to_owned());
    filter_names.extend(config.functions.names().map(str::to_owned));
    let test_names: Vec<String> = BUILTIN_TESTS.iter().map(|s| (*s).to_owned()).collect();
    env.add_test("filter", move |name: String| filter_names.contains(&name));
    env.add_test("test", move |name: String| test_names.contains(&name));
    for name in config.functions.names() {
        let Some(function) = config.functions.get(name).cloned() else {
            continue;
        };
        let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
        let f = function.clone();
        env.add_function(
            name,
            move |state: &State, args: Rest<Value>, kwargs: Kwargs| {
                call_function(state, name, &*f, &with_kwargs(&args, kwargs))
            },
        );
        env.add_filter(
            name,
            move |state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs| {
                let mut all = vec![value];
                all.extend(with_kwargs(&args, kwargs));
                call_function(state, name, &*function, &all)
            },
        );
    }
    env
}

impl Jinja {
    /// StackStorm's environment, with `config`'s key and functions.
    pub fn new(config: JinjaConfig) -> Self {
        let env = build_environment(&config, OutputMode::Text);
        Jinja {
            env: std::sync::RwLock::new(env),
            cached: std::sync::atomic::AtomicUsize::new(0),
            shell_env: std::sync::OnceLock::new(),
            config,
        }
    }

    /// The context as template data; with `mutable`, its lists and dicts can change in
    /// place ([`mutable`]).
    fn root(&self, ctx: &RenderContext, mutable: bool) -> Value {
        Value::from(self.root_pairs(ctx, mutable))
    }

    fn root_pairs(
        &self,
        ctx: &RenderContext,
        mutable: bool,
    ) -> std::collections::BTreeMap<String, Value> {
        let convert = if mutable {
            mutable::from_json_mutable
        } else {
            from_json
        };
        let mut pairs: std::collections::BTreeMap<String, Value> = ctx
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), convert(v)))
            .collect();
        if let Some(kv) = &ctx.kv {
            let system = Value::from_object(KvLookup::root(kv.store.clone(), KvScope::System));
            let mut st2kv = vec![("system".to_owned(), system.clone())];
            if let Some(user) = &kv.user {
                st2kv.push((
                    "user".to_owned(),
                    Value::from_object(KvLookup::root(
                        kv.store.clone(),
                        KvScope::User(user.clone()),
                    )),
                ));
            }
            let st2kv: std::collections::BTreeMap<String, Value> = st2kv.into_iter().collect();
            pairs.insert("st2kv".to_owned(), Value::from(st2kv));
            if kv.legacy_system {
                pairs.insert("system".to_owned(), system);
            }
        }
        if let Some(scope) = &ctx.scope {
            pairs.insert(
                SCOPE_VAR.to_owned(),
                Value::from_object(ScopeHandle(scope.clone())),
            );
        }
        pairs
    }

    /// Render a template to text.
    ///
    /// # Errors
    /// A syntax error, an undefined name, a failing filter, or a resource limit.
    ///
    /// Templates are compiled once per environment and kept (up to a bound), so rendering the
    /// same text again costs only the rendering.
    pub fn render(&self, template: &str, ctx: &RenderContext) -> Result<String, ExprError> {
        let mutates = mutable::mutates(template);
        if carries_state(template, mutates) {
            return on_deep_stack(|| self.render_here(template, ctx, mutates));
        }
        self.render_here(template, ctx, mutates)
    }

    fn render_here(
        &self,
        template: &str,
        ctx: &RenderContext,
        mutates: bool,
    ) -> Result<String, ExprError> {
        use std::sync::atomic::Ordering;
        let root = self.root(ctx, mutates);
        {
            let env = self.env_read();
            if let Ok(t) = env.get_template(template) {
                return t.render(root).map_err(convert_error);
            }
        }
        let source = prepare(template)?.into_owned();
        {
            let mut env = self.env.write().unwrap_or_else(PoisonError::into_inner);
            if self.cached.fetch_add(1, Ordering::Relaxed) >= TEMPLATE_CACHE {
                env.clear_templates();
                self.cached.store(1, Ordering::Relaxed);
            }
            env.add_template_owned(template.to_owned(), source)
                .map_err(convert_error)?;
        }
        let env = self.env_read();
        let t = env.get_template(template).map_err(convert_error)?;
        t.render(root).map_err(convert_error)
    }

    /// Render a template in shell mode: every `{{ … }}` output prints as a marker
    /// ([`shell::marker`]) and its text is collected, in order. Used by
    /// [`crate::expr::shell::render_shell_command`].
    ///
    /// # Errors
    /// As [`Jinja::render`], and a value holding NUL.
    pub(crate) fn render_shell(
        &self,
        template: &str,
        ctx: &RenderContext,
    ) -> Result<(String, Vec<String>), ExprError> {
        let mutates = mutable::mutates(template);
        if carries_state(template, mutates) {
            return on_deep_stack(|| self.render_shell_here(template, ctx, mutates));
        }
        self.render_shell_here(template, ctx, mutates)
    }

    fn render_shell_here(
        &self,
        template: &str,
        ctx: &RenderContext,
        mutates: bool,
    ) -> Result<(String, Vec<String>), ExprError> {
        let env = self
            .shell_env
            .get_or_init(|| build_environment(&self.config, OutputMode::Shell));
        let source = prepare(template)?;
        let t = env.template_from_str(&source).map_err(convert_error)?;
        let recorder = Arc::new(shell::Recorder::default());
        let mut pairs = self.root_pairs(ctx, mutates);
        pairs.insert(
            shell::RECORDER_VAR.to_owned(),
            Value::from_dyn_object(recorder.clone()),
        );
        let text = t.render(Value::from(pairs)).map_err(convert_error)?;
        Ok((text, recorder.take()))
    }

    fn env_read(&self) -> std::sync::RwLockReadGuard<'_, Environment<'static>> {
        self.env.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Evaluate one expression (the inside of `{{ ... }}`) to a value of its own type.
    ///
    /// # Errors
    /// As [`Jinja::render`].
    pub fn eval(&self, expression: &str, ctx: &RenderContext) -> Result<Value, ExprError> {
        self.eval_defined(expression, ctx)?.ok_or_else(|| {
            ExprError::new(ExprKind::Undefined, format!("`{expression}` is undefined"))
        })
    }

    /// Evaluate one expression as Jinja's `compile_expression(..., undefined_to_none=False)`
    /// does: an undefined result (a missing key, an index out of range) is `None` rather than
    /// an error; using an undefined value in an operation still fails.
    ///
    /// # Errors
    /// As [`Jinja::render`].
    pub fn eval_defined(
        &self,
        expression: &str,
        ctx: &RenderContext,
    ) -> Result<Option<Value>, ExprError> {
        percent::check_complexity(expression, true).map_err(convert_error)?;
        let mutates = mutable::mutates(expression);
        let mut source = percent::rewrite_expression(expression);
        if mutates {
            source = Cow::Owned(mutable::rewrite_expression(&source).into_owned());
        }
        let env = self.env_read();
        let expr = env.compile_expression(&source).map_err(convert_error)?;
        let v = expr.eval(self.root(ctx, mutates)).map_err(convert_error)?;
        Ok((!v.is_undefined()).then_some(v))
    }

    /// Evaluate one expression to JSON.
    ///
    /// # Errors
    /// As [`Jinja::eval`], or when the value has no JSON form.
    pub fn eval_json(
        &self,
        expression: &str,
        ctx: &RenderContext,
    ) -> Result<serde_json::Value, ExprError> {
        let v = self.eval(expression, ctx)?;
        to_json(&v).map_err(convert_error)
    }

    /// The names a template reads from its context (Jinja's `find_undeclared_variables`;
    /// globals such as `range` included, as in Jinja).
    ///
    /// # Errors
    /// [`ExprKind::Syntax`] when the template does not parse.
    pub fn undeclared_variables(
        &self,
        template: &str,
    ) -> Result<std::collections::HashSet<String>, ExprError> {
        self.env_read()
            .template_from_str(&prepare(template)?)
            .map(|t| t.undeclared_variables(false))
            .map_err(convert_error)
    }

    /// Check that a template parses.
    ///
    /// # Errors
    /// [`ExprKind::Syntax`] with the parser's message.
    pub fn check(&self, template: &str) -> Result<(), ExprError> {
        self.env_read()
            .template_from_str(&prepare(template)?)
            .map(|_| ())
            .map_err(convert_error)
    }
}

/// A template as minijinja gets it: checked for runaway nesting, `%` formatting rewritten,
/// macros reading `varargs`/`kwargs` wrapped ([`macros`]) and, when it changes containers in
/// place, its list and dict literals made mutable ([`mutable`]).
fn prepare(template: &str) -> Result<Cow<'_, str>, ExprError> {
    percent::check_complexity(template, false).map_err(convert_error)?;
    refuse_do(template)?;
    let mut source = percent::rewrite(template);
    if let Cow::Owned(s) = macros::rewrite(&source) {
        source = Cow::Owned(s);
    }
    if mutable::mutates(template)
        && let Cow::Owned(s) = mutable::rewrite(&source)
    {
        source = Cow::Owned(s);
    }
    Ok(source)
}

/// Whether a template can carry values from one loop iteration to the next (a `namespace`
/// attribute, a list or dict changed in place), and so build values nested as deep as its
/// operation budget allows: `{% set ns.v = [ns.v] %}` in a loop. Such values are released
/// (and printed) by recursion, one stack frame per level.
/// `mutates` is [`mutable::mutates`] of the template.
fn carries_state(template: &str, mutates: bool) -> bool {
    mutates || template.contains("namespace")
}

/// The stack a template that [`carries_state`] renders on: room for the deepest value its
/// operation budget can build. Reserved address space; only the pages used are memory.
const DEEP_STACK: usize = 1 << 30;

/// Run a render on a thread with a [`DEEP_STACK`], so that a deeply nested value cannot
/// overflow the caller's stack (a Tokio worker has 2 MiB).
fn on_deep_stack<T: Send>(
    render: impl FnOnce() -> Result<T, ExprError> + Send,
) -> Result<T, ExprError> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("st2-jinja".to_owned())
            .stack_size(DEEP_STACK)
            .spawn_scoped(scope, render)
            .map_err(|e| {
                ExprError::new(
                    ExprKind::Limit,
                    format!("cannot start a thread to render the template: {e}"),
                )
            })?;
        handle.join().unwrap_or_else(|_| {
            Err(ExprError::new(
                ExprKind::Limit,
                "the template failed while rendering".to_owned(),
            ))
        })
    })
}

/// Jinja2 knows `{% do %}` only with its `do` extension, which StackStorm does not load;
/// minijinja always has it. Refuse it as Jinja2 does.
fn refuse_do(template: &str) -> Result<(), ExprError> {
    if !template.contains("do") {
        return Ok(());
    }
    for segment in percent::segments(template) {
        if let percent::Segment::Tag {
            open: "{%", body, ..
        } = segment
            && percent::tag_keyword(body) == "do"
        {
            return Err(ExprError::new(
                ExprKind::Syntax,
                "Encountered unknown tag 'do'.".to_owned(),
            ));
        }
    }
    Ok(())
}

fn call_function(
    state: &State<'_, '_>,
    name: &str,
    function: &dyn super::ExprFunction,
    args: &[Value],
) -> Result<Value, Error> {
    let empty = Arc::new(Scope::default());
    let scope = state
        .lookup(SCOPE_VAR)
        .and_then(|v| v.downcast_object_ref::<ScopeHandle>().map(|h| h.0.clone()))
        .unwrap_or(empty);
    let (positional, kwargs) = match args.last() {
        Some(last) if last.is_kwargs() => (&args[..args.len() - 1], Some(last)),
        _ => (args, None),
    };
    let json_args = positional
        .iter()
        .map(to_json)
        .collect::<Result<Vec<_>, _>>()?;
    let json_kwargs = match kwargs.map(to_json).transpose()? {
        Some(serde_json::Value::Object(m)) => m,
        _ => Map::new(),
    };
    let call = FunctionCall {
        name,
        args: &json_args,
        kwargs: &json_kwargs,
        scope: &scope,
        language: Language::Jinja,
    };
    function.call(&call).map(|v| from_json(&v)).map_err(|e| {
        Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("{}: {}", e.kind.python_class(), e.message),
        )
    })
}

/// The Python exception class a minijinja error stands for.
fn class_of(e: &Error) -> (ExprKind, String) {
    let detail = e.detail().unwrap_or_default().to_owned();
    let prefixed = |class: &str| {
        detail
            .strip_prefix(class)
            .and_then(|r| r.strip_prefix(": "))
    };
    for (class, kind) in [
        ("TypeError", ExprKind::Type),
        ("ValueError", ExprKind::Value),
        ("KeyError", ExprKind::Key),
        ("IndexError", ExprKind::Index),
        ("SecurityError", ExprKind::Security),
        ("AssertionError", ExprKind::Assertion),
        ("re.error", ExprKind::Value),
        ("binascii.Error", ExprKind::Decrypt),
        ("InvalidSignature", ExprKind::Decrypt),
        ("RepresenterError", ExprKind::Type),
        ("OverflowError", ExprKind::Value),
        ("UndefinedError", ExprKind::Undefined),
        ("DatastoreError", ExprKind::Datastore),
    ] {
        if let Some(rest) = prefixed(class) {
            return (kind, format!("{class}: {rest}"));
        }
    }
    let kind = match e.kind() {
        minijinja::ErrorKind::SyntaxError | minijinja::ErrorKind::BadEscape => ExprKind::Syntax,
        minijinja::ErrorKind::UndefinedError => ExprKind::Undefined,
        minijinja::ErrorKind::UnknownFilter
        | minijinja::ErrorKind::UnknownTest
        | minijinja::ErrorKind::UnknownFunction
        | minijinja::ErrorKind::UnknownMethod => ExprKind::UnknownFunction,
        minijinja::ErrorKind::OutOfFuel => ExprKind::Limit,
        minijinja::ErrorKind::InvalidOperation if detail.contains("recursion") => ExprKind::Limit,
        minijinja::ErrorKind::MissingArgument | minijinja::ErrorKind::TooManyArguments => {
            ExprKind::Type
        }
        minijinja::ErrorKind::CannotUnpack => ExprKind::Value,
        _ => ExprKind::Type,
    };
    // The text without the template name minijinja appends: names here are template sources.
    let mut message = e.kind().to_string();
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(&detail);
    }
    if let Some(line) = e.line() {
        message.push_str(&format!(" (line {line})"));
    }
    (kind, message)
}

/// A minijinja error as an [`ExprError`].
pub fn convert_error(e: Error) -> ExprError {
    let (kind, message) = class_of(&e);
    let mut message = message;
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        message.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    ExprError::new(kind, message)
}

/// True when the string holds a Jinja expression or statement.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// True when a minijinja value is a datastore lookup.
pub fn is_lookup(v: &Value) -> bool {
    v.downcast_object_ref::<KvLookup>().is_some()
}

/// The kind of a minijinja value, for callers that inspect evaluation results.
pub fn kind_of(v: &Value) -> ValueKind {
    v.kind()
}
