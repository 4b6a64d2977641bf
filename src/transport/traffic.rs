//! What a host's run cost on the wire: SSH logins, commands, channels,
//! the round trips dockhand waited on after connecting, and the TCP probes
//! of verification. Wide-area links make every round trip count once per
//! step; these counts show where they go (`-v`, `--format json`, the bench).
//!
//! A round trip is a wait on the host: a command's answer, a channel that
//! had to be opened on demand, a command's input held until the host
//! opened the channel's window, a tunnel. A connection's own handshake (TCP,
//! key exchange, authentication, its first channel, as `ssh host CMD`
//! pays) is counted as a login, not in round trips. Probes are counted
//! apart: each is a TCP connection (with its TLS handshake) of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The counts of one host, as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Traffic {
    /// SSH connections made (the run's own, a fresh login of verify).
    pub logins: u32,
    /// Commands run (exec or held).
    pub commands: u32,
    /// Channels opened: sessions and tunnels.
    pub channels: u32,
    /// Waits on the host after connecting.
    pub round_trips: u32,
    /// TCP connections of verification's probes (the TLS port).
    pub probes: u32,
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, other: Traffic) {
        self.logins += other.logins;
        self.commands += other.commands;
        self.channels += other.channels;
        self.round_trips += other.round_trips;
        self.probes += other.probes;
    }
}

impl std::fmt::Display for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} round trip{} after connect ({} command{}, {} login{}, {} probe{})",
            self.round_trips,
            plural(self.round_trips),
            self.commands,
            plural(self.commands),
            self.logins,
            plural(self.logins),
            self.probes,
            plural(self.probes)
        )
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The counters of one host, shared by every connection made to it (a
/// target's clones share them).
#[derive(Debug, Clone, Default)]
pub struct Meter(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    logins: AtomicU32,
    commands: AtomicU32,
    channels: AtomicU32,
    round_trips: AtomicU32,
    probes: AtomicU32,
}

impl Meter {
    pub fn login(&self) {
        self.0.logins.fetch_add(1, Ordering::Relaxed);
        // A login's first channel is part of it.
        self.0.channels.fetch_add(1, Ordering::Relaxed);
    }

    /// A command sent on a channel that was open already: one wait, for
    /// its answer.
    pub fn command(&self) {
        self.0.commands.fetch_add(1, Ordering::Relaxed);
        self.0.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// A command's input that waited for the host to open the channel's
    /// window: OpenSSH gives a session channel none until it started the
    /// command, so input sent with the command waits a round trip more.
    pub fn window(&self) {
        self.0.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// A channel opened: `waited` when dockhand had to wait for it.
    pub fn channel(&self, waited: bool) {
        self.0.channels.fetch_add(1, Ordering::Relaxed);
        if waited {
            self.0.round_trips.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn probe(&self) {
        self.0.probes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn read(&self) -> Traffic {
        let get = |c: &AtomicU32| c.load(Ordering::Relaxed);
        Traffic {
            logins: get(&self.0.logins),
            commands: get(&self.0.commands),
            channels: get(&self.0.channels),
            round_trips: get(&self.0.round_trips),
            probes: get(&self.0.probes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_their_counts_and_the_line_says_them() {
        let meter = Meter::default();
        let other = meter.clone();
        meter.login();
        other.command();
        other.channel(true);
        meter.channel(false);
        meter.probe();
        let seen = meter.read();
        assert_eq!(
            seen,
            Traffic {
                logins: 1,
                commands: 1,
                channels: 3,
                round_trips: 2,
                probes: 1
            }
        );
        assert_eq!(
            seen.to_string(),
            "2 round trips after connect (1 command, 1 login, 1 probe)"
        );
        let mut sum = seen;
        sum += seen;
        assert_eq!(sum.round_trips, 4);
    }
}
