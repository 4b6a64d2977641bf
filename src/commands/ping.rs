//! `dockhand ping -i INVENTORY`: the transport check. One SSH connection
//! per host, all hosts at once (up to `--forks`), one command each; reports
//! the host's name, the login user, sudo (when `become` is set) and
//! docker's state, or why the host could not be reached.

use crate::core::event::{HostStatus, Phase};
use crate::engine::fleet::HostRun;
use crate::engine::{load, remote};
use crate::error::Result;
use crate::report::{self, PingOutcome, PingReply};
use crate::transport::{Connector, Ssh, Target, Transport};

pub struct Options {
    pub inventory: std::path::PathBuf,
    pub run: super::Run,
}

pub fn run(options: &Options) -> Result<i32> {
    let jobs = load::targets(&options.inventory)?
        .into_iter()
        .map(|(host, target)| {
            let sudo = host.ssh.become_root.unwrap_or(false);
            (host.name, (target, sudo))
        })
        .collect();
    let (runtime, progress, fleet) = options.run.start()?;
    let ended = runtime.block_on(fleet.run(
        "ping",
        jobs,
        describe,
        |(target, check_sudo): (Target, bool), run| async move {
            ping(&Ssh, &target, check_sudo, &run).await
        },
    ));
    drop(fleet);
    progress.finish();
    let outcomes: Vec<PingOutcome> = ended
        .into_iter()
        .map(|f| PingOutcome {
            reply: super::result_of(&f.host, f.ended),
            host: f.host,
        })
        .collect();
    let failed = outcomes.iter().filter(|o| o.reply.is_err()).count();
    report::ping_summary(&outcomes);
    Ok(if failed == 0 { 0 } else { 1 })
}

fn describe(reply: &Result<PingReply>) -> (HostStatus, String) {
    match reply {
        Ok(reply) => (
            HostStatus::Ok,
            format!("user={} docker={}", reply.user, reply.docker),
        ),
        Err(err) => super::failure(err),
    }
}

async fn ping<C: Connector>(
    connector: &C,
    target: &Target,
    check_sudo: bool,
    run: &HostRun,
) -> Result<PingReply> {
    let session = crate::engine::pipeline::connect_to(connector, target, run).await?;
    let probe = remote::ping(check_sudo);
    let output = run
        .step(
            Phase::Probing,
            run.deadlines.step,
            session.run("probe", &probe.command(false), probe.input()),
        )
        .await;
    session.close().await;
    Ok(remote::ping_reply(&output?.stdout_text(), check_sudo))
}
