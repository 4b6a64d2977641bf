//! End to end: an apply waiting on what it does not decide, a PKI store
//! another run holds or its user at the CA passphrase prompt, says what it
//! waits for, and a Ctrl-C ends either wait with nothing issued and no
//! host changed. Without it, a run that counts Ctrl-C (rather than dying
//! of it) sat in a blocking `flock` or `read` and went on issuing after.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use common::{Release, Scene, assert_success, dockhand_pki};

const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");
const PASSPHRASE: &str = "typed at the prompt";

/// `plan --detailed-exitcode` over the scene: 2 while changes are pending.
fn plan_code(scene: &Scene) -> Option<i32> {
    let inventory = scene.inventory.to_string_lossy();
    let args = ["plan", "-i", &inventory, PLAYBOOK, "--detailed-exitcode"];
    dockhand_pki(&scene.lab, &scene.pki, &args).status.code()
}

/// A PKI store another run holds (here util-linux `flock`, as an apply
/// sitting at its CA passphrase prompt would) is waited for, said on
/// stderr with the holder's pid; Ctrl-C then ends the wait: nothing is
/// issued or changed, and the holder keeps its lock.
#[test]
fn ctrl_c_ends_the_wait_for_a_pki_store_another_run_holds() {
    use std::os::unix::fs::DirBuilderExt;
    let scene = Scene::fresh("heldpki", 1, Release::Bookworm);
    let (lab, inventory, pki) = (&scene.lab, &scene.inventory, &scene.pki);
    std::fs::DirBuilder::new().mode(0o700).create(pki).unwrap();
    let lock = pki.join(".lock");
    let mut started = Started::default();
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", "echo $$ > \"$0\"; exec sleep 120"])
        .arg(&lock)
        .spawn()
        .unwrap();
    started.0.push(holder.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "flock never took the store");
        std::thread::sleep(Duration::from_millis(20));
    }
    let holder_pid = std::fs::read_to_string(&lock).unwrap().trim().to_string();
    started.0.push(holder_pid.parse().unwrap());
    let inventory = inventory.to_string_lossy();
    let mut apply = lab
        .command_with(
            &["apply", "-i", &inventory, PLAYBOOK, "--yes"],
            &[("DOCKHAND_PKI_DIR", pki.as_os_str())],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    started.0.push(apply.id());
    let lines = lines_of(apply.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("holds the PKI store's lock") {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => said.push_str(&line),
            Err(e) => panic!("{e}: nothing said of the lock:\n{said}"),
        }
    }
    assert!(
        said.contains(&format!(
            "another dockhand run (pid {holder_pid}) holds the PKI store's lock"
        )),
        "said while waiting:\n{said}"
    );
    // It waits: still running a second later.
    std::thread::sleep(Duration::from_secs(1));
    assert!(apply.try_wait().unwrap().is_none(), "{said}");
    signal(apply.id(), Signal::INT);
    let rest: String = lines.iter().collect();
    let code = apply.wait().unwrap().code();
    assert_eq!(code, Some(1), "{said}{rest}");
    assert!(
        rest.contains(
            "interrupted while waiting for the PKI store's lock: nothing was issued or changed"
        ),
        "{rest}"
    );
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        holder_pid,
        "the holder's lock file is its own still"
    );
    assert!(!pki.join("ca.pem").exists(), "no CA made");
    // The holder is flock's child (sh, then sleep): its pid, then flock.
    signal(holder_pid.parse().unwrap(), Signal::KILL);
    assert!(holder.wait().unwrap().code().is_some());
    started.0.clear();
    assert_eq!(plan_code(&scene), Some(2), "nothing changed");
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}

/// Processes a test started, killed by their pids if it fails before it
/// has waited for them: the store is not left locked for long, nor an
/// apply waiting on it.
#[derive(Default)]
struct Started(Vec<u32>);

impl Drop for Started {
    fn drop(&mut self) {
        for pid in &self.0 {
            signal(*pid, Signal::KILL);
        }
    }
}

fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// The lines `from` gives, each with its newline, as they come.
fn lines_of(from: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            if sender.send(format!("{line}\n")).is_err() {
                break;
            }
        }
    });
    lines
}

/// An encrypted CA and no passphrase given: apply asks on the terminal.
/// Ctrl-C at the prompt ends the run, exit code 1, with nothing issued or
/// changed, where it used to sit until Enter and then issue; typed after
/// the question, the prompt is not drawn over by the bars, the passphrase
/// is not echoed and the run goes on to converge the host.
#[test]
fn ctrl_c_at_the_ca_passphrase_prompt_ends_the_run_and_typed_it_signs() {
    let scene = Scene::fresh("passprompt", 1, Release::Bookworm);
    let (lab, pki) = (&scene.lab, &scene.pki);
    let init = lab.dockhand_with(
        &["pki", "init", "--encrypt"],
        &[
            ("DOCKHAND_PKI_DIR", pki.as_os_str()),
            ("DOCKHAND_CA_PASSPHRASE", PASSPHRASE.as_ref()),
        ],
    );
    assert_success(&init, "pki init --encrypt");
    let inventory = scene.inventory.to_string_lossy();
    let apply = || {
        lab.command_with(
            &["apply", "-i", &inventory, PLAYBOOK, "--yes"],
            &[("DOCKHAND_PKI_DIR", pki.as_os_str())],
        )
    };
    let prompt = "The CA key's passphrase: ";
    let (code, shown) = common::typed_at_a_prompt(apply(), prompt, || {}, b"\x03");
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("interrupted at the prompt for the CA key's passphrase"),
        "{shown}"
    );
    assert!(
        !pki.join("servers").exists(),
        "nothing issued: {:?}",
        std::fs::read_dir(pki).unwrap().collect::<Vec<_>>()
    );
    assert_eq!(plan_code(&scene), Some(2), "the host is untouched");

    // Asked after the plan and a yes, the bars drawn and ticking: they
    // are held while it asks, so nothing follows the prompt (typed after
    // a second) but the end of its line, where they drew over it.
    let asked = lab.command_with(
        &["apply", "-i", &inventory, PLAYBOOK],
        &[("DOCKHAND_PKI_DIR", pki.as_os_str())],
    );
    let typed = format!("{PASSPHRASE}\n");
    let pause = || std::thread::sleep(std::time::Duration::from_secs(1));
    let answers: [(&str, &[u8]); 2] = [
        ("Only 'yes' is accepted: ", b"yes\n"),
        (prompt, typed.as_bytes()),
    ];
    let (code, shown) = common::answered_on_a_terminal(asked, pause, &answers);
    assert_eq!(code, Some(0), "{shown}");
    assert!(!shown.contains(PASSPHRASE), "echoed:\n{shown}");
    // The host's line came before the question, not after the answer.
    let (planned, question) = (
        shown.find("passprompt-01: ok: planned"),
        shown.find("Apply these changes?"),
    );
    assert!(
        planned.is_some() && planned < question,
        "the host's line is not before the question:\n{shown}"
    );
    let after_prompt = shown.split_once(prompt).map(|(_, after)| after);
    assert!(
        after_prompt.is_some_and(|after| after.starts_with("\r\n")),
        "the prompt was drawn over:\n{shown:?}"
    );
    assert!(
        shown.contains("issued the server certificate of passprompt-01"),
        "{shown}"
    );
    assert_eq!(plan_code(&scene), Some(0), "converged");
    assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
}
