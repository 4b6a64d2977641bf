//! `dockhand apply`: issue what the local PKI lacks, plan every host over
//! its one connection, ask (on a terminal, unless `--yes`), then write,
//! run the handlers, verify, and keep or roll back, host by host in
//! parallel. Exit 0 when every host is applied and verified, 1 otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::resources::TlsMaterial;
use crate::engine::pipeline::{self, Applied, Checks, HostJob, Prepared};
use crate::error::{Error, Result};
use crate::pki::PkiStore;
use crate::report::{self, ApplyOutcome, Format, HostOutcome};
use crate::verify::TlsProbe;

use super::plan::{Selection, host_sans, load, now};

pub struct Options {
    pub selection: Selection,
    pub forks: usize,
    pub serial: Option<crate::core::rollout::Serial>,
    pub max_fail_percent: Option<u8>,
    pub format: Format,
    pub yes: bool,
    pub verbose: bool,
}

/// The client certificate dockhand itself presents when it verifies.
pub fn verification_client(playbook: &crate::core::playbook::Playbook) -> String {
    playbook
        .pki
        .as_ref()
        .and_then(|p| p.clients.first().cloned())
        .unwrap_or_else(|| "admin".into())
}

/// The port dockerd's TLS listener uses (`tcp://ADDR:PORT`).
pub fn listen_port(listen: &str) -> Result<u16> {
    listen
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .ok_or_else(|| {
            Error::Usage(format!(
                "docker.listen {listen:?}: expected tcp://ADDRESS:PORT"
            ))
        })
}

/// The checks verification runs, from the playbook and the local PKI.
pub fn checks(
    playbook: &crate::core::playbook::Playbook,
    store: Option<&PkiStore>,
    client: Option<crate::pki::Pair>,
) -> Result<Checks> {
    let tls = match (&playbook.docker, store, client) {
        (Some(docker), Some(store), Some(client)) => {
            let ca = store
                .ca()?
                .ok_or_else(|| Error::Usage("no CA yet: run `dockhand apply` first".into()))?;
            let daemon = crate::core::resources::daemon_settings(docker);
            Some((
                TlsProbe {
                    ca_pem: ca.cert_pem,
                    client_cert_pem: client.cert_pem,
                    client_key_pem: client.key_pem,
                },
                listen_port(&docker.listen)?,
                daemon.into_iter().collect(),
            ))
        }
        _ => None,
    };
    Ok(Checks { tls })
}

pub fn run(options: &Options) -> Result<i32> {
    let loaded = load(&options.selection)?;
    let playbook = loaded.playbook.clone();

    // The local PKI first: a CA, a certificate per host, the clients.
    let mut jobs = Vec::new();
    let mut client = None;
    if let Some(store) = &loaded.store {
        let (_, created) = store.ensure_ca()?;
        if created {
            report::pki_event(&format!("created the CA in {}", store.dir().display()));
        }
        for name in playbook
            .pki
            .as_ref()
            .map(|p| p.clients.clone())
            .unwrap_or_default()
        {
            if let (_, crate::pki::Outcome::Issued(reason)) = store.ensure_client(&name, now())? {
                report::pki_event(&format!(
                    "issued the client certificate `{name}` ({reason})"
                ));
            }
        }
        let verifier = verification_client(&playbook);
        client = Some(store.ensure_client(&verifier, now())?.0);
    }
    for (host, target) in &loaded.hosts {
        let tls = match &loaded.store {
            Some(store) => {
                let (pair, outcome) = store.ensure_server(&host.name, &host_sans(host), now())?;
                if let crate::pki::Outcome::Issued(reason) = outcome {
                    report::pki_event(&format!(
                        "issued the server certificate of {} ({reason})",
                        host.name
                    ));
                }
                TlsMaterial::Ready {
                    ca_pem: store.ca()?.expect("created above").cert_pem,
                    cert_pem: pair.cert_pem,
                    key_pem: pair.key_pem,
                }
            }
            None => TlsMaterial::CaPending,
        };
        jobs.push(HostJob {
            target: target.clone(),
            host: host.clone(),
            tls,
        });
    }
    let checks = Arc::new(checks(&playbook, loaded.store.as_ref(), client)?);
    let runtime = super::runtime()?;
    let verbose = options.verbose;
    let events = move |host: &str, step: pipeline::Step| {
        if verbose || matches!(step, pipeline::Step::RolledBack { .. }) {
            report::step(host, &step);
        }
    };

    // Phase one: connect, gather and plan every host.
    let prepared: Vec<(HostJob, Result<Prepared>)> =
        runtime.block_on(super::for_each_host(jobs, options.forks, {
            let playbook = playbook.clone();
            move |job: HostJob| {
                let playbook = playbook.clone();
                async move {
                    let result = pipeline::prepare(&playbook, &job, &events).await;
                    (job, result)
                }
            }
        }));

    // On a terminal, show the plan and ask; elsewhere, never wait for input.
    let pending = prepared
        .iter()
        .any(|(_, p)| p.as_ref().is_ok_and(|p| !p.plan.is_empty()));
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if pending && interactive && !options.yes {
        let outcomes: Vec<HostOutcome> = prepared
            .iter()
            .map(|(job, p)| HostOutcome {
                host: job.host.name.clone(),
                address: job.host.address.clone(),
                plan: match p {
                    Ok(p) => Ok(p.plan.clone()),
                    Err(e) => Err(Error::Usage(e.to_string())),
                },
            })
            .collect();
        report::plan::print(&outcomes, Format::Human);
        if !report::confirm("Apply these changes?")? {
            runtime.block_on(async {
                for (_, p) in prepared {
                    if let Ok(p) = p {
                        let _ = p.session.close().await;
                    }
                }
            });
            return Err(Error::Usage("apply cancelled: nothing was changed".into()));
        }
    }

    // Phase two, batch by batch: apply, handlers, verify; keep or roll
    // back. Too many failures in a batch stop the rollout; the hosts not
    // reached are left as they are.
    let started = Instant::now();
    let sizes = crate::core::rollout::batches(prepared.len(), options.serial);
    let mut queue = prepared.into_iter();
    let mut outcomes: Vec<ApplyOutcome> = Vec::new();
    let mut stopped: Option<String> = None;
    for (number, size) in sizes.iter().enumerate() {
        let batch: Vec<(HostJob, Result<Prepared>)> = queue.by_ref().take(*size).collect();
        if let Some(reason) = &stopped {
            outcomes.extend(batch.into_iter().map(|(job, prepared)| {
                if let Ok(prepared) = prepared {
                    let _ = runtime.block_on(prepared.session.close());
                }
                ApplyOutcome {
                    host: job.host.name.clone(),
                    address: job.host.address.clone(),
                    elapsed: Duration::ZERO,
                    warnings: Vec::new(),
                    notes: Vec::new(),
                    result: Err(Error::Skipped {
                        host: job.host.name.clone(),
                        reason: reason.clone(),
                    }),
                }
            }));
            continue;
        }
        let done: Vec<ApplyOutcome> =
            runtime.block_on(super::for_each_host(batch, options.forks, {
                let checks = checks.clone();
                move |(job, prepared): (HostJob, Result<Prepared>)| {
                    let checks = checks.clone();
                    async move {
                        let host_started = Instant::now();
                        let (warnings, notes) = prepared
                            .as_ref()
                            .map(|p| (p.plan.warnings.clone(), p.plan.notes.clone()))
                            .unwrap_or_default();
                        let result = match prepared {
                            Ok(prepared) => {
                                let changes = prepared.plan.changes.clone();
                                pipeline::apply_and_verify(prepared, &job, &checks, &events)
                                    .await
                                    .map(|applied| match applied {
                                        Applied::Unchanged => (Applied::Unchanged, Vec::new()),
                                        changed => (changed, changes),
                                    })
                            }
                            Err(err) => Err(err),
                        };
                        let outcome = ApplyOutcome {
                            host: job.host.name.clone(),
                            address: job.host.address.clone(),
                            elapsed: host_started.elapsed(),
                            warnings,
                            notes,
                            result,
                        };
                        report::apply::progress(&outcome);
                        outcome
                    }
                }
            }));
        let failed = done.iter().filter(|o| o.result.is_err()).count();
        if number + 1 < sizes.len()
            && crate::core::rollout::stop_after(failed, done.len(), options.max_fail_percent)
        {
            stopped = Some(format!(
                "not reached: {failed} of {} host(s) in batch {} failed{}",
                done.len(),
                number + 1,
                options
                    .max_fail_percent
                    .map(|p| format!(", over --max-fail-percent {p}"))
                    .unwrap_or_default()
            ));
        }
        outcomes.extend(done);
    }
    report::apply::print(&outcomes, options.format, started.elapsed());
    Ok(if outcomes.iter().all(|o| o.result.is_ok()) {
        0
    } else {
        1
    })
}
