"""SPEC.md (1.4): softmax, and its max shift, are taken per output vector o(t) of each sequence, not
over the whole (T, B, K) array. The named cases' logits (large_logits included: c spread over
±2000, the same for every row) have row maxima within a few units of each other, where shifting
every row by the global max gives the same values; here one class's logit is 3000·h₁(t), so that
row maxima lie more than exp's range apart and a global shift underflows whole rows to
exp(·) = 0. The same rows catch a loss taken as the log of probabilities, log ŷ, which underflows there too.
(Found by mutation testing, docs/mutation.md: `o.max(axis=-1)` → `o.max()` survived the suite.)"""

import dataclasses

import pytest

from rnnspec.conformance.assertions import assert_matches_reference
from rnnspec.conformance.cases import CASES
from rnnspec.spec import Params, reference

pytestmark = pytest.mark.rnnspec_group("edge cases")

SPREAD = 3000.0  # beyond exp's range in float64 (~745) and float32 (~104)

#: the basic case with V's first column (SPREAD, 0, …, 0): o₁(t) = c₁ + 3000·h₁(t) + …, so rows
#: with h₁(t) > 0 peak near +3000·h₁(t) and the others near their O(1) logits
CASE = dataclasses.replace(CASES["basic"], name="far_rows", far_rows=SPREAD)


def test_the_case_spreads_row_maxima_beyond_exp_range():
    params, x, _, h0 = CASE.arrays("float64")
    row_max = reference.forward(Params(*params), x, h0=h0).o.max(axis=-1)
    assert row_max.max() - row_max.min() > 800, row_max


@pytest.mark.parametrize("method", ["forward", "loss", "gradients"])
def test_rows_far_apart_stay_exact(backend, dtype, method, call):
    """Row maxima 800 apart: a softmax shifted by the global max underflows whole rows to 0, and
    a loss taken as the log of probabilities (log ŷ instead of the log-softmax) gives −log 0 =
    inf there; either fault fails here."""
    params, x, y, h0 = CASE.native(backend, dtype)
    if method == "forward":
        result = backend.forward(params, x, h0=h0)
    else:
        result = getattr(backend, method)(params, x, y, h0)
    assert_matches_reference(result, call(method, CASE, dtype))
