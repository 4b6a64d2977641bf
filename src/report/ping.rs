//! Rendering `dockhand ping`: a line per host (its name, login user, sudo
//! and docker's state, or why it could not be reached) and the totals, or
//! one JSON document with each host's traffic.

use serde::Serialize;

use super::{Format, PingOutcome, escape};
use crate::transport::Traffic;

fn status(outcome: &PingOutcome) -> &'static str {
    match &outcome.reply {
        Ok(_) => "ok",
        Err(err) if err.is_unreachable() => "unreachable",
        Err(_) => "failed",
    }
}

/// The counts, and what the hosts cost on the wire, summed.
#[derive(Serialize, Default, PartialEq, Debug)]
pub struct Summary {
    pub hosts: usize,
    pub ok: usize,
    pub failed: usize,
    pub unreachable: usize,
    pub traffic: Traffic,
}

pub fn summarize(outcomes: &[PingOutcome]) -> Summary {
    let mut summary = Summary {
        hosts: outcomes.len(),
        ..Summary::default()
    };
    for outcome in outcomes {
        summary.traffic += outcome.traffic;
        match status(outcome) {
            "ok" => summary.ok += 1,
            "unreachable" => summary.unreachable += 1,
            _ => summary.failed += 1,
        }
    }
    summary
}

#[derive(Serialize)]
struct JsonHost<'a> {
    host: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    docker: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sudo: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    traffic: Traffic,
}

/// The JSON document `{"hosts": [...], "summary": ...}`.
fn json(out: &mut dyn std::io::Write, outcomes: &[PingOutcome]) -> std::io::Result<()> {
    let hosts = outcomes.iter().map(|o| {
        let reply = o.reply.as_ref().ok();
        JsonHost {
            host: &o.host,
            status: status(o),
            hostname: reply.map(|r| r.hostname.as_str()),
            user: reply.map(|r| r.user.as_str()),
            docker: reply.map(|r| r.docker.as_str()),
            sudo: reply.and_then(|r| r.sudo.as_deref()),
            error: o.reply.as_ref().err().map(|e| e.to_string()),
            traffic: o.traffic,
        }
    });
    let summary = serde_json::to_value(summarize(outcomes)).expect("report serialises");
    super::json_document(out, hosts, &[("summary", summary)])
}

/// The result table in the hosts' order and the totals, or the JSON
/// document.
pub fn print(outcomes: &[PingOutcome], format: Format) {
    let text = match format {
        Format::Json => return super::json_stdout(|out| json(out, outcomes)),
        Format::Human => human(outcomes),
    };
    super::raw_stdout(&text);
}

fn human(outcomes: &[PingOutcome]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        let line = match &outcome.reply {
            Ok(reply) => {
                let sudo = reply
                    .sudo
                    .as_ref()
                    .map(|s| format!(" sudo={s}"))
                    .unwrap_or_default();
                format!(
                    "{:<16} ok          hostname={} user={} docker={}{}",
                    outcome.host,
                    escape(&reply.hostname),
                    escape(&reply.user),
                    escape(&reply.docker),
                    escape(&sudo)
                )
            }
            Err(err) => format!(
                "{:<16} {:<11} {}",
                outcome.host,
                status(outcome),
                escape(&err.to_string())
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    let summary = summarize(outcomes);
    out.push_str(&format!(
        "{} host(s): {} ok, {} failed, {} unreachable\n",
        summary.hosts, summary.ok, summary.failed, summary.unreachable
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::outcome::PingReply;
    use crate::error::{Error, HostError};

    fn traffic(logins: u32) -> Traffic {
        Traffic {
            logins,
            commands: logins,
            channels: logins,
            round_trips: logins,
            probes: 0,
        }
    }

    fn outcomes() -> Vec<PingOutcome> {
        vec![
            PingOutcome {
                host: "web1".into(),
                reply: Ok(PingReply {
                    hostname: "web1".into(),
                    user: "deploy".into(),
                    docker: "active".into(),
                    sudo: Some("ok".into()),
                }),
                traffic: traffic(1),
            },
            PingOutcome {
                host: "web2".into(),
                reply: Err(Error::OnHost {
                    host: "web2".into(),
                    cause: HostError::Step {
                        step: "ping".into(),
                        reason: "exit 1".into(),
                    },
                }),
                traffic: traffic(1),
            },
        ]
    }

    #[test]
    fn the_json_report_has_each_host_its_traffic_and_the_totals() {
        let value: serde_json::Value =
            serde_json::from_str(&super::super::json_text(|out| json(out, &outcomes()))).unwrap();
        let hosts = value["hosts"].as_array().unwrap();
        assert_eq!(hosts[0]["status"], "ok");
        assert_eq!(hosts[0]["user"], "deploy");
        assert_eq!(hosts[0]["sudo"], "ok");
        assert_eq!(hosts[0]["traffic"]["round_trips"], 1);
        assert!(hosts[0].get("error").is_none());
        assert_eq!(hosts[1]["status"], "failed");
        assert!(hosts[1]["error"].as_str().unwrap().contains("exit 1"));
        assert!(hosts[1].get("user").is_none());
        assert_eq!(value["summary"]["hosts"], 2);
        assert_eq!(value["summary"]["ok"], 1);
        assert_eq!(value["summary"]["failed"], 1);
        assert_eq!(value["summary"]["traffic"]["logins"], 2);
    }

    #[test]
    fn the_human_report_ends_with_the_totals() {
        let text = human(&outcomes());
        assert!(text.starts_with(
            "web1             ok          hostname=web1 user=deploy docker=active sudo=ok\n"
        ));
        assert!(text.contains("web2             failed      "));
        assert!(text.ends_with("2 host(s): 1 ok, 1 failed, 0 unreachable\n"));
    }
}
