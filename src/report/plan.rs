//! Rendering plans: per host, every change (unified diffs for text,
//! key-by-key for daemon.json, modes and owners), the handlers that would
//! run, warnings, and a summary per host and in total; or the same as one
//! JSON document. Secret content never reaches this module: the plan
//! carries only "secret" for it.

use std::fmt::Write as _;

use console::{Style, style};
use serde::Serialize;
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::escape;
use super::{Format, HostOutcome};
use crate::core::plan::{Action, CertPem, CertSummary, Change, ContentChange, HostPlan};
use crate::core::roles::docker::daemon_json::KeyChange;
use crate::core::state::PathKind;
use crate::error::Result;

pub fn print(outcomes: &[HostOutcome], format: Format) {
    let text = match format {
        Format::Human => human(outcomes),
        Format::Json => return super::json_stdout(|out| json(out, outcomes)),
    };
    super::raw_stdout(&text);
}

/// The plan a question is about, in words, where `asking` shows it.
pub fn show(outcomes: &[HostOutcome], asking: super::Asking) {
    super::shown(asking, &human(outcomes));
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    pub hosts: usize,
    pub with_changes: usize,
    pub unchanged: usize,
    pub unreachable: usize,
    pub failed: usize,
    pub to_create: usize,
    pub to_update: usize,
    /// What the hosts cost on the wire, summed.
    pub traffic: crate::transport::Traffic,
}

pub fn summarize(outcomes: &[HostOutcome]) -> Summary {
    let mut summary = Summary {
        hosts: outcomes.len(),
        ..Summary::default()
    };
    for outcome in outcomes {
        summary.traffic += outcome.traffic;
        match &outcome.plan {
            Ok(plan) if plan.is_empty() => summary.unchanged += 1,
            Ok(plan) => {
                summary.with_changes += 1;
                summary.to_create += plan
                    .changes
                    .iter()
                    .filter(|c| c.action == Action::Create)
                    .count();
                summary.to_update += plan
                    .changes
                    .iter()
                    .filter(|c| c.action == Action::Update)
                    .count();
            }
            Err(err) if err.is_unreachable() => summary.unreachable += 1,
            Err(_) => summary.failed += 1,
        }
    }
    summary
}

#[derive(Serialize)]
struct JsonHost<'a> {
    host: &'a str,
    address: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    plan: Option<&'a HostPlan>,
    traffic: crate::transport::Traffic,
}

fn status(plan: &Result<HostPlan>) -> &'static str {
    match plan {
        Ok(plan) if plan.is_empty() => "unchanged",
        Ok(_) => "changes",
        Err(err) if err.is_unreachable() => "unreachable",
        Err(_) => "failed",
    }
}

/// The JSON document `{"hosts": [...], "summary": ...}`.
fn json(out: &mut dyn std::io::Write, outcomes: &[HostOutcome]) -> std::io::Result<()> {
    let hosts = outcomes.iter().map(|o| JsonHost {
        host: &o.host,
        address: &o.address,
        status: status(&o.plan),
        error: o.plan.as_ref().err().map(|e| e.to_string()),
        plan: o.plan.as_ref().ok(),
        traffic: o.traffic,
    });
    let summary = serde_json::to_value(summarize(outcomes)).expect("plan serialises");
    super::json_document(out, hosts, &[("summary", summary)])
}

fn human(outcomes: &[HostOutcome]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        host_section(&mut out, outcome);
    }
    let s = summarize(outcomes);
    let _ = writeln!(
        out,
        "{} {} host(s): {} with changes ({} to create, {} to update), {} unchanged, {} unreachable, {} failed",
        style("Plan:").bold(),
        s.hosts,
        s.with_changes,
        s.to_create,
        s.to_update,
        s.unchanged,
        s.unreachable,
        s.failed
    );
    out
}

fn host_section(out: &mut String, outcome: &HostOutcome) {
    let title = style(format!("{} ({})", outcome.host, outcome.address)).bold();
    let plan = match &outcome.plan {
        Err(err) => {
            let cause = err.cause();
            // An unreachable host's cause says so itself.
            let (label, cause) = match cause.strip_prefix("unreachable: ") {
                Some(rest) if err.is_unreachable() => ("unreachable", rest),
                _ if err.is_unreachable() => ("unreachable", cause.as_str()),
                _ => ("failed", cause.as_str()),
            };
            let _ = writeln!(
                out,
                "{title}: {}: {}\n",
                style(label).red().bold(),
                super::escape(cause)
            );
            return;
        }
        Ok(plan) => plan,
    };
    if plan.is_empty() {
        let _ = writeln!(out, "{title}: {}", style("no changes").green());
    } else {
        let created = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Create)
            .count();
        let _ = writeln!(
            out,
            "{title}: {} to create, {} to update",
            created,
            plan.changes.len() - created
        );
    }
    for change in &plan.changes {
        change_lines(out, change);
    }
    for user in &plan.docker_group_additions {
        let _ = writeln!(
            out,
            "  {} {} joins the docker group",
            style("+").green(),
            super::escape(user)
        );
    }
    if !plan.handlers.is_empty() {
        let names: Vec<&str> = plan.handlers.iter().map(|h| h.describe()).collect();
        let _ = writeln!(out, "  {} {}", style("handlers:").cyan(), names.join(", "));
    }
    for note in &plan.notes {
        let _ = writeln!(out, "  {} {}", style("note:").cyan(), super::escape(note));
    }
    for warning in &plan.warnings {
        let _ = writeln!(
            out,
            "  {} {}",
            style("warning:").yellow(),
            super::escape(warning)
        );
    }
    out.push('\n');
}

fn change_lines(out: &mut String, change: &Change) {
    let (sign, paint) = match change.action {
        Action::Create => ("+", Style::new().green()),
        Action::Update => ("~", Style::new().yellow()),
    };
    let kind = match change.kind {
        PathKind::Directory => "directory",
        _ => "file",
    };
    let mut attributes = Vec::new();
    if let Some(mode) = &change.mode {
        attributes.push(match &mode.from {
            Some(from) => format!("mode {from} -> {}", mode.to),
            None => format!("mode {}", mode.to),
        });
    }
    for (label, attribute) in [("owner", &change.owner), ("group", &change.group)] {
        if let Some(attribute) = attribute {
            attributes.push(match &attribute.from {
                Some(from) => format!("{label} {from} -> {}", attribute.to),
                None => format!("{label} {}", attribute.to),
            });
        }
    }
    let attributes = if attributes.is_empty() {
        String::new()
    } else {
        format!("  ({})", attributes.join(", "))
    };
    let _ = writeln!(
        out,
        "  {} {kind} {}{attributes}",
        paint.apply_to(sign),
        change.path
    );
    match &change.content {
        None => {}
        Some(ContentChange::Certificate { before, after }) => {
            certificate_lines(out, before.as_ref(), after)
        }
        Some(ContentChange::Secret) => {
            let _ = writeln!(out, "      content changes (secret: not shown)");
        }
        Some(ContentChange::Pending { reason }) => {
            let _ = writeln!(out, "      content: {}", super::escape(reason));
        }
        Some(ContentChange::Opaque {
            before_sha256,
            after_sha256,
        }) => {
            let before = before_sha256.as_deref().unwrap_or("none");
            let _ = writeln!(
                out,
                "      content changes (not text): sha256 {before} -> {after_sha256}"
            );
        }
        Some(ContentChange::Json { keys, .. }) => {
            for key in keys {
                let line = match key {
                    KeyChange::Added { key, value } => {
                        style(escape(&format!("+ {}: {value}", Value::from(key.as_str())))).green()
                    }
                    KeyChange::Changed { key, from, to } => style(escape(&format!(
                        "~ {}: {from} -> {to}",
                        Value::from(key.as_str())
                    )))
                    .yellow(),
                    KeyChange::Removed { key, value } => {
                        style(escape(&format!("- {}: {value}", Value::from(key.as_str())))).red()
                    }
                };
                let _ = writeln!(out, "      {line}");
            }
        }
        Some(ContentChange::Text { before, after }) => {
            unified_diff(out, &change.path, before, after)
        }
    }
    if let Some(check) = &change.validate {
        let _ = writeln!(
            out,
            "      {} {}",
            style("checked before it replaces the old one, with:").cyan(),
            super::escape(check)
        );
    }
}

/// A certificate change as a reviewer reads it: each field, old -> new
/// where it changes (summarized here, the one place a plan is shown).
fn certificate_lines(out: &mut String, before: Option<&CertPem>, after: &CertPem) {
    let after = match after.summary() {
        Ok(after) => after,
        Err(error) => {
            let line = format!("certificate that cannot be read: {error}");
            let _ = writeln!(out, "      {}", super::escape(&line));
            return;
        }
    };
    let fields = |c: &CertSummary| {
        [
            ("subject", c.subject.clone()),
            ("SANs", c.sans.clone()),
            ("issuer", c.issuer.clone()),
            ("not after", c.not_after.clone()),
            ("sha256", c.fingerprint.clone()),
        ]
    };
    let old = before.and_then(|b| b.summary().ok()).map(|b| fields(&b));
    let _ = writeln!(out, "      certificate (valid from {}):", after.not_before);
    for (index, (label, new)) in fields(&after).into_iter().enumerate() {
        let line = match old.as_ref().map(|o| &o[index].1) {
            Some(old) if *old != new => format!("{label}: {old} -> {new}"),
            _ => format!("{label}: {new}"),
        };
        let _ = writeln!(out, "        {}", super::escape(&line));
    }
}

fn unified_diff(out: &mut String, path: &str, before: &str, after: &str) {
    let diff = TextDiff::from_lines(before, after);
    let _ = writeln!(out, "      {}", style(format!("--- {path} (host)")).red());
    let _ = writeln!(
        out,
        "      {}",
        style(format!("+++ {path} (playbook)")).green()
    );
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        let _ = writeln!(out, "      {}", style(hunk.header()).cyan());
        for change in hunk.iter_changes() {
            let text = super::escape(change.value().trim_end_matches('\n'));
            let line = match change.tag() {
                ChangeTag::Delete => style(format!("-{text}")).red(),
                ChangeTag::Insert => style(format!("+{text}")).green(),
                ChangeTag::Equal => style(format!(" {text}")),
            };
            let _ = writeln!(out, "      {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::{Action, Change, ContentChange, HostPlan};
    use crate::core::state::PathKind;

    /// A certificate for web1 with these SANs, issued by "dockhand CA",
    /// valid 2026-11-22 to 2027-11-22.
    fn web1_certificate(sans: &[&str]) -> Vec<u8> {
        use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.distinguished_name = DistinguishedName::new();
        ca.distinguished_name
            .push(DnType::CommonName, "dockhand CA");
        let issuer = Issuer::new(ca, ca_key);
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "web1");
        params.not_before = rcgen::date_time_ymd(2026, 11, 22);
        params.not_after = rcgen::date_time_ymd(2027, 11, 22);
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &issuer).unwrap().pem().into_bytes()
    }

    fn certificate_change(before: Option<&[u8]>, after: &[u8]) -> Change {
        Change {
            path: "/etc/docker/tls/server-cert.pem".into(),
            kind: PathKind::File,
            action: Action::Update,
            secret: false,
            content: Some(ContentChange::Certificate {
                before: before.map(|b| CertPem::of(b).unwrap()),
                after: CertPem::of(after).unwrap(),
            }),
            mode: None,
            owner: None,
            group: None,
            validate: Some("openssl x509 -noout -in %s".into()),
        }
    }

    #[test]
    fn a_certificate_change_reads_old_to_new() {
        let old = web1_certificate(&["web1"]);
        let new = web1_certificate(&["web1", "192.0.2.7"]);
        let fingerprint = |pem: &[u8]| CertPem::of(pem).unwrap().summary().unwrap().fingerprint;
        let mut out = String::new();
        change_lines(&mut out, &certificate_change(Some(&old), &new));
        let plain = console::strip_ansi_codes(&out).into_owned();
        for line in [
            "      certificate (valid from 2026-11-22):",
            "        subject: CN=web1",
            "        SANs: DNS:web1 -> DNS:web1, IP:192.0.2.7",
            "        issuer: CN=dockhand CA",
            "        not after: 2027-11-22",
            &format!(
                "        sha256: {} -> {}",
                fingerprint(&old),
                fingerprint(&new)
            ),
        ] {
            assert!(plain.lines().any(|l| l == line), "{line:?} in\n{plain}");
        }
        assert!(!plain.contains("BEGIN"));
    }

    /// A plan holds a certificate's PEM and reads it only when shown: one
    /// that cannot be read says so, in print and in JSON, and the rest of
    /// the change is still shown.
    #[test]
    fn a_certificate_that_cannot_be_read_is_said_so_when_shown() {
        let broken = b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
        let good = web1_certificate(&["web1"]);
        for (before, after) in [(None, &broken[..]), (Some(&broken[..]), &good[..])] {
            let change = certificate_change(before, after);
            let mut out = String::new();
            change_lines(&mut out, &change);
            let plain = console::strip_ansi_codes(&out).into_owned();
            assert!(plain.contains("checked before it replaces"), "{plain}");
            let json = serde_json::to_value(&change).unwrap();
            if before.is_none() {
                assert!(
                    plain.contains("certificate that cannot be read: not a PEM certificate"),
                    "{plain}"
                );
                assert!(json["content"]["after"]["unreadable"].is_string(), "{json}");
            } else {
                // The old one unreadable: the new one is shown whole.
                assert!(plain.contains("        subject: CN=web1"), "{plain}");
                assert!(
                    json["content"]["before"]["unreadable"].is_string(),
                    "{json}"
                );
                assert_eq!(json["content"]["after"]["subject"], "CN=web1", "{json}");
            }
            assert!(!json.to_string().contains("BEGIN"), "{json}");
        }
    }

    #[test]
    fn bytes_from_a_host_never_reach_the_terminal_raw() {
        let change = Change {
            path: "/etc/motd".into(),
            kind: PathKind::File,
            action: Action::Update,
            secret: false,
            content: Some(ContentChange::Text {
                before: "hello\u{1b}]0;owned\u{7}\u{1b}[2J\r\n".into(),
                after: "hello\n".into(),
            }),
            mode: None,
            owner: None,
            group: None,
            validate: Some("grep -q hello %s".into()),
        };
        let outcome = HostOutcome {
            host: "web1".into(),
            address: "198.18.0.11".into(),
            traffic: Default::default(),
            plan: Ok(HostPlan {
                changes: vec![change],
                warnings: vec!["evil \u{1b}[31mred".into()],
                ..HostPlan::default()
            }),
        };
        let text = human(&[outcome]);
        assert!(
            !text.contains('\u{1b}') || console::colors_enabled(),
            "{text:?}"
        );
        let plain = console::strip_ansi_codes(&text).into_owned();
        assert!(
            !plain.contains('\u{7}') && !plain.contains('\r'),
            "{plain:?}"
        );
        assert!(
            plain.contains("-hello\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{d}"),
            "{plain}"
        );
        assert!(plain.contains("warning: evil \\u{1b}[31mred"), "{plain}");
        assert!(
            plain.contains("checked before it replaces the old one, with: grep -q hello %s"),
            "{plain}"
        );
    }

    #[test]
    fn a_host_that_failed_or_was_unreachable_is_said_so_once() {
        let outcome = |cause| HostOutcome {
            host: "web1".into(),
            address: "127.0.0.1".into(),
            traffic: Default::default(),
            plan: Err(crate::error::Error::on_host("web1", cause)),
        };
        let refused = crate::error::HostError::Unreachable {
            addr: "127.0.0.1:1".into(),
            reason: "Connection refused".into(),
        };
        let timed_out = crate::error::HostError::ConnectTimeout {
            addr: "127.0.0.1:22".into(),
            seconds: 10,
        };
        let failed = crate::error::HostError::Step {
            step: "gather".into(),
            reason: "no answer".into(),
        };
        for (cause, said) in [
            (
                refused,
                "web1 (127.0.0.1): unreachable: cannot connect to 127.0.0.1:1: Connection refused",
            ),
            (
                timed_out,
                "web1 (127.0.0.1): unreachable: no SSH handshake with 127.0.0.1:22 within 10s",
            ),
            (failed, "web1 (127.0.0.1): failed: gather: no answer"),
        ] {
            let text = console::strip_ansi_codes(&human(&[outcome(cause)])).into_owned();
            assert_eq!(text.lines().next(), Some(said), "{text}");
        }
    }

    /// A password in a URL (a registry mirror, a proxy) is masked in every
    /// form a plan takes: the diff, the key changes, warnings and JSON.
    #[test]
    fn no_password_of_a_url_is_ever_printed() {
        let secret_json = r#"{"registry-mirrors": ["https://ci:s3cret@mirror.invalid/v2"], "proxies": {"http-proxy": "http://bob:hunter2@proxy.invalid:3128"}}"#;
        let change = Change {
            path: "/etc/docker/daemon.json".into(),
            kind: PathKind::File,
            action: Action::Update,
            secret: false,
            content: Some(ContentChange::Json {
                keys: vec![KeyChange::Added {
                    key: "registry-mirrors".into(),
                    value: serde_json::json!(["https://ci:s3cret@mirror.invalid/v2"]),
                }],
                before: "{}\n".into(),
                after: format!("{secret_json}\n"),
            }),
            mode: None,
            owner: None,
            group: None,
            validate: None,
        };
        let outcome = || HostOutcome {
            host: "web1".into(),
            address: "198.18.0.11".into(),
            traffic: Default::default(),
            plan: Ok(HostPlan {
                changes: vec![change.clone()],
                warnings: vec!["a mirror at https://ci:s3cret@mirror.invalid is kept".into()],
                ..HostPlan::default()
            }),
        };
        let text = console::strip_ansi_codes(&human(&[outcome()])).into_owned();
        let json = super::super::json_text(|out| json(out, &[outcome()]));
        // Printed a host at a time, the document is byte for byte the
        // whole one printed at once.
        let outcomes = [outcome(), outcome()];
        let whole = serde_json::json!({
            "hosts": outcomes.iter().map(|o| JsonHost {
                host: &o.host,
                address: &o.address,
                status: status(&o.plan),
                error: None,
                plan: o.plan.as_ref().ok(),
                traffic: o.traffic,
            }).collect::<Vec<_>>(),
            "summary": summarize(&outcomes),
        });
        assert_eq!(
            super::super::json_text(|out| super::json(out, &outcomes)),
            serde_json::to_string_pretty(&crate::report::masked(whole)).unwrap() + "\n"
        );
        for shown in [&text, &json] {
            assert!(
                !shown.contains("s3cret") && !shown.contains("hunter2"),
                "{shown}"
            );
            assert!(shown.contains("https://ci:***@mirror.invalid"), "{shown}");
        }
        assert!(json.contains("http://bob:***@proxy.invalid:3128"), "{json}");
        assert_eq!(
            crate::core::mask_credentials(
                "tcp://0.0.0.0:2376 unix:///run/docker.sock https://tok@h/x"
            ),
            "tcp://0.0.0.0:2376 unix:///run/docker.sock https://***@h/x"
        );
    }
}
