//! The firewall role: a fence around dockerd's TLS port (and sshd's) in
//! dockhand's own nftables table, `inet dockhand`. Docker's iptables
//! rules live in other tables and never rewrite it. The rules file is
//! loaded at boot by `dockhand-firewall.service`, and put back by a
//! drop-in of `nftables.service` right after that unit starts, reloads or
//! stops, since its `flush ruleset` takes every table with it.
//!
//! Sources not listed get no answer (drop, not reject). Connections
//! already established stay up, so a fence never cuts the session that
//! puts it up; a wrong `ssh_from` is undone by the dead-man switch.

use ipnet::IpNet;

use super::{Check, Content, FileResource, Resources, root_dir};
use crate::core::input::playbook::{FirewallRole, Handler, Playbook};
use crate::core::state::Facts;

/// The rules, the unit that loads them at boot, and nftables.service's drop-in.
pub const RULES: &str = "/etc/dockhand/firewall.nft";
pub const UNIT: &str = "/etc/systemd/system/dockhand-firewall.service";
pub const NFTABLES_DROP_IN: &str = "/etc/systemd/system/nftables.service.d/dockhand.conf";
/// The table's family and name, as `nft` takes them.
pub const TABLE: &str = "inet dockhand";

/// The role's paths.
pub(super) fn paths(directories: &mut Vec<String>, files: &mut Vec<(String, bool)>) {
    directories.extend([
        "/etc/dockhand".to_string(),
        "/etc/systemd/system/nftables.service.d".to_string(),
    ]);
    for path in [RULES, UNIT, NFTABLES_DROP_IN] {
        files.push((path.to_string(), false));
    }
}

/// The fence for a host. A host without `nft` is an error: dockhand puts
/// up no half fence.
pub(super) fn expand(
    playbook: &Playbook,
    firewall: &FirewallRole,
    facts: &Facts,
    out: &mut Resources,
) -> Result<(), String> {
    let Some(nft) = facts.nft_path.as_deref() else {
        return Err(
            "the playbook puts up a firewall, but this host has no `nft` (install the nftables package): dockhand puts up no half fence"
                .into(),
        );
    };
    if !plain_program_path(nft) {
        return Err(format!(
            "this host's `nft` is {nft:?} (`command -v nft`), which dockhand does not write into a systemd unit: only an absolute path of letters, digits and / . _ + - is; dockhand puts up no half fence"
        ));
    }
    let docker_port = playbook
        .docker
        .as_ref()
        .and_then(|d| d.listen.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(2376);
    let fences = [
        ("docker", docker_port, &firewall.docker_from),
        ("ssh", ssh_port(firewall, facts), &firewall.ssh_from),
    ];
    out.fenced_ports = fences
        .iter()
        .filter(|(_, _, sources)| !sources.is_empty())
        .map(|(_, port, _)| *port)
        .collect();
    out.directories.push(root_dir("/etc/dockhand"));
    out.directories
        .push(root_dir("/etc/systemd/system/nftables.service.d"));
    out.files.push(FileResource {
        validate: Some(Check::program(&[nft, "-c", "-f", "%s"])),
        ..FileResource::root_owned(
            RULES,
            Content::Bytes(rules(&fences).into_bytes()),
            0o644,
            vec![Handler::ReloadFirewall],
        )
    });
    out.files.push(FileResource::root_owned(
        UNIT,
        Content::Bytes(unit(nft).into_bytes()),
        0o644,
        vec![Handler::DaemonReload, Handler::ReloadFirewall],
    ));
    out.files.push(FileResource::root_owned(
        NFTABLES_DROP_IN,
        Content::Bytes(nftables_drop_in(nft).into_bytes()),
        0o644,
        vec![Handler::DaemonReload],
    ));
    out.firewall_rules = Some(RULES.to_string());
    Ok(())
}

/// A path systemd reads as one word and runs as the program it names: the
/// host said where its `nft` is, and that text goes into the unit and the
/// drop-in unquoted.
fn plain_program_path(path: &str) -> bool {
    path.starts_with('/')
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._+-".contains(c))
}

/// sshd's port: the playbook's, else the one the host's sshd listens on
/// (`sshd -T`), else 22.
fn ssh_port(firewall: &FirewallRole, facts: &Facts) -> u16 {
    firewall
        .ssh_port
        .or_else(|| {
            facts
                .sshd_effective
                .get("port")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(22)
}

/// The rules file: the table replaced whole in one transaction (`table`
/// then `delete table` makes the delete work on a host without it).
fn rules(fences: &[(&str, u16, &Vec<IpNet>)]) -> String {
    let mut sets = String::new();
    let mut chain = String::new();
    for (name, port, sources) in fences.iter().filter(|(_, _, s)| !s.is_empty()) {
        for (family, kind, matcher) in [("v4", "ipv4_addr", "ip"), ("v6", "ipv6_addr", "ip6")] {
            let elements: Vec<String> = sources
                .iter()
                .filter(|net| matches!(net, IpNet::V4(_)) == (family == "v4"))
                .map(ToString::to_string)
                .collect();
            if elements.is_empty() {
                continue;
            }
            sets += &format!(
                "\tset {name}_from_{family} {{\n\t\ttype {kind}\n\t\tflags interval\n\t\tauto-merge\n\t\telements = {{ {} }}\n\t}}\n",
                elements.join(", ")
            );
            chain +=
                &format!("\t\ttcp dport {port} {matcher} saddr @{name}_from_{family} accept\n");
        }
        chain += &format!("\t\ttcp dport {port} drop\n");
    }
    format!(
        "#!/usr/sbin/nft -f\n\
         # dockhand's fence: only the listed sources reach these ports; others get\n\
         # no answer. Written by dockhand (edits are replaced on the next apply).\n\
         table {TABLE}\n\
         delete table {TABLE}\n\
         table {TABLE} {{\n\
         {sets}\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter - 10; policy accept;\n\
         \t\tct state established,related accept\n\
         \t\tiifname \"lo\" accept\n\
         {chain}\
         \t}}\n\
         }}\n"
    )
}

fn unit(nft: &str) -> String {
    format!(
        "# Written by dockhand: loads dockhand's fence ({RULES}) at boot.\n\
         [Unit]\n\
         Description=dockhand's fence around dockerd's TLS port (nftables table {TABLE})\n\
         DefaultDependencies=no\n\
         Wants=network-pre.target\n\
         Before=network-pre.target shutdown.target\n\
         Conflicts=shutdown.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart={nft} -f {RULES}\n\
         \n\
         [Install]\n\
         WantedBy=sysinit.target\n"
    )
}

/// Each of nftables.service's hooks loads the fence once more after
/// Debian's `nft -f /etc/nftables.conf` (whose `flush ruleset` took it);
/// the table is replaced whole in one transaction. `-` keeps a failed
/// load from failing the admin's own start, reload or stop: the fence's
/// absence is then what `plan` and `audit` report. No shell is needed.
fn nftables_drop_in(nft: &str) -> String {
    format!(
        "# Written by dockhand: nftables.service's `flush ruleset` would take dockhand's\n\
         # fence with it, so the fence is put back right after it starts, reloads or stops.\n\
         [Service]\n\
         ExecStartPost=-{nft} -f {RULES}\n\
         ExecReload=-{nft} -f {RULES}\n\
         ExecStopPost=-{nft} -f {RULES}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(items: &[&str]) -> Vec<IpNet> {
        items.iter().map(|i| i.parse().unwrap()).collect()
    }

    #[test]
    fn only_listed_sources_reach_a_fenced_port_and_an_empty_list_fences_nothing() {
        let docker = nets(&["198.18.0.1/32", "2001:db8::/32", "10.0.0.0/8"]);
        let none = Vec::new();
        let text = rules(&[("docker", 2376, &docker), ("ssh", 22, &none)]);
        assert!(
            text.contains("elements = { 198.18.0.1/32, 10.0.0.0/8 }"),
            "{text}"
        );
        assert!(text.contains("elements = { 2001:db8::/32 }"), "{text}");
        let order: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("tcp dport") || l.starts_with("ct state"))
            .collect();
        assert_eq!(
            order,
            [
                "ct state established,related accept",
                "tcp dport 2376 ip saddr @docker_from_v4 accept",
                "tcp dport 2376 ip6 saddr @docker_from_v6 accept",
                "tcp dport 2376 drop",
            ]
        );
        assert!(!text.contains("dport 22"), "{text}");
        assert!(text.starts_with("#!/usr/sbin/nft -f\n"));
        assert!(text.contains("table inet dockhand\ndelete table inet dockhand\n"));
    }

    #[test]
    fn each_nftables_hook_loads_the_fence_and_goes_on_when_the_load_fails() {
        let text = nftables_drop_in("/usr/sbin/nft");
        for hook in ["ExecStartPost", "ExecReload", "ExecStopPost"] {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("{hook}=")))
                .collect();
            let load = format!("{hook}=-/usr/sbin/nft -f {RULES}");
            assert_eq!(lines, [load.as_str()], "{text}");
        }
        assert!(
            text.starts_with('#') && text.contains("\n[Service]\n"),
            "{text}"
        );
    }

    /// A playbook that fences docker's port, and its firewall role.
    fn fenced_playbook() -> (Playbook, FirewallRole) {
        let playbook = Playbook::parse(
            "p.yaml".as_ref(),
            "firewall:\n  docker_from: [10.0.0.0/8]\n",
        )
        .unwrap();
        let firewall = playbook.firewall.clone().unwrap();
        (playbook, firewall)
    }

    #[test]
    fn an_nft_path_that_is_not_one_plain_word_gets_no_fence() {
        let (playbook, firewall) = fenced_playbook();
        for (path, plain) in [
            ("/usr/sbin/nft", true),
            ("/opt/nftables-1.0/sbin/nft", true),
            ("nft", false),
            ("/usr/sbin/nft -f /tmp/x", false),
            ("/usr/sbin/nft\nExecStart=/bin/true", false),
            ("/usr/sbin/$nft", false),
            ("/usr/sbin/%n", false),
        ] {
            let facts = Facts {
                nft_path: Some(path.into()),
                ..Facts::default()
            };
            let mut out = Resources::default();
            let result = expand(&playbook, &firewall, &facts, &mut out);
            assert_eq!(result.is_ok(), plain, "{path:?}: {result:?}");
            if !plain {
                assert!(
                    result
                        .unwrap_err()
                        .contains("does not write into a systemd unit")
                );
                assert!(out.files.is_empty(), "{path:?}");
            }
        }
    }

    #[test]
    fn a_host_without_nft_gets_no_half_fence() {
        let (playbook, firewall) = fenced_playbook();
        let mut out = Resources::default();
        let err = expand(&playbook, &firewall, &Facts::default(), &mut out).unwrap_err();
        assert!(
            err.contains("no `nft`") && err.contains("no half fence"),
            "{err}"
        );
        assert!(out.files.is_empty());
    }
}
