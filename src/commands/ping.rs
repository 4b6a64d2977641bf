//! `dockhand ping -i INVENTORY`: the transport check. One SSH connection
//! per host, all hosts at once (up to `--forks`), one command each; reports
//! the host's name, the login user, sudo (when `become` is set) and
//! docker's state, or why the host could not be reached.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::report::{self, PingOutcome, PingReply};
use crate::transport::{SshSession, Target, Transport};

pub struct Options {
    pub inventory: std::path::PathBuf,
    pub forks: usize,
}

/// Everything is asked in one round trip. `sudo -n` never prompts: a host
/// that would ask for a password fails the check instead of hanging.
const PROBE: &str = "printf 'hostname=%s\\nuser=%s\\n' \"$(hostname)\" \"$(id -un)\"; \
                     printf 'docker=%s\\n' \"$(systemctl is-active docker 2>/dev/null || true)\"";
const SUDO_PROBE: &str =
    "; if sudo -n true 2>/dev/null; then echo sudo=ok; else echo sudo=refused; fi";

pub fn run(options: &Options) -> Result<i32> {
    let inventory = super::load_inventory(&options.inventory)?;
    let targets = super::Targets::from_environment()?;
    let jobs = inventory
        .hosts
        .iter()
        .map(|host| {
            Ok((
                targets.for_host(host)?,
                host.ssh.become_root.unwrap_or(false),
            ))
        })
        .collect::<Result<Vec<(Target, bool)>>>()?;
    let outcomes = super::runtime()?.block_on(super::for_each_host(
        jobs,
        options.forks,
        |(target, check_sudo)| async move {
            let started = Instant::now();
            let reply = ping(&target, check_sudo).await;
            let outcome = PingOutcome {
                host: target.name.clone(),
                elapsed: started.elapsed(),
                reply,
            };
            report::ping_line(&outcome);
            outcome
        },
    ));
    let failed = outcomes.iter().filter(|o| o.reply.is_err()).count();
    report::ping_summary(&outcomes);
    Ok(if failed == 0 { 0 } else { 1 })
}

async fn ping(target: &Target, check_sudo: bool) -> Result<PingReply> {
    let session = SshSession::connect(target).await?;
    let command = if check_sudo {
        format!("{PROBE}{SUDO_PROBE}")
    } else {
        PROBE.to_string()
    };
    let output = session.run("probe", &command, b"").await;
    let _ = tokio::time::timeout(Duration::from_secs(2), session.close()).await;
    let text = output?.stdout_text();
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or("")
            .to_string()
    };
    Ok(PingReply {
        hostname: field("hostname"),
        user: field("user"),
        docker: field("docker"),
        sudo: check_sudo.then(|| field("sudo")),
    })
}
