"""PyTorch backend: SPEC.md form B with the input projection and the output layer hoisted out of the
time loop, so that only the recurrence itself loops over t. Keeps the input dtype and device."""

from typing import Any

import numpy as np
import torch

from rnnspec.backends import base
from rnnspec.spec import Capabilities, Grads, Params


def _hidden_states(p: Params, x, h0, mask=None):
    """h(1..T): U x(t) + b for every t in one matrix product, then the recurrence (1.1)–(1.2);
    with a mask, (9.1): a masked step carries h(t−1) over."""
    T, B, D = x.shape
    h = torch.addmm(p.b, x.reshape(T * B, D), p.U.T).reshape(T, B, -1)
    W_T = p.W.T.contiguous()  # a row-major Wᵀ multiplies faster than the transposed view
    h_prev = h0
    if mask is not None:  # m(t) and 1 − m(t) as 0 or 1: v·1 + w·0 = v exactly, faster than where
        kept = mask[..., None].to(h.dtype)
        kept, dropped = kept.unbind(0), (1 - kept).unbind(0)
    for t, h_t in enumerate(h.unbind(0)):  # h_t holds U x(t) + b until overwritten by h(t)
        h_t.addmm_(h_prev, W_T).tanh_()
        if mask is not None:
            h_t.mul_(kept[t]).addcmul_(h_prev, dropped[t])
        h_prev = h_t
    return h


def _log_softmax_outputs(p: Params, h):
    """o(t) = c + V h(t) for all T·B rows in one product (1.3), and log ŷ(t) (1.4)."""
    T, B, H = h.shape
    o = torch.addmm(p.c, h.reshape(T * B, H), p.V.T).reshape(T, B, -1)
    return o, torch.log_softmax(o, dim=-1)


def _loss_and_output_errors(p: Params, h, y):
    """L (1.3)–(1.6) and e(t) = (Σ_k y_k) ŷ − y (2.1) for all T·B rows, in place in one buffer.

    With s = o − max o and Z = Σ_j exp(s_j): log ŷ = s − log Z, so L = Σ_rows ((Σ_k y_k) log Z −
    Σ_k y_k s_k), two sums of non-negative terms, and e = (Σ_k y_k / Z) exp(s) − y.
    """
    T, B, H = h.shape
    y_rows = y.reshape(T * B, -1)
    e = torch.addmm(p.c, h.reshape(T * B, H), p.V.T)  # o(t) = c + V h(t) for all T·B rows (1.3)
    e -= e.amax(dim=1, keepdim=True)  # s
    loss = -torch.vdot(y_rows.flatten(), e.flatten())
    e.exp_()
    Z, y_sums = e.sum(dim=1), y_rows.sum(dim=1)
    loss += torch.vdot(y_sums, Z.log())
    e.mul_((y_sums / Z)[:, None]).sub_(y_rows)
    return loss, e


def _torch_dtype(dtype: Any) -> torch.dtype:
    """torch.float32 for "float32", numpy.float32, numpy.dtype("float32") or torch.float32."""
    return dtype if isinstance(dtype, torch.dtype) else getattr(torch, np.dtype(dtype).name)


class TorchBackend(base.ClosedFormAutodiffBackend):
    name = "torch"
    framework_version = f"torch {torch.__version__}"
    capabilities = Capabilities(autodiff=True, devices=("cpu", "cuda"), masks=True)

    device_names = {"cpu": "cpu", "cuda": "cuda", "gpu": "cuda"}

    def _visible_devices(self, kind):
        if kind == "cpu":
            return ["cpu"]
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(count)]

    def _default_index(self, kind):
        return torch.cuda.current_device() if kind == "cuda" and torch.cuda.is_available() else 0

    def _open_device(self, kind, index):
        self._device = torch.device("cuda", index) if kind == "cuda" else torch.device("cpu")
        return str(self._device)

    def asarray(self, array: np.ndarray, dtype: Any = None) -> torch.Tensor:
        dtype = None if dtype is None else _torch_dtype(dtype)
        return torch.tensor(np.asarray(array, order="C"), dtype=dtype, device=self._device)

    def to_numpy(self, array: torch.Tensor) -> np.ndarray:
        return array.detach().to("cpu", copy=True).numpy()

    def is_native(self, array: Any) -> bool:
        return isinstance(array, torch.Tensor) and array.device == self._device

    def _all_finite(self, array):
        return bool(torch.isfinite(array).all())

    def _zeros_state(self, x, H):
        return x.new_zeros((x.shape[1], H))

    def _zero_masked(self, array, mask):
        return torch.where(mask.reshape(mask.shape + (1,) * (array.ndim - 2)), array, 0)

    def _one_hot(self, y, K, dtype):
        weights = torch.zeros((*y.shape, K), dtype=_torch_dtype(dtype), device=y.device)
        return weights.scatter_(-1, y.long()[..., None], 1)  # faster than gathering rows of I

    @torch.no_grad()
    def _forward(self, p, x, h0, mask=None):
        h = _hidden_states(p, x, h0, mask)
        o, log_yhat = _log_softmax_outputs(p, h)
        return h, o, log_yhat.exp()

    @torch.no_grad()
    def _loss(self, p, x, y, h0, mask=None):
        _, log_yhat = _log_softmax_outputs(p, _hidden_states(p, x, h0, mask))
        return -torch.vdot(y.flatten(), log_yhat.flatten())  # (1.5)–(1.6) L = −Σ_t Σ_k y_k log ŷ_k

    @torch.no_grad()
    def _gradients(self, p, x, y, h0, mask=None):
        T, B, D = x.shape
        h = _hidden_states(p, x, h0, mask)
        loss, e_rows = _loss_and_output_errors(p, h, y)  # (1.6), (2.1); e(t) = 0 where masked
        H = h.shape[-1]
        delta = (e_rows @ p.V).reshape(T, B, H)  # Vᵀ e(t) for every t, then δ(t) in place
        one, D_t = h.new_ones(()), torch.empty_like(h0)
        h0_grad = None
        if mask is None:
            delta_next = None
            steps = zip(reversed(delta.unbind(0)), reversed(h.unbind(0)), strict=True)
            for delta_t, h_t in steps:  # (3.1)–(3.2) δ(t) = D_t (Vᵀ e(t) + Wᵀ δ(t+1)), rows
                if delta_next is not None:
                    delta_t.addmm_(delta_next, p.W)
                delta_next = delta_t.mul_(torch.addcmul(one, h_t, h_t, value=-1, out=D_t))  # (2.2)
        else:  # m(t) D_t for all T·B rows at once, (1 − m(t)) as 0 or 1
            kept = mask[..., None].to(h.dtype)
            kept_D = torch.addcmul(one, h, h, value=-1).mul_(kept)  # (9.9) m(t) D_t, rows
            carried = torch.zeros_like(h0)  # Wᵀ δ(t+1) + (1 − m(t+1)) ∇_{h(t+1)} L, rows
            rows_t = zip(*(reversed(a.unbind(0)) for a in (delta, kept_D, 1 - kept)), strict=True)
            for delta_t, kept_D_t, dropped_t in rows_t:
                delta_t.add_(carried)  # (9.8) ∇_{h(t)} L
                torch.mul(delta_t, dropped_t, out=carried)  # (1 − m(t)) ∇_{h(t)} L
                carried.addmm_(delta_t.mul_(kept_D_t), p.W)  # δ(t) = m(t) D_t ∇_{h(t)} L (9.9)
            h0_grad = carried  # (9.10) Wᵀ δ(1) + (1 − m(1)) ∇_{h(1)} L
        rows = (x.reshape(T * B, D), h.reshape(T * B, H), e_rows, delta.reshape(T * B, H))
        return loss, base.grads_from_deltas(
            base.ARRAY_METHOD_OPS, p, x, h0, B, rows, h0_grad
        )  # (3.3)–(3.5)

    def _autodiff_gradients(self, p, x, y, h0, mask=None):
        inputs = [a.detach().requires_grad_() for a in (*p, h0, x)]  # the caller's stay untouched
        with torch.enable_grad():
            U, W, b, V, c, h0, x = inputs
            T, B, D = x.shape
            xu = torch.addmm(b, x.reshape(T * B, D), U.T).reshape(T, B, -1)
            h = [h0]  # _hidden_states writes in place, which autograd cannot trace: the same
            for t, xu_t in enumerate(xu.unbind(0)):  # recurrence (1.1)–(1.2), (9.1) out of place
                h_t = torch.tanh(torch.addmm(xu_t, h[-1], W.T))
                h.append(h_t if mask is None else torch.where(mask[t, :, None], h_t, h[-1]))
            _, log_yhat = _log_softmax_outputs(Params(U, W, b, V, c), torch.stack(h[1:]))
            loss = -(y * log_yhat).sum()  # (1.5)–(1.6)
            grads = torch.autograd.grad(loss, inputs)
        return loss.detach(), Grads(*grads)

    def enforce_full_precision(self) -> str:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        return (
            "torch: backends.cuda.matmul.allow_tf32 = False, backends.cudnn.allow_tf32 = False, "
            "float32 matmul precision 'highest'"
        )
