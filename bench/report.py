"""Turns bench/results/results.json into summary.md (medians with their
spread, ratios to the floor and to each peer, the targets of issue 11) and
wall-time.png (wall time against hosts for the three tools)."""

from __future__ import annotations

import statistics
from pathlib import Path


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


def ratio(slow: float | None, fast: float | None) -> str:
    if slow is None or fast is None or fast == 0:
        return "—"
    return f"{slow / fast:.1f}×"


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


def write_report(results: dict, out: Path, measures: list[tuple[str, str]]) -> None:
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
        lines.append("| run | wall time | dockhand peak memory |")
        lines.append("| --- | --- | --- |")
        for measure, title in measures:
            mem = peak_mib(size, measure) if measure.startswith("dockhand") else None
            lines.append(f"| {title} | {spread(size, measure)} | {'' if mem is None else f'{mem:.1f} MiB'} |")
        lines.append("")
        m = lambda k: median(size, k)  # noqa: E731
        lines.append("| ratio | value |")
        lines.append("| --- | --- |")
        lines.append(f"| pyinfra no-op / dockhand no-op | {ratio(m('pyinfra_noop'), m('dockhand_noop'))} |")
        lines.append(f"| Ansible no-op / dockhand no-op | {ratio(m('ansible_noop'), m('dockhand_noop'))} |")
        lines.append(f"| pyinfra converge / dockhand converge | {ratio(m('pyinfra_converge'), m('dockhand_converge'))} |")
        lines.append(f"| Ansible converge / dockhand converge | {ratio(m('ansible_converge'), m('dockhand_converge'))} |")
        lines.append(f"| Ansible --check --diff / dockhand plan (fresh) | {ratio(m('ansible_check'), m('dockhand_plan_fresh'))} |")
        lines.append(f"| dockhand plan (fresh) / OpenSSH floor | {ratio(m('dockhand_plan_fresh'), m('floor_exec'))} |")
        lines.append(f"| dockhand no-op / OpenSSH floor | {ratio(m('dockhand_noop'), m('floor_exec'))} |")
        lines.append(f"| dockhand converge / restart floor | {ratio(m('dockhand_converge'), m('floor_restart'))} |")
        lines.append("")
        lines.append("| target | measured | met |")
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
            cells = []
            for a, b in zip(sizes, sizes[1:]):
                ta, tb = median(results["sizes"][a], measure), median(results["sizes"][b], measure)
                cells.append("—" if ta is None or tb is None else f"{(tb - ta) / (int(b) - int(a)) * 1000:.0f} ms")
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        lines.append("")
    if "scaling" in results:
        lines.extend(scaling_lines(results["scaling"]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(lines))
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
        "converge": [("dockhand", "dockhand_converge"), ("pyinfra", "pyinfra_converge"), ("Ansible", "ansible_converge"), ("floor: parallel docker restart", "floor_restart")],
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
