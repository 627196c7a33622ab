"""The oracle checked on its own, in float64: spec.reference against central finite differences
of its own loss (SPEC.md §1–§3), and its form A against its form B (§4). Backend-independent."""

import numpy as np
import pytest

from rnnspec.conformance.cases import CASES, MASKED_CASES
from rnnspec.spec import Params, reference, tolerance

pytestmark = pytest.mark.rnnspec_group("reference (FD)")

# Not "chaotic": there the third derivative, and with it the finite-difference truncation error,
# grows like the Jacobian products themselves; not "long": 2·10⁴ reference runs per entry sweep.
FD_CASES = ("basic", "soft", "zero_h0", "T1", "T2", "B1", "H1", "K2", "large_logits", "saturated")


def _finite_differences(loss, array: np.ndarray) -> np.ndarray:
    """Central differences of ``loss`` with respect to every entry of ``array`` (perturbed in place
    on a private copy), step ε = FD_STEP · max(1, |θ|)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        step = tolerance.FD_STEP * max(1.0, abs(saved))
        array[index] = saved + step
        above = loss()
        array[index] = saved - step
        below = loss()
        array[index] = saved
        grad[index] = (above - below) / (2 * step)
    return grad


@pytest.mark.parametrize("name", FD_CASES + tuple(MASKED_CASES))
def test_reference_matches_finite_differences(name):
    case = {**CASES, **MASKED_CASES}[name]
    mask = case.mask()
    params, x, y, h0 = case.arrays("float64")
    params = Params(*(p.copy() for p in params))
    h0 = np.zeros((case.B, case.H)) if h0 is None else h0.copy()
    x = x.copy()
    loss, grads = reference.gradients(params, x, y, h0, mask=mask)
    inputs = {**params._asdict(), "h0": h0, "x": x}
    for field, array in inputs.items():
        fd = _finite_differences(lambda: reference.loss(params, x, y, h0, mask=mask), array)
        want = getattr(grads, field)
        error, bound = float(np.linalg.norm(fd - want)), tolerance.fd_bound(want, loss)
        assert error <= bound, (
            f"spec.reference.gradients -> Grads.{field} on case {case.label()} differs from central "
            f"finite differences by {error:.3e} > {bound:.3e} (absolute, Frobenius)"
        )


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.T <= 20] + list(MASKED_CASES))
def test_reference_form_a_sums_to_form_b(name):
    """(4.1) Σ_t ∇L(t) by the literal ordered products equals ∇L by the backward recursion;
    with a mask, (9.4)–(9.7) against (9.8)–(9.10)."""
    case = {**CASES, **MASKED_CASES}[name]
    arrays, mask = case.arrays("float64"), case.mask()
    loss, grads = reference.gradients(*arrays, mask=mask)
    steps = [
        reference.step_gradients(*arrays[:3], t, arrays.h0, mask=mask) for t in range(1, case.T + 1)
    ]
    assert tolerance.ratio(sum(s[0] for s in steps), loss, "float64", case.T) <= 1
    for field in grads._fields:
        summed = sum(getattr(s[1], field) for s in steps)
        ratio = tolerance.ratio(summed, getattr(grads, field), "float64", case.T)
        assert ratio <= 1, f"Σ_t form A vs form B, Grads.{field}, case {case.label()}: {ratio:.3g}"


@pytest.mark.parametrize("name", ["basic", "soft", "H1", "K2"])
def test_delta_is_the_sum_of_per_step_deltas(name):
    """(4.2) δ(k) = Σ_{t≥k} δ_k(t): the recursion's δ (3.1)–(3.2) against the ordered products (2.3)."""
    case = CASES[name]
    params, x, y, h0 = case.arrays("float64")
    h0 = np.zeros((case.B, case.H)) if h0 is None else h0
    fwd = reference.forward(params, x, h0=h0)
    weights = reference.target_weights(y, case.K)
    e = weights.sum(-1, keepdims=True) * fwd.yhat - weights  # (2.1), (T, B, K)
    for n in range(case.B):
        D = [None] + [np.diag(1 - fwd.h[i - 1, n] ** 2) for i in range(1, case.T + 1)]  # (2.2)
        per_step = np.zeros((case.T + 1, case.H))
        for t in range(1, case.T + 1):
            product = D[t] @ params.V.T @ e[t - 1, n]  # δ_t(t)
            for k in range(t, 0, -1):
                per_step[k] += product  # Σ_{t ≥ k} δ_k(t)
                if k > 1:
                    product = D[k - 1] @ params.W.T @ product  # (2.10)
        delta_next = np.zeros(case.H)
        for k in range(case.T, 0, -1):
            delta = D[k] @ (params.V.T @ e[k - 1, n] + params.W.T @ delta_next)  # (3.1)–(3.2)
            assert tolerance.ratio(delta, per_step[k], "float64", case.T) <= 1, (name, n, k)
            delta_next = delta
