//! Roles expanded into generic resources for one host: directories and
//! files with content, mode, owner, group, secrecy, validation and the
//! handlers a change notifies. Pure: the host's facts and its TLS material
//! are inputs.

pub mod docker;
mod files;
pub mod firewall;
pub mod sshd;

use crate::core::parent_dir as parent;

use serde_json::{Map, Value};

use crate::core::input::playbook::{Handler, Playbook};
use crate::core::shell_quote;
use crate::core::state::ActualState;

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
    /// The CA file hosts trust dockerd's clients by (the docker role's
    /// `ca.pem`): a host that trusts another CA is not switched silently.
    pub ca_file: Option<String>,
    /// `apply --replace-ca`: switch such a host all the same.
    pub replace_ca: bool,
    /// The fence's rules file: a change to it is guarded by the dead-man
    /// switch, as sshd's drop-in is.
    pub firewall_rules: Option<String>,
    /// The accounts `docker.ssh_users` puts in the `docker` group.
    pub docker_users: Vec<String>,
    /// The ports the fence drops others on: when the kernel's table lacks
    /// one (a `flush ruleset` by hand), the fence is loaded again.
    pub fenced_ports: Vec<u16>,
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
    /// The CA bundle is shared by every host's material (a fleet of
    /// thousands holds one copy).
    Ready {
        ca_pem: std::sync::Arc<[u8]>,
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
    },
    /// The CA exists but this host's certificate must be issued.
    CertPending {
        ca_pem: std::sync::Arc<[u8]>,
        reason: String,
    },
    /// No CA yet: everything will be issued.
    CaPending,
}

impl Resources {
    /// The same resources with the TLS files of `tls` (issued since the
    /// expansion): nothing else depends on them, so nothing else is
    /// expanded again.
    pub fn with_tls(mut self, playbook: &Playbook, tls: &TlsMaterial) -> Resources {
        let Some(docker) = &playbook.docker else {
            return self;
        };
        let names = [docker::CA_FILE, docker::CERT_FILE, docker::KEY_FILE]
            .map(|name| docker::tls_file(docker, name));
        for (path, content) in names.iter().zip(docker::tls_contents(tls)) {
            if let Some(file) = self.files.iter_mut().find(|f| &f.path == path) {
                file.content = content;
            }
        }
        self
    }
}

/// The files whose contents the local PKI issues (the CA, the server
/// certificate and its key), when the playbook has the daemon use TLS.
pub fn issued_paths(playbook: &Playbook) -> Vec<String> {
    match &playbook.docker {
        Some(docker) if docker.access == crate::core::input::playbook::Access::Tls => {
            [docker::CA_FILE, docker::CERT_FILE, docker::KEY_FILE]
                .map(|name| docker::tls_file(docker, name))
                .to_vec()
        }
        _ => Vec::new(),
    }
}

/// Every path a host's gather looks at for this playbook, and whether it
/// is secret: known before any fact is (the facts change contents, never
/// paths), so the gather needs no expansion of its own.
pub fn paths(playbook: &Playbook) -> Vec<(String, bool)> {
    let mut directories: Vec<String> = Vec::new();
    let mut files: Vec<(String, bool)> = Vec::new();
    if let Some(docker) = &playbook.docker {
        docker::paths(docker, &mut directories, &mut files);
    }
    if let Some(sshd) = &playbook.sshd {
        sshd::paths(sshd, &mut directories, &mut files);
    }
    if playbook.firewall.is_some() {
        firewall::paths(&mut directories, &mut files);
    }
    files::paths(playbook, &mut directories, &mut files);
    directories.dedup();
    directories
        .into_iter()
        .map(|d| (d, false))
        .chain(files)
        .collect()
}

/// Expands the playbook for one host, role by role. Errors name what the
/// host lacks.
pub fn expand(
    playbook: &Playbook,
    vars: &crate::core::input::template::HostVars<'_>,
    actual: &ActualState,
    tls: &TlsMaterial,
) -> Result<Resources, String> {
    let mut out = Resources::default();
    if let Some(docker) = &playbook.docker {
        docker::expand(docker, actual, tls, &mut out)?;
    }
    if let Some(sshd) = &playbook.sshd {
        sshd::expand(sshd, &actual.facts, &mut out);
    }
    if let Some(firewall) = &playbook.firewall {
        firewall::expand(playbook, firewall, &actual.facts, &mut out)?;
    }
    files::expand(playbook, vars, &mut out)?;
    out.directories.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

/// A directory of root's, 0755.
fn root_dir(path: &str) -> DirectoryResource {
    DirectoryResource {
        path: path.to_string(),
        mode: 0o755,
        owner: "root".into(),
        group: "root".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::{debian_facts, state};
    use crate::core::input::playbook::Playbook;
    use crate::core::state::Facts;
    use serde_json::json;

    /// A host without inventory vars of its own.
    fn no_vars() -> crate::core::input::template::HostVars<'static> {
        static NONE: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        crate::core::input::template::HostVars {
            inventory_hostname: "web1",
            address: "192.0.2.7",
            vars: &NONE,
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
            include_str!("../../../playbooks/docker-ssh.yaml").to_string(),
            format!(
                "{}firewall:\n  docker_from: [10.0.0.0/8]\n  ssh_from: [2001:db8::/32]\n",
                include_str!("../../../playbooks/docker-tls.yaml")
            ),
        ];
        let own: std::collections::BTreeMap<String, String> =
            [("greeting".to_string(), "hi".to_string())].into();
        let vars = crate::core::input::template::HostVars {
            vars: &own,
            ..no_vars()
        };
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
                    ca_pem: b"CA".as_slice().into(),
                    cert_pem: b"CERT".to_vec(),
                    key_pem: b"KEY".to_vec(),
                },
            ] {
                let bare = Facts {
                    dockerd_path: Some("/usr/local/bin/dockerd".into()),
                    nft_path: Some("/usr/sbin/nft".into()),
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

    /// `access: ssh` on a host secured with TLS: the unix socket alone, the
    /// TLS keys gone from daemon.json, no TLS file managed, and the files
    /// left on the host said.
    #[test]
    fn the_ssh_way_closes_the_tls_listener_and_says_the_files_stay() {
        let playbook = Playbook::parse(
            "p.yaml".as_ref(),
            include_str!("../../../playbooks/docker-ssh.yaml"),
        )
        .unwrap();
        let mut actual = state(debian_facts());
        let before = r#"{"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"], "tls": true, "tlsverify": true, "tlscacert": "/etc/docker/tls/ca.pem", "tlscert": "/etc/docker/tls/server-cert.pem", "tlskey": "/etc/docker/tls/server-key.pem", "debug": true}"#;
        actual.paths.insert(
            "/etc/docker/daemon.json".into(),
            crate::core::fixtures::present(before.as_bytes(), 0o644),
        );
        let desired = expand(&playbook, &no_vars(), &actual, &TlsMaterial::CaPending).unwrap();
        assert!(
            !desired
                .files
                .iter()
                .any(|f| f.path.starts_with("/etc/docker/tls"))
        );
        assert_eq!(desired.ca_file, None);
        let Content::DaemonJson {
            managed,
            own_whole_file,
        } = &desired
            .files
            .iter()
            .find(|f| f.path == "/etc/docker/daemon.json")
            .unwrap()
            .content
        else {
            panic!("daemon.json is merged");
        };
        let document =
            docker::daemon_json::desired(Some(before.as_bytes()), managed, *own_whole_file)
                .unwrap();
        assert_eq!(
            document["hosts"],
            serde_json::json!(["unix:///var/run/docker.sock"])
        );
        for key in ["tls", "tlsverify", "tlscacert", "tlscert", "tlskey"] {
            assert!(!document.contains_key(key), "{key}");
        }
        assert_eq!(
            document["debug"],
            serde_json::json!(true),
            "hand-set keys kept"
        );
        assert!(desired.notes.iter().any(|(_, n)| n.contains("its TLS files (/etc/docker/tls/ca.pem, /etc/docker/tls/server-cert.pem, /etc/docker/tls/server-key.pem) stay on the host")), "{:?}", desired.notes);
        let drop_in = desired
            .files
            .iter()
            .find(|f| f.path.ends_with("override.conf"))
            .unwrap();
        let Content::Bytes(text) = &drop_in.content else {
            panic!()
        };
        let text = String::from_utf8_lossy(text);
        assert!(!text.contains("-H"), "daemon.json names the socket: {text}");
        // dial-stdio needs a docker CLI on the host: its absence is said.
        assert!(
            desired
                .warnings
                .iter()
                .any(|w| w.contains("has no docker CLI")),
            "{:?}",
            desired.warnings
        );
        actual.facts.docker_cli_path = Some("/usr/bin/docker".into());
        let with_cli = expand(&playbook, &no_vars(), &actual, &TlsMaterial::CaPending).unwrap();
        assert!(!with_cli.warnings.iter().any(|w| w.contains("docker CLI")));
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
            ca_pem: b"CA".as_slice().into(),
            cert_pem: b"CERT".to_vec(),
            key_pem: b"KEY".to_vec(),
        };
        let actual = state(debian_facts());
        let vars = no_vars();
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
            ca_pem: b"CA".as_slice().into(),
            cert_pem: b"CERT".to_vec(),
            key_pem: b"KEY".to_vec(),
        };
        let resources = expand(&playbook, &no_vars(), &state(debian_facts()), &tls).unwrap();
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
        let old = expand(&playbook, &no_vars(), &state(debian_facts()), &tls).unwrap();
        assert_eq!(old.files[3].validate, None);
        let facts = Facts {
            dockerd_can_validate: true,
            ..debian_facts()
        };
        let new = expand(&playbook, &no_vars(), &state(facts), &tls).unwrap();
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
        let resources = expand(&playbook, &no_vars(), &actual, &TlsMaterial::CaPending).unwrap();
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
            expand(&playbook, &no_vars(), &actual, &TlsMaterial::CaPending)
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
            &no_vars(),
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
        let own = [("site", "lab")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let vars = crate::core::input::template::HostVars {
            inventory_hostname: "web1",
            address: "192.0.2.7",
            vars: &own,
        };
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
            &crate::core::input::template::HostVars {
                vars: &Default::default(),
                ..vars
            },
            &state(Facts::default()),
            &TlsMaterial::CaPending,
        )
        .unwrap_err();
        assert_eq!(err, "template for /etc/motd: unknown variable `site`");
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
            &no_vars(),
            &state(facts),
            &TlsMaterial::CaPending,
        )
        .unwrap();
        assert_eq!(resources.warnings.len(), 1);
        assert!(resources.warnings[0].contains("05-site.conf sorts before"));
    }
}
