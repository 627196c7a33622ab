"""JAX backend: SPEC.md form B with the input projection and the output layer hoisted out of the
time loop, so that only the recurrence itself scans over t. Keeps the input dtype and device.

The four kernels (and the one-hot targets) are module-level ``jax.jit`` functions, compiled once
per shape and dtype and shared by every instance; they run on the device their (committed) inputs
live on. float64 needs JAX's x64 mode, which this module never switches on: that is the user's
global setting.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from rnnspec.backends import base
from rnnspec.spec import Capabilities, Grads, Params, SpecError


def _hidden_states(p: Params, x, h0, mask=None):
    """h(1..T): U x(t) + b for every t in one matrix product, then the recurrence (1.1)–(1.2);
    with a mask, (9.1): a masked step carries h(t−1) over."""
    T, B, D = x.shape
    inputs = (x.reshape(T * B, D) @ p.U.T + p.b).reshape(T, B, -1)

    def step(h_prev, input_t):  # input_t = U x(t) + b
        h_t = jnp.tanh(input_t + h_prev @ p.W.T)
        return h_t, h_t

    def masked_step(h_prev, inputs_t):
        input_t, kept_t = inputs_t
        h_t = jnp.where(kept_t[:, None], jnp.tanh(input_t + h_prev @ p.W.T), h_prev)
        return h_t, h_t

    if mask is None:
        _, h = lax.scan(step, h0, inputs)
    else:
        _, h = lax.scan(masked_step, h0, (inputs, mask))
    return h


def _log_softmax_outputs(p: Params, h):
    """o(t) = c + V h(t) for all T·B rows in one product (1.3), and log ŷ(t) (1.4)."""
    T, B, H = h.shape
    o = (h.reshape(T * B, H) @ p.V.T + p.c).reshape(T, B, -1)
    return o, jax.nn.log_softmax(o, axis=-1)


def _loss_and_output_errors(p: Params, h, y):
    """L (1.3)–(1.6) and e(t) = (Σ_k y_k) ŷ − y (2.1) for all T·B rows, with one exp.

    With s = o − max o and Z = Σ_j exp(s_j): log ŷ = s − log Z, so L = Σ_rows ((Σ_k y_k) log Z −
    Σ_k y_k s_k), two sums of non-negative terms, and e = (Σ_k y_k / Z) exp(s) − y.
    """
    T, B, H = h.shape
    y_rows = y.reshape(T * B, -1)
    o = h.reshape(T * B, H) @ p.V.T + p.c  # o(t) = c + V h(t) for all T·B rows (1.3)
    s = o - o.max(axis=1, keepdims=True)
    exp_s = jnp.exp(s)
    Z, y_sums = exp_s.sum(axis=1), y_rows.sum(axis=1)
    loss = jnp.vdot(y_sums, jnp.log(Z)) - jnp.vdot(y_rows, s)
    return loss, (y_sums / Z)[:, None] * exp_s - y_rows


@jax.jit
def _forward(p: Params, x, h0, mask=None):
    h = _hidden_states(p, x, h0, mask)
    o, log_yhat = _log_softmax_outputs(p, h)
    return h, o, jnp.exp(log_yhat)


@jax.jit
def _loss(p: Params, x, y, h0, mask=None):
    _, log_yhat = _log_softmax_outputs(p, _hidden_states(p, x, h0, mask))
    return -jnp.vdot(y, log_yhat)  # (1.5)–(1.6) L = −Σ_t Σ_k y_k(t) log ŷ_k(t)


@jax.jit
def _gradients(p: Params, x, y, h0, mask=None):
    T, B, D = x.shape
    h = _hidden_states(p, x, h0, mask)
    loss, e_rows = _loss_and_output_errors(p, h, y)  # (1.6), (2.1); e(t) = 0 where masked
    H = h.shape[-1]
    output_grad = (e_rows @ p.V).reshape(T, B, H)  # Vᵀ e(t) for every t

    def step(delta_next, inputs):  # (3.1)–(3.2) δ(t) = D_t (Vᵀ e(t) + Wᵀ δ(t+1)), rows
        output_grad_t, h_t = inputs
        delta_t = (output_grad_t + delta_next @ p.W) * (1 - h_t * h_t)
        return delta_t, delta_t

    def masked_step(carried, inputs):  # carried: Wᵀ δ(t+1) + (1 − m(t+1)) ∇_{h(t+1)} L, rows
        output_grad_t, h_t, kept_t = inputs
        grad_h = output_grad_t + carried  # (9.8) ∇_{h(t)} L
        # (9.9) δ(t) = m(t) D_t ∇_{h(t)} L; the carry passes ∇_{h(t)} L on where m(t) = 0
        delta_t = jnp.where(kept_t[:, None], grad_h * (1 - h_t * h_t), 0)
        return delta_t @ p.W + jnp.where(kept_t[:, None], 0, grad_h), delta_t

    h0_grad = None
    if mask is None:
        _, delta = lax.scan(step, jnp.zeros_like(h0), (output_grad, h), reverse=True)
    else:  # (9.10) ∇_{h(0)} L = Wᵀ δ(1) + (1 − m(1)) ∇_{h(1)} L, the last carry
        h0_grad, delta = lax.scan(
            masked_step, jnp.zeros_like(h0), (output_grad, h, mask), reverse=True
        )
    rows = (x.reshape(T * B, D), h.reshape(T * B, H), e_rows, delta.reshape(T * B, H))
    return loss, base.grads_from_deltas(
        base.ARRAY_METHOD_OPS, p, x, h0, B, rows, h0_grad
    )  # (3.3)–(3.5)


@jax.jit
def _autodiff_gradients(p: Params, x, y, h0, mask=None):
    loss, (dp, dx, dh0) = jax.value_and_grad(_loss, argnums=(0, 1, 3))(p, x, y, h0, mask)
    return loss, Grads(U=dp.U, W=dp.W, b=dp.b, V=dp.V, c=dp.c, h0=dh0, x=dx)


#: one compiled dispatch, not the several of an eager jax.nn.one_hot
_one_hot = jax.jit(jax.nn.one_hot, static_argnums=1, static_argnames="dtype")


@jax.jit
def _zero_masked(array, mask):
    return jnp.where(mask.reshape(mask.shape + (1,) * (array.ndim - 2)), array, 0)


class JaxBackend(base.ClosedFormAutodiffBackend):
    name = "jax"
    framework_version = f"jax {jax.__version__}"
    capabilities = Capabilities(autodiff=True, devices=("cpu", "gpu"), masks=True)

    device_names = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu"}

    def _visible_devices(self, kind):
        try:
            return [f"{d.platform}:{d.id}" for d in jax.devices(kind)]
        except RuntimeError:  # no backend for the platform at all
            return []

    def _open_device(self, kind, index):
        self._device = jax.devices(kind)[index]
        return f"{self._device.platform}:{self._device.id}"

    def asarray(self, array: np.ndarray, dtype: Any = None) -> jax.Array:
        array = np.array(array, dtype=dtype, copy=True)
        if array.dtype == np.float64 and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
            raise SpecError(
                "float64 arrays need JAX's x64 mode, which is off: call "
                'jax.config.update("jax_enable_x64", True) at startup or set JAX_ENABLE_X64=1'
            )
        return jax.device_put(array, self._device)  # int64 becomes int32 without x64 mode

    def to_numpy(self, array: jax.Array) -> np.ndarray:
        return np.array(jax.device_get(array), copy=True)

    def is_native(self, array: Any) -> bool:
        return (
            isinstance(array, jax.Array)
            and not isinstance(array, jax.core.Tracer)
            and array.devices() == {self._device}
        )

    def _all_finite(self, array):
        return bool(jnp.isfinite(array).all())

    def _zeros_state(self, x, H):
        return jnp.zeros_like(x, shape=(x.shape[1], H))  # x's dtype, on x's device

    def _zero_masked(self, array, mask):
        return _zero_masked(array, mask)

    def _one_hot(self, y, K, dtype):
        return _one_hot(y, K, dtype=np.dtype(dtype))

    # the kernels are the module's jitted functions above, one compilation cache for all instances
    _forward = staticmethod(_forward)
    _loss = staticmethod(_loss)
    _gradients = staticmethod(_gradients)
    _autodiff_gradients = staticmethod(_autodiff_gradients)

    def enforce_full_precision(self) -> str:
        jax.config.update("jax_default_matmul_precision", "highest")
        return (
            "jax.config.update('jax_default_matmul_precision', 'highest'): "
            "float32 matmuls in full float32, not TF32 or bfloat16 passes (a global JAX setting)"
        )
