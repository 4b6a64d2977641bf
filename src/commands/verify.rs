//! `dockhand verify`: probes only, changes nothing. For each host: the
//! daemon answers `GET /version` and `GET /info` over mutual TLS with the
//! settings the playbook asked for, refuses a client without a
//! certificate, sshd's effective settings match, and SSH logins work.

use std::sync::Arc;
use std::time::Instant;

use crate::core::event::HostStatus;
use crate::core::outcome::Applied;
use crate::core::resources::TlsMaterial;
use crate::engine::load::{self, Selection};
use crate::engine::pipeline::{self, HostJob};
use crate::error::{Error, Result};
use crate::report::{self, ApplyOutcome, Format};
use crate::transport::{Ssh, Transport};

pub struct Options {
    pub selection: Selection,
    pub format: Format,
    pub run: super::Run,
}

pub fn run(options: &Options) -> Result<i32> {
    let loaded = load::load(&options.selection)?;
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
    let checks = Arc::new(load::checks(&playbook, loaded.store.as_ref(), client)?);
    let jobs: Vec<(String, HostJob)> = loaded
        .hosts
        .iter()
        .map(|(host, target)| {
            let job = HostJob {
                target: target.clone(),
                host: host.clone(),
                tls: TlsMaterial::CaPending,
            };
            (host.name.clone(), job)
        })
        .collect();
    let addresses: Vec<String> = loaded
        .hosts
        .iter()
        .map(|(h, _)| h.address.clone())
        .collect();
    let started = Instant::now();
    let (runtime, progress, fleet) = options.run.start()?;
    let ended = runtime.block_on(
        fleet.run("verify", jobs, describe, move |job: HostJob, run| {
            let checks = checks.clone();
            let playbook = playbook.clone();
            async move {
                // What the playbook means for this host depends on its facts
                // (its OpenSSH's key exchange, its host keys): gathered first.
                let prepared = pipeline::prepare(&Ssh, &playbook, &job, &run).await?;
                // The facts were gathered on this run's own connection, a
                // fresh login a moment ago: sshd's settings are read from them.
                let verified = pipeline::verify(
                    &Ssh,
                    &prepared.session,
                    &job,
                    &prepared.desired,
                    &checks,
                    pipeline::Seen::Unchanged(&prepared.actual.facts),
                    &run,
                )
                .await;
                prepared.session.close().await;
                verified
            }
        }),
    );
    drop(fleet);
    progress.finish();
    let outcomes: Vec<ApplyOutcome> = ended
        .into_iter()
        .zip(addresses)
        .map(|(f, address)| ApplyOutcome {
            result: super::result_of(&f.host, f.ended).map(|_| (Applied::Unchanged, Vec::new())),
            host: f.host,
            address,
            elapsed: f.elapsed,
            warnings: Vec::new(),
            notes: Vec::new(),
        })
        .collect();
    report::apply::print(
        &outcomes,
        report::apply::Run::Verify,
        options.format,
        started.elapsed(),
    );
    Ok(if outcomes.iter().all(|o| o.result.is_ok()) {
        0
    } else {
        1
    })
}

fn describe(checks: &Result<Vec<String>>) -> (HostStatus, String) {
    match checks {
        Ok(passed) => (HostStatus::Ok, format!("verified: {}", passed.join("; "))),
        Err(err) => super::failure(err),
    }
}
