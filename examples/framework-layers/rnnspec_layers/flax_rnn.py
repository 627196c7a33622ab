"""flax.linen ``nn.RNN(nn.SimpleCell(...))`` + ``nn.Dense`` as an rnnspec backend, differentiated by
``jax.value_and_grad``; stacked and bidirectional networks (SPEC.md §12) with flax's own
``nn.Bidirectional``, and the layer alone, its vector–Jacobian product for any upstream gradient
(§13).

Weights are ported by SPEC.md §1's and §12's tables into the linen variables ``{"params": ...}``,
per cell: ``cell/i/kernel = Uᵀ`` (D_l, H), ``cell/i/bias = b``, ``cell/h/kernel = Wᵀ`` (the cell's
recurrent Dense has no bias), under ``cell`` for one cell and ``cell_{i}`` for cell i of a network;
``dense/kernel = Vᵀ`` (directions·H, K), ``dense/bias = c``. A network is one ``nn.RNN`` per layer
and direction, each layer reading the one below's sequence; a bidirectional layer is
``nn.Bidirectional(nn.RNN(forward cell), nn.RNN(reverse cell))``, whose default ``merge_fn``
concatenates [forward; reverse] on the last axis (12.3) and whose backward RNN runs
``reverse=True, keep_order=True``: its states come back in time order. Initial states go in per
direction as ``initial_carry`` and the last states h_n (13.2) are the carries flax returns
(``return_carry``). ``nn.RNN`` is batch-major by default, so x goes in as (B, T, D). The gradients of
those variables are ported back the same way (∇U = (∇i.kernel)ᵀ, ...). The loss is written by hand,
−Σ y · log_softmax(o) (optax' softmax_cross_entropy is exact as well); the layer's VJP is
``jax.vjp`` of the module's (h, h_n) with the upstream gradients (13.1).

Linen modules hold no weights: the variables are an argument of every ``apply``. Each computation
is one module-level ``jax.jit`` function of (module, params, x, ...) that ports the parameters into
the variables, the module a static argument (a frozen dataclass: sizes, dtype, layers, directions),
so it compiles once per shape and dtype and shares nothing else between calls, like rnnspec's own
JAX backend. The module's ``dtype`` and ``param_dtype`` are the call's dtype; float64 needs JAX's
x64 mode, which this module never switches on: that is the user's global setting.

Masks (SPEC.md §9, §12.2): the network runs each sequence's unmasked steps as one shorter sequence
(``unmasked_first``), right-padded, with flax's own ``seq_lengths`` (its count of unmasked steps):
there flax's reverse direction flips each sequence within its own length (``flip_sequences``), so
the reverse cell starts at the sequence's last real step, as §12.2 defines, and the carries it
returns are those after each sequence's last real step. The steps sorted to the end run too; a
forward cell reads them after every real step and a reverse cell, whose flip keeps them at the end,
likewise, so nothing that is read sees them. h(t) is then gathered back from the top layer's
outputs: the forward state after the sequence's first count(t) unmasked steps (h(0) for none), the
reverse state from its first unmasked step at or after t (its initial state where none is left).
Run on the padded sequence as given, ``seq_lengths`` means right padding only, and its outputs at
the padding are the states run on through it, not the carried ones. A sequence with no step
(length 0): flax returns the carry after every (padded) step, not the initial one
(``_select_last_carry`` reads step ``length − 1 = −1``, the last, flax 0.12.8), so the initial
state is taken there.
"""

from functools import partial
from typing import Any

import numpy as np

from rnnspec.spec import Capabilities, Forward, Grads, LayerOutputs, Model, Params

from ._arrays import JaxArrays
from ._common import LayerBackend, unmasked_first, user_state_kept

with user_state_kept():  # importing jax and flax changes os.environ and the global RNGs
    import flax
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

#: the one-layer network of SPEC.md §1, which the hooks get when they are given no model
ONE_LAYER = Model()


def _names(model: Model) -> list[str]:
    """The linen names of the cells' variables, in cell order (SPEC.md §12)."""
    return ["cell"] if not model.stacked else [f"cell_{i}" for i in range(model.cells)]


class SimpleRNNNetwork(nn.Module):
    """nn.RNN(nn.SimpleCell) per layer and direction (nn.Bidirectional for two), then nn.Dense
    where ``classes`` is given, batch-major, in one dtype: (h, h_n, o) for x (B, T, D)."""

    hidden: int
    classes: int | None  # None: the layer alone (SPEC.md §13)
    dtype: Any
    nonlinearity: str  # the name of flax's own activation, nn.tanh or nn.relu
    layers: int = 1
    bidirectional: bool = False

    @nn.compact
    def __call__(self, x, h0, steps=None):
        """``h0``: one (B, H) per cell; ``steps``: None, or (order, count, ahead, lengths)
        batch-major, of ``_steps``. h is (B, T, directions·H), h_n one (B, H) per cell."""
        model = Model(layers=self.layers, bidirectional=self.bidirectional)
        R, H = model.directions, self.hidden
        # created here, the cells' variables live here, under their names, not under the RNNs
        activation = getattr(nn, self.nonlinearity)
        cells = [
            nn.SimpleCell(
                features=H,
                activation_fn=activation,
                dtype=self.dtype,
                param_dtype=self.dtype,
                name=name,
            )
            for name in _names(model)
        ]
        lengths = None
        if steps is not None:
            order, count, ahead, lengths = steps
            x = jnp.take_along_axis(x, order[..., None], axis=1)  # unmasked steps first
        h_n = []
        for level in range(self.layers):
            first = level * R
            if self.bidirectional:
                carries, x = nn.Bidirectional(
                    nn.RNN(cells[first]), nn.RNN(cells[first + 1]), return_carry=True
                )(x, initial_carry=(h0[first], h0[first + 1]), seq_lengths=lengths)
            else:
                carry, x = nn.RNN(cells[first], return_carry=True)(
                    x, initial_carry=h0[first], seq_lengths=lengths
                )
                carries = (carry,)
            h_n.extend(carries)
        h = x
        if steps is not None:  # h(t) gathered back; h_n of a sequence with no step: its h(0)
            empty = (lengths == 0)[:, None]
            h_n = [jnp.where(empty, initial, carry) for carry, initial in zip(h_n, h0)]
            top = h0[len(h0) - R :]
            states = jnp.concatenate([top[0][:, None], x[..., :H]], axis=1)
            halves = [jnp.take_along_axis(states, count[..., None], axis=1)]
            if self.bidirectional:  # position k ≥ length holds no state: the initial one there
                real = jnp.arange(x.shape[1])[None, :, None] < lengths[:, None, None]
                reverse = jnp.where(real, x[..., H:], top[1][:, None])
                states = jnp.concatenate([reverse, top[1][:, None]], axis=1)
                halves.append(jnp.take_along_axis(states, ahead[..., None], axis=1))
            h = jnp.concatenate(halves, axis=-1)
        o = None
        if self.classes is not None:
            o = nn.Dense(self.classes, dtype=self.dtype, param_dtype=self.dtype, name="dense")(h)
        return h, h_n, o


def _cells(p: Params, model: Model) -> list[tuple]:
    """Each cell's (U, W, b), cell i = l·directions + d (SPEC.md §12)."""
    if not model.stacked:
        return [(p.U, p.W, p.b)]
    return list(zip(p.U, p.W, p.b))


def _net(p: Params, phi: str, model: Model) -> SimpleRNNNetwork:
    U = _cells(p, model)[0][0]
    return SimpleRNNNetwork(
        hidden=U.shape[0], classes=None if p.V is None else p.V.shape[0],
        dtype=np.dtype(U.dtype), nonlinearity=phi, layers=model.layers,
        bidirectional=model.bidirectional,
    )  # fmt: skip


def _model(net: SimpleRNNNetwork) -> Model:
    return Model(layers=net.layers, bidirectional=net.bidirectional)


def _variables(p: Params, model: Model) -> dict:
    """The linen variables from the spec's parameters (§1's and §12's tables)."""
    variables = {
        name: {"i": {"kernel": U.T, "bias": b}, "h": {"kernel": W.T}}
        for name, (U, W, b) in zip(_names(model), _cells(p, model))
    }
    if p.V is not None:
        variables["dense"] = {"kernel": p.V.T, "bias": p.c}
    return {"params": variables}


def _ported_back(dv: dict, model: Model) -> tuple:
    """∇U, ∇W, ∇b from the variables' gradients, (∇i.kernel)ᵀ, ...: tuples for a stack."""
    cells = [dv["params"][name] for name in _names(model)]
    U = [cell["i"]["kernel"].T for cell in cells]
    W = [cell["h"]["kernel"].T for cell in cells]
    b = [cell["i"]["bias"] for cell in cells]
    return tuple(tuple(g) if model.stacked else g[0] for g in (U, W, b))


def _outputs(net, variables, x, h0, steps):
    """h (T, B, directions·H), h_n ((cells, B, H), or (B, H) for one cell) and o (T, B, K) or
    None, from the module, which is batch-major."""
    model = _model(net)
    initial = list(h0) if model.stacked else [h0]
    steps = None if steps is None else (*(a.T for a in steps[:3]), steps[3])
    h, h_n, o = net.apply(variables, jnp.swapaxes(x, 0, 1), initial, steps)
    h_n = jnp.stack(h_n) if model.stacked else h_n[0]
    return jnp.swapaxes(h, 0, 1), h_n, None if o is None else jnp.swapaxes(o, 0, 1)


def _loss_of(o, y):
    """(1.4)–(1.6) by hand: −Σ y · log_softmax(o), exact whatever Σ_k y_k is (erratum E1)."""
    return -jnp.sum(y * jax.nn.log_softmax(o, axis=-1))


@partial(jax.jit, static_argnums=0)
def _forward(net, p: Params, x, h0, steps):
    h, _, o = _outputs(net, _variables(p, _model(net)), x, h0, steps)
    return h, o, jax.nn.softmax(o, axis=-1)


@partial(jax.jit, static_argnums=0)
def _loss(net, p: Params, x, y, h0, steps):
    return _loss_of(_outputs(net, _variables(p, _model(net)), x, h0, steps)[2], y)


@partial(jax.jit, static_argnums=0)
def _value_and_grad(net, p: Params, x, y, h0, steps):
    model = _model(net)
    loss, (dv, dx, dh0) = jax.value_and_grad(
        lambda variables, x, h0: _loss_of(_outputs(net, variables, x, h0, steps)[2], y),
        argnums=(0, 1, 2),
    )(_variables(p, model), x, h0)
    U, W, b = _ported_back(dv, model)
    dense = dv["params"]["dense"]
    return loss, Grads(  # the variables' gradients ported back: ∇U = (∇i.kernel)ᵀ, ...
        U=U, W=W, b=b, V=dense["kernel"].T, c=dense["bias"], h0=dh0, x=dx
    )


@partial(jax.jit, static_argnums=0)
def _layer_forward(net, p: Params, x, h0, steps):
    h, h_n, _ = _outputs(net, _variables(p, _model(net)), x, h0, steps)
    return LayerOutputs(h=h, h_n=h_n)


@partial(jax.jit, static_argnums=0)
def _layer_vjp(net, p: Params, x, h_grad, hn_grad, h0, steps):
    """(13.1): jax.vjp of (h, h_n) with the upstream gradients, zero for h_n where none."""
    model = _model(net)
    (_, h_n), vjp = jax.vjp(
        lambda variables, x, h0: _outputs(net, variables, x, h0, steps)[:2],
        _variables(p, model), x, h0,
    )  # fmt: skip
    dv, dx, dh0 = vjp((h_grad, jnp.zeros_like(h_n) if hn_grad is None else hn_grad))
    U, W, b = _ported_back(dv, model)
    return Grads(U=U, W=W, b=b, V=None, c=None, h0=dh0, x=dx)


class FlaxLinenBackend(LayerBackend):
    """rnnspec backend ``flax_linen``: nn.RNN(nn.SimpleCell) + nn.Dense, gradients by jax.grad;
    stacked and bidirectional networks (nn.Bidirectional), and the layer alone."""

    name = "flax_linen"
    framework_version = f"flax {flax.__version__} on jax {jax.__version__}"
    capabilities = Capabilities(
        autodiff=True, devices=("cpu",), masks=True, nonlinearities=("tanh", "relu"),
        stacks=True, layer=True,
    )  # fmt: skip

    def __init__(self, device: str | None = None):
        super().__init__(device)
        self._arrays = JaxArrays()

    def _steps(self, mask):
        """None, or (order, count, ahead, lengths) as JAX arrays, the first three time-major
        (T, B): ``unmasked_first``'s order and count, ahead(t) = count(t) − m(t) (how many
        unmasked steps come before t: where a reverse cell's state at t is read), and each
        sequence's count of unmasked steps, flax's ``seq_lengths``."""
        if mask is None:
            return None
        mask = self.to_numpy(mask)
        order, count = unmasked_first(mask)
        ahead = count - mask.astype(np.int32)
        return tuple(map(self.asarray, (order, count, ahead, count[-1])))

    def _forward(self, p, x, h0, mask, phi, model=ONE_LAYER):
        return Forward(*_forward(_net(p, phi, model), p, x, h0, self._steps(mask)))

    def _loss(self, p, x, y, h0, mask, phi, model=ONE_LAYER):
        return _loss(_net(p, phi, model), p, x, y, h0, self._steps(mask))

    def _value_and_grad(self, p, x, y, h0, mask, phi, model=ONE_LAYER):
        return _value_and_grad(_net(p, phi, model), p, x, y, h0, self._steps(mask))

    def _layer_forward(self, p, x, h0, mask, phi, model):
        return _layer_forward(_net(p, phi, model), p, x, h0, self._steps(mask))

    def _layer_vjp(self, p, x, h_grad, hn_grad, h0, mask, phi, model):
        net = _net(p, phi, model)
        return _layer_vjp(net, p, x, h_grad, hn_grad, h0, self._steps(mask))
