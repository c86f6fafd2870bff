//! A local HTTP (and HTTPS, with a self-signed certificate) server for the `http-request`
//! tests and bench.
//!
//! Routes: `/echo` answers JSON `{method, path, query, headers, body}` describing the request
//! (header names lower case, repeated headers joined with `", "`); `/status/<code>` answers that
//! code with a text body; `/redirect` answers 302 to `/echo`; `/redirect-to?<url>` answers 302
//! to `<url>`; `/slow` answers after 30 seconds;
//! `/text` answers `text/plain` with two `X-Multi` headers; `/bad-json` answers `application/json` that is not JSON;
//! `/ok` answers a small JSON object.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

/// A running server; it stops when the runtime that started it ends.
#[derive(Debug, Clone)]
pub struct TestServer {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    tls: bool,
}

impl TestServer {
    /// A plain HTTP server on 127.0.0.1.
    pub async fn http() -> TestServer {
        start(None).await
    }

    /// An HTTPS server on 127.0.0.1 with a self-signed certificate for `localhost` and
    /// `127.0.0.1`.
    pub async fn https() -> TestServer {
        let key = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("certificate");
        let cert = key.cert.der().clone();
        let private = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .expect("server config");
        start(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    /// `http://127.0.0.1:<port><path>` (or `https://`).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// How many requests reached the server.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// How many TCP connections the server accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let hits = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let server = TestServer {
        addr,
        hits: hits.clone(),
        connections: connections.clone(),
        tls: tls.is_some(),
    };
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            connections.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_nodelay(true);
            let hits = hits.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    handle(req)
                });
                match tls {
                    None => {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Some(acceptor) => {
                        // A client that rejects the certificate ends the handshake.
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                }
            });
        }
    });
    server
}

fn response(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT);
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let reply = match path.as_str() {
        "/echo" => {
            let method = req.method().to_string();
            let query = req.uri().query().unwrap_or_default().to_owned();
            let mut headers = Map::new();
            for (name, value) in req.headers() {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                match headers.get_mut(name.as_str()) {
                    Some(Value::String(existing)) => {
                        existing.push_str(", ");
                        existing.push_str(&value);
                    }
                    _ => {
                        headers.insert(name.as_str().to_owned(), Value::String(value));
                    }
                }
            }
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            let echo = json!({
                "method": method,
                "path": path,
                "query": query,
                "headers": headers,
                "body": body,
            });
            response(200, "application/json; charset=utf-8", echo.to_string())
        }
        "/ok" => response(200, "application/json", r#"{"ok":true}"#),
        "/text" => {
            let mut r = response(200, "text/plain", "hello");
            for value in ["a", "b"] {
                r.headers_mut()
                    .append("x-multi", value.parse().expect("header"));
            }
            r
        }
        "/bad-json" => response(200, "application/json", "not json"),
        "/redirect" => {
            let mut r = response(302, "text/plain", "moved");
            r.headers_mut()
                .insert(hyper::header::LOCATION, "/echo".parse().expect("header"));
            r
        }
        "/redirect-to" => {
            let target = req.uri().query().unwrap_or("/echo").to_owned();
            let mut r = response(302, "text/plain", "moved");
            if let Ok(location) = target.parse() {
                r.headers_mut().insert(hyper::header::LOCATION, location);
            }
            r
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            response(200, "text/plain", "late")
        }
        other => match other
            .strip_prefix("/status/")
            .and_then(|c| c.parse::<u16>().ok())
        {
            Some(code) => response(code, "text/plain", format!("status {code}")),
            None => response(404, "text/plain", "not found"),
        },
    };
    Ok(reply)
}
