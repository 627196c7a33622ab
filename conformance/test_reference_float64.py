"""The oracle computes in float64 whatever its inputs' dtype (spec/reference.py: "The float64
reference"). Every other check hands it float64 arrays, where a reference that kept its inputs'
dtype would pass unseen; here it gets float32 arrays and must return exactly, dtype and bits, what
the same values cast to float64 give. Backend-independent. (Found by mutation testing,
docs/mutation.md: mutants of `_float64` that drop the float64 conversion survived the suite.)"""

import numpy as np
import pytest

from rnnspec.conformance.cases import CASES, STACKED_CASES, cotangents
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


@pytest.mark.parametrize("name", ["deep2_bi", "deep2_relu"])  # class indices / soft, left / right
def test_reference_stack_promotes_float32_inputs_to_float64(name):
    """The same for a stack (SPEC.md §12) and the layer alone (§13), upstream gradients included:
    every cell's U, W, b, h(0), V, c, x and the mask reach the stack's code as float32."""
    case = STACKED_CASES[name]
    params, x, y, h0 = case.arrays("float32")
    h_grad, hn_grad = (g.astype(np.float32) for g in cotangents(case, "all"))
    mask, model = case.mask(), case.model()
    assert params.U[0].dtype == np.float32 and h0 is not None and mask is not None
    wide = (
        _widened(params),
        _float64(x),
        y if y.dtype.kind in "iu" else _float64(y),
        _float64(h0),
        _float64(h_grad),
        _float64(hn_grad),
    )
    calls = {
        "forward": lambda p, x, y, h0, g, gn: reference.forward(p, x, h0, mask, model),
        "loss": lambda p, x, y, h0, g, gn: reference.loss(p, x, y, h0, mask, model),
        "gradients": lambda p, x, y, h0, g, gn: reference.gradients(p, x, y, h0, mask, model),
        "step_gradients": lambda p, x, y, h0, g, gn: reference.step_gradients(
            p, x, y, case.T, h0, mask, model
        ),
        "layer_forward": lambda p, x, y, h0, g, gn: reference.layer_forward(
            p._replace(V=None, c=None), x, h0, mask, model
        ),
        "layer_gradients": lambda p, x, y, h0, g, gn: reference.layer_gradients(
            p._replace(V=None, c=None), x, g, gn, h0, mask, model
        ),
    }
    for method, call in calls.items():
        got, want = call(params, x, y, h0, h_grad, hn_grad), call(*wide)
        for where, (g, w) in _leaves(got, want):
            if g is None and w is None:  # the layer's Grads hold no V, c
                continue
            g, w = np.asarray(g), np.asarray(w)
            assert g.dtype == w.dtype == np.float64 and np.array_equal(g, w), (
                f"reference.{method}{where} on float32 inputs of case {case.label()}: dtype "
                f"{g.dtype}, not the float64 result of the same values cast to float64"
            )


def _widened(params: Params) -> Params:
    return Params(*(
        tuple(_float64(a) for a in p) if isinstance(p, tuple) else _float64(p) for p in params
    ))  # fmt: skip
