//! Live progress of a run, rendered in one place from the runner's events:
//! on a terminal, indicatif bars (the rollout, and a line per host in
//! flight with its current step; finished hosts print above the bars);
//! off a terminal, one plain line per event with the time since the start,
//! and no control characters. Always on stderr: stdout carries the plan,
//! the summary and JSON.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::core::event::{Event, HostStatus};
use crate::engine::fleet::Sink;

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars on a terminal, plain lines elsewhere.
    Auto,
    Bars,
    Plain,
    None,
}

/// Host lines shown under the rollout bar; the rest are counted.
const MAX_HOST_LINES: usize = 12;

/// Takes a command's bars out of the way, from any thread.
#[derive(Clone)]
pub struct Suspender {
    multi: Option<MultiProgress>,
    tally: Tally,
}

impl Suspender {
    /// Runs `f` with the bars out of the way (a prompt, the plan): they
    /// are not drawn until it returns. What the run reported before is
    /// shown first: the hosts' lines came after the question.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.tally.caught_up();
        match &self.multi {
            Some(multi) => multi.suspend(f),
            None => f(),
        }
    }
}

/// How far the renderer is: the events sent to it, and those it showed.
#[derive(Clone, Default)]
struct Tally {
    sent: Arc<AtomicU64>,
    shown: Arc<AtomicU64>,
    /// Woken from its pause to catch up at once.
    renderer: Option<std::thread::Thread>,
}

/// The longest a question waits for the renderer: a stuck renderer
/// delays it, and never stops the run.
const CATCH_UP: Duration = Duration::from_secs(1);

impl Tally {
    /// Returns once every event sent so far is shown, or after
    /// [`CATCH_UP`].
    fn caught_up(&self) {
        let (sent, deadline) = (self.sent.load(Ordering::SeqCst), Instant::now() + CATCH_UP);
        while self.shown.load(Ordering::SeqCst) < sent && Instant::now() < deadline {
            if let Some(renderer) = &self.renderer {
                renderer.unpark();
            }
            std::thread::sleep(RENDER_PAUSE / 10);
        }
    }
}

/// The renderer of one command, on a thread of its own.
pub struct Progress {
    sender: Option<Sender<Option<Event>>>,
    thread: Option<JoinHandle<()>>,
    multi: Option<MultiProgress>,
    tally: Tally,
}

impl Progress {
    /// `verbose`: plain lines also say when each step ended.
    pub fn start(mode: Mode, verbose: bool) -> Progress {
        let mode = match mode {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Bars,
            Mode::Auto => Mode::Plain,
            other => other,
        };
        match mode {
            Mode::None => Progress {
                sender: None,
                thread: None,
                multi: None,
                tally: Tally::default(),
            },
            Mode::Plain => {
                let (sender, receiver) = channel();
                let tally = Tally::default();
                let shown = tally.shown.clone();
                let thread = std::thread::spawn(move || {
                    plain(receiver, &shown, verbose, |lines| {
                        use std::io::Write as _;
                        let _ = std::io::stderr().lock().write_all(lines.as_bytes());
                    });
                });
                Progress::rendered_by(sender, thread, None, tally)
            }
            Mode::Bars | Mode::Auto => {
                let multi = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(
                    Box::new(console::Term::stderr()),
                ));
                Progress::with_bars(multi)
            }
        }
    }

    /// Bars drawn on `multi`'s target (a terminal, or a test's screen).
    pub fn with_bars(multi: MultiProgress) -> Progress {
        let (sender, receiver) = channel();
        let drawn = multi.clone();
        let tally = Tally::default();
        let shown = tally.shown.clone();
        let thread = std::thread::spawn(move || {
            let mut bars = Bars::new(drawn);
            each_batch(&receiver, &shown, |events| {
                events.iter().for_each(|e| bars.show(e))
            });
            bars.finish();
        });
        Progress::rendered_by(sender, thread, Some(multi), tally)
    }

    fn rendered_by(
        sender: Sender<Option<Event>>,
        thread: JoinHandle<()>,
        multi: Option<MultiProgress>,
        tally: Tally,
    ) -> Progress {
        let renderer = Some(thread.thread().clone());
        Progress {
            sender: Some(sender),
            thread: Some(thread),
            multi,
            tally: Tally { renderer, ..tally },
        }
    }

    /// Where the runner sends its events.
    pub fn sink(&self) -> Sink {
        match &self.sender {
            Some(sender) => Sink::counted(sender.clone(), self.tally.sent.clone()),
            None => Sink::default(),
        }
    }

    /// What takes the bars out of the way, for a thread of its own.
    pub fn suspender(&self) -> Suspender {
        Suspender {
            multi: self.multi.clone(),
            tally: self.tally.clone(),
        }
    }

    /// Renders what is left and takes the bars off the screen.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(None);
        }
        if let Some(thread) = self.thread.take() {
            // A renderer resting between batches is woken for the end, so
            // the command does not wait out its pause before it exits.
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.close();
    }
}

/// Plain lines, written a batch at a time (`write` is given whole lines).
fn plain(
    receiver: Receiver<Option<Event>>,
    shown: &AtomicU64,
    verbose: bool,
    mut write: impl FnMut(&str),
) {
    let started = Instant::now();
    each_batch(&receiver, shown, |events| {
        let mut lines = String::new();
        for event in events {
            if !verbose && matches!(event, Event::StepFinished { .. }) {
                continue;
            }
            if let Some(line) = plain_line(started.elapsed(), &event) {
                lines.push_str(&line);
                lines.push('\n');
            }
        }
        if !lines.is_empty() {
            write(&lines);
        }
    });
}

/// How long the renderer rests after showing what had come: below what
/// an eye or a log's timestamps tell apart. The end of the run cuts the
/// rest short ([`Progress::finish`] unparks the renderer).
const RENDER_PAUSE: Duration = Duration::from_millis(20);

/// Shows the events in order until the end (`None`, or every sender
/// gone), a batch at a time: what has come is shown, then the renderer
/// rests. A renderer blocked on the channel is woken by every event (a
/// futex call in the runner's thread, a context switch in this one),
/// which on a fleet of thousands cost more CPU than showing the events;
/// resting, it is woken once per pause, and senders wake nobody.
fn each_batch(
    receiver: &Receiver<Option<Event>>,
    shown: &AtomicU64,
    mut show: impl FnMut(Vec<Event>),
) {
    let mut show_counted = |batch: Vec<Event>| {
        let count = batch.len() as u64;
        show(batch);
        shown.fetch_add(count, Ordering::SeqCst);
    };
    while let Ok(mut next) = receiver.recv() {
        let mut batch = Vec::new();
        loop {
            let Some(event) = next else {
                show_counted(batch);
                return;
            };
            batch.push(event);
            match receiver.try_recv() {
                Ok(event) => next = event,
                Err(_) => break,
            }
        }
        show_counted(batch);
        std::thread::park_timeout(RENDER_PAUSE);
    }
}

/// One event as a plain line: the time since the start, then what
/// happened. Text that came from a host has its control characters
/// escaped, so the line is one line and moves no cursor.
pub fn plain_line(elapsed: Duration, event: &Event) -> Option<String> {
    Some(format!(
        "[{:>7.2}s] {}",
        elapsed.as_secs_f64(),
        escape(&describe(event)?)
    ))
}

/// What an event says, without time or colour.
fn describe(event: &Event) -> Option<String> {
    Some(match event {
        Event::Started {
            action,
            hosts,
            batches,
        } => match batches {
            0 | 1 => format!("{action}: {hosts} host(s)"),
            n => format!("{action}: {hosts} host(s) in {n} batches"),
        },
        Event::BatchStarted { number, of, hosts } => {
            format!("batch {number}/{of}: {hosts} host(s)")
        }
        Event::StepStarted { host, phase } => format!("{host}: {}", phase.label()),
        Event::StepFinished {
            host,
            phase,
            seconds,
        } => format!("{host}: {} done ({seconds:.2}s)", phase.label()),
        Event::Warning {
            host: Some(host),
            message,
        } => format!("{host}: warning: {message}"),
        Event::Warning {
            host: None,
            message,
        } => format!("warning: {message}"),
        Event::Certificate { message } => format!("pki: {message}"),
        Event::HostFinished {
            host,
            status,
            detail,
            seconds,
        } => host_line(host, *status, detail, *seconds),
        Event::BatchFinished {
            number,
            failed,
            hosts,
            stop,
        } => {
            let mut line = format!("batch {number}: {failed} of {hosts} host(s) failed");
            if let Some(stop) = stop {
                line.push_str(&format!("; the rollout stops ({stop})"));
            }
            line
        }
        Event::Interrupted {
            again: false,
            in_flight,
        } => format!(
            "interrupted: no new host starts; waiting for {} host(s) in flight{} (interrupt again to abandon them)",
            in_flight.len(),
            list(in_flight)
        ),
        Event::Interrupted {
            again: true,
            in_flight,
        } => format!(
            "interrupted again: abandoning {} host(s) in flight{}: they may be mid-change, run apply again",
            in_flight.len(),
            list(in_flight)
        ),
    })
}

fn list(hosts: &[String]) -> String {
    if hosts.is_empty() {
        String::new()
    } else {
        format!(": {}", hosts.join(", "))
    }
}

fn host_line(host: &str, status: HostStatus, detail: &str, seconds: f64) -> String {
    let mut line = format!("{host}: {}", status.word());
    if !detail.is_empty() {
        line.push_str(": ");
        line.push_str(detail);
    }
    if seconds > 0.0 {
        line.push_str(&format!(" ({seconds:.2}s)"));
    }
    line
}

pub use super::escape;

/// The bars: one for the rollout, one per host in flight.
struct Bars {
    multi: MultiProgress,
    main: ProgressBar,
    hosts: HashMap<String, ProgressBar>,
    /// Hosts in flight without a line of their own.
    unseen: usize,
    batch: String,
}

impl Bars {
    fn new(multi: MultiProgress) -> Bars {
        let main = multi.add(ProgressBar::new(0));
        main.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} hosts {msg} ({elapsed})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Bars {
            multi,
            main,
            hosts: HashMap::new(),
            unseen: 0,
            batch: String::new(),
        }
    }

    fn show(&mut self, event: &Event) {
        match event {
            Event::Started {
                action,
                hosts,
                batches: _,
            } => {
                self.main.set_prefix(action.clone());
                self.main.set_length(*hosts as u64);
                self.main.set_position(0);
                self.main.enable_steady_tick(Duration::from_millis(200));
            }
            Event::BatchStarted { number, of, .. } => {
                self.batch = format!("batch {number}/{of}");
                self.refresh();
            }
            Event::StepStarted { host, phase } => {
                if !self.hosts.contains_key(host) {
                    if self.hosts.len() >= MAX_HOST_LINES {
                        self.unseen += 1;
                        self.hosts.insert(host.clone(), ProgressBar::hidden());
                    } else {
                        let bar = self.multi.add(ProgressBar::new_spinner());
                        bar.set_style(
                            ProgressStyle::with_template("  {spinner} {prefix:<16} {msg}")
                                .expect("a valid template"),
                        );
                        bar.set_prefix(host.clone());
                        bar.enable_steady_tick(Duration::from_millis(120));
                        self.hosts.insert(host.clone(), bar);
                    }
                    self.refresh();
                }
                if let Some(bar) = self.hosts.get(host) {
                    bar.set_message(phase.label());
                }
            }
            Event::StepFinished { .. } => {}
            Event::HostFinished {
                host,
                status,
                detail,
                seconds,
            } => {
                if let Some(bar) = self.hosts.remove(host) {
                    if bar.is_hidden() {
                        self.unseen = self.unseen.saturating_sub(1);
                    }
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                self.main.inc(1);
                let line = host_line(host, *status, detail, *seconds);
                let painted = match status {
                    HostStatus::Failed | HostStatus::Unreachable | HostStatus::Aborted => {
                        console::style(escape(&line)).red().to_string()
                    }
                    HostStatus::Changed => console::style(escape(&line)).yellow().to_string(),
                    HostStatus::Skipped => console::style(escape(&line)).dim().to_string(),
                    _ => console::style(escape(&line)).green().to_string(),
                };
                let _ = self.multi.println(painted);
                self.refresh();
            }
            other => {
                if let Some(text) = describe(other) {
                    let _ = self.multi.println(escape(&text));
                }
            }
        }
    }

    fn refresh(&self) {
        let flying = self.hosts.len();
        let mut message = self.batch.clone();
        if flying > 0 {
            if !message.is_empty() {
                message.push_str(", ");
            }
            message.push_str(&format!("{flying} in flight"));
            if self.unseen > 0 {
                message.push_str(&format!(" ({} not shown)", self.unseen));
            }
        }
        self.main.set_message(message);
    }

    fn finish(self) {
        for bar in self.hosts.values() {
            bar.finish_and_clear();
        }
        self.main.finish_and_clear();
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::Phase;
    use crate::core::input::playbook::Handler;

    fn at(seconds: f64, event: Event) -> String {
        plain_line(Duration::from_secs_f64(seconds), &event).unwrap()
    }

    #[test]
    fn plain_lines_say_each_event_once_with_the_time() {
        let cases = [
            (
                at(
                    0.0,
                    Event::Started {
                        action: "apply".into(),
                        hosts: 8,
                        batches: 3,
                    },
                ),
                "[   0.00s] apply: 8 host(s) in 3 batches",
            ),
            (
                at(
                    0.5,
                    Event::BatchStarted {
                        number: 2,
                        of: 3,
                        hosts: 4,
                    },
                ),
                "[   0.50s] batch 2/3: 4 host(s)",
            ),
            (
                at(
                    1.25,
                    Event::StepStarted {
                        host: "web1".into(),
                        phase: Phase::Committing {
                            handlers: vec![Handler::DaemonReload, Handler::RestartDocker],
                        },
                    },
                ),
                "[   1.25s] web1: replacing files, restarting docker",
            ),
            (
                at(
                    2.0,
                    Event::StepFinished {
                        host: "web1".into(),
                        phase: Phase::Gathering,
                        seconds: 0.123,
                    },
                ),
                "[   2.00s] web1: gathering done (0.12s)",
            ),
            (
                at(
                    3.0,
                    Event::HostFinished {
                        host: "web1".into(),
                        status: HostStatus::Changed,
                        detail: "6 change(s); ran restart docker".into(),
                        seconds: 2.5,
                    },
                ),
                "[   3.00s] web1: changed: 6 change(s); ran restart docker (2.50s)",
            ),
            (
                at(
                    3.0,
                    Event::HostFinished {
                        host: "web2".into(),
                        status: HostStatus::Skipped,
                        detail: "not started: the run was interrupted".into(),
                        seconds: 0.0,
                    },
                ),
                "[   3.00s] web2: skipped: not started: the run was interrupted",
            ),
            (
                at(
                    4.0,
                    Event::BatchFinished {
                        number: 1,
                        failed: 1,
                        hosts: 1,
                        stop: Some("not reached: 1 of 1 host(s) in batch 1 failed".into()),
                    },
                ),
                "[   4.00s] batch 1: 1 of 1 host(s) failed; the rollout stops (not reached: 1 of 1 host(s) in batch 1 failed)",
            ),
            (
                at(
                    5.0,
                    Event::Interrupted {
                        again: false,
                        in_flight: vec!["web3".into(), "web4".into()],
                    },
                ),
                "[   5.00s] interrupted: no new host starts; waiting for 2 host(s) in flight: web3, web4 (interrupt again to abandon them)",
            ),
            (
                at(
                    6.0,
                    Event::Warning {
                        host: Some("web1".into()),
                        message: "evil\u{1b}[2J\rtext\nmore".into(),
                    },
                ),
                "[   6.00s] web1: warning: evil\\u{1b}[2J\\u{d}text\\u{a}more",
            ),
            (
                at(
                    123.456,
                    Event::Certificate {
                        message: "issued the server certificate of web1".into(),
                    },
                ),
                "[ 123.46s] pki: issued the server certificate of web1",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(line, expected);
            assert!(!line.chars().any(char::is_control), "{line:?}");
        }
    }

    #[test]
    fn bars_show_the_rollout_and_each_host_step() {
        let term = indicatif::InMemoryTerm::new(20, 100);
        let multi =
            MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())));
        let progress = Progress::with_bars(multi);
        let sink = progress.sink();
        sink.send(Event::Started {
            action: "apply".into(),
            hosts: 3,
            batches: 2,
        });
        sink.send(Event::BatchStarted {
            number: 1,
            of: 2,
            hosts: 1,
        });
        for (host, phase) in [
            ("web1", Phase::Verifying),
            (
                "web2",
                Phase::Committing {
                    handlers: vec![Handler::RestartDocker],
                },
            ),
        ] {
            sink.send(Event::StepStarted {
                host: host.into(),
                phase,
            });
        }
        sink.send(Event::HostFinished {
            host: "web1".into(),
            status: HostStatus::Changed,
            detail: "6 change(s)".into(),
            seconds: 1.0,
        });
        // The renderer runs on its own thread: give it a moment.
        let screen = (0..50)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(20));
                term.contents()
            })
            .find(|s| s.contains("1/3 hosts") && s.contains("restarting docker"))
            .unwrap_or_else(|| term.contents());
        assert!(
            screen.contains("web1: changed: 6 change(s) (1.00s)"),
            "{screen}"
        );
        assert!(screen.contains("apply ["), "{screen}");
        assert!(
            screen.contains("1/3 hosts batch 1/2, 1 in flight"),
            "{screen}"
        );
        assert!(
            screen.contains("web2             replacing files, restarting docker"),
            "{screen}"
        );
        drop(sink);
        progress.finish();
        assert!(!term.contents().contains("in flight"), "bars cleared");
    }

    /// Lines come in the events' order, a batch written at a time, and the
    /// end comes after every event sent before it, however the sends fall
    /// against the renderer's pauses.
    #[test]
    fn plain_lines_come_in_order_in_batches_and_none_is_lost() {
        let (sender, receiver) = channel();
        let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let written = writes.clone();
        let renderer = std::thread::spawn(move || {
            plain(receiver, &AtomicU64::default(), false, |lines| {
                written.lock().unwrap().push(lines.to_string())
            })
        });
        let warning = |n: usize| {
            Some(Event::Warning {
                host: Some(format!("web{n}")),
                message: "m".into(),
            })
        };
        for n in 0..50 {
            sender.send(warning(n)).unwrap();
            if n % 10 == 0 {
                std::thread::sleep(RENDER_PAUSE / 2);
            }
        }
        sender.send(None).unwrap();
        // Sent after the end: not shown.
        let _ = sender.send(warning(99));
        renderer.join().unwrap();
        let writes = writes.lock().unwrap();
        let hosts: Vec<String> = writes
            .concat()
            .lines()
            .map(|line| line.split_whitespace().nth(2).unwrap().to_string())
            .collect();
        let expected: Vec<String> = (0..50).map(|n| format!("web{n}:")).collect();
        assert_eq!(hosts, expected);
        assert!(writes.len() < 50, "one write per batch: {}", writes.len());
        assert!(writes.iter().all(|w| w.ends_with('\n')));
    }

    /// A question (the plan, a prompt) comes after every line the run
    /// reported before it: the renderer catches up before the bars are
    /// held, where the hosts' lines came after the user's answer.
    #[test]
    fn a_question_comes_after_every_line_sent_before_it() {
        let term = indicatif::InMemoryTerm::new(40, 100);
        let multi =
            MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())));
        let progress = Progress::with_bars(multi);
        let (sink, suspender) = (progress.sink(), progress.suspender());
        for round in 0..5 {
            for n in 0..5 {
                sink.send(Event::HostFinished {
                    host: format!("web{round}-{n}"),
                    status: HostStatus::Changed,
                    detail: "planned".into(),
                    seconds: 0.1,
                });
            }
            let last = format!("web{round}-4");
            let shown = suspender.suspend(|| term.contents());
            assert!(shown.contains(&last), "{last} missing:\n{shown}");
        }
        progress.finish();
    }
}
