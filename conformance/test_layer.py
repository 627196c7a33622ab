"""SPEC.md §13: the layer alone, without a head, and its vector–Jacobian product for any upstream
gradient, against spec.reference: on one-layer cases (masks included) and on every stacked and
bidirectional case, with upstream gradients that reach the last states only (a loss that reads
h_n alone), some steps only, and every step. The upstream gradients are the caller's and stay
unchanged; bad ones get a SpecError naming them. A backend that does not declare
``capabilities.layer`` has none of these: n/a.
"""

import numpy as np
import pytest

from rnnspec.conformance.assertions import assert_matches_reference
from rnnspec.conformance.calls import invoke
from rnnspec.conformance.cases import COTANGENTS, all_cases, cotangents
from rnnspec.spec import SpecError

pytestmark = [pytest.mark.rnnspec_group("layer"), pytest.mark.rnnspec_requires("layer")]

#: one-layer cases of the kinds the layer meets (h0 omitted, relu, masks), and stacks of each
#: direction and padding, both φ, one to three layers, each in its dtype of the covering design
#: (cases.DESIGNED_DTYPES); the stack checks cover the other configurations
LAYER_CASES = ("basic", "zero_h0", "relu", "masked_gaps", "bi", "deep2_bi", "deep3_left")


def _layer_inputs(backend, case, dtype):
    params, x, _, h0 = case.native(backend, dtype)
    return params._replace(V=None, c=None), x, h0, case.native_mask(backend)


def _native(backend, array):
    return None if array is None else backend.asarray(array)


@pytest.mark.rnnspec_designed(LAYER_CASES)
def test_layer_forward_matches_reference(backend, dtype, name, call):
    case = all_cases()[name]
    params, x, h0, mask = _layer_inputs(backend, case, dtype)
    result = invoke(backend, "layer_forward", params, x, None, h0, mask=mask, model=case.model())
    assert_matches_reference(result, call("layer_forward", case, dtype))


@pytest.mark.parametrize("kind", COTANGENTS)
@pytest.mark.rnnspec_designed(LAYER_CASES)
def test_layer_gradients_match_reference(backend, dtype, name, kind, call):
    case = all_cases()[name]
    params, x, h0, mask = _layer_inputs(backend, case, dtype)
    h_grad, hn_grad = (_native(backend, a) for a in cotangents(case, kind, dtype))
    result = invoke(backend, "layer_gradients", params, x, None, h0, mask=mask,
                    model=case.model(), cotangents=(h_grad, hn_grad))  # fmt: skip
    assert_matches_reference(result, call("layer_gradients", case, dtype, kind))
    for given, original in zip((h_grad, hn_grad), cotangents(case, kind, dtype)):
        if given is not None:  # (13.1) is the caller's: δ is written elsewhere
            np.testing.assert_array_equal(backend.to_numpy(given), original)


@pytest.mark.parametrize("name", ["basic", "deep2_bi"])
def test_bad_upstream_gradients_raise_spec_error(backend, name):
    case = all_cases()[name]
    params, x, h0, _ = _layer_inputs(backend, case, "float64")
    h_grad, hn_grad = cotangents(case, "all")
    model = case.model()
    with pytest.raises(SpecError, match=r"^h_grad: expected shape \(T, B, directions·H\)"):
        backend.layer_gradients(params, x, _native(backend, h_grad[:-1]), h0=h0, model=model)
    with pytest.raises(SpecError, match=r"^hn_grad: expected (rank|shape)"):
        backend.layer_gradients(params, x, _native(backend, h_grad),
                                _native(backend, hn_grad[..., :-1]), h0=h0, model=model)  # fmt: skip
    with pytest.raises(SpecError, match=r"^h_grad: expected dtype float64"):
        backend.layer_gradients(params, x, _native(backend, h_grad.astype(np.float32)), h0=h0,
                                model=model)  # fmt: skip
    infinite = h_grad.copy()
    infinite[0, 0, 0] = np.inf
    with pytest.raises(SpecError, match=r"^h_grad: expected finite values"):
        backend.layer_gradients(params, x, _native(backend, infinite), h0=h0, model=model)
    headed = case.native(backend, "float64").params
    with pytest.raises(SpecError, match=r"^params.V: expected None"):
        backend.layer_gradients(headed, x, _native(backend, h_grad),
                                h0=h0, model=model)  # fmt: skip
