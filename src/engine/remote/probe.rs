//! The short probes: `ping`'s one command, a fresh login's `true`, and
//! `sshd -T` as verify reads it after a reload.

use super::handlers::START_DOCKER;
use super::{Carrier, Kind, Layout, Script, header};
use crate::core::outcome::PingReply;

/// Everything `ping` asks, in one round trip, as the login user. `sudo -n`
/// never prompts: a host that would ask for a password fails the check
/// instead of hanging.
const PING: &str = "printf 'hostname=%s\\nuser=%s\\n' \"$(hostname)\" \"$(id -un)\"
printf 'docker=%s\\n' \"$(systemctl is-active docker 2>/dev/null || true)\"
";
const PING_SUDO: &str =
    "if sudo -n true 2>/dev/null; then echo sudo=ok; else echo sudo=refused; fi\n";

pub fn ping(check_sudo: bool) -> Script {
    let mut text = format!("# dockhand: {}\n{PING}", Kind::Ping.name());
    if check_sudo {
        text += PING_SUDO;
    }
    Script {
        kind: Kind::Ping,
        text,
        carrier: Carrier::Login,
    }
}

/// Reads a ping's answer.
pub fn ping_reply(text: &str, check_sudo: bool) -> PingReply {
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
            .to_string()
    };
    PingReply {
        hostname: field("hostname"),
        user: field("user"),
        docker: field("docker"),
        sudo: check_sudo.then(|| field("sudo")),
    }
}

/// A fresh login: the change must not lock anyone out.
pub fn login() -> Script {
    Script {
        kind: Kind::Login,
        text: format!("# dockhand: {}\ntrue\n", Kind::Login.name()),
        carrier: Carrier::Login,
    }
}

/// sshd's effective settings, as root.
pub fn sshd_settings(layout: &Layout) -> Script {
    Script::on_stdin(
        Kind::SshdSettings,
        header(Kind::SshdSettings, layout, true) + "sshd -T\n",
    )
}

/// Whether docker is active, and whether the boot is over.
pub fn docker_state() -> Script {
    Script {
        kind: Kind::DockerState,
        text: format!(
            "# dockhand: {}\nsystemctl is-active docker; systemctl is-system-running\n",
            Kind::DockerState.name()
        ),
        carrier: Carrier::Login,
    }
}

/// Starts docker as the restart handler does ([`START_DOCKER`]).
pub fn start_docker() -> Script {
    Script {
        kind: Kind::StartDocker,
        text: format!("# dockhand: {}\n{START_DOCKER}", Kind::StartDocker.name()),
        carrier: Carrier::Login,
    }
}

/// docker's last words, for an error.
pub fn docker_journal() -> Script {
    Script {
        kind: Kind::DockerJournal,
        text: format!(
            "# dockhand: {}\njournalctl -u docker.service -u docker.socket --no-pager -n 20\n",
            Kind::DockerJournal.name()
        ),
        carrier: Carrier::Login,
    }
}
