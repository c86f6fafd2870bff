//! The OpenAPI 3.0 document of the API (`GET /v1/openapi.json`), generated from the route
//! table the router is built from ([`super::table`]), so that every route served is documented
//! and nothing undocumented is served.
//!
//! StackStorm does not serve its (Swagger 2.0) spec from st2api at all; here it is served like
//! every other st2api route, with credentials.

use std::sync::{Arc, OnceLock};

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::json;

/// What a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// One object of a schema, with this status.
    One(u16, &'static str),
    /// A JSON array of a schema (200, `X-Total-Count`).
    List(&'static str),
    /// No body (204).
    Empty,
    /// Server-sent events.
    Events,
    /// Plain text (Prometheus metrics).
    Text,
}

/// One documented operation.
#[derive(Debug, Clone)]
pub struct Op {
    /// HTTP method.
    pub method: Method,
    /// The path in the router's syntax (`{name}`, `{*rest}`).
    pub path: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Query parameters: name and JSON type.
    pub query: Vec<(&'static str, &'static str)>,
    /// The request body's schema, if it takes one.
    pub body: Option<&'static str>,
    /// The response.
    pub reply: Reply,
    /// Served without credentials.
    pub public: bool,
}

/// `limit`, `offset`, `sort` and the projection, for list routes.
pub const LIST: &[(&str, &str)] = &[
    ("limit", "integer"),
    ("offset", "integer"),
    ("sort", "string"),
    ("include_attributes", "array"),
    ("exclude_attributes", "array"),
];

/// The projection, for routes returning one object.
pub const PROJECT: &[(&str, &str)] = &[
    ("include_attributes", "array"),
    ("exclude_attributes", "array"),
];

impl Op {
    fn new(method: Method, path: &'static str, summary: &'static str) -> Op {
        Op {
            method,
            path,
            summary,
            query: Vec::new(),
            body: None,
            reply: Reply::One(200, "Object"),
            public: false,
        }
    }

    /// A `GET`.
    pub fn get(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::GET, path, summary)
    }

    /// A `POST`.
    pub fn post(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::POST, path, summary)
    }

    /// A `PUT`.
    pub fn put(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::PUT, path, summary)
    }

    /// A `DELETE` answering 204.
    pub fn delete(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::DELETE, path, summary).empty()
    }

    /// Add query parameters.
    pub fn q(mut self, params: &[(&'static str, &'static str)]) -> Op {
        self.query.extend_from_slice(params);
        self
    }

    /// Add string query parameters (filters).
    pub fn filters(mut self, names: &[&'static str]) -> Op {
        self.query.extend(names.iter().map(|n| (*n, "string")));
        self
    }

    /// The request body's schema.
    pub fn body(mut self, schema: &'static str) -> Op {
        self.body = Some(schema);
        self
    }

    /// 200 with one object.
    pub fn one(mut self, schema: &'static str) -> Op {
        self.reply = Reply::One(200, schema);
        self
    }

    /// 201 with one object.
    pub fn created(mut self, schema: &'static str) -> Op {
        self.reply = Reply::One(201, schema);
        self
    }

    /// 202 with one object.
    pub fn accepted(mut self, schema: &'static str) -> Op {
        self.reply = Reply::One(202, schema);
        self
    }

    /// 200 with a list.
    pub fn list(mut self, schema: &'static str) -> Op {
        self.reply = Reply::List(schema);
        self
    }

    /// 204.
    pub fn empty(mut self) -> Op {
        self.reply = Reply::Empty;
        self
    }

    /// Server-sent events.
    pub fn events(mut self) -> Op {
        self.reply = Reply::Events;
        self
    }

    /// Plain text.
    pub fn text(mut self) -> Op {
        self.reply = Reply::Text;
        self
    }

    /// Served without the usual credentials.
    pub fn public(mut self) -> Op {
        self.public = true;
        self
    }

    /// The path as OpenAPI writes it (`{*hook}` → `{hook}`).
    pub fn openapi_path(&self) -> String {
        self.path.replace("{*", "{")
    }

    /// Names of the path parameters.
    pub fn path_params(&self) -> Vec<String> {
        self.openapi_path()
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect()
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query_param(name: &str, ty: &str) -> Value {
    let schema = if ty == "array" {
        json!({"type": "array", "items": {"type": "string"}})
    } else {
        json!({"type": ty})
    };
    let mut p = json!({"name": name, "in": "query", "required": false, "schema": schema});
    if ty == "array" {
        p["style"] = json!("form");
        p["explode"] = json!(false);
    }
    p
}

fn operation(op: &Op) -> Value {
    let mut parameters: Vec<Value> = op
        .path_params()
        .into_iter()
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    parameters.extend(op.query.iter().map(|(n, t)| query_param(n, t)));
    let error = json!({
        "description": "Error",
        "content": {"application/json": {"schema": schema_ref("Error")}}
    });
    let mut responses = Map::new();
    match op.reply {
        Reply::One(status, schema) => {
            responses.insert(
                status.to_string(),
                json!({"description": "OK", "content": {"application/json": {"schema": schema_ref(schema)}}}),
            );
        }
        Reply::List(schema) => {
            responses.insert(
                "200".into(),
                json!({
                    "description": "OK",
                    "headers": {"X-Total-Count": {"schema": {"type": "integer"}}},
                    "content": {"application/json": {"schema": {"type": "array", "items": schema_ref(schema)}}}
                }),
            );
        }
        Reply::Empty => {
            responses.insert("204".into(), json!({"description": "Done"}));
        }
        Reply::Events => {
            responses.insert(
                "200".into(),
                json!({"description": "Server-sent events", "content": {"text/event-stream": {"schema": {"type": "string"}}}}),
            );
        }
        Reply::Text => {
            responses.insert(
                "200".into(),
                json!({"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}),
            );
        }
    }
    responses.insert("default".into(), error);
    let tag = op
        .path
        .trim_start_matches("/v1")
        .trim_start_matches('/')
        .split('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("root");
    let mut out = json!({
        "summary": op.summary,
        "operationId": format!("{}_{}", op.method.as_str().to_ascii_lowercase(),
            op.openapi_path().trim_start_matches('/').replace(['/', '{', '}', '.'], "_")),
        "tags": [tag],
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(body) = op.body {
        out["requestBody"] = json!({
            "required": false,
            "content": {"application/json": {"schema": schema_ref(body)}}
        });
    }
    if op.public {
        out["security"] = json!([{"basic": []}]);
    }
    out
}

/// The document for these operations.
pub fn document<'a>(ops: impl IntoIterator<Item = &'a Op>) -> Value {
    let mut paths = Map::new();
    for op in ops {
        let entry = paths
            .entry(op.openapi_path())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(op.method.as_str().to_ascii_lowercase(), operation(op));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "StackStorm API (st2d)",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "StackStorm's st2api, st2auth and st2stream as served by st2d. Every path is also served under /api/v1, /auth/v1, /stream/v1 and without /v1.",
        },
        "servers": [{"url": "/"}],
        "security": [
            {"auth-token-header": []},
            {"api-key-header": []},
            {"auth-token-query": []},
            {"api-key-query": []}
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "auth-token-header": {"type": "apiKey", "in": "header", "name": "X-Auth-Token", "description": "A token from POST /v1/tokens."},
                "api-key-header": {"type": "apiKey", "in": "header", "name": "St2-Api-Key", "description": "An API key."},
                "auth-token-query": {"type": "apiKey", "in": "query", "name": "x-auth-token", "description": "A token, as a query parameter."},
                "api-key-query": {"type": "apiKey", "in": "query", "name": "st2-api-key", "description": "An API key, as a query parameter."},
                "basic": {"type": "http", "scheme": "basic", "description": "User name and password (POST /v1/tokens)."}
            },
            "schemas": schemas(),
        }
    })
}

fn object(props: &[(&str, &str)]) -> Value {
    let mut p = Map::new();
    for (name, ty) in props {
        let schema = match *ty {
            "array" => json!({"type": "array", "items": {}}),
            "object" => json!({"type": "object"}),
            "any" => json!({}),
            t if t.starts_with('#') => schema_ref(&t[1..]),
            t => json!({"type": t}),
        };
        p.insert((*name).to_owned(), schema);
    }
    json!({"type": "object", "properties": p})
}

fn with_required(mut schema: Value, required: &[&str]) -> Value {
    schema["required"] = json!(required);
    schema
}

const CONTENT: &[(&str, &str)] = &[
    ("id", "string"),
    ("ref", "string"),
    ("uid", "string"),
    ("name", "string"),
    ("pack", "string"),
    ("description", "string"),
];

fn content(extra: &[(&str, &str)]) -> Value {
    let all: Vec<(&str, &str)> = CONTENT.iter().chain(extra.iter()).copied().collect();
    object(&all)
}

/// The component schemas: objects with their main fields.
fn schemas() -> Value {
    let action_alias = content(&[
        ("enabled", "boolean"),
        ("action_ref", "string"),
        ("formats", "array"),
        ("ack", "object"),
        ("result", "object"),
        ("extra", "object"),
        ("immutable_parameters", "object"),
        ("metadata_file", "string"),
    ]);
    let execution = object(&[
        ("id", "string"),
        ("action", "object"),
        ("runner", "object"),
        ("liveaction", "object"),
        ("status", "string"),
        ("parameters", "object"),
        ("context", "object"),
        ("result", "any"),
        ("start_timestamp", "string"),
        ("end_timestamp", "string"),
        ("parent", "string"),
        ("children", "array"),
        ("log", "array"),
        ("web_url", "string"),
    ]);
    let all: Vec<(&str, Value)> = vec![
        (
            "Error",
            with_required(object(&[("faultstring", "string")]), &["faultstring"]),
        ),
        ("Object", json!({"type": "object"})),
        (
            "Root",
            object(&[
                ("version", "string"),
                ("docs_url", "string"),
                ("st2d_version", "string"),
            ]),
        ),
        (
            "OpenApi",
            object(&[
                ("openapi", "string"),
                ("info", "object"),
                ("paths", "object"),
                ("components", "object"),
            ]),
        ),
        ("TokenRequest", object(&[("ttl", "integer")])),
        (
            "Token",
            object(&[
                ("id", "string"),
                ("user", "string"),
                ("token", "string"),
                ("expiry", "string"),
                ("metadata", "object"),
                ("service", "boolean"),
            ]),
        ),
        ("TokenValidation", object(&[("valid", "boolean")])),
        ("TokenValidationRequest", object(&[("token", "string")])),
        (
            "User",
            object(&[
                ("username", "string"),
                ("authentication", "object"),
                ("rbac", "object"),
            ]),
        ),
        (
            "ApiKey",
            object(&[
                ("id", "string"),
                ("uid", "string"),
                ("user", "string"),
                ("key_hash", "string"),
                ("key", "string"),
                ("metadata", "object"),
                ("enabled", "boolean"),
                ("created_at", "string"),
            ]),
        ),
        (
            "RunnerType",
            object(&[
                ("id", "string"),
                ("name", "string"),
                ("description", "string"),
                ("enabled", "boolean"),
                ("runner_parameters", "object"),
                ("output_key", "string"),
                ("output_schema", "object"),
            ]),
        ),
        (
            "Action",
            with_required(
                content(&[
                    ("enabled", "boolean"),
                    ("runner_type", "string"),
                    ("entry_point", "string"),
                    ("parameters", "object"),
                    ("output_schema", "object"),
                    ("notify", "object"),
                    ("tags", "array"),
                    ("metadata_file", "string"),
                ]),
                &["name", "runner_type"],
            ),
        ),
        ("ActionParameters", object(&[("parameters", "object")])),
        (
            "Pack",
            content(&[
                ("version", "string"),
                ("author", "string"),
                ("email", "string"),
                ("keywords", "array"),
                ("dependencies", "array"),
                ("path", "string"),
                ("files", "array"),
            ]),
        ),
        (
            "PackRegisterRequest",
            object(&[
                ("packs", "array"),
                ("types", "array"),
                ("fail_on_failure", "boolean"),
            ]),
        ),
        (
            "PackInstallRequest",
            object(&[
                ("packs", "array"),
                ("force", "boolean"),
                ("skip_dependencies", "boolean"),
            ]),
        ),
        ("PackUninstallRequest", object(&[("packs", "array")])),
        ("ExecutionId", object(&[("execution_id", "string")])),
        (
            "ReEmitResult",
            object(&[("message", "string"), ("payload", "object")]),
        ),
        (
            "PackRegisterResult",
            json!({"type": "object", "additionalProperties": {"type": "integer"}}),
        ),
        (
            "TriggerType",
            content(&[
                ("payload_schema", "object"),
                ("parameters_schema", "object"),
                ("tags", "array"),
                ("metadata_file", "string"),
            ]),
        ),
        (
            "Trigger",
            content(&[("type", "string"), ("parameters", "object")]),
        ),
        (
            "TriggerInstance",
            object(&[
                ("id", "string"),
                ("trigger", "string"),
                ("payload", "object"),
                ("occurrence_time", "string"),
                ("status", "string"),
            ]),
        ),
        (
            "Rule",
            with_required(
                content(&[
                    ("enabled", "boolean"),
                    ("trigger", "object"),
                    ("criteria", "object"),
                    ("action", "object"),
                    ("type", "object"),
                    ("context", "object"),
                    ("tags", "array"),
                    ("metadata_file", "string"),
                ]),
                &["name", "trigger", "action"],
            ),
        ),
        (
            "RuleEnforcement",
            object(&[
                ("id", "string"),
                ("rule", "object"),
                ("trigger_instance_id", "string"),
                ("execution_id", "string"),
                ("status", "string"),
                ("failure_reason", "string"),
                ("enforced_at", "string"),
            ]),
        ),
        (
            "RuleType",
            object(&[
                ("id", "string"),
                ("name", "string"),
                ("description", "string"),
                ("enabled", "boolean"),
                ("parameters", "object"),
            ]),
        ),
        (
            "SensorType",
            content(&[
                ("class_name", "string"),
                ("entry_point", "string"),
                ("artifact_uri", "string"),
                ("enabled", "boolean"),
                ("trigger_types", "array"),
                ("poll_interval", "integer"),
                ("metadata_file", "string"),
            ]),
        ),
        ("ServiceGroups", object(&[("groups", "array")])),
        ("ServiceMembers", object(&[("members", "array")])),
        ("Execution", execution),
        (
            "ExecutionRequest",
            with_required(
                object(&[
                    ("action", "string"),
                    ("parameters", "object"),
                    ("context", "object"),
                    ("user", "string"),
                    ("delay", "integer"),
                    ("notify", "object"),
                ]),
                &["action"],
            ),
        ),
        (
            "ExecutionUpdate",
            object(&[("status", "string"), ("result", "any")]),
        ),
        (
            "ReRunRequest",
            object(&[
                ("parameters", "object"),
                ("tasks", "array"),
                ("reset", "array"),
                ("delay", "integer"),
            ]),
        ),
        (
            "KeyValuePair",
            object(&[
                ("id", "string"),
                ("uid", "string"),
                ("name", "string"),
                ("value", "string"),
                ("secret", "boolean"),
                ("encrypted", "boolean"),
                ("scope", "string"),
                ("user", "string"),
                ("expire_timestamp", "string"),
            ]),
        ),
        (
            "KeyValuePairRequest",
            with_required(
                object(&[
                    ("name", "string"),
                    ("value", "string"),
                    ("secret", "boolean"),
                    ("encrypted", "boolean"),
                    ("scope", "string"),
                    ("user", "string"),
                    ("ttl", "integer"),
                ]),
                &["value"],
            ),
        ),
        (
            "Inquiry",
            object(&[
                ("id", "string"),
                ("route", "string"),
                ("ttl", "integer"),
                ("users", "array"),
                ("roles", "array"),
                ("schema", "object"),
                ("parent", "string"),
                ("status", "string"),
            ]),
        ),
        (
            "InquiryResponse",
            with_required(
                object(&[("id", "string"), ("response", "object")]),
                &["response"],
            ),
        ),
        (
            "Trace",
            object(&[
                ("id", "string"),
                ("trace_tag", "string"),
                ("action_executions", "array"),
                ("rules", "array"),
                ("trigger_instances", "array"),
                ("start_timestamp", "string"),
            ]),
        ),
        (
            "PolicyType",
            object(&[
                ("id", "string"),
                ("ref", "string"),
                ("uid", "string"),
                ("name", "string"),
                ("resource_type", "string"),
                ("description", "string"),
                ("enabled", "boolean"),
                ("module", "string"),
                ("parameters", "object"),
            ]),
        ),
        (
            "Policy",
            content(&[
                ("enabled", "boolean"),
                ("resource_ref", "string"),
                ("policy_type", "string"),
                ("parameters", "object"),
            ]),
        ),
        (
            "Webhook",
            object(&[
                ("url", "string"),
                ("type", "string"),
                ("parameters", "object"),
            ]),
        ),
        (
            "WebhookBody",
            json!({"description": "Any JSON body (for `st2`: `{\"trigger\", \"payload\"}`)."}),
        ),
        (
            "ActionAlias",
            with_required(action_alias, &["name", "pack", "action_ref"]),
        ),
        (
            "ActionAliasMatchRequest",
            with_required(object(&[("command", "string")]), &["command"]),
        ),
        (
            "ActionAliasMatch",
            object(&[
                ("actionalias", "#ActionAlias"),
                ("display", "string"),
                ("representation", "string"),
            ]),
        ),
        (
            "ActionAliasHelp",
            object(&[("available", "integer"), ("helpstrings", "array")]),
        ),
        (
            "AliasExecutionRequest",
            with_required(
                object(&[
                    ("name", "string"),
                    ("format", "string"),
                    ("command", "string"),
                    ("user", "string"),
                    ("source_channel", "string"),
                    ("source_context", "object"),
                    ("notification_channel", "string"),
                    ("notification_route", "string"),
                ]),
                &["name"],
            ),
        ),
        (
            "AliasMatchAndExecuteRequest",
            with_required(
                object(&[
                    ("command", "string"),
                    ("user", "string"),
                    ("source_channel", "string"),
                    ("notification_channel", "string"),
                    ("notification_route", "string"),
                ]),
                &["command", "user", "source_channel"],
            ),
        ),
        (
            "AliasExecution",
            object(&[
                ("actionalias", "#ActionAlias"),
                ("execution", "#Execution"),
                ("message", "string"),
                ("extra", "any"),
            ]),
        ),
        ("AliasExecutionResults", object(&[("results", "array")])),
    ];
    Value::Object(all.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

static DOCUMENT: OnceLock<Arc<Value>> = OnceLock::new();

/// `GET /v1/openapi.json`.
pub async fn serve() -> Response {
    let doc = DOCUMENT.get_or_init(|| {
        let routes = super::table();
        Arc::new(document(routes.iter().map(|r| &r.op)))
    });
    json(StatusCode::OK, doc)
}
