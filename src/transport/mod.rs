//! The transport layer: how dockhand reaches a host.
//!
//! The engine talks to hosts only through [`Transport`], so it never sees
//! russh. One [`Target`] holds everything needed to open one connection;
//! one connection serves every command of a run on that host (docs/ARCHITECTURE.md:
//! no per-task connection churn).

pub mod held;
pub mod known_hosts;
mod ssh;
#[cfg(test)]
pub(crate) use ssh::holding;
mod traffic;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use known_hosts::HostKeyPolicy;
pub use ssh::{MAX_OUTPUT_BYTES, SshSession};
pub use traffic::{Meter, Traffic};

use crate::error::{Error, HostError, Result};

/// Connection settings for one host, resolved from the inventory and
/// `~/.ssh/config` before any I/O.
#[derive(Debug, Clone)]
pub struct Target {
    /// The inventory name, used in every message about this host.
    pub name: String,
    /// Host name or IP address to connect to.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Private key files, tried in order before the agent. Shared by the
    /// targets that have the same (a fleet of thousands usually has one).
    pub identity_files: Arc<[PathBuf]>,
    /// Whether to try the keys of the ssh-agent at `SSH_AUTH_SOCK`.
    pub use_agent: bool,
    /// known_hosts files, searched in order; new keys (accept-new) go to
    /// the first. Shared as `identity_files` is.
    pub known_hosts: Arc<[PathBuf]>,
    pub host_key_policy: HostKeyPolicy,
    /// Name to look the host key up under, instead of `address`
    /// (OpenSSH's `HostKeyAlias`).
    pub host_key_alias: Option<String>,
    /// Deadline for TCP connect, handshake and authentication together.
    pub connect_timeout: Duration,
    /// A host to connect through (OpenSSH's ProxyJump): this host is
    /// reached by a direct-tcpip channel of the jump host's connection.
    pub jump: Option<Box<Target>>,
    /// What the run's connections to this host cost (shared by clones).
    pub meter: Meter,
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ExitStatus {
    Code(u32),
    Signal(String),
    #[default]
    Unknown,
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit status {code}"),
            ExitStatus::Signal(signal) => write!(f, "killed by signal {signal}"),
            ExitStatus::Unknown => write!(f, "no exit status"),
        }
    }
}

/// What a remote command produced.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: ExitStatus,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == ExitStatus::Code(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Opens connections: russh ([`Ssh`]) for real hosts; a scripted fake in
/// the engine's unit tests. Everything above the transport (the pipeline,
/// the fleet runner) works over any implementation.
/// How a held command stands: running (it said [`HOLDING`], and this
/// before it), or ended before it said so.
#[derive(Debug)]
pub enum Held {
    Running(String),
    Ended(ExecOutput),
}

/// The line by which a held command says it now holds: on stdout, then
/// on stderr, so what came on either before it is not a script's.
pub const HOLDING: &str = "@holding";

pub trait Connector: Send + Sync + 'static {
    type Session: Transport + 'static;

    /// Connects, checks the host key and authenticates, within the
    /// target's connect timeout.
    fn connect(
        &self,
        target: &Target,
    ) -> impl std::future::Future<Output = Result<Self::Session>> + Send;
}

/// The real transport: one russh connection per host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ssh;

impl Connector for Ssh {
    type Session = SshSession;

    async fn connect(&self, target: &Target) -> Result<SshSession> {
        SshSession::connect(target).await
    }
}

/// A byte stream to a port of a host, carried over SSH.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// Tells the watcher of a line (see [`Transport::exec_watching`]) once
/// the whole line is in `stdout`, looking only at the newlines from `seen`
/// on; it is told once, and then `watch` is `None`.
pub(crate) fn tell_when_printed(
    watch: &mut Option<(&str, tokio::sync::oneshot::Sender<()>)>,
    stdout: &[u8],
    seen: usize,
) {
    if let Some((mark, _)) = watch
        && ssh::line_start(stdout, seen, mark).is_some()
        && let Some((_, sender)) = watch.take()
    {
        let _ = sender.send(());
    }
}

/// A connection to one host that runs commands.
///
/// Commands are shell command lines (the remote user's login shell runs
/// them, as with `ssh host CMD`). Data that must stay secret travels in
/// `stdin`, never in `command`, because command lines are visible to every
/// user of the host in the process list.
pub trait Transport: Send + Sync {
    /// The inventory name of the host.
    fn host(&self) -> &str;

    /// Runs `command` with `stdin` fed to it and closed, and collects its
    /// output. A command that fails is not an error here; only a broken
    /// connection is.
    fn exec(
        &self,
        command: &str,
        stdin: &[u8],
    ) -> impl std::future::Future<Output = Result<ExecOutput>> + Send;

    /// [`exec`](Self::exec), telling `seen` as soon as the command printed
    /// the whole line `mark`, while it goes on: what needs only the steps
    /// before that line can start then. Here, at its end.
    fn exec_watching(
        &self,
        command: &str,
        stdin: &[u8],
        mark: &str,
        seen: tokio::sync::oneshot::Sender<()>,
    ) -> impl std::future::Future<Output = Result<ExecOutput>> + Send {
        async move {
            let output = self.exec(command, stdin).await?;
            tell_when_printed(&mut Some((mark, seen)), &output.stdout, 0);
            Ok(output)
        }
    }

    /// Starts `command` and leaves it running for as long as the connection
    /// lives, once it has printed the line [`HOLDING`] (a lock it holds
    /// then goes when the connection goes, however dockhand ends). Returns
    /// what it said before that line when it runs, or its output when it
    /// ended before that line. `stdin` is sent and left open.
    fn hold(
        &self,
        command: &str,
        stdin: &[u8],
    ) -> impl std::future::Future<Output = Result<Held>> + Send;

    /// Runs `script` on the command [`hold`](Self::hold) keeps running (an
    /// apply's lock: a root shell), `input` its stdin: one round trip, with
    /// no channel to open, no window to wait for and no sudo (see
    /// [`held`]). `watch` as for [`exec_watching`](Self::exec_watching).
    /// `None` when no command is held, or when the held one can take no
    /// more (an answer cut short left it out of step): send it with
    /// [`exec`](Self::exec) then.
    fn ask_held(
        &self,
        script: &str,
        input: &[u8],
        watch: Option<(&str, tokio::sync::oneshot::Sender<()>)>,
    ) -> impl std::future::Future<Output = Result<Option<ExecOutput>>> + Send {
        let _ = (script, input, watch);
        async { Ok(None) }
    }

    /// For a host reached through a jump host: a stream to `port` of the
    /// host, opened by the jump host (a direct-tcpip channel), so probes
    /// take the path SSH takes. `None` for a host reached directly.
    fn tunnel(
        &self,
        port: u16,
    ) -> impl std::future::Future<Output = Result<Option<Box<dyn Stream>>>> + Send;

    /// Ends the connection, politely where it can; never fails the run.
    fn close(self) -> impl std::future::Future<Output = ()> + Send
    where
        Self: Sized;

    /// Runs `command` and requires it to succeed; `step` names it in the error.
    fn run(
        &self,
        step: &str,
        command: &str,
        stdin: &[u8],
    ) -> impl std::future::Future<Output = Result<ExecOutput>> + Send {
        async move {
            let output = self.exec(command, stdin).await?;
            if output.success() {
                Ok(output)
            } else {
                Err(Error::OnHost {
                    host: self.host().to_string(),
                    cause: HostError::Remote {
                        step: step.to_string(),
                        status: output.status.to_string(),
                        stderr: output.stderr_text().trim().to_string(),
                    },
                })
            }
        }
    }
}
