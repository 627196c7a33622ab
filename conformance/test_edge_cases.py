"""Edge cases beyond the named cases' reference comparisons: the two target forms agree, all-zero
targets give exactly zero, and extreme logits or saturated tanh never produce NaN or infinity."""

import numpy as np
import pytest

from rnnspec.conformance.assertions import assert_close, assert_finite
from rnnspec.conformance.calls import flatten, invoke
from rnnspec.conformance.cases import CASES
from rnnspec.conformance.oracle import expected
from rnnspec.conformance.plugin import returned

pytestmark = pytest.mark.rnnspec_group("edge cases")

GRADIENT_METHODS = ("gradients", "step_gradients", "autodiff_gradients")


@pytest.mark.rnnspec_requires("soft_targets")
@pytest.mark.parametrize("name", ["basic", "K2", "H1"])
def test_class_indices_equal_one_hot_targets(backend, dtype, name, call):
    """§1: class index k means the one-hot target e_k."""
    case = CASES[name]
    params, x, y, h0 = case.native(backend, dtype)
    one_hot = backend.asarray(np.eye(case.K, dtype=dtype)[case.arrays(dtype).y])
    by_index = flatten("gradients", backend.gradients(params, x, y, h0=h0))
    by_weights = flatten("gradients", backend.gradients(params, x, one_hot, h0=h0))
    want, by_index_call = expected(case, "gradients"), call("gradients", case, dtype)
    for got, same, name_, kappa, pick in zip(
        by_weights, by_index, want.names, want.kappas, want.picks
    ):
        if not returned(backend, name_):
            continue
        oracle = f"backend.gradients(params, x, y, h0=h0){pick} with class indices y"
        same = backend.to_numpy(same)
        assert_close(got, same, by_index_call, f"{name_} (one-hot y)", oracle, pick, kappa)


@pytest.mark.rnnspec_requires("soft_targets")
@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_all_zero_targets_give_zero(backend, dtype, method):
    """Σy = 0 everywhere: L = 0 and every gradient is exactly zero (e(t) = 0·ŷ − 0)."""
    case = CASES["basic"]
    params, x, _, h0 = case.native(backend, dtype)
    zeros = backend.asarray(np.zeros((case.T, case.B, case.K), dtype))
    result = invoke(backend, method, params, x, zeros, h0, t=1)
    for name, out in zip(expected(case, method, 1).names, flatten(method, result)):
        if not returned(backend, name):
            continue
        value = backend.to_numpy(out)
        assert not np.any(value), f"{method} -> {name} is not zero for all-zero targets: {value}"


@pytest.mark.parametrize("method", ("forward", "loss", *GRADIENT_METHODS))
@pytest.mark.parametrize("name", ["large_logits", "saturated", "long"])
def test_finite_where_true_value_is_finite(backend, dtype, name, method, call):
    """Logits of ±2000 overflow a naive exp; tanh saturates from a ≈ 9 in float32."""
    case = CASES[name]
    result = invoke(backend, method, *case.native(backend, dtype), t=1)
    for name, out in zip(expected(case, method, 1).names, flatten(method, result)):
        if returned(backend, name):
            assert_finite(out, call(method, case, dtype), f"{method} -> {name}")
