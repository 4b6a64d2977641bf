//! Roles expanded into generic resources for one host: directories and
//! files with content, mode, owner, group, secrecy, validation and the
//! handlers a change notifies. Pure: the host's facts and its TLS material
//! are inputs.

pub mod docker;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use crate::core::file_name;
use crate::core::input::playbook::{DockerRole, Handler, Playbook, SshdValue};
use crate::core::roles::docker::daemon_json;
use crate::core::shell_quote;
use crate::core::state::{ActualPath, ActualState, Facts};

/// daemon.json keys the docker role sets from `listen` and `tls_dir`.
pub const DOCKER_TLS_KEYS: &[&str] = &[
    "hosts",
    "tls",
    "tlsverify",
    "tlscacert",
    "tlscert",
    "tlskey",
];

/// The docker role's hardening defaults (CIS Docker Benchmark numbers).
pub fn default_daemon_settings() -> IndexMap<String, Value> {
    [
        ("icc", json!(false)),
        ("userns-remap", json!("default")),
        ("live-restore", json!(true)),
        ("no-new-privileges", json!(true)),
        ("userland-proxy", json!(false)),
        ("log-level", json!("info")),
        ("log-driver", json!("json-file")),
        ("log-opts", json!({"max-size": "10m", "max-file": "3"})),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The daemon settings a playbook asks for: the role's defaults, with the
/// playbook's keys set over them and its null keys dropped.
pub fn daemon_settings(docker: &DockerRole) -> IndexMap<String, Value> {
    let mut settings = default_daemon_settings();
    for (key, value) in &docker.daemon {
        if value.is_null() {
            settings.shift_remove(key);
        } else {
            settings.insert(key.clone(), value.clone());
        }
    }
    settings
}

/// The sshd role's hardening defaults.
pub fn default_sshd_settings() -> IndexMap<String, SshdValue> {
    let list = |items: &[&str]| SshdValue::List(items.iter().map(|s| s.to_string()).collect());
    [
        ("PasswordAuthentication", SshdValue::Bool(false)),
        ("KbdInteractiveAuthentication", SshdValue::Bool(false)),
        (
            "PermitRootLogin",
            SshdValue::Text("prohibit-password".into()),
        ),
        ("PermitEmptyPasswords", SshdValue::Bool(false)),
        ("X11Forwarding", SshdValue::Bool(false)),
        ("MaxAuthTries", SshdValue::Number(3)),
        ("LoginGraceTime", SshdValue::Number(30)),
        (
            "Ciphers",
            list(&[
                "chacha20-poly1305@openssh.com",
                "aes256-gcm@openssh.com",
                "aes128-gcm@openssh.com",
                "aes256-ctr",
                "aes192-ctr",
                "aes128-ctr",
            ]),
        ),
        (
            "MACs",
            list(&[
                "hmac-sha2-512-etm@openssh.com",
                "hmac-sha2-256-etm@openssh.com",
                "umac-128-etm@openssh.com",
            ]),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The settings of the sshd role that depend on the host: the host keys
/// offered (Ed25519; RSA-SHA2 only where the host keeps an RSA key, never
/// ECDSA on NIST curves) and key exchange by what the host's OpenSSH has
/// (the post-quantum ML-KEM hybrid first, then sntrup761, then curve25519
/// for older clients): what its `ssh -Q kex` lists where a client is
/// installed (Debian's builds carry names their upstream version did not
/// have yet), else what its version (`sshd -V`) brought.
pub fn host_sshd_settings(facts: &Facts) -> IndexMap<String, SshdValue> {
    let list = |items: Vec<&str>| SshdValue::List(items.into_iter().map(String::from).collect());
    let has_key = |name: &str| facts.ssh_host_keys.iter().any(|k| k.ends_with(name));
    let mut keys = vec!["/etc/ssh/ssh_host_ed25519_key"];
    let mut algorithms = vec!["ssh-ed25519"];
    if has_key("/ssh_host_rsa_key") {
        keys.push("/etc/ssh/ssh_host_rsa_key");
        algorithms.extend(["rsa-sha2-512", "rsa-sha2-256"]);
    }
    let kex: Vec<&str> = KEX_BY_VERSION
        .iter()
        .filter(|(name, since)| match facts.openssh_version {
            _ if !facts.ssh_kex.is_empty() => facts.ssh_kex.iter().any(|k| k == name),
            Some(version) => version >= *since,
            // Unknown hosts (no facts yet) get what every OpenSSH since 9.0 has.
            None => *since <= (9, 0),
        })
        .map(|(name, _)| *name)
        .collect();
    [
        ("HostKey", list(keys)),
        ("HostKeyAlgorithms", list(algorithms)),
        ("KexAlgorithms", list(kex)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The key exchanges the role offers, best first, with the upstream
/// OpenSSH release that brought each: ML-KEM and sntrup761's plain name
/// came in 9.9 (Debian 12's 9.2 has the plain name too: its `ssh -Q kex`
/// says so), sntrup761 itself in 8.5 (8.4 has only the older
/// sntrup4591761).
const KEX_BY_VERSION: [(&str, (u32, u32)); 5] = [
    ("mlkem768x25519-sha256", (9, 9)),
    ("sntrup761x25519-sha512", (9, 9)),
    ("sntrup761x25519-sha512@openssh.com", (8, 5)),
    ("curve25519-sha256", (7, 4)),
    ("curve25519-sha256@libssh.org", (6, 5)),
];

/// What a file should contain.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Bytes(Vec<u8>),
    /// Not known until a certificate is issued (by `apply`); why.
    Pending(String),
    /// daemon.json: managed keys merged into what the host has.
    DaemonJson {
        managed: Map<String, Value>,
        own_whole_file: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileResource {
    pub path: String,
    pub content: Content,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub secret: bool,
    /// Checks the new content before it replaces the old.
    pub validate: Option<Check>,
    pub notify: Vec<Handler>,
}

/// A check of a file's new content. The core says what runs; the engine's
/// remote scripts write it as shell.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// A program and its arguments, run on the new file where an argument
    /// is `%s`, else after it is in place (`sshd -t` reads its whole
    /// configuration).
    Program(Vec<String>),
    /// The playbook's own shell command, `%s` the new file (as Ansible's
    /// `validate`).
    Shell(String),
}

impl Check {
    pub fn program(words: &[&str]) -> Check {
        Check::Program(words.iter().map(|w| w.to_string()).collect())
    }

    /// Whether it reads the new file itself, before it replaces the old.
    pub fn reads_new_file(&self) -> bool {
        match self {
            Check::Program(words) => words.iter().any(|w| w == "%s"),
            Check::Shell(command) => command.contains("%s"),
        }
    }
}

/// As a reviewer reads it in a plan: a command line, each word quoted
/// where the shell would need it.
impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Shell(command) => f.write_str(command),
            Check::Program(words) => {
                let plain = |w: &str| {
                    !w.is_empty()
                        && w.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "%/._-=:,+@".contains(c))
                };
                for (i, word) in words.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    if plain(word) {
                        f.write_str(word)?;
                    } else {
                        f.write_str(&shell_quote(word))?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl FileResource {
    /// A root:root file that is not secret, not validated, and notifies
    /// `notify` when its content changes.
    pub fn root_owned(
        path: impl Into<String>,
        content: Content,
        mode: u32,
        notify: Vec<Handler>,
    ) -> Self {
        FileResource {
            path: path.into(),
            content,
            mode,
            owner: "root".into(),
            group: "root".into(),
            secret: false,
            validate: None,
            notify,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryResource {
    pub path: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
}

/// A host's resources: directories first (files need them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub directories: Vec<DirectoryResource>,
    pub files: Vec<FileResource>,
    /// Things the plan should say although they change nothing.
    pub warnings: Vec<String>,
    /// What a change to a file does beyond its diff (path, words): shown
    /// with that file's change only.
    pub notes: Vec<(String, String)>,
    /// The sshd drop-in's path and the effective values (`sshd -T`
    /// keywords, lower-case) it is meant to produce.
    pub sshd_expected: Option<(String, Vec<(String, String)>)>,
    /// Seconds after which the host puts the previous sshd drop-in back
    /// unless dockhand disarms the switch after a fresh login.
    pub sshd_revert_after: u32,
    /// Why the daemon.json change moves dockerd to another data root.
    pub data_root_move: Option<String>,
    /// The playbook's `docker.allow_new_data_root`.
    pub allow_new_data_root: bool,
    /// daemon.json's path and the interim document that turns live-restore
    /// on alone (the host's own with `live-restore: true`), when the
    /// document the playbook asks for has live-restore; None when the
    /// host's own cannot be read.
    pub live_restore_interim: Option<(String, String)>,
}

impl Resources {
    /// Every path the gatherer must look at, and whether it is secret.
    pub fn paths(&self) -> Vec<(String, bool)> {
        self.directories
            .iter()
            .map(|d| (d.path.clone(), false))
            .chain(self.files.iter().map(|f| (f.path.clone(), f.secret)))
            .collect()
    }
}

/// A host's TLS material from the local PKI: known bytes, or pending.
#[derive(Debug, Clone, PartialEq)]
pub enum TlsMaterial {
    Ready {
        ca_pem: Vec<u8>,
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
    },
    /// The CA exists but this host's certificate must be issued.
    CertPending { ca_pem: Vec<u8>, reason: String },
    /// No CA yet: everything will be issued.
    CaPending,
}

/// The file names dockerd is pointed at, in `tls_dir`.
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "server-cert.pem";
pub const KEY_FILE: &str = "server-key.pem";

use crate::core::roles::docker::override_conf::{self, MANAGED};

/// A file of the docker role's TLS directory.
fn tls_file(docker: &DockerRole, name: &str) -> String {
    format!("{}/{name}", docker.tls_dir.trim_end_matches('/'))
}

/// What the CA, server certificate and key files hold, from the material.
fn tls_contents(tls: &TlsMaterial) -> [Content; 3] {
    match tls {
        TlsMaterial::Ready {
            ca_pem,
            cert_pem,
            key_pem,
        } => [
            Content::Bytes(ca_pem.clone()),
            Content::Bytes(cert_pem.clone()),
            Content::Bytes(key_pem.clone()),
        ],
        TlsMaterial::CertPending { ca_pem, reason } => [
            Content::Bytes(ca_pem.clone()),
            Content::Pending(format!("server certificate to be issued: {reason}")),
            Content::Pending("new key for the new server certificate".into()),
        ],
        TlsMaterial::CaPending => [
            Content::Pending("the CA is created on the first apply".into()),
            Content::Pending("server certificate to be issued: no CA yet".into()),
            Content::Pending("new key for the new server certificate".into()),
        ],
    }
}

impl Resources {
    /// The same resources with the TLS files of `tls` (issued since the
    /// expansion): nothing else depends on them, so nothing else is
    /// expanded again.
    pub fn with_tls(mut self, playbook: &Playbook, tls: &TlsMaterial) -> Resources {
        let Some(docker) = &playbook.docker else {
            return self;
        };
        let names = [CA_FILE, CERT_FILE, KEY_FILE].map(|name| tls_file(docker, name));
        for (path, content) in names.iter().zip(tls_contents(tls)) {
            if let Some(file) = self.files.iter_mut().find(|f| &f.path == path) {
                file.content = content;
            }
        }
        self
    }
}

/// Every path a host's gather looks at for this playbook, and whether it
/// is secret: known before any fact is (the facts change contents, never
/// paths), so the gather needs no expansion of its own.
pub fn paths(playbook: &Playbook) -> Vec<(String, bool)> {
    let mut directories: Vec<String> = Vec::new();
    let mut files: Vec<(String, bool)> = Vec::new();
    if let Some(docker) = &playbook.docker {
        directories.push(docker.tls_dir.clone());
        for name in [CA_FILE, CERT_FILE, KEY_FILE] {
            files.push((tls_file(docker, name), name == KEY_FILE));
        }
        directories.push(parent(&docker.daemon_json_path).to_string());
        files.push((docker.daemon_json_path.clone(), false));
        directories.push(parent(&docker.unit_drop_in).to_string());
        files.push((docker.unit_drop_in.clone(), false));
    }
    if let Some(sshd) = &playbook.sshd {
        directories.push(parent(&sshd.drop_in).to_string());
        files.push((sshd.drop_in.clone(), false));
    }
    directories.extend(playbook.directories.iter().map(|d| d.path.clone()));
    directories.dedup();
    files.extend(playbook.files.iter().map(|f| (f.path.clone(), f.secret)));
    directories
        .into_iter()
        .map(|d| (d, false))
        .chain(files)
        .collect()
}

/// Expands the playbook for one host. Errors name what the host lacks.
pub fn expand(
    playbook: &Playbook,
    vars: &std::collections::BTreeMap<String, String>,
    actual: &ActualState,
    tls: &TlsMaterial,
) -> Result<Resources, String> {
    let facts = &actual.facts;
    let mut out = Resources::default();
    if let Some(docker) = &playbook.docker {
        let dir = |path: &str| DirectoryResource {
            path: path.to_string(),
            mode: 0o755,
            owner: "root".into(),
            group: "root".into(),
        };
        let file =
            |path: String, content: Content, mode: u32, secret: bool, notify: Vec<Handler>| {
                FileResource {
                    secret,
                    ..FileResource::root_owned(path, content, mode, notify)
                }
            };
        let tls_path = |name: &str| tls_file(docker, name);
        out.directories.push(dir(&docker.tls_dir));
        let [ca, cert, key] = tls_contents(tls);
        let restart = vec![Handler::RestartDocker];
        out.files
            .push(file(tls_path(CA_FILE), ca, 0o444, false, restart.clone()));
        out.files.push(file(
            tls_path(CERT_FILE),
            cert,
            0o444,
            false,
            restart.clone(),
        ));
        out.files
            .push(file(tls_path(KEY_FILE), key, 0o400, true, restart.clone()));

        let mut managed = Map::new();
        managed.insert(
            "hosts".into(),
            json!(["unix:///var/run/docker.sock", docker.listen]),
        );
        managed.insert("tls".into(), json!(true));
        managed.insert("tlsverify".into(), json!(true));
        managed.insert("tlscacert".into(), json!(tls_path(CA_FILE)));
        managed.insert("tlscert".into(), json!(tls_path(CERT_FILE)));
        managed.insert("tlskey".into(), json!(tls_path(KEY_FILE)));
        managed.extend(daemon_settings(docker));
        // The document the host will have: hand-set keys kept unless the
        // playbook owns the whole file. One that cannot be read is the
        // plan's error to report; the managed keys stand in here.
        let now = actual.path(&docker.daemon_json_path).content;
        let document = daemon_json::desired(now.as_deref(), &managed, docker.own_daemon_json)
            .unwrap_or_else(|_| managed.clone());
        out.warnings
            .extend(daemon_json::weakening(&document, &managed));
        let before = now.as_deref().and_then(|b| daemon_json::parse(b).ok());
        out.data_root_move = crate::core::roles::docker::workload::data_root_move(
            before.as_ref(),
            &document,
            actual.facts.workload.as_ref(),
        );
        out.allow_new_data_root = docker.allow_new_data_root;
        out.live_restore_interim = live_restore_interim(
            &docker.daemon_json_path,
            &actual.path(&docker.daemon_json_path),
            before.as_ref(),
            &document,
        );
        if let Some(before) = before {
            for listener in daemon_json::closed_plain_listeners(&before, &document) {
                out.notes.push((
                    docker.daemon_json_path.clone(),
                    format!(
                        "the plain-TCP listener {listener} (`hosts` in daemon.json) is closed: it served the Docker API without TLS"
                    ),
                ));
            }
        }
        let hosts: Vec<String> = document
            .get("hosts")
            .and_then(|h| h.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let unit = override_conf::build(
            facts,
            &override_conf::Target {
                own_path: &docker.unit_drop_in,
                daemon_json: &docker.daemon_json_path,
                daemon_keys: &daemon_json::clash_keys(&document),
                hosts: &hosts,
            },
        )?;
        out.warnings.extend(unit.warnings.iter().cloned());
        out.notes.extend(
            unit.notes
                .iter()
                .map(|note| (docker.unit_drop_in.clone(), note.clone())),
        );
        let json_dir = parent(&docker.daemon_json_path);
        out.directories.push(dir(json_dir));
        out.files.push(FileResource {
            // dockerd 23 and later check a configuration without starting,
            // together with the flags the new drop-in passes (a clash
            // between the two is what stops dockerd most often); older ones
            // (Debian 12 ships 20.10) cannot, and a daemon.json they refuse
            // is caught by the restart and rolled back.
            validate: facts.dockerd_can_validate.then(|| {
                let (program, flags) = unit.command.split_first().expect("a program");
                let mut words = vec![
                    program.clone(),
                    "--validate".into(),
                    "--config-file".into(),
                    "%s".into(),
                ];
                words.extend(flags.iter().cloned());
                Check::Program(words)
            }),
            ..file(
                docker.daemon_json_path.clone(),
                Content::DaemonJson {
                    managed,
                    own_whole_file: docker.own_daemon_json,
                },
                0o644,
                false,
                restart.clone(),
            )
        });

        out.directories.push(dir(parent(&docker.unit_drop_in)));
        out.files.push(file(
            docker.unit_drop_in.clone(),
            Content::Bytes(unit.text.into_bytes()),
            0o644,
            false,
            vec![Handler::DaemonReload, Handler::RestartDocker],
        ));
    }
    if let Some(sshd) = &playbook.sshd {
        let mut settings = default_sshd_settings();
        settings.extend(host_sshd_settings(facts));
        for (key, value) in &sshd.settings {
            match value {
                None => {
                    settings.shift_remove(key);
                }
                Some(value) => {
                    settings.insert(key.clone(), value.clone());
                }
            }
        }
        out.sshd_revert_after = sshd.revert_after;
        out.sshd_expected = Some((
            sshd.drop_in.clone(),
            settings
                .iter()
                // `sshd -T` lists each host key on a line of its own; the
                // algorithms offered are checked through HostKeyAlgorithms.
                .filter(|(k, _)| !k.eq_ignore_ascii_case("HostKey"))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.render()))
                .collect(),
        ));
        let mut text = String::from(MANAGED);
        text.push_str("# sshd keeps the first value it reads: this file sorts first.\n");
        for (key, value) in &settings {
            match value {
                // A keyword sshd takes once per value.
                SshdValue::List(items) if key.eq_ignore_ascii_case("HostKey") => {
                    for item in items {
                        text.push_str(&format!("{key} {item}\n"));
                    }
                }
                value => text.push_str(&format!("{key} {}\n", value.render())),
            }
        }
        out.directories.push(DirectoryResource {
            path: parent(&sshd.drop_in).to_string(),
            mode: 0o755,
            owner: "root".into(),
            group: "root".into(),
        });
        out.files.push(FileResource {
            path: sshd.drop_in.clone(),
            content: Content::Bytes(text.into_bytes()),
            mode: 0o644,
            owner: "root".into(),
            group: "root".into(),
            secret: false,
            validate: Some(Check::program(&[
                "sshd",
                "-t",
                "-f",
                "/etc/ssh/sshd_config",
            ])),
            notify: vec![Handler::ReloadSsh],
        });
        let ours = file_name(&sshd.drop_in);
        for other in &facts.sshd_drop_ins {
            if file_name(other) < ours {
                out.warnings.push(format!(
                    "{other} sorts before {}: sshd reads it first, and its values win",
                    sshd.drop_in
                ));
            }
        }
    }
    for spec in &playbook.directories {
        out.directories.push(DirectoryResource {
            path: spec.path.clone(),
            mode: spec.mode.0,
            owner: spec.owner.clone(),
            group: spec.group.clone(),
        });
    }
    for spec in &playbook.files {
        let content = if spec.template {
            crate::core::input::template::render(&spec.content, vars)
                .map_err(|e| format!("template for {}: {e}", spec.path))?
        } else {
            spec.content.clone()
        };
        out.files.push(FileResource {
            path: spec.path.clone(),
            content: Content::Bytes(content.into_bytes()),
            mode: spec.mode.0,
            owner: spec.owner.clone(),
            group: spec.group.clone(),
            secret: spec.secret,
            validate: spec.validate.clone().map(Check::Shell),
            notify: spec.notify.clone(),
        });
    }
    out.directories.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

/// The host's own daemon.json with `live-restore: true` and nothing else
/// changed, so that a reload turns on live-restore alone; only when the
/// document the host will have asks for it. A file that exists but cannot
/// be read or parsed gives none: a reload of anything else would drop the
/// host's own keys until the restart.
fn live_restore_interim(
    path: &str,
    have: &ActualPath,
    before: Option<&Map<String, Value>>,
    after: &Map<String, Value>,
) -> Option<(String, String)> {
    if after.get("live-restore") != Some(&Value::Bool(true)) {
        return None;
    }
    let mut interim = match (have.exists, before) {
        (false, _) => Map::new(),
        (true, Some(before)) => before.clone(),
        (true, None)
            if have
                .content
                .as_deref()
                .is_some_and(|b| b.iter().all(u8::is_ascii_whitespace)) =>
        {
            Map::new()
        }
        (true, None) => return None,
    };
    interim.insert("live-restore".into(), Value::Bool(true));
    Some((path.to_string(), daemon_json::render(&interim)))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(at) => &path[..at],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::input::playbook::Playbook;
    use crate::core::state::Facts;

    fn state(facts: Facts) -> ActualState {
        ActualState {
            facts,
            ..ActualState::default()
        }
    }

    fn debian_facts() -> Facts {
        Facts {
            dockerd_path: Some("/usr/sbin/dockerd".into()),
            docker_exec_start: vec![
                "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS"
                    .split(' ')
                    .map(String::from)
                    .collect(),
            ],
            ..Facts::default()
        }
    }

    /// The gather's paths come without an expansion, and are exactly the
    /// expansion's, whatever the facts and the TLS material.
    #[test]
    fn the_paths_to_gather_need_no_facts_and_match_the_expansion() {
        let own = "directories:\n  - path: /srv/app\n    mode: \"0750\"\nfiles:\n  - path: /srv/app/key\n    content: x\n    secret: true\n  - path: /etc/motd\n    content: \"{{ greeting }}\"\n    template: true\n";
        let playbooks = [
            include_str!("../../../playbooks/docker-tls.yaml").to_string(),
            format!(
                "{}{own}",
                include_str!("../../../playbooks/docker-tls.yaml")
            ),
            own.to_string(),
            "sshd:\n  drop_in: /etc/ssh/sshd_config.d/10-x.conf\n".to_string(),
        ];
        let vars = [("greeting".to_string(), "hi".to_string())].into();
        let sorted = |mut paths: Vec<(String, bool)>| {
            paths.sort();
            paths.dedup();
            paths
        };
        for text in playbooks {
            let playbook = Playbook::parse("p.yaml".as_ref(), &text).unwrap();
            for tls in [
                TlsMaterial::CaPending,
                TlsMaterial::Ready {
                    ca_pem: b"CA".to_vec(),
                    cert_pem: b"CERT".to_vec(),
                    key_pem: b"KEY".to_vec(),
                },
            ] {
                let bare = Facts {
                    dockerd_path: Some("/usr/local/bin/dockerd".into()),
                    ssh_host_keys: vec!["/etc/ssh/ssh_host_rsa_key".into()],
                    ..Facts::default()
                };
                for facts in [bare, debian_facts()] {
                    let expanded = expand(&playbook, &vars, &state(facts), &tls).unwrap();
                    assert_eq!(sorted(paths(&playbook)), sorted(expanded.paths()), "{text}");
                }
            }
        }
    }

    /// Certificates issued after the expansion replace the TLS files'
    /// contents, and only those.
    #[test]
    fn issued_tls_files_go_in_without_another_expansion() {
        let playbook = Playbook::parse(
            "p.yaml".as_ref(),
            include_str!("../../../playbooks/docker-tls.yaml"),
        )
        .unwrap();
        let ready = TlsMaterial::Ready {
            ca_pem: b"CA".to_vec(),
            cert_pem: b"CERT".to_vec(),
            key_pem: b"KEY".to_vec(),
        };
        let actual = state(debian_facts());
        let vars = Default::default();
        let pending = expand(&playbook, &vars, &actual, &TlsMaterial::CaPending).unwrap();
        assert_eq!(
            pending.with_tls(&playbook, &ready),
            expand(&playbook, &vars, &actual, &ready).unwrap()
        );
    }

    #[test]
    fn the_shipped_playbook_expands_to_the_secure_set() {
        let playbook = Playbook::parse(
            "p.yaml".as_ref(),
            include_str!("../../../playbooks/docker-tls.yaml"),
        )
        .unwrap();
        let tls = TlsMaterial::Ready {
            ca_pem: b"CA".to_vec(),
            cert_pem: b"CERT".to_vec(),
            key_pem: b"KEY".to_vec(),
        };
        let resources =
            expand(&playbook, &Default::default(), &state(debian_facts()), &tls).unwrap();
        let modes: Vec<(&str, u32, bool)> = resources
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.mode, f.secret))
            .collect();
        assert_eq!(
            modes,
            vec![
                ("/etc/docker/tls/ca.pem", 0o444, false),
                ("/etc/docker/tls/server-cert.pem", 0o444, false),
                ("/etc/docker/tls/server-key.pem", 0o400, true),
                ("/etc/docker/daemon.json", 0o644, false),
                (
                    "/etc/systemd/system/docker.service.d/override.conf",
                    0o644,
                    false
                ),
                ("/etc/ssh/sshd_config.d/00-dockhand.conf", 0o644, false),
            ]
        );
        let Content::DaemonJson {
            managed,
            own_whole_file,
        } = &resources.files[3].content
        else {
            panic!()
        };
        assert!(!own_whole_file);
        for (key, value) in [
            (
                "hosts",
                json!(["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"]),
            ),
            ("tlsverify", json!(true)),
            ("tlskey", json!("/etc/docker/tls/server-key.pem")),
            ("icc", json!(false)),
            ("userns-remap", json!("default")),
            ("live-restore", json!(true)),
            ("no-new-privileges", json!(true)),
            ("userland-proxy", json!(false)),
        ] {
            assert_eq!(managed.get(key), Some(&value), "{key}");
        }
        let Content::Bytes(sshd) = &resources.files[5].content else {
            panic!()
        };
        let sshd = String::from_utf8(sshd.clone()).unwrap();
        for line in [
            "PasswordAuthentication no\n",
            "KbdInteractiveAuthentication no\n",
            "PermitRootLogin prohibit-password\n",
            "X11Forwarding no\n",
            "MaxAuthTries 3\n",
        ] {
            assert!(sshd.contains(line), "{line}");
        }
        assert!(resources.files[2].notify.contains(&Handler::RestartDocker));
        assert_eq!(
            resources.files[4].notify,
            vec![Handler::DaemonReload, Handler::RestartDocker]
        );
        assert_eq!(resources.files[5].notify, vec![Handler::ReloadSsh]);
    }

    #[test]
    fn daemon_json_is_validated_where_dockerd_can() {
        let playbook = Playbook::parse(
            "p.yaml".as_ref(),
            include_str!("../../../playbooks/docker-tls.yaml"),
        )
        .unwrap();
        let tls = TlsMaterial::CaPending;
        let old = expand(&playbook, &Default::default(), &state(debian_facts()), &tls).unwrap();
        assert_eq!(old.files[3].validate, None);
        let facts = Facts {
            dockerd_can_validate: true,
            ..debian_facts()
        };
        let new = expand(&playbook, &Default::default(), &state(facts), &tls).unwrap();
        let check = new.files[3].validate.as_ref().unwrap();
        assert_eq!(
            check,
            &Check::program(&[
                "/usr/sbin/dockerd",
                "--validate",
                "--config-file",
                "%s",
                "--containerd=/run/containerd/containerd.sock"
            ]),
            "the check sees the flags the new drop-in passes"
        );
        assert_eq!(
            check.to_string(),
            "/usr/sbin/dockerd --validate --config-file %s --containerd=/run/containerd/containerd.sock"
        );
        let odd = Check::program(&["/opt/my dockerd", "--label=a'b", "%s"]);
        assert_eq!(odd.to_string(), "'/opt/my dockerd' '--label=a'\\''b' %s");
    }

    #[test]
    fn hand_set_keys_that_weaken_the_daemon_are_warned_about_and_kept() {
        let playbook = Playbook::parse(
            "p.yaml".as_ref(),
            include_str!("../../../playbooks/docker-tls.yaml"),
        )
        .unwrap();
        let mut actual = state(debian_facts());
        actual.paths.insert(
            "/etc/docker/daemon.json".into(),
            crate::core::state::ActualPath {
                exists: true,
                content: Some(
                    br#"{"insecure-registries": ["registry.invalid:5000"], "hosts": ["tcp://0.0.0.0:2375"], "debug": true}"#
                        .to_vec(),
                ),
                ..Default::default()
            },
        );
        let resources = expand(
            &playbook,
            &Default::default(),
            &actual,
            &TlsMaterial::CaPending,
        )
        .unwrap();
        assert_eq!(resources.warnings.len(), 1, "{:#?}", resources.warnings);
        assert!(
            resources.warnings[0]
                .starts_with("daemon.json keeps the hand-set `insecure-registries")
        );
        assert!(resources.notes.contains(&(
            "/etc/docker/daemon.json".to_string(),
            "the plain-TCP listener tcp://0.0.0.0:2375 (`hosts` in daemon.json) is closed: it served the Docker API without TLS".to_string()
        )), "{:#?}", resources.notes);
    }

    #[test]
    fn live_restore_is_turned_on_alone_from_the_host_s_own_document() {
        let playbook = Playbook::parse(
            "p.yaml".as_ref(),
            include_str!("../../../playbooks/docker-tls.yaml"),
        )
        .unwrap();
        let expand_over = |file: Option<crate::core::state::ActualPath>| {
            let mut actual = state(debian_facts());
            if let Some(file) = file {
                actual.paths.insert("/etc/docker/daemon.json".into(), file);
            }
            expand(
                &playbook,
                &Default::default(),
                &actual,
                &TlsMaterial::CaPending,
            )
            .unwrap()
            .live_restore_interim
        };
        let present = |content: Option<&[u8]>| crate::core::state::ActualPath {
            exists: true,
            content: content.map(<[u8]>::to_vec),
            ..Default::default()
        };
        let (path, interim) =
            expand_over(Some(present(Some(br#"{"debug": true, "icc": true}"#)))).unwrap();
        assert_eq!(path, "/etc/docker/daemon.json");
        assert_eq!(
            serde_json::from_str::<Value>(&interim).unwrap(),
            json!({"debug": true, "icc": true, "live-restore": true})
        );
        // No file, or an empty one: live-restore alone.
        for file in [None, Some(present(Some(b" \n")))] {
            let (_, interim) = expand_over(file).unwrap();
            assert_eq!(
                serde_json::from_str::<Value>(&interim).unwrap(),
                json!({"live-restore": true})
            );
        }
        // A file whose content was not read: none, rather than drop its keys.
        assert_eq!(expand_over(Some(present(None))), None);
    }

    #[test]
    fn user_settings_override_and_null_drops_defaults() {
        let playbook = Playbook::parse(
            "p.yaml".as_ref(),
            "pki: {}\ndocker:\n  daemon: { userns-remap: null, debug: true }\nsshd:\n  settings: { X11Forwarding: null, MaxAuthTries: 2 }\n",
        )
        .unwrap();
        let resources = expand(
            &playbook,
            &Default::default(),
            &state(debian_facts()),
            &TlsMaterial::CaPending,
        )
        .unwrap();
        let Content::DaemonJson { managed, .. } = &resources.files[3].content else {
            panic!()
        };
        assert!(!managed.contains_key("userns-remap"));
        assert_eq!(managed.get("debug"), Some(&json!(true)));
        let Content::Bytes(sshd) = &resources.files[5].content else {
            panic!()
        };
        let sshd = String::from_utf8(sshd.clone()).unwrap();
        assert!(!sshd.contains("X11Forwarding") && sshd.contains("MaxAuthTries 2\n"));
        assert!(matches!(resources.files[0].content, Content::Pending(_)));
    }

    #[test]
    fn generic_files_are_templated_from_host_vars() {
        let playbook = Playbook::parse(
            "p.yaml".as_ref(),
            "files:\n  - path: /etc/motd\n    content: \"{{ inventory_hostname }} at {{ site }}\\n\"\n    template: true\n\
             \x20 - path: /etc/raw\n    content: \"{{ left alone }}\"\n",
        )
        .unwrap();
        let vars = [("inventory_hostname", "web1"), ("site", "lab")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let resources = expand(
            &playbook,
            &vars,
            &state(Facts::default()),
            &TlsMaterial::CaPending,
        )
        .unwrap();
        assert_eq!(
            resources.files[0].content,
            Content::Bytes(b"web1 at lab\n".to_vec())
        );
        assert_eq!(
            resources.files[1].content,
            Content::Bytes(b"{{ left alone }}".to_vec())
        );
        let err = expand(
            &playbook,
            &Default::default(),
            &state(Facts::default()),
            &TlsMaterial::CaPending,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "template for /etc/motd: unknown variable `inventory_hostname`"
        );
    }

    #[test]
    fn drop_ins_that_sort_first_are_warned_about() {
        let playbook = Playbook::parse(
            "p.yaml".as_ref(),
            "sshd:\n  drop_in: /etc/ssh/sshd_config.d/10-dockhand.conf\n",
        )
        .unwrap();
        let facts = Facts {
            sshd_drop_ins: vec![
                "/etc/ssh/sshd_config.d/05-site.conf".into(),
                "/etc/ssh/sshd_config.d/50-cloud-init.conf".into(),
            ],
            ..Facts::default()
        };
        let resources = expand(
            &playbook,
            &Default::default(),
            &state(facts),
            &TlsMaterial::CaPending,
        )
        .unwrap();
        assert_eq!(resources.warnings.len(), 1);
        assert!(resources.warnings[0].contains("05-site.conf sorts before"));
    }
}
