//! The pure core: what the user asked for and what it means for each host.
//! Nothing here does I/O, so all of it is tested without hosts.
//!
//! - [`input`]: what users write (inventory, playbook, ssh_config, limits,
//!   rollout), parsed and checked, errors at file:line:column.
//! - [`roles`]: what each role makes of a playbook for one host (the
//!   generic resources), with its own constants and knowledge: `docker`
//!   (daemon.json, the unit and its drop-in, dockerd's flags, the
//!   workload), `sshd`, and the playbook's own files.
//! - [`state`]: what a host has; [`plan`]: the difference; [`audit`]: the
//!   rules a host is judged by; [`pki`]: certificate decisions; [`event`]
//!   and [`outcome`]: what the engine reports.

pub mod audit;
pub mod event;
#[cfg(test)]
pub mod fixtures;
pub mod input;
pub mod outcome;
pub mod pki;
pub mod plan;
pub mod roles;
pub mod state;

use std::path::Path;

use crate::error::Error;

/// The last component of a host path (`/etc/docker/daemon.json` →
/// `daemon.json`), for messages.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `text` with the password of every URL in it masked (`scheme://user:***@
/// host`; a lone token, `scheme://***@host`): what plan and the reports
/// show of a registry mirror, a proxy or a listener, never the secret.
pub fn mask_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends where a path, a quote, a space or a list does.
        let end = tail
            .find(|c: char| "/?#\"' \t\n,;]}>)".contains(c))
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(sign) => {
                match tail[..sign].split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str("***"),
                }
                out.push_str(&tail[sign..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The directory of a host path (`/` for a file at the root).
pub fn parent_dir(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((dir, _)) => dir,
    }
}

/// Single-quotes a word for the shell: whatever it holds, it stays one
/// word and nothing in it is expanded. The one quoting of every remote
/// script (`engine::remote`) and of the line `pki client` prints to
/// `eval`.
pub fn shell_quote(word: &str) -> String {
    // One pass into a string of the final size: a fleet's scripts are
    // quoted per host, tens of kilobytes each.
    let quotes = word.bytes().filter(|&b| b == b'\'').count();
    let mut quoted = String::with_capacity(word.len() + 3 * quotes + 2);
    quoted.push('\'');
    for (i, part) in word.split('\'').enumerate() {
        if i > 0 {
            quoted.push_str("'\\''");
        }
        quoted.push_str(part);
    }
    quoted.push('\'');
    quoted
}

/// Bytes as lower-case hex digits, two a byte (digests, random names).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// A YAML error as `file:line:column: message`.
pub(crate) fn yaml_error(file: &Path, err: &serde_yaml::Error) -> Error {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    // serde_yaml appends " at line L column C"; the position is given once,
    // in front, as compilers do.
    let message = err.to_string();
    let message = match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message,
    };
    Error::Input {
        file: file.to_path_buf(),
        line,
        column,
        message,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(super::hex(&[]), "");
        assert_eq!(super::hex(&[0x00, 0x0f, 0xf0, 0xff, 0xa5]), "000ff0ffa5");
        assert_eq!(
            super::plan::sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
