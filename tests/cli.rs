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

/// `--shard 1/4` … `4/4` split a selection: every host is in exactly one
/// shard, as `dockhand inventory` lists it and as a real run (plan, each
/// host refused on a loopback port) reports it.
#[test]
fn a_sharded_run_covers_every_host_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.yaml");
    let mut text = String::from("hosts:\n");
    for i in 0..40 {
        text += &format!("  node{i:02}: {{ address: 127.0.0.1, ssh: {{ port: 1 }} }}\n");
    }
    text += "groups:\n  odd: { hosts: [node01, node03, node05, node07] }\n";
    std::fs::write(&inventory, text).unwrap();
    let playbook = dir.path().join("playbook.yaml");
    std::fs::write(
        &playbook,
        "files:\n  - path: /etc/motd\n    content: \"hi\\n\"\n",
    )
    .unwrap();
    let (inventory, playbook) = (inventory.to_string_lossy(), playbook.to_string_lossy());
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    let names_in = |json: &[u8], key: &str| -> Vec<String> {
        let value: serde_json::Value = serde_json::from_slice(json).unwrap();
        value["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h[key].as_str().unwrap().to_string())
            .collect()
    };
    let mut listed = Vec::new();
    let mut planned = Vec::new();
    for index in 1..=4 {
        let shard = format!("{index}/4");
        let output = run(&[
            "inventory",
            "-i",
            &inventory,
            "--shard",
            &shard,
            "--format",
            "json",
        ]);
        assert!(output.status.success(), "{output:?}");
        let names = names_in(&output.stdout, "name");
        assert!(
            !names.is_empty() && names.len() < 40,
            "shard {shard}: {names:?}"
        );
        listed.extend(names.clone());
        let output = run(&[
            "plan",
            "-i",
            &inventory,
            &playbook,
            "--shard",
            &shard,
            "--format",
            "json",
            "--progress",
            "none",
        ]);
        // Nobody answers on port 1: every host of the shard is unreachable.
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let hosts = names_in(&output.stdout, "host");
        assert_eq!(
            hosts, names,
            "shard {shard}: the run visits what inventory lists"
        );
        planned.extend(hosts);
    }
    let all: Vec<String> = (0..40).map(|i| format!("node{i:02}")).collect();
    for seen in [&mut listed, &mut planned] {
        seen.sort();
        assert_eq!(*seen, all, "every host exactly once");
    }
    // With --limit, the shards split what the limit selected.
    let mut odd = Vec::new();
    for index in 1..=2 {
        let shard = format!("{index}/2");
        let output = run(&[
            "inventory",
            "-i",
            &inventory,
            "--limit",
            "odd",
            "--shard",
            &shard,
            "--format",
            "json",
        ]);
        if output.status.success() {
            odd.extend(names_in(&output.stdout, "name"));
        } else {
            assert!(String::from_utf8_lossy(&output.stderr).contains("none of the 4 selected"));
        }
    }
    odd.sort();
    assert_eq!(odd, ["node01", "node03", "node05", "node07"]);
    let output = run(&["inventory", "-i", &inventory, "--shard", "5/4"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("I/N"),
        "{output:?}"
    );
}
