"""The immutable records every backend takes and returns; their fields hold backend arrays."""

from typing import Any, NamedTuple

Array = Any  # a backend's native array: numpy.ndarray, torch.Tensor, jax.Array, tf.Tensor, ...


class Params(NamedTuple):
    """Weights of the cell, in the book's orientation: a = b + W h + U x, o = c + V h."""

    U: Array  # (H, D) input-to-hidden
    W: Array  # (H, H) hidden-to-hidden
    b: Array  # (H,)   hidden bias
    V: Array  # (K, H) hidden-to-output
    c: Array  # (K,)   output bias


class Forward(NamedTuple):
    """The forward pass for t = 1..T; h does not repeat h(0)."""

    h: Array  # (T, B, H) hidden states h(1)..h(T)
    o: Array  # (T, B, K) logits
    yhat: Array  # (T, B, K) softmax probabilities


class Grads(NamedTuple):
    """Gradients of a loss with respect to every input of the model, each shaped like that input."""

    U: Array  # (H, D)
    W: Array  # (H, H)
    b: Array  # (H,)
    V: Array  # (K, H)
    c: Array  # (K,)
    h0: Array  # (B, H)
    x: Array  # (T, B, D)
