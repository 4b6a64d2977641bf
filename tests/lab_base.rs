//! End to end: a lab's Debian base is built once, whoever asks. Two labs
//! brought up together on an empty cache share one debootstrap; a build
//! that failed or was killed (with /proc still mounted in its target) is
//! cleared away by the next `lab up`; and a new lab never takes an address
//! range the machine already uses.
//!
//! debootstrap is counted through a wrapper first on PATH that runs the
//! machine's own (or, for the cheap cases, fails or hangs after mounting
//! /proc in its target, as a dying debootstrap leaves it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{BIN, Release, assert_success, state_root};

/// Labs of this file are made one test at a time: the range test must see
/// which subnet the next lab takes.
static SERIAL: Mutex<()> = Mutex::new(());

/// A directory holding a `debootstrap` that logs each call to `calls`,
/// runs `body` (a shell snippet; `$4` is the target) and exits.
struct Wrapper {
    dir: tempfile::TempDir,
}

impl Wrapper {
    fn new(body: &str) -> Wrapper {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("debootstrap");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nif [ -e \"$4\" ]; then echo dirty >> {calls}; else echo clean >> {calls}; fi\n{body}\n",
                calls = dir.path().join("calls").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        Wrapper { dir }
    }

    /// One line per call: `clean` when its target did not exist yet.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap()
        )
    }
}

fn real_debootstrap() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("debootstrap"))
        .find(|p| p.is_file())
        .expect("debootstrap (scripts/setup-machine installs it)")
}

fn lab_up(name: &str, cache: &Path, wrapper: &Wrapper, release: Release) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["lab", "up", "1", "--release", release.suite()])
        .env("DOCKHAND_LAB", name)
        .env("DOCKHAND_LAB_DIR", state_root())
        .env("DOCKHAND_LAB_CACHE", cache)
        .env("PATH", wrapper.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

fn lab_down(name: &str, cache: &Path) {
    let output = Command::new(BIN)
        .args(["lab", "down"])
        .env("DOCKHAND_LAB", name)
        .env("DOCKHAND_LAB_DIR", state_root())
        .env("DOCKHAND_LAB_CACHE", cache)
        .output()
        .unwrap();
    assert_success(&output, "lab down");
}

fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| m.starts_with(&*dir.to_string_lossy()))
        .map(str::to_string)
        .collect()
}

/// The cache entries left in `cache`, lock files aside.
fn entries(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default()
}

/// No build of `cache` is left, mounted or not.
fn assert_nothing_left(cache: &Path) {
    assert!(mounts_under(cache).is_empty(), "{:?}", mounts_under(cache));
    assert!(entries(cache).is_empty(), "{:?}", entries(cache));
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn two_labs_on_an_empty_cache_share_one_debootstrap() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cache = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let wrapper = Wrapper::new(&format!("exec {} \"$@\"", real_debootstrap().display()));
    for name in ["cold-a", "cold-b"] {
        lab_down(name, cache.path());
    }
    let started = Instant::now();
    let first = lab_up("cold-a", cache.path(), &wrapper, Release::Trixie)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let second = lab_up("cold-b", cache.path(), &wrapper, Release::Trixie)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first, second) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    eprintln!(
        "two cold lab ups of trixie: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    assert_success(&first, "the first lab up");
    assert_success(&second, "the second lab up");
    assert_eq!(wrapper.calls(), ["clean"], "one debootstrap in all");
    let (first, second) = (stderr(&first), stderr(&second));
    assert!(
        first.contains("building the lab's Debian trixie base"),
        "{first}"
    );
    assert!(
        second.contains("waiting for another lab up, which builds the Debian trixie base"),
        "{second}"
    );
    assert!(!second.contains("building the lab's"), "{second}");
    for name in ["cold-a", "cold-b"] {
        let lab = common::TestLab::named(name);
        let host = format!("{name}-01");
        assert_eq!(
            lab.ssh(&host, ". /etc/os-release && echo $VERSION_CODENAME")
                .trim(),
            "trixie"
        );
        lab_down(name, cache.path());
    }
    assert_eq!(
        entries(cache.path()).len(),
        1,
        "{:?}",
        entries(cache.path())
    );
}

/// A debootstrap that mounts /proc in its target, as the real one does
/// for its second stage, and then fails.
const MOUNTS_THEN_FAILS: &str =
    "mkdir -p \"$4/proc\" && mount -t proc proc \"$4/proc\" && echo 'E: no luck' >&2 && exit 1";

#[test]
fn a_failed_or_killed_build_is_cleared_and_a_busy_range_is_skipped() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cache = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let base = dockhand::lab::base_dir(cache.path(), Release::Bullseye);

    // A range already in use on the machine (an unrelated bridge holds the
    // next free 198.18.K.0/24) is never taken.
    let busy = first_free_index();
    let bridge = "dhtestbusy";
    let _ = Command::new("ip").args(["link", "del", bridge]).output();
    run("ip", &["link", "add", bridge, "type", "bridge"]);
    run(
        "ip",
        &["addr", "add", &format!("198.18.{busy}.1/24"), "dev", bridge],
    );
    run("ip", &["link", "set", bridge, "up"]);

    // debootstrap fails: a clear error naming the step and why; nothing of
    // the build is left, mounted or not.
    let failing = Wrapper::new(MOUNTS_THEN_FAILS);
    lab_down("broken", cache.path());
    let output = lab_up("broken", cache.path(), &failing, Release::Bullseye)
        .output()
        .unwrap();
    let _ = Command::new("ip").args(["link", "del", bridge]).output();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("build the bullseye base with debootstrap") && text.contains("E: no luck"),
        "{text}"
    );
    assert_eq!(failing.calls(), ["clean"]);
    assert_nothing_left(cache.path());
    let record = std::fs::read_to_string(state_root().join("broken/lab.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_ne!(state["index"], busy, "the busy range was skipped: {record}");
    lab_down("broken", cache.path());

    // debootstrap is killed with dockhand, /proc still mounted in its
    // target: the wrapper dies with it, and the next build clears the
    // leftover (the wrapper sees no target) before it starts.
    let hanging = Wrapper::new(&format!(
        "mkdir -p \"$4/proc\" && mount -t proc proc \"$4/proc\" && echo $$ > {} && exec sleep 600",
        cache.path().join("hanging.pid").display()
    ));
    let mut child = lab_up("broken", cache.path(), &hanging, Release::Bullseye)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = cache.path().join("hanging.pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let hanging_pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("the build started")
        .trim()
        .parse()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{hanging_pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !Path::new(&format!("/proc/{hanging_pid}")).exists(),
        "debootstrap died with dockhand"
    );
    let leftover = PathBuf::from(format!("{}.building", base.display()));
    assert_eq!(mounts_under(&leftover).len(), 1, "a dead build's /proc");
    std::fs::remove_file(&pid_file).unwrap();
    let output = lab_up("broken", cache.path(), &failing, Release::Bullseye)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        failing.calls(),
        ["clean", "clean"],
        "the leftover was cleared first"
    );
    assert_nothing_left(cache.path());
    lab_down("broken", cache.path());
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert_success(&output, &format!("{program} {args:?}"));
}

/// The lowest index whose range no lab bridge and no address or route of
/// the machine uses yet.
fn first_free_index() -> u8 {
    let text = [
        &["-o", "-4", "addr", "show"][..],
        &["-4", "route", "show", "table", "all"][..],
    ]
    .iter()
    .map(|args| {
        String::from_utf8_lossy(&Command::new("ip").args(*args).output().unwrap().stdout)
            .into_owned()
    })
    .collect::<String>();
    (0..=254u8)
        .find(|k| {
            !text.contains(&format!("198.18.{k}."))
                && !Path::new(&format!("/sys/class/net/dhlab{k}")).exists()
                && !recorded_indexes().contains(k)
        })
        .expect("a free range")
}

fn recorded_indexes() -> Vec<u8> {
    std::fs::read_dir(state_root())
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("lab.json")).ok())
                .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .filter_map(|v| v["index"].as_u64().map(|i| i as u8))
                .collect()
        })
        .unwrap_or_default()
}
