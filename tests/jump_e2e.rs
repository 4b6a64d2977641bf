//! End to end: reaching a host only through a jump host (ProxyJump), over
//! one direct-tcpip channel of the jump host's connection.

mod common;

use common::{TestLab, assert_success};

const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");

#[test]
fn a_host_reachable_only_through_a_jump_host_is_reached_through_it() {
    // Fresh hosts: the test leaves the inner host closed to the machine.
    assert_success(
        &TestLab::named("jump").dockhand(&["lab", "down"]),
        "lab down",
    );
    let lab = TestLab::up("jump", 2);
    let state = lab.state();
    let (bastion, inner) = (&state.hosts[0], &state.hosts[1]);
    let gateway = format!("198.18.{}.1", inner.address.octets()[2]);

    // The inner host refuses SSH and the Docker port from the machine: only
    // the bastion gets in.
    let rules: Vec<String> = [2376, 22]
        .iter()
        .map(|port| {
            format!(
                "iptables -I INPUT -s {gateway} -p tcp --dport {port} --syn -j REJECT --reject-with tcp-reset"
            )
        })
        .collect();
    lab.ssh(&inner.name, &rules.join(" && "));
    let direct = lab.ssh_command(&inner.name, "true").output().unwrap();
    assert!(
        !direct.status.success(),
        "direct SSH must be refused for this test to mean anything"
    );

    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.yaml");
    std::fs::write(
        &inventory,
        format!(
            "defaults:\n  ssh:\n    identity_file: {}\n    known_hosts: {}\n\
             hosts:\n  {}:\n    address: {}\n    ssh: {{ jump: \"root@{}\" }}\n",
            lab.paths().key().display(),
            lab.paths().known_hosts().display(),
            inner.name,
            inner.address,
            bastion.address
        ),
    )
    .unwrap();
    let output = lab.dockhand(&["ping", "-i", &inventory.to_string_lossy()]);
    assert_success(&output, "ping through the jump host");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("hostname={} user=root docker=active", inner.name)),
        "{stdout}"
    );

    // apply and verify reach dockerd's TLS port through the jump host too:
    // the mutual-TLS probe takes the path SSH takes.
    let pki = dir.path().join("pki");
    let pki_env = [("DOCKHAND_PKI_DIR", pki.as_os_str())];
    let apply = lab.dockhand_with(
        &["apply", "-i", &inventory.to_string_lossy(), PLAYBOOK],
        &pki_env,
    );
    assert_success(&apply, "apply through the jump host");
    let verify = lab.dockhand_with(
        &[
            "verify",
            "-i",
            &inventory.to_string_lossy(),
            PLAYBOOK,
            "-v",
            "--progress",
            "plain",
        ],
        &pki_env,
    );
    assert_success(&verify, "verify through the jump host");
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        stderr.contains("answers over mutual TLS on port 2376"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a client without a certificate is refused"),
        "{stderr}"
    );
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}
