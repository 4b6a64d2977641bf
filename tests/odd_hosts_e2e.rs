//! End to end: a host can never crash the run. Among four lab hosts, one
//! has a drop-in with `ExecStart=-` (systemd ignores it), one has
//! `DOCKER_OPTS="-é --dns 192.0.2.9"`, one has a 400 MB EnvironmentFile;
//! plan, audit and apply never panic, each odd host is handled or fails
//! alone with a clear message, the healthy host converges, and dockhand's
//! memory stays bounded whatever the hosts send.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Release, Scene};
use serde_json::Value;

const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");

/// Runs dockhand with `args` against the scene; returns the exit code, the
/// JSON report, stderr, and the peak resident memory seen (VmHWM, KiB),
/// read from /proc every few milliseconds while it runs.
fn run_measured(scene: &Scene, args: &[&str]) -> (Option<i32>, Value, String, u64) {
    let mut child = scene
        .lab
        .command(args)
        .env("DOCKHAND_PKI_DIR", &scene.pki)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: JSON: {e}\n{}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (output.status.code(), report, stderr, peak)
}

fn entry<'a>(report: &'a Value, host: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("{host} in {report:#}"))
}

#[test]
fn odd_hosts_fail_alone_and_never_crash_the_run() {
    let scene = Scene::fresh("odd", 4, Release::Bookworm);
    let (healthy, no_program, wide_flag, huge_env) = ("odd-01", "odd-02", "odd-03", "odd-04");
    let lab = &scene.lab;
    lab.ssh(
        no_program,
        "mkdir -p /etc/systemd/system/docker.service.d && \
         printf '[Service]\\nExecStart=-\\n' > /etc/systemd/system/docker.service.d/10-odd.conf && \
         systemctl daemon-reload && systemctl is-active docker",
    );
    lab.ssh(
        wide_flag,
        "echo 'DOCKER_OPTS=\"-é --dns 192.0.2.9\"' >> /etc/default/docker",
    );
    lab.ssh(
        huge_env,
        "yes 'PADDING=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' | head -c 400000000 > /etc/default/docker-big && \
         mkdir -p /etc/systemd/system/docker.service.d && \
         printf '[Service]\\nEnvironmentFile=-/etc/default/docker-big\\n' > /etc/systemd/system/docker.service.d/10-big.conf && \
         systemctl daemon-reload",
    );
    let inventory = scene.inventory.to_string_lossy().into_owned();
    let mut peaks = Vec::new();
    for command in [
        &["plan", "-i", &inventory, PLAYBOOK, "--format", "json"][..],
        &["audit", "-i", &inventory, "--format", "json"][..],
        &["apply", "-i", &inventory, PLAYBOOK, "--format", "json"][..],
    ] {
        let (code, report, stderr, peak) = run_measured(&scene, command);
        assert!(
            !stderr.contains("panicked") && code != Some(101),
            "{command:?}: {stderr}"
        );
        assert_eq!(code, Some(1), "{command:?}: the big host fails: {report:#}");
        // The host that sends too much fails alone, saying why.
        let big = entry(&report, huge_env);
        assert!(
            big["error"]
                .as_str()
                .unwrap()
                .contains("sent more than 16 MiB"),
            "{big:#}"
        );
        // The others are handled: planned, audited, applied, or failed
        // with a message of their own.
        for host in [healthy, no_program, wide_flag] {
            let found = entry(&report, host);
            assert_ne!(found["status"], "unreachable", "{command:?}: {found:#}");
            if let Some(error) = found["error"].as_str() {
                assert!(error.starts_with(host), "{command:?}: {found:#}");
                eprintln!("{command:?}: {host} failed alone: {error}");
            }
        }
        if command[0] == "apply" {
            assert_eq!(entry(&report, healthy)["status"], "changed", "{report:#}");
            assert_eq!(
                entry(&report, no_program)["status"],
                "changed",
                "{report:#}"
            );
        }
        peaks.push(peak);
    }
    eprintln!("peak memory of plan, audit, apply: {peaks:?} KiB");
    assert!(
        peaks.iter().all(|kib| *kib > 0 && *kib <= 64 * 1024),
        "{peaks:?} KiB"
    );
    common::assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}
