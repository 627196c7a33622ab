"""Data-parallel gradients over the replicas of a ``tf.distribute`` strategy (SPEC.md §11).

The caller holds the whole batch; each replica receives its contiguous shard of the batch axis
(any size, none included), runs the tensorflow backend's form B kernel on it, and the strategy
reduces the loss and the parameter gradients with ``ReduceOp.SUM`` and gathers ∇h0 and ∇x in
replica order, which is batch order.

One process uses one strategy: tf.distribute numbers its collectives per strategy object from the
same start, so a second strategy (another explicit one, or the default beside an explicit one),
even over other devices, reuses the first one's keys and aborts the process's collectives for
good. The first strategy a call uses is kept; a call with another raises a SpecError.
"""

import functools
import itertools

import tensorflow as tf

from rnnspec import backends
from rnnspec.backends import tensorflow as kernels
from rnnspec.distributed import shard_sizes
from rnnspec.spec import Grads, Params, SpecError


def gradients(
    params: Params, x: tf.Tensor, y: tf.Tensor, h0: tf.Tensor | None = None, *,
    backend=None, strategy: tf.distribute.Strategy | None = None, sizes: list[int] | None = None,
) -> tuple[tf.Tensor, Grads]:  # fmt: skip
    """(L, Grads) of the batch, computed in shards, one per replica of ``strategy``.

    ``strategy`` defaults to a MirroredStrategy over every logical device of the backend's kind,
    and must be the one every earlier call of the process used (see the module); ``sizes`` (one
    per replica, summing to B) to :func:`rnnspec.distributed.shard_sizes`. ``backend`` defaults
    to the tensorflow backend on the CPU. Inputs are validated as by ``backend.gradients``.
    """
    backend = backend or backends.load("tensorflow")
    with backend._scope():  # the one-hot targets and zero h(0) made on the backend's device
        dims = backend._validate(params, x, y, h0)
        weights, h0 = backend._weights(y, dims), backend._initial_state(x, h0, dims)
    strategy = _the_process_strategy(strategy or _mirrored(backend.device.split(":")[0]))
    replicas = strategy.num_replicas_in_sync
    sizes = shard_sizes(dims.B, replicas) if sizes is None else list(sizes)
    if len(sizes) != replicas or sum(sizes) != dims.B or min(sizes) < 0:
        raise SpecError(f"sizes: expected {replicas} non-negative shard sizes (one per replica) "
                        f"summing to B = {dims.B}, got {sizes}")  # fmt: skip
    bounds = list(itertools.pairwise(itertools.accumulate(sizes, initial=0)))

    def shard(array, axis: int):
        def of_replica(context):
            start, stop = bounds[context.replica_id_in_sync_group]
            return tf.identity(array[:, start:stop] if axis == 1 else array[start:stop])

        return strategy.experimental_distribute_values_from_function(of_replica)

    return _combined(strategy)(params, shard(x, 1), shard(weights, 1), shard(h0, 0))


_used: list[tf.distribute.Strategy] = []  # the strategy of this process, once a call has run


def _the_process_strategy(strategy: tf.distribute.Strategy) -> tf.distribute.Strategy:
    """``strategy`` if it is the first strategy a call of this process used (see the module)."""
    if not _used:
        _used.append(strategy)
    elif strategy is not _used[0]:
        raise SpecError(
            f"strategy: expected the strategy this process's calls already use, "
            f"{_described(_used[0])} (a second one in one process aborts tf.distribute's "
            f"collectives); got another, {_described(strategy)}: pass the first one to every "
            f"call, or strategy=None to every call for the default"
        )
    return strategy


def _described(strategy: tf.distribute.Strategy) -> str:
    devices = ", ".join(strategy.extended.worker_devices)
    return f"{type(strategy).__name__} over ({devices}) at {id(strategy):#x}"


@functools.cache
def _mirrored(kind: str) -> tf.distribute.MirroredStrategy:
    """The default strategy: every logical device of ``kind``, made once."""
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices(kind)])


@functools.cache
def _combined(strategy: tf.distribute.Strategy):
    """One tf.function per strategy (kept for the process's life, as jit caches are): the
    backend's kernel on every replica, on the replica's own device (the backend's methods would
    pin it to theirs), then the SUM and the gathers; eager MirroredStrategy calls cost several
    times the kernel's time. It is traced once per dtype and shard shapes, never with relaxed
    (unknown) shapes: each replica's branch for an empty shard is taken at trace time from its
    shard's static size, and the kernel cannot run on an empty shard of unknown size."""

    def replica(p, x, y, h0):
        if x.shape[1] == 0:  # an empty shard contributes nothing (11.1)
            zeros = [tf.zeros_like(a) for a in p]
            return tf.zeros((), x.dtype), Grads._make([*zeros, h0, x])
        return kernels.gradients(p, x, y, h0)

    @tf.function
    def combined(params, x, y, h0):
        loss, grads = strategy.run(replica, args=(params, x, y, h0))
        sum_ = tf.distribute.ReduceOp.SUM  # (11.2) sums, never a mean
        return strategy.reduce(sum_, loss, axis=None), Grads._make(
            [
                *(strategy.reduce(sum_, g, axis=None) for g in grads[:5]),
                strategy.gather(grads.h0, axis=0),  # (11.3) batch order
                strategy.gather(grads.x, axis=1),
            ]
        )

    return combined
