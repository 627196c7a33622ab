"""Failures that diagnose: when a wrong tensor equals what a known mistake gives on the same case,
the failure names the mistake and the SPEC.md section to read ("Grads.V matches erratum E1: ŷ − y
where Σ_k y_k ≠ 1"). Each mistake's answer is computed here in float64, by the same formulas as
the reference with the one mistake made, only for a check that already failed: a correct backend
never meets this module."""

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from rnnspec.conformance.cases import Case
from rnnspec.spec import reference, reference_flow, tolerance

GRADIENT_METHODS = ("gradients", "autodiff_gradients")


class Mistake(NamedTuple):
    words: str  # what the code did, and where SPEC.md says what is right
    #: (case, method, t) -> tensor name -> the mistake's value; None where it makes no difference
    answer: Callable[[Case, str, int | None], dict[str, np.ndarray] | None]


def _variant(case: Case, *, error="Σy", transpose=True, previous=True, argmax=False) -> dict:
    """(L, ∇L) by form B in rows, float64, with one of the seed's mistakes where asked: the
    output error ŷ − y (E1), W for Wᵀ in the recursion (E3), h(k) for h(k−1) in ∇W (E4), or the
    soft targets replaced by their argmax."""
    p, x, y, h0 = case.arrays("float64")
    T, B, D = x.shape
    H, K = p.W.shape[0], p.V.shape[0]
    Y = np.eye(K)[y] if y.ndim == 2 else y
    if argmax:
        Y = np.eye(K)[Y.argmax(-1)]
    h = np.zeros((T + 1, B, H))
    h[0] = 0 if h0 is None else h0
    log_yhat = np.zeros((T, B, K))
    for t in range(T):
        h[t + 1] = np.tanh(p.b + h[t] @ p.W.T + x[t] @ p.U.T)
        o = h[t + 1] @ p.V.T + p.c
        log_yhat[t] = o - o.max(-1, keepdims=True)
        log_yhat[t] -= np.log(np.exp(log_yhat[t]).sum(-1, keepdims=True))
    loss = -(Y * log_yhat).sum()
    yhat = np.exp(log_yhat)
    e = yhat * Y.sum(-1, keepdims=True) - Y if error == "Σy" else yhat - Y
    g = {name: np.zeros(shape) for name, shape in
         [("U", (H, D)), ("W", (H, H)), ("b", (H,)), ("V", (K, H)), ("c", (K,))]}  # fmt: skip
    dx = np.zeros((T, B, D))
    carry = np.zeros((B, H))
    for t in reversed(range(T)):
        g["V"] += e[t].T @ h[t + 1]
        g["c"] += e[t].sum(0)
        delta = (1 - h[t + 1] ** 2) * (e[t] @ p.V + carry)
        g["U"] += delta.T @ x[t]
        g["W"] += delta.T @ (h[t] if previous else h[t + 1])
        g["b"] += delta.sum(0)
        dx[t] = delta @ p.U
        carry = delta @ (p.W if transpose else p.W.T)
    return {"L": loss, **{f"Grads.{k}": v for k, v in g.items()}, "Grads.h0": carry, "Grads.x": dx}


def _form_a(case: Case, product: str, t: int | None) -> dict:
    """∇L(t) (a step t) or ∇L = Σ_t ∇L(t) by form A's terms δ_k(t) (2.3), float64, with the
    Jacobian product as the seed wrote it: "commuted", D_k ∏ D_i (Wᵀ)^(t−k) Vᵀ e(t) (erratum
    E2), or "D_t" in every factor, (D_t Wᵀ)^(t−k) D_t Vᵀ e(t) (erratum E4). The tensors the
    product reaches: ∇U, ∇W, ∇b."""
    p, x, y, h0 = case.arrays("float64")
    T, B, _ = x.shape
    H, K = p.W.shape[0], p.V.shape[0]
    Y = np.eye(K)[y] if y.ndim == 2 else y
    h = np.zeros((T + 1, B, H))
    h[0] = 0 if h0 is None else h0
    for i in range(T):
        h[i + 1] = np.tanh(p.b + h[i] @ p.W.T + x[i] @ p.U.T)
    g = {"Grads.U": np.zeros_like(p.U), "Grads.W": np.zeros_like(p.W), "Grads.b": np.zeros(H)}
    for n in range(B):
        D: list = [None] + [np.diag(1 - h[i, n] ** 2) for i in range(1, T + 1)]  # 1-based
        for step in range(1, T + 1) if t is None else (t,):
            o = p.V @ h[step, n] + p.c
            yhat = np.exp(o - o.max()) / np.exp(o - o.max()).sum()
            e = Y[step - 1, n].sum() * yhat - Y[step - 1, n]  # (2.1)
            for k in range(1, step + 1):
                if product == "commuted":
                    inner = np.eye(H)
                    for i in range(k + 1, step + 1):
                        inner = inner @ D[i]
                    delta = D[k] @ inner @ np.linalg.matrix_power(p.W.T, step - k) @ p.V.T @ e
                else:
                    delta = D[step] @ p.V.T @ e
                    for _ in range(k, step):
                        delta = D[step] @ p.W.T @ delta
                g["Grads.U"] += np.outer(delta, x[k - 1, n])
                g["Grads.W"] += np.outer(delta, h[k - 1, n])
                g["Grads.b"] += delta
    return g


def _named(loss, grads) -> dict:
    return {"L": loss, **{f"Grads.{f}": np.asarray(v) for f, v in zip(grads._fields, grads)}}


def _last_step(case: Case) -> dict:
    params, x, y, h0 = case.arrays("float64")
    return _named(*reference.step_gradients(params, x, y, case.T, h0))


def _total(answer):
    """A mistake of the total gradient (gradients, autodiff_gradients), not of one step's."""
    return lambda case, method, t: answer(case) if method in GRADIENT_METHODS else None


def _soft_only(answer):
    """A mistake that shows only with soft targets (with class indices it is no mistake)."""
    return lambda case, method, t: answer(case, method, t) if case.soft_targets else None


#: E6 (no ∇h(0), ∇x) is diagnosed by its zeros; E7, the book's eq. 10.21 as printed, is undefined
#: (a vector times a matrix on the right): no code computes it
MISTAKES = (
    Mistake(
        "erratum E1: ŷ − y, right only where Σ_k y_k = 1 (SPEC.md §5)",
        _soft_only(_total(lambda case: _variant(case, error="ŷ − y"))),
    ),
    Mistake(
        "erratum E2: the Jacobian product commuted, Wᵗ⁻ᵏ ∏ D_i (SPEC.md §5)",
        lambda case, method, t: _form_a(case, "commuted", t) if case.T > 1 else None,
    ),
    Mistake(
        "erratum E3: W for Wᵀ in the backward recursion (SPEC.md §5)",
        _total(lambda case: _variant(case, transpose=False)),
    ),
    Mistake(
        "erratum E4: D_t in every factor of the product (SPEC.md §5)",
        lambda case, method, t: _form_a(case, "D_t", t) if case.T > 1 else None,
    ),
    Mistake(
        "h(k) for h(k−1) in ∇W: δ_k(t) h(k)ᵀ, not (2.5)'s δ_k(t) h(k−1)ᵀ (SPEC.md §2)",
        _total(lambda case: _variant(case, previous=False)),
    ),
    Mistake(
        "erratum E5: ∇L(T), the last step's alone (SPEC.md §5)",
        _total(lambda case: _last_step(case) if case.T > 1 else None),
    ),
    Mistake(
        "soft targets replaced by their argmax (SPEC.md §1)",
        _soft_only(_total(lambda case: _variant(case, argmax=True))),
    ),
)


def _truncations(case: Case):
    params, x, y, h0 = case.arrays("float64")
    for k in range(1, min(case.T, 9)):
        words = f"a BPTT truncated to {k} step{'s' if k > 1 else ''} (SPEC.md §10.2)"
        yield words, _named(*reference_flow.truncated_gradients(params, x, y, k, h0))


def _matches(got: np.ndarray, wrong: np.ndarray, dtype: str, T: int, kappa: float) -> bool:
    wrong = np.asarray(wrong, np.float64)
    return got.shape == wrong.shape and tolerance.ratio(got, wrong, dtype, T, kappa) <= 1.0


def nonfinite(got) -> str:
    """What a NaN or an infinity where the true value is finite most likely is."""
    if np.isnan(np.asarray(got, np.float64)).any():
        return "NaN: an unshifted softmax, exp(o) overflowing? (SPEC.md §1, (1.4))"
    return "infinite: the log of probabilities, log ŷ of a ŷ = 0? (SPEC.md §1)"


def diagnose(
    case: Case, method: str, tensor: str, got, want, dtype: str, kappa: float, t=None
) -> str:
    """What mistake a wrong ``tensor`` of ``method`` on ``case`` is, in words, or ""."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if np.isfinite(want).all() and not np.isfinite(got).all():
        return nonfinite(got)
    if tensor in ("Grads.h0", "Grads.x") and not got.any() and want.any():
        return f"∇{tensor[6:]} all zero: erratum E6, no gradient for it (SPEC.md §5)"
    bound = np.abs(got).max() if got.size else 0.0
    at_bound = np.isclose(np.abs(got), bound, rtol=1e-6, atol=0).sum()
    if (
        tensor != "L"
        and bound > 0
        and at_bound >= 2  # entries cut to the same magnitude: a scalar or one peak is no clip
        and np.abs(want).max() > bound
        and _matches(got, np.clip(want, -bound, bound), dtype, case.T, kappa)
    ):
        return f"clipped: the true gradient cut to ±{bound:.3g}"
    for words, answer in _answers(case, method, t):
        if tensor in answer and _matches(got, answer[tensor], dtype, case.T, kappa):
            return f"matches {words}"
    return ""


#: the longest case whose mistakes are computed: form A's terms and the truncations are O(T²)
#: products in Python, as the reference's form A (conformance.cases.SHORT)
LONGEST = 20


@functools.cache
def _answers(case: Case, method: str, t: int | None) -> tuple[tuple[str, dict], ...]:
    """Every known mistake's answer on this call, computed once however many tensors fail."""
    if method not in (*GRADIENT_METHODS, "step_gradients") or case.padding or case.T > LONGEST:
        return ()
    found = [(m.words, m.answer(case, method, t)) for m in MISTAKES]
    if method in GRADIENT_METHODS:
        found += [
            (words, {k: v for k, v in a.items() if k != "L"}) for words, a in _truncations(case)
        ]
    return tuple((words, answer) for words, answer in found if answer is not None)
