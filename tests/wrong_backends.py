"""Deliberately wrong backends: each makes one of the seed derivation's mistakes (SPEC.md §5), and
the conformance suite must reject every one (tests/test_suite_rejects_wrong_backends.py).

Each is the NumPy backend with its form B kernel replaced by a plain per-step loop that has one
switch flipped, so that exactly one formula is wrong."""

import numpy as np

from rnnspec.backends.numpy import NumpyBackend, _hidden_states, _log_softmax_outputs
from rnnspec.spec import Capabilities, Grads


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

    def autodiff_gradients(self, params, x, y, h0=None, mask=None):
        return self.gradients(params, x, y, h0, mask)


def hidden_autodiff(device=None):
    return _HiddenAutodiff(device)


class _StateThroughPadding(NumpyBackend):
    """The zero-soft-target trick (SPEC.md §9): masked steps' targets are zeroed (by the base
    class), but the recurrence ignores the mask, so the state runs on through the padding."""

    def _forward(self, p, x, h0, mask=None):
        return super()._forward(p, x, h0)

    def _loss(self, p, x, y, h0, mask=None):
        return super()._loss(p, x, y, h0)

    def _gradients(self, p, x, y, h0, mask=None):
        return super()._gradients(p, x, y, h0)


class _StateResetAtMasks(NumpyBackend):
    """A masked step sets the state to zero, h(t) = m(t) tanh(a(t)), in place of carrying h(t−1)
    over; its gradients are exact for that model."""

    def _hidden(self, p, x, h0, mask):
        if mask is None:
            return _hidden_states(p, x, h0)
        h = np.zeros((*x.shape[:2], len(p.b)), x.dtype)
        h_prev = h0
        for t in range(x.shape[0]):
            h[t] = np.where(mask[t, :, None], np.tanh(p.b + h_prev @ p.W.T + x[t] @ p.U.T), 0)
            h_prev = h[t]
        return h

    def _forward(self, p, x, h0, mask=None):
        h = self._hidden(p, x, h0, mask)
        o, log_yhat = _log_softmax_outputs(p, h)
        return h, o, np.exp(log_yhat)

    def _loss(self, p, x, y, h0, mask=None):
        return -np.vdot(y, _log_softmax_outputs(p, self._hidden(p, x, h0, mask))[1])

    def _gradients(self, p, x, y, h0, mask=None):
        if mask is None:
            return super()._gradients(p, x, y, h0)
        h = self._hidden(p, x, h0, mask)
        _, log_yhat = _log_softmax_outputs(p, h)
        e = y.sum(-1, keepdims=True) * np.exp(log_yhat) - y
        delta = np.zeros_like(h)
        delta_next = np.zeros_like(h0)
        for t in reversed(range(x.shape[0])):
            delta[t] = (e[t] @ p.V + delta_next @ p.W) * (1 - h[t] ** 2) * mask[t, :, None]
            delta_next = delta[t]
        hs = np.concatenate([h0[None], h])
        grads = Grads(
            U=np.einsum("tbh,tbd->hd", delta, x),
            W=np.einsum("tbh,tbk->hk", delta, hs[:-1]),
            b=delta.sum((0, 1)),
            V=np.einsum("tbk,tbh->kh", e, h),
            c=e.sum((0, 1)),
            h0=delta[0] @ p.W,
            x=delta @ p.U,
        )
        return -np.vdot(y, log_yhat), grads


def state_through_padding(device=None):
    return _StateThroughPadding(device)


def state_reset_at_masks(device=None):
    return _StateResetAtMasks(device)


class _PaddedTargetsRead(NumpyBackend):
    """The recurrence honours the mask, but masked steps' targets count in the loss (class
    indices clipped into range, soft targets as given)."""

    def _weights(self, y, dims, mask=None):
        if mask is None or dims.soft_targets:
            return super()._weights(y, dims)
        return super()._weights(np.clip(y, 0, dims.K - 1), dims)


class _MaskedMissingTranspose(NumpyBackend):
    """With a mask, W in place of Wᵀ (E3) throughout; without one, correct."""

    def _gradients(self, p, x, y, h0, mask=None):
        if mask is None:
            return super()._gradients(p, x, y, h0)
        return super()._gradients(p._replace(W=p.W.T), x, y, h0, mask)


class _MaskNotValidated(NumpyBackend):
    """Passes the mask to its kernels without validating it (nor reading targets by it)."""

    def _validate(self, params, x, y, h0, t=None, mask=None):
        return super()._validate(params, x, y, h0, t)


def padded_targets_read(device=None):
    return _PaddedTargetsRead(device)


def masked_missing_transpose(device=None):
    return _MaskedMissingTranspose(device)


def mask_not_validated(device=None):
    return _MaskNotValidated(device)


class _NoMasks(NumpyBackend):
    """A protocol 2.1 backend that declares no masks."""

    capabilities = Capabilities(autodiff=False, devices=("cpu",))


def no_masks(device=None):
    return _NoMasks(device)
