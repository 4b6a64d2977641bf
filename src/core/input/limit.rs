//! `--limit`: host names, group names and globs, comma-separated, as
//! Ansible users write them. A pattern matching no host is an error, so a
//! typo never silently selects nothing. And `--shard I/N`: the I-th of N
//! disjoint parts of a selection, for N CI jobs that share one fleet.
//!
//! Plain names (most of a long `--limit`, as a CI job writes one) are
//! looked up in a set: matching every host against every pattern would
//! cost hosts × patterns, minutes at 10,000 hosts and a few thousand
//! names. Only real globs are matched one by one.

use std::collections::{HashMap, HashSet};

use globset::{Glob, GlobMatcher};

use crate::core::input::inventory::Host;
use crate::error::{Error, Result};

/// Keeps the hosts `pattern` selects, in inventory order.
pub fn select<'a>(hosts: &'a [Host], pattern: &str) -> Result<Vec<&'a Host>> {
    let flag_error = |message: String| Error::Usage(format!("--limit {pattern:?}: {message}"));
    let mut names: HashSet<&str> = HashSet::new();
    let mut matchers: Vec<(String, GlobMatcher)> = Vec::new();
    for part in pattern.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(flag_error("empty pattern between commas".into()));
        }
        if part.contains(['*', '?', '[', ']', '{', '}', '\\']) {
            let glob = Glob::new(part).map_err(|e| flag_error(format!("`{part}`: {e}")))?;
            matchers.push((part.to_string(), glob.compile_matcher()));
        } else {
            names.insert(part);
        }
    }
    // Every name and group of the inventory, once.
    let mut known: HashSet<&str> = HashSet::with_capacity(hosts.len());
    for host in hosts {
        known.insert(&host.name);
        known.extend(host.groups.iter().map(String::as_str));
    }
    let mut unknown: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !known.contains(n))
        .collect();
    unknown.sort_unstable();
    if let Some(part) = pattern
        .split(',')
        .map(str::trim)
        .find(|p| unknown.contains(p))
    {
        return Err(flag_error(format!(
            "`{part}` matches no host or group of the inventory"
        )));
    }
    let selects = |host: &Host, matcher: &GlobMatcher| {
        matcher.is_match(&host.name) || host.groups.iter().any(|g| matcher.is_match(g))
    };
    for (part, matcher) in &matchers {
        if !hosts.iter().any(|h| selects(h, matcher)) {
            return Err(flag_error(format!(
                "`{part}` matches no host or group of the inventory"
            )));
        }
    }
    Ok(hosts
        .iter()
        .filter(|h| {
            names.contains(h.name.as_str())
                || h.groups.iter().any(|g| names.contains(g.as_str()))
                || matchers.iter().any(|(_, m)| selects(h, m))
        })
        .collect())
}

/// `--shard I/N`: of a selection, the hosts whose name falls in part I of
/// N. A host's part depends on its name alone (a stable hash, the same on
/// every machine and version), so every shard of one inventory sees the
/// same split, the N shards cover every host exactly once, and a host
/// keeps its shard when others join or leave the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based, as written.
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Shard, String> {
        let wrong = || format!("{text:?}: give I/N, the I-th of N shards (1 <= I <= N), e.g. 2/4");
        let (index, count) = text.split_once('/').ok_or_else(wrong)?;
        let index: u32 = index.trim().parse().map_err(|_| wrong())?;
        let count: u32 = count.trim().parse().map_err(|_| wrong())?;
        if index == 0 || count == 0 || index > count {
            return Err(wrong());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether the host named `name` is in this shard.
    pub fn holds(&self, name: &str) -> bool {
        part_of(name, self.count) + 1 == self.index
    }

    /// Keeps the hosts of this shard, in order. A shard left with no host
    /// is an error that says how many shards the selection can fill.
    pub fn select<'a>(&self, hosts: Vec<&'a Host>) -> Result<Vec<&'a Host>> {
        let total = hosts.len();
        let kept: Vec<&Host> = hosts.into_iter().filter(|h| self.holds(&h.name)).collect();
        if kept.is_empty() {
            return Err(Error::Usage(format!(
                "--shard {self}: none of the {total} selected host(s) falls in this shard; fewer shards (or none) for so few hosts"
            )));
        }
        Ok(kept)
    }
}

/// The first 8 bytes of the name's SHA-256: stable across machines and
/// versions, unlike std's hasher, and even over names that differ in one
/// digit (FNV-1a, tried first, was 10% off at 7 shards).
fn part_of(name: &str, count: u32) -> u32 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(count)) as u32
}

/// How many of `names` fall in each of `count` shards (for tests and the
/// simulation's report).
pub fn shard_sizes<'a>(
    names: impl IntoIterator<Item = &'a str>,
    count: u32,
) -> HashMap<u32, usize> {
    let mut sizes = HashMap::new();
    for name in names {
        *sizes.entry(part_of(name, count) + 1).or_insert(0) += 1;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::input::inventory::Inventory;

    fn hosts() -> Vec<Host> {
        Inventory::parse(
            "i.yaml".as_ref(),
            "hosts:\n  web1:\n  web2:\n  db1:\ngroups:\n  db: { hosts: [db1] }\n  edge: { hosts: [web2] }\n",
            None,
        )
        .unwrap()
        .hosts
    }

    #[test]
    fn names_groups_and_globs() {
        let hosts = hosts();
        let cases = [
            ("web1", vec!["web1"]),
            ("web*", vec!["web1", "web2"]),
            ("db", vec!["db1"]),
            ("db,edge", vec!["web2", "db1"]),
            ("web1, db1", vec!["web1", "db1"]),
            ("*", vec!["web1", "web2", "db1"]),
        ];
        for (pattern, expected) in cases {
            let got: Vec<&str> = select(&hosts, pattern)
                .unwrap()
                .iter()
                .map(|h| h.name.as_str())
                .collect();
            assert_eq!(got, expected, "{pattern}");
        }
    }

    #[test]
    fn a_pattern_that_matches_nothing_is_an_error() {
        let hosts = hosts();
        for (pattern, needle) in [
            ("web9", "`web9` matches no host"),
            ("web1,nope*", "`nope*` matches no host"),
            ("web1,,db", "empty pattern"),
            ("[", "`[`"),
        ] {
            let err = select(&hosts, pattern).unwrap_err().to_string();
            assert!(
                err.starts_with("--limit") && err.contains(needle),
                "{pattern}: {err}"
            );
        }
    }

    #[test]
    fn shards_cover_every_host_exactly_once_and_evenly() {
        let names: Vec<String> = (0..10_000).map(|i| format!("node-{i:05}.dc1")).collect();
        for count in [1u32, 2, 4, 7] {
            let mut seen = std::collections::HashMap::new();
            for index in 1..=count {
                let shard = Shard { index, count };
                for name in names.iter().filter(|n| shard.holds(n)) {
                    *seen.entry(name.clone()).or_insert(0) += 1;
                }
            }
            assert_eq!(seen.len(), names.len(), "{count} shards miss a host");
            assert!(seen.values().all(|n| *n == 1), "a host in two shards");
            let sizes = shard_sizes(names.iter().map(String::as_str), count);
            let even = names.len() / count as usize;
            for (index, size) in sizes {
                assert!(
                    size.abs_diff(even) * 20 < even,
                    "shard {index}/{count} has {size} hosts, not about {even}"
                );
            }
        }
        // The split is the name's: the same shard whatever else is there.
        let shard = Shard { index: 2, count: 4 };
        assert_eq!(
            shard.holds("node-00042.dc1"),
            part_of("node-00042.dc1", 4) == 1
        );
    }

    #[test]
    fn a_shard_is_written_i_of_n_and_an_empty_one_is_an_error() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "2", "a/b", "1/4/2", ""] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("I/N"), "{bad}: {err}");
        }
        let hosts = hosts();
        let all: Vec<&Host> = hosts.iter().collect();
        let covered: usize = (1..=3)
            .map(|index| {
                Shard { index, count: 3 }
                    .select(all.clone())
                    .map_or(0, |kept| kept.len())
            })
            .sum();
        assert_eq!(covered, 3);
        let many = Shard {
            index: 1,
            count: 50,
        };
        let empty = (1..=50)
            .map(|index| Shard { index, ..many }.select(all.clone()))
            .find_map(|r| r.err())
            .expect("50 shards of 3 hosts leave some empty");
        assert!(
            empty.to_string().contains("none of the 3 selected host(s)"),
            "{empty}"
        );
    }

    #[test]
    fn a_long_list_of_names_and_globs_selects_as_one_by_one_would() {
        let text: String = std::iter::once("hosts:\n".to_string())
            .chain((0..10_000).map(|i| format!("  n{i}:\n")))
            .collect();
        let hosts = Inventory::parse("i.yaml".as_ref(), &text, None)
            .unwrap()
            .hosts;
        let pattern: Vec<String> = (0..10_000).step_by(2).map(|i| format!("n{i}")).collect();
        // Hosts × patterns would be 50 million glob matches (minutes in a
        // debug build); sets make it one pass. Its time is the simulation
        // benchmark's to show, not this test's.
        let kept = select(&hosts, &pattern.join(",")).unwrap();
        assert_eq!(kept.len(), 5_000);
        assert_eq!(kept[1].name, "n2");
        let mixed = select(&hosts, "n1,n99*,n5000").unwrap();
        let names: Vec<&str> = mixed.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names[..3], ["n1", "n99", "n990"]);
        assert!(names.contains(&"n5000") && names.len() == 113);
    }
}
