"""The immutable records every backend takes and returns; their fields hold backend arrays."""

from dataclasses import dataclass
from typing import Any, NamedTuple

Array = Any  # a backend's native array: numpy.ndarray, torch.Tensor, jax.Array, tf.Tensor, ...


#: The nonlinearities φ of h(t) = φ(a(t)) that SPEC.md defines (§1), in its order.
NONLINEARITIES = ("tanh", "relu")


@dataclass(frozen=True)
class Model:
    """What a call computes beyond its arrays (SPEC.md §1, §8): passed as ``model=`` to every
    method that takes params; None is ``Model()``, the tanh network every earlier call meant."""

    nonlinearity: str = "tanh"  # φ, one of NONLINEARITIES
    layers: int = 1  # N of SPEC.md §12: stacked layers, layer l + 1 reading layer l's states
    bidirectional: bool = False  # each layer a forward and a reverse direction (§12)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def cells(self) -> int:
        """Layers × directions: how many (U, W, b, h0) the network has (§12)."""
        return self.layers * self.directions

    @property
    def stacked(self) -> bool:
        """Whether it is more than the one-layer network of §1: its Params hold one U, W, b per
        cell, as tuples in cell order (§12)."""
        return self.cells > 1


class Params(NamedTuple):
    """Weights of the cell, in the book's orientation: a = b + W h + U x, o = c + V h.

    For a stacked or bidirectional model (SPEC.md §12) U, W and b are tuples with one array per
    cell, cell i = l·directions + d for layer l and direction d (0 forward, 1 reverse), torch's
    order; U[i] is (H, D) in the first layer and (H, directions·H) above it, V is
    (K, directions·H). For the layer alone (§13) V and c are None."""

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
    """Gradients of a loss with respect to every input of the model, each shaped like that input
    (for a stack, U, W and b are tuples as in Params and h0 is (cells, B, H), SPEC.md §12)."""

    U: Array  # (H, D)
    W: Array  # (H, H)
    b: Array  # (H,)
    V: Array  # (K, H)
    c: Array  # (K,)
    h0: Array  # (B, H)
    x: Array  # (T, B, D)


class LayerOutputs(NamedTuple):
    """What a recurrent layer without a head returns (SPEC.md §13), as torch.nn.RNN does."""

    h: Array  # (T, B, directions·H) the top layer's states, [forward; reverse] at each t
    h_n: Array  # (B, H), or (cells, B, H) for a stack: each cell's state after its last step


class LagNorms(NamedTuple):
    """Frobenius norms ‖G_j‖ of the lag-j parts of ∇L (SPEC.md §10.1), each (n_lags,) for
    j = 0 … n_lags − 1; V and c have a lag-0 part only (zeros after it)."""

    U: Array
    W: Array
    b: Array
    V: Array
    c: Array
    h0: Array
    x: Array


class JacobianNorms(NamedTuple):
    """‖∂h(T)/∂h(T−j)‖₂ for j = 1 … T−1 (SPEC.md §10.4); row j − 1 holds lag j."""

    per_sequence: Array  # (T − 1, B) spectral norms
    mean: Array  # (T − 1,) their mean over the batch
    sigma_max_W: Array  # () σ₁(W), the largest singular value of W
    regime: str  # Pascanu et al.'s condition that σ₁(W) meets, in words (§10.4)
