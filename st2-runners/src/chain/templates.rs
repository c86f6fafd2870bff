//! Rendering a chain's `vars`, task parameters and `publish` the way StackStorm's
//! `jinja.render_values` does: each value is rendered on its own; strings render to strings,
//! lists and mappings through their JSON text, other scalars through Python's `str()` — and a
//! value whose text did not change keeps its original value and type.

use std::sync::Arc;

use serde_json::{Map, Value};
use st2_core::expr::jinja::{Jinja, KvAccess, RenderContext};
use st2_core::expr::python;

use st2_core::datastore::KeyValueRead;

/// Which datastore names a render sees.
#[derive(Debug, Clone)]
pub(crate) enum KvNames {
    /// `vars`: `st2kv.system` and `st2kv.user` of this user.
    Vars(String),
    /// Task parameters and `publish`: `st2kv.system` and the legacy `system`, no user scope.
    Task,
}

/// One value failed to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RenderFailure {
    /// The key of the value.
    pub key: String,
    /// The text that was rendered.
    pub template: String,
    /// Why it failed.
    pub message: String,
}

/// A Jinja environment and the datastore templates read. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Templates {
    jinja: Arc<Jinja>,
    kv: Option<Arc<dyn KeyValueRead>>,
}

impl Templates {
    pub(crate) fn new(jinja: Arc<Jinja>, kv: Option<Arc<dyn KeyValueRead>>) -> Self {
        Templates { jinja, kv }
    }

    /// Render every value of `mapping` with `context` (StackStorm's `render_values`: the whole
    /// context is also reachable as `__context`). Reads the datastore, so it blocks: call
    /// [`Templates::render_values_blocking`] from async code.
    pub(crate) fn render_values(
        &self,
        mapping: &Map<String, Value>,
        context: Map<String, Value>,
        names: &KvNames,
    ) -> Result<Map<String, Value>, RenderFailure> {
        if mapping.is_empty() {
            return Ok(mapping.clone());
        }
        let mut vars = Map::new();
        vars.insert("__context".into(), Value::Object(context.clone()));
        vars.extend(context);
        let mut ctx = RenderContext::new(vars);
        if let Some(store) = &self.kv {
            ctx = ctx.with_kv(match names {
                KvNames::Vars(user) => KvAccess {
                    store: store.clone(),
                    user: Some(user.clone()),
                    legacy_system: false,
                },
                KvNames::Task => KvAccess {
                    store: store.clone(),
                    user: None,
                    legacy_system: true,
                },
            });
        }
        let mut rendered = Map::new();
        for (key, value) in mapping {
            let complex = matches!(value, Value::Array(_) | Value::Object(_));
            let text = if complex {
                serde_json::to_string(value).unwrap_or_default()
            } else {
                python::str(value)
            };
            let fail = |message: String| RenderFailure {
                key: key.clone(),
                template: text.clone(),
                message,
            };
            let out = self
                .jinja
                .render(&text, &ctx)
                .map_err(|e| fail(e.message))?;
            let value = if out == text {
                value.clone()
            } else if complex {
                serde_json::from_str(&out)
                    .map_err(|e| fail(format!("the rendered text is not JSON: {e}")))?
            } else {
                Value::String(out)
            };
            rendered.insert(key.clone(), value);
        }
        Ok(rendered)
    }

    /// [`Templates::render_values`] on a blocking thread.
    pub(crate) async fn render_values_blocking(
        &self,
        mapping: Map<String, Value>,
        context: Map<String, Value>,
        names: KvNames,
    ) -> Result<Map<String, Value>, RenderFailure> {
        let templates = self.clone();
        tokio::task::spawn_blocking(move || templates.render_values(&mapping, context, &names))
            .await
            .unwrap_or_else(|e| {
                Err(RenderFailure {
                    key: String::new(),
                    template: String::new(),
                    message: format!("rendering stopped: {e}"),
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use st2_core::datastore::{KvScope, MemoryKeyValues};
    use st2_core::expr::jinja::JinjaConfig;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn values_render_as_stackstorm_render_values() {
        let store = Arc::new(MemoryKeyValues::new());
        store.set(KvScope::System, "a", "two");
        let t = Templates::new(Arc::new(Jinja::new(JinjaConfig::default())), Some(store));
        let out = t
            .render_values(
                &map(json!({
                    "s": "{{ s1 }}",
                    "list": ["{{ s2 }}", "{{ s3 }}"],
                    "dict": {"k": "{{ s1 }}"},
                    "n": 5,
                    "b": true,
                    "kv": "{{ system.a }}-{{ st2kv.system.a }}",
                    "ctx": "{{ __context.s1 }}"
                })),
                map(json!({"s1": 1, "s2": 2, "s3": [3, 4]})),
                &KvNames::Task,
            )
            .expect("renders");
        assert_eq!(
            Value::Object(out),
            json!({"s": "1", "list": ["2", "[3, 4]"], "dict": {"k": "1"}, "n": 5, "b": true,
                   "kv": "two-two", "ctx": "1"})
        );
        let err = t
            .render_values(
                &map(json!({"p1": "{{ nope }}"})),
                map(json!({"x": 1})),
                &KvNames::Task,
            )
            .unwrap_err();
        assert_eq!(err.key, "p1");
        assert_eq!(err.template, "{{ nope }}");
    }
}
