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

/// `dockhand apply` over the scene with `extra`, its standard output
/// redirected to `stdout` by a shell, as a user's `> file` does; its
/// input and standard error stay the terminal's.
fn apply_into(scene: &Scene, stdout: &Path, extra: &[&str]) -> Command {
    let inventory = scene.inventory.to_string_lossy();
    let mut args = vec!["apply", "-i", &inventory, PLAYBOOK];
    args.extend_from_slice(extra);
    let dockhand = scene
        .lab
        .command_with(&args, &[("DOCKHAND_PKI_DIR", scene.pki.as_os_str())]);
    let mut shell = Command::new("sh");
    shell
        .args(["-c", r#"exec "$0" "$@" > "$STDOUT_FILE""#])
        .arg(dockhand.get_program())
        .args(dockhand.get_args())
        .env("STDOUT_FILE", stdout);
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

    let declined = apply_into(&scene, &stdout, &[]);
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

    let accepted = apply_into(&scene, &stdout, &["--format", "json"]);
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
