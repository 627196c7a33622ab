"""rnnspec.spec.lengths_to_mask (SPEC.md §9): lengths to a (T, B) boolean mask, right or left."""

import numpy as np
import pytest

from rnnspec.spec import SpecError, lengths_to_mask


def test_right_and_left_padding():
    right = lengths_to_mask([3, 0, 1], 3)
    assert right.dtype == bool and right.shape == (3, 3)
    assert right.T.astype(int).tolist() == [[1, 1, 1], [0, 0, 0], [1, 0, 0]]
    left = lengths_to_mask(np.array([3, 0, 1]), 3, padding="left")
    assert left.T.astype(int).tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 1]]


@pytest.mark.parametrize(
    "lengths, T, padding, message",
    [
        ([4], 3, "right", "lengths: expected values in [0, T] = [0, 3], got values from 4 to 4"),
        ([-1], 3, "right", "lengths: expected values in [0, T] = [0, 3], got values from -1 to -1"),
        ([1.5], 3, "right", "lengths: expected a 1-d array of integers, got float64 of shape (1,)"),
        ([[1]], 3, "right", "lengths: expected a 1-d array of integers, got int64 of shape (1, 1)"),
        ([1], 0, "right", "T: expected an integer >= 1, got 0"),
        ([1], 3, "middle", "padding: expected 'right' or 'left', got 'middle'"),
    ],
)
def test_bad_arguments(lengths, T, padding, message):
    with pytest.raises(SpecError) as error:
        lengths_to_mask(lengths, T, padding=padding)
    assert str(error.value) == message
