"""NumPy backend: SPEC.md form B with the input projection and the output layer hoisted out of the
time loop, so that only the recurrence itself loops over t. Keeps the input dtype."""

from typing import Any

import numpy as np

from rnnspec.backends import base
from rnnspec.spec import Capabilities, Params


def _hidden_states(p: Params, x, h0, mask=None):
    """h(1..T): U x(t) + b for every t in one matrix product, then the recurrence (1.1)–(1.2);
    with a mask, (9.1): a masked step carries h(t−1) over."""
    T, B, D = x.shape
    h = np.matmul(x.reshape(T * B, D), p.U.T).reshape(T, B, -1)
    h += p.b
    W_T = np.ascontiguousarray(p.W.T)  # OpenBLAS multiplies a row-major Wᵀ faster than the view
    hW = np.empty_like(h0)
    h_prev = h0
    carried = None if mask is None else ~mask[..., None]
    for t, h_t in enumerate(h):  # h_t holds U x(t) + b until it is overwritten by h(t), in place
        np.tanh(np.add(h_t, np.matmul(h_prev, W_T, out=hW), out=h_t), out=h_t)
        if carried is not None:
            np.copyto(h_t, h_prev, where=carried[t])
        h_prev = h_t
    return h


def _log_softmax_outputs(p: Params, h):
    """o(t) = c + V h(t) for all T·B rows in one product (1.3), and log ŷ(t) (1.4)."""
    T, B, H = h.shape
    o = (h.reshape(T * B, H) @ p.V.T + p.c).reshape(T, B, -1)
    shifted = o - o.max(axis=-1, keepdims=True)
    return o, shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _loss_and_output_errors(p: Params, h, y):
    """L (1.3)–(1.6) and e(t) = (Σ_k y_k) ŷ − y (2.1) for all T·B rows, in place in one buffer.

    With s = o − max o and Z = Σ_j exp(s_j): log ŷ = s − log Z, so L = Σ_rows ((Σ_k y_k) log Z −
    Σ_k y_k s_k), two sums of non-negative terms, and e = (Σ_k y_k / Z) exp(s) − y.
    """
    T, B, H = h.shape
    y_rows = y.reshape(T * B, -1)
    e = np.matmul(h.reshape(T * B, H), p.V.T)  # o(t) = c + V h(t) for all T·B rows (1.3)
    e += p.c
    e -= e.max(axis=1, keepdims=True)  # s
    loss = -np.vdot(y_rows, e)
    np.exp(e, out=e)
    Z, y_sums = e.sum(axis=1), y_rows.sum(axis=1)
    loss += np.vdot(y_sums, np.log(Z))
    e *= (y_sums / Z)[:, None]
    e -= y_rows
    return loss, e


def _step_losses_and_output_errors(p: Params, h, y):
    """L(t) summed over the batch, (T,), and e(t) (2.1), (T, B, K): TBPTT needs each step's loss."""
    _, log_yhat = _log_softmax_outputs(p, h)
    return -(y * log_yhat).sum(axis=(1, 2)), y.sum(axis=-1, keepdims=True) * np.exp(log_yhat) - y


class NumpyBackend(base.ClosedFormBackend):
    name = "numpy"
    framework_version = f"numpy {np.__version__}"
    capabilities = Capabilities(autodiff=False, devices=("cpu",), masks=True, gradient_flow=True)

    def asarray(self, array: np.ndarray, dtype: Any = None) -> np.ndarray:
        return np.array(array, dtype=dtype, copy=True)

    def to_numpy(self, array: np.ndarray) -> np.ndarray:
        return np.array(array, copy=True)

    def is_native(self, array: Any) -> bool:
        return isinstance(array, np.ndarray | np.generic)

    def _all_finite(self, arrays):
        return all(np.isfinite(array).all() for array in arrays)

    def _zeros_state(self, x, H):
        return np.zeros((x.shape[1], H), dtype=x.dtype)

    def _zero_masked(self, array, mask):
        return np.where(mask.reshape(mask.shape + (1,) * (array.ndim - 2)), array, 0)

    def _one_hot(self, y, K, dtype):
        weights = np.zeros((*y.shape, K), dtype=dtype)  # scattering ones beats gathering rows of I
        np.put_along_axis(weights, y[..., None], 1, axis=-1)
        return weights

    def _forward(self, p, x, h0, mask=None):
        h = _hidden_states(p, x, h0, mask)
        o, log_yhat = _log_softmax_outputs(p, h)
        return h, o, np.exp(log_yhat)

    def _loss(self, p, x, y, h0, mask=None):
        _, log_yhat = _log_softmax_outputs(p, _hidden_states(p, x, h0, mask))
        return -np.vdot(y, log_yhat)  # (1.5)–(1.6) L = −Σ_t Σ_k y_k(t) log ŷ_k(t)

    def _gradients(self, p, x, y, h0, mask=None):
        T, B, D = x.shape
        h = _hidden_states(p, x, h0, mask)
        loss, e_rows = _loss_and_output_errors(p, h, y)  # (1.6), (2.1); e(t) = 0 where masked
        H = h.shape[-1]
        delta = np.matmul(e_rows, p.V).reshape(T, B, H)  # Vᵀ e(t) for every t, then δ(t) in place
        scratch = np.empty_like(h0)
        h0_grad = None
        if mask is None:
            for t in reversed(range(T)):  # (3.1)–(3.2) δ(t) = D_t (Vᵀ e(t) + Wᵀ δ(t+1)), rows
                if t + 1 < T:
                    delta[t] += np.matmul(delta[t + 1], p.W, out=scratch)
                delta[t] *= np.subtract(1, np.square(h[t], out=scratch), out=scratch)
        else:
            kept = mask[..., None].astype(x.dtype)  # m(t) as 0 or 1, rows
            carried = np.zeros_like(h0)  # Wᵀ δ(t+1) + (1 − m(t+1)) ∇_{h(t+1)} L, rows
            for t in reversed(range(T)):
                delta[t] += carried  # (9.8) ∇_{h(t)} L
                np.subtract(delta[t], np.multiply(delta[t], kept[t], out=carried), out=carried)
                delta[t] *= np.subtract(1, np.square(h[t], out=scratch), out=scratch)
                delta[t] *= kept[t]  # (9.9) δ(t) = m(t) D_t ∇_{h(t)} L
                carried += np.matmul(delta[t], p.W, out=scratch)
            h0_grad = carried  # (9.10) Wᵀ δ(1) + (1 − m(1)) ∇_{h(1)} L
        rows = (x.reshape(T * B, D), h.reshape(T * B, H), e_rows, delta.reshape(T * B, H))
        return loss, base.grads_from_deltas(
            base.ARRAY_METHOD_OPS, p, x, h0, B, rows, h0_grad
        )  # (3.3)–(3.5)

    def _lag_norms(self, p, x, y, h0, lags):
        T, B, H = x.shape[0], x.shape[1], p.W.shape[0]
        h = _hidden_states(p, x, h0)
        _, e_rows = _loss_and_output_errors(p, h, y)
        h_prev = np.concatenate([h0[None], h[:-1]])
        norms = np.zeros((lags, 7), x.dtype)  # columns U, W, b, V, c, h0, x
        h_rows = h.reshape(T * B, H)
        norms[0, 3:5] = np.linalg.norm(e_rows.T @ h_rows), np.linalg.norm(e_rows.sum(0))  # lag 0
        for j, slab in enumerate(base.lag_deltas(p, h, e_rows, lags)):
            G_U, G_W, G_b, G_h0, G_x = base.lag_grads(p, x, h_prev, slab)
            norms[j, [0, 1, 2, 5, 6]] = [np.linalg.norm(g) for g in (G_U, G_W, G_b, G_h0, G_x)]
        return tuple(norms.T.copy())

    def _truncated_gradients(self, p, x, y, h0, k):
        T, B, D = x.shape
        h = _hidden_states(p, x, h0)
        loss, e_rows = _loss_and_output_errors(p, h, y)
        H = h.shape[-1]
        delta = np.zeros_like(h)  # Σ_{j<k} δ_t(t + j) at row t: (10.3) through (3.3)–(3.5)
        for slab in base.lag_deltas(p, h, e_rows, k):
            delta[: len(slab)] += slab
        rows = (x.reshape(T * B, D), h.reshape(T * B, H), e_rows, delta.reshape(T * B, H))
        return loss, base.grads_from_deltas(base.ARRAY_METHOD_OPS, p, x, h0, B, rows)

    def _tbptt_gradients(self, p, x, y, h0, plan):
        _, B, D = x.shape
        h = _hidden_states(p, x, h0)
        step_losses, e = _step_losses_and_output_errors(p, h, y)
        h_prev = np.concatenate([h0[None], h[:-1]])
        k = plan.steps.shape[0]  # offsets i = τ − t, for every window w at once
        e_w = e[plan.steps] * plan.losses  # e(t) of the window's own loss steps (10.6)
        derivative = (1 - h[plan.steps] ** 2) * plan.inside  # D_t, zero outside the window
        delta = np.matmul(e_w, p.V) * derivative
        for i in range(1, k):  # (3.1)–(3.2) within each window, backwards in t = forwards in i
            delta[i] += np.matmul(delta[i - 1], p.W) * derivative[i]

        grads = base.window_grads(p, x, h, h_prev, e_w, delta, plan, B, D)
        losses = (step_losses[plan.steps] * plan.losses[..., 0, 0]).sum(0)
        return losses, grads

    def _jacobian_norms(self, p, x, h0):
        T, B = x.shape[:2]
        derivative = 1 - _hidden_states(p, x, h0) ** 2
        jacobian = np.broadcast_to(np.eye(p.W.shape[0], dtype=x.dtype), (B, *p.W.shape))
        norms = np.empty((T - 1, B), x.dtype)
        for j in range(1, T):  # (10.7) ∂h(T)/∂h(T−j) = ∂h(T)/∂h(T−j+1) · D_{T−j+1} W
            jacobian = (jacobian * derivative[T - j][:, None, :]) @ p.W
            norms[j - 1] = np.linalg.norm(jacobian, 2, axis=(1, 2))
        return norms, norms.mean(axis=1), np.linalg.norm(p.W, 2).astype(x.dtype)
