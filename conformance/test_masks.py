"""SPEC.md §9: masks for variable-length sequences, on every method that takes x.

Against spec.reference for every mask pattern (right and left padding, a sequence with no step,
gaps, all steps, none), with absurd values at the masked steps (class −100, negative soft targets,
inputs of 1000) that must not be read, on the named masked cases and on drawn ones (shapes, mask
patterns, h0 given or omitted: conformance/drawn.py); the metamorphic properties that define a
mask (a padded batch is each sequence run alone); golden vectors with masks; and bad masks. A
backend that does not declare ``capabilities.masks`` fails every one of these checks: masks are
part of protocol 2.1.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnspec.conformance import golden
from rnnspec.conformance.assertions import (
    assert_close,
    assert_matches_reference,
    assert_matches_vectors,
)
from rnnspec.conformance.calls import flatten, invoke
from rnnspec.conformance.cases import MASKED_CASES, declared_nonlinearity, scoped
from rnnspec.conformance.drawn import (
    DRAWN_PADDINGS,
    H0,
    MASKED_SHAPES,
    few,
    masked_cases,
    shape_id,
)
from rnnspec.conformance.oracle import expected
from rnnspec.conformance.plugin import declared, returned
from rnnspec.spec import Params, SpecError, validate

pytestmark = pytest.mark.rnnspec_group("masks")

WITH_MASK = ("forward", "loss", "gradients", "autodiff_gradients")


def _native(backend, case, dtype):
    return (*case.native(backend, dtype), case.native_mask(backend))


@pytest.mark.parametrize("method", WITH_MASK)
@pytest.mark.parametrize("name", MASKED_CASES)
def test_masked_call_matches_reference(backend, dtype, name, method, call, masks):
    case = MASKED_CASES[name]
    params, x, y, h0, mask = _native(backend, case, dtype)
    result = invoke(backend, method, params, x, y, h0, mask=mask, model=case.model())
    assert_matches_reference(result, call(method, case, dtype))


@pytest.mark.rnnspec_requires("step_gradients")
@pytest.mark.parametrize("name", MASKED_CASES)
def test_masked_step_gradients_match_reference(backend, dtype, name, call, masks):
    """Form A with a mask, every t: zero at a masked t, and through masked steps unchanged."""
    case = MASKED_CASES[name]
    params, x, y, h0, mask = _native(backend, case, dtype)
    for t in range(1, case.T + 1):
        result = backend.step_gradients(params, x, y, t, h0=h0, mask=mask, **case.model_argument())
        assert_matches_reference(result, call("step_gradients", case, dtype, t))


@few(2)
@given(data=st.data())
@pytest.mark.parametrize("shape", MASKED_SHAPES, ids=shape_id)
@pytest.mark.parametrize("padding", DRAWN_PADDINGS)
@H0
def test_drawn_masked_calls_match_reference(backend, dtype, shape, padding, h0, data, call, masks):
    """Drawn masks of each pattern (padding of drawn lengths, holes with whole steps and a whole
    sequence masked, every step), h0 given or omitted, on shapes with T = B and T = 64: every
    method that takes a mask, and step_gradients at a drawn t."""
    case, t = data.draw(masked_cases(shape, padding, h0))
    case = declared_nonlinearity(case, backend)
    params, x, y, h0, mask = _native(backend, case, dtype)
    for method in declared(backend, WITH_MASK):
        result = invoke(backend, method, params, x, y, h0, mask=mask, model=case.model())
        assert_matches_reference(result, call(method, case, dtype))
    for method in declared(backend, ["step_gradients"]):
        result = backend.step_gradients(params, x, y, t, h0=h0, mask=mask, **case.model_argument())
        assert_matches_reference(result, call(method, case, dtype, t))


def _float64(backend, result) -> list[np.ndarray]:
    return [np.asarray(backend.to_numpy(a), np.float64) for a in result]


def _alone(backend, case, dtype, method, steps) -> list[np.ndarray]:
    """``method``'s result assembled from each sequence n run alone, without a mask, on its steps
    ``steps[n]`` (a slice of 0..T−1), as if it were the batch: losses and parameter gradients
    summed, ∇h0 per row, ∇x at its own steps and zero elsewhere."""
    params, x, y, h0 = scoped(case, backend).arrays(dtype)
    native = Params(*(backend.asarray(a) for a in params))
    total = None
    dx = np.zeros(x.shape)
    dh0 = np.zeros((case.B, case.H))
    for n, rows in enumerate(steps):
        if rows.start == rows.stop:
            continue
        x_n, y_n = (backend.asarray(np.ascontiguousarray(a[rows, n : n + 1])) for a in (x, y))
        h0_n = None if h0 is None else backend.asarray(h0[n : n + 1])
        result = flatten(method, invoke(backend, method, native, x_n, y_n, h0_n))
        got = _float64(backend, [np.zeros(0) if a is None else a for a in result])
        loss_and_params = got[:6]
        if returned(backend, "Grads.h0"):
            dh0[n] = got[6][0]
        if returned(backend, "Grads.x"):
            dx[rows, n] = got[7][:, 0]
        total = (
            loss_and_params if total is None else [a + b for a, b in zip(total, loss_and_params)]
        )
    assert total is not None, f"{case.label()}: no sequence has a step"
    return [*total, dh0, dx]


def _assert_equals_alone(backend, case, dtype, call, steps):
    params, x, y, h0, mask = _native(backend, case, dtype)
    for method in declared(backend, ("gradients", "autodiff_gradients")):
        got = flatten(method, invoke(backend, method, params, x, y, h0, mask=mask))
        want = _alone(backend, case, dtype, method, steps)
        oracle = expected(case, method)
        check = call(method, case, dtype)
        source = f"{method} on each sequence alone"
        for g, w, name, kappa in zip(got, want, oracle.names, oracle.kappas):
            if returned(backend, name):
                assert_close(g, w, check, name + " (vs each sequence alone)", source, kappa=kappa)
        if not returned(backend, "Grads.x"):
            continue
        padded = ~case.mask()
        dx = backend.to_numpy(got[-1])
        assert (dx[padded] == 0).all(), (
            f"{method} -> Grads.x on case {case.label()}, {dtype}: nonzero at masked steps "
            f"{np.argwhere(padded & (dx != 0).any(-1)).tolist()}, whose inputs are not read"
        )


def test_right_padding_is_each_sequence_alone(backend, dtype, call, masks):
    """A right-padded batch gives the loss and every gradient of its sequences run alone on
    their own lengths, and ∇x = 0 exactly at the padded steps."""
    case = MASKED_CASES["masked_empty"]  # right padding, one sequence of length 0
    steps = [slice(0, int(n)) for n in case.lengths()]
    _assert_equals_alone(backend, case, dtype, call, steps)


def test_left_padding_is_each_sequence_alone_from_the_same_h0(backend, dtype, call, masks):
    """Left padding carries h0 over the padding: each sequence runs alone from the same h0, and
    h(t) = h0 exactly until the sequence starts."""
    case = MASKED_CASES["masked_left"]
    steps = [slice(case.T - int(n), case.T) for n in case.lengths()]
    _assert_equals_alone(backend, case, dtype, call, steps)
    if not declared(backend, ["forward"]):
        return
    params, x, _, h0, mask = _native(backend, case, dtype)
    h = backend.to_numpy(backend.forward(params, x, h0=h0, mask=mask).h)
    want_h0 = backend.to_numpy(h0)
    for n, rows in enumerate(steps):
        assert (h[: rows.start, n] == want_h0[n]).all(), (
            f"forward -> Forward.h on case {case.label()}, {dtype}: h(t) of sequence {n} differs "
            f"from h0 at a step before it starts (t <= {rows.start})"
        )


def test_all_ones_mask_is_no_mask(backend, dtype, call, masks):
    case = MASKED_CASES["masked_ones"]
    params, x, y, h0, mask = _native(backend, case, dtype)
    for method in declared(backend, WITH_MASK):
        got = flatten(method, invoke(backend, method, params, x, y, h0, mask=mask))
        want = flatten(method, invoke(backend, method, params, x, y, h0))
        oracle = expected(case, method)
        check = call(method, case, dtype)
        for g, w, name, kappa in zip(got, want, oracle.names, oracle.kappas):
            if not returned(backend, name):
                continue
            w = _float64(backend, [w])[0]
            assert_close(
                g, w, check, name + " (vs no mask)", f"{method} without a mask", kappa=kappa
            )


def test_all_zero_mask_is_no_step(backend, dtype, masks):
    """No step: L = 0 and every gradient 0, exactly; h(t) = h0 at every t."""
    case = MASKED_CASES["masked_zeros"]
    params, x, y, h0, mask = _native(backend, case, dtype)
    if declared(backend, ["forward"]):
        h = backend.to_numpy(backend.forward(params, x, h0=h0, mask=mask).h)
        assert (h == backend.to_numpy(h0)[None]).all(), f"{case.label()}: h(t) != h0 with no step"
    calls: list[tuple[str, int | None]] = [(m, None) for m in declared(backend, WITH_MASK[1:])]
    calls += [
        ("step_gradients", t) for t in range(1, case.T + 1) if declared(backend, ["step_gradients"])
    ]
    for method, t in calls:
        result = flatten(method, invoke(backend, method, params, x, y, h0, t, mask=mask))
        for name, value in zip(expected(case, method, t).names, result):
            if not returned(backend, name):
                continue
            value = _float64(backend, [value])[0]
            assert not value.any(), f"{method} -> {name} on case {case.label()}: nonzero, {value}"


@pytest.mark.rnnspec_fixed_inputs
@pytest.mark.parametrize("name", golden.MASKED_GOLDEN_CASES)
def test_committed_vectors_with_mask(backend, dtype, name, call, masks):
    """The committed vectors (conformance/vectors/, with input.mask) on the very same numbers."""
    assert_matches_vectors(backend, name, MASKED_CASES[name], dtype, call)


def _bad_masks(case):
    mask = case.mask()
    return {
        "wrong T": mask[:-1],
        "batch-major": np.ascontiguousarray(mask.T),
        "rank 3": mask[..., None],
        "integer 0/1": mask.astype(np.int64),
        "float 0/1": mask.astype(np.float32),
    }


@pytest.mark.parametrize("bad", list(_bad_masks(MASKED_CASES["masked_right"])))
@pytest.mark.parametrize("method", (*WITH_MASK, "step_gradients"))
def test_bad_mask(backend, dtype, bad, method, masks):
    """The same SpecError as spec.validate gives for the NumPy arrays, on every method."""
    case = scoped(MASKED_CASES["masked_right"], backend)
    params, x, y, h0 = case.arrays(dtype)
    mask = _bad_masks(case)[bad]
    with pytest.raises(SpecError) as wanted:
        validate(params, x, None if method == "forward" else y, h0, mask=mask)
    native = case.native(backend, dtype)
    t = 1 if method == "step_gradients" else None
    with pytest.raises(SpecError) as got:
        invoke(backend, method, *native[:3], native.h0, t, mask=backend.asarray(mask))
    assert str(got.value) == str(wanted.value)


@pytest.mark.parametrize("method", WITH_MASK)
def test_mask_of_another_framework(backend, dtype, method, masks):
    """A NumPy mask (or, for a NumPy backend, a list) is not the backend's own array."""
    case = MASKED_CASES["masked_right"]
    mask = np.asarray(case.mask())
    foreign = mask.tolist() if backend.is_native(mask) else mask
    params, x, y, h0 = case.native(backend, dtype)
    with pytest.raises(SpecError, match=r"^mask: expected an array of the backend's own"):
        invoke(backend, method, params, x, y, h0, mask=foreign)


@pytest.mark.parametrize(
    "soft",
    [False, pytest.param(True, marks=pytest.mark.rnnspec_requires("soft_targets"))],
    ids=["class index", "soft target"],
)
def test_bad_target_at_an_unmasked_step(backend, dtype, soft, masks):
    """Masked steps' targets are not read, but an unmasked step's still are."""
    case = scoped(MASKED_CASES["masked_gaps" if soft else "masked_right"], backend)
    params, x, y, h0 = case.arrays(dtype)
    mask = np.asarray(case.mask())
    y = y.copy()
    y[0, 0] = -0.5 if soft else case.K  # step 1 of sequence 0 is unmasked in both
    assert mask[0, 0]
    with pytest.raises(SpecError) as wanted:
        validate(params, x, y, h0, mask=mask)
    assert "at unmasked steps" in str(wanted.value)
    native = Params(*(backend.asarray(a) for a in params))
    native_x, native_y, native_mask = (backend.asarray(a) for a in (x, y, mask))
    native_h0 = None if h0 is None else backend.asarray(h0)
    for method in declared(backend, WITH_MASK[1:]):
        with pytest.raises(SpecError) as got:
            invoke(backend, method, native, native_x, native_y, native_h0, mask=native_mask)
        assert str(got.value) == str(wanted.value)
