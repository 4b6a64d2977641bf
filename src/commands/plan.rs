//! `dockhand plan`: for each selected host, in parallel over one SSH
//! connection each, gather the actual state in one round trip and compare
//! it with the playbook (`engine::inspect::plan`). Never writes to a host,
//! nor to the local PKI.
//!
//! Exit codes: 0 nothing to do; 1 a host failed or could not be reached,
//! or bad input; with `--detailed-exitcode`, 2 when changes are pending.

use crate::core::event::Event;
use crate::engine::inspect;
use crate::engine::load::{self, Selection};
use crate::error::Result;
use crate::report::{self, Format, HostOutcome};

pub struct Options {
    pub selection: Selection,
    pub format: Format,
    pub detailed_exitcode: bool,
    pub run: super::Run,
}

pub fn run(options: &Options) -> Result<i32> {
    let loaded = load::load(&options.selection)?;
    let (jobs, ca_warning) = load::jobs(&loaded)?;
    let addresses: Vec<(String, std::sync::Arc<crate::engine::load::LoadedTarget>)> = loaded
        .hosts
        .iter()
        .map(|(h, t)| (h.address.clone(), t.clone()))
        .collect();
    let (runtime, progress, fleet) = options.run.start()?;
    if let Some(message) = ca_warning {
        fleet.sink.send(Event::Warning {
            host: None,
            message,
        });
    }
    let ended = runtime.block_on(inspect::plan(&loaded, jobs, &fleet));
    drop(fleet);
    progress.finish();
    let outcomes: Vec<HostOutcome> = ended
        .into_iter()
        .zip(addresses)
        .map(|(f, (address, target))| HostOutcome {
            plan: f.ended.into_result(&f.host),
            host: f.host,
            address,
            traffic: target.meter.read(),
        })
        .collect();
    options.run.say_traffic(&loaded.hosts);
    report::plan::print(&outcomes, options.format);
    let failed = outcomes.iter().any(|o| o.plan.is_err());
    let pending = outcomes
        .iter()
        .any(|o| o.plan.as_ref().is_ok_and(|p| !p.is_empty()));
    Ok(if failed {
        1
    } else if pending && options.detailed_exitcode {
        2
    } else {
        0
    })
}
