//! End to end: the SSH way to the daemon (`docker.access: ssh`). A host
//! secured with TLS first is moved to `playbooks/docker-ssh.yaml`: the
//! TCP listener goes, the real docker CLI on the workstation reaches the
//! daemon with `-H ssh://` through the system's OpenSSH client, sshd leaves
//! room for the CLI's sessions, and a re-run changes nothing.

mod common;

use common::{Release, Scene, apply, assert_success, docker_over_tls};

/// The docker CLI with `-H ssh://root@ADDRESS`, its `ssh` the system's,
/// given the lab's key and known_hosts through a config file (`-F`): what
/// a user's `~/.ssh/config` would hold.
fn docker_over_ssh(scene: &Scene, address: &str, args: &[&str]) -> std::process::Output {
    let config = scene.dir.path().join("ssh_config");
    if !config.exists() {
        std::fs::write(
            &config,
            format!(
                "Host *\n  IdentityFile {}\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
                scene.lab.paths().key().display(),
                scene.lab.paths().known_hosts().display()
            ),
        )
        .unwrap();
    }
    let wrap = common::ssh_reading(scene.dir.path(), &config);
    let path = format!(
        "{}:{}",
        wrap.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::process::Command::new(common::docker_cli())
        .args(["-H", &format!("ssh://root@{address}")])
        .args(args)
        .env("PATH", path)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .output()
        .expect("run the docker CLI")
}

fn tcp_answers(address: &str, port: u16) -> bool {
    let target = format!("{address}:{port}").parse().unwrap();
    std::net::TcpStream::connect_timeout(&target, std::time::Duration::from_secs(3)).is_ok()
}

fn scenario(lab: &str, release: Release) {
    let scene = Scene::fresh(lab, 1, release);
    let host = scene.lab.host_names()[0].clone();
    let address = scene.address(&host);
    assert_success(
        &apply(
            &scene.lab,
            &scene.pki,
            &scene.inventory,
            "playbooks/docker-tls.yaml",
            &["--yes"],
        ),
        "apply with TLS",
    );
    let bundle = common::client_bundle(&scene.lab, &scene.pki, scene.dir.path().join("client"));
    assert_success(
        &docker_over_tls(&address, &bundle, &["version"]),
        "docker over TLS",
    );
    assert!(tcp_answers(&address, 2376));

    // The shipped playbook, with the lab's sudo user as the one account
    // that may use docker.
    let shipped = std::fs::read_to_string("playbooks/docker-ssh.yaml").unwrap();
    let playbook = scene.dir.path().join("docker-ssh.yaml");
    let user = dockhand::lab::SUDO_USER;
    assert!(shipped.contains("ssh_users: []"));
    std::fs::write(
        &playbook,
        shipped.replacen("ssh_users: []", &format!("ssh_users: [{user}]"), 1),
    )
    .unwrap();
    let playbook = playbook.to_string_lossy().into_owned();
    let moved = apply(
        &scene.lab,
        &scene.pki,
        &scene.inventory,
        &playbook,
        &["--yes"],
    );
    let said = String::from_utf8_lossy(&moved.stdout).into_owned()
        + &String::from_utf8_lossy(&moved.stderr);
    assert!(moved.status.success(), "{said}");
    assert!(said.contains("stay on the host, unused"), "{said}");
    let groups = scene.lab.ssh(&host, &format!("id -nG {user}"));
    assert!(groups.split_whitespace().any(|g| g == "docker"), "{groups}");
    assert!(!tcp_answers(&address, 2376), "no TCP listener is left");
    let listening = scene.lab.ssh(&host, "ss -Hltn");
    assert!(!listening.contains(":2376"), "{listening}");

    let version = docker_over_ssh(
        &scene,
        &address,
        &["version", "--format", "{{.Server.Version}}"],
    );
    assert_success(&version, "docker -H ssh:// version");
    assert!(!String::from_utf8_lossy(&version.stdout).trim().is_empty());
    let info = docker_over_ssh(
        &scene,
        &address,
        &["info", "--format", "{{.SecurityOptions}}"],
    );
    assert_success(&info, "docker -H ssh:// info");
    assert!(
        String::from_utf8_lossy(&info.stdout).contains("userns"),
        "the hardening stays"
    );
    let effective = common::sshd_effective(&scene.lab, &host);
    assert_eq!(effective.get("maxsessions").map(String::as_str), Some("64"));
    assert_eq!(
        effective.get("maxstartups").map(String::as_str),
        Some("64:30:128")
    );

    // `dockhand context create`: a context per host, its alias in
    // ~/.ssh/dockhand.conf, which ~/.ssh/config includes; the docker CLI's
    // own `ssh` (here told that ~/.ssh/config is this HOME's: OpenSSH
    // reads the account's home, not $HOME) needs nothing more.
    let home = scene.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::create_dir(home.join(".ssh")).unwrap();
    std::fs::write(
        home.join(".ssh/config"),
        "Host *\n  ServerAliveInterval 30\n",
    )
    .unwrap();
    let inventory = scene.inventory.to_string_lossy().into_owned();
    let context = |args: &[&str]| {
        let mut all = vec!["context"];
        all.extend_from_slice(args);
        all.extend(["-i", &inventory, &playbook]);
        scene.lab.dockhand_with(&all, &[("HOME", home.as_os_str())])
    };
    // As the account the playbook lets use docker, not root.
    let created = context(&["create", "--user", user]);
    let said = String::from_utf8_lossy(&created.stderr).into_owned();
    assert!(created.status.success(), "{said}");
    let name = format!("dockhand-{host}");
    assert!(
        said.contains(&format!(
            "created the docker context `{name}` (ssh://{name})"
        )),
        "{said}"
    );
    let config = std::fs::read_to_string(home.join(".ssh/config")).unwrap();
    assert!(config.starts_with("# Added by dockhand"), "{config}");
    assert!(
        config.ends_with("Host *\n  ServerAliveInterval 30\n"),
        "the user's own lines kept: {config}"
    );
    let via_context = |args: &[&str]| {
        let wrap = common::ssh_reading(scene.dir.path(), &home.join(".ssh/config"));
        std::process::Command::new(common::docker_cli())
            .args(args)
            .env("HOME", &home)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    wrap.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap()
    };
    assert_success(
        &via_context(&["--context", &name, "version"]),
        "docker --context dockhand-HOST version",
    );
    // Run again: updated, not doubled; a context dockhand did not make is
    // left alone; `context rm` removes dockhand's.
    let again = context(&["create", "--user", user]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("updated the docker context"));
    let aliases = std::fs::read_to_string(home.join(".ssh/dockhand.conf")).unwrap();
    assert_eq!(
        aliases.matches(&format!("Host {name}\n")).count(),
        1,
        "{aliases}"
    );
    assert_success(&context(&["rm"]), "context rm");
    let listed =
        String::from_utf8_lossy(&via_context(&["context", "ls", "-q"]).stdout).into_owned();
    assert!(!listed.contains(&name), "{listed}");
    assert!(
        !std::fs::read_to_string(home.join(".ssh/dockhand.conf"))
            .unwrap()
            .contains(&name)
    );
    // A context of that name made by someone else is never touched.
    assert_success(
        &via_context(&[
            "context",
            "create",
            &name,
            "--docker",
            "host=unix:///var/run/docker.sock",
        ]),
        "a context of the user's",
    );
    let refused = context(&["create"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("was not made by dockhand: left alone")
    );
    let kept = via_context(&[
        "context",
        "inspect",
        &name,
        "--format",
        "{{.Endpoints.docker.Host}}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&kept.stdout).trim(),
        "unix:///var/run/docker.sock"
    );

    let again = apply(
        &scene.lab,
        &scene.pki,
        &scene.inventory,
        &playbook,
        &["--yes", "--format", "json"],
    );
    let summary = common::applied_summary(again);
    assert_eq!(summary["unchanged"], 1, "{summary:#}");
    let (_, audit) = common::audit_json(&scene);
    let findings = audit["hosts"][0]["findings"].as_array().unwrap();
    let verdict = |id: &str| {
        findings
            .iter()
            .find(|f| f["id"] == id)
            .map(|f| f["verdict"].as_str().unwrap().to_string())
    };
    assert_eq!(verdict("2.7").as_deref(), Some("PASS"));
    assert_eq!(verdict("NET-1").as_deref(), Some("PASS"));
    assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}

on_both_releases!(
    scenario,
    "sshway",
    the_ssh_way_leaves_no_tcp_listener_and_the_docker_cli_gets_in_on_bookworm,
    the_ssh_way_leaves_no_tcp_listener_and_the_docker_cli_gets_in_on_trixie
);
