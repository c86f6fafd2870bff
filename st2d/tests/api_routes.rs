//! The REST API through the whole router (no sockets): StackStorm's shapes, prefixes,
//! trailing slashes, auth, errors and headers, for every endpoint st2d serves.

mod api;

use api::{App, PASSWORD, USER, basic};
use axum::http::StatusCode;
use serde_json::json;

// ---------------------------------------------------------------- auth

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_issued_on_every_prefix_and_refused_with_bad_credentials() {
    let app = App::new().await;
    let good = basic(USER, PASSWORD);
    for path in [
        "/tokens",
        "/v1/tokens",
        "/auth/v1/tokens",
        "/auth/tokens",
        "/tokens/",
    ] {
        let r = app
            .send(
                "POST",
                path,
                &[("authorization", &good)],
                Some("{\"ttl\": 300}"),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.text);
        assert_eq!(r.json["user"], USER);
        let token = r.json["token"].as_str().expect("token");
        assert_eq!(token.len(), 32);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        let expiry = r.json["expiry"].as_str().expect("expiry");
        assert!(expiry.ends_with('Z') && expiry.len() == 27, "{expiry}");
        assert_eq!(r.json["metadata"], json!({}));
        assert_eq!(r.json["service"], false);
        assert!(r.header("x-api-url").is_some());
    }
    // No body, and a literal null body, work too.
    let r = app
        .send("POST", "/tokens", &[("authorization", &good)], None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .send("POST", "/tokens", &[("authorization", &good)], Some("null"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    for auth in [
        basic(USER, "wrong"),
        basic("nobody", PASSWORD),
        "Bearer x".to_owned(),
        "Basic !!!".to_owned(),
    ] {
        let r = app
            .send("POST", "/tokens", &[("authorization", &auth)], Some("{}"))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth}");
        assert_eq!(r.fault(), "Invalid or missing credentials");
    }
    let r = app.send("POST", "/tokens", &[], Some("{}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = app
        .send(
            "POST",
            "/tokens",
            &[("authorization", &good)],
            Some("{\"ttl\": 86401}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.fault(),
        "TTL specified 86401 is greater than max allowed 86400."
    );
    let r = app
        .send(
            "POST",
            "/tokens",
            &[("authorization", &good)],
            Some("{\"ttl\": 0}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .send(
            "POST",
            "/tokens",
            &[("authorization", &good)],
            Some("{bad json"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.fault().starts_with("Failed to parse request body"),
        "{}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_work_from_header_query_and_cookie_and_whoami_says_how() {
    let app = App::new().await;
    let t = app.token.clone();
    let r = app.get("/v1/user").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["username"], USER);
    assert_eq!(r.json["authentication"]["method"], "authentication token");
    assert_eq!(r.json["authentication"]["location"], "header");
    assert!(r.json["authentication"]["token_expire"].is_string());
    assert_eq!(r.json["rbac"]["enabled"], false);
    let cookie = r.header("set-cookie").expect("auth-token cookie");
    assert!(
        cookie.starts_with(&format!("auth-token={t}; Max-Age=")),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly"));

    let r = app
        .send("GET", &format!("/v1/user?x-auth-token={t}"), &[], None)
        .await;
    assert_eq!(r.json["authentication"]["location"], "query");
    let r = app
        .send(
            "GET",
            "/api/v1/user",
            &[("cookie", &format!("a=b; auth-token={t}"))],
            None,
        )
        .await;
    assert_eq!(r.json["authentication"]["location"], "cookie");

    let r = app
        .send(
            "GET",
            "/v1/user",
            &[("x-auth-token", "0123456789abcdef0123456789abcdef")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.fault(), "Unauthorized");

    let r = app
        .call(
            "POST",
            "/v1/tokens/validate",
            Some(&format!("{{\"token\": \"{t}\"}}")),
        )
        .await;
    assert_eq!(r.json, json!({"valid": true}));
    let r = app
        .call("POST", "/v1/tokens/validate", Some("{\"token\": \"nope\"}"))
        .await;
    assert_eq!(r.json, json!({"valid": false}));
    let r = app.call("POST", "/v1/tokens/validate", Some("{}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fault(), "Token is not provided.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_requests_without_credentials() {
    let app = App::new().await;
    let id = "5f0c0ffee0ddf00dcafe0001";
    let routes: &[(&str, String)] = &[
        ("GET", "/v1".into()),
        ("GET", "/v1/user".into()),
        ("POST", "/v1/tokens/validate".into()),
        ("GET", "/v1/apikeys".into()),
        ("POST", "/v1/apikeys".into()),
        ("GET", format!("/v1/apikeys/{id}")),
        ("PUT", format!("/v1/apikeys/{id}")),
        ("DELETE", format!("/v1/apikeys/{id}")),
        ("GET", "/v1/runnertypes".into()),
        ("GET", "/v1/runnertypes/local-shell-cmd".into()),
        ("GET", "/v1/actions".into()),
        ("GET", "/v1/actions/core.local".into()),
        ("POST", "/v1/actions".into()),
        ("PUT", "/v1/actions/core.local".into()),
        ("DELETE", "/v1/actions/core.local".into()),
        ("GET", "/v1/actions/views/overview".into()),
        ("GET", "/v1/actions/views/overview/core.local".into()),
        ("GET", "/v1/actions/views/parameters/core.local".into()),
        ("GET", "/v1/packs".into()),
        ("GET", "/v1/packs/core".into()),
        ("POST", "/v1/packs/register".into()),
        ("GET", "/v1/triggertypes".into()),
        ("GET", "/v1/triggertypes/core.st2.webhook".into()),
        ("GET", "/v1/triggers".into()),
        ("GET", "/v1/triggers/core.st2.webhook".into()),
        ("GET", "/v1/triggerinstances".into()),
        ("GET", format!("/v1/triggerinstances/{id}")),
        ("POST", format!("/v1/triggerinstances/{id}/re_emit")),
        ("GET", "/v1/rules".into()),
        ("GET", "/v1/rules/demo.on_deploy".into()),
        ("POST", "/v1/rules".into()),
        ("PUT", "/v1/rules/demo.on_deploy".into()),
        ("DELETE", "/v1/rules/demo.on_deploy".into()),
        ("GET", "/v1/ruleenforcements".into()),
        ("GET", format!("/v1/ruleenforcements/{id}")),
        ("GET", "/v1/ruletypes".into()),
        ("GET", "/v1/sensortypes".into()),
        ("GET", "/v1/sensortypes/demo.Watcher".into()),
        ("PUT", "/v1/sensortypes/demo.Watcher".into()),
        ("GET", "/v1/timers".into()),
        ("GET", "/v1/service_registry/groups".into()),
        ("GET", "/v1/service_registry/groups/st2d/members".into()),
        ("GET", "/v1/executions".into()),
        ("POST", "/v1/executions".into()),
        ("GET", format!("/v1/executions/{id}")),
        ("PUT", format!("/v1/executions/{id}")),
        ("DELETE", format!("/v1/executions/{id}")),
        ("GET", format!("/v1/executions/{id}/output")),
        ("GET", format!("/v1/executions/{id}/result")),
        ("GET", "/v1/actions/views/entry_point/core.local".into()),
        ("GET", format!("/v1/executions/{id}/children")),
        ("POST", format!("/v1/executions/{id}/re_run")),
        ("GET", format!("/v1/executions/{id}/attribute/status")),
        ("GET", "/v1/keys".into()),
        ("GET", "/v1/keys/k".into()),
        ("PUT", "/v1/keys/k".into()),
        ("DELETE", "/v1/keys/k".into()),
        ("GET", "/v1/webhooks".into()),
        ("GET", "/v1/stream".into()),
        ("GET", "/v1/webhooks/deploy".into()),
        ("POST", "/v1/webhooks/st2".into()),
        ("POST", "/v1/webhooks/deploy".into()),
        ("GET", "/v1/inquiries".into()),
        ("GET", format!("/v1/inquiries/{id}")),
        ("PUT", format!("/v1/inquiries/{id}")),
        ("GET", "/v1/traces".into()),
        ("GET", format!("/v1/traces/{id}")),
        ("GET", "/v1/policytypes".into()),
        ("GET", "/v1/policytypes/action.concurrency".into()),
        ("GET", "/v1/policies".into()),
        ("GET", "/v1/policies/demo.login.concurrency".into()),
        ("GET", "/v1/metrics".into()),
        ("GET", "/v1/openapi.json".into()),
        ("GET", "/v1/actionalias".into()),
        ("POST", "/v1/actionalias".into()),
        ("GET", "/v1/actionalias/demo.run_cmd".into()),
        ("PUT", "/v1/actionalias/demo.run_cmd".into()),
        ("DELETE", "/v1/actionalias/demo.run_cmd".into()),
        ("POST", "/v1/actionalias/match".into()),
        ("GET", "/v1/actionalias/help".into()),
        ("POST", "/v1/aliasexecution".into()),
        ("POST", "/v1/aliasexecution/match_and_execute".into()),
    ];
    for (method, path) in routes {
        for form in [
            path.clone(),
            path.replacen("/v1", "/api/v1", 1),
            format!("{path}/"),
        ] {
            let r = app.send(method, &form, &[], Some("{}")).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {form}: {}",
                r.text
            );
            assert_eq!(
                r.fault(),
                "Unauthorized - One of Token or API key required.",
                "{method} {form}"
            );
        }
    }
    // OPTIONS needs no credentials.
    let r = app.send("OPTIONS", "/v1/executions", &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("access-control-allow-methods").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_created_shown_once_used_disabled_and_deleted() {
    let app = App::new().await;
    let r = app
        .call(
            "POST",
            "/v1/apikeys",
            Some("{\"metadata\": {\"used_by\": \"ci\"}}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let key = r.json["key"].as_str().expect("key").to_owned();
    let id = r.json["id"].as_str().expect("id").to_owned();
    assert_eq!(r.json["user"], USER);
    assert_eq!(r.json["enabled"], true);
    assert_eq!(r.json["metadata"]["used_by"], "ci");

    let r = app
        .send("GET", "/v1/user", &[("st2-api-key", &key)], None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["authentication"]["method"], "API key");
    let r = app
        .send("GET", &format!("/v1/user?st2-api-key={key}"), &[], None)
        .await;
    assert_eq!(r.json["authentication"]["location"], "query");

    let r = app.get("/v1/apikeys").await;
    assert_eq!(r.header("x-total-count"), Some("1"));
    assert!(!r.text.contains(&key), "the key is never listed");
    assert_eq!(r.json[0]["key_hash"], "********");
    assert_eq!(r.json[0]["uid"], "********");
    let r = app.get("/v1/apikeys?show_secrets=true").await;
    assert_eq!(r.json[0]["key_hash"].as_str().map(str::len), Some(64));
    // Looked up by id or by the key itself.
    assert_eq!(app.get(&format!("/v1/apikeys/{key}")).await.json["id"], id);

    let r = app
        .call(
            "PUT",
            &format!("/v1/apikeys/{id}"),
            Some("{\"enabled\": false}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["enabled"], false);
    let r = app
        .send("GET", "/v1/user", &[("st2-api-key", &key)], None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.fault(), "Unauthorized - API key is disabled.");

    let r = app.call("DELETE", &format!("/v1/apikeys/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .send("GET", "/v1/user", &[("st2-api-key", &key)], None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.fault()
            .starts_with("Unauthorized - ApiKey with key_hash=")
    );
    assert_eq!(
        app.get(&format!("/v1/apikeys/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_survive_a_restart_on_the_same_database() {
    let app = App::new().await;
    let token = app.token.clone();
    let dir = app.stop().await;
    let again = App::in_dir(dir).await;
    let r = again
        .send("GET", "/v1/user", &[("x-auth-token", &token)], None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["username"], USER);
}

// ---------------------------------------------------------------- framing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_request_ids_cors_and_json_errors() {
    let app = App::new().await;
    let t = app.token.clone();
    let r = app
        .send(
            "GET",
            "/v1",
            &[("x-auth-token", &t), ("x-request-id", "abc-123")],
            None,
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    assert_eq!(r.json["version"], "3.9.0");
    let r = app
        .send(
            "GET",
            "/v1",
            &[("x-auth-token", &t), ("origin", "http://localhost:3000")],
            None,
        )
        .await;
    assert_eq!(r.header("x-request-id").map(str::len), Some(36));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let r = app
        .send(
            "GET",
            "/v1",
            &[("x-auth-token", &t), ("origin", "http://evil.example")],
            None,
        )
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://127.0.0.1:3000")
    );

    let r = app.get("/v1/nothing/here").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.fault(), "The resource could not be found.");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = app.call("PATCH", "/v1/actions", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!r.fault().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_with_a_faultstring() {
    let app = App::new().await;
    let r = app
        .call("POST", "/v1/executions", Some("{\"action\": "))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.fault().starts_with("Failed to parse request body"));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = app.call("POST", "/v1/executions", Some(&deep)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.fault());
    let big = format!(
        "{{\"action\": \"core.noop\", \"x\": \"{}\"}}",
        "a".repeat(11 << 20)
    );
    let r = app.call("POST", "/v1/executions", Some(&big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!r.fault().is_empty());
    let r = app.call("POST", "/v1/executions", Some("[1, 2]")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.call("PUT", "/v1/keys/k", Some("{\"value\": 5}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fault(), "\"value\" must be a string, got: int");
    let r = app.get("/v1/executions?limit=0").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.fault(),
        "Limit, \"0\" specified, must be a positive number or -1 for full result set."
    );
    let r = app.get("/v1/executions?limit=abc").await;
    assert_eq!(r.fault(), "Parameter \"limit\" is not of type integer");
    let r = app
        .get("/v1/executions?include_attributes=id&exclude_attributes=result")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.get("/v1/executions?exclude_attributes=action").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.get("/v1/executions?show_secrets=perhaps").await;
    assert_eq!(
        r.fault(),
        "Parameter \"show_secrets\" is not of type boolean"
    );
}

// ---------------------------------------------------------------- content

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_types_filter_by_exact_name_on_the_trailing_slash_form() {
    let app = App::new().await;
    let r = app.get("/v1/runnertypes/?name=local-shell-cmd").await;
    assert_eq!(r.status, StatusCode::OK);
    let list = r.json.as_array().expect("list");
    assert_eq!(list.len(), 1);
    let runner = &list[0];
    assert_eq!(runner["name"], "local-shell-cmd");
    assert_eq!(runner["uid"], "runner_type:local-shell-cmd");
    assert_eq!(runner["runner_parameters"]["cmd"]["type"], "string");
    assert_eq!(runner["runner_parameters"]["sudo_password"]["secret"], true);
    assert_eq!(runner["id"].as_str().map(str::len), Some(24));
    assert_eq!(r.header("x-total-count"), Some("1"));
    assert_eq!(r.header("x-limit"), Some("100"));
    assert_eq!(app.get("/v1/runnertypes?name=local").await.json, json!([]));
    let by_name = app.get("/v1/runnertypes/local-shell-cmd").await;
    let by_id = app
        .get(&format!(
            "/v1/runnertypes/{}",
            runner["id"].as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(by_name.json, by_id.json);
    let r = app
        .get("/v1/runnertypes?include_attributes=id,name,description")
        .await;
    assert!(r.json[0].get("runner_parameters").is_none());
    assert!(r.json[0].get("name").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_list_get_and_views() {
    let app = App::new().await;
    let r = app
        .get("/v1/actions?include_attributes=ref%2Cpack%2Cdescription&pack=core")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let list = r.json.as_array().expect("list");
    assert!(list.iter().any(|a| a["ref"] == "core.local"));
    assert!(list.iter().all(|a| a["pack"] == "core"));
    assert!(
        list.iter()
            .all(|a| a.get("parameters").is_none() && a.get("id").is_some())
    );
    assert!(
        r.header("x-limit").is_none(),
        "actions have no default limit"
    );
    // Parameters are shown unless the projection drops them.
    let full = app.get("/v1/actions?pack=core&name=local").await;
    assert_eq!(full.json[0]["parameters"]["cmd"]["type"], "string");
    let partial = app
        .get("/v1/actions?pack=core&name=local&exclude_attributes=parameters.cmd")
        .await;
    assert!(partial.json[0]["parameters"].get("cmd").is_none());
    assert!(partial.json[0]["parameters"].get("sudo").is_some());
    let without = app
        .get("/v1/actions?pack=core&name=local&exclude_attributes=parameters")
        .await;
    assert!(without.json[0].get("parameters").is_none());
    assert_eq!(without.json[0]["runner_type"], "local-shell-cmd");

    // Filtered and paged by ref alone, only the page is presented; the same list as the
    // general path (sorting by ref, or filtering on `enabled`) gives.
    let lean = app.get("/v1/actions?pack=core&limit=3&offset=2").await;
    let sorted = app
        .get("/v1/actions?pack=core&limit=3&offset=2&sort=ref")
        .await;
    assert_eq!(lean.json.as_array().map(Vec::len), Some(3));
    assert_eq!(lean.json, sorted.json);
    assert_eq!(lean.header("x-total-count"), sorted.header("x-total-count"));
    assert_eq!(lean.header("x-limit"), Some("3"));
    let all = app.get("/v1/actions?pack=core").await;
    let enabled = app.get("/v1/actions?pack=core&enabled=true").await;
    assert_eq!(all.json, enabled.json);
    let total: usize = all.header("x-total-count").unwrap().parse().unwrap();
    assert_eq!(all.json.as_array().map(Vec::len), Some(total));
    let by_id = app
        .get(&format!(
            "/v1/actions?id={}",
            all.json[1]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_id.json, json!([all.json[1].clone()]));
    let by_ref = app.get("/v1/actions?ref=core.local,core.noop").await;
    let refs: Vec<_> = by_ref
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ref"].clone())
        .collect();
    assert_eq!(refs, [json!("core.local"), json!("core.noop")]);

    let local = app.get("/v1/actions/core.local").await;
    assert_eq!(local.status, StatusCode::OK);
    for field in [
        "id",
        "uid",
        "ref",
        "pack",
        "name",
        "description",
        "enabled",
        "entry_point",
        "runner_type",
        "parameters",
    ] {
        assert!(local.json.get(field).is_some(), "{field}");
    }
    assert_eq!(local.json["uid"], "action:core:local");
    assert_eq!(local.json["runner_type"], "local-shell-cmd");
    let id = local.json["id"].as_str().expect("id");
    assert_eq!(
        app.get(&format!("/api/v1/actions/{id}")).await.json,
        local.json
    );

    let missing = app.get("/v1/actions/core.nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.fault(),
        "Resource with a reference or id \"core.nope\" not found"
    );

    let params = app.get("/v1/actions/views/parameters/demo.login").await;
    let p = &params.json["parameters"];
    assert_eq!(p["password"]["secret"], true);
    assert_eq!(p["cmd"]["default"], "echo logged in");
    assert_eq!(p["cmd"]["type"], "string", "runner's attributes merged in");
    assert_eq!(p["timeout"]["default"], 60);
    let overview = app.get("/v1/actions/views/overview/demo.login").await;
    assert_eq!(overview.json["parameters"], *p);
    let id = overview.json["id"].as_str().expect("id").to_owned();
    let by_id = app
        .get(&format!(
            "/v1/actions/views/overview/{id}?include_attributes=parameters"
        ))
        .await;
    assert_eq!(by_id.json["parameters"], *p);
    assert_eq!(by_id.json["ref"], "demo.login");
    assert!(by_id.json.get("runner_type").is_none(), "{}", by_id.text);
    assert_eq!(
        app.get("/v1/actions/views/overview/demo.nothing")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let all = app.get("/v1/actions/views/overview?pack=demo").await;
    assert_eq!(all.json.as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packs_trigger_types_triggers_and_rules() {
    let app = App::new().await;
    let packs = app
        .get("/v1/packs?include_attributes=ref%2Cname%2Cdescription%2Cversion%2Cauthor")
        .await;
    let demo = packs
        .json
        .as_array()
        .and_then(|l| l.iter().find(|p| p["ref"] == "demo").cloned())
        .expect("demo pack");
    assert_eq!(demo["version"], "1.2.3");
    assert_eq!(demo["author"], "Tester");
    let pack = app.get("/v1/packs/demo").await;
    assert_eq!(pack.json["uid"], "pack:demo");
    assert_eq!(pack.json["keywords"], json!(["demo"]));
    assert_eq!(app.get("/v1/packs/core").await.status, StatusCode::OK);

    let tt = app.get("/v1/triggertypes/core.st2.webhook").await;
    assert_eq!(tt.json["uid"], "trigger_type:core:st2.webhook");
    assert!(tt.json["parameters_schema"]["properties"]["url"].is_object());
    let list = app
        .get("/v1/triggertypes?include_attributes=ref%2Cpack%2Cdescription")
        .await;
    assert!(
        list.json
            .as_array()
            .expect("list")
            .iter()
            .any(|t| t["ref"] == "core.st2.IntervalTimer")
    );

    let triggers = app.get("/v1/triggers").await;
    let triggers = triggers.json.as_array().expect("list");
    let hook = triggers
        .iter()
        .find(|t| t["type"] == "core.st2.webhook")
        .expect("the rule's webhook trigger");
    assert_eq!(hook["parameters"]["url"], "deploy");
    let r = app
        .get(&format!(
            "/v1/triggers/{}",
            hook["ref"].as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(r.json["id"], hook["id"]);

    let rules = app
        .get("/v1/rules/?include_attributes=ref%2Cpack%2Cdescription%2Cenabled&limit=50")
        .await;
    assert_eq!(rules.status, StatusCode::OK);
    assert_eq!(
        rules.json,
        json!([{"id": rules.json[0]["id"], "ref": "demo.on_deploy", "pack": "demo", "description": "Deploy hook", "enabled": true}])
    );
    let rule = app.get("/v1/rules/demo.on_deploy").await;
    assert_eq!(rule.json["trigger"]["type"], "core.st2.webhook");
    assert_eq!(rule.json["action"]["ref"], "core.local");
    assert_eq!(rule.json["uid"], "rule:demo:on_deploy");
    let by_id = app
        .get(&format!(
            "/v1/rules/{}",
            rule.json["id"].as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(by_id.json, rule.json);
    assert_eq!(app.get("/v1/rules?enabled=False").await.json, json!([]));
    assert_eq!(
        app.get("/v1/rules?action=core.local")
            .await
            .json
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

// ---------------------------------------------------------------- executions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn st2_run_core_local_and_read_it_back() {
    let app = App::new().await;
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"core.local\", \"parameters\": {\"cmd\": \"echo hi\"}, \"user\": null}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_owned();
    assert!(matches!(
        r.json["status"].as_str(),
        Some("requested" | "scheduled" | "running" | "succeeded")
    ));
    assert_eq!(r.json["action"]["ref"], "core.local");
    assert_eq!(r.json["action"]["runner_type"], "local-shell-cmd");
    assert_eq!(r.json["context"]["user"], USER);
    assert_eq!(r.json["parameters"]["cmd"], "echo hi");

    let done = app.wait(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["stdout"], "hi");
    assert_eq!(done["result"]["return_code"], 0);
    assert!(
        done["end_timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(done["log"].as_array().is_some_and(|l| l.len() >= 3));
    assert_eq!(done["liveaction"]["action"], "core.local");
    assert!(
        done.get("children").is_none(),
        "falsy attributes are omitted"
    );

    let out = app.get(&format!("/v1/executions/{id}/output")).await;
    assert_eq!(out.text, "hi\n");
    assert!(
        out.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    assert_eq!(
        app.get("/v1/executions/last/output?output_type=stderr")
            .await
            .text,
        ""
    );

    let projected = app
        .get(&format!(
            "/v1/executions/{id}?include_attributes=action.ref%2Cstatus%2Cstatus"
        ))
        .await;
    let keys: Vec<&String> = projected.json.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["id", "action", "status"]);

    let attr = app
        .get(&format!("/v1/executions/{id}/attribute/status"))
        .await;
    assert_eq!(attr.json, "succeeded");
    assert_eq!(app.get("/v1/executions/last").await.json["id"], id);
    assert_eq!(
        app.get("/v1/executions/5f0c0ffee0ddf00dcafe0001")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Cancel a completed one: 200 with a faultstring (the CLI prints it).
    let r = app
        .call("DELETE", &format!("/v1/executions/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.fault(), "Action cannot be canceled. State = succeeded.");
    let r = app
        .call(
            "PUT",
            &format!("/v1/executions/{id}"),
            Some("{\"status\": \"pausing\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fault(), "Execution is already in completed state.");

    // Re-run with a parameter changed.
    let r = app
        .call(
            "POST",
            &format!("/v1/executions/{id}/re_run"),
            Some("{\"parameters\": {\"cmd\": \"echo again\"}, \"tasks\": [], \"reset\": [], \"delay\": 0}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let again = r.json["id"].as_str().expect("id").to_owned();
    assert_eq!(r.json["context"]["re-run"]["ref"], id);
    let done = app.wait(&again).await;
    assert_eq!(done["result"]["stdout"], "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_listed_with_filters_pages_and_headers() {
    let app = App::new().await;
    let mut ids = Vec::new();
    for (action, params) in [
        ("core.local", json!({"cmd": "true"})),
        ("core.local", json!({"cmd": "false"})),
        ("core.noop", json!({})),
    ] {
        let body = json!({"action": action, "parameters": params}).to_string();
        let r = app.call("POST", "/v1/executions", Some(&body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.json["id"].as_str().expect("id").to_owned();
        app.wait(&id).await;
        ids.push(id);
    }
    let r = app
        .get("/v1/executions/?limit=50&parent=null&sort_desc=True&include_attributes=id%2Caction.ref%2Ccontext.user%2Cstatus%2Cstart_timestamp%2Cend_timestamp")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-total-count"), Some("3"));
    assert_eq!(r.header("x-limit"), Some("50"));
    let got: Vec<&str> = r
        .json
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(
        got,
        [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()],
        "newest first"
    );
    assert!(r.json[0].get("result").is_none());
    assert_eq!(r.json[0]["context"]["user"], USER);

    let r = app
        .get("/v1/executions/?limit=5&action=core.local&status=failed")
        .await;
    assert_eq!(r.header("x-total-count"), Some("1"));
    assert_eq!(r.json[0]["id"], ids[1]);
    let r = app
        .get("/v1/executions?sort_asc=True&limit=1&offset=1")
        .await;
    assert_eq!(r.json.as_array().map(Vec::len), Some(1));
    assert_eq!(r.json[0]["id"], ids[1]);
    assert_eq!(r.header("x-total-count"), Some("3"));
    let r = app.get("/v1/executions?exclude_attributes=result").await;
    assert!(
        r.json
            .as_array()
            .expect("list")
            .iter()
            .all(|e| e.get("result").is_none())
    );
    let r = app
        .get(&format!("/v1/executions/{}/children/?depth=-1", ids[0]))
        .await;
    assert_eq!(r.json, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_execution_requests_say_why() {
    let app = App::new().await;
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"core.nope\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fault(), "Action \"core.nope\" cannot be found.");
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"core.local\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.fault().contains("cmd"), "{}", r.fault());
    let r = app.call("POST", "/v1/executions", Some("{}")).await;
    assert_eq!(r.fault(), "'action' is a required property");
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"core.local\", \"parameters\": [1]}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_parameters_are_masked_unless_asked_for() {
    let app = App::new().await;
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"demo.login\", \"parameters\": {\"password\": \"hunter2\"}}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(!r.text.contains("hunter2"), "{}", r.text);
    assert_eq!(r.json["parameters"]["password"], "********");
    let id = r.json["id"].as_str().expect("id").to_owned();
    app.wait(&id).await;
    let r = app.get(&format!("/v1/executions/{id}")).await;
    assert!(!r.text.contains("hunter2"));
    assert_eq!(r.json["liveaction"]["parameters"]["password"], "********");
    let list = app.get("/v1/executions").await;
    assert!(!list.text.contains("hunter2"));
    let r = app
        .get(&format!("/v1/executions/{id}?show_secrets=true"))
        .await;
    assert_eq!(r.json["parameters"]["password"], "hunter2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_execution_is_canceled_by_delete() {
    let app = App::new().await;
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"core.local\", \"parameters\": {\"cmd\": \"echo x\"}, \"delay\": 600000}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["status"], "delayed");
    let id = r.json["id"].as_str().expect("id").to_owned();
    let r = app
        .call("DELETE", &format!("/v1/executions/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        matches!(r.json["status"].as_str(), Some("canceled" | "canceling")),
        "{}",
        r.text
    );
    let done = app.wait(&id).await;
    assert_eq!(done["status"], "canceled");
    // Canceling again returns the execution as it is.
    let r = app
        .call("DELETE", &format!("/v1/executions/{id}"), None)
        .await;
    assert_eq!(r.json["status"], "canceled");
}

// ---------------------------------------------------------------- keys

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_set_get_list_delete_with_scopes_and_secrets() {
    let app = App::new().await;
    let r = app
        .call(
            "PUT",
            "/v1/keys/k",
            Some("{\"name\": \"k\", \"scope\": \"system\", \"user\": null, \"value\": \"v\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["name"], "k");
    assert_eq!(r.json["value"], "v");
    assert_eq!(r.json["scope"], "st2kv.system");
    assert_eq!(r.json["uid"], "key_value_pair:st2kv.system:k");

    let r = app
        .call(
            "PUT",
            "/v1/keys/sk",
            Some("{\"name\": \"sk\", \"scope\": \"system\", \"user\": null, \"value\": \"sv\", \"secret\": true, \"ttl\": 3600}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["secret"], true);
    assert_eq!(r.json["encrypted"], true);
    assert_ne!(r.json["value"], "sv");
    assert!(r.json["expire_timestamp"].is_string());
    let r = app.get("/v1/keys/sk?decrypt=false&scope=system").await;
    let cipher = r.json["value"].as_str().expect("ciphertext");
    assert!(
        cipher.chars().all(|c| c.is_ascii_hexdigit()) && cipher.len() > 32,
        "{cipher}"
    );
    let r = app.get("/v1/keys/sk?decrypt=true&scope=system").await;
    assert_eq!(r.json["value"], "sv");
    assert_eq!(r.json["encrypted"], false);

    let r = app
        .call(
            "PUT",
            "/v1/keys/mine",
            Some("{\"value\": \"u1\", \"scope\": \"user\"}"),
        )
        .await;
    assert_eq!(r.json["scope"], "st2kv.user");
    assert_eq!(r.json["user"], USER);
    assert_eq!(r.json["name"], "mine");
    assert_eq!(
        r.json["uid"],
        format!("key_value_pair:st2kv.user:{USER}:mine")
    );

    let all = app.get("/v1/keys/?decrypt=false&scope=all&limit=50").await;
    let names: Vec<&str> = all
        .json
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(names, ["k", "sk", "mine"]);
    assert!(all.header("x-total-count").is_none());
    let system = app.get("/v1/keys?scope=system").await;
    assert_eq!(system.json.as_array().map(Vec::len), Some(2));
    let prefixed = app
        .get("/v1/keys/?decrypt=false&scope=system&limit=50&prefix=s")
        .await;
    assert_eq!(prefixed.json.as_array().map(Vec::len), Some(1));
    let user = app.get("/v1/keys?scope=user").await;
    assert_eq!(user.json[0]["name"], "mine");
    let r = app.get("/v1/keys/mine?scope=user").await;
    assert_eq!(r.json["value"], "u1");
    assert_eq!(
        app.get("/v1/keys/mine?scope=system").await.status,
        StatusCode::NOT_FOUND
    );
    let r = app.get("/v1/keys/other?scope=user").await;
    assert_eq!(
        r.fault(),
        format!("KeyValuePair with name: {USER}:other and scope: st2kv.user not found in db.")
    );

    let r = app.call("DELETE", "/v1/keys/k?scope=system", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.get("/v1/keys/k?scope=system").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.fault(),
        "KeyValuePair with name: k and scope: st2kv.system not found in db."
    );
    let r = app.call("DELETE", "/v1/keys/k?scope=system", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get("/v1/keys?scope=galaxy").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call("PUT", "/v1/keys/x", Some("{\"name\": \"x\"}"))
        .await;
    assert_eq!(r.fault(), "'value' is a required property");
}

// ---------------------------------------------------------------- webhooks

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_dispatch_triggers_and_rules_run() {
    let app = App::new().await;
    let r = app
        .get("/v1/webhooks?include_attributes=url%2Ctype%2Cdescription")
        .await;
    let hooks = r.json.as_array().expect("list");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["parameters"]["url"], "deploy");
    assert_eq!(hooks[0]["type"], "core.st2.webhook");
    assert_eq!(
        app.get("/v1/webhooks/deploy").await.json["ref"],
        hooks[0]["ref"]
    );
    assert_eq!(
        app.get("/v1/webhooks/other").await.status,
        StatusCode::NOT_FOUND
    );

    // A custom URL webhook: the rule runs core.local with the body's version.
    let t = app.token.clone();
    let r = app
        .send(
            "POST",
            "/v1/webhooks/deploy",
            &[("x-auth-token", &t), ("st2-trace-tag", "release-1.0")],
            Some("{\"version\": \"1.0\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.json, json!({"version": "1.0"}));
    let instances = app.get("/v1/triggerinstances").await;
    let ti = &instances.json[0];
    assert_eq!(ti["payload"]["body"]["version"], "1.0");
    assert_eq!(ti["payload"]["headers"]["Content-Type"], "application/json");
    assert!(ti["payload"]["headers_lower"].get("x-auth-token").is_none());
    assert!(
        ti["payload"]["headers_lower"]
            .get("st2-trace-tag")
            .is_none()
    );
    let ti_id = ti["id"].as_str().expect("id").to_owned();
    let (_, executions) = app
        .engine
        .wait_processed(&ti_id, std::time::Duration::from_secs(20))
        .await
        .expect("processed");
    assert_eq!(executions.len(), 1);
    let done = app.wait(&executions[0]).await;
    assert_eq!(done["result"]["stdout"], "deploying 1.0");
    assert_eq!(done["rule"]["ref"], "demo.on_deploy");
    let r = app.get("/v1/executions?rule=demo.on_deploy").await;
    assert_eq!(r.header("x-total-count"), Some("1"));
    let got = app.get(&format!("/v1/triggerinstances/{ti_id}")).await;
    assert_eq!(got.json["id"], ti_id.as_str());

    // Re-emit (`st2 trigger-instance re-emit` sends a literal `null` body): a new instance of
    // the same trigger, its payload marked with the original, and the rule runs again.
    let r = app
        .send(
            "POST",
            &format!("/v1/triggerinstances/{ti_id}/re_emit"),
            &[("x-auth-token", &t), ("content-type", "application/json")],
            Some("null"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json["message"],
        format!("Trigger instance {ti_id} succesfully re-sent.").as_str()
    );
    assert_eq!(
        r.json["payload"]["__context"]["original_id"],
        ti_id.as_str()
    );
    assert_eq!(r.json["payload"]["body"]["version"], "1.0");
    let instances = app.get("/v1/triggerinstances").await;
    let again = instances
        .json
        .as_array()
        .expect("list")
        .iter()
        .find(|i| i["payload"]["__context"]["original_id"] == ti_id.as_str())
        .expect("the re-emitted instance")
        .clone();
    assert_ne!(again["id"], ti_id.as_str());
    assert_eq!(again["trigger"], ti["trigger"]);
    let (_, executions) = app
        .engine
        .wait_processed(
            again["id"].as_str().expect("id"),
            std::time::Duration::from_secs(20),
        )
        .await
        .expect("processed");
    assert_eq!(executions.len(), 1);
    assert_eq!(
        app.wait(&executions[0]).await["result"]["stdout"],
        "deploying 1.0"
    );
    let r = app
        .send(
            "POST",
            "/v1/triggerinstances/000000000000000000000000/re_send",
            &[("x-auth-token", &t)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    let traces = app
        .store
        .traces()
        .list(
            &st2_core::store::TraceFilter {
                trace_tag: Some("release-1.0".into()),
                ..Default::default()
            },
            st2_core::store::Page::all(),
        )
        .await
        .expect("traces");
    assert_eq!(traces.total, 1, "the trace carries the St2-Trace-Tag");

    // Form bodies are parsed to a dict of lists.
    let r = app
        .send(
            "POST",
            "/v1/webhooks/deploy/",
            &[
                ("x-auth-token", &t),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            Some("version=2&version=3"),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json, json!({"version": ["2", "3"]}));
    let r = app
        .send(
            "POST",
            "/v1/webhooks/deploy",
            &[("x-auth-token", &t), ("content-type", "application/xml")],
            Some("<a/>"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.fault().contains("Unsupported Content-Type"));
    let r = app.call("POST", "/v1/webhooks/nothing", Some("{}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.fault(), "Webhook nothing not registered with st2");

    // The generic webhook: any trigger by ref, payload validated.
    let body = "{\"trigger\": \"core.st2.sensor.process_spawn\", \"payload\": {\"pid\": 7}}";
    let r = app.call("POST", "/v1/webhooks/st2", Some(body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.json["trigger"], "core.st2.sensor.process_spawn");
    let r = app
        .get("/v1/triggerinstances?trigger=core.st2.sensor.process_spawn")
        .await;
    assert_eq!(r.json.as_array().map(Vec::len), Some(1));
    assert_eq!(r.json[0]["payload"], json!({"pid": 7}));
    let r = app
        .call(
            "POST",
            "/v1/webhooks/st2",
            Some("{\"trigger\": \"core.st2.sensor.process_spawn\", \"payload\": \"text\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.fault().starts_with("Trigger payload validation failed"),
        "{}",
        r.fault()
    );
    let r = app
        .call(
            "POST",
            "/v1/webhooks/st2",
            Some("{\"trigger\": \"nope.nothing\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.fault().starts_with("Trigger payload validation failed"),
        "{}",
        r.fault()
    );
    let r = app
        .call("POST", "/v1/webhooks/st2", Some("{\"payload\": {}}"))
        .await;
    assert_eq!(r.fault(), "Trigger not specified.");
    let r = app.call("POST", "/v1/webhooks/st2", Some("[1]")).await;
    assert_eq!(r.fault(), "Webhook body needs to be an object, got: list");
}

// ---------------------------------------------------------------- rule CRUD

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_created_toggled_and_deleted_the_way_the_cli_does_it() {
    let app = App::new().await;
    let body = json!({
        "name": "on_build", "pack": "demo", "description": "Build hook",
        "trigger": {"type": "core.st2.webhook", "parameters": {"url": "build"}},
        "criteria": {"trigger.body.ok": {"type": "equals", "pattern": true}},
        "action": {"ref": "core.local", "parameters": {"cmd": "echo built"}},
    });
    let r = app.call("POST", "/v1/rules", Some(&body.to_string())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["ref"], "demo.on_build");
    assert_eq!(r.json["enabled"], false, "rules default to disabled");
    assert_eq!(r.json["context"]["user"], USER, "the creator is recorded");
    let id = r.json["id"].as_str().expect("id").to_owned();
    let r = app.call("POST", "/v1/rules", Some(&body.to_string())).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json["conflict-id"], id.as_str());

    // `st2 rule enable`: GET by ref, PUT the object back by id without `ref`.
    let mut rule = app.get("/v1/rules/demo.on_build").await.json;
    rule.as_object_mut().expect("object").remove("ref");
    rule["enabled"] = json!(true);
    let r = app
        .call("PUT", &format!("/v1/rules/{id}"), Some(&rule.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["enabled"], true);
    let r = app.get("/v1/webhooks/build").await;
    assert_eq!(r.status, StatusCode::OK, "the new rule's webhook is served");
    let r = app
        .call("POST", "/v1/webhooks/build", Some("{\"ok\": true}"))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // The webhook's instance: the finished action adds an action-trigger instance after it.
    let ti = app
        .get("/v1/triggerinstances?trigger_type=core.st2.webhook&limit=1")
        .await
        .json[0]["id"]
        .as_str()
        .expect("instance")
        .to_owned();
    let (_, started) = app
        .engine
        .wait_processed(&ti, std::time::Duration::from_secs(20))
        .await
        .expect("processed");
    assert_eq!(started.len(), 1);
    assert_eq!(app.wait(&started[0]).await["result"]["stdout"], "built");

    let r = app
        .call("POST", "/v1/rules", Some("{\"name\": \"x\", \"trigger\": {\"type\": \"core.st2.webhook\"}, \"action\": {\"ref\": \"core.noop\"}}"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.fault().contains("parameters"), "{}", r.fault());

    // Deleting a pack's rule and an API rule; both stay deleted after a restart.
    let r = app.call("DELETE", "/v1/rules/demo.on_deploy", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let dir = app.stop().await;
    let app = App::in_dir(dir).await;
    assert_eq!(
        app.get("/v1/rules/demo.on_deploy").await.status,
        StatusCode::NOT_FOUND
    );
    let kept = app.get("/v1/rules/demo.on_build").await;
    assert_eq!(kept.json["enabled"], true, "{}", kept.text);
    let r = app.call("DELETE", &format!("/v1/rules/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/v1/rules/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call("DELETE", &format!("/v1/rules/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/v1/webhooks").await.json, json!([]));
}

// ---------------------------------------------------------------- reactor, read-only

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcements_rule_types_sensor_types_and_timers() {
    let app = App::new().await;
    let r = app
        .call("POST", "/v1/webhooks/deploy", Some("{\"version\": \"9\"}"))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // The webhook's instance: the finished action adds an action-trigger instance after it.
    let ti = app
        .get("/v1/triggerinstances?trigger_type=core.st2.webhook&limit=1")
        .await
        .json[0]["id"]
        .as_str()
        .expect("instance")
        .to_owned();
    let (_, started) = app
        .engine
        .wait_processed(&ti, std::time::Duration::from_secs(20))
        .await
        .expect("processed");
    let r = app.get("/v1/ruleenforcements/?limit=50").await;
    assert_eq!(r.header("x-total-count"), Some("1"));
    let e = &r.json[0];
    assert_eq!(e["rule"]["ref"], "demo.on_deploy");
    assert_eq!(e["trigger_instance_id"], ti.as_str());
    assert_eq!(e["execution_id"], started[0].as_str());
    assert_eq!(e["status"], "succeeded");
    let rule_id = app.get("/v1/rules/demo.on_deploy").await.json["id"].clone();
    assert_eq!(e["rule"]["id"], rule_id);
    let id = e["id"].as_str().expect("id");
    assert_eq!(
        app.get(&format!("/v1/ruleenforcements/{id}")).await.json,
        *e
    );
    assert_eq!(
        app.get(&format!("/v1/ruleenforcements/views/{id}"))
            .await
            .json["id"],
        id
    );
    assert_eq!(
        app.get("/v1/ruleenforcements?rule_ref=other.rule")
            .await
            .json,
        json!([])
    );

    let groups = app.get("/v1/service_registry/groups").await;
    assert_eq!(groups.json, json!({"groups": ["st2d"]}));
    let members = app.get("/v1/service_registry/groups/st2d/members").await;
    assert_eq!(members.json["members"][0]["member_id"], "st2d");
    assert_eq!(
        members.json["members"][0]["capabilities"]["store"],
        "sqlite"
    );
    assert_eq!(
        app.get("/v1/service_registry/groups/nope/members")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let types = app.get("/v1/ruletypes").await;
    assert_eq!(types.json.as_array().map(Vec::len), Some(2));
    assert_eq!(
        app.get("/v1/ruletypes/backstop").await.json["name"],
        "backstop"
    );

    let sensors = app
        .get("/v1/sensortypes?include_attributes=ref%2Cpack%2Cdescription%2Cenabled")
        .await;
    let watcher = sensors
        .json
        .as_array()
        .and_then(|l| l.iter().find(|s| s["ref"] == "demo.Watcher").cloned())
        .expect("the demo sensor");
    assert_eq!(watcher["enabled"], false);
    assert_eq!(watcher["description"], "Watches");
    let full = app.get("/v1/sensortypes/demo.Watcher").await;
    assert_eq!(full.json["trigger_types"], json!(["demo.watched"]));
    assert_eq!(full.json["poll_interval"], 30.0);
    assert_eq!(full.json["uid"], "sensor_type:demo:Watcher");

    assert_eq!(app.get("/v1/timers").await.json, json!([]));
    let body = json!({
        "name": "tick", "pack": "demo", "enabled": false,
        "trigger": {"type": "core.st2.IntervalTimer", "parameters": {"unit": "hours", "delta": 1}},
        "action": {"ref": "core.noop"},
    });
    let r = app.call("POST", "/v1/rules", Some(&body.to_string())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let timers = app
        .get("/v1/timers?timer_type=core.st2.IntervalTimer")
        .await;
    assert_eq!(timers.json[0]["parameters"]["delta"], 1);
    assert_eq!(
        app.get("/v1/timers?timer_type=core.st2.CronTimer")
            .await
            .json,
        json!([])
    );
    let r = app.get("/v1/timers?timer_type=core.st2.Nope").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let timer_ref = timers.json[0]["ref"].as_str().expect("ref").to_owned();
    assert_eq!(
        app.get(&format!("/v1/timers/{timer_ref}")).await.json["type"],
        "core.st2.IntervalTimer"
    );
}

// ---------------------------------------------------------------- pack register

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packs_are_registered_again_from_disk_without_a_restart() {
    let app = App::new().await;
    let body = json!({
        "name": "api_rule", "pack": "demo", "enabled": true,
        "trigger": {"type": "core.st2.webhook", "parameters": {"url": "api"}},
        "action": {"ref": "core.noop"},
    });
    let r = app.call("POST", "/v1/rules", Some(&body.to_string())).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let pack = app.dir.path().join("packs/demo");
    std::fs::write(
        pack.join("actions/hello.yaml"),
        "---\nname: hello\nrunner_type: local-shell-cmd\ndescription: Says hello\nenabled: true\nparameters:\n  cmd:\n    default: echo hello\n",
    )
    .expect("new action");
    assert_eq!(
        app.get("/v1/actions/demo.hello").await.status,
        StatusCode::NOT_FOUND
    );

    let r = app
        .call(
            "POST",
            "/v1/packs/register",
            Some("{\"packs\": [\"demo\"]}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["actions"], 2);
    assert_eq!(r.json["rules"], 1);
    assert_eq!(r.json["sensors"], 1);
    assert_eq!(
        app.get("/v1/actions/demo.hello").await.status,
        StatusCode::OK
    );
    let run = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"demo.hello\"}"),
        )
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{}", run.text);
    let id = run.json["id"].as_str().expect("id").to_owned();
    assert_eq!(app.wait(&id).await["result"]["stdout"], "hello");
    // Rules changed through the API survive a register.
    assert_eq!(
        app.get("/v1/rules/demo.api_rule").await.status,
        StatusCode::OK
    );
    assert_eq!(app.get("/v1/webhooks/api").await.status, StatusCode::OK);

    let r = app
        .call(
            "POST",
            "/v1/packs/register",
            Some("{\"packs\": [\"nope\"]}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.fault().contains("\"nope\""));

    std::fs::write(pack.join("actions/broken.yaml"), "---\nname: [unclosed\n").expect("bad");
    let r = app
        .call(
            "POST",
            "/v1/packs/register",
            Some("{\"packs\": [\"demo\"]}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.fault().contains("broken.yaml"), "{}", r.fault());
    let r = app
        .call(
            "POST",
            "/v1/packs/register",
            Some("{\"packs\": [\"demo\"], \"fail_on_failure\": false}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        app.get("/v1/actions/demo.hello").await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_caller_may_wait_for_the_executions_it_started() {
    let app = App::new().await;
    let r = app
        .call(
            "POST",
            "/v1/webhooks/deploy?wait=true&timeout=20",
            Some("{\"version\": \"7\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json["trigger_instances"].as_array().map(Vec::len),
        Some(1)
    );
    let executions = r.json["executions"].as_array().expect("executions");
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0]["status"], "succeeded");
    assert_eq!(executions[0]["result"]["stdout"], "deploying 7");

    // No rule listens: nothing to wait for.
    let r = app
        .call(
            "POST",
            "/v1/webhooks/st2?wait=true",
            Some("{\"trigger\": \"core.st2.sensor.process_spawn\", \"payload\": {}}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["executions"], json!([]));

    // Time runs out: 504 with what is known so far.
    let body = json!({
        "name": "slow", "pack": "demo", "enabled": true,
        "trigger": {"type": "core.st2.webhook", "parameters": {"url": "slow"}},
        "action": {"ref": "core.local", "parameters": {"cmd": "sleep 3"}},
    });
    let r = app.call("POST", "/v1/rules", Some(&body.to_string())).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .call("POST", "/v1/webhooks/slow?wait=true&timeout=1", Some("{}"))
        .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text);
    assert!(r.fault().starts_with("Timed out after 1 s"));
    let r = app
        .call("POST", "/v1/webhooks/slow?wait=true&timeout=0", Some("{}"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_executions_are_canceled_and_pause_needs_a_runner_that_can() {
    let app = App::new().await;
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"core.local\", \"parameters\": {\"cmd\": \"sleep 30\"}}"),
        )
        .await;
    let id = r.json["id"].as_str().expect("id").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.get(&format!("/v1/executions/{id}")).await.json["status"] != "running" {
        assert!(std::time::Instant::now() < deadline, "never ran");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = app
        .call(
            "PUT",
            &format!("/v1/executions/{id}"),
            Some("{\"status\": \"pausing\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.fault().starts_with("Failed updating execution."),
        "{}",
        r.fault()
    );
    let r = app
        .call(
            "PUT",
            &format!("/v1/executions/{id}"),
            Some("{\"status\": \"bogus\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call("DELETE", &format!("/v1/executions/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        matches!(r.json["status"].as_str(), Some("canceling" | "canceled")),
        "{}",
        r.text
    );
    assert_eq!(app.wait(&id).await["status"], "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_is_paused_and_resumed_through_put() {
    let app = App::new().await;
    let pack = app.dir.path().join("packs/demo");
    std::fs::create_dir_all(pack.join("actions/chains")).expect("dir");
    std::fs::write(
        pack.join("actions/two_steps.yaml"),
        "---\nname: two_steps\nrunner_type: action-chain\nentry_point: chains/two_steps.yaml\nenabled: true\n",
    )
    .expect("action");
    std::fs::write(
        pack.join("actions/chains/two_steps.yaml"),
        "---\nchain:\n  - name: first\n    ref: core.local\n    parameters:\n      cmd: sleep 1\n    on-success: second\n  - name: second\n    ref: core.local\n    parameters:\n      cmd: echo done\n",
    )
    .expect("chain");
    let r = app
        .call(
            "POST",
            "/v1/packs/register",
            Some("{\"packs\": [\"demo\"]}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"demo.two_steps\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.get(&format!("/v1/executions/{id}")).await.json["status"] != "running" {
        assert!(std::time::Instant::now() < deadline, "never ran");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = app
        .call(
            "PUT",
            &format!("/v1/executions/{id}"),
            Some("{\"status\": \"pausing\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        matches!(r.json["status"].as_str(), Some("pausing" | "paused")),
        "{}",
        r.text
    );
    while app.get(&format!("/v1/executions/{id}")).await.json["status"] != "paused" {
        assert!(std::time::Instant::now() < deadline, "never paused");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let children = app
        .get(&format!("/v1/executions/{id}/children/?depth=-1"))
        .await;
    assert_eq!(
        children.json.as_array().map(Vec::len),
        Some(1),
        "{}",
        children.text
    );
    let r = app
        .call(
            "PUT",
            &format!("/v1/executions/{id}"),
            Some("{\"status\": \"resuming\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let done = app.wait(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let children = app.get(&format!("/v1/executions/{id}/children")).await;
    assert_eq!(children.json.as_array().map(Vec::len), Some(2));
    assert_eq!(children.json[1]["result"]["stdout"], "done");
    assert_eq!(children.json[0]["parent"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orquesta_workflow_runs_through_the_api_with_its_children() {
    let app = App::new().await;
    let pack = app.dir.path().join("packs/demo");
    std::fs::create_dir_all(pack.join("actions/workflows")).expect("dir");
    std::fs::write(
        pack.join("actions/flow.yaml"),
        "---\nname: flow\nrunner_type: orquesta\nentry_point: workflows/flow.yaml\nenabled: true\nparameters:\n  who:\n    type: string\n    required: true\n",
    )
    .expect("action");
    std::fs::write(
        pack.join("actions/workflows/flow.yaml"),
        "version: 1.0\ninput:\n  - who\ntasks:\n  greet:\n    action: core.local\n    input:\n      cmd: echo hello <% ctx(who) %>\n    next:\n      - when: <% succeeded() %>\n        publish:\n          - out: <% result().stdout %>\noutput:\n  - greeting: <% ctx(out) %>\n",
    )
    .expect("workflow");
    let r = app
        .call(
            "POST",
            "/v1/packs/register",
            Some("{\"packs\": [\"demo\"]}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"demo.flow\", \"parameters\": {\"who\": \"st2\"}}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["liveaction"]["action_is_workflow"], true);
    let id = r.json["id"].as_str().expect("id").to_owned();
    let done = app.wait(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["output"]["greeting"], "hello st2", "{done}");
    let children = app
        .get(&format!("/v1/executions/{id}/children/?depth=-1"))
        .await;
    let children = children.json.as_array().expect("children");
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["context"]["orquesta"]["task_name"], "greet");
    assert_eq!(children[0]["parent"], id.as_str());
    let top = app.get("/v1/executions?parent=null").await;
    assert!(
        top.json
            .as_array()
            .expect("list")
            .iter()
            .all(|e| e["id"] != children[0]["id"]),
        "parent=null lists top-level executions only"
    );
    // Re-run from a task: the new execution continues the workflow's state from `greet`.
    let r = app
        .call(
            "POST",
            &format!("/v1/executions/{id}/re_run"),
            Some("{\"tasks\": [\"greet\"], \"reset\": []}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["context"]["re-run"]["tasks"], json!(["greet"]));
    let again = r.json["id"].as_str().expect("id").to_owned();
    let done = app.wait(&again).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["output"]["greeting"], "hello st2", "{done}");
    let children = app.get(&format!("/v1/executions/{again}/children")).await;
    assert_eq!(children.json.as_array().expect("children").len(), 1);
    let bad = app
        .call(
            "POST",
            &format!("/v1/executions/{id}/re_run"),
            Some("{\"tasks\": \"greet\"}"),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(bad.fault().contains("tasks"), "{}", bad.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_download_and_entry_points() {
    let app = App::new().await;
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"core.local\", \"parameters\": {\"cmd\": \"echo out\"}}"),
        )
        .await;
    let id = r.json["id"].as_str().expect("id").to_owned();
    app.wait(&id).await;
    let r = app.get(&format!("/v1/executions/{id}/result")).await;
    assert_eq!(r.header("content-type"), Some("text/json"));
    assert_eq!(r.json["stdout"], "out");
    assert!(!r.text.contains('\n'));
    let r = app
        .get(&format!(
            "/v1/executions/{id}/result?download=1&pretty_format=1"
        ))
        .await;
    assert_eq!(
        r.header("content-disposition").map(str::to_owned),
        Some(format!("attachment; filename=execution_{id}_result.json"))
    );
    assert!(r.text.contains("\n  \""), "{}", r.text);
    let r = app
        .get(&format!("/v1/executions/{id}/result?compress=true"))
        .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-type"), Some("application/x-gzip"));

    let pack = app.dir.path().join("packs/demo");
    std::fs::write(pack.join("actions/greet.sh"), "#!/bin/sh\necho greetings\n").expect("script");
    std::fs::write(
        pack.join("actions/greet.yaml"),
        "---\nname: greet\nrunner_type: local-shell-script\nentry_point: greet.sh\nenabled: true\n",
    )
    .expect("action");
    let r = app
        .call(
            "POST",
            "/v1/packs/register",
            Some("{\"packs\": [\"demo\"]}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.get("/v1/actions/views/entry_point/demo.greet").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, "#!/bin/sh\necho greetings\n");
    let r = app.get("/v1/actions/views/entry_point/core.local").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.get("/v1/actions/views/entry_point/demo.nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_never_cause_a_server_error() {
    let app = App::new().await;
    let bodies = [
        "",
        "null",
        "true",
        "42",
        "\"text\"",
        "[]",
        "[1, {}]",
        "{",
        "{\"a\": }",
        "\u{0}\u{1}binary",
        "{\"action\": 5, \"parameters\": \"x\", \"user\": [], \"context\": 3, \"delay\": -1}",
        "{\"status\": 1, \"parameters\": [], \"tasks\": \"x\", \"enabled\": \"yes\"}",
        "{\"value\": {}, \"ttl\": \"soon\", \"secret\": \"yes\", \"scope\": 7, \"user\": 1}",
        "{\"trigger\": {}, \"payload\": 1, \"name\": 2, \"action\": {\"ref\": 3}}",
        "{\"packs\": \"core\", \"metadata\": [], \"token\": 5, \"ttl\": 1e400}",
    ];
    let queries = [
        "",
        "?limit=abc",
        "?limit=-5&offset=-1",
        "?offset=99999999999999999999",
        "?include_attributes=&exclude_attributes=",
        "?decrypt=maybe&scope=%FF",
        "?status=nope&parent=&timestamp_gt=yesterday",
        "?depth=x&output_type=video&sort=-,+",
        "?wait=true&timeout=abc",
    ];
    let id = "5f0c0ffee0ddf00dcafe0001";
    let routes = [
        ("POST", "/v1/executions".to_owned()),
        ("GET", "/v1/executions".to_owned()),
        ("PUT", format!("/v1/executions/{id}")),
        ("DELETE", format!("/v1/executions/{id}")),
        ("POST", format!("/v1/executions/{id}/re_run")),
        ("GET", format!("/v1/executions/{id}/output")),
        ("GET", format!("/v1/executions/{id}/children")),
        ("GET", "/v1/keys".to_owned()),
        ("PUT", "/v1/keys/k".to_owned()),
        ("GET", "/v1/keys/k".to_owned()),
        ("DELETE", "/v1/keys/k".to_owned()),
        ("POST", "/v1/rules".to_owned()),
        ("PUT", "/v1/rules/demo.on_deploy".to_owned()),
        ("POST", "/v1/webhooks/st2".to_owned()),
        ("POST", "/v1/webhooks/deploy".to_owned()),
        ("POST", "/v1/apikeys".to_owned()),
        ("PUT", format!("/v1/apikeys/{id}")),
        ("POST", "/v1/tokens/validate".to_owned()),
        ("POST", "/v1/packs/register".to_owned()),
        ("GET", "/v1/actions".to_owned()),
        ("POST", "/v1/actions".to_owned()),
        ("PUT", "/v1/actions/demo.login".to_owned()),
        ("GET", "/v1/triggerinstances".to_owned()),
        ("GET", "/v1/ruleenforcements".to_owned()),
    ];
    for (method, path) in &routes {
        for query in queries {
            for body in bodies {
                let uri = format!("{path}{query}");
                let r = app.call(method, &uri, Some(body)).await;
                assert!(
                    r.status.as_u16() < 500,
                    "{method} {uri} {body:?}: {} {}",
                    r.status,
                    r.text
                );
                if !r.status.is_success() {
                    assert!(!r.fault().is_empty(), "{method} {uri} {body:?}: {}", r.text);
                }
            }
        }
    }
    // A token request with junk is refused, never a crash.
    for body in bodies {
        let r = app
            .send(
                "POST",
                "/tokens",
                &[("authorization", "Basic Og==")],
                Some(body),
            )
            .await;
        assert!(r.status.as_u16() < 500, "{body:?}: {}", r.text);
    }
}

// ---------------------------------------------------------------- action CRUD

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_created_updated_and_deleted_and_kept_across_restarts() {
    let app = App::new().await;
    let body = json!({
        "name": "shout", "pack": "demo", "runner_type": "local-shell-cmd",
        "description": "Shouts", "enabled": true,
        "parameters": {"cmd": {"default": "echo HEY"}},
    });
    let r = app
        .call("POST", "/v1/actions", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["ref"], "demo.shout");
    assert_eq!(r.json["uid"], "action:demo:shout");
    let id = r.json["id"].as_str().expect("id").to_owned();
    let r = app
        .call("POST", "/v1/actions", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json["conflict-id"], id.as_str());
    let run = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"demo.shout\"}"),
        )
        .await;
    let run_id = run.json["id"].as_str().expect("id").to_owned();
    assert_eq!(app.wait(&run_id).await["result"]["stdout"], "HEY");

    let mut changed = app.get("/v1/actions/demo.shout").await.json;
    changed["description"] = json!("Shouts louder");
    let r = app
        .call(
            "PUT",
            &format!("/v1/actions/{id}"),
            Some(&changed.to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["description"], "Shouts louder");

    let r = app
        .call(
            "POST",
            "/v1/actions",
            Some("{\"name\": \"x\", \"runner_type\": \"nope\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.fault().contains("nope"), "{}", r.fault());
    let r = app
        .call(
            "POST",
            "/v1/actions",
            Some("{\"name\": \"y\", \"runner_type\": \"noop\", \"data_files\": [{\"file_path\": \"a\", \"content\": \"b\"}]}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Deleting a pack's action (the CLI sends a body) and keeping both changes.
    let r = app
        .call(
            "DELETE",
            "/v1/actions/demo.login",
            Some("{\"remove_files\": false}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let dir = app.stop().await;
    let app = App::in_dir(dir).await;
    assert_eq!(
        app.get("/v1/actions/demo.shout").await.json["description"],
        "Shouts louder"
    );
    assert_eq!(
        app.get("/v1/actions/demo.login").await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .call(
            "POST",
            "/v1/packs/register",
            Some("{\"packs\": [\"demo\"]}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.get("/v1/actions/demo.shout").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/actions/demo.login").await.status,
        StatusCode::NOT_FOUND
    );
    let r = app.call("DELETE", &format!("/v1/actions/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/v1/actions/demo.shout").await.status,
        StatusCode::NOT_FOUND
    );
}

/// Start `core.ask` with `parameters` and wait until it is pending; returns its id.
async fn ask(app: &App, parameters: &str) -> String {
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some(&format!(
                "{{\"action\": \"core.ask\", \"parameters\": {parameters}}}"
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.get(&format!("/v1/executions/{id}")).await.json["status"] != "pending" {
        assert!(std::time::Instant::now() < deadline, "never pending");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inquiries_are_listed_shown_and_answered() {
    let app = App::new().await;
    let schema =
        r#"{"type": "object", "properties": {"approved": {"type": "boolean", "required": true}}}"#;
    let first = ask(
        &app,
        &format!(r#"{{"schema": {schema}, "route": "ops", "ttl": 30}}"#),
    )
    .await;
    let second = ask(&app, "{}").await;

    let r = app.get("/v1/inquiries/?limit=50").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("x-total-count"), Some("2"));
    assert_eq!(r.header("x-limit"), Some("50"));
    let ids: Vec<&str> = r
        .json
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, vec![second.as_str(), first.as_str()], "newest first");
    let r = app.get("/v1/inquiries?limit=1&offset=1").await;
    assert_eq!(r.json.as_array().map(Vec::len), Some(1));
    assert_eq!(r.json[0]["id"], first.as_str());
    assert_eq!(r.header("x-total-count"), Some("2"));

    let r = app.get(&format!("/v1/inquiries/{first}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["route"], "ops");
    assert_eq!(r.json["ttl"], 30);
    assert_eq!(r.json["users"], serde_json::json!([]));
    assert_eq!(r.json["roles"], serde_json::json!([]));
    assert_eq!(
        r.json["schema"]["properties"]["approved"]["type"],
        "boolean"
    );
    let keys: Vec<&String> = r.json.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 6, "{}", r.text);
    // The default schema asks whether to continue.
    let r = app.get(&format!("/v1/inquiries/{second}")).await;
    assert_eq!(
        r.json["schema"]["properties"]["continue"]["type"],
        "boolean"
    );

    // A response that does not fit the schema is refused and changes nothing.
    let url = format!("/v1/inquiries/{first}");
    let r = app
        .call(
            "PUT",
            &url,
            Some(&format!(
                r#"{{"id": "{first}", "response": {{"approved": "yes"}}}}"#
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.fault().contains("did not pass schema validation"),
        "{}",
        r.text
    );

    let r = app
        .call(
            "PUT",
            &url,
            Some(&format!(
                r#"{{"id": "{first}", "response": {{"approved": true}}}}"#
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json,
        serde_json::json!({"id": first, "response": {"approved": true}})
    );
    let done = app.wait(&first).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // Answered: gone from the list, and neither shown nor answered again.
    let r = app.get("/v1/inquiries").await;
    assert_eq!(r.header("x-total-count"), Some("1"));
    assert_eq!(r.header("x-limit"), Some("20"));
    assert_eq!(r.json[0]["id"], second.as_str());
    let r = app.get(&url).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.fault(),
        format!("Inquiry \"{first}\" has already been responded to.")
    );
    let r = app
        .call("PUT", &url, Some(r#"{"response": {"approved": true}}"#))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.fault().contains("already been responded to"),
        "{}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inquiry_requests_say_why() {
    let app = App::new().await;
    let missing = "5f0c0ffee0ddf00dcafe0001";
    let r = app.get(&format!("/v1/inquiries/{missing}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.fault(),
        format!("Resource with a reference or id \"{missing}\" not found")
    );
    let r = app
        .call(
            "PUT",
            &format!("/v1/inquiries/{missing}"),
            Some(r#"{"response": {"continue": true}}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    for q in ["limit=0", "limit=x", "offset=-1"] {
        let r = app.get(&format!("/v1/inquiries?{q}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(!r.fault().is_empty());
    }

    // An execution that asks nothing is no inquiry.
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some(r#"{"action": "core.local", "parameters": {"cmd": "true"}}"#),
        )
        .await;
    let run = r.json["id"].as_str().expect("id").to_owned();
    app.wait(&run).await;
    let r = app.get(&format!("/v1/inquiries/{run}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.fault(),
        format!("Action execution \"{run}\" is not an inquiry.")
    );
    let r = app
        .call(
            "PUT",
            &format!("/v1/inquiries/{run}"),
            Some(r#"{"response": {"continue": true}}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let id = ask(&app, r#"{"users": ["bob"]}"#).await;
    let url = format!("/v1/inquiries/{id}");
    for body in ["[1]", "{\"id\": \"x\"}", "{\"response\": 3}", "not json"] {
        let r = app.call("PUT", &url, Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(!r.fault().is_empty(), "{body}");
    }
    // Only bob may answer this one.
    let r = app
        .call("PUT", &url, Some(r#"{"response": {"continue": true}}"#))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(
        r.fault(),
        format!("User \"alice\" does not have permission to respond to inquiry \"{id}\".")
    );
    assert_eq!(app.get(&url).await.status, StatusCode::OK, "still pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_follow_webhooks_rules_and_executions() {
    let app = App::new().await;
    let mut runs = Vec::new();
    for tag in ["first", "second"] {
        let body = json!({"action": "core.local", "parameters": {"cmd": "true"},
            "context": {"trace_context": {"trace_tag": tag}}});
        let r = app
            .call("POST", "/v1/executions", Some(&body.to_string()))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.json["id"].as_str().expect("id").to_owned();
        app.wait(&id).await;
        runs.push(id);
    }
    let r = app
        .send(
            "POST",
            "/v1/webhooks/deploy?wait=true&timeout=20",
            &[("x-auth-token", &app.token), ("st2-trace-tag", "deploy-7")],
            Some("{\"version\": \"7\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let hook_run = r.json["executions"][0]["id"]
        .as_str()
        .expect("run")
        .to_owned();
    let instance = r.json["trigger_instances"][0]
        .as_str()
        .expect("instance")
        .to_owned();

    let r = app.get("/v1/traces/?limit=50&sort_desc=True").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("x-total-count"), Some("3"), "{}", r.text);
    assert_eq!(r.header("x-limit"), Some("50"));
    let tags: Vec<&str> = r
        .json
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["trace_tag"].as_str())
        .collect();
    assert_eq!(tags, vec!["deploy-7", "second", "first"], "newest first");
    let r = app.get("/v1/traces?sort_asc=True&limit=1").await;
    assert_eq!(r.json[0]["trace_tag"], "first");
    assert_eq!(r.header("x-total-count"), Some("3"));
    assert_eq!(
        r.json[0]["action_executions"][0]["object_id"],
        runs[0].as_str()
    );
    assert_eq!(r.json[0]["action_executions"][0]["ref"], "core.local");
    assert_eq!(r.json[0]["action_executions"][0]["caused_by"], json!({}));
    assert_eq!(r.json[0]["rules"], json!([]));

    let r = app.get("/v1/traces?trace_tag=deploy-7").await;
    assert_eq!(r.json.as_array().map(Vec::len), Some(1), "{}", r.text);
    let trace = r.json[0].clone();
    assert_eq!(
        trace["trigger_instances"][0]["object_id"],
        instance.as_str(),
        "{trace}"
    );
    let hook = app.get("/v1/webhooks/deploy").await;
    assert_eq!(
        trace["trigger_instances"][0]["ref"], hook.json["ref"],
        "{trace}"
    );
    assert_eq!(trace["rules"][0]["ref"], "demo.on_deploy", "{trace}");
    assert_eq!(
        trace["action_executions"][0]["object_id"],
        hook_run.as_str()
    );
    assert!(
        trace["start_timestamp"]
            .as_str()
            .expect("time")
            .ends_with('Z')
    );
    let uid = trace["uid"].as_str().expect("uid");
    assert!(
        uid.strip_prefix("trace:")
            .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit())),
        "{uid}"
    );
    let rule_id = trace["rules"][0]["object_id"].as_str().expect("rule id");
    let trace_id = trace["id"].as_str().expect("trace id");
    for q in [
        format!("execution={hook_run}"),
        format!("rule={rule_id}"),
        format!("trigger_instance={instance}"),
    ] {
        let r = app.get(&format!("/v1/traces?{q}")).await;
        assert_eq!(r.header("x-total-count"), Some("1"), "{q}: {}", r.text);
        assert_eq!(r.json[0]["id"], trace_id, "{q}");
    }
    let r = app.get(&format!("/v1/traces?execution={}", runs[1])).await;
    assert_eq!(r.json[0]["trace_tag"], "second");
    let r = app.get("/v1/traces?trace_tag=nothing").await;
    assert_eq!(r.json, json!([]));
    assert_eq!(r.header("x-total-count"), Some("0"));

    let r = app.get(&format!("/v1/traces/{trace_id}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, trace);
    let r = app
        .get(&format!(
            "/v1/traces/{trace_id}?include_attributes=trace_tag"
        ))
        .await;
    assert_eq!(r.json, json!({"id": trace_id, "trace_tag": "deploy-7"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_trace_requests_say_why() {
    let app = App::new().await;
    let missing = "5f0c0ffee0ddf00dcafe0001";
    let r = app.get(&format!("/v1/traces/{missing}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.fault(),
        format!("Resource with a reference or id \"{missing}\" not found")
    );
    for q in [
        "limit=0",
        "limit=-5",
        "offset=x",
        "sort_desc=maybe",
        "sort_asc=2",
        "include_attributes=a&exclude_attributes=b",
    ] {
        let r = app.get(&format!("/v1/traces?{q}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.text);
        assert!(!r.fault().is_empty(), "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_policy_types_are_listed_and_shown() {
    let app = App::new().await;
    let policies = app.dir.path().join("packs/demo/policies");
    std::fs::create_dir_all(&policies).expect("dir");
    std::fs::write(
        policies.join("login_concurrency.yaml"),
        "---\nname: login.concurrency\npack: demo\ndescription: One login at a time.\nenabled: true\nresource_ref: demo.login\npolicy_type: action.concurrency\nparameters:\n  threshold: 1\n",
    )
    .expect("policy");
    std::fs::write(
        policies.join("login_retry.yaml"),
        "---\nname: login.retry\nenabled: false\nresource_ref: demo.login\npolicy_type: action.retry\nparameters:\n  retry_on: failure\n  max_retry_count: 2\n",
    )
    .expect("policy");
    let r = app
        .call(
            "POST",
            "/v1/packs/register",
            Some("{\"packs\": [\"demo\"]}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["policies"], 2, "{}", r.text);

    let r = app.get("/v1/policytypes").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("x-total-count"), Some("3"));
    assert_eq!(r.header("x-limit"), Some("100"));
    let refs: Vec<&str> = r
        .json
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["ref"].as_str())
        .collect();
    assert_eq!(
        refs,
        vec![
            "action.concurrency",
            "action.concurrency.attr",
            "action.retry"
        ]
    );
    let attr = &r.json[1];
    assert_eq!(attr["name"], "concurrency.attr");
    assert_eq!(attr["resource_type"], "action");
    assert_eq!(attr["uid"], "policy_type:action:concurrency.attr");
    assert_eq!(attr["module"], "st2actions.policies.concurrency_by_attr");
    assert_eq!(attr["enabled"], true);
    assert_eq!(attr["parameters"]["threshold"]["type"], "integer");
    let r = app.get("/v1/policytypes?name=retry").await;
    assert_eq!(r.json.as_array().map(Vec::len), Some(1));
    assert_eq!(r.json[0]["module"], "st2actions.policies.retry");
    let r = app
        .get("/v1/policytypes?resource_type=action&limit=1&offset=2")
        .await;
    assert_eq!(r.json[0]["ref"], "action.retry");
    assert_eq!(r.header("x-total-count"), Some("3"));
    let by_ref = app.get("/v1/policytypes/action.concurrency").await;
    assert_eq!(by_ref.status, StatusCode::OK, "{}", by_ref.text);
    let id = by_ref.json["id"].as_str().expect("id");
    assert_eq!(
        app.get(&format!("/v1/policytypes/{id}")).await.json,
        by_ref.json
    );

    let r = app
        .get("/v1/policies/?include_attributes=ref%2Cresource_ref%2Cpolicy_type%2Cenabled")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("x-total-count"), Some("2"));
    assert_eq!(r.json[0]["ref"], "demo.login.concurrency");
    assert_eq!(r.json[0]["policy_type"], "action.concurrency");
    assert_eq!(r.json[0]["resource_ref"], "demo.login");
    assert_eq!(r.json[1]["enabled"], false);
    assert!(r.json[0].get("parameters").is_none(), "{}", r.text);
    assert!(r.json[0]["id"].is_string());
    let r = app.get("/v1/policies?policy_type=action.retry").await;
    assert_eq!(r.json.as_array().map(Vec::len), Some(1), "{}", r.text);
    let retry = &r.json[0];
    assert_eq!(retry["name"], "login.retry");
    assert_eq!(retry["pack"], "demo");
    assert_eq!(retry["uid"], "policy:demo:login.retry");
    assert_eq!(retry["parameters"]["max_retry_count"], 2);
    assert_eq!(retry["metadata_file"], "policies/login_retry.yaml");
    for q in [
        "pack=demo",
        "resource_ref=demo.login",
        "name=login.concurrency",
    ] {
        let r = app.get(&format!("/v1/policies?{q}")).await;
        assert!(r.json.as_array().is_some_and(|l| !l.is_empty()), "{q}");
        assert!(
            r.json
                .as_array()
                .expect("list")
                .iter()
                .all(|p| p["pack"] == "demo"),
            "{q}"
        );
    }
    assert_eq!(app.get("/v1/policies?pack=core").await.json, json!([]));
    let r = app.get("/v1/policies/demo.login.concurrency").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["description"], "One login at a time.");
    assert_eq!(r.json["parameters"]["threshold"], 1);
    let id = r.json["id"].as_str().expect("id");
    assert_eq!(app.get(&format!("/v1/policies/{id}")).await.json, r.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policy_requests_say_why() {
    let app = App::new().await;
    for path in [
        "/v1/policies/demo.nothing",
        "/v1/policytypes/action.nothing",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        let key = path.rsplit('/').next().expect("key");
        assert_eq!(
            r.fault(),
            format!("Resource with a reference or id \"{key}\" not found")
        );
    }
    for path in ["/v1/policies", "/v1/policytypes"] {
        for q in [
            "limit=0",
            "offset=-1",
            "limit=ten",
            "include_attributes=a&exclude_attributes=b",
        ] {
            let r = app.get(&format!("{path}?{q}")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}?{q}: {}", r.text);
            assert!(!r.fault().is_empty());
        }
    }
}

/// One Prometheus sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parse Prometheus text exposition: every line is `# HELP name text`, `# TYPE name kind` or
/// `name{label="value",…} number`; samples follow their family's TYPE line. Returns
/// `(name, labels, value)` per sample.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let metric_name = |s: &str| {
        !s.is_empty()
            && s.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut typed = Vec::new();
    let mut samples = Vec::new();
    assert!(text.ends_with('\n'), "exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(metric_name(name) && !help.is_empty(), "{line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(metric_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.push(name.to_owned());
        } else {
            let (series, value) = line.rsplit_once(' ').expect("sample value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("number in {line}"));
            let (name, labels) = match series.split_once('{') {
                None => (series, Vec::new()),
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("labels close in {line}"));
                    let labels = body
                        .split(',')
                        .map(|pair| {
                            let (k, v) = pair
                                .split_once('=')
                                .unwrap_or_else(|| panic!("label in {line}"));
                            assert!(metric_name(k) && !k.contains(':'), "{line}");
                            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                            let v = v.unwrap_or_else(|| panic!("quoted label value in {line}"));
                            (k.to_owned(), v.to_owned())
                        })
                        .collect();
                    (name, labels)
                }
            };
            assert!(metric_name(name), "{line}");
            assert_eq!(
                typed.last().map(String::as_str),
                Some(name),
                "sample before its TYPE: {line}"
            );
            samples.push((name.to_owned(), labels, value));
        }
    }
    samples
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
        .2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_executions_queues_and_reactor_work() {
    let app = App::new().await;
    let r = app.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let before = parse_exposition(&r.text);
    assert_eq!(
        sample(&before, "st2_executions", &[("status", "succeeded")]),
        0.0
    );
    assert_eq!(sample(&before, "st2_rule_enforcements", &[]), 0.0);
    for queue in ["run", "schedule"] {
        for state in ["ready", "delayed", "leased"] {
            assert_eq!(
                sample(
                    &before,
                    "st2_work_queue_items",
                    &[("queue", queue), ("state", state)]
                ),
                0.0
            );
        }
    }

    let r = app
        .call(
            "POST",
            "/v1/webhooks/deploy?wait=true&timeout=20",
            Some("{\"version\": \"1\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    ask(&app, "{}").await;
    let r = app
        .call("POST", "/v1/executions", Some("{\"action\": \"core.local\", \"parameters\": {\"cmd\": \"true\"}, \"delay\": 60000}"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["status"], "delayed", "{}", r.text);

    let r = app.get("/api/v1/metrics").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after = parse_exposition(&r.text);
    assert_eq!(
        sample(&after, "st2_executions", &[("status", "succeeded")]),
        1.0,
        "{}",
        r.text
    );
    assert_eq!(
        sample(&after, "st2_executions", &[("status", "pending")]),
        1.0
    );
    assert_eq!(
        sample(&after, "st2_executions", &[("status", "delayed")]),
        1.0
    );
    assert_eq!(
        sample(&after, "st2_executions", &[("status", "failed")]),
        0.0
    );
    assert_eq!(
        sample(&after, "st2_inquiries", &[("status", "pending")]),
        1.0
    );
    assert_eq!(sample(&after, "st2_rule_enforcements", &[]), 1.0);
    let delayed: f64 = ["run", "schedule"]
        .iter()
        .map(|q| {
            sample(
                &after,
                "st2_work_queue_items",
                &[("queue", q), ("state", "delayed")],
            )
        })
        .sum();
    assert_eq!(delayed, 1.0, "{}", r.text);
    let instances: f64 = after
        .iter()
        .filter(|(n, _, _)| n == "st2_trigger_instances")
        .map(|s| s.2)
        .sum();
    assert!(instances >= 1.0, "{}", r.text);
    // Counted by the store, so every status is there even at zero.
    let statuses = after
        .iter()
        .filter(|(n, _, _)| n == "st2_executions")
        .count();
    assert_eq!(statuses, 14, "{}", r.text);

    let r = app.send("GET", "/metrics", &[], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let token = app.token.clone();
    let r = app
        .send("GET", &format!("/metrics?x-auth-token={token}"), &[], None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a scraper passes the token as a parameter"
    );
}

#[tokio::test]
async fn sensor_types_are_enabled_and_disabled_and_stay_so() {
    let app = App::new().await;
    let got = app.get("/v1/sensortypes/demo.Watcher").await;
    assert_eq!(got.json["enabled"], false);
    // `st2 sensor enable` sends the sensor type it read with `enabled` set.
    let mut body = got.json.clone();
    body["enabled"] = json!(true);
    let r = app
        .call(
            "PUT",
            "/v1/sensortypes/demo.Watcher",
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["enabled"], true);
    assert_eq!(r.json["ref"], "demo.Watcher");
    let by_id = got.json["id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.get(&format!("/v1/sensortypes/{by_id}")).await.json["enabled"],
        true
    );
    // Bad bodies and unknown sensors.
    let r = app
        .call(
            "PUT",
            "/v1/sensortypes/demo.Watcher",
            Some(r#"{"enabled": "yes"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.fault().contains("enabled"), "{}", r.text);
    let r = app
        .call("PUT", "/v1/sensortypes/demo.Watcher", Some("[1]"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app
        .call(
            "PUT",
            "/v1/sensortypes/demo.Nobody",
            Some(r#"{"enabled": true}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(
        app.get("/v1/sensortypes/demo.Watcher").await.json["enabled"],
        true,
        "a refused change changes nothing"
    );

    // Kept across a restart and a registration from disk; a hand-edited entry of the wrong
    // shape is skipped with a warning, the others still apply.
    let dir = app.stop().await;
    let file = dir.path().join("sensors.json");
    let mut recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("sensors.json")).expect("json");
    recorded["demo.Other"] = json!("yes");
    std::fs::write(&file, recorded.to_string()).expect("write");
    let (overrides, problems) =
        st2d::server::rules_file::sensor_overrides(&file).expect("readable");
    assert_eq!(overrides, [("demo.Watcher".to_owned(), true)]);
    assert!(problems[0].contains("sensor demo.Other"), "{problems:?}");
    let app = App::in_dir(dir).await;
    assert_eq!(
        app.get("/v1/sensortypes/demo.Watcher").await.json["enabled"],
        true
    );
    // StackStorm reads a missing `enabled` as false.
    let r = app
        .call("PUT", "/v1/sensortypes/demo.Watcher", Some("{}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["enabled"], false);
    // Enabled again, then the packs are read from disk (whose file says disabled).
    let r = app
        .call(
            "PUT",
            "/v1/sensortypes/demo.Watcher",
            Some(r#"{"enabled": true}"#),
        )
        .await;
    assert_eq!(r.json["enabled"], true, "{}", r.text);
    let r = app.call("POST", "/v1/packs/register", Some("{}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        app.get("/v1/sensortypes/demo.Watcher").await.json["enabled"],
        true
    );
    let r = app
        .call(
            "PUT",
            "/v1/sensortypes/demo.Watcher",
            Some(r#"{"enabled": false}"#),
        )
        .await;
    assert_eq!(r.json["enabled"], false, "{}", r.text);
    let dir = app.stop().await;
    let app = App::in_dir(dir).await;
    assert_eq!(
        app.get("/v1/sensortypes/demo.Watcher").await.json["enabled"],
        false
    );
}
