//! The store's lock: one run writes at a time. A run that finds the store
//! locked says so once, naming the process that holds it (another apply
//! may sit at the CA passphrase prompt for as long as its user is away),
//! and waits by polling rather than in a blocking `flock`: an interrupt
//! the run counts then ends the wait, where a blocked `flock` would have
//! outlived any Ctrl-C but a lethal one.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{FlockOperation, flock};

use super::{Outcome, Pair, PkiStore};
use crate::core::event::Hold;
use crate::core::pki::{Purpose, Sans};
use crate::error::{Error, Result};

/// How often a waiting run tries the lock again.
const RETRY: Duration = Duration::from_millis(100);

/// The store's lock; released when dropped (or when its process ends).
pub struct StoreLock {
    file: File,
}

impl Drop for StoreLock {
    /// The pid goes first, while the lock is still held: a waiter never
    /// names a holder that is gone (the next holder may be no dockhand).
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

/// How a run waits on what it does not decide (a store another run holds,
/// its user at the CA passphrase prompt): where it says it waits, and what
/// ends the wait.
#[derive(Clone)]
pub struct Waiting {
    say: Arc<dyn Fn(String) + Send + Sync>,
    cancelled: Arc<dyn Fn() -> bool + Send + Sync>,
    /// What the CA passphrase prompt holds (a run's progress bars).
    hold: Hold,
}

impl Default for Waiting {
    /// Said on standard error, where the CA passphrase is asked for too;
    /// never cancelled (a `pki` command dies of its Ctrl-C).
    fn default() -> Self {
        Waiting::new(
            |message| {
                let _ = console::Term::stderr().write_line(&format!("warning: {message}"));
            },
            || false,
        )
    }
}

impl Waiting {
    pub fn new(
        say: impl Fn(String) + Send + Sync + 'static,
        cancelled: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Waiting {
        Waiting {
            say: Arc::new(say),
            cancelled: Arc::new(cancelled),
            hold: Hold::default(),
        }
    }

    /// The same, its prompt asked with `hold`'s output held.
    pub fn holding(self, hold: Hold) -> Waiting {
        Waiting { hold, ..self }
    }

    /// Runs `ask` (a prompt) with the run's output out of its way.
    pub fn at_prompt<R>(&self, ask: impl FnOnce() -> R) -> R {
        self.hold.during(ask)
    }

    /// Whether the wait is to end (the run was interrupted).
    pub fn cancelled(&self) -> bool {
        (self.cancelled)()
    }
}

/// The store, locked: what an apply issues is decided and written under
/// one lock, so another run cannot change the CA between its steps.
pub struct Locked<'s> {
    store: &'s PkiStore,
    /// Also how the CA passphrase prompt waits.
    wait: Waiting,
    _lock: StoreLock,
}

impl PkiStore {
    /// The store, locked once the lock is free, as `wait` says.
    pub fn locked(&self, wait: &Waiting) -> Result<Locked<'_>> {
        let lock = self.lock_waiting(wait)?;
        Ok(Locked {
            store: self,
            wait: wait.clone(),
            _lock: lock,
        })
    }
}

impl Locked<'_> {
    /// [`PkiStore::ensure_ca`], under this lock.
    pub fn ensure_ca(&self) -> Result<(Pair, bool)> {
        self.store.ensure_ca_locked()
    }

    /// [`PkiStore::ensure_client`], under this lock.
    pub fn ensure_client(&self, name: &str, now: i64) -> Result<(Pair, Outcome)> {
        let client = (name, Purpose::Client, None);
        (self.store).ensure_pair_in_lock("clients", client, now, &self.wait)
    }

    /// Server certificates for `hosts`, each as [`PkiStore::ensure_server`]
    /// gives it, with the CA read and checked once for all of them (a
    /// fleet of 10,000 hosts did both 10,000 times). `each` gets every
    /// host's pair in turn.
    pub fn ensure_servers<'h>(
        &self,
        hosts: impl IntoIterator<Item = (&'h str, Sans)>,
        now: i64,
        mut each: impl FnMut(&'h str, Pair, Outcome),
    ) -> Result<()> {
        let store = self.store;
        let (ca, _) = store.ensure_ca_locked()?;
        for (host, sans) in hosts {
            super::validate_name(host)?;
            let server = (host, Purpose::Server, Some(&sans));
            let (pair, outcome) =
                store.ensure_pair_locked(&ca, "servers", server, now, &self.wait)?;
            each(host, pair, outcome);
        }
        store.checked.save()
    }

    /// Every CA a client trusts, read under this lock.
    pub fn trust_bundle(&self) -> Result<Option<Vec<u8>>> {
        self.store.trust_bundle()
    }
}

/// An exclusive lock on the file `path` (created 0600), waited for as
/// `wait` says. Whoever holds it writes its pid there, for the waiters'
/// message.
pub fn acquire(path: &Path, wait: &Waiting) -> Result<StoreLock> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::file(path, e))?;
    let mut said = false;
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::WOULDBLOCK) => {}
            Err(e) => return Err(Error::file(path, e)),
        }
        if !said {
            said = true;
            (wait.say)(format!(
                "{}: another dockhand run{} holds the PKI store's lock: waiting for it (Ctrl-C stops waiting)",
                path.display(),
                holder(path)
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default()
            ));
        }
        if wait.cancelled() {
            return Err(Error::file(
                path,
                "interrupted while waiting for the PKI store's lock: nothing was issued or changed",
            ));
        }
        std::thread::sleep(RETRY);
    }
    // Only the holder writes: the pid it leaves is the one holding it now.
    let pid = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.write_all(pid.as_bytes()))
        .map_err(|e| Error::file(path, e))?;
    Ok(StoreLock { file })
}

/// The pid the lock's holder wrote, if the file holds one (a store locked
/// by an older dockhand holds an empty file). Only its first bytes are
/// read: a pid is short, whatever else the file may hold.
fn holder(path: &Path) -> Option<u32> {
    let mut text = Vec::with_capacity(16);
    File::open(path)
        .ok()?
        .take(16)
        .read_to_end(&mut text)
        .ok()?;
    std::str::from_utf8(&text).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A wait that records what it says, cancelled once `cancel` is set.
    fn recorded(cancel: Arc<AtomicBool>) -> (Waiting, Arc<Mutex<Vec<String>>>) {
        let said = Arc::new(Mutex::new(Vec::new()));
        let into = said.clone();
        let wait = Waiting::new(
            move |message| into.lock().unwrap().push(message),
            move || cancel.load(Ordering::SeqCst),
        );
        (wait, said)
    }

    #[test]
    fn a_free_lock_is_taken_at_once_and_says_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let (wait, said) = recorded(Arc::new(AtomicBool::new(false)));
        let lock = acquire(&path, &wait).unwrap();
        assert!(said.lock().unwrap().is_empty());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        drop(lock);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "", "released, it names no holder");
        // Released: taken again, as a later run would.
        acquire(&path, &wait).unwrap();
    }

    /// `flock` locks belong to the open file: a second acquire in this
    /// process waits as another process would.
    #[test]
    fn a_held_lock_is_waited_for_said_once_with_its_holder_then_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let held = acquire(&path, &Waiting::default()).unwrap();
        let (wait, said) = recorded(Arc::new(AtomicBool::new(false)));
        let waiter = std::thread::spawn({
            let path = path.clone();
            move || acquire(&path, &wait).map(|_| ())
        });
        std::thread::sleep(Duration::from_millis(450));
        assert!(!waiter.is_finished(), "it waits while the lock is held");
        drop(held);
        waiter.join().unwrap().unwrap();
        let said = said.lock().unwrap();
        assert_eq!(said.len(), 1, "said once, not at every try: {said:?}");
        let pid = std::process::id();
        assert!(
            said[0].contains(&format!("another dockhand run (pid {pid}) holds")),
            "{said:?}"
        );
        assert!(said[0].starts_with(&path.display().to_string()), "{said:?}");
    }

    #[test]
    fn an_interrupt_ends_the_wait_with_an_error_naming_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let held = acquire(&path, &Waiting::default()).unwrap();
        let cancel = Arc::new(AtomicBool::new(false));
        let (wait, said) = recorded(cancel.clone());
        let waiter = std::thread::spawn({
            let path = path.clone();
            move || acquire(&path, &wait).map(|_| ())
        });
        std::thread::sleep(Duration::from_millis(250));
        cancel.store(true, Ordering::SeqCst);
        let err = waiter.join().unwrap().unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains("interrupted while waiting"), "{err}");
        assert_eq!(said.lock().unwrap().len(), 1);
        // The holder's lock and pid are untouched.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        drop(held);
    }

    #[test]
    fn a_lock_file_without_a_pid_names_no_holder() {
        let dir = tempfile::tempdir().unwrap();
        for (text, holder_is) in [
            ("", None),
            ("\n", None),
            ("4242\n", Some(4242)),
            ("not a pid", None),
            ("99999999999999999999", None),
            ("\u{1b}[31m12", None),
        ] {
            let path = dir.path().join("lock");
            std::fs::write(&path, text).unwrap();
            assert_eq!(holder(&path), holder_is, "{text:?}");
        }
    }
}
