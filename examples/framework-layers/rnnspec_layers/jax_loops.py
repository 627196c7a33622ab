"""JAX's loop transformations as witnesses: the model written as a JAX user writes it, ``lax.scan``
over the steps and the output layer on every state, differentiated by ``jax.value_and_grad`` under
``jax.jit``, in two configurations that change how reverse mode runs the loop:

- ``jax_scan_checkpoint``: the step wrapped in ``jax.checkpoint`` (rematerialisation: the backward
  pass recomputes each step's activations from its carry instead of storing them);
- ``jax_scan_unroll``: ``lax.scan(..., unroll=UNROLL)``, several steps per loop iteration, the
  suite's T not all multiples of it (XLA runs the remainder apart).

Masks (SPEC.md §9) as the spec writes them, in the step: h(t) = m(t) φ(a(t)) + (1 − m(t)) h(t−1),
by ``jnp.where``. The mask is a scanned input like x; without one, the step takes ``None``.
Compiled once per shape, dtype, φ and configuration (``jax.jit``'s own cache).
"""

from functools import partial

from rnnspec.spec import Capabilities, Forward, Grads, Params

from ._arrays import JaxArrays
from ._common import LayerBackend, user_state_kept

with user_state_kept():  # importing jax changes os.environ and NumPy's global RNG
    import jax
    import jax.numpy as jnp

#: steps per loop iteration of jax_scan_unroll: the suite's T = 1, 2, 5, 6, 7, 1000 are not all
#: multiples of it
UNROLL = 4

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def _states(p: Params, x, h0, mask, phi: str, checkpoint: bool, unroll: int):
    """h (T, B, H): (1.1)–(1.2) one step per scan iteration; a masked step carries h over (9.1)."""
    activation = ACTIVATIONS[phi]

    def step(h_prev, inputs):
        x_t, kept_t = inputs
        h_t = activation(p.b + h_prev @ p.W.T + x_t @ p.U.T)
        if kept_t is not None:
            h_t = jnp.where(kept_t[:, None], h_t, h_prev)
        return h_t, h_t

    _, h = jax.lax.scan(jax.checkpoint(step) if checkpoint else step, h0, (x, mask), unroll=unroll)
    return h


def _loss_of(o, y):
    """(1.4)–(1.6): −Σ y · log_softmax(o), exact whatever Σ_k y_k is (erratum E1)."""
    return -jnp.sum(y * jax.nn.log_softmax(o, axis=-1))


STATIC = ("phi", "checkpoint", "unroll")


@partial(jax.jit, static_argnames=STATIC)
def _forward(p: Params, x, h0, mask, phi, checkpoint, unroll):
    h = _states(p, x, h0, mask, phi, checkpoint, unroll)
    o = h @ p.V.T + p.c  # (1.3)
    return h, o, jax.nn.softmax(o, axis=-1)


@partial(jax.jit, static_argnames=STATIC)
def _loss(p: Params, x, y, h0, mask, phi, checkpoint, unroll):
    return _loss_of(_states(p, x, h0, mask, phi, checkpoint, unroll) @ p.V.T + p.c, y)


@partial(jax.jit, static_argnames=STATIC)
def _value_and_grad(p: Params, x, y, h0, mask, phi, checkpoint, unroll):
    def loss(p, x, h0):
        return _loss_of(_states(p, x, h0, mask, phi, checkpoint, unroll) @ p.V.T + p.c, y)

    value, (dp, dx, dh0) = jax.value_and_grad(loss, argnums=(0, 1, 2))(p, x, h0)
    return value, Grads(U=dp.U, W=dp.W, b=dp.b, V=dp.V, c=dp.c, h0=dh0, x=dx)


class JaxScanBackend(LayerBackend):
    """The model over ``lax.scan``, ``checkpoint`` and ``unroll`` as configured; jax.value_and_grad."""

    framework_version = f"jax {jax.__version__}"
    capabilities = Capabilities(
        autodiff=True, devices=("cpu",), masks=True, nonlinearities=("tanh", "relu")
    )

    def __init__(self, name: str, checkpoint: bool, unroll: int, device: str | None = None):
        self.name = name
        super().__init__(device)
        self._arrays = JaxArrays()
        self._loop = {"checkpoint": checkpoint, "unroll": unroll}

    def _forward(self, p, x, h0, mask, phi):
        return Forward(*_forward(p, x, h0, mask, phi=phi, **self._loop))

    def _loss(self, p, x, y, h0, mask, phi):
        return _loss(p, x, y, h0, mask, phi=phi, **self._loop)

    def _value_and_grad(self, p, x, y, h0, mask, phi):
        return _value_and_grad(p, x, y, h0, mask, phi=phi, **self._loop)


def jax_scan_checkpoint(device: str | None = None) -> JaxScanBackend:
    """rnnspec backend ``jax_scan_checkpoint``: the step under jax.checkpoint."""
    return JaxScanBackend("jax_scan_checkpoint", checkpoint=True, unroll=1, device=device)


def jax_scan_unroll(device: str | None = None) -> JaxScanBackend:
    """rnnspec backend ``jax_scan_unroll``: lax.scan with unroll=UNROLL."""
    return JaxScanBackend("jax_scan_unroll", checkpoint=False, unroll=UNROLL, device=device)
