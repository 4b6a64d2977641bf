//! The short probes: `ping`'s one command, a fresh login's `true`, and
//! `sshd -T` as verify reads it after a reload.

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
