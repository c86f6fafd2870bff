//! The HTTP side: one blocking `reqwest` client, the three endpoints (api, auth, stream),
//! credentials (`X-Auth-Token` / `St2-Api-Key`), and errors a person can act on.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::config::{self, Credentials, Settings};

/// A non-2xx answer from the server.
#[derive(Debug)]
pub struct HttpError {
    pub status: u16,
    pub method: String,
    pub url: String,
    /// `faultstring` of the body, or the body text when it is not StackStorm's error JSON.
    pub fault: Option<String>,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let kind = if self.status >= 500 {
            "Server"
        } else {
            "Client"
        };
        write!(f, "{} {kind} Error: {reason}", self.status)?;
        match &self.fault {
            Some(m) => write!(f, "\nMESSAGE: {m} (for {} {})", self.method, self.url)?,
            None => write!(
                f,
                "\nMESSAGE: no detail in the response (for {} {})",
                self.method, self.url
            )?,
        }
        if self.status == 401 && self.url.ends_with("/tokens") {
            write!(
                f,
                "\nHINT: check the user name and password (users of st2d are managed with \
                 `st2d user add`)."
            )?;
        } else if self.status == 401 {
            write!(
                f,
                "\nHINT: log in with `st2 login <user>` (or put [credentials] username/password \
                 in ~/.st2/config), or set ST2_AUTH_TOKEN / ST2_API_KEY."
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for HttpError {}

/// Nothing answered at `url`.
#[derive(Debug)]
pub struct Unreachable {
    pub url: String,
    pub detail: String,
    /// Which setting names this endpoint.
    pub setting: &'static str,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot reach StackStorm at {} ({}).\nHINT: is st2d running? Start it with \
             `st2d serve`, or point the client at it with {}.",
            self.url, self.detail, self.setting
        )
    }
}

impl std::error::Error for Unreachable {}

/// Is `e` (or its cause) an HTTP error with `status`?
pub fn is_status(e: &anyhow::Error, status: u16) -> bool {
    e.downcast_ref::<HttpError>()
        .is_some_and(|h| h.status == status)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Api,
    Auth,
    Stream,
}

/// The client: settings, connection pool and credentials (resolved on first use).
#[derive(Debug)]
pub struct Api {
    pub settings: Settings,
    http: Client,
    /// `Some(None)`: resolved, no credentials.
    auth: RefCell<Option<Option<(&'static str, String)>>>,
}

/// Percent-encode one path segment or query value: everything but RFC 3986's unreserved
/// characters (so `,` becomes `%2C` as st2client sends it, and a space `%20`).
pub fn enc(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?k=v&…` from pairs (values encoded; empty when there are none).
pub fn query(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

fn tls_config(cacert: Option<&std::path::Path>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS setup")?;
    match cacert {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read the CA bundle {}", path.display()))?;
            for cert in certs {
                let cert = cert.with_context(|| format!("bad PEM in {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("bad certificate in {}", path.display()))?;
            }
            Ok(builder.with_root_certificates(roots).with_no_client_auth())
        }
        // Like st2client: without a CA bundle, https certificates are not verified.
        None => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_of_segments_and_queries() {
        assert_eq!(enc("core.local"), "core.local");
        assert_eq!(enc("a b/c,d+é"), "a%20b%2Fc%2Cd%2B%C3%A9");
        assert_eq!(
            query(&[
                ("include_attributes", "ref,pack".into()),
                ("limit", "5".into())
            ]),
            "?include_attributes=ref%2Cpack&limit=5"
        );
        assert_eq!(query(&[]), "");
    }
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Api {
    pub fn new(settings: Settings) -> Result<Api> {
        // reqwest needs a TLS setup even for plain http (the crate is built without a
        // default crypto provider); without a CA bundle this one loads no root store.
        let builder = Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .timeout(None)
            .user_agent(concat!("st2-rs-cli/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls_config(settings.cacert.as_deref())?);
        let http = builder.build().context("cannot set up the HTTP client")?;
        Ok(Api {
            settings,
            http,
            auth: RefCell::new(None),
        })
    }

    pub fn base(&self, endpoint: Endpoint) -> &str {
        match endpoint {
            Endpoint::Api => &self.settings.api_url,
            Endpoint::Auth => &self.settings.auth_url,
            Endpoint::Stream => &self.settings.stream_url,
        }
    }

    fn setting_name(endpoint: Endpoint) -> &'static str {
        match endpoint {
            Endpoint::Api => "ST2_API_URL / [api] url / --api-url (or ST2_BASE_URL)",
            Endpoint::Auth => "ST2_AUTH_URL / [auth] url / --auth-url (or ST2_BASE_URL)",
            Endpoint::Stream => "ST2_STREAM_URL / [stream] url / --stream-url (or ST2_BASE_URL)",
        }
    }

    /// The credentials header, logging in with `[credentials]` when needed.
    fn auth_header(&self) -> Result<Option<(&'static str, String)>> {
        if let Some(known) = self.auth.borrow().clone() {
            return Ok(known);
        }
        let header = match self.settings.credentials.clone() {
            Credentials::Token(t) => Some(("X-Auth-Token", t)),
            Credentials::ApiKey(k) => Some(("St2-Api-Key", k)),
            Credentials::None => None,
            Credentials::User { username, password } => {
                let cached = if self.settings.cache_token {
                    config::read_cached_token(&username)
                } else {
                    None
                };
                match (cached, password) {
                    (Some(t), _) => Some(("X-Auth-Token", t)),
                    (None, Some(pw)) => match self.create_token(&username, &pw, None) {
                        Ok(token) => {
                            self.cache_token(&token);
                            token["token"]
                                .as_str()
                                .map(|t| ("X-Auth-Token", t.to_owned()))
                        }
                        Err(e) if e.downcast_ref::<Unreachable>().is_some() => {
                            eprintln!("WARNING: could not log in as {username}: {e:#}");
                            None
                        }
                        Err(e) => {
                            return Err(e.context(format!(
                                "logging in as {username} with [credentials] from {}",
                                self.settings.config_path.display()
                            )));
                        }
                    },
                    (None, None) => None,
                }
            }
        };
        *self.auth.borrow_mut() = Some(header.clone());
        Ok(header)
    }

    /// Write `~/.st2/token-<user>` (a warning when it cannot be written).
    pub fn cache_token(&self, token: &Value) {
        if let (Some(user), Some(t), Some(expiry)) = (
            token["user"].as_str(),
            token["token"].as_str(),
            token["expiry"].as_str(),
        ) && let Err(e) = config::write_cached_token(user, t, expiry)
        {
            eprintln!("WARNING: the token was not cached: {e:#}");
        }
    }

    /// The token or key as a query parameter (st2stream is called that way).
    pub fn auth_query(&self) -> Result<Option<(String, String)>> {
        Ok(self.auth_header()?.map(|(h, v)| (h.to_lowercase(), v)))
    }

    fn request(&self, endpoint: Endpoint, method: Method, path: &str) -> Result<RequestBuilder> {
        let url = format!("{}{path}", self.base(endpoint));
        let mut rb = self.http.request(method, url);
        if endpoint != Endpoint::Auth
            && let Some((h, v)) = self.auth_header()?
        {
            rb = rb.header(h, v);
        }
        Ok(rb)
    }

    /// Send, turning transport failures into [`Unreachable`] and non-2xx into [`HttpError`].
    pub fn send(&self, endpoint: Endpoint, rb: RequestBuilder) -> Result<Response> {
        let request = rb.build().context("building the request")?;
        let method = request.method().to_string();
        let url = request.url().to_string();
        if self.settings.debug {
            let body = request
                .body()
                .and_then(|b| b.as_bytes())
                .map(|b| format!(" -d '{}'", String::from_utf8_lossy(b)))
                .unwrap_or_default();
            eprintln!("# curl -X {method} '{url}'{body}");
        }
        let response = self.http.execute(request).map_err(|e| {
            let mut detail = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                detail = s.to_string();
                source = s.source();
            }
            anyhow::Error::new(Unreachable {
                url: url.clone(),
                detail,
                setting: Self::setting_name(endpoint),
            })
        })?;
        let status = response.status().as_u16();
        if self.settings.debug {
            eprintln!("# -> {status}");
        }
        if status >= 400 {
            let text = response.text().unwrap_or_default();
            let fault = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    v.get("faultstring")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .or_else(|| (!text.trim().is_empty()).then(|| text.trim().to_owned()));
            return Err(HttpError {
                status,
                method,
                url,
                fault,
            }
            .into());
        }
        Ok(response)
    }

    fn json_of(&self, response: Response) -> Result<Value> {
        let url = response.url().to_string();
        let text = response
            .text()
            .with_context(|| format!("reading the response of {url}"))?;
        if self.settings.debug {
            eprintln!("# {text}");
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("the response of {url} is not JSON"))
    }

    /// A JSON call on the API endpoint.
    pub fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        self.call_at(Endpoint::Api, method, path, body)
    }

    pub fn call_at(
        &self,
        endpoint: Endpoint,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let mut rb = self.request(endpoint, method, path)?;
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let response = self.send(endpoint, rb)?;
        self.json_of(response)
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None)
    }

    /// GET; a 404 is `None`.
    pub fn get_opt(&self, path: &str) -> Result<Option<Value>> {
        match self.get(path) {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A list and its `X-Total-Count`.
    pub fn list(&self, path: &str) -> Result<(Vec<Value>, Option<u64>)> {
        let rb = self.request(Endpoint::Api, Method::GET, path)?;
        let response = self.send(Endpoint::Api, rb)?;
        let total = response
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        match self.json_of(response)? {
            Value::Array(items) => Ok((items, total)),
            Value::Null => Ok((Vec::new(), total)),
            other => anyhow::bail!("expected a list from {path}, got {other}"),
        }
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(Method::POST, path, Some(body))
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(Method::PUT, path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<Value> {
        self.call(Method::DELETE, path, None)
    }

    /// A plain-text GET on the API endpoint.
    pub fn get_text(&self, path: &str) -> Result<String> {
        let rb = self.request(Endpoint::Api, Method::GET, path)?;
        let response = self.send(Endpoint::Api, rb)?;
        response.text().context("reading the response")
    }

    /// `POST <auth>/tokens` with Basic credentials.
    pub fn create_token(&self, user: &str, password: &str, ttl: Option<u64>) -> Result<Value> {
        let body = match ttl {
            Some(t) => json!({"ttl": t}),
            None => json!({}),
        };
        let rb = self
            .request(Endpoint::Auth, Method::POST, "/tokens")?
            .basic_auth(user, Some(password))
            .header("content-type", "application/json")
            .body(body.to_string());
        let response = self.send(Endpoint::Auth, rb)?;
        self.json_of(response)
    }

    /// An event stream (SSE) on the stream endpoint; the credentials go in the query.
    pub fn open_stream(&self, path_and_query: &str) -> Result<Response> {
        let mut path = path_and_query.to_owned();
        if let Some((k, v)) = self.auth_query()? {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&format!("{k}={}", enc(&v)));
        }
        let url = format!("{}{path}", self.base(Endpoint::Stream));
        let rb = self.http.get(url).header("accept", "text/event-stream");
        self.send(Endpoint::Stream, rb)
    }
}
