//! The flows that change nothing: `plan`, `verify`, `audit` and `ping`,
//! each over the fleet, one connection per host, generic over the
//! [`Connector`] so the fleet tests run them on the fake fleet. Each
//! command calls one of these and reports what it returns.

use std::sync::Arc;

use super::fleet::{Finished, Fleet, failure};
use super::load::{self, Jobs, Loaded};
use super::pipeline;
use super::remote::Become;
use super::{gather, remote};
use crate::core::audit::{self, Finding, Verdict};
use crate::core::event::{HostStatus, Phase};
use crate::core::outcome::PingReply;
use crate::core::plan::HostPlan;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::transport::{Connector, Ssh, Target, Transport};

/// Plans every job over SSH.
pub async fn plan(loaded: &Loaded, jobs: Jobs, fleet: &Fleet) -> Vec<Finished<HostPlan>> {
    plan_with(Ssh, loaded, jobs, fleet).await
}

/// Connects, gathers in one round trip and plans each host; never writes.
pub async fn plan_with<C: Connector + Clone>(
    connector: C,
    loaded: &Loaded,
    jobs: Jobs,
    fleet: &Fleet,
) -> Vec<Finished<HostPlan>> {
    let playbook = loaded.playbook.clone();
    fleet
        .run("plan", jobs, describe_plan, move |job, run| {
            let (connector, playbook) = (connector.clone(), playbook.clone());
            async move {
                let job = job.read_tls()?;
                let prepared = pipeline::prepare(&connector, &playbook, &job, &run).await?;
                prepared.session.close().await;
                Ok(prepared.plan)
            }
        })
        .await
}

fn describe_plan(plan: &Result<HostPlan>) -> (HostStatus, String) {
    match plan {
        Ok(plan) if plan.is_empty() => (HostStatus::Unchanged, "no changes".into()),
        Ok(plan) => (
            HostStatus::Ok,
            format!("{} change(s) pending", plan.changes.len()),
        ),
        Err(err) => failure(err),
    }
}

/// Verifies every selected host over SSH with the client certificate
/// verification presents; returns the checks each passed.
pub async fn verify(loaded: &Loaded, fleet: &Fleet) -> Result<Vec<Finished<Vec<String>>>> {
    verify_with(Ssh, loaded, fleet).await
}

pub async fn verify_with<C: Connector + Clone>(
    connector: C,
    loaded: &Loaded,
    fleet: &Fleet,
) -> Result<Vec<Finished<Vec<String>>>> {
    let playbook = loaded.playbook.clone();
    let client = match &loaded.store {
        Some(store) => {
            let name = load::verification_client(&playbook);
            Some(store.client(&name)?.ok_or_else(|| {
                Error::Usage(format!(
                    "no client certificate `{name}` in {}: run `dockhand apply` (or `dockhand pki client {name}`) first",
                    store.dir().display()
                ))
            })?)
        }
        None => None,
    };
    let checks = Arc::new(load::checks(&playbook, loaded.store.as_deref(), client)?);
    let jobs = load::host_jobs(loaded, false);
    Ok(fleet
        .run("verify", jobs, describe_verified, move |job, run| {
            let (connector, checks, playbook) =
                (connector.clone(), checks.clone(), playbook.clone());
            async move {
                // What the playbook means for this host depends on its facts
                // (its OpenSSH's key exchange, its host keys): gathered first.
                let prepared = pipeline::prepare(&connector, &playbook, &job, &run).await?;
                // The facts were gathered on this run's own connection, a
                // fresh login a moment ago: sshd's settings are read from them.
                let verified = pipeline::verify(
                    &connector,
                    &prepared.session,
                    &job,
                    &prepared.desired,
                    &checks,
                    pipeline::Seen::Unchanged(&prepared.actual.facts),
                    std::future::ready(None),
                    &run,
                )
                .await;
                prepared.session.close().await;
                verified
            }
        })
        .await)
}

fn describe_verified(checks: &Result<Vec<String>>) -> (HostStatus, String) {
    match checks {
        Ok(passed) => (HostStatus::Ok, format!("verified: {}", passed.join("; "))),
        Err(err) => failure(err),
    }
}

/// Audits every host over SSH: gathers what the audit rules read, and
/// judges it; changes nothing.
pub async fn audit(
    hosts: load::Hosts,
    become_password: Option<Arc<Secret>>,
    fleet: &Fleet,
) -> Vec<Finished<Vec<Finding>>> {
    audit_with(Ssh, hosts, become_password, fleet).await
}

pub async fn audit_with<C: Connector + Clone>(
    connector: C,
    hosts: load::Hosts,
    become_password: Option<Arc<Secret>>,
    fleet: &Fleet,
) -> Vec<Finished<Vec<Finding>>> {
    let jobs = hosts
        .into_iter()
        .map(|(host, target)| {
            let how = Become::of(
                host.ssh.become_root.unwrap_or(false),
                become_password.as_ref(),
            );
            (host.name.clone(), (target, how))
        })
        .collect();
    fleet
        .run(
            "audit",
            jobs,
            describe_audit,
            move |(target, how): (Arc<Target>, Become), run| {
                let connector = connector.clone();
                async move {
                    let session = pipeline::connect_to(&connector, &target, &run).await?;
                    let gathered = run
                        .step(
                            Phase::Gathering,
                            run.deadlines.step,
                            gather::gather(&session, &audit::paths(), true, &how),
                        )
                        .await;
                    session.close().await;
                    Ok(audit::audit(&gathered?))
                }
            },
        )
        .await
}

fn describe_audit(findings: &Result<Vec<Finding>>) -> (HostStatus, String) {
    match findings {
        Ok(findings) => {
            let count = |v: Verdict| findings.iter().filter(|f| f.verdict == v).count();
            let status = if count(Verdict::Fail) > 0 {
                HostStatus::Failed
            } else {
                HostStatus::Ok
            };
            (
                status,
                format!(
                    "{} fail, {} warn, {} pass",
                    count(Verdict::Fail),
                    count(Verdict::Warn),
                    count(Verdict::Pass)
                ),
            )
        }
        Err(err) => failure(err),
    }
}

/// The transport check over SSH: each host's name, login user, sudo (when
/// `become` is set) and docker's state, in one round trip.
pub async fn ping(hosts: load::Hosts, fleet: &Fleet) -> Vec<Finished<PingReply>> {
    ping_with(Ssh, hosts, fleet).await
}

pub async fn ping_with<C: Connector + Clone>(
    connector: C,
    hosts: load::Hosts,
    fleet: &Fleet,
) -> Vec<Finished<PingReply>> {
    let jobs = hosts
        .into_iter()
        .map(|(host, target)| {
            let sudo = host.ssh.become_root.unwrap_or(false);
            (host.name.clone(), (target, sudo))
        })
        .collect();
    fleet
        .run(
            "ping",
            jobs,
            describe_ping,
            move |(target, check_sudo): (Arc<Target>, bool), run| {
                let connector = connector.clone();
                async move {
                    let session = pipeline::connect_to(&connector, &target, &run).await?;
                    let probe = remote::ping(check_sudo);
                    let output = run
                        .step(
                            Phase::Probing,
                            run.deadlines.step,
                            session.run(
                                "probe",
                                &probe.command(&crate::engine::remote::Become::No),
                                probe.input(),
                            ),
                        )
                        .await;
                    session.close().await;
                    Ok(remote::ping_reply(&output?.stdout_text(), check_sudo))
                }
            },
        )
        .await
}

fn describe_ping(reply: &Result<PingReply>) -> (HostStatus, String) {
    match reply {
        Ok(reply) => (
            HostStatus::Ok,
            format!("user={} docker={}", reply.user, reply.docker),
        ),
        Err(err) => failure(err),
    }
}
