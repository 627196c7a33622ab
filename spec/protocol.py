"""The contract between a backend and the conformance suite (SPEC.md §8)."""

import inspect
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rnnspec.spec.types import (
    NONLINEARITIES,
    Array,
    Forward,
    Grads,
    JacobianNorms,
    LagNorms,
    LayerOutputs,
    Model,
    Params,
)

#: Version of the Backend protocol; a conformance report names the protocol and suite versions passed.
PROTOCOL_VERSION = "2.2"

_SINCE_2_1 = (
    "protocol 2.2 adds the model description (SPEC.md §1, §8): every method that takes params takes "
    "`model=None` last (an rnnspec.spec.Model; None is Model(), the tanh network), and "
    "`capabilities.nonlinearities` says which φ it computes (default ('tanh',): a check of another "
    "φ is not applicable)"
)
_SINCE_2_0 = (
    "protocol 2.1 adds masks for variable-length sequences (SPEC.md §9): every method that takes x "
    "takes `mask=None` last, and `capabilities.masks` says whether a mask is honoured (a backend "
    "that declares masks=False loads, but fails the suite's mask checks)"
)
_SET_VERSION = "; then set `protocol_version = rnnspec.spec.PROTOCOL_VERSION`"

#: What each earlier protocol version lacks, for the message a backend of that version gets.
UPGRADES = {
    "1.0": (
        "protocol 2.0 adds a `capabilities` attribute, e.g. "
        "`capabilities = rnnspec.spec.Capabilities(autodiff=False, devices=('cpu',))`, "
        "and needs `autodiff_gradients` only where `capabilities.autodiff` is true (declare "
        "autodiff=False instead of raising NotImplementedError); BackendError now comes from "
        f"rnnspec.spec; {_SINCE_2_0}; {_SINCE_2_1}{_SET_VERSION}"
    ),
    "2.0": f"{_SINCE_2_0}; {_SINCE_2_1}{_SET_VERSION}",
    "2.1": _SINCE_2_1 + _SET_VERSION,
}

#: the methods that take x, and with it ``mask=None`` (SPEC.md §9)
MASKED_METHODS = ("forward", "loss", "gradients", "step_gradients", "autodiff_gradients")
#: the methods that take params, and with them ``model=None`` (SPEC.md §8)
MODEL_METHODS = (
    *MASKED_METHODS, "lag_norms", "truncated_gradients", "tbptt_gradients", "jacobian_norms",
)  # fmt: skip


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared up front so that the suite knows what to check and what is
    not applicable, rather than finding out by calling it."""

    #: whether ``autodiff_gradients`` runs the framework's automatic differentiation
    autodiff: bool
    #: the device kinds it can be loaded on, lowercase, e.g. ("cpu",) or ("cpu", "cuda")
    devices: tuple[str, ...] = ("cpu",)
    #: the dtypes it computes in
    dtypes: tuple[str, ...] = ("float32", "float64")
    #: whether it has the gradient-flow methods of SPEC.md §10 (:class:`GradientFlowBackend`)
    gradient_flow: bool = False
    #: whether every method that takes x honours ``mask`` (SPEC.md §9)
    masks: bool = False
    # What a backend made of a plain function may lack (rnnspec.check); a checked capability
    # that a backend does not declare is "not checked" on its certificate, never failed.
    #: whether ``forward`` returns h, o and ŷ (a function of the loss and its gradients has none)
    forward: bool = True
    #: whether ``step_gradients`` gives one step's L(t) and ∇L(t) (form A)
    step_gradients: bool = True
    #: whether y may hold soft targets (T, B, K); False: class indices alone
    soft_targets: bool = True
    #: whether a given h(0) is taken; False: h(0) = 0 always, and the checks omit h0
    initial_state: bool = True
    #: whether each x(t) must be a one-hot vector (the code takes word indices): the checks' x is
    one_hot_inputs: bool = False
    #: the tensors of Grads the gradient methods return; the others are None
    gradients: tuple[str, ...] = ("U", "W", "b", "V", "c", "h0", "x")
    #: the nonlinearities φ it computes, among rnnspec.spec.NONLINEARITIES (SPEC.md §1)
    nonlinearities: tuple[str, ...] = ("tanh",)
    #: relu's φ′(0), the one value of its derivative that is a convention (SPEC.md §1.1)
    relu_prime_at_zero: float = 0.0
    #: whether it computes stacked and bidirectional networks, Model(layers=…, bidirectional=…)
    #: (SPEC.md §12), on every method but §10's
    stacks: bool = False
    #: whether it has the layer alone, ``layer_forward`` and ``layer_gradients`` (SPEC.md §13)
    layer: bool = False


@runtime_checkable
class Backend(Protocol):
    """What a backend provides. Arrays in and out are the framework's own, on ``device``.

    Every method validates its input with :func:`rnnspec.spec.validate` (raising
    :class:`rnnspec.spec.SpecError`) and never modifies its arguments. ``y`` holds integer class
    indices of shape (T, B) or non-negative soft targets of shape (T, B, K) in the dtype of ``x``.
    ``h0=None`` means h(0) = 0; ``mask=None`` means every step of every sequence (SPEC.md §9);
    ``model=None`` means ``Model()``, h(t) = tanh(a(t)) (SPEC.md §1).
    Losses are scalars: the sum over time steps and batch.

    A backend whose ``capabilities.autodiff`` is true also has ``autodiff_gradients``
    (:class:`AutodiffBackend`).
    """

    name: str  # the name rnnspec.backends.load knows it by, e.g. "numpy"
    device: str  # where its arrays live, e.g. "cpu", "cuda:0"; its kind is in capabilities.devices
    framework_version: str  # e.g. "numpy 2.4.0"
    protocol_version: str  # the PROTOCOL_VERSION it implements
    capabilities: Capabilities

    def asarray(self, array: np.ndarray, dtype: Any = None) -> Array:
        """A native array on ``device`` holding a copy of a NumPy array, optionally cast to ``dtype``."""
        ...

    def to_numpy(self, array: Array) -> np.ndarray:
        """A NumPy copy of a native array (scalars become 0-d arrays)."""
        ...

    def is_native(self, array: Any) -> bool:
        """Whether ``array`` is this backend's array type and lives on ``device``."""
        ...

    def forward(
        self,
        params: Params,
        x: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> Forward:
        """h, o and ŷ for t = 1..T."""
        ...

    def loss(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> Array:
        """L = Σ_t Σ_batch L(t), a scalar."""
        ...

    def gradients(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> tuple[Array, Grads]:
        """(L, ∇L) by the backward recursion, SPEC.md form B."""
        ...

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
        """(L(t), ∇L(t)) for one step 1 ≤ t ≤ T, SPEC.md form A."""
        ...

    def enforce_full_precision(self) -> str:
        """Turn off reduced-precision float32 matmuls (TF32 and the like) on ``device``, which would
        break the tolerance policy; return what was done, for the suite's report header."""
        ...


@runtime_checkable
class AutodiffBackend(Backend, Protocol):
    """A backend that declares ``capabilities.autodiff``."""

    def autodiff_gradients(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> tuple[Array, Grads]:
        """(L, ∇L) by the framework's automatic differentiation, on the same forward pass."""
        ...


@runtime_checkable
class GradientFlowBackend(Backend, Protocol):
    """A backend that declares ``capabilities.gradient_flow`` (SPEC.md §10)."""

    def lag_norms(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        max_lag: int | None = None,
        model: Model | None = None,
    ) -> LagNorms:
        """‖G_j‖_F of the lag-j part of ∇L for j = 0 … min(T, max_lag) − 1, per tensor."""
        ...

    def truncated_gradients(
        self,
        params: Params,
        x: Array,
        y: Array,
        k: int,
        h0: Array | None = None,
        model: Model | None = None,
    ) -> tuple[Array, Grads]:
        """(L, Σ_{j<k} G_j): every loss term backpropagated at most k − 1 steps."""
        ...

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
        """Windowed TBPTT(k1, k2): per-window losses (n,) and Grads with a leading window axis."""
        ...

    def jacobian_norms(
        self, params: Params, x: Array, h0: Array | None = None, model: Model | None = None
    ) -> JacobianNorms:
        """‖∂h(T)/∂h(T−j)‖₂ for j = 1 … T−1, per sequence and their mean, σ₁(W), the regime."""
        ...


@runtime_checkable
class LayerBackend(Backend, Protocol):
    """A backend that declares ``capabilities.layer`` (SPEC.md §13): the layer without a head.
    ``params.V`` and ``params.c`` are None; ``h_grad`` is (T, B, directions·H), ``hn_grad`` (B, H)
    or (cells, B, H) or None, in x's dtype; neither is modified."""

    def layer_forward(
        self,
        params: Params,
        x: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> LayerOutputs:
        """The top layer's states h (T, B, directions·H) and every cell's last state h_n."""
        ...

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
        """The gradients of ⟨h_grad, h⟩ + ⟨hn_grad, h_n⟩ for every U, W, b, h0 and x (13.1)."""
        ...


#: the gradients every backend returns; ∇h(0) and ∇x may be left out (capabilities.gradients)
PARAMETER_GRADIENTS = ("U", "W", "b", "V", "c")

#: the methods capabilities.layer promises (SPEC.md §13)
LAYER_METHODS = ("layer_forward", "layer_gradients")

#: the methods capabilities.gradient_flow promises
GRADIENT_FLOW_METHODS = ("lag_norms", "truncated_gradients", "tbptt_gradients", "jacobian_norms")


def protocol_problems(backend: Any) -> list[str]:
    """What keeps ``backend`` from being a Backend of this protocol version, in words (empty if
    nothing does). The loader refuses such a backend with these; the suite checks them first."""
    version = getattr(backend, "protocol_version", None)
    if version != PROTOCOL_VERSION:
        upgrade = UPGRADES.get(str(version), "see SPEC.md §8 for the members of the protocol")
        return [
            f"declares protocol_version {version!r}; this rnnspec implements protocol "
            f"{PROTOCOL_VERSION!r}: {upgrade}"
        ]
    missing = [m for m in _members(Backend) if not hasattr(backend, m)]
    if missing:
        return [f"lacks {', '.join(missing)} of the rnnspec.spec.Backend protocol"]
    problems = []
    capabilities = backend.capabilities
    if not isinstance(capabilities, Capabilities):
        return [
            f"capabilities: expected rnnspec.spec.Capabilities, got {type(capabilities).__name__}"
        ]
    if capabilities.autodiff and not callable(getattr(backend, "autodiff_gradients", None)):
        problems.append("declares capabilities.autodiff but has no autodiff_gradients method")
    if getattr(capabilities, "layer", False):
        lacking = [m for m in LAYER_METHODS if not callable(getattr(backend, m, None))]
        if lacking:
            problems.append(f"declares capabilities.layer but has no {', '.join(lacking)}")
    if getattr(capabilities, "gradient_flow", False):
        lacking = [m for m in GRADIENT_FLOW_METHODS if not callable(getattr(backend, m, None))]
        if lacking:
            problems.append(f"declares capabilities.gradient_flow but has no {', '.join(lacking)}")
    kind = str(backend.device).partition(":")[0].lower()
    if kind not in capabilities.devices:
        problems.append(
            f"device {backend.device!r} is not of a kind in capabilities.devices "
            f"{capabilities.devices}"
        )
    if getattr(capabilities, "masks", False):
        for method in MASKED_METHODS:
            function = getattr(backend, method, None)
            if callable(function) and "mask" not in _parameters(function, "mask"):
                problems.append(f"declares capabilities.masks but {method} takes no mask")
    returned = tuple(getattr(capabilities, "gradients", Grads._fields))
    if not set(PARAMETER_GRADIENTS) <= set(returned) <= set(Grads._fields):
        problems.append(
            f"capabilities.gradients: expected {PARAMETER_GRADIENTS} and any of ('h0', 'x'), "
            f"got {returned}"
        )
    nonlinearities = tuple(getattr(capabilities, "nonlinearities", ("tanh",)))
    if not nonlinearities or not set(nonlinearities) <= set(NONLINEARITIES):
        problems.append(
            f"capabilities.nonlinearities: expected a non-empty subset of {NONLINEARITIES}, "
            f"got {nonlinearities}"
        )
    for method in MODEL_METHODS:
        function = getattr(backend, method, None)
        if callable(function) and "model" not in _parameters(function, "model"):
            problems.append(f"{method} takes no model (protocol 2.2: model=None last)")
    unknown = set(capabilities.dtypes) - {"float32", "float64"}
    if unknown or not capabilities.dtypes:
        problems.append(
            f"capabilities.dtypes: expected a non-empty subset of ('float32', 'float64'), "
            f"got {capabilities.dtypes}"
        )
    return problems


def _parameters(function, trusted: str) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: cannot tell, trust it
        return (trusted,)


def _members(protocol: type) -> list[str]:
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return sorted(names)
