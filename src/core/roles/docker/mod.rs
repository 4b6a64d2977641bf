//! The docker role's knowledge: daemon.json (merging, its schema by
//! dockerd release), the systemd unit and the drop-in dockhand writes,
//! dockerd's command-line flags, and what dockerd holds (the workload).

pub mod daemon_json;
pub mod daemon_schema;
pub mod flags;
pub mod override_conf;
pub mod unit;
pub mod workload;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use super::{Check, Content, FileResource, Resources, TlsMaterial, parent, root_dir};
use crate::core::input::playbook::{Access, DockerRole, Handler};
use crate::core::state::{ActualPath, ActualState, Facts};

/// The file names dockerd is pointed at, in `tls_dir`.
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "server-cert.pem";
pub const KEY_FILE: &str = "server-key.pem";

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

/// A file of the docker role's TLS directory.
pub(super) fn tls_file(docker: &DockerRole, name: &str) -> String {
    format!("{}/{name}", docker.tls_dir.trim_end_matches('/'))
}

/// What the CA, server certificate and key files hold, from the material.
pub(super) fn tls_contents(tls: &TlsMaterial) -> [Content; 3] {
    match tls {
        TlsMaterial::Ready {
            ca_pem,
            cert_pem,
            key_pem,
        } => [
            Content::Bytes(ca_pem.to_vec()),
            Content::Bytes(cert_pem.clone()),
            Content::Bytes(key_pem.clone()),
        ],
        TlsMaterial::CertPending { ca_pem, reason } => [
            Content::Bytes(ca_pem.to_vec()),
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

/// The role's paths: the TLS directory and its three files (the key
/// secret), daemon.json and the unit's drop-in, each with its directory.
pub(super) fn paths(
    docker: &DockerRole,
    directories: &mut Vec<String>,
    files: &mut Vec<(String, bool)>,
) {
    if docker.access == Access::Tls {
        directories.push(docker.tls_dir.clone());
        for name in [CA_FILE, CERT_FILE, KEY_FILE] {
            files.push((tls_file(docker, name), name == KEY_FILE));
        }
    }
    directories.push(parent(&docker.daemon_json_path).to_string());
    files.push((docker.daemon_json_path.clone(), false));
    directories.push(parent(&docker.unit_drop_in).to_string());
    files.push((docker.unit_drop_in.clone(), false));
}

/// The role for one host: the TLS files, daemon.json (the managed keys,
/// merged on the host into what it has) and the unit's drop-in that lets
/// daemon.json speak (its `ExecStart=` reset).
pub(super) fn expand(
    docker: &DockerRole,
    actual: &ActualState,
    tls: &TlsMaterial,
    out: &mut Resources,
) -> Result<(), String> {
    out.docker_users = docker.ssh_users.clone();
    if docker.access == Access::Tls {
        tls_files(docker, tls, out);
    } else if actual.facts.dockerd_path.is_some() && actual.facts.docker_cli_path.is_none() {
        out.warnings.push(
            "this host has no docker CLI, which `docker -H ssh://` runs here (`docker system dial-stdio`): install docker-cli (Debian 13's docker.io only recommends it); verify fails until then"
                .into(),
        );
    }
    let managed = managed_keys(docker);
    let document = document(docker, actual, &managed, out);
    let unit = override_conf::build(
        &actual.facts,
        &override_conf::Target {
            own_path: &docker.unit_drop_in,
            daemon_json: &docker.daemon_json_path,
            daemon_keys: &daemon_json::clash_keys(&document),
            hosts: &listeners(&document),
        },
    )?;
    out.warnings.extend(unit.warnings.iter().cloned());
    out.notes.extend(
        unit.notes
            .iter()
            .map(|note| (docker.unit_drop_in.clone(), note.clone())),
    );
    out.directories
        .push(root_dir(parent(&docker.daemon_json_path)));
    out.files.push(FileResource {
        validate: validation(&actual.facts, &unit.command),
        ..FileResource::root_owned(
            docker.daemon_json_path.clone(),
            Content::DaemonJson {
                managed,
                own_whole_file: docker.own_daemon_json,
            },
            0o644,
            vec![Handler::RestartDocker],
        )
    });
    out.directories.push(root_dir(parent(&docker.unit_drop_in)));
    out.files.push(FileResource::root_owned(
        docker.unit_drop_in.clone(),
        Content::Bytes(unit.text.into_bytes()),
        0o644,
        vec![Handler::DaemonReload, Handler::RestartDocker],
    ));
    Ok(())
}

/// The CA and the server certificate (0444) and key (0400, secret).
fn tls_files(docker: &DockerRole, tls: &TlsMaterial, out: &mut Resources) {
    out.directories.push(root_dir(&docker.tls_dir));
    out.ca_file = Some(tls_file(docker, CA_FILE));
    let [ca, cert, key] = tls_contents(tls);
    for (name, content, mode) in [
        (CA_FILE, ca, 0o444),
        (CERT_FILE, cert, 0o444),
        (KEY_FILE, key, 0o400),
    ] {
        out.files.push(FileResource {
            secret: name == KEY_FILE,
            ..FileResource::root_owned(
                tls_file(docker, name),
                content,
                mode,
                vec![Handler::RestartDocker],
            )
        });
    }
}

/// The keys dockhand manages in daemon.json: the TLS listener and files,
/// then the hardening settings.
fn managed_keys(docker: &DockerRole) -> Map<String, Value> {
    let mut managed = Map::new();
    if docker.access == Access::Ssh {
        // The unix socket alone; the TLS keys go (null: removed).
        managed.insert("hosts".into(), json!(["unix:///var/run/docker.sock"]));
        for key in daemon_json::TLS_KEYS.iter().filter(|k| **k != "hosts") {
            managed.insert(key.to_string(), Value::Null);
        }
        managed.extend(daemon_settings(docker));
        return managed;
    }
    managed.insert(
        "hosts".into(),
        json!(["unix:///var/run/docker.sock", docker.listen]),
    );
    managed.insert("tls".into(), json!(true));
    managed.insert("tlsverify".into(), json!(true));
    managed.insert("tlscacert".into(), json!(tls_file(docker, CA_FILE)));
    managed.insert("tlscert".into(), json!(tls_file(docker, CERT_FILE)));
    managed.insert("tlskey".into(), json!(tls_file(docker, KEY_FILE)));
    managed.extend(daemon_settings(docker));
    managed
}

/// The document the host will have: hand-set keys kept unless the
/// playbook owns the whole file. One that cannot be read is the plan's
/// error to report; the managed keys stand in here. What it weakens, the
/// data root it moves to, the live-restore interim and the plain listeners
/// it closes go to `out`.
fn document(
    docker: &DockerRole,
    actual: &ActualState,
    managed: &Map<String, Value>,
    out: &mut Resources,
) -> Map<String, Value> {
    let now = actual.path(&docker.daemon_json_path).content;
    let document = daemon_json::desired(now.as_deref(), managed, docker.own_daemon_json)
        .unwrap_or_else(|_| managed.clone());
    out.warnings
        .extend(daemon_json::weakening(&document, managed));
    let before = now.as_deref().and_then(|b| daemon_json::parse(b).ok());
    out.data_root_move =
        workload::data_root_move(before.as_ref(), &document, actual.facts.workload.as_ref());
    out.allow_new_data_root = docker.allow_new_data_root;
    out.live_restore_interim = live_restore_interim(
        &docker.daemon_json_path,
        &actual.path(&docker.daemon_json_path),
        before.as_ref(),
        &document,
    );
    if let Some(before) = before {
        let tls_files: Vec<&str> = ["tlscacert", "tlscert", "tlskey"]
            .iter()
            .filter(|key| !document.contains_key(**key))
            .filter_map(|key| before.get(*key).and_then(Value::as_str))
            .collect();
        if !tls_files.is_empty() {
            out.notes.push((
                docker.daemon_json_path.clone(),
                format!(
                    "dockerd no longer listens on TCP with TLS; its TLS files ({}) stay on the host, unused (dockhand deletes no file: remove them when no rollback needs them)",
                    tls_files.join(", ")
                ),
            ));
        }
        for listener in daemon_json::closed_plain_listeners(&before, &document) {
            out.notes.push((
                docker.daemon_json_path.clone(),
                format!(
                    "the plain-TCP listener {listener} (`hosts` in daemon.json) is closed: it served the Docker API without TLS"
                ),
            ));
        }
    }
    document
}

/// The document's `hosts`.
fn listeners(document: &Map<String, Value>) -> Vec<String> {
    document
        .get("hosts")
        .and_then(|h| h.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// dockerd 23 and later check a configuration without starting, together
/// with the flags the new drop-in passes (a clash between the two is what
/// stops dockerd most often); older ones (Debian 12 ships 20.10) cannot,
/// and a daemon.json they refuse is caught by the restart and rolled back.
fn validation(facts: &Facts, command: &[String]) -> Option<Check> {
    let (program, flags) = command.split_first()?;
    facts.dockerd_can_validate.then(|| {
        let mut words = vec![
            program.clone(),
            "--validate".into(),
            "--config-file".into(),
            "%s".into(),
        ];
        words.extend(flags.iter().cloned());
        Check::Program(words)
    })
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
