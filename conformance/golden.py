"""Golden vectors: spec.reference's answers for a few cases, committed as small .npz files so that
every backend, each in its own environment, is compared on the very same numbers.

Regenerate them (only when the cases or the reference change on purpose) from a checkout with
``rnnspec vectors``; ``rnnspec vectors --into DIR`` writes fresh ones anywhere.
"""

from pathlib import Path

import numpy as np

from rnnspec.conformance.cases import CASES, MASKED_CASES
from rnnspec.conformance.oracle import expected

VECTORS = Path(__file__).parent / "vectors"
GOLDEN_CASES = ("basic", "soft", "zero_h0", "T1", "H1", "K2", "large_logits", "saturated")
#: with an ``input.mask`` (SPEC.md §9), checked by the mask checks
MASKED_GOLDEN_CASES = ("masked_right", "masked_gaps")
METHODS = ("forward", "loss", "gradients")


def _entries(name: str) -> dict[str, np.ndarray]:
    case = {**CASES, **MASKED_CASES}[name]
    params, x, y, h0 = case.arrays("float64")
    entries = {f"input.params.{f}": getattr(params, f) for f in params._fields}
    entries.update({"input.x": x, "input.y": y})
    if h0 is not None:
        entries["input.h0"] = h0
    if case.padding is not None:
        entries["input.mask"] = case.mask()
    calls = [(m, None) for m in METHODS] + [("step_gradients", t) for t in range(1, case.T + 1)]
    for method, t in calls:
        want = expected(case, method, t)
        key = method if t is None else f"{method}.{t}"
        entries[f"{key}.names"] = np.array(want.names)
        for name_, value, kappa in zip(want.names, want.values, want.kappas):
            entries[f"{key}.{name_}"] = value
            entries[f"{key}.{name_}.kappa"] = np.asarray(kappa)
    return entries


def checkout_vectors() -> Path | None:
    """The checkout's conformance/vectors/ when rnnspec runs from a checkout (editable or staged),
    None for an installed package, whose vectors are never rewritten."""
    vectors = VECTORS.resolve()
    pyproject = vectors.parent.parent / "pyproject.toml"
    if pyproject.is_file() and 'name = "rnnspec"' in pyproject.read_text():
        return vectors
    return None


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in GOLDEN_CASES + MASKED_GOLDEN_CASES:
        path = directory / f"{name}.npz"
        np.savez_compressed(path, **_entries(name))  # type: ignore[arg-type]
        paths.append(path)
    return paths


def load(name: str, directory: Path = VECTORS) -> dict[str, np.ndarray]:
    with np.load(directory / f"{name}.npz") as data:
        return dict(data)
