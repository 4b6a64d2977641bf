//! `dockhand audit`: where a host stands, judged from what one gather
//! saw. The rules follow the CIS Docker Benchmark's daemon configuration
//! (section 2) and daemon configuration files (section 3) where they can
//! be judged over SSH, read from the daemon's *effective* configuration
//! (daemon.json, then the unit's flags and environment, then dockerd's
//! defaults), plus sshd's effective settings (`sshd -T`) against current
//! guidance. Pure: a table of rules over gathered state.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::core::roles::docker::flags;
use crate::core::roles::docker::unit::{self, ServiceSettings};
use crate::core::state::{ActualPath, ActualState};

/// How a rule came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Info,
    Warn,
    Fail,
}

/// One finding: the rule's ID (the CIS number where there is one), the
/// verdict, a one-line reason and the fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub title: &'static str,
    pub verdict: Verdict,
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

/// Where the files the rules look at are.
pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";
pub const DEFAULT_ENV: &str = "/etc/default/docker";
pub const DOCKER_DIR: &str = "/etc/docker";
pub const DOCKER_SOCK: &str = "/var/run/docker.sock";
pub const UNIT_DIRS: [&str; 3] = [
    "/etc/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// Every path an audit gathers: the unit files where they may be, the
/// configuration files, the socket and the default TLS files.
pub fn paths() -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for dir in UNIT_DIRS {
        out.push((format!("{dir}/docker.service"), false));
        out.push((format!("{dir}/docker.socket"), false));
    }
    for path in [DOCKER_DIR, DAEMON_JSON, DEFAULT_ENV, DOCKER_SOCK] {
        out.push((path.into(), false));
    }
    for (path, secret) in tls_defaults() {
        out.push((path.into(), secret));
    }
    out
}

fn tls_defaults() -> [(&'static str, bool); 3] {
    [
        ("/etc/docker/tls/ca.pem", false),
        ("/etc/docker/tls/server-cert.pem", false),
        ("/etc/docker/tls/server-key.pem", true),
    ]
}

/// The daemon's effective settings: what daemon.json says, and what the
/// unit's command line and environment pass as flags.
pub struct Effective {
    pub file: Map<String, Value>,
    /// Flag name → values (`--dns a --dns b`), from the running command line.
    pub flags: Vec<(String, Option<String>)>,
}

impl Effective {
    pub fn read(actual: &ActualState) -> Effective {
        let file = actual
            .path(DAEMON_JSON)
            .content
            .and_then(|bytes| crate::core::roles::docker::daemon_json::parse(&bytes).ok())
            .unwrap_or_default();
        let files: Vec<&unit::UnitFile> = actual.facts.docker_unit_files.iter().collect();
        let settings = ServiceSettings::read(&files);
        let words = settings
            .exec_start
            .as_ref()
            .map(|e| e.value.clone())
            .or_else(|| actual.facts.docker_exec_start.last().cloned())
            .unwrap_or_default();
        let variables = settings.variables(&|path| {
            actual
                .facts
                .docker_env_files
                .iter()
                .find(|f| f.path == path)
                .map(|f| f.text.clone())
        });
        let expanded: Vec<String> = unit::expand(words.get(1..).unwrap_or(&[]), &variables)
            .into_iter()
            .map(|w| w.text)
            .collect();
        let flags = flags::options(&expanded)
            .into_iter()
            .map(|o| (o.name.clone(), o.value().map(str::to_string)))
            .collect();
        Effective { file, flags }
    }

    /// A boolean setting: daemon.json, else a flag (`--icc=false`,
    /// `--live-restore`), else dockerd's default.
    fn flag_bool(&self, key: &str, default: bool) -> bool {
        if let Some(value) = self.file.get(key).and_then(Value::as_bool) {
            return value;
        }
        match self.flags.iter().rev().find(|(name, _)| name == key) {
            Some((_, Some(value))) => value != "false",
            Some((_, None)) => true,
            None => default,
        }
    }

    fn text(&self, key: &str, flag: &str) -> Option<String> {
        self.file
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                self.flags
                    .iter()
                    .rev()
                    .find(|(name, _)| name == flag)
                    .and_then(|(_, v)| v.clone())
            })
    }

    fn list(&self, key: &str, flag: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .file
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        out.extend(
            self.flags
                .iter()
                .filter(|(name, _)| name == flag)
                .filter_map(|(_, v)| v.clone()),
        );
        out
    }
}

/// The rules about dockerd's socket: its owner and mode (3.15+3.16), and
/// no container given it (5.31). With `access: ssh` the socket is the one
/// way in, so verify holds a host to them.
pub const SOCKET_RULES: [&str; 2] = ["3.15+3.16", "5.31"];

/// Every finding for a host, in rule order.
pub fn audit(actual: &ActualState) -> Vec<Finding> {
    let effective = Effective::read(actual);
    let mut out = daemon_rules(actual, &effective);
    out.push(fence_rule(actual, &effective));
    out.extend(file_rules(actual, &effective));
    out.extend(sshd_rules(actual));
    out.extend(workload_rules(actual));
    out
}

/// What the daemon runs: containers given the daemon's socket, and
/// containers left behind in a data root the daemon no longer uses.
fn workload_rules(actual: &ActualState) -> Vec<Finding> {
    use Verdict::*;
    let Some(workload) = &actual.facts.workload else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let exposed: Vec<&str> = workload
        .containers
        .iter()
        .filter(|c| c.mounts_docker_socket)
        .map(|c| c.label())
        .collect();
    out.push(finding(
        "5.31",
        "the Docker socket is not mounted inside any container",
        if exposed.is_empty() { Pass } else { Fail },
        if exposed.is_empty() {
            format!("none of {} container(s)", workload.containers.len())
        } else {
            format!("mounted in {}", exposed.join(", "))
        },
        "recreate those containers without the /var/run/docker.sock mount: it is root on the host",
    ));
    let default_root = "/var/lib/docker";
    let left = actual.facts.default_root_containers;
    let moved = !workload.root_dir.is_empty() && workload.root_dir != default_root;
    out.push(finding(
        "DATA-1",
        "no containers are left outside the daemon's data root",
        if moved && left > 0 { Warn } else { Pass },
        if moved && left > 0 {
            format!(
                "{left} container(s) in {default_root}, which the daemon (data root {}) no longer sees",
                workload.root_dir
            )
        } else {
            format!("data root {}", workload.root_dir)
        },
        "move what is still needed to the new data root (docker save/load, volumes by copy), or go back to the old settings",
    ));
    out
}

fn finding(
    id: &'static str,
    title: &'static str,
    verdict: Verdict,
    reason: impl Into<String>,
    fix: &str,
) -> Finding {
    Finding {
        id,
        title,
        verdict,
        reason: reason.into(),
        fix: if verdict == Verdict::Pass {
            String::new()
        } else {
            fix.to_string()
        },
    }
}

/// Daemon settings judged by one boolean: the rule, its title, the key,
/// dockerd's default, the value that passes, the verdict otherwise, and
/// the fix.
type FlagRule = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    bool,
    Verdict,
    &'static str,
);

const ICC: FlagRule = (
    "2.2",
    "network traffic between containers on the default bridge is restricted",
    "icc",
    true,
    false,
    Verdict::Fail,
    "set `icc: false` in daemon.json (the docker role does)",
);
const IPTABLES: FlagRule = (
    "2.4",
    "Docker may make changes to iptables",
    "iptables",
    true,
    true,
    Verdict::Fail,
    "remove `iptables: false`",
);
const LATER_FLAGS: [FlagRule; 4] = [
    (
        "2.14",
        "containers are restricted from acquiring new privileges",
        "no-new-privileges",
        false,
        true,
        Verdict::Fail,
        "set `no-new-privileges: true`",
    ),
    (
        "2.15",
        "live restore is enabled",
        "live-restore",
        false,
        true,
        Verdict::Fail,
        "set `live-restore: true`",
    ),
    (
        "2.16",
        "the userland proxy is disabled",
        "userland-proxy",
        true,
        false,
        Verdict::Fail,
        "set `userland-proxy: false`",
    ),
    (
        "2.18",
        "experimental features are off",
        "experimental",
        false,
        false,
        Verdict::Warn,
        "remove `experimental: true`",
    ),
];

fn flag_rule(d: &Effective, rule: &FlagRule) -> Finding {
    let (id, title, key, default, passes, otherwise, fix) = *rule;
    let value = d.flag_bool(key, default);
    let verdict = if value == passes {
        Verdict::Pass
    } else {
        otherwise
    };
    finding(id, title, verdict, format!("{key} is {value}"), fix)
}

fn daemon_rules(actual: &ActualState, d: &Effective) -> Vec<Finding> {
    use Verdict::*;
    if actual.facts.docker_unit_files.is_empty() && actual.facts.docker_exec_start.is_empty() {
        return vec![finding(
            "2.0",
            "docker is installed",
            Info,
            "no docker.service on the host: the daemon rules do not apply",
            "",
        )];
    }
    let level = d
        .text("log-level", "log-level")
        .unwrap_or_else(|| "info".into());
    let insecure = d.list("insecure-registries", "insecure-registry");
    let userns = d.text("userns-remap", "userns-remap").unwrap_or_default();
    let mut out = vec![
        flag_rule(d, &ICC),
        finding(
            "2.3",
            "the logging level is info",
            if level == "info" { Pass } else { Warn },
            format!("log-level is {level}"),
            "set `log-level: info`",
        ),
        flag_rule(d, &IPTABLES),
        finding(
            "2.5",
            "insecure registries are not used",
            if insecure.is_empty() { Pass } else { Fail },
            if insecure.is_empty() {
                "none".to_string()
            } else {
                format!("insecure registries: {}", insecure.join(", "))
            },
            "remove `insecure-registries` and use registries with TLS",
        ),
        tls_rule(d),
        finding(
            "2.9",
            "user namespaces are enabled",
            if userns.is_empty() { Warn } else { Pass },
            if userns.is_empty() {
                "userns-remap is not set: root in a container is root on the host".to_string()
            } else {
                format!("userns-remap is {userns}")
            },
            "set `userns-remap: default`",
        ),
    ];
    out.extend(LATER_FLAGS.iter().map(|rule| flag_rule(d, rule)));
    out
}

/// 2.7: a TCP listener only with TLS and client verification.
fn tls_rule(d: &Effective) -> Finding {
    const TITLE: &str = "TLS authentication is configured where TCP is exposed";
    let hosts = d.list("hosts", "host");
    let tcp: Vec<&str> = hosts
        .iter()
        .filter(|h| h.starts_with("tcp://"))
        .map(String::as_str)
        .collect();
    let verify = d.flag_bool("tlsverify", false);
    let tls_files = d.text("tlscacert", "tlscacert").is_some()
        && d.text("tlscert", "tlscert").is_some()
        && d.text("tlskey", "tlskey").is_some();
    if tcp.is_empty() {
        finding(
            "2.7",
            TITLE,
            Verdict::Pass,
            "the daemon listens on no TCP socket",
            "",
        )
    } else if verify && tls_files {
        finding(
            "2.7",
            TITLE,
            Verdict::Pass,
            format!("{} with tlsverify and certificates", tcp.join(", ")),
            "",
        )
    } else {
        finding(
            "2.7",
            TITLE,
            Verdict::Fail,
            format!("{} without client verification", tcp.join(", ")),
            "set tls, tlsverify and the certificate paths (`dockhand apply` with the docker role)",
        )
    }
}

/// NET-1 (dockhand's own): dockerd's TCP port answers only the networks
/// that administer it. dockhand sees its own fence (`table inet
/// dockhand`); another firewall may fence the port too, hence a warning,
/// not a failure.
fn fence_rule(actual: &ActualState, d: &Effective) -> Finding {
    const TITLE: &str = "dockerd's TCP port answers only the admin networks";
    let open: Vec<String> = d
        .list("hosts", "host")
        .into_iter()
        .filter(|h| h.starts_with("tcp://"))
        .filter(|h| {
            let port = h.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
            !port.is_some_and(|p| actual.facts.fenced_ports.contains(&p))
        })
        .collect();
    if open.is_empty() {
        let reason = if d
            .list("hosts", "host")
            .iter()
            .any(|h| h.starts_with("tcp://"))
        {
            "every TCP listener is fenced by dockhand's nftables table"
        } else {
            "the daemon listens on no TCP socket"
        };
        finding("NET-1", TITLE, Verdict::Pass, reason, "")
    } else {
        finding(
            "NET-1",
            TITLE,
            Verdict::Warn,
            format!(
                "{} answers every address (no dockhand fence)",
                open.join(", ")
            ),
            "list the admin networks in the playbook's firewall.docker_from (or fence the port in your own firewall)",
        )
    }
}

/// Ownership and a mode no wider than `mode`, for a path that should exist
/// (FAIL when wrong) or may be absent (INFO then).
fn file_rule(
    id: &'static str,
    title: &'static str,
    path: &str,
    have: &ActualPath,
    owner: &str,
    widest: u32,
) -> Finding {
    if !have.exists {
        return finding(id, title, Verdict::Info, format!("{path} is not there"), "");
    }
    let (want_owner, want_group) = owner.split_once(':').unwrap_or((owner, owner));
    let owned = have.owner == want_owner && have.group == want_group;
    let mode = have.mode & 0o7777;
    let narrow = mode & !widest == 0;
    let reason = format!("{path} is {}:{} {:04o}", have.owner, have.group, mode);
    if owned && narrow {
        finding(id, title, Verdict::Pass, reason, "")
    } else {
        let fix = format!("chown {owner} {path}; chmod {widest:04o} {path}");
        Finding {
            fix,
            ..finding(id, title, Verdict::Fail, reason, "")
        }
    }
}

fn file_rules(actual: &ActualState, d: &Effective) -> Vec<Finding> {
    let first = |name: &str| {
        UNIT_DIRS
            .iter()
            .map(|dir| format!("{dir}/{name}"))
            .find(|p| actual.path(p).exists)
            .unwrap_or_else(|| format!("/lib/systemd/system/{name}"))
    };
    let service = first("docker.service");
    let socket = first("docker.socket");
    let tls = |key: &str, default: &str| d.text(key, key).unwrap_or_else(|| default.to_string());
    let [(ca, _), (cert, _), (key, _)] = tls_defaults();
    let (ca, cert, key) = (
        tls("tlscacert", ca),
        tls("tlscert", cert),
        tls("tlskey", key),
    );
    let rules: [(&'static str, &'static str, &str, &str, u32); 9] = [
        (
            "3.1+3.2",
            "docker.service is root:root and 0644 or narrower",
            &service,
            "root:root",
            0o644,
        ),
        (
            "3.3+3.4",
            "docker.socket is root:root and 0644 or narrower",
            &socket,
            "root:root",
            0o644,
        ),
        (
            "3.5+3.6",
            "/etc/docker is root:root and 0755 or narrower",
            DOCKER_DIR,
            "root:root",
            0o755,
        ),
        (
            "3.9+3.10",
            "the TLS CA certificate is root:root and 0444 or narrower",
            &ca,
            "root:root",
            0o444,
        ),
        (
            "3.11+3.12",
            "the server certificate is root:root and 0444 or narrower",
            &cert,
            "root:root",
            0o444,
        ),
        (
            "3.13+3.14",
            "the server key is root:root and exactly 0400",
            &key,
            "root:root",
            0o400,
        ),
        (
            "3.15+3.16",
            "docker.sock is root:docker and 0660 or narrower",
            DOCKER_SOCK,
            "root:docker",
            0o660,
        ),
        (
            "3.17+3.18",
            "daemon.json is root:root and 0644 or narrower",
            DAEMON_JSON,
            "root:root",
            0o644,
        ),
        (
            "3.19+3.20",
            "/etc/default/docker is root:root and 0644 or narrower",
            DEFAULT_ENV,
            "root:root",
            0o644,
        ),
    ];
    let mut out: Vec<Finding> = rules
        .iter()
        .map(|(id, title, path, owner, mode)| {
            file_rule(id, title, path, &actual.path(path), owner, *mode)
        })
        .collect();
    // The key is never readable by anyone but root, not even by its group.
    if let Some(key_finding) = out.iter_mut().find(|f| f.id == "3.13+3.14")
        && key_finding.verdict == Verdict::Pass
        && actual.path(&key).mode & 0o777 != 0o400
    {
        key_finding.verdict = Verdict::Fail;
        key_finding.fix = format!("chmod 0400 {key}");
    }
    out
}

/// Algorithms current guidance (and ssh-audit) rejects outright.
const WEAK: &[(&str, &[&str])] = &[
    (
        "ciphers",
        &["cbc", "3des", "arcfour", "blowfish", "cast128"],
    ),
    ("macs", &["md5", "sha1", "umac-64", "ripemd"]),
    (
        "kexalgorithms",
        &[
            "group1-sha1",
            "group14-sha1",
            "group-exchange-sha1",
            "ecdh-sha2-nistp",
        ],
    ),
    (
        "hostkeyalgorithms",
        &["ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp", "sk-ecdsa"],
    ),
];

fn sshd_rules(actual: &ActualState) -> Vec<Finding> {
    use Verdict::*;
    let sshd = &actual.facts.sshd_effective;
    if sshd.is_empty() {
        return vec![finding(
            "SSH-0",
            "sshd's effective settings can be read",
            Warn,
            actual
                .facts
                .sshd_error
                .clone()
                .unwrap_or_else(|| "`sshd -T` said nothing".into()),
            "fix sshd's configuration so that `sshd -T` works",
        )];
    }
    let get = |key: &str| sshd.get(key).map(String::as_str).unwrap_or("");
    let mut out = vec![
        finding(
            "SSH-1",
            "passwords are not accepted",
            if get("passwordauthentication") == "no" {
                Pass
            } else {
                Fail
            },
            format!("passwordauthentication {}", get("passwordauthentication")),
            "PasswordAuthentication no (the sshd role sets it)",
        ),
        finding(
            "SSH-2",
            "keyboard-interactive logins are off",
            if get("kbdinteractiveauthentication") == "no" {
                Pass
            } else {
                Fail
            },
            format!(
                "kbdinteractiveauthentication {}",
                get("kbdinteractiveauthentication")
            ),
            "KbdInteractiveAuthentication no",
        ),
        finding(
            "SSH-3",
            "root logs in by key only, if at all",
            match get("permitrootlogin") {
                "no" | "prohibit-password" | "without-password" | "forced-commands-only" => Pass,
                _ => Fail,
            },
            format!("permitrootlogin {}", get("permitrootlogin")),
            "PermitRootLogin prohibit-password",
        ),
        finding(
            "SSH-4",
            "few authentication attempts per connection",
            match get("maxauthtries").parse::<u32>() {
                Ok(n) if n <= 4 => Pass,
                _ => Warn,
            },
            format!("maxauthtries {}", get("maxauthtries")),
            "MaxAuthTries 3",
        ),
    ];
    for (index, (keyword, weak)) in WEAK.iter().enumerate() {
        let offered: Vec<&str> = get(keyword).split(',').filter(|s| !s.is_empty()).collect();
        let bad: Vec<&str> = offered
            .iter()
            .copied()
            .filter(|alg| weak.iter().any(|w| alg.contains(w)))
            .collect();
        let id = ["SSH-5", "SSH-6", "SSH-7", "SSH-8"][index];
        let title = [
            "only strong ciphers are offered",
            "only strong MACs are offered",
            "only strong key exchange is offered",
            "only strong host key algorithms are offered",
        ][index];
        out.push(finding(
            id,
            title,
            if bad.is_empty() { Pass } else { Fail },
            if bad.is_empty() {
                format!("{keyword}: {}", offered.join(","))
            } else {
                format!("{keyword} offers {}", bad.join(", "))
            },
            "use the sshd role's algorithm lists (Ciphers, MACs, KexAlgorithms, HostKeyAlgorithms)",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::{Facts, PathKind, UnitFile};

    const PACKAGED: &str = "[Service]\nEnvironmentFile=-/etc/default/docker\nExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\n";

    fn file(mode: u32, owner: &str, group: &str, content: Option<&str>) -> ActualPath {
        ActualPath {
            exists: true,
            kind: Some(PathKind::File),
            mode,
            owner: owner.into(),
            group: group.into(),
            content: content.map(|c| c.as_bytes().to_vec()),
            ..ActualPath::default()
        }
    }

    /// A Debian host as installed: packaged unit, no daemon.json, sshd's defaults.
    fn fresh() -> ActualState {
        let mut state = ActualState {
            facts: Facts {
                docker_unit_files: vec![UnitFile {
                    path: "/lib/systemd/system/docker.service".into(),
                    text: PACKAGED.into(),
                }],
                ..Facts::default()
            },
            ..ActualState::default()
        };
        for (path, mode, group) in [
            ("/lib/systemd/system/docker.service", 0o644, "root"),
            ("/lib/systemd/system/docker.socket", 0o644, "root"),
            ("/etc/default/docker", 0o644, "root"),
            ("/var/run/docker.sock", 0o660, "docker"),
        ] {
            state
                .paths
                .insert(path.into(), file(mode, "root", group, None));
        }
        state.paths.insert(
            DOCKER_DIR.into(),
            ActualPath {
                kind: Some(PathKind::Directory),
                ..file(0o755, "root", "root", None)
            },
        );
        for (key, value) in [
            ("passwordauthentication", "yes"),
            ("kbdinteractiveauthentication", "no"),
            ("permitrootlogin", "without-password"),
            ("maxauthtries", "6"),
            (
                "ciphers",
                "chacha20-poly1305@openssh.com,aes128-ctr,aes256-gcm@openssh.com",
            ),
            (
                "macs",
                "umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha1",
            ),
            (
                "kexalgorithms",
                "sntrup761x25519-sha512@openssh.com,curve25519-sha256,ecdh-sha2-nistp256",
            ),
            (
                "hostkeyalgorithms",
                "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512",
            ),
        ] {
            state.facts.sshd_effective.insert(key.into(), value.into());
        }
        state
    }

    #[test]
    fn workload_rules_name_exposed_sockets_and_containers_left_behind() {
        use crate::core::roles::docker::workload::{Container, Workload};
        let find = |state: &ActualState, id: &str| audit(state).into_iter().find(|f| f.id == id);
        // No workload gathered (docker down): no workload rules.
        assert!(find(&fresh(), "5.31").is_none());
        let mut state = fresh();
        state.facts.workload = Some(Workload {
            root_dir: "/var/lib/docker".into(),
            containers: vec![
                Container {
                    id: "a".repeat(64),
                    name: "web".into(),
                    ..Default::default()
                },
                Container {
                    id: "b".repeat(64),
                    name: "agent".into(),
                    mounts_docker_socket: true,
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        state.facts.default_root_containers = 2;
        let socket = find(&state, "5.31").unwrap();
        assert_eq!(
            (socket.verdict, socket.reason.as_str()),
            (Verdict::Fail, "mounted in agent")
        );
        assert_eq!(find(&state, "DATA-1").unwrap().verdict, Verdict::Pass);
        // Remapped: the daemon's root moved; the two old containers stay behind.
        let workload = state.facts.workload.as_mut().unwrap();
        workload.root_dir = "/var/lib/docker/100000.100000".into();
        workload.containers.clear();
        let left = find(&state, "DATA-1").unwrap();
        assert_eq!(left.verdict, Verdict::Warn);
        assert!(left.reason.starts_with("2 container(s) in /var/lib/docker, which the daemon (data root /var/lib/docker/100000.100000)"), "{}", left.reason);
        assert_eq!(find(&state, "5.31").unwrap().verdict, Verdict::Pass);
    }

    fn verdicts(state: &ActualState) -> Vec<(&'static str, Verdict)> {
        audit(state)
            .into_iter()
            .map(|f| (f.id, f.verdict))
            .collect()
    }

    #[test]
    fn a_fresh_host_fails_what_a_user_would_expect() {
        use Verdict::*;
        let found = verdicts(&fresh());
        for (id, expected) in [
            ("2.2", Fail),
            ("2.3", Pass),
            ("2.4", Pass),
            ("2.5", Pass),
            ("2.7", Pass),
            ("2.9", Warn),
            ("2.14", Fail),
            ("2.15", Fail),
            ("2.16", Fail),
            ("2.18", Pass),
            ("3.1+3.2", Pass),
            ("3.5+3.6", Pass),
            ("3.13+3.14", Info),
            ("3.15+3.16", Pass),
            ("3.17+3.18", Info),
            ("SSH-1", Fail),
            ("SSH-2", Pass),
            ("SSH-3", Pass),
            ("SSH-4", Warn),
            ("SSH-5", Pass),
            ("SSH-6", Fail),
            ("SSH-7", Fail),
            ("SSH-8", Fail),
        ] {
            assert!(found.contains(&(id, expected)), "{id}: {found:?}");
        }
    }

    #[test]
    fn each_daemon_rule_is_read_from_the_effective_configuration() {
        use Verdict::*;
        let cases: &[(&str, &str, &str, Verdict)] = &[
            // (daemon.json, DOCKER_OPTS, rule, verdict)
            (r#"{"icc": false}"#, "", "2.2", Pass),
            ("{}", "--icc=false", "2.2", Pass),
            (r#"{"log-level": "debug"}"#, "", "2.3", Warn),
            (r#"{"iptables": false}"#, "", "2.4", Fail),
            ("{}", "--insecure-registry r:5000", "2.5", Fail),
            (r#"{"hosts": ["tcp://0.0.0.0:2375"]}"#, "", "2.7", Fail),
            (
                r#"{"hosts": ["tcp://0.0.0.0:2376"], "tlsverify": true, "tlscacert": "/a", "tlscert": "/b", "tlskey": "/c"}"#,
                "",
                "2.7",
                Pass,
            ),
            ("{}", "-H tcp://0.0.0.0:2375", "2.7", Fail),
            (r#"{"userns-remap": "default"}"#, "", "2.9", Pass),
            ("{}", "--no-new-privileges", "2.14", Pass),
            (r#"{"live-restore": true}"#, "", "2.15", Pass),
            (r#"{"userland-proxy": false}"#, "", "2.16", Pass),
            (r#"{"experimental": true}"#, "", "2.18", Warn),
        ];
        for (json, opts, id, expected) in cases {
            let mut state = fresh();
            state
                .paths
                .insert(DAEMON_JSON.into(), file(0o644, "root", "root", Some(json)));
            state.facts.docker_env_files = vec![UnitFile {
                path: DEFAULT_ENV.into(),
                text: format!("DOCKER_OPTS=\"{opts}\"\n"),
            }];
            let found = verdicts(&state);
            assert!(
                found.contains(&(*id, *expected)),
                "{json} {opts}: {id} in {found:?}"
            );
        }
    }

    #[test]
    fn each_file_rule_fails_on_wrong_owners_and_wide_modes() {
        let cases: &[(&str, u32, &str, &str, &str)] = &[
            (
                "/lib/systemd/system/docker.service",
                0o664,
                "root",
                "root",
                "3.1+3.2",
            ),
            (
                "/lib/systemd/system/docker.socket",
                0o644,
                "nobody",
                "root",
                "3.3+3.4",
            ),
            (DOCKER_DIR, 0o777, "root", "root", "3.5+3.6"),
            ("/etc/docker/tls/ca.pem", 0o644, "root", "root", "3.9+3.10"),
            (
                "/etc/docker/tls/server-cert.pem",
                0o444,
                "root",
                "staff",
                "3.11+3.12",
            ),
            (
                "/etc/docker/tls/server-key.pem",
                0o440,
                "root",
                "root",
                "3.13+3.14",
            ),
            (
                "/etc/docker/tls/server-key.pem",
                0o000,
                "root",
                "root",
                "3.13+3.14",
            ),
            (DOCKER_SOCK, 0o666, "root", "docker", "3.15+3.16"),
            (DAEMON_JSON, 0o664, "root", "root", "3.17+3.18"),
            (DEFAULT_ENV, 0o644, "root", "users", "3.19+3.20"),
        ];
        for (path, mode, owner, group, id) in cases {
            let mut state = fresh();
            state
                .paths
                .insert(path.to_string(), file(*mode, owner, group, Some("{}")));
            let finding = audit(&state).into_iter().find(|f| f.id == *id).unwrap();
            assert_eq!(
                finding.verdict,
                Verdict::Fail,
                "{path} {mode:o}: {finding:?}"
            );
            assert!(
                finding.fix.contains("chmod") || finding.fix.contains("chown"),
                "{finding:?}"
            );
        }
    }

    #[test]
    fn each_sshd_rule_fails_on_what_guidance_rejects() {
        let cases: &[(&str, &str, &str, Verdict)] = &[
            ("passwordauthentication", "no", "SSH-1", Verdict::Pass),
            (
                "kbdinteractiveauthentication",
                "yes",
                "SSH-2",
                Verdict::Fail,
            ),
            ("permitrootlogin", "yes", "SSH-3", Verdict::Fail),
            ("maxauthtries", "3", "SSH-4", Verdict::Pass),
            ("ciphers", "aes256-ctr,aes128-cbc", "SSH-5", Verdict::Fail),
            (
                "macs",
                "hmac-sha2-512-etm@openssh.com",
                "SSH-6",
                Verdict::Pass,
            ),
            (
                "kexalgorithms",
                "mlkem768x25519-sha256,curve25519-sha256",
                "SSH-7",
                Verdict::Pass,
            ),
            ("hostkeyalgorithms", "ssh-ed25519", "SSH-8", Verdict::Pass),
            (
                "hostkeyalgorithms",
                "ssh-ed25519,ssh-rsa",
                "SSH-8",
                Verdict::Fail,
            ),
        ];
        for (key, value, id, expected) in cases {
            let mut state = fresh();
            state
                .facts
                .sshd_effective
                .insert(key.to_string(), value.to_string());
            assert!(
                verdicts(&state).contains(&(*id, *expected)),
                "{key} {value}"
            );
        }
    }

    #[test]
    fn the_tls_port_is_open_to_all_until_dockhands_fence_drops_others() {
        let find = |state: &ActualState| {
            audit(state)
                .into_iter()
                .find(|f| f.id == "NET-1")
                .map(|f| (f.verdict, f.reason))
                .unwrap()
        };
        let mut state = fresh();
        assert_eq!(find(&state).0, Verdict::Pass, "no TCP listener");
        state.paths.insert(
            "/etc/docker/daemon.json".into(),
            file(
                0o644,
                "root",
                "root",
                Some(r#"{"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"]}"#),
            ),
        );
        let (verdict, reason) = find(&state);
        assert_eq!(verdict, Verdict::Warn);
        assert_eq!(
            reason,
            "tcp://0.0.0.0:2376 answers every address (no dockhand fence)"
        );
        state.facts.fenced_ports = vec![22];
        assert_eq!(
            find(&state).0,
            Verdict::Warn,
            "sshd's fence is not dockerd's"
        );
        state.facts.fenced_ports = vec![22, 2376];
        assert_eq!(find(&state).0, Verdict::Pass);
    }
}
