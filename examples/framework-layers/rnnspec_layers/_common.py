"""What the wrappers share: the protocol's public methods (validate first, targets as weights,
zero at masked steps, h(0) = 0 when omitted, form A as form B on targets zeroed outside step t),
around a few hooks that each wrapper writes with its framework's own layers and autodiff, and the
index arithmetic that runs a layer without masks on masked sequences (``unmasked_first``).

Imports nothing of rnnspec but ``rnnspec.spec``, and no framework.
"""

import os
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from rnnspec.spec import (
    PROTOCOL_VERSION,
    Array,
    BackendError,
    Capabilities,
    Dims,
    Forward,
    Grads,
    LayerOutputs,
    Model,
    Params,
    SpecError,
    validate,
    validate_cotangents,
    validate_declared,
    validate_model,
)

__all__ = ["LayerBackend", "unmasked_first", "user_state_kept"]


def unmasked_first(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How a layer that knows no masks runs the masked model of SPEC.md §9: ``(order, count)``,
    both (T, B) int32.

    A masked step carries h over unchanged and has no loss, so sequence n's states are those of
    its unmasked steps alone, run as one shorter sequence from the same h(0): h(t) is the state
    after its first count(t) = Σ_{s ≤ t} m(s) unmasked steps, h(0) where count(t) = 0.
    ``order[:, n]`` lists sequence n's unmasked steps first, in time order, then its masked ones:
    the layer runs on x gathered in that order, and h(t) is row count(t) of h(0) stacked on the
    layer's outputs. The layer is causal, so its first count(T) outputs never see the masked steps
    sorted after them, which it runs too and nothing reads: their x gets exactly zero gradient.
    """
    order = np.argsort(~mask, axis=0, kind="stable")  # stable: unmasked steps keep time order
    return order.astype(np.int32), np.cumsum(mask, axis=0, dtype=np.int32)


@contextmanager
def user_state_kept() -> Iterator[None]:
    """The environment and Python's and NumPy's global random states as they were, after importing
    frameworks in the block. The user owns them, and imports change them: jax 0.10 sets
    TPU_SKIP_MDS_QUERY and calls numpy.random.rand(5) (jax/_src/clusters/k8s_cluster.py); rich.style
    calls random.getrandbits(24); Keras sets TF_FORCE_GPU_ALLOW_GROWTH on every backend but
    TensorFlow and imports both of them; tensorflow 2.21 sets TF2_BEHAVIOR and four more variables
    and imports Keras; flax imports jax and rich.style. Without this, the first load of a backend
    would change them (README.md, finding 3)."""
    environment = dict(os.environ)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        for key in set(os.environ) - set(environment):
            del os.environ[key]
        for key, value in environment.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        random.setstate(python_state)
        np.random.set_state(numpy_state)


class LayerBackend(ABC):
    """The ``rnnspec.spec.Backend`` protocol (2.2) over a framework's own RNN layer.

    A subclass supplies ``_arrays``, its framework's conversions (``asarray``, ``to_numpy``,
    ``is_native``, ``all_finite``, ``one_hot``, ``zeros``, ``zero_masked``), and three computations
    through the framework's layers:
    ``_forward``, ``_loss`` and ``_value_and_grad`` (the framework's autodiff through the layers),
    each given targets as (T, B, K) weights (zero at masked steps), an explicit h(0), the mask
    (None without one) and φ's name, which the layer takes as its own option. Both ``gradients``
    and ``autodiff_gradients`` are ``_value_and_grad``: the layer has no closed form of its own.
    """

    name: str
    framework_version: str
    protocol_version = PROTOCOL_VERSION
    capabilities: Capabilities

    def __init__(self, device: str | None = None):
        # refuse at load time; never fall back to another device (SPEC.md §7)
        if device is not None and str(device).lower() not in ("cpu", "cpu:0"):
            raise BackendError(f"the {self.name} backend runs on 'cpu' only, got device={device!r}")
        self.device = "cpu"

    def __repr__(self) -> str:  # failure messages print the backend with this
        return f"<rnnspec {self.name} backend on {self.device}, {self.framework_version}>"

    # --- the protocol's methods -----------------------------------------------------------------

    def forward(
        self,
        params: Params,
        x: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> Forward:
        dims, phi = self._validate(params, x, None, h0, mask=mask, model=model)
        return self._forward(params, x, self._state(x, h0, dims, model), mask, phi,
                             **self._stack(model))  # fmt: skip

    def loss(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> Array:
        dims, phi = self._validate(params, x, y, h0, mask=mask, model=model)
        weights = self._weights(y, dims, mask)
        return self._loss(params, x, weights, self._state(x, h0, dims, model), mask, phi,
                          **self._stack(model))  # fmt: skip

    def gradients(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> tuple[Array, Grads]:
        """(L, ∇L) by the framework's autodiff through its layers: reverse mode on the loss is the
        backward recursion of SPEC.md §3 (form B), done by the framework, not written here."""
        return self.autodiff_gradients(params, x, y, h0, mask, model)

    def autodiff_gradients(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> tuple[Array, Grads]:
        dims, phi = self._validate(params, x, y, h0, mask=mask, model=model)
        weights = self._weights(y, dims, mask)
        state = self._state(x, h0, dims, model)
        return self._value_and_grad(params, x, weights, state, mask, phi, **self._stack(model))

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
        """(L(t), ∇L(t)): the same autodiff on targets zeroed outside step t (SPEC.md §2.10).
        L(t) and e(t) are linear in y(t), and y(s) = 0 makes e(s) = 0 exactly."""
        dims, phi = self._validate(params, x, y, h0, t, mask=mask, model=model)
        only_t = np.zeros((dims.T, 1, 1), dtype=dims.dtype)
        only_t[int(t) - 1] = 1
        weights = self._weights(y, dims, mask) * self.asarray(only_t)
        state = self._state(x, h0, dims, model)
        return self._value_and_grad(params, x, weights, state, mask, phi, **self._stack(model))

    def layer_forward(
        self,
        params: Params,
        x: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> LayerOutputs:
        """The layer alone (SPEC.md §13), where the wrapper declares ``capabilities.layer``."""
        dims, phi = self._validate(params, x, None, h0, mask=mask, model=model, head=False)
        state = self._state(x, h0, dims, model)
        return self._layer_forward(params, x, state, mask, phi, validate_model(model))

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
        """The layer's vector–Jacobian product (13.1) by the framework's autodiff."""
        dims, phi = self._validate(params, x, None, h0, mask=mask, model=model, head=False)
        model = validate_model(model)
        validate_cotangents(h_grad, hn_grad, dims, model, self.is_native, None, self.to_numpy)
        state = self._state(x, h0, dims, model)
        return self._layer_vjp(params, x, h_grad, hn_grad, state, mask, phi, model)

    # --- shared helpers -------------------------------------------------------------------------

    def _validate(
        self, params, x, y, h0, t=None, mask=None, model=None, head=True
    ) -> tuple[Dims, str]:
        """The shared checks (SPEC.md §7), the same SpecError, word for word, as every backend's,
        and the model's φ, one of those the layer declares (``capabilities.nonlinearities``); a
        stacked model (§12) or the layer alone (§13) only where the wrapper declares them."""
        model = validate_declared(model, self.capabilities, self.name, head)
        dims = validate(
            params, x, y, h0, t,
            to_numpy=self.to_numpy, is_native=self.is_native, all_finite=self._all_finite,
            mask=mask, model=model, head=head,
        )  # fmt: skip
        phi = model.nonlinearity
        declared = self.capabilities.nonlinearities
        if phi not in declared:
            raise SpecError(
                f"model.nonlinearity: expected one of {declared} (what the {self.name} backend "
                f"declares in capabilities.nonlinearities), got {phi!r}"
            )
        return dims, phi

    def _state(self, x: Array, h0: Array | None, dims: Dims, model: Model | None = None) -> Array:
        """h(0), zeros when omitted: always passed to the layer, since ∇h0 is part of the result;
        (cells, B, H) for a stack (SPEC.md §12)."""
        if h0 is not None:
            return h0
        model = validate_model(model)
        if model.stacked:
            return self.asarray(np.zeros((model.cells, dims.B, dims.H), dims.dtype))
        return self._zeros(x, dims.B, dims.H)

    @staticmethod
    def _stack(model: Model | None) -> dict[str, Model]:
        """The hooks' keyword for a stacked model; none otherwise, so that a wrapper that declares
        no stacks keeps its hooks' signatures."""
        model = validate_model(model)
        return {"model": model} if model.stacked else {}

    def _weights(self, y: Array, dims: Dims, mask: Array | None) -> Array:
        """Targets as (T, B, K) weights in x's dtype: soft targets as given, class k as e_k; zero
        at masked steps (SPEC.md §9), whose targets are never read: a class index there may be
        anything (−100, K), and is zeroed before the one-hot."""
        if mask is None:
            return y if dims.soft_targets else self._one_hot(y, dims.K, dims.dtype)
        if not dims.soft_targets:
            y = self._one_hot(self._arrays.zero_masked(y, mask), dims.K, dims.dtype)
        return self._arrays.zero_masked(y, mask)

    # --- the framework's part -------------------------------------------------------------------

    # conversions: the framework's own arrays, through the subclass's ``_arrays``
    _arrays: Any

    def asarray(self, array: np.ndarray, dtype: Any = None) -> Array:
        return self._arrays.asarray(array, dtype)

    def to_numpy(self, array: Array) -> np.ndarray:
        return self._arrays.to_numpy(array)

    def is_native(self, array: Any) -> bool:
        return self._arrays.is_native(array)

    def enforce_full_precision(self) -> str:
        return self._arrays.full_precision()

    def _all_finite(self, array: Array) -> bool:
        return self._arrays.all_finite(array)

    def _zeros(self, x: Array, B: int, H: int) -> Array:
        """(B, H) zeros in x's dtype."""
        return self._arrays.zeros(x, B, H)

    def _one_hot(self, y: Array, K: int, dtype: str) -> Array:
        """Class indices (T, B) as one-hot weights (T, B, K) in ``dtype``."""
        return self._arrays.one_hot(y, K, dtype)

    @abstractmethod
    def _forward(self, p: Params, x: Array, h0: Array, mask: Array | None, phi: str) -> Forward:
        """h, o, ŷ at every step, h(t) = φ(a(t)) by the layer configured with ``phi`` (the
        framework's own "tanh" or "relu"); with a mask, h(t) carried over masked steps (9.1)."""

    @abstractmethod
    def _loss(
        self, p: Params, x: Array, y: Array, h0: Array, mask: Array | None, phi: str
    ) -> Array:
        """L = −Σ y · log_softmax(o) (1.5)–(1.6), ``y`` as (T, B, K) weights."""

    @abstractmethod
    def _value_and_grad(
        self, p: Params, x: Array, y: Array, h0: Array, mask: Array | None, phi: str
    ) -> tuple[Array, Grads]: ...

    # the layer alone (SPEC.md §13): supplied by a wrapper that declares capabilities.layer

    def _layer_forward(self, p, x, h0, mask, phi: str, model: Model) -> LayerOutputs:
        raise NotImplementedError(f"the {self.name} backend declares no layer_forward")

    def _layer_vjp(self, p, x, h_grad, hn_grad, h0, mask, phi: str, model: Model) -> Grads:
        raise NotImplementedError(f"the {self.name} backend declares no layer_gradients")
