"""SPEC.md §8: a backend that does not declare stacks refuses a stacked model, and one that does not
declare the layer alone refuses layer_forward and layer_gradients, with the same SpecError
naming what it lacks (spec.validate_declared); never a one-layer answer to a stacked question."""

import pytest

from rnnspec import plain
from rnnspec.conformance.cases import CASES, STACKED_CASES, native_params
from rnnspec.spec import Capabilities, SpecError, validate_declared
from tests import wrong_backends
from tests.test_plain import example

CASE = STACKED_CASES["deep2_bi"]
REFUSED = (
    r"^model: expected one layer in one direction \(the .* backend does not declare "
    r"capabilities\.stacks\)"
)


def _inputs(backend):
    params, x, y, h0 = CASE.arrays("float64")
    return (
        native_params(backend, params),
        backend.asarray(x),
        backend.asarray(y),
        backend.asarray(h0),
    )


def test_a_built_in_kind_of_backend_without_stacks_refuses_a_network():
    backend = wrong_backends.no_masks()  # a 2.1-style backend: it declares no stacks
    assert not backend.capabilities.stacks
    params, x, y, h0 = _inputs(backend)
    with pytest.raises(SpecError, match=REFUSED):
        backend.gradients(params, x, y, h0=h0, model=CASE.model())
    one_layer, x1, _, _ = CASES["basic"].native(backend, "float64")
    with pytest.raises(SpecError, match=r"does not declare capabilities\.layer"):
        backend.layer_forward(one_layer._replace(V=None, c=None), x1)


def test_a_plain_function_refuses_a_network():
    function, conventions = example("batch_rows")
    backend = plain.backend(function, conventions)
    params, x, y, _ = _inputs(backend)
    with pytest.raises(SpecError, match=REFUSED):
        backend.gradients(params, x, y, model=CASE.model())


def test_the_refusal_can_fail():
    """A backend that declares stacks is not refused: the check above tells the two apart."""
    declared = Capabilities(autodiff=False, stacks=True, layer=True)
    assert validate_declared(CASE.model(), declared, "declared", head=False) == CASE.model()
    with pytest.raises(SpecError, match=REFUSED):
        validate_declared(CASE.model(), Capabilities(autodiff=False), "undeclared")
