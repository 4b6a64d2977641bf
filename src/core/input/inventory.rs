//! The inventory: hosts, groups and how to reach each host.
//!
//! ```yaml
//! defaults:            # settings for every host
//!   ssh: { user: root, identity_file: ~/.ssh/id_ed25519 }
//! hosts:
//!   web1:
//!     address: 192.0.2.10
//!     ssh: { port: 2222 }
//!     tls: { names: [web1.example.com], addresses: [192.0.2.10] }
//! groups:
//!   web:
//!     hosts: [web1]
//!     ssh: { user: deploy, become: true }
//! ```
//!
//! Hosts keep the order of the file. SSH settings are merged field by
//! field: a host's own beat its groups' (groups in name order, the later
//! winning, as Ansible merges groups of one depth), which beat `defaults`. Pure: parsing and resolution do no I/O;
//! the caller reads the file and supplies the home directory.

use indexmap::IndexMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// What to do with a host key that is in no known_hosts file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyChecking {
    #[default]
    Strict,
    AcceptNew,
}

/// Connection settings; every field optional so layers can be merged.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SshSettings {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub host_key_checking: Option<HostKeyChecking>,
    #[serde(rename = "become")]
    pub become_root: Option<bool>,
    /// Seconds for connect, handshake and authentication together.
    pub connect_timeout: Option<u64>,
    /// `[user@]host[:port]`, comma-separated for a chain: hosts to connect
    /// through (OpenSSH's ProxyJump).
    pub jump: Option<String>,
}

impl SshSettings {
    /// `self` with every field that `over` sets replaced by it.
    fn overlaid_by(&self, over: &SshSettings) -> SshSettings {
        SshSettings {
            user: over.user.clone().or_else(|| self.user.clone()),
            port: over.port.or(self.port),
            identity_file: over
                .identity_file
                .clone()
                .or_else(|| self.identity_file.clone()),
            known_hosts: over
                .known_hosts
                .clone()
                .or_else(|| self.known_hosts.clone()),
            host_key_checking: over.host_key_checking.or(self.host_key_checking),
            become_root: over.become_root.or(self.become_root),
            connect_timeout: over.connect_timeout.or(self.connect_timeout),
            jump: over.jump.clone().or_else(|| self.jump.clone()),
        }
    }
}

/// Names and addresses that go into a host's server certificate.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsNames {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    #[serde(default)]
    ssh: SshSettings,
    #[serde(default)]
    vars: IndexMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    #[serde(default, deserialize_with = "crate::core::input::fields::host_address")]
    address: Option<String>,
    #[serde(default)]
    ssh: SshSettings,
    #[serde(default)]
    tls: TlsNames,
    #[serde(default)]
    vars: IndexMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupEntry {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    ssh: SshSettings,
    #[serde(default)]
    vars: IndexMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default, deserialize_with = "crate::core::input::fields::unique_keys")]
    hosts: IndexMap<String, Option<HostEntry>>,
    #[serde(default, deserialize_with = "crate::core::input::fields::unique_keys")]
    groups: IndexMap<String, GroupEntry>,
}

/// A host with its settings resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub groups: Vec<String>,
    pub ssh: SshSettings,
    pub tls: TlsNames,
    /// Variables for templates: defaults, then groups, then the host's own
    /// (`inventory_hostname` and `address` are the host's fields: see
    /// [`Host::template_vars`]).
    pub vars: std::collections::BTreeMap<String, String>,
}

impl Host {
    /// What the host's templates can name.
    pub fn template_vars(&self) -> super::template::HostVars<'_> {
        super::template::HostVars {
            inventory_hostname: &self.name,
            address: &self.address,
            vars: &self.vars,
        }
    }
    pub fn user(&self) -> &str {
        self.ssh.user.as_deref().unwrap_or("root")
    }
    pub fn port(&self) -> u16 {
        self.ssh.port.unwrap_or(22)
    }
}

/// A parsed inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub hosts: Vec<Host>,
}

impl Inventory {
    /// Parses dockhand's own form of `text`, read from `file` (named in
    /// errors). `home` expands a leading `~/` in paths. `Inventory::parse`
    /// (in `formats`) takes every form.
    pub fn parse_own(file: &Path, text: &str, home: Option<&Path>) -> Result<Inventory> {
        let raw: InventoryFile =
            serde_yaml::from_str(text).map_err(|e| crate::core::yaml_error(file, &e))?;
        let semantic = |message: String| Error::Input {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message,
        };
        for (group, entry) in &raw.groups {
            if let Some(missing) = entry.hosts.iter().find(|h| !raw.hosts.contains_key(*h)) {
                return Err(semantic(format!(
                    "group `{group}` lists host `{missing}`, which is not under `hosts`"
                )));
            }
        }
        // Each host's groups, from one pass over the groups: asking every
        // group about every host costs hosts × members, quadratic for a
        // fleet of thousands in a few big groups.
        let mut groups_of: std::collections::HashMap<&str, Vec<String>> =
            std::collections::HashMap::new();
        for (group, entry) in &raw.groups {
            for host in &entry.hosts {
                groups_of
                    .entry(host.as_str())
                    .or_default()
                    .push(group.clone());
            }
        }
        let hosts = raw
            .hosts
            .iter()
            .map(|(name, entry)| {
                let entry = entry.clone().unwrap_or_default();
                let mut groups: Vec<String> = groups_of.remove(name.as_str()).unwrap_or_default();
                groups.sort();
                groups.dedup();
                let mut ssh = raw.defaults.ssh.clone();
                let mut vars: std::collections::BTreeMap<String, String> =
                    raw.defaults.vars.clone().into_iter().collect();
                for group in &groups {
                    ssh = ssh.overlaid_by(&raw.groups[group].ssh);
                    vars.extend(raw.groups[group].vars.clone());
                }
                ssh = ssh.overlaid_by(&entry.ssh);
                vars.extend(entry.vars.clone());
                let address = entry.address.clone().unwrap_or_else(|| name.clone());
                ssh.identity_file = ssh.identity_file.map(|p| expand_home(&p, home));
                ssh.known_hosts = ssh.known_hosts.map(|p| expand_home(&p, home));
                Host {
                    name: name.clone(),
                    address,
                    groups,
                    ssh,
                    tls: entry.tls,
                    vars,
                }
            })
            .collect();
        Ok(Inventory { hosts })
    }
}

/// `~/x` → `HOME/x`; other paths unchanged.
pub fn expand_home(path: &Path, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory> {
        Inventory::parse(Path::new("inv.yaml"), text, Some(Path::new("/home/u")))
    }

    #[test]
    fn settings_merge_host_over_group_over_defaults() {
        let inv = parse(
            "defaults:\n  ssh: { user: root, port: 22, identity_file: ~/.ssh/id }\n\
             hosts:\n  a: { address: 192.0.2.1, ssh: { port: 2222 } }\n  b:\n\
             groups:\n  web: { hosts: [a, b], ssh: { user: deploy, become: true } }\n",
        )
        .unwrap();
        let a = &inv.hosts[0];
        assert_eq!((a.name.as_str(), a.address.as_str()), ("a", "192.0.2.1"));
        assert_eq!((a.user(), a.port()), ("deploy", 2222));
        assert_eq!(a.ssh.become_root, Some(true));
        assert_eq!(
            a.ssh.identity_file.as_deref(),
            Some(Path::new("/home/u/.ssh/id"))
        );
        let b = &inv.hosts[1];
        assert_eq!(
            (b.address.as_str(), b.port(), b.groups.clone()),
            ("b", 22, vec!["web".to_string()])
        );
    }

    #[test]
    fn bad_input_names_file_line_and_column() {
        let cases = [
            ("hosts:\n  a: { adress: x }\n", 2, "unknown field `adress`"),
            ("hosts:\n  a:\n    ssh: { port: many }\n", 3, "invalid"),
            (
                "hosts:\n  a:\n    tls: { addresses: [300.1.1.1] }\n",
                3,
                "invalid IP address",
            ),
            ("hosts:\n  a:\n\tb: 1\n", 3, "cannot start any token"),
            (
                "hosts:\n  a:\n    address: \"h$(touch /tmp/x)\"\n",
                3,
                "is neither an IP address nor a DNS name",
            ),
            (
                "hosts:\n  a: { address: \"web 1\" }\n",
                2,
                "neither an IP address",
            ),
            (
                "hosts:\n  a: { address: \"-oProxyCommand=x\" }\n",
                2,
                "neither an IP address",
            ),
        ];
        for (text, line, needle) in cases {
            let err = parse(text).unwrap_err();
            let Error::Input { line: got, .. } = &err else {
                panic!("{text}: {err}")
            };
            assert_eq!(*got, line, "{text}: {err}");
            assert!(
                err.to_string().starts_with(&format!("inv.yaml:{line}:")),
                "{err}"
            );
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn the_example_inventory_parses() {
        let inv = parse(include_str!("../../../inventory.example.yaml")).unwrap();
        let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["docker-01", "docker-02", "build-01"],
            "inventory order"
        );
        let build = &inv.hosts[2];
        assert_eq!(
            (build.user(), build.ssh.become_root),
            ("deploy", Some(true))
        );
        assert_eq!(inv.hosts[1].port(), 2222);
        assert_eq!(
            inv.hosts[0].tls.names,
            ["docker-01", "docker-01.example.com"]
        );
    }

    #[test]
    fn vars_merge_host_over_group_over_defaults() {
        let inv = parse(
            "defaults: { vars: { site: lab, tier: base } }\n\
             hosts:\n  a: { vars: { tier: edge } }\n  b:\n\
             groups:\n  g: { hosts: [a, b], vars: { tier: group, port: 8080 } }\n",
        )
        .unwrap();
        let (a, b) = (&inv.hosts[0].template_vars().all(), &inv.hosts[1].vars);
        assert_eq!(
            (a["site"].as_str(), a["tier"].as_str(), a["port"].as_str()),
            ("lab", "edge", "8080")
        );
        assert_eq!(b["tier"], "group");
        assert_eq!(
            (a["inventory_hostname"].as_str(), a["address"].as_str()),
            ("a", "a")
        );
    }

    #[test]
    fn groups_must_list_known_hosts() {
        let err = parse("hosts:\n  a:\ngroups:\n  g: { hosts: [a, zz] }\n").unwrap_err();
        assert!(err.to_string().contains("`zz`"), "{err}");
    }
}
