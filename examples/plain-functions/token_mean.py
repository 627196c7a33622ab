"""BPTT with the loss averaged over every target (T × B tokens), as language-model code reports
it: time-major, the book's column weights (a = W h + U x), class indices, h(0) given, ∇h(0)
returned but not ∇x.

    import rnnspec
    from token_mean import bptt, CONVENTIONS
    rnnspec.check(lambda x, y, h0, U, W, b, V, c: bptt((U, W, b, V, c), x, y, h0), CONVENTIONS)
"""

import numpy as np

import rnnspec


def bptt(params, x, y, h0):
    """params: (U, W, b, V, c); x (T, B, D); y (T, B) indices; returns (loss, grads, dh0)."""
    U, W, b, V, c = params
    T, B, _ = x.shape
    hs, log_probs = [h0], []
    for t in range(T):
        hs.append(np.tanh(x[t] @ U.T + hs[-1] @ W.T + b))
        o = hs[-1] @ V.T + c
        o -= o.max(axis=1, keepdims=True)
        log_probs.append(o - np.log(np.exp(o).sum(axis=1, keepdims=True)))
    rows = np.arange(B)
    tokens = T * B
    loss = -sum(log_probs[t][rows, y[t]].sum() for t in range(T)) / tokens
    dU, dW, db, dV, dc = (np.zeros_like(p) for p in (U, W, b, V, c))
    carry = np.zeros_like(h0)
    for t in reversed(range(T)):
        e = np.exp(log_probs[t])
        e[rows, y[t]] -= 1
        e /= tokens
        dV += e.T @ hs[t + 1]
        dc += e.sum(0)
        delta = (1 - hs[t + 1] ** 2) * (e @ V + carry)
        dU += delta.T @ x[t]
        dW += delta.T @ hs[t]
        db += delta.sum(0)
        carry = delta @ W
    return loss, (dU, dW, db, dV, dc), carry


CONVENTIONS = rnnspec.Conventions(
    arguments=("x", "y", "h0", "U", "W", "b", "V", "c"),
    returns=("L", ("U", "W", "b", "V", "c"), "h0"),
    loss="step mean",
    targets="classes",
)
