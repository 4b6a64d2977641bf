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
        let document: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| crate::core::yaml_error(file, &e))?;
        if ansible::is_ansible_yaml(&document) {
            return ansible::from_yaml(file, &document)?.resolve(file, home);
        }
        Inventory::parse_own(file, text, home)
    }
}
