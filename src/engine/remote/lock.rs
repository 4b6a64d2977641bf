//! The host lock, and what an interrupted run left, put right under it.
//!
//! `flock` on the state directory's lock file, through a descriptor the
//! command keeps open while it waits on its input: it lives exactly as long
//! as the connection, and however dockhand ends, the lock goes with it. The
//! lock is taken before the gather, so no other apply changes the host
//! between a plan and its writes.
//!
//! Once it holds the lock, the command settles what an earlier run left
//! (the gather reports the same to `plan`), in this order:
//!
//! 1. a commit still running (its connection dropped) is stopped;
//! 2. an sshd dead-man switch still armed is honoured now, deliberately:
//!    its revert runs (the previous drop-in goes back and ssh reloads), so
//!    no timer fires after this run's success;
//! 3. where handlers are still owed (the run replaced files but did not
//!    get through their handlers), every backup is put back: this run
//!    plans from the files that were in effect, writes them again with
//!    their own backups and switch, and runs the owed handlers with them,
//!    never without a rollback point;
//! 4. the backups and temp files left are removed.
//!
//! Globs and builtins where nothing is left: a no-op pays no fork for it.
//!
//! The gather can ride on the lock: its text is part of the lock's script,
//! and runs, under the lock, as soon as the lock is settled. Its answer
//! comes before the line that says the command now holds
//! ([`HOLDING`](crate::transport::HOLDING)): an apply's lock and gather
//! are one round trip.
//!
//! While it holds, the command's shell runs the scripts that follow on
//! its channel, one at a time (framed as [`held`](crate::transport::held)
//! says): staging with the commit, the finish and a rollback each cost one
//! round trip, with no channel to open, no window to wait for (OpenSSH
//! opens a channel's window only once its command started, so input sent
//! with a new command waits a round trip) and no sudo. Each runs in a
//! session of its own (`setsid`), its input its only stdin, as a command
//! of its own would; the lock's descriptor is not theirs. Each runs in the
//! background once its input was read, so the shell waits in `read`: the
//! connection going ends it, and the lock, even while a script hangs.
//!
//! As root the script goes on `sh -c`'s command line; through sudo on
//! stdin (`sh -s`), so sudo's log line stays short. No program stands
//! between the login shell and the script (a `sh -c` that read the gather through
//! `head | sh` cost every host two programs' start on every run).

use super::gather::PRIVATE_BY_GATHER;
use super::restore::{leftovers_in_d, stop_commit};
use super::{Kind, Layout, Script, Template, fill, header, private, quote, template};

/// How long an apply waits for another one to let go of the host (a run
/// just before this one may still be closing its connection).
pub const HOST_LOCK_WAIT: u32 = 30;

/// The exit status of `flock` that has waited in vain.
const BUSY: i32 = 75;

/// Where systemd keeps the transient units `systemd-run` makes.
pub const TRANSIENT_UNITS: &str = "/run/systemd/transient";

/// The directory is root's alone (0700) and the lock file 0600, whatever
/// an earlier version left: nobody else can open it, so nobody else can
/// hold it and stall every apply.
static LOCK: Template = template!("lock.sh");

/// The gather, as it is: it runs in a command substitution of its own
/// (see `gather`), so its variables, its positional parameters and its
/// `set +u` stay there, and its stdin is not the lock's (the rest of this
/// script, then the channel held open): nothing it runs can eat the
/// script or wait on the channel.
const THEN: &str = "@GATHER@";

/// The lock, settling what an earlier run left in `dirs` (the managed
/// files' directories) and its armed switches, then running `then` (the
/// gather) while it holds.
pub fn lock(
    layout: &Layout,
    wait: u32,
    dirs: &[String],
    transient: &str,
    then: Option<&Script>,
) -> Script {
    let then_line = then.map_or_else(String::new, |script| {
        fill(THEN, &[("GATHER", &script.text)])
    });
    // An apply's gather keeps the directory private itself, where its
    // `stat` found it or the lock open (see `gather`).
    let private = match then {
        Some(script) if script.text.contains(PRIVATE_BY_GATHER) => String::new(),
        _ => private(layout) + "\n",
    };
    let dirs: Vec<String> = dirs.iter().map(|d| quote(d)).collect();
    let text = header(Kind::Lock, layout, true)
        + &fill(
            &LOCK,
            &[
                ("DIR", &quote(layout.state_dir)),
                ("WAIT", &wait.to_string()),
                ("BUSY", &BUSY.to_string()),
                ("LOCK", &quote(&layout.host_lock())),
                (
                    "STOP_COMMIT",
                    &stop_commit(layout, "; said=\"$said stopped=$g\""),
                ),
                ("LEFTOVERS", &leftovers_in_d()),
                ("PENDING", &quote(&layout.pending_handlers())),
                ("TRANSIENT", &quote(transient)),
                (
                    "DIRS",
                    // None at all: `set --` leaves nothing to look in.
                    &dirs.join(" "),
                ),
                ("THEN", &then_line),
                ("PRIVATE", &private),
                ("HOLDING", &quote(crate::transport::HOLDING)),
                ("RUN", crate::transport::held::RUN),
            ],
        );
    Script::plain(Kind::Lock, text)
}

/// How a lock command that ended (instead of holding) ended.
#[derive(Debug, PartialEq, Eq)]
pub enum LockOutcome {
    /// Another apply held the lock for the whole wait.
    Busy,
    Failed,
}

impl LockOutcome {
    pub fn of(status: Option<i32>) -> LockOutcome {
        if status == Some(BUSY) {
            LockOutcome::Busy
        } else {
            LockOutcome::Failed
        }
    }
}

/// What the lock settled, from its first line (`locked honoured=UNIT
/// failed=UNIT removed=PATH …`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Switches of an earlier run whose revert ran now.
    pub honoured: Vec<String>,
    /// Switches whose revert could not run (their timer is stopped).
    pub failed: Vec<String>,
    /// Files put back from their backups (handlers were owed).
    pub restored: Vec<String>,
    /// Backups and temp files removed.
    pub removed: Vec<String>,
    /// A commit still running, stopped (its process group).
    pub stopped: Vec<String>,
}

impl Settled {
    pub fn parse(line: &str) -> Settled {
        let mut settled = Settled::default();
        let words = line.strip_prefix("locked").unwrap_or("");
        // Paths may hold spaces: a word that is no `key=` goes with the one
        // before it.
        let mut last: Option<&mut Vec<String>> = None;
        for word in words.split(' ').filter(|w| !w.is_empty()) {
            let (list, value) = match word.split_once('=') {
                Some(("honoured", v)) => (&mut settled.honoured, v),
                Some(("failed", v)) => (&mut settled.failed, v),
                Some(("removed", v)) => (&mut settled.removed, v),
                Some(("restored", v)) => (&mut settled.restored, v),
                Some(("stopped", v)) => (&mut settled.stopped, v),
                _ => {
                    if let Some(Some(previous)) = last.as_mut().map(|l| l.last_mut()) {
                        previous.push(' ');
                        previous.push_str(word);
                    }
                    continue;
                }
            };
            list.push(value.to_string());
            last = Some(list);
        }
        settled
    }

    /// What to tell the user, one line each.
    pub fn said(&self) -> Vec<String> {
        let mut said = Vec::new();
        for group in &self.stopped {
            said.push(format!(
                "an interrupted run's commit was still running (process group {group}): it was stopped"
            ));
        }
        for unit in &self.honoured {
            said.push(format!(
                "an interrupted run had left the sshd dead-man switch {unit} armed: it was fired now (the previous sshd drop-in is back and ssh reloaded), and this run plans from there"
            ));
        }
        for unit in &self.failed {
            said.push(format!(
                "an interrupted run had left the sshd dead-man switch {unit} armed, and its revert failed: its timer is stopped; check the sshd drop-in"
            ));
        }
        if !self.restored.is_empty() {
            said.push(format!(
                "an interrupted run had replaced files without running all their handlers: put back {} from their backups; this run writes them again and runs the handlers",
                self.restored.join(", ")
            ));
        }
        if !self.removed.is_empty() {
            said.push(format!(
                "removed what an interrupted run left: {}",
                self.removed.join(", ")
            ));
        }
        said
    }
}
