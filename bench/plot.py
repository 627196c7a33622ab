"""The plot: ms per call by workload and implementation, log scale, one panel per dtype.

``python -m rnnspec.bench.plot RESULTS.json PLOT.png`` or ``rnnspec bench --plot PLOT.png``.
"""

import json
import sys
from pathlib import Path

from rnnspec.bench.workloads import WORKLOADS

#: the built-in backends' colors; any other backend gets one of the rest
COLORS = {"numpy": "C2", "torch": "C3", "jax": "C0", "tensorflow": "C1", "mlx": "C4"}


def plot(data: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in data["rows"] if "median_ms" in r]
    dtypes = sorted({r["dtype"] for r in rows})
    workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in rows)]
    impls = sorted({r["impl"] for r in rows}, key=lambda i: (i.split()[0], "closed" not in i, i))
    backend_of = {r["impl"]: r["backend"] for r in rows}
    others = sorted(set(backend_of.values()) - set(COLORS))
    colors = {**COLORS, **{b: f"C{5 + i % 5}" for i, b in enumerate(others)}}
    fig, axes = plt.subplots(1, len(dtypes), figsize=(5 * len(dtypes) + 1.5, 3.6), squeeze=False)
    width = 0.8 / len(impls)
    for ax, dtype in zip(axes[0], dtypes):
        for i, impl in enumerate(impls):
            ms = {r["workload"]: r for r in rows if r["dtype"] == dtype and r["impl"] == impl}
            bars = [(j + (i - (len(impls) - 1) / 2) * width, ms[w])
                    for j, w in enumerate(workloads) if w in ms]  # fmt: skip
            medians = [r["median_ms"] for _, r in bars]
            errors = [[r["median_ms"] - r["q1_ms"] for _, r in bars],
                      [r["q3_ms"] - r["median_ms"] for _, r in bars]]  # fmt: skip
            hatch = "" if "closed form" in impl else "xx" if "nn.RNN" in impl else "//"
            ax.bar([x for x, _ in bars], medians, width, yerr=errors, label=impl, hatch=hatch,
                   color=colors[backend_of[impl]])  # fmt: skip
        ax.set(yscale="log", ylabel="ms per call (median, IQR)")
        ax.set_xticks(range(len(workloads)), workloads)
        ax.set_title(f"loss + all gradients, {dtype}", fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m rnnspec.bench.plot RESULTS.json PLOT.png")
    plot(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2])
