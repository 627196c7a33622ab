"""SPEC.md §5: each erratum of the seed derivation, shown wrong on the input that exposes it (the
seed's formula fails the tolerance policy against spec.reference), right where the seed is right,
and the backend right on that input."""

import numpy as np
import pytest

from rnnspec.conformance.assertions import assert_matches_reference
from rnnspec.conformance.cases import CASES
from rnnspec.conformance.oracle import expected
from rnnspec.spec import reference, tolerance

pytestmark = pytest.mark.rnnspec_group("errata")


def _step_setup(name: str, t: int):
    """Per-sequence h(0..T) lists (1-based), D_i, e(t) and weights for the seed's formulas."""
    case = CASES[name]
    params, x, y, h0 = case.arrays("float64")
    h0 = np.zeros((case.B, case.H)) if h0 is None else h0
    fwd = reference.forward(params, x, h0=h0)
    weights = reference.target_weights(y, case.K)
    seqs = []
    for n in range(case.B):
        h = [h0[n], *fwd.h[:, n]]
        D = [None] + [np.diag(1 - h[i] ** 2) for i in range(1, case.T + 1)]
        e = weights[t - 1, n].sum() * fwd.yhat[t - 1, n] - weights[t - 1, n]
        seqs.append((h, D, e, fwd.yhat[t - 1, n] - weights[t - 1, n]))
    return case, params, x, seqs


def _bias_gradient(name: str, t: int, delta_k) -> np.ndarray:
    """∇_b L(t) = Σ_batch Σ_{k≤t} δ_k(t) for a given rule δ_k(t) = delta_k(params, D, e, k)."""
    _case, params, _, seqs = _step_setup(name, t)
    return sum(delta_k(params, D, e, k) for _, D, e, _ in seqs for k in range(1, t + 1))


def _rejected(got, name: str, t: int, field: str) -> bool:
    want = expected(CASES[name], "step_gradients", t)
    i = want.names.index(f"Grads.{field}")
    return tolerance.ratio(got, want.values[i], "float64", CASES[name].T, want.kappas[i]) > 1


def _ordered(p, D, e, k, t):  # (2.3) D_k Wᵀ D_{k+1} ⋯ Wᵀ D_t Vᵀ e(t)
    out = p.V.T @ e
    for i in range(t, k, -1):
        out = p.W.T @ (D[i] @ out)
    return D[k] @ out


def _commuted(p, D, e, k, t):  # the seed's row form g W^(t−k) ∏ D_i, as columns: ∏ D_i (Wᵀ)^(t−k) g
    product = np.eye(p.W.shape[0])
    for i in range(k + 1, t + 1):
        product = product @ D[i]
    return D[k] @ product @ np.linalg.matrix_power(p.W.T, t - k) @ p.V.T @ e


@pytest.mark.rnnspec_requires("soft_targets")
def test_e1_soft_target_factor(backend, dtype, call):
    """E1: p − y is (Σy) p − y only when Σ_k y_k = 1; soft targets with Σy = 0.6, 2.5, 0 expose it."""
    for t in range(1, CASES["soft"].T + 1):
        seed_dc = sum(p_minus_y for *_, p_minus_y in _step_setup("soft", t)[3])
        assert _rejected(seed_dc, "soft", t, "c"), f"p − y passed at t={t} with Σy ≠ 1"
    for t in range(1, CASES["basic"].T + 1):  # class indices: Σy = 1 and p − y is right
        seed_dc = sum(p_minus_y for *_, p_minus_y in _step_setup("basic", t)[3])
        assert not _rejected(seed_dc, "basic", t, "c")
    case = CASES["soft"]
    assert_matches_reference(
        backend.gradients(*case.native(backend, dtype)), call("gradients", case, dtype)
    )


@pytest.mark.rnnspec_requires("step_gradients")
@pytest.mark.parametrize("name", ["basic", "soft", "B1"])
def test_e2_ordered_product(backend, dtype, name, call):
    """E2: W^(t−k) ∏ diag(1 − h²) commutes matrices that do not commute."""
    case = CASES[name]
    for t in range(2, case.T + 1):
        seed = _bias_gradient(name, t, lambda p, D, e, k, t=t: _commuted(p, D, e, k, t))
        assert _rejected(seed, name, t, "b"), f"commuted product passed at t={t}"
        ordered = _bias_gradient(name, t, lambda p, D, e, k, t=t: _ordered(p, D, e, k, t))
        assert not _rejected(ordered, name, t, "b")
    for right_name in ("diagonal_W", "H1"):  # the commuted form is right here, and for t = k
        for t in range(1, CASES[right_name].T + 1):
            seed = _bias_gradient(right_name, t, lambda p, D, e, k, t=t: _commuted(p, D, e, k, t))
            assert not _rejected(seed, right_name, t, "b"), (right_name, t)
    seed = _bias_gradient(name, 1, lambda p, D, e, k: _commuted(p, D, e, k, 1))
    assert not _rejected(seed, name, 1, "b")
    native = case.native(backend, dtype)
    for t in range(1, case.T + 1):
        assert_matches_reference(
            backend.step_gradients(*native[:3], t, h0=native.h0),
            call("step_gradients", case, dtype, t),
        )


def test_e3_transposes(backend, dtype, call):
    """E3: row-vector notation loses δ x(k)ᵀ, δ h(k−1)ᵀ and the Wᵀ of the recursion."""
    name, t = "basic", CASES["basic"].T
    case, params, x, seqs = _step_setup(name, t)
    deltas = [
        [None] + [_ordered(params, D, e, k, t) for k in range(1, t + 1)] for _, D, e, _ in seqs
    ]
    transposed_dW = sum(
        np.outer(h[k - 1], d[k]) for (h, *_), d in zip(seqs, deltas) for k in range(1, t + 1)
    )  # h(k−1) δᵀ in place of δ h(k−1)ᵀ
    assert _rejected(transposed_dW, name, t, "W")
    transposed_dU = sum(
        np.outer(x[k - 1, n], d[k]) for n, d in enumerate(deltas) for k in range(1, t + 1)
    )  # x δᵀ is (D, H), not (H, D)
    assert np.shape(transposed_dU) == (case.D, case.H) != (case.H, case.D)

    def untransposed(p, D, e, k):  # W in place of Wᵀ in the recursion
        out = p.V.T @ e
        for i in range(t, k, -1):
            out = p.W @ (D[i] @ out)
        return D[k] @ out

    assert _rejected(_bias_gradient(name, t, untransposed), name, t, "b")
    assert_matches_reference(
        backend.gradients(*case.native(backend, dtype)), call("gradients", case, dtype)
    )


def test_e4_index_typo():
    """E4: σ'(W h(t−1) + U x(t) + b) inside a product over i puts D_t in every factor."""
    name = "basic"
    for t in range(2, CASES[name].T + 1):

        def typo(p, D, e, k, t=t):
            out = D[t] @ p.V.T @ e
            for _ in range(k, t):
                out = D[t] @ p.W.T @ out
            return out

        assert _rejected(_bias_gradient(name, t, typo), name, t, "b"), t


def test_e5_total_loss(backend, dtype, call):
    """E5: the seed derives ∇L(t); training needs ∇L = Σ_t ∇L(t), which ∇L(T) alone is not."""
    case = CASES["basic"]
    want = expected(case, "gradients")
    _, last_step = reference.step_gradients(*case.arrays()[:3], case.T, case.arrays().h0)
    for field, value in zip(last_step._fields, last_step):
        i = want.names.index(f"Grads.{field}")
        assert tolerance.ratio(value, want.values[i], "float64", case.T, want.kappas[i]) > 1
    assert_matches_reference(
        backend.gradients(*case.native(backend, dtype)), call("gradients", case, dtype)
    )


def test_e6_initial_state_and_input_gradients(backend, dtype, call):
    """E6: ∇_{h(0)} L and ∇_{x(t)} L are missing from the seed; leaving them out (zero) fails."""
    case = CASES["basic"]
    want = expected(case, "gradients")
    for field in ("h0", "x"):
        i = want.names.index(f"Grads.{field}")
        missing = np.zeros_like(want.values[i])
        assert tolerance.ratio(missing, want.values[i], "float64", case.T, want.kappas[i]) > 1
    assert_matches_reference(
        backend.gradients(*case.native(backend, dtype)), call("gradients", case, dtype)
    )


def test_book_eq_10_21():
    """E7: eq. 10.21 as printed, Wᵀ (∇_{h(t+1)} L) diag(1 − h(t+1)²), multiplies a column vector on
    the right by an H×H matrix; read as Wᵀ diag(1 − h(t+1)²) ∇_{h(t+1)} L it gives ∇_{h(0)} L."""
    case = CASES["basic"]
    params, x, y, h0 = case.arrays()
    fwd = reference.forward(params, x, h0=h0)
    weights = reference.target_weights(y, case.K)
    column = np.ones((case.H, 1))
    with pytest.raises(ValueError):
        _ = params.W.T @ column @ np.diag(1 - fwd.h[0, 0] ** 2)  # as printed: (H,1) @ (H,H)
    dh0 = []
    for n in range(case.B):
        e = weights[:, n].sum(-1, keepdims=True) * fwd.yhat[:, n] - weights[:, n]
        grad_h = params.V.T @ e[-1]  # ∇_{h(T)} L
        for t in range(case.T - 1, 0, -1):  # (10.21) read right, for h(t) from h(t+1)
            grad_h = params.W.T @ np.diag(1 - fwd.h[t, n] ** 2) @ grad_h + params.V.T @ e[t - 1]
        dh0.append(params.W.T @ np.diag(1 - fwd.h[0, n] ** 2) @ grad_h)
    want = expected(case, "gradients")
    i = want.names.index("Grads.h0")
    assert tolerance.ratio(np.stack(dh0), want.values[i], "float64", case.T, want.kappas[i]) <= 1
