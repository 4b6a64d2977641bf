//! One module per subcommand: each turns its options into a run over the
//! core, the transport and the lab, and hands what happened to `report`.

pub mod apply;
pub mod lab;
pub mod ping;
pub mod pki;
pub mod plan;
mod target;
pub mod verify;

pub use target::Targets;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Hosts handled at once unless `--forks` says otherwise.
pub const FORKS: usize = 50;

/// Runs `work` for every job, at most `forks` at a time, and returns the
/// results in the jobs' order (the inventory's), whatever order they end in.
pub async fn for_each_host<J, F, Fut, T>(jobs: Vec<J>, forks: usize, work: F) -> Vec<T>
where
    J: Send + 'static,
    T: Send + 'static,
    F: Fn(J) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let limit = Arc::new(tokio::sync::Semaphore::new(forks.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, job) in jobs.into_iter().enumerate() {
        let limit = limit.clone();
        let future = work(job);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (index, future.await)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => results.push(result),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

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
