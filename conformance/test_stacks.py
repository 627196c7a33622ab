"""SPEC.md §12: stacked and bidirectional networks, on every method, against spec.reference.

The cases are a covering design (conformance/cases.py, STACKED_CASES): with the one-layer cases,
every pair of φ × layers × directions × mask meets at least once, masks included in both
directions. Each method of §8 on each case in each dtype; form A at every t and its sum, form B,
on the backend itself; the methods of §10, which a network refuses (§12.5); and bad stacks, which
get the same SpecError everywhere. A backend that does not declare ``capabilities.stacks`` has
none of these: n/a.
"""

import numpy as np
import pytest

from rnnspec.conformance import golden
from rnnspec.conformance.assertions import (
    assert_close,
    assert_matches_reference,
    assert_matches_vectors,
)
from rnnspec.conformance.calls import FLOW_METHODS, flatten, invoke
from rnnspec.conformance.cases import STACKED_CASES, cotangents, native_params
from rnnspec.conformance.oracle import expected
from rnnspec.conformance.plugin import declared
from rnnspec.spec import SpecError, validate

pytestmark = [pytest.mark.rnnspec_group("stacks"), pytest.mark.rnnspec_requires("stacks")]

WITH_MODEL = ("forward", "loss", "gradients", "autodiff_gradients")


def _native(backend, case, dtype):
    return (*case.native(backend, dtype), case.native_mask(backend))


@pytest.mark.parametrize("method", WITH_MODEL)
@pytest.mark.rnnspec_designed(STACKED_CASES)
def test_stack_call_matches_reference(backend, dtype, name, method, call):
    case = STACKED_CASES[name]
    params, x, y, h0, mask = _native(backend, case, dtype)
    result = invoke(backend, method, params, x, y, h0, mask=mask, model=case.model())
    assert_matches_reference(result, call(method, case, dtype))


@pytest.mark.rnnspec_requires("step_gradients")
@pytest.mark.rnnspec_designed(STACKED_CASES)
def test_stack_step_gradients_match_reference(backend, dtype, name, call):
    """(12.7) ∇L(t) at every t: through the reverse cells, L(t) reads every step."""
    case = STACKED_CASES[name]
    params, x, y, h0, mask = _native(backend, case, dtype)
    for t in range(1, case.T + 1):
        result = invoke(backend, "step_gradients", params, x, y, h0, t, mask, case.model())
        assert_matches_reference(result, call("step_gradients", case, dtype, t))


@pytest.mark.rnnspec_requires("step_gradients")
@pytest.mark.rnnspec_designed(STACKED_CASES)
def test_stack_steps_sum_to_total(backend, dtype, name, call):
    """(4.1) for a network: Σ_t ∇L(t) = ∇L, both sides computed by the backend."""
    case = STACKED_CASES[name]
    params, x, y, h0, mask = _native(backend, case, dtype)
    steps = [
        flatten(
            "step_gradients",
            invoke(backend, "step_gradients", params, x, y, h0, t, mask, case.model()),
        )
        for t in range(1, case.T + 1)
    ]
    sums = [sum(backend.to_numpy(v).astype(np.float64) for v in column) for column in zip(*steps)]
    want = expected(case, "gradients")
    total = flatten("gradients", invoke(backend, "gradients", params, x, y, h0, mask=mask,
                                        model=case.model()))  # fmt: skip
    for got, summed, tensor, kappa, pick in zip(total, sums, want.names, want.kappas, want.picks):
        oracle = f"sum(backend.step_gradients(params, x, y, t, h0, ...){pick} for t in 1..T)"
        assert_close(got, summed, call("gradients", case, dtype), f"{tensor} against Σ_t", oracle,
                     pick, kappa)  # fmt: skip


@pytest.mark.rnnspec_designed(golden.STACKED_GOLDEN_CASES)
def test_stack_golden_vectors(backend, dtype, name, call):
    """The committed vectors of every configuration (conformance/vectors/), mask included."""
    assert_matches_vectors(backend, name, STACKED_CASES[name], dtype, call)


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_gradient_flow_refuses_a_network(backend, method):
    """§12.5: §10's lags are the one-layer network's; a network gets a SpecError naming model."""
    if not declared(backend, [method]):
        pytest.skip(f"{backend.name} declares no gradient flow")
    case = STACKED_CASES["deep2"]
    params, x, y, h0 = case.native(backend, "float64")
    t = (2, 3) if method == "tbptt_gradients" else (2 if method == "truncated_gradients" else None)
    with pytest.raises(SpecError, match=r"^model: expected one layer in one direction"):
        invoke(backend, method, params, x, y, h0, t, model=case.model())


def _bad_stacks(case):
    """(what is wrong, edit of the NumPy inputs, the start of the message)."""
    params, _, _, h0 = case.arrays("float64")
    R = case.model().directions
    three_cells = params._replace(U=params.U[:3], W=params.W[:3], b=params.b[:3])
    upper_wide = params._replace(U=(*params.U[:R], params.U[R][:, :-1], *params.U[R + 1 :]))
    return {
        "a cell missing": (three_cells, h0, "params.U: expected a tuple of layers × directions"),
        "arrays for a stack": (
            params._replace(U=params.U[0], W=params.W[0], b=params.b[0]),
            h0,
            "params.U: expected a tuple of layers × directions",
        ),
        "layer 2's U too narrow": (upper_wide, h0, f"params.U[{R}]: expected shape (H, D)"),
        "V of one direction": (
            params._replace(V=params.V[:, : case.H]),
            h0,
            "params.V: expected shape (K, directions·H)",
        ),
        "h0 of one cell": (params, h0[0], "h0: expected rank 3 with shape (cells, B, H)"),
    }


@pytest.mark.parametrize("bad", list(_bad_stacks(STACKED_CASES["deep2_bi"])))
def test_a_bad_stack_raises_spec_error(backend, bad):
    """§7 for networks: the same message as spec.validate gives for the NumPy arrays."""
    case = STACKED_CASES["deep2_bi"]
    params, h0, message_start = _bad_stacks(case)[bad]
    _, x, y, _ = case.arrays("float64")
    with pytest.raises(SpecError) as spec_says:
        validate(params, x, y, h0, model=case.model())
    assert str(spec_says.value).startswith(message_start), str(spec_says.value)
    native = (native_params(backend, params), backend.asarray(x), backend.asarray(y))
    with pytest.raises(SpecError) as backend_says:
        backend.gradients(*native, h0=backend.asarray(h0), model=case.model())
    assert str(backend_says.value) == str(spec_says.value)


def _numpy_copies(backend, arrays) -> list:
    """NumPy copies of arrays and of a stack's tuples of them, flat, None kept."""
    flat = [a for value in arrays for a in (value if isinstance(value, tuple) else (value,))]
    return [None if a is None else backend.to_numpy(a) for a in flat]


@pytest.mark.parametrize("method", (*WITH_MODEL, "step_gradients", "layer_gradients"))
def test_stack_calls_leave_inputs_and_results_alone(backend, method):
    """§8's "across calls" for networks: a call modifies none of its arguments (every cell's
    arrays, h0, the mask, the upstream gradients), and its result stays what it was when the
    same call is made again (no output buffer reused between calls)."""
    if not declared(backend, [method]) or (
        method.startswith("layer_") and not getattr(backend.capabilities, "layer", False)
    ):
        pytest.skip(f"{backend.name} does not declare {method}")
    case = STACKED_CASES["deep2_bi"]
    params, x, y, h0, mask = _native(backend, case, "float64")
    h_grad, hn_grad = (backend.asarray(a) for a in cotangents(case, "all"))
    if method.startswith("layer_"):
        params = params._replace(V=None, c=None)
    arguments = [*params, x, y, h0, mask, h_grad, hn_grad]
    before = _numpy_copies(backend, arguments)

    def again():
        return invoke(backend, method, params, x, y, h0, 3, mask, case.model(),
                      cotangents=(h_grad, hn_grad))  # fmt: skip

    first = again()
    kept = _numpy_copies(backend, flatten(method, first))
    again()
    for was, now in zip(before, _numpy_copies(backend, arguments), strict=True):
        if was is not None:
            np.testing.assert_array_equal(now, was, err_msg=f"{method} modified an argument")
    for was, now in zip(kept, _numpy_copies(backend, flatten(method, first)), strict=True):
        np.testing.assert_array_equal(now, was, err_msg=f"{method}'s result changed afterwards")
