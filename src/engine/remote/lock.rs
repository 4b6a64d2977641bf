//! The host lock: `flock` on the state directory's lock file, held by a
//! command that then waits on its input, so it lives exactly as long as
//! the connection. However dockhand ends, the lock goes with it.

use super::{Kind, Layout, Script, fill, header, quote};

/// How long an apply waits for another one to let go of the host (a run
/// just before this one may still be closing its connection).
pub const HOST_LOCK_WAIT: u32 = 30;

/// The exit status of `flock` that has waited in vain.
const BUSY: i32 = 75;

/// The directory is root's alone (0700) and the lock file 0600, whatever
/// an earlier version left: nobody else can open it, so nobody else can
/// hold it and stall every apply.
const LOCK: &str = "mkdir -p -- @DIR@ && chmod 0700 @DIR@ && : >> @LOCK@ && chmod 0600 @LOCK@ \\
  && exec flock -w @WAIT@ -E @BUSY@ @LOCK@ sh -c 'echo locked; exec cat >/dev/null'\n";

pub fn lock(layout: &Layout, wait: u32) -> Script {
    let text = header(Kind::Lock, layout, true)
        + &fill(
            LOCK,
            &[
                ("DIR", &quote(layout.state_dir)),
                ("WAIT", &wait.to_string()),
                ("BUSY", &BUSY.to_string()),
                ("LOCK", &quote(&layout.host_lock())),
            ],
        );
    Script::with_input(Kind::Lock, text, Vec::new())
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
