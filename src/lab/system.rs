//! Thin wrappers over the machine-side programs and kernel interfaces the
//! lab drives: running a command and requiring success, the root and
//! program preflight, `/proc` scans for the lab's own processes and mounts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Programs the lab runs, and the Debian package that ships each.
const REQUIRED_PROGRAMS: &[(&str, &str)] = &[
    ("debootstrap", "debootstrap"),
    ("systemd-nspawn", "systemd-container"),
    ("ip", "iproute2"),
    ("ssh-keygen", "openssh-client"),
    ("mount", "mount"),
    ("umount", "mount"),
];

/// Fails unless we are root and every required program is on PATH; the
/// error names exactly what is missing and the apt-get line that fixes it.
pub fn preflight(command: &str) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Err(Error::LabNeedsRoot {
            command: command.to_string(),
        });
    }
    let missing: Vec<(&str, &str)> = REQUIRED_PROGRAMS
        .iter()
        .copied()
        .filter(|(program, _)| find_program(program).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|(_, package)| *package).collect();
    packages.dedup();
    Err(Error::LabMissingPrograms {
        missing: missing
            .iter()
            .map(|(program, _)| *program)
            .collect::<Vec<_>>()
            .join(", "),
        packages: packages.join(" "),
    })
}

/// Looks a program up on PATH, the way the commands the lab runs will.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs a program to completion and requires success; `step` names it in
/// the error together with the program's own stderr.
pub fn run(step: &str, program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::lab(step, format!("cannot run {program}: {e}")))?;
    if !output.status.success() {
        return Err(Error::lab(
            step,
            format!(
                "`{program} {}` failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Like [`run`], for a long job whose work must end with dockhand's: the
/// child gets a parent-death signal, and inherits `held` (a lock's file
/// descriptor, close-on-exec cleared) so the lock stays taken while the
/// child or anything it started still runs.
pub fn run_holding(
    step: &str,
    program: &str,
    args: &[&str],
    held: std::os::fd::BorrowedFd<'_>,
) -> Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = held.as_raw_fd();
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe system calls
    // (prctl, fcntl) run, on a descriptor that stays open in the child.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            Ok(())
        });
    }
    let output = command
        .output()
        .map_err(|e| Error::lab(step, format!("cannot run {program}: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    // debootstrap writes its story to stderr; the last lines say why.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.trim().lines().rev().take(8).collect();
    Err(Error::lab(
        step,
        format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ),
    ))
}

/// Runs a program whose failure is expected and harmless (removing
/// something that may already be gone).
pub fn run_quietly(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Mount points at or below `dir`, deepest first so they can be unmounted
/// in order.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .map(unescape_mount_path)
        .filter(|mount_point| mount_point.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(field: &str) -> PathBuf {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let (b'\\', Some(digits)) = (bytes[i], octal) {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(value as u8);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Lists the pids of the processes that belong to one lab host: the
/// `systemd-nspawn` that boots exactly `root`, and the container's init,
/// recognised by the `container_uuid` that nspawn gives it (the lab picks a
/// unique uuid per host). Nothing is matched by a broad name.
pub fn host_processes(root: &Path, uuid: &str) -> HostProcesses {
    let mut found = HostProcesses::default();
    let uuid_marker = format!("container_uuid={uuid}");
    let root_arg = root.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let proc_dir = entry.path();
        if let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) {
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_nspawn = args
                .first()
                .is_some_and(|arg0| arg0.ends_with(b"systemd-nspawn"));
            let boots_root = args.windows(2).any(|w| w[0] == b"-D" && w[1] == root_arg);
            if is_nspawn && boots_root {
                found.nspawn.push(pid);
                continue;
            }
        }
        if let Ok(environ) = std::fs::read(proc_dir.join("environ"))
            && environ
                .split(|b| *b == 0)
                .any(|var| var == uuid_marker.as_bytes())
            && is_pid_namespace_init(&proc_dir)
        {
            found.container_init.push(pid);
        }
    }
    found
}

/// True for the first process of a pid namespace (its NSpid ends in 1).
fn is_pid_namespace_init(proc_dir: &Path) -> bool {
    std::fs::read_to_string(proc_dir.join("status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("NSpid:"))
                .map(|l| l.split_whitespace().last() == Some("1"))
        })
        .unwrap_or(false)
}

/// The processes of one lab host.
#[derive(Debug, Default)]
pub struct HostProcesses {
    pub nspawn: Vec<i32>,
    pub container_init: Vec<i32>,
}

/// True while the pid exists and has not exited (a zombie has exited; it
/// only waits for its parent to collect its status).
pub fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The state follows the command name, which is in parentheses
            // and may itself contain spaces or parentheses.
            let after_name = &stat[stat.rfind(')')? + 1..];
            after_name
                .split_whitespace()
                .next()
                .map(|state| state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// True while the pid has an entry in the process table (zombies too).
pub fn exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Sends a signal to one pid; a pid that is already gone is fine.
pub fn signal(pid: i32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        let cases = [
            ("/plain/path", "/plain/path"),
            ("/with\\040space", "/with space"),
            ("/tab\\011and\\134back", "/tab\tand\\back"),
            ("/trailing\\", "/trailing\\"),
        ];
        for (field, expected) in cases {
            assert_eq!(
                unescape_mount_path(field),
                PathBuf::from(expected),
                "{field}"
            );
        }
    }

    #[test]
    fn programs_are_found_on_path() {
        assert!(find_program("sh").is_some());
        assert!(find_program("surely-not-a-program-dockhand").is_none());
    }
}
