//! The `st2` client binary against a real `st2d serve` on free ports: configuration and
//! login, every command family, tables and JSON as snapshots (ids and times redacted), and
//! the scenario of `.ci/st2client-test` (the Python client's check) with our client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const USER: &str = "tester";
const PASSWORD: &str = "tester-pass";

/// A running `st2d serve` and a HOME for the client.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    api: u16,
    auth: u16,
    stream: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one `st2` run printed.
#[derive(Debug)]
struct Run {
    ok: bool,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
    std::fs::write(path, text).expect("write");
}

/// The demo pack of `.ci/st2client-test`: a shell action, a workflow over it, a policy.
fn write_packs(packs: &Path) {
    write(
        &packs.join("demo/pack.yaml"),
        "ref: demo\nname: demo\ndescription: st2client test pack\nversion: 0.1.0\nauthor: st2-rs\nemail: dev@example.invalid\n",
    );
    write(
        &packs.join("demo/actions/greet.yaml"),
        "name: greet\nrunner_type: local-shell-cmd\ndescription: Greets\nenabled: true\nparameters:\n  who:\n    type: string\n    default: world\n  times:\n    type: integer\n    default: 1\n  loud:\n    type: boolean\n    default: false\n  cmd:\n    default: 'echo \"hello {{ who }}\"'\n    immutable: true\n",
    );
    write(
        &packs.join("demo/actions/flow.yaml"),
        "name: flow\nrunner_type: orquesta\nentry_point: workflows/flow.yaml\nenabled: true\nparameters:\n  names:\n    type: array\n    default: [ann, bob]\n",
    );
    write(
        &packs.join("demo/actions/workflows/flow.yaml"),
        "version: 1.0\ninput:\n  - names\ntasks:\n  each:\n    with: n in <% ctx(names) %>\n    action: demo.greet who=<% item(n) %>\n    next:\n      - publish:\n          - said: <% result().select($.stdout) %>\noutput:\n  - said: <% ctx(said) %>\n",
    );
    write(
        &packs.join("demo/actions/slow.yaml"),
        "name: slow\nrunner_type: orquesta\nentry_point: workflows/slow.yaml\nenabled: true\n",
    );
    write(
        &packs.join("demo/actions/workflows/slow.yaml"),
        "version: 1.0\ntasks:\n  first:\n    action: core.local cmd=\"sleep 2; echo one\"\n    next:\n      - do: second\n  second:\n    action: core.local cmd=\"sleep 0.5; echo two\"\n",
    );
    // A Python sensor that is not started (disabled); `sensor enable` starts it (it then
    // fails, having no sensor class, which is the supervisor's business).
    write(
        &packs.join("demo/sensors/watcher.py"),
        "# no sensor class here\n",
    );
    write(
        &packs.join("demo/sensors/watcher.yaml"),
        "class_name: Watcher\nentry_point: watcher.py\ndescription: Watches\nenabled: false\ntrigger_types:\n  - name: watched\n    description: Something was seen\n",
    );
    write(
        &packs.join("demo/policies/greet_concurrency.yaml"),
        "name: greet.concurrency\ndescription: At most two greetings at once\nenabled: true\nresource_ref: demo.greet\npolicy_type: action.concurrency\nparameters:\n  action: delay\n  threshold: 2\n",
    );
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let packs = dir.path().join("packs");
        std::fs::create_dir_all(&data).expect("data dir");
        std::fs::create_dir_all(dir.path().join("home")).expect("home");
        write_packs(&packs);
        let hash = bcrypt::hash_with_result(PASSWORD, 4)
            .expect("hash")
            .format_for_version(bcrypt::Version::TwoY);
        std::fs::write(data.join("users.htpasswd"), format!("{USER}:{hash}\n")).expect("users");
        let mut child = Command::new(env!("CARGO_BIN_EXE_st2d"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .arg("--packs-dir")
            .arg(&packs)
            .args([
                "--api-listen",
                "127.0.0.1:0",
                "--auth-listen",
                "127.0.0.1:0",
                "--stream-listen",
                "127.0.0.1:0",
            ])
            .current_dir(dir.path())
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
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines: Vec<String> = Vec::new();
        while lines.iter().filter(|l| l.contains("listening on")).count() < 3 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => lines.push(l),
                Err(_) => panic!("st2d serve did not start: {lines:?}"),
            }
        }
        let port = |service: &str| -> u16 {
            lines
                .iter()
                .find(|l| l.starts_with(&format!("st2d {service} listening on")))
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {service} port in {lines:?}"))
        };
        Daemon {
            api: port("api"),
            auth: port("auth"),
            stream: port("stream"),
            child,
            dir,
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `st2 ARGS` with this daemon's URLs in the environment and `extra_env`.
    fn st2_env(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        self.st2_full(args, extra_env, None)
    }

    /// `st2 ARGS` with `extra_env` and, optionally, text on standard input.
    fn st2_full(&self, args: &[&str], extra_env: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_st2"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("NO_COLOR", "1")
            .env("COLUMNS", "160")
            .env("ST2_BASE_URL", "http://127.0.0.1")
            .env("ST2_API_URL", format!("http://127.0.0.1:{}/v1", self.api))
            .env("ST2_AUTH_URL", format!("http://127.0.0.1:{}", self.auth))
            .env(
                "ST2_STREAM_URL",
                format!("http://127.0.0.1:{}/v1", self.stream),
            )
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("run st2");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        let output = child.wait_with_output().expect("st2 output");
        Run {
            ok: output.status.success(),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn st2(&self, args: &[&str]) -> Run {
        self.st2_env(args, &[])
    }

    /// `st2 ARGS`, which must succeed.
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.st2(args);
        assert!(
            run.ok,
            "st2 {args:?} failed ({}):\n{}\n{}",
            run.code, run.stdout, run.stderr
        );
        run
    }

    /// `st2 ARGS`, which must fail; stdout + stderr.
    fn fails(&self, args: &[&str]) -> String {
        let run = self.st2(args);
        assert!(
            !run.ok,
            "st2 {args:?} should have failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        format!("{}{}", run.stdout, run.stderr)
    }

    fn login(&self) {
        let run = self.ok(&["login", USER, "-p", PASSWORD]);
        assert!(run.stdout.contains("Logged in as tester"), "{}", run.stdout);
    }

    /// An execution's JSON once it no longer runs.
    fn wait_done(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let e = self.ok(&["execution", "get", id, "-j", "-a", "all"]).json();
            let status = e["status"].as_str().unwrap_or("");
            if !matches!(status, "requested" | "scheduled" | "running" | "canceling") {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "execution {id} did not finish: {e}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let e = self
                .ok(&["execution", "get", id, "-j", "-a", "status"])
                .json();
            if e["status"] == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "execution {id} never {want}: {e}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A raw POST (webhooks), as `curl` does in the shell scenario.
    fn post(&self, path: &str, token: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.api)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Auth-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
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
}

/// Snapshot settings: ids, tokens, keys and times replaced by placeholders.
fn redacted() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\b[0-9a-f]{24}\b", "[ID                    ]");
    settings.add_filter(r"\b[0-9a-f]{32}\b", "[TOKEN                         ]");
    settings.add_filter(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z",
        "[ISO TIME                 ]",
    );
    settings.add_filter(
        r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d UTC",
        "[TIME                       ]",
    );
    settings.add_filter(r"\(\d+s elapsed\)", "(Ns elapsed)");
    settings.add_filter(
        r#""expire_timestamp": \d+"#,
        r#""expire_timestamp": [EPOCH]"#,
    );
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    settings.add_filter(r"/tmp/\.tmp\w+", "[TMP]");
    settings.set_prepend_module_to_snapshot(false);
    settings
}

macro_rules! snap {
    ($name:expr, $value:expr) => {
        redacted().bind(|| insta::assert_snapshot!($name, $value))
    };
}

#[test]
fn configuration_login_and_credentials() {
    let d = Daemon::start();

    // Nothing configured: the server's 401 with what to do about it.
    let out = d.fails(&["action", "list"]);
    assert!(out.contains("401 Client Error: Unauthorized"), "{out}");
    assert!(out.contains("One of Token or API key required"), "{out}");
    assert!(out.contains("st2 login"), "{out}");
    let out = d.st2(&["whoami"]);
    assert!(
        !out.ok && out.stderr.contains("Not authenticated"),
        "{out:?}"
    );

    // Nobody listening: the URL and how to start st2d.
    let dead = d.st2_env(
        &["action", "list"],
        &[
            ("ST2_API_URL", "http://127.0.0.1:9/v1"),
            ("ST2_AUTH_TOKEN", "x"),
        ],
    );
    assert!(!dead.ok);
    assert!(
        dead.stderr
            .contains("cannot reach StackStorm at http://127.0.0.1:9/v1/actions"),
        "{}",
        dead.stderr
    );
    assert!(dead.stderr.contains("st2d serve"), "{}", dead.stderr);
    // Defaults like st2client's.
    let defaults = d
        .st2_env(
            &["print-config", "-j"],
            &[
                ("ST2_API_URL", ""),
                ("ST2_AUTH_URL", ""),
                ("ST2_STREAM_URL", ""),
                ("ST2_BASE_URL", ""),
            ],
        )
        .json();
    assert_eq!(defaults["api_url"], "http://127.0.0.1:9101/v1");
    assert_eq!(defaults["auth_url"], "http://127.0.0.1:9100");
    assert_eq!(defaults["stream_url"], "http://127.0.0.1:9102/v1");
    let based = d
        .st2_env(
            &["print-config", "-j"],
            &[
                ("ST2_API_URL", ""),
                ("ST2_BASE_URL", "https://st2.example"),
                ("ST2_API_VERSION", "v2"),
            ],
        )
        .json();
    assert_eq!(based["api_url"], "https://st2.example:9101/v2");

    // Wrong password.
    let out = d.fails(&["login", USER, "-p", "wrong"]);
    assert!(out.contains("Failed to log in as tester"), "{out}");
    assert!(out.contains("Invalid or missing credentials"), "{out}");
    assert!(out.contains("check the user name and password"), "{out}");

    // Login: config and token cache as st2client writes them.
    d.login();
    let st2 = d.home().join(".st2");
    let config = std::fs::read_to_string(st2.join("config")).expect("config");
    assert_eq!(config, "[credentials]\nusername = tester\n\n");
    let cache: Value =
        serde_json::from_str(&std::fs::read_to_string(st2.join("token-tester")).expect("cache"))
            .expect("cache JSON");
    assert_eq!(cache["token"].as_str().map(str::len), Some(32), "{cache}");
    assert!(cache["expire_timestamp"].as_i64().expect("epoch") > chrono::Utc::now().timestamp());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(st2.join("token-tester"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o660);
    }
    let who = d.ok(&["whoami"]);
    snap!("whoami", who.stdout);
    assert_eq!(d.ok(&["whoami", "-j"]).json()["username"], USER);

    // st2 auth: the token only, or user/token/expiry.
    let token = d
        .ok(&["auth", USER, "-p", PASSWORD, "-t"])
        .stdout
        .trim()
        .to_owned();
    assert_eq!(token.len(), 32);
    let auth = d.ok(&["auth", USER, "-p", PASSWORD, "-j"]).json();
    assert_eq!(auth["user"], USER);
    snap!("auth_table", d.ok(&["auth", USER, "-p", PASSWORD]).stdout);

    // A token, an API key, from the environment.
    let key = d.ok(&["apikey", "create", "-k"]).stdout.trim().to_owned();
    for env in [
        ("ST2_AUTH_TOKEN", token.as_str()),
        ("ST2_API_KEY", key.as_str()),
    ] {
        let run = d.st2_env(
            &["action", "get", "core.local", "-j", "--skip-config"],
            &[env],
        );
        assert!(run.ok, "{env:?}: {}", run.stderr);
        assert_eq!(run.json()["ref"], "core.local");
    }
    let run = d.st2_env(
        &["action", "get", "core.local", "--skip-config"],
        &[("ST2_AUTH_TOKEN", "nope")],
    );
    assert!(!run.ok && run.stderr.contains("401"), "{}", run.stderr);

    // [credentials] username + password in a --config-file: the client logs in by itself
    // and caches the token.
    let other = d.dir.path().join("other.ini");
    std::fs::write(
        &other,
        format!(
            "[general]\nbase_url = http://127.0.0.1\n\n[cli]\ncache_token = True\ntimezone = Europe/Paris\n\n[credentials]\nusername = {USER}\npassword = {PASSWORD}\n"
        ),
    )
    .expect("config");
    std::fs::remove_file(st2.join("token-tester")).expect("rm cache");
    let other = other.to_string_lossy().into_owned();
    let run = d.ok(&[
        "--config-file",
        &other,
        "action",
        "get",
        "core.local",
        "-a",
        "ref",
    ]);
    assert!(run.stdout.contains("core.local"), "{}", run.stdout);
    assert!(
        st2.join("token-tester").exists(),
        "the token was not cached"
    );
    let via_env = d.st2_env(&["key", "list"], &[("ST2_CONFIG_FILE", &other)]);
    assert!(via_env.ok, "{}", via_env.stderr);
    // The config's time zone shows in tables.
    let run = d.ok(&["--config-file", &other, "auth", USER, "-p", PASSWORD]);
    assert!(
        run.stdout.contains(" CET") || run.stdout.contains(" CEST"),
        "{}",
        run.stdout
    );
    // A broken config file names the line.
    std::fs::write(d.dir.path().join("bad.ini"), "username = x\n").expect("bad");
    let bad = d.dir.path().join("bad.ini").to_string_lossy().into_owned();
    let out = d.fails(&["--config-file", &bad, "action", "list"]);
    assert!(
        out.contains("bad.ini:1") && out.contains("outside of any [section]"),
        "{out}"
    );

    // login -w writes the password too.
    let run = d.st2_full(
        &["login", USER, "--password-stdin", "-w"],
        &[],
        Some("tester-pass\n"),
    );
    assert!(run.ok, "{}", run.stderr);
    let config = std::fs::read_to_string(st2.join("config")).expect("config");
    assert!(config.contains("password = "), "{config}");
}

#[test]
fn actions_runs_and_executions() {
    let d = Daemon::start();
    d.login();

    // action list/get: tables, JSON, chosen attributes.
    snap!(
        "action_list_demo",
        d.ok(&["action", "list", "-p", "demo"]).stdout
    );
    // A narrow width: tables wrap their cells to fit.
    snap!(
        "action_list_narrow",
        d.st2_env(
            &["action", "get", "demo.greet", "-a", "ref", "parameters"],
            &[("COLUMNS", "44")]
        )
        .stdout
    );
    snap!(
        "action_list_demo_attr",
        d.ok(&["action", "list", "-p", "demo", "-a", "ref", "runner_type"])
            .stdout
    );
    snap!(
        "action_list_demo_json",
        d.ok(&["action", "list", "-p", "demo", "-j"]).stdout
    );
    snap!(
        "action_list_demo_yaml",
        d.ok(&["action", "list", "-p", "demo", "-y"]).stdout
    );
    snap!("action_get", d.ok(&["action", "get", "demo.greet"]).stdout);
    let got = d.ok(&["action", "get", "demo.greet", "-j"]).json();
    assert_eq!(got["runner_type"], "local-shell-cmd");
    let out = d.fails(&["action", "get", "demo.gret"]);
    assert!(
        out.contains("Action \"demo.gret\" is not found. Did you mean: demo.greet"),
        "{out}"
    );

    // run: parameters cast by the schema, the output, the result, the exit status.
    let run = d.ok(&["run", "core.local", "cmd=echo hello from st2"]);
    assert!(
        run.stdout.starts_with("hello from st2\n"),
        "live output first: {}",
        run.stdout
    );
    snap!("run_core_local", run.stdout);
    let run = d
        .ok(&["run", "demo.greet", "who=bob", "times=3", "loud=yes", "-j"])
        .json();
    assert_eq!(
        run["parameters"],
        serde_json::json!({"who": "bob", "times": 3, "loud": true})
    );
    assert_eq!(run["result"]["stdout"], "hello bob");
    let run = d
        .ok(&[
            "run",
            "core.local",
            "cmd=echo $A-$B",
            "env=A=1,B=2",
            "timeout=5",
            "-j",
        ])
        .json();
    assert_eq!(
        run["parameters"]["env"],
        serde_json::json!({"A": "1", "B": "2"})
    );
    assert_eq!(run["parameters"]["timeout"], 5);
    assert_eq!(run["result"]["stdout"], "1-2");
    let script = d.dir.path().join("cmd.txt");
    std::fs::write(&script, "echo from a file").expect("file");
    let at = format!("cmd=@{}", script.display());
    let run = d.ok(&["run", "core.local", &at, "-k", "stdout"]);
    assert_eq!(
        run.stdout.lines().last(),
        Some("from a file"),
        "{}",
        run.stdout
    );
    let out = d.fails(&["run", "demo.greet", "times=many"]);
    assert!(
        out.contains("parameter \"times\" expects an integer (type integer), got \"many\""),
        "{out}"
    );
    let out = d.fails(&["run", "demo.greet", "loud=perhaps"]);
    assert!(
        out.contains("parameter \"loud\" expects a boolean"),
        "{out}"
    );
    let out = d.fails(&["run", "demo.greet", "whom=x"]);
    assert!(
        out.contains("has no parameter \"whom\"") && out.contains("times, who"),
        "{out}"
    );
    let out = d.fails(&["run", "core.locl", "cmd=x"]);
    assert!(out.contains("Did you mean: core.local"), "{out}");
    let failed = d.st2(&["run", "core.local", "cmd=echo bad >&2; exit 3"]);
    assert!(!failed.ok, "a failed execution exits non-zero");
    assert!(
        failed.stdout.contains("status: failed"),
        "{}",
        failed.stdout
    );
    snap!("run_failed", failed.stdout);

    // A workflow: its tasks' output and the tasks table.
    let run = d.ok(&["run", "demo.flow", "names=ann,bob"]);
    assert!(
        run.stdout.contains("hello ann") && run.stdout.contains("hello bob"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("+ tasks:") && run.stdout.contains("| each |"),
        "{}",
        run.stdout
    );

    // run -a: the id and where to look.
    let run = d.ok(&["run", "core.local", "cmd=echo later", "-a"]);
    assert!(run.stdout.contains("st2 execution get "), "{}", run.stdout);
    snap!("run_async", run.stdout);
    let id = run
        .stdout
        .split_whitespace()
        .find(|w| w.len() == 24)
        .expect("id")
        .to_owned();
    d.wait_done(&id);

    // execution list/get/tail/re-run.
    let list = d.ok(&["execution", "list", "-n", "3"]);
    assert_eq!(list.stdout.lines().count(), 3 + 4, "{}", list.stdout);
    snap!("execution_list", list.stdout);
    let list = d
        .ok(&[
            "execution",
            "list",
            "--action",
            "demo.greet",
            "--status",
            "succeeded",
            "-j",
        ])
        .json();
    let items = list.as_array().expect("list");
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["action"]["ref"], "demo.greet");
    let list = d
        .ok(&["execution", "list", "-n", "2", "-a", "id", "status", "-j"])
        .json();
    assert!(
        list[0].get("action").is_none() && list[0]["status"].is_string(),
        "{list}"
    );
    let get = d.ok(&["execution", "get", &id]);
    assert!(get.stdout.contains("stdout: later"), "{}", get.stdout);
    snap!("execution_get", get.stdout);
    assert_eq!(
        d.ok(&["execution", "get", &id, "-k", "stdout"]).stdout,
        "later\n"
    );
    let tail = d.ok(&["execution", "tail", &id]);
    assert_eq!(
        tail.stdout,
        format!("later\nExecution {id} has completed (status=succeeded).\n")
    );
    let tail = d.ok(&["execution", "tail", "last"]);
    assert!(tail.stdout.contains("has completed"), "{}", tail.stdout);
    let again = d.ok(&["execution", "re-run", &id, "-j"]).json();
    assert_ne!(again["id"], id.as_str());
    assert_eq!(again["result"]["stdout"], "later");
    let again = d
        .ok(&["execution", "re-run", &id, "cmd=echo changed", "-j"])
        .json();
    assert_eq!(again["result"]["stdout"], "changed");
    let out = d.fails(&["execution", "get", "000000000000000000000000"]);
    assert!(
        out.contains("Execution \"000000000000000000000000\" is not found."),
        "{out}"
    );

    // tail of a running execution: the output as it comes, from the start.
    let run = d.ok(&[
        "run",
        "core.local",
        "cmd=for i in 1 2 3; do echo line $i; sleep 0.3; done",
        "-a",
        "-j",
    ]);
    let slow = run.json()["id"].as_str().expect("id").to_owned();
    let tail = d.ok(&["execution", "tail", &slow]);
    assert_eq!(
        tail.stdout,
        format!("line 1\nline 2\nline 3\nExecution {slow} has completed (status=succeeded).\n")
    );

    // tail of a running workflow: its tasks' output and their starts and ends.
    let run = d.ok(&["run", "demo.slow", "-a", "-j"]);
    let flow = run.json()["id"].as_str().expect("id").to_owned();
    let tail = d.ok(&["execution", "tail", &flow]);
    let text = &tail.stdout;
    let one = text.find("one\n").expect("first task's output");
    let started = text.find("(task=second)").expect("second task started");
    let two = text.find("two\n").expect("second task's output");
    assert!(one < started && started < two, "{text}");
    assert!(
        text.ends_with(&format!(
            "Execution {flow} has completed (status=succeeded).\n"
        )),
        "{text}"
    );

    // pause and resume a workflow.
    let run = d.ok(&["run", "demo.slow", "-a", "-j"]);
    let flow = run.json()["id"].as_str().expect("id").to_owned();
    d.wait_status(&flow, "running");
    let paused = d.ok(&["execution", "pause", &flow]);
    assert!(paused.stdout.contains("status: paus"), "{}", paused.stdout);
    d.wait_status(&flow, "paused");
    let resumed = d.ok(&["execution", "resume", &flow]);
    assert!(
        resumed.stdout.contains("status: resuming") || resumed.stdout.contains("status: running"),
        "{}",
        resumed.stdout
    );
    assert_eq!(d.wait_done(&flow)["status"], "succeeded");
    let tasks = d.ok(&["execution", "get", &flow]);
    assert!(
        tasks.stdout.contains("| first ") && tasks.stdout.contains("| second "),
        "{}",
        tasks.stdout
    );

    // Without st2stream: a warning, polling, the same results.
    let dead = [("ST2_STREAM_URL", "http://127.0.0.1:9/v1")];
    let run = d.st2_env(&["run", "core.local", "cmd=echo polled"], &dead);
    assert!(run.ok && run.stdout.contains("stdout: polled"), "{run:?}");
    let run = d.ok(&["run", "core.local", "cmd=sleep 0.5; echo late", "-a", "-j"]);
    let late = run.json()["id"].as_str().expect("id").to_owned();
    let tail = d.st2_env(&["execution", "tail", &late], &dead);
    assert!(
        tail.ok && tail.stderr.contains("WARNING: no live events"),
        "{tail:?}"
    );
    assert_eq!(
        tail.stdout,
        format!("late\nExecution {late} has completed (status=succeeded).\n")
    );

    // cancel: a long command; pause/resume of a non-workflow is refused by the server.
    let run = d.ok(&["run", "core.local", "cmd=sleep 30", "-a", "-j"]);
    let long = run.json()["id"].as_str().expect("id").to_owned();
    d.wait_status(&long, "running");
    let out = d.st2(&["execution", "pause", &long]);
    assert!(!out.ok && out.stderr.contains("MESSAGE: "), "{out:?}");
    let cancel = d.ok(&["execution", "cancel", &long]);
    assert!(cancel.stdout.contains("cancel"), "{}", cancel.stdout);
    d.wait_status(&long, "canceled");
    let tail = d.st2(&["execution", "tail", &long]);
    assert!(
        !tail.ok && tail.stdout.contains("(status=canceled)"),
        "{tail:?}"
    );
    let out = d.fails(&["execution", "resume", &long]);
    assert!(out.contains("MESSAGE: "), "{out}");

    // action create/delete.
    let file = d.dir.path().join("action.yaml");
    std::fs::write(
        &file,
        "name: hello\npack: demo\nrunner_type: local-shell-cmd\ndescription: Says hello\nenabled: true\nparameters:\n  cmd:\n    type: string\n    default: echo hi\n",
    )
    .expect("action file");
    let created = d
        .ok(&["action", "create", &file.to_string_lossy(), "-j"])
        .json();
    assert_eq!(created["ref"], "demo.hello");
    assert_eq!(
        d.ok(&["run", "demo.hello", "-k", "stdout"])
            .stdout
            .trim_end()
            .lines()
            .last(),
        Some("hi")
    );
    let deleted = d.ok(&["action", "delete", "demo.hello"]);
    assert!(
        deleted.stdout.contains("successfully deleted"),
        "{}",
        deleted.stdout
    );
    d.fails(&["action", "get", "demo.hello"]);
}

#[test]
fn keys_rules_triggers_packs_and_the_rest() {
    let d = Daemon::start();
    d.login();

    // key set/get/list/delete: secrets, user scope, load.
    snap!("key_set", d.ok(&["key", "set", "greeting", "hello"]).stdout);
    snap!("key_get", d.ok(&["key", "get", "greeting"]).stdout);
    d.ok(&["key", "set", "secret", "s3cr3t", "--encrypt"]);
    let masked = d.ok(&["key", "get", "secret", "-j"]);
    assert!(!masked.stdout.contains("s3cr3t"), "{}", masked.stdout);
    assert_eq!(masked.json()["secret"], true);
    assert_eq!(
        d.ok(&["key", "get", "secret", "--decrypt", "-j"]).json()["value"],
        "s3cr3t"
    );
    d.ok(&["key", "set", "mine", "value1", "--scope", "user"]);
    assert_eq!(
        d.ok(&["key", "get", "mine", "--scope", "user", "-j"])
            .json()["value"],
        "value1"
    );
    d.fails(&["key", "get", "mine"]);
    let mine = d
        .ok(&[
            "key", "get", "mine", "--scope", "user", "--user", USER, "-j",
        ])
        .json();
    assert_eq!(mine["user"], USER);
    d.ok(&["key", "set", "short", "lived", "--ttl", "3600"]);
    let listed = d.ok(&["key", "list", "-j", "-a", "name", "scope"]).json();
    let names: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    for n in ["greeting", "secret", "mine", "short"] {
        assert!(names.contains(&n), "{n} in {listed}");
    }
    let system = d.ok(&["key", "list", "--scope", "system", "--prefix", "gr"]);
    snap!("key_list_prefix", system.stdout);
    let file = d.dir.path().join("keys.json");
    std::fs::write(
        &file,
        r#"[{"name": "a", "value": "1"}, {"name": "b", "value": {"x": 1}}]"#,
    )
    .expect("keys file");
    let out = d.fails(&["key", "load", &file.to_string_lossy()]);
    assert!(
        out.contains("the value of key b") && out.contains("--convert"),
        "{out}"
    );
    d.ok(&["key", "load", &file.to_string_lossy(), "-c"]);
    assert_eq!(
        d.ok(&["key", "get", "b", "-j"]).json()["value"],
        r#"{"x":1}"#
    );
    let out = d.ok(&["key", "delete", "greeting"]);
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);
    let out = d.fails(&["key", "get", "greeting"]);
    assert!(
        out.contains("Key Value Pair \"greeting\" is not found."),
        "{out}"
    );
    d.fails(&["key", "delete", "greeting"]);
    d.ok(&["key", "delete", "mine", "--scope", "user"]);
    d.ok(&["key", "set", "pre.a", "1"]);
    d.ok(&["key", "set", "pre.b", "2"]);
    let out = d.ok(&["key", "delete_by_prefix", "-p", "pre."]);
    assert!(
        out.stdout.contains("Deleted 2 keys") && out.stdout.contains("pre.a, pre.b"),
        "{}",
        out.stdout
    );
    assert_eq!(
        d.ok(&["key", "list", "--prefix", "pre.", "-j"]).json(),
        serde_json::json!([])
    );

    // rules.
    let rule = d.dir.path().join("rule.yaml");
    std::fs::write(
        &rule,
        "name: on_hook\npack: demo\ndescription: Runs on a webhook\nenabled: true\ntrigger:\n  type: core.st2.webhook\n  parameters:\n    url: sample\ncriteria: {}\naction:\n  ref: core.local\n  parameters:\n    cmd: \"echo webhook {{ trigger.body.name }}\"\n",
    )
    .expect("rule file");
    let created = d.ok(&["rule", "create", &rule.to_string_lossy()]);
    assert!(
        created.stdout.contains("demo.on_hook"),
        "{}",
        created.stdout
    );
    snap!("rule_list", d.ok(&["rule", "list"]).stdout);
    assert_eq!(
        d.ok(&["rule", "list", "-p", "demo", "-j"]).json()[0]["ref"],
        "demo.on_hook"
    );
    let got = d.ok(&["rule", "get", "demo.on_hook", "-j"]).json();
    assert_eq!(got["trigger"]["type"], "core.st2.webhook");
    let off = d.ok(&["rule", "disable", "demo.on_hook"]);
    assert!(
        off.stdout
            .lines()
            .any(|l| l.starts_with("| enabled ") && l.contains("| False")),
        "{}",
        off.stdout
    );
    assert_eq!(
        d.ok(&["rule", "get", "demo.on_hook", "-j"]).json()["enabled"],
        false
    );
    assert_eq!(
        d.ok(&["rule", "list", "--disabled", "-j"]).json()[0]["ref"],
        "demo.on_hook"
    );
    d.ok(&["rule", "enable", "demo.on_hook"]);
    assert_eq!(
        d.ok(&["rule", "get", "demo.on_hook", "-j"]).json()["enabled"],
        true
    );

    // webhooks → trigger instances → the rule's execution; re-emit.
    snap!("webhook_list", d.ok(&["webhook", "list"]).stdout);
    let token = d
        .ok(&["auth", USER, "-p", PASSWORD, "-t"])
        .stdout
        .trim()
        .to_owned();
    let (status, body) = d.post("/v1/webhooks/sample", &token, r#"{"name": "curl"}"#);
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let instance = loop {
        let list = d
            .ok(&["trigger-instance", "list", "-n", "100", "-a", "all", "-j"])
            .json();
        let hit = list.as_array().and_then(|l| {
            l.iter()
                .find(|i| i["payload"]["body"]["name"] == "curl")
                .cloned()
        });
        if let Some(i) = hit {
            break i;
        }
        assert!(Instant::now() < deadline, "no trigger instance: {list}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let iid = instance["id"].as_str().expect("id").to_owned();
    let trigger = instance["trigger"].as_str().expect("trigger").to_owned();
    let got = d.ok(&["trigger-instance", "get", &iid, "-j"]).json();
    assert_eq!(got["payload"]["body"]["name"], "curl");
    let table = d.ok(&["trigger-instance", "list", "--trigger", &trigger]);
    assert!(
        table.stdout.contains(&iid) && table.stdout.contains("| processed"),
        "{}",
        table.stdout
    );
    // Re-emit: a new instance of the same trigger, so the rule runs a second time.
    let re = d.st2(&["trigger-instance", "re-emit", &iid]);
    assert!(re.ok, "{re:?}");
    assert!(
        re.stdout
            .contains(&format!("Trigger instance {iid} succesfully re-sent.")),
        "{}",
        re.stdout
    );
    let runs = 2;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = d.ok(&[
            "execution",
            "list",
            "--action",
            "core.local",
            "-j",
            "-a",
            "result",
        ]);
        if list.stdout.matches("webhook curl").count() >= runs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rule did not run: {}",
            list.stdout
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = d.ok(&["rule", "delete", "demo.on_hook"]);
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);
    d.fails(&["rule", "get", "demo.on_hook"]);

    // trigger types, sensors, runners, policies.
    let triggers = d.ok(&["trigger", "list"]);
    assert!(
        triggers.stdout.contains("core.st2.webhook"),
        "{}",
        triggers.stdout
    );
    assert_eq!(
        d.ok(&["trigger", "get", "core.st2.webhook", "-j"]).json()["pack"],
        "core"
    );
    let sensors = d.ok(&["sensor", "list", "-j"]);
    assert_eq!(
        sensors.json()[0]["ref"],
        "demo.Watcher",
        "{}",
        sensors.stdout
    );
    assert_eq!(sensors.json()[0]["enabled"], false);
    let on = d.ok(&["sensor", "enable", "demo.Watcher", "-j"]).json();
    assert_eq!(
        (on["ref"].as_str(), on["enabled"].as_bool()),
        (Some("demo.Watcher"), Some(true))
    );
    let off = d.ok(&["sensor", "disable", "demo.Watcher"]);
    assert!(off.stdout.contains("| enabled "), "{}", off.stdout);
    assert_eq!(
        d.ok(&["sensor", "get", "demo.Watcher", "-j"]).json()["enabled"],
        false
    );
    let unknown = d.st2(&["sensor", "enable", "demo.Nobody"]);
    assert!(!unknown.ok, "{unknown:?}");
    let runners = d.ok(&["runner", "list", "-a", "name"]);
    assert!(
        runners.stdout.contains("| local-shell-cmd"),
        "{}",
        runners.stdout
    );
    assert_eq!(
        d.ok(&["runner", "get", "orquesta", "-j"]).json()["name"],
        "orquesta"
    );
    snap!("policy_list", d.ok(&["policy", "list"]).stdout);
    let policy = d
        .ok(&["policy", "get", "demo.greet.concurrency", "-j"])
        .json();
    assert_eq!(policy["parameters"]["threshold"], 2);
    let out = d.fails(&["policy", "get", "demo.nothing"]);
    assert!(
        out.contains("Policy \"demo.nothing\" is not found."),
        "{out}"
    );

    // Read-only lists: policy types, traces, rule enforcements, timers.
    let types = d.ok(&["policy-type", "list", "-j"]).json();
    assert!(
        types
            .as_array()
            .is_some_and(|t| t.iter().any(|p| p["name"] == "concurrency")),
        "{types}"
    );
    let traces = d.ok(&["trace", "list", "-j"]).json();
    assert!(traces.as_array().is_some_and(|t| !t.is_empty()), "{traces}");
    d.ok(&["rule-enforcement", "list"]);
    d.ok(&["timer", "list"]);
    // Routes st2d may not have (yet): StackStorm's request, the server's answer.
    for args in [
        &["action-alias", "list"][..],
        &["action-alias", "match", "hello"][..],
        &["pack", "search", "x"][..],
    ] {
        let run = d.st2(args);
        assert!(
            run.ok || run.stderr.contains("MESSAGE: "),
            "{args:?}: {run:?}"
        );
    }

    // action enable/disable.
    let off = d.ok(&["action", "disable", "demo.greet", "-j"]).json();
    assert_eq!(off["enabled"], false);
    let out = d.fails(&["run", "demo.greet"]);
    assert!(out.contains("disabled"), "{out}");
    assert_eq!(
        d.ok(&["action", "enable", "demo.greet", "-j"]).json()["enabled"],
        true
    );

    // packs: list/get/register; install/remove send StackStorm's request and show the
    // server's answer.
    // (Which built-in packs a server has varies; the demo pack's row is pinned.)
    let packs = d.ok(&["pack", "list"]).stdout;
    let demo_row = packs
        .lines()
        .find(|l| l.starts_with("| demo "))
        .unwrap_or_else(|| panic!("no demo row in {packs}"));
    let cells: Vec<&str> = demo_row
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        ["demo", "demo", "st2client test pack", "0.1.0", "st2-rs"]
    );
    assert!(packs.lines().any(|l| l.starts_with("| core ")), "{packs}");
    snap!("pack_get", d.ok(&["pack", "get", "demo"]).stdout);
    let registered = d.ok(&["pack", "register", "demo", "-j"]).json();
    assert_eq!(registered["actions"], 3, "{registered}");
    let out = d.fails(&["pack", "register", "nope"]);
    assert!(out.contains("MESSAGE: ") && out.contains("nope"), "{out}");
    // A server with the install route runs packs.install; one without answers with a
    // faultstring. Either way the client says what happened.
    let local = d.dir.path().join("src/hello");
    write(
        &local.join("pack.yaml"),
        "ref: hello\nname: hello\ndescription: Installed from a directory\nversion: 1.0.0\nauthor: st2-rs\nemail: dev@example.invalid\n",
    );
    write(
        &local.join("actions/hi.yaml"),
        "name: hi\nrunner_type: local-shell-cmd\nenabled: true\nparameters:\n  cmd:\n    default: echo hi\n",
    );
    let install = d.st2(&["pack", "install", &local.to_string_lossy()]);
    if install.ok {
        assert!(install.stdout.contains("| hello "), "{}", install.stdout);
        assert_eq!(
            d.ok(&["action", "get", "hello.hi", "-j"]).json()["pack"],
            "hello"
        );
        let remove = d.ok(&["pack", "remove", "hello"]);
        assert!(
            remove.stdout.contains("Removed: hello"),
            "{}",
            remove.stdout
        );
        d.fails(&["pack", "get", "hello"]);
        // A pack that cannot be installed: the execution's error.
        let out = d.fails(&["pack", "install", "foo"]);
        assert!(out.contains("pack install of foo failed"), "{out}");
    } else {
        assert!(install.stderr.contains("MESSAGE: "), "{}", install.stderr);
        let out = d.fails(&["pack", "remove", "hello"]);
        assert!(out.contains("MESSAGE: "), "{out}");
    }

    // inquiries: an ask waits for a response.
    let asked = d.ok(&["run", "core.ask", "-a", "-j"]).json();
    let ask = asked["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while d
        .ok(&["inquiry", "list", "-j"])
        .json()
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(Instant::now() < deadline, "no inquiry");
        std::thread::sleep(Duration::from_millis(100));
    }
    snap!("inquiry_list", d.ok(&["inquiry", "list"]).stdout);
    assert_eq!(
        d.ok(&["inquiry", "get", &ask, "-j"]).json()["id"],
        ask.as_str()
    );
    let out = d.fails(&["inquiry", "respond", &ask, "-r", "yes"]);
    assert!(out.contains("-r/--response is not JSON"), "{out}");
    let responded = d
        .ok(&[
            "inquiry",
            "respond",
            &ask,
            "-r",
            r#"{"continue": true}"#,
            "-j",
        ])
        .json();
    assert_eq!(responded["response"]["continue"], true);
    assert_eq!(d.wait_done(&ask)["status"], "succeeded");

    // API keys.
    let created = d
        .ok(&["apikey", "create", "-m", r#"{"used_by": "ci"}"#, "-j"])
        .json();
    assert_eq!(created["metadata"]["used_by"], "ci");
    assert!(created["key"].is_string());
    let listed = d.ok(&["apikey", "list"]);
    assert!(
        listed.stdout.contains(USER) && listed.stdout.contains("used_by"),
        "{}",
        listed.stdout
    );
    let id = created["id"].as_str().expect("id");
    assert_eq!(d.ok(&["apikey", "get", id, "-j"]).json()["user"], USER);
    let out = d.ok(&["apikey", "delete", id]);
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);
    d.fails(&["apikey", "get", id]);
}

/// `.ci/st2client-test` (the real Python client against st2d) repeated with this client:
/// the same commands, the same expectations.
#[test]
fn st2client_test_scenario() {
    let d = Daemon::start();
    // check: the command succeeds and prints `want`; fails: it fails, printing `want`.
    let check = |name: &str, want: &[&str], args: &[&str]| -> Run {
        let run = d.st2(args);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(run.ok, "{name}: exit status {}:\n{all}", run.code);
        assert!(
            want.iter().any(|w| all.contains(w)),
            "{name}: {want:?} not in:\n{all}"
        );
        run
    };
    let fails = |name: &str, want: &[&str], args: &[&str]| {
        let run = d.st2(args);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(!run.ok, "{name}: succeeded but should have failed:\n{all}");
        assert!(
            want.iter().any(|w| all.contains(w)),
            "{name}: {want:?} not in:\n{all}"
        );
    };

    fails(
        "no credentials",
        &["Unauthorized", "Not authenticated"],
        &["action", "list"],
    );
    check(
        "login",
        &["Logged in as tester"],
        &["login", USER, "-p", PASSWORD],
    );
    check("whoami", &["tester"], &["whoami"]);
    check("action list", &["demo.greet"], &["action", "list"]);
    check(
        "action list --pack",
        &["core.local"],
        &["action", "list", "-p", "core"],
    );
    check(
        "action get",
        &["local-shell-cmd"],
        &["action", "get", "demo.greet"],
    );

    check(
        "run core.local",
        &["hello from st2"],
        &["run", "core.local", "cmd=echo hello from st2"],
    );
    check(
        "run status",
        &["succeeded"],
        &["run", "core.local", "cmd=echo again"],
    );
    check(
        "run pack action",
        &["hello tester"],
        &["run", "demo.greet", "who=tester"],
    );
    check("run workflow", &["hello bob"], &["run", "demo.flow"]);
    check("workflow children", &["each"], &["run", "demo.flow"]);
    fails(
        "run failing command",
        &["failed"],
        &["run", "core.local", "cmd=exit 3"],
    );
    fails(
        "run unknown action",
        &["not found", "cannot be found", "doesn't exist"],
        &["run", "nope.nothing"],
    );

    let id = d.ok(&["run", "core.local", "cmd=echo listed", "-j"]).json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    check("execution list", &[&id], &["execution", "list", "-n", "20"]);
    check("execution get", &["listed"], &["execution", "get", &id]);
    check(
        "execution get json",
        &["\"stdout\": \"listed\""],
        &["execution", "get", &id, "-j"],
    );
    check(
        "execution tail (finished)",
        &["listed"],
        &["execution", "tail", &id],
    );
    check(
        "execution re-run",
        &["listed"],
        &["execution", "re-run", &id],
    );
    let long = d.ok(&["run", "core.local", "cmd=sleep 30", "-a"]).stdout;
    let long = long
        .split_whitespace()
        .find(|w| w.len() == 24 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .expect("id")
        .to_owned();
    d.wait_status(&long, "running");
    check(
        "execution cancel",
        &["cancel"],
        &["execution", "cancel", &long],
    );
    d.wait_status(&long, "canceled");
    check(
        "canceled status",
        &["canceled"],
        &["execution", "get", &long],
    );

    check(
        "key set",
        &["greeting"],
        &["key", "set", "greeting", "hello"],
    );
    check("key get", &["hello"], &["key", "get", "greeting"]);
    check("key list", &["greeting"], &["key", "list"]);
    check(
        "key set encrypted",
        &["secret"],
        &["key", "set", "secret", "s3cr3t", "--encrypt"],
    );
    check("key get masked", &["secret"], &["key", "get", "secret"]);
    let masked = d.ok(&["key", "get", "secret", "-j"]);
    assert!(
        !masked.stdout.contains("s3cr3t"),
        "secret shown without --decrypt"
    );
    check(
        "key get decrypt",
        &["s3cr3t"],
        &["key", "get", "secret", "--decrypt"],
    );
    check(
        "key set user scope",
        &["mine"],
        &["key", "set", "mine", "value1", "--scope", "user"],
    );
    check(
        "key get user scope",
        &["value1"],
        &["key", "get", "mine", "--scope", "user"],
    );
    check("key delete", &["deleted"], &["key", "delete", "greeting"]);
    fails(
        "key deleted",
        &["not found", "doesn't exist"],
        &["key", "get", "greeting"],
    );

    let rule = d.dir.path().join("rule.yaml");
    std::fs::write(
        &rule,
        "name: on_hook\npack: demo\ndescription: Runs on a webhook\nenabled: true\ntrigger:\n  type: core.st2.webhook\n  parameters:\n    url: sample\ncriteria: {}\naction:\n  ref: core.local\n  parameters:\n    cmd: \"echo webhook {{ trigger.body.name }}\"\n",
    )
    .expect("rule file");
    let rule = rule.to_string_lossy().into_owned();
    check("rule create", &["demo.on_hook"], &["rule", "create", &rule]);
    check("rule list", &["demo.on_hook"], &["rule", "list"]);
    check(
        "rule get",
        &["core.st2.webhook"],
        &["rule", "get", "demo.on_hook"],
    );
    check(
        "rule disable",
        &["False", "false"],
        &["rule", "disable", "demo.on_hook"],
    );
    check(
        "rule enable",
        &["True", "true"],
        &["rule", "enable", "demo.on_hook"],
    );
    check("trigger list", &["core.st2.webhook"], &["trigger", "list"]);
    check("webhook list", &["sample"], &["webhook", "list"]);

    let token = d
        .ok(&["auth", USER, "-p", PASSWORD, "-t"])
        .stdout
        .trim()
        .to_owned();
    let (status, body) = d.post("/v1/webhooks/sample", &token, r#"{"name": "curl"}"#);
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !d
        .ok(&["execution", "list", "-n", "10", "-j", "-a", "result"])
        .stdout
        .contains("webhook curl")
    {
        assert!(Instant::now() < deadline, "the webhook's rule did not run");
        std::thread::sleep(Duration::from_millis(100));
    }
    check(
        "rule delete",
        &["deleted"],
        &["rule", "delete", "demo.on_hook"],
    );

    check("pack list", &["demo"], &["pack", "list"]);
    check(
        "pack register",
        &["demo", "actions"],
        &["pack", "register", "demo"],
    );
    check("inquiry list", &[""], &["inquiry", "list"]);

    let key = d.ok(&["apikey", "create", "-k"]).stdout.trim().to_owned();
    check("apikey list", &["tester"], &["apikey", "list"]);
    let with_key = d.st2_env(&["action", "get", "core.local"], &[("ST2_API_KEY", &key)]);
    assert!(
        with_key.ok && with_key.stdout.contains("core.local"),
        "api key: {with_key:?}"
    );
    let keys = d.ok(&["apikey", "list", "-j"]).json();
    let key_id = keys[0]["id"].as_str().expect("id").to_owned();
    check(
        "apikey delete",
        &["deleted"],
        &["apikey", "delete", &key_id],
    );
}
