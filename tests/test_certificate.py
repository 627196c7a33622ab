"""What `rnnspec conform` prints, from synthetic reports: tables that fit 80 columns, and a verdict
that certifies only a whole run that passed."""

from rich.console import Console

from rnnspec.conformance import certificate
from rnnspec.conformance.report import GROUPS


def _report(backend, outcome="passed", certified=True, left_out=()):
    tests = [
        {"id": f"{group}-{dtype}", "title": group, "group": group, "dtype": dtype,
         "outcome": outcome, "worst_ratio": 0.039}
        for group in GROUPS for dtype in ("float32", "float64", "any")
    ]  # fmt: skip
    tests.append({"id": "x", "title": "x", "group": "autodiff", "dtype": "float32",
                  "outcome": "n/a", "message": f"autodiff: n/a — {backend} has none"})  # fmt: skip
    return {
        "backend": backend, "device": "cuda:0", "framework_version": f"{backend} 1.0",
        "dtypes": ["float32", "float64"], "outcomes": {outcome: len(tests)},
        "certified": certified, "left_out": list(left_out), "tests": tests,
    }  # fmt: skip


def test_the_table_fits_80_columns_with_four_backends():
    console = Console(width=80, record=True, color_system=None)
    reports = [_report(name) for name in ("numpy", "torch", "jax", "tensorflow")]
    console.print(certificate.table(reports))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert text.count("pass 0.039") == 4 * len(GROUPS) * 3 - 4 + 4  # every cell whole
    assert "dtype/shape/device" in text and "tensorflow" in text


def test_five_backends_make_two_tables_that_each_fit_80_columns():
    console = Console(width=80, record=True, color_system=None)
    reports = [_report(name) for name in ("numpy", "torch", "jax", "tensorflow", "mlx")]
    for table in certificate.tables(reports):
        console.print(table)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text and text.count("conformance") == 2
    assert "tensorflow" in text and "mlx" in text


def test_exact_agreement_is_said_so():
    cell = {"passed": 3, "failed": 0, "skipped": 0, "n/a": 0, "worst_ratio": 0.0}
    assert "exact" in certificate.cell_text(cell)


def test_only_a_whole_passing_run_is_certified():
    code, lines = certificate.verdict([_report("numpy")], agreement_ok=True)
    assert code == 0 and lines[0].startswith("[green]certified")
    assert "numpy (numpy 1.0) on cuda:0, float32 + float64" in lines[0]
    code, lines = certificate.verdict(
        [_report("numpy", certified=False, left_out=["-k 'golden'"])], agreement_ok=True
    )
    assert code == 0 and "not a certificate" in lines[0] and "-k 'golden'" in lines[0]
    code, lines = certificate.verdict([_report("numpy", outcome="failed")], agreement_ok=True)
    assert code == 1 and "FAILED" in lines[0]
    code, lines = certificate.verdict([_report("numpy")], agreement_ok=False)
    assert code == 1
