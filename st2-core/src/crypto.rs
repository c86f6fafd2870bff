//! StackStorm's datastore encryption, byte for byte: a keyczar-style AES-256-CBC key file and
//! ciphertexts, so an existing StackStorm key and its encrypted values work here unchanged.
//!
//! * Key file: JSON `{"hmacKey": {"hmacKeyString": <b64url>, "size": 256}, "aesKeyString":
//!   <b64url>, "mode": "CBC", "size": 256}` (base64url without padding).
//! * Ciphertext: uppercase hex of `b"00000"` (a 5-byte header) ‖ 16-byte IV ‖ AES-256-CBC of
//!   the PKCS#5-padded UTF-8 plaintext ‖ HMAC-SHA1 (20 bytes) over everything before it.
//!   Decryption accepts either case of hex, checks the HMAC in constant time, then decrypts.

use std::fmt;
use std::path::Path;

use aes::Aes256;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

const HEADER: &[u8; 5] = b"00000";
const IV_LEN: usize = 16;
const MAC_LEN: usize = 20;

/// Why a key could not be loaded or a value could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The key file is missing, unreadable or not in StackStorm's format.
    #[error("invalid crypto key: {0}")]
    InvalidKey(String),
    /// The ciphertext is not hexadecimal (Python's `binascii.Error`).
    #[error("ciphertext is not valid hex: {0}")]
    NotHex(String),
    /// The ciphertext is too short or malformed.
    #[error("ciphertext is malformed: {0}")]
    Malformed(String),
    /// The HMAC does not match: wrong key or tampered value (Python's `InvalidSignature`).
    #[error("signature did not match digest (wrong key or tampered value)")]
    BadSignature,
    /// The plaintext is not UTF-8.
    #[error("decrypted value is not UTF-8")]
    NotUtf8,
}

/// An AES-256 + HMAC-SHA1 key in StackStorm's key-file format. `Debug` never shows the key.
#[derive(Clone)]
pub struct CryptoKey {
    aes: [u8; 32],
    hmac: Vec<u8>,
}

impl fmt::Debug for CryptoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CryptoKey(********)")
    }
}

fn decode_b64(s: &str) -> Result<Vec<u8>, CryptoError> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| CryptoError::InvalidKey(format!("bad base64: {e}")))
}

impl CryptoKey {
    /// Parse a key file's JSON text.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] when it is not a StackStorm AES-256 key.
    pub fn from_json(text: &str) -> Result<Self, CryptoError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| CryptoError::InvalidKey(format!("not JSON: {e}")))?;
        let aes_str = v["aesKeyString"]
            .as_str()
            .ok_or_else(|| CryptoError::InvalidKey("no aesKeyString".into()))?;
        let hmac_str = v["hmacKey"]["hmacKeyString"]
            .as_str()
            .ok_or_else(|| CryptoError::InvalidKey("no hmacKey.hmacKeyString".into()))?;
        if let Some(mode) = v["mode"].as_str()
            && mode != "CBC"
        {
            return Err(CryptoError::InvalidKey(format!("mode {mode} is not CBC")));
        }
        let aes: [u8; 32] = decode_b64(aes_str)?
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("the AES key must be 256 bits".into()))?;
        let hmac = decode_b64(hmac_str)?;
        if hmac.is_empty() {
            return Err(CryptoError::InvalidKey("empty HMAC key".into()));
        }
        Ok(CryptoKey { aes, hmac })
    }

    /// Read a key file.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] when the file cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CryptoError::InvalidKey(format!("{}: {e}", path.display())))?;
        Self::from_json(&text)
    }

    /// A new random key.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] when the system has no randomness.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut aes = [0u8; 32];
        let mut hmac = vec![0u8; 32];
        getrandom::fill(&mut aes)
            .and_then(|()| getrandom::fill(&mut hmac))
            .map_err(|e| CryptoError::InvalidKey(format!("no randomness: {e}")))?;
        Ok(CryptoKey { aes, hmac })
    }

    /// The key file's JSON text.
    pub fn to_json(&self) -> String {
        json!({
            "hmacKey": {"hmacKeyString": URL_SAFE_NO_PAD.encode(&self.hmac), "size": self.hmac.len() * 8},
            "aesKeyString": URL_SAFE_NO_PAD.encode(self.aes),
            "mode": "CBC",
            "size": 256
        })
        .to_string()
    }

    /// Encrypt `plaintext` into StackStorm's uppercase-hex ciphertext.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] when the system has no randomness for the IV.
    pub fn encrypt(&self, plaintext: &str) -> Result<String, CryptoError> {
        let mut iv = [0u8; IV_LEN];
        getrandom::fill(&mut iv)
            .map_err(|e| CryptoError::InvalidKey(format!("no randomness: {e}")))?;
        self.encrypt_with_iv(plaintext, &iv)
    }

    fn encrypt_with_iv(&self, plaintext: &str, iv: &[u8; IV_LEN]) -> Result<String, CryptoError> {
        let encryptor = cbc::Encryptor::<Aes256>::new(&self.aes.into(), iv.into());
        let ciphertext = encryptor.encrypt_padded_vec::<Pkcs7>(plaintext.as_bytes());
        let mut message = Vec::with_capacity(HEADER.len() + IV_LEN + ciphertext.len() + MAC_LEN);
        message.extend_from_slice(HEADER);
        message.extend_from_slice(iv);
        message.extend_from_slice(&ciphertext);
        let mut mac = self.hmac()?;
        mac.update(&message);
        message.extend_from_slice(&mac.finalize().into_bytes());
        Ok(hex_upper(&message))
    }

    fn hmac(&self) -> Result<HmacSha1, CryptoError> {
        // HMAC accepts keys of any length; the error cannot happen.
        <HmacSha1 as KeyInit>::new_from_slice(&self.hmac)
            .map_err(|_| CryptoError::InvalidKey("unusable HMAC key".into()))
    }

    /// Decrypt a ciphertext produced by StackStorm (or by [`CryptoKey::encrypt`]).
    ///
    /// # Errors
    /// [`CryptoError::NotHex`], [`CryptoError::Malformed`], [`CryptoError::BadSignature`] or
    /// [`CryptoError::NotUtf8`].
    pub fn decrypt(&self, ciphertext: &str) -> Result<String, CryptoError> {
        let bytes = hex_decode(ciphertext)?;
        if bytes.len() < HEADER.len() + IV_LEN + MAC_LEN + 16 {
            return Err(CryptoError::Malformed("too short".into()));
        }
        let (message, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let mut mac = self.hmac()?;
        mac.update(message);
        mac.verify_slice(tag)
            .map_err(|_| CryptoError::BadSignature)?;
        let iv = &message[HEADER.len()..HEADER.len() + IV_LEN];
        let body = &message[HEADER.len() + IV_LEN..];
        let iv: [u8; IV_LEN] = iv
            .try_into()
            .map_err(|_| CryptoError::Malformed("bad IV".into()))?;
        let decryptor = cbc::Decryptor::<Aes256>::new(&self.aes.into(), &iv.into());
        let plain = decryptor
            .decrypt_padded_vec::<Pkcs7>(body)
            .map_err(|_| CryptoError::Malformed("bad padding".into()))?;
        String::from_utf8(plain).map_err(|_| CryptoError::NotUtf8)
    }
}

impl CryptoKey {
    /// Read the key file at `path`, or create it with a new random key if it does not exist.
    ///
    /// A new file is created with mode 0600 (owner read/write only) and written completely
    /// before it becomes visible under `path`, so a crash never leaves a half-written key. An
    /// existing file that any user other than its owner and group can read is refused: the key
    /// decrypts every secret in the datastore. (StackStorm's own setup makes the key readable
    /// by the `st2packs` group, so group access is allowed.)
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] when the file cannot be read, written or parsed, or when it is
    /// world-readable.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        match std::fs::metadata(path) {
            Ok(meta) => {
                check_key_file_mode(path, &meta)?;
                Self::load(path)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                write_private_file(path, key.to_json().as_bytes())?;
                // Another process may have won the race to create it: use whatever is there.
                Self::load(path)
            }
            Err(e) => Err(CryptoError::InvalidKey(format!("{}: {e}", path.display()))),
        }
    }
}

#[cfg(unix)]
fn check_key_file_mode(path: &Path, meta: &std::fs::Metadata) -> Result<(), CryptoError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode();
    if mode & 0o004 != 0 {
        return Err(CryptoError::InvalidKey(format!(
            "{} is readable by every user (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_file_mode(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), CryptoError> {
    Ok(())
}

/// Write `bytes` to a new file at `path` with mode 0600: written to a temporary sibling first,
/// then linked into place only if `path` still does not exist.
fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), CryptoError> {
    use std::io::Write;
    let fail = |e: std::io::Error| CryptoError::InvalidKey(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            // Someone else created the key meanwhile; theirs wins.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result.map_err(fail)
}

/// A secret value: a decrypted datastore value, a password. `Debug` and `Display` print
/// `********`; only [`Secret::expose`] gives the text, so a secret never reaches a log or an
/// error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plain value. Every call site is a place the secret leaves its wrapper.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Unwrap into the plain value.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn hex_decode(s: &str) -> Result<Vec<u8>, CryptoError> {
    if !s.len().is_multiple_of(2) {
        return Err(CryptoError::NotHex("odd-length string".into()));
    }
    let digit = |c: u8| -> Result<u8, CryptoError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(CryptoError::NotHex("non-hexadecimal digit found".into())),
        }
    };
    s.as_bytes()
        .chunks(2)
        .map(|pair| Ok((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_key() -> CryptoKey {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/conformance/st2-test-crypto-key.json");
        CryptoKey::load(&path).expect("the shared test key")
    }

    #[test]
    fn decrypts_stackstorm_ciphertexts() {
        let key = test_key();
        let st2 = "30303030306C82A197E9F7735E1B64BAF4DDED19481DC6C9D2599BBBDC5BCF91A3D9C6B3DA4F90F62A9BA5DC0FF3BBE5BD242D3E84926E3521";
        assert_eq!(key.decrypt(st2).unwrap(), "Build a wall");
        assert_eq!(key.decrypt(&st2.to_lowercase()).unwrap(), "Build a wall");
        let mut tampered = st2.to_owned();
        tampered.replace_range(20..21, "0");
        assert_eq!(key.decrypt(&tampered), Err(CryptoError::BadSignature));
        assert!(matches!(key.decrypt("zz"), Err(CryptoError::NotHex(_))));
        assert!(matches!(key.decrypt(""), Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn key_files_are_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/datastore_key.json");
        let key = CryptoKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = CryptoKey::load_or_create(&path).unwrap();
        assert_eq!(again.decrypt(&key.encrypt("x").unwrap()).unwrap(), "x");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = CryptoKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(CryptoKey::load_or_create(&path).is_ok());
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(********) ********");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn round_trips_and_keys_serialise() {
        let key = CryptoKey::generate().unwrap();
        let c = key.encrypt("p@ss w0rd ünïcode").unwrap();
        assert!(c.starts_with("3030303030"));
        assert_eq!(c, c.to_uppercase());
        assert_eq!(key.decrypt(&c).unwrap(), "p@ss w0rd ünïcode");
        let again = CryptoKey::from_json(&key.to_json()).unwrap();
        assert_eq!(again.decrypt(&c).unwrap(), "p@ss w0rd ünïcode");
        assert_eq!(format!("{key:?}"), "CryptoKey(********)");
        let other = CryptoKey::generate().unwrap();
        assert_eq!(other.decrypt(&c), Err(CryptoError::BadSignature));
    }
}
