"""The one tolerance policy (SPEC.md §6): every comparison in the project goes through here.

A computed tensor g passes against its float64 reference r when

    ‖g − r‖ ≤ MARGIN · (u + u₆₄) · √T · max(1, κ) · ‖r‖        (Frobenius norms, whole tensor)

with u the unit roundoff of the computing dtype, u₆₄ that of the float64 reference (whose own
rounding is as large as a float64 backend's) and T the sequence length: the summed loss and its
gradients accumulate O(T) rounding errors that mostly cancel, so the error grows like √T, not T.
κ ≥ 1 is the tensor's measured condition number (:func:`condition_numbers`): 1 for the usual
well-conditioned case, larger where the result is much smaller than the terms it sums (cancellation,
e.g. H = 1 or B = 1) and its rounding errors are amplified accordingly. MARGIN is a documented margin
over the worst ratio measured (SPEC.md §6). Saturated tanh and chaotic recurrences amplify rounding
in ways κ does not see; they are compared in float64 only (finiteness in float32).
"""

import math
from collections.abc import Callable, Sequence

import numpy as np

#: u = 2^-p for a p-bit significand (round to nearest).
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}

#: c in the bound above: 2.2× the worst ratio measured, 29 (SPEC.md §6; `rnnspec calibrate`).
MARGIN = 64.0

#: Central differences f'(θ) ≈ (f(θ + ε) − f(θ − ε)) / 2ε in float64 have truncation error
#: O(ε² |f‴|) and rounding error O(u |f| / ε) per entry; ε = u^(1/3) · max(1, |θ|) balances them
#: at O(u^(2/3)) ≈ 2.3e-11 times the scale of the gradient and of the loss.
FD_STEP = UNIT_ROUNDOFF["float64"] ** (1 / 3)
FD_MARGIN = 10.0


#: Relative size of the input perturbations that measure κ: far above float64 rounding (so the
#: measurement is clean) and small enough that the response is linear.
CONDITION_STEP = 2.0**-20


def bound(dtype: str, T: int, kappa: float = 1.0, shards: int = 1) -> float:
    """The relative bound MARGIN · (u + u₆₄) · √(T + S − 1) · max(1, κ) for a tensor computed in
    ``dtype`` and compared with the float64 reference, whose own rounding (u₆₄) counts too.

    S = ``shards`` > 1 for a sum over S shards of the batch (SPEC.md §11.5): the S − 1 additions
    that combine the shards' partial sums round like S − 1 more steps.
    """
    u = UNIT_ROUNDOFF[dtype] + UNIT_ROUNDOFF["float64"]
    return MARGIN * u * math.sqrt(T + shards - 1) * max(1.0, kappa)


def fd_bound(grad: np.ndarray, loss: float) -> float:
    """The absolute bound on ‖fd − grad‖ for float64 central differences of a scalar loss:
    FD_MARGIN · u^(2/3) · (‖grad‖ + √n |loss|), n the number of entries (one rounding each)."""
    scale = float(np.linalg.norm(grad)) + math.sqrt(np.size(grad)) * abs(loss)
    return FD_MARGIN * UNIT_ROUNDOFF["float64"] ** (2 / 3) * scale


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """‖got − ref‖ / ‖ref‖ in float64; 0 when both are zero, inf when only ref is."""
    diff = float(np.linalg.norm(np.asarray(got, np.float64) - np.asarray(ref, np.float64)))
    scale = float(np.linalg.norm(np.asarray(ref, np.float64)))
    if diff == 0.0:
        return 0.0
    if math.isnan(diff):
        return math.inf
    return diff / scale if scale > 0 else math.inf


def ratio(
    got: np.ndarray, ref: np.ndarray, dtype: str, T: int, kappa: float = 1.0, shards: int = 1
) -> float:
    """The error as a fraction of its tolerance: ≤ 1 passes."""
    return relative_error(got, ref) / bound(dtype, T, kappa, shards)


def condition_numbers(
    fn: Callable[..., Sequence[np.ndarray]], args: Sequence, seed: int = 0, trials: int = 2
) -> list[float]:
    """κ of each output of ``fn(*args)`` under relative perturbations of its float inputs.

    For each float input array θ_j in turn (each field of a Params too), κ sums over j the largest,
    over ``trials`` random sign patterns r, of ‖f(θ_j ∘ (1 + ηr)) − f(θ)‖ / (η ‖f(θ)‖), with
    η = CONDITION_STEP, in float64: how far a relative change of size u in the inputs, which is what
    rounding does, moves each output. Perturbing one array at a time keeps the effects of different
    arrays from cancelling each other by chance. Integer inputs (class indices) stay fixed.
    ``fn`` returns a flat sequence of arrays; ``args`` may hold Params (a stack's with tuples of
    arrays, each perturbed on its own) and None.
    """
    rng = np.random.default_rng(seed)
    args = [_float64(a) for a in args]
    leaves = [(i, None, None) for i, a in enumerate(args) if _is_float(a)] + [
        (i, f, k)
        for i, a in enumerate(args)
        if hasattr(a, "_fields")
        for f in a._fields
        for k in (range(len(getattr(a, f))) if isinstance(getattr(a, f), tuple) else [None])
        if getattr(a, f) is not None
    ]  # a stack's Params: every cell's U, W, b on its own (SPEC.md §12)

    def perturbed(i: int, field: str | None, k: int | None) -> list:
        moved = list(args)
        value = moved[i] if field is None else getattr(moved[i], field)
        target = value if k is None else value[k]
        target = target * (1 + CONDITION_STEP * rng.choice([-1.0, 1.0], size=target.shape))
        if k is not None:
            target = (*value[:k], target, *value[k + 1 :])
        moved[i] = target if field is None else moved[i]._replace(**{field: target})
        return moved

    base = [np.asarray(out, np.float64) for out in fn(*args)]
    kappas = np.zeros(len(base))
    for i, field, k in leaves:
        worst = np.zeros(len(base))
        for _ in range(trials):
            moved = fn(*perturbed(i, field, k))
            worst = np.maximum(worst, [relative_error(m, b) for b, m in zip(base, moved)])
        kappas += worst / CONDITION_STEP
    return [float(k) for k in kappas]


def _float64(arg):
    if hasattr(arg, "_fields") or isinstance(arg, tuple):
        converted = (_float64(a) for a in arg)
        return type(arg)(*converted) if hasattr(arg, "_fields") else tuple(converted)
    return np.asarray(arg, np.float64) if _is_float(arg) else arg


def _is_float(arg) -> bool:
    return isinstance(arg, np.ndarray) and np.issubdtype(arg.dtype, np.floating)
