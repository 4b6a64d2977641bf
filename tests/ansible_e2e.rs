//! End to end: Ansible inventories as users have them. The same two lab
//! hosts, named by `ansible_host`, `ansible_user` and
//! `ansible_ssh_private_key_file`, in Ansible's YAML, its INI, and a
//! dynamic inventory script that prints `--list` JSON; the host keys in
//! `~/.ssh/known_hosts`, as Ansible users keep them. With each, `plan`,
//! `apply --limit GROUP` and `apply` work, and group variables reach
//! templates; on a terminal, past `--forks`, the question's plans are
//! applied as shown.

mod common;

use common::{Release, Scene, expect_exit};

/// Runs dockhand with `home` as HOME (its `.ssh/known_hosts` holds the
/// lab's host keys) and the scene's PKI.
fn dockhand(scene: &Scene, home: &std::path::Path, args: &[&str]) -> std::process::Output {
    command(scene, home, args).output().expect("run dockhand")
}

/// dockhand as [`dockhand`] runs it, for a test that runs it itself.
fn command(scene: &Scene, home: &std::path::Path, args: &[&str]) -> std::process::Command {
    scene.lab.command_with(
        args,
        &[
            ("HOME", home.as_os_str()),
            ("DOCKHAND_PKI_DIR", scene.pki.as_os_str()),
        ],
    )
}

#[test]
fn ansible_inventories_in_all_three_forms_plan_apply_and_limit() {
    let scene = Scene::fresh("ansible", 2, Release::Bookworm);
    let (web, db) = ("ansible-01", "ansible-02");
    let (web_address, db_address) = (scene.address(web), scene.address(db));
    let key = scene.lab.paths().key();
    let key = key.to_string_lossy();
    let home = scene.dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::copy(
        scene.lab.paths().known_hosts(),
        home.join(".ssh/known_hosts"),
    )
    .unwrap();

    let yaml = format!(
        "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {key}\n    greeting: hello\n  children:\n    web:\n      hosts:\n        {web}:\n          ansible_host: {web_address}\n      vars:\n        greeting: hello web\n    db:\n      hosts:\n        {db}:\n          ansible_host: {db_address}\n"
    );
    let ini = format!(
        "[web]\n{web} ansible_host={web_address}\n\n[db]\n{db} ansible_host={db_address}\n\n[web:vars]\ngreeting=hello web\n\n[all:vars]\nansible_user=root\nansible_ssh_private_key_file={key}\ngreeting=hello\n"
    );
    let json = format!(
        r#"{{"all": {{"children": ["web", "db"], "vars": {{"ansible_user": "root", "ansible_ssh_private_key_file": "{key}", "greeting": "hello"}}}},
 "web": {{"hosts": ["{web}"], "vars": {{"greeting": "hello web"}}}},
 "db": {{"hosts": ["{db}"]}},
 "_meta": {{"hostvars": {{"{web}": {{"ansible_host": "{web_address}"}}, "{db}": {{"ansible_host": "{db_address}"}}}}}}}}"#
    );
    let script = format!("#!/bin/sh\n[ \"$1\" = --list ] || exit 1\ncat <<'EOF'\n{json}\nEOF\n");

    for (form, file, text, executable) in [
        ("yaml", "hosts.yaml", yaml, false),
        ("ini", "hosts.ini", ini, false),
        ("script", "inventory.sh", script, true),
    ] {
        let inventory = scene.dir.path().join(file);
        std::fs::write(&inventory, &text).unwrap();
        if executable {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&inventory, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let inventory = inventory.to_string_lossy().into_owned();
        let target = format!("/etc/dockhand-{form}.txt");
        let playbook = scene.dir.path().join(format!("{form}.yaml"));
        std::fs::write(
            &playbook,
            format!(
                "files:\n  - path: {target}\n    content: \"{{{{ greeting }}}} from {{{{ inventory_hostname }}}}\\n\"\n    template: true\n"
            ),
        )
        .unwrap();
        let playbook = playbook.to_string_lossy().into_owned();

        let plan = expect_exit(
            dockhand(&scene, &home, &["plan", "-i", &inventory, &playbook]),
            0,
        );
        assert!(
            plan.contains(web) && plan.contains(db) && plan.contains(&target),
            "{form}: {plan}"
        );
        expect_exit(
            dockhand(
                &scene,
                &home,
                &["apply", "-i", &inventory, &playbook, "--limit", "web"],
            ),
            0,
        );
        let read = |host: &str| {
            scene
                .lab
                .ssh(host, &format!("cat {target} 2>/dev/null || echo absent"))
        };
        assert_eq!(read(web), format!("hello web from {web}\n"), "{form}");
        assert_eq!(read(db), "absent\n", "{form}: --limit web left db alone");
        expect_exit(
            dockhand(&scene, &home, &["apply", "-i", &inventory, &playbook]),
            0,
        );
        assert_eq!(read(db), format!("hello from {db}\n"), "{form}");
        expect_exit(
            dockhand(
                &scene,
                &home,
                &["plan", "-i", &inventory, &playbook, "--detailed-exitcode"],
            ),
            0,
        );
    }

    // On a terminal, past `--forks` (each host planned, shown, closed, then
    // applied if its plan is still the one shown), over the INI inventory:
    // a file put back by hand on both hosts is applied after `yes`.
    let target = "/etc/dockhand-ini.txt";
    for host in [web, db] {
        scene.lab.ssh(host, &format!("echo edited > {target}"));
    }
    let inventory = scene.dir.path().join("hosts.ini");
    let playbook = scene.dir.path().join("ini.yaml");
    let apply = command(
        &scene,
        &home,
        &[
            "apply",
            "-i",
            &inventory.to_string_lossy(),
            &playbook.to_string_lossy(),
            "--forks",
            "1",
        ],
    );
    let (code, shown) = common::on_a_terminal(apply, || {});
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains(target), "the plan shows the file: {shown}");
    for (host, greeting) in [(web, "hello web"), (db, "hello")] {
        assert_eq!(
            scene.lab.ssh(host, &format!("cat {target}")),
            format!("{greeting} from {host}\n"),
            "{shown}"
        );
    }
    common::assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}
