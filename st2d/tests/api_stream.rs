//! st2stream over the router: `/v1/stream` with StackStorm's wire format, event filters and
//! end condition, and the live output stream of one execution ending with `EOF`.

mod api;

use std::time::Duration;

use api::App;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Open an SSE request and return its body.
async fn open(app: &App, uri: &str) -> (axum::http::HeaderMap, Body) {
    let request = Request::builder()
        .uri(uri)
        .header("x-auth-token", &app.token)
        .header("accept", "text/event-stream")
        .body(Body::empty())
        .expect("request");
    let response = app.router.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    (headers, response.into_body())
}

/// Read the body until it ends (or `limit` passes); the text read.
async fn read_all(mut body: Body, limit: Duration) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    text.push_str(&String::from_utf8_lossy(data));
                }
            }
            Ok(Some(Err(e))) => panic!("body error: {e}"),
            Ok(None) => return text,
            Err(_) => panic!("the stream did not end within {limit:?}; read so far:\n{text}"),
        }
    }
}

/// The `(event, data)` pairs of an SSE text.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap_or(Value::String(d.into())));
                }
            }
            Some((name?, data?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_execution_events_until_the_end_condition() {
    let app = App::new().await;
    // The execution id is not known before the request: follow the next execution of
    // `core.local` and end at its completion, as `st2 run` watches.
    let created = app
        .call(
            "POST",
            "/v1/executions",
            Some(r#"{"action": "core.local", "parameters": {"cmd": "sleep 1; echo streamed"}}"#),
        )
        .await;
    let id = created.json["id"].as_str().expect("id").to_owned();
    let (headers, body) = open(
        &app,
        &format!(
            "/stream/v1/stream?events=st2.execution__update,st2.execution.output__create\
             &execution_ids={id}&end_event=st2.execution__update&end_execution_id={id}"
        ),
    )
    .await;
    assert_eq!(headers["content-type"], "text/event-stream; charset=UTF-8");
    assert_eq!(headers["x-accel-buffering"], "no");
    let text = read_all(body, Duration::from_secs(20)).await;
    assert!(
        text.starts_with('\n'),
        "the stream opens with a lone newline"
    );
    let got = events(&text);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"st2.execution__update"), "{names:?}");
    assert!(
        !names.contains(&"st2.execution__create"),
        "filtered out: {names:?}"
    );
    let output: Vec<&Value> = got
        .iter()
        .filter(|(n, _)| n == "st2.execution.output__create")
        .map(|(_, d)| d)
        .collect();
    assert!(
        output
            .iter()
            .any(|d| d["data"] == "streamed\n" && d["execution_id"] == Value::String(id.clone())),
        "{text}"
    );
    assert!(output.iter().all(|d| d.get("status").is_none()));
    let (last_name, last) = got.last().expect("events");
    assert_eq!(last_name, "st2.execution__update");
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["id"], Value::String(id.clone()));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ending_at_an_execution_that_already_completed_is_not_left_waiting() {
    let app = App::new().await;
    let created = app
        .call(
            "POST",
            "/v1/executions",
            Some(r#"{"action": "core.local", "parameters": {"cmd": "echo early"}}"#),
        )
        .await;
    let id = created.json["id"].as_str().expect("id").to_owned();
    assert_eq!(app.wait(&id).await["status"], "succeeded");
    // What `st2 pack install` opens after its 202, when the execution was quicker.
    let (_, body) = open(
        &app,
        &format!(
            "/stream/v1/stream?events=st2.execution__create%2Cst2.execution__update\
             &end_event=st2.execution__update&end_execution_id={id}"
        ),
    )
    .await;
    let got = events(&read_all(body, Duration::from_secs(10)).await);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "st2.execution__update");
    assert_eq!(got[0].1["id"], Value::String(id.clone()));
    assert_eq!(got[0].1["status"], "succeeded");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_output_streams_stored_and_live_chunks_then_eof() {
    let app = App::new().await;
    let created = app
        .call(
            "POST",
            "/v1/executions",
            Some(r#"{"action": "core.local", "parameters": {"cmd": "echo one; sleep 0.5; echo two"}}"#),
        )
        .await;
    let id = created.json["id"].as_str().expect("id").to_owned();
    let (_, body) = open(&app, &format!("/stream/v1/executions/{id}/output")).await;
    let text = read_all(body, Duration::from_secs(20)).await;
    let got = events(&text);
    let data: Vec<&str> = got
        .iter()
        .filter(|(n, _)| n == "st2.execution.output__create")
        .filter_map(|(_, d)| d["data"].as_str())
        .collect();
    assert_eq!(data.concat(), "one\ntwo\n", "{text}");
    assert!(text.ends_with("event: EOF\ndata: ''\n\n"), "{text}");

    // Finished already: the stored output, then EOF at once. Without the SSE Accept header
    // the same path answers plain text.
    let (_, body) = open(
        &app,
        &format!("/v1/executions/{id}/output?output_type=stdout"),
    )
    .await;
    let again = read_all(body, Duration::from_secs(5)).await;
    assert!(again.contains("\"data\":\"one\\n\""), "{again}");
    assert!(again.ends_with("event: EOF\ndata: ''\n\n"));
    let plain = app.get(&format!("/v1/executions/{id}/output")).await;
    assert_eq!(plain.text, "one\ntwo\n");

    // Without credentials: 401 like every route.
    let denied = app
        .send(
            "GET",
            "/v1/stream",
            &[("accept", "text/event-stream")],
            None,
        )
        .await;
    assert_eq!(denied.status, 401);
    app.stop().await;
}
