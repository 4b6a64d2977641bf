//! End to end: what users bring. A CA made by hand exactly as the Docker
//! guide makes it (openssl, a passphrase), adopted with `pki import`, so
//! the client certificate it signed earlier works against every host; a
//! fleet secured from one store never switched silently by another; and
//! hosts whose sudo asks for a password, managed with the password on
//! stdin and never in sight.

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    Release, Scene, apply, assert_success, docker_over_tls, dockhand_pki, expect_exit, openssl,
};

const PLAYBOOK: &str = "playbooks/docker-tls.yaml";
const PASS: &str = "guide passphrase";

/// The guide's steps: a CA whose key is protected with `-passout`, then a
/// client key, its request and a certificate with `extendedKeyUsage =
/// clientAuth` signed by the CA. Returns the client's bundle directory
/// (ca.pem, cert.pem, key.pem, as the docker CLI reads it).
fn hand_made_ca(dir: &Path) -> std::path::PathBuf {
    let pass = format!("pass:{PASS}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-days",
            "365",
            "-newkey",
            "rsa:4096",
            "-keyout",
            "ca-key.pem",
            "-passout",
            &pass,
            "-sha256",
            "-subj",
            "/C=DE/ST=Berlin/L=Berlin/O=Example Ops/CN=ops.example",
            "-out",
            "ca.pem",
        ],
    );
    openssl(dir, &["genrsa", "-out", "key.pem", "4096"]);
    openssl(
        dir,
        &[
            "req",
            "-subj",
            "/CN=client",
            "-new",
            "-key",
            "key.pem",
            "-out",
            "client.csr",
        ],
    );
    std::fs::write(
        dir.join("extfile-client.cnf"),
        "extendedKeyUsage = clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "365",
            "-sha256",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-passin",
            &pass,
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-extfile",
            "extfile-client.cnf",
        ],
    );
    let bundle = dir.join("client");
    std::fs::create_dir(&bundle).unwrap();
    for name in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::copy(dir.join(name), bundle.join(name)).unwrap();
    }
    bundle
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_ca_made_by_hand_is_adopted_and_the_clients_it_signed_keep_working() {
    let scene = Scene::fresh("byo-ca", 2, Release::Bookworm);
    let hand = scene.dir.path().join("hand");
    std::fs::create_dir(&hand).unwrap();
    let their_client = hand_made_ca(&hand);
    let passphrase = scene.dir.path().join("passphrase");
    std::fs::write(&passphrase, format!("{PASS}\n")).unwrap();
    let passphrase = passphrase.to_string_lossy().into_owned();

    let (ca_cert, ca_key) = (
        hand.join("ca.pem").to_string_lossy().into_owned(),
        hand.join("ca-key.pem").to_string_lossy().into_owned(),
    );
    let import = |extra: &[&str]| {
        let mut args = vec!["pki", "import", "--ca-cert", &ca_cert, "--ca-key", &ca_key];
        args.extend_from_slice(extra);
        dockhand_pki(&scene.lab, &scene.pki, &args)
    };
    // Without the passphrase, off a terminal: a clear error, nothing kept.
    let refused = import(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--passphrase-file FILE or DOCKHAND_CA_PASSPHRASE"),
        "{stderr}"
    );
    assert!(!scene.pki.join("ca.pem").exists());

    let imported = import(&["--passphrase-file", &passphrase]);
    let said = String::from_utf8_lossy(&imported.stderr).into_owned();
    expect_exit(imported, 0);
    assert!(
        said.contains("imported the CA C=DE, ST=Berlin, L=Berlin, O=Example Ops, CN=ops.example"),
        "{said}"
    );

    // apply signs with the adopted CA: it needs the passphrase, and has it.
    let applied = apply(
        &scene.lab,
        &scene.pki,
        &scene.inventory,
        PLAYBOOK,
        &["--yes", "--passphrase-file", &passphrase],
    );
    assert_success(&applied, "apply with the adopted CA");

    // The client certificate the user's CA signed before dockhand came
    // works against every host, with the real docker CLI.
    for host in scene.lab.host_names() {
        let version = docker_over_tls(&scene.address(&host), &their_client, &["version"]);
        assert_success(
            &version,
            &format!("docker version on {host} with the guide's client"),
        );
    }
    // A re-run signs nothing, so it needs no passphrase.
    let again = apply(
        &scene.lab,
        &scene.pki,
        &scene.inventory,
        PLAYBOOK,
        &["--yes"],
    );
    assert_success(&again, "a re-run without the passphrase");

    // The CA key is kept encrypted: no file of the store holds it in the
    // clear, and OpenSSL opens it with the user's passphrase only.
    let ca_key = scene.pki.join("ca-key.pem");
    let kept = std::fs::read_to_string(&ca_key).unwrap();
    assert!(
        kept.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{kept}"
    );
    let theirs = Command::new("openssl")
        .args(["pkey", "-passin", &format!("pass:{PASS}"), "-in"])
        .arg(hand.join("ca-key.pem"))
        .output()
        .unwrap();
    let in_clear = String::from_utf8_lossy(&theirs.stdout).into_owned();
    let body: String = in_clear
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(body.len() > 100);
    for file in files_under(&scene.pki) {
        let text: String = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .collect();
        assert!(
            !text.contains(&body[..64]),
            "{} holds the CA key in the clear",
            file.display()
        );
    }
    let opened = Command::new("openssl")
        .args(["pkey", "-passin", &format!("pass:{PASS}"), "-in"])
        .arg(&ca_key)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&opened.stdout), in_clear);
    common::assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}

#[test]
fn a_fleet_secured_from_one_store_is_never_switched_silently_by_another() {
    let scene = Scene::fresh("byo-foreign", 2, Release::Bookworm);
    assert_success(
        &apply(
            &scene.lab,
            &scene.pki,
            &scene.inventory,
            PLAYBOOK,
            &["--yes"],
        ),
        "apply from the first store",
    );
    let bundle = common::client_bundle(&scene.lab, &scene.pki, scene.dir.path().join("first"));
    let fingerprint = |name: &str| {
        let listed = dockhand_pki(&scene.lab, &scene.pki, &["pki", "list", "--format", "json"]);
        let entries: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        entries["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["fingerprint"].as_str().unwrap().to_string())
            .unwrap()
    };
    let first_ca = fingerprint("CA");
    let hosts = scene.lab.host_names();
    let before: Vec<String> = hosts.iter().map(|h| scene.lab.fingerprint(h)).collect();

    // A new laptop: an empty store.
    let empty = scene.dir.path().join("empty-store");
    let inventory = scene.inventory.to_string_lossy().into_owned();
    let plan = dockhand_pki(&scene.lab, &empty, &["plan", "-i", &inventory, PLAYBOOK]);
    let shown =
        String::from_utf8_lossy(&plan.stdout).into_owned() + &String::from_utf8_lossy(&plan.stderr);
    for host in &hosts {
        assert!(shown.contains(host.as_str()), "{host} not named: {shown}");
    }
    assert_eq!(
        shown
            .matches(&format!(
                "trusts another CA, CN=dockhand CA (SHA-256 {first_ca})"
            ))
            .count(),
        hosts.len(),
        "{shown}"
    );
    assert!(
        shown.contains("cuts off every client that CA signed"),
        "{shown}"
    );

    // Both ways a first run goes: the fleet within `--forks` (planned on
    // the connection it is applied on), and beyond (each host planned on
    // a login of its own, then the PKI, then the apply).
    for (store, flags) in [
        (empty.clone(), &["--yes"][..]),
        (
            scene.dir.path().join("empty-store-forks-1"),
            &["--yes", "--forks", "1"][..],
        ),
    ] {
        let applied = apply(&scene.lab, &store, &scene.inventory, PLAYBOOK, flags);
        let out = String::from_utf8_lossy(&applied.stdout).into_owned()
            + &String::from_utf8_lossy(&applied.stderr);
        assert_eq!(applied.status.code(), Some(1), "{flags:?}: {out}");
        assert!(out.contains("--replace-ca"), "{flags:?}: {out}");
        let after: Vec<String> = hosts.iter().map(|h| scene.lab.fingerprint(h)).collect();
        assert_eq!(before, after, "{flags:?}: a refused host is not touched");
        assert!(
            !store.join("ca.pem").exists(),
            "{flags:?}: no CA made for a fleet that has one"
        );
    }
    for host in &hosts {
        let version = docker_over_tls(&scene.address(host), &bundle, &["version"]);
        assert_success(&version, &format!("the first store's client on {host}"));
    }
    common::assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}

#[test]
fn hosts_whose_sudo_asks_for_a_password_are_managed_with_it_and_it_never_shows() {
    let scene = Scene::fresh("byo-sudo", 1, Release::Bookworm);
    let host = scene.lab.host_names()[0].clone();
    let user = dockhand::lab::SUDO_USER;
    const PASSWORD: &str = "Sudo pa55 'word";
    // sudo as Debian sets it up without NOPASSWD: the user's password.
    scene.lab.ssh(
        &host,
        &format!(
            "printf '%s\\n' '{user}:Sudo pa55 '\\''word' | chpasswd && echo '{user} ALL=(ALL) ALL' > /etc/sudoers.d/90-dockhand-lab"
        ),
    );
    let text = std::fs::read_to_string(&scene.inventory).unwrap();
    let text = text.replacen(
        &format!("  {host}:\n"),
        &format!("  {host}:\n    ssh: {{ user: {user}, become: true }}\n"),
        1,
    );
    std::fs::write(&scene.inventory, text).unwrap();
    let inventory = scene.inventory.to_string_lossy().into_owned();
    let password_file = scene.dir.path().join("sudo-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let wrong_file = scene.dir.path().join("wrong-password");
    std::fs::write(&wrong_file, "not the password\n").unwrap();
    let (password_file, wrong_file) = (
        password_file.to_string_lossy().into_owned(),
        wrong_file.to_string_lossy().into_owned(),
    );

    // Without a password: sudo -n is refused, and the error says what to do.
    let plan = dockhand_pki(
        &scene.lab,
        &scene.pki,
        &["plan", "-i", &inventory, PLAYBOOK],
    );
    let out =
        String::from_utf8_lossy(&plan.stdout).into_owned() + &String::from_utf8_lossy(&plan.stderr);
    assert_eq!(plan.status.code(), Some(1), "{out}");
    assert!(out.contains("--become-password-file"), "{out}");

    let plan = dockhand_pki(
        &scene.lab,
        &scene.pki,
        &[
            "plan",
            "-i",
            &inventory,
            PLAYBOOK,
            "--become-password-file",
            &password_file,
        ],
    );
    let shown = expect_exit(plan, 0);
    assert!(shown.contains("daemon.json"), "{shown}");

    // A wrong password fails the host, alone and touching nothing.
    let before = scene.lab.fingerprint(&host);
    let wrong = apply(
        &scene.lab,
        &scene.pki,
        &scene.inventory,
        PLAYBOOK,
        &["--yes", "--become-password-file", &wrong_file],
    );
    let out = String::from_utf8_lossy(&wrong.stdout).into_owned()
        + &String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{out}");
    assert!(out.contains("sudo refused the become password"), "{out}");
    assert_eq!(scene.lab.fingerprint(&host), before);

    // The right one, from the environment this time, with the host's
    // process list watched all along.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (watching, lab_name, host) = (watching.clone(), scene.lab.name.clone(), host.clone());
        std::thread::spawn(move || {
            let lab = common::TestLab::named(&lab_name);
            let mut seen = String::new();
            let mut rounds = 0;
            while watching.load(std::sync::atomic::Ordering::SeqCst) {
                // The apply reloads ssh: a login refused then is tried again.
                if let Some(list) = lab.ssh_unless_reloading(&host, "ps -eo args") {
                    seen += &list;
                    rounds += 1;
                } else {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            (seen, rounds)
        })
    };
    let applied = scene
        .lab
        .command(&[
            "apply", "-i", &inventory, PLAYBOOK, "--yes", "--format", "json",
        ])
        .env("DOCKHAND_PKI_DIR", &scene.pki)
        .env("DOCKHAND_BECOME_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    watching.store(false, std::sync::atomic::Ordering::SeqCst);
    let (processes, rounds) = watcher.join().unwrap();
    assert_success(&applied, "apply with the sudo password");
    let report: serde_json::Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(report["summary"]["changed"], 1, "{report:#}");
    assert!(rounds >= 2, "the process list was read {rounds} time(s)");
    assert!(
        processes.contains("sudo"),
        "sudo was seen running: {processes}"
    );
    for (what, text) in [
        ("the process list", processes.as_str()),
        ("stdout", &String::from_utf8_lossy(&applied.stdout)),
        ("stderr", &String::from_utf8_lossy(&applied.stderr)),
    ] {
        assert!(!text.contains("pa55"), "the password in {what}");
    }
    // The host is secured: its docker answers mutual TLS.
    let bundle = common::client_bundle(&scene.lab, &scene.pki, scene.dir.path().join("client"));
    assert_success(
        &docker_over_tls(&scene.address(&host), &bundle, &["version"]),
        "docker version",
    );

    // Back to passwordless sudo: the same password given changes nothing.
    scene.lab.ssh(
        &host,
        &format!("echo '{user} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/90-dockhand-lab"),
    );
    let again = apply(
        &scene.lab,
        &scene.pki,
        &scene.inventory,
        PLAYBOOK,
        &[
            "--yes",
            "--become-password-file",
            &password_file,
            "--format",
            "json",
        ],
    );
    assert_success(&again, "a re-run on passwordless sudo");
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["summary"]["unchanged"], 1, "{report:#}");
    common::assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}
