//! Gathering a host's actual state in one round trip: one POSIX shell
//! script, sent on stdin, reports every managed path (metadata, digest, and
//! content unless secret) and the facts the roles need, in a line format
//! that is parsed here. Secret files are only ever digested on the host.

use std::collections::BTreeMap;

use base64::Engine as _;

use crate::core::state::{ActualPath, ActualState, Facts, PathKind, UnitFile};
use crate::error::{Error, Result};
use crate::transport::Transport;

/// Content above this size is not sent (the digest still is).
const MAX_CONTENT_BYTES: u64 = 1 << 20;

/// The script's fixed part: a helper that reports one path, and the facts.
const PRELUDE: &str = r#"report_path() {
  printf '@path %s\n' "$1"
  if [ ! -e "$1" ] && [ ! -L "$1" ]; then echo 'missing'; return; fi
  if [ -L "$1" ]; then kind=other; elif [ -d "$1" ]; then kind=directory; elif [ -f "$1" ]; then kind=file; else kind=other; fi
  st=$(stat -c '%a %U %G %s' -- "$1") || { echo 'error cannot stat'; return; }
  echo "stat $kind $st"
  if [ "$kind" = file ]; then
    if [ -r "$1" ]; then
      printf 'sha256 '; sha256sum < "$1"
      if [ "$2" = show ] && [ "${st##* }" -le MAX_CONTENT ]; then
        printf 'content '; base64 -w0 < "$1"; echo
      fi
    else
      echo 'error not readable (run as root, or set become: true)'
    fi
  fi
}
"#;

const FACTS: &str = r#"echo '@facts'
. /etc/os-release 2>/dev/null; printf 'os %s %s\n' "${ID:-unknown}" "${VERSION_ID:-unknown}"
dockerd_bin=$(command -v dockerd || true)
printf 'dockerd %s\n' "$dockerd_bin"
docker_show=$(systemctl show docker.service -p ExecStart -p DropInPaths -p FragmentPath -p EnvironmentFiles -p ActiveState 2>/dev/null)
drop_ins=; fragment=; env_files=; docker_state=
while IFS= read -r l; do
  case $l in
    ExecStart=*argv*) l=${l#*argv\[\]=}; printf 'exec_start %s\n' "${l%% ;*}" ;;
    DropInPaths=*) drop_ins=${l#DropInPaths=} ;;
    FragmentPath=*) fragment=${l#FragmentPath=} ;;
    EnvironmentFiles=/*) l=${l#EnvironmentFiles=}; env_files="$env_files ${l%% (ignore_errors*}" ;;
    ActiveState=*) docker_state=${l#ActiveState=} ;;
  esac
done <<DOCKER_SHOW
$docker_show
DOCKER_SHOW
for f in $drop_ins; do case $f in /*) printf 'docker_drop_in %s\n' "$f" ;; esac; done
for f in $fragment $drop_ins; do
  [ -f "$f" ] && [ -r "$f" ] && { b=$(base64 -w0 -- "$f"); printf 'docker_unit_file %s %s\n' "${b:-=}" "$f"; }
done
for f in $env_files; do
  [ -f "$f" ] && [ -r "$f" ] && { b=$(base64 -w0 -- "$f"); printf 'docker_env_file %s %s\n' "${b:-=}" "$f"; }
done
printf 'docker_active %s\n' "${docker_state:-inactive}"
ssh_unit=; ssh_state=
while IFS= read -r l; do
  case $l in Id=*) ssh_unit=${l#Id=} ;; ActiveState=*) ssh_state=${l#ActiveState=} ;; esac
done <<SSH_SHOW
$(systemctl show -p Id -p ActiveState sshd.service 2>/dev/null)
SSH_SHOW
printf 'ssh_unit %s\n' "${ssh_unit:-ssh.service}"
printf 'ssh_active %s\n' "${ssh_state:-inactive}"
for f in /etc/ssh/sshd_config.d/*.conf; do [ -e "$f" ] && printf 'sshd_drop_in %s\n' "$f"; done
printf 'ssh_kex %s\n' "$(ssh -Q kex 2>/dev/null | tr '\n' ' ')"
for f in /etc/ssh/ssh_host_*_key; do [ -e "$f" ] && printf 'ssh_host_key %s\n' "$f"; done
dockerd_packaged=
case $dockerd_bin in /usr/bin/dockerd|/usr/sbin/dockerd)
  pkgs=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' docker.io docker-ce moby-engine 2>/dev/null)
  while read -r status version; do
    case $status in ii) printf 'dockerd_package %s\n' "$version"; dockerd_packaged=yes ;; esac
  done <<PKGS
$pkgs
PKGS
;; esac
if [ -z "$dockerd_packaged" ] && [ -n "$dockerd_bin" ] && dockerd --help 2>/dev/null | grep -q -- '--validate'; then echo 'dockerd_validate yes'; fi
[ -f PENDING ] && sort -u PENDING | sed 's/^/pending_handler /'
echo '@sshd'
sshd -T 2>&1; printf '@sshd_status %s\n' "$?"
"#;

pub use super::script::quote as shell_quote;

/// The whole script for these paths (`true`: secret, never shown).
pub fn script(paths: &[(String, bool)]) -> String {
    let mut text = super::script::preamble().replace("set -u; ", "");
    text.push_str(&PRELUDE.replace("MAX_CONTENT", &MAX_CONTENT_BYTES.to_string()));
    for (path, secret) in paths {
        text.push_str(&format!(
            "report_path {} {}\n",
            shell_quote(path),
            if *secret { "digest" } else { "show" }
        ));
    }
    text.push_str(&FACTS.replace("PENDING", super::apply::PENDING_HANDLERS));
    text
}

/// The command that runs the script read from stdin, through sudo when
/// `become` is set (`-n`: never wait for a password prompt).
pub fn command(become_root: bool) -> &'static str {
    super::script::from_stdin(become_root)
}

/// Runs the gather script on a host.
pub async fn gather(
    transport: &impl Transport,
    paths: &[(String, bool)],
    become_root: bool,
) -> Result<ActualState> {
    let output = transport
        .exec(command(become_root), script(paths).as_bytes())
        .await?;
    let stderr = output.stderr_text();
    if become_root && !output.success() && stderr.contains("sudo") {
        return Err(Error::Remote {
            host: transport.host().to_string(),
            step: "gather (sudo)".into(),
            status: output.status.to_string(),
            stderr: format!("{} (become needs passwordless sudo)", stderr.trim()),
        });
    }
    parse(&output.stdout_text()).map_err(|reason| Error::Remote {
        host: transport.host().to_string(),
        step: "gather".into(),
        status: output.status.to_string(),
        stderr: format!("{reason}; stderr: {}", stderr.trim()),
    })
}

/// Parses the script's output.
pub fn parse(text: &str) -> std::result::Result<ActualState, String> {
    let mut state = ActualState::default();
    let mut current: Option<(String, ActualPath)> = None;
    let mut section = "paths";
    let mut sshd_lines = Vec::new();
    let mut sshd_status = None;
    let mut saw_facts = false;
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("@path ") {
            if let Some((p, a)) = current.take() {
                state.paths.insert(p, a);
            }
            current = Some((path.to_string(), ActualPath::default()));
            continue;
        }
        if line == "@facts" {
            saw_facts = true;
            section = "facts";
            continue;
        }
        if line == "@sshd" {
            section = "sshd";
            continue;
        }
        if let Some(status) = line.strip_prefix("@sshd_status ") {
            sshd_status = status.trim().parse::<i32>().ok();
            continue;
        }
        match section {
            "paths" => {
                let Some((path, actual)) = current.as_mut() else {
                    return Err(format!("unexpected line before any path: {line:?}"));
                };
                parse_path_line(path, actual, line)?;
            }
            "facts" => parse_fact_line(&mut state.facts, line),
            _ => sshd_lines.push(line),
        }
    }
    if let Some((p, a)) = current.take() {
        state.paths.insert(p, a);
    }
    if !saw_facts || sshd_status.is_none() {
        return Err("the gather script did not finish (output cut short)".into());
    }
    if sshd_status == Some(0) {
        state.facts.sshd_effective = sshd_settings(sshd_lines);
    } else {
        state.facts.sshd_error = Some(sshd_lines.join("\n"));
    }
    Ok(state)
}

/// `sshd -T` output as keyword → value (keywords come lower-case).
pub fn sshd_settings<'a>(lines: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, String> {
    lines
        .into_iter()
        .filter_map(|line| {
            line.split_once(' ')
                .map(|(key, value)| (key.to_string(), value.to_string()))
        })
        .collect()
}

fn parse_path_line(
    path: &str,
    actual: &mut ActualPath,
    line: &str,
) -> std::result::Result<(), String> {
    let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
    match tag {
        "missing" => actual.exists = false,
        "stat" => {
            let fields: Vec<&str> = rest.split(' ').collect();
            let [kind, mode, owner, group, size] = fields[..] else {
                return Err(format!("{path}: bad stat line {line:?}"));
            };
            actual.exists = true;
            actual.kind = Some(match kind {
                "file" => PathKind::File,
                "directory" => PathKind::Directory,
                _ => PathKind::Other,
            });
            // %a omits leading zeros and may include set-id bits.
            actual.mode =
                u32::from_str_radix(mode, 8).map_err(|_| format!("{path}: bad mode {mode:?}"))?;
            actual.owner = owner.to_string();
            actual.group = group.to_string();
            actual.size = size.parse().unwrap_or(0);
        }
        // `sha256sum` read the file on stdin: `HASH  -`.
        "sha256" => actual.sha256 = Some(rest.split_whitespace().next().unwrap_or("").to_string()),
        "content" => {
            actual.content = Some(
                base64::engine::general_purpose::STANDARD
                    .decode(rest.trim())
                    .map_err(|e| format!("{path}: bad content encoding: {e}"))?,
            )
        }
        "error" => return Err(format!("{path}: {rest}")),
        _ => return Err(format!("{path}: unexpected line {line:?}")),
    }
    Ok(())
}

/// Whether the packaged dockerd of this Debian version has `--validate`
/// (23.0 and later). Asking dpkg costs a few milliseconds of the host's
/// CPU; starting the Go binary for its `--help` costs about 45.
fn package_validates(version: &str) -> bool {
    let without_epoch = version.split_once(':').map_or(version, |(_, v)| v);
    without_epoch
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 23)
}

/// `BASE64 PATH` (`=` for an empty file) as a unit file.
fn unit_file(rest: &str) -> Option<UnitFile> {
    let (encoded, path) = rest.split_once(' ')?;
    let bytes = if encoded == "=" {
        Vec::new()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?
    };
    Some(UnitFile {
        path: path.to_string(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

fn parse_fact_line(facts: &mut Facts, line: &str) {
    let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    match tag {
        "os" => {
            let (id, version) = rest.split_once(' ').unwrap_or((rest, ""));
            facts.os_id = id.to_string();
            facts.os_version = version.to_string();
        }
        "dockerd" if !rest.is_empty() => facts.dockerd_path = Some(rest.to_string()),
        "exec_start" => facts
            .docker_exec_start
            .push(rest.split_whitespace().map(String::from).collect()),
        "docker_drop_in" => facts.docker_drop_ins.push(rest.to_string()),
        "docker_unit_file" => facts.docker_unit_files.extend(unit_file(rest)),
        "docker_env_file" => facts.docker_env_files.extend(unit_file(rest)),
        "docker_active" => facts.docker_active = rest.to_string(),
        "ssh_unit" => facts.ssh_unit = rest.to_string(),
        "ssh_active" => facts.ssh_active = rest.to_string(),
        "sshd_drop_in" => facts.sshd_drop_ins.push(rest.to_string()),
        "ssh_kex" => facts.ssh_kex = rest.split_whitespace().map(String::from).collect(),
        "ssh_host_key" => facts.ssh_host_keys.push(rest.to_string()),
        "dockerd_validate" => facts.dockerd_can_validate = true,
        "dockerd_package" => facts.dockerd_can_validate |= package_validates(rest),
        "pending_handler" => facts.pending_handlers.push(rest.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn quoting_survives_any_path() {
        assert_eq!(shell_quote("/etc/a b"), "'/etc/a b'");
        assert_eq!(shell_quote("/it's"), "'/it'\\''s'");
    }

    #[test]
    fn secret_paths_are_only_digested() {
        let text = script(&[("/k.pem".into(), true), ("/c.pem".into(), false)]);
        assert!(text.contains("report_path '/k.pem' digest\n"));
        assert!(text.contains("report_path '/c.pem' show\n"));
    }

    #[test]
    fn output_is_parsed() {
        let output = "@path /etc/docker/tls\nstat directory 755 root root 4096\n\
                      @path /etc/docker/tls/server-key.pem\nstat file 400 root root 227\nsha256 abc\n\
                      @path /etc/docker/daemon.json\nstat file 644 root root 2\nsha256 def\ncontent e30=\n\
                      @path /etc/x\nmissing\n\
                      @facts\nos debian 12\ndockerd /usr/sbin/dockerd\n\
                      exec_start /usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\n\
                      docker_active active\nssh_unit ssh.service\nssh_active active\n\
                      sshd_drop_in /etc/ssh/sshd_config.d/50-cloud-init.conf\n\
                      docker_unit_file W1NlcnZpY2VdCg== /lib/systemd/system/docker.service\n\
                      docker_env_file = /etc/default/docker\n\
                      pending_handler restart-docker\n\
                      @sshd\npasswordauthentication yes\npermitrootlogin without-password\n@sshd_status 0\n";
        let state = parse(output).unwrap();
        let dir = state.path("/etc/docker/tls");
        assert_eq!((dir.kind, dir.mode), (Some(PathKind::Directory), 0o755));
        let key = state.path("/etc/docker/tls/server-key.pem");
        assert_eq!(
            (key.mode, key.sha256.as_deref(), key.content.as_ref()),
            (0o400, Some("abc"), None)
        );
        assert_eq!(
            state.path("/etc/docker/daemon.json").content.as_deref(),
            Some(&b"{}"[..])
        );
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
    fn cut_short_and_unreadable_outputs_are_errors() {
        assert!(
            parse("@path /x\nmissing\n")
                .unwrap_err()
                .contains("did not finish")
        );
        let err = parse("@path /k\nstat file 400 root root 1\nerror not readable (run as root, or set become: true)\n@facts\n@sshd\n@sshd_status 0\n").unwrap_err();
        assert!(err.starts_with("/k: not readable"), "{err}");
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
