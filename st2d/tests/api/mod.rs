//! Shared fixtures for the API tests: an engine on a SQLite store with a demo pack, a users
//! file, the router, and a request helper that goes through the whole stack without sockets.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::Value;
use st2_core::Engine;
use st2_core::clock::SystemClock;
use st2_core::crypto::CryptoKey;
use st2_core::store::Store;
use st2d::server::config::ServeConfig;
use st2d::server::htpasswd::HtpasswdFile;
use st2d::server::{ApiSettings, ApiState, router};
use tower::ServiceExt;

pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret pass";

/// A response: status, headers, body text, body JSON (if it parses).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn fault(&self) -> &str {
        self.json["faultstring"].as_str().unwrap_or("")
    }
}

pub struct App {
    pub router: Router,
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub dir: tempfile::TempDir,
    pub token: String,
}

/// Write the demo pack: an action with a secret parameter and a webhook rule.
pub fn write_demo_pack(packs: &Path) {
    let pack = packs.join("demo");
    for sub in ["actions", "rules"] {
        std::fs::create_dir_all(pack.join(sub)).expect("pack dirs");
    }
    std::fs::write(
        pack.join("pack.yaml"),
        "---\nref: demo\nname: demo\ndescription: Demo pack\nversion: 1.2.3\nauthor: Tester\nemail: t@example.invalid\nkeywords: [demo]\n",
    )
    .expect("pack.yaml");
    std::fs::write(
        pack.join("actions/login.yaml"),
        "---\nname: login\nrunner_type: local-shell-cmd\ndescription: Uses a password\nenabled: true\nparameters:\n  password:\n    type: string\n    secret: true\n  cmd:\n    default: echo logged in\n",
    )
    .expect("action");
    std::fs::create_dir_all(pack.join("sensors")).expect("sensors dir");
    std::fs::write(pack.join("sensors/watcher.py"), "# not started: disabled\n").expect("sensor");
    std::fs::write(
        pack.join("sensors/watcher.yaml"),
        "---\nclass_name: Watcher\nentry_point: watcher.py\ndescription: Watches\nenabled: false\npoll_interval: 30\ntrigger_types:\n  - name: watched\n    description: Something was seen\n    payload_schema:\n      type: object\n",
    )
    .expect("sensor yaml");
    std::fs::create_dir_all(pack.join("aliases")).expect("aliases dir");
    std::fs::write(
        pack.join("aliases/run_cmd.yaml"),
        "---\nname: run_cmd\ndescription: Run a shell command\naction_ref: core.local\nformats:\n  - \"run {{ cmd }}\"\n  - display: \"execute <cmd>\"\n    representation:\n      - \"execute {{ cmd }} now\"\nack:\n  format: \"Running {{ execution.parameters.cmd }}\"\n  extra:\n    by: \"{{ actionalias.ref }}\"\nimmutable_parameters:\n  env:\n    GREETING: \"{{ st2kv.system.greeting }}\"\n",
    )
    .expect("run_cmd alias");
    std::fs::write(
        pack.join("aliases/collect.yaml"),
        "---\nname: collect\ndescription: Collect things\naction_ref: demo.collect\nformats:\n  - \"collect {{ items }} times {{ count=1 }}\"\nimmutable_parameters:\n  who: \"{{ api_user }}\"\n",
    )
    .expect("collect alias");
    std::fs::write(
        pack.join("aliases/idle.yaml"),
        "---\nname: idle\ndescription: Never matches\nenabled: false\naction_ref: core.local\nformats:\n  - \"run {{ cmd }}\"\n",
    )
    .expect("disabled alias");
    std::fs::write(
        pack.join("rules/on_deploy.yaml"),
        "---\nname: on_deploy\npack: demo\ndescription: Deploy hook\nenabled: true\ntrigger:\n  type: core.st2.webhook\n  parameters:\n    url: deploy\naction:\n  ref: core.local\n  parameters:\n    cmd: \"echo deploying {{ trigger.body.version }}\"\n",
    )
    .expect("rule");
}

/// A users file holding [`USER`] (bcrypt at a low cost, for speed).
pub fn write_users(path: &Path) {
    let hash = bcrypt::hash_with_result(PASSWORD, 4)
        .expect("hash")
        .format_for_version(bcrypt::Version::TwoY);
    std::fs::write(path, format!("{USER}:{hash}\n")).expect("users file");
}

pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl App {
    /// A fresh app in a temp dir (SQLite file `st2.db` there).
    pub async fn new() -> App {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::in_dir(dir).await
    }

    /// An app over the data in `dir` (reused across restarts).
    pub async fn in_dir(dir: tempfile::TempDir) -> App {
        let packs = dir.path().join("packs");
        if !packs.exists() {
            write_demo_pack(&packs);
            write_users(&dir.path().join("users"));
        }
        let (router, engine, store) = build(dir.path(), &packs, ApiSettings::default()).await;
        let mut app = App {
            router,
            engine,
            store,
            dir,
            token: String::new(),
        };
        let reply = app
            .send(
                "POST",
                "/tokens",
                &[("authorization", &basic(USER, PASSWORD))],
                Some("{}"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        app.token = reply.json["token"].as_str().expect("token").to_owned();
        app
    }

    /// Stop the engine and close the store (to reopen the same files).
    pub async fn stop(self) -> tempfile::TempDir {
        self.engine.shutdown().await;
        self.store.close().await.expect("close");
        self.dir
    }

    /// A request with `headers` and an optional body.
    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(match body {
                Some(b) => Body::from(b.to_owned()),
                None => Body::empty(),
            })
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// An authenticated request (token header).
    pub async fn call(&self, method: &str, uri: &str, body: Option<&str>) -> Reply {
        let token = self.token.clone();
        self.send(method, uri, &[("x-auth-token", &token)], body)
            .await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, None).await
    }

    /// Wait for execution `id` to complete.
    pub async fn wait(&self, id: &str) -> Value {
        self.engine
            .wait(id, Duration::from_secs(30))
            .await
            .expect("execution completes");
        self.get(&format!("/v1/executions/{id}")).await.json
    }
}

/// Engine + router over `data_dir`, the way `st2d serve` builds them.
pub async fn build(
    data_dir: &Path,
    packs: &Path,
    settings: ApiSettings,
) -> (Router, Engine, Arc<dyn Store>) {
    let config = ServeConfig {
        data_dir: data_dir.to_path_buf(),
        api_listen: "127.0.0.1:9101".parse().expect("addr"),
        auth_listen: "127.0.0.1:9100".parse().expect("addr"),
        stream_listen: "127.0.0.1:9102".parse().expect("addr"),
        users_file: data_dir.join("users"),
        packs_dirs: vec![PathBuf::from(packs)],
        configs_dir: None,
        storage: format!("sqlite://{}", data_dir.join("st2.db").display()),
        auth: true,
        token_ttl: 86_400,
        max_token_ttl: 86_400,
        max_running: 8,
        crypto_key: data_dir.join("key.json"),
        log_format: Default::default(),
        body_limit: settings.body_limit,
        allowed_origins: settings.allowed_origins.clone(),
        tls: None,
    };
    let store = st2_core::store::open::open_url(&config.storage, Arc::new(SystemClock))
        .await
        .expect("store");
    let key = CryptoKey::load_or_create(&config.crypto_key).expect("key");
    let pack_admin = st2d::server::pack_admin::PackAdmin::new();
    let engine = st2d::server::serve::start_engine(&config, store.clone(), key, &pack_admin)
        .await
        .expect("engine");
    let actions_file = data_dir.join("actions.json");
    let problems =
        st2d::server::rules_file::apply_actions(&actions_file, &engine).expect("actions file");
    assert!(problems.is_empty(), "{problems:?}");
    let aliases_file = data_dir.join("aliases.json");
    let problems =
        st2d::server::rules_file::apply_aliases(&aliases_file, &engine).expect("aliases file");
    assert!(problems.is_empty(), "{problems:?}");
    let rules_file = data_dir.join("rules.json");
    let problems = st2d::server::rules_file::apply(&rules_file, &engine).expect("rules file");
    assert!(problems.is_empty(), "{problems:?}");
    let policies_file = data_dir.join("policies.json");
    let problems =
        st2d::server::rules_file::apply_policies(&policies_file, &engine).expect("policies file");
    assert!(problems.is_empty(), "{problems:?}");
    let settings = ApiSettings {
        rules_file: Some(rules_file),
        actions_file: Some(actions_file),
        aliases_file: Some(aliases_file),
        policies_file: Some(policies_file),
        sensors_file: Some(data_dir.join("sensors.json")),
        load: Some(st2d::server::serve::load_options(&config)),
        ..settings
    };
    let state = Arc::new(ApiState {
        engine: engine.clone(),
        auth_backend: Arc::new(HtpasswdFile::new(&config.users_file)),
        settings,
        pack_admin,
    });
    (router(state), engine, store)
}
