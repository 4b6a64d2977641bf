//! A scripted in-memory fleet for unit tests of the runner and the
//! pipeline: each host answers the gather from the files it holds, takes
//! staged writes and commits them, and can be told to be unreachable, to
//! hang at a step, or to fail one. It records every step it saw, so a test
//! can tell what was touched. No root, no lab, no network.
//!
//! [`FakeFleet::simulated`] makes it the simulation's fleet (`cargo bench
//! --bench simulate`): each round trip and login costs the link's latency,
//! hosts answer with a real Debian 12 host's facts and `sshd -T` (the
//! settings of the sshd drop-in it holds laid over them), and verification
//! reaches a simulated dockerd over real mutual TLS. The hosts' work runs
//! on a runtime of its own, so that dockhand's CPU can be told apart.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;

use super::remote::Kind;
use crate::error::{Error, HostError, Result};
use crate::transport::{Connector, ExecOutput, ExitStatus, Target, Transport};

/// A step of the engine's remote work, told apart by its script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Gather,
    Stage,
    Commit,
    Finish,
    Rollback,
    Login,
    /// The host lock of an apply.
    Lock,
}

/// What a host does at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Never answers.
    Hang,
    /// Answers `error …` (a commit that fails has replaced nothing).
    Fail,
    /// Answers after a while.
    Slow(Duration),
}

/// A path's type, mode and owners, as a staging record gave them.
#[derive(Debug, Clone)]
struct Attr {
    directory: bool,
    mode: String,
    owner: String,
    group: String,
}

#[derive(Debug, Default)]
pub struct HostState {
    pub unreachable: bool,
    /// Another apply holds the host.
    pub locked: bool,
    pub acts: HashMap<Step, Act>,
    /// Files as the host has them: path → content.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Modes and owners staging gave (paths not here are 644 root:root
    /// files), and the directories it made.
    attrs: BTreeMap<String, Attr>,
    staged: BTreeMap<String, Vec<u8>>,
    staged_attrs: BTreeMap<String, Attr>,
    before_commit: Option<BTreeMap<String, Vec<u8>>>,
    /// Every step seen, in order.
    pub seen: Vec<Step>,
    /// SSH connections made to the host.
    pub connections: usize,
}

/// The fleet: a [`Connector`] whose sessions reach these hosts.
#[derive(Clone, Default)]
pub struct FakeFleet {
    hosts: Arc<Mutex<HashMap<String, HostState>>>,
    sim: Option<Arc<Simulation>>,
    /// Sessions open now, and the most ever open at once, fleet-wide.
    open: Arc<(AtomicUsize, AtomicUsize)>,
}

/// How a simulated fleet differs from the tests' fake one.
pub struct Simulation {
    /// One way: a round trip costs twice this.
    pub latency: Duration,
    /// Where the hosts' side runs (its threads are the hosts').
    pub hosts: tokio::runtime::Handle,
}

impl Simulation {
    /// What `round_trips` of the link take.
    fn delay(&self, round_trips: u32) -> Duration {
        self.latency * 2 * round_trips
    }
}

/// Round trips a login costs: TCP, key exchange (two), authentication,
/// the first channel.
const LOGIN_ROUND_TRIPS: u32 = 5;

/// A real Debian 12 host's facts and `sshd -T`, as its gather said them.
const SIM_GATHER: &str = include_str!("sim/bookworm-gather-facts.txt");

impl FakeFleet {
    /// The simulation's fleet of `names`, fresh Debian 12 hosts.
    pub fn simulated<'a>(names: impl IntoIterator<Item = &'a str>, sim: Simulation) -> FakeFleet {
        let hosts = names
            .into_iter()
            .map(|name| (name.to_string(), HostState::default()))
            .collect();
        FakeFleet {
            hosts: Arc::new(Mutex::new(hosts)),
            sim: Some(Arc::new(sim)),
            open: Arc::default(),
        }
    }

    /// Waits `round_trips` of the simulated link (nothing for the tests).
    async fn wait(&self, round_trips: u32) {
        if let Some(sim) = &self.sim {
            tokio::time::sleep(sim.delay(round_trips)).await;
        }
    }

    pub fn with_hosts(names: &[&str]) -> FakeFleet {
        let fleet = FakeFleet::default();
        for name in names {
            fleet
                .hosts
                .lock()
                .unwrap()
                .insert(name.to_string(), HostState::default());
        }
        fleet
    }

    /// The most sessions that were open at once, over the whole fleet.
    pub fn most_open(&self) -> usize {
        self.open.1.load(Ordering::SeqCst)
    }

    /// Changes a host.
    pub fn set(&self, host: &str, change: impl FnOnce(&mut HostState)) {
        change(
            self.hosts
                .lock()
                .unwrap()
                .get_mut(host)
                .expect("a fake host"),
        );
    }

    /// Reads a host.
    pub fn get<R>(&self, host: &str, read: impl FnOnce(&HostState) -> R) -> R {
        read(self.hosts.lock().unwrap().get(host).expect("a fake host"))
    }

    /// Whether anything was ever written on the host.
    pub fn touched(&self, host: &str) -> bool {
        self.get(host, |h| {
            h.seen
                .iter()
                .any(|s| matches!(s, Step::Stage | Step::Commit | Step::Rollback))
        })
    }
}

pub struct FakeSession {
    host: String,
    fleet: FakeFleet,
    /// Whether this session holds the host's lock (released on close).
    holds_lock: std::sync::atomic::AtomicBool,
    meter: crate::transport::Meter,
}

impl Connector for FakeFleet {
    type Session = FakeSession;

    async fn connect(&self, target: &Target) -> Result<FakeSession> {
        if self.get(&target.name, |h| h.unreachable) {
            return Err(Error::OnHost {
                host: target.name.clone(),
                cause: HostError::Unreachable {
                    addr: format!("{}:{}", target.address, target.port),
                    reason: "connection refused".into(),
                },
            });
        }
        self.wait(LOGIN_ROUND_TRIPS).await;
        self.set(&target.name, |h| h.connections += 1);
        let open = self.open.0.fetch_add(1, Ordering::SeqCst) + 1;
        self.open.1.fetch_max(open, Ordering::SeqCst);
        target.meter.login();
        Ok(FakeSession {
            host: target.name.clone(),
            fleet: self.clone(),
            holds_lock: std::sync::atomic::AtomicBool::new(false),
            meter: target.meter.clone(),
        })
    }
}

impl Drop for FakeSession {
    fn drop(&mut self) {
        self.fleet.open.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The step a script stands for, by its kind.
fn step_of(command: &str, stdin: &[u8]) -> Step {
    match Kind::of(command, stdin) {
        Some(Kind::Stage) => Step::Stage,
        Some(Kind::Gather) => Step::Gather,
        Some(Kind::Commit) => Step::Commit,
        Some(Kind::Restore | Kind::HandlersAgain) => Step::Rollback,
        Some(Kind::Finish) => Step::Finish,
        Some(Kind::Lock) => Step::Lock,
        Some(
            Kind::Ping
            | Kind::Login
            | Kind::SshdSettings
            | Kind::DockerState
            | Kind::StartDocker
            | Kind::DockerJournal
            | Kind::DialStdio,
        )
        | None => Step::Login,
    }
}

impl Transport for FakeSession {
    fn host(&self) -> &str {
        &self.host
    }

    async fn close(self) {
        if self.holds_lock.load(std::sync::atomic::Ordering::SeqCst) {
            self.fleet.set(&self.host, |h| h.locked = false);
        }
    }

    /// The simulated dockerd, in the simulation (the TCP handshake's
    /// round trip paid); none for the tests.
    async fn tunnel(&self, _port: u16) -> Result<Option<Box<dyn crate::transport::Stream>>> {
        let Some(sim) = &self.fleet.sim else {
            return Ok(None);
        };
        self.fleet.wait(1).await;
        let (ours, theirs) = tokio::io::duplex(64 << 10);
        // The daemon reads its files and is made on the host's threads:
        // only a small future is handed over from dockhand's (the served
        // connection's state is boxed there), as a real host's daemon
        // costs dockhand nothing to accept a connection.
        let (fleet, host) = (self.fleet.clone(), self.host.clone());
        sim.hosts.spawn(async move {
            let file = |h: &HostState, path: &str| h.files.get(path).cloned().unwrap_or_default();
            let material = fleet.get(&host, |h| super::sim::dockerd::Material {
                ca: file(h, "/etc/docker/tls/ca.pem"),
                cert: file(h, "/etc/docker/tls/server-cert.pem"),
                key: file(h, "/etc/docker/tls/server-key.pem"),
                daemon_json: file(h, "/etc/docker/daemon.json"),
            });
            Box::pin(super::sim::dockerd::serve(theirs, material)).await
        });
        Ok(Some(Box::new(ours)))
    }

    async fn hold(&self, command: &str, stdin: &[u8]) -> Result<crate::transport::Held> {
        self.meter.command();
        let round_trips = self.waits(stdin);
        if self
            .fleet
            .get(&self.host, |h| h.acts.get(&Step::Lock) == Some(&Act::Hang))
        {
            std::future::pending::<()>().await;
        }
        let busy = self.fleet.get(&self.host, |h| h.locked);
        self.fleet.set(&self.host, |h| {
            h.seen.push(Step::Lock);
            h.locked = true;
        });
        if !busy {
            self.holds_lock
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if busy {
            // Refused by the host: the answer still crosses the link.
            self.fleet.wait(round_trips).await;
            return Ok(crate::transport::Held::Ended(ExecOutput {
                status: ExitStatus::Code(75),
                ..ExecOutput::default()
            }));
        }
        // The gather that rides on the lock, as a gather of its own.
        let mut said = String::from("locked\n");
        let answer = self
            .on_host(command, stdin, Hosted::HeldGather, round_trips)
            .await;
        said.push_str(&String::from_utf8_lossy(&answer.stdout));
        Ok(crate::transport::Held::Running(said))
    }

    /// As the lock's shell does: the script and its input come on the
    /// held channel, whose window is open, and the answer: one round trip.
    async fn ask_held(
        &self,
        script: &str,
        input: &[u8],
        mut watch: Option<(&str, tokio::sync::oneshot::Sender<()>)>,
    ) -> Result<Option<ExecOutput>> {
        if !self.holds_lock.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(None);
        }
        self.meter.command();
        let output = self.on_host(script, input, Hosted::Command, 1).await;
        crate::transport::tell_when_printed(&mut watch, &output.stdout, 0);
        Ok(Some(output))
    }

    async fn exec(&self, command: &str, stdin: &[u8]) -> Result<ExecOutput> {
        self.meter.command();
        let round_trips = self.waits(stdin);
        Ok(self
            .on_host(command, stdin, Hosted::Command, round_trips)
            .await)
    }
}

/// What a host makes of a command sent to it.
#[derive(Clone, Copy)]
enum Hosted {
    /// Runs it.
    Command,
    /// Runs the gather that rides on a lock, if the lock's script has one.
    HeldGather,
}

impl FakeSession {
    /// A command's round trips: its answer, and before it, as with
    /// OpenSSH, the channel's window when input goes with the command.
    fn waits(&self, stdin: &[u8]) -> u32 {
        if stdin.is_empty() {
            1
        } else {
            self.meter.window();
            2
        }
    }

    /// The host's side of a command, answered after `round_trips` of the
    /// link: on the hosts' runtime in the simulation. What the command is,
    /// and what it does, is the host's work (its shell reads the command),
    /// not dockhand's; and the link's delay is the network's, so it is
    /// waited out there too: dockhand is woken once, by the answer, as a
    /// socket's reply wakes it (not by a timer of its own, then the answer).
    async fn on_host(
        &self,
        command: &str,
        stdin: &[u8],
        what: Hosted,
        round_trips: u32,
    ) -> ExecOutput {
        match &self.fleet.sim {
            Some(sim) => {
                let (fleet, host) = (self.fleet.clone(), self.host.clone());
                let (command, stdin) = (command.to_string(), stdin.to_vec());
                let delay = sim.delay(round_trips);
                // The command's state is boxed on the host's side: dockhand
                // hands over the bytes, as it would write them to a channel.
                sim.hosts
                    .spawn(async move {
                        tokio::time::sleep(delay).await;
                        Box::pin(fleet.run_command(&host, &command, &stdin, what)).await
                    })
                    .await
                    .expect("a simulated host's command")
            }
            None => {
                self.fleet
                    .run_command(&self.host, command, stdin, what)
                    .await
            }
        }
    }
}

impl FakeFleet {
    /// What the host does with a command and its input, and answers.
    async fn run_command(
        &self,
        host: &str,
        command: &str,
        stdin: &[u8],
        what: Hosted,
    ) -> ExecOutput {
        if let Hosted::HeldGather = what {
            let script = script_of(command, stdin);
            if !Kind::Gather.within(&script) {
                return ExecOutput::default();
            }
            return self.exec_step(host, Step::Gather, None, &script).await;
        }
        let step = step_of(command, stdin);
        let kind = Kind::of(command, stdin);
        let mut output = self
            .exec_step(host, step, kind, &script_of(command, stdin))
            .await;
        // The commit that follows the staging records, in the same command.
        if step == Step::Stage && output.success() && commits_after_staging(stdin) {
            let committed = self.exec_step(host, Step::Commit, kind, stdin).await;
            output.stdout.extend(committed.stdout);
            output.status = committed.status;
        }
        output
    }

    /// What the host does and answers at `step`, its script's input given.
    async fn exec_step(
        &self,
        host: &str,
        step: Step,
        kind: Option<Kind>,
        stdin: &[u8],
    ) -> ExecOutput {
        let act = self.get(host, |h| h.acts.get(&step).copied());
        self.set(host, |h| h.seen.push(step));
        match act {
            Some(Act::Hang) => std::future::pending::<()>().await,
            Some(Act::Slow(pause)) => tokio::time::sleep(pause).await,
            _ => {}
        }
        let failed = act == Some(Act::Fail);
        let simulated = self.sim.is_some();
        let stdout = self
            .hosts
            .lock()
            .unwrap()
            .get_mut(host)
            .map(|host| match (step, failed) {
                (_, true) => format!("error {step:?} failed on purpose\n"),
                (Step::Gather, _) if simulated => simulated_gather(host, stdin),
                (Step::Gather, _) => gather_answer(host, stdin),
                (Step::Login, _) if simulated && kind == Some(Kind::SshdSettings) => sshd_t(host),
                (Step::Stage, _) => {
                    let (files, attrs) = staged_files(stdin);
                    host.staged = files;
                    for (path, attr) in attrs {
                        if attr.directory {
                            host.attrs.insert(path, attr);
                        } else {
                            host.staged_attrs.insert(path, attr);
                        }
                    }
                    "done\n".into()
                }
                (Step::Commit, _) => {
                    host.before_commit = Some(host.files.clone());
                    let staged = std::mem::take(&mut host.staged);
                    host.files.extend(staged);
                    let attrs = std::mem::take(&mut host.staged_attrs);
                    host.attrs.extend(attrs);
                    "ok committed\nok handlers\n".into()
                }
                (Step::Rollback, _) => {
                    if let Some(before) = host.before_commit.take() {
                        host.files = before;
                    }
                    "ok rolled-back\n".into()
                }
                (Step::Finish, _) => {
                    host.before_commit = None;
                    "ok finished\n".into()
                }
                // Locks are taken with `hold`, never with `exec`.
                (Step::Login | Step::Lock, _) => String::new(),
            });
        ExecOutput {
            stdout: stdout.unwrap_or_default().into_bytes(),
            stderr: Vec::new(),
            status: ExitStatus::Code(if failed { 1 } else { 0 }),
        }
    }
}

/// A simulated host's gather: its paths as the fake's, then a real Debian
/// 12 host's facts with the sshd drop-ins it holds, and its `sshd -T`.
fn simulated_gather(host: &HostState, script: &[u8]) -> String {
    let paths = gather_answer(host, script);
    let paths = &paths[..paths.find("@facts\n").unwrap_or(paths.len())];
    let facts = &SIM_GATHER[..SIM_GATHER.find("@sshd\n").unwrap_or(SIM_GATHER.len())];
    let mut out = String::with_capacity(paths.len() + SIM_GATHER.len());
    out.push_str(paths);
    out.push_str(facts);
    for path in host.files.keys() {
        if path.starts_with("/etc/ssh/sshd_config.d/") && path.ends_with(".conf") {
            out.push_str(&format!("sshd_drop_in {path}\n"));
        }
    }
    out.push_str("@sshd\n");
    out.push_str(&sshd_t(host));
    out.push_str("@sshd_status 0\n");
    out
}

/// `sshd -T` of the simulated host: the real one, with the settings of
/// the drop-ins it holds laid over it (first value wins, as in sshd).
fn sshd_t(host: &HostState) -> String {
    let base = &SIM_GATHER[SIM_GATHER.find("@sshd\n").map_or(0, |at| at + 6)..];
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    for (path, content) in &host.files {
        if path.starts_with("/etc/ssh/sshd_config.d/") {
            for line in String::from_utf8_lossy(content).lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if let Some((key, value)) = line.split_once(char::is_whitespace) {
                    set.entry(key.to_ascii_lowercase())
                        .or_insert_with(|| value.trim().to_string());
                }
            }
        }
    }
    let mut out = String::with_capacity(base.len());
    let mut said = std::collections::HashSet::new();
    for line in base.lines().filter(|l| !l.starts_with("@sshd_status")) {
        let key = line.split(' ').next().unwrap_or("");
        match set.get(key) {
            Some(value) if said.insert(key.to_string()) => {
                out.push_str(&format!("{key} {value}\n"));
            }
            Some(_) => {}
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (key, value) in set.iter().filter(|(k, _)| !said.contains(*k)) {
        out.push_str(&format!("{key} {value}\n"));
    }
    out
}

/// The gather's answer for the paths its script asks about (the words
/// of its one `stat`), in the script's format: every file is shown.
fn gather_answer(host: &HostState, script: &[u8]) -> String {
    let script = String::from_utf8_lossy(script);
    let paths: Vec<&str> = script
        .lines()
        .find_map(|line| {
            line.strip_prefix("st=$(stat -c '%d:%i:%s:%.9Y:%.9Z|%F|%a|%U|%G|%s|%n' -- ")
        })
        // The managed paths come first, each quoted; the key's files and
        // the state directory after them.
        .map(|words| {
            let words = words.split(" ${inputs").next().unwrap_or_default();
            words.split('\'').skip(1).step_by(2).collect()
        })
        .unwrap_or_default();
    let present: Vec<(&str, &Vec<u8>)> = paths
        .iter()
        .filter_map(|path| host.files.get(*path).map(|bytes| (*path, bytes)))
        .collect();
    let mut out = String::from("@stat\n");
    for path in &paths {
        if let Some(attr) = host.attrs.get(*path).filter(|a| a.directory) {
            let Attr {
                mode, owner, group, ..
            } = attr;
            out.push_str(&format!("directory|{mode}|{owner}|{group}|4096|{path}\n"));
        }
    }
    for (path, bytes) in &present {
        let (mode, owner, group) = match host.attrs.get(*path) {
            Some(Attr {
                mode, owner, group, ..
            }) => (mode.as_str(), owner.as_str(), group.as_str()),
            None => ("644", "root", "root"),
        };
        out.push_str(&format!(
            "regular file|{mode}|{owner}|{group}|{}|{path}\n",
            bytes.len()
        ));
    }
    out.push_str("@sha256\n");
    for (path, bytes) in &present {
        out.push_str(&format!(
            "{}  {path}\n",
            crate::core::plan::sha256_hex(bytes)
        ));
    }
    out.push_str("@content\n");
    let mut blob = Vec::new();
    for (path, bytes) in &present {
        out.push_str(&format!("{path}\n"));
        blob.extend_from_slice(bytes);
    }
    out.push_str(&format!(
        "@blob\n{}\n",
        base64::engine::general_purpose::STANDARD.encode(blob)
    ));
    out.push_str("@facts\nos debian 13\n@sshd\n@sshd_status 0\n");
    out
}

/// A script's text as the host's shell reads it: `sh -c`'s argument
/// where it went on the command line (as root already), else stdin.
fn script_of<'a>(command: &str, stdin: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    let word = command
        .strip_prefix("/bin/sh -c '")
        .and_then(|rest| rest.strip_suffix('\''));
    match word {
        Some(quoted) => std::borrow::Cow::Owned(quoted.replace("'\\''", "'").into_bytes()),
        None => std::borrow::Cow::Borrowed(stdin),
    }
}

/// Whether a commit's script follows the staging records.
fn commits_after_staging(input: &[u8]) -> bool {
    let tag = format!("# dockhand: {}\n", Kind::Commit.name());
    input.windows(tag.len()).any(|w| w == tag.as_bytes())
}

/// The files a staging input carries (`F size mode owner group temp
/// path` records, each followed by its bytes, up to `END`), and the modes
/// and owners of those and of the directories (`D mode owner group - -
/// path`) it makes.
fn staged_files(input: &[u8]) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, Attr>) {
    let mut files = BTreeMap::new();
    let mut attrs = BTreeMap::new();
    let mut at = 0;
    while at < input.len() {
        let end = input[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(input.len(), |p| at + p);
        let line = String::from_utf8_lossy(&input[at..end]).into_owned();
        at = end + 1;
        if line.starts_with("END") {
            break;
        }
        let fields: Vec<&str> = line.splitn(7, ' ').collect();
        // Modes as `stat -c %a` says them: no leading zeros.
        let attr = |directory: bool, at: usize| Attr {
            directory,
            mode: fields[at].trim_start_matches('0').to_string(),
            owner: fields[at + 1].to_string(),
            group: fields[at + 2].to_string(),
        };
        if fields[0] == "F" && fields.len() == 7 {
            let size: usize = fields[1].parse().unwrap_or(0);
            if !fields[5].contains("-check-") {
                files.insert(fields[6].to_string(), input[at..at + size].to_vec());
                attrs.insert(fields[6].to_string(), attr(false, 2));
            }
            at += size;
        } else if fields[0] == "D" && fields.len() == 7 && fields[1] != "-" {
            attrs.insert(fields[6].to_string(), attr(true, 1));
        }
    }
    (files, attrs)
}
