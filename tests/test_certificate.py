"""What `rnnspec conform` prints, from synthetic reports: tables that fit 80 columns, and a verdict
that certifies only a whole run that passed."""

from rich.console import Console

from rnnspec.conformance import certificate
from rnnspec.conformance.plugin import GROUPS


def _report(backend, outcome="passed", left_out=()):
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
        "certified": outcome == "passed" and not left_out, "left_out": list(left_out), "tests": tests,
        "duration_s": 1.5, "summary": f"{len(tests)} {outcome} in 1.5 s",
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


def _verdict(*reports, agreement=()):
    return certificate.verdict(certificate.build(list(reports), list(agreement)))


def test_only_a_whole_passing_run_is_certified():
    code, lines = _verdict(_report("numpy"))
    assert code == 0 and lines[0].startswith("[green]certified")
    assert "numpy (numpy 1.0) on cuda:0, float32 + float64" in lines[0]
    assert certificate.build([_report("numpy")], [])["certified"] is True
    partial = _report("numpy", left_out=["-k 'golden'"])
    code, lines = _verdict(partial)
    assert code == 0 and "not a certificate" in lines[1] and "-k 'golden'" in lines[2]
    assert certificate.build([partial], [])["certified"] is False
    code, lines = _verdict(_report("numpy", outcome="failed"))
    assert code == 1 and "FAILED" in lines[0]
    code, lines = _verdict({"backend": "torch", "error": "needs torch"})
    assert code == 1 and "FAILED" in lines[0] and "torch" in lines[0]
    apart = {
        "pair": "numpy vs torch",
        "dtype": "float32",
        "tensor": "basic/forward/h",
        "ratio": 3.0,
    }
    code, lines = _verdict(_report("numpy"), _report("torch"), agreement=[apart])
    assert code == 1 and "cross-backend agreement" in lines[0]
    assert certificate.build([_report("numpy"), _report("torch")], [apart])["certified"] is False


def test_the_verdict_is_the_reports_own():
    """A report's "certified" is status() of what it holds: a left-out check makes it partial."""
    whole = _report("numpy")
    assert certificate.status(whole) == "certified"
    assert certificate.status({**whole, "left_out": ["2 checks skipped"]}) == "partial"
    assert certificate.status({**whole, "outcomes": {"passed": 3, "failed": 1}}) == "failed"
    assert certificate.status({**whole, "tests": []}) == "partial"


def test_the_verdicts_lines_fit_80_columns():
    """A whole run's certificate of every built-in backend, and a partial run's, as printed."""
    console = Console(width=80, record=True, color_system=None)
    names = ("numpy", "torch", "jax", "tensorflow", "mlx")
    whole = [{**_report(n), "framework_version": f"{n} 2.21.0.dev20260101"} for n in names]
    partial = [{**whole[3], "left_out": ["-k 'golden or errata'", "1061 checks deselected"]}]
    for reports in (whole, partial):
        for line in _verdict(*reports)[1]:
            console.print(line)
    text = console.export_text()
    assert text.count("certified: ") == 5 and "partial run: tensorflow" in text
    assert max(len(line) for line in text.splitlines()) <= 80, text


def test_failures_are_shown_distinct_and_the_most_specific_first():
    """Issue 28: for ∇W transposed the first failure shown was headed E1, whose check fails with
    everything else, and the five shown were float32/float64 pairs of 2.5 checks. One of each
    check first; the check of the erratum its diagnosis matched before all; diagnosed ones next."""
    e3 = "  diagnosis: matches erratum E3: W for Wᵀ in the backward recursion (SPEC.md §5)"

    def failed(test_id: str, diagnosed: bool) -> tuple[str, dict]:
        return "mine", {
            "id": test_id,
            "message": "relative error ...\n" + (e3 if diagnosed else ""),
        }

    suite_order = [
        failed("rnnspec.conformance.test_errata::test_e1_soft_target_factor[float32]", True),
        failed("rnnspec.conformance.test_errata::test_e1_soft_target_factor[float64]", True),
        failed("rnnspec.conformance.test_errata::test_e3_transposes[float32]", True),
        failed("rnnspec.conformance.test_errata::test_e3_transposes[float64]", True),
        failed("rnnspec.conformance.test_forward::test_outputs[float32-basic]", False),
        failed("rnnspec.conformance.test_form_b::test_gradients[float32-basic]", True),
        failed("rnnspec.conformance.test_form_b::test_gradients[float32-soft]", True),
    ]
    shown = [test["id"].split("::")[1] for _, test in certificate.ordered_failures(suite_order)]
    assert shown == [
        "test_e3_transposes[float32]",  # its own erratum diagnosed
        "test_e1_soft_target_factor[float32]",  # diagnosed, in the suite's order
        "test_gradients[float32-basic]",
        "test_outputs[float32-basic]",  # no diagnosis
        "test_e3_transposes[float64]",  # then the same checks again, in the same order
        "test_e1_soft_target_factor[float64]",
        "test_gradients[float32-soft]",
    ]
