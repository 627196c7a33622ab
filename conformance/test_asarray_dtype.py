"""SPEC.md §8 (`asarray(array, dtype=None)`: "a native copy of a NumPy array on `device`,
optionally cast"): the cast. test_protocol.py checks the copies with dtype=None only, and the golden
vectors, loaded through asarray(array, dtype), still match in float32 when the cast is ignored and
the backend computes in float64. (Found by mutation testing, docs/mutation.md: `asarray` with its
dtype argument dropped survived the suite.)"""

import numpy as np
import pytest

pytestmark = pytest.mark.rnnspec_group("protocol")

OTHER = {"float32": "float64", "float64": "float32"}


def test_asarray_casts_to_the_dtype_asked_for(backend, dtype):
    source = np.linspace(-1, 1, 6, dtype=OTHER[dtype]).reshape(2, 3)
    for asked in (dtype, np.dtype(dtype)):  # a name or a NumPy dtype
        back = backend.to_numpy(backend.asarray(source, asked))
        assert back.dtype == np.dtype(dtype), (
            f"{backend!r}.asarray(<{source.dtype} array>, {asked!r}) gave {back.dtype}, "
            f"expected {dtype}"
        )
        assert np.array_equal(back, source.astype(dtype))
    classes = np.array([[0, 2], [1, 0]], np.int64)  # dtype=None keeps integers integers
    assert backend.to_numpy(backend.asarray(classes)).dtype.kind in "iu"
