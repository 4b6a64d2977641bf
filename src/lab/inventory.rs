//! The inventory `lab up` writes: usable by dockhand as it is, and holding
//! everything plain `ssh` needs too (address, user, key, known_hosts).

use super::base::SUDO_USER;
use super::release::Release;
use super::state::{LabPaths, LabState};

pub fn render(paths: &LabPaths, lab: &LabState) -> String {
    let key = paths.key();
    let known_hosts = paths.known_hosts();
    let mut out = String::new();
    out.push_str(&format!(
        "# Inventory of the dockhand lab `{name}`, written by `dockhand lab up`.\n\
         # Plain ssh reaches every host with the same settings, e.g.:\n\
         #   ssh -i {key} -o UserKnownHostsFile={known} root@{first}\n\
         # Every host also has the user `{SUDO_USER}` with passwordless sudo; to\n\
         # log in as that user instead of root, set `user: {SUDO_USER}` and `become: true`.\n",
        name = lab.name,
        key = key.display(),
        known = known_hosts.display(),
        first = lab
            .hosts
            .first()
            .map(|h| h.address.to_string())
            .unwrap_or_default(),
    ));
    out.push_str("defaults:\n  ssh:\n    user: root\n    port: 22\n");
    out.push_str(&format!("    identity_file: {}\n", key.display()));
    out.push_str(&format!("    known_hosts: {}\n", known_hosts.display()));
    out.push_str("    host_key_checking: strict\nhosts:\n");
    for host in &lab.hosts {
        out.push_str(&format!(
            "  {name}:\n    address: {address}\n    tls:\n      names: [{name}]\n      addresses: [{address}]\n    \
             vars:\n      lab_release: {release}\n      debian_version: \"{version}\"\n",
            name = host.name,
            address = host.address,
            release = host.release,
            version = host.release.version(),
        ));
    }
    // One group for the lab, one per release (`--limit trixie`), unless a
    // release's name is the lab's own.
    out.push_str(&format!("groups:\n  {}:\n    hosts:\n", lab.name));
    for host in &lab.hosts {
        out.push_str(&format!("      - {}\n", host.name));
    }
    for release in Release::ALL {
        let members: Vec<&str> = lab
            .hosts
            .iter()
            .filter(|h| h.release == release)
            .map(|h| h.name.as_str())
            .collect();
        if members.is_empty() || release.suite() == lab.name {
            continue;
        }
        out.push_str(&format!("  {release}:\n    hosts:\n"));
        for name in members {
            out.push_str(&format!("      - {name}\n"));
        }
    }
    out
}
