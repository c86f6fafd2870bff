//! The request one `http-request` execution sends, read from its runner and action parameters
//! the way StackStorm's `HttpRunner` reads them.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Map, Value};
use st2_core::expr::{pyliteral, python};
use st2_core::runner::{RunContext, RunnerError};

use crate::parameter::{bad, opt_bool, opt_str, truthy, wrong_type};

/// StackStorm's default `timeout` action parameter, in seconds.
pub const DEFAULT_TIMEOUT: f64 = 60.0;

/// The `User-Agent` every request carries: `st2/v<version of st2-runners>` (StackStorm sends
/// `st2/v<st2 version>`).
pub const USER_AGENT: &str = concat!("st2/v", env!("CARGO_PKG_VERSION"));

/// The settings that need their own HTTP client; requests with equal settings share one (and
/// its connection pool).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct ClientSettings {
    pub verify_ssl_cert: bool,
    pub allow_redirects: bool,
    /// The hosts redirects may go to (`Any` unless redirects are followed and a host list is
    /// set).
    pub redirect_hosts: HostRule,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Proxy URLs may carry credentials.
        f.debug_struct("ClientSettings")
            .field("verify_ssl_cert", &self.verify_ssl_cert)
            .field("allow_redirects", &self.allow_redirects)
            .field("redirect_hosts", &self.redirect_hosts)
            .field("http_proxy", &self.http_proxy.is_some())
            .field("https_proxy", &self.https_proxy.is_some())
            .finish()
    }
}

/// A host in `url_hosts_blacklist` or `url_hosts_whitelist`, or of the request URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Host {
    /// An entry of a host list: a name or an address, with or without brackets; names compare
    /// the way the URL parser writes them (lower case, IDNA).
    fn of_entry(entry: &str) -> Host {
        let bare = entry.trim().trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Host::Ip(ip);
        }
        Url::parse(&format!("http://{bare}/"))
            .ok()
            .and_then(|u| u.host_str().map(Host::of_url_host))
            .unwrap_or_else(|| Host::Name(bare.to_ascii_lowercase()))
    }

    /// The host of a parsed URL (`[::1]` → `::1`), without port or user.
    fn of_url_host(host: &str) -> Host {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(bare.to_ascii_lowercase()),
        }
    }
}

/// Which hosts a request may go to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum HostRule {
    /// No list: any host.
    Any,
    /// `url_hosts_blacklist`.
    Block(Vec<Host>),
    /// `url_hosts_whitelist`.
    Allow(Vec<Host>),
}

impl HostRule {
    /// Whether `url` may be requested.
    ///
    /// # Errors
    /// StackStorm's message: `URL "<shown>" is blacklisted` or `… is not whitelisted`.
    pub(super) fn check(&self, url: &Url, shown: &str) -> Result<(), String> {
        let host = url.host_str().map(Host::of_url_host);
        let listed = |list: &[Host]| host.as_ref().is_some_and(|h| list.contains(h));
        match self {
            HostRule::Any => Ok(()),
            HostRule::Block(list) if listed(list) => Err(format!("URL \"{shown}\" is blacklisted")),
            HostRule::Allow(list) if !listed(list) => {
                Err(format!("URL \"{shown}\" is not whitelisted"))
            }
            HostRule::Block(_) | HostRule::Allow(_) => Ok(()),
        }
    }
}

/// A URL for messages: as it is, with any password replaced by `********`.
pub(super) fn shown_url(url: &Url) -> String {
    if url.password().is_some() {
        let mut shown = url.clone();
        // Only URLs without a host refuse a password; this one has a password, so a host.
        let _ = shown.set_password(Some("********"));
        shown.to_string()
    } else {
        url.to_string()
    }
}

/// Basic-auth credentials (the password never shows in `Debug`).
#[derive(Clone)]
pub(super) struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .finish()
    }
}

/// Everything one execution sends. No `Debug`: headers may hold tokens.
pub(super) struct Request {
    /// The URL with the `params` query appended.
    pub url: Url,
    /// The `url` parameter as given (with any password hidden), for messages.
    pub shown_url: String,
    pub method: Method,
    pub headers: HeaderMap,
    pub auth: Option<BasicAuth>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
    /// The timeout as Python prints the float (`60.0`).
    pub timeout_text: String,
    pub client: ClientSettings,
    hosts: HostRule,
}

impl Request {
    /// Read the request from the runner parameters (`url`, `headers`, `cookies`, …) and the
    /// action parameters (`body`, `method`, `params`, `timeout`, `auth`, `file_*`).
    ///
    /// # Errors
    /// [`RunnerError::Parameter`] naming the parameter that is missing or has the wrong shape.
    pub(super) fn read(ctx: &RunContext) -> Result<Request, RunnerError> {
        let runner = &ctx.runner_parameters;
        let action = &ctx.parameters;

        let raw_url = opt_str(runner, "url")?
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad("url", "is required"))?;
        let mut url = Url::parse(&raw_url).map_err(|e| bad("url", format!("{raw_url:?}: {e}")))?;
        // The URL as given (StackStorm's messages show it so), unless it holds a password.
        let shown_url = if url.password().is_some() {
            shown_url(&url)
        } else {
            raw_url.clone()
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(
                "url",
                format!("{shown_url:?}: only http and https URLs can be requested"),
            ));
        }
        if url.host_str().is_none() {
            return Err(bad("url", format!("{shown_url:?} has no host")));
        }

        let hosts = host_rule(runner)?;
        append_query(&mut url, action.get("params"))?;

        let mut headers = string_map(runner, "headers")?
            .into_iter()
            .map(|(name, value)| header(&name, &value).map(|h| (h.0, h.1)))
            .collect::<Result<HeaderMap, RunnerError>>()?;
        // The HTTP library computes the length of what it sends, as `requests` does.
        headers.remove(header::CONTENT_LENGTH);
        add_cookies(&mut headers, runner)?;
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        headers.insert(
            HeaderName::from_static("x-stanley-action"),
            HeaderValue::from_str(&ctx.action.name)
                .map_err(|e| RunnerError::Failed(format!("the action name as a header: {e}")))?,
        );

        let (timeout, timeout_text) = timeout(action)?;
        let body = action.get("body").filter(|b| !b.is_null());
        let upload = upload(action)?;
        let method = match opt_str(action, "method")? {
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| bad("method", format!("{m:?} is not an HTTP method")))?,
            None if upload.is_some() || body.is_some_and(truthy) => Method::POST,
            None => Method::GET,
        };
        let body = encode_body(body, upload, &mut headers)?;

        let username = opt_str(runner, "username")?;
        let password = opt_str(runner, "password")?;
        let auth = if username.is_some() || password.is_some() {
            Some(BasicAuth {
                username: username.unwrap_or_default(),
                password,
            })
        } else {
            action_auth(action)?
        };

        let allow_redirects = opt_bool(runner, "allow_redirects")?.unwrap_or(false);
        let client = ClientSettings {
            verify_ssl_cert: opt_bool(runner, "verify_ssl_cert")?.unwrap_or(true),
            allow_redirects,
            redirect_hosts: if allow_redirects {
                hosts.clone()
            } else {
                HostRule::Any
            },
            http_proxy: opt_str(runner, "http_proxy")?.filter(|p| !p.is_empty()),
            https_proxy: opt_str(runner, "https_proxy")?.filter(|p| !p.is_empty()),
        };
        Ok(Request {
            url,
            shown_url,
            method,
            headers,
            auth,
            body,
            timeout,
            timeout_text,
            client,
            hosts,
        })
    }

    /// Whether the URL's host passes `url_hosts_blacklist` / `url_hosts_whitelist`.
    ///
    /// # Errors
    /// StackStorm's message: `URL "<url>" is blacklisted` or `… is not whitelisted`.
    pub(super) fn check_host(&self) -> Result<(), String> {
        self.hosts.check(&self.url, &self.shown_url)
    }
}

fn host_list(params: &Map<String, Value>, name: &str) -> Result<Vec<Host>, RunnerError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(Host::of_entry(s)),
                other => Err(bad(
                    name,
                    format!("entries must be strings, not {}", python::type_name(other)),
                )),
            })
            .collect(),
        Some(other) => Err(wrong_type(name, "a list of hosts", other)),
    }
}

fn host_rule(params: &Map<String, Value>) -> Result<HostRule, RunnerError> {
    let block = host_list(params, "url_hosts_blacklist")?;
    let allow = host_list(params, "url_hosts_whitelist")?;
    match (block.is_empty(), allow.is_empty()) {
        (false, false) => Err(bad(
            "url_hosts_blacklist",
            "\"url_hosts_blacklist\" and \"url_hosts_whitelist\" parameters are mutually \
             exclusive. Only one should be provided.",
        )),
        (false, true) => Ok(HostRule::Block(block)),
        (true, false) => Ok(HostRule::Allow(allow)),
        (true, true) => Ok(HostRule::Any),
    }
}

/// A scalar as `requests` sends it in a query, form or header (Python's `str()`); `None` for
/// `null` (left out).
fn scalar_text(name: &str, key: &str, value: &Value) -> Result<Option<String>, RunnerError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(_) | Value::Bool(_) => Ok(Some(python::str(value))),
        other => Err(bad(
            name,
            format!(
                "the value of {key:?} must be a string or a number, not {}",
                python::type_name(other)
            ),
        )),
    }
}

/// `key=value` pairs of an object, lists repeating the key (as `requests` encodes `params`
/// and form bodies).
fn pairs(name: &str, map: &Map<String, Value>) -> Result<Vec<(String, String)>, RunnerError> {
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        match value {
            Value::Array(items) => {
                for item in items {
                    if let Some(text) = scalar_text(name, key, item)? {
                        out.push((key.clone(), text));
                    }
                }
            }
            other => {
                if let Some(text) = scalar_text(name, key, other)? {
                    out.push((key.clone(), text));
                }
            }
        }
    }
    Ok(out)
}

/// The `params` action parameter: an object of query parameters (or a ready query string),
/// appended to the URL's own query.
fn append_query(url: &mut Url, params: Option<&Value>) -> Result<(), RunnerError> {
    match params {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s.is_empty() => Ok(()),
        Some(Value::String(s)) => {
            let query = match url.query() {
                Some(q) if !q.is_empty() => format!("{q}&{s}"),
                _ => s.clone(),
            };
            url.set_query(Some(&query));
            Ok(())
        }
        Some(Value::Object(map)) => {
            let pairs = pairs("params", map)?;
            if !pairs.is_empty() {
                url.query_pairs_mut().extend_pairs(pairs);
            }
            Ok(())
        }
        Some(other) => Err(wrong_type("params", "an object", other)),
    }
}

/// An object parameter of string values (`headers`, `cookies`); numbers become text and
/// `null` values are left out.
fn string_map(
    params: &Map<String, Value>,
    name: &str,
) -> Result<Vec<(String, String)>, RunnerError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => {
            let mut out = Vec::with_capacity(map.len());
            for (key, value) in map {
                if let Some(text) = scalar_text(name, key, value)? {
                    out.push((key.clone(), text));
                }
            }
            Ok(out)
        }
        Some(other) => Err(wrong_type(name, "an object", other)),
    }
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), RunnerError> {
    let header_name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| bad("headers", format!("{name:?} is not a valid header name")))?;
    let header_value = HeaderValue::from_str(value).map_err(|_| {
        bad(
            "headers",
            format!("the value of {name:?} is not a valid header value (line breaks or control characters)"),
        )
    })?;
    Ok((header_name, header_value))
}

/// The `cookies` runner parameter as a `Cookie` header, unless the headers already carry one
/// (a cookie jar does not override an explicit header).
fn add_cookies(headers: &mut HeaderMap, runner: &Map<String, Value>) -> Result<(), RunnerError> {
    let cookies = string_map(runner, "cookies")?;
    if cookies.is_empty() || headers.contains_key(header::COOKIE) {
        return Ok(());
    }
    let line = cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let value = HeaderValue::from_str(&line).map_err(|_| {
        bad(
            "cookies",
            "names and values must not contain line breaks or control characters",
        )
    })?;
    headers.insert(header::COOKIE, value);
    Ok(())
}

/// The `timeout` action parameter (seconds, float) and its Python spelling.
fn timeout(action: &Map<String, Value>) -> Result<(Duration, String), RunnerError> {
    let secs = match action.get("timeout") {
        None | Some(Value::Null) => DEFAULT_TIMEOUT,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(DEFAULT_TIMEOUT),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| bad("timeout", format!("{s:?} is not a number of seconds")))?,
        Some(other) => return Err(wrong_type("timeout", "a number", other)),
    };
    if secs.is_nan() || secs <= 0.0 {
        return Err(bad(
            "timeout",
            format!(
                "must be more than 0 seconds, not {}",
                python::float_repr(secs)
            ),
        ));
    }
    let duration = Duration::try_from_secs_f64(secs).map_err(|e| {
        bad(
            "timeout",
            format!("{} seconds: {e}", python::float_repr(secs)),
        )
    })?;
    Ok((duration, python::float_repr(secs)))
}

/// A file to upload (`file_name` and `file_content`, both non-empty).
struct Upload {
    name: String,
    content: String,
    content_type: Option<String>,
}

fn upload(action: &Map<String, Value>) -> Result<Option<Upload>, RunnerError> {
    let name = opt_str(action, "file_name")?.filter(|n| !n.is_empty());
    let content = opt_str(action, "file_content")?.filter(|c| !c.is_empty());
    let content_type = opt_str(action, "file_content_type")?.filter(|t| !t.is_empty());
    Ok(match (name, content) {
        (Some(name), Some(content)) => Some(Upload {
            name,
            content,
            content_type,
        }),
        _ => None,
    })
}

/// The `auth` action parameter: `[username, password]` for basic auth; empty values mean none.
fn action_auth(action: &Map<String, Value>) -> Result<Option<BasicAuth>, RunnerError> {
    match action.get("auth") {
        None => Ok(None),
        Some(v) if !truthy(v) => Ok(None),
        Some(Value::Array(items)) => match items.as_slice() {
            [Value::String(user), Value::String(password)] => Ok(Some(BasicAuth {
                username: user.clone(),
                password: Some(password.clone()),
            })),
            _ => Err(bad(
                "auth",
                "must be a list of two strings, [username, password]",
            )),
        },
        Some(other) => Err(bad(
            "auth",
            format!(
                "must be [username, password], not a {} (send tokens with the `headers` \
                 parameter; use `username` and `password` for basic auth)",
                python::type_name(other)
            ),
        )),
    }
}

/// Whether the request's `Content-Type` is exactly `application/json` (then a string body is
/// JSON, or a Python literal, re-serialised).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json")
}

/// The bytes to send, setting `Content-Type` for form and multipart bodies when absent.
fn encode_body(
    body: Option<&Value>,
    upload: Option<Upload>,
    headers: &mut HeaderMap,
) -> Result<Option<Vec<u8>>, RunnerError> {
    if is_json(headers) {
        if upload.is_some() {
            return Err(bad(
                "file_content",
                "a file cannot be uploaded with a Content-Type of application/json",
            ));
        }
        let value = match body {
            Some(Value::String(text)) => serde_json::from_str::<Value>(text)
                .or_else(|_| pyliteral::literal_eval(text))
                .map_err(|e| {
                    bad(
                        "body",
                        format!("the request body is neither JSON nor a Python literal: {e}"),
                    )
                })?,
            Some(other) => other.clone(),
            // StackStorm encodes the missing body too: `null`.
            None => Value::Null,
        };
        let text = serde_json::to_vec(&value)
            .map_err(|e| bad("body", format!("cannot be written as JSON: {e}")))?;
        return Ok(Some(text));
    }
    let form = match body {
        None => None,
        Some(Value::Object(map)) => Some(pairs("body", map)?),
        Some(Value::String(text)) => {
            if upload.is_some() && !text.is_empty() {
                return Err(bad(
                    "body",
                    "a text body cannot be sent together with a file; give the form fields \
                     as an object",
                ));
            }
            if upload.is_none() {
                return Ok(Some(text.clone().into_bytes()));
            }
            None
        }
        Some(v @ (Value::Number(_) | Value::Bool(_))) if upload.is_none() => {
            return Ok(Some(python::str(v).into_bytes()));
        }
        Some(other) => {
            return Err(wrong_type(
                "body",
                "a string, or an object of form fields",
                other,
            ));
        }
    };
    if let Some(upload) = upload {
        let (bytes, content_type) = multipart(&form.unwrap_or_default(), &upload)?;
        if !headers.contains_key(header::CONTENT_TYPE) {
            let value = HeaderValue::from_str(&content_type)
                .map_err(|e| RunnerError::Failed(format!("multipart content type: {e}")))?;
            headers.insert(header::CONTENT_TYPE, value);
        }
        return Ok(Some(bytes));
    }
    let Some(form) = form else {
        return Ok(None);
    };
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    Ok(Some(encoded.into_bytes()))
}

/// A quoted `Content-Disposition` parameter value (`"` and line breaks percent-encoded, as
/// browsers do).
fn quoted(value: &str) -> String {
    let escaped = value
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    format!("\"{escaped}\"")
}

/// A `multipart/form-data` body: the form fields, then the file under the field name
/// `file_name`.
fn multipart(
    fields: &[(String, String)],
    upload: &Upload,
) -> Result<(Vec<u8>, String), RunnerError> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random)
        .map_err(|e| RunnerError::Failed(format!("no random multipart boundary: {e}")))?;
    let boundary: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = Vec::with_capacity(upload.content.len() + 256);
    for (name, value) in fields {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name={}\r\n\r\n",
                quoted(name)
            )
            .as_bytes(),
        );
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name={0}; filename={0}\r\n",
            quoted(&upload.name)
        )
        .as_bytes(),
    );
    if let Some(content_type) = &upload.content_type {
        if content_type.contains(['\r', '\n']) {
            return Err(bad("file_content_type", "must not contain line breaks"));
        }
        out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(upload.content.as_bytes());
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok((out, format!("multipart/form-data; boundary={boundary}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_entries_compare_like_url_hosts() {
        assert_eq!(Host::of_entry("[::1]"), Host::of_url_host("[::1]"));
        assert_eq!(
            Host::of_entry("2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
            Host::of_url_host(
                Url::parse("http://[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:8000/")
                    .expect("url")
                    .host_str()
                    .expect("host")
            )
        );
        assert_eq!(
            Host::of_entry("Example.COM"),
            Host::Name("example.com".into())
        );
        assert_ne!(
            Host::of_entry("example.com"),
            Host::of_entry("example2.com")
        );
    }

    #[test]
    fn query_pairs_repeat_lists_and_skip_nulls() {
        let mut url = Url::parse("http://h/p?a=1").expect("url");
        let params = serde_json::json!({"b": [1, "x y", null], "c": true, "d": null, "e": 2.5});
        append_query(&mut url, Some(&params)).expect("query");
        assert_eq!(url.query(), Some("a=1&b=1&b=x+y&c=True&e=2.5"));
        let nested = serde_json::json!({"b": {"c": 1}});
        assert!(append_query(&mut url, Some(&nested)).is_err());
    }

    #[test]
    fn multipart_has_fields_then_the_file() {
        let upload = Upload {
            name: "a\"b.txt".into(),
            content: "hello".into(),
            content_type: Some("text/plain".into()),
        };
        let (bytes, content_type) =
            multipart(&[("k".into(), "v".into())], &upload).expect("multipart");
        let text = String::from_utf8(bytes).expect("utf-8");
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .expect("boundary");
        assert_eq!(
            text,
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\nv\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"a%22b.txt\"; \
                 filename=\"a%22b.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
                 --{boundary}--\r\n"
            )
        );
    }
}
