"""Cross-backend agreement: every backend's results on the same inputs, compared pair by pair.

Each backend's results are plain NumPy arrays keyed "case/method/tensor", so backends that ran in
different processes or environments can be compared from their dumps. Two backends that each meet
the tolerance policy against the reference differ from each other by at most twice the bound, so a
pair passes when its ratio (difference / bound) is at most PAIR_LIMIT = 2.
"""

from itertools import combinations
from pathlib import Path

import numpy as np

from rnnspec.conformance.calls import TENSORS, flatten, invoke
from rnnspec.conformance.cases import CASES
from rnnspec.conformance.oracle import expected
from rnnspec.spec import tolerance

CROSS_CASES = ("basic", "soft", "batch16", "long")
CROSS_METHODS = ("forward", "gradients", "step_gradients")
PAIR_LIMIT = 2.0


def results(backend, dtype: str) -> dict[str, np.ndarray]:
    """The backend's outputs on the cross cases as NumPy arrays, keyed 'case/method/tensor'."""
    out = {}
    for name in CROSS_CASES:
        case = CASES[name]
        native = case.native(backend, dtype)
        for method in CROSS_METHODS:
            t = 1 if method == "step_gradients" else None
            result = invoke(backend, method, *native, t=t)
            for (tensor, _), value in zip(TENSORS[method], flatten(method, result), strict=True):
                out[f"{name}/{method}/{tensor}"] = backend.to_numpy(value)
    return out


def dump_path(report_json: str | Path, dtype: str) -> Path:
    """Where a run with ``--report-json report_json`` saves its results in ``dtype``."""
    return Path(report_json).with_suffix(f".{dtype}.npz")


def save(backend, dtype: str, report_json: str | Path) -> None:
    """:func:`results` at :func:`dump_path`; a backend that cannot give them (its failures are
    already reported) saves the error instead."""
    try:
        dump = results(backend, dtype)
    except Exception as error:
        dump = {"error": np.array(repr(error))}
    np.savez_compressed(dump_path(report_json, dtype), **dump)  # type: ignore[arg-type]


def load(report_json: str | Path, dtype: str) -> dict[str, np.ndarray] | None:
    """What :func:`save` saved; None where the backend could not give its results."""
    with np.load(dump_path(report_json, dtype)) as dump:
        return None if "error" in dump else dict(dump)


def matrix(by_backend: dict[str, dict[str, np.ndarray]], dtype: str) -> list[dict]:
    """For each pair of backends and each tensor, the difference as a fraction of the policy's
    bound (MARGIN·(u + u₆₄)·√T·max(1, κ)·‖reference‖); pairs pass at ≤ PAIR_LIMIT."""
    rows = []
    for a, b in combinations(sorted(by_backend), 2):
        for key in sorted(by_backend[a].keys() & by_backend[b].keys()):
            name, method, tensor = key.split("/")
            case = CASES[name]
            want = expected(case, method, 1 if method == "step_gradients" else None)
            i = want.names.index(tensor)
            if case.finite_only(dtype, tensor):
                continue
            scale = float(np.linalg.norm(want.values[i]))
            diff = float(np.linalg.norm(by_backend[a][key].astype(np.float64) - by_backend[b][key]))
            bound = tolerance.bound(dtype, case.steps, want.kappas[i]) * scale
            ratio = 0.0 if diff == 0 else (diff / bound if bound > 0 else float("inf"))
            rows.append({"pair": f"{a} vs {b}", "dtype": dtype, "tensor": key, "ratio": ratio})
    return rows


def worst_by_pair(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """(pair, tensor name without the case) -> the worst row."""
    worst: dict = {}
    for row in rows:
        key = (row["pair"], row["dtype"], row["tensor"].split("/", 1)[1])
        if key not in worst or row["ratio"] > worst[key]["ratio"]:
            worst[key] = row
    return worst
