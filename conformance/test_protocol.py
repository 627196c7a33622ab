"""SPEC.md §8: the backend is a Backend of this protocol version, says what it is, and declares
what it can do."""

import numpy as np
import pytest

from rnnspec.spec import AutodiffBackend, Backend, GradientFlowBackend, protocol_problems

pytestmark = pytest.mark.rnnspec_group("protocol")


def test_is_a_backend_of_this_protocol_version(backend):
    problems = protocol_problems(backend)
    assert not problems, f"{backend!r}: " + "; ".join(problems)
    assert isinstance(backend, Backend)
    for attribute in ("name", "device", "framework_version"):
        value = getattr(backend, attribute)
        assert isinstance(value, str) and value, (
            f"{attribute} must be a non-empty string: {value!r}"
        )


def test_declared_autodiff_is_there(backend):
    """capabilities.autodiff is what the suite trusts to skip or run the autodiff checks."""
    assert backend.capabilities.autodiff == isinstance(backend, AutodiffBackend), (
        f"{backend!r}: capabilities.autodiff = {backend.capabilities.autodiff}, but "
        f"autodiff_gradients is {'present' if hasattr(backend, 'autodiff_gradients') else 'absent'}"
    )


def test_declared_gradient_flow_is_there(backend):
    """capabilities.gradient_flow is what the suite trusts to skip or run the flow checks."""
    declared = getattr(backend.capabilities, "gradient_flow", False)
    assert declared == isinstance(backend, GradientFlowBackend), (
        f"{backend!r}: capabilities.gradient_flow = {declared}, but the methods of SPEC.md §10 are "
        f"{'present' if isinstance(backend, GradientFlowBackend) else 'absent'}"
    )


def test_asarray_and_to_numpy_copy_both_ways(backend, dtype):
    source = np.arange(6, dtype=dtype).reshape(2, 3)
    native = backend.asarray(source)
    source[0, 0] = 99  # asarray copied: the native array does not see this
    back = backend.to_numpy(native)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3) and back[0, 0] == 0
    back[0, 1] = 99  # to_numpy copied: the native array does not see this either
    assert backend.to_numpy(native)[0, 1] == 1
    assert backend.is_native(native)
    assert not backend.is_native(source.tolist())
