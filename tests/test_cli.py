"""`rnnspec conform`: the table, the exit code, the JSON certificate and the failure report."""

import json

from click.testing import CliRunner

from rnnspec.cli import main
from rnnspec.conformance import SUITE_VERSION


def test_conform_certifies_numpy(tmp_path):
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        main,
        ["conform", "--backend", "numpy", "--json", str(report), "--", "-k", "golden or errata"],
    )
    assert result.exit_code == 0, result.output
    assert "golden vectors" in result.output and "certified" in result.output
    data = json.loads(report.read_text())
    assert data["suite_version"] == SUITE_VERSION
    (numpy_report,) = data["backends"]
    assert numpy_report["backend"] == "numpy" and numpy_report["device"] == "cpu"
    checks = {(c["dtype"], c["group"]): c for c in numpy_report["checks"]}
    golden32 = checks[("float32", "golden vectors")]
    assert golden32["passed"] > 0 and golden32["failed"] == 0 and 0 < golden32["worst_ratio"] <= 1


def test_conform_fails_a_wrong_backend_and_shows_how_to_reproduce(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "conform",
            "--backend",
            "tests.wrong_backends:missing_transpose",
            "--dtype",
            "float64",
            "--",
            "-k",
            "form_b and basic",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "reproduce:" in result.output
    assert "certified" not in result.output


def test_unknown_backend_is_a_clear_failure():
    result = CliRunner().invoke(main, ["conform", "--backend", "no_such_backend"])
    assert result.exit_code == 1
    assert "unknown backend 'no_such_backend'" in result.output


def test_several_backends_add_the_cross_backend_matrix(tmp_path):
    report = tmp_path / "report.json"
    wrong = "tests.wrong_backends:missing_transpose"
    result = CliRunner().invoke(
        main,
        ["conform", "--backend", "numpy", "--backend", wrong, "--dtype", "float64",
         "--json", str(report), "--", "-k", "protocol"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # the suite's subset passes, the matrix does not
    assert "cross-backend agreement" in result.output
    rows = json.loads(report.read_text())["cross_backend"]
    worst = {row["tensor"].split("/", 1)[1]: row["ratio"] for row in rows}  # without the case
    assert worst["gradients/Grads.W"] > 2 and worst["forward/Forward.h"] <= 2
