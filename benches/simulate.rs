//! Benchmark: dockhand's own cost toward 10,000 hosts, by simulation
//! (issue 21). The fake fleet's simulated hosts answer as a real Debian 12
//! host does (its facts and `sshd -T`, at their sizes), each round trip
//! and login costs the link's latency, and verification reaches a
//! simulated dockerd over real mutual TLS. Everything of dockhand's is
//! real: inventory (with groups, and `--limit`), playbook, PKI, the fleet runner, the pipeline, plans,
//! the plain progress renderer and the JSON report.
//!
//! For 1,000 and 10,000 hosts and `--forks` 50, 200 and 1,000, each in a
//! process of its own: the PKI issuing every certificate (reported apart),
//! a converge, a no-op and a plan. Recorded: wall time against the ideal
//! (hosts ÷ forks × a host's latency), dockhand's CPU per host (the
//! process's CPU less the simulated hosts' threads), and peak memory (the
//! process's VmHWM, and that less the bytes the simulated hosts hold;
//! "run MB" is the same at the end of the converge, the peak of a process
//! that runs one apply as `dockhand apply` does).
//!
//! `cargo bench --features simulation --bench simulate` (about 10
//! minutes); `SIMULATE=1000x50,10000x200` picks cases, `SIMULATE_LATENCY_MS`
//! sets the one-way latency (default 10 ms), `SIMULATE_PERF` a `perf
//! record` control fifo that profiles only the converge. Results:
//! target/simulate.json and a table on stdout.

use std::path::Path;
use std::time::{Duration, Instant};

use dockhand::core::event::Hold;
use dockhand::core::outcome::Applied;
use dockhand::engine::deploy::{self, Mode, NoQuestion};
use dockhand::engine::fake::{FakeFleet, Simulation};
use dockhand::engine::fleet::{Deadlines, Fleet, Interrupt, Rollout};
use dockhand::engine::{inspect, load};
use dockhand::report::{self, ApplyOutcome};

const CASES: &[(usize, usize)] = &[
    (1_000, 50),
    (1_000, 200),
    (1_000, 1_000),
    (10_000, 50),
    (10_000, 200),
    (10_000, 1_000),
];

fn main() {
    if let Ok(case) = std::env::var("SIMULATE_CHILD") {
        let (hosts, forks) = parse_case(&case);
        child(hosts, forks, latency());
        return;
    }
    let cases: Vec<(usize, usize)> = match std::env::var("SIMULATE") {
        Ok(list) => list.split(',').map(parse_case).collect(),
        Err(_) => CASES.to_vec(),
    };
    let me = std::env::current_exe().unwrap();
    let mut rows = Vec::new();
    println!(
        "latency {} ms each way; a host's ideal time: its round trips and logins",
        latency().as_millis()
    );
    println!(
        "{:>6} {:>5} | {:>9} {:>9} {:>7} | {:>9} {:>9} | {:>8} {:>8} | {:>8} {:>8} {:>8} {:>8}",
        "hosts",
        "forks",
        "converge",
        "ideal",
        "ratio",
        "no-op",
        "plan",
        "CPU/host",
        "PKI/host",
        "peak MB",
        "hosts MB",
        "ours MB",
        "run MB"
    );
    for (hosts, forks) in cases {
        let output = std::process::Command::new(&me)
            .env("SIMULATE_CHILD", format!("{hosts}x{forks}"))
            .stderr(std::process::Stdio::null())
            .output()
            .expect("run a case");
        let text = String::from_utf8_lossy(&output.stdout);
        let Some(line) = text.lines().find_map(|l| l.strip_prefix("SIMULATED ")) else {
            panic!("case {hosts}x{forks} failed: {text}");
        };
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let f = |k: &str| row[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:>6} {:>5} | {:>8.2}s {:>8.2}s {:>7.2} | {:>8.2}s {:>8.2}s | {:>6.3}ms {:>6.3}ms | {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            hosts,
            forks,
            f("converge_s"),
            f("ideal_converge_s"),
            f("converge_s") / f("ideal_converge_s"),
            f("noop_s"),
            f("plan_s"),
            f("cpu_ms_per_host"),
            f("pki_cpu_ms_per_host"),
            f("peak_mb"),
            f("hosts_mb"),
            f("peak_mb") - f("hosts_mb"),
            f("converge_peak_mb") - f("hosts_mb"),
        );
        rows.push(row);
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/simulate.json");
    std::fs::write(&out, serde_json::to_string_pretty(&rows).unwrap() + "\n").unwrap();
    println!("results: {}", out.display());
}

fn parse_case(text: &str) -> (usize, usize) {
    let (hosts, forks) = text.split_once('x').expect("HOSTSxFORKS");
    (hosts.parse().unwrap(), forks.parse().unwrap())
}

fn latency() -> Duration {
    let ms: u64 = std::env::var("SIMULATE_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    Duration::from_millis(ms)
}

/// CPU seconds of this process so far (every thread, live or gone), from
/// /proc/self/stat.
fn process_cpu() -> f64 {
    let (user, system) = ticks(&std::fs::read_to_string("/proc/self/stat").unwrap());
    user + system
}

/// utime and stime (fields 14 and 15 of a `stat` file), in seconds.
fn ticks(stat: &str) -> (f64, f64) {
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let hz = 100.0;
    (
        fields[11].parse::<f64>().unwrap() / hz,
        fields[12].parse::<f64>().unwrap() / hz,
    )
}

/// CPU seconds of the simulated hosts' threads (named `sim-host`).
fn hosts_cpu() -> f64 {
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "sim-host"
            && let Ok(stat) = std::fs::read_to_string(task.path().join("stat"))
        {
            let (user, system) = ticks(&stat);
            total += user + system;
        }
    }
    total
}

/// Where the memory goes (`SIMULATE_MEMORY=1`): resident and peak
/// memory at each stage, on stdout.
fn mark(stage: &str) {
    if std::env::var_os("SIMULATE_MEMORY").is_some() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        println!(
            "MEMORY {stage}: rss {} peak {} heap in use {} kB",
            field("VmRSS:"),
            field("VmHWM:"),
            heap_in_use() / 1024
        );
    }
}

/// The bytes the allocator (jemalloc, dockhand's) has handed out and not
/// had back, from its statistics as of now.
fn heap_in_use() -> usize {
    use tikv_jemalloc_sys::mallctl;
    let (mut epoch, mut allocated) = (1u64, 0usize);
    let mut size = std::mem::size_of::<usize>();
    // SAFETY: both are jemalloc's own names: writing `epoch` (a u64)
    // refreshes the statistics, and `stats.allocated` is a size_t.
    unsafe {
        let refresh = mallctl(
            c"epoch".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            (&raw mut epoch).cast(),
            std::mem::size_of::<u64>(),
        );
        let read = mallctl(
            c"stats.allocated".as_ptr(),
            (&raw mut allocated).cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        );
        assert_eq!((refresh, read), (0, 0), "jemalloc's statistics");
    }
    allocated
}

/// Profiles the converge alone (`SIMULATE_PERF=FIFO`, the control fifo of
/// `perf record -D -1 --control fifo:FIFO`): `enable` before, `disable` after.
fn perf_control(command: &str) {
    if let Some(fifo) = std::env::var_os("SIMULATE_PERF") {
        std::fs::write(fifo, format!("{command}\n")).unwrap();
    }
}

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn child(count: usize, forks: usize, latency: Duration) {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: set before any thread of this process starts.
    unsafe { std::env::set_var("DOCKHAND_PKI_DIR", dir.path().join("pki")) };
    let names: Vec<String> = (0..count).map(|i| format!("node{i:05}")).collect();
    // Every host in `fleet` and in one of ten `dcN` groups, as a large
    // inventory has them; the run selects `--limit fleet`.
    let mut inventory = String::from("hosts:\n");
    for (i, name) in names.iter().enumerate() {
        inventory += &format!(
            "  {name}: {{ address: 198.18.{}.{} }}\n",
            128 + i / 250,
            1 + i % 250
        );
    }
    inventory += &format!("groups:\n  fleet:\n    hosts: [{}]\n", names.join(", "));
    for dc in 0..10 {
        let members: Vec<&str> = names
            .iter()
            .skip(dc)
            .step_by(10)
            .map(String::as_str)
            .collect();
        inventory += &format!("  dc{dc}:\n    hosts: [{}]\n", members.join(", "));
    }
    let inventory_path = dir.path().join("inventory.yaml");
    std::fs::write(&inventory_path, inventory).unwrap();
    let playbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/docker-tls.yaml");

    let hosts_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sim-host")
        .enable_all()
        .build()
        .unwrap();
    // dockhand's own runtime, as `dockhand apply` runs.
    let runtime = dockhand::engine::runtime::runtime(forks).unwrap();
    let fake = FakeFleet::simulated(
        names.iter().map(String::as_str),
        Simulation {
            latency,
            hosts: hosts_runtime.handle().clone(),
        },
    );
    let selection = load::Selection {
        inventory: inventory_path,
        playbook,
        limit: Some("fleet".into()),
        shard: None,
        access: load::Access::default(),
    };
    let cpu_start = process_cpu();
    mark("before load");
    let loaded = load::load(&selection).unwrap();
    mark("after load");

    // The PKI, apart: the CA, the clients, every server certificate.
    let pki_start = process_cpu();
    let hosts: Vec<&_> = loaded.hosts.iter().map(|(h, _)| h.as_ref()).collect();
    dockhand::pki::issue(
        loaded.store.as_ref().unwrap(),
        &loaded.playbook,
        &hosts,
        &load::verification_client(&loaded.playbook),
        load::now(),
        |_| {},
        &dockhand::pki::Waiting::default(),
    )
    .unwrap();
    let pki_cpu = process_cpu() - pki_start;
    mark("after the PKI");

    let progress = report::progress::Progress::start(report::progress::Mode::Plain, false);
    let fleet = Fleet {
        forks,
        sink: progress.sink(),
        deadlines: Deadlines::default(),
        interrupt: Interrupt::default(),
        hold: Hold::default(),
    };
    // dockhand's CPU: the process's, less the simulated hosts' threads.
    let ours_now = || process_cpu() - hosts_cpu();
    let run_apply = |name: &str| {
        let cpu = ours_now();
        let started = Instant::now();
        // As `apply --yes` makes them: the PKI reads each host's files.
        let (jobs, _) = load::jobs_with(&loaded, false).unwrap();
        mark(&format!("{name}: jobs made"));
        let done = runtime
            .block_on(deploy::apply_with(
                fake.clone(),
                &loaded,
                jobs,
                &Rollout::default(),
                &fleet,
                Mode::<NoQuestion>::OnePass,
            ))
            .unwrap()
            .unwrap();
        mark(&format!("{name} ran"));
        let outcomes: Vec<ApplyOutcome> = done
            .into_iter()
            .zip(&loaded.hosts)
            .map(|(f, (host, target))| {
                let result = f.ended.into_result(&f.host);
                if let Err(e) = &result {
                    panic!("{name}: {e}");
                }
                let (applied, plan) = result.unwrap();
                ApplyOutcome {
                    host: f.host,
                    address: host.address.clone(),
                    elapsed: f.elapsed,
                    traffic: target.meter.read(),
                    warnings: plan.warnings,
                    notes: plan.notes,
                    result: Ok((applied.clone(), plan.paths)),
                }
            })
            .collect();
        let changed = outcomes
            .iter()
            .filter(|o| matches!(o.result, Ok((Applied::Changed { .. }, _))))
            .count();
        report::apply::print(
            &outcomes,
            report::apply::Run::Apply,
            report::Format::Json,
            started.elapsed(),
        );
        mark(&format!("{name} reported"));
        (started.elapsed().as_secs_f64(), changed, ours_now() - cpu)
    };
    perf_control("enable");
    let (converge, changed, converge_cpu) = run_apply("converge");
    perf_control("disable");
    // A real run is one process: its peak is this one's so far (the PKI,
    // then the converge). The no-op and the plan after it in this process
    // start from the converge's leftovers, which a process of their own
    // would not hold.
    let converge_peak_mb = vm_hwm_mb();
    assert_eq!(changed, count, "every host converged");
    let round_trips_converge = loaded.hosts[0].1.meter.read();
    let (noop, changed, noop_cpu) = run_apply("no-op");
    assert_eq!(changed, 0, "the no-op changed nothing");
    let cpu = ours_now();
    let started = Instant::now();
    let (jobs, _) = load::jobs(&loaded).unwrap();
    let plans = runtime.block_on(inspect::plan_with(fake.clone(), &loaded, jobs, &fleet));
    assert!(
        plans.iter().all(
            |f| matches!(&f.ended, dockhand::engine::fleet::Ended::Ran(Ok(p)) if p.is_empty())
        )
    );
    let plan = started.elapsed().as_secs_f64();
    let plan_cpu = ours_now() - cpu;
    drop(fleet);
    progress.finish();

    let total_cpu = process_cpu() - cpu_start;
    let ours = total_cpu - hosts_cpu() - pki_cpu;
    // What the simulated hosts hold at the end (their files, each block as
    // the allocator rounds it up to its size class, not its own
    // bookkeeping): the bytes in use before and after they go.
    // What they held only in flight (a staged copy, a TLS server's
    // connection, for the hosts of one wave) is gone by then, and so is
    // counted as dockhand's: the figure errs against dockhand.
    let with_hosts = heap_in_use();
    drop(fake);
    hosts_runtime.shutdown_timeout(Duration::from_secs(5));
    let hosts_mb = with_hosts.saturating_sub(heap_in_use()) as f64 / (1024.0 * 1024.0);
    // The ideal: a host's own time (its round trips and logins at this
    // latency, as the meter counted them) times the waves of forks.
    let traffic = round_trips_converge;
    let rtt = latency.as_secs_f64() * 2.0;
    let host_converge = rtt * f64::from(traffic.round_trips + 5 * traffic.logins + traffic.probes);
    let waves = count.div_ceil(forks) as f64;
    let row = serde_json::json!({
        "hosts": count,
        "forks": forks,
        "latency_ms": latency.as_millis() as u64,
        "converge_s": converge,
        "ideal_converge_s": waves * host_converge,
        "noop_s": noop,
        "plan_s": plan,
        "cpu_ms_per_host": converge_cpu * 1000.0 / count as f64,
        "noop_cpu_ms_per_host": noop_cpu * 1000.0 / count as f64,
        "plan_cpu_ms_per_host": plan_cpu * 1000.0 / count as f64,
        "cpu_s": ours,
        "pki_cpu_ms_per_host": pki_cpu * 1000.0 / count as f64,
        "peak_mb": vm_hwm_mb(),
        "converge_peak_mb": converge_peak_mb,
        "hosts_mb": hosts_mb,
        "converge_traffic": traffic,
    });
    println!("SIMULATED {row}");
}
