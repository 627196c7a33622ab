"""Backends off by a known relative amount, to measure how small an error the suite can see
(SPEC.md §6.6, scripts/resolving_power.py, tests/test_resolving_power.py).

Each is the NumPy backend with the results of ``gradients`` and ``step_gradients`` (and of
``autodiff_gradients`` where a backend has one; NumPy has none) changed after the fact:

- ``<tensor>_e<k>`` (e.g. ``W_e5``, ``L_e13``, ``h0_e7``): ONE tensor of the result, ``L`` or a field
  of ``Grads``, times (1 + 10^-k), for k = 1 … 16; every other tensor is the NumPy backend's own.
  Use it as ``--backend tests.scaled_backends:W_e5``. ``scaled(tensor, eps)`` makes the same for
  any ε.
- ``few_ulps``: every entry of every tensor times (1 + k·u·r), r uniform in [−1, 1], k = ULPS = 4,
  u the unit roundoff of the dtype (2^-24, 2^-53): a rounding-sized random error, which a correct
  backend may have and the suite must pass.

The perturbation is computed in float64 and rounded once to the result's dtype, so the relative
change is ε itself (up to that one rounding); zeros stay zero.
"""

from collections.abc import Callable

import numpy as np

from rnnspec.backends.numpy import NumpyBackend
from rnnspec.spec import Grads
from rnnspec.spec.tolerance import UNIT_ROUNDOFF

#: The tensors of a gradients result, by the names the suite's messages use less the "Grads."
TENSORS = ("L", *Grads._fields)  # L, U, W, b, V, c, h0, x
#: ε = 10^-k for these k: decades from 1e-1 to 1e-16.
DECADES = tuple(range(1, 17))
#: few_ulps: each entry off by up to this many unit roundoffs.
ULPS = 4


def _round_to(value: np.ndarray, like) -> object:
    """``value`` (float64) in the dtype of ``like``, a 0-d result as a NumPy scalar like L's."""
    out = np.asarray(value, np.asarray(like).dtype)
    return out[()] if out.ndim == 0 else out


class _Perturbed(NumpyBackend):
    """The NumPy backend with every gradients-like result passed through ``_perturb``."""

    def _perturb(self, name: str, value: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _result(self, result):
        loss, grads = result
        loss = self._perturb("L", loss)
        return loss, Grads(*(self._perturb(f, getattr(grads, f)) for f in Grads._fields))

    def gradients(self, params, x, y, h0=None, mask=None, model=None):
        return self._result(super().gradients(params, x, y, h0, mask, model))

    def step_gradients(self, params, x, y, t, h0=None, mask=None, model=None):
        return self._result(super().step_gradients(params, x, y, t, h0, mask, model))


class _Scaled(_Perturbed):
    tensor = "W"
    eps = 0.0

    def _perturb(self, name, value):
        if name != self.tensor:
            return value
        exact = np.asarray(value, np.float64)
        return _round_to(exact + self.eps * exact, value)


class _FewUlps(_Perturbed):
    def __init__(self, device=None):
        super().__init__(device)
        self._rng = np.random.default_rng(0)

    def _perturb(self, name, value):
        exact = np.asarray(value, np.float64)
        u = UNIT_ROUNDOFF[str(np.asarray(value).dtype)]
        r = self._rng.uniform(-1.0, 1.0, size=exact.shape)
        return _round_to(exact * (1 + ULPS * u * r), value)


def scaled(tensor: str, eps: float, attribute: str | None = None) -> Callable[..., NumpyBackend]:
    """A backend factory: ``tensor`` ("L", "U", "W", …) of every gradients result times (1 + eps).

    ``attribute``: the module attribute that holds the factory, for the backend's name (which the
    suite's reproduction snippets load it by)."""
    if tensor not in TENSORS:
        raise ValueError(f"tensor must be one of {TENSORS}, not {tensor!r}")
    cls = type(f"Scaled_{tensor}", (_Scaled,), {"tensor": tensor, "eps": float(eps)})
    label = attribute or f"scaled({tensor!r}, {eps!r})"

    def factory(device=None):
        backend = cls(device)
        backend.name = f"tests.scaled_backends:{label}"
        return backend

    return factory


def few_ulps(device=None):
    backend = _FewUlps(device)
    backend.name = "tests.scaled_backends:few_ulps"
    return backend


def name(tensor: str, k: int) -> str:
    """The module attribute of the backend with ``tensor`` off by 10^-k: name("W", 5) == "W_e5"."""
    return f"{tensor}_e{k}"


# W_e1 … W_e16, L_e1 … L_e16, and so on for every tensor: the factories --backend can name.
globals().update({name(t, k): scaled(t, 10.0**-k, name(t, k)) for t in TENSORS for k in DECADES})
