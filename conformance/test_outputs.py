"""Every output keeps the inputs' dtype, has the spec's shape, is the backend's own array on its
device (SPEC.md §8), and every call leaves its arguments untouched (§7)."""

import numpy as np
import pytest

from rnnspec.conformance.calls import METHODS, TENSORS, flatten, invoke, shapes
from rnnspec.conformance.cases import CASES
from rnnspec.conformance.plugin import returned
from rnnspec.spec import dtype_name, shape_of

pytestmark = pytest.mark.rnnspec_group("dtype/shape/device")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["basic", "soft", "zero_h0"])
def test_outputs_dtype_shape_device(backend, dtype, name, method):
    case = CASES[name]
    outputs = flatten(method, invoke(backend, method, *case.native(backend, dtype), t=2))
    expected_shapes = shapes(method, case.T, case.B, case.D, case.H, case.K)
    for (name, _), out, shape in zip(TENSORS[method], outputs, expected_shapes, strict=True):
        if not returned(backend, name):
            continue
        where = f"{method} -> {name} on case {case.label()}"
        assert backend.is_native(out), (
            f"{where}: {type(out).__name__} is not native on {backend.device}"
        )
        promoted = " (a float64 buffer or constant promotes it)" if dtype == "float32" else ""
        assert dtype_name(out) == dtype, (
            f"{where}: expected dtype {dtype}, got {dtype_name(out)}"
            + (promoted if dtype_name(out) == "float64" else "")
        )
        assert shape_of(out) == shape, f"{where}: expected shape {shape}, got {shape_of(out)}"


@pytest.mark.parametrize("method", METHODS)
def test_inputs_unchanged(backend, dtype, method):
    case = CASES["soft"]
    native = case.native(backend, dtype)
    before = [backend.to_numpy(a) for a in (*native.params, native.x, native.y, native.h0)]
    invoke(backend, method, *native, t=2)
    after = (*native.params, native.x, native.y, native.h0)
    for i, (old, new) in enumerate(zip(before, after)):
        assert np.array_equal(old, backend.to_numpy(new)), f"{method} modified argument #{i}"
        assert getattr(new, "grad", None) is None, f"{method} left .grad on argument #{i}"
