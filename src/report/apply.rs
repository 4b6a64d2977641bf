//! Rendering apply and verify: a progress line per host as it ends, then
//! the summary (changed / unchanged / failed / unreachable, per host and in
//! total), or one JSON document.

use std::fmt::Write as _;
use std::time::Duration;

use console::style;
use serde::Serialize;

use super::{ApplyOutcome, Format};
use crate::core::outcome::Applied;
use crate::core::playbook::Handler;

fn status(outcome: &ApplyOutcome) -> &'static str {
    match &outcome.result {
        Ok((Applied::Unchanged, _)) => "unchanged",
        Ok((Applied::Changed { .. }, _)) => "changed",
        Err(err) if err.is_unreachable() => "unreachable",
        Err(crate::error::Error::Skipped { .. }) => "skipped",
        Err(_) => "failed",
    }
}

#[derive(Serialize, Default, PartialEq, Debug)]
pub struct Summary {
    pub hosts: usize,
    pub changed: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub unreachable: usize,
    pub skipped: usize,
}

pub fn summarize(outcomes: &[ApplyOutcome]) -> Summary {
    let mut summary = Summary {
        hosts: outcomes.len(),
        ..Summary::default()
    };
    for outcome in outcomes {
        match status(outcome) {
            "changed" => summary.changed += 1,
            "unchanged" => summary.unchanged += 1,
            "unreachable" => summary.unreachable += 1,
            "skipped" => summary.skipped += 1,
            _ => summary.failed += 1,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    changes: Vec<&'a str>,
    handlers: Vec<Handler>,
    warnings: &'a [String],
    notes: &'a [String],
}

pub fn print(outcomes: &[ApplyOutcome], format: Format, elapsed: Duration) {
    let summary = summarize(outcomes);
    let text = match format {
        Format::Json => {
            let hosts: Vec<JsonHost> = outcomes
                .iter()
                .map(|o| JsonHost {
                    host: &o.host,
                    address: &o.address,
                    status: status(o),
                    seconds: o.elapsed.as_secs_f64(),
                    error: o.result.as_ref().err().map(|e| e.to_string()),
                    changes: o
                        .result
                        .as_ref()
                        .map(|(_, changes)| changes.iter().map(|c| c.path.as_str()).collect())
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
                })
                .collect();
            serde_json::to_string_pretty(&serde_json::json!({
                "hosts": hosts,
                "summary": summary,
                "seconds": elapsed.as_secs_f64(),
            }))
            .expect("report serialises")
                + "\n"
        }
        Format::Human => {
            let mut out = String::new();
            for outcome in outcomes {
                let label = match status(outcome) {
                    "changed" => style("changed").yellow(),
                    "unchanged" => style("unchanged").green(),
                    other => style(other).red().bold(),
                };
                let detail = match &outcome.result {
                    Ok((_, changes)) if !changes.is_empty() => changes
                        .iter()
                        .map(|c| c.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
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
            let _ = writeln!(
                out,
                "{} {} host(s): {} changed, {} unchanged, {} failed, {} unreachable{} ({:.1}s)",
                style("Apply:").bold(),
                summary.hosts,
                summary.changed,
                summary.unchanged,
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
