//! `dockhand verify`: probes only, changes nothing. For each host: the
//! daemon answers `GET /version` and `GET /info` over mutual TLS with the
//! settings the playbook asked for, refuses a client without a
//! certificate, sshd's effective settings match, and SSH logins work.

use std::sync::Arc;
use std::time::Instant;

use crate::core::resources::TlsMaterial;
use crate::engine::pipeline::{self, Applied, HostJob};
use crate::error::{Error, Result};
use crate::report::{self, ApplyOutcome, Format};
use crate::transport::SshSession;

use super::apply::{checks, verification_client};
use super::plan::{Selection, load};

pub struct Options {
    pub selection: Selection,
    pub format: Format,
}

pub fn run(options: &Options) -> Result<i32> {
    let loaded = load(&options.selection)?;
    let playbook = loaded.playbook.clone();
    let client = match &loaded.store {
        Some(store) => {
            let name = verification_client(&playbook);
            Some(store.client(&name)?.ok_or_else(|| {
                Error::Usage(format!(
                    "no client certificate `{name}` in {}: run `dockhand apply` (or `dockhand pki client {name}`) first",
                    store.dir().display()
                ))
            })?)
        }
        None => None,
    };
    let checks = Arc::new(checks(&playbook, loaded.store.as_ref(), client)?);
    let mut jobs = Vec::new();
    for (host, target) in &loaded.hosts {
        jobs.push(HostJob {
            target: target.clone(),
            host: host.clone(),
            tls: TlsMaterial::CaPending,
        });
    }
    let started = Instant::now();
    let outcomes = super::runtime()?.block_on(super::for_each_host(
        jobs,
        super::FORKS,
        move |job: HostJob| {
            let checks = checks.clone();
            let playbook = playbook.clone();
            async move {
                let host_started = Instant::now();
                let result = async {
                    let desired = pipeline::expand_before_gathering(&playbook, &job)?;
                    let session = SshSession::connect(&job.target).await?;
                    let verified = pipeline::verify(&session, &job, &desired, &checks).await;
                    let _ = session.close().await;
                    verified
                }
                .await;
                if let Ok(passed) = &result {
                    report::step(
                        &job.host.name,
                        &pipeline::Step::Verified {
                            checks: passed.clone(),
                        },
                    );
                }
                let outcome = ApplyOutcome {
                    host: job.host.name.clone(),
                    address: job.host.address.clone(),
                    elapsed: host_started.elapsed(),
                    warnings: Vec::new(),
                    notes: Vec::new(),
                    result: result.map(|_| (Applied::Unchanged, Vec::new())),
                };
                report::apply::progress(&outcome);
                outcome
            }
        },
    ));
    report::apply::print(&outcomes, options.format, started.elapsed());
    Ok(if outcomes.iter().all(|o| o.result.is_ok()) {
        0
    } else {
        1
    })
}
