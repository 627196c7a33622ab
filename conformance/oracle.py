"""What the backend should return for a case: rnnspec.spec.reference's values in float64, each with
its condition number κ (rnnspec.spec.tolerance), computed once per case and reused by every check.

With ``RNNSPEC_REFERENCE_CACHE`` naming a folder, the answers are also kept there for other
processes (the nox sessions, the suite runs in tests/): most of a NumPy run's time is the reference.
An answer is keyed by its case, method and lengths, NumPy's version and the bytes of every source
file it depends on, so an edited reference or case never reads a stale answer. The reference's own
finite differences (test_reference.py) are kept the same way (``cached``).
"""

import functools
import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np

from rnnspec.conformance.calls import FLOW_METHODS, flatten, tensors
from rnnspec.conformance.cases import Case, cotangents
from rnnspec.spec import reference, reference_flow, tolerance


class Expected(NamedTuple):
    names: tuple[str, ...]  # "Forward.h", "L", "Grads.U", ...
    values: tuple[np.ndarray, ...]
    kappas: tuple[float, ...]
    expression: str  # how the reference computed it, for the reproduction snippet
    picks: tuple[str, ...]  # how each value is picked out of the call's result


#: method -> the reference's function and the expression shown for it; autodiff expects form B's
#: ``kw`` holds the case's model and relu's φ′(0) (SPEC.md §1.1): {"model": …, "at_zero": …}
_REFERENCE = {
    "forward": (
        lambda p, x, y, h0, t, mask, kw: reference.forward(p, x, h0=h0, mask=mask, **kw["model"]),
        "forward(params, x, h0=h0{mask}{model})",
    ),
    "loss": (
        lambda p, x, y, h0, t, mask, kw: reference.loss(p, x, y, h0, mask=mask, **kw["model"]),
        "loss(params, x, y, h0{mask}{model})",
    ),
    "gradients": (
        lambda p, x, y, h0, t, mask, kw: reference.gradients(
            p, x, y, h0, mask=mask, **kw["model"], **kw["at_zero"]
        ),
        "gradients(params, x, y, h0{mask}{model}{at_zero})",
    ),
    "step_gradients": (
        lambda p, x, y, h0, t, mask, kw: reference.step_gradients(
            p, x, y, t, h0, mask=mask, **kw["model"], **kw["at_zero"]
        ),
        "step_gradients(params, x, y, {t}, h0{mask}{model}{at_zero})",
    ),
}
_REFERENCE["autodiff_gradients"] = _REFERENCE["gradients"]
_REFERENCE.update(
    {  # the layer alone (SPEC.md §13), params without V and c; t names the upstream gradients
        "layer_forward": (
            lambda p, x, y, h0, t, mask, kw: reference.layer_forward(
                p, x, h0, mask=mask, **kw["model"]
            ),
            "layer_forward(params, x, h0{mask}{model})",
        ),
        "layer_gradients": (
            lambda p, x, y, h0, t, mask, kw: reference.layer_gradients(
                p, x, y[0], y[1], h0, mask=mask, **kw["model"], **kw["at_zero"]
            ),
            "layer_gradients(params, x, h_grad, hn_grad, h0{mask}{model}{at_zero})",
        ),
    }
)
_REFERENCE.update(
    {  # SPEC.md §10, t holding the lengths: (k,) or (k1, k2)
        "lag_norms": (
            lambda p, x, y, h0, t, mask, kw: reference_flow.lag_norms(p, x, y, h0, **kw["model"]),
            "lag_norms(params, x, y, h0{model})",
        ),
        "truncated_gradients": (
            lambda p, x, y, h0, t, mask, kw: reference_flow.truncated_gradients(
                p, x, y, t[0], h0, **kw["model"]
            ),
            "truncated_gradients(params, x, y, *{t}, h0{model})",
        ),
        "tbptt_gradients": (
            lambda p, x, y, h0, t, mask, kw: reference_flow.tbptt_gradients(
                p, x, y, t[0], t[1], h0, **kw["model"]
            ),
            "tbptt_gradients(params, x, y, *{t}, h0{model})",
        ),
        "jacobian_norms": (
            lambda p, x, y, h0, t, mask, kw: reference_flow.jacobian_norms(p, x, h0, **kw["model"]),
            "jacobian_norms(params, x, h0{model})",
        ),
    }
)


CACHE_VARIABLE = "RNNSPEC_REFERENCE_CACHE"
Answer = TypeVar("Answer")


def source_files() -> list[Path]:
    """What an answer depends on: rnnspec.spec (the reference, κ, masks), and how a case is built,
    called and picked apart."""
    conformance = Path(__file__).parent
    files = sorted((conformance.parent / "spec").glob("*.py"))
    return files + [conformance / name for name in ("calls.py", "cases.py", "oracle.py")]


@functools.cache
def _sources_digest() -> str:
    digest = hashlib.sha256(np.__version__.encode())
    for file in source_files():
        digest.update(file.read_bytes())
    return digest.hexdigest()


def cached(key: tuple, compute: Callable[[], Answer], *depends_on: Path) -> Answer:
    """``compute()``, kept in the ``RNNSPEC_REFERENCE_CACHE`` folder (when it names one) under
    ``key``, NumPy's version and the bytes of source_files() and of ``depends_on``: a computation
    of the reference's that every process would otherwise repeat. Without the folder, computed."""
    folder = os.environ.get(CACHE_VARIABLE)
    if not folder:
        return compute()
    digest = hashlib.sha256(_sources_digest().encode())
    for source in depends_on:
        digest.update(source.read_bytes())
    digest.update(repr(key).encode())
    path = Path(folder) / f"{digest.hexdigest()}.pickle"
    try:
        return pickle.loads(path.read_bytes())
    except FileNotFoundError:
        pass
    answer = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as file:
        pickle.dump(answer, file)
    os.replace(file.name, path)  # atomic: a process running beside this one reads all or nothing
    return answer


@functools.cache
def expected(case: Case, method: str, t: int | str | None = None) -> Expected:
    """The reference's answer to ``backend.<method>`` on ``case``.

    One answer serves every dtype: a case's values are the same in float32 and float64.
    """
    return cached((case, method, t), lambda: _computed(case, method, t))


def _computed(case: Case, method: str, t: int | str | None) -> Expected:
    params, x, y, h0 = case.arrays("float64")
    mask = case.mask()
    if method.startswith("layer_"):  # the layer alone: no head; its upstream gradients as y
        params = params._replace(V=None, c=None)
        y = None
        if method == "layer_gradients":
            assert isinstance(t, str), t  # the kind of upstream gradients, cases.COTANGENTS
            y = cotangents(case, t)
    function, expression = _REFERENCE[method]
    relu = case.nonlinearity == "relu"
    keywords = {
        "model": case.model_argument(),
        "at_zero": {"relu_prime_at_zero": case.relu_prime_at_zero} if relu else {},
    }

    def fn(params, x, y, h0):
        answer = function(params, x, y, h0, t, mask, keywords)
        return [np.asarray(v) for v in flatten(method, answer)]

    args: tuple
    if method == "layer_gradients":  # κ over the upstream gradients too, each on its own
        h_grad, hn_grad = y
        args = (params, x, h_grad, hn_grad, h0)
        values = fn(params, x, y, h0)
        kappas = tolerance.condition_numbers(
            lambda p, x, g, gn, h0: fn(p, x, (g, gn), h0), args, case.seed
        )
    elif method in ("forward", "jacobian_norms", "layer_forward"):  # κ: of the inputs it takes
        args = (params, x, h0)
        values = fn(params, x, None, h0)
        kappas = tolerance.condition_numbers(lambda p, x, h0: fn(p, x, None, h0), args, case.seed)
    else:
        args = (params, x, y, h0)
        values, kappas = fn(*args), tolerance.condition_numbers(fn, args, seed=case.seed)
    names, picks = zip(*tensors(method, case.model()))
    module = "reference_flow." if method in FLOW_METHODS else "reference."
    return Expected(
        names,
        tuple(values),
        tuple(kappas),
        module
        + expression.format(
            t=t,
            mask="" if mask is None else ", mask=mask",
            model=", model=case.model()" if keywords["model"] else "",
            at_zero=f", relu_prime_at_zero={case.relu_prime_at_zero}" if relu else "",
        ),
        picks,
    )
