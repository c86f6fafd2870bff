//! The engine's side of the line-delimited JSON channel to a Python child (see
//! `python/st2rs/__init__.py`): the child gets one end of a socket pair as standard input,
//! the engine writes the job as the first line and answers the child's requests (datastore
//! calls, trigger dispatch) until the child closes its end.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use st2_core::datastore::{Datastore, KeySelector, KeyWrite};
use st2_core::store::Page;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

/// What answers a child's requests.
#[async_trait]
pub(crate) trait Host: Send + Sync {
    /// The datastore keys are read from and written to.
    fn datastore(&self) -> Option<&Datastore>;

    /// Dispatch a trigger (sensors only).
    ///
    /// # Errors
    /// Why it was not dispatched.
    async fn dispatch(
        &self,
        trigger: &str,
        payload: Value,
        trace_tag: Option<String>,
    ) -> Result<Value, String>;
}

/// The child's end (its standard input) and the task serving the engine's end.
pub(crate) struct Channel {
    /// Give this to the child as standard input.
    pub child_end: Stdio,
    /// Ends when the child closed its end; yields the child's `result` message, if any.
    pub served: JoinHandle<Option<Map<String, Value>>>,
}

/// A socket pair: one end for the child, the other served with `job` as the first line.
///
/// # Errors
/// The socket pair cannot be created.
pub(crate) fn open(job: Value, host: Arc<dyn Host>) -> std::io::Result<Channel> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    let ours = UnixStream::from_std(ours)?;
    let served = tokio::spawn(serve(ours, job, host));
    Ok(Channel {
        child_end: Stdio::from(OwnedFd::from(theirs)),
        served,
    })
}

async fn serve(stream: UnixStream, job: Value, host: Arc<dyn Host>) -> Option<Map<String, Value>> {
    let (read, mut write) = stream.into_split();
    let mut first = job.to_string();
    first.push('\n');
    if write.write_all(first.as_bytes()).await.is_err() {
        return None;
    }
    let mut lines = BufReader::new(read);
    let mut line = Vec::new();
    let mut result = None;
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return result,
            Ok(_) => {}
        }
        let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        let op = message
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if op == "result" {
            result = Some(message);
            continue;
        }
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        let answer = match handle(op, &message, host.as_ref()).await {
            Ok(value) => json!({"id": id, "ok": value}),
            Err(error) => json!({"id": id, "error": error}),
        };
        let mut text = answer.to_string();
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            return result;
        }
    }
}

fn text<'a>(message: &'a Map<String, Value>, field: &str) -> Result<&'a str, String> {
    message
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{field:?} must be a string"))
}

fn flag(message: &Map<String, Value>, field: &str) -> bool {
    message.get(field).and_then(Value::as_bool).unwrap_or(false)
}

/// Answer one request.
async fn handle(op: &str, message: &Map<String, Value>, host: &dyn Host) -> Result<Value, String> {
    if op == "dispatch" {
        let trigger = text(message, "trigger")?;
        let payload = message.get("payload").cloned().unwrap_or(Value::Null);
        let payload = if payload.is_null() {
            json!({})
        } else {
            payload
        };
        let tag = message
            .get("trace_tag")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return host.dispatch(trigger, payload, tag).await;
    }
    let datastore = host
        .datastore()
        .ok_or_else(|| "no datastore is available".to_owned())?;
    let system = KeySelector::System;
    match op {
        "get" => {
            let name = text(message, "name")?;
            let pair = datastore
                .get(&system, name, flag(message, "decrypt"))
                .await
                .map_err(|e| e.to_string())?;
            Ok(pair.map_or(Value::Null, |kv| Value::String(kv.shown_value().to_owned())))
        }
        "set" => {
            let name = text(message, "name")?;
            let write = KeyWrite {
                value: text(message, "value")?.to_owned(),
                secret: flag(message, "encrypt"),
                ttl: message
                    .get("ttl")
                    .and_then(Value::as_u64)
                    .filter(|t| *t > 0),
                ..KeyWrite::default()
            };
            datastore
                .set(&system, name, write)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Value::Bool(true))
        }
        "delete" => {
            let name = text(message, "name")?;
            let removed = datastore
                .delete(&system, name)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Value::Bool(removed.is_some()))
        }
        "list" => {
            let prefix = message.get("prefix").and_then(Value::as_str);
            let page = Page {
                limit: message.get("limit").and_then(Value::as_u64),
                offset: message.get("offset").and_then(Value::as_u64).unwrap_or(0),
            };
            let listing = datastore
                .list(Some(&system), prefix, false, page)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Value::Array(
                listing
                    .items
                    .iter()
                    .map(|kv| {
                        json!({
                            "name": kv.name,
                            "value": kv.shown_value(),
                            "scope": "st2kv.system",
                            "secret": kv.record.secret,
                            "encrypted": kv.shows_ciphertext(),
                            "expire_timestamp": kv.record.expire_timestamp,
                        })
                    })
                    .collect(),
            ))
        }
        other => Err(format!("unknown request {other:?}")),
    }
}
