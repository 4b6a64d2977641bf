//! End to end: `dockhand plan` against real lab hosts. Fresh hosts get the
//! whole secure set planned and are left byte-for-byte as they were; a host
//! converged by hand and then edited shows exactly the edits; no private
//! key material ever appears in any output; bad input is refused with its
//! position and nothing is touched.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::{Release, TestLab};
use dockhand::core::input::inventory::Inventory;
use dockhand::pki::PkiStore;
use serde_json::Value;

const LAB: &str = "plan";
const HOSTS: usize = 3;
const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/docker-tls.yaml");

fn plan_json(
    lab: &TestLab,
    inventory: &Path,
    pki: &Path,
    extra: &[&str],
) -> (Option<i32>, Value, String) {
    let inventory = inventory.to_string_lossy();
    let mut args = vec![
        "plan",
        "-i",
        &inventory,
        PLAYBOOK,
        "--format",
        "json",
        "--detailed-exitcode",
    ];
    args.extend_from_slice(extra);
    let output = lab.dockhand_with(&args, &[("DOCKHAND_PKI_DIR", pki.as_os_str())]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "plan JSON: {e}\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (
        output.status.code(),
        json,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn host_entry<'a>(plan: &'a Value, host: &str) -> &'a Value {
    plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .expect("host in plan")
}

fn change<'a>(entry: &'a Value, path: &str) -> &'a Value {
    entry["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no change for {path}: {entry:#}"))
}

#[test]
fn fresh_bookworm_hosts_get_the_secure_set_planned_and_stay_untouched() {
    fresh_hosts_planned(TestLab::up(LAB, HOSTS));
}

#[test]
fn fresh_trixie_hosts_get_the_secure_set_planned_and_stay_untouched() {
    fresh_hosts_planned(TestLab::fresh("plan-tx", 2, Release::Trixie));
}

fn fresh_hosts_planned(lab: TestLab) {
    let dir = tempfile::tempdir().unwrap();
    let inventory = lab.inventory_file(dir.path());
    let pki = dir.path().join("pki");
    let names = lab.host_names();
    let hosts = [names[0].as_str(), names[1].as_str()];
    let before: Vec<String> = hosts.iter().map(|h| lab.fingerprint(h)).collect();

    let limit = hosts.join(",");
    let (code, plan, _) = plan_json(&lab, &inventory, &pki, &["--limit", &limit]);
    assert_eq!(code, Some(2), "changes pending");
    assert_eq!(plan["summary"]["with_changes"], 2);
    for host in hosts {
        let entry = host_entry(&plan, host);
        assert_eq!(entry["status"], "changes");
        for (path, mode) in [
            ("/etc/docker/tls/ca.pem", "0444"),
            ("/etc/docker/tls/server-cert.pem", "0444"),
            ("/etc/docker/tls/server-key.pem", "0400"),
            ("/etc/docker/daemon.json", "0644"),
            ("/etc/systemd/system/docker.service.d/override.conf", "0644"),
            ("/etc/ssh/sshd_config.d/00-dockhand.conf", "0644"),
        ] {
            let c = change(entry, path);
            assert_eq!(
                (c["action"].as_str(), c["mode"]["to"].as_str()),
                (Some("create"), Some(mode)),
                "{host} {path}"
            );
            assert_eq!(c["owner"]["to"], "root");
        }
        assert_eq!(
            change(entry, "/etc/docker/tls/server-key.pem")["secret"],
            true
        );
        let override_conf = change(entry, "/etc/systemd/system/docker.service.d/override.conf");
        assert!(
            override_conf["content"]["after"]
                .as_str()
                .unwrap()
                .contains("ExecStart=\nExecStart=/usr/sbin/dockerd --containerd=")
        );
        let keys: Vec<&str> = change(entry, "/etc/docker/daemon.json")["content"]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].as_str().unwrap())
            .collect();
        for key in [
            "hosts",
            "tls",
            "tlsverify",
            "tlscacert",
            "tlscert",
            "tlskey",
            "icc",
            "live-restore",
            "no-new-privileges",
            "userland-proxy",
            "userns-remap",
            "log-driver",
            "log-opts",
        ] {
            assert!(
                keys.contains(&key),
                "{host}: daemon.json lacks {key}: {keys:?}"
            );
        }
        assert_eq!(
            entry["handlers"],
            serde_json::json!(["daemon-reload", "reload-ssh", "restart-docker"])
        );
    }
    // The human form says the same, with --detailed-exitcode 2 as well.
    let output = lab.dockhand_with(
        &[
            "plan",
            "-i",
            &inventory.to_string_lossy(),
            PLAYBOOK,
            "--limit",
            &format!("{}-0[12]", lab.name),
            "--detailed-exitcode",
        ],
        &[("DOCKHAND_PKI_DIR", pki.as_os_str())],
    );
    assert_eq!(output.status.code(), Some(2));
    let human = String::from_utf8_lossy(&output.stdout);
    assert!(
        human.contains("+ file /etc/docker/tls/server-key.pem  (mode 0400"),
        "{human}"
    );
    assert!(
        human.contains("handlers: systemctl daemon-reload, reload ssh, restart docker"),
        "{human}"
    );
    assert!(human.contains("Plan: 2 host(s): 2 with changes"), "{human}");

    // Plan wrote nothing: not on the hosts, not in the local PKI.
    let after: Vec<String> = hosts.iter().map(|h| lab.fingerprint(h)).collect();
    assert_eq!(before, after, "hosts are byte-for-byte unchanged");
    assert!(!pki.exists(), "plan never creates the CA");
    if lab.name != LAB {
        // The other tests share the bookworm lab; this one is its own.
        common::assert_success(&lab.dockhand(&["lab", "down"]), "lab down");
    }
}

/// Converges `host` by hand with OpenSSH, from the plan's own desired
/// content and the local PKI: what `apply` will do, done independently.
fn converge_by_hand(lab: &TestLab, host: &str, plan: &Value, store: &PkiStore, inventory: &Path) {
    let text = std::fs::read_to_string(inventory).unwrap();
    let inv = Inventory::parse(inventory, &text, None).unwrap();
    let record = inv.hosts.iter().find(|h| h.name == host).unwrap();
    let sans = dockhand::core::pki::Sans::of_host(record);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (pair, _) = store.ensure_server(host, &sans, now).unwrap();
    let ca = store.ca().unwrap().unwrap();
    let entry = host_entry(plan, host);
    let mut files: Vec<(String, Vec<u8>, &str)> = vec![
        ("/etc/docker/tls/ca.pem".into(), ca.cert_pem, "0444"),
        (
            "/etc/docker/tls/server-cert.pem".into(),
            pair.cert_pem,
            "0444",
        ),
        (
            "/etc/docker/tls/server-key.pem".into(),
            pair.key_pem,
            "0400",
        ),
    ];
    for path in [
        "/etc/docker/daemon.json",
        "/etc/systemd/system/docker.service.d/override.conf",
        "/etc/ssh/sshd_config.d/00-dockhand.conf",
    ] {
        let after = change(entry, path)["content"]["after"]
            .as_str()
            .unwrap()
            .to_string();
        files.push((path.into(), after.into_bytes(), "0644"));
    }
    lab.ssh(host, "mkdir -p /etc/docker/tls /etc/systemd/system/docker.service.d && chmod 0755 /etc/docker/tls");
    for (path, content, mode) in files {
        let write =
            format!("umask 077; cat > {path} && chmod {mode} {path} && chown root:root {path}");
        let mut child = lab
            .ssh_command(host, &write)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&content).unwrap();
        assert!(child.wait().unwrap().success(), "write {path}");
    }
}

#[test]
fn a_host_changed_by_hand_shows_exactly_those_changes_and_no_key_material() {
    let lab = TestLab::up(LAB, HOSTS);
    let host = "plan-03";
    let dir = tempfile::tempdir().unwrap();
    let inventory = lab.inventory_file(dir.path());
    let pki = dir.path().join("pki");
    let limit = ["--limit", host];

    // Back to a fresh host (an earlier run may have converged it), then
    // converge by hand, then plan: nothing to do.
    lab.ssh(
        host,
        "rm -rf /etc/docker/tls /etc/docker/daemon.json /etc/systemd/system/docker.service.d \
         /etc/ssh/sshd_config.d/00-dockhand.conf",
    );
    let (_, fresh_plan, _) = plan_json(&lab, &inventory, &pki, &limit);
    let store = PkiStore::new(pki.clone(), Default::default());
    converge_by_hand(&lab, host, &fresh_plan, &store, &inventory);
    let (code, plan, stderr) = plan_json(&lab, &inventory, &pki, &limit);
    assert_eq!(code, Some(0), "converged host: {plan:#}\n{stderr}");
    assert_eq!(host_entry(&plan, host)["status"], "unchanged");
    // sshd -T on the host agrees with every value of the drop-in.
    assert_eq!(host_entry(&plan, host)["warnings"], serde_json::json!([]));

    // Edit daemon.json by hand and open the key up.
    lab.ssh(
        host,
        "sed -i -e 's/\"icc\": false/\"icc\": true/' -e '1s/^{$/{\\n  \"debug\": true,/' /etc/docker/daemon.json \
         && grep -q '\"debug\": true' /etc/docker/daemon.json && chmod 0644 /etc/docker/tls/server-key.pem",
    );
    let (code, plan, _) = plan_json(&lab, &inventory, &pki, &limit);
    assert_eq!(code, Some(2));
    let entry = host_entry(&plan, host);
    let changes = entry["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "exactly the two edits: {entry:#}");
    let key = change(entry, "/etc/docker/tls/server-key.pem");
    assert_eq!(
        key["mode"],
        serde_json::json!({"from": "0644", "to": "0400"})
    );
    assert!(
        key.get("content").is_none(),
        "the key's content did not change"
    );
    let json_change = change(entry, "/etc/docker/daemon.json");
    assert!(json_change.get("mode").is_none());
    // `debug` was set by hand and is not managed: it is kept (merge), so
    // only `icc` changes back.
    assert_eq!(
        json_change["content"]["keys"],
        serde_json::json!([{"change": "changed", "key": "icc", "from": true, "to": false}])
    );
    assert_eq!(entry["handlers"], serde_json::json!(["restart-docker"]));

    // A key whose content differs is stated, never shown; neither human,
    // JSON nor verbose output carries key material.
    lab.ssh(
        host,
        "printf 'not the key\\n' > /etc/docker/tls/server-key.pem",
    );
    let local_key =
        std::fs::read_to_string(pki.join("servers").join(host).join("key.pem")).unwrap();
    let ca_key = std::fs::read_to_string(pki.join("ca-key.pem")).unwrap();
    let key_lines: Vec<&str> = local_key
        .lines()
        .chain(ca_key.lines())
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let inventory_arg = inventory.to_string_lossy();
    let pki_env: [(&str, &OsStr); 1] = [("DOCKHAND_PKI_DIR", pki.as_os_str())];
    for format in ["human", "json"] {
        let output = lab.dockhand_with(
            &[
                "plan",
                "-i",
                &inventory_arg,
                PLAYBOOK,
                "--limit",
                host,
                "--format",
                format,
                "-v",
            ],
            &pki_env,
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!all.contains("PRIVATE KEY"), "{format}: {all}");
        for line in &key_lines {
            assert!(!all.contains(line), "{format}: key material in output");
        }
        assert!(
            !all.contains("not the key"),
            "{format}: the host's key content leaked"
        );
        if format == "json" {
            let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(
                change(host_entry(&plan, host), "/etc/docker/tls/server-key.pem")["content"]["type"],
                "secret"
            );
        } else {
            assert!(all.contains("content changes (secret: not shown)"), "{all}");
        }
    }
}

#[test]
fn an_unreachable_host_is_reported_and_the_others_still_planned() {
    let lab = TestLab::up(LAB, HOSTS);
    let dir = tempfile::tempdir().unwrap();
    let inventory = lab.inventory_file(dir.path());
    let octets = lab.state().hosts[0].address.octets();
    let text = std::fs::read_to_string(&inventory).unwrap().replacen(
        "\nhosts:\n",
        &format!(
            "\nhosts:\n  ghost:\n    address: 198.18.{}.250\n    ssh: {{ connect_timeout: 2 }}\n",
            octets[2]
        ),
        1,
    );
    std::fs::write(&inventory, text).unwrap();
    let (code, plan, _) = plan_json(
        &lab,
        &inventory,
        &dir.path().join("pki"),
        &["--limit", "ghost,plan-01"],
    );
    assert_eq!(code, Some(1));
    let ghost = host_entry(&plan, "ghost");
    assert_eq!(ghost["status"], "unreachable");
    assert!(
        ghost["error"].as_str().unwrap().contains("198.18."),
        "{ghost:#}"
    );
    assert_eq!(host_entry(&plan, "plan-01")["status"], "changes");
    assert_eq!(plan["summary"]["unreachable"], 1);
}

/// Runs plan with the given files and expects exit 1 with `needle` in stderr.
fn refused(inventory: &str, playbook: &str, extra: &[&str], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let inventory_path = dir.path().join("inventory.yaml");
    std::fs::write(&inventory_path, inventory).unwrap();
    let playbook_path = dir.path().join("playbook.yaml");
    if !playbook.is_empty() {
        std::fs::write(&playbook_path, playbook).unwrap();
    }
    let needle = needle
        .replace("INV", &inventory_path.to_string_lossy())
        .replace("PLAY", &playbook_path.to_string_lossy());
    let mut args = vec![
        "plan".to_string(),
        "-i".into(),
        inventory_path.to_string_lossy().into(),
        playbook_path.to_string_lossy().into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let output = std::process::Command::new(common::BIN)
        .args(&args)
        .env("DOCKHAND_PKI_DIR", dir.path().join("pki"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{needle}: {stderr}");
    assert!(
        stderr.contains(&needle),
        "expected {needle:?} in:\n{stderr}"
    );
    assert!(output.stdout.is_empty(), "no plan is printed for bad input");
    assert!(!dir.path().join("pki").exists());
}

#[test]
fn bad_input_is_refused_with_its_position_before_any_host_is_contacted() {
    // An address no host holds: had any connection been tried, the error
    // would be about it, not about the input.
    let good_inventory = "hosts:\n  web1:\n    address: 198.18.255.250\n";
    let good_playbook = std::fs::read_to_string(PLAYBOOK).unwrap();
    let cases: &[(&str, &str, &[&str], &str)] = &[
        (
            "hosts:\n  web1: {address: x\n",
            &good_playbook,
            &[],
            "INV:3:1: ",
        ),
        (
            "hosts:\n  web1:\n    adress: x\n",
            &good_playbook,
            &[],
            "INV:3:5: hosts.web1: unknown field `adress`",
        ),
        (
            "hosts:\n  web1:\n    ssh: { port: twenty-two }\n",
            &good_playbook,
            &[],
            "INV:3:18: hosts.web1.ssh.port: invalid type",
        ),
        (
            "hosts:\n  web1:\n    tls: { addresses: [10.0.0.300] }\n",
            &good_playbook,
            &[],
            "INV:3:24: hosts.web1.tls.addresses[0]: invalid IP address syntax",
        ),
        (
            good_inventory,
            "docker:\n  tls_dir: [/etc]\n",
            &[],
            "PLAY:2:12: docker.tls_dir: invalid type",
        ),
        (
            good_inventory,
            "sshd:\n  settingz: {}\n",
            &[],
            "PLAY:2:3: sshd: unknown field `settingz`",
        ),
        (
            good_inventory,
            "pki:\n  key_type: rsa-1024\n",
            &[],
            "PLAY:2:13: pki.key_type: unknown variant `rsa-1024`",
        ),
        (good_inventory, "pki: [\n", &[], "PLAY:"),
        // What would reach a root shell or a file name is checked at load.
        (
            good_inventory,
            "files:\n  - path: /etc/x\n    content: x\n    owner: \"root; touch /tmp/pwned\"\n",
            &[],
            "PLAY:2:5: files[0]: \"root; touch /tmp/pwned\" is not a user or group name",
        ),
        (
            good_inventory,
            "files:\n  - path: \"/etc/a\\nb\"\n    content: x\n",
            &[],
            "PLAY:2:5: files[0]: \"/etc/a\\nb\" has a control character in it",
        ),
        (
            good_inventory,
            "files:\n  - path: /etc/x\n    content: x\n  - path: /etc/x\n    content: y\n",
            &[],
            "PLAY:2:3: files: the path `/etc/x` is listed twice",
        ),
        (
            "hosts:\n  web1: {address: 198.18.255.250}\n  web1: {address: 198.18.255.251}\n",
            &good_playbook,
            &[],
            "INV:2:3: hosts: `web1` appears twice",
        ),
        (
            good_inventory,
            "pki: {}\ndocker:\n  listen: garbage\n",
            &[],
            "PLAY:3:3: docker: \"garbage\": expected tcp://ADDRESS:PORT",
        ),
        (
            good_inventory,
            "pki:\n  cert_validity_days: 4e9\n",
            &[],
            "PLAY:2:3: pki: cert_validity_days: expected a whole number of days",
        ),
        (
            good_inventory,
            "pki:\n  ca_validity_days: 0\n",
            &[],
            "PLAY:2:3: pki: ca_validity_days: 0 days is out of range: 1 to 36500",
        ),
        (
            good_inventory,
            "pki:\n  clients: [\"../x\"]\n",
            &[],
            "PLAY:2:3: pki: \"../x\" is not a client name",
        ),
        (
            good_inventory,
            "sshd:\n  settings:\n    Banner: \"a\\nb\"\n",
            &[],
            "PLAY:2:3: sshd: the value of sshd setting Banner has a control character in it",
        ),
        (
            good_inventory,
            "files:\n  - path: /etc/motd\n    content: \"{{ site }}\"\n    template: true\n",
            &[],
            "PLAY:2:5: template of /etc/motd: unknown variable `site` for host web1",
        ),
        (
            good_inventory,
            "",
            &[],
            "PLAY: cannot read the playbook: No such file or directory",
        ),
        (
            good_inventory,
            &good_playbook,
            &["--limit", "web2"],
            "--limit \"web2\": `web2` matches no host or group of the inventory",
        ),
        (
            good_inventory,
            &good_playbook,
            &["--limit", "db*"],
            "`db*` matches no host",
        ),
    ];
    for (inventory, playbook, extra, needle) in cases {
        refused(inventory, playbook, extra, needle);
    }
}

#[test]
fn planning_through_the_sudo_user_with_become_sees_what_root_sees() {
    let lab = TestLab::up(LAB, HOSTS);
    let dir = tempfile::tempdir().unwrap();
    let as_root = lab.inventory_file(dir.path());
    let text = std::fs::read_to_string(&as_root).unwrap().replace(
        "    user: root\n",
        &format!("    user: {}\n    become: true\n", dockhand::lab::SUDO_USER),
    );
    let as_user = dir.path().join("as-user.yaml");
    std::fs::write(&as_user, text).unwrap();
    let pki = dir.path().join("pki");
    let limit = ["--limit", "plan-01"];
    let (root_code, root_plan, _) = plan_json(&lab, &as_root, &pki, &limit);
    let (user_code, user_plan, stderr) = plan_json(&lab, &as_user, &pki, &limit);
    assert_eq!((root_code, user_code), (Some(2), Some(2)), "{stderr}");
    assert_eq!(
        root_plan["hosts"][0]["changes"],
        user_plan["hosts"][0]["changes"]
    );
    assert_eq!(
        root_plan["hosts"][0]["handlers"],
        user_plan["hosts"][0]["handlers"]
    );
    assert_eq!(
        user_plan["hosts"][0]["warnings"],
        serde_json::json!([]),
        "sshd -T ran as root through sudo"
    );
}
