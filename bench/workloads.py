"""The benchmark's workloads, their FLOP counts and their inputs."""

from typing import NamedTuple

import numpy as np

from rnnspec.spec import Params


class Workload(NamedTuple):
    name: str
    T: int
    B: int
    D: int
    H: int
    K: int

    def forward_flops(self) -> int:
        """2·T·B·(H·D + H·H + K·H): the three matrix products of the forward pass."""
        return 2 * self.T * self.B * (self.H * self.D + self.H * self.H + self.K * self.H)

    def flops(self) -> int:
        """Loss and every gradient: the backward pass does twice the forward's products."""
        return 3 * self.forward_flops()

    def prefix(self, T: int) -> "Workload":
        return self._replace(T=T)


WORKLOADS = {
    w.name: w
    for w in (
        Workload("small", T=50, B=32, D=32, H=64, K=32),
        Workload("medium", T=100, B=64, D=128, H=256, K=128),
        Workload("long", T=1000, B=16, D=64, H=128, K=64),
        Workload("wide", T=20, B=128, D=512, H=1024, K=512),
    )
}
QUICK = ("small", "medium")
#: the workload whose peak memory is measured (at T and at T/2, to show it is linear in T)
MEMORY_WORKLOAD = "long"


def inputs(w: Workload, dtype: str, seed: int = 0):
    """(params, x, y, h0) as NumPy arrays; y holds int64 class indices.

    Every value is rounded through float32, so both dtypes see the very same numbers and one float64
    reference checks both. W has spectral radius ≈ 0.9 (circular law for N(0, 0.81/H) entries):
    a contractive recurrence, tanh unsaturated, as in real training.
    """
    rng = np.random.default_rng(seed)
    T, B, D, H, K = w.T, w.B, w.D, w.H, w.K
    params = Params(
        U=rng.standard_normal((H, D)) / np.sqrt(D),
        W=0.9 * rng.standard_normal((H, H)) / np.sqrt(H),
        b=0.1 * rng.standard_normal(H),
        V=rng.standard_normal((K, H)) / np.sqrt(H),
        c=0.1 * rng.standard_normal(K),
    )
    x = rng.standard_normal((T, B, D))
    h0 = 0.5 * rng.standard_normal((B, H))
    y = rng.integers(0, K, size=(T, B))

    def cast(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32).astype(dtype)

    return Params(*map(cast, params)), cast(x), y, cast(h0)
