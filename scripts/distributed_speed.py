"""What sharding buys on this machine: one `gradients` call on one device against the same batch
split over 2 workers by rnnspec.distributed, per engine, as a Markdown table (docs/distributed.md).

    python3 scripts/distributed_speed.py [--repeats N]

The workload is the benchmark's "medium" (T=100, B=64, D=128, H=256, K=128), float32. Each engine
runs in a process of its own, started by this script: torch as 2 gloo ranks on 127.0.0.1, each
with half of the cores' threads; JAX with 2 host devices; TensorFlow with 2 logical CPUs. Times are
medians of wall-clock per call after a warm-up call, including the collectives.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rnnspec.bench.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = WORKLOADS["medium"]
WORKERS = 2
HOST_DEVICES = "--xla_force_host_platform_device_count"


def inputs(backend):
    """The workload's arrays, float32, the same in every process."""
    from rnnspec.spec import Params

    w, rng = WORKLOAD, np.random.default_rng(0)
    shapes = [(w.H, w.D), (w.H, w.H), (w.H,), (w.K, w.H), (w.K,)]
    scale = [1 / np.sqrt(w.D), 0.9 / np.sqrt(w.H), 0.1, 1 / np.sqrt(w.H), 0.1]
    params = Params(*(backend.asarray(s * rng.standard_normal(shape), "float32")
                      for s, shape in zip(scale, shapes)))  # fmt: skip
    x = backend.asarray(rng.standard_normal((w.T, w.B, w.D)), "float32")
    y = backend.asarray(rng.integers(0, w.K, (w.T, w.B)))
    return params, x, y


def median_ms(call, repeats: int, sync=lambda result: result) -> float:
    sync(call())  # warm-up: compilation, first allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sync(call())
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def torch_rank(rank: int, port: int, repeats: int) -> None:
    import torch
    import torch.distributed as dist

    from rnnspec import backends
    from rnnspec.distributed import shard_sizes
    from rnnspec.distributed import torch as distributed

    backend = backends.load("torch")
    params, x, y = inputs(backend)
    torch.set_num_threads(max(1, torch.get_num_threads() // WORKERS))  # the cores, shared
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORKERS)  # fmt: skip
    sizes = shard_sizes(WORKLOAD.B, WORKERS)
    mine = slice(sum(sizes[:rank]), sum(sizes[: rank + 1]))

    def sharded():
        dist.barrier()  # every rank starts the call together
        return distributed.gradients(params, x[:, mine], y[:, mine])

    sharded_ms = median_ms(sharded, repeats)
    dist.destroy_process_group()
    if rank == 0:
        print(
            f"torch, {WORKERS} gloo ranks of {torch.get_num_threads()} thread(s)|{sharded_ms:.1f}"
        )


def torch_engine(repeats: int) -> None:
    """One device with torch's default threads, then with one thread, as each rank has."""
    import torch

    from rnnspec import backends

    backend = backends.load("torch")
    params, x, y = inputs(backend)
    threads = torch.get_num_threads()
    default = median_ms(lambda: backend.gradients(params, x, y), repeats)
    torch.set_num_threads(1)
    one_thread = median_ms(lambda: backend.gradients(params, x, y), repeats)
    print(f"{threads}|{default:.1f}|{one_thread:.1f}")


def jax_engine(repeats: int) -> None:
    import jax

    from rnnspec import backends
    from rnnspec.distributed import jax as distributed

    backend = backends.load("jax")
    params, x, y = inputs(backend)
    ready = jax.block_until_ready
    one = median_ms(lambda: backend.gradients(params, x, y), repeats, ready)
    sharded = median_ms(lambda: distributed.gradients(params, x, y), repeats, ready)
    print(f"jax ({len(jax.devices())} host devices)|{one:.1f}|{sharded:.1f}")


def tensorflow_engine(repeats: int) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from rnnspec import backends
    from rnnspec.distributed import tensorflow as distributed

    backend = backends.load("tensorflow")
    params, x, y = inputs(backend)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    one = median_ms(lambda: backend.gradients(params, x, y), repeats)
    sharded = median_ms(lambda: distributed.gradients(params, x, y, strategy=strategy), repeats)
    print(f"tensorflow ({WORKERS} logical CPUs)|{one:.1f}|{sharded:.1f}")


def _run(args: list[str], env: dict[str, str] | None = None, ranks: int = 1) -> str:
    """This script in ``ranks`` processes with ``args`` (+ the rank); rank 0's table row."""
    command = [sys.executable, __file__, *args]
    environment = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"} | (env or {})
    processes = [
        subprocess.Popen([*command, *([str(r)] if ranks > 1 else [])], env=environment,
                         stdout=subprocess.PIPE, text=True, start_new_session=True)
        for r in range(ranks)
    ]  # fmt: skip
    try:
        outputs = [p.communicate(timeout=600)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    if any(p.returncode for p in processes):
        sys.exit(f"{' '.join(command)} failed")
    return outputs[0].strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--engine", choices=[*ENGINES, "torch-rank"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("rank", type=int, nargs="?", help=argparse.SUPPRESS)
    options = parser.parse_args()
    repeats = ["--repeats", str(options.repeats)]
    if options.engine == "torch-rank":
        return torch_rank(options.rank, options.port, options.repeats)
    if options.engine:
        return ENGINES[options.engine](options.repeats)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    threads, default, one_thread = _run(["--engine", "torch", *repeats]).split("|")
    ranks, sharded = _run(
        ["--engine", "torch-rank", "--port", str(port), *repeats], ranks=WORKERS
    ).split("|")
    rows = [  # torch's one device in a process of its own, with its default threads and with one
        f"{ranks} vs one device, {threads} threads|{default}|{sharded}",
        f"{ranks} vs one device, 1 thread|{one_thread}|{sharded}",
        _run(["--engine", "jax", *repeats], {"XLA_FLAGS": f"{HOST_DEVICES}={WORKERS}"}),
        _run(["--engine", "tensorflow", *repeats]),
    ]
    w = WORKLOAD
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{w.name} (T={w.T}, B={w.B}, D={w.D}, H={w.H}, K={w.K}), float32, median of "
          f"{options.repeats} calls, {os.cpu_count()} CPU cores, load average {load}\n")  # fmt: skip
    print("| engine | one device (ms) | sharded (ms) | sharded / one |\n|---|---|---|---|")
    for row in rows:
        name, one, sharded = row.split("|")
        print(f"| {name} | {one} | {sharded} | {float(sharded) / float(one):.2f} |")


ENGINES = {"torch": torch_engine, "jax": jax_engine, "tensorflow": tensorflow_engine}


if __name__ == "__main__":
    main()
