//! One control group per lab host. `systemd-nspawn --keep-unit` runs its
//! container in the cgroup it was started in and names the container's
//! tree `payload` beneath it; started from the same cgroup, as every lab
//! host is, all hosts shared one tree, and each host's systemd took the
//! others' `system.slice/nftables.service` or `docker.socket` for its own:
//! one host pruning its unit's cgroup made the next program another host
//! started in that unit fail with 219/CGROUP. Each nspawn now moves itself,
//! between fork and exec, into a cgroup of its own named after the host's
//! network namespace (unique across labs), recorded beside the host so
//! `lab down` removes it.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where the cgroup2 hierarchy is mounted, from `/proc/self/mountinfo`'s
/// text: `/sys/fs/cgroup` on a unified machine, `/sys/fs/cgroup/unified`
/// on a hybrid one; `None` when there is none (nspawn then decides alone).
pub fn unified_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // Fields before " - " are the mount's; the first after it is the
        // file system type. The mount point is the fifth field.
        let (mount, source) = line.split_once(" - ")?;
        let fs_type = source.split_whitespace().next()?;
        let point = mount.split_whitespace().nth(4)?;
        (fs_type == "cgroup2").then(|| PathBuf::from(unescape(point)))
    })
}

/// The calling process's cgroup2 path from `/proc/self/cgroup`'s text
/// (the `0::` line), relative to the hierarchy's root.
pub fn own_cgroup(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| path.trim_start_matches('/').to_string())
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| digits.iter().all(|d| (b'0'..=b'7').contains(d)))
            .and_then(|digits| {
                let value = digits.iter().fold(0u16, |n, d| n * 8 + u16::from(d - b'0'));
                u8::try_from(value).ok()
            });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The lab command's own cgroup directory, beneath which each host's
/// cgroup is made. `None` when the machine has no cgroup2 mount.
pub fn hosts_cgroup_parent() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = unified_mount(&mountinfo)?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|text| own_cgroup(&text))
        .unwrap_or_default();
    Some(mount.join(own))
}

/// The cgroup a host's nspawn is to run in: `name` beneath the lab
/// command's own cgroup. `None` when the machine has no cgroup2 mount.
pub fn host_cgroup(name: &str) -> Option<PathBuf> {
    hosts_cgroup_parent().map(|parent| parent.join(name))
}

/// Creates the host's cgroup (a leftover of a killed lab is reused) and
/// opens its `cgroup.procs`, into which the nspawn child writes `0`,
/// which moves the writer itself.
pub fn prepare(cgroup: &Path, host: &str) -> Result<File> {
    let step = format!("{host}: cgroup");
    match std::fs::create_dir(cgroup) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::lab(&step, format!("{}: {e}", cgroup.display()))),
    }
    let procs = cgroup.join("cgroup.procs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&procs)
        .map_err(|e| Error::lab(&step, format!("{}: {e}", procs.display())))
}

/// Removes a stopped host's cgroup and whatever its systemd left beneath
/// it, deepest first. A cgroup directory goes with `rmdir` once it holds
/// no process and no child; one that still does is left (and reused by a
/// host of the same name), which is why errors are ignored.
pub fn remove(cgroup: &Path) {
    if let Ok(entries) = std::fs::read_dir(cgroup) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(cgroup);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_of_a_hybrid_and_of_a_unified_machine() {
        let hybrid = "\
35 24 0:30 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw
37 35 0:32 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,name=systemd
";
        assert_eq!(
            unified_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified =
            "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            unified_mount(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let optional_fields = "29 23 0:26 / /cg\\040two rw master:1 shared:4 - cgroup2 none rw\n";
        assert_eq!(
            unified_mount(optional_fields),
            Some(PathBuf::from("/cg two"))
        );
    }

    #[test]
    fn a_machine_without_cgroup2_or_with_garbage_has_no_mount() {
        for text in [
            "",
            "36 35 0:31 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
            "garbage - \n - cgroup2\n1 2 3 - cgroup2\n",
            "1 2 3 4 \\\n",
        ] {
            assert_eq!(unified_mount(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_own_cgroup_is_the_unified_line_relative_to_the_root() {
        let table = [
            ("9:name=systemd:/\n0::/\n", Some("")),
            (
                "0::/user.slice/user-0.slice/session-3.scope\n",
                Some("user.slice/user-0.slice/session-3.scope"),
            ),
            ("4:memory:/x\n", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(own_cgroup(text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn unescape_reads_octal_escapes_and_keeps_a_stray_backslash() {
        assert_eq!(unescape("/a\\040b\\011c"), "/a b\tc");
        assert_eq!(unescape("/a\\9x\\"), "/a\\9x\\");
        assert_eq!(unescape("\\+12\\777"), "\\+12\\777");
    }
}
