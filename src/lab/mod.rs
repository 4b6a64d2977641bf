//! Disposable local hosts: real Debian 12 or 13 machines (systemd,
//! OpenSSH, dockerd) booted with systemd-nspawn over one cached debootstrap
//! per release, each in a network namespace of its own on 198.18.0.0/15.
//!
//! `up` is idempotent: running hosts are kept, hosts whose processes died
//! (a killed lab) are cleaned up and booted fresh, surplus hosts are
//! stopped. `down` removes every process, namespace, veth and mount of the
//! lab, found both from the lab's record and by scanning for its names, so
//! it also cleans up after a lab whose record was lost. The lab never
//! prints: it reports through [`LabEvent`]s.

mod base;
mod cgroup;
mod host;
mod inventory;
mod net;
mod ready;
mod release;
mod state;
mod system;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use base::{SUDO_USER, base_dir};
pub use cgroup::hosts_cgroup_parent;
pub use release::Release;
pub use state::{HostRecord, LabPaths, LabState, MAX_HOSTS};

use crate::error::{Error, Result};
use host::FoundHost;
pub use ready::{target, wait_until_ready};
use state::{NetPlan, host_name};

/// Hosts booted by `lab up` when no count is given and none are up.
pub const DEFAULT_HOSTS: usize = 3;

/// Serialises the choice of subnets between all labs of the machine.
const MACHINE_LOCK: &str = "/run/dockhand-lab.lock";

/// How long a host gets to power off before its processes are killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Pause between two boots: starting dozens of nspawns at the same instant
/// makes them compete for the same locks and slows every boot down.
const BOOT_SPACING: Duration = Duration::from_millis(300);

/// Progress of lab operations, rendered by `report`.
#[derive(Debug, Clone)]
pub enum LabEvent {
    BuildingBase {
        dir: PathBuf,
        release: Release,
    },
    /// Another `lab up` builds the same base; this one waits for it.
    WaitingForBase {
        dir: PathBuf,
        release: Release,
    },
    BaseReady {
        dir: PathBuf,
    },
    HostKept {
        name: String,
    },
    HostStale {
        name: String,
    },
    /// Running, but of another release than the one asked for.
    HostOtherRelease {
        name: String,
        release: Release,
    },
    HostBooting {
        name: String,
        address: String,
    },
    HostStopping {
        name: String,
    },
    LeftoverRemoved {
        what: String,
    },
}

/// One lab, by name.
pub struct Lab {
    paths: LabPaths,
}

/// What `status` reports of one host.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostStatus {
    pub name: String,
    pub address: String,
    pub release: Release,
    pub running: bool,
}

impl Lab {
    pub fn new(name: &str, state_root: PathBuf, cache: PathBuf) -> Result<Lab> {
        Ok(Lab {
            paths: LabPaths::new(name, state_root, cache)?,
        })
    }

    pub fn paths(&self) -> &LabPaths {
        &self.paths
    }

    /// Brings the lab to `count` running hosts (default: as many as are up,
    /// or [`DEFAULT_HOSTS`]) of `release` (default: the lab's own, or
    /// bookworm) and returns its record. Hosts of another release are
    /// replaced. The hosts have been started; waiting until they answer SSH
    /// is the caller's job.
    pub fn up(
        &self,
        count: Option<usize>,
        release: Option<Release>,
        events: &dyn Fn(LabEvent),
    ) -> Result<LabState> {
        system::preflight("up")?;
        if count.is_some_and(|n| n == 0 || n > MAX_HOSTS) {
            return Err(Error::Usage(format!(
                "lab up: the number of hosts must be between 1 and {MAX_HOSTS}"
            )));
        }
        let _lock = state::lock(&self.paths.dir.join(".lock"))?;
        let previous = LabState::load(&self.paths)?;
        let index = match &previous {
            Some(record) => record.index,
            None => {
                // Machine-wide, whatever the state directory: the bridge is
                // made before the lock is let go, so no other lab can pick
                // the same subnet in between.
                let _machine_lock = state::lock(Path::new(MACHINE_LOCK))?;
                // A bridge of an index may belong to a lab kept under
                // another state directory (the test suite's, say), and a
                // range may be held by something that is no lab at all.
                let in_use = net::networks_in_use();
                let index = state::allocate_index(&self.paths, |plan| {
                    net::link_exists(&plan.bridge())
                        || in_use.iter().any(|n| n.overlaps(&plan.subnet()))
                })?;
                net::ensure_bridge(&NetPlan { index })?;
                LabState {
                    name: self.paths.name.clone(),
                    index,
                    release: release.unwrap_or_default(),
                    hosts: Vec::new(),
                }
                .save(&self.paths)?;
                index
            }
        };
        let release = release
            .or(previous.as_ref().map(|p| p.release))
            .unwrap_or_default();
        let plan = NetPlan { index };
        let wanted = count.unwrap_or_else(|| {
            previous
                .as_ref()
                .map(|p| p.hosts.len())
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_HOSTS)
        });

        raise_inotify_limits();
        let base_dir = base::base_dir(&self.paths.cache, release);
        let base = base::ensure(&self.paths.cache, release, &|progress| {
            let dir = base_dir.clone();
            events(match progress {
                base::BaseProgress::Waiting => LabEvent::WaitingForBase { dir, release },
                base::BaseProgress::Building => LabEvent::BuildingBase { dir, release },
            })
        })?;
        events(LabEvent::BaseReady { dir: base.clone() });
        let public_key = self.ensure_key()?;
        net::ensure_bridge(&plan)?;

        // Sort what exists into hosts to keep and hosts to clear away.
        let recorded = previous.map(|p| p.hosts).unwrap_or_default();
        let mut kept = Vec::new();
        for record in &recorded {
            if record.number <= wanted && record.release != release {
                events(LabEvent::HostOtherRelease {
                    name: record.name.clone(),
                    release: record.release,
                });
            } else if record.number <= wanted && host::is_running(&self.paths, &plan, record) {
                events(LabEvent::HostKept {
                    name: record.name.clone(),
                });
                kept.push(record.clone());
            } else if record.number <= wanted {
                events(LabEvent::HostStale {
                    name: record.name.clone(),
                });
            }
        }
        let doomed: Vec<FoundHost> = host::found_on_disk(&self.paths)
            .into_iter()
            .filter(|found| !kept.iter().any(|k| k.name == found.name))
            .collect();
        self.clear_away(Some(&plan), &doomed, events)?;
        self.remove_leftover_network(&plan, &kept, events);

        // Keep the known_hosts lines of kept hosts, add those of new ones.
        let mut known_hosts: Vec<String> = std::fs::read_to_string(self.paths.known_hosts())
            .unwrap_or_default()
            .lines()
            .filter(|line| {
                kept.iter()
                    .any(|k| line.starts_with(&format!("{},", k.name)))
            })
            .map(str::to_string)
            .collect();
        let mut hosts = kept.clone();
        for number in 1..=wanted {
            if kept.iter().any(|k| k.number == number) {
                continue;
            }
            let name = host_name(&self.paths.name, number);
            let mut record = HostRecord {
                address: plan.host_address(number),
                name: name.clone(),
                number,
                uuid: state::random_uuid(),
                nspawn_pid: None,
                release,
            };
            events(LabEvent::HostBooting {
                name,
                address: record.address.to_string(),
            });
            let (pid, lines) = host::create(&self.paths, &plan, &base, &record, &public_key)?;
            record.nspawn_pid = Some(pid);
            known_hosts.extend(lines);
            hosts.push(record);
            std::thread::sleep(BOOT_SPACING);
        }
        hosts.sort_by_key(|h| h.number);
        // Replaced whole: an earlier `lab up` of this lab, past the lock,
        // may be reading it to wait for its hosts.
        state::replace(
            &self.paths.known_hosts(),
            (known_hosts.join("\n") + "\n").as_bytes(),
        )?;
        let lab = LabState {
            name: self.paths.name.clone(),
            index,
            release,
            hosts,
        };
        lab.save(&self.paths)?;
        state::replace(
            &self.paths.inventory(),
            inventory::render(&self.paths, &lab).as_bytes(),
        )?;
        Ok(lab)
    }

    /// Stops every host and removes everything the lab made on the machine
    /// (the base cache and the lab's SSH key stay for the next `up`).
    pub fn down(&self, events: &dyn Fn(LabEvent)) -> Result<()> {
        system::preflight("down")?;
        let _lock = state::lock(&self.paths.dir.join(".lock"))?;
        let previous = LabState::load(&self.paths)?;
        let found = host::found_on_disk(&self.paths);
        if let Some(record) = &previous {
            let plan = NetPlan {
                index: record.index,
            };
            self.clear_away(Some(&plan), &found, events)?;
            self.remove_leftover_network(&plan, &[], events);
            net::remove_bridge(&plan);
        } else if !found.is_empty() {
            // No record, but hosts on disk: stop their processes and
            // unmount them; their network cannot be told without a record.
            self.clear_away(None, &found, events)?;
        }
        for mount_point in system::mounts_under(&self.paths.dir) {
            let target = mount_point.to_string_lossy().into_owned();
            system::run_quietly("umount", &["--lazy", &target]);
        }
        for path in [
            self.paths.state_file(),
            self.paths.known_hosts(),
            self.paths.inventory(),
        ] {
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_dir_all(self.paths.hosts_dir());
        Ok(())
    }

    /// The recorded hosts and whether each is running.
    pub fn status(&self) -> Result<Option<Vec<HostStatus>>> {
        let Some(lab) = LabState::load(&self.paths)? else {
            return Ok(None);
        };
        let plan = NetPlan { index: lab.index };
        Ok(Some(
            lab.hosts
                .iter()
                .map(|record| HostStatus {
                    name: record.name.clone(),
                    address: record.address.to_string(),
                    release: record.release,
                    running: host::is_running(&self.paths, &plan, record),
                })
                .collect(),
        ))
    }

    /// The inventory `up` wrote, for `lab inventory`.
    pub fn inventory(&self) -> Result<String> {
        let path = self.paths.inventory();
        std::fs::read_to_string(&path).map_err(|_| Error::LabNotUp {
            name: self.paths.name.clone(),
        })
    }

    /// The lab's record, or an error saying the lab is not up.
    pub fn state(&self) -> Result<LabState> {
        LabState::load(&self.paths)?.ok_or_else(|| Error::LabNotUp {
            name: self.paths.name.clone(),
        })
    }

    /// Stops the given hosts (all together) and deletes their traces.
    fn clear_away(
        &self,
        plan: Option<&NetPlan>,
        hosts: &[FoundHost],
        events: &dyn Fn(LabEvent),
    ) -> Result<()> {
        if hosts.is_empty() {
            return Ok(());
        }
        for found in hosts {
            events(LabEvent::HostStopping {
                name: found.name.clone(),
            });
        }
        host::stop_all(&hosts.iter().collect::<Vec<_>>(), STOP_GRACE);
        for found in hosts {
            let network = plan.zip(self.host_number(&found.name));
            host::remove(&self.paths, found, network)?;
        }
        Ok(())
    }

    /// Removes namespaces and veths of this lab that belong to no kept host
    /// (left behind by a lab that was killed half-way).
    fn remove_leftover_network(
        &self,
        plan: &NetPlan,
        kept: &[HostRecord],
        events: &dyn Fn(LabEvent),
    ) {
        let is_kept = |number: usize| kept.iter().any(|k| k.number == number);
        let prefix = plan.netns_prefix(&self.paths.name);
        for netns in net::netns_with_prefix(&prefix) {
            let host = format!("{}-{}", self.paths.name, &netns[prefix.len()..]);
            if let Some(number) = self.host_number(&host)
                && !is_kept(number)
            {
                net::remove_host_network(plan, &netns, number);
                events(LabEvent::LeftoverRemoved {
                    what: format!("network namespace {netns}"),
                });
            }
        }
        for link in net::links_with_prefix(&plan.veth_prefix()) {
            if let Ok(number) = link[plan.veth_prefix().len()..].parse::<usize>()
                && !is_kept(number)
            {
                system::run_quietly("ip", &["link", "del", &link]);
                events(LabEvent::LeftoverRemoved {
                    what: format!("veth {link}"),
                });
            }
        }
    }

    /// The number in a host name of this lab (`lab-07` → 7); None for a
    /// name that is not one of ours.
    fn host_number(&self, host: &str) -> Option<usize> {
        let digits = host.strip_prefix(&format!("{}-", self.paths.name))?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|n| (1..=MAX_HOSTS).contains(n))
    }

    /// The lab's SSH key, made on first use; returns its public line.
    fn ensure_key(&self) -> Result<String> {
        let key = self.paths.key();
        if !key.exists() {
            std::fs::create_dir_all(&self.paths.dir)
                .map_err(|e| Error::file(&self.paths.dir, e))?;
            let key_arg = key.to_string_lossy().into_owned();
            let comment = format!("dockhand-lab-{}", self.paths.name);
            system::run(
                "create the lab SSH key",
                "ssh-keygen",
                &[
                    "-q", "-t", "ed25519", "-N", "", "-C", &comment, "-f", &key_arg,
                ],
            )?;
        }
        let public = key.with_extension("pub");
        std::fs::read_to_string(&public)
            .map(|s| s.trim().to_string())
            .map_err(|e| Error::file(&public, e))
    }
}

/// More than ~15 hosts exhaust the default inotify limits ("Failed to
/// allocate manager object: Too many open files" at boot).
fn raise_inotify_limits() {
    for (knob, minimum) in [
        ("/proc/sys/fs/inotify/max_user_instances", 8192u64),
        ("/proc/sys/fs/inotify/max_user_watches", 524288u64),
    ] {
        let current = std::fs::read_to_string(knob)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if current < minimum {
            let _ = std::fs::write(knob, minimum.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_numbers_are_parsed_only_for_this_lab() {
        let lab = Lab::new("lab", "/tmp/x".into(), "/tmp/c".into()).unwrap();
        let cases = [
            ("lab-01", Some(1)),
            ("lab-200", Some(200)),
            ("lab-201", None),
            ("lab-00", None),
            ("lab-x-01", None),
            ("lab-", None),
            ("other-01", None),
        ];
        for (name, expected) in cases {
            assert_eq!(lab.host_number(name), expected, "{name}");
        }
    }
}
