//! `dockhand verify`: probes only, changes nothing (`engine::inspect::
//! verify`). For each host: the daemon answers `GET /info` over mutual
//! TLS with the settings the playbook asked for, refuses
//! a client without a certificate, sshd's effective settings match, and
//! SSH logins work.

use std::time::Instant;

use crate::core::outcome::Applied;
use crate::engine::inspect;
use crate::engine::load::{self, Selection};
use crate::error::Result;
use crate::report::{self, ApplyOutcome, Format};

pub struct Options {
    pub selection: Selection,
    pub format: Format,
    pub run: super::Run,
}

pub fn run(options: &Options) -> Result<i32> {
    let loaded = load::load(&options.selection)?;
    let addresses: Vec<(String, std::sync::Arc<crate::engine::load::LoadedTarget>)> = loaded
        .hosts
        .iter()
        .map(|(h, t)| (h.address.clone(), t.clone()))
        .collect();
    let started = Instant::now();
    let (runtime, progress, fleet) = options.run.start()?;
    let ended = runtime.block_on(inspect::verify(&loaded, &fleet));
    drop(fleet);
    progress.finish();
    let outcomes: Vec<ApplyOutcome> = ended?
        .into_iter()
        .zip(addresses)
        .map(|(f, (address, target))| ApplyOutcome {
            traffic: target.meter.read(),
            result: f
                .ended
                .into_result(&f.host)
                .map(|_| (Applied::Unchanged, Vec::new())),
            host: f.host,
            address,
            elapsed: f.elapsed,
            warnings: Vec::new(),
            notes: Vec::new(),
        })
        .collect();
    options.run.say_traffic(&loaded.hosts);
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
