//! The playbook: the desired state, as roles with secure defaults.
//!
//! A role is switched on by its key being present (`pki`, `docker`,
//! `sshd`); generic `files` and `directories` come after. Every key is
//! checked (`deny_unknown_fields`), so a typo is an error at its line and
//! column rather than a setting silently ignored. Pure: parsing only.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};

use crate::core::input::fields;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub pki: Option<PkiRole>,
    pub docker: Option<DockerRole>,
    pub sshd: Option<SshdRole>,
    pub firewall: Option<FirewallRole>,
    #[serde(default, deserialize_with = "fields::unique_paths")]
    pub files: Vec<FileSpec>,
    #[serde(default, deserialize_with = "fields::unique_paths")]
    pub directories: Vec<DirectorySpec>,
}

/// The fence: dockhand's own nftables table, which lets only these
/// sources reach dockerd's TLS port (and sshd's, with `ssh_from`). A port
/// whose list is empty is not fenced.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallRole {
    /// Networks (`198.18.0.0/15`) or addresses allowed to dockerd's port.
    #[serde(deserialize_with = "fields::networks")]
    pub docker_from: Vec<ipnet::IpNet>,
    /// Networks or addresses allowed to sshd's port: guarded by a dead-man
    /// switch, since a wrong list locks everyone out.
    #[serde(deserialize_with = "fields::networks")]
    pub ssh_from: Vec<ipnet::IpNet>,
    /// sshd's port (default 22).
    pub ssh_port: Option<u16>,
}

/// Key algorithm for the CA and every certificate it issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    #[default]
    EcdsaP256,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PkiRole {
    /// Local directory of the CA and issued certificates, relative to the
    /// playbook; default `~/.local/share/dockhand/pki`.
    pub dir: Option<PathBuf>,
    pub key_type: KeyType,
    pub ca_common_name: String,
    #[serde(deserialize_with = "fields::ca_validity_days")]
    pub ca_validity_days: u32,
    #[serde(deserialize_with = "fields::cert_validity_days")]
    pub cert_validity_days: u32,
    /// Certificates expiring within this many days are reissued.
    #[serde(deserialize_with = "fields::renew_before_days")]
    pub renew_before_days: u32,
    /// Client certificates to keep issued (names, e.g. `admin`).
    #[serde(deserialize_with = "fields::client_names")]
    pub clients: Vec<String>,
}

impl Default for PkiRole {
    fn default() -> Self {
        PkiRole {
            dir: None,
            key_type: KeyType::EcdsaP256,
            ca_common_name: "dockhand CA".into(),
            ca_validity_days: 3650,
            cert_validity_days: 365,
            renew_before_days: 30,
            clients: vec!["admin".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerRole {
    /// How clients reach dockerd: `tls` (TCP `listen` with mutual TLS) or
    /// `ssh` (the unix socket only, reached over SSH: no TCP listener).
    pub access: Access,
    /// The accounts that may use docker (over SSH, its socket): they are
    /// put in the `docker` group, and every other member of that group is
    /// named in plan, since the socket is root-equivalent.
    #[serde(deserialize_with = "fields::user_names")]
    pub ssh_users: Vec<String>,
    /// Directory on the host for ca.pem, server-cert.pem, server-key.pem.
    #[serde(deserialize_with = "fields::host_path")]
    pub tls_dir: String,
    /// Where dockerd listens for TLS clients (besides the unix socket).
    #[serde(deserialize_with = "fields::listen")]
    pub listen: String,
    /// Settings merged into daemon.json over the role's secure defaults;
    /// a key set to null drops that default.
    pub daemon: IndexMap<String, serde_json::Value>,
    /// True: daemon.json is wholly ours, keys set by hand are removed.
    /// False (default): keys the playbook does not manage are kept.
    pub own_daemon_json: bool,
    #[serde(deserialize_with = "fields::host_path")]
    pub daemon_json_path: String,
    #[serde(deserialize_with = "fields::host_path")]
    pub unit_drop_in: String,
    /// True: a daemon change that moves dockerd to another data root
    /// (`userns-remap`, `data-root`, `storage-driver`) is made even on a
    /// host whose containers, images or volumes it would hide.
    pub allow_new_data_root: bool,
}

impl Default for DockerRole {
    fn default() -> Self {
        DockerRole {
            access: Access::Tls,
            ssh_users: Vec::new(),
            tls_dir: "/etc/docker/tls".into(),
            listen: "tcp://0.0.0.0:2376".into(),
            daemon: IndexMap::new(),
            own_daemon_json: false,
            daemon_json_path: "/etc/docker/daemon.json".into(),
            unit_drop_in: "/etc/systemd/system/docker.service.d/override.conf".into(),
            allow_new_data_root: false,
        }
    }
}

/// How clients reach dockerd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// TCP (`listen`) with TLS and client verification.
    #[default]
    Tls,
    /// The unix socket only, over SSH (`docker -H ssh://…`, docker
    /// contexts): no TCP listener, no TLS files.
    Ssh,
}

/// An sshd setting's value: one word, a number, yes/no, or a list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SshdValue {
    Bool(bool),
    Number(u64),
    Text(String),
    List(Vec<String>),
}

/// sshd settings: keywords are words, and no value has a control
/// character (a newline would write a second line into the drop-in).
fn sshd_settings<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<IndexMap<String, Option<SshdValue>>, D::Error> {
    use serde::de::Error as _;
    let settings: IndexMap<String, Option<SshdValue>> = fields::unique_keys(deserializer)?;
    for (key, value) in &settings {
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(D::Error::custom(format!(
                "sshd keyword {key:?} is not a word of letters and digits"
            )));
        }
        let text = value.as_ref().map(SshdValue::render).unwrap_or_default();
        if text.chars().any(char::is_control) {
            return Err(D::Error::custom(format!(
                "the value of sshd setting {key} has a control character in it"
            )));
        }
    }
    Ok(settings)
}

impl SshdValue {
    /// As sshd_config spells it.
    pub fn render(&self) -> String {
        match self {
            SshdValue::Bool(true) => "yes".into(),
            SshdValue::Bool(false) => "no".into(),
            SshdValue::Number(n) => n.to_string(),
            SshdValue::Text(text) => text.clone(),
            SshdValue::List(items) => items.join(","),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshdRole {
    /// The drop-in; its name must sort before the others in the directory,
    /// because sshd keeps the first value it reads for most keywords.
    #[serde(deserialize_with = "fields::host_path")]
    pub drop_in: String,
    /// Settings over the role's hardening defaults; null drops a default.
    #[serde(deserialize_with = "sshd_settings")]
    pub settings: IndexMap<String, Option<SshdValue>>,
    /// The dead-man switch: before ssh is reloaded, the host arms a timer
    /// that puts the previous drop-in back and reloads ssh after this many
    /// seconds, unless a fresh login has succeeded and dockhand disarmed it.
    #[serde(deserialize_with = "fields::revert_seconds")]
    pub revert_after: u32,
}

impl Default for SshdRole {
    fn default() -> Self {
        SshdRole {
            drop_in: "/etc/ssh/sshd_config.d/00-dockhand.conf".into(),
            settings: IndexMap::new(),
            revert_after: 120,
        }
    }
}

/// Things a change can set off, run once per host after all writes, in
/// this order. docker's restart comes last: it takes seconds, and once ssh
/// was reloaded (and the fence loaded) verify's fresh login is made while
/// it runs, so that login's handshake costs no time of its own.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Handler {
    DaemonReload,
    ReloadSsh,
    /// Loads the fence's rules (and enables their boot unit); after ssh's
    /// reload, so one dead-man switch armed before either guards both.
    ReloadFirewall,
    RestartDocker,
}

impl Handler {
    pub const ALL: [Handler; 4] = [
        Handler::DaemonReload,
        Handler::ReloadSsh,
        Handler::ReloadFirewall,
        Handler::RestartDocker,
    ];

    /// The name in playbooks, JSON and on hosts (`restart-docker`).
    pub fn name(&self) -> &'static str {
        match self {
            Handler::DaemonReload => "daemon-reload",
            Handler::RestartDocker => "restart-docker",
            Handler::ReloadSsh => "reload-ssh",
            Handler::ReloadFirewall => "reload-firewall",
        }
    }

    pub fn from_name(name: &str) -> Option<Handler> {
        Handler::ALL.into_iter().find(|h| h.name() == name)
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Handler::DaemonReload => "systemctl daemon-reload",
            Handler::RestartDocker => "restart docker",
            Handler::ReloadSsh => "reload ssh",
            Handler::ReloadFirewall => "load the fence (nft)",
        }
    }
}

/// A file mode, read as octal text ("0644"). It is taken as text, never as
/// a YAML number: YAML 1.2 would read 0644 as decimal 644, a classic trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("a mode is an octal string in quotes, such as \"0644\"")
        })?;
        parse_mode(&text)
            .map(Mode)
            .map_err(serde::de::Error::custom)
    }
}

fn parse_mode(text: &str) -> std::result::Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(format!(
            "invalid mode {text:?}: expected octal digits such as \"0644\""
        ));
    }
    u32::from_str_radix(digits, 8).map_err(|e| e.to_string())
}

fn default_root() -> String {
    "root".into()
}
fn default_file_mode() -> Mode {
    Mode(0o644)
}
fn default_dir_mode() -> Mode {
    Mode(0o755)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    #[serde(deserialize_with = "fields::host_path")]
    pub path: String,
    pub content: String,
    #[serde(default = "default_file_mode")]
    pub mode: Mode,
    #[serde(default = "default_root", deserialize_with = "fields::account")]
    pub owner: String,
    #[serde(default = "default_root", deserialize_with = "fields::account")]
    pub group: String,
    /// Never shown in a diff; compared by digest.
    #[serde(default)]
    pub secret: bool,
    /// Substitute `{{ var }}` from the host's inventory variables.
    #[serde(default)]
    pub template: bool,
    /// Command that checks the new content before it replaces the old; `%s`
    /// is the temporary file.
    pub validate: Option<String>,
    #[serde(default)]
    pub notify: Vec<Handler>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySpec {
    #[serde(deserialize_with = "fields::host_path")]
    pub path: String,
    #[serde(default = "default_dir_mode")]
    pub mode: Mode,
    #[serde(default = "default_root", deserialize_with = "fields::account")]
    pub owner: String,
    #[serde(default = "default_root", deserialize_with = "fields::account")]
    pub group: String,
}

impl fields::HasPath for FileSpec {
    fn path(&self) -> &str {
        &self.path
    }
}

impl fields::HasPath for DirectorySpec {
    fn path(&self) -> &str {
        &self.path
    }
}

impl Playbook {
    /// Parses `text`, read from `file` (named in errors).
    pub fn parse(file: &Path, text: &str) -> Result<Playbook> {
        let playbook: Playbook =
            serde_yaml::from_str(text).map_err(|e| crate::core::yaml_error(file, &e))?;
        playbook.check(file)?;
        Ok(playbook)
    }

    /// Rules that serde cannot express.
    fn check(&self, file: &Path) -> Result<()> {
        let fail = |message: String| Error::Input {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message,
        };
        if let Some(docker) = &self.docker {
            for key in crate::core::roles::docker::daemon_json::TLS_KEYS {
                if docker.daemon.contains_key(*key) {
                    return Err(fail(format!(
                        "docker.daemon.{key} is set by the docker role from `listen` and `tls_dir`; remove it"
                    )));
                }
            }
            if self.pki.is_none() && docker.access == Access::Tls {
                return Err(fail(
                    "the docker role needs the pki role (its certificates), unless `access: ssh`"
                        .into(),
                ));
            }
        }
        if let Some(pki) = &self.pki
            && pki.renew_before_days >= pki.cert_validity_days
        {
            return Err(fail(format!(
                "pki.renew_before_days ({}) must be less than pki.cert_validity_days ({})",
                pki.renew_before_days, pki.cert_validity_days
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Playbook> {
        Playbook::parse(Path::new("play.yaml"), text)
    }

    #[test]
    fn the_shipped_playbook_parses() {
        let playbook = parse(include_str!("../../../playbooks/docker-tls.yaml")).unwrap();
        assert!(playbook.pki.is_some() && playbook.docker.is_some() && playbook.sshd.is_some());
    }

    #[test]
    fn modes_are_octal_strings() {
        // Unquoted 0644 arrives as the text "0644" too: accepted.
        let cases = [
            ("\"0644\"", 0o644),
            ("0644", 0o644),
            ("\"0400\"", 0o400),
            ("\"0o750\"", 0o750),
        ];
        for (text, expected) in cases {
            let playbook = parse(&format!(
                "files:\n  - path: /x\n    content: x\n    mode: {text}\n"
            ))
            .unwrap();
            assert_eq!(playbook.files[0].mode.0, expected, "{text}");
        }
        for bad in ["\"0968\"", "\"rw-r--r--\"", "\"\"", "[1]"] {
            let err = parse(&format!(
                "files:\n  - path: /x\n    content: x\n    mode: {bad}\n"
            ))
            .unwrap_err();
            // The position is that of the file entry; the path names the field.
            let text = err.to_string();
            assert!(
                text.starts_with("play.yaml:2:") && text.contains("files[0]"),
                "{bad}: {text}"
            );
        }
    }

    #[test]
    fn bad_input_is_placed() {
        let cases: &[(&str, &str)] = &[
            (
                "pki:\n  key_type: dsa\n",
                "play.yaml:2:13: pki.key_type: unknown variant `dsa`",
            ),
            (
                "docker:\n  tls_dirr: /x\n",
                "play.yaml:2:3: docker: unknown field `tls_dirr`",
            ),
            (
                "sshd:\n  settings: [1, 2]\n",
                "play.yaml:2:13: sshd.settings: invalid type",
            ),
            (
                "files:\n  - path: relative\n    content: x\n",
                "play.yaml:2:5: files[0]: \"relative\" must be an absolute path",
            ),
            (
                "pki: {}\ndocker:\n  daemon: { hosts: [] }\n",
                "docker.daemon.hosts is set by the docker role",
            ),
            ("docker: {}\n", "needs the pki role"),
            (
                "files:\n  - path: /x\n    content: x\n    notify: [restart-nginx]\n",
                "play.yaml:4:14: files[0].notify[0]: unknown variant `restart-nginx`",
            ),
        ];
        for (text, needle) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
