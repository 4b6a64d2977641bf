//! The one error type of dockhand.
//!
//! Every failure a user can meet is a variant here, so the wording of each
//! message and the exit code it maps to live in one place (`main` only prints
//! `Display` and exits with [`Error::exit_code`]). Messages name the host and
//! the step, or the file, and say what to do where there is something to do.
//! No variant ever carries secret material: host keys appear only as
//! fingerprints, and private keys not at all.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something went wrong with one host: printed as `HOST: CAUSE`, the
    /// host named once, here, and nowhere in the cause.
    #[error("{host}: {cause}")]
    OnHost { host: String, cause: HostError },

    /// A known_hosts file exists but could not be read or parsed.
    #[error("{file}: cannot use known_hosts file: {reason}")]
    KnownHosts { file: PathBuf, reason: String },

    /// The lab needs root on the machine.
    #[error(
        "`dockhand lab {command}` must run as root (it mounts overlays, creates network namespaces and boots containers); run it with sudo"
    )]
    LabNeedsRoot { command: String },

    /// Programs the lab needs are not installed.
    #[error(
        "the lab needs programs that are not installed: {missing}; install them with: apt-get install {packages}"
    )]
    LabMissingPrograms { missing: String, packages: String },

    /// A step of the lab failed.
    #[error("lab: {step}: {reason}")]
    Lab { step: String, reason: String },

    /// The lab has not been brought up yet.
    #[error("lab `{name}` is not up: run `dockhand lab up` first")]
    LabNotUp { name: String },

    /// A file the user wrote is wrong; the position is `file:line:column`
    /// (line 0 when the problem is not at one place).
    #[error("{}", input_message(file, *line, *column, message))]
    Input {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// Bad command-line input that clap itself cannot express.
    #[error("{0}")]
    Usage(String),

    /// A local file could not be read or written.
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// What went wrong with a host, without the host's name: an error names
/// it once, when printed ([`Error::OnHost`]), so a cause can be put in
/// another host message as it is.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The TCP connection could not be made (refused, no route, DNS...).
    #[error("unreachable: cannot connect to {addr}: {reason}")]
    Unreachable { addr: String, reason: String },

    /// Connecting or the SSH handshake did not finish in time.
    #[error("unreachable: no SSH handshake with {addr} within {seconds}s")]
    ConnectTimeout { addr: String, seconds: u64 },

    /// The host presented a key that differs from the one on record: the
    /// OpenSSH "REMOTE HOST IDENTIFICATION HAS CHANGED" case.
    #[error(
        "host key has CHANGED: the server presents {presented}, but {file}:{line} records \
         another {algorithm} key for it. This may be a man-in-the-middle attack, or the host was \
         reinstalled; if you know why, remove the old entry (ssh-keygen -R) and connect again"
    )]
    HostKeyChanged {
        algorithm: String,
        presented: String,
        file: PathBuf,
        line: usize,
    },

    /// The host presented a key that a known_hosts file marks `@revoked`.
    #[error(
        "host key {presented} is REVOKED: {file}:{line} marks it @revoked, so it is never accepted"
    )]
    HostKeyRevoked {
        presented: String,
        file: PathBuf,
        line: usize,
    },

    /// The host's key is in no known_hosts file and the policy is strict.
    #[error(
        "host key {presented} is not known (looked in {files}); add it to known_hosts, \
         or set `host_key_checking: accept-new` to record it on first use"
    )]
    HostKeyUnknown { presented: String, files: String },

    /// Every authentication method was refused.
    #[error("authentication as {user} failed (tried: {tried})")]
    AuthFailed { user: String, tried: String },

    /// The SSH session failed after it was established.
    #[error("SSH {step} failed: {reason}")]
    Ssh { step: String, reason: String },

    /// A command on a host ended in failure where success was required.
    #[error("{step} failed ({status}): {stderr}")]
    Remote {
        step: String,
        status: String,
        stderr: String,
    },

    /// A step of the per-host pipeline failed for a reason on the host.
    #[error("{step}: {reason}")]
    Step { step: String, reason: String },

    /// A remote step did not end within its deadline.
    #[error("{step}: no answer within {seconds}s (the step's deadline; --timeout sets it)")]
    Deadline { step: String, seconds: f64 },

    /// A host left alone because the rollout stopped before reaching it.
    #[error("skipped: {reason}")]
    Skipped { reason: String },

    /// A host abandoned in the middle by a second interrupt.
    #[error(
        "aborted: abandoned in the middle by a second interrupt; it may be mid-change, run apply again"
    )]
    Aborted {},
}

fn input_message(file: &std::path::Path, line: usize, column: usize, message: &str) -> String {
    if line == 0 {
        format!("{}: {message}", file.display())
    } else {
        format!("{}:{line}:{column}: {message}", file.display())
    }
}

impl Error {
    /// The process exit code for this error. The contract (README): `1` for a failed or
    /// unreachable host and for bad input; `2` is reserved for
    /// `plan --detailed-exitcode` and is never an error.
    pub fn exit_code(&self) -> i32 {
        1
    }

    /// Wraps an I/O error on a local path.
    pub fn file(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.into(),
            reason: err.to_string(),
        }
    }

    /// A lab step failure.
    pub fn lab(step: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Lab {
            step: step.into(),
            reason: reason.to_string(),
        }
    }

    /// The message without the host's name, for a line or an error that
    /// names the host already.
    pub fn cause(&self) -> String {
        match self {
            Error::OnHost { cause, .. } => cause.to_string(),
            other => other.to_string(),
        }
    }

    /// An error of `host`.
    pub fn on_host(host: impl Into<String>, cause: HostError) -> Error {
        Error::OnHost {
            host: host.into(),
            cause,
        }
    }

    /// True when the error means "the host could not be reached", which the
    /// fleet report counts apart from hosts that failed.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Error::OnHost {
                cause: HostError::Unreachable { .. } | HostError::ConnectTimeout { .. },
                ..
            }
        )
    }
}
