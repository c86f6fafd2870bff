//! SSH connections for the remote runners (russh): connect and authenticate, run one command
//! per channel with its output streamed line by line, and keep idle connections for reuse.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect, Sig, client};
use sha2::{Digest, Sha256};
use st2_core::runner::{Cancellation, OutputSink};
use st2_core::store::OutputType;

/// Why talking to a host failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SshError {
    /// The TCP connection could not be made.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The SSH handshake failed.
    #[error("SSH handshake with {addr} failed: {source}")]
    Handshake {
        /// `host:port`.
        addr: String,
        /// What russh reported.
        source: russh::Error,
    },
    /// The server refused every credential offered.
    #[error("Authentication failed for user {user:?} (tried {tried})")]
    Auth {
        /// The SSH user.
        user: String,
        /// The methods offered, e.g. `password` or `publickey (2 keys)`.
        tried: String,
    },
    /// A channel could not be opened (the connection is gone or the server refused).
    #[error("could not open an SSH channel: {0}")]
    OpenChannel(russh::Error),
    /// A channel failed while a command ran.
    #[error("SSH channel failed: {0}")]
    Channel(russh::Error),
    /// The server refused to run the command.
    #[error("the server refused to run the command")]
    ExecRefused,
}

/// Who to log in as and with what. `Debug` shows the user and the method, never the secret.
pub(crate) struct Credentials {
    user: String,
    method: AuthMethod,
    /// SHA-256 over the user and the credential, the connection cache's key part.
    fingerprint: [u8; 32],
}

enum AuthMethod {
    Password(String),
    Keys(Vec<Arc<PrivateKey>>),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = match &self.method {
            AuthMethod::Password(_) => "password <redacted>".to_owned(),
            AuthMethod::Keys(keys) => format!("publickey ({} keys)", keys.len()),
        };
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("method", &method)
            .finish()
    }
}

/// Why a private key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub(crate) struct KeyError {
    /// The key's file, or `key material`.
    pub what: String,
    /// What is wrong.
    pub message: String,
}

impl Credentials {
    /// Log in as `user` with `password`.
    pub fn password(user: String, password: String) -> Self {
        let fingerprint = fingerprint(&user, b"password", password.as_bytes());
        Credentials {
            user,
            method: AuthMethod::Password(password),
            fingerprint,
        }
    }

    /// Log in as `user` with the first of `keys` the server accepts.
    pub fn keys(user: String, keys: Vec<Arc<PrivateKey>>) -> Self {
        let mut public = Vec::new();
        for key in &keys {
            public.extend_from_slice(key.public_key().fingerprint(HashAlg::Sha256).as_bytes());
        }
        let fingerprint = fingerprint(&user, b"publickey", &public);
        Credentials {
            user,
            method: AuthMethod::Keys(keys),
            fingerprint,
        }
    }
}

fn fingerprint(user: &str, kind: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [user.as_bytes(), kind, secret] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// Read a private key: `material` when it holds a PEM/OpenSSH key, otherwise the file it names.
///
/// # Errors
/// The file cannot be read, the key cannot be decoded or the passphrase is wrong.
pub(crate) fn load_key(source: &str, passphrase: Option<&str>) -> Result<PrivateKey, KeyError> {
    if source.to_ascii_lowercase().contains("private key-----") {
        return russh::keys::decode_secret_key(source, passphrase).map_err(|e| KeyError {
            what: "key material".to_owned(),
            message: e.to_string(),
        });
    }
    load_key_file(Path::new(source), passphrase)
}

/// Read the private key in `path`.
///
/// # Errors
/// The file cannot be read or decoded.
pub(crate) fn load_key_file(path: &Path, passphrase: Option<&str>) -> Result<PrivateKey, KeyError> {
    let what = || format!("key file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| KeyError {
        what: what(),
        message: e.to_string(),
    })?;
    russh::keys::decode_secret_key(&text, passphrase).map_err(|e| KeyError {
        what: what(),
        message: e.to_string(),
    })
}

/// The client side of a connection: host keys are accepted as they come (StackStorm's
/// Paramiko client uses `AutoAddPolicy` too).
#[derive(Debug)]
struct AcceptHostKey;

impl client::Handler for AcceptHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// One authenticated SSH connection.
pub(crate) struct Connection {
    handle: client::Handle<AcceptHostKey>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("closed", &self.handle.is_closed())
            .finish()
    }
}

/// Where a command's output goes: collected in full, and, when streaming, sent to a sink one
/// line at a time.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Everything written to standard output.
    pub stdout: Vec<u8>,
    /// Everything written to standard error.
    pub stderr: Vec<u8>,
    sink: Option<Arc<dyn OutputSink>>,
    stdout_line: Vec<u8>,
    stderr_line: Vec<u8>,
}

impl Output {
    /// Output streamed to `sink` (when given) as well as collected.
    pub fn new(sink: Option<Arc<dyn OutputSink>>) -> Self {
        Output {
            sink,
            ..Output::default()
        }
    }

    fn push(&mut self, kind: OutputType, data: &[u8]) {
        let (all, line) = match kind {
            OutputType::Stderr => (&mut self.stderr, &mut self.stderr_line),
            _ => (&mut self.stdout, &mut self.stdout_line),
        };
        all.extend_from_slice(data);
        let Some(sink) = &self.sink else { return };
        line.extend_from_slice(data);
        while let Some(end) = line.iter().position(|b| *b == b'\n') {
            let rest = line.split_off(end + 1);
            sink.emit(kind, &String::from_utf8_lossy(line));
            *line = rest;
        }
    }

    /// Send what is left of unfinished lines to the sink.
    pub fn flush(&mut self) {
        let Some(sink) = &self.sink else { return };
        for (kind, line) in [
            (OutputType::Stdout, &mut self.stdout_line),
            (OutputType::Stderr, &mut self.stderr_line),
        ] {
            if !line.is_empty() {
                sink.emit(kind, &String::from_utf8_lossy(line));
                line.clear();
            }
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecEnd {
    /// It exited with this code (−1 when the server sent none, minus the signal number when a
    /// signal killed it).
    Exited(i64),
    /// The deadline passed; the channel was closed.
    TimedOut,
    /// Cancellation was requested; the channel was closed.
    Canceled,
}

/// One command to run on a channel. `Debug` shows neither the command line (it holds
/// exported values) nor standard input (a sudo password).
pub(crate) struct Exec<'a> {
    /// The command line, run by the user's login shell.
    pub command: &'a str,
    /// Bytes written to the command's standard input before it is closed.
    pub stdin: &'a [u8],
    /// Whether to ask for a pseudo-terminal (stdout and stderr then arrive merged).
    pub pty: bool,
}

impl fmt::Debug for Exec<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exec")
            .field("command_len", &self.command.len())
            .field("stdin_len", &self.stdin.len())
            .field("pty", &self.pty)
            .finish()
    }
}

/// How long killing a timed-out or canceled command may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// The first line of a command's stderr, where its shell reported its process id.
#[derive(Debug)]
struct Prelude {
    /// Still reading the first line.
    reading: bool,
    line: Vec<u8>,
    /// The process id, once read.
    pid: Option<u32>,
}

impl Prelude {
    fn new(expected: bool) -> Self {
        Prelude {
            reading: expected,
            line: Vec::new(),
            pid: None,
        }
    }

    /// Take the process id from the start of `data`; what is left is ordinary stderr. A first
    /// line that is not a number is ordinary stderr too.
    fn read(&mut self, data: &[u8]) -> Vec<u8> {
        if !self.reading {
            return data.to_vec();
        }
        self.line.extend_from_slice(data);
        let Some(end) = self.line.iter().position(|b| *b == b'\n') else {
            return Vec::new();
        };
        self.reading = false;
        let rest = self.line.split_off(end + 1);
        let first = std::mem::take(&mut self.line);
        match std::str::from_utf8(&first[..end])
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .filter(|p| *p > 1)
        {
            Some(pid) => {
                self.pid = Some(pid);
                rest
            }
            None => [first, rest].concat(),
        }
    }

    /// An unfinished first line (the command ended before writing a newline).
    fn unfinished(&mut self) -> Vec<u8> {
        self.reading = false;
        std::mem::take(&mut self.line)
    }
}

fn signal_number(sig: &Sig) -> i64 {
    match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        _ => 0,
    }
}

impl Connection {
    /// Connect to `host:port` and log in with `credentials`.
    ///
    /// # Errors
    /// [`SshError::Connect`], [`SshError::Handshake`] or [`SshError::Auth`].
    pub async fn open(
        host: &str,
        port: u16,
        credentials: &Credentials,
    ) -> Result<Connection, SshError> {
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let socket = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|source| SshError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = socket.set_nodelay(true);
        let config = Arc::new(client::Config::default());
        let mut handle = client::connect_stream(config, socket, AcceptHostKey)
            .await
            .map_err(|source| SshError::Handshake {
                addr: addr.clone(),
                source,
            })?;
        let handshake = |source| SshError::Handshake {
            addr: addr.clone(),
            source,
        };
        let user = credentials.user.clone();
        let (accepted, tried) = match &credentials.method {
            AuthMethod::Password(password) => (
                handle
                    .authenticate_password(user.clone(), password.clone())
                    .await
                    .map_err(handshake)?
                    .success(),
                "password".to_owned(),
            ),
            AuthMethod::Keys(keys) => {
                let rsa_hash = handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(handshake)?
                    .flatten();
                let mut accepted = false;
                for key in keys {
                    let key = PrivateKeyWithHashAlg::new(key.clone(), rsa_hash);
                    if handle
                        .authenticate_publickey(user.clone(), key)
                        .await
                        .map_err(handshake)?
                        .success()
                    {
                        accepted = true;
                        break;
                    }
                }
                (accepted, format!("publickey with {} key(s)", keys.len()))
            }
        };
        if !accepted {
            let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
            return Err(SshError::Auth { user, tried });
        }
        Ok(Connection { handle })
    }

    /// Whether the connection is known to be gone.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Run `exec`, collecting its output into `output`, until it exits, `deadline` passes or
    /// `cancel` fires (then the command is sent SIGKILL and its channel closed).
    ///
    /// # Errors
    /// [`SshError::OpenChannel`] when no channel could be opened (nothing ran),
    /// [`SshError::ExecRefused`] or [`SshError::Channel`] otherwise.
    pub async fn exec(
        &self,
        exec: Exec<'_>,
        output: &mut Output,
        deadline: tokio::time::Instant,
        cancel: &Cancellation,
    ) -> Result<ExecEnd, SshError> {
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(SshError::OpenChannel)?;
        if exec.pty {
            channel
                .request_pty(false, "xterm", 80, 24, 0, 0, &[])
                .await
                .map_err(SshError::Channel)?;
        }
        // Without a terminal, the shell first reports its process id (the process group
        // sshd made for the session) on stderr, so that a timeout or cancel can kill the whole
        // group: OpenSSH refuses `signal` requests in some setups (a root login without
        // privilege separation). On a terminal, closing the channel hangs the group up.
        let command = if exec.pty {
            exec.command.to_owned()
        } else {
            format!("echo $$ >&2; {}", exec.command)
        };
        channel
            .exec(true, command)
            .await
            .map_err(SshError::Channel)?;
        if !exec.stdin.is_empty() {
            channel
                .data_bytes(exec.stdin.to_vec())
                .await
                .map_err(SshError::Channel)?;
        }
        channel.eof().await.map_err(SshError::Channel)?;
        let mut code = None;
        let mut pid = Prelude::new(!exec.pty);
        let end = loop {
            tokio::select! {
                msg = channel.wait() => match msg {
                    None => break ExecEnd::Exited(code.unwrap_or(-1)),
                    Some(ChannelMsg::Data { data }) => output.push(OutputType::Stdout, &data),
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        let rest = pid.read(&data);
                        output.push(OutputType::Stderr, &rest);
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => {
                        code = Some(i64::from(exit_status))
                    }
                    Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                        code = Some(-signal_number(&signal_name))
                    }
                    Some(ChannelMsg::Failure) => return Err(SshError::ExecRefused),
                    Some(_) => {}
                },
                () = tokio::time::sleep_until(deadline) => break ExecEnd::TimedOut,
                () = cancel.cancelled() => break ExecEnd::Canceled,
            }
        };
        if matches!(end, ExecEnd::TimedOut | ExecEnd::Canceled) {
            let _ = channel.signal(Sig::KILL).await;
            if let Some(pid) = pid.pid {
                self.kill_group(pid).await;
            }
            let _ = channel.close().await;
        }
        output.push(OutputType::Stderr, &pid.unfinished());
        output.flush();
        Ok(end)
    }

    /// `kill -KILL -- -<pid>` on another channel, waiting a few seconds at most.
    async fn kill_group(&self, pid: u32) {
        let kill = async {
            let mut channel = self.handle.channel_open_session().await.ok()?;
            let command = format!("kill -KILL -- -{pid} 2>/dev/null || kill -KILL {pid}");
            channel.exec(false, command).await.ok()?;
            channel.eof().await.ok()?;
            while channel.wait().await.is_some() {}
            Some(())
        };
        let _ = tokio::time::timeout(KILL_TIMEOUT, kill).await;
    }

    /// Run a housekeeping command (no streaming) and require exit code 0.
    ///
    /// # Errors
    /// [`UploadError`] with the command's stderr when it fails.
    pub async fn run_quiet(
        &self,
        command: &str,
        stdin: &[u8],
        deadline: tokio::time::Instant,
        cancel: &Cancellation,
    ) -> Result<(), UploadError> {
        let mut output = Output::new(None);
        let exec = Exec {
            command,
            stdin,
            pty: false,
        };
        match self.exec(exec, &mut output, deadline, cancel).await? {
            ExecEnd::Exited(0) => Ok(()),
            ExecEnd::Exited(code) => Err(UploadError::Remote {
                code,
                stderr: String::from_utf8_lossy(&output.stderr)
                    .trim_end()
                    .to_owned(),
            }),
            ExecEnd::TimedOut => Err(UploadError::TimedOut),
            ExecEnd::Canceled => Err(UploadError::Canceled),
        }
    }

    /// Say goodbye to the server.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// Why a housekeeping command (mkdir, file upload, cleanup) failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError {
    /// The SSH side failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// The command exited non-zero.
    #[error("exit code {code}: {stderr}")]
    Remote {
        /// Its exit code.
        code: i64,
        /// Its standard error.
        stderr: String,
    },
    /// The deadline passed.
    #[error("timed out")]
    TimedOut,
    /// The execution was canceled.
    #[error("canceled")]
    Canceled,
}

/// Which connections may be shared: same host, port and credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    host: String,
    port: u16,
    credential: [u8; 32],
}

impl PoolKey {
    /// The key of a connection to `host:port` with `credentials` (a hash of them, no secret).
    pub fn new(host: &str, port: u16, credentials: &Credentials) -> Self {
        PoolKey {
            host: host.to_owned(),
            port,
            credential: credentials.fingerprint,
        }
    }
}

/// Idle connections by key, each with the moment it was last used.
type IdleConnections = HashMap<PoolKey, Vec<(Instant, Connection)>>;

/// Idle connections kept for reuse, each for at most `idle` after its last use.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    idle: Duration,
    connections: Arc<Mutex<IdleConnections>>,
}

impl Pool {
    /// A pool keeping connections for `idle` (none when zero).
    pub fn new(idle: Duration) -> Self {
        Pool {
            idle,
            connections: Arc::default(),
        }
    }

    /// An idle, live connection for `key`, if one is kept.
    pub fn take(&self, key: &PoolKey) -> Option<Connection> {
        let mut map = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.sweep(&mut map);
        let list = map.get_mut(key)?;
        let found = list.pop().map(|(_, c)| c);
        if list.is_empty() {
            map.remove(key);
        }
        found
    }

    /// Keep `connection` for the next run with `key`.
    pub fn put(&self, key: PoolKey, connection: Connection) {
        if self.idle.is_zero() || connection.is_closed() {
            return;
        }
        let mut map = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.sweep(&mut map);
        map.entry(key)
            .or_default()
            .push((Instant::now(), connection));
    }

    /// Drop expired and closed connections (dropping a handle ends its session).
    fn sweep(&self, map: &mut IdleConnections) {
        let now = Instant::now();
        map.retain(|_, list| {
            list.retain(|(since, c)| now.duration_since(*since) < self.idle && !c.is_closed());
            !list.is_empty()
        });
    }
}

/// The key files tried when neither a password nor a key is given: `~/.ssh/id_ed25519`,
/// `~/.ssh/id_ecdsa` and `~/.ssh/id_rsa` of the user this process runs as, those that exist.
pub(crate) fn default_key_files() -> Vec<PathBuf> {
    let Some(home) = nix::unistd::User::from_uid(nix::unistd::Uid::current())
        .ok()
        .flatten()
        .map(|u| u.dir)
    else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|name| home.join(".ssh").join(name))
        .filter(|p| p.is_file())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelude_takes_the_pid_line_only() {
        let mut p = Prelude::new(true);
        assert_eq!(p.read(b"12"), b"");
        assert_eq!(p.read(b"34\nerr\n"), b"err\n");
        assert_eq!(p.pid, Some(1234));
        assert_eq!(p.read(b"more"), b"more");

        let mut p = Prelude::new(true);
        assert_eq!(p.read(b"not a pid\nx"), b"not a pid\nx");
        assert_eq!(p.pid, None);

        let mut p = Prelude::new(true);
        assert_eq!(p.read(b"partial"), b"");
        assert_eq!(p.unfinished(), b"partial");

        let mut p = Prelude::new(false);
        assert_eq!(p.read(b"7\n"), b"7\n");
    }
}
