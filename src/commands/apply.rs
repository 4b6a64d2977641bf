//! `dockhand apply`: plan every host over its one connection, ask (on a
//! terminal, unless `--yes`), issue what the local PKI lacks, then write,
//! run the handlers, verify, and keep or roll back, batch by batch. When
//! nobody is asked, each host does all of it in one pass. Exit 0 when
//! every host is applied and verified, 1 otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use crate::core::event::{Event, HostStatus};
use crate::core::inventory::Host;
use crate::core::outcome::Applied;
use crate::core::plan::HostPlan;
use crate::core::resources::TlsMaterial;
use crate::engine::fleet::{Ended, Finished, Fleet, HostRun, Rollout, Sink};
use crate::engine::load::{self, Selection};
use crate::engine::pipeline::{self, HostJob, Prepared};
use crate::error::{Error, Result};
use crate::pki::{Outcome, PkiStore};
use crate::report::progress::Progress;
use crate::report::{self, ApplyOutcome, Format, HostOutcome};
use crate::transport::{Ssh, SshSession, Target, Transport};

/// A host connected and planned, ready for phase two.
type Planned = (HostJob, Prepared<SshSession>);

/// What a host's apply ended with, and the plan it carried out.
type AppliedHost = (Applied, HostPlan);

/// Each host's TLS files, and the client certificate verification presents.
type Issued = (HashMap<String, TlsMaterial>, Option<crate::pki::Pair>);

pub struct Options {
    pub selection: Selection,
    pub rollout: Rollout,
    pub format: Format,
    pub yes: bool,
    pub run: super::Run,
}

pub fn run(options: &Options) -> Result<i32> {
    let loaded = load::load(&options.selection)?;
    let (runtime, progress, fleet) = options.run.start()?;
    let (jobs, ca_warning) = load::jobs(&loaded)?;
    if let Some(message) = ca_warning {
        fleet.sink.send(Event::Warning {
            host: None,
            message,
        });
    }
    let addresses: HashMap<String, String> = loaded
        .hosts
        .iter()
        .map(|(h, _)| (h.name.clone(), h.address.clone()))
        .collect();
    let asks = !options.yes && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let started = Instant::now();
    let applied = if asks {
        let Some(applied) = plan_ask_apply(
            options, &loaded, &addresses, jobs, &runtime, &progress, &fleet,
        )?
        else {
            drop(fleet);
            progress.finish();
            return Err(Error::Usage("apply cancelled: nothing was changed".into()));
        };
        applied
    } else {
        apply_in_one_pass(options, &loaded, jobs, &runtime, &fleet)?
    };
    drop(fleet);
    progress.finish();
    let outcomes: Vec<ApplyOutcome> = applied
        .into_iter()
        .map(|f| {
            let (result, plan) = match super::result_of(&f.host, f.ended) {
                Ok((Applied::Unchanged, plan)) => (Ok((Applied::Unchanged, Vec::new())), plan),
                Ok((changed, plan)) => (Ok((changed, plan.changes.clone())), plan),
                Err(err) => (Err(err), HostPlan::default()),
            };
            ApplyOutcome {
                address: addresses[&f.host].clone(),
                host: f.host,
                elapsed: f.elapsed,
                warnings: plan.warnings,
                notes: plan.notes,
                result,
            }
        })
        .collect();
    report::apply::print(
        &outcomes,
        report::apply::Run::Apply,
        options.format,
        started.elapsed(),
    );
    Ok(if outcomes.iter().all(|o| o.result.is_ok()) {
        0
    } else {
        1
    })
}

/// When nobody is asked (`--yes`, or no terminal), each host goes through
/// connect, gather, plan, apply, verify in one pass, batch by batch, and
/// closes its connection when done: no host waits for the slowest gather
/// of the fleet, and no more than `forks` connections are open at once,
/// however large the fleet. The PKI issues every host's certificate first.
fn apply_in_one_pass(
    options: &Options,
    loaded: &load::Loaded,
    jobs: Vec<(String, HostJob)>,
    runtime: &tokio::runtime::Runtime,
    fleet: &Fleet,
) -> Result<Vec<Finished<AppliedHost>>> {
    let playbook = loaded.playbook.clone();
    let (issued, client) = issue(loaded.store.as_ref(), &playbook, &loaded.hosts, &fleet.sink)?;
    let checks = Arc::new(load::checks(&playbook, loaded.store.as_ref(), client)?);
    let jobs: Vec<(String, HostJob)> = jobs
        .into_iter()
        .map(|(name, job)| (name, with_issued(job, &issued)))
        .collect();
    Ok(runtime.block_on(fleet.roll_out(
        "apply",
        jobs,
        &options.rollout,
        describe_applied,
        move |job: HostJob, run| {
            let (checks, playbook) = (checks.clone(), playbook.clone());
            async move {
                let prepared = pipeline::prepare(&Ssh, &playbook, &job, &run).await?;
                apply_prepared(prepared, &job, &checks, &run).await
            }
        },
    )))
}

/// On a terminal, unless `--yes`: phase one plans every host with what the
/// local PKI has (as `plan` does) and keeps its connection; the plan is
/// shown and the user asked. Nothing is written, on the hosts or here,
/// before the answer is yes. Phase two issues the certificates and applies,
/// batch by batch, on the connections phase one opened. `None`: the answer
/// was no.
fn plan_ask_apply(
    options: &Options,
    loaded: &load::Loaded,
    addresses: &HashMap<String, String>,
    jobs: Vec<(String, HostJob)>,
    runtime: &tokio::runtime::Runtime,
    progress: &Progress,
    fleet: &Fleet,
) -> Result<Option<Vec<Finished<AppliedHost>>>> {
    let playbook = loaded.playbook.clone();
    let prepared = runtime.block_on(fleet.run("plan", jobs, describe_plan, {
        let playbook = playbook.clone();
        move |job: HostJob, run| {
            let playbook = playbook.clone();
            async move {
                let prepared = pipeline::prepare(&Ssh, &playbook, &job, &run).await?;
                Ok((job, prepared))
            }
        }
    }));
    let planned: std::collections::HashSet<&str> = prepared
        .iter()
        .filter(|f| f.ended.is_ok())
        .map(|f| f.host.as_str())
        .collect();
    let pending = prepared
        .iter()
        .any(|f| matches!(&f.ended, Ended::Ran(Ok((_, p))) if !p.plan.is_empty()));
    let interrupted = || fleet.interrupt.count() > 0;
    if pending && !interrupted() {
        let outcomes: Vec<HostOutcome> = prepared
            .iter()
            .map(|f| HostOutcome {
                host: f.host.clone(),
                address: addresses[&f.host].clone(),
                plan: match &f.ended {
                    Ended::Ran(Ok((_, p))) => Ok(p.plan.clone()),
                    Ended::Ran(Err(e)) => Err(Error::Usage(e.to_string())),
                    _ => Err(Error::Usage(format!("{}: not planned", f.host))),
                },
            })
            .collect();
        let yes = progress.suspend(|| {
            report::plan::print(&outcomes, Format::Human);
            report::confirm("Apply these changes?", &interrupted)
        })?;
        if !yes {
            runtime.block_on(async {
                for f in prepared {
                    if let Ended::Ran(Ok((_, p))) = f.ended {
                        p.session.close().await;
                    }
                }
            });
            return Ok(None);
        }
    }

    // Then the local PKI issues what the planned hosts need. An interrupt
    // before this point skips every host.
    let planned_hosts: Vec<(Host, Target)> = loaded
        .hosts
        .iter()
        .filter(|(host, _)| planned.contains(&host.name.as_str()))
        .cloned()
        .collect();
    let (issued, client) = if interrupted() {
        (HashMap::new(), None)
    } else {
        issue(
            loaded.store.as_ref(),
            &playbook,
            &planned_hosts,
            &fleet.sink,
        )?
    };
    let checks = Arc::new(load::checks(&playbook, loaded.store.as_ref(), client)?);
    let jobs: Vec<(String, Result<Planned>)> = prepared
        .into_iter()
        .map(|f| {
            let planned = super::result_of(&f.host, f.ended)
                .map(|(job, prepared)| (with_issued(job, &issued), prepared));
            (f.host.clone(), planned)
        })
        .collect();
    Ok(Some(runtime.block_on(fleet.roll_out(
        "apply",
        jobs,
        &options.rollout,
        describe_applied,
        move |prepared: Result<Planned>, run| {
            let (checks, playbook) = (checks.clone(), playbook.clone());
            async move {
                let (job, prepared) = prepared?;
                // The issued certificates are known now: the same gathered
                // state, planned again with them (pure, no round trip).
                let prepared = pipeline::replan(&playbook, &job, prepared)?;
                apply_prepared(prepared, &job, &checks, &run).await
            }
        },
    ))))
}

/// The job with the TLS files the PKI issued for its host, if any.
fn with_issued(job: HostJob, issued: &HashMap<String, TlsMaterial>) -> HostJob {
    match issued.get(&job.host.name) {
        Some(tls) => HostJob {
            tls: tls.clone(),
            ..job
        },
        None => job,
    }
}

/// Applies a planned host and verifies it; returns the outcome with the
/// plan it carried out, for the report.
async fn apply_prepared(
    prepared: Prepared<SshSession>,
    job: &HostJob,
    checks: &pipeline::Checks,
    run: &HostRun,
) -> Result<AppliedHost> {
    let plan = prepared.plan.clone();
    let applied = pipeline::apply_and_verify(&Ssh, prepared, job, checks, run).await?;
    Ok((applied, plan))
}

/// The local PKI issues what is missing: the CA, a certificate per host,
/// the clients. Returns each host's TLS files, and the client certificate
/// verification presents.
fn issue(
    store: Option<&PkiStore>,
    playbook: &crate::core::playbook::Playbook,
    hosts: &[(Host, Target)],
    sink: &Sink,
) -> Result<Issued> {
    let Some(store) = store else {
        return Ok((HashMap::new(), None));
    };
    let say = |message: String| sink.send(Event::Certificate { message });
    if store.ensure_ca()?.1 {
        say(format!("created the CA in {}", store.dir().display()));
    }
    let clients = playbook.pki.as_ref().map(|p| p.clients.clone());
    for name in clients.unwrap_or_default() {
        if let (_, Outcome::Issued(reason)) = store.ensure_client(&name, load::now())? {
            say(format!("issued the client certificate `{name}` ({reason})"));
        }
    }
    let verifier = load::verification_client(playbook);
    let client = Some(store.ensure_client(&verifier, load::now())?.0);
    let ca_pem = store.trust_bundle()?.expect("created above");
    let mut issued = HashMap::new();
    for (host, _) in hosts {
        let sans = load::host_sans(host);
        let (pair, outcome) = store.ensure_server(&host.name, &sans, load::now())?;
        if let Outcome::Issued(reason) = outcome {
            say(format!(
                "issued the server certificate of {} ({reason})",
                host.name
            ));
        }
        let tls = TlsMaterial::Ready {
            ca_pem: ca_pem.clone(),
            cert_pem: pair.cert_pem,
            key_pem: pair.key_pem,
        };
        issued.insert(host.name.clone(), tls);
    }
    Ok((issued, client))
}

fn describe_plan(prepared: &Result<Planned>) -> (HostStatus, String) {
    match prepared {
        Ok((_, p)) if p.plan.is_empty() => (HostStatus::Unchanged, "planned: no changes".into()),
        Ok((_, p)) => (
            HostStatus::Ok,
            format!("planned: {} change(s)", p.plan.changes.len()),
        ),
        Err(err) => super::failure(err),
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
        Err(err) => super::failure(err),
    }
}
