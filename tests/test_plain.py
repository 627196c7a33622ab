"""rnnspec.check: plain BPTT functions, each in its own conventions (examples/plain-functions), are
certified for what they declare; the same functions with a planted mistake are not; bad
conventions are a SpecError that names the field."""

import contextlib
import importlib
import io
import sys

import numpy as np
import pytest

import rnnspec
from rnnspec.spec import BackendError, SpecError
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "examples" / "plain-functions"))  # plain modules, as a user's are

#: example -> (the function, as the user hands it over; its conventions; the scope in words)
EXAMPLES = {
    "batch_rows": ("rnn_loss_and_grads", "soft targets, a given h(0)"),
    "char_rnn": ("loss_fun", "soft targets, a given h(0), inputs x(t) as vectors"),
    "two_biases": ("rnn_backward", "the forward pass (h, o, ŷ)"),
    "token_mean": ("bptt", "soft targets, the forward pass (h, o, ŷ)"),
    "soft_rows": ("forward_backward", "the forward pass (h, o, ŷ)"),
}


def example(name: str):
    module = importlib.import_module(name)
    function = getattr(module, EXAMPLES[name][0])
    if name == "token_mean":  # bptt(params, x, y, h0): the one line its docstring shows
        bptt = function
        function = lambda x, y, h0, U, W, b, V, c: bptt((U, W, b, V, c), x, y, h0)
    return function, module.CONVENTIONS


def quietly(function, conventions, *pytest_args, name=None) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        return rnnspec.check(function, conventions, name=name, pytest_args=pytest_args)


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_is_certified_for_what_it_declares(name):
    certificate = quietly(*example(name), name=name)
    (report,) = certificate["backends"]
    assert certificate["certified"], report["summary"]
    assert report["outcomes"].get("passed", 0) > 500, report["summary"]
    assert ", ".join(report["scope"]["not checked"]).startswith(EXAMPLES[name][1])


def _wrapped(name, change):
    """The example with its result changed by ``change(result) -> result``."""
    function, conventions = example(name)
    return (lambda *args: change(function(*args))), conventions


def _drop_b2(result):
    return {**result, "b_hh": np.zeros_like(result["b_hh"])}


def _promoted(result):
    loss, *grads = result
    return (loss, *(g.astype(np.float64) for g in grads))


def _clipped(result):
    loss, *grads = result
    return (loss, *(np.clip(g, -0.05, 0.05) for g in grads))


def _transposed_W(result):
    loss, dU, dW, *rest = result
    return (loss, dU, dW.T, *rest)


def _unscaled(result):  # the mean's gradients without the 1/B: a sum's, under a mean's name
    loss, *grads = result
    return (loss, *(g * 3 for g in grads))


PLANTED = {
    "∇b_hh forgotten": ("two_biases", _drop_b2, "form_b"),
    "float64 results of float32 inputs": ("soft_rows", _promoted, "outputs_dtype"),
    "gradients clipped": ("soft_rows", _clipped, "form_b"),
    "∇Wh transposed": ("soft_rows", _transposed_W, "form_b"),
    "the mean's gradients not divided": ("batch_rows", _unscaled, "form_b"),
}


@pytest.mark.parametrize("mistake", PLANTED)
def test_a_planted_mistake_fails(mistake):
    name, change, selected = PLANTED[mistake]
    certificate = quietly(*_wrapped(name, change), "-k", selected)
    (report,) = certificate["backends"]
    assert not certificate["certified"] and report["outcomes"].get("failed"), report["summary"]


def test_a_result_of_another_arity_is_named():
    function, conventions = example("soft_rows")
    backend = rnnspec.plain.backend(lambda *args: function(*args)[:-1], conventions)
    from rnnspec.conformance.cases import CASES

    with pytest.raises(BackendError, match=r"returned 7 values where its conventions\.returns"):
        backend.gradients(*CASES["basic"].native(backend, "float64"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"layout": "row-major"}, r"^conventions.layout: expected one of \('time-major'"),
        ({"arguments": ("x", "y", "U", "W", "b", "V")}, r"^conventions.arguments: expected each"),
        ({"arguments": ("x", "y", "U", "W", "b", "V", "c", "d")}, r"^conventions.arguments"),
        ({"returns": ("U", "W", "b", "V", "c")}, r"^conventions.returns: expected the names"),
        ({"returns": ("L", "U", "W", "b", "V", "c", "c")}, r"^conventions.returns"),
        (
            {
                "arguments": ("x", "y", "U", "W", "b", "V", "c"),
                "returns": ("L", "U", "W", "b", "V", "c", "h0"),
            },
            r"^conventions.returns: ∇h0 is returned, but arguments take no h0",
        ),
    ],
)
def test_bad_conventions_name_the_field(fields, message):
    with pytest.raises(SpecError, match=message):
        rnnspec.Conventions(**fields)


def test_a_function_gets_its_own_copies():
    """The caller's arrays reach the function as copies: a function that writes into its
    arguments leaves the suite's arrays as they were."""
    function, conventions = example("two_biases")

    def scribbler(*args):
        result = function(*args)
        for a in args:
            a[...] = 0
        return result

    from rnnspec.conformance.cases import CASES

    backend = rnnspec.plain.backend(scribbler, conventions)
    params, x, y, h0 = CASES["basic"].native(backend, "float64")
    before = [a.copy() for a in (*params, x, y, h0)]
    backend.gradients(params, x, y, h0)
    assert all(np.array_equal(a, b) for a, b in zip(before, (*params, x, y, h0)))


def test_the_check_page_runs_as_written():
    """docs/check.md's Python blocks, in order, in one namespace (its asserts are the page's
    claims: the first look fails, the fixed function is certified), and its quoted verdict is
    the one printed."""
    import re

    page = (ROOT / "docs" / "check.md").read_text()
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        for block in re.findall(r"^```python\n(.*?)^```", page, flags=re.S | re.M):
            exec(compile(block, "docs/check.md", "exec"), namespace)
    quoted = re.search(r"^```text\n(certified: .*?)^```", page, flags=re.S | re.M)[1]
    want = " ".join(quoted.split()).split(" on cpu, ", 1)[1]
    got = " ".join(printed.getvalue().split())
    assert f"certified: fixed (numpy {np.__version__}) on cpu, {want}" in got


def test_a_dtype_promotion_is_not_blamed_on_state_nor_on_the_other_dtype():
    """The outside check's float32-only problem (results promoted to float64): the state group's
    float32 rows name a promotion, not a cache, and its float64 rows pass with both dtypes run,
    as with float64 alone."""
    certificate = quietly(*_wrapped("soft_rows", _promoted), "-k", "results_independent")
    by_dtype: dict = {}
    for test in certificate["backends"][0]["tests"]:
        if test["outcome"] != "n/a":
            by_dtype.setdefault(test["dtype"], []).append(test)
    assert all(t["outcome"] == "passed" for t in by_dtype["float64"]), by_dtype["float64"]
    failed = [t for t in by_dtype["float32"] if t["outcome"] == "failed"]
    assert failed and all("a dtype promotion, not state" in t["message"] for t in failed)
