//! What follows a commit. **finish**, once the host verified: the switch
//! is disarmed and the backups go. **restore**, after a failed
//! verification or a commit that failed or missed its deadline: a commit
//! still running is stopped, and the previous files, modes and owners are
//! put back. **handlers again**, then, so the restored files are in
//! effect, and the switch disarmed. The commit's own rollback uses the
//! same restore lines.

use super::handlers::handlers;
use super::{Kind, Layout, Script, fill, header, quote};
use crate::engine::work::{BACKUP_MARK, SshdSwitch, TEMP_MARK, Work};

const FINISH: &str = "@DISARM@@REMOVE_BACKUPS@printf 'ok finished\\n'\n";

/// The finish's disarm: the switch's script goes first thing when it runs
/// (see `commit`), so its absence once the timer is stopped says it ran,
/// or runs: the host verified with settings the switch has since put back.
/// That fails the finish, and the apply restores the rest.
const DISARM_OR_FAIL: &str = "systemctl stop @UNIT@.timer @AGAIN@.timer 2>/dev/null
[ -e @FILE@ ] || { printf 'error the sshd dead-man switch fired before the host was verified (after %s s: sshd.revert_after) and put back what it guards\\n' @SECONDS@; exit 1; }
rm -f -- @FILE@
";

/// A commit still running (it missed its deadline: a handler hangs) is
/// stopped first, so it cannot go on replacing files under the restore;
/// its record names its process group and that process's start time, so a
/// stale record never names another process.
const RESTORE: &str = "@STOP_COMMIT@@RESTORE@printf 'ok restored\\n'\n";

/// Stops the commit on record if it still runs (its process group, when
/// the process that leads it is the one recorded), then drops the record;
/// `@STOPPED@` is what to do once it was stopped. The restore and the lock
/// use it.
/// (`2>/dev/null` before `<`: redirections go left to right, and a missing
/// file's complaint would come out on stderr.)
const STOP_COMMIT: &str = "group_file=@COMMIT_GROUP@
if read -r g start 2>/dev/null < \"$group_file\" && [ \"$g\" -gt 1 ] 2>/dev/null \\
   && @READ_NOW@ && [ \"$now\" = \"$start\" ]; then
  kill -TERM \"-$g\" 2>/dev/null; sleep 0.2; kill -KILL \"-$g\" 2>/dev/null@STOPPED@
fi
if [ -e \"$group_file\" ] || [ -L \"$group_file\" ]; then rm -f -- \"$group_file\"; fi
";

/// What an interrupted run can leave in a managed directory `$d`: temp
/// files (a file's, or the live-restore interim) and backups. The gather
/// and the lock look for the same.
pub(super) fn leftovers_in_d() -> String {
    format!("\"$d\"/.*{TEMP_MARK}* \"$d\"/{TEMP_MARK}* \"$d\"/.*{BACKUP_MARK}*")
}

/// The script lines that stop a commit still running; `stopped` runs after
/// it was stopped.
pub(super) fn stop_commit(layout: &Layout, stopped: &str) -> String {
    fill(
        STOP_COMMIT,
        &[
            ("COMMIT_GROUP", &quote(&layout.commit_group())),
            ("READ_NOW", &read_start_time("now")),
            ("STOPPED", stopped),
        ],
    )
}

/// The switch is disarmed here, once ssh was reloaded with the restored
/// files, not by the restore: a run that dies between the two leaves it
/// armed, and when it fires it reloads ssh with what the restore put back
/// (its own restore finds nothing left to move).
const HANDLERS_AGAIN: &str = "handler_failed=0
@HANDLERS@[ \"$handler_failed\" = 0 ] && rm -f -- @PENDING@
@DISARM@printf 'ok rolled-back\\n'
";

/// Puts one path back: its backup, or no file where there was none.
const RESTORE_PATH: &str = "if [ -e @BACKUP@ ]; then mv -f -- @BACKUP@ @PATH@; elif [ -e @ABSENT@ ]; then rm -f -- @PATH@ @ABSENT@; fi\n";
const RESTORE_ATTRIBUTES: &str =
    "chown -- @OWNER@ @PATH@ 2>/dev/null; chmod -- @MODE@ @PATH@ 2>/dev/null\n";
/// A directory this apply created goes; one that holds anything else stays.
const REMOVE_DIRECTORY: &str = "rmdir -- @DIR@ 2>/dev/null || :\n";
/// The switch's timer goes. Its service, if it ran, went by itself:
/// `--collect` unloads a transient unit even when it failed.
const DISARM: &str = "systemctl stop @UNIT@.timer @AGAIN@.timer 2>/dev/null; rm -f -- @FILE@\n";
const REMOVE: &str = "rm -f -- @NAMES@\n";

/// After verification: the switch disarmed (the fresh login worked)
/// before the backups it would restore from go.
pub fn finish(work: &Work, layout: &Layout) -> Script {
    let text = header(Kind::Finish, layout, true)
        + &fill(
            FINISH,
            &[
                (
                    "DISARM",
                    &fill_disarm(DISARM_OR_FAIL, work.sshd_switch.as_ref(), layout),
                ),
                ("REMOVE_BACKUPS", &remove_backups(work)),
            ],
        );
    Script::plain(Kind::Finish, text)
}

pub fn restore(work: &Work, layout: &Layout) -> Script {
    let text = header(Kind::Restore, layout, true)
        + &fill(
            RESTORE,
            &[
                ("STOP_COMMIT", &stop_commit(layout, "")),
                ("RESTORE", &restore_lines(work)),
            ],
        );
    Script::plain(Kind::Restore, text)
}

/// The handlers again, with the restored files; the owed handlers are
/// cleared once they ran.
pub fn handlers_again(work: &Work, layout: &Layout) -> Script {
    let text = header(Kind::HandlersAgain, layout, true)
        + &fill(
            HANDLERS_AGAIN,
            &[
                (
                    "HANDLERS",
                    &handlers(&work.handlers, &work.ssh_unit, "", ""),
                ),
                ("PENDING", &quote(&layout.pending_handlers())),
                ("DISARM", &disarm(work.sshd_switch.as_ref(), layout)),
            ],
        );
    Script::plain(Kind::HandlersAgain, text)
}

pub(super) fn disarm(switch: Option<&SshdSwitch>, layout: &Layout) -> String {
    fill_disarm(DISARM, switch, layout)
}

/// `template` ([`DISARM`] or [`DISARM_OR_FAIL`]) for this switch; nothing
/// without one.
fn fill_disarm(template: &str, switch: Option<&SshdSwitch>, layout: &Layout) -> String {
    switch.map_or_else(String::new, |switch| {
        fill(
            template,
            &[
                ("UNIT", &quote(&switch.unit)),
                ("AGAIN", &quote(&switch.unit_again())),
                ("FILE", &quote(&layout.revert_file(&switch.unit))),
                ("SECONDS", &switch.seconds.to_string()),
            ],
        )
    })
}

pub(super) fn backup_of(path: &str) -> String {
    let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
    format!("{dir}/.{base}{BACKUP_MARK}")
}

/// The marker beside a backup that says the file did not exist before.
pub(super) fn absent_of(path: &str) -> String {
    format!("{}.dockhand-absent", backup_of(path))
}

/// Every file's backup and its "did not exist" marker, in one `rm`.
pub(super) fn remove_backups(work: &Work) -> String {
    if work.files.is_empty() {
        return String::new();
    }
    let names: Vec<String> = work
        .files
        .iter()
        .flat_map(|file| [quote(&absent_of(&file.path)), quote(&backup_of(&file.path))])
        .collect();
    fill(REMOVE, &[("NAMES", &names.join(" "))])
}

/// `rm -f` of these names, quoted; nothing when there are none.
pub(super) fn remove<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.into_iter().map(quote).collect();
    if names.is_empty() {
        return String::new();
    }
    fill(REMOVE, &[("NAMES", &names.join(" "))])
}

/// Puts `path` back as it was before this apply. The restore, the
/// commit's rollback and the sshd dead-man switch use it.
pub(super) fn restore_path(path: &str) -> String {
    fill(
        RESTORE_PATH,
        &[
            ("BACKUP", &quote(&backup_of(path))),
            ("ABSENT", &quote(&absent_of(path))),
            ("PATH", &quote(path)),
        ],
    )
}

/// Every replaced file back from its backup (or gone where it did not
/// exist), modes and owners changed in place back to what they were, and
/// the directories this apply created removed.
pub(super) fn restore_lines(work: &Work) -> String {
    let mut text: String = work.files.iter().map(|f| restore_path(&f.path)).collect();
    for (path, mode, owner, group) in &work.previous_attributes {
        text += &fill(
            RESTORE_ATTRIBUTES,
            &[
                ("OWNER", &quote(&format!("{owner}:{group}"))),
                ("PATH", &quote(path)),
                ("MODE", &format!("{mode:04o}")),
            ],
        );
    }
    for user in &work.docker_group_additions {
        text += &fill(REMOVE_FROM_GROUP, &[("USER", &quote(user))]);
    }
    text + &remove_created_directories(work)
}

/// A rollback takes the accounts this apply put in the docker group out.
const REMOVE_FROM_GROUP: &str = "gpasswd -d @USER@ docker >/dev/null 2>&1 || :\n";

/// Deepest first.
pub(super) fn remove_created_directories(work: &Work) -> String {
    let mut created = work.created_directories.clone();
    created.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    created
        .iter()
        .map(|dir| fill(REMOVE_DIRECTORY, &[("DIR", &quote(dir))]))
        .collect()
}

/// Reads the start time of process `$g` (field 22 of /proc/$g/stat) into
/// `variable` with the shell's own `read`; the commit records it and the
/// restore compares it in the same way. The name, field 2, is the shell's
/// or sudo's: no spaces to shift the fields.
pub(super) fn read_start_time(variable: &str) -> String {
    format!(
        "read -r {} {variable} _ 2>/dev/null < /proc/\"$g\"/stat",
        ["_"; 21].join(" ")
    )
}
