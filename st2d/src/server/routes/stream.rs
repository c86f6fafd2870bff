//! st2stream: the event stream (`GET /v1/stream`) and the live output of one execution
//! (`GET /v1/executions/{id}/output` with `Accept: text/event-stream`), as Server-Sent Events
//! in StackStorm's wire format: a lone `\n` at once, then `event: <name>\ndata: <json>\n\n`
//! per event, and a bare `\n` after every `heartbeat` without events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};
use st2_core::engine::EngineEvent;
use st2_core::engine::snapshot::isotime;
use st2_core::store::{ExecutionRecord, NewOutput, OutputType};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::server::error::{ApiError, ApiResult};
use crate::server::query::Params;
use crate::server::{ApiState, present};

/// Events sent when the client names none (output and alias events must be asked for).
const DEFAULT_EVENTS: [&str; 7] = [
    "st2.announcement__*",
    "st2.execution__create",
    "st2.execution__update",
    "st2.execution__delete",
    "st2.liveaction__create",
    "st2.liveaction__update",
    "st2.liveaction__delete",
];

/// Seconds without events before a keep-alive line.
const HEARTBEAT: Duration = Duration::from_secs(25);

/// `fnmatch` as StackStorm's stream filter uses it: `*`, `?` and `[…]` classes. Memoised on
/// (pattern position, text position), so a pattern full of `*` from a client stays
/// O(pattern × text) instead of exponential.
fn fnmatch(pattern: &str, text: &str) -> bool {
    fn class_end(p: &[char], at: usize) -> Option<usize> {
        p.iter()
            .skip(at + 2)
            .position(|&c| c == ']')
            .map(|i| i + at + 2)
    }
    fn in_class(class: &[char], c: char) -> bool {
        let (negate, class) = match class.first() {
            Some('!') => (true, &class[1..]),
            _ => (false, class),
        };
        let mut hit = false;
        let mut i = 0;
        while i < class.len() {
            if i + 2 < class.len() && class[i + 1] == '-' {
                hit |= class[i] <= c && c <= class[i + 2];
                i += 3;
            } else {
                hit |= class[i] == c;
                i += 1;
            }
        }
        hit != negate
    }
    fn go(p: &[char], t: &[char], pi: usize, ti: usize, memo: &mut [Option<bool>]) -> bool {
        let slot = pi * (t.len() + 1) + ti;
        if let Some(known) = memo[slot] {
            return known;
        }
        let matched = match p.get(pi) {
            None => ti == t.len(),
            Some('*') => (ti..=t.len()).any(|k| go(p, t, pi + 1, k, memo)),
            Some('?') => ti < t.len() && go(p, t, pi + 1, ti + 1, memo),
            Some('[') => match class_end(p, pi) {
                Some(end) => {
                    ti < t.len()
                        && in_class(&p[pi + 1..end], t[ti])
                        && go(p, t, end + 1, ti + 1, memo)
                }
                None => t.get(ti) == Some(&'[') && go(p, t, pi + 1, ti + 1, memo),
            },
            Some(&c) => t.get(ti) == Some(&c) && go(p, t, pi + 1, ti + 1, memo),
        };
        memo[slot] = Some(matched);
        matched
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let mut memo = vec![None; (p.len() + 1) * (t.len() + 1)];
    go(&p, &t, 0, 0, &mut memo)
}

fn list(params: &Params, key: &str) -> Vec<String> {
    params
        .get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// What one `/v1/stream` client asked for.
#[derive(Debug, Clone)]
struct Filter {
    events: Vec<String>,
    action_refs: Vec<String>,
    execution_ids: Vec<String>,
    end_event: Option<String>,
    end_execution_id: Option<String>,
}

impl Filter {
    fn parse(params: &Params) -> Filter {
        let mut events = list(params, "events");
        if events.is_empty() {
            events = DEFAULT_EVENTS.iter().map(|s| (*s).to_owned()).collect();
        }
        Filter {
            events,
            action_refs: list(params, "action_refs"),
            execution_ids: list(params, "execution_ids"),
            end_event: params.get("end_event").map(str::to_owned),
            end_execution_id: params.get("end_execution_id").map(str::to_owned),
        }
    }

    /// Whether an event `name` about (`action_ref`, `execution_id`) goes to the client.
    fn passes(&self, name: &str, action_ref: Option<&str>, execution_id: Option<&str>) -> bool {
        if !self.events.iter().any(|g| fnmatch(g, name)) {
            return false;
        }
        if !self.action_refs.is_empty()
            && let Some(r) = action_ref
            && !self.action_refs.iter().any(|a| a == r)
        {
            return false;
        }
        if !self.execution_ids.is_empty() {
            if name.starts_with("st2.liveaction") {
                return false;
            }
            if let Some(id) = execution_id
                && !self.execution_ids.iter().any(|e| e == id)
            {
                return false;
            }
        }
        true
    }
}

/// One SSE frame.
fn frame(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// StackStorm's output event body.
fn output_body(o: &NewOutput, id: &str) -> Value {
    json!({
        "id": id,
        "execution_id": o.execution_id,
        "action_ref": o.action_ref,
        "runner_ref": o.runner_ref,
        "timestamp": isotime(o.timestamp),
        "output_type": o.output_type.to_string(),
        "data": o.data,
    })
}

/// StackStorm's LiveAction body for an execution.
fn liveaction(r: &ExecutionRecord) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(r.id));
    m.insert("status".into(), json!(r.status.as_str()));
    m.insert("action".into(), json!(r.action_ref));
    m.insert(
        "action_is_workflow".into(),
        json!(
            r.runner
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| matches!(n, "orquesta" | "action-chain"))
        ),
    );
    m.insert("parameters".into(), r.parameters.clone().into());
    m.insert("context".into(), r.context.clone().into());
    m.insert("callback".into(), json!({}));
    m.insert(
        "runner_info".into(),
        r.runner_info.clone().unwrap_or_else(|| json!({})),
    );
    m.insert("start_timestamp".into(), json!(isotime(r.start_timestamp)));
    if let Some(end) = r.end_timestamp {
        m.insert("end_timestamp".into(), json!(isotime(end)));
    }
    if r.status.is_completed() {
        m.insert("result".into(), r.result.clone());
    }
    Value::Object(m)
}

/// The SSE response over the frames a task sends.
fn sse(receiver: mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(receiver)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=UTF-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Frames of one engine event for `filter`; `true` in the second place when the stream ends
/// after them.
fn frames_of(state: &ApiState, event: &EngineEvent, filter: &Filter) -> (Vec<Bytes>, bool) {
    let mut out = Vec::new();
    let mut end = false;
    let api_url = &state.settings.api_url;
    match event {
        EngineEvent::ExecutionCreated(r) | EngineEvent::ExecutionUpdated(r) => {
            let verb = if matches!(event, EngineEvent::ExecutionCreated(_)) {
                "create"
            } else {
                "update"
            };
            let name = format!("st2.execution__{verb}");
            if filter.passes(&name, Some(&r.action_ref), Some(&r.id)) {
                out.push(frame(&name, &present::execution(r, false, api_url)));
            }
            let live = format!("st2.liveaction__{verb}");
            if filter.passes(&live, Some(&r.action_ref), Some(&r.id)) {
                out.push(frame(&live, &liveaction(r)));
            }
            end = filter.end_event.as_deref() == Some(name.as_str())
                && filter.end_execution_id.as_deref() == Some(r.id.as_str())
                && r.status.is_completed();
        }
        EngineEvent::Output(o) => {
            let name = "st2.execution.output__create";
            if filter.passes(name, Some(&o.action_ref), Some(&o.execution_id)) {
                let id = st2_core::store::new_id();
                out.push(frame(name, &output_body(o, &id)));
            }
        }
        EngineEvent::ActionAlias { verb, alias } => {
            let name = format!("st2.actionalias__{verb}");
            if filter.passes(&name, None, None) {
                out.push(frame(&name, alias));
            }
        }
        EngineEvent::Announcement { route, payload } => {
            let name = format!("st2.announcement__{route}");
            if filter.passes(&name, None, None) {
                out.push(frame(&name, payload));
            }
        }
        // Trigger instance events are not on StackStorm's stream.
        _ => {}
    }
    (out, end)
}

/// `GET /v1/stream`.
pub async fn stream(State(state): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult {
    let params = Params::parse(q.as_deref());
    let filter = Filter::parse(&params);
    let mut events = state.engine.subscribe();
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(async move {
        if sender.send(Ok(Bytes::from_static(b"\n"))).await.is_err() {
            return;
        }
        // A client waiting for the end of an execution that completed before it connected
        // (`st2 pack install` of a pack that fails at once) gets that last update now instead
        // of waiting forever. The subscription above already catches anything later.
        if filter.end_event.as_deref() == Some("st2.execution__update")
            && let Some(id) = &filter.end_execution_id
            && let Ok(Some(record)) = state.engine.get(id).await
            && record.status.is_completed()
        {
            let (frames, _) = frames_of(
                &state,
                &EngineEvent::ExecutionUpdated(Arc::new(record)),
                &filter,
            );
            for f in frames {
                if sender.send(Ok(f)).await.is_err() {
                    return;
                }
            }
            return;
        }
        loop {
            let event = tokio::select! {
                e = events.recv() => e,
                () = tokio::time::sleep(HEARTBEAT) => {
                    if sender.send(Ok(Bytes::from_static(b"\n"))).await.is_err() {
                        return;
                    }
                    continue;
                }
                () = sender.closed() => return,
            };
            let event = match event {
                Ok(e) => e,
                // Fell behind: carry on from the newest.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let (frames, end) = frames_of(&state, &event, &filter);
            for f in frames {
                if sender.send(Ok(f)).await.is_err() {
                    return;
                }
            }
            if end {
                return;
            }
        }
    });
    Ok(sse(receiver))
}

/// `GET /v1/executions/{id}/output`: plain text, or with `Accept: text/event-stream` (the
/// stream service's form) the stored chunks as events, then live ones until the execution
/// completes (or pauses), then `event: EOF`.
pub async fn output(
    state: State<Arc<ApiState>>,
    headers: HeaderMap,
    id: Path<String>,
    q: RawQuery,
) -> ApiResult {
    let wants_events = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_events {
        return super::executions::output(state, id, q).await;
    }
    let (State(state), Path(id), RawQuery(q)) = (state, id, q);
    let params = Params::parse(q.as_deref());
    let wanted = match params.get("output_type") {
        None | Some("all") => None,
        Some(t) => Some(t.parse::<OutputType>().map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid output_type \"{t}\" (all, stdout, stderr, output)"
            ))
        })?),
    };
    let record = if id == "last" {
        state
            .engine
            .list(
                &st2_core::store::ExecutionFilter::default(),
                st2_core::store::Page::first(1),
            )
            .await?
            .items
            .into_iter()
            .next()
    } else {
        state.engine.get(&id).await?
    }
    .ok_or_else(|| ApiError::not_found(&id))?;
    // Subscribe before reading what is stored, so nothing falls between the two (the read
    // waits for lines already sent to subscribers to be stored).
    let mut events = state.engine.subscribe();
    let stored = state.engine.output(&record.id).await?;
    let (sender, receiver) = mpsc::channel(256);
    let id = record.id.clone();
    let finished = |r: &ExecutionRecord| {
        r.status.is_completed()
            || matches!(
                r.status,
                st2_core::store::ExecutionStatus::Pausing
                    | st2_core::store::ExecutionStatus::Paused
                    | st2_core::store::ExecutionStatus::Resuming
            )
    };
    let done_already = finished(&record);
    // A chunk produced after the subscription but stored before the read above arrives twice:
    // in `stored` and as a live event. Chunks are stored in the order they are produced, so
    // such twins are the first live events; each stored chunk excuses one live event equal to
    // it (same time, stream and text), which with a real clock only its own twin can be. Times
    // compare in microseconds, the precision the store keeps.
    let twin = |o: &NewOutput| {
        (
            o.timestamp.timestamp_micros(),
            o.output_type,
            o.data.clone(),
        )
    };
    let mut twins: HashMap<(i64, OutputType, String), usize> = HashMap::new();
    if !done_already {
        for c in &stored {
            *twins.entry(twin(&c.chunk)).or_default() += 1;
        }
    }
    tokio::spawn(async move {
        let name = "st2.execution.output__create";
        let send = |b: Bytes| {
            let sender = sender.clone();
            async move { sender.send(Ok(b)).await.is_ok() }
        };
        if !send(Bytes::from_static(b"\n")).await {
            return;
        }
        for c in stored
            .iter()
            .filter(|c| wanted.is_none_or(|w| c.chunk.output_type == w))
        {
            if !send(frame(name, &output_body(&c.chunk, &c.seq.to_string()))).await {
                return;
            }
        }
        if !done_already {
            loop {
                let event = tokio::select! {
                    e = events.recv() => e,
                    () = tokio::time::sleep(HEARTBEAT) => {
                        if !send(Bytes::from_static(b"\n")).await {
                            return;
                        }
                        continue;
                    }
                };
                match event {
                    Ok(EngineEvent::Output(o))
                        if o.execution_id == id && wanted.is_none_or(|w| o.output_type == w) =>
                    {
                        if !twins.is_empty() {
                            let key = twin(&o);
                            if let Some(left) = twins.get_mut(&key) {
                                *left -= 1;
                                if *left == 0 {
                                    twins.remove(&key);
                                }
                                continue;
                            }
                        }
                        let chunk_id = st2_core::store::new_id();
                        if !send(frame(name, &output_body(&o, &chunk_id))).await {
                            return;
                        }
                    }
                    Ok(EngineEvent::ExecutionUpdated(r)) if r.id == id && finished(&r) => break,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
        let _ = send(Bytes::from_static(b"event: EOF\ndata: ''\n\n")).await;
    });
    Ok(sse(receiver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_globs_as_python() {
        assert!(fnmatch("st2.execution__*", "st2.execution__update"));
        assert!(fnmatch("st2.announcement__*", "st2.announcement__chatops"));
        assert!(!fnmatch("st2.execution__*", "st2.execution.output__create"));
        assert!(fnmatch(
            "st2.execution?output__create",
            "st2.execution.output__create"
        ));
        assert!(fnmatch("st2.[el]*", "st2.liveaction__create"));
        assert!(!fnmatch("st2.[!el]*", "st2.liveaction__create"));
        assert!(fnmatch("*", ""));
        assert!(fnmatch("[]]", "]"));
        // Many stars do not blow up.
        let stars = "*a".repeat(40) + "b";
        assert!(!fnmatch(&stars, &"a".repeat(60)));
    }
}
