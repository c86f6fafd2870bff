//! Query parameters as StackStorm's router reads them: comma-separated arrays, Python-ish
//! booleans, strict integers, `limit`/`offset` with their errors, and the
//! `include_attributes` / `exclude_attributes` projection.

use serde_json::{Map, Value};
use st2_core::store::Page;

use super::error::ApiError;

/// The query string, decoded, in order. Unknown parameters are kept and ignored.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parse a raw query string (`None`: no query).
    pub fn parse(raw: Option<&str>) -> Self {
        Params(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last value of `name` (empty values count as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` was given at all, even empty.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// An array parameter: every value of `name`, split on commas.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A boolean parameter (`true|1|yes|y` / `false|0|no|n`, any case).
    ///
    /// # Errors
    /// 400 `Parameter "x" is not of type boolean`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" => Ok(Some(true)),
            "false" | "0" | "no" | "n" => Ok(Some(false)),
            _ => Err(ApiError::bad_request(format!(
                "Parameter \"{name}\" is not of type boolean"
            ))),
        }
    }

    /// An integer parameter (`^-?[0-9]+$`).
    ///
    /// # Errors
    /// 400 `Parameter "x" is not of type integer`.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let digits = v.strip_prefix('-').unwrap_or(v);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::bad_request(format!(
                "Parameter \"{name}\" is not of type integer"
            )));
        }
        v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!("Parameter \"{name}\" is not of type integer"))
        })
    }

    /// `limit` and `offset` with the endpoint's default limit (`None`: no default). Returns
    /// the page and the limit to report in `X-Limit`.
    ///
    /// # Errors
    /// 400 for `limit=0`, `limit<-1`, a negative or huge `offset`, non-integers.
    pub fn page(&self, default_limit: Option<u64>) -> Result<(Page, Option<u64>), ApiError> {
        let limit = match self.int("limit")? {
            None => default_limit,
            Some(-1) => None,
            Some(0) => {
                return Err(ApiError::bad_request(
                    "Limit, \"0\" specified, must be a positive number or -1 for full result set.",
                ));
            }
            Some(n) if n < -1 => {
                return Err(ApiError::bad_request(format!(
                    "Limit, \"{n}\" specified, must be a positive number or -1 for full result set."
                )));
            }
            Some(n) => Some(n as u64),
        };
        let offset = match self.int("offset")? {
            None => 0,
            Some(n) if (0..(1i64 << 31)).contains(&n) => n as u64,
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "Offset \"{n}\" specified is more than 32-bit int or negative"
                )));
            }
        };
        Ok((Page { limit, offset }, limit))
    }

    /// The projection asked for.
    ///
    /// # Errors
    /// 400 when both `include_attributes` and `exclude_attributes` are given.
    pub fn projection(&self) -> Result<Projection, ApiError> {
        let include = self.list("include_attributes");
        let exclude = self.list("exclude_attributes");
        match (include.is_empty(), exclude.is_empty()) {
            (false, false) => Err(ApiError::bad_request(
                "exclude_attributes and include_attributes arguments are mutually exclusive. \
                 You need to provide either one or another, but not both.",
            )),
            (false, true) => Ok(Projection::Include(include)),
            (true, false) => Ok(Projection::Exclude(exclude)),
            (true, true) => Ok(Projection::All),
        }
    }
}

/// Which attributes of each object a response keeps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Projection {
    /// Everything.
    #[default]
    All,
    /// Only these top-level attributes (dotted names keep their whole first segment), plus
    /// the mandatory ones.
    Include(Vec<String>),
    /// Everything but these (dotted names remove the nested attribute).
    Exclude(Vec<String>),
}

impl Projection {
    /// Apply to one object; `mandatory` attributes are always kept (`id`, and `ref` for pack
    /// content).
    pub fn apply(&self, value: Value, mandatory: &[&str]) -> Value {
        let Value::Object(object) = value else {
            return value;
        };
        match self {
            Projection::All => Value::Object(object),
            Projection::Include(names) => {
                let keep = |k: &str| {
                    mandatory.contains(&k)
                        || names
                            .iter()
                            .any(|n| n.split('.').next().is_some_and(|first| first == k))
                };
                Value::Object(object.into_iter().filter(|(k, _)| keep(k)).collect())
            }
            Projection::Exclude(names) => {
                let mut object = object;
                for name in names {
                    remove_path(&mut object, name);
                }
                Value::Object(object)
            }
        }
    }

    /// True when the top-level attribute `key` survives [`Projection::apply`] (for endpoints
    /// that can skip building what would be dropped).
    pub fn keeps(&self, key: &str) -> bool {
        match self {
            Projection::All => true,
            Projection::Include(names) => names
                .iter()
                .any(|n| n.split('.').next().is_some_and(|first| first == key)),
            Projection::Exclude(names) => !names.iter().any(|n| n == key),
        }
    }

    /// The excluded names (for endpoints that restrict them).
    pub fn excluded(&self) -> &[String] {
        match self {
            Projection::Exclude(names) => names,
            _ => &[],
        }
    }
}

fn remove_path(object: &mut Map<String, Value>, path: &str) {
    match path.split_once('.') {
        None => {
            object.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Value::Object(inner)) = object.get_mut(head) {
                remove_path(inner, rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arrays_booleans_and_integers_parse_as_stackstorm_does() {
        let p = Params::parse(Some(
            "include_attributes=id%2Caction.ref&sort_desc=True&limit=5&x=yes&bad=maybe&n=1a",
        ));
        assert_eq!(p.list("include_attributes"), vec!["id", "action.ref"]);
        assert_eq!(p.bool("sort_desc").expect("bool"), Some(true));
        assert_eq!(p.bool("x").expect("bool"), Some(true));
        assert_eq!(
            p.bool("bad").expect_err("not a bool").message,
            "Parameter \"bad\" is not of type boolean"
        );
        assert_eq!(p.int("limit").expect("int"), Some(5));
        assert!(p.int("n").is_err());
    }

    #[test]
    fn limits_follow_the_contract() {
        let page = |q: &str| Params::parse(Some(q)).page(Some(100));
        assert_eq!(page("").expect("default").0.limit, Some(100));
        assert_eq!(page("limit=-1").expect("all").0.limit, None);
        assert!(page("limit=0").is_err());
        assert!(page("limit=-2").is_err());
        assert!(page("offset=2147483648").is_err());
        assert_eq!(page("limit=3&offset=2").expect("page").0.offset, 2);
    }

    #[test]
    fn projections_keep_mandatory_keys() {
        let v = json!({"id": "1", "ref": "a.b", "action": {"ref": "x", "y": 1}, "result": 2});
        let include = Projection::Include(vec!["action.ref".into()]);
        assert_eq!(
            include.apply(v.clone(), &["id"]),
            json!({"id": "1", "action": {"ref": "x", "y": 1}})
        );
        let exclude = Projection::Exclude(vec!["result".into(), "action.y".into()]);
        assert_eq!(
            exclude.apply(v, &["id"]),
            json!({"id": "1", "ref": "a.b", "action": {"ref": "x"}})
        );
        assert!(
            Params::parse(Some("include_attributes=a&exclude_attributes=b"))
                .projection()
                .is_err()
        );
    }

    #[test]
    fn keeps_says_what_apply_keeps_at_the_top_level() {
        let v = json!({"id": "1", "parameters": {"a": 1}, "pack": "p"});
        for (projection, kept) in [
            (Projection::All, true),
            (
                Projection::Include(vec!["ref".into(), "pack".into()]),
                false,
            ),
            (Projection::Include(vec!["parameters.a".into()]), true),
            (Projection::Exclude(vec!["parameters".into()]), false),
            (Projection::Exclude(vec!["parameters.a".into()]), true),
        ] {
            assert_eq!(projection.keeps("parameters"), kept, "{projection:?}");
            assert_eq!(
                projection
                    .apply(v.clone(), &["id"])
                    .get("parameters")
                    .is_some(),
                kept,
                "{projection:?}"
            );
        }
    }
}
