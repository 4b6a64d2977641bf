//! `dockhand plan`: for each selected host, in parallel over one SSH
//! connection each, gather the actual state in one round trip and compare
//! it with the playbook. Never writes to a host, nor to the local PKI.
//!
//! Exit codes: 0 nothing to do; 1 a host failed or could not be reached,
//! or bad input; with `--detailed-exitcode`, 2 when changes are pending.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::core::inventory::Host;
use crate::core::pki::Sans;
use crate::core::playbook::Playbook;
use crate::core::resources::TlsMaterial;
use crate::engine::pipeline::{self, HostJob};
use crate::error::{Error, Result};
use crate::pki::PkiStore;
use crate::report::{self, Format, HostOutcome};
use crate::transport::Target;

/// Which hosts, and what they should be: the inputs of plan, apply, verify.
pub struct Selection {
    pub inventory: PathBuf,
    pub playbook: PathBuf,
    pub limit: Option<String>,
}

pub struct Options {
    pub selection: Selection,
    pub format: Format,
    pub detailed_exitcode: bool,
    pub verbose: bool,
}

/// The inputs every host-facing command starts from.
pub struct Loaded {
    pub playbook: Arc<Playbook>,
    /// The selected hosts and how to reach each.
    pub hosts: Vec<(Host, Target)>,
    pub store: Option<PkiStore>,
}

/// Reads inventory and playbook and applies `--limit`: all input is
/// checked here, before any host is contacted.
pub fn load(selection: &Selection) -> Result<Loaded> {
    let (inventory, playbook_path) = (&selection.inventory, &selection.playbook);
    let inventory_data = super::load_inventory(inventory)?;
    let playbook = load_playbook(playbook_path)?;
    let hosts: Vec<Host> = match selection.limit.as_deref() {
        Some(pattern) => crate::core::limit::select(&inventory_data.hosts, pattern)?
            .into_iter()
            .cloned()
            .collect(),
        None => inventory_data.hosts.clone(),
    };
    if hosts.is_empty() {
        return Err(Error::Usage(format!(
            "{}: the inventory has no hosts",
            inventory.display()
        )));
    }
    let store = playbook
        .pki
        .as_ref()
        .map(|settings| PkiStore::new(PkiStore::locate(settings, playbook_path), settings.clone()));
    // Every target is resolved here, so a bad jump spec is bad input too.
    let targets = super::Targets::from_environment()?;
    let hosts = hosts
        .into_iter()
        .map(|host| targets.for_host(&host).map(|target| (host, target)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Loaded {
        playbook: Arc::new(playbook),
        hosts,
        store,
    })
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn run(options: &Options) -> Result<i32> {
    let loaded = load(&options.selection)?;
    let mut jobs = Vec::new();
    for (host, target) in &loaded.hosts {
        let tls = match &loaded.store {
            Some(store) => store.tls_for_host(&host.name, &host_sans(host), now())?,
            None => TlsMaterial::CaPending,
        };
        jobs.push(HostJob {
            target: target.clone(),
            host: host.clone(),
            tls,
        });
    }
    let verbose = options.verbose;
    let playbook = loaded.playbook.clone();
    let outcomes =
        super::runtime()?.block_on(super::for_each_host(jobs, super::FORKS, move |job| {
            let playbook = playbook.clone();
            async move {
                let started = Instant::now();
                let events = move |host: &str, step: pipeline::Step| {
                    if verbose {
                        report::step(host, &step);
                    }
                };
                let plan = match pipeline::prepare(&playbook, &job, &events).await {
                    Ok(prepared) => {
                        let _ = prepared.session.close().await;
                        Ok(prepared.plan)
                    }
                    Err(err) => Err(err),
                };
                report::plan::progress(&job.host.name, &plan, started.elapsed());
                HostOutcome {
                    host: job.host.name.clone(),
                    address: job.host.address.clone(),
                    plan,
                }
            }
        }));
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

pub fn load_playbook(path: &Path) -> Result<Playbook> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read the playbook: {e}")))?;
    Playbook::parse(path, &text)
}
