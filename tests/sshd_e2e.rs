//! End to end: sshd changes never lock anyone out. A setting that locks
//! out the login (`AllowUsers nobody`) is rolled back by apply itself;
//! and when dockhand is gone right after the reload (killed, or its
//! session lost), the host's dead-man switch puts the previous sshd
//! configuration back by itself within its delay.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Release, Scene, apply, apply_killed_at, assert_success, dockhand_pki, expect_exit};

/// An sshd role that locks out every login, with a short dead-man switch.
fn lockout_playbook(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("lockout.yaml");
    std::fs::write(
        &path,
        "sshd:\n  revert_after: 15\n  settings:\n    AllowUsers: nobody\n",
    )
    .unwrap();
    path
}

/// Whether OpenSSH's client logs in as root right now.
fn login_works(scene: &Scene, host: &str) -> bool {
    scene
        .lab
        .ssh_command(host, "true")
        .output()
        .unwrap()
        .status
        .success()
}

fn drop_in(scene: &Scene, host: &str) -> String {
    scene.lab.ssh(
        host,
        "cat /etc/ssh/sshd_config.d/00-dockhand.conf 2>/dev/null || echo absent",
    )
}

/// The sshd dead-man switches armed on `host` (0 or 1).
fn armed_switches(scene: &Scene, host: &str) -> String {
    scene.lab.ssh(
        host,
        "systemctl list-units --all --no-legend 'dockhand-sshd-revert-*.timer' | wc -l",
    )
}

/// The backups and temp files a run left beside sshd's drop-ins.
fn drop_in_leftovers(scene: &Scene, host: &str) -> String {
    scene.lab.ssh(
        host,
        "find /etc/ssh/sshd_config.d -name '.*dockhand-backup*' -o -name '.*dockhand-new-*' | wc -l",
    )
}

#[test]
fn a_lockout_is_rolled_back_and_a_fresh_login_still_works() {
    let scene = Scene::fresh("lockout", 1, Release::Bookworm);
    let host = "lockout-01";
    let playbook = lockout_playbook(scene.dir.path());
    let before = drop_in(&scene, host);
    let stdout = expect_exit(
        apply(
            &scene.lab,
            &scene.pki,
            &scene.inventory,
            &playbook.to_string_lossy(),
            &[],
        ),
        1,
    );
    assert!(
        stdout.contains("fresh SSH login") && stdout.contains("the previous files were restored"),
        "{stdout}"
    );
    assert!(
        login_works(&scene, host),
        "a fresh login works after the rollback"
    );
    assert_eq!(drop_in(&scene, host), before);
    // The switch was disarmed: nothing is left to fire later.
    assert_eq!(
        scene
            .lab
            .ssh(
                host,
                "systemctl list-timers --all --no-legend | grep -c dockhand-sshd-revert || true"
            )
            .trim(),
        "0"
    );
    assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}

#[test]
fn a_host_whose_dockhand_died_right_after_the_reload_reverts_by_itself() {
    let scene = Scene::fresh("deadman", 1, Release::Bookworm);
    let host = "deadman-01";
    let playbook = lockout_playbook(scene.dir.path());
    let before = drop_in(&scene, host);
    // As soon as ssh has been reloaded with the lockout, dockhand dies:
    // nobody is left to verify or roll back.
    apply_killed_at(
        &scene,
        &playbook.to_string_lossy(),
        "replacing files, reloading ssh done",
        Duration::ZERO,
    );
    assert!(
        !login_works(&scene, host),
        "locked out right after the reload"
    );
    let started = Instant::now();
    while !login_works(&scene, host) {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the host did not revert within the switch's 15 s"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(
        drop_in(&scene, host),
        before,
        "the previous drop-in is back"
    );
    assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}

/// ssh-audit, as `scripts/setup-machine` installs it.
fn ssh_audit() -> std::path::PathBuf {
    std::env::var_os("DOCKHAND_SSH_AUDIT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/tools/ssh-audit/bin/ssh-audit")
        })
}

on_all_releases!(
    outside_auditors_find_no_fail_level_algorithm,
    "audited",
    an_outside_auditor_finds_no_fail_level_algorithm_on_bullseye,
    an_outside_auditor_finds_no_fail_level_algorithm_on_bookworm,
    an_outside_auditor_finds_no_fail_level_algorithm_on_trixie,
    an_outside_auditor_finds_no_fail_level_algorithm_on_forky
);

fn outside_auditors_find_no_fail_level_algorithm(name: &str, release: Release) {
    let scene = Scene::fresh(name, 1, release);
    let host = &format!("{name}-01");
    assert_success(
        &dockhand_pki(
            &scene.lab,
            &scene.pki,
            &[
                "apply",
                "-i",
                &scene.inventory.to_string_lossy(),
                concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml"),
            ],
        ),
        "apply",
    );
    // Only the intended host keys are offered, and key exchange follows
    // the host's OpenSSH; OpenSSH's own client with an Ed25519 key logs in.
    let effective = common::sshd_effective(&scene.lab, host);
    let value = |keyword: &str| effective.get(keyword).cloned().unwrap_or_default();
    assert_eq!(value("hostkeyalgorithms"), "ssh-ed25519");
    // By the host's OpenSSH: the ML-KEM hybrid first where it has one
    // (Debian 13 and 14), else sntrup761 (Debian 12), else curve25519
    // (8.4 has only the older sntrup4591761, which the role never offers).
    let first_kex = match release {
        Release::Trixie | Release::Forky => "mlkem768x25519-sha256,",
        Release::Bookworm => "sntrup761x25519-sha512,",
        Release::Bullseye => "curve25519-sha256,",
    };
    assert!(
        value("kexalgorithms").starts_with(first_kex),
        "{}",
        value("kexalgorithms")
    );

    // The auditor runs last: OpenSSH 10 penalises its many half-done
    // connections for a while.
    let output = Command::new(ssh_audit())
        .arg("-j")
        .arg(scene.address(host))
        .output()
        .expect("ssh-audit (scripts/setup-machine installs it)");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "ssh-audit JSON: {e}: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let mut failures = Vec::new();
    for section in ["kex", "key", "enc", "mac"] {
        for entry in report[section].as_array().cloned().unwrap_or_default() {
            if entry["notes"]["fail"]
                .as_array()
                .is_some_and(|f| !f.is_empty())
            {
                failures.push(format!(
                    "{section} {}: {}",
                    entry["algorithm"], entry["notes"]["fail"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(!report["key"].as_array().unwrap().is_empty(), "{report:#}");
    assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}

on_both_releases!(
    killed_after_the_reload_then_run_again,
    "rearmed",
    a_run_killed_after_the_reload_is_settled_by_the_next_on_bookworm,
    a_run_killed_after_the_reload_is_settled_by_the_next_on_trixie
);

/// dockhand dies right after ssh's reload, its switch armed for two
/// minutes and its backups on the host. The next run, started at once,
/// says what it found, fires that switch itself before it gathers, removes
/// the leftovers, and converges: when it reports success, no switch is
/// left to fire, no backup or temp remains, and plan is clean.
fn killed_after_the_reload_then_run_again(name: &str, release: Release) {
    killed_then_run_again(
        name,
        release,
        "sshd:\n  revert_after: 120\n",
        "reloading ssh done",
        true,
    );
}

on_both_releases!(
    killed_while_verifying_then_run_again,
    "verifykill",
    a_run_killed_while_verifying_is_settled_by_the_next_on_bookworm,
    a_run_killed_while_verifying_is_settled_by_the_next_on_trixie
);

/// dockhand dies as it starts to verify. Wherever the kill landed (the
/// verification may have got further), the next run converges and leaves
/// no switch to fire.
fn killed_while_verifying_then_run_again(name: &str, release: Release) {
    killed_then_run_again(
        name,
        release,
        "sshd:\n  revert_after: 120\n",
        ": verifying",
        false,
    );
}

on_both_releases!(
    killed_while_rolling_back_then_run_again,
    "rollbackkill",
    a_run_killed_while_rolling_back_is_settled_by_the_next_on_bookworm,
    a_run_killed_while_rolling_back_is_settled_by_the_next_on_trixie
);

/// A lockout is being rolled back when dockhand dies. Until its switch
/// fires (15 s) nobody logs in, as designed; then the next run, with a
/// playbook that locks nobody out, converges from wherever the rollback
/// stood, and leaves no switch to fire.
fn killed_while_rolling_back_then_run_again(name: &str, release: Release) {
    killed_then_run_again(
        name,
        release,
        "sshd:\n  revert_after: 15\n  settings:\n    AllowUsers: nobody\n",
        "rolling back",
        false,
    );
}

/// Kills an apply of `first` at the first progress line holding `marker`,
/// then applies the sshd role and checks the run converges: no switch left
/// to fire, no backup or temp, plan clean, logins work. `armed`: the kill
/// point always leaves the switch armed, so the second run must say it
/// fired it.
fn killed_then_run_again(name: &str, release: Release, first: &str, marker: &str, armed: bool) {
    let scene = Scene::fresh(name, 1, release);
    let host = &format!("{name}-01");
    let first_playbook = scene.dir.path().join("first.yaml");
    std::fs::write(&first_playbook, first).unwrap();
    let playbook = scene.dir.path().join("sshd.yaml");
    std::fs::write(&playbook, "sshd:\n  revert_after: 120\n").unwrap();
    let playbook = playbook.to_string_lossy().into_owned();
    apply_killed_at(
        &scene,
        &first_playbook.to_string_lossy(),
        marker,
        Duration::ZERO,
    );
    // A lockout left in force lets nobody in until its switch fires.
    let started = Instant::now();
    while !login_works(&scene, host) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no login within 60 s of the kill"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let timers = || armed_switches(&scene, host);
    let leftovers = || drop_in_leftovers(&scene, host);
    // The switch's two minutes have not run out: the host is as the kill
    // left it (logins may be locked out until the next run settles it).
    let left_armed = timers().trim() == "1";
    if armed {
        assert!(left_armed, "the killed run left its switch armed");
        assert_ne!(leftovers().trim(), "0", "and its backups");
        let plan = expect_exit(
            dockhand_pki(
                &scene.lab,
                &scene.pki,
                &["plan", "-i", &scene.inventory.to_string_lossy(), &playbook],
            ),
            0,
        );
        assert!(
            plan.contains("armed: it will put the previous sshd drop-in back"),
            "{plan}"
        );
        assert!(
            plan.contains("an interrupted run left backups and temp files"),
            "{plan}"
        );
    }

    let output = apply(
        &scene.lab,
        &scene.pki,
        &scene.inventory,
        &playbook,
        &["--progress", "plain"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    expect_exit(output, 0);
    if left_armed {
        assert!(stderr.contains("it was fired now"), "{stderr}");
    }
    assert_eq!(
        timers().trim(),
        "0",
        "no switch is left to fire after success"
    );
    assert_eq!(leftovers().trim(), "0", "no backup or temp remains");
    assert!(drop_in(&scene, host).contains("PasswordAuthentication no"));
    assert!(!drop_in(&scene, host).contains("AllowUsers"));
    let again = expect_exit(
        dockhand_pki(
            &scene.lab,
            &scene.pki,
            &[
                "plan",
                "-i",
                &scene.inventory.to_string_lossy(),
                &playbook,
                "--detailed-exitcode",
            ],
        ),
        0,
    );
    assert!(!again.contains("interrupted"), "{again}");
    assert!(login_works(&scene, host));
    assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}

on_both_releases!(
    killed_before_the_handlers_then_run_again,
    "owed",
    a_run_killed_before_its_handlers_is_put_right_by_the_next_on_bookworm,
    a_run_killed_before_its_handlers_is_put_right_by_the_next_on_trixie
);

/// dockhand dies while its commit checks a file: the commit goes on to
/// replace the files and dies at its next word to the closed channel,
/// before any handler ran. ssh runs the old settings over the new drop-in,
/// the handlers are owed, the backups are there. The next run puts the
/// backups back, writes the files again with its own switch, runs the
/// handlers under it, and leaves nothing behind.
fn killed_before_the_handlers_then_run_again(name: &str, release: Release) {
    let scene = Scene::fresh(name, 1, release);
    let host = &format!("{name}-01");
    let playbook = scene.dir.path().join("owed.yaml");
    std::fs::write(
        &playbook,
        "sshd:\n  revert_after: 120\nfiles:\n  - path: /etc/dockhand-owed.txt\n    content: \"owed\\n\"\n    validate: sleep 3; test -s %s\n    notify: [reload-ssh]\n",
    )
    .unwrap();
    let playbook = playbook.to_string_lossy().into_owned();
    let before = drop_in(&scene, host);
    // The commit is in its three-second check: nothing replaced yet.
    apply_killed_at(&scene, &playbook, "replacing files", Duration::from_secs(1));
    scene.lab.wait_for_sshd(host);
    let owed = scene.lab.ssh(
        host,
        "cat /var/lib/dockhand/pending-handlers 2>/dev/null || true",
    );
    assert!(owed.contains("reload-ssh"), "handlers owed: {owed:?}");
    assert_ne!(drop_in(&scene, host), before, "the files were replaced");
    let leftovers = || {
        scene.lab.ssh(
            host,
            "find /etc/ssh/sshd_config.d /etc -maxdepth 1 -name '.*dockhand-backup*' -o -maxdepth 1 -name '.*dockhand-new-*' | wc -l",
        )
    };
    assert_ne!(leftovers().trim(), "0", "and their backups are there");

    let output = apply(
        &scene.lab,
        &scene.pki,
        &scene.inventory,
        &playbook,
        &["--progress", "plain"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = expect_exit(output, 0);
    assert!(stderr.contains("put back"), "{stderr}");
    // Written again (the drop-in and the file), the owed reload run with
    // them under this run's switch, and verified.
    assert!(
        stderr.contains(&format!(
            "{host}: changed: 2 change(s); ran reload ssh; verified"
        )),
        "{stderr}\n{stdout}"
    );
    assert_eq!(leftovers().trim(), "0", "no backup or temp remains");
    assert_eq!(
        scene
            .lab
            .ssh(
                host,
                "systemctl list-units --all --no-legend 'dockhand-sshd-revert-*.timer' | wc -l; ls /var/lib/dockhand"
            ),
        // The lock, and what the host's programs said as the apply keeps
        // it, and what its files said: no switch's record, no handler owed.
        "0\napply.lock\nhost-facts\nhost-files\n",
        "no switch left, nothing owed"
    );
    assert!(drop_in(&scene, host).contains("PasswordAuthentication no"));
    expect_exit(
        dockhand_pki(
            &scene.lab,
            &scene.pki,
            &[
                "plan",
                "-i",
                &scene.inventory.to_string_lossy(),
                &playbook,
                "--detailed-exitcode",
            ],
        ),
        0,
    );
    assert!(login_works(&scene, host));
    assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}

on_both_releases!(
    killed_then_asked_past_the_forks,
    "askkill",
    a_run_killed_after_the_reload_is_settled_by_a_question_past_the_forks_on_bookworm,
    a_run_killed_after_the_reload_is_settled_by_a_question_past_the_forks_on_trixie
);

/// dockhand dies right after ssh's reload on two hosts; the next run is on
/// a terminal, past `--forks`. Its plan pass takes each host's lock and
/// settles what the kill left (fires the switch, puts the backups back)
/// before the plan is made, so the plans shown are what the apply's own
/// lock finds: after `yes` every host converges (none is failed as changed
/// since shown), and nothing is left behind.
fn killed_then_asked_past_the_forks(name: &str, release: Release) {
    let scene = Scene::fresh(name, 2, release);
    let playbook = scene.dir.path().join("sshd.yaml");
    std::fs::write(&playbook, "sshd:\n  revert_after: 120\n").unwrap();
    let playbook = playbook.to_string_lossy().into_owned();
    apply_killed_at(&scene, &playbook, "reloading ssh done", Duration::ZERO);
    let hosts = scene.lab.host_names();
    assert!(
        hosts
            .iter()
            .any(|host| armed_switches(&scene, host).trim() == "1"),
        "the killed run left a switch armed"
    );

    let inventory = scene.inventory.to_string_lossy();
    let asked = scene.lab.command_with(
        &["apply", "-i", &inventory, &playbook, "--forks", "1"],
        &[("DOCKHAND_PKI_DIR", scene.pki.as_os_str())],
    );
    let (code, shown) = common::on_a_terminal(asked, || {});
    assert_eq!(code, Some(0), "{shown}");
    for host in &hosts {
        assert_eq!(
            armed_switches(&scene, host).trim(),
            "0",
            "{host}: no switch left to fire"
        );
        assert_eq!(
            drop_in_leftovers(&scene, host).trim(),
            "0",
            "{host}: no backup or temp"
        );
        assert!(
            drop_in(&scene, host).contains("PasswordAuthentication no"),
            "{host}"
        );
        assert!(login_works(&scene, host), "{host}");
    }
    expect_exit(
        dockhand_pki(
            &scene.lab,
            &scene.pki,
            &["plan", "-i", &inventory, &playbook, "--detailed-exitcode"],
        ),
        0,
    );
    assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}
