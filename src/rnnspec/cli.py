"""The ``rnnspec`` command: ``conform`` certifies backends, ``vectors`` rewrites the golden vectors,
``calibrate`` measures the tolerance policy's worst ratio on random cases, ``bench`` times the backends
(rnnspec.bench; docs/benchmarks.md)."""

import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from rnnspec import __version__, backends
from rnnspec.bench.run import bench
from rnnspec.conformance import SUITE_VERSION, cross
from rnnspec.conformance.report import GROUPS
from rnnspec.spec import PROTOCOL_VERSION

console = Console()


@click.group()
@click.version_option(
    __version__,
    prog_name="rnnspec",
    message=f"%(prog)s %(version)s (conformance suite {SUITE_VERSION}, Backend protocol "
    f"{PROTOCOL_VERSION})",
)
def main():
    """rnnspec: the vanilla RNN's BPTT gradients, specified and certified."""


main.add_command(bench)


def suite_command(name: str, device=None, dtypes=(), pytest_args=()) -> list[str]:
    """The pytest command line that runs the suite on one backend, in a process of its own."""
    command = [sys.executable, "-m", "pytest", "--pyargs", "rnnspec.conformance"]
    command += ["-p", "rnnspec.conformance.plugin"]  # also where it is not installed (gpu-check.sh)
    command += ["-q", "-p", "no:cacheprovider", "--backend", name, *pytest_args]
    if device:
        command += ["--device", device]
    for dtype in dtypes:
        command += ["--dtype", dtype]
    return command


def _run_suite(name, device, dtypes, report_path, pytest_args):
    command = suite_command(name, device, dtypes, ["--report-json", str(report_path), *pytest_args])
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    return done, time.perf_counter() - started


def _summarise(report: dict) -> dict:
    """(dtype, group) -> {"failed": n, "passed": n, "skipped": n, "worst_ratio": r}."""
    cells: dict = defaultdict(
        lambda: {"passed": 0, "failed": 0, "skipped": 0, "n/a": 0, "worst_ratio": None}
    )
    for test in report["tests"]:
        if test["outcome"] == "not run":
            continue
        cell = cells[(test["dtype"], test["group"])]
        cell[test["outcome"]] = cell.get(test["outcome"], 0) + 1
        if test["outcome"] == "n/a":
            cell["why"] = test["message"]
        if "worst_ratio" in test:
            cell["worst_ratio"] = max(cell["worst_ratio"] or 0.0, test["worst_ratio"])
    return cells


def _cell_text(cell) -> str:
    ratio = "" if cell["worst_ratio"] is None else f" {cell['worst_ratio']:.2g}"
    if cell["failed"]:
        return f"[bold red]FAIL {cell['failed']}[/]{ratio}"
    if cell["passed"]:
        return f"[green]pass[/]{ratio}" + (" [dim](some n/a)[/]" if cell["n/a"] else "")
    if cell["n/a"] and not cell["skipped"]:
        return f"[dim]{cell['why']}[/]"
    return "[dim]skip[/]"


def _table(reports: list[dict]) -> Table:
    """Check groups down, backends across; a line per dtype in each cell."""
    table = Table(
        title=f"rnnspec conformance suite {SUITE_VERSION}: pass/FAIL and the worst "
        "error as a fraction of its tolerance"
    )
    table.add_column("check")
    columns = []
    for report in reports:
        table.add_column(f"{report['backend']}\n{report.get('device', '')}")
        cells = _summarise(report) if "tests" in report else {}
        report["checks"] = [{"dtype": d, "group": g, **cell} for (d, g), cell in cells.items()]
        columns.append(cells)
    for group in GROUPS:
        row = []
        for cells in columns:
            lines = [
                f"{dtype.replace('float', 'f')} {_cell_text(cell)}"
                for (dtype, g), cell in sorted(cells.items())
                if g == group
            ]
            row.append("\n".join(lines) or ("[bold red]did not run[/]" if not cells else "-"))
        table.add_row(group, *row)
    return table


def _cross_table(rows: list[dict]) -> Table:
    """One row per pair and dtype: its worst tensor, as a fraction of the tolerance bound."""
    table = Table(
        title=f"cross-backend agreement: worst difference / tolerance bound (pass ≤ {cross.PAIR_LIMIT:g})"
    )
    for column in ("pair", "dtype", "worst", "tensor"):
        table.add_column(column)
    worst: dict = {}
    for row in rows:
        key = (row["pair"], row["dtype"])
        if key not in worst or row["ratio"] > worst[key]["ratio"]:
            worst[key] = row
    for (pair, dtype), row in sorted(worst.items()):
        style = "green" if row["ratio"] <= cross.PAIR_LIMIT else "bold red"
        table.add_row(pair, dtype, f"[{style}]{row['ratio']:.2g}[/]", row["tensor"])
    return table


@main.command()
@click.option(
    "--backend",
    "names",
    multiple=True,
    help="Backend to certify (repeatable): built-in, entry-point or module:factory name, "
    "optionally NAME@DEVICE. Default: every installed backend.",
)
@click.option("--device", default=None, help="Device for every backend, e.g. cuda, gpu, GPU:0.")
@click.option(
    "--dtype",
    "dtypes",
    multiple=True,
    type=click.Choice(["float32", "float64"]),
    help="Dtype to check (repeatable). Default: both.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the machine-readable report here.",
)
@click.option(
    "--show-failures",
    default=5,
    show_default=True,
    help="How many failures to print in full, with their reproduction snippets.",
)
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def conform(names, device, dtypes, json_path, show_failures, pytest_args):
    """Run the conformance suite against backends and print backend × check.

    Each cell shows pass/FAIL and the worst error as a fraction of its tolerance (≤ 1 passes).
    Extra arguments go to pytest, e.g. `rnnspec conform -- -k golden`.
    """
    names = list(names) or backends.available()
    reports: list[dict] = []
    failures: list[tuple[str, dict]] = []
    exit_code = 0
    dumps: dict[str, dict] = defaultdict(dict)
    with tempfile.TemporaryDirectory() as tmp:
        for spec_ in names:
            name, _, own_device = spec_.partition("@")
            report_path = Path(tmp) / f"{len(reports)}.json"
            with console.status(f"conformance suite {SUITE_VERSION} on {spec_} ..."):
                done, seconds = _run_suite(
                    name, own_device or device, dtypes, report_path, pytest_args
                )
            summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
            if not report_path.exists():
                console.print(
                    f"[bold red]{name}: the suite did not run[/]\n{done.stdout}{done.stderr}"
                )
                reports.append({"backend": name, "error": (done.stdout + done.stderr)[-4000:]})
                exit_code = 1
                continue
            report = json.loads(report_path.read_text())
            report["summary"], report["seconds"] = summary, round(seconds, 1)
            for dtype in dtypes or ("float32", "float64"):
                with np.load(report_path.with_suffix(f".{dtype}.npz")) as dump:
                    if "error" not in dump:
                        dumps[dtype][f"{report['backend']} on {report['device']}"] = dict(dump)
            reports.append(report)
            console.print(
                f"{report['backend']} ({report['framework_version']}) on "
                f"{report['device']}: {summary}"
            )
            if done.returncode != 0:
                exit_code = 1
            failures += [
                (report["backend"], t) for t in report["tests"] if t["outcome"] == "failed"
            ]

    console.print(_table(reports))

    agreement = [
        row for dtype, by in dumps.items() if len(by) > 1 for row in cross.matrix(by, dtype)
    ]
    if agreement:
        console.print(_cross_table(agreement))
        if any(not row["ratio"] <= cross.PAIR_LIMIT for row in agreement):
            exit_code = 1

    for backend, test in failures[:show_failures]:
        console.rule(f"[red]{backend}: {test['id']}")
        console.print(test.get("message", ""), markup=False, highlight=False)
    if len(failures) > show_failures:
        console.print(f"... and {len(failures) - show_failures} more failures (--show-failures)")
    if json_path:
        Path(json_path).write_text(
            json.dumps(
                {
                    "suite_version": SUITE_VERSION,
                    "protocol_version": PROTOCOL_VERSION,
                    "backends": reports,
                    "cross_backend": list(cross.worst_by_pair(agreement).values()),
                },
                indent=1,
            )
        )
        console.print(f"wrote {json_path}")
    if exit_code == 0:
        console.print(
            f"[green]certified[/]: {', '.join(names)} pass conformance suite "
            f"{SUITE_VERSION} (protocol {PROTOCOL_VERSION})"
        )
    sys.exit(exit_code)


@main.command()
def vectors():
    """Rewrite the golden vectors in conformance/vectors/ from rnnspec.spec.reference."""
    from rnnspec.conformance import golden

    for path in golden.write():
        console.print(f"wrote {path} ({path.stat().st_size} bytes)")


@main.command()
@click.option("--backend", "name", default="numpy", show_default=True)
@click.option("--device", default=None)
@click.option("--cases", "count", default=400, show_default=True, help="Random cases per dtype.")
@click.option("--seed", default=0, show_default=True)
def calibrate(name, device, count, seed):
    """Measure the worst error / ((u + u₆₄)·√T·max(1, κ)) on random cases: MARGIN must exceed it.

    Cases come from the suite's property-check distribution (rnnspec.conformance.cases.random_case);
    gradients and one random step's gradients are compared with rnnspec.spec.reference.
    """
    from rnnspec.conformance.calls import flatten
    from rnnspec.conformance.cases import random_case
    from rnnspec.conformance.oracle import expected
    from rnnspec.spec import tolerance

    backend = backends.load(name, device=device)
    rng = np.random.default_rng(seed)
    table = Table(title=f"calibration: {backend!r}, {count} random cases per dtype, seed {seed}")
    for column in ("dtype", "worst ratio", "MARGIN", "case", "call", "tensor", "κ"):
        table.add_column(column)
    for dtype in backend.capabilities.dtypes:
        worst: tuple[float, tuple[str, ...] | None] = (0.0, None)
        for _ in range(count):
            case, t = random_case(
                integer=lambda lo, hi: int(rng.integers(lo, hi + 1)),
                uniform=lambda lo, hi: float(rng.uniform(lo, hi)),
                boolean=lambda: bool(rng.integers(2)),
            )
            T = case.T
            native = case.native(backend, dtype)
            for method, result in (
                ("gradients", backend.gradients(*native)),
                ("step_gradients", backend.step_gradients(*native[:3], t, h0=native.h0)),
            ):
                want = expected(case, method, t if method == "step_gradients" else None)
                for got, value, kappa, tensor in zip(
                    flatten(method, result), want.values, want.kappas, want.names
                ):
                    error = tolerance.relative_error(backend.to_numpy(got), value)
                    ratio = error / (tolerance.bound(dtype, T, kappa) / tolerance.MARGIN)
                    if ratio > worst[0]:
                        worst = (ratio, (case.label(), f"{method}(t={t})", tensor, f"{kappa:.3g}"))
        ratio, where = worst
        table.add_row(dtype, f"{ratio:.3g}", f"{tolerance.MARGIN:g}", *(where or ("",) * 4))
    console.print(table)


if __name__ == "__main__":
    main()
