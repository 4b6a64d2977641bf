//! End to end: faults while writing. The host's link drops for a moment
//! while apply is staging and replacing files: no file is ever half
//! written, and a re-run converges. A target directory that is read-only
//! is a clear error naming the host and the path, and nothing is replaced.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Release, Scene, apply, assert_success, dockhand_pki, expect_exit};
use serde_json::Value;

const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");

/// The shipped playbook plus a large file (a few seconds on the wire)
/// whose check takes a moment, so the link can drop mid-write.
fn heavy_playbook(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("heavy.yaml");
    let line = "0123456789abcdef".repeat(8);
    let content: String = (0..40_000).map(|i| format!("{i:06} {line}\\n")).collect();
    let text = std::fs::read_to_string(PLAYBOOK).unwrap()
        + &format!(
            "\nfiles:\n  - path: /etc/dockhand-heavy.txt\n    content: \"{content}\"\n    validate: sleep 1; test -s %s\n"
        );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_link_dropped_while_writing_leaves_no_half_file_and_a_rerun_converges() {
    let scene = Scene::fresh("linkdrop", 1, Release::Bookworm);
    let (lab, pki) = (&scene.lab, &scene.pki);
    let host = "linkdrop-01";
    let state = lab.state();
    let veth = format!("dh{}v{}", state.index, state.hosts[0].number);
    let playbook = heavy_playbook(scene.dir.path());
    let inventory = scene.inventory.to_string_lossy().into_owned();

    let mut child = lab
        .command(&[
            "apply",
            "-i",
            &inventory,
            &playbook.to_string_lossy(),
            "--progress",
            "plain",
            "--timeout",
            "30",
        ])
        .env("DOCKHAND_PKI_DIR", pki)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut dropped = false;
    for line in stderr.lines() {
        let line = line.unwrap();
        // Staging and the commit are one step (one command) since issue 21.
        if !dropped && line.contains(&format!("{host}: replacing files")) {
            // The machine's end of the host's link, for a moment.
            let down = |state: &str| {
                assert!(
                    Command::new("ip")
                        .args(["link", "set", "dev", &veth, state])
                        .status()
                        .unwrap()
                        .success()
                )
            };
            std::thread::sleep(Duration::from_millis(100));
            down("down");
            std::thread::sleep(Duration::from_secs(3));
            down("up");
            dropped = true;
        }
    }
    child.wait().unwrap();
    assert!(dropped, "the link was dropped while staging and replacing");

    // Whatever the first run managed: every managed file is whole (the
    // old one or the new one, never a part), and no temp file lies around
    // with wider permissions.
    let heavy = lab.ssh(
        host,
        "if [ -e /etc/dockhand-heavy.txt ]; then wc -l < /etc/dockhand-heavy.txt; else echo absent; fi",
    );
    assert!(
        heavy.trim() == "absent" || heavy.trim() == "40000",
        "half-written: {heavy}"
    );
    let temps = lab.ssh(
        host,
        "find /etc -name '.*dockhand-new-*' -perm /077 2>/dev/null | wc -l",
    );
    assert_eq!(temps.trim(), "0", "temp files readable by others");

    // A re-run converges, and then there is nothing left to do.
    let rerun = dockhand_pki(
        lab,
        pki,
        &[
            "apply",
            "-i",
            &inventory,
            &playbook.to_string_lossy(),
            "--format",
            "json",
        ],
    );
    let report: Value = serde_json::from_slice(&rerun.stdout).unwrap();
    assert_eq!(rerun.status.code(), Some(0), "{report:#}");
    assert_eq!(
        lab.ssh(host, "wc -l < /etc/dockhand-heavy.txt").trim(),
        "40000"
    );
    let plan = dockhand_pki(
        lab,
        pki,
        &[
            "plan",
            "-i",
            &inventory,
            &playbook.to_string_lossy(),
            "--detailed-exitcode",
        ],
    );
    assert_eq!(plan.status.code(), Some(0));
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

#[test]
fn a_read_only_target_directory_is_a_clear_error_and_nothing_is_replaced() {
    let scene = Scene::fresh("readonly", 1, Release::Bookworm);
    let (lab, pki) = (&scene.lab, &scene.pki);
    let host = "readonly-01";
    lab.ssh(
        host,
        "mkdir -p /etc/dockhand-ro && echo old > /etc/dockhand-ro/app.conf && \
         mount --bind /etc/dockhand-ro /etc/dockhand-ro && mount -o remount,bind,ro /etc/dockhand-ro",
    );
    let playbook = scene.dir.path().join("ro.yaml");
    std::fs::write(
        &playbook,
        "files:\n  - path: /etc/dockhand-ro/app.conf\n    content: \"new\\n\"\n  - path: /etc/dockhand-rw.conf\n    content: \"new\\n\"\n",
    )
    .unwrap();
    let stdout = expect_exit(
        apply(lab, pki, &scene.inventory, &playbook.to_string_lossy(), &[]),
        1,
    );
    assert!(
        stdout.contains(
            "readonly-01: stage files: cannot create a temp file beside /etc/dockhand-ro/app.conf"
        ),
        "{stdout}"
    );
    assert_eq!(lab.ssh(host, "cat /etc/dockhand-ro/app.conf"), "old\n");
    assert_eq!(
        lab.ssh(
            host,
            "test -e /etc/dockhand-rw.conf && echo written || echo absent"
        )
        .trim(),
        "absent",
        "nothing else was replaced either"
    );
    lab.ssh(host, "umount /etc/dockhand-ro");
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}
