//! The russh-backed session: connect with a deadline, check the host key,
//! authenticate (key files, then ssh-agent), and run commands with stdin on
//! channels of one connection.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Algorithm, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect, client};

use super::known_hosts::{self, HostKeyPolicy};
use super::{ExecOutput, ExitStatus, Meter, Target, Transport};
use crate::error::{Error, HostError, Result};

/// How often an idle connection is probed, and how many unanswered probes
/// mean the host is gone. Long quiet commands (a docker restart) must not
/// trip it; a host that vanished must not hang a run forever.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 4;

/// One authenticated SSH connection to one host, possibly carried through
/// a jump host's connection (kept open for as long as this one).
pub struct SshSession {
    handle: Arc<client::Handle<HostKeyChecker>>,
    host: String,
    /// The host's address as its jump host dials it.
    address: String,
    /// Commands kept running for as long as the connection lives (a lock
    /// held on the host); they end when it closes, however it closes.
    held: std::sync::Mutex<Vec<SessionChannel>>,
    /// The next command's channel, opened while the previous command runs
    /// (or with the login): a command then costs one round trip, not two.
    spare: std::sync::Mutex<Option<Spare>>,
    meter: Meter,
    _jump: Option<Box<SshSession>>,
}

type SessionChannel = russh::Channel<client::Msg>;

/// A held command's channel lent to one script: it goes back when the
/// script's answer was read whole. When the wait for it dropped before
/// (a deadline), the rest of the answer still comes, and would come first
/// for the next script: the channel is kept (the lock lives as long as
/// it), read and dropped until it closes by a task of its own, for an
/// unread channel's full buffer would stall every channel of the
/// connection (a rollback's among them). Scripts then go as commands of
/// their own.
struct Lent<'a> {
    held: &'a std::sync::Mutex<Vec<SessionChannel>>,
    channel: Option<SessionChannel>,
    whole: bool,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let Some(mut channel) = self.channel.take() else {
            return;
        };
        if self.whole {
            self.held.lock().unwrap().push(channel);
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { while channel.wait().await.is_some() {} });
        }
        // Else the runtime, and the connection with it, are gone.
    }
}

/// A session channel for the next command.
enum Spare {
    /// Opened with the login, which counted it.
    Ready(SessionChannel),
    /// Being opened in the background.
    Opening(tokio::task::JoinHandle<std::result::Result<SessionChannel, russh::Error>>),
}

/// The russh handler: its only job is the host-key decision. Refusals carry
/// our own error so the caller sees *why* the key was refused.
struct HostKeyChecker {
    label: String,
    lookup_host: String,
    port: u16,
    files: std::sync::Arc<[std::path::PathBuf]>,
    policy: HostKeyPolicy,
}

#[derive(Debug)]
enum HandlerError {
    Ssh(russh::Error),
    Refused(Error),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}

impl client::Handler for HostKeyChecker {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        presented: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = presented else {
            // Host certificates are never requested (see `preferred`), so a
            // server that sends one is not following the protocol.
            return Ok(false);
        };
        known_hosts::decide(
            &self.files,
            self.policy,
            &self.label,
            &self.lookup_host,
            self.port,
            key,
        )
        .map(|()| true)
        .map_err(HandlerError::Refused)
    }
}

impl SshSession {
    /// Connects, checks the host key and authenticates, all within the
    /// target's connect timeout.
    pub async fn connect(target: &Target) -> Result<Self> {
        let addr = format!("{}:{}", target.address, target.port);
        let seconds = target.connect_timeout.as_secs();
        let attempt = Self::connect_inner(target, &addr);
        match tokio::time::timeout(target.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Error::OnHost {
                host: target.name.clone(),
                cause: HostError::ConnectTimeout { addr, seconds },
            }),
        }
    }

    /// Boxed: a jump host is reached by the same function, recursively.
    fn connect_inner<'a>(
        target: &'a Target,
        addr: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self>> + Send + 'a>> {
        Box::pin(Self::connect_direct_or_jumped(target, addr))
    }

    async fn connect_direct_or_jumped(target: &Target, addr: &str) -> Result<Self> {
        let lookup_host = target
            .host_key_alias
            .clone()
            .unwrap_or_else(|| target.address.clone());
        let config = client::Config {
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
            keepalive_max: KEEPALIVE_MAX,
            nodelay: true,
            preferred: russh::Preferred {
                key: Cow::Owned(preferred_host_key_algorithms(
                    &target.known_hosts,
                    &lookup_host,
                    target.port,
                )),
                ..Default::default()
            },
            ..Default::default()
        };
        let checker = HostKeyChecker {
            label: target.name.clone(),
            lookup_host,
            port: target.port,
            files: target.known_hosts.clone(),
            policy: target.host_key_policy,
        };
        let (jump, connected) = match &target.jump {
            None => {
                let socket =
                    tokio::net::TcpStream::connect(addr)
                        .await
                        .map_err(|e| Error::OnHost {
                            host: target.name.clone(),
                            cause: HostError::Unreachable {
                                addr: addr.to_string(),
                                reason: connect_failure(&e),
                            },
                        })?;
                let _ = socket.set_nodelay(true);
                (
                    None,
                    client::connect_stream(Arc::new(config), socket, checker).await,
                )
            }
            Some(jump_target) => {
                let jump_addr = format!("{}:{}", jump_target.address, jump_target.port);
                let jump = Self::connect_inner(jump_target, &jump_addr).await?;
                let channel = jump
                    .handle
                    .channel_open_direct_tcpip(
                        target.address.clone(),
                        u32::from(target.port),
                        "127.0.0.1",
                        0,
                    )
                    .await
                    .map_err(|e| Error::OnHost {
                        host: target.name.clone(),
                        cause: HostError::Unreachable {
                            addr: format!("{addr} (through {})", jump_target.name),
                            reason: e.to_string(),
                        },
                    })?;
                let stream = channel.into_stream();
                (
                    Some(Box::new(jump)),
                    client::connect_stream(Arc::new(config), stream, checker).await,
                )
            }
        };
        let handle = connected.map_err(|e| match e {
            HandlerError::Refused(err) => err,
            HandlerError::Ssh(err) => Error::OnHost {
                host: target.name.clone(),
                cause: HostError::Ssh {
                    step: "handshake".into(),
                    reason: err.to_string(),
                },
            },
        })?;
        let mut session = SshSession {
            handle: Arc::new(handle),
            host: target.name.clone(),
            address: target.address.clone(),
            held: std::sync::Mutex::new(Vec::new()),
            spare: std::sync::Mutex::new(None),
            meter: target.meter.clone(),
            _jump: jump,
        };
        session.authenticate(target).await?;
        // The first command's channel is part of the login, as with
        // `ssh host CMD`. A host that refuses it (a jump host may refuse
        // sessions) is told at its first command, if it has one.
        if let Ok(first) = session.handle.channel_open_session().await {
            *session.spare.lock().unwrap() = Some(Spare::Ready(first));
        }
        session.meter.login();
        Ok(session)
    }

    /// Tries the configured key files first (most likely the right key, and
    /// sshd counts every attempt against MaxAuthTries), then the agent's keys.
    async fn authenticate(&mut self, target: &Target) -> Result<()> {
        let mut tried = Vec::new();
        for path in target.identity_files.iter() {
            match self.try_key_file(&target.user, path).await? {
                KeyAttempt::Accepted => return Ok(()),
                KeyAttempt::Refused => tried.push(format!("{} (refused)", path.display())),
                KeyAttempt::Unusable(why) => tried.push(format!("{} ({why})", path.display())),
            }
        }
        if target.use_agent {
            match self.try_agent(&target.user).await? {
                AgentAttempt::Accepted => return Ok(()),
                AgentAttempt::Tried(note) => tried.push(note),
            }
        }
        if tried.is_empty() {
            tried.push("no identity file and no ssh-agent".into());
        }
        Err(Error::OnHost {
            host: self.host.clone(),
            cause: HostError::AuthFailed {
                user: target.user.clone(),
                tried: tried.join("; "),
            },
        })
    }

    async fn try_key_file(&mut self, user: &str, path: &Path) -> Result<KeyAttempt> {
        if !path.exists() {
            return Ok(KeyAttempt::Unusable("not found".into()));
        }
        let key = match russh::keys::load_secret_key(path, None) {
            Ok(key) => key,
            // The key's bytes never reach the message: only the kind of failure.
            Err(russh::keys::Error::KeyIsEncrypted) => {
                return Ok(KeyAttempt::Unusable(
                    "encrypted; add it to ssh-agent".into(),
                ));
            }
            Err(e) => return Ok(KeyAttempt::Unusable(format!("unreadable: {e}"))),
        };
        let hash = self.best_rsa_hash().await?;
        let result = self
            .handle_before_login()
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(|e| self.ssh_error("authentication", e))?;
        Ok(if result.success() {
            KeyAttempt::Accepted
        } else {
            KeyAttempt::Refused
        })
    }

    async fn try_agent(&mut self, user: &str) -> Result<AgentAttempt> {
        let Ok(mut agent) = AgentClient::connect_env().await else {
            return Ok(AgentAttempt::Tried("no ssh-agent".into()));
        };
        let identities = agent.request_identities().await.unwrap_or_default();
        let hash = self.best_rsa_hash().await?;
        let mut count = 0;
        for identity in identities {
            let AgentIdentity::PublicKey { key, .. } = identity else {
                continue;
            };
            count += 1;
            let accepted = self
                .handle_before_login()
                .authenticate_publickey_with(user, key, hash, &mut agent)
                .await
                .map(|r| r.success())
                .unwrap_or(false);
            if accepted {
                return Ok(AgentAttempt::Accepted);
            }
        }
        Ok(AgentAttempt::Tried(format!(
            "ssh-agent ({count} key(s) refused)"
        )))
    }

    async fn best_rsa_hash(&self) -> Result<Option<russh::keys::HashAlg>> {
        Ok(self
            .handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| self.ssh_error("authentication", e))?
            .flatten())
    }

    fn ssh_error(&self, step: &str, err: russh::Error) -> Error {
        Error::OnHost {
            host: self.host.clone(),
            cause: HostError::Ssh {
                step: step.into(),
                reason: err.to_string(),
            },
        }
    }

    /// The handle while authenticating: nothing shares it before the
    /// first channel opens.
    fn handle_before_login(&mut self) -> &mut client::Handle<HostKeyChecker> {
        Arc::get_mut(&mut self.handle).expect("the handle is shared only after login")
    }

    /// A channel for the next command, and the one after it set opening:
    /// the host confirms it while this command runs.
    async fn channel(&self) -> Result<SessionChannel> {
        let spare = self.spare.lock().unwrap().take();
        let channel = match spare {
            Some(Spare::Ready(channel)) => Ok(channel),
            Some(Spare::Opening(opening)) => {
                self.meter.channel(!opening.is_finished());
                opening.await.unwrap_or(Err(russh::Error::Disconnect))
            }
            None => {
                self.meter.channel(true);
                self.handle.channel_open_session().await
            }
        };
        let handle = self.handle.clone();
        let next = tokio::spawn(async move { handle.channel_open_session().await });
        *self.spare.lock().unwrap() = Some(Spare::Opening(next));
        channel.map_err(|e| self.ssh_error("exec", e))
    }

    /// Ends the connection politely.
    pub async fn disconnect(self) -> Result<()> {
        if let Some(Spare::Opening(opening)) = self.spare.lock().unwrap().take() {
            opening.abort();
        }
        self.handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await
            .map_err(|e| self.ssh_error("disconnect", e))
    }
}

/// Why a TCP connection could not be made. Out of file descriptors, the
/// host is not at fault: the remedy is said with it.
fn connect_failure(err: &std::io::Error) -> String {
    if err.raw_os_error() == Some(rustix::io::Errno::MFILE.raw_os_error()) {
        format!(
            "{err}: dockhand's own limit (`ulimit -n`); each host in flight holds a few \
             files: lower --forks, or raise the limit"
        )
    } else {
        err.to_string()
    }
}

enum KeyAttempt {
    Accepted,
    Refused,
    Unusable(String),
}

enum AgentAttempt {
    Accepted,
    Tried(String),
}

/// What one command may send back, stdout and stderr together. The job's
/// largest answer is the gather's (each shown file at most 1 MiB, base64'd);
/// a host that sends more fails alone instead of growing dockhand's memory
/// (a 400 MB EnvironmentFile, a runaway command).
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

impl SshSession {
    /// Appends a host's bytes to `buffer`, refusing past the cap before any
    /// is kept (so the buffers never grow beyond it).
    fn take(&self, output: &mut ExecOutput, stderr: bool, data: &[u8]) -> Result<()> {
        if output.stdout.len() + output.stderr.len() + data.len() > MAX_OUTPUT_BYTES {
            return Err(Error::OnHost {
                host: self.host.clone(),
                cause: HostError::Ssh {
                    step: "exec".into(),
                    reason: format!(
                        "the host sent more than {} MiB for one command; dockhand stopped reading there",
                        MAX_OUTPUT_BYTES >> 20
                    ),
                },
            });
        }
        let buffer = if stderr {
            &mut output.stderr
        } else {
            &mut output.stdout
        };
        buffer.extend_from_slice(data);
        Ok(())
    }

    /// Input about to wait for the channel's window (see [`Meter::window`]).
    async fn count_window(&self, channel: &SessionChannel) {
        if channel.writable_packet_size().await == 0 {
            self.meter.window();
        }
    }
}

impl Transport for SshSession {
    fn host(&self) -> &str {
        &self.host
    }

    async fn hold(&self, command: &str, stdin: &[u8]) -> Result<super::Held> {
        let step = |e: russh::Error| self.ssh_error("exec", e);
        let mut channel = self.channel().await?;
        self.meter.command();
        channel.exec(true, command).await.map_err(step)?;
        // No end of input: the command holds until the connection closes.
        if !stdin.is_empty() {
            self.count_window(&channel).await;
            channel.data(stdin).await.map_err(step)?;
        }
        let mut output = ExecOutput::default();
        // The holding line comes on stdout and on stderr at once: the
        // channel is lent to scripts only once both came, so nothing the
        // lock or the gather wrote before it is read as a script's.
        let (mut said, mut stderr_held) = (None, false);
        while let Some(message) = channel.wait().await {
            match message {
                ChannelMsg::Data { data } if said.is_none() => {
                    let seen = output.stdout.len();
                    self.take(&mut output, false, &data)?;
                    said = holding(&output.stdout, seen)
                        .map(|said| String::from_utf8_lossy(said).into_owned());
                }
                ChannelMsg::ExtendedData { data, ext: 1 } if !stderr_held => {
                    let seen = output.stderr.len();
                    self.take(&mut output, true, &data)?;
                    stderr_held = holding(&output.stderr, seen).is_some();
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    output.status = ExitStatus::Code(exit_status)
                }
                _ => {}
            }
            if let (Some(said), true) = (&said, stderr_held) {
                // Running: it stays so until the connection closes.
                self.held.lock().unwrap().push(channel);
                return Ok(super::Held::Running(said.clone()));
            }
        }
        Ok(super::Held::Ended(output))
    }

    async fn ask_held(
        &self,
        script: &str,
        input: &[u8],
        mut watch: Option<(&str, tokio::sync::oneshot::Sender<()>)>,
    ) -> Result<Option<ExecOutput>> {
        let Some(channel) = self.held.lock().unwrap().pop() else {
            return Ok(None);
        };
        let mut lent = Lent {
            held: &self.held,
            channel: Some(channel),
            whole: false,
        };
        let channel = lent.channel.as_mut().expect("lent");
        let step = "run a script on the held lock";
        let end = super::held::fresh_end();
        self.meter.command();
        channel
            .data(&super::held::request(&end, script, input)[..])
            .await
            .map_err(|e| self.ssh_error(step, e))?;
        let mut output = ExecOutput::default();
        let (mut out_seen, mut err_seen) = (0, 0);
        let (mut out_end, mut err_end) = (None, None);
        let protocol = |reason: String| Error::OnHost {
            host: self.host.clone(),
            cause: HostError::Ssh {
                step: step.into(),
                reason,
            },
        };
        while out_end.is_none() || err_end.is_none() {
            match channel.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    self.take(&mut output, false, &data)?;
                    super::tell_when_printed(&mut watch, &output.stdout, out_seen);
                    if out_end.is_none() {
                        out_end = super::held::stdout_end(&output.stdout, &end, out_seen)
                            .map_err(protocol)?;
                    }
                    out_seen = output.stdout.len();
                }
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    self.take(&mut output, true, &data)?;
                    if err_end.is_none() {
                        err_end = super::held::stderr_end(&output.stderr, &end, err_seen);
                    }
                    err_seen = output.stderr.len();
                }
                Some(ChannelMsg::ExitStatus { .. } | ChannelMsg::Eof | ChannelMsg::Close)
                | None => {
                    return Err(protocol(
                        "the host lock's command ended before the script's answer did (connection lost?); the lock is gone"
                            .into(),
                    ));
                }
                Some(_) => {}
            }
        }
        let (Some((out_at, status)), Some(err_at)) = (out_end, err_end) else {
            unreachable!("the loop ends with both")
        };
        output.stdout.truncate(out_at);
        output.stderr.truncate(err_at);
        output.status = ExitStatus::Code(status);
        lent.whole = true;
        Ok(Some(output))
    }

    async fn tunnel(&self, port: u16) -> Result<Option<Box<dyn super::Stream>>> {
        let Some(jump) = &self._jump else {
            return Ok(None);
        };
        self.meter.channel(true);
        let channel = jump
            .handle
            .channel_open_direct_tcpip(self.address.clone(), u32::from(port), "127.0.0.1", 0)
            .await
            .map_err(|e| self.ssh_error(&format!("open a channel to port {port}"), e))?;
        Ok(Some(Box::new(channel.into_stream())))
    }

    /// A host that does not answer the goodbye does not hold the run.
    async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.disconnect()).await;
    }

    async fn exec(&self, command: &str, stdin: &[u8]) -> Result<ExecOutput> {
        self.exec_with(command, stdin, None).await
    }

    async fn exec_watching(
        &self,
        command: &str,
        stdin: &[u8],
        mark: &str,
        seen: tokio::sync::oneshot::Sender<()>,
    ) -> Result<ExecOutput> {
        self.exec_with(command, stdin, Some((mark, seen))).await
    }
}

impl SshSession {
    /// [`Transport::exec`], telling `watch`'s sender once its line came.
    async fn exec_with(
        &self,
        command: &str,
        stdin: &[u8],
        mut watch: Option<(&str, tokio::sync::oneshot::Sender<()>)>,
    ) -> Result<ExecOutput> {
        let step = |e: russh::Error| self.ssh_error("exec", e);
        let mut channel = self.channel().await?;
        self.meter.command();
        channel.exec(true, command).await.map_err(step)?;
        if !stdin.is_empty() {
            self.count_window(&channel).await;
            channel.data(stdin).await.map_err(step)?;
        }
        channel.eof().await.map_err(step)?;

        let mut output = ExecOutput::default();
        let mut status = None;
        while let Some(message) = channel.wait().await {
            match message {
                ChannelMsg::Data { ref data } | ChannelMsg::ExtendedData { ref data, ext: 1 } => {
                    let stderr = !matches!(message, ChannelMsg::Data { .. });
                    let seen = output.stdout.len();
                    if let Err(e) = self.take(&mut output, stderr, data) {
                        // The command stops with its channel.
                        let _ = channel.close().await;
                        return Err(e);
                    }
                    if !stderr {
                        super::tell_when_printed(&mut watch, &output.stdout, seen);
                    }
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    status = Some(ExitStatus::Code(exit_status))
                }
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    status = Some(ExitStatus::Signal(format!("{signal_name:?}")))
                }
                ChannelMsg::Failure => {
                    return Err(Error::OnHost {
                        host: self.host.clone(),
                        cause: HostError::Ssh {
                            step: "exec".into(),
                            reason: "the server refused to run the command".into(),
                        },
                    });
                }
                _ => {}
            }
        }
        output.status = status.ok_or_else(|| Error::OnHost {
            host: self.host.clone(),
            cause: HostError::Ssh {
                step: "exec".into(),
                reason: "the channel closed without an exit status (connection lost?)".into(),
            },
        })?;
        Ok(output)
    }
}

/// What a held command said before its [`HOLDING`](super::HOLDING) line,
/// once that line is in `stdout`. Only the bytes from `seen` on are new,
/// and only they are looked at: a host that sends one endless line (a huge
/// file, base64'd) costs one pass over it, not one per chunk.
pub(crate) fn holding(stdout: &[u8], seen: usize) -> Option<&[u8]> {
    line_start(stdout, seen, super::HOLDING).map(|start| &stdout[..start])
}

/// Where the whole line `mark` starts in `stdout`, once its newline is in;
/// only newlines from `seen` on are looked at (see [`holding`]).
pub(crate) fn line_start(stdout: &[u8], seen: usize, mark: &str) -> Option<usize> {
    let mark = mark.as_bytes();
    for (offset, byte) in stdout[seen.min(stdout.len())..].iter().enumerate() {
        let at = seen + offset;
        if *byte != b'\n' || at < mark.len() {
            continue;
        }
        let start = at - mark.len();
        if &stdout[start..at] == mark && (start == 0 || stdout[start - 1] == b'\n') {
            return Some(start);
        }
    }
    None
}

/// Puts the host-key algorithms already recorded for this host first, as
/// OpenSSH does, so a host with several keys presents the one we know
/// instead of one that would look unknown.
fn preferred_host_key_algorithms(
    files: &[std::path::PathBuf],
    host: &str,
    port: u16,
) -> Vec<Algorithm> {
    let defaults = russh::Preferred::default().key.into_owned();
    let mut recorded: Vec<Algorithm> = files
        .iter()
        .filter_map(|f| russh::keys::known_hosts::known_host_keys_path(host, port, f).ok())
        .flatten()
        .map(|(_, key): (usize, PublicKey)| key.algorithm())
        .filter(|alg| defaults.contains(alg))
        .collect();
    recorded.dedup();
    let rest = defaults
        .iter()
        .filter(|alg| !recorded.contains(alg))
        .cloned();
    recorded.extend(rest.collect::<Vec<_>>());
    recorded
}

#[cfg(test)]
mod tests {
    #[test]
    fn out_of_files_says_the_limit_is_dockhands_and_how_to_get_more() {
        let emfile = std::io::Error::from_raw_os_error(24);
        let said = super::connect_failure(&emfile);
        assert!(said.starts_with(&emfile.to_string()), "{said}");
        assert!(
            said.contains("`ulimit -n`") && said.contains("lower --forks"),
            "{said}"
        );
        let refused = std::io::Error::from_raw_os_error(111);
        assert_eq!(super::connect_failure(&refused), refused.to_string());
    }
}
