//! One host's pipeline: connect → gather (one round trip) → expand → plan;
//! then, for apply, write atomically → handlers → verify → keep or roll
//! back. Every remote step runs under its deadline and is reported through
//! the host's [`HostRun`]; the engine never prints.

pub use crate::core::outcome::Applied;

use crate::core::event::Phase;
use crate::core::input::inventory::Host;
use crate::core::input::playbook::{Handler, Playbook};
use crate::core::plan::{self, HostPlan};
use crate::core::roles::docker::workload::Container;
use crate::core::roles::{self, Resources, TlsMaterial};
use crate::core::state::{ActualState, Facts};
use crate::error::{Error, HostError, Result};
use crate::transport::{Connector, Target, Transport};
use crate::verify::{self, TlsProbe};

use super::fleet::HostRun;
use super::remote::Become;
use super::shared::Made;
use super::{apply, gather, remote, work};
use crate::secret::Secret;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Everything known about a host before connecting.
#[derive(Clone)]
pub struct HostJob {
    /// Shared with the run's other copies (a fleet of thousands holds
    /// each host once).
    pub host: Arc<Host>,
    pub target: Arc<Target>,
    pub tls: TlsMaterial,
    /// Where `tls` is read from when the host's turn comes
    /// ([`HostJob::read_tls`]), not before: a fleet of 10,000 waiting
    /// hosts would hold 10 MB of PEM.
    pub tls_reader: Option<Arc<crate::pki::TlsReader>>,
    /// The sudo password (`-K`, `--become-password-file`), if given.
    pub become_password: Option<Arc<Secret>>,
    /// `apply --replace-ca`: a host that trusts another CA is switched.
    pub replace_ca: bool,
}

impl HostJob {
    /// The job with the TLS files the local PKI has for its host now, when
    /// it reads them at its turn (what is missing is "to be issued").
    pub fn read_tls(self) -> Result<HostJob> {
        self.read_tls_at(time::OffsetDateTime::now_utc().unix_timestamp())
    }

    /// [`HostJob::read_tls`] as the store decides at `now` (Unix seconds):
    /// an apply plans and issues at one instant, so that a certificate
    /// renewed is one its plan showed.
    pub fn read_tls_at(mut self, now: i64) -> Result<HostJob> {
        if let Some(reader) = self.tls_reader.take() {
            let sans = crate::core::pki::Sans::of_host(&self.host);
            self.tls = reader.tls_for_host(&self.host.name, &sans, now)?;
        }
        Ok(self)
    }

    fn become_root(&self) -> Become {
        Become::of(
            self.host.ssh.become_root.unwrap_or(false),
            self.become_password.as_ref(),
        )
    }
}

/// A host connected, gathered and planned; the session stays open for apply.
pub struct Prepared<S> {
    pub session: S,
    pub desired: Resources,
    pub actual: ActualState,
    pub plan: HostPlan,
}

pub(super) fn host_error(host: &str, step: &str, reason: impl std::fmt::Display) -> Error {
    Error::OnHost {
        host: host.to_string(),
        cause: HostError::Step {
            step: step.to_string(),
            reason: reason.to_string(),
        },
    }
}

/// The playbook expanded for a host with what was gathered from it: once
/// per host and run (certificates issued later go in by
/// [`Resources::with_tls`], not by another expansion).
fn expand(playbook: &Playbook, job: &HostJob, actual: &ActualState) -> Result<Resources> {
    #[cfg(test)]
    tests::count_expansion(&job.host.name);
    roles::expand(playbook, &job.host.template_vars(), actual, &job.tls)
        .map(|desired| Resources {
            replace_ca: job.replace_ca,
            ..desired
        })
        .map_err(|reason| host_error(&job.host.name, "expand the playbook", reason))
}

/// Connects to the host, within its connect timeout.
pub async fn connect<C: Connector>(
    connector: &C,
    job: &HostJob,
    run: &HostRun,
) -> Result<C::Session> {
    connect_to(connector, &job.target, run).await
}

/// Connects to `target` as the step every command's connection is: the
/// target's own timeout bounds it, and the step's deadline, 5 s later,
/// only guards against a transport that ignores it.
pub async fn connect_to<C: Connector>(
    connector: &C,
    target: &Target,
    run: &HostRun,
) -> Result<C::Session> {
    let limit = target.connect_timeout + std::time::Duration::from_secs(5);
    run.step(Phase::Connecting, limit, connector.connect(target))
        .await
}

/// Connects, gathers in one round trip, and plans: what plan and verify
/// do, changing nothing.
pub async fn prepare<C: Connector>(
    connector: &C,
    playbook: &Playbook,
    job: &HostJob,
    run: &HostRun,
) -> Result<Prepared<C::Session>> {
    prepare_with(connector, playbook, job, run, false).await
}

/// Connects, takes the host's apply lock, then gathers and plans: the lock
/// is held from before the gather until the connection closes, so no other
/// apply changes the host between this plan and its writes.
pub async fn prepare_to_apply<C: Connector>(
    connector: &C,
    playbook: &Playbook,
    job: &HostJob,
    run: &HostRun,
) -> Result<Prepared<C::Session>> {
    prepare_with(connector, playbook, job, run, true).await
}

async fn prepare_with<C: Connector>(
    connector: &C,
    playbook: &Playbook,
    job: &HostJob,
    run: &HostRun,
    lock: bool,
) -> Result<Prepared<C::Session>> {
    let name = &job.host.name;
    let paths = roles::paths(playbook);
    // The kernel's fence is compared only where the playbook puts one up.
    let fence = playbook.firewall.is_some();
    let session = connect(connector, job, run).await?;
    let gathered = if lock {
        // The gather rides on the lock: one round trip for both.
        run.step(
            Phase::Locking,
            run.deadlines.step,
            apply::lock_host(&session, &job.become_root(), paths, fence),
        )
        .await
        .and_then(|(settled, answer)| {
            for message in settled.said() {
                run.sink.send(crate::core::event::Event::Warning {
                    host: Some(name.clone()),
                    message,
                });
            }
            gather::read_held(name, &answer)
        })
    } else {
        run.step(
            Phase::Gathering,
            run.deadlines.step,
            gather::gather(&session, &paths, fence, &job.become_root()),
        )
        .await
    };
    let actual = match gathered {
        Ok(actual) => actual,
        Err(err) => {
            session.close().await;
            return Err(err);
        }
    };
    let planned = expand(playbook, job, &actual).and_then(|desired| {
        plan::plan(&desired, &actual)
            .map(|plan| (desired, plan))
            .map_err(|reason| host_error(name, "plan", reason))
    });
    match planned {
        Ok((desired, plan)) => Ok(Prepared {
            session,
            desired,
            actual,
            plan,
        }),
        Err(err) => {
            session.close().await;
            Err(err)
        }
    }
}

/// Plans a prepared host again for `job` (its TLS files issued since):
/// the same gathered state and expansion with the new files, a new plan;
/// pure, no round trip.
pub fn replan<S>(playbook: &Playbook, job: &HostJob, prepared: Prepared<S>) -> Result<Prepared<S>> {
    let name = &job.host.name;
    let desired = prepared.desired.with_tls(playbook, &job.tls);
    let plan = plan::plan(&desired, &prepared.actual)
        .map_err(|reason| host_error(name, "plan", reason))?;
    Ok(Prepared {
        desired,
        plan,
        ..prepared
    })
}

/// What verification checks, besides a fresh SSH login.
#[derive(Clone)]
pub struct Checks {
    /// The CA and a client certificate, when the docker role is on.
    pub tls: Option<(TlsProbe, u16, serde_json::Map<String, serde_json::Value>)>,
    /// With `access: ssh`: the TCP port nothing may listen on, and the
    /// daemon settings `/info` must show through `docker system dial-stdio`.
    pub ssh: Option<(u16, serde_json::Map<String, serde_json::Value>)>,
    /// The TLS client configurations, built once for the run.
    pub tls_configs: Arc<verify::Configs>,
}

/// Applies the plan, verifies, and keeps the change or rolls it back. The
/// session is closed at the end, whatever happened.
pub async fn apply_and_verify<C: Connector>(
    connector: &C,
    prepared: Prepared<C::Session>,
    job: &HostJob,
    checks: &Checks,
    run: &HostRun,
) -> Result<Applied> {
    let Prepared {
        session,
        desired,
        actual,
        plan,
    } = prepared;
    let result = apply_on(connector, &session, desired, actual, plan, job, checks, run).await;
    session.close().await;
    result
}

/// Takes the host's state and plan by value: what the commit and the
/// verification do not need is let go before them (docker's restart takes
/// seconds, for every host in flight).
#[allow(clippy::too_many_arguments)]
async fn apply_on<C: Connector>(
    connector: &C,
    session: &C::Session,
    desired: Resources,
    actual: ActualState,
    plan: HostPlan,
    job: &HostJob,
    checks: &Checks,
    run: &HostRun,
) -> Result<Applied> {
    let name = &job.host.name;
    let become_root = job.become_root();
    if let Some(refusal) = &plan.refusal {
        return Err(host_error(
            name,
            "plan",
            format!("{refusal}; nothing was changed"),
        ));
    }
    if plan.is_empty() {
        // Nothing changed since the gather: sshd's settings are the ones it
        // saw, and this run's own login proves a login works.
        let seen = Seen::Unchanged(&actual.facts);
        let early = std::future::ready(None);
        verify(connector, session, job, &desired, checks, seen, early, run).await?;
        return Ok(Applied::Unchanged);
    }
    let work = work::work(
        &desired,
        &plan,
        &actual.facts.ssh_unit,
        &mut work::random_suffix,
    )
    .map_err(|reason| host_error(name, "prepare the writes", reason))?;
    // The containers that ran must run afterwards, unless the playbook
    // chose a new data root, which hides them on purpose.
    let must_run: Vec<Container> = match &actual.facts.workload {
        Some(workload) if desired.data_root_move.is_none() => workload.running().cloned().collect(),
        _ => Vec::new(),
    };
    let changes = plan.changes.len();
    drop((plan, actual));
    // Once the commit has reloaded ssh (and loaded the fence), verify's
    // fresh login is made while docker restarts, which comes last: its
    // handshake (five or six round trips) then costs no time of its own.
    // Verification does not wait for it to start the daemon's probes: on
    // a slow link the handshake outlasts docker's restart.
    let mark = early_login_mark(&work.handlers);
    let (reloaded, heard) = tokio::sync::oneshot::channel();
    let watch = mark.as_deref().map(|mark| (mark, reloaded));
    let mut early_login = Box::pin(async {
        match heard.await {
            Ok(()) => Some(fresh_connection(connector, job).await),
            Err(_) => None,
        }
    });
    let mut early = None;
    let committed = {
        let mut commit = std::pin::pin!(apply::apply(session, &work, &become_root, run, watch));
        loop {
            tokio::select! {
                committed = &mut commit => break committed,
                made = &mut early_login, if early.is_none() => early = Some(made),
            }
        }
    };
    if let Err(err) = committed {
        // A login still being made goes now, not after the rollback.
        drop(early_login);
        if let Some(Some(Ok(fresh))) = early {
            fresh.close().await;
        }
        // A commit that missed its deadline may have replaced files and
        // left a handler hanging: stop it and restore, on a fresh channel.
        if let Error::OnHost {
            cause: HostError::Deadline { step, seconds, .. },
            ..
        } = &err
        {
            let restored = roll_back(session, &work, &become_root, run).await;
            return Err(host_error(
                name,
                step,
                format!(
                    "no answer within {seconds}s (the step's deadline; --timeout sets it); {restored}"
                ),
            ));
        }
        return Err(err);
    }
    let seen = Seen::Changed(&must_run);
    let early = async {
        match early {
            Some(made) => made,
            None => early_login.await,
        }
    };
    match verify(connector, session, job, &desired, checks, seen, early, run).await {
        Ok(_) => {
            let finished = run
                .step(
                    Phase::RemovingBackups,
                    run.deadlines.step,
                    apply::finish(session, &work, &become_root),
                )
                .await;
            match finished {
                Ok(()) => Ok(Applied::Changed {
                    changes,
                    handlers: work.handlers,
                }),
                // The host said why (the dead-man switch fired, and put
                // part of the change back): the rest goes back too, so
                // the host is as before, not half of each.
                Err(Error::OnHost {
                    cause: HostError::Step { step, reason },
                    ..
                }) => {
                    let restored = roll_back(session, &work, &become_root, run).await;
                    Err(host_error(name, &step, format!("{reason}; {restored}")))
                }
                Err(err) => Err(err),
            }
        }
        Err(err) => {
            let restored = roll_back(session, &work, &become_root, run).await;
            Err(host_error(
                name,
                "verify",
                format!("{}; {restored}", err.cause()),
            ))
        }
    }
}

/// The commit's line after which sshd (and the fence) are as this change
/// leaves them, when docker's restart follows it (see [`Handler`]'s order).
fn early_login_mark(handlers: &[Handler]) -> Option<String> {
    if !handlers.contains(&Handler::RestartDocker) {
        return None;
    }
    handlers
        .iter()
        .filter(|h| matches!(h, Handler::ReloadSsh | Handler::ReloadFirewall))
        .max()
        .map(|last| remote::handler_ran(*last))
}

/// Restores the previous files and runs the handlers again; says how it went.
async fn roll_back<S: Transport>(
    session: &S,
    work: &work::Work,
    become_root: &Become,
    run: &HostRun,
) -> String {
    apply::rollback(session, work, become_root, run).await
}

/// Connections to `port` of the host the way SSH reaches it: through the
/// jump host when there is one (a direct-tcpip channel), else straight.
/// Each connection is counted as a probe of the host's traffic.
fn dialer<'s, S: Transport>(
    session: &'s S,
    target: &Target,
    port: u16,
) -> impl Fn() -> verify::Dialed<'s> + 's {
    let straight = verify::direct(target.address.clone(), port);
    let meter = target.meter.clone();
    move || -> verify::Dialed<'s> {
        meter.probe();
        let straight = straight();
        Box::pin(async move {
            match session.tunnel(port).await {
                Ok(Some(stream)) => Ok(stream),
                Ok(None) => straight.await,
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// `access: ssh` as its users meet it: the daemon answers through `docker
/// system dial-stdio` run by the login user over this SSH connection (what
/// `docker -H ssh://` does), its `/info` shows the playbook's settings,
/// and nothing answers on the TCP port a TLS listener would use.
async fn verify_ssh_access<S: Transport>(
    session: &S,
    job: &HostJob,
    port: u16,
    daemon: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<String>> {
    let name = &job.host.name;
    let step = "docker over SSH (dial-stdio)";
    let script = remote::dial_stdio(&remote::Layout::HOST, "/info");
    let output = session
        .run(step, &script.command(&Become::No), script.input())
        .await?;
    let (status, body) = verify::parse_http(&output.stdout)
        .map_err(|e| host_error(name, step, format!("{e} ({})", output.stderr_text().trim())))?;
    if status != 200 {
        let said = serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| host_error(name, step, format!("HTTP {status}, not JSON: {e}")))?;
        return Err(host_error(name, step, format!("HTTP {status}: {said}")));
    }
    let info: verify::Info = serde_json::from_slice(&body)
        .map_err(|e| host_error(name, step, format!("HTTP {status}, not JSON: {e}")))?;
    let problems = verify::info_mismatches(&info, daemon);
    if !problems.is_empty() {
        return Err(host_error(name, "check /info", problems.join("; ")));
    }
    let address = &job.target.address;
    let dial = dialer(session, &job.target, port);
    let answered = tokio::time::timeout(std::time::Duration::from_secs(3), dial()).await;
    if let Ok(Ok(_)) = answered {
        let path = if job.target.jump.is_some() {
            " (through the jump host)"
        } else {
            ""
        };
        return Err(host_error(
            name,
            "no TCP listener",
            format!("{address}:{port}{path} answers, with `access: ssh`"),
        ));
    }
    // The socket is the way in now: audit's socket rules must pass.
    let state = gather::gather(
        session,
        &crate::core::audit::paths(),
        true,
        &job.become_root(),
    )
    .await?;
    let failed: Vec<String> = crate::core::audit::audit(&state)
        .into_iter()
        .filter(|f| crate::core::audit::SOCKET_RULES.contains(&f.id))
        .filter(|f| f.verdict == crate::core::audit::Verdict::Fail)
        .map(|f| format!("{} {}: {}", f.id, f.title, f.reason))
        .collect();
    if !failed.is_empty() {
        return Err(host_error(name, "audit's socket rules", failed.join("; ")));
    }
    Ok(vec![
        format!(
            "docker {} answers over SSH (docker system dial-stdio, as {})",
            info.server_version(),
            job.target.user
        ),
        format!("nothing answers on TCP port {port}"),
        "audit's socket rules pass (3.15+3.16, 5.31)".into(),
    ])
}

/// What verification may take as already seen on a host.
#[derive(Clone, Copy)]
pub enum Seen<'a> {
    /// Something may have changed: everything is checked afresh, sshd's
    /// settings by a new `sshd -T`, logins by a new connection; and these
    /// containers, which ran before, must still run.
    Changed(&'a [Container]),
    /// Nothing was written since these facts were gathered on this very
    /// connection, itself a fresh login: sshd's settings are read from
    /// them and no second login is made. The daemon is still probed over
    /// mutual TLS.
    Unchanged(&'a Facts),
}

/// Checks a host as its users will meet it; returns what passed. `early`:
/// the fresh login a commit's reload let apply start already, if any
/// (`None` when it did not): the probes do not wait for it.
#[allow(clippy::too_many_arguments)]
pub async fn verify<C: Connector>(
    connector: &C,
    session: &C::Session,
    job: &HostJob,
    desired: &Resources,
    checks: &Checks,
    seen: Seen<'_>,
    early: impl Future<Output = Option<Result<C::Session>>>,
    run: &HostRun,
) -> Result<Vec<String>> {
    run.step(
        Phase::Verifying,
        run.deadlines.step,
        verify_checks(connector, session, job, desired, checks, seen, early),
    )
    .await
}

async fn verify_checks<C: Connector>(
    connector: &C,
    session: &C::Session,
    job: &HostJob,
    desired: &Resources,
    checks: &Checks,
    seen: Seen<'_>,
    early: impl Future<Output = Option<Result<C::Session>>>,
) -> Result<Vec<String>> {
    let name = &job.host.name;
    // After a change, the fresh login (which also reads `sshd -T`) and the
    // daemon's probes go at once: neither waits on the other's round trips.
    let (tls, fresh) = tokio::join!(
        verify_tls(session, job, checks, seen),
        fresh_login(connector, job, desired, seen, early)
    );
    let mut passed = tls?;
    let fresh = fresh?;
    if let Some((port, daemon)) = &checks.ssh {
        passed.extend(verify_ssh_access(session, job, *port, daemon).await?);
    }
    if let Some((drop_in, expected)) = &desired.sshd_expected {
        let effective = match (seen, &fresh) {
            (Seen::Unchanged(facts), _) => &facts.sshd_effective,
            (Seen::Changed(_), Some(effective)) => effective,
            (Seen::Changed(_), None) => unreachable!("a fresh login reads sshd -T"),
        };
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(k, want)| {
                !plan::sshd_values_equal(
                    k,
                    want,
                    effective.get(k).map(String::as_str).unwrap_or(""),
                )
            })
            .map(|(k, want)| {
                format!(
                    "{k} is `{}`, not `{want}`",
                    effective.get(k).map(String::as_str).unwrap_or("(unset)")
                )
            })
            .collect();
        if !wrong.is_empty() {
            return Err(host_error(
                name,
                &format!("sshd -T after {drop_in}"),
                wrong.join("; "),
            ));
        }
        passed.push(format!(
            "sshd -T shows the {} settings of {drop_in}",
            expected.len()
        ));
    }
    passed.push(match seen {
        Seen::Unchanged(_) => "this run's own SSH login works".into(),
        Seen::Changed(_) => "a fresh SSH login works".into(),
    });
    Ok(passed)
}

/// The daemon over mutual TLS, as its clients meet it: `/info` with a
/// client certificate (and the containers that ran before
/// still running), then a client without one refused; both at once.
async fn verify_tls<S: Transport>(
    session: &S,
    job: &HostJob,
    checks: &Checks,
    seen: Seen<'_>,
) -> Result<Vec<String>> {
    let name = &job.host.name;
    let mut passed = Vec::new();
    let Some((probe, port, daemon)) = &checks.tls else {
        return Ok(passed);
    };
    let address = &job.target.address;
    // The certificate is checked against the host's address, whichever
    // path the probe takes.
    let dial = dialer(session, &job.target, *port);
    let must_run: &[Container] = match seen {
        Seen::Changed(must_run) => must_run,
        Seen::Unchanged(_) => &[],
    };
    // The certificate pushed to this host, which the store checked against
    // the host's inventory address: pinned only when the probe goes to
    // that address (an ssh_config HostName may lead elsewhere).
    let pinned = match &job.tls {
        TlsMaterial::Ready { cert_pem, .. } if *address == job.host.address => {
            verify::pin::Pin::of_pem(cert_pem)
        }
        _ => None,
    };
    let (answer, refused) = tokio::join!(
        verify::query_daemon(
            &dial,
            *port,
            address,
            probe,
            &checks.tls_configs,
            pinned.as_ref(),
            !must_run.is_empty()
        ),
        verify::refuses_anonymous_clients(
            &dial,
            *port,
            address,
            probe,
            &checks.tls_configs,
            pinned.as_ref()
        )
    );
    let answer = answer.map_err(|e| host_error(name, "mutual-TLS GET /info", e))?;
    let problems = verify::info_mismatches(&answer.info, daemon);
    if !problems.is_empty() {
        return Err(host_error(name, "check /info", problems.join("; ")));
    }
    if !must_run.is_empty() {
        let stopped = verify::not_running(&answer.containers, must_run);
        if !stopped.is_empty() {
            return Err(host_error(
                name,
                "containers that ran before",
                format!(
                    "{} ran before the rollout and {} not running now",
                    stopped.join(", "),
                    if stopped.len() == 1 { "is" } else { "are" }
                ),
            ));
        }
        passed.push(format!(
            "the {} container(s) that ran before still run",
            must_run.len()
        ));
    }
    passed.push(format!(
        "docker {} answers over mutual TLS on port {port}",
        answer.info.server_version()
    ));
    refused.map_err(|e| host_error(name, "refuse clients without a certificate", e))?;
    passed.push("a client without a certificate is refused".into());
    Ok(passed)
}

/// The fresh login's `sshd -T` and facts, as sent: alike for every host
/// of a run, so made once (see [`Made`]).
fn sshd_settings_request(paths: Vec<(String, bool)>, how: &Become) -> Arc<remote::Sent> {
    type Key = (Vec<(String, bool)>, std::mem::Discriminant<Become>);
    static MADE: Made<Key, remote::Sent> = Made::new(4);
    MADE.get((paths, std::mem::discriminant(how)), |(paths, _)| {
        remote::sshd_settings(&remote::Layout::HOST, paths).into_sent(how)
    })
}

/// After a change, a new connection: the change must not lock us out. Its
/// one command reads sshd's settings (`sshd -T`, as root) when the
/// playbook sets them, so the login and the check are one round trip;
/// returns them. Nothing when nothing changed (this run's own login, a
/// moment ago, proves it).
async fn fresh_login<C: Connector>(
    connector: &C,
    job: &HostJob,
    desired: &Resources,
    seen: Seen<'_>,
    early: impl Future<Output = Option<Result<C::Session>>>,
) -> Result<Option<BTreeMap<String, String>>> {
    if let Seen::Unchanged(_) = seen {
        return Ok(None);
    }
    let fresh = match early.await {
        Some(made) => made?,
        None => fresh_connection(connector, job).await?,
    };
    let result = if desired.sshd_expected.is_some() {
        let how = job.become_root();
        let sent = sshd_settings_request(desired.paths(), &how);
        fresh
            .run("sshd -T", &sent.command, &sent.stdin(&how))
            .await
            .map(|output| Some(gather::sshd_settings(output.stdout_text().lines())))
    } else {
        let login = remote::login();
        fresh
            .run(
                "fresh SSH login",
                &login.command(&Become::No),
                login.input(),
            )
            .await
            .map(|_| None)
    };
    fresh.close().await;
    result
}

/// A new SSH connection to the host, as an administrator would make one
/// after the change.
async fn fresh_connection<C: Connector>(connector: &C, job: &HostJob) -> Result<C::Session> {
    connector
        .connect(&job.target)
        .await
        .map_err(|e| host_error(&job.host.name, "fresh SSH login", e.cause()))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Expansions done, by host name (tests give their hosts names of
    /// their own: the tests of a binary run at once).
    static EXPANSIONS: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

    pub(super) fn count_expansion(host: &str) {
        *EXPANSIONS
            .lock()
            .unwrap()
            .entry(host.to_string())
            .or_default() += 1;
    }

    pub(crate) fn expansions(host: &str) -> usize {
        EXPANSIONS.lock().unwrap().get(host).copied().unwrap_or(0)
    }
}
