//! The default [`AuthBackend`]: an htpasswd-compatible users file (`user:hash` per line), as
//! StackStorm's `flat_file` backend reads it. Hashes: bcrypt (`$2y$`, `$2b$`, `$2a$`), Apache
//! MD5 (`$apr1$`), `{SHA}` and sha-crypt (`$5$`, `$6$`). The file is read on each login, so
//! `st2d user add` takes effect without a restart.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine as _;
use md5::{Digest, Md5};
use st2_core::auth::{AuthBackend, AuthError};
use st2_core::crypto::Secret;
use subtle::ConstantTimeEq;

/// An htpasswd users file.
#[derive(Debug, Clone)]
pub struct HtpasswdFile {
    path: PathBuf,
}

/// Why the users file could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UsersFileError {
    /// Reading or writing failed.
    #[error("users file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A user name htpasswd cannot hold.
    #[error("invalid user name {0:?}: it must be non-empty and contain no ':' or whitespace")]
    BadName(String),
    /// An empty password.
    #[error("the password must not be empty")]
    EmptyPassword,
    /// Hashing failed.
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

impl HtpasswdFile {
    /// The users file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Add `user` with `password` (bcrypt), or replace their password; creates the file
    /// (mode 0600) when missing.
    ///
    /// # Errors
    /// [`UsersFileError`].
    pub fn set_user(&self, user: &str, password: &Secret) -> Result<(), UsersFileError> {
        if user.is_empty() || user.contains(':') || user.chars().any(char::is_whitespace) {
            return Err(UsersFileError::BadName(user.to_owned()));
        }
        if password.expose().is_empty() {
            return Err(UsersFileError::EmptyPassword);
        }
        let hash = bcrypt::hash_with_result(password.expose(), bcrypt::DEFAULT_COST)
            .map_err(|e| UsersFileError::Hash(e.to_string()))?
            .format_for_version(bcrypt::Version::TwoY);
        let io = |source| UsersFileError::Io {
            path: self.path.clone(),
            source,
        };
        let existing = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        let mut lines: Vec<String> = Vec::new();
        let mut replaced = false;
        for line in existing.lines() {
            if line.split_once(':').is_some_and(|(u, _)| u == user) {
                if !replaced {
                    lines.push(format!("{user}:{hash}"));
                    replaced = true;
                }
            } else {
                lines.push(line.to_owned());
            }
        }
        if !replaced {
            lines.push(format!("{user}:{hash}"));
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension("tmp");
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp).map_err(io)?;
            file.write_all((lines.join("\n") + "\n").as_bytes())
                .map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)
    }

    fn hash_of(&self, user: &str) -> Result<Option<String>, AuthError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| {
            AuthError::Unavailable(format!("users file {}: {e}", self.path.display()))
        })?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .find(|(u, _)| *u == user)
            .map(|(_, h)| h.trim().to_owned()))
    }
}

#[async_trait]
impl AuthBackend for HtpasswdFile {
    async fn authenticate(&self, username: &str, password: &Secret) -> Result<bool, AuthError> {
        let Some(hash) = self.hash_of(username)? else {
            return Ok(false);
        };
        let password = password.clone();
        // bcrypt is slow on purpose: keep it off the async threads.
        tokio::task::spawn_blocking(move || verify(password.expose(), &hash))
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))
    }
}

/// Whether `password` matches an htpasswd `hash`. Unknown formats never match.
pub fn verify(password: &str, hash: &str) -> bool {
    if hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$") {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    if let Some(rest) = hash.strip_prefix("$apr1$") {
        let salt = rest.split('$').next().unwrap_or("");
        let computed = apr1(password.as_bytes(), salt.as_bytes());
        return computed.as_bytes().ct_eq(hash.as_bytes()).into();
    }
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        let digest = sha1::Sha1::digest(password.as_bytes());
        let computed = base64::engine::general_purpose::STANDARD.encode(digest);
        return computed.as_bytes().ct_eq(b64.as_bytes()).into();
    }
    if hash.starts_with("$5$") || hash.starts_with("$6$") {
        use sha_crypt::PasswordVerifier;
        return sha_crypt::ShaCrypt::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok();
    }
    false
}

const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Apache's MD5-crypt (`$apr1$salt$hash`).
fn apr1(password: &[u8], salt: &[u8]) -> String {
    let salt = &salt[..salt.len().min(8)];
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(b"$apr1$");
    ctx.update(salt);
    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut digest = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(digest);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(digest);
        } else {
            c.update(password);
        }
        digest = c.finalize();
    }
    let d = digest;
    let mut out = String::from("$apr1$");
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let mut push = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push(
            (u32::from(d[a]) << 16) | (u32::from(d[b]) << 8) | u32::from(d[c]),
            4,
        );
    }
    push(u32::from(d[11]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_htpasswd_format_verifies() {
        // Reference hashes made with `openssl passwd -apr1`, `-5` and `-6`, and the well-known
        // SHA-1 of "password" (not produced by this code).
        assert!(verify(
            "myPassword",
            "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/"
        ));
        assert!(!verify("wrong", "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/"));
        assert!(verify("password", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="));
        assert!(!verify("passwore", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="));
        let bcrypt_hash = bcrypt::hash_with_result("pw", 4)
            .expect("hash")
            .format_for_version(bcrypt::Version::TwoY);
        assert!(verify("pw", &bcrypt_hash));
        assert!(!verify("px", &bcrypt_hash));
        // sha-crypt, SHA-256 and SHA-512.
        assert!(verify(
            "Hello world!",
            "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
        ));
        assert!(verify(
            "Hello world!",
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        ));
        assert!(!verify("pw", "plain-text"));
    }

    #[tokio::test]
    async fn users_are_added_replaced_and_checked() {
        let dir = tempfile::tempdir().expect("dir");
        let file = HtpasswdFile::new(dir.path().join("users"));
        file.set_user("alice", &Secret::new("one")).expect("add");
        file.set_user("bob", &Secret::new("two")).expect("add");
        file.set_user("alice", &Secret::new("three"))
            .expect("replace");
        let text = std::fs::read_to_string(file.path()).expect("read");
        assert_eq!(text.lines().count(), 2);
        assert!(!text.contains("three"));
        assert!(
            file.authenticate("alice", &Secret::new("three"))
                .await
                .expect("answer")
        );
        assert!(
            !file
                .authenticate("alice", &Secret::new("one"))
                .await
                .expect("answer")
        );
        assert!(
            !file
                .authenticate("carol", &Secret::new("x"))
                .await
                .expect("answer")
        );
        assert!(file.set_user("a:b", &Secret::new("x")).is_err());
        assert!(file.set_user("ok", &Secret::new("")).is_err());
    }
}
