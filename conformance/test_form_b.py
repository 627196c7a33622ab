"""SPEC.md §3: gradients (form B, the backward recursion) against spec.reference."""

import pytest

from rnnspec.conformance.assertions import assert_matches_reference
from rnnspec.conformance.cases import CASES

pytestmark = pytest.mark.rnnspec_group("form B (BPTT)")


@pytest.mark.parametrize("name", CASES)
def test_gradients(backend, dtype, name, call):
    case = CASES[name]
    result = backend.gradients(*case.native(backend, dtype), **case.model_argument())
    assert_matches_reference(result, call("gradients", case, dtype))
