//! One module per subcommand: each turns its options into a run over the
//! core, the transport and the lab, and hands what happened to `report`.

pub mod lab;
pub mod ping;
pub mod plan;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::inventory::{Host, HostKeyChecking};
use crate::error::{Error, Result};
use crate::transport::{HostKeyPolicy, Target};

/// Connect, handshake and authenticate within this, unless the inventory says otherwise.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The multi-threaded runtime every networked command runs on.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))
}

pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The transport target for an inventory host, with OpenSSH's defaults for
/// whatever the inventory leaves open.
pub fn target_for(host: &Host, home: Option<&Path>) -> Target {
    let ssh_dir = home.map(|h| h.join(".ssh"));
    let identity_files = match &host.ssh.identity_file {
        Some(file) => vec![file.clone()],
        None => ssh_dir
            .iter()
            .flat_map(|dir| ["id_ed25519", "id_ecdsa", "id_rsa"].map(|f| dir.join(f)))
            .filter(|path| path.exists())
            .collect(),
    };
    let known_hosts = match &host.ssh.known_hosts {
        Some(file) => vec![file.clone()],
        None => ssh_dir
            .iter()
            .map(|dir| dir.join("known_hosts"))
            .chain([PathBuf::from("/etc/ssh/ssh_known_hosts")])
            .collect(),
    };
    Target {
        name: host.name.clone(),
        address: host.address.clone(),
        port: host.port(),
        user: host.user().to_string(),
        identity_files,
        use_agent: true,
        known_hosts,
        host_key_policy: match host.ssh.host_key_checking.unwrap_or_default() {
            HostKeyChecking::Strict => HostKeyPolicy::Strict,
            HostKeyChecking::AcceptNew => HostKeyPolicy::AcceptNew,
        },
        host_key_alias: None,
        connect_timeout: host
            .ssh
            .connect_timeout
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
    }
}

/// Reads and parses an inventory file.
pub fn load_inventory(path: &Path) -> Result<crate::core::inventory::Inventory> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    crate::core::inventory::Inventory::parse(path, &text, home_dir().as_deref())
}
