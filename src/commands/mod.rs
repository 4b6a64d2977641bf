//! One module per subcommand, each the same shape: options → selection
//! (`engine::load`) → one engine call (`engine::deploy`, `engine::inspect`,
//! the lab, the PKI) → `report` → exit code. No flow lives here: a command
//! never names the transport, and only `pki` reaches into the PKI store.

pub mod apply;
pub mod audit;
pub mod context;
pub mod inventory;
pub mod lab;
pub mod ping;
pub mod pki;
pub mod pki_client;
pub mod plan;
pub mod verify;

use std::time::Duration;

use crate::engine::fleet::{Deadlines, Fleet, Interrupt};
use crate::error::{Error, Result};
use crate::report::progress::Progress;

/// Hosts handled at once unless `--forks` says otherwise.
pub const FORKS: usize = 50;

/// The options every command that visits hosts has.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub forks: usize,
    pub progress: crate::report::progress::Mode,
    /// Also render when each step ends.
    pub verbose: bool,
    /// `--timeout`: one deadline for every remote step.
    pub timeout: Option<Duration>,
}

impl Run {
    /// `-v`: what each host cost on the wire, once the run ended.
    fn say_traffic(&self, hosts: &crate::engine::load::Hosts) {
        if self.verbose {
            let counts: Vec<(&str, crate::engine::load::Traffic)> = hosts
                .iter()
                .map(|(host, target)| (host.name.as_str(), target.meter.read()))
                .collect();
            crate::report::traffic(&counts);
        }
    }

    /// The fleet runner for these options, reporting to `progress`.
    /// The runtime, the renderer and the fleet runner of a command. From
    /// here on, Ctrl-C and SIGTERM are the runner's: no new host starts,
    /// hosts in flight finish; a second one abandons them.
    fn start(&self) -> Result<(tokio::runtime::Runtime, Progress, Fleet)> {
        let runtime = runtime()?;
        let progress = Progress::start(self.progress, self.verbose);
        let fleet = Fleet {
            forks: self.forks,
            sink: progress.sink(),
            deadlines: self.timeout.map(Deadlines::uniform).unwrap_or_default(),
            interrupt: Interrupt::default(),
        };
        runtime.block_on(async { fleet.interrupt.listen_for_signals() })?;
        Ok((runtime, progress, fleet))
    }
}

/// The multi-threaded runtime every networked command runs on.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))
}
