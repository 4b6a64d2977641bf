//! End to end: `dockhand apply` secures real lab hosts, checked with
//! independent clients (the docker CLI with a client bundle, curl, stat and
//! sshd -T over OpenSSH); re-runs change and restart nothing; hand edits
//! are put right on that host alone; become gives root's end state; and a
//! killed apply never leaves a managed file half-written or too open.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{
    Release, Scene, TestLab, active_since, apply, assert_success, docker_over_tls, dockhand_pki,
    expect_exit,
};
use serde_json::Value;

const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");

fn fresh_lab(name: &str, hosts: usize) -> TestLab {
    TestLab::fresh(name, hosts, Release::Bookworm)
}

fn dockhand(lab: &TestLab, pki: &Path, args: &[&str]) -> Output {
    dockhand_pki(lab, pki, args)
}

fn apply_json(
    lab: &TestLab,
    pki: &Path,
    inventory: &Path,
    extra: &[&str],
) -> (Option<i32>, Value, String) {
    let inventory = inventory.to_string_lossy();
    let mut args = vec!["apply", "-i", &inventory, PLAYBOOK, "--format", "json"];
    args.extend_from_slice(extra);
    let output = dockhand(lab, pki, &args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "apply JSON: {e}\n{}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (output.status.code(), json, stderr)
}

/// `plan --detailed-exitcode`'s exit code: 0 converged, 2 changes pending.
fn plan_exit_code(lab: &TestLab, pki: &Path, inventory: &Path) -> Option<i32> {
    let inventory = inventory.to_string_lossy();
    dockhand(
        lab,
        pki,
        &["plan", "-i", &inventory, PLAYBOOK, "--detailed-exitcode"],
    )
    .status
    .code()
}

/// Public-key logins sshd has logged on `host` so far, as its journal has
/// them (the counting login included: the journal is read a second later).
fn logins(lab: &TestLab, host: &str) -> u32 {
    lab.ssh(
        host,
        "sleep 1; journalctl -q -o cat -t sshd -t sshd-session --grep 'Accepted publickey' | wc -l",
    )
    .trim()
    .parse()
    .unwrap()
}

on_all_releases!(
    secures_fresh_hosts_and_reruns_change_nothing,
    "apply",
    apply_secures_fresh_bullseye_hosts_and_reruns_change_nothing,
    apply_secures_fresh_bookworm_hosts_and_reruns_change_nothing,
    apply_secures_fresh_trixie_hosts_and_reruns_change_nothing,
    apply_secures_fresh_forky_hosts_and_reruns_change_nothing
);

on_all_releases!(
    first_run_beyond_the_forks,
    "first",
    a_first_run_beyond_the_forks_plans_then_applies_on_bullseye,
    a_first_run_beyond_the_forks_plans_then_applies_on_bookworm,
    a_first_run_beyond_the_forks_plans_then_applies_on_trixie,
    a_first_run_beyond_the_forks_plans_then_applies_on_forky
);

/// A first run (an empty store) over more hosts than `--forks`: each host
/// is planned on a login of its own, closed, then the CA is made and the
/// apply logs in again. Every host ends with the store's CA (sha256sum on
/// both sides), and a re-run changes nothing.
fn first_run_beyond_the_forks(name: &str, release: Release) {
    let scene = Scene::fresh(name, 2, release);
    let (lab, inventory, pki) = (&scene.lab, &scene.inventory, &scene.pki);
    let (code, report, stderr) = apply_json(lab, pki, inventory, &["--forks", "1"]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(report["summary"]["changed"], 2, "{report:#}");
    for host in report["hosts"].as_array().unwrap() {
        // The plan's login and its gather; then the converge's 4 round
        // trips on its own login and verification's fresh one.
        let traffic = &host["traffic"];
        assert_eq!(traffic["logins"], 3, "{traffic}");
        assert_eq!(traffic["round_trips"], 5, "{traffic}");
    }
    let digest = |text: &str| text.split_whitespace().next().unwrap_or("").to_string();
    let ours = Command::new("sha256sum")
        .arg(pki.join("ca.pem"))
        .output()
        .unwrap();
    let ours = digest(&String::from_utf8_lossy(&ours.stdout));
    assert_eq!(ours.len(), 64, "the store's CA");
    for host in lab.host_names() {
        let theirs = lab.ssh(&host, "sha256sum /etc/docker/tls/ca.pem");
        assert_eq!(digest(&theirs), ours, "{host}");
    }
    let (code, report, stderr) = apply_json(lab, pki, inventory, &["--forks", "1"]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(report["summary"]["unchanged"], 2, "{report:#}");

    // On a terminal, beyond the forks: the plans are shown with no host
    // locked or connected while the user reads. A host changed meanwhile
    // is failed and left as it is; the other is applied as shown.
    let cert = "/etc/docker/tls/server-cert.pem";
    let hosts = lab.host_names();
    for host in &hosts {
        lab.ssh(host, &format!("chmod 0644 {cert}"));
    }
    let moved = &hosts[1];
    let inventory_text = inventory.to_string_lossy();
    let apply = lab.command_with(
        &["apply", "-i", &inventory_text, PLAYBOOK, "--forks", "1"],
        &[("DOCKHAND_PKI_DIR", pki.as_os_str())],
    );
    let (code, shown) = common::on_a_terminal(apply, || {
        for host in &hosts {
            // No lock held, and no session but this check's own (a
            // plan's closed connection may take a moment to go).
            let held = lab.ssh(
                host,
                "for i in $(seq 50); do flock -n /var/lib/dockhand/apply.lock true \
                       && [ \"$(ps -eo args | grep -c '[@]notty')\" = 1 ] && echo free && exit; \
                     sleep 0.1; done; ps -eo args | grep '[@]notty'",
            );
            assert_eq!(held.trim(), "free", "{host}: held while asked");
        }
        lab.ssh(moved, &format!("chmod 0600 {cert}"));
    });
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("its plan is no longer the one shown"),
        "{shown}"
    );
    let mode = |host: &str| {
        lab.ssh(host, &format!("stat -c %a {cert}"))
            .trim()
            .to_string()
    };
    assert_eq!(mode(&hosts[0]), "444", "{shown}");
    assert_eq!(mode(moved), "600", "{shown}");
    let (code, report, stderr) = apply_json(lab, pki, inventory, &["--forks", "1"]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(report["summary"]["changed"], 1, "{report:#}");
    assert_eq!(mode(moved), "444");
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

/// apply, checked with the docker CLI, curl, stat and `sshd -T`; verify;
/// a no-op re-run; a hand edit put right on that host alone.
fn secures_fresh_hosts_and_reruns_change_nothing(name: &str, release: Release) {
    let scene = Scene::fresh(name, 3, release);
    let (lab, dir, inventory, pki) = (&scene.lab, scene.dir.path(), &scene.inventory, &scene.pki);

    let (code, report, stderr) = apply_json(lab, pki, inventory, &[]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(report["summary"]["changed"], 3, "{report:#}");
    // Off a terminal, progress is plain lines: no colour, no cursor moves.
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\r'),
        "control characters off a terminal:\n{stderr:?}"
    );
    assert!(stderr.contains("] apply: 3 host(s)"), "{stderr}");
    for host in report["hosts"].as_array().unwrap() {
        assert_eq!(
            host["handlers"],
            serde_json::json!(["daemon-reload", "reload-ssh", "restart-docker"])
        );
        // Round trips after connecting (issue 21): the lock with the
        // gather, staging with the commit (on the lock's channel, whose
        // window is open), the fresh login with sshd -T, the finish (on
        // the lock's channel too); the TLS probes apart.
        let traffic = &host["traffic"];
        assert_eq!(traffic["round_trips"], 4, "{traffic}");
        assert_eq!(traffic["logins"], 2, "{traffic}");
    }

    // Independent clients: the docker CLI with a client bundle, curl without one.
    let bundle = dir.join("bundle");
    assert_success(
        &dockhand(
            lab,
            pki,
            &["pki", "client", "ci", "--out", &bundle.to_string_lossy()],
        ),
        "pki client",
    );
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(bundle.join("key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    let state = lab.state();
    let expected_major = match release {
        Release::Bullseye | Release::Bookworm => "20.",
        Release::Trixie => "26.",
        Release::Forky => "28.",
    };
    for host in &state.hosts {
        let docker = docker_over_tls(
            &host.address.to_string(),
            &bundle,
            &["version", "--format", "{{.Server.Version}}"],
        );
        assert_success(&docker, &format!("docker version against {}", host.name));
        assert!(
            String::from_utf8_lossy(&docker.stdout).starts_with(expected_major),
            "{}: dockerd {}",
            host.name,
            String::from_utf8_lossy(&docker.stdout)
        );

        let curl = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(bundle.join("ca.pem"))
            .arg(format!("https://{}:2376/version", host.address))
            .output()
            .unwrap();
        assert!(
            !curl.status.success(),
            "{}: curl without a client certificate got in",
            host.name
        );

        let modes = lab.ssh(&host.name, "stat -c '%n %U:%G %a' /etc/docker/tls/ca.pem /etc/docker/tls/server-cert.pem /etc/docker/tls/server-key.pem");
        assert_eq!(
            modes,
            "/etc/docker/tls/ca.pem root:root 444\n/etc/docker/tls/server-cert.pem root:root 444\n/etc/docker/tls/server-key.pem root:root 400\n"
        );
        // Keywords as the host prints them: lower case up to OpenSSH 10.5,
        // mixed case (`PasswordAuthentication no`) from 10.6 on.
        let sshd = common::sshd_effective(lab, &host.name);
        for (keyword, value) in [
            ("passwordauthentication", "no"),
            ("kbdinteractiveauthentication", "no"),
            ("maxauthtries", "3"),
        ] {
            assert_eq!(
                sshd.get(keyword).map(String::as_str),
                Some(value),
                "{}: {keyword}",
                host.name
            );
        }
        assert!(
            ["without-password", "prohibit-password"].contains(&sshd["permitrootlogin"].as_str()),
            "{}: permitrootlogin {}",
            host.name,
            sshd["permitrootlogin"]
        );
        if matches!(release, Release::Trixie | Release::Forky) {
            // OpenSSH 10: sessions run in sshd-session, and every lab.ssh
            // call above was a fresh login served by it after the reload.
            assert!(
                lab.ssh(&host.name, "sshd -V 2>&1 || ssh -V 2>&1")
                    .contains("OpenSSH_10")
            );
            assert_eq!(
                lab.ssh(
                    &host.name,
                    "test -x /usr/lib/openssh/sshd-session && echo split"
                )
                .trim(),
                "split"
            );
        }
        // No backup or temp file is left behind.
        assert_eq!(lab.ssh(&host.name, "ls -A /etc/docker/tls /etc/systemd/system/docker.service.d | grep -c dockhand || true").trim(), "0");
    }

    // verify, on its own, passes every check on every host.
    let verify = dockhand(
        lab,
        pki,
        &[
            "verify",
            "-i",
            &inventory.to_string_lossy(),
            PLAYBOOK,
            "--format",
            "json",
        ],
    );
    let verified: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(verify.status.code(), Some(0), "{verified:#}");
    assert_eq!(verified["summary"]["verified"], 3, "{verified:#}");
    assert!(
        verified["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["status"] == "verified"),
        "{verified:#}"
    );

    // A second apply changes nothing and restarts nothing, and logs in
    // once per host: no second connection when nothing changed.
    let before: Vec<String> = state
        .hosts
        .iter()
        .map(|h| active_since(lab, &h.name))
        .collect();
    let logins_before: Vec<u32> = state.hosts.iter().map(|h| logins(lab, &h.name)).collect();
    let (code, report, _) = apply_json(lab, pki, inventory, &[]);
    let logins_after: Vec<u32> = state.hosts.iter().map(|h| logins(lab, &h.name)).collect();
    for ((host, before), after) in state.hosts.iter().zip(&logins_before).zip(&logins_after) {
        // One login by dockhand, one by the counting ssh itself.
        assert_eq!(
            after - before,
            2,
            "{}: SSH logins during a no-op",
            host.name
        );
    }
    assert_eq!(code, Some(0));
    assert_eq!(report["summary"]["unchanged"], 3, "{report:#}");
    for host in report["hosts"].as_array().unwrap() {
        let traffic = &host["traffic"];
        assert_eq!(traffic["round_trips"], 1, "a no-op: {traffic}");
        assert_eq!(traffic["logins"], 1, "a no-op: {traffic}");
    }
    assert!(
        report["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["handlers"] == serde_json::json!([]))
    );
    let after: Vec<String> = state
        .hosts
        .iter()
        .map(|h| active_since(lab, &h.name))
        .collect();
    assert_eq!(before, after, "docker was not restarted");
    assert_eq!(plan_exit_code(lab, pki, inventory), Some(0));

    // What the host's programs said (what they can do, and `sshd -T`) is
    // kept on the host by the apply (see the gather), under the identity
    // of every file they read; verify's fresh login after the converge
    // kept sshd's settings as they are now, which `sshd -T` itself shows.
    let kept_on = &state.hosts[0].name;
    // The host's own shell reads the file as the gather does: the key,
    // then everything else that was kept.
    let kept = || {
        let text = lab.ssh(
            kept_on,
            ". /var/lib/dockhand/host-facts && printf '%s\\n@@\\n%s\\n%s\\n%s\\n%s\\n' \"$kept_key\" \"$kept_programs\" \"$kept_patterns\" \"$kept_answers\" \"$kept_settings\"",
        );
        let (key, rest) = text.split_once("\n@@\n").unwrap_or_default();
        (key.to_string(), rest.to_string())
    };
    let (key, rest) = kept();
    for input in [
        "/var/lib/dpkg/status",
        "/etc/passwd",
        "/etc/ssh/sshd_config",
        "/etc/ssh/sshd_config.d/00-dockhand.conf",
    ] {
        assert!(key.contains(&format!(":{input}\t")), "{input} in {key}");
    }
    let answers = rest.lines().nth(2).unwrap_or_default();
    assert!(
        answers.starts_with("ssh_kex ") || answers.starts_with("openssh_version "),
        "{rest}"
    );
    let live = lab.ssh(kept_on, "sshd -T");
    assert!(
        rest.ends_with(&live) && live.lines().count() > 50,
        "kept:\n{rest}\nsshd -T:\n{live}"
    );
    // systemd's view of the units was kept too (by the fresh login, after
    // the commit's daemon-reload): as `systemctl show` gives it now.
    let units = || {
        lab.ssh(
            kept_on,
            ". /var/lib/dockhand/host-facts && printf '%s\n' \"$kept_units\"",
        )
    };
    let live_units = lab.ssh(
        kept_on,
        "systemctl show -p Id -p DropInPaths -p FragmentPath -p ControlGroup -p NeedDaemonReload docker.service sshd.service",
    );
    let kept_units = units();
    for line in live_units.lines().filter(|l| !l.is_empty()) {
        assert!(
            kept_units.lines().any(|k| k == line),
            "{line} in\n{kept_units}"
        );
    }
    assert!(
        kept_units.contains("/etc/systemd/system/docker.service.d/override.conf")
            && kept_units.contains("ControlGroup=/system.slice/docker.service\n")
            && key.contains(":/run/systemd/generator\t"),
        "{kept_units}\n{key}"
    );
    // What the managed files said was kept too (by the fresh login after
    // the commit): their digests as the host's own sha256sum gives them.
    let files_said = lab.ssh(
        kept_on,
        ". /var/lib/dockhand/host-files && printf '%s' \"$kept_files_said\"",
    );
    let digests: Vec<&str> = files_said
        .split("@sha256\n")
        .nth(1)
        .and_then(|rest| rest.split("@content").next())
        .unwrap_or_default()
        .lines()
        .collect();
    assert!(digests.len() >= 6, "{files_said}");
    for line in digests {
        let (_, path) = line.split_once("  ").unwrap();
        assert_eq!(
            lab.ssh(kept_on, &format!("sha256sum '{path}'")).trim(),
            line
        );
    }
    // The same bytes written over dpkg's status (the same inode, a new
    // ctime), a file sshd reads that was not there, then a daemon-reload:
    // each is asked again, with the same answers, and the run stays a
    // no-op.
    let mut key = key;
    for change in [
        "cp /var/lib/dpkg/status /tmp/status && cat /tmp/status > /var/lib/dpkg/status && rm /tmp/status",
        "echo '# kept by hand' > /etc/ssh/sshd_config.d/50-local.conf",
        "systemctl daemon-reload",
    ] {
        lab.ssh(kept_on, change);
        let (code, report, _) = apply_json(lab, pki, inventory, &[]);
        assert_eq!(code, Some(0));
        assert_eq!(report["summary"]["unchanged"], 3, "{report:#}");
        let (key_again, rest_again) = kept();
        assert_ne!(key_again, key, "asked again after `{change}`");
        assert_eq!(rest_again, rest);
        key = key_again;
    }
    assert!(
        key.contains(":/etc/ssh/sshd_config.d/50-local.conf\t"),
        "{key}"
    );
    // The same view asked again (ExecStart's line also says when it last
    // ran, which a reload forgets).
    let settled = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with("ExecStart="))
            .map(String::from)
            .collect()
    };
    assert_eq!(settled(&units()), settled(&kept_units));
    lab.ssh(kept_on, "rm /etc/ssh/sshd_config.d/50-local.conf");

    // One host edited by hand: only it changes, and docker restarts only there.
    let edited = &state.hosts[1].name;
    lab.ssh(
        edited,
        "sed -i 's/\"icc\": false/\"icc\": true/' /etc/docker/daemon.json",
    );
    let (code, report, _) = apply_json(lab, pki, inventory, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(report["summary"]["changed"], 1, "{report:#}");
    for (host, since) in report["hosts"].as_array().unwrap().iter().zip(&after) {
        let name = host["host"].as_str().unwrap();
        if name == edited {
            assert_eq!(
                host["changes"],
                serde_json::json!(["/etc/docker/daemon.json"])
            );
            assert_eq!(host["handlers"], serde_json::json!(["restart-docker"]));
            assert_ne!(
                &active_since(lab, name),
                since,
                "docker restarted on the edited host"
            );
        } else {
            assert_eq!(host["status"], "unchanged");
            assert_eq!(
                &active_since(lab, name),
                since,
                "{name}: docker not restarted"
            );
        }
    }
    assert!(
        lab.ssh(edited, "cat /etc/docker/daemon.json")
            .contains("\"icc\": false")
    );

    // verify fails, naming the host and the step, when a daemon is down.
    let stopped = &state.hosts[2].name;
    lab.ssh(stopped, "systemctl stop docker.socket docker.service");
    let verify = dockhand(
        lab,
        pki,
        &["verify", "-i", &inventory.to_string_lossy(), PLAYBOOK],
    );
    let text = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(stopped.as_str()) && l.contains("mutual-TLS GET /info")),
        "{text}"
    );
    lab.start_docker(stopped);
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

on_both_releases!(
    become_gives_the_same_end_state_as_root,
    "become",
    apply_through_the_sudo_user_gives_the_same_end_state_as_root_on_bookworm,
    apply_through_the_sudo_user_gives_the_same_end_state_as_root_on_trixie
);

fn become_gives_the_same_end_state_as_root(name: &str, release: Release) {
    let scene = Scene::fresh(name, 2, release);
    let (lab, inventory, pki) = (&scene.lab, &scene.inventory, &scene.pki);
    let (first, second) = (format!("{name}-01"), format!("{name}-02"));
    let text = std::fs::read_to_string(inventory).unwrap();
    // The second host is reached as the sudo user; the first as root.
    let text = text.replacen(
        &format!("  {second}:\n"),
        &format!(
            "  {second}:\n    ssh: {{ user: {}, become: true }}\n",
            dockhand::lab::SUDO_USER
        ),
        1,
    );
    std::fs::write(inventory, text).unwrap();
    let (code, report, stderr) = apply_json(lab, pki, inventory, &[]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(report["summary"]["changed"], 2);

    let end_state = |host: &str| {
        lab.ssh(
            host,
            "cd / && stat -c '%n %U:%G %a' etc/docker/tls etc/docker/tls/* etc/docker/daemon.json \
             etc/systemd/system/docker.service.d/override.conf etc/ssh/sshd_config.d/00-dockhand.conf; \
             sha256sum etc/docker/daemon.json etc/systemd/system/docker.service.d/override.conf \
             etc/ssh/sshd_config.d/00-dockhand.conf etc/docker/tls/ca.pem; \
             systemctl is-active docker; sshd -T | grep -E '^(passwordauthentication|kbdinteractiveauthentication|x11forwarding|maxauthtries) '",
        )
    };
    assert_eq!(end_state(&first), end_state(&second));
    let (code, report, _) = apply_json(lab, pki, inventory, &[]);
    assert_eq!(
        (code, report["summary"]["unchanged"].as_u64()),
        (Some(0), Some(2))
    );
    // As root the no-op's script goes on the command line: one round trip.
    // Through sudo it goes on stdin, so sudo's log line (the no-op's is the
    // last) stays `/bin/sh -s`, and waits a round trip for OpenSSH to open
    // the channel's window.
    let round_trips = |host: &str| {
        report["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host)
            .map(|h| h["traffic"]["round_trips"].clone())
    };
    assert_eq!(
        (round_trips(&first), round_trips(&second)),
        (Some(1.into()), Some(2.into())),
        "{report:#}"
    );
    let logged = lab.ssh(
        &second,
        "journalctl -q --no-pager -t sudo -g 'COMMAND=' | tail -n 1",
    );
    assert!(
        logged.contains("COMMAND=/bin/sh -s") && !logged.contains("dockhand: "),
        "{logged}"
    );
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

/// Expected final mode and content digest of each managed file.
fn expected_files(lab: &TestLab, host: &str) -> Vec<(String, String, String)> {
    lab.ssh(
        host,
        "for f in /etc/docker/tls/ca.pem /etc/docker/tls/server-cert.pem /etc/docker/tls/server-key.pem /etc/docker/daemon.json \
         /etc/systemd/system/docker.service.d/override.conf /etc/ssh/sshd_config.d/00-dockhand.conf; do \
         printf '%s %s %s\\n' \"$f\" \"$(stat -c %a \"$f\")\" \"$(sha256sum < \"$f\" | cut -c1-64)\"; done",
    )
    .lines()
    .map(|l| {
        let mut parts = l.split(' ');
        let (path, mode, sha) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        (path.to_string(), mode.to_string(), sha.to_string())
    })
    .collect()
}

on_both_releases!(
    killed_apply_never_leaves_files_half_written,
    "kill",
    a_killed_apply_never_leaves_files_half_written_or_open_and_a_rerun_converges_on_bookworm,
    a_killed_apply_never_leaves_files_half_written_or_open_and_a_rerun_converges_on_trixie
);

/// apply killed ten times at points from staging to verification; the
/// host never shows a half-written file or one more open than asked, and
/// the next run converges with no switch left to fire and nothing left
/// behind.
fn killed_apply_never_leaves_files_half_written(name: &str, release: Release) {
    let lab = TestLab::fresh(name, 1, release);
    let host = &format!("{name}-01");
    let dir = tempfile::tempdir().unwrap();
    let inventory = lab.inventory_file(dir.path());
    let pki = dir.path().join("pki");
    let args = ["apply", "-i", &inventory.to_string_lossy(), PLAYBOOK];
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();

    // Learn the end state once, then go back to a fresh host.
    assert_success(&dockhand(&lab, &pki, &args), "first apply");
    let expected = expected_files(&lab, host);
    let reset = "rm -rf /etc/docker/tls /etc/docker/daemon.json /etc/systemd/system/docker.service.d \
                 /etc/ssh/sshd_config.d/00-dockhand.conf && systemctl daemon-reload && systemctl reset-failed docker.service docker.socket; systemctl restart docker";
    lab.ssh(host, reset);

    // A sampler on the host records every managed file and temp file it
    // sees (mode and digest), as fast as it can, while applies are killed.
    lab.ssh(
        host,
        "cat > /root/sampler <<'EOF'\n\
         end=$(( $(date +%s) + 40 ))\n\
         while [ $(date +%s) -lt $end ]; do\n\
           for f in /etc/docker/tls/* /etc/docker/tls/.[!.]* /etc/docker/daemon.json /etc/docker/.daemon.json* \
                    /etc/systemd/system/docker.service.d/* /etc/systemd/system/docker.service.d/.[!.]* \
                    /etc/ssh/sshd_config.d/00-dockhand.conf /etc/ssh/sshd_config.d/.00-dockhand.conf*; do\n\
             [ -f \"$f\" ] && printf '%s %s %s\\n' \"$f\" \"$(stat -c %a \"$f\" 2>/dev/null)\" \"$(sha256sum < \"$f\" 2>/dev/null | cut -c1-64)\"\n\
           done\n\
         done > /root/samples 2>/dev/null\n\
         EOF\n\
         nohup sh /root/sampler >/dev/null 2>&1 &\n\
         echo $! > /root/sampler.pid",
    );
    let started = Instant::now();
    let mut kills = 0;
    for delay_ms in [60u64, 120, 180, 240, 300, 360, 420, 500, 600, 700] {
        let mut child = Command::new(common::BIN)
            .args(&args)
            .env("DOCKHAND_LAB_DIR", common::state_root())
            .env("DOCKHAND_PKI_DIR", &pki)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        lab.wait_for_sshd(host);
        if delay_ms % 120 == 0 {
            lab.ssh(host, reset);
        }
    }
    assert!(kills >= 3, "apply was killed mid-way only {kills} time(s)");
    assert!(
        started.elapsed() < Duration::from_secs(35),
        "the sampler must outlive the kills"
    );

    // Whatever was interrupted, a re-run converges and verifies, and leaves
    // no switch to fire and nothing behind.
    assert_success(&dockhand(&lab, &pki, &args), "apply after the kills");
    assert_eq!(expected_files(&lab, host), expected);
    assert_eq!(plan_exit_code(&lab, &pki, &inventory), Some(0));
    assert_eq!(
        lab.ssh(
            host,
            "systemctl list-units --all --no-legend 'dockhand-sshd-revert-*.timer' | wc -l; \
             find /etc/docker /etc/systemd/system/docker.service.d /etc/ssh/sshd_config.d -name '.*dockhand-*' | wc -l"
        ),
        "0\n0\n"
    );

    lab.ssh(host, "kill $(cat /root/sampler.pid) 2>/dev/null || true");
    let samples = lab.ssh(host, "cat /root/samples");
    let mut managed_seen = 0;
    for line in samples.lines() {
        let mut parts = line.split(' ');
        let (path, mode, sha) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        if mode.is_empty() || sha.is_empty() {
            continue; // gone between listing and reading
        }
        if let Some((_, want_mode, want_sha)) = expected.iter().find(|(p, ..)| p == path) {
            managed_seen += 1;
            assert_eq!(mode, want_mode, "{path} seen with mode {mode}");
            assert_eq!(
                sha, want_sha,
                "{path} seen with other content (half-written?)"
            );
        } else {
            // A staged temp file or a backup: never more open than its target.
            let target = expected
                .iter()
                .find(|(p, ..)| {
                    let base = p.rsplit('/').next().unwrap();
                    path.contains(&format!("/.{base}.dockhand-"))
                })
                .unwrap_or_else(|| panic!("unexpected file {path}"));
            assert!(
                mode == "600" || mode == target.1,
                "{path} seen with mode {mode}"
            );
        }
    }
    assert!(
        managed_seen > 20,
        "the sampler saw managed files only {managed_seen} time(s):\n{samples}"
    );
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

#[test]
fn on_a_terminal_apply_shows_the_plan_and_only_yes_proceeds() {
    let lab = fresh_lab("confirm", 1);
    let dir = tempfile::tempdir().unwrap();
    let inventory = lab.inventory_file(dir.path());
    let pki = dir.path().join("pki");
    // `script` gives apply a real terminal; the answer comes on its input.
    let on_terminal = |answer: &str, extra: &str| {
        let command = format!(
            "{} apply -i {} {PLAYBOOK} {extra}",
            common::BIN,
            inventory.display()
        );
        let mut child = Command::new("script")
            .args(["-qefc", &command, "/dev/null"])
            .env("DOCKHAND_LAB_DIR", common::state_root())
            .env("DOCKHAND_PKI_DIR", &pki)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let plan_code = || plan_exit_code(&lab, &pki, &inventory);

    let declined = on_terminal("y\n", "");
    let text = String::from_utf8_lossy(&declined.stdout);
    assert_eq!(declined.status.code(), Some(1), "{text}");
    assert!(
        text.contains("+ file /etc/docker/tls/server-key.pem"),
        "the plan is shown first:\n{text}"
    );
    assert!(
        text.contains("Apply these changes?") && text.contains("apply cancelled"),
        "{text}"
    );
    assert_eq!(plan_code(), Some(2), "a declined apply changes nothing");
    assert!(
        !pki.exists(),
        "a declined apply writes nothing locally either: no CA, no certificate"
    );

    let accepted = on_terminal("yes\n", "");
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&accepted.stdout)
    );
    assert_eq!(plan_code(), Some(0));

    // --yes never asks, even on a terminal (nothing to answer with here).
    lab.ssh(
        "confirm-01",
        "rm -f /etc/ssh/sshd_config.d/00-dockhand.conf",
    );
    let unasked = on_terminal("", "--yes");
    let text = String::from_utf8_lossy(&unasked.stdout);
    assert_eq!(unasked.status.code(), Some(0), "{text}");
    // On a terminal the progress is drawn as bars: the rollout's, with the
    // finished host printed above it.
    assert!(text.contains("/1 hosts"), "bars on a terminal:\n{text}");
    assert!(text.contains("confirm-01: changed: "), "{text}");
    assert!(
        text.contains("\u{1b}["),
        "terminal control sequences:\n{text}"
    );
    assert!(!text.contains("Apply these changes?"), "{text}");
    assert_eq!(plan_code(), Some(0));
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

/// On a terminal, Ctrl-C while the user reads answers no: the apply is
/// cancelled and nothing is changed (counted by a task on the command's
/// runtime while the question waited on that runtime's one thread, the
/// signal was never read, and the run hung there).
#[test]
fn on_a_terminal_ctrl_c_at_the_question_cancels_and_changes_nothing() {
    let lab = fresh_lab("reading", 1);
    let dir = tempfile::tempdir().unwrap();
    let inventory = lab.inventory_file(dir.path());
    let inventory_text = inventory.to_string_lossy().into_owned();
    let pki = dir.path().join("pki");
    let apply = lab.command_with(
        &["apply", "-i", &inventory_text, PLAYBOOK],
        &[("DOCKHAND_PKI_DIR", pki.as_os_str())],
    );
    let reads = || std::thread::sleep(Duration::from_secs(2));
    let (code, shown) = common::typed_on_a_terminal(apply, reads, b"\x03");
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("+ file /etc/ssh/sshd_config.d/00-dockhand.conf"),
        "the plan is shown first:\n{shown}"
    );
    assert!(shown.contains("apply cancelled"), "{shown}");
    assert_eq!(
        plan_exit_code(&lab, &pki, &inventory),
        Some(2),
        "Ctrl-C at the question changes nothing"
    );
    assert!(!pki.exists(), "nor anything locally: no CA, no certificate");
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

/// The shipped playbook with a setting dockerd refuses at start, so the
/// restart handler fails.
fn broken_playbook(dir: &Path) -> PathBuf {
    let broken = dir.join("broken.yaml");
    let text = std::fs::read_to_string(PLAYBOOK)
        .unwrap()
        .replace("log-driver: json-file", "log-driver: no-such-driver");
    std::fs::write(&broken, text).unwrap();
    broken
}

on_both_releases!(
    daemon_that_will_not_start_is_rolled_back,
    "rollback",
    a_bookworm_host_whose_daemon_will_not_start_is_rolled_back_and_reported,
    a_trixie_host_whose_daemon_will_not_start_is_rolled_back_and_reported
);

/// dockerd 26's `--validate` accepts an unknown log driver, so on trixie
/// too it is the restart that fails and the rollback that puts it right.
fn daemon_that_will_not_start_is_rolled_back(name: &str, release: Release) {
    let scene = Scene::fresh(name, 1, release);
    let (lab, dir, inventory, pki) = (&scene.lab, scene.dir.path(), &scene.inventory, &scene.pki);
    let host = &format!("{name}-01");
    let broken = broken_playbook(dir);
    let managed = "/etc/docker/daemon.json /etc/docker/tls/ca.pem /etc/docker/tls/server-cert.pem /etc/docker/tls/server-key.pem \
                   /etc/systemd/system/docker.service.d/override.conf /etc/ssh/sshd_config.d/00-dockhand.conf";
    let state_of = |host: &str| {
        lab.ssh(
            host,
            &format!(
                "for f in {managed} /etc/docker/tls /etc/systemd/system/docker.service.d; do \
                   [ -f $f ] && sha256sum $f || {{ [ -e $f ] && echo \"present $f\" || echo \"absent $f\"; }}; done; \
                 systemctl show docker -p ExecStart --value | sed 's/ ; start_time.*//'; sshd -T | grep -E '^passwordauthentication '"
            ),
        )
    };
    let before = state_of(host);

    let stdout = expect_exit(
        apply(lab, pki, inventory, &broken.to_string_lossy(), &[]),
        1,
    );
    assert!(
        stdout.contains("handler restart-docker failed")
            && stdout.contains("the previous files were restored"),
        "{stdout}"
    );
    assert!(stdout.contains("1 failed"), "{stdout}");

    // The host is as it was, and docker runs again.
    assert_eq!(lab.ssh(host, "systemctl is-active docker").trim(), "active");
    assert_eq!(
        state_of(host),
        before,
        "every managed file is back as it was, and in effect"
    );

    // The good playbook still applies.
    assert_success(&apply(lab, pki, inventory, PLAYBOOK, &[]), "apply");
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

#[test]
fn a_rolling_apply_stops_when_a_batch_fails_too_much_and_leaves_the_rest_alone() {
    let lab = fresh_lab("serial", 3);
    let dir = tempfile::tempdir().unwrap();
    let inventory = lab.inventory_file(dir.path());
    let pki = dir.path().join("pki");
    let broken = broken_playbook(dir.path());
    let broken = broken.to_string_lossy();

    let inventory_arg = inventory.to_string_lossy();
    let args = [
        "apply",
        "-i",
        &inventory_arg,
        &broken,
        "--serial",
        "1,50%,100%",
        "--max-fail-percent",
        "0",
        "--format",
        "json",
    ];
    let output = dockhand(&lab, &pki, &args);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let statuses: Vec<&str> = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "skipped", "skipped"], "{report:#}");
    assert!(
        report["hosts"][1]["error"]
            .as_str()
            .unwrap()
            .contains("over --max-fail-percent 0"),
        "{report:#}"
    );
    for host in ["serial-02", "serial-03"] {
        assert_eq!(
            lab.ssh(host, "ls /etc/docker/tls 2>/dev/null | wc -l")
                .trim(),
            "0",
            "{host} was not touched"
        );
    }

    // Batches of two: every batch finishes, every host is secured.
    let args = [
        "apply",
        "-i",
        &inventory_arg,
        PLAYBOOK,
        "--serial",
        "2",
        "--format",
        "json",
    ];
    let output = dockhand(&lab, &pki, &args);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["changed"], 3);

    // A bad --serial is refused before anything happens.
    let output = dockhand(
        &lab,
        &pki,
        &["apply", "-i", &inventory_arg, PLAYBOOK, "--serial", "0%"],
    );
    assert_eq!(output.status.code(), Some(1), "bad input exits 1, never 2");
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected a number of hosts"));
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

#[test]
fn a_file_its_validation_rejects_replaces_nothing() {
    let lab = fresh_lab("validate", 1);
    let host = "validate-01";
    let dir = tempfile::tempdir().unwrap();
    let inventory = lab.inventory_file(dir.path());
    let pki = dir.path().join("pki");
    let playbook = dir.path().join("motd.yaml");
    let write = |content: &str| {
        std::fs::write(
            &playbook,
            format!(
                "files:\n  - path: /etc/motd\n    content: \"{content}\\n\"\n    mode: \"0644\"\n    validate: grep -q '^welcome' %s\n"
            ),
        )
        .unwrap()
    };
    let before = lab.ssh(host, "sha256sum /etc/motd");
    write("hello from {{ nowhere }}");
    let args = [
        "apply",
        "-i",
        &inventory.to_string_lossy(),
        &playbook.to_string_lossy(),
    ];
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    let output = dockhand(&lab, &pki, &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("commit: validate /etc/motd: the check failed without a message"),
        "{stdout}"
    );
    assert_eq!(
        lab.ssh(host, "sha256sum /etc/motd"),
        before,
        "the file was not replaced"
    );
    assert_eq!(
        lab.ssh(host, "ls -A /etc | grep -c dockhand || true")
            .trim(),
        "0",
        "the staged file was removed"
    );

    write("welcome to {{ inventory_hostname }}");
    // plan shows the check that will run before the file is replaced.
    let plan = dockhand(
        &lab,
        &pki,
        &[
            "plan",
            "-i",
            &inventory.to_string_lossy(),
            &playbook.to_string_lossy(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&plan.stdout)
            .contains("checked before it replaces the old one, with: grep -q '^welcome' %s"),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    assert_success(&dockhand(&lab, &pki, &args), "apply with valid content");
    assert_eq!(
        lab.ssh(host, "cat /etc/motd"),
        "welcome to {{ inventory_hostname }}\n",
        "not a template"
    );

    // Paths with spaces are staged, committed and re-applied like any other.
    let spaced = dir.path().join("spaced.yaml");
    std::fs::write(
        &spaced,
        "directories:\n  - path: /etc/dockhand test\n    mode: \"0750\"\n\
         files:\n  - path: /etc/dockhand test/with space.conf\n    content: \"spaced out\\n\"\n    mode: \"0640\"\n",
    )
    .unwrap();
    let spaced_args = [
        "apply",
        "-i",
        &inventory.to_string_lossy(),
        &spaced.to_string_lossy(),
    ];
    let spaced_args: Vec<&str> = spaced_args.iter().map(|s| s.as_ref()).collect();
    assert_success(
        &dockhand(&lab, &pki, &spaced_args),
        "apply with spaces in paths",
    );
    assert_eq!(
        lab.ssh(host, "stat -c '%a %U' '/etc/dockhand test' '/etc/dockhand test/with space.conf'; cat '/etc/dockhand test/with space.conf'"),
        "750 root\n640 root\nspaced out\n"
    );
    let again = dockhand(
        &lab,
        &pki,
        &[&spaced_args[..], &["--format", "json"]].concat(),
    );
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["summary"]["unchanged"], 1, "{report:#}");
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

/// The shipped playbook with one more daemon setting.
fn with_daemon_setting(dir: &Path, name: &str, setting: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(PLAYBOOK).unwrap().replace(
        "    log-level: info",
        &format!("    log-level: info\n    {setting}"),
    );
    assert!(text.contains(setting));
    std::fs::write(&path, text).unwrap();
    path
}

on_both_releases!(
    daemon_setting_rejected_is_never_installed,
    "reject",
    on_bookworm_a_daemon_setting_dockerd_rejects_is_never_installed,
    on_trixie_a_daemon_setting_dockerd_rejects_is_never_installed
);

/// An unknown daemon.json key and a wrongly typed value are plan errors
/// for the host on every release (the core knows dockerd's options); on
/// trixie, a value only dockerd itself can judge is refused by
/// `dockerd --validate` against the staged files and the new drop-in's
/// flags. Either way nothing is installed on a host, converged or fresh,
/// and docker is not restarted.
fn daemon_setting_rejected_is_never_installed(name: &str, release: Release) {
    let scene = Scene::fresh(name, 2, release);
    let (lab, dir, inventory, pki) = (&scene.lab, scene.dir.path(), &scene.inventory, &scene.pki);
    let (converged, fresh) = (format!("{name}-01"), format!("{name}-02"));
    let (code, report, stderr) = apply_json(lab, pki, inventory, &["--limit", &converged]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");

    let look = |host: &str| {
        lab.ssh(
            host,
            "cd /etc && for f in docker/daemon.json docker/tls/ca.pem docker/tls/server-cert.pem docker/tls/server-key.pem \
               systemd/system/docker.service.d/override.conf; do [ -e $f ] && sha256sum $f || echo \"absent $f\"; done; \
             ls -d docker/tls systemd/system/docker.service.d 2>&1; ls -A docker docker/tls 2>/dev/null | grep -c dockhand || true",
        )
    };
    let hosts = [converged.as_str(), fresh.as_str()];
    let before: Vec<(String, String)> = hosts
        .iter()
        .map(|h| (look(h), active_since(lab, h)))
        .collect();
    assert!(
        before[1].0.contains("absent docker/daemon.json"),
        "{}",
        before[1].0
    );

    let mut cases = vec![
        (
            "unknown-key",
            "no-such-option: 1",
            "plan: /etc/docker/daemon.json: the playbook sets `no-such-option`, which dockerd",
        ),
        (
            "wrong-type",
            "max-concurrent-downloads: \"many\"",
            "`max-concurrent-downloads: \"many\"`: expected a whole number",
        ),
    ];
    if release == Release::Trixie {
        cases.push((
            "bad-level",
            "debug: true\n    log-format: xml",
            "validate /etc/docker/daemon.json: ",
        ));
    }
    for (case, setting, reason) in cases {
        let playbook = with_daemon_setting(dir, case, setting);
        let output = apply(lab, pki, inventory, &playbook.to_string_lossy(), &[]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{case}: {stdout}");
        for host in hosts {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(host) && l.contains("failed"))
                .unwrap_or_else(|| panic!("{case}: {host} reported failed:\n{stdout}"));
            assert!(line.contains(reason), "{case}: {line}");
        }
        let after: Vec<(String, String)> = hosts
            .iter()
            .map(|h| (look(h), active_since(lab, h)))
            .collect();
        assert_eq!(
            before, after,
            "{case}: daemon.json and the TLS files are byte-for-byte as they were, no directory was left behind, docker was not restarted"
        );
    }
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

/// The shipped playbook plus one generic file of the given mode.
fn with_file_mode(dir: &Path, mode: &str) -> PathBuf {
    let path = dir.join(format!("mode-{mode}.yaml"));
    let text = std::fs::read_to_string(PLAYBOOK).unwrap()
        + &format!(
            "\nfiles:\n  - path: /etc/dockhand-mode.conf\n    content: \"kept\\n\"\n    mode: \"{mode}\"\n"
        );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_mode_only_change_whose_verification_fails_is_reverted() {
    let scene = common::Scene::fresh("modes", 1, Release::Bookworm);
    let (lab, pki, host) = (&scene.lab, &scene.pki, "modes-01");
    let inventory = scene.inventory.to_string_lossy();
    let open = with_file_mode(scene.dir.path(), "0644");
    let closed = with_file_mode(scene.dir.path(), "0600");
    assert_success(
        &dockhand(
            lab,
            pki,
            &["apply", "-i", &inventory, &open.to_string_lossy()],
        ),
        "apply",
    );
    let stat = || lab.ssh(host, "stat -c '%a %U:%G' /etc/dockhand-mode.conf");
    assert_eq!(stat(), "644 root:root\n");
    // Only the mode changes; the daemon is down, so verification fails.
    lab.ssh(host, "systemctl stop docker.socket docker.service");
    let output = dockhand(
        lab,
        pki,
        &["apply", "-i", &inventory, &closed.to_string_lossy()],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("verify") && stdout.contains("the previous files were restored"),
        "{stdout}"
    );
    assert_eq!(stat(), "644 root:root\n", "the old mode is back");
    lab.start_docker(host);
    assert_success(
        &dockhand(
            lab,
            pki,
            &["apply", "-i", &inventory, &closed.to_string_lossy()],
        ),
        "apply once docker answers",
    );
    assert_eq!(stat(), "600 root:root\n");
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}
