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
//!   host planned again with its certificate (pure, no round trip). Over
//!   more hosts than `forks`, phase one closes each connection once the
//!   host is planned, and phase two is the one pass, which applies a host
//!   only if its plan is still the one shown ([`HostPlan::approval`]).

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

/// The type of [`Mode::OnePass`], where nobody is asked.
pub type NoQuestion = fn(Plans) -> std::future::Ready<Result<bool>>;

/// Applies `jobs` over SSH. `None`: the answer was no.
pub async fn apply<A>(
    loaded: &Loaded,
    jobs: Jobs,
    rollout: &Rollout,
    fleet: &Fleet,
    mode: Mode<A>,
) -> Result<Option<Vec<Finished<AppliedHost>>>>
where
    A: AsyncFnOnce(Plans) -> Result<bool>,
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
    A: AsyncFnOnce(Plans) -> Result<bool>,
{
    // One instant for the run's PKI: what a plan shows of a certificate
    // (kept, renewed, issued) is what is issued after it.
    let run = Run {
        loaded,
        rollout,
        fleet,
        now: load::now(),
    };
    match mode {
        Mode::OnePass => in_one_pass(connector, &run, jobs).await.map(Some),
        Mode::Ask(ask) if jobs.len() > fleet.forks => {
            plan_closed_ask_apply(connector, &run, jobs, ask).await
        }
        Mode::Ask(ask) => plan_ask_apply(connector, &run, jobs, ask).await,
    }
}

/// What every stage of one apply shares: the selection, how it rolls
/// out, the fleet, and the instant the PKI decides at.
struct Run<'r> {
    loaded: &'r Loaded,
    rollout: &'r Rollout,
    fleet: &'r Fleet,
    now: i64,
}

async fn in_one_pass<C: Connector + Clone>(
    connector: C,
    run: &Run<'_>,
    jobs: Jobs,
) -> Result<Vec<Finished<AppliedHost>>> {
    let Run { loaded, fleet, .. } = *run;
    // Without a CA yet, nothing is created before every host is planned:
    // a fleet that trusts another CA is refused, and gets no new one here.
    // Hosts that all fit in the forks keep their connections from the plan
    // to the apply (no second login); more are planned first, each
    // connection closed once planned.
    if let Some(store) = &loaded.store
        && store.ca()?.is_none()
    {
        if jobs.len() <= fleet.forks {
            let yes = async |_: Plans| Ok(true);
            return plan_ask_apply(connector, run, jobs, yes)
                .await
                .map(Option::unwrap_or_default);
        }
        let planned = plan_pass(connector.clone(), run, jobs, false).await;
        let pass = after_plan_pass(loaded, planned, false);
        return one_pass(connector, run, pass).await;
    }
    let jobs = jobs
        .into_iter()
        .map(|(host, job)| (host, Ok((job, None))))
        .collect();
    let all = loaded.hosts.iter().map(|(h, _)| h.clone()).collect();
    one_pass(connector, run, (jobs, all)).await
}

/// What a plan pass keeps of a host until its apply: what to say of it,
/// whether it was refused (the PKI issues nothing for it), and for a
/// question, the plan to show and what approving it approves.
struct PassPlan {
    said: (HostStatus, String),
    refused: bool,
    shown: Option<(HostPlan, Approval)>,
}

/// A host's plan as approved ([`HostPlan::approval`]).
type Approval = [u8; 32];

/// A host's job in the apply pass, with the approval of its plan when one
/// was shown: the host is applied only if its plan is still that one.
type PassJob = (HostJob, Option<Approval>);

/// The jobs of a pass (a host that could not be planned carries its
/// error), and the hosts the PKI issues for.
type PassJobs = (Vec<(String, Result<PassJob>)>, Vec<Arc<Host>>);

/// Every host planned as `plan` does, `forks` at a time, its connection
/// closed once planned: a fleet of thousands must not hold them all open,
/// as phase one of [`plan_ask_apply`] does. `shown`: each plan is made
/// under the host's lock (released with the connection) and kept, with
/// its approval, for the question.
async fn plan_pass<C: Connector + Clone>(
    connector: C,
    run: &Run<'_>,
    jobs: Jobs,
    shown: bool,
) -> Vec<Finished<(HostJob, PassPlan)>> {
    let playbook = run.loaded.playbook.clone();
    let issued = Arc::new(crate::core::roles::issued_paths(&playbook));
    let now = run.now;
    run.fleet
        .run(
            "plan",
            jobs,
            describe_pass_plan,
            move |job: HostJob, run| {
                let (connector, playbook) = (connector.clone(), playbook.clone());
                let issued = issued.clone();
                async move {
                    let tls_read = job.clone().read_tls_at(now)?;
                    // For the question, under the host's lock, as when the
                    // hosts fit in the forks: what an interrupted run left
                    // is put back first, so the plan shown is the one the
                    // apply's own lock will find.
                    let prepared = if shown {
                        pipeline::prepare_to_apply(&connector, &playbook, &tls_read, &run).await?
                    } else {
                        pipeline::prepare(&connector, &playbook, &tls_read, &run).await?
                    };
                    prepared.session.close().await;
                    let approval = shown.then(|| prepared.plan.approval(&prepared.actual, &issued));
                    let plan = prepared.plan;
                    let verdict = PassPlan {
                        said: planned(&plan),
                        refused: plan.refusal.is_some(),
                        shown: approval.map(|approval| (plan, approval)),
                    };
                    Ok((job, verdict))
                }
            },
        )
        .await
}

/// The apply pass's jobs after a plan pass, each with its approval when
/// its plan was `asked` about, and the hosts the PKI issues for: planned,
/// and not refused.
fn after_plan_pass(
    loaded: &Loaded,
    planned: Vec<Finished<(HostJob, PassPlan)>>,
    asked: bool,
) -> PassJobs {
    let issue_for: HashSet<&str> = planned
        .iter()
        .filter(|f| matches!(&f.ended, Ended::Ran(Ok((_, first))) if !first.refused))
        .map(|f| f.host.as_str())
        .collect();
    let hosts = hosts_named(loaded, &issue_for);
    let jobs = planned
        .into_iter()
        .map(|f| {
            let job = f.ended.into_result(&f.host).map(|(job, first)| {
                let approval = first.shown.filter(|_| asked).map(|(_, approval)| approval);
                (job, approval)
            });
            (f.host, job)
        })
        .collect();
    (jobs, hosts)
}

/// Plan, ask, apply over more hosts than `--forks`: each host planned on
/// a login of its own, closed once planned; the plans shown and the user
/// asked; then one pass connects again, and applies each host only if its
/// plan is still the one shown (its lock was not held while the user
/// read: a host changed since is failed, and left alone).
async fn plan_closed_ask_apply<C, A>(
    connector: C,
    run: &Run<'_>,
    jobs: Jobs,
    ask: A,
) -> Result<Option<Vec<Finished<AppliedHost>>>>
where
    C: Connector + Clone,
    A: AsyncFnOnce(Plans) -> Result<bool>,
{
    let mut planned = plan_pass(connector.clone(), run, jobs, true).await;
    let pending = planned.iter().any(
        |f| matches!(&f.ended, Ended::Ran(Ok((_, p))) if p.shown.as_ref().is_some_and(|(plan, _)| !plan.is_empty())),
    );
    // Nobody is asked when nothing would change: then nothing was
    // approved either, and nothing is held against a host.
    let asks = pending && run.fleet.interrupt.count() == 0;
    if asks {
        // The plans go to the question, and are not kept past it.
        let plans = question(&mut planned, |(_, p)| {
            p.shown
                .as_mut()
                .map(|(plan, _)| std::mem::take(plan))
                .unwrap_or_default()
        });
        if !ask(plans).await? {
            return Ok(None);
        }
    }
    let pass = after_plan_pass(run.loaded, planned, asks);
    one_pass(connector, run, pass).await.map(Some)
}

/// Each host connects, gathers, plans, applies and verifies, batch by
/// batch, after the PKI issued what `hosts` need.
async fn one_pass<C: Connector + Clone>(
    connector: C,
    run: &Run<'_>,
    (jobs, hosts): PassJobs,
) -> Result<Vec<Finished<AppliedHost>>> {
    let Run { loaded, fleet, .. } = *run;
    // An interrupt during a first run's plan skips every host: nothing
    // is issued for them.
    let (pairs, client) = if fleet.interrupt.count() > 0 {
        (ServerPairs::default(), None)
    } else {
        issue(run, hosts).await?
    };
    let with = applying(connector, loaded, (pairs, client), run.now)?;
    Ok(fleet
        .roll_out(
            "apply",
            jobs,
            run.rollout,
            describe_applied,
            move |job: Result<PassJob>, run| {
                let with = with.clone();
                async move {
                    let (job, approved) = job?;
                    // Its TLS files are read when its turn comes, not held
                    // from the start by every host waiting.
                    let job = with_issued(job, &with.pairs, with.now)?;
                    // Boxed: a host waiting for a fork holds a pointer, and one
                    // in flight only the step it is at (thousands of hosts).
                    let prepared = Box::pin(pipeline::prepare_to_apply(
                        &with.connector,
                        &with.playbook,
                        &job,
                        &run,
                    ))
                    .await?;
                    // A host refused now says why (its refusal, below),
                    // whether or not it was refused when shown.
                    if let Some(approved) = approved
                        && prepared.plan.refusal.is_none()
                        && prepared.plan.approval(&prepared.actual, &with.issued) != approved
                    {
                        prepared.session.close().await;
                        return Err(changed_since_shown(&job.host.name));
                    }
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
    /// The files the PKI issues ([`HostPlan::approval`]).
    issued: Vec<String>,
    /// The instant the PKI decided at: a host it issued nothing for reads
    /// its files as its plan did.
    now: i64,
}

fn applying<C>(
    connector: C,
    loaded: &Loaded,
    (pairs, client): crate::pki::Issued,
    now: i64,
) -> Result<Arc<Applying<C>>> {
    let playbook = loaded.playbook.clone();
    let checks = load::checks(&playbook, loaded.store.as_deref(), client)?;
    Ok(Arc::new(Applying {
        connector,
        issued: crate::core::roles::issued_paths(&playbook),
        playbook,
        pairs,
        checks,
        now,
    }))
}

/// A host connected and planned, ready for phase two.
type Planned<S> = (HostJob, Prepared<S>);

async fn plan_ask_apply<C, A>(
    connector: C,
    run: &Run<'_>,
    jobs: Jobs,
    ask: A,
) -> Result<Option<Vec<Finished<AppliedHost>>>>
where
    C: Connector + Clone,
    A: AsyncFnOnce(Plans) -> Result<bool>,
{
    let Run { loaded, fleet, .. } = *run;
    let now = run.now;
    let playbook = loaded.playbook.clone();
    let mut prepared = fleet
        .run("plan", jobs, describe_plan, {
            let (connector, playbook) = (connector.clone(), playbook.clone());
            move |job: HostJob, run| {
                let (connector, playbook) = (connector.clone(), playbook.clone());
                async move {
                    let job = job.read_tls_at(now)?;
                    let prepared =
                        pipeline::prepare_to_apply(&connector, &playbook, &job, &run).await?;
                    Ok((job, prepared))
                }
            }
        })
        .await;
    let pending = prepared
        .iter()
        .any(|f| matches!(&f.ended, Ended::Ran(Ok((_, p))) if !p.plan.is_empty()));
    let interrupted = || fleet.interrupt.count() > 0;
    if pending && !interrupted() {
        let plans = question(&mut prepared, |(_, p)| p.plan.clone());
        if !ask(plans).await? {
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
        // The hosts the PKI issues for: planned, and not refused.
        let planned: HashSet<&str> = prepared
            .iter()
            .filter(|f| matches!(&f.ended, Ended::Ran(Ok((_, p))) if p.plan.refusal.is_none()))
            .map(|f| f.host.as_str())
            .collect();
        issue(run, hosts_named(loaded, &planned)).await?
    };
    let with = applying(connector, loaded, (pairs, client), now)?;
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
                run.rollout,
                describe_applied,
                move |planned: Result<Planned<C::Session>>, run| {
                    let with = with.clone();
                    async move {
                        let (job, prepared) = planned?;
                        let job = match with_issued(job, &with.pairs, with.now) {
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

/// What the question shows: each host's plan (`plan` takes it from what
/// its planning kept), or why it has none.
fn question<T>(planned: &mut [Finished<T>], mut plan: impl FnMut(&mut T) -> HostPlan) -> Plans {
    planned
        .iter_mut()
        .map(|f| {
            let shown = match &mut f.ended {
                Ended::Ran(Ok(kept)) => Ok(plan(kept)),
                Ended::Ran(Err(e)) => Err(Error::Usage(e.to_string())),
                _ => Err(Error::Usage(format!("{}: not planned", f.host))),
            };
            (f.host.clone(), shown)
        })
        .collect()
}

/// The hosts of `names`, shared, in the inventory's order.
fn hosts_named(loaded: &Loaded, names: &HashSet<&str>) -> Vec<Arc<Host>> {
    (loaded.hosts.iter())
        .filter(|(host, _)| names.contains(host.name.as_str()))
        .map(|(host, _)| host.clone())
        .collect()
}

/// The local PKI issues what `hosts` need (nothing without a PKI), as
/// it decides at the run's instant.
async fn issue(run: &Run<'_>, hosts: Vec<Arc<Host>>) -> Result<crate::pki::Issued> {
    let loaded = run.loaded;
    let Some(store) = loaded.store.clone().filter(|_| !hosts.is_empty()) else {
        return Ok((ServerPairs::default(), None));
    };
    let playbook = loaded.playbook.clone();
    let (now, sink) = (run.now, run.fleet.sink.clone());
    // A store another run holds (at its CA passphrase prompt, say) is
    // waited for, said as a warning, until it is free or a Ctrl-C ends
    // the wait.
    let (warn, interrupt) = (sink.clone(), run.fleet.interrupt.clone());
    let wait = crate::pki::Waiting::new(
        move |message| {
            warn.send(Event::Warning {
                host: None,
                message,
            })
        },
        move || interrupt.count() > 0,
    )
    .holding(run.fleet.hold.clone());
    // Aside: issuing waits for the store's lock and signs for a while,
    // and the hosts' tasks (connections held from the plan) go on
    // meanwhile.
    super::runtime::aside(move || {
        let hosts: Vec<&Host> = hosts.iter().map(Arc::as_ref).collect();
        crate::pki::issue(
            &store,
            &playbook,
            &hosts,
            &load::verification_client(&playbook),
            now,
            |message| sink.send(Event::Certificate { message }),
            &wait,
        )
    })
    .await
}

/// The job with the TLS files the PKI issued for its host, read now; a
/// host it issued nothing for (refused when planned) reads what the store
/// has, as its plan did at `now`.
pub(super) fn with_issued(job: HostJob, pairs: &ServerPairs, now: i64) -> Result<HostJob> {
    match pairs.material(&job.host.name)? {
        Some(tls) => Ok(HostJob { tls, ..job }),
        None => job.read_tls_at(now),
    }
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

/// A host whose plan is no longer the one the user approved.
fn changed_since_shown(host: &str) -> Error {
    pipeline::host_error(
        host,
        "apply",
        "its plan is no longer the one shown (the host changed since): \
         nothing was done on it; run again to see its plan",
    )
}

fn describe_pass_plan<J>(verdict: &Result<(J, PassPlan)>) -> (HostStatus, String) {
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
