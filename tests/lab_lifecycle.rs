//! End to end: `dockhand lab up | down | status` on real nspawn hosts —
//! idempotence, recovery after a killed lab, and a `down` that leaves no
//! process, namespace, veth, bridge or mount behind. Each test owns its lab.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, Release, TestLab, assert_success, runtime, state_root};
use dockhand::error::{Error, HostError};
use dockhand::lab::LabState;
use dockhand::transport::SshSession;

/// Everything of a lab that can outlive it on the machine.
#[derive(Debug, Default)]
struct Leftovers {
    processes: Vec<String>,
    namespaces: Vec<String>,
    links: Vec<String>,
    mounts: Vec<String>,
    cgroups: Vec<String>,
}

impl Leftovers {
    fn is_empty(&self) -> bool {
        self.processes.is_empty()
            && self.namespaces.is_empty()
            && self.links.is_empty()
            && self.mounts.is_empty()
            && self.cgroups.is_empty()
    }
}

/// Looks for anything of `lab` (last known as `state`) on the machine.
fn leftovers(lab: &TestLab, state: &LabState) -> Leftovers {
    let lab_dir = lab.paths().dir;
    let lab_dir_text = lab_dir.to_string_lossy().into_owned();
    let mut found = Leftovers::default();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let environ = String::from_utf8_lossy(&environ);
        let ours = cmdline.contains(&lab_dir_text)
            || state
                .hosts
                .iter()
                .any(|h| environ.contains(&format!("container_uuid={}", h.uuid)));
        if ours {
            found.processes.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    let prefix = format!("dockhand-{}-{}-", state.index, lab.name);
    found.namespaces = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    found.namespaces.retain(|n: &String| n.starts_with(&prefix));
    let veth_prefix = format!("dh{}v", state.index);
    let bridge = format!("dhlab{}", state.index);
    found.links = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n == &bridge
                || n.strip_prefix(&veth_prefix)
                    .is_some_and(|rest| rest.parse::<u32>().is_ok())
        })
        .collect();
    found.mounts = std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter(|line| {
            line.split(' ')
                .nth(1)
                .is_some_and(|m| m.starts_with(&lab_dir_text))
        })
        .map(str::to_string)
        .collect();
    // The lab runs as our child, so its hosts' cgroups are beneath ours.
    let parent = dockhand::lab::hosts_cgroup_parent().expect("a cgroup2 mount");
    found.cgroups = std::fs::read_dir(parent)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    found
}

/// The cgroup2 path of each host's container init, as the machine sees it.
fn init_cgroups(state: &LabState) -> Vec<String> {
    nspawn_pids(state)
        .iter()
        .map(|pid| {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            let init = children.split_whitespace().next().expect("container init");
            let cgroup = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
            cgroup
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap()
                .to_string()
        })
        .collect()
}

fn down(lab: &TestLab) {
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

fn nspawn_pids(state: &LabState) -> Vec<i32> {
    state
        .hosts
        .iter()
        .map(|h| h.nspawn_pid.expect("pid recorded"))
        .collect()
}

/// The container init of each nspawn (its child), as a killed lab would
/// leave it: killing nspawn alone orphans the container. Returns once the
/// killed processes are gone (a process killed under load lingers a moment).
fn kill_hard(pids: &[i32]) {
    let mut killed = Vec::new();
    for pid in pids {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let targets = children
            .split_whitespace()
            .map(|child| child.parse::<i32>().unwrap())
            .chain([*pid]);
        for target in targets {
            let process = rustix::process::Pid::from_raw(target).unwrap();
            rustix::process::kill_process(process, rustix::process::Signal::KILL).unwrap();
            killed.push(target);
        }
    }
    let gone = |pid: &i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                stat.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !killed.iter().all(gone) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn assert_hosts_answer(lab: &TestLab, count: usize) {
    let state = lab.state();
    assert_eq!(state.hosts.len(), count);
    // Each host's systemd owns a cgroup tree of its own: hosts that shared
    // one pruned each other's units' cgroups (219/CGROUP).
    let cgroups = init_cgroups(&state);
    for (host, cgroup) in state.hosts.iter().zip(&cgroups) {
        let own = format!("/dockhand-{}-{}/", state.index, host.name);
        assert!(cgroup.contains(&own), "{}: {cgroup}", host.name);
    }
    for host in &state.hosts {
        assert_eq!(lab.ssh(&host.name, "hostname").trim(), host.name);
        assert_eq!(
            lab.ssh(&host.name, "systemctl is-active docker").trim(),
            "active"
        );
    }
}

#[test]
fn up_is_idempotent_recovers_from_a_killed_lab_and_down_leaves_nothing() {
    let lab = TestLab::named("life");
    down(&lab);

    // Fresh up.
    let lab = TestLab::up("life", 2);
    assert_hosts_answer(&lab, 2);
    let first = lab.state();
    let status = lab.dockhand(&["lab", "status"]);
    assert_success(&status, "lab status");
    assert_eq!(
        String::from_utf8_lossy(&status.stdout)
            .matches("running")
            .count(),
        2
    );

    // Up while up: nothing is rebooted.
    let lab = TestLab::up("life", 2);
    assert_eq!(
        nspawn_pids(&lab.state()),
        nspawn_pids(&first),
        "running hosts are kept"
    );

    // Growing and shrinking.
    let lab = TestLab::up("life", 3);
    assert_hosts_answer(&lab, 3);
    assert_eq!(
        nspawn_pids(&lab.state())[..2],
        nspawn_pids(&first)[..],
        "existing hosts are kept"
    );
    let lab = TestLab::up("life", 2);
    assert_hosts_answer(&lab, 2);
    assert!(
        !state_root().join("life/hosts/life-03").exists(),
        "the surplus host is removed"
    );

    // A killed lab (every process of every host killed, no `down`):
    // status says so, and up brings it back with fresh hosts.
    let before = lab.state();
    kill_hard(&nspawn_pids(&before));
    let status = lab.dockhand(&["lab", "status"]);
    assert_eq!(
        status.status.code(),
        Some(1),
        "status fails when hosts are stopped"
    );
    assert_eq!(
        String::from_utf8_lossy(&status.stdout)
            .matches("stopped")
            .count(),
        2
    );
    let lab = TestLab::up("life", 2);
    assert_hosts_answer(&lab, 2);
    let after = lab.state();
    assert!(
        after
            .hosts
            .iter()
            .zip(&before.hosts)
            .all(|(a, b)| a.uuid != b.uuid),
        "hosts were replaced"
    );

    // Down leaves nothing behind.
    down(&lab);
    let left = leftovers(&lab, &after);
    assert!(left.is_empty(), "after down: {left:#?}");
    let status = lab.dockhand(&["lab", "status"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&status.stderr).contains("is not up"));

    // Up after down, then a killed lab cleaned up by down itself.
    let lab = TestLab::up("life", 1);
    assert_hosts_answer(&lab, 1);

    // Another release replaces the host; `up` without --release keeps the
    // lab's release; status, the inventory and the host itself say which.
    let bookworm = lab.state();
    let lab = TestLab::up_on("life", 1, Release::Trixie);
    let trixie = lab.state();
    assert_ne!(trixie.hosts[0].uuid, bookworm.hosts[0].uuid, "replaced");
    assert_success(&lab.dockhand(&["lab", "up", "1"]), "lab up");
    let kept = lab.state();
    assert_eq!(
        (kept.release, &kept.hosts[0].uuid),
        (Release::Trixie, &trixie.hosts[0].uuid),
        "kept, still trixie"
    );
    assert_eq!(
        lab.ssh("life-01", ". /etc/os-release && echo $VERSION_ID")
            .trim(),
        "13"
    );
    let status = String::from_utf8_lossy(&lab.dockhand(&["lab", "status"]).stdout).into_owned();
    assert!(
        status
            .lines()
            .any(|l| l.contains("life-01") && l.contains("trixie")),
        "{status}"
    );
    let inventory =
        String::from_utf8_lossy(&lab.dockhand(&["lab", "inventory"]).stdout).into_owned();
    assert!(
        inventory.contains("      lab_release: trixie\n      debian_version: \"13\"\n"),
        "{inventory}"
    );
    assert!(
        inventory.contains("  trixie:\n    hosts:\n      - life-01\n"),
        "{inventory}"
    );
    let state = lab.state();
    kill_hard(&nspawn_pids(&state));
    down(&lab);
    let left = leftovers(&lab, &state);
    assert!(left.is_empty(), "after killing and down: {left:#?}");
}

#[test]
fn a_changed_host_key_is_refused() {
    let lab = TestLab::up("hostkey", 1);
    let host = "hostkey-01";
    let target = lab.target(host, "root");
    runtime().block_on(async {
        SshSession::connect(&target)
            .await
            .unwrap()
            .disconnect()
            .await
            .unwrap();
    });

    // The host is "reinstalled": new host keys, same address.
    lab.ssh(
        host,
        "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A -q && systemctl restart ssh",
    );

    runtime().block_on(async {
        let err = SshSession::connect(&target)
            .await
            .err()
            .expect("a changed key is refused");
        let text = err.to_string();
        assert!(
            matches!(
                err,
                Error::OnHost {
                    cause: HostError::HostKeyChanged { .. },
                    ..
                }
            ),
            "{text}"
        );
        assert!(text.contains("host key has CHANGED"), "{text}");
        let known_hosts = lab.paths().known_hosts();
        assert!(
            text.contains(&format!("{}:1", known_hosts.display())),
            "{text}"
        );
        assert!(text.contains("SHA256:"), "{text}");

        // Even accept-new never replaces a changed key.
        let mut lenient = target.clone();
        lenient.host_key_policy = dockhand::transport::HostKeyPolicy::AcceptNew;
        let err = SshSession::connect(&lenient)
            .await
            .err()
            .expect("still refused");
        assert!(
            matches!(
                err,
                Error::OnHost {
                    cause: HostError::HostKeyChanged { .. },
                    ..
                }
            ),
            "{err}"
        );
    });

    // OpenSSH agrees: the key really did change.
    let output = lab.ssh_command(host, "true").output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("HOST IDENTIFICATION HAS CHANGED"));

    down(&lab);
}

#[test]
fn lab_up_without_root_says_so_and_touches_nothing() {
    let state_dir = tempfile::tempdir().unwrap();
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "lab",
            "up",
            "1",
        ])
        .env("DOCKHAND_LAB_DIR", state_dir.path().join("labs"))
        .env("DOCKHAND_LAB", "noroot")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("must run as root"), "{stderr}");
    assert!(
        !state_dir.path().join("labs").exists(),
        "nothing was created"
    );
}

#[test]
fn lab_up_with_missing_programs_names_them_and_their_packages() {
    let state_dir = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["lab", "up", "1"])
        .env("PATH", empty_path.path())
        .env("DOCKHAND_LAB_DIR", state_dir.path().join("labs"))
        .env("DOCKHAND_LAB", "nopkgs")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("debootstrap, systemd-nspawn, ip, ssh-keygen, mount, umount"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "apt-get install debootstrap systemd-container iproute2 openssh-client mount"
        ),
        "{stderr}"
    );
    assert!(
        !state_dir.path().join("labs").exists(),
        "nothing was created"
    );
}

#[test]
fn lab_commands_reject_bad_names_and_counts() {
    let cases: &[(&[&str], &str)] = &[
        (&["lab", "up", "0", "--name", "ok"], "between 1 and 200"),
        (&["lab", "up", "201", "--name", "ok"], "between 1 and 200"),
        (&["lab", "status", "--name", "Bad_Name"], "a lab name is"),
    ];
    for (args, needle) in cases {
        let output = Command::new(BIN)
            .args(*args)
            .env("DOCKHAND_LAB_DIR", state_root())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    assert!(!Path::new(&state_root()).join("ok").exists());
}
