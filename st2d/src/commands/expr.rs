//! `st2d expr`: evaluate expressions from JSON lines on stdin, one JSON line out per case.
//!
//! Input lines: `{"expr": "...", "context": {...}}` (blank lines are skipped). Output lines:
//! `{"value": <json>}` or `{"error": "<class>", "message": "..."}`. A line that is not such an
//! object gives an `InputError` line and the next line is read as usual.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};
use st2_core::crypto::CryptoKey;
use st2_core::datastore::{KvScope, MemoryKeyValues};
use st2_core::expr::jinja::{Jinja, JinjaConfig, KvAccess, RenderContext};
use st2_core::expr::yaql::{Yaql, YaqlValue};
use st2_core::expr::{ExprError, Scope};
use st2_workflow::expression::Evaluator;

/// The user `st2kv.user` reads for, as in StackStorm's default configuration.
const SYSTEM_USER: &str = "stanley";

/// Which evaluation path to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// The bare YAQL engine with Orquesta's functions; the context is bound to `$` and `ctx()`.
    Yaql,
    /// StackStorm's Jinja environment rendering a template (an `st2kv` key in the context is
    /// loaded into a datastore: `{"system": {name: value}, "user": {name: value}}`).
    Jinja,
    /// Orquesta's evaluation of a whole workflow value: `<% %>` and `{{ }}` / `{% %}` with
    /// interpolation and re-evaluation; `$` is not bound.
    Orquesta,
}

#[derive(Debug, Args)]
pub struct ExprArgs {
    /// The expression language / evaluation path.
    #[arg(long, value_enum)]
    lang: Lang,
    /// Datastore key file (StackStorm's JSON key format) for `decrypt_kv`.
    #[arg(long = "crypto-key", value_name = "FILE")]
    crypto_key: Option<PathBuf>,
}

enum Engine {
    Yaql(Yaql),
    Jinja(Jinja),
    Orquesta(Evaluator),
}

fn functions() -> st2_core::expr::Functions {
    let mut functions = st2_workflow::orquesta_functions();
    // The StackStorm data functions share no name with Orquesta's.
    let _ = functions.extend(&st2_core::expr::jinja::functions::st2_functions());
    functions
}

pub fn run(args: ExprArgs) -> ExitCode {
    let key = match &args.crypto_key {
        Some(path) => match CryptoKey::load(path) {
            Ok(k) => Some(Arc::new(k)),
            Err(e) => {
                eprintln!("st2d expr: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let engine = match args.lang {
        Lang::Yaql => Engine::Yaql(st2_workflow::with_native_orquesta_functions(
            Yaql::with_functions(functions()),
        )),
        Lang::Jinja => Engine::Jinja(Jinja::new(JinjaConfig {
            crypto_key: key,
            ..JinjaConfig::default()
        })),
        Lang::Orquesta => {
            Engine::Orquesta(Evaluator::with_functions(functions(), key).with_tagged_output())
        }
    };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (n, line) in stdin.lock().lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("st2d expr: reading stdin: {e}");
                return ExitCode::from(2);
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let result = match parse_case(&line) {
            Ok((expr, context)) => evaluate(&engine, &expr, context),
            Err(message) => json!({
                "error": "InputError",
                "message": format!("line {}: {message}", n + 1),
            }),
        };
        if writeln!(out, "{result}")
            .and_then(|()| out.flush())
            .is_err()
        {
            // The reader went away; nothing more to do.
            return ExitCode::SUCCESS;
        }
    }
    ExitCode::SUCCESS
}

fn parse_case(line: &str) -> Result<(String, Map<String, Value>), String> {
    let case: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut case) = case else {
        return Err("expected an object {\"expr\": ..., \"context\": {...}}".to_owned());
    };
    let expr = match case.remove("expr") {
        Some(Value::String(s)) => s,
        Some(_) => return Err("field `expr` must be a string".to_owned()),
        None => return Err("missing field `expr`".to_owned()),
    };
    let context = match case.remove("context") {
        Some(Value::Object(m)) => m,
        Some(Value::Null) | None => Map::new(),
        Some(_) => return Err("field `context` must be an object".to_owned()),
    };
    if let Some(other) = case.keys().next() {
        return Err(format!(
            "unknown field `{other}` (expected `expr` and `context`)"
        ));
    }
    Ok((expr, context))
}

fn error_line(class: &str, message: &str) -> Value {
    json!({"error": class, "message": message})
}

fn expr_error(e: &ExprError) -> Value {
    error_line(e.kind.python_class(), &e.message)
}

fn evaluate(engine: &Engine, expr: &str, mut context: Map<String, Value>) -> Value {
    match engine {
        Engine::Yaql(yaql) => {
            let scope = Scope::from_context(&context);
            let data = YaqlValue::from_json_map(&context);
            match yaql.evaluate_str(expr, Some(&data), &scope) {
                Ok(v) => json!({"value": v.to_tagged_json()}),
                Err(e) => expr_error(&e),
            }
        }
        Engine::Orquesta(evaluator) => match evaluator.evaluate_text(expr, &context) {
            Ok(v) => json!({"value": v}),
            Err(e) => error_line(e.class(), &e.message),
        },
        Engine::Jinja(jinja) => {
            let store = Arc::new(MemoryKeyValues::new());
            if let Some(kv) = context.remove("st2kv")
                && let Err(message) = load_kv(&store, kv)
            {
                return error_line("InputError", &message);
            }
            let ctx = RenderContext::new(context).with_kv(KvAccess {
                store,
                user: Some(SYSTEM_USER.to_owned()),
                legacy_system: false,
            });
            match jinja.render(expr, &ctx) {
                Ok(text) => json!({"value": text}),
                Err(e) => expr_error(&e),
            }
        }
    }
}

/// `{"system": {name: value}, "user": {name: value}}` into the datastore; values must be strings.
fn load_kv(store: &MemoryKeyValues, kv: Value) -> Result<(), String> {
    let Value::Object(scopes) = kv else {
        return Err("`st2kv` must be an object {\"system\": {...}, \"user\": {...}}".to_owned());
    };
    for (scope_name, items) in scopes {
        let scope = match scope_name.as_str() {
            "system" => KvScope::System,
            "user" => KvScope::User(SYSTEM_USER.to_owned()),
            other => {
                return Err(format!("`st2kv.{other}`: scope must be `system` or `user`"));
            }
        };
        let Value::Object(items) = items else {
            return Err(format!("`st2kv.{scope_name}` must be an object"));
        };
        for (name, value) in items {
            let Value::String(value) = value else {
                return Err(format!("`st2kv.{scope_name}.{name}` must be a string"));
            };
            store.set(scope.clone(), name, value);
        }
    }
    Ok(())
}
