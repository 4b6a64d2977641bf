//! `dockhand audit -i INVENTORY`: where each host stands, over one SSH
//! connection per host, changing nothing (`engine::inspect::audit`): the
//! CIS Docker Benchmark's daemon-configuration and configuration-file
//! checks read from the daemon's effective configuration, and sshd's
//! effective settings. Exit 1 when any check FAILs or a host cannot be
//! audited.

use crate::core::audit::Verdict;
use crate::engine::{inspect, load};
use crate::error::Result;
use crate::report::{self, AuditOutcome, Format};

pub struct Options {
    pub inventory: std::path::PathBuf,
    pub limit: Option<String>,
    pub shard: Option<crate::core::input::limit::Shard>,
    pub access: load::Access,
    pub format: Format,
    pub run: super::Run,
}

pub fn run(options: &Options) -> Result<i32> {
    let hosts = load::selected_targets(
        &options.inventory,
        options.limit.as_deref(),
        options.shard,
        &options.access,
    )?;
    let become_password = options.access.become_password()?;
    let (runtime, progress, fleet) = options.run.start()?;
    let ended = runtime.block_on(inspect::audit(hosts, become_password, &fleet));
    drop(fleet);
    progress.finish();
    let outcomes: Vec<AuditOutcome> = ended
        .into_iter()
        .map(|f| AuditOutcome {
            findings: f.ended.into_result(&f.host),
            host: f.host,
        })
        .collect();
    report::audit(&outcomes, options.format);
    let failed = outcomes.iter().any(|o| match &o.findings {
        Ok(findings) => findings.iter().any(|f| f.verdict == Verdict::Fail),
        Err(_) => true,
    });
    Ok(if failed { 1 } else { 0 })
}
