//! The real `st2d serve` binary on ephemeral ports: first start creates an admin with a
//! printed password, login on the auth port, `core.local cmd="echo hi"` through the API port,
//! `st2d user add`, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

/// A one-shot HTTP/1.1 request; returns status and body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// `st2d serve` on `data` with every listener on a free port, given by flags.
    fn start(data: &std::path::Path) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_st2d"));
        command.args(["serve", "--data-dir"]).arg(data).args([
            "--api-listen",
            "127.0.0.1:0",
            "--auth-listen",
            "127.0.0.1:0",
            "--stream-listen",
            "127.0.0.1:0",
        ]);
        Self::spawn(command, data)
    }

    /// `st2d serve` configured by `ST2D_*` variables and a config file only.
    fn start_from_environment(data: &std::path::Path) -> Daemon {
        let config = data.join("st2d.toml");
        std::fs::write(
            &config,
            "api_listen = \"127.0.0.1:0\"\nauth_listen = \"127.0.0.1:0\"\nstream_listen = \"127.0.0.1:0\"\nlog_format = \"json\"\n",
        )
        .expect("config file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_st2d"));
        command
            .arg("serve")
            .env("ST2D_DATA_DIR", data)
            .env("ST2D_CONFIG", &config);
        Self::spawn(command, data)
    }

    fn spawn(mut command: Command, data: &std::path::Path) -> Daemon {
        let mut child = command
            .current_dir(data)
            .env("ST2D_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn st2d serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon { child, lines: rx }
    }

    /// Lines until all three listeners are announced.
    fn startup(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = Vec::new();
        while lines
            .iter()
            .filter(|l: &&String| l.contains("listening on"))
            .count()
            < 3
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => lines.push(l),
                Err(_) => panic!("st2d serve did not start: {lines:?}"),
            }
        }
        lines
    }
}

fn port_of(lines: &[String], service: &str) -> u16 {
    lines
        .iter()
        .find(|l| l.starts_with(&format!("st2d {service} listening on")))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {service} port in {lines:?}"))
}

fn login(port: u16, user: &str, password: &str) -> (u16, Value) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let (status, body) = http(
        port,
        "POST",
        "/tokens",
        &[
            ("Authorization", &format!("Basic {basic}")),
            ("Content-Type", "application/json"),
        ],
        "{}",
    );
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[test]
fn serve_runs_an_action_end_to_end_and_stops_on_sigterm() {
    let data = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(data.path());
    let lines = daemon.startup();
    let created = lines
        .iter()
        .find(|l| l.contains("and password: "))
        .unwrap_or_else(|| panic!("no first-start password in {lines:?}"));
    assert!(created.contains("\"st2admin\""));
    let password = created
        .rsplit("password: ")
        .next()
        .expect("password")
        .trim()
        .to_owned();
    assert_eq!(password.len(), 20);
    let (api, auth, stream) = (
        port_of(&lines, "api"),
        port_of(&lines, "auth"),
        port_of(&lines, "stream"),
    );
    assert!(api != auth && auth != stream);

    let (status, token) = login(auth, "st2admin", &password);
    assert_eq!(status, 201, "{token}");
    let token = token["token"].as_str().expect("token").to_owned();
    let (status, _) = login(auth, "st2admin", "wrong");
    assert_eq!(status, 401);

    // Without credentials: 401; the same API answers on every port.
    let (status, body) = http(api, "GET", "/v1/actions/core.local", &[], "");
    assert_eq!(status, 401, "{body}");
    let (status, _) = http(
        stream,
        "GET",
        "/api/v1/actions/core.local",
        &[("X-Auth-Token", &token)],
        "",
    );
    assert_eq!(status, 200);

    let (status, body) = http(
        api,
        "POST",
        "/v1/executions",
        &[
            ("X-Auth-Token", &token),
            ("Content-Type", "application/json"),
        ],
        r#"{"action": "core.local", "parameters": {"cmd": "echo hi"}, "user": null}"#,
    );
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let execution = loop {
        let (_, body) = http(
            api,
            "GET",
            &format!("/v1/executions/{id}"),
            &[("X-Auth-Token", &token)],
            "",
        );
        let e: Value = serde_json::from_str(&body).expect("json");
        if !matches!(
            e["status"].as_str(),
            Some("requested" | "scheduled" | "running" | "canceling")
        ) {
            break e;
        }
        assert!(Instant::now() < deadline, "execution did not finish: {e}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(execution["status"], "succeeded", "{execution}");
    assert_eq!(execution["result"]["stdout"], "hi");
    assert_eq!(execution["context"]["user"], "st2admin");

    // A second user, added while the daemon runs, can log in at once.
    let mut add = Command::new(env!("CARGO_BIN_EXE_st2d"))
        .args(["user", "add", "bob", "--password-stdin", "--data-dir"])
        .arg(data.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("user add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(b"bobs password\n")
        .expect("write");
    let out = add.wait_with_output().expect("user add finishes");
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("bobs password"));
    let (status, body) = login(auth, "bob", "bobs password");
    assert_eq!(status, 201, "{body}");

    // SIGTERM: a clean exit.
    let mut daemon = daemon;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = daemon.child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "st2d did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");

    // Restarted on the same data (configured by environment and config file this time): no
    // new password, and the old token still works.
    let again = Daemon::start_from_environment(data.path());
    let lines = again.startup();
    assert!(!lines.iter().any(|l| l.contains("password")), "{lines:?}");
    let api = port_of(&lines, "api");
    let (status, body) = http(api, "GET", "/v1/user", &[("X-Auth-Token", &token)], "");
    assert_eq!(status, 200, "{body}");
}

/// `st2d bench webhooks` starts the daemon, posts webhooks for a second and checks that every
/// accepted one was stored.
#[test]
fn the_webhook_bench_counts_what_was_accepted_and_stored() {
    let out = Command::new(env!("CARGO_BIN_EXE_st2d"))
        .args(["bench", "webhooks", "--seconds", "1", "--connections", "4"])
        .output()
        .expect("run st2d bench webhooks");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> u64 {
        stdout
            .split_whitespace()
            .skip_while(|w| *w != name)
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
    };
    assert!(stdout.starts_with("webhooks/s: "), "{stdout}");
    assert!(field("accepted:") > 0);
    assert_eq!(field("errors:"), 0);
    assert!(field("stored:") >= field("accepted:"));
    let bad = Command::new(env!("CARGO_BIN_EXE_st2d"))
        .args(["bench", "webhooks", "--connections", "0"])
        .output()
        .expect("run st2d bench webhooks");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--connections"));
}
