//! `dockhand ping -i INVENTORY [--format json]`: the transport check. One SSH connection
//! per host, all hosts at once (up to `--forks`), one command each
//! (`engine::inspect::ping`); reports the host's name, the login user,
//! sudo (when `become` is set) and docker's state, or why the host could
//! not be reached.

use crate::engine::{inspect, load};
use crate::error::Result;
use crate::report::{self, PingOutcome};

pub struct Options {
    pub inventory: std::path::PathBuf,
    pub format: report::Format,
    pub access: load::Access,
    pub run: super::Run,
}

pub fn run(options: &Options) -> Result<i32> {
    let hosts = load::targets(&options.inventory, &options.access)?;
    // Clones share their meters.
    let targets = hosts.clone();
    let (runtime, progress, fleet) = options.run.start()?;
    let ended = runtime.block_on(inspect::ping(hosts, &fleet));
    drop(fleet);
    progress.finish();
    options.run.say_traffic(&targets);
    // The hosts end in the inventory's order, as their targets are.
    let outcomes: Vec<PingOutcome> = ended
        .into_iter()
        .zip(&targets)
        .map(|(f, (_, target))| PingOutcome {
            reply: f.ended.into_result(&f.host),
            host: f.host,
            traffic: target.meter.read(),
        })
        .collect();
    let failed = outcomes.iter().filter(|o| o.reply.is_err()).count();
    report::ping::print(&outcomes, options.format);
    Ok(if failed == 0 { 0 } else { 1 })
}
