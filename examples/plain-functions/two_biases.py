"""BPTT as a PyTorch-minded author writes it in NumPy: time-major, two hidden biases (b_ih and
b_hh, as torch.nn.RNN has), h(0) given, soft targets or class indices, the loss summed, and every
gradient returned in a dict, ∇h(0) and ∇x included.

    import rnnspec
    from two_biases import rnn_backward, CONVENTIONS
    rnnspec.check(rnn_backward, CONVENTIONS)
"""

import numpy as np

import rnnspec


def rnn_backward(x, targets, h0, w_ih, w_hh, b_ih, b_hh, w_out, b_out):
    """x (T, B, D); targets (T, B) indices or (T, B, K) weights; w_ih (H, D); returns a dict."""
    T = x.shape[0]
    K = w_out.shape[0]
    y = np.eye(K, dtype=x.dtype)[targets] if targets.ndim == 2 else targets
    h = [h0]
    log_p = []
    for t in range(T):
        h.append(np.tanh(x[t] @ w_ih.T + b_ih + h[t] @ w_hh.T + b_hh))
        o = h[t + 1] @ w_out.T + b_out
        o = o - o.max(axis=1, keepdims=True)
        log_p.append(o - np.log(np.exp(o).sum(axis=1, keepdims=True)))
    loss = -sum((y[t] * log_p[t]).sum() for t in range(T))
    weights = {
        "w_ih": w_ih,
        "w_hh": w_hh,
        "b_ih": b_ih,
        "b_hh": b_hh,
        "w_out": w_out,
        "b_out": b_out,
    }
    grads = {name: np.zeros_like(w) for name, w in weights.items()}
    dx = np.zeros_like(x)
    dh = np.zeros_like(h0)
    for t in reversed(range(T)):
        e = np.exp(log_p[t]) * y[t].sum(axis=1, keepdims=True) - y[t]  # ŷ Σy − y (erratum E1)
        grads["w_out"] += e.T @ h[t + 1]
        grads["b_out"] += e.sum(0)
        da = (1 - h[t + 1] ** 2) * (e @ w_out + dh)
        grads["w_ih"] += da.T @ x[t]
        grads["w_hh"] += da.T @ h[t]
        grads["b_ih"] += da.sum(0)
        grads["b_hh"] += da.sum(0)
        dx[t] = da @ w_ih
        dh = da @ w_hh
    return {"loss": loss, **grads, "h0": dh, "x": dx}


CONVENTIONS = rnnspec.Conventions(
    arguments=("x", "y", "h0", "U", "W", "b", "b2", "V", "c"),
    returns={
        "loss": "L",
        "w_ih": "U",
        "w_hh": "W",
        "b_ih": "b",
        "b_hh": "b2",
        "w_out": "V",
        "b_out": "c",
        "h0": "h0",
        "x": "x",
    },
)
