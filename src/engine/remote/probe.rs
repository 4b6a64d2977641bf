//! The short probes: `ping`'s one command, a fresh login's `true`, and
//! `sshd -T` as verify reads it after a reload.

use super::handlers::START_DOCKER;
use super::{Carrier, Kind, Layout, Script, TAG, header};
use crate::core::outcome::PingReply;

/// Everything `ping` asks, in one round trip, as the login user. `sudo -n`
/// never prompts: a host that would ask for a password fails the check
/// instead of hanging.
const PING: &str = "printf 'hostname=%s\\nuser=%s\\n' \"$(hostname)\" \"$(id -un)\"
printf 'docker=%s\\n' \"$(systemctl is-active docker 2>/dev/null || true)\"
";
const PING_SUDO: &str =
    "if sudo -n true 2>/dev/null; then echo sudo=ok; else echo sudo=refused; fi\n";

/// A command the login shell runs as the login user, as any SSH client
/// sends one: its first line names its kind.
fn login_command(kind: Kind, body: &str) -> Script {
    Script {
        kind,
        text: format!("{TAG}{}\n{body}", kind.name()),
        carrier: Carrier::Login,
    }
}

pub fn ping(check_sudo: bool) -> Script {
    let sudo = if check_sudo { PING_SUDO } else { "" };
    login_command(Kind::Ping, &format!("{PING}{sudo}"))
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
    login_command(Kind::Login, "true\n")
}

/// What the docker CLI does on the host for `docker -H ssh://…`: `docker
/// system dial-stdio`, as the login user, with one HTTP request for the
/// daemon on its stdin. Its stdin stays open until the answer is in: the
/// CLI half-closes the socket at the end of its input, and dockerd 26
/// takes that for a client gone (its `/info` then answers `null`). So the
/// request goes through a FIFO this shell holds open, and dial-stdio ends
/// when dockerd closes the connection after its answer (HTTP/1.0). A host
/// without a docker CLI says so.
const DIAL_STDIO: &str = "command -v docker >/dev/null || { echo 'no docker CLI on this host, which docker -H ssh:// needs for docker system dial-stdio (install docker-cli, or docker.io on Debian 12)' >&2; exit 127; }
d=$(mktemp -d) && mkfifo \"$d/in\" || exit 1
docker system dial-stdio < \"$d/in\" & dial=$!
exec 3> \"$d/in\"
printf 'GET %s HTTP/1.0\\r\\nHost: docker\\r\\n\\r\\n' @PATH@ >&3
wait \"$dial\"; status=$?
exec 3>&-; rm -rf -- \"$d\"
exit \"$status\"
";

pub fn dial_stdio(layout: &Layout, path: &str) -> Script {
    let text = header(Kind::DialStdio, layout, false)
        + &super::fill(DIAL_STDIO, &[("PATH", &super::quote(path))]);
    Script::plain(Kind::DialStdio, text)
}

/// sshd's effective settings, as root, kept for the next run with what
/// the host's programs can do and systemd's view of the units (the apply
/// that asks holds the host's lock; its commit may have reloaded both).
const SSHD_SETTINGS: &str = "@FILES@[ \"$key_ready\" = yes ] || facts_key
answers=$(program_facts)
units_asked
sshd_out=$(sshd -T 2>&1); sshd_status=$?
printf '%s\\n' \"$sshd_out\"
[ \"$sshd_status\" = 0 ] || printf '%s\\n' \"$sshd_out\" >&2
[ -d @STATE_DIR@ ] && keep_facts
exit \"$sshd_status\"
";

/// sshd's effective settings, as root; see [`SSHD_SETTINGS`]. What the
/// managed `paths` say after the commit is kept too, for the next run.
pub fn sshd_settings(layout: &Layout, paths: &[(String, bool)]) -> Script {
    Script::plain(
        Kind::SshdSettings,
        header(Kind::SshdSettings, layout, true)
            + &super::gather::host_facts(layout)
            + KEY_FIRST
            + &super::fill(
                SSHD_SETTINGS,
                &[
                    ("FILES", &super::gather::keep_what_files_say(paths)),
                    ("STATE_DIR", &super::quote(layout.state_dir)),
                ],
            ),
    )
}

/// The key before the answers, so a file changed meanwhile is seen next
/// run: the files it names, which the managed paths' `stat` looks at too
/// (one program's start), or `facts_key` where there are no paths or a
/// link among them.
const KEY_FIRST: &str = "programs_on_path
sshd_patterns; key_inputs; key=; key_ready=
";

/// Whether docker is active, and whether the boot is over.
pub fn docker_state() -> Script {
    login_command(
        Kind::DockerState,
        "systemctl is-active docker; systemctl is-system-running\n",
    )
}

/// Starts docker as the restart handler does ([`START_DOCKER`]).
pub fn start_docker() -> Script {
    login_command(Kind::StartDocker, &START_DOCKER)
}

/// docker's last words, for an error.
pub fn docker_journal() -> Script {
    login_command(
        Kind::DockerJournal,
        "journalctl -u docker.service -u docker.socket --no-pager -n 20\n",
    )
}
