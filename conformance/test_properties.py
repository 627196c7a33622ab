"""Property-based cases (Hypothesis): random sizes, seeds, target kinds and initial states, each
compared with spec.reference by the tolerance policy, on a fixed, derandomised example budget."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rnnspec.conformance.assertions import assert_matches_reference
from rnnspec.conformance.cases import Case, declared_nonlinearity, random_case
from rnnspec.conformance.drawn import BUDGET
from rnnspec.conformance.plugin import declared

pytestmark = pytest.mark.rnnspec_group("properties")


@st.composite
def cases(draw) -> tuple[Case, int]:
    return random_case(
        integer=lambda lo, hi: draw(st.integers(lo, hi)),
        uniform=lambda lo, hi: draw(st.floats(lo, hi)),
        boolean=lambda: draw(st.booleans()),
    )


#: the smallest draw (every number at the low end of its range; class indices, h0 given, since
#: with h0 omitted a one-step case has ∇W = 0): T = B = D = H = 1, K = 2, where the bound is
#: tightest (SPEC.md §6.6). An explicit example, so that every Hypothesis version tries it,
#: whatever its generator draws or its shrinker reaches.
SMALLEST = random_case(
    integer=lambda lo, hi: lo,
    uniform=lambda lo, hi: lo,
    boolean=iter((False, True, False)).__next__,
)


@BUDGET
@example(drawn=SMALLEST)
@given(drawn=cases())
def test_gradients_match_reference(backend, dtype, drawn, call):
    case, t = drawn
    case = declared_nonlinearity(case, backend)
    native, model = case.native(backend, dtype), case.model_argument()
    assert_matches_reference(backend.gradients(*native, **model), call("gradients", case, dtype))
    for method in declared(backend, ["step_gradients"]):
        assert_matches_reference(
            backend.step_gradients(*native[:3], t, h0=native.h0, **model),
            call(method, case, dtype, t),
        )
