"""Deliberately wrong backends: each makes one of the seed derivation's mistakes (SPEC.md §5), and
the conformance suite must reject every one (tests/test_suite_rejects_wrong_backends.py).

Each is the NumPy backend with its form B kernel replaced by a plain per-step loop that has one
switch flipped, so that exactly one formula is wrong."""

import numpy as np

from rnnspec.backends.numpy import NumpyBackend, _hidden_states, _log_softmax_outputs
from rnnspec.spec import Grads


class _WrongBackend(NumpyBackend):
    commuted_product = False  # E2: D_k (∏ D_i)(Wᵀ)^(t−k) in place of the ordered product
    p_minus_y = False  # E1: ŷ − y in place of (Σy) ŷ − y
    untransposed_W = False  # E3: W in place of Wᵀ in the recursion
    h_k_for_h_k_minus_1 = False  # E3/E4: δ(k) h(k)ᵀ in place of δ(k) h(k−1)ᵀ

    def _gradients(self, p, x, y, h0):
        T, _B, _ = x.shape
        h = _hidden_states(p, x, h0)
        _, log_yhat = _log_softmax_outputs(p, h)
        yhat = np.exp(log_yhat)
        e = yhat - y if self.p_minus_y else y.sum(-1, keepdims=True) * yhat - y
        hs = np.concatenate([h0[None], h])  # hs[k] = h(k)
        W_back = p.W.T if self.untransposed_W else p.W  # row form: δ @ W is Wᵀ δ
        grads = {f: 0.0 for f in Grads._fields}
        grads["x"] = np.zeros_like(x)
        for t in range(1, T + 1):  # ∇L(t) by form A, one step at a time
            g = e[t - 1] @ p.V
            for k in range(t, 0, -1):
                if self.commuted_product:
                    D_prod = np.prod(1 - hs[k : t + 1] ** 2, axis=0)
                    delta = (e[t - 1] @ p.V) @ np.linalg.matrix_power(W_back, t - k) * D_prod
                else:
                    delta = g * (1 - hs[k] ** 2)
                    g = delta @ W_back
                h_left = hs[k] if self.h_k_for_h_k_minus_1 else hs[k - 1]
                grads["U"] = grads["U"] + delta.T @ x[k - 1]
                grads["W"] = grads["W"] + delta.T @ h_left
                grads["b"] = grads["b"] + delta.sum(0)
                grads["x"][k - 1] += delta @ p.U
                if k == 1:
                    grads["h0"] = grads["h0"] + delta @ W_back
            grads["V"] = grads["V"] + e[t - 1].T @ h[t - 1]
            grads["c"] = grads["c"] + e[t - 1].sum(0)
        loss = -np.vdot(y, log_yhat)
        return loss, Grads(**{f: np.asarray(v, x.dtype) for f, v in grads.items()})


def _variant(**switches):
    cls = type("WrongBackend", (_WrongBackend,), switches)

    def factory(device=None):
        backend = cls(device)
        backend.name = "tests.wrong_backends:" + "+".join(switches) if switches else "control"
        return backend

    return factory


control = _variant()  # every switch off: must pass, so that the others fail for their mistake
seed_commuted_product = _variant(commuted_product=True)
seed_p_minus_y = _variant(p_minus_y=True)
missing_transpose = _variant(untransposed_W=True)
h_k_in_place_of_h_k_minus_1 = _variant(h_k_for_h_k_minus_1=True)


class _HiddenAutodiff(NumpyBackend):
    """Has autodiff_gradients (here: the closed form under another name) but declares none, so
    the suite would never check it."""

    def autodiff_gradients(self, params, x, y, h0=None):
        return self.gradients(params, x, y, h0)


def hidden_autodiff(device=None):
    return _HiddenAutodiff(device)
