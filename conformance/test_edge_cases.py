"""Edge cases beyond the named cases' reference comparisons: the two target forms agree, all-zero
targets give exactly zero, and extreme logits or saturated tanh never produce NaN or infinity."""

import numpy as np
import pytest

from conformance.assertions import Call, assert_close, assert_finite, flatten
from conformance.cases import CASES
from conformance.oracle import expected

GRADIENT_METHODS = ("gradients", "step_gradients", "autodiff_gradients")


def _run(backend, method, native):
    params, x, y, h0 = native
    if method == "step_gradients":
        return backend.step_gradients(params, x, y, 1, h0=h0)
    return getattr(backend, method)(params, x, y, h0=h0)


@pytest.mark.parametrize("name", ["basic", "K2", "H1"])
def test_class_indices_equal_one_hot_targets(backend, dtype, name):
    """§1: class index k means the one-hot target e_k."""
    case = CASES[name]
    params, x, y, h0 = case.native(backend, dtype)
    one_hot = backend.asarray(np.eye(case.K, dtype=dtype)[case.arrays(dtype).y])
    by_index = flatten("gradients", backend.gradients(params, x, y, h0=h0))
    by_weights = flatten("gradients", backend.gradients(params, x, one_hot, h0=h0))
    want, call = expected(case, "gradients"), Call(backend, "gradients", case, dtype)
    for got, same, name_, kappa, pick in zip(
        by_weights, by_index, want.names, want.kappas, want.picks
    ):
        oracle = f"backend.gradients(params, x, y, h0=h0){pick} with class indices y"
        assert_close(got, backend.to_numpy(same), call, f"{name_} (one-hot y)", oracle, pick, kappa)


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_all_zero_targets_give_zero(backend, dtype, method):
    """Σy = 0 everywhere: L = 0 and every gradient is exactly zero (e(t) = 0·ŷ − 0)."""
    case = CASES["basic"]
    params, x, _, h0 = case.native(backend, dtype)
    zeros = backend.asarray(np.zeros((case.T, case.B, case.K), dtype))
    try:
        result = _run(backend, method, (params, x, zeros, h0))
    except NotImplementedError:
        pytest.skip(f"{backend.name} has no {method}")
    for i, out in enumerate(flatten(method, result)):
        value = backend.to_numpy(out)
        assert not np.any(value), f"{method} output #{i} is not zero for all-zero targets: {value}"


@pytest.mark.parametrize("method", ("forward", "loss", *GRADIENT_METHODS))
@pytest.mark.parametrize("name", ["large_logits", "saturated", "long"])
def test_finite_where_true_value_is_finite(backend, dtype, name, method):
    """Logits of ±2000 overflow a naive exp; tanh saturates from a ≈ 9 in float32."""
    case = CASES[name]
    native = case.native(backend, dtype)
    try:
        if method == "forward":
            result = backend.forward(native.params, native.x, h0=native.h0)
        elif method == "loss":
            result = backend.loss(*native)
        else:
            result = _run(backend, method, native)
    except NotImplementedError:
        pytest.skip(f"{backend.name} has no {method}")
    for out in flatten(method, result):
        assert_finite(out, Call(backend, method, case, dtype), f"{method} output")
