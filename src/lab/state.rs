//! Where a lab keeps its files, what it records about its hosts, the lock
//! that serialises operations on it, and the naming/addressing plan.
//!
//! Each lab `NAME` owns a /24 inside 198.18.0.0/15 (the range set aside for
//! benchmarking network devices), `198.18.K.0/24` where `K` is the lab's
//! index, so several labs (a user's, the test suite's) can run side by side.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::release::Release;
use crate::error::{Error, Result};

/// Hosts per lab: addresses .11 to .210 of the lab's /24.
pub const MAX_HOSTS: usize = 200;
/// Labs per machine: one /24 each out of 198.18.0.0/16.
const MAX_LABS: u8 = 255;

/// The directories of one lab.
#[derive(Debug, Clone)]
pub struct LabPaths {
    pub name: String,
    /// Root of every lab's state (`DOCKHAND_LAB_DIR`).
    pub state_root: PathBuf,
    /// This lab's own directory.
    pub dir: PathBuf,
    /// Where the debootstrapped base is cached (`DOCKHAND_LAB_CACHE`).
    pub cache: PathBuf,
}

impl LabPaths {
    /// The paths are made absolute: mounts are found by their absolute
    /// paths in /proc/self/mountinfo, and with a relative DOCKHAND_LAB_DIR
    /// `down` would not see a host's overlay and could not remove it.
    pub fn new(name: &str, state_root: PathBuf, cache: PathBuf) -> Result<Self> {
        validate_name(name)?;
        let absolute =
            |path: PathBuf| std::path::absolute(&path).map_err(|e| Error::file(&path, e));
        let (state_root, cache) = (absolute(state_root)?, absolute(cache)?);
        Ok(LabPaths {
            name: name.to_string(),
            dir: state_root.join(name),
            state_root,
            cache,
        })
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.join("lab.json")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.yaml")
    }
    pub fn hosts_dir(&self) -> PathBuf {
        self.dir.join("hosts")
    }
    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.hosts_dir().join(host)
    }
}

/// Lab names become parts of host names, namespace and file names.
fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 20
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--name {name:?}: a lab name is 1 to 20 characters: lowercase letters, digits and '-', starting with a letter"
        )))
    }
}

/// What `lab up` recorded; read back by `status`, `down` and `inventory`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabState {
    pub name: String,
    pub index: u8,
    /// The release `up` boots (records written before releases existed
    /// were bookworm labs).
    #[serde(default)]
    pub release: Release,
    pub hosts: Vec<HostRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostRecord {
    pub name: String,
    pub number: usize,
    pub address: Ipv4Addr,
    /// nspawn's `--uuid`: how the container's init is recognised in /proc.
    pub uuid: String,
    pub nspawn_pid: Option<i32>,
    #[serde(default)]
    pub release: Release,
}

impl LabState {
    pub fn load(paths: &LabPaths) -> Result<Option<LabState>> {
        let path = paths.state_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::file(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::file(&path, e)),
        }
    }

    /// Written to a temp file and renamed, so a killed `lab up` never
    /// leaves a truncated record behind.
    pub fn save(&self, paths: &LabPaths) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("lab state serialises");
        replace(&paths.state_file(), text.as_bytes())
    }
}

/// Replaces a file of the lab whole, by a rename (under the lab's lock, so
/// one temp name will do): whoever reads it meanwhile, a test or a login
/// looking up a host key after its own `lab up`, sees the old file or the
/// new one, never an emptied one.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| Error::file(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::file(path, e))
}

/// Names and addresses of the lab's network pieces. Interface names stay
/// within the kernel's 15 characters.
#[derive(Debug, Clone, PartialEq)]
pub struct NetPlan {
    pub index: u8,
}

impl NetPlan {
    pub fn bridge(&self) -> String {
        format!("dhlab{}", self.index)
    }
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.index, 1)
    }
    pub fn host_address(&self, number: usize) -> Ipv4Addr {
        assert!((1..=MAX_HOSTS).contains(&number));
        Ipv4Addr::new(198, 18, self.index, 10 + number as u8)
    }
    /// The machine-side end of a host's veth pair.
    pub fn veth(&self, number: usize) -> String {
        format!("dh{}v{number}", self.index)
    }
    /// The host-side end before it is moved and renamed `eth0`.
    pub fn veth_peer(&self, number: usize) -> String {
        format!("dh{}p{number}", self.index)
    }
    /// A host's network namespace. The lab's index is in the name: labs of
    /// the same name kept under different state directories never share one.
    pub fn netns(&self, host: &str) -> String {
        format!("dockhand-{}-{host}", self.index)
    }
    /// Prefix shared by the namespaces of lab `lab` (for finding strays).
    pub fn netns_prefix(&self, lab: &str) -> String {
        format!("dockhand-{}-{lab}-", self.index)
    }
    /// Prefix shared by every veth of this lab (for finding strays).
    pub fn veth_prefix(&self) -> String {
        format!("dh{}v", self.index)
    }
}

pub fn host_name(lab: &str, number: usize) -> String {
    format!("{lab}-{number:02}")
}

/// An exclusive `flock` held until dropped.
pub struct LockGuard {
    file: File,
}

impl LockGuard {
    /// The locked descriptor, for a child that must hold the lock too.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.file)
    }
}

/// Takes the lock, waiting for whoever holds it.
pub fn lock(path: &Path) -> Result<LockGuard> {
    let file = lock_file(path)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::file(path, e))?;
    Ok(LockGuard { file })
}

/// Takes the lock if it is free; None when someone else holds it.
pub fn try_lock(path: &Path) -> Result<Option<LockGuard>> {
    let file = lock_file(path)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(LockGuard { file })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(Error::file(path, e)),
    }
}

fn lock_file(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::file(parent, e))?;
    }
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::file(path, e))
}

/// Picks the lowest lab index that no other lab of this machine records
/// and that `taken` does not rule out (a bridge of that index, or its
/// subnet already in use on the machine). Call with the machine-wide lock
/// held.
pub fn allocate_index(paths: &LabPaths, taken: impl Fn(&NetPlan) -> bool) -> Result<u8> {
    let mut used = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&paths.state_root) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == paths.name {
                continue;
            }
            let Ok(other) = LabPaths::new(&name, paths.state_root.clone(), paths.cache.clone())
            else {
                continue;
            };
            if let Ok(Some(state)) = LabState::load(&other) {
                used.push(state.index);
            }
        }
    }
    (0..MAX_LABS)
        .find(|index| !used.contains(index) && !taken(&NetPlan { index: *index }))
        .ok_or_else(|| {
            Error::lab(
                "allocate a subnet",
                "every 198.18.K.0/24 is taken by another lab or already in use on this machine",
            )
        })
}

/// An IPv4 network, `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    pub address: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    fn mask(prefix: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
    }

    /// True when the two networks share at least one address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let mask = Self::mask(self.prefix.min(other.prefix));
        u32::from(self.address) & mask == u32::from(other.address) & mask
    }
}

impl NetPlan {
    /// The lab's subnet, `198.18.K.0/24`.
    pub fn subnet(&self) -> Ipv4Net {
        Ipv4Net {
            address: Ipv4Addr::new(198, 18, self.index, 0),
            prefix: 24,
        }
    }
}

/// Every address and network named in the output of `ip -o -4 addr` and
/// `ip -4 route show table all`: an address counts as a /32, a route as
/// its network; default routes say nothing about a range and are skipped.
pub fn networks_in(text: &str) -> Vec<Ipv4Net> {
    text.split_whitespace()
        .filter_map(|word| {
            let (address, prefix) = match word.split_once('/') {
                Some((address, prefix)) => (address, prefix.parse::<u8>().ok()?),
                None => (word, 32),
            };
            let address: Ipv4Addr = address.parse().ok()?;
            (1..=32)
                .contains(&prefix)
                .then_some(Ipv4Net { address, prefix })
        })
        .collect()
}

/// A random uuid in nspawn's dashed form, as it appears in the container's
/// environment (`container_uuid=`).
pub fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    crate::random::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = crate::core::hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_is_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        replace(&path, b"old\n").unwrap();
        // A reader holding the old file keeps reading it whole.
        let mut held = File::open(&path).unwrap();
        replace(&path, b"new line\n").unwrap();
        let mut old = String::new();
        std::io::Read::read_to_string(&mut held, &mut old).unwrap();
        assert_eq!(old, "old\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new line\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["known_hosts"]);
    }

    #[test]
    fn relative_state_and_cache_dirs_are_made_absolute() {
        let paths =
            LabPaths::new("lab", PathBuf::from("target/labs"), PathBuf::from("cache")).unwrap();
        let here = std::env::current_dir().unwrap();
        assert_eq!(paths.dir, here.join("target/labs/lab"));
        assert_eq!(paths.cache, here.join("cache"));
    }

    #[test]
    fn names_are_checked() {
        for good in ["lab", "e2e", "ci-run-2"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Lab",
            "2lab",
            "lab_1",
            "a-very-long-lab-name-indeed",
            "lab/x",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn net_plan_fits_kernel_limits_and_the_range() {
        let plan = NetPlan { index: 254 };
        assert!(plan.veth(MAX_HOSTS).len() <= 15);
        assert!(plan.veth_peer(MAX_HOSTS).len() <= 15);
        assert!(plan.bridge().len() <= 15);
        assert_eq!(plan.host_address(1), Ipv4Addr::new(198, 18, 254, 11));
        assert_eq!(
            plan.host_address(MAX_HOSTS),
            Ipv4Addr::new(198, 18, 254, 210)
        );
        assert_eq!(plan.gateway(), Ipv4Addr::new(198, 18, 254, 1));
        assert_eq!(host_name("lab", 7), "lab-07");
    }

    #[test]
    fn uuids_are_unique_and_dashed() {
        let a = random_uuid();
        let b = random_uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }

    #[test]
    fn index_allocation_skips_other_labs() {
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("cache");
        let other = LabPaths::new("other", root.path().to_path_buf(), cache.clone()).unwrap();
        std::fs::create_dir_all(&other.dir).unwrap();
        LabState {
            name: "other".into(),
            index: 0,
            release: Release::Bookworm,
            hosts: vec![],
        }
        .save(&other)
        .unwrap();
        let mine = LabPaths::new("mine", root.path().to_path_buf(), cache).unwrap();
        assert_eq!(allocate_index(&mine, |_| false).unwrap(), 1);
        assert_eq!(
            allocate_index(&mine, |plan| plan.bridge() == "dhlab1").unwrap(),
            2
        );
    }

    #[test]
    fn ranges_in_use_on_the_machine_are_skipped() {
        // What `ip -o -4 addr` and `ip -4 route show table all` print on a
        // machine where an unrelated bridge holds 198.18.1.0/24.
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
                    7: br-x    inet 198.18.1.1/24 brd 198.18.1.255 scope global br-x\n\
                    default via 10.0.2.2 dev eth0\n\
                    198.18.1.0/24 dev br-x proto kernel scope link src 198.18.1.1\n\
                    local 198.18.1.1 dev br-x table local proto kernel scope host src 198.18.1.1\n\
                    198.19.64.0/18 via 10.0.2.3 dev eth0\n";
        let in_use = networks_in(text);
        assert!(!in_use.iter().any(|n| n.prefix == 0), "{in_use:?}");
        let taken = |index: u8| {
            in_use
                .iter()
                .any(|n| n.overlaps(&NetPlan { index }.subnet()))
        };
        assert!(!taken(0));
        assert!(taken(1));
        assert!(!taken(2));
        // A wide route covering the lab's range takes every index in it.
        let wide = networks_in("198.18.0.0/16 dev tun0");
        assert!(wide[0].overlaps(&NetPlan { index: 200 }.subnet()));
        assert!(!networks_in("198.19.0.0/16 dev tun0")[0].overlaps(&NetPlan { index: 3 }.subnet()));
        let root = tempfile::tempdir().unwrap();
        let mine = LabPaths::new("mine", root.path().to_path_buf(), root.path().join("c")).unwrap();
        assert_eq!(
            allocate_index(&mine, |plan| taken(plan.index) || plan.index == 0).unwrap(),
            2
        );
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;

    #[test]
    fn records_from_before_releases_read_as_bookworm() {
        let old = r#"{"name":"lab","index":3,"hosts":[{"name":"lab-01","number":1,"address":"198.18.3.11","uuid":"u","nspawn_pid":7}]}"#;
        let state: LabState = serde_json::from_str(old).unwrap();
        assert_eq!(state.release, Release::Bookworm);
        assert_eq!(state.hosts[0].release, Release::Bookworm);
        let text = serde_json::to_string(&LabState {
            release: Release::Trixie,
            ..state
        })
        .unwrap();
        assert!(text.contains(r#""release":"trixie""#), "{text}");
    }
}
