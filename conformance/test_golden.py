"""The committed golden vectors (conformance/vectors/, from spec.reference): every backend is
compared on the very same numbers, whatever environment it runs in."""

import pytest

from rnnspec.conformance import golden
from rnnspec.conformance.assertions import assert_close, assert_finite
from rnnspec.conformance.calls import flatten, invoke
from rnnspec.conformance.cases import CASES
from rnnspec.spec import Params

pytestmark = pytest.mark.rnnspec_group("golden vectors")


def _native_inputs(backend, data, dtype):
    params = Params(*(backend.asarray(data[f"input.params.{f}"], dtype) for f in Params._fields))
    y = data["input.y"]
    y = backend.asarray(y, dtype if y.ndim == 3 else None)
    h0 = backend.asarray(data["input.h0"], dtype) if "input.h0" in data else None
    return params, backend.asarray(data["input.x"], dtype), y, h0


@pytest.mark.parametrize("name", golden.GOLDEN_CASES)
def test_golden_vectors(backend, dtype, name, call):
    data, case = golden.load(name), CASES[name]
    params, x, y, h0 = _native_inputs(backend, data, dtype)
    calls = [(method, None) for method in golden.METHODS]
    calls += [("step_gradients", t) for t in range(1, case.T + 1)]
    for method, t in calls:
        check = call(method, case, dtype, t)
        key = method if t is None else f"{method}.{t}"
        names = [str(n) for n in data[f"{key}.names"]]
        results = flatten(method, invoke(backend, method, params, x, y, h0, t))
        assert len(results) == len(names), f"{key}: {len(results)} results, golden has {names}"
        for got, tensor in zip(results, names):
            want, kappa = data[f"{key}.{tensor}"], float(data[f"{key}.{tensor}.kappa"])
            if not case.finite_only(dtype, tensor):
                oracle = f"rnnspec.conformance.golden.load({name!r})[{key + '.' + tensor!r}]"
                assert_close(got, want, check, tensor, oracle, kappa=kappa)
            else:
                assert_finite(got, check, tensor)
