//! The fleet runner over the scripted fake fleet: batches and the stop
//! rule, deadlines, interrupts, and what the plain renderer prints, all
//! without root, a lab or a network.

use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::*;
use crate::core::event::{Event, HostStatus};
use crate::core::input::playbook::Playbook;
use crate::core::outcome::Applied;
use crate::core::roles::TlsMaterial;
use crate::engine::deploy::{self, Mode, NoQuestion, Plans};
use crate::engine::fake::{Act, FakeFleet, Step};
use crate::engine::load::Loaded;
use crate::engine::pipeline::HostJob;
use crate::transport::{HostKeyPolicy, Target};

const PLAYBOOK: &str = "files:\n  - path: /etc/motd\n    content: \"hello\\n\"\n";

fn playbook() -> Arc<Playbook> {
    Arc::new(Playbook::parse("p.yaml".as_ref(), PLAYBOOK).unwrap())
}

fn jobs(names: &[&str]) -> Vec<(String, HostJob)> {
    let text: String = std::iter::once("hosts:\n".to_string())
        .chain(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("  {n}: {{ address: 198.18.250.{} }}\n", i + 1)),
        )
        .collect();
    let inventory =
        crate::core::input::inventory::Inventory::parse("i.yaml".as_ref(), &text, None).unwrap();
    inventory
        .hosts
        .into_iter()
        .map(|host| {
            let target = Target {
                name: host.name.clone(),
                address: host.address.clone(),
                port: 22,
                user: "root".into(),
                identity_files: Vec::new().into(),
                use_agent: false,
                known_hosts: Vec::new().into(),
                host_key_policy: HostKeyPolicy::Strict,
                host_key_alias: None,
                connect_timeout: Duration::from_secs(1),
                jump: None,
                meter: Default::default(),
            };
            let job = HostJob {
                host: host.clone().into(),
                target: target.into(),
                tls: TlsMaterial::CaPending,
                tls_reader: None,
                become_password: None,
                replace_ca: false,
            };
            (host.name, job)
        })
        .collect()
}

fn fleet(forks: usize, deadlines: Deadlines) -> (Fleet, Receiver<Option<Event>>) {
    let (sender, receiver) = std::sync::mpsc::channel();
    let fleet = Fleet {
        forks,
        sink: Sink::new(sender),
        deadlines,
        interrupt: Interrupt::default(),
        hold: Hold::default(),
    };
    (fleet, receiver)
}

fn events(receiver: &Receiver<Option<Event>>) -> Vec<Event> {
    receiver.try_iter().flatten().collect()
}

/// What `plan` does (`engine::inspect`): every host connected, gathered
/// and planned.
async fn plan(
    fake: &FakeFleet,
    fleet: &Fleet,
    names: &[&str],
) -> Vec<Finished<crate::core::plan::HostPlan>> {
    let jobs = jobs(names);
    let loaded = loaded(&jobs);
    crate::engine::inspect::plan_with(fake.clone(), &loaded, jobs, fleet).await
}

fn loaded(jobs: &[(String, HostJob)]) -> Loaded {
    Loaded {
        playbook: playbook(),
        hosts: jobs
            .iter()
            .map(|(_, job)| (job.host.clone(), job.target.clone()))
            .collect(),
        store: None,
        become_password: None,
    }
}

/// The real apply flow (`engine::deploy`) over the fake fleet, in `mode`.
async fn deploy<A: AsyncFnOnce(Plans) -> crate::error::Result<bool>>(
    fake: &FakeFleet,
    fleet: &Fleet,
    names: &[&str],
    rollout: Rollout,
    mode: Mode<A>,
) -> Option<Vec<Finished<Applied>>> {
    let jobs = jobs(names);
    let loaded = loaded(&jobs);
    let finished = deploy::apply_with(fake.clone(), &loaded, jobs, &rollout, fleet, mode)
        .await
        .unwrap()?;
    Some(
        finished
            .into_iter()
            .map(|f| Finished {
                host: f.host,
                elapsed: f.elapsed,
                ended: match f.ended {
                    Ended::Ran(result) => Ended::Ran(result.map(|(applied, _)| applied)),
                    Ended::Skipped(reason) => Ended::Skipped(reason),
                    Ended::Aborted => Ended::Aborted,
                },
            })
            .collect(),
    )
}

/// What `apply --yes` does: each host in one pass, batch by batch.
async fn apply(
    fake: &FakeFleet,
    fleet: &Fleet,
    names: &[&str],
    rollout: Rollout,
) -> Vec<Finished<Applied>> {
    deploy(fake, fleet, names, rollout, Mode::<NoQuestion>::OnePass)
        .await
        .unwrap()
}

fn statuses<T>(finished: &[Finished<T>]) -> Vec<(&str, &'static str)> {
    finished
        .iter()
        .map(|f| {
            let status = match &f.ended {
                Ended::Ran(Ok(_)) => "ok",
                Ended::Ran(Err(_)) => "failed",
                Ended::Skipped(_) => "skipped",
                Ended::Aborted => "aborted",
            };
            (f.host.as_str(), status)
        })
        .collect()
}

fn error<T: std::fmt::Debug>(finished: &Finished<T>) -> String {
    match &finished.ended {
        Ended::Ran(Err(e)) => e.to_string(),
        other => panic!("{}: not an error: {other:?}", finished.host),
    }
}

#[tokio::test]
async fn batches_follow_the_serial_list_in_order() {
    let names = ["h1", "h2", "h3", "h4"];
    let fake = FakeFleet::with_hosts(&names);
    let (fleet, receiver) = fleet(10, Deadlines::default());
    let rollout = Rollout {
        serial: Some("1,50%,100%".parse().unwrap()),
        max_fail_percent: Some(0),
    };
    let done = apply(&fake, &fleet, &names, rollout).await;
    assert_eq!(
        statuses(&done),
        [("h1", "ok"), ("h2", "ok"), ("h3", "ok"), ("h4", "ok")]
    );
    for name in names {
        assert_eq!(fake.get(name, |h| h.files["/etc/motd"].clone()), b"hello\n");
    }
    let batches: Vec<(usize, usize)> = events(&receiver)
        .into_iter()
        .filter_map(|e| match e {
            Event::BatchStarted { number, hosts, .. } => Some((number, hosts)),
            _ => None,
        })
        .collect();
    assert_eq!(batches, [(1, 1), (2, 2), (3, 1)]);
}

#[tokio::test]
async fn a_failed_canary_stops_the_rollout_before_anything_else_is_touched() {
    let names = ["canary", "h2", "h3", "h4"];
    let fake = FakeFleet::with_hosts(&names);
    fake.set("canary", |h| {
        h.acts.insert(Step::Commit, Act::Fail);
    });
    let (fleet, receiver) = fleet(10, Deadlines::default());
    let rollout = Rollout {
        serial: Some("1,50%,100%".parse().unwrap()),
        max_fail_percent: Some(0),
    };
    let done = apply(&fake, &fleet, &names, rollout).await;
    assert_eq!(
        statuses(&done),
        [
            ("canary", "failed"),
            ("h2", "skipped"),
            ("h3", "skipped"),
            ("h4", "skipped")
        ]
    );
    for host in ["h2", "h3", "h4"] {
        assert!(!fake.touched(host), "{host} was touched");
    }
    let stop = events(&receiver).into_iter().find_map(|e| match e {
        Event::BatchFinished { stop, .. } => stop,
        _ => None,
    });
    assert_eq!(
        stop.as_deref(),
        Some("not reached: 1 of 1 host(s) in batch 1 failed, over --max-fail-percent 0")
    );
}

#[tokio::test]
async fn without_max_fail_a_batch_stops_the_rollout_only_when_all_of_it_failed() {
    let names = ["h1", "h2", "h3", "h4"];
    let fake = FakeFleet::with_hosts(&names);
    fake.set("h1", |h| {
        h.acts.insert(Step::Commit, Act::Fail);
    });
    let (fleet, _) = fleet(10, Deadlines::default());
    let rollout = Rollout {
        serial: Some("2".parse().unwrap()),
        max_fail_percent: None,
    };
    let done = apply(&fake, &fleet, &names, rollout).await;
    assert_eq!(
        statuses(&done),
        [("h1", "failed"), ("h2", "ok"), ("h3", "ok"), ("h4", "ok")]
    );
}

#[tokio::test]
async fn a_host_that_never_answers_is_failed_at_its_step_and_holds_nobody() {
    let names = ["h1", "hung", "h3"];
    let fake = FakeFleet::with_hosts(&names);
    fake.set("hung", |h| {
        h.acts.insert(Step::Gather, Act::Hang);
    });
    let deadlines = Deadlines {
        step: Duration::from_millis(200),
        handlers: Duration::from_millis(200),
    };
    let (fleet, _) = fleet(10, deadlines);
    let started = Instant::now();
    let done = plan(&fake, &fleet, &names).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        statuses(&done),
        [("h1", "ok"), ("hung", "failed"), ("h3", "ok")]
    );
    assert_eq!(
        error(&done[1]),
        "hung: gathering: no answer within 0.2s (the step's deadline; --timeout sets it)"
    );
}

#[tokio::test]
async fn a_commit_past_its_deadline_is_rolled_back_on_a_fresh_channel() {
    let names = ["h1", "hung"];
    let fake = FakeFleet::with_hosts(&names);
    fake.set("hung", |h| {
        h.files.insert("/etc/motd".into(), b"old\n".to_vec());
        h.acts.insert(Step::Commit, Act::Hang);
    });
    let deadlines = Deadlines {
        step: Duration::from_secs(5),
        handlers: Duration::from_millis(300),
    };
    let (fleet, _) = fleet(10, deadlines);
    let done = apply(&fake, &fleet, &names, Rollout::default()).await;
    assert_eq!(statuses(&done), [("h1", "ok"), ("hung", "failed")]);
    assert_eq!(
        error(&done[1]),
        "hung: replacing files: no answer within 0.3s (the step's deadline; --timeout sets it); the previous files were restored"
    );
    assert_eq!(
        fake.get("hung", |h| h.seen.clone()),
        [
            Step::Lock,
            Step::Gather,
            Step::Stage,
            Step::Commit,
            Step::Rollback
        ]
    );
    assert_eq!(fake.get("hung", |h| h.files["/etc/motd"].clone()), b"old\n");
}

/// A finish the host refuses (its dead-man switch fired during the
/// verification and put sshd's drop-in back) has the rest put back too:
/// the host ends as it was, never half of each.
#[tokio::test]
async fn a_finish_the_host_refuses_has_the_change_rolled_back() {
    let names = ["h1", "fired"];
    let fake = FakeFleet::with_hosts(&names);
    fake.set("fired", |h| {
        h.files.insert("/etc/motd".into(), b"old\n".to_vec());
        h.acts.insert(Step::Finish, Act::Fail);
    });
    let (fleet, _) = fleet(10, Deadlines::default());
    let done = apply(&fake, &fleet, &names, Rollout::default()).await;
    assert_eq!(statuses(&done), [("h1", "ok"), ("fired", "failed")]);
    assert_eq!(
        error(&done[1]),
        "fired: remove backups: Finish failed on purpose; the previous files were restored"
    );
    let seen = fake.get("fired", |h| h.seen.clone());
    assert_eq!(seen.last(), Some(&Step::Rollback), "{seen:?}");
    assert_eq!(
        fake.get("fired", |h| h.files["/etc/motd"].clone()),
        b"old\n"
    );
}

#[tokio::test]
async fn an_interrupt_lets_hosts_in_flight_finish_and_skips_the_rest() {
    let names = ["h1", "h2", "h3"];
    let fake = FakeFleet::with_hosts(&names);
    for name in names {
        fake.set(name, |h| {
            h.acts
                .insert(Step::Commit, Act::Slow(Duration::from_millis(300)));
        });
    }
    let (fleet, receiver) = fleet(1, Deadlines::default());
    let interrupt = fleet.interrupt.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        interrupt.trigger();
    });
    let done = apply(&fake, &fleet, &names, Rollout::default()).await;
    assert_eq!(
        statuses(&done),
        [("h1", "ok"), ("h2", "skipped"), ("h3", "skipped")]
    );
    assert!(!fake.touched("h2") && !fake.touched("h3"));
    let interrupted = events(&receiver).into_iter().find_map(|e| match e {
        Event::Interrupted { again, in_flight } => Some((again, in_flight)),
        _ => None,
    });
    assert_eq!(interrupted, Some((false, vec!["h1".to_string()])));
    // Interrupted before a batch starts (between a flow's runs, while the
    // PKI issued): nothing starts at all, and the interrupt is said, once.
    let (fleet, receiver) = self::fleet(1, Deadlines::default());
    fleet.interrupt.trigger();
    let done = apply(&fake, &fleet, &["h2"], Rollout::default()).await;
    assert_eq!(statuses(&done), [("h2", "skipped")]);
    assert!(!fake.touched("h2"));
    let done = apply(&fake, &fleet, &["h3"], Rollout::default()).await;
    assert_eq!(statuses(&done), [("h3", "skipped")]);
    let said: Vec<_> = events(&receiver)
        .into_iter()
        .filter_map(|e| match e {
            Event::Interrupted { again, in_flight } => Some((again, in_flight)),
            _ => None,
        })
        .collect();
    assert_eq!(said, [(false, Vec::<String>::new())]);
}

#[tokio::test]
async fn a_second_interrupt_abandons_the_hosts_in_flight_at_once() {
    let names = ["h1", "h2", "h3"];
    let fake = FakeFleet::with_hosts(&names);
    for name in ["h1", "h2"] {
        fake.set(name, |h| {
            h.acts.insert(Step::Commit, Act::Hang);
        });
    }
    let (fleet, receiver) = fleet(2, Deadlines::default());
    let interrupt = fleet.interrupt.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        interrupt.trigger();
        tokio::time::sleep(Duration::from_millis(100)).await;
        interrupt.trigger();
    });
    let started = Instant::now();
    let done = apply(&fake, &fleet, &names, Rollout::default()).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        statuses(&done),
        [("h1", "aborted"), ("h2", "aborted"), ("h3", "skipped")]
    );
    let again = events(&receiver).into_iter().find_map(|e| match e {
        Event::Interrupted {
            again: true,
            in_flight,
        } => Some(in_flight),
        _ => None,
    });
    assert_eq!(again, Some(vec!["h1".to_string(), "h2".to_string()]));
}

#[tokio::test]
async fn a_host_another_apply_holds_is_left_alone_with_a_clear_message() {
    let names = ["h1", "busy"];
    let fake = FakeFleet::with_hosts(&names);
    fake.set("busy", |h| h.locked = true);
    let (fleet, _) = fleet(10, Deadlines::default());
    let done = apply(&fake, &fleet, &names, Rollout::default()).await;
    assert_eq!(statuses(&done), [("h1", "ok"), ("busy", "failed")]);
    assert!(
        error(&done[1])
            .contains("lock the host: another dockhand apply is working on this host (it has held"),
        "{}",
        error(&done[1])
    );
    assert!(
        !fake.get("busy", |h| h.seen.contains(&Step::Stage)),
        "nothing written"
    );
    // h1's lock went with its connection: a second apply takes it again.
    assert!(!fake.get("h1", |h| h.locked));
}

#[tokio::test]
async fn a_no_op_apply_verifies_on_its_one_connection_and_a_change_logs_in_afresh() {
    let names = ["h1"];
    let fake = FakeFleet::with_hosts(&names);
    let (fleet, _) = fleet(10, Deadlines::default());
    let done = apply(&fake, &fleet, &names, Rollout::default()).await;
    assert_eq!(statuses(&done), [("h1", "ok")]);
    assert!(matches!(
        done[0].ended,
        Ended::Ran(Ok(Applied::Changed { .. }))
    ));
    // A change: a second connection proves a fresh login still works.
    assert_eq!(fake.get("h1", |h| h.connections), 2);
    assert_eq!(
        fake.get("h1", |h| h.seen.last().copied()),
        Some(Step::Finish)
    );
    assert!(fake.get("h1", |h| h.seen.contains(&Step::Login)));

    fake.set("h1", |h| {
        h.connections = 0;
        h.seen.clear();
    });
    let done = apply(&fake, &fleet, &names, Rollout::default()).await;
    assert!(matches!(done[0].ended, Ended::Ran(Ok(Applied::Unchanged))));
    // Nothing changed: one connection, the lock and one gather, nothing
    // else on the host.
    assert_eq!(fake.get("h1", |h| h.connections), 1);
    assert_eq!(
        fake.get("h1", |h| h.seen.clone()),
        [Step::Lock, Step::Gather]
    );
}

#[tokio::test]
async fn unreachable_hosts_fail_at_connecting_and_the_others_go_on() {
    let names = ["h1", "gone"];
    let fake = FakeFleet::with_hosts(&names);
    fake.set("gone", |h| h.unreachable = true);
    let (fleet, _) = fleet(10, Deadlines::default());
    let done = plan(&fake, &fleet, &names).await;
    assert_eq!(statuses(&done), [("h1", "ok"), ("gone", "failed")]);
    match &done[1].ended {
        Ended::Ran(Err(e)) => assert!(e.is_unreachable(), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_plain_renderer_says_each_step_of_a_plan_ask_apply_in_order() {
    let names = ["h1", "h2"];
    let fake = FakeFleet::with_hosts(&names);
    fake.set("h2", |h| {
        h.files.insert("/etc/motd".into(), b"hello\n".to_vec());
    });
    // Both hosts within the forks: planned and applied on one connection.
    let (fleet, receiver) = fleet(2, Deadlines::default());
    let asked = std::cell::Cell::new(false);
    let yes = async |plans: Plans| {
        asked.set(true);
        let changes: Vec<(String, usize)> = plans
            .into_iter()
            .map(|(host, plan)| (host, plan.unwrap().changes.len()))
            .collect();
        assert_eq!(changes, [("h1".to_string(), 1), ("h2".to_string(), 0)]);
        Ok(true)
    };
    deploy(&fake, &fleet, &names, Rollout::default(), Mode::Ask(yes)).await;
    assert!(asked.get());
    let lines: Vec<String> = events(&receiver)
        .into_iter()
        .map(|event| match event {
            // Durations vary from run to run; the renderer's text does not.
            Event::StepFinished { host, phase, .. } => Event::StepFinished {
                host,
                phase,
                seconds: 0.0,
            },
            Event::HostFinished {
                host,
                status,
                detail,
                ..
            } => Event::HostFinished {
                host,
                status,
                detail,
                seconds: 0.0,
            },
            other => other,
        })
        .filter_map(|e| crate::report::progress::plain_line(Duration::ZERO, &e))
        .collect();
    let expected = [
        "[   0.00s] plan: 2 host(s)",
        "[   0.00s] h1: connecting",
        "[   0.00s] h1: connecting done (0.00s)",
        "[   0.00s] h1: locking the host, gathering",
        "[   0.00s] h1: locking the host, gathering done (0.00s)",
        "[   0.00s] h1: ok: planned: 1 change(s)",
        "[   0.00s] h2: connecting",
        "[   0.00s] h2: connecting done (0.00s)",
        "[   0.00s] h2: locking the host, gathering",
        "[   0.00s] h2: locking the host, gathering done (0.00s)",
        "[   0.00s] h2: unchanged: planned: no changes",
        "[   0.00s] apply: 2 host(s)",
        "[   0.00s] h1: replacing files",
        "[   0.00s] h1: replacing files done (0.00s)",
        "[   0.00s] h1: verifying",
        "[   0.00s] h1: verifying done (0.00s)",
        "[   0.00s] h1: removing backups",
        "[   0.00s] h1: removing backups done (0.00s)",
        "[   0.00s] h1: changed: 1 change(s); verified",
        "[   0.00s] h2: verifying",
        "[   0.00s] h2: verifying done (0.00s)",
        "[   0.00s] h2: unchanged: verified",
    ];
    assert_eq!(lines, expected);
}

#[tokio::test]
async fn a_host_whose_work_panics_fails_alone_and_the_run_ends_normally() {
    let (fleet, receiver) = fleet(2, Deadlines::default());
    let jobs: Vec<(String, u32)> = vec![("h1".into(), 1), ("odd".into(), 2), ("h3".into(), 3)];
    fn describe(result: &Result<u32>) -> (HostStatus, String) {
        match result {
            Ok(_) => (HostStatus::Ok, String::new()),
            Err(e) => (HostStatus::Failed, e.to_string()),
        }
    }
    let done = fleet
        .run("plan", jobs, describe, |job: u32, _run| async move {
            if job == 2 {
                // As a parser would on bytes it did not expect.
                let word = String::from("é");
                let _ = &word[1..];
            }
            Ok(job)
        })
        .await;
    assert_eq!(
        statuses(&done),
        [("h1", "ok"), ("odd", "failed"), ("h3", "ok")]
    );
    let message = error(&done[1]);
    assert!(
        message.contains("internal error")
            && message.contains("byte index 1 is not a char boundary"),
        "{message}"
    );
    assert!(events(&receiver).iter().any(|e| matches!(
        e,
        Event::HostFinished { host, status: HostStatus::Failed, .. } if host == "odd"
    )));
}

#[tokio::test]
async fn a_no_writes_nothing_and_closes_every_connection() {
    let names = ["h1", "h2"];
    let fake = FakeFleet::with_hosts(&names);
    let (fleet, _receiver) = fleet(2, Deadlines::default());
    let no = async |_: Plans| Ok(false);
    let applied = deploy(&fake, &fleet, &names, Rollout::default(), Mode::Ask(no)).await;
    assert!(applied.is_none());
    for name in names {
        let (seen, files, locked) = fake.get(name, |h| (h.seen.clone(), h.files.clone(), h.locked));
        assert_eq!(seen, [Step::Lock, Step::Gather], "{name}");
        assert!(files.is_empty() && !locked, "{name}");
    }
}

#[tokio::test]
async fn nobody_is_asked_when_nothing_would_change() {
    let names = ["h1"];
    let fake = FakeFleet::with_hosts(&names);
    fake.set("h1", |h| {
        h.files.insert("/etc/motd".into(), b"hello\n".to_vec());
    });
    let (fleet, _receiver) = fleet(1, Deadlines::default());
    let never =
        async |_: Plans| -> crate::error::Result<bool> { panic!("asked with nothing to do") };
    let applied = deploy(&fake, &fleet, &names, Rollout::default(), Mode::Ask(never)).await;
    assert_eq!(statuses(&applied.unwrap()), [("h1", "ok")]);
    // Planned once, verified on the same connection: one login.
    assert_eq!(fake.get("h1", |h| h.connections), 1);
}

/// The playbook is expanded once per host and run, whichever flow runs:
/// the gather's paths need no expansion, and certificates issued between
/// plan and apply go into the expansion already made.
#[tokio::test]
async fn each_flow_expands_the_playbook_once_per_host() {
    use crate::engine::pipeline::tests::expansions;
    let (fleet, _receiver) = fleet(2, Deadlines::default());
    let one_pass = ["once-a", "once-b"];
    let fake = FakeFleet::with_hosts(&one_pass);
    apply(&fake, &fleet, &one_pass, Rollout::default()).await;
    let asked = ["asked-a", "asked-b"];
    let fake = FakeFleet::with_hosts(&asked);
    let yes = async |_: Plans| Ok(true);
    deploy(&fake, &fleet, &asked, Rollout::default(), Mode::Ask(yes)).await;
    let planned = ["planned-a"];
    let fake = FakeFleet::with_hosts(&planned);
    plan(&fake, &fleet, &planned).await;
    for host in one_pass.iter().chain(&asked).chain(&planned) {
        assert_eq!(expansions(host), 1, "{host}");
    }
}

/// `apply --yes` over the fake fleet, with these jobs.
async fn one_pass(
    fake: &FakeFleet,
    loaded: &Loaded,
    jobs: crate::engine::load::Jobs,
    fleet: &Fleet,
) -> Vec<Finished<deploy::AppliedHost>> {
    applied(fake, loaded, jobs, fleet, Mode::<NoQuestion>::OnePass)
        .await
        .unwrap()
}

/// An apply over the fake fleet, with these jobs, in `mode`. `None`: the
/// answer was no.
async fn applied<A: AsyncFnOnce(Plans) -> crate::error::Result<bool>>(
    fake: &FakeFleet,
    loaded: &Loaded,
    jobs: crate::engine::load::Jobs,
    fleet: &Fleet,
    mode: Mode<A>,
) -> Option<Vec<Finished<deploy::AppliedHost>>> {
    deploy::apply_with(fake.clone(), loaded, jobs, &Rollout::default(), fleet, mode)
        .await
        .unwrap()
}

/// The round trips a host costs after connecting (issue 21): a converge at
/// most 5, a no-op and a plan 1, counted by the transport's meter. The
/// fake, as OpenSSH, opens a channel's window only once the command
/// started: input sent with a command waits a round trip more.
#[tokio::test]
async fn a_converge_costs_five_round_trips_and_a_no_op_or_a_plan_one() {
    let names = ["rt1"];
    let fake = FakeFleet::with_hosts(&names);
    let (fleet, _) = fleet(10, Deadlines::default());
    let traffic_of = |jobs: &[(String, HostJob)]| jobs[0].1.target.meter.read();
    let run = |mode_one_pass: bool| {
        let (fake, fleet) = (fake.clone(), fleet.clone());
        async move {
            let jobs = jobs(&names);
            let loaded = loaded(&jobs);
            let meter_of = jobs.clone();
            if mode_one_pass {
                one_pass(&fake, &loaded, jobs, &fleet).await;
            } else {
                crate::engine::inspect::plan_with(fake, &loaded, jobs, &fleet).await;
            }
            traffic_of(&meter_of)
        }
    };
    let converge = run(true).await;
    // The lock with the gather, staging with the commit (on the lock's
    // channel: no window to wait for), the fresh login with sshd -T, the
    // finish (on the lock's channel too).
    assert_eq!(converge.round_trips, 4, "{converge}");
    assert_eq!(converge.logins, 2, "{converge}");
    let no_op = run(true).await;
    assert_eq!((no_op.round_trips, no_op.logins), (1, 1), "{no_op}");
    let plan = run(false).await;
    assert_eq!((plan.round_trips, plan.logins), (1, 1), "{plan}");
}

/// Through sudo, a script that goes on a command of its own goes on stdin
/// (sudo's log line stays `/bin/sh -s`) and waits for its channel's
/// window: a round trip more. Only the lock does so: the scripts after it
/// go to the lock's root shell.
#[tokio::test]
async fn through_sudo_only_the_lock_costs_a_round_trip_more() {
    let names = ["rt-sudo"];
    let fake = FakeFleet::with_hosts(&names);
    let (fleet, _) = fleet(10, Deadlines::default());
    let with_sudo = || {
        let mut jobs = jobs(&names);
        for (_, job) in &mut jobs {
            let mut host = (*job.host).clone();
            host.ssh.become_root = Some(true);
            job.host = host.into();
        }
        jobs
    };
    let mut counts = Vec::new();
    for one_pass_apply in [true, true, false] {
        let jobs = with_sudo();
        let loaded = loaded(&jobs);
        let meter = jobs[0].1.target.meter.clone();
        if one_pass_apply {
            one_pass(&fake, &loaded, jobs, &fleet).await;
        } else {
            crate::engine::inspect::plan_with(fake.clone(), &loaded, jobs, &fleet).await;
        }
        counts.push(meter.read().round_trips);
    }
    // The converge: the lock with the gather (two), staging with the
    // commit and the finish on the lock's channel (one each), and the
    // fresh login's one command (this playbook sets no sshd settings:
    // `true`, as the login user, no sudo); then a no-op, a plan.
    assert_eq!(counts, [5, 2, 2]);
}

/// Over the simulation's fleet: the shipped playbook, its PKI and mutual
/// TLS, and the question past the forks.
#[path = "simulated_tests.rs"]
mod simulated;
