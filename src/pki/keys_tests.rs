//! Keys written by OpenSSL in every form users bring, read back to the same
//! PKCS#8; the store's own encryption read by OpenSSL.

use super::*;
use std::process::Command;

const PASS: &str = "correct horse";

/// Runs openssl in `dir`; the test fails with its stderr when it fails.
pub(in crate::pki) fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn given(passphrase: &str) -> impl FnOnce() -> Result<Passphrase, String> {
    let passphrase = passphrase.to_string();
    move || Ok(Zeroizing::new(passphrase))
}

fn never() -> Result<Passphrase, String> {
    panic!("a plain key asked for a passphrase")
}

#[test]
fn every_form_openssl_writes_reads_back_to_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pass = format!("pass:{PASS}");
    for (name, gen_args) in [
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
        ),
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
        (
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
        ),
    ] {
        let plain = format!("{name}.pem");
        let mut args = vec!["genpkey"];
        args.extend_from_slice(gen_args);
        args.extend(["-out", &plain]);
        openssl(d, &args);
        let reference = read(&std::fs::read(d.join(&plain)).unwrap(), never).unwrap();
        let forms: [(&str, Vec<&str>, bool); 5] = [
            ("traditional", vec!["-traditional"], false),
            ("pkcs8-aes256", vec!["-aes256", "-passout", &pass], true),
            ("pkcs8-des3", vec!["-des3", "-passout", &pass], true),
            (
                "legacy-aes256",
                vec!["-traditional", "-aes256", "-passout", &pass],
                true,
            ),
            (
                "legacy-des3",
                vec!["-traditional", "-des3", "-passout", &pass],
                true,
            ),
        ];
        for (form, extra, encrypted) in forms {
            let out = format!("{name}-{form}.pem");
            let mut args = vec!["pkey", "-in", &plain, "-out", &out];
            args.extend(extra);
            openssl(d, &args);
            let pem = std::fs::read(d.join(&out)).unwrap();
            assert_eq!(is_encrypted(&pem), encrypted, "{out}");
            if form.starts_with("legacy") {
                assert!(
                    String::from_utf8_lossy(&pem).contains("Proc-Type: 4,ENCRYPTED"),
                    "{out}"
                );
            }
            let key = read(&pem, given(PASS)).unwrap_or_else(|e| panic!("{out}: {e}"));
            assert_eq!(*key, *reference, "{out}");
            if encrypted {
                let wrong = read(&pem, given("wrong")).unwrap_err();
                assert!(wrong.contains("passphrase does not open"), "{out}: {wrong}");
            }
        }
    }
}

#[test]
fn the_stores_encryption_is_read_by_openssl_and_by_us() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let sealed = encrypt(&key.serialize_der(), PASS).unwrap();
    assert!(sealed.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert!(is_encrypted(sealed.as_bytes()));
    std::fs::write(dir.path().join("sealed.pem"), sealed.as_bytes()).unwrap();
    openssl(
        dir.path(),
        &[
            "pkey",
            "-in",
            "sealed.pem",
            "-passin",
            &format!("pass:{PASS}"),
            "-out",
            "open.pem",
        ],
    );
    let opened = std::fs::read(dir.path().join("open.pem")).unwrap();
    assert_eq!(*read(&opened, never).unwrap(), key.serialize_der());
    assert_eq!(
        *read(sealed.as_bytes(), given(PASS)).unwrap(),
        key.serialize_der()
    );
}

#[test]
fn what_is_not_a_key_is_an_error_in_words() {
    let cases: [(&[u8], &str); 5] = [
        (b"garbage", "not a PEM private key"),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "not a private key",
        ),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "cannot be read",
        ),
        (
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: BF-CBC,0011223344556677\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            "not supported",
        ),
        (
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,+00112233445566778899AABBCCDDEEF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            "IV is not hex",
        ),
    ];
    for (pem, expected) in cases {
        let err = read(pem, given(PASS)).unwrap_err();
        assert!(err.contains(expected), "{err}");
    }
    // A passphrase that cannot be had stops the read with its own words.
    let sealed = encrypt(
        &rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_der(),
        PASS,
    )
    .unwrap();
    let err = read(sealed.as_bytes(), || Err("no passphrase".into())).unwrap_err();
    assert_eq!(err, "no passphrase");
}

#[test]
fn ec_parameters_before_the_key_are_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "ec.pem",
        ],
    );
    let pem = std::fs::read(dir.path().join("ec.pem")).unwrap();
    assert!(String::from_utf8_lossy(&pem).starts_with("-----BEGIN EC PARAMETERS-----"));
    assert!(!is_encrypted(&pem));
    read(&pem, never).unwrap();
}
