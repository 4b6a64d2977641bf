//! Applying a [`Work`] on a host, in few round trips on its one
//! connection, with the scripts of [`remote`](super::remote):
//!
//! 1. **lock**: the host's apply lock, held as long as the connection.
//! 2. **stage**: every changed file to a private temp file beside its
//!    target; content travels only on stdin, never on a command line.
//! 3. **commit**: validate, back up, rename (atomic), check, arm the sshd
//!    dead-man switch, run the handlers. A check that fails restores the
//!    backups itself; a handler that fails is answered here by a restore
//!    and the handlers again. Its text follows the staging records on the
//!    same command's input: stage and commit are one round trip.
//! 4. **finish**: after the host verified, the backups go; if it did not,
//!    [`rollback`] restores them and runs the handlers again.
//!
//! Every script after the lock's goes to the lock's shell while it holds
//! (see [`remote::lock`]): one round trip each, through sudo too.
//!
//! A killed run leaves only hidden temp files (removed by the next stage)
//! or a mix of old and new whole files (converged by the next run): never
//! a half-written file, never wider permissions than asked.

use std::sync::Arc;

use super::fleet::HostRun;
use super::remote::{
    self, Become, CommitOutcome, HOST_LOCK_WAIT, Layout, LockOutcome, Script, Sent, Settled,
    TRANSIENT_UNITS,
};
use super::shared::Made;
use super::work::Work;
use crate::core::event::Phase;
use crate::error::{Error, HostError, Result};
use crate::transport::{ExecOutput, ExitStatus, Held, Transport};

/// Where the scripts keep their state on the hosts.
const LAYOUT: Layout<'static> = Layout::HOST;

/// Takes the host's apply lock, held by a command that lives as long as
/// this connection (however dockhand ends, the lock goes with it), settles
/// what an earlier run left in the directories of `paths`, and gathers
/// `paths` (and the fence, with `fence`) under the lock, in the same round
/// trip; returns what it settled and the gather's answer.
pub async fn lock_host(
    transport: &impl Transport,
    how: &Become,
    paths: Vec<(String, bool)>,
    fence: bool,
) -> Result<(Settled, String)> {
    let sent = lock_request(paths, fence, how);
    let output = match transport.hold(&sent.command, &sent.stdin(how)).await? {
        Held::Running(said) => {
            let (first, rest) = said.split_once('\n').unwrap_or((&said, ""));
            return Ok((Settled::parse(first), rest.to_string()));
        }
        Held::Ended(output) => output,
    };
    let code = match output.status {
        ExitStatus::Code(code) => i32::try_from(code).ok(),
        _ => None,
    };
    let reason = match LockOutcome::of(code) {
        LockOutcome::Busy => format!(
            "another dockhand apply is working on this host (it has held {} for over {HOST_LOCK_WAIT}s); run again when it has finished",
            LAYOUT.host_lock()
        ),
        LockOutcome::Failed => format!(
            "{}: {}",
            output.status,
            Become::explain(&output.stderr_text())
        ),
    };
    Err(Error::on_host(
        transport.host(),
        HostError::Step {
            step: "lock the host".into(),
            reason,
        },
    ))
}

/// Sends a script and returns its output as it came: to the host lock's
/// shell while it holds (one round trip, as root already), else as a
/// command of its own. `watch` as for [`Transport::exec_watching`]; it is
/// not told when the lock's shell could take no more, which only delays
/// what waits on it.
async fn send(
    transport: &impl Transport,
    script: &Script,
    become_root: &Become,
    mut watch: Option<(&str, tokio::sync::oneshot::Sender<()>)>,
) -> Result<ExecOutput> {
    if let Some((text, input)) = script.held()
        && let Some(output) = transport.ask_held(text, input, watch.take()).await?
    {
        return Ok(output);
    }
    let (command, stdin) = (script.command(become_root), script.stdin(become_root));
    match watch {
        Some((mark, seen)) => transport.exec_watching(&command, &stdin, mark, seen).await,
        None => transport.exec(&command, &stdin).await,
    }
}

/// Runs a script and turns an `error …` line, or a failure without one,
/// into an error naming the host and `step`.
async fn run_script(
    transport: &impl Transport,
    step: &str,
    become_root: &Become,
    script: &Script,
) -> Result<String> {
    let output = send(transport, script, become_root, None).await?;
    check(transport.host(), step, &output)
}

fn check(host: &str, step: &str, output: &ExecOutput) -> Result<String> {
    let text = output.stdout_text();
    let reason = match remote::first_error(&text) {
        Some(message) => message.to_string(),
        None if output.success() => return Ok(text),
        None => format!("{}: {}", output.status, output.stderr_text().trim()),
    };
    Err(Error::OnHost {
        host: host.to_string(),
        cause: HostError::Step {
            step: step.to_string(),
            reason,
        },
    })
}

/// Stage, then commit (with checks and handlers). When the commit got as
/// far as replacing files and then failed (a handler: dockerd would not
/// start with the new settings), the previous files are restored and the
/// handlers run again before the error is returned. `watch`: a line of
/// the commit's, and who to tell as soon as it came.
pub async fn apply(
    transport: &impl Transport,
    work: &Work,
    become_root: &Become,
    run: &HostRun,
    watch: Option<(&str, tokio::sync::oneshot::Sender<()>)>,
) -> Result<()> {
    let stages = !work.directories.is_empty() || !work.files.is_empty();
    // Only the script that is sent is kept while the commit runs (docker's
    // restart: seconds, for every host in flight), not the commit's own.
    let script = {
        let commit = remote::commit(work, &LAYOUT);
        if stages {
            remote::stage(work, &LAYOUT, Some(&commit))
        } else {
            commit
        }
    };
    let mut output = run
        .step(
            Phase::Committing {
                handlers: work.handlers.clone(),
            },
            run.deadlines.handlers,
            send(transport, &script, become_root, watch),
        )
        .await?;
    drop(script);
    if stages {
        // The staging's answer ends at its `done`; the commit's follows.
        let text = output.stdout_text();
        let Some(at) = text
            .find("done\n")
            .filter(|at| *at == 0 || text[..*at].ends_with('\n'))
        else {
            check(transport.host(), "stage files", &output)?;
            return Err(Error::on_host(
                transport.host(),
                HostError::Step {
                    step: "stage files".into(),
                    reason: "the staging ended without saying it was done".into(),
                },
            ));
        };
        output.stdout = text.as_bytes()[at + "done\n".len()..].to_vec();
    }
    let failed = |reason: String| Error::OnHost {
        host: transport.host().to_string(),
        cause: HostError::Step {
            step: "commit".into(),
            reason,
        },
    };
    let failure = || format!("{}: {}", output.status, output.stderr_text().trim());
    match CommitOutcome::of(&output.stdout_text(), output.success(), failure) {
        CommitOutcome::Done => Ok(()),
        CommitOutcome::Undone {
            reason,
            restored: false,
        } => Err(failed(reason)),
        CommitOutcome::Undone {
            reason,
            restored: true,
        } => Err(failed(format!(
            "{reason}; the previous files were restored"
        ))),
        CommitOutcome::FailedAfterReplacing(reason) => {
            let restored = rollback(transport, work, become_root, run).await;
            Err(failed(format!("{reason}; {restored}")))
        }
    }
}

/// After the host verified: the switch disarmed and the backups gone.
pub async fn finish(transport: &impl Transport, work: &Work, become_root: &Become) -> Result<()> {
    run_script(
        transport,
        "remove backups",
        become_root,
        &remote::finish(work, &LAYOUT),
    )
    .await
    .map(|_| ())
}

/// The lock with its gather, as sent: alike for every host of a run (one
/// playbook, one way to root; a sudo password goes in front of it per
/// host), so it is made and quoted once, not for each of 10,000 hosts.
fn lock_request(paths: Vec<(String, bool)>, fence: bool, how: &Become) -> Arc<Sent> {
    type Key = (Vec<(String, bool)>, bool, std::mem::Discriminant<Become>);
    static MADE: Made<Key, Sent> = Made::new(4);
    MADE.get(
        (paths, fence, std::mem::discriminant(how)),
        |(paths, fence, _)| {
            let gather = remote::gather(paths, &LAYOUT, true, *fence);
            let dirs = remote::managed_dirs(paths);
            remote::lock(
                &LAYOUT,
                HOST_LOCK_WAIT,
                &dirs,
                TRANSIENT_UNITS,
                Some(&gather),
            )
            .into_sent(how)
        },
    )
}

/// Restores the previous files (under the step deadline), then runs the
/// handlers again with them (under the handlers' deadline); says in words
/// how it went, for the host's error.
pub async fn rollback(
    transport: &impl Transport,
    work: &Work,
    become_root: &Become,
    run: &HostRun,
) -> String {
    let strip = |e: Error| e.cause();
    let restored = run
        .step(
            Phase::RollingBack,
            run.deadlines.step,
            run_script(
                transport,
                "restore the previous files",
                become_root,
                &remote::restore(work, &LAYOUT),
            ),
        )
        .await;
    if let Err(e) = restored {
        return format!("restoring the previous files failed too: {}", strip(e));
    }
    if work.handlers.is_empty() {
        return "the previous files were restored".into();
    }
    match run
        .step(
            Phase::RollingBack,
            run.deadlines.handlers,
            run_script(
                transport,
                "run the handlers again",
                become_root,
                &remote::handlers_again(work, &LAYOUT),
            ),
        )
        .await
    {
        Ok(_) => "the previous files were restored".into(),
        Err(e) => format!(
            "the previous files were restored, but putting them in effect failed: {}",
            strip(e)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock's request is made once per playbook's paths and way to
    /// root: another way to root, or other paths, get their own.
    #[test]
    fn the_locks_request_is_shared_only_by_hosts_sent_the_same() {
        let paths = |p: &str| vec![(p.to_string(), false)];
        let root = lock_request(paths("/etc/a"), false, &Become::No);
        assert!(Arc::ptr_eq(
            &root,
            &lock_request(paths("/etc/a"), false, &Become::No)
        ));
        let sudo = lock_request(paths("/etc/a"), false, &Become::Sudo);
        assert!(sudo.command.starts_with("sudo -n"));
        assert!(!root.command.starts_with("sudo"));
        let other = lock_request(paths("/etc/b"), false, &Become::No);
        assert!(other.command.contains("/etc/b") && !root.command.contains("/etc/b"));
        let fenced = lock_request(paths("/etc/a"), true, &Become::No);
        assert_ne!(fenced.command, root.command);
    }
}
