"""The framework's own automatic differentiation on the same forward agrees with the closed form
(both against the reference); not applicable where the backend declares none (NumPy)."""

import pytest

from rnnspec.conformance.assertions import assert_matches_reference
from rnnspec.conformance.cases import CASES

pytestmark = [pytest.mark.rnnspec_group("autodiff"), pytest.mark.rnnspec_requires("autodiff")]


@pytest.mark.parametrize("name", CASES)
def test_autodiff_gradients(backend, dtype, name, call):
    case = CASES[name]
    result = backend.autodiff_gradients(*case.native(backend, dtype), **case.model_argument())
    assert_matches_reference(result, call("autodiff_gradients", case, dtype))
