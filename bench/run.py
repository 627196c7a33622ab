"""``rnnspec bench``: one worker process per backend, then the table, the targets and the JSON."""

import contextlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console, Group
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table as RichTable

from rnnspec import backends
from rnnspec.bench import report
from rnnspec.bench.frameworks import busy, free_cores, load_average, thread_settings, usable_cores
from rnnspec.bench.plot import plot
from rnnspec.bench.report import Bad, Strong, Table
from rnnspec.bench.worker import CHECK_FACTOR, MEASUREMENT_OPTIONS, PROGRESS
from rnnspec.bench.workloads import MEMORY_WORKLOAD, QUICK, WORKLOADS, targets_for

console = Console()
#: glibc: allocations from 64 KiB up are mmap'ed and unmapped when freed, so the resident-set
#: high-water mark of the memory worker follows the live arrays (fixing it also stops glibc raising
#: it dynamically); TensorFlow keeps allocation statistics only with its BFC allocator
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "TF_CPU_ALLOCATOR_USE_BFC": "true"}


def machine() -> dict[str, Any]:
    cpu = platform.processor()  # often only the architecture: Linux names the model
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as info:
        cpu = next(line.partition(":")[2].strip() for line in info if line.startswith("model name"))
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable_cores(),
            "python": platform.python_version(), "system": f"{platform.system()} {platform.release()}",
            "load_average_before": load_average()}  # fmt: skip


def worker_args(measurement: dict[str, Any]) -> list[str]:
    """The shared options' values as the worker's command-line options."""
    values = [(o, v) for o in MEASUREMENT_OPTIONS
              for v in (measurement[o.name] if o.multiple else [measurement[o.name]])]  # fmt: skip
    # an option left unset (--device) is left to the worker's default
    return [arg for o, v in values if v is not None for arg in (o.opts[0], str(v))]


def run_worker(doing: str, name: str, args: list[str], env: dict[str, str]) -> dict:
    """One worker process's results (its JSON goes through a file: backends may print), showing
    what it is timing: a spinner on a terminal, a line per workload and dtype in a pipe or file."""
    with tempfile.TemporaryDirectory() as folder, console.status(f"{doing} ...") as status:
        path = Path(folder) / "worker.json"
        command = [sys.executable, "-m", "rnnspec.bench.worker", name, *args, "--json", str(path)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
        process = subprocess.Popen(  # one stream, read as it comes: neither pipe can fill up
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        output = []
        for line in process.stdout or ():
            if not line.startswith(PROGRESS):
                output.append(line)
                continue
            now = f"{doing}: {line.removeprefix(PROGRESS).strip()}"
            status.update(f"{now} ...")
            if not console.is_terminal:
                console.print(now, highlight=False, soft_wrap=True)
        process.wait()
        report = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}
    if process.returncode == 0 and report:
        return report
    if "error" in report:  # the worker's own one-line reason: a backend it could not load
        error(report["error"])
        return report
    said = "".join(output)[-3000:]
    console.print(f"[bold red]{escape(name)} worker failed[/]")
    console.print(escape(said), highlight=False)
    return {"backend": name, "error": said, "results": []}


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
        with contextlib.suppress(ImportError, ValueError):
            if importlib.util.find_spec(name.partition(":")[0]) is not None:
                return None  # the factory may still be missing: the worker will say
    try:  # fails before importing any framework in each case left
        backends.load(name)
    except backends.BackendError as problem:
        return str(problem)
    return None


def rich_table(t: Table, columns: Iterable[int] | None = None, title: str = "") -> RichTable:
    """Compact: a rule under the header, no vertical lines, no padding at the edges. Only the
    wrapping columns (``align`` w) wrap: every other one holds a number or a short name, never cut,
    and the tables are narrow enough for 80 columns."""
    picked = list(range(len(t.headers)) if columns is None else columns)
    out = RichTable(title=title or t.title, box=box.SIMPLE_HEAD, collapse_padding=True,
                    pad_edge=False)  # fmt: skip
    for i in picked:
        out.add_column(t.headers[i], justify="right" if t.align[i] == "r" else "left",
                       no_wrap=t.align[i] != "w")  # fmt: skip
    for n, row in enumerate(t.rows):
        if t.grouped and n and row[0] != t.rows[n - 1][0]:
            out.add_section()
        out.add_row(*(STYLES.get(type(row[i]), "{}").format(escape(row[i])) for i in picked))
    return out


#: how the model's cells that stand out look in the terminal
STYLES: dict[type, str] = {Strong: "[bold]{}[/]", Bad: "[bold red]{}[/]"}


def show(data: dict) -> Group:
    """The setup, the timing and the efficiency tables with the legend, the fixed cost and the peak
    memory where they were measured and every target: 80 columns suffice."""
    results = report.results_table(data["rows"], sorted({r["dtype"] for r in data["rows"]}))
    memory, checks = report.memory_table(data), data["targets"]
    fixed = report.fixed_cost_table(data)
    parts: list[Any] = [Markdown("\n".join(report.setup(data, page=False)))]
    if results.rows:
        parts += [rich_table(results, report.TIMING, "loss + all gradients: ms per call"),
                  rich_table(results, report.EFFICIENCY, "GFLOP/s, first call, accuracy"),
                  Markdown(report.LEGEND, style="dim")]  # fmt: skip
    parts += [rich_table(fixed)] * bool(fixed.rows)
    parts += [rich_table(memory, range(6))] * bool(memory.rows)  # "measured with": on the page
    parts += [rich_table(report.target_table(checks), title="targets (float32)")] * bool(checks)
    return Group(*parts)


#: bench's own options, after the ones it shares with the worker
BENCH_OPTIONS = (
    click.Option(["--backend", "names"], multiple=True,
                 help="Backend to time (repeatable): built-in, entry-point or module:factory name. "
                 "Default: every installed backend."),
    click.Option(["--quick"], is_flag=True, help=f"Only {' and '.join(QUICK)} (unless --workload)."),
    click.Option(["--rounds"], default=1, show_default=True,
                 help="Run every backend's worker this many times, alternating, and pool their calls."),
    click.Option(["--env", "env_pairs"], multiple=True, metavar="KEY=VALUE",
                 help="Environment for the workers (repeatable), e.g. OMP_NUM_THREADS=1."),
    click.Option(["--memory/--no-memory"], default=True, show_default=True,
                 help=f"Peak memory on {MEMORY_WORKLOAD}, when it is timed."),
    click.Option(["--json", "json_path"], type=click.Path(dir_okay=False), help="Write every number here."),
    click.Option(["--plot", "plot_path"], type=click.Path(dir_okay=False), help="Write the plot (PNG)."),
)  # fmt: skip


@click.command(name="bench", params=[*MEASUREMENT_OPTIONS, *BENCH_OPTIONS])
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
    data: dict[str, Any] = {"options": click.get_current_context().params, "machine": machine()}
    data["workloads"] = {name: asdict(WORKLOADS[name]) for name in workloads}
    given = dict(pair.split("=", 1) for pair in env_pairs)
    usable, load = data["machine"]["usable_cores"], data["machine"]["load_average_before"]
    chosen = thread_settings(given, usable, load)
    env = {**chosen, **given}
    data["threads"] = {"chosen": chosen, "free_cores": free_cores(usable, load)}
    if busy(usable, load):
        console.print(
            f"[bold yellow]warning:[/] the machine is busy (load average {load[0]:.1f} on "
            f"{usable} usable cores): its times mean little, and ratios within one run less so",
            highlight=False,
        )
    jobs = [(f"round {n}/{rounds}: timing {name}", name, args, env)
            for n in range(1, rounds + 1) for name in names]  # fmt: skip
    if memory and MEMORY_WORKLOAD in workloads:
        jobs += [(f"measuring {name}'s memory", name, [*args, "--measure", "memory"],
                  {**env, **MEMORY_ENV}) for name in names]  # fmt: skip
    data["workers"] = []
    for job in jobs:
        data["workers"].append(run_worker(*job))
    data["machine"]["load_average_after"] = load_average()
    data["seconds"] = time.monotonic() - started
    data["rows"] = report.derive(data)
    data["targets"] = report.targets(data["rows"], targets_for(data["options"]["device"]))
    console.print(show(data))
    writers = ((json_path, lambda path: path.write_text(json.dumps(data, indent=1, default=str))),
               (plot_path, lambda path: plot(data, path)))  # fmt: skip
    for path, write in writers:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write(Path(path))
            console.print(f"wrote {path}")
    failed = [w["backend"] for w in data["workers"] if "error" in w]
    inaccurate = [r["impl"] for r in data["rows"] if r.get("error_ratio", 0) > CHECK_FACTOR]
    if failed or inaccurate:
        console.print(f"[bold red]failed: {failed}; inaccurate, not timed: {inaccurate}")
        sys.exit(1)


if __name__ == "__main__":
    bench()
