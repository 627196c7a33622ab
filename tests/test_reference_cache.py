"""The reference answers kept across processes (RNNSPEC_REFERENCE_CACHE, conformance/oracle.py):
a kept answer is the computed one, and an answer is never served to another case, method, length
or source."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from rnnspec.conformance import oracle
from rnnspec.conformance.cases import CASES, MASKED_CASES


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(oracle.CACHE_VARIABLE, str(tmp_path))
    oracle.expected.cache_clear()  # this process's answers: every call below reaches the folder
    yield tmp_path
    oracle.expected.cache_clear()


def fresh(case, method, t=None):
    """The answer as another process gets it: nothing of this one's remembered."""
    oracle.expected.cache_clear()
    return oracle.expected(case, method, t)


def same(a: oracle.Expected, b: oracle.Expected) -> bool:
    return (a.names, a.kappas, a.expression, a.picks) == (
        b.names,
        b.kappas,
        b.expression,
        b.picks,
    ) and all(np.array_equal(x, y) for x, y in zip(a.values, b.values, strict=True))


def test_a_kept_answer_is_the_computed_one(cache):
    case = MASKED_CASES["masked_gaps"]
    computed = oracle._computed(case, "gradients", None)
    assert same(fresh(case, "gradients"), computed)
    assert len(list(cache.iterdir())) == 1
    assert same(fresh(case, "gradients"), computed)  # now read from the folder
    assert len(list(cache.iterdir())) == 1


def test_each_case_method_and_length_has_its_own_answer(cache):
    case = CASES["basic"]
    other_seed = dataclasses.replace(case, seed=case.seed + 1)
    answers = [
        fresh(case, "gradients"),
        fresh(other_seed, "gradients"),
        fresh(case, "autodiff_gradients"),
        fresh(case, "step_gradients", 1),
        fresh(case, "step_gradients", 2),
    ]
    assert len(list(cache.iterdir())) == len(answers)
    assert not same(answers[0], answers[1])
    assert not same(answers[3], answers[4])
    assert same(fresh(case, "step_gradients", 2), oracle._computed(case, "step_gradients", 2))


def test_an_edited_source_is_not_served_a_kept_answer(cache, monkeypatch):
    case = CASES["basic"]
    fresh(case, "loss")
    oracle._sources_digest.cache_clear()
    monkeypatch.setattr(oracle, "_sources_digest", lambda: "the reference, edited")
    fresh(case, "loss")
    assert len(list(cache.iterdir())) == 2


def test_the_key_covers_every_source_of_an_answer():
    from rnnspec.conformance import calls, cases
    from rnnspec.spec import masks, reference, reference_flow, tolerance

    files = {path.resolve() for path in oracle.source_files()}
    for module in (reference, reference_flow, tolerance, masks, cases, calls, oracle):
        assert Path(module.__file__).resolve() in files, module.__name__


def test_without_the_variable_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(oracle.CACHE_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    fresh(CASES["basic"], "forward")
    oracle.expected.cache_clear()
    assert list(tmp_path.iterdir()) == []


def test_kept_finite_differences_are_the_computed_ones_and_keyed_by_their_file(
    cache, tmp_path_factory
):
    """The reference's own finite differences (test_reference.cached_finite_differences) kept like
    its answers: the same numbers read back, and none served after the file that differences
    them (a ``depends_on`` of oracle.cached) is edited."""
    from rnnspec.conformance import test_reference

    case = CASES["basic"]
    params, x, y, h0 = case.arrays("float64")
    W = params.W.copy()
    loss = lambda: oracle.reference.loss(params._replace(W=W), x, y, h0)
    computed = test_reference.finite_differences(loss, W)  # W restored afterwards
    assert np.abs(computed).max() > 0
    key = ("gradients", case, "W")
    first = test_reference.cached_finite_differences(key, loss, W)
    assert np.array_equal(first, computed) and len(list(cache.glob("*.pickle"))) == 1
    kept = test_reference.cached_finite_differences(key, lambda: np.nan, W)  # read, not computed
    assert np.array_equal(kept, computed) and len(list(cache.glob("*.pickle"))) == 1
    edited = tmp_path_factory.mktemp("edited") / "test_reference.py"
    edited.write_text(Path(test_reference.__file__).read_text() + "\n# edited\n")
    oracle.cached(("finite differences", *key), lambda: computed, edited)
    assert len(list(cache.glob("*.pickle"))) == 2


def test_a_wrong_gradient_is_caught_against_kept_finite_differences(cache, monkeypatch):
    """With the finite differences read from the folder, the check of the reference still runs:
    a reference whose ∇W is off fails it (the kept numbers are not the verdict)."""
    from rnnspec.conformance import test_reference

    test_reference.test_reference_matchesfinite_differences("basic")  # keeps them
    right = oracle.reference.gradients

    def wrong(*args, **kwargs):
        loss, grads = right(*args, **kwargs)
        return loss, grads._replace(W=grads.W * 1.001)

    monkeypatch.setattr(test_reference.reference, "gradients", wrong)
    with pytest.raises(AssertionError, match=r"Grads\.W"):
        test_reference.test_reference_matchesfinite_differences("basic")
