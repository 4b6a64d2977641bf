//! `dockhand inventory -i FILE [--format yaml|json]`: what dockhand
//! understood of an inventory, host by host, in its own terms. Contacts no
//! host.

use crate::engine::load;
use crate::error::Result;
use crate::report;

pub fn run(inventory: &std::path::Path, json: bool) -> Result<i32> {
    let inventory = load::inventory(inventory)?;
    report::inventory(&inventory.hosts, json);
    Ok(0)
}
