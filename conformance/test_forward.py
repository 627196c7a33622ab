"""SPEC.md §1: the forward pass and the loss against spec.reference."""

import pytest

from rnnspec.conformance.assertions import assert_matches_reference
from rnnspec.conformance.cases import CASES

pytestmark = pytest.mark.rnnspec_group("forward & loss")


@pytest.mark.rnnspec_requires("forward")
@pytest.mark.parametrize("name", CASES)
def test_forward(backend, dtype, name, call):
    case = CASES[name]
    params, x, _, h0 = case.native(backend, dtype)
    result = backend.forward(params, x, h0=h0, **case.model_argument())
    assert_matches_reference(result, call("forward", case, dtype))


@pytest.mark.parametrize("name", CASES)
def test_loss(backend, dtype, name, call):
    case = CASES[name]
    result = backend.loss(*case.native(backend, dtype), **case.model_argument())
    assert_matches_reference(result, call("loss", case, dtype))
