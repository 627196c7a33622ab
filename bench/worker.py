"""One backend's timings, as JSON: ``python -m rnnspec.bench.worker BACKEND [options]``.

BACKEND is any name ``rnnspec.backends.load`` accepts. For each workload and dtype, every
implementation (the backend's closed form ``gradients``, its ``autodiff_gradients`` where it has
one, and whatever its framework adds: torch.nn.RNN + autograd on torch; bench/frameworks.py) is
first checked against ``spec.reference`` on the very inputs it is timed on, then called once (the
first call, compilation included, is reported on its own), warmed up, and timed round-robin: each
round calls every implementation once, so a load spike on this shared machine hits them all alike.
Every call is synchronised as its framework needs (bench/frameworks.py).

``--measure memory`` instead measures the peak memory of one call on the memory workload at T and
at T/2, in a process of its own, by the framework's own means (bench/frameworks.py).
"""

import gc
import hashlib
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import click
import numpy as np

from rnnspec import backends
from rnnspec.backends.base import ClosedFormBackend
from rnnspec.bench.frameworks import PEAK_SIZE, Call, Framework, framework_of, outputs
from rnnspec.bench.workloads import FLOW_CALLS, FLOW_WORKLOAD, MEMORY_WORKLOAD, WORKLOADS
from rnnspec.conformance import cases
from rnnspec.conformance.calls import tensors
from rnnspec.conformance.cases import Case
from rnnspec.spec import reference, tolerance

#: A result is timed only if every tensor's ‖g − r‖/‖r‖ ≤ CHECK_FACTOR · tolerance.bound(dtype, T):
#: the policy's own bound (SPEC.md §6) with κ = 1, κ not being measured here (the suite measures
#: it by perturbation, far too slow at these sizes). 1 suffices: the worst ratio measured on these
#: workloads is below 0.1 (∇b, a sum of T·B terms of both signs; docs/benchmarks.md).
CHECK_FACTOR = 1.0
WARMUP_CALLS = 2


def tensor_names(w: Case) -> tuple[str, ...]:
    """The names of ``outputs``' arrays for the workload: a stack's U, W, b one per cell."""
    return tuple(name.removeprefix("Grads.") for name, _ in tensors("gradients", w.model()))


DTYPES = ("float32", "float64")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnnspec-bench"

#: The options that ``rnnspec bench`` and the worker share, defined once: bench forwards each to
#: every worker it starts (run.worker_args). Names as in ``rnnspec conform`` where they mean the same.
MEASUREMENT_OPTIONS = (
    click.Option(["--dtype", "dtypes"], multiple=True, type=click.Choice(DTYPES),
                 help="Dtype to time (repeatable); one the backend does not compute in is skipped. "
                 "Default: both."),
    click.Option(["--workload", "workloads"], multiple=True, type=click.Choice(list(WORKLOADS)),
                 help="Workload to time (repeatable). Default: all."),
    click.Option(["--repeats"], default=30, show_default=True, help="Timed calls per implementation."),
    click.Option(["--max-seconds"], default=10.0, show_default=True,
                 help="Stop timing a workload and dtype after this many seconds (at least 5 calls)."),
    click.Option(["--device"], default=None, help="Device for every backend, e.g. cuda."),
    click.Option(["--seed"], default=0, show_default=True, help="Seed of the random inputs."),
    click.Option(["--cache"], type=click.Path(file_okay=False, path_type=Path), default=CACHE,
                 show_default=True, help="Where the float64 reference results are kept between runs."),
)  # fmt: skip


# --- what each call must return, once per workload, cached on disk ------------------------------


def _expected(w: Case, cache: Path, flow: str | None = None) -> list[np.ndarray]:
    """[L, ∇U, ∇W, ∇b, ∇V, ∇c, ∇h0, ∇x] in float64, kept in ``cache`` under the case and the
    sources they depend on: by spec.reference (pure Python: seconds), or for the gradient-flow call
    FLOW_CALLS[flow] by the NumPy backend. The literal reference (spec.reference_flow, O(T³)) is
    out of reach at these sizes; the conformance suite certifies the NumPy backend against it."""
    from rnnspec.backends import base
    from rnnspec.backends import numpy as numpy_backend

    computed_by = (reference,) if flow is None else (numpy_backend, base)
    sources = b"".join(Path(m.__file__).read_bytes() for m in (*computed_by, cases) if m.__file__)
    key = hashlib.sha256(repr((w, flow)).encode() + sources).hexdigest()[:16]
    path = cache / f"{'flow' if flow else 'reference'}-{w.name}-{key}.npz"
    if path.exists():
        with np.load(path) as stored:
            return [stored[name] for name in tensor_names(w)]
    params, x, y, h0 = w.arrays("float64")
    if flow is None:
        result = reference.gradients(params, x, y, h0, mask=w.mask(), model=w.model())
    else:
        result = FLOW_CALLS[flow](backends.load("numpy"), params, x, y, h0)
    values = [np.asarray(a) for a in outputs(result)]
    path.parent.mkdir(parents=True, exist_ok=True)
    written = path.with_suffix(f".{os.getpid()}.npz")  # workers may write the same file at once
    np.savez(written, **dict(zip(tensor_names(w), values)))  # type: ignore[arg-type]  # numpy stubs
    written.replace(path)
    return values


#: how a worker's progress line starts on its stderr, for rnnspec bench to show
PROGRESS = "rnnspec-bench-progress: "


def progress(doing: str) -> None:
    """What the worker starts now, one line on stderr (bench shows it; backends may print too)."""
    print(PROGRESS + doing, file=sys.stderr, flush=True)


def _timed(call: Call, fw: Framework) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    fw.sync(outputs(result))
    return time.perf_counter() - start, result


def summary(ms: list[float]) -> dict:
    """Median and quartiles of call times in ms."""
    ms = sorted(ms)
    q1, median, q3 = statistics.quantiles(ms, n=4) if len(ms) > 1 else (ms[0],) * 3
    return {"median_ms": median, "q1_ms": q1, "q3_ms": q3, "calls": len(ms), "times_ms": ms}


def peak_gflops(fw: Framework, dtype: str, repeats: int = 7) -> dict:
    """A PEAK_SIZE² matrix product's GFLOP/s in this framework and dtype."""
    a = fw.backend.asarray(np.random.default_rng(0).standard_normal((PEAK_SIZE,) * 2), dtype)
    times = [_timed(lambda: (a @ a, ()), fw)[0] for _ in range(WARMUP_CALLS + repeats)]
    median = statistics.median(times[WARMUP_CALLS:])
    gflops = 2 * PEAK_SIZE**3 / median / 1e9
    return {"size": PEAK_SIZE, "repeats": repeats, "median_ms": 1e3 * median, "gflops": gflops}


def _preparation(fw: Framework, params, x, y, h0, mask, model) -> Call | None:
    """What a built-in backend's ``gradients`` does before its kernel, as one call: SPEC.md §7's
    checks, the targets as weights, h(0); None for a backend that is not built in."""
    b = fw.backend
    if not isinstance(b, ClosedFormBackend):
        return None

    def call():
        with b._scope():
            _, weights, state = b._prepared(params, x, y, h0, mask=mask, model=model)
        return weights, state

    return call


def time_workload(
    fw: Framework, w: Case, dtype: str, cache: Path, repeats: int, max_seconds: float
) -> list[dict]:
    b, want, rows = fw.backend, _expected(w, cache), {}
    params, x, y, h0 = w.native(b, dtype)
    calls = fw.implementations(params, x, y, h0, w.native_mask(b), **w.model_argument())
    preparing = _preparation(fw, params, x, y, h0, w.native_mask(b), w.model())
    closed_form = f"{b.name} closed form"
    # the gradient-flow methods (SPEC.md §10), where declared: they take no mask, and their workload
    # has none; each is checked against its own float64 result, not against ∇L
    flowing = w.name == FLOW_WORKLOAD and getattr(b.capabilities, "gradient_flow", False)
    flow = {f"{b.name} {label}": label for label in FLOW_CALLS if flowing}
    calls |= {name: partial(FLOW_CALLS[label], b, params, x, y, h0) for name, label in flow.items()}
    for name, call in calls.items():
        first, result = _timed(call, fw)
        expected = _expected(w, cache, flow[name]) if name in flow else want
        ratios = [tolerance.relative_error(b.to_numpy(g), r) / tolerance.bound(dtype, w.steps)
                  for g, r in zip(outputs(result), expected, strict=True)]  # fmt: skip
        worst = max(range(len(ratios)), key=ratios.__getitem__)
        rows[name] = {"workload": w.name, "dtype": dtype, "impl": name, "first_call_s": first,
                      "check_limit": CHECK_FACTOR, "flow": name in flow, "ratios": ratios,
                      "error_ratio": ratios[worst], "worst_tensor": tensor_names(w)[worst]}  # fmt: skip
        for _ in range(WARMUP_CALLS):
            _timed(call, fw)
    # accuracy first: a wrong result is not timed
    times: dict[str, list] = {
        n: []
        for n in calls
        if rows[n]["error_ratio"] <= CHECK_FACTOR  # type: ignore[operator]
    }
    # the closed form's preparation is timed in the same rounds, as the share of its call
    prepared: list[float] | None = [] if preparing and closed_form in times else None
    gc.collect()
    gc.disable()  # as timeit does: a collection would land on whichever call is running
    started = time.perf_counter()
    try:
        for round_ in range(repeats):
            for name, seconds in times.items():
                seconds.append(_timed(calls[name], fw)[0])
            if prepared is not None and preparing:
                start = time.perf_counter()
                fw.sync(preparing())
                prepared.append(time.perf_counter() - start)
            if round_ >= 4 and time.perf_counter() - started > max_seconds:
                break
    finally:
        gc.enable()
    for name, seconds in times.items():
        rows[name].update(summary([1e3 * s for s in seconds]))
    if prepared:
        rows[closed_form]["prepared_median_ms"] = 1e3 * statistics.median(prepared)
    return list(rows.values())


def memory(fw: Framework, w: Case, dtype: str) -> list[dict]:
    """Each implementation's peak at T and at T/2 on workload ``w``; [] where not measurable."""
    rows: dict[str, dict] = {}
    for T, key in ((w.T, "memory_bytes"), (w.T // 2, "memory_half_T_bytes")):
        case = replace(w, T=T)
        impls = fw.implementations(*case.native(fw.backend, dtype), case.native_mask(fw.backend))
        for name, call in impls.items():
            for _ in range(WARMUP_CALLS):  # compile first: compilers' own memory is not the call's
                _timed(call, fw)
            gc.collect()
            if (measured := fw.peak_memory(call)) is None:
                return []
            row = rows.setdefault(name, {"workload": w.name, "dtype": dtype, "impl": name})
            row[key], row["memory_method"] = measured
    activations = w.T * w.B * w.H * np.dtype(dtype).itemsize
    for row in rows.values():
        growth = row["memory_bytes"] / max(1, row["memory_half_T_bytes"])
        row.update(memory_per_activation=row["memory_bytes"] / activations,
                   memory_growth_T_over_half_T=growth)  # fmt: skip
    return list(rows.values())


@click.command(params=[
    click.Argument(["backend_name"], metavar="BACKEND"),
    *MEASUREMENT_OPTIONS,
    click.Option(["--measure"], type=click.Choice(["time", "memory"]), default="time",
                 show_default=True,
                 help=f"Time every workload, or measure peak memory on {MEMORY_WORKLOAD} at T and T/2."),
    click.Option(["--json", "json_file"], type=click.File("w"), default="-", show_default=True,
                 help="Write the results here."),
])  # fmt: skip
def main(
    backend_name, dtypes, workloads, repeats, max_seconds, device, seed, cache, measure, json_file
):
    """Time BACKEND (any name rnnspec.backends.load accepts) and write the results as JSON; rnnspec
    bench runs one such process per backend and round."""
    try:
        backend = backends.load(backend_name, device=device)
    except backends.BackendError as problem:  # bench prints this one line, not a traceback
        json.dump({"backend": backend_name, "error": str(problem), "results": []}, json_file)
        raise click.ClickException(str(problem)) from None
    fw = framework_of(backend)
    out: dict[str, Any] = {"backend": backend.name, "framework": fw.name,
                           "version": backend.framework_version, "device": backend.device,
                           "precision": None if fw.on_cpu else backend.enforce_full_precision(),
                           "threads": fw.threads(), "results": []}  # fmt: skip
    dtypes = [d for d in dtypes or DTYPES if d in backend.capabilities.dtypes]
    if measure == "memory":
        for dtype in dtypes:
            out["results"] += memory(fw, replace(WORKLOADS[MEMORY_WORKLOAD], seed=seed), dtype)
    else:
        out["peak"] = {dtype: peak_gflops(fw, dtype) for dtype in dtypes}
        steps = [(name, dtype) for name in workloads or WORKLOADS for dtype in dtypes]
        for done, (name, dtype) in enumerate(steps):
            progress(f"{name} {dtype} ({done + 1} of {len(steps)})")
            w = replace(WORKLOADS[name], seed=seed)
            out["results"] += time_workload(fw, w, dtype, cache, repeats, max_seconds)
    json.dump(out, json_file, default=lambda v: v.item() if isinstance(v, np.generic) else str(v))


if __name__ == "__main__":
    main()
