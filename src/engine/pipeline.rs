//! One host's pipeline: connect → gather (one round trip) → expand → plan;
//! then, for apply, write atomically → handlers → verify → keep or roll
//! back. The engine never prints: it reports [`Step`]s to a callback.

use std::time::Instant;

pub use crate::core::outcome::{Applied, Step};

use crate::core::inventory::Host;
use crate::core::plan::{self, HostPlan};
use crate::core::playbook::Playbook;
use crate::core::resources::{self, Resources, TlsMaterial};
use crate::core::state::{ActualState, Facts};
use crate::error::{Error, Result};
use crate::transport::{SshSession, Target, Transport};
use crate::verify::{self, TlsProbe};

use super::{apply, gather};

pub type Events<'a> = &'a (dyn Fn(&str, Step) + Send + Sync);

/// Everything known about a host before connecting.
#[derive(Clone)]
pub struct HostJob {
    pub host: Host,
    pub target: Target,
    pub tls: TlsMaterial,
}

impl HostJob {
    fn become_root(&self) -> bool {
        self.host.ssh.become_root.unwrap_or(false)
    }
}

/// A host connected, gathered and planned; the session stays open for apply.
pub struct Prepared {
    pub session: SshSession,
    pub desired: Resources,
    pub actual: ActualState,
    pub plan: HostPlan,
}

fn host_error(host: &str, step: &str, reason: impl std::fmt::Display) -> Error {
    Error::Host {
        host: host.to_string(),
        step: step.to_string(),
        reason: reason.to_string(),
    }
}

/// The host's resources before its facts are known: right in everything
/// but content that depends on the facts (the override's dockerd path).
/// Enough to know which paths to gather, and what to verify.
pub fn expand_before_gathering(playbook: &Playbook, job: &HostJob) -> Result<Resources> {
    let placeholder = ActualState {
        facts: Facts {
            dockerd_path: Some("dockerd".into()),
            ..Facts::default()
        },
        ..ActualState::default()
    };
    resources::expand(playbook, &job.host.vars, &placeholder, &job.tls)
        .map_err(|reason| host_error(&job.host.name, "expand the playbook", reason))
}

pub async fn prepare(playbook: &Playbook, job: &HostJob, events: Events<'_>) -> Result<Prepared> {
    let name = &job.host.name;
    let started = Instant::now();
    let session = SshSession::connect(&job.target).await?;
    events(
        name,
        Step::Connected {
            user: job.target.user.clone(),
            seconds: started.elapsed().as_secs_f64(),
        },
    );
    let paths = expand_before_gathering(playbook, job)?.paths();
    let actual = gather::gather(&session, &paths, job.become_root()).await?;
    events(
        name,
        Step::Gathered {
            paths: paths.len(),
            seconds: started.elapsed().as_secs_f64(),
        },
    );
    let desired = resources::expand(playbook, &job.host.vars, &actual, &job.tls)
        .map_err(|reason| host_error(name, "expand the playbook", reason))?;
    let plan = plan::plan(&desired, &actual).map_err(|reason| host_error(name, "plan", reason))?;
    Ok(Prepared {
        session,
        desired,
        actual,
        plan,
    })
}

/// What verification checks, besides a fresh SSH login.
#[derive(Clone)]
pub struct Checks {
    /// The CA and a client certificate, when the docker role is on.
    pub tls: Option<(TlsProbe, u16, serde_json::Map<String, serde_json::Value>)>,
}

/// Applies the plan, verifies, and keeps the change or rolls it back.
pub async fn apply_and_verify(
    prepared: Prepared,
    job: &HostJob,
    checks: &Checks,
    events: Events<'_>,
) -> Result<Applied> {
    let name = &job.host.name;
    let become_root = job.become_root();
    let session = &prepared.session;
    if prepared.plan.is_empty() {
        let verified = verify(session, job, &prepared.desired, checks).await?;
        events(name, Step::Verified { checks: verified });
        return Ok(Applied::Unchanged);
    }
    let work = apply::work(
        &prepared.desired,
        &prepared.plan,
        &prepared.actual.facts.ssh_unit,
        &mut apply::random_suffix,
    )
    .map_err(|reason| host_error(name, "prepare the writes", reason))?;
    apply::apply(session, &work, become_root).await?;
    events(
        name,
        Step::Written {
            files: work.files.len() + work.attributes.len(),
            directories: work.directories.len(),
        },
    );
    if !work.handlers.is_empty() {
        events(
            name,
            Step::HandlersRan {
                handlers: work.handlers.clone(),
            },
        );
    }
    match verify(session, job, &prepared.desired, checks).await {
        Ok(verified) => {
            apply::finish(session, &work, become_root).await?;
            events(name, Step::Verified { checks: verified });
            Ok(Applied::Changed {
                changes: prepared.plan.changes.len(),
                handlers: work.handlers,
            })
        }
        Err(err) => {
            let reason = err.to_string();
            let restored = apply::rollback(session, &work, become_root).await;
            events(
                name,
                Step::RolledBack {
                    reason: reason.clone(),
                },
            );
            Err(host_error(
                name,
                "verify",
                match restored {
                    Ok(()) => format!("{}; the previous files were restored", strip(name, &reason)),
                    Err(e) => format!(
                        "{}; restoring the previous files failed too: {e}",
                        strip(name, &reason)
                    ),
                },
            ))
        }
    }
}

fn strip(host: &str, text: &str) -> String {
    text.strip_prefix(&format!("{host}: "))
        .unwrap_or(text)
        .to_string()
}

/// Checks a host as its users will meet it; returns what passed.
pub async fn verify(
    session: &SshSession,
    job: &HostJob,
    desired: &Resources,
    checks: &Checks,
) -> Result<Vec<String>> {
    let name = &job.host.name;
    let mut passed = Vec::new();
    if let Some((probe, port, daemon)) = &checks.tls {
        let address = &job.target.address;
        let answer = verify::query_daemon(address, *port, address, probe)
            .await
            .map_err(|e| host_error(name, "mutual-TLS GET /version and /info", e))?;
        let problems = verify::info_mismatches(&answer.info, daemon);
        if !problems.is_empty() {
            return Err(host_error(name, "check /info", problems.join("; ")));
        }
        passed.push(format!(
            "docker {} answers over mutual TLS on port {port}",
            answer.version["Version"].as_str().unwrap_or("?")
        ));
        verify::refuses_anonymous_clients(address, *port, address, probe)
            .await
            .map_err(|e| host_error(name, "refuse clients without a certificate", e))?;
        passed.push("a client without a certificate is refused".into());
    }
    if let Some((drop_in, expected)) = &desired.sshd_expected {
        let command = if job.become_root() {
            "sudo -n sshd -T"
        } else {
            "sshd -T"
        };
        let output = session.run("sshd -T", command, b"").await?;
        let effective: std::collections::BTreeMap<String, String> = output
            .stdout_text()
            .lines()
            .filter_map(|l| {
                l.split_once(' ')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(k, want)| {
                !plan::sshd_values_equal(
                    k,
                    want,
                    effective.get(k).map(String::as_str).unwrap_or(""),
                )
            })
            .map(|(k, want)| {
                format!(
                    "{k} is `{}`, not `{want}`",
                    effective.get(k).map(String::as_str).unwrap_or("(unset)")
                )
            })
            .collect();
        if !wrong.is_empty() {
            return Err(host_error(
                name,
                &format!("sshd -T after {drop_in}"),
                wrong.join("; "),
            ));
        }
        passed.push(format!(
            "sshd -T shows the {} settings of {drop_in}",
            expected.len()
        ));
    }
    // A fresh login, on a new connection: the change must not lock us out.
    let fresh = SshSession::connect(&job.target)
        .await
        .map_err(|e| host_error(name, "fresh SSH login", strip(name, &e.to_string())))?;
    let login = fresh.run("fresh SSH login", "true", b"").await;
    let _ = fresh.close().await;
    login?;
    passed.push("a fresh SSH login works".into());
    Ok(passed)
}
