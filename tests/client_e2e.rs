//! End to end: client access the way Docker users expect it. After apply,
//! `pki client` writes a bundle and prints the exports for a host, and
//! `--context` makes a docker context per host; the real docker CLI works
//! through both. `pki list` describes every certificate.

mod common;

use std::process::Command;

use common::{Release, Scene, assert_success, docker_cli, dockhand_pki};
use serde_json::Value;

const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");

on_both_releases!(
    exports_and_contexts,
    "client",
    the_docker_cli_works_through_the_exports_and_a_context_on_bookworm,
    the_docker_cli_works_through_the_exports_and_a_context_on_trixie
);

fn exports_and_contexts(name: &str, release: Release) {
    let scene = Scene::fresh(name, 1, release);
    let (lab, pki) = (&scene.lab, &scene.pki);
    let host = &format!("{name}-01");
    let inventory = scene.inventory.to_string_lossy().into_owned();
    assert_success(
        &dockhand_pki(lab, pki, &["apply", "-i", &inventory, PLAYBOOK]),
        "apply",
    );
    // The docker CLI keeps its contexts here, not in root's home.
    let docker_config = scene.dir.path().join("docker-config");
    // A directory name a shell would read more into: the printed line must
    // keep it inert.
    let bundle = scene.dir.path().join("ops $(touch pwned) `touch pwned`");
    // `pki client --context`, run twice: the second run updates the context.
    let client_with_context = || {
        lab.dockhand_with(
            &[
                "pki",
                "client",
                "ops",
                "--out",
                &bundle.to_string_lossy(),
                "-i",
                &inventory,
                "--host",
                host,
                "--context",
            ],
            &[
                ("DOCKHAND_PKI_DIR", pki.as_os_str()),
                ("DOCKER_CONFIG", docker_config.as_os_str()),
            ],
        )
    };
    let output = client_with_context();
    assert_success(&output, "pki client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("created the docker context `{host}`")),
        "{stderr}"
    );

    // `eval "$(dockhand pki client …)"` as a user would, then the CLI.
    let exports = stdout.trim();
    assert!(exports.starts_with("export "), "{exports}");
    let address = scene.address(host);
    assert!(
        exports.contains(&format!("DOCKER_HOST='tcp://{address}:2376'")),
        "{exports}"
    );
    let version = Command::new("sh")
        .arg("-c")
        .arg("eval \"$EXPORTS\" && exec \"$DOCKER\" version --format '{{.Server.Version}}'")
        .current_dir(scene.dir.path())
        .env("EXPORTS", exports)
        .env("DOCKER", docker_cli())
        .env("DOCKER_CONFIG", &docker_config)
        .output()
        .unwrap();
    assert_success(&version, "docker version through the exports");
    assert!(
        !scene.dir.path().join("pwned").exists(),
        "the eval'd line ran nothing"
    );

    let through_context = Command::new(docker_cli())
        .env("DOCKER_CONFIG", &docker_config)
        .args([
            "--context",
            host,
            "version",
            "--format",
            "{{.Server.Version}}",
        ])
        .output()
        .unwrap();
    assert_success(&through_context, "docker --context version");
    assert_eq!(through_context.stdout, version.stdout);

    // Run again: the context is updated, not duplicated.
    let again = client_with_context();
    assert_success(&again, "pki client again");
    assert!(String::from_utf8_lossy(&again.stderr).contains("updated the docker context"));

    // pki list: every certificate with subject, SANs, issuer, expiry, days left.
    let list = dockhand_pki(lab, pki, &["pki", "list", "--format", "json"]);
    assert_success(&list, "pki list");
    let listed: Value = serde_json::from_slice(&list.stdout).unwrap();
    let certificates = listed["certificates"].as_array().unwrap();
    let server = certificates
        .iter()
        .find(|c| c["kind"] == "server" && c["name"] == host.as_str())
        .expect("the host's certificate");
    assert_eq!(server["subject"], format!("CN={host}"));
    assert_eq!(server["issuer"], "CN=dockhand CA");
    assert!(
        server["sans"]
            .as_str()
            .unwrap()
            .contains(&format!("IP:{address}"))
    );
    assert!(server["days_left"].as_i64().unwrap() > 360, "{server:#}");
    assert!(
        certificates
            .iter()
            .any(|c| c["kind"] == "client" && c["name"] == "ops")
    );
    let human = dockhand_pki(lab, pki, &["pki", "list"]);
    let table = String::from_utf8_lossy(&human.stdout);
    assert!(table.starts_with("KIND "), "{table}");
    assert!(table.contains(&format!("CN={host}")), "{table}");

    // Bad input touches nothing.
    let unknown = lab.dockhand_with(
        &[
            "pki",
            "client",
            "x",
            "--out",
            "/nonexistent",
            "-i",
            &inventory,
            "--host",
            "nope",
        ],
        &[("DOCKHAND_PKI_DIR", pki.as_os_str())],
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such host in the inventory"));
    assert!(!pki.join("clients/x").exists());
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

/// The shipped playbook with other certificate lifetimes.
fn lifetimes(dir: &std::path::Path, validity: u32, renew: u32) -> std::path::PathBuf {
    let path = dir.join(format!("lifetime-{validity}.yaml"));
    let text = std::fs::read_to_string(PLAYBOOK)
        .unwrap()
        .replace(
            "cert_validity_days: 365",
            &format!("cert_validity_days: {validity}"),
        )
        .replace(
            "renew_before_days: 30 ",
            &format!("renew_before_days: {renew} "),
        );
    assert!(text.contains(&format!("cert_validity_days: {validity}")));
    std::fs::write(&path, text).unwrap();
    path
}

/// The SHA-256 fingerprint of the certificate a TLS server presents, as an
/// independent client (openssl) sees it.
fn served_fingerprint(address: &str) -> String {
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {address}:2376 </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or("")
        .to_string()
}

on_both_releases!(
    renewal,
    "renew",
    a_certificate_inside_the_renewal_window_is_reissued_and_served_on_bookworm,
    a_certificate_inside_the_renewal_window_is_reissued_and_served_on_trixie
);

fn renewal(name: &str, release: Release) {
    let scene = Scene::fresh(name, 1, release);
    let (lab, pki) = (&scene.lab, &scene.pki);
    let host = &format!("{name}-01");
    let address = scene.address(host);
    let inventory = scene.inventory.to_string_lossy().into_owned();
    let short = lifetimes(scene.dir.path(), 31, 30);
    assert_success(
        &dockhand_pki(
            lab,
            pki,
            &["apply", "-i", &inventory, &short.to_string_lossy()],
        ),
        "apply with 31-day certificates",
    );
    let first = served_fingerprint(&address);
    assert_eq!(first.len(), 95, "{first}");

    // A 40-day renewal window puts the 31-day certificate inside it.
    let longer = lifetimes(scene.dir.path(), 60, 40);
    let plan = dockhand_pki(
        lab,
        pki,
        &["plan", "-i", &inventory, &longer.to_string_lossy()],
    );
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains(
            "server certificate to be issued: the existing certificate expires in 30 day(s)"
        ) || text.contains(
            "server certificate to be issued: the existing certificate expires in 31 day(s)"
        ),
        "{text}"
    );
    assert_success(
        &dockhand_pki(
            lab,
            pki,
            &["apply", "-i", &inventory, &longer.to_string_lossy()],
        ),
        "apply reissues",
    );
    let served = served_fingerprint(&address);
    assert_ne!(served, first, "the host serves a new certificate");
    let list = dockhand_pki(lab, pki, &["pki", "list", "--format", "json"]);
    let listed: Value = serde_json::from_slice(&list.stdout).unwrap();
    let server = listed["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "server")
        .unwrap()
        .clone();
    assert_eq!(server["fingerprint"], served, "the one in the store");
    assert!(server["days_left"].as_i64().unwrap() >= 59, "{server:#}");

    // The docker CLI still works with a client bundle.
    let bundle = common::client_bundle(lab, pki, scene.dir.path().join("bundle"));
    assert_success(
        &common::docker_over_tls(&address, &bundle, &["version"]),
        "docker version after the renewal",
    );
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

on_both_releases!(
    rotation,
    "rotate",
    a_ca_rotation_keeps_every_bookworm_host_reachable_at_every_step,
    a_ca_rotation_keeps_every_trixie_host_reachable_at_every_step
);

fn rotation(name: &str, release: Release) {
    let scene = Scene::fresh(name, 1, release);
    let (lab, pki) = (&scene.lab, &scene.pki);
    let host = format!("{name}-01");
    let address = scene.address(&host);
    let inventory = scene.inventory.to_string_lossy().into_owned();
    let run = |args: &[&str], what: &str| assert_success(&dockhand_pki(lab, pki, args), what);
    let apply = || run(&["apply", "-i", &inventory, PLAYBOOK], "apply");
    let bundle = |name: &str| {
        let dir = scene.dir.path().join(name);
        run(
            &["pki", "client", "ops", "--out", &dir.to_string_lossy()],
            "pki client",
        );
        dir
    };
    let docker_works = |bundle: &std::path::Path, step: &str| {
        assert_success(
            &common::docker_over_tls(&address, bundle, &["version"]),
            &format!("docker version {step}"),
        );
    };
    let ca_count = || {
        lab.ssh(&host, "grep -c 'BEGIN CERTIFICATE' /etc/docker/tls/ca.pem")
            .trim()
            .parse::<u32>()
            .unwrap()
    };

    apply();
    let first = bundle("b0");
    docker_works(&first, "before the rotation");
    let old_served = served_fingerprint(&address);

    // 1. A new CA is trusted beside the old one; nothing is reissued.
    run(&["pki", "rotate", "start"], "rotate start");
    docker_works(&first, "after start, before apply");
    apply();
    assert_eq!(ca_count(), 2, "the host trusts both CAs");
    assert_eq!(served_fingerprint(&address), old_served);
    docker_works(&first, "after start and apply");
    let both = bundle("b1");
    docker_works(&both, "with a bundle that trusts both CAs");

    // 2. The new CA issues: the host's certificate is reissued, and clients
    //    whose bundle trusts both CAs keep working, old client cert and all.
    run(&["pki", "rotate", "switch"], "rotate switch");
    docker_works(&both, "after switch, before apply");
    apply();
    assert_ne!(
        served_fingerprint(&address),
        old_served,
        "a certificate of the new CA"
    );
    docker_works(&both, "after switch and apply");

    // 3. The old CA goes: a fresh bundle works, and certificates of the
    //    old CA are refused once the host stops trusting it.
    run(&["pki", "rotate", "finish"], "rotate finish");
    let new = bundle("b2");
    docker_works(&new, "after finish, before apply");
    apply();
    assert_eq!(ca_count(), 1, "the host trusts the new CA alone");
    docker_works(&new, "after finish and apply");
    let old_client = common::docker_over_tls(&address, &both, &["version"]);
    assert!(
        !old_client.status.success(),
        "a client certificate of the old CA is refused"
    );
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}
