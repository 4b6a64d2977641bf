//! The commit: validate the staged files, keep the previous version of
//! each as a hard-linked backup, rename each temp over its target (atomic),
//! run the post-commit checks (`sshd -t`), and run the notified handlers in
//! their fixed order, the sshd dead-man switch armed right before ssh's
//! reload and armed again once docker's restart, which comes last, is
//! done (its time for the checks counts from there). A failed check
//! restores the backups itself; a failed handler leaves that to the
//! engine's restore, which also stops a commit past its deadline (the
//! commit records its process group for it).
//!
//! Its answer is read as a [`CommitOutcome`].

use super::handlers::handlers;
use super::restore::{
    absent_of, backup_of, read_start_time, remove, remove_backups, remove_created_directories,
    restore_lines, restore_path,
};
use super::{Kind, Layout, Line, Script, Template, fill, header, lines, parent, quote, template};
use crate::core::roles::Check;
use crate::engine::work::{SshdSwitch, TEMP_MARK, Work};

static COMMIT: Template = template!("commit.sh");

/// Puts the interim daemon.json (the host's own with live-restore on) in
/// place and has dockerd reload it: live-restore is one of the options
/// dockerd takes on a reload, and a reload stops no container. Waits for
/// dockerd's own word in the journal that it reloaded; its error, or no
/// word within 10 s, puts the original back and stops the commit. Runs
/// after the backups, so a rollback restores the original file.
static LIVE_RESTORE: Template = template!("live-restore.sh");

/// A check of a staged file (`%s` in the playbook's check names it); a
/// secret's check never has its output shown: it could quote the secret.
const VALIDATE: &str = "if ! out=$( @COMMAND@ 2>&1 ); then @MESSAGE@; printf 'error validate %s: %s\\n' @PATH@ \"${msg:-the check failed without a message}\"; refused; exit 1; fi\n";
const MESSAGE: &str =
    "msg=$(printf '%s' \"$out\" | grep -v 'level=info' | tail -n 3 | tr '\\n' ' ')";
const SECRET_MESSAGE: &str = "msg='the check failed (its output is not shown: the file is secret)'";
const RECORD_PENDING: &str = "mkdir -p -- @STATE_DIR@ && printf '%s\\n' @NAMES@ >> @PENDING@ || { printf 'error record pending handlers\\n'; cleanup; exit 1; }\n";
/// Hard links keep the old inode: same content, same mode.
const BACKUP: &str = "if [ -e @PATH@ ]; then ln -f -- @PATH@ @BACKUP@ || { printf 'error backup %s\\n' @PATH@; cleanup; exit 1; }; else : > @ABSENT@; fi\n";
/// Temps go before the rollback, so the directories it removes are empty.
const RENAME: &str = "mv -f -- @TEMP@ @PATH@ || { printf 'error rename %s\\n' @PATH@; cleanup; rollback; unowe; exit 1; }\n";
const ATTRIBUTES: &str = "chown -- @OWNER@ @PATH@ && chmod -- @MODE@ @PATH@ || { printf 'error attributes %s\\n' @PATH@; rollback; unowe; exit 1; }\n";
const POST_CHECK: &str = "if ! out=$( @COMMAND@ 2>&1 ); then msg=$(printf '%s' \"$out\" | tail -n 3 | tr '\\n' ' '); printf 'error check after writing %s: %s\\n' @PATH@ \"${msg:-the check failed without a message}\"; rollback; unowe; printf 'rolled-back\\n'; exit 1; fi\n";
/// The dead-man switch: a transient timer, armed among the handlers right
/// before ssh's reload (`$log` is theirs), that puts the previous drop-in
/// (and fence) back and reloads ssh (and the fence). Its commands are a
/// script in the state directory, which removes itself, not `sh -c`'s
/// argument: systemd writes a transient unit's command line to disk with
/// its `;` and `'` escaped, and a daemon-reload in the switch's time (a
/// `systemctl enable`, an admin, apt) read it back garbled (systemd 252),
/// so the switch did nothing.
const ARM_SWITCH: &str = "revert=@REVERT_FILE@
{ printf '%s\\n' @REVERT@ > \"$revert\" && systemd-run --quiet --collect --unit=@UNIT@ --on-active=@SECONDS@ --timer-property=AccuracySec=1s /bin/sh \"$revert\" >/dev/null 2>&1; } \\
  || { printf 'error arm the sshd dead-man switch (systemd-run)\\n'; rm -f -- \"$log\" \"$revert\"; rollback; exit 1; }
printf 'ok armed %s\\n' @UNIT@
";
/// After docker's restart, which follows ssh's reload: the switch armed
/// again under a second name (the first stopped once the second runs, so
/// the host is never without one), its time counting from here. A switch
/// that fired during the restart (its script gone) fails the commit, which
/// the engine then restores.
const REARM_SWITCH: &str = "if [ -e \"$revert\" ]; then
  { systemd-run --quiet --collect --unit=@AGAIN@ --on-active=@SECONDS@ --timer-property=AccuracySec=1s /bin/sh \"$revert\" >/dev/null 2>&1 \\
    && systemctl stop @UNIT@.timer 2>/dev/null && printf 'ok armed %s\\n' @AGAIN@; } \\
    || { printf 'error arm the sshd dead-man switch again after docker'\\''s restart (systemd-run)\\n'; handler_failed=1; }
else
  printf 'error the sshd dead-man switch fired during docker'\\''s restart (after %s s: sshd.revert_after) and put back what it guards\\n' @SECONDS@; handler_failed=1
fi
";
const REVERT_SSHD: &str = "@RESTORE@; systemctl reload @SSH_UNIT@";
/// The fence back as it was (or gone, when it was new), loaded directly.
const REVERT_FIREWALL: &str = "@RESTORE@; if [ -e @RULES@ ]; then nft -f @RULES@; else systemctl disable --quiet dockhand-firewall.service; nft delete table inet dockhand; fi";

pub fn commit(work: &Work, layout: &Layout) -> Script {
    let temps = work
        .files
        .iter()
        .flat_map(|f| std::iter::once(&f.temp).chain(f.check_copy.as_ref().map(|(t, _)| t)));
    let mut remove_temps = String::new();
    for temp in temps {
        remove_temps += &remove([temp.as_str()]);
    }
    let text = header(Kind::Commit, layout, true)
        + &fill(
            &COMMIT,
            &[
                ("COMMIT_GROUP", &quote(&layout.commit_group())),
                ("STATE_DIR", &quote(layout.state_dir)),
                ("READ_START", &read_start_time("start")),
                ("REMOVE_TEMPS", &remove_temps),
                ("RESTORE", &restore_lines(work)),
                ("REMOVE_CREATED", &remove_created_directories(work)),
                ("VALIDATE", &validate(work)),
                (
                    "REMOVE_CHECK_COPIES",
                    &remove(
                        work.files
                            .iter()
                            .filter_map(|f| f.check_copy.as_ref().map(|(t, _)| t.as_str())),
                    ),
                ),
                ("RECORD_PENDING", &record_pending(work, layout)),
                ("REMOVE_BACKUPS", &remove_backups(work)),
                ("BACKUP", &backup(work)),
                ("LIVE_RESTORE", &live_restore(work)),
                ("RENAME", &rename(work)),
                ("ATTRIBUTES", &attributes(work)),
                ("GROUP", &group_additions(work)),
                ("POST_CHECK", &post_checks(work)),
                (
                    "HANDLERS",
                    &handlers(
                        &work.handlers,
                        &work.ssh_unit,
                        &arm_switch(work.sshd_switch.as_ref(), &work.ssh_unit, layout),
                        &rearm_switch(work.sshd_switch.as_ref()),
                    ),
                ),
                ("PENDING", &quote(&layout.pending_handlers())),
            ],
        );
    Script::plain(Kind::Commit, text)
}

/// Checks on the staged files, before anything is replaced; a file that
/// names other files of this write is checked through its private copy.
fn validate(work: &Work) -> String {
    let mut text = String::new();
    for file in &work.files {
        if let Some(check) = file.validate.as_ref().filter(|c| c.reads_new_file()) {
            let checked = file.check_copy.as_ref().map_or(&file.temp, |(t, _)| t);
            text += &fill(
                VALIDATE,
                &[
                    ("COMMAND", &command(check, checked)),
                    (
                        "MESSAGE",
                        if file.secret { SECRET_MESSAGE } else { MESSAGE },
                    ),
                    ("PATH", &quote(&file.path)),
                ],
            );
        }
    }
    text
}

fn record_pending(work: &Work, layout: &Layout) -> String {
    if work.handlers.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = work.handlers.iter().map(|h| h.name()).collect();
    fill(
        RECORD_PENDING,
        &[
            ("STATE_DIR", &quote(parent(&layout.pending_handlers()))),
            ("NAMES", &names.join(" ")),
            ("PENDING", &quote(&layout.pending_handlers())),
        ],
    )
}

fn backup(work: &Work) -> String {
    work.files
        .iter()
        .map(|file| {
            fill(
                BACKUP,
                &[
                    ("PATH", &quote(&file.path)),
                    ("BACKUP", &quote(&backup_of(&file.path))),
                    ("ABSENT", &quote(&absent_of(&file.path))),
                ],
            )
        })
        .collect()
}

fn live_restore(work: &Work) -> String {
    let Some((path, interim)) = &work.live_restore_first else {
        return String::new();
    };
    fill(
        &LIVE_RESTORE,
        &[
            (
                "TEMP",
                &quote(&format!("{}/{TEMP_MARK}live-restore", parent(path))),
            ),
            ("PATH", &quote(path)),
            ("INTERIM", interim),
        ],
    )
}

fn rename(work: &Work) -> String {
    work.files
        .iter()
        .map(|file| {
            fill(
                RENAME,
                &[("TEMP", &quote(&file.temp)), ("PATH", &quote(&file.path))],
            )
        })
        .collect()
}

/// `docker.ssh_users` into the docker group; a rollback takes them out.
const ADD_TO_GROUP: &str = "gpasswd -a @USER@ docker >/dev/null || { printf 'error add %s to the docker group\\n' @USER@; rollback; unowe; exit 1; }\n";

fn group_additions(work: &Work) -> String {
    work.docker_group_additions
        .iter()
        .map(|user| fill(ADD_TO_GROUP, &[("USER", &quote(user))]))
        .collect()
}

fn attributes(work: &Work) -> String {
    work.attributes
        .iter()
        .map(|(path, mode, owner, group)| {
            fill(
                ATTRIBUTES,
                &[
                    ("OWNER", &quote(&format!("{owner}:{group}"))),
                    ("PATH", &quote(path)),
                    ("MODE", &format!("{mode:04o}")),
                ],
            )
        })
        .collect()
}

/// A check as shell, run on `file`: a program's words each quoted (`%s`
/// is the file); the playbook's own command as written, its `%s` the
/// quoted file.
fn command(check: &Check, file: &str) -> String {
    match check {
        Check::Program(words) => words
            .iter()
            .map(|w| if w == "%s" { quote(file) } else { quote(w) })
            .collect::<Vec<_>>()
            .join(" "),
        Check::Shell(command) => command.replace("%s", &quote(file)),
    }
}

fn post_checks(work: &Work) -> String {
    work.post_checks
        .iter()
        .map(|(path, check)| {
            fill(
                POST_CHECK,
                &[("COMMAND", &command(check, path)), ("PATH", &quote(path))],
            )
        })
        .collect()
}

fn arm_switch(switch: Option<&SshdSwitch>, ssh_unit: &str, layout: &Layout) -> String {
    let Some(switch) = switch else {
        return String::new();
    };
    // Its first line: the script goes as it starts, so the finish can
    // tell that it ran (or runs).
    let file = layout.revert_file(&switch.unit);
    let mut reverts = vec![format!("rm -f -- {}", quote(&file))];
    if let Some(drop_in) = &switch.drop_in {
        reverts.push(fill(
            REVERT_SSHD,
            &[
                ("RESTORE", restore_path(drop_in).trim_end()),
                ("SSH_UNIT", &quote(ssh_unit)),
            ],
        ));
    }
    if let Some(rules) = &switch.firewall_rules {
        reverts.push(fill(
            REVERT_FIREWALL,
            &[
                ("RESTORE", restore_path(rules).trim_end()),
                ("RULES", &quote(rules)),
            ],
        ));
    }
    let revert = reverts.join("\n");
    fill(
        ARM_SWITCH,
        &[
            ("UNIT", &quote(&switch.unit)),
            ("REVERT_FILE", &quote(&file)),
            ("SECONDS", &switch.seconds.to_string()),
            ("REVERT", &quote(&revert)),
        ],
    )
}

fn rearm_switch(switch: Option<&SshdSwitch>) -> String {
    switch.map_or_else(String::new, |switch| {
        fill(
            REARM_SWITCH,
            &[
                ("UNIT", &quote(&switch.unit)),
                ("AGAIN", &quote(&switch.unit_again())),
                ("SECONDS", &switch.seconds.to_string()),
            ],
        )
    })
}

/// How a commit ended, from its answer.
#[derive(Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Every file in place and every handler ran.
    Done,
    /// It stopped before replacing anything (a check refused a staged
    /// file), or put the previous files back itself (a check after
    /// writing): nothing of this apply is left in effect.
    Undone { reason: String, restored: bool },
    /// It replaced files and then failed (a handler: dockerd would not
    /// start): the engine must restore them.
    FailedAfterReplacing(String),
}

impl CommitOutcome {
    /// `failure` is the exit status and stderr, for an answer that failed
    /// without an `error` line.
    pub fn of(stdout: &str, success: bool, failure: impl FnOnce() -> String) -> CommitOutcome {
        let mut error = None;
        let (mut committed, mut restored) = (false, false);
        for line in lines(stdout) {
            match line {
                Line::Error(message) if error.is_none() => error = Some(message.to_string()),
                Line::Committed => committed = true,
                Line::RolledBack => restored = true,
                _ => {}
            }
        }
        let reason = match (error, success) {
            (None, true) => return CommitOutcome::Done,
            (Some(reason), _) => reason,
            (None, false) => failure(),
        };
        if committed && !restored {
            CommitOutcome::FailedAfterReplacing(reason)
        } else {
            CommitOutcome::Undone { reason, restored }
        }
    }
}
