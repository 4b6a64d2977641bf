//! The systemd drop-in that starts dockerd for dockhand, built from what
//! the host's own unit files say, and the words plan uses to explain it.
//!
//! dockerd refuses to start when a setting is given both as a flag and in
//! daemon.json, and the packaged unit passes `-H fd://` while daemon.json
//! gets `hosts`. So the drop-in clears ExecStart and starts the same
//! dockerd with the same options, less every `-H` and every option that
//! clashes with a daemon.json key. Options the unit passes through its
//! environment (`$DOCKER_OPTS` from `/etc/default/docker`) are kept as the
//! variable when none of them clashes; when one does, the others are
//! written into the drop-in and the clashing one is dropped. Every option
//! dropped is named in a note with the file it came from and what wins.
//!
//! The command line is read from the unit files *without* dockhand's own
//! drop-in, so a converged host gives the same drop-in again and the notes
//! still say where each part came from.

use std::collections::BTreeSet;

use crate::core::roles::docker::flags;
use crate::core::roles::docker::unit::{self, ServiceSettings, UnitFile};
use crate::core::state::Facts;
use crate::core::{file_name, mask_credentials};

/// First line of every file dockhand writes whole.
pub const MANAGED: &str = "# Managed by dockhand; changes made here are overwritten.\n";

/// The drop-in and what plan says about it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Override {
    pub text: String,
    /// The command dockerd will run, variables expanded: what
    /// `dockerd --validate` must accept together with daemon.json.
    pub command: Vec<String>,
    /// What the drop-in keeps, drops or closes, and why.
    pub notes: Vec<String>,
    /// What the user should look at: settings that would undo the drop-in.
    pub warnings: Vec<String>,
}

/// What the drop-in is built for: where it goes, and the daemon.json
/// dockhand writes (its path, its keys, its listeners).
pub struct Target<'a> {
    pub own_path: &'a str,
    pub daemon_json: &'a str,
    pub daemon_keys: &'a BTreeSet<String>,
    pub hosts: &'a [String],
}

/// Builds the drop-in.
pub fn build(facts: &Facts, target: &Target) -> Result<Override, String> {
    let mut out = Override::default();
    let base_files = base_files(facts, target.own_path, &mut out);
    let settings = ServiceSettings::read(&base_files);
    let (words, source) = base_command(facts, &settings, &base_files)?;
    let Some((program, args)) = words.split_first() else {
        return Err("the docker unit's ExecStart names no program".into());
    };
    let variables = settings.variables(&|path| {
        facts
            .docker_env_files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.text.clone())
    });
    let source_of = |name: &str| {
        variables
            .iter()
            .find(|v| v.value.0 == name)
            .map(|v| v.source.clone())
            .unwrap_or_else(|| "nowhere (unset)".into())
    };
    let expanded = unit::expand(args, &variables);
    let dropped = drop_clashes(target, &expanded, &source, &source_of, &mut out);
    let kept = rewrite(
        program,
        args,
        &expanded,
        &dropped,
        target.own_path,
        &source_of,
        &mut out,
    )?;
    out.text = format!(
        "{MANAGED}# dockerd takes its listeners and TLS settings from daemon.json and will\n\
         # not start when a flag sets them too: the empty ExecStart= clears the\n\
         # command line below, which is repeated without them. It comes from\n\
         # {source}\n\
         [Service]\nExecStart=\nExecStart={}\n",
        kept.join(" ")
    );
    Ok(out)
}

/// The unit files the drop-in is built from: all but the one at
/// dockhand's path, which is never part of what it is built from (else a
/// second run would build from the first one's output). One there that
/// dockhand did not write (`systemctl edit docker` makes override.conf) is
/// replaced whole: plan says what goes with it. A later drop-in that sets
/// ExecStart would replace dockhand's command line: plan warns.
fn base_files<'a>(facts: &'a Facts, own_path: &str, out: &mut Override) -> Vec<&'a UnitFile> {
    if let Some(foreign) = facts
        .docker_unit_files
        .iter()
        .find(|f| f.path == own_path && !f.text.starts_with(MANAGED.trim_end()))
    {
        out.warnings.push(foreign_drop_in(foreign));
    }
    let base_files: Vec<&UnitFile> = facts
        .docker_unit_files
        .iter()
        .filter(|f| f.path != own_path)
        .collect();
    let own_name = file_name(own_path);
    for file in &base_files {
        let later = file.path.contains(".service.d/") && file_name(&file.path) > own_name;
        if later && ServiceSettings::read(&[file]).exec_start.is_some() {
            out.warnings.push(format!(
                "{} sets ExecStart and is read after {own_path}: its command line replaces dockhand's \
                 (remove its ExecStart, or name dockhand's drop-in so it sorts last)",
                file.path
            ));
        }
    }
    base_files
}

/// The command line the drop-in starts from, and where it comes from: the
/// units' ExecStart; the effective one when no unit file could be read;
/// else dockerd on PATH.
fn base_command(
    facts: &Facts,
    settings: &ServiceSettings,
    base_files: &[&UnitFile],
) -> Result<(Vec<String>, String), String> {
    Ok(
        match (&settings.exec_start, facts.docker_exec_start.last()) {
            (Some(exec), _) => (exec.value.clone(), exec.source.clone()),
            (None, Some(argv)) if base_files.is_empty() => {
                (argv.clone(), "the docker unit".to_string())
            }
            _ => match &facts.dockerd_path {
                Some(path) => (vec![path.clone()], "PATH".to_string()),
                None => {
                    return Err(
                    "dockerd is not installed (no docker.service ExecStart and no dockerd on PATH)"
                        .into(),
                );
                }
            },
        },
    )
}

/// What goes from the command line: the words of every option that
/// clashes with daemon.json (or names another config file), and the
/// variables that, holding such words, can no longer be passed whole.
struct Dropped {
    words: BTreeSet<usize>,
    variables: BTreeSet<String>,
}

fn drop_clashes(
    target: &Target,
    expanded: &[unit::ExpandedWord],
    source: &str,
    source_of: &dyn Fn(&str) -> String,
    out: &mut Override,
) -> Dropped {
    let texts: Vec<String> = expanded.iter().map(|w| w.text.clone()).collect();
    let options = flags::options(&texts);
    let mut words = BTreeSet::new();
    let mut listeners = Vec::new();
    for option in &options {
        let variable = expanded[option.first].variable.clone();
        let origin = match &variable {
            Some(name) => format!("${name} from {}", source_of(name)),
            None => format!("ExecStart in {source}"),
        };
        let range = option.first..option.first + option.words.len();
        if option.name == "config-file" && option.value() != Some(target.daemon_json) {
            words.extend(range);
            out.notes.push(format!(
                "`{}` ({origin}) is dropped: dockerd must read the daemon.json dockhand writes, {}",
                option.text(),
                target.daemon_json
            ));
            continue;
        }
        let clash = option
            .daemon_key()
            .filter(|key| target.daemon_keys.contains(*key));
        let Some(key) = clash else { continue };
        words.extend(range);
        if key == "hosts" {
            let value = option.value().unwrap_or("");
            listeners.push((value.to_string(), origin.clone()));
        } else {
            out.notes.push(format!(
                "`{}` ({origin}) is dropped: daemon.json sets `{key}`, and dockerd refuses to start with both; daemon.json wins",
                mask_credentials(&option.text())
            ));
        }
    }
    let tls_on_command_line = options
        .iter()
        .any(|o| o.name == "tlsverify" && !o.text().ends_with("=false"));
    for (value, origin) in &listeners {
        if value.starts_with("tcp://") && !tls_on_command_line {
            out.notes.push(format!(
                "the plain-TCP listener {value} ({origin}) is closed: it served the Docker API without TLS, \
                 so anyone who reached it was root on the host; daemon.json `hosts` now lists {}",
                target.hosts.join(", ")
            ));
        } else {
            out.notes.push(format!(
                "`-H {value}` ({origin}) is cleared: daemon.json `hosts` lists {}",
                target.hosts.join(", ")
            ));
        }
    }
    // A variable with any dropped word in it can no longer be passed whole.
    let variables = words
        .iter()
        .filter_map(|index| expanded[*index].variable.clone())
        .collect();
    Dropped { words, variables }
}

/// The new command line: literal options as written, variables kept as
/// references unless they had to be written out. Returns the unit's words;
/// `out.command` gets the words dockerd will see.
fn rewrite(
    program: &str,
    args: &[String],
    expanded: &[unit::ExpandedWord],
    dropped: &Dropped,
    own_path: &str,
    source_of: &dyn Fn(&str) -> String,
    out: &mut Override,
) -> Result<Vec<String>, String> {
    let mut kept = vec![program.to_string()];
    let mut command = vec![program.to_string()];
    for (position, word) in args.iter().enumerate() {
        let name = unit::whole_variable(word).or_else(|| unit::braced_variable(word));
        let own: Vec<usize> = (0..expanded.len())
            .filter(|i| expanded[*i].source == position)
            .collect();
        match name {
            Some(name) if !dropped.variables.contains(name) => {
                kept.push(word.clone());
                command.extend(own.iter().map(|i| expanded[*i].text.clone()));
                if !own.is_empty() {
                    let values: Vec<String> = own
                        .iter()
                        .map(|i| mask_credentials(&expanded[*i].text))
                        .collect();
                    out.notes.push(format!(
                        "keeps ${name} from {} (`{}`)",
                        source_of(name),
                        values.join(" ")
                    ));
                }
            }
            Some(name) => {
                let left: Vec<&str> = own
                    .iter()
                    .filter(|i| !dropped.words.contains(*i))
                    .map(|i| expanded[*i].text.as_str())
                    .collect();
                let shown: Vec<String> = left.iter().map(|w| mask_credentials(w)).collect();
                if shown.iter().zip(&left).any(|(shown, word)| shown != word) {
                    // Written out, it would land in a world-readable unit
                    // file and in plan's diff.
                    return Err(format!(
                        "${name} from {} holds an option that clashes with daemon.json, so it would have to be written into {own_path}, but it also holds a password in a URL, which dockhand does not copy there: remove the clashing option from ${name}",
                        source_of(name)
                    ));
                }
                kept.extend(left.iter().map(|w| systemd_quote(w)));
                command.extend(left.iter().map(|w| w.to_string()));
                out.notes.push(format!(
                    "${name} from {} cannot be passed whole (an option in it clashes with daemon.json); {} — \
                     later edits of ${name} take effect at the next apply",
                    source_of(name),
                    if left.is_empty() {
                        "nothing else in it is kept".to_string()
                    } else {
                        format!("its other options (`{}`) are written into {own_path}", shown.join(" "))
                    }
                ));
            }
            None => {
                if !own.iter().any(|i| dropped.words.contains(i)) {
                    kept.push(quote_word(word));
                    command.extend(own.iter().map(|i| expanded[*i].text.clone()));
                }
            }
        }
    }
    out.command = command;
    Ok(kept)
}

/// What plan says of a drop-in at dockhand's path that dockhand did not
/// write: it is replaced whole, and what it set goes with it.
fn foreign_drop_in(file: &UnitFile) -> String {
    let show = |text: &str| {
        text.split(' ')
            .map(mask_credentials)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let settings: Vec<String> = unit::service_assignments(&file.text)
        .into_iter()
        .filter(|(key, value)| !(key == "ExecStart" && value.is_empty()))
        .map(|(key, value)| format!("`{key}={}`", show(&value)))
        .collect();
    let lost = if settings.is_empty() {
        "nothing it sets in [Service] is lost".to_string()
    } else {
        format!("{} go with it", settings.join(", "))
    };
    format!(
        "{} was not written by dockhand and is replaced whole: {lost}; to keep a setting, move it to a drop-in of another name (such as 10-local.conf) first",
        file.path
    )
}

/// Quotes a value for an ExecStart line when it needs it; its `$` is
/// literal (a value from an environment file is not expanded again).
fn systemd_quote(word: &str) -> String {
    quote_word(&word.replace('$', "$$"))
}

/// Quotes a word of the unit's own command line again, as it was written
/// there: its `${NAME}` still expands.
fn quote_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%${}".contains(c))
    {
        word.to_string()
    } else {
        format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::roles::docker::unit::UnitFile;

    const OURS: &str = "/etc/systemd/system/docker.service.d/override.conf";
    const PACKAGED: &str = "[Service]\nEnvironmentFile=-/etc/default/docker\n\
        ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\n";

    fn facts(files: &[(&str, &str)], env: &[(&str, &str)]) -> Facts {
        Facts {
            dockerd_path: Some("/usr/sbin/dockerd".into()),
            docker_unit_files: files
                .iter()
                .map(|(path, text)| UnitFile {
                    path: path.to_string(),
                    text: text.to_string(),
                })
                .collect(),
            docker_env_files: env
                .iter()
                .map(|(path, text)| UnitFile {
                    path: path.to_string(),
                    text: text.to_string(),
                })
                .collect(),
            ..Facts::default()
        }
    }

    fn managed_keys() -> BTreeSet<String> {
        [
            "hosts",
            "tls",
            "tlsverify",
            "tlscacert",
            "tlscert",
            "tlskey",
            "icc",
            "live-restore",
        ]
        .map(String::from)
        .into()
    }

    fn hosts() -> Vec<String> {
        vec![
            "unix:///var/run/docker.sock".into(),
            "tcp://0.0.0.0:2376".into(),
        ]
    }

    fn target() -> Target<'static> {
        use std::sync::LazyLock;
        static KEYS: LazyLock<BTreeSet<String>> = LazyLock::new(managed_keys);
        static HOSTS: LazyLock<Vec<String>> = LazyLock::new(hosts);
        Target {
            own_path: OURS,
            daemon_json: "/etc/docker/daemon.json",
            daemon_keys: &KEYS,
            hosts: &HOSTS,
        }
    }

    fn exec_line(text: &str) -> &str {
        text.lines().rfind(|l| l.starts_with("ExecStart=")).unwrap()
    }

    #[test]
    fn a_packaged_unit_keeps_its_flags_and_docker_opts() {
        let facts = facts(
            &[("/lib/systemd/system/docker.service", PACKAGED)],
            &[("/etc/default/docker", "DOCKER_OPTS=\"--dns 192.0.2.53\"\n")],
        );
        let built = build(&facts, &target()).unwrap();
        assert_eq!(
            exec_line(&built.text),
            "ExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock $DOCKER_OPTS"
        );
        assert!(built.text.starts_with(MANAGED) && built.text.contains("\nExecStart=\n"));
        assert_eq!(
            built.command,
            [
                "/usr/sbin/dockerd",
                "--containerd=/run/containerd/containerd.sock",
                "--dns",
                "192.0.2.53"
            ]
        );
        assert!(
            built
                .notes
                .iter()
                .any(|n| n.contains("-H fd://") && n.contains("cleared")),
            "{:?}",
            built.notes
        );
        assert!(
            built
                .notes
                .iter()
                .any(|n| n == "keeps $DOCKER_OPTS from /etc/default/docker (`--dns 192.0.2.53`)"),
            "{:?}",
            built.notes
        );
        assert!(built.warnings.is_empty());
        // The packaged file alone, without DOCKER_OPTS: nothing to keep.
        let bare = build(
            &self::facts(&[("/lib/systemd/system/docker.service", PACKAGED)], &[]),
            &target(),
        )
        .unwrap();
        assert_eq!(
            bare.command,
            [
                "/usr/sbin/dockerd",
                "--containerd=/run/containerd/containerd.sock"
            ]
        );
    }

    #[test]
    fn a_docker_machine_drop_in_has_its_plain_listener_closed_and_options_kept() {
        let machine = "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H tcp://0.0.0.0:2375 -H unix:///var/run/docker.sock --storage-driver overlay2 --label \"provider=generic lab\" $DOCKER_OPTS\nEnvironment=\n";
        let facts = facts(
            &[
                ("/lib/systemd/system/docker.service", PACKAGED),
                (
                    "/etc/systemd/system/docker.service.d/10-machine.conf",
                    machine,
                ),
            ],
            &[("/etc/default/docker", "DOCKER_OPTS=\"--dns 192.0.2.53\"\n")],
        );
        let built = build(&facts, &target()).unwrap();
        assert_eq!(
            exec_line(&built.text),
            "ExecStart=/usr/sbin/dockerd --storage-driver overlay2 --label \"provider=generic lab\" $DOCKER_OPTS"
        );
        let closed = built
            .notes
            .iter()
            .find(|n| n.contains("tcp://0.0.0.0:2375"))
            .unwrap();
        assert!(
            closed.contains("plain-TCP listener")
                && closed.contains("10-machine.conf")
                && closed.contains("is closed"),
            "{closed}"
        );
        assert!(
            built
                .notes
                .iter()
                .any(|n| n.contains("keeps $DOCKER_OPTS") && n.contains("--dns 192.0.2.53"))
        );
        assert!(built.warnings.is_empty(), "{:?}", built.warnings);
    }

    #[test]
    fn a_clashing_option_in_the_environment_is_dropped_and_the_rest_written_out() {
        let facts = facts(
            &[("/lib/systemd/system/docker.service", PACKAGED)],
            &[(
                "/etc/default/docker",
                "DOCKER_OPTS=\"-H tcp://0.0.0.0:2375 --icc=true --dns 192.0.2.53 --label 'a b'\"\n",
            )],
        );
        let built = build(&facts, &target()).unwrap();
        assert_eq!(
            exec_line(&built.text),
            "ExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock --dns 192.0.2.53 --label \"a b\""
        );
        let notes = built.notes.join("\n");
        assert!(notes.contains("`--icc=true` ($DOCKER_OPTS from /etc/default/docker) is dropped: daemon.json sets `icc`"), "{notes}");
        assert!(notes.contains("the plain-TCP listener tcp://0.0.0.0:2375 ($DOCKER_OPTS from /etc/default/docker) is closed"), "{notes}");
        assert!(
            notes.contains("$DOCKER_OPTS from /etc/default/docker cannot be passed whole"),
            "{notes}"
        );
        assert!(
            !built
                .command
                .iter()
                .any(|w| w.contains("2375") || w.contains("icc"))
        );
    }

    #[test]
    fn passwords_in_urls_are_never_shown() {
        for (word, shown) in [
            (
                "--registry-mirror=https://ops:s3cret@mirror.invalid/v2",
                "--registry-mirror=https://ops:***@mirror.invalid/v2",
            ),
            ("http://proxy.invalid:3128", "http://proxy.invalid:3128"),
            ("--dns", "--dns"),
        ] {
            assert_eq!(mask_credentials(word), shown);
        }
        let facts = facts(
            &[("/lib/systemd/system/docker.service", PACKAGED)],
            &[(
                "/etc/default/docker",
                "DOCKER_OPTS=\"--registry-mirror https://ops:s3cret@mirror.invalid\"\n",
            )],
        );
        let built = build(&facts, &target()).unwrap();
        let notes = built.notes.join("\n");
        assert!(
            !notes.contains("s3cret") && notes.contains("https://ops:***@mirror.invalid"),
            "{notes}"
        );
    }

    #[test]
    fn a_variable_with_any_dropped_word_is_written_out_and_config_file_goes() {
        let unit = "[Service]\nEnvironmentFile=-/etc/default/docker\n\
            ExecStart=/usr/bin/dockerd -H fd:// -H ${DOCKER_HOST} --config-file /etc/docker/other.json $A ${A}\n";
        let facts = facts(
            &[("/lib/systemd/system/docker.service", unit)],
            &[(
                "/etc/default/docker",
                "DOCKER_HOST=tcp://0.0.0.0:2375\nA=--debug\n",
            )],
        );
        let built = build(&facts, &target()).unwrap();
        assert_eq!(exec_line(&built.text), "ExecStart=/usr/bin/dockerd $A ${A}");
        assert!(
            built
                .notes
                .iter()
                .any(|n| n.contains("`--config-file /etc/docker/other.json`")
                    && n.contains("is dropped")),
            "{:?}",
            built.notes
        );
        assert!(
            built
                .notes
                .iter()
                .any(|n| n.contains("tcp://0.0.0.0:2375") && n.contains("is closed")),
            "{:?}",
            built.notes
        );
    }

    #[test]
    fn a_converged_host_gives_the_same_drop_in_again() {
        let first = build(
            &facts(&[("/lib/systemd/system/docker.service", PACKAGED)], &[]),
            &target(),
        )
        .unwrap();
        let again = build(
            &facts(
                &[
                    ("/lib/systemd/system/docker.service", PACKAGED),
                    (OURS, &first.text),
                ],
                &[],
            ),
            &target(),
        )
        .unwrap();
        assert_eq!(first.text, again.text);
        assert!(again.warnings.is_empty());
    }

    #[test]
    fn foreign_and_later_drop_ins_are_warned_about() {
        let foreign = "[Service]\nEnvironment=HTTP_PROXY=http://ops:s3cret@proxy.invalid:3128\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// --data-root /srv/docker\n";
        let later = "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd://\n";
        let built = build(
            &facts(
                &[
                    ("/lib/systemd/system/docker.service", PACKAGED),
                    (OURS, foreign),
                    ("/etc/systemd/system/docker.service.d/zz-late.conf", later),
                ],
                &[],
            ),
            &target(),
        )
        .unwrap();
        assert_eq!(built.warnings.len(), 2, "{:?}", built.warnings);
        assert!(built.warnings[0].contains("was not written by dockhand and is replaced whole: `Environment=HTTP_PROXY=http://ops:***@proxy.invalid:3128`, `ExecStart=/usr/bin/dockerd -H fd:// --data-root /srv/docker` go with it"), "{}", built.warnings[0]);
        // Built without the replaced file, as every later run will be
        // (here the later drop-in's command line is the base).
        assert_eq!(exec_line(&built.text), "ExecStart=/usr/sbin/dockerd");
        assert!(built.warnings[1].contains("zz-late.conf sets ExecStart and is read after"));
    }

    #[test]
    fn without_unit_files_the_effective_command_or_path_is_used() {
        let effective = Facts {
            docker_exec_start: vec![
                "/usr/bin/dockerd -H fd:// --debug"
                    .split(' ')
                    .map(String::from)
                    .collect(),
            ],
            ..Facts::default()
        };
        let built = build(&effective, &target()).unwrap();
        assert_eq!(exec_line(&built.text), "ExecStart=/usr/bin/dockerd --debug");
        let from_path = build(
            &Facts {
                dockerd_path: Some("/opt/dockerd".into()),
                ..Facts::default()
            },
            &target(),
        )
        .unwrap();
        assert_eq!(exec_line(&from_path.text), "ExecStart=/opt/dockerd");
        let none = build(&Facts::default(), &target()).unwrap_err();
        assert!(none.contains("dockerd is not installed"));
    }
}
