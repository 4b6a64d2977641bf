//! The Debian releases the lab boots.

use serde::{Deserialize, Serialize};

/// The Debian releases a lab host can run. They differ where dockhand must
/// care: bullseye ships dockerd 20.10 and OpenSSH 8.4 (sntrup761 only under
/// its `@openssh.com` name); bookworm dockerd 20.10 (no `--validate`) and
/// OpenSSH 9.2; trixie dockerd 26.1 (with `--validate`) and OpenSSH 10.0
/// (sshd split into `sshd` and `sshd-session`); forky, today's testing,
/// dockerd 28 and OpenSSH 10.6, whose `sshd -T` prints keywords in mixed
/// case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    Bullseye,
    #[default]
    Bookworm,
    Trixie,
    Forky,
}

impl Release {
    pub const ALL: [Release; 4] = [
        Release::Bullseye,
        Release::Bookworm,
        Release::Trixie,
        Release::Forky,
    ];

    /// The Debian suite name, as debootstrap and apt know it.
    pub fn suite(self) -> &'static str {
        match self {
            Release::Bullseye => "bullseye",
            Release::Bookworm => "bookworm",
            Release::Trixie => "trixie",
            Release::Forky => "forky",
        }
    }

    /// The Debian version number (`VERSION_ID` in /etc/os-release; testing
    /// has none yet, but this is the number it will be released as).
    pub fn version(self) -> &'static str {
        match self {
            Release::Bullseye => "11",
            Release::Bookworm => "12",
            Release::Trixie => "13",
            Release::Forky => "14",
        }
    }

    /// The suite whose debootstrap script builds this one when the
    /// machine's debootstrap is older than the release (Debian 12's has no
    /// `forky`): testing is built like unstable.
    pub(super) fn derives_from(self) -> Option<&'static str> {
        match self {
            Release::Forky => Some("sid"),
            _ => None,
        }
    }
}
