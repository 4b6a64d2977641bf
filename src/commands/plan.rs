//! `dockhand plan`: for each selected host, in parallel over one SSH
//! connection each, gather the actual state in one round trip and compare
//! it with the playbook. Never writes to a host, nor to the local PKI.
//!
//! Exit codes: 0 nothing to do; 1 a host failed or could not be reached,
//! or bad input; with `--detailed-exitcode`, 2 when changes are pending.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::core::inventory::Host;
use crate::core::pki::Sans;
use crate::core::plan::{self, HostPlan};
use crate::core::playbook::Playbook;
use crate::core::resources::{self, TlsMaterial};
use crate::core::state::Facts;
use crate::engine::gather;
use crate::error::{Error, Result};
use crate::pki::PkiStore;
use crate::report::{self, Format, HostOutcome};
use crate::transport::SshSession;

/// Hosts planned at once.
const FORKS: usize = 50;

pub struct Options {
    pub inventory: PathBuf,
    pub playbook: PathBuf,
    pub limit: Option<String>,
    pub format: Format,
    pub detailed_exitcode: bool,
    pub verbose: bool,
}

/// Everything a host's plan needs that is known before connecting.
struct HostJob {
    host: Host,
    target: crate::transport::Target,
    tls: TlsMaterial,
}

pub fn run(options: &Options) -> Result<i32> {
    let inventory = super::load_inventory(&options.inventory)?;
    let playbook = Arc::new(load_playbook(&options.playbook)?);
    let hosts: Vec<&Host> = match &options.limit {
        Some(pattern) => crate::core::limit::select(&inventory.hosts, pattern)?,
        None => inventory.hosts.iter().collect(),
    };
    if hosts.is_empty() {
        return Err(Error::Usage(format!(
            "{}: the inventory has no hosts",
            options.inventory.display()
        )));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let store = playbook.pki.as_ref().map(|settings| {
        PkiStore::new(
            PkiStore::locate(settings, &options.playbook),
            settings.clone(),
        )
    });
    let targets = super::Targets::from_environment()?;
    let mut jobs = Vec::new();
    for host in hosts {
        let tls = match &store {
            Some(store) => store.tls_for_host(&host.name, &host_sans(host), now)?,
            None => TlsMaterial::CaPending,
        };
        jobs.push(HostJob {
            target: targets.for_host(host)?,
            host: host.clone(),
            tls,
        });
    }
    let verbose = options.verbose;
    let outcomes = super::runtime()?.block_on(plan_all(playbook, jobs, verbose));
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

/// The names that go into a host's server certificate.
pub fn host_sans(host: &Host) -> Sans {
    Sans::for_host(
        &host.name,
        &host.address,
        &host.tls.names,
        &host.tls.addresses,
    )
}

pub fn load_playbook(path: &std::path::Path) -> Result<Playbook> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read the playbook: {e}")))?;
    Playbook::parse(path, &text)
}

async fn plan_all(playbook: Arc<Playbook>, jobs: Vec<HostJob>, verbose: bool) -> Vec<HostOutcome> {
    let limit = Arc::new(tokio::sync::Semaphore::new(FORKS));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, job) in jobs.into_iter().enumerate() {
        let limit = limit.clone();
        let playbook = playbook.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let started = Instant::now();
            let plan = plan_host(&playbook, &job, verbose).await;
            report::plan::progress(&job.host.name, &plan, started.elapsed());
            (
                index,
                HostOutcome {
                    host: job.host.name.clone(),
                    address: job.host.address.clone(),
                    plan,
                },
            )
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(outcome) = joined {
            outcomes.push(outcome);
        }
    }
    // Report in inventory order, whatever order hosts answered in.
    outcomes.sort_by_key(|(index, _)| *index);
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
}

async fn plan_host(playbook: &Playbook, job: &HostJob, verbose: bool) -> Result<HostPlan> {
    let name = &job.host.name;
    let started = Instant::now();
    let session = SshSession::connect(&job.target).await?;
    if verbose {
        report::verbose(
            name,
            &format!(
                "connected as {} ({:.2}s)",
                job.target.user,
                started.elapsed().as_secs_f64()
            ),
        );
    }
    // The set of paths does not depend on the host's facts; their content does.
    let paths = resources::expand(
        playbook,
        &job.host.vars,
        &Facts {
            dockerd_path: Some("dockerd".into()),
            ..Facts::default()
        },
        &job.tls,
    )
    .map_err(|reason| host_error(name, "expand the playbook", reason))?
    .paths();
    let become_root = job.host.ssh.become_root.unwrap_or(false);
    let gathered = gather::gather(&session, &paths, become_root).await;
    let _ = session.close().await;
    let actual = gathered?;
    if verbose {
        report::verbose(
            name,
            &format!(
                "gathered {} path(s) and the facts in one round trip ({:.2}s)",
                paths.len(),
                started.elapsed().as_secs_f64()
            ),
        );
    }
    let desired = resources::expand(playbook, &job.host.vars, &actual.facts, &job.tls)
        .map_err(|reason| host_error(name, "expand the playbook", reason))?;
    plan::plan(&desired, &actual).map_err(|reason| host_error(name, "plan", reason))
}

fn host_error(host: &str, step: &str, reason: String) -> Error {
    Error::Host {
        host: host.to_string(),
        step: step.to_string(),
        reason,
    }
}
