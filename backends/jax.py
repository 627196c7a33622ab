"""JAX backend: SPEC.md form B with the input projection and the output layer hoisted out of the
time loop, so that only the recurrence itself scans over t. Keeps the input dtype and device.

The eight kernels (forward, loss, gradients, autodiff gradients, and §10's lag norms, truncated and
TBPTT gradients and Jacobian norms; with them the one-hot targets, the finiteness check and the
masking) are module-level ``jax.jit`` functions, compiled once per shape, dtype and φ (``phi`` is
static) and shared by every instance; they run on the device their (committed) inputs live on. The
five kernels of a network and of the layer alone (§12–§13), base.py's over this module's one-cell
scans, are each one ``jax.jit`` too, the ``model`` static as well.
float64 needs JAX's x64 mode, which this module never switches on: that is the user's global
setting.

On a GPU each iteration of a compiled loop costs a launch and a check of the loop's condition on the
host, which dwarfs one step's small products: there every kernel's scans are unrolled by
``GPU_UNROLL`` steps per iteration (the static ``unroll`` keyword; the results do not change, only
the loop's shape does).
"""

import sys
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from rnnspec.backends import base
from rnnspec.spec import Grads, Params, SpecError

#: φ and φ′ written in h = φ(a) (SPEC.md §1, (2.2)); autodiff differentiates φ itself
NONLINEARITIES = {
    "tanh": base.Nonlinearity(jnp.tanh, lambda h: 1 - h * h),
    "relu": base.Nonlinearity(jax.nn.relu, lambda h: h > 0),
}

#: steps per loop iteration on a GPU (on the CPU one: there unrolling only lengthens compilation)
GPU_UNROLL = 16

#: what every kernel's jit holds static: φ's name and the loops' unrolling
_static = partial(jax.jit, static_argnames=("phi", "unroll"))


def _hidden_states(p: Params, x, h0, phi: str, mask=None, unroll: int = 1):
    """h(1..T): U x(t) + b for every t in one matrix product, then the recurrence (1.1)–(1.2);
    with a mask, (9.1): a masked step carries h(t−1) over."""
    T, B, D = x.shape
    inputs = (x.reshape(T * B, D) @ p.U.T + p.b).reshape(T, B, -1)
    activation = NONLINEARITIES[phi].phi

    def step(h_prev, input_t):  # input_t = U x(t) + b
        h_t = activation(input_t + h_prev @ p.W.T)
        return h_t, h_t

    def masked_step(h_prev, inputs_t):
        input_t, kept_t = inputs_t
        h_t = jnp.where(kept_t[:, None], activation(input_t + h_prev @ p.W.T), h_prev)
        return h_t, h_t

    if mask is None:
        _, h = lax.scan(step, h0, inputs, unroll=unroll)
    else:
        _, h = lax.scan(masked_step, h0, (inputs, mask), unroll=unroll)
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


def _step_losses_and_output_errors(p: Params, h, y):
    """L(t) summed over the batch, (T,), and e(t) (2.1), (T, B, K): TBPTT needs each step's loss."""
    _, log_yhat = _log_softmax_outputs(p, h)
    return -(y * log_yhat).sum(axis=(1, 2)), y.sum(axis=-1, keepdims=True) * jnp.exp(log_yhat) - y


def _next_lag(p: Params, slab, derivative):
    """(10.2) lag j from lag j − 1: row k becomes D_k Wᵀ (row k + 1); rows past T − j are zero,
    so that every slab keeps the shape (T, B, H) that a compiled loop needs."""
    shifted = jnp.concatenate([slab[1:], jnp.zeros_like(slab[:1])])
    return (shifted @ p.W) * derivative


@jax.jit
def _all_finite(arrays):
    return jnp.all(jnp.stack([jnp.isfinite(array).all() for array in arrays]))


#: one compiled dispatch, not the several of an eager jax.nn.one_hot
_one_hot = jax.jit(jax.nn.one_hot, static_argnums=1, static_argnames="dtype")


@jax.jit
def _zero_masked(array, mask):
    return jnp.where(mask.reshape(mask.shape + (1,) * (array.ndim - 2)), array, 0)


@_static
def forward(p: Params, x, h0, phi: str = "tanh", mask=None, unroll: int = 1):
    h = _hidden_states(p, x, h0, phi, mask, unroll)
    o, log_yhat = _log_softmax_outputs(p, h)
    return h, o, jnp.exp(log_yhat)


@_static
def loss(p: Params, x, y, h0, phi: str = "tanh", mask=None, unroll: int = 1):
    _, log_yhat = _log_softmax_outputs(p, _hidden_states(p, x, h0, phi, mask, unroll))
    return -jnp.vdot(y, log_yhat)  # (1.5)–(1.6) L = −Σ_t Σ_k y_k(t) log ŷ_k(t)


def _cell_deltas(p: Params, h, grad_h, h0, phi: str = "tanh", mask=None, final=None,
                 unroll: int = 1):  # fmt: skip
    """δ(t) for t = T..1 (3.1)–(3.2), (9.8)–(9.9), one reverse scan from ``grad_h``, ∂ℓ/∂h(t) from
    above (Vᵀ e(t) from the head, or a layer's gradient, (12.4)); ``final`` ∂ℓ/∂h(T) of the last
    state (13.1). Returns δ and ∇h(0) where a mask carries the gradient past step 1 (9.10), else
    None."""
    derivative = NONLINEARITIES[phi].derivative  # (2.2) D_t from h(t)

    def step(delta_next, inputs):  # (3.1)–(3.2) δ(t) = D_t (Vᵀ e(t) + Wᵀ δ(t+1)), rows
        grad_h_t, h_t = inputs
        delta_t = (grad_h_t + delta_next @ p.W) * derivative(h_t)
        return delta_t, delta_t

    def masked_step(carried, inputs):  # carried: Wᵀ δ(t+1) + (1 − m(t+1)) ∇_{h(t+1)} L, rows
        grad_h_t, h_t, kept_t = inputs
        grad_h_t = grad_h_t + carried  # (9.8) ∇_{h(t)} L
        # (9.9) δ(t) = m(t) D_t ∇_{h(t)} L; the carry passes ∇_{h(t)} L on where m(t) = 0
        delta_t = jnp.where(kept_t[:, None], grad_h_t * derivative(h_t), 0)
        return delta_t @ p.W + jnp.where(kept_t[:, None], 0, grad_h_t), delta_t

    if mask is None:
        if final is not None:
            grad_h = grad_h.at[-1].add(final)
        _, delta = lax.scan(step, jnp.zeros_like(h0), (grad_h, h), reverse=True, unroll=unroll)
        return delta, None
    carried = jnp.zeros_like(h0) if final is None else final
    # (9.10) ∇_{h(0)} L = Wᵀ δ(1) + (1 − m(1)) ∇_{h(1)} L, the last carry
    h0_grad, delta = lax.scan(masked_step, carried, (grad_h, h, mask), reverse=True, unroll=unroll)
    return delta, h0_grad


@_static
def gradients(p: Params, x, y, h0, phi: str = "tanh", mask=None, unroll: int = 1):
    T, B, D = x.shape
    h = _hidden_states(p, x, h0, phi, mask, unroll)
    loss, e_rows = _loss_and_output_errors(p, h, y)  # (1.6), (2.1); e(t) = 0 where masked
    H = h.shape[-1]
    grad_h = (e_rows @ p.V).reshape(T, B, H)  # Vᵀ e(t) for every t
    delta, h0_grad = _cell_deltas(p, h, grad_h, h0, phi, mask, unroll=unroll)
    rows = (x.reshape(T * B, D), h.reshape(T * B, H), e_rows, delta.reshape(T * B, H))
    return loss, base.grads_from_deltas(
        base.ARRAY_METHOD_OPS, p, x, h0, B, rows, h0_grad
    )  # (3.3)–(3.5)


@partial(jax.jit, static_argnames=("phi", "unroll", "model"))
def autodiff_gradients(p: Params, x, y, h0, phi: str = "tanh", mask=None, unroll: int = 1,
                       model=None):  # fmt: skip
    if model is None or not model.stacked:
        of = partial(loss, phi=phi, mask=mask, unroll=unroll)  # φ differentiated by JAX itself
    else:  # §12: through every cell's scan; h0 (cells, B, H), and so its gradient
        of = partial(stack_loss, model=model, phi=phi, mask=mask, unroll=unroll)
    value, (dp, dx, dh0) = jax.value_and_grad(of, argnums=(0, 1, 3))(p, x, y, h0)
    return value, Grads(U=dp.U, W=dp.W, b=dp.b, V=dp.V, c=dp.c, h0=dh0, x=dx)


@partial(jax.jit, static_argnames=("lags", "phi", "unroll"))
def lag_norms(p: Params, x, y, h0, lags: int, phi: str = "tanh", unroll: int = 1):
    T, B, D = x.shape
    h = _hidden_states(p, x, h0, phi, unroll=unroll)
    _, e_rows = _loss_and_output_errors(p, h, y)
    H = h.shape[-1]
    derivative = NONLINEARITIES[phi].derivative(h)  # (2.2) D_k
    h_prev = jnp.concatenate([h0[None], h[:-1]])

    def lag(slab, _):  # the norms of (10.1) G_j for U, W, b, h0, x; then the next lag's slab
        rows = slab.reshape(T * B, H)
        norms = jnp.stack([
            jnp.linalg.norm(rows.T @ x.reshape(T * B, D)),  # Σ_k δ_k(k + j) x(k)ᵀ
            jnp.linalg.norm(rows.T @ h_prev.reshape(T * B, H)),  # Σ_k δ_k(k + j) h(k − 1)ᵀ
            jnp.linalg.norm(rows.sum(0)),
            jnp.linalg.norm(slab[0] @ p.W),  # Wᵀ δ_1(1 + j)
            jnp.linalg.norm(slab @ p.U),  # Uᵀ δ_k(k + j)
        ])  # fmt: skip
        return _next_lag(p, slab, derivative), norms

    first = (e_rows @ p.V).reshape(T, B, H) * derivative  # lag 0: D_k Vᵀ e(k)
    _, norms = lax.scan(lag, first, length=lags, unroll=min(unroll, lags))
    zero = jnp.zeros_like(norms[1:, 0])
    V = jnp.concatenate([jnp.linalg.norm(e_rows.T @ h.reshape(T * B, H))[None], zero])
    c = jnp.concatenate([jnp.linalg.norm(e_rows.sum(0))[None], zero])
    return norms[:, 0], norms[:, 1], norms[:, 2], V, c, norms[:, 3], norms[:, 4]


@_static
def truncated_gradients(p: Params, x, y, h0, k, phi: str = "tanh", unroll: int = 1):
    T, B, D = x.shape
    h = _hidden_states(p, x, h0, phi, unroll=unroll)
    loss, e_rows = _loss_and_output_errors(p, h, y)
    H = h.shape[-1]
    derivative = NONLINEARITIES[phi].derivative(h)  # (2.2) D_k
    first = (e_rows @ p.V).reshape(T, B, H) * derivative  # lag 0: D_k Vᵀ e(k)

    def add_lag(_, carry):  # Σ_{j<k} δ_t(t + j) at row t: (10.3) through (3.3)–(3.5)
        slab, total = carry
        slab = _next_lag(p, slab, derivative)
        return slab, total + slab

    # k is traced, so that every k shares one compilation; a loop of traced length stays rolled
    _, delta = lax.fori_loop(1, k, add_lag, (first, first))
    rows = (x.reshape(T * B, D), h.reshape(T * B, H), e_rows, delta.reshape(T * B, H))
    return loss, base.grads_from_deltas(base.ARRAY_METHOD_OPS, p, x, h0, B, rows)


@_static
def tbptt_gradients(p: Params, x, y, h0, plan, phi: str = "tanh", unroll: int = 1):
    _, B, D = x.shape
    h = _hidden_states(p, x, h0, phi, unroll=unroll)
    step_losses, e = _step_losses_and_output_errors(p, h, y)
    h_prev = jnp.concatenate([h0[None], h[:-1]])
    e_w = e[plan.steps] * plan.losses  # e(t) of the window's own loss steps (10.6)
    # D_t, zero outside the window; offsets i = τ − t, for every window w at once
    derivative = NONLINEARITIES[phi].derivative(h[plan.steps]) * plan.inside

    def step(delta_prev, inputs):  # (3.1)–(3.2) within each window, backwards in t = forwards in i
        output_grad_i, derivative_i = inputs
        delta_i = (output_grad_i + delta_prev @ p.W) * derivative_i
        return delta_i, delta_i

    _, delta = lax.scan(step, jnp.zeros_like(derivative[0]), (e_w @ p.V, derivative), unroll=unroll)

    grads = base.window_grads(p, x, h, h_prev, e_w, delta, plan, B, D)
    return (step_losses[plan.steps] * plan.losses[..., 0, 0]).sum(0), grads


@_static
def jacobian_norms(p: Params, x, h0, phi: str = "tanh", unroll: int = 1):
    B = x.shape[1]
    derivative = NONLINEARITIES[phi].derivative(_hidden_states(p, x, h0, phi, unroll=unroll))

    def lag(jacobian, derivative_i):  # (10.7) ∂h(T)/∂h(T−j) = ∂h(T)/∂h(T−j+1) · D_{T−j+1} W
        jacobian = (jacobian * derivative_i[:, None, :]) @ p.W
        return jacobian, jnp.linalg.norm(jacobian, 2, axis=(1, 2))

    eye = jnp.broadcast_to(jnp.eye(p.W.shape[0], dtype=x.dtype), (B, *p.W.shape))
    _, norms = lax.scan(lag, eye, derivative[:0:-1], unroll=unroll)  # D_T, D_{T−1}, …, D_2
    return norms, norms.mean(axis=1), jnp.linalg.norm(p.W, 2)


STACK_ARRAYS = base.StackArrays(
    hidden_states=_hidden_states,
    cell_deltas=_cell_deltas,
    outputs=_log_softmax_outputs,
    loss_and_output_errors=_loss_and_output_errors,
    flip=lambda a: a[::-1],
    concatenate_last=lambda arrays: jnp.concatenate(arrays, axis=-1),
    stack=jnp.stack,
    rows=lambda a: a.reshape(-1, a.shape[-1]),
    exp=jnp.exp,
    ops=base.ARRAY_METHOD_OPS,
)


def _stack_kernel(position: int, name: str):
    """The kernel at ``position`` of ``base.stack_kernels``, one ``jax.jit`` over the whole network
    (its Python loop over cells unrolled in the trace): ``model``, φ and ``unroll`` static, every
    cell's scans unrolled by ``unroll``."""

    def kernel(*args, model, phi: str = "tanh", mask=None, unroll: int = 1):
        arrays = STACK_ARRAYS._replace(
            hidden_states=partial(_hidden_states, unroll=unroll),
            cell_deltas=partial(_cell_deltas, unroll=unroll),
        )
        return base.stack_kernels(arrays)[position](*args, model=model, phi=phi, mask=mask)

    kernel.__name__ = kernel.__qualname__ = name
    return partial(jax.jit, static_argnames=("model", "phi", "unroll"))(kernel)


stack_forward, stack_loss, stack_gradients, layer_forward, layer_gradients = (
    _stack_kernel(position, name)
    for position, name in enumerate(
        ("stack_forward", "stack_loss", "stack_gradients", "layer_forward", "layer_gradients")
    )
)


class JaxBackend(base.ClosedFormAutodiffBackend):
    name = "jax"
    framework_version = f"jax {jax.__version__}"
    capabilities = base.capabilities(NONLINEARITIES, devices=("cpu", "gpu"), stacks=True)
    kernels = sys.modules[__name__]

    device_names = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu"}

    def _visible_devices(self, kind):
        try:
            return [f"{d.platform}:{d.id}" for d in jax.devices(kind)]
        except RuntimeError:  # no backend for the platform at all
            return []

    def _open_device(self, kind, index):
        self._device = jax.devices(kind)[index]
        if kind == "gpu":  # every kernel's scans unrolled; the CPU keeps the default of one step
            self._kernel_options = {"unroll": GPU_UNROLL}
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

    def _all_finite(self, arrays):
        if self._on_cpu:
            return base.host_all_finite(arrays)
        return bool(_all_finite(arrays))

    def _zeros_state(self, x, H):
        return jnp.zeros_like(x, shape=(x.shape[1], H))  # x's dtype, on x's device

    def _zero_masked(self, array, mask):
        return _zero_masked(array, mask)

    def _one_hot(self, y, K, dtype):
        return _one_hot(y, K, dtype=np.dtype(dtype))

    def enforce_full_precision(self) -> str:
        jax.config.update("jax_default_matmul_precision", "highest")
        return (
            "jax.config.update('jax_default_matmul_precision', 'highest'): "
            "float32 matmuls in full float32, not TF32 or bfloat16 passes (a global JAX setting)"
        )
