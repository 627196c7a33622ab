"""What every built-in backend shares: the public methods (validate, then hand native arrays to
kernels), the end of form B, the gradient-flow kernels over NumPy-like arrays, and device parsing
with its error wording.

Every backend module has the same shape (backends/numpy.py is the plainest): ``NONLINEARITIES``, its
φ hook (SPEC.md §1: φ, and φ′ written in h = φ(a)); its private helpers; then the kernels, module-
level functions named as in :data:`KERNELS` and in that order, written with the framework's own
operations; then the backend class, a subclass of :class:`ClosedFormBackend` (or
:class:`ClosedFormAutodiffBackend`, when its framework differentiates) that supplies the array
conversions and names its module as ``kernels``. The class runs every kernel under its ``_scope``
(TensorFlow's device, MLX's stream, torch's no_grad) and hands the result to ``_finished`` (MLX
evaluates it there), so no kernel needs a wrapper.

- ``forward(p, x, h0) -> (h, o, ŷ)`` and ``loss(p, x, y, h0)``, y as (T, B, K) weights;
- ``gradients(p, x, y, h0) -> (loss, Grads)``: SPEC.md form B, ending in
  :func:`grads_from_deltas` with the framework's :class:`Ops`;
- ``autodiff_gradients(p, x, y, h0) -> (loss, Grads)``: the framework's autodiff;
- the gradient-flow kernels of SPEC.md §10 (``lag_norms(…, lags)``, ``truncated_gradients(…,
  k)``, ``tbptt_gradients(…, plan)``, ``jacobian_norms(p, x, h0)``), which take the lengths
  already checked and, for TBPTT, the index arrays of :func:`tbptt_plan`. NumPy, PyTorch and MLX
  bind the ones written here (:func:`flow_kernels`) to their :class:`Arrays`.

Every kernel takes ``phi``, the name of φ (default "tanh"), and, where the backend declares
``capabilities.masks`` (SPEC.md §9), the (T, B) boolean mask as ``mask``; the targets it receives
are already zero at masked steps, so only the recurrences read the mask. The class passes neither
where it is the default (a tanh call without a mask), so a kernel's old call stays the same call.

Because e(t) = (Σ_k y_k(t)) ŷ(t) − y(t) and L(t) are linear in y(t), the gradient of L(t) alone is
form B run on targets that are zero outside step t: the recursion then starts at t with
δ_t(t) = D_t Vᵀ e(t) and applies δ_k(t) = D_k Wᵀ δ_{k+1}(t), which is form A's ordered product
evaluated right to left (SPEC.md §2.10).
"""

import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from rnnspec.spec import (
    PROTOCOL_VERSION,
    BackendError,
    Capabilities,
    Dims,
    Forward,
    Grads,
    Model,
    Params,
    SpecError,
    validate,
    validate_model,
)
from rnnspec.spec.reference_flow import regime, windows
from rnnspec.spec.types import Array, JacobianNorms, LagNorms, LayerOutputs
from rnnspec.spec.validation import validate_cotangents, validate_declared, validate_length

#: The kernels every backend module defines, in this order (autodiff_gradients where it has one).
KERNELS = (
    "forward", "loss", "gradients", "autodiff_gradients",
    "lag_norms", "truncated_gradients", "tbptt_gradients", "jacobian_norms",
)  # fmt: skip


class Nonlinearity(NamedTuple):
    """φ of h(t) = φ(a(t)) (1.2) and its derivative (2.2) written in h: φ′(a) = derivative(φ(a)),
    which holds for tanh (1 − h²) and relu ([h > 0], φ′(0) = 0), so no kernel keeps a(t)."""

    phi: Callable[..., Array]  # of a; NumPy's takes out=, torch's works in place (tanh_, relu_)
    derivative: Callable[[Array], Array]


def capabilities(
    nonlinearities: dict[str, Nonlinearity],
    devices: tuple[str, ...],
    autodiff: bool = True,
    stacks: bool = False,
) -> Capabilities:
    """A built-in backend's: masks (SPEC.md §9), the gradient-flow methods (§10), and every φ its
    module's hook defines (§1), so that a φ is added to a backend by its one line there."""
    return Capabilities(
        autodiff=autodiff,
        devices=devices,
        masks=True,
        gradient_flow=True,
        nonlinearities=tuple(nonlinearities),
        stacks=stacks,
        layer=stacks,
    )


def host_all_finite(arrays: list[Array]) -> bool:
    """Whether no array holds NaN or infinity, read by NumPy where the arrays lie in host memory:
    for a backend on the CPU, where ``np.asarray`` is a view of a framework's array, one pass per
    array and no framework dispatch, against tens of microseconds per operation of a framework's
    eager reductions (the fixed cost of a call: docs/benchmarks.md)."""
    return all(np.isfinite(np.asarray(array)).all() for array in arrays)


class Ops(NamedTuple):
    """The three array operations :func:`grads_from_deltas` needs, bound to one framework."""

    t_matmul: Callable[[Array, Array], Array]  # (a, b) -> aᵀ b
    sum_rows: Callable[[Array], Array]  # a -> Σ over the first axis
    reshape_like: Callable[[Array, Array], Array]  # (a, like) -> a in the shape of like


#: Ops for arrays with NumPy's methods (.T, .sum, .reshape): NumPy, PyTorch and JAX arrays alike
ARRAY_METHOD_OPS = Ops(
    t_matmul=lambda a, b: a.T @ b,
    sum_rows=lambda a: a.sum(0),
    reshape_like=lambda a, like: a.reshape(like.shape),
)


def grads_from_deltas(ops: Ops, p: Params, x, h0, B, rows: tuple, h0_grad=None) -> Grads:
    """SPEC.md (3.3)–(3.5) from δ(t) and e(t), with every step of every sequence as one row:
    ``rows`` = (x, h, e, δ), each (T·B, ·), rows 0..B−1 being t = 1. One matrix product over all
    T·B rows per gradient; ``B`` may be a traced size (TensorFlow). ``h0_grad``: ∇_{h(0)} L where a
    mask carries the gradient past step 1 (9.10); Wᵀ δ(1) (3.5) when not given."""
    x_rows, h_rows, e_rows, delta_rows = rows
    return Grads(
        U=ops.t_matmul(delta_rows, x_rows),  # (3.3) Σ_t δ(t) x(t)ᵀ
        W=ops.t_matmul(delta_rows[:B], h0) + ops.t_matmul(delta_rows[B:], h_rows[:-B]),  # (3.3)
        b=ops.sum_rows(delta_rows),  # (3.3) Σ_t δ(t)
        V=ops.t_matmul(e_rows, h_rows),  # (3.4) Σ_t e(t) h(t)ᵀ
        c=ops.sum_rows(e_rows),  # (3.4) Σ_t e(t)
        h0=delta_rows[:B] @ p.W if h0_grad is None else h0_grad,  # (3.5) Wᵀ δ(1), as rows
        x=ops.reshape_like(delta_rows @ p.U, x),  # (3.5) Uᵀ δ(t), as rows
    )


def window_grads(p: Params, x, h, h_prev, e_w, delta, plan, B: int, D: int) -> tuple:
    """The windows' losses' gradients of TBPTT (10.6) from their δ and e, offset-major (k, n, B, ·),
    one batched product per gradient: for arrays with NumPy's methods (NumPy, PyTorch, JAX, MLX)."""
    k, n = plan.steps.shape

    def per_window(a, b):  # Σ over offsets and batch of aᵀ b, for each window
        a, b = a.swapaxes(0, 1), b.swapaxes(0, 1)
        return a.reshape(n, k * B, -1).swapaxes(1, 2) @ b.reshape(n, k * B, -1)

    return Grads(
        U=per_window(delta, x[plan.steps]),
        W=per_window(delta, h_prev[plan.steps]),
        b=delta.sum(axis=(0, 2)),
        V=per_window(e_w, h[plan.steps]),
        c=e_w.sum(axis=(0, 2)),
        h0=(delta * plan.earliest).sum(0) @ p.W,  # ∇h(τ − k2): Wᵀ δ at the earliest step
        x=(delta @ p.U).reshape(k * n, B, D)[plan.x_rows] * plan.x_inside,
    )


def lag_deltas(p: Params, h, e_rows, lags: int, derivative):
    """The slabs δ_k(k + j) for k = 1 … T − j, one lag j = 0 … lags − 1 at a time (10.2): lag 0 is
    D_k Vᵀ e(k), lag j is D_k Wᵀ (lag j − 1 at k + 1), every k in one product; ``derivative`` is
    D_k's diagonal for every k. For arrays with NumPy's methods (NumPy, PyTorch, MLX)."""
    T, B, H = h.shape
    slab = (e_rows @ p.V).reshape(T, B, H) * derivative
    yield slab
    for j in range(1, lags):
        slab = (slab[1:] @ p.W) * derivative[: T - j]
        yield slab


def lag_grads(p: Params, x, h_prev, slab) -> tuple:
    """(10.1) G_j for U, W, b, h0 and x from the lag-j slab (δ_k(k + j) at rows k = 1 … T − j),
    for arrays with NumPy's methods (NumPy, PyTorch, MLX)."""
    n, B, H = slab.shape
    rows = slab.reshape(n * B, H)
    return (
        rows.T @ x[:n].reshape(n * B, -1),  # Σ_k δ_k(k + j) x(k)ᵀ
        rows.T @ h_prev[:n].reshape(n * B, H),  # Σ_k δ_k(k + j) h(k − 1)ᵀ
        rows.sum(0),
        slab[0] @ p.W,  # Wᵀ δ_1(1 + j), as rows
        slab @ p.U,  # Uᵀ δ_k(k + j), as rows
    )


class TbpttPlan(NamedTuple):
    """Where each window of TBPTT(k1, k2) reads and writes (SPEC.md §10.3), offset-major: offset
    i = τ − t counts back from the window's last step τ, so the backward recursion runs over i.
    Index arrays are int64, masks are in x's dtype; n = the number of windows, k = min(k2, T)."""

    steps: np.ndarray  # (k, n) 0-based time index of offset i (clamped where the window ended)
    inside: np.ndarray  # (k, n, 1, 1) 1 where offset i is in the window (t ≥ s + 1, (10.5))
    losses: np.ndarray  # (k, n, 1, 1) 1 where step t's loss is the window's (t > previous τ)
    earliest: np.ndarray  # (k, n, 1, 1) 1 at the window's earliest step (its h(0) is one before)
    x_rows: np.ndarray  # (n, k) for ∇x in time order: row m of window w, step s_w + 1 + m, is
    #                     row i·n + w of the (k·n, B, D) offsets (clamped where past the window)
    x_inside: np.ndarray  # (n, k, 1, 1) 1 where step s_w + 1 + m is in window w


def tbptt_plan(T: int, k1: int, k2: int, dtype: str) -> TbpttPlan:
    """The index arrays of TBPTT(k1, k2) on T steps; shape arithmetic only, no data."""
    spans = windows(T, k1, k2)
    k, n = min(k2, T), len(spans)
    tau = np.array([s[0] for s in spans])
    offsets = np.arange(k)[:, None]
    t = tau[None, :] - offsets  # 1-based step of offset i in window w
    first = np.array([s[2] for s in spans])
    inside = t >= first[None, :]
    losses = inside & (t >= np.array([s[1] for s in spans])[None, :])
    earliest = offsets == (tau - first)[None, :]
    offset_of_row = (tau - first)[:, None] - np.arange(k)  # (n, k): τ − t for t = s + 1 + m
    x_inside = offset_of_row >= 0
    x_rows = np.clip(offset_of_row, 0, k - 1) * n + np.arange(n)[:, None]

    def mask(m):
        return m.astype(dtype)[..., None, None]

    return TbpttPlan(np.maximum(t - 1, 0), mask(inside), mask(losses), mask(earliest), x_rows,
                     mask(x_inside))  # fmt: skip


class Arrays(NamedTuple):
    """What the gradient-flow kernels below need of a framework beyond NumPy's array methods
    (``@``, ``.T``, ``.sum``, ``.reshape``, indexing, slice assignment): its forward pass and
    output errors, its φ hook, and the few functions whose names differ between libraries."""

    nonlinearities: dict[str, Nonlinearity]
    hidden_states: Callable[..., Array]  # (p, x, h0, phi) -> h(1..T), (T, B, H)
    loss_and_output_errors: Callable[..., tuple]  # (p, h, y) -> L, e(t) as (T·B, K) rows
    step_losses_and_output_errors: Callable[..., tuple]  # (p, h, y) -> L(t) (T,), e(t) (T, B, K)
    concatenate: Callable[[list], Array]  # along the first axis
    stack: Callable[[list], Array]  # along a new first axis
    zeros: Callable[[tuple, Array], Array]  # (shape, like): zeros in like's dtype and device
    eye: Callable[[int, Array], Array]  # (n, like): the identity in like's dtype and device
    norm: Callable[[Array], Array]  # ‖a‖_F of the whole array
    spectral_norm: Callable[[Array], Array]  # ‖a‖₂ of a matrix, or of each of a stack of them


def flow_kernels(arrays: Arrays) -> tuple[Callable, ...]:
    """``lag_norms``, ``truncated_gradients``, ``tbptt_gradients`` and ``jacobian_norms`` (SPEC.md
    §10) for one framework, written once over arrays with NumPy's methods."""
    return tuple(
        functools.partial(kernel, arrays)
        for kernel in (_lag_norms, _truncated_gradients, _tbptt_gradients, _jacobian_norms)
    )


def _lag_norms(arrays: Arrays, p: Params, x, y, h0, lags: int, phi: str = "tanh"):
    T, B, H = x.shape[0], x.shape[1], p.W.shape[0]
    h = arrays.hidden_states(p, x, h0, phi)
    _, e_rows = arrays.loss_and_output_errors(p, h, y)
    h_prev = arrays.concatenate([h0[None], h[:-1]])
    derivative = arrays.nonlinearities[phi].derivative(h)  # (2.2) D_k
    per_lag = [
        arrays.stack([arrays.norm(g) for g in lag_grads(p, x, h_prev, slab)])
        for slab in lag_deltas(p, h, e_rows, lags, derivative)
    ]
    U, W, b, h0_norms, x_norms = arrays.stack(per_lag).T  # the lag-j norms, one row per tensor
    zero = arrays.zeros((lags - 1,), x)  # V and c receive lag 0 only
    V = arrays.concatenate([arrays.norm(e_rows.T @ h.reshape(T * B, H))[None], zero])
    c = arrays.concatenate([arrays.norm(e_rows.sum(0))[None], zero])
    return U, W, b, V, c, h0_norms, x_norms


def _truncated_gradients(arrays: Arrays, p: Params, x, y, h0, k: int, phi: str = "tanh"):
    T, B, D = x.shape
    h = arrays.hidden_states(p, x, h0, phi)
    loss, e_rows = arrays.loss_and_output_errors(p, h, y)
    H = h.shape[-1]
    derivative = arrays.nonlinearities[phi].derivative(h)  # (2.2) D_k
    delta = arrays.zeros(h.shape, h)  # Σ_{j<k} δ_t(t + j) at row t: (10.3) through (3.3)–(3.5)
    for slab in lag_deltas(p, h, e_rows, k, derivative):
        delta[: len(slab)] += slab
    rows = (x.reshape(T * B, D), h.reshape(T * B, H), e_rows, delta.reshape(T * B, H))
    return loss, grads_from_deltas(ARRAY_METHOD_OPS, p, x, h0, B, rows)


def _tbptt_gradients(arrays: Arrays, p: Params, x, y, h0, plan: TbpttPlan, phi: str = "tanh"):
    _, B, D = x.shape
    h = arrays.hidden_states(p, x, h0, phi)
    step_losses, e = arrays.step_losses_and_output_errors(p, h, y)
    h_prev = arrays.concatenate([h0[None], h[:-1]])
    e_w = e[plan.steps] * plan.losses  # e(t) of the window's own loss steps (10.6)
    # D_t, zero outside the window; offsets i = τ − t, for every window w at once
    derivative = arrays.nonlinearities[phi].derivative(h[plan.steps]) * plan.inside
    output_grad = e_w @ p.V
    deltas = [output_grad[0] * derivative[0]]
    for i in range(1, plan.steps.shape[0]):  # (3.1)–(3.2) in each window, back in t = on in i
        deltas.append((output_grad[i] + deltas[-1] @ p.W) * derivative[i])
    delta = arrays.stack(deltas)
    grads = window_grads(p, x, h, h_prev, e_w, delta, plan, B, D)
    return (step_losses[plan.steps] * plan.losses[..., 0, 0]).sum(0), grads


def _jacobian_norms(arrays: Arrays, p: Params, x, h0, phi: str = "tanh"):
    T, B = x.shape[:2]
    derivative = arrays.nonlinearities[phi].derivative(arrays.hidden_states(p, x, h0, phi))
    jacobian = arrays.eye(p.W.shape[0], x)  # becomes (B, H, H) at the first lag
    norms = []
    for j in range(1, T):  # (10.7) ∂h(T)/∂h(T−j) = ∂h(T)/∂h(T−j+1) · D_{T−j+1} W
        jacobian = (jacobian * derivative[T - j][:, None, :]) @ p.W
        norms.append(arrays.spectral_norm(jacobian))
    per_sequence = arrays.stack(norms) if norms else arrays.zeros((0, B), x)
    return per_sequence, per_sequence.mean(1), arrays.spectral_norm(p.W)


class StackArrays(NamedTuple):
    """What the stack kernels (SPEC.md §12–§13) need of a framework: its one-cell forward and
    backward recursions, its output layer, and the few functions whose names differ."""

    hidden_states: Callable[..., Array]  # (cell, z, h0, phi, mask) -> h(1..T), (T, B, H)
    # (cell, h, grad_h, h0, phi, mask, final) -> δ, ∇h(0); may write δ over grad_h, which is a
    # fresh array or a view of one (a direction's block, reversed in time) that nothing reads again
    cell_deltas: Callable[..., tuple]
    outputs: Callable[..., tuple]  # (p, h) -> o(t), log ŷ(t), (T, B, K) each
    loss_and_output_errors: Callable[..., tuple]  # (p, h, y) -> L, e(t) as (T·B, K) rows
    flip: Callable[[Array], Array]  # a reversed along its first axis, time
    concatenate_last: Callable[[list], Array]  # along the last axis
    stack: Callable[[list], Array]  # along a new first axis
    rows: Callable[[Array], Array]  # (T, B, n) -> (T·B, n)
    exp: Callable[[Array], Array]
    ops: Ops


def stack_kernels(arrays: StackArrays) -> tuple[Callable, ...]:
    """``stack_forward``, ``stack_loss``, ``stack_gradients`` (SPEC.md §12), ``layer_forward``
    and ``layer_gradients`` (§13) for one framework, written once over its one-cell kernels."""
    return tuple(
        functools.partial(kernel, arrays)
        for kernel in (_stack_forward, _stack_loss, _stack_gradients, _layer_forward,
                       _layer_gradients)
    )  # fmt: skip


def _cell(p: Params, i: int, model: Model) -> Params:
    """Cell i's U, W, b as a Params without a head: i = l·directions + d (§12)."""
    if not model.stacked:
        return Params(p.U, p.W, p.b, None, None)
    return Params(p.U[i], p.W[i], p.b[i], None, None)


def _states(arrays: StackArrays, p: Params, x, h0: list, model: Model, phi: str, mask):
    """(12.1)–(12.3): every cell's h(1..T) in time order, and every layer's input z_l (z_1 = x,
    z_{l+1} = the layer's [forward; reverse] states); a reverse direction is its cell's forward
    recursion over the reversed sequence (its mask reversed too), reversed back (§12.2)."""
    flipped_mask = None if mask is None else arrays.flip(mask)
    states, inputs = [], [x]
    for layer in range(model.layers):
        z = inputs[-1]
        for direction in range(model.directions):
            i = layer * model.directions + direction
            if direction == 0:
                h = arrays.hidden_states(_cell(p, i, model), z, h0[i], phi, mask)
            else:
                reversed_z = arrays.flip(z)
                cell = _cell(p, i, model)
                h = arrays.flip(arrays.hidden_states(cell, reversed_z, h0[i], phi, flipped_mask))
            states.append(h)
        mine = states[-model.directions :]
        inputs.append(mine[0] if model.directions == 1 else arrays.concatenate_last(mine))
    return states, inputs


def _cell_grads(arrays: StackArrays, cell: Params, z, h, h0, delta, h0_grad, B):
    """(3.3), (3.5), (12.5) of one cell from its δ(t), all in the cell's own order of steps:
    ∇U, ∇W, ∇b, ∇h(0) and its input's gradient Uᵀ δ(t), (T, B, D_l)."""
    ops = arrays.ops
    z_rows, h_rows, delta_rows = arrays.rows(z), arrays.rows(h), arrays.rows(delta)
    return (
        ops.t_matmul(delta_rows, z_rows),  # (3.3) Σ_t δ(t) z(t)ᵀ
        ops.t_matmul(delta_rows[:B], h0) + ops.t_matmul(delta_rows[B:], h_rows[:-B]),  # (3.3)
        ops.sum_rows(delta_rows),  # (3.3) Σ_t δ(t)
        delta_rows[:B] @ cell.W if h0_grad is None else h0_grad,  # (3.5), (9.10)
        ops.reshape_like(delta_rows @ cell.U, z),  # (12.5) Uᵀ δ(t), as rows
    )


def _backward(arrays: StackArrays, p: Params, h0: list, states, inputs, grad_top, finals,
              model: Model, phi: str, mask):  # fmt: skip
    """(12.4)–(12.6): from ∂ℓ/∂(top layer's states) and each cell's ∂ℓ/∂h_n (or None), every
    cell's ∇U, ∇W, ∇b, ∇h(0) in cell order, and ∇x. ``grad_top`` is a fresh array: the
    one-cell kernels overwrite their gradient in place with δ."""
    flipped_mask = None if mask is None else arrays.flip(mask)
    B = inputs[0].shape[1]
    per_cell: list = [None] * model.cells
    grad = grad_top
    for layer in reversed(range(model.layers)):
        z, below = inputs[layer], None
        for direction in range(model.directions):
            i = layer * model.directions + direction
            cell, h = _cell(p, i, model), states[i]
            H = h.shape[-1]
            g = grad if model.directions == 1 else grad[..., direction * H : (direction + 1) * H]
            if direction == 1:  # in the reverse direction's own order of steps, t = T..1
                z, h, g = arrays.flip(z), arrays.flip(h), arrays.flip(g)
            delta, h0_grad = arrays.cell_deltas(
                cell, h, g, h0[i], phi, mask if direction == 0 else flipped_mask, finals[i]
            )
            U, W, b, dh0, dz = _cell_grads(arrays, cell, z, h, h0[i], delta, h0_grad, B)
            if direction == 1:
                z, dz = arrays.flip(z), arrays.flip(dz)
            per_cell[i] = (U, W, b, dh0)
            below = dz if below is None else below + dz  # (12.5) both directions read z_l(t)
        grad = below  # (12.6) the gradient of the layer below's states
    return per_cell, grad


def _stack_h0(h0, model: Model) -> list:
    """Each cell's h(0), (B, H): rows of the (cells, B, H) h0 of a stack (§12)."""
    return [h0[i] for i in range(model.cells)] if model.stacked else [h0]


def _grads_of(arrays: StackArrays, per_cell, V, c, grad_x, model: Model) -> Grads:
    U, W, b, h0 = (tuple(cell[k] for cell in per_cell) for k in range(4))
    if not model.stacked:
        return Grads(U[0], W[0], b[0], V, c, h0[0], grad_x)
    return Grads(U, W, b, V, c, arrays.stack(list(h0)), grad_x)


def _stack_forward(arrays: StackArrays, p: Params, x, h0, model: Model, phi="tanh", mask=None):
    _, inputs = _states(arrays, p, x, _stack_h0(h0, model), model, phi, mask)
    o, log_yhat = arrays.outputs(p, inputs[-1])
    return inputs[-1], o, arrays.exp(log_yhat)


def _stack_loss(arrays: StackArrays, p: Params, x, y, h0, model: Model, phi="tanh", mask=None):
    _, inputs = _states(arrays, p, x, _stack_h0(h0, model), model, phi, mask)
    return arrays.loss_and_output_errors(p, inputs[-1], y)[0]


def _stack_gradients(arrays: StackArrays, p: Params, x, y, h0, model: Model, phi="tanh",
                     mask=None):  # fmt: skip
    """(12.4) with g_N(t) = Vᵀ e(t) from the head, which reads no last state (§12.3)."""
    h0 = _stack_h0(h0, model)
    states, inputs = _states(arrays, p, x, h0, model, phi, mask)
    top = inputs[-1]
    loss, e_rows = arrays.loss_and_output_errors(p, top, y)  # (1.6), (2.1)
    ops = arrays.ops
    grad_top = ops.reshape_like(e_rows @ p.V, top)  # Vᵀ e(t), every t
    per_cell, grad_x = _backward(arrays, p, h0, states, inputs, grad_top, [None] * model.cells,
                                 model, phi, mask)  # fmt: skip
    V, c = ops.t_matmul(e_rows, arrays.rows(top)), ops.sum_rows(e_rows)  # (3.4)
    return loss, _grads_of(arrays, per_cell, V, c, grad_x, model)


def _finals(states: list, model: Model) -> list:
    """(13.2) each cell's last state h_n: h(T) forward, h(1) in the reverse direction."""
    return [h[0] if i % model.directions else h[-1] for i, h in enumerate(states)]


def _layer_forward(arrays: StackArrays, p: Params, x, h0, model: Model, phi="tanh", mask=None):
    states, inputs = _states(arrays, p, x, _stack_h0(h0, model), model, phi, mask)
    finals = arrays.stack(_finals(states, model))  # a copy: h_n is no view of h
    return inputs[-1], finals if model.stacked else finals[0]


def _layer_gradients(arrays: StackArrays, p: Params, x, h_grad, hn_grad, h0, model: Model,
                     phi="tanh", mask=None):  # fmt: skip
    """(13.1): the layer's VJP, its upstream gradients injected as g_N(t) and at each cell's last
    step; h_grad is copied first (the one-cell kernels write δ over their gradient)."""
    h0 = _stack_h0(h0, model)
    states, inputs = _states(arrays, p, x, h0, model, phi, mask)
    finals = [None] * model.cells if hn_grad is None else _stack_h0(hn_grad, model)
    per_cell, grad_x = _backward(arrays, p, h0, states, inputs, h_grad * 1, finals, model, phi,
                                 mask)  # fmt: skip
    return _grads_of(arrays, per_cell, None, None, grad_x, model)


def parse_device(backend: str, device: str | None, kinds: dict[str, str]) -> tuple[str, int | None]:
    """The kind and index a device name asks for: "GPU:1" -> ("gpu", 1), "cpu" -> ("cpu", None).

    ``kinds`` maps each accepted name (lowercase; any case is accepted) to the kind it means, e.g.
    {"gpu": "gpu", "cuda": "gpu"}. None means "cpu". Anything else is a BackendError.
    """
    name, _, index = ("cpu" if device is None else str(device)).lower().partition(":")
    if name not in kinds or (index and not index.isdigit()):
        accepted = ", ".join(f"'{k}'" if k == "cpu" else f"'{k}[:N]'" for k in kinds)
        raise BackendError(f"the {backend} backend runs on {accepted}; got device={device!r}")
    return kinds[name], int(index) if index else None


def missing_device(backend: str, device: str | None, kind: str, visible: list[str]) -> BackendError:
    """The error for a device that is well named but not there (never a fallback to another)."""
    return BackendError(
        f"the {backend} backend cannot run on device={device!r}: "
        f"{len(visible)} {kind} device(s) visible{': ' + ', '.join(visible) if visible else ''}"
    )


class ClosedFormBackend(ABC):
    name: str
    device: str
    framework_version: str
    protocol_version = PROTOCOL_VERSION
    capabilities: Capabilities
    #: the device names accepted (lowercase; any case is accepted) -> the kind each one means
    device_names: dict[str, str] = {"cpu": "cpu"}
    #: the backend's module: its kernels, module-level functions of the names in KERNELS
    kernels: ModuleType
    #: keywords every kernel call takes on this instance (JAX's loop unrolling on a GPU)
    _kernel_options: dict[str, Any] = {}

    def __init__(self, device: str | None = None):
        """Open ``device`` ("cpu" when None): a BackendError if it is not accepted or not there."""
        kind, index = parse_device(self.name, device, self.device_names)
        visible = self._visible_devices(kind)
        index = self._default_index(kind) if index is None else index
        if index >= len(visible):
            raise missing_device(self.name, device, kind, visible)
        self.device = self._open_device(kind, index)

    # --- supplied by each backend, in this order in every backend module -----------------------
    # (a module leaves out the defaults it keeps)

    def _visible_devices(self, kind: str) -> list[str]:
        """The names of the devices of ``kind`` the framework sees, in index order."""
        return ["cpu"] if kind == "cpu" else []

    def _default_index(self, kind: str) -> int:
        """The index a device name without one means."""
        return 0

    def _open_device(self, kind: str, index: int) -> str:
        """Keep what the framework needs to put arrays on the device; return its name."""
        return kind

    def _scope(self) -> AbstractContextManager:
        """What every call runs under: the framework's device or stream, no autograd tape."""
        return contextlib.nullcontext()

    def _finished(self, result: Any) -> Any:
        """A kernel's result, its work done (a lazy framework evaluates it here)."""
        return result

    @abstractmethod
    def asarray(self, array: np.ndarray, dtype: Any = None) -> Array: ...

    @abstractmethod
    def to_numpy(self, array: Array) -> np.ndarray: ...

    @abstractmethod
    def is_native(self, array: Any) -> bool: ...

    @abstractmethod
    def _all_finite(self, arrays: list[Array]) -> bool:
        """Whether no array holds NaN or infinity: on the CPU (``_on_cpu``) :func:`host_all_finite`,
        elsewhere one fused reduction, one scalar off the device."""

    @abstractmethod
    def _zeros_state(self, x: Array, H: int) -> Array: ...

    def _zero_masked(self, array: Array, mask: Array) -> Array:
        """``array`` (T, B) or (T, B, K) with zeros at the steps where ``mask`` is False; supplied
        by a backend that declares ``capabilities.masks``."""
        raise NotImplementedError(f"the {self.name} backend declares no masks")

    @abstractmethod
    def _one_hot(self, y: Array, K: int, dtype: str) -> Array: ...

    # --- the kernels: the module's functions; a test double replaces one by overriding it -------

    def _forward(self, *args, **keywords):
        return self.kernels.forward(*args, **keywords)

    def _loss(self, *args, **keywords):
        return self.kernels.loss(*args, **keywords)

    def _gradients(self, *args, **keywords):
        return self.kernels.gradients(*args, **keywords)

    def _lag_norms(self, *args, **keywords):
        return self.kernels.lag_norms(*args, **keywords)

    def _truncated_gradients(self, *args, **keywords):
        return self.kernels.truncated_gradients(*args, **keywords)

    def _tbptt_gradients(self, *args, **keywords):
        return self.kernels.tbptt_gradients(*args, **keywords)

    def _jacobian_norms(self, *args, **keywords):
        return self.kernels.jacobian_norms(*args, **keywords)

    def _stack_forward(self, *args, **keywords):
        return self.kernels.stack_forward(*args, **keywords)

    def _stack_loss(self, *args, **keywords):
        return self.kernels.stack_loss(*args, **keywords)

    def _stack_gradients(self, *args, **keywords):
        return self.kernels.stack_gradients(*args, **keywords)

    def _layer_forward(self, *args, **keywords):
        return self.kernels.layer_forward(*args, **keywords)

    def _layer_gradients(self, *args, **keywords):
        return self.kernels.layer_gradients(*args, **keywords)

    # --- the Backend protocol -------------------------------------------------------------------

    def forward(
        self,
        params: Params,
        x: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> Forward:
        with self._scope():
            dims = self._validate(params, x, None, h0, mask=mask, model=model)
            h0 = self._initial_state(x, h0, dims, model)
            keywords = self._keywords(mask, model)
            if validate_model(model).stacked:
                return Forward(*self._finished(self._stack_forward(params, x, h0, **keywords)))
            return Forward(*self._finished(self._forward(params, x, h0, **keywords)))

    def loss(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> Array:
        with self._scope():
            _, weights, h0 = self._prepared(params, x, y, h0, mask=mask, model=model)
            keywords = self._keywords(mask, model)
            kernel = self._stack_loss if validate_model(model).stacked else self._loss
            return self._finished(kernel(params, x, weights, h0, **keywords))

    def gradients(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> tuple[Array, Grads]:
        with self._scope():
            _, weights, h0 = self._prepared(params, x, y, h0, mask=mask, model=model)
            keywords = self._keywords(mask, model)
            kernel = self._stack_gradients if validate_model(model).stacked else self._gradients
            return self._finished(kernel(params, x, weights, h0, **keywords))

    def step_gradients(
        self,
        params: Params,
        x: Array,
        y: Array,
        t: int,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> tuple[Array, Grads]:
        with self._scope():
            dims, weights, h0 = self._prepared(params, x, y, h0, t, mask, model)
            at_t = np.zeros((dims.T, 1, 1), dims.dtype)  # (2.10): targets zeroed outside step t
            at_t[int(t) - 1] = 1
            weights = weights * self.asarray(at_t)
            keywords = self._keywords(mask, model)
            kernel = self._stack_gradients if validate_model(model).stacked else self._gradients
            return self._finished(kernel(params, x, weights, h0, **keywords))  # (12.7) for a stack

    # --- the layer alone (SPEC.md §13) -----------------------------------------------------------

    def layer_forward(
        self,
        params: Params,
        x: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> LayerOutputs:
        with self._scope():
            dims = self._validate(params, x, None, h0, mask=mask, model=model, head=False)
            h0 = self._initial_state(x, h0, dims, model)
            keywords = {**self._keywords(mask, model), "model": validate_model(model)}
            return LayerOutputs(*self._finished(self._layer_forward(params, x, h0, **keywords)))

    def layer_gradients(
        self,
        params: Params,
        x: Array,
        h_grad: Array,
        hn_grad: Array | None = None,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> Grads:
        with self._scope():
            dims = self._validate(params, x, None, h0, mask=mask, model=model, head=False)
            validate_cotangents(h_grad, hn_grad, dims, validate_model(model),
                                self.is_native, self._all_finite, self.to_numpy)  # fmt: skip
            h0 = self._initial_state(x, h0, dims, model)
            keywords = {**self._keywords(mask, model), "model": validate_model(model)}
            grads = self._layer_gradients(params, x, h_grad, hn_grad, h0, **keywords)
            return self._finished(grads)

    # --- gradient flow (SPEC.md §10) ---------------------------------------------------------------

    @staticmethod
    def _one_cell(method: str, model: Model | None) -> None:
        """§10's methods are defined for the one-layer network (SPEC.md §12.5)."""
        model = validate_model(model)
        if model.stacked:
            raise SpecError(
                f"model: expected one layer in one direction for {method} (SPEC.md §12.5: the lag "
                f"decomposition of §10 is the one-layer network's), got layers={model.layers}, "
                f"bidirectional={model.bidirectional}"
            )

    def lag_norms(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        max_lag: int | None = None,
        model: Model | None = None,
    ) -> LagNorms:
        self._one_cell("lag_norms", model)
        with self._scope():
            dims, weights, h0 = self._prepared(params, x, y, h0, model=model)
            lags = dims.T if max_lag is None else min(dims.T, validate_length("max_lag", max_lag))
            norms = self._lag_norms(params, x, weights, h0, lags, **self._keywords(None, model))
            return LagNorms(*self._finished(norms))

    def truncated_gradients(
        self,
        params: Params,
        x: Array,
        y: Array,
        k: int,
        h0: Array | None = None,
        model: Model | None = None,
    ) -> tuple[Array, Grads]:
        self._one_cell("truncated_gradients", model)
        with self._scope():
            dims, weights, h0 = self._prepared(params, x, y, h0, model=model)
            k = min(dims.T, validate_length("k", k))  # lags run to T − 1: k ≥ T is the full one
            keywords = self._keywords(None, model)
            return self._finished(self._truncated_gradients(params, x, weights, h0, k, **keywords))

    def tbptt_gradients(
        self,
        params: Params,
        x: Array,
        y: Array,
        k1: int,
        k2: int,
        h0: Array | None = None,
        model: Model | None = None,
    ) -> tuple[Array, Grads]:
        self._one_cell("tbptt_gradients", model)
        with self._scope():
            dims, weights, h0 = self._prepared(params, x, y, h0, model=model)
            k1 = validate_length("k1", k1)
            k2 = validate_length("k2", k2, k1, f"k1 = {k1}")
            plan = TbpttPlan(*map(self.asarray, tbptt_plan(dims.T, k1, k2, dims.dtype)))
            keywords = self._keywords(None, model)
            return self._finished(self._tbptt_gradients(params, x, weights, h0, plan, **keywords))

    def jacobian_norms(
        self, params: Params, x: Array, h0: Array | None = None, model: Model | None = None
    ) -> JacobianNorms:
        self._one_cell("jacobian_norms", model)
        with self._scope():
            dims = self._validate(params, x, None, h0, model=model)
            h0 = self._initial_state(x, h0, dims)
            norms = self._jacobian_norms(params, x, h0, **self._keywords(None, model))
            per_sequence, mean, sigma = self._finished(norms)
        return JacobianNorms(per_sequence, mean, sigma, regime(float(self.to_numpy(sigma))))

    def enforce_full_precision(self) -> str:
        """Turn off reduced-precision float32 matmuls (TF32 and the like); say what was done.

        The conformance suite calls this before checking a GPU, where frameworks default to TF32
        (u ≈ 4.9e-4) and the tolerance policy's float32 bound would not hold.
        """
        return "full float32 precision is this backend's only mode"

    # --- shared plumbing ------------------------------------------------------------------------

    @property
    def _on_cpu(self) -> bool:
        """Whether the backend's arrays lie in host memory: its device is the CPU ("cpu", "cpu:0",
        "CPU:0", as each framework names it)."""
        return self.device.lower().startswith("cpu")

    def _validate(self, params, x, y, h0, t=None, mask=None, model=None, head=True) -> Dims:
        model = validate_declared(model, self.capabilities, self.name, head)
        dims = validate(
            params, x, y, h0, t,
            to_numpy=self.to_numpy, is_native=self.is_native, all_finite_of=self._all_finite,
            mask=mask, model=model, head=head,
        )  # fmt: skip
        if dims.dtype not in self.capabilities.dtypes:  # e.g. float64 on MLX's GPU
            declared = " or ".join(self.capabilities.dtypes)
            raise SpecError(
                f"x: expected dtype {declared} (what the {self.name} backend computes in on "
                f"{self.device}), got {dims.dtype}"
            )
        nonlinearity = validate_model(model).nonlinearity
        if nonlinearity not in self.capabilities.nonlinearities:
            declared = " or ".join(repr(n) for n in self.capabilities.nonlinearities)
            raise SpecError(
                f"model.nonlinearity: expected {declared} (what the {self.name} backend "
                f"declares in capabilities.nonlinearities), got {nonlinearity!r}"
            )
        return dims

    def _keywords(self, mask: Array | None, model: Model | None) -> dict[str, Any]:
        """The kernels' keywords: ``mask`` with a mask (SPEC.md §9), ``phi`` for a φ other than
        tanh (§1), so that a tanh call without a mask is the same kernel call it always was."""
        model = validate_model(model)
        phi = {} if model.nonlinearity == "tanh" else {"phi": model.nonlinearity}
        stack = {"model": model} if model.stacked else {}  # the stack kernels' (§12)
        return {**self._kernel_options, **self._masked(mask), **phi, **stack}

    def _masked(self, mask: Array | None) -> dict[str, Array]:
        """The kernels' keyword for a mask: none without one (SPEC.md §9)."""
        if mask is None:
            return {}
        if not self.capabilities.masks:
            raise SpecError(
                f"mask: expected None, got a mask: the {self.name} backend does not declare "
                "capabilities.masks"
            )
        return {"mask": mask}

    def _prepared(
        self, params, x, y, h0, t=None, mask=None, model=None
    ) -> tuple[Dims, Array, Array]:
        """A call's inputs checked, then what its kernel takes: the dimensions, the targets as
        weights and the initial state."""
        dims = self._validate(params, x, y, h0, t, mask=mask, model=model)
        return dims, self._weights(y, dims, mask), self._initial_state(x, h0, dims, model)

    def _initial_state(self, x: Array, h0: Array | None, dims: Dims, model=None) -> Array:
        """h(0), zeros where omitted: (B, H), or (cells, B, H) for a stack (SPEC.md §12), one array
        either way, so that a compiled stack kernel sees one signature."""
        if h0 is not None:
            return h0
        zeros = self._zeros_state(x, dims.H)
        model = validate_model(model)
        return self.kernels.STACK_ARRAYS.stack([zeros] * model.cells) if model.stacked else zeros

    def _weights(self, y: Array, dims: Dims, mask: Array | None = None) -> Array:
        """Targets as (T, B, K) weights; zero at masked steps, whose targets are not read (§9):
        class indices there may be anything (−100, K), and are zeroed before the one-hot."""
        if mask is None:
            return y if dims.soft_targets else self._one_hot(y, dims.K, dims.dtype)
        self._masked(mask)  # a backend without masks says so before reading one
        if not dims.soft_targets:
            y = self._one_hot(self._zero_masked(y, mask), dims.K, dims.dtype)
        return self._zero_masked(y, mask)

    def __repr__(self) -> str:
        return f"<rnnspec {self.name} backend on {self.device}, {self.framework_version}>"


class ClosedFormAutodiffBackend(ClosedFormBackend):
    """A built-in backend whose framework differentiates: ``autodiff_gradients`` too, the module's
    ``autodiff_gradients`` kernel."""

    def _autodiff_gradients(self, *args, **keywords):
        return self.kernels.autodiff_gradients(*args, **keywords)

    def autodiff_gradients(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> tuple[Array, Grads]:
        with self._scope():
            _, weights, h0 = self._prepared(params, x, y, h0, mask=mask, model=model)
            keywords = self._keywords(mask, model)
            return self._finished(self._autodiff_gradients(params, x, weights, h0, **keywords))
