//! Loading what a command works on, before any host is contacted: the
//! inventory, the playbook, `--limit`, each host's transport target, the
//! local PKI, and what verification checks. Every mistake in what the user
//! wrote is found here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::input::inventory::{Host, Inventory};
use crate::core::input::playbook::Playbook;
use crate::error::{Error, Result};
use crate::pki::PkiStore;
use crate::transport::Target;
/// What a command reads of a host's connection after the run: its counts.
pub use crate::transport::{Meter, Target as LoadedTarget, Traffic};
use crate::verify::TlsProbe;

use super::pipeline::{Checks, HostJob};
use super::target::Targets;
use crate::core::input::limit::Shard;
use crate::core::roles::TlsMaterial;

/// Which hosts, and what they should be: the inputs of plan, apply, verify.
pub struct Selection {
    pub inventory: PathBuf,
    pub playbook: PathBuf,
    pub limit: Option<String>,
    /// `--shard I/N`: part I of N of what `--limit` selected.
    pub shard: Option<Shard>,
    pub access: Access,
}

/// The hosts `--limit` and `--shard` select (all without them), in
/// inventory order.
pub fn select(hosts: &[Host], limit: Option<&str>, shard: Option<Shard>) -> Result<Vec<Host>> {
    let selected: Vec<&Host> = match limit {
        Some(pattern) => crate::core::input::limit::select(hosts, pattern)?,
        None => hosts.iter().collect(),
    };
    let selected = match shard {
        Some(shard) => shard.select(selected)?,
        None => selected,
    };
    Ok(selected.into_iter().cloned().collect())
}

/// How hosts are reached and acted on, beyond the inventory: another
/// ssh_config (`-F`), the sudo password, the CA key's passphrase.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub ssh_config: Option<PathBuf>,
    /// `-K`: ask for the sudo password on the terminal.
    pub ask_become_password: bool,
    pub become_password_file: Option<PathBuf>,
    pub ca_passphrase_file: Option<PathBuf>,
}

/// The environment variable that may hold the sudo password.
pub const BECOME_PASSWORD_ENV: &str = "DOCKHAND_BECOME_PASSWORD";

impl Access {
    /// The sudo password, had now (before any host is contacted) when one
    /// is given: `--become-password-file`, `DOCKHAND_BECOME_PASSWORD`, or
    /// `-K`'s prompt. `None` when none is: sudo then runs with `-n`.
    pub fn become_password(&self) -> Result<Option<Arc<crate::secret::Secret>>> {
        let source = crate::secret::SecretSource::new(
            "the sudo password",
            "--become-password-file",
            BECOME_PASSWORD_ENV,
        )
        .with_file(self.become_password_file.clone())
        .with_prompt(self.ask_become_password);
        if !source.is_given() && !self.ask_become_password {
            return Ok(None);
        }
        source.get().map(Arc::new).map(Some).map_err(Error::Usage)
    }

    /// Where the CA key's passphrase comes from.
    pub fn ca_passphrase(&self) -> crate::secret::SecretSource {
        crate::pki::passphrase_source(self.ca_passphrase_file.clone())
    }
}

/// Hosts and how to reach each, shared with every job made from them (a
/// fleet of thousands holds each host once).
pub type Hosts = Vec<(Arc<Host>, Arc<Target>)>;

/// What a command starts from.
pub struct Loaded {
    pub playbook: Arc<Playbook>,
    /// The selected hosts and how to reach each.
    pub hosts: Hosts,
    /// Shared with the jobs that read their TLS files at their turn.
    pub store: Option<Arc<PkiStore>>,
    /// The sudo password, when one was given.
    pub become_password: Option<Arc<crate::secret::Secret>>,
}

/// Reads and parses an inventory file; an executable one is a dynamic
/// inventory, as Ansible runs it: its `--list` JSON is the inventory.
pub fn inventory(path: &Path) -> Result<Inventory> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    let text = if executable {
        dynamic_inventory(path)?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Error::file(path, format!("cannot read the inventory: {e}")))?
    };
    Inventory::parse(path, &text, super::target::home_dir().as_deref())
}

/// Runs a dynamic inventory with `--list` (its stdin closed, a minute at
/// most) and returns what it printed.
fn dynamic_inventory(path: &Path) -> Result<String> {
    let fail = |reason: String| Error::file(path, format!("dynamic inventory: {reason}"));
    let child = std::process::Command::new(path)
        .arg("--list")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    // Read while it runs (a large inventory would fill the pipe), and give
    // it a minute.
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let output = match receiver.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(output) => output.map_err(|e| fail(e.to_string()))?,
        Err(_) => {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            return Err(fail("`--list` did not end within 60 s".into()));
        }
    };
    if !output.status.success() {
        return Err(fail(format!(
            "`--list` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    String::from_utf8(output.stdout)
        .map_err(|_| fail("`--list` printed bytes that are not UTF-8".into()))
}

pub fn playbook(path: &Path) -> Result<Playbook> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read the playbook: {e}")))?;
    Playbook::parse(path, &text)
}

/// Every host of an inventory with its target (ping: no playbook).
pub fn targets(inventory_path: &Path, access: &Access) -> Result<Hosts> {
    selected_targets(inventory_path, None, None, access)
}

/// The hosts `--limit` selects (all without it), with their targets.
pub fn selected_targets(
    inventory_path: &Path,
    limit: Option<&str>,
    shard: Option<Shard>,
    access: &Access,
) -> Result<Hosts> {
    let inventory = inventory(inventory_path)?;
    let hosts = select(&inventory.hosts, limit, shard)?;
    with_targets(hosts, access)
}

/// Each host with how to reach it (ssh_config read once for all); a bad
/// jump spec is bad input too.
fn with_targets(hosts: Vec<Host>, access: &Access) -> Result<Hosts> {
    let targets = Targets::from_environment(access.ssh_config.as_deref())?;
    hosts
        .into_iter()
        .map(|host| {
            targets
                .for_host(&host)
                .map(|target| (Arc::new(host), Arc::new(target)))
        })
        .collect()
}

/// Reads inventory and playbook and applies `--limit`.
pub fn load(selection: &Selection) -> Result<Loaded> {
    let (inventory_path, playbook_path) = (&selection.inventory, &selection.playbook);
    let inventory_data = inventory(inventory_path)?;
    let playbook = playbook(playbook_path)?;
    let hosts = select(
        &inventory_data.hosts,
        selection.limit.as_deref(),
        selection.shard,
    )?;
    if hosts.is_empty() {
        return Err(Error::Usage(format!(
            "{}: the inventory has no hosts",
            inventory_path.display()
        )));
    }
    check_templates(&playbook, playbook_path, &hosts)?;
    let store = playbook.pki.as_ref().map(|settings| {
        Arc::new(
            PkiStore::new(PkiStore::locate(settings, playbook_path), settings.clone())
                .with_passphrase(selection.access.ca_passphrase()),
        )
    });
    // Every target is resolved here, so a bad jump spec is bad input too.
    let hosts = with_targets(hosts, &selection.access)?;
    let become_password = selection.access.become_password()?;
    Ok(Loaded {
        playbook: Arc::new(playbook),
        hosts,
        store,
        become_password,
    })
}

/// Every template renders for every selected host: a variable the
/// inventory does not give a host is bad input, found before any host is
/// contacted, at the file's entry in the playbook.
fn check_templates(playbook: &Playbook, path: &Path, hosts: &[Host]) -> Result<()> {
    for spec in playbook.files.iter().filter(|f| f.template) {
        for host in hosts {
            if let Err(e) =
                crate::core::input::template::render(&spec.content, &host.template_vars())
            {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let (line, column) = position_of_path(&text, &spec.path);
                return Err(Error::Input {
                    file: path.to_path_buf(),
                    line,
                    column,
                    message: format!(
                        "template of {}: {e} for host {} (set it in the inventory's vars)",
                        spec.path, host.name
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Where a `path:` entry with this value is in the playbook's text
/// (line 0 when it cannot be told).
fn position_of_path(text: &str, wanted: &str) -> (usize, usize) {
    for (index, line) in text.lines().enumerate() {
        if let Some(at) = line.find("path:") {
            let value = line[at + 5..].trim().trim_matches(['"', '\'']);
            if value == wanted {
                return (index + 1, at + 1);
            }
        }
    }
    (0, 0)
}

/// The jobs of a run, by host name, in inventory order.
pub type Jobs = Vec<(String, HostJob)>;

/// Each selected host's job, which reads the TLS files the local PKI has
/// for its host when its turn comes (read only: what is missing is "to be
/// issued"), and a warning when the CA itself is about to expire.
pub fn jobs(loaded: &Loaded) -> Result<(Jobs, Option<String>)> {
    jobs_with(loaded, true)
}

/// [`jobs`], whose jobs read their TLS files from the store only with
/// `read_tls`: a one-pass apply has the PKI issue (and check) them all
/// before it starts, and reading them twice costs a fleet of thousands a
/// certificate check per host.
pub fn jobs_with(loaded: &Loaded, read_tls: bool) -> Result<(Jobs, Option<String>)> {
    let warning = match &loaded.store {
        Some(store) => store.ca_warning(now())?,
        None => None,
    };
    Ok((host_jobs(loaded, read_tls), warning))
}

/// Each selected host's job, reading its TLS files at its turn only with
/// `read_tls` (verify needs none: it checks what the host serves).
pub fn host_jobs(loaded: &Loaded, read_tls: bool) -> Jobs {
    // One reader for the run: it reads the CA once for every host.
    let tls_reader = loaded
        .store
        .clone()
        .filter(|_| read_tls)
        .map(|store| Arc::new(crate::pki::TlsReader::new(store)));
    loaded
        .hosts
        .iter()
        .map(|(host, target)| {
            let job = HostJob {
                target: target.clone(),
                host: host.clone(),
                tls: TlsMaterial::CaPending,
                tls_reader: tls_reader.clone(),
                become_password: loaded.become_password.clone(),
                replace_ca: false,
            };
            (host.name.clone(), job)
        })
        .collect()
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The client certificate dockhand itself presents when it verifies.
pub fn verification_client(playbook: &Playbook) -> String {
    playbook
        .pki
        .as_ref()
        .and_then(|p| p.clients.first().cloned())
        .unwrap_or_else(|| "admin".into())
}

/// The port dockerd's TLS listener uses (`tcp://ADDR:PORT`).
pub fn listen_port(listen: &str) -> Result<u16> {
    listen
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .ok_or_else(|| {
            Error::Usage(format!(
                "docker.listen {listen:?}: expected tcp://ADDRESS:PORT"
            ))
        })
}

/// The checks verification runs, from the playbook and the local PKI.
pub fn checks(
    playbook: &Playbook,
    store: Option<&PkiStore>,
    client: Option<crate::pki::Pair>,
) -> Result<Checks> {
    let tls = match (&playbook.docker, store, client) {
        (Some(docker), Some(store), Some(client)) => {
            let ca = store
                .trust_bundle()?
                .ok_or_else(|| Error::Usage("no CA yet: run `dockhand apply` first".into()))?;
            let daemon = crate::core::roles::docker::daemon_settings(docker);
            Some((
                TlsProbe {
                    ca_pem: ca,
                    client_cert_pem: client.cert_pem,
                    client_key_pem: client.key_pem,
                },
                listen_port(&docker.listen)?,
                daemon.into_iter().collect(),
            ))
        }
        _ => None,
    };
    let ssh = match &playbook.docker {
        Some(docker) if docker.access == crate::core::input::playbook::Access::Ssh => Some((
            listen_port(&docker.listen)?,
            crate::core::roles::docker::daemon_settings(docker)
                .into_iter()
                .collect(),
        )),
        _ => None,
    };
    let tls = tls.filter(|_| ssh.is_none());
    Ok(Checks {
        tls,
        ssh,
        tls_configs: Default::default(),
    })
}
