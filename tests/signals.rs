//! Ctrl-C and SIGTERM, counted on a thread of their own. A test binary of
//! its own: once counted, the signals no longer stop the process that
//! listens, and no other test should run in it.

use std::time::{Duration, Instant};

use dockhand::engine::fleet::Interrupt;
use rustix::process::{Signal, getpid, kill_process};

/// Here no runtime runs at all, as before a command's runtime starts its
/// flow (while it loads its inputs), and the count still comes at once.
/// (Counted by a task on the command's runtime, it would wait for the
/// flow, whose first hosts could start before it is read.)
#[test]
fn a_signal_is_counted_while_no_runtime_runs() {
    let interrupt = Interrupt::default();
    interrupt.listen_for_signals().unwrap();
    kill_process(getpid(), Signal::TERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while interrupt.count() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(interrupt.count(), 1);
}
