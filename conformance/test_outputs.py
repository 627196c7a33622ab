"""Every output keeps the inputs' dtype, has the spec's shape, is the backend's own array on its
device (SPEC.md §8), and every call leaves its arguments untouched (§7)."""

import numpy as np
import pytest

from conformance.cases import CASES
from spec import dtype_name, shape_of

METHODS = ("forward", "loss", "gradients", "step_gradients", "autodiff_gradients")


def _call(backend, method, native, t=2):
    params, x, y, h0 = native
    if method == "forward":
        return list(backend.forward(params, x, h0=h0))
    if method == "loss":
        return [backend.loss(params, x, y, h0=h0)]
    if method == "step_gradients":
        loss, grads = backend.step_gradients(params, x, y, t, h0=h0)
    else:
        loss, grads = getattr(backend, method)(params, x, y, h0=h0)
    return [loss, *grads]


def _expected_shapes(case, method):
    T, B, D, H, K = case.T, case.B, case.D, case.H, case.K
    if method == "forward":
        return [(T, B, H), (T, B, K), (T, B, K)]
    if method == "loss":
        return [()]
    return [(), (H, D), (H, H), (H,), (K, H), (K,), (B, H), (T, B, D)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["basic", "soft", "zero_h0"])
def test_outputs_dtype_shape_device(backend, dtype, name, method):
    case = CASES[name]
    try:
        outputs = _call(backend, method, case.native(backend, dtype))
    except NotImplementedError:
        pytest.skip(f"{backend.name} has no {method}")
    for i, (out, shape) in enumerate(zip(outputs, _expected_shapes(case, method), strict=True)):
        where = f"{method} output #{i} on case {case.label()}"
        assert backend.is_native(out), (
            f"{where}: {type(out).__name__} is not native on {backend.device}"
        )
        assert dtype_name(out) == dtype, f"{where}: expected dtype {dtype}, got {dtype_name(out)}"
        assert shape_of(out) == shape, f"{where}: expected shape {shape}, got {shape_of(out)}"


@pytest.mark.parametrize("method", METHODS)
def test_inputs_unchanged(backend, dtype, method):
    case = CASES["soft"]
    native = case.native(backend, dtype)
    before = [backend.to_numpy(a) for a in (*native.params, native.x, native.y, native.h0)]
    try:
        _call(backend, method, native)
    except NotImplementedError:
        pytest.skip(f"{backend.name} has no {method}")
    after = (*native.params, native.x, native.y, native.h0)
    for i, (old, new) in enumerate(zip(before, after)):
        assert np.array_equal(old, backend.to_numpy(new)), f"{method} modified argument #{i}"
        assert getattr(new, "grad", None) is None, f"{method} left .grad on argument #{i}"
