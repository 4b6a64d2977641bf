//! The sshd role: its hardening defaults, the settings that depend on the
//! host's OpenSSH (host keys, key exchange), and the drop-in that sets
//! them, with the effective values `sshd -T` must show afterwards.

use indexmap::IndexMap;

use super::{Check, Content, FileResource, Resources, parent, root_dir};
use crate::core::file_name;
use crate::core::input::playbook::{Handler, SshdRole, SshdValue};
use crate::core::roles::docker::override_conf::MANAGED;
use crate::core::state::Facts;

/// The sshd role's hardening defaults.
pub fn default_sshd_settings() -> IndexMap<String, SshdValue> {
    let list = |items: &[&str]| SshdValue::List(items.iter().map(|s| s.to_string()).collect());
    [
        ("PasswordAuthentication", SshdValue::Bool(false)),
        ("KbdInteractiveAuthentication", SshdValue::Bool(false)),
        (
            "PermitRootLogin",
            SshdValue::Text("prohibit-password".into()),
        ),
        ("PermitEmptyPasswords", SshdValue::Bool(false)),
        ("X11Forwarding", SshdValue::Bool(false)),
        ("MaxAuthTries", SshdValue::Number(3)),
        ("LoginGraceTime", SshdValue::Number(30)),
        (
            "Ciphers",
            list(&[
                "chacha20-poly1305@openssh.com",
                "aes256-gcm@openssh.com",
                "aes128-gcm@openssh.com",
                "aes256-ctr",
                "aes192-ctr",
                "aes128-ctr",
            ]),
        ),
        (
            "MACs",
            list(&[
                "hmac-sha2-512-etm@openssh.com",
                "hmac-sha2-256-etm@openssh.com",
                "umac-128-etm@openssh.com",
            ]),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The settings of the sshd role that depend on the host: the host keys
/// offered (Ed25519; RSA-SHA2 only where the host keeps an RSA key, never
/// ECDSA on NIST curves) and key exchange by what the host's OpenSSH has
/// (the post-quantum ML-KEM hybrid first, then sntrup761, then curve25519
/// for older clients): what its `ssh -Q kex` lists where a client is
/// installed (Debian's builds carry names their upstream version did not
/// have yet), else what its version (`sshd -V`) brought.
pub fn host_sshd_settings(facts: &Facts) -> IndexMap<String, SshdValue> {
    let list = |items: Vec<&str>| SshdValue::List(items.into_iter().map(String::from).collect());
    let has_key = |name: &str| facts.ssh_host_keys.iter().any(|k| k.ends_with(name));
    let mut keys = vec!["/etc/ssh/ssh_host_ed25519_key"];
    let mut algorithms = vec!["ssh-ed25519"];
    if has_key("/ssh_host_rsa_key") {
        keys.push("/etc/ssh/ssh_host_rsa_key");
        algorithms.extend(["rsa-sha2-512", "rsa-sha2-256"]);
    }
    let kex: Vec<&str> = KEX_BY_VERSION
        .iter()
        .filter(|(name, since)| match facts.openssh_version {
            _ if !facts.ssh_kex.is_empty() => facts.ssh_kex.iter().any(|k| k == name),
            Some(version) => version >= *since,
            // Unknown hosts (no facts yet) get what every OpenSSH since 9.0 has.
            None => *since <= (9, 0),
        })
        .map(|(name, _)| *name)
        .collect();
    [
        ("HostKey", list(keys)),
        ("HostKeyAlgorithms", list(algorithms)),
        ("KexAlgorithms", list(kex)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The key exchanges the role offers, best first, with the upstream
/// OpenSSH release that brought each: ML-KEM and sntrup761's plain name
/// came in 9.9 (Debian 12's 9.2 has the plain name too: its `ssh -Q kex`
/// says so), sntrup761 itself in 8.5 (8.4 has only the older
/// sntrup4591761).
const KEX_BY_VERSION: [(&str, (u32, u32)); 5] = [
    ("mlkem768x25519-sha256", (9, 9)),
    ("sntrup761x25519-sha512", (9, 9)),
    ("sntrup761x25519-sha512@openssh.com", (8, 5)),
    ("curve25519-sha256", (7, 4)),
    ("curve25519-sha256@libssh.org", (6, 5)),
];

/// sshd's own check of its whole configuration, once the drop-in is in
/// place.
pub fn check() -> Check {
    Check::program(&["sshd", "-t", "-f", "/etc/ssh/sshd_config"])
}

/// The role's paths: the drop-in and its directory.
pub(super) fn paths(
    sshd: &SshdRole,
    directories: &mut Vec<String>,
    files: &mut Vec<(String, bool)>,
) {
    directories.push(parent(&sshd.drop_in).to_string());
    files.push((sshd.drop_in.clone(), false));
}

/// The settings for this host: the defaults, the host's own, then the
/// playbook's (a null drops a setting).
fn settings(sshd: &SshdRole, facts: &Facts) -> IndexMap<String, SshdValue> {
    let mut settings = default_sshd_settings();
    settings.extend(host_sshd_settings(facts));
    for (key, value) in &sshd.settings {
        match value {
            None => {
                settings.shift_remove(key);
            }
            Some(value) => {
                settings.insert(key.clone(), value.clone());
            }
        }
    }
    settings
}

/// The drop-in's text: sshd keeps the first value it reads.
fn drop_in(settings: &IndexMap<String, SshdValue>) -> String {
    let mut text = String::from(MANAGED);
    text.push_str("# sshd keeps the first value it reads: this file sorts first.\n");
    for (key, value) in settings {
        match value {
            // A keyword sshd takes once per value.
            SshdValue::List(items) if key.eq_ignore_ascii_case("HostKey") => {
                for item in items {
                    text.push_str(&format!("{key} {item}\n"));
                }
            }
            value => text.push_str(&format!("{key} {}\n", value.render())),
        }
    }
    text
}

/// The role for one host: the drop-in, checked with `sshd -t` once in
/// place, the values `sshd -T` must show, and a warning for each drop-in
/// that sorts before ours (its values win).
pub(super) fn expand(sshd: &SshdRole, facts: &Facts, out: &mut Resources) {
    let settings = settings(sshd, facts);
    out.sshd_revert_after = sshd.revert_after;
    out.sshd_expected = Some((
        sshd.drop_in.clone(),
        settings
            .iter()
            // `sshd -T` lists each host key on a line of its own; the
            // algorithms offered are checked through HostKeyAlgorithms.
            .filter(|(k, _)| !k.eq_ignore_ascii_case("HostKey"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.render()))
            .collect(),
    ));
    out.directories.push(root_dir(parent(&sshd.drop_in)));
    out.files.push(FileResource {
        validate: Some(check()),
        ..FileResource::root_owned(
            sshd.drop_in.clone(),
            Content::Bytes(drop_in(&settings).into_bytes()),
            0o644,
            vec![Handler::ReloadSsh],
        )
    });
    let ours = file_name(&sshd.drop_in);
    for other in &facts.sshd_drop_ins {
        if file_name(other) < ours {
            out.warnings.push(format!(
                "{other} sorts before {}: sshd reads it first, and its values win",
                sshd.drop_in
            ));
        }
    }
}
