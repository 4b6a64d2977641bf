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

use crate::core::event::Hold;
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
        let runtime = runtime(self.forks)?;
        let progress = Progress::start(self.progress, self.verbose);
        let fleet = Fleet {
            forks: self.forks,
            sink: progress.sink(),
            deadlines: self.timeout.map(Deadlines::uniform).unwrap_or_default(),
            interrupt: Interrupt::default(),
            hold: Hold::new({
                let suspender = progress.suspender();
                move |asked| suspender.suspend(asked)
            }),
        };
        fleet.interrupt.listen_for_signals()?;
        Ok((runtime, progress, fleet))
    }
}

/// The runtime every networked command runs on, for `in_flight` hosts at
/// once.
fn runtime(in_flight: usize) -> Result<tokio::runtime::Runtime> {
    raise_open_files_limit();
    crate::engine::runtime::runtime(in_flight)
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))
}

/// Each host in flight holds a socket or two (its connection, while it
/// converges verification's fresh login, its TLS probes): `--forks 1000`
/// needs more files than the 1,024 a login session's soft limit usually
/// allows. The soft limit is raised to the hard one, as Go programs and
/// many servers do at start; where the hard limit is unlimited, to the
/// kernel's default ceiling. A limit that cannot be raised stays as it is.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    const CEILING: u64 = 1 << 20;
    let limit = getrlimit(Resource::Nofile);
    let wanted = limit.maximum.unwrap_or(CEILING);
    if limit.current.is_some_and(|soft| soft < wanted) {
        let raised = Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}

#[cfg(test)]
mod tests {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    #[test]
    fn the_open_files_soft_limit_is_raised_to_the_hard_one() {
        let before = getrlimit(Resource::Nofile);
        let Some(hard) = before.maximum else {
            return; // unlimited: nothing to lower and raise back here
        };
        // One below the hard limit: other tests of this process keep
        // (nearly) every file they may open while this one runs.
        let lowered = Rlimit {
            current: Some(hard - 1),
            maximum: Some(hard),
        };
        setrlimit(Resource::Nofile, lowered).unwrap();
        super::raise_open_files_limit();
        let after = getrlimit(Resource::Nofile);
        assert_eq!((after.current, after.maximum), (Some(hard), Some(hard)));
    }
}
