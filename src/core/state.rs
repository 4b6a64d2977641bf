//! What a host actually has, as gathered in one round trip: the managed
//! paths (metadata, digest, and content unless secret) and the facts the
//! roles need. Plain data, filled by the engine's gatherer.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::core::roles::docker::unit::UnitFile;

/// The kind of thing found at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    File,
    Directory,
    Other,
}

/// One path on the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActualPath {
    pub exists: bool,
    pub kind: Option<PathKind>,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub size: u64,
    /// Hex SHA-256 of a regular file's content.
    pub sha256: Option<String>,
    /// The content, for regular files that are not secret and not too big.
    pub content: Option<Vec<u8>>,
}

/// Facts about the host that the roles need.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Facts {
    pub os_id: String,
    pub os_version: String,
    /// The first `dockerd` on PATH (as `command -v dockerd`).
    pub dockerd_path: Option<String>,
    /// The first `nft` on PATH (as `command -v nft`).
    pub nft_path: Option<String>,
    /// The members of the `docker` group (`getent group docker`); None
    /// when there is no such group.
    pub docker_group: Option<Vec<String>>,
    /// `command -v docker`: the CLI `docker -H ssh://` runs on the host.
    pub docker_cli_path: Option<String>,
    /// The ports dockhand's fence (`table inet dockhand`) drops for
    /// sources it does not list, as loaded in the kernel now.
    pub fenced_ports: Vec<u16>,
    /// The docker unit's effective ExecStart command lines (argv), in order.
    pub docker_exec_start: Vec<Vec<String>>,
    /// Drop-in files of docker.service that systemd reads.
    pub docker_drop_ins: Vec<String>,
    /// The docker unit file and its drop-ins with their text, in the order
    /// systemd reads them.
    pub docker_unit_files: Vec<UnitFile>,
    /// The environment files the docker unit names, with their text (a
    /// missing file is absent).
    pub docker_env_files: Vec<UnitFile>,
    pub docker_active: String,
    /// `ssh.service` (Debian) or `sshd.service` (RHEL-likes).
    pub ssh_unit: String,
    pub ssh_active: String,
    /// `sshd -T`: effective settings, lower-case keywords.
    pub sshd_effective: BTreeMap<String, String>,
    /// What `sshd -T` said when it failed.
    pub sshd_error: Option<String>,
    /// Files in the sshd drop-in directory, sorted as sshd reads them.
    pub sshd_drop_ins: Vec<String>,
    /// The key exchange algorithms the host's OpenSSH client knows (`ssh -Q
    /// kex`; empty where no client is installed, as on Debian 14).
    pub ssh_kex: Vec<String>,
    /// The version of the host's sshd (`sshd -V`), major and minor.
    pub openssh_version: Option<(u32, u32)>,
    /// The host's SSH host key files (`/etc/ssh/ssh_host_*_key`).
    pub ssh_host_keys: Vec<String>,
    /// Whether `dockerd --validate` exists (dockerd 23 and later).
    pub dockerd_can_validate: bool,
    /// Handlers an interrupted run owed (names, as recorded on the host).
    pub pending_handlers: Vec<String>,
    /// sshd dead-man switches an interrupted run left armed (transient
    /// timer units): each would put the previous drop-in back.
    pub armed_switches: Vec<String>,
    /// Backups and temp files an interrupted run left beside managed files.
    pub leftovers: Vec<String>,
    /// What the running dockerd holds, as it reports it; None where it
    /// could not be asked (docker not active, or no docker CLI and no
    /// python3 on the host).
    pub workload: Option<crate::core::roles::docker::workload::Workload>,
    /// Why the workload could not be read, when docker was active.
    pub workload_unknown: Option<String>,
    /// Containers under /var/lib/docker/containers, whichever data root
    /// the daemon uses now (left behind by a move to another one).
    pub default_root_containers: u64,
}

/// Everything gathered from one host.
#[derive(Debug, Clone, Default)]
pub struct ActualState {
    pub paths: BTreeMap<String, ActualPath>,
    pub facts: Facts,
}

impl ActualState {
    pub fn path(&self, path: &str) -> ActualPath {
        self.paths.get(path).cloned().unwrap_or_default()
    }
}
