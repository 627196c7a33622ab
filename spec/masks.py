"""Masks for variable-length sequences (SPEC.md §9): m(t)[n] is True where sequence n has step t."""

import numpy as np

from rnnspec.spec.errors import SpecError

PADDINGS = ("right", "left")


def lengths_to_mask(lengths, T: int, padding: str = "right") -> np.ndarray:
    """The (T, B) boolean mask of sequences of the given lengths in a batch of T steps.

    ``padding="right"``: sequence n occupies steps 1..lengths[n] (padding after it, as torch's
    ``pack_padded_sequence`` and flax's ``seq_lengths`` expect); ``"left"``: the last lengths[n]
    steps (padding before it). A length of 0 is a sequence with no step at all. The mask is NumPy;
    a backend takes it as ``backend.asarray(mask)``.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        raise SpecError(
            f"lengths: expected a 1-d array of integers, got {lengths.dtype} of shape "
            f"{lengths.shape}"
        )
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 1:
        raise SpecError(f"T: expected an integer >= 1, got {T!r}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > T):
        raise SpecError(
            f"lengths: expected values in [0, T] = [0, {T}], got values from {lengths.min()} "
            f"to {lengths.max()}"
        )
    if padding not in PADDINGS:
        raise SpecError(f"padding: expected 'right' or 'left', got {padding!r}")
    steps = np.arange(T)[:, None]  # 0-based t − 1
    if padding == "right":
        return steps < lengths[None, :]
    return steps >= T - lengths[None, :]
