"""The float64 reference: SPEC.md's formulas, one sequence at a time, in column vectors.

Read it beside SPEC.md; each line names the equation it implements. It is written for clarity:
time indices are 1-based as in the spec (h[0] is h(0), x[t] is x(t)), a batch is a loop over
independent sequences, and form A builds its Jacobian products literally. It shares nothing with the
backends but the validation, so the two check each other.

The nonlinearity φ of h(t) = φ(a(t)) comes from the call's ``model`` (SPEC.md §1): tanh, or relu
with φ′(0), its one convention, given as ``relu_prime_at_zero`` (0 unless a backend declares
otherwise). D_t = diag φ′(a(t)) is computed from a(t) itself, never from h(t).

A stacked or bidirectional network (SPEC.md §12) and the layer alone (§13) are computed cell by
cell, each direction of each layer by the one-layer recursion of §9 with the gradient from above
injected, (12.1)–(12.6); the one-layer functions above them stay the literal §1–§3 code.

A mask (SPEC.md §9) enters as m(t) ∈ {0, 1} per sequence; without one every m(t) is 1, and each
§9 equation below is then the §1–§3 equation it generalizes, in exact arithmetic and in floating
point alike (1·v + 0·w = v).
"""

import numpy as np

from rnnspec.spec.types import Forward, Grads, LayerOutputs, Model, Params
from rnnspec.spec.validation import validate, validate_cotangents, validate_model

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
    """h(1..T), o(1..T), ŷ(1..T) as (T, B, ·) float64 arrays; for a stack h is the top layer's
    [forward; reverse] states (12.3)."""
    validate(params, x, h0=h0, mask=mask, model=model)
    if validate_model(model).stacked:
        tops, o, log_yhat = zip(
            *(s[:3] for s in _stack_sequences(params, x, None, h0, mask, model))
        )
        return Forward(h=np.stack(tops, 1), o=np.stack(o, 1), yhat=np.exp(np.stack(log_yhat, 1)))
    hs, os, yhats = [], [], []
    for _, _, h, o, log_yhat, _, _, _ in _sequences(params, x, None, h0, mask, model):
        hs.append(np.stack(h[1:]))
        os.append(np.stack(o[1:]))
        yhats.append(np.exp(np.stack(log_yhat[1:])))
    return Forward(h=np.stack(hs, 1), o=np.stack(os, 1), yhat=np.stack(yhats, 1))


def step_loss(params: Params, x, y, t: int, h0=None, mask=None, model=None) -> float:
    """m(t) L(t) summed over the batch (1.5), (9.2)."""
    validate(params, x, y, h0, t, mask=mask, model=model)
    if validate_model(model).stacked:
        return float(_stack_step_losses(params, x, y, h0, mask, model)[t - 1])
    return sum(
        _step_loss(ys[t], lp[t], ms[t])
        for _, _, _, _, lp, ys, ms, _ in _sequences(params, x, y, h0, mask, model)
    )


def loss(params: Params, x, y, h0=None, mask=None, model=None) -> float:
    """L = Σ_t Σ_batch m(t) L(t) (1.6), (9.2)."""
    validate(params, x, y, h0, mask=mask, model=model)
    if validate_model(model).stacked:
        return float(_stack_step_losses(params, x, y, h0, mask, model).sum())
    return sum(
        _step_loss(ys[t], lp[t], ms[t])
        for _, xs, _, _, lp, ys, ms, _ in _sequences(params, x, y, h0, mask, model)
        for t in range(1, len(xs))
    )


def step_gradients(
    params: Params, x, y, t: int, h0=None, mask=None, model=None, relu_prime_at_zero=0.0
) -> tuple[float, Grads]:
    """(L(t), ∇L(t)) by form A, the ordered Jacobian products. O(T³) work: for checking only.
    For a stack, ∇L(t) by (12.7): the stack's recursion on the targets of step t alone."""
    validate(params, x, y, h0, t, mask=mask, model=model)
    if validate_model(model).stacked:
        at_t = np.zeros(np.shape(y)[:2], bool)
        at_t[t - 1] = True
        read = at_t if mask is None else at_t & np.asarray(mask, bool)
        weights = target_weights(y, np.shape(params.V)[0], read)  # zero outside step t
        grads = _stack_gradients(params, x, weights, None, None, h0, mask, model,
                                 relu_prime_at_zero)  # fmt: skip
        return step_loss(params, x, y, t, h0, mask, model), grads
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
    """(L, ∇L) by form B, the backward recursion, linear in T; for a stack (12.4)–(12.6)."""
    validate(params, x, y, h0, mask=mask, model=model)
    if validate_model(model).stacked:
        weights = target_weights(y, np.shape(params.V)[0], mask)
        grads = _stack_gradients(params, x, weights, None, None, h0, mask, model,
                                 relu_prime_at_zero)  # fmt: skip
        return loss(params, x, y, h0, mask, model), grads
    per_sequence = [
        _sequence_gradients(p, xs, h, lp, ys, ms, d)
        for p, xs, h, _, lp, ys, ms, d in _sequences(
            params, x, y, h0, mask, model, relu_prime_at_zero
        )
    ]
    return loss(params, x, y, h0, mask, model), _batch_grads(per_sequence)


# --- stacks (SPEC.md §12) and the layer alone (§13): one cell at a time -----------------------


def _cells(params: Params, model: Model) -> list[Params]:
    """Each cell's (U, W, b) as a Params without a head, cell i = l·directions + d (§12)."""
    if not model.stacked:
        return [Params(params.U, params.W, params.b, None, None)]
    return [Params(U, W, b, None, None) for U, W, b in zip(params.U, params.W, params.b)]


def _cell_forward(cell: Params, zs: list, h_before: np.ndarray, ms: list, reverse: bool, phi,
                  phi_prime):  # fmt: skip
    """One direction of one layer over its inputs z(1..T) (12.1)–(12.2): the forward direction in
    t = 1..T from h(0), the reverse one in t = T..1 from h(T+1) = its initial state, a masked
    step carrying the state over (9.1). Returns h[0..T+1] (the initial state at index 0 or T+1)
    and the diagonals d[1..T] of D_t."""
    T = len(zs) - 1
    h: list = [None] * (T + 2)
    d: list = [None] * (T + 2)
    h[T + 1 if reverse else 0] = h_before
    for t in range(T, 0, -1) if reverse else range(1, T + 1):
        before = h[t + 1] if reverse else h[t - 1]  # the state the direction comes from
        a = cell.b + cell.W @ before + cell.U @ zs[t]  # (12.1)
        h[t] = ms[t] * phi(a) + (1 - ms[t]) * before  # (12.2), (9.1)
        d[t] = phi_prime(a)  # (2.2) D_t = diag φ′(a(t))
    return h, d


def _cell_backward(cell: Params, zs: list, h: list, d: list, ms: list, g: list, g_final,
                   reverse: bool):  # fmt: skip
    """The recursion (12.4) of one direction of one layer, against its direction in time: g[t] is
    ∂ℓ/∂h(t) from above (the head or the layer above), ``g_final`` ∂ℓ/∂h_n of its last state.
    Returns the cell's ∇U, ∇W, ∇b, ∇h(0) and ∇z(1..T), its inputs' gradients (12.5)."""
    T = len(zs) - 1
    dU, dW, db = np.zeros_like(cell.U), np.zeros_like(cell.W), np.zeros_like(cell.b)
    dz: list = [None] + [np.zeros(zs[1].shape) for _ in range(T)]
    delta_after = np.zeros_like(cell.b)  # δ of the step computed after t: none after the last
    carried = g_final  # ∂ℓ/∂h_n: h_n is the last state, as if a masked step carried it on (13.1)
    for t in range(1, T + 1) if reverse else range(T, 0, -1):
        before = h[t + 1] if reverse else h[t - 1]
        # (12.4) ∇_{h(t)} ℓ = g(t) + Wᵀ δ(after t) + (1 − m(after t)) ∇_{h(after t)} ℓ, (9.8)
        grad_h = g[t] + cell.W.T @ delta_after + carried
        delta = ms[t] * d[t] * grad_h  # (9.9) δ(t) = m(t) D_t ∇_{h(t)} ℓ
        dU += np.outer(delta, zs[t])  # (3.3) ∇_U ℓ = Σ_t δ(t) z(t)ᵀ
        dW += np.outer(delta, before)  # (3.3) ∇_W ℓ = Σ_t δ(t) h(before t)ᵀ
        db += delta  # (3.3) ∇_b ℓ = Σ_t δ(t)
        dz[t] = cell.U.T @ delta  # (12.5) ∇_{z(t)} ℓ = Uᵀ δ(t)
        delta_after, carried = delta, (1 - ms[t]) * grad_h
    dh_before = cell.W.T @ delta_after + carried  # (9.10) for the initial state
    return dU, dW, db, dh_before, dz


def _stack_forward(cells: list, xs: list, h0s: np.ndarray, ms: list, model: Model, phi, phi_prime):
    """(12.1)–(12.3) for one sequence: every cell's states and D_t, and each layer's inputs
    z_l(1..T); the top layer's states z_{N+1}(t) = [h_fwd(t); h_rev(t)] are what the head reads."""
    states, layer_inputs = [], [xs]
    for layer in range(model.layers):
        zs = layer_inputs[-1]
        for direction in range(model.directions):
            i = layer * model.directions + direction
            states.append(_cell_forward(cells[i], zs, h0s[i], ms, direction == 1, phi, phi_prime))
        mine = states[-model.directions :]
        T = len(xs) - 1
        layer_inputs.append(
            [None] + [np.concatenate([h[t] for h, _ in mine]) for t in range(1, T + 1)]
        )
    return states, layer_inputs


def _stack_backward(cells: list, states: list, layer_inputs: list, ms: list, g_top: list,
                    g_final: np.ndarray, model: Model):  # fmt: skip
    """(12.4)–(12.6) for one sequence: from the gradient g_top[t] of the top layer's states and
    g_final[i] of each cell's last state, every cell's ∇U, ∇W, ∇b, ∇h(0), and ∇x."""
    grads: list = [None] * model.cells
    g_above = g_top
    T = len(g_top) - 1
    for layer in reversed(range(model.layers)):
        zs = layer_inputs[layer]
        dz = [None] + [np.zeros(zs[1].shape) for _ in range(T)]
        for direction in range(model.directions):
            i = layer * model.directions + direction
            H = cells[i].W.shape[0]
            block = slice(direction * H, (direction + 1) * H)  # (12.3) its part of z_{l+1}(t)
            g = [None] + [g_above[t][block] for t in range(1, T + 1)]
            h, d = states[i]
            dU, dW, db, dh0, dz_i = _cell_backward(cells[i], zs, h, d, ms, g, g_final[i],
                                                   direction == 1)  # fmt: skip
            grads[i] = (dU, dW, db, dh0)
            for t in range(1, T + 1):
                dz[t] = dz[t] + dz_i[t]  # (12.5) both directions read z_l(t): their sum
        g_above = dz  # (12.6) g_l(t) = ∇_{z_{l+1}(t)} ℓ of the layer above
    return grads, g_above


def _stack_inputs(params, x, h0, mask, model, relu_prime_at_zero=0.0):
    """Float64 cells, x, h(0) as (cells, B, H), the mask as m(t), and φ, φ′ (§12)."""
    model = validate_model(model)
    phi, phi_prime = NONLINEARITIES[model.nonlinearity]
    cells = [Params(*(None if a is None else np.asarray(a, np.float64) for a in c))
             for c in _cells(params, model)]  # fmt: skip
    x = np.asarray(x, np.float64)
    T, B, _ = x.shape
    H = cells[0].W.shape[0]
    if h0 is None:
        h0 = np.zeros((model.cells, B, H))
    h0 = np.asarray(h0, np.float64).reshape(model.cells, B, H)
    m = np.ones((T, B)) if mask is None else np.asarray(mask, bool).astype(np.float64)
    return model, cells, x, h0, m, phi, lambda a: phi_prime(a, relu_prime_at_zero)


def _stack_sequences(params, x, weights, h0, mask, model):
    """Per sequence: the top layer's h(1..T), o(1..T) and log ŷ(1..T), stacked in t, and, given
    target weights (T, B, K), its losses m(t) L(t) (T,)."""
    model, cells, x, h0, m, phi, phi_prime = _stack_inputs(params, x, h0, mask, model)
    V, c = (np.asarray(a, np.float64) for a in (params.V, params.c))
    for n in range(x.shape[1]):
        xs, ms = [None, *x[:, n]], [None, *m[:, n]]
        _, layer_inputs = _stack_forward(cells, xs, h0[:, n], ms, model, phi, phi_prime)
        tops = np.stack(layer_inputs[-1][1:])
        o = tops @ V.T + c  # (1.3) o(t) = c + V z_{N+1}(t)
        log_yhat = np.stack([log_softmax(o_t) for o_t in o])  # (1.4)
        losses = None if weights is None else np.array(
            [_step_loss(weights[t, n], log_yhat[t], m[t, n]) for t in range(len(o))])  # fmt: skip
        yield tops, o, log_yhat, losses


def _stack_step_losses(params, x, y, h0, mask, model) -> np.ndarray:
    """m(t) L(t) summed over the batch, (T,), for a stack (1.5), (9.2)."""
    weights = target_weights(y, np.shape(params.V)[0], mask)
    return sum(s[3] for s in _stack_sequences(params, x, weights, h0, mask, model))


def _stack_gradients(params, x, weights, h_grad, hn_grad, h0, mask, model,
                     relu_prime_at_zero=0.0) -> Grads:  # fmt: skip
    """∇ of the loss with the head (given ``weights``, (12.4) with g(t) = Vᵀ e(t)) or of ℓ with
    the gradients of the top layer's states and the cells' last states given (13.1), by sequence;
    Grads in the layout of params (tuples for a stack) and h0."""
    model, cells, x, h0s, m, phi, phi_prime = _stack_inputs(params, x, h0, mask, model,
                                                            relu_prime_at_zero)  # fmt: skip
    T, B, _ = x.shape
    H = cells[0].W.shape[0]
    with_head = weights is not None
    if with_head:
        V, c = (np.asarray(a, np.float64) for a in (params.V, params.c))
        dV, dc = np.zeros_like(V), np.zeros_like(c)
    else:
        h_grad = np.asarray(h_grad, np.float64)
        hn_grad = (np.zeros((model.cells, B, H)) if hn_grad is None
                   else np.asarray(hn_grad, np.float64).reshape(model.cells, B, H))  # fmt: skip
    per_cell = [[np.zeros_like(a) for a in cell[:3]] for cell in cells]
    dh0 = np.zeros_like(h0s)
    dx = np.zeros_like(x)
    for n in range(B):
        xs, ms = [None, *x[:, n]], [None, *m[:, n]]
        states, layer_inputs = _stack_forward(cells, xs, h0s[:, n], ms, model, phi, phi_prime)
        if with_head:
            g_top: list = [None]
            for t in range(1, T + 1):
                top = layer_inputs[-1][t]
                e = _output_error(weights[t - 1, n], log_softmax(c + V @ top), ms[t])  # (9.3)
                g_top.append(V.T @ e)  # (12.4) g_N(t) = Vᵀ e(t), from the head
                dV += np.outer(e, top)  # (3.4) ∇_V L = Σ_t e(t) z_{N+1}(t)ᵀ
                dc += e  # (3.4) ∇_c L = Σ_t e(t)
            g_final = np.zeros((model.cells, H))  # the loss reads no last state directly
        else:
            g_top = [None, *h_grad[:, n]]  # (13.1) the upstream gradients, as given
            g_final = hn_grad[:, n]
        grads, g_x = _stack_backward(cells, states, layer_inputs, ms, g_top, g_final, model)
        for i, (dU, dW, db, dh) in enumerate(grads):
            for total, part in zip(per_cell[i], (dU, dW, db)):
                total += part  # parameter gradients: summed over the batch
            dh0[i, n] = dh
        dx[:, n] = np.stack(g_x[1:])
    U, W, b = (tuple(p[k] for p in per_cell) for k in range(3))
    if not model.stacked:
        (U,), (W,), (b,) = U, W, b
        dh0 = dh0[0]
    head = (dV, dc) if with_head else (None, None)
    return Grads(U=U, W=W, b=b, V=head[0], c=head[1], h0=dh0, x=dx)


def layer_forward(params: Params, x, h0=None, mask=None, model=None) -> LayerOutputs:
    """The layer alone (§13): the top layer's states h (T, B, directions·H) and every cell's last
    state h_n, (B, H) or (cells, B, H) for a stack."""
    validate(params, x, h0=h0, mask=mask, model=model, head=False)
    model, cells, x64, h0s, m, phi, phi_prime = _stack_inputs(params, x, h0, mask, model)
    tops, finals = [], []
    T = x64.shape[0]
    for n in range(x64.shape[1]):
        xs, ms = [None, *x64[:, n]], [None, *m[:, n]]
        states, layer_inputs = _stack_forward(cells, xs, h0s[:, n], ms, model, phi, phi_prime)
        tops.append(np.stack(layer_inputs[-1][1:]))
        # (13.2) h_n: the forward direction's h(T), the reverse direction's h(1)
        finals.append(np.stack([h[1] if i % model.directions else h[T]
                                for i, (h, _) in enumerate(states)]))  # fmt: skip
    h_n = np.stack(finals, 1)
    return LayerOutputs(h=np.stack(tops, 1), h_n=h_n if model.stacked else h_n[0])


def layer_gradients(params: Params, x, h_grad, hn_grad=None, h0=None, mask=None, model=None,
                    relu_prime_at_zero=0.0) -> Grads:  # fmt: skip
    """The layer's vector–Jacobian product (§13): the gradients of ℓ = Σ ⟨h_grad, h⟩ +
    ⟨hn_grad, h_n⟩ with respect to every cell's U, W, b, h0 and x; V and c are None."""
    dims = validate(params, x, h0=h0, mask=mask, model=model, head=False)
    validate_cotangents(h_grad, hn_grad, dims, validate_model(model))
    return _stack_gradients(params, x, None, h_grad, hn_grad, h0, mask, model, relu_prime_at_zero)
