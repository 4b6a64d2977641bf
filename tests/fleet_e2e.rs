//! End to end: the fleet runner on real lab hosts. A host whose docker
//! never finishes restarting holds nobody past `--timeout` and is put back
//! as it was; Ctrl-C in the middle of a rollout lets the hosts in flight
//! finish and leaves every other host untouched and listed as skipped.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Release, Scene, TestLab, assert_success, dockhand_pki};
use serde_json::Value;

const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");

/// The managed files of a host: their digests, or that they are absent.
fn managed_state(lab: &TestLab, host: &str) -> String {
    lab.ssh(
        host,
        "cd /etc && for f in docker/daemon.json docker/tls/ca.pem docker/tls/server-cert.pem docker/tls/server-key.pem \
           systemd/system/docker.service.d/override.conf ssh/sshd_config.d/00-dockhand.conf; do \
           [ -e $f ] && sha256sum $f || echo \"absent $f\"; done",
    )
}

fn plan_code(lab: &TestLab, pki: &Path, inventory: &Path, host: &str) -> Option<i32> {
    dockhand_pki(
        lab,
        pki,
        &[
            "plan",
            "-i",
            &inventory.to_string_lossy(),
            PLAYBOOK,
            "--limit",
            host,
            "--detailed-exitcode",
        ],
    )
    .status
    .code()
}

#[test]
fn a_host_whose_docker_never_restarts_is_failed_at_its_deadline_and_put_back() {
    let scene = Scene::fresh("hang", 4, Release::Bookworm);
    let (lab, inventory, pki) = (&scene.lab, &scene.inventory, &scene.pki);
    let hung = "hang-04";
    // A start that never ends: systemd waits for ExecStartPre forever.
    lab.ssh(
        hung,
        "mkdir -p /etc/systemd/system/docker.service.d && \
         printf '[Service]\\nExecStartPre=/bin/sleep infinity\\nTimeoutStartSec=infinity\\n' > /etc/systemd/system/docker.service.d/hang.conf && \
         systemctl daemon-reload",
    );
    let before = managed_state(lab, hung);

    let started = Instant::now();
    let output = dockhand_pki(
        lab,
        pki,
        &[
            "apply",
            "-i",
            &inventory.to_string_lossy(),
            PLAYBOOK,
            "--timeout",
            "20",
            "--format",
            "json",
        ],
    );
    let elapsed = started.elapsed();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert!(
        elapsed < Duration::from_secs(90),
        "took {elapsed:?}: a hung host held the run"
    );
    for host in report["hosts"].as_array().unwrap() {
        let name = host["host"].as_str().unwrap();
        if name == hung {
            assert_eq!(host["status"], "failed");
            let error = host["error"].as_str().unwrap();
            assert!(
                error.contains(
                    "replacing files, restarting docker: no answer within 20s (the step's deadline; --timeout sets it)"
                ) && error.contains("the previous files were restored"),
                "{error}"
            );
        } else {
            assert_eq!(host["status"], "changed", "{host:#}");
        }
    }
    assert_eq!(
        managed_state(lab, hung),
        before,
        "the hung host's managed files are back as they were"
    );
    for healthy in ["hang-01", "hang-02", "hang-03"] {
        assert_eq!(plan_code(lab, pki, inventory, healthy), Some(0));
    }
    lab.ssh(
        hung,
        "rm -f /etc/systemd/system/docker.service.d/hang.conf; systemctl daemon-reload",
    );
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

#[test]
fn ctrl_c_lets_hosts_in_flight_finish_and_leaves_the_rest_untouched() {
    let scene = Scene::fresh("sigint", 8, Release::Bookworm);
    let (lab, inventory, pki) = (&scene.lab, &scene.inventory, &scene.pki);
    let child = Command::new(common::BIN)
        .args(["apply", "-i", &inventory.to_string_lossy(), PLAYBOOK])
        .args(["--forks", "2", "--format", "json"])
        .env("DOCKHAND_LAB", &lab.name)
        .env("DOCKHAND_LAB_DIR", common::state_root())
        .env("DOCKHAND_PKI_DIR", pki)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // SIGINT to this child alone, by its pid, as Ctrl-C would send it.
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&output.stdout)));
    assert_eq!(output.status.code(), Some(1), "{report:#}\n{stderr}");
    assert!(
        stderr.contains("interrupted: no new host starts"),
        "{stderr}"
    );
    let mut skipped = 0;
    for host in report["hosts"].as_array().unwrap() {
        let name = host["host"].as_str().unwrap();
        match host["status"].as_str().unwrap() {
            "changed" => assert_eq!(
                plan_code(lab, pki, inventory, name),
                Some(0),
                "{name} is fully converged"
            ),
            "skipped" => {
                skipped += 1;
                assert!(
                    host["error"]
                        .as_str()
                        .unwrap()
                        .contains("the run was interrupted"),
                    "{host:#}"
                );
                assert_eq!(
                    plan_code(lab, pki, inventory, name),
                    Some(2),
                    "{name} is untouched: everything still pending"
                );
                assert_eq!(
                    lab.ssh(name, "ls -A /etc/docker/tls 2>/dev/null | wc -l")
                        .trim(),
                    "0"
                );
            }
            other => panic!("{name}: {other}: {host:#}"),
        }
    }
    assert!(skipped >= 1, "some hosts were never started: {report:#}");
    assert_eq!(report["summary"]["skipped"], skipped);
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

#[test]
fn two_applies_never_interleave_on_one_host() {
    let scene = Scene::fresh("lock", 1, Release::Bookworm);
    let (lab, pki) = (&scene.lab, &scene.pki);
    let host = "lock-01";
    // A write whose check takes four seconds, and which leaves a mark of
    // when it ran: the first apply holds the host that long.
    let slow = scene.dir.path().join("slow.yaml");
    std::fs::write(
        &slow,
        "files:\n  - path: /etc/dockhand-lock.conf\n    content: \"one\\n\"\n    validate: echo first-start >> /root/lock.log; sleep 4; echo first-end >> /root/lock.log; test -s %s\n",
    )
    .unwrap();
    let other = scene.dir.path().join("other.yaml");
    std::fs::write(
        &other,
        "files:\n  - path: /etc/dockhand-lock.conf\n    content: \"two\\n\"\n    validate: echo second >> /root/lock.log; test -s %s\n",
    )
    .unwrap();
    let apply = |playbook: &std::path::Path| {
        Command::new(common::BIN)
            .args(["apply", "-i", &scene.inventory.to_string_lossy()])
            .arg(playbook)
            .args(["--progress", "plain"])
            .env("DOCKHAND_LAB", &lab.name)
            .env("DOCKHAND_LAB_DIR", common::state_root())
            .env("DOCKHAND_PKI_DIR", pki)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = apply(&slow);
    std::thread::sleep(Duration::from_millis(1500));
    // The second waits for the first to let go, then goes on.
    let second = apply(&other).wait_with_output().unwrap();
    let first = first.wait_with_output().unwrap();
    for (name, output) in [("first", &first), ("second", &second)] {
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The second took the lock before it gathered (the gather runs under
    // the lock, in the lock's own command): its plan was made from the host
    // as the first left it, never from what the first changed.
    let progress = String::from_utf8_lossy(&second.stderr);
    let at = |line: &str| {
        progress
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} not in\n{progress}"))
    };
    assert!(at("lock-01: locking the host, gathering") > 0);
    assert!(
        !progress.contains("lock-01: gathering"),
        "no gather apart from the lock:\n{progress}"
    );
    assert_eq!(
        lab.ssh(host, "cat /root/lock.log"),
        "first-start\nfirst-end\nsecond\n",
        "the second apply's writes came after the first's, never between"
    );
    assert_eq!(lab.ssh(host, "cat /etc/dockhand-lock.conf"), "two\n");
    // The lock is root's alone: another account cannot even open it.
    assert_eq!(
        lab.ssh(
            host,
            "stat -c '%a %U' /var/lib/dockhand /var/lib/dockhand/apply.lock"
        ),
        "700 root\n600 root\n"
    );
    let output = lab
        .ssh_command(
            host,
            "setpriv --reuid=nobody --regid=nogroup --clear-groups flock -n /var/lib/dockhand/apply.lock true",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The lock went with the connections: a third apply goes straight on.
    let again = dockhand_pki(
        lab,
        pki,
        &[
            "apply",
            "-i",
            &scene.inventory.to_string_lossy(),
            &other.to_string_lossy(),
            "--format",
            "json",
        ],
    );
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["summary"]["unchanged"], 1, "{report:#}");
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}
