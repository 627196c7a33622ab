"""One framework's timings, as JSON on stdout: ``python -m bench.worker FRAMEWORK [options]``.

For each workload and dtype, every implementation of the framework (its backend's closed form
``gradients``, its ``autodiff_gradients``, and for torch ``torch.nn.RNN`` + ``nn.Linear`` +
cross-entropy with autograd) is first checked against ``spec.reference`` on the very inputs it is
timed on, then called once (the first call, compilation included, is reported on its own), warmed
up, and timed round-robin: each round calls every implementation once, so a load spike on this
shared machine hits them all alike. Every call is synchronised (``jax.block_until_ready``, ``.numpy()``
for TensorFlow, ``torch.cuda.synchronize`` on CUDA; NumPy and torch on CPU are synchronous).

``--memory`` instead measures the peak memory of one call on the memory workload at T and at T/2,
in a process of its own: tracemalloc for NumPy; torch.profiler's allocation records for torch
(torch.cuda.max_memory_allocated on CUDA); TensorFlow's BFC allocator statistics; for JAX the
growth of the resident-set high-water mark, with ``MALLOC_MMAP_THRESHOLD_`` fixed by run.py so that
freed arrays go back to the system and that mark follows the live arrays.
"""

import argparse
import gc
import hashlib
import itertools
import json
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rnnspec import backends
from rnnspec.bench.workloads import MEMORY_WORKLOAD, WORKLOADS, Workload, inputs
from rnnspec.spec import Grads, Params, reference, tolerance

#: A result is timed only if every tensor's ‖g − r‖/‖r‖ ≤ CHECK_FACTOR · tolerance.bound(dtype, T):
#: the policy's own bound (SPEC.md §6) with κ = 1, κ not being measured here (the suite measures
#: it by perturbation, far too slow at these sizes). 1 suffices: the worst ratio measured on these
#: workloads is below 0.1 (∇b, a sum of T·B terms of both signs; docs/benchmarks.md).
CHECK_FACTOR = 1.0
WARMUP_CALLS = 2
PEAK_SIZE = 2048
TENSORS = ("L", *Grads._fields)

Call = Callable[[], Any]


# --- the reference, once per workload, cached on disk --------------------------------------------


def _reference(w: Workload, seed: int, cache: Path | None) -> list[np.ndarray]:
    """[L, ∇U, ∇W, ∇b, ∇V, ∇c, ∇h0, ∇x] by spec.reference in float64 (pure Python: seconds)."""
    sources = b"".join(
        Path(m.__file__).read_bytes()
        for m in (reference, sys.modules[inputs.__module__])
        if m.__file__
    )
    key = hashlib.sha256(repr((tuple(w), seed)).encode() + sources).hexdigest()[:16]
    path = None if cache is None else cache / f"reference-{w.name}-{key}.npz"
    if path is not None and path.exists():
        with np.load(path) as stored:
            return [stored[name] for name in TENSORS]
    params, x, y, h0 = inputs(w, "float64", seed)
    loss, grads = reference.gradients(params, x, y, h0)
    values = [np.asarray(loss), *grads]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.npz")
        np.savez(partial, **dict(zip(TENSORS, values)))
        partial.replace(path)
    return values


def _check(result, to_numpy, want: list[np.ndarray], dtype: str, T: int) -> dict:
    loss, grads = result
    got = [to_numpy(loss), *(to_numpy(g) for g in grads)]
    ratios = [tolerance.relative_error(g, r) / tolerance.bound(dtype, T) for g, r in zip(got, want)]
    worst = max(range(len(ratios)), key=lambda i: ratios[i])
    return {"error_ratio": ratios[worst], "worst_tensor": TENSORS[worst], "ratios": ratios}


# --- each framework: its implementations, synchronisation, peak matmul and thread settings ------


class Framework:
    def __init__(self, name: str, device: str | None):
        self.name = name
        self.backend = backends.load(name, device=device)
        self.precision = None
        if self.backend.device.lower() not in ("cpu", "cpu:0"):
            self.precision = self.backend.enforce_full_precision()

    def native(self, w: Workload, dtype: str, seed: int) -> tuple:
        params, x, y, h0 = inputs(w, dtype, seed)
        to = self.backend.asarray
        return Params(*map(to, params)), to(x), to(y), to(h0)

    def implementations(self, params, x, y, h0) -> dict[str, Call]:
        b = self.backend
        impls = {f"{self.name} closed form": lambda: b.gradients(params, x, y, h0)}
        if self.name != "numpy":
            impls[f"{self.name} autodiff"] = lambda: b.autodiff_gradients(params, x, y, h0)
        if self.name == "torch":
            impls["torch.nn.RNN autograd"] = _torch_nn_rnn(params, x, y, h0)
        return impls

    def sync(self, result) -> None:
        if self.name == "jax":
            import jax

            jax.block_until_ready(result)
        elif self.name == "tensorflow":
            for tensor in (result[0], *result[1]):
                tensor.numpy()
        elif self.name == "torch" and self.backend.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def matmul(self, dtype: str) -> Call:
        """A PEAK_SIZE² matrix product in this framework, synchronised."""
        a = self.backend.asarray(np.random.default_rng(0).standard_normal((PEAK_SIZE,) * 2), dtype)
        if self.name == "jax":
            import jax

            product = jax.jit(lambda m: m @ m)
            return lambda: product(a).block_until_ready()
        if self.name == "tensorflow":
            import tensorflow as tf

            return lambda: tf.matmul(a, a).numpy()
        return lambda: self.sync((a @ a, ()))

    def threads(self) -> dict[str, Any]:
        env = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS")
        info: dict[str, Any] = {k: os.environ[k] for k in env if k in os.environ}
        info["cpus"] = len(os.sched_getaffinity(0))
        if self.name == "numpy":
            try:
                from threadpoolctl import threadpool_info

                info["blas"] = [
                    f"{p['internal_api']} {p['num_threads']} threads" for p in threadpool_info()
                ]
            except ImportError:
                info["blas"] = "OpenBLAS, its default (threadpoolctl not installed to ask)"
        elif self.name == "torch":
            import torch

            info["torch.get_num_threads"] = torch.get_num_threads()
            info["torch.get_num_interop_threads"] = torch.get_num_interop_threads()
        elif self.name == "tensorflow":
            import tensorflow as tf

            info["intra_op"] = tf.config.threading.get_intra_op_parallelism_threads() or "default"
            info["inter_op"] = tf.config.threading.get_inter_op_parallelism_threads() or "default"
        elif self.name == "jax":
            info["xla_cpu"] = "default Eigen thread pool (XLA_FLAGS to change)"
        return info


def _torch_nn_rnn(params, x, y, h0) -> Call:
    """What users would write: nn.RNN(tanh) + nn.Linear + cross_entropy(reduction="sum"), autograd.

    torch has two biases; bias_hh is held at zero (and gets no gradient), so b = bias_ih.
    """
    import torch

    T, B, D = x.shape
    H, K = params.W.shape[0], params.V.shape[0]
    kw = {"device": x.device, "dtype": x.dtype}
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh", **kw)
    linear = torch.nn.Linear(H, K, **kw)
    weights: list[Any] = [
        rnn.weight_ih_l0,
        rnn.weight_hh_l0,
        rnn.bias_ih_l0,
        linear.weight,
        linear.bias,
    ]
    bias_hh: Any = rnn.bias_hh_l0
    with torch.no_grad():
        for dest, src in zip(weights, params):
            dest.copy_(src)
        bias_hh.zero_()
    bias_hh.requires_grad_(False)
    targets = y.reshape(-1).long()

    def call():
        x_in = x.detach().requires_grad_()
        h_in = h0.detach()[None].requires_grad_()
        out, _ = rnn(x_in, h_in)
        logits = linear(out).reshape(T * B, K)
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        dU, dW, db, dV, dc, dh0, dx = torch.autograd.grad(loss, [*weights, h_in, x_in])
        return loss.detach(), Grads(U=dU, W=dW, b=db, V=dV, c=dc, h0=dh0[0], x=dx)

    return call


# --- timing -------------------------------------------------------------------------------------


def _timed(call: Call, sync: Callable[[Any], None]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    sync(result)
    return time.perf_counter() - start, result


def summary(ms: list[float]) -> dict:
    """Median and quartiles of call times in ms."""
    ms = sorted(ms)
    q1, median, q3 = statistics.quantiles(ms, n=4) if len(ms) > 1 else (ms[0],) * 3
    return {"median_ms": median, "q1_ms": q1, "q3_ms": q3, "calls": len(ms), "times_ms": ms}


def peak_gflops(fw: Framework, dtype: str, repeats: int = 7) -> dict:
    call = fw.matmul(dtype)
    for _ in range(2):
        call()
    times = [_timed(call, lambda _: None)[0] for _ in range(repeats)]
    median = statistics.median(times)
    return {"size": PEAK_SIZE, "median_ms": 1e3 * median, "gflops": 2 * PEAK_SIZE**3 / median / 1e9}


def time_workload(fw: Framework, w: Workload, dtype: str, args: argparse.Namespace) -> list[dict]:
    want = _reference(w, args.seed, args.cache)
    impls = fw.implementations(*fw.native(w, dtype, args.seed))
    rows: dict[str, dict[str, Any]] = {}
    live: dict[str, Call] = {}
    for name, call in impls.items():
        first, result = _timed(call, fw.sync)
        row: dict[str, Any] = {"workload": w.name, "dtype": dtype, "impl": name}
        row["first_call_s"] = first
        row.update(_check(result, fw.backend.to_numpy, want, dtype, w.T))
        row["check_limit"] = CHECK_FACTOR
        rows[name] = row
        if row["error_ratio"] <= CHECK_FACTOR:  # accuracy first: a wrong result is not timed
            live[name] = call
        for _ in range(WARMUP_CALLS):
            fw.sync(call())
    times: dict[str, list[float]] = {name: [] for name in live}
    gc.collect()
    gc.disable()  # as timeit does: a collection would land on whichever call is running
    started = time.perf_counter()
    try:
        for round_ in range(args.repeats):
            for name, call in live.items():
                times[name].append(_timed(call, fw.sync)[0])
            if round_ >= 4 and time.perf_counter() - started > args.max_seconds:
                break
    finally:
        gc.enable()
    for name, seconds in times.items():
        rows[name].update(summary([1e3 * s for s in seconds]))
        rows[name]["gflops"] = w.flops() / (rows[name]["median_ms"] / 1e3) / 1e9
    return list(rows.values())


# --- memory -------------------------------------------------------------------------------------


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _peak_memory(fw: Framework, call: Call) -> tuple[int, str]:
    """Bytes allocated above what was live before one call, at the call's peak."""
    if fw.name == "numpy":
        tracemalloc.start()
        fw.sync(call())
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, "tracemalloc peak"
    if fw.backend.device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fw.sync(call())
        return torch.cuda.max_memory_allocated() - base, "torch.cuda.max_memory_allocated"
    if fw.name == "torch":  # every allocation of torch's CPU allocator, in time order
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fw.sync(call())
        events = sorted(prof.events(), key=lambda e: e.time_range.start)
        live = itertools.accumulate(e.self_cpu_memory_usage for e in events)
        return max(live, default=0), "torch.profiler: peak of allocations minus frees"
    if fw.name == "tensorflow":  # its CPU allocator is the BFC one here (run.MEMORY_ENV)
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("CPU:0")
        base = tf.config.experimental.get_memory_info("CPU:0")["current"]
        fw.sync(call())
        peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] - base
        return peak, "TensorFlow BFC allocator peak (TF_CPU_ALLOCATOR_USE_BFC=true)"
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM, the resident-set high-water mark, to the current VmRSS
    base = _status_bytes("VmRSS")
    fw.sync(call())
    return _status_bytes("VmHWM") - base, "peak RSS growth (VmHWM after clear_refs)"


def memory(fw: Framework, dtype: str, args: argparse.Namespace) -> list[dict]:
    w = WORKLOADS[MEMORY_WORKLOAD]
    if fw.backend.device.lower() not in ("cpu", "cpu:0") and fw.name != "torch":
        return []  # device memory is measured for torch (CUDA) only
    rows: dict[str, dict] = {}
    for T in (w.T, w.T // 2):
        impls = fw.implementations(*fw.native(w.prefix(T), dtype, args.seed))
        for name, call in impls.items():
            for _ in range(WARMUP_CALLS):  # compile first: compilers' own memory is not the call's
                fw.sync(call())
            gc.collect()
            peak, how = _peak_memory(fw, call)
            row = rows.setdefault(name, {"workload": w.name, "dtype": dtype, "impl": name})
            row["memory_method"] = how
            row["memory_bytes" if T == w.T else "memory_half_T_bytes"] = peak
    for row in rows.values():
        activations = w.T * w.B * w.H * np.dtype(dtype).itemsize
        row["memory_per_activation"] = row["memory_bytes"] / activations
        row["memory_growth_T_over_half_T"] = row["memory_bytes"] / max(
            1, row["memory_half_T_bytes"]
        )
    return list(rows.values())


# --- entry point --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("framework", choices=list(backends.BUILTIN))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds at most")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="per workload and dtype")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--cache", type=Path, default=None, help="folder for reference results")
    parser.add_argument("--memory", action="store_true", help="measure memory instead of time")
    args = parser.parse_args(argv)
    dtypes = args.dtypes.split(",")
    if args.framework == "jax":  # float64 needs x64 mode; on for float32 too, so that a run's
        import jax  # float32 numbers do not depend on whether float64 was asked for

        jax.config.update("jax_enable_x64", True)  # this process's own global setting
    fw = Framework(args.framework, args.device)
    out: dict[str, Any] = {
        "framework": args.framework,
        "version": fw.backend.framework_version,
        "device": fw.backend.device,
        "precision": fw.precision,
        "threads": fw.threads(),
        "results": [],
    }
    if args.memory:
        for dtype in dtypes:
            out["results"] += memory(fw, dtype, args)
    else:
        out["peak"] = {dtype: peak_gflops(fw, dtype) for dtype in dtypes}
        for name in args.workloads.split(","):
            for dtype in dtypes:
                out["results"] += time_workload(fw, WORKLOADS[name], dtype, args)
    json.dump(out, sys.stdout, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


if __name__ == "__main__":
    main()
