//! StackStorm's `st2kv(key, decrypt=false, default=...)` for workflow expressions (YAQL and
//! Jinja): `system.<name>` reads the system scope, any other key the scope of the user in
//! `ctx().st2.user`. A missing key is an error unless a default is given; `decrypt` needs
//! the datastore key.

use std::sync::Arc;

use serde_json::Value;
use st2_core::crypto::CryptoKey;
use st2_core::datastore::{KeyValueRead, KvScope};
use st2_core::expr::{ErrorKind, ExprError, FunctionCall, Functions};

/// Register `st2kv` over `store` in `functions` (replacing nothing: a taken name is kept).
pub fn register_st2kv(
    functions: &mut Functions,
    store: Arc<dyn KeyValueRead>,
    crypto: Option<Arc<CryptoKey>>,
) {
    let lookup = move |call: &FunctionCall<'_>| st2kv(call, store.as_ref(), crypto.as_deref());
    // A caller that registered its own `st2kv` keeps it.
    let _ = functions.register("st2kv", lookup);
}

fn st2kv(
    call: &FunctionCall<'_>,
    store: &dyn KeyValueRead,
    crypto: Option<&CryptoKey>,
) -> Result<Value, ExprError> {
    let arg = |i: usize, name: &str| call.args.get(i).or_else(|| call.kwargs.get(name));
    let Some(Value::String(key)) = arg(0, "key") else {
        return Err(ExprError::new(
            ErrorKind::Type,
            "st2kv() needs the key as a string",
        ));
    };
    let decrypt = arg(1, "decrypt").is_some_and(crate::truthy);
    let default = arg(2, "default");
    let (scope, name) = match key.strip_prefix("system.") {
        Some(name) => (KvScope::System, name.to_owned()),
        None => {
            let user = call
                .scope
                .vars
                .get("st2")
                .and_then(|s| s.get("user"))
                .and_then(Value::as_str)
                .unwrap_or("stanley");
            (KvScope::User(user.to_owned()), key.clone())
        }
    };
    let stored = store
        .get(&scope, &name)
        .map_err(|e| ExprError::new(ErrorKind::Datastore, e.to_string()))?;
    let Some(stored) = stored else {
        return match default {
            Some(d) => Ok(d.clone()),
            None => Err(ExprError::new(
                ErrorKind::Datastore,
                format!("The key \"{key}\" does not exist in the StackStorm datastore."),
            )),
        };
    };
    if !decrypt {
        return Ok(Value::String(stored));
    }
    let crypto = crypto.ok_or_else(|| {
        ExprError::new(
            ErrorKind::Decrypt,
            format!("cannot decrypt \"{key}\": no datastore key is configured"),
        )
    })?;
    crypto
        .decrypt(&stored)
        .map(Value::String)
        .map_err(|e| ExprError::new(ErrorKind::Decrypt, format!("cannot decrypt \"{key}\": {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expression::Evaluator;
    use serde_json::json;
    use st2_core::datastore::MemoryKeyValues;

    fn evaluator() -> Evaluator {
        let store = MemoryKeyValues::new();
        store.set(KvScope::System, "greeting", "hello");
        store.set(KvScope::User("alice".into()), "color", "blue");
        let mut functions = crate::orquesta_functions();
        register_st2kv(&mut functions, Arc::new(store), None);
        Evaluator::with_functions(functions, None)
    }

    #[test]
    fn reads_system_and_user_keys_with_defaults() {
        let e = evaluator();
        let ctx = json!({"st2": {"user": "alice"}});
        let ctx = ctx.as_object().cloned().unwrap_or_default();
        let get = |text: &str| e.evaluate_text(text, &ctx);
        assert_eq!(get("<% st2kv('system.greeting') %>"), Ok(json!("hello")));
        assert_eq!(get("{{ st2kv('color') }}"), Ok(json!("blue")));
        assert_eq!(get("<% st2kv('nope', default => 3) %>"), Ok(json!(3)));
        let missing = get("<% st2kv('system.nope') %>").expect_err("missing key");
        assert!(
            missing.message.contains("does not exist"),
            "{}",
            missing.message
        );
        let no_key = get("<% st2kv('system.greeting', true) %>").expect_err("no crypto key");
        assert!(
            no_key.message.contains("cannot decrypt"),
            "{}",
            no_key.message
        );
    }
}
