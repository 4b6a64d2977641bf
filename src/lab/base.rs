//! The shared, read-only root file system every lab host boots from: one
//! `debootstrap` per Debian release (11 bullseye to 14 forky), made once and
//! cached, then prepared so each host can be told apart (no machine-id, no
//! SSH host keys of its own) and carries the unprivileged sudo user the
//! tests and users log in as.
//!
//! A base is built once, whoever asks: the build holds an exclusive lock
//! beside the cache entry, so a second `lab up` (of any lab, in any
//! process) waits for the first and then uses its base. A build that died
//! leaves only its `.building` directory, which the next builder unmounts
//! and removes before it starts again.

use std::path::{Path, PathBuf};

use super::release::Release;
use super::system;
use crate::error::{Error, Result};

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.suite())
    }
}

/// What every host has: systemd as PID 1, OpenSSH, dockerd from Debian,
/// sudo, and a full python3 (not python3-minimal: Ansible's modules need
/// its standard library) so peers such as Ansible and pyinfra run on the
/// same hosts.
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "docker.io",
    "iproute2",
    "ca-certificates",
    "sudo",
    "python3",
    // `nft`, for the fence (playbooks with `firewall:`); nftables.service
    // stays disabled, as Debian installs it.
    "nftables",
];

/// What a release's hosts have: [`PACKAGES`], and from Debian 13 on the
/// docker CLI, which docker.io only recommends there (apt installs what
/// is recommended; debootstrap does not): `docker -H ssh://` runs it on
/// the host.
fn packages(release: Release) -> Vec<&'static str> {
    let mut packages = PACKAGES.to_vec();
    if matches!(release, Release::Trixie | Release::Forky) {
        packages.push("docker-cli");
    }
    packages
}

/// The unprivileged user with passwordless sudo, present on every host.
pub const SUDO_USER: &str = "dockhand";

/// Bumped whenever `prepare` changes, so a stale cache is rebuilt.
const PREPARATION_VERSION: u32 = 1;

/// The cached base of a release for the current package list and
/// preparation: each release has its own.
pub fn base_dir(cache: &Path, release: Release) -> PathBuf {
    cache.join(format!(
        "lab-base-{}-v{PREPARATION_VERSION}-{:08x}",
        release.suite(),
        fnv1a(packages(release).join(",").as_bytes())
    ))
}

fn complete_marker(base: &Path) -> PathBuf {
    base.join(".dockhand-base-complete")
}

/// What [`ensure`] tells its caller while it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseProgress {
    /// Another process builds this base: waiting for it.
    Waiting,
    /// No usable base: building it (now, with the lock held).
    Building,
}

/// Returns the cached base, building it first if needed. The build holds
/// the base's lock, so concurrent callers build it once; it goes to a
/// temporary directory renamed only once complete, so an interrupted build
/// is never mistaken for a good one, and the next builder clears it away.
pub fn ensure(cache: &Path, release: Release, progress: &dyn Fn(BaseProgress)) -> Result<PathBuf> {
    let base = base_dir(cache, release);
    if complete_marker(&base).exists() {
        return Ok(base);
    }
    std::fs::create_dir_all(cache).map_err(|e| Error::file(cache, e))?;
    let lock_path = sibling(&base, "lock");
    let lock = match super::state::try_lock(&lock_path)? {
        Some(lock) => lock,
        None => {
            progress(BaseProgress::Waiting);
            super::state::lock(&lock_path)?
        }
    };
    // The build we waited for may have finished it.
    if complete_marker(&base).exists() {
        return Ok(base);
    }
    progress(BaseProgress::Building);
    let building = sibling(&base, "building");
    remove_tree(&building)?;
    remove_tree(&base)?;
    let built = debootstrap(release, &building, &lock).and_then(|()| prepare(&building));
    if let Err(e) = built {
        // Leave nothing half-built behind, mounted or not.
        let _ = remove_tree(&building);
        return Err(e);
    }
    std::fs::rename(&building, &base).map_err(|e| Error::file(&base, e))?;
    std::fs::write(complete_marker(&base), b"").map_err(|e| Error::file(&base, e))?;
    Ok(base)
}

/// `DIR.SUFFIX` beside a base directory.
fn sibling(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    base.with_file_name(name)
}

/// Removes a directory tree that a dead build may have left with file
/// systems mounted inside (debootstrap mounts /proc and /sys in its target:
/// deleting through them fails with "Operation not permitted").
fn remove_tree(dir: &Path) -> Result<()> {
    for mount_point in system::mounts_under(dir) {
        let target = mount_point.to_string_lossy().into_owned();
        system::run_quietly("umount", &["--lazy", &target]);
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::file(dir, e)),
        _ => Ok(()),
    }
}

/// Runs debootstrap into `target`. It dies with dockhand (a parent-death
/// signal) and holds the base's lock too, so no other builder can start
/// while any part of it still writes there.
fn debootstrap(release: Release, target: &Path, lock: &super::state::LockGuard) -> Result<()> {
    let mirror = apt_mirror(release)?;
    let include = format!("--include={}", packages(release).join(","));
    let target = target.to_string_lossy().into_owned();
    let mut args = vec![
        "--variant=minbase".to_string(),
        include,
        release.suite().to_string(),
        target,
        mirror,
    ];
    if let Some(script) = fallback_script(release, Path::new(DEBOOTSTRAP_SCRIPTS)) {
        args.push(script.to_string_lossy().into_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    system::run_holding(
        &format!("build the {release} base with debootstrap"),
        "debootstrap",
        &args,
        lock.fd(),
    )
}

/// Where Debian's debootstrap keeps one script per suite it knows.
const DEBOOTSTRAP_SCRIPTS: &str = "/usr/share/debootstrap/scripts";

/// The script to pass when debootstrap has none named after the suite:
/// that of the suite it derives from (forky is built with `sid`'s).
fn fallback_script(release: Release, scripts: &Path) -> Option<PathBuf> {
    if scripts.join(release.suite()).exists() {
        return None;
    }
    release.derives_from().map(|parent| scripts.join(parent))
}

/// Makes the fresh root file system a template rather than a machine.
fn prepare(root: &Path) -> Result<()> {
    let step = "prepare the base";
    // An empty machine-id makes systemd take the uuid nspawn passes, which
    // is how the lab recognises each host's processes.
    std::fs::write(root.join("etc/machine-id"), b"").map_err(|e| Error::file(root, e))?;
    let _ = std::fs::remove_file(root.join("var/lib/dbus/machine-id"));
    // Each host gets its own host keys at creation; none may be shared.
    for entry in std::fs::read_dir(root.join("etc/ssh")).map_err(|e| Error::file(root, e))? {
        let entry = entry.map_err(|e| Error::file(root, e))?;
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            std::fs::remove_file(entry.path()).map_err(|e| Error::file(entry.path(), e))?;
        }
    }
    let root_arg = root.to_string_lossy().into_owned();
    system::run(
        step,
        "chroot",
        &[
            &root_arg,
            "useradd",
            "--create-home",
            "--shell",
            "/bin/bash",
            "--groups",
            "sudo",
            SUDO_USER,
        ],
    )?;
    let sudoers = root.join("etc/sudoers.d/90-dockhand-lab");
    std::fs::write(&sudoers, format!("{SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n"))
        .map_err(|e| Error::file(&sudoers, e))?;
    set_mode(&sudoers, 0o440)?;
    // Boot faster and quieter: nothing in the lab needs these.
    for unit in [
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "e2scrub_all.timer",
        "fstrim.timer",
    ] {
        let _ = std::fs::remove_file(
            root.join("etc/systemd/system/timers.target.wants")
                .join(unit),
        );
    }
    Ok(())
}

pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::file(path, e))
}

/// The Debian mirror this machine's apt already uses, read at run time so
/// no mirror is ever written into the repository. A Debian mirror carries
/// every release, so one that serves the machine's own release serves
/// trixie as well; one that names the wanted suite is preferred.
fn apt_mirror(release: Release) -> Result<String> {
    let mut candidates = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            if file.extension().is_some_and(|e| e == "sources")
                && let Ok(text) = std::fs::read_to_string(&file)
            {
                candidates.extend(mirrors_in_deb822(&text));
            } else if file.extension().is_some_and(|e| e == "list")
                && let Ok(text) = std::fs::read_to_string(&file)
            {
                candidates.extend(mirrors_in_one_line_format(&text));
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list") {
        candidates.extend(mirrors_in_one_line_format(&text));
    }
    pick_mirror(candidates, release).ok_or_else(|| {
        Error::lab(
            "find a Debian mirror",
            "no apt source of a Debian release suite in /etc/apt/sources.list or /etc/apt/sources.list.d/",
        )
    })
}

/// A mirror (URI, suites it was listed with) that names the wanted suite,
/// else the first that serves any plain release suite.
fn pick_mirror(candidates: Vec<(String, Vec<String>)>, release: Release) -> Option<String> {
    candidates
        .iter()
        .find(|(_, suites)| suites.iter().any(|s| s == release.suite()))
        .or_else(|| candidates.first())
        .map(|(uri, _)| uri.clone())
}

/// A plain release suite (`bookworm`), not `-security`, `-updates` or
/// `-backports`, which live in other archives or hold only a few packages.
fn is_release_suite(suite: &str) -> bool {
    !suite.is_empty() && !suite.contains('-') && !suite.contains('/')
}

/// Mirrors of stanzas that serve a plain release suite, with those suites.
fn mirrors_in_deb822(text: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l[name.len()..].trim().to_string())
        };
        let enabled = field("Enabled:").is_none_or(|v| v != "no");
        let suites: Vec<String> = field("Suites:")
            .unwrap_or_default()
            .split_whitespace()
            .filter(|s| is_release_suite(s))
            .map(str::to_string)
            .collect();
        let is_deb = field("Types:").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        if enabled
            && !suites.is_empty()
            && is_deb
            && let Some(uris) = field("URIs:")
        {
            found.extend(
                uris.split_whitespace()
                    .map(|uri| (uri.to_string(), suites.clone())),
            );
        }
    }
    found
}

fn mirrors_in_one_line_format(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("deb "))
        .filter_map(|l| {
            // deb [options] URI SUITE COMPONENTS...
            let rest = l.trim_start_matches("deb ").trim();
            let rest = match rest.strip_prefix('[') {
                Some(r) => r.split_once(']')?.1.trim(),
                None => rest,
            };
            let mut words = rest.split_whitespace();
            let uri = words.next()?;
            let suite = words.next()?;
            is_release_suite(suite).then(|| (uri.to_string(), vec![suite.to_string()]))
        })
        .collect()
}

/// A small stable hash for cache directory names (not for security).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c9dc5u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x01000193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_sources_give_the_main_suite_mirror() {
        let text = "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
                    Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n\n\
                    Types: deb-src\nURIs: http://src.invalid/debian\nSuites: bookworm\n";
        let found = mirrors_in_deb822(text);
        assert_eq!(
            found,
            vec![(
                "http://mirror.invalid/debian".to_string(),
                vec!["bookworm".to_string()]
            )]
        );
        // A bookworm machine's mirror also serves the trixie base.
        assert_eq!(
            pick_mirror(found.clone(), Release::Trixie).as_deref(),
            Some("http://mirror.invalid/debian")
        );
        let disabled =
            "Enabled: no\nTypes: deb\nURIs: http://off.invalid/debian\nSuites: bookworm\n";
        assert!(mirrors_in_deb822(disabled).is_empty());
    }

    #[test]
    fn one_line_sources_give_the_main_suite_mirror() {
        let text = "# comment\ndeb-src http://src.invalid/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://opts.invalid/debian bookworm main\n\
                    deb http://sec.invalid/debian-security bookworm-security main\n";
        assert_eq!(
            mirrors_in_one_line_format(text),
            vec![(
                "http://opts.invalid/debian".to_string(),
                vec!["bookworm".to_string()]
            )]
        );
    }

    #[test]
    fn a_mirror_naming_the_wanted_suite_is_preferred() {
        let candidates = vec![
            (
                "http://a.invalid/debian".to_string(),
                vec!["bookworm".to_string()],
            ),
            (
                "http://b.invalid/debian".to_string(),
                vec!["trixie".to_string()],
            ),
        ];
        assert_eq!(
            pick_mirror(candidates.clone(), Release::Trixie).as_deref(),
            Some("http://b.invalid/debian")
        );
        assert_eq!(
            pick_mirror(candidates, Release::Bookworm).as_deref(),
            Some("http://a.invalid/debian")
        );
        assert_eq!(pick_mirror(Vec::new(), Release::Bookworm), None);
    }

    #[test]
    fn releases_know_their_suite_version_and_script() {
        let scripts = tempfile::tempdir().unwrap();
        std::fs::write(scripts.path().join("sid"), "").unwrap();
        for release in Release::ALL {
            std::fs::write(scripts.path().join(release.suite()), "").unwrap();
        }
        let cases = [
            (Release::Bullseye, "bullseye", "11"),
            (Release::Bookworm, "bookworm", "12"),
            (Release::Trixie, "trixie", "13"),
            (Release::Forky, "forky", "14"),
        ];
        for (release, suite, version) in cases {
            assert_eq!((release.suite(), release.version()), (suite, version));
            // Where debootstrap knows the suite, its own script is used.
            assert_eq!(fallback_script(release, scripts.path()), None, "{suite}");
        }
        // A debootstrap without a forky script builds it with sid's.
        std::fs::remove_file(scripts.path().join("forky")).unwrap();
        assert_eq!(
            fallback_script(Release::Forky, scripts.path()),
            Some(scripts.path().join("sid"))
        );
        std::fs::remove_file(scripts.path().join("trixie")).unwrap();
        assert_eq!(fallback_script(Release::Trixie, scripts.path()), None);
    }

    #[test]
    fn the_lock_and_the_build_sit_beside_the_base() {
        let base = base_dir(Path::new("/cache"), Release::Forky);
        let lock = sibling(&base, "lock");
        assert_eq!(lock.parent(), Some(Path::new("/cache")));
        assert!(lock.to_string_lossy().ends_with(".lock"));
        assert_eq!(
            sibling(&base, "building").file_name().unwrap().len(),
            base.file_name().unwrap().len() + ".building".len()
        );
    }

    #[test]
    fn cache_dir_changes_with_the_package_list() {
        assert_ne!(fnv1a(b"a,b"), fnv1a(b"a,c"));
        let bookworm = base_dir(Path::new("/cache"), Release::Bookworm);
        let trixie = base_dir(Path::new("/cache"), Release::Trixie);
        assert!(bookworm.starts_with("/cache"));
        assert!(bookworm.to_string_lossy().contains("bookworm"));
        assert!(trixie.to_string_lossy().contains("trixie"));
    }
}
