"""Is ``torch.compile`` of the torch backend's closed form faster on the CPU? Measured, not assumed.

For each workload named (bench/workloads.py; default small and medium), float32 on the CPU: the
torch backend's kernel ``gradients`` (SPEC.md form B, the Python loops over in-place products)
eagerly and under ``torch.compile`` (Inductor), on the bench's own inputs. The compiled result is
first checked against the eager one by the tolerance policy's bound; then both are timed
round-robin (median of ``--repeats`` calls each, after warm-up), and the first compiled call's
seconds (the compilation) reported apart. Prints one Markdown table:

    python scripts/torch_compile_closed_form.py [--workload small --workload medium] [--repeats 20]
"""

import statistics
import time
from functools import partial

import click
import torch

from rnnspec import backends
from rnnspec.backends import torch as torch_backend
from rnnspec.bench.workloads import WORKLOADS
from rnnspec.spec import tolerance


def _timed(call) -> tuple[float, tuple]:
    start = time.perf_counter()
    loss, grads = call()
    return time.perf_counter() - start, (loss, *grads)


@click.command()
@click.option(
    "--workload",
    "workloads",
    multiple=True,
    default=("small", "medium"),
    type=click.Choice(list(WORKLOADS)),
    show_default=True,
)
@click.option("--repeats", default=20, show_default=True)
def main(workloads, repeats):  # fmt: skip
    backend = backends.load("torch")
    compiled = torch.compile(torch_backend.gradients, dynamic=False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    print(
        "| workload | eager ms | compiled ms | compiled ÷ eager | compilation s | error / bound |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in workloads:
        w = WORKLOADS[name]
        params, x, y, h0 = w.native(backend, "float32")
        weights = backend._weights(y, backend._validate(params, x, y, h0), None)
        with torch.no_grad():
            eager = partial(torch_backend.gradients, params, x, weights, h0)
            fast = partial(compiled, params, x, weights, h0)
            compilation, got = _timed(fast)
            _, want = _timed(eager)
            worst = max(
                tolerance.relative_error(g.numpy(), r.numpy()) / tolerance.bound("float32", w.T)
                for g, r in zip(got, want)
            )
            times: dict[str, list[float]] = {"eager": [], "compiled": []}
            for _ in range(2):
                eager(), fast()
            for _ in range(repeats):
                times["eager"].append(_timed(eager)[0])
                times["compiled"].append(_timed(fast)[0])
        eager_ms, fast_ms = (1e3 * statistics.median(times[k]) for k in ("eager", "compiled"))
        print(f"| {name} | {eager_ms:.2f} | {fast_ms:.2f} | {fast_ms / eager_ms:.2f} | "
              f"{compilation:.1f} | {worst:.2g} |")  # fmt: skip


if __name__ == "__main__":
    main()
