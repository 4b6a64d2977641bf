//! Every script under `/bin/sh` (dash on Debian), against a temporary
//! root: the managed files live under it, the state directory too, and
//! `systemctl`, `sshd`, `dockerd`, `systemd-run` and `journalctl` are stubs
//! that log their arguments (and fail when a test says so). The tests
//! assert the state a script leaves, and the order of what it ran.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use super::*;
use crate::core::input::playbook::Handler;
use crate::core::roles::Check;
use crate::engine::work::{FileWrite, SshdSwitch, Work};

/// The stub for every host command: logs `NAME ARGS`, answers the few
/// questions the scripts ask, and fails when a file in `fail/` holds a
/// pattern that matches the call.
const STUB: &str = r#"#!/bin/sh
call="NAME $*"
printf '%s\n' "$call" >> ROOT/calls
for f in ROOT/fail/*; do
  [ -e "$f" ] || continue
  # shellcheck disable=SC2254
  case $call in $(cat "$f")) echo "NAME failed on purpose"; exit 1 ;; esac
done
case $call in
  "systemctl show -p Type -p ExecStart docker.service") echo 'Type=notify' ;;
  "systemctl show -p ExecMainStatus --value docker.service") echo 1 ;;
  "sshd -T") echo 'port 22' ;;
  "systemctl is-active"*) exit 3 ;;
  "dockerd --validate --config-file "*) if grep -q bad "$3"; then echo 'unable to configure the Docker daemon: bad'; exit 1; fi ;;
  "systemd-run "*) for a in "$@"; do last=$a; done; printf '%s' "$last" > ROOT/armed ;;
  # The switch fires while docker starts, when a test asks for it.
  "systemctl start docker.service") if [ -e ROOT/fire-on-start ]; then sh "$(cat ROOT/armed)"; fi ;;
  "journalctl "*) [ -e ROOT/journal ] && cat ROOT/journal ;;
  "nft list table inet dockhand") [ -e ROOT/nft-table ] && cat ROOT/nft-table ;;
  "systemctl show -p Id "*) [ -e ROOT/units-show ] && cat ROOT/units-show ;;
  "ssh -Q kex") printf 'curve25519-sha256\nmlkem768x25519-sha256\n' ;;
esac
"#;

const STUBBED: [&str; 7] = [
    "systemctl",
    "sshd",
    "dockerd",
    "systemd-run",
    "journalctl",
    "nft",
    "gpasswd",
];

struct Host {
    dir: tempfile::TempDir,
    path: String,
    state_dir: String,
    sshd_config: String,
    systemd_run: String,
    systemd_etc: String,
    cgroups: String,
    user: String,
    group: String,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_string();
        for sub in ["stubs", "fail", "state", "etc"] {
            std::fs::create_dir(format!("{root}/{sub}")).unwrap();
        }
        for name in STUBBED {
            let stub = format!("{root}/stubs/{name}");
            std::fs::write(&stub, STUB.replace("NAME", name).replace("ROOT", &root)).unwrap();
            std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let id = |flag: &str| {
            let out = Command::new("id").arg(flag).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        Host {
            path: format!("{root}/stubs:{}", Layout::HOST.path),
            state_dir: format!("{root}/state"),
            sshd_config: format!("{root}/etc/ssh/sshd_config"),
            systemd_run: format!("{root}/run/systemd"),
            systemd_etc: format!("{root}/etc/systemd"),
            cgroups: format!("{root}/cgroup"),
            user: id("-un"),
            group: id("-gn"),
            dir,
        }
    }

    fn root(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.root())
    }

    fn layout(&self) -> Layout<'_> {
        Layout {
            state_dir: &self.state_dir,
            path: &self.path,
            sshd_config: &self.sshd_config,
            systemd_run: &self.systemd_run,
            systemd_etc: &self.systemd_etc,
            cgroups: &self.cgroups,
        }
    }

    /// Sends a script as SSH would: see [`run_to_end`].
    fn run(&self, script: &Script) -> (bool, String) {
        let output = run_to_end(script);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.at("/calls"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// Where `call` first appears in the log; the test fails if it never
    /// does.
    fn called(&self, call: &str) -> usize {
        let calls = self.calls();
        calls
            .iter()
            .position(|c| c == call)
            .unwrap_or_else(|| panic!("{call:?} never called: {calls:#?}"))
    }

    /// Makes every call matching the glob `pattern` fail.
    fn fail(&self, name: &str, pattern: &str) {
        std::fs::write(self.at(&format!("/fail/{name}")), pattern).unwrap();
    }

    fn heal(&self, name: &str) {
        std::fs::remove_file(self.at(&format!("/fail/{name}"))).unwrap();
    }

    fn file(&self, path: &str, content: &[u8], mode: u32) -> FileWrite {
        let path = self.at(path);
        let (dir, base) = path.rsplit_once('/').unwrap();
        FileWrite {
            temp: format!("{dir}/.{base}.dockhand-new-r"),
            path,
            content: content.to_vec(),
            mode,
            owner: self.user.clone(),
            group: self.group.clone(),
            validate: None,
            secret: false,
            check_copy: None,
        }
    }

    fn write(&self, path: &str, content: &[u8], mode: u32) {
        let path = self.at(path);
        std::fs::create_dir_all(Path::new(&path).parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.at(path)).ok()
    }

    fn mode(&self, path: &str) -> u32 {
        std::fs::metadata(self.at(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    fn exists(&self, path: &str) -> bool {
        Path::new(&self.at(path)).exists()
    }

    /// The names in a directory (hidden ones too), sorted.
    fn names_in(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.at(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Stages `work` and asserts it staged.
    fn stage(&self, work: &Work) {
        let (ok, out) = self.run(&stage(work, &self.layout(), None));
        assert!(ok && out.ends_with("done\n"), "{out}");
    }

    fn commit(&self, work: &Work) -> (CommitOutcome, String) {
        let (ok, out) = self.run(&commit(work, &self.layout()));
        (CommitOutcome::of(&out, ok, || "failed".into()), out)
    }
}

/// A host with a key and an sshd drop-in in place, and work that replaces
/// both, writes a new file in a new directory, tightens a mode in place,
/// checks sshd after writing, and notifies every handler.
/// The dead-man switch over `lived_in`'s sshd drop-in: 90 s, unit `…-r`.
fn drop_in_switch(host: &Host) -> SshdSwitch {
    SshdSwitch {
        drop_in: Some(host.at("/etc/t/sshd.conf")),
        firewall_rules: None,
        unit: "dockhand-sshd-revert-r".into(),
        seconds: 90,
    }
}

fn lived_in() -> (Host, Work) {
    let host = Host::new();
    host.write("/etc/t/key.pem", b"OLD KEY\n", 0o644);
    host.write("/etc/t/sshd.conf", b"PasswordAuthentication yes\n", 0o644);
    host.write("/etc/t/ca.pem", b"CA\n", 0o644);
    let mut sshd = host.file("/etc/t/sshd.conf", b"PasswordAuthentication no\n", 0o644);
    sshd.validate = Some(crate::core::roles::sshd::check());
    let ca = host.at("/etc/t/ca.pem");
    let work = Work {
        directories: vec![(
            host.at("/etc/new"),
            0o750,
            host.user.clone(),
            host.group.clone(),
        )],
        created_directories: vec![host.at("/etc/new")],
        files: vec![
            host.file("/etc/t/key.pem", b"NEW KEY\n", 0o400),
            sshd,
            host.file("/etc/new/daemon.json", b"{\"icc\": false}\n", 0o644),
        ],
        attributes: vec![(ca.clone(), 0o444, host.user.clone(), host.group.clone())],
        previous_attributes: vec![(ca, 0o644, host.user.clone(), host.group.clone())],
        handlers: vec![
            Handler::ReloadSsh,
            Handler::RestartDocker,
            Handler::DaemonReload,
        ],
        post_checks: vec![(
            host.at("/etc/t/sshd.conf"),
            crate::core::roles::sshd::check(),
        )],
        ssh_unit: "ssh.service".into(),
        ..Work::default()
    };
    (host, work)
}

/// The files of [`lived_in`] as they were before its work.
fn assert_as_before(host: &Host) {
    assert_eq!(host.read("/etc/t/key.pem").as_deref(), Some("OLD KEY\n"));
    assert_eq!(host.mode("/etc/t/key.pem"), 0o644);
    assert_eq!(
        host.read("/etc/t/sshd.conf").as_deref(),
        Some("PasswordAuthentication yes\n")
    );
    assert_eq!(host.mode("/etc/t/ca.pem"), 0o644);
    assert!(!host.exists("/etc/new"), "a created directory stayed");
}

#[test]
fn staging_hands_over_to_the_commit_that_follows_its_records_in_one_command() {
    let (host, work) = lived_in();
    let commit_script = commit(&work, &host.layout());
    let (ok, out) = host.run(&stage(&work, &host.layout(), Some(&commit_script)));
    let (staged, committed) = out.split_once("done\n").expect("staging said done");
    assert!(staged.contains("staged "), "{out}");
    assert!(ok, "{out}");
    assert_eq!(
        CommitOutcome::of(committed, ok, || "failed".into()),
        CommitOutcome::Done,
        "{out}"
    );
    assert_eq!(host.read("/etc/t/key.pem").as_deref(), Some("NEW KEY\n"));
    assert_eq!(host.mode("/etc/t/key.pem"), 0o400);
    // A failed staging never reaches the commit.
    let (host, mut work) = lived_in();
    work.files[0].path = host.at("/nowhere/key.pem");
    let commit_script = commit(&work, &host.layout());
    let (ok, out) = host.run(&stage(&work, &host.layout(), Some(&commit_script)));
    assert!(!ok && first_error(&out).is_some(), "{out}");
    assert!(!out.contains("committed"), "{out}");
    assert_eq!(host.read("/etc/t/key.pem").as_deref(), Some("OLD KEY\n"));
}

/// A commit whose text came cut short (the connection lost while it was
/// sent on a command of its own) runs none of its lines: a shell that ran
/// the text as it came would run the lines before the cut, the last one
/// perhaps cut in the middle of a path.
#[test]
fn a_commit_cut_short_after_the_staging_records_runs_none_of_its_lines() {
    let (host, work) = lived_in();
    let staged = stage(&work, &host.layout(), Some(&commit(&work, &host.layout())));
    let (records, whole) = (stage_input(&work).len(), staged.input().len());
    for cut in [
        records,
        records + 1,
        (records + whole) / 2,
        whole - 2,
        whole - 1,
    ] {
        let (host, work) = lived_in();
        let staged = stage(&work, &host.layout(), Some(&commit(&work, &host.layout())));
        let output = run_with_input(&staged, &staged.input()[..cut]);
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "cut at {cut}: {out}");
        assert!(
            first_error(&out).is_some_and(|e| e.contains("nothing was committed")),
            "cut at {cut}: {out}"
        );
        assert!(!out.contains("ok committed"), "cut at {cut}: {out}");
        assert_eq!(host.read("/etc/t/key.pem").as_deref(), Some("OLD KEY\n"));
        assert_eq!(host.mode("/etc/t/key.pem"), 0o644);
        assert_eq!(
            host.read("/etc/t/sshd.conf").as_deref(),
            Some("PasswordAuthentication yes\n")
        );
        assert!(host.calls().is_empty(), "cut at {cut}: {:?}", host.calls());
    }
    // Whole, it commits.
    let (host, work) = lived_in();
    let staged = stage(&work, &host.layout(), Some(&commit(&work, &host.layout())));
    let output = run_with_input(&staged, staged.input());
    assert!(output.status.success(), "{output:?}");
    assert_eq!(host.read("/etc/t/key.pem").as_deref(), Some("NEW KEY\n"));
}

#[test]
fn a_commit_replaces_backs_up_checks_and_runs_handlers_in_order() {
    let (host, work) = lived_in();
    host.stage(&work);
    let (outcome, out) = host.commit(&work);
    assert_eq!(outcome, CommitOutcome::Done, "{out}");
    assert_eq!(host.read("/etc/t/key.pem").as_deref(), Some("NEW KEY\n"));
    assert_eq!(host.mode("/etc/t/key.pem"), 0o400);
    assert_eq!(host.mode("/etc/t/ca.pem"), 0o444);
    assert_eq!(host.mode("/etc/new"), 0o750);
    assert_eq!(
        host.read("/etc/new/daemon.json").as_deref(),
        Some("{\"icc\": false}\n")
    );
    // The previous versions wait for the verification; the new file has
    // its "did not exist" marker.
    assert_eq!(
        host.read("/etc/t/.key.pem.dockhand-backup").as_deref(),
        Some("OLD KEY\n")
    );
    assert!(host.exists("/etc/new/.daemon.json.dockhand-backup.dockhand-absent"));
    // sshd is checked after writing, before any handler; the handlers run
    // in their fixed order, each once.
    let check = host.called("sshd -t -f /etc/ssh/sshd_config");
    let daemon_reload = host.called("systemctl daemon-reload");
    let start = host.called("systemctl start docker.service");
    let reload = host.called("systemctl reload ssh.service");
    assert!(check < daemon_reload && daemon_reload < reload && reload < start);
    assert_eq!(
        lines(&out)
            .filter_map(|l| match l {
                Line::HandlerRan(name) => Some(name),
                _ => None,
            })
            .collect::<Vec<_>>(),
        ["daemon-reload", "reload-ssh", "restart-docker"]
    );
    // Nothing is owed any more, and no commit is on record.
    assert_eq!(host.names_in("/state"), Vec::<String>::new());

    let (ok, out) = host.run(&finish(&work, &host.layout()));
    assert!(ok && out == "ok finished\n", "{out}");
    assert_eq!(host.names_in("/etc/t"), ["ca.pem", "key.pem", "sshd.conf"]);
    assert_eq!(host.names_in("/etc/new"), ["daemon.json"]);
}

#[test]
fn handlers_owed_are_on_record_until_they_ran() {
    let (host, work) = lived_in();
    host.stage(&work);
    // docker will not start: the files are in place, the handlers owed.
    host.fail("docker", "systemctl start docker.service");
    let (outcome, out) = host.commit(&work);
    let CommitOutcome::FailedAfterReplacing(reason) = outcome else {
        panic!("{outcome:?}: {out}");
    };
    assert!(
        reason.starts_with("handler restart-docker failed: systemctl failed on purpose"),
        "{reason}"
    );
    assert_eq!(host.read("/etc/t/key.pem").as_deref(), Some("NEW KEY\n"));
    assert_eq!(
        host.read("/state/pending-handlers").as_deref(),
        Some("reload-ssh\nrestart-docker\ndaemon-reload\n")
    );
    // The other handlers still ran: ssh's reload does not wait on docker.
    host.called("systemctl reload ssh.service");
    assert!(!host.exists("/state/commit.pgid"));

    // The engine's answer: restore, then the handlers again.
    let (ok, out) = host.run(&restore(&work, &host.layout()));
    assert!(ok && out == "ok restored\n", "{out}");
    assert_as_before(&host);
    assert!(host.exists("/state/pending-handlers"));
    host.heal("docker");
    let (ok, out) = host.run(&handlers_again(&work, &host.layout()));
    assert!(ok && out.ends_with("ok rolled-back\n"), "{out}");
    assert!(!host.exists("/state/pending-handlers"));
    assert_eq!(
        host.calls()
            .iter()
            .filter(|c| *c == "systemctl start docker.service")
            .count(),
        2
    );
}

#[test]
fn a_refused_staged_file_replaces_nothing() {
    let (host, mut work) = lived_in();
    work.files[2].content = b"{\"bad\": true}\n".to_vec();
    work.files[2].validate = Some(Check::program(&[
        "dockerd",
        "--validate",
        "--config-file",
        "%s",
    ]));
    host.stage(&work);
    let (outcome, out) = host.commit(&work);
    let CommitOutcome::Undone {
        reason,
        restored: false,
    } = outcome
    else {
        panic!("{outcome:?}: {out}");
    };
    assert!(
        reason.starts_with(&format!(
            "validate {}: unable to configure the Docker daemon: bad",
            host.at("/etc/new/daemon.json")
        )),
        "{reason}"
    );
    assert_as_before(&host);
    // No temp, no backup, nothing owed, no handler.
    assert_eq!(host.names_in("/etc/t"), ["ca.pem", "key.pem", "sshd.conf"]);
    assert_eq!(host.names_in("/state"), Vec::<String>::new());
    assert!(!host.calls().iter().any(|c| c.starts_with("systemctl")));
}

#[test]
fn a_secret_s_check_never_shows_its_output() {
    let (host, mut work) = lived_in();
    work.files[0].secret = true;
    work.files[0].validate = Some(Check::Shell("grep -q BEGIN %s".into()));
    host.stage(&work);
    let (outcome, out) = host.commit(&work);
    let CommitOutcome::Undone { reason, .. } = outcome else {
        panic!("{outcome:?}: {out}");
    };
    assert!(
        reason.ends_with("the check failed (its output is not shown: the file is secret)"),
        "{reason}"
    );
    assert_as_before(&host);
}

#[test]
fn a_failed_check_after_writing_puts_everything_back() {
    let (host, work) = lived_in();
    // Owed before this commit, by an earlier run.
    host.write("/state/pending-handlers", b"daemon-reload\n", 0o600);
    host.stage(&work);
    host.fail("sshd", "sshd -t -f /etc/ssh/sshd_config");
    let (outcome, out) = host.commit(&work);
    let CommitOutcome::Undone {
        reason,
        restored: true,
    } = outcome
    else {
        panic!("{outcome:?}: {out}");
    };
    assert!(
        reason.starts_with(&format!(
            "check after writing {}: sshd failed on purpose",
            host.at("/etc/t/sshd.conf")
        )),
        "{reason}"
    );
    assert_as_before(&host);
    assert!(!host.calls().iter().any(|c| c.starts_with("systemctl")));
    // No handler ran: what was owed before is owed still, nothing more.
    assert_eq!(
        host.read("/state/pending-handlers").as_deref(),
        Some("daemon-reload\n")
    );
}

#[test]
fn ssh_users_join_the_docker_group_and_a_rollback_takes_them_out() {
    let (host, mut work) = lived_in();
    work.docker_group_additions = vec!["alice".into()];
    host.stage(&work);
    let (outcome, out) = host.commit(&work);
    assert_eq!(outcome, CommitOutcome::Done, "{out}");
    host.called("gpasswd -a alice docker");
    assert!(host.run(&restore(&work, &host.layout())).0);
    host.called("gpasswd -d alice docker");
    // A refused addition (no such account) undoes the commit.
    let (host, mut work) = lived_in();
    work.docker_group_additions = vec!["ghost".into()];
    host.fail("gpasswd", "gpasswd -a ghost *");
    host.stage(&work);
    let (outcome, out) = host.commit(&work);
    assert!(
        matches!(outcome, CommitOutcome::Undone { .. }),
        "{outcome:?} {out}"
    );
    assert!(out.contains("error add ghost to the docker group"), "{out}");
    assert_as_before(&host);
}

#[test]
fn a_new_fence_is_guarded_by_the_switch_which_takes_it_down_again() {
    let (host, mut work) = lived_in();
    let rules = host.at("/etc/new/firewall.nft");
    work.files
        .push(host.file("/etc/new/firewall.nft", b"table inet dockhand\n", 0o644));
    work.handlers = vec![Handler::ReloadFirewall];
    work.sshd_switch = Some(SshdSwitch {
        drop_in: None,
        firewall_rules: Some(rules.clone()),
        unit: "dockhand-sshd-revert-f".into(),
        seconds: 120,
    });
    host.stage(&work);
    let (outcome, out) = host.commit(&work);
    assert_eq!(outcome, CommitOutcome::Done, "{out}");
    let armed = host.calls().iter().position(|c| {
        c.starts_with(
            "systemd-run --quiet --collect --unit=dockhand-sshd-revert-f --on-active=120 ",
        )
    });
    // Armed before the fence is loaded (this machine has no
    // /etc/dockhand/firewall.nft, so the handler takes the table down).
    assert!(armed.unwrap() < host.called("nft delete table inet dockhand"));
    assert_eq!(
        host.read("/etc/new/firewall.nft").as_deref(),
        Some("table inet dockhand\n")
    );
    // The timer's command: the rules were new, so they go, and so does
    // the table; no ssh reload, since sshd's drop-in did not change.
    let revert = host.read("/armed").unwrap();
    let before = host.calls().len();
    let status = Command::new("/bin/sh")
        .arg(&revert)
        .env("PATH", &host.path)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(host.read("/etc/new/firewall.nft"), None);
    assert_eq!(
        host.calls()[before..],
        [
            "systemctl disable --quiet dockhand-firewall.service".to_string(),
            "nft delete table inet dockhand".to_string()
        ]
    );

    // Rules that were there before are put back and loaded.
    let (host, mut work) = lived_in();
    host.write("/etc/t/firewall.nft", b"OLD FENCE\n", 0o644);
    work.files
        .push(host.file("/etc/t/firewall.nft", b"NEW FENCE\n", 0o644));
    work.sshd_switch = Some(SshdSwitch {
        drop_in: Some(host.at("/etc/t/sshd.conf")),
        firewall_rules: Some(host.at("/etc/t/firewall.nft")),
        unit: "dockhand-sshd-revert-g".into(),
        seconds: 60,
    });
    host.stage(&work);
    assert_eq!(host.commit(&work).0, CommitOutcome::Done);
    let revert = host.read("/armed").unwrap();
    let before = host.calls().len();
    assert!(
        Command::new("/bin/sh")
            .arg(&revert)
            .env("PATH", &host.path)
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        host.read("/etc/t/firewall.nft").as_deref(),
        Some("OLD FENCE\n")
    );
    assert_eq!(
        host.read("/etc/t/sshd.conf").as_deref(),
        Some("PasswordAuthentication yes\n")
    );
    assert_eq!(
        host.calls()[before..],
        [
            "systemctl reload ssh.service".to_string(),
            format!("nft -f {}", host.at("/etc/t/firewall.nft")),
        ]
    );
}

#[test]
fn the_dead_man_switch_is_armed_before_ssh_reloads_and_reverts_the_drop_in() {
    let (host, mut work) = lived_in();
    work.sshd_switch = Some(drop_in_switch(&host));
    host.stage(&work);
    let (outcome, out) = host.commit(&work);
    assert_eq!(outcome, CommitOutcome::Done, "{out}");
    assert!(out.contains("ok armed dockhand-sshd-revert-r\n"), "{out}");
    let armed = host.calls().iter().position(|c| {
        c.starts_with("systemd-run --quiet --collect --unit=dockhand-sshd-revert-r --on-active=90 ")
    });
    // Armed right before ssh's reload, which docker's restart follows;
    // then armed again under a second name once docker is up (its time
    // counts from there), and the first one stopped.
    assert!(armed.unwrap() < host.called("systemctl reload ssh.service"));
    let start = host.called("systemctl start docker.service");
    assert!(host.called("systemctl reload ssh.service") < start);
    let again = host.calls().iter().position(|c| {
        c.starts_with(
            "systemd-run --quiet --collect --unit=dockhand-sshd-revert-r-again --on-active=90 ",
        )
    });
    assert!(start < again.unwrap());
    assert!(again.unwrap() < host.called("systemctl stop dockhand-sshd-revert-r.timer"));
    assert!(
        out.contains("ok armed dockhand-sshd-revert-r-again\n"),
        "{out}"
    );
    // The timer's command, run as systemd would: the drop-in goes back
    // and ssh reloads.
    let revert = host.read("/armed").unwrap();
    // A script of its own in the state directory (never `sh -c`'s argument,
    // which systemd garbles on a daemon-reload), gone once it has run.
    assert!(revert.starts_with(&host.state_dir), "{revert}");
    assert!(Path::new(&revert).exists());
    let status = Command::new("/bin/sh")
        .arg(&revert)
        .env("PATH", &host.path)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!Path::new(&revert).exists());
    assert_eq!(
        host.read("/etc/t/sshd.conf").as_deref(),
        Some("PasswordAuthentication yes\n")
    );
    assert_eq!(
        host.calls()
            .iter()
            .filter(|c| *c == "systemctl reload ssh.service")
            .count(),
        2
    );
    // It fired: the finish says so and fails (the apply then restores
    // the rest); the handlers run again after the restore disarm it all
    // the same (the restore leaves it armed until ssh took the restored
    // files).
    let (ok, out) = host.run(&finish(&work, &host.layout()));
    assert!(!ok, "{out}");
    assert_eq!(
        first_error(&out),
        Some(
            "the sshd dead-man switch fired before the host was verified (after 90 s: sshd.revert_after) and put back what it guards"
        ),
        "{out}"
    );
    let disarmed = |host: &Host, script: &Script| {
        let before = host.calls().len();
        let (ok, out) = host.run(script);
        let stopped = host.calls()[before..].contains(
            &"systemctl stop dockhand-sshd-revert-r.timer dockhand-sshd-revert-r-again.timer"
                .into(),
        );
        (ok, stopped, out)
    };
    let (ok, stopped, out) = disarmed(&host, &restore(&work, &host.layout()));
    assert!(ok && !stopped, "{out}");
    let (ok, stopped, out) = disarmed(&host, &handlers_again(&work, &host.layout()));
    assert!(ok && stopped, "{out}");
    // Armed and not fired: the finish disarms it, and its script goes.
    host.write(
        revert.strip_prefix(host.root()).unwrap(),
        b"exit 0\n",
        0o600,
    );
    let (ok, stopped, out) = disarmed(&host, &finish(&work, &host.layout()));
    assert!(ok && stopped && out.contains("ok finished"), "{out}");
    assert!(!Path::new(&revert).exists());
}

/// A switch that fires while docker restarts (a docker slower to start
/// than `revert_after`) fails the commit: the engine restores the rest.
#[test]
fn a_switch_that_fires_during_docker_s_restart_fails_the_commit() {
    let (host, mut work) = lived_in();
    work.sshd_switch = Some(drop_in_switch(&host));
    host.stage(&work);
    host.write("/fire-on-start", b"", 0o644);
    let (outcome, out) = host.commit(&work);
    assert_eq!(
        outcome,
        CommitOutcome::FailedAfterReplacing(
            "the sshd dead-man switch fired during docker's restart (after 90 s: sshd.revert_after) and put back what it guards".into()
        ),
        "{out}"
    );
    assert_eq!(
        host.read("/etc/t/sshd.conf").as_deref(),
        Some("PasswordAuthentication yes\n")
    );
    assert!(
        !host.calls().iter().any(|c| c.contains("-again")),
        "{:#?}",
        host.calls()
    );
}

#[test]
fn a_switch_that_cannot_be_armed_undoes_the_commit() {
    let (host, mut work) = lived_in();
    work.sshd_switch = Some(drop_in_switch(&host));
    host.stage(&work);
    host.fail("run", "systemd-run *");
    let (outcome, out) = host.commit(&work);
    assert!(
        matches!(&outcome, CommitOutcome::FailedAfterReplacing(r) if r == "arm the sshd dead-man switch (systemd-run)"),
        "{outcome:?}: {out}"
    );
    // Its own rollback already put the files back, and ssh was never
    // reloaded without a switch; the engine's restore and handlers again
    // (the outcome asks for them) put docker back on the old files.
    assert_eq!(host.read("/etc/t/key.pem").as_deref(), Some("OLD KEY\n"));
    assert!(
        !host
            .calls()
            .iter()
            .any(|c| c == "systemctl reload ssh.service"),
        "{:#?}",
        host.calls()
    );
}

#[test]
fn live_restore_goes_first_and_its_refusal_undoes_the_commit() {
    for (journal, done) in [
        ("Reloaded configuration: {...}\n", true),
        ("Error reconfiguring the daemon: bad\n", false),
    ] {
        let (host, mut work) = lived_in();
        let daemon_json = host.at("/etc/t/daemon.json");
        host.write("/etc/t/daemon.json", b"{}\n", 0o644);
        work.files
            .push(host.file("/etc/t/daemon.json", b"{\"icc\": false}\n", 0o644));
        work.live_restore_first = Some((daemon_json, "{\"live-restore\": true}\n".into()));
        std::fs::write(host.at("/journal"), journal).unwrap();
        host.stage(&work);
        let (outcome, out) = host.commit(&work);
        let reload = host.called("systemctl reload docker.service");
        if done {
            assert_eq!(outcome, CommitOutcome::Done, "{out}");
            assert!(reload < host.called("systemctl stop docker.service"));
            assert_eq!(
                host.read("/etc/t/daemon.json").as_deref(),
                Some("{\"icc\": false}\n")
            );
        } else {
            let CommitOutcome::Undone {
                reason,
                restored: true,
            } = &outcome
            else {
                panic!("{outcome:?}: {out}");
            };
            assert_eq!(
                reason,
                "live-restore first: Error reconfiguring the daemon: bad"
            );
            assert_eq!(host.read("/etc/t/daemon.json").as_deref(), Some("{}\n"));
            assert_as_before(&host);
            assert!(!host.exists("/state/pending-handlers"), "nothing owed");
        }
    }
}

#[test]
fn the_restore_stops_a_commit_past_its_deadline() {
    let (host, work) = lived_in();
    host.stage(&work);
    // A docker that never starts: the commit hangs in its handler.
    let stub = host.at("/stubs/systemctl");
    let hanging = std::fs::read_to_string(&stub).unwrap().replace(
        "case $call in\n",
        "case $call in\n  \"systemctl start docker.service\") sleep 30 ;;\n",
    );
    std::fs::write(&stub, hanging).unwrap();
    let script = commit(&work, &host.layout());
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script.command(&Become::No))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.input()).unwrap();
    within_10s(
        || {
            host.calls()
                .contains(&"systemctl start docker.service".to_string())
        },
        || format!("{:?}", host.calls()),
    );
    let (ok, out) = host.run(&restore(&work, &host.layout()));
    assert!(ok && out == "ok restored\n", "{out}");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the commit went on: {status}");
    assert_as_before(&host);
    assert!(!host.exists("/state/commit.pgid"));
}

/// Waits, looking every 20 ms, until `done`; fails the test with `what`
/// after 10 s.
fn within_10s(mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{}", what());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Starts a script that holds (the lock) as a session would (its input
/// sent, stdin left open), and returns it running with what it said before
/// it said it holds.
fn hold(script: &Script) -> (std::process::Child, String) {
    let mut holder = Command::new("/bin/sh")
        .arg("-c")
        .arg(script.command(&Become::No))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    std::io::Write::write_all(holder.stdin.as_mut().unwrap(), script.input()).unwrap();
    let said = up_to_holding(holder.stdout.as_mut().unwrap());
    (holder, said)
}

/// Sends a script as SSH would: its command to a shell, its input on
/// stdin, then the end of stdin (the connection going); runs it to its end.
/// Its own process group, as a session's would be.
fn run_to_end(script: &Script) -> std::process::Output {
    run_with_input(script, script.input())
}

/// As [`run_to_end`], with `input` for the script's own.
fn run_with_input(script: &Script, input: &[u8]) -> std::process::Output {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script.command(&Become::No))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input).unwrap();
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// How a second lock, taken while another is held or not, ends.
fn second_lock(host: &Host) -> LockOutcome {
    let second = run_to_end(&lock(&host.layout(), 0, &[], &host.at("/transient"), None));
    LockOutcome::of(second.status.code())
}

#[test]
fn an_apply_s_gather_makes_the_state_directory_private_only_where_it_is_not() {
    let host = Host::new();
    let root = host.root().to_string();
    // As an earlier version left them: open to all.
    host.write("/state/apply.lock", b"", 0o644);
    std::fs::set_permissions(host.at("/state"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let chmod = "#!/bin/sh\necho \"chmod $*\" >> ROOT/calls\nexec /bin/chmod \"$@\"\n";
    host.write(
        "/stubs/chmod",
        chmod.replace("ROOT", &root).as_bytes(),
        0o755,
    );
    host.write("/etc/t/a.conf", b"alpha", 0o644);
    let gather = gather(
        &[(host.at("/etc/t/a.conf"), false)],
        &host.layout(),
        true,
        true,
    );
    let script = lock(
        &host.layout(),
        0,
        &[],
        &host.at("/transient"),
        Some(&gather),
    );
    let chmods = |host: &Host| {
        host.calls()
            .iter()
            .filter(|c| c.starts_with("chmod "))
            .count()
    };
    for want in [2, 2, 2] {
        let (mut holder, said) = hold(&script);
        assert!(said.contains(&format!("|{root}/etc/t/a.conf\n")), "{said}");
        // The gather's `stat` shows the managed paths only.
        assert!(!said.contains("/state"), "{said}");
        assert_eq!(
            (host.mode("/state"), host.mode("/state/apply.lock")),
            (0o700, 0o600)
        );
        assert_eq!(chmods(&host), want, "{:#?}", host.calls());
        drop(holder.stdin.take());
        holder.wait().unwrap();
    }
    // Without a gather, the lock does it on every run.
    let alone = run_to_end(&lock(&host.layout(), 0, &[], &host.at("/transient"), None));
    assert!(alone.status.success());
    assert_eq!(chmods(&host), 3, "{:#?}", host.calls());
}

#[test]
fn the_gather_rides_on_the_lock_and_runs_while_it_holds() {
    let host = Host::new();
    host.write("/etc/t/a.conf", b"alpha", 0o644);
    let paths = [(host.at("/etc/t/a.conf"), false)];
    let gather = gather(&paths, &host.layout(), true, true);
    let script = lock(
        &host.layout(),
        0,
        &[host.at("/etc/t")],
        &host.at("/transient"),
        Some(&gather),
    );
    let (mut holder, said) = hold(&script);
    let (first, answer) = said.split_once('\n').unwrap();
    assert_eq!(first, "locked");
    let state = crate::engine::gather::parse(answer).unwrap();
    assert_eq!(
        state.paths[&host.at("/etc/t/a.conf")].content.as_deref(),
        Some(&b"alpha"[..]),
        "{answer}"
    );
    // Still holding: a second lock is refused until the first goes.
    assert_eq!(second_lock(&host), LockOutcome::Busy);
    drop(holder.stdin.take());
    holder.wait().unwrap();
}

#[test]
fn the_gather_reads_the_fence_s_drops_and_the_docker_group_without_a_program_each() {
    let host = Host::new();
    // `nft list table inet dockhand` as nft prints it, with lines that
    // only look like a drop.
    host.write(
        "/nft-table",
        b"table inet dockhand {\n\tchain input {\n\t\ttype filter hook input priority filter - 1; policy accept;\n\t\tip saddr 10.0.0.0/8 tcp dport 2376 accept\n\t\ttcp dport 2376 drop\n\t\ttcp dport 22 drop\n\t\ttcp dport 2375 drop comment \"x\"\n\t\ttcp dport 0x10 drop\n\t\ttcp dport 23 accept\n\t}\n}\n",
        0o644,
    );
    let (ok, answer) = host.run(&gather(&[], &host.layout(), false, true));
    assert!(ok, "{answer}");
    let state = crate::engine::gather::parse(&answer).unwrap();
    assert_eq!(state.facts.fenced_ports, vec![2376, 22], "{answer}");
    // A run whose playbook puts up no fence does not ask nft about it;
    // where nft is is still said.
    let asked = |host: &Host| {
        host.calls()
            .iter()
            .filter(|c| c.starts_with("nft "))
            .count()
    };
    assert_eq!(asked(&host), 1);
    for remember in [false, true] {
        let (ok, answer) = host.run(&gather(&[], &host.layout(), remember, false));
        let facts = crate::engine::gather::parse(&answer).unwrap().facts;
        assert!(ok && facts.fenced_ports.is_empty(), "{answer}");
        assert_eq!(facts.nft_path, Some(host.at("/stubs/nft")));
    }
    assert_eq!(asked(&host), 1, "{:#?}", host.calls());
    // The group as getent gives it on this machine (none: no line).
    let getent = Command::new("getent")
        .args(["group", "docker"])
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&getent.stdout)
        .trim_end()
        .rsplit_once(':')
        .map(|(_, members)| members.to_string());
    assert_eq!(
        state.facts.docker_group.map(|members| members.join(",")),
        expected,
        "{answer}"
    );
    host.called("nft list table inet dockhand");
}

#[test]
fn the_gather_sends_unit_and_environment_files_line_for_line() {
    let host = Host::new();
    let unit = "[Service]\n  ExecStart=/usr/bin/dockerd \\\n\t-H fd://  \n\nEnvironment=\"A=b c\" 'x=$y'\n# no newline at the end";
    host.write("/lib/docker.service", unit.as_bytes(), 0o644);
    host.write("/etc/empty.conf", b"", 0o644);
    host.write(
        "/etc/default/docker",
        b"DOCKER_OPTS=\"-H tcp://x\"\n",
        0o644,
    );
    host.write(
        "/units-show",
        format!(
            "Id=docker.service\nFragmentPath={}\nDropInPaths={} {}\nEnvironmentFiles={} (ignore_errors=yes)\nActiveState=active\n\nId=ssh.service\nActiveState=active\n",
            host.at("/lib/docker.service"),
            host.at("/etc/empty.conf"),
            host.at("/etc/unreadable-or-missing.conf"),
            host.at("/etc/default/docker"),
        )
        .as_bytes(),
        0o644,
    );
    let (ok, answer) = host.run(&gather(&[], &host.layout(), false, true));
    assert!(ok, "{answer}");
    let facts = crate::engine::gather::parse(&answer).unwrap().facts;
    let texts: Vec<(String, String)> = facts
        .docker_unit_files
        .iter()
        .map(|f| (f.path.clone(), f.text.clone()))
        .collect();
    assert_eq!(
        texts,
        [
            (host.at("/lib/docker.service"), format!("{unit}\n")),
            (host.at("/etc/empty.conf"), String::new()),
        ]
    );
    assert_eq!(
        facts.docker_env_files[0].text,
        "DOCKER_OPTS=\"-H tcp://x\"\n"
    );
    assert_eq!(facts.docker_active, "active");
    // Read by the shell, not by a program per file.
    assert!(!host.calls().iter().any(|c| c.starts_with("base64")));
}

#[test]
fn what_the_programs_can_do_is_asked_again_only_when_one_of_them_changed() {
    let host = Host::new();
    // An `ssh` of the host's own, found on the PATH as the gather finds it.
    let ssh = host.at("/stubs/ssh");
    let stub = STUB.replace("NAME", "ssh").replace("ROOT", host.root());
    std::fs::write(&ssh, &stub).unwrap();
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let asked = |host: &Host| {
        host.calls()
            .iter()
            .filter(|c| *c == "ssh -Q kex" || c.starts_with("dockerd --help"))
            .count()
    };
    let kex = |answer: &str| crate::engine::gather::parse(answer).unwrap().facts.ssh_kex;
    let want = ["curve25519-sha256", "mlkem768x25519-sha256"];
    // A plan reads what an apply kept, and keeps nothing itself.
    let (ok, answer) = host.run(&gather(&[], &host.layout(), false, true));
    assert!(ok && kex(&answer) == want, "{answer}");
    assert_eq!(asked(&host), 2);
    assert!(host.read("/state/host-facts").is_none());
    // An apply asks and keeps; the next runs, plan or apply, only read.
    for remember in [true, true, false] {
        let (ok, answer) = host.run(&gather(&[], &host.layout(), remember, true));
        assert!(ok && kex(&answer) == want, "{answer}");
    }
    assert_eq!(asked(&host), 4, "{:#?}", host.calls());
    // The same bytes written over the program (a copy over it: the same
    // inode, a new ctime) are asked again, once.
    std::fs::write(&ssh, &stub).unwrap();
    for _ in 0..2 {
        let (ok, answer) = host.run(&gather(&[], &host.layout(), true, true));
        assert!(ok && kex(&answer) == want, "{answer}");
    }
    assert_eq!(asked(&host), 6, "{:#?}", host.calls());
    // A client that lists nothing (as none at all): the version is kept
    // instead, `sshd -V` asked once.
    let silent = "#!/bin/sh\necho \"ssh $*\" >> ROOT/calls\n";
    std::fs::write(&ssh, silent.replace("ROOT", host.root())).unwrap();
    let sshd = host.at("/stubs/sshd");
    let version =
        "#!/bin/sh\necho \"sshd $*\" >> ROOT/calls\necho 'OpenSSH_10.6p1, OpenSSL 3.5.1'\n";
    std::fs::write(&sshd, version.replace("ROOT", host.root())).unwrap();
    for _ in 0..2 {
        let (ok, answer) = host.run(&gather(&[], &host.layout(), true, true));
        let facts = crate::engine::gather::parse(&answer).unwrap().facts;
        assert!(ok && facts.ssh_kex.is_empty(), "{answer}");
        assert_eq!(facts.openssh_version, Some((10, 6)), "{answer}");
    }
    let sshd_v = host.calls().iter().filter(|c| *c == "sshd -V").count();
    assert_eq!(sshd_v, 1, "{:#?}", host.calls());
    // What the host keeps is the answer under its key, private to root.
    let kept = host.read("/state/host-facts").unwrap();
    assert!(
        kept.starts_with("kept_key='") && kept.contains("openssh_version OpenSSH_10.6p1"),
        "{kept}"
    );
    let mode = std::fs::metadata(host.at("/state/host-facts"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0);
}

#[test]
fn sshd_s_settings_are_asked_again_only_when_a_file_sshd_reads_changed() {
    let host = Host::new();
    let root = host.root().to_string();
    // sshd_config as the hosts write it: a relative Include of a glob, an
    // Include with `=` in another case, a HostKey; the drop-in includes
    // one more file.
    host.write(
        "/etc/ssh/sshd_config",
        format!(
            "# Include /nowhere\nInclude sshd_config.d/*.conf\n  include = {root}/etc/extra/x.conf\nHostKey {root}/etc/keys/k1\nPasswordAuthentication no\n"
        )
        .as_bytes(),
        0o644,
    );
    host.write(
        "/etc/ssh/sshd_config.d/a.conf",
        format!("Match User git\n\tInclude {root}/etc/ssh/nested.conf\n").as_bytes(),
        0o644,
    );
    host.write("/etc/ssh/nested.conf", b"X11Forwarding no\n", 0o644);
    // An sshd whose settings hold a quote, kept and read back whole.
    let sshd = "#!/bin/sh\necho \"sshd $*\" >> ROOT/calls\n[ -e ROOT/fail/sshd ] && { echo 'sshd failed on purpose'; exit 1; }\n[ \"$*\" = -T ] && printf \"port 22\\nbanner /etc/it's\\n\"\n";
    host.write("/stubs/sshd", sshd.replace("ROOT", &root).as_bytes(), 0o755);
    let asked = |host: &Host| host.calls().iter().filter(|c| *c == "sshd -T").count();
    // An apply's gather takes the key's identities with its managed
    // paths' `stat`; a gather without paths takes them itself: either
    // reads what the other kept.
    let managed = [
        (host.at("/etc/ssh/sshd_config.d/a.conf"), false),
        (host.at("/etc/keys/k1"), true),
    ];
    let gather_once = |remember: bool| {
        let paths: &[(String, bool)] = if remember { &managed } else { &[] };
        let (ok, answer) = host.run(&gather(paths, &host.layout(), remember, true));
        let state = crate::engine::gather::parse(&answer).unwrap();
        let effective = &state.facts.sshd_effective;
        assert!(
            ok && effective.get("port").map(String::as_str) == Some("22"),
            "{answer}"
        );
        assert_eq!(
            effective.get("banner").map(String::as_str),
            Some("/etc/it's"),
            "{answer}"
        );
    };
    // A plan asks and keeps nothing; an apply asks and keeps; the next
    // runs, apply or plan, read what it kept.
    gather_once(false);
    assert!(host.read("/state/host-facts").is_none());
    for remember in [true, true, false] {
        gather_once(remember);
    }
    assert_eq!(asked(&host), 2, "{:#?}", host.calls());
    // Each file sshd reads, changed, has it asked again once: a nested
    // Include rewritten with the same bytes (a new ctime), a new file the
    // glob matches, an Include's file that was not there, a host key.
    // A backup beside the drop-ins (a dot file, as the commit leaves
    // them) matches no glob and changes nothing.
    let mut want = 2;
    for change in [
        "/etc/ssh/nested.conf",
        "/etc/ssh/sshd_config.d/b.conf",
        "/etc/extra/x.conf",
        "/etc/keys/k1",
        "/etc/ssh/sshd_config.d/.a.conf.dockhand-backup",
    ] {
        host.write(change, b"X11Forwarding no\n", 0o644);
        for remember in [true, true, false] {
            gather_once(remember);
        }
        if !change.contains("dockhand-backup") {
            want += 1;
        }
        assert_eq!(asked(&host), want, "after {change}: {:#?}", host.calls());
    }
    // With managed paths, one `stat` takes theirs and the key's (the link
    // below has the key taken again, through it).
    let stat = "#!/bin/sh\necho \"stat $*\" >> ROOT/calls\nexec /usr/bin/stat \"$@\"\n";
    host.write("/stubs/stat", stat.replace("ROOT", &root).as_bytes(), 0o755);
    let stats = |host: &Host| {
        host.calls()
            .iter()
            .filter(|c| c.starts_with("stat "))
            .count()
    };
    let before = stats(&host);
    gather_once(true);
    assert_eq!(
        (asked(&host), stats(&host) - before),
        (want, 1),
        "{:#?}",
        host.calls()
    );
    std::fs::remove_file(host.at("/stubs/stat")).unwrap();
    // An Include's file made a link: asked again once; then its target
    // rewritten with the same bytes, seen through the link: once more.
    std::fs::remove_file(host.at("/etc/extra/x.conf")).unwrap();
    host.write("/etc/extra/real.conf", b"X11Forwarding no\n", 0o644);
    std::os::unix::fs::symlink(
        host.at("/etc/extra/real.conf"),
        host.at("/etc/extra/x.conf"),
    )
    .unwrap();
    for target_too in [false, true] {
        if target_too {
            host.write("/etc/extra/real.conf", b"X11Forwarding no\n", 0o644);
        }
        for remember in [true, true, false] {
            gather_once(remember);
        }
        want += 1;
        assert_eq!(asked(&host), want, "{:#?}", host.calls());
    }
    let kept = host.read("/state/host-facts").unwrap();
    assert!(
        kept.contains(&format!("{root}/etc/ssh/nested.conf\t")),
        "{kept}"
    );
    assert!(
        kept.contains("\nkept_settings='port 22\nbanner /etc/it'\\''s'\n"),
        "{kept}"
    );
    // verify's fresh login keeps what it asked: the next plan reads it.
    host.write("/etc/ssh/nested.conf", b"X11Forwarding yes\n", 0o644);
    let (ok, said) = host.run(&sshd_settings(&host.layout(), &[]));
    assert!(ok && said == "port 22\nbanner /etc/it's\n", "{said}");
    gather_once(false);
    assert_eq!(asked(&host), want + 1, "{:#?}", host.calls());
    // A failing sshd -T is never kept; what the programs can do still is.
    host.write("/fail/sshd", b"sshd -T", 0o644);
    host.write("/etc/ssh/nested.conf", b"X11Forwarding no\n", 0o644);
    let kex = host
        .calls()
        .iter()
        .filter(|c| c.starts_with("dockerd --help"))
        .count();
    for remember in [true, true] {
        let (_, answer) = host.run(&gather(&[], &host.layout(), remember, true));
        assert!(answer.contains("@sshd_status 1\n"), "{answer}");
    }
    assert_eq!(asked(&host), want + 3, "{:#?}", host.calls());
    std::fs::remove_file(host.at("/fail/sshd")).unwrap();
    // A quoted Include is not followed as sshd would: sshd is asked on
    // every run, the programs' facts are still kept.
    host.write(
        "/etc/ssh/sshd_config",
        b"Include \"/etc/ssh/with space/*.conf\"\n",
        0o644,
    );
    for remember in [true, true, true] {
        gather_once(remember);
    }
    assert_eq!(asked(&host), want + 6, "{:#?}", host.calls());
    let kex_now = host
        .calls()
        .iter()
        .filter(|c| c.starts_with("dockerd --help"))
        .count();
    assert_eq!(kex_now, kex + 2, "{:#?}", host.calls());
}

#[test]
fn systemd_s_view_of_the_units_is_asked_again_only_when_it_loads_them_again() {
    let host = Host::new();
    let root = host.root().to_string();
    let show = |reload: &str| {
        format!(
            "Id=docker.service\nExecStart={{ path=/usr/bin/dockerd ; argv[]=/usr/bin/dockerd --containerd=/run/c.sock ; ignore_errors=no ; start_time=[n/a] ; pid=0 }}\nFragmentPath={root}/docker.service\nDropInPaths={root}/override.conf\nActiveState=active\nControlGroup=/system.slice/docker.service\nNeedDaemonReload={reload}\n\nId=ssh.service\nActiveState=active\nControlGroup=/system.slice/ssh.service\nNeedDaemonReload=no\n"
        )
    };
    host.write("/units-show", show("no").as_bytes(), 0o644);
    host.write(
        "/docker.service",
        b"[Service]\nExecStart=/usr/bin/dockerd -H fd://\n",
        0o644,
    );
    host.write("/override.conf", b"[Service]\nExecStart=\n", 0o644);
    let populated = |unit: &str, yes: bool| {
        host.write(
            &format!("/cgroup/system.slice/{unit}/cgroup.events"),
            format!("populated {}\nfrozen 0\n", u8::from(yes)).as_bytes(),
            0o644,
        );
    };
    populated("docker.service", true);
    populated("ssh.service", true);
    std::fs::create_dir_all(host.at("/run/systemd/generator")).unwrap();
    let asked = |host: &Host| {
        host.calls()
            .iter()
            .filter(|c| c.starts_with("systemctl show -p Id "))
            .count()
    };
    let managed = [(host.at("/override.conf"), false)];
    // Each gather says what systemd said: the same facts, kept or asked.
    let gather_once = |remember: bool| {
        let paths: &[(String, bool)] = if remember { &managed } else { &[] };
        let (ok, answer) = host.run(&gather(paths, &host.layout(), remember, true));
        assert!(ok, "{answer}");
        let facts = crate::engine::gather::parse(&answer).unwrap().facts;
        assert_eq!(
            facts.docker_exec_start,
            [["/usr/bin/dockerd", "--containerd=/run/c.sock"]],
            "{answer}"
        );
        assert_eq!(facts.docker_drop_ins, [host.at("/override.conf")]);
        assert_eq!(facts.ssh_unit, "ssh.service");
        (facts.docker_active, facts.ssh_active)
    };
    let active = || ("active".to_string(), "active".to_string());
    // A plan asks and keeps nothing; an apply asks and keeps; the next
    // runs, apply or plan, read what it kept, and whether the units run
    // from their cgroups.
    assert_eq!(gather_once(false), active());
    for remember in [true, true, false] {
        assert_eq!(gather_once(remember), active());
    }
    assert_eq!(asked(&host), 2, "{:#?}", host.calls());
    let kept = host.read("/state/host-facts").unwrap();
    assert!(
        kept.contains("\nkept_units='Id=docker.service\n")
            && kept.contains("/run/systemd/generator\t"),
        "{kept}"
    );
    // A daemon-reload (the generators' directory made anew) and a
    // `systemctl set-property` (a system.control drop-in, at run time or
    // for good): asked again once each.
    let mut want = 2;
    std::fs::remove_dir(host.at("/run/systemd/generator")).unwrap();
    std::fs::create_dir(host.at("/run/systemd/generator")).unwrap();
    for control in ["", "/run/systemd", "/etc/systemd"] {
        if !control.is_empty() {
            host.write(
                &format!("{control}/system.control/docker.service.d/50-CPUQuota.conf"),
                b"[Service]\nCPUQuota=50%\n",
                0o644,
            );
        }
        for remember in [true, true, false] {
            assert_eq!(gather_once(remember), active());
        }
        want += 1;
        assert_eq!(asked(&host), want, "after {control:?}: {:#?}", host.calls());
    }
    // docker stopped (its cgroup empty, then gone) or ssh's cgroup not
    // there: systemd is asked on every run, and its answer stands.
    host.write(
        "/units-show",
        show("no")
            .replace(
                "ActiveState=active\nControlGroup=/system.slice/docker",
                "ActiveState=failed\nControlGroup=/system.slice/docker",
            )
            .as_bytes(),
        0o644,
    );
    populated("docker.service", false);
    for remember in [true, false] {
        assert_eq!(gather_once(remember).0, "failed");
    }
    std::fs::remove_dir_all(host.at("/cgroup/system.slice/docker.service")).unwrap();
    assert_eq!(gather_once(true).0, "failed");
    want += 3;
    assert_eq!(asked(&host), want, "{:#?}", host.calls());
    host.write("/units-show", show("no").as_bytes(), 0o644);
    populated("docker.service", true);
    std::fs::remove_dir_all(host.at("/cgroup/system.slice/ssh.service")).unwrap();
    assert_eq!(gather_once(true), active());
    populated("ssh.service", true);
    assert_eq!(gather_once(true), active());
    want += 1;
    assert_eq!(asked(&host), want, "{:#?}", host.calls());
    // Units changed on disk and not loaded again (NeedDaemonReload=yes):
    // what systemd says is not kept; asked until a daemon-reload.
    host.write("/units-show", show("yes").as_bytes(), 0o644);
    std::fs::remove_dir(host.at("/run/systemd/generator")).unwrap();
    std::fs::create_dir(host.at("/run/systemd/generator")).unwrap();
    for remember in [true, true, false] {
        assert_eq!(gather_once(remember), active());
    }
    want += 3;
    assert_eq!(asked(&host), want, "{:#?}", host.calls());
    assert!(
        host.read("/state/host-facts")
            .unwrap()
            .contains("\nkept_units=''\n")
    );
    // The reload done, the next apply keeps it again, with the programs'
    // answers it had kept (sshd is not asked for them).
    host.write("/units-show", show("no").as_bytes(), 0o644);
    let sshd = |host: &Host| host.calls().iter().filter(|c| *c == "sshd -T").count();
    let sshd_before = sshd(&host);
    gather_once(false);
    gather_once(true);
    gather_once(true);
    want += 2;
    assert_eq!(
        (asked(&host), sshd(&host)),
        (want, sshd_before),
        "{:#?}",
        host.calls()
    );
    // verify's fresh login keeps systemd's view with sshd's settings (a
    // converge's commit reloads both): the next gather asks neither.
    std::fs::remove_dir(host.at("/run/systemd/generator")).unwrap();
    std::fs::create_dir(host.at("/run/systemd/generator")).unwrap();
    let (ok, said) = host.run(&sshd_settings(&host.layout(), &[]));
    assert!(ok && said == "port 22\n", "{said}");
    gather_once(true);
    want += 1;
    assert_eq!(
        (asked(&host), sshd(&host)),
        (want, sshd_before + 1),
        "{:#?}",
        host.calls()
    );
}

#[test]
fn what_the_files_say_is_read_again_only_when_one_of_them_changed() {
    let host = Host::new();
    let root = host.root().to_string();
    host.write("/etc/t/a.conf", b"a = 1\n", 0o644);
    host.write("/etc/t/key.pem", b"secret\n", 0o600);
    let managed = vec![
        (host.at("/etc/t"), false),
        (host.at("/etc/t/key.pem"), true),
        (host.at("/etc/t/a.conf"), false),
        (host.at("/etc/t/new.conf"), false),
    ];
    for program in ["sha256sum", "cat", "base64"] {
        let stub = format!(
            "#!/bin/sh\necho \"{program} $*\" >> ROOT/calls\nexec /usr/bin/{program} \"$@\"\n"
        );
        host.write(
            &format!("/stubs/{program}"),
            stub.replace("ROOT", &root).as_bytes(),
            0o755,
        );
    }
    let asked = |host: &Host| {
        host.calls()
            .iter()
            .filter(|c| {
                c.starts_with("sha256sum ") || c.starts_with("cat ") || c.starts_with("base64 ")
            })
            .count()
    };
    // Each gather says the same of every path, read or kept.
    let said = |remember: bool| {
        let (ok, answer) = host.run(&gather(&managed, &host.layout(), remember, false));
        assert!(ok, "{answer}");
        let state = crate::engine::gather::parse(&answer).unwrap();
        managed
            .iter()
            .map(|(path, _)| state.path(path).clone())
            .collect::<Vec<_>>()
    };
    let first = said(false);
    assert!(
        host.read("/state/host-files").is_none(),
        "a plan keeps nothing"
    );
    assert_eq!(first[2].content.as_deref(), Some(&b"a = 1\n"[..]));
    assert_eq!(first[1].content, None);
    assert!(first[1].sha256.is_some());
    assert_eq!(asked(&host), 3);
    for remember in [true, true, false] {
        assert_eq!(said(remember), first);
    }
    assert_eq!(asked(&host), 6, "{:#?}", host.calls());
    let kept = host.read("/state/host-files").unwrap();
    assert!(
        !kept.contains("secret") && !kept.contains("c2VjcmV0"),
        "{kept}"
    );
    // Each change is seen on the next run and asked once: the same bytes
    // written again (a new ctime), a mode, a managed file that comes, and
    // one that goes.
    let mut want = 6;
    let changes: [(&str, &dyn Fn()); 4] = [
        ("rewritten", &|| {
            host.write("/etc/t/a.conf", b"a = 1\n", 0o644)
        }),
        ("chmod", &|| {
            std::fs::set_permissions(
                host.at("/etc/t/key.pem"),
                std::fs::Permissions::from_mode(0o400),
            )
            .unwrap()
        }),
        ("come", &|| host.write("/etc/t/new.conf", b"new\n", 0o644)),
        ("gone", &|| {
            std::fs::remove_file(host.at("/etc/t/a.conf")).unwrap()
        }),
    ];
    for (change, make) in changes {
        make();
        let again = said(true);
        for remember in [true, false] {
            assert_eq!(said(remember), again, "{change}");
        }
        want += 3;
        assert_eq!(asked(&host), want, "{change}: {:#?}", host.calls());
    }
    // verify's fresh login after a commit keeps what the files say: the
    // next run reads it (the paths in another order: the same key).
    // One `stat` there takes the files' identities and the kept facts'
    // key, which the next run then finds as kept (no `sshd -T`).
    host.write("/etc/t/a.conf", b"a = 2\n", 0o644);
    let mut reversed = managed.clone();
    reversed.reverse();
    let stat = "#!/bin/sh\necho \"stat $*\" >> ROOT/calls\nexec /usr/bin/stat \"$@\"\n";
    host.write("/stubs/stat", stat.replace("ROOT", &root).as_bytes(), 0o755);
    let count = |host: &Host, program: &str| {
        host.calls()
            .iter()
            .filter(|c| c.split(' ').next() == Some(program))
            .count()
    };
    let (stats, sshd_t) = (count(&host, "stat"), count(&host, "sshd"));
    let (ok, out) = host.run(&sshd_settings(&host.layout(), &reversed));
    assert!(ok && out == "port 22\n", "{out}");
    assert_eq!(
        (count(&host, "stat") - stats, count(&host, "sshd") - sshd_t),
        (1, 1),
        "{:#?}",
        host.calls()
    );
    want += 3;
    assert_eq!(asked(&host), want);
    let now = said(true);
    assert_eq!(now[2].content.as_deref(), Some(&b"a = 2\n"[..]));
    assert_eq!(asked(&host), want, "{:#?}", host.calls());
    assert_eq!(count(&host, "sshd") - sshd_t, 1, "{:#?}", host.calls());
}

#[test]
fn an_sshd_configuration_too_big_to_walk_has_sshd_asked_every_run() {
    let host = Host::new();
    // Past what the walk reads by the shell's byte-wise read.
    let mut big = "# padding\n".repeat((MAX_CONTENT_BYTES as usize) / 10 + 1);
    big.push_str("PasswordAuthentication no\n");
    host.write("/etc/ssh/sshd_config", big.as_bytes(), 0o644);
    for _ in 0..2 {
        let (ok, answer) = host.run(&gather(&[], &host.layout(), true, true));
        assert!(ok && answer.contains("@sshd_status 0\n"), "{answer}");
    }
    let asked = host.calls().iter().filter(|c| *c == "sshd -T").count();
    assert_eq!(asked, 2, "{:#?}", host.calls());
    assert!(
        host.read("/state/host-facts")
            .unwrap()
            .contains("kept_patterns='unsure'")
    );
}

#[test]
fn a_data_root_named_by_the_unit_or_its_environment_has_dockerd_asked() {
    // The data roots the gather looks in are this machine's own: where
    // docker runs here, it holds something, and dockerd is always asked.
    if Path::new("/var/lib/docker").exists() || Path::new("/etc/docker/daemon.json").exists() {
        eprintln!("skipped: this machine has a docker data root or daemon.json of its own");
        return;
    }
    let host = Host::new();
    let root = host.root().to_string();
    let docker = "#!/bin/sh\necho \"docker $*\" >> ROOT/calls\n";
    host.write(
        "/stubs/docker",
        docker.replace("ROOT", &root).as_bytes(),
        0o755,
    );
    host.write(
        "/units-show",
        format!(
            "ActiveState=active\nFragmentPath={root}/docker.service\nDropInPaths={root}/override.conf\nEnvironmentFiles={root}/default (ignore_errors=yes)\n\nId=ssh.service\n"
        )
        .as_bytes(),
        0o644,
    );
    host.write(
        "/docker.service",
        b"[Service]\nExecStart=/usr/bin/dockerd -H fd://\n",
        0o644,
    );
    host.write("/default", b"# DOCKER_OPTS=\"-g /srv/old\"\n", 0o644);
    let cases: [(&str, &[u8], &[u8]); 4] = [
        (
            "nothing names one",
            b"[Service]\nLimitNOFILE=1048576\n",
            b"DOCKER_OPTS=\"--log-level=warn\"\n",
        ),
        (
            "the unit's -g",
            b"[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -g /srv/docker\n",
            b"",
        ),
        (
            "the unit's --data-root=",
            b"[Service]\nExecStart=\nExecStart=/usr/bin/dockerd --data-root=/srv/docker\n",
            b"",
        ),
        (
            "the environment's -g",
            b"",
            b"DOCKER_OPTS=\"-H fd:// -g /srv/docker\"\n",
        ),
    ];
    for (case, drop_in, environment) in cases {
        host.write("/override.conf", drop_in, 0o644);
        host.write("/default", environment, 0o644);
        let before = host
            .calls()
            .iter()
            .filter(|c| c.starts_with("docker info"))
            .count();
        let (ok, answer) = host.run(&gather(&[], &host.layout(), false, true));
        let asked = host
            .calls()
            .iter()
            .filter(|c| c.starts_with("docker info"))
            .count()
            - before;
        let nothing = answer.lines().any(|l| l == "docker_holds_nothing");
        assert!(ok, "{case}: {answer}");
        if case == "nothing names one" {
            assert!(nothing && asked == 0, "{case}: {answer}");
        } else {
            assert!(!nothing && asked == 1, "{case}: {answer}");
        }
    }
}

#[test]
fn the_lock_is_held_while_its_command_lives_and_refuses_a_second() {
    let host = Host::new();
    // As an earlier version left it: open to all.
    host.write("/state/apply.lock", b"", 0o644);
    std::fs::set_permissions(host.at("/state"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let first = lock(&host.layout(), 0, &[], &host.at("/transient"), None);
    let (mut holder, said) = hold(&first);
    assert_eq!(said, "locked\n");
    // Private: nobody else can open it, let alone hold it.
    assert_eq!(host.mode("/state/apply.lock"), 0o600);
    assert_eq!(host.mode("/state"), 0o700);
    assert_eq!(second_lock(&host), LockOutcome::Busy);
    // The connection goes: so does the lock.
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let third = run_to_end(&lock(&host.layout(), 0, &[], &host.at("/transient"), None));
    assert!(third.status.success(), "{third:?}");
}

/// A held lock's shell as a session holds it: its stdin, stdout and stderr
/// piped, taken as root (`sh -c`) or as through sudo (`sh -s`, the script
/// on the stdin the requests follow on).
struct HeldShell {
    child: std::process::Child,
    stdout: std::process::ChildStdout,
    stderr: std::process::ChildStderr,
}

impl HeldShell {
    fn take(lock: &Script, on_stdin: bool) -> HeldShell {
        HeldShell::take_saying(lock, on_stdin).0
    }

    /// The shell, and what it wrote before its holding line on stdout and
    /// on stderr.
    fn take_saying(lock: &Script, on_stdin: bool) -> (HeldShell, String, String) {
        let mut shell = Command::new("/bin/sh");
        if on_stdin {
            shell.arg("-s");
        } else {
            shell.arg("-c").arg(lock.command(&Become::No));
        }
        let mut child = shell
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let sent = if on_stdin {
            lock.text.as_bytes()
        } else {
            lock.input()
        };
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), sent).unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        // As the transport: up to the holding line on each stream.
        let said = up_to_holding(&mut stdout);
        let said_on_stderr = up_to_holding(&mut stderr);
        let shell = HeldShell {
            child,
            stdout,
            stderr,
        };
        (shell, said, said_on_stderr)
    }

    fn send(&mut self, bytes: &[u8]) {
        std::io::Write::write_all(self.child.stdin.as_mut().unwrap(), bytes).unwrap();
    }

    /// Runs `script` with `input` on the held shell: its stdout, its
    /// stderr, its status, read as the transport reads them.
    fn ask(&mut self, script: &str, input: &[u8]) -> (String, String, u32) {
        let end = crate::transport::held::fresh_end();
        self.send(&crate::transport::held::request(&end, script, input));
        let mut stdout = Vec::new();
        let (at, status) = read_until(&mut self.stdout, &mut stdout, |bytes, seen| {
            crate::transport::held::stdout_end(bytes, &end, seen).unwrap()
        });
        assert_eq!(stdout.len(), at + end.len() + format!(" {status}\n").len());
        stdout.truncate(at);
        let mut stderr = Vec::new();
        let err_at = read_until(&mut self.stderr, &mut stderr, |bytes, seen| {
            crate::transport::held::stderr_end(bytes, &end, seen)
        });
        stderr.truncate(err_at);
        (
            String::from_utf8(stdout).unwrap(),
            String::from_utf8(stderr).unwrap(),
            status,
        )
    }

    /// Closes stdin (the connection going) and returns how the shell ended.
    fn close(mut self) -> std::process::ExitStatus {
        drop(self.child.stdin.take());
        self.child.wait().unwrap()
    }
}

/// What a held shell wrote on one stream before its holding line; byte by
/// byte: nothing after that line may be read here.
fn up_to_holding(from: &mut impl std::io::Read) -> String {
    let mut said = Vec::new();
    let holding = format!("{}\n", crate::transport::HOLDING);
    while !said.ends_with(holding.as_bytes()) {
        let mut byte = [0u8];
        let read = from.read(&mut byte).unwrap();
        assert_eq!(
            read,
            1,
            "ended before it held: {:?}",
            String::from_utf8_lossy(&said)
        );
        said.push(byte[0]);
    }
    said.truncate(said.len() - holding.len());
    String::from_utf8(said).unwrap()
}

/// Reads `from` into `bytes` chunk by chunk until `found` (given the bytes
/// so far and how many it saw before) finds what it looks for.
fn read_until<T>(
    from: &mut impl std::io::Read,
    bytes: &mut Vec<u8>,
    found: impl Fn(&[u8], usize) -> Option<T>,
) -> T {
    loop {
        let seen = bytes.len();
        let mut chunk = [0u8; 4096];
        let read = from.read(&mut chunk).unwrap();
        assert!(
            read > 0,
            "the held shell ended: {:?}",
            String::from_utf8_lossy(bytes)
        );
        bytes.extend_from_slice(&chunk[..read]);
        if let Some(it) = found(bytes, seen) {
            return it;
        }
    }
}

/// What the lock and its gather write on stderr comes before the holding
/// line there too, so it is never read as the first script's stderr.
#[test]
fn the_gathers_stderr_ends_before_the_held_shells_first_answer() {
    let host = Host::new();
    let gather = Script::plain(Kind::Gather, "echo gathered\necho noise >&2\n".into());
    let lock = lock(
        &host.layout(),
        0,
        &[],
        &host.at("/transient"),
        Some(&gather),
    );
    let (mut held, said, said_on_stderr) = HeldShell::take_saying(&lock, false);
    assert!(said.ends_with("gathered\n"), "{said}");
    assert_eq!(said_on_stderr, "noise\n");
    let answer = held.ask("echo out; echo err >&2", b"");
    assert_eq!(answer, ("out\n".into(), "err\n".into(), 0));
    assert!(held.close().success());
}

#[test]
fn the_held_lock_s_shell_runs_each_script_sent_as_a_command_of_its_own() {
    for on_stdin in [false, true] {
        let (host, work) = lived_in();
        let lock = lock(&host.layout(), 0, &[], &host.at("/transient"), None);
        let mut held = HeldShell::take(&lock, on_stdin);
        // Staging with its commit: its records and contents on its stdin.
        let commit_script = commit(&work, &host.layout());
        let staged = stage(&work, &host.layout(), Some(&commit_script));
        let (text, input) = staged.held().expect("small enough to send held");
        assert!(!input.is_empty());
        let (out, err, status) = held.ask(text, input);
        let (_, committed) = out.split_once("done\n").expect("staging said done");
        assert_eq!(
            (
                CommitOutcome::of(committed, status == 0, || "failed".into()),
                status
            ),
            (CommitOutcome::Done, 0),
            "{out}{err}"
        );
        assert_eq!(host.read("/etc/t/key.pem").as_deref(), Some("NEW KEY\n"));
        assert_eq!(host.mode("/etc/t/key.pem"), 0o400);
        // A failing script: its output on each stream, its status.
        let answer = held.ask("echo out; echo err >&2; printf tail; exit 3", b"");
        assert_eq!(answer, ("out\ntail".into(), "err\n".into(), 3));
        // Its stdin is its input, then ends; never the requests that follow.
        let answer = held.ask("cat; echo after", b"DATA");
        assert_eq!(answer, ("DATAafter\n".into(), String::new(), 0));
        let answer = held.ask("cat; echo none", b"");
        assert_eq!(answer, ("none\n".into(), String::new(), 0));
        // The lock's descriptor is not the script's, and its session is its
        // own: stopping its whole group stops nothing of the lock's.
        let answer = held.ask("[ -e /proc/self/fd/9 ] && echo open || echo closed", b"");
        assert_eq!(answer.0, "closed\n");
        let answer = held.ask("kill -TERM 0; sleep 5; echo lived", b"");
        assert_eq!((answer.0.as_str(), answer.2), ("", 143));
        assert_eq!(second_lock(&host), LockOutcome::Busy, "the lock let go");
        // An END that a script prints is output like any: the answer ends
        // at its own.
        let answer = held.ask("echo '@end-0000 0'", b"");
        assert_eq!(answer, ("@end-0000 0\n".into(), String::new(), 0));
        // Restored by the finish, sent the same way.
        let (out, _, status) = held.ask(restore(&work, &host.layout()).held().unwrap().0, b"");
        assert_eq!((out.as_str(), status), ("ok restored\n", 0));
        assert_as_before(&host);
        assert!(held.close().success(), "on_stdin {on_stdin}");
        let next = run_to_end(&lock);
        assert!(next.status.success(), "the lock stayed: {next:?}");
    }
}

/// The connection going while a held script hangs (a commit stuck in
/// docker's start) ends the lock's shell and the lock at once, as it did
/// when the commit was a command of its own: the next lock is not kept
/// waiting on a host nobody watches.
#[test]
fn the_connection_going_while_a_held_script_hangs_lets_the_lock_go() {
    for on_stdin in [false, true] {
        let host = Host::new();
        let lock = lock(&host.layout(), 0, &[], &host.at("/transient"), None);
        let mut held = HeldShell::take(&lock, on_stdin);
        let pid_file = host.at("/hanging.pid");
        let hanging = format!("echo $$ > {}; exec sleep 60", quote(&pid_file));
        let end = crate::transport::held::fresh_end();
        held.send(&crate::transport::held::request(
            &end,
            &hanging,
            b"some input",
        ));
        within_10s(
            || host.exists("/hanging.pid"),
            || "the script never ran".into(),
        );
        assert_eq!(second_lock(&host), LockOutcome::Busy);
        drop(held.child.stdin.take());
        within_10s(
            || held.child.try_wait().unwrap().is_some(),
            || format!("on_stdin {on_stdin}: the lock's shell waited on its script"),
        );
        let next = run_to_end(&lock);
        assert!(next.status.success(), "on_stdin {on_stdin}: {next:?}");
        let pid = host.read("/hanging.pid").unwrap().trim().to_string();
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "the script goes on, as a command whose connection went would"
        );
        Command::new("kill").arg(&pid).status().unwrap();
    }
}

#[test]
fn the_held_lock_s_shell_runs_no_script_that_came_cut_short_or_unframed() {
    let host = Host::new();
    let lock = lock(&host.layout(), 0, &[], &host.at("/transient"), None);
    let marker = host.at("/ran");
    let script = format!("touch {}\n#@end-ab", quote(&marker));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // The connection went before the whole script came.
        (
            "cut short",
            format!("@run @end-ab {} 0\n{}", script.len(), &script[..10]).into_bytes(),
        ),
        // The bytes came, but not with the END the line named.
        (
            "another end",
            format!("@run @end-zz {} 0\n{script}", script.len()).into_bytes(),
        ),
        // Not a request at all.
        ("unframed", format!("{script}\n").into_bytes()),
        (
            "no size",
            format!("@run @end-ab x 0\n{script}").into_bytes(),
        ),
        (
            "an input size that is not a number",
            format!("@run @end-ab {} 0x\n{script}", script.len()).into_bytes(),
        ),
        (
            "a word more",
            format!("@run @end-ab {} 0 1\n{script}", script.len()).into_bytes(),
        ),
    ];
    for (case, bytes) in cases {
        let mut held = HeldShell::take(&lock, false);
        held.send(&bytes);
        let status = held.close();
        assert!(!status.success(), "{case}: {status}");
        assert!(!host.exists("/ran"), "{case}: the script ran");
        // Gone with its shell: the next lock is taken.
        let next = run_to_end(&lock);
        assert!(next.status.success(), "{case}: {next:?}");
    }
}

#[test]
fn staging_writes_every_temp_with_its_mode() {
    let (host, mut work) = lived_in();
    // A check copy, private to root's check.
    work.files[2].check_copy = Some((
        host.at("/etc/new/.daemon.json.dockhand-new-check-r"),
        b"{}".to_vec(),
    ));
    work.files.push(host.file("/etc/t/empty", b"", 0o644));
    host.stage(&work);
    assert_eq!(host.mode("/etc/new"), 0o750);
    for file in &work.files {
        assert_eq!(
            std::fs::read(&file.temp).unwrap(),
            file.content,
            "{}",
            file.temp
        );
        let mode = std::fs::metadata(&file.temp).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, file.mode, "{}", file.temp);
    }
    assert_eq!(
        host.mode("/etc/new/.daemon.json.dockhand-new-check-r"),
        0o600
    );
    assert_eq!(host.read("/etc/t/key.pem").as_deref(), Some("OLD KEY\n"));
}

#[test]
fn staging_cut_short_fails_and_leaves_only_private_temps() {
    let (host, work) = lived_in();
    let script = stage(&work, &host.layout(), None);
    // The connection drops in the middle of the key's bytes.
    let input = script.input();
    let cut = String::from_utf8_lossy(input).find("NEW KEY").unwrap() + 3;
    let cut = Script::with_input(Kind::Stage, script.text.clone(), input[..cut].to_vec());
    let (ok, out) = host.run(&cut);
    assert!(
        !ok && first_error(&out) == Some("input ended early"),
        "{out}"
    );
    for dir in ["/etc/t", "/etc/new"] {
        for name in host.names_in(dir) {
            if name.contains(".dockhand-new-") {
                assert_eq!(host.mode(&format!("{dir}/{name}")), 0o600, "{name}");
            }
        }
    }
    assert_eq!(host.read("/etc/t/key.pem").as_deref(), Some("OLD KEY\n"));
}

#[test]
fn stale_temps_and_backups_go_at_the_next_stage() {
    let (host, work) = lived_in();
    host.write("/etc/t/.key.pem.dockhand-new-old", b"x", 0o600);
    host.write("/etc/t/.key.pem.dockhand-backup", b"x", 0o600);
    host.stage(&work);
    assert_eq!(
        host.names_in("/etc/t"),
        [
            ".key.pem.dockhand-new-r",
            ".sshd.conf.dockhand-new-r",
            "ca.pem",
            "key.pem",
            "sshd.conf"
        ]
    );
}

/// Every kind of script, rendered for work that uses every part.
fn every_script(host: &Host, work: &Work) -> Vec<Script> {
    let gathered = gather(
        &[
            (host.at("/etc/t/key.pem"), true),
            (host.at("/etc/a b"), false),
        ],
        &host.layout(),
        true,
        true,
    );
    vec![
        lock(
            &host.layout(),
            30,
            &[host.at("/etc/t")],
            TRANSIENT_UNITS,
            Some(&gathered),
        ),
        gathered,
        lock(
            &host.layout(),
            30,
            &[host.at("/etc/t")],
            TRANSIENT_UNITS,
            None,
        ),
        stage(work, &host.layout(), None),
        commit(work, &host.layout()),
        restore(work, &host.layout()),
        handlers_again(work, &host.layout()),
        finish(work, &host.layout()),
        ping(true),
        login(),
        sshd_settings(&host.layout(), &[]),
    ]
}

fn full_work() -> (Host, Work) {
    let (host, mut work) = lived_in();
    work.sshd_switch = Some(drop_in_switch(&host));
    work.live_restore_first = Some((host.at("/etc/t/daemon.json"), "{}\n".into()));
    work.files[0].secret = true;
    work.files[0].validate = Some(Check::Shell("grep -q KEY %s".into()));
    work.files[2].check_copy = Some((
        host.at("/etc/new/.daemon.json.dockhand-new-check-r"),
        b"{}".to_vec(),
    ));
    work.files[2].validate = Some(Check::program(&[
        "dockerd",
        "--validate",
        "--config-file",
        "%s",
    ]));
    (host, work)
}

#[test]
fn every_script_says_its_kind_fills_every_hole_and_keeps_contents_off_its_text() {
    let (host, work) = full_work();
    for script in every_script(&host, &work) {
        for how in [Become::Sudo, Become::No] {
            assert_eq!(
                Kind::of(&script.command(&how), &script.stdin(&how)),
                Some(script.kind),
                "{}",
                script.text
            );
        }
        assert_eq!(open_hole(&script.text), None, "{}", script.text);
        assert!(!script.text.contains("NEW KEY"), "{}", script.text);
        assert!(!script.command(&Become::Sudo).contains("NEW KEY"));
    }
    // The key's bytes travel on staging's stdin only.
    let staged = stage(&work, &host.layout(), None);
    assert!(String::from_utf8_lossy(staged.input()).contains("NEW KEY"));
    assert_eq!(Kind::of("true", b""), None);
}

/// shellcheck reads every script as rendered, as POSIX sh. SC2015 (`A &&
/// B || C` is not if-then-else) is left out: `step && step || fail` is
/// these scripts' way to fail when any step fails, and means it.
#[test]
fn shellcheck_finds_nothing_in_any_script() {
    let (host, work) = full_work();
    let mut texts: Vec<(String, String)> = every_script(&host, &work)
        .into_iter()
        .map(|s| (s.kind.name().to_string(), s.text))
        .collect();
    texts.push(("start-docker".into(), START_DOCKER.to_string()));
    texts.push((
        "dial-stdio".into(),
        dial_stdio(&host.layout(), "/info").text,
    ));
    texts.push((
        "reload-firewall".into(),
        super::handlers::RELOAD_FIREWALL.into(),
    ));
    texts.push((
        "sudo-with-password".into(),
        fill(SUDO_WITH_PASSWORD, &[("INNER", "/bin/sh -s")]),
    ));
    let mut findings = String::new();
    for (name, text) in texts {
        let mut child = match Command::new("shellcheck")
            .args(["--shell=sh", "--severity=style", "--exclude=SC2015", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("shellcheck: {e} (scripts/setup-machine installs it)"),
        };
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        if !output.status.success() {
            findings += &format!(
                "shellcheck on the {name} script:\n{}\n",
                String::from_utf8_lossy(&output.stdout)
            );
        }
    }
    assert!(findings.is_empty(), "{findings}");
}

#[test]
fn answers_are_read_as_lines() {
    let cases = [
        ("error validate /x: bad", Line::Error("validate /x: bad")),
        ("ok committed", Line::Committed),
        ("rolled-back", Line::RolledBack),
        ("handler reload-ssh ok", Line::HandlerRan("reload-ssh")),
        ("ok finished", Line::Ok("finished")),
        ("staged /etc/a b", Line::Other("staged /etc/a b")),
    ];
    for (text, line) in cases {
        assert_eq!(Line::parse(text), line, "{text}");
    }
    let outcomes = [
        ("ok committed\nok handlers\n", true, CommitOutcome::Done),
        (
            "error validate /x: bad\n",
            false,
            CommitOutcome::Undone {
                reason: "validate /x: bad".into(),
                restored: false,
            },
        ),
        (
            "ok committed\nerror check after writing /x: no\nrolled-back\n",
            false,
            CommitOutcome::Undone {
                reason: "check after writing /x: no".into(),
                restored: true,
            },
        ),
        (
            "ok committed\nerror handler restart-docker failed: x\n",
            false,
            CommitOutcome::FailedAfterReplacing("handler restart-docker failed: x".into()),
        ),
        (
            "ok committed\n",
            false,
            CommitOutcome::FailedAfterReplacing("exit status 1".into()),
        ),
    ];
    for (text, success, outcome) in outcomes {
        assert_eq!(
            CommitOutcome::of(text, success, || "exit status 1".into()),
            outcome,
            "{text}"
        );
    }
}

#[test]
fn a_script_reaches_its_shell_as_root_through_sudo_without_a_prompt() {
    let layout = Layout::HOST;
    let work = Work::default();
    let commit = commit(&work, &layout);
    assert_eq!(commit.command(&Become::Sudo), "sudo -n /bin/sh -s");
    assert_eq!(commit.stdin(&Become::Sudo), commit.text.as_bytes());
    // As root already, on the command line: no round trip for the
    // channel's window before it is sent.
    assert_eq!(
        commit.command(&Become::No),
        format!("/bin/sh -c {}", quote(&commit.text))
    );
    assert!(commit.input().is_empty());
    // The lock, with the gather in it, as the commit: sudo's log line
    // stays `sh -s`, whatever the script holds.
    let gather = gather(
        &[("/etc/docker/daemon.json".into(), false)],
        &layout,
        true,
        true,
    );
    let lock = lock(&layout, 30, &[], TRANSIENT_UNITS, Some(&gather));
    assert_eq!(lock.command(&Become::Sudo), "sudo -n /bin/sh -s");
    assert!(lock.stdin(&Become::Sudo).starts_with(b"# dockhand: lock\n"));
    assert!(Kind::Gather.within(&lock.stdin(&Become::Sudo)));
    assert!(Kind::Gather.within(lock.command(&Become::No).as_bytes()));
    assert!(!Kind::Gather.within(commit.command(&Become::No).as_bytes()));
    // The ping and the fresh login are what any SSH client sends: the
    // login shell runs them, as the login user.
    assert!(!ping(true).command(&Become::Sudo).starts_with("sudo"));
    assert_eq!(login().command(&Become::Sudo), login().text);
    // One quoting for every word put into a script.
    for (word, quoted) in [
        ("/etc/a b", "'/etc/a b'"),
        ("/it's", "'/it'\\''s'"),
        ("$(touch /tmp/x)", "'$(touch /tmp/x)'"),
        ("", "''"),
        ("'", "''\\'''"),
        ("''a", "''\\'''\\''a'"),
    ] {
        assert_eq!(quote(word), quoted);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]
    /// Whatever a word holds (quotes, `$`, backslashes, newlines), dash
    /// reads its quoting back as that one word.
    #[test]
    fn a_quoted_word_comes_back_whole_from_dash(
        word in "([^\\x00]|'|\\\\|\\$\\(|\n){0,40}"
    ) {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(&word)))
            .output()
            .unwrap();
        proptest::prop_assert_eq!(String::from_utf8_lossy(&out.stdout), word);
    }
}

/// The probes under dash, as the login shell runs them: what they print is
/// what the engine reads.
#[test]
fn the_probes_answer_as_the_engine_reads_them() {
    let host = Host::new();
    let stub = host.at("/stubs/systemctl");
    let answers = std::fs::read_to_string(&stub).unwrap().replace(
        "case $call in\n",
        "case $call in\n  \"systemctl is-active docker\") echo active; exit 0 ;;\n  \"systemctl is-system-running\") echo degraded; exit 1 ;;\n",
    );
    std::fs::write(&stub, answers).unwrap();
    std::fs::write(
        host.at("/journal"),
        "dockerd[1]: API listen on /run/docker.sock\n",
    )
    .unwrap();
    // Probes run as the login user with the login's PATH: the stubs lead it.
    let run = |script: &Script| {
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(script.command(&Become::No))
            .env("PATH", &host.path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let reply = ping_reply(&run(&ping(false)), false);
    let me = Command::new("id").arg("-un").output().unwrap();
    assert_eq!(reply.user, String::from_utf8_lossy(&me.stdout).trim());
    assert!(!reply.hostname.is_empty());
    assert_eq!((reply.docker.as_str(), reply.sudo), ("active", None));
    assert_eq!(run(&docker_state()), "active\ndegraded\n");
    assert_eq!(
        run(&docker_journal()),
        "dockerd[1]: API listen on /run/docker.sock\n"
    );
    assert_eq!(run(&login()), "");
    host.called("journalctl -u docker.service -u docker.socket --no-pager -n 20");
    // sshd -T as root, through the header's PATH.
    let (ok, out) = host.run(&sshd_settings(&host.layout(), &[]));
    assert!(ok && out == "port 22\n", "{out}");
    // docker is started as the restart handler starts it.
    assert!(run(&start_docker()).is_empty());
    host.called("systemctl start docker.service");
}

/// What an interrupted run left is settled under the lock: its armed
/// switch fired now, deliberately, and its backups and temps removed.
#[test]
fn the_lock_settles_what_an_interrupted_run_left() {
    let (host, _) = lived_in();
    std::fs::create_dir(host.at("/transient")).unwrap();
    host.write(
        "/transient/dockhand-sshd-revert-old.timer",
        b"[Timer]\n",
        0o644,
    );
    host.write(
        "/etc/t/.sshd.conf.dockhand-backup",
        b"PasswordAuthentication yes\n",
        0o644,
    );
    host.write("/etc/t/.key.pem.dockhand-new-x1", b"half", 0o600);
    host.write("/etc/t/.dockhand-new-live-restore", b"{}", 0o600);
    let script = lock(
        &host.layout(),
        0,
        &[host.at("/etc/t"), host.at("/etc/new")],
        &host.at("/transient"),
        None,
    );
    let (mut holder, said) = hold(&script);
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let settled = Settled::parse(said.trim_end());
    assert_eq!(settled.honoured, ["dockhand-sshd-revert-old"], "{said}");
    let mut removed = settled.removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        [
            host.at("/etc/t/.dockhand-new-live-restore"),
            host.at("/etc/t/.key.pem.dockhand-new-x1"),
            host.at("/etc/t/.sshd.conf.dockhand-backup"),
        ]
    );
    // The revert ran before its backup went, then the timer was stopped.
    let fired = host.called("systemctl start --wait dockhand-sshd-revert-old.service");
    assert!(fired < host.called("systemctl stop dockhand-sshd-revert-old.timer"));
    assert_eq!(host.names_in("/etc/t"), ["ca.pem", "key.pem", "sshd.conf"]);
    assert_eq!(settled.said().len(), 2);
    // A clean host: nothing to say.
    assert_eq!(Settled::parse("locked"), Settled::default());
}

#[test]
fn settled_words_keep_paths_with_spaces() {
    let settled =
        Settled::parse("locked honoured=u1 removed=/etc/a b/.x.dockhand-backup removed=/etc/c");
    assert_eq!(settled.honoured, ["u1"]);
    assert_eq!(settled.removed, ["/etc/a b/.x.dockhand-backup", "/etc/c"]);
}

/// A run that replaced files and died before their handlers ran (its
/// commit, say, still hanging): the next lock stops that commit and puts
/// every backup back, so the files in effect are planned from, and the
/// owed handlers stay on record for the run that writes them again.
#[test]
fn the_lock_puts_back_files_whose_handlers_were_owed() {
    let (host, _) = lived_in();
    host.write("/etc/t/key.pem", b"NEW KEY\n", 0o400);
    host.write("/etc/t/.key.pem.dockhand-backup", b"OLD KEY\n", 0o644);
    host.write("/etc/new/daemon.json", b"{}", 0o644);
    host.write(
        "/etc/new/.daemon.json.dockhand-backup.dockhand-absent",
        b"",
        0o600,
    );
    host.write("/state/pending-handlers", b"restart-docker\n", 0o600);
    // The interrupted run's commit, still running in a group of its own.
    let mut stale = Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", stale.id())).unwrap();
    let start = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    host.write(
        "/state/commit.pgid",
        format!("{} {start}\n", stale.id()).as_bytes(),
        0o600,
    );
    let script = lock(
        &host.layout(),
        0,
        &[host.at("/etc/t"), host.at("/etc/new")],
        &host.at("/transient"),
        None,
    );
    let output = run_to_end(&script);
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    let settled = Settled::parse(said.lines().next().unwrap_or(""));
    assert_eq!(settled.stopped, [stale.id().to_string()], "{said}");
    assert!(
        !stale.wait().unwrap().success(),
        "the stale commit was stopped"
    );
    let mut restored = settled.restored.clone();
    restored.sort();
    assert_eq!(
        restored,
        [host.at("/etc/new/daemon.json"), host.at("/etc/t/key.pem")]
    );
    assert_eq!(host.read("/etc/t/key.pem").as_deref(), Some("OLD KEY\n"));
    assert_eq!(host.mode("/etc/t/key.pem"), 0o644);
    assert!(!host.exists("/etc/new/daemon.json"));
    assert_eq!(host.names_in("/etc/t"), ["ca.pem", "key.pem", "sshd.conf"]);
    assert_eq!(host.names_in("/etc/new"), Vec::<String>::new());
    assert!(host.exists("/state/pending-handlers"), "still owed");
    assert!(!host.exists("/state/commit.pgid"));
}

/// Staging writes no file into a directory another account can write to:
/// that account could swap a temp for a link between two of root's writes.
#[test]
fn staging_refuses_a_directory_another_account_can_write_to() {
    for (mode, refused) in [
        (0o777, true),
        (0o775, true),
        (0o1777, false),
        (0o755, false),
    ] {
        let (host, mut work) = lived_in();
        work.directories.clear();
        work.created_directories.clear();
        work.files.truncate(1);
        std::fs::set_permissions(host.at("/etc/t"), std::fs::Permissions::from_mode(mode)).unwrap();
        let (ok, out) = host.run(&stage(&work, &host.layout(), None));
        if refused {
            let error = first_error(&out).unwrap_or_default().to_string();
            assert!(!ok, "{mode:o}: {out}");
            assert!(
                error.starts_with(&format!(
                    "{} can be written to by another account",
                    host.at("/etc/t")
                )),
                "{error}"
            );
            assert!(
                !host.exists("/etc/t/.key.pem.dockhand-new-r"),
                "no temp written"
            );
        } else {
            assert!(ok && out.ends_with("done\n"), "{mode:o}: {out}");
        }
    }
}

/// A sudo that asks for a password as Debian's does: it reads one line
/// from stdin per attempt (byte by byte), `-n` never reads, `-v` only
/// checks; with `nopasswd` present it asks nothing.
const SUDO_STUB: &str = r#"#!/bin/sh
printf 'sudo %s\n' "$*" >> ROOT/calls
n=; v=; k=
while [ $# -gt 0 ]; do
  case $1 in -n) n=1; shift ;; -k) k=1; shift ;; -S) shift ;; -p) shift 2 ;; -v) v=1; shift ;; *) break ;; esac
done
if [ -e ROOT/nopasswd ]; then [ -n "$v" ] && exit 0; exec "$@"; fi
# Without a terminal, sudo's credentials are cached per parent process.
cache=ROOT/cached-$PPID
if [ -n "$n" ]; then
  [ -z "$k" ] && [ -e "$cache" ] || { echo 'sudo: a password is required' >&2; exit 1; }
  exec "$@"
fi
IFS= read -r given || exit 1
[ "$given" = "$(cat ROOT/password)" ] || { echo 'Sorry, try again.' >&2; exit 1; }
# -k: the password is asked, and the cache is not updated.
[ -n "$k" ] || : > "$cache"
[ -n "$v" ] && exit 0
exec "$@"
"#;

/// Sends `script` as root through the stub sudo; returns success, stdout
/// and stderr.
fn through_sudo(root: &Path, script: &Script, how: &Become) -> (bool, String, String) {
    let stubs = root.join("stubs");
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script.command(how))
        .env("PATH", format!("{}:{}", stubs.display(), Layout::HOST.path))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, &script.stdin(how)).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What is sent is the script's own command and input, and one `Sent`
/// serves every host of a run: each host's sudo password goes in front
/// of it, its own.
#[test]
fn a_sent_script_is_the_scripts_own_bytes_and_takes_each_hosts_password() {
    let password =
        |p: &str| Become::SudoWithPassword(std::sync::Arc::new(zeroize::Zeroizing::new(p.into())));
    let scripts = [
        Script::plain(Kind::Gather, "echo ran\n".into()),
        Script::with_input(Kind::Stage, "cat".into(), b"DATA\n".to_vec()),
        login(),
    ];
    for script in scripts {
        for how in [Become::No, Become::Sudo, password("one")] {
            let sent = script.clone().into_sent(&how);
            assert_eq!(sent.command, script.command(&how));
            assert_eq!(sent.stdin(&how), script.stdin(&how));
            assert!(!sent.command.contains("one"));
        }
        let shared = script.clone().into_sent(&password("one"));
        assert_eq!(
            shared.stdin(&password("two")),
            script.stdin(&password("two"))
        );
    }
}

#[test]
fn a_sudo_password_travels_on_stdin_reaches_sudo_alone_and_a_wrong_one_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("stubs")).unwrap();
    let stub = root.join("stubs/sudo");
    std::fs::write(&stub, SUDO_STUB.replace("ROOT", root.to_str().unwrap())).unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("password"), "pa ss'word\n").unwrap();
    let password = std::sync::Arc::new(zeroize::Zeroizing::new("pa ss'word".to_string()));
    let how = Become::SudoWithPassword(password.clone());
    // A script on stdin, and one whose stdin carries data.
    let on_stdin = Script::plain(
        Kind::Gather,
        "echo ran\nread -r more; echo \"$more\"\n".into(),
    );
    let with_data = Script::with_input(Kind::Stage, "cat".into(), b"DATA\n".to_vec());
    for script in [&on_stdin, &with_data] {
        assert!(
            !script.command(&how).contains("pa ss"),
            "never in a command line"
        );
    }

    let calls = || std::fs::read_to_string(root.join("calls")).unwrap_or_default();
    let (ok, out, err) = through_sudo(root, &with_data, &how);
    assert!(ok, "{err}");
    assert_eq!(out, "DATA\n", "the data, without the password's line");
    let (ok, out, err) = through_sudo(root, &on_stdin, &how);
    assert!(ok, "{err}");
    assert_eq!(out, "ran\n\n", "the password's line is not the script's");
    assert!(calls().contains("sudo -S -p  -v"), "{}", calls());
    assert!(
        calls().contains("sudo -n /bin/sh -s"),
        "run from the cache: {}",
        calls()
    );
    assert!(!calls().contains("pa ss"));

    // Wrong: one attempt, a clear error, the script never runs.
    let wrong =
        Become::SudoWithPassword(std::sync::Arc::new(zeroize::Zeroizing::new("nope".into())));
    std::fs::remove_file(root.join("calls")).unwrap();
    let (ok, out, err) = through_sudo(root, &on_stdin, &wrong);
    assert!(!ok);
    assert_eq!(out, "");
    assert!(
        err.contains("dockhand: sudo refused the become password"),
        "{err}"
    );
    assert_eq!(calls().matches("sudo -S").count(), 1, "{}", calls());

    // Passwordless sudo: `sudo -n`, and the password's line is not run.
    std::fs::write(root.join("nopasswd"), "").unwrap();
    let (ok, out, err) = through_sudo(root, &on_stdin, &how);
    assert!(ok, "{err}");
    assert_eq!(out, "ran\n\n");
    assert!(calls().contains("sudo -n /bin/sh -s"), "{}", calls());
}
