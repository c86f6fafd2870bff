//! Who may log in: the [`AuthBackend`] extension point (StackStorm's st2auth backends).
//!
//! The daemon asks a backend whether a user's password is right before it issues a token
//! (`POST /tokens`). The default backend of `st2d` reads an htpasswd-compatible users file;
//! an embedding application can plug in its own (LDAP, a database, …).

use async_trait::async_trait;

use crate::crypto::Secret;

/// Why a backend could not answer (as opposed to answering "wrong password").
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The backend's source (file, directory server) cannot be read right now.
    #[error("authentication backend unavailable: {0}")]
    Unavailable(String),
}

/// Checks a user's credentials.
///
/// # Contract
/// `authenticate` returns `Ok(true)` only for a known user whose password matches, `Ok(false)`
/// for an unknown user or a wrong password (callers must not tell the two apart in what they
/// answer), and never logs or keeps the password.
///
/// # Errors
/// [`AuthError::Unavailable`] when the backend cannot decide.
#[async_trait]
pub trait AuthBackend: Send + Sync + std::fmt::Debug {
    /// Whether `password` is `username`'s.
    async fn authenticate(&self, username: &str, password: &Secret) -> Result<bool, AuthError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct One;

    #[async_trait]
    impl AuthBackend for One {
        async fn authenticate(&self, username: &str, password: &Secret) -> Result<bool, AuthError> {
            Ok(username == "u" && password.expose() == "p")
        }
    }

    #[tokio::test]
    async fn a_backend_is_usable_as_a_trait_object() {
        let backend: Box<dyn AuthBackend> = Box::new(One);
        assert!(
            backend
                .authenticate("u", &Secret::new("p"))
                .await
                .expect("answer")
        );
        assert!(
            !backend
                .authenticate("u", &Secret::new("x"))
                .await
                .expect("answer")
        );
    }
}
