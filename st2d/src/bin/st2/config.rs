//! Client configuration the way st2client reads it: `~/.st2/config` (INI), `ST2_*`
//! environment variables, command-line flags, and the token cache `~/.st2/token-<user>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// One INI file: section -> key -> value (keys lower-cased, values trimmed).
#[derive(Debug, Default, Clone)]
pub struct Ini {
    pub sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl Ini {
    /// Parse Python `configparser` text: `[section]`, `key = value` or `key: value`,
    /// `#`/`;` comment lines, indented continuation lines.
    pub fn parse(text: &str, origin: &Path) -> Result<Ini> {
        let mut ini = Ini::default();
        let mut section: Option<String> = None;
        let mut last_key: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_end();
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if line.starts_with([' ', '\t'])
                && let (Some(s), Some(k)) = (&section, &last_key)
                && let Some(v) = ini.sections.get_mut(s).and_then(|m| m.get_mut(k))
            {
                v.push('\n');
                v.push_str(trimmed);
                continue;
            }
            if let Some(name) = trimmed.strip_prefix('[') {
                let Some(name) = name.strip_suffix(']') else {
                    bail!(
                        "{}:{}: bad section header {trimmed:?}",
                        origin.display(),
                        n + 1
                    );
                };
                let name = name.trim().to_owned();
                ini.sections.entry(name.clone()).or_default();
                section = Some(name);
                last_key = None;
                continue;
            }
            let Some(at) = trimmed.find(['=', ':']) else {
                bail!(
                    "{}:{}: expected `key = value`, found {trimmed:?}",
                    origin.display(),
                    n + 1
                );
            };
            let Some(s) = &section else {
                bail!(
                    "{}:{}: `{}` is outside of any [section]",
                    origin.display(),
                    n + 1,
                    trimmed[..at].trim()
                );
            };
            let key = trimmed[..at].trim().to_lowercase();
            let value = trimmed[at + 1..].trim().to_owned();
            ini.sections
                .entry(s.clone())
                .or_default()
                .insert(key.clone(), value);
            last_key = Some(key);
        }
        Ok(ini)
    }

    /// A non-empty value.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .get(section)
            .and_then(|m| m.get(key))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A boolean like `configparser.getboolean`.
    pub fn get_bool(&self, section: &str, key: &str) -> Result<Option<bool>> {
        match self.get(section, key) {
            None => Ok(None),
            Some(v) => match v.to_lowercase().as_str() {
                "1" | "yes" | "true" | "on" => Ok(Some(true)),
                "0" | "no" | "false" | "off" => Ok(Some(false)),
                _ => bail!(
                    "[{section}] {key} = {v:?} is not a boolean (true/false, yes/no, on/off, 1/0)"
                ),
            },
        }
    }

    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        self.sections
            .entry(section.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
    }

    pub fn remove(&mut self, section: &str, key: &str) {
        if let Some(m) = self.sections.get_mut(section) {
            m.remove(key);
        }
    }

    /// The text as Python's `configparser` writes it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (section, keys) in &self.sections {
            out.push_str(&format!("[{section}]\n"));
            for (k, v) in keys {
                out.push_str(&format!("{k} = {}\n", v.replace('\n', "\n\t")));
            }
            out.push('\n');
        }
        out
    }
}

/// Values given on the command line (they win over everything else).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub skip_config: bool,
    pub base_url: Option<String>,
    pub api_url: Option<String>,
    pub auth_url: Option<String>,
    pub stream_url: Option<String>,
    pub api_version: Option<String>,
    pub cacert: Option<PathBuf>,
    pub token: Option<String>,
    pub api_key: Option<String>,
    pub debug: bool,
}

/// Where credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Token(String),
    ApiKey(String),
    /// `[credentials] username` (+ password): a cached token, or log in on first use.
    User {
        username: String,
        password: Option<String>,
    },
    None,
}

/// The resolved client settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
    pub api_url: String,
    pub auth_url: String,
    pub stream_url: String,
    pub cacert: Option<PathBuf>,
    pub debug: bool,
    pub cache_token: bool,
    pub timezone: String,
    pub credentials: Credentials,
}

/// `~/.st2` (from `HOME`).
pub fn st2_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".st2")
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn trim_slash(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

impl Settings {
    /// Flags > config file > environment > defaults, per value (as st2client merges them).
    pub fn resolve(flags: &Overrides) -> Result<Settings> {
        let config_path = flags
            .config_file
            .clone()
            .or_else(|| env("ST2_CONFIG_FILE").map(PathBuf::from))
            .unwrap_or_else(|| st2_dir().join("config"));
        let explicit = flags.config_file.is_some() || env("ST2_CONFIG_FILE").is_some();
        let skip = flags.skip_config || env("ST2_CLI_SKIP_CONFIG").is_some_and(|v| v == "1");
        let ini = if skip {
            Ini::default()
        } else {
            match std::fs::read_to_string(&config_path) {
                Ok(text) => Ini::parse(&text, &config_path)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ini::default(),
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot read the config file {}", config_path.display())
                    });
                }
            }
        };
        let pick = |flag: &Option<String>, section: &str, key: &str, var: &str| {
            flag.clone()
                .or_else(|| ini.get(section, key).map(str::to_owned))
                .or_else(|| env(var))
        };
        let base = pick(&flags.base_url, "general", "base_url", "ST2_BASE_URL")
            .unwrap_or_else(|| "http://127.0.0.1".to_owned());
        let base = trim_slash(&base);
        let version = pick(
            &flags.api_version,
            "general",
            "api_version",
            "ST2_API_VERSION",
        )
        .unwrap_or_else(|| "v1".to_owned());
        let api_url = pick(&flags.api_url, "api", "url", "ST2_API_URL")
            .unwrap_or_else(|| format!("{base}:9101/{version}"));
        let auth_url = pick(&flags.auth_url, "auth", "url", "ST2_AUTH_URL")
            .unwrap_or_else(|| format!("{base}:9100"));
        let stream_url = pick(&flags.stream_url, "stream", "url", "ST2_STREAM_URL")
            .unwrap_or_else(|| format!("{base}:9102/{version}"));
        let cacert = flags
            .cacert
            .clone()
            .or_else(|| ini.get("general", "cacert").map(PathBuf::from))
            .or_else(|| env("ST2_CACERT").map(PathBuf::from));
        let debug = flags.debug || ini.get_bool("cli", "debug")?.unwrap_or(false);
        let cache_token = ini.get_bool("cli", "cache_token")?.unwrap_or(true);
        let timezone = ini.get("cli", "timezone").unwrap_or("UTC").to_owned();
        let credentials = if let Some(t) = flags.token.clone() {
            Credentials::Token(t)
        } else if let Some(k) = flags.api_key.clone() {
            Credentials::ApiKey(k)
        } else if let Some(t) = env("ST2_AUTH_TOKEN") {
            Credentials::Token(t)
        } else if let Some(k) = env("ST2_API_KEY") {
            Credentials::ApiKey(k)
        } else if let Some(k) = ini.get("credentials", "api_key") {
            Credentials::ApiKey(k.to_owned())
        } else if let Some(u) = ini.get("credentials", "username") {
            Credentials::User {
                username: u.to_owned(),
                password: ini.get("credentials", "password").map(str::to_owned),
            }
        } else {
            Credentials::None
        };
        Ok(Settings {
            config_path,
            api_url: trim_slash(&api_url),
            auth_url: trim_slash(&auth_url),
            stream_url: trim_slash(&stream_url),
            cacert,
            debug,
            cache_token,
            timezone,
            credentials,
        })
    }

    /// What `st2 --print-config` shows.
    pub fn describe(&self) -> Value {
        let credentials = match &self.credentials {
            Credentials::Token(_) => json!({"method": "token"}),
            Credentials::ApiKey(_) => json!({"method": "api key"}),
            Credentials::User { username, password } => json!({
                "method": "username",
                "username": username,
                "password": password.as_ref().map(|_| "********"),
            }),
            Credentials::None => json!({"method": "none"}),
        };
        json!({
            "config_file": self.config_path.display().to_string(),
            "api_url": self.api_url,
            "auth_url": self.auth_url,
            "stream_url": self.stream_url,
            "cacert": self.cacert.as_ref().map(|p| p.display().to_string()),
            "debug": self.debug,
            "cache_token": self.cache_token,
            "timezone": self.timezone,
            "credentials": credentials,
        })
    }
}

/// `~/.st2/token-<user>`.
pub fn token_cache_path(user: &str) -> PathBuf {
    st2_dir().join(format!("token-{user}"))
}

/// A cached token still valid for more than 15 s.
pub fn read_cached_token(user: &str) -> Option<String> {
    let text = std::fs::read_to_string(token_cache_path(user)).ok()?;
    let data: Value = serde_json::from_str(&text).ok()?;
    let token = data.get("token")?.as_str()?.to_owned();
    let expire = data.get("expire_timestamp")?.as_f64()?;
    let now = chrono::Utc::now().timestamp() as f64;
    (expire - 15.0 > now).then_some(token)
}

/// Write the cache file the way st2client does: `{"token": …, "expire_timestamp": <epoch>}`,
/// directory mode 2770, file mode 660.
pub fn write_cached_token(user: &str, token: &str, expiry: &str) -> Result<()> {
    let expire = chrono::DateTime::parse_from_rfc3339(expiry)
        .with_context(|| format!("the token's expiry {expiry:?} is not an ISO-8601 time"))?
        .timestamp();
    let dir = st2_dir();
    create_private_dir(&dir)?;
    let path = token_cache_path(user);
    let body = json!({"token": token, "expire_timestamp": expire});
    write_private(&path, &python_json(&body))
}

/// `json.dumps` spacing (`", "` and `": "`), for files st2client also reads.
pub fn python_json(value: &Value) -> String {
    match value {
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), python_json(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(python_json).collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    }
}

pub fn create_private_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o2770))
                .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
        }
    }
    Ok(())
}

pub fn write_private(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_keys_and_comments() {
        let ini = Ini::parse(
            "# c\n[general]\nbase_url = http://h\n[credentials]\nUsername: bob\n; x\npassword=a=b\n",
            Path::new("cfg"),
        )
        .unwrap();
        assert_eq!(ini.get("general", "base_url"), Some("http://h"));
        assert_eq!(ini.get("credentials", "username"), Some("bob"));
        assert_eq!(ini.get("credentials", "password"), Some("a=b"));
        assert!(Ini::parse("key = 1\n", Path::new("cfg")).is_err());
    }

    #[test]
    fn python_json_spacing() {
        assert_eq!(
            python_json(&json!({"token": "t", "expire_timestamp": 5})),
            r#"{"token": "t", "expire_timestamp": 5}"#
        );
    }
}
