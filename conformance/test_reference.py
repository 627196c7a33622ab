"""The oracle checked on its own, in float64: spec.reference against central finite differences
of its own loss (SPEC.md §1–§3), and its form A against its form B (§4). Backend-independent."""

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest

from rnnspec.conformance import oracle
from rnnspec.conformance.cases import CASES, MASKED_CASES, STACKED_CASES, cotangents
from rnnspec.spec import Params, reference, reference_flow, tolerance

pytestmark = pytest.mark.rnnspec_group("reference (FD)")

# Not "chaotic": there the third derivative, and with it the finite-difference truncation error,
# grows like the Jacobian products themselves; not "long": 2·10⁴ reference runs per entry sweep.
# Not "relu_kink": its a(1) sits on relu's kink, where central differences average the two sides
# (its own check below takes them one side at a time).
FD_CASES = (
    "basic", "soft", "zero_h0", "T1", "T2", "B1", "H1", "K2", "large_logits", "saturated", "relu",
    "relu_soft",
)  # fmt: skip


def finite_differences(loss, array: np.ndarray) -> np.ndarray:
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


def cached_finite_differences(key: tuple, loss, array: np.ndarray) -> np.ndarray:
    """finite_differences of the reference's own ``loss``, kept with the reference's answers
    (oracle.cached) under ``key`` and this file's bytes: every run of the suite in a nox run
    differences the same loss in the same way, and the thousands of loss calls are most of this
    module's time. What is compared with them, the reference's gradients, is computed afresh."""
    compute = functools.partial(finite_differences, loss, array)
    return oracle.cached(("finite differences", *key), compute, Path(__file__))


@pytest.mark.parametrize("name", FD_CASES + tuple(MASKED_CASES))
def test_reference_matchesfinite_differences(name):
    case = {**CASES, **MASKED_CASES}[name]
    mask = case.mask()
    params, x, y, h0 = case.arrays("float64")
    params = Params(*(p.copy() for p in params))
    h0 = np.zeros((case.B, case.H)) if h0 is None else h0.copy()
    x = x.copy()
    model = case.model()
    loss, grads = reference.gradients(params, x, y, h0, mask=mask, model=model)
    inputs = {**params._asdict(), "h0": h0, "x": x}
    for field, array in inputs.items():
        loss_of_inputs = functools.partial(reference.loss, params, x, y, h0, mask, model)
        fd = cached_finite_differences(("gradients", case, field), loss_of_inputs, array)
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
    arrays, mask, model = case.arrays("float64"), case.mask(), case.model()
    loss, grads = reference.gradients(*arrays, mask=mask, model=model)
    steps = [
        reference.step_gradients(*arrays[:3], t, arrays.h0, mask=mask, model=model)
        for t in range(1, case.T + 1)
    ]
    assert tolerance.ratio(np.sum([s[0] for s in steps]), np.asarray(loss), "float64", case.T) <= 1
    for field in grads._fields:
        summed = sum(getattr(s[1], field) for s in steps)
        ratio = tolerance.ratio(summed, getattr(grads, field), "float64", case.T)
        assert ratio <= 1, f"Σ_t form A vs form B, Grads.{field}, case {case.label()}: {ratio:.3g}"


@pytest.mark.parametrize("at_zero", [0.0, 1.0])
def test_reference_relu_kink_is_each_side_of_the_difference(at_zero):
    """SPEC.md §1.1: on `relu_kink`, a_i(1) = b_i = 0 exactly in the kink units. Moving b_i up
    puts a_i(1) on relu's rising side, where φ′ = 1, down on its flat side, where φ′ = 0: the
    one-sided differences of L in b_i are ∇_b L with φ′(0) = 1 and with φ′(0) = 0."""
    case = CASES["relu_kink"]
    params, x, y, h0 = case.arrays("float64")
    model = case.model()
    _, grads = reference.gradients(params, x, y, h0, model=model, relu_prime_at_zero=at_zero)
    side = 1.0 if at_zero == 1.0 else -1.0  # the side whose slope φ′(0) = at_zero is
    step = tolerance.FD_STEP
    loss = reference.loss(params, x, y, h0, model=model)
    for i in range(case.kink_units):
        b = params.b.copy()
        b[i] = side * step
        moved = reference.loss(params._replace(b=b), x, y, h0, model=model)
        one_sided = (moved - loss) / (side * step)  # O(ε) truncation error: one side only
        assert abs(one_sided - grads.b[i]) <= 1e-4 * max(1.0, abs(grads.b[i])), (i, at_zero)
    other = reference.gradients(params, x, y, h0, model=model, relu_prime_at_zero=1.0 - at_zero)
    assert not np.allclose(other[1].b[: case.kink_units], grads.b[: case.kink_units])
    # form A follows the same convention: Σ_t ∇L(t) is form B's ∇L (4.1) on the kink too
    steps = [
        reference.step_gradients(params, x, y, t, h0, model=model, relu_prime_at_zero=at_zero)[1]
        for t in range(1, case.T + 1)
    ]
    for field in grads._fields:
        summed = sum(getattr(s, field) for s in steps)
        assert tolerance.ratio(summed, getattr(grads, field), "float64", case.T) <= 1, field
    if at_zero == 0.0:  # §10's reference takes relu′(0) = 0, the built-in backends' convention
        _, flowing = reference_flow.truncated_gradients(params, x, y, case.T, h0, model=model)
        for field in grads._fields:
            ratio = tolerance.ratio(
                getattr(flowing, field), getattr(grads, field), "float64", case.T
            )
            assert ratio <= 1, field


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


def test_reference_flow_lags_sum_to_form_b():
    """SPEC.md (10.4): the literal lag decomposition sums to form B, which FD checks above."""
    from rnnspec.spec import reference_flow

    for name in ("basic", "soft", "zero_h0", "H1"):
        params, x, y, h0 = CASES[name].arrays("float64")
        summed = [sum(f) for f in zip(*reference_flow.lag_gradients(params, x, y, h0))]
        _, form_b = reference.gradients(params, x, y, h0)
        for got, want in zip(summed, form_b):
            assert tolerance.relative_error(got, want) <= tolerance.bound("float64", CASES[name].T)


def test_reference_tbptt_window_matchesfinite_differences():
    """(10.6) one window of TBPTT(2, 3) on `soft`: central differences of its loss, the targets
    of its last k1 steps, run from h(τ − k2) held constant."""
    from rnnspec.spec import reference_flow

    case = CASES["soft"]
    params, x, y, h0 = case.arrays("float64")
    losses, grads = reference_flow.tbptt_gradients(params, x, y, 2, 3, h0)
    tau, first_loss, first_step = reference_flow.windows(case.T, 2, 3)[1]  # steps 2..4, losses 3..4
    start = reference.forward(params, x, h0).h[first_step - 2].copy()
    window_x = x[first_step - 1 : tau].copy()
    window_y = y[first_step - 1 : tau].copy()
    window_y[: first_loss - first_step] = 0
    W = params.W.copy()
    moved = params._replace(W=W)
    fd = {
        "W": finite_differences(lambda: reference.loss(moved, window_x, window_y, start), W),
        "h0": finite_differences(lambda: reference.loss(params, window_x, window_y, start), start),
    }
    loss = reference.loss(params, window_x, window_y, start)
    assert abs(losses[1] - loss) <= tolerance.bound("float64", case.T) * abs(loss)
    for field, want in fd.items():
        got = getattr(grads, field)[1]
        assert np.linalg.norm(want - got) <= tolerance.fd_bound(got, loss), field


def test_reference_jacobian_norms_matchfinite_differences():
    """(10.7) ‖∂h(T)/∂h(T−j)‖₂ from central differences of h(T) in h(T−j), on `basic`."""
    from rnnspec.spec import reference_flow

    case = CASES["basic"]
    params, x, _, h0 = case.arrays("float64")
    norms = reference_flow.jacobian_norms(params, x, h0).per_sequence
    h = reference.forward(params, x, h0).h
    for j in range(1, case.T):
        state = h[case.T - j - 1].copy()  # h(T − j), the start of the last j steps
        for n in range(case.B):
            columns = []
            for i in range(case.H):
                step = tolerance.FD_STEP
                moved = [state.copy(), state.copy()]
                moved[0][n, i] += step
                moved[1][n, i] -= step
                above, below = (
                    reference.forward(params, x[case.T - j :], s).h[-1, n] for s in moved
                )
                columns.append((above - below) / (2 * step))
            jacobian = np.stack(columns, axis=1)  # |h| ≤ 1 is the scale of the values differenced
            fd_norm = np.linalg.norm(jacobian, 2)
            assert abs(fd_norm - norms[j - 1, n]) <= tolerance.fd_bound(jacobian, 1.0), (j, n)


def test_reference_regime_is_spec_10_4s_words():
    """σ₁(W) < 1, = 1, > 1 each get the sentence SPEC.md §10.4 states for it, and
    jacobian_norms reports the one its σ₁(W) meets."""
    import re
    from pathlib import Path

    from rnnspec import spec as spec_package
    from rnnspec.spec import reference_flow

    spec = " ".join((Path(spec_package.__file__).parent / "SPEC.md").read_text().split())
    stated = re.findall(r"`((?:vanishing|exploding possible|boundary): [^`]+)`", spec)
    assert len(stated) == 3, stated
    for sigma, start in ((0.999, "vanishing"), (1.0, "boundary"), (1.001, "exploding possible")):
        words = reference_flow.regime(sigma)
        assert words in stated and words.startswith(start), (sigma, words)
    params, x, _, h0 = CASES["basic"].arrays()
    result = reference_flow.jacobian_norms(params, x, h0)
    assert result.regime == reference_flow.regime(float(result.sigma_max_W))


def test_reference_windows_are_spec_10_5():
    """TBPTT's windows by (10.5), written out: τ_i = k1, 2k1, … and T; losses τ_{i−1} + 1 … τ_i;
    back to s_i + 1 with s_i = max(0, τ_{i−1} + k1 − k2)."""
    from rnnspec.spec import reference_flow

    def by_hand(T, k1, k2):
        taus = [*range(k1, T, k1), T]
        previous = [0, *taus[:-1]]
        return [(tau, p + 1, max(0, p + k1 - k2) + 1) for p, tau in zip(previous, taus)]

    assert reference_flow.windows(7, 3, 4) == [(3, 1, 1), (6, 4, 3), (7, 7, 6)]
    for T in range(1, 10):
        for k1 in range(1, T + 2):
            for k2 in range(k1, k1 + 3):
                assert reference_flow.windows(T, k1, k2) == by_hand(T, k1, k2), (T, k1, k2)


def _leaves(record) -> dict:
    """Every array of Params or Grads by name, a stack's cells as "U[0]", "U[1]", ..."""
    named = {}
    for field, value in zip(record._fields, record):
        if isinstance(value, tuple):
            named.update({f"{field}[{i}]": array for i, array in enumerate(value)})
        elif value is not None:
            named[field] = value
    return named


def _copied(params: Params) -> Params:
    return Params(*(
        tuple(a.copy() for a in p) if isinstance(p, tuple) else None if p is None else p.copy()
        for p in params
    ))  # fmt: skip


#: the stacked cases, and one of a single step (T = 1: each direction's first step is its last)
FD_STACKS = {**STACKED_CASES, "deep3_bi_T1": dataclasses.replace(STACKED_CASES["deep3_bi"], T=1)}


@pytest.mark.parametrize("name", list(FD_STACKS))
def test_reference_stack_matches_finite_differences(name):
    """SPEC.md (12.4)–(12.6) against central differences of the reference's own loss, for every
    cell's U, W, b, every h(0), V, c and x."""
    case = FD_STACKS[name]
    params, x, y, h0 = case.arrays("float64")
    params, x, mask, model = _copied(params), x.copy(), case.mask(), case.model()
    h0 = np.zeros((model.cells, case.B, case.H)) if h0 is None else h0.copy()
    loss, grads = reference.gradients(params, x, y, h0, mask=mask, model=model)
    inputs = {**_leaves(params), "h0": h0, "x": x}
    wanted = _leaves(grads)
    for field, array in inputs.items():
        loss_of_inputs = functools.partial(reference.loss, params, x, y, h0, mask, model)
        fd = cached_finite_differences(("stack gradients", case, field), loss_of_inputs, array)
        error, bound = (
            float(np.linalg.norm(fd - wanted[field])),
            tolerance.fd_bound(wanted[field], loss),
        )
        assert error <= bound, (
            f"spec.reference.gradients -> Grads.{field} on case {case.label()} differs from central "
            f"finite differences by {error:.3e} > {bound:.3e} (absolute, Frobenius)"
        )


@pytest.mark.parametrize("name", ["basic", "masked_right", "bi", "deep2_relu", "deep3_bi"])
def test_reference_layer_vjp_matches_finite_differences(name):
    """(13.1) against central differences of ℓ = ⟨h_grad, h⟩ + ⟨hn_grad, h_n⟩ of the reference's
    own layer_forward, upstream gradients to every step and every last state."""
    case = {**CASES, **MASKED_CASES, **STACKED_CASES}[name]
    params, x, _, h0 = case.arrays("float64")
    params, x, mask, model = (
        _copied(params._replace(V=None, c=None)),
        x.copy(),
        case.mask(),
        case.model(),
    )
    shape = (model.cells, case.B, case.H) if model.stacked else (case.B, case.H)
    h0 = np.zeros(shape) if h0 is None else h0.copy()
    h_grad, hn_grad = cotangents(case, "all")

    def ell():
        out = reference.layer_forward(params, x, h0, mask, model)
        return float(np.vdot(h_grad, out.h) + np.vdot(hn_grad, out.h_n))

    grads = _leaves(reference.layer_gradients(params, x, h_grad, hn_grad, h0, mask, model))
    for field, array in {**_leaves(params), "h0": h0, "x": x}.items():
        fd = cached_finite_differences(("layer vjp", case, field), ell, array)
        error, bound = (
            float(np.linalg.norm(fd - grads[field])),
            tolerance.fd_bound(grads[field], ell()),
        )
        assert error <= bound, (
            f"layer_gradients -> Grads.{field}, case {name}: {error:.3e} > {bound:.3e}"
        )


@pytest.mark.parametrize("name", list(STACKED_CASES))
def test_reference_stack_steps_sum_to_total(name):
    """(12.7) summed over t is form B, (4.1), in the reference."""
    case = STACKED_CASES[name]
    arrays, mask, model = case.arrays("float64"), case.mask(), case.model()
    loss, grads = reference.gradients(*arrays, mask=mask, model=model)
    steps = [reference.step_gradients(*arrays[:3], t, arrays.h0, mask=mask, model=model)
             for t in range(1, case.T + 1)]  # fmt: skip
    summed_loss = np.asarray(np.sum([s[0] for s in steps]))
    assert tolerance.ratio(summed_loss, np.asarray(loss), "float64", case.steps) <= 1
    for field, total in _leaves(grads).items():
        summed = sum(_leaves(s[1])[field] for s in steps)
        ratio = tolerance.ratio(summed, total, "float64", case.steps)
        assert ratio <= 1, f"Σ_t (12.7) vs form B, Grads.{field}, case {case.label()}: {ratio:.3g}"


def _stack_on_the_kink():
    """deep3_bi (relu, three bidirectional layers) with a(1) = 0 exactly in units 0 and 1 of the
    first cell, as `relu_kink` for one layer (SPEC.md §1.1): x(1) = 0, that cell's h(0) = 0 and
    its b = 0 there."""
    case = STACKED_CASES["deep3_bi"]
    params, x, y, h0 = case.arrays("float64")
    x, h0, first = x.copy(), h0.copy(), params.b[0].copy()
    x[0], h0[0], first[:2] = 0.0, 0.0, 0.0
    return case, params._replace(b=(first, *params.b[1:])), x, y, h0


@pytest.mark.parametrize("at_zero", [0.0, 1.0])
def test_reference_stack_relu_kink_is_each_side_of_the_difference(at_zero):
    """The same for a stack, its steps (12.7) and the layer alone (13.1): the one-sided
    differences in the first cell's b_i are the gradients with φ′(0) = at_zero, the other value
    gives other gradients, and without the argument φ′(0) is 0."""
    case, params, x, y, h0 = _stack_on_the_kink()
    model, step = case.model(), tolerance.FD_STEP
    side = 1.0 if at_zero == 1.0 else -1.0  # the side whose slope φ′(0) = at_zero is
    h_grad, hn_grad = cotangents(case, "all")
    layer = params._replace(V=None, c=None)

    def moved(p, i):
        first = p.b[0].copy()
        first[i] = side * step
        return p._replace(b=(first, *p.b[1:]))

    def ell(p):
        out = reference.layer_forward(p, x, h0, model=model)
        return float(np.vdot(h_grad, out.h) + np.vdot(hn_grad, out.h_n))

    for function, loss, gradients in (
        ("gradients", lambda p: reference.loss(p, x, y, h0, model=model),
         lambda **kw: reference.gradients(params, x, y, h0, model=model, **kw)[1]),
        ("layer_gradients", lambda p: ell(p._replace(V=None, c=None)),
         lambda **kw: reference.layer_gradients(layer, x, h_grad, hn_grad, h0, model=model, **kw)),
    ):  # fmt: skip
        grads = gradients(relu_prime_at_zero=at_zero)
        for i in range(2):
            one_sided = (loss(moved(params, i)) - loss(params)) / (side * step)
            assert abs(one_sided - grads.b[0][i]) <= 1e-4 * max(1.0, abs(grads.b[0][i])), (
                f"reference.{function}: ∇b[0][{i}] with φ′(0) = {at_zero} is not the one-sided "
                f"difference"
            )
        other = gradients(relu_prime_at_zero=1.0 - at_zero)
        assert not np.allclose(other.b[0][:2], grads.b[0][:2]), function
        if at_zero == 0.0:
            assert np.array_equal(gradients().b[0], grads.b[0]), (
                f"{function}: φ′(0) = 0 unless told"
            )
    steps = [
        reference.step_gradients(params, x, y, t, h0, model=model, relu_prime_at_zero=at_zero)[1]
        for t in range(1, case.T + 1)
    ]
    total = reference.gradients(params, x, y, h0, model=model, relu_prime_at_zero=at_zero)[1]
    summed = sum(s.b[0] for s in steps)
    assert tolerance.ratio(summed, total.b[0], "float64", case.steps) <= 1, "(12.7) on the kink"
