"""SPEC.md §2 and §4: step_gradients (form A) for every t against the reference's literal ordered
Jacobian products, and Σ_t ∇L(t) = ∇L (4.1) on the backend itself."""

import numpy as np
import pytest

from rnnspec.conformance.assertions import assert_close, assert_matches_reference
from rnnspec.conformance.calls import flatten
from rnnspec.conformance.cases import CASES, SHORT
from rnnspec.conformance.oracle import expected

pytestmark = [
    pytest.mark.rnnspec_group("form A (per step)"),
    pytest.mark.rnnspec_requires("step_gradients"),
]


@pytest.mark.parametrize("name", SHORT)
def test_step_gradients(backend, dtype, name, call):
    case = CASES[name]
    native = case.native(backend, dtype)
    for t in range(1, case.T + 1):
        result = backend.step_gradients(*native[:3], t, h0=native.h0, **case.model_argument())
        assert_matches_reference(result, call("step_gradients", case, dtype, t))


@pytest.mark.parametrize("name", SHORT)
def test_steps_sum_to_total(backend, dtype, name, call):
    """(4.1) ∇L = Σ_t ∇L(t), both sides computed by the backend."""
    case = CASES[name]
    native = case.native(backend, dtype)
    model = case.model_argument()
    steps = [
        flatten("step_gradients", backend.step_gradients(*native[:3], t, h0=native.h0, **model))
        for t in range(1, case.T + 1)
    ]
    sums = [sum(backend.to_numpy(v).astype(np.float64) for v in column) for column in zip(*steps)]
    want = expected(case, "gradients")
    gradients_call = call("gradients", case, dtype)
    total = flatten("gradients", backend.gradients(*native, **model))
    for got, summed, name, kappa, pick in zip(total, sums, want.names, want.kappas, want.picks):
        if case.finite_only(dtype, name):
            continue
        oracle = f"sum(backend.step_gradients(params, x, y, t, h0){pick} for t in 1..T)"
        assert_close(got, summed, gradients_call, f"{name} against Σ_t", oracle, pick, kappa)
