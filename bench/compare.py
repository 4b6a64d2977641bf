"""dockhand, Ansible and pyinfra doing the same job on the same lab hosts.

For each fleet size asked for, boots that many Debian 12 lab hosts and, in
each of `--runs` rounds:

  fresh hosts     the OpenSSH floor (one `ssh` exec per host, all at once),
                  dockhand plan, dockhand apply (converge), dockhand apply
                  again (no-op), dockhand ping (the transport floor: one
                  login and one command per host), dockhand plan
                  (converged), the restart floor (`ssh HOST systemctl
                  restart docker`, all at once)
  fresh hosts     the same-job floor: dockhand's job done with OpenSSH
                  alone, one `ssh HOST 'tar -x -C / && systemctl
                  daemon-reload && systemctl restart docker && systemctl
                  reload ssh'` per host, all at once, each fed a tar of the
                  files dockhand's converge wrote on that host (the paths
                  its report lists, copied untimed before the lab went
                  down)
  fresh hosts     ansible-playbook --check --diff, converge, no-op
  fresh hosts     pyinfra converge, no-op

"Fresh" means the lab is taken down and booted again from its base, so each
converge starts from the same state. After every converge, dockhand plan
must find nothing to change and dockhand verify must pass (untimed): the
peers did the same job. Wall time is from start to exit; dockhand's peak
memory is its VmHWM, read every few milliseconds while it runs. dockhand's
timed runs report with `--format json` (stdout kept apart from the log):
where the report carries each host's traffic (logins, commands, channels,
round trips after connect, probes), its per-host maximum and mean are
recorded with the run. A subcommand without `--format` (asked of
`dockhand COMMAND --help`) runs without it and records no traffic.

The restart floor restarts a dockerd that is already in its new
configuration: the first start with `userns-remap` (creating the dockremap
user and its subordinate ids, a new data root) was paid by the converge.
The same-job floor pays it, as dockhand's converge does: it is the
converge's floor, dockhand's own work (the gather, the PKI, staging,
checks, the dead-man switch's fresh login, verification) taken out. Its
hosts come up at the names and addresses of the converged ones (the lab
numbers them alike), so the copied certificates name them and dockhand
plan and verify check the result as after a converge (untimed; skipped,
and said so, if the lab came up elsewhere, as when another lab took its
subnet meanwhile). The machine's busy CPU time over the floor is recorded
with it. `systemctl reload ssh` returns before sshd listens again, which
this floor does not wait for and dockhand's converge does.

With `--latency MS`, the same rounds run across a wide-area link: every
tool (dockhand, the OpenSSH floors, Ansible, pyinfra) reaches the hosts
through bench/relay.py, a userspace TCP relay that delays each direction
by MS milliseconds (and the TCP handshake by a round trip; no bandwidth
limit, loss or jitter). Each host is reached at a loopback alias
(127.77.x.y) on ports 22 and 2376; dockhand gets a copy of the lab
inventory with those addresses (target/bench-work/relay-inventory.yaml),
and everyone a known_hosts re-keyed to them (relay-known_hosts). If port
22 of the aliases is taken (an sshd listening on 0.0.0.0), SSH goes to
port 10022 instead. The relay is a child process, started before a round
and stopped, by its pid, after it (its log: target/bench-work/logs/
relay.log). Those results are kept apart, under "latency" in results.json
("50@50ms"), and summary.md sets them beside the LAN figures of the same
size:

  bench/run 50 --latency 50 --runs 1

With `--dockhand-only`, each round stops after the same-job floor: no
Ansible or pyinfra (neither is run, nor asked its version). Those rounds
are kept apart, under "dockhand_only" in results.json ("150", or "50@50ms"
with `--latency`), and summary.md gives them their own section with the
targets that concern dockhand alone (converge against the restart floor,
no-op against dockhand ping):

  bench/run 150 --dockhand-only --runs 3

With `--scaling N`, dockhand alone is measured on one lab of N hosts that
stays up throughout, so the machine carries the same load at every size:
converges of fresh, disjoint subsets of 10, 40 and N-50 hosts, then
no-ops of the first 10, 50 and all N hosts, each with its wall time,
dockhand's own CPU time and the machine's busy CPU time. That is the time
per extra host with the number of booted hosts held still.

Results go to bench/results/: results.json (every sample, merged across
invocations by fleet size, and by size and delay for `--latency`, each
kind of round apart),
summary.md (medians, spread, ratios, the targets of issues 11 and 21, each
PASS or MISS) and wall-time.png (wall time against hosts for the three
tools, LAN only). `--report` rewrites those two from results.json alone
(no root needed; so does `python3 bench/report.py`).

Run through bench/run, which makes the virtual environment and builds
dockhand.
"""

from __future__ import annotations

import argparse
import json
import os
import functools
import resource
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import relay

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
DOCKHAND = ROOT / "target/release/dockhand"
PLAYBOOK = ROOT / "playbooks/docker-tls.yaml"
VENV_BIN = Path(sys.executable).parent
LAB = "bench"
STATE = ROOT / "target/bench-labs"
WORK = ROOT / "target/bench-work"

# What the same-job floor copies when dockhand's converge report lists no
# changes (a dockhand without `--format`): the paths a converge of
# PLAYBOOK reports on a fresh lab host, parent directories first.
JOB_PATHS = [
    "/etc/docker/tls",
    "/etc/systemd/system/docker.service.d",
    "/etc/docker/tls/ca.pem",
    "/etc/docker/tls/server-cert.pem",
    "/etc/docker/tls/server-key.pem",
    "/etc/docker/daemon.json",
    "/etc/systemd/system/docker.service.d/override.conf",
    "/etc/ssh/sshd_config.d/00-dockhand.conf",
]
# The same-job floor on each fresh host, its tar on stdin: the handlers the
# converge runs (daemon-reload, restart-docker, reload-ssh), in its order.
JOB_COMMAND = "tar -x -C / && systemctl daemon-reload && systemctl restart docker && systemctl reload ssh"

class BenchError(Exception):
    pass


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def dockhand_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DOCKHAND_LAB=LAB,
        DOCKHAND_LAB_DIR=str(STATE),
        DOCKHAND_PKI_DIR=str(WORK / "pki"),
        NO_COLOR="1",
    )
    return env


def vm_hwm_kib(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), 0 once it exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(name: str, argv: list[str], env: dict[str, str] | None = None, ok=(0,), stdout: Path | None = None) -> dict:
    """Runs argv to its end; returns seconds, exit code and peak RSS (KiB).
    The peak is VmHWM read every few milliseconds while it runs: wait4's
    ru_maxrss would also count this Python process, which Linux carries
    over into the child's maximum across fork and exec. Output goes to a
    log per measurement, for when something fails; stdout to its own file
    when `stdout` is given (a report to parse)."""
    logfile = WORK / "logs" / f"{name}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    peak = 0
    with open(logfile, "w") as out, open(stdout or os.devnull, "w") as report:
        started = time.perf_counter()
        child = subprocess.Popen(
            argv, env=env, stdout=report if stdout else out, stderr=subprocess.STDOUT if stdout is None else out, stdin=subprocess.DEVNULL
        )
        while child.poll() is None:
            peak = max(peak, vm_hwm_kib(child.pid))
            time.sleep(0.005)
        seconds = time.perf_counter() - started
    code = child.returncode
    if code not in ok:
        where = f"{logfile}" + (f" and {stdout}" if stdout else "")
        raise BenchError(f"{name}: {shlex.join(argv)} exited {code}; see {where}")
    return {"seconds": seconds, "exit": code, "peak_kib": peak}


def lab(*args: str) -> str:
    done = subprocess.run(
        [str(DOCKHAND), "lab", *args], env=dockhand_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise BenchError(f"dockhand lab {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def fresh_hosts(count: int) -> list[tuple[str, str]]:
    """Takes the lab down and boots `count` hosts from the base again."""
    started = time.perf_counter()
    lab("down")
    lab("up", str(count), "--release", "bookworm")
    inventory = yaml.safe_load((STATE / LAB / "inventory.yaml").read_text())
    hosts = [(name, spec["address"]) for name, spec in inventory["hosts"].items()]
    if len(hosts) != count:
        raise BenchError(f"the lab inventory lists {len(hosts)} hosts, not {count}")
    available = next(
        int(line.split()[1]) // 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemAvailable:")
    )
    log(f"{count} fresh hosts in {time.perf_counter() - started:.1f}s; {available} MiB of memory available")
    return hosts


class Lan:
    """How the tools reach the hosts: straight over the lab's bridge, at
    the addresses, port and known_hosts the lab wrote."""

    delay_ms: float | None = None
    ssh_port = 22

    def inventory(self) -> Path:
        return STATE / LAB / "inventory.yaml"

    def known_hosts(self) -> Path:
        return STATE / LAB / "known_hosts"

    def reach(self, hosts: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return hosts

    def stop(self) -> None:
        pass


class Relayed(Lan):
    """Across a wide-area link: bench/relay.py between this machine and
    every host, each host at a loopback alias (see `--latency`)."""

    def __init__(self, delay_ms: float) -> None:
        self.delay_ms = delay_ms
        self.child: subprocess.Popen | None = None
        self.routes: list[tuple[str, int, str, int]] | None = None

    def inventory(self) -> Path:
        return WORK / "relay-inventory.yaml"

    def known_hosts(self) -> Path:
        return WORK / "relay-known_hosts"

    def reach(self, hosts: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """After a boot: the relay in front of `hosts` (started, or started
        again when their addresses changed), the known_hosts re-keyed and
        the inventory rewritten for it. Returns the hosts at the addresses
        the tools are to use."""
        aliases = {address: relay.alias(index) for index, (_, address) in enumerate(hosts)}
        if self.child is None or self.child.poll() is not None or set(aliases) != {r[2] for r in self.routes or []}:
            self.stop()
            first = relay.alias(0)
            self.ssh_port = 22 if can_listen(first, 22) else 10022
            routes = []
            for address, alias in aliases.items():
                routes.append((alias, self.ssh_port, address, 22))
                routes.append((alias, 2376, address, 2376))  # dockerd's TLS port, the playbook's listen
            self.start(routes)
        mapping = {(address, 22): (alias, self.ssh_port) for address, alias in aliases.items()}
        text, lines = relay.rekey_known_hosts(super().known_hosts().read_text(), mapping)
        if lines < len(hosts):
            raise BenchError(f"{super().known_hosts()}: {lines} key lines for {len(hosts)} hosts once re-keyed to the relay")
        self.known_hosts().write_text(text)
        self.write_inventory(aliases)
        return [(name, aliases[address]) for name, address in hosts]

    def write_inventory(self, aliases: dict[str, str]) -> None:
        """The lab's inventory with each host's address the alias, and the
        relay's known_hosts and SSH port wherever SSH settings are given
        (the certificates dockhand issues then name the alias too)."""
        inventory = yaml.safe_load(super().inventory().read_text())
        for spec in inventory["hosts"].values():
            spec["address"] = aliases[spec["address"]]
        defaults = inventory.setdefault("defaults", {}) or {}
        inventory["defaults"] = defaults
        layers = [defaults.setdefault("ssh", {})]
        for section in ("hosts", "groups"):
            for spec in (inventory.get(section) or {}).values():
                if isinstance(spec, dict) and isinstance(spec.get("ssh"), dict):
                    layers.append(spec["ssh"])
        for index, ssh in enumerate(layers):
            for key, value in (("known_hosts", str(self.known_hosts())), ("port", self.ssh_port)):
                if index == 0 or key in ssh:
                    ssh[key] = value
        text = f"# The lab's inventory, reached through bench/relay.py ({self.delay_ms:g} ms each way); written by bench/compare.py.\n"
        self.inventory().write_text(text + yaml.safe_dump(inventory, sort_keys=False, default_flow_style=False))

    def start(self, routes: list[tuple[str, int, str, int]]) -> None:
        logfile = WORK / "logs" / "relay.log"
        logfile.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, str(BENCH / "relay.py"), "--delay", f"{self.delay_ms:g}"]
        for alias, port, address, target_port in routes:
            argv += ["--route", f"{alias}:{port}={address}:{target_port}"]
        with open(logfile, "a") as log_out:
            self.child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log_out, stdin=subprocess.DEVNULL, text=True)
        ready, _, _ = select.select([self.child.stdout], [], [], 30)
        line = self.child.stdout.readline() if ready else ""
        if not line.startswith("ready"):
            self.stop()
            raise BenchError(f"the relay did not start; see {logfile}")
        self.routes = routes
        log(f"relay ({self.delay_ms:g} ms each way) in front of {len(routes) // 2} hosts, pid {self.child.pid}, SSH on port {self.ssh_port}")

    def stop(self) -> None:
        """Stops the relay, by its pid."""
        child, self.child, self.routes = self.child, None, None
        if child is None:
            return
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        child.stdout.close()


def can_listen(address: str, port: int) -> bool:
    """Whether the relay could listen on address:port (a server listening
    on 0.0.0.0 at that port, such as this machine's sshd, takes it)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


# How the round reaches the hosts: set by main().
LINK: Lan = Lan()


def ssh_base() -> list[str]:
    lab_dir = STATE / LAB
    return [
        "ssh",
        "-i", str(lab_dir / "id_ed25519"),
        "-p", str(LINK.ssh_port),
        "-o", f"UserKnownHostsFile={LINK.known_hosts()}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "ControlMaster=no",
        "-o", "ControlPath=none",
    ]


def parallel_ssh(
    name: str,
    hosts: list[tuple[str, str]],
    command: str,
    inputs: dict[str, Path] | None = None,
    outputs: dict[str, Path] | None = None,
) -> dict:
    """One OpenSSH client per host, all started at once; timed until the
    last one exits. Every one must succeed. A host in `inputs` gets that
    file on stdin; one in `outputs` has its stdout written there (its log
    keeps stderr).

    A host whose sshd dropped the connection before any session (its
    `LoginGraceTime` spent: with 150 logins and as many docker restarts on
    two cores, the last logins wait past it) is asked again once, at once,
    and the clock keeps running: the result says how many were."""
    logdir = WORK / "logs" / name
    logdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    failed = ssh_all(logdir, hosts, command, inputs or {}, outputs or {})
    dropped = [h for h in failed if dropped_before_session(logdir / f"{h[0]}.log")]
    if dropped and len(dropped) == len(failed):
        log(f"  {name}: {len(dropped)} host(s) dropped the connection before a session; asking them again")
        failed = ssh_all(logdir, dropped, command, inputs or {}, outputs or {}, again=True)
    seconds = time.perf_counter() - started
    if failed:
        raise BenchError(f"{name}: ssh failed on {', '.join(h for h, _ in failed)}; see {logdir}")
    return {"seconds": seconds, "exit": 0, "retried": len(dropped)}


# The line ssh_all adds to a failed client's log: its exit status (a
# signal's as negative), which the client itself may not have printed.
EXIT_MARK = "[bench] ssh exited "


def dropped_before_session(log_path: Path) -> bool:
    """Whether an ssh client's log is only sshd closing the connection
    before authentication finished (nothing ran on the host). The client
    says so in one of several ways, by what it was doing when the
    connection went: reading ("Connection closed by"), or writing its next
    key exchange or authentication message ("ssh_dispatch_run_fatal: ...:
    Broken pipe"). An authenticated session is never cut by sshd's
    LoginGraceTime, and the floors' commands print nothing on success."""
    lines = [
        l for l in log_path.read_text(errors="replace").splitlines() if l.strip() and not l.startswith(EXIT_MARK)
    ]
    return bool(lines) and all(
        l.startswith(("Connection closed by", "Connection reset by", "kex_exchange_identification", "banner exchange"))
        or (l.startswith("ssh_dispatch_run_fatal: Connection to ") and l.endswith((": Broken pipe", ": Connection reset by peer")))
        for l in lines
    )


def ssh_all(
    logdir: Path,
    hosts: list[tuple[str, str]],
    command: str,
    inputs: dict[str, Path],
    outputs: dict[str, Path],
    again: bool = False,
) -> list[tuple[str, str]]:
    """Starts one client per host, waits for all; the hosts that failed.
    `again` appends to each host's log instead of starting it afresh."""
    children = []
    for host, address in hosts:
        files = [open(logdir / f"{host}.log", "a" if again else "w")]
        stdin, stdout, stderr = subprocess.DEVNULL, files[0], subprocess.STDOUT
        if host in inputs:
            stdin = open(inputs[host], "rb")
            files.append(stdin)
        if host in outputs:
            stdout, stderr = open(outputs[host], "wb"), files[0]
            files.append(stdout)
        argv = ssh_base() + [f"root@{address}", command]
        children.append(((host, address), subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=stdin), files))
    failed = []
    for host, child, files in children:
        code = child.wait()
        if code != 0:
            failed.append(host)
            # A client can fail without a word (a signal, a remote command
            # that printed nothing): the log then says at least how.
            files[0].write(f"{EXIT_MARK}{code}\n")
        for f in files:
            f.close()
    return failed


@functools.cache
def has_format(command: str) -> bool:
    """Whether `dockhand COMMAND` takes `--format` (json), from its help."""
    done = subprocess.run([str(DOCKHAND), command, "--help"], capture_output=True, text=True)
    supported = done.returncode == 0 and "--format" in done.stdout
    if not supported:
        log(f"dockhand {command} has no --format: its traffic is not recorded")
    return supported


def dockhand(name: str, command: str, *args: str, ok=(0,), traffic: bool = True) -> dict:
    """dockhand COMMAND on the round's inventory (`ping` takes no playbook).
    With `traffic`, and a COMMAND that has `--format`, it reports in JSON
    to logs/NAME.json (the log keeps stderr) and what that report says of
    each host's traffic is recorded."""
    argv = [str(DOCKHAND), command, "-i", str(LINK.inventory())]
    if command != "ping":
        argv.append(str(PLAYBOOK))
    argv += args
    report = None
    if traffic and has_format(command):
        report = WORK / "logs" / f"{name}.json"
        argv += ["--format", "json"]
    argv += ["--progress", "none"]
    result = timed(name, argv, env=dockhand_env(), ok=ok, stdout=report)
    if report is not None and (counts := traffic_of(report)) is not None:
        result["traffic"] = counts
    return result


def json_report(path: Path) -> dict | None:
    """dockhand's `--format json` report in `path` (from its first brace),
    None when there is none."""
    try:
        text = path.read_text()
        report, _ = json.JSONDecoder().raw_decode(text[text.index("{"):])
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def traffic_of(path: Path) -> dict | None:
    """From dockhand's `--format json` report, each traffic count's
    maximum and mean over the hosts (`"hosts": [{"traffic": {...}}]`) and
    the summary's totals. None when there is no such report or it carries
    no traffic (a dockhand from before issue 21): nothing is recorded."""
    report = json_report(path)
    hosts = None if report is None else report.get("hosts")
    if not isinstance(hosts, list):
        return None

    def counts(value) -> dict:
        if not isinstance(value, dict):
            return {}
        return {k: v for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    per_host = [counts(h.get("traffic")) for h in hosts if isinstance(h, dict)]
    per_host = [t for t in per_host if t]
    if not per_host:
        return None
    keys = sorted({k for t in per_host for k in t})
    result = {
        "hosts": len(per_host),
        "max": {k: max(t.get(k, 0) for t in per_host) for k in keys},
        "mean": {k: round(sum(t.get(k, 0) for t in per_host) / len(per_host), 3) for k in keys},
    }
    summary = report.get("summary")
    if isinstance(summary, dict) and (total := counts(summary.get("traffic"))):
        result["total"] = total
    return result


def assert_converged(tool: str) -> None:
    """Untimed: after `tool` converged, dockhand finds nothing to change and
    the daemons pass verification (mutual TLS, sshd's settings)."""
    result = dockhand(f"{tool}_check_plan", "plan", "--detailed-exitcode", ok=(0, 2), traffic=False)
    if result["exit"] != 0:
        raise BenchError(
            f"after {tool}'s converge, dockhand plan still finds changes: the jobs differ; "
            f"see {WORK / 'logs' / (tool + '_check_plan.log')}"
        )
    dockhand(f"{tool}_check_verify", "verify", traffic=False)


def job_paths() -> list[str]:
    """What this round's dockhand converge wrote: the paths its report
    lists under each host's "changes", in the report's order (a directory
    before what it holds), every host's together; JOB_PATHS when there is
    no such report."""
    report = json_report(WORK / "logs" / "dockhand_converge.json") if has_format("apply") else None
    paths: list[str] = []
    hosts = (report or {}).get("hosts") or []
    for changes in (host.get("changes") or [] for host in hosts if isinstance(host, dict)):
        for change in changes:
            if isinstance(change, str) and change.startswith("/") and change not in paths:
                paths.append(change)
    return paths or JOB_PATHS


def save_job(hosts: list[tuple[str, str]]) -> dict[str, Path]:
    """Untimed, on the converged hosts: a tar of the files and directories
    dockhand wrote on each (their modes and owners with them, nothing
    beneath a directory but what it wrote), one per host in WORK/job."""
    directory = WORK / "job"
    directory.mkdir(parents=True, exist_ok=True)
    tars = {host: directory / f"{host}.tar" for host, _ in hosts}
    members = " ".join(shlex.quote(path.lstrip("/")) for path in job_paths())
    parallel_ssh("floor_job_save", hosts, f"tar -c -C / --no-recursion -f - {members}", outputs=tars)
    return tars


def when_ssh_answers(hosts: list[tuple[str, str]], seconds: float = 30) -> None:
    """Waits until every host takes a new login: `systemctl reload ssh`
    returns while sshd re-executes itself, before it listens again."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            parallel_ssh("floor_job_login", hosts, "true")
            return
        except BenchError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def same_job_floor(count: int, converged: list[tuple[str, str]]) -> dict:
    """See the same-job floor in this file's doc: each converged host's
    files, unpacked on a fresh host of its name, with the converge's
    handlers; all hosts at once. Leaves the fresh hosts up."""
    tars = save_job(converged)
    hosts = LINK.reach(fresh_hosts(count))
    if sorted(name for name, _ in hosts) != sorted(tars):
        raise BenchError(f"the fresh lab's hosts are not the converged ones: {', '.join(name for name, _ in hosts)}")
    busy = machine_busy_seconds()
    result = parallel_ssh("floor_job", hosts, JOB_COMMAND, inputs=tars)
    result["machine_cpu_seconds"] = machine_busy_seconds() - busy
    result["hosts"] = len(hosts)
    # Whether dockhand plan and verify found the converge's configuration.
    result["checked"] = sorted(hosts) == sorted(converged)
    if result["checked"]:
        when_ssh_answers(hosts)
        assert_converged("floor_job")
    else:
        log("  the fresh hosts came up at other addresses than the converged ones (another lab took the subnet?): "
            "the copied certificates do not name them, so dockhand plan and verify are not asked")
    return result


def ansible_inventory(hosts: list[tuple[str, str]]) -> Path:
    lab_dir = STATE / LAB
    lines = ["[bench]"]
    lines += [f"{name} ansible_host={address}" for name, address in hosts]
    lines += [
        "",
        "[bench:vars]",
        "ansible_user=root",
        f"ansible_port={LINK.ssh_port}",
        f"ansible_ssh_private_key_file={lab_dir / 'id_ed25519'}",
        f"ansible_ssh_common_args='-o UserKnownHostsFile={LINK.known_hosts()} -o StrictHostKeyChecking=yes'",
        "ansible_python_interpreter=/usr/bin/python3",
    ]
    path = WORK / "ansible-inventory.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def ansible(name: str, hosts: list[tuple[str, str]], *extra: str) -> dict:
    control = tempfile.mkdtemp(prefix="cp-", dir=WORK)
    env = dict(os.environ)
    env.update(
        ANSIBLE_FORKS=str(len(hosts)),
        ANSIBLE_PIPELINING="True",
        ANSIBLE_HOST_KEY_CHECKING="True",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_SSH_CONTROL_PATH_DIR=control,
        ANSIBLE_LOCAL_TEMP=str(WORK / "ansible-tmp"),
        ANSIBLE_HOME=str(WORK / "ansible-home"),
    )
    argv = [
        str(VENV_BIN / "ansible-playbook"),
        "-i", str(ansible_inventory(hosts)),
        "-e", f"pki_dir={WORK / 'pki'}",
        *extra,
        str(BENCH / "ansible/docker-tls.yml"),
    ]
    return timed(name, argv, env=env)


def recap_changed(name: str) -> int:
    """Hosts Ansible's recap shows with changed > 0."""
    text = (WORK / "logs" / f"{name}.log").read_text()
    return sum(1 for line in text.splitlines() if " : ok=" in line and "changed=0" not in line)


def pyinfra_changed(name: str) -> int:
    """Operations pyinfra's summary counts as a success (a change): the
    columns of its `Grand total` line are hosts, success, error, no
    change."""
    text = (WORK / "logs" / f"{name}.log").read_text()
    total = next(line.split() for line in text.splitlines() if line.strip().startswith("Grand total"))
    return 0 if total[3] == "-" else int(total[3])


def pyinfra(name: str, hosts: list[tuple[str, str]]) -> dict:
    lab_dir = STATE / LAB
    inventory = WORK / "pyinfra_inventory.py"
    common = {
        "ssh_user": "root",
        "ssh_port": LINK.ssh_port,
        "ssh_key": str(lab_dir / "id_ed25519"),
        "ssh_known_hosts_file": str(LINK.known_hosts()),
        "ssh_strict_host_key_checking": "yes",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
        "pki_dir": str(WORK / "pki"),
    }
    entries = [(n, {"ssh_hostname": a, **common}) for n, a in hosts]
    inventory.write_text(f"bench = {entries!r}\n")
    argv = [
        str(VENV_BIN / "pyinfra"),
        "-y",
        "--parallel", str(len(hosts)),
        str(inventory),
        str(BENCH / "pyinfra/deploy.py"),
    ]
    return timed(name, argv, env=dict(os.environ, NO_COLOR="1"))


def one_round(count: int, round_number: int, dockhand_only: bool = False) -> dict:
    """One round (see this file's doc); with `dockhand_only`, up to the
    same-job floor."""
    samples: dict = {}

    def record(key: str, result: dict) -> None:
        samples[key] = result
        memory = f", peak {result['peak_kib'] / 1024:.1f} MiB" if key.startswith("dockhand") else ""
        if "machine_cpu_seconds" in result:
            memory += f", machine CPU {result['machine_cpu_seconds']:.1f}s"
        if "traffic" in result:
            most, mean = result["traffic"]["max"], result["traffic"]["mean"]
            memory += f"; round trips per host {most.get('round_trips', '?')} at most, {mean.get('round_trips', '?')} on average"
        log(f"  {key}: {result['seconds']:.2f}s{memory}")

    where = "" if LINK.delay_ms is None else f" across a {LINK.delay_ms:g} ms link"
    log(f"{count} hosts{where}, round {round_number}: dockhand and the floors")
    hosts = LINK.reach(fresh_hosts(count))
    probe = "cat /etc/os-release >/dev/null; stat -c '%a %U %G %n' /etc/docker /etc/ssh/sshd_config.d; systemctl is-active docker ssh"
    record("floor_exec", parallel_ssh("floor_exec", hosts, probe))
    record("dockhand_plan_fresh", dockhand("dockhand_plan_fresh", "plan", "--detailed-exitcode", ok=(2,)))
    record("dockhand_converge", dockhand("dockhand_converge", "apply", "--yes"))
    record("dockhand_noop", dockhand("dockhand_noop", "apply", "--yes"))
    record("dockhand_ping", dockhand("dockhand_ping", "ping"))
    record("dockhand_plan_converged", dockhand("dockhand_plan_converged", "plan", "--detailed-exitcode"))
    record("floor_restart", parallel_ssh("floor_restart", hosts, "systemctl restart docker"))
    record("floor_job", same_job_floor(count, hosts))
    if dockhand_only:
        return samples

    log(f"{count} hosts{where}, round {round_number}: Ansible")
    hosts = LINK.reach(fresh_hosts(count))
    record("ansible_check", ansible("ansible_check", hosts, "--check", "--diff"))
    record("ansible_converge", ansible("ansible_converge", hosts))
    record("ansible_noop", ansible("ansible_noop", hosts))
    if (changed := recap_changed("ansible_noop")) != 0:
        raise BenchError(f"Ansible's no-op changed {changed} hosts")
    assert_converged("ansible")

    log(f"{count} hosts{where}, round {round_number}: pyinfra")
    hosts = LINK.reach(fresh_hosts(count))
    record("pyinfra_converge", pyinfra("pyinfra_converge", hosts))
    record("pyinfra_noop", pyinfra("pyinfra_noop", hosts))
    if (changed := pyinfra_changed("pyinfra_noop")) != 0:
        raise BenchError(f"pyinfra's no-op changed something ({changed} operations)")
    assert_converged("pyinfra")
    return samples


def machine_busy_seconds() -> float:
    """CPU time the machine spent not idle since boot, all cores (the hosts'
    work and the tools' alike)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - fields[3] - fields[4]) / ticks


def dockhand_on(name: str, hosts: list[str], *args: str) -> dict:
    """dockhand on `hosts` only (--limit), with its own CPU time and the
    machine's busy CPU time over the run."""
    before, busy = resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy_seconds()
    result = dockhand(name, *args, "--limit", ",".join(hosts))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["machine_cpu_seconds"] = machine_busy_seconds() - busy
    result["hosts"] = len(hosts)
    log(f"  {name} on {len(hosts)} hosts: {result['seconds']:.2f}s, dockhand CPU {result['cpu_seconds']:.2f}s, machine CPU {result['machine_cpu_seconds']:.1f}s")
    return result


def scaling(count: int, runs: int) -> dict:
    """See `--scaling` in this file's doc."""
    log(f"scaling on one lab of {count} hosts")
    hosts = fresh_hosts(count)
    names = [name for name, _ in hosts]
    subsets = ((0, 10), (10, 50), (50, count))
    converges = []
    for start, end in subsets:
        converges.append(dockhand_on(f"scaling_converge_{end - start}", names[start:end], "apply", "--yes"))
    noops = []
    for _ in range(runs):
        noops.append([dockhand_on(f"scaling_noop_{n}", names[:n], "apply", "--yes") for n in (10, 50, count)])
    # The restart floor on the same subsets: how the hosts' own work per
    # host grows when more of them restart docker at once.
    restarts = []
    for start, end in subsets:
        busy = machine_busy_seconds()
        result = parallel_ssh(f"scaling_restart_{end - start}", hosts[start:end], "systemctl restart docker")
        result["machine_cpu_seconds"] = machine_busy_seconds() - busy
        result["hosts"] = end - start
        log(f"  restart floor on {end - start} hosts: {result['seconds']:.2f}s, machine CPU {result['machine_cpu_seconds']:.1f}s")
        restarts.append(result)
    assert_converged("scaling")
    return {
        "hosts": count,
        "converge": converges,
        "noop": noops,
        "restart": restarts,
        "versions": versions(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def load_results() -> dict:
    path = RESULTS / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results.setdefault("sizes", {})
    return results


def latency_key(count: int, delay_ms: float) -> str:
    """Where a fleet size's rounds across the relay go in results.json,
    under "latency" (and "dockhand_only" for `--dockhand-only`):
    "50@50ms"."""
    return f"{count}@{delay_ms:g}ms"


def save_results(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


def versions(peers: bool = True) -> dict:
    """The tools' versions; without `peers`, Ansible and pyinfra are not
    asked (`--dockhand-only` needs neither installed)."""
    def first_line(argv: list[str]) -> str:
        done = subprocess.run(argv, capture_output=True, text=True)
        return (done.stdout or done.stderr).splitlines()[0].strip()

    found = {"dockhand": first_line([str(DOCKHAND), "--version"])}
    if peers:
        found["ansible"] = first_line([str(VENV_BIN / "ansible-playbook"), "--version"])
        found["pyinfra"] = first_line([str(VENV_BIN / "pyinfra"), "--version"])
    found["openssh"] = first_line(["ssh", "-V"])
    found["cpus"] = os.cpu_count()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hosts", nargs="*", type=int, help="fleet sizes (default: 50)")
    parser.add_argument("--runs", type=int, default=3, help="rounds per fleet size (default: 3)")
    parser.add_argument("--report", action="store_true", help="only rewrite summary.md and wall-time.png")
    parser.add_argument("--scaling", type=int, metavar="N", help="only dockhand's time per extra host on one lab of N hosts (at least 100)")
    parser.add_argument(
        "--latency",
        type=float,
        metavar="MS",
        help="run the rounds across a link that delays each direction by MS ms (bench/relay.py); kept apart in the results",
    )
    parser.add_argument(
        "--dockhand-only",
        action="store_true",
        help="only dockhand and the floors in each round, no Ansible or pyinfra; kept apart in the results",
    )
    args = parser.parse_args()
    sizes = args.hosts or ([] if args.report or args.scaling else [50])
    if args.scaling is not None and not 100 <= args.scaling <= 200:
        print("bench: --scaling takes 100 to 200 hosts", file=sys.stderr)
        return 1
    if args.latency is not None and (args.scaling or args.report or not 0 <= args.latency <= 10000):
        print("bench: --latency takes 0 to 10000 ms, and goes with fleet sizes (not --scaling or --report)", file=sys.stderr)
        return 1
    if args.dockhand_only and (args.scaling or args.report):
        print("bench: --dockhand-only goes with fleet sizes (not --scaling or --report)", file=sys.stderr)
        return 1
    if (sizes or args.scaling) and os.geteuid() != 0:
        print("bench: the lab needs root", file=sys.stderr)
        return 1
    if any(n < 1 or n > 200 for n in sizes) or args.runs < 1:
        print("bench: fleet sizes are 1 to 200 hosts, and --runs at least 1", file=sys.stderr)
        return 1

    global LINK
    LINK = Lan() if args.latency is None else Relayed(args.latency)
    results = load_results()
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        if args.scaling:
            results["scaling"] = scaling(args.scaling, args.runs)
            save_results(results)
        for count in sizes:
            rounds = []
            for number in range(1, args.runs + 1):
                try:
                    rounds.append(one_round(count, number, args.dockhand_only))
                finally:
                    LINK.stop()
            entry = {
                "rounds": rounds,
                "versions": versions(peers=not args.dockhand_only),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
            if args.latency is not None:
                entry.update(
                    hosts=count,
                    latency_ms=args.latency,
                    link="bench/relay.py: a fixed delay each way and the TCP handshake's round trip; no bandwidth limit, loss or jitter",
                )
            if args.dockhand_only:
                entry.setdefault("hosts", count)
                key = str(count) if args.latency is None else latency_key(count, args.latency)
                results.setdefault("dockhand_only", {})[key] = entry
            elif args.latency is None:
                results["sizes"][str(count)] = entry
            else:
                results.setdefault("latency", {})[latency_key(count, args.latency)] = entry
            save_results(results)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    finally:
        LINK.stop()
        if sizes or args.scaling:
            lab("down")

    from report import MEASURES, targets_text, write_report

    write_report(results, RESULTS, MEASURES)
    print((RESULTS / "summary.md").read_text())
    print("\n".join(targets_text(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
