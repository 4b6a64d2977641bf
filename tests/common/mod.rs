//! A small builder for end-to-end tests: a named lab of real hosts, brought
//! up through the `dockhand` binary exactly as a user would, and the
//! independent clients (OpenSSH's `ssh`) used to check what dockhand did.
//!
//! Test labs keep their state under the target directory, so they never
//! touch a user's own lab. The Debian bases are cached in
//! `DOCKHAND_LAB_CACHE` (`scripts/test` sets it to `target/lab-cache`, so a
//! clean clone builds them cold, as a newcomer's machine does), and every
//! dockhand the tests start is given the same cache.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

pub use dockhand::lab::Release;
use dockhand::lab::{HostRecord, LabPaths, LabState};
use dockhand::transport::Target;

pub const BIN: &str = env!("CARGO_BIN_EXE_dockhand");

/// Where every test lab keeps its state.
pub fn state_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("labs")
}

/// Where the test labs' Debian bases are cached: `DOCKHAND_LAB_CACHE`, or
/// else the target directory's own `lab-cache` (never the machine's
/// cache unless the developer points there).
pub fn lab_cache() -> PathBuf {
    std::env::var_os("DOCKHAND_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../lab-cache"))
}

pub struct TestLab {
    pub name: String,
}

impl TestLab {
    /// Brings lab `name` to `hosts` running hosts (idempotent: tests that
    /// share a lab all call this, and only the first boots anything).
    pub fn up(name: &str, hosts: usize) -> TestLab {
        TestLab::up_on(name, hosts, Release::Bookworm)
    }

    /// The same with hosts of `release` (Debian 12 or 13).
    pub fn up_on(name: &str, hosts: usize, release: Release) -> TestLab {
        let lab = TestLab::named(name);
        let output = lab.dockhand(&[
            "lab",
            "up",
            &hosts.to_string(),
            "--release",
            release.suite(),
        ]);
        assert_success(&output, "lab up");
        assert!(
            lab.state().hosts.iter().all(|h| h.release == release),
            "lab {name} runs {release}"
        );
        lab
    }

    /// A lab with fresh hosts of `release`: an earlier run may have
    /// changed them, so any that are up are replaced.
    pub fn fresh(name: &str, hosts: usize, release: Release) -> TestLab {
        assert_success(&TestLab::named(name).dockhand(&["lab", "down"]), "lab down");
        TestLab::up_on(name, hosts, release)
    }

    /// The host names of the lab, in order.
    pub fn host_names(&self) -> Vec<String> {
        self.state().hosts.into_iter().map(|h| h.name).collect()
    }

    /// A handle on lab `name` without changing it.
    pub fn named(name: &str) -> TestLab {
        TestLab {
            name: name.to_string(),
        }
    }

    /// Runs the dockhand binary against this lab.
    pub fn dockhand(&self, args: &[&str]) -> Output {
        self.dockhand_with(args, &[])
    }

    /// Runs the dockhand binary with extra environment variables.
    pub fn dockhand_with(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Output {
        self.command_with(args, env).output().expect("run dockhand")
    }

    /// [`TestLab::command`] with `env` added, for a test that runs it
    /// itself (on a terminal, say).
    pub fn command_with(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Command {
        let mut command = self.command(args);
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    /// The dockhand binary set up to run against this lab (its state and
    /// base cache, no colour), for a test that spawns it, reads it as it
    /// runs, or kills it.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("DOCKHAND_LAB", &self.name)
            .env("DOCKHAND_LAB_DIR", state_root())
            .env("DOCKHAND_LAB_CACHE", lab_cache())
            .env("NO_COLOR", "1");
        command
    }

    /// The lab's inventory, written into `dir`; returns its path.
    pub fn inventory_file(&self, dir: &std::path::Path) -> PathBuf {
        let output = self.dockhand(&["lab", "inventory"]);
        assert_success(&output, "lab inventory");
        let path = dir.join("inventory.yaml");
        std::fs::write(&path, &output.stdout).unwrap();
        path
    }

    /// A digest of everything under the host's configuration and home
    /// directories (paths, types, modes, owners, sizes, times, contents):
    /// equal before and after means nothing was written there.
    pub fn fingerprint(&self, host: &str) -> String {
        self.ssh(
            host,
            "{ find /etc /root /home /tmp /usr/local -xdev -printf '%p %y %m %u %g %s %T@\\n' | sort; \
               find /etc /root /home /usr/local -xdev -type f -exec sha256sum {} + | sort; } | sha256sum",
        )
    }

    pub fn paths(&self) -> LabPaths {
        LabPaths::new(&self.name, state_root(), lab_cache()).unwrap()
    }

    pub fn state(&self) -> LabState {
        LabState::load(&self.paths())
            .unwrap()
            .expect("lab state recorded")
    }

    /// The lab's record of `host`.
    pub fn record(&self, host: &str) -> HostRecord {
        self.state()
            .hosts
            .into_iter()
            .find(|h| h.name == host)
            .expect("host in lab")
    }

    /// How dockhand's transport reaches `host` as `user`: the product's own
    /// lab target, as another user.
    pub fn target(&self, host: &str, user: &str) -> Target {
        Target {
            user: user.to_string(),
            connect_timeout: Duration::from_secs(10),
            ..dockhand::lab::target(&self.paths(), &self.record(host))
        }
    }

    /// Runs a command on a host with OpenSSH's client, as an independent
    /// check of what dockhand did; returns its stdout.
    pub fn ssh(&self, host: &str, command: &str) -> String {
        let output = self.ssh_command(host, command).output().expect("run ssh");
        assert_success(&output, &format!("ssh {host} {command}"));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits, for up to 20 s, until an apply killed on purpose has nothing
    /// left running on `host` and its sshd takes logins. Killing dockhand
    /// does not stop its commit on the host at once (it goes on until it
    /// next writes to the closed channel), and a commit killed after ssh's
    /// reload did not live to wait for the new listeners: while sshd
    /// re-executes itself a login is refused or reset. Those two answers
    /// are waited out; any other failure fails at once.
    pub fn wait_for_sshd(&self, host: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let commit_done = format!(
            "i=0; while [ $i -lt 200 ] && read -r g start < {} 2>/dev/null \
             && [ \"$(cut -d' ' -f22 /proc/$g/stat 2>/dev/null)\" = \"$start\" ]; do i=$((i+1)); sleep 0.1; done",
            dockhand::engine::remote::COMMIT_GROUP
        );
        loop {
            let output = self
                .ssh_command(host, &commit_done)
                .output()
                .expect("run ssh");
            let transient = sshd_was_reloading(&output);
            if output.status.success() || !transient || std::time::Instant::now() > deadline {
                assert_success(&output, &format!("ssh {host} after an interrupted apply"));
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `command` on `host` as [`TestLab::ssh`] does, but answers
    /// `None` when the login met sshd re-executing itself (an apply's
    /// reload of ssh): a watcher polling a host during an apply tries again.
    pub fn ssh_unless_reloading(&self, host: &str, command: &str) -> Option<String> {
        let output = self.ssh_command(host, command).output().expect("run ssh");
        if !output.status.success() && sshd_was_reloading(&output) {
            return None;
        }
        assert_success(&output, &format!("ssh {host} {command}"));
        Some(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Starts docker on a host the test stopped it on, as dockhand's
    /// restart handler does: once more when systemd, not dockerd, failed
    /// (219/CGROUP; see `START_DOCKER`).
    pub fn start_docker(&self, host: &str) {
        self.ssh(host, &dockhand::engine::remote::START_DOCKER);
    }

    /// OpenSSH's client, ready to run `command` on `host` as root with the
    /// lab's key and known_hosts, strictly and never asking anything.
    pub fn ssh_command(&self, host: &str, command: &str) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.args(["-i", &self.paths().key().to_string_lossy()])
            .args([
                "-o",
                &format!(
                    "UserKnownHostsFile={}",
                    self.paths().known_hosts().display()
                ),
            ])
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
            ])
            .arg(format!("root@{}", self.record(host).address))
            .arg(command);
        ssh
    }
}

/// Whether OpenSSH's client failed as a login does while sshd re-executes
/// itself: refused, reset or closed before the session.
fn sshd_was_reloading(output: &Output) -> bool {
    let stderr = String::from_utf8_lossy(&output.stderr);
    output.status.code() == Some(255)
        && [
            "Connection refused",
            "Connection reset",
            "Connection closed",
        ]
        .iter()
        .any(|m| stderr.contains(m))
}

/// A fresh lab with its inventory and an empty local PKI, both in a
/// temporary directory that lives as long as the scene.
pub struct Scene {
    pub lab: TestLab,
    pub dir: tempfile::TempDir,
    pub inventory: PathBuf,
    pub pki: PathBuf,
}

impl Scene {
    pub fn fresh(name: &str, hosts: usize, release: Release) -> Scene {
        let lab = TestLab::fresh(name, hosts, release);
        let dir = tempfile::tempdir().unwrap();
        let inventory = lab.inventory_file(dir.path());
        let pki = dir.path().join("pki");
        Scene {
            lab,
            dir,
            inventory,
            pki,
        }
    }

    /// The address of a host of the lab.
    pub fn address(&self, host: &str) -> String {
        self.lab.record(host).address.to_string()
    }
}

/// Four tests of one scenario, one per release the lab boots (labs named
/// `-bu`, ``, `-tx`, `-fk`): `on_all_releases!(scenario, "lab", bullseye,
/// bookworm, trixie, forky)` where `scenario(lab, release)`.
#[macro_export]
macro_rules! on_all_releases {
    ($scenario:ident, $lab:literal, $bullseye:ident, $bookworm:ident, $trixie:ident, $forky:ident) => {
        #[test]
        fn $bullseye() {
            $scenario(concat!($lab, "-bu"), common::Release::Bullseye);
        }

        $crate::on_both_releases!($scenario, $lab, $bookworm, $trixie);

        #[test]
        fn $forky() {
            $scenario(concat!($lab, "-fk"), common::Release::Forky);
        }
    };
}

/// Two tests of one scenario, one on Debian 12 hosts and one on Debian 13
/// (its lab named with `-tx`): `on_both_releases!(scenario, "lab",
/// bookworm_test_name, trixie_test_name)` where `scenario(lab, release)`.
#[macro_export]
macro_rules! on_both_releases {
    ($scenario:ident, $lab:literal, $bookworm:ident, $trixie:ident) => {
        #[test]
        fn $bookworm() {
            $scenario($lab, common::Release::Bookworm);
        }

        #[test]
        fn $trixie() {
            $scenario(concat!($lab, "-tx"), common::Release::Trixie);
        }
    };
}

pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `audit --format json` over a scene's inventory: the exit code and the
/// report.
pub fn audit_json(scene: &Scene) -> (Option<i32>, serde_json::Value) {
    let output = dockhand_pki(
        &scene.lab,
        &scene.pki,
        &[
            "audit",
            "-i",
            &scene.inventory.to_string_lossy(),
            "--format",
            "json",
        ],
    );
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    (output.status.code(), report)
}

/// Runs dockhand against a lab with the PKI kept in `pki`.
/// `dockhand apply -i INVENTORY PLAYBOOK [EXTRA…]` on the lab, with the
/// PKI in `pki`: the one way the end-to-end tests apply.
pub fn apply(
    lab: &TestLab,
    pki: &std::path::Path,
    inventory: &std::path::Path,
    playbook: &str,
    extra: &[&str],
) -> Output {
    let inventory = inventory.to_string_lossy();
    let mut args = vec!["apply", "-i", &inventory, playbook];
    args.extend_from_slice(extra);
    dockhand_pki(lab, pki, &args)
}

/// Asserts how a run of dockhand ended (its stdout in the message), and
/// returns its stdout.
pub fn expect_exit(output: Output, code: i32) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

pub fn dockhand_pki(lab: &TestLab, pki: &std::path::Path, args: &[&str]) -> Output {
    lab.dockhand_with(args, &[("DOCKHAND_PKI_DIR", pki.as_os_str())])
}

/// The docker CLI: the machine's, or else the one in a lab base that has
/// it (Debian 13's docker.io only recommends it).
pub fn docker_cli() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("docker"))
            .find(|d| d.is_file())
    }) {
        return path;
    }
    std::fs::read_dir(lab_cache())
        .unwrap()
        .flatten()
        .map(|e| e.path().join("usr/bin/docker"))
        .find(|p| p.is_file())
        .expect("a docker CLI")
}

/// Writes the client bundle of the certificate `t` into `dir` with `pki
/// client`, for `docker_over_tls`; returns `dir`.
pub fn client_bundle(lab: &TestLab, pki: &std::path::Path, dir: PathBuf) -> PathBuf {
    assert_success(
        &dockhand_pki(
            lab,
            pki,
            &["pki", "client", "t", "--out", &dir.to_string_lossy()],
        ),
        "pki client",
    );
    dir
}

/// The docker CLI against `address` with the client bundle in `bundle`.
pub fn docker_over_tls(address: &str, bundle: &std::path::Path, args: &[&str]) -> Output {
    Command::new(docker_cli())
        .args(args)
        .env("DOCKER_HOST", format!("tcp://{address}:2376"))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", bundle)
        .output()
        .expect("run the docker CLI")
}

/// Gives `host` the tiny image `mini` (made from the host's own files: no
/// registry) and one running container per name (`NAME` or
/// `NAME=POLICY`: the restart policy, `always` unless given), started
/// through dockerd's API (Debian 13 and 14 have no docker CLI); returns
/// their ids in order.
pub fn run_containers(lab: &TestLab, host: &str, names: &[&str]) -> Vec<String> {
    let mut ssh = lab.ssh_command(host, &format!("python3 - {}", names.join(" ")));
    let output = ssh
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(include_bytes!("workload.py"))?;
            child.wait_with_output()
        })
        .expect("run ssh");
    assert_success(&output, &format!("{host}: run containers {names:?}"));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
        .collect()
}

/// A container's state on `host` as dockerd reports it: (running, pid,
/// started at), through the API on its socket.
pub fn container_state(lab: &TestLab, host: &str, name: &str) -> (bool, u64, String) {
    let script = format!(
        "import http.client,socket,json\n\
         class D(http.client.HTTPConnection):\n  def connect(self):\n    self.sock=socket.socket(socket.AF_UNIX); self.sock.connect('/var/run/docker.sock')\n\
         c=D('localhost'); c.request('GET','/containers/{name}/json'); r=c.getresponse(); s=json.loads(r.read())['State']\n\
         print(s['Running'], s['Pid'], s['StartedAt'])\n"
    );
    let text = lab.ssh(host, &format!("python3 -c \"{script}\""));
    let mut words = text.split_whitespace();
    (
        words.next() == Some("True"),
        words.next().and_then(|p| p.parse().ok()).unwrap_or(0),
        words.next().unwrap_or("").to_string(),
    )
}

/// The host's effective sshd settings (`sshd -T` over OpenSSH's client),
/// keywords lower-cased: OpenSSH 10.6 prints them in mixed case.
pub fn sshd_effective(lab: &TestLab, host: &str) -> std::collections::BTreeMap<String, String> {
    lab.ssh(host, "sshd -T")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect()
}

/// When docker last became active on `host` (monotonic): unchanged means
/// docker was not restarted.
pub fn active_since(lab: &TestLab, host: &str) -> String {
    lab.ssh(
        host,
        "systemctl show docker -p ActiveEnterTimestampMonotonic --value",
    )
    .trim()
    .to_string()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Starts `dockhand apply -i INVENTORY PLAYBOOK` with plain, verbose
/// progress and kills it at the first progress line holding `marker`
/// (after `pause`); returns the lines it printed. The test fails if the
/// line never came.
pub fn apply_killed_at(
    scene: &Scene,
    playbook: &str,
    marker: &str,
    pause: std::time::Duration,
) -> Vec<String> {
    use std::io::BufRead;
    let mut child = scene
        .lab
        .command(&[
            "apply",
            "-i",
            &scene.inventory.to_string_lossy(),
            playbook,
            "--progress",
            "plain",
            "-v",
        ])
        .env("DOCKHAND_PKI_DIR", &scene.pki)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let hit = line.contains(marker);
        seen.push(line);
        if hit {
            std::thread::sleep(pause);
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    assert!(
        seen.iter().any(|l| l.contains(marker)),
        "{marker}: {seen:#?}"
    );
    seen
}

/// Runs openssl in `dir`; the test fails with its stderr when it fails.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert_success(&output, &format!("openssl {args:?}"));
}

/// A directory holding an `ssh` that is the system's with `-F config`:
/// put first in PATH, it stands for a user whose `~/.ssh/config` is
/// `config` (OpenSSH reads the account's home, not $HOME, so a test's
/// HOME alone would not do).
pub fn ssh_reading(dir: &std::path::Path, config: &std::path::Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let wrap = dir.join(format!(
        "ssh-{}",
        config.display().to_string().replace('/', "_")
    ));
    if !wrap.exists() {
        std::fs::create_dir(&wrap).unwrap();
        let ssh = wrap.join("ssh");
        std::fs::write(
            &ssh,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
                config.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    wrap
}

/// The summary of `apply --format json`, which must have exited 0.
pub fn applied_summary(output: Output) -> serde_json::Value {
    let stdout = expect_exit(output, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    report["summary"].clone()
}

/// `command` (dockhand's, as [`TestLab::command`] makes it) on a terminal,
/// a pseudo-terminal of util-linux `script`'s, with its environment: once
/// the question is shown, `meanwhile` runs, then `yes` is typed.
/// Returns the exit code and everything the terminal showed. A run that
/// shows nothing for two minutes fails the test, and is killed.
pub fn on_a_terminal(shown: Command, meanwhile: impl FnOnce()) -> (Option<i32>, String) {
    typed_on_a_terminal(shown, meanwhile, b"yes\n")
}

/// As [`on_a_terminal`], with `typed` as the answer: `\x03` is Ctrl-C
/// (the terminal sends SIGINT to dockhand, as a user's would).
pub fn typed_on_a_terminal(
    shown: Command,
    meanwhile: impl FnOnce(),
    typed: &[u8],
) -> (Option<i32>, String) {
    typed_at_a_prompt(shown, "Only 'yes' is accepted", meanwhile, typed)
}

/// As [`typed_on_a_terminal`], typed once the terminal shows `prompt`.
pub fn typed_at_a_prompt(
    shown: Command,
    prompt: &str,
    meanwhile: impl FnOnce(),
    typed: &[u8],
) -> (Option<i32>, String) {
    answered_on_a_terminal(shown, meanwhile, &[(prompt, typed)])
}

/// As [`typed_at_a_prompt`], prompt after prompt: each answer is typed
/// once its prompt shows after the one before; `meanwhile` runs at the
/// last, before its answer.
pub fn answered_on_a_terminal(
    shown: Command,
    meanwhile: impl FnOnce(),
    answers: &[(&str, &[u8])],
) -> (Option<i32>, String) {
    use std::io::{Read, Write};
    use std::sync::mpsc::RecvTimeoutError;
    /// Kills `script` (and so dockhand, its terminal gone) if the test
    /// fails before it ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let line: Vec<String> = std::iter::once(shown.get_program())
        .chain(shown.get_args())
        .map(|word| format!("'{}'", word.to_string_lossy().replace('\'', "'\\''")))
        .collect();
    // `script` runs the line with `$SHELL -c`. dash (Debian's /bin/sh, a
    // clean machine's shell when SHELL is unset) would stay as dockhand's
    // parent, die of the Ctrl-C itself and make the exit code its own
    // 130; bash execs a lone command. `exec` and one shell, whatever the
    // caller's, make the code dockhand's on every machine.
    let mut script = Command::new("script");
    script
        .args(["-qfec", &format!("exec {}", line.join(" ")), "/dev/null"])
        .env("SHELL", "/bin/sh")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    for (key, value) in shown.get_envs() {
        if let Some(value) = value {
            script.env(key, value);
        }
    }
    let mut child = Killed(script.spawn().expect("run script"));
    let mut stdout = child.0.stdout.take().unwrap();
    let (chunks, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buffer) {
            if chunks.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let read_until = |done: &dyn Fn(&[u8]) -> bool, seen: &mut Vec<u8>| {
        while !done(seen) {
            match received.recv_timeout(Duration::from_secs(120)) {
                Ok(chunk) => seen.extend(chunk),
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "nothing shown for 2 minutes: {}",
                        String::from_utf8_lossy(seen)
                    )
                }
            }
        }
    };
    let mut stdin = child.0.stdin.take().unwrap();
    let mut meanwhile = Some(meanwhile);
    let mut answered = 0;
    for (n, (prompt, typed)) in answers.iter().enumerate() {
        let asked = |seen: &[u8]| String::from_utf8_lossy(&seen[answered..]).contains(prompt);
        read_until(&asked, &mut seen);
        assert!(
            asked(&seen),
            "ended before asking {prompt:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        answered = seen.len();
        if n + 1 == answers.len()
            && let Some(meanwhile) = meanwhile.take()
        {
            meanwhile();
        }
        stdin.write_all(typed).unwrap();
    }
    read_until(&|_| false, &mut seen);
    drop(stdin);
    let status = child.0.wait().unwrap();
    (status.code(), String::from_utf8_lossy(&seen).into_owned())
}
