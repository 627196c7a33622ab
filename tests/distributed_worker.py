"""One worker of tests/test_distributed.py, in a process of its own (a rank of a gloo group, or a
JAX or TensorFlow process whose devices must be set before the framework starts):

    python -m tests.distributed_worker torch RANK WORLD PORT OUT
    python -m tests.distributed_worker jax OUT
    python -m tests.distributed_worker tensorflow OUT

It runs rnnspec.distributed on the cases below in both dtypes and saves every result to OUT
(.npz) as "case/dtype/split/tensor", together with a deliberately averaging variant ("…/mean/…")
and the single-device gradients ("case/dtype/single/tensor"), for the test to compare.
"""

import sys
from datetime import timedelta
from unittest import mock

import numpy as np

from rnnspec.conformance.cases import CASES
from rnnspec.distributed import shard_sizes

#: soft targets with Σy = 0 rows, h0 omitted, B = 1 (fewer sequences than workers), B = 16
DISTRIBUTED_CASES = ("soft", "zero_h0", "B1", "batch16")
DTYPES = ("float32", "float64")
TENSORS = ("L", "U", "W", "b", "V", "c", "h0", "x")


def splits(B: int, world: int) -> dict[str, list[int]]:
    """Shard sizes per rank: as even as possible, and skewed with rank 0 empty."""
    return {"balanced": shard_sizes(B, world), "skewed": [0, *shard_sizes(B, world - 1)[::-1]]}


def flat(prefix: str, result, backend) -> dict[str, np.ndarray]:
    loss, grads = result
    values = (loss, *grads)
    return {
        f"{prefix}/{name}": backend.to_numpy(v) for name, v in zip(TENSORS, values, strict=True)
    }


def run_torch(rank: int, world: int, port: int) -> dict:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from rnnspec import backends
    from rnnspec.distributed import torch as distributed
    from rnnspec.spec import Params, SpecError

    backend = backends.load("torch")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=60))  # fmt: skip

    class ClosedFormInDDP(torch.nn.Module):
        """The closed form wrapped in DDP as a user would: a surrogate whose gradient is it."""

        def __init__(self, params):
            super().__init__()
            self.weights = torch.nn.ParameterList([torch.nn.Parameter(p.clone()) for p in params])

        def forward(self, x, y, h0):
            params = Params(*(w.detach() for w in self.weights))
            if x.shape[1]:
                _, grads = backend.gradients(params, x, y, h0)
            else:
                grads = [torch.zeros_like(p) for p in params]
            return sum((w * g).sum() for w, g in zip(self.weights, grads[:5]))

    out = {}
    try:
        for name in DISTRIBUTED_CASES:
            case = CASES[name]
            for dtype in DTYPES:
                params, x, y, h0 = case.native(backend, dtype)
                out |= flat(f"{name}/{dtype}/single", backend.gradients(params, x, y, h0), backend)
                for split, sizes in splits(case.B, world).items():
                    start = sum(sizes[:rank])
                    mine = slice(start, start + sizes[rank])
                    shard = (x[:, mine], y[:, mine], None if h0 is None else h0[mine])
                    prefix = f"{name}/{dtype}/{split}"
                    out |= flat(prefix, distributed.gradients(params, *shard), backend)
                    model = DistributedDataParallel(ClosedFormInDDP(params))
                    model(*shard).backward()  # DDP all-reduces the .grad: with a mean
                    out |= {f"{prefix}/mean/{n}": backend.to_numpy(w.grad)
                            for n, w in zip(TENSORS[1:6], model.module.weights)}  # fmt: skip
        params, x, y, _ = CASES["basic"].native(backend, "float64")
        if rank == world - 1:  # a class index out of range on the last rank alone
            y = torch.full_like(y, CASES["basic"].K)
        try:
            distributed.gradients(params, x, y)
        except SpecError as error:  # every rank raises, none waits for ever
            out["errors/refused"] = np.array(str(error))
    finally:
        dist.destroy_process_group()
    return out


def run_jax() -> dict:
    import jax
    from jax.sharding import Mesh

    from rnnspec import backends
    from rnnspec.distributed import jax as distributed

    backend = backends.load("jax")
    devices = jax.devices("cpu")
    out = {}
    for name in DISTRIBUTED_CASES:
        case = CASES[name]
        for dtype in DTYPES:
            native = case.native(backend, dtype)
            out |= flat(f"{name}/{dtype}/single", backend.gradients(*native), backend)
            for count in (len(devices), 3):  # 3 devices: B = 16 in blocks of 6, 6 and 4 + padding
                mesh = Mesh(np.array(devices[:count]), (distributed.AXIS,))
                prefix = f"{name}/{dtype}/{count}"
                out |= flat(prefix, distributed.gradients(*native, mesh=mesh), backend)
            with mock.patch("jax.lax.psum", jax.lax.pmean):  # the averaging variant, on 3 devices
                distributed._sharded.cache_clear()
                out |= flat(f"{prefix}/mean", distributed.gradients(*native, mesh=mesh), backend)
            distributed._sharded.cache_clear()
    return out


def run_tensorflow() -> dict:
    import tensorflow as tf

    def averaging(reduce):
        """The deliberately averaging variant: the strategy's reduce with MEAN for SUM."""
        return lambda op, value, axis: reduce(tf.distribute.ReduceOp.MEAN, value, axis)

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from rnnspec import backends
    from rnnspec.distributed import tensorflow as distributed
    from rnnspec.spec import SpecError

    backend = backends.load("tensorflow")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out, calls = {}, []  # calls: (prefix, inputs, sizes) in the order below
    for name in DISTRIBUTED_CASES:
        case = CASES[name]
        for dtype in DTYPES:
            native = case.native(backend, dtype)
            out |= flat(f"{name}/{dtype}/single", backend.gradients(*native), backend)
            for split, sizes in splits(case.B, 2).items():
                calls.append((f"{name}/{dtype}/{split}", native, sizes))

    def run_in_sequence(suffix: str) -> None:
        """Every call in turn on one strategy, as a user makes them, its traced function reused:
        soft's [2, 1] then its [0, 3], a shape the trace of another shape must still take."""
        for prefix, native, sizes in calls:
            result = distributed.gradients(*native, strategy=strategy, sizes=sizes)
            out.update(flat(prefix + suffix, result, backend))

    run_in_sequence("")
    with mock.patch.object(strategy, "reduce", averaging(strategy.reduce)):
        distributed._combined.cache_clear()  # traced anew, with the mean
        run_in_sequence("/mean")
    try:  # sizes that do not split the batch
        distributed.gradients(*native, strategy=strategy, sizes=[1])
    except SpecError as error:
        out["errors/sizes"] = np.array(str(error))
    try:  # the default strategy after an explicit one
        distributed.gradients(*native)
    except SpecError as error:
        out["errors/strategy"] = np.array(str(error))
    return out


if __name__ == "__main__":
    engine, *args = sys.argv[1:]
    if engine == "torch":
        rank, world, port, path = int(args[0]), int(args[1]), int(args[2]), args[3]
        results = run_torch(rank, world, port)
    else:
        path = args[0]
        results = {"jax": run_jax, "tensorflow": run_tensorflow}[engine]()
    np.savez(path, **results)
