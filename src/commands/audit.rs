//! `dockhand audit -i INVENTORY`: where each host stands, over one SSH
//! connection per host, changing nothing: the CIS Docker Benchmark's
//! daemon-configuration and configuration-file checks read from the
//! daemon's effective configuration, and sshd's effective settings.
//! Exit 1 when any check FAILs or a host cannot be audited.

use crate::core::audit::{self, Finding, Verdict};
use crate::core::event::{HostStatus, Phase};
use crate::engine::gather;
use crate::engine::load;
use crate::error::Result;
use crate::report::{self, AuditOutcome, Format};
use crate::transport::{Ssh, Target, Transport};

pub struct Options {
    pub inventory: std::path::PathBuf,
    pub limit: Option<String>,
    pub format: Format,
    pub run: super::Run,
}

pub fn run(options: &Options) -> Result<i32> {
    let jobs = load::selected_targets(&options.inventory, options.limit.as_deref())?
        .into_iter()
        .map(|(host, target)| {
            let become_root = host.ssh.become_root.unwrap_or(false);
            (host.name.clone(), (target, become_root, host.address))
        })
        .collect();
    let (runtime, progress, fleet) = options.run.start()?;
    let ended = runtime.block_on(fleet.run(
        "audit",
        jobs,
        describe,
        |(target, become_root, _address): (Target, bool, String), run| async move {
            let session = crate::engine::pipeline::connect_to(&Ssh, &target, &run).await?;
            let gathered = run
                .step(
                    Phase::Gathering,
                    run.deadlines.step,
                    gather::gather(&session, &audit::paths(), become_root),
                )
                .await;
            session.close().await;
            Ok(audit::audit(&gathered?))
        },
    ));
    drop(fleet);
    progress.finish();
    let outcomes: Vec<AuditOutcome> = ended
        .into_iter()
        .map(|f| AuditOutcome {
            findings: super::result_of(&f.host, f.ended),
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

fn describe(findings: &Result<Vec<Finding>>) -> (HostStatus, String) {
    match findings {
        Ok(findings) => {
            let count = |v: Verdict| findings.iter().filter(|f| f.verdict == v).count();
            let status = if count(Verdict::Fail) > 0 {
                HostStatus::Failed
            } else {
                HostStatus::Ok
            };
            (
                status,
                format!(
                    "{} fail, {} warn, {} pass",
                    count(Verdict::Fail),
                    count(Verdict::Warn),
                    count(Verdict::Pass)
                ),
            )
        }
        Err(err) => super::failure(err),
    }
}
