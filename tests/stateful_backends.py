"""Deliberately stateful backends: each is the NumPy backend with one bug of the kind fast backends
have, state kept between calls, and the conformance suite's "state" checks must reject every one
(tests/test_suite_rejects_stateful_backends.py). Each computes every single call correctly: only
what happens across calls (or between threads) is wrong."""

import time

import numpy as np

from rnnspec.backends import base
from rnnspec.backends.numpy import (
    NumpyBackend,
    _hidden_states,
    _log_softmax_outputs,
    _loss_and_output_errors,
)
from rnnspec.spec import Grads, Params
from tests.wrong_backends import TanhOnlyBackend


class _ReusedBuffer(TanhOnlyBackend):
    """Copies every result into an output buffer it keeps per kernel and returns the buffer itself:
    the next call with the same shapes overwrites the arrays the caller holds."""

    def __init__(self, device=None):
        super().__init__(device)
        self._buffers: dict = {}

    def _into(self, kernel: str, arrays) -> list[np.ndarray]:
        out = []
        for i, array in enumerate(arrays):
            array = np.asarray(array)
            buffer = self._buffers.get((kernel, i))
            if buffer is None or buffer.shape != array.shape or buffer.dtype != array.dtype:
                buffer = self._buffers[(kernel, i)] = np.empty_like(array)
            buffer[...] = array
            out.append(buffer)
        return out

    def _forward(self, p, x, h0):
        return tuple(self._into("forward", super()._forward(p, x, h0)))

    def _loss(self, p, x, y, h0):
        return self._into("loss", [super()._loss(p, x, y, h0)])[0]

    def _gradients(self, p, x, y, h0):
        loss, grads = super()._gradients(p, x, y, h0)
        loss, *grads = self._into("gradients", [loss, *grads])
        return loss, Grads(*grads)


class _FlowReusedBuffer(TanhOnlyBackend):
    """_ReusedBuffer's bug in one gradient-flow method alone (SPEC.md §10): windowed TBPTT's
    results are buffers that its next call with the same shapes overwrites."""

    def __init__(self, device=None):
        super().__init__(device)
        self._buffers: dict = {}

    _into = _ReusedBuffer._into

    def tbptt_gradients(self, params, x, y, k1, k2, h0=None, model=None):
        losses, grads = super().tbptt_gradients(params, x, y, k1, k2, h0, model)
        losses, *grads = self._into("tbptt_gradients", [losses, *grads])
        return losses, Grads(*grads)


class _ShapeCache(TanhOnlyBackend):
    """Memoizes each method on the shapes and dtype of its arguments (and t), not their values:
    every later call with the same shapes gets the first call's result."""

    def __init__(self, device=None):
        super().__init__(device)
        self._cache: dict = {}

    def _cached(self, method: str, *args, **kwargs):
        arrays = [a for arg in (*args, *kwargs.values()) for a in _leaves(arg)]
        key = (method, *((np.shape(a), np.asarray(a).dtype.name) for a in arrays))
        key += tuple(a for a in args if isinstance(a, int))  # step_gradients' t
        if key not in self._cache:
            self._cache[key] = getattr(NumpyBackend, method)(self, *args, **kwargs)
        return self._cache[key]

    def forward(self, params, x, h0=None, mask=None, model=None):
        return self._cached("forward", params, x, h0=h0, mask=mask, model=model)

    def loss(self, params, x, y, h0=None, mask=None, model=None):
        return self._cached("loss", params, x, y, h0=h0, mask=mask, model=model)

    def gradients(self, params, x, y, h0=None, mask=None, model=None):
        return self._cached("gradients", params, x, y, h0=h0, mask=mask, model=model)

    def step_gradients(self, params, x, y, t, h0=None, mask=None, model=None):
        return self._cached("step_gradients", params, x, y, t, h0=h0, mask=mask, model=model)


def _leaves(arg) -> list:
    if isinstance(arg, Params):
        return list(arg)
    return [] if arg is None or isinstance(arg, int) else [arg]


class _DtypeBlindCache(TanhOnlyBackend):
    """Keeps a "compiled kernel" per kernel and shapes, keyed without the dtype: the first call with
    some shapes fixes the dtype the kernel computes in, and a later call with the same shapes in the
    other dtype runs that kernel and casts the result (float64 calls after float32 ones get float32
    precision)."""

    def __init__(self, device=None):
        super().__init__(device)
        self._kernels: dict = {}

    def _compiled_dtype(self, kernel: str, p: Params, x) -> np.dtype:
        key = (kernel, x.shape, *(a.shape for a in p))
        return self._kernels.setdefault(key, x.dtype)

    def _run(self, kernel: str, p, x, *rest):
        dtype = self._compiled_dtype(kernel, p, x)
        p = Params(*(a.astype(dtype) for a in p))
        out = getattr(NumpyBackend, kernel)(
            self, p, x.astype(dtype), *(a.astype(dtype) for a in rest)
        )
        return _cast(out, x.dtype)

    def _forward(self, p, x, h0):
        return self._run("_forward", p, x, h0)

    def _loss(self, p, x, y, h0):
        return self._run("_loss", p, x, y, h0)

    def _gradients(self, p, x, y, h0):
        return self._run("_gradients", p, x, y, h0)


def _cast(out, dtype):
    if isinstance(out, tuple):  # (h, o, ŷ), (loss, Grads) or Grads
        cast = [_cast(a, dtype) for a in out]
        return type(out)(*cast) if hasattr(out, "_fields") else tuple(cast)
    return np.asarray(out).astype(dtype)[()]


class _MaskBlindCache(TanhOnlyBackend):
    """Keeps a "compiled kernel" per kernel, shapes and dtype, keyed without whether a mask is
    given: the first call with some shapes fixes the variant, and a masked call after an unmasked
    one with the same shapes runs without its mask (its state runs on through the masked steps)."""

    def __init__(self, device=None):
        super().__init__(device)
        self._kernels: dict = {}

    def _variant(self, kernel: str, x, mask) -> dict:
        masked = self._kernels.setdefault((kernel, x.shape, x.dtype), mask is not None)
        if not masked:
            return {}
        return {"mask": np.ones(x.shape[:2], dtype=bool) if mask is None else mask}

    def _forward(self, p, x, h0, mask=None):
        return super()._forward(p, x, h0, **self._variant("forward", x, mask))

    def _loss(self, p, x, y, h0, mask=None):
        return super()._loss(p, x, y, h0, **self._variant("loss", x, mask))

    def _gradients(self, p, x, y, h0, mask=None):
        return super()._gradients(p, x, y, h0, **self._variant("gradients", x, mask))


class _SharedScratch(TanhOnlyBackend):
    """Keeps the hidden states h of the call in progress on the instance (to reuse the allocation)
    and reads them back after a step that releases the GIL (here ``time.sleep(0)``; in real code a
    BLAS call or I/O): correct one call at a time, wrong when two threads call at once."""

    def _hidden(self, p, x, h0):
        self._scratch = _hidden_states(p, x, h0)
        time.sleep(0)
        return self._scratch

    def _forward(self, p, x, h0):
        h = self._hidden(p, x, h0)
        o, log_yhat = _log_softmax_outputs(p, h)
        return h, o, np.exp(log_yhat)

    def _loss(self, p, x, y, h0):
        _, log_yhat = _log_softmax_outputs(p, self._hidden(p, x, h0))
        return -np.vdot(y, log_yhat)

    def _gradients(self, p, x, y, h0):  # NumpyBackend._gradients with h from the scratch space
        T, B, D = x.shape
        h = self._hidden(p, x, h0)
        loss, e_rows = _loss_and_output_errors(p, h, y)
        H = h.shape[-1]
        delta = np.matmul(e_rows, p.V).reshape(T, B, H)
        for t in reversed(range(T)):
            if t + 1 < T:
                delta[t] += delta[t + 1] @ p.W
            delta[t] *= 1 - h[t] ** 2
        rows = (x.reshape(T * B, D), h.reshape(T * B, H), e_rows, delta.reshape(T * B, H))
        return loss, base.grads_from_deltas(base.ARRAY_METHOD_OPS, p, x, h0, B, rows)


class _GlobalState(TanhOnlyBackend):
    """Silences NumPy's floating-point warnings with ``np.seterr(all="ignore")`` in every gradient
    call and never restores them: the user's error state is lost."""

    def _gradients(self, p, x, y, h0):
        np.seterr(all="ignore")
        return super()._gradients(p, x, y, h0)


def _mlx_global_state(device=None):
    """The MLX backend drawing from MLX's global random generator in every gradient call (a
    dropout mask it then ignores, say): the user's random stream moves on. MLX is imported here,
    when the backend is loaded, as the loader does."""
    import mlx.core as mx

    from rnnspec.backends.mlx import MlxBackend

    class _MlxGlobalState(MlxBackend):
        def _gradients(self, p, x, y, h0):
            mx.eval(mx.random.uniform(shape=(1,)))
            return super()._gradients(p, x, y, h0)

    return _MlxGlobalState(device)


def _factory(cls, name: str):
    def factory(device=None):
        backend = cls(device)
        backend.name = f"tests.stateful_backends:{name}"
        return backend

    factory.__name__ = name
    return factory


reused_buffer = _factory(_ReusedBuffer, "reused_buffer")
flow_reused_buffer = _factory(_FlowReusedBuffer, "flow_reused_buffer")
shape_cache = _factory(_ShapeCache, "shape_cache")
dtype_blind_cache = _factory(_DtypeBlindCache, "dtype_blind_cache")
mask_blind_cache = _factory(_MaskBlindCache, "mask_blind_cache")
shared_scratch = _factory(_SharedScratch, "shared_scratch")
global_state = _factory(_GlobalState, "global_state")
mlx_global_state = _factory(_mlx_global_state, "mlx_global_state")
