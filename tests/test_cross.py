"""Cross-backend agreement (the `cross` nox session installs every framework): all installed
backends, pair by pair, on the same inputs, judged by the tolerance policy."""

import pytest
from rich.console import Console
from rich.table import Table

from rnnspec import backends
from rnnspec.conformance import cross
from tests import wrong_backends


def _table(rows, dtype):
    worst = cross.worst_by_pair(rows)
    table = Table(title=f"cross-backend agreement, {dtype}: worst difference / tolerance bound")
    pairs = sorted({pair for pair, _, _ in worst})
    tensors = sorted({tensor for _, _, tensor in worst})
    table.add_column("tensor")
    for pair in pairs:
        table.add_column(pair)
    for tensor in tensors:
        cells = [worst.get((pair, dtype, tensor)) for pair in pairs]
        table.add_row(tensor, *("" if c is None else f"{c['ratio']:.2g}" for c in cells))
    return table


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_pair_of_installed_backends_agrees(dtype, capsys):
    names = backends.available()
    if len(names) < 2:
        pytest.skip(f"only {names} installed: nothing to compare")
    by_backend = {name: cross.results(backends.load(name), dtype) for name in names}
    rows = cross.matrix(by_backend, dtype)
    with capsys.disabled():
        Console(width=160).print(_table(rows, dtype))
    bad = [row for row in rows if not row["ratio"] <= cross.PAIR_LIMIT]
    assert not bad, bad[:5]


def test_the_matrix_catches_a_wrong_backend():
    by_backend = {
        "numpy": cross.results(backends.load("numpy"), "float64"),
        "wrong": cross.results(wrong_backends.missing_transpose(), "float64"),
    }
    rows = cross.matrix(by_backend, "float64")
    assert max(row["ratio"] for row in rows if "Grads.W" in row["tensor"]) > cross.PAIR_LIMIT
    assert all(row["ratio"] <= cross.PAIR_LIMIT for row in rows if "forward" in row["tensor"])
