"""SPEC.md (1.4): softmax, and its max shift, are taken per output vector o(t) of each sequence, not
over the whole (T, B, K) array. The named cases' logits (large_logits included: c spread over
±2000, the same for every row) have row maxima within a few units of each other, where shifting
every row by the global max gives the same values; here one class's logit is 3000·h₁(t), so that
row maxima lie more than exp's range apart and a global shift underflows whole rows to
exp(·) = 0. (Found by mutation testing, docs/mutation.md: `o.max(axis=-1)` → `o.max()` survived
the suite.)"""

from dataclasses import dataclass

import pytest

from rnnspec.conformance.assertions import assert_matches_reference
from rnnspec.conformance.cases import CASES, Case, Inputs
from rnnspec.spec import Params, reference

pytestmark = pytest.mark.rnnspec_group("edge cases")

SPREAD = 3000.0  # beyond exp's range in float64 (~745) and float32 (~104)


@dataclass(frozen=True)
class FarRows(Case):
    """The basic case with V's first column replaced by (SPREAD, 0, …, 0): o₁(t) = c₁ + 3000·h₁(t)
    + …, so rows with h₁(t) > 0 peak near +3000·h₁(t) and the others near their O(1) logits."""

    def arrays(self, dtype: str = "float64") -> Inputs:
        params, x, y, h0 = super().arrays(dtype)
        V = params.V.copy()
        V[:, 0] = 0
        V[0, 0] = SPREAD
        return Inputs(params._replace(V=V), x, y, h0)


CASE = FarRows(**{**CASES["basic"].__dict__, "name": "far_rows"})


def test_the_case_spreads_row_maxima_beyond_exp_range():
    params, x, _, h0 = CASE.arrays("float64")
    row_max = reference.forward(Params(*params), x, h0=h0).o.max(axis=-1)
    assert row_max.max() - row_max.min() > 800, row_max


@pytest.mark.parametrize("method", ["forward", "loss", "gradients"])
def test_softmax_is_shifted_per_row(backend, dtype, method, call):
    params, x, y, h0 = CASE.native(backend, dtype)
    if method == "forward":
        result = backend.forward(params, x, h0=h0)
    else:
        result = getattr(backend, method)(params, x, y, h0)
    assert_matches_reference(result, call(method, CASE, dtype))
