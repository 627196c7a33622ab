"""The float64 reference: SPEC.md's formulas, one sequence at a time, in column vectors.

Read it beside SPEC.md; each line names the equation it implements. It is written for clarity:
time indices are 1-based as in the spec (h[0] is h(0), x[t] is x(t)), a batch is a loop over
independent sequences, and form A builds its Jacobian products literally. It shares nothing with the
backends but the validation, so the two check each other.

The nonlinearity φ of h(t) = φ(a(t)) comes from the call's ``model`` (SPEC.md §1): tanh, or relu
with φ′(0), its one convention, given as ``relu_prime_at_zero`` (0 unless a backend declares
otherwise). D_t = diag φ′(a(t)) is computed from a(t) itself, never from h(t).

A mask (SPEC.md §9) enters as m(t) ∈ {0, 1} per sequence; without one every m(t) is 1, and each
§9 equation below is then the §1–§3 equation it generalizes, in exact arithmetic and in floating
point alike (1·v + 0·w = v).
"""

import numpy as np

from rnnspec.spec.types import Forward, Grads, Model, Params
from rnnspec.spec.validation import validate, validate_model

#: (1.2) φ, and (2.2) its derivative φ′ with relu's φ′(0) given, both of a(t)
NONLINEARITIES = {
    "tanh": (np.tanh, lambda a, at_zero: 1.0 - np.tanh(a) ** 2),
    "relu": (
        lambda a: np.maximum(a, 0.0),
        lambda a, at_zero: np.where(a > 0, 1.0, np.where(a < 0, 0.0, at_zero)),
    ),
}


def _float64(params, x, h0, mask):
    params = Params(*(np.asarray(p, np.float64) for p in params))
    x = np.asarray(x, np.float64)
    T, B, _ = x.shape
    H = params.W.shape[0]
    h0 = np.zeros((B, H)) if h0 is None else np.asarray(h0, np.float64)
    m = np.ones((T, B)) if mask is None else np.asarray(mask, bool).astype(np.float64)
    return params, x, h0, m


def target_weights(y, K: int, mask=None) -> np.ndarray:
    """y as weights (T, B, K): a class index k becomes the one-hot vector e_k (§1). A masked step's
    target is not read (§9): its row is zero, whatever y holds there."""
    y = np.asarray(y)
    read = np.ones(y.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    weights = np.zeros((*y.shape[:2], K))
    weights[read] = np.eye(K)[y[read]] if y.ndim == 2 else y[read]
    return weights


def log_softmax(o: np.ndarray) -> np.ndarray:
    """log ŷ = o − log Σ_j exp(o_j), shifted by max(o) so that exp cannot overflow (§1)."""
    shifted = o - o.max()
    return shifted - np.log(np.exp(shifted).sum())


# --- one sequence: lists indexed by 1-based t, vectors as 1-d arrays (columns) ------------------


def _sequence_forward(p: Params, xs: list, h0: np.ndarray, ms: list, phi, phi_prime):
    """(1.1)–(1.4), (9.1) for one sequence; returns lists h[0..T], o[1..T], log ŷ[1..T] and the
    diagonals φ′(a(t)) of D_t (2.2), d[1..T] (index 0 unused). ``ms[t]`` is m(t)."""
    T = len(xs) - 1
    h: list = [h0]
    o: list = [None]
    log_yhat: list = [None]
    d: list = [None]
    for t in range(1, T + 1):
        a = p.b + p.W @ h[t - 1] + p.U @ xs[t]  # (1.1) a(t) = b + W h(t−1) + U x(t)
        h.append(ms[t] * phi(a) + (1 - ms[t]) * h[t - 1])  # (9.1), (1.2) when m(t) = 1
        o.append(p.c + p.V @ h[t])  # (1.3) o(t) = c + V h(t)
        log_yhat.append(log_softmax(o[t]))  # (1.4) ŷ(t) = softmax(o(t))
        d.append(phi_prime(a))  # (2.2) D_t = diag φ′(a(t))
    return h, o, log_yhat, d


def _step_loss(y_t: np.ndarray, log_yhat_t: np.ndarray, m_t: float) -> float:
    return -m_t * float(y_t @ log_yhat_t)  # (9.2), (1.5): m(t) L(t), L(t) = −Σ_k y_k(t) log ŷ_k(t)


def _output_error(y_t: np.ndarray, log_yhat_t: np.ndarray, m_t: float) -> np.ndarray:
    return m_t * (y_t.sum() * np.exp(log_yhat_t) - y_t)  # (9.3), (2.1) e(t) = (Σ_k y_k) ŷ − y


def _sequence_step_gradients(p: Params, xs, h, log_yhat, ys, ms, d, t: int):
    """Form A for one sequence: the gradient of L(t) alone, by ordered Jacobian products."""
    e = _output_error(ys[t], log_yhat[t], ms[t])  # (9.3)
    D = [None] + [np.diag(d[i]) for i in range(1, len(h))]  # (2.2) D_i = diag φ′(a(i))

    def times_J_T(product, i):  # product · J(i)ᵀ, (9.4) J(i)ᵀ = m(i) Wᵀ D_i + (1 − m(i)) I
        return ms[i] * (product @ p.W.T @ D[i]) + (1 - ms[i]) * product

    dU, dW, db = np.zeros_like(p.U), np.zeros_like(p.W), np.zeros_like(p.b)
    dx = np.zeros((len(xs) - 1, xs[1].shape[0]))  # ∇_{x(k)} L(t) = 0 for k > t
    for k in range(t, 0, -1):
        product = ms[k] * D[k]  # (9.5)–(9.6) m(k) D_k J(k+1)ᵀ ⋯ J(t)ᵀ, in this order
        for i in range(k + 1, t + 1):
            product = times_J_T(product, i)
        delta = product @ p.V.T @ e  # (9.6) δ_k(t); (2.3) D_k Wᵀ ⋯ Wᵀ D_t Vᵀ e(t) when m ≡ 1
        dU += np.outer(delta, xs[k])  # (2.4) ∇_U L(t) = Σ_k δ_k(t) x(k)ᵀ
        dW += np.outer(delta, h[k - 1])  # (2.5) ∇_W L(t) = Σ_k δ_k(t) h(k−1)ᵀ
        db += delta  # (2.6) ∇_b L(t) = Σ_k δ_k(t)
        dx[k - 1] = p.U.T @ delta  # (2.9) ∇_{x(k)} L(t) = Uᵀ δ_k(t)
    after_1 = np.eye(len(p.b))  # J(2)ᵀ ⋯ J(t)ᵀ
    for i in range(2, t + 1):
        after_1 = times_J_T(after_1, i)
    grad_h1 = after_1 @ p.V.T @ e  # (9.5) ∇_{h(1)} L(t)
    # (9.7) ∇_{h(0)} L(t) = J(1)ᵀ ∇_{h(1)} L(t) = Wᵀ δ_1(t) + (1 − m(1)) ∇_{h(1)} L(t); the loop
    # ended at k = 1; (2.8) when m(1) = 1
    dh0 = p.W.T @ delta + (1 - ms[1]) * grad_h1
    dV = np.outer(e, h[t])  # (2.7) ∇_V L(t) = e(t) h(t)ᵀ
    dc = e  # (2.7) ∇_c L(t) = e(t)
    return dU, dW, db, dV, dc, dh0, dx


def _sequence_gradients(p: Params, xs, h, log_yhat, ys, ms, d):
    """Form B for one sequence: the gradient of L = Σ_t L(t) by the backward recursion."""
    T = len(xs) - 1
    dU, dW, db = np.zeros_like(p.U), np.zeros_like(p.W), np.zeros_like(p.b)
    dV, dc = np.zeros_like(p.V), np.zeros_like(p.c)
    dx = np.zeros((T, xs[1].shape[0]))
    delta_next = np.zeros_like(p.b)  # δ(T+1) = 0: nothing after the last step
    carried = np.zeros_like(p.b)  # (1 − m(T+1)) ∇_{h(T+1)} L = 0
    for t in range(T, 0, -1):
        e = _output_error(ys[t], log_yhat[t], ms[t])  # (9.3)
        # (9.8) ∇_{h(t)} L = Vᵀ e(t) + Wᵀ δ(t+1) + (1 − m(t+1)) ∇_{h(t+1)} L; (3.1) when m ≡ 1
        grad_h = p.V.T @ e + p.W.T @ delta_next + carried
        delta = ms[t] * d[t] * grad_h  # (9.9) δ(t) = m(t) D_t ∇_{h(t)} L; (3.2)
        dU += np.outer(delta, xs[t])  # (3.3) ∇_U L = Σ_t δ(t) x(t)ᵀ
        dW += np.outer(delta, h[t - 1])  # (3.3) ∇_W L = Σ_t δ(t) h(t−1)ᵀ
        db += delta  # (3.3) ∇_b L = Σ_t δ(t)
        dV += np.outer(e, h[t])  # (3.4) ∇_V L = Σ_t e(t) h(t)ᵀ
        dc += e  # (3.4) ∇_c L = Σ_t e(t)
        dx[t - 1] = p.U.T @ delta  # (3.5) ∇_{x(t)} L = Uᵀ δ(t)
        delta_next, carried = delta, (1 - ms[t]) * grad_h
    dh0 = p.W.T @ delta_next + carried  # (9.10) Wᵀ δ(1) + (1 − m(1)) ∇_{h(1)} L; (3.5) when m ≡ 1
    return dU, dW, db, dV, dc, dh0, dx


# --- batches: independent sequences, losses and parameter gradients summed over the batch ------


def _sequences(params, x, y, h0, mask, model: Model | None = None, relu_prime_at_zero=0.0):
    """Per sequence n: params, x-list, forward lists, target list, mask list m(t) and the
    diagonals of D_t, all 1-based in t."""
    phi, phi_prime = NONLINEARITIES[validate_model(model).nonlinearity]
    params, x, h0, m = _float64(params, x, h0, mask)
    weights = None if y is None else target_weights(y, params.V.shape[0], mask)
    for n in range(x.shape[1]):
        xs = [None, *list(x[:, n])]
        ms = [None, *(float(m_t) for m_t in m[:, n])]
        h, o, log_yhat, d = _sequence_forward(
            params, xs, h0[n], ms, phi, lambda a: phi_prime(a, relu_prime_at_zero)
        )
        ys = None if weights is None else [None, *list(weights[:, n])]
        yield params, xs, h, o, log_yhat, ys, ms, d


def _batch_grads(per_sequence: list) -> Grads:
    dU, dW, db, dV, dc, dh0, dx = zip(*per_sequence)
    return Grads(
        U=sum(dU),
        W=sum(dW),
        b=sum(db),
        V=sum(dV),
        c=sum(dc),
        h0=np.stack(dh0),
        x=np.stack(dx, axis=1),
    )


def forward(params: Params, x, h0=None, mask=None, model=None) -> Forward:
    """h(1..T), o(1..T), ŷ(1..T) as (T, B, ·) float64 arrays."""
    validate(params, x, h0=h0, mask=mask)
    hs, os, yhats = [], [], []
    for _, _, h, o, log_yhat, _, _, _ in _sequences(params, x, None, h0, mask, model):
        hs.append(np.stack(h[1:]))
        os.append(np.stack(o[1:]))
        yhats.append(np.exp(np.stack(log_yhat[1:])))
    return Forward(h=np.stack(hs, 1), o=np.stack(os, 1), yhat=np.stack(yhats, 1))


def step_loss(params: Params, x, y, t: int, h0=None, mask=None, model=None) -> float:
    """m(t) L(t) summed over the batch (1.5), (9.2)."""
    validate(params, x, y, h0, t, mask=mask)
    return sum(
        _step_loss(ys[t], lp[t], ms[t])
        for _, _, _, _, lp, ys, ms, _ in _sequences(params, x, y, h0, mask, model)
    )


def loss(params: Params, x, y, h0=None, mask=None, model=None) -> float:
    """L = Σ_t Σ_batch m(t) L(t) (1.6), (9.2)."""
    validate(params, x, y, h0, mask=mask)
    return sum(
        _step_loss(ys[t], lp[t], ms[t])
        for _, xs, _, _, lp, ys, ms, _ in _sequences(params, x, y, h0, mask, model)
        for t in range(1, len(xs))
    )


def step_gradients(
    params: Params, x, y, t: int, h0=None, mask=None, model=None, relu_prime_at_zero=0.0
) -> tuple[float, Grads]:
    """(L(t), ∇L(t)) by form A, the ordered Jacobian products. O(T³) work: for checking only."""
    validate(params, x, y, h0, t, mask=mask)
    per_sequence = [
        _sequence_step_gradients(p, xs, h, lp, ys, ms, d, t)
        for p, xs, h, _, lp, ys, ms, d in _sequences(
            params, x, y, h0, mask, model, relu_prime_at_zero
        )
    ]
    return step_loss(params, x, y, t, h0, mask, model), _batch_grads(per_sequence)


def gradients(
    params: Params, x, y, h0=None, mask=None, model=None, relu_prime_at_zero=0.0
) -> tuple[float, Grads]:
    """(L, ∇L) by form B, the backward recursion, linear in T."""
    validate(params, x, y, h0, mask=mask)
    per_sequence = [
        _sequence_gradients(p, xs, h, lp, ys, ms, d)
        for p, xs, h, _, lp, ys, ms, d in _sequences(
            params, x, y, h0, mask, model, relu_prime_at_zero
        )
    ]
    return loss(params, x, y, h0, mask, model), _batch_grads(per_sequence)
