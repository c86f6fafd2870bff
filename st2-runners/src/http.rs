//! `http-request`: send one HTTP request and return the response (StackStorm's
//! `contrib/runners/http_runner`).
//!
//! The result is `{"status_code", "body", "parsed", "headers"}`: `body` is the parsed JSON when
//! the response's content type is `application/json` (then `parsed` is true), else the text.
//! The execution succeeds for status codes 200 to 206 and fails for any other; a request that
//! does not finish within the `timeout` action parameter ends `timeout`.

mod request;
mod tls;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use reqwest::header::{self, HeaderMap};
use serde_json::{Map, Value, json};
use st2_core::runner::{RunContext, RunOutcome, Runner, RunnerError};
use st2_core::store::ExecutionStatus;

use crate::parameter::bad;
use request::{ClientSettings, Request};

pub use request::{DEFAULT_TIMEOUT, USER_AGENT};

/// How many redirects are followed when `allow_redirects` is true (as Python's `requests`).
pub const MAX_REDIRECTS: usize = 30;

/// Clients kept for reuse; settings beyond this many distinct combinations get a client of
/// their own per request.
const MAX_CACHED_CLIENTS: usize = 64;

/// `http-request`: sends the request described by the runner parameters (`url`, `headers`,
/// `cookies`, `username`/`password`, `allow_redirects`, `http_proxy`/`https_proxy`,
/// `verify_ssl_cert`, `url_hosts_blacklist`/`url_hosts_whitelist`) and the action parameters
/// (`body`, `method`, `params`, `timeout`, `auth`, `file_name`/`file_content`/
/// `file_content_type`).
///
/// Requests with the same TLS, redirect and proxy settings share one client, so connections to
/// a host are kept alive and reused across executions.
#[derive(Clone)]
pub struct HttpRequestRunner {
    shared: Arc<Shared>,
}

struct Shared {
    tls: tls::TlsConfigs,
    clients: Mutex<HashMap<ClientSettings, reqwest::Client>>,
}

impl fmt::Debug for HttpRequestRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clients = self
            .shared
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("HttpRequestRunner")
            .field("clients", &clients)
            .finish_non_exhaustive()
    }
}

impl Default for HttpRequestRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpRequestRunner {
    /// A runner with no clients yet (they are built on first use).
    pub fn new() -> Self {
        HttpRequestRunner {
            shared: Arc::new(Shared {
                tls: tls::TlsConfigs::new(),
                clients: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The client for `settings`, built on first use.
    fn client(&self, settings: &ClientSettings) -> Result<reqwest::Client, RunnerError> {
        let mut clients = self
            .shared
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(settings) {
            return Ok(client.clone());
        }
        let client = self.build_client(settings)?;
        if clients.len() < MAX_CACHED_CLIENTS {
            clients.insert(settings.clone(), client.clone());
        }
        Ok(client)
    }

    fn build_client(&self, settings: &ClientSettings) -> Result<reqwest::Client, RunnerError> {
        let tls = self
            .shared
            .tls
            .config(settings.verify_ssl_cert)
            .map_err(RunnerError::Failed)?;
        let redirect = if settings.allow_redirects {
            // Like `Policy::limited`, and each target must pass the host lists too.
            let hosts = settings.redirect_hosts.clone();
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > MAX_REDIRECTS {
                    let message = format!("more than {MAX_REDIRECTS} redirects");
                    return attempt.error(message);
                }
                match hosts.check(attempt.url(), &request::shown_url(attempt.url())) {
                    Ok(()) => attempt.follow(),
                    Err(message) => attempt.error(format!("redirected: {message}")),
                }
            })
        } else {
            reqwest::redirect::Policy::none()
        };
        // Only the runner parameters choose a proxy; the process environment does not.
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .tls_backend_preconfigured(tls)
            .redirect(redirect)
            .http1_only()
            .http1_title_case_headers()
            .tcp_nodelay(true);
        if let Some(proxy) = &settings.http_proxy {
            let proxy = reqwest::Proxy::http(proxy)
                .map_err(|e| bad("http_proxy", format!("not a proxy URL: {e}")))?;
            builder = builder.proxy(proxy);
        }
        if let Some(proxy) = &settings.https_proxy {
            let proxy = reqwest::Proxy::https(proxy)
                .map_err(|e| bad("https_proxy", format!("not a proxy URL: {e}")))?;
            builder = builder.proxy(proxy);
        }
        builder
            .build()
            .map_err(|e| RunnerError::Failed(format!("could not set up the HTTP client: {e}")))
    }
}

/// A `failed` outcome with StackStorm's `{error, traceback}` result.
fn failure(error: String, traceback: String) -> RunOutcome {
    RunOutcome::failed(json!({"error": error, "traceback": traceback}))
}

/// The response as StackStorm's result.
fn response_result(status: u16, headers: &HeaderMap, body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body);
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    let parsed_body = if is_json {
        serde_json::from_str::<Value>(&text).ok()
    } else {
        None
    };
    let parsed = parsed_body.is_some();
    let body = parsed_body.unwrap_or_else(|| Value::String(text.into_owned()));
    let mut result = Map::new();
    result.insert("status_code".into(), json!(status));
    result.insert("body".into(), body);
    result.insert("parsed".into(), Value::Bool(parsed));
    result.insert("headers".into(), Value::Object(response_headers(headers)));
    Value::Object(result)
}

/// Response headers as an object: names in `Title-Case` (HTTP/1 names are case-insensitive
/// and arrive lower-cased), repeated headers joined with `", "`, values decoded as Latin-1.
fn response_headers(headers: &HeaderMap) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for (name, value) in headers {
        let value: String = value.as_bytes().iter().map(|&b| char::from(b)).collect();
        let name = title_case(name.as_str());
        match out.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                out.insert(name, Value::String(value));
            }
        }
    }
    out
}

/// `content-type` → `Content-Type`.
fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        upper = c == '-';
    }
    out
}

/// StackStorm's status for a response: succeeded for 200 to 206, failed otherwise.
pub fn status_for(status_code: u16) -> ExecutionStatus {
    if (200..=206).contains(&status_code) {
        ExecutionStatus::Succeeded
    } else {
        ExecutionStatus::Failed
    }
}

/// Each error of the chain on its own line (what `traceback` shows).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut lines = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        lines.push(format!("caused by: {e}"));
        source = e.source();
    }
    lines.join("\n")
}

/// The TLS error somewhere in the chain (rustls errors travel inside `io::Error`s, possibly
/// nested, whose `source` skips them).
fn tls_error(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        let mut inner = Some(e);
        while let Some(i) = inner {
            if let Some(tls) = i.downcast_ref::<rustls::Error>() {
                return Some(tls.to_string());
            }
            inner = i
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|i| i as &(dyn std::error::Error + 'static));
        }
        current = e.source();
    }
    None
}

/// The innermost cause (e.g. `Connection refused (os error 111)`).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// A failed request as StackStorm's `{error, traceback}` with a message saying what happened.
fn request_failure(request: &Request, error: &reqwest::Error) -> RunOutcome {
    let url = &request.shown_url;
    let message = if let Some(tls) = tls_error(error) {
        let hint = if request.client.verify_ssl_cert {
            " (set verify_ssl_cert to false to accept any certificate)"
        } else {
            ""
        };
        format!("TLS handshake with \"{url}\" failed: {tls}{hint}")
    } else if error.is_connect() {
        format!("Could not connect to \"{url}\": {}", root_cause(error))
    } else if error.is_redirect() {
        format!("Request to \"{url}\" failed: {}", root_cause(error))
    } else if error.is_body() || error.is_decode() {
        format!(
            "Reading the response from \"{url}\" failed: {}",
            root_cause(error)
        )
    } else {
        format!("Request to \"{url}\" failed: {}", root_cause(error))
    };
    failure(message, chain(error))
}

/// The request for `client`, taking the headers and body out of `request` (no copies).
fn prepare(client: &reqwest::Client, request: &mut Request) -> reqwest::RequestBuilder {
    let mut builder = client
        .request(request.method.clone(), request.url.clone())
        .headers(std::mem::take(&mut request.headers));
    if let Some(auth) = &request.auth {
        builder = builder.basic_auth(&auth.username, auth.password.as_ref());
    }
    if let Some(body) = request.body.take() {
        builder = builder.body(body);
    }
    builder
}

/// Send the request and read the whole response: its status code and StackStorm's result.
async fn send(builder: reqwest::RequestBuilder) -> Result<(u16, Value), reqwest::Error> {
    let response = builder.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await?;
    Ok((status, response_result(status, &headers, &body)))
}

#[async_trait]
impl Runner for HttpRequestRunner {
    async fn run(&self, ctx: RunContext) -> Result<RunOutcome, RunnerError> {
        let mut request = Request::read(&ctx)?;
        if let Err(message) = request.check_host() {
            return Ok(failure(message, String::new()));
        }
        let client = self.client(&request.client)?;
        let builder = prepare(&client, &mut request);
        let outcome = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => RunOutcome::with_status(
                ExecutionStatus::Canceled,
                json!({"error": format!("The request to \"{}\" was canceled.", request.shown_url)}),
            ),
            sent = tokio::time::timeout(request.timeout, send(builder)) => match sent {
                Err(_) => timed_out(&request),
                Ok(Err(e)) if e.is_timeout() => timed_out(&request),
                Ok(Err(e)) => request_failure(&request, &e),
                Ok(Ok((status, result))) => RunOutcome::with_status(status_for(status), result),
            },
        };
        Ok(outcome)
    }
}

fn timed_out(request: &Request) -> RunOutcome {
    RunOutcome::with_status(
        ExecutionStatus::Timeout,
        json!({"error": format!(
            "The request to \"{}\" did not finish within {} seconds (timeout).",
            request.shown_url, request.timeout_text
        )}),
    )
}
