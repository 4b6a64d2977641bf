//! What a run reports while it goes: typed events that the engine's fleet
//! runner sends over a channel and `report` renders (bars on a terminal,
//! plain lines off one). Plain data, so the renderers depend on the core
//! alone and are tested without hosts.

use std::sync::Arc;

use crate::core::input::playbook::Handler;

/// The step a host is at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    Gathering,
    /// `ping`'s one command.
    Probing,
    /// Taking the host's apply lock.
    Locking,
    /// Replacing files and running the handlers they notify.
    Committing {
        handlers: Vec<Handler>,
    },
    Verifying,
    RemovingBackups,
    RollingBack,
}

impl Phase {
    /// What a person reads while the step runs.
    pub fn label(&self) -> String {
        match self {
            Phase::Connecting => "connecting".into(),
            Phase::Gathering => "gathering".into(),
            Phase::Probing => "probing".into(),
            Phase::Locking => "locking the host, gathering".into(),
            Phase::Committing { handlers } if handlers.contains(&Handler::RestartDocker) => {
                "replacing files, restarting docker".into()
            }
            Phase::Committing { handlers } if handlers.contains(&Handler::ReloadSsh) => {
                "replacing files, reloading ssh".into()
            }
            Phase::Committing { handlers } if handlers.contains(&Handler::ReloadFirewall) => {
                "replacing files, loading the fence".into()
            }
            Phase::Committing { .. } => "replacing files".into(),
            Phase::Verifying => "verifying".into(),
            Phase::RemovingBackups => "removing backups".into(),
            Phase::RollingBack => "rolling back".into(),
        }
    }
}

/// How a host ended, as the summary counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostStatus {
    /// Answered (ping), or planned with changes pending.
    Ok,
    Changed,
    Unchanged,
    Failed,
    Unreachable,
    /// Never started: the rollout stopped, or the run was interrupted.
    Skipped,
    /// Stopped in the middle by a second interrupt: may be mid-change.
    Aborted,
}

impl HostStatus {
    pub fn word(self) -> &'static str {
        match self {
            HostStatus::Ok => "ok",
            HostStatus::Changed => "changed",
            HostStatus::Unchanged => "unchanged",
            HostStatus::Failed => "failed",
            HostStatus::Unreachable => "unreachable",
            HostStatus::Skipped => "skipped",
            HostStatus::Aborted => "aborted",
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(
            self,
            HostStatus::Failed | HostStatus::Unreachable | HostStatus::Aborted
        )
    }
}

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The run begins: how many hosts, in how many batches.
    Started {
        action: String,
        hosts: usize,
        batches: usize,
    },
    /// A batch of a rolling rollout begins (1-based).
    BatchStarted {
        number: usize,
        of: usize,
        hosts: usize,
    },
    StepStarted {
        host: String,
        phase: Phase,
    },
    StepFinished {
        host: String,
        phase: Phase,
        seconds: f64,
    },
    /// Something to look at, for a host or for the run.
    Warning {
        host: Option<String>,
        message: String,
    },
    /// The local PKI issued or created something.
    Certificate {
        message: String,
    },
    HostFinished {
        host: String,
        status: HostStatus,
        detail: String,
        seconds: f64,
    },
    /// A batch ended; `stop` says why the rollout stops after it.
    BatchFinished {
        number: usize,
        failed: usize,
        hosts: usize,
        stop: Option<String>,
    },
    /// Ctrl-C or SIGTERM: the first lets hosts in flight finish, the
    /// second (`again`) abandons them.
    Interrupted {
        again: bool,
        in_flight: Vec<String>,
    },
}

/// Takes the run's live output out of the way while something is asked
/// on the terminal in the middle of a run (apply's question, the CA
/// passphrase when the PKI signs): the renderer draws over whatever else
/// is written there.
/// By default, nothing is drawn to take away.
#[derive(Clone)]
pub struct Hold(Arc<Holding>);

/// Runs the question it is given, with the output held.
type Holding = dyn Fn(&mut dyn FnMut()) + Send + Sync;

impl Default for Hold {
    fn default() -> Self {
        Hold(Arc::new(|asked| asked()))
    }
}

impl Hold {
    /// `hold` runs what it is given with the output held.
    pub fn new(hold: impl Fn(&mut dyn FnMut()) + Send + Sync + 'static) -> Hold {
        Hold(Arc::new(hold))
    }

    /// Runs `asked` with the output held.
    pub fn during<R>(&self, asked: impl FnOnce() -> R) -> R {
        let (mut asked, mut answer) = (Some(asked), None);
        // A hold that runs it twice gets the one answer: asked once.
        (self.0)(&mut || {
            if let Some(ask) = asked.take() {
                answer = Some(ask());
            }
        });
        // A hold that did not run it (none does): asked now, unheld.
        answer.unwrap_or_else(|| asked.take().expect("asked at most once")())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_hold_runs_the_question_inside_it_once_and_gives_its_answer() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let into = log.clone();
        let hold = Hold::new(move |asked| {
            into.lock().unwrap().push("held");
            asked();
            into.lock().unwrap().push("released");
        });
        let answer = hold.during(|| {
            log.lock().unwrap().push("asked");
            42
        });
        assert_eq!(answer, 42);
        assert_eq!(*log.lock().unwrap(), ["held", "asked", "released"]);
        // The default holds nothing and still asks.
        assert_eq!(Hold::default().during(|| "typed"), "typed");
        // A hold that forgets to run it: asked anyway, once, unheld.
        let asked = Mutex::new(0);
        let forgetful = Hold::new(|_| {});
        forgetful.during(|| *asked.lock().unwrap() += 1);
        assert_eq!(*asked.lock().unwrap(), 1);
        // One that runs it twice: asked once, its answer kept.
        let twice = Hold::new(|asked| {
            asked();
            asked();
        });
        let asked = Mutex::new(0);
        let answer = twice.during(|| {
            *asked.lock().unwrap() += 1;
            "typed"
        });
        assert_eq!((answer, *asked.lock().unwrap()), ("typed", 1));
    }
}
