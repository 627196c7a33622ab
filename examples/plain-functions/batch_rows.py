"""A course assignment's BPTT: batch-major, row-vector weights (x·Wxh), the loss averaged over the
batch, class indices, h(0) = 0, and no ∇x returned. Certified in five lines:

    import rnnspec
    from batch_rows import rnn_loss_and_grads, CONVENTIONS
    rnnspec.check(rnn_loss_and_grads, CONVENTIONS)
"""

import numpy as np

import rnnspec


def rnn_loss_and_grads(X, Y, Wxh, Whh, Why, bh, by):
    """Batch-major X (B, T, D), class indices Y (B, T), row weights: h = tanh(x Wxh + h Whh + bh),
    mean loss over the batch; h0 = 0; returns no dX."""
    B, T, _ = X.shape
    H = Whh.shape[0]
    hs = [np.zeros((B, H), X.dtype)]
    ps = []
    loss = 0.0
    for t in range(T):
        h = np.tanh(X[:, t] @ Wxh + hs[-1] @ Whh + bh)
        hs.append(h)
        o = h @ Why + by
        o = o - o.max(axis=1, keepdims=True)
        log_p = o - np.log(np.exp(o).sum(axis=1, keepdims=True))
        ps.append(np.exp(log_p))
        loss = loss - log_p[np.arange(B), Y[:, t]].sum()
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dh_next = np.zeros((B, H), X.dtype)
    for t in reversed(range(T)):
        do = ps[t].copy()
        do[np.arange(B), Y[:, t]] -= 1
        dWhy += hs[t + 1].T @ do
        dby += do.sum(0)
        dh = do @ Why.T + dh_next
        da = (1 - hs[t + 1] ** 2) * dh
        dWxh += X[:, t].T @ da
        dWhh += hs[t].T @ da
        dbh += da.sum(0)
        dh_next = da @ Whh.T
    return loss / B, dWxh / B, dWhh / B, dbh / B, dWhy / B, dby / B


CONVENTIONS = rnnspec.Conventions(
    arguments=("x", "y", "U", "W", "V", "b", "c"),  # X, Y, Wxh, Whh, Why, bh, by
    returns=("L", "U", "W", "b", "V", "c"),
    layout="batch-major",
    weights="row",
    loss="batch mean",
    targets="classes",
)
