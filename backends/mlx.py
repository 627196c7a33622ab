"""MLX backend: SPEC.md form B with the input projection and the output layer hoisted out of the
time loop, so that only the recurrence itself loops over t. Keeps the input dtype.

MLX arrays live in memory every device shares: an operation runs on a stream, and each instance
runs its kernels under ``mx.stream`` of its device (its ``_scope``, which restores the default
stream on return). MLX is lazy: every result is evaluated (``mx.eval``, in ``_finished``) before
it is returned, so that the work, and any error, happen in the call. MLX computes float64 on the
CPU only: on the GPU the backend declares float32 alone, and float64 input is a SpecError, never a
downcast. The kernels are not ``mx.compile``d: compiling them, and certifying what compiles, is
left to the compiled-witnesses work.
"""

import dataclasses
import sys
from typing import Any

import mlx.core as mx
import numpy as np

from rnnspec.backends import base
from rnnspec.spec import Grads, Params, SpecError

#: φ and φ′ written in h = φ(a) (SPEC.md §1, (2.2)); relu is MLX's own (mlx.nn.relu's maximum),
#: whose autodiff derivative at 0 is 0
NONLINEARITIES = {
    "tanh": base.Nonlinearity(mx.tanh, lambda h: 1 - h * h),
    "relu": base.Nonlinearity(lambda a: mx.maximum(a, 0), lambda h: (h > 0).astype(h.dtype)),
}


def _hidden_states(p: Params, x, h0, phi: str, mask=None):
    """h(1..T): U x(t) + b for every t in one matrix product, then the recurrence (1.1)–(1.2);
    with a mask, (9.1): a masked step carries h(t−1) over."""
    T, B, D = x.shape
    inputs = mx.addmm(p.b, x.reshape(T * B, D), p.U.T).reshape(T, B, -1)
    W_T = p.W.T
    activation = NONLINEARITIES[phi].phi
    h = [h0]
    for t in range(T):  # MLX has no scan; the loop builds the lazy graph, evaluated at the end
        h_t = activation(mx.addmm(inputs[t], h[-1], W_T))
        h.append(h_t if mask is None else mx.where(mask[t, :, None], h_t, h[-1]))
    return mx.stack(h[1:])


def _exp(s):
    """exp(s) for s ≤ 0. MLX's exp is only as accurate in float64 as in float32 (relative error
    5e-7 in float64 measured with MLX 0.32.4 on the CPU), its expm1 to float64's precision: there,
    expm1(s) + 1 is exp(s) to within float64's unit roundoff, which the norm-wise bound of SPEC.md
    §6.1 needs (mx.logsumexp and mx.softmax call the inaccurate exp, so they are not used)."""
    return mx.expm1(s) + 1 if s.dtype == mx.float64 else mx.exp(s)


def _log_softmax_outputs(p: Params, h):
    """o(t) = c + V h(t) for all T·B rows in one product (1.3), and log ŷ(t) (1.4)."""
    T, B, H = h.shape
    o = mx.addmm(p.c, h.reshape(T * B, H), p.V.T).reshape(T, B, -1)
    s = o - mx.stop_gradient(o.max(axis=-1, keepdims=True))  # log ŷ does not depend on the shift
    return o, s - mx.log(_exp(s).sum(axis=-1, keepdims=True))


def _loss_and_output_errors(p: Params, h, y):
    """L (1.3)–(1.6) and e(t) = (Σ_k y_k) ŷ − y (2.1) for all T·B rows, with one exp.

    With s = o − max o and Z = Σ_j exp(s_j): log ŷ = s − log Z, so L = Σ_rows ((Σ_k y_k) log Z −
    Σ_k y_k s_k), two sums of non-negative terms, and e = (Σ_k y_k / Z) exp(s) − y.
    """
    T, B, H = h.shape
    y_rows = y.reshape(T * B, -1)
    o = mx.addmm(p.c, h.reshape(T * B, H), p.V.T)  # o(t) = c + V h(t) for all T·B rows (1.3)
    s = o - o.max(axis=1, keepdims=True)
    exp_s = _exp(s)
    Z, y_sums = exp_s.sum(axis=1), y_rows.sum(axis=1)
    loss = (y_sums * mx.log(Z)).sum() - (y_rows * s).sum()
    return loss, (y_sums / Z)[:, None] * exp_s - y_rows


def _step_losses_and_output_errors(p: Params, h, y):
    """L(t) summed over the batch, (T,), and e(t) (2.1), (T, B, K): TBPTT needs each step's loss."""
    _, log_yhat = _log_softmax_outputs(p, h)
    return -(y * log_yhat).sum(axis=(1, 2)), y.sum(axis=-1, keepdims=True) * _exp(log_yhat) - y


def _spectral_norm(a):
    """‖a‖₂, the largest singular value, of a matrix or of each of a stack of them: MLX's SVD
    runs on the CPU stream only, so it runs there whatever the device (memory is shared)."""
    return mx.linalg.norm(a, 2, axis=[-2, -1], stream=mx.cpu)


def _mlx_dtype(dtype: np.dtype) -> mx.Dtype:
    """mx.float64 for numpy.float64: mx.array would otherwise make float32 of float64 data."""
    return getattr(mx, "bool_" if dtype == np.bool_ else dtype.name)


def forward(p: Params, x, h0, phi: str = "tanh", mask=None):
    h = _hidden_states(p, x, h0, phi, mask)
    o, log_yhat = _log_softmax_outputs(p, h)
    return h, o, _exp(log_yhat)


def loss(p: Params, x, y, h0, phi: str = "tanh", mask=None):
    _, log_yhat = _log_softmax_outputs(p, _hidden_states(p, x, h0, phi, mask))
    return -(y * log_yhat).sum()  # (1.5)–(1.6) L = −Σ_t Σ_k y_k(t) log ŷ_k(t)


def _cell_deltas(p: Params, h, grad_h, h0, phi: str = "tanh", mask=None, final=None):
    """δ(t) for t = T..1 (3.1)–(3.2), (9.8)–(9.9), from ``grad_h``, ∂ℓ/∂h(t) from above (Vᵀ e(t)
    from the head, or a layer's gradient, (12.4)), as (T, B, H); ``final`` ∂ℓ/∂h(T) of the last
    state (13.1). Returns δ and ∇h(0) where a mask carries the gradient past step 1 (9.10), else
    None. ``grad_h`` is not modified (MLX arrays are immutable)."""
    T = h.shape[0]
    derivative = NONLINEARITIES[phi].derivative(h)  # (2.2) D_t for every t
    delta = [mx.zeros_like(h0)]  # δ(T + 1) = 0, then δ(T), ..., δ(1)
    if mask is None:
        for t in reversed(range(T)):  # (3.1)–(3.2) δ(t) = D_t (Vᵀ e(t) + Wᵀ δ(t+1)), rows
            g = grad_h[t] if final is None or t + 1 < T else grad_h[t] + final
            delta.append(mx.addmm(g, delta[-1], p.W) * derivative[t])
        return mx.stack(delta[:0:-1]), None
    kept = mask[..., None]
    kept_D = mx.where(kept, derivative, 0)  # (9.9) m(t) D_t, rows
    carried = (
        mx.zeros_like(h0) if final is None else final
    )  # Wᵀ δ(t+1) + (1 − m(t+1)) ∇_{h(t+1)} L, rows
    for t in reversed(range(T)):
        grad = grad_h[t] + carried  # (9.8) ∇_{h(t)} L
        delta.append(grad * kept_D[t])  # (9.9) δ(t) = m(t) D_t ∇_{h(t)} L
        # the carry passes ∇_{h(t)} L on where m(t) = 0, and adds Wᵀ δ(t)
        carried = mx.addmm(mx.where(kept[t], 0, grad), delta[-1], p.W)
    return mx.stack(delta[:0:-1]), carried  # (9.10) Wᵀ δ(1) + (1 − m(1)) ∇_{h(1)} L


def gradients(p: Params, x, y, h0, phi: str = "tanh", mask=None):
    T, B, D = x.shape
    h = _hidden_states(p, x, h0, phi, mask)
    loss, e_rows = _loss_and_output_errors(p, h, y)  # (1.6), (2.1); e(t) = 0 where masked
    H = h.shape[-1]
    grad_h = (e_rows @ p.V).reshape(T, B, H)  # Vᵀ e(t) for every t
    delta, h0_grad = _cell_deltas(p, h, grad_h, h0, phi, mask)
    rows = (x.reshape(T * B, D), h.reshape(T * B, H), e_rows, delta.reshape(T * B, H))
    return loss, base.grads_from_deltas(
        base.ARRAY_METHOD_OPS, p, x, h0, B, rows, h0_grad
    )  # (3.3)–(3.5)


def autodiff_gradients(p: Params, x, y, h0, phi: str = "tanh", mask=None, model=None):
    """The framework's autodiff through the forward loss: ``loss`` for §1's model, ``stack_loss``
    over the differentiable ``_hidden_states`` for a stack (§12), whose U, W, b are tuples."""
    if model is None or not model.stacked:
        loss_of = lambda p, x, h0: loss(Params(*p), x, y, h0, phi, mask)
    else:
        loss_of = lambda p, x, h0: stack_loss(Params(*p), x, y, h0, model, phi, mask)
    value, (dp, dx, dh0) = mx.value_and_grad(loss_of, argnums=(0, 1, 2))(tuple(p), x, h0)
    dU, dW, db, dV, dc = dp
    return value, Grads(U=dU, W=dW, b=db, V=dV, c=dc, h0=dh0, x=dx)


ARRAYS = base.Arrays(
    nonlinearities=NONLINEARITIES,
    hidden_states=_hidden_states,
    loss_and_output_errors=_loss_and_output_errors,
    step_losses_and_output_errors=_step_losses_and_output_errors,
    concatenate=mx.concatenate,
    stack=mx.stack,
    zeros=lambda shape, like: mx.zeros(shape, like.dtype),
    eye=lambda n, like: mx.eye(n, dtype=like.dtype),
    norm=mx.linalg.norm,
    spectral_norm=_spectral_norm,
)
lag_norms, truncated_gradients, tbptt_gradients, jacobian_norms = base.flow_kernels(ARRAYS)
STACK_ARRAYS = base.StackArrays(
    hidden_states=_hidden_states,
    cell_deltas=_cell_deltas,
    outputs=_log_softmax_outputs,
    loss_and_output_errors=_loss_and_output_errors,
    flip=lambda a: a[::-1],
    concatenate_last=lambda arrays: mx.concatenate(arrays, axis=-1),
    stack=mx.stack,
    rows=lambda a: a.reshape(-1, a.shape[-1]),
    exp=_exp,
    ops=base.ARRAY_METHOD_OPS,
)
stack_forward, stack_loss, stack_gradients, layer_forward, layer_gradients = base.stack_kernels(
    STACK_ARRAYS
)


class MlxBackend(base.ClosedFormAutodiffBackend):
    name = "mlx"
    framework_version = f"mlx {mx.__version__}"  # type: ignore[attr-defined]
    capabilities = base.capabilities(NONLINEARITIES, devices=("cpu", "gpu"), stacks=True)
    kernels = sys.modules[__name__]

    device_names = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu"}

    def _visible_devices(self, kind):
        if kind == "gpu" and not mx.is_available(mx.gpu):
            return []
        return [f"{kind}:{i}" for i in range(mx.device_count(getattr(mx, kind)))]

    def _open_device(self, kind, index):
        self._device = mx.Device(getattr(mx, kind), index)
        if kind == "gpu":  # MLX computes float64 on the CPU only
            self.capabilities = dataclasses.replace(self.capabilities, dtypes=("float32",))
        return f"{kind}:{index}"

    def _scope(self):
        return mx.stream(self._device)

    def _finished(self, result):
        mx.eval(result)  # MLX is lazy: the work (and its errors) happen here, in the call
        return result

    def asarray(self, array: np.ndarray, dtype: Any = None) -> mx.array:
        array = np.asarray(array, dtype=dtype)
        if array.dtype == np.float64 and "float64" not in self.capabilities.dtypes:
            raise SpecError(
                f"float64 arrays: MLX computes float64 on the CPU only, and this backend is on "
                f"{self.device}: load it with device='cpu', or use float32"
            )
        return mx.array(array, dtype=_mlx_dtype(array.dtype))  # copies the NumPy buffer

    def to_numpy(self, array: mx.array) -> np.ndarray:
        return np.array(array, copy=True)

    def is_native(self, array: Any) -> bool:
        return isinstance(array, mx.array)  # in memory every device shares: on any device

    def _all_finite(self, arrays):
        if self._on_cpu:
            return base.host_all_finite(arrays)
        return bool(mx.all(mx.stack([mx.isfinite(array).all() for array in arrays])))

    def _zeros_state(self, x, H):
        return mx.zeros((x.shape[1], H), dtype=x.dtype)

    def _zero_masked(self, array, mask):
        return mx.where(mask.reshape(mask.shape + (1,) * (array.ndim - 2)), array, 0)

    def _one_hot(self, y, K, dtype):
        return (y[..., None] == mx.arange(K)).astype(getattr(mx, dtype))  # one comparison
