//! `rhai-script` (not in StackStorm): an action whose entry point is a [Rhai](https://rhai.rs)
//! script in the pack's `actions/` directory.
//!
//! The action's parameters are variables; the script's value (its last expression, or
//! `return`) is the result. The sandbox is st2-core's ([`RhaiLimits::sandboxed_engine`]): no
//! file, network or process access exists in the language, `eval` and imports are off, and
//! the `max_operations` runner parameter bounds the work. `timeout` and cancellation stop the
//! script between two operations.
//!
//! The datastore is reachable through functions (names are plain, not pack-local):
//!
//! | function | does |
//! |---|---|
//! | `kv_get(name)`, `kv_get(name, scope)`, `kv_get(name, scope, decrypt)` | the value (a string), or `()` when missing |
//! | `kv_set(name, value)`, `kv_set(name, value, scope)`, `kv_set(name, value, scope, secret)` | stores `value` (non-strings as JSON) |
//! | `kv_delete(name)`, `kv_delete(name, scope)` | `true` when it existed |
//! | `kv_list(prefix)`, `kv_list(prefix, scope)` | a map name → value |
//!
//! `scope` is `"system"` (default) or `"user"` (the execution's user). `print` and `debug`
//! lines stream as the execution's stdout and stderr; the result is `{"result": <value>,
//! "stdout": <printed text>}`, plus `"error"` when the script failed (`throw`, a runtime
//! error, the operation budget) or timed out.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rhai::{Dynamic, EvalAltResult, ImmutableString, Position};
use serde_json::{Map, Value, json};
use st2_core::datastore::{Datastore, KeySelector, KeyWrite};
use st2_core::expr::rhai::RhaiLimits;
use st2_core::runner::{OutputSink, RunContext, RunOutcome, Runner, RunnerError};
use st2_core::store::{ExecutionStatus, OutputType, Page};

use crate::local::resolve_entry_point;

/// Scripts larger than this are refused before they are compiled.
pub const MAX_SCRIPT_BYTES: u64 = 4 << 20;

/// Runs Rhai scripts.
#[derive(Debug, Clone, Default)]
pub struct RhaiScriptRunner {
    limits: RhaiLimits,
}

impl RhaiScriptRunner {
    /// A runner whose scripts get `limits` (the `max_operations` runner parameter overrides
    /// its operation budget per action).
    pub fn new(limits: RhaiLimits) -> Self {
        RhaiScriptRunner { limits }
    }
}

/// Why the script stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Canceled,
    TimedOut,
}

/// What the script's functions share with the runner.
struct Session {
    datastore: Option<Datastore>,
    user: String,
    handle: tokio::runtime::Handle,
    stdout: Mutex<String>,
    output: Arc<dyn OutputSink>,
}

fn script_error(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        Position::NONE,
    ))
}

impl Session {
    fn datastore(&self) -> Result<&Datastore, Box<EvalAltResult>> {
        self.datastore
            .as_ref()
            .ok_or_else(|| script_error("the datastore is not available to this run"))
    }

    fn selector(&self, scope: &str) -> Result<KeySelector, Box<EvalAltResult>> {
        match scope {
            "system" | "st2kv.system" => Ok(KeySelector::System),
            "user" | "st2kv.user" => Ok(KeySelector::User(self.user.clone())),
            other => Err(script_error(format!(
                "unknown datastore scope {other:?}: use \"system\" or \"user\""
            ))),
        }
    }

    fn get(&self, name: &str, scope: &str, decrypt: bool) -> Result<Dynamic, Box<EvalAltResult>> {
        let selector = self.selector(scope)?;
        let pair = self
            .handle
            .block_on(self.datastore()?.get(&selector, name, decrypt))
            .map_err(|e| script_error(format!("kv_get({name:?}): {e}")))?;
        Ok(match pair {
            Some(kv) => match kv.decrypted {
                Some(secret) => Dynamic::from(secret.into_exposed()),
                None => Dynamic::from(kv.record.value),
            },
            None => Dynamic::UNIT,
        })
    }

    fn set(
        &self,
        name: &str,
        value: Dynamic,
        scope: &str,
        secret: bool,
    ) -> Result<(), Box<EvalAltResult>> {
        let selector = self.selector(scope)?;
        let text = if value.is_string() {
            value.into_string().unwrap_or_default()
        } else {
            let json: Value = rhai::serde::from_dynamic(&value)
                .map_err(|e| script_error(format!("kv_set({name:?}): {e}")))?;
            json.to_string()
        };
        let write = KeyWrite {
            value: text,
            secret,
            ..KeyWrite::default()
        };
        self.handle
            .block_on(self.datastore()?.set(&selector, name, write))
            .map(|_| ())
            .map_err(|e| script_error(format!("kv_set({name:?}): {e}")))
    }

    fn delete(&self, name: &str, scope: &str) -> Result<bool, Box<EvalAltResult>> {
        let selector = self.selector(scope)?;
        self.handle
            .block_on(self.datastore()?.delete(&selector, name))
            .map(|removed| removed.is_some())
            .map_err(|e| script_error(format!("kv_delete({name:?}): {e}")))
    }

    fn list(&self, prefix: &str, scope: &str) -> Result<rhai::Map, Box<EvalAltResult>> {
        let selector = self.selector(scope)?;
        let listing = self
            .handle
            .block_on(
                self.datastore()?
                    .list(Some(&selector), Some(prefix), false, Page::all()),
            )
            .map_err(|e| script_error(format!("kv_list({prefix:?}): {e}")))?;
        Ok(listing
            .items
            .into_iter()
            .map(|kv| (kv.name.into(), Dynamic::from(kv.record.value)))
            .collect())
    }

    fn print(&self, text: &str) {
        let line = format!("{text}\n");
        self.output.emit(OutputType::Stdout, &line);
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(&line);
    }
}

fn register(engine: &mut rhai::Engine, session: &Arc<Session>) {
    let s = session.clone();
    engine.on_print(move |text| s.print(text));
    let s = session.clone();
    engine.on_debug(move |text, _, pos| {
        let line = if pos.is_none() {
            format!("{text}\n")
        } else {
            format!("{pos:?} {text}\n")
        };
        s.output.emit(OutputType::Stderr, &line);
    });
    let s = session.clone();
    engine.register_fn("kv_get", move |name: ImmutableString| {
        s.get(&name, "system", false)
    });
    let s = session.clone();
    engine.register_fn(
        "kv_get",
        move |name: ImmutableString, scope: ImmutableString| s.get(&name, &scope, false),
    );
    let s = session.clone();
    engine.register_fn(
        "kv_get",
        move |name: ImmutableString, scope: ImmutableString, decrypt: bool| {
            s.get(&name, &scope, decrypt)
        },
    );
    let s = session.clone();
    engine.register_fn("kv_set", move |name: ImmutableString, value: Dynamic| {
        s.set(&name, value, "system", false)
    });
    let s = session.clone();
    engine.register_fn(
        "kv_set",
        move |name: ImmutableString, value: Dynamic, scope: ImmutableString| {
            s.set(&name, value, &scope, false)
        },
    );
    let s = session.clone();
    engine.register_fn(
        "kv_set",
        move |name: ImmutableString, value: Dynamic, scope: ImmutableString, secret: bool| {
            s.set(&name, value, &scope, secret)
        },
    );
    let s = session.clone();
    engine.register_fn("kv_delete", move |name: ImmutableString| {
        s.delete(&name, "system")
    });
    let s = session.clone();
    engine.register_fn(
        "kv_delete",
        move |name: ImmutableString, scope: ImmutableString| s.delete(&name, &scope),
    );
    let s = session.clone();
    engine.register_fn("kv_list", move |prefix: ImmutableString| {
        s.list(&prefix, "system")
    });
    let s = session.clone();
    engine.register_fn(
        "kv_list",
        move |prefix: ImmutableString, scope: ImmutableString| s.list(&prefix, &scope),
    );
}

fn integer_param(
    params: &Map<String, Value>,
    name: &str,
    default: u64,
) -> Result<u64, RunnerError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or_else(|| RunnerError::Parameter {
                name: name.to_owned(),
                message: format!("expected a whole number of 0 or more, found {v}"),
            }),
    }
}

/// Read the script, refusing a missing, unreadable or oversized file.
fn read_script(path: &PathBuf, entry_point: &str) -> Result<String, RunnerError> {
    let fail = |message: String| RunnerError::EntryPoint {
        path: entry_point.to_owned(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    if meta.len() > MAX_SCRIPT_BYTES {
        return Err(fail(format!(
            "is {} bytes, more than the {MAX_SCRIPT_BYTES} a script may have",
            meta.len()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| fail(format!("cannot be read: {e}")))
}

#[async_trait]
impl Runner for RhaiScriptRunner {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        let entry_point = ctx.action.entry_point.clone();
        if entry_point.is_empty() {
            return Err(RunnerError::EntryPoint {
                path: String::new(),
                message: "a rhai-script action needs an entry_point (the script's path under \
                          actions/)"
                    .to_owned(),
            });
        }
        let pack_dir = ctx
            .pack_dir
            .clone()
            .ok_or_else(|| RunnerError::EntryPoint {
                path: entry_point.clone(),
                message: "the action's pack has no directory on disk".to_owned(),
            })?;
        let path = resolve_entry_point(&pack_dir, &entry_point)?;
        let source = read_script(&path, &entry_point)?;
        let timeout = integer_param(&ctx.runner_parameters, "timeout", 60)?;
        let mut limits = self.limits;
        limits.max_operations = integer_param(
            &ctx.runner_parameters,
            "max_operations",
            limits.max_operations,
        )?;

        let session = Arc::new(Session {
            datastore: ctx.datastore.clone(),
            user: ctx
                .context
                .get("user")
                .and_then(Value::as_str)
                .unwrap_or("stanley")
                .to_owned(),
            handle: tokio::runtime::Handle::current(),
            stdout: Mutex::new(String::new()),
            output: ctx.output.clone(),
        });
        let cancelled = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + Duration::from_secs(timeout);
        let mut engine = limits.sandboxed_engine();
        register(&mut engine, &session);
        {
            let cancelled = cancelled.clone();
            engine.on_progress(move |_| {
                if cancelled.load(Ordering::Relaxed) {
                    Some(Dynamic::from(Stop::Canceled as i64))
                } else if Instant::now() >= deadline {
                    Some(Dynamic::from(Stop::TimedOut as i64))
                } else {
                    None
                }
            });
        }
        let mut scope = rhai::Scope::new();
        for (name, value) in &ctx.parameters {
            let dynamic = rhai::serde::to_dynamic(value).map_err(|e| RunnerError::Parameter {
                name: name.clone(),
                message: format!("has no Rhai form: {e}"),
            })?;
            scope.push_dynamic(name.clone(), dynamic);
        }
        let file = entry_point.clone();
        let mut script =
            tokio::task::spawn_blocking(move || -> Result<Value, (Option<Stop>, String)> {
                let ast = engine
                    .compile(&source)
                    .map_err(|e| (None, format!("{file}: {e}")))?;
                let value: Dynamic =
                    engine
                        .eval_ast_with_scope(&mut scope, &ast)
                        .map_err(|e| match *e {
                            EvalAltResult::ErrorTerminated(token, _) => {
                                let stop = if token.as_int().ok() == Some(Stop::Canceled as i64) {
                                    Stop::Canceled
                                } else {
                                    Stop::TimedOut
                                };
                                (Some(stop), String::new())
                            }
                            other => (None, format!("{file}: {other}")),
                        })?;
                rhai::serde::from_dynamic::<Value>(&value)
                    .map_err(|e| (None, format!("{file}: the result has no JSON form: {e}")))
            });
        let joined = tokio::select! {
            joined = &mut script => joined,
            () = ctx.cancel.cancelled() => {
                cancelled.store(true, Ordering::Relaxed);
                script.await
            }
        };
        let stdout = session
            .stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let outcome = match joined {
            Ok(Ok(result)) => RunOutcome::succeeded(json!({"result": result, "stdout": stdout})),
            Ok(Err((Some(Stop::Canceled), _))) => RunOutcome::with_status(
                ExecutionStatus::Canceled,
                json!({"result": null, "stdout": stdout}),
            ),
            Ok(Err((Some(Stop::TimedOut), _))) => RunOutcome::with_status(
                ExecutionStatus::Timeout,
                json!({
                    "result": null,
                    "stdout": stdout,
                    "error": format!("Action failed to complete in {timeout} seconds"),
                }),
            ),
            Ok(Err((None, error))) => {
                RunOutcome::failed(json!({"result": null, "stdout": stdout, "error": error}))
            }
            Err(e) => RunOutcome::failed(json!({
                "result": null,
                "stdout": stdout,
                "error": format!("the script's thread failed: {e}"),
            })),
        };
        Ok(outcome)
    }
}
