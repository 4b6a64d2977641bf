//! The local PKI store as `dockhand pki` uses it, through the binary: runs
//! at the same time never mix one CA's key with another's certificate;
//! half a CA is an error that changes nothing; directories are private.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn pki(store: &Path, args: &[&str]) -> Output {
    Command::new(common::BIN)
        .arg("pki")
        .args(args)
        .env("DOCKHAND_PKI_DIR", store)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// The public key of a certificate and of a key, as openssl-free bytes:
/// compared with `openssl`-like rigour by rcgen and x509-parser.
fn ca_key_matches(store: &Path) -> bool {
    let cert = std::fs::read_to_string(store.join("ca.pem")).unwrap();
    let key = std::fs::read_to_string(store.join("ca-key.pem")).unwrap();
    let key = rcgen::KeyPair::from_pem(&key).unwrap();
    let (_, block) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
}

#[test]
fn concurrent_inits_into_a_fresh_store_always_leave_a_matching_ca() {
    for trial in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("pki");
        let children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(common::BIN)
                    .args(["pki", "init"])
                    .env("DOCKHAND_PKI_DIR", &store)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success(), "trial {trial}");
        }
        assert!(
            ca_key_matches(&store),
            "trial {trial}: the CA key does not match its certificate"
        );
        let leftovers: Vec<String> = std::fs::read_dir(&store)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "trial {trial}: {leftovers:?}");
    }
}

#[test]
fn half_a_ca_is_an_error_that_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("pki");
    assert!(pki(&store, &["init"]).status.success());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o700, "the store is private");
    let bundle = dir.path().join("bundle");
    assert!(
        pki(
            &store,
            &["client", "ops", "--out", &bundle.to_string_lossy()]
        )
        .status
        .success()
    );
    assert_eq!(mode(&store.join("clients")), 0o700);
    assert_eq!(mode(&store.join("clients/ops")), 0o700);
    assert_eq!(mode(&store.join("clients/ops/key.pem")), 0o600);

    let ca = std::fs::read(store.join("ca.pem")).unwrap();
    std::fs::remove_file(store.join("ca-key.pem")).unwrap();
    for args in [
        &["init"][..],
        &["client", "ops2", "--out", "/nonexistent-out"][..],
    ] {
        let output = pki(&store, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("the CA is incomplete") && stderr.contains("ca-key.pem is missing"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read(store.join("ca.pem")).unwrap(),
        ca,
        "ca.pem untouched"
    );
    assert!(!store.join("ca-key.pem").exists(), "no new key");
    assert!(!store.join("clients/ops2").exists());
}
