"""``rnnspec scoreboard``: what every implementation, device and dtype has passed, on one static page
(index.html) and its Markdown twin (scoreboard.md), built from a folder of JSON certificates, those
``rnnspec conform --json`` writes (any number of backends) or the plugin's ``--report-json`` (one).

One row per implementation × device × dtype; one column per check group, in SPEC.md's order as
``rnnspec conform`` prints them: pass, FAIL and how many, n/a or skipped, with the worst error as a
fraction of its tolerance (checks that do not depend on the dtype count in both rows). A row whose
run left checks out is partial, never certified. The page is a single file with its CSS inline, no
script, font or image to fetch, so it works from disk and offline; on a narrow screen its table
scrolls sideways inside the page, the implementation's name kept in view.

The same certificates as the two Markdown tables of examples/framework-layers/README.md
("Certification results"), which `nox -s layers` prints at its end::

    python -m rnnspec.scoreboard FOLDER NAME...    # FOLDER holds NAME.json for each NAME
"""

import html
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnspec.backends import BUILTIN
from rnnspec.conformance.certificate import ratio_text, scope_text, summarise
from rnnspec.conformance.plugin import GROUPS

TITLE = "rnnspec conformance scoreboard"
#: the table's columns, on the page and in its Markdown twin
COLUMNS = (
    "implementation",
    "device",
    "dtype",
    "φ",
    "result",
    *GROUPS,
    "framework",
    "suite",
    "date",
)
DTYPE_ORDER = ("float32", "float64")
#: the headless browsers the screenshot may use, in order of preference
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LEGEND = (
    "pass: every check of the group passed; FAIL n: n checks failed; the number is the worst error "
    "as a fraction of its tolerance (pass ≤ 1; exact: no rounding error at all). n/a: not "
    "applicable, the implementation does not declare what the checks need (*: some of the group's "
    "checks). –: no check of the group ran. certified: the whole suite ran and passed. partial: "
    "the run left checks out, so it certifies nothing; everything that ran is shown. passed: "
    "this dtype passed, the implementation failed in another."
)


@dataclass(frozen=True)
class Cell:
    verdict: str  # "pass", "FAIL", "n/a", "skipped", or "" when no check of the group ran
    failed: int = 0
    ratio: float | None = None
    partly_not_applicable: bool = False

    def text(self) -> str:
        if self.verdict == "FAIL":
            return f"FAIL {self.failed}{ratio_text(self.ratio)}"
        if self.verdict == "pass":
            return f"pass{ratio_text(self.ratio)}{'*' if self.partly_not_applicable else ''}"
        return self.verdict or "–"


@dataclass(frozen=True)
class Row:
    implementation: str
    device: str
    dtype: str
    nonlinearities: str  # φ declared, "tanh, relu" (SPEC.md §1.1)
    result: str  # "certified", "partial", "FAIL", "passed" (failed in another dtype) or "error"
    framework: str
    suite: str
    date: str
    cells: tuple[Cell, ...]  # one per check group, GROUPS' order
    note: str  # what a partial run left out, why the backend could not be loaded, or its scope
    source: str  # the certificate's file name


def _cell(counts: dict | None) -> Cell:
    if counts is None:
        return Cell("")
    ratio = counts.get("worst_ratio")
    if counts["failed"]:
        return Cell("FAIL", counts["failed"], ratio)
    if counts["passed"]:
        return Cell("pass", 0, ratio, partly_not_applicable=bool(counts["n/a"]))
    return Cell("n/a" if counts["n/a"] else "skipped")


def _merged(*counts: dict | None) -> dict | None:
    """The counts of a dtype's checks and of the dtype-independent ones, as one cell."""
    present = [c for c in counts if c is not None]
    if not present:
        return None
    merged: dict[str, Any] = {k: sum(c[k] for c in present) for k in ("passed", "failed", "n/a")}
    merged["skipped"] = sum(c["skipped"] for c in present)
    ratios = [c["worst_ratio"] for c in present if "worst_ratio" in c]
    if ratios:
        merged["worst_ratio"] = max(ratios)
    return merged


def rows_of(report: dict, date: str, source: str) -> list[Row]:
    """A backend's report (one entry of a certificate) as one row per dtype it ran."""
    identity = {
        "implementation": report["backend"],
        "device": report.get("device", "?"),
        "framework": report.get("framework_version", ""),
        "suite": report.get("suite_version", ""),
        "date": date,
        "source": source,
    }
    if "tests" not in report:  # `rnnspec conform` could not load it: its one-line reason
        empty = tuple(Cell("") for _ in GROUPS)
        return [
            Row(**identity, dtype="–", nonlinearities="–", result="error", cells=empty,
                note=report["error"])
        ]  # fmt: skip
    phi = ", ".join(report.get("capabilities", {}).get("nonlinearities", ["tanh"]))
    counts = summarise(report)
    rows = []
    for dtype in report["dtypes"]:
        cells = tuple(
            _cell(_merged(counts.get((group, dtype)), counts.get((group, "any"))))
            for group in GROUPS
        )
        failed = any(cell.verdict == "FAIL" for cell in cells)
        result = (
            "FAIL" if failed
            else "partial" if report["left_out"]
            else "certified" if report["certified"]
            else "passed"  # this dtype passed; the backend failed in another
        )  # fmt: skip
        note = (
            "left out: " + "; ".join(report["left_out"])
            if result == "partial"
            else scope_text(report).removeprefix(", ").removeprefix("; ")
        )  # a plain function's certificate: what it covers and what it does not
        rows.append(
            Row(**identity, dtype=dtype, nonlinearities=phi, result=result, cells=cells, note=note)
        )
    return rows


@dataclass(frozen=True)
class Superseded:
    """A row left off the board: ``by`` is a newer one of the same implementation, device, dtype."""

    row: Row
    by: Row

    def text(self) -> str:
        r, by = self.row, self.by
        return (
            f"{r.source}: {r.implementation} on {r.device}, {r.dtype} ({r.date[:10]}) superseded "
            f"by {by.source} ({by.date[:10]}), the newer certificate of the same implementation, "
            f"device and dtype"
        )


def read(folder: Path) -> tuple[list[Row], list[Superseded]]:
    """Every row of every certificate in ``folder``, built-in backends first, in the loader's
    order; where two give the same implementation, device and dtype, the newer (the first in file
    name order, of two of one date), and the other among the superseded, which the board lists."""
    newest: dict[tuple[str, str, str], Row] = {}
    superseded: list[Superseded] = []
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        entries = data["backends"] if "backends" in data else [data]
        if not all(isinstance(e, dict) and "backend" in e for e in entries):
            raise ValueError(
                f"{path}: not a certificate (rnnspec conform --json, or pytest --report-json)"
            )
        for entry in entries:
            date = entry.get("date") or data.get("date") or "undated"
            for row in rows_of(entry, date, path.name):
                key = (row.implementation, row.device, row.dtype)
                if key not in newest:
                    newest[key] = row
                elif row.date > newest[key].date:
                    superseded.append(Superseded(newest[key], by=row))
                    newest[key] = row
                else:
                    superseded.append(Superseded(row, by=newest[key]))
    builtin = list(BUILTIN)

    def order(row: Row) -> tuple:
        name = row.implementation
        rank = builtin.index(name) if name in builtin else len(builtin)
        dtype = DTYPE_ORDER.index(row.dtype) if row.dtype in DTYPE_ORDER else len(DTYPE_ORDER)
        return rank, name, row.device, dtype

    return sorted(newest.values(), key=order), superseded


# --- the page ---------------------------------------------------------------------------------

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1rem;
       color: #1c1c1c; background: #fff; }
h1 { font-size: 1.4rem; margin: 0 0 .4rem; }
p { max-width: 62rem; }
.scroll { overflow-x: auto; max-width: 100%; border: 1px solid #d8d8d8; }
table { border-collapse: separate; border-spacing: 0; font-size: .82rem; white-space: nowrap; }
th, td { padding: .3rem .55rem; border-bottom: 1px solid #e6e6e6; text-align: left; }
thead th { background: #f3f3f3; vertical-align: bottom; }
thead th.group { white-space: normal; min-width: 4.5rem; }
.name { position: sticky; left: 0; background: #fff; border-right: 1px solid #d8d8d8; }
thead .name { background: #f3f3f3; }
td.pass { color: #0f5f26; background: #e7f5eb; }
td.FAIL, td.result-FAIL, td.result-error { color: #fff; background: #b3261e; font-weight: 600; }
td.n\\/a, td.skipped, td.none { color: #777; }
td.result-certified { color: #0f5f26; font-weight: 600; }
td.result-partial { color: #7a5100; background: #fff4d6; font-weight: 600; }
.notes { font-size: .85rem; }
@media (max-width: 640px) {
  body { margin: .5rem; font-size: 14px; }
  table { font-size: .75rem; }
  th, td { padding: .25rem .4rem; }
}
"""


def _sources(rows: list[Row], superseded: Sequence[Superseded]) -> str:
    """'7 certificates dated 2026-11-26 to 2026-11-27', and how many rows of which were superseded
    (every certificate read is counted, whether or not one of its rows is shown)."""
    dates = sorted(r.date[:10] for r in rows)
    span = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    count = len({r.source for r in rows} | {s.row.source for s in superseded})
    text = f"{count} certificate{'s' if count > 1 else ''} dated {span}"
    if superseded:
        older = sorted({s.row.source for s in superseded})
        text += (
            f"; {len(superseded)} row{'s' if len(superseded) > 1 else ''} of {', '.join(older)} "
            f"superseded by newer certificates (listed below the table)"
        )
    return text


def _classes(cell: Cell) -> str:
    return cell.verdict or "none"


def html_page(rows: list[Row], superseded: Sequence[Superseded] = ()) -> str:
    e = html.escape
    kind = {COLUMNS[0]: ' class="name"', **dict.fromkeys(GROUPS, ' class="group"')}
    header = "".join(f'<th scope="col"{kind.get(c, "")}>{e(c)}</th>' for c in COLUMNS)
    body = []
    notes = []
    for row in rows:
        result = e(row.result)
        if row.note:
            notes.append(row)
            result += f' <a href="#note-{len(notes)}">[{len(notes)}]</a>'
        cells = "".join(
            f'<td class="{e(_classes(c))}" data-group="{e(g)}">{e(c.text())}</td>'
            for g, c in zip(GROUPS, row.cells, strict=True)
        )
        body.append(
            f'<tr data-implementation="{e(row.implementation)}" data-device="{e(row.device)}" '
            f'data-dtype="{e(row.dtype)}" data-result="{e(row.result)}">'
            f'<th scope="row" class="name">{e(row.implementation)}</th>'
            f"<td>{e(row.device)}</td><td>{e(row.dtype)}</td><td>{e(row.nonlinearities)}</td>"
            f'<td class="result-{e(row.result)}">{result}</td>{cells}'
            f"<td>{e(row.framework)}</td><td>{e(row.suite)}</td><td>{e(row.date[:10])}</td></tr>"
        )
    note_items = "".join(
        f'<li id="note-{i}">{e(r.implementation)} on {e(r.device)}, {e(r.dtype)}: {e(r.note)}</li>'
        for i, r in enumerate(notes, 1)
    )
    superseded_items = (
        '<ul class="notes superseded">'
        + "".join(f"<li>{e(item.text())}</li>" for item in superseded)
        + "</ul>"
        if superseded
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{TITLE}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{TITLE}</h1>
<p>What each implementation of the vanilla RNN's BPTT gradients passed of the rnnspec conformance
suite, on each device and in each dtype: one row per implementation × device × dtype, one column
per check group. Built by <code>rnnspec scoreboard</code> from {e(_sources(rows, superseded))}.</p>
<div class="scroll">
<table id="scoreboard">
<thead><tr>{header}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
</div>
<p class="legend">{e(LEGEND)}</p>
<ol class="notes">{note_items}</ol>
{superseded_items}
</body>
</html>
"""


def markdown(rows: list[Row], superseded: Sequence[Superseded] = ()) -> str:
    """The same table as Markdown (GitHub's pipe tables), for the README's readers."""
    head = list(COLUMNS)
    lines = [
        f"# {TITLE}",
        "",
        f"Built by `rnnspec scoreboard` from {_sources(rows, superseded)}; the same table as "
        "[index.html](index.html).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    notes = []
    for row in rows:
        result = f"**{row.result}**" if row.result in ("FAIL", "error") else row.result
        if row.note:
            notes.append(row)
            result += f" [{len(notes)}]"
        cells = [f"**{c.text()}**" if c.verdict == "FAIL" else c.text() for c in row.cells]
        fields = [row.implementation, row.device, row.dtype, row.nonlinearities, result, *cells]
        fields += [row.framework, row.suite, row.date[:10]]
        lines.append("| " + " | ".join(f.replace("|", "\\|") for f in fields) + " |")
    lines += ["", LEGEND, ""]
    lines += [f"{i}. {r.implementation} on {r.device}, {r.dtype}: {r.note}" for i, r in
              enumerate(notes, 1)]  # fmt: skip
    if superseded:
        lines += ["", *(f"- {item.text()}" for item in superseded)]
    return "\n".join(lines).rstrip() + "\n"


def build(folder: Path, into: Path) -> tuple[list[Row], list[Superseded]]:
    """Write index.html and scoreboard.md into ``into`` from the certificates in ``folder``."""
    rows, superseded = read(folder)
    if not rows:
        raise ValueError(f"{folder}: no certificates (*.json) there")
    into.mkdir(parents=True, exist_ok=True)
    (into / "index.html").write_text(html_page(rows, superseded))
    (into / "scoreboard.md").write_text(markdown(rows, superseded))
    return rows, superseded


def browser() -> str | None:
    """The headless browser found on PATH (Debian's chromium first), or None."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def headless(page: Path, *options: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the browser headless on ``page`` (a file) with ``options`` (e.g. --dump-dom), in a
    profile of its own. --no-sandbox: the sandbox cannot start as root, as in containers."""
    found = browser()
    if found is None:
        raise FileNotFoundError(f"no headless browser found on PATH (tried {', '.join(BROWSERS)})")
    with tempfile.TemporaryDirectory() as profile:
        command = [
            found, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--hide-scrollbars", f"--user-data-dir={profile}", *options, page.resolve().as_uri(),
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)


def screenshot(page: Path, png: Path, rows: int, width: int = 2700) -> None:
    """The page as the browser renders it, ``width`` pixels wide and tall enough for its table of
    ``rows`` rows and the legend, into ``png``."""
    height = 330 + 31 * rows
    headless(page, f"--screenshot={png.resolve()}", f"--window-size={width},{height}")


# --- the framework layers' tables -------------------------------------------------------------

#: the check groups that measure an error, with the framework-layers README's column names
LAYERS_COLUMNS = {
    "forward & loss": "forward & loss",
    "form A (per step)": "form A",
    "form B (BPTT)": "form B",
    "autodiff": "autodiff",
    "golden vectors": "golden",
    "errata": "errata",
    "edge cases": "edge cases",
    "properties": "properties",
    "masks": "masks",
    "stacks": "stacks",
    "layer": "layer alone",
}


def layers_tables(folder: Path, names: list[str]) -> str:
    """From ``folder``/NAME.json (`rnnspec conform --backend NAME --json`) for each of ``names``:
    the verdict and counts per backend, then its worst error ÷ tolerance per group and dtype."""
    verdicts = [
        "| backend | dtypes | checks | passed | failed | n/a | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = [
        "| backend | dtype | " + " | ".join(LAYERS_COLUMNS.values()) + " |",
        "|---|---|" + "---|" * len(LAYERS_COLUMNS),
    ]
    for name in names:
        (report,) = json.loads((Path(folder) / f"{name}.json").read_text())["backends"]
        counts = report["outcomes"]
        verdict = "certified" if report["certified"] else "not certified"
        verdicts.append(
            f"| `{name}` | {' + '.join(report['dtypes'])} | {sum(counts.values())} | "
            f"{counts.get('passed', 0)} | {counts.get('failed', 0)} | {counts.get('n/a', 0)} | "
            f"{verdict} |"
        )
        cells = summarise(report)
        for dtype in report["dtypes"]:
            worst = [cells.get((group, dtype), {}).get("worst_ratio") for group in LAYERS_COLUMNS]
            texts = ["–" if ratio is None else f"{ratio:.2g}" for ratio in worst]
            ratios.append(f"| `{name}` | {dtype} | " + " | ".join(texts) + " |")
    return "\n".join(verdicts) + "\n\n" + "\n".join(ratios)


if __name__ == "__main__":
    print(layers_tables(Path(sys.argv[1]), sys.argv[2:]))
