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
