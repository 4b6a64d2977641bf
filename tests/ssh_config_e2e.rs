//! End to end: `~/.ssh/config` as OpenSSH reads it. A lab host reachable
//! only through an alias defined in a file that `~/.ssh/config`
//! `Include`s (by a relative glob): the alias's HostName, User,
//! IdentityFile and UserKnownHostsFile are what `dockhand ping` uses, and
//! OpenSSH's own `ssh -G` resolves the alias the same way; `-F` names
//! another file. On a terminal, past `--forks`, two hosts reached by such
//! aliases are planned, shown and applied.

mod common;

use common::{Release, TestLab, expect_exit};

#[test]
fn a_host_reached_only_through_an_included_alias_answers_ping() {
    let lab = TestLab::fresh("included", 2, Release::Bookworm);
    let address = lab.record("included-01").address.to_string();
    let other = lab.record("included-02").address.to_string();
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir_all(ssh.join("config.d")).unwrap();
    std::fs::write(ssh.join("config"), "Include config.d/*.conf\n").unwrap();
    let alias = |name: &str, address: &str| {
        format!(
            "Host {name}\n  HostName {address}\n  User root\n  IdentityFile {}\n  UserKnownHostsFile {}\n",
            lab.paths().key().display(),
            lab.paths().known_hosts().display()
        )
    };
    std::fs::write(ssh.join("config.d/lab.conf"), alias("labalias", &address)).unwrap();
    std::fs::write(ssh.join("config.d/other.conf"), alias("otheralias", &other)).unwrap();
    let inventory = home.path().join("inventory.yaml");
    std::fs::write(&inventory, "hosts:\n  lab: { address: labalias }\n").unwrap();
    let output = lab.dockhand_with(
        &["ping", "-i", &inventory.to_string_lossy()],
        &[("HOME", home.path().as_os_str())],
    );
    let stdout = expect_exit(output, 0);
    assert!(stdout.contains("user=root"), "{stdout}");
    // OpenSSH agrees on where the alias leads (its `~` is the account's
    // home, not $HOME: the same Include, made absolute).
    let absolute = home.path().join("config.abs");
    std::fs::write(
        &absolute,
        format!("Include {}/config.d/*.conf\n", ssh.display()),
    )
    .unwrap();
    // The same file given with -F, from a home with no ssh_config at all;
    // and -F naming no file is an error, as it is for ssh.
    let bare = tempfile::tempdir().unwrap();
    let output = lab.dockhand_with(
        &[
            "ping",
            "-i",
            &inventory.to_string_lossy(),
            "-F",
            &absolute.to_string_lossy(),
        ],
        &[("HOME", bare.path().as_os_str())],
    );
    assert!(expect_exit(output, 0).contains("user=root"));
    let missing = bare.path().join("no-such-config");
    let output = lab.dockhand_with(
        &[
            "ping",
            "-i",
            &inventory.to_string_lossy(),
            "--ssh-config",
            &missing.to_string_lossy(),
        ],
        &[("HOME", bare.path().as_os_str())],
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no-such-config"), "{stderr}");
    let resolved = std::process::Command::new("ssh")
        .args(["-G", "-F"])
        .arg(&absolute)
        .arg("labalias")
        .output()
        .unwrap();
    let resolved = String::from_utf8_lossy(&resolved.stdout);
    assert!(
        resolved.contains(&format!("hostname {address}\n")),
        "{resolved}"
    );

    // On a terminal, past `--forks`: both hosts are planned through their
    // aliases, shown, closed, and applied after `yes`.
    let both = home.path().join("both.yaml");
    std::fs::write(
        &both,
        "hosts:\n  lab: { address: labalias }\n  other: { address: otheralias }\n",
    )
    .unwrap();
    let playbook = home.path().join("motd.yaml");
    std::fs::write(
        &playbook,
        "files:\n  - path: /etc/dockhand-alias.txt\n    content: \"reached by alias\\n\"\n",
    )
    .unwrap();
    let pki = home.path().join("pki");
    let apply = lab.command_with(
        &[
            "apply",
            "-i",
            &both.to_string_lossy(),
            &playbook.to_string_lossy(),
            "--forks",
            "1",
        ],
        &[
            ("HOME", home.path().as_os_str()),
            ("DOCKHAND_PKI_DIR", pki.as_os_str()),
        ],
    );
    let (code, shown) = common::on_a_terminal(apply, || {});
    assert_eq!(code, Some(0), "{shown}");
    for host in ["included-01", "included-02"] {
        assert_eq!(
            lab.ssh(host, "cat /etc/dockhand-alias.txt"),
            "reached by alias\n",
            "{host}: {shown}"
        );
    }
    common::assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}
