"""The one tolerance policy (SPEC.md §6): every comparison in the project goes through here.

A computed tensor g passes against its float64 reference r when

    ‖g − r‖ ≤ MARGIN · u · √T · ‖r‖        (Frobenius norms over the whole tensor)

with u the unit roundoff of the computing dtype and T the sequence length: the summed loss and its
gradients accumulate O(T) rounding errors that mostly cancel, so the error grows like √T, not T.
MARGIN is a documented margin over the worst ratio measured (SPEC.md §6 gives the measurements).
This holds for contractive recurrences only; chaotic ones are compared in float64 or on short T.
"""

import math

import numpy as np

#: u = 2^-p for a p-bit significand (round to nearest).
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}

#: c in the bound above. Worst measured ‖g − r‖ / (u √T ‖r‖) is below 3 in float32 (SPEC.md §6).
MARGIN = 10.0

#: Central differences f'(θ) ≈ (f(θ + ε) − f(θ − ε)) / 2ε in float64 have truncation error O(ε²)
#: and rounding error O(u/ε); ε = u^(1/3) balances them at O(u^(2/3)) ≈ 4e-11, relative.
FD_STEP = UNIT_ROUNDOFF["float64"] ** (1 / 3)
FD_MARGIN = 100.0


def bound(dtype: str, T: int) -> float:
    """The relative bound MARGIN · u · √T for a tensor computed in ``dtype`` over T steps."""
    return MARGIN * UNIT_ROUNDOFF[dtype] * math.sqrt(T)


def fd_bound() -> float:
    """The relative bound for float64 central differences, FD_MARGIN · u^(2/3)."""
    return FD_MARGIN * UNIT_ROUNDOFF["float64"] ** (2 / 3)


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """‖got − ref‖ / ‖ref‖ in float64; 0 when both are zero, inf when only ref is."""
    diff = float(np.linalg.norm(np.asarray(got, np.float64) - np.asarray(ref, np.float64)))
    scale = float(np.linalg.norm(np.asarray(ref, np.float64)))
    if diff == 0.0:
        return 0.0
    if math.isnan(diff):
        return math.inf
    return diff / scale if scale > 0 else math.inf


def ratio(got: np.ndarray, ref: np.ndarray, dtype: str, T: int) -> float:
    """The error as a fraction of its tolerance: ≤ 1 passes."""
    return relative_error(got, ref) / bound(dtype, T)
