//! End to end: hosts with a history, on Debian 12 and 13. A host an
//! earlier tool set up (a docker-machine style drop-in listening on plain
//! TCP 2375, options in `DOCKER_OPTS`) keeps what its user configured,
//! loses the plain listener, and plan says both in words; a hand-written
//! daemon.json with `insecure-registries` is warned about and kept (or
//! replaced when the playbook owns the whole file). Checked with curl, the
//! docker CLI and the host's own process list.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    Release, Scene, TestLab, active_since, assert_success, docker_over_tls, dockhand_pki,
};
use serde_json::Value;

const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");

/// What docker-machine leaves behind, and options in /etc/default/docker.
const DOCKER_MACHINE: &str = "mkdir -p /etc/systemd/system/docker.service.d && \
    printf '[Service]\\nExecStart=\\nExecStart=/usr/sbin/dockerd -H tcp://0.0.0.0:2375 -H unix:///var/run/docker.sock --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\\nEnvironment=\\n' \
      > /etc/systemd/system/docker.service.d/10-machine.conf && \
    echo 'DOCKER_OPTS=\"--dns 192.0.2.53\"' >> /etc/default/docker && \
    systemctl daemon-reload && systemctl restart docker";

/// `(exit code, JSON report, stderr)` of a dockhand command with `--format json`.
fn json(lab: &TestLab, pki: &Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    let output = dockhand_pki(lab, pki, &args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON: {e}\n{}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (output.status.code(), report, stderr)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Plain HTTP to the Docker API on port 2375, as anyone on the network could.
fn plain_api_answers(address: &str) -> bool {
    Command::new("curl")
        .args(["-sf", "--max-time", "5"])
        .arg(format!("http://{address}:2375/version"))
        .output()
        .unwrap()
        .status
        .success()
}

on_both_releases!(
    docker_machine_host,
    "machine",
    a_docker_machine_host_on_bookworm_keeps_its_options_and_loses_its_plain_listener,
    a_docker_machine_host_on_trixie_keeps_its_options_and_loses_its_plain_listener
);

fn docker_machine_host(name: &str, release: Release) {
    let scene = Scene::fresh(name, 1, release);
    let (lab, dir, pki) = (&scene.lab, scene.dir.path(), &scene.pki);
    let host = &format!("{name}-01");
    let address = scene.address(host);
    let inventory = scene.inventory.to_string_lossy();
    lab.ssh(host, DOCKER_MACHINE);
    assert!(
        plain_api_answers(&address),
        "the prepared host serves the API on plain TCP 2375"
    );

    // plan names the drop-in's listener and the option it keeps.
    let (code, plan, stderr) = json(lab, pki, &["plan", "-i", &inventory, PLAYBOOK]);
    assert_eq!(code, Some(0), "{plan:#}\n{stderr}");
    let notes = strings(&plan["hosts"][0]["notes"]).join("\n");
    assert!(
        notes.contains("the plain-TCP listener tcp://0.0.0.0:2375 (ExecStart in /etc/systemd/system/docker.service.d/10-machine.conf) is closed"),
        "{notes}"
    );
    assert!(
        notes.contains("keeps $DOCKER_OPTS from /etc/default/docker (`--dns 192.0.2.53`)"),
        "{notes}"
    );
    let human = dockhand_pki(lab, pki, &["plan", "-i", &inventory, PLAYBOOK]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("note: override.conf: the plain-TCP listener tcp://0.0.0.0:2375"),
        "{human}"
    );

    let (code, report, stderr) = json(lab, pki, &["apply", "-i", &inventory, PLAYBOOK]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert!(
        strings(&report["hosts"][0]["notes"])
            .iter()
            .any(|n| n.contains("is closed")),
        "apply says what it closed: {report:#}"
    );

    // The daemon still gets the user's option, from the same place.
    let command_line = lab.ssh(host, "tr '\\0' ' ' < /proc/$(pidof dockerd)/cmdline");
    assert!(
        command_line.contains("--dns 192.0.2.53") && !command_line.contains("-H"),
        "{command_line}"
    );
    assert!(
        lab.ssh(
            host,
            "cat /etc/systemd/system/docker.service.d/override.conf"
        )
        .contains("$DOCKER_OPTS")
    );
    assert!(!plain_api_answers(&address), "port 2375 no longer answers");
    let bundle = common::client_bundle(lab, pki, dir.join("bundle"));
    assert_success(
        &docker_over_tls(&address, &bundle, &["version"]),
        "docker over mutual TLS on 2376",
    );
    let anonymous = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(bundle.join("ca.pem"))
        .arg(format!("https://{address}:2376/version"))
        .output()
        .unwrap();
    assert!(
        !anonymous.status.success(),
        "no client certificate, no entry"
    );
    // The user's own files are still there.
    assert!(
        lab.ssh(host, "cat /etc/default/docker")
            .contains("--dns 192.0.2.53")
    );
    lab.ssh(
        host,
        "test -f /etc/systemd/system/docker.service.d/10-machine.conf",
    );

    // A re-run is a no-op.
    let since = active_since(lab, host);
    let (code, report, _) = json(lab, pki, &["apply", "-i", &inventory, PLAYBOOK]);
    assert_eq!(
        (code, report["summary"]["unchanged"].as_u64()),
        (Some(0), Some(1)),
        "{report:#}"
    );
    assert_eq!(active_since(lab, host), since, "docker was not restarted");
    let plan = dockhand_pki(
        lab,
        pki,
        &["plan", "-i", &inventory, PLAYBOOK, "--detailed-exitcode"],
    );
    assert_eq!(plan.status.code(), Some(0));
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

on_both_releases!(
    insecure_registries_kept,
    "insecure",
    hand_set_insecure_registries_on_bookworm_are_warned_about_and_kept,
    hand_set_insecure_registries_on_trixie_are_warned_about_and_kept
);

fn insecure_registries_kept(name: &str, release: Release) {
    let scene = Scene::fresh(name, 1, release);
    let (lab, dir, pki) = (&scene.lab, scene.dir.path(), &scene.pki);
    let host = &format!("{name}-01");
    let address = scene.address(host);
    let inventory = scene.inventory.to_string_lossy();
    lab.ssh(
        host,
        "mkdir -p /etc/docker && echo '{\"insecure-registries\": [\"registry.invalid:5000\"], \"debug\": true}' > /etc/docker/daemon.json && systemctl stop docker",
    );
    // Started as dockhand's handler starts it: once more when systemd, not
    // dockerd, failed (219/CGROUP; see `START_DOCKER`).
    lab.start_docker(host);

    let (_, plan, _) = json(lab, pki, &["plan", "-i", &inventory, PLAYBOOK]);
    let warnings = strings(&plan["hosts"][0]["warnings"]);
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "daemon.json keeps the hand-set `insecure-registries: [\"registry.invalid:5000\"]`"
        )),
        "{warnings:#?}"
    );

    let (code, report, stderr) = json(lab, pki, &["apply", "-i", &inventory, PLAYBOOK]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert!(
        strings(&report["hosts"][0]["warnings"])
            .iter()
            .any(|w| w.contains("insecure-registries")),
        "apply says it kept the key: {report:#}"
    );
    let daemon: Value =
        serde_json::from_str(&lab.ssh(host, "cat /etc/docker/daemon.json")).unwrap();
    assert_eq!(
        daemon["insecure-registries"],
        serde_json::json!(["registry.invalid:5000"])
    );
    assert_eq!(daemon["debug"], true);
    assert_eq!(daemon["tlsverify"], true);
    // The running daemon has it too, as its own API says.
    let bundle = common::client_bundle(lab, pki, dir.join("bundle"));
    let info = docker_over_tls(
        &address,
        &bundle,
        &["info", "--format", "{{json .RegistryConfig}}"],
    );
    assert_success(&info, "docker info");
    assert!(String::from_utf8_lossy(&info.stdout).contains("registry.invalid:5000"));

    // With own_daemon_json the playbook owns the whole file: the key goes.
    let owned = owned_playbook(dir);
    let (code, report, _) = json(
        lab,
        pki,
        &["apply", "-i", &inventory, &owned.to_string_lossy()],
    );
    assert_eq!(code, Some(0), "{report:#}");
    assert!(
        strings(&report["hosts"][0]["warnings"]).is_empty(),
        "{report:#}"
    );
    let daemon: Value =
        serde_json::from_str(&lab.ssh(host, "cat /etc/docker/daemon.json")).unwrap();
    assert!(daemon.get("insecure-registries").is_none() && daemon.get("debug").is_none());
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

fn owned_playbook(dir: &Path) -> PathBuf {
    let path = dir.join("owned.yaml");
    let text = std::fs::read_to_string(PLAYBOOK)
        .unwrap()
        .replace("own_daemon_json: false", "own_daemon_json: true");
    assert!(text.contains("own_daemon_json: true"));
    std::fs::write(&path, text).unwrap();
    path
}
