//! What to do on one host, from its plan: the directories and files to
//! write (each with the temp name it is staged under), the modes and owners
//! to change in place and what they were, the checks, the handlers, and
//! the sshd dead-man switch. Pure: the scripts of `remote` carry it out.

use base64::Engine as _;

use crate::core::input::playbook::Handler;
use crate::core::plan::{ContentChange, HostPlan};
use crate::core::roles::{Check, Content, Resources};

/// Prefix of staged temp files and suffix of backups, both hidden.
pub const TEMP_MARK: &str = ".dockhand-new-";
pub const BACKUP_MARK: &str = ".dockhand-backup";

/// One file to write.
#[derive(Debug, Clone)]
pub struct FileWrite {
    pub path: String,
    pub temp: String,
    pub content: Vec<u8>,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub validate: Option<Check>,
    /// A secret's check never has its output shown: it could quote the
    /// secret.
    pub secret: bool,
    /// What validation checks instead of the staged file, when the file
    /// names other files of this write (daemon.json names the TLS files):
    /// a private temp copy that names their staged versions, so the check
    /// sees the very files that will be used before any is in place.
    pub check_copy: Option<(String, Vec<u8>)>,
}

/// What to do on one host.
#[derive(Debug, Clone, Default)]
pub struct Work {
    pub directories: Vec<(String, u32, String, String)>,
    /// Directories this apply creates: a rollback removes them again.
    pub created_directories: Vec<String>,
    pub files: Vec<FileWrite>,
    /// Files whose mode/owner/group alone change (no new content).
    pub attributes: Vec<(String, u32, String, String)>,
    /// What a rollback puts back on paths whose mode, owner or group this
    /// apply changes in place (files and existing directories).
    pub previous_attributes: Vec<(String, u32, String, String)>,
    pub handlers: Vec<Handler>,
    /// Accounts to put in the `docker` group (taken out again by a rollback).
    pub docker_group_additions: Vec<String>,
    /// Run after the renames; a failure rolls back.
    pub post_checks: Vec<(String, Check)>,
    pub ssh_unit: String,
    /// The sshd dead-man switch, when this apply reloads ssh with a new
    /// drop-in.
    pub sshd_switch: Option<SshdSwitch>,
    /// daemon.json's path and an interim document that turns live-restore
    /// on, put in place and reloaded before the renames, so docker's
    /// restart stops no running container.
    pub live_restore_first: Option<(String, String)>,
}

/// A transient systemd timer, armed before ssh is reloaded (or the fence
/// loaded), that puts the previous sshd drop-in back and reloads ssh, and
/// the previous fence back and loads it, after `seconds`; disarmed once a
/// fresh login has succeeded (or by a rollback, which restores the files
/// itself). A lost session or a lockout undoes itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SshdSwitch {
    /// The sshd drop-in, when it changes.
    pub drop_in: Option<String>,
    /// The fence's rules, when they change.
    pub firewall_rules: Option<String>,
    pub unit: String,
    pub seconds: u32,
}

impl SshdSwitch {
    /// The switch's name once armed again after docker's restart.
    pub fn unit_again(&self) -> String {
        format!("{}-again", self.unit)
    }
}

impl Work {
    pub fn is_empty(&self) -> bool {
        self.directories.is_empty()
            && self.files.is_empty()
            && self.attributes.is_empty()
            && self.handlers.is_empty()
            && self.docker_group_additions.is_empty()
    }
}

/// Turns a plan into work. `desired` supplies the content, which for
/// daemon.json is the merged document the plan computed.
pub fn work(
    desired: &Resources,
    plan: &HostPlan,
    ssh_unit: &str,
    random: &mut dyn FnMut() -> String,
) -> Result<Work, String> {
    let mut work = Work {
        handlers: plan.handlers.clone(),
        docker_group_additions: plan.docker_group_additions.clone(),
        live_restore_first: plan.live_restore_first.clone(),
        ssh_unit: if ssh_unit.is_empty() {
            "ssh.service".into()
        } else {
            ssh_unit.to_string()
        },
        ..Work::default()
    };
    for change in &plan.changes {
        if let Some(dir) = desired.directories.iter().find(|d| d.path == change.path) {
            work.directories.push((
                dir.path.clone(),
                dir.mode,
                dir.owner.clone(),
                dir.group.clone(),
            ));
            if change.action == crate::core::plan::Action::Create {
                work.created_directories.push(dir.path.clone());
            } else {
                work.previous_attributes
                    .push(previous(change, dir.mode, &dir.owner, &dir.group));
            }
            continue;
        }
        let file = desired
            .files
            .iter()
            .find(|f| f.path == change.path)
            .ok_or_else(|| format!("{}: planned but not desired", change.path))?;
        let content = match (&change.content, &file.content) {
            (None, _) => {
                work.attributes.push((
                    file.path.clone(),
                    file.mode,
                    file.owner.clone(),
                    file.group.clone(),
                ));
                work.previous_attributes.push(previous(
                    change,
                    file.mode,
                    &file.owner,
                    &file.group,
                ));
                continue;
            }
            (Some(ContentChange::Json { after, .. }), _) => after.clone().into_bytes(),
            (Some(_), Content::Bytes(bytes)) => bytes.clone(),
            (Some(_), Content::Pending(reason)) => {
                return Err(format!("{}: content not ready ({reason})", file.path));
            }
            (Some(_), Content::DaemonJson { .. }) => {
                return Err(format!("{}: merged content missing", file.path));
            }
        };
        let (dir, base) = file.path.rsplit_once('/').unwrap_or(("", &file.path));
        let temp = format!("{dir}/.{}{TEMP_MARK}{}", word_safe(base), random());
        if let Some(check) = &file.validate {
            if check.reads_new_file() {
                // Checked on the staged file, before anything is replaced.
            } else {
                work.post_checks.push((file.path.clone(), check.clone()));
            }
        }
        work.files.push(FileWrite {
            path: file.path.clone(),
            temp,
            content,
            mode: file.mode,
            owner: file.owner.clone(),
            group: file.group.clone(),
            validate: file.validate.clone(),
            secret: file.secret,
            check_copy: None,
        });
    }
    for index in 0..work.files.len() {
        let is_daemon_json = desired.files.iter().any(|f| {
            f.path == work.files[index].path && matches!(f.content, Content::DaemonJson { .. })
        });
        let validated_staged = work.files[index]
            .validate
            .as_ref()
            .is_some_and(Check::reads_new_file);
        if is_daemon_json && validated_staged {
            let copy = daemon_json_check_copy(&work.files[index].content, &work.files)?;
            let (dir, base) = work.files[index].path.rsplit_once('/').unwrap_or(("", ""));
            let temp = format!("{dir}/.{}{TEMP_MARK}check-{}", word_safe(base), random());
            work.files[index].check_copy = Some((temp, copy));
        }
    }
    let written = |path: &String| work.files.iter().any(|f| &f.path == path);
    let drop_in = desired
        .sshd_expected
        .as_ref()
        .map(|(drop_in, _)| drop_in)
        .filter(|d| work.handlers.contains(&Handler::ReloadSsh) && written(d))
        .cloned();
    let firewall_rules = desired
        .firewall_rules
        .as_ref()
        .filter(|r| work.handlers.contains(&Handler::ReloadFirewall) && written(r))
        .cloned();
    if drop_in.is_some() || firewall_rules.is_some() {
        work.sshd_switch = Some(SshdSwitch {
            drop_in,
            firewall_rules,
            unit: format!("dockhand-sshd-revert-{}", random()),
            seconds: match desired.sshd_revert_after {
                0 => DEFAULT_REVERT_AFTER,
                seconds => seconds,
            },
        });
    }
    Ok(work)
}

/// The switch's time when no sshd role sets it (the fence alone).
const DEFAULT_REVERT_AFTER: u32 = 120;

/// daemon.json with every path that names a file of this write (the TLS
/// files) pointed at that file's staged temp instead.
fn daemon_json_check_copy(content: &[u8], files: &[FileWrite]) -> Result<Vec<u8>, String> {
    let mut document = crate::core::roles::docker::daemon_json::parse(content)
        .map_err(|e| format!("daemon.json to validate: {e}"))?;
    for value in document.values_mut() {
        if let Some(staged) = value
            .as_str()
            .and_then(|path| files.iter().find(|f| f.path == path))
        {
            *value = serde_json::Value::String(staged.temp.clone());
        }
    }
    Ok(crate::core::roles::docker::daemon_json::render(&document).into_bytes())
}

/// A path's mode, owner and group before this change (what the plan saw).
fn previous(
    change: &crate::core::plan::Change,
    mode: u32,
    owner: &str,
    group: &str,
) -> (String, u32, String, String) {
    let before = |attribute: &Option<crate::core::plan::AttributeChange>, now: &str| {
        attribute
            .as_ref()
            .and_then(|a| a.from.clone())
            .unwrap_or_else(|| now.to_string())
    };
    let old_mode = change
        .mode
        .as_ref()
        .and_then(|m| m.from.as_deref())
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .unwrap_or(mode);
    (
        change.path.clone(),
        old_mode,
        before(&change.owner, owner),
        before(&change.group, group),
    )
}

/// A file name as one word of a staging record: temp names are made from
/// it, and a record's fields are separated by spaces.
fn word_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Random hex for temp names (not secret; unique).
pub fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    crate::random::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(bytes)
        .replace(['-', '_'], "x")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::{dir, file, present, present_dir};
    use crate::core::plan;
    use crate::core::roles::FileResource;
    use crate::core::state::ActualState;
    use crate::engine::remote;

    fn resources() -> Resources {
        Resources {
            directories: vec![dir("/etc/t")],
            files: vec![
                file(
                    "/etc/t/key.pem",
                    Content::Bytes(b"SECRET KEY BYTES\n".to_vec()),
                    0o400,
                    true,
                    vec![Handler::RestartDocker],
                ),
                FileResource {
                    validate: Some(crate::core::roles::sshd::check()),
                    ..FileResource::root_owned(
                        "/etc/t/sshd.conf",
                        Content::Bytes(b"A no\n".to_vec()),
                        0o644,
                        vec![Handler::ReloadSsh],
                    )
                },
            ],
            ..Resources::default()
        }
    }

    fn fresh_work() -> Work {
        let desired = resources();
        let plan = plan::plan(&desired, &ActualState::default()).unwrap();
        let mut n = 0;
        work(&desired, &plan, "ssh.service", &mut || {
            n += 1;
            format!("r{n}")
        })
        .unwrap()
    }

    #[test]
    fn keys_travel_only_on_stdin() {
        let work = fresh_work();
        assert_eq!(work.files[0].temp, "/etc/t/.key.pem.dockhand-new-r1");
        let layout = remote::Layout::HOST;
        let stage = remote::stage(&work, &layout, None);
        let text = String::from_utf8_lossy(stage.input());
        assert!(
            text.contains(
                "F 17 0400 root root .key.pem.dockhand-new-r1 /etc/t/key.pem\nSECRET KEY BYTES\n"
            ),
            "{text}"
        );
        for script in [
            stage,
            remote::commit(&work, &layout),
            remote::finish(&work, &layout),
            remote::restore(&work, &layout),
            remote::handlers_again(&work, &layout),
        ] {
            assert!(!script.text.contains("SECRET"), "{}", script.text);
            assert!(
                !script
                    .command(&crate::engine::remote::Become::Sudo)
                    .contains("SECRET")
            );
        }
    }

    /// What the commit, the restore and the handlers do with this is shown
    /// under dash in `remote::tests`.
    #[test]
    fn a_new_directory_is_created_and_checks_after_writing_are_kept() {
        let work = fresh_work();
        assert_eq!(work.created_directories, vec!["/etc/t".to_string()]);
        assert_eq!(work.handlers, [Handler::ReloadSsh, Handler::RestartDocker]);
        assert_eq!(
            work.post_checks,
            vec![(
                "/etc/t/sshd.conf".to_string(),
                crate::core::roles::sshd::check()
            )]
        );
    }

    #[test]
    fn daemon_json_is_validated_against_the_staged_tls_files() {
        let mut managed = serde_json::Map::new();
        managed.insert("tlskey".into(), serde_json::json!("/etc/t/key.pem"));
        managed.insert("tlscacert".into(), serde_json::json!("/etc/other/ca.pem"));
        let mut desired = resources();
        desired.files.push(FileResource {
            validate: Some(Check::program(&[
                "dockerd",
                "--validate",
                "--config-file",
                "%s",
            ])),
            ..FileResource::root_owned(
                "/etc/t/daemon.json",
                Content::DaemonJson {
                    managed,
                    own_whole_file: false,
                },
                0o644,
                vec![Handler::RestartDocker],
            )
        });
        let plan = plan::plan(&desired, &ActualState::default()).unwrap();
        let mut n = 0;
        let work = work(&desired, &plan, "ssh.service", &mut || {
            n += 1;
            format!("r{n}")
        })
        .unwrap();
        let daemon = work
            .files
            .iter()
            .find(|f| f.path == "/etc/t/daemon.json")
            .unwrap();
        let (copy, bytes) = daemon.check_copy.as_ref().expect("a check copy");
        assert_eq!(copy, "/etc/t/.daemon.json.dockhand-new-check-r4");
        let checked: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        // The staged key, not the one not yet in place; other paths as they are.
        assert_eq!(checked["tlskey"], "/etc/t/.key.pem.dockhand-new-r1");
        assert_eq!(checked["tlscacert"], "/etc/other/ca.pem");
        let input = String::from_utf8_lossy(&remote::stage_input(&work)).into_owned();
        assert!(input.contains(&format!(
            "F {} 0600 root root .daemon.json.dockhand-new-check-r4 /etc/t/daemon.json\n",
            bytes.len()
        )));
    }

    #[test]
    fn a_dead_man_switch_is_armed_before_ssh_reloads_and_disarmed_after() {
        let mut desired = resources();
        desired.sshd_expected = Some(("/etc/t/sshd.conf".into(), Vec::new()));
        desired.sshd_revert_after = 90;
        let plan = plan::plan(&desired, &ActualState::default()).unwrap();
        let work = work(&desired, &plan, "ssh.service", &mut || "r".into()).unwrap();
        let switch = work.sshd_switch.clone().expect("armed");
        assert_eq!(
            (switch.unit.as_str(), switch.seconds),
            ("dockhand-sshd-revert-r", 90)
        );
        // Without an sshd drop-in among the writes there is nothing to arm.
        assert!(fresh_work().sshd_switch.is_none());
    }

    #[test]
    fn attribute_only_changes_write_nothing() {
        let desired = resources();
        let mut state = ActualState::default();
        for file in &desired.files {
            let Content::Bytes(bytes) = &file.content else {
                unreachable!()
            };
            let shown_as_secret = crate::core::state::ActualPath {
                content: None,
                ..present(bytes, 0o644)
            };
            state.paths.insert(file.path.clone(), shown_as_secret);
        }
        state.paths.insert("/etc/t".into(), present_dir(0o755));
        let plan = plan::plan(&desired, &state).unwrap();
        let work = work(&desired, &plan, "", &mut || "x".into()).unwrap();
        assert!(work.files.is_empty() && work.handlers.is_empty());
        assert_eq!(
            work.attributes,
            vec![(
                "/etc/t/key.pem".to_string(),
                0o400,
                "root".to_string(),
                "root".to_string()
            )]
        );
        // A rollback puts the old mode back.
        assert_eq!(
            work.previous_attributes,
            vec![(
                "/etc/t/key.pem".to_string(),
                0o644,
                "root".to_string(),
                "root".to_string()
            )]
        );
    }
}
