"""The committed golden vectors (conformance/vectors/, from spec.reference): every backend is
compared on the very same numbers, whatever environment it runs in."""

import pytest

from conformance import golden
from conformance.assertions import Call, assert_close, assert_finite, flatten
from conformance.cases import CASES
from spec import Params


def _native_inputs(backend, data, dtype):
    params = Params(*(backend.asarray(data[f"input.params.{f}"], dtype) for f in Params._fields))
    y = data["input.y"]
    y = backend.asarray(y, dtype if y.ndim == 3 else None)
    h0 = backend.asarray(data["input.h0"], dtype) if "input.h0" in data else None
    return params, backend.asarray(data["input.x"], dtype), y, h0


@pytest.mark.parametrize("name", golden.GOLDEN_CASES)
def test_golden_vectors(backend, dtype, name):
    data, case = golden.load(name), CASES[name]
    params, x, y, h0 = _native_inputs(backend, data, dtype)
    calls = [
        ("forward", None, lambda: backend.forward(params, x, h0=h0)),
        ("loss", None, lambda: backend.loss(params, x, y, h0=h0)),
        ("gradients", None, lambda: backend.gradients(params, x, y, h0=h0)),
    ] + [
        ("step_gradients", t, lambda t=t: backend.step_gradients(params, x, y, t, h0=h0))
        for t in range(1, case.T + 1)
    ]
    for method, t, run in calls:
        call = Call(backend, method, case, dtype, t)
        key = method if t is None else f"{method}.{t}"
        names = [str(n) for n in data[f"{key}.names"]]
        results = flatten(method, run())
        assert len(results) == len(names), f"{key}: {len(results)} results, golden has {names}"
        for got, tensor in zip(results, names):
            want, kappa = data[f"{key}.{tensor}"], float(data[f"{key}.{tensor}.kappa"])
            if not case.finite_only(dtype, tensor):
                oracle = f"conformance.golden.load({name!r})[{key + '.' + tensor!r}]"
                assert_close(got, want, call, tensor, oracle, kappa=kappa)
            else:
                assert_finite(got, call, tensor)
