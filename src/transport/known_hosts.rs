//! Host-key checking against OpenSSH `known_hosts` files.
//!
//! The decision follows OpenSSH: a presented key that matches a recorded one
//! is accepted; a presented key whose *algorithm* is recorded for the host
//! with a different key is a changed key and always refused (whatever the
//! policy); a host with no record is refused under the strict policy and
//! recorded under `accept-new`. Matching of plain and hashed (`|1|`) host
//! entries is russh's; this module adds the policy and the precise error.

use std::path::{Path, PathBuf};

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

/// Looks `key` up for `host`:`port` in every file, in order.
pub fn lookup(files: &[PathBuf], host: &str, port: u16, key: &PublicKey) -> Result<Verdict> {
    let mut changed = None;
    for file in files {
        let records =
            russh::keys::known_hosts::known_host_keys_path(host, port, file).map_err(|e| {
                Error::KnownHosts {
                    file: file.clone(),
                    reason: e.to_string(),
                }
            })?;
        for (record_index, recorded) in records {
            if recorded == *key {
                return Ok(Verdict::Known);
            }
            if recorded.algorithm() == key.algorithm() && changed.is_none() {
                changed = Some(Verdict::Changed {
                    file: file.clone(),
                    line: real_line_number(file, record_index),
                });
            }
        }
    }
    Ok(changed.unwrap_or(Verdict::Unknown))
}

/// russh numbers entries without counting comment lines; users need the
/// line their editor shows, so count again including comments.
fn real_line_number(file: &Path, entry_number: usize) -> usize {
    let Ok(text) = std::fs::read_to_string(file) else {
        return entry_number;
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.starts_with('#'))
        .nth(entry_number.saturating_sub(1))
        .map(|(index, _)| index + 1)
        .unwrap_or(entry_number)
}

/// The `@revoked` line (file, line number) that marks `key` as revoked for
/// `host`:`port`, if any. OpenSSH never accepts such a key, whatever else
/// the files say; nor does dockhand, and `accept-new` never records it.
/// Host patterns are names, addresses and globs (`*`, `?`, `!negation`,
/// `[host]:port`); hashed names on revoked lines are not matched.
pub fn revoked(
    files: &[PathBuf],
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Option<(PathBuf, usize)> {
    let wanted = key.to_openssh().ok()?;
    let wanted_b64 = wanted.split_whitespace().nth(1)?.to_string();
    let name = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (index, line) in text.lines().enumerate() {
            let mut fields = line.split_whitespace();
            if fields.next() != Some("@revoked") {
                continue;
            }
            let (Some(patterns), Some(_kind), Some(b64)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if b64 == wanted_b64 && host_matches(patterns, &name) {
                return Some((file.clone(), index + 1));
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
}
