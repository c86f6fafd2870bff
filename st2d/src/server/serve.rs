//! Running `st2d serve`: open the store, load packs, start the engine, listen on the three
//! StackStorm ports, stop cleanly on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use st2_core::Engine;
use st2_core::clock::SystemClock;
use st2_core::crypto::{CryptoKey, Secret};
use st2_core::engine::EngineSettings;
use st2_core::runner::RunnerRegistry;
use st2_core::store::Store;
use st2_runners::{PythonRunner, PythonSettings};
use tokio::sync::watch;

use super::config::ServeConfig;
use super::htpasswd::HtpasswdFile;
use super::pack_admin::PackAdmin;
use super::{ApiSettings, ApiState, router};

/// The user created on first start.
pub const FIRST_USER: &str = "st2admin";

/// A random password of letters and digits.
pub fn random_password(len: usize) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut buf = [0u8; 32];
        getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
        // Rejection sampling keeps every character equally likely.
        let cutoff = 256 - (256 % ALPHABET.len());
        for b in buf {
            if usize::from(b) < cutoff && out.len() < len {
                out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

/// Create the users file with [`FIRST_USER`] and a random password when it does not exist;
/// returns the password when it made one (the caller shows it once).
///
/// # Errors
/// The file cannot be written.
pub fn ensure_users_file(users: &HtpasswdFile) -> anyhow::Result<Option<Secret>> {
    if users.path().exists() {
        return Ok(None);
    }
    let password = Secret::new(random_password(20)?);
    users.set_user(FIRST_USER, &password)?;
    Ok(Some(password))
}

/// Build the engine `st2d serve` runs: the store, StackStorm's runners (with Python actions
/// and sensors, and Orquesta workflows), the `pack-manager` runner of `packs.install` /
/// `packs.uninstall` (working once `pack_admin` is part of the API state given to
/// [`super::router`]), the packs.
///
/// # Errors
/// Runner registration or engine start failures.
pub async fn start_engine(
    config: &ServeConfig,
    store: Arc<dyn Store>,
    key: CryptoKey,
    pack_admin: &Arc<PackAdmin>,
) -> anyhow::Result<Engine> {
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners)?;
    let python = PythonRunner::new(PythonSettings {
        runtime_dir: config.data_dir.join("python"),
        virtualenvs_dir: Some(config.data_dir.join("virtualenvs")),
        ..PythonSettings::default()
    });
    runners.register(
        super::pack_admin::RUNNER_NAME,
        super::pack_admin::PackRunner::new(pack_admin.clone())
            .with_python(python.clone(), config.data_dir.join("virtualenvs")),
    )?;
    runners.register("python-script", python.clone())?;
    runners.register("orquesta", st2_workflow::OrquestaRunner::new())?;
    let settings = EngineSettings {
        max_running: config.max_running,
        api_url: format!(
            "{}://{}/v1",
            if config.tls.is_some() {
                "https"
            } else {
                "http"
            },
            config.api_listen
        ),
        ..EngineSettings::default()
    };
    let mut builder = Engine::builder()
        .store(store)
        .runners(runners)
        .sensor_factory(python.sensor_factory())
        .settings(settings)
        .crypto_key(key);
    for dir in &config.packs_dirs {
        builder = builder.packs_dir(dir);
    }
    if let Some(dir) = &config.configs_dir {
        builder = builder.configs_dir(dir);
    }
    let sensors_file = config.data_dir.join("sensors.json");
    let (overrides, problems) = super::rules_file::sensor_overrides(&sensors_file)
        .map_err(|e| anyhow::anyhow!("sensors enabled or disabled through the API: {e}"))?;
    for p in problems {
        tracing::warn!("{p} (skipped)");
    }
    for (reference, enabled) in overrides {
        builder = builder.sensor_enabled(reference, enabled);
    }
    Ok(builder.start().await?)
}

/// What the daemon loads packs from (at start and on `POST /packs/register`).
pub fn load_options(config: &ServeConfig) -> st2_core::LoadOptions {
    let mut options = st2_core::LoadOptions::default();
    for dir in &config.packs_dirs {
        options = options.packs_dir(dir);
    }
    if let Some(dir) = &config.configs_dir {
        options = options.configs_dir(dir);
    }
    options
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Run the daemon until SIGTERM/SIGINT.
///
/// # Errors
/// Setup failures (store, users file, key, a port already in use), each naming what failed.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let users = HtpasswdFile::new(&config.users_file);
    if let Some(password) = ensure_users_file(&users)? {
        // Shown once, on the console only (never through the log).
        println!(
            "Created users file {} with user \"{FIRST_USER}\" and password: {}\n\
             (shown only this once; change it with `st2d user add {FIRST_USER}`)",
            users.path().display(),
            password.expose()
        );
    }
    let key = CryptoKey::load_or_create(&config.crypto_key)
        .with_context(|| format!("crypto key {}", config.crypto_key.display()))?;
    let store = st2_core::store::open::open_url(&config.storage, Arc::new(SystemClock))
        .await
        .context("opening the store")?;
    let pack_admin = PackAdmin::new();
    let engine = start_engine(&config, store.clone(), key, &pack_admin).await?;
    for d in engine.diagnostics() {
        tracing::warn!(file = %d.file.display(), "{}", d.message);
    }
    let actions_file = config.data_dir.join("actions.json");
    match super::rules_file::apply_actions(&actions_file, &engine) {
        Ok(problems) => {
            for p in problems {
                tracing::warn!("{p} (skipped)");
            }
        }
        Err(e) => anyhow::bail!("actions changed through the API: {e}"),
    }
    let aliases_file = config.data_dir.join("aliases.json");
    match super::rules_file::apply_aliases(&aliases_file, &engine) {
        Ok(problems) => {
            for p in problems {
                tracing::warn!("{p} (skipped)");
            }
        }
        Err(e) => anyhow::bail!("action aliases changed through the API: {e}"),
    }
    let rules_file = config.data_dir.join("rules.json");
    match super::rules_file::apply(&rules_file, &engine) {
        Ok(problems) => {
            for p in problems {
                tracing::warn!("{p} (skipped)");
            }
        }
        Err(e) => anyhow::bail!("rules changed through the API: {e}"),
    }
    let policies_file = config.data_dir.join("policies.json");
    match super::rules_file::apply_policies(&policies_file, &engine) {
        Ok(problems) => {
            for p in problems {
                tracing::warn!("{p} (skipped)");
            }
        }
        Err(e) => anyhow::bail!("policies changed through the API: {e}"),
    }
    let state = Arc::new(ApiState {
        engine: engine.clone(),
        auth_backend: Arc::new(users),
        settings: ApiSettings {
            auth: config.auth,
            token_ttl: config.token_ttl,
            max_token_ttl: config.max_token_ttl,
            allowed_origins: config.allowed_origins.clone(),
            body_limit: config.body_limit,
            api_url: format!(
                "{}://{}/v1",
                if config.tls.is_some() {
                    "https"
                } else {
                    "http"
                },
                config.api_listen
            ),
            rules_file: Some(rules_file),
            actions_file: Some(actions_file),
            aliases_file: Some(aliases_file),
            policies_file: Some(policies_file),
            sensors_file: Some(config.data_dir.join("sensors.json")),
            load: Some(load_options(&config)),
            ..ApiSettings::default()
        },
        pack_admin,
    });
    let app = router(state);
    let mut addrs: Vec<(&str, SocketAddr)> = Vec::new();
    for (name, addr) in [
        ("api", config.api_listen),
        ("auth", config.auth_listen),
        ("stream", config.stream_listen),
    ] {
        // One listener per address; port 0 (any free port) always gets its own.
        if addr.port() == 0 || !addrs.iter().any(|(_, a)| *a == addr) {
            addrs.push((name, addr));
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let tls = match &config.tls {
        Some((cert, key)) => Some(super::tls::server_config(cert, key)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut servers = Vec::new();
    for (name, addr) in addrs {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr} ({name})"))?;
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!(%bound, service = name, scheme, "listening");
        println!("st2d {name} listening on {scheme}://{bound}");
        let mut stop = stop_rx.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let app = app.clone();
        let server = match &tls {
            Some(tls) => {
                let listener = super::tls::TlsListener::new(listener, tls.clone())
                    .with_context(|| format!("TLS on {bound} ({name})"))?;
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .await
                })
            }
            None => tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }),
        };
        servers.push(tokio::spawn(async move {
            match server.await {
                Ok(Err(e)) => tracing::error!(error = %e, service = name, "listener failed"),
                Err(e) => tracing::error!(error = %e, service = name, "listener stopped"),
                Ok(Ok(())) => {}
            }
        }));
    }
    shutdown_signal().await;
    tracing::info!("shutting down: no new requests, finishing open ones");
    let _ = stop_tx.send(true);
    for s in servers {
        if tokio::time::timeout(Duration::from_secs(10), s)
            .await
            .is_err()
        {
            tracing::warn!("a listener did not finish within 10 s");
        }
    }
    engine.shutdown().await;
    store.close().await.context("closing the store")?;
    tracing::info!("stopped");
    Ok(())
}
