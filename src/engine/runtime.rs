//! The runtime every command that visits hosts runs on, sized for the
//! hosts it has in flight.

/// The runtime for `in_flight` hosts at once (`--forks`): one worker
/// thread runs the hosts' tasks for every [`HOSTS_PER_WORKER`] of them (at
/// most one a core), and the thread that runs the command (`block_on`)
/// runs the flow around them.
///
/// A host's work waits on the network almost all the time; its CPU is a
/// few handshakes. With a worker per core, tokio wakes a parked worker to
/// share each new piece of work, and on a fleet spread over `--forks`
/// those wake-ups (a futex and an eventfd write each) cost more than the
/// work they share: on 10,000 simulated hosts, one worker spent 2 to 12%
/// less of dockhand's CPU per host than two in five pairs of runs in turn
/// (a sixth, disturbed, went 8% the other way), at the same wall time, at
/// `--forks` 50 and 200 (docs/PERFORMANCE.md). At
/// `--forks` 1000 the handshakes of a thousand hosts at once are work
/// enough for more cores: there one worker took a third longer than two.
///
/// The flow's own thread stays apart so that the question on a terminal,
/// which blocks it while the user reads, never stops a worker: held
/// connections still answer their hosts, and Ctrl-C is still caught.
///
/// tokio's own `TOKIO_WORKER_THREADS`, when set, still decides: a fleet
/// whose logins sign with RSA keys (milliseconds each) at high `--forks`
/// may want more cores for its first wave.
pub fn runtime(in_flight: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(workers(in_flight, cores));
    }
    builder.enable_all().build()
}

/// Hosts in flight that one worker thread serves.
pub const HOSTS_PER_WORKER: usize = 250;

fn workers(in_flight: usize, cores: usize) -> usize {
    in_flight.div_ceil(HOSTS_PER_WORKER).clamp(1, cores.max(1))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_worker_serves_up_to_its_share_of_hosts_and_no_more_than_the_cores() {
        for (in_flight, cores, expected) in [
            (0, 8, 1),
            (1, 8, 1),
            (50, 8, 1),
            (HOSTS_PER_WORKER, 8, 1),
            (HOSTS_PER_WORKER + 1, 8, 2),
            (1_000, 8, 4),
            (1_000, 2, 2),
            (10_000, 8, 8),
            (1_000, 0, 1),
        ] {
            assert_eq!(
                workers(in_flight, cores),
                expected,
                "{in_flight} on {cores}"
            );
        }
    }

    #[test]
    fn the_runtime_has_the_workers_its_hosts_in_flight_call_for() {
        if std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
            return; // then tokio's own setting decides, as documented
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for in_flight in [1, 50, 1_000] {
            let runtime = runtime(in_flight).unwrap();
            assert_eq!(
                runtime.metrics().num_workers(),
                workers(in_flight, cores),
                "{in_flight}"
            );
        }
    }

    /// The question on a terminal blocks the flow's thread while the user
    /// reads: the hosts' tasks go on meanwhile (a held connection answers
    /// its host, Ctrl-C is caught).
    #[test]
    fn the_hosts_tasks_go_on_while_the_flow_s_thread_is_blocked() {
        let runtime = runtime(1).unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let during = runtime.block_on({
            let ticks = ticks.clone();
            async move {
                let counted = ticks.clone();
                tokio::spawn(async move {
                    loop {
                        counted.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                });
                tokio::task::yield_now().await;
                let before = ticks.load(Ordering::SeqCst);
                // As `report::confirm` waits for a line: the thread, not
                // the task, is blocked.
                std::thread::sleep(Duration::from_millis(300));
                ticks.load(Ordering::SeqCst) - before
            }
        });
        assert!(during >= 10, "only {during} ticks while blocked");
    }
}
