//! What users write: the inventory (dockhand's own or Ansible's), the
//! playbook, OpenSSH's ssh_config as far as a target needs it, `--limit`
//! patterns and rollout batches. Parsed and checked here; every error names
//! file:line:column.

pub mod ansible;
pub mod fields;
mod formats;
pub mod inventory;
pub mod limit;
pub mod playbook;
pub mod rollout;
pub mod ssh_config;
pub mod template;
