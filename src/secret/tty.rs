//! A line typed on the terminal without echo, which the run's interrupt
//! can end. A reader blocked in `read(2)` until Enter (as console's is)
//! cannot be: a run that counts Ctrl-C rather than dying of it would sit
//! at the prompt after it, then go on issuing once a line came. Here the
//! terminal is polled, the run asked in between whether it was
//! interrupted, and the echo put back as it was on every return (a
//! process killed by the signal, as a `pki` command is, cannot: its
//! shell puts the terminal back, as it did for console's reader).

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::termios::{LocalModes, OptionalActions, Termios, tcgetattr, tcsetattr};

use super::Secret;

/// How long one wait for the line lasts before the run is asked again.
const POLL: Duration = Duration::from_millis(100);

/// The longest line read: a passphrase, not a file pasted by mistake.
const MOST: usize = 4096;

/// Puts the terminal's modes back when dropped, whatever happened.
struct Restored<'t, T: AsFd> {
    tty: &'t T,
    saved: Termios,
}

impl<T: AsFd> Drop for Restored<'_, T> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.tty, OptionalActions::Now, &self.saved);
    }
}

/// One line read from `tty` with echo off, its newline dropped; `None`
/// when `cancelled` said so before the line was complete. `prompt` is
/// shown once the echo is off: what is typed as soon as it shows is never
/// echoed. The terminal stays line-buffered, with its signals: Ctrl-C
/// still sends SIGINT. A line that is not UTF-8 is an error (it would
/// open nothing that a file or the environment could give).
pub fn read_hidden_line(
    tty: &impl AsFd,
    prompt: impl FnOnce() -> io::Result<()>,
    cancelled: &dyn Fn() -> bool,
) -> io::Result<Option<Secret>> {
    let saved = tcgetattr(tty)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ICANON);
    tcsetattr(tty, OptionalActions::Now, &quiet)?;
    let _restored = Restored { tty, saved };
    prompt()?;
    // Room for the longest line from the start: a vector that grew would
    // leave copies of the secret behind, never wiped.
    let mut line = zeroize::Zeroizing::new(Vec::with_capacity(MOST + 512));
    let mut buffer = zeroize::Zeroizing::new([0u8; 512]);
    let timeout = Timespec::try_from(POLL).expect("a short duration");
    loop {
        if cancelled() {
            return Ok(None);
        }
        let mut fds = [PollFd::new(tty, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let n = match rustix::io::read(tty, &mut buffer[..]) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
            Err(e) => return Err(e.into()),
        };
        line.extend_from_slice(&buffer[..n]);
        // End of input (Ctrl-D on an empty line) ends the line too.
        if n == 0 || line.ends_with(b"\n") {
            while line.ends_with(b"\n") || line.ends_with(b"\r") {
                line.pop();
            }
            let text = std::str::from_utf8(&line)
                .map_err(|_| io::Error::other("what was typed is not UTF-8 text"))?;
            return Ok(Some(Secret::new(text.to_string())));
        }
        if line.len() > MOST {
            return Err(io::Error::other(format!(
                "more than {MOST} bytes typed on one line"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fd::OwnedFd;
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A pseudo-terminal: its master (the user's side) and its slave
    /// (dockhand's terminal).
    fn terminal() -> (OwnedFd, std::fs::File) {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap();
        (master, slave)
    }

    /// What the terminal showed the user so far (nothing waits for more).
    fn shown(master: &OwnedFd) -> Vec<u8> {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 256];
        let zero = Timespec::default();
        while poll(&mut [PollFd::new(master, PollFlags::IN)], Some(&zero)).unwrap() > 0 {
            match rustix::io::read(master, &mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
            }
        }
        seen
    }

    /// No prompt: the tests type when they choose.
    fn silent() -> io::Result<()> {
        Ok(())
    }

    /// Waits (at most 10 s) until the terminal has shown `text`; returns
    /// all it showed.
    fn until_shown(master: &OwnedFd, text: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains(text) {
            assert!(std::time::Instant::now() < deadline, "never shown: {text}");
            seen.extend(shown(master));
            std::thread::sleep(Duration::from_millis(5));
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    /// Typed the moment the prompt shows, as a quick user (or a script)
    /// types: the prompt is shown only once the echo is off.
    #[test]
    fn the_line_typed_is_read_without_echo_and_the_echo_comes_back() {
        let (master, slave) = terminal();
        let echo_before = tcgetattr(&slave)
            .unwrap()
            .local_modes
            .contains(LocalModes::ECHO);
        assert!(echo_before, "a new terminal echoes");
        let reader = std::thread::spawn({
            let slave = slave.try_clone().unwrap();
            move || {
                let prompt = || {
                    rustix::io::write(&slave, b"Passphrase: ")
                        .map(|_| ())
                        .map_err(Into::into)
                };
                read_hidden_line(&slave, prompt, &|| false)
            }
        });
        until_shown(&master, "Passphrase: ");
        rustix::io::write(&master, "s3cret pass \u{e9}\n".as_bytes()).unwrap();
        let line = reader.join().unwrap().unwrap().unwrap();
        assert_eq!(line.as_str(), "s3cret pass \u{e9}");
        assert!(
            !String::from_utf8_lossy(&shown(&master)).contains("s3cret"),
            "the passphrase is never echoed"
        );
        let after = tcgetattr(&slave).unwrap().local_modes;
        assert!(after.contains(LocalModes::ECHO), "echo is back");
    }

    #[test]
    fn an_interrupt_ends_the_wait_and_puts_the_echo_back() {
        let (master, slave) = terminal();
        let interrupted = Arc::new(AtomicBool::new(false));
        let reader = std::thread::spawn({
            let interrupted = interrupted.clone();
            move || {
                let cancelled = || interrupted.load(Ordering::SeqCst);
                read_hidden_line(&slave, silent, &cancelled).map(|l| (l, slave))
            }
        });
        // Half a line typed, then the interrupt.
        rustix::io::write(&master, b"half").unwrap();
        std::thread::sleep(Duration::from_millis(250));
        assert!(!reader.is_finished(), "it waits for the line");
        interrupted.store(true, Ordering::SeqCst);
        let (line, slave) = reader.join().unwrap().unwrap();
        assert!(line.is_none());
        let after = tcgetattr(&slave).unwrap().local_modes;
        assert!(after.contains(LocalModes::ECHO), "echo is back");
    }

    #[test]
    fn end_of_input_a_line_too_long_or_not_text_ends_the_read() {
        let (master, slave) = terminal();
        // Ctrl-D (VEOF) on an empty line: an empty line, said empty later.
        rustix::io::write(&master, b"\x04").unwrap();
        let line = read_hidden_line(&slave, silent, &|| false)
            .unwrap()
            .unwrap();
        assert_eq!(line.as_str(), "");
        rustix::io::write(&master, b"caf\xe9\n").unwrap();
        let err = read_hidden_line(&slave, silent, &|| false).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        let long = vec![b'x'; 600];
        let writer = std::thread::spawn(move || {
            for _ in 0..9 {
                rustix::io::write(&master, &long).unwrap();
                rustix::io::write(&master, b"\x04").unwrap();
            }
            master
        });
        let err = read_hidden_line(&slave, silent, &|| false).unwrap_err();
        assert!(err.to_string().contains("more than 4096 bytes"), "{err}");
        drop(writer.join().unwrap());
    }
}
