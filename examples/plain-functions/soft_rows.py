"""BPTT for soft targets (label smoothing, distillation): batch-major, row-vector weights, h(0)
given, the loss summed, every gradient returned, ∇h(0) and ∇x included, as one tuple.

    import rnnspec
    from soft_rows import forward_backward, CONVENTIONS
    rnnspec.check(forward_backward, CONVENTIONS)
"""

import numpy as np

import rnnspec


def forward_backward(Wx, Wh, bh, Wy, by, h0, X, Q):
    """X (B, T, D); Q (B, T, K) target weights; h = tanh(x·Wx + h·Wh + bh); o = h·Wy + by."""
    T = X.shape[1]
    H = [h0]
    logq = []
    for t in range(T):
        H.append(np.tanh(X[:, t] @ Wx + H[t] @ Wh + bh))
        o = H[t + 1] @ Wy + by
        m = o.max(axis=1, keepdims=True)
        logq.append(o - m - np.log(np.exp(o - m).sum(axis=1, keepdims=True)))
    loss = -sum((Q[:, t] * logq[t]).sum() for t in range(T))
    dWx, dWh, dbh, dWy, dby = (np.zeros_like(a) for a in (Wx, Wh, bh, Wy, by))
    dX = np.zeros_like(X)
    g = np.zeros_like(h0)  # ∂L/∂h(t) from the steps after t
    for t in reversed(range(T)):
        e = np.exp(logq[t]) * Q[:, t].sum(axis=1, keepdims=True) - Q[:, t]
        dWy += H[t + 1].T @ e
        dby += e.sum(0)
        d = (g + e @ Wy.T) * (1 - H[t + 1] ** 2)
        dWx += X[:, t].T @ d
        dWh += H[t].T @ d
        dbh += d.sum(0)
        dX[:, t] = d @ Wx.T
        g = d @ Wh.T
    return loss, dWx, dWh, dbh, dWy, dby, g, dX


CONVENTIONS = rnnspec.Conventions(
    arguments=("U", "W", "b", "V", "c", "h0", "x", "y"),
    returns=("L", "U", "W", "b", "V", "c", "h0", "x"),
    layout="batch-major",
    weights="row",
    targets="soft",
)
