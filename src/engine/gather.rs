//! Gathering a host's actual state in one round trip: the gather script
//! of [`remote`](super::remote) reports every managed path (metadata,
//! digest, and content unless secret) and the facts the roles need, in a
//! line format that is parsed here.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;

use crate::core::roles::docker::workload::{Container, Workload};
use crate::core::state::{ActualPath, ActualState, Facts, PathKind, UnitFile};
use crate::error::{Error, HostError, Result};
use crate::transport::Transport;

use super::remote::{self, Become, Layout};
use super::shared::Made;

/// The gather, as sent: alike for every host of a run, so made once
/// (see [`Made`]).
fn request(paths: &[(String, bool)], fence: bool, how: &Become) -> Arc<remote::Sent> {
    type Key = (Vec<(String, bool)>, bool, std::mem::Discriminant<Become>);
    static MADE: Made<Key, remote::Sent> = Made::new(4);
    MADE.get(
        (paths.to_vec(), fence, std::mem::discriminant(how)),
        |(paths, fence, _)| remote::gather(paths, &Layout::HOST, false, *fence).into_sent(how),
    )
}

/// Runs the gather script on a host.
pub async fn gather(
    transport: &impl Transport,
    paths: &[(String, bool)],
    fence: bool,
    how: &Become,
) -> Result<ActualState> {
    let sent = request(paths, fence, how);
    let output = transport.exec(&sent.command, &sent.stdin(how)).await?;
    let stderr = output.stderr_text();
    if how.is_root() && !output.success() && stderr.contains("sudo") {
        return Err(Error::OnHost {
            host: transport.host().to_string(),
            cause: HostError::Remote {
                step: "gather (sudo)".into(),
                status: output.status.to_string(),
                stderr: Become::explain(&stderr),
            },
        });
    }
    parse(&output.stdout_text()).map_err(|reason| Error::OnHost {
        host: transport.host().to_string(),
        cause: HostError::Remote {
            step: "gather".into(),
            status: output.status.to_string(),
            stderr: format!("{reason}; stderr: {}", stderr.trim()),
        },
    })
}

/// Reads a gather's answer that came with the host's lock (the command
/// still runs: no status, no stderr yet).
pub fn read_held(host: &str, answer: &str) -> Result<ActualState> {
    parse(answer).map_err(|reason| Error::OnHost {
        host: host.to_string(),
        cause: HostError::Step {
            step: "gather".into(),
            reason,
        },
    })
}

/// Parses the script's output.
pub fn parse(text: &str) -> std::result::Result<ActualState, String> {
    let mut state = ActualState::default();
    let mut section = "start";
    let mut shown = Vec::new();
    let mut sshd_lines = Vec::new();
    let mut sshd_status = None;
    let mut saw_facts = false;
    for line in text.lines() {
        if let Some(status) = line.strip_prefix("@sshd_status ") {
            sshd_status = status.trim().parse::<i32>().ok();
            continue;
        }
        if let Some(path) = line.strip_prefix("@unreadable ") {
            return Err(format!(
                "{path}: not readable (run as root, or set become: true)"
            ));
        }
        match line {
            "@stat" | "@sha256" | "@content" | "@blob" | "@facts" | "@sshd" => {
                section = &line[1..];
                saw_facts |= section == "facts";
                continue;
            }
            _ => {}
        }
        match section {
            "stat" => {
                let (path, actual) = parse_stat_line(line)?;
                state.paths.insert(path, actual);
            }
            "sha256" => {
                let (path, digest) = parse_digest_line(line)?;
                if let Some(actual) = state.paths.get_mut(&path) {
                    actual.sha256 = Some(digest);
                }
            }
            "content" => shown.push(line.to_string()),
            "blob" => split_content(&mut state, &shown, line)?,
            "facts" => parse_fact_line(&mut state.facts, line),
            "sshd" => sshd_lines.push(line),
            _ => return Err(format!("unexpected line before any section: {line:?}")),
        }
    }
    if !saw_facts || sshd_status.is_none() {
        return Err("the gather script did not finish (output cut short)".into());
    }
    if let Some((path, _)) = state
        .paths
        .iter()
        .find(|(_, a)| a.kind == Some(PathKind::File) && a.sha256.is_none())
    {
        return Err(format!("{path}: sha256sum could not read it"));
    }
    if sshd_status == Some(0) {
        state.facts.sshd_effective = sshd_settings(sshd_lines);
    } else {
        state.facts.sshd_error = Some(sshd_lines.join("\n"));
    }
    Ok(state)
}

/// `sshd -T` output as keyword → value, keywords lower-cased: OpenSSH up to
/// 10.5 prints them in lower case, 10.6 in their canonical mixed case
/// (`PasswordAuthentication no`), and sshd itself reads them either way.
pub fn sshd_settings<'a>(lines: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, String> {
    lines
        .into_iter()
        .filter_map(|line| {
            line.split_once(' ')
                .map(|(key, value)| (key.to_ascii_lowercase(), value.to_string()))
        })
        .collect()
}

/// `OpenSSH_10.6p1` (`sshd -V` prints it first on every release; 8.4, which
/// has no `-V`, prints it in its usage message) → (10, 6).
pub fn openssh_version(word: &str) -> Option<(u32, u32)> {
    let version = word.strip_prefix("OpenSSH_")?;
    let (major, rest) = version.split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// `TYPE|MODE|OWNER|GROUP|SIZE|PATH`, from `stat -c '%F|%a|%U|%G|%s|%n'`.
fn parse_stat_line(line: &str) -> std::result::Result<(String, ActualPath), String> {
    let fields: Vec<&str> = line.splitn(6, '|').collect();
    let [kind, mode, owner, group, size, path] = fields[..] else {
        return Err(format!("bad stat line {line:?}"));
    };
    let actual = ActualPath {
        exists: true,
        kind: Some(match kind {
            "regular file" | "regular empty file" => PathKind::File,
            "directory" => PathKind::Directory,
            // Symbolic links, sockets, devices: never followed nor read.
            _ => PathKind::Other,
        }),
        // %a omits leading zeros and may include set-id bits.
        mode: u32::from_str_radix(mode, 8).map_err(|_| format!("{path}: bad mode {mode:?}"))?,
        owner: owner.to_string(),
        group: group.to_string(),
        size: size.parse().unwrap_or(0),
        sha256: None,
        content: None,
    };
    Ok((path.to_string(), actual))
}

/// `HASH  PATH`, or `\HASH  PATH` with `\\`, `\n` and `\r` escaped when the
/// path holds a backslash or a line break (GNU coreutils).
fn parse_digest_line(line: &str) -> std::result::Result<(String, String), String> {
    let (escaped, rest) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (digest, path) = rest
        .split_once("  ")
        .filter(|(d, _)| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("bad sha256sum line {line:?}"))?;
    let path = if escaped {
        let mut out = String::new();
        let mut chars = path.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            out.push(match chars.next() {
                Some('n') => '\n',
                Some('r') => '\r',
                Some(other) => other,
                None => '\\',
            });
        }
        out
    } else {
        path.to_string()
    };
    Ok((path, digest.to_string()))
}

/// The shown files' content: one base64 blob of them all, in the order
/// listed, cut at the sizes `stat` reported. A file that changed size in
/// between makes the lengths disagree: an error, never a wrong diff.
fn split_content(
    state: &mut ActualState,
    shown: &[String],
    blob: &str,
) -> std::result::Result<(), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob.trim())
        .map_err(|e| format!("bad content encoding: {e}"))?;
    let mut rest = &bytes[..];
    for path in shown {
        let actual = state
            .paths
            .get_mut(path)
            .ok_or_else(|| format!("{path}: content without a stat line"))?;
        let size = usize::try_from(actual.size).unwrap_or(usize::MAX);
        if size > rest.len() {
            return Err(format!("{path}: changed while it was read; run again"));
        }
        let (content, after) = rest.split_at(size);
        actual.content = Some(content.to_vec());
        rest = after;
    }
    if !rest.is_empty() {
        return Err("a file changed while it was read; run again".into());
    }
    Ok(())
}

/// Whether the packaged dockerd of this Debian version has `--validate`
/// (23.0 and later). Asking dpkg costs a few milliseconds of the host's
/// CPU; starting the Go binary for its `--help` costs about 45.
pub(crate) fn package_validates(version: &str) -> bool {
    let without_epoch = version.split_once(':').map_or(version, |(_, v)| v);
    without_epoch
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 23)
}

/// A line of the last unit (or environment) file announced: the line as
/// the host sent it, spaces and all. A line before any file is dropped.
fn push_line(files: &mut [UnitFile], line: &str) {
    if let Some(file) = files.last_mut() {
        file.text.push_str(line);
        file.text.push('\n');
    }
}

/// At most 200 characters of what a host said, for a message.
fn truncated(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

fn parse_fact_line(facts: &mut Facts, line: &str) {
    let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
    // A file's lines are kept whole: they are not words.
    match tag {
        "docker_unit_file_line" => return push_line(&mut facts.docker_unit_files, rest),
        "docker_env_file_line" => return push_line(&mut facts.docker_env_files, rest),
        _ => {}
    }
    let rest = rest.trim();
    match tag {
        "os" => {
            let (id, version) = rest.split_once(' ').unwrap_or((rest, ""));
            facts.os_id = id.to_string();
            facts.os_version = version.to_string();
        }
        "dockerd" if !rest.is_empty() => facts.dockerd_path = Some(rest.to_string()),
        "nft" if !rest.is_empty() => facts.nft_path = Some(rest.to_string()),
        "docker_cli" if !rest.is_empty() => facts.docker_cli_path = Some(rest.to_string()),
        "docker_group" => {
            facts.docker_group = Some(
                rest.split(',')
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
            )
        }
        "fenced_port" => facts.fenced_ports.extend(rest.parse::<u16>().ok()),
        "exec_start" => facts
            .docker_exec_start
            .push(rest.split_whitespace().map(String::from).collect()),
        "docker_drop_in" => facts.docker_drop_ins.push(rest.to_string()),
        "docker_unit_file" => facts.docker_unit_files.push(UnitFile {
            path: rest.to_string(),
            text: String::new(),
        }),
        "docker_env_file" => facts.docker_env_files.push(UnitFile {
            path: rest.to_string(),
            text: String::new(),
        }),
        "docker_active" => facts.docker_active = rest.to_string(),
        "ssh_unit" => facts.ssh_unit = rest.to_string(),
        "ssh_active" => facts.ssh_active = rest.to_string(),
        "sshd_drop_in" => facts.sshd_drop_ins.push(rest.to_string()),
        "ssh_kex" => facts.ssh_kex = rest.split_whitespace().map(String::from).collect(),
        "openssh_version" => facts.openssh_version = openssh_version(rest),
        "ssh_host_key" => facts.ssh_host_keys.push(rest.to_string()),
        "dockerd_validate" => facts.dockerd_can_validate = true,
        "dockerd_package" => facts.dockerd_can_validate |= package_validates(rest),
        "pending_handler" => facts.pending_handlers.push(rest.to_string()),
        "armed_switch" => facts.armed_switches.push(rest.to_string()),
        "leftover" => facts.leftovers.push(rest.to_string()),
        "docker_info" => match Workload::from_info(rest) {
            Ok(workload) => facts.workload = Some(workload),
            Err(e) => facts.workload_unknown = Some(format!("{e}: {}", truncated(rest))),
        },
        "docker_container" => {
            if let Some(workload) = facts.workload.as_mut() {
                match Container::from_inspect(rest) {
                    Ok(container) => workload.containers.push(container),
                    Err(e) => facts.workload_unknown = Some(e),
                }
            }
        }
        "docker_volumes" => {
            if let Some(workload) = facts.workload.as_mut() {
                workload.volumes = rest.parse().ok();
            }
        }
        "docker_unknown" => facts.workload_unknown = Some(truncated(rest)),
        // Nothing in any data root dockerd can use: nothing to ask it about.
        "docker_holds_nothing" => facts.workload = Some(Workload::default()),
        "default_root_containers" => facts.default_root_containers = rest.parse().unwrap_or(0),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a fresh lab host of each release prints, as captured from it:
    /// (OpenSSH version, `sshd -T`, `sshd -V 2>&1`, `ssh -Q kex`). Debian
    /// 14 installs no ssh client, so its `ssh -Q kex` is empty.
    const RELEASES: [(&str, &str, &str, &str); 4] = [
        (
            "8.4",
            include_str!("../../tests/fixtures/openssh/8.4/sshd-T"),
            include_str!("../../tests/fixtures/openssh/8.4/sshd-V"),
            include_str!("../../tests/fixtures/openssh/8.4/ssh-Q-kex"),
        ),
        (
            "9.2",
            include_str!("../../tests/fixtures/openssh/9.2/sshd-T"),
            include_str!("../../tests/fixtures/openssh/9.2/sshd-V"),
            include_str!("../../tests/fixtures/openssh/9.2/ssh-Q-kex"),
        ),
        (
            "10.0",
            include_str!("../../tests/fixtures/openssh/10.0/sshd-T"),
            include_str!("../../tests/fixtures/openssh/10.0/sshd-V"),
            include_str!("../../tests/fixtures/openssh/10.0/ssh-Q-kex"),
        ),
        (
            "10.6",
            include_str!("../../tests/fixtures/openssh/10.6/sshd-T"),
            include_str!("../../tests/fixtures/openssh/10.6/sshd-V"),
            include_str!("../../tests/fixtures/openssh/10.6/ssh-Q-kex"),
        ),
    ];

    /// The facts the gather script's lines give for one release.
    fn release_facts(sshd_t: &str, sshd_v: &str, kex: &str) -> Facts {
        let mut facts = Facts::default();
        let words: Vec<&str> = kex.split_whitespace().collect();
        parse_fact_line(&mut facts, &format!("ssh_kex {}", words.join(" ")));
        if let Some(word) = sshd_v
            .split_whitespace()
            .find(|w| w.starts_with("OpenSSH_"))
        {
            parse_fact_line(&mut facts, &format!("openssh_version {word}"));
        }
        facts.sshd_effective = sshd_settings(sshd_t.lines());
        facts
    }

    #[test]
    fn sshd_settings_read_alike_whatever_case_openssh_prints() {
        for (version, sshd_t, sshd_v, kex) in RELEASES {
            let facts = release_facts(sshd_t, sshd_v, kex);
            let settings = &facts.sshd_effective;
            // A fresh Debian host: passwords allowed, root by key only.
            assert_eq!(settings["passwordauthentication"], "yes", "{version}");
            assert_eq!(settings["kbdinteractiveauthentication"], "no", "{version}");
            assert!(
                ["without-password", "prohibit-password"]
                    .contains(&settings["permitrootlogin"].as_str()),
                "{version}"
            );
            assert!(
                settings["kexalgorithms"].contains("curve25519-sha256"),
                "{version}"
            );
            assert!(
                settings.keys().all(|k| *k == k.to_ascii_lowercase()),
                "{version}"
            );
            let (major, minor) = version.split_once('.').unwrap();
            assert_eq!(
                facts.openssh_version,
                Some((major.parse().unwrap(), minor.parse().unwrap())),
                "{version}"
            );
        }
        // 10.6 is the one that prints mixed case.
        assert!(RELEASES[3].1.contains("\nPasswordAuthentication yes\n"));
    }

    #[test]
    fn key_exchange_follows_each_release_s_openssh() {
        let expected = [
            ("8.4", "curve25519-sha256,curve25519-sha256@libssh.org"),
            (
                "9.2",
                "sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org",
            ),
            (
                "10.0",
                "mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org",
            ),
            (
                "10.6",
                "mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org",
            ),
        ];
        for ((version, sshd_t, sshd_v, kex), (_, want)) in RELEASES.into_iter().zip(expected) {
            let facts = release_facts(sshd_t, sshd_v, kex);
            let settings = crate::core::roles::sshd::host_sshd_settings(&facts);
            assert_eq!(settings["KexAlgorithms"].render(), want, "{version}");
            // The hardened list is a subset of what that sshd offers.
            for name in want.split(',') {
                assert!(
                    kex.is_empty() || kex.lines().any(|k| k == name),
                    "{version}: {name}"
                );
            }
        }
    }

    #[test]
    fn audit_reads_every_release_s_sshd_as_printed() {
        for (version, sshd_t, sshd_v, kex) in RELEASES {
            let state = crate::core::state::ActualState {
                facts: release_facts(sshd_t, sshd_v, kex),
                ..Default::default()
            };
            let findings = crate::core::audit::audit(&state);
            let ssh1 = findings.iter().find(|f| f.id == "SSH-1").unwrap();
            assert_eq!(ssh1.verdict, crate::core::audit::Verdict::Fail, "{version}");
            assert_eq!(ssh1.reason, "passwordauthentication yes", "{version}");
            let ssh2 = findings.iter().find(|f| f.id == "SSH-2").unwrap();
            assert_eq!(ssh2.verdict, crate::core::audit::Verdict::Pass, "{version}");
        }
    }

    #[test]
    fn openssh_versions_are_read_from_sshd_v() {
        for (word, expected) in [
            ("OpenSSH_10.6p1", Some((10, 6))),
            ("OpenSSH_8.4p1", Some((8, 4))),
            ("OpenSSH_9.2p1", Some((9, 2))),
            ("OpenSSH_10.0", Some((10, 0))),
            ("OpenSSH_", None),
            ("OpenSSH_x.1", None),
            ("OpenSSH_9", None),
            ("OpenSSH_99999999999.1", None),
            ("OpenSSH_9.é", None),
            ("sshd:", None),
        ] {
            assert_eq!(openssh_version(word), expected, "{word}");
        }
    }

    #[test]
    fn a_packaged_dockerd_validates_from_23_on() {
        for (version, validates) in [
            ("20.10.24+dfsg1-1+deb12u1", false),
            ("26.1.5+dfsg1-9+b9", true),
            ("5:27.3.1-1~debian.12~bookworm", true),
            ("5:20.10.24~3-0~debian-bullseye", false),
            ("23.0.0", true),
            ("", false),
            ("garbage", false),
        ] {
            assert_eq!(package_validates(version), validates, "{version}");
        }
    }

    #[test]
    fn the_paths_cost_the_same_few_forks_however_many_there_are() {
        let paths: Vec<(String, bool)> = (0..20).map(|i| (format!("/etc/f{i}"), i == 3)).collect();
        let text = remote::gather(&paths, &Layout::HOST, false, true).text;
        let paths_part = &text[..text.find("echo '@facts'").unwrap()];
        for command in ["stat -c", "sha256sum --", "cat --", "base64"] {
            assert_eq!(paths_part.matches(command).count(), 1, "{command}");
        }
        // The secret is left out of the content by its quoted name.
        assert!(text.contains("case $name in '/etc/f3') continue ;; esac"));
    }

    const HASH_A: &str = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
    const HASH_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// Byte-level mutations of a full, valid gather output (paths, facts,
    /// docker's answers, each release's `sshd -T`): whatever a host sends,
    /// the parser gives a state or an error, never a panic.
    #[test]
    fn mutated_host_output_never_panics_the_parser() {
        let mut sample = format!(
            "@stat\nregular file|644|root|root|2|/etc/docker/daemon.json\n@sha256\n{HASH_A}  /etc/docker/daemon.json\n\
             @content\n/etc/docker/daemon.json\n@blob\ne30=\n@facts\nos debian 12\ndocker_active active\n\
             exec_start /usr/sbin/dockerd -H fd:// $DOCKER_OPTS\ndocker_unit_file /lib/systemd/system/docker.service\ndocker_unit_file_line [Service]\n\
             openssh_version OpenSSH_10.6p1\nssh_kex mlkem768x25519-sha256 curve25519-sha256\ndefault_root_containers 3\n\
             docker_info {{\"DockerRootDir\":\"/var/lib/docker\",\"Driver\":\"vfs\",\"Images\":5,\"LiveRestoreEnabled\":false,\"SecurityOptions\":[\"name=userns\"]}}\n\
             docker_container {{\"Id\":\"0123456789abcdef\",\"Name\":\"/web\",\"State\":{{\"Running\":true,\"Pid\":42,\"StartedAt\":\"x\"}},\"HostConfig\":{{\"RestartPolicy\":{{\"Name\":\"always\"}}}},\"Mounts\":[{{\"Source\":\"/var/run/docker.sock\"}}]}}\n\
             docker_volumes 2\n@sshd\n"
        );
        sample.push_str(RELEASES[3].1);
        sample.push_str("@sshd_status 0\n");
        assert!(parse(&sample).is_ok(), "the sample itself parses");
        let alphabet: &[&[u8]] = &[
            b"\n",
            b"|",
            b" ",
            b"@",
            b"{",
            b"\"",
            b"\xff",
            "é".as_bytes(),
            b"18446744073709551616",
            b"-1",
            b"@facts\n",
            b"@sshd_status 0\n",
            b"docker_container ",
            b"=",
        ];
        let mut random = [0u8; 4096];
        for _ in 0..3000 {
            crate::random::fill(&mut random);
            let mut bytes = sample.clone().into_bytes();
            for step in 0..(1 + random[0] as usize % 8) {
                let r = &random[8 + step * 8..16 + step * 8];
                let at = u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize % (bytes.len() + 1);
                let piece = alphabet[r[4] as usize % alphabet.len()];
                match r[5] % 3 {
                    0 => {
                        bytes.splice(at..at, piece.iter().copied());
                    }
                    1 => {
                        let end = (at + r[6] as usize % 64).min(bytes.len());
                        bytes.drain(at..end);
                    }
                    _ => bytes.truncate(at),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text);
            let _ = sshd_settings(text.lines());
            for word in text.split_whitespace().take(50) {
                let _ = openssh_version(word);
            }
        }
    }

    #[test]
    fn output_is_parsed() {
        let output = format!(
            "@stat\ndirectory|755|root|root|4096|/etc/docker/tls\n\
             regular file|400|root|root|227|/etc/docker/tls/server-key.pem\n\
             regular file|644|root|root|2|/etc/docker/daemon.json\n\
             regular empty file|640|root|adm|0|/etc/a b|c\n\
             symbolic link|777|root|root|9|/etc/link\n\
             @sha256\n{HASH_A}  /etc/docker/tls/server-key.pem\n{HASH_A}  /etc/docker/daemon.json\n\
             {HASH_EMPTY}  /etc/a b|c\n\
             @content\n/etc/docker/daemon.json\n/etc/a b|c\n@blob\ne30=\n\
             @facts\nos debian 12\ndockerd /usr/sbin/dockerd\n\
             exec_start /usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\n\
             docker_active active\nssh_unit ssh.service\nssh_active active\n\
             sshd_drop_in /etc/ssh/sshd_config.d/50-cloud-init.conf\n\
             docker_unit_file /lib/systemd/system/docker.service\n\
             docker_unit_file_line [Service]\n\
             docker_env_file /etc/default/docker\n\
             pending_handler restart-docker\n\
             @sshd\npasswordauthentication yes\npermitrootlogin without-password\n@sshd_status 0\n"
        );
        let state = parse(&output).unwrap();
        let dir = state.path("/etc/docker/tls");
        assert_eq!((dir.kind, dir.mode), (Some(PathKind::Directory), 0o755));
        let key = state.path("/etc/docker/tls/server-key.pem");
        assert_eq!(
            (key.mode, key.sha256.as_deref(), key.content.as_ref()),
            (0o400, Some(HASH_A), None)
        );
        assert_eq!(
            state.path("/etc/docker/daemon.json").content.as_deref(),
            Some(&b"{}"[..])
        );
        let odd = state.path("/etc/a b|c");
        assert_eq!(
            (odd.group.as_str(), odd.sha256.as_deref(), odd.content),
            ("adm", Some(HASH_EMPTY), Some(Vec::new()))
        );
        assert_eq!(state.path("/etc/link").kind, Some(PathKind::Other));
        assert!(!state.path("/etc/x").exists);
        let facts = &state.facts;
        assert_eq!(
            (facts.os_id.as_str(), facts.os_version.as_str()),
            ("debian", "12")
        );
        assert_eq!(
            facts.docker_exec_start[0][..3],
            ["/usr/sbin/dockerd", "-H", "fd://"]
        );
        assert_eq!(facts.ssh_unit, "ssh.service");
        assert_eq!(facts.sshd_effective["passwordauthentication"], "yes");
        assert_eq!(facts.sshd_drop_ins.len(), 1);
        assert!(!facts.dockerd_can_validate);
        assert_eq!(facts.pending_handlers, ["restart-docker"]);
        assert_eq!(
            facts.docker_unit_files,
            [UnitFile {
                path: "/lib/systemd/system/docker.service".into(),
                text: "[Service]\n".into()
            }]
        );
        assert_eq!(
            facts.docker_env_files,
            [UnitFile {
                path: "/etc/default/docker".into(),
                text: String::new()
            }]
        );
    }

    #[test]
    fn digest_lines_of_odd_names_are_unescaped() {
        for (line, path) in [
            (format!("{HASH_A}  /etc/plain name"), "/etc/plain name"),
            (
                format!("\\{HASH_A}  /etc/back\\\\slash"),
                "/etc/back\\slash",
            ),
            (format!("\\{HASH_A}  /etc/two\\nlines"), "/etc/two\nlines"),
        ] {
            assert_eq!(
                parse_digest_line(&line).unwrap(),
                (path.to_string(), HASH_A.to_string())
            );
        }
        assert!(parse_digest_line("abc  /etc/x").is_err());
    }

    #[test]
    fn cut_short_unreadable_and_changed_outputs_are_errors() {
        assert!(
            parse("@stat\n@sha256\n")
                .unwrap_err()
                .contains("did not finish")
        );
        let err = parse("@stat\nregular file|400|root|root|1|/k\n@unreadable /k\n@facts\n@sshd\n@sshd_status 0\n").unwrap_err();
        assert!(err.starts_with("/k: not readable"), "{err}");
        // Grew from 2 to 3 bytes between stat and cat.
        let err = parse(&format!(
            "@stat\nregular file|644|root|root|2|/c\n@sha256\n{HASH_A}  /c\n@content\n/c\n@blob\ne30K\n@facts\n@sshd\n@sshd_status 0\n"
        ))
        .unwrap_err();
        assert!(err.contains("changed while it was read"), "{err}");
    }

    /// The script itself, on this machine's shell and coreutils, over a
    /// directory holding every kind of path it must tell apart.
    #[test]
    fn the_script_reports_real_files_on_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_string();
        let at = |name: &str| format!("{root}/{name}");
        std::fs::write(at("shown.json"), b"{\"a\": 1}\n").unwrap();
        std::fs::write(at("secret.pem"), b"KEY").unwrap();
        std::fs::write(at("empty"), b"").unwrap();
        std::fs::write(at("odd name|x's"), b"odd").unwrap();
        std::fs::write(
            at("big"),
            vec![b'x'; remote::MAX_CONTENT_BYTES as usize + 1],
        )
        .unwrap();
        std::fs::create_dir(at("dir")).unwrap();
        std::os::unix::fs::symlink(at("shown.json"), at("link")).unwrap();
        // What an interrupted run left beside the managed files.
        std::fs::write(at(".shown.json.dockhand-backup"), b"old").unwrap();
        std::fs::write(at(".secret.pem.dockhand-new-abc"), b"KE").unwrap();
        let names = [
            "shown.json",
            "secret.pem",
            "empty",
            "odd name|x's",
            "big",
            "dir",
            "link",
            "missing",
        ];
        let paths: Vec<(String, bool)> =
            names.iter().map(|n| (at(n), *n == "secret.pem")).collect();
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(remote::gather(&paths, &Layout::HOST, false, true).text)
            .output()
            .unwrap();
        let state = parse(&String::from_utf8_lossy(&output.stdout)).unwrap();
        let shown = state.path(&at("shown.json"));
        assert_eq!(shown.content.as_deref(), Some(&b"{\"a\": 1}\n"[..]));
        assert_eq!(shown.size, 9);
        let secret = state.path(&at("secret.pem"));
        assert_eq!(
            (secret.content, secret.sha256.map(|d| d.len())),
            (None, Some(64))
        );
        assert_eq!(state.path(&at("empty")).content, Some(Vec::new()));
        assert_eq!(
            state.path(&at("odd name|x's")).content.as_deref(),
            Some(&b"odd"[..])
        );
        let big = state.path(&at("big"));
        assert_eq!((big.content, big.sha256.is_some()), (None, true));
        assert_eq!(state.path(&at("dir")).kind, Some(PathKind::Directory));
        let link = state.path(&at("link"));
        assert_eq!((link.kind, link.sha256), (Some(PathKind::Other), None));
        assert!(!state.path(&at("missing")).exists);
        let mut leftovers = state.facts.leftovers.clone();
        leftovers.sort();
        assert_eq!(
            leftovers,
            [
                at(".secret.pem.dockhand-new-abc"),
                at(".shown.json.dockhand-backup")
            ]
        );
    }

    #[test]
    fn a_failing_sshd_t_is_kept_as_an_error() {
        let state = parse("@facts\n@sshd\n/etc/ssh/sshd_config line 3: Bad configuration option\n@sshd_status 255\n").unwrap();
        assert!(state.facts.sshd_effective.is_empty());
        assert!(
            state
                .facts
                .sshd_error
                .unwrap()
                .contains("Bad configuration")
        );
    }
}
