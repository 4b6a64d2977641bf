//! End to end: `dockhand audit` on real hosts of both releases. A fresh
//! host fails what a user would expect and audit exits 1; after apply no
//! check fails and it exits 0; then the host is set up to fail every rule
//! at once (modes, owners, daemon settings, sshd settings), and each rule
//! says so.

mod common;

use std::collections::BTreeMap;

use common::{Scene, apply, assert_success, dockhand_pki};

const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");

/// Audit's verdict for each rule ID.
fn verdicts(scene: &Scene) -> (Option<i32>, BTreeMap<String, String>) {
    let (code, report) = common::audit_json(scene);
    let findings = report["hosts"][0]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("{report:#}"))
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (code, findings)
}

fn assert_verdicts(found: &BTreeMap<String, String>, expected: &[(&str, &str)], when: &str) {
    for (id, verdict) in expected {
        assert_eq!(
            found.get(*id).map(String::as_str),
            Some(*verdict),
            "{when}: {id} in {found:#?}"
        );
    }
}

on_all_releases!(
    audit_fresh_applied_and_broken,
    "audit",
    audit_reports_a_bullseye_host_before_and_after_apply_and_each_broken_rule,
    audit_reports_a_bookworm_host_before_and_after_apply_and_each_broken_rule,
    audit_reports_a_trixie_host_before_and_after_apply_and_each_broken_rule,
    audit_reports_a_forky_host_before_and_after_apply_and_each_broken_rule
);

fn audit_fresh_applied_and_broken(name: &str, release: common::Release) {
    let scene = Scene::fresh(name, 1, release);
    let host = &format!("{name}-01");

    let (code, fresh) = verdicts(&scene);
    assert_eq!(code, Some(1), "a fresh host fails: {fresh:#?}");
    assert_verdicts(
        &fresh,
        &[
            ("2.2", "FAIL"),
            ("2.14", "FAIL"),
            ("2.15", "FAIL"),
            ("2.16", "FAIL"),
            ("2.7", "PASS"),
            ("3.15+3.16", "PASS"),
            ("SSH-1", "FAIL"),
            ("SSH-8", "FAIL"),
        ],
        "fresh",
    );

    assert_success(
        &apply(&scene.lab, &scene.pki, &scene.inventory, PLAYBOOK, &[]),
        "apply",
    );
    let (code, applied) = verdicts(&scene);
    assert!(
        !applied.values().any(|v| v == "FAIL"),
        "after apply: {applied:#?}"
    );
    assert_eq!(code, Some(0));
    assert_verdicts(
        &applied,
        &[
            ("2.7", "PASS"),
            ("2.9", "PASS"),
            ("3.13+3.14", "PASS"),
            ("SSH-7", "PASS"),
        ],
        "applied",
    );

    // Every rule broken at once, as a careless hand would.
    scene.lab.ssh(
        host,
        "unit=$(systemctl show -p FragmentPath --value docker.service); chmod 664 \"$unit\"; \
         chown nobody /lib/systemd/system/docker.socket /usr/lib/systemd/system/docker.socket 2>/dev/null; \
         chmod 777 /etc/docker; chmod 644 /etc/docker/tls/ca.pem; chgrp users /etc/docker/tls/server-cert.pem; \
         chmod 440 /etc/docker/tls/server-key.pem; chmod 666 /var/run/docker.sock; chmod 666 /etc/docker/daemon.json; \
         chown root:users /etc/default/docker; \
         sed -i -e 's/\"icc\": false/\"icc\": true/' -e 's/\"live-restore\": true/\"live-restore\": false/' \
           -e 's/\"no-new-privileges\": true/\"no-new-privileges\": false/' -e 's/\"userland-proxy\": false/\"userland-proxy\": true/' \
           -e 's/\"log-level\": \"info\"/\"log-level\": \"debug\"/' /etc/docker/daemon.json; \
         echo 'DOCKER_OPTS=\"--insecure-registry registry.invalid:5000 --iptables=false --experimental\"' >> /etc/default/docker; \
         printf 'PasswordAuthentication yes\\nKbdInteractiveAuthentication yes\\nPermitRootLogin yes\\nMaxAuthTries 9\\n\
Ciphers aes128-cbc,aes256-ctr\\nMACs hmac-sha1,hmac-sha2-256\\nKexAlgorithms diffie-hellman-group14-sha1,curve25519-sha256\\n\
HostKeyAlgorithms ssh-ed25519,ecdsa-sha2-nistp256\\n' > /etc/ssh/sshd_config.d/0-careless.conf",
    );
    let (code, broken) = verdicts(&scene);
    assert_eq!(code, Some(1));
    assert_verdicts(
        &broken,
        &[
            ("2.2", "FAIL"),
            ("2.3", "WARN"),
            ("2.4", "FAIL"),
            ("2.5", "FAIL"),
            ("2.14", "FAIL"),
            ("2.15", "FAIL"),
            ("2.16", "FAIL"),
            ("2.18", "WARN"),
            ("3.1+3.2", "FAIL"),
            ("3.3+3.4", "FAIL"),
            ("3.5+3.6", "FAIL"),
            ("3.9+3.10", "FAIL"),
            ("3.11+3.12", "FAIL"),
            ("3.13+3.14", "FAIL"),
            ("3.15+3.16", "FAIL"),
            ("3.17+3.18", "FAIL"),
            ("3.19+3.20", "FAIL"),
            ("SSH-1", "FAIL"),
            ("SSH-2", "FAIL"),
            ("SSH-3", "FAIL"),
            ("SSH-4", "WARN"),
            ("SSH-5", "FAIL"),
            ("SSH-6", "FAIL"),
            ("SSH-7", "FAIL"),
            ("SSH-8", "FAIL"),
        ],
        "broken",
    );
    // The human form names the rule, the reason and the fix.
    let human = dockhand_pki(
        &scene.lab,
        &scene.pki,
        &["audit", "-i", &scene.inventory.to_string_lossy()],
    );
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("FAIL 3.13+3.14"), "{text}");
    assert!(
        text.contains("chmod 0400 /etc/docker/tls/server-key.pem"),
        "{text}"
    );
    assert!(text.contains("Audit: 1 host(s): "), "{text}");
    assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}
