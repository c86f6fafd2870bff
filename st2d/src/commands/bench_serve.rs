//! `st2d bench serve`: start `st2d serve` (this binary) several times on one data directory
//! and report, per start, the time from spawning the process to the first `200` of an
//! authenticated `GET /v1/actions/core.local`, and the process's memory after it has been idle
//! for a few seconds. Prints one line per start and a summary line:
//! `start_ms_median: X  idle_rss_mb_median: Y  idle_anon_mb_median: Z`.
//!
//! The first start creates the database and the crypto key and is reported apart (`cold`);
//! the following ones find them, as a restarted daemon does. The users file holds one user
//! with a `{SHA}` hash so that logging in measures the daemon, not bcrypt's work factor.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Args;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Starts to measure (after the first, which creates the data directory).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Packs directories handed to `st2d serve` (repeatable).
    #[arg(long = "packs-dir", value_name = "DIR")]
    packs_dirs: Vec<PathBuf>,
    /// Pack configs directory handed to `st2d serve`.
    #[arg(long, value_name = "DIR")]
    configs_dir: Option<PathBuf>,
    /// Seconds to stay idle before reading the memory.
    #[arg(long, default_value_t = 3)]
    idle_secs: u64,
}

pub(super) const USER: &str = "bench";
pub(super) const PASSWORD: &str = "password";
/// `{SHA}` of "password" (htpasswd's SHA-1 form).
pub(super) const PASSWORD_SHA: &str = "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=";

/// What one start measured.
#[derive(Debug)]
struct Sample {
    start_ms: f64,
    rss_mb: f64,
    anon_mb: f64,
    file_mb: f64,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating this st2d binary")?;
    let data = tempfile::tempdir().context("creating a data directory")?;
    let users = data.path().join("users.htpasswd");
    std::fs::write(&users, format!("{USER}:{PASSWORD_SHA}\n"))
        .with_context(|| format!("writing {}", users.display()))?;
    let mut samples = Vec::new();
    for i in 0..=args.runs {
        let sample = start_once(&exe, data.path(), &args)?;
        let label = if i == 0 { "cold" } else { "warm" };
        println!(
            "{label} start {i}: {:.1} ms  idle VmRSS {:.1} MB (anon {:.1} MB, file {:.1} MB)",
            sample.start_ms, sample.rss_mb, sample.anon_mb, sample.file_mb
        );
        if i > 0 {
            samples.push(sample);
        }
    }
    let median = |f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!(
        "start_ms_median: {:.1}  idle_rss_mb_median: {:.1}  idle_anon_mb_median: {:.1}",
        median(|s| s.start_ms),
        median(|s| s.rss_mb),
        median(|s| s.anon_mb)
    );
    Ok(())
}

/// A free loopback port (bound, read, released).
pub(super) fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

/// Kills the daemon when the measurement ends, however it ends.
pub(super) struct Daemon(pub(super) Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_once(exe: &PathBuf, data: &std::path::Path, args: &ServeArgs) -> anyhow::Result<Sample> {
    let addr = free_addr()?;
    let began = Instant::now();
    let mut daemon = spawn_serve(
        exe,
        data,
        addr,
        &args.packs_dirs,
        args.configs_dir.as_deref(),
    )?;
    let token = log_in(&mut daemon, addr, began)?;
    let get = format!(
        "GET /v1/actions/core.local HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {token}\r\n\
         Connection: close\r\n\r\n"
    );
    let (status, body) = request(addr, &get)?;
    let start_ms = began.elapsed().as_secs_f64() * 1000.0;
    if status != 200 {
        bail!("GET /v1/actions/core.local answered {status}: {body}");
    }
    std::thread::sleep(Duration::from_secs(args.idle_secs));
    let (rss_mb, anon_mb, file_mb) = memory(daemon.0.id())?;
    drop(daemon);
    Ok(Sample {
        start_ms,
        rss_mb,
        anon_mb,
        file_mb,
    })
}

/// Start `st2d serve` (`exe`) on `data`, with the API, auth and stream all on `addr`.
pub(super) fn spawn_serve(
    exe: &PathBuf,
    data: &std::path::Path,
    addr: SocketAddr,
    packs_dirs: &[PathBuf],
    configs_dir: Option<&std::path::Path>,
) -> anyhow::Result<Daemon> {
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data)
        .arg("--users-file")
        .arg(data.join("users.htpasswd"));
    for flag in ["--api-listen", "--auth-listen", "--stream-listen"] {
        cmd.arg(flag).arg(addr.to_string());
    }
    for dir in packs_dirs {
        cmd.arg("--packs-dir").arg(dir);
    }
    if let Some(dir) = configs_dir {
        cmd.arg("--configs-dir").arg(dir);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Ok(Daemon(cmd.spawn().context("starting st2d serve")?))
}

/// Log in as [`USER`] as soon as the daemon answers (within 60 s of `began`); the token.
pub(super) fn log_in(
    daemon: &mut Daemon,
    addr: SocketAddr,
    began: Instant,
) -> anyhow::Result<String> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    loop {
        if began.elapsed() > Duration::from_secs(60) {
            bail!("st2d serve did not answer within 60 s");
        }
        if let Some(status) = daemon.0.try_wait()? {
            bail!("st2d serve exited early: {status}");
        }
        let login = format!(
            "POST /auth/v1/tokens HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {basic}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        match request(addr, &login) {
            Ok((201, body)) => return token_of(&body),
            Ok((status, body)) if status != 503 => {
                bail!("login answered {status}: {body}")
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// One HTTP/1.1 exchange with `Connection: close`: the status code and the body.
fn request(addr: SocketAddr, text: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(text.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn token_of(body: &str) -> anyhow::Result<String> {
    // The body may be chunked; the token is the first `"token": "..."` in it.
    let at = body
        .find("\"token\"")
        .with_context(|| format!("no token in the login answer: {body}"))?;
    let rest = &body[at + 7..];
    let start = rest.find('"').context("malformed login answer")? + 1;
    let end = rest[start..].find('"').context("malformed login answer")?;
    Ok(rest[start..start + end].to_string())
}

/// `VmRSS`, `RssAnon` and `RssFile` of a process, in MB.
fn memory(pid: u32) -> anyhow::Result<(f64, f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    Ok((field("VmRSS:"), field("RssAnon:"), field("RssFile:")))
}
