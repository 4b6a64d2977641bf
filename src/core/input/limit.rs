//! `--limit`: host names, group names and globs, comma-separated, as
//! Ansible users write them. A pattern matching no host is an error, so a
//! typo never silently selects nothing.

use globset::{Glob, GlobMatcher};

use crate::core::input::inventory::Host;
use crate::error::{Error, Result};

/// Keeps the hosts `pattern` selects, in inventory order.
pub fn select<'a>(hosts: &'a [Host], pattern: &str) -> Result<Vec<&'a Host>> {
    let flag_error = |message: String| Error::Usage(format!("--limit {pattern:?}: {message}"));
    let mut matchers: Vec<(String, GlobMatcher)> = Vec::new();
    for part in pattern.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(flag_error("empty pattern between commas".into()));
        }
        let glob = Glob::new(part).map_err(|e| flag_error(format!("`{part}`: {e}")))?;
        matchers.push((part.to_string(), glob.compile_matcher()));
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
        .filter(|h| matchers.iter().any(|(_, m)| selects(h, m)))
        .collect())
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
}
