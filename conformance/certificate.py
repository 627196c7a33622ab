"""What ``rnnspec conform`` prints from the suite's JSON reports (rnnspec.conformance.report): the
table of check group × backend, the cross-backend table, the failures, and the verdict: certified
only where the whole suite ran and passed. Every table fits an 80-column terminal."""

from collections import defaultdict

from rich import box
from rich.markup import escape
from rich.table import Table

from rnnspec.conformance import SUITE_VERSION, cross
from rnnspec.conformance.report import GROUPS
from rnnspec.spec import PROTOCOL_VERSION

LEGEND = (
    "cell: pass, or FAIL and how many; then the worst error ÷ tolerance (pass ≤ 1; "
    "'exact': no rounding error at all). n/a: not applicable, the backend does not declare it "
    "(*: some checks of the cell). f32, f64: float32, float64; any: checks that do not depend "
    "on the dtype."
)
DTYPE_ORDER = {"float32": 0, "float64": 1, "any": 2}


def summarise(report: dict) -> dict[tuple[str, str], dict]:
    """(group, dtype) -> counts of each outcome, the worst ratio, and why any were n/a."""
    cells: dict = defaultdict(lambda: {"passed": 0, "failed": 0, "skipped": 0, "n/a": 0})
    for test in report["tests"]:
        if test["outcome"] == "not run":
            continue
        cell = cells[(test["group"], test["dtype"])]
        cell[test["outcome"]] += 1
        if test["outcome"] == "n/a":
            cell["why"] = test["message"]
        if "worst_ratio" in test:
            cell["worst_ratio"] = max(cell.get("worst_ratio", 0.0), test["worst_ratio"])
    return dict(cells)


def ratio_text(ratio: float | None) -> str:
    """The worst error ÷ tolerance as a cell shows it: ' 0.039', ' exact', ' >1e3', or ''."""
    if ratio is None:
        return ""
    return " exact" if ratio == 0 else " >1e3" if ratio > 1e3 else f" {ratio:.2g}"


def cell_text(cell: dict | None) -> str:
    if cell is None:
        return "[dim]-[/]"
    number = ratio_text(cell.get("worst_ratio"))
    if cell["failed"]:
        return f"[bold red]FAIL {cell['failed']}[/]{number}"
    if cell["passed"]:
        return f"[green]pass[/]{number}" + ("[dim]*[/]" if cell["n/a"] else "")
    if cell["n/a"]:
        return "[dim]n/a[/]"
    return "[yellow]skipped[/]"


def table(reports: list[dict]) -> Table:
    """A row per check group and dtype, a column per backend."""
    t = Table(
        title=f"rnnspec {SUITE_VERSION} conformance",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=False,
    )
    t.add_column("check", no_wrap=True)
    t.add_column("", no_wrap=True)  # the dtype
    columns = []
    for report in reports:
        t.add_column(f"{report['backend']}\n{report.get('device', '')}", no_wrap=True)
        columns.append(summarise(report) if "tests" in report else None)
    rows = {key for cells in columns if cells for key in cells}
    for group in GROUPS:
        group_rows = sorted((d for g, d in rows if g == group), key=DTYPE_ORDER.__getitem__)
        for i, dtype in enumerate(group_rows):
            cells = [
                cell_text(c.get((group, dtype))) if c is not None else "[red]not run[/]"
                for c in columns
            ]
            t.add_row(group if i == 0 else "", dtype.replace("float", "f"), *cells)
    return t


#: backend columns per table: four fit an 80-column terminal
BACKENDS_PER_TABLE = 4


def tables(reports: list[dict]) -> list[Table]:
    """:func:`table` for every BACKENDS_PER_TABLE backends, so that each fits 80 columns."""
    step = BACKENDS_PER_TABLE
    return [table(reports[i : i + step]) for i in range(0, len(reports), step)]


def not_applicable(reports: list[dict]) -> list[str]:
    """One line per distinct reason a backend's checks were n/a."""
    reasons = {
        (report["backend"], test["message"])
        for report in reports
        for test in report.get("tests", [])
        if test["outcome"] == "n/a"
    }
    return [f"{backend}: {why}" for backend, why in sorted(reasons)]


def cross_table(rows: list[dict]) -> Table:
    """One row per pair and dtype: its worst tensor, as a fraction of the tolerance bound."""
    t = Table(
        title=f"cross-backend agreement (pass ≤ {cross.PAIR_LIMIT:g})",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    for column in ("pair", "dtype", "worst", "tensor"):
        t.add_column(column)
    worst: dict = {}
    for row in rows:
        key = (row["pair"], row["dtype"])
        if key not in worst or row["ratio"] > worst[key]["ratio"]:
            worst[key] = row
    for (pair, dtype), row in sorted(worst.items()):
        style = "green" if row["ratio"] <= cross.PAIR_LIMIT else "bold red"
        t.add_row(pair, dtype, f"[{style}]{row['ratio']:.2g}[/]", row["tensor"])
    return t


def failure(backend: str, test: dict) -> str:
    """A failed check for a person: its name, its id, and the assertion's own message (the
    tensor, the case, the error against its bound, and a reproduction snippet)."""
    title = f"{test['group']}: {test['title']}"
    return f"{backend}: {title}\n{test['id']}\n{test.get('message', '').strip()}"


def identity(report: dict) -> str:
    dtypes = " + ".join(report.get("dtypes", [])) or "no dtype"
    return f"{report['backend']} ({report['framework_version']}) on {report['device']}, {dtypes}"


def verdict(reports: list[dict], agreement_ok: bool) -> tuple[int, list[str]]:
    """The exit code and the closing lines: certified only when every backend ran the whole
    suite for the dtypes and device named, and passed, and the backends agree with each other."""
    suite = f"the rnnspec {SUITE_VERSION} conformance suite (Backend protocol {PROTOCOL_VERSION})"
    broken = [r for r in reports if "tests" not in r or r["outcomes"].get("failed")]
    if broken or not agreement_ok:
        names = ", ".join(escape(r["backend"]) for r in broken) or "the cross-backend agreement"
        return 1, [f"[bold red]FAILED[/]: {names} — not certified"]
    partial = [r for r in reports if not r["certified"]]
    if partial:
        return 0, [
            f"[yellow]partial run[/], everything that ran passed, [yellow]not a certificate[/]: "
            f"{escape(identity(r))}; left out: {escape('; '.join(r['left_out']) or 'every check')}"
            for r in partial
        ]
    return 0, [f"[green]certified[/]: {escape(identity(r))}, by {suite}" for r in reports]
