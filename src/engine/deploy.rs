//! The apply flow, generic over the [`Connector`] as colmena's deployment
//! is: the command hands it a selection and a way to ask, the fleet tests
//! hand it the fake fleet, and both run the same code.
//!
//! - **One pass** (`--yes`, or no terminal): the PKI issues every host's
//!   certificate first; then each host goes through connect, gather, plan,
//!   apply, verify, batch by batch, and closes its connection when done: no
//!   host waits for the slowest gather of the fleet, and no more than
//!   `forks` connections are open at once, however large the fleet. A
//!   first run (no CA yet) plans every host before, so that a fleet which
//!   trusts another CA gets no new one: as below when the hosts all fit in
//!   the forks; else as `plan` does, `forks` at a time, each connection
//!   closed once planned (a login more per host, once).
//! - **Plan, ask, apply** (on a terminal): phase one plans every host with
//!   what the local PKI has (as `plan` does) and keeps its connection; the
//!   plans are shown and the user asked. Nothing is written, on the hosts or
//!   here, before the answer is yes. Phase two issues the certificates and
//!   applies, batch by batch, on the connections phase one opened, each
//!   host planned again with its certificate (pure, no round trip).

use std::collections::HashSet;
use std::sync::Arc;

use super::fleet::{Ended, Finished, Fleet, HostRun, Rollout, failure};
use super::load::{self, Jobs, Loaded};
use super::pipeline::{self, Checks, HostJob, Prepared};
use super::shared::Shared;
use crate::core::event::{Event, HostStatus};
use crate::core::input::inventory::Host;
use crate::core::input::playbook::Playbook;
use crate::core::outcome::Applied;
use crate::core::plan::{HostPlan, PlanSummary};
use crate::error::{Error, Result};
use crate::pki::ServerPairs;
use crate::transport::{Connector, Ssh, Transport};

/// What a host's apply ended with, and what the report shows of the plan
/// it carried out.
pub type AppliedHost = (Applied, PlanSummary);

/// Each host's plan, as the question shows it.
pub type Plans = Vec<(String, Result<HostPlan>)>;

/// How an apply goes.
pub enum Mode<A> {
    OnePass,
    /// Plan every host, then `A` is asked (only when something would
    /// change): `Ok(false)` cancels, and nothing is written.
    Ask(A),
}

/// Applies `jobs` over SSH. `None`: the answer was no.
pub async fn apply<A>(
    loaded: &Loaded,
    jobs: Jobs,
    rollout: &Rollout,
    fleet: &Fleet,
    mode: Mode<A>,
) -> Result<Option<Vec<Finished<AppliedHost>>>>
where
    A: FnOnce(Plans) -> Result<bool>,
{
    apply_with(Ssh, loaded, jobs, rollout, fleet, mode).await
}

/// [`apply`] over any connector.
pub async fn apply_with<C, A>(
    connector: C,
    loaded: &Loaded,
    jobs: Jobs,
    rollout: &Rollout,
    fleet: &Fleet,
    mode: Mode<A>,
) -> Result<Option<Vec<Finished<AppliedHost>>>>
where
    C: Connector + Clone,
    A: FnOnce(Plans) -> Result<bool>,
{
    match mode {
        Mode::OnePass => in_one_pass(connector, loaded, jobs, rollout, fleet)
            .await
            .map(Some),
        Mode::Ask(ask) => plan_ask_apply(connector, loaded, jobs, rollout, fleet, ask).await,
    }
}

async fn in_one_pass<C: Connector + Clone>(
    connector: C,
    loaded: &Loaded,
    jobs: Jobs,
    rollout: &Rollout,
    fleet: &Fleet,
) -> Result<Vec<Finished<AppliedHost>>> {
    // Without a CA yet, nothing is created before every host is planned:
    // a fleet that trusts another CA is refused, and gets no new one here.
    // Hosts that all fit in the forks keep their connections from the plan
    // to the apply (no second login); more are planned first, each
    // connection closed once planned.
    if let Some(store) = &loaded.store
        && store.ca()?.is_none()
    {
        if jobs.len() <= fleet.forks {
            let yes = |_: Plans| Ok(true);
            return plan_ask_apply(connector, loaded, jobs, rollout, fleet, yes)
                .await
                .map(Option::unwrap_or_default);
        }
        let planned = plan_first(connector.clone(), loaded, jobs, fleet).await;
        return one_pass(connector, loaded, planned, rollout, fleet).await;
    }
    let jobs = jobs
        .into_iter()
        .map(|(host, job)| (host, Ok(job)))
        .collect();
    let all = loaded.hosts.iter().map(|(h, _)| h.as_ref()).collect();
    one_pass(connector, loaded, (jobs, all), rollout, fleet).await
}

/// What a first run's plan keeps of a host until its apply: what to say
/// of it, and whether it was refused (the PKI issues nothing for it).
struct FirstPlan {
    said: (HostStatus, String),
    refused: bool,
}

/// The jobs of a pass (a host that could not be planned carries its
/// error), and the hosts the PKI issues for.
type PassJobs<'l> = (Vec<(String, Result<HostJob>)>, Vec<&'l Host>);

/// A first run's plan: every host planned as `plan` does, `forks` at a
/// time, its connection closed once planned (a first run over thousands
/// of hosts must not hold them all open, as phase one of
/// [`plan_ask_apply`] does for the question). The PKI then issues for the
/// hosts planned and not refused; the pass that follows connects again.
async fn plan_first<'l, C: Connector + Clone>(
    connector: C,
    loaded: &'l Loaded,
    jobs: Jobs,
    fleet: &Fleet,
) -> PassJobs<'l> {
    let playbook = loaded.playbook.clone();
    let planned = fleet
        .run(
            "plan",
            jobs,
            describe_first_plan,
            move |job: HostJob, run| {
                let (connector, playbook) = (connector.clone(), playbook.clone());
                async move {
                    let tls_read = job.clone().read_tls()?;
                    let prepared =
                        pipeline::prepare(&connector, &playbook, &tls_read, &run).await?;
                    let verdict = FirstPlan {
                        said: planned(&prepared.plan),
                        refused: prepared.plan.refusal.is_some(),
                    };
                    prepared.session.close().await;
                    Ok((job, verdict))
                }
            },
        )
        .await;
    let issue_for: HashSet<&str> = planned
        .iter()
        .filter(|f| matches!(&f.ended, Ended::Ran(Ok((_, first))) if !first.refused))
        .map(|f| f.host.as_str())
        .collect();
    let hosts = loaded
        .hosts
        .iter()
        .map(|(host, _)| host.as_ref())
        .filter(|host| issue_for.contains(host.name.as_str()))
        .collect();
    let jobs = planned
        .into_iter()
        .map(|f| {
            let job = f.ended.into_result(&f.host).map(|(job, _)| job);
            (f.host, job)
        })
        .collect();
    (jobs, hosts)
}

/// Each host connects, gathers, plans, applies and verifies, batch by
/// batch, after the PKI issued what `hosts` need.
async fn one_pass<C: Connector + Clone>(
    connector: C,
    loaded: &Loaded,
    (jobs, hosts): PassJobs<'_>,
    rollout: &Rollout,
    fleet: &Fleet,
) -> Result<Vec<Finished<AppliedHost>>> {
    // An interrupt during a first run's plan skips every host: nothing
    // is issued for them.
    let (pairs, client) = if fleet.interrupt.count() > 0 {
        (ServerPairs::default(), None)
    } else {
        issue(loaded, &hosts, fleet)?
    };
    let with = applying(connector, loaded, (pairs, client))?;
    Ok(fleet
        .roll_out(
            "apply",
            jobs,
            rollout,
            describe_applied,
            move |job: Result<HostJob>, run| {
                let with = with.clone();
                async move {
                    // Its TLS files are read when its turn comes, not held
                    // from the start by every host waiting.
                    let job = with_issued(job?, &with.pairs)?;
                    // Boxed: a host waiting for a fork holds a pointer, and one
                    // in flight only the step it is at (thousands of hosts).
                    let prepared = Box::pin(pipeline::prepare_to_apply(
                        &with.connector,
                        &with.playbook,
                        &job,
                        &run,
                    ))
                    .await?;
                    let applied =
                        apply_prepared(&with.connector, prepared, &job, &with.checks, &run);
                    Box::pin(applied).await
                }
            },
        )
        .await)
}

/// What every host's apply shares: the way in, the playbook, the
/// certificates the PKI issued, and what verification checks.
struct Applying<C> {
    connector: C,
    playbook: Arc<Playbook>,
    pairs: ServerPairs,
    checks: Checks,
}

fn applying<C>(
    connector: C,
    loaded: &Loaded,
    (pairs, client): crate::pki::Issued,
) -> Result<Arc<Applying<C>>> {
    let playbook = loaded.playbook.clone();
    let checks = load::checks(&playbook, loaded.store.as_deref(), client)?;
    Ok(Arc::new(Applying {
        connector,
        playbook,
        pairs,
        checks,
    }))
}

/// A host connected and planned, ready for phase two.
type Planned<S> = (HostJob, Prepared<S>);

async fn plan_ask_apply<C, A>(
    connector: C,
    loaded: &Loaded,
    jobs: Jobs,
    rollout: &Rollout,
    fleet: &Fleet,
    ask: A,
) -> Result<Option<Vec<Finished<AppliedHost>>>>
where
    C: Connector + Clone,
    A: FnOnce(Plans) -> Result<bool>,
{
    let playbook = loaded.playbook.clone();
    let prepared = fleet
        .run("plan", jobs, describe_plan, {
            let (connector, playbook) = (connector.clone(), playbook.clone());
            move |job: HostJob, run| {
                let (connector, playbook) = (connector.clone(), playbook.clone());
                async move {
                    let job = job.read_tls()?;
                    let prepared =
                        pipeline::prepare_to_apply(&connector, &playbook, &job, &run).await?;
                    Ok((job, prepared))
                }
            }
        })
        .await;
    // The hosts the PKI issues for: planned, and not refused.
    let planned: HashSet<&str> = prepared
        .iter()
        .filter(|f| matches!(&f.ended, Ended::Ran(Ok((_, p))) if p.plan.refusal.is_none()))
        .map(|f| f.host.as_str())
        .collect();
    let pending = prepared
        .iter()
        .any(|f| matches!(&f.ended, Ended::Ran(Ok((_, p))) if !p.plan.is_empty()));
    let interrupted = || fleet.interrupt.count() > 0;
    if pending && !interrupted() {
        let plans: Plans = prepared
            .iter()
            .map(|f| {
                let plan = match &f.ended {
                    Ended::Ran(Ok((_, p))) => Ok(p.plan.clone()),
                    Ended::Ran(Err(e)) => Err(Error::Usage(e.to_string())),
                    _ => Err(Error::Usage(format!("{}: not planned", f.host))),
                };
                (f.host.clone(), plan)
            })
            .collect();
        if !ask(plans)? {
            for f in prepared {
                if let Ended::Ran(Ok((_, p))) = f.ended {
                    p.session.close().await;
                }
            }
            return Ok(None);
        }
    }
    // Then the local PKI issues what the planned hosts need. An interrupt
    // before this point skips every host.
    let (pairs, client) = if interrupted() {
        (ServerPairs::default(), None)
    } else {
        let hosts: Vec<&Host> = loaded
            .hosts
            .iter()
            .map(|(host, _)| host.as_ref())
            .filter(|host| planned.contains(host.name.as_str()))
            .collect();
        issue(loaded, &hosts, fleet)?
    };
    let with = applying(connector, loaded, (pairs, client))?;
    let jobs: Vec<(String, Result<Planned<C::Session>>)> = prepared
        .into_iter()
        .map(|f| {
            let planned = f.ended.into_result(&f.host);
            (f.host, planned)
        })
        .collect();
    Ok(Some(
        fleet
            .roll_out(
                "apply",
                jobs,
                rollout,
                describe_applied,
                move |planned: Result<Planned<C::Session>>, run| {
                    let with = with.clone();
                    async move {
                        let (job, prepared) = planned?;
                        let job = match with_issued(job, &with.pairs) {
                            Ok(job) => job,
                            Err(err) => {
                                prepared.session.close().await;
                                return Err(err);
                            }
                        };
                        // The issued certificates are known now: the same
                        // gathered state, planned again with them.
                        let prepared = pipeline::replan(&with.playbook, &job, prepared)?;
                        apply_prepared(&with.connector, prepared, &job, &with.checks, &run).await
                    }
                },
            )
            .await,
    ))
}

/// The local PKI issues what `hosts` need (nothing without a PKI).
fn issue(loaded: &Loaded, hosts: &[&Host], fleet: &Fleet) -> Result<crate::pki::Issued> {
    let Some(store) = loaded.store.as_ref().filter(|_| !hosts.is_empty()) else {
        return Ok((ServerPairs::default(), None));
    };
    crate::pki::issue(
        store,
        &loaded.playbook,
        hosts,
        &load::verification_client(&loaded.playbook),
        load::now(),
        |message| fleet.sink.send(Event::Certificate { message }),
    )
}

/// The job with the TLS files the PKI issued for its host, if any, read
/// now.
fn with_issued(job: HostJob, pairs: &ServerPairs) -> Result<HostJob> {
    Ok(match pairs.material(&job.host.name)? {
        Some(tls) => HostJob { tls, ..job },
        None => job,
    })
}

/// Applies a planned host and verifies it; returns the outcome with the
/// plan it carried out, for the report.
async fn apply_prepared<C: Connector>(
    connector: &C,
    prepared: Prepared<C::Session>,
    job: &HostJob,
    checks: &Checks,
    run: &HostRun,
) -> Result<AppliedHost> {
    // What the report shows of the plan: not its contents and diffs,
    // which a fleet of thousands would hold to the end of the run.
    let plan = prepared.plan.summary(shared_path);
    let applied = pipeline::apply_and_verify(connector, prepared, job, checks, run).await?;
    Ok((applied, plan))
}

/// `path`, as one copy shared by every host's report that names it: a
/// fleet's hosts change the same few paths, and a report of 10,000 hosts
/// held a copy of each for each host to the end of the run.
fn shared_path(path: &str) -> Arc<str> {
    static PATHS: Shared<str> = Shared::new(256);
    PATHS.share(path)
}

fn describe_plan<S>(prepared: &Result<Planned<S>>) -> (HostStatus, String) {
    match prepared {
        Ok((_, p)) => planned(&p.plan),
        Err(err) => failure(err),
    }
}

/// What a host's plan says, as both ways of planning first report it.
fn planned(plan: &HostPlan) -> (HostStatus, String) {
    if plan.is_empty() {
        (HostStatus::Unchanged, "planned: no changes".into())
    } else {
        let changes = plan.changes.len();
        (HostStatus::Ok, format!("planned: {changes} change(s)"))
    }
}

fn describe_first_plan<J>(verdict: &Result<(J, FirstPlan)>) -> (HostStatus, String) {
    match verdict {
        Ok((_, first)) => first.said.clone(),
        Err(err) => failure(err),
    }
}

fn describe_applied(applied: &Result<AppliedHost>) -> (HostStatus, String) {
    match applied {
        Ok((Applied::Unchanged, _)) => (HostStatus::Unchanged, "verified".into()),
        Ok((Applied::Changed { changes, handlers }, _)) => {
            let ran = if handlers.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = handlers.iter().map(|h| h.describe()).collect();
                format!("; ran {}", names.join(", "))
            };
            (
                HostStatus::Changed,
                format!("{changes} change(s){ran}; verified"),
            )
        }
        Err(err) => failure(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_change_the_same_path_share_one_copy_of_it() {
        let first = shared_path("/etc/docker/daemon.json");
        let again = shared_path(&String::from("/etc/docker/daemon.json"));
        assert!(Arc::ptr_eq(&first, &again));
        let other = shared_path("/etc/ssh/sshd_config.d/10-dockhand.conf");
        assert_eq!(&*other, "/etc/ssh/sshd_config.d/10-dockhand.conf");
        assert!(!Arc::ptr_eq(&first, &other));
    }
}
