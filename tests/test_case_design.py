"""The covering design of the stack and layer checks (conformance/cases.py): every pair of values
of φ × layers × directions × mask (none, right, left padding) × dtype is met by some case in the
dtype it runs in, and every (layers, directions) configuration meets a nonzero h(0) (a zero one
hides a wrong initial state: pytorch PR #95137's multi-layer MPS bug passed its tests that way)."""

import itertools

from rnnspec.conformance.cases import (
    CASES,
    DESIGNED_DTYPES,
    KINK,
    MASKED_CASES,
    SATURATION,
    STACKED_CASES,
    _max_preactivation,
    kink_distance,
)

FACTORS = ("φ", "layers", "directions", "mask", "dtype")


def _configurations():
    """(φ, layers, directions, mask, dtype) of each case in each dtype it runs in: the one-layer
    cases in both, the stacked ones in their designed dtype."""
    one_layer = [
        c for c in {**CASES, **MASKED_CASES}.values() if c.padding in (None, "right", "left")
    ]
    for case in one_layer:
        for dtype in ("float32", "float64"):
            yield case, (case.nonlinearity, 1, 1, case.padding or "none", dtype)
    for name, case in STACKED_CASES.items():
        R = 2 if case.bidirectional else 1
        yield (
            case,
            (case.nonlinearity, case.layers, R, case.padding or "none", DESIGNED_DTYPES[name]),
        )


VALUES = (("relu", "tanh"), (1, 2, 3), (1, 2), ("left", "none", "right"), ("float32", "float64"))


def missing_pairs(met: set) -> list[str]:
    """The pairs of factor values that no configuration in ``met`` has."""
    return [
        f"{a}, {b} = {pair}"
        for (i, a), (j, b) in itertools.combinations(enumerate(FACTORS), 2)
        for pair in itertools.product(VALUES[i], VALUES[j])
        if not any((c[i], c[j]) == pair for c in met)
    ]


def test_every_pair_of_factors_is_met():
    met = {configuration for _, configuration in _configurations()}
    assert [{c[i] for c in met} for i in range(len(FACTORS))] == [set(v) for v in VALUES]
    assert missing_pairs(met) == []


def test_every_configuration_meets_a_nonzero_initial_state():
    given = {(case.layers, case.bidirectional) for case, _ in _configurations() if case.h0}
    every = {(case.layers, case.bidirectional) for case, _ in _configurations()}
    assert given == every, every - given


def test_the_stacked_cases_are_well_conditioned():
    """§6.3: no stacked case near relu's kink or in tanh's saturation, where the bound is off."""
    for name, case in STACKED_CASES.items():
        assert case.conditioning == "well"
        if case.nonlinearity == "relu":
            assert kink_distance(case) > KINK, name
        else:
            assert _max_preactivation(case) < SATURATION, name


def test_the_pair_check_fails_without_a_case():
    """The check can fail: without deep3_left, no 3-layer network runs on left padding."""
    met = {c for case, c in _configurations() if case.name != "deep3_left"}
    assert "layers, mask = (3, 'left')" in missing_pairs(met)
