"""Data-parallel gradients on each framework's own distributed engine (SPEC.md §11).

The batch is split into shards, one per worker; each worker computes its shard's loss and
gradients with the framework's rnnspec backend, and the shards are combined exactly as the loss
is: the loss and the parameter gradients are **summed** over shards (never averaged, as
DistributedDataParallel does), ∇h0 and ∇x are per sequence and gathered back in batch order.

- ``rnnspec.distributed.torch.gradients``: one call per rank of a ``torch.distributed`` process
  group (gloo on CPU, nccl on GPU), each rank passing its own shard (any size, empty included);
- ``rnnspec.distributed.jax.gradients``: the whole batch as global arrays, ``shard_map`` over a
  device mesh with the batch axis sharded, padded with zero-weight sequences, ``psum``;
- ``rnnspec.distributed.tensorflow.gradients``: the whole batch, split over the replicas of a
  ``tf.distribute`` strategy (MirroredStrategy over logical devices), reduced with SUM.

Each module imports its framework when it is imported; this package imports nothing.
"""

import numpy as np


def shard_sizes(batch: int, shards: int) -> list[int]:
    """The default split of ``batch`` sequences over ``shards`` workers, in batch order: sizes
    that differ by at most one, the larger first; zeros where the batch is smaller."""
    return [len(part) for part in np.array_split(np.arange(batch), shards)]
