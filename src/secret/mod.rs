//! Secrets the user gives dockhand: the CA key's passphrase and the sudo
//! password. Each comes from a file named by a flag, from an environment
//! variable, or from a prompt on the terminal, never from argv (which every
//! user of the machine can read in /proc). Asked once per run, and only
//! when needed; wiped from memory when the run ends.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

mod tty;

/// A secret in memory.
pub type Secret = Zeroizing<String>;

/// Where one secret comes from, and the secret once had.
#[derive(Clone)]
pub struct SecretSource {
    /// What the secret is, for the prompt and the errors ("the CA key's passphrase").
    what: &'static str,
    /// The flag that names a file, for the errors ("--passphrase-file").
    flag: &'static str,
    file: Option<PathBuf>,
    env: &'static str,
    /// Ask on the terminal even when a file or the environment gives none
    /// (`-K`), rather than only as the last resort on a terminal.
    prompt: bool,
    had: Arc<Mutex<Option<Secret>>>,
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "SecretSource({})", self.what)
    }
}

impl SecretSource {
    pub fn new(what: &'static str, flag: &'static str, env: &'static str) -> SecretSource {
        SecretSource {
            what,
            flag,
            file: None,
            env,
            prompt: true,
            had: Arc::new(Mutex::new(None)),
        }
    }

    /// The file the flag named.
    pub fn with_file(mut self, file: Option<PathBuf>) -> SecretSource {
        self.file = file;
        self
    }

    /// Whether a terminal prompt may be the last resort.
    pub fn with_prompt(mut self, prompt: bool) -> SecretSource {
        self.prompt = prompt;
        self
    }

    /// A source that holds `secret` already (tests, and secrets read once
    /// for several uses).
    pub fn given(what: &'static str, secret: &str) -> SecretSource {
        let source = SecretSource::new(what, "", "");
        *source.had.lock().expect("not poisoned") = Some(Zeroizing::new(secret.to_string()));
        source
    }

    /// Whether a secret can be had without asking anyone.
    pub fn is_given(&self) -> bool {
        self.had.lock().expect("not poisoned").is_some()
            || self.file.is_some()
            || (!self.env.is_empty() && std::env::var_os(self.env).is_some())
    }

    /// The secret: from the file, the environment, then the terminal.
    pub fn get(&self) -> Result<Secret, String> {
        self.get_until(&|| false)
    }

    /// [`SecretSource::get`], its prompt ended by `cancelled` (the run's
    /// interrupt: a run that counts Ctrl-C does not die of it).
    pub fn get_until(&self, cancelled: &dyn Fn() -> bool) -> Result<Secret, String> {
        self.obtain(false, cancelled)
    }

    /// A new secret (to encrypt with): from the file or the environment,
    /// or typed twice on the terminal.
    pub fn get_new(&self) -> Result<Secret, String> {
        self.obtain(true, &|| false)
    }

    /// The secret had already, or found now and kept.
    fn obtain(&self, confirm: bool, cancelled: &dyn Fn() -> bool) -> Result<Secret, String> {
        let mut had = self.had.lock().expect("not poisoned");
        if let Some(secret) = had.as_ref() {
            return Ok(secret.clone());
        }
        let secret = self.find(confirm, cancelled)?;
        *had = Some(secret.clone());
        Ok(secret)
    }

    fn find(&self, confirm: bool, cancelled: &dyn Fn() -> bool) -> Result<Secret, String> {
        let secret = if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read {}: {e}", path.display(), self.what))?;
            // A file written with `echo` ends with a newline that is not
            // part of the secret.
            let line = text.strip_suffix('\n').unwrap_or(&text);
            Zeroizing::new(line.strip_suffix('\r').unwrap_or(line).to_string())
        } else if let Some(value) = std::env::var_os(self.env).filter(|_| !self.env.is_empty()) {
            Zeroizing::new(value.to_string_lossy().into_owned())
        } else if let Some(term) = self.prompt.then(prompt_terminal).flatten() {
            self.ask(term, confirm, cancelled)?
        } else {
            return Err(format!(
                "{} is needed: give it with {} FILE or {}{}",
                self.what,
                self.flag,
                self.env,
                if self.prompt {
                    " (there is no terminal to ask on)"
                } else {
                    ""
                }
            ));
        };
        if secret.is_empty() {
            return Err(format!("{} is empty", self.what));
        }
        // A secret is one line: a second would reach whatever reads the
        // first (sudo's line on stdin, say) as more input.
        if secret.contains(['\n', '\r', '\0']) {
            return Err(format!(
                "{} holds more than one line (or a NUL): give the secret alone, on one line",
                self.what
            ));
        }
        Ok(secret)
    }

    fn ask(
        &self,
        term: console::Term,
        confirm: bool,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Secret, String> {
        let read = |prompt: String| -> Result<Secret, String> {
            tty::read_hidden_line(&std::io::stdin(), || term.write_str(&prompt), cancelled)
                .and_then(|line| term.write_line("").map(|()| line))
                .map_err(|e| format!("cannot read {}: {e}", self.what))?
                .ok_or_else(|| format!("interrupted at the prompt for {}", self.what))
        };
        let first = read(format!("{}: ", capitalized(self.what)))?;
        if confirm && *read(format!("{} again: ", capitalized(self.what)))? != *first {
            return Err(format!("the two entries of {} differ", self.what));
        }
        Ok(first)
    }
}

/// Where a prompt is shown, when someone can answer it: stderr, or stdout
/// when only stdout is the terminal (`apply 2> log` asks its question
/// there, and the passphrase that follows must be asked there too).
fn prompt_terminal() -> Option<console::Term> {
    if !std::io::stdin().is_terminal() {
        None
    } else if std::io::stderr().is_terminal() {
        Some(console::Term::stderr())
    } else {
        std::io::stdout().is_terminal().then(console::Term::stdout)
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gives_its_line_without_the_newline_and_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "s3cret words\n").unwrap();
        let source = SecretSource::new("the passphrase", "--passphrase-file", "DOCKHAND_TEST_NONE")
            .with_file(Some(path.clone()));
        assert!(source.is_given());
        assert_eq!(*source.get().unwrap(), "s3cret words");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            *source.clone().get().unwrap(),
            "s3cret words",
            "kept, shared by clones"
        );
    }

    #[test]
    fn nothing_given_off_a_terminal_says_how_to_give_it() {
        let source = SecretSource::new(
            "the CA key's passphrase",
            "--passphrase-file",
            "DOCKHAND_TEST_UNSET_VARIABLE",
        );
        assert!(!source.is_given());
        // cargo test runs without a terminal on stdin.
        if std::io::stdin().is_terminal() {
            return;
        }
        let err = source.get().unwrap_err();
        assert_eq!(
            err,
            "the CA key's passphrase is needed: give it with --passphrase-file FILE or DOCKHAND_TEST_UNSET_VARIABLE (there is no terminal to ask on)"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = source.clone().with_file(Some(empty)).get().unwrap_err();
        assert_eq!(err, "the CA key's passphrase is empty");
        // `pass show` prints more than the password: refused, not cut.
        let lines = dir.path().join("lines");
        std::fs::write(&lines, "s3cret\nlogin: bob\n").unwrap();
        let err = source.with_file(Some(lines)).get().unwrap_err();
        assert!(err.contains("holds more than one line"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let source = SecretSource::given("the sudo password", "hunter2");
        assert!(!format!("{source:?}").contains("hunter2"));
    }
}
