//! Rendering apply and verify: a progress line per host as it ends, then
//! the summary (changed / unchanged / failed / unreachable, per host and in
//! total), or one JSON document.

use std::fmt::Write as _;
use std::time::Duration;

use console::style;
use serde::Serialize;

use super::{ApplyOutcome, Format};
use crate::core::input::playbook::Handler;
use crate::core::outcome::Applied;

/// Which command's outcomes these are: verify reports a host that passed
/// as `verified`, never as `unchanged`, which would suggest an apply ran.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Run {
    Apply,
    Verify,
}

fn status(outcome: &ApplyOutcome, run: Run) -> &'static str {
    match &outcome.result {
        Ok(_) if run == Run::Verify => "verified",
        Ok((Applied::Unchanged, _)) => "unchanged",
        Ok((Applied::Changed { .. }, _)) => "changed",
        Err(err) if err.is_unreachable() => "unreachable",
        Err(crate::error::Error::OnHost {
            cause: crate::error::HostError::Skipped { .. },
            ..
        }) => "skipped",
        Err(_) => "failed",
    }
}

/// The counts: an apply's have `changed` and `unchanged`, a verify's
/// `verified`.
#[derive(Serialize, Default, PartialEq, Debug)]
pub struct Summary {
    pub hosts: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unchanged: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<usize>,
    pub failed: usize,
    pub unreachable: usize,
    pub skipped: usize,
    /// What the hosts cost on the wire, summed.
    pub traffic: crate::transport::Traffic,
}

pub fn summarize(outcomes: &[ApplyOutcome], run: Run) -> Summary {
    let zero = |wanted: bool| wanted.then_some(0);
    let mut summary = Summary {
        hosts: outcomes.len(),
        changed: zero(run == Run::Apply),
        unchanged: zero(run == Run::Apply),
        verified: zero(run == Run::Verify),
        ..Summary::default()
    };
    for outcome in outcomes {
        summary.traffic += outcome.traffic;
        let count = match status(outcome, run) {
            "changed" => summary.changed.as_mut(),
            "unchanged" => summary.unchanged.as_mut(),
            "verified" => summary.verified.as_mut(),
            "unreachable" => Some(&mut summary.unreachable),
            "skipped" => Some(&mut summary.skipped),
            _ => Some(&mut summary.failed),
        };
        if let Some(count) = count {
            *count += 1;
        }
    }
    summary
}

#[derive(Serialize)]
struct JsonHost<'a> {
    host: &'a str,
    address: &'a str,
    status: &'static str,
    seconds: f64,
    traffic: crate::transport::Traffic,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    changes: Vec<&'a str>,
    handlers: Vec<Handler>,
    warnings: &'a [String],
    notes: &'a [String],
}

/// One host as the JSON report shows it.
fn json_host(o: &ApplyOutcome, run: Run) -> JsonHost<'_> {
    JsonHost {
        host: &o.host,
        address: &o.address,
        status: status(o, run),
        seconds: o.elapsed.as_secs_f64(),
        traffic: o.traffic,
        error: o.result.as_ref().err().map(|e| e.to_string()),
        changes: o
            .result
            .as_ref()
            .map(|(_, changes)| changes.iter().map(|path| &**path).collect())
            .unwrap_or_default(),
        handlers: match &o.result {
            Ok((Applied::Changed { handlers, .. }, _)) => handlers.clone(),
            _ => Vec::new(),
        },
        warnings: &o.warnings,
        // Notes tell what a change did: none without one.
        notes: match &o.result {
            Ok((Applied::Changed { .. }, _)) => &o.notes,
            _ => &[],
        },
    }
}

/// The JSON document `{"hosts": [...], "summary": ..., "seconds": ...}`.
fn json(
    out: &mut dyn std::io::Write,
    outcomes: &[ApplyOutcome],
    run: Run,
    summary: &Summary,
    elapsed: Duration,
) -> std::io::Result<()> {
    super::json_document(
        out,
        outcomes.iter().map(|o| json_host(o, run)),
        &[
            (
                "summary",
                serde_json::to_value(summary).expect("report serialises"),
            ),
            ("seconds", serde_json::json!(elapsed.as_secs_f64())),
        ],
    )
}

pub fn print(outcomes: &[ApplyOutcome], run: Run, format: Format, elapsed: Duration) {
    let summary = summarize(outcomes, run);
    let text = match format {
        Format::Json => {
            return super::json_stdout(|out| json(out, outcomes, run, &summary, elapsed));
        }
        Format::Human => {
            let mut out = String::new();
            for outcome in outcomes {
                let label = match status(outcome, run) {
                    "changed" => style("changed").yellow(),
                    "unchanged" => style("unchanged").green(),
                    "verified" => style("verified").green(),
                    other => style(other).red().bold(),
                };
                let detail = match &outcome.result {
                    Ok((_, changes)) if !changes.is_empty() => changes.join(", "),
                    Ok(_) => String::new(),
                    Err(err) => super::escape(&err.to_string()),
                };
                let _ = writeln!(out, "{:<16} {label:<11} {detail}", outcome.host);
                if matches!(outcome.result, Ok((Applied::Changed { .. }, _))) {
                    for note in &outcome.notes {
                        let _ = writeln!(
                            out,
                            "{:<16} {} {}",
                            "",
                            style("note:").cyan(),
                            super::escape(note)
                        );
                    }
                }
                for warning in &outcome.warnings {
                    let _ = writeln!(
                        out,
                        "{:<16} {} {}",
                        "",
                        style("warning:").yellow(),
                        super::escape(warning)
                    );
                }
            }
            let (title, counts) = match run {
                Run::Apply => (
                    "Apply:",
                    format!(
                        "{} changed, {} unchanged",
                        summary.changed.unwrap_or(0),
                        summary.unchanged.unwrap_or(0)
                    ),
                ),
                Run::Verify => (
                    "Verify:",
                    format!("{} verified", summary.verified.unwrap_or(0)),
                ),
            };
            let _ = writeln!(
                out,
                "{} {} host(s): {counts}, {} failed, {} unreachable{} ({:.1}s)",
                style(title).bold(),
                summary.hosts,
                summary.failed,
                summary.unreachable,
                if summary.skipped > 0 {
                    format!(", {} skipped", summary.skipped)
                } else {
                    String::new()
                },
                elapsed.as_secs_f64()
            );
            out
        }
    };
    super::raw_stdout(&text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, HostError};

    fn outcome(result: crate::error::Result<Applied>) -> ApplyOutcome {
        ApplyOutcome {
            host: "h".into(),
            address: "192.0.2.1".into(),
            elapsed: Duration::ZERO,
            traffic: crate::transport::Traffic {
                logins: 1,
                commands: 1,
                channels: 1,
                round_trips: 1,
                probes: 2,
            },
            warnings: Vec::new(),
            notes: Vec::new(),
            result: result.map(|applied| (applied, Vec::new())),
        }
    }

    /// The report printed one host at a time is, byte for byte, the whole
    /// document pretty-printed at once (as it was made before).
    #[test]
    fn the_json_report_is_the_whole_document_printed_at_once() {
        let mut changed = outcome(Ok(Applied::Changed {
            changes: 2,
            handlers: vec![Handler::RestartDocker],
        }));
        changed.result = changed.result.map(|(a, _)| {
            (
                a,
                vec!["/etc/docker/daemon.json".into(), "/etc/docker/tls".into()],
            )
        });
        changed.notes = vec!["a note with \"quotes\"\nand a newline".into()];
        changed.warnings = vec!["https://user:secret@example.invalid/x".into()];
        let failed = outcome(Err(Error::OnHost {
            host: "h".into(),
            cause: HostError::Step {
                step: "verify".into(),
                reason: "refused".into(),
            },
        }));
        for outcomes in [
            vec![],
            vec![outcome(Ok(Applied::Unchanged))],
            vec![changed, failed, outcome(Ok(Applied::Unchanged))],
        ] {
            for run in [Run::Apply, Run::Verify] {
                let elapsed = Duration::from_millis(1234);
                let summary = summarize(&outcomes, run);
                let hosts: Vec<JsonHost> = outcomes.iter().map(|o| json_host(o, run)).collect();
                let whole =
                    serde_json::to_string_pretty(&super::super::masked(serde_json::json!({
                        "hosts": hosts,
                        "summary": summary,
                        "seconds": elapsed.as_secs_f64(),
                    })))
                    .unwrap()
                        + "\n";
                assert_eq!(
                    super::super::json_text(|out| json(out, &outcomes, run, &summary, elapsed)),
                    whole
                );
            }
        }
    }

    #[test]
    fn apply_counts_changes_and_verify_counts_hosts_that_passed() {
        let outcomes = [
            outcome(Ok(Applied::Unchanged)),
            outcome(Ok(Applied::Unchanged)),
            outcome(Err(Error::OnHost {
                host: "h".into(),
                cause: HostError::Step {
                    step: "verify".into(),
                    reason: "refused".into(),
                },
            })),
            outcome(Err(Error::OnHost {
                host: "h".into(),
                cause: HostError::Skipped {
                    reason: "interrupted".into(),
                },
            })),
        ];
        let traffic = serde_json::json!({"logins": 4, "commands": 4, "channels": 4, "round_trips": 4, "probes": 8});
        let cases = [
            (
                Run::Apply,
                serde_json::json!({"hosts": 4, "changed": 0, "unchanged": 2, "failed": 1, "unreachable": 0, "skipped": 1, "traffic": traffic}),
            ),
            (
                Run::Verify,
                serde_json::json!({"hosts": 4, "verified": 2, "failed": 1, "unreachable": 0, "skipped": 1, "traffic": traffic}),
            ),
        ];
        for (run, want) in cases {
            let summary = serde_json::to_value(summarize(&outcomes, run)).unwrap();
            assert_eq!(summary, want, "{run:?}");
        }
        assert_eq!(status(&outcomes[0], Run::Verify), "verified");
        assert_eq!(status(&outcomes[0], Run::Apply), "unchanged");
    }
}
