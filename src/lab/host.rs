//! One lab host: an overlay over the shared base, its own identity (host
//! name, SSH host keys, authorized keys), booted with `systemd-nspawn` in
//! its own network namespace; and its orderly or forced removal.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::base::{self, SUDO_USER};
use super::cgroup;
use super::net;
use super::state::{HostRecord, LabPaths, NetPlan};
use super::system::{self, HostProcesses};
use crate::error::{Error, Result};

/// The files of one host under the lab directory.
pub struct HostDirs {
    pub dir: PathBuf,
}

impl HostDirs {
    pub fn new(paths: &LabPaths, host: &str) -> Self {
        HostDirs {
            dir: paths.host_dir(host),
        }
    }
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    /// The host's nspawn uuid, kept beside it so a lab whose state file is
    /// lost can still find the host's processes.
    pub fn uuid_file(&self) -> PathBuf {
        self.dir.join("uuid")
    }
    /// The host's network namespace name, kept for the same reason.
    pub fn netns_file(&self) -> PathBuf {
        self.dir.join("netns")
    }
    /// The path of the host's own cgroup, kept so `lab down` removes it.
    pub fn cgroup_file(&self) -> PathBuf {
        self.dir.join("cgroup")
    }
}

/// Prepares and boots one host; returns the pid of its `systemd-nspawn`
/// and the known_hosts lines for its fresh host keys.
pub fn create(
    paths: &LabPaths,
    plan: &NetPlan,
    base: &Path,
    record: &HostRecord,
    lab_public_key: &str,
) -> Result<(i32, Vec<String>)> {
    let dirs = HostDirs::new(paths, &record.name);
    let step = |what: &str| format!("{}: {what}", record.name);
    for dir in [dirs.upper(), dirs.work(), dirs.root()] {
        std::fs::create_dir_all(&dir).map_err(|e| Error::file(&dir, e))?;
    }
    std::fs::write(dirs.uuid_file(), &record.uuid).map_err(|e| Error::file(dirs.uuid_file(), e))?;
    let netns = plan.netns(&record.name);
    std::fs::write(dirs.netns_file(), &netns).map_err(|e| Error::file(dirs.netns_file(), e))?;
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        base.display(),
        dirs.upper().display(),
        dirs.work().display()
    );
    let root = dirs.root();
    let root_arg = root.to_string_lossy().into_owned();
    system::run(
        &step("mount its overlay"),
        "mount",
        &["-t", "overlay", "overlay", "-o", &options, &root_arg],
    )?;

    write_identity(&root, record, lab_public_key)?;
    let known_hosts = host_key_lines(&root, record)?;
    net::create_host_network(plan, &netns, record.number, record.address)?;
    let pid = boot(&dirs, record, &netns)?;
    Ok((pid, known_hosts))
}

/// Host name, /etc/hosts, fresh SSH host keys, and the lab key authorised
/// for root and the sudo user.
fn write_identity(root: &Path, record: &HostRecord, lab_public_key: &str) -> Result<()> {
    let write = |relative: &str, content: &str| {
        let path = root.join(relative);
        std::fs::write(&path, content).map_err(|e| Error::file(&path, e))
    };
    write("etc/hostname", &format!("{}\n", record.name))?;
    write(
        "etc/hosts",
        &format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{0}\n{1}\t{0}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            record.name, record.address
        ),
    )?;
    for (kind, file) in [
        ("ed25519", "ssh_host_ed25519_key"),
        ("ecdsa", "ssh_host_ecdsa_key"),
    ] {
        let path = root.join("etc/ssh").join(file);
        let path_arg = path.to_string_lossy().into_owned();
        let comment = format!("root@{}", record.name);
        system::run(
            &format!("{}: generate its SSH host keys", record.name),
            "ssh-keygen",
            &["-q", "-t", kind, "-N", "", "-C", &comment, "-f", &path_arg],
        )?;
    }
    let (uid, gid) = user_ids(root, SUDO_USER)?;
    for (home, owner) in [
        (root.join("root"), (0, 0)),
        (root.join("home").join(SUDO_USER), (uid, gid)),
    ] {
        let ssh_dir = home.join(".ssh");
        std::fs::create_dir_all(&ssh_dir).map_err(|e| Error::file(&ssh_dir, e))?;
        let keys = ssh_dir.join("authorized_keys");
        std::fs::write(&keys, format!("{lab_public_key}\n")).map_err(|e| Error::file(&keys, e))?;
        base::set_mode(&ssh_dir, 0o700)?;
        base::set_mode(&keys, 0o600)?;
        for path in [&ssh_dir, &keys] {
            std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1))
                .map_err(|e| Error::file(path, e))?;
        }
    }
    Ok(())
}

/// known_hosts lines naming the host by name and by address.
fn host_key_lines(root: &Path, record: &HostRecord) -> Result<Vec<String>> {
    ["ssh_host_ed25519_key.pub", "ssh_host_ecdsa_key.pub"]
        .iter()
        .map(|file| {
            let path = root.join("etc/ssh").join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
            let mut fields = text.split_whitespace();
            let (Some(kind), Some(key)) = (fields.next(), fields.next()) else {
                return Err(Error::file(&path, "not an OpenSSH public key"));
            };
            Ok(format!("{},{} {kind} {key}", record.name, record.address))
        })
        .collect()
}

/// The uid and gid of `user` in the root file system's /etc/passwd.
fn user_ids(root: &Path, user: &str) -> Result<(u32, u32)> {
    let path = root.join("etc/passwd");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
    text.lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&user) && fields.len() > 3)
        .and_then(|fields| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
        .ok_or_else(|| Error::file(&path, format!("no user {user}")))
}

/// Starts systemd-nspawn in the background. The settings are the ones
/// found necessary on these machines: no registration (there is no system
/// D-Bus here), a unified cgroup hierarchy and all capabilities for
/// dockerd, a writable /proc/sys/net for its bridge, and no seccomp filter
/// of nspawn's own, without which runc cannot start a container ("unable
/// to join session keyring", then `bpf_prog_query` refused): hosts run
/// workloads, as the hosts users bring do. Each nspawn runs in a cgroup
/// of its own (see `cgroup`), named after the host's network namespace.
fn boot(dirs: &HostDirs, record: &HostRecord, netns: &str) -> Result<i32> {
    let log = File::create(dirs.log()).map_err(|e| Error::file(dirs.log(), e))?;
    let log_err = log.try_clone().map_err(|e| Error::file(dirs.log(), e))?;
    let netns_path = Path::new("/run/netns").join(netns);
    let mut command = Command::new(
        system::find_program("systemd-nspawn").unwrap_or_else(|| "systemd-nspawn".into()),
    );
    if let Some(path) = cgroup::host_cgroup(netns) {
        let file = dirs.cgroup_file();
        std::fs::write(&file, path.as_os_str().as_encoded_bytes())
            .map_err(|e| Error::file(&file, e))?;
        let procs = cgroup::prepare(&path, &record.name)?;
        // SAFETY: between fork and exec only write(2), async-signal-safe,
        // runs, on a descriptor the parent opened and keeps open until
        // the spawn returns.
        unsafe {
            command.pre_exec(move || {
                rustix::io::write(&procs, b"0")?;
                Ok(())
            });
        }
    }
    let child = command
        .arg("-D")
        .arg(dirs.root())
        .args([
            "-b",
            "--register=no",
            "--keep-unit",
            "--capability=all",
            "--quiet",
        ])
        .arg(format!("--machine={}", record.name))
        .arg(format!("--uuid={}", record.uuid))
        .arg(format!("--network-namespace-path={}", netns_path.display()))
        .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
        .env("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "network")
        .env("SYSTEMD_SECCOMP", "0")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // Its own process group: a Ctrl-C meant for dockhand must not
        // reach the hosts, which outlive the command that booted them.
        .process_group(0)
        .spawn()
        .map_err(|e| Error::lab(format!("{}: boot", record.name), e))?;
    Ok(child.id() as i32)
}

/// Whether the host's nspawn runs and its namespace and overlay exist.
pub fn is_running(paths: &LabPaths, plan: &NetPlan, record: &HostRecord) -> bool {
    let dirs = HostDirs::new(paths, &record.name);
    let processes = system::host_processes(&dirs.root(), &record.uuid);
    !processes.nspawn.is_empty()
        && net::netns_exists(&plan.netns(&record.name))
        && system::mounts_under(&dirs.dir).contains(&dirs.root())
}

/// A host found on disk (by its directory), whatever the state file says.
pub struct FoundHost {
    pub name: String,
    pub dirs: HostDirs,
    pub uuid: Option<String>,
}

/// Every host directory of the lab.
pub fn found_on_disk(paths: &LabPaths) -> Vec<FoundHost> {
    let Ok(entries) = std::fs::read_dir(paths.hosts_dir()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dirs = HostDirs::new(paths, &name);
            let uuid = std::fs::read_to_string(dirs.uuid_file())
                .ok()
                .map(|s| s.trim().to_string());
            FoundHost { name, dirs, uuid }
        })
        .collect()
}

/// Stops many hosts at once: a polite SIGTERM to every nspawn (which powers
/// its container off), then, for what is left after the grace period,
/// SIGKILL to the container's init (which ends its whole pid namespace) and
/// to nspawn. Only pids found by `system::host_processes` are signalled,
/// and the wait follows those pids: an exiting process no longer shows the
/// command line it was recognised by.
pub fn stop_all(hosts: &[&FoundHost], grace: Duration) {
    let found: Vec<HostProcesses> = hosts
        .iter()
        .map(|host| {
            let uuid = host.uuid.as_deref().unwrap_or("no-uuid-recorded");
            system::host_processes(&host.dirs.root(), uuid)
        })
        .collect();
    for processes in &found {
        if processes.nspawn.is_empty() {
            // nspawn is gone (killed): nobody is left to power the container
            // off politely, and an orphaned init is of no further use.
            for pid in &processes.container_init {
                system::signal(*pid, Signal::KILL);
            }
        } else {
            for pid in &processes.nspawn {
                system::signal(*pid, Signal::TERM);
            }
        }
    }
    let pids: Vec<i32> = found
        .iter()
        .flat_map(|p| p.nspawn.iter().chain(&p.container_init))
        .copied()
        .collect();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && pids.iter().any(|pid| system::running(*pid)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let kill_deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < kill_deadline {
        let left: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|pid| system::running(*pid))
            .collect();
        if left.is_empty() {
            wait_until_collected(&pids, Duration::from_secs(10));
            return;
        }
        for pid in left {
            system::signal(pid, Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Gives the machine's init a moment to collect the exit status of nspawns
/// whose parent (an earlier `lab up`) is gone, so no `<defunct>` entry is
/// left in the process table when `down` returns.
fn wait_until_collected(pids: &[i32], limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && pids.iter().any(|pid| system::exists(*pid)) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Unmounts and deletes a stopped host's files, namespace and veth.
/// `network` is the lab's plan and the host's number when known; without
/// them only the namespace (named after the host) can be told apart.
pub fn remove(
    paths: &LabPaths,
    host: &FoundHost,
    network: Option<(&NetPlan, usize)>,
) -> Result<()> {
    for mount_point in system::mounts_under(&host.dirs.dir) {
        let target = mount_point.to_string_lossy().into_owned();
        if !system::run_quietly("umount", &[&target]) {
            // Busy (a process we could not see still holds it): detach it
            // so the directory can go; the kernel frees it when released.
            system::run(
                &format!("{}: unmount", host.name),
                "umount",
                &["--lazy", &target],
            )?;
        }
    }
    // The namespace's name as the host recorded it (a lab whose record is
    // lost still finds it), else as the lab's plan names it.
    let netns = std::fs::read_to_string(host.dirs.netns_file())
        .ok()
        .map(|n| n.trim().to_string())
        .or_else(|| network.map(|(plan, _)| plan.netns(&host.name)));
    match (network, netns) {
        (Some((plan, number)), Some(netns)) => net::remove_host_network(plan, &netns, number),
        (None, Some(netns)) => {
            system::run_quietly("ip", &["netns", "del", &netns]);
        }
        (_, None) => {}
    }
    if let Ok(path) = std::fs::read_to_string(host.dirs.cgroup_file()) {
        cgroup::remove(Path::new(path.trim_end_matches('\n')));
    }
    if paths.hosts_dir().join(&host.name) == host.dirs.dir && host.dirs.dir.exists() {
        std::fs::remove_dir_all(&host.dirs.dir).map_err(|e| Error::file(&host.dirs.dir, e))?;
    }
    Ok(())
}
