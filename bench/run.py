"""``rnnspec bench``: one worker process per backend, then the table, the targets and the JSON."""

import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rnnspec import backends
from rnnspec.bench.frameworks import PEAK_SIZE, REFERENCE, load_average, usable_cores
from rnnspec.bench.worker import MEASUREMENT_OPTIONS, summary
from rnnspec.bench.workloads import (
    MEMORY_WORKLOAD,
    QUICK,
    TARGETS,
    WORKLOADS,
    Target,
    targets_for,
)

console = Console()
#: glibc: allocations from 64 KiB up are mmap'ed and unmapped when freed, so the resident-set
#: high-water mark of the memory worker follows the live arrays (fixing it also stops glibc raising
#: it dynamically); TensorFlow keeps allocation statistics only with its BFC allocator
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "TF_CPU_ALLOCATOR_USE_BFC": "true"}


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:  # Linux names the model; platform.processor() often gives only the architecture
        with open("/proc/cpuinfo") as info:
            cpu = next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "load_average_before": load_average(),
    }


def worker_args(measurement: dict[str, Any]) -> list[str]:
    """The shared options' values as the worker's command-line options."""
    args = []
    for option in MEASUREMENT_OPTIONS:
        value = measurement[option.name]
        for one in value if option.multiple else [value]:
            if one is not None:  # an option left unset (--device) is left to the worker's default
                args += [option.opts[0], str(one)]
    return args


def run_worker(name: str, args: list[str], env: dict[str, str]) -> dict:
    """One worker process's results (its JSON goes through a file: backends may print)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "worker.json"
        done = subprocess.run(
            [sys.executable, "-m", "rnnspec.bench.worker", name, *args, "--json", str(path)],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        )
        report = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}
    if done.returncode == 0 and report:
        return report
    if "error" in report:  # the worker's own one-line reason: a backend it could not load
        error(report["error"])
        return report
    console.print(f"[bold red]{escape(name)} worker failed[/]")
    console.print(escape(done.stderr[-3000:]), highlight=False)
    return {"backend": name, "error": done.stderr[-3000:], "results": []}


def error(message: str) -> None:
    """One line, never wrapped, the message escaped: rich would take an extra's [bench] for markup."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


def load_problem(name: str) -> str | None:
    """Why backend ``name`` cannot be loaded, where that is known without importing a framework:
    a built-in whose framework is not installed, an unknown name, a module:factory whose module is
    not there. None otherwise (the worker loads it, and reports a failure as one line)."""
    if name in backends.available():
        return None
    if ":" in name and name not in backends.BUILTIN:
        try:
            if importlib.util.find_spec(name.partition(":")[0]) is not None:
                return None  # the factory may still be missing: the worker will say
        except (ImportError, ValueError):
            pass
    try:  # fails before importing any framework in each case left
        backends.load(name)
    except backends.BackendError as problem:
        return str(problem)
    return None


# --- derived numbers ------------------------------------------------------------------------------


def is_closed_form(row: dict) -> bool:
    return row["impl"].endswith("closed form")


def derive(data: dict) -> list[dict]:
    """Join timing and memory rows; add ratios and fractions of the framework's matmul peak.

    With --rounds > 1 each row's calls are pooled over the rounds' processes. A ratio between two
    implementations of one backend is taken within each process, then the median over rounds:
    the two were timed round-robin, so machine load that differs between processes cancels.
    """
    rows: dict[tuple, dict] = {}
    peaks: dict[tuple, list[float]] = defaultdict(list)
    for worker in data["workers"]:
        for dtype, peak in worker.get("peak", {}).items():
            peaks[(worker["backend"], dtype)].append(peak["gflops"])
        for row in worker["results"]:
            key = (row["workload"], row["dtype"], row["impl"])
            merged = rows.setdefault(key, {"backend": worker["backend"]})
            if "times_ms" in row:
                row = {
                    **row,
                    "times_ms": merged.get("times_ms", []) + row["times_ms"],
                    "round_medians_ms": [*merged.get("round_medians_ms", []), row["median_ms"]],
                    "first_call_s": max(merged.get("first_call_s", 0.0), row["first_call_s"]),
                    "error_ratio": max(merged.get("error_ratio", 0.0), row["error_ratio"]),
                }
            merged.update(row)
    for row in rows.values():
        if "times_ms" in row:
            row.update(summary(row["times_ms"]))
            if not row.get("flow"):  # flops() counts the full gradient's products
                row["gflops"] = WORKLOADS[row["workload"]].flops() / row["median_ms"] / 1e6
        peak = statistics.median(peaks[(row["backend"], row["dtype"])] or [0.0])
        if "gflops" in row and peak:
            row["peak_gflops"] = peak
            row["fraction_of_peak"] = row["gflops"] / peak
        if row.get("memory_growth_T_over_half_T", 0) > 0:  # 1 if linear in T, 2 if quadratic
            row["memory_exponent"] = math.log2(row["memory_growth_T_over_half_T"])
    for row in rows.values():
        if is_closed_form(row) and "median_ms" in row:
            _compare(row, rows.values())
        if row.get("flow") and "median_ms" in row:  # SPEC.md §10's cost against the full gradient
            closed = rows.get((row["workload"], row["dtype"], f"{row['backend']} closed form"))
            if closed and "median_ms" in closed:
                row["vs_closed_form"] = _ratio(row, closed)
    return list(rows.values())


def _compare(closed: dict, rows: Iterable[dict]) -> None:
    """Add closed's ratios to the fastest autodiff and to torch.nn.RNN on its workload and dtype:
    to its own backend's autodiffs where it has any, else to every other backend's."""
    key = (closed["workload"], closed["dtype"])
    others = [
        r
        for r in rows
        if (r["workload"], r["dtype"]) == key and not is_closed_form(r) and not r.get("flow")
    ]
    own = [r for r in others if r["backend"] == closed["backend"]]
    autodiffs = [r for r in own or others if "median_ms" in r]
    if autodiffs:
        fastest = min(autodiffs, key=lambda r: r["median_ms"])
        closed["vs_autodiff"] = _ratio(closed, fastest)
        closed["fastest_autodiff"] = fastest["impl"]
    for r in others:
        if r["impl"] == REFERENCE and "median_ms" in r:
            closed["vs_nn_rnn"] = _ratio(closed, r)
    unmasked = WORKLOADS[closed["workload"]].masked_of
    for r in rows:
        if (r["workload"], r["dtype"], r["impl"]) == (unmasked, closed["dtype"], closed["impl"]):
            if "median_ms" in r:
                closed["vs_unmasked"] = _ratio(closed, r)


def _ratio(row: dict, other: dict) -> float:
    """row's time over other's: per round within one process where they share one, else pooled."""
    mine, theirs = row["round_medians_ms"], other["round_medians_ms"]
    if row["backend"] == other["backend"] and len(mine) == len(theirs):
        return statistics.median(a / b for a, b in zip(mine, theirs))
    return row["median_ms"] / other["median_ms"]


#: how each target quantity reads; {subject} is the implementation, {op} ≤ or ≥
WORDING = {
    "vs_autodiff": "{subject} {op} {limit:g}× {fastest_autodiff}",
    "vs_nn_rnn": "{subject} {op} {limit:g}× " + REFERENCE,
    "fraction_of_peak": "{subject} {op} {limit:.0%} of matmul peak",
    "memory_exponent": "{subject} memory O(T): log2(peak(T) / peak(T/2)) {op} {limit:g}",
    "vs_unmasked": "{subject} {op} {limit:g}× itself unmasked",
}


def targets(rows: list[dict], goals: tuple[Target, ...] = TARGETS) -> list[dict]:
    """Each goal (bench/workloads.py) on the float32 rows it binds: what was measured, whether met,
    and the goal itself (its fields, and the implementation it was measured on)."""
    out = []
    for goal in goals:
        bound = [
            r
            for r in rows
            if (r["workload"], r["dtype"]) == (goal.workload, "float32")
            and goal.quantity in r
            and (goal.of == "each implementation" or is_closed_form(r))
            and (not goal.backends or r["backend"] in goal.backends)
        ]
        fastest = goal.of == "the fastest closed form"
        if fastest and bound:
            bound = [min(bound, key=lambda r: r["median_ms"])]
        op = "≥" if goal.at_least else "≤"
        for r in bound:
            measured = r[goal.quantity]
            subject = f"fastest backend ({r['impl']})" if fastest else r["impl"]
            text = WORDING[goal.quantity].format(**r, subject=subject, op=op, limit=goal.limit)
            met = measured >= goal.limit if goal.at_least else measured <= goal.limit
            out.append(
                {
                    **goal._asdict(),
                    "target": text,
                    "impl": r["impl"],
                    "measured": measured,
                    "met": met,
                }
            )
    return out


# --- output ---------------------------------------------------------------------------------------


def _num(x: float, most: int = 4) -> str:
    """Three significant digits (at most ``most`` decimals), no exponent, so that columns stay
    narrow: 0.0512, 2.96, 296, 2960."""
    decimals = min(most, max(0, 2 - math.floor(math.log10(x)))) if x > 0 else min(most, 2)
    return f"{x:.{decimals}f}"


def _new_table(title: str) -> Table:
    """Compact: a rule under the header, no vertical lines, no padding at the edges."""
    return Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)


def _columns(t: Table, *headers: str) -> None:
    """The implementation and target columns wrap where they must; every other one holds a number
    or a short name, never cut: the tables are narrow enough for 80 columns."""
    for header in headers:
        left = header in ("workload", "implementation", "target")
        wraps = header in ("implementation", "target")
        t.add_column(header, justify="left" if left else "right", no_wrap=not wraps)


def _by_workload(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """("small f32", its rows fastest first), in WORKLOADS' order, then dtype."""
    order = {name: i for i, name in enumerate(WORKLOADS)}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(order[r["workload"]], r["dtype"], r["workload"])].append(r)
    return [
        (f"{name} {dtype.replace('float', 'f')}", sorted(g, key=lambda r: r.get("median_ms", 1e9)))
        for (_, dtype, name), g in sorted(groups.items())
    ]


#: under the tables: what the columns and the ratios mean
TIMING_LEGEND = (
    "ms/call: median (inter-quartile range). ÷: a closed form's median over the fastest "
    "autodiff's (its framework's, else any) or nn.RNN's, same process where they share one; "
    "< 1 is faster."
)
EFFICIENCY_LEGEND = (
    f"% of peak: of the framework's {PEAK_SIZE}² matmul, same dtype. first call: compilation "
    "included. error/bound: worst tensor's ‖g − r‖/‖r‖ over the tolerance bound, above 1 not "
    "timed."
)
MEMORY_LEGEND = f" peak MiB: one call's, above what was live, on {MEMORY_WORKLOAD} at T and T/2."


def _has_memory(rows: list[dict]) -> bool:
    return any("memory_bytes" in r for r in rows)


def timing_table(rows: list[dict]) -> Table:
    t = _new_table("loss + all gradients: ms per call, one process per backend")
    _columns(t, "workload", "implementation", "ms/call (IQR)", "÷ fastest\nautodiff", "÷ nn.RNN")
    for i, (label, group) in enumerate(_by_workload(rows)):
        if i:
            t.add_section()
        for r in group:
            ms = "[red]not timed[/]"
            if "median_ms" in r:
                ms = f"{_num(r['median_ms'])} ({_num(r['q1_ms'])}–{_num(r['q3_ms'])})"
            impl = escape(r["impl"])
            if "vs_closed_form" in r:  # a gradient-flow call: its cost in full gradients
                impl += f" = {r['vs_closed_form']:.2f}× closed form"
            t.add_row(
                label,
                impl,
                ms,
                f"{r['vs_autodiff']:.2f}" if "vs_autodiff" in r else "",
                f"{r['vs_nn_rnn']:.2f}" if "vs_nn_rnn" in r else "",
            )
    return t


def efficiency_table(rows: list[dict]) -> Table:
    """GFLOP/s, first call and accuracy; peak memory where it was measured."""
    memory = _has_memory(rows)
    t = _new_table("GFLOP/s, first call, accuracy" + ", memory" * memory)
    headers = ["workload", "implementation", "GFLOP/s", "% of\npeak", "first\ncall s"]
    _columns(t, *headers, "error/\nbound", *["peak MiB\nT | T/2"] * memory)
    for i, (label, group) in enumerate(_by_workload(rows)):
        if i:
            t.add_section()
        for r in group:
            error = f"{r['error_ratio']:.2g}" if "error_ratio" in r else ""  # none: memory only
            if r.get("error_ratio", 0) > r.get("check_limit", 1):
                error = f"[bold red]{error}[/]"
            cells = [
                label,
                escape(r["impl"]),
                _num(r["gflops"]) if "gflops" in r else "",
                f"{r['fraction_of_peak']:.0%}" if "fraction_of_peak" in r else "",
                _num(r["first_call_s"]) if "first_call_s" in r else "",
                error,
            ]
            if memory:
                at = [r.get(k) for k in ("memory_bytes", "memory_half_T_bytes")]
                mib = " | ".join("" if b is None else _num(b / 2**20, 1) for b in at)
                cells.append(mib if "memory_bytes" in r else "")
            t.add_row(*cells)
    return t


def table(rows: list[dict]) -> Group:
    """The timing table and the efficiency table, each with its legend: 80 columns suffice."""
    memory = _has_memory(rows)
    return Group(
        timing_table(rows),
        Text(TIMING_LEGEND, style="dim"),
        Text(),
        efficiency_table(rows),
        Text(EFFICIENCY_LEGEND + MEMORY_LEGEND * memory, style="dim"),
    )


def target_table(checks: list[dict]) -> Table:
    t = _new_table("targets (float32)")
    _columns(t, "workload", "target", "measured", "met")
    for c in checks:
        met = "[green]yes[/]" if c["met"] else "[bold red]no[/]"
        t.add_row(c["workload"], escape(c["target"]), f"{c['measured']:.2f}", met)
    return t


def print_setup(data: dict) -> None:
    m = data["machine"]
    console.print(f"{m['cpu']}, {m['usable_cores']} usable cores, Python {m['python']}")
    console.print(
        f"load average before {m['load_average_before']}, after {m.get('load_average_after')}"
    )
    peaks = {
        (r["backend"], r["dtype"]): r["peak_gflops"] for r in data["rows"] if "peak_gflops" in r
    }
    shown = set()
    for worker in data["workers"]:
        if "error" in worker or worker["backend"] in shown:
            continue
        shown.add(worker["backend"])
        peak = ", ".join(f"{d} {g:.0f}" for (b, d), g in peaks.items() if b == worker["backend"])
        console.print(
            f"{worker['backend']}: {worker['version']} on {worker['device']}, timed as "
            f"{worker['framework']}: threads {worker['threads']}; "
            f"{PEAK_SIZE}² matmul GFLOP/s (median): {peak}"
        )


@click.command(name="bench", params=list(MEASUREMENT_OPTIONS))
@click.option(
    "--backend",
    "names",
    multiple=True,
    help="Backend to time (repeatable): built-in, entry-point or module:factory name. "
    "Default: every installed backend.",
)
@click.option("--quick", is_flag=True, help=f"Only {' and '.join(QUICK)} (unless --workload).")
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    help="Run every backend's worker this many times, alternating, and pool their calls.",
)
@click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Environment for the workers (repeatable), e.g. OMP_NUM_THREADS=1.",
)
@click.option(
    "--memory/--no-memory",
    default=True,
    show_default=True,
    help=f"Peak memory on {MEMORY_WORKLOAD}, when it is timed.",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write every number here."
)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write the plot (PNG).")
def bench(names, quick, rounds, env_pairs, memory, json_path, plot_path, **measurement):
    """Time loss + all gradients: each backend's closed form, its framework's autodiff, and
    torch.nn.RNN + autograd; every result checked against spec.reference first."""
    started = time.monotonic()
    if plot_path and importlib.util.find_spec("matplotlib") is None:
        error(f"--plot needs matplotlib: {backends.install_hint('bench')}")
        sys.exit(1)
    names = list(names) or backends.available()
    problems = [problem for name in names if (problem := load_problem(name))]
    for problem in problems:
        error(problem)
    if problems:
        sys.exit(1)
    workloads = list(measurement["workloads"]) or list(QUICK if quick else WORKLOADS)
    args = worker_args({**measurement, "workloads": workloads})
    data: dict[str, Any] = {
        "options": click.get_current_context().params,
        "machine": machine(),
        "workloads": {name: WORKLOADS[name]._asdict() for name in workloads},
        "workers": [],
    }
    env = dict(pair.split("=", 1) for pair in env_pairs)
    for round_ in range(1, rounds + 1):
        for name in names:
            with console.status(f"round {round_}/{rounds}: timing {name} ..."):
                data["workers"].append(run_worker(name, args, env))
    if memory and MEMORY_WORKLOAD in workloads:
        for name in names:
            with console.status(f"measuring {name}'s memory ..."):
                worker = run_worker(name, [*args, "--measure", "memory"], {**env, **MEMORY_ENV})
                data["workers"].append(worker)
    data["machine"]["load_average_after"] = load_average()
    data["seconds"] = time.monotonic() - started
    data["rows"] = derive(data)
    data["targets"] = targets(data["rows"], targets_for(data["options"]["device"]))
    print_setup(data)
    if data["rows"]:
        console.print(table(data["rows"]))
    if data["targets"]:
        console.print(target_table(data["targets"]))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(data, indent=1, default=str))
        console.print(f"wrote {json_path}")
    if plot_path:
        from rnnspec.bench.plot import plot

        Path(plot_path).parent.mkdir(parents=True, exist_ok=True)
        plot(data, plot_path)
        console.print(f"wrote {plot_path}")
    failed = [w["backend"] for w in data["workers"] if "error" in w]
    inaccurate = [
        r["impl"] for r in data["rows"] if r.get("error_ratio", 0) > r.get("check_limit", 1)
    ]
    if failed or inaccurate:
        console.print(f"[bold red]failed: {failed}; inaccurate, not timed: {inaccurate}")
        sys.exit(1)


if __name__ == "__main__":
    bench()
