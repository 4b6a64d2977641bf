//! The handlers, run in their fixed order after a commit (and again after
//! a restore): each in a subshell whose output goes to one private temp
//! file, so a failure says what the command said.
//!
//! **restart-docker.** `reset-failed` first: a rollback must be able to
//! start docker again even after systemd's start limit tripped on a bad
//! config. docker.socket is renewed when the unit is socket-activated
//! (`-H fd://`: the packaged unit, after a rollback): a dockerd started
//! without it (our override) bound /var/run/docker.sock itself and removed
//! it on exit, so the socket unit's path is gone. With our override the
//! socket is left alone. The start is [`START_DOCKER`], and it blocks
//! until docker is up or systemd gave up. A Type=notify unit (Debian's
//! docker.io, docker-ce) is active only once dockerd sent READY=1, which
//! it does after its API listeners serve: that is the answer, and the
//! verification asks the daemon over mutual TLS anyway. Any other unit
//! must answer on its socket, asked with whatever client the host has:
//! curl, else the docker CLI (a Go binary that costs the host about 45 ms
//! to start), else systemd's word.
//!
//! **reload-ssh.** sshd re-executes itself on a reload: for a moment
//! nothing listens, and a login then is refused. The reload is done when
//! every listening socket is a new one (no inode from before, read from
//! /proc/net, and as many as before: IPv4 and IPv6), so the next login,
//! ours or a user's, finds sshd. A socket-activated sshd keeps systemd's
//! socket. Each look is one awk and builtins: on a loaded host sshd's
//! re-exec can take a second, and a poll that forks five processes every
//! 100 ms adds to the load it waits out.

use super::{Template, fill, quote, template};
use crate::core::input::playbook::Handler;

/// Starts docker.service, and when that fails but dockerd did not (no
/// exit status of its own, 1 to 199), once more a second later: systemd
/// could not set it up (219/CGROUP of docker.socket's or dockerd's
/// process: met on nspawn hosts that shared one cgroup tree, as the lab's
/// did until each got its own, when another host's systemd pruned the
/// unit's cgroup; a container host set up that way can still do it).
/// Exits 1 with the journal's last lines otherwise.
/// The restart handler uses it, and so do the lab and the tests that stop
/// docker.
pub static START_DOCKER: Template = template!("start-docker.sh");

static RESTART_DOCKER: Template = template!("restart-docker.sh");
static RELOAD_SSH: Template = template!("reload-ssh.sh");

/// **reload-firewall.** The boot unit enabled and started again, which
/// loads the rules whole; after a restore that removed the rules (the
/// fence was new), the unit is disabled and the table deleted.
pub const RELOAD_FIREWALL: &str = "if [ -e /etc/dockhand/firewall.nft ]; then
  systemctl enable --quiet dockhand-firewall.service && systemctl restart dockhand-firewall.service
else
  systemctl disable --quiet dockhand-firewall.service 2>/dev/null; nft delete table inet dockhand 2>/dev/null || :
fi
";

/// One handler; `$log` is the private temp file, emptied by each.
const RUN: &str = "if (
@COMMAND@) >\"$log\" 2>&1; then printf 'handler %s ok\\n' @NAME@
else printf 'error handler %s failed: %s\\n' @NAME@ \"$(tail -n 5 \"$log\" | tr '\\n' ' ')\"; handler_failed=1; fi
";

/// Around the handlers: the log is made with mktemp (0600 under the
/// script's umask), never a name others can predict.
const AROUND: &str = "log=$(mktemp) || { printf 'error handlers: no temp file\\n'; exit 1; }
@HANDLERS@rm -f -- \"$log\"
";

fn command(handler: Handler, ssh_unit: &str) -> String {
    match handler {
        Handler::DaemonReload => "systemctl daemon-reload\n".to_string(),
        Handler::RestartDocker => fill(&RESTART_DOCKER, &[("START_DOCKER", &START_DOCKER)]),
        Handler::ReloadSsh => fill(&RELOAD_SSH, &[("UNIT", &quote(ssh_unit))]),
        Handler::ReloadFirewall => RELOAD_FIREWALL.to_string(),
    }
}

/// The handlers' lines, in their fixed order, each once; they set
/// `handler_failed=1` when one fails and go on with the next.
/// `guard` goes right before ssh's reload or the fence's, whichever comes
/// first: the dead-man switch, so that its time counts from there. docker's
/// restart comes after both, and verify's fresh login is made while it
/// runs.
/// `rearm` goes right after docker's restart when `guard` went in: the
/// switch armed again, so its time counts from there (a docker that takes
/// minutes to start never has the switch fire during the checks).
pub fn handlers(handlers: &[Handler], ssh_unit: &str, guard: &str, rearm: &str) -> String {
    let mut sorted = handlers.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        return String::new();
    }
    let mut guarded = false;
    let lines: String = sorted
        .into_iter()
        .map(|handler| {
            let run = fill(
                RUN,
                &[
                    ("COMMAND", &command(handler, ssh_unit)),
                    ("NAME", handler.name()),
                ],
            );
            match handler {
                Handler::ReloadSsh | Handler::ReloadFirewall if !guarded => {
                    guarded = true;
                    format!("{guard}{run}")
                }
                Handler::RestartDocker if guarded => format!("{run}{rearm}"),
                _ => run,
            }
        })
        .collect();
    fill(AROUND, &[("HANDLERS", &lines)])
}
