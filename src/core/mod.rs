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
    format!("'{}'", word.replace('\'', "'\\''"))
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
