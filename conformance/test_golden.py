"""The committed golden vectors (conformance/vectors/, from spec.reference): every backend is
compared on the very same numbers, whatever environment it runs in."""

import pytest

from rnnspec.conformance import golden
from rnnspec.conformance.assertions import assert_matches_vectors
from rnnspec.conformance.cases import CASES

pytestmark = pytest.mark.rnnspec_group("golden vectors")


@pytest.mark.rnnspec_fixed_inputs
@pytest.mark.parametrize("name", golden.GOLDEN_CASES)
def test_golden_vectors(backend, dtype, name, call):
    assert_matches_vectors(backend, name, CASES[name], dtype, call)
