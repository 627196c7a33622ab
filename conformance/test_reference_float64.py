"""The oracle computes in float64 whatever its inputs' dtype (spec/reference.py: "The float64
reference"). Every other check hands it float64 arrays, where a reference that kept its inputs'
dtype would pass unseen; here it gets float32 arrays and must return exactly, dtype and bits, what
the same values cast to float64 give. Backend-independent. (Found by mutation testing,
docs/mutation.md: mutants of `_float64` that drop the float64 conversion survived the suite.)"""

import numpy as np
import pytest

from rnnspec.conformance.cases import CASES
from rnnspec.spec import Params, reference

pytestmark = pytest.mark.rnnspec_group("reference (FD)")


def _float64(array):
    return None if array is None else np.asarray(array).astype(np.float64)


@pytest.mark.parametrize("name", ["basic", "soft"])  # class-index and soft targets; h0 given
def test_reference_promotes_float32_inputs_to_float64(name):
    case = CASES[name]
    params, x, y, h0 = case.arrays("float32")
    assert x.dtype == np.float32 and h0 is not None and h0.dtype == np.float32
    wide = (
        Params(*(_float64(p) for p in params)),
        _float64(x),
        y if y.dtype.kind in "iu" else _float64(y),
        _float64(h0),
    )
    calls = {
        "forward": lambda p, x, y, h0: reference.forward(p, x, h0=h0),
        "loss": lambda p, x, y, h0: reference.loss(p, x, y, h0),
        "gradients": lambda p, x, y, h0: reference.gradients(p, x, y, h0),
        "step_gradients": lambda p, x, y, h0: reference.step_gradients(p, x, y, case.T, h0),
    }
    for method, call in calls.items():
        got, want = call(params, x, y, h0), call(*wide)
        for where, (g, w) in _leaves(got, want):
            g, w = np.asarray(g), np.asarray(w)
            assert g.dtype == w.dtype == np.float64, (
                f"reference.{method}{where} on float32 inputs of case {case.label()}: dtype "
                f"{g.dtype}, on the same values in float64: {w.dtype}; the reference is float64"
            )
            assert np.array_equal(g, w), (
                f"reference.{method}{where} on float32 inputs of case {case.label()} differs from "
                f"the same values cast to float64: the reference must compute in float64"
            )


def _leaves(got, want, where=""):
    """(path, (got, want)) for every array or number of two results of the same structure."""
    if isinstance(got, tuple):
        names = getattr(got, "_fields", range(len(got)))
        for name, g, w in zip(names, got, want):
            yield from _leaves(
                g, w, f"{where}.{name}" if isinstance(name, str) else f"{where}[{name}]"
            )
    else:
        yield where, (got, want)


def test_reference_flow_jacobian_norms_promote_float32_inputs_to_float64():
    """The same for the gradient-flow oracle's σ₁(W) and norms (SPEC.md §10.4)."""
    from rnnspec.spec import reference_flow

    params, x, _, h0 = CASES["basic"].arrays("float32")
    got = reference_flow.jacobian_norms(params, x, h0)
    want = reference_flow.jacobian_norms(
        Params(*(_float64(p) for p in params)), _float64(x), _float64(h0)
    )
    for where, (g, w) in _leaves(tuple(got[:3]), tuple(want[:3])):
        assert np.asarray(g).dtype == np.float64 and np.array_equal(g, w), where
