"""TensorFlow backend: SPEC.md form B with the input projection and the output layer hoisted out of
the time loop, so that only the recurrence itself scans over t. Keeps the input dtype.

The kernels are module-level ``tf.function``s shared by every instance, traced once per dtype and
φ (``phi``, a Python string) and generalized over sizes (``reduce_retracing``); the class runs
them under ``tf.device`` (its ``_scope``). ``lag_norms``, ``truncated_gradients`` and
``jacobian_norms`` are plain functions in front of theirs: the first two pass the lag count as a
tensor (one trace for every count), the third answers T = 1, which has no lag, itself. The stack
kernels (SPEC.md §12–§13), written once in base over this module's one-cell recursions, are traced
by ``_compiled``, once per model, batch size and width too; ``autodiff_gradients``, a plain
function as well, passes a stack's model to its ``tf.function`` the same way, as Python values.
The loss is −Σ y ⊙ log_softmax(o), never ``tf.nn.softmax_cross_entropy_with_logits``, whose
gradient is ŷ − y whatever Σ_k y_k is: (2.1) needs e(t) = (Σ_k y_k) ŷ − y for soft targets.
"""

import dataclasses
import sys
from typing import Any

import numpy as np
import tensorflow as tf

from rnnspec.backends import base
from rnnspec.spec import Grads, Model, Params

#: φ and φ′ written in h = φ(a) (SPEC.md §1, (2.2))
NONLINEARITIES = {
    "tanh": base.Nonlinearity(tf.tanh, lambda h: 1 - h * h),
    "relu": base.Nonlinearity(tf.nn.relu, lambda h: tf.cast(h > 0, h.dtype)),
}

OPS = base.Ops(
    t_matmul=lambda a, b: tf.matmul(a, b, transpose_a=True),
    sum_rows=lambda a: tf.reduce_sum(a, axis=0),
    reshape_like=lambda a, like: tf.reshape(a, tf.shape(like)),
)


def _hidden_states(p: Params, x, h0, phi: str, mask=None):
    """h(1..T): U x(t) + b for every t in one matrix product, then the recurrence (1.1)–(1.2);
    with a mask, (9.1): a masked step carries h(t−1) over."""
    T, B, D = tf.unstack(tf.shape(x))
    inputs = tf.reshape(
        tf.matmul(tf.reshape(x, [T * B, D]), p.U, transpose_b=True) + p.b, [T, B, -1]
    )
    W_T = tf.transpose(p.W)  # once, not a transposed product at every step
    activation = NONLINEARITIES[phi].phi

    def step(h_prev, input_t):  # input_t = U x(t) + b
        return activation(input_t + tf.matmul(h_prev, W_T))

    def masked_step(h_prev, inputs_t):
        input_t, kept_t = inputs_t
        return tf.where(kept_t[:, None], activation(input_t + tf.matmul(h_prev, W_T)), h_prev)

    if mask is None:
        return tf.scan(step, inputs, initializer=h0)
    return tf.scan(masked_step, (inputs, mask), initializer=h0)


def _log_softmax_outputs(p: Params, h):
    """o(t) = c + V h(t) for all T·B rows in one product (1.3), and log ŷ(t) (1.4)."""
    T, B, H = tf.unstack(tf.shape(h))
    o = tf.reshape(tf.matmul(tf.reshape(h, [T * B, H]), p.V, transpose_b=True) + p.c, [T, B, -1])
    return o, tf.nn.log_softmax(o)


def _loss_and_output_errors(p: Params, h, y):
    """L (1.3)–(1.6) and e(t) = (Σ_k y_k) ŷ − y (2.1) for all T·B rows, with one exp.

    With s = o − max o and Z = Σ_j exp(s_j): log ŷ = s − log Z, so L = Σ_rows ((Σ_k y_k) log Z −
    Σ_k y_k s_k), two sums of non-negative terms, and e = (Σ_k y_k / Z) exp(s) − y.
    """
    T, B, H = tf.unstack(tf.shape(h))
    y_rows = tf.reshape(y, [T * B, -1])
    o = tf.matmul(tf.reshape(h, [T * B, H]), p.V, transpose_b=True) + p.c  # c + V h(t) (1.3)
    s = o - tf.reduce_max(o, axis=1, keepdims=True)
    exp_s = tf.exp(s)
    Z, y_sums = tf.reduce_sum(exp_s, axis=1), tf.reduce_sum(y_rows, axis=1)
    loss = tf.reduce_sum(y_sums * tf.math.log(Z)) - tf.reduce_sum(y_rows * s)
    return loss, (y_sums / Z)[:, None] * exp_s - y_rows


def _step_losses_and_output_errors(p: Params, h, y):
    """L(t) summed over the batch, (T,), and e(t) (2.1), (T, B, K): TBPTT needs each step's loss."""
    _, log_yhat = _log_softmax_outputs(p, h)
    step_losses = -tf.reduce_sum(y * log_yhat, axis=(1, 2))
    return step_losses, tf.reduce_sum(y, axis=-1, keepdims=True) * tf.exp(log_yhat) - y


def _first_lag(p: Params, h, e_rows, phi: str):
    """Lag 0: δ_k(k) = D_k Vᵀ e(k), with D_k = diag φ′(a(k)) (2.2); and D_k for every k."""
    derivative = NONLINEARITIES[phi].derivative(h)
    return tf.reshape(e_rows @ p.V, tf.shape(h)) * derivative, derivative


def _next_lag(p: Params, slab, derivative):
    """(10.2) lag j from lag j − 1: row k becomes D_k Wᵀ (row k + 1); rows past T − j are zero,
    so that every slab keeps the shape (T, B, H) that a compiled loop needs."""
    shifted = tf.concat([slab[1:], tf.zeros_like(slab[:1])], axis=0)
    return (shifted @ p.W) * derivative


def _rows_times(a, m):
    """``a @ m`` for ``a`` of rank 4, as one 2-D product over its rows. TensorFlow 2.21's oneDNN
    batched matmul of a rank-4 tensor with a size-1 axis by a rank-2 one reads past its buffer
    (tensorflow/tensorflow#117700): one TBPTT window, n = 1, gave wrong ∇U or crashed."""
    rows = tf.reshape(a, [-1, tf.shape(a)[-1]]) @ m
    return tf.reshape(rows, tf.concat([tf.shape(a)[:-1], tf.shape(m)[-1:]], 0))


@tf.function(reduce_retracing=True)
def _compiled_lag_norms(p: Params, x, y, h0, lags, phi: str):
    """:func:`lag_norms` with ``lags`` a tensor."""
    T, B, D = tf.unstack(tf.shape(x))
    h = _hidden_states(p, x, h0, phi)
    _, e_rows = _loss_and_output_errors(p, h, y)
    x_rows, h_prev_rows = (
        tf.reshape(x, [T * B, D]),
        tf.reshape(tf.concat([h0[None], h[:-1]], 0), [T * B, -1]),
    )
    slab, derivative = _first_lag(p, h, e_rows, phi)
    norms = tf.TensorArray(x.dtype, size=lags)
    for j in tf.range(lags):  # the norms of (10.1) G_j for U, W, b, h0, x; then the next lag
        rows = tf.reshape(slab, [T * B, -1])
        norms = norms.write(j, tf.stack([
            tf.norm(tf.matmul(rows, x_rows, transpose_a=True)),  # Σ_k δ_k(k + j) x(k)ᵀ
            tf.norm(tf.matmul(rows, h_prev_rows, transpose_a=True)),  # Σ_k δ_k(k + j) h(k − 1)ᵀ
            tf.norm(tf.reduce_sum(rows, 0)),
            tf.norm(slab[0] @ p.W),  # Wᵀ δ_1(1 + j)
            tf.norm(slab @ p.U),  # Uᵀ δ_k(k + j)
        ]))  # fmt: skip
        slab = _next_lag(p, slab, derivative)
    norms = norms.stack()
    zero = tf.zeros_like(norms[1:, 0])
    V = tf.concat(
        [[tf.norm(tf.matmul(e_rows, tf.reshape(h, [T * B, -1]), transpose_a=True))], zero], 0
    )
    c = tf.concat([[tf.norm(tf.reduce_sum(e_rows, 0))], zero], 0)
    return norms[:, 0], norms[:, 1], norms[:, 2], V, c, norms[:, 3], norms[:, 4]


@tf.function(reduce_retracing=True)
def _compiled_truncated_gradients(p: Params, x, y, h0, k, phi: str):
    """:func:`truncated_gradients` with ``k`` a tensor."""
    T, B, D = tf.unstack(tf.shape(x))
    h = _hidden_states(p, x, h0, phi)
    loss, e_rows = _loss_and_output_errors(p, h, y)  # (1.6), (2.1)
    slab, derivative = _first_lag(p, h, e_rows, phi)
    delta = slab  # Σ_{j<k} δ_t(t + j) at row t: (10.3) through (3.3)–(3.5)
    for _ in tf.range(1, k):
        slab = _next_lag(p, slab, derivative)
        delta += slab
    rows = (
        tf.reshape(x, [T * B, D]),
        tf.reshape(h, [T * B, -1]),
        e_rows,
        tf.reshape(delta, [T * B, -1]),
    )
    return loss, base.grads_from_deltas(OPS, p, x, h0, B, rows)


@tf.function(reduce_retracing=True)
def _compiled_jacobian_norms(p: Params, x, h0, phi: str):
    """:func:`jacobian_norms` for T ≥ 2."""
    T, B = tf.unstack(tf.shape(x)[:2])
    derivative = NONLINEARITIES[phi].derivative(_hidden_states(p, x, h0, phi))
    jacobian = tf.eye(tf.shape(p.W)[0], batch_shape=[B], dtype=x.dtype)
    norms = tf.TensorArray(x.dtype, size=T - 1, element_shape=[None])
    for j in tf.range(1, T):  # (10.7) ∂h(T)/∂h(T−j) = ∂h(T)/∂h(T−j+1) · D_{T−j+1} W
        jacobian = (jacobian * derivative[T - j][:, None, :]) @ p.W
        norms = norms.write(j - 1, tf.linalg.svd(jacobian, compute_uv=False)[:, 0])
    norms = tf.reshape(norms.stack(), [T - 1, B])
    return norms, tf.reduce_mean(norms, axis=1), tf.linalg.svd(p.W, compute_uv=False)[0]


@tf.function(reduce_retracing=True)
def _compiled_autodiff_gradients(p: Params, x, y, h0, phi: str, mask, stack):
    """:func:`autodiff_gradients`; ``stack`` None for §1's model, else the Model as its fields;
    a stack's h(0) is (cells, B, H), and so its gradient (§12)."""
    with tf.GradientTape() as tape:
        tape.watch((p, h0, x))
        if stack is None:
            _, log_yhat = _log_softmax_outputs(p, _hidden_states(p, x, h0, phi, mask))
            loss = -tf.reduce_sum(y * log_yhat)
        else:
            loss = _STACK_KERNELS[1](p, x, y, h0, Model(*stack), phi, mask)  # the stack's loss
    dp, dh0, dx = tape.gradient(loss, (p, h0, x))
    return loss, Grads(U=dp.U, W=dp.W, b=dp.b, V=dp.V, c=dp.c, h0=dh0, x=dx)


@tf.function(reduce_retracing=True)
def forward(p: Params, x, h0, phi: str = "tanh", mask=None):
    h = _hidden_states(p, x, h0, phi, mask)
    o, log_yhat = _log_softmax_outputs(p, h)
    return h, o, tf.exp(log_yhat)


@tf.function(reduce_retracing=True)
def loss(p: Params, x, y, h0, phi: str = "tanh", mask=None):
    _, log_yhat = _log_softmax_outputs(p, _hidden_states(p, x, h0, phi, mask))
    return -tf.reduce_sum(y * log_yhat)  # (1.5)–(1.6) L = −Σ_t Σ_k y_k(t) log ŷ_k(t)


def _cell_deltas(p: Params, h, grad_h, h0, phi: str = "tanh", mask=None, final=None):
    """δ(t) for t = T..1 (3.1)–(3.2), (9.8)–(9.9), from ``grad_h``, ∂ℓ/∂h(t) from above (Vᵀ e(t)
    from the head, or a layer's gradient, (12.4)); ``final`` ∂ℓ/∂h(T) of the last state (13.1).
    Returns δ and ∇h(0) where a mask carries the gradient past step 1 (9.10), else None."""
    derivative = NONLINEARITIES[phi].derivative(h)  # (2.2) D_t for every t

    def step(delta_next, inputs):  # (3.1)–(3.2) δ(t) = D_t (Vᵀ e(t) + Wᵀ δ(t+1)), rows
        grad_h_t, derivative_t = inputs
        return (grad_h_t + delta_next @ p.W) * derivative_t

    def masked_step(state, inputs):  # carried: Wᵀ δ(t+1) + (1 − m(t+1)) ∇_{h(t+1)} L, rows
        _, carried = state
        grad_h_t, derivative_t, kept_t = inputs
        grad = grad_h_t + carried  # (9.8) ∇_{h(t)} L
        zeros = tf.zeros_like(grad)
        delta_t = tf.where(kept_t[:, None], grad * derivative_t, zeros)  # (9.9)
        return delta_t, delta_t @ p.W + tf.where(kept_t[:, None], zeros, grad)

    zeros = tf.zeros_like(h0)
    if mask is None:
        if final is not None:  # ∂ℓ/∂h(T) joins the gradient from above at the last step
            grad_h = tf.concat([grad_h[:-1], grad_h[-1:] + final[None]], axis=0)
        return tf.scan(step, (grad_h, derivative), initializer=zeros, reverse=True), None
    carried = zeros if final is None else final
    delta, carried = tf.scan(
        masked_step, (grad_h, derivative, mask), initializer=(zeros, carried), reverse=True
    )
    return delta, carried[0]  # (9.10) Wᵀ δ(1) + (1 − m(1)) ∇_{h(1)} L, the carry past step 1


@tf.function(reduce_retracing=True)
def gradients(p: Params, x, y, h0, phi: str = "tanh", mask=None):
    T, B, D = tf.unstack(tf.shape(x))
    h = _hidden_states(p, x, h0, phi, mask)
    loss, e_rows = _loss_and_output_errors(p, h, y)  # (1.6), (2.1); e(t) = 0 where masked
    grad_h = tf.reshape(e_rows @ p.V, tf.shape(h))  # Vᵀ e(t) for every t
    delta, h0_grad = _cell_deltas(p, h, grad_h, h0, phi, mask)
    rows = (
        tf.reshape(x, [T * B, D]),
        tf.reshape(h, [T * B, -1]),
        e_rows,
        tf.reshape(delta, [T * B, -1]),
    )
    return loss, base.grads_from_deltas(OPS, p, x, h0, B, rows, h0_grad)  # (3.3)–(3.5)


def autodiff_gradients(p: Params, x, y, h0, phi: str = "tanh", mask=None, model=None):
    stack = None if model is None else dataclasses.astuple(model)  # Python values: see _compiled
    return _compiled_autodiff_gradients(p, x, y, h0, phi, mask, stack)


def lag_norms(p: Params, x, y, h0, lags: int, phi: str = "tanh"):
    return _compiled_lag_norms(p, x, y, h0, tf.constant(lags), phi)  # one trace for every count


def truncated_gradients(p: Params, x, y, h0, k: int, phi: str = "tanh"):
    return _compiled_truncated_gradients(p, x, y, h0, tf.constant(k), phi)


@tf.function(reduce_retracing=True)
def tbptt_gradients(p: Params, x, y, h0, plan: base.TbpttPlan, phi: str = "tanh"):
    _, B, D = tf.unstack(tf.shape(x))
    h = _hidden_states(p, x, h0, phi)
    step_losses, e = _step_losses_and_output_errors(p, h, y)
    h_prev = tf.concat([h0[None], h[:-1]], axis=0)
    k, n = tf.unstack(tf.shape(plan.steps))  # offsets i = τ − t, windows w: every (i, w) at once
    e_w = tf.gather(e, plan.steps) * plan.losses  # e(t) of the window's own loss steps (10.6)
    h_w = tf.gather(h, plan.steps)
    derivative = NONLINEARITIES[phi].derivative(h_w) * plan.inside  # D_t, zero outside the window

    def step(delta_prev, inputs):  # (3.1)–(3.2) within each window, backwards in t = forwards in i
        output_grad_i, derivative_i = inputs
        return (output_grad_i + delta_prev @ p.W) * derivative_i

    output_grad = _rows_times(e_w, p.V)
    delta = tf.scan(step, (output_grad, derivative), initializer=tf.zeros_like(derivative[0]))

    def per_window(a, b):  # Σ over offsets and batch of aᵀ b, for each window
        a = tf.reshape(tf.transpose(a, [1, 0, 2, 3]), [n, k * B, -1])
        b = tf.reshape(tf.transpose(b, [1, 0, 2, 3]), [n, k * B, -1])
        return tf.matmul(a, b, transpose_a=True)

    grads = Grads(
        U=per_window(delta, tf.gather(x, plan.steps)),
        W=per_window(delta, tf.gather(h_prev, plan.steps)),
        b=tf.reduce_sum(delta, axis=(0, 2)),
        V=per_window(e_w, h_w),
        c=tf.reduce_sum(e_w, axis=(0, 2)),
        h0=tf.reduce_sum(delta * plan.earliest, 0) @ p.W,  # ∇h(τ − k2): Wᵀ δ at the earliest step
        x=tf.gather(tf.reshape(_rows_times(delta, p.U), [k * n, B, D]), plan.x_rows)
        * plan.x_inside,
    )
    losses = tf.reduce_sum(tf.gather(step_losses, plan.steps) * plan.losses[..., 0, 0], 0)
    return losses, grads


def jacobian_norms(p: Params, x, h0, phi: str = "tanh"):
    if x.shape[0] == 1:  # no lag: a TensorArray of unknown element shape cannot stack none
        sigma = tf.linalg.svd(p.W, compute_uv=False)[0]
        return tf.zeros((0, x.shape[1]), x.dtype), tf.zeros((0,), x.dtype), sigma
    return _compiled_jacobian_norms(p, x, h0, phi)


def _compiled(kernel):
    """A kernel of :func:`base.stack_kernels` as a ``tf.function``, traced once per dtype, φ,
    model, batch size B and width H. The model goes in as its fields, Python values, rebuilt
    inside (a Model, a Python object, would be traced once per instance); B and H are part of the
    key so that they stay static in a trace generalized over T, D and K (``reduce_retracing``):
    the stack kernels read them as Python ints (``x.shape[1]``, ``h.shape[-1]``)."""

    @tf.function(reduce_retracing=True, autograph=False)
    def compiled(args, stack, sizes, phi, mask):
        return kernel(*args, model=Model(*stack), phi=phi, mask=mask)

    def call(p: Params, x, *args, model, phi: str = "tanh", mask=None):
        sizes = (x.shape[1], tf.nest.flatten(p.W)[0].shape[0])  # B, H (W one array or a tuple)
        return compiled((p, x, *args), dataclasses.astuple(model), sizes, phi, mask)

    return call


STACK_ARRAYS = base.StackArrays(
    hidden_states=_hidden_states,
    cell_deltas=_cell_deltas,
    outputs=_log_softmax_outputs,
    loss_and_output_errors=_loss_and_output_errors,
    flip=lambda a: tf.reverse(a, axis=[0]),
    concatenate_last=lambda arrays: tf.concat(arrays, axis=-1),
    stack=tf.stack,
    rows=lambda a: tf.reshape(a, [-1, tf.shape(a)[-1]]),
    exp=tf.exp,
    ops=OPS,
)
_STACK_KERNELS = base.stack_kernels(STACK_ARRAYS)  # traced inside _compiled's and autodiff's
stack_forward, stack_loss, stack_gradients, layer_forward, layer_gradients = map(
    _compiled, _STACK_KERNELS
)


class TensorflowBackend(base.ClosedFormAutodiffBackend):
    name = "tensorflow"
    framework_version = f"tensorflow {tf.__version__}"
    capabilities = base.capabilities(NONLINEARITIES, devices=("cpu", "gpu"), stacks=True)
    kernels = sys.modules[__name__]

    device_names = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu"}

    def _visible_devices(self, kind):
        found = tf.config.list_logical_devices(kind.upper())
        return [d.name.removeprefix("/device:") for d in found]

    def _open_device(self, kind, index):
        return f"{kind.upper()}:{index}"

    def _scope(self):
        return tf.device(self.device)

    def asarray(self, array: np.ndarray, dtype: Any = None) -> tf.Tensor:
        with tf.device(self.device):  # also called outside any scope, by users
            return tf.constant(array, dtype=dtype)  # copies the NumPy buffer

    def to_numpy(self, array: tf.Tensor) -> np.ndarray:
        return np.array(array, copy=True)

    def is_native(self, array: Any) -> bool:
        return (
            isinstance(array, tf.Tensor)
            and not tf.is_symbolic_tensor(array)
            and array.device.endswith(f"device:{self.device}")
        )

    def _all_finite(self, arrays):
        if self._on_cpu:
            return base.host_all_finite(arrays)
        return bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(a)) for a in arrays]))

    def _zeros_state(self, x, H):
        return tf.zeros((x.shape[1], H), dtype=x.dtype)

    def _zero_masked(self, array, mask):
        kept = tf.reshape(mask, tf.concat([tf.shape(mask), tf.ones([array.ndim - 2], tf.int32)], 0))
        return tf.where(kept, array, tf.zeros_like(array))

    def _one_hot(self, y, K, dtype):  # tf.one_hot takes int8/uint8/int32/int64 indices only
        return tf.one_hot(tf.cast(y, tf.int64), K, dtype=dtype)

    def enforce_full_precision(self) -> str:
        tf.config.experimental.enable_tensor_float_32_execution(False)
        return (
            "tf.config.experimental.enable_tensor_float_32_execution(False): "
            "float32 matmuls in full float32, not TF32 (a global TensorFlow setting)"
        )
