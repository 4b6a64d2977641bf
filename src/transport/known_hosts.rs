//! Host-key checking against OpenSSH `known_hosts` files.
//!
//! The decision follows OpenSSH: a presented key that matches a recorded one
//! is accepted; a presented key whose *algorithm* is recorded for the host
//! with a different key is a changed key and always refused (whatever the
//! policy); a host with no record is refused under the strict policy and
//! recorded under `accept-new`. Entries are matched here as OpenSSH
//! matches them (plain and hashed names, patterns, negations, markers), and
//! the tests hold the matching against `ssh-keygen -F`.

use std::path::PathBuf;

use russh::keys::{HashAlg, PublicKey};

use crate::error::{Error, HostError, Result};

/// What to do with a host whose key is not on record (OpenSSH's
/// `StrictHostKeyChecking`). A changed key is refused under every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Refuse hosts that are not on record (the default).
    #[default]
    Strict,
    /// Record unknown hosts in the first known_hosts file on first use.
    AcceptNew,
}

/// The outcome of looking a presented key up.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Known,
    Changed { file: PathBuf, line: usize },
    Unknown,
}

/// SHA256 fingerprint in OpenSSH's notation (`SHA256:...`), the only form in
/// which a host key ever appears in our messages.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// One line of a known_hosts file that names keys: its marker, its host
/// patterns (or hashed name), the key's type and base64, and its line
/// number as an editor shows it.
struct Entry<'a> {
    marker: Option<&'a str>,
    hosts: &'a str,
    key_type: &'a str,
    key: &'a str,
    line: usize,
}

/// The entries of a known_hosts text, as OpenSSH reads them: fields
/// separated by spaces or tabs, comments and blank lines skipped.
fn entries(text: &str) -> impl Iterator<Item = Entry<'_>> {
    text.lines().enumerate().filter_map(|(index, line)| {
        let mut fields = line.split_whitespace().peekable();
        if fields.peek()?.starts_with('#') {
            return None;
        }
        let marker = fields.next_if(|f| f.starts_with('@'));
        Some(Entry {
            marker,
            hosts: fields.next()?,
            key_type: fields.next()?,
            key: fields.next()?,
            line: index + 1,
        })
    })
}

/// The name OpenSSH looks a host up by: `host`, or `[host]:port` off 22.
fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Whether an entry's host field names `name`: a hashed name
/// (`|1|salt|hash`, HMAC-SHA1 of the name), or OpenSSH's pattern list.
fn entry_matches(hosts: &str, name: &str) -> bool {
    match hosts.strip_prefix("|1|") {
        Some(hashed) => hashed_matches(hashed, name),
        None => host_matches(hosts, name),
    }
}

fn hashed_matches(hashed: &str, name: &str) -> bool {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let engine = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (engine.decode(salt), engine.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// The presented key as known_hosts writes it: type and base64.
fn openssh_words(key: &PublicKey) -> Option<(String, String)> {
    let text = key.to_openssh().ok()?;
    let mut words = text.split_whitespace();
    Some((words.next()?.to_string(), words.next()?.to_string()))
}

/// Looks `key` up for `host`:`port` in every file, in order, as OpenSSH
/// does: plain names, `[host]:port`, patterns with `*`, `?` and `!`
/// negations, hashed names, spaces or tabs. `@cert-authority` lines name
/// CAs for host certificates, which dockhand's transport does not take: a
/// host known only through one is unknown here.
pub fn lookup(files: &[PathBuf], host: &str, port: u16, key: &PublicKey) -> Result<Verdict> {
    let name = lookup_name(host, port);
    let Some((key_type, key_b64)) = openssh_words(key) else {
        return Ok(Verdict::Unknown);
    };
    let mut changed = None;
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::KnownHosts {
                    file: file.clone(),
                    reason: e.to_string(),
                });
            }
        };
        for entry in entries(&text) {
            if entry.marker.is_some() || !entry_matches(entry.hosts, &name) {
                continue;
            }
            if entry.key == key_b64 {
                return Ok(Verdict::Known);
            }
            if entry.key_type == key_type && changed.is_none() {
                changed = Some(Verdict::Changed {
                    file: file.clone(),
                    line: entry.line,
                });
            }
        }
    }
    Ok(changed.unwrap_or(Verdict::Unknown))
}

/// The `@revoked` line (file, line number) that marks `key` as revoked for
/// `host`:`port`, if any. OpenSSH never accepts such a key, whatever else
/// the files say; nor does dockhand, and `accept-new` never records it.
pub fn revoked(
    files: &[PathBuf],
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Option<(PathBuf, usize)> {
    let (_, key_b64) = openssh_words(key)?;
    let name = lookup_name(host, port);
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for entry in entries(&text) {
            if entry.marker == Some("@revoked")
                && entry.key == key_b64
                && entry_matches(entry.hosts, &name)
            {
                return Some((file.clone(), entry.line));
            }
        }
    }
    None
}

/// OpenSSH's host pattern list: any positive match, and no negated one.
fn host_matches(patterns: &str, name: &str) -> bool {
    let glob = |pattern: &str| wildcard(pattern.as_bytes(), name.as_bytes());
    let mut matched = false;
    for pattern in patterns.split(',') {
        match pattern.strip_prefix('!') {
            Some(negated) if glob(negated) => return false,
            Some(_) => {}
            None => matched |= glob(pattern),
        }
    }
    matched
}

/// `*` (any run) and `?` (any one character); everything else literal, as
/// in OpenSSH's `match_pattern`.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard(&pattern[1..], text) || (!text.is_empty() && wildcard(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p.eq_ignore_ascii_case(t) => wildcard(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// Applies the policy to a lookup, turning refusals into errors that name
/// the host, the key's fingerprint and the record it contradicts.
pub fn decide(
    files: &[PathBuf],
    policy: HostKeyPolicy,
    host_label: &str,
    lookup_host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<()> {
    if let Some((file, line)) = revoked(files, lookup_host, port, key) {
        return Err(Error::OnHost {
            host: host_label.to_string(),
            cause: HostError::HostKeyRevoked {
                presented: fingerprint(key),
                file,
                line,
            },
        });
    }
    match lookup(files, lookup_host, port, key)? {
        Verdict::Known => Ok(()),
        Verdict::Changed { file, line } => Err(Error::OnHost {
            host: host_label.to_string(),
            cause: HostError::HostKeyChanged {
                algorithm: key.algorithm().to_string(),
                presented: fingerprint(key),
                file,
                line,
            },
        }),
        Verdict::Unknown => match (policy, files.first()) {
            (HostKeyPolicy::AcceptNew, Some(file)) => {
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::file(parent, e))?;
                }
                russh::keys::known_hosts::learn_known_hosts_path(lookup_host, port, key, file)
                    .map_err(|e| Error::KnownHosts {
                        file: file.clone(),
                        reason: e.to_string(),
                    })
            }
            _ => Err(Error::OnHost {
                host: host_label.to_string(),
                cause: HostError::HostKeyUnknown {
                    presented: fingerprint(key),
                    files: files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                },
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two fixed ed25519 public keys (public halves only, generated once with
    // ssh-keygen for these tests).
    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIEM+Lq5e801rTABMUWR06SiWbx0nvgyxypZRujBf/AC2";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOzMo6wPq/bBDCXbbVKudsDD3Q1fX8miPMGgm3vFt7n0";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn verdicts() {
        let text = format!(
            "# comment\n# another\nweb1,10.0.0.1 ssh-ed25519 {KEY_A}\n[web2]:2222 ssh-ed25519 {KEY_A}\n"
        );
        let (_dir, path) = file_with(&text);
        let files = vec![path.clone()];
        let cases: &[(&str, u16, &str, Verdict)] = &[
            ("web1", 22, KEY_A, Verdict::Known),
            ("10.0.0.1", 22, KEY_A, Verdict::Known),
            (
                "web1",
                22,
                KEY_B,
                Verdict::Changed {
                    file: path.clone(),
                    line: 3,
                },
            ),
            ("web2", 2222, KEY_A, Verdict::Known),
            ("web2", 22, KEY_A, Verdict::Unknown),
            (
                "web2",
                2222,
                KEY_B,
                Verdict::Changed {
                    file: path.clone(),
                    line: 4,
                },
            ),
            ("web3", 22, KEY_A, Verdict::Unknown),
        ];
        for (host, port, presented, expected) in cases {
            assert_eq!(
                &lookup(&files, host, *port, &key(presented)).unwrap(),
                expected,
                "{host}:{port}"
            );
        }
    }

    #[test]
    fn a_revoked_key_is_refused_under_every_policy_and_never_recorded() {
        let text = format!(
            "web1 ssh-ed25519 {KEY_A}\n@revoked web*,!web7,[web8]:2222 ssh-ed25519 {KEY_A}\n"
        );
        let (_dir, path) = file_with(&text);
        let files = vec![path.clone()];
        for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
            let err = decide(&files, policy, "web1", "web1", 22, &key(KEY_A)).unwrap_err();
            assert!(
                matches!(
                    &err,
                    Error::OnHost {
                        cause: HostError::HostKeyRevoked { line: 2, .. },
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("REVOKED"), "{err}");
        }
        let err = decide(
            &files,
            HostKeyPolicy::AcceptNew,
            "web3",
            "web3",
            22,
            &key(KEY_A),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            Error::OnHost {
                cause: HostError::HostKeyRevoked { .. },
                ..
            }
        ));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "accept-new never records a revoked key"
        );
        assert!(
            revoked(&files, "web7", 22, &key(KEY_A)).is_none(),
            "negated"
        );
        assert!(
            revoked(&files, "web8", 2222, &key(KEY_A)).is_some(),
            "with a port"
        );
        assert!(
            revoked(&files, "db1", 22, &key(KEY_A)).is_none(),
            "other hosts"
        );
        assert!(
            revoked(&files, "web1", 22, &key(KEY_B)).is_none(),
            "other keys"
        );
    }

    #[test]
    fn missing_file_means_unknown() {
        let files = vec![PathBuf::from("/nonexistent/known_hosts")];
        assert_eq!(
            lookup(&files, "web1", 22, &key(KEY_A)).unwrap(),
            Verdict::Unknown
        );
    }

    #[test]
    fn strict_refuses_unknown_and_changed_accept_new_records() {
        let (_dir, path) = file_with(&format!("web1 ssh-ed25519 {KEY_A}\n"));
        let files = vec![path.clone()];
        let err = decide(
            &files,
            HostKeyPolicy::Strict,
            "web9",
            "web9",
            22,
            &key(KEY_A),
        )
        .unwrap_err();
        assert!(err.to_string().contains("is not known"), "{err}");

        let err = decide(
            &files,
            HostKeyPolicy::AcceptNew,
            "web1",
            "web1",
            22,
            &key(KEY_B),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("CHANGED") && text.contains(":1 "), "{text}");
        assert!(text.contains(&fingerprint(&key(KEY_B))), "{text}");

        decide(
            &files,
            HostKeyPolicy::AcceptNew,
            "web9",
            "web9",
            22,
            &key(KEY_B),
        )
        .unwrap();
        assert_eq!(
            lookup(&files, "web9", 22, &key(KEY_B)).unwrap(),
            Verdict::Known
        );
    }

    /// Which names a known_hosts file knows, asked of dockhand and of
    /// OpenSSH's own `ssh-keygen -F`, over the forms users write: lists,
    /// globs, negations, `[host]:port`, tabs, hashed names, markers.
    #[test]
    fn entries_match_as_openssh_matches_them() {
        let dir = tempfile::tempdir().unwrap();
        let hashed = dir.path().join("hashed");
        std::fs::write(&hashed, format!("hashed1 ssh-ed25519 {KEY_A}\n")).unwrap();
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-H", "-f"])
            .arg(&hashed)
            .status()
            .expect("ssh-keygen (scripts/setup-machine installs openssh-client)");
        assert!(status.success());
        let hashed_line = std::fs::read_to_string(&hashed).unwrap();
        assert!(hashed_line.starts_with("|1|"), "{hashed_line}");
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!(
                "# a comment\n\nweb1,web2 ssh-ed25519 {KEY_A}\n*.example.test,!bad.example.test ssh-ed25519 {KEY_A}\n\
                 [db1]:2222\tssh-ed25519\t{KEY_A}\n192.0.2.? ssh-ed25519 {KEY_A}\n{hashed_line}\
                 @cert-authority *.ca.test ssh-ed25519 {KEY_B}\n"
            ),
        )
        .unwrap();
        let names = [
            ("web1", 22),
            ("WEB2", 22),
            ("web3", 22),
            ("a.example.test", 22),
            ("bad.example.test", 22),
            ("example.test", 22),
            ("db1", 2222),
            ("db1", 22),
            ("192.0.2.7", 22),
            ("192.0.2.77", 22),
            ("hashed1", 22),
            ("hashed2", 22),
        ];
        for (host, port) in names {
            let name = lookup_name(host, port);
            let openssh = std::process::Command::new("ssh-keygen")
                .args(["-F", &name, "-f"])
                .arg(&path)
                .output()
                .unwrap();
            let known = lookup(std::slice::from_ref(&path), host, port, &key(KEY_A)).unwrap();
            assert_eq!(
                known == Verdict::Known,
                openssh.status.success() && !openssh.stdout.is_empty(),
                "{name}: dockhand says {known:?}, ssh-keygen -F says {}",
                String::from_utf8_lossy(&openssh.stdout)
            );
        }
        // A key known only through a CA is not taken: dockhand's transport
        // has no host certificates.
        assert_eq!(
            lookup(std::slice::from_ref(&path), "x.ca.test", 22, &key(KEY_B)).unwrap(),
            Verdict::Unknown
        );
    }
}
