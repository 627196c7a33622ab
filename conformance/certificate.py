"""The suite's verdict, built and judged here alone. A run of the suite writes one backend's report
(:func:`backend_report`, through rnnspec.conformance.report): its checks' outcomes, what the run
left out, and whether it certifies the backend; ``rnnspec conform`` gathers reports into a
certificate (:func:`build`) with the cross-backend agreement, and prints it: the table of check
group × backend, the cross-backend table, the failures, and the verdict (:func:`verdict`):
certified only where the whole suite ran and passed. Everything it prints fits an 80-column
terminal."""

import re
import textwrap
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any, NamedTuple

from rich import box
from rich.markup import escape
from rich.table import Table

from rnnspec import __version__
from rnnspec.conformance import SUITE_VERSION, cross
from rnnspec.conformance.plugin import GROUPS
from rnnspec.spec import NONLINEARITIES, PROTOCOL_VERSION

LEGEND = (
    "cell: pass, or FAIL and how many; then the worst error ÷ tolerance (pass ≤ 1; "
    "'exact': no rounding error at all). n/a: not applicable, the backend does not declare it "
    "(*: some checks of the cell). f32, f64: float32, float64; any: checks that do not depend "
    "on the dtype."
)
DTYPE_ORDER = {"float32": 0, "float64": 1, "any": 2}
#: the order a summary counts the outcomes in
OUTCOMES = ("failed", "passed", "skipped", "n/a", "not run")
SUITE = f"the rnnspec {SUITE_VERSION} conformance suite (Backend protocol {PROTOCOL_VERSION})"


# --- one backend's report ---------------------------------------------------------------------------


class Selection(NamedTuple):
    """What a run selected: -k, -m, how many checks those deselected, and the dtypes checked."""

    keyword: str
    markexpr: str
    deselected: int
    dtypes: list[str]


def left_out(selection: Selection, declared_dtypes, tests: list[dict]) -> list[str]:
    """What keeps a run from being the whole suite for the dtypes and device it names."""
    out = []
    if selection.keyword:
        out.append(f"-k {selection.keyword!r}")
    if selection.markexpr:
        out.append(f"-m {selection.markexpr!r}")
    if selection.deselected:
        out.append(f"{selection.deselected} checks deselected")
    unchecked = [d for d in declared_dtypes if d not in selection.dtypes]
    if unchecked:
        out.append(f"dtype {', '.join(unchecked)} not checked (--dtype)")
    outcomes = Counter(test["outcome"] for test in tests)
    if outcomes["not run"]:
        out.append(f"{outcomes['not run']} checks not run (stopped early: -x or --maxfail)")
    if outcomes["skipped"]:
        out.append(f"{outcomes['skipped']} checks skipped")
    groups = {test["group"] for test in tests}
    missing = [group for group in GROUPS if group not in groups]
    if missing and not out:  # e.g. a single check module named on the command line
        out.append(f"groups not collected: {', '.join(missing)}")
    return out


def status(report: dict) -> str:
    """A backend's report judged: "error" (not loaded), "failed", "partial" (everything that ran
    passed, but the run left checks out) or "certified"."""
    if "tests" not in report:
        return "error"
    if report["outcomes"].get("failed"):
        return "failed"
    return "partial" if report["left_out"] or not report["tests"] else "certified"


def summary(report: dict) -> str:
    """Its checks' outcomes and the run's time: '1078 passed, 150 n/a in 122.8 s'."""
    counts = ", ".join(f"{report['outcomes'][o]} {o}" for o in OUTCOMES if o in report["outcomes"])
    return f"{counts or 'no checks'} in {report['duration_s']:.1f} s"


def backend_report(backend, selection: Selection, tests: list[dict], duration_s: float) -> dict:
    """The report of one run of the suite on ``backend`` (``--report-json``), judged."""
    capabilities = backend.capabilities
    report: dict[str, Any] = {
        "suite_version": SUITE_VERSION,
        "protocol_version": PROTOCOL_VERSION,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": backend.name,
        "backend_protocol_version": getattr(backend, "protocol_version", None),
        "framework_version": backend.framework_version,
        "device": backend.device,
        "dtypes": selection.dtypes,
        "capabilities": {
            "autodiff": capabilities.autodiff,
            "gradient_flow": getattr(capabilities, "gradient_flow", False),
            "devices": list(capabilities.devices),
            "dtypes": list(capabilities.dtypes),
            "masks": capabilities.masks,
            "nonlinearities": list(getattr(capabilities, "nonlinearities", ("tanh",))),
            **{field: getattr(capabilities, field) for field in SCOPE_FIELDS},
        },
        "scope": scope(capabilities),
        "outcomes": dict(Counter(test["outcome"] for test in tests)),
        "left_out": left_out(selection, capabilities.dtypes, tests),
        "duration_s": duration_s,
        "tests": tests,
    }
    report["certified"] = status(report) == "certified"
    report["summary"] = summary(report)
    return report


#: the capabilities a plain function may lack (rnnspec.check), which scope its certificate
SCOPE_FIELDS = ("forward", "step_gradients", "soft_targets", "initial_state", "one_hot_inputs")


def scope(capabilities) -> dict[str, list[str]]:
    """What a certificate covers, in words, where a backend lacks a capability of a plain
    function's: ``{"for": [...], "not checked": [...]}``, both empty for a full backend."""
    covered, unchecked = [], []
    returned = tuple(getattr(capabilities, "gradients", ("h0", "x")))
    if not capabilities.soft_targets:
        covered.append("class-index targets")
        unchecked.append("soft targets")
    if not capabilities.initial_state:
        covered.append("h(0) = 0")
        unchecked.append("a given h(0)")
    if capabilities.one_hot_inputs:
        covered.append("word-index inputs")
        unchecked.append("inputs x(t) as vectors")
    if not capabilities.forward:
        unchecked.append("the forward pass (h, o, ŷ)")
    if not capabilities.step_gradients:
        unchecked.append("per-step gradients (form A)")
    unchecked += [f"∇{name}" for name in ("h0", "x") if name not in returned]
    declared = tuple(getattr(capabilities, "nonlinearities", ("tanh",)))
    if set(declared) != set(NONLINEARITIES):  # SPEC.md §1.1: a φ not declared is n/a
        covered.append(f"φ = {' and '.join(declared)}")
        unchecked += [phi for phi in NONLINEARITIES if phi not in declared]
    return {"for": covered, "not checked": unchecked}


def scope_text(report: dict) -> str:
    """ ", for class-index targets and h(0) = 0; not checked: soft targets, ∇x" or ""."""
    words = report.get("scope") or {}
    text = f", for {' and '.join(words['for'])}" if words.get("for") else ""
    if words.get("not checked"):
        text += f"; not checked: {', '.join(words['not checked'])}"
    return text


def error_report(name: str, message: str) -> dict:
    """The report of a run that checked nothing (the backend could not be loaded): why."""
    return {"backend": name, "error": message}


# --- the certificate: every backend's report, and their agreement -------------------------------


def build(reports: list[dict], agreement: list[dict]) -> dict:
    """The certificate (``rnnspec conform --json``): the reports, the worst cross-backend row of
    each pair and tensor, and whether it certifies them all."""
    worst = list(cross.worst_by_pair(agreement).values())
    agree = all(row["ratio"] <= cross.PAIR_LIMIT for row in worst)
    return {
        "rnnspec_version": __version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "suite_version": SUITE_VERSION,
        "protocol_version": PROTOCOL_VERSION,
        "certified": bool(reports) and agree and all(status(r) == "certified" for r in reports),
        "backends": reports,
        "cross_backend": worst,
    }


def verdict(certificate: dict) -> tuple[int, list[str]]:
    """The exit code and the closing lines (rich markup): 1 where a backend failed or could not
    be loaded, or the backends disagree; certified only when every backend ran the whole suite
    for the dtypes and device named, and passed, and the backends agree with each other."""
    reports = certificate["backends"]
    broken = [r for r in reports if status(r) in ("error", "failed")]
    disagree = [r for r in certificate["cross_backend"] if r["ratio"] > cross.PAIR_LIMIT]
    if broken or disagree:
        names = ", ".join(escape(r["backend"]) for r in broken) or "the cross-backend agreement"
        return 1, [f"[bold red]FAILED[/]: {names}; not certified"]
    if not certificate["certified"]:
        lines = []
        for r in (r for r in reports if status(r) == "partial"):
            lines += [
                f"[yellow]partial run[/]: {escape(identity(r))}",
                "  everything that ran passed; [yellow]not a certificate[/]",
                f"  left out: {escape('; '.join(r['left_out']) or 'every check')}",
            ]
        return 0, lines
    return 0, [*(f"[green]certified[/]: {escape(identity(r))}" for r in reports), f"  by {SUITE}"]


def wrap(text: str, width: int) -> list[str]:
    """Prose as lines of at most ``width`` columns, each line's continuation indented under it
    by four more; a word longer than a line (a path, an id) stays whole."""
    lines = []
    for line in text.splitlines() or [""]:
        indent = " " * (len(line) - len(line.lstrip()))
        wrapped = textwrap.wrap(
            line,
            width,
            subsequent_indent=indent + "    ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        lines += wrapped or [line]
    return lines


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


#: why the pairs' limit is 2 where every other table's is 1, under the cross table
PAIR_LIMIT_WHY = (
    f"worst: the pair's difference ÷ the tolerance bound. Each backend is within 1 bound of the "
    f"reference, so two are within {cross.PAIR_LIMIT:g} of each other."
)


def cross_table(rows: list[dict]) -> Table:
    """One row per pair and dtype: its worst tensor, as a fraction of the tolerance bound."""
    t = Table(
        title=f"cross-backend agreement (pass ≤ {cross.PAIR_LIMIT:g})",
        caption=PAIR_LIMIT_WHY,
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    for column in ("pair", "dtype", "worst", "tensor"):
        t.add_column(column, overflow="fold")  # a long name or tensor whole, over lines
    worst: dict = {}
    for row in rows:
        key = (row["pair"], row["dtype"])
        if key not in worst or row["ratio"] > worst[key]["ratio"]:
            worst[key] = row
    for (pair, dtype), row in sorted(worst.items()):
        style = "green" if row["ratio"] <= cross.PAIR_LIMIT else "bold red"
        t.add_row(pair, dtype, f"[{style}]{row['ratio']:.2g}[/]", row["tensor"])
    return t


def ordered_failures(failures: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """(backend, test) failures in the order a person should read them: one of each distinct
    check first (the same check in the other dtype or on another case after all of those), the
    most specific first: the check of the very erratum its diagnosis matched (E3's check, where
    every failure of a transposed ∇W says "matches erratum E3"), then those with any diagnosis,
    then the rest, each in the suite's order."""

    def specificity(failure: tuple[str, dict]) -> int:
        message, test_id = failure[1].get("message", ""), failure[1]["id"]
        matched = re.search(r"diagnosis: matches erratum E(\d)", message)
        if matched and re.search(rf"::test_e{matched[1]}_", test_id):
            return 0
        return 1 if "diagnosis:" in message else 2

    diagnosed = sorted(failures, key=specificity)
    first: list[tuple[str, dict]] = []
    again: list[tuple[str, dict]] = []
    seen: set[tuple[str, str]] = set()
    for backend, test in diagnosed:
        check = (backend, test["id"].partition("[")[0])  # the check, whatever its parameters
        (again if check in seen else first).append((backend, test))
        seen.add(check)
    return first + again


def failure(backend: str, test: dict, width: int) -> list[str]:
    """A failed check for a person: its name, its id, and the assertion's own message (the
    tensor, the case, the error against its bound), wrapped to ``width``, and its reproduction
    snippet as code to paste, whole and unindented."""
    message = test.get("message", "").strip()
    prose, _, snippet = message.partition("\n  reproduce:\n")
    lines = [*wrap(f"{backend}: {test['group']}: {test['title']}", width), test["id"]]
    lines += wrap(prose, width)
    if snippet:
        lines += ["  reproduce:", *textwrap.dedent(snippet).splitlines()]
    return lines


def identity(report: dict) -> str:
    dtypes = " + ".join(report.get("dtypes", [])) or "no dtype"
    return (
        f"{report['backend']} ({report['framework_version']}) on {report['device']}, {dtypes}"
        + scope_text(report)
    )
