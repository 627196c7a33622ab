"""Drawn cases (Hypothesis, derandomised): the draws of the property, mask and gradient-flow checks.

The mask and flow checks run on a few fixed shapes, chosen for what the named cases lack (T = B,
several equal dimensions, masked sequences longer than 8 steps), with h0 and without, and the mask
checks on each mask pattern: these are the checks' parameters, so that each is covered whatever
examples Hypothesis's version draws. Everything else is drawn: seeds, targets, W's spectral
radius, the masks of each pattern and the integer arguments. A compiling framework compiles once
per shape, so a shape costs one compilation per method and dtype however many examples it gets.
"""

import pytest
from hypothesis import HealthCheck, Phase, assume, seed, settings
from hypothesis import strategies as st

from rnnspec.conformance.cases import Case, judged

#: a fixed, derandomised example budget: the same examples on every machine and every run
BUDGET = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def few(examples: int):
    """A decorator: the test (given Hypothesis's strategies) on ``examples`` examples per shape
    and h0, each a reference computation of up to 64 steps; no shrinking (its many reruns would
    each cost that again: the failure's reproduction snippet gives the whole case); and one seed
    for all its parametrizations, not one per test id (Hypothesis's default under pytest), so that
    the float32 and float64 runs check the very same cases, whose reference is computed once."""
    budget = settings(BUDGET, max_examples=examples, phases=(Phase.explicit, Phase.generate))
    return lambda test: seed(0)(budget(test))


#: (T, B, D, H, K) of the masked draws: T = B with D = H = K; a long T (the named cases' is ≤ 8)
MASKED_SHAPES = ((4, 4, 3, 3, 3), (64, 3, 4, 4, 4))
#: the masked draws' patterns (MASK_PATTERNS; "zeros" is right padding of lengths 0)
DRAWN_PADDINGS = ("right", "left", "holes", "ones")
#: (T, B, D, H, K) of the flow draws, short enough for every depth k = 1 … T + 1: all dimensions
#: equal; T = 2B with D ≠ H ≠ K
FLOW_SHAPES = ((4, 4, 4, 4, 4), (6, 3, 2, 5, 3))


#: the φ of a drawn shape (tanh where not named): relu on one shape of each check, so that a
#: compiling framework compiles no shape twice for φ (SPEC.md §1)
NONLINEARITY: dict[tuple[int, ...], str] = {MASKED_SHAPES[1]: "relu", FLOW_SHAPES[1]: "relu"}


def shape_id(shape: tuple[int, ...]) -> str:
    """A shape's test id: "T4-B4-D3-H3-K3" (its φ is not in the id: a backend that does not
    declare relu runs the relu shape's draws in tanh, cases.declared_nonlinearity)."""
    return "-".join(f"{dim}{n}" for dim, n in zip("TBDHK", shape))


#: h0 given or omitted, as the checks' parameter
H0 = pytest.mark.parametrize("h0", [True, False], ids=["h0", "h0_omitted"])


def _case(draw, name: str, shape: tuple[int, ...], h0: bool, **fields) -> Case:
    """A case of ``shape``, with h0 or without, and drawn seed, targets and W, judged as the
    property checks' cases are (saturated where its tanh saturates)."""
    T, B, D, H, K = shape
    soft = draw(st.booleans())
    case = Case(
        name,
        T=T,
        B=B,
        D=D,
        H=H,
        K=K,
        seed=draw(st.integers(0, 2**16)),
        soft_targets=soft,
        target_sums=(0.6, 2.5, 0.0, 1.0) if soft else (1.0,),
        h0=h0,
        spectral_radius=draw(st.floats(0.1, 1.0)),
        nonlinearity=NONLINEARITY.get(shape, "tanh"),
        **fields,
    )
    return judged(case)


def _mask_fields(draw, padding: str, T: int, B: int) -> dict:
    """The Case fields of a mask: right or left padding of drawn lengths (0 and T among them);
    holes, with at least one step of every sequence and one whole sequence masked; every step."""
    if padding in ("right", "left"):
        lengths = draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
        return {"padding": padding, "sequence_lengths": tuple(lengths)}
    if padding == "holes":
        steps = draw(st.lists(st.integers(1, T), min_size=1, max_size=2, unique=True))
        sequence = draw(st.integers(0, B - 1))
        return {"padding": padding, "masked_steps": tuple(steps), "masked_sequences": (sequence,)}
    return {"padding": padding}


@st.composite
def masked_cases(draw, shape: tuple[int, ...], padding: str, h0: bool) -> tuple[Case, int]:
    """A case of ``shape`` with a mask of ``padding`` (one of DRAWN_PADDINGS), and a step t for
    step_gradients."""
    T, B, *_ = shape
    case = _case(draw, "drawn_masked", shape, h0, **_mask_fields(draw, padding, T, B))
    return case, draw(st.integers(1, T))


@st.composite
def flow_cases(draw, shape: tuple[int, ...], h0: bool) -> tuple[Case, tuple[int, int]]:
    """A well-conditioned case of ``shape`` (every flow tensor passes through D_t, SPEC.md §6.3)
    and a TBPTT (k1, k2) pair, 1 ≤ k1 ≤ k2 ≤ T + 2: windows that tile, overlap, reach h(0) or
    go past it (one pair: a compiling framework compiles each k2 and number of windows anew)."""
    case = _case(draw, "drawn_flow", shape, h0)
    assume(case.conditioning == "well")
    k1 = draw(st.integers(1, case.T + 1))
    return case, (k1, draw(st.integers(k1, case.T + 2)))
