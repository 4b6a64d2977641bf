//! Applying a plan on a host, in few round trips on its one connection:
//!
//! 1. **stage**: one command reads records from stdin, creates the
//!    directories, and writes each changed file to a fresh temp file in its
//!    target directory (created exclusively under umask 077, so never
//!    readable by others), sets owner and mode, and fsyncs it. Content
//!    travels only on stdin, never on a command line.
//! 2. **commit**: a script (also on stdin) validates the staged files,
//!    keeps the previous version of each as a hard-linked backup, renames
//!    each temp file over its target (atomic), runs post-commit checks
//!    (`sshd -t`), and runs the notified handlers in their fixed order. A
//!    failed check or handler restores the backups before it reports.
//! 3. **finish**: after the host verified, the backups go; if it did not,
//!    the rollback script restores them and runs the handlers again.
//!
//! A killed run leaves only hidden temp files (removed by the next stage)
//! or a mix of old and new whole files (converged by the next run): never
//! a half-written file, never wider permissions than asked.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::script::{self, quote as shell_quote};
use crate::core::event::Phase;
use crate::core::file_name;
use crate::core::plan::{ContentChange, HostPlan};
use crate::core::playbook::Handler;
use crate::core::resources::{Content, Resources};
use crate::error::{Error, Result};
use crate::transport::Transport;

use super::fleet::HostRun;

/// Prefix of staged temp files and suffix of backups, both hidden.
const TEMP_MARK: &str = ".dockhand-new-";
const BACKUP_MARK: &str = ".dockhand-backup";

/// The lock an apply holds on a host from before its first write until its
/// connection closes: two applies never interleave on one host.
pub const HOST_LOCK: &str = "/var/lib/dockhand/apply.lock";

/// How long an apply waits for another one to let go of the host (a run
/// just before this one may still be closing its connection).
pub const HOST_LOCK_WAIT: u32 = 30;

/// Takes the host's apply lock, held by a command that lives as long as
/// this connection (`flock` on the lock file, then waiting on its input):
/// however dockhand ends, the lock goes with its connection.
pub async fn lock_host(transport: &impl Transport, become_root: bool) -> Result<()> {
    let holder = format!(
        "mkdir -p -- {dir} && exec flock -w {HOST_LOCK_WAIT} -E 75 {lock} sh -c 'echo locked; exec cat >/dev/null'",
        dir = HOST_LOCK.rsplit_once('/').map(|(d, _)| d).unwrap_or("/"),
        lock = shell_quote(HOST_LOCK)
    );
    let command = script::inline(become_root, &holder);
    match transport.hold(&command).await? {
        None => Ok(()),
        Some(output) if output.status == crate::transport::ExitStatus::Code(75) => {
            Err(Error::Host {
                host: transport.host().to_string(),
                step: "lock the host".into(),
                reason: format!(
                    "another dockhand apply is working on this host (it has held {HOST_LOCK} for over {HOST_LOCK_WAIT}s); run again when it has finished"
                ),
            })
        }
        Some(output) => Err(Error::Host {
            host: transport.host().to_string(),
            step: "lock the host".into(),
            reason: format!("{}: {}", output.status, output.stderr_text().trim()),
        }),
    }
}

/// The process group of a running commit, so that a rollback after its
/// deadline can stop it (a handler may hang: a docker that never starts).
pub const COMMIT_GROUP: &str = "/var/lib/dockhand/commit.pgid";

/// Handlers owed by a commit, recorded on the host before any file is
/// replaced and cleared once they ran: a run killed in between leaves them
/// here, and the next run's gather picks them up and runs them.
pub const PENDING_HANDLERS: &str = "/var/lib/dockhand/pending-handlers";

/// One file to write.
#[derive(Debug, Clone)]
pub struct FileWrite {
    pub path: String,
    pub temp: String,
    pub content: Vec<u8>,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub validate: Option<String>,
    /// A secret's check never has its output shown: it could quote the
    /// secret.
    pub secret: bool,
    /// What validation checks instead of the staged file, when the file
    /// names other files of this write (daemon.json names the TLS files):
    /// a private temp copy that names their staged versions, so the check
    /// sees the very files that will be used before any is in place.
    pub check_copy: Option<(String, Vec<u8>)>,
}

/// What to do on one host.
#[derive(Debug, Clone, Default)]
pub struct Work {
    pub directories: Vec<(String, u32, String, String)>,
    /// Directories this apply creates: a rollback removes them again.
    pub created_directories: Vec<String>,
    pub files: Vec<FileWrite>,
    /// Files whose mode/owner/group alone change (no new content).
    pub attributes: Vec<(String, u32, String, String)>,
    /// What a rollback puts back on paths whose mode, owner or group this
    /// apply changes in place (files and existing directories).
    pub previous_attributes: Vec<(String, u32, String, String)>,
    pub handlers: Vec<Handler>,
    /// Run after the renames; a failure rolls back.
    pub post_checks: Vec<(String, String)>,
    pub ssh_unit: String,
    /// The sshd dead-man switch, when this apply reloads ssh with a new
    /// drop-in.
    pub sshd_switch: Option<SshdSwitch>,
    /// daemon.json's path and an interim document that turns live-restore
    /// on, put in place and reloaded before the renames, so docker's
    /// restart stops no running container.
    pub live_restore_first: Option<(String, String)>,
}

/// A transient systemd timer, armed before ssh is reloaded, that puts the
/// previous sshd drop-in back and reloads ssh after `seconds`; disarmed
/// once a fresh login has succeeded (or by a rollback, which restores the
/// drop-in itself). A lost session or a lockout undoes itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SshdSwitch {
    pub drop_in: String,
    pub unit: String,
    pub seconds: u32,
}

impl Work {
    pub fn is_empty(&self) -> bool {
        self.directories.is_empty()
            && self.files.is_empty()
            && self.attributes.is_empty()
            && self.handlers.is_empty()
    }
}

/// Turns a plan into work. `desired` supplies the content, which for
/// daemon.json is the merged document the plan computed.
pub fn work(
    desired: &Resources,
    plan: &HostPlan,
    ssh_unit: &str,
    random: &mut dyn FnMut() -> String,
) -> Result<Work, String> {
    let mut work = Work {
        handlers: plan.handlers.clone(),
        live_restore_first: plan.live_restore_first.clone(),
        ssh_unit: if ssh_unit.is_empty() {
            "ssh.service".into()
        } else {
            ssh_unit.to_string()
        },
        ..Work::default()
    };
    for change in &plan.changes {
        if let Some(dir) = desired.directories.iter().find(|d| d.path == change.path) {
            work.directories.push((
                dir.path.clone(),
                dir.mode,
                dir.owner.clone(),
                dir.group.clone(),
            ));
            if change.action == crate::core::plan::Action::Create {
                work.created_directories.push(dir.path.clone());
            } else {
                work.previous_attributes
                    .push(previous(change, dir.mode, &dir.owner, &dir.group));
            }
            continue;
        }
        let file = desired
            .files
            .iter()
            .find(|f| f.path == change.path)
            .ok_or_else(|| format!("{}: planned but not desired", change.path))?;
        let content = match (&change.content, &file.content) {
            (None, _) => {
                work.attributes.push((
                    file.path.clone(),
                    file.mode,
                    file.owner.clone(),
                    file.group.clone(),
                ));
                work.previous_attributes.push(previous(
                    change,
                    file.mode,
                    &file.owner,
                    &file.group,
                ));
                continue;
            }
            (Some(ContentChange::Json { after, .. }), _) => after.clone().into_bytes(),
            (Some(_), Content::Bytes(bytes)) => bytes.clone(),
            (Some(_), Content::Pending(reason)) => {
                return Err(format!("{}: content not ready ({reason})", file.path));
            }
            (Some(_), Content::DaemonJson { .. }) => {
                return Err(format!("{}: merged content missing", file.path));
            }
        };
        let (dir, base) = file.path.rsplit_once('/').unwrap_or(("", &file.path));
        let temp = format!("{dir}/.{}{TEMP_MARK}{}", word_safe(base), random());
        if let Some(check) = &file.validate {
            if check.contains("%s") {
                // Checked on the staged file, before anything is replaced.
            } else {
                work.post_checks.push((file.path.clone(), check.clone()));
            }
        }
        work.files.push(FileWrite {
            path: file.path.clone(),
            temp,
            content,
            mode: file.mode,
            owner: file.owner.clone(),
            group: file.group.clone(),
            validate: file.validate.clone(),
            secret: file.secret,
            check_copy: None,
        });
    }
    for index in 0..work.files.len() {
        let is_daemon_json = desired.files.iter().any(|f| {
            f.path == work.files[index].path && matches!(f.content, Content::DaemonJson { .. })
        });
        let validated_staged = work.files[index]
            .validate
            .as_deref()
            .is_some_and(|v| v.contains("%s"));
        if is_daemon_json && validated_staged {
            let copy = daemon_json_check_copy(&work.files[index].content, &work.files)?;
            let (dir, base) = work.files[index].path.rsplit_once('/').unwrap_or(("", ""));
            let temp = format!("{dir}/.{}{TEMP_MARK}check-{}", word_safe(base), random());
            work.files[index].check_copy = Some((temp, copy));
        }
    }
    if work.handlers.contains(&Handler::ReloadSsh)
        && let Some((drop_in, _)) = &desired.sshd_expected
        && work.files.iter().any(|f| &f.path == drop_in)
    {
        work.sshd_switch = Some(SshdSwitch {
            drop_in: drop_in.clone(),
            unit: format!("dockhand-sshd-revert-{}", random()),
            seconds: desired.sshd_revert_after,
        });
    }
    Ok(work)
}

/// Arms the dead-man switch (before the handlers reload ssh).
fn arm_switch(switch: &SshdSwitch, ssh_unit: &str) -> String {
    let revert = format!(
        "{}; systemctl reload {}",
        restore_line(&switch.drop_in),
        shell_quote(ssh_unit)
    );
    format!(
        "systemd-run --quiet --collect --unit={unit} --on-active={seconds} --timer-property=AccuracySec=1s /bin/sh -c {revert} >/dev/null 2>&1 \
         || {{ printf 'error arm the sshd dead-man switch (systemd-run)\\n'; rollback; exit 1; }}\nprintf 'ok armed {unit}\\n'\n",
        unit = shell_quote(&switch.unit),
        seconds = switch.seconds,
        revert = shell_quote(&revert),
    )
}

/// Disarms the switch: its timer goes. Its service, if it ran, went by
/// itself: `--collect` unloads a transient unit even when it failed.
fn disarm_switch(work: &Work) -> String {
    match &work.sshd_switch {
        Some(switch) => format!(
            "systemctl stop {unit}.timer 2>/dev/null; :\n",
            unit = shell_quote(&switch.unit)
        ),
        None => String::new(),
    }
}

/// daemon.json with every path that names a file of this write (the TLS
/// files) pointed at that file's staged temp instead.
fn daemon_json_check_copy(content: &[u8], files: &[FileWrite]) -> Result<Vec<u8>, String> {
    let mut document = crate::core::daemon_json::parse(content)
        .map_err(|e| format!("daemon.json to validate: {e}"))?;
    for value in document.values_mut() {
        if let Some(staged) = value
            .as_str()
            .and_then(|path| files.iter().find(|f| f.path == path))
        {
            *value = serde_json::Value::String(staged.temp.clone());
        }
    }
    Ok(crate::core::daemon_json::render(&document).into_bytes())
}

/// A path's mode, owner and group before this change (what the plan saw).
fn previous(
    change: &crate::core::plan::Change,
    mode: u32,
    owner: &str,
    group: &str,
) -> (String, u32, String, String) {
    let before = |attribute: &Option<crate::core::plan::AttributeChange>, now: &str| {
        attribute
            .as_ref()
            .and_then(|a| a.from.clone())
            .unwrap_or_else(|| now.to_string())
    };
    let old_mode = change
        .mode
        .as_ref()
        .and_then(|m| m.from.as_deref())
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .unwrap_or(mode);
    (
        change.path.clone(),
        old_mode,
        before(&change.owner, owner),
        before(&change.group, group),
    )
}

/// A file name as one word of a staging record: temp names are made from
/// it, and a record's fields are separated by spaces.
fn word_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The staging command: reads `D`/`F` records (and each file's bytes)
/// from stdin. `dd iflag=fullblock` reads exactly a file's bytes, no more.
/// The temp file is created with noclobber (`set -C`) so an existing name
/// is never written through; directory names come from parameter
/// expansion, not `dirname`. Sizes, owners, modes and the sync are done
/// for all files at once at the end ([`staged_check`]): a fork per file
/// and step costs the host half a millisecond, and a fleet on few cores
/// pays it in wall time. Until then a temp is root's and private (umask
/// 077), never more open than its target.
const STAGE: &str = r#"fail() { printf 'error %s\n' "$*"; exit 1; }
while IFS=' ' read -r kind a b c d e path; do
  case "$kind" in
    D) if [ "$a" != - ]; then mkdir -p -- "$path" && chown -- "$b:$c" "$path" && chmod -- "$a" "$path" || fail "directory $path"; fi
       for old in "$path"/.*TEMPMARK* "$path"/.*BACKUPMARK*; do [ -e "$old" ] && rm -f -- "$old"; done
       printf 'dir %s\n' "$path" ;;
    F) dir=${path%/*}
       [ -d "${dir:-/}" ] || fail "no directory for $path"
       e="$dir/$e"
       set -C; if true 2>/dev/null > "$e"; then set +C; else set +C; fail "cannot create a temp file beside $path"; fi
       if [ "$a" -gt 0 ]; then dd bs="$a" count=1 iflag=fullblock of="$e" conv=notrunc status=none || fail "write $path"; fi
       printf 'staged %s\n' "$path" ;;
    END) staged; printf 'done\n'; exit 0 ;;
    *) fail "bad record $kind" ;;
  esac
done
fail "input ended early""#;

fn stage_script(work: &Work) -> String {
    script::preamble()
        + &staged_check(work)
        + &STAGE
            .replace("TEMPMARK", TEMP_MARK)
            .replace("BACKUPMARK", BACKUP_MARK)
}

/// A temp file staging writes: a file's own, or its check copy.
struct Temp<'a> {
    name: &'a str,
    size: usize,
    mode: u32,
    owner: String,
    /// The path it stands for, for messages.
    path: &'a str,
}

fn staged_temps(work: &Work) -> Vec<Temp<'_>> {
    let mut temps = Vec::new();
    for file in &work.files {
        temps.push(Temp {
            name: &file.temp,
            size: file.content.len(),
            mode: file.mode,
            owner: format!("{}:{}", file.owner, file.group),
            path: &file.path,
        });
        if let Some((temp, copy)) = &file.check_copy {
            temps.push(Temp {
                name: temp,
                size: copy.len(),
                mode: 0o600,
                owner: "root:root".into(),
                path: &file.path,
            });
        }
    }
    temps
}

/// The shell function `staged`, run once every record was read: one `stat`
/// checks every temp's size (and only when one is short, each is looked at
/// again to name it), one `chown` per owner and one `chmod` per mode set
/// them, one `sync` makes them durable before the commit renames them.
fn staged_check(work: &Work) -> String {
    let temps = staged_temps(work);
    if temps.is_empty() {
        return "staged() { :; }\n".into();
    }
    let names = |group: &[&Temp]| {
        group
            .iter()
            .map(|t| shell_quote(t.name))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let paths = |group: &[&Temp]| {
        let mut paths: Vec<&str> = group.iter().map(|t| t.path).collect();
        paths.sort_unstable();
        paths.dedup();
        paths.join(", ")
    };
    let every: Vec<&Temp> = temps.iter().collect();
    let all = names(&every);
    let sizes: Vec<String> = temps.iter().map(|t| t.size.to_string()).collect();
    let mut s = format!(
        "staged() {{\nsizes=$(stat -c %s -- {all} 2>/dev/null) || :\nif [ \"$sizes\" != {} ]; then\n",
        shell_quote(&sizes.join("\n"))
    );
    for temp in &temps {
        s.push_str(&format!(
            "  [ \"$(stat -c %s -- {} 2>/dev/null)\" = {} ] || fail {}\n",
            shell_quote(temp.name),
            temp.size,
            shell_quote(&format!("short write for {}", temp.path))
        ));
    }
    s.push_str("  fail 'short write'\nfi\n");
    // Each temp must still be the regular file staging created, not a
    // symlink put in its place, before root hands it to its owner (`-h`:
    // never through a link). Shell builtins: no fork.
    s.push_str(&format!(
        "for t in {all}; do [ -f \"$t\" ] && [ ! -L \"$t\" ] || fail \"not a regular file: $t\"; done\n"
    ));
    let mut owners: BTreeMap<&str, Vec<&Temp>> = BTreeMap::new();
    let mut modes: BTreeMap<u32, Vec<&Temp>> = BTreeMap::new();
    for temp in &temps {
        owners.entry(&temp.owner).or_default().push(temp);
        modes.entry(temp.mode).or_default().push(temp);
    }
    for (owner, group) in &owners {
        s.push_str(&format!(
            "chown -h -- {} {} || fail {}\n",
            shell_quote(owner),
            names(group),
            shell_quote(&format!("owner of {}", paths(group)))
        ));
    }
    for (mode, group) in &modes {
        s.push_str(&format!(
            "chmod -- {mode:04o} {} || fail {}\n",
            names(group),
            shell_quote(&format!("mode of {}", paths(group)))
        ));
    }
    s.push_str(&format!("sync -- {all} 2>/dev/null || sync\n}}\n"));
    s
}

/// The records for the staging command. For a file: `F size mode owner
/// group temp path`, then exactly `size` bytes (mode, owner and group are
/// for the record: the script sets them from [`staged_check`], which knows
/// them too). Every field but the last
/// is one word (the temp is a name in the path's directory, made of safe
/// characters; owners and modes are checked at load), and the path is the
/// rest of the line, spaces and all.
pub fn stage_input(work: &Work) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, mode, owner, group) in &work.directories {
        out.extend(format!("D {mode:04o} {owner} {group} - - {path}\n").as_bytes());
    }
    for file in &work.files {
        // Directories of files that exist already get their stale temp
        // files cleared too.
        let dir = file.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
        if !work.directories.iter().any(|(d, ..)| d == dir) {
            out.extend(format!("D - - - - - {dir}\n").as_bytes());
        }
    }
    for file in &work.files {
        out.extend(
            format!(
                "F {} {:04o} {} {} {} {}\n",
                file.content.len(),
                file.mode,
                file.owner,
                file.group,
                file_name(&file.temp),
                file.path
            )
            .as_bytes(),
        );
        out.extend(&file.content);
        if let Some((temp, copy)) = &file.check_copy {
            // Private to root: it is read by the check only.
            out.extend(
                format!(
                    "F {} 0600 root root {} {}\n",
                    copy.len(),
                    file_name(temp),
                    file.path
                )
                .as_bytes(),
            );
            out.extend(copy);
        }
    }
    out.extend(b"END - - - - - -\n");
    out
}

/// Starts docker.service, and when that fails but dockerd did not (no
/// exit status of its own, 1 to 199), once more a second later: systemd
/// could not set it up (219/CGROUP of docker.socket's or dockerd's
/// process, seen on nspawn hosts under load when a unit starts right
/// after it stopped). Exits 1 with the journal's last lines otherwise.
/// The restart handler uses it, and so do the tests that stop docker.
pub const START_DOCKER: &str = "if ! systemctl start docker.service; then \
       st=$(systemctl show -p ExecMainStatus --value docker.service); \
       case $st in \
         [1-9]|[1-9][0-9]|1[0-9][0-9]) false ;; \
         *) echo \"docker did not start, and dockerd did not fail (exit status ${st:-none}): starting it once more\"; \
            sleep 1; systemctl reset-failed docker.service docker.socket; systemctl start docker.service ;; \
       esac || { journalctl -u docker.service -u docker.socket -n 4 --no-pager -o cat; exit 1; }; \
     fi";

/// Handler commands, in their fixed order. A restart of docker waits until
/// the daemon answers on its socket.
fn handler_script(handlers: &[Handler], ssh_unit: &str) -> String {
    let mut script = String::new();
    let mut sorted = handlers.to_vec();
    sorted.sort();
    sorted.dedup();
    for handler in sorted {
        let command = match handler {
            Handler::DaemonReload => "systemctl daemon-reload".to_string(),
            // reset-failed: a rollback must be able to start docker again
            // even after systemd's start limit tripped on a bad config.
            // docker.socket is renewed when the unit is socket-activated
            // (`-H fd://`: the packaged unit, after a rollback): a dockerd
            // started without it (our override) bound /var/run/docker.sock
            // itself and removed it on exit, so the socket unit's path is
            // gone. With our override the socket is left alone.
            // The start is START_DOCKER, tried once more when systemd
            // rather than dockerd failed.
            // The start blocks until docker is up or systemd gave up. A
            // Type=notify unit (Debian's docker.io, docker-ce) is active
            // only once dockerd sent READY=1, which it does after its API
            // listeners serve: that is the answer, and the verification
            // that follows asks the daemon over mutual TLS anyway. Any
            // other unit must answer on its socket, asked with whatever
            // client the host has: curl, else the docker CLI (a Go binary
            // that costs the host about 45 ms to start), else systemd's
            // word.
            Handler::RestartDocker => [
                "systemctl reset-failed docker.service docker.socket 2>/dev/null; \
                 systemctl stop docker.service; \
                 props=$(systemctl show -p Type -p ExecStart docker.service); \
                 case $props in *fd://*) systemctl cat docker.socket >/dev/null 2>&1 && systemctl restart docker.socket ;; esac; ",
                START_DOCKER,
                "; case $props in *Type=notify*) exit 0 ;; esac; \
                 if command -v curl >/dev/null; then answers() { curl -sf --max-time 2 --unix-socket /var/run/docker.sock http://docker/_ping >/dev/null; }; \
                 elif command -v docker >/dev/null; then answers() { docker version >/dev/null 2>&1; }; \
                 else answers() { systemctl is-active --quiet docker.service; }; fi; \
                 i=0; until answers; do \
                   i=$((i+1)); [ $i -lt 120 ] || { echo 'docker did not answer on its socket within 60s'; exit 1; }; sleep 0.5; done",
            ]
            .concat(),
            // sshd re-executes itself on a reload: for a moment nothing
            // listens, and a login then is refused. The reload is done
            // when every listening socket is a new one (no inode from
            // before, read from /proc/net, and as many as before: IPv4 and
            // IPv6), so the next login, ours or a user's, finds sshd. A
            // socket-activated sshd keeps systemd's socket. Each look is one
            // awk and builtins: on a loaded host sshd's re-exec can take a
            // second, and a poll that forks five processes every 100 ms
            // adds to the load it waits out.
            Handler::ReloadSsh => format!(
                "port=$(sshd -T 2>/dev/null | awk '$1==\"port\" {{printf \"%04X\", $2; exit}}'); \
                 listeners() {{ awk -v p=\":${{port:-0016}}\" '$4==\"0A\" && substr($2, length($2)-4)==p {{printf \"%s \", $10}}' /proc/net/tcp /proc/net/tcp6 2>/dev/null; }}; \
                 before=$(listeners); \
                 sshd -t && systemctl reload {unit} || exit 1; \
                 if [ -n \"$before\" ] && [ \"$(systemctl is-active ssh.socket sshd.socket 2>/dev/null | grep -c '^active')\" = 0 ]; then \
                   renewed() {{ [ -n \"$now\" ] || return 1; for old in $before; do case \" $now \" in *\" $old \"*) return 1;; esac; done; \
                     set -- $now; n=$#; set -- $before; [ \"$n\" -ge $# ]; }}; \
                   i=0; while now=$(listeners); ! renewed; do \
                     i=$((i+1)); [ $i -lt 100 ] || {{ echo 'sshd did not listen again within 10s of the reload'; exit 1; }}; sleep 0.1; done; \
                 fi",
                unit = shell_quote(ssh_unit)
            ),
        };
        // Each handler's output goes to the one private temp file (mktemp,
        // 0600 under the script's umask), never to a name others can
        // predict; the redirection empties it for the next handler.
        script.push_str(&format!(
            "if ( {command} ) >\"$log\" 2>&1; then printf 'handler {name} ok\\n'; \
             else printf 'error handler {name} failed: %s\\n' \"$(tail -n 5 \"$log\" | tr '\\n' ' ')\"; handler_failed=1; fi\n",
            name = handler.name(),
        ));
    }
    if !script.is_empty() {
        script = format!(
            "log=$(mktemp) || {{ printf 'error handlers: no temp file\\n'; exit 1; }}\n{script}rm -f -- \"$log\"\n"
        );
    }
    script
}

/// Every file's backup and its "did not exist" marker, quoted, for one `rm`.
fn backup_names(work: &Work) -> String {
    work.files
        .iter()
        .flat_map(|file| {
            [
                shell_quote(&absent_of(&file.path)),
                shell_quote(&backup_of(&file.path)),
            ]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn backup_of(path: &str) -> String {
    let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
    format!("{dir}/.{base}{BACKUP_MARK}")
}

/// The marker beside a backup that says the file did not exist before.
fn absent_of(path: &str) -> String {
    format!("{}.dockhand-absent", backup_of(path))
}

/// Puts `path` back as it was before this apply: its backup, or no file
/// where there was none. The rollback and the sshd dead-man switch use it.
fn restore_line(path: &str) -> String {
    let (backup, absent, path) = (
        shell_quote(&backup_of(path)),
        shell_quote(&absent_of(path)),
        shell_quote(path),
    );
    format!(
        "if [ -e {backup} ]; then mv -f -- {backup} {path}; elif [ -e {absent} ]; then rm -f -- {path} {absent}; fi"
    )
}

/// Restores every replaced file from its backup (or removes it where it
/// did not exist before).
fn restore_lines(work: &Work) -> String {
    let mut text = String::new();
    for file in &work.files {
        text.push_str(&restore_line(&file.path));
        text.push('\n');
    }
    // Modes and owners changed in place go back to what they were.
    for (path, mode, owner, group) in &work.previous_attributes {
        let (path, owner_group) = (shell_quote(path), shell_quote(&format!("{owner}:{group}")));
        text.push_str(&format!(
            "chown -- {owner_group} {path} 2>/dev/null; chmod -- {mode:04o} {path} 2>/dev/null\n"
        ));
    }
    text.push_str(&remove_created_directories(work));
    text
}

/// Removes the directories this apply created, deepest first; one that
/// holds anything else stays.
fn remove_created_directories(work: &Work) -> String {
    let mut created = work.created_directories.clone();
    created.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    created
        .iter()
        .map(|dir| format!("rmdir -- {} 2>/dev/null || :\n", shell_quote(dir)))
        .collect()
}

/// Reads the start time of process `$g` (field 22 of /proc/$g/stat) into
/// `variable` with the shell's own `read`; the commit records it and the
/// rollback compares it in the same way. The name, field 2, is the
/// shell's or sudo's: no spaces to shift the fields.
fn read_start_time(variable: &str) -> String {
    format!(
        "read -r {} {variable} _ 2>/dev/null < /proc/$g/stat",
        ["_"; 21].join(" ")
    )
}

/// The commit script: validate, back up, rename, check, handlers. Its
/// output lines are `ok ...`, `handler NAME ok`, or `error ...`.
pub fn commit_script(work: &Work) -> String {
    let mut s = format!("{}handler_failed=0\n", script::preamble());
    // Who runs this commit (process group and its start time, so a stale
    // record never names another process), for a rollback that must stop
    // a commit past its deadline: fields 5 and 22 of /proc/PID/stat.
    s.push_str(&format!(
        "{{ [ -d {dir} ] || mkdir -p -- {dir}; }} && read -r _ _ _ _ g _ < /proc/$$/stat && {read_start} \
         && printf '%s %s\\n' \"$g\" \"$start\" > {COMMIT_GROUP} 2>/dev/null || :\n\
         trap 'rm -f -- {COMMIT_GROUP}' EXIT\n",
        dir = COMMIT_GROUP.rsplit_once('/').map(|(d, _)| d).unwrap_or("/"),
        read_start = read_start_time("start"),
    ));
    let cleanup: String = work
        .files
        .iter()
        .flat_map(|f| std::iter::once(&f.temp).chain(f.check_copy.as_ref().map(|(t, _)| t)))
        .map(|temp| format!("rm -f -- {}\n", shell_quote(temp)))
        .collect();
    s.push_str(&format!("cleanup() {{\n{cleanup}:\n}}\n"));
    s.push_str(&format!("rollback() {{\n{}:\n}}\n", restore_lines(work)));
    // Nothing was replaced yet when a check of the staged files fails:
    // the temps go, and so do the directories staging created.
    s.push_str(&format!(
        "refused() {{\ncleanup\n{}:\n}}\n",
        remove_created_directories(work)
    ));
    // Pre-commit validation on the staged files.
    for file in &work.files {
        if let Some(check) = file.validate.as_deref().filter(|c| c.contains("%s")) {
            let checked = file.check_copy.as_ref().map_or(&file.temp, |(t, _)| t);
            let command = check.replace("%s", &shell_quote(checked));
            let message = if file.secret {
                "msg='the check failed (its output is not shown: the file is secret)'"
            } else {
                "msg=$(printf '%s' \"$out\" | grep -v 'level=info' | tail -n 3 | tr '\\n' ' ')"
            };
            s.push_str(&format!(
                "if ! out=$( {command} 2>&1 ); then {message}; printf 'error validate %s: %s\\n' {path} \"${{msg:-the check failed without a message}}\"; refused; exit 1; fi\n",
                path = shell_quote(&file.path)
            ));
        }
    }
    for (copy, _) in work.files.iter().filter_map(|f| f.check_copy.as_ref()) {
        s.push_str(&format!("rm -f -- {}\n", shell_quote(copy)));
    }
    if !work.handlers.is_empty() {
        let names: Vec<&str> = work.handlers.iter().map(|h| h.name()).collect();
        s.push_str(&format!(
            "mkdir -p -- {dir} && printf '%s\\n' {names} >> {PENDING_HANDLERS} || {{ printf 'error record pending handlers\\n'; cleanup; exit 1; }}\n",
            dir = PENDING_HANDLERS.rsplit_once('/').map(|(d, _)| d).unwrap_or("/"),
            names = names.join(" ")
        ));
    }
    // Backups (hard links keep the old inode: same content, same mode);
    // stale ones from a run killed mid-way go first, in one `rm`.
    if !work.files.is_empty() {
        s.push_str(&format!("rm -f -- {}\n", backup_names(work)));
    }
    for file in &work.files {
        let (path, backup) = (shell_quote(&file.path), shell_quote(&backup_of(&file.path)));
        let absent = shell_quote(&absent_of(&file.path));
        s.push_str(&format!(
            "if [ -e {path} ]; then ln -f -- {path} {backup} || {{ printf 'error backup %s\\n' {path}; cleanup; exit 1; }}; else : > {absent}; fi\n"
        ));
    }
    if let Some((path, interim)) = &work.live_restore_first {
        s.push_str(&live_restore_first(path, interim));
    }
    for file in &work.files {
        s.push_str(&format!(
            "mv -f -- {} {} || {{ printf 'error rename %s\\n' {}; rollback; cleanup; exit 1; }}\n",
            shell_quote(&file.temp),
            shell_quote(&file.path),
            shell_quote(&file.path)
        ));
    }
    for (path, mode, owner, group) in &work.attributes {
        let path = shell_quote(path);
        s.push_str(&format!(
            "chown -- {owner_group} {path} && chmod -- {mode:04o} {path} || {{ printf 'error attributes %s\\n' {path}; rollback; exit 1; }}\n",
            owner_group = shell_quote(&format!("{owner}:{group}"))
        ));
    }
    s.push_str("sync\nprintf 'ok committed\\n'\n");
    for (path, check) in &work.post_checks {
        s.push_str(&format!(
            "if ! out=$( {check} 2>&1 ); then msg=$(printf '%s' \"$out\" | tail -n 3 | tr '\\n' ' '); printf 'error check after writing %s: %s\\n' {path} \"${{msg:-the check failed without a message}}\"; rollback; printf 'rolled-back\\n'; exit 1; fi\n",
            path = shell_quote(path)
        ));
    }
    if let Some(switch) = &work.sshd_switch {
        s.push_str(&arm_switch(switch, &work.ssh_unit));
    }
    s.push_str(&handler_script(&work.handlers, &work.ssh_unit));
    s.push_str(&format!(
        "[ \"$handler_failed\" = 0 ] || exit 1\nrm -f -- {PENDING_HANDLERS} {COMMIT_GROUP}; trap - EXIT\nprintf 'ok handlers\\n'\n"
    ));
    s
}

/// Puts the interim daemon.json (the host's own with live-restore on) in
/// place and has dockerd reload it: live-restore is one of the options
/// dockerd takes on a reload, and a reload stops no container. Waits for
/// dockerd's own word in the journal that it reloaded; its error, or no
/// word within 10 s, puts the original back and stops the commit. Runs
/// after the backups, so a rollback restores the original file.
fn live_restore_first(path: &str, interim: &str) -> String {
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
    let temp = shell_quote(&format!("{dir}/{TEMP_MARK}live-restore"));
    let path = shell_quote(path);
    format!(
        "abandon() {{ rm -f -- {temp}; printf 'error live-restore first: %s\\n' \"$1\"; rollback; printf 'rolled-back\\n'; cleanup; exit 1; }}\n\
         rm -f -- {temp} && cat > {temp} <<'DOCKHAND_LIVE_RESTORE'\n{interim}DOCKHAND_LIVE_RESTORE\n\
         chown root:root {temp} && chmod 0644 {temp} && mv -f -- {temp} {path} || abandon \"cannot write \"{path}\n\
         since=$(date +%s)\n\
         {{ systemctl reload docker.service 2>/dev/null || kill -HUP \"$(systemctl show -p MainPID --value docker.service)\"; }} \
           || abandon 'dockerd could not be asked to reload'\n\
         i=0; while :; do \
           said=$(journalctl -u docker.service --since \"@$since\" -o cat 2>/dev/null | grep -E 'Reloaded configuration|Error reconfiguring' | tail -n 1); \
           case $said in *Reloaded*) break ;; ?*) abandon \"$said\" ;; esac; \
           i=$((i+1)); [ $i -lt 50 ] || abandon 'dockerd did not reload its configuration within 10s'; sleep 0.2; done\n\
         printf 'ok live-restore\\n'\n"
    )
}

/// After verification: drop the backups.
pub fn finish_script(work: &Work) -> String {
    // The fresh login worked: the switch is disarmed before the backups it
    // would restore from go.
    let mut s = disarm_switch(work);
    if !work.files.is_empty() {
        s.push_str(&format!("rm -f -- {}\n", backup_names(work)));
    }
    s.push_str("printf 'ok finished\\n'\n");
    s
}

/// After a failed verification, or a commit that failed or missed its
/// deadline: stop a commit still running, and restore the previous files.
pub fn restore_script(work: &Work) -> String {
    let mut s = script::preamble();
    // A commit still running (it missed its deadline: a handler hangs) is
    // stopped first, so it cannot go on replacing files under the rollback.
    s.push_str(&format!(
        "if read -r g start < {COMMIT_GROUP} 2>/dev/null && [ \"$g\" -gt 1 ] 2>/dev/null \
           && {read_now} && [ \"$now\" = \"$start\" ]; then kill -TERM -- \"-$g\" 2>/dev/null; sleep 0.2; kill -KILL -- \"-$g\" 2>/dev/null; fi; rm -f -- {COMMIT_GROUP}\n",
        read_now = read_start_time("now"),
    ));
    s.push_str(&disarm_switch(work));
    s.push_str(&restore_lines(work));
    s.push_str("printf 'ok restored\\n'\n");
    s
}

/// Then the handlers again, so the restored files are in effect.
pub fn rollback_script(work: &Work) -> String {
    let mut s = format!("{}handler_failed=0\n", script::preamble());
    s.push_str(&handler_script(&work.handlers, &work.ssh_unit));
    s.push_str(&format!(
        "[ \"$handler_failed\" = 0 ] && rm -f -- {PENDING_HANDLERS}\nprintf 'ok rolled-back\\n'\n"
    ));
    s
}

/// Runs a script given on stdin (through sudo when `become`), and turns an
/// `error ...` line into an error naming the host and `step`.
async fn run_script(
    transport: &impl Transport,
    step: &str,
    become_root: bool,
    script: &str,
) -> Result<String> {
    let output = transport
        .exec(script::from_stdin(become_root), script.as_bytes())
        .await?;
    check(transport.host(), step, &output)
}

fn check(host: &str, step: &str, output: &crate::transport::ExecOutput) -> Result<String> {
    let text = output.stdout_text();
    if let Some(line) = text.lines().find_map(|l| l.strip_prefix("error ")) {
        return Err(Error::Host {
            host: host.to_string(),
            step: step.to_string(),
            reason: line.to_string(),
        });
    }
    if !output.success() {
        return Err(Error::Host {
            host: host.to_string(),
            step: step.to_string(),
            reason: format!("{}: {}", output.status, output.stderr_text().trim()),
        });
    }
    Ok(text)
}

/// Stage, then commit (with checks and handlers). When the commit got as
/// far as replacing files and then failed (a handler: dockerd would not
/// start with the new settings), the previous files are restored and the
/// handlers run again before the error is returned.
pub async fn apply(
    transport: &impl Transport,
    work: &Work,
    become_root: bool,
    run: &HostRun,
) -> Result<()> {
    if !work.directories.is_empty() || !work.files.is_empty() {
        let command = script::inline(become_root, &stage_script(work));
        let input = stage_input(work);
        let output = run
            .step(
                Phase::Staging,
                run.deadlines.step,
                transport.exec(&command, &input),
            )
            .await?;
        check(transport.host(), "stage files", &output)?;
    }
    let script = commit_script(work);
    let output = run
        .step(
            Phase::Committing {
                handlers: work.handlers.clone(),
            },
            run.deadlines.handlers,
            transport.exec(script::from_stdin(become_root), script.as_bytes()),
        )
        .await?;
    match check(transport.host(), "commit", &output) {
        Ok(_) => Ok(()),
        Err(err)
            if output.stdout_text().lines().any(|l| l == "ok committed")
                && !output.stdout_text().contains("rolled-back") =>
        {
            let restored = rollback(transport, work, become_root, run).await;
            let Error::Host { host, step, reason } = err else {
                return Err(err);
            };
            Err(Error::Host {
                host,
                step,
                reason: format!("{reason}; {restored}"),
            })
        }
        Err(Error::Host { host, step, reason }) if output.stdout_text().contains("rolled-back") => {
            Err(Error::Host {
                host,
                step,
                reason: format!("{reason}; the previous files were restored"),
            })
        }
        Err(err) => Err(err),
    }
}

pub async fn finish(transport: &impl Transport, work: &Work, become_root: bool) -> Result<()> {
    run_script(
        transport,
        "remove backups",
        become_root,
        &finish_script(work),
    )
    .await
    .map(|_| ())
}

/// Restores the previous files (under the step deadline), then runs the
/// handlers again with them (under the handlers' deadline); says in words
/// how it went, for the host's error.
pub async fn rollback(
    transport: &impl Transport,
    work: &Work,
    become_root: bool,
    run: &HostRun,
) -> String {
    let strip = |e: Error| e.without_host(&run.host);
    let restored = run
        .step(
            Phase::RollingBack,
            run.deadlines.step,
            run_script(
                transport,
                "restore the previous files",
                become_root,
                &restore_script(work),
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
                &rollback_script(work),
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

/// Random hex for temp names (not secret; unique).
pub fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    crate::random::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(bytes)
        .replace(['-', '_'], "x")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan;
    use crate::core::resources::{DirectoryResource, FileResource};
    use crate::core::state::ActualState;

    fn resources() -> Resources {
        Resources {
            directories: vec![DirectoryResource {
                path: "/etc/t".into(),
                mode: 0o755,
                owner: "root".into(),
                group: "root".into(),
            }],
            files: vec![
                FileResource {
                    secret: true,
                    ..FileResource::root_owned(
                        "/etc/t/key.pem",
                        Content::Bytes(b"SECRET KEY BYTES\n".to_vec()),
                        0o400,
                        vec![Handler::RestartDocker],
                    )
                },
                FileResource {
                    validate: Some("sshd -t -f /etc/ssh/sshd_config".into()),
                    ..FileResource::root_owned(
                        "/etc/t/sshd.conf",
                        Content::Bytes(b"A no\n".to_vec()),
                        0o644,
                        vec![Handler::ReloadSsh],
                    )
                },
            ],
            ..Resources::default()
        }
    }

    fn fresh_work() -> Work {
        let desired = resources();
        let plan = plan::plan(&desired, &ActualState::default()).unwrap();
        let mut n = 0;
        work(&desired, &plan, "ssh.service", &mut || {
            n += 1;
            format!("r{n}")
        })
        .unwrap()
    }

    #[test]
    fn keys_travel_only_on_stdin() {
        let work = fresh_work();
        assert_eq!(work.files[0].temp, "/etc/t/.key.pem.dockhand-new-r1");
        let input = stage_input(&work);
        let text = String::from_utf8_lossy(&input);
        assert!(
            text.contains(
                "F 17 0400 root root .key.pem.dockhand-new-r1 /etc/t/key.pem\nSECRET KEY BYTES\n"
            ),
            "{text}"
        );
        for script in [
            stage_script(&work),
            commit_script(&work),
            finish_script(&work),
            restore_script(&work),
            rollback_script(&work),
        ] {
            assert!(!script.contains("SECRET"), "{script}");
        }
    }

    /// Runs the staging script with `/bin/sh` on this machine.
    fn stage_on_this_machine(work: &Work, input: &[u8]) -> (bool, String) {
        use std::io::Write as _;
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(stage_script(work))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.success(), stdout)
    }

    /// Work that writes into `dir` (a new directory, with a space in its
    /// name) as this machine's user: a private key, an empty file, and a
    /// file with a check copy.
    fn work_in(dir: &str) -> Work {
        let id = |flag: &str| {
            let out = std::process::Command::new("id").arg(flag).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let (user, group) = (id("-un"), id("-gn"));
        let file = |name: &str, content: &[u8], mode: u32| FileWrite {
            path: format!("{dir}/{name}"),
            temp: format!("{dir}/.{name}{TEMP_MARK}r"),
            content: content.to_vec(),
            mode,
            owner: user.clone(),
            group: group.clone(),
            validate: None,
            secret: false,
            check_copy: None,
        };
        let mut conf = file("daemon.json", b"{\"a\": 1}\n", 0o444);
        conf.check_copy = Some((
            format!("{dir}/.daemon.json{TEMP_MARK}check-r"),
            b"{}".to_vec(),
        ));
        Work {
            directories: vec![(dir.to_string(), 0o750, user.clone(), group.clone())],
            files: vec![
                file("key.pem", b"KEY BYTES", 0o400),
                file("empty", b"", 0o644),
                conf,
            ],
            ..Work::default()
        }
    }

    #[test]
    fn staging_writes_every_temp_with_its_mode_on_a_real_shell() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let dir = format!("{}/new dir", root.path().display());
        let work = work_in(&dir);
        let (ok, stdout) = stage_on_this_machine(&work, &stage_input(&work));
        assert!(ok && stdout.ends_with("done\n"), "{stdout}");
        let mode = |path: &str| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o750);
        for file in &work.files {
            assert_eq!(
                std::fs::read(&file.temp).unwrap(),
                file.content,
                "{}",
                file.temp
            );
            assert_eq!(mode(&file.temp), file.mode, "{}", file.temp);
            assert!(!std::path::Path::new(&file.path).exists(), "{}", file.path);
        }
        let (copy, bytes) = work.files[2].check_copy.as_ref().unwrap();
        assert_eq!(
            (std::fs::read(copy).unwrap(), mode(copy)),
            (bytes.clone(), 0o600)
        );
    }

    #[test]
    fn staging_cut_short_fails_and_leaves_only_private_temps() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let dir = format!("{}/new dir", root.path().display());
        let work = work_in(&dir);
        let input = stage_input(&work);
        // The connection drops in the middle of the key's bytes.
        let cut = String::from_utf8_lossy(&input).find("KEY BYTES").unwrap() + 3;
        let (ok, stdout) = stage_on_this_machine(&work, &input[..cut]);
        assert!(
            !ok && stdout.contains("error input ended early"),
            "{stdout}"
        );
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        assert!(!std::path::Path::new(&work.files[0].path).exists());
    }

    #[test]
    fn the_commit_backs_up_renames_checks_and_runs_handlers_in_order() {
        let work = fresh_work();
        assert_eq!(work.created_directories, vec!["/etc/t".to_string()]);
        assert!(restore_script(&work).contains("rmdir -- '/etc/t' 2>/dev/null || :"));
        assert_eq!(
            work.post_checks,
            vec![(
                "/etc/t/sshd.conf".to_string(),
                "sshd -t -f /etc/ssh/sshd_config".to_string()
            )]
        );
        let script = commit_script(&work);
        let position = |needle: &str| {
            script
                .find(needle)
                .unwrap_or_else(|| panic!("{needle} not in\n{script}"))
        };
        assert!(
            position("ln -f -- '/etc/t/key.pem' '/etc/t/.key.pem.dockhand-backup'")
                < position("mv -f -- '/etc/t/.key.pem.dockhand-new-r1' '/etc/t/key.pem'")
        );
        assert!(
            position("mv -f -- '/etc/t/.sshd.conf")
                < position("sshd -t -f /etc/ssh/sshd_config 2>&1")
        );
        assert!(
            position("sshd -t -f /etc/ssh/sshd_config 2>&1")
                < position("systemctl start docker.service")
        );
        assert!(
            position("systemctl start docker.service") < position("systemctl reload 'ssh.service'")
        );
        // Owed handlers are on record before the first file is replaced,
        // and cleared only after every handler ran.
        let record = position(
            "printf '%s\\n' restart-docker reload-ssh >> /var/lib/dockhand/pending-handlers",
        );
        assert!(record < position("ln -f -- '/etc/t/key.pem'"));
        assert!(
            position("systemctl reload 'ssh.service'")
                < position("rm -f -- /var/lib/dockhand/pending-handlers")
        );
    }

    #[test]
    fn daemon_json_is_validated_against_the_staged_tls_files() {
        let mut managed = serde_json::Map::new();
        managed.insert("tlskey".into(), serde_json::json!("/etc/t/key.pem"));
        managed.insert("tlscacert".into(), serde_json::json!("/etc/other/ca.pem"));
        let mut desired = resources();
        desired.files.push(FileResource {
            validate: Some("dockerd --validate --config-file %s".into()),
            ..FileResource::root_owned(
                "/etc/t/daemon.json",
                Content::DaemonJson {
                    managed,
                    own_whole_file: false,
                },
                0o644,
                vec![Handler::RestartDocker],
            )
        });
        let plan = plan::plan(&desired, &ActualState::default()).unwrap();
        let mut n = 0;
        let work = work(&desired, &plan, "ssh.service", &mut || {
            n += 1;
            format!("r{n}")
        })
        .unwrap();
        let daemon = work
            .files
            .iter()
            .find(|f| f.path == "/etc/t/daemon.json")
            .unwrap();
        let (copy, bytes) = daemon.check_copy.as_ref().expect("a check copy");
        assert_eq!(copy, "/etc/t/.daemon.json.dockhand-new-check-r4");
        let checked: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        // The staged key, not the one not yet in place; other paths as they are.
        assert_eq!(checked["tlskey"], "/etc/t/.key.pem.dockhand-new-r1");
        assert_eq!(checked["tlscacert"], "/etc/other/ca.pem");
        let input = String::from_utf8_lossy(&stage_input(&work)).into_owned();
        assert!(input.contains(&format!(
            "F {} 0600 root root .daemon.json.dockhand-new-check-r4 /etc/t/daemon.json\n",
            bytes.len()
        )));
        let script = commit_script(&work);
        let check = script
            .find(&format!("dockerd --validate --config-file '{copy}'"))
            .unwrap();
        let removed = script.rfind(&format!("rm -f -- '{copy}'\n")).unwrap();
        assert!(
            check < removed && removed < script.find("ln -f --").unwrap(),
            "{script}"
        );
    }

    #[test]
    fn a_dead_man_switch_is_armed_before_ssh_reloads_and_disarmed_after() {
        let mut desired = resources();
        desired.sshd_expected = Some(("/etc/t/sshd.conf".into(), Vec::new()));
        desired.sshd_revert_after = 90;
        let plan = plan::plan(&desired, &ActualState::default()).unwrap();
        let work = work(&desired, &plan, "ssh.service", &mut || "r".into()).unwrap();
        let switch = work.sshd_switch.clone().expect("armed");
        assert_eq!(
            (switch.unit.as_str(), switch.seconds),
            ("dockhand-sshd-revert-r", 90)
        );
        let commit = commit_script(&work);
        let arm = commit
            .find("systemd-run --quiet --collect --unit='dockhand-sshd-revert-r' --on-active=90")
            .unwrap();
        assert!(arm < commit.find("systemctl reload 'ssh.service'").unwrap());
        assert!(
            commit[arm..].contains("mv -f -- '\\''/etc/t/.sshd.conf.dockhand-backup'\\''"),
            "{commit}"
        );
        let finish = finish_script(&work);
        assert!(
            finish.starts_with("systemctl stop 'dockhand-sshd-revert-r'.timer"),
            "{finish}"
        );
        assert!(restore_script(&work).contains("systemctl stop 'dockhand-sshd-revert-r'.timer"));
        // Without an sshd drop-in among the writes there is nothing to arm.
        assert!(fresh_work().sshd_switch.is_none());
    }

    #[test]
    fn a_reload_of_sshd_waits_until_it_listens_again() {
        let script = handler_script(&[Handler::ReloadSsh], "ssh.service");
        let reload = script.find("systemctl reload 'ssh.service'").unwrap();
        assert!(script.find("before=$(listeners)").unwrap() < reload);
        assert!(script.find("did not listen again").unwrap() > reload);
        assert!(script.contains("/proc/net/tcp /proc/net/tcp6"));
    }

    #[test]
    fn a_secret_s_check_never_shows_its_output() {
        let mut desired = resources();
        desired.files[0].validate = Some("grep -q BEGIN %s".into());
        let plan = plan::plan(&desired, &ActualState::default()).unwrap();
        let work = work(&desired, &plan, "ssh.service", &mut || "r".into()).unwrap();
        let script = commit_script(&work);
        let line = script
            .lines()
            .find(|l| l.contains("grep -q BEGIN"))
            .unwrap();
        assert!(
            line.contains("its output is not shown: the file is secret"),
            "{line}"
        );
        assert!(!line.contains("tail -n 3"), "{line}");
    }

    #[test]
    fn attribute_only_changes_write_nothing() {
        let desired = resources();
        let mut state = ActualState::default();
        for file in &desired.files {
            let Content::Bytes(bytes) = &file.content else {
                unreachable!()
            };
            state.paths.insert(
                file.path.clone(),
                crate::core::state::ActualPath {
                    exists: true,
                    kind: Some(crate::core::state::PathKind::File),
                    mode: 0o644,
                    owner: "root".into(),
                    group: "root".into(),
                    size: bytes.len() as u64,
                    sha256: Some(plan::sha256_hex(bytes)),
                    content: None,
                },
            );
        }
        state.paths.insert(
            "/etc/t".into(),
            crate::core::state::ActualPath {
                exists: true,
                kind: Some(crate::core::state::PathKind::Directory),
                mode: 0o755,
                owner: "root".into(),
                group: "root".into(),
                ..Default::default()
            },
        );
        let plan = plan::plan(&desired, &state).unwrap();
        let work = work(&desired, &plan, "", &mut || "x".into()).unwrap();
        assert!(work.files.is_empty() && work.handlers.is_empty());
        assert_eq!(
            work.attributes,
            vec![(
                "/etc/t/key.pem".to_string(),
                0o400,
                "root".to_string(),
                "root".to_string()
            )]
        );
        // A rollback puts the old mode back.
        assert_eq!(
            work.previous_attributes,
            vec![(
                "/etc/t/key.pem".to_string(),
                0o644,
                "root".to_string(),
                "root".to_string()
            )]
        );
        assert!(
            restore_script(&work).contains(
                "chown -- 'root:root' '/etc/t/key.pem' 2>/dev/null; chmod -- 0644 '/etc/t/key.pem'"
            ),
            "{}",
            restore_script(&work)
        );
        assert!(commit_script(&work).contains("chmod -- 0400 '/etc/t/key.pem'"));
    }
}
