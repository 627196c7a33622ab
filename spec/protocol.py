"""The contract between a backend and the conformance suite."""

from typing import Any, Protocol, runtime_checkable

import numpy as np

from spec.types import Array, Forward, Grads, Params

#: Version of the Backend protocol; a conformance report names the protocol and suite versions passed.
PROTOCOL_VERSION = "1.0"


@runtime_checkable
class Backend(Protocol):
    """What a backend provides. Arrays in and out are the framework's own, on ``device``.

    Every method validates its input with :func:`spec.validation.validate` (raising
    :class:`spec.SpecError`) and never modifies its arguments. ``y`` holds integer class indices of
    shape (T, B) or non-negative soft targets of shape (T, B, K) in the dtype of ``x``. ``h0=None``
    means h(0) = 0. Losses are scalars: the sum over time steps and batch.
    """

    name: str  # the name backends.load knows it by, e.g. "numpy"
    device: str  # where its arrays live, e.g. "cpu", "cuda:0"
    framework_version: str  # e.g. numpy.__version__
    protocol_version: str  # the PROTOCOL_VERSION it implements

    def asarray(self, array: np.ndarray, dtype: Any = None) -> Array:
        """A native array on ``device`` holding a copy of a NumPy array, optionally cast to ``dtype``."""
        ...

    def to_numpy(self, array: Array) -> np.ndarray:
        """A NumPy copy of a native array (scalars become 0-d arrays)."""
        ...

    def is_native(self, array: Any) -> bool:
        """Whether ``array`` is this backend's array type and lives on ``device``."""
        ...

    def forward(self, params: Params, x: Array, h0: Array | None = None) -> Forward:
        """h, o and ŷ for t = 1..T."""
        ...

    def loss(self, params: Params, x: Array, y: Array, h0: Array | None = None) -> Array:
        """L = Σ_t Σ_batch L(t), a scalar."""
        ...

    def gradients(
        self, params: Params, x: Array, y: Array, h0: Array | None = None
    ) -> tuple[Array, Grads]:
        """(L, ∇L) by the backward recursion, SPEC.md form B."""
        ...

    def step_gradients(
        self, params: Params, x: Array, y: Array, t: int, h0: Array | None = None
    ) -> tuple[Array, Grads]:
        """(L(t), ∇L(t)) for one step 1 ≤ t ≤ T, SPEC.md form A."""
        ...

    def enforce_full_precision(self) -> str:
        """Turn off reduced-precision float32 matmuls (TF32 and the like) on ``device``, which would
        break the tolerance policy; return what was done, for the suite's report header."""
        ...

    def autodiff_gradients(
        self, params: Params, x: Array, y: Array, h0: Array | None = None
    ) -> tuple[Array, Grads]:
        """(L, ∇L) by the framework's automatic differentiation; NotImplementedError where it has none."""
        ...
