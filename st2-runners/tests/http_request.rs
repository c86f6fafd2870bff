//! Contract: `http-request` sends what StackStorm's HTTP runner sends (method default, query,
//! headers, cookies, basic auth, JSON bodies re-serialised, files as multipart), returns
//! `{status_code, body, parsed, headers}`, succeeds only for 200–206, follows redirects only
//! when allowed, ends `timeout` and `canceled` promptly, verifies TLS certificates unless told
//! not to, uses the proxies it is given, honours host block/allow lists (redirect targets
//! included), and reports bad parameters and unreachable hosts as clear errors, also through a
//! real engine.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Packs;
use common::http_server::TestServer;
use serde_json::{Map, Value, json};
use st2_core::engine::{Engine, EngineSettings};
use st2_core::runner::{Cancellation, RunOutcome, Runner, RunnerError, RunnerRegistry};
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionStatus, Store};
use st2_runners::HttpRequestRunner;
use st2_runners::http::USER_AGENT;

/// The runner and the packs `core.http` comes from, loaded once per test.
struct Harness {
    packs: Packs,
    runner: HttpRequestRunner,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            packs: Packs::load(),
            runner: HttpRequestRunner::new(),
        }
    }

    /// Run `core.http` with these runner and action parameters.
    async fn run(
        &self,
        runner_parameters: Value,
        parameters: Value,
    ) -> Result<RunOutcome, RunnerError> {
        let (ctx, _) = self
            .packs
            .context("core.http", runner_parameters, parameters);
        self.runner.run(ctx).await
    }

    async fn ok(&self, runner_parameters: Value, parameters: Value) -> RunOutcome {
        self.run(runner_parameters, parameters)
            .await
            .expect("the runner runs")
    }
}

/// What `/echo` saw.
fn echoed(outcome: &RunOutcome) -> &Value {
    assert_eq!(outcome.result["parsed"], json!(true), "{}", outcome.result);
    &outcome.result["body"]
}

fn parameter_error(result: Result<RunOutcome, RunnerError>) -> (String, String) {
    match result {
        Err(RunnerError::Parameter { name, message }) => (name, message),
        other => panic!("expected a parameter error, got {other:?}"),
    }
}

#[tokio::test]
async fn get_returns_stackstorm_result_shape() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    let outcome = runner
        .ok(json!({"url": server.url("/text")}), json!({}))
        .await;
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    let result = outcome.result.as_object().expect("an object");
    assert_eq!(
        result.keys().collect::<Vec<_>>(),
        ["status_code", "body", "parsed", "headers"]
    );
    assert_eq!(result["status_code"], json!(200));
    assert_eq!(result["body"], json!("hello"));
    assert_eq!(result["parsed"], json!(false));
    assert_eq!(result["headers"]["Content-Type"], json!("text/plain"));
    assert_eq!(result["headers"]["Content-Length"], json!("5"));
    assert_eq!(result["headers"]["X-Multi"], json!("a, b"));
}

#[tokio::test]
async fn json_responses_are_parsed_and_bad_json_stays_text() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    let outcome = runner
        .ok(json!({"url": server.url("/ok")}), json!({}))
        .await;
    assert_eq!(outcome.result["body"], json!({"ok": true}));
    assert_eq!(outcome.result["parsed"], json!(true));

    let outcome = runner
        .ok(json!({"url": server.url("/bad-json")}), json!({}))
        .await;
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    assert_eq!(outcome.result["body"], json!("not json"));
    assert_eq!(outcome.result["parsed"], json!(false));
}

#[tokio::test]
async fn method_defaults_to_get_or_post_and_identifies_st2() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    let outcome = runner
        .ok(json!({"url": server.url("/echo")}), json!({}))
        .await;
    let echo = echoed(&outcome);
    assert_eq!(echo["method"], json!("GET"));
    assert_eq!(echo["body"], json!(""));
    assert_eq!(echo["headers"]["user-agent"], json!(USER_AGENT));
    assert_eq!(
        echo["headers"]["user-agent"],
        json!(format!("st2/v{}", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(echo["headers"]["x-stanley-action"], json!("http"));

    let outcome = runner
        .ok(
            json!({"url": server.url("/echo")}),
            json!({"body": "žluťoučký"}),
        )
        .await;
    let echo = echoed(&outcome);
    assert_eq!(echo["method"], json!("POST"));
    assert_eq!(echo["body"], json!("žluťoučký"));
    assert_eq!(
        echo["headers"]["content-length"],
        json!("žluťoučký".len().to_string())
    );

    let outcome = runner
        .ok(
            json!({"url": server.url("/echo")}),
            json!({"body": "x", "method": "put"}),
        )
        .await;
    assert_eq!(echoed(&outcome)["method"], json!("PUT"));

    // A Content-Length given in `headers` is replaced by the real one; a huge timeout is fine.
    let outcome = runner
        .ok(
            json!({"url": server.url("/echo"), "headers": {"Content-Length": "999"}}),
            json!({"body": "abc", "timeout": 1e12}),
        )
        .await;
    let echo = echoed(&outcome);
    assert_eq!(echo["headers"]["content-length"], json!("3"));
    assert_eq!(echo["body"], json!("abc"));
}

#[tokio::test]
async fn json_bodies_are_parsed_and_reserialised() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    let json_headers =
        json!({"url": server.url("/echo"), "headers": {"Content-Type": "application/json"}});
    let outcome = runner
        .ok(
            json_headers.clone(),
            json!({"body": "{\"b\": 1,\n  \"a\": [1, 2.5, \"x\"]}"}),
        )
        .await;
    let echo = echoed(&outcome);
    assert_eq!(echo["method"], json!("POST"));
    assert_eq!(echo["body"], json!(r#"{"b":1,"a":[1,2.5,"x"]}"#));
    assert_eq!(echo["headers"]["content-type"], json!("application/json"));

    // A Python literal is accepted too, as StackStorm's `ast.literal_eval` fallback does.
    let outcome = runner
        .ok(
            json_headers.clone(),
            json!({"body": "{'a': True, 'b': None, 'c': (1, 'x')}"}),
        )
        .await;
    assert_eq!(
        echoed(&outcome)["body"],
        json!(r#"{"a":true,"b":null,"c":[1,"x"]}"#)
    );

    // An object body (an action declaring `body` as an object) is serialised.
    let outcome = runner
        .ok(
            json_headers.clone(),
            json!({"body": {"k": [1, {"z": null}]}}),
        )
        .await;
    assert_eq!(echoed(&outcome)["body"], json!(r#"{"k":[1,{"z":null}]}"#));

    let (name, message) =
        parameter_error(runner.run(json_headers, json!({"body": "{not json"})).await);
    assert_eq!(name, "body");
    assert!(
        message.contains("neither JSON nor a Python literal"),
        "{message}"
    );
}

#[tokio::test]
async fn query_parameters_are_appended_to_the_url_query() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    let outcome = runner
        .ok(
            json!({"url": server.url("/echo?x=1")}),
            json!({"params": {"a": "b c&d", "n": [1, 2], "t": true, "none": null}}),
        )
        .await;
    assert_eq!(
        echoed(&outcome)["query"],
        json!("x=1&a=b+c%26d&n=1&n=2&t=True")
    );
}

#[tokio::test]
async fn headers_cookies_and_basic_auth_reach_the_server() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    let outcome = runner.ok(json!({
            "url": server.url("/echo"),
            "headers": {"X-Custom": "value 1", "Accept": "text/plain", "X-Number": 7, "User-Agent": "mine"},
            "cookies": {"session": "abc", "n": 1},
            "username": "misspiggy",
            "password": "kermit",
        }),
        json!({}),
    )
    .await;
    let headers = &echoed(&outcome)["headers"];
    assert_eq!(headers["x-custom"], json!("value 1"));
    assert_eq!(headers["accept"], json!("text/plain"));
    assert_eq!(headers["x-number"], json!("7"));
    // StackStorm's User-Agent replaces the one given.
    assert_eq!(headers["user-agent"], json!(USER_AGENT));
    assert_eq!(headers["cookie"], json!("session=abc; n=1"));
    assert_eq!(
        headers["authorization"],
        json!("Basic bWlzc3BpZ2d5Omtlcm1pdA==")
    );

    // The `auth` action parameter as [username, password].
    let outcome = runner
        .ok(
            json!({"url": server.url("/echo")}),
            json!({"auth": ["misspiggy", "kermit"]}),
        )
        .await;
    assert_eq!(
        echoed(&outcome)["headers"]["authorization"],
        json!("Basic bWlzc3BpZ2d5Omtlcm1pdA==")
    );

    // An explicit Cookie header wins over `cookies`.
    let outcome = runner.ok(json!({"url": server.url("/echo"), "headers": {"Cookie": "mine=1"}, "cookies": {"a": "b"}}),
        json!({}),
    )
    .await;
    assert_eq!(echoed(&outcome)["headers"]["cookie"], json!("mine=1"));
}

#[tokio::test]
async fn form_bodies_and_file_uploads() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    let outcome = runner
        .ok(
            json!({"url": server.url("/echo")}),
            json!({"body": {"a": "1 2", "b": ["x", "y"]}}),
        )
        .await;
    let echo = echoed(&outcome);
    assert_eq!(echo["method"], json!("POST"));
    assert_eq!(echo["body"], json!("a=1+2&b=x&b=y"));
    assert_eq!(
        echo["headers"]["content-type"],
        json!("application/x-www-form-urlencoded")
    );

    let outcome = runner.ok(json!({"url": server.url("/echo")}),
        json!({"file_name": "notes.txt", "file_content": "line 1\nline 2", "file_content_type": "text/plain"}),
    )
    .await;
    let echo = echoed(&outcome);
    assert_eq!(echo["method"], json!("POST"));
    let content_type = echo["headers"]["content-type"]
        .as_str()
        .expect("a content type");
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("multipart");
    assert_eq!(
        echo["body"],
        json!(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"notes.txt\"; \
             filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\nline 1\nline 2\r\n\
             --{boundary}--\r\n"
        ))
    );
}

#[tokio::test]
async fn only_200_to_206_succeed() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    for (code, status) in [
        (200, ExecutionStatus::Succeeded),
        (201, ExecutionStatus::Succeeded),
        (204, ExecutionStatus::Succeeded),
        (206, ExecutionStatus::Succeeded),
        (207, ExecutionStatus::Failed),
        (304, ExecutionStatus::Failed),
        (404, ExecutionStatus::Failed),
        (500, ExecutionStatus::Failed),
    ] {
        let outcome = runner
            .ok(
                json!({"url": server.url(&format!("/status/{code}"))}),
                json!({}),
            )
            .await;
        assert_eq!(outcome.status, status, "status {code}");
        assert_eq!(outcome.result["status_code"], json!(code));
    }
}

#[tokio::test]
async fn redirects_are_followed_only_when_allowed() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    let outcome = runner
        .ok(json!({"url": server.url("/redirect")}), json!({}))
        .await;
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert_eq!(outcome.result["status_code"], json!(302));
    assert_eq!(outcome.result["headers"]["Location"], json!("/echo"));
    assert_eq!(outcome.result["body"], json!("moved"));

    let outcome = runner
        .ok(
            json!({"url": server.url("/redirect"), "allow_redirects": true}),
            json!({}),
        )
        .await;
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    assert_eq!(echoed(&outcome)["path"], json!("/echo"));
}

#[tokio::test]
async fn a_slow_server_ends_timeout_within_the_timeout() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    let started = Instant::now();
    let outcome = runner
        .ok(json!({"url": server.url("/slow")}), json!({"timeout": 0.3}))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(outcome.status, ExecutionStatus::Timeout);
    let error = outcome.result["error"].as_str().expect("an error");
    assert!(error.contains("within 0.3 seconds"), "{error}");
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(outcome.result.as_object().map(Map::len), Some(1));
}

#[tokio::test]
async fn an_unreachable_port_fails_with_a_message() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let url = format!("http://{addr}/x");
    let runner = Harness::new();
    let outcome = runner.ok(json!({"url": url}), json!({})).await;
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    let error = outcome.result["error"].as_str().expect("an error");
    assert!(
        error.starts_with(&format!("Could not connect to \"{url}\"")),
        "{error}"
    );
    assert!(error.to_lowercase().contains("refused"), "{error}");
    assert!(
        !outcome.result["traceback"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{}",
        outcome.result
    );
}

#[tokio::test]
async fn self_signed_certificates_fail_unless_verification_is_off() {
    let server = TestServer::https().await;
    let runner = Harness::new();
    let outcome = runner
        .ok(json!({"url": server.url("/echo")}), json!({}))
        .await;
    assert_eq!(
        outcome.status,
        ExecutionStatus::Failed,
        "{}",
        outcome.result
    );
    let error = outcome.result["error"].as_str().expect("an error");
    assert!(error.starts_with("TLS handshake with"), "{error}");
    assert!(error.contains("certificate"), "{error}");
    assert!(error.contains("verify_ssl_cert"), "{error}");
    assert_eq!(server.hits(), 0);

    let outcome = runner
        .ok(
            json!({"url": server.url("/echo"), "verify_ssl_cert": false}),
            json!({"body": "secret"}),
        )
        .await;
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    assert_eq!(echoed(&outcome)["body"], json!("secret"));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn host_block_and_allow_lists() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    let url = server.url("/ok");

    let outcome = runner
        .ok(
            json!({"url": url, "url_hosts_blacklist": ["example.com", "127.0.0.1"]}),
            json!({}),
        )
        .await;
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert_eq!(
        outcome.result,
        json!({"error": format!("URL \"{url}\" is blacklisted"), "traceback": ""})
    );
    assert_eq!(server.hits(), 0, "a blocked request is not sent");

    let outcome = runner
        .ok(
            json!({"url": url, "url_hosts_whitelist": ["example.com", "::1"]}),
            json!({}),
        )
        .await;
    assert_eq!(
        outcome.result["error"],
        json!(format!("URL \"{url}\" is not whitelisted"))
    );
    assert_eq!(server.hits(), 0);

    let outcome = runner
        .ok(
            json!({"url": url, "url_hosts_blacklist": ["example.com", "::1"]}),
            json!({}),
        )
        .await;
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    let outcome = runner
        .ok(
            json!({"url": url, "url_hosts_whitelist": ["127.0.0.1"]}),
            json!({}),
        )
        .await;
    assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    assert_eq!(server.hits(), 2);

    let (name, message) = parameter_error(
        runner
            .run(
                json!({"url": url, "url_hosts_blacklist": ["a"], "url_hosts_whitelist": ["b"]}),
                json!({}),
            )
            .await,
    );
    assert_eq!(name, "url_hosts_blacklist");
    assert!(message.contains("mutually exclusive"), "{message}");
}

#[tokio::test]
async fn redirects_must_pass_the_host_lists_too() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    let target = format!("http://localhost:{}/echo", server.addr.port());
    let url = server.url(&format!("/redirect-to?{target}"));

    let outcome = runner
        .ok(
            json!({"url": url, "allow_redirects": true, "url_hosts_blacklist": ["LocalHost"]}),
            json!({}),
        )
        .await;
    assert_eq!(
        outcome.status,
        ExecutionStatus::Failed,
        "{}",
        outcome.result
    );
    let error = outcome.result["error"].as_str().expect("an error");
    assert!(
        error.contains(&format!("redirected: URL \"{target}\" is blacklisted")),
        "{error}"
    );
    assert_eq!(server.hits(), 1, "the redirect target is not requested");

    let outcome = runner
        .ok(
            json!({"url": url, "allow_redirects": true, "url_hosts_whitelist": ["127.0.0.1"]}),
            json!({}),
        )
        .await;
    let error = outcome.result["error"].as_str().expect("an error");
    assert!(error.contains("is not whitelisted"), "{error}");
    assert_eq!(server.hits(), 2);

    let outcome = runner.ok(json!({"url": url, "allow_redirects": true, "url_hosts_whitelist": ["127.0.0.1", "localhost"]}),
        json!({}),
    )
    .await;
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    assert_eq!(echoed(&outcome)["path"], json!("/echo"));
}

#[tokio::test]
async fn http_proxy_carries_http_requests_only() {
    let proxy = TestServer::http().await;
    let runner = Harness::new();
    // The "proxy" (our echo server) receives the request for a host that does not exist.
    let outcome = runner
        .ok(
            json!({"url": "http://st2-proxy-test.invalid/echo?a=1", "http_proxy": proxy.url("")}),
            json!({}),
        )
        .await;
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    let echo = echoed(&outcome);
    assert_eq!(echo["headers"]["host"], json!("st2-proxy-test.invalid"));
    assert_eq!(echo["query"], json!("a=1"));
    assert_eq!(proxy.hits(), 1);

    // `https_proxy` is not used for an http URL.
    let server = TestServer::http().await;
    let outcome = runner
        .ok(
            json!({"url": server.url("/ok"), "https_proxy": "http://127.0.0.1:9"}),
            json!({}),
        )
        .await;
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{}",
        outcome.result
    );
    assert_eq!(proxy.hits(), 1);
}

#[tokio::test]
async fn cancellation_ends_the_request_canceled() {
    let server = TestServer::http().await;
    let runner = HttpRequestRunner::new();
    let packs = Packs::load();
    let (mut ctx, _) = packs.context("core.http", json!({"url": server.url("/slow")}), json!({}));
    let (canceller, cancel) = Cancellation::new();
    ctx.cancel = cancel;
    let started = Instant::now();
    let task = tokio::spawn(async move { runner.run(ctx).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    canceller.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("ends promptly")
        .expect("no panic")
        .expect("runs");
    assert_eq!(outcome.status, ExecutionStatus::Canceled);
    assert!(
        outcome.result["error"]
            .as_str()
            .is_some_and(|e| e.contains("canceled"))
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn connections_are_reused_across_executions() {
    let server = TestServer::http().await;
    let runner = Harness::new();
    for _ in 0..5 {
        let outcome = runner
            .ok(json!({"url": server.url("/ok")}), json!({}))
            .await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded);
    }
    assert_eq!(server.hits(), 5);
    assert_eq!(server.connections(), 1);
    assert_eq!(
        format!("{:?}", runner.runner),
        "HttpRequestRunner { clients: 1, .. }"
    );
}

#[tokio::test]
async fn wrong_parameter_types_are_named_errors() {
    let runner = Harness::new();
    let url = "http://127.0.0.1:9/";
    let cases = [
        (json!({}), json!({}), "url"),
        (json!({"url": 5}), json!({}), "url"),
        (json!({"url": "not a url"}), json!({}), "url"),
        (json!({"url": "ftp://example.com/"}), json!({}), "url"),
        (json!({"url": url, "headers": "x"}), json!({}), "headers"),
        (
            json!({"url": url, "headers": {"a b": "x"}}),
            json!({}),
            "headers",
        ),
        (
            json!({"url": url, "headers": {"x": "a\nb"}}),
            json!({}),
            "headers",
        ),
        (
            json!({"url": url, "headers": {"x": [1]}}),
            json!({}),
            "headers",
        ),
        (json!({"url": url, "cookies": [1]}), json!({}), "cookies"),
        (
            json!({"url": url, "verify_ssl_cert": "yes"}),
            json!({}),
            "verify_ssl_cert",
        ),
        (
            json!({"url": url, "allow_redirects": 1}),
            json!({}),
            "allow_redirects",
        ),
        (
            json!({"url": url, "url_hosts_blacklist": "h"}),
            json!({}),
            "url_hosts_blacklist",
        ),
        (
            json!({"url": url, "url_hosts_whitelist": [1]}),
            json!({}),
            "url_hosts_whitelist",
        ),
        (json!({"url": url, "username": 1}), json!({}), "username"),
        (json!({"url": url}), json!({"params": 5}), "params"),
        (
            json!({"url": url}),
            json!({"params": {"a": {"b": 1}}}),
            "params",
        ),
        (json!({"url": url}), json!({"timeout": "soon"}), "timeout"),
        (json!({"url": url}), json!({"timeout": 0}), "timeout"),
        (json!({"url": url}), json!({"timeout": -1}), "timeout"),
        (json!({"url": url}), json!({"timeout": 1e300}), "timeout"),
        (json!({"url": url}), json!({"method": "GE T"}), "method"),
        (json!({"url": url}), json!({"method": 1}), "method"),
        (json!({"url": url}), json!({"body": [1, 2]}), "body"),
        (
            json!({"url": url}),
            json!({"auth": "x-auth-token=XYZ"}),
            "auth",
        ),
        (json!({"url": url}), json!({"auth": ["only-user"]}), "auth"),
        (json!({"url": url}), json!({"file_name": 1}), "file_name"),
        (
            json!({"url": url}),
            json!({"body": "text", "file_name": "a", "file_content": "b"}),
            "body",
        ),
    ];
    for (runner_parameters, parameters, expected) in cases {
        let result = runner
            .run(runner_parameters.clone(), parameters.clone())
            .await;
        let (name, message) = parameter_error(result);
        assert_eq!(
            name, expected,
            "{runner_parameters} {parameters}: {message}"
        );
        assert!(!message.is_empty());
    }
    // A bad proxy URL is reported when the client is built.
    let (name, _) = parameter_error(
        runner
            .run(
                json!({"url": url, "http_proxy": "::not a proxy::"}),
                json!({}),
            )
            .await,
    );
    assert_eq!(name, "http_proxy");
}

#[tokio::test]
async fn secrets_stay_out_of_messages() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let runner = Harness::new();
    let outcome = runner
        .ok(
            json!({"url": format!("http://user:hunter2@{addr}/"), "password": "kermit"}),
            json!({}),
        )
        .await;
    let text = outcome.result.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("kermit"), "{text}");
    assert!(text.contains("user:********@"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_execution_stores_the_response() {
    let server = TestServer::http().await;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    );
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners).expect("register");
    let engine = Engine::builder()
        .store(store)
        .pack_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine/httptest"))
        .runners(runners)
        .settings(EngineSettings {
            heartbeat: Duration::from_millis(200),
            idle_poll: Duration::from_millis(100),
            ..EngineSettings::default()
        })
        .start()
        .await
        .expect("engine starts");

    let params = |v: Value| v.as_object().cloned().unwrap_or_default();
    let execution = engine
        .run(
            "httptest.post_json",
            params(json!({"url": server.url("/echo"), "body": "{\"n\": 1}", "tag": "abc"})),
            Map::new(),
        )
        .await
        .expect("run");
    let done = engine
        .wait(&execution.id, Duration::from_secs(30))
        .await
        .expect("done");
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{}", done.result);
    assert_eq!(done.result["status_code"], json!(200));
    assert_eq!(done.result["parsed"], json!(true));
    let echo = &done.result["body"];
    assert_eq!(echo["method"], json!("POST"));
    assert_eq!(echo["body"], json!(r#"{"n":1}"#));
    assert_eq!(echo["query"], json!("tag=abc"));
    assert_eq!(echo["headers"]["x-stanley-action"], json!("post_json"));
    assert_eq!(echo["headers"]["content-type"], json!("application/json"));

    // A status outside 200–206 fails the execution with the response as its result.
    let execution = engine
        .run(
            "httptest.post_json",
            params(json!({"url": server.url("/status/503"), "body": "{}", "tag": "x"})),
            Map::new(),
        )
        .await
        .expect("run");
    let done = engine
        .wait(&execution.id, Duration::from_secs(30))
        .await
        .expect("done");
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(done.result["status_code"], json!(503));
    assert_eq!(done.result["body"], json!("status 503"));
}
