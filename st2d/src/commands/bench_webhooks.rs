//! `st2d bench webhooks`: start `st2d serve` (this binary) on a fresh data directory and post
//! `POST /v1/webhooks/st2` (`core.st2.sensor.process_spawn`, token auth) from keep-alive
//! connections for a while, each connection sending its next request once the previous one is
//! answered (a bounded load). Then count the trigger instances the daemon stored. Prints:
//! `webhooks/s: X  accepted: N  errors: E  stored: S`.
//!
//! The client runs in this process on the same machine as the daemon, so on a 2-core host the
//! two share the cores, as a load generator on loopback does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::bench_serve::{PASSWORD_SHA, USER, free_addr, log_in, spawn_serve};

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    /// Keep-alive connections posting at once.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds to post for.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Packs directories handed to `st2d serve` (repeatable).
    #[arg(long = "packs-dir", value_name = "DIR")]
    packs_dirs: Vec<PathBuf>,
}

const BODY: &str = r#"{"trigger": "core.st2.sensor.process_spawn", "payload": {"pid": 1}}"#;

/// Answers by status: 202 (accepted) and anything else.
#[derive(Debug, Default)]
struct Counts {
    accepted: AtomicU64,
    errors: AtomicU64,
}

pub async fn run(args: WebhooksArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.seconds == 0 {
        bail!("--connections and --seconds must be at least 1");
    }
    let exe = std::env::current_exe().context("locating this st2d binary")?;
    let data = tempfile::tempdir().context("creating a data directory")?;
    let users = data.path().join("users.htpasswd");
    std::fs::write(&users, format!("{USER}:{PASSWORD_SHA}\n"))
        .with_context(|| format!("writing {}", users.display()))?;
    let addr = free_addr()?;
    let data_dir = data.path().to_path_buf();
    let packs_dirs = args.packs_dirs.clone();
    let (daemon, token) = tokio::task::spawn_blocking(move || {
        let began = Instant::now();
        let mut daemon = spawn_serve(&exe, &data_dir, addr, &packs_dirs, None)?;
        let token = log_in(&mut daemon, addr, began)?;
        anyhow::Ok((daemon, token))
    })
    .await??;

    let request = Arc::new(
        format!(
            "POST /v1/webhooks/st2 HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
            BODY.len()
        )
        .into_bytes(),
    );
    let counts = Arc::new(Counts::default());
    let began = Instant::now();
    let deadline = began + Duration::from_secs(args.seconds);
    let clients: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(post_until(addr, request.clone(), deadline, counts.clone())))
        .collect();
    for client in clients {
        client.await??;
    }
    let elapsed = began.elapsed().as_secs_f64();

    let get = format!(
        "GET /v1/triggerinstances?trigger_type=core.st2.sensor.process_spawn&limit=1 HTTP/1.1\r\n\
         Host: {addr}\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n"
    );
    let stored = tokio::task::spawn_blocking(move || total_count(addr, &get)).await??;
    drop(daemon);
    let accepted = counts.accepted.load(Ordering::Relaxed);
    let errors = counts.errors.load(Ordering::Relaxed);
    println!(
        "webhooks/s: {:.0}  accepted: {accepted}  errors: {errors}  stored: {stored}",
        accepted as f64 / elapsed
    );
    if stored < accepted {
        bail!("{accepted} webhooks were accepted but only {stored} trigger instances stored");
    }
    Ok(())
}

/// Post on one keep-alive connection until `deadline`, one request at a time.
async fn post_until(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    deadline: Instant,
    counts: Arc<Counts>,
) -> anyhow::Result<()> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .context("connecting to st2d serve")?;
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        stream.write_all(&request).await?;
        let status = read_response(&mut stream, &mut buf).await?;
        let count = if status == 202 {
            &counts.accepted
        } else {
            &counts.errors
        };
        count.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Read one response with a `Content-Length` body; its status.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> anyhow::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).context("response head")?;
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .context("no status in the response")?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .context("a response without Content-Length")?;
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    bail!("the connection closed mid-response");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the connection closed before a response");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The `X-Total-Count` of a listing.
fn total_count(addr: SocketAddr, get: &str) -> anyhow::Result<u64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(get.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        bail!("GET /v1/triggerinstances answered {status}");
    }
    response
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-total-count")
                .then(|| value.trim().parse().ok())?
        })
        .context("no X-Total-Count in the trigger instance listing")
}
