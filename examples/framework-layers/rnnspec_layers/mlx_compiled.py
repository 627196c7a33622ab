"""``mx.compile`` of MLX's ``value_and_grad`` as a witness (``mlx_compile``): the model written as
an MLX user writes it (MLX has no scan: a Python loop over the steps, traced once per shape by
the compiler), the loss and its gradients by ``mx.value_and_grad``, the whole of it compiled; the
forward and the loss compiled too.

One compiled function per (φ, with or without a mask, computation), kept in a dict:
``mx.compile`` traces again for every new shape and dtype, and takes arrays only. Masks (SPEC.md
§9) as the spec writes them, in the step: h(t) = m(t) φ(a(t)) + (1 − m(t)) h(t−1).

The log-softmax is written with ``expm1`` in float64: MLX 0.32's ``exp`` is only float32-accurate
in float64 (relative error 5e-7 on the CPU), its ``expm1`` float64-accurate; ``mx.logsumexp`` and
``mx.softmax`` call ``exp``. What is witnessed here is the compiler, not that known gap.
"""

import threading

import mlx.core as mx

from rnnspec.spec import Capabilities, Forward, Grads, Params

from ._arrays import MlxArrays
from ._common import LayerBackend

ACTIVATIONS = {"tanh": mx.tanh, "relu": lambda a: mx.maximum(a, 0)}


def _exp(s):
    """exp(s), float64-accurate in float64 (see the module's docstring)."""
    return mx.expm1(s) + 1 if s.dtype == mx.float64 else mx.exp(s)


def _outputs(p: Params, x, h0, mask, phi: str):
    """h (T, B, H) and log ŷ (T, B, K): (1.1)–(1.4), one step at a time; masked steps carry h."""
    activation = ACTIVATIONS[phi]
    h, states = h0, []
    for t in range(x.shape[0]):
        h_t = activation(p.b + h @ p.W.T + x[t] @ p.U.T)
        h = h_t if mask is None else mx.where(mask[t][:, None], h_t, h)
        states.append(h)
    h = mx.stack(states)
    o = h @ p.V.T + p.c
    s = o - mx.stop_gradient(o.max(axis=-1, keepdims=True))
    return h, o, s - mx.log(_exp(s).sum(axis=-1, keepdims=True))


def _computations(phi: str, masked: bool):
    """(forward, loss, value_and_grad), each ``mx.compile``d, for φ, with or without a mask."""

    def forward(p, x, h0, *mask):
        h, o, log_yhat = _outputs(Params(*p), x, h0, mask[0] if masked else None, phi)
        return h, o, _exp(log_yhat)

    def loss(p, x, y, h0, *mask):
        return -(y * _outputs(Params(*p), x, h0, mask[0] if masked else None, phi)[2]).sum()

    def value_and_grad(p, x, y, h0, *mask):
        value, (dp, dx, dh0) = mx.value_and_grad(
            lambda p, x, h0: loss(p, x, y, h0, *mask), argnums=(0, 1, 2)
        )(p, x, h0)
        return value, (*dp, dh0, dx)

    return tuple(mx.compile(f) for f in (forward, loss, value_and_grad))


class MlxCompileBackend(LayerBackend):
    """rnnspec backend ``mlx_compile``: the model in MLX, mx.compile(mx.value_and_grad(loss))."""

    name = "mlx_compile"
    framework_version = f"mlx {mx.__version__}"  # type: ignore[attr-defined]
    capabilities = Capabilities(
        autodiff=True, devices=("cpu",), masks=True, nonlinearities=("tanh", "relu")
    )

    def __init__(self, device: str | None = None):
        super().__init__(device)
        self._arrays = MlxArrays()
        self._compiled: dict = {}
        self._compiling = threading.Lock()

    def _for(self, phi, mask):
        key = (phi, mask is not None)
        with self._compiling:
            if key not in self._compiled:
                self._compiled[key] = _computations(*key)
            return self._compiled[key], () if mask is None else (mask,)

    def _forward(self, p, x, h0, mask, phi):
        (forward, _, _), masks = self._for(phi, mask)
        return Forward(*self._arrays.evaluated(*forward(tuple(p), x, h0, *masks)))

    def _loss(self, p, x, y, h0, mask, phi):
        (_, loss, _), masks = self._for(phi, mask)
        return self._arrays.evaluated(loss(tuple(p), x, y, h0, *masks))[0]

    def _value_and_grad(self, p, x, y, h0, mask, phi):
        (_, _, value_and_grad), masks = self._for(phi, mask)
        value, grads = value_and_grad(tuple(p), x, y, h0, *masks)
        value, *grads = self._arrays.evaluated(value, *grads)
        dU, dW, db, dV, dc, dh0, dx = grads
        return value, Grads(U=dU, W=dW, b=db, V=dV, c=dc, h0=dh0, x=dx)
