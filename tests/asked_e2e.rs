//! End to end: `apply` asks whoever can answer. With its standard output
//! redirected (`| tee apply.log`, `--format json | jq`) but typed on a
//! terminal, it used to apply unasked; it now shows the plan and the
//! question on the terminal (stderr), and its standard output keeps only
//! the report, still parseable as JSON.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Release, Scene, assert_success, dockhand_pki};
use serde_json::Value;

const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");

/// `plan --detailed-exitcode` over the scene: 2 while changes are pending.
fn plan_code(scene: &Scene) -> Option<i32> {
    let inventory = scene.inventory.to_string_lossy();
    let args = ["plan", "-i", &inventory, PLAYBOOK, "--detailed-exitcode"];
    dockhand_pki(&scene.lab, &scene.pki, &args).status.code()
}

/// `dockhand apply` over the scene with `extra`, one of its outputs
/// redirected to `file` by a shell, as a user's `> file` (`stream` 1) or
/// `2> file` (2) does; its input and other output stay the terminal's.
fn apply_into(scene: &Scene, (stream, file): (u8, &Path), extra: &[&str]) -> Command {
    let inventory = scene.inventory.to_string_lossy();
    let mut args = vec!["apply", "-i", &inventory, PLAYBOOK];
    args.extend_from_slice(extra);
    let dockhand = scene
        .lab
        .command_with(&args, &[("DOCKHAND_PKI_DIR", scene.pki.as_os_str())]);
    let mut shell = Command::new("sh");
    shell
        .args(["-c", &format!(r#"exec "$0" "$@" {stream}> "$REDIRECTED""#)])
        .arg(dockhand.get_program())
        .args(dockhand.get_args())
        .env("REDIRECTED", file);
    for (key, value) in dockhand.get_envs() {
        if let Some(value) = value {
            shell.env(key, value);
        }
    }
    shell
}

#[test]
fn with_its_output_redirected_apply_still_asks_on_the_terminal() {
    let scene = Scene::fresh("redirected", 1, Release::Bookworm);
    let stdout = scene.dir.path().join("stdout");

    let declined = apply_into(&scene, (1, &stdout), &[]);
    let (code, shown) = common::typed_on_a_terminal(declined, || {}, b"no\n");
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("+ file /etc/ssh/sshd_config.d/00-dockhand.conf"),
        "the plan is shown on the terminal:\n{shown}"
    );
    assert!(shown.contains("apply cancelled"), "{shown}");
    let written = std::fs::read_to_string(&stdout).unwrap();
    assert!(
        !written.contains("+ file"),
        "the plan is not in stdout:\n{written}"
    );
    assert_eq!(
        plan_code(&scene),
        Some(2),
        "a declined apply changes nothing"
    );

    let accepted = apply_into(&scene, (1, &stdout), &["--format", "json"]);
    let (code, shown) = common::typed_on_a_terminal(accepted, || {}, b"yes\n");
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("+ file /etc/ssh/sshd_config.d/00-dockhand.conf"),
        "{shown}"
    );
    let written = std::fs::read_to_string(&stdout).unwrap();
    let report: Value = serde_json::from_str(&written)
        .unwrap_or_else(|e| panic!("stdout is the JSON report alone ({e}):\n{written}"));
    assert_eq!(report["summary"]["changed"], 1, "{report:#}");
    assert_eq!(plan_code(&scene), Some(0), "applied after yes");
    assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}

/// With its errors redirected (`2> apply.log`), apply asks on stdout, and
/// the CA passphrase it then needs is asked there too (it said there was
/// no terminal to ask on, after the user's `yes`).
#[test]
fn with_its_errors_redirected_apply_asks_and_prompts_on_stdout() {
    const PASSPHRASE: &str = "asked on stdout";
    let scene = Scene::fresh("errlogged", 1, Release::Bookworm);
    let init = scene.lab.dockhand_with(
        &["pki", "init", "--encrypt"],
        &[
            ("DOCKHAND_PKI_DIR", scene.pki.as_os_str()),
            ("DOCKHAND_CA_PASSPHRASE", PASSPHRASE.as_ref()),
        ],
    );
    assert_success(&init, "pki init --encrypt");
    let stderr = scene.dir.path().join("stderr");
    let apply = apply_into(&scene, (2, &stderr), &[]);
    let typed = format!("{PASSPHRASE}\n");
    let answers: [(&str, &[u8]); 2] = [
        ("Only 'yes' is accepted", b"yes\n"),
        ("The CA key's passphrase: ", typed.as_bytes()),
    ];
    let (code, shown) = common::answered_on_a_terminal(apply, || {}, &answers);
    let logged = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(code, Some(0), "{shown}\nstderr:\n{logged}");
    assert!(!shown.contains(PASSPHRASE), "echoed:\n{shown}");
    assert!(shown.contains("Apply: 1 host(s): 1 changed"), "{shown}");
    assert_eq!(plan_code(&scene), Some(0), "applied after yes");
    assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}
