"""The suite's assertion helpers: they accept the truth, reject a wrong value with a message that
names the call, the tensor, the case and the numbers, and print a snippet that reproduces it."""

import numpy as np
import pytest

from rnnspec import backends
from rnnspec.conformance.assertions import (
    Call,
    assert_close,
    assert_finite,
    assert_matches_reference,
)
from rnnspec.conformance.cases import CASES
from rnnspec.spec import reference


@pytest.fixture
def numpy_backend():
    return backends.load("numpy")


def test_accepts_the_reference(numpy_backend):
    case = CASES["basic"]
    result = numpy_backend.gradients(*case.arrays("float32"))
    ratio = assert_matches_reference(result, Call(numpy_backend, "gradients", case, "float32"))
    assert 0 < ratio <= 1


def test_rejects_a_wrong_tensor_with_a_reproducible_message(numpy_backend):
    case = CASES["soft"]
    loss, grads = numpy_backend.gradients(*case.arrays("float64"))
    wrong = (loss, grads._replace(W=grads.W + 1e-3 * np.abs(grads.W).max()))
    with pytest.raises(AssertionError) as failure:
        assert_matches_reference(wrong, Call(numpy_backend, "gradients", case, "float64"))
    message = str(failure.value)
    for needle in ("gradients -> Grads.W", case.label(), "float64", "relative error", "reproduce:"):
        assert needle in message, needle
    snippet = message.split("reproduce:\n", 1)[1].replace("\n    ", "\n").strip()
    scope: dict = {}
    exec(snippet, scope)  # the snippet recomputes both sides, which agree for the true backend
    assert np.allclose(scope["got"], grads.W) and np.allclose(scope["want"], grads.W)


def test_rejects_wrong_shape(numpy_backend):
    call = Call(numpy_backend, "loss", CASES["basic"], "float64")
    with pytest.raises(AssertionError, match=r"expected shape \(3,\), got \(2,\)"):
        assert_close(np.ones(2), np.ones(3), call, "x", "oracle")


def test_rejects_nan_and_infinity(numpy_backend):
    call = Call(numpy_backend, "loss", CASES["basic"], "float32")
    with pytest.raises(AssertionError, match="exceeds the bound"):
        assert_close(np.array(np.nan), np.array(1.0), call, "L", "oracle")
    with pytest.raises(AssertionError, match="NaN or infinity"):
        assert_finite(np.array([1.0, np.inf]), call, "L")
    assert_finite(np.array([1.0, 2.0]), call, "L")


def test_ill_conditioned_float32_is_held_to_finiteness(numpy_backend):
    case = CASES["saturated"]
    result = numpy_backend.gradients(*case.arrays("float32"))
    assert_matches_reference(result, Call(numpy_backend, "gradients", case, "float32"))
    loss, grads = result
    broken = (loss, grads._replace(b=np.full_like(grads.b, np.nan)))
    with pytest.raises(AssertionError, match="NaN or infinity"):
        assert_matches_reference(broken, Call(numpy_backend, "gradients", case, "float32"))


def test_reference_is_what_the_oracle_serves():
    from rnnspec.conformance.oracle import expected

    case = CASES["basic"]
    want = expected(case, "gradients")
    loss, grads = reference.gradients(*case.arrays())
    assert want.values[0] == loss and np.array_equal(want.values[2], grads.W)


def test_the_snippet_of_a_derived_case_runs(numpy_backend):
    """A case that is not a named one (here the far-rows case, the basic case with one field
    changed) is printed as its Case(...) and the snippet runs as printed."""
    from rnnspec.conformance.oracle import expected
    from rnnspec.conformance.test_softmax_rows import CASE

    want = expected(CASE, "loss")
    snippet = Call(numpy_backend, "loss", CASE, "float64").reproduce("", want.expression)
    namespace: dict = {}
    exec(snippet, namespace)
    assert "far_rows=3000.0" in snippet and np.isfinite(namespace["want"])
    assert np.isclose(namespace["got"], namespace["want"], rtol=1e-12)


def test_a_failure_shows_the_digits_that_differ():
    """Values equal to 9 digits (the outside check's "expected [-1.889044819e-07, ...]" and
    "received" the same) are shown with the digits where they part."""
    from rnnspec.conformance.assertions import previews

    want = np.array([-1.8890448191e-07, 6.067085655e-07])
    got = np.array([-1.8890448192e-07, 6.067085655e-07])
    shown_want, shown_got = previews(want, got)
    assert shown_want != shown_got and "1.8890448191" in shown_want, (shown_want, shown_got)
    assert previews(np.array([1.5]), np.array([2.5])) == ("[1.5]", "[2.5]")
