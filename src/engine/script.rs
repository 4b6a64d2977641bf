//! Every remote script dockhand runs comes from here: the same first
//! lines (a fixed environment, `set -u`, a private umask), the same way to
//! run it as root (`sudo -n`, which never waits for a password), and one
//! quoting for every value put into it. Contents and records travel on the
//! script's standard input, never on its command line.

/// The environment every script starts from: a known locale (command
/// output is parsed) and a known PATH (whatever the login shell set).
pub const ENVIRONMENT: &str =
    "export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The first lines of a script: unset variables are errors, files it
/// creates are private, and the environment is the known one.
pub fn preamble() -> String {
    format!("set -u; umask 077\n{ENVIRONMENT}\n")
}

pub use crate::core::shell_quote as quote;

/// The command that runs a script given on standard input, as root
/// through sudo when `become` is set.
pub fn from_stdin(become_root: bool) -> &'static str {
    if become_root {
        "sudo -n /bin/sh -s"
    } else {
        "/bin/sh -s"
    }
}

/// The command that runs `script` given as its argument (its standard
/// input stays free for data), as root through sudo when `become` is set.
pub fn inline(become_root: bool, script: &str) -> String {
    format!(
        "{}sh -c {}",
        if become_root { "sudo -n " } else { "" },
        quote(script)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_any_word_one_word() {
        let cases = [
            ("/etc/a b", "'/etc/a b'"),
            ("/it's", "'/it'\\''s'"),
            ("$(touch /tmp/x)", "'$(touch /tmp/x)'"),
            ("", "''"),
        ];
        for (word, quoted) in cases {
            assert_eq!(quote(word), quoted);
        }
    }

    #[test]
    fn become_runs_through_sudo_without_a_prompt() {
        assert_eq!(from_stdin(true), "sudo -n /bin/sh -s");
        assert_eq!(from_stdin(false), "/bin/sh -s");
        assert_eq!(inline(true, "echo 'x'"), "sudo -n sh -c 'echo '\\''x'\\'''");
        assert!(preamble().contains(ENVIRONMENT));
    }
}
