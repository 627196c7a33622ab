"""SPEC.md §3: gradients (form B, the backward recursion) against spec.reference."""

import pytest

from conformance.assertions import Call, assert_matches_reference
from conformance.cases import CASES


@pytest.mark.parametrize("name", CASES)
def test_gradients(backend, dtype, name):
    case = CASES[name]
    result = backend.gradients(*case.native(backend, dtype))
    assert_matches_reference(result, Call(backend, "gradients", case, dtype))
