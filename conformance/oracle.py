"""What the backend should return for a case: spec.reference's values in float64, each with its
condition number κ (spec.tolerance), computed once per case and reused by every check."""

import functools
from typing import NamedTuple

import numpy as np

from conformance.cases import Case
from spec import reference, tolerance


class Expected(NamedTuple):
    names: tuple[str, ...]  # "Forward.h", "L", "Grads.U", ...
    values: tuple[np.ndarray, ...]
    kappas: tuple[float, ...]
    expression: str  # how the reference computed it, for the reproduction snippet
    picks: tuple[str, ...]  # how each value is picked out of the call's result


def _flat_result(result) -> list[np.ndarray]:
    loss, grads = result
    return [np.asarray(loss), *grads]


_GRAD_NAMES = ("L", *(f"Grads.{f}" for f in ("U", "W", "b", "V", "c", "h0", "x")))
_GRAD_PICKS = ("[0]", *(f"[1].{f}" for f in ("U", "W", "b", "V", "c", "h0", "x")))


@functools.cache
def expected(case: Case, method: str, t: int | None = None) -> Expected:
    """The reference's answer to ``backend.<method>`` on ``case``; autodiff expects form B's.

    One answer serves every dtype: a case's values are the same in float32 and float64.
    """
    params, x, y, h0 = case.arrays("float64")
    if method == "forward":

        def fn(params, x, h0):
            return list(reference.forward(params, x, h0=h0))

        args: tuple = (params, x, h0)
        names = ("Forward.h", "Forward.o", "Forward.yhat")
        picks = (".h", ".o", ".yhat")
        expression = "reference.forward(params, x, h0=h0)"
    elif method == "loss":

        def fn(params, x, y, h0):
            return [np.asarray(reference.loss(params, x, y, h0))]

        args, names, picks = (params, x, y, h0), ("L",), ("",)
        expression = "reference.loss(params, x, y, h0)"
    elif method == "step_gradients":

        def fn(params, x, y, h0):
            return _flat_result(reference.step_gradients(params, x, y, t, h0))

        args, names, picks = (params, x, y, h0), _GRAD_NAMES, _GRAD_PICKS
        expression = f"reference.step_gradients(params, x, y, {t}, h0)"
    else:  # gradients, autodiff_gradients

        def fn(params, x, y, h0):
            return _flat_result(reference.gradients(params, x, y, h0))

        args, names, picks = (params, x, y, h0), _GRAD_NAMES, _GRAD_PICKS
        expression = "reference.gradients(params, x, y, h0)"
    values = tuple(fn(*args))
    kappas = tuple(tolerance.condition_numbers(fn, args, seed=case.seed))
    return Expected(names, values, kappas, expression, picks)
