//! The runtime every command that visits hosts runs on, sized for the
//! hosts it has in flight.

/// The runtime for `in_flight` hosts at once (`--forks`).
///
/// A host's work waits on the network almost all the time; its CPU is a
/// few handshakes. Up to [`HOSTS_PER_WORKER`] hosts in flight, one thread
/// runs everything: the command's flow (`block_on`) and the hosts' tasks.
/// Handing work between threads costs wake-ups (a futex and an eventfd
/// write each), and on a fleet spread over `--forks` those cost more than
/// the work they share: on 10,000 simulated hosts with 50 forks, a worker
/// per core spent 2 to 12% more of dockhand's CPU per host than one
/// worker beside the command's thread (five pairs of runs), and that a
/// median of 3% more than one thread alone (nine pairs; only 50 forks was
/// measured; docs/PERFORMANCE.md). Past that many hosts in flight the
/// handshakes are work enough for more cores: with 1,000 forks one worker
/// took a third longer than two. There a worker thread runs the hosts'
/// tasks for every [`HOSTS_PER_WORKER`] of them, at most one a core.
///
/// On one thread, nothing the flow does may block it: a blocked thread
/// stops every host's task (held connections read nothing from their
/// hosts, and a Ctrl-C, though counted on a thread of its own, stops no
/// host until it ends). What blocks (the question on a terminal, which
/// waits while the user reads; the PKI's issuing, which waits for the
/// store's lock) goes [`aside`].
///
/// tokio's own `TOKIO_WORKER_THREADS`, when set, still decides, on a
/// multi-threaded runtime: a fleet whose logins sign with RSA keys
/// (milliseconds each) may want more cores for its first wave.
pub fn runtime(in_flight: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = match std::env::var_os("TOKIO_WORKER_THREADS") {
        Some(_) => tokio::runtime::Builder::new_multi_thread(),
        None => match workers(in_flight, cores) {
            1 => tokio::runtime::Builder::new_current_thread(),
            workers => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(workers);
                builder
            }
        },
    };
    builder.enable_all().build()
}

/// Runs `blocking` on a thread of the runtime's blocking pool and waits
/// for it without blocking the runtime: the hosts' tasks go on meanwhile.
/// A panic in `blocking` goes on in the caller.
pub async fn aside<R: Send + 'static>(blocking: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::task::spawn_blocking(blocking).await {
        Ok(value) => value,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
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
    fn one_thread_runs_up_to_one_worker_s_share_of_hosts_and_workers_run_more() {
        if std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
            return; // then tokio's own setting decides, as documented
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for in_flight in [1, 50, HOSTS_PER_WORKER, HOSTS_PER_WORKER + 1, 1_000] {
            let handle = runtime(in_flight).unwrap().handle().clone();
            let expected = workers(in_flight, cores);
            if expected == 1 {
                assert_eq!(
                    handle.runtime_flavor(),
                    tokio::runtime::RuntimeFlavor::CurrentThread,
                    "{in_flight}"
                );
            } else {
                assert_eq!(handle.metrics().num_workers(), expected, "{in_flight}");
            }
        }
    }

    /// The question on a terminal waits while the user reads, aside: the
    /// hosts' tasks on the runtime go on meanwhile (a held connection
    /// reads its host, a Ctrl-C stops new hosts). Waiting on the
    /// runtime's own thread instead (as `std::thread::sleep` here, without
    /// `aside`) gives them no tick at all.
    #[test]
    fn the_hosts_tasks_go_on_while_a_blocking_wait_runs_aside() {
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
                // As `report::confirm` waits for a line.
                let answer = aside(|| {
                    std::thread::sleep(Duration::from_millis(300));
                    "yes"
                })
                .await;
                assert_eq!(answer, "yes");
                ticks.load(Ordering::SeqCst) - before
            }
        });
        assert!(during >= 10, "only {during} ticks while the wait ran aside");
    }

    #[test]
    #[should_panic(expected = "the question's own panic")]
    fn a_panic_aside_goes_on_in_the_caller() {
        runtime(1)
            .unwrap()
            .block_on(aside(|| panic!("the question's own panic")));
    }
}
