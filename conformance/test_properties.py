"""Property-based cases (Hypothesis): random sizes, seeds, target kinds and initial states, each
compared with spec.reference by the tolerance policy, on a fixed, derandomised example budget."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.assertions import Call, assert_matches_reference
from conformance.cases import Case

BUDGET = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@st.composite
def cases(draw) -> tuple[Case, int]:
    T = draw(st.integers(1, 8))
    soft = draw(st.booleans())
    case = Case(
        "random",
        T=T,
        B=draw(st.integers(1, 4)),
        D=draw(st.integers(1, 5)),
        H=draw(st.integers(1, 6)),
        K=draw(st.integers(2, 6)),
        seed=draw(st.integers(0, 2**16)),
        soft_targets=soft,
        target_sums=(0.6, 2.5, 0.0, 1.0) if soft else (1.0,),
        h0=draw(st.booleans()),
        spectral_radius=draw(st.floats(0.1, 1.2)),
    )
    return case, draw(st.integers(1, T))


@BUDGET
@given(drawn=cases())
def test_gradients_match_reference(backend, dtype, drawn):
    case, t = drawn
    native = case.native(backend, dtype)
    assert_matches_reference(backend.gradients(*native), Call(backend, "gradients", case, dtype))
    assert_matches_reference(
        backend.step_gradients(*native[:3], t, h0=native.h0),
        Call(backend, "step_gradients", case, dtype, t),
    )
