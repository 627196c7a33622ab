"""``rnnspec flow``: how much of the gradient comes from each time lag, what truncating BPTT throws
away, and the Jacobian diagnostics (SPEC.md §10), on a random problem; optionally a plot."""

import importlib.util
import os
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from rnnspec import backends
from rnnspec.conformance.cases import Case

console = Console()
if not console.is_terminal:  # a file or a pipe: wide enough for the table's eight columns
    console = Console(width=110)

#: the spectral radii of W the plot compares
PLOT_RADII = (0.5, 0.9, 1.0, 1.2, 1.5)


def problem(backend, dtype: str, T: int, B: int, D: int, H: int, K: int, radius: float, seed: int):
    """A random problem as the suite's cases make them: W scaled to spectral radius ``radius``."""
    case = Case("flow", T=T, B=B, D=D, H=H, K=K, seed=seed, spectral_radius=radius)
    return case.native(backend, dtype)


def measure(backend, inputs, max_lag: int) -> dict:
    """Per lag j < max_lag: ‖G_j‖ of every tensor, the mean Jacobian norm at lag j, and the relative
    error ‖truncated(j + 1) − full‖ / ‖full‖ of ∇W; and σ₁(W), ρ(W), the regime."""
    params, x, y, h0 = inputs
    numpy = backend.to_numpy
    lags = {f: numpy(v) for f, v in backend.lag_norms(*inputs, max_lag=max_lag)._asdict().items()}
    jacobians = backend.jacobian_norms(params, x, h0=h0)
    full = numpy(backend.gradients(*inputs)[1].W).astype(np.float64)
    truncation_error = []
    for k in range(1, len(lags["W"]) + 1):
        truncated = numpy(backend.truncated_gradients(params, x, y, k, h0=h0)[1].W)
        truncation_error.append(np.linalg.norm(truncated - full) / np.linalg.norm(full))
    W = numpy(params.W).astype(np.float64)
    return {
        "lags": lags,
        "jacobian": np.concatenate([[np.nan], numpy(jacobians.mean)])[: len(lags["W"])],
        "truncation_error": np.array(truncation_error),
        "sigma_max_W": float(numpy(jacobians.sigma_max_W)),
        "spectral_radius_W": float(np.abs(np.linalg.eigvals(W)).max()),
        "regime": jacobians.regime,
    }


def table(result: dict, title: str) -> Table:
    out = Table(title=title, caption="U … x: ‖G_j‖, the Frobenius norm of the lag-j part of each "
                "gradient; J_j: mean ‖∂h(T)/∂h(T−j)‖₂; err: ‖trunc(j + 1) − ∇W‖/‖∇W‖")  # fmt: skip
    for column in ("j", "U", "W", "b", "h0", "x", "J_j", "err"):
        out.add_column(column, justify="right")
    lags = result["lags"]
    for j in range(len(lags["W"])):
        norms = [f"{lags[f][j]:.2e}" for f in ("U", "W", "b", "h0", "x")]
        jacobian = "" if j == 0 else f"{result['jacobian'][j]:.2e}"
        out.add_row(str(j), *norms, jacobian, f"{result['truncation_error'][j]:.2e}")
    return out


def plot(results: dict[float, dict], path: Path, title: str) -> None:
    """Left: ‖G_j(W)‖ against j, log scale, per radius, with the ρ(W)^j decay that the seed's
    W^(t−k) suggests; right: the relative error of the lag-truncated ∇W against k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for (radius, result), color in zip(
        results.items(), plt.cm.viridis(np.linspace(0, 0.9, len(results)))
    ):
        G_W = result["lags"]["W"]
        lags = np.arange(len(G_W))
        label = f"ρ(W) = {radius:g}, σ₁(W) = {result['sigma_max_W']:.2f}"
        left.semilogy(lags, G_W, color=color, label=label)
        left.semilogy(lags, G_W[0] * radius**lags, color=color, linestyle=":", linewidth=1)
        right.semilogy(
            lags + 1, np.maximum(result["truncation_error"], 1e-17), color=color, label=label
        )
    left.set(
        xlabel="lag j = t − k",
        ylabel="‖G_j(W)‖ (Frobenius)",
        title="lag parts of ∇W (dotted: ‖G₀‖ ρ(W)ʲ)",
    )
    right.set(
        xlabel="truncation length k",
        ylabel="‖trunc(k) − ∇W‖ / ‖∇W‖",
        title="what lag truncation discards",
    )
    left.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.savefig(path, dpi=80)
    plt.close(figure)


@click.command()
@click.option("--backend", "name", default="numpy", show_default=True)
@click.option("--device", default=None)
@click.option(
    "--dtype", type=click.Choice(["float32", "float64"]), default="float64", show_default=True
)
@click.option("--T", "T", default=100, show_default=True, help="Sequence length.")
@click.option("--B", "B", default=4, show_default=True, help="Batch size.")
@click.option("--D", "D", default=8, show_default=True, help="Input size.")
@click.option("--H", "H", default=32, show_default=True, help="Hidden size.")
@click.option("--K", "K", default=10, show_default=True, help="Classes.")
@click.option(
    "--radius", default=0.9, show_default=True, help="Spectral radius of W for the table."
)
@click.option("--seed", default=0, show_default=True)
@click.option("--max-lag", default=20, show_default=True, help="Lags in the table (and the plot).")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help=f"Also draw ‖G_j(W)‖ and the truncation error for radii {', '.join(map(str, PLOT_RADII))} "
    "into this PNG (needs matplotlib: pip install 'rnnspec[bench]').",
)
def flow(name, device, dtype, T, B, D, H, K, radius, seed, max_lag, plot_path):
    """Gradient flow on a random problem (SPEC.md §10): the Frobenius norm of each lag's part G_j
    of the gradient, the mean Jacobian norm ‖∂h(T)/∂h(T−j)‖₂, and how far the lag-truncated ∇W
    is from the full one; then σ₁(W) and the regime by Pascanu et al.'s conditions."""
    if plot_path is not None and importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException(f"--plot needs matplotlib: {backends.install_hint('bench')}")
    if dtype == "float64":  # JAX computes float64 only in x64 mode; set before jax is imported
        os.environ.setdefault("JAX_ENABLE_X64", "1")
    backend = backends.load(name, device=device)
    shapes = f"T={T}, B={B}, D={D}, H={H}, K={K}, seed {seed}, {backend.name} {dtype}"
    result = measure(backend, problem(backend, dtype, T, B, D, H, K, radius, seed), max_lag)
    console.print(table(result, f"gradient flow: ρ(W) = {radius:g}, {shapes}"))
    console.print(
        f"σ₁(W) = {result['sigma_max_W']:.4g}, ρ(W) = {result['spectral_radius_W']:.4g}: "
        f"{result['regime']}",
        highlight=False,
    )
    if plot_path is not None:
        results = {
            r: measure(backend, problem(backend, dtype, T, B, D, H, K, r, seed), max_lag)
            for r in PLOT_RADII
        }
        plot(results, plot_path, f"gradient flow, {shapes}")
        console.print(f"wrote {plot_path}")
