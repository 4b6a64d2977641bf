//! Benchmark: the main job on a fleet of lab hosts (50 unless
//! `DOCKHAND_BENCH_HOSTS` says otherwise): `apply` of
//! playbooks/docker-tls.yaml on fresh hosts (issue certificates, write,
//! restart docker and ssh, verify over mutual TLS), a no-op re-run, `plan`
//! and `verify`, each timed from start to exit, with dockhand's peak memory.
//! Run as root: `cargo bench --bench fleet_apply`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_dockhand");
const LAB: &str = "fleet";

fn state_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-labs")
}

/// Runs dockhand; returns wall time, exit code and peak memory (KiB): the
/// child's VmHWM, a high-water mark that only grows, read until it exits.
fn timed(args: &[&str], pki: &std::path::Path) -> (Duration, i32, u64) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env("DOCKHAND_LAB", LAB)
        .env("DOCKHAND_LAB_DIR", state_root())
        .env("DOCKHAND_PKI_DIR", pki)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run dockhand");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (started.elapsed(), status.code().unwrap_or(-1), peak)
}

fn main() {
    let hosts: usize = std::env::var("DOCKHAND_BENCH_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let pki = tempfile::tempdir().unwrap();
    let lab = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("DOCKHAND_LAB", LAB)
            .env("DOCKHAND_LAB_DIR", state_root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    lab(&["lab", "down"]);
    lab(&["lab", "up", &hosts.to_string()]);
    let inventory = state_root().join(LAB).join("inventory.yaml");
    let inventory = inventory.to_string_lossy();
    let playbook = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");

    let runs: Vec<(&str, Vec<&str>, i32)> = vec![
        (
            "plan (fresh hosts)",
            vec!["plan", "-i", &inventory, playbook, "--detailed-exitcode"],
            2,
        ),
        (
            "apply (converge)",
            vec!["apply", "-i", &inventory, playbook],
            0,
        ),
        (
            "apply (no-op re-run)",
            vec!["apply", "-i", &inventory, playbook],
            0,
        ),
        (
            "plan (converged)",
            vec!["plan", "-i", &inventory, playbook, "--detailed-exitcode"],
            0,
        ),
        ("verify", vec!["verify", "-i", &inventory, playbook], 0),
    ];
    let mut failed = false;
    for (what, args, want) in runs {
        let (elapsed, code, max_rss_kib) = timed(&args, pki.path());
        println!(
            "{what:<22} {hosts} hosts: {:>6.2}s  exit {code}  peak memory {:.1} MiB",
            elapsed.as_secs_f64(),
            max_rss_kib as f64 / 1024.0
        );
        failed |= code != want;
    }
    lab(&["lab", "down"]);
    assert!(!failed, "a run ended with an unexpected exit code");
}
