//! End to end: lab hosts run containers, on every release the lab boots,
//! with no registry: a tiny image made on the host from its own files, and
//! named containers started with `--restart=always` through dockerd's API.
//! The ground the workload tests of a rollout stand on.

mod common;

use std::path::{Path, PathBuf};

use common::{Release, Scene, container_state, dockhand_pki, run_containers};
use serde_json::Value;

on_all_releases!(
    hosts_run_containers,
    "workload",
    a_bullseye_host_runs_containers,
    a_bookworm_host_runs_containers,
    a_trixie_host_runs_containers,
    a_forky_host_runs_containers
);

fn hosts_run_containers(name: &str, release: Release) {
    let scene = Scene::fresh(name, 1, release);
    let host = &format!("{name}-01");
    let ids = run_containers(&scene.lab, host, &["web", "worker"]);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.iter().all(|id| id.len() == 64), "{ids:?}");
    for container in ["web", "worker"] {
        let (running, pid, started) = container_state(&scene.lab, host, container);
        assert!(running, "{host}: {container} runs");
        // Its process is real: the host sees it, running the image's dash.
        let comm = scene.lab.ssh(host, &format!("cat /proc/{pid}/comm"));
        assert_eq!(comm.trim(), "dash", "{host}: {container} ({started})");
    }
    common::assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}

const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");

/// The shipped playbook with the daemon setting `key` set to `value`.
fn playbook_with(dir: &Path, name: &str, key: &str, value: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = with_setting(&std::fs::read_to_string(PLAYBOOK).unwrap(), key, value);
    std::fs::write(&path, text).unwrap();
    path
}

/// A playbook's text with the daemon setting `key` set to `value`.
fn with_setting(playbook: &str, key: &str, value: &str) -> String {
    let text: String = playbook
        .lines()
        .map(|line| {
            if line.starts_with(&format!("    {key}:")) {
                format!("    {key}: {value}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert!(
        text.contains(&format!("    {key}: {value}\n")),
        "{key} in the playbook"
    );
    text
}

fn run(scene: &Scene, playbook: &Path, command: &str) -> (Option<i32>, Value, String) {
    let output = dockhand_pki(
        &scene.lab,
        &scene.pki,
        &[
            command,
            "-i",
            &scene.inventory.to_string_lossy(),
            &playbook.to_string_lossy(),
            "--format",
            "json",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{command} JSON: {e}\n{}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (output.status.code(), json, stderr)
}

fn finding<'a>(audit: &'a Value, host_name: &str, id: &str) -> &'a Value {
    host(audit, host_name)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {audit:#}"))
}

fn host<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == name)
        .unwrap_or_else(|| panic!("{name} in {report:#}"))
}

/// What apply could change on a host: daemon.json, the drop-in and the TLS
/// files (names, modes, contents).
fn docker_files(scene: &Scene, host: &str) -> String {
    scene.lab.ssh(
        host,
        "ls -la /etc/docker /etc/systemd/system/docker.service.d 2>&1; \
         cat /etc/docker/daemon.json /etc/systemd/system/docker.service.d/* 2>&1 | sha256sum",
    )
}

on_all_releases!(
    workloads_survive_the_rollout,
    "running",
    containers_survive_a_rollout_on_bullseye,
    containers_survive_a_rollout_on_bookworm,
    containers_survive_a_rollout_on_trixie,
    containers_survive_a_rollout_on_forky
);

/// A host in use (an image, running containers) and a fresh one. The
/// shipped playbook's new data root is named in plan and refused on the
/// host in use, which keeps running untouched, while the fresh host
/// converges; a playbook that keeps the data root secures it with every
/// container running throughout (same id, same process); a container
/// killed during a rollout fails verify and rolls the host back; and the
/// opt-in makes the change and says what is out of sight.
fn workloads_survive_the_rollout(name: &str, release: Release) {
    let scene = Scene::fresh(name, 2, release);
    let (busy, fresh) = (&format!("{name}-01"), &format!("{name}-02"));
    let ids = run_containers(&scene.lab, busy, &["web", "db=no", "agent+sock"]);
    let state = |c: &str| container_state(&scene.lab, busy, c);
    let (web, db) = (state("web"), state("db"));
    assert!(web.0 && db.0, "both run: {web:?} {db:?}");
    let shipped = Path::new(PLAYBOOK);

    // audit names the container that holds the daemon's socket.
    let (code, audited) = common::audit_json(&scene);
    assert_eq!(code, Some(1));
    let socket = finding(&audited, busy, "5.31");
    assert_eq!(socket["verdict"], "FAIL", "{socket:#}");
    assert_eq!(socket["reason"], "mounted in agent", "{socket:#}");

    // plan names the data-root change and what it would hide.
    let (code, plan, _) = run(&scene, shipped, "plan");
    assert_eq!(code, Some(0), "{plan:#}");
    let warnings = host(&plan, busy)["warnings"].to_string();
    assert!(
        warnings.contains("userns-remap: default moves the daemon to /var/lib/docker/UID.GID")
            && warnings.contains("3 containers (3 running), 1 image and 0 volumes stay in /var/lib/docker, out of the daemon's sight"),
        "{warnings}"
    );
    assert!(
        !host(&plan, fresh)["warnings"]
            .to_string()
            .contains("out of the daemon's sight")
    );

    // apply refuses that host and touches nothing there; the other converges.
    let files_before = docker_files(&scene, busy);
    let (code, report, stderr) = run(&scene, shipped, "apply");
    assert_eq!(code, Some(1), "{report:#}\n{stderr}");
    assert_eq!(host(&report, fresh)["status"], "changed", "{report:#}");
    let refused = host(&report, busy);
    assert_eq!(refused["status"], "failed", "{report:#}");
    assert!(
        refused["error"].to_string().contains("allow_new_data_root"),
        "{refused:#}"
    );
    assert_eq!(docker_files(&scene, busy), files_before, "nothing written");
    assert_eq!(
        (state("web"), state("db")),
        (web.clone(), db.clone()),
        "untouched"
    );

    // Keeping the data root, the host is secured and nothing stops: the
    // same containers, the same processes, never restarted.
    let keep = playbook_with(scene.dir.path(), "keep", "userns-remap", "\"\"");
    let (code, report, stderr) = run(&scene, &keep, "apply");
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(host(&report, busy)["status"], "changed", "{report:#}");
    assert_eq!(
        (state("web"), state("db")),
        (web.clone(), db.clone()),
        "never stopped"
    );
    assert!(
        scene
            .lab
            .ssh(busy, "cat /etc/docker/daemon.json")
            .contains("\"live-restore\": true"),
    );
    let (code, report, _) = run(&scene, &keep, "apply");
    assert_eq!(
        (code, &host(&report, busy)["status"]),
        (Some(0), &Value::from("unchanged")),
        "{report:#}"
    );

    // A CA rotation: a new CA trusted, then new server certificates;
    // docker restarts for each, and no container stops.
    for step in ["start", "switch"] {
        common::assert_success(
            &dockhand_pki(&scene.lab, &scene.pki, &["pki", "rotate", step]),
            &format!("pki rotate {step}"),
        );
        let (code, report, stderr) = run(&scene, &keep, "apply");
        assert_eq!(code, Some(0), "{report:#}\n{stderr}");
        assert_eq!(host(&report, busy)["status"], "changed", "{report:#}");
        assert_eq!(
            (state("web"), state("db")),
            (web.clone(), db.clone()),
            "rotate {step}: never stopped"
        );
    }

    // A container killed during a rollout: verify fails, the host is put back.
    let killing = scene.dir.path().join("killing.yaml");
    let text = with_setting(
        &std::fs::read_to_string(&keep).unwrap(),
        "log-level",
        "warn",
    ) + &format!(
        "\nfiles:\n  - path: /etc/dockhand-kill.conf\n    content: \"x\\n\"\n    mode: \"0644\"\n    validate: kill -KILL {} && test -e %s\n",
        db.1
    );
    std::fs::write(&killing, text).unwrap();
    let (code, report, stderr) = run(&scene, &killing, "apply");
    assert_eq!(code, Some(1), "{report:#}\n{stderr}");
    let error = host(&report, busy)["error"].to_string();
    assert!(
        error.contains("db (") && error.contains("ran before the rollout and is not running now"),
        "{error}"
    );
    assert!(
        scene
            .lab
            .ssh(busy, "cat /etc/docker/daemon.json")
            .contains("\"log-level\": \"info\""),
        "rolled back"
    );
    assert!(!state("db").0, "db stays killed");
    assert_eq!(state("web"), web, "web never stopped");

    // The opt-in: the change is made, and apply says what is out of sight.
    let allow = std::fs::read_to_string(PLAYBOOK).unwrap().replace(
        "  allow_new_data_root: false\n",
        "  allow_new_data_root: true\n",
    );
    assert!(allow.contains("allow_new_data_root: true"));
    let allow_path = scene.dir.path().join("allow.yaml");
    std::fs::write(&allow_path, allow).unwrap();
    let (code, report, stderr) = run(&scene, &allow_path, "apply");
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    let warnings = host(&report, busy)["warnings"].to_string();
    assert!(
        warnings.contains("out of the daemon's sight")
            && warnings.contains("apply makes the change"),
        "{warnings}"
    );
    let listed = scene.lab.ssh(
        busy,
        "python3 -c \"import socket;s=socket.socket(socket.AF_UNIX);s.connect('/var/run/docker.sock');s.sendall(b'GET /containers/json?all=1 HTTP/1.0\\r\\n\\r\\n');print(s.recv(65536).split(b'\\r\\n\\r\\n',1)[1].decode())\"",
    );
    assert_eq!(listed.trim(), "[]", "the new data root holds nothing yet");
    // audit says what was left behind.
    let (_, audited) = common::audit_json(&scene);
    let left = finding(&audited, busy, "DATA-1");
    assert_eq!(left["verdict"], "WARN", "{left:#}");
    assert!(
        left["reason"].as_str().unwrap().starts_with(
            "3 container(s) in /var/lib/docker, which the daemon (data root /var/lib/docker/"
        ),
        "{left:#}"
    );
    assert!(!ids.is_empty());
    common::assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}
