//! The fleet over the simulation's hosts (the shipped playbook, its PKI,
//! verification over mutual TLS): round trips, a first run and the
//! question past `--forks`, each host's certificates.

use super::*;

/// The simulation's fleet of `names` with the shipped playbook, and a PKI
/// store in `dir` (empty: no CA yet); `latency` each way.
fn simulated(names: &[&str], dir: &std::path::Path, latency: Duration) -> (Loaded, FakeFleet) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/docker-tls.yaml");
    let playbook = Playbook::parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    let store = crate::pki::PkiStore::new(dir.join("pki"), playbook.pki.clone().unwrap());
    let jobs = jobs(names);
    let loaded = Loaded {
        playbook: Arc::new(playbook),
        hosts: jobs
            .iter()
            .map(|(_, job)| (job.host.clone(), job.target.clone()))
            .collect(),
        store: Some(Arc::new(store)),
        become_password: None,
    };
    let sim = crate::engine::fake::Simulation {
        latency,
        hosts: tokio::runtime::Handle::current(),
    };
    (loaded, FakeFleet::simulated(names.iter().copied(), sim))
}

/// The simulation's fleet (`benches/simulate.rs`) through the shipped
/// playbook, its PKI and verification over mutual TLS: a converge, then a
/// no-op and a plan that find nothing, each host costing the round trips
/// the transport promises (4, 1, 1; 2 TLS probes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_fleet_converges_the_shipped_playbook_in_few_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["sim1", "sim2", "sim3"];
    let (loaded, fake) = simulated(&names, dir.path(), Duration::ZERO);
    let (fleet, _) = fleet(10, Deadlines::default());
    let traffic = |loaded: &Loaded| -> Vec<crate::transport::Traffic> {
        loaded.hosts.iter().map(|(_, t)| t.meter.read()).collect()
    };
    let apply = || async {
        let (jobs, _) = crate::engine::load::jobs_with(&loaded, false).unwrap();
        one_pass(&fake, &loaded, jobs, &fleet)
            .await
            .into_iter()
            .map(|f| match f.ended {
                Ended::Ran(Ok((applied, _))) => applied,
                other => panic!("{}: {other:?}", f.host),
            })
            .collect::<Vec<_>>()
    };
    // The first apply makes the CA: every host is planned first (they
    // fit in the forks: on the connection the converge goes on).
    let converged = apply().await;
    assert!(
        converged
            .iter()
            .all(|a| matches!(a, Applied::Changed { .. }))
    );
    for seen in traffic(&loaded) {
        assert_eq!(
            (seen.round_trips, seen.logins, seen.probes),
            (4, 2, 2),
            "{seen}"
        );
    }
    let unchanged = apply().await;
    assert!(
        unchanged.iter().all(|a| *a == Applied::Unchanged),
        "{unchanged:?}"
    );
    for seen in traffic(&loaded) {
        assert_eq!(
            (seen.round_trips, seen.logins, seen.probes),
            (5, 3, 4),
            "{seen}"
        );
    }
    let (jobs, _) = crate::engine::load::jobs(&loaded).unwrap();
    let plans = crate::engine::inspect::plan_with(fake.clone(), &loaded, jobs, &fleet).await;
    for f in &plans {
        assert!(
            matches!(&f.ended, Ended::Ran(Ok(p)) if p.is_empty()),
            "{}",
            f.host
        );
    }
    for seen in traffic(&loaded) {
        assert_eq!((seen.round_trips, seen.logins), (6, 4), "{seen}");
    }
}

/// A first run (no CA yet) over more hosts than `--forks` plans every host
/// before the CA is made, yet holds no more connections than the forks
/// allow (two for a host that converges: verification's fresh login):
/// each host's plan closes its connection, and the apply connects again,
/// batch by batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_holds_no_more_connections_than_the_forks() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "first1", "first2", "first3", "first4", "first5", "first6", "first7", "first8",
    ];
    let (loaded, fake) = simulated(&names, dir.path(), Duration::from_millis(2));
    let forks = 2;
    let (fleet, _) = fleet(forks, Deadlines::default());
    let (jobs, _) = crate::engine::load::jobs_with(&loaded, false).unwrap();
    let done = one_pass(&fake, &loaded, jobs, &fleet).await;
    assert_all_changed(&done);
    assert!(dir.path().join("pki/ca.pem").exists());
    assert_planned_apart_within_the_forks(&fake, &names, forks);
}

/// A first run over more hosts than the forks still makes no CA for a
/// fleet that trusts another one: every host is refused, none touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_over_a_fleet_of_another_ca_makes_no_ca() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["theirs1", "theirs2", "theirs3", "theirs4"];
    let (loaded, fake) = simulated(&names, dir.path(), Duration::ZERO);
    trust_their_ca(&fake, &names);
    let (fleet, _) = fleet(2, Deadlines::default());
    let (jobs, _) = crate::engine::load::jobs_with(&loaded, false).unwrap();
    let done = one_pass(&fake, &loaded, jobs, &fleet).await;
    assert_all_refused_as_theirs(&fake, &done);
    assert!(!dir.path().join("pki/ca.pem").exists());
}

/// A question over more hosts than `--forks` holds no more connections
/// than the forks allow: each host planned on a login of its own, closed
/// once planned, every plan shown, then the apply connects again. Each
/// host also logs in afresh for verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_over_more_hosts_than_the_forks_holds_no_more_connections_than_the_forks() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["ask1", "ask2", "ask3", "ask4", "ask5", "ask6"];
    let (loaded, fake) = simulated(&names, dir.path(), Duration::from_millis(2));
    let forks = 2;
    let (fleet, _) = fleet(forks, Deadlines::default());
    let shown = std::sync::Mutex::new(Vec::new());
    let yes = async |plans: Plans| {
        // Asked before anything is written here or on a host.
        assert!(!dir.path().join("pki/ca.pem").exists());
        assert!(
            names
                .iter()
                .all(|n| !fake.touched(n) && !fake.get(n, |h| h.locked))
        );
        *shown.lock().unwrap() = plans
            .into_iter()
            .map(|(host, plan)| (host, plan.unwrap().changes.len()))
            .collect();
        Ok(true)
    };
    let done = asked(&fake, &loaded, &fleet, yes).await.unwrap();
    let shown = shown.into_inner().unwrap();
    assert_eq!(shown.len(), names.len());
    assert!(shown.iter().all(|(_, changes)| *changes > 0), "{shown:?}");
    assert_all_changed(&done);
    assert_planned_apart_within_the_forks(&fake, &names, forks);

    // A later run, with the CA and every host's certificate in the store:
    // a host's plan approved is the one found again, and applied.
    for name in names {
        fake.set(name, |h| {
            h.files
                .insert("/etc/docker/daemon.json".into(), b"{}\n".to_vec());
        });
    }
    let yes = async |plans: Plans| {
        for (host, plan) in &plans {
            let paths: Vec<&str> = plan
                .as_ref()
                .unwrap()
                .changes
                .iter()
                .map(|c| c.path.as_str())
                .collect();
            assert_eq!(paths, ["/etc/docker/daemon.json"], "{host}");
        }
        Ok(true)
    };
    let done = asked(&fake, &loaded, &fleet, yes).await.unwrap();
    assert_all_changed(&done);
}

/// Past the forks the hosts' locks are not held while the user reads:
/// a host whose plan changed since it was shown is failed and left
/// alone; the others are applied as shown. No, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_changed_after_its_plan_was_shown_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["kept1", "moved", "kept2"];
    let (loaded, fake) = simulated(&names, dir.path(), Duration::ZERO);
    let (fleet, _) = fleet(1, Deadlines::default());
    let no = async |_: Plans| Ok(false);
    let refused = asked(&fake, &loaded, &fleet, no).await;
    assert!(refused.is_none());
    assert!(!dir.path().join("pki/ca.pem").exists());
    assert!(
        names
            .iter()
            .all(|n| !fake.touched(n) && !fake.get(n, |h| h.locked))
    );

    let yes = async |_: Plans| {
        // Someone edits a file of the playbook's on one host meanwhile.
        fake.set("moved", |h| {
            h.files.insert(
                "/etc/docker/daemon.json".into(),
                b"{\"debug\": true}\n".to_vec(),
            );
        });
        Ok(true)
    };
    let done = asked(&fake, &loaded, &fleet, yes).await.unwrap();
    for f in &done {
        match (&f.ended, f.host.as_str()) {
            (Ended::Ran(Err(err)), "moved") => assert!(
                err.to_string()
                    .contains("its plan is no longer the one shown"),
                "{err}"
            ),
            (Ended::Ran(Ok((Applied::Changed { .. }, _))), _) if f.host != "moved" => {}
            (other, host) => panic!("{host}: {other:?}"),
        }
    }
    assert!(!fake.touched("moved"));
    assert!(!fake.get("moved", |h| h.locked));
    assert_eq!(
        fake.get("moved", |h| h.files["/etc/docker/daemon.json"].clone()),
        b"{\"debug\": true}\n"
    );
}

/// `apply` on a terminal over the simulated fleet, `answer` answering the
/// question: the jobs read each host's TLS files when planned, as `apply`
/// makes them when it asks. `None`: the answer was no.
async fn asked(
    fake: &FakeFleet,
    loaded: &Loaded,
    fleet: &Fleet,
    answer: impl AsyncFnOnce(Plans) -> crate::error::Result<bool>,
) -> Option<Vec<Finished<deploy::AppliedHost>>> {
    let (jobs, _) = crate::engine::load::jobs(loaded).unwrap();
    applied(fake, loaded, jobs, fleet, Mode::Ask(answer)).await
}

fn assert_all_changed(done: &[Finished<deploy::AppliedHost>]) {
    assert!(
        done.iter()
            .all(|f| matches!(f.ended, Ended::Ran(Ok((Applied::Changed { .. }, _))))),
        "{:?}",
        done.iter().map(|f| &f.ended).collect::<Vec<_>>()
    );
}

/// No more connections at once than the forks allow (two for a host that
/// converges: verification's fresh login), and three logins a host: the
/// plan's, the apply's, verification's fresh one.
fn assert_planned_apart_within_the_forks(fake: &FakeFleet, names: &[&str], forks: usize) {
    assert!(
        fake.most_open() <= 2 * forks,
        "{} connections open at once with --forks {forks}",
        fake.most_open()
    );
    for name in names {
        assert_eq!(fake.get(name, |h| h.connections), 3, "{name}");
    }
}

/// Past the forks, a host refused when planned (it trusts another CA,
/// and the store has its own) says its refusal after the question, as it
/// did when shown: its TLS files are read from the store as its plan
/// read them, though the PKI issued nothing for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_refused_when_shown_says_its_refusal_after_the_question() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["theirs1", "theirs2", "theirs3"];
    let (loaded, fake) = simulated(&names, dir.path(), Duration::ZERO);
    loaded.store.as_ref().unwrap().ensure_ca().unwrap();
    trust_their_ca(&fake, &names);
    let (fleet, _) = fleet(1, Deadlines::default());
    let yes = async |plans: Plans| {
        assert!(
            plans
                .iter()
                .all(|(_, p)| p.as_ref().unwrap().refusal.is_some())
        );
        Ok(true)
    };
    let done = asked(&fake, &loaded, &fleet, yes).await.unwrap();
    assert_all_refused_as_theirs(&fake, &done);
}

/// A host the PKI issued nothing for (refused when planned) is planned
/// again with what the store has, as when it was shown: not as if the
/// store had no CA, which would call the store's own CA on the host
/// another's.
#[tokio::test]
async fn a_host_the_pki_issued_nothing_for_reads_the_store_as_its_plan_did() {
    let dir = tempfile::tempdir().unwrap();
    let (loaded, _) = simulated(&["alone"], dir.path(), Duration::ZERO);
    loaded.store.as_ref().unwrap().ensure_ca().unwrap();
    let (jobs, _) = crate::engine::load::jobs(&loaded).unwrap();
    let (_, job) = jobs.into_iter().next().unwrap();
    let now = crate::engine::load::now();
    let job = deploy::with_issued(job, &crate::pki::ServerPairs::default(), now).unwrap();
    assert!(
        matches!(job.tls, TlsMaterial::CertPending { .. }),
        "{:?}",
        std::mem::discriminant(&job.tls)
    );
}

/// A store another run holds (at its CA passphrase prompt, say) is
/// waited for, said as a warning naming the holder, and a Ctrl-C ends the
/// wait: the apply fails with nothing issued and no host touched, while
/// the holder's lock stays its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ctrl_c_ends_the_wait_for_a_store_another_run_holds() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["held1", "held2"];
    let (loaded, fake) = simulated(&names, dir.path(), Duration::ZERO);
    let held = loaded.store.as_ref().unwrap().lock().unwrap();
    let (fleet, receiver) = fleet(10, Deadlines::default());
    // The user reads the warning, then presses Ctrl-C.
    let interrupt = fleet.interrupt.clone();
    let reader = std::thread::spawn(move || {
        let warning = receiver.iter().flatten().find_map(|event| match event {
            Event::Warning { message, .. } => Some(message),
            _ => None,
        });
        interrupt.trigger();
        warning
    });
    let (jobs, _) = crate::engine::load::jobs_with(&loaded, false).unwrap();
    let rollout = Rollout::default();
    let run = deploy::apply_with(
        fake.clone(),
        &loaded,
        jobs,
        &rollout,
        &fleet,
        Mode::<NoQuestion>::OnePass,
    );
    let ended = tokio::time::timeout(Duration::from_secs(10), run).await;
    let err = ended
        .expect("the wait ends")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    drop(fleet);
    let warning = reader.join().unwrap().expect("a warning before the Ctrl-C");
    let pid = std::process::id();
    assert!(
        warning.contains(&format!(
            "another dockhand run (pid {pid}) holds the PKI store's lock"
        )),
        "{warning}"
    );
    assert!(
        err.contains("interrupted while waiting for the PKI store's lock"),
        "{err}"
    );
    assert!(names.iter().all(|name| !fake.touched(name)));
    assert!(!dir.path().join("pki/ca.pem").exists(), "nothing issued");
    drop(held);
}

/// One instant a run: a server certificate that enters its renewal
/// window while the user reads is neither renewed unshown nor taken for a
/// change of the host's; the next run renews it. Past the forks (1) and
/// within them (2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_entering_its_renewal_window_while_the_user_reads_waits_for_the_next_run() {
    use crate::engine::load::now;
    // Seconds from now to the edge: time for a first converge and a plan,
    // on a machine busy with other tests.
    const EDGE: i64 = 6;
    for forks in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let (loaded, fake) = simulated(&["edge", "other"], dir.path(), Duration::ZERO);
        let store = loaded.store.as_ref().unwrap();
        let pki = loaded.playbook.pki.clone().unwrap();
        // The store's certificate for `edge` enters its window at `edge`.
        let edge = now() + EDGE;
        let window = i64::from(pki.renew_before_days) * 86_400;
        store.ensure_ca().unwrap();
        let sans = crate::core::pki::Sans::of_host(&loaded.hosts[0].0);
        store_certificate_expiring(store, "edge", &sans, edge + window);
        let (fleet, _) = fleet(forks, Deadlines::default());
        assert_all_changed(
            &asked(&fake, &loaded, &fleet, async |_| Ok(true))
                .await
                .unwrap(),
        );
        let cert = |fake: &FakeFleet| {
            fake.get("edge", |h| {
                h.files["/etc/docker/tls/server-cert.pem"].clone()
            })
        };
        let pushed = cert(&fake);
        // Something to ask about, on the other host.
        fake.set("other", |h| {
            h.files.insert(
                "/etc/docker/daemon.json".into(),
                b"{\"debug\": true}\n".to_vec(),
            );
        });
        let read_past_the_edge = async |_: Plans| {
            assert!(
                now() < edge,
                "planned after the edge: too slow a machine for this test"
            );
            while now() <= edge {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(true)
        };
        let done = asked(&fake, &loaded, &fleet, read_past_the_edge)
            .await
            .unwrap();
        match [&done[0].ended, &done[1].ended] {
            [
                Ended::Ran(Ok((Applied::Unchanged, _))),
                Ended::Ran(Ok((Applied::Changed { .. }, _))),
            ] => {}
            other => panic!("forks {forks}: {other:?}"),
        }
        assert_eq!(cert(&fake), pushed, "forks {forks}");

        let (jobs, _) = crate::engine::load::jobs_with(&loaded, false).unwrap();
        let renewed = one_pass(&fake, &loaded, jobs, &fleet).await;
        assert!(
            matches!(
                renewed[0].ended,
                Ended::Ran(Ok((Applied::Changed { .. }, _)))
            ),
            "forks {forks}: {:?}",
            renewed[0].ended
        );
        assert_ne!(cert(&fake), pushed, "forks {forks}");
    }
}

/// A server certificate for `host` in `store`, from its CA and naming
/// `sans` as the store's own would, that expires at `not_after` (Unix
/// seconds): the store issues only for a year from now.
fn store_certificate_expiring(
    store: &crate::pki::PkiStore,
    host: &str,
    sans: &crate::core::pki::Sans,
    not_after: i64,
) {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
    let ca = store.ca().unwrap().unwrap();
    let ca_key = KeyPair::from_pem(std::str::from_utf8(&ca.key_pem).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(std::str::from_utf8(&ca.cert_pem).unwrap(), ca_key);
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, host);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    for dns in &sans.dns {
        params
            .subject_alt_names
            .push(SanType::DnsName(dns.clone().try_into().unwrap()));
    }
    params
        .subject_alt_names
        .extend(sans.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    params.not_before = at(crate::engine::load::now() - 86_400);
    params.not_after = at(not_after);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, &issuer.unwrap()).unwrap();
    let dir = store.dir().join("servers").join(host);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// Every host of `names` trusts a CA made elsewhere ("their CA").
fn trust_their_ca(fake: &FakeFleet, names: &[&str]) {
    let theirs = crate::core::fixtures::foreign_ca("their CA");
    for name in names {
        fake.set(name, |h| {
            h.files
                .insert("/etc/docker/tls/ca.pem".into(), theirs.clone());
        });
    }
}

/// Every host refused for trusting their CA ([`trust_their_ca`]), and
/// none touched.
fn assert_all_refused_as_theirs(fake: &FakeFleet, done: &[Finished<deploy::AppliedHost>]) {
    for f in done {
        match &f.ended {
            Ended::Ran(Err(err)) => assert!(
                err.to_string().contains("trusts another CA, CN=their CA"),
                "{}: {err}",
                f.host
            ),
            other => panic!("{}: {other:?}", f.host),
        }
        assert!(!fake.touched(&f.host), "{}", f.host);
    }
}
