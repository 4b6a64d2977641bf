//! The only place (with `main`) that writes to the terminal. Progress goes
//! to stderr, results to stdout. Colour only where the stream is a terminal
//! (console decides per stream, and honours NO_COLOR / CLICOLOR_FORCE).

pub mod apply;
pub mod ping;
pub mod plan;
pub mod progress;

use std::io::Write;
use std::time::Duration;

use console::style;

use crate::error::{Error, Result};
use crate::lab::{HostStatus, LabEvent, LabPaths, LabState};
use crate::transport::Traffic;

/// `-v`: what each host cost on the wire, and the run's total, on stderr.
pub fn traffic(hosts: &[(&str, Traffic)]) {
    let mut total = Traffic::default();
    for (host, traffic) in hosts {
        eprintln!("{host}: {traffic}");
        total += *traffic;
    }
    if hosts.len() > 1 {
        eprintln!("all {} hosts: {total}", hosts.len());
    }
}

/// Human (terminal-aware) or one JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// One host's plan, or why there is none.
#[derive(Debug)]
pub struct HostOutcome {
    pub host: String,
    pub address: String,
    pub plan: Result<crate::core::plan::HostPlan>,
    pub traffic: Traffic,
}

/// One host's apply (or verify) outcome: what changed, or why it failed.
#[derive(Debug)]
pub struct ApplyOutcome {
    pub host: String,
    pub address: String,
    pub elapsed: Duration,
    pub traffic: Traffic,
    /// The plan's warnings and notes: what apply kept or replaced, in words.
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub result: Result<(
        crate::core::outcome::Applied,
        // The paths changed.
        Vec<std::sync::Arc<str>>,
    )>,
}

/// One host's audit: its findings, or why it could not be audited.
#[derive(Debug)]
pub struct AuditOutcome {
    pub host: String,
    pub findings: Result<Vec<crate::core::audit::Finding>>,
}

/// The audit: a table per host (the worst first), or one JSON document.
pub fn audit(outcomes: &[AuditOutcome], format: Format) {
    use crate::core::audit::Verdict;
    let mut totals = std::collections::BTreeMap::new();
    for outcome in outcomes {
        for finding in outcome.findings.as_deref().unwrap_or(&[]) {
            *totals
                .entry(format!("{:?}", finding.verdict).to_lowercase())
                .or_insert(0) += 1;
        }
    }
    let unreachable = outcomes.iter().filter(|o| o.findings.is_err()).count();
    if format == Format::Json {
        let hosts: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|o| match &o.findings {
                Ok(findings) => serde_json::json!({"host": o.host, "findings": findings}),
                Err(e) => serde_json::json!({"host": o.host, "error": e.to_string()}),
            })
            .collect();
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "hosts": hosts,
            "summary": {"verdicts": totals, "not_audited": unreachable},
        }))
        .expect("audit serialises");
        raw_stdout(&(text + "\n"));
        return;
    }
    let mut out = String::new();
    for outcome in outcomes {
        out.push_str(&format!("{}\n", style(&outcome.host).bold()));
        match &outcome.findings {
            Err(e) => out.push_str(&format!(
                "  {} {}\n",
                style("error:").red(),
                escape(&e.to_string())
            )),
            Ok(findings) => {
                let mut sorted: Vec<_> = findings.iter().collect();
                sorted.sort_by_key(|f| std::cmp::Reverse(f.verdict));
                for f in sorted {
                    let verdict = match f.verdict {
                        Verdict::Fail => style("FAIL").red().bold(),
                        Verdict::Warn => style("WARN").yellow(),
                        Verdict::Info => style("INFO").cyan(),
                        Verdict::Pass => style("PASS").green(),
                    };
                    out.push_str(&format!(
                        "  {verdict:<4} {:<10} {}: {}\n",
                        f.id,
                        f.title,
                        escape(&f.reason)
                    ));
                    if !f.fix.is_empty() {
                        out.push_str(&format!("       {:<10} fix: {}\n", "", escape(&f.fix)));
                    }
                }
            }
        }
    }
    out.push_str(&format!(
        "{} {} host(s): {} fail, {} warn, {} pass, {} info{}\n",
        style("Audit:").bold(),
        outcomes.len(),
        totals.get("fail").unwrap_or(&0),
        totals.get("warn").unwrap_or(&0),
        totals.get("pass").unwrap_or(&0),
        totals.get("info").unwrap_or(&0),
        if unreachable > 0 {
            format!(", {unreachable} not audited")
        } else {
            String::new()
        }
    ));
    raw_stdout(&out);
}

/// Something the local PKI did (stderr).
pub fn pki_event(message: &str) {
    eprintln!("{} {message}", style("pki:").cyan().for_stderr());
}

/// `pki list`: a table of every certificate (stdout), or one JSON document.
pub fn pki_list(entries: &[crate::pki::Entry], format: Format) {
    use crate::pki::EntryDetails;
    if format == Format::Json {
        let text = serde_json::to_string_pretty(&serde_json::json!({ "certificates": entries }))
            .expect("entries serialise");
        raw_stdout(&(text + "\n"));
        return;
    }
    let mut out = format!(
        "{:<7} {:<16} {:<24} {:<20} {:<11} {:>9}  {}\n",
        "KIND", "NAME", "SUBJECT", "ISSUER", "EXPIRES", "DAYS LEFT", "SANS"
    );
    for entry in entries {
        let line = match &entry.details {
            EntryDetails::Read {
                subject,
                issuer,
                sans,
                expires,
                days_left,
                ..
            } => format!(
                "{:<7} {:<16} {:<24} {:<20} {:<11} {:>9}  {}",
                entry.kind,
                entry.name,
                subject,
                issuer,
                expires.get(..10).unwrap_or(expires),
                days_left,
                sans
            ),
            EntryDetails::Unreadable { error } => {
                format!("{:<7} {:<16} unreadable: {error}", entry.kind, entry.name)
            }
        };
        out.push_str(&escape(&line));
        out.push('\n');
    }
    raw_stdout(&out);
}

/// Where a question and what it is about are shown, when someone can
/// answer (standard input is a terminal, as Terraform asks) and see it (on
/// standard output or standard error). `apply | tee apply.log` is asked
/// (it applied unasked), its plan on stderr; `--format json | jq` too,
/// its stdout left to the JSON, on a terminal as well.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Asking {
    /// What the question is about goes to stderr: stdout is no terminal,
    /// or holds the JSON document alone.
    pub shown_on_stderr: bool,
    /// The question goes to stdout: stderr is no terminal.
    pub asked_on_stdout: bool,
}

impl Asking {
    /// How to ask here, if anyone can be asked, the report in `format`.
    pub fn here(format: Format) -> Option<Asking> {
        use std::io::IsTerminal;
        let stdin = std::io::stdin().is_terminal();
        let streams = (stdin, std::io::stdout().is_terminal());
        Asking::given(streams, std::io::stderr().is_terminal(), format)
    }

    /// How to ask with these streams on a terminal.
    fn given((stdin, stdout): (bool, bool), stderr: bool, format: Format) -> Option<Asking> {
        let json = matches!(format, Format::Json);
        (stdin && (stdout || stderr)).then_some(Asking {
            shown_on_stderr: !stdout || (json && stderr),
            asked_on_stdout: !stderr,
        })
    }
}

/// Writes `text` where `asking` shows what a question is about.
pub fn shown(asking: Asking, text: &str) {
    written(asking.shown_on_stderr, text);
}

/// Writes `text` at once on stderr, or else on stdout.
fn written(on_stderr: bool, text: &str) {
    if on_stderr {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    } else {
        raw_stdout(text);
    }
}

/// Asks a yes/no question on the terminal; only `yes` is yes (as in
/// Terraform: a stray `y` or Enter must not change a fleet). An interrupt
/// while it waits (`cancelled`) is a no.
pub fn confirm(question: &str, asking: Asking, cancelled: &dyn Fn() -> bool) -> Result<bool> {
    let on_stderr = !asking.asked_on_stdout;
    written(on_stderr, &format!("{question} Only 'yes' is accepted: "));
    let (sender, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().read_line(&mut line).map(|_| line);
        let _ = sender.send(read);
    });
    loop {
        match answer.recv_timeout(Duration::from_millis(100)) {
            Ok(read) => {
                let line =
                    read.map_err(|e| Error::Usage(format!("cannot read the answer: {e}")))?;
                return Ok(line.trim() == "yes");
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if cancelled() => {
                // The question's line ends where it was asked.
                written(on_stderr, "\n");
                return Ok(false);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(false),
        }
    }
}

pub use crate::core::outcome::PingReply;

/// One host's outcome of `ping`.
#[derive(Debug)]
pub struct PingOutcome {
    pub host: String,
    pub reply: Result<PingReply>,
    pub traffic: Traffic,
}

pub fn error(err: &Error) {
    eprintln!(
        "{} {}",
        style("error:").red().bold().for_stderr(),
        escape(&err.to_string())
    );
}

/// Text that came from a host (file content, command output, names) as it
/// may reach a terminal: control characters become visible escapes
/// (`\u{1b}`), so a host can never move the cursor, recolour or rewrite
/// what the user reads (tabs stay), and the password of every URL is
/// masked.
pub fn escape(text: &str) -> String {
    let masked = crate::core::mask_credentials(text);
    let control = |c: char| c.is_control() && c != '\t';
    // Most lines have nothing to escape: they are kept as they are.
    if !masked.chars().any(control) {
        return masked;
    }
    let mut out = String::with_capacity(masked.len() + 16);
    for c in masked.chars() {
        if control(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// A JSON report with the password of every URL in every string masked,
/// as the human form masks them.
pub(crate) fn masked(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(crate::core::mask_credentials(&text)),
        Value::Array(items) => Value::Array(items.into_iter().map(masked).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (crate::core::mask_credentials(&key), masked(value)))
                .collect(),
        ),
        other => other,
    }
}

/// A report's JSON document, `{"hosts": [...], KEY: VALUE, ...}`, masked
/// and pretty-printed one host at a time into `out`: a fleet of thousands
/// is never held whole, as one JSON tree (several times its size) nor as
/// one text. The bytes are those of masking and pretty-printing the whole
/// document at once (a test holds them so).
pub(crate) fn json_document<H: serde::Serialize>(
    out: &mut dyn std::io::Write,
    hosts: impl IntoIterator<Item = H>,
    rest: &[(&str, serde_json::Value)],
) -> std::io::Result<()> {
    let pretty = |value: serde_json::Value| {
        serde_json::to_string_pretty(&masked(value)).expect("report serialises")
    };
    // Each line of a nested value, indented to its depth (JSON text has
    // no raw newline inside a string, so lines are safe to indent).
    let nest = |out: &mut dyn std::io::Write, text: &str, indent: &str| {
        for (i, line) in text.lines().enumerate() {
            if i > 0 {
                write!(out, "\n{indent}")?;
            }
            out.write_all(line.as_bytes())?;
        }
        Ok::<(), std::io::Error>(())
    };
    out.write_all(b"{\n  \"hosts\": [")?;
    let mut empty = true;
    for host in hosts {
        out.write_all(if empty { b"\n    " } else { b",\n    " })?;
        empty = false;
        let host = serde_json::to_value(host).expect("report serialises");
        nest(out, &pretty(host), "    ")?;
    }
    if !empty {
        out.write_all(b"\n  ")?;
    }
    out.write_all(b"]")?;
    for (key, value) in rest {
        out.write_all(b",\n  ")?;
        out.write_all(pretty(serde_json::Value::String((*key).to_string())).as_bytes())?;
        out.write_all(b": ")?;
        nest(out, &pretty(value.clone()), "  ")?;
    }
    out.write_all(b"\n}\n")
}

/// Writes a JSON document to stdout through a buffer, as it is made.
pub(crate) fn json_stdout(write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = write(&mut out).and_then(|()| out.flush());
}

/// A JSON document as text (the tests compare it).
#[cfg(test)]
pub(crate) fn json_text(
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> String {
    let mut out = Vec::new();
    write(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// `dockhand inventory`: each host as dockhand understood it, in its own
/// inventory's terms (YAML), or as JSON.
pub fn inventory(hosts: &[crate::core::input::inventory::Host], json: bool) {
    let hosts: Vec<serde_json::Value> = hosts
        .iter()
        .map(|host| {
            let ssh = &host.ssh;
            let mut settings = serde_json::Map::new();
            let mut set = |key: &str, value: Option<serde_json::Value>| {
                if let Some(value) = value {
                    settings.insert(key.into(), value);
                }
            };
            set("user", ssh.user.clone().map(Into::into));
            set("port", ssh.port.map(Into::into));
            set(
                "identity_file",
                ssh.identity_file
                    .as_ref()
                    .map(|p| p.display().to_string().into()),
            );
            set(
                "known_hosts",
                ssh.known_hosts
                    .as_ref()
                    .map(|p| p.display().to_string().into()),
            );
            set("become", ssh.become_root.map(Into::into));
            set("jump", ssh.jump.clone().map(Into::into));
            set("connect_timeout", ssh.connect_timeout.map(Into::into));
            serde_json::json!({
                "name": host.name,
                "address": host.address,
                "groups": host.groups,
                "ssh": settings,
                "vars": host.template_vars().all(),
            })
        })
        .collect();
    let document = masked(serde_json::json!({ "hosts": hosts }));
    let text = if json {
        serde_json::to_string_pretty(&document).expect("inventory serialises") + "\n"
    } else {
        serde_yaml::to_string(&document).expect("inventory serialises")
    };
    raw_stdout(&text);
}

/// The line `pki client` prints for users to `eval`: every value quoted,
/// so no byte of an inventory or a path can run anything.
pub fn docker_exports(docker_host: Option<&str>, bundle: &std::path::Path) {
    let quote = crate::core::shell_quote;
    let docker_host = docker_host
        .map(|endpoint| format!("DOCKER_HOST={} ", quote(endpoint)))
        .unwrap_or_default();
    raw_stdout(&format!(
        "export {docker_host}DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={}\n",
        quote(&bundle.to_string_lossy())
    ));
}

pub fn raw_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

pub fn lab_event(event: &LabEvent) {
    let line = match event {
        LabEvent::BuildingBase { dir, release } => format!(
            "building the lab's Debian {release} base in {} (once per release; about two minutes)",
            dir.display()
        ),
        LabEvent::WaitingForBase { dir, release } => format!(
            "waiting for another lab up, which builds the Debian {release} base in {}",
            dir.display()
        ),
        LabEvent::BaseReady { dir } => format!("base: {}", dir.display()),
        LabEvent::HostKept { name } => format!("{name}: running, kept"),
        LabEvent::HostStale { name } => format!("{name}: not running, replacing it"),
        LabEvent::HostOtherRelease { name, release } => {
            format!("{name}: runs {release}, replacing it")
        }
        LabEvent::HostBooting { name, address } => format!("{name}: booting at {address}"),
        LabEvent::HostStopping { name } => format!("{name}: stopping"),
        LabEvent::LeftoverRemoved { what } => format!("removed leftover {what}"),
    };
    eprintln!("{} {line}", style("lab:").cyan().for_stderr());
}

pub fn lab_host_ready(name: &str, elapsed: Duration) {
    eprintln!(
        "{} {name}: answers SSH, docker active ({:.1}s)",
        style("lab:").cyan().for_stderr(),
        elapsed.as_secs_f64()
    );
}

pub fn lab_up_summary(paths: &LabPaths, state: &LabState, elapsed: Duration) {
    println!(
        "lab `{}`: {} host(s) up in {:.1}s",
        state.name,
        state.hosts.len(),
        elapsed.as_secs_f64()
    );
    for host in &state.hosts {
        println!(
            "  {:<12} {:<15} debian {} ({})",
            host.name,
            host.address,
            host.release.version(),
            host.release
        );
    }
    println!("inventory:   {}", paths.inventory().display());
    println!("ssh key:     {}", paths.key().display());
    println!("known_hosts: {}", paths.known_hosts().display());
}

pub fn lab_down(name: &str) {
    println!("lab `{name}`: down");
}

pub fn lab_status(name: &str, hosts: &[HostStatus]) {
    println!("lab `{name}`: {} host(s)", hosts.len());
    for host in hosts {
        let state = if host.running {
            style("running").green()
        } else {
            style("stopped").red()
        };
        println!(
            "  {:<12} {:<15} {:<8} {state}",
            host.name, host.address, host.release
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{Asking, Format};
    #[test]
    fn asked_when_someone_can_answer_and_see_the_question() {
        let at = |shown_on_stderr, asked_on_stdout| {
            Some(Asking {
                shown_on_stderr,
                asked_on_stdout,
            })
        };
        // (stdin, stdout, stderr) on a terminal, JSON on stdout
        for (streams, asked) in [
            ((true, true, true, false), at(false, false)),
            // `apply | tee log`, `apply --format json | jq`
            ((true, false, true, false), at(true, false)),
            ((true, false, true, true), at(true, false)),
            // `apply --format json`: stdout is the JSON document alone
            ((true, true, true, true), at(true, false)),
            // `apply 2> log`, in either format
            ((true, true, false, false), at(false, true)),
            ((true, true, false, true), at(false, true)),
            // Nothing to answer with, or nowhere to see the question.
            ((false, true, true, false), None),
            ((true, false, false, false), None),
            ((false, false, false, true), None),
        ] {
            let (stdin, stdout, stderr, json) = streams;
            let format = if json { Format::Json } else { Format::Human };
            let asking = Asking::given((stdin, stdout), stderr, format);
            assert_eq!(asking, asked, "{streams:?}");
        }
    }

    #[test]
    fn escape_shows_control_characters_and_masks_passwords() {
        for (text, shown) in [
            ("plain line", "plain line"),
            ("tab\tkept", "tab\tkept"),
            ("bell\u{7} and\r\nbreak", "bell\\u{7} and\\u{d}\\u{a}break"),
            ("\u{1b}[31mred", "\\u{1b}[31mred"),
            ("https://u:secret@host/x\n", "https://u:***@host/x\\u{a}"),
            ("ünïcödé stays", "ünïcödé stays"),
        ] {
            assert_eq!(super::escape(text), shown, "{text:?}");
        }
    }
}
