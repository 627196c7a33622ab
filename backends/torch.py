"""PyTorch backend: SPEC.md form B with the input projection and the output layer hoisted out of the
time loop, so that only the recurrence itself loops over t. Keeps the input dtype and device.

On the CPU the two recurrences, h(t) forward and δ(t) backward, are Python loops over in-place
products. On CUDA a loop launches several small kernels per step, so both recurrences run in
torch's fused tanh RNN instead (cuDNN's persistent kernels where cuDNN takes the shapes), given
U x(t) + b as its input and the identity as its input weights: its forward is (1.1)–(1.2), and the
gradient it propagates to its input is δ(t) of (3.1)–(3.2) itself. Every other product stays the
closed form's own. The whole of that is captured once per shape and dtype in a CUDA graph and
replayed (see _CapturedGradients), since one call's kernels take less time to run than to launch.
"""

import sys
import threading
import warnings
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from rnnspec.backends import base
from rnnspec.spec import Grads, Params

#: φ in place (torch's trailing-underscore functions, which autograd differentiates as it does the
#: out-of-place ones) and φ′ written in h = φ(a) (SPEC.md §1, (2.2))
NONLINEARITIES = {
    "tanh": base.Nonlinearity(torch.tanh_, lambda h: 1 - h * h),
    "relu": base.Nonlinearity(torch.relu_, lambda h: h > 0),
}


def _input_projections(p: Params, x):
    """U x(t) + b for every t, in one matrix product."""
    T, B, D = x.shape
    return torch.addmm(p.b, x.reshape(T * B, D), p.U.T).reshape(T, B, -1)


def _hidden_states(p: Params, x, h0, phi: str, mask=None):
    """h(1..T): U x(t) + b for every t in one matrix product, then the recurrence (1.1)–(1.2);
    with a mask, (9.1): a masked step carries h(t−1) over (a step loop: the fused RNN has no masks,
    and is torch's tanh RNN only)."""
    if x.is_cuda and mask is None and phi == "tanh":
        return _fused_recurrence(p, _input_projections(p, x), h0, train=False)
    h = _input_projections(p, x)
    W_T = p.W.T.contiguous()  # a row-major Wᵀ multiplies faster than the transposed view
    h_prev = h0
    if mask is not None:  # m(t) and 1 − m(t) as 0 or 1: v·1 + w·0 = v exactly, faster than where
        kept = mask[..., None].to(h.dtype)
        kept, dropped = kept.unbind(0), (1 - kept).unbind(0)
    activation = NONLINEARITIES[phi].phi
    for t, h_t in enumerate(h.unbind(0)):  # h_t holds U x(t) + b until overwritten by h(t)
        activation(h_t.addmm_(h_prev, W_T))
        if mask is not None:
            h_t.mul_(kept[t]).addcmul_(h_prev, dropped[t])
        h_prev = h_t
    return h


def _fused_weights(W):
    """[I, W] as the input and hidden weights of torch's fused tanh RNN, in one buffer laid out as
    cuDNN wants it (otherwise torch copies them into one at every call, and warns)."""
    H = W.shape[0]
    weights = [torch.eye(H, dtype=W.dtype, device=W.device), W.clone()]  # W's own storage untouched
    if (
        W.is_cuda
        and torch._use_cudnn_rnn_flatten_weight()
        and torch.backends.cudnn.is_acceptable(W)
    ):
        from torch.backends.cudnn import rnn as cudnn_rnn

        mode = cudnn_rnn.get_cudnn_mode("RNN_TANH")  # makes the two tensors views of one buffer:
        torch._cudnn_rnn_flatten_weight(weights, 2, H, mode, H, 0, 1, False, False)
    return weights


def _fused_recurrence(p: Params, inputs, h0, train: bool):
    """h(t) = tanh(I (U x(t) + b) + W h(t−1)) (1.1)–(1.2) for every t, in torch's fused tanh RNN:
    ``inputs`` are U x(t) + b; ``train`` keeps what its backward pass needs."""
    h, _ = torch._VF.rnn_tanh(
        inputs, h0[None], _fused_weights(p.W), False, 1, 0.0, train, False, False
    )
    return h


def _log_softmax_outputs(p: Params, h):
    """o(t) = c + V h(t) for all T·B rows in one product (1.3), and log ŷ(t) (1.4)."""
    T, B, H = h.shape
    o = torch.addmm(p.c, h.reshape(T * B, H), p.V.T).reshape(T, B, -1)
    return o, torch.log_softmax(o, dim=-1)


def _loss_and_output_errors(p: Params, h, y):
    """L (1.3)–(1.6) and e(t) = (Σ_k y_k) ŷ − y (2.1) for all T·B rows, in place in one buffer.

    With s = o − max o and Z = Σ_j exp(s_j): log ŷ = s − log Z, so L = Σ_rows ((Σ_k y_k) log Z −
    Σ_k y_k s_k), two sums of non-negative terms, and e = (Σ_k y_k / Z) exp(s) − y.
    """
    T, B, H = h.shape
    y_rows = y.reshape(T * B, -1)
    e = torch.addmm(p.c, h.reshape(T * B, H), p.V.T)  # o(t) = c + V h(t) for all T·B rows (1.3)
    e -= e.amax(dim=1, keepdim=True)  # s
    loss = -torch.vdot(y_rows.flatten(), e.flatten())
    e.exp_()
    Z, y_sums = e.sum(dim=1), y_rows.sum(dim=1)
    loss += torch.vdot(y_sums, Z.log())
    e.mul_((y_sums / Z)[:, None]).sub_(y_rows)
    return loss, e


def _fused_gradients(p: Params, x, y, h0):
    """Form B with both recurrences in torch's fused tanh RNN: its backward pass, given Vᵀ e(t) as
    the gradient of h(t), returns the gradient of its input U x(t) + b, which is δ(t) (3.1)–(3.2)."""
    T, B, D = x.shape
    with torch.enable_grad():
        inputs = _input_projections(p, x).requires_grad_()
        h = _fused_recurrence(p, inputs, h0, train=True)
    loss, e_rows = _loss_and_output_errors(p, h.detach(), y)  # (1.6), (2.1)
    H = h.shape[-1]
    (delta,) = torch.autograd.grad(h, inputs, (e_rows @ p.V).reshape(T, B, H))  # only δ: no weights
    rows = (x.reshape(T * B, D), h.detach().reshape(T * B, H), e_rows, delta.reshape(T * B, H))
    return loss, base.grads_from_deltas(base.ARRAY_METHOD_OPS, p, x, h0, B, rows)  # (3.3)–(3.5)


class _CapturedGradients:
    """_fused_gradients for one shape, dtype and device as a CUDA graph: every call copies its
    inputs into the graph's static buffers, replays the graph and copies the results out of the
    graph's static outputs, so that no result aliases a buffer the next call overwrites. The lock
    and the event keep calls from several threads or streams from interleaving on those buffers."""

    def __init__(self, device: torch.device, dtype: torch.dtype, T, B, D, H, K):
        shapes = ((H, D), (H, H), (H,), (K, H), (K,), (T, B, D), (T, B, K), (B, H))
        self.inputs = [torch.zeros(shape, dtype=dtype, device=device) for shape in shapes]
        self.lock, self.done = threading.Lock(), torch.cuda.Event()
        warm_up = torch.cuda.Stream(
            device
        )  # cuDNN's plans and the allocator's pool, before capture
        warm_up.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(warm_up):
            for _ in range(2):
                _fused_gradients(*self._static_arguments())
        torch.cuda.current_stream(device).wait_stream(warm_up)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.outputs = _fused_gradients(*self._static_arguments())

    def _static_arguments(self):
        U, W, b, V, c, x, y, h0 = self.inputs
        return Params(U, W, b, V, c), x, y, h0

    def __call__(self, p: Params, x, y, h0):
        with self.lock:
            stream = torch.cuda.current_stream(x.device)
            stream.wait_event(self.done)  # the previous call has copied its results out
            for static, array in zip(self.inputs, (*p, x, y, h0), strict=True):
                static.copy_(array)
            self.graph.replay()
            loss, grads = self.outputs
            results = loss.clone(), Grads(*(g.clone() for g in grads))
            self.done.record(stream)
        return results


@lru_cache(maxsize=8)  # graphs hold their memory: only the shapes most recently used
def _captured_gradients(device, dtype, T, B, D, H, K) -> _CapturedGradients | None:
    """The graph for these shapes, or None (once, with a warning) where capture fails."""
    try:
        return _CapturedGradients(device, dtype, T, B, D, H, K)
    except RuntimeError as failure:
        warnings.warn(
            f"rnnspec torch backend: no CUDA graph ({failure}); running eagerly", stacklevel=2
        )
        return None


def _step_losses_and_output_errors(p: Params, h, y):
    """L(t) summed over the batch, (T,), and e(t) (2.1), (T, B, K): TBPTT needs each step's loss."""
    _, log_yhat = _log_softmax_outputs(p, h)
    return -(y * log_yhat).sum(dim=(1, 2)), y.sum(dim=-1, keepdim=True) * log_yhat.exp() - y


def _torch_dtype(dtype: Any) -> torch.dtype:
    """torch.float32 for "float32", numpy.float32, numpy.dtype("float32") or torch.float32."""
    return dtype if isinstance(dtype, torch.dtype) else getattr(torch, np.dtype(dtype).name)


def forward(p: Params, x, h0, phi: str = "tanh", mask=None):
    h = _hidden_states(p, x, h0, phi, mask)
    o, log_yhat = _log_softmax_outputs(p, h)
    return h, o, log_yhat.exp()


def loss(p: Params, x, y, h0, phi: str = "tanh", mask=None):
    _, log_yhat = _log_softmax_outputs(p, _hidden_states(p, x, h0, phi, mask))
    return -torch.vdot(y.flatten(), log_yhat.flatten())  # (1.5)–(1.6) L = −Σ_t Σ_k y_k log ŷ_k


def _cell_deltas(p: Params, h, grad_h, h0, phi: str = "tanh", mask=None, final=None):
    """δ(t) for t = T..1 (3.1)–(3.2), (9.8)–(9.9), written over ``grad_h``, ∂ℓ/∂h(t) from above
    (Vᵀ e(t) from the head, or a layer's gradient, (12.4)); ``final`` ∂ℓ/∂h(T) of the last state
    (13.1). Returns δ and ∇h(0) where a mask carries the gradient past step 1 (9.10), else None.
    A step loop on every device (the fused RNN's backward takes no gradient of h(T) alone)."""
    delta = grad_h
    derivative = NONLINEARITIES[phi].derivative(h)  # (2.2) D_t for every t
    if mask is None:
        if final is not None:
            delta[-1] += final
        delta_next = None
        steps = zip(reversed(delta.unbind(0)), reversed(derivative.unbind(0)), strict=True)
        for delta_t, D_t in steps:  # (3.1)–(3.2) δ(t) = D_t (Vᵀ e(t) + Wᵀ δ(t+1)), rows
            if delta_next is not None:
                delta_t.addmm_(delta_next, p.W)
            delta_next = delta_t.mul_(D_t)
        return delta, None
    # m(t) D_t for all T·B rows at once, (1 − m(t)) as 0 or 1
    kept = mask[..., None].to(h.dtype)
    kept_D = kept * derivative  # (9.9) m(t) D_t, rows
    carried = (
        torch.zeros_like(h0) if final is None else final.clone()
    )  # Wᵀ δ(t+1) + (1 − m(t+1)) ∇_{h(t+1)} L, rows
    rows_t = zip(*(reversed(a.unbind(0)) for a in (delta, kept_D, 1 - kept)), strict=True)
    for delta_t, kept_D_t, dropped_t in rows_t:
        delta_t.add_(carried)  # (9.8) ∇_{h(t)} L
        torch.mul(delta_t, dropped_t, out=carried)  # (1 − m(t)) ∇_{h(t)} L
        carried.addmm_(delta_t.mul_(kept_D_t), p.W)  # δ(t) = m(t) D_t ∇_{h(t)} L (9.9)
    return delta, carried  # (9.10) Wᵀ δ(1) + (1 − m(1)) ∇_{h(1)} L


def gradients(p: Params, x, y, h0, phi: str = "tanh", mask=None):
    if x.is_cuda and mask is None and phi == "tanh":  # the fused RNN is torch's tanh RNN only
        if torch.cuda.is_current_stream_capturing():  # the caller's own graph takes these
            return _fused_gradients(p, x, y, h0)
        (T, B, D), H, K = x.shape, h0.shape[1], y.shape[2]
        captured = _captured_gradients(x.device, x.dtype, T, B, D, H, K)
        return (captured or _fused_gradients)(p, x, y, h0)
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


def _traced_hidden_states(p: Params, x, h0, phi: str = "tanh", mask=None):
    """h(1..T) as _hidden_states, step by step into fresh tensors, which autograd traces (it cannot
    trace _hidden_states' writes into one buffer): (1.1)–(1.2), (9.1)."""
    activation = NONLINEARITIES[phi].phi  # in place on each step's fresh a(t): autograd's own φ′
    T, B, D = x.shape
    xu = torch.addmm(p.b, x.reshape(T * B, D), p.U.T).reshape(T, B, -1)
    h = [h0]
    for t, xu_t in enumerate(xu.unbind(0)):
        h_t = activation(torch.addmm(xu_t, h[-1], p.W.T))
        h.append(h_t if mask is None else torch.where(mask[t, :, None], h_t, h[-1]))
    return torch.stack(h[1:])


def autodiff_gradients(p: Params, x, y, h0, phi: str = "tanh", mask=None, model=None):
    """torch's autograd through a forward it traces; for a stack (§12), through the network that
    the stack kernels compose of _traced_hidden_states (TRACED_STACK_ARRAYS)."""
    stacked = model is not None and model.stacked
    cells = model.cells if stacked else 1
    weights = (*p.U, *p.W, *p.b) if stacked else (p.U, p.W, p.b)
    inputs = [a.detach().requires_grad_() for a in (*weights, p.V, p.c, h0, x)]  # theirs untouched
    with torch.enable_grad():
        *traced, V, c, h0, x = inputs
        if stacked:
            U, W, b = (tuple(traced[k * cells : (k + 1) * cells]) for k in range(3))
            layer = _traced_layer_forward(Params(U, W, b, V, c), x, h0, model, phi, mask)
            h = layer[0]  # z_{N+1}(t), the head's input (12.3)
        else:
            U, W, b = traced
            h = _traced_hidden_states(Params(U, W, b, V, c), x, h0, phi, mask)
        _, log_yhat = _log_softmax_outputs(Params(U, W, b, V, c), h)
        loss = -(y * log_yhat).sum()  # (1.5)–(1.6)
        grads = torch.autograd.grad(loss, inputs)
    if not stacked:
        return loss.detach(), Grads(*grads)
    *found, V, c, h0, x = grads
    U, W, b = (tuple(found[k * cells : (k + 1) * cells]) for k in range(3))
    return loss.detach(), Grads(U, W, b, V, c, h0, x)


ARRAYS = base.Arrays(
    nonlinearities=NONLINEARITIES,
    hidden_states=_hidden_states,
    loss_and_output_errors=_loss_and_output_errors,
    step_losses_and_output_errors=_step_losses_and_output_errors,
    concatenate=torch.cat,
    stack=torch.stack,
    zeros=lambda shape, like: like.new_zeros(shape),
    eye=lambda n, like: torch.eye(n, dtype=like.dtype, device=like.device),
    norm=torch.linalg.norm,
    spectral_norm=lambda a: torch.linalg.matrix_norm(a, 2),
)
lag_norms, truncated_gradients, tbptt_gradients, jacobian_norms = base.flow_kernels(ARRAYS)
STACK_ARRAYS = base.StackArrays(
    hidden_states=_hidden_states,
    cell_deltas=_cell_deltas,
    outputs=_log_softmax_outputs,
    loss_and_output_errors=_loss_and_output_errors,
    flip=lambda a: a.flip(0),
    concatenate_last=lambda arrays: torch.cat(arrays, dim=-1),
    stack=torch.stack,
    rows=lambda a: a.reshape(-1, a.shape[-1]),
    exp=torch.exp,
    ops=base.ARRAY_METHOD_OPS,
)
stack_forward, stack_loss, stack_gradients, layer_forward, layer_gradients = base.stack_kernels(
    STACK_ARRAYS
)
#: the stack's forward composed of the step loop that autograd traces (autodiff_gradients)
TRACED_STACK_ARRAYS = STACK_ARRAYS._replace(hidden_states=_traced_hidden_states)
_traced_layer_forward = base.stack_kernels(TRACED_STACK_ARRAYS)[3]


class TorchBackend(base.ClosedFormAutodiffBackend):
    name = "torch"
    framework_version = f"torch {torch.__version__}"
    capabilities = base.capabilities(NONLINEARITIES, devices=("cpu", "cuda"), stacks=True)
    kernels = sys.modules[__name__]

    device_names = {"cpu": "cpu", "cuda": "cuda", "gpu": "cuda"}

    def _visible_devices(self, kind):
        if kind == "cpu":
            return ["cpu"]
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(count)]

    def _default_index(self, kind):
        return torch.cuda.current_device() if kind == "cuda" and torch.cuda.is_available() else 0

    def _open_device(self, kind, index):
        self._device = torch.device("cuda", index) if kind == "cuda" else torch.device("cpu")
        return str(self._device)

    def _scope(self):
        return torch.no_grad()  # the kernels' products build no autograd graph

    def asarray(self, array: np.ndarray, dtype: Any = None) -> torch.Tensor:
        dtype = None if dtype is None else _torch_dtype(dtype)
        return torch.tensor(np.asarray(array, order="C"), dtype=dtype, device=self._device)

    def to_numpy(self, array: torch.Tensor) -> np.ndarray:
        return array.detach().to("cpu", copy=True).numpy()

    def is_native(self, array: Any) -> bool:
        return isinstance(array, torch.Tensor) and array.device == self._device

    def _all_finite(self, arrays):
        if self._on_cpu:  # detached: a view, whether or not it requires grad
            return base.host_all_finite([array.detach() for array in arrays])
        # 0·v is 0 for a finite v and NaN for ±inf or NaN: the sum is NaN exactly when an entry is
        # not finite, and cannot overflow. Three kernels and one wait, however many arrays.
        zeros = torch.cat([array.reshape(-1) for array in arrays]).mul_(0)
        return not bool(zeros.sum().isnan())

    def _zeros_state(self, x, H):
        return x.new_zeros((x.shape[1], H))

    def _zero_masked(self, array, mask):
        return torch.where(mask.reshape(mask.shape + (1,) * (array.ndim - 2)), array, 0)

    def _one_hot(self, y, K, dtype):
        weights = torch.zeros((*y.shape, K), dtype=_torch_dtype(dtype), device=y.device)
        return weights.scatter_(-1, y.long()[..., None], 1)  # faster than gathering rows of I

    def enforce_full_precision(self) -> str:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        return (
            "torch: backends.cuda.matmul.allow_tf32 = False, backends.cudnn.allow_tf32 = False, "
            "float32 matmul precision 'highest'"
        )
