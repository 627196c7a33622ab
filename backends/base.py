"""The public methods every built-in backend shares: validate, then hand native arrays to kernels.

A backend module subclasses :class:`ClosedFormBackend` and supplies the array conversions and four
kernels written with its framework's own operations (see backends/numpy.py, the plainest one):

- ``_one_hot(y, K)``: class indices (T, B) as float weights (T, B, K) in x's dtype;
- ``_only_step(y, t)``: weights zeroed outside step t (1-based);
- ``_forward(params, x, h0) -> (h, o, ŷ)`` and ``_loss(params, x, y, h0)``, y as weights;
- ``_gradients(params, x, y, h0) -> (loss, Grads)``: SPEC.md form B, y as weights;
- ``_autodiff_gradients(params, x, y, h0) -> (loss, Grads)``: the framework's autodiff.

Because e(t) = (Σ_k y_k(t)) ŷ(t) − y(t) and L(t) are linear in y(t), the gradient of L(t) alone is
form B run on targets that are zero outside step t: the recursion then starts at t with
δ_t(t) = D_t Vᵀ e(t) and applies δ_k(t) = D_k Wᵀ δ_{k+1}(t), which is form A's ordered product
evaluated right to left (SPEC.md §2.10).
"""

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from spec import PROTOCOL_VERSION, Dims, Forward, Grads, Params, validate
from spec.types import Array


class ClosedFormBackend(ABC):
    name: str
    device: str
    framework_version: str
    protocol_version = PROTOCOL_VERSION

    # --- supplied by each backend, in this order in every backend module ----------------------

    @abstractmethod
    def asarray(self, array: np.ndarray, dtype: Any = None) -> Array: ...

    @abstractmethod
    def to_numpy(self, array: Array) -> np.ndarray: ...

    @abstractmethod
    def is_native(self, array: Any) -> bool: ...

    @abstractmethod
    def _zeros_state(self, x: Array, H: int) -> Array: ...

    @abstractmethod
    def _one_hot(self, y: Array, K: int, dtype: str) -> Array: ...

    @abstractmethod
    def _only_step(self, y: Array, t: int) -> Array: ...

    @abstractmethod
    def _forward(self, params: Params, x: Array, h0: Array) -> tuple[Array, Array, Array]: ...

    @abstractmethod
    def _loss(self, params: Params, x: Array, y: Array, h0: Array) -> Array: ...

    @abstractmethod
    def _gradients(self, params: Params, x: Array, y: Array, h0: Array) -> tuple[Array, Grads]: ...

    @abstractmethod
    def _autodiff_gradients(
        self, params: Params, x: Array, y: Array, h0: Array
    ) -> tuple[Array, Grads]: ...

    # --- the Backend protocol -------------------------------------------------------------------

    def forward(self, params: Params, x: Array, h0: Array | None = None) -> Forward:
        dims = self._validate(params, x, None, h0)
        return Forward(*self._forward(params, x, self._initial_state(x, h0, dims)))

    def loss(self, params: Params, x: Array, y: Array, h0: Array | None = None) -> Array:
        dims = self._validate(params, x, y, h0)
        return self._loss(params, x, self._weights(y, dims), self._initial_state(x, h0, dims))

    def gradients(
        self, params: Params, x: Array, y: Array, h0: Array | None = None
    ) -> tuple[Array, Grads]:
        dims = self._validate(params, x, y, h0)
        return self._gradients(params, x, self._weights(y, dims), self._initial_state(x, h0, dims))

    def step_gradients(
        self, params: Params, x: Array, y: Array, t: int, h0: Array | None = None
    ) -> tuple[Array, Grads]:
        dims = self._validate(params, x, y, h0, t)
        weights = self._only_step(self._weights(y, dims), int(t))
        return self._gradients(params, x, weights, self._initial_state(x, h0, dims))

    def autodiff_gradients(
        self, params: Params, x: Array, y: Array, h0: Array | None = None
    ) -> tuple[Array, Grads]:
        dims = self._validate(params, x, y, h0)
        return self._autodiff_gradients(
            params, x, self._weights(y, dims), self._initial_state(x, h0, dims)
        )

    def enforce_full_precision(self) -> str:
        """Turn off reduced-precision float32 matmuls (TF32 and the like); say what was done.

        The conformance suite calls this before checking a GPU, where frameworks default to TF32
        (u ≈ 4.9e-4) and the tolerance policy's float32 bound would not hold.
        """
        return "full float32 precision is this backend's only mode"

    # --- shared plumbing ------------------------------------------------------------------------

    def _validate(self, params, x, y, h0, t=None) -> Dims:
        return validate(params, x, y, h0, t, to_numpy=self.to_numpy, is_native=self.is_native)

    def _initial_state(self, x: Array, h0: Array | None, dims: Dims) -> Array:
        return self._zeros_state(x, dims.H) if h0 is None else h0

    def _weights(self, y: Array, dims: Dims) -> Array:
        return y if dims.soft_targets else self._one_hot(y, dims.K, dims.dtype)

    def __repr__(self) -> str:
        return f"<rnnspec {self.name} backend on {self.device}, {self.framework_version}>"
