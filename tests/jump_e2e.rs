//! End to end: reaching a host only through a jump host (ProxyJump), over
//! one direct-tcpip channel of the jump host's connection.

mod common;

use common::{TestLab, assert_success};

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

    // The inner host refuses SSH from the machine: only the bastion gets in.
    let rule =
        format!("INPUT -s {gateway} -p tcp --dport 22 --syn -j REJECT --reject-with tcp-reset");
    lab.ssh(&inner.name, &format!("iptables -I {rule}"));
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
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}
