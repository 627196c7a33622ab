"""The scoreboard (`rnnspec scoreboard`, rnnspec.scoreboard) as a browser shows it: headless Chromium
renders the page built from synthetic certificates, and the rendered table's rows and cells are
checked against the certificates, counted here afresh; the page needs nothing from a network and
fits a phone's width; the committed page, docs/scoreboard/, lists every built-in backend in both
dtypes, and its Markdown twin says the same."""

import html
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rnnspec import scoreboard
from rnnspec.backends import BUILTIN
from rnnspec.conformance.plugin import GROUPS

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "scoreboard"
RNNSPEC = Path(sys.executable).parent / "rnnspec"

needs_browser = pytest.mark.skipif(
    scoreboard.browser() is None,
    reason="no headless Chromium on PATH (Debian: apt-get install chromium)",
)


def _test(group, dtype, outcome, ratio=None, message=None) -> dict:
    test = {"id": f"{group}-{dtype}-{outcome}", "title": group, "group": group, "dtype": dtype}
    test["outcome"] = outcome
    if ratio is not None:
        test["worst_ratio"] = ratio
    if message:
        test["message"] = message
    return test


def _report(backend, device, dtypes, *, special=(), certified=True, left_out=(), date="") -> dict:
    """Every group passes in each dtype (worst ratio 0.039) and in 'any' (exact), but ``special``."""
    tests = [_test(g, d, "passed", 0.039) for g in GROUPS for d in dtypes]
    tests += [_test(g, "any", "passed", 0.0) for g in GROUPS]
    tests += list(special)
    return {
        "suite_version": "0.2.0", "date": date, "backend": backend, "device": device,
        "framework_version": f"{backend} 1.2.3", "dtypes": list(dtypes),
        "certified": certified, "left_out": list(left_out), "tests": tests,
    }  # fmt: skip


@pytest.fixture
def certificates(tmp_path) -> Path:
    """Two files in the two formats: `rnnspec conform --json` with three backends (one that passes
    with autodiff n/a, one that fails, one that could not be loaded) and a plugin --report-json
    of a partial run."""
    folder = tmp_path / "certificates"
    folder.mkdir()
    failing = [_test("form B (BPTT)", "float64", "failed", 37.2, "Grads.W off")] * 2
    failing.append(_test("properties", "float32", "skipped", message="hypothesis missing"))
    na = [_test("autodiff", d, "n/a", message="autodiff: n/a — numpy has none") for d in
          ("float32", "float64")]  # fmt: skip
    na.append(_test("edge cases", "any", "passed", 0.5))  # a dtype-free check counts in both rows
    conform = {
        "date": "2026-11-20T10:00:00+00:00",
        "backends": [
            _report("numpy", "cpu", ("float32", "float64"), special=na),
            _report("fastrnn", "cuda:0", ("float32", "float64"), special=failing, certified=False),
            {"backend": "ghost", "error": "backend 'ghost' needs ghostlib, which is not installed"},
        ],
    }
    (folder / "conform.json").write_text(json.dumps(conform))
    partial = _report("torch", "cpu", ("float32",), certified=False, date="2026-11-21T09:00:00+00:00",
                      left_out=["dtype float64 not checked (--dtype)"])  # fmt: skip
    (folder / "partial.json").write_text(json.dumps(partial))
    return folder


def _expected_cell(tests: list[dict], group: str, dtype: str) -> str:
    """The cell, counted from the certificate: its dtype's checks and the dtype-free ones."""
    mine = [t for t in tests if t["group"] == group and t["dtype"] in (dtype, "any")]
    outcomes = [t["outcome"] for t in mine]
    ratios = [t["worst_ratio"] for t in mine if "worst_ratio" in t]
    worst = max(ratios) if ratios else None
    number = "" if worst is None else " exact" if worst == 0 else f" {worst:.2g}"
    if "failed" in outcomes:
        return f"FAIL {outcomes.count('failed')}{number}"
    if "passed" in outcomes:
        return "pass" + number + ("*" if "n/a" in outcomes else "")
    return "n/a" if "n/a" in outcomes else "skipped" if outcomes else "–"


class _Table(HTMLParser):
    """The rendered table's body: per row, its data- attributes and its cells' texts."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []
        self.in_body = False
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.append({"attrs": dict(attrs), "cells": []})
        elif tag in ("td", "th") and self.in_body:
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.in_body = False
        elif tag in ("td", "th") and self.cell is not None:
            self.rows[-1]["cells"].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _rendered_rows(page: Path) -> list[dict]:
    dom = scoreboard.headless(page, "--dump-dom").stdout
    table = _Table()
    table.feed(dom)
    assert table.rows, dom[-2000:]
    return table.rows


COLUMNS = scoreboard.COLUMNS


def _by_name(row: dict) -> dict[str, str]:
    return dict(zip(COLUMNS, row["cells"], strict=True))


@needs_browser
def test_the_rendered_table_says_what_the_certificates_say(certificates, tmp_path):
    into = tmp_path / "board"
    done = subprocess.run(
        [str(RNNSPEC), "scoreboard", str(certificates), "--into", str(into)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [_by_name(row) for row in _rendered_rows(into / "index.html")]
    keys = [(r["implementation"], r["device"], r["dtype"]) for r in rows]
    assert keys == [  # built-ins first, in the loader's order; then the others by name
        ("numpy", "cpu", "float32"),
        ("numpy", "cpu", "float64"),
        ("torch", "cpu", "float32"),
        ("fastrnn", "cuda:0", "float32"),
        ("fastrnn", "cuda:0", "float64"),
        ("ghost", "?", "–"),
    ]
    reports = {r["backend"]: r for f in certificates.glob("*.json") for r in
               json.loads(f.read_text()).get("backends", [json.loads(f.read_text())])}  # fmt: skip
    for row in rows:
        report = reports[row["implementation"]]
        if "tests" not in report:
            assert row["result"] == "error [2]"
            assert [row[g] for g in GROUPS] == ["–"] * len(GROUPS)
            continue
        assert row["framework"] == report["framework_version"]
        assert row["suite"] == report["suite_version"]
        assert row["date"] == (report["date"] or "2026-11-20T10:00:00+00:00")[:10]
        for group in GROUPS:
            want = _expected_cell(report["tests"], group, row["dtype"])
            assert row[group] == want, (row["implementation"], row["dtype"], group)
    results = {key: row["result"] for key, row in zip(keys, rows, strict=True)}
    assert results[("numpy", "cpu", "float64")] == "certified"
    assert rows[1]["edge cases"] == "pass 0.5" and rows[1]["autodiff"] == "pass 0.039*"
    assert results[("fastrnn", "cuda:0", "float32")] == "passed"  # failed in float64 only
    assert results[("fastrnn", "cuda:0", "float64")] == "FAIL"
    assert results[("torch", "cpu", "float32")] == "partial [1]"
    markdown = (into / "scoreboard.md").read_text()
    assert "dtype float64 not checked (--dtype)" in markdown
    assert "**FAIL 2 37**" in markdown


def test_a_superseded_certificate_is_named_not_dropped(certificates, tmp_path):
    """Issue 28: a folder of four certificates made a board "from 2 certificates", two older ones
    of the same backends dropped without a word. The board counts every certificate it read and
    names each row it left off, with the newer one that replaced it; so does the command."""
    older = _report("torch", "cpu", ("float32",), date="2026-11-19T09:00:00+00:00")
    (certificates / "older.json").write_text(json.dumps(older))
    into = tmp_path / "board"
    done = subprocess.run(
        [str(RNNSPEC), "scoreboard", str(certificates), "--into", str(into)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = "older.json: torch on cpu, float32 (2026-11-19) superseded by partial.json (2026-11-21)"
    assert said in " ".join(done.stdout.split()), done.stdout
    for page in ("scoreboard.md", "index.html"):
        text = " ".join((into / page).read_text().split())
        assert "from 3 certificates dated 2026-11-20 to 2026-11-21; 1 row of older.json" in text
        assert said in text, page


def test_a_folder_without_certificates_is_refused(tmp_path):
    (tmp_path / "notes.json").write_text(json.dumps({"hello": 1}))
    done = subprocess.run(
        [str(RNNSPEC), "scoreboard", str(tmp_path), "--into", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "not a certificate" in done.stderr and "Traceback" not in done.stderr


def test_the_page_fetches_nothing(certificates, tmp_path):
    scoreboard.build(certificates, tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page, re.I)
    assert "://" not in page and "@import" not in page and "url(" not in page


@needs_browser
def test_the_page_fits_a_phone_screen(certificates, tmp_path):
    """At 360 px wide the page itself does not scroll sideways; the table scrolls in its box.
    Headless Chromium's window is at least 500 px wide: the page is shown in a 360 px frame."""
    scoreboard.build(certificates, tmp_path)
    page = (tmp_path / "index.html").read_text()
    probe = tmp_path / "probe.html"  # the page in a phone-wide frame; a script notes its layout
    probe.write_text(
        '<!DOCTYPE html><html><body><iframe id="phone" style="width:360px;height:800px;border:0" '
        f'srcdoc="{html.escape(page)}"></iframe><script>window.onload = () => {{'
        "const d = document.getElementById('phone').contentDocument;"
        "document.body.dataset.layout = JSON.stringify({"
        "page: d.documentElement.scrollWidth, viewport: d.documentElement.clientWidth, "
        "table: d.querySelector('table').scrollWidth, "
        "box: d.querySelector('.scroll').clientWidth});};</script></body></html>"
    )
    dom = scoreboard.headless(probe, "--dump-dom", "--virtual-time-budget=5000").stdout
    layout = json.loads(html.unescape(re.search(r'data-layout="([^"]+)"', dom)[1]))
    assert layout["viewport"] == 360, layout
    assert layout["page"] <= layout["viewport"], layout
    assert layout["table"] > layout["box"], layout  # so it scrolls inside its box


def _markdown_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")][1:]  # past the header
    return [[cell.strip().replace("**", "") for cell in line[2:-2].split(" | ")] for line in lines]


@needs_browser
def test_the_committed_page_lists_every_builtin_backend_in_both_dtypes():
    """docs/scoreboard/ as `nox -s scoreboard` built it on the project's machine."""
    rows = [_by_name(row) for row in _rendered_rows(COMMITTED / "index.html")]
    listed = {(r["implementation"], r["dtype"]) for r in rows}
    missing = [(n, d) for n in BUILTIN for d in ("float32", "float64") if (n, d) not in listed]
    assert not missing, missing
    twin = _markdown_rows((COMMITTED / "scoreboard.md").read_text())
    rendered = [[re.sub(r" \[\d+\]$", "", c) for c in row.values()] for row in rows]
    assert [[re.sub(r" \[\d+\]$", "", c) for c in row] for row in twin] == rendered


def test_the_layers_tables_count_each_certificate(tmp_path):
    """`python -m rnnspec.scoreboard FOLDER NAME...` (nox -s layers): per backend its counts and
    verdict, then per dtype each group's worst ratio over that dtype's checks, '–' where none."""
    special = [
        _test("form B (BPTT)", "float64", "passed", 0.25),
        _test("edge cases", "any", "passed", 0.5),  # not of a dtype: in neither row
        _test("masks", "float32", "n/a", message="masks: n/a"),
    ]
    reports = {
        "one": _report("one", "cpu", ("float32", "float64"), special=special),
        "two": _report("two", "cpu", ("float32",), certified=False),
    }
    for name, report in reports.items():
        outcomes: dict[str, int] = {}
        for test in report["tests"]:
            outcomes[test["outcome"]] = outcomes.get(test["outcome"], 0) + 1
        certificate = {"backends": [{**report, "outcomes": outcomes}]}
        (tmp_path / f"{name}.json").write_text(json.dumps(certificate))
    done = subprocess.run(
        [sys.executable, "-m", "rnnspec.scoreboard", str(tmp_path), "one", "two"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    verdicts, ratios = (_markdown_rows("| x |\n" + table) for table in done.stdout.split("\n\n"))
    checks = 3 * len(GROUPS)  # every group in float32, float64 and 'any'
    assert verdicts[1:] == [
        ["`one`", "float32 + float64", str(checks + 3), str(checks + 2), "0", "1", "certified"],
        ["`two`", "float32", str(checks - len(GROUPS)), str(checks - len(GROUPS)), "0", "0",
         "not certified"],
    ]  # fmt: skip
    columns = ratios[0][2:]
    cells = {(row[0], row[1]): dict(zip(columns, row[2:], strict=True)) for row in ratios[1:]}
    assert list(cells) == [("`one`", "float32"), ("`one`", "float64"), ("`two`", "float32")]
    assert cells["`one`", "float64"]["form B"] == "0.25"
    assert set(cells["`one`", "float32"].values()) == {"0.039"}
    assert set(cells["`two`", "float32"].values()) == {"0.039"}


def test_a_scoped_certificate_says_what_it_did_not_check():
    """A plain function's certificate (rnnspec.check) is on the board with its scope in words."""
    from rnnspec.scoreboard import rows_of

    report = {
        "backend": "my_bptt",
        "device": "cpu",
        "framework_version": "numpy 2",
        "suite_version": "0.3.0",
        "dtypes": ["float32"],
        "left_out": [],
        "certified": True,
        "scope": {"for": ["class-index targets"], "not checked": ["soft targets", "∇x"]},
        "tests": [{"id": "a", "group": "form B (BPTT)", "dtype": "float32", "outcome": "passed"}],
    }
    (row,) = rows_of(report, "2026-12-02", "my_bptt.json")
    assert row.result == "certified"
    assert row.note == "for class-index targets; not checked: soft targets, ∇x"
    (full,) = rows_of({**report, "scope": {"for": [], "not checked": []}}, "2026-12-02", "x.json")
    assert full.note == ""
