"""Deliberately wrong backends: each makes one of the seed derivation's mistakes (SPEC.md §5), and
the conformance suite must reject every one (tests/test_suite_rejects_wrong_backends.py).

Each is the NumPy backend with its form B kernel replaced by a plain loop over the steps (form A's
double loop for the commuted product, a mistake of form A) that has one switch flipped, so that
exactly one formula is wrong. The backends made for another mistake declare tanh alone
(``TanhOnlyBackend``): their kernels take no φ."""

import dataclasses
from unittest import mock

import numpy as np

from rnnspec.backends import base
from rnnspec.backends import numpy as numpy_backend
from rnnspec.backends.numpy import NumpyBackend, _hidden_states, _log_softmax_outputs
from rnnspec.spec import Capabilities, Grads
from rnnspec.spec.reference_flow import windows


class _WrongBackend(NumpyBackend):
    commuted_product = False  # E2: D_k (∏ D_i)(Wᵀ)^(t−k) in place of the ordered product
    p_minus_y = False  # E1: ŷ − y in place of (Σy) ŷ − y
    untransposed_W = False  # E3: W in place of Wᵀ in the recursion
    h_k_for_h_k_minus_1 = False  # E3/E4: δ(k) h(k)ᵀ in place of δ(k) h(k−1)ᵀ
    relu_derivative_as_tanh = False  # relu's φ′ taken as tanh's, 1 − h²
    derivative_at_h = False  # φ′(h(t)) in place of φ′(a(t)): 1 − tanh(h)², relu′(h) = [h ≥ 0]
    relu_kink_taken_as = 0.0  # the φ′(0) computed, while capabilities declare 0 (SPEC.md §1.1)
    # compiled-path classics: a reverse-mode loop run forwards (E2 under another name: the
    # Jacobian products accumulated in forward order, elixir-nx/axon PR #644), and a loop whose
    # closed-over W gets no gradient from inside it (the loop primitive's bug, pytorch#184528)
    backward_in_forward_order = False
    closed_over_W_without_gradient = False

    def _derivative(self, phi, a, h):
        """D_t's diagonal for every t, as this backend (mis)computes it."""
        if phi == "tanh":
            return 1 - np.tanh(h) ** 2 if self.derivative_at_h else 1 - h * h
        if self.relu_derivative_as_tanh:
            return 1 - h * h
        if self.derivative_at_h:
            return (h >= 0).astype(h.dtype)
        return np.where(a > 0, 1.0, np.where(a < 0, 0.0, self.relu_kink_taken_as)).astype(h.dtype)

    def _gradients(self, p, x, y, h0, phi="tanh"):
        T, _B, _ = x.shape
        h = _hidden_states(p, x, h0, phi)
        _, log_yhat = _log_softmax_outputs(p, h)
        yhat = np.exp(log_yhat)
        e = yhat - y if self.p_minus_y else y.sum(-1, keepdims=True) * yhat - y
        hs = np.concatenate([h0[None], h])  # hs[k] = h(k)
        a = x @ p.U.T + p.b + hs[:-1] @ p.W.T  # (1.1) a(1..T)
        derivative = np.concatenate([np.zeros_like(h0)[None], self._derivative(phi, a, h)])
        W_back = p.W.T if self.untransposed_W else p.W  # row form: δ @ W is Wᵀ δ
        grads = {f: 0.0 for f in Grads._fields}
        grads["x"] = np.zeros_like(x)

        def add(k, delta):  # δ(k)'s terms of (3.3)–(3.5)
            h_left = hs[k] if self.h_k_for_h_k_minus_1 else hs[k - 1]
            grads["U"] = grads["U"] + delta.T @ x[k - 1]
            grads["W"] = grads["W"] + delta.T @ h_left
            grads["b"] = grads["b"] + delta.sum(0)
            grads["x"][k - 1] += delta @ p.U
            if k == 1:
                grads["h0"] = grads["h0"] + delta @ W_back

        if self.commuted_product:  # E2 is a mistake of form A: ∇L(t) one step at a time, O(T²)
            for t in range(1, T + 1):
                for k in range(t, 0, -1):
                    D_prod = np.prod(derivative[k : t + 1], axis=0)
                    add(k, (e[t - 1] @ p.V) @ np.linalg.matrix_power(W_back, t - k) * D_prod)
        else:  # form B, one sweep back: δ(k) = D_k (Vᵀ e(k) + Wᵀ δ(k+1))
            carried = 0.0
            for k in range(1, T + 1) if self.backward_in_forward_order else range(T, 0, -1):
                delta = (e[k - 1] @ p.V + carried) * derivative[k]
                carried = delta @ W_back
                add(k, delta)
        if self.closed_over_W_without_gradient:  # only the loop's body reads W
            grads["W"] = np.zeros_like(p.W)
        for t in range(1, T + 1):
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
relu_derivative_as_tanh = _variant(relu_derivative_as_tanh=True)
derivative_at_h = _variant(derivative_at_h=True)
relu_kink_not_as_declared = _variant(relu_kink_taken_as=1.0)
backward_in_forward_order = _variant(backward_in_forward_order=True)
closed_over_W_without_gradient = _variant(closed_over_W_without_gradient=True)


class TanhOnlyBackend(NumpyBackend):
    """The NumPy backend declaring tanh alone: the base of the backends below, whose kernels take
    no φ; the suite's relu checks are not applicable to them."""

    capabilities = dataclasses.replace(NumpyBackend.capabilities, nonlinearities=("tanh",))


class _HiddenAutodiff(TanhOnlyBackend):
    """Has autodiff_gradients (here: the closed form under another name) but declares none, so
    the suite would never check it."""

    def autodiff_gradients(self, params, x, y, h0=None, mask=None, model=None):
        return self.gradients(params, x, y, h0, mask, model)


def hidden_autodiff(device=None):
    return _HiddenAutodiff(device)


# --- gradient flow (SPEC.md §10) -------------------------------------------------------------


def _commuted_lag_deltas(p, h, e_rows, lags, derivative):
    """E2 in the lag slabs: δ_k(k + j) as (∏_{i=k}^{k+j} D_i)(Wᵀ)^j Vᵀ e(k + j), W^j pulled out."""
    T, B, H = h.shape
    output = (e_rows @ p.V).reshape(T, B, H)
    products = derivative
    for j in range(lags):
        if j:
            products = products[:-1] * derivative[j:]
        yield (output[j:] @ np.linalg.matrix_power(p.W, j)) * products


class _CommutedLagProduct(TanhOnlyBackend):
    """The seed's W^(t−k) (erratum E2) in lag_norms, truncated_gradients and jacobian_norms."""

    def _lag_norms(self, p, x, y, h0, lags):
        with mock.patch.object(base, "lag_deltas", _commuted_lag_deltas):
            return super()._lag_norms(p, x, y, h0, lags)

    def _truncated_gradients(self, p, x, y, h0, k):
        with mock.patch.object(base, "lag_deltas", _commuted_lag_deltas):
            return super()._truncated_gradients(p, x, y, h0, k)

    def _jacobian_norms(self, p, x, h0):
        T = x.shape[0]
        derivative = 1 - _hidden_states(p, x, h0) ** 2
        norms = np.empty((T - 1, x.shape[1]), x.dtype)
        for j in range(1, T):  # (∏ D_i) W^j in place of D_T W D_{T−1} W ⋯
            D_product = np.prod(derivative[T - j :], axis=0)
            commuted = D_product[:, :, None] * np.linalg.matrix_power(p.W, j)
            norms[j - 1] = np.linalg.norm(commuted, 2, axis=(1, 2))
        return norms, norms.mean(axis=1), np.linalg.norm(p.W, 2).astype(x.dtype)


class _StaleStateGradients(TanhOnlyBackend):
    """TBPTT(k1, k2) as the recipe of the PyTorch forum thread "Implementing Truncated
    Backpropagation Through Time" runs it: each state h(s) is a detached leaf whose ``.grad``
    collects Wᵀ δ(s + 1) and is passed on down the window, but is never zeroed (optimizer.zero_grad()
    zeroes the parameters only). Where windows overlap (k1 < k2), a state's gradient from an
    earlier window is backpropagated again in the next one (SPEC.md §5, §10.3)."""

    def tbptt_gradients(self, params, x, y, k1, k2, h0=None, model=None):
        dims = self._validate(params, x, y, h0)
        p, y, h0 = params, self._weights(y, dims), self._initial_state(x, h0, dims)
        T = x.shape[0]
        h = _hidden_states(p, x, h0)
        hs = np.concatenate([h0[None], h])  # hs[s] = h(s)
        step_losses, e = numpy_backend._step_losses_and_output_errors(p, h, y)
        leaf_grad = np.zeros_like(hs)  # h(s).grad, kept across windows: the recipe's mistake
        losses, per_window = [], []
        for tau, first_loss, first_step in windows(T, k1, k2):
            g = {f: 0.0 for f in Grads._fields}
            g["x"] = np.zeros_like(x)
            delta_next = None
            for t in range(tau, first_step - 1, -1):
                grad_h = e[t - 1] @ p.V if t >= first_loss else np.zeros_like(h0)
                if delta_next is not None:
                    leaf_grad[t] += delta_next @ p.W
                    grad_h = grad_h + leaf_grad[t]
                delta = grad_h * (1 - hs[t] ** 2)
                g["U"] = g["U"] + delta.T @ x[t - 1]
                g["W"] = g["W"] + delta.T @ hs[t - 1]
                g["b"] = g["b"] + delta.sum(0)
                g["x"][t - 1] = delta @ p.U
                if t >= first_loss:
                    g["V"] = g["V"] + e[t - 1].T @ hs[t]
                    g["c"] = g["c"] + e[t - 1].sum(0)
                delta_next = delta
            leaf_grad[first_step - 1] += delta_next @ p.W
            g["h0"] = leaf_grad[first_step - 1].copy()
            rows = np.zeros_like(x[: min(k2, T)])  # row m: step first_step + m
            rows[: tau - first_step + 1] = g["x"][first_step - 1 : tau]
            g["x"] = rows
            losses.append(step_losses[first_loss - 1 : tau].sum())
            per_window.append(Grads(**{f: np.asarray(v, x.dtype) for f, v in g.items()}))
        return np.array(losses), Grads(*(np.stack(f) for f in zip(*per_window)))


class _NoGradientFlow(NumpyBackend):
    """A backend that declares no gradient flow: the suite reports its flow checks n/a."""

    capabilities = Capabilities(autodiff=False, devices=("cpu",), masks=True)


class _StateThroughPadding(TanhOnlyBackend):
    """The zero-soft-target trick (SPEC.md §9): masked steps' targets are zeroed (by the base
    class), but the recurrence ignores the mask, so the state runs on through the padding."""

    def _forward(self, p, x, h0, mask=None):
        return super()._forward(p, x, h0)

    def _loss(self, p, x, y, h0, mask=None):
        return super()._loss(p, x, y, h0)

    def _gradients(self, p, x, y, h0, mask=None):
        return super()._gradients(p, x, y, h0)


class _StateResetAtMasks(TanhOnlyBackend):
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


class _PaddedTargetsRead(TanhOnlyBackend):
    """The recurrence honours the mask, but masked steps' targets count in the loss (class
    indices clipped into range, soft targets as given)."""

    def _weights(self, y, dims, mask=None):
        if mask is None or dims.soft_targets:
            return super()._weights(y, dims)
        return super()._weights(np.clip(y, 0, dims.K - 1), dims)


class _MaskedMissingTranspose(TanhOnlyBackend):
    """With a mask, W in place of Wᵀ (E3) throughout; without one, correct."""

    def _gradients(self, p, x, y, h0, mask=None):
        if mask is None:
            return super()._gradients(p, x, y, h0)
        return super()._gradients(p._replace(W=p.W.T), x, y, h0, mask)


class _MaskNotValidated(TanhOnlyBackend):
    """Passes the mask to its kernels without validating it (nor reading targets by it)."""

    def _validate(self, params, x, y, h0, t=None, mask=None, model=None):
        return super()._validate(params, x, y, h0, t, model=model)


def padded_targets_read(device=None):
    return _PaddedTargetsRead(device)


def masked_missing_transpose(device=None):
    return _MaskedMissingTranspose(device)


def mask_not_validated(device=None):
    return _MaskNotValidated(device)


class _NoMasks(NumpyBackend):
    """A protocol 2.1 backend that declares no masks."""

    capabilities = Capabilities(autodiff=False, devices=("cpu",), gradient_flow=True)


def _named(cls, label):
    def factory(device=None):
        backend = cls(device)
        backend.name = f"tests.wrong_backends:{label}"
        return backend

    return factory


commuted_lag_product = _named(_CommutedLagProduct, "commuted_lag_product")
stale_state_gradients = _named(_StaleStateGradients, "stale_state_gradients")
no_gradient_flow = _named(_NoGradientFlow, "no_gradient_flow")
tanh_only = _named(TanhOnlyBackend, "tanh_only")


def no_masks(device=None):
    return _NoMasks(device)


# --- wrong on some shapes only: the drawn mask and flow checks reject them ---------------------


class _MaskedOmittedH0(TanhOnlyBackend):
    """A masked call without h0 returns ∇h0 = 0, as if the omitted h0 were a constant; with h0
    given, or without a mask, it is right."""

    def gradients(self, params, x, y, h0=None, mask=None, model=None):
        loss, grads = super().gradients(params, x, y, h0, mask, model)
        if mask is None or h0 is not None:
            return loss, grads
        return loss, grads._replace(h0=np.zeros_like(grads.h0))


class _MaskInOneByte(TanhOnlyBackend):
    """Keeps each sequence's mask in one byte (the first of np.packbits): the steps past the 8th
    read as masked in the recurrence, which carries the state over them."""

    def _masked(self, mask):
        kept = super()._masked(mask)
        if kept:
            first_byte = np.packbits(mask, axis=0)[:1]
            kept["mask"] = np.unpackbits(first_byte, axis=0, count=len(mask)).astype(bool)
        return kept


class _SquareMaskBatchMajor(TanhOnlyBackend):
    """Guesses the mask's layout from its shape, batch-major (B, T) where it can be: a square mask
    (T = B) is read the wrong way round."""

    def _masked(self, mask):
        kept = super()._masked(mask)
        if kept and mask.shape[0] == mask.shape[1]:
            kept["mask"] = np.ascontiguousarray(mask.T)
        return kept


class _DepthBelowTIsFull(TanhOnlyBackend):
    """Takes k = T − 1 for the full gradient (lags run 0 … T − 1, so k = T − 1 leaves the last one
    out): an off-by-one in "k ≥ T is the full gradient"."""

    def truncated_gradients(self, params, x, y, k, h0=None, model=None):
        T = np.shape(x)[0]
        return super().truncated_gradients(params, x, y, T if k == T - 1 else k, h0, model)


masked_omitted_h0 = _named(_MaskedOmittedH0, "masked_omitted_h0")
mask_in_one_byte = _named(_MaskInOneByte, "mask_in_one_byte")
square_mask_batch_major = _named(_SquareMaskBatchMajor, "square_mask_batch_major")
depth_below_T_is_full = _named(_DepthBelowTIsFull, "depth_below_T_is_full")


# --- stacked and bidirectional networks (SPEC.md §12) and the layer alone (§13) ----------------


class _WrongStack(NumpyBackend):
    """The NumPy backend with its stack kernels (backends/base.py, bound to backends/numpy.py's
    one-cell kernels) made with one thing wrong: ``arrays`` replaces some of its StackArrays,
    ``patches`` some of base.py's functions while a stack kernel runs."""

    arrays: dict = {}
    patches: dict = {}
    ignore_final_gradient = False

    def _kernel(self, name, *args, **keywords):
        arrays = numpy_backend.STACK_ARRAYS._replace(**self.arrays)
        kernels = dict(zip(
            ("stack_forward", "stack_loss", "stack_gradients", "layer_forward", "layer_gradients"),
            base.stack_kernels(arrays),
        ))  # fmt: skip
        with mock.patch.multiple(base, **self.patches) if self.patches else mock.MagicMock():
            return kernels[name](*args, **keywords)

    def _stack_forward(self, *args, **keywords):
        return self._kernel("stack_forward", *args, **keywords)

    def _stack_loss(self, *args, **keywords):
        return self._kernel("stack_loss", *args, **keywords)

    def _stack_gradients(self, *args, **keywords):
        return self._kernel("stack_gradients", *args, **keywords)

    def _layer_forward(self, *args, **keywords):
        return self._kernel("layer_forward", *args, **keywords)

    def _layer_gradients(self, p, x, h_grad, hn_grad, *args, **keywords):
        if self.ignore_final_gradient:  # a loss that reads h_n alone gets no gradient at all
            hn_grad = None
        return self._kernel("layer_gradients", p, x, h_grad, hn_grad, *args, **keywords)


def _reverse_h0_from_forward(h0, model):
    """Each reverse cell starts from its layer's forward cell's h(0)."""
    cells = [h0[i] for i in range(model.cells)] if model.stacked else [h0]
    return [cells[i - i % model.directions] for i in range(model.cells)]


class _NoDeltaDown(_WrongStack):
    """The top layer's δ is not sent down (12.5)–(12.6): the layers below get g(t) = 0, so with
    the head alone (no last-state gradient) their δ, hence their gradients, ∇h(0) and ∇x, are
    exactly zero, which is what this returns for them; the top layer's and the head's are right."""

    def _stack_gradients(self, p, x, y, h0, model, **keywords):
        loss, grads = super()._stack_gradients(p, x, y, h0, model=model, **keywords)
        top = range((model.layers - 1) * model.directions, model.cells)
        below = lambda cells: tuple(g if i in top else g * 0 for i, g in enumerate(cells))
        h0_grad = grads.h0 * np.isin(np.arange(model.cells), top)[:, None, None]
        return loss, grads._replace(U=below(grads.U), W=below(grads.W), b=below(grads.b),
                                    h0=h0_grad, x=grads.x * 0)  # fmt: skip


def _stack_variant(label, **attributes):
    return _named(type(label, (_WrongStack,), attributes), label)


#: [reverse; forward] in place of [forward; reverse] (12.3)
directions_swapped = _stack_variant(
    "directions_swapped",
    arrays={"concatenate_last": lambda arrays: np.concatenate(arrays[::-1], axis=-1)},
)
#: the reverse cell's h(0) taken from the forward cell's
reverse_h0_from_forward = _stack_variant(
    "reverse_h0_from_forward", patches={"_stack_h0": _reverse_h0_from_forward}
)
#: the reverse direction runs over every step, the padding of right-padded sequences as data
#: (its reversed mask dropped: the reverse of a boolean array is None)
reverse_over_padding = _stack_variant(
    "reverse_over_padding",
    arrays={"flip": lambda a: None if a.dtype == bool else a[::-1]},
)
#: ∂ℓ/∂h_n ignored: a loss that reads the last states alone gets zero gradients (pytorch#96416)
final_gradient_ignored = _stack_variant("final_gradient_ignored", ignore_final_gradient=True)
#: layer l + 1's δ not sent down to layer l
no_delta_down = _named(_NoDeltaDown, "no_delta_down")
