//! `dockhand inventory -i FILE [--limit P] [--shard I/N] [--format
//! yaml|json]`: what dockhand understood of an inventory, host by host, in
//! its own terms, for the hosts a run with the same `--limit` and
//! `--shard` would visit. Contacts no host.

use crate::core::input::limit::Shard;
use crate::engine::load;
use crate::error::Result;
use crate::report;

pub fn run(
    inventory: &std::path::Path,
    limit: Option<&str>,
    shard: Option<Shard>,
    json: bool,
) -> Result<i32> {
    let inventory = load::inventory(inventory)?;
    let hosts = load::select(&inventory.hosts, limit, shard)?;
    report::inventory(&hosts, json);
    Ok(0)
}
