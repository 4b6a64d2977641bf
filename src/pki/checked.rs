//! The pairs the store has checked before: for each, a SHA-256 of the CA
//! certificate, the certificate and its key, in `checked-pairs` beside
//! them. A pair whose exact bytes (with the same CA) were checked once, its
//! key belonging to its certificate and its certificate signed by the CA,
//! is not checked again: those two checks are a key derivation and an
//! ECDSA verification, which on a fleet of 10,000 hosts were a tenth of a
//! run's CPU, run after run, on files that had not changed. Dates, names
//! and usage are still read from the certificate every time, since they
//! change with the clock and the inventory, not with the bytes.
//!
//! The file is a cache: a line that is not a digest is skipped, and a
//! missing, unreadable or oversized file only means every pair is checked
//! in full again. Whoever can write it can as well write the keys beside
//! it, in the store's private directory. `plan` reads it and never writes
//! it; runs that issue write it with the store locked, merged with what
//! other runs added, so shards sharing the store keep each other's.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use sha2::{Digest, Sha256};

use super::Pair;
use crate::error::Result;

/// The file's name in the store's directory.
const FILE: &str = "checked-pairs";

/// A file bigger than this is not read (10,000 hosts make about 650 KB).
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Past this many digests, a write keeps only those of the current run, so
/// pairs long replaced do not pile up.
const MAX_DIGESTS: usize = 200_000;

type Digest32 = [u8; 32];

/// The checked pairs of one store, read on first use.
pub(super) struct Checked {
    path: PathBuf,
    ledger: OnceLock<Mutex<Ledger>>,
}

#[derive(Default)]
struct Ledger {
    known: HashSet<Digest32>,
    /// Met or checked by this run.
    used: HashSet<Digest32>,
    /// Whether this run checked a pair the file does not name.
    added: bool,
}

impl Checked {
    pub(super) fn new(dir: &Path) -> Checked {
        Checked {
            path: dir.join(FILE),
            ledger: OnceLock::new(),
        }
    }

    /// The digest of `pair` with its CA: each part's length, then its bytes.
    pub(super) fn digest(ca: &Pair, pair: &Pair) -> Digest32 {
        let mut sha = Sha256::new();
        for part in [&ca.cert_pem, &pair.cert_pem, &pair.key_pem] {
            sha.update((part.len() as u64).to_le_bytes());
            sha.update(part);
        }
        sha.finalize().into()
    }

    /// Whether the pair of `digest` was checked (by this run or one before).
    pub(super) fn contains(&self, digest: &Digest32) -> bool {
        let mut ledger = self.ledger();
        let known = ledger.known.contains(digest);
        if known {
            ledger.used.insert(*digest);
        }
        known
    }

    /// Records a pair that passed both checks.
    pub(super) fn add(&self, digest: Digest32) {
        let mut ledger = self.ledger();
        ledger.used.insert(digest);
        if ledger.known.insert(digest) {
            ledger.added = true;
        }
    }

    /// Writes the file when this run checked pairs it did not name, with
    /// what other runs wrote since it was read. The caller holds the
    /// store's lock, which every writer takes.
    pub(super) fn save(&self) -> Result<()> {
        let mut ledger = self.ledger();
        if !ledger.added {
            return Ok(());
        }
        let mut all = read(&self.path);
        all.extend(ledger.known.iter().copied());
        if all.len() > MAX_DIGESTS {
            all = ledger.used.clone();
        }
        let mut sorted: Vec<&Digest32> = all.iter().collect();
        sorted.sort_unstable();
        let mut text = String::with_capacity(sorted.len() * 65);
        for digest in sorted {
            push_line(&mut text, digest);
        }
        super::write_atomic(&self.path, text.as_bytes(), 0o600)?;
        ledger.known = all;
        ledger.added = false;
        Ok(())
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger
            .get_or_init(|| {
                Mutex::new(Ledger {
                    known: read(&self.path),
                    ..Ledger::default()
                })
            })
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The digests the file names; nothing when it is missing, unreadable or
/// too big. Lines that are not 64 hex digits are skipped.
fn read(path: &Path) -> HashSet<Digest32> {
    use std::io::Read as _;
    let mut text = String::new();
    let read = std::fs::File::open(path).and_then(|file| {
        let mut limited = file.take(MAX_FILE_BYTES + 1);
        limited.read_to_string(&mut text)
    });
    match read {
        Ok(size) if size as u64 <= MAX_FILE_BYTES => text.lines().filter_map(parse_line).collect(),
        _ => HashSet::new(),
    }
}

fn parse_line(line: &str) -> Option<Digest32> {
    super::keys::hex_decode(line.trim())?.try_into().ok()
}

/// A digest's line: 64 lower-case hex digits.
fn push_line(text: &mut String, digest: &Digest32) {
    text.push_str(&crate::core::hex(digest));
    text.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(cert: &str, key: &str) -> Pair {
        Pair {
            cert_pem: cert.into(),
            key_pem: key.into(),
        }
    }

    #[test]
    fn a_digest_names_exact_bytes_and_where_each_part_ends() {
        let ca = pair("ca", "ca-key");
        let one = Checked::digest(&ca, &pair("cert", "key"));
        assert_eq!(one, Checked::digest(&ca, &pair("cert", "key")));
        for other in [
            Checked::digest(&ca, &pair("cert", "key2")),
            Checked::digest(&ca, &pair("cer", "tkey")),
            Checked::digest(&pair("ca2", "ca-key"), &pair("cert", "key")),
        ] {
            assert_ne!(one, other);
        }
    }

    #[test]
    fn runs_keep_what_each_checked_and_skip_what_is_no_digest() {
        let dir = tempfile::tempdir().unwrap();
        let ca = pair("ca", "k");
        let (a, b) = (
            Checked::digest(&ca, &pair("a", "k")),
            Checked::digest(&ca, &pair("b", "k")),
        );
        // Two runs that read the file before either wrote it.
        let (first, second) = (Checked::new(dir.path()), Checked::new(dir.path()));
        assert!(!first.contains(&a) && !second.contains(&b));
        first.add(a);
        second.add(b);
        first.save().unwrap();
        second.save().unwrap();
        let path = dir.path().join(FILE);
        let mut text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        text.insert_str(0, "not a digest\nzz\n");
        std::fs::write(&path, text).unwrap();
        let third = Checked::new(dir.path());
        assert!(third.contains(&a) && third.contains(&b));
        // Nothing new: nothing written.
        third.save().unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("not a digest")
        );
    }

    #[test]
    fn a_missing_or_oversized_file_is_an_empty_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let digest = Checked::digest(&pair("ca", "k"), &pair("a", "k"));
        assert!(!Checked::new(dir.path()).contains(&digest));
        let mut line = String::new();
        push_line(&mut line, &digest);
        let line = line.trim_end();
        let mut big = format!("{line}\n").into_bytes();
        big.resize(MAX_FILE_BYTES as usize + 1, b'\n');
        std::fs::write(dir.path().join(FILE), big).unwrap();
        assert!(!Checked::new(dir.path()).contains(&digest));
        assert_eq!(parse_line(line), Some(digest));
        assert_eq!(parse_line(&line.to_uppercase()), Some(digest));
        assert_eq!(parse_line(&line[1..]), None);
        assert_eq!(parse_line(&line[2..]), None, "31 bytes");
        assert_eq!(parse_line(&format!("{}+1", &line[..62])), None);
    }

    /// Through the store: a pair issued is recorded (0600), a pair whose
    /// bytes changed is checked in full, and a digest in the file is
    /// trusted in place of both checks: a mismatched pair named there
    /// passes, and fails again once its line is gone.
    #[test]
    fn the_store_skips_the_checks_only_for_bytes_it_checked() {
        use crate::core::input::playbook::{KeyType, PkiRole};
        use crate::core::pki::{IssueReason, Sans};
        use crate::core::roles::TlsMaterial;
        use crate::pki::{Outcome, PkiStore};
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let store = || {
            PkiStore::new(
                dir.path().to_path_buf(),
                PkiRole {
                    key_type: KeyType::EcdsaP256,
                    ..PkiRole::default()
                },
            )
        };
        let sans = |host: &str| Sans::for_host(host, "192.0.2.1", &[], &[]);
        let first = store();
        first.ensure_server("web1", &sans("web1"), now).unwrap();
        first.ensure_server("web2", &sans("web2"), now).unwrap();
        let ledger = dir.path().join(FILE);
        let mode = std::fs::metadata(&ledger).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&ledger).len(), 2);

        // web1 given web2's key: a new run checks the changed pair in full.
        let servers = dir.path().join("servers");
        std::fs::copy(servers.join("web2/key.pem"), servers.join("web1/key.pem")).unwrap();
        let pending = |store: &PkiStore| {
            matches!(
                store.tls_for_host("web1", &sans("web1"), now).unwrap(),
                TlsMaterial::CertPending { .. }
            )
        };
        assert!(pending(&store()), "a key of another certificate");

        // Its digest in the file: trusted without the checks.
        let ca = store().ca().unwrap().unwrap();
        let mismatched = Pair {
            cert_pem: std::fs::read(servers.join("web1/cert.pem")).unwrap(),
            key_pem: std::fs::read(servers.join("web1/key.pem")).unwrap(),
        };
        let mut line = String::new();
        push_line(&mut line, &Checked::digest(&ca, &mismatched));
        let before = std::fs::read_to_string(&ledger).unwrap();
        std::fs::write(&ledger, format!("{before}{line}")).unwrap();
        assert!(!pending(&store()), "named in the file");
        // Reading (plan) never writes the file.
        assert!(std::fs::read_to_string(&ledger).unwrap().contains(&line));

        std::fs::write(&ledger, &before).unwrap();
        let again = store();
        let (_, outcome) = again.ensure_server("web1", &sans("web1"), now).unwrap();
        assert!(
            matches!(outcome, Outcome::Issued(IssueReason::Unreadable { .. })),
            "{outcome:?}"
        );
        assert_eq!(read(&ledger).len(), 3, "the new pair is recorded");
    }
}
