"""Where the time of one float32 ``gradients`` call goes on CUDA, to explain what the benchmark shows.

- torch: the median time of the closed form and of torch.nn.RNN + autograd on each workload, and
  torch.profiler's table of the kernels of one call of each (their count and their GPU time);
- JAX: the median time of the closed form and of its autodiff against the loop unrolling
  (``rnnspec.backends.jax.GPU_UNROLL``), and against T, which separates the cost per step from the
  fixed cost of a call.

Needs a GPU, torch and JAX with CUDA, and the rnnspec namespace importable (scripts/gpu-bench.sh
stages it); installs nothing. Usage: python3 scripts/gpu_profile.py [--repeats N]
"""

import argparse
import statistics
import time
from dataclasses import replace
from functools import partial

import numpy as np

from rnnspec import backends
from rnnspec.bench.frameworks import _nn_rnn, framework_of
from rnnspec.bench.workloads import WORKLOADS
from rnnspec.spec import Params

UNROLLS = (1, 16, 64)


def native(backend, w, dtype="float32"):
    params, x, y, h0 = w.arrays(dtype)
    return Params(*map(backend.asarray, params)), *map(backend.asarray, (x, y, h0))


def parts(backend, args) -> dict:
    """A call's two parts apart: the input checks (validation, targets to weights), and the
    kernels on checked inputs."""
    p, x, y, h0 = args
    weights = backend._one_hot(y, p.V.shape[0], x.dtype)

    def checks():
        backend._weights(y, backend._validate(p, x, y, h0))
        return backend.asarray(np.zeros(())), ()

    options = backend._kernel_options  # JAX's unroll on a GPU
    kernels = partial(backend._gradients, p, x, weights, h0, **options)
    return {"checks alone": checks, "kernels alone": kernels}


def median_ms(call, sync, repeats: int) -> float:
    for _ in range(3):  # compilation, cuDNN's plan choice, allocator warm-up
        sync(call())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sync(call())
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def torch_profile(device: str, workloads: dict, repeats: int) -> None:
    import torch

    backend = backends.load("torch", device)
    print(backend.enforce_full_precision())
    on_gpu = backend.device.startswith("cuda")
    gpu = torch.cuda.get_device_name() if on_gpu else "no GPU"
    print(f"torch {torch.__version__} on {gpu}, cuDNN {torch.backends.cudnn.version()}")

    def sync(result):
        if on_gpu:
            torch.cuda.synchronize()

    for name, w in workloads.items():
        args = native(backend, w)
        calls = {
            "torch closed form": partial(backend.gradients, *args),
            **{f"torch closed form, {part}": call for part, call in parts(backend, args).items()},
            "torch.nn.RNN autograd": _nn_rnn(*args),
        }
        for label, call in calls.items():
            ms = median_ms(call, sync, repeats)
            activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
            with torch.profiler.profile(activities=activities) as prof:
                sync(call())
            kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
            gpu_ms = sum(e.device_time for e in kernels) / 1e3
            print(f"\n== {name} {tuple(w[1:])}: {label}: median {ms:.3f} ms per call; "
                  f"{len(kernels)} GPU kernels/copies, {gpu_ms:.3f} ms of GPU time")  # fmt: skip
            print(
                prof.key_averages().table(
                    sort_by="device_time_total", row_limit=6, max_name_column_width=60
                )
            )


def jax_sweep(device: str, workloads: dict, repeats: int) -> None:
    import jax

    from rnnspec.backends import jax as jax_backend

    backend = backends.load("jax", device)
    print(backend.enforce_full_precision())
    print(f"jax {jax.__version__} on {backend.device}; default GPU unroll {jax_backend.GPU_UNROLL}")
    sync = framework_of(backend).sync

    def ms(call):
        return median_ms(call, lambda result: sync([result[0], *result[1]]), repeats)

    print(f"{'workload':>8} {'unroll':>6} {'closed form ms':>15} {'autodiff ms':>12}")
    for name, w in workloads.items():
        args = native(backend, w)
        for unroll in UNROLLS:
            backend._kernel_options = {"unroll": unroll}
            closed = ms(partial(backend.gradients, *args))
            autodiff = ms(partial(backend.autodiff_gradients, *args))
            print(f"{name:>8} {unroll:>6} {closed:>15.3f} {autodiff:>12.3f}")
        backend._kernel_options = {"unroll": jax_backend.GPU_UNROLL}
        for part, call in parts(backend, args).items():
            print(f"{name:>8} {jax_backend.GPU_UNROLL:>6} {part}: {ms(call):.3f} ms")
    print(f"\n{'T (long)':>8} {'closed form ms':>15}  (unroll {jax_backend.GPU_UNROLL})")
    for T in (125, 250, 500, 1000):
        args = native(backend, replace(WORKLOADS["long"], T=T))
        print(f"{T:>8} {ms(partial(backend.gradients, *args)):>15.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cuda", help="cpu for a dry run of the script itself")
    parser.add_argument("--workload", action="append", choices=list(WORKLOADS), help="default: all")
    args = parser.parse_args()
    workloads = {name: WORKLOADS[name] for name in args.workload or WORKLOADS}
    torch_profile(args.device, workloads, args.repeats)
    jax_sweep(args.device, workloads, args.repeats)
