"""SPEC.md §10, gradient flow: lag norms, the lag-truncated gradient, windowed TBPTT(k1, k2) and
the Jacobian norms against the reference's literal form-A sums (rnnspec.spec.reference_flow), and
the identities that tie them to the backend's own `gradients` and `forward`. Not applicable where
the backend declares no ``capabilities.gradient_flow``.

Well-conditioned short cases only: the saturated and chaotic cases amplify rounding in every
tensor that passes through D_t (§6.3), and these are all such tensors; and a selection of them
that covers soft targets, h0 omitted, T = 1, B = 1, H = 1 and a diagonal W, since a compiling
framework compiles each method once per shape; and drawn ones of a few shapes, on every
truncation depth (conformance/drawn.py)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnspec.conformance.assertions import assert_close, assert_matches_reference
from rnnspec.conformance.calls import flatten, invoke
from rnnspec.conformance.cases import CASES, SHORT, declared_nonlinearity
from rnnspec.conformance.drawn import FLOW_SHAPES, H0, few, flow_cases, shape_id
from rnnspec.conformance.oracle import expected
from rnnspec.spec import Grads, SpecError
from rnnspec.spec.reference import target_weights
from rnnspec.spec.reference_flow import regime, windows

pytestmark = [pytest.mark.rnnspec_group("flow"), pytest.mark.rnnspec_requires("gradient_flow")]

FLOW_CASES = ["basic", "soft", "zero_h0", "T1", "B1", "H1", "diagonal_W", "batch16"]
assert all(name in SHORT and CASES[name].conditioning == "well" for name in FLOW_CASES)
#: the window identity runs `gradients` once per window length: a few cases (compilers compile each)
WINDOW_CASES = ["basic", "soft", "zero_h0", "B1"]
#: (k1, k2) pairs: non-overlapping, overlapping, k2 beyond T, a last window shorter than k1
PAIRS = ((1, 1), (2, 3), (3, 3), (1, 4), (4, 9))


def _lengths(case) -> list[int]:
    return sorted({1, 2, max(1, case.T // 2), case.T, case.T + 3})


@pytest.mark.parametrize("name", FLOW_CASES)
def test_lag_norms(backend, dtype, name, call):
    case = CASES[name]
    result = backend.lag_norms(*case.native(backend, dtype))
    assert_matches_reference(result, call("lag_norms", case, dtype))


@pytest.mark.parametrize("name", ["basic", "batch16"])
def test_lag_norms_max_lag_is_a_prefix(backend, dtype, name, call):
    """max_lag = m returns the first m lags of the full table (fewer steps, same numbers)."""
    case = CASES[name]
    native = case.native(backend, dtype)
    want = expected(case, "lag_norms")
    for max_lag in (1, 2, case.T + 5):
        got = backend.lag_norms(*native, max_lag=max_lag)
        for tensor, value, name_, kappa, pick in zip(
            got, want.values, want.names, want.kappas, want.picks
        ):
            oracle = f"{want.expression}{pick}[:{max_lag}]"
            assert_close(
                tensor, value[:max_lag], call("lag_norms", case, dtype), name_, oracle, pick, kappa
            )


@pytest.mark.parametrize("name", FLOW_CASES)
def test_truncated_gradients(backend, dtype, name, call):
    case = CASES[name]
    native = case.native(backend, dtype)
    for k in _lengths(case):
        result = backend.truncated_gradients(*native[:3], k, h0=native.h0)
        assert_matches_reference(result, call("truncated_gradients", case, dtype, (k,)))


@pytest.mark.parametrize("name", FLOW_CASES)
def test_lags_sum_to_the_gradient(backend, dtype, name, call):
    """(10.4) Σ_j G_j = ∇L: the truncated gradient at k = T is the backend's own `gradients`."""
    case = CASES[name]
    native = case.native(backend, dtype)
    full = flatten("gradients", backend.gradients(*native))
    truncated = flatten(
        "truncated_gradients", backend.truncated_gradients(*native[:3], case.T, h0=native.h0)
    )
    want = expected(case, "gradients")
    for got, total, tensor, kappa, pick in zip(
        truncated, full, want.names, want.kappas, want.picks
    ):
        summed = backend.to_numpy(total).astype(np.float64)
        oracle = f"backend.gradients(params, x, y, h0=h0){pick}"
        assert_close(
            got,
            summed,
            call("truncated_gradients", case, dtype, (case.T,)),
            tensor,
            oracle,
            pick,
            kappa,
        )


@pytest.mark.parametrize("name", FLOW_CASES)
def test_k1_keeps_lag_zero_only(backend, dtype, name, call):
    """k = 1 keeps the lag-0 terms δ_t(t) = D_t Vᵀ e(t) alone (the reference's G_0, in
    test_truncated_gradients); L, ∇V and ∇c have lag 0 only, so they are the whole `gradients`."""
    case = CASES[name]
    native = case.native(backend, dtype)
    got = flatten("truncated_gradients", backend.truncated_gradients(*native[:3], 1, h0=native.h0))
    full = flatten("gradients", backend.gradients(*native))
    want = expected(case, "gradients")
    check = call("truncated_gradients", case, dtype, (1,))
    for tensor, whole, name_, kappa, pick in zip(got, full, want.names, want.kappas, want.picks):
        if name_ in ("L", "Grads.V", "Grads.c"):
            whole = backend.to_numpy(whole).astype(np.float64)
            oracle = f"backend.gradients(params, x, y, h0=h0){pick}"
            assert_close(tensor, whole, check, name_, oracle, pick, kappa)


@pytest.mark.parametrize("name", FLOW_CASES)
def test_tbptt_gradients(backend, dtype, name, call):
    case = CASES[name]
    native = case.native(backend, dtype)
    for k1, k2 in PAIRS:
        result = backend.tbptt_gradients(*native[:3], k1, k2, h0=native.h0)
        assert_matches_reference(result, call("tbptt_gradients", case, dtype, (k1, k2)))


@pytest.mark.parametrize("name", FLOW_CASES)
def test_one_window_is_gradients(backend, dtype, name, call):
    """§10.5's edge case: TBPTT(T, T) is one window over the whole sequence, `gradients`; so is
    TBPTT(T, k2) for k2 > T (k2 ≥ T reaches h(0))."""
    case = CASES[name]
    native = case.native(backend, dtype)
    want = expected(case, "gradients")
    for k2 in (case.T, case.T + 3):
        losses, grads = backend.tbptt_gradients(*native[:3], case.T, k2, h0=native.h0)
        check = call("tbptt_gradients", case, dtype, (case.T, k2))
        windows_got = backend.to_numpy(losses).shape
        assert windows_got == (1,), (
            f"tbptt_gradients(params, x, y, {case.T}, {k2}, h0=h0) on case {case.label()}, "
            f"{dtype}, {backend!r}: expected one window, losses of shape (1,), got {windows_got}"
        )
        tensors = zip((losses, *grads), want.values, want.names, want.kappas, want.picks)
        for got, ref, tensor, kappa, pick in tensors:
            oracle = f"{want.expression}{pick}"
            assert_close(got[0], ref, check, f"{tensor}[0]", oracle, f"{pick}[0]", kappa)


@few(3)
@given(data=st.data())
@H0
@pytest.mark.parametrize("shape", FLOW_SHAPES, ids=shape_id)
def test_drawn_flow_matches_reference(backend, dtype, shape, h0, data, call):
    """Drawn cases (h0 given or omitted) on shapes with all dimensions equal among them: every
    depth k = 1 … T + 1, a drawn TBPTT (k1, k2) pair, the lag and the Jacobian norms."""
    case, pair = data.draw(flow_cases(shape, h0))
    case = declared_nonlinearity(case, backend)
    params, x, y, h0 = case.native(backend, dtype)
    for method, lengths in [
        ("lag_norms", None),
        ("jacobian_norms", None),
        *(("truncated_gradients", (k,)) for k in range(1, case.T + 2)),
        ("tbptt_gradients", pair),
    ]:
        result = invoke(backend, method, params, x, y, h0, t=lengths, model=case.model())
        assert_matches_reference(result, call(method, case, dtype, lengths))


def _window_problem(backend, case, dtype, native, tau, first_loss, first_step):
    """`gradients`'s input for one window: steps first_step … τ, targets zeroed before
    first_loss, h0 = h(first_step − 1) from the backend's own forward pass."""
    y = case.arrays(dtype).y
    weights = target_weights(y, case.K).astype(dtype)[first_step - 1 : tau]
    weights[: first_loss - first_step] = 0
    if first_step == 1:
        start = native.h0
    else:
        start = backend.forward(native.params, native.x, h0=native.h0).h[first_step - 2]
    return native.params, native.x[first_step - 1 : tau], backend.asarray(weights), start


@pytest.mark.parametrize("name", WINDOW_CASES)
@pytest.mark.parametrize("k1, k2", [(1, 1), (2, 2), (3, 3), (2, 3), (1, 4), (4, 9)])
def test_tbptt_window_is_gradients_on_the_window(backend, dtype, name, k1, k2, call):
    """(10.6) each window is `gradients` on its own steps, targets zeroed outside its last k1
    steps, h0 = h(τ − k2) held constant; k1 = k2 is the chunked loop that carries h0 across."""
    case = CASES[name]
    native = case.native(backend, dtype)
    losses, grads = backend.tbptt_gradients(*native[:3], k1, k2, h0=native.h0)
    want = expected(case, "tbptt_gradients", (k1, k2))
    check = call("tbptt_gradients", case, dtype, (k1, k2))
    for w, (tau, first_loss, first_step) in enumerate(windows(case.T, k1, k2)):
        assert k1 != k2 or first_step == first_loss, "TBPTT(k, k)'s windows tile the sequence"
        window = _window_problem(backend, case, dtype, native, tau, first_loss, first_step)
        loss, g = backend.gradients(*window)
        g = Grads(*(backend.to_numpy(a).astype(np.float64) for a in g))
        x_rows = np.zeros((min(k2, case.T), case.B, case.D))  # row m: step first_step + m
        x_rows[: tau - first_step + 1] = g.x
        pairs = [(losses[w], backend.to_numpy(loss), "window losses")]
        pairs += [
            (got[w], ref, f"Grads.{f}")
            for got, ref, f in zip(grads, (*g[:6], x_rows), Grads._fields)
        ]
        for (got, ref, tensor), kappa, pick in zip(pairs, want.kappas, want.picks):
            oracle = f"backend.gradients(*window {w}: steps {first_step}..{tau}){pick}"
            assert_close(got, ref, check, f"{tensor}[{w}]", oracle, f"{pick}[{w}]", kappa)


@pytest.mark.parametrize("name", FLOW_CASES)
def test_jacobian_norms(backend, dtype, name, call):
    """(10.7) against the reference's explicit product D_T W D_{T−1} W ⋯, and the regime (10.8)."""
    case = CASES[name]
    result = invoke(backend, "jacobian_norms", *case.native(backend, dtype))
    assert_matches_reference(result, call("jacobian_norms", case, dtype))
    sigma = float(np.linalg.norm(case.arrays("float64").params.W, 2))
    assert result.regime == regime(sigma), (result.regime, sigma)


BAD_LENGTHS = {  # call -> the message, the same on every backend (SPEC.md §7)
    "truncated_gradients k=0": (
        "truncated_gradients",
        (0,),
        {},
        "k: expected an integer >= 1, got 0",
    ),
    "truncated_gradients k=1.5": (
        "truncated_gradients",
        (1.5,),
        {},
        "k: expected an integer >= 1, got 1.5",
    ),
    "truncated_gradients k=True": (
        "truncated_gradients",
        (True,),
        {},
        "k: expected an integer >= 1, got True",
    ),
    "tbptt_gradients k1=0": ("tbptt_gradients", (0, 3), {}, "k1: expected an integer >= 1, got 0"),
    "tbptt_gradients k2<k1": (
        "tbptt_gradients",
        (3, 2),
        {},
        "k2: expected an integer >= k1 = 3, got 2",
    ),
    "lag_norms max_lag=0": (
        "lag_norms",
        (),
        {"max_lag": 0},
        "max_lag: expected an integer >= 1, got 0",
    ),
}


@pytest.mark.parametrize("bad", BAD_LENGTHS)
def test_bad_lengths(backend, dtype, bad):
    method, lengths, keywords, message = BAD_LENGTHS[bad]
    params, x, y, h0 = CASES["basic"].native(backend, dtype)
    with pytest.raises(SpecError) as raised:
        getattr(backend, method)(params, x, y, *lengths, h0=h0, **keywords)
    assert str(raised.value) == message
