//! The command line's exit codes, without hosts: bad usage is bad input
//! (1, never 2, which only `plan --detailed-exitcode` uses); help and
//! version succeed.

const BIN: &str = env!("CARGO_BIN_EXE_dockhand");

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["plan", "--nope"], 1, "unexpected argument '--nope'"),
        (
            &["plan", "-i", "x.yaml", "p.yaml", "--format", "xml"],
            1,
            "invalid value 'xml'",
        ),
        (
            &[
                "apply",
                "-i",
                "x.yaml",
                "p.yaml",
                "--max-fail-percent",
                "101",
            ],
            1,
            "101",
        ),
        (
            &["apply", "-i", "x.yaml", "p.yaml", "--serial", "abc"],
            1,
            "expected a number of hosts",
        ),
        (&["frobnicate"], 1, "unrecognized subcommand"),
        (&[], 1, "Usage"),
        (&["--help"], 0, "Secure Docker daemons"),
        (&["--version"], 0, "dockhand "),
    ];
    for (args, code, needle) in cases {
        let output = std::process::Command::new(BIN)
            .args(*args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(*code), "{args:?}: {text}");
        assert!(text.contains(needle), "{args:?}: {text}");
    }
}

#[test]
fn completions_and_the_manual_come_from_the_command_line_definitions() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(BIN).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(bash.contains("_dockhand()") && bash.contains("--max-fail-percent"));
    // The script is valid bash.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("dockhand.bash");
    std::fs::write(&script, &bash).unwrap();
    assert!(
        std::process::Command::new("bash")
            .arg("-n")
            .arg(&script)
            .status()
            .unwrap()
            .success()
    );
    assert!(run(&["completions", "zsh"]).starts_with("#compdef dockhand"));
    assert!(run(&["completions", "fish"]).contains("complete -c dockhand"));
    let manual = run(&["man"]);
    assert!(manual.contains(".TH dockhand 1"), "{manual}");
    for subcommand in ["plan", "apply", "verify", "pki", "lab"] {
        assert!(manual.contains(subcommand), "{subcommand}");
    }
}

/// `dockhand inventory` prints what dockhand understood of an Ansible
/// inventory, in YAML or JSON, and names the host and the variable it
/// cannot honour; it contacts no host.
#[test]
fn inventory_shows_what_dockhand_understood() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("hosts.ini");
    std::fs::write(
        &ini,
        "[web]\nweb1 ansible_host=192.0.2.11 ansible_port=2222\n[web:vars]\ngreeting='hello web'\n[all:vars]\nansible_user=admin\nproxy=http://u:secret@proxy.invalid\n",
    )
    .unwrap();
    let run = |args: &[&str]| std::process::Command::new(BIN).args(args).output().unwrap();
    let ini = ini.to_string_lossy();
    let json = run(&["inventory", "-i", &ini, "--format", "json"]);
    assert!(json.status.success(), "{json:?}");
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let host = &value["hosts"][0];
    assert_eq!(host["name"], "web1");
    assert_eq!(host["address"], "192.0.2.11");
    assert_eq!(host["groups"], serde_json::json!(["web"]));
    assert_eq!(
        host["ssh"],
        serde_json::json!({"user": "admin", "port": 2222})
    );
    assert_eq!(host["vars"]["greeting"], "hello web");
    assert_eq!(host["vars"]["proxy"], "http://u:***@proxy.invalid");
    let yaml = run(&["inventory", "-i", &ini]);
    let text = String::from_utf8_lossy(&yaml.stdout);
    assert!(
        text.contains("- name: web1\n  address: 192.0.2.11\n"),
        "{text}"
    );

    let bad = dir.path().join("bad.ini");
    std::fs::write(&bad, "[web]\nh ansible_password=hunter2\n").unwrap();
    let output = run(&["inventory", "-i", &bad.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("bad.ini: host `h`: ansible_password: not supported"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
