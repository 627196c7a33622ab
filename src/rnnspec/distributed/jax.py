"""Data-parallel gradients over a JAX device mesh (SPEC.md §11).

JAX is single-controller: the caller holds the whole batch as global arrays, and ``shard_map``
runs the jax backend's form B kernel on each device's block of the batch axis; ``psum`` sums the
loss and the parameter gradients, and ∇h0 and ∇x come back as one global array each, in batch
order. ``shard_map`` wants equal blocks, so the batch is padded to a multiple of the device count
with sequences of zero weight (zero soft targets, zero inputs and initial state), whose
contribution to the loss and to every gradient is exactly zero (SPEC.md §11.4); their rows are
dropped from ∇h0 and ∇x.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rnnspec import backends
from rnnspec.backends import jax as kernels
from rnnspec.spec import Grads, Params

try:  # jax >= 0.7 has it at the top level; before, only under experimental
    from jax import shard_map
except ImportError:  # pragma: no cover - older jax
    from jax.experimental.shard_map import shard_map  # type: ignore[no-redef]

AXIS = "batch"
#: params whole on every device; x and y (T, B, ·) and h0 (B, H) split along B
IN_SPECS = (P(), P(None, AXIS), P(None, AXIS), P(AXIS))
OUT_SPECS = (P(), Grads._make([*[P()] * 5, P(AXIS), P(None, AXIS)]))


def gradients(
    params: Params, x: jax.Array, y: jax.Array, h0: jax.Array | None = None, *,
    backend=None, mesh: Mesh | None = None,
) -> tuple[jax.Array, Grads]:  # fmt: skip
    """(L, Grads) of the batch, computed in blocks of the batch axis, one per device of ``mesh``.

    ``mesh`` is one-dimensional with the axis named ``"batch"``; by default every device of the
    backend's platform. ``backend`` defaults to the jax backend on the CPU. Inputs are validated
    as by ``backend.gradients``.
    """
    backend = backend or backends.load("jax")
    mesh = mesh or Mesh(np.array(jax.devices(backend.device.split(":")[0])), (AXIS,))
    dims = backend._validate(params, x, y, h0)
    weights, h0 = backend._weights(y, dims), backend._initial_state(x, h0, dims)
    padding = -dims.B % mesh.size  # §11.4: zero-weight sequences up to a multiple of the devices
    x, weights = (
        jnp.pad(a, [(0, 0), (0, padding)] + [(0, 0)] * (a.ndim - 2)) for a in (x, weights)
    )
    h0 = jnp.pad(h0, [(0, padding), (0, 0)])
    placed = [
        jax.device_put(arg, NamedSharding(mesh, spec))  # the batch axis split over the devices
        for arg, spec in zip((params, x, weights, h0), IN_SPECS, strict=True)
    ]
    loss, grads = _sharded(mesh)(*placed)
    return loss, grads._replace(h0=grads.h0[: dims.B], x=grads.x[:, : dims.B])


@functools.cache
def _sharded(mesh: Mesh):
    """The backend's kernel on each device's block, the sums psum'd: compiled once per mesh and
    shapes."""

    def block(p, x, y, h0):
        loss, g = kernels.gradients(p, x, y, h0)
        loss, summed = jax.lax.psum((loss, Params(*g[:5])), AXIS)  # (11.2) sums, never a mean
        return loss, Grads._make([*summed, g.h0, g.x])

    return jax.jit(shard_map(block, mesh=mesh, in_specs=IN_SPECS, out_specs=OUT_SPECS))
