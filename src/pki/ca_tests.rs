//! A CA made by hand the way the Docker guide makes it, adopted; the CA key
//! encrypted at rest and opened only to sign; what import refuses.

use super::super::Outcome;
use super::*;
use crate::core::input::playbook::PkiRole;
use crate::core::pki::Sans;

const PASS: &str = "guide passphrase";

use crate::pki::keys::tests::openssl;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn store(dir: &Path, passphrase: Option<&str>) -> PkiStore {
    let store = PkiStore::new(dir.to_path_buf(), PkiRole::default());
    match passphrase {
        Some(p) => store.with_passphrase(SecretSource::given("the CA key's passphrase", p)),
        None => store.with_passphrase(
            SecretSource::new(
                "the CA key's passphrase",
                "--passphrase-file",
                "DOCKHAND_TEST_UNSET",
            )
            .with_prompt(false),
        ),
    }
}

/// The guide's CA: an AES-256 encrypted RSA key and a self-signed
/// certificate with a full subject (C, ST, L, O, CN), in `dir`.
fn guide_ca(dir: &Path) {
    let pass = format!("pass:{PASS}");
    openssl(
        dir,
        &[
            "genrsa",
            "-aes256",
            "-passout",
            &pass,
            "-out",
            "ca-key.pem",
            "2048",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-days",
            "365",
            "-key",
            "ca-key.pem",
            "-passin",
            &pass,
            "-sha256",
            "-subj",
            "/C=DE/ST=Berlin/L=Berlin/O=Example Ops/CN=ops.example",
            "-out",
            "ca.pem",
        ],
    );
}

fn raw_subject_and_issuer(pem: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).unwrap();
    let cert = block.parse_x509().unwrap();
    (
        cert.subject().as_raw().to_vec(),
        cert.issuer().as_raw().to_vec(),
    )
}

#[test]
fn a_ca_made_by_hand_is_adopted_and_what_it_issues_chains_to_it() {
    let hand = tempfile::tempdir().unwrap();
    guide_ca(hand.path());
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("pki"), Some(PASS));
    let cert = std::fs::read(hand.path().join("ca.pem")).unwrap();
    let key = std::fs::read(hand.path().join("ca-key.pem")).unwrap();
    let imported = store.import(&cert, &key, now()).unwrap();
    assert!(imported.came_encrypted);
    assert!(
        imported.subject.contains("CN=ops.example"),
        "{}",
        imported.subject
    );
    assert!(
        (363..=365).contains(&imported.days_left),
        "{}",
        imported.days_left
    );
    // The certificate as it was; the key encrypted, and never in the clear.
    let kept_cert = std::fs::read(dir.path().join("pki/ca.pem")).unwrap();
    assert_eq!(kept_cert, cert);
    let kept_key = std::fs::read_to_string(dir.path().join("pki/ca-key.pem")).unwrap();
    assert!(
        kept_key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{kept_key}"
    );
    assert!(store.is_sealed());

    let (server, outcome) = store
        .ensure_server(
            "web1",
            &Sans::for_host("web1", "198.18.0.2", &[], &[]),
            now(),
        )
        .unwrap();
    assert!(matches!(outcome, Outcome::Issued(_)));
    // Chained byte for byte: Go (the docker CLI, dockerd) finds a parent by
    // its raw subject, so a re-encoded name would break the chain.
    let (ca_subject, _) = raw_subject_and_issuer(&cert);
    let (_, server_issuer) = raw_subject_and_issuer(&server.cert_pem);
    assert_eq!(server_issuer, ca_subject);
    std::fs::write(hand.path().join("server.pem"), &server.cert_pem).unwrap();
    openssl(hand.path(), &["verify", "-CAfile", "ca.pem", "server.pem"]);
}

#[test]
fn an_encrypted_ca_signs_with_its_passphrase_and_reads_without() {
    let dir = tempfile::tempdir().unwrap();
    let sealed = store(dir.path(), Some(PASS));
    assert_eq!(
        sealed.init(true).unwrap(),
        Initialized::Created { encrypted: true }
    );
    assert_eq!(
        sealed.init(true).unwrap(),
        Initialized::Kept { encrypted: true }
    );
    let sans = Sans::for_host("web1", "198.18.0.2", &[], &[]);
    sealed.ensure_server("web1", &sans, now()).unwrap();

    // No passphrase at all: reading, planning and reusing work...
    let reader = store(dir.path(), None);
    assert!(matches!(
        reader.tls_for_host("web1", &sans, now()).unwrap(),
        crate::core::roles::TlsMaterial::Ready { .. }
    ));
    assert_eq!(reader.list(now()).unwrap().len(), 2);
    assert_eq!(
        reader.ensure_server("web1", &sans, now()).unwrap().1,
        Outcome::Reused
    );
    // ...signing says how to give the passphrase.
    let err = reader
        .ensure_client("admin", now())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot open the CA key: the CA key's passphrase is needed: give it with --passphrase-file FILE or DOCKHAND_TEST_UNSET"),
        "{err}"
    );
    // A wrong one says so.
    let err = store(dir.path(), Some("wrong"))
        .ensure_client("admin", now())
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.to_string().contains("passphrase does not open the key"),
        "{err}"
    );
    assert!(!dir.path().join("clients/admin").exists());
}

#[test]
fn init_encrypt_seals_a_plain_ca_in_place_and_a_rotation_keeps_it_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let plain = store(dir.path(), None);
    assert_eq!(
        plain.init(false).unwrap(),
        Initialized::Created { encrypted: false }
    );
    let (ca, _) = plain.ensure_ca().unwrap();
    let sans = Sans::for_host("web1", "198.18.0.2", &[], &[]);
    let (server, _) = plain.ensure_server("web1", &sans, now()).unwrap();

    let sealed = store(dir.path(), Some(PASS));
    assert_eq!(sealed.init(true).unwrap(), Initialized::Encrypted);
    assert!(sealed.is_sealed());
    let (after, _) = sealed.ensure_ca().unwrap();
    assert_eq!(after.cert_pem, ca.cert_pem, "the same CA");
    assert_eq!(
        sealed
            .ensure_server("web1", &sans, now())
            .unwrap()
            .0
            .cert_pem,
        server.cert_pem
    );
    sealed.ensure_client("admin", now()).unwrap();

    sealed.rotate_start().unwrap();
    let next = std::fs::read(dir.path().join("rotation/next/ca-key.pem")).unwrap();
    assert!(keys::is_encrypted(&next));
}

#[test]
fn import_refuses_what_it_cannot_adopt_and_writes_nothing() {
    let hand = tempfile::tempdir().unwrap();
    guide_ca(hand.path());
    let d = hand.path();
    let pass = format!("pass:{PASS}");
    // A leaf certificate, signed by the CA; an expired CA; another key.
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "leaf-key.pem",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "leaf-key.pem",
            "-subj",
            "/CN=leaf",
            "-out",
            "leaf.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-passin",
            &pass,
            "-days",
            "30",
            "-out",
            "leaf.pem",
        ],
    );
    // OpenSSL 3.0 cannot backdate `req -x509`: the expired CA is rcgen's.
    let leaf_key =
        KeyPair::from_pem(&std::fs::read_to_string(d.join("leaf-key.pem")).unwrap()).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = params.self_signed(&leaf_key).unwrap();
    std::fs::write(d.join("expired.pem"), expired.pem()).unwrap();
    let read = |name: &str| std::fs::read(d.join(name)).unwrap();
    let cases: [(&str, &str, Option<&str>, &str); 5] = [
        (
            "leaf.pem",
            "leaf-key.pem",
            Some(PASS),
            "is not a CA certificate",
        ),
        ("expired.pem", "leaf-key.pem", Some(PASS), "has expired"),
        (
            "ca.pem",
            "leaf-key.pem",
            Some(PASS),
            "--ca-key does not belong to --ca-cert",
        ),
        (
            "ca.pem",
            "ca-key.pem",
            Some("wrong"),
            "passphrase does not open the key",
        ),
        (
            "ca.pem",
            "ca-key.pem",
            None,
            "the CA key's passphrase is needed",
        ),
    ];
    for (cert, key, passphrase, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let err = store(dir.path(), passphrase)
            .import(&read(cert), &read(key), now())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{cert} {key}: {err}");
        assert!(!dir.path().join("ca.pem").exists() && !dir.path().join("ca-key.pem").exists());
    }
    // Over a CA the store has: refused, and that CA kept.
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Some(PASS));
    store.init(false).unwrap();
    let before = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let err = store
        .import(&read("ca.pem"), &read("ca-key.pem"), now())
        .unwrap_err();
    assert!(err.to_string().contains("already has a CA"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), before);
}

/// Only a prompt holds the run's output (its bars out of the way; the
/// e2e test of the prompt, on a terminal, shows them held): a passphrase
/// given in a file is read unheld, and a plain CA asks nothing. (A prompt
/// is not tried here: under a developer's terminal it would wait.)
#[test]
fn only_the_passphrase_prompt_holds_the_runs_output() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    store(dir.path(), Some(PASS)).init(true).unwrap();
    let held = Arc::new(AtomicUsize::new(0));
    let hold = {
        let held = held.clone();
        crate::core::event::Hold::new(move |asked| {
            held.fetch_add(1, Ordering::SeqCst);
            asked();
        })
    };
    let wait = super::super::Waiting::default().holding(hold);
    let typed = tempfile::tempdir().unwrap();
    let file = typed.path().join("passphrase");
    std::fs::write(&file, format!("{PASS}\n")).unwrap();
    let given = PkiStore::new(dir.path().to_path_buf(), PkiRole::default()).with_passphrase(
        SecretSource::new("the CA key's passphrase", "--passphrase-file", "")
            .with_file(Some(file))
            .with_prompt(true),
    );
    let locked = given.locked(&wait).unwrap();
    locked.ensure_client("admin", now()).unwrap();
    locked.ensure_client("ci", now()).unwrap();
    assert_eq!(held.load(Ordering::SeqCst), 0, "read from the file, unheld");
    drop(locked);

    // A plain CA asks nothing and holds nothing.
    let plain = tempfile::tempdir().unwrap();
    let store = store(plain.path(), None);
    store.init(false).unwrap();
    store
        .locked(&wait)
        .unwrap()
        .ensure_client("admin", now())
        .unwrap();
    assert_eq!(held.load(Ordering::SeqCst), 0);
}
