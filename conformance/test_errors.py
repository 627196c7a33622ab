"""SPEC.md §7: bad input raises spec.SpecError naming the argument, the expected and the received
shape or dtype, with the same message on every backend (the one spec.validate gives for the same
NumPy arrays), and leaves the caller's arrays unchanged."""

import re

import numpy as np
import pytest

from rnnspec.conformance.bad_inputs import bad_inputs
from rnnspec.conformance.calls import ARGUMENTS, METHODS, invoke
from rnnspec.conformance.cases import CASES
from rnnspec.spec import Params, SpecError, validate

pytestmark = pytest.mark.rnnspec_group("bad input")


def _native(backend, array):
    return None if array is None else backend.asarray(array)


def _takes(method: str, bad: str) -> bool:
    """Whether the method takes the argument a bad input is about (forward takes no y, and only
    step_gradients takes t)."""
    argument = bad.split(" ")[0]
    return argument not in ("y", "t") or argument in ARGUMENTS[method]


@pytest.mark.parametrize(
    ("bad", "method"),
    [(bad, method) for bad in bad_inputs("float64") for method in METHODS if _takes(method, bad)],
)
def test_bad_input_raises_spec_error(backend, dtype, bad, method):
    edit, message_start = bad_inputs(dtype)[bad]
    params, x, y, h0 = CASES["basic"].arrays(dtype)
    params, x, y, h0, t = edit(params, x, y, h0, 1)
    with pytest.raises(SpecError) as spec_says:  # the spec's own message for the NumPy arrays
        validate(
            params,
            x,
            None if method == "forward" else y,
            h0,
            t if method == "step_gradients" else None,
        )
    assert str(spec_says.value).startswith(message_start), str(spec_says.value)

    native_params = (
        Params(*(_native(backend, a) for a in params))
        if isinstance(params, Params)
        else [_native(backend, a) for a in params]
    )
    native = native_x, native_y, native_h0 = [_native(backend, a) for a in (x, y, h0)]
    before = [backend.to_numpy(a) for a in (*native_params, *native) if a is not None]
    with pytest.raises(SpecError) as backend_says:
        invoke(backend, method, native_params, native_x, native_y, native_h0, t=t)
    assert str(backend_says.value) == str(spec_says.value), (
        f"{backend.name}.{method} on {bad!r}: expected the spec's message "
        f"{str(spec_says.value)!r}, got {str(backend_says.value)!r}"
    )
    after = [backend.to_numpy(a) for a in (*native_params, *native) if a is not None]
    for i, (old, new) in enumerate(zip(before, after)):
        assert np.array_equal(old, new, equal_nan=old.dtype.kind == "f"), f"argument #{i} changed"


@pytest.mark.parametrize(
    ("arg", "method"),
    [pytest.param(arg, method, marks=[pytest.mark.rnnspec_requires("initial_state")] * (arg == "h0"))
     for arg in ("x", "y", "h0", "params.W") for method in METHODS if _takes(method, arg)],
)  # fmt: skip
def test_foreign_arrays_are_rejected(backend, dtype, method, arg):
    """A list, or a NumPy array given to a backend whose arrays are not NumPy's, is a SpecError
    that names the argument, not an AttributeError from deep inside the framework."""
    params, x, y, h0 = CASES["basic"].native(backend, dtype)
    value = {"x": x, "y": y, "h0": h0, "params.W": params.W}[arg]
    foreigners = [backend.to_numpy(value).tolist()]
    if not backend.is_native(backend.to_numpy(value)):
        foreigners.append(backend.to_numpy(value))
    for foreign in foreigners:
        args = {"x": x, "y": y, "h0": h0, "params": params}
        if arg == "params.W":
            args["params"] = params._replace(W=foreign)
        else:
            args[arg] = foreign
        with pytest.raises(SpecError, match=rf"^{re.escape(arg)}: expected an array"):
            invoke(backend, method, **args, t=1)
