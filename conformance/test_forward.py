"""SPEC.md §1: the forward pass and the loss against spec.reference."""

import pytest

from conformance.assertions import Call, assert_matches_reference
from conformance.cases import CASES


@pytest.mark.parametrize("name", CASES)
def test_forward(backend, dtype, name):
    case = CASES[name]
    params, x, _, h0 = case.native(backend, dtype)
    result = backend.forward(params, x, h0=h0)
    assert_matches_reference(result, Call(backend, "forward", case, dtype))


@pytest.mark.parametrize("name", CASES)
def test_loss(backend, dtype, name):
    case = CASES[name]
    result = backend.loss(*case.native(backend, dtype))
    assert_matches_reference(result, Call(backend, "loss", case, dtype))
