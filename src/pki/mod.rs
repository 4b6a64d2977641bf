//! The local PKI: the CA and the certificates it issues, kept on the
//! workstation (the CA key never leaves it). Layout of the directory:
//!
//! ```text
//! ca.pem  ca-key.pem                     the CA (key 0600; encrypted PKCS#8
//!                                        after `pki init --encrypt` or
//!                                        `pki import`)
//! servers/HOST/cert.pem  key.pem         one per host (key 0600)
//! clients/NAME/cert.pem  key.pem         client certificates (key 0600)
//! checked-pairs                          digests of the pairs checked
//!                                        before (a cache, 0600: see checked)
//! ```
//!
//! Reading (for `plan`) never writes; issuing decides with
//! `core::pki::decide` and writes each key with 0600 from the start. Every
//! run that writes holds an exclusive lock on the store, so concurrent runs
//! never mix one CA's key with another's certificate; every key is checked
//! to belong to its certificate; the directories are 0700.

mod ca;
mod checked;
pub mod context;
mod issue;
pub mod keys;
mod lock;
mod read;

pub use ca::{Imported, Initialized, PASSPHRASE_ENV, passphrase_source};

pub use issue::{Issued, ServerPairs, issue};
pub use lock::{Locked, StoreLock, Waiting};
pub use read::TlsReader;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use crate::core::input::playbook::{KeyType, PkiRole};
use crate::core::pki::{self, Decision, Purpose, Sans};
use crate::core::roles::TlsMaterial;
use crate::error::{Error, Result};

/// Certificates start this long before they are issued, so a host whose
/// clock is a little behind accepts them (docker-machine did the same).
const BACKDATE_SECONDS: i64 = 300;

pub struct PkiStore {
    dir: PathBuf,
    settings: PkiRole,
    /// The CA key's passphrase, asked only when an encrypted key signs.
    passphrase: crate::secret::SecretSource,
    /// The CA key once decrypted, with the certificate it belongs to: a
    /// run that issues 50 certificates derives the key once.
    unsealed: std::sync::Mutex<Option<(Vec<u8>, keys::Pkcs8)>>,
    checked: checked::Checked,
}

/// A certificate and its key, as PEM.
#[derive(Clone)]
pub struct Pair {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// One certificate of the store, as `pki list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub kind: String,
    pub name: String,
    /// The certificate as read, or why it cannot be.
    #[serde(flatten)]
    pub details: EntryDetails,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum EntryDetails {
    Read {
        subject: String,
        issuer: String,
        sans: String,
        /// Unix seconds, and RFC 3339 for people.
        not_after: i64,
        expires: String,
        days_left: i64,
        fingerprint: String,
    },
    Unreadable {
        error: String,
    },
}

impl Entry {
    fn read(kind: &str, name: &str, cert_pem: &[u8], ca_pem: Option<&[u8]>, now: i64) -> Entry {
        let details = match pki::read_certificate(cert_pem, ca_pem) {
            Ok(info) => EntryDetails::Read {
                expires: time::OffsetDateTime::from_unix_timestamp(info.not_after)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default(),
                days_left: (info.not_after - now).div_euclid(86_400),
                not_after: info.not_after,
                subject: info.subject,
                issuer: info.issuer,
                sans: info.sans.describe(),
                fingerprint: info.fingerprint,
            },
            Err(error) => EntryDetails::Unreadable { error },
        };
        Entry {
            kind: kind.to_string(),
            name: name.to_string(),
            details,
        }
    }
}

/// What `ensure_*` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Reused,
    Issued(pki::IssueReason),
}

impl PkiStore {
    pub fn new(dir: PathBuf, settings: PkiRole) -> PkiStore {
        PkiStore {
            settings,
            passphrase: ca::passphrase_source(None),
            unsealed: std::sync::Mutex::new(None),
            checked: checked::Checked::new(&dir),
            dir,
        }
    }

    /// The same store, its passphrase from `source`.
    pub fn with_passphrase(mut self, source: crate::secret::SecretSource) -> PkiStore {
        self.passphrase = source;
        self
    }

    /// The directory from, in order: `DOCKHAND_PKI_DIR`, the playbook's
    /// `pki.dir` (relative to the playbook), `~/.local/share/dockhand/pki`.
    pub fn locate(settings: &PkiRole, playbook_file: &Path) -> PathBuf {
        if let Some(dir) = std::env::var_os("DOCKHAND_PKI_DIR") {
            return PathBuf::from(dir);
        }
        if let Some(dir) = &settings.dir {
            let base = playbook_file.parent().unwrap_or(Path::new("."));
            return base.join(dir);
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        data.join("dockhand/pki")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ca_paths(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("ca.pem"), self.dir.join("ca-key.pem"))
    }

    /// The CA that takes over during a rotation (`pki rotate start`).
    fn next_dir(&self) -> PathBuf {
        self.dir.join("rotation/next")
    }

    /// The CA that was replaced, still trusted until `pki rotate finish`.
    fn previous_dir(&self) -> PathBuf {
        self.dir.join("rotation/previous")
    }

    /// The CA certificates hosts and clients trust: the current CA, and
    /// during a rotation the one coming (after `start`) or going (after
    /// `switch`), so every certificate in use stays valid throughout.
    pub fn trust_bundle(&self) -> Result<Option<Vec<u8>>> {
        let Some(ca) = self.ca()? else {
            return Ok(None);
        };
        let mut bundle = ca.cert_pem;
        self.add_other_cas(&mut bundle);
        Ok(Some(bundle))
    }

    /// Appends the next CA and the previous one, while a rotation trusts them.
    fn add_other_cas(&self, bundle: &mut Vec<u8>) {
        for dir in [self.next_dir(), self.previous_dir()] {
            if let Ok(pem) = std::fs::read(dir.join("ca.pem")) {
                if !bundle.ends_with(b"\n") {
                    bundle.push(b'\n');
                }
                bundle.extend(pem);
            }
        }
    }

    /// Where a rotation stands: `None`, `Some("started")` (a next CA is
    /// trusted beside the current one) or `Some("switched")` (the new CA
    /// issues; the old one is still trusted).
    pub fn rotation(&self) -> Option<&'static str> {
        if self.next_dir().join("ca.pem").exists() {
            Some("started")
        } else if self.previous_dir().join("ca.pem").exists() {
            Some("switched")
        } else {
            None
        }
    }

    /// `pki rotate start`: a new CA, trusted beside the current one from the
    /// next apply on; nothing it issues yet.
    pub fn rotate_start(&self) -> Result<()> {
        let _lock = self.lock()?;
        let current = self.ca()?.ok_or_else(|| {
            Error::Usage("there is no CA to rotate: run `dockhand pki init`".into())
        })?;
        if self.is_sealed() {
            // The next CA's key is sealed with the passphrase that opens
            // the current one.
            self.signing_key(&current, &Waiting::default())?;
        }
        if let Some(stage) = self.rotation() {
            return Err(Error::Usage(format!(
                "a CA rotation is already {stage}: go on with `dockhand pki rotate {}`",
                if stage == "started" {
                    "switch"
                } else {
                    "finish"
                }
            )));
        }
        let (cert, key) = (
            self.next_dir().join("ca.pem"),
            self.next_dir().join("ca-key.pem"),
        );
        let pair = self.new_ca()?;
        self.write_ca(&cert, &key, &pair, self.is_sealed())
    }

    /// `pki rotate switch`: the new CA becomes the one that issues; the old
    /// one stays trusted. The next apply reissues every server certificate.
    pub fn rotate_switch(&self) -> Result<()> {
        let _lock = self.lock()?;
        if self.rotation() != Some("started") {
            return Err(Error::Usage(
                "no CA rotation to switch: start one with `dockhand pki rotate start`".into(),
            ));
        }
        let (current_cert, current_key) = self.ca_paths();
        let previous = self.previous_dir();
        private_dir(&previous)?;
        let moves = [
            (current_cert.clone(), previous.join("ca.pem")),
            (current_key.clone(), previous.join("ca-key.pem")),
            (self.next_dir().join("ca.pem"), current_cert),
            (self.next_dir().join("ca-key.pem"), current_key),
        ];
        for (from, to) in moves {
            std::fs::rename(&from, &to).map_err(|e| Error::file(&from, e))?;
        }
        let _ = std::fs::remove_dir(self.next_dir());
        Ok(())
    }

    /// `pki rotate finish`: the old CA is no longer trusted, and its key is
    /// gone.
    pub fn rotate_finish(&self) -> Result<()> {
        let _lock = self.lock()?;
        if self.rotation() != Some("switched") {
            return Err(Error::Usage(
                "no switched CA rotation to finish: `dockhand pki rotate switch` (and an apply) come first".into(),
            ));
        }
        std::fs::remove_dir_all(self.previous_dir())
            .map_err(|e| Error::file(self.previous_dir(), e))?;
        let _ = std::fs::remove_dir(self.dir.join("rotation"));
        Ok(())
    }
    fn pair_paths(&self, kind: &str, name: &str) -> (PathBuf, PathBuf) {
        pair_paths_in(&self.dir.join(kind), name)
    }

    /// The CA, if it exists. Half a CA (one file without the other), or a
    /// key that does not belong to the certificate, is an error that says
    /// what to do: never a reason to make a new CA silently.
    pub fn ca(&self) -> Result<Option<Pair>> {
        let (cert, key) = self.ca_paths();
        match (cert.exists(), key.exists()) {
            (false, false) => return Ok(None),
            (true, false) | (false, true) => {
                let (have, missing) = if cert.exists() {
                    (&cert, &key)
                } else {
                    (&key, &cert)
                };
                return Err(Error::file(
                    &self.dir,
                    format!(
                        "the CA is incomplete: {} is there but {} is missing. Restore it from your backup; \
                         or, to start over with a new CA (every host's and client's certificate is then reissued), \
                         move {} away first",
                        have.display(),
                        missing.display(),
                        have.display()
                    ),
                ));
            }
            (true, true) => {}
        }
        let pair = read_pair(&cert, &key)?.expect("both files exist");
        if keys::is_encrypted(&pair.key_pem) {
            // Checked against the certificate when it is opened to sign.
            return Ok(Some(pair));
        }
        key_matches(&pair).map_err(|reason| {
            Error::file(
                &self.dir,
                format!(
                    "the CA is broken: {reason} ({} and {}). Restore both from your backup, or move both away to start over with a new CA",
                    cert.display(),
                    key.display()
                ),
            )
        })?;
        Ok(Some(pair))
    }

    /// A warning when the CA itself expires within the renewal window:
    /// every certificate it signed stops being trusted then.
    pub fn ca_warning(&self, now: i64) -> Result<Option<String>> {
        let Some(ca) = self.ca()? else {
            return Ok(None);
        };
        let info =
            pki::read_certificate(&ca.cert_pem, None).map_err(|e| Error::file(&self.dir, e))?;
        let days_left = (info.not_after - now).div_euclid(86_400);
        Ok((days_left <= i64::from(self.settings.renew_before_days)).then(|| {
            format!(
                "the CA in {} expires in {days_left} day(s): every certificate it signed stops being trusted then; rotate the CA before",
                self.dir.display()
            )
        }))
    }

    /// An exclusive lock on the store, held until dropped: every run that
    /// writes takes it before it decides anything. A store another run
    /// holds is waited for, said on standard error.
    pub fn lock(&self) -> Result<StoreLock> {
        self.lock_waiting(&Waiting::default())
    }

    /// [`PkiStore::lock`], waited for as `wait` says.
    fn lock_waiting(&self, wait: &Waiting) -> Result<StoreLock> {
        private_dir(&self.dir)?;
        lock::acquire(&self.dir.join(".lock"), wait)
    }

    /// A client certificate, if issued (never issues).
    pub fn client(&self, name: &str) -> Result<Option<Pair>> {
        validate_name(name)?;
        let (cert, key) = self.pair_paths("clients", name);
        read_pair(&cert, &key)
    }

    /// Every certificate in the store, CA first.
    pub fn list(&self, now: i64) -> Result<Vec<Entry>> {
        let Some(ca) = self.ca()? else {
            return Ok(Vec::new());
        };
        let mut entries = vec![Entry::read("ca", "CA", &ca.cert_pem, None, now)];
        for (name, dir) in [
            ("next CA", self.next_dir()),
            ("old CA", self.previous_dir()),
        ] {
            if let Ok(pem) = std::fs::read(dir.join("ca.pem")) {
                entries.push(Entry::read("ca", name, &pem, None, now));
            }
        }
        for kind in ["servers", "clients"] {
            let Ok(dirs) = std::fs::read_dir(self.dir.join(kind)) else {
                continue;
            };
            let mut names: Vec<String> = dirs
                .flatten()
                .map(|d| d.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                let (cert, key) = self.pair_paths(kind, &name);
                if let Some(pair) = read_pair(&cert, &key)? {
                    entries.push(Entry::read(
                        kind.trim_end_matches('s'),
                        &name,
                        &pair.cert_pem,
                        Some(&ca.cert_pem),
                        now,
                    ));
                }
            }
        }
        Ok(entries)
    }

    /// What a host's TLS files would be, without issuing anything.
    pub fn tls_for_host(&self, host: &str, sans: &Sans, now: i64) -> Result<TlsMaterial> {
        self.tls_with(self.ca_and_bundle()?.as_ref(), host, sans, now)
    }

    /// The CA and the trust bundle hosts are given, if there is a CA.
    fn ca_and_bundle(&self) -> Result<Option<(Pair, std::sync::Arc<[u8]>)>> {
        let Some(ca) = self.ca()? else {
            return Ok(None);
        };
        let mut bundle = ca.cert_pem.clone();
        self.add_other_cas(&mut bundle);
        Ok(Some((ca, bundle.into())))
    }

    /// [`PkiStore::tls_for_host`] with the CA and the bundle already read.
    fn tls_with(
        &self,
        ca: Option<&(Pair, std::sync::Arc<[u8]>)>,
        host: &str,
        sans: &Sans,
        now: i64,
    ) -> Result<TlsMaterial> {
        let Some((ca, bundle)) = ca else {
            return Ok(TlsMaterial::CaPending);
        };
        let (cert_path, key_path) = self.pair_paths("servers", host);
        let existing = read_pair(&cert_path, &key_path)?;
        match self.decide(existing.as_ref(), ca, Purpose::Server, Some(sans), now) {
            Decision::Reuse => {
                let pair = existing.expect("reuse implies a pair");
                Ok(TlsMaterial::Ready {
                    ca_pem: bundle.clone(),
                    cert_pem: pair.cert_pem,
                    key_pem: pair.key_pem,
                })
            }
            Decision::Issue(reason) => Ok(TlsMaterial::CertPending {
                ca_pem: bundle.clone(),
                reason: reason.to_string(),
            }),
        }
    }

    fn decide(
        &self,
        existing: Option<&Pair>,
        ca: &Pair,
        purpose: Purpose,
        sans: Option<&Sans>,
        now: i64,
    ) -> Decision {
        let parsed = existing.map(|pair| self.check_pair(pair, ca));
        let existing = parsed.as_ref().map(|r| r.as_ref().map_err(String::as_str));
        pki::decide(
            existing,
            purpose,
            sans,
            now,
            self.settings.renew_before_days,
        )
    }

    /// The certificate of `pair` as read, its key checked to belong to it
    /// and its signature against `ca`, unless this store checked these
    /// very bytes before (see [`checked`]).
    fn check_pair(&self, pair: &Pair, ca: &Pair) -> std::result::Result<pki::CertInfo, String> {
        let digest = checked::Checked::digest(ca, pair);
        if self.checked.contains(&digest) {
            let info = pki::read_certificate(&pair.cert_pem, None)?;
            return Ok(pki::CertInfo {
                signed_by_ca: true,
                ..info
            });
        }
        key_matches(pair)?;
        let info = pki::read_certificate(&pair.cert_pem, Some(&ca.cert_pem))?;
        if info.signed_by_ca {
            self.checked.add(digest);
        }
        Ok(info)
    }

    /// The CA, created if missing.
    pub fn ensure_ca(&self) -> Result<(Pair, bool)> {
        let _lock = self.lock()?;
        self.ensure_ca_locked()
    }

    fn ensure_ca_locked(&self) -> Result<(Pair, bool)> {
        if let Some(ca) = self.ca()? {
            return Ok((ca, false));
        }
        let pair = self.new_ca()?;
        let (cert_path, key_path) = self.ca_paths();
        write_pair(&cert_path, &key_path, &pair)?;
        Ok((pair, true))
    }

    /// A new self-signed CA (not written anywhere yet).
    fn new_ca(&self) -> Result<Pair> {
        let key = self.new_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&self.settings.ca_common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        self.set_validity(&mut params, self.settings.ca_validity_days)?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| self.error("create the CA", e))?;
        Ok(Pair {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
        })
    }

    /// A host's server certificate, issued when missing, expiring, from
    /// another CA or naming other hosts.
    pub fn ensure_server(&self, host: &str, sans: &Sans, now: i64) -> Result<(Pair, Outcome)> {
        self.ensure_pair("servers", host, Purpose::Server, Some(sans), now)
    }

    /// A client certificate (extendedKeyUsage clientAuth).
    pub fn ensure_client(&self, name: &str, now: i64) -> Result<(Pair, Outcome)> {
        self.ensure_pair("clients", name, Purpose::Client, None, now)
    }

    fn ensure_pair(
        &self,
        kind: &str,
        name_: &str,
        purpose: Purpose,
        sans: Option<&Sans>,
        now: i64,
    ) -> Result<(Pair, Outcome)> {
        validate_name(name_)?;
        let wait = Waiting::default();
        let _lock = self.lock_waiting(&wait)?;
        self.ensure_pair_in_lock(kind, (name_, purpose, sans), now, &wait)
    }

    /// [`PkiStore::ensure_pair`], with the store locked by the caller.
    fn ensure_pair_in_lock(
        &self,
        kind: &str,
        (name_, purpose, sans): (&str, Purpose, Option<&Sans>),
        now: i64,
        wait: &Waiting,
    ) -> Result<(Pair, Outcome)> {
        validate_name(name_)?;
        let (ca, _) = self.ensure_ca_locked()?;
        let ensured = self.ensure_pair_locked(&ca, kind, (name_, purpose, sans), now, wait)?;
        self.checked.save()?;
        Ok(ensured)
    }

    /// [`PkiStore::ensure_pair`] with the store locked and `ca` read.
    fn ensure_pair_locked(
        &self,
        ca: &Pair,
        kind: &str,
        (name_, purpose, sans): (&str, Purpose, Option<&Sans>),
        now: i64,
        wait: &Waiting,
    ) -> Result<(Pair, Outcome)> {
        let (cert_path, key_path) = self.pair_paths(kind, name_);
        let existing = read_pair(&cert_path, &key_path)?;
        let reason = match self.decide(existing.as_ref(), ca, purpose, sans, now) {
            Decision::Reuse => {
                return Ok((existing.expect("reuse implies a pair"), Outcome::Reused));
            }
            Decision::Issue(reason) => reason,
        };
        let ca_key = self.signing_key(ca, wait)?;
        let issuer = Issuer::from_ca_cert_pem(&String::from_utf8_lossy(&ca.cert_pem), ca_key)
            .map_err(|e| self.error("read the CA certificate", e))?;
        let key = self.new_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(name_);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![match purpose {
            Purpose::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Purpose::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        if let Some(sans) = sans {
            for dns in &sans.dns {
                let dns = dns
                    .clone()
                    .try_into()
                    .map_err(|e| self.error(&format!("use the name {dns:?}"), e))?;
                params.subject_alt_names.push(SanType::DnsName(dns));
            }
            for ip in &sans.ips {
                params.subject_alt_names.push(SanType::IpAddress(*ip));
            }
        }
        self.set_validity(&mut params, self.settings.cert_validity_days)?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| self.error("issue a certificate", e))?;
        let pair = Pair {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
        };
        write_pair(&cert_path, &key_path, &pair)?;
        // Made here from the CA's key: its key and signature are right.
        self.checked.add(checked::Checked::digest(ca, &pair));
        Ok((pair, Outcome::Issued(reason)))
    }

    fn new_key(&self) -> Result<KeyPair> {
        match self.settings.key_type {
            KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyType::Rsa4096 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)
            }
        }
        .map_err(|e| self.error("generate a key", e))
    }

    /// Explicit validity, backdated a little, and a random 128-bit serial.
    fn set_validity(&self, params: &mut CertificateParams, days: u32) -> Result<()> {
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::seconds(BACKDATE_SECONDS);
        params.not_after = now + time::Duration::days(i64::from(days));
        let mut serial = [0u8; 16];
        crate::random::fill(&mut serial);
        serial[0] &= 0x7f; // positive
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        Ok(())
    }

    fn error(&self, step: &str, err: impl std::fmt::Display) -> Error {
        Error::file(&self.dir, format!("cannot {step}: {err}"))
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// Names become directory names.
fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{name:?} cannot name a certificate: use letters, digits, '-', '_' and '.'"
        )))
    }
}

/// The certificate and key of `name` under a kind's directory
/// (`servers`, `clients`).
fn pair_paths_in(kind_dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let dir = kind_dir.join(name);
    (dir.join("cert.pem"), dir.join("key.pem"))
}

fn read_pair(cert: &Path, key: &Path) -> Result<Option<Pair>> {
    let read = |path: &Path| match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::file(path, e)),
    };
    match (read(cert)?, read(key)?) {
        (Some(cert_pem), Some(key_pem)) => Ok(Some(Pair { cert_pem, key_pem })),
        _ => Ok(None),
    }
}

/// Writes the key with 0600 from its creation (never readable by others,
/// not for a moment), then the certificate; each via a temp file renamed
/// into place, so a crash leaves the old pair or the new, never half.
fn write_pair(cert: &Path, key: &Path, pair: &Pair) -> Result<()> {
    let dir = key.parent().expect("pki paths have a parent");
    private_dir(dir)?;
    write_atomic(key, &pair.key_pem, 0o600)?;
    write_atomic(cert, &pair.cert_pem, 0o644)
}

/// Writes a file through a temp file created with its final mode (so a key
/// is never readable by others), fsynced, then renamed into place.
impl PkiStore {
    /// Writes the client bundle of `name` into `out`: the three files the
    /// docker CLI reads from `DOCKER_CERT_PATH` (`key.pem` 0600), its
    /// certificate issued first when missing or about to expire, and
    /// `ca.pem` holding every CA the client trusts (during a rotation, the
    /// old and the new). Returns what was done and the bundle's path.
    pub fn write_client_bundle(&self, name: &str, out: &Path) -> Result<(Outcome, PathBuf)> {
        self.ensure_ca()?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (pair, outcome) = self.ensure_client(name, now)?;
        let trusted = self.trust_bundle()?.expect("created above");
        std::fs::create_dir_all(out).map_err(|e| Error::file(out, e))?;
        write_atomic(&out.join("key.pem"), &pair.key_pem, 0o600)?;
        write_atomic(&out.join("cert.pem"), &pair.cert_pem, 0o644)?;
        write_atomic(&out.join("ca.pem"), &trusted, 0o644)?;
        let bundle = out.canonicalize().unwrap_or_else(|_| out.to_path_buf());
        Ok((outcome, bundle))
    }
}

pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut suffix = [0u8; 8];
    crate::random::fill(&mut suffix);
    let suffix = crate::core::hex(&suffix);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{suffix}"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::file(&tmp, e))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::file(path, e));
    }
    // The rename itself is made durable with the directory.
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A directory of the store: created if missing, and 0700, so nobody else
/// even lists the names of the keys.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::file(dir, e))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::file(dir, e))
}

/// Whether a key belongs to its certificate: the certificate's public key
/// is the key's.
fn key_matches(pair: &Pair) -> std::result::Result<(), String> {
    let key = KeyPair::from_pem(&String::from_utf8_lossy(&pair.key_pem))
        .map_err(|e| format!("the key cannot be read: {e}"))?;
    key_pair_matches(&pair.cert_pem, &key)
}

/// Whether `key` is the certificate's key.
fn key_pair_matches(cert_pem: &[u8], key: &KeyPair) -> std::result::Result<(), String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(cert_pem)
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = block
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    if cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw() {
        Ok(())
    } else {
        Err("the key does not belong to the certificate".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn store(dir: &Path, key_type: KeyType) -> PkiStore {
        PkiStore::new(
            dir.to_path_buf(),
            PkiRole {
                key_type,
                ..PkiRole::default()
            },
        )
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_ca_rotation_trusts_both_cas_until_it_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), KeyType::EcdsaP256);
        let count = |bundle: Vec<u8>| {
            String::from_utf8(bundle)
                .unwrap()
                .matches("BEGIN CERTIFICATE")
                .count()
        };
        assert!(store.rotate_start().is_err(), "no CA to rotate yet");
        let (old, _) = store.ensure_ca().unwrap();
        let sans = Sans::for_host("web1", "192.0.2.1", &[], &[]);
        let (server, _) = store.ensure_server("web1", &sans, now()).unwrap();
        assert_eq!(count(store.trust_bundle().unwrap().unwrap()), 1);
        assert!(
            store.rotate_switch().is_err() && store.rotate_finish().is_err(),
            "out of order"
        );

        store.rotate_start().unwrap();
        assert_eq!(store.rotation(), Some("started"));
        assert_eq!(count(store.trust_bundle().unwrap().unwrap()), 2);
        assert!(store.rotate_start().is_err(), "one rotation at a time");
        // Nothing is reissued yet: the old CA still issues.
        assert_eq!(
            store.ensure_server("web1", &sans, now()).unwrap().1,
            Outcome::Reused
        );

        store.rotate_switch().unwrap();
        assert_eq!(store.rotation(), Some("switched"));
        let new = store.ca().unwrap().unwrap();
        assert_ne!(new.cert_pem, old.cert_pem);
        let bundle = String::from_utf8(store.trust_bundle().unwrap().unwrap()).unwrap();
        assert!(
            bundle.contains(String::from_utf8_lossy(&old.cert_pem).trim()),
            "the old CA is still trusted"
        );
        let (reissued, outcome) = store.ensure_server("web1", &sans, now()).unwrap();
        assert_eq!(outcome, Outcome::Issued(pki::IssueReason::NotFromThisCa));
        assert_ne!(reissued.cert_pem, server.cert_pem);

        store.rotate_finish().unwrap();
        assert_eq!(store.rotation(), None);
        assert_eq!(store.trust_bundle().unwrap().unwrap(), new.cert_pem);
        assert!(
            !dir.path().join("rotation").exists(),
            "the old CA's key is gone"
        );
    }

    #[test]
    fn issues_once_reuses_then_reissues_on_san_drift() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), KeyType::EcdsaP256);
        let sans = Sans::for_host("web1", "192.0.2.1", &[], &[]);
        assert_eq!(
            store.tls_for_host("web1", &sans, now()).unwrap(),
            TlsMaterial::CaPending
        );

        let (first, outcome) = store.ensure_server("web1", &sans, now()).unwrap();
        assert_eq!(outcome, Outcome::Issued(pki::IssueReason::Missing));
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("ca-key.pem"), 0o600);
        assert_eq!(mode("servers/web1/key.pem"), 0o600);

        let (again, outcome) = store.ensure_server("web1", &sans, now()).unwrap();
        assert_eq!(outcome, Outcome::Reused);
        assert_eq!(again.cert_pem, first.cert_pem);
        assert!(matches!(
            store.tls_for_host("web1", &sans, now()).unwrap(),
            TlsMaterial::Ready { .. }
        ));

        let info = pki::read_certificate(
            &first.cert_pem,
            Some(&store.ca().unwrap().unwrap().cert_pem),
        )
        .unwrap();
        assert!(info.signed_by_ca && info.server_auth && !info.client_auth && !info.is_ca);
        assert_eq!(info.sans, sans);
        assert!(info.not_before < now() && info.not_after > now() + 364 * 86_400);

        let moved = Sans::for_host("web1", "192.0.2.99", &[], &[]);
        let TlsMaterial::CertPending { reason, .. } =
            store.tls_for_host("web1", &moved, now()).unwrap()
        else {
            panic!()
        };
        assert!(reason.contains("names changed"), "{reason}");
        let (_, outcome) = store.ensure_server("web1", &moved, now()).unwrap();
        assert!(matches!(
            outcome,
            Outcome::Issued(pki::IssueReason::NamesChanged { .. })
        ));

        // A year on, inside the renewal window: reissued.
        let (_, outcome) = store
            .ensure_server("web1", &moved, now() + 350 * 86_400)
            .unwrap();
        assert!(
            matches!(outcome, Outcome::Issued(pki::IssueReason::Expiring { .. })),
            "{outcome:?}"
        );
    }

    #[test]
    fn client_certificates_are_for_client_auth() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), KeyType::EcdsaP256);
        let (pair, _) = store.ensure_client("admin", now()).unwrap();
        let info =
            pki::read_certificate(&pair.cert_pem, Some(&store.ca().unwrap().unwrap().cert_pem))
                .unwrap();
        assert!(info.client_auth && !info.server_auth);
        assert!(store.ensure_client("../evil", now()).is_err());
    }

    #[test]
    fn rsa_4096_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), KeyType::Rsa4096);
        let (ca, _) = store.ensure_ca().unwrap();
        let key = String::from_utf8(ca.key_pem).unwrap();
        let pair = KeyPair::from_pem(&key).unwrap();
        assert!(pair.is_compatible(&rcgen::PKCS_RSA_SHA256));
        // 4096-bit modulus: the DER public key is over 512 bytes.
        assert!(pair.public_key_raw().len() > 512);
    }
}
