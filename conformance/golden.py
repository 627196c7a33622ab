"""Golden vectors: spec.reference's answers for a few cases, committed as small .npz files so that
every backend, each in its own environment, is compared on the very same numbers.

Regenerate them (only when the cases or the reference change on purpose) from a checkout with
``rnnspec vectors``; ``rnnspec vectors --into DIR`` writes fresh ones anywhere.
"""

from pathlib import Path

import numpy as np

from rnnspec.conformance.cases import STACKED_CASES, all_cases
from rnnspec.conformance.oracle import expected
from rnnspec.spec import Params

VECTORS = Path(__file__).parent / "vectors"
GOLDEN_CASES = ("basic", "soft", "zero_h0", "T1", "H1", "K2", "large_logits", "saturated")
#: with an ``input.mask`` (SPEC.md §9), checked by the mask checks
MASKED_GOLDEN_CASES = ("masked_right", "masked_gaps")
#: one per configuration of the stacked and bidirectional networks (SPEC.md §12), masks included,
#: checked by the stack checks; with ``input.model.*``
STACKED_GOLDEN_CASES = tuple(STACKED_CASES)
#: every committed file, by case name
ALL_GOLDEN_CASES = GOLDEN_CASES + MASKED_GOLDEN_CASES + STACKED_GOLDEN_CASES
METHODS = ("forward", "loss", "gradients")


def _entries(name: str) -> dict[str, np.ndarray]:
    case = all_cases()[name]
    params, x, y, h0 = case.arrays("float64")
    entries: dict[str, np.ndarray] = {}
    for field, value in zip(params._fields, params):
        if isinstance(value, tuple):  # a stack's cells, input.params.U.0, .1, ...
            entries.update({f"input.params.{field}.{i}": cell for i, cell in enumerate(value)})
        else:
            entries[f"input.params.{field}"] = value
    if case.model().stacked:
        model = case.model()
        entries.update({"input.model.layers": np.asarray(model.layers),
                        "input.model.bidirectional": np.asarray(model.bidirectional)})  # fmt: skip
    entries.update({"input.x": x, "input.y": y})
    if h0 is not None:
        entries["input.h0"] = h0
    if (mask := case.mask()) is not None:  # a padded case
        entries["input.mask"] = mask
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
    for name in ALL_GOLDEN_CASES:
        path = directory / f"{name}.npz"
        np.savez_compressed(path, **_entries(name))  # type: ignore[arg-type]
        paths.append(path)
    return paths


def load(name: str, directory: Path = VECTORS) -> dict[str, np.ndarray]:
    with np.load(directory / f"{name}.npz") as data:
        return dict(data)


def params_of(data: dict[str, np.ndarray], native) -> Params:
    """The golden inputs' Params, each array through ``native``; a stack's cells as tuples."""

    def field(name: str):
        if f"input.params.{name}" in data:
            return native(data[f"input.params.{name}"])
        cells = sorted((k for k in data if k.startswith(f"input.params.{name}.")),
                       key=lambda k: int(k.rsplit(".", 1)[1]))  # fmt: skip
        return tuple(native(data[k]) for k in cells)

    return Params(*(field(name) for name in Params._fields))
