"""The ``rnnspec`` command: ``conform`` certifies backends, ``scoreboard`` publishes certificates as
a page, ``vectors`` regenerates the golden vectors, ``calibrate`` measures the tolerance policy's
worst ratio on random cases, ``bench`` times the backends (rnnspec.bench; docs/benchmarks.md),
``flow`` shows the gradient flow (rnnspec.flow; docs/gradient-flow.md)."""

import json
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rnnspec import __version__, backends
from rnnspec.bench.run import bench
from rnnspec.conformance import certificate, cross
from rnnspec.flow import flow
from rnnspec.spec import PROTOCOL_VERSION

console = Console()


@click.group()
@click.version_option(
    __version__,
    prog_name="rnnspec",
    message=f"%(prog)s %(version)s (Backend protocol {PROTOCOL_VERSION})",
)
def main():
    """rnnspec: the vanilla RNN's BPTT gradients, specified and certified."""


main.add_command(bench)
main.add_command(flow)


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


def _run_suite(label: str, command: list[str]) -> str:
    """Run the suite in a process of its own and return its output (stderr merged, so that
    neither pipe can fill up and stall it), showing progress: a spinner on a terminal, a line per
    tenth of the checks when the output goes to a file or a pipe."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    shown = -1
    with console.status(f"{label}: collecting ...") as status:
        for line in process.stdout or ():
            out.append(line)
            percent = re.search(r"\[\s*(\d+)%\]\s*$", line)  # pytest -q's progress, for show
            if percent:
                status.update(f"{label}: {percent[1]}% of the checks")
                if not console.is_terminal and int(percent[1]) // 10 > shown:
                    shown = int(percent[1]) // 10
                    console.print(f"{label}: {percent[1]}% of the checks", highlight=False)
    process.wait()
    return "".join(out)


def _print_wrapped(text: str, **style) -> None:
    for line in certificate.wrap(text, console.width):
        console.print(line, markup=False, highlight=False, soft_wrap=True, **style)


@main.command()
@click.option(
    "--backend",
    "names",
    multiple=True,
    help="Backend to certify (repeatable): built-in, entry-point or module:factory name, "
    "optionally NAME@DEVICE. Default: every installed backend.",
)
@click.option("--device", default=None, help="Device for every backend, e.g. cuda, gpu, gpu:1.")
@click.option(
    "--dtype",
    "dtypes",
    multiple=True,
    type=click.Choice(["float32", "float64"]),
    help="Dtype to check (repeatable). Default: every dtype the backend declares; a subset makes "
    "the run partial, with no certificate.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the machine-readable report (the certificate) here.",
)
@click.option(
    "--show-failures",
    default=5,
    show_default=True,
    help="How many failures to print in full, with their reproduction snippets.",
)
@click.option(
    "--function",
    default=None,
    metavar="MODULE:NAME",
    help="Certify a plain BPTT function instead of backends (rnnspec.check; docs/check.md).",
)
@click.option(
    "--conventions",
    default=None,
    metavar="MODULE:NAME",
    help="The function's rnnspec.Conventions. Default: the model's own (time-major, columns).",
)
@click.option("-v", "--verbose", is_flag=True, help="Print pytest's own output, tracebacks too.")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def conform(
    names, device, dtypes, json_path, show_failures, function, conventions, verbose, pytest_args
):
    """Run the conformance suite against backends and print check × backend.

    A backend is certified only by a whole run. Extra arguments go to pytest (e.g.
    `rnnspec conform -- -k golden`); any selection among the checks makes the run partial.
    """
    names = list(names) or ([function] if function else backends.available())
    if function:  # the plugin builds the function's backend (rnnspec.plain)
        named = ["--conventions", conventions] if conventions else []
        pytest_args = ("--function", function, *named, *pytest_args)
    reports: list[dict] = []
    dumps: dict[str, dict] = defaultdict(dict)
    with tempfile.TemporaryDirectory() as tmp:
        for spec_ in names:
            name, _, own_device = spec_.partition("@")
            report_path = Path(tmp) / f"{len(reports)}.json"
            tracebacks = [] if verbose else ["--tb=no"]
            args = ["--report-json", str(report_path), *tracebacks, *pytest_args]
            output = _run_suite(spec_, suite_command(name, own_device or device, dtypes, args))
            if verbose or not report_path.exists():  # no report: pytest's own words say why
                console.print(output, markup=False, highlight=False)
            report = (
                json.loads(report_path.read_text())
                if report_path.exists()
                else certificate.error_report(name, "pytest wrote no report (its output is above)")
            )
            reports.append(report)
            if "error" in report:  # one line, unwrapped: it may end in a command to paste
                console.print(
                    f"[bold red]{escape(spec_)}[/]: {escape(report['error'])}", soft_wrap=True
                )
                continue
            for dtype in report["dtypes"]:
                dump = cross.load(report_path, dtype)
                if dump is not None:
                    dumps[dtype][f"{report['backend']} on {report['device']}"] = dump
            _print_wrapped(f"{certificate.identity(report)}:\n  {report['summary']}")

    agreement = [
        row for dtype, by in dumps.items() if len(by) > 1 for row in cross.matrix(by, dtype)
    ]
    sys.exit(show(reports, agreement, show_failures, json_path)[1])


def show(
    reports: list[dict], agreement: list[dict], show_failures: int, json_path: str | None = None
) -> tuple[dict, int]:
    """Print the reports of a run (the table of check group × backend, what was not applicable,
    the cross-backend agreement, the first failures in full), write the certificate to
    ``json_path`` if given, and print the verdict; return the certificate and the exit code."""
    if any("tests" in report for report in reports):
        for table in certificate.tables(reports):
            console.print(table)
        _print_wrapped(certificate.LEGEND, style="dim")
        for line in certificate.not_applicable(reports):
            _print_wrapped(f"n/a: {line}", style="dim")
    if agreement:
        console.print(certificate.cross_table(agreement))
    failures = certificate.ordered_failures(
        [(r["backend"], t) for r in reports for t in r.get("tests", []) if t["outcome"] == "failed"]
    )
    for backend, test in failures[:show_failures]:
        console.rule(style="red")
        for line in certificate.failure(backend, test, console.width):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if len(failures) > show_failures:
        console.print(f"... and {len(failures) - show_failures} more failures (--show-failures)")
    document = certificate.build(reports, agreement)
    if json_path:
        Path(json_path).write_text(json.dumps(document, indent=1))
        console.print(f"wrote {escape(json_path)}")
    exit_code, lines = certificate.verdict(document)
    for line in lines:
        console.print(line, highlight=False)
    return document, exit_code


@main.command()
@click.argument("certificates", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("scoreboard"),
    show_default=True,
    help="Write index.html and scoreboard.md here.",
)
@click.option(
    "--screenshot",
    "png",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save the page as headless Chromium renders it, as this PNG.",
)
def scoreboard(certificates, into, png):
    """Build the conformance scoreboard from the JSON certificates in CERTIFICATES (what
    `rnnspec conform --json` or `pytest --report-json` wrote): a static page, index.html, and its
    Markdown twin, scoreboard.md, one row per implementation × device × dtype."""
    from rnnspec import scoreboard as board

    try:
        rows, superseded = board.build(certificates, into)
    except (ValueError, KeyError, json.JSONDecodeError) as error:
        raise click.ClickException(str(error)) from error
    for item in superseded:
        console.print(escape(item.text()), highlight=False)
    console.print(f"wrote {escape(str(into / 'index.html'))} and scoreboard.md: {len(rows)} rows")
    if png:
        try:
            board.screenshot(into / "index.html", png, len(rows))
        except (OSError, subprocess.SubprocessError) as error:
            raise click.ClickException(f"no screenshot: {error}") from error
        console.print(f"wrote {escape(str(png))}")


@main.command()
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write them here instead of the checkout's conformance/vectors/.",
)
def vectors(into):
    """Regenerate the golden vectors from rnnspec.spec.reference: into the checkout's
    conformance/vectors/ (only from a checkout: an installed package's vectors are part of the
    release and are never rewritten), or into --into DIR."""
    from rnnspec.conformance import golden

    target = into or golden.checkout_vectors()
    if target is None:
        raise click.ClickException(
            "rnnspec is installed here as a package, not run from a checkout: its golden vectors "
            "belong to the release and stay as they are. Write fresh ones elsewhere with --into DIR."
        )
    for path in golden.write(target):
        console.print(f"wrote {escape(str(path))} ({path.stat().st_size} bytes)")


@main.command()
@click.option("--backend", "name", default="numpy", show_default=True)
@click.option("--device", default=None)
@click.option("--cases", "count", default=400, show_default=True, help="Random cases per dtype.")
@click.option("--seed", default=0, show_default=True)
def calibrate(name, device, count, seed):
    """Measure how close random cases come to the tolerance: the worst error ÷ tolerance, on the
    scale `rnnspec conform` prints (pass ≤ 1), and what that leaves of the policy's MARGIN.

    Cases come from the suite's property-check distribution (rnnspec.conformance.cases.random_case);
    gradients and one random step's gradients are compared with rnnspec.spec.reference.
    """
    from rnnspec.conformance.calls import flatten
    from rnnspec.conformance.cases import declared_nonlinearity, random_case
    from rnnspec.conformance.oracle import expected
    from rnnspec.spec import tolerance

    backend = backends.load(name, device=device)
    rng = np.random.default_rng(seed)
    table = Table(title=f"calibration: {backend.name}, {count} random cases per dtype, seed {seed}")
    for column in ("dtype", "worst error ÷ tolerance", "MARGIN needed", "κ", "tensor"):
        table.add_column(column, overflow="fold")  # numbers never wrap; a long tensor folds
    cases = []
    for dtype in backend.capabilities.dtypes:
        worst: tuple[float, tuple[str, ...] | None] = (0.0, None)
        for _ in range(count):
            drawn, t = random_case(
                integer=lambda lo, hi: int(rng.integers(lo, hi + 1)),
                uniform=lambda lo, hi: float(rng.uniform(lo, hi)),
                boolean=lambda: bool(rng.integers(2)),
            )
            case = declared_nonlinearity(drawn, backend)  # a relu draw as tanh where not declared
            native, model = case.native(backend, dtype), case.model()
            for method, result in (
                ("gradients", backend.gradients(*native, model=model)),
                ("step_gradients", backend.step_gradients(*native[:3], t, native.h0, model=model)),
            ):
                want = expected(case, method, t if method == "step_gradients" else None)
                for got, value, kappa, tensor in zip(
                    flatten(method, result), want.values, want.kappas, want.names
                ):
                    ratio = tolerance.ratio(backend.to_numpy(got), value, dtype, case.T, kappa)
                    if ratio > worst[0]:
                        call = f"{method}(t={t})" if method == "step_gradients" else method
                        worst = (ratio, (f"{kappa:.3g}", f"{call} {tensor}", case.label()))
        ratio, where = worst
        needed = f"{ratio * tolerance.MARGIN:.3g} of {tolerance.MARGIN:g}"
        at_kappa, tensor, label = where or ("", "", "")
        table.add_row(dtype, f"{ratio:.3g}", needed, at_kappa, tensor)
        cases.append(f"{dtype}'s worst case: {label}")
    console.print(table)
    for line in cases:  # a case's label is a line of its own: in a cell it would wrap to pieces
        console.print(escape(line), highlight=False)
    console.print(
        "worst error ÷ tolerance is conform's scale: a check passes at ≤ 1. MARGIN needed is the "
        "smallest MARGIN (SPEC.md §6.1) under which these cases would still pass.",
        style="dim",
    )


if __name__ == "__main__":
    main()
