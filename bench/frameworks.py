"""What timing needs to know about the framework under a backend: what to time, how to wait for a
result, how to measure one call's peak memory, and which thread settings it runs with.

:class:`Framework` holds the fallbacks, which need the backend protocol alone; a subclass per known
framework overrides what it does better, chosen by the top-level module of the arrays ``asarray``
returns (:func:`framework_of`): any backend on torch tensors, built-in or not, syncs as torch does.
"""

import contextlib
import itertools
import os
import tracemalloc
from collections.abc import Callable, Iterable
from typing import Any, cast

import numpy as np

from rnnspec.spec import AutodiffBackend, Backend, Grads

Call = Callable[[], Any]
#: the side of the square matrix product that measures a framework's peak GFLOP/s
PEAK_SIZE = 2048
#: what users of torch would write; every closed form is also compared with it
REFERENCE = "torch.nn.RNN autograd"
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS")
CLEAR_REFS = "/proc/self/clear_refs"  # Linux only


def usable_cores() -> int:
    """CPUs this process may run on: its affinity mask where the OS has one (Linux)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


#: what sets each framework's CPU thread pool: OpenMP and the BLAS libraries (NumPy, torch),
#: TensorFlow's intra-op pool; XLA's Eigen pool takes no count (XLA_FLAGS, THREAD_ENV)
THREAD_COUNT_ENV = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
)  # fmt: skip
#: a 1-minute load average above this fraction of the usable cores makes a run's times meaningless
BUSY_FRACTION = 0.5


def free_cores(usable: int, load: tuple[float, ...] | None) -> int:
    """The cores other work leaves free: the usable ones less the 1-minute load average, rounded,
    and at least one. A thread pool larger than the free cores spins on the busy ones (issue 28:
    272 ms against 1.86 ms for one NumPy call at load 4 on 2 cores; 1.54 ms with one thread)."""
    if load is None:
        return usable
    return max(1, min(usable, usable - round(load[0])))


def busy(usable: int, load: tuple[float, ...] | None) -> bool:
    """Whether other work on the machine makes its timings mean little (BUSY_FRACTION)."""
    return load is not None and load[0] > BUSY_FRACTION * usable


def thread_settings(given: dict[str, str], usable: int, load) -> dict[str, str]:
    """The workers' thread counts: none where the user set any (``--env`` or the environment),
    since they own that choice; else every pool at the free cores' count."""
    if any(key in given or key in os.environ for key in THREAD_COUNT_ENV):
        return {}
    return dict.fromkeys(THREAD_COUNT_ENV, str(free_cores(usable, load)))


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages, or None where the OS keeps none (Windows)."""
    with contextlib.suppress(AttributeError, OSError):
        return os.getloadavg()
    return None


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(key + ":"))


def outputs(result: tuple[Any, Grads]) -> tuple:
    """The arrays of one call's (loss, Grads), a stack's per-cell tuples spread out in order."""
    grads = (g for value in result[1] for g in (value if isinstance(value, tuple) else (value,)))
    return (result[0], *grads)


class Framework:
    """The fallbacks: results synchronised by converting them with ``backend.to_numpy``, memory as
    the growth of the resident set (Linux, CPU only), thread settings from the environment alone."""

    name = "generic"

    def __init__(self, backend: Backend):
        self.backend = backend

    @property
    def on_cpu(self) -> bool:
        return self.backend.device.lower() in ("cpu", "cpu:0")

    def implementations(self, params, x, y, h0, mask=None, model=None) -> dict[str, Call]:
        """Name -> one call of loss and all gradients on these (native) inputs; a mask and a model
        are passed only when given (a tanh call is the same on every protocol version)."""
        b = self.backend
        given = {k: v for k, v in {"mask": mask, "model": model}.items() if v is not None}
        impls = {f"{b.name} closed form": lambda: b.gradients(params, x, y, h0, **given)}
        if b.capabilities.autodiff:
            ad = cast(AutodiffBackend, b)  # what capabilities.autodiff promises
            impls[f"{b.name} autodiff"] = lambda: ad.autodiff_gradients(params, x, y, h0, **given)
        return impls

    def sync(self, arrays: Iterable) -> None:
        """Return once every array is computed (asynchronous frameworks return before)."""
        for array in arrays:
            self.backend.to_numpy(array)

    def peak_memory(self, call: Call) -> tuple[int, str] | None:
        """Bytes allocated above what was live before one call, at the call's peak, and how they
        were measured; None where this framework's memory cannot be measured here. The fallback's
        peak counts its sync too: the NumPy copy of one output at a time."""
        if not self.on_cpu or not os.path.exists(CLEAR_REFS):
            return None
        with open(CLEAR_REFS, "w") as clear:
            clear.write("5")  # resets VmHWM, the resident-set high-water mark, to the current VmRSS
        base = _status_bytes("VmRSS")
        self.sync(outputs(call()))
        how = "peak RSS growth (VmHWM after clear_refs), an output's NumPy copy included"
        return _status_bytes("VmHWM") - base, how

    def threads(self) -> dict[str, Any]:
        return {**{k: os.environ[k] for k in THREAD_ENV if k in os.environ}, "cpus": usable_cores()}


class NumpyFramework(Framework):
    name = "numpy"

    def sync(self, arrays: Iterable) -> None:
        """NumPy is synchronous."""

    def peak_memory(self, call: Call) -> tuple[int, str]:
        tracemalloc.start()
        call()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, "tracemalloc peak"

    def threads(self) -> dict[str, Any]:
        try:
            from threadpoolctl import threadpool_info
        except ImportError:
            return {**super().threads(), "blas": "its default (threadpoolctl not installed to ask)"}
        blas = [f"{p['internal_api']} {p['num_threads']} threads" for p in threadpool_info()]
        return {**super().threads(), "blas": blas}


class TorchFramework(Framework):
    name = "torch"

    def implementations(self, params, x, y, h0, mask=None, model=None) -> dict[str, Call]:
        """Also what users would write, torch.nn.RNN with autograd (its own tanh or relu): the
        reference to beat (unmasked workloads only)."""
        impls = super().implementations(params, x, y, h0, mask, model)
        if mask is not None:
            return impls
        return {**impls, REFERENCE: _nn_rnn(params, x, y, h0, model)}

    def sync(self, arrays: Iterable) -> None:
        """torch on CPU is synchronous; CUDA kernels are queued."""
        if self.backend.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def peak_memory(self, call: Call) -> tuple[int, str]:
        import torch

        if self.backend.device.startswith("cuda"):
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            self.sync(outputs(call()))
            return torch.cuda.max_memory_allocated() - base, "torch.cuda.max_memory_allocated"
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                    profile_memory=True) as prof:  # fmt: skip
            call()
        # every allocation and free of torch's CPU allocator, in time order
        events = sorted(prof.events(), key=lambda e: e.time_range.start)
        live = itertools.accumulate(e.self_cpu_memory_usage for e in events)
        return max(live, default=0), "torch.profiler: peak of allocations minus frees"

    def threads(self) -> dict[str, Any]:
        import torch

        return {**super().threads(), "torch.get_num_threads": torch.get_num_threads(),
                "torch.get_num_interop_threads": torch.get_num_interop_threads()}  # fmt: skip


class JaxFramework(Framework):
    name = "jax"

    def __init__(self, backend: Backend):
        super().__init__(backend)
        import jax

        # float64 needs x64 mode; on for float32 too, so that a run's float32 numbers do not
        # depend on whether float64 was asked for. A global setting, of this worker's process only.
        jax.config.update("jax_enable_x64", True)

    def sync(self, arrays: Iterable) -> None:
        import jax

        jax.block_until_ready(list(arrays))

    def threads(self) -> dict[str, Any]:
        return {**super().threads(), "xla_cpu": "default Eigen thread pool (XLA_FLAGS to change)"}


class TensorflowFramework(Framework):
    name = "tensorflow"

    def sync(self, arrays: Iterable) -> None:
        for tensor in arrays:
            tensor.numpy()  # waits for the op, without to_numpy's extra copy

    def peak_memory(self, call: Call) -> tuple[int, str] | None:
        if not self.on_cpu:
            return None
        import tensorflow as tf

        # the BFC allocator keeps these statistics; run.MEMORY_ENV makes it the CPU allocator
        tf.config.experimental.reset_memory_stats("CPU:0")
        base = tf.config.experimental.get_memory_info("CPU:0")["current"]
        self.sync(outputs(call()))
        peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] - base
        return peak, "TensorFlow BFC allocator peak (TF_CPU_ALLOCATOR_USE_BFC=true)"

    def threads(self) -> dict[str, Any]:
        import tensorflow as tf

        threading = tf.config.threading
        return {**super().threads(),
                "intra_op": threading.get_intra_op_parallelism_threads() or "default",
                "inter_op": threading.get_inter_op_parallelism_threads() or "default"}  # fmt: skip


class MlxFramework(Framework):
    name = "mlx"

    def sync(self, arrays: Iterable) -> None:
        """MLX is lazy: mx.eval computes what is not computed yet."""
        import mlx.core as mx

        mx.eval(list(arrays))

    def peak_memory(self, call: Call) -> tuple[int, str]:
        import mlx.core as mx

        self.sync([])
        base = mx.get_active_memory()
        mx.reset_peak_memory()
        self.sync(outputs(call()))
        return mx.get_peak_memory() - base, "mlx.core.get_peak_memory"


#: the top-level module of a framework's array type (jax.Array's concrete type lives in jaxlib) ->
#: what the benchmark knows of it
FRAMEWORKS: dict[str, type[Framework]] = {
    "numpy": NumpyFramework, "torch": TorchFramework, "jax": JaxFramework, "jaxlib": JaxFramework,
    "tensorflow": TensorflowFramework, "mlx": MlxFramework,
}  # fmt: skip


def framework_of(backend: Backend) -> Framework:
    """The backend's framework, from the type of the arrays it makes; the fallbacks if unknown."""
    probe = backend.asarray(np.zeros(1), backend.capabilities.dtypes[0])
    return FRAMEWORKS.get(type(probe).__module__.partition(".")[0], Framework)(backend)


def _nn_rnn(params, x, y, h0, model=None) -> Call:
    """nn.RNN(nonlinearity, num_layers, bidirectional of the model) + nn.Linear +
    cross_entropy(reduction="sum"), differentiated by autograd. Of torch's two biases bias_hh is
    held at zero (and gets no gradient), so b = bias_ih; h0 is (cells, B, H), nn.RNN's own."""
    import torch

    from rnnspec.spec import Model

    model = model or Model()
    T, B, D = x.shape
    cells = list(zip(params.U, params.W, params.b)) if model.stacked else [params[:3]]
    H, K = cells[0][1].shape[0], params.V.shape[0]
    kw = {"device": x.device, "dtype": x.dtype}
    rnn = torch.nn.RNN(D, H, num_layers=model.layers, bidirectional=model.bidirectional,
                       nonlinearity=model.nonlinearity, **kw)  # fmt: skip
    linear = torch.nn.Linear(model.directions * H, K, **kw)
    suffixes = [f"_l{i // model.directions}" + ("_reverse" if i % model.directions else "")
                for i in range(model.cells)]  # fmt: skip
    weights = [rnn.get_parameter(kind + suffix) for kind in ("weight_ih", "weight_hh", "bias_ih")
               for suffix in suffixes]  # fmt: skip
    with torch.no_grad():
        for i, cell in enumerate(cells):
            for k, src in enumerate(cell):
                weights[k * model.cells + i].copy_(src)
            rnn.get_parameter("bias_hh" + suffixes[i]).zero_().requires_grad_(False)
        linear.weight.copy_(params.V)
        linear.bias.copy_(params.c)
    targets = y.reshape(-1).long()
    states = h0 if model.stacked else h0[None]

    def call():
        x_in = x.detach().requires_grad_()
        h_in = states.detach().requires_grad_()
        out, _ = rnn(x_in, h_in)
        logits = linear(out).reshape(T * B, K)
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        found = torch.autograd.grad(loss, [*weights, linear.weight, linear.bias, h_in, x_in])
        n = model.cells
        U, W, b = (found[k * n : (k + 1) * n] for k in range(3))
        dV, dc, dh0, dx = found[3 * n :]
        if not model.stacked:
            (U,), (W,), (b,), dh0 = U, W, b, dh0[0]
        return loss.detach(), Grads(U=U, W=W, b=b, V=dV, c=dc, h0=dh0, x=dx)

    return call
