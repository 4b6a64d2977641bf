//! Benchmark: `dockhand lab up N` with the base cached (N = 50 unless
//! `DOCKHAND_BENCH_HOSTS` says otherwise). Measures the wall time until
//! every host answers SSH with docker active, the memory the hosts use,
//! and `lab down`; checks every host independently with OpenSSH; fails if
//! `up` misses its target of two minutes.
//!
//! Run as root: `cargo bench --bench lab_up`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_dockhand");
const LAB: &str = "bench";
const TARGET: Duration = Duration::from_secs(120);

fn dockhand(args: &[&str]) -> std::process::Output {
    let output = Command::new(BIN)
        .args(args)
        .env("DOCKHAND_LAB", LAB)
        .env("DOCKHAND_LAB_DIR", state_root())
        .env("NO_COLOR", "1")
        .output()
        .expect("run dockhand");
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        panic!("dockhand {args:?} failed ({})", output.status);
    }
    output
}

fn state_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-labs")
}

/// MemAvailable in MiB: what the machine can still hand out.
fn mem_available_mib() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let hosts: usize = std::env::var("DOCKHAND_BENCH_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);

    // Precondition: the base is cached (built by a one-host lab if not).
    let warm = Instant::now();
    dockhand(&["lab", "up", "1"]);
    dockhand(&["lab", "down"]);
    eprintln!(
        "warm-up (base cache, one host up and down): {:.1}s",
        warm.elapsed().as_secs_f64()
    );

    let available_before = mem_available_mib();
    let started = Instant::now();
    dockhand(&["lab", "up", &hosts.to_string()]);
    let up = started.elapsed();
    // Let boot-time work settle before reading memory.
    std::thread::sleep(Duration::from_secs(5));
    let available_after = mem_available_mib();

    // Independent check: OpenSSH reaches every host and docker is active.
    let inventory = String::from_utf8(dockhand(&["lab", "inventory"]).stdout).unwrap();
    let addresses: Vec<String> = inventory
        .lines()
        .filter_map(|l| l.trim().strip_prefix("address: "))
        .map(str::to_string)
        .collect();
    assert_eq!(addresses.len(), hosts);
    let key = state_root().join(LAB).join("id_ed25519");
    let known_hosts = state_root().join(LAB).join("known_hosts");
    let checks: Vec<_> = addresses
        .iter()
        .map(|address| {
            Command::new("ssh")
                .args(["-i", &key.to_string_lossy()])
                .args([
                    "-o",
                    &format!("UserKnownHostsFile={}", known_hosts.display()),
                ])
                .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
                .arg(format!("root@{address}"))
                .arg("systemctl is-active docker")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let active = checks
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .filter(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "active"
        })
        .count();

    let stopping = Instant::now();
    dockhand(&["lab", "down"]);
    let down = stopping.elapsed();

    let used = available_before.saturating_sub(available_after);
    println!(
        "lab up {hosts}: {:.1}s (target {}s)",
        up.as_secs_f64(),
        TARGET.as_secs()
    );
    println!("hosts answering OpenSSH with docker active: {active}/{hosts}");
    println!(
        "memory in use by the lab: {used} MiB ({:.0} MiB per host)",
        used as f64 / hosts as f64
    );
    println!("lab down: {:.1}s", down.as_secs_f64());
    assert_eq!(active, hosts, "every host answers SSH with docker active");
    assert!(
        up < TARGET,
        "lab up {hosts} took {up:?}, over the {TARGET:?} target"
    );
}
