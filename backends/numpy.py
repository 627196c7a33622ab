"""NumPy backend: SPEC.md form B with the input projection and the output layer hoisted out of the
time loop, so that only the recurrence itself loops over t. Keeps the input dtype."""

from typing import Any

import numpy as np

from backends import BackendError
from backends.base import ClosedFormBackend
from spec import Grads, Params


def _hidden_states(p: Params, x, h0):
    """h(1..T): U x(t) + b for every t in one matrix product, then the recurrence (1.1)–(1.2)."""
    T, B, D = x.shape
    h = (x.reshape(T * B, D) @ p.U.T + p.b).reshape(T, B, -1)
    h_prev = h0
    for t in range(T):  # h[t] holds U x(t) + b until it is overwritten by h(t)
        h_prev = np.tanh(h[t] + h_prev @ p.W.T, out=h[t])
    return h


def _log_softmax_outputs(p: Params, h):
    """o(t) = c + V h(t) for all T·B rows in one product (1.3), and log ŷ(t) (1.4)."""
    T, B, H = h.shape
    o = (h.reshape(T * B, H) @ p.V.T + p.c).reshape(T, B, -1)
    shifted = o - o.max(axis=-1, keepdims=True)
    return o, shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class NumpyBackend(ClosedFormBackend):
    name = "numpy"
    framework_version = f"numpy {np.__version__}"

    def __init__(self, device: str | None = None):
        if device not in (None, "cpu"):
            raise BackendError(f"the numpy backend runs on 'cpu' only, got device={device!r}")
        self.device = "cpu"

    def asarray(self, array: np.ndarray, dtype: Any = None) -> np.ndarray:
        return np.array(array, dtype=dtype, copy=True)

    def to_numpy(self, array: np.ndarray) -> np.ndarray:
        return np.array(array, copy=True)

    def is_native(self, array: Any) -> bool:
        return isinstance(array, np.ndarray | np.generic)

    def _zeros_state(self, x, H):
        return np.zeros((x.shape[1], H), dtype=x.dtype)

    def _one_hot(self, y, K, dtype):
        return np.eye(K, dtype=dtype)[y]

    def _only_step(self, y, t):
        masked = np.zeros_like(y)
        masked[t - 1] = y[t - 1]
        return masked

    def _forward(self, p, x, h0):
        h = _hidden_states(p, x, h0)
        o, log_yhat = _log_softmax_outputs(p, h)
        return h, o, np.exp(log_yhat)

    def _loss(self, p, x, y, h0):
        _, log_yhat = _log_softmax_outputs(p, _hidden_states(p, x, h0))
        return -np.vdot(y, log_yhat)  # (1.5)–(1.6) L = −Σ_t Σ_k y_k(t) log ŷ_k(t)

    def _gradients(self, p, x, y, h0):
        T, B, D = x.shape
        h = _hidden_states(p, x, h0)
        _, log_yhat = _log_softmax_outputs(p, h)
        loss = -np.vdot(y, log_yhat)
        e = y.sum(axis=-1, keepdims=True) * np.exp(log_yhat) - y  # (2.1) e(t) = (Σ_k y_k) ŷ − y
        H, K = h.shape[-1], e.shape[-1]
        e_rows, h_rows = e.reshape(T * B, K), h.reshape(T * B, H)
        dV = e_rows.T @ h_rows  # (3.4) Σ_t e(t) h(t)ᵀ, all T·B rows in one product
        dc = e_rows.sum(axis=0)
        delta = (e_rows @ p.V).reshape(T, B, H)  # Vᵀ e(t) for every t, then δ(t) in place
        delta_next = np.zeros_like(h0)
        for t in reversed(range(T)):  # (3.1)–(3.2) δ(t) = D_t (Vᵀ e(t) + Wᵀ δ(t+1)), rows
            delta[t] += delta_next @ p.W
            delta[t] *= 1 - h[t] * h[t]
            delta_next = delta[t]
        delta_rows = delta.reshape(T * B, H)
        dU = delta_rows.T @ x.reshape(T * B, D)  # (3.3) Σ_t δ(t) x(t)ᵀ
        dW = delta[0].T @ h0 + delta_rows[B:].T @ h_rows[:-B]  # (3.3) Σ_t δ(t) h(t−1)ᵀ
        db = delta_rows.sum(axis=0)
        dh0 = delta[0] @ p.W  # (3.5) Wᵀ δ(1)
        dx = (delta_rows @ p.U).reshape(T, B, D)  # (3.5) Uᵀ δ(t)
        return loss, Grads(U=dU, W=dW, b=db, V=dV, c=dc, h0=dh0, x=dx)

    def _autodiff_gradients(self, p, x, y, h0):
        raise NotImplementedError("NumPy has no automatic differentiation")
