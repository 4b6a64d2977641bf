//! `dockhand apply`: plan every host over its one connection, ask (on a
//! terminal, unless `--yes`), issue what the local PKI lacks, then write,
//! run the handlers, verify, and keep or roll back, batch by batch (the
//! flow is `engine::deploy`). Exit 0 when every host is applied and
//! verified, 1 otherwise.

use std::collections::HashMap;
use std::time::Instant;

use crate::core::event::Event;
use crate::core::outcome::Applied;
use crate::core::plan::PlanSummary;
use crate::engine::deploy::{self, Mode, Plans};
use crate::engine::fleet::Rollout;
use crate::engine::load::{self, Selection};
use crate::engine::runtime;
use crate::error::{Error, Result};
use crate::report::{self, ApplyOutcome, Format, HostOutcome};

pub struct Options {
    pub selection: Selection,
    pub rollout: Rollout,
    pub format: Format,
    pub yes: bool,
    /// Switch hosts that trust another CA to this store's.
    pub replace_ca: bool,
    pub run: super::Run,
}

pub fn run(options: &Options) -> Result<i32> {
    let loaded = load::load(&options.selection)?;
    let (runtime, progress, fleet) = options.run.start()?;
    let asking = report::Asking::here(options.format).filter(|_| !options.yes);
    // In one pass, the PKI reads (or issues) every host's files itself.
    let (jobs, ca_warning) = load::jobs_with(&loaded, asking.is_some())?;
    let jobs = jobs
        .into_iter()
        .map(|(name, job)| {
            let replace_ca = options.replace_ca;
            (name, crate::engine::pipeline::HostJob { replace_ca, ..job })
        })
        .collect();
    if let Some(message) = ca_warning {
        fleet.sink.send(Event::Warning {
            host: None,
            message,
        });
    }
    let addresses: HashMap<String, String> = loaded
        .hosts
        .iter()
        .map(|(h, _)| (h.name.clone(), h.address.clone()))
        .collect();
    // The jobs' targets are clones of these: they share the meters.
    let meters: HashMap<&str, &crate::engine::load::Meter> = loaded
        .hosts
        .iter()
        .map(|(h, t)| (h.name.as_str(), &t.meter))
        .collect();
    let traffic = |host: &str| meters.get(host).map(|m| m.read()).unwrap_or_default();
    // The question: the plans, then yes or no, with the progress held.
    // It waits aside, while the user reads: the runtime's thread goes on
    // with the hosts' tasks (held connections read their hosts).
    let ask = async |plans: Plans| {
        let outcomes: Vec<HostOutcome> = plans
            .into_iter()
            .map(|(host, plan)| HostOutcome {
                address: addresses[&host].clone(),
                traffic: traffic(&host),
                host,
                plan,
            })
            .collect();
        let (hold, interrupt) = (fleet.hold.clone(), fleet.interrupt.clone());
        runtime::aside(move || {
            hold.during(|| {
                let asking = asking.expect("asks only when someone can answer");
                report::plan::show(&outcomes, asking);
                report::confirm("Apply these changes?", asking, &|| interrupt.count() > 0)
            })
        })
        .await
    };
    let mode = if asking.is_some() {
        Mode::Ask(ask)
    } else {
        Mode::OnePass
    };
    let started = Instant::now();
    let applied = runtime.block_on(deploy::apply(&loaded, jobs, &options.rollout, &fleet, mode));
    drop(fleet);
    progress.finish();
    let Some(applied) = applied? else {
        return Err(Error::Usage("apply cancelled: nothing was changed".into()));
    };
    let outcomes: Vec<ApplyOutcome> = applied
        .into_iter()
        .map(|f| {
            let (result, plan) = match f.ended.into_result(&f.host) {
                Ok((Applied::Unchanged, plan)) => (Ok((Applied::Unchanged, Vec::new())), plan),
                Ok((changed, plan)) => (Ok((changed, plan.paths.clone())), plan),
                Err(err) => (Err(err), PlanSummary::default()),
            };
            ApplyOutcome {
                address: addresses[&f.host].clone(),
                traffic: traffic(&f.host),
                host: f.host,
                elapsed: f.elapsed,
                warnings: plan.warnings,
                notes: plan.notes,
                result,
            }
        })
        .collect();
    options.run.say_traffic(&loaded.hosts);
    report::apply::print(
        &outcomes,
        report::apply::Run::Apply,
        options.format,
        started.elapsed(),
    );
    Ok(if outcomes.iter().all(|o| o.result.is_ok()) {
        0
    } else {
        1
    })
}
