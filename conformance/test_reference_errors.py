"""SPEC.md §7 for the oracle itself: spec.reference rejects every bad input of bad_inputs.py with
the spec.validate message, as the backends must. Every other check calls the reference on valid
cases only, where a reference that validated less (an argument left out of its validate call)
would pass unseen. Backend-independent. (Found by mutation testing, docs/mutation.md.)"""

import numpy as np
import pytest

from rnnspec.conformance.bad_inputs import bad_inputs
from rnnspec.conformance.cases import CASES, STACKED_CASES, cotangents
from rnnspec.conformance.test_flow import BAD_LENGTHS
from rnnspec.spec import SpecError, reference, reference_flow, validate, validate_cotangents

pytestmark = pytest.mark.rnnspec_group("bad input")

#: reference function -> (the arguments it takes among params, x, y, t; h0 is a keyword)
CALLS = {
    "forward": ("params", "x"),
    "loss": ("params", "x", "y"),
    "gradients": ("params", "x", "y"),
    "step_gradients": ("params", "x", "y", "t"),
    "step_loss": ("params", "x", "y", "t"),
}


@pytest.mark.parametrize(
    ("bad", "function"),
    [
        (bad, function)
        for bad in bad_inputs("float64")
        for function, takes in CALLS.items()
        if bad.split(" ")[0] not in ("y", "t") or bad.split(" ")[0] in takes
    ],
)
def test_reference_rejects_bad_input(bad, function):
    edit, _ = bad_inputs("float64")[bad]
    params, x, y, h0 = CASES["basic"].arrays("float64")
    params, x, y, h0, t = edit(params, x, y, h0, 1)
    given = {"params": params, "x": x, "y": y, "t": t}
    takes = CALLS[function]
    with pytest.raises(SpecError) as spec_says:
        validate(params, x, y if "y" in takes else None, h0, t if "t" in takes else None)
    with pytest.raises(SpecError) as reference_says:
        getattr(reference, function)(*(given[a] for a in takes), h0=h0)
    assert str(reference_says.value) == str(spec_says.value), (
        f"reference.{function} on {bad!r}: expected the spec's message "
        f"{str(spec_says.value)!r}, got {str(reference_says.value)!r}"
    )


#: masks the spec rejects (SPEC.md §9): the shape, the layout, the dtype
BAD_MASKS = {
    "wrong T": lambda mask: mask[:-1],
    "batch-major": lambda mask: mask.T.copy(),
    "integer 0/1": lambda mask: mask.astype(int),
}


@pytest.mark.parametrize("function", CALLS)
@pytest.mark.parametrize("bad", BAD_MASKS)
def test_reference_rejects_a_bad_mask(bad, function):
    """The same for masks: a reference that dropped the mask from its validate call would read
    a (B, T) or integer mask as it comes."""
    params, x, y, h0 = CASES["basic"].arrays("float64")
    mask = BAD_MASKS[bad](CASES["basic"].arrays("float64").x[..., 0] > 0)
    given = {"params": params, "x": x, "y": y, "t": 1}
    takes = CALLS[function]
    with pytest.raises(SpecError) as spec_says:
        validate(params, x, y if "y" in takes else None, h0, mask=mask)
    with pytest.raises(SpecError) as reference_says:
        getattr(reference, function)(*(given[a] for a in takes), h0=h0, mask=mask)
    assert str(reference_says.value) == str(spec_says.value)


#: reference_flow function -> the arguments it takes among params, x, y (SPEC.md §10)
FLOW_CALLS = {
    "lag_gradients": ("params", "x", "y"),
    "lag_norms": ("params", "x", "y"),
    "truncated_gradients": ("params", "x", "y", 2),
    "tbptt_gradients": ("params", "x", "y", 2, 2),
    "jacobian_norms": ("params", "x"),
}


@pytest.mark.parametrize(
    ("bad", "function"),
    [
        (bad, function)
        for bad in bad_inputs("float64")
        for function, takes in FLOW_CALLS.items()
        if bad.split(" ")[0] not in ("y", "t") or (bad.split(" ")[0] == "y" and "y" in takes)
    ],
)
def test_reference_flow_rejects_bad_input(bad, function):
    """The same for rnnspec.spec.reference_flow, the gradient-flow oracle."""
    edit, _ = bad_inputs("float64")[bad]
    params, x, y, h0 = CASES["basic"].arrays("float64")
    params, x, y, h0, _ = edit(params, x, y, h0, 1)
    given: dict[str | int, object] = {"params": params, "x": x, "y": y}
    takes = FLOW_CALLS[function]
    with pytest.raises(SpecError) as spec_says:
        validate(params, x, y if "y" in takes else None, h0)
    with pytest.raises(SpecError) as reference_says:
        getattr(reference_flow, function)(*(given.get(a, a) for a in takes), h0=h0)
    assert str(reference_says.value) == str(spec_says.value)


@pytest.mark.parametrize("bad", BAD_LENGTHS)
def test_reference_flow_rejects_bad_lengths(bad):
    """Truncation lengths: the message every backend gives (test_flow's table)."""
    function, lengths, keywords, message = BAD_LENGTHS[bad]
    params, x, y, h0 = CASES["basic"].arrays("float64")
    with pytest.raises(SpecError) as raised:
        getattr(reference_flow, function)(params, x, y, *lengths, h0=h0, **keywords)
    assert str(raised.value) == message


def _layer_bad_inputs():
    """(what is wrong, edit of (params, h0, mask, hn_grad)) for the layer alone on deep2_bi."""
    return {
        "h0 of one cell": lambda p, h0, m, gn: (p, h0[0], m, gn),
        "batch-major mask": lambda p, h0, m, gn: (p, h0, m.T.copy(), gn),
        "integer mask": lambda p, h0, m, gn: (p, h0, m.astype(int), gn),
        "a head given": lambda p, h0, m, gn: (
            p._replace(V=np.zeros((2, 8)), c=np.zeros(2)),
            h0,
            m,
            gn,
        ),
        "hn_grad of one cell": lambda p, h0, m, gn: (p, h0, m, gn[0]),
    }


@pytest.mark.parametrize(
    ("bad", "function"),
    [
        (bad, function)
        for bad in _layer_bad_inputs()
        for function in ("layer_forward", "layer_gradients")
        if function == "layer_gradients" or not bad.startswith("hn_grad")  # none to forward
    ],
)
def test_reference_layer_rejects_bad_input(bad, function):
    """SPEC.md §13's inputs for the reference's layer alone, on a stack with a mask: each bad one
    gets spec.validate's message (validate_cotangents' for the upstream gradients)."""
    case = STACKED_CASES["deep2_bi"]
    params, x, _, h0 = case.arrays("float64")
    h_grad, hn_grad = cotangents(case, "all")
    model = case.model()
    params, h0, mask, hn_grad = _layer_bad_inputs()[bad](
        params._replace(V=None, c=None), h0, case.mask(), hn_grad
    )
    with pytest.raises(SpecError) as spec_says:
        dims = validate(params, x, h0=h0, mask=mask, model=model, head=False)
        if function == "layer_gradients":
            validate_cotangents(h_grad, hn_grad, dims, model)
    with pytest.raises(SpecError) as reference_says:
        if function == "layer_forward":
            reference.layer_forward(params, x, h0, mask, model)
        else:
            reference.layer_gradients(params, x, h_grad, hn_grad, h0, mask, model)
    assert str(reference_says.value) == str(spec_says.value), (
        f"reference.{function} on {bad!r}: expected the spec's message "
        f"{str(spec_says.value)!r}, got {str(reference_says.value)!r}"
    )
