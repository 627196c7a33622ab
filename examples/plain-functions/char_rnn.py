"""A character-level RNN's BPTT in the style of min-char-rnn: one sequence of character indices,
column vectors (bh, by as (H, 1), (K, 1)), h(0) = 0 with no argument for it, the loss summed over
the sequence, and the gradients of the weights only (word indices have no ∇x).

    import rnnspec
    from char_rnn import loss_fun, CONVENTIONS
    rnnspec.check(loss_fun, CONVENTIONS)
"""

import numpy as np

import rnnspec


def loss_fun(inputs, targets, Wxh, Whh, Why, bh, by):
    """inputs, targets: lists of indices; returns the loss and the gradients of the parameters."""
    vocab, hidden = Wxh.shape[1], Whh.shape[0]
    xs, hs, ps = {}, {-1: np.zeros((hidden, 1), Wxh.dtype)}, {}
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab, 1), Wxh.dtype)
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        ys = Why @ hs[t] + by
        log_ps = ys - ys.max() - np.log(np.exp(ys - ys.max()).sum())
        ps[t] = np.exp(log_ps)
        loss = loss - log_ps[targets[t], 0]
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = ps[t].copy()
        dy[targets[t]] -= 1
        dWhy += dy @ hs[t].T
        dby += dy
        dh = Why.T @ dy + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += dhraw @ xs[t].T
        dWhh += dhraw @ hs[t - 1].T
        dhnext = Whh.T @ dhraw
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


CONVENTIONS = rnnspec.Conventions(
    arguments=("x", "y", "U", "W", "V", "b", "c"),
    returns=("L", "U", "W", "V", "b", "c", "_"),  # the last hidden state is not checked
    vectors="column",
    targets="classes",
    inputs="indices",
    sequence=True,
)
