"""What a third φ costs (issue 22): identity, h(t) = a(t), a linear RNN, added at run time by one
entry in each of the places that name φ, and nothing else of rnnspec changed:

- the name, in ``rnnspec.spec.types.NONLINEARITIES`` (the modules that imported the tuple are
  handed the extended one, as a fresh import of the edited file would give them);
- the reference's φ and φ′ of a, in ``spec/reference.py``'s ``NONLINEARITIES``;
- each backend's φ and φ′ written in h, the one line of ``IDENTITY`` below in its module's
  ``NONLINEARITIES``, which the class's ``base.capabilities(NONLINEARITIES, ...)`` then declares.

SPEC.md would say φ′ = 1 in (1.7). With those lines, every method of every installed backend (the
closed form, autodiff, masks, form A, SPEC.md §10's gradient-flow methods) agrees with the
reference by the suite's own assertions, and the reference with central finite differences.
"""

import dataclasses
import importlib
import sys

import numpy as np
import pytest

from rnnspec.backends import base
from rnnspec.conformance import oracle
from rnnspec.conformance.assertions import Call, assert_matches_reference
from rnnspec.conformance.calls import invoke
from rnnspec.conformance.cases import CASES, MASKED_CASES
from rnnspec.conformance.test_reference import finite_differences
from rnnspec.spec import Params, reference, tolerance, types

#: backend -> (its framework's module, the one line that adds identity to the backend's φ hook)
IDENTITY = {
    "numpy": ("numpy", lambda np: base.Nonlinearity(np.positive, np.ones_like)),  # out= in place
    "torch": ("torch", lambda torch: base.Nonlinearity(lambda a: a, torch.ones_like)),  # in place
    "jax": ("jax.numpy", lambda jnp: base.Nonlinearity(lambda a: a, jnp.ones_like)),
    "tensorflow": ("tensorflow", lambda tf: base.Nonlinearity(tf.identity, tf.ones_like)),
    "mlx": ("mlx.core", lambda mx: base.Nonlinearity(lambda a: a, mx.ones_like)),
}

#: the cases: an unmasked one (every method, §10's included) and one with gaps in its mask
CHECKED = {
    "basic": dataclasses.replace(CASES["basic"], nonlinearity="identity"),
    "masked": dataclasses.replace(MASKED_CASES["masked_relu"], nonlinearity="identity"),
}
#: method -> its integer arguments on a case of T = 5 (t; k; k1, k2)
INTEGERS = {"step_gradients": 2, "truncated_gradients": (2,), "tbptt_gradients": (2, 3)}
FLOW = ("lag_norms", "truncated_gradients", "tbptt_gradients", "jacobian_norms")


@pytest.fixture
def identity_named(monkeypatch):
    """The name added where SPEC.md's list of φ lives, and the reference's φ and φ′ of a."""
    named = types.NONLINEARITIES
    for module in list(sys.modules.values()):
        if getattr(module, "NONLINEARITIES", None) is named:
            monkeypatch.setattr(module, "NONLINEARITIES", (*named, "identity"))
    monkeypatch.setitem(
        reference.NONLINEARITIES, "identity", (lambda a: a, lambda a, at_zero: np.ones_like(a))
    )
    oracle.expected.cache_clear()
    yield
    oracle.expected.cache_clear()


def _with_identity(name, monkeypatch, line=None):
    """Backend ``name`` with identity's line in its module's φ hook, declared as the class would."""
    framework, identity = IDENTITY[name]
    fw = pytest.importorskip(framework)
    from rnnspec import backends

    module = importlib.import_module(f"rnnspec.backends.{name}")
    monkeypatch.setitem(module.NONLINEARITIES, "identity", (line or identity)(fw))
    backend = backends.load(name)
    declared = dataclasses.replace(
        backend.capabilities, nonlinearities=tuple(module.NONLINEARITIES)
    )
    monkeypatch.setattr(backend, "capabilities", declared)
    return backend


def _dtype(backend) -> str:
    """One dtype per backend: what a φ line adds does not depend on it. float64, where the
    backend computes it (JAX: in x64 mode, the user's global switch), for the sharper check."""
    if backend.name == "jax" and not importlib.import_module("jax").config.jax_enable_x64:
        return "float32"
    return "float64" if "float64" in backend.capabilities.dtypes else "float32"


def _check(backend, case, dtype, method):
    params, x, y, h0 = case.native(backend, dtype)
    mask = None if case.padding is None else case.native_mask(backend)
    result = invoke(
        backend, method, params, x, y, h0, t=INTEGERS.get(method), mask=mask, model=case.model()
    )
    return assert_matches_reference(
        result, Call(backend, method, case, dtype, INTEGERS.get(method))
    )


def _methods(backend, case) -> list[str]:
    methods = ["forward", "loss", "gradients", "step_gradients"]
    methods += ["autodiff_gradients"] if backend.capabilities.autodiff else []
    flowing = case.padding is None and backend.capabilities.gradient_flow
    return methods + (list(FLOW) if flowing else [])


@pytest.mark.parametrize("case", CHECKED)
def test_reference_with_identity_matches_finite_differences(identity_named, case):
    case = CHECKED[case]
    mask, model = case.mask(), case.model()
    params, x, y, h0 = case.arrays("float64")
    params = Params(*(p.copy() for p in params))
    h0, x = np.zeros((case.B, case.H)) if h0 is None else h0.copy(), x.copy()
    loss, grads = reference.gradients(params, x, y, h0, mask=mask, model=model)
    for field, array in {**params._asdict(), "h0": h0, "x": x}.items():
        fd = finite_differences(lambda: reference.loss(params, x, y, h0, mask, model), array)
        want = getattr(grads, field)
        assert np.linalg.norm(fd - want) <= tolerance.fd_bound(want, loss), field


@pytest.mark.parametrize("case", CHECKED)
@pytest.mark.parametrize("name", IDENTITY)
def test_one_line_per_backend_adds_identity(identity_named, monkeypatch, name, case):
    backend = _with_identity(name, monkeypatch)
    case = CHECKED[case]
    for method in _methods(backend, case):
        _check(backend, case, _dtype(backend), method)


def test_a_wrong_line_is_caught(identity_named, monkeypatch):
    """The check can fail: identity's φ′ written as tanh's 1 − h² is wrong in every gradient."""
    wrong = lambda np: base.Nonlinearity(np.positive, lambda h: 1 - h * h)
    backend = _with_identity("numpy", monkeypatch, line=wrong)
    _check(backend, CHECKED["basic"], "float64", "forward")  # φ itself is right
    with pytest.raises(AssertionError, match="exceeds the bound"):
        _check(backend, CHECKED["basic"], "float64", "gradients")
