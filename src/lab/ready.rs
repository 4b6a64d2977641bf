//! A lab host is ready when it answers SSH, through dockhand's own
//! transport, and reports docker active: a host that boots but cannot be
//! managed is not "up".

use std::time::{Duration, Instant};

use super::{HostRecord, LabPaths};
use crate::engine::remote;
use crate::error::{Error, HostError, Result};
use crate::transport::{HostKeyPolicy, SshSession, Target, Transport};

/// How to reach a lab host as root with the lab's key and known_hosts.
pub fn target(paths: &LabPaths, record: &HostRecord) -> Target {
    Target {
        name: record.name.clone(),
        address: record.address.to_string(),
        port: 22,
        user: "root".into(),
        identity_files: vec![paths.key()].into(),
        use_agent: false,
        known_hosts: vec![paths.known_hosts()].into(),
        host_key_policy: HostKeyPolicy::Strict,
        host_key_alias: None,
        connect_timeout: Duration::from_secs(5),
        jump: None,
        meter: Default::default(),
    }
}

/// Waits for every host at once; fails naming each host that did not
/// become ready and why.
pub async fn wait_until_ready(
    targets: Vec<Target>,
    within: Duration,
    ready: impl Fn(&str, Duration),
) -> Result<()> {
    let deadline = Instant::now() + within;
    let mut tasks = tokio::task::JoinSet::new();
    for target in targets {
        tasks.spawn(async move {
            let started = Instant::now();
            let outcome = wait_for_host(&target, deadline).await;
            (target.name, started.elapsed(), outcome)
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (name, elapsed, outcome) = joined.map_err(|e| Error::lab("wait for hosts", e))?;
        match outcome {
            Ok(()) => ready(&name, elapsed),
            Err(err) => failures.push(format!("{name}: {err}")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        failures.sort();
        Err(Error::lab(
            "wait for hosts to answer SSH with docker active",
            failures.join("; "),
        ))
    }
}

async fn wait_for_host(target: &Target, deadline: Instant) -> Result<()> {
    let mut last_error;
    loop {
        let attempt = match SshSession::connect(target).await {
            Ok(session) => {
                let result = wait_for_docker(&session, deadline).await;
                session.close().await;
                result
            }
            Err(err) => Err(err),
        };
        match attempt {
            Ok(()) => return Ok(()),
            // A changed or unknown host key, or a docker that failed, is
            // never "not ready yet".
            Err(
                err @ (Error::OnHost {
                    cause: HostError::HostKeyChanged { .. },
                    ..
                }
                | Error::OnHost {
                    cause: HostError::HostKeyUnknown { .. },
                    ..
                }
                | Error::Lab { .. }),
            ) => {
                return Err(err);
            }
            // Anything else (a connection dropped while sshd is busy or
            // still starting) is worth another try.
            Err(err) => last_error = err,
        }
        if Instant::now() >= deadline {
            return Err(last_error);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until docker is active. When lab hosts shared one cgroup tree
/// (see `cgroup`), systemd sometimes failed to put docker.socket in its
/// cgroup at boot (219/CGROUP), and then docker.service never started at
/// all; should a boot still leave docker down, it is started once boot is
/// over, as dockhand's restart handler starts it, at most twice.
async fn wait_for_docker(session: &SshSession, deadline: Instant) -> Result<()> {
    let mut starts = 0;
    loop {
        let probe = remote::docker_state();
        let output = session
            .exec(
                &probe.command(&crate::engine::remote::Become::No),
                probe.input(),
            )
            .await?;
        let text = output.stdout_text();
        let mut lines = text.lines();
        let state = lines.next().unwrap_or("").trim().to_string();
        let booted = matches!(lines.next().map(str::trim), Some("running" | "degraded"));
        if state == "active" {
            return Ok(());
        }
        if booted && starts < 2 && (state == "inactive" || state == "failed") {
            starts += 1;
            let start = remote::start_docker();
            let started = session
                .exec(
                    &start.command(&crate::engine::remote::Become::No),
                    start.input(),
                )
                .await?;
            if started.success() {
                continue;
            }
        }
        if state == "failed" || Instant::now() >= deadline {
            let journal = remote::docker_journal();
            let journal = session
                .exec(
                    &journal.command(&crate::engine::remote::Become::No),
                    journal.input(),
                )
                .await
                .map(|o| o.stdout_text())
                .unwrap_or_default();
            return Err(Error::lab(
                "start docker",
                format!("docker is still `{state}`:\n{journal}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
