//! StackStorm's data functions as [`ExprFunction`]s, for Orquesta workflows.
//!
//! StackStorm registers the same Python functions it uses as Jinja filters with Orquesta's
//! function catalog, so workflows can call them from YAQL (`<% from_json_string($x) %>`) and
//! from Jinja both as globals and as filters. The catalog adds four aliases: `json_parse`,
//! `json_dump`, `yaml_parse` and `yaml_dump`. `to_complex` and `decrypt_kv` are not in it.

use minijinja::value::{Kwargs, Value};
use serde_json::Value as Json;

use super::filters;
use super::value::{from_json, to_json};
use super::{FilterFn, convert_error};
use crate::expr::{ExprError, ExprFunction, FunctionCall, Functions};

/// Orquesta function name → the filter implementing it.
const CATALOG: &[(&str, FilterFn)] = &[
    ("basename", filters::basename),
    ("dirname", filters::dirname),
    ("from_json_string", filters::from_json_string),
    ("from_yaml_string", filters::from_yaml_string),
    ("json_dump", filters::to_json_string),
    ("json_parse", filters::from_json_string),
    ("json_escape", filters::json_escape),
    ("jsonpath_query", filters::jsonpath_query),
    ("regex_match", filters::regex_match),
    ("regex_replace", filters::regex_replace),
    ("regex_search", filters::regex_search),
    ("regex_substring", filters::regex_substring),
    (
        "to_human_time_from_seconds",
        filters::to_human_time_from_seconds,
    ),
    ("to_json_string", filters::to_json_string),
    ("to_yaml_string", filters::to_yaml_string),
    ("use_none", filters::use_none),
    ("version_compare", filters::version_compare),
    ("version_more_than", filters::version_more_than),
    ("version_less_than", filters::version_less_than),
    ("version_equal", filters::version_equal),
    ("version_match", filters::version_match),
    ("version_bump_major", filters::version_bump_major),
    ("version_bump_minor", filters::version_bump_minor),
    ("version_bump_patch", filters::version_bump_patch),
    ("version_strip_patch", filters::version_strip_patch),
    ("yaml_dump", filters::to_yaml_string),
    ("yaml_parse", filters::from_yaml_string),
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
    for (name, f) in CATALOG {
        // The catalog's names are unique, so registration cannot fail.
        let _ = functions.register(*name, FilterFunction(*f));
    }
    functions
}

#[cfg(test)]
mod tests {
    use super::*;
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
