//! `st2 run` / `st2 action execute`, `st2 execution re-run|tail`: parameters cast by the
//! action's schema, the live output from st2stream with a spinner, the final result.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};

use crate::http::{Api, enc, query};
use crate::output::{Out, lookup};

/// Statuses during which the client keeps waiting (as st2client polls).
const WAITING: [&str; 4] = ["requested", "scheduled", "running", "canceling"];
/// Statuses that make the command fail.
const FAILED: [&str; 4] = ["failed", "timeout", "canceled", "abandoned"];
/// Attributes of the result view.
pub const DETAIL_ATTRS: [&str; 8] = [
    "id",
    "action.ref",
    "context.user",
    "parameters",
    "status",
    "start_timestamp",
    "end_timestamp",
    "result",
];

pub fn is_waiting(status: &str) -> bool {
    WAITING.contains(&status)
}

fn is_workflow(execution: &Value) -> bool {
    matches!(
        lookup(execution, "action.runner_type").as_str(),
        Some("orquesta" | "action-chain" | "mistral-v2")
    )
}

/// Exit status for a finished execution.
pub fn exit_for(execution: &Value) -> ExitCode {
    let status = execution["status"].as_str().unwrap_or("");
    if FAILED.contains(&status) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `GET /actions/<ref>`; on 404 the error names the closest refs.
pub fn get_action(api: &Api, action_ref: &str) -> Result<Value> {
    if let Some(a) = api.get_opt(&format!("/actions/{}", enc(action_ref)))? {
        return Ok(a);
    }
    let (all, _) = api.list("/actions?include_attributes=ref")?;
    let refs: Vec<&str> = all.iter().filter_map(|a| a["ref"].as_str()).collect();
    let close = closest(action_ref, &refs);
    if close.is_empty() {
        bail!("Action \"{action_ref}\" is not found. See `st2 action list`.");
    }
    bail!(
        "Action \"{action_ref}\" is not found. Did you mean: {}?",
        close.join(", ")
    )
}

/// Up to five names close to `name` (edit distance, or containing it).
pub fn closest(name: &str, names: &[&str]) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = names
        .iter()
        .map(|n| {
            let mut score = strsim::normalized_levenshtein(name, n);
            if n.contains(name) || name.contains(n) {
                score = score.max(0.7);
            }
            let short = name.rsplit('.').next().unwrap_or(name);
            let short_n = n.rsplit('.').next().unwrap_or(n);
            score = score.max(strsim::normalized_levenshtein(short, short_n) * 0.9);
            (score, *n)
        })
        .filter(|(s, _)| *s >= 0.6)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_owned())
        .collect()
}

/// The action's parameters over its runner's (`GET /runnertypes/?name=<runner>`).
pub fn parameter_schema(api: &Api, action: &Value) -> Result<Map<String, Value>> {
    let mut schema = Map::new();
    if let Some(runner) = action["runner_type"].as_str() {
        let (runners, _) = api.list(&format!(
            "/runnertypes/{}",
            query(&[("name", runner.to_owned())])
        ))?;
        let Some(r) = runners.first() else {
            bail!("Runner type \"{runner}\" cannot be found.");
        };
        if let Some(p) = r["runner_parameters"].as_object() {
            schema.extend(p.clone());
        }
    }
    if let Some(p) = action["parameters"].as_object() {
        for (k, v) in p {
            let merged = match (schema.get(k), v) {
                (Some(Value::Object(base)), Value::Object(over)) => {
                    let mut m = base.clone();
                    m.extend(over.clone());
                    Value::Object(m)
                }
                _ => v.clone(),
            };
            schema.insert(k.clone(), merged);
        }
    }
    Ok(schema)
}

fn type_of(spec: &Value) -> &str {
    match &spec["type"] {
        Value::String(s) => s,
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string"),
        _ => "string",
    }
}

/// `key=value` arguments cast by `schema`.
pub fn cast_parameters(
    action_ref: &str,
    args: &[String],
    schema: &Map<String, Value>,
) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for arg in args {
        let Some((key, raw)) = arg.split_once('=') else {
            bail!("argument {arg:?} is not of the form key=value");
        };
        let key = key.trim();
        let Some(spec) = schema.get(key) else {
            let mut names: Vec<&str> = schema.keys().map(String::as_str).collect();
            names.sort_unstable();
            bail!(
                "action {action_ref} has no parameter \"{key}\"; its parameters are: {}",
                names.join(", ")
            );
        };
        let text = match raw.strip_prefix('@') {
            Some(path) if !path.is_empty() => std::fs::read_to_string(path)
                .with_context(|| format!("parameter \"{key}\": cannot read the file {path}"))?,
            _ => raw.to_owned(),
        };
        let value = cast(key, &text, spec)?;
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

/// One value by its schema `type`.
pub fn cast(key: &str, text: &str, spec: &Value) -> Result<Value> {
    let kind = type_of(spec);
    let wrong = |expected: &str| {
        anyhow!("parameter \"{key}\" expects {expected} (type {kind}), got {text:?}")
    };
    let trimmed = text.trim();
    Ok(match kind {
        "integer" => Value::from(trimmed.parse::<i64>().map_err(|_| wrong("an integer"))?),
        "number" => match trimmed.parse::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => {
                let f: f64 = trimmed.parse().map_err(|_| wrong("a number"))?;
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| wrong("a finite number"))?
            }
        },
        "boolean" => match trimmed.to_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "on" => Value::Bool(true),
            "false" | "no" | "n" | "0" | "off" => Value::Bool(false),
            _ => return Err(wrong("a boolean (true/false)")),
        },
        "array" => {
            if trimmed.starts_with('[') {
                let v: Value = serde_json::from_str(trimmed)
                    .map_err(|e| anyhow!("parameter \"{key}\" expects a JSON array: {e}"))?;
                if !v.is_array() {
                    return Err(wrong("an array"));
                }
                v
            } else if trimmed.is_empty() {
                json!([])
            } else {
                let items = &spec["items"];
                let mut out = Vec::new();
                for item in trimmed.split(',') {
                    let item = item.trim();
                    out.push(if items.is_object() && items.get("type").is_some() {
                        cast(key, item, items)?
                    } else {
                        Value::String(item.to_owned())
                    });
                }
                Value::Array(out)
            }
        }
        "object" => {
            if trimmed.starts_with('{') {
                let v: Value = serde_json::from_str(trimmed)
                    .map_err(|e| anyhow!("parameter \"{key}\" expects a JSON object: {e}"))?;
                if !v.is_object() {
                    return Err(wrong("an object"));
                }
                v
            } else {
                // `A=1,B=2` as st2client accepts for objects.
                let mut m = Map::new();
                for pair in trimmed.split(',').filter(|p| !p.trim().is_empty()) {
                    let Some((k, v)) = pair.split_once('=') else {
                        return Err(wrong("a JSON object or k1=v1,k2=v2"));
                    };
                    m.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
                }
                Value::Object(m)
            }
        }
        _ => Value::String(text.to_owned()),
    })
}

/// Options shared by `run` and `re-run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub asynchronous: bool,
    pub attrs: Vec<String>,
    pub result_key: Option<String>,
}

/// What `st2 run` asks for.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub action_ref: String,
    pub params: Vec<String>,
    pub user: Option<String>,
    pub trace_tag: Option<String>,
    pub trace_id: Option<String>,
    pub delay: Option<u64>,
}

/// `st2 run ACTION k=v …`.
pub fn run(api: &Api, out: &Out, request: &RunRequest, opts: &RunOptions) -> Result<ExitCode> {
    let action_ref = request.action_ref.as_str();
    let action = get_action(api, action_ref)?;
    let schema = parameter_schema(api, &action)?;
    let parameters = cast_parameters(action_ref, &request.params, &schema)?;
    let mut body = json!({"action": action_ref, "parameters": parameters, "user": request.user});
    if let Some(t) = &request.trace_tag {
        body["context"] = json!({"trace_context": {"trace_tag": t}});
    } else if let Some(t) = &request.trace_id {
        body["context"] = json!({"trace_context": {"id_": t}});
    }
    if let Some(d) = request.delay {
        body["delay"] = json!(d);
    }
    start_and_follow(api, out, opts, |api| api.post("/executions", &body))
}

/// What `st2 execution re-run` asks for.
#[derive(Debug, Clone, Default)]
pub struct ReRunRequest {
    pub id: String,
    pub params: Vec<String>,
    pub tasks: Vec<String>,
    pub no_reset: Vec<String>,
    pub delay: u64,
}

/// `st2 execution re-run ID [k=v …]`.
pub fn rerun(api: &Api, out: &Out, request: &ReRunRequest, opts: &RunOptions) -> Result<ExitCode> {
    let id = request.id.as_str();
    let Some(execution) = api.get_opt(&format!("/executions/{}", enc(id)))? else {
        bail!("Execution \"{id}\" is not found.");
    };
    let action_ref = lookup(&execution, "action.ref")
        .as_str()
        .ok_or_else(|| anyhow!("execution {id} has no action.ref"))?
        .to_owned();
    let action = get_action(api, &action_ref)?;
    let schema = parameter_schema(api, &action)?;
    let parameters = cast_parameters(&action_ref, &request.params, &schema)?;
    let reset: Vec<&String> = request
        .tasks
        .iter()
        .filter(|t| !request.no_reset.contains(t))
        .collect();
    let body = json!({
        "parameters": parameters,
        "tasks": request.tasks,
        "reset": reset,
        "delay": request.delay,
    });
    start_and_follow(api, out, opts, |api| {
        api.post(&format!("/executions/{}/re_run", enc(id)), &body)
    })
}

/// Open the stream (so nothing is missed), start the execution, follow it, print it.
fn start_and_follow(
    api: &Api,
    out: &Out,
    opts: &RunOptions,
    start: impl FnOnce(&Api) -> Result<Value>,
) -> Result<ExitCode> {
    if opts.asynchronous {
        let execution = start(api)?;
        let id = execution["id"].as_str().unwrap_or("").to_owned();
        if out.is_table() {
            println!("To get the results, execute:\n st2 execution get {id}\n");
            println!("To view output in real-time, execute:\n st2 execution tail {id}");
        } else {
            out.dump(&execution)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let live = out.is_table();
    let events = if live { subscribe(api, false) } else { None };
    let execution = start(api)?;
    let id = execution["id"]
        .as_str()
        .ok_or_else(|| anyhow!("the server's answer has no execution id: {execution}"))?
        .to_owned();
    let spinner = Spinner::new(live, &id);
    let mut follower = Follower::new(&id, live, false);
    let status = execution["status"].as_str().unwrap_or("").to_owned();
    let done = if is_waiting(&status) {
        follower.follow(api, events, &spinner)?
    } else {
        execution
    };
    spinner.finish();
    if follower.printed_output && !follower.ends_with_newline {
        println!();
    }
    show_execution(api, out, &done, opts)?;
    Ok(exit_for(&done))
}

/// Print the result view (plus the tasks of a workflow).
pub fn show_execution(api: &Api, out: &Out, execution: &Value, opts: &RunOptions) -> Result<()> {
    let id = execution["id"].as_str().unwrap_or("");
    let full = api
        .get_opt(&format!("/executions/{}", enc(id)))?
        .unwrap_or_else(|| execution.clone());
    if let Some(key) = &opts.result_key {
        let v = lookup(&full["result"], key);
        return match v {
            Value::String(s) if out.is_table() => {
                println!("{s}");
                Ok(())
            }
            other => out.dump(other),
        };
    }
    let attrs: Vec<String> = if opts.attrs.is_empty() {
        DETAIL_ATTRS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        opts.attrs.clone()
    };
    out.execution(&full, &attrs)?;
    if out.is_table() && opts.attrs.is_empty() && is_workflow(&full) {
        let (children, _) = api.list(&format!("/executions/{}/children/?depth=1", enc(id)))?;
        let direct: Vec<Value> = children
            .into_iter()
            .filter(|c| c["parent"].as_str() == Some(id))
            .collect();
        if !direct.is_empty() {
            println!("+ tasks:");
            out.tasks(&direct);
        }
    }
    Ok(())
}

/// A spinner on stderr (only on a terminal, and only for table output).
pub struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    pub fn new(enabled: bool, id: &str) -> Spinner {
        if !enabled || !std::io::stderr().is_terminal() {
            return Spinner(None);
        }
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message(format!("execution {id}"));
        pb.enable_steady_tick(Duration::from_millis(100));
        Spinner(Some(pb))
    }

    pub fn status(&self, status: &str) {
        if let Some(pb) = &self.0 {
            let base = pb.message();
            let base = base.split(" (").next().unwrap_or("").to_owned();
            pb.set_message(format!("{base} ({status})"));
        }
    }

    /// Run `f` with the spinner out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some(pb) => pb.suspend(f),
            None => f(),
        }
    }

    pub fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

/// One Server-Sent Event.
#[derive(Debug)]
pub struct Event {
    pub name: String,
    pub data: Value,
}

/// `GET <stream>/stream?events=…` read on a thread; events arrive on the channel, which
/// closes when the stream ends. `None` when the stream cannot be opened.
pub fn subscribe(api: &Api, warn: bool) -> Option<mpsc::Receiver<Event>> {
    let path = format!(
        "/stream{}",
        query(&[(
            "events",
            "st2.execution__create,st2.execution__update,st2.execution.output__create".to_owned()
        )])
    );
    open_events(api, &path, warn)
}

/// Any SSE path on the stream endpoint, read on a thread.
pub fn open_events(api: &Api, path: &str, warn: bool) -> Option<mpsc::Receiver<Event>> {
    match api.open_stream(path) {
        Ok(response) => {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || read_events(response, &tx));
            Some(rx)
        }
        Err(e) => {
            if warn || api.settings.debug {
                eprintln!("WARNING: no live events ({e:#}); polling instead.");
            }
            None
        }
    }
}

fn read_events(response: reqwest::blocking::Response, tx: &mpsc::Sender<Event>) {
    let reader = BufReader::new(response);
    let mut name = String::new();
    let mut data = String::new();
    for line in reader.lines() {
        let Ok(line) = line else { return };
        if line.is_empty() {
            if !data.is_empty() {
                let value = serde_json::from_str(&data).unwrap_or(Value::String(data.clone()));
                let event = Event {
                    name: std::mem::take(&mut name),
                    data: value,
                };
                if tx.send(event).is_err() {
                    return;
                }
            }
            name.clear();
            data.clear();
        } else if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
}

/// Follows one execution and its descendants.
pub struct Follower {
    root: String,
    known: HashSet<String>,
    show_output: bool,
    /// `execution tail` prints start/completion lines for each execution.
    announce: bool,
    pub printed_output: bool,
    pub ends_with_newline: bool,
    pub output_type: Option<String>,
    pub include_metadata: bool,
}

impl Follower {
    pub fn new(root: &str, show_output: bool, announce: bool) -> Follower {
        Follower {
            root: root.to_owned(),
            known: HashSet::from([root.to_owned()]),
            show_output,
            announce,
            printed_output: false,
            ends_with_newline: true,
            output_type: None,
            include_metadata: false,
        }
    }

    pub fn add_known(&mut self, id: &str) {
        self.known.insert(id.to_owned());
    }

    /// Until the root is no longer waiting; the last state seen of it.
    pub fn follow(
        &mut self,
        api: &Api,
        events: Option<mpsc::Receiver<Event>>,
        spinner: &Spinner,
    ) -> Result<Value> {
        let path = format!("/executions/{}", enc(&self.root));
        let mut events = events;
        let mut last_poll = Instant::now();
        loop {
            let received = match &events {
                Some(rx) => match rx.recv_timeout(Duration::from_millis(500)) {
                    Ok(e) => Some(e),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        events = None;
                        None
                    }
                },
                None => {
                    std::thread::sleep(Duration::from_millis(300));
                    None
                }
            };
            if let Some(event) = received {
                if let Some(done) = self.on_event(&event, spinner) {
                    return Ok(done);
                }
                if last_poll.elapsed() < Duration::from_secs(2) {
                    continue;
                }
            }
            // No event for a while (or no stream): ask.
            if events.is_none() || last_poll.elapsed() >= Duration::from_secs(2) {
                last_poll = Instant::now();
                let execution = api.get(&path)?;
                let status = execution["status"].as_str().unwrap_or("");
                spinner.status(status);
                if !is_waiting(status) {
                    // Let the stream deliver what is still in flight.
                    if let Some(rx) = &events {
                        while let Ok(e) = rx.recv_timeout(Duration::from_millis(200)) {
                            self.on_event(&e, spinner);
                        }
                    }
                    return Ok(execution);
                }
            }
        }
    }

    /// Handle one event; the root's final state when it ends the wait.
    fn on_event(&mut self, event: &Event, spinner: &Spinner) -> Option<Value> {
        let data = &event.data;
        if event.name == "st2.execution.output__create" {
            let id = data["execution_id"].as_str().unwrap_or("");
            if !self.known.contains(id) || !self.show_output {
                return None;
            }
            if let Some(t) = &self.output_type
                && data["output_type"].as_str() != Some(t.as_str())
            {
                return None;
            }
            let text = data["data"].as_str().unwrap_or("");
            let text = if self.include_metadata {
                format!(
                    "[{}][{}] {text}",
                    data["timestamp"].as_str().unwrap_or(""),
                    data["output_type"].as_str().unwrap_or("")
                )
            } else {
                text.to_owned()
            };
            if !text.is_empty() {
                if data["output_type"].as_str() != Some("stderr") {
                    self.printed_output = true;
                    self.ends_with_newline = text.ends_with('\n');
                }
                let to_stderr = data["output_type"].as_str() == Some("stderr");
                spinner.suspend(|| {
                    if to_stderr {
                        let mut stderr = std::io::stderr().lock();
                        let _ = stderr.write_all(text.as_bytes());
                        let _ = stderr.flush();
                    } else {
                        let mut stdout = std::io::stdout().lock();
                        let _ = stdout.write_all(text.as_bytes());
                        let _ = stdout.flush();
                    }
                });
            }
            return None;
        }
        if !event.name.starts_with("st2.execution__") {
            return None;
        }
        let id = data["id"].as_str().unwrap_or("").to_owned();
        let parent = lookup(data, "context.parent.execution_id")
            .as_str()
            .or_else(|| data["parent"].as_str())
            .unwrap_or("");
        if !self.known.contains(&id) && self.known.contains(parent) {
            self.known.insert(id.clone());
        }
        if !self.known.contains(&id) {
            return None;
        }
        let status = data["status"].as_str().unwrap_or("");
        if id == self.root {
            spinner.status(status);
        } else if self.announce {
            let line = match status {
                "running" => Some(format!(
                    "Child execution (task={}) {id} has started.",
                    task_name(data)
                )),
                s if !is_waiting(s) => Some(format!(
                    "Child execution (task={}) {id} has finished (status={s}).",
                    task_name(data)
                )),
                _ => None,
            };
            if let Some(line) = line {
                spinner.suspend(|| println!("\n{line}\n"));
            }
        }
        if id == self.root && event.name == "st2.execution__update" && !is_waiting(status) {
            return Some(data.clone());
        }
        None
    }
}

fn task_name(execution: &Value) -> &str {
    lookup(execution, "context.orquesta.task_name")
        .as_str()
        .or_else(|| lookup(execution, "context.chain.name").as_str())
        .unwrap_or("")
}

/// `st2 execution tail ID|last`.
pub fn tail(
    api: &Api,
    out: &Out,
    id: &str,
    output_type: Option<String>,
    include_metadata: bool,
) -> Result<ExitCode> {
    let id = if id == "last" {
        let (items, _) = api.list("/executions/?limit=1")?;
        items
            .first()
            .and_then(|e| e["id"].as_str())
            .ok_or_else(|| anyhow!("there are no executions yet"))?
            .to_owned()
    } else {
        id.to_owned()
    };
    let events = subscribe(api, true);
    let Some(execution) = api.get_opt(&format!("/executions/{}", enc(&id)))? else {
        bail!("Execution \"{id}\" is not found.");
    };
    let output_events =
        if is_workflow(&execution) || !is_waiting(execution["status"].as_str().unwrap_or("")) {
            None
        } else {
            open_events(api, &format!("/executions/{}/output", enc(&id)), true)
        };
    let status = execution["status"].as_str().unwrap_or("").to_owned();
    if !is_waiting(&status) {
        let mut q = Vec::new();
        if let Some(t) = &output_type {
            q.push(("output_type", t.clone()));
        }
        let text = api.get_text(&format!("/executions/{}/output{}", enc(&id), query(&q)))?;
        print!("{text}");
        if !text.is_empty() && !text.ends_with('\n') {
            println!();
        }
        println!("Execution {id} has completed (status={status}).");
        return Ok(exit_for(&execution));
    }
    let spinner = Spinner::new(out.is_table(), &id);
    let done = if is_workflow(&execution) {
        // The workflow and its tasks: the general stream, seeded with the tasks so far.
        drop(output_events);
        let mut follower = Follower::new(&id, true, true);
        follower.output_type = output_type;
        follower.include_metadata = include_metadata;
        let (children, _) = api.list(&format!("/executions/{}/children/?depth=-1", enc(&id)))?;
        for c in &children {
            if let Some(cid) = c["id"].as_str() {
                follower.add_known(cid);
            }
        }
        let done = follower.follow(api, events, &spinner)?;
        if follower.printed_output && !follower.ends_with_newline {
            println!();
        }
        done
    } else {
        // One action: its output endpoint replays what is stored, then goes on live.
        drop(events);
        let mut follower = Follower::new(&id, true, false);
        follower.output_type = output_type;
        follower.include_metadata = include_metadata;
        let streamed = output_events.is_some();
        if let Some(rx) = output_events {
            for event in rx.iter() {
                if event.name == "EOF" {
                    break;
                }
                follower.on_event(&event, &spinner);
            }
        }
        let done = follower.follow(api, None, &spinner)?;
        if !streamed {
            // No stream: the stored output once it is over.
            let mut q = Vec::new();
            if let Some(t) = &follower.output_type {
                q.push(("output_type", t.clone()));
            }
            let text = api.get_text(&format!("/executions/{}/output{}", enc(&id), query(&q)))?;
            print!("{text}");
            follower.printed_output |= !text.is_empty();
            follower.ends_with_newline = text.is_empty() || text.ends_with('\n');
        }
        if follower.printed_output && !follower.ends_with_newline {
            println!();
        }
        done
    };
    spinner.finish();
    let status = done["status"].as_str().unwrap_or("");
    println!("Execution {id} has completed (status={status}).");
    Ok(exit_for(&done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casting_by_type() {
        let int = json!({"type": "integer"});
        assert_eq!(cast("t", "5", &int).unwrap(), json!(5));
        let e = cast("t", "five", &int).unwrap_err().to_string();
        assert!(e.contains("\"t\"") && e.contains("integer"), "{e}");
        assert_eq!(
            cast("n", "1.5", &json!({"type": "number"})).unwrap(),
            json!(1.5)
        );
        assert_eq!(
            cast("b", "Yes", &json!({"type": "boolean"})).unwrap(),
            json!(true)
        );
        assert!(cast("b", "maybe", &json!({"type": "boolean"})).is_err());
        let arr = json!({"type": "array", "items": {"type": "integer"}});
        assert_eq!(cast("a", "1, 2", &arr).unwrap(), json!([1, 2]));
        assert_eq!(
            cast("a", "[\"x\"]", &json!({"type": "array"})).unwrap(),
            json!(["x"])
        );
        let obj = json!({"type": "object"});
        assert_eq!(
            cast("o", "A=1,B=2", &obj).unwrap(),
            json!({"A": "1", "B": "2"})
        );
        assert_eq!(cast("o", "{\"a\": [1]}", &obj).unwrap(), json!({"a": [1]}));
        assert!(cast("o", "[1]", &obj).is_err());
        assert_eq!(
            cast("s", " x ", &json!({"type": ["string", "null"]})).unwrap(),
            json!(" x ")
        );
    }

    #[test]
    fn unknown_parameter_lists_the_known_ones() {
        let schema: Map<String, Value> =
            serde_json::from_value(json!({"cmd": {"type": "string"}, "sudo": {"type": "boolean"}}))
                .unwrap();
        let e = cast_parameters("core.local", &["cdm=x".into()], &schema)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cdm") && e.contains("cmd, sudo"), "{e}");
        assert!(cast_parameters("core.local", &["novalue".into()], &schema).is_err());
    }

    #[test]
    fn closest_names() {
        let names = ["core.local", "core.remote", "core.http", "demo.greet"];
        assert_eq!(closest("core.locl", &names)[0], "core.local");
        assert!(closest("zzzzzzzz", &names).is_empty());
    }
}
