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
from rnnspec.spec.types import Array, JacobianNorms, LagNorms
from rnnspec.spec.validation import validate_length

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
    nonlinearities: dict[str, Nonlinearity], devices: tuple[str, ...], autodiff: bool = True
) -> Capabilities:
    """A built-in backend's: masks (SPEC.md §9), the gradient-flow methods (§10), and every φ its
    module's hook defines (§1), so that a φ is added to a backend by its one line there."""
    return Capabilities(
        autodiff=autodiff,
        devices=devices,
        masks=True,
        gradient_flow=True,
        nonlinearities=tuple(nonlinearities),
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
            h0 = self._initial_state(x, h0, dims)
            return Forward(
                *self._finished(self._forward(params, x, h0, **self._keywords(mask, model)))
            )

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
            return self._finished(self._loss(params, x, weights, h0, **self._keywords(mask, model)))

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
            return self._finished(self._gradients(params, x, weights, h0, **keywords))

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
            return self._finished(self._gradients(params, x, weights, h0, **keywords))

    # --- gradient flow (SPEC.md §10) ---------------------------------------------------------------

    def lag_norms(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        max_lag: int | None = None,
        model: Model | None = None,
    ) -> LagNorms:
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

    def _validate(self, params, x, y, h0, t=None, mask=None, model=None) -> Dims:
        dims = validate(
            params, x, y, h0, t,
            to_numpy=self.to_numpy, is_native=self.is_native, all_finite_of=self._all_finite,
            mask=mask,
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
        nonlinearity = validate_model(model).nonlinearity
        phi = {} if nonlinearity == "tanh" else {"phi": nonlinearity}
        return {**self._kernel_options, **self._masked(mask), **phi}

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
        return dims, self._weights(y, dims, mask), self._initial_state(x, h0, dims)

    def _initial_state(self, x: Array, h0: Array | None, dims: Dims) -> Array:
        return self._zeros_state(x, dims.H) if h0 is None else h0

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
