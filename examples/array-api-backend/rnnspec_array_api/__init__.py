"""An rnnspec backend over the Python array API standard, with ``array_api_strict`` as its namespace.

It implements the ``rnnspec.spec.Backend`` protocol, version 2.1 (masks included), directly (SPEC.md §8), and
imports nothing from rnnspec but ``rnnspec.spec``. It uses nothing but the functions and array
methods the standard defines, through ``xp``. array_api_strict rejects everything else, so the
kernels below would run unchanged on any conforming namespace.
"""

from typing import Any

import array_api_strict as xp
import numpy as np

from rnnspec.spec import (
    PROTOCOL_VERSION,
    Array,
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


def _rows(a: Array) -> Array:
    """(T, B, n) -> (T·B, n): every step of every sequence as one row."""
    return xp.reshape(a, (a.shape[0] * a.shape[1], a.shape[2]))


def _hidden_states(p: Params, x: Array, h0: Array, mask: Array | None) -> Array:
    """(1.1)–(1.2): U x(t) + b for all T·B rows in one product; only the recurrence loops over t.
    With a mask (9.1): a masked step carries h(t−1) over."""
    T, B, _ = x.shape
    inputs = xp.reshape(_rows(x) @ p.U.mT + p.b, (T, B, -1))
    h, h_prev = [], h0
    for t in range(T):  # rows: H_t = tanh(X_t Uᵀ + b + H_{t-1} Wᵀ)
        h_t = xp.tanh(inputs[t, ...] + h_prev @ p.W.mT)
        h_prev = h_t if mask is None else xp.where(mask[t, :, None], h_t, h_prev)
        h.append(h_prev)
    return xp.stack(h)


def _outputs(p: Params, h: Array) -> tuple[Array, Array]:
    """(1.3)–(1.4): o(t) = c + V h(t) for all T·B rows in one product, and the shifted log ŷ(t)."""
    T, B, _ = h.shape
    o = xp.reshape(_rows(h) @ p.V.mT + p.c, (T, B, -1))
    shifted = o - xp.max(o, axis=-1, keepdims=True)
    return o, shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


def _form_b(p: Params, x: Array, y: Array, h0: Array, mask: Array | None) -> tuple[Array, Grads]:
    """SPEC.md §3 in its batched row form, for target weights y of shape (T, B, K); with a mask,
    §9's (9.8)–(9.10), the targets already zero at masked steps."""
    T, B, D = x.shape
    h = _hidden_states(p, x, h0, mask)
    _, log_yhat = _outputs(p, h)
    loss = -xp.sum(y * log_yhat)  # (1.5)–(1.6)
    e = xp.sum(y, axis=-1, keepdims=True) * xp.exp(log_yhat) - y  # (2.1) e = (Σ_k y_k) ŷ − y
    from_output = xp.reshape(_rows(e) @ p.V, h.shape)  # Vᵀ e(t) for every t, as rows
    deltas, carried = [], xp.zeros_like(h0)  # Wᵀ δ(t+1) + (1 − m(t+1)) ∇_{h(t+1)} L = 0 at T
    for t in reversed(range(T)):  # (3.1)–(3.2) δ(t) = D_t (Vᵀ e(t) + Wᵀ δ(t+1)), as rows
        grad_h = from_output[t, ...] + carried  # (3.1), (9.8) ∇_{h(t)} L
        delta = grad_h * (1 - h[t, ...] * h[t, ...])  # (3.2) δ(t) = D_t ∇_{h(t)} L
        passed_on = xp.zeros_like(grad_h)
        if mask is not None:  # (9.9) δ(t) = m(t) D_t ∇_{h(t)} L; the rest passes on unchanged
            kept = mask[t, :, None]
            delta, passed_on = xp.where(kept, delta, passed_on), xp.where(kept, passed_on, grad_h)
        carried = delta @ p.W + passed_on  # Wᵀ δ(t) + (1 − m(t)) ∇_{h(t)} L, as rows
        deltas.append(delta)
    delta = xp.stack(deltas[::-1])
    h_prev = xp.concat([xp.expand_dims(h0, axis=0), h[:-1, ...]])  # h(0..T−1)
    return loss, Grads(
        U=_rows(delta).mT @ _rows(x),  # (3.3) Σ_t δ(t) x(t)ᵀ
        W=_rows(delta).mT @ _rows(h_prev),  # (3.3) Σ_t δ(t) h(t−1)ᵀ
        b=xp.sum(_rows(delta), axis=0),  # (3.3) Σ_t δ(t)
        V=_rows(e).mT @ _rows(h),  # (3.4) Σ_t e(t) h(t)ᵀ
        c=xp.sum(_rows(e), axis=0),  # (3.4) Σ_t e(t)
        h0=carried,  # (3.5) Wᵀ δ(1); (9.10) + (1 − m(1)) ∇_{h(1)} L with a mask
        x=xp.reshape(_rows(delta) @ p.U, (T, B, D)),  # (3.5) Uᵀ δ(t)
    )


class ArrayApiBackend:
    """The ``rnnspec.spec.Backend`` protocol on array_api_strict (CPU), closed form only."""

    name = "array_api_strict"
    framework_version = f"array_api_strict {xp.__version__}"
    protocol_version = PROTOCOL_VERSION
    # The standard has no automatic differentiation: autodiff=False, and so no autodiff_gradients
    # method; the suite marks its autodiff checks n/a.
    capabilities = Capabilities(autodiff=False, devices=("cpu",), masks=True)

    def __init__(self, device: str | None = None):
        # refuse at load time; never fall back to another device (SPEC.md §7)
        if device is not None and str(device).lower() not in ("cpu", "cpu:0"):
            raise BackendError(f"the {self.name} backend runs on 'cpu' only, got device={device!r}")
        self.device = "cpu"
        self._device = xp.asarray(0.0).device  # the namespace's default (CPU) device

    def __repr__(self) -> str:  # failure messages print the backend with this
        return f"<rnnspec {self.name} backend on {self.device}, {self.framework_version}>"

    # --- arrays in and out ----------------------------------------------------------------------

    def asarray(self, array: np.ndarray, dtype: Any = None) -> Array:
        if dtype is not None and not isinstance(dtype, type(xp.float64)):
            dtype = getattr(xp, np.dtype(dtype).name)  # "float32", np.float32 -> xp.float32
        return xp.asarray(array, dtype=dtype, device=self._device, copy=True)

    def to_numpy(self, array: Array) -> np.ndarray:
        return np.array(np.from_dlpack(array))  # DLPack: the standard's interchange; then a copy

    def is_native(self, array: Any) -> bool:
        namespace = getattr(array, "__array_namespace__", None)
        return namespace is not None and namespace() is xp and array.device == self._device

    def enforce_full_precision(self) -> str:
        return "array_api_strict computes in full precision on the CPU; nothing to change"

    # --- the model ------------------------------------------------------------------------------

    def forward(
        self,
        params: Params,
        x: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> Forward:
        dims = self._validate(params, x, None, h0, mask=mask, model=model)
        h = _hidden_states(params, x, self._state(x, h0, dims.H), mask)
        o, log_yhat = _outputs(params, h)
        return Forward(h=h, o=o, yhat=xp.exp(log_yhat))

    def loss(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> Array:
        dims = self._validate(params, x, y, h0, mask=mask, model=model)
        h = _hidden_states(params, x, self._state(x, h0, dims.H), mask)
        return -xp.sum(self._weights(x, y, dims, mask) * _outputs(params, h)[1])

    def gradients(
        self,
        params: Params,
        x: Array,
        y: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        model: Model | None = None,
    ) -> tuple[Array, Grads]:
        dims = self._validate(params, x, y, h0, mask=mask, model=model)
        weights = self._weights(x, y, dims, mask)
        return _form_b(params, x, weights, self._state(x, h0, dims.H), mask)

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
        """Form A as form B on targets zeroed outside step t (SPEC.md §2.10): L(t) and e(t) are
        linear in y(t), and y(s) = 0 makes e(s) = 0 exactly, so the recursion starts at t."""
        dims = self._validate(params, x, y, h0, t, mask=mask, model=model)
        at_t = xp.arange(dims.T, device=x.device) == int(t) - 1
        only_t = xp.reshape(xp.astype(at_t, x.dtype), (dims.T, 1, 1))
        weights = self._weights(x, y, dims, mask) * only_t
        return _form_b(params, x, weights, self._state(x, h0, dims.H), mask)

    # --- helpers --------------------------------------------------------------------------------

    def _validate(self, params, x, y, h0, t=None, mask=None, model=None) -> Dims:
        """The shared checks (SPEC.md §7): the same SpecError, word for word, as every backend;
        tanh alone (capabilities.nonlinearities' default)."""
        dims = validate(
            params, x, y, h0, t,
            to_numpy=self.to_numpy, is_native=self.is_native, all_finite=self._all_finite,
            mask=mask,
        )  # fmt: skip
        nonlinearity = validate_model(model).nonlinearity
        if nonlinearity != "tanh":
            raise SpecError(
                f"model.nonlinearity: expected 'tanh' (what the {self.name} backend declares in "
                f"capabilities.nonlinearities), got {nonlinearity!r}"
            )
        return dims

    def _all_finite(self, array: Array) -> bool:
        """No NaN or infinity in ``array``: one reduction, one scalar read back."""
        return bool(xp.all(xp.isfinite(array)))

    def _state(self, x: Array, h0: Array | None, H: int) -> Array:
        """h(0): zeros when omitted."""
        return xp.zeros((x.shape[1], H), dtype=x.dtype, device=x.device) if h0 is None else h0

    def _weights(self, x: Array, y: Array, dims: Dims, mask: Array | None) -> Array:
        """Targets as (T, B, K) weights in x's dtype: soft targets as given, class k as one-hot e_k;
        zero at masked steps, whatever y holds there (SPEC.md §9: −100, K, NaN are not read)."""
        if dims.soft_targets:
            weights = y
        else:
            classes = xp.arange(dims.K, dtype=y.dtype, device=y.device)
            weights = xp.astype(xp.expand_dims(y, axis=-1) == classes, x.dtype)
        if mask is None:
            return weights
        return xp.where(mask[:, :, None], weights, xp.zeros_like(weights))
