"""flax.linen ``nn.RNN(nn.SimpleCell(...))`` + ``nn.Dense`` as an rnnspec backend, differentiated by
``jax.value_and_grad``.

Weights are ported by SPEC.md §1's table into the linen variables ``{"params": ...}``:
``cell/i/kernel = Uᵀ`` (D, H), ``cell/i/bias = b``, ``cell/h/kernel = Wᵀ`` (the cell's recurrent
Dense has no bias), ``dense/kernel = Vᵀ`` (H, K), ``dense/bias = c``. ``nn.RNN`` is
batch-major by default, so x goes in as (B, T, D) and h0 as ``initial_carry`` (B, H). The
gradients of those variables are ported back the same way (∇U = (∇i.kernel)ᵀ, ...). The loss is
written by hand, −Σ y · log_softmax(o) (optax' softmax_cross_entropy is exact as well).

Linen modules hold no weights: the variables are an argument of every ``apply``. Each computation
is one module-level ``jax.jit`` function of (module, params, x, ...) that ports the parameters into
the variables, the module a static argument (a frozen dataclass: sizes and dtype), so it compiles
once per shape and dtype and shares nothing else between calls, like rnnspec's own JAX backend.
The module's ``dtype`` and ``param_dtype`` are the call's dtype; float64 needs JAX's x64 mode,
which this module never switches on: that is the user's global setting.

Masks (SPEC.md §9): the module runs each sequence's unmasked steps as one shorter sequence
(``unmasked_first``), and h(t) is gathered back from its outputs. nn.RNN's own ``seq_lengths``
means right padding only; the steps sorted to the end run, and nothing reads them.
"""

from functools import partial
from typing import Any

import numpy as np

from rnnspec.spec import Capabilities, Forward, Grads, Params

from ._arrays import JaxArrays
from ._common import LayerBackend, unmasked_first, user_state_kept

with user_state_kept():  # importing jax and flax changes os.environ and the global RNGs
    import flax
    import flax.linen as nn
    import jax
    import jax.numpy as jnp


class SimpleRNNClassifier(nn.Module):
    """nn.RNN(nn.SimpleCell) then nn.Dense, batch-major, in one dtype: (h, o) for x (B, T, D)."""

    hidden: int
    classes: int
    dtype: Any
    nonlinearity: str  # the name of flax's own activation, nn.tanh or nn.relu

    @nn.compact
    def __call__(self, x, h0, steps=None):
        """``steps``: None, or ``unmasked_first``'s (order, count), batch-major (B, T)."""
        cell = nn.SimpleCell(
            features=self.hidden, activation_fn=getattr(nn, self.nonlinearity),
            dtype=self.dtype, param_dtype=self.dtype, name="cell",
        )  # fmt: skip  # created here, the cell's variables live here, under "cell", not under the nn.RNN
        if steps is None:
            h = nn.RNN(cell)(x, initial_carry=h0)
        else:
            order, count = steps
            shorter = nn.RNN(cell)(
                jnp.take_along_axis(x, order[..., None], axis=1), initial_carry=h0
            )
            states = jnp.concatenate([h0[:, None], shorter], axis=1)
            h = jnp.take_along_axis(states, count[..., None], axis=1)
        o = nn.Dense(self.classes, dtype=self.dtype, param_dtype=self.dtype, name="dense")(h)
        return h, o


def _net(p: Params, phi: str) -> SimpleRNNClassifier:
    H, _ = p.U.shape
    dtype = np.dtype(p.U.dtype)
    return SimpleRNNClassifier(hidden=H, classes=p.V.shape[0], dtype=dtype, nonlinearity=phi)


def _variables(p: Params) -> dict:
    """The linen variables from the spec's parameters (§1's table)."""
    cell = {"i": {"kernel": p.U.T, "bias": p.b}, "h": {"kernel": p.W.T}}
    return {"params": {"cell": cell, "dense": {"kernel": p.V.T, "bias": p.c}}}


def _outputs(net, variables, x, h0, steps):
    """h (T, B, H) and o (T, B, K) from the module, which is batch-major."""
    steps = None if steps is None else tuple(a.T for a in steps)
    h, o = net.apply(variables, jnp.swapaxes(x, 0, 1), h0, steps)
    return jnp.swapaxes(h, 0, 1), jnp.swapaxes(o, 0, 1)


def _loss_of(o, y):
    """(1.4)–(1.6) by hand: −Σ y · log_softmax(o), exact whatever Σ_k y_k is (erratum E1)."""
    return -jnp.sum(y * jax.nn.log_softmax(o, axis=-1))


@partial(jax.jit, static_argnums=0)
def _forward(net, p: Params, x, h0, steps):
    h, o = _outputs(net, _variables(p), x, h0, steps)
    return h, o, jax.nn.softmax(o, axis=-1)


@partial(jax.jit, static_argnums=0)
def _loss(net, p: Params, x, y, h0, steps):
    return _loss_of(_outputs(net, _variables(p), x, h0, steps)[1], y)


@partial(jax.jit, static_argnums=0)
def _value_and_grad(net, p: Params, x, y, h0, steps):
    loss, (dv, dx, dh0) = jax.value_and_grad(
        lambda variables, x, h0: _loss_of(_outputs(net, variables, x, h0, steps)[1], y),
        argnums=(0, 1, 2),
    )(_variables(p), x, h0)
    cell, dense = dv["params"]["cell"], dv["params"]["dense"]
    return loss, Grads(  # the variables' gradients ported back: ∇U = (∇i.kernel)ᵀ, ...
        U=cell["i"]["kernel"].T, W=cell["h"]["kernel"].T, b=cell["i"]["bias"],
        V=dense["kernel"].T, c=dense["bias"], h0=dh0, x=dx,
    )  # fmt: skip


class FlaxLinenBackend(LayerBackend):
    """rnnspec backend ``flax_linen``: nn.RNN(nn.SimpleCell) + nn.Dense, gradients by jax.grad."""

    name = "flax_linen"
    framework_version = f"flax {flax.__version__} on jax {jax.__version__}"
    capabilities = Capabilities(
        autodiff=True, devices=("cpu",), masks=True, nonlinearities=("tanh", "relu")
    )

    def __init__(self, device: str | None = None):
        super().__init__(device)
        self._arrays = JaxArrays()

    def _steps(self, mask):
        """None, or ``unmasked_first``'s (order, count) as JAX arrays, time-major (T, B)."""
        if mask is None:
            return None
        return tuple(map(self.asarray, unmasked_first(self.to_numpy(mask))))

    def _forward(self, p, x, h0, mask, phi):
        return Forward(*_forward(_net(p, phi), p, x, h0, self._steps(mask)))

    def _loss(self, p, x, y, h0, mask, phi):
        return _loss(_net(p, phi), p, x, y, h0, self._steps(mask))

    def _value_and_grad(self, p, x, y, h0, mask, phi):
        return _value_and_grad(_net(p, phi), p, x, y, h0, self._steps(mask))
