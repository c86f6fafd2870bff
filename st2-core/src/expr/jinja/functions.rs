//! StackStorm's data functions as [`ExprFunction`]s, for Orquesta workflows.
//!
//! StackStorm registers the same Python functions it uses as Jinja filters with Orquesta's
//! function catalog, so workflows can call them from YAQL (`<% from_json_string($x) %>`) and
//! from Jinja both as globals and as filters. The catalog adds four aliases: `json_parse`,
//! `json_dump`, `yaml_parse` and `yaml_dump`. `to_complex` and `decrypt_kv` are not in it.

use minijinja::value::{Kwargs, Value};
use serde_json::Value as Json;

use super::value::{from_json, to_json};
use super::{FilterFn, ST2_FILTERS, convert_error};
use crate::expr::{ExprError, ExprFunction, FunctionCall, Functions};

/// StackStorm filters Orquesta's catalog leaves out.
const NOT_IN_CATALOG: &[&str] = &["to_complex"];

/// The catalog's extra names for StackStorm filters.
const ALIASES: &[(&str, &str)] = &[
    ("json_dump", "to_json_string"),
    ("json_parse", "from_json_string"),
    ("yaml_dump", "to_yaml_string"),
    ("yaml_parse", "from_yaml_string"),
];

struct FilterFunction(FilterFn);

impl ExprFunction for FilterFunction {
    fn call(&self, call: &FunctionCall<'_>) -> Result<Json, ExprError> {
        let mut args = call.args.iter().map(from_json);
        let Some(first) = args.next() else {
            return Err(ExprError::new(
                crate::expr::ErrorKind::Type,
                format!("{}() missing 1 required positional argument", call.name),
            ));
        };
        let mut rest: Vec<Value> = args.collect();
        if !call.kwargs.is_empty() {
            rest.push(Value::from(Kwargs::from_iter(
                call.kwargs.iter().map(|(k, v)| (k.as_str(), from_json(v))),
            )));
        }
        let out = (self.0)(first, &rest).map_err(convert_error)?;
        to_json(&out).map_err(convert_error)
    }
}

/// The StackStorm data functions of Orquesta's catalog (see the module docs).
pub fn st2_functions() -> Functions {
    let mut functions = Functions::new();
    let catalog = ST2_FILTERS
        .iter()
        .filter(|(name, _)| !NOT_IN_CATALOG.contains(name));
    for (name, f) in catalog {
        // The filter names are unique, so registration cannot fail.
        let _ = functions.register(*name, FilterFunction(*f));
    }
    for (alias, target) in ALIASES {
        if let Some((_, f)) = ST2_FILTERS.iter().find(|(name, _)| name == target) {
            let _ = functions.register(*alias, FilterFunction(*f));
        }
    }
    functions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_stackstorms() {
        let functions = st2_functions();
        let expected = [
            "basename",
            "dirname",
            "from_json_string",
            "from_yaml_string",
            "json_dump",
            "json_parse",
            "json_escape",
            "jsonpath_query",
            "regex_match",
            "regex_replace",
            "regex_search",
            "regex_substring",
            "to_human_time_from_seconds",
            "to_json_string",
            "to_yaml_string",
            "use_none",
            "version_compare",
            "version_more_than",
            "version_less_than",
            "version_equal",
            "version_match",
            "version_bump_major",
            "version_bump_minor",
            "version_bump_patch",
            "version_strip_patch",
            "yaml_dump",
            "yaml_parse",
        ];
        for name in expected {
            assert!(functions.get(name).is_some(), "{name} missing");
        }
        assert!(functions.get("to_complex").is_none());
        assert_eq!(functions.names().count(), expected.len());
    }
    use crate::expr::{Language, Scope};
    use serde_json::json;

    fn call(name: &str, args: &[Json], kwargs: serde_json::Map<String, Json>) -> Json {
        let functions = st2_functions();
        let scope = Scope::default();
        functions
            .get(name)
            .unwrap()
            .call(&FunctionCall {
                name,
                args,
                kwargs: &kwargs,
                scope: &scope,
                language: Language::Yaql,
            })
            .unwrap()
    }

    #[test]
    fn data_functions_work_on_json() {
        assert_eq!(
            call(
                "json_parse",
                &[json!("{\"a\": [1, 2.5]}")],
                Default::default()
            ),
            json!({"a": [1, 2.5]})
        );
        let mut kw = serde_json::Map::new();
        kw.insert("sort_keys".into(), json!(true));
        assert_eq!(
            call("to_json_string", &[json!({"b": 1, "a": null})], kw),
            json!("{\"a\": null,\"b\": 1}")
        );
        assert_eq!(
            call(
                "regex_substring",
                &[json!("v1.2.3"), json!("(\\d+)")],
                Default::default()
            ),
            json!("1")
        );
        assert_eq!(
            call("version_bump_minor", &[json!("1.2.3")], Default::default()),
            json!("1.3.0")
        );
    }
}
