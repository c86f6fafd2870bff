//! Action aliases, alias executions and the OpenAPI document, through the whole HTTP stack
//! (the demo pack of `api/mod.rs` has the aliases `demo.run_cmd`, `demo.collect` and the
//! disabled `demo.idle`).

mod api;

use api::App;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// `demo.collect`, the action of the `demo.collect` alias (made through the API so that the
/// demo pack's own content stays as other tests count it).
async fn add_collect_action(app: &App) {
    let body = json!({"name": "collect", "pack": "demo", "runner_type": "noop",
        "parameters": {"items": {"type": "array"}, "count": {"type": "integer"}, "who": {"type": "string"}}});
    let r = app
        .call("POST", "/v1/actions", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

async fn match_command(app: &App, command: &str) -> api::Reply {
    app.call(
        "POST",
        "/v1/actionalias/match",
        Some(&json!({"command": command}).to_string()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_are_listed_and_read() {
    let app = App::new().await;
    let r = app.get("/v1/actionalias").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("x-total-count"), Some("3"));
    let refs: Vec<&str> = r
        .json
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["ref"].as_str())
        .collect();
    assert_eq!(refs, ["demo.collect", "demo.idle", "demo.run_cmd"]);
    let run = &r.json[2];
    assert_eq!(run["uid"], "action_alias:demo:run_cmd");
    assert_eq!(run["action_ref"], "core.local");
    assert_eq!(run["metadata_file"], "aliases/run_cmd.yaml");
    assert_eq!(
        run["formats"],
        json!(["run {{ cmd }}", {"display": "execute <cmd>", "representation": ["execute {{ cmd }} now"]}])
    );
    assert_eq!(
        run["immutable_parameters"],
        json!({"env": {"GREETING": "{{ st2kv.system.greeting }}"}})
    );

    // What `st2 action-alias list` asks for.
    let r = app
        .get("/v1/actionalias?include_attributes=ref%2Cpack%2Cdescription%2Cenabled")
        .await;
    assert_eq!(
        r.json[1],
        json!({"id": r.json[1]["id"], "ref": "demo.idle", "pack": "demo", "description": "Never matches", "enabled": false})
    );
    let r = app.get("/v1/actionalias?name=collect&limit=1").await;
    assert_eq!(r.json.as_array().map(Vec::len), Some(1));
    assert_eq!(r.header("x-limit"), Some("1"));
    let r = app.get("/v1/actionalias?pack=core").await;
    assert_eq!(r.json, json!([]));

    let id = run["id"].as_str().expect("id").to_owned();
    let by_ref = app.get("/v1/actionalias/demo.run_cmd").await;
    assert_eq!(by_ref.status, StatusCode::OK);
    let by_id = app.get(&format!("/api/v1/actionalias/{id}")).await;
    assert_eq!(by_id.json, by_ref.json);
    let r = app.get("/v1/actionalias/demo.nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.fault(),
        "Resource with a reference or id \"demo.nope\" not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_match_one_enabled_alias() {
    let app = App::new().await;
    let r = match_command(&app, "run date").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["actionalias"]["ref"], "demo.run_cmd");
    assert_eq!(r.json["display"], "run {{ cmd }}");
    assert_eq!(r.json["representation"], "run {{ cmd }}");

    let r = match_command(&app, "execute uptime now").await;
    assert_eq!(r.json["display"], "execute <cmd>");
    assert_eq!(r.json["representation"], "execute {{ cmd }} now");

    let r = match_command(&app, "make coffee").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fault(), "Command 'make coffee' matched no patterns");

    // A second enabled alias with the same format makes the command ambiguous.
    let body = json!({"name": "also_run", "pack": "demo", "action_ref": "core.local",
        "formats": ["run {{ thing }}"]});
    let r = app
        .call("POST", "/v1/actionalias", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = match_command(&app, "run date").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fault(), "Command 'run date' matched more than 1 pattern");

    for (body, fault) in [
        ("{}", "'command' is a required property"),
        ("{\"command\": 5}", "\"command\" must be a string, got: int"),
        (
            "{\"command\": \"run x\", \"extra\": 1}",
            "Additional properties are not allowed ('extra' was unexpected)",
        ),
        ("[1]", "The request body must be a JSON object, got: list"),
    ] {
        let r = app.call("POST", "/v1/actionalias/match", Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.fault(), fault, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_the_display_strings_of_enabled_aliases() {
    let app = App::new().await;
    let r = app.get("/v1/actionalias/help").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["available"], 3);
    assert_eq!(
        r.json["helpstrings"],
        json!([
            {"pack": "demo", "display": "collect {{ items }} times {{ count=1 }}", "description": "Collect things"},
            {"pack": "demo", "display": "run {{ cmd }}", "description": "Run a shell command"},
            {"pack": "demo", "display": "execute <cmd>", "description": "Run a shell command"},
        ])
    );
    let r = app.get("/v1/actionalias/help?filter=EXEC").await;
    assert_eq!(r.json["available"], 1);
    assert_eq!(r.json["helpstrings"][0]["display"], "execute <cmd>");
    let r = app.get("/v1/actionalias/help?limit=1&offset=1").await;
    assert_eq!(r.json["available"], 3);
    assert_eq!(r.json["helpstrings"][0]["display"], "run {{ cmd }}");
    assert_eq!(r.json["helpstrings"].as_array().map(Vec::len), Some(1));
    let r = app.get("/v1/actionalias/help?pack=core").await;
    assert_eq!(r.json, json!({"available": 0, "helpstrings": []}));
    let r = app.get("/v1/actionalias/help?limit=x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fault(), "Parameter \"limit\" is not of type integer");
    let r = app.get("/v1/actionalias/help?filter=(").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.fault().contains("filter"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_are_created_updated_deleted_and_kept_across_restarts() {
    let app = App::new().await;
    let body = json!({"name": "deploy", "pack": "demo", "description": "Deploys",
        "action_ref": "core.local", "formats": [{"display": "deploy <app>", "representation": ["deploy {{ app }}"]}],
        "ack": {"enabled": false}});
    let r = app
        .call("POST", "/v1/actionalias", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["ref"], "demo.deploy");
    assert_eq!(r.json["enabled"], true);
    assert_eq!(r.json["ack"], json!({"enabled": false}));
    let id = r.json["id"].as_str().expect("id").to_owned();

    let r = app
        .call("POST", "/v1/actionalias", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.fault(),
        "Tried to save duplicate unique keys: action alias \"demo.deploy\" already exists"
    );

    let mut changed = body.clone();
    changed["enabled"] = json!(false);
    changed["id"] = json!(id);
    let r = app
        .call(
            "PUT",
            &format!("/v1/actionalias/{id}"),
            Some(&changed.to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["enabled"], false);
    let r = match_command(&app, "deploy web").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "disabled: {}", r.text);

    for (body, fault) in [
        (
            json!({"name": "x", "action_ref": "core.local"}),
            "'pack' is a required property",
        ),
        (
            json!({"name": "x", "pack": "demo", "action_ref": 3}),
            "action_ref",
        ),
        (
            json!({"name": "x", "pack": "demo", "action_ref": "core.local", "formats": [3]}),
            "formats",
        ),
        (
            json!({"name": "x", "pack": "demo", "action_ref": "core.local", "color": "red"}),
            "color",
        ),
    ] {
        let r = app
            .call("POST", "/v1/actionalias", Some(&body.to_string()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.fault().contains(fault), "{body}: {}", r.text);
    }
    let r = app
        .call("PUT", "/v1/actionalias/demo.nope", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = app
        .call("DELETE", "/v1/actionalias/demo.run_cmd", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/v1/actionalias/demo.run_cmd").await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .call("DELETE", "/v1/actionalias/demo.run_cmd", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Registering the pack again keeps what the API changed.
    let r = app
        .call(
            "POST",
            "/v1/packs/register",
            Some("{\"packs\": [\"demo\"]}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        app.get("/v1/actionalias/demo.run_cmd").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/actionalias/demo.deploy").await.json["enabled"],
        false
    );

    let dir = app.stop().await;
    let app = App::in_dir(dir).await;
    let r = app.get("/v1/actionalias/demo.deploy").await;
    assert_eq!(r.status, StatusCode::OK, "kept: {}", r.text);
    assert_eq!(r.json["enabled"], false);
    assert_eq!(r.json["description"], "Deploys");
    assert_eq!(
        app.get("/v1/actionalias/demo.run_cmd").await.status,
        StatusCode::NOT_FOUND,
        "a pack's alias stays deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_execution_runs_the_action_with_extracted_and_immutable_parameters() {
    let app = App::new().await;
    add_collect_action(&app).await;
    let r = app
        .call(
            "PUT",
            "/v1/keys/greeting",
            Some("{\"name\": \"greeting\", \"value\": \"hello-from-kv\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let body = json!({"name": "run_cmd", "format": "run {{ cmd }}",
        "command": "run echo $GREETING timeout=20", "user": "chatuser",
        "source_channel": "general", "notification_route": "slack",
        "source_context": {"thread": "t1"}});
    let r = app
        .call("POST", "/v1/aliasexecution", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["actionalias"]["ref"], "demo.run_cmd");
    assert_eq!(r.json["message"], "Running echo $GREETING");
    assert_eq!(r.json["extra"], json!({"by": "demo.run_cmd"}));
    let execution = &r.json["execution"];
    assert_eq!(execution["action"]["ref"], "core.local");
    assert_eq!(execution["parameters"]["timeout"], 20);
    assert_eq!(
        execution["parameters"]["env"],
        json!({"GREETING": "hello-from-kv"})
    );
    let context = &execution["context"];
    assert_eq!(context["action_alias_ref"], "demo.run_cmd");
    assert_eq!(context["api_user"], "chatuser");
    assert_eq!(context["user"], api::USER);
    assert_eq!(context["source_channel"], "general");
    let id = execution["id"].as_str().expect("id").to_owned();
    let done = app.wait(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["stdout"], "hello-from-kv");

    // Matched: the array is split on commas, the integer cast, the immutable parameter
    // rendered from the context.
    let body =
        json!({"command": "collect a, b ,c times 3", "user": "bob", "source_channel": "cli"});
    let r = app
        .call(
            "POST",
            "/v1/aliasexecution/match_and_execute",
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let results = r.json["results"].as_array().expect("results");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["actionalias"]["ref"], "demo.collect");
    assert!(results[0].get("message").is_none());
    assert_eq!(
        results[0]["execution"]["parameters"],
        json!({"items": ["a", "b", "c"], "count": 3, "who": "bob"})
    );
    let id = results[0]["execution"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(app.wait(&id).await["status"], "succeeded");

    // A `match_multiple` format runs the action once per match.
    let body = json!({"name": "each", "pack": "demo", "action_ref": "core.local",
        "formats": [{"display": "<cmd>,<cmd>,…", "representation": ["^x|(?P<cmd>[a-z]+)(?:,|$)"],
            "match_multiple": true}]});
    let r = app
        .call("POST", "/v1/actionalias", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let body = json!({"command": "date,uptime,", "user": "bob", "source_channel": "cli"});
    let r = app
        .call(
            "POST",
            "/v1/aliasexecution/match_and_execute",
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let cmds: Vec<&Value> = r.json["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|res| &res["execution"]["parameters"]["cmd"])
        .collect();
    assert_eq!(cmds, [&json!("date"), &json!("uptime")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_execution_refuses_what_stackstorm_refuses() {
    let app = App::new().await;
    add_collect_action(&app).await;
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "/v1/aliasexecution",
            json!({"format": "run {{ cmd }}", "command": "run date"}),
            StatusCode::BAD_REQUEST,
            "Alias execution \"name\" is required",
        ),
        (
            "/v1/aliasexecution",
            json!({"name": "nope", "format": "x", "command": "x"}),
            StatusCode::NOT_FOUND,
            "Unable to identify action alias with name \"nope\".",
        ),
        (
            "/v1/aliasexecution",
            json!({"name": "idle", "format": "run {{ cmd }}", "command": "run date"}),
            StatusCode::BAD_REQUEST,
            "Action alias with name \"idle\" is disabled.",
        ),
        (
            "/v1/aliasexecution",
            json!({"name": "run_cmd", "format": "run it", "command": "run date"}),
            StatusCode::BAD_REQUEST,
            "Format string \"run it\" is not available on the alias \"run_cmd\"",
        ),
        (
            "/v1/aliasexecution",
            json!({"name": "run_cmd", "format": "execute {{ cmd }} now", "command": "run date"}),
            StatusCode::BAD_REQUEST,
            "Command \"run date\" doesn't match format string \"execute {{ cmd }} now\"",
        ),
        (
            "/v1/aliasexecution",
            json!({"name": "run_cmd", "format": "run {{ cmd }}", "command": "run date", "source_context": "x"}),
            StatusCode::BAD_REQUEST,
            "\"source_context\" must be an object, got: str",
        ),
        (
            "/v1/aliasexecution",
            json!({"name": "run_cmd", "command": "run date", "channel": "x"}),
            StatusCode::BAD_REQUEST,
            "Additional properties are not allowed ('channel' was unexpected)",
        ),
        (
            "/v1/aliasexecution/match_and_execute",
            json!({"command": "collect a times 1 who=eve", "user": "u", "source_channel": "c"}),
            StatusCode::BAD_REQUEST,
            "Immutable arguments cannot be overriden: who",
        ),
        (
            "/v1/aliasexecution/match_and_execute",
            json!({"command": "collect a times many", "user": "u", "source_channel": "c"}),
            StatusCode::BAD_REQUEST,
            "Failed to cast value \"many\" (type: str) for parameter \"count\" of type \"integer\"",
        ),
        (
            "/v1/aliasexecution/match_and_execute",
            json!({"command": "collect a", "source_channel": "c"}),
            StatusCode::BAD_REQUEST,
            "'user' is a required property",
        ),
        (
            "/v1/aliasexecution/match_and_execute",
            json!({"command": "dance", "user": "u", "source_channel": "c"}),
            StatusCode::BAD_REQUEST,
            "Command 'dance' matched no patterns",
        ),
    ];
    for (path, body, status, fault) in cases {
        let r = app.call("POST", path, Some(&body.to_string())).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert!(r.fault().starts_with(fault), "{body}: {}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let app = App::new().await;
    let r = app.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let doc: Value = serde_json::from_str(&r.text).expect("JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.0.")),
        "{}",
        doc["openapi"]
    );
    for scheme in [
        "auth-token-header",
        "api-key-header",
        "auth-token-query",
        "api-key-query",
    ] {
        assert!(doc["components"]["securitySchemes"][scheme].is_object());
    }
    let paths = doc["paths"].as_object().expect("paths");

    // Every `$ref` names a schema, and operation ids are unique.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let pieces: Vec<&str> = r
        .text
        .split("\"$ref\":\"#/components/schemas/")
        .skip(1)
        .collect();
    assert!(pieces.len() > 80, "{} references", pieces.len());
    for piece in pieces {
        let name = piece.split('"').next().unwrap_or_default();
        assert!(schemas.contains_key(name), "unknown schema {name}");
    }
    let mut ids: Vec<&str> = paths
        .values()
        .filter_map(Value::as_object)
        .flat_map(|ops| ops.values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique");

    // The router is built from the same table: every entry is in the document...
    let table = st2d::server::routes::table();
    let mut documented = 0;
    for route in &table {
        let op = &paths[&route.op.openapi_path()][route.op.method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{} {}", route.op.method, route.op.path);
        documented += 1;
    }
    let in_doc: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |m| m.len()))
        .sum();
    assert_eq!(
        in_doc, documented,
        "the document has only the table's routes"
    );

    // ... and every documented operation is served (401 without credentials, not 404/405),
    // while methods a path does not document are not (405).
    for (path, ops) in paths {
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let ops = ops.as_object().expect("operations");
        for method in ["get", "post", "put", "delete"] {
            let upper = method.to_ascii_uppercase();
            if let Some(op) = ops.get(method) {
                let r = app.send(&upper, &concrete, &[], Some("{}")).await;
                if op.get("security") == Some(&json!([{"basic": []}])) {
                    assert_ne!(r.status, StatusCode::NOT_FOUND, "{upper} {concrete}");
                    assert_ne!(
                        r.status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{upper} {concrete}"
                    );
                } else {
                    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{upper} {concrete}");
                }
                let params = op["parameters"].as_array().expect("parameters");
                let in_path = params.iter().filter(|p| p["in"] == "path").count();
                assert_eq!(in_path, path.matches('{').count(), "{upper} {path}");
            } else {
                let r = app.call(&upper, &concrete, Some("{}")).await;
                assert_eq!(
                    r.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{upper} {concrete} is served but not documented"
                );
            }
        }
    }
    let r = app.send("GET", "/v1/openapi.json", &[], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_changes_are_on_the_stream_when_asked_for() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let app = App::new().await;
    let request = axum::http::Request::builder()
        .uri("/v1/stream?events=st2.actionalias__*")
        .header("x-auth-token", &app.token)
        .body(Body::empty())
        .expect("request");
    let response = app.router.clone().oneshot(request).await.expect("stream");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();

    let alias = json!({"name": "streamed", "pack": "demo", "action_ref": "core.local",
        "formats": ["stream {{ x }}"]});
    let r = app
        .call("POST", "/v1/actionalias", Some(&alias.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut changed = alias.clone();
    changed["description"] = json!("changed");
    let r = app
        .call(
            "PUT",
            "/v1/actionalias/demo.streamed",
            Some(&changed.to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // An execution event is not asked for and must not show up.
    let r = app
        .call("POST", "/v1/executions", Some(r#"{"action": "core.noop"}"#))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app
        .call("DELETE", "/v1/actionalias/demo.streamed", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !text.contains("st2.actionalias__delete") {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    text.push_str(&String::from_utf8_lossy(data));
                }
            }
            other => panic!("stream ended or stalled ({other:?}); read:\n{text}"),
        }
    }
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_owned(), serde_json::from_str(data).ok()?))
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "st2.actionalias__create",
            "st2.actionalias__update",
            "st2.actionalias__delete"
        ]
    );
    assert_eq!(events[0].1["ref"], "demo.streamed");
    assert_eq!(events[1].1["description"], "changed");
    assert_eq!(events[2].1["ref"], "demo.streamed");
}
