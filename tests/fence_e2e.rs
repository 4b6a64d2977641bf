//! End to end: the fence around dockerd's TLS port, in dockhand's own
//! nftables table. The workstation's docker CLI gets through; a client in
//! another lab host's network namespace gets no answer, also after
//! `systemctl restart docker` and after nftables.service flushes the
//! ruleset; a re-run restarts nothing; audit sees the port fenced. An
//! `ssh_from` that shuts the workstation out is undone, and a fresh login
//! works again: by apply's rollback, or, when dockhand died right after
//! loading it, by the host's dead-man switch alone.

mod common;

use common::{Release, Scene, applied_summary, apply, assert_success, docker_over_tls};

/// `docker-tls.yaml` with a `firewall:` section.
fn fenced_playbook(scene: &Scene, name: &str, firewall: &str) -> String {
    let text = std::fs::read_to_string("playbooks/docker-tls.yaml").unwrap();
    let path = scene.dir.path().join(name);
    std::fs::write(&path, format!("{text}\nfirewall:\n{firewall}")).unwrap();
    path.to_string_lossy().into_owned()
}

/// Whether `from` (a lab host, in its own network namespace) gets an
/// answer on `port` of `address` within 3 s: "open", "refused" or
/// "no answer".
fn reach(scene: &Scene, from: &str, address: &str, port: u16) -> String {
    scene
        .lab
        .ssh(
            from,
            &format!(
                "python3 -c 'import socket\ns = socket.socket()\ns.settimeout(3)\ntry:\n    s.connect((\"{address}\", {port})); print(\"open\")\nexcept socket.timeout:\n    print(\"no answer\")\nexcept OSError:\n    print(\"refused\")'"
            ),
        )
        .trim()
        .to_string()
}

fn scenario(lab: &str, release: Release) {
    let scene = Scene::fresh(lab, 2, release);
    let hosts = scene.lab.host_names();
    let (fenced, other) = (&hosts[0], &hosts[1]);
    let address = scene.address(fenced);
    // The workstation as the hosts see it.
    let workstation = scene
        .lab
        .ssh(fenced, "echo ${SSH_CLIENT%% *}")
        .trim()
        .to_string();
    let playbook = fenced_playbook(
        &scene,
        "fenced.yaml",
        &format!("  docker_from: [{workstation}/32]\n"),
    );
    assert_eq!(
        reach(&scene, other, &address, 2376),
        "refused",
        "docker is not up on TCP yet"
    );

    let applied = apply(
        &scene.lab,
        &scene.pki,
        &scene.inventory,
        &playbook,
        &["--yes", "--format", "json"],
    );
    assert_eq!(applied_summary(applied)["changed"], 2);
    let bundle = common::client_bundle(&scene.lab, &scene.pki, scene.dir.path().join("client"));
    let fence_holds = |when: &str| {
        assert_success(
            &docker_over_tls(&address, &bundle, &["version"]),
            &format!("the workstation's docker CLI {when}"),
        );
        let answer = reach(&scene, other, &address, 2376);
        if answer != "no answer" {
            let host_side = scene.lab.ssh(
                fenced,
                "nft list table inet dockhand 2>&1; nft list ruleset 2>&1 | head -60; systemctl status --no-pager nftables.service dockhand-firewall.service 2>&1; journalctl -n 150 --no-pager",
            );
            panic!("{when}: TCP 2376 from another host: {answer}\n{host_side}");
        }
        assert_eq!(
            reach(&scene, other, &address, 22),
            "open",
            "sshd is not fenced ({when})"
        );
    };
    fence_holds("after apply");

    scene.lab.ssh(fenced, "systemctl restart docker");
    scene.lab.start_docker(fenced);
    fence_holds("after systemctl restart docker");
    // Debian's nftables.service flushes the whole ruleset when it starts,
    // reloads and stops; the fence comes back each time.
    for action in ["start", "reload", "restart", "stop"] {
        scene.lab.ssh(
            fenced,
            &format!(
                "systemctl {action} nftables.service || {{ journalctl -u nftables.service -n 20 --no-pager; exit 1; }}"
            ),
        );
        fence_holds(&format!("after systemctl {action} nftables"));
    }
    assert_eq!(
        scene
            .lab
            .ssh(fenced, "systemctl is-enabled dockhand-firewall.service")
            .trim(),
        "enabled",
        "loaded at boot"
    );

    let again = apply(
        &scene.lab,
        &scene.pki,
        &scene.inventory,
        &playbook,
        &["--yes", "--format", "json"],
    );
    assert_eq!(
        applied_summary(again)["unchanged"],
        2,
        "a re-run restarts nothing"
    );
    let (_, audit) = common::audit_json(&scene);
    let verdict = |host: &str| {
        audit["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host)
            .and_then(|h| h["findings"].as_array())
            .and_then(|f| f.iter().find(|f| f["id"] == "NET-1"))
            .map(|f| f["verdict"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{audit:#}"))
    };
    assert_eq!(verdict(fenced), "PASS");
    // A ruleset flushed by hand: the next apply loads the fence again.
    scene.lab.ssh(fenced, "nft flush ruleset");
    assert_eq!(reach(&scene, other, &address, 2376), "open");
    let reloaded = apply(
        &scene.lab,
        &scene.pki,
        &scene.inventory,
        &playbook,
        &["--yes", "--format", "json"],
    );
    assert_eq!(applied_summary(reloaded)["changed"], 1);
    fence_holds("after a flushed ruleset and an apply");

    // An admin network that leaves the workstation out: the fresh login
    // fails, the fence is put back as it was, and logins work again.
    let before = scene.lab.ssh(fenced, "cat /etc/dockhand/firewall.nft");
    let other_address = scene.address(other);
    let locked = fenced_playbook(
        &scene,
        "locked.yaml",
        &format!("  docker_from: [{workstation}/32]\n  ssh_from: [{other_address}/32]\n"),
    );
    let locked_out = apply(
        &scene.lab,
        &scene.pki,
        &scene.inventory,
        &locked,
        &["--yes", "--limit", fenced],
    );
    let out = String::from_utf8_lossy(&locked_out.stdout).into_owned()
        + &String::from_utf8_lossy(&locked_out.stderr);
    assert_eq!(locked_out.status.code(), Some(1), "{out}");
    assert!(out.contains("fresh SSH login"), "{out}");
    scene.lab.wait_for_sshd(fenced);
    assert_eq!(
        scene.lab.ssh(fenced, "cat /etc/dockhand/firewall.nft"),
        before
    );
    assert_eq!(reach(&scene, other, &address, 22), "open");
    fence_holds("after the lockout was undone");
    assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}

on_both_releases!(
    scenario,
    "fence",
    a_fence_lets_only_the_admin_network_reach_docker_on_bookworm,
    a_fence_lets_only_the_admin_network_reach_docker_on_trixie
);

#[test]
fn a_fence_that_shuts_out_a_dead_dockhand_is_taken_down_by_the_switch() {
    let scene = Scene::fresh("fencedead", 1, Release::Bookworm);
    let host = scene.lab.host_names()[0].clone();
    let playbook = scene.dir.path().join("shut-out.yaml");
    // sshd: only for its 15 s switch; ssh_from: an address that is not
    // the workstation's.
    std::fs::write(
        &playbook,
        "sshd:\n  revert_after: 15\nfirewall:\n  ssh_from: [198.19.255.254/32]\n",
    )
    .unwrap();
    let login_works = || {
        scene
            .lab
            .ssh_command(&host, "true")
            .args(["-o", "ConnectTimeout=3"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    // dockhand dies as soon as the fence is loaded: nobody is left to
    // verify or roll back.
    common::apply_killed_at(
        &scene,
        &playbook.to_string_lossy(),
        "replacing files, reloading ssh done",
        std::time::Duration::ZERO,
    );
    assert!(!login_works(), "shut out right after the fence was loaded");
    let started = std::time::Instant::now();
    while !login_works() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the host did not take the fence down within the switch's 15 s"
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    // The fence was new: the rules, the table and the boot unit are gone.
    let after = scene.lab.ssh(
        &host,
        "ls /etc/dockhand/firewall.nft 2>&1; nft list table inet dockhand 2>&1 | head -1; systemctl is-enabled dockhand-firewall.service 2>&1; true",
    );
    assert!(after.contains("No such file"), "{after}");
    assert!(!after.contains("table inet dockhand {"), "{after}");
    assert!(!after.lines().any(|l| l.trim() == "enabled"), "{after}");
    assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}
