//! `st2d serve` settings: flags, `ST2D_*` environment variables and a TOML file with the same
//! keys (flag > environment > file > default). See docs/operations.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Deserialize;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The flags of `st2d serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML config file (keys as the flags, with `_` for `-`).
    #[arg(long, env = "ST2D_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the SQLite database, users file and crypto key live [default: ./st2d-data].
    #[arg(long, env = "ST2D_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The API listener (st2api) [default: 127.0.0.1:9101].
    #[arg(long, env = "ST2D_API_LISTEN", value_name = "ADDR")]
    pub api_listen: Option<SocketAddr>,
    /// The auth listener (st2auth) [default: 127.0.0.1:9100].
    #[arg(long, env = "ST2D_AUTH_LISTEN", value_name = "ADDR")]
    pub auth_listen: Option<SocketAddr>,
    /// The stream listener (st2stream) [default: 127.0.0.1:9102].
    #[arg(long, env = "ST2D_STREAM_LISTEN", value_name = "ADDR")]
    pub stream_listen: Option<SocketAddr>,
    /// htpasswd users file [default: <data-dir>/users.htpasswd, created on first start].
    #[arg(long, env = "ST2D_USERS_FILE", value_name = "FILE")]
    pub users_file: Option<PathBuf>,
    /// A directory of packs (repeatable; `./packs` is used too when it exists). The variable
    /// takes a comma-separated list.
    #[arg(
        long = "packs-dir",
        env = "ST2D_PACKS_DIR",
        value_name = "DIR",
        value_delimiter = ','
    )]
    pub packs_dirs: Vec<PathBuf>,
    /// Pack config files (`<pack>.yaml`) [default: ./configs when it exists].
    #[arg(long, env = "ST2D_CONFIGS_DIR", value_name = "DIR")]
    pub configs_dir: Option<PathBuf>,
    /// Store URL: `sqlite:///path.db` or `postgres://…` [default: SQLite in the data dir].
    #[arg(long, env = "ST2D_STORAGE", value_name = "URL")]
    pub storage: Option<String>,
    /// Require credentials on the API [default: true].
    #[arg(long, env = "ST2D_AUTH", value_name = "BOOL")]
    pub auth: Option<bool>,
    /// Default token lifetime in seconds [default: 86400].
    #[arg(long, env = "ST2D_TOKEN_TTL", value_name = "SECONDS")]
    pub token_ttl: Option<u64>,
    /// Longest token lifetime a client may ask for, in seconds [default: 86400].
    #[arg(long, env = "ST2D_MAX_TOKEN_TTL", value_name = "SECONDS")]
    pub max_token_ttl: Option<u64>,
    /// Executions run at once [default: 256].
    #[arg(long, env = "ST2D_MAX_RUNNING", value_name = "N")]
    pub max_running: Option<usize>,
    /// Secrets key file (StackStorm's format) [default: <data-dir>/crypto.key.json, created].
    #[arg(long, env = "ST2D_CRYPTO_KEY", value_name = "FILE")]
    pub crypto_key: Option<PathBuf>,
    /// Log format [default: text].
    #[arg(long, env = "ST2D_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Largest request body in bytes [default: 10485760].
    #[arg(long, env = "ST2D_BODY_LIMIT", value_name = "BYTES")]
    pub body_limit: Option<usize>,
    /// TLS certificate chain (PEM). With `--tls-key`, every listener speaks HTTPS.
    #[arg(long, env = "ST2D_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ST2D_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// The config file: the same keys as the flags (`packs_dirs` is a list).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    data_dir: Option<PathBuf>,
    api_listen: Option<SocketAddr>,
    auth_listen: Option<SocketAddr>,
    stream_listen: Option<SocketAddr>,
    users_file: Option<PathBuf>,
    packs_dirs: Option<Vec<PathBuf>>,
    configs_dir: Option<PathBuf>,
    storage: Option<String>,
    auth: Option<bool>,
    token_ttl: Option<u64>,
    max_token_ttl: Option<u64>,
    max_running: Option<usize>,
    crypto_key: Option<PathBuf>,
    log_format: Option<LogFormat>,
    body_limit: Option<usize>,
    allowed_origins: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// Everything `st2d serve` runs with, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// st2api listener.
    pub api_listen: SocketAddr,
    /// st2auth listener.
    pub auth_listen: SocketAddr,
    /// st2stream listener.
    pub stream_listen: SocketAddr,
    /// Users file.
    pub users_file: PathBuf,
    /// Pack directories.
    pub packs_dirs: Vec<PathBuf>,
    /// Pack configs directory.
    pub configs_dir: Option<PathBuf>,
    /// Store URL.
    pub storage: String,
    /// Auth on.
    pub auth: bool,
    /// Default token TTL.
    pub token_ttl: u64,
    /// Longest token TTL.
    pub max_token_ttl: u64,
    /// Executions at once.
    pub max_running: usize,
    /// Crypto key file.
    pub crypto_key: PathBuf,
    /// Log format.
    pub log_format: LogFormat,
    /// Body limit.
    pub body_limit: usize,
    /// CORS origins.
    pub allowed_origins: Vec<String>,
    /// TLS certificate chain and key (PEM files), when HTTPS is on.
    pub tls: Option<(PathBuf, PathBuf)>,
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl ServeArgs {
    /// Read the config file (if any) and resolve every setting.
    ///
    /// # Errors
    /// A config file that cannot be read or parsed (with its line and column).
    pub fn resolve(&self) -> anyhow::Result<ServeConfig> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = absolute(
            &self
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("st2d-data")),
        );
        let addr = |flag: Option<SocketAddr>, file: Option<SocketAddr>, port: u16| {
            flag.or(file)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)))
        };
        let mut packs_dirs = Vec::new();
        let local = PathBuf::from("packs");
        if local.is_dir() {
            packs_dirs.push(absolute(&local));
        }
        let given = if self.packs_dirs.is_empty() {
            file.packs_dirs.unwrap_or_default()
        } else {
            self.packs_dirs.clone()
        };
        for d in given {
            let d = absolute(&d);
            if !packs_dirs.contains(&d) {
                packs_dirs.push(d);
            }
        }
        let configs_dir = self.configs_dir.clone().or(file.configs_dir).or_else(|| {
            let local = PathBuf::from("configs");
            local.is_dir().then_some(local)
        });
        let storage = self
            .storage
            .clone()
            .or(file.storage)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("st2.db").display()));
        let tls = match (
            self.tls_cert.clone().or(file.tls_cert),
            self.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some((absolute(&cert), absolute(&key))),
            (None, None) => None,
            _ => anyhow::bail!("TLS needs both a certificate (tls_cert) and a key (tls_key)"),
        };
        Ok(ServeConfig {
            tls,
            api_listen: addr(self.api_listen, file.api_listen, 9101),
            auth_listen: addr(self.auth_listen, file.auth_listen, 9100),
            stream_listen: addr(self.stream_listen, file.stream_listen, 9102),
            users_file: absolute(
                &self
                    .users_file
                    .clone()
                    .or(file.users_file)
                    .unwrap_or_else(|| data_dir.join("users.htpasswd")),
            ),
            packs_dirs,
            configs_dir: configs_dir.map(|d| absolute(&d)),
            storage,
            auth: self.auth.or(file.auth).unwrap_or(true),
            token_ttl: self.token_ttl.or(file.token_ttl).unwrap_or(86_400),
            max_token_ttl: self.max_token_ttl.or(file.max_token_ttl).unwrap_or(86_400),
            max_running: self.max_running.or(file.max_running).unwrap_or(256),
            crypto_key: absolute(
                &self
                    .crypto_key
                    .clone()
                    .or(file.crypto_key)
                    .unwrap_or_else(|| data_dir.join("crypto.key.json")),
            ),
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            body_limit: self
                .body_limit
                .or(file.body_limit)
                .unwrap_or(10 * 1024 * 1024),
            allowed_origins: file.allowed_origins.unwrap_or_else(|| {
                vec![
                    "http://127.0.0.1:3000".into(),
                    "http://localhost:3000".into(),
                ]
            }),
            data_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("st2d.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/st2d\"\napi_listen = \"0.0.0.0:8101\"\ntoken_ttl = 60\nauth = false\n",
        )
        .expect("write");
        let args = ServeArgs {
            config: Some(path.clone()),
            token_ttl: Some(120),
            ..ServeArgs::default()
        };
        let c = args.resolve().expect("resolve");
        assert_eq!(c.data_dir, PathBuf::from("/srv/st2d"));
        assert_eq!(c.api_listen.to_string(), "0.0.0.0:8101");
        assert_eq!(c.auth_listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.token_ttl, 120);
        assert!(!c.auth);
        assert_eq!(c.storage, "sqlite:///srv/st2d/st2.db");
        assert_eq!(c.users_file, PathBuf::from("/srv/st2d/users.htpasswd"));

        std::fs::write(&path, "data_dir = \"/x\"\nbogus = 1\n").expect("write");
        let err = format!("{:#}", args.resolve().expect_err("unknown key"));
        assert!(err.contains("bogus"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }
}
