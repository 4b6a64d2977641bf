//! A scripted in-memory fleet for unit tests of the runner and the
//! pipeline: each host answers the gather from the files it holds, takes
//! staged writes and commits them, and can be told to be unreachable, to
//! hang at a step, or to fail one. It records every step it saw, so a test
//! can tell what was touched. No root, no lab, no network.

use std::collections::{BTreeMap, HashMap};
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

#[derive(Debug, Default)]
pub struct HostState {
    pub unreachable: bool,
    /// Another apply holds the host.
    pub locked: bool,
    pub acts: HashMap<Step, Act>,
    /// Files as the host has them: path → content.
    pub files: BTreeMap<String, Vec<u8>>,
    staged: BTreeMap<String, Vec<u8>>,
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
}

impl FakeFleet {
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
        self.set(&target.name, |h| h.connections += 1);
        target.meter.login();
        Ok(FakeSession {
            host: target.name.clone(),
            fleet: self.clone(),
            holds_lock: std::sync::atomic::AtomicBool::new(false),
            meter: target.meter.clone(),
        })
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

    async fn tunnel(&self, _port: u16) -> Result<Option<Box<dyn crate::transport::Stream>>> {
        Ok(None)
    }

    async fn hold(&self, _command: &str, stdin: &[u8]) -> Result<crate::transport::Held> {
        self.meter.command();
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
            return Ok(crate::transport::Held::Ended(ExecOutput {
                status: ExitStatus::Code(75),
                ..ExecOutput::default()
            }));
        }
        // The gather that rides on the lock, as a gather of its own.
        let mut said = String::from("locked\n");
        if !stdin.is_empty() {
            let answer = self.exec_step(Step::Gather, stdin).await;
            said.push_str(&String::from_utf8_lossy(&answer.stdout));
        }
        Ok(crate::transport::Held::Running(said))
    }

    async fn exec(&self, command: &str, stdin: &[u8]) -> Result<ExecOutput> {
        self.meter.command();
        let step = step_of(command, stdin);
        let mut output = self.exec_step(step, stdin).await;
        // The commit that follows the staging records, in the same command.
        if step == Step::Stage && output.success() && commits_after_staging(stdin) {
            let committed = self.exec_step(Step::Commit, stdin).await;
            output.stdout.extend(committed.stdout);
            output.status = committed.status;
        }
        Ok(output)
    }
}

impl FakeSession {
    /// What the host does and answers at `step`, its script's input given.
    async fn exec_step(&self, step: Step, stdin: &[u8]) -> ExecOutput {
        let act = self.fleet.get(&self.host, |h| h.acts.get(&step).copied());
        self.fleet.set(&self.host, |h| h.seen.push(step));
        match act {
            Some(Act::Hang) => std::future::pending::<()>().await,
            Some(Act::Slow(pause)) => tokio::time::sleep(pause).await,
            _ => {}
        }
        let failed = act == Some(Act::Fail);
        let stdout = self
            .fleet
            .hosts
            .lock()
            .unwrap()
            .get_mut(&self.host)
            .map(|host| match (step, failed) {
                (_, true) => format!("error {step:?} failed on purpose\n"),
                (Step::Gather, _) => gather_answer(host, stdin),
                (Step::Stage, _) => {
                    host.staged = staged_files(stdin);
                    "done\n".into()
                }
                (Step::Commit, _) => {
                    host.before_commit = Some(host.files.clone());
                    let staged = std::mem::take(&mut host.staged);
                    host.files.extend(staged);
                    "ok committed\nok handlers\n".into()
                }
                (Step::Rollback, _) => {
                    if let Some(before) = host.before_commit.take() {
                        host.files = before;
                    }
                    "ok rolled-back\n".into()
                }
                (Step::Finish, _) => "ok finished\n".into(),
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

/// The gather's answer for the paths its script asks about (the words
/// of its one `stat`), in the script's format: every file is shown.
fn gather_answer(host: &HostState, script: &[u8]) -> String {
    let script = String::from_utf8_lossy(script);
    let paths: Vec<&str> = script
        .lines()
        .find_map(|line| line.strip_prefix("st=$(stat -c '%F|%a|%U|%G|%s|%n' -- "))
        .map(|words| words.split('\'').skip(1).step_by(2).collect())
        .unwrap_or_default();
    let present: Vec<(&str, &Vec<u8>)> = paths
        .iter()
        .filter_map(|path| host.files.get(*path).map(|bytes| (*path, bytes)))
        .collect();
    let mut out = String::from("@stat\n");
    for (path, bytes) in &present {
        out.push_str(&format!(
            "regular file|644|root|root|{}|{path}\n",
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

/// Whether a commit's script follows the staging records.
fn commits_after_staging(input: &[u8]) -> bool {
    let tag = format!("# dockhand: {}\n", Kind::Commit.name());
    input.windows(tag.len()).any(|w| w == tag.as_bytes())
}

/// The files a staging input carries: `F size mode owner group temp path`
/// records, each followed by its bytes, up to `END`.
fn staged_files(input: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
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
        if fields[0] == "F" && fields.len() == 7 {
            let size: usize = fields[1].parse().unwrap_or(0);
            if !fields[5].contains("-check-") {
                files.insert(fields[6].to_string(), input[at..at + size].to_vec());
            }
            at += size;
        }
    }
    files
}
