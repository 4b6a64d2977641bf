"""Turns bench/results/results.json into summary.md (medians with their
spread, ratios to the floors and to each peer, the round trips dockhand
counted, the runs across a delayed link beside the LAN ones, the targets
of issues 11 and 21, the `--dockhand-only` rounds in a section of their
own) and wall-time.png (wall time against hosts for the three tools, LAN
runs only).

    python3 bench/report.py [--results FILE] [--out DIR]

writes both (the plot only where matplotlib is installed) and prints the
targets of issue 21, PASS or MISS, per fleet size (and apart, those of
the `--dockhand-only` rounds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

# What each measurement is called in results.json, in the order shown.
MEASURES = [
    ("floor_exec", "OpenSSH floor: one exec per host, all at once"),
    ("floor_restart", "floor: `systemctl restart docker` on every host at once"),
    ("floor_job", "same-job floor: dockhand's files and handlers by OpenSSH alone, fresh hosts, all at once"),
    ("dockhand_plan_fresh", "dockhand plan, fresh hosts"),
    ("dockhand_converge", "dockhand apply, converge (verification included)"),
    ("dockhand_noop", "dockhand apply, no-op (verification included)"),
    ("dockhand_ping", "dockhand ping (one login and one command per host)"),
    ("dockhand_plan_converged", "dockhand plan, converged hosts"),
    ("ansible_check", "Ansible --check --diff, fresh hosts"),
    ("ansible_converge", "Ansible converge (verification included)"),
    ("ansible_noop", "Ansible no-op (verification included)"),
    ("pyinfra_converge", "pyinfra converge (no verification)"),
    ("pyinfra_noop", "pyinfra no-op"),
]

# dockhand's runs whose traffic is counted (`--format json`), as shown.
TRAFFIC_MEASURES = [
    ("dockhand_plan_fresh", "plan, fresh hosts"),
    ("dockhand_converge", "apply, converge"),
    ("dockhand_noop", "apply, no-op"),
    ("dockhand_ping", "ping"),
    ("dockhand_plan_converged", "plan, converged hosts"),
]
TRAFFIC_COUNTS = ["round_trips", "commands", "channels", "logins", "probes"]
# Measures newer than the first results: a table has their row only where a
# round recorded them, so the summary of older results reads as it did.
WHERE_RECORDED = {"floor_job"}


def samples(size: dict, key: str) -> list[float]:
    return [r[key]["seconds"] for r in size["rounds"] if key in r]


def median(size: dict, key: str) -> float | None:
    values = samples(size, key)
    return statistics.median(values) if values else None


def spread(size: dict, key: str) -> str:
    values = samples(size, key)
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"


def peak_mib(size: dict, key: str) -> float | None:
    values = [r[key]["peak_kib"] / 1024 for r in size["rounds"] if key in r and "peak_kib" in r[key]]
    return max(values) if values else None


def shown(measure: str, *sizes: dict | None) -> bool:
    """Whether a table of `sizes` has a row for `measure`."""
    return measure not in WHERE_RECORDED or any(size is not None and samples(size, measure) for size in sizes)


def ratio(slow: float | None, fast: float | None) -> str:
    if slow is None or fast is None or fast == 0:
        return "—"
    return f"{slow / fast:.1f}×"


def traffic(size: dict, key: str, stat: str, count: str) -> float | None:
    """A traffic count of dockhand's run `key` over the rounds: the largest
    per-host maximum (stat "max") or the mean of the per-host means."""
    values = [
        r[key]["traffic"][stat][count]
        for r in size["rounds"]
        if key in r and count in r[key].get("traffic", {}).get(stat, {})
    ]
    if not values:
        return None
    return max(values) if stat == "max" else statistics.mean(values)


def count_text(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def traffic_lines(size: dict) -> list[str]:
    """Per-host traffic of dockhand's runs: the most any host needed, and
    the mean over hosts; nothing when no run recorded any."""
    rows = []
    for key, title in TRAFFIC_MEASURES:
        if traffic(size, key, "max", "round_trips") is None and not any(
            traffic(size, key, "max", c) is not None for c in TRAFFIC_COUNTS
        ):
            continue
        cells = [f"{count_text(traffic(size, key, 'max', c))} / {count_text(traffic(size, key, 'mean', c))}" for c in TRAFFIC_COUNTS]
        rows.append(f"| dockhand {title} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "Per host, from dockhand's `--format json` (most on one host / mean over hosts); round trips are the waits on a host after connecting, probes (verification's TLS connections) are counted apart:",
        "",
        "| run | round trips | commands | channels | logins | probes |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]


def verdict(met: bool | None) -> str:
    return "—" if met is None else ("PASS" if met else "MISS")


def lan_of(results: dict, hosts: int) -> dict | None:
    return results["sizes"].get(str(hosts))


def latency_entries(results: dict) -> list[tuple[str, dict]]:
    """The runs across the relay, by hosts then delay."""
    entries = results.get("latency", {})
    return sorted(entries.items(), key=lambda item: (int(item[1]["hosts"]), float(item[1]["latency_ms"])))


def at_most(name: str, slow: float | None, fast: float | None, limit: float) -> tuple[str, str, bool | None]:
    """A target that one median be at most `limit` times another."""
    if slow is None or fast is None or fast == 0:
        return (name, "—", None)
    return (name, f"{slow / fast:.2f}", slow / fast <= limit)


def issue21_targets(results: dict, hosts: int) -> list[tuple[str, str, bool | None]]:
    """The targets of issue 21 for one fleet size: against the floors and
    in round trips on the LAN (or, without LAN runs, across the link), and
    across each delayed link measured at that size."""
    rows: list[tuple[str, str, bool | None]] = []
    lan = lan_of(results, hosts)
    linked = [(key, entry) for key, entry in latency_entries(results) if int(entry["hosts"]) == hosts]

    def trips(name: str, size: dict, key: str, limit: int) -> None:
        most = traffic(size, key, "max", "round_trips")
        if most is None:
            rows.append((name, "— (not recorded)", None))
            return
        mean = traffic(size, key, "mean", "round_trips")
        probes = traffic(size, key, "max", "probes")
        figure = f"{count_text(most)} at most, {count_text(mean)} on average; probes apart: {count_text(probes)}"
        rows.append((name, figure, most <= limit))

    sources = [("", lan)] if lan is not None else [(f" ({key})", entry) for key, entry in linked]
    for where, size in sources:
        m = lambda k: median(size, k)  # noqa: E731
        rows.append(at_most(f"converge ÷ restart floor ≤ 1.3{where}", m("dockhand_converge"), m("floor_restart"), 1.3))
        rows.append(at_most(f"no-op ÷ dockhand ping ≤ 1.5{where}", m("dockhand_noop"), m("dockhand_ping"), 1.5))
        trips(f"round trips per host after connect, converge ≤ 5{where}", size, "dockhand_converge", 5)
        trips(f"round trips per host after connect, no-op ≤ 1{where}", size, "dockhand_noop", 1)
        trips(f"round trips per host after connect, plan (fresh) ≤ 1{where}", size, "dockhand_plan_fresh", 1)
        trips(f"round trips per host after connect, plan (converged) ≤ 1{where}", size, "dockhand_plan_converged", 1)
    for key, entry in linked:
        delay = f"{float(entry['latency_ms']):g} ms"
        linked_converge = median(entry, "dockhand_converge")
        lan_converge = None if lan is None else median(lan, "dockhand_converge")
        if linked_converge is None or lan_converge is None:
            rows.append((f"converge across {delay} − converge on the LAN ≤ 1 s", "— (no LAN run of this size)" if lan is None else "—", None))
        else:
            added = linked_converge - lan_converge
            rows.append((f"converge across {delay} − converge on the LAN ≤ 1 s", f"{added:+.2f} s", added <= 1.0))
        for peer, name, needed in (("pyinfra_noop", "pyinfra", 3), ("ansible_noop", "Ansible", 50)):
            slow, fast = median(entry, peer), median(entry, "dockhand_noop")
            if slow is None or fast is None or fast == 0:
                rows.append((f"{name} no-op ÷ dockhand no-op ≥ {needed}, across {delay}", "—", None))
            else:
                rows.append((f"{name} no-op ÷ dockhand no-op ≥ {needed}, across {delay}", f"{slow / fast:.1f}", slow / fast >= needed))
    return rows


def all_sizes(results: dict) -> list[int]:
    return sorted({int(k) for k in results["sizes"]} | {int(e["hosts"]) for e in results.get("latency", {}).values()})


def targets_text(results: dict) -> list[str]:
    """The targets of issue 21, PASS or MISS, per fleet size: for a
    terminal."""
    lines = ["Targets of issue 21:"]
    for hosts in all_sizes(results):
        lines.append(f"  {hosts} hosts")
        for name, figure, met in issue21_targets(results, hosts):
            lines.append(f"    {verdict(met):4}  {name}: {figure}")
    alone = dockhand_only_entries(results)
    if alone:
        lines.append("Targets for dockhand alone (--dockhand-only):")
    for key, entry in alone:
        lines.append(f"  {key}")
        for name, figure, met in dockhand_only_targets(entry):
            lines.append(f"    {verdict(met):4}  {name}: {figure}")
    return lines


def latency_lines(results: dict, measures: list[tuple[str, str]]) -> list[str]:
    """Each run across the relay beside the LAN run of the same size."""
    lines = []
    for key, entry in latency_entries(results):
        hosts, delay = int(entry["hosts"]), float(entry["latency_ms"])
        lan = lan_of(results, hosts)
        v = entry["versions"]
        lines.append(f"## {hosts} hosts across a {delay:g} ms link ({key}: {len(entry['rounds'])} rounds, {entry['date']})")
        lines.append("")
        lines.append(
            f"`bench/run {hosts} --latency {delay:g}`: every tool reaches the hosts through bench/relay.py, which delays each "
            f"direction by {delay:g} ms (a round trip of {2 * delay:g} ms more than the LAN's) and a new connection's first "
            "bytes by the TCP handshake's round trip; no bandwidth limit, loss or jitter. "
            f"{v['dockhand']}; {v['ansible']}; {v['pyinfra']}."
        )
        if lan is not None and lan["versions"].get("dockhand") != v.get("dockhand"):
            lines.append(f"The LAN figures are from another build ({lan['versions'].get('dockhand')}, {lan['date']}).")
        lines.append("")
        lines.append(f"| run | LAN ({hosts} hosts) | {delay:g} ms each way | added |")
        lines.append("| --- | --- | --- | --- |")
        for measure, title in measures:
            near, far = (None if lan is None else median(lan, measure)), median(entry, measure)
            if near is None and far is None:
                continue
            added = "—" if near is None or far is None else f"{far - near:+.2f} s"
            lines.append(f"| {title} | {'—' if lan is None else spread(lan, measure)} | {spread(entry, measure)} | {added} |")
        lines.append("")
        m = lambda k: median(entry, k)  # noqa: E731
        lines.append(f"| ratio, across {delay:g} ms | value |")
        lines.append("| --- | --- |")
        lines.append(f"| pyinfra no-op / dockhand no-op | {ratio(m('pyinfra_noop'), m('dockhand_noop'))} |")
        lines.append(f"| Ansible no-op / dockhand no-op | {ratio(m('ansible_noop'), m('dockhand_noop'))} |")
        lines.append(f"| pyinfra converge / dockhand converge | {ratio(m('pyinfra_converge'), m('dockhand_converge'))} |")
        lines.append(f"| Ansible converge / dockhand converge | {ratio(m('ansible_converge'), m('dockhand_converge'))} |")
        lines.append(f"| dockhand converge / restart floor | {ratio(m('dockhand_converge'), m('floor_restart'))} |")
        if shown("floor_job", entry):
            lines.append(f"| dockhand converge / same-job floor | {ratio(m('dockhand_converge'), m('floor_job'))} |")
        lines.append(f"| dockhand no-op / dockhand ping | {ratio(m('dockhand_noop'), m('dockhand_ping'))} |")
        lines.append(f"| dockhand no-op / OpenSSH floor | {ratio(m('dockhand_noop'), m('floor_exec'))} |")
        lines.append("")
        lines.extend(traffic_lines(entry))
    return lines


def dockhand_only_entries(results: dict) -> list[tuple[str, dict]]:
    """The `--dockhand-only` rounds, by hosts, the LAN before any delay."""
    entries = results.get("dockhand_only", {})

    def order(item: tuple[str, dict]) -> tuple[int, float]:
        delay = item[1].get("latency_ms")
        return int(item[1]["hosts"]), -1.0 if delay is None else float(delay)

    return sorted(entries.items(), key=order)


def dockhand_only_targets(entry: dict) -> list[tuple[str, str, bool | None]]:
    """The targets of issue 21 that concern dockhand alone: its converge
    against the restart floor, its no-op against its ping."""
    m = lambda k: median(entry, k)  # noqa: E731
    return [
        at_most("converge ÷ restart floor ≤ 1.3", m("dockhand_converge"), m("floor_restart"), 1.3),
        at_most("no-op ÷ dockhand ping ≤ 1.5", m("dockhand_noop"), m("dockhand_ping"), 1.5),
    ]


def ratio_rows(entry: dict, rows: list[tuple[str, str, str]]) -> list[str]:
    """Rows of the ratio table: the ratio of the medians of `slower` and
    `faster` for each `(label, slower, faster)`."""
    return [f"| {label} | {ratio(median(entry, slow), median(entry, fast))} |" for label, slow, fast in rows]


def time_table(entry: dict, measures, keep) -> list[str]:
    """The table of wall times (median, with the fastest and slowest) and
    dockhand's peak memory, for the measures `keep` accepts; then the head
    of the table of ratios that always follows it."""
    lines = ["| run | wall time | dockhand peak memory |", "| --- | --- | --- |"]
    for measure, title in measures:
        if not keep(measure):
            continue
        mem = peak_mib(entry, measure) if measure.startswith("dockhand") else None
        lines.append(f"| {title} | {spread(entry, measure)} | {'' if mem is None else f'{mem:.1f} MiB'} |")
    return lines + ["", "| ratio | value |", "| --- | --- |"]


def dockhand_only_lines(results: dict, measures: list[tuple[str, str]]) -> list[str]:
    """The `--dockhand-only` rounds, each in a short section of its own:
    never set beside or merged with the side-by-side rounds."""
    lines = []
    for key, entry in dockhand_only_entries(results):
        hosts, delay = int(entry["hosts"]), entry.get("latency_ms")
        v = entry["versions"]
        link = "" if delay is None else f" across a {float(delay):g} ms link"
        flag = "" if delay is None else f" --latency {float(delay):g}"
        lines.append(f"## dockhand alone: {hosts} hosts{link} ({key}: {len(entry['rounds'])} rounds, {entry['date']})")
        lines.append("")
        lines.append(
            f"`bench/run {hosts} --dockhand-only{flag}`: dockhand and the floors only, no Ansible or pyinfra. "
            f"{v['dockhand']}; {v['openssh']}; {v['cpus']} CPUs for the hosts and the tools."
        )
        lines.append("")
        lines += time_table(entry, measures, lambda measure: samples(entry, measure))
        lines += ratio_rows(
            entry,
            [
                ("dockhand converge / restart floor", "dockhand_converge", "floor_restart"),
                ("dockhand converge / same-job floor", "dockhand_converge", "floor_job"),
                ("same-job floor / restart floor", "floor_job", "floor_restart"),
                ("dockhand no-op / dockhand ping", "dockhand_noop", "dockhand_ping"),
                ("dockhand no-op / OpenSSH floor", "dockhand_noop", "floor_exec"),
            ],
        )
        lines.append("")
        lines.append("| target (issue 21, dockhand alone) | measured | |")
        lines.append("| --- | --- | --- |")
        for name, figure, met in dockhand_only_targets(entry):
            lines.append(f"| {name} | {figure} | {verdict(met)} |")
        lines.append("")
        lines.extend(traffic_lines(entry))
    return lines


def targets(size: dict) -> list[tuple[str, str, bool | None]]:
    """The targets of issue 11, each with the figure and whether it is met."""
    m = lambda key: median(size, key)  # noqa: E731
    rows = []

    def row(name: str, slow_key: str, fast_key: str, needed: float) -> None:
        slow, fast = m(slow_key), m(fast_key)
        met = None if slow is None or fast is None else slow / fast >= needed
        if slow is None or fast is None or slow == 0 or fast == 0:
            figure = "—"
        elif slow >= fast:
            figure = f"dockhand {slow / fast:.1f}× faster"
        else:
            figure = f"dockhand {fast / slow:.1f}× slower"
        rows.append((name, figure, met))

    row("no-op ≥ 1.5× faster than pyinfra's", "pyinfra_noop", "dockhand_noop", 1.5)
    row("no-op ≥ 30× faster than Ansible's", "ansible_noop", "dockhand_noop", 30)
    row("plan (fresh) no slower than the OpenSSH floor", "floor_exec", "dockhand_plan_fresh", 1.0)
    row("plan (converged) no slower than the OpenSSH floor", "floor_exec", "dockhand_plan_converged", 1.0)
    row("converge faster than pyinfra's", "pyinfra_converge", "dockhand_converge", 1.0)
    memory = max(filter(None, (peak_mib(size, k) for k in ("dockhand_converge", "dockhand_noop", "dockhand_plan_fresh"))), default=None)
    rows.append(("dockhand peak memory ≤ 32 MB", "—" if memory is None else f"{memory:.1f} MiB", None if memory is None else memory * 1.048576 <= 32))
    return rows


def write_report(results: dict, out: Path, measures: list[tuple[str, str]], with_plot: bool = True) -> None:
    sizes = sorted(results["sizes"], key=int)
    lines = ["# dockhand, Ansible and pyinfra: the same job on the same lab hosts", ""]
    lines.append("Written by `bench/run` (see bench/compare.py for what each run does). Wall time from start to exit: median over the rounds, with the fastest and slowest in brackets.")
    lines.append("")
    for key in sizes:
        size = results["sizes"][key]
        v = size["versions"]
        lines.append(f"## {key} hosts ({len(size['rounds'])} rounds, {size['date']})")
        lines.append("")
        lines.append(f"{v['dockhand']}; {v['ansible']}; {v['pyinfra']}; {v['openssh']}; {v['cpus']} CPUs for the hosts and the tools.")
        lines.append("")
        lines += time_table(size, measures, lambda measure: shown(measure, size))
        m = lambda k: median(size, k)  # noqa: E731
        lines.append(f"| pyinfra no-op / dockhand no-op | {ratio(m('pyinfra_noop'), m('dockhand_noop'))} |")
        lines.append(f"| Ansible no-op / dockhand no-op | {ratio(m('ansible_noop'), m('dockhand_noop'))} |")
        lines.append(f"| pyinfra converge / dockhand converge | {ratio(m('pyinfra_converge'), m('dockhand_converge'))} |")
        lines.append(f"| Ansible converge / dockhand converge | {ratio(m('ansible_converge'), m('dockhand_converge'))} |")
        lines.append(f"| Ansible --check --diff / dockhand plan (fresh) | {ratio(m('ansible_check'), m('dockhand_plan_fresh'))} |")
        lines.append(f"| dockhand plan (fresh) / OpenSSH floor | {ratio(m('dockhand_plan_fresh'), m('floor_exec'))} |")
        lines.append(f"| dockhand no-op / OpenSSH floor | {ratio(m('dockhand_noop'), m('floor_exec'))} |")
        lines.append(f"| dockhand converge / restart floor | {ratio(m('dockhand_converge'), m('floor_restart'))} |")
        if shown("floor_job", size):
            lines.append(f"| dockhand converge / same-job floor | {ratio(m('dockhand_converge'), m('floor_job'))} |")
        lines.append(f"| dockhand no-op / dockhand ping | {ratio(m('dockhand_noop'), m('dockhand_ping'))} |")
        lines.append("")
        lines.extend(traffic_lines(size))
        lines.append("| target (issue 11) | measured | met |")
        lines.append("| --- | --- | --- |")
        for name, figure, met in targets(size):
            lines.append(f"| {name} | {figure} | {'—' if met is None else ('yes' if met else 'no')} |")
        lines.append("")
    if len(sizes) > 1:
        lines.append("## Time per extra host")
        lines.append("")
        lines.append("| run | " + " | ".join(f"{a}→{b} hosts" for a, b in zip(sizes, sizes[1:])) + " |")
        lines.append("| --- |" + " --- |" * (len(sizes) - 1))
        for measure, title in measures:
            if not shown(measure, *(results["sizes"][s] for s in sizes)):
                continue
            cells = []
            for a, b in zip(sizes, sizes[1:]):
                ta, tb = median(results["sizes"][a], measure), median(results["sizes"][b], measure)
                cells.append("—" if ta is None or tb is None else f"{(tb - ta) / (int(b) - int(a)) * 1000:.0f} ms")
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.extend(latency_lines(results, measures))
    lines.extend(dockhand_only_lines(results, measures))
    if all_sizes(results):
        lines.append("## Targets of issue 21")
        lines.append("")
        lines.append(
            "Wall-time ratios are of medians; round trips are per host after connecting, the most any host needed "
            "(verification's TLS probes apart). Across a link: what the delay adds to the converge over the LAN run "
            "of the same size, and the peers' no-ops against dockhand's there."
        )
        lines.append("")
        for hosts in all_sizes(results):
            lines.append(f"| {hosts} hosts: target | measured | |")
            lines.append("| --- | --- | --- |")
            for name, figure, met in issue21_targets(results, hosts):
                lines.append(f"| {name} | {figure} | {verdict(met)} |")
            lines.append("")
    if "scaling" in results:
        lines.extend(scaling_lines(results["scaling"]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(lines))
    if with_plot:
        plot(results, out / "wall-time.png")


def scaling_lines(scaling: dict) -> list[str]:
    """dockhand's time per extra host on one lab whose size stays put: the
    machine's load is the same at every subset size."""
    count = scaling["hosts"]
    v = scaling["versions"]
    lines = [f"## Time per extra host on one lab of {count} hosts ({scaling['date']})", ""]
    lines.append(
        f"`bench/run --scaling {count}`: all {count} hosts stay up; dockhand works on subsets of them (`--limit`). "
        "Converges are on fresh, disjoint subsets; no-ops on the first hosts, median over "
        f"{len(scaling['noop'])} rounds. CPU time is dockhand's own (user + system) and the whole machine's "
        f"(hosts included). {v['dockhand']}; {v['cpus']} CPUs."
    )
    lines.append("")
    lines.append("| run | hosts | wall time | time per extra host | dockhand CPU per host | machine CPU per host |")
    lines.append("| --- | --- | --- | --- | --- | --- |")

    def rows(title: str, samples: list[dict]) -> None:
        previous = None
        for sample in samples:
            n = sample["hosts"]
            extra = "—" if previous is None else f"{(sample['seconds'] - previous['seconds']) / (n - previous['hosts']) * 1000:.0f} ms"
            own = f"{sample['cpu_seconds'] / n * 1000:.1f} ms" if "cpu_seconds" in sample else "—"
            lines.append(
                f"| {title} | {n} | {sample['seconds']:.2f} s | {extra} | "
                f"{own} | {sample['machine_cpu_seconds'] / n * 1000:.0f} ms |"
            )
            previous = sample

    rows("dockhand apply, converge (verification included)", scaling["converge"])
    noops = []
    for index in range(len(scaling["noop"][0])):
        column = [run[index] for run in scaling["noop"]]
        middle = sorted(column, key=lambda s: s["seconds"])[len(column) // 2]
        noops.append(middle)
    rows("dockhand apply, no-op (verification included)", noops)
    if "restart" in scaling:
        rows("floor: `systemctl restart docker` on every host at once", scaling["restart"])
    lines.append("")
    return lines


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results["sizes"], key=int)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    series = {
        "converge": [("dockhand", "dockhand_converge"), ("pyinfra", "pyinfra_converge"), ("Ansible", "ansible_converge"), ("floor: parallel docker restart", "floor_restart"), ("floor: same job, OpenSSH alone on fresh hosts", "floor_job")],
        "no-op re-run": [("dockhand", "dockhand_noop"), ("pyinfra", "pyinfra_noop"), ("Ansible", "ansible_noop"), ("floor: one OpenSSH exec per host", "floor_exec")],
    }
    for axis, (title, lines) in zip(axes, series.items()):
        for label, key in lines:
            xs = [int(s) for s in sizes if median(results["sizes"][s], key) is not None]
            ys = [median(results["sizes"][str(x)], key) for x in xs]
            if xs:
                axis.plot(xs, ys, marker="o", linestyle="--" if label.startswith("floor") else "-", label=label)
        axis.set_title(title)
        axis.set_xlabel("hosts")
        axis.set_ylabel("wall time (s)")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("Same job, same lab hosts, one 2-core machine (median of the rounds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=here / "results/results.json", help="default: bench/results/results.json")
    parser.add_argument("--out", type=Path, default=here / "results", help="where summary.md and wall-time.png go (default: bench/results)")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    results.setdefault("sizes", {})
    try:
        import matplotlib  # noqa: F401

        with_plot = True
    except ImportError:
        with_plot = False
        print("report: no matplotlib here, so no plot (bench/run --report makes it)", file=sys.stderr)
    write_report(results, args.out, MEASURES, with_plot=with_plot)
    print(f"wrote {args.out / 'summary.md'}" + (f" and {args.out / 'wall-time.png'}" if with_plot else ""))
    print("\n".join(targets_text(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
