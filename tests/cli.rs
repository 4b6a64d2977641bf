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
