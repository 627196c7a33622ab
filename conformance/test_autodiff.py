"""The framework's own automatic differentiation on the same forward agrees with the closed form
(both against spec.reference); skipped where the framework has none (NumPy)."""

import pytest

from conformance.assertions import Call, assert_matches_reference
from conformance.cases import CASES


@pytest.mark.parametrize("name", CASES)
def test_autodiff_gradients(backend, dtype, name):
    case = CASES[name]
    try:
        result = backend.autodiff_gradients(*case.native(backend, dtype))
    except NotImplementedError as reason:
        pytest.skip(f"{backend.name} has no autodiff: {reason}")
    assert_matches_reference(result, Call(backend, "autodiff_gradients", case, dtype))
