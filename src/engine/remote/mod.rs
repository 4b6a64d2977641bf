//! Every shell script dockhand runs on a host, one file each: the gather,
//! the host lock, staging, the commit, the restore and the handlers run
//! again after it, the finish, the ping and the probes of verify. Each is
//! a [`Script`]: its [`Kind`], its text and the data it reads on stdin.
//!
//! The shell is kept as shell: templates (`*.sh` beside this file, or
//! one-line `const`s) with `@NAME@` holes, filled by [`fill`] with words
//! quoted by [`quote`] or with lines rendered from smaller templates, and
//! sent without their comment lines (`strip.rs`). No shell is built
//! anywhere else. Every script starts with the same header
//! (its kind, `set -u`, a private umask, a known locale and PATH), and its
//! output is read back as [`Line`]s, not searched for substrings.
//!
//! The tests in `tests.rs` run every script under `/bin/sh` (dash) against
//! a temporary root, with `systemctl`, `sshd`, `dockerd` and `systemd-run`
//! stubbed, and assert the state each leaves; `shellcheck` reads every
//! script rendered.

mod commit;
mod gather;
mod handlers;
mod lock;
mod probe;
mod restore;
mod stage;
mod strip;
#[cfg(test)]
mod tests;

use crate::core::input::playbook::Handler;
use crate::core::parent_dir as parent;
pub use crate::core::shell_quote as quote;
pub use commit::{CommitOutcome, commit};
pub use gather::{MAX_CONTENT_BYTES, gather, managed_dirs};
pub use handlers::START_DOCKER;
pub use lock::{HOST_LOCK_WAIT, LockOutcome, Settled, TRANSIENT_UNITS, lock};
pub use probe::{
    dial_stdio, docker_journal, docker_state, login, ping, ping_reply, sshd_settings, start_docker,
};
pub use restore::{finish, handlers_again, restore};
pub use stage::{stage, stage_input};

/// A template file beside this module, as it travels: read once, without
/// its comment lines (see `strip.rs`).
type Template = std::sync::LazyLock<String>;

/// The [`Template`] of a `.sh` file beside this module.
macro_rules! template {
    ($file:literal) => {
        std::sync::LazyLock::new(|| super::strip::without_comments(include_str!($file)))
    };
}
use template;

/// Where the scripts keep their state on a host, and the PATH they run
/// with. Hosts get [`Layout::HOST`]; the tests point both at a temporary
/// root and their stubs.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    pub state_dir: &'a str,
    pub path: &'a str,
    /// sshd's main configuration file; relative `Include`s and the default
    /// host keys are in its directory.
    pub sshd_config: &'a str,
    /// systemd's runtime directory: a daemon-reload or a boot makes its
    /// `generator` directory anew, and `systemctl set-property --runtime`
    /// writes into its `system.control` (see `host-facts.sh`).
    pub systemd_run: &'a str,
    /// systemd's configuration directory, whose `system.control` takes
    /// what `systemctl set-property` sets for good.
    pub systemd_etc: &'a str,
    /// Where the cgroup hierarchy is mounted: a unit's `cgroup.events`
    /// says whether anything of it runs.
    pub cgroups: &'a str,
}

impl Layout<'static> {
    pub const HOST: Layout<'static> = Layout {
        state_dir: "/var/lib/dockhand",
        path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        sshd_config: "/etc/ssh/sshd_config",
        systemd_run: "/run/systemd",
        systemd_etc: "/etc/systemd",
        cgroups: "/sys/fs/cgroup",
    };
}

impl Layout<'_> {
    /// The lock an apply holds on a host from before its first write until
    /// its connection closes: two applies never interleave on one host.
    pub fn host_lock(&self) -> String {
        format!("{}/apply.lock", self.state_dir)
    }

    /// The process group of a running commit, so that a rollback after its
    /// deadline can stop it (a handler may hang: a docker that never
    /// starts).
    pub fn commit_group(&self) -> String {
        format!("{}/commit.pgid", self.state_dir)
    }

    /// Handlers owed by a commit, recorded on the host before any file is
    /// replaced and cleared once they ran: a run killed in between leaves
    /// them here, and the next run's gather picks them up and runs them.
    pub fn pending_handlers(&self) -> String {
        format!("{}/pending-handlers", self.state_dir)
    }

    /// What the host's programs said (what they can do, and sshd's
    /// effective settings), as the last apply asked them, under the
    /// identity of every file they read (see `gather`).
    pub fn kept_facts(&self) -> String {
        format!("{}/host-facts", self.state_dir)
    }

    /// What the managed regular files said (digests, and the contents
    /// shown), as the last apply or fresh login read them, under their
    /// identities (see `gather`).
    pub fn kept_files(&self) -> String {
        format!("{}/host-files", self.state_dir)
    }

    /// Where the dead-man switch `unit` keeps its commands: armed by the
    /// commit, removed by itself when it runs, or by a disarm.
    pub fn revert_file(&self, unit: &str) -> String {
        format!("{}/{unit}.revert", self.state_dir)
    }
}

/// The commit's process group record on hosts (tests wait on it).
pub const COMMIT_GROUP: &str = "/var/lib/dockhand/commit.pgid";

/// What a script is for: the fake fleet and the logs tell scripts apart by
/// it (the header's first line names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Gather,
    Lock,
    Stage,
    Commit,
    Restore,
    HandlersAgain,
    Finish,
    Ping,
    Login,
    SshdSettings,
    DockerState,
    StartDocker,
    DockerJournal,
    DialStdio,
}

const KINDS: [(Kind, &str); 14] = [
    (Kind::Gather, "gather"),
    (Kind::Lock, "lock"),
    (Kind::Stage, "stage"),
    (Kind::Commit, "commit"),
    (Kind::Restore, "restore"),
    (Kind::HandlersAgain, "handlers-again"),
    (Kind::Finish, "finish"),
    (Kind::Ping, "ping"),
    (Kind::Login, "login"),
    (Kind::SshdSettings, "sshd-settings"),
    (Kind::DockerState, "docker-state"),
    (Kind::StartDocker, "start-docker"),
    (Kind::DockerJournal, "docker-journal"),
    (Kind::DialStdio, "dial-stdio"),
];

/// Group's and others' access taken from the state directory and the lock
/// (by the lock, or by an apply's gather where it has no `stat` to look
/// with): one command, failing the script that runs it.
fn private(layout: &Layout) -> String {
    format!(
        "chmod go= -- {} {} || {{ echo 'dockhand: the state directory could not be made private' >&2; exit 1; }}",
        quote(layout.state_dir),
        quote(&layout.host_lock())
    )
}

/// The header's first line: `# dockhand: KIND`.
const TAG: &str = "# dockhand: ";

impl Kind {
    pub fn name(self) -> &'static str {
        KINDS
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("?", |(_, n)| n)
    }

    /// The kind of a script as sent: its text is on stdin, or in the
    /// command (`sh -c '…'`) when stdin carries data.
    pub fn of(command: &str, stdin: &[u8]) -> Option<Kind> {
        let head = &stdin[..stdin.len().min(64)];
        let named = |text: &str| {
            let rest = &text[text.find(TAG)? + TAG.len()..];
            let name = rest.split(['\n', '\'']).next()?;
            KINDS.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
        };
        named(&String::from_utf8_lossy(head)).or_else(|| named(command))
    }

    /// Whether a script's text holds one of this kind within it, after its
    /// own header (the lock's gather).
    pub fn within(self, text: &[u8]) -> bool {
        String::from_utf8_lossy(text).contains(&format!("\n{TAG}{}\n", self.name()))
    }
}

/// The largest plain script sent on the command line (Linux takes one
/// argument up to 128 KiB). There, the host runs it as soon as it has the
/// command; on stdin it costs a round trip more, since OpenSSH opens a
/// session channel's window (what the client may send on it) only once
/// it started the command, so the text waits for that. Scripts hold no
/// secret (keys and contents travel as data, on stdin), but through sudo
/// the command line goes to sudo's log on every run: there they stay on
/// stdin, and the log line says `/bin/sh -s`.
pub const ON_COMMAND_LINE_MAX: usize = 64 << 10;

/// How a script reaches its shell.
#[derive(Debug, Clone, PartialEq)]
enum Carrier {
    /// A plain script: its text on the command line (`sh -c`) as the
    /// login user when it fits, else on stdin (`sh -s`), as through sudo.
    Stdin,
    /// The text as `sh -c`'s argument, and stdin free for this data
    /// (contents and records travel there, never on a command line).
    Argument(Vec<u8>),
    /// The text as the login shell's command, as any SSH client sends one
    /// (the ping and the fresh login: no `sh -s`, no sudo).
    Login,
}

/// One script, ready to send.
#[derive(Debug, Clone)]
pub struct Script {
    pub kind: Kind,
    pub text: String,
    carrier: Carrier,
}

impl Script {
    /// A script with no data of its own: see [`Carrier::Stdin`].
    fn plain(kind: Kind, text: String) -> Script {
        Script {
            kind,
            text,
            carrier: Carrier::Stdin,
        }
    }

    /// Whether the text goes on the command line: a plain script, run as
    /// the login user (root already), that fits there.
    fn text_in_command(&self, how: &Become) -> bool {
        self.carrier == Carrier::Stdin
            && matches!(how, Become::No)
            && self.text.len() <= ON_COMMAND_LINE_MAX
    }

    fn with_input(kind: Kind, text: String, input: Vec<u8>) -> Script {
        Script {
            kind,
            text,
            carrier: Carrier::Argument(input),
        }
    }

    /// The command line to send: as the login user, or as root through
    /// sudo (see [`Become`]).
    pub fn command(&self, how: &Become) -> String {
        let inner = match &self.carrier {
            Carrier::Stdin if self.text_in_command(how) => {
                return format!("/bin/sh -c {}", quote(&self.text));
            }
            Carrier::Stdin => "/bin/sh -s".to_string(),
            Carrier::Argument(_) => format!("sh -c {}", quote(&self.text)),
            Carrier::Login => return self.text.clone(),
        };
        match how {
            Become::No => inner,
            Become::Sudo => format!("sudo -n {inner}"),
            Become::SudoWithPassword(_) => {
                format!(
                    "sh -c {}",
                    quote(&fill(SUDO_WITH_PASSWORD, &[("INNER", &inner)]))
                )
            }
        }
    }

    /// The command line and the input to send, the script let go: a host
    /// waiting on its command (for seconds, while docker restarts) holds
    /// what was sent, not also the text it was made from. No password is
    /// in it: [`Sent::stdin`] puts it in front, so one `Sent` serves
    /// every host sent the same script.
    pub fn into_sent(self, how: &Become) -> Sent {
        Sent {
            command: self.command(how),
            input: self.input_for(how).to_vec(),
            as_login: self.carrier == Carrier::Login,
        }
    }

    /// What goes on the command's stdin: the script or its data, after
    /// the sudo password's line when sudo needs one.
    pub fn stdin(&self, how: &Become) -> std::borrow::Cow<'_, [u8]> {
        password_first(how, self.carrier == Carrier::Login, self.input_for(how))
    }

    /// The text and the input to send to the host lock's shell, which runs
    /// it as root (see [`lock()`]); `None` for a login's command, and for
    /// a text too long for `sh -c`'s one argument there (sent with a
    /// command of its own then).
    pub fn held(&self) -> Option<(&str, &[u8])> {
        if self.text.len() > ON_COMMAND_LINE_MAX {
            return None;
        }
        match &self.carrier {
            Carrier::Stdin => Some((&self.text, b"")),
            Carrier::Argument(input) => Some((&self.text, input)),
            Carrier::Login => None,
        }
    }

    /// What goes on stdin as the login user (no sudo).
    pub fn input(&self) -> &[u8] {
        self.input_for(&Become::No)
    }

    /// What goes on stdin for `how`, before any password.
    fn input_for(&self, how: &Become) -> &[u8] {
        match &self.carrier {
            Carrier::Stdin if self.text_in_command(how) => b"",
            Carrier::Stdin => self.text.as_bytes(),
            Carrier::Argument(input) => input,
            Carrier::Login => b"",
        }
    }
}

/// A script as sent: its command line and its input, before any password.
#[derive(Debug, PartialEq)]
pub struct Sent {
    pub command: String,
    input: Vec<u8>,
    as_login: bool,
}

impl Sent {
    /// What goes on the command's stdin for `how` (see [`Script::stdin`]).
    pub fn stdin(&self, how: &Become) -> std::borrow::Cow<'_, [u8]> {
        password_first(how, self.as_login, &self.input)
    }
}

/// `input` after the sudo password's line, when sudo needs one. A login
/// command runs as the login user: no sudo, no password.
fn password_first<'a>(how: &Become, as_login: bool, input: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    match how {
        Become::SudoWithPassword(password) if !as_login => {
            let mut sent = Vec::with_capacity(password.len() + 1 + input.len());
            sent.extend_from_slice(password.as_bytes());
            sent.push(b'\n');
            sent.extend_from_slice(input);
            std::borrow::Cow::Owned(sent)
        }
        _ => std::borrow::Cow::Borrowed(input),
    }
}

/// How a script reaches root.
#[derive(Clone, Default)]
pub enum Become {
    /// As the login user (root already, or no `become`).
    #[default]
    No,
    /// `sudo -n`, which never waits for a password.
    Sudo,
    /// sudo that asks for a password: it travels on stdin, never in a
    /// command line, and [`SUDO_WITH_PASSWORD`] hands it to sudo.
    SudoWithPassword(std::sync::Arc<crate::secret::Secret>),
}

impl std::fmt::Debug for Become {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.write_str(match self {
            Become::No => "No",
            Become::Sudo => "Sudo",
            Become::SudoWithPassword(_) => "SudoWithPassword",
        })
    }
}

impl Become {
    /// For a host with `become` (or not), and the sudo password if given.
    pub fn of(
        become_root: bool,
        password: Option<&std::sync::Arc<crate::secret::Secret>>,
    ) -> Become {
        match (become_root, password) {
            (false, _) => Become::No,
            (true, None) => Become::Sudo,
            (true, Some(password)) => Become::SudoWithPassword(password.clone()),
        }
    }

    pub fn is_root(&self) -> bool {
        !matches!(self, Become::No)
    }

    /// A script's stderr, with what to do when it is sudo asking for a
    /// password that was not given.
    pub fn explain(stderr: &str) -> String {
        let stderr = stderr.trim();
        if stderr.contains("sudo: a password is required") {
            format!(
                "{stderr}: sudo asks for a password here; give it with -K, --become-password-file FILE or DOCKHAND_BECOME_PASSWORD"
            )
        } else {
            stderr.to_string()
        }
    }
}

/// The login user's shell reads the password's line itself (dash's `read`
/// takes no byte past it); the rest of stdin is the script's, and never
/// passes through sudo's password prompt. A host whose sudo needs no
/// password (NOPASSWD, as the lab's) gets `sudo -n`. Otherwise sudo checks
/// the password once (`-v`, fed one line: one attempt; what sudo says goes
/// to stderr; no `-k`, which would keep `-v` from caching), and the script
/// runs with `sudo -n` from the same shell: with no terminal, sudo keys its
/// credential cache on its parent process, which is this shell for both
/// (neither runs in a subshell, and the `exit` after the last keeps a shell
/// that execs its last command in its own place from doing so). A policy
/// without that cache (`timestamp_timeout=0`) fails safe, with sudo's "a
/// password is required". `printf` is built in: the password is in no
/// process's arguments.
pub const SUDO_WITH_PASSWORD: &str = "IFS= read -r dockhand_password || exit 97
if sudo -n true 2>/dev/null; then unset dockhand_password; exec sudo -n @INNER@; fi
if ! printf '%s\\n' \"$dockhand_password\" | sudo -S -p '' -v; then
  unset dockhand_password; echo 'dockhand: sudo refused the become password' >&2; exit 97
fi
unset dockhand_password
sudo -n @INNER@; exit $?
";

/// The first lines of every script: its kind, unset variables as errors
/// (`strict`), files it creates private, and a known locale (output is
/// parsed) and PATH (whatever the login shell set).
const HEADER: &str = "# dockhand: @KIND@\n@STRICT@umask 077\nexport LC_ALL=C PATH=@PATH@\n";

fn header(kind: Kind, layout: &Layout, strict: bool) -> String {
    fill(
        HEADER,
        &[
            ("KIND", kind.name()),
            ("STRICT", if strict { "set -u\n" } else { "" }),
            ("PATH", &quote(layout.path)),
        ],
    )
}

/// Fills a template's `@NAME@` holes. Every hole must be given: a hole
/// left open is a bug in this module, caught by its tests.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    // One pass over the template (a fleet renders its scripts per host):
    // each `@NAME@` is looked up; anything else is copied as it is.
    let mut text =
        String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some(at) = rest.find('@') {
        text.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let name_end = after
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(after.len());
        let value = (name_end > 0 && after[name_end..].starts_with('@'))
            .then(|| values.iter().find(|(name, _)| *name == &after[..name_end]))
            .flatten();
        match value {
            Some((_, value)) => {
                text.push_str(value);
                rest = &after[name_end + 1..];
            }
            None => {
                text.push('@');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    debug_assert!(
        open_hole(&text).is_none(),
        "{:?} left open",
        open_hole(&text)
    );
    text
}

/// The first `@NAME@` (capitals and `_`) left in a text.
fn open_hole(text: &str) -> Option<&str> {
    text.match_indices('@').find_map(|(at, _)| {
        let rest = &text[at + 1..];
        let end = rest.find(|c: char| !(c.is_ascii_uppercase() || c == '_'))?;
        (end > 0 && rest[end..].starts_with('@')).then(|| &rest[..end])
    })
}

/// One line of a script's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// `error MESSAGE`: the script stopped there.
    Error(&'a str),
    /// `ok committed`: every file was replaced.
    Committed,
    /// `rolled-back`: the script put the previous files back itself.
    RolledBack,
    /// `handler NAME ok`.
    HandlerRan(&'a str),
    /// `ok WHAT` (done, armed, finished …).
    Ok(&'a str),
    Other(&'a str),
}

impl<'a> Line<'a> {
    pub fn parse(line: &'a str) -> Line<'a> {
        if let Some(message) = line.strip_prefix("error ") {
            Line::Error(message)
        } else if line == "ok committed" {
            Line::Committed
        } else if line == "rolled-back" {
            Line::RolledBack
        } else if let Some(name) = line
            .strip_prefix("handler ")
            .and_then(|l| l.strip_suffix(" ok"))
        {
            Line::HandlerRan(name)
        } else if let Some(what) = line.strip_prefix("ok ") {
            Line::Ok(what)
        } else {
            Line::Other(line)
        }
    }
}

/// The line a handler's run prints when it went well (see `handlers`).
pub fn handler_ran(handler: Handler) -> String {
    format!("handler {} ok", handler.name())
}

/// A script's answer, line by line.
pub fn lines(stdout: &str) -> impl Iterator<Item = Line<'_>> {
    stdout.lines().map(Line::parse)
}

/// The first `error …` of an answer.
pub fn first_error(stdout: &str) -> Option<&str> {
    lines(stdout).find_map(|line| match line {
        Line::Error(message) => Some(message),
        _ => None,
    })
}
