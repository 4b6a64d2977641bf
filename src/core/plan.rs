//! The plan: desired resources compared with what a host has. Every change
//! is listed with what it does to content, mode, owner and group, and the
//! handlers the changes notify. Secrets are compared by digest and their
//! content never enters a plan. Pure.

use std::collections::BTreeSet;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::core::file_name;
use crate::core::input::playbook::Handler;
use crate::core::roles::docker::daemon_json::{self, KeyChange};
use crate::core::roles::{Content, FileResource, Resources};
use crate::core::state::{ActualPath, ActualState, PathKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeChange {
    pub from: Option<String>,
    pub to: String,
}

/// How a file's content changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ContentChange {
    /// Text: before and after, for a unified diff.
    Text { before: String, after: String },
    /// daemon.json: the keys that change, and the texts.
    Json {
        keys: Vec<KeyChange>,
        before: String,
        after: String,
    },
    /// A certificate: what a reviewer reads of it, old and new (never
    /// base64 lines).
    Certificate {
        #[serde(skip_serializing_if = "Option::is_none")]
        before: Option<CertPem>,
        after: CertPem,
    },
    /// A secret: only that it changes.
    Secret,
    /// Bytes that are not text, or too large to show.
    Opaque {
        before_sha256: Option<String>,
        after_sha256: String,
    },
    /// Known only once apply issues it.
    Pending { reason: String },
}

/// A certificate as a reviewer reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    pub sans: String,
    /// `YYYY-MM-DD`, UTC.
    pub not_before: String,
    pub not_after: String,
    /// SHA-256 of the DER certificate.
    pub fingerprint: String,
}

/// A certificate of a plan, as PEM: summarized only when the plan is shown
/// (printed or serialized). A plan applied at once is never shown, and a
/// fleet's converge would otherwise parse every host's certificates, and
/// the CA's once per host, for nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPem(Vec<u8>);

impl CertPem {
    /// `Some` when the bytes are PEM that starts with a certificate.
    pub fn of(pem: &[u8]) -> Option<CertPem> {
        pem.starts_with(b"-----BEGIN CERTIFICATE-----")
            .then(|| CertPem(pem.to_vec()))
    }

    /// What a reviewer reads of it, or why it cannot be read.
    pub fn summary(&self) -> Result<CertSummary, String> {
        CertSummary::of(&self.0)
    }
}

impl Serialize for CertPem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Unreadable<'a> {
            unreadable: &'a str,
        }
        match self.summary() {
            Ok(summary) => summary.serialize(serializer),
            Err(error) => Unreadable { unreadable: &error }.serialize(serializer),
        }
    }
}

impl CertSummary {
    /// A summary of a PEM certificate, or why it cannot be read.
    pub fn of(pem: &[u8]) -> Result<CertSummary, String> {
        let info = crate::core::pki::read_certificate(pem, None)?;
        let date = |seconds: i64| {
            time::OffsetDateTime::from_unix_timestamp(seconds)
                .map(|t| t.date().to_string())
                .unwrap_or_default()
        };
        Ok(CertSummary {
            subject: info.subject,
            issuer: info.issuer,
            sans: info.sans.describe(),
            not_before: date(info.not_before),
            not_after: date(info.not_after),
            fingerprint: info.fingerprint,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub path: String,
    pub kind: PathKind,
    pub action: Action,
    pub secret: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<AttributeChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<AttributeChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<AttributeChange>,
    /// The command that checks new content before it replaces the old
    /// (`%s`: the new file), shown so a reviewer sees what will run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validate: Option<String>,
}

/// One host's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct HostPlan {
    pub changes: Vec<Change>,
    pub handlers: Vec<Handler>,
    pub warnings: Vec<String>,
    /// What the changes do beyond their diffs, in words (a listener
    /// closed, a host's option kept or dropped, and why).
    pub notes: Vec<String>,
    /// Why apply must leave this host alone (a change that would hide
    /// what the host's dockerd holds); plan shows it, apply fails the host
    /// with it before writing anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Accounts put in the `docker` group (`docker.ssh_users`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub docker_group_additions: Vec<String>,
    /// Turn live-restore on before anything else, with a reload that
    /// stops no container: daemon.json's path and the interim document
    /// (the host's own with `live-restore: true`).
    #[serde(skip)]
    pub live_restore_first: Option<(String, String)>,
}

/// What a report of the apply shows of a host's plan: the paths it
/// changed, its warnings and notes. Kept per host until the run ends, so
/// it holds no contents, diffs or attributes (a fleet of thousands would
/// carry them all to the end).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanSummary {
    /// Shared between hosts where the caller's `intern` shares them: the
    /// same few paths, for every host of a fleet.
    pub paths: Vec<std::sync::Arc<str>>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
}

impl HostPlan {
    /// The plan as the apply's report shows it; `intern` turns each path
    /// into the copy the report keeps.
    pub fn summary(&self, mut intern: impl FnMut(&str) -> std::sync::Arc<str>) -> PlanSummary {
        PlanSummary {
            paths: self.changes.iter().map(|c| intern(&c.path)).collect(),
            warnings: self.warnings.clone(),
            notes: self.notes.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
            && self.handlers.is_empty()
            && self.docker_group_additions.is_empty()
    }

    /// What a user approves of this plan, as a digest: every change with
    /// its contents, handlers, warnings, notes and refusal, except the
    /// contents of `issued` (the files the local PKI issues: decided by
    /// the store once the answer is yes, not by the host); and the host's
    /// side of every path it was planned from (`actual`: a secret file's
    /// edit shows in no diff, but in its digest). A host whose plan has
    /// the same approval later has not changed since.
    pub fn approval(&self, actual: &ActualState, issued: &[String]) -> [u8; 32] {
        let mut plan = self.clone();
        for change in &mut plan.changes {
            if issued.contains(&change.path) {
                change.content = None;
            }
        }
        let mut sha = Sha256::new();
        sha.update(serde_json::to_vec(&plan).expect("a plan serializes"));
        // Not serialized (the report does not show it), and part of the plan.
        if let Some((path, interim)) = &plan.live_restore_first {
            sha.update([0]);
            sha.update(path.as_bytes());
            sha.update([0]);
            sha.update(interim.as_bytes());
        }
        for (path, have) in &actual.paths {
            let ActualPath {
                exists,
                kind,
                mode,
                owner,
                group,
                size,
                sha256,
                content: _,
            } = have;
            sha.update(format!(
                "\0{path}\0{exists}\0{kind:?}\0{mode:o}\0{owner}\0{group}\0{size}\0{}",
                sha256.as_deref().unwrap_or("-")
            ));
        }
        sha.finalize().into()
    }
}

/// A file bigger than this is compared by digest only.
pub const MAX_DIFF_BYTES: u64 = 1 << 20;

pub fn mode_text(mode: u32) -> String {
    format!("{mode:04o}")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    super::hex(&Sha256::digest(bytes))
}

/// Compares `desired` with `actual`. Fails (naming the path) only where
/// the host's state cannot be planned for, such as a directory where a
/// file belongs or a daemon.json that cannot be merged.
pub fn plan(desired: &Resources, actual: &ActualState) -> Result<HostPlan, String> {
    let mut out = HostPlan {
        warnings: desired.warnings.clone(),
        ..HostPlan::default()
    };
    let mut handlers = BTreeSet::new();
    for dir in &desired.directories {
        let have = actual.path(&dir.path);
        if have.exists && have.kind != Some(PathKind::Directory) {
            return Err(format!("{} exists but is not a directory", dir.path));
        }
        if let Some(change) = attributes(
            &dir.path,
            PathKind::Directory,
            &have,
            dir.mode,
            &dir.owner,
            &dir.group,
            false,
        ) {
            out.changes.push(change);
        }
    }
    for file in &desired.files {
        if let Some(change) = file_change(file, actual, &mut out.warnings)? {
            if change.content.is_some() {
                handlers.extend(file.notify.iter().copied());
            }
            out.changes.push(change);
        }
    }
    handlers.extend(owed_handlers(actual, &mut out.warnings));
    if let Some(missing) = unloaded_fence(desired, actual) {
        out.warnings.push(missing);
        handlers.insert(Handler::ReloadFirewall);
    }
    out.warnings.extend(left_behind(actual));
    out.handlers = handlers.into_iter().collect();
    out.warnings
        .extend(sshd_warnings(desired, actual, &out.changes));
    out.notes = desired
        .notes
        .iter()
        .filter(|(path, _)| {
            out.changes
                .iter()
                .any(|c| &c.path == path && c.content.is_some())
        })
        .map(|(path, note)| format!("{}: {note}", file_name(path)))
        .collect();
    workload_effects(desired, actual, &mut out);
    docker_group(desired, actual, &mut out)?;
    foreign_ca(desired, actual, &mut out);
    Ok(out)
}

/// One file's change, if it needs one: its content, its attributes, or
/// both; daemon.json's own warnings go to `warnings`.
fn file_change(
    file: &FileResource,
    actual: &ActualState,
    warnings: &mut Vec<String>,
) -> Result<Option<Change>, String> {
    let have = actual.path(&file.path);
    if have.exists && have.kind != Some(PathKind::File) {
        return Err(format!("{} exists but is not a regular file", file.path));
    }
    let content = content_change(file.secret, &file.content, &have)
        .map_err(|e| format!("{}: {e}", file.path))?;
    if let Content::DaemonJson {
        managed,
        own_whole_file,
    } = &file.content
    {
        warnings.extend(check_daemon_json(
            &file.path,
            managed,
            *own_whole_file,
            &have,
            actual,
        )?);
    }
    let attributes = attributes(
        &file.path,
        PathKind::File,
        &have,
        file.mode,
        &file.owner,
        &file.group,
        file.secret,
    );
    let validate = content
        .as_ref()
        .and(file.validate.as_ref().map(|c| c.to_string()));
    Ok(match (content, attributes) {
        (None, None) => None,
        (content, Some(mut change)) => {
            change.content = content;
            change.validate = validate;
            Some(change)
        }
        (Some(content), None) => Some(Change {
            path: file.path.clone(),
            kind: PathKind::File,
            action: Action::Update,
            secret: file.secret,
            content: Some(content),
            mode: None,
            owner: None,
            group: None,
            validate,
        }),
    })
}

/// What an interrupted run left, in words: apply settles it under its lock,
/// before it gathers.
fn left_behind(actual: &ActualState) -> Vec<String> {
    let mut said: Vec<String> = actual
        .facts
        .armed_switches
        .iter()
        .map(|unit| {
            format!(
                "an interrupted run left the sshd dead-man switch {unit} armed: it will put the previous sshd drop-in back; apply fires it first, then plans from there"
            )
        })
        .collect();
    if !actual.facts.leftovers.is_empty() {
        let settles = if actual.facts.pending_handlers.is_empty() {
            "apply removes them"
        } else {
            "handlers are still owed: apply puts the backups back, writes the files again and runs the handlers with them"
        };
        said.push(format!(
            "an interrupted run left backups and temp files: {} ({settles})",
            actual.facts.leftovers.join(", ")
        ));
    }
    said
}

/// Handlers an interrupted run left owed (recorded on the host before it
/// replaced anything): this run runs them, and says so.
fn owed_handlers(actual: &ActualState, warnings: &mut Vec<String>) -> Vec<Handler> {
    let owed: Vec<Handler> = actual
        .facts
        .pending_handlers
        .iter()
        .filter_map(|n| Handler::from_name(n))
        .collect();
    if !owed.is_empty() {
        warnings.push(format!(
            "an interrupted run left handlers to run: {}",
            owed.iter()
                .map(|h| h.describe())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    owed
}

/// `docker.ssh_users` in the `docker` group, and every other member named:
/// the group's members can use dockerd's socket, which is root-equivalent.
fn docker_group(
    desired: &Resources,
    actual: &ActualState,
    out: &mut HostPlan,
) -> Result<(), String> {
    if desired.docker_users.is_empty() {
        return Ok(());
    }
    let Some(members) = &actual.facts.docker_group else {
        return Err(
            "docker.ssh_users: this host has no `docker` group (is docker installed?)".into(),
        );
    };
    out.docker_group_additions = desired
        .docker_users
        .iter()
        .filter(|u| !members.contains(u))
        .cloned()
        .collect();
    for member in members.iter().filter(|m| !desired.docker_users.contains(m)) {
        out.warnings.push(format!(
            "{member} is in the docker group, which can use dockerd's socket (root-equivalent), and is not in docker.ssh_users: `gpasswd -d {member} docker` if they should not"
        ));
    }
    Ok(())
}

/// The fence's ports the kernel does not drop others on now, although the
/// rules file says so (a `flush ruleset`, or the table deleted by hand).
fn unloaded_fence(desired: &Resources, actual: &ActualState) -> Option<String> {
    let rules = desired.firewall_rules.as_ref()?;
    if !actual.path(rules).exists {
        return None;
    }
    let missing: Vec<String> = desired
        .fenced_ports
        .iter()
        .filter(|p| !actual.facts.fenced_ports.contains(p))
        .map(u16::to_string)
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the fence of port(s) {} is not loaded in the kernel (the ruleset was flushed?): apply loads {rules} again",
            missing.join(", ")
        )
    })
}

/// A host whose docker trusts a CA this store does not know: replacing its
/// `ca.pem` cuts off every client that CA signed (docker-machine's best
/// known failure), so plan names that CA and apply refuses the host unless
/// `--replace-ca` says to go on.
fn foreign_ca(desired: &Resources, actual: &ActualState, out: &mut HostPlan) {
    let Some(path) = &desired.ca_file else {
        return;
    };
    let changes = out
        .changes
        .iter()
        .any(|c| &c.path == path && c.content.is_some());
    let have = actual.path(path);
    let (true, Some(have_pem)) = (changes, have.content.as_deref()) else {
        return;
    };
    let trusted = desired
        .files
        .iter()
        .find(|f| &f.path == path)
        .and_then(|f| match &f.content {
            Content::Bytes(pem) => Some(pem.as_slice()),
            _ => None,
        });
    let Some(foreign) = crate::core::pki::foreign_ca(have_pem, trusted) else {
        return;
    };
    let said = format!(
        "{path} trusts another CA, {} (SHA-256 {}): replacing it cuts off every client that CA signed",
        foreign.subject, foreign.fingerprint
    );
    if desired.replace_ca {
        out.warnings
            .push(format!("{said} (--replace-ca: apply replaces it)"));
        return;
    }
    out.warnings.push(format!(
        "{said}; apply leaves this host alone unless the CA is adopted (`dockhand pki import`), rotated to (`dockhand pki rotate`), or --replace-ca is given"
    ));
    let refusal = format!(
        "{said} (adopt that CA with `dockhand pki import`, move to this store's CA with `dockhand pki rotate`, or pass --replace-ca to replace it anyway)"
    );
    out.refusal = Some(match out.refusal.take() {
        Some(first) => format!("{first}; and {refusal}"),
        None => refusal,
    });
}

/// What the daemon change does to what the host's dockerd runs and holds:
/// a new data root hides it (refused unless the playbook allows it), and a
/// restart without live-restore stops the running containers.
fn workload_effects(desired: &Resources, actual: &ActualState, out: &mut HostPlan) {
    let restarts = out.handlers.contains(&Handler::RestartDocker);
    let facts = &actual.facts;
    let workload = facts.workload.as_ref();
    if let Some(moved) = desired.data_root_move.as_ref().filter(|_| restarts) {
        let hidden = match (workload, &facts.workload_unknown) {
            (Some(w), _) if w.holds_anything() => Some(format!(
                "{moved}: {} stay in {}, out of the daemon's sight",
                w.describe(),
                w.root_dir
            )),
            (Some(_), _) => None,
            (None, Some(why)) if facts.docker_active == "active" => Some(format!(
                "{moved}, and what dockerd holds cannot be told ({why}): its containers, images and volumes would be out of its sight"
            )),
            (None, _) => None,
        };
        if let Some(hidden) = hidden {
            if desired.allow_new_data_root {
                out.warnings.push(format!(
                    "{hidden} (docker.allow_new_data_root: true, so apply makes the change)"
                ));
            } else {
                out.warnings.push(format!(
                    "{hidden}; apply leaves this host alone unless the playbook sets docker.allow_new_data_root: true"
                ));
                out.refusal = Some(format!(
                    "{hidden} (set docker.allow_new_data_root: true in the playbook to make this change anyway)"
                ));
            }
        }
    }
    let Some(workload) = workload.filter(|_| restarts) else {
        return;
    };
    let running: Vec<&str> = workload.running().map(|c| c.label()).collect();
    if running.is_empty() {
        return;
    }
    if desired.data_root_move.is_some() {
        out.notes.push(format!(
            "restarting docker stops the running containers {}, and the daemon in its new data root does not know them",
            running.join(", ")
        ));
    } else if !workload.live_restore {
        match desired.live_restore_interim.clone() {
            Some(first) => {
                out.notes.push(format!(
                    "live-restore is turned on first, by reloading dockerd (which stops no container), so the running containers {} keep running through docker's restart",
                    running.join(", ")
                ));
                out.live_restore_first = Some(first);
            }
            None => out.notes.push(format!(
                "restarting docker stops the running containers {} (live-restore is neither in effect nor asked for)",
                running.join(", ")
            )),
        }
    } else {
        out.notes.push(format!(
            "live-restore is in effect: the running containers {} keep running through docker's restart",
            running.join(", ")
        ));
    }
}

/// The daemon.json the host will have, checked against the options of its
/// dockerd: an unknown key or a wrongly typed value is this host's plan
/// error (dockerd would refuse to start); a key dockerd ignores is a
/// warning.
fn check_daemon_json(
    path: &str,
    managed: &serde_json::Map<String, serde_json::Value>,
    own_whole_file: bool,
    have: &ActualPath,
    actual: &ActualState,
) -> Result<Vec<String>, String> {
    let Ok(document) = daemon_json::desired(have.content.as_deref(), managed, own_whole_file)
    else {
        return Ok(Vec::new()); // content_change has said what is wrong
    };
    let family = if actual.facts.dockerd_can_validate {
        crate::core::roles::docker::daemon_schema::Family::Modern
    } else {
        crate::core::roles::docker::daemon_schema::Family::Legacy
    };
    let origin = |key: &str| {
        if managed.contains_key(key) {
            "the playbook sets".to_string()
        } else {
            format!("{path} on the host has")
        }
    };
    let (errors, warnings) =
        crate::core::roles::docker::daemon_schema::check(&document, family, &origin);
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(format!("{path}: {}", errors.join("; ")))
    }
}

/// The honest check of sshd hardening is the effective configuration
/// (`sshd -T`), not the file: when the drop-in is already in place, every
/// value it sets must be in effect, or another file wins.
fn sshd_warnings(desired: &Resources, actual: &ActualState, changes: &[Change]) -> Vec<String> {
    let Some((drop_in, expected)) = &desired.sshd_expected else {
        return Vec::new();
    };
    if let Some(error) = &actual.facts.sshd_error {
        return vec![format!(
            "`sshd -T` fails on the host, so its settings cannot be checked: {}",
            error.trim()
        )];
    }
    if changes.iter().any(|c| &c.path == drop_in) || actual.facts.sshd_effective.is_empty() {
        return Vec::new();
    }
    expected
        .iter()
        .filter_map(|(keyword, want)| {
            let have = actual.facts.sshd_effective.get(keyword).map(String::as_str).unwrap_or("(unset)");
            (!sshd_values_equal(keyword, want, have)).then(|| {
                format!("sshd's effective {keyword} is `{have}`, not `{want}`: a file read before {drop_in} sets it")
            })
        })
        .collect()
}

/// `sshd -T` prints some values in another spelling than sshd_config takes.
pub fn sshd_values_equal(keyword: &str, want: &str, have: &str) -> bool {
    let normal = |value: &str| {
        let value = value.to_ascii_lowercase();
        match (keyword, value.as_str()) {
            ("permitrootlogin", "without-password") => "prohibit-password".to_string(),
            _ => value,
        }
    };
    normal(want) == normal(have)
}

/// A change record for a missing path or differing mode/owner/group.
fn attributes(
    path: &str,
    kind: PathKind,
    have: &ActualPath,
    mode: u32,
    owner: &str,
    group: &str,
    secret: bool,
) -> Option<Change> {
    let differs = |from: Option<String>, to: String| {
        (from.as_deref() != Some(to.as_str())).then_some(AttributeChange { from, to })
    };
    let present = |value: &str| have.exists.then(|| value.to_string());
    let change = Change {
        path: path.to_string(),
        kind,
        action: if have.exists {
            Action::Update
        } else {
            Action::Create
        },
        secret,
        content: None,
        mode: differs(have.exists.then(|| mode_text(have.mode)), mode_text(mode)),
        owner: differs(present(&have.owner), owner.to_string()),
        group: differs(present(&have.group), group.to_string()),
        validate: None,
    };
    (change.action == Action::Create
        || change.mode.is_some()
        || change.owner.is_some()
        || change.group.is_some())
    .then_some(change)
}

/// What happens to the content; None when it stays as it is.
fn content_change(
    secret: bool,
    content: &Content,
    have: &ActualPath,
) -> Result<Option<ContentChange>, String> {
    let before_text = || {
        have.content
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    match content {
        Content::Pending(reason) => Ok(Some(ContentChange::Pending {
            reason: reason.clone(),
        })),
        Content::DaemonJson {
            managed,
            own_whole_file,
        } => {
            let actual_bytes = if have.exists {
                have.content.as_deref().or(Some(&[][..]))
            } else {
                None
            };
            let desired = daemon_json::desired(actual_bytes, managed, *own_whole_file)
                .map_err(|e| format!("cannot merge into it: {e}"))?;
            let before = actual_bytes
                .filter(|b| !b.iter().all(u8::is_ascii_whitespace))
                .map(daemon_json::parse);
            match before {
                Some(Ok(before)) if before == desired => Ok(None),
                before => {
                    let before_map = before.and_then(Result::ok).unwrap_or_default();
                    Ok(Some(ContentChange::Json {
                        keys: daemon_json::key_changes(&before_map, &desired),
                        before: before_text(),
                        after: daemon_json::render(&desired),
                    }))
                }
            }
        }
        Content::Bytes(bytes) => {
            let after_sha = sha256_hex(bytes);
            if have.exists && have.sha256.as_deref() == Some(after_sha.as_str()) {
                return Ok(None);
            }
            if secret {
                return Ok(Some(ContentChange::Secret));
            }
            if let Some(after) = CertPem::of(bytes) {
                return Ok(Some(ContentChange::Certificate {
                    before: have.content.as_deref().and_then(CertPem::of),
                    after,
                }));
            }
            let is_text = |b: &[u8]| std::str::from_utf8(b).is_ok();
            let before_known = !have.exists || have.content.as_deref().is_some_and(is_text);
            if before_known && is_text(bytes) && (bytes.len() as u64) <= MAX_DIFF_BYTES {
                Ok(Some(ContentChange::Text {
                    before: before_text(),
                    after: String::from_utf8_lossy(bytes).into_owned(),
                }))
            } else {
                Ok(Some(ContentChange::Opaque {
                    before_sha256: have.sha256.clone(),
                    after_sha256: after_sha,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::{file, present};
    use crate::core::roles::DirectoryResource;
    use serde_json::json;

    fn secret_present(content: &[u8], mode: u32) -> ActualPath {
        ActualPath {
            content: None,
            ..present(content, mode)
        }
    }

    fn desired() -> Resources {
        let mut managed = serde_json::Map::new();
        managed.insert("icc".into(), json!(false));
        Resources {
            directories: vec![DirectoryResource {
                path: "/etc/t".into(),
                mode: 0o755,
                owner: "root".into(),
                group: "root".into(),
            }],
            files: vec![
                file(
                    "/etc/t/key.pem",
                    Content::Bytes(b"KEY".to_vec()),
                    0o400,
                    true,
                    vec![Handler::RestartDocker],
                ),
                file(
                    "/etc/t/cert.pem",
                    Content::Bytes(b"CERT\n".to_vec()),
                    0o444,
                    false,
                    vec![Handler::RestartDocker],
                ),
                file(
                    "/etc/t/daemon.json",
                    Content::DaemonJson {
                        managed,
                        own_whole_file: false,
                    },
                    0o644,
                    false,
                    vec![Handler::RestartDocker],
                ),
                file(
                    "/etc/t/sshd.conf",
                    Content::Bytes(b"A no\n".to_vec()),
                    0o644,
                    false,
                    vec![Handler::ReloadSsh],
                ),
            ],
            warnings: vec![],
            notes: vec![("/etc/t/daemon.json".into(), "a listener is closed".into())],
            sshd_expected: None,
            sshd_revert_after: 120,
            ..Resources::default()
        }
    }

    fn converged() -> ActualState {
        let mut state = ActualState::default();
        state.paths.insert(
            "/etc/t".into(),
            ActualPath {
                exists: true,
                kind: Some(PathKind::Directory),
                mode: 0o755,
                owner: "root".into(),
                group: "root".into(),
                ..ActualPath::default()
            },
        );
        state
            .paths
            .insert("/etc/t/key.pem".into(), secret_present(b"KEY", 0o400));
        state
            .paths
            .insert("/etc/t/cert.pem".into(), present(b"CERT\n", 0o444));
        state.paths.insert(
            "/etc/t/daemon.json".into(),
            present(b"{\"debug\":true,\"icc\":false}", 0o644),
        );
        state
            .paths
            .insert("/etc/t/sshd.conf".into(), present(b"A no\n", 0o644));
        state
    }

    /// A host in use: two containers (one running), an image, a volume;
    /// live-restore off; its daemon.json says `debug` and `icc` only.
    fn in_use() -> ActualState {
        let mut state = converged();
        state.facts.docker_active = "active".into();
        state.facts.workload = Some(crate::core::roles::docker::workload::Workload {
            root_dir: "/var/lib/docker".into(),
            images: 1,
            volumes: Some(1),
            containers: vec![
                crate::core::roles::docker::workload::Container {
                    id: "a".repeat(64),
                    name: "web".into(),
                    running: true,
                    ..Default::default()
                },
                crate::core::roles::docker::workload::Container {
                    id: "b".repeat(64),
                    name: "old".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        state
    }

    /// `desired()` with daemon settings added to what it manages.
    fn with_daemon(settings: serde_json::Value) -> Resources {
        let mut resources = desired();
        let Content::DaemonJson { managed, .. } = &mut resources.files[2].content else {
            unreachable!()
        };
        managed.extend(settings.as_object().unwrap().clone());
        resources
    }

    #[test]
    fn what_an_interrupted_run_left_is_said_in_words() {
        let mut actual = ActualState::default();
        actual.facts.armed_switches = vec!["dockhand-sshd-revert-x".into()];
        actual.facts.leftovers = vec!["/etc/docker/.daemon.json.dockhand-backup".into()];
        let plan = plan(&Resources::default(), &actual).unwrap();
        assert_eq!(plan.warnings.len(), 2, "{:?}", plan.warnings);
        assert!(plan.warnings[0].contains("dockhand-sshd-revert-x armed"));
        assert!(
            plan.warnings[1]
                .ends_with("/etc/docker/.daemon.json.dockhand-backup (apply removes them)")
        );
    }

    #[test]
    fn a_new_data_root_on_a_host_in_use_is_named_with_counts_and_refused() {
        let mut desired = with_daemon(json!({"userns-remap": "default"}));
        desired.data_root_move =
            Some("userns-remap: default moves the daemon to /var/lib/docker/UID.GID".into());
        let plan = plan(&desired, &in_use()).unwrap();
        let refusal = plan.refusal.as_deref().unwrap();
        assert!(
            refusal.contains("2 containers (1 running), 1 image and 1 volume stay in /var/lib/docker, out of the daemon's sight"),
            "{refusal}"
        );
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("unless the playbook sets docker.allow_new_data_root: true")),
            "{:?}",
            plan.warnings
        );
        assert!(plan.notes.iter().any(|n| n.contains("stops the running containers web, and the daemon in its new data root does not know them")), "{:?}", plan.notes);
        assert_eq!(plan.live_restore_first, None);

        // Allowed: said, not refused.
        desired.allow_new_data_root = true;
        let plan = super::plan(&desired, &in_use()).unwrap();
        assert_eq!(plan.refusal, None);
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("allow_new_data_root: true, so apply makes the change"))
        );

        // A fresh host holds nothing: nothing to say.
        desired.allow_new_data_root = false;
        let mut fresh = in_use();
        fresh.facts.workload = Some(Default::default());
        assert_eq!(super::plan(&desired, &fresh).unwrap().refusal, None);

        // What dockerd holds cannot be told: refused all the same.
        let mut unknown = in_use();
        unknown.facts.workload = None;
        unknown.facts.workload_unknown = Some("neither a docker CLI nor python3".into());
        let plan = super::plan(&desired, &unknown).unwrap();
        assert!(
            plan.refusal
                .unwrap()
                .contains("cannot be told (neither a docker CLI nor python3)")
        );
        // ...unless docker is not running at all.
        unknown.facts.docker_active = "inactive".into();
        assert_eq!(super::plan(&desired, &unknown).unwrap().refusal, None);
    }

    /// A playbook asking for live-restore, with the interim document the
    /// expansion makes from the host's own (`resources` tests that).
    fn with_live_restore() -> Resources {
        let mut resources = with_daemon(json!({"live-restore": true}));
        resources.live_restore_interim = Some((
            "/etc/t/daemon.json".into(),
            "{\"debug\": true, \"icc\": false, \"live-restore\": true}\n".into(),
        ));
        resources
    }

    #[test]
    fn live_restore_goes_first_where_containers_run_without_it() {
        let plan = plan(&with_live_restore(), &in_use()).unwrap();
        assert_eq!(plan.refusal, None);
        assert_eq!(
            plan.live_restore_first,
            with_live_restore().live_restore_interim
        );
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("live-restore is turned on first") && n.contains("web")),
            "{:?}",
            plan.notes
        );

        // Already in effect: nothing to do first.
        let mut restoring = in_use();
        restoring.facts.workload.as_mut().unwrap().live_restore = true;
        let plan = super::plan(&with_live_restore(), &restoring).unwrap();
        assert_eq!(plan.live_restore_first, None);
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("keep running through docker's restart"))
        );

        // Not asked for: the plan says the restart stops them.
        let plan = super::plan(&with_daemon(json!({"log-level": "info"})), &in_use()).unwrap();
        assert_eq!(plan.live_restore_first, None);
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("stops the running containers web (live-restore is neither")),
            "{:?}",
            plan.notes
        );

        // No running container: no interim step.
        let mut idle = in_use();
        idle.facts
            .workload
            .as_mut()
            .unwrap()
            .containers
            .retain(|c| !c.running);
        assert_eq!(
            super::plan(&with_live_restore(), &idle)
                .unwrap()
                .live_restore_first,
            None
        );
    }

    #[test]
    fn a_fresh_host_gets_everything_created_and_every_handler() {
        let plan = plan(&desired(), &ActualState::default()).unwrap();
        let summary: Vec<(&str, Action, Option<&str>)> = plan
            .changes
            .iter()
            .map(|c| {
                (
                    c.path.as_str(),
                    c.action,
                    c.mode.as_ref().map(|m| m.to.as_str()),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("/etc/t", Action::Create, Some("0755")),
                ("/etc/t/key.pem", Action::Create, Some("0400")),
                ("/etc/t/cert.pem", Action::Create, Some("0444")),
                ("/etc/t/daemon.json", Action::Create, Some("0644")),
                ("/etc/t/sshd.conf", Action::Create, Some("0644")),
            ]
        );
        assert_eq!(plan.changes[1].content, Some(ContentChange::Secret));
        assert_eq!(
            plan.handlers,
            vec![Handler::ReloadSsh, Handler::RestartDocker]
        );
        // A file's notes come with its change, named by the file.
        assert_eq!(plan.notes, ["daemon.json: a listener is closed"]);
    }

    /// What a user approves: the host's side of every change, and not the
    /// contents the PKI issues after the answer (pending while asked, the
    /// certificate itself once issued).
    #[test]
    fn an_approval_holds_everything_but_what_the_pki_issues() {
        let issued = ["/etc/t/cert.pem".to_string(), "/etc/t/key.pem".to_string()];
        let with_cert = |cert: Content| {
            let mut desired = desired();
            desired.files[1].content = cert;
            plan(&desired, &ActualState::default()).unwrap()
        };
        let none = ActualState::default();
        let asked = with_cert(Content::Pending("to be issued".into()));
        let applied = with_cert(Content::Bytes(b"ISSUED\n".to_vec()));
        assert_ne!(asked, applied);
        assert_eq!(
            asked.approval(&none, &issued),
            applied.approval(&none, &issued)
        );
        // Not so for a file the host decides.
        assert_ne!(asked.approval(&none, &[]), applied.approval(&none, &[]));
        let fresh = with_cert(Content::Bytes(b"CERT\n".to_vec())).approval(&none, &issued);
        let found = |path: &str, have: ActualPath| {
            let mut state = ActualState::default();
            state.paths.insert(path.into(), have);
            let planned = plan(&desired(), &state).unwrap();
            (planned.approval(&state, &issued), planned)
        };
        assert_ne!(
            fresh,
            found("/etc/t/sshd.conf", present(b"A yes\n", 0o644)).0
        );
        // Its attributes are the host's, issued or not.
        assert_ne!(fresh, found("/etc/t/cert.pem", present(b"CERT\n", 0o644)).0);
        // A secret edited on the host: the same plan (no diff shows a
        // secret), not the same approval.
        let (before, planned_before) = found("/etc/t/key.pem", secret_present(b"OLD", 0o400));
        let (after, planned_after) = found("/etc/t/key.pem", secret_present(b"EDITED", 0o400));
        assert_eq!(planned_before, planned_after);
        assert_ne!(before, after);
        // The interim daemon.json of live-restore is part of it too.
        let mut interim = applied.clone();
        interim.live_restore_first = Some(("/etc/t/daemon.json".into(), "{}".into()));
        assert_ne!(
            interim.approval(&none, &issued),
            applied.approval(&none, &issued)
        );
    }

    #[test]
    fn a_certificate_change_is_shown_as_a_reviewer_reads_it() {
        let key = rcgen::KeyPair::generate().unwrap();
        let issue = |names: Vec<String>| {
            rcgen::CertificateParams::new(names)
                .unwrap()
                .self_signed(&key)
                .unwrap()
                .pem()
                .into_bytes()
        };
        let old = issue(vec!["web1".into()]);
        let new = issue(vec!["web1".into(), "192.0.2.7".into()]);
        let mut resources = desired();
        resources.files[1].content = Content::Bytes(new.clone());
        let mut state = converged();
        let have = state.paths.get_mut("/etc/t/cert.pem").unwrap();
        have.content = Some(old.clone());
        have.sha256 = Some(sha256_hex(&old));
        let planned = plan(&resources, &state).unwrap();
        let change = planned
            .changes
            .iter()
            .find(|c| c.path == "/etc/t/cert.pem")
            .unwrap();
        let Some(ContentChange::Certificate { before, after }) = &change.content else {
            panic!("{change:?}")
        };
        let before = before.as_ref().expect("the old one is read too");
        let (before, after) = (before.summary().unwrap(), after.summary().unwrap());
        assert_eq!(before.sans, "DNS:web1");
        assert_eq!(after.sans, "DNS:web1, IP:192.0.2.7");
        assert_ne!(before.fingerprint, after.fingerprint);
        assert_eq!(after.fingerprint.len(), 95, "{}", after.fingerprint);
        assert!(
            !serde_json::to_string(change)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
    }

    #[test]
    fn a_daemon_json_dockerd_would_refuse_is_a_plan_error() {
        let mut resources = desired();
        let Content::DaemonJson { managed, .. } = &mut resources.files[2].content else {
            panic!()
        };
        managed.insert("no-such-option".into(), json!(1));
        let err = plan(&resources, &ActualState::default()).unwrap_err();
        assert!(
            err.starts_with("/etc/t/daemon.json: the playbook sets `no-such-option`, which dockerd 20.10 does not know"),
            "{err}"
        );
        // A key set by hand on the host is named as the host's.
        let mut state = converged();
        state.paths.get_mut("/etc/t/daemon.json").unwrap().content =
            Some(br#"{"icc": false, "ICC": true}"#.to_vec());
        let err = plan(&desired(), &state).unwrap_err();
        assert!(
            err.contains("/etc/t/daemon.json on the host has `ICC`"),
            "{err}"
        );
        // A key dockerd ignores is a warning.
        state.paths.get_mut("/etc/t/daemon.json").unwrap().content =
            Some(br#"{"icc": false, "label": ["a=b"]}"#.to_vec());
        let planned = plan(&desired(), &state).unwrap();
        assert!(
            planned
                .warnings
                .iter()
                .any(|w| w.contains("did you mean `labels`")),
            "{planned:?}"
        );
    }

    #[test]
    fn a_converged_host_has_nothing_to_do() {
        let plan = plan(&desired(), &converged()).unwrap();
        assert!(plan.is_empty(), "{plan:#?}");
        assert!(plan.notes.is_empty(), "notes only come with a change");
    }

    #[test]
    fn hand_changes_show_exactly_themselves() {
        let mut state = converged();
        state.paths.get_mut("/etc/t/key.pem").unwrap().mode = 0o644;
        state.paths.insert(
            "/etc/t/daemon.json".into(),
            present(b"{\"debug\":true,\"icc\":true}", 0o644),
        );
        let plan = plan(&desired(), &state).unwrap();
        assert_eq!(plan.changes.len(), 2, "{plan:#?}");
        let key = &plan.changes[0];
        assert_eq!(
            (key.path.as_str(), key.content.as_ref()),
            ("/etc/t/key.pem", None)
        );
        assert_eq!(
            key.mode,
            Some(AttributeChange {
                from: Some("0644".into()),
                to: "0400".into()
            })
        );
        let Some(ContentChange::Json { keys, .. }) = &plan.changes[1].content else {
            panic!("{plan:#?}")
        };
        assert_eq!(
            keys,
            &vec![KeyChange::Changed {
                key: "icc".into(),
                from: json!(true),
                to: json!(false)
            }]
        );
        // A mode change alone restarts nothing; the daemon.json edit does.
        assert_eq!(plan.handlers, vec![Handler::RestartDocker]);
    }

    #[test]
    fn secrets_are_compared_by_digest_and_never_shown() {
        let mut state = converged();
        state
            .paths
            .insert("/etc/t/key.pem".into(), secret_present(b"OTHER KEY", 0o400));
        let plan = plan(&desired(), &state).unwrap();
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].content, Some(ContentChange::Secret));
        let json = serde_json::to_string(&plan).unwrap();
        assert!(!json.contains("KEY\"") && !json.contains("OTHER"), "{json}");
    }

    #[test]
    fn owner_changes_and_text_diffs() {
        let mut state = converged();
        state.paths.get_mut("/etc/t/cert.pem").unwrap().owner = "nobody".into();
        state
            .paths
            .insert("/etc/t/sshd.conf".into(), present(b"A yes\n", 0o600));
        let plan = plan(&desired(), &state).unwrap();
        assert_eq!(
            plan.changes[0].owner,
            Some(AttributeChange {
                from: Some("nobody".into()),
                to: "root".into()
            })
        );
        assert_eq!(plan.changes[0].content, None);
        assert_eq!(
            plan.changes[1].content,
            Some(ContentChange::Text {
                before: "A yes\n".into(),
                after: "A no\n".into()
            })
        );
        assert_eq!(
            plan.changes[1].mode.as_ref().map(|m| m.to.as_str()),
            Some("0644")
        );
        assert_eq!(plan.handlers, vec![Handler::ReloadSsh]);
    }

    #[test]
    fn broken_daemon_json_and_wrong_kinds_are_errors() {
        let mut state = converged();
        state
            .paths
            .insert("/etc/t/daemon.json".into(), present(b"{oops", 0o644));
        let err = plan(&desired(), &state).unwrap_err();
        assert!(
            err.starts_with("/etc/t/daemon.json: cannot merge into it: it is not valid JSON"),
            "{err}"
        );
        let mut state = converged();
        state.paths.get_mut("/etc/t/cert.pem").unwrap().kind = Some(PathKind::Directory);
        assert!(
            plan(&desired(), &state)
                .unwrap_err()
                .contains("not a regular file")
        );
    }

    #[test]
    fn sshd_is_checked_by_its_effective_values() {
        let mut resources = desired();
        resources.sshd_expected = Some((
            "/etc/t/sshd.conf".into(),
            vec![
                ("passwordauthentication".into(), "no".into()),
                ("permitrootlogin".into(), "prohibit-password".into()),
            ],
        ));
        let mut state = converged();
        state
            .facts
            .sshd_effective
            .insert("passwordauthentication".into(), "yes".into());
        state
            .facts
            .sshd_effective
            .insert("permitrootlogin".into(), "without-password".into());
        let plan = plan(&resources, &state).unwrap();
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert!(plan.warnings[0].contains("effective passwordauthentication is `yes`, not `no`"));
        // While the drop-in itself is about to change, there is nothing to say yet.
        state
            .paths
            .insert("/etc/t/sshd.conf".into(), present(b"A yes\n", 0o644));
        assert!(self::plan(&resources, &state).unwrap().warnings.is_empty());
        state.facts.sshd_error = Some("line 3: Bad configuration option".into());
        assert!(
            self::plan(&resources, &state).unwrap().warnings[0]
                .contains("Bad configuration option")
        );
    }

    #[test]
    fn handlers_an_interrupted_run_owed_are_run_even_without_changes() {
        let mut state = converged();
        state.facts.pending_handlers = vec!["restart-docker".into(), "no-such-handler".into()];
        let plan = plan(&desired(), &state).unwrap();
        assert!(plan.changes.is_empty());
        assert_eq!(plan.handlers, vec![Handler::RestartDocker]);
        assert!(!plan.is_empty(), "owed handlers are work to do");
        assert!(plan.warnings[0].contains("interrupted run left handlers to run: restart docker"));
    }

    #[test]
    fn pending_certificates_are_changes_with_their_reason() {
        let mut resources = desired();
        resources.files[1].content = Content::Pending("expires in 3 day(s)".into());
        let plan = plan(&resources, &converged()).unwrap();
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(
            plan.changes[0].content,
            Some(ContentChange::Pending {
                reason: "expires in 3 day(s)".into()
            })
        );
        assert_eq!(plan.handlers, vec![Handler::RestartDocker]);
    }
}

#[cfg(test)]
mod foreign_ca_tests {
    use super::*;
    use crate::core::fixtures::{file, present};

    const CA_FILE: &str = "/etc/docker/tls/ca.pem";

    use crate::core::fixtures::foreign_ca as ca;

    fn desired(content: Content, replace_ca: bool) -> Resources {
        Resources {
            files: vec![file(
                CA_FILE,
                content,
                0o444,
                false,
                vec![Handler::RestartDocker],
            )],
            ca_file: Some(CA_FILE.into()),
            replace_ca,
            ..Resources::default()
        }
    }

    fn host_trusting(pem: &[u8]) -> ActualState {
        let mut state = crate::core::fixtures::state(crate::core::fixtures::debian_facts());
        state.paths.insert(CA_FILE.into(), present(pem, 0o444));
        state
    }

    #[test]
    fn a_host_that_trusts_another_ca_is_named_and_refused_unless_replace_ca() {
        let (theirs, ours, next) = (ca("their CA"), ca("our CA"), ca("next CA"));
        let both = [ours.clone(), next.clone()].concat();
        let refused = |content: Content, have: &[u8]| {
            plan(&desired(content, false), &host_trusting(have)).unwrap()
        };
        // From an empty store (the CA still to be made), and from a store
        // with another CA: named with subject and fingerprint, and refused.
        for content in [
            Content::Pending("the CA is created on the first apply".into()),
            Content::Bytes(ours.clone()),
        ] {
            let plan = refused(content, &theirs);
            let refusal = plan.refusal.as_deref().unwrap();
            assert!(
                refusal.contains("trusts another CA, CN=their CA (SHA-256 "),
                "{refusal}"
            );
            assert!(
                refusal.contains("cuts off every client that CA signed"),
                "{refusal}"
            );
            assert!(refusal.contains("--replace-ca"), "{refusal}");
            assert!(
                plan.warnings.iter().any(|w| w.contains("CN=their CA")),
                "{:?}",
                plan.warnings
            );
        }
        // Said, not refused, with --replace-ca.
        let plan = plan(
            &desired(Content::Bytes(ours.clone()), true),
            &host_trusting(&theirs),
        )
        .unwrap();
        assert_eq!(plan.refusal, None);
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("--replace-ca: apply replaces it"))
        );
        // One of ours in the host's bundle (a rotation under way either
        // way), the same file, or no certificate at all: nobody is cut off.
        for (content, have) in [
            (Content::Bytes(both.clone()), ours.clone()),
            (Content::Bytes(next.clone()), both.clone()),
            (Content::Bytes(ours.clone()), ours.clone()),
            (
                Content::Bytes(ours.clone()),
                b"not a certificate\n".to_vec(),
            ),
        ] {
            let plan = refused(content, &have);
            assert_eq!(plan.refusal, None);
            assert!(
                !plan.warnings.iter().any(|w| w.contains("another CA")),
                "{:?}",
                plan.warnings
            );
        }
    }

    #[test]
    fn a_fence_missing_from_the_kernel_is_loaded_again() {
        let rules = "/etc/dockhand/firewall.nft";
        let desired = Resources {
            files: vec![file(
                rules,
                Content::Bytes(b"R\n".to_vec()),
                0o644,
                false,
                vec![Handler::ReloadFirewall],
            )],
            firewall_rules: Some(rules.into()),
            fenced_ports: vec![2376],
            ..Resources::default()
        };
        let mut actual = crate::core::fixtures::state(crate::core::fixtures::debian_facts());
        actual.paths.insert(rules.into(), present(b"R\n", 0o644));
        let flushed = plan(&desired, &actual).unwrap();
        assert!(flushed.changes.is_empty());
        assert_eq!(flushed.handlers, [Handler::ReloadFirewall]);
        assert!(
            flushed
                .warnings
                .iter()
                .any(|w| w.contains("fence of port(s) 2376 is not loaded"))
        );
        actual.facts.fenced_ports = vec![2376];
        assert!(plan(&desired, &actual).unwrap().is_empty());
    }

    #[test]
    fn ssh_users_join_the_docker_group_and_other_members_are_named() {
        let desired = Resources {
            docker_users: vec!["alice".into(), "bob".into()],
            ..Resources::default()
        };
        let mut actual = crate::core::fixtures::state(crate::core::fixtures::debian_facts());
        actual.facts.docker_group = Some(vec!["bob".into(), "mallory".into()]);
        let plan = plan(&desired, &actual).unwrap();
        assert_eq!(plan.docker_group_additions, ["alice"]);
        assert!(!plan.is_empty());
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert!(
            plan.warnings[0].starts_with("mallory is in the docker group"),
            "{:?}",
            plan.warnings
        );
        actual.facts.docker_group = Some(vec!["alice".into(), "bob".into()]);
        assert!(super::plan(&desired, &actual).unwrap().is_empty());
        actual.facts.docker_group = None;
        assert!(
            super::plan(&desired, &actual)
                .unwrap_err()
                .contains("no `docker` group")
        );
    }
}
