"""Failures that diagnose (conformance/diagnosis.py): each known mistake, planted in one of the
example functions (examples/plain-functions), is named in the failure's message; a wrong value
that is no known mistake gets no diagnosis."""

import contextlib
import dataclasses
import importlib
import inspect
import io
import re

import numpy as np
import pytest

import rnnspec
from rnnspec.conformance import diagnosis
from rnnspec.conformance.cases import CASES
from rnnspec.conformance.oracle import expected
from tests import test_plain  # noqa: F401  (puts examples/plain-functions on the path)


def planted(module_name: str, function: str, old: str, new: str):
    """The example's function with one line of its source changed: the mistake, as written."""
    module = importlib.import_module(module_name)
    source = inspect.getsource(module)
    assert source.count(old) == 1, old
    namespace: dict = {}
    exec(compile(source.replace(old, new), f"{module_name} (planted)", "exec"), namespace)
    return namespace[function], module.CONVENTIONS


def wrapped(module_name: str, function: str, change):
    module = importlib.import_module(module_name)
    original = getattr(module, function)
    return (lambda *args: change(original(*args))), module.CONVENTIONS


def _zero_h0(result):
    return {**result, "h0": np.zeros_like(result["h0"])}


def _clipped(result):
    loss, *grads = result
    return (loss, *(np.clip(g, -0.05, 0.05) for g in grads))


E1_LINE = "e = np.exp(log_p[t]) * y[t].sum(axis=1, keepdims=True) - y[t]  # ŷ Σy − y (erratum E1)"
PLANTED = {
    "E1, ŷ − y": (
        lambda: planted("two_biases", "rnn_backward", E1_LINE, "e = np.exp(log_p[t]) - y[t]"),
        "form_b and soft",
        "erratum E1",
    ),
    "E3, a lost transpose": (
        lambda: planted("soft_rows", "forward_backward", "g = d @ Wh.T", "g = d @ Wh"),
        "form_b and basic",
        "erratum E3",
    ),
    "h(k) for h(k−1) in ∇W": (
        lambda: planted(
            "soft_rows", "forward_backward", "dWh += H[t].T @ d", "dWh += H[t + 1].T @ d"
        ),
        "form_b and basic",
        "h(k) for h(k−1) in ∇W",
    ),
    "E5, the last step alone": (
        lambda: planted(
            "two_biases",
            "rnn_backward",
            E1_LINE,
            "e = (np.exp(log_p[t]) * y[t].sum(axis=1, keepdims=True) - y[t]) * (t == T - 1)",
        ),
        "form_b and basic",
        "erratum E5",
    ),
    "E6, no ∇h(0)": (lambda: wrapped("two_biases", "rnn_backward", _zero_h0), "form_b", "E6"),
    "soft targets' argmax": (
        lambda: planted(
            "two_biases",
            "rnn_backward",
            "if targets.ndim == 2 else targets",
            "if targets.ndim == 2 else np.eye(K, dtype=x.dtype)[targets.argmax(-1)]",
        ),
        "form_b and soft",
        "their argmax",
    ),
    "a BPTT truncated to 1 step": (
        lambda: planted("two_biases", "rnn_backward", "dh = da @ w_hh", "dh = 0 * (da @ w_hh)"),
        "form_b and basic",
        "truncated to 1 step",
    ),
    "clipped gradients": (
        lambda: wrapped("soft_rows", "forward_backward", _clipped),
        "form_b and basic",
        "clipped",
    ),
    "an unshifted softmax": (
        lambda: planted(
            "two_biases", "rnn_backward", "o = o - o.max(axis=1, keepdims=True)", "o = o"
        ),
        "large_logits and (form_b or finite)",
        "an unshifted softmax",
    ),
    "the log of probabilities": (
        lambda: planted(
            "batch_rows",
            "rnn_loss_and_grads",
            "log_p = o - np.log(np.exp(o).sum(axis=1, keepdims=True))",
            "log_p = np.log(np.exp(o) / np.exp(o).sum(axis=1, keepdims=True))",
        ),
        "far_rows or large_logits",
        "the log of probabilities",
    ),
    "a float64 promotion": (
        lambda: wrapped(
            "soft_rows", "forward_backward", lambda r: tuple(np.float64(1) * a for a in r)
        ),
        "outputs_dtype",
        "a float64 buffer or constant promotes it",
    ),
}


def seed_style(x, y, h0, U, W, b, V, c, product="ordered"):
    """Form A as the seed derives it, summed over t: every δ_k(t) by its own Jacobian product,
    ``product`` "ordered" (2.3), "commuted" (erratum E2) or "D_t" (erratum E4). Time-major,
    class indices, h(0) given; returns L and the parameters' gradients."""
    T, B, _ = x.shape
    h = [h0]
    for t in range(T):
        h.append(np.tanh(b + h[t] @ W.T + x[t] @ U.T))
    loss, grads = 0.0, [np.zeros_like(a) for a in (U, W, b, V, c)]
    for n in range(B):
        D = [None] + [np.diag(1 - h[i][n] ** 2) for i in range(1, T + 1)]
        for t in range(1, T + 1):
            o = V @ h[t][n] + c
            log_p = o - o.max() - np.log(np.exp(o - o.max()).sum())
            loss -= log_p[y[t - 1, n]]
            e = np.exp(log_p)
            e[y[t - 1, n]] -= 1
            grads[3] += np.outer(e, h[t][n])
            grads[4] += e
            for k in range(1, t + 1):
                if product == "ordered":
                    delta = V.T @ e
                    for i in range(t, k, -1):
                        delta = W.T @ (D[i] @ delta)
                    delta = D[k] @ delta
                elif product == "commuted":
                    delta = D[k] @ np.linalg.multi_dot(
                        [np.eye(len(b)), *D[k + 1 : t + 1], np.eye(len(b))]
                    )
                    delta = delta @ np.linalg.matrix_power(W.T, t - k) @ V.T @ e
                else:  # D_t in every factor
                    delta = D[t] @ V.T @ e
                    for _ in range(k, t):
                        delta = D[t] @ W.T @ delta
                grads[0] += np.outer(delta, x[k - 1][n])
                grads[1] += np.outer(delta, h[k - 1][n])
                grads[2] += delta
    return (loss, *grads)


SEED_STYLE = rnnspec.Conventions(
    arguments=("x", "y", "h0", "U", "W", "b", "V", "c"),
    returns=("L", "U", "W", "b", "V", "c"),
    targets="classes",
)
PLANTED["E2, the commuted product"] = (
    lambda: (lambda *a: seed_style(*a, product="commuted"), SEED_STYLE),
    "form_b and basic",
    "erratum E2",
)
PLANTED["E4, D_t in every factor"] = (
    lambda: (lambda *a: seed_style(*a, product="D_t"), SEED_STYLE),
    "form_b and basic",
    "erratum E4",
)


def test_the_seed_style_function_is_right_with_the_ordered_product():
    """The planted E2 and E4 differ from a function that is right: the ordered product."""
    with contextlib.redirect_stdout(io.StringIO()):
        certificate = rnnspec.check(  # form A's O(T²) terms in Python: short cases only
            seed_style, SEED_STYLE, pytest_args=("-k", "form_b and (basic or B1 or K2)")
        )
    assert not certificate["backends"][0]["outcomes"].get("failed"), certificate["backends"][0]


@pytest.mark.parametrize("mistake", PLANTED)
def test_a_planted_mistake_is_named(mistake):
    make, selection, words = PLANTED[mistake]
    function, conventions = make()
    with contextlib.redirect_stdout(io.StringIO()):
        certificate = rnnspec.check(function, conventions, pytest_args=("-k", selection))
    failed = [t for t in certificate["backends"][0]["tests"] if t["outcome"] == "failed"]
    assert failed, f"{mistake}: no check failed"
    named = [t for t in failed if words in t["message"]]
    assert named, f"{mistake}: no failure names {words!r}: {failed[0]['message']}"


def test_a_wrong_value_that_is_no_known_mistake_gets_no_diagnosis():
    rng = np.random.default_rng(0)
    for name in ("basic", "soft"):
        case = CASES[name]
        want = expected(case, "gradients")
        for tensor, value, kappa in zip(want.names, want.values, want.kappas):
            wrong = value * (1 + 0.3 * rng.standard_normal(np.shape(value)))
            assert (
                diagnosis.diagnose(case, "gradients", tensor, wrong, value, "float64", kappa) == ""
            )


def test_the_true_value_matches_no_mistake():
    """No mistake's answer is the truth on the cases it is named on (else a diagnosis could name
    one for a value that is right up to its tolerance)."""
    for case in (CASES["basic"], CASES["soft"], dataclasses.replace(CASES["soft"], T=3)):
        want = dict(zip(expected(case, "gradients").names, expected(case, "gradients").values))
        for mistake in diagnosis.MISTAKES:
            answer = mistake.answer(case, "gradients", None)
            if answer is not None:
                assert any(not np.allclose(answer[k], want[k], rtol=1e-6) for k in answer), (
                    mistake.words
                )


def _two_ways_wrong(function):
    """Raises for three sequences of fewer than three steps, and doubles every gradient from
    three steps on: two distinct failures for Hypothesis (the smallest draw has neither)."""

    def wrong(*args):
        B, T = args[6].shape[:2]  # soft_rows takes X seventh, batch-major
        if B == 3 and T < 3:
            raise ValueError("three short sequences are not handled")
        loss, *grads = function(*args)
        return (loss, *(2 * g for g in grads)) if T >= 3 else (loss, *grads)

    return wrong


def test_each_of_several_property_failures_is_reported_with_its_example():
    module = importlib.import_module("soft_rows")
    wrong = _two_ways_wrong(module.forward_backward)
    with contextlib.redirect_stdout(io.StringIO()):
        certificate = rnnspec.check(
            wrong, module.CONVENTIONS, pytest_args=("-k", "test_gradients_match_reference")
        )
    failed = [t for t in certificate["backends"][0]["tests"] if t["outcome"] == "failed"]
    assert failed
    message = failed[0]["message"]
    assert message.startswith("2 distinct failures:"), message
    assert "(1) " in message and "(2) " in message, message
    # each with the example Hypothesis shrank it to (its words differ between versions)
    assert len(re.findall(r"Falsifying example|Failing test case", message)) == 2, message
    assert (
        "ValueError: three short sequences are not handled" in message
        and "AssertionError" in message
    )
