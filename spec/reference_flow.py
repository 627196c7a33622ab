"""The float64 reference for gradient flow (SPEC.md §10), literally from form A.

Read it beside SPEC.md §10. Every term δ_k(t) is the ordered product (2.3) built as a matrix, and
each quantity of §10 is a sum of these terms sorted by lag j = t − k: nothing here runs a backward
recursion. One sequence at a time, in column vectors, 1-based in t, like rnnspec.spec.reference,
whose forward pass it reuses, D_t = diag φ′(a(t)) for the model's φ included. O(T³H³) per
sequence: for checking small cases only.
"""

import numpy as np

from rnnspec.spec import reference
from rnnspec.spec.types import Grads, JacobianNorms, LagNorms, Params
from rnnspec.spec.validation import validate, validate_length


def _terms(p: Params, d, log_yhat, ys, T: int):
    """Every term of form A for one sequence: (t, k, δ_k(t), e(t)) for 1 ≤ k ≤ t ≤ T, with the
    ordered product D_k Wᵀ D_{k+1} Wᵀ ⋯ Wᵀ D_t of (2.3) built as a matrix, one factor more per k."""
    D = [None] + [np.diag(d[i]) for i in range(1, T + 1)]  # (2.2) D_i = diag φ′(a(i))
    for t in range(1, T + 1):
        e = ys[t].sum() * np.exp(log_yhat[t]) - ys[t]  # (2.1)
        product = D[t]
        for k in range(t, 0, -1):
            if k < t:
                product = D[k] @ p.W.T @ product  # (2.3) D_k Wᵀ (D_{k+1} Wᵀ ⋯ Wᵀ D_t)
            yield t, k, product @ p.V.T @ e, e  # (2.3) δ_k(t)


def _zero_grads(p: Params, T: int, D: int) -> dict:
    return {
        "U": np.zeros_like(p.U), "W": np.zeros_like(p.W), "b": np.zeros_like(p.b),
        "V": np.zeros_like(p.V), "c": np.zeros_like(p.c),
        "h0": np.zeros(p.W.shape[0]), "x": np.zeros((T, D)),
    }  # fmt: skip


def _add_term(g: dict, p: Params, xs, h, t: int, k: int, delta, e, outputs: bool) -> None:
    """Add δ_k(t)'s contributions (2.4)–(2.6), (2.8)–(2.9); with ``outputs``, (2.7) too."""
    g["U"] += np.outer(delta, xs[k])  # (2.4)
    g["W"] += np.outer(delta, h[k - 1])  # (2.5)
    g["b"] += delta  # (2.6)
    g["x"][k - 1] += p.U.T @ delta  # (2.9)
    if k == 1:
        g["h0"] += p.W.T @ delta  # (2.8): h(0) enters at k = 1, lag t − 1
    if outputs:
        g["V"] += np.outer(e, h[t])  # (2.7)
        g["c"] += e  # (2.7)


def _batched(per_sequence: list[dict]) -> Grads:
    """Parameter parts summed over the batch; h0 (B, H) and x (T, B, D) per sequence."""
    return Grads(
        **{f: sum(g[f] for g in per_sequence) for f in ("U", "W", "b", "V", "c")},
        h0=np.stack([g["h0"] for g in per_sequence]),
        x=np.stack([g["x"] for g in per_sequence], axis=1),
    )


def lag_gradients(params: Params, x, y, h0=None, model=None) -> list[Grads]:
    """[G_0, …, G_{T−1}]: G_j sums the terms of lag j = t − k of every ∇L(t) (10.1)."""
    validate(params, x, y, h0)
    T, _, D = np.shape(x)
    per_lag: list[list[dict]] = [[] for _ in range(T)]
    for p, xs, h, _, log_yhat, ys, _, d in reference._sequences(params, x, y, h0, None, model):
        lags = [_zero_grads(p, T, D) for _ in range(T)]
        for t, k, delta, e in _terms(p, d, log_yhat, ys, T):
            _add_term(lags[t - k], p, xs, h, t, k, delta, e, outputs=t == k)  # (10.1)
        for j in range(T):
            per_lag[j].append(lags[j])
    return [_batched(sequences) for sequences in per_lag]


def truncated_gradients(params: Params, x, y, k: int, h0=None, model=None):
    """(L, Σ_{j<k} G_j): the lag-truncated gradient (10.3)."""
    k = validate_length("k", k)
    G = lag_gradients(params, x, y, h0, model)
    return reference.loss(params, x, y, h0, model=model), Grads(*(sum(f) for f in zip(*G[:k])))


def lag_norms(params: Params, x, y, h0=None, max_lag: int | None = None, model=None) -> LagNorms:
    """‖G_j‖_F for j = 0 … min(T, max_lag) − 1, per tensor."""
    if max_lag is not None:
        validate_length("max_lag", max_lag)
    G = lag_gradients(params, x, y, h0, model)[:max_lag]
    return LagNorms(*(np.array([np.linalg.norm(g) for g in field]) for field in zip(*G)))


def windows(T: int, k1: int, k2: int) -> list[tuple[int, int, int]]:
    """(τ, first loss step, first step backpropagated to) of each window of TBPTT(k1, k2) (10.5):
    τ = k1, 2k1, …, and T; the losses of steps τ_prev + 1 … τ; back to
    max(1, τ_prev + k1 − k2 + 1), which is τ − k2 + 1 except for a last window shorter than k1:
    that one is the window ending at τ_prev + k1, cut at T, so that windows of TBPTT(k, k) tile
    the sequence."""
    ends = [*range(k1, T, k1), T]
    return [(tau, prev + 1, max(1, prev + k1 - k2 + 1)) for prev, tau in zip([0, *ends], ends)]


def tbptt_gradients(params: Params, x, y, k1: int, k2: int, h0=None, model=None):
    """Per window of TBPTT(k1, k2) (10.5)–(10.6): its loss and its gradient, the terms δ_k(t) of
    its loss steps t with k ≥ s + 1; ``h0`` is the gradient for the state held constant, h(s)
    (h(0) where the window reaches the start); ``x`` is (min(k2, T), B, D) per window, row m
    for step s + 1 + m, zero past the window's end."""
    k1 = validate_length("k1", k1)
    k2 = validate_length("k2", k2, k1, f"k1 = {k1}")
    validate(params, x, y, h0)
    T, _, D = np.shape(x)
    spans = windows(T, k1, k2)
    per_window: list[list[dict]] = [[] for _ in spans]
    losses = np.zeros(len(spans))
    for p, xs, h, _, log_yhat, ys, _, d in reference._sequences(params, x, y, h0, None, model):
        terms = list(_terms(p, d, log_yhat, ys, T))  # each δ_k(t) once, sorted below
        for w, (tau, first_loss, first_step) in enumerate(spans):
            g = _zero_grads(p, T, D)
            for t, k, delta, e in terms:
                if first_loss <= t <= tau and k >= first_step:  # (10.6)
                    _add_term(g, p, xs, h, t, k, delta, e, outputs=t == k)
                    if k == first_step > 1:  # the window's h(0): h(τ − k2), held constant
                        g["h0"] += p.W.T @ delta
            losses[w] += sum(-ys[t] @ log_yhat[t] for t in range(first_loss, tau + 1))
            rows = np.zeros((min(k2, T), D))
            rows[: tau - first_step + 1] = g["x"][first_step - 1 : tau]
            per_window[w].append({**g, "x": rows})
    grads = [_batched(sequences) for sequences in per_window]
    return losses, Grads(*(np.stack(f) for f in zip(*grads)))


def jacobian_norms(params: Params, x, h0=None, model=None) -> JacobianNorms:
    """‖∂h(T)/∂h(T−j)‖₂ = ‖D_T W D_{T−1} W ⋯ D_{T−j+1} W‖₂ (10.7) for j = 1 … T−1, built as
    matrices, and σ₁(W)."""
    validate(params, x, h0=h0)
    T = np.shape(x)[0]
    per_sequence = []
    for p, _, _, _, _, _, _, d in reference._sequences(params, x, None, h0, None, model):
        jacobian, norms = np.eye(p.W.shape[0]), []
        for j in range(1, T):
            jacobian = jacobian @ np.diag(d[T - j + 1]) @ p.W  # (10.7), in this order
            norms.append(np.linalg.norm(jacobian, 2))
        per_sequence.append(norms)
    table = np.array(per_sequence, np.float64).reshape(len(per_sequence), T - 1).T  # (T − 1, B)
    sigma = float(np.linalg.norm(np.asarray(params.W, np.float64), 2))
    return JacobianNorms(table, table.mean(axis=1), np.float64(sigma), regime(sigma))


def regime(sigma_max_W: float) -> str:
    """Pascanu, Mikolov and Bengio (2013) with γ = 1 bounding tanh′ (10.8)."""
    if sigma_max_W < 1.0:
        return "vanishing: σ₁(W) < 1 is sufficient for the gradient to vanish"
    if sigma_max_W > 1.0:
        return "exploding possible: σ₁(W) > 1 is necessary (not sufficient) for it to explode"
    return "boundary: σ₁(W) = 1, neither condition decides"
