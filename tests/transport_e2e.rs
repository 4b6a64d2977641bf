//! End to end: dockhand's russh transport against real lab hosts (Debian,
//! systemd, OpenSSH, dockerd), checked against what the hosts report.

mod common;

use common::{TestLab, assert_success, runtime};
use dockhand::error::{Error, HostError};
use dockhand::transport::{ExitStatus, HostKeyPolicy, SshSession, Transport};

const LAB: &str = "e2e";
const HOSTS: usize = 3;

fn host(number: usize) -> String {
    format!("{LAB}-{number:02}")
}

#[test]
fn runs_commands_on_every_host_over_one_connection() {
    let lab = TestLab::up(LAB, HOSTS);
    runtime().block_on(async {
        for number in 1..=HOSTS {
            let name = host(number);
            let session = SshSession::connect(&lab.target(&name, "root"))
                .await
                .unwrap();

            let hostname = session.run("hostname", "hostname", b"").await.unwrap();
            assert_eq!(hostname.stdout_text().trim(), name);

            let docker = session
                .exec("systemctl is-active docker", b"")
                .await
                .unwrap();
            assert_eq!(docker.stdout_text().trim(), "active", "{name}: docker");
            assert!(docker.success());

            // stdin reaches the command intact, and large inputs flow.
            let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
            let counted = session.run("wc", "wc -c", &payload).await.unwrap();
            assert_eq!(counted.stdout_text().trim(), "1000000");
            let echoed = session
                .run("cat", "cat", b"line one\nline two\n")
                .await
                .unwrap();
            assert_eq!(echoed.stdout, b"line one\nline two\n");

            // stderr and exit status are kept apart from stdout.
            let failed = session
                .exec("echo out; echo err >&2; exit 3", b"")
                .await
                .unwrap();
            assert_eq!(failed.status, ExitStatus::Code(3));
            assert_eq!(failed.stdout_text(), "out\n");
            assert_eq!(failed.stderr_text(), "err\n");
            assert!(!failed.success());

            // `run` turns a failure into an error naming host and step.
            let err = session
                .run("check the impossible", "false", b"")
                .await
                .unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&name) && text.contains("check the impossible"),
                "{text}"
            );

            // A flood is refused at the cap, and the connection still serves.
            let flood = session
                .exec("head -c 100000000 /dev/zero; echo done", b"")
                .await
                .unwrap_err()
                .to_string();
            assert!(
                flood.contains(&name) && flood.contains("sent more than 16 MiB for one command"),
                "{flood}"
            );
            let after = session.exec("echo still here", b"").await.unwrap();
            assert_eq!(after.stdout_text(), "still here\n");

            // Several commands at once on the same connection.
            let (a, b) = tokio::join!(
                session.exec("sleep 0.3; echo a", b""),
                session.exec("echo b", b"")
            );
            assert_eq!(
                (a.unwrap().stdout_text(), b.unwrap().stdout_text()),
                ("a\n".into(), "b\n".into())
            );

            session.disconnect().await.unwrap();
        }
    });
}

#[test]
fn the_sudo_user_logs_in_and_sudo_needs_no_password() {
    let lab = TestLab::up(LAB, HOSTS);
    runtime().block_on(async {
        for number in 1..=HOSTS {
            let name = host(number);
            let session = SshSession::connect(&lab.target(&name, dockhand::lab::SUDO_USER))
                .await
                .unwrap();
            let who = session.run("id", "id -un", b"").await.unwrap();
            assert_eq!(who.stdout_text().trim(), dockhand::lab::SUDO_USER);
            let sudo = session.exec("sudo -n true", b"").await.unwrap();
            assert!(
                sudo.success(),
                "{name}: sudo -n true: {}",
                sudo.stderr_text()
            );
            let root = session.run("sudo id", "sudo -n id -u", b"").await.unwrap();
            assert_eq!(root.stdout_text().trim(), "0");
            session.disconnect().await.unwrap();
        }
    });
}

#[test]
fn an_unknown_host_key_is_refused_when_strict_and_recorded_with_accept_new() {
    let lab = TestLab::up(LAB, HOSTS);
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let mut target = lab.target(&host(1), "root");
    target.known_hosts = vec![known_hosts.clone()].into();
    runtime().block_on(async {
        let err = SshSession::connect(&target)
            .await
            .err()
            .expect("strict refuses");
        assert!(
            matches!(
                err,
                Error::OnHost {
                    cause: HostError::HostKeyUnknown { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("is not known"), "{err}");
        assert!(!known_hosts.exists(), "strict must not record anything");

        target.host_key_policy = HostKeyPolicy::AcceptNew;
        let session = SshSession::connect(&target).await.unwrap();
        session.disconnect().await.unwrap();
        let recorded = std::fs::read_to_string(&known_hosts).unwrap();
        assert!(recorded.contains(&target.address), "{recorded}");

        // Once recorded, strict accepts it.
        target.host_key_policy = HostKeyPolicy::Strict;
        SshSession::connect(&target)
            .await
            .unwrap()
            .disconnect()
            .await
            .unwrap();
    });
}

#[test]
fn a_revoked_host_key_is_refused_and_openssh_agrees() {
    let lab = TestLab::up(LAB, HOSTS);
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let mut target = lab.target(&host(1), "root");
    // The lab's own records, plus the host's ed25519 key marked revoked.
    let recorded = std::fs::read_to_string(lab.paths().known_hosts()).unwrap();
    let line = recorded
        .lines()
        .find(|l| l.starts_with(&format!("{},", host(1))) && l.contains("ssh-ed25519"))
        .unwrap();
    let key: Vec<&str> = line.split_whitespace().collect();
    std::fs::write(
        &known_hosts,
        format!("{recorded}@revoked * {} {}\n", key[1], key[2]),
    )
    .unwrap();
    target.known_hosts = vec![known_hosts.clone()].into();
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        target.host_key_policy = policy;
        let err = runtime()
            .block_on(SshSession::connect(&target))
            .err()
            .expect("a revoked key is refused");
        assert!(
            matches!(
                err,
                Error::OnHost {
                    cause: HostError::HostKeyRevoked { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("REVOKED"), "{err}");
    }
    // OpenSSH refuses it too.
    let ssh = std::process::Command::new("ssh")
        .args(["-i", &lab.paths().key().to_string_lossy()])
        .args([
            "-o",
            &format!("UserKnownHostsFile={}", known_hosts.display()),
        ])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .args(["-o", "HostKeyAlgorithms=ssh-ed25519"])
        .arg(format!("root@{}", target.address))
        .arg("true")
        .output()
        .unwrap();
    assert!(!ssh.status.success());
    assert!(
        String::from_utf8_lossy(&ssh.stderr).contains("REVOKED"),
        "{}",
        String::from_utf8_lossy(&ssh.stderr)
    );
}

#[test]
fn a_wrong_key_fails_authentication_with_what_was_tried() {
    let lab = TestLab::up(LAB, HOSTS);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let mut target = lab.target(&host(2), "root");
    target.identity_files = vec![key.clone(), dir.path().join("missing")].into();
    runtime().block_on(async {
        let err = SshSession::connect(&target).await.err().expect("refused");
        let text = err.to_string();
        assert!(
            matches!(
                err,
                Error::OnHost {
                    cause: HostError::AuthFailed { .. },
                    ..
                }
            ),
            "{text}"
        );
        assert!(
            text.contains("refused") && text.contains("not found"),
            "{text}"
        );
        // The message names key files, never key material.
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    });
}

#[test]
fn an_address_where_nothing_listens_is_unreachable_with_the_reason() {
    let lab = TestLab::up(LAB, HOSTS);
    let mut target = lab.target(&host(1), "root");
    target.port = 2; // nothing listens there: the host answers with a reset
    runtime().block_on(async {
        let err = SshSession::connect(&target).await.err().expect("refused");
        assert!(err.is_unreachable(), "{err}");
        assert!(
            err.to_string().contains("unreachable") && err.to_string().contains("refused"),
            "{err}"
        );
    });
}

#[test]
fn ping_reports_every_host_and_checks_sudo_with_become() {
    let lab = TestLab::up(LAB, HOSTS);
    let inventory = lab.dockhand(&["lab", "inventory"]);
    assert_success(&inventory, "lab inventory");
    let dir = tempfile::tempdir().unwrap();
    let as_root = dir.path().join("root.yaml");
    std::fs::write(&as_root, &inventory.stdout).unwrap();

    let output = lab.dockhand(&["ping", "-i", &as_root.to_string_lossy()]);
    assert_success(&output, "ping");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for number in 1..=HOSTS {
        let name = host(number);
        assert!(
            stdout.contains(&format!("hostname={name} user=root docker=active")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!(
            "{HOSTS} host(s): {HOSTS} ok, 0 failed, 0 unreachable"
        )),
        "{stdout}"
    );

    // The same hosts through the unprivileged user, with become.
    let text = String::from_utf8_lossy(&inventory.stdout).replace(
        "    user: root\n",
        &format!("    user: {}\n    become: true\n", dockhand::lab::SUDO_USER),
    );
    let as_user = dir.path().join("user.yaml");
    std::fs::write(&as_user, text).unwrap();
    let output = lab.dockhand(&["ping", "-i", &as_user.to_string_lossy()]);
    assert_success(&output, "ping as the sudo user");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout
            .matches(&format!(
                "user={} docker=active sudo=ok",
                dockhand::lab::SUDO_USER
            ))
            .count(),
        HOSTS,
        "{stdout}"
    );

    // As JSON, for scripts: each host's answer and what it cost on the
    // wire (one login, one command), and the totals.
    let output = lab.dockhand(&["ping", "-i", &as_user.to_string_lossy(), "--format", "json"]);
    assert_success(&output, "ping --format json");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let hosts = report["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), HOSTS);
    for (number, entry) in (1..=HOSTS).zip(hosts) {
        assert_eq!(entry["host"], host(number), "{report}");
        assert_eq!(entry["status"], "ok", "{report}");
        assert_eq!(entry["user"], dockhand::lab::SUDO_USER, "{report}");
        assert_eq!(entry["sudo"], "ok", "{report}");
        assert_eq!(entry["traffic"]["logins"], 1, "{report}");
        assert_eq!(entry["traffic"]["commands"], 1, "{report}");
    }
    assert_eq!(report["summary"]["ok"], HOSTS, "{report}");
    assert_eq!(report["summary"]["traffic"]["logins"], HOSTS, "{report}");
}

#[test]
fn ping_reports_an_unreachable_host_and_still_checks_the_others() {
    let lab = TestLab::up(LAB, HOSTS);
    let inventory = lab.dockhand(&["lab", "inventory"]);
    let state = lab.state();
    // An address of the lab's own subnet that no host holds.
    let octets = state.hosts[0].address.octets();
    let ghost = format!("198.18.{}.250", octets[2]);
    let text = String::from_utf8_lossy(&inventory.stdout).replacen(
        "\nhosts:\n",
        &format!("\nhosts:\n  ghost:\n    address: {ghost}\n    ssh: {{ connect_timeout: 2 }}\n"),
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    std::fs::write(&path, text).unwrap();
    let output = lab.dockhand(&["ping", "-i", &path.to_string_lossy()]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "an unreachable host fails the run"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ghost") && stdout.contains("unreachable"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{} host(s): {HOSTS} ok, 0 failed, 1 unreachable",
            HOSTS + 1
        )),
        "{stdout}"
    );
}

#[test]
fn ping_rejects_a_bad_inventory_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    std::fs::write(&path, "hosts:\n  web1:\n    adress: 192.0.2.1\n").unwrap();
    let output = TestLab::named(LAB).dockhand(&["ping", "-i", &path.to_string_lossy()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:3:5: ", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("unknown field `adress`"), "{stderr}");
}

#[test]
fn ssh_config_aliases_users_keys_and_known_hosts_are_honored() {
    let lab = TestLab::up(LAB, HOSTS);
    let state = lab.state();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(
        home.path().join(".ssh/config"),
        format!(
            "Host alias-one\n  HostName {}\n  User {}\n  IdentityFile {}\n  UserKnownHostsFile {}\n",
            state.hosts[0].address,
            dockhand::lab::SUDO_USER,
            lab.paths().key().display(),
            lab.paths().known_hosts().display()
        ),
    )
    .unwrap();
    let inventory = home.path().join("inventory.yaml");
    std::fs::write(&inventory, "hosts:\n  alias-one:\n").unwrap();
    let output = lab.dockhand_with(
        &["ping", "-i", &inventory.to_string_lossy()],
        &[
            ("HOME", home.path().as_os_str()),
            ("SSH_AUTH_SOCK", std::ffi::OsStr::new("")),
        ],
    );
    assert_success(&output, "ping through an ssh_config alias");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "alias-one        ok          hostname={} user={}",
            host(1),
            dockhand::lab::SUDO_USER
        )),
        "{stdout}"
    );
}
