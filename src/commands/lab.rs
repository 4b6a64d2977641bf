//! `dockhand lab up | down | status | inventory`.
//!
//! `up` boots the hosts (the lab module) and then waits, through dockhand's
//! own SSH transport, until every host answers SSH and reports docker
//! active (`lab::wait_until_ready`): a host that boots but cannot be
//! managed is not "up".

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::lab::{Lab, Release};
use crate::report;

/// How long the slowest host may take to answer SSH with docker active.
const READY_DEADLINE: Duration = Duration::from_secs(240);

pub fn up(lab: &Lab, count: Option<usize>, release: Option<Release>) -> Result<i32> {
    let started = Instant::now();
    let state = lab.up(count, release, &|event| report::lab_event(&event))?;
    let targets: Vec<_> = state
        .hosts
        .iter()
        .map(|record| crate::lab::target(lab.paths(), record))
        .collect();
    // Every host is waited for at once.
    super::runtime(targets.len())?.block_on(crate::lab::wait_until_ready(
        targets,
        READY_DEADLINE,
        report::lab_host_ready,
    ))?;
    report::lab_up_summary(lab.paths(), &state, started.elapsed());
    Ok(0)
}

pub fn down(lab: &Lab) -> Result<i32> {
    lab.down(&|event| report::lab_event(&event))?;
    report::lab_down(&lab.paths().name);
    Ok(0)
}

pub fn status(lab: &Lab) -> Result<i32> {
    match lab.status()? {
        Some(hosts) => {
            report::lab_status(&lab.paths().name, &hosts);
            Ok(if hosts.iter().all(|h| h.running) {
                0
            } else {
                1
            })
        }
        None => Err(Error::LabNotUp {
            name: lab.paths().name.clone(),
        }),
    }
}

pub fn inventory(lab: &Lab) -> Result<i32> {
    report::raw_stdout(&lab.inventory()?);
    Ok(0)
}
