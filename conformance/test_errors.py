"""SPEC.md §7: bad input raises spec.SpecError naming the argument, the expected and the received
shape or dtype, with the same message on every backend (the one spec.validate gives for the same
NumPy arrays), and leaves the caller's arrays unchanged."""

import re

import numpy as np
import pytest

from rnnspec.conformance.calls import METHODS, invoke
from rnnspec.conformance.cases import CASES
from rnnspec.spec import Params, SpecError, validate

pytestmark = pytest.mark.rnnspec_group("bad input")

OTHER = {"float32": "float64", "float64": "float32"}


def _soft(case, dtype, K=None):
    return np.full((case.T, case.B, K or case.K), 0.25, dtype)


def _bad_inputs(dtype):
    """name -> (edit of the basic case's (params, x, y, h0, t), the start of the message)."""
    case = CASES["basic"]
    T, _B, K = case.T, case.B, case.K

    def with_param(field, edit):
        return lambda p, x, y, h0, t: (p._replace(**{field: edit(getattr(p, field))}), x, y, h0, t)

    def set_y(value):
        def edit(p, x, y, h0, t):
            y = y.copy()
            y[0, 0] = value
            return p, x, y, h0, t

        return edit

    def soft_with(value):
        def edit(p, x, y, h0, t):
            y = _soft(case, dtype)
            y[0, 0, 0] = value
            return p, x, y, h0, t

        return edit

    return {
        "params not Params": (lambda p, x, y, h0, t: (list(p), x, y, h0, t), "params: expected"),
        "x rank 2": (lambda p, x, y, h0, t: (p, x[0], y, h0, t), "x: expected rank 3"),
        "x integer": (
            lambda p, x, y, h0, t: (p, x.astype(np.int32), y, h0, t),
            "x: expected dtype",
        ),
        "T = 0": (lambda p, x, y, h0, t: (p, x[:0], y[:0], h0, t), "x: expected shape"),
        "B = 0": (lambda p, x, y, h0, t: (p, x[:, :0], y[:, :0], h0[:0], t), "x: expected shape"),
        "U wrong D": (with_param("U", lambda a: a[:, :-1]), "params.U: expected shape (H, D)"),
        "W not square": (with_param("W", lambda a: a[:, :-1]), "params.W: expected shape (H, H)"),
        "b wrong H": (with_param("b", lambda a: a[:-1]), "params.b: expected shape (H,)"),
        "V wrong H": (with_param("V", lambda a: a[:, :-1]), "params.V: expected shape (K, H)"),
        "c wrong K": (with_param("c", lambda a: a[:-1]), "params.c: expected shape (K,)"),
        "W mixed dtype": (
            with_param("W", lambda a: a.astype(OTHER[dtype])),
            "params.W: expected dtype",
        ),
        "h0 wrong B": (lambda p, x, y, h0, t: (p, x, y, h0[:-1], t), "h0: expected shape (B, H)"),
        "h0 rank 1": (lambda p, x, y, h0, t: (p, x, y, h0[0], t), "h0: expected rank 2"),
        "h0 mixed dtype": (
            lambda p, x, y, h0, t: (p, x, y, h0.astype(OTHER[dtype]), t),
            "h0: expected dtype",
        ),
        "y wrong T": (lambda p, x, y, h0, t: (p, x, y[:-1], h0, t), "y: expected shape (T, B)"),
        "y index K": (set_y(K), "y: expected class indices in [0, K)"),
        "y index -1": (set_y(-1), "y: expected class indices in [0, K)"),
        "y soft wrong K": (
            lambda p, x, y, h0, t: (p, x, _soft(case, dtype, K + 1), h0, t),
            "y: expected shape (T, B, K)",
        ),
        "y soft negative": (soft_with(-0.5), "y: expected non-negative"),
        "y soft NaN": (soft_with(np.nan), "y: expected finite"),
        "y soft mixed dtype": (
            lambda p, x, y, h0, t: (p, x, _soft(case, OTHER[dtype]), h0, t),
            "y: expected dtype",
        ),
        "t = 0": (
            lambda p, x, y, h0, t: (p, x, y, h0, 0),
            "t: expected an integer with 1 <= t <= T",
        ),
        "t = T + 1": (
            lambda p, x, y, h0, t: (p, x, y, h0, T + 1),
            "t: expected an integer with 1 <= t <= T",
        ),
    }


def _native(backend, array):
    return None if array is None else backend.asarray(array)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad", list(_bad_inputs("float64")))
def test_bad_input_raises_spec_error(backend, dtype, bad, method):
    edit, message_start = _bad_inputs(dtype)[bad]
    params, x, y, h0 = CASES["basic"].arrays(dtype)
    params, x, y, h0, t = edit(params, x, y, h0, 1)
    if method == "forward" and (bad.startswith("y ") or bad.startswith("t ")):
        pytest.skip("forward takes neither y nor t")
    if method != "step_gradients" and bad.startswith("t "):
        pytest.skip("only step_gradients takes t")
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
    native = [native_params, _native(backend, x), _native(backend, y), _native(backend, h0)]
    before = [backend.to_numpy(a) for a in (*native_params, *native[1:]) if a is not None]
    with pytest.raises(SpecError) as backend_says:
        invoke(backend, method, *native, t=t)
    assert str(backend_says.value) == str(spec_says.value), (
        f"{backend.name}.{method} on {bad!r}: expected the spec's message "
        f"{str(spec_says.value)!r}, got {str(backend_says.value)!r}"
    )
    after = [backend.to_numpy(a) for a in (*native_params, *native[1:]) if a is not None]
    for i, (old, new) in enumerate(zip(before, after)):
        assert np.array_equal(old, new, equal_nan=old.dtype.kind == "f"), f"argument #{i} changed"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arg", ["x", "y", "h0", "params.W"])
def test_foreign_arrays_are_rejected(backend, dtype, method, arg):
    """A list, or a NumPy array given to a backend whose arrays are not NumPy's, is a SpecError
    that names the argument, not an AttributeError from deep inside the framework."""
    if method == "forward" and arg == "y":
        pytest.skip("forward takes no y")
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
