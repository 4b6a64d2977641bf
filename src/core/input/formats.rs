//! An inventory in any form users bring, told from its content: a dynamic
//! inventory's JSON, Ansible's INI, Ansible's YAML, or dockhand's own.

use std::path::Path;

use super::ansible;
use super::inventory::Inventory;
use crate::error::Result;

impl Inventory {
    /// Parses `text`, read from `file` (named in errors), in whichever form
    /// it is. `home` expands a leading `~/` in paths.
    pub fn parse(file: &Path, text: &str, home: Option<&Path>) -> Result<Inventory> {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
            .unwrap_or("");
        if first.starts_with('{') {
            return ansible::from_json(file, text)?.resolve(file, home);
        }
        if first.starts_with('[') || (first.contains('=') && !first.contains(": ")) {
            return ansible::from_ini(file, text)?.resolve(file, home);
        }
        // A document that does not even parse is dockhand's own form's to
        // report: its errors are the precise ones (a host named twice).
        match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(document) if ansible::is_ansible_yaml(&document) => {
                ansible::from_yaml(file, &document)?.resolve(file, home)
            }
            _ => Inventory::parse_own(file, text, home),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dockhand's own form keeps its precise errors, though every
    /// document is looked at as YAML first.
    #[test]
    fn a_host_named_twice_is_named() {
        let err = Inventory::parse(
            Path::new("inv.yaml"),
            "hosts:\n  web1: {}\n  web1: {}\n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("inv.yaml:2:3: hosts: `web1` appears twice"),
            "{err}"
        );
    }
}
