//! Rhai, a small Rust-native scripting language, sandboxed for `rhai-script` actions and
//! `rhai` rule criteria: no file, network or process access exists in the language, `eval` and
//! module imports are switched off, and every script runs under an operation budget and size
//! limits so a runaway loop or a huge string ends with an error.

use serde_json::{Map, Value};

use super::{ErrorKind, ExprError};

/// Resource limits for one script run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RhaiLimits {
    /// Operations (roughly, evaluated nodes) per run.
    pub max_operations: u64,
    /// Nesting depth of expressions.
    pub max_expr_depth: usize,
    /// Nesting depth of function calls.
    pub max_call_levels: usize,
    /// Longest string.
    pub max_string_size: usize,
    /// Largest array.
    pub max_array_size: usize,
    /// Largest map.
    pub max_map_size: usize,
}

impl Default for RhaiLimits {
    fn default() -> Self {
        RhaiLimits {
            max_operations: 1_000_000,
            max_expr_depth: 64,
            max_call_levels: 32,
            max_string_size: 1 << 20,
            max_array_size: 100_000,
            max_map_size: 100_000,
        }
    }
}

/// A sandboxed Rhai engine. `Send + Sync`; compile once, run many times.
pub struct Rhai {
    engine: rhai::Engine,
}

impl std::fmt::Debug for Rhai {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rhai")
    }
}

/// A compiled script.
#[derive(Debug, Clone)]
pub struct RhaiScript {
    ast: rhai::AST,
}

impl RhaiLimits {
    /// A raw Rhai engine under these limits, with `eval` and module imports switched off and
    /// `print`/`debug` discarded: the sandbox every Rhai use starts from. Callers that need
    /// more (the `rhai-script` runner's datastore functions, captured `print`) register it on
    /// the returned engine.
    pub fn sandboxed_engine(&self) -> rhai::Engine {
        let mut engine = rhai::Engine::new();
        engine.set_max_operations(self.max_operations);
        engine.set_max_expr_depths(self.max_expr_depth, self.max_expr_depth);
        engine.set_max_call_levels(self.max_call_levels);
        engine.set_max_string_size(self.max_string_size);
        engine.set_max_array_size(self.max_array_size);
        engine.set_max_map_size(self.max_map_size);
        engine.set_max_modules(0);
        engine.disable_symbol("eval");
        engine.on_print(|_| {});
        engine.on_debug(|_, _, _| {});
        engine
    }
}

impl Rhai {
    /// An engine with the given limits.
    pub fn new(limits: RhaiLimits) -> Self {
        Rhai {
            engine: limits.sandboxed_engine(),
        }
    }

    /// Compile a script.
    ///
    /// # Errors
    /// [`ErrorKind::Syntax`] with the parser's message and position.
    pub fn compile(&self, script: &str) -> Result<RhaiScript, ExprError> {
        self.engine
            .compile(script)
            .map(|ast| RhaiScript { ast })
            .map_err(|e| ExprError::new(ErrorKind::Syntax, e.to_string()))
    }

    /// Run a compiled script with `vars` as variables; its last value, as JSON, is the result.
    ///
    /// # Errors
    /// [`ErrorKind::Limit`] when a limit is hit, [`ErrorKind::Type`] for values that have no
    /// JSON form, [`ErrorKind::Value`] for other runtime errors.
    pub fn run(&self, script: &RhaiScript, vars: &Map<String, Value>) -> Result<Value, ExprError> {
        let mut scope = rhai::Scope::new();
        for (name, value) in vars {
            let dynamic = rhai::serde::to_dynamic(value)
                .map_err(|e| ExprError::new(ErrorKind::Type, e.to_string()))?;
            scope.push_dynamic(name.clone(), dynamic);
        }
        let result: rhai::Dynamic = self
            .engine
            .eval_ast_with_scope(&mut scope, &script.ast)
            .map_err(|e| runtime_error(&e))?;
        rhai::serde::from_dynamic::<Value>(&result).map_err(|e| {
            ExprError::new(ErrorKind::Type, format!("the result has no JSON form: {e}"))
        })
    }

    /// Compile and run in one step.
    ///
    /// # Errors
    /// As [`Rhai::compile`] and [`Rhai::run`].
    pub fn eval(&self, script: &str, vars: &Map<String, Value>) -> Result<Value, ExprError> {
        let compiled = self.compile(script)?;
        self.run(&compiled, vars)
    }
}

impl Default for Rhai {
    fn default() -> Self {
        Rhai::new(RhaiLimits::default())
    }
}

fn runtime_error(e: &rhai::EvalAltResult) -> ExprError {
    use rhai::EvalAltResult as E;
    let kind = match e {
        E::ErrorTooManyOperations(_)
        | E::ErrorStackOverflow(_)
        | E::ErrorDataTooLarge(..)
        | E::ErrorTooManyModules(_)
        | E::ErrorTooManyVariables(_) => ErrorKind::Limit,
        E::ErrorVariableNotFound(..) => ErrorKind::Undefined,
        E::ErrorFunctionNotFound(..) => ErrorKind::UnknownFunction,
        E::ErrorMismatchDataType(..) | E::ErrorMismatchOutputType(..) => ErrorKind::Type,
        E::ErrorArrayBounds(..) | E::ErrorStringBounds(..) => ErrorKind::Index,
        E::ErrorArithmetic(..) => ErrorKind::ZeroDivision,
        E::ErrorParsing(..) => ErrorKind::Syntax,
        _ => ErrorKind::Value,
    };
    ExprError::new(kind, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn evaluates_over_json() {
        let rhai = Rhai::default();
        let v = rhai
            .eval(
                "let n = trigger.count * 2; #{ doubled: n, ok: trigger.name == \"x\" }",
                &vars(json!({"trigger": {"count": 21, "name": "x"}})),
            )
            .unwrap();
        assert_eq!(v, json!({"doubled": 42, "ok": true}));
    }

    #[test]
    fn sandbox_limits_hold() {
        let rhai = Rhai::default();
        let e = rhai.eval("loop {}", &Map::new()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Limit);
        let e = rhai
            .eval("let s = \"x\"; loop { s += s; }", &Map::new())
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Limit);
        assert_eq!(
            rhai.eval("eval(\"1\")", &Map::new()).unwrap_err().kind,
            ErrorKind::Syntax
        );
        assert_eq!(
            rhai.eval("import \"x\" as y; 1", &Map::new())
                .unwrap_err()
                .kind,
            ErrorKind::Limit
        );
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(rhai.eval(&deep, &Map::new()).is_err());
        assert_eq!(
            rhai.eval("1 +", &Map::new()).unwrap_err().kind,
            ErrorKind::Syntax
        );
    }
}
