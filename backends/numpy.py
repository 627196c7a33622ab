"""NumPy backend: SPEC.md form B with the input projection and the output layer hoisted out of the
time loop, so that only the recurrence itself loops over t. Keeps the input dtype."""

import sys
from typing import Any

import numpy as np

from rnnspec.backends import base
from rnnspec.spec import Params

#: φ in place (out=) and φ′ written in h = φ(a) (SPEC.md §1, (2.2))
NONLINEARITIES = {
    "tanh": base.Nonlinearity(np.tanh, lambda h: 1 - h * h),
    "relu": base.Nonlinearity(lambda a, out=None: np.maximum(a, 0, out=out), lambda h: h > 0),
}


def _hidden_states(p: Params, x, h0, phi: str = "tanh", mask=None):
    """h(1..T): U x(t) + b for every t in one matrix product, then the recurrence (1.1)–(1.2);
    with a mask, (9.1): a masked step carries h(t−1) over."""
    T, B, D = x.shape
    h = np.matmul(x.reshape(T * B, D), p.U.T).reshape(T, B, -1)
    h += p.b
    W_T = np.ascontiguousarray(p.W.T)  # OpenBLAS multiplies a row-major Wᵀ faster than the view
    hW = np.empty_like(h0)
    h_prev = h0
    carried = None if mask is None else ~mask[..., None]
    activation = NONLINEARITIES[phi].phi
    for t, h_t in enumerate(h):  # h_t holds U x(t) + b until it is overwritten by h(t), in place
        activation(np.add(h_t, np.matmul(h_prev, W_T, out=hW), out=h_t), out=h_t)
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


def forward(p: Params, x, h0, phi: str = "tanh", mask=None):
    h = _hidden_states(p, x, h0, phi, mask)
    o, log_yhat = _log_softmax_outputs(p, h)
    return h, o, np.exp(log_yhat)


def loss(p: Params, x, y, h0, phi: str = "tanh", mask=None):
    _, log_yhat = _log_softmax_outputs(p, _hidden_states(p, x, h0, phi, mask))
    return -np.vdot(y, log_yhat)  # (1.5)–(1.6) L = −Σ_t Σ_k y_k(t) log ŷ_k(t)


def _cell_deltas(p: Params, h, grad_h, h0, phi: str = "tanh", mask=None, final=None):
    """δ(t) for t = T..1 (3.1)–(3.2), (9.8)–(9.9), written over ``grad_h``, ∂ℓ/∂h(t) from above
    (Vᵀ e(t) from the head, or a layer's gradient, (12.4)); ``final`` ∂ℓ/∂h(T) of the last state
    (13.1). Returns δ and ∇h(0) where a mask carries the gradient past step 1 (9.10), else None."""
    T = h.shape[0]
    delta = grad_h
    derivative = NONLINEARITIES[phi].derivative(h)  # (2.2) D_t for every t
    scratch = np.empty_like(h0)
    if mask is None:
        if final is not None:
            delta[T - 1] += final
        for t in reversed(range(T)):  # (3.1)–(3.2) δ(t) = D_t (Vᵀ e(t) + Wᵀ δ(t+1)), rows
            if t + 1 < T:
                delta[t] += np.matmul(delta[t + 1], p.W, out=scratch)
            delta[t] *= derivative[t]
        return delta, None
    kept = mask[..., None].astype(h.dtype)  # m(t) as 0 or 1, rows
    carried = (
        np.zeros_like(h0) if final is None else np.array(final)
    )  # Wᵀ δ(t+1) + (1 − m(t+1)) ∇_{h(t+1)} L, rows
    for t in reversed(range(T)):
        delta[t] += carried  # (9.8) ∇_{h(t)} L
        np.subtract(delta[t], np.multiply(delta[t], kept[t], out=carried), out=carried)
        delta[t] *= derivative[t]
        delta[t] *= kept[t]  # (9.9) δ(t) = m(t) D_t ∇_{h(t)} L
        carried += np.matmul(delta[t], p.W, out=scratch)
    return delta, carried  # (9.10) Wᵀ δ(1) + (1 − m(1)) ∇_{h(1)} L


def gradients(p: Params, x, y, h0, phi: str = "tanh", mask=None):
    T, B, D = x.shape
    h = _hidden_states(p, x, h0, phi, mask)
    loss, e_rows = _loss_and_output_errors(p, h, y)  # (1.6), (2.1); e(t) = 0 where masked
    H = h.shape[-1]
    grad_h = np.matmul(e_rows, p.V).reshape(T, B, H)  # Vᵀ e(t) for every t
    delta, h0_grad = _cell_deltas(p, h, grad_h, h0, phi, mask)
    rows = (x.reshape(T * B, D), h.reshape(T * B, H), e_rows, delta.reshape(T * B, H))
    return loss, base.grads_from_deltas(
        base.ARRAY_METHOD_OPS, p, x, h0, B, rows, h0_grad
    )  # (3.3)–(3.5)


ARRAYS = base.Arrays(
    nonlinearities=NONLINEARITIES,
    hidden_states=_hidden_states,
    loss_and_output_errors=_loss_and_output_errors,
    step_losses_and_output_errors=_step_losses_and_output_errors,
    concatenate=np.concatenate,
    stack=np.stack,
    zeros=lambda shape, like: np.zeros(shape, like.dtype),
    eye=lambda n, like: np.eye(n, dtype=like.dtype),
    norm=np.linalg.norm,
    spectral_norm=lambda a: np.linalg.norm(a, 2, axis=(-2, -1)),
)
lag_norms, truncated_gradients, tbptt_gradients, jacobian_norms = base.flow_kernels(ARRAYS)
STACK_ARRAYS = base.StackArrays(
    hidden_states=_hidden_states,
    cell_deltas=_cell_deltas,
    outputs=_log_softmax_outputs,
    loss_and_output_errors=_loss_and_output_errors,
    flip=lambda a: a[::-1],
    concatenate_last=lambda arrays: np.concatenate(arrays, axis=-1),
    stack=np.stack,
    rows=lambda a: a.reshape(-1, a.shape[-1]),
    exp=np.exp,
    ops=base.ARRAY_METHOD_OPS,
)
stack_forward, stack_loss, stack_gradients, layer_forward, layer_gradients = base.stack_kernels(
    STACK_ARRAYS
)


class NumpyBackend(base.ClosedFormBackend):
    name = "numpy"
    framework_version = f"numpy {np.__version__}"
    capabilities = base.capabilities(NONLINEARITIES, devices=("cpu",), autodiff=False, stacks=True)
    kernels = sys.modules[__name__]

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
