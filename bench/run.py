"""``rnnspec bench``: one worker process per framework, then the table, the targets and the JSON."""

import json
import math
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from rnnspec import backends
from rnnspec.bench.worker import summary
from rnnspec.bench.workloads import MEMORY_WORKLOAD, QUICK, WORKLOADS

console = Console()
if not console.is_terminal:  # a log file or a pipe: no wrapping of the wide table
    console.width = 180
FRAMEWORKS = tuple(backends.BUILTIN)
REFERENCE = "torch.nn.RNN autograd"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnnspec-bench"
#: glibc: allocations from 64 KiB up are mmap'ed and unmapped when freed, so the resident-set
#: high-water mark of the memory worker follows the live arrays (fixing it also stops glibc raising
#: it dynamically)
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "TF_CPU_ALLOCATOR_USE_BFC": "true"}


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "load_average_before": os.getloadavg(),
    }


def run_worker(framework: str, args: list[str], env: dict[str, str] | None = None) -> dict:
    command = [sys.executable, "-m", "rnnspec.bench.worker", framework, *args]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )
    if done.returncode != 0:
        console.print(f"[bold red]{framework} worker failed[/]\n{done.stderr[-3000:]}")
        return {"framework": framework, "error": done.stderr[-3000:], "results": []}
    return json.loads(done.stdout)


# --- derived numbers ------------------------------------------------------------------------------


def derive(data: dict) -> list[dict]:
    """Join timing and memory rows; add ratios and fractions of the framework's matmul peak.

    With --rounds > 1 each row's calls are pooled over the rounds' processes. A ratio between two
    implementations of one framework is taken within each process, then the median over rounds:
    the two were timed round-robin, so machine load that differs between processes cancels.
    """
    rows: dict[tuple, dict] = {}
    peaks: dict[tuple, list[float]] = defaultdict(list)
    for worker in data["workers"]:
        for dtype, peak in worker.get("peak", {}).items():
            peaks[(worker["framework"], dtype)].append(peak["gflops"])
        for row in worker["results"]:
            key = (row["workload"], row["dtype"], row["impl"])
            merged = rows.setdefault(key, {"framework": worker["framework"]})
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
            row["gflops"] = WORKLOADS[row["workload"]].flops() / row["median_ms"] / 1e6
        peak = statistics.median(peaks[(row["framework"], row["dtype"])] or [0.0])
        if "gflops" in row and peak:
            row["peak_gflops"] = peak
            row["fraction_of_peak"] = row["gflops"] / peak
    for row in rows.values():
        if not row["impl"].endswith("closed form") or "median_ms" not in row:
            continue
        autodiffs = [
            other
            for other in rows.values()
            if (other["workload"], other["dtype"]) == (row["workload"], row["dtype"])
            and not other["impl"].endswith("closed form")
            and "median_ms" in other
            # its own framework's autodiff; NumPy has none, so every other framework's
            and (other["framework"] == row["framework"]) != (row["framework"] == "numpy")
        ]
        if autodiffs:
            fastest = min(autodiffs, key=lambda other: other["median_ms"])
            row["vs_autodiff"] = _ratio(row, fastest)
            row["fastest_autodiff"] = fastest["impl"]
        nn = rows.get((row["workload"], row["dtype"], REFERENCE), {})
        if "median_ms" in nn:
            row["vs_nn_rnn"] = _ratio(row, nn)
    return list(rows.values())


def _ratio(row: dict, other: dict) -> float:
    """row's time over other's: per round within one process where they share one, else pooled."""
    mine, theirs = row["round_medians_ms"], other["round_medians_ms"]
    if row["framework"] == other["framework"] and len(mine) == len(theirs):
        return statistics.median(a / b for a, b in zip(mine, theirs))
    return row["median_ms"] / other["median_ms"]


def targets(rows: list[dict]) -> list[dict]:
    """The issue's float32 targets, each with what was measured and whether it is met."""
    out = []
    by = {(r["workload"], r["impl"]): r for r in rows if r["dtype"] == "float32"}
    closed = [r for r in rows if r["dtype"] == "float32" and "vs_autodiff" in r]
    for r in closed:
        limit = 1.0 if r["workload"] == "wide" else 0.8
        out.append(
            {
                "target": f"{r['impl']} ≤ {limit}× {r['fastest_autodiff']}",
                "workload": r["workload"],
                "measured": r["vs_autodiff"],
                "met": r["vs_autodiff"] <= limit,
            }
        )
    for r in closed:
        if r["framework"] in ("numpy", "torch") and "vs_nn_rnn" in r:
            out.append(
                {
                    "target": f"{r['impl']} ≤ 1× {REFERENCE}",
                    "workload": r["workload"],
                    "measured": r["vs_nn_rnn"],
                    "met": r["vs_nn_rnn"] <= 1.0,
                }
            )
    for workload, limit in (("medium", 0.6), ("wide", 0.8)):
        candidates = [r for (w, _), r in by.items() if w == workload and "vs_autodiff" in r]
        if candidates:
            fastest = min(candidates, key=lambda r: r["median_ms"])
            out.append(
                {
                    "target": f"fastest backend ({fastest['impl']}) ≥ {limit:.0%} of matmul peak",
                    "workload": workload,
                    "measured": fastest.get("fraction_of_peak", 0.0),
                    "met": fastest.get("fraction_of_peak", 0.0) >= limit,
                }
            )
    for r in rows:
        if r["dtype"] == "float32" and "memory_growth_T_over_half_T" in r:
            exponent = math.log2(r["memory_growth_T_over_half_T"])  # 1 if linear, 2 if quadratic
            out.append(
                {
                    "target": f"{r['impl']} memory O(T): log2(peak(T) / peak(T/2)) ≤ 1.25",
                    "workload": r["workload"],
                    "measured": exponent,
                    "met": exponent <= 1.25,
                }
            )
    return out


# --- output ---------------------------------------------------------------------------------------


def _mib(n: float | None) -> str:
    return "" if n is None else f"{n / 2**20:.1f}"


def table(rows: list[dict]) -> Table:
    t = Table(title="loss + all gradients: median ms per call (IQR), one process per framework")
    for column in (
        "workload", "dtype", "implementation", "ms/call", "IQR", "÷ fastest\nautodiff",
        "÷ nn.RNN", "GFLOP/s", "% of\npeak", "first\ncall s", "error/\nbound",
        f"peak MiB\n{MEMORY_WORKLOAD}: T | T/2",
    ):  # fmt: skip
        t.add_column(
            column, justify="left" if column in ("workload", "implementation") else "right"
        )
    order = {name: i for i, name in enumerate(WORKLOADS)}
    last = None
    for r in sorted(
        rows, key=lambda r: (order[r["workload"]], r["dtype"], r.get("median_ms", 1e9))
    ):
        if last is not None and (r["workload"], r["dtype"]) != last:
            t.add_section()
        last = (r["workload"], r["dtype"])
        ok = r.get("error_ratio", 0) <= r.get("check_limit", 1)
        memory = ""
        if "memory_bytes" in r:
            memory = f"{_mib(r['memory_bytes'])} | {_mib(r.get('memory_half_T_bytes'))}"
        t.add_row(
            r["workload"],
            r["dtype"],
            r["impl"],
            f"{r['median_ms']:.2f}" if "median_ms" in r else "[red]not timed[/]",
            f"{r['q1_ms']:.2f}–{r['q3_ms']:.2f}" if "q1_ms" in r else "",
            f"{r['vs_autodiff']:.2f}" if "vs_autodiff" in r else "",
            f"{r['vs_nn_rnn']:.2f}" if "vs_nn_rnn" in r else "",
            f"{r['gflops']:.1f}" if "gflops" in r else "",
            f"{r['fraction_of_peak']:.0%}" if "fraction_of_peak" in r else "",
            f"{r['first_call_s']:.3f}" if "first_call_s" in r else "",
            f"{r['error_ratio']:.2g}" if ok else f"[bold red]{r.get('error_ratio')}[/]",
            memory,
        )
    return t


def target_table(checks: list[dict]) -> Table:
    t = Table(title="targets (float32)")
    for column in ("workload", "target", "measured", "met"):
        t.add_column(column)
    for c in checks:
        met = "[green]yes[/]" if c["met"] else "[bold red]no[/]"
        t.add_row(c["workload"], c["target"], f"{c['measured']:.2f}", met)
    return t


def print_setup(data: dict) -> None:
    m = data["machine"]
    console.print(f"{m['cpu']}, {m['usable_cores']} usable cores, Python {m['python']}")
    console.print(
        f"load average before {m['load_average_before']}, after {m.get('load_average_after')}"
    )
    peaks = {
        (r["framework"], r["dtype"]): r["peak_gflops"] for r in data["rows"] if "peak_gflops" in r
    }
    shown = set()
    for worker in data["workers"]:
        if "error" in worker or worker["framework"] in shown:
            continue
        shown.add(worker["framework"])
        peak = ", ".join(f"{d} {g:.0f}" for (f, d), g in peaks.items() if f == worker["framework"])
        console.print(
            f"{worker['version']} on {worker['device']}: threads {worker['threads']}; "
            f"{2048}² matmul GFLOP/s (median): {peak}"
        )


@click.command(name="bench")
@click.option(
    "--backend",
    "frameworks",
    multiple=True,
    type=click.Choice(FRAMEWORKS),
    help="Framework to time (repeatable). Default: every installed one.",
)
@click.option(
    "--dtype",
    "dtypes",
    multiple=True,
    type=click.Choice(["float32", "float64"]),
    help="Default: both.",
)
@click.option(
    "--workload",
    "workloads",
    multiple=True,
    type=click.Choice(list(WORKLOADS)),
    help="Default: all.",
)
@click.option("--quick", is_flag=True, help=f"Only {' and '.join(QUICK)}.")
@click.option("--repeats", default=30, show_default=True, help="Timed calls per implementation.")
@click.option(
    "--max-seconds", default=10.0, show_default=True, help="Stop a workload's rounds after this."
)
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    help="Run every framework's worker this many times, alternating, and pool their calls.",
)
@click.option("--device", default=None, help="Device for every backend, e.g. cuda.")
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
    help=f"Peak memory on {MEMORY_WORKLOAD}.",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write every number here."
)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write the plot (PNG).")
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=CACHE,
    show_default=True,
    help="Where the float64 reference results are kept between runs.",
)
def bench(
    frameworks, dtypes, workloads, quick, repeats, max_seconds, rounds, device, env_pairs, memory,
    json_path, plot_path, cache,
):  # fmt: skip
    """Time loss + all gradients: each backend's closed form, its framework's autodiff, and
    torch.nn.RNN + autograd; every result checked against spec.reference first."""
    frameworks = list(frameworks) or [f for f in backends.available() if f in FRAMEWORKS]
    dtypes = list(dtypes) or ["float32", "float64"]
    workloads = list(workloads) or list(QUICK if quick else WORKLOADS)
    common = ["--dtypes", ",".join(dtypes), "--seed", "0", "--cache", str(cache)]
    if device:
        common += ["--device", device]
    data: dict[str, Any] = {
        "options": click.get_current_context().params,
        "machine": machine(),
        "workloads": {name: WORKLOADS[name]._asdict() for name in workloads},
        "workers": [],
    }
    env = dict(pair.split("=", 1) for pair in env_pairs)
    timing = [*common, "--workloads", ",".join(workloads), "--repeats", str(repeats)]
    for round_ in range(1, rounds + 1):
        for framework in frameworks:
            with console.status(f"round {round_}/{rounds}: timing {framework} ..."):
                worker = run_worker(framework, [*timing, "--max-seconds", str(max_seconds)], env)
                data["workers"].append(worker)
    if memory and MEMORY_WORKLOAD in workloads:
        for framework in frameworks:
            with console.status(f"measuring {framework}'s memory ..."):
                worker = run_worker(framework, [*common, "--memory"], {**env, **MEMORY_ENV})
                data["workers"].append(worker)
    data["machine"]["load_average_after"] = os.getloadavg()
    data["rows"] = derive(data)
    data["targets"] = targets(data["rows"])
    print_setup(data)
    console.print(table(data["rows"]))
    if data["targets"]:
        console.print(target_table(data["targets"]))
    if json_path:
        Path(json_path).write_text(json.dumps(data, indent=1, default=str))
        console.print(f"wrote {json_path}")
    if plot_path:
        from rnnspec.bench.plot import plot

        plot(data, plot_path)
        console.print(f"wrote {plot_path}")
    failed = [w["framework"] for w in data["workers"] if "error" in w]
    inaccurate = [
        r["impl"] for r in data["rows"] if r.get("error_ratio", 0) > r.get("check_limit", 1)
    ]
    if failed or inaccurate:
        console.print(f"[bold red]failed: {failed}; inaccurate, not timed: {inaccurate}")
        sys.exit(1)


if __name__ == "__main__":
    bench()
