"""`rnnspec flow`: the per-lag table, the regime, and the plot (SPEC.md §10; docs/gradient-flow.md)."""

import pytest
from click.testing import CliRunner

from rnnspec.cli import main


def test_table_and_regime():
    result = CliRunner().invoke(main, ["flow", "--T", "12", "--H", "6", "--max-lag", "5"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert len(rows) == 5 and rows[0].split("│")[1].strip() == "0"
    assert "ρ(W) = 0.9" in result.output and "σ₁(W) = " in result.output


def test_vanishing_regime_when_the_largest_singular_value_is_below_one():
    result = CliRunner().invoke(main, ["flow", "--T", "8", "--H", "4", "--radius", "0.2"])
    assert result.exit_code == 0, result.output
    assert "vanishing: σ₁(W) < 1 is sufficient" in result.output


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "flow.png"
    result = CliRunner().invoke(
        main, ["flow", "--T", "10", "--H", "4", "--max-lag", "4", "--plot", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_names_the_extra(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    result = CliRunner().invoke(main, ["flow", "--T", "4", "--plot", str(tmp_path / "f.png")])
    assert result.exit_code == 1 and "--plot needs matplotlib: pip install" in result.output
    assert not (tmp_path / "f.png").exists()
