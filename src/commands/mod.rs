//! One module per subcommand: each turns its options into a run over the
//! core, the transport and the lab, and hands what happened to `report`.

pub mod lab;
pub mod ping;
pub mod plan;
mod target;

pub use target::Targets;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The multi-threaded runtime every networked command runs on.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))
}

pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Reads and parses an inventory file.
pub fn load_inventory(path: &Path) -> Result<crate::core::inventory::Inventory> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read the inventory: {e}")))?;
    crate::core::inventory::Inventory::parse(path, &text, home_dir().as_deref())
}
