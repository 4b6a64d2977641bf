//! The fleet runner: every command that visits hosts runs through it. It
//! owns the forks (hosts at once), the batches of a rolling rollout and
//! the stop rule, each host's deadlines, and interrupts; it reports
//! through typed [`Event`]s on a channel and never prints.
//!
//! A host's work is a future given a [`HostRun`], through which it runs
//! each step under its deadline and reports it. Results come back in the
//! jobs' order (the inventory's), whatever order the hosts end in.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::core::event::{Event, Hold, HostStatus, Phase};
use crate::core::input::rollout;
use crate::error::{Error, HostError, Result};

/// Where events go: the renderer's channel, or nowhere. The channel also
/// carries the renderer's end marker (`None`), so every event sent before
/// it is rendered. Every event sent is counted, so a question can wait
/// until the renderer has shown all that came before it.
#[derive(Clone, Default)]
pub struct Sink(Option<(Sender<Option<Event>>, Arc<AtomicU64>)>);

impl Sink {
    /// Counted apart, by no renderer (a test's channel).
    pub fn new(sender: Sender<Option<Event>>) -> Sink {
        Sink::counted(sender, Arc::default())
    }

    /// A sink that counts what it sends in `sent`.
    pub fn counted(sender: Sender<Option<Event>>, sent: Arc<AtomicU64>) -> Sink {
        Sink(Some((sender, sent)))
    }

    /// Events nobody listens to are dropped: the run goes on.
    pub fn send(&self, event: Event) {
        if let Some((sender, sent)) = &self.0 {
            sent.fetch_add(1, Ordering::SeqCst);
            let _ = sender.send(Some(event));
        }
    }
}

/// The deadlines of remote steps. The handlers' step is longer by default:
/// it waits for systemd to restart docker, and a slow dockerd (many
/// containers to restore, a busy disk) takes its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Gathering, staging, probes, removing backups.
    pub step: Duration,
    /// Replacing files and running the handlers; rolling back.
    pub handlers: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            step: Duration::from_secs(60),
            handlers: Duration::from_secs(300),
        }
    }
}

impl Deadlines {
    /// `--timeout SECONDS`: one deadline for every step.
    pub fn uniform(limit: Duration) -> Self {
        Deadlines {
            step: limit,
            handlers: limit,
        }
    }
}

/// Ctrl-C and SIGTERM, counted. The first stops new hosts from starting;
/// the second abandons the hosts in flight.
#[derive(Clone)]
pub struct Interrupt {
    count: Arc<tokio::sync::watch::Sender<usize>>,
    /// The count last said to the user: an interrupt that came between
    /// two runs of a flow (while the PKI issued, say) is said by the next.
    said: Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt {
            count: Arc::new(tokio::sync::watch::channel(0).0),
            said: Arc::default(),
        }
    }
}

impl Interrupt {
    pub fn count(&self) -> usize {
        *self.count.borrow()
    }

    pub fn trigger(&self) {
        self.count.send_modify(|n| *n += 1);
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<usize> {
        self.count.subscribe()
    }

    /// Whether `count` is news to the user; it is not from now on.
    fn unsaid(&self, count: usize) -> bool {
        self.said
            .fetch_max(count, std::sync::atomic::Ordering::SeqCst)
            < count
    }

    /// Counts SIGINT and SIGTERM from now on (the process no longer dies
    /// of them), on a thread of its own: a signal is counted when it
    /// comes, whatever the command's runtime is doing (on one thread, it
    /// may be busy, or not yet running while the command loads its
    /// inputs, and an interrupt then must stop the first host from
    /// starting). Call it outside any runtime: it starts its own.
    pub fn listen_for_signals(&self) -> Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let error = |e: std::io::Error| Error::Usage(format!("cannot catch signals: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(error)?;
        // Registered here, before this returns: from now on they count.
        let (mut int, mut term) = runtime
            .block_on(async {
                let int = signal(SignalKind::interrupt())?;
                Ok((int, signal(SignalKind::terminate())?))
            })
            .map_err(error)?;
        let interrupt = self.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                runtime.block_on(async move {
                    loop {
                        tokio::select! {
                            Some(()) = int.recv() => interrupt.trigger(),
                            Some(()) = term.recv() => interrupt.trigger(),
                            else => break,
                        }
                    }
                })
            })
            .map_err(error)?;
        Ok(())
    }
}

/// What one host's work gets: its name, the events, the deadlines.
#[derive(Clone)]
pub struct HostRun {
    pub host: String,
    pub sink: Sink,
    pub deadlines: Deadlines,
}

impl HostRun {
    /// Runs one step under `limit`, reporting its start and its end. A
    /// step that misses its deadline fails the host, naming the step.
    pub async fn step<T>(
        &self,
        phase: Phase,
        limit: Duration,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.sink.send(Event::StepStarted {
            host: self.host.clone(),
            phase: phase.clone(),
        });
        let started = Instant::now();
        let result = match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::OnHost {
                host: self.host.clone(),
                cause: HostError::Deadline {
                    step: phase.label(),
                    seconds: limit.as_secs_f64(),
                },
            }),
        };
        if result.is_ok() {
            self.sink.send(Event::StepFinished {
                host: self.host.clone(),
                phase,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        result
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.sink.send(Event::Warning {
            host: Some(self.host.clone()),
            message: message.into(),
        });
    }
}

/// How a host's run ended.
#[derive(Debug)]
pub enum Ended<T> {
    Ran(Result<T>),
    /// Never started; why.
    Skipped(String),
    /// Abandoned in the middle by a second interrupt.
    Aborted,
}

impl<T> Ended<T> {
    pub fn is_ok(&self) -> bool {
        matches!(self, Ended::Ran(Ok(_)))
    }

    /// A host's end as a result: skipped and abandoned hosts are errors
    /// that say so.
    pub fn into_result(self, host: &str) -> Result<T> {
        match self {
            Ended::Ran(result) => result,
            Ended::Skipped(reason) => Err(Error::OnHost {
                host: host.to_string(),
                cause: HostError::Skipped { reason },
            }),
            Ended::Aborted => Err(Error::OnHost {
                host: host.to_string(),
                cause: HostError::Aborted {},
            }),
        }
    }
}

/// One host at the end of a run.
#[derive(Debug)]
pub struct Finished<T> {
    pub host: String,
    pub ended: Ended<T>,
    /// From the host's start to its end (zero when it never started).
    pub elapsed: Duration,
}

/// The status and one line the progress shows for a host that failed.
pub fn failure(err: &Error) -> (HostStatus, String) {
    let status = if err.is_unreachable() {
        HostStatus::Unreachable
    } else {
        HostStatus::Failed
    };
    (status, err.to_string())
}

/// What the runner reports of a finished host: its status and one line.
pub type Describe<T> = fn(&Result<T>) -> (HostStatus, String);

/// Rolling batches and the stop rule.
#[derive(Debug, Clone, Default)]
pub struct Rollout {
    pub serial: Option<rollout::Serial>,
    pub max_fail_percent: Option<u8>,
}

/// The runner of one command.
#[derive(Clone)]
pub struct Fleet {
    pub forks: usize,
    pub sink: Sink,
    pub deadlines: Deadlines,
    pub interrupt: Interrupt,
    /// What a prompt in the middle of the run holds.
    pub hold: Hold,
}

impl Fleet {
    /// Runs `work` on every job, all in one batch.
    pub async fn run<J, T, W, Fut>(
        &self,
        action: &str,
        jobs: Vec<(String, J)>,
        describe: Describe<T>,
        work: W,
    ) -> Vec<Finished<T>>
    where
        J: Send + 'static,
        T: Send + 'static,
        W: Fn(J, HostRun) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        self.roll_out(action, jobs, &Rollout::default(), describe, work)
            .await
    }

    /// Runs `work` on every job in batches: each batch is finished before
    /// the next starts, and when too many of a batch failed the rest are
    /// skipped. An interrupt lets the hosts in flight finish and skips
    /// every host not started; a second one abandons those in flight.
    pub async fn roll_out<J, T, W, Fut>(
        &self,
        action: &str,
        jobs: Vec<(String, J)>,
        rollout: &Rollout,
        describe: Describe<T>,
        work: W,
    ) -> Vec<Finished<T>>
    where
        J: Send + 'static,
        T: Send + 'static,
        W: Fn(J, HostRun) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let sizes = rollout::batches(jobs.len(), rollout.serial.as_ref());
        self.sink.send(Event::Started {
            action: action.to_string(),
            hosts: jobs.len(),
            batches: sizes.len(),
        });
        let count = self.interrupt.count();
        if count > 0 && self.interrupt.unsaid(count) {
            self.sink.send(Event::Interrupted {
                again: count > 1,
                in_flight: Vec::new(),
            });
        }
        let mut results: Vec<Finished<T>> = Vec::with_capacity(jobs.len());
        let mut queue = jobs.into_iter();
        let mut stopped: Option<String> = None;
        for (index, size) in sizes.iter().enumerate() {
            let batch: Vec<(String, J)> = queue.by_ref().take(*size).collect();
            if stopped.is_none() && self.interrupt.count() > 0 {
                stopped = Some("not started: the run was interrupted".into());
            }
            if let Some(reason) = &stopped {
                for (host, _) in batch {
                    self.finished(&host, HostStatus::Skipped, reason, 0.0);
                    results.push(Finished {
                        host,
                        ended: Ended::Skipped(reason.clone()),
                        elapsed: Duration::ZERO,
                    });
                }
                continue;
            }
            if sizes.len() > 1 {
                self.sink.send(Event::BatchStarted {
                    number: index + 1,
                    of: sizes.len(),
                    hosts: batch.len(),
                });
            }
            let done = self.batch(batch, describe, &work).await;
            let failed = done
                .iter()
                .filter(|f| !matches!(f.ended, Ended::Ran(Ok(_)) | Ended::Skipped(_)))
                .count();
            let ran = done
                .iter()
                .filter(|f| !matches!(f.ended, Ended::Skipped(_)))
                .count();
            if self.interrupt.count() > 0 {
                stopped = Some("not started: the run was interrupted".into());
            } else if index + 1 < sizes.len()
                && rollout::stop_after(failed, ran, rollout.max_fail_percent)
            {
                stopped = Some(format!(
                    "not reached: {failed} of {ran} host(s) in batch {} failed{}",
                    index + 1,
                    rollout
                        .max_fail_percent
                        .map(|p| format!(", over --max-fail-percent {p}"))
                        .unwrap_or_default()
                ));
            }
            if sizes.len() > 1 {
                self.sink.send(Event::BatchFinished {
                    number: index + 1,
                    failed,
                    hosts: ran,
                    stop: stopped.clone(),
                });
            }
            results.extend(done);
        }
        results
    }

    /// One batch, `forks` hosts at a time.
    async fn batch<J, T, W, Fut>(
        &self,
        batch: Vec<(String, J)>,
        describe: Describe<T>,
        work: &W,
    ) -> Vec<Finished<T>>
    where
        J: Send + 'static,
        T: Send + 'static,
        W: Fn(J, HostRun) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let forks = self.forks.max(1);
        let in_flight = Arc::new(Mutex::new(BTreeSet::new()));
        let names: Vec<String> = batch.iter().map(|(h, _)| h.clone()).collect();
        let mut slots: Vec<Option<(Ended<T>, Duration)>> = names.iter().map(|_| None).collect();
        let mut tasks = tokio::task::JoinSet::new();
        // Which host each task is, for a task that panics: its result is
        // lost, and the panic becomes that host's failure alone.
        let mut task_hosts = std::collections::HashMap::new();
        // A host's work is made and spawned only when a fork is free: a
        // host's future and its connections weigh up to 0.4 MiB, and a
        // fleet of thousands must not hold them all while it waits.
        let mut waiting = batch.into_iter().enumerate();
        let mut signals = self.interrupt.subscribe();
        loop {
            while tasks.len() < forks {
                let Some((index, (host, job))) = waiting.next() else {
                    break;
                };
                if self.interrupt.count() > 0 {
                    let reason = "not started: the run was interrupted";
                    self.finished(&host, HostStatus::Skipped, reason, 0.0);
                    slots[index] = Some((Ended::Skipped(reason.to_string()), Duration::ZERO));
                    continue;
                }
                let run = HostRun {
                    host: host.clone(),
                    sink: self.sink.clone(),
                    deadlines: self.deadlines,
                };
                let future = work(job, run);
                let (in_flight, sink) = (in_flight.clone(), self.sink.clone());
                in_flight.lock().unwrap().insert(host.clone());
                let host_of_task = host.clone();
                let handle = tasks.spawn(async move {
                    let started = Instant::now();
                    let result = future.await;
                    in_flight.lock().unwrap().remove(&host);
                    let (status, detail) = describe(&result);
                    let elapsed = started.elapsed();
                    sink.send(finished_event(
                        &host,
                        status,
                        &detail,
                        elapsed.as_secs_f64(),
                    ));
                    (index, (Ended::Ran(result), elapsed))
                });
                task_hosts.insert(handle.id(), (index, host_of_task, Instant::now()));
            }
            tokio::select! {
                joined = tasks.join_next_with_id() => match joined {
                    Some(Ok((id, (index, end)))) => {
                        // Held only until the task ends: a fleet of
                        // thousands does not keep one per host.
                        task_hosts.remove(&id);
                        slots[index] = Some(end);
                    }
                    Some(Err(e)) if e.is_panic() => {
                        let Some((index, host, started)) = task_hosts.remove(&e.id()) else {
                            std::panic::resume_unwind(e.into_panic());
                        };
                        in_flight.lock().unwrap().remove(&host);
                        let reason = format!(
                            "dockhand failed on this host ({}); the other hosts go on. Please report it",
                            panic_message(e.into_panic().as_ref())
                        );
                        let elapsed = started.elapsed();
                        self.finished(&host, HostStatus::Failed, &reason, elapsed.as_secs_f64());
                        let error = Error::OnHost { host, cause: HostError::Step { step: "internal error".into(), reason } };
                        slots[index] = Some((Ended::Ran(Err(error)), elapsed));
                    }
                    Some(Err(_)) => {}
                    None => break,
                },
                Ok(()) = signals.changed() => {
                    let count = *signals.borrow_and_update();
                    let flying: Vec<String> = in_flight.lock().unwrap().iter().cloned().collect();
                    if self.interrupt.unsaid(count) {
                        self.sink.send(Event::Interrupted { again: count > 1, in_flight: flying.clone() });
                    }
                    if count > 1 {
                        tasks.abort_all();
                        while tasks.join_next().await.is_some() {}
                        for (index, name) in names.iter().enumerate() {
                            if slots[index].is_none() {
                                let (status, detail) = if flying.contains(name) {
                                    (HostStatus::Aborted, "abandoned in the middle: it may be mid-change; run apply again")
                                } else {
                                    (HostStatus::Skipped, "not started: the run was interrupted")
                                };
                                self.finished(name, status, detail, 0.0);
                                let ended = if status == HostStatus::Aborted {
                                    Ended::Aborted
                                } else {
                                    Ended::Skipped(detail.to_string())
                                };
                                slots[index] = Some((ended, Duration::ZERO));
                            }
                        }
                        break;
                    }
                }
            }
        }
        names
            .into_iter()
            .zip(slots)
            .map(|(host, slot)| {
                let (ended, elapsed) = slot.unwrap_or((Ended::Aborted, Duration::ZERO));
                Finished {
                    host,
                    ended,
                    elapsed,
                }
            })
            .collect()
    }

    fn finished(&self, host: &str, status: HostStatus, detail: &str, seconds: f64) {
        self.sink
            .send(finished_event(host, status, detail, seconds));
    }
}

/// What a panic said, when it said it with text.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

fn finished_event(host: &str, status: HostStatus, detail: &str, seconds: f64) -> Event {
    Event::HostFinished {
        host: host.to_string(),
        status,
        detail: detail.to_string(),
        seconds,
    }
}

#[cfg(test)]
#[path = "fleet_tests.rs"]
mod tests;
