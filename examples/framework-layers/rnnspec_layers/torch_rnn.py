"""``torch.nn.RNN`` (``nonlinearity`` tanh or relu, one layer, time-major) + ``torch.nn.Linear`` as
an rnnspec backend, differentiated by ``torch.autograd``.

Weights are ported by SPEC.md §1's table: ``weight_ih_l0 = U`` (H, D), ``weight_hh_l0 = W`` (H, H),
``bias_ih_l0 = b`` with ``bias_hh_l0 = 0`` (the cell adds the two biases, so any split works and each
receives the full ∇b), ``Linear.weight = V`` (K, H), ``Linear.bias = c``; ``h0`` goes in as (1, B, H).
The loss is written by hand, −Σ y · log_softmax(o): exact for soft targets of any row sum.

Masks (SPEC.md §9): nn.RNN runs each sequence's unmasked steps as one shorter sequence
(``unmasked_first``), and h(t) is gathered back from its outputs. Packed sequences
(``pack_padded_sequence``) would skip the steps sorted to the end, but refuse a sequence of length
0, which a mask allows; the layer is causal, so running them changes nothing that is read.

Every call builds its own modules (on the meta device, then ``to_empty``: no random
initialisation, so the user's torch RNG is untouched) and copies the weights into them, so calls
share nothing and may run from several threads at once.
"""

import torch

from rnnspec.spec import Capabilities, Forward, Grads, Params

from ._arrays import TorchArrays
from ._common import LayerBackend, unmasked_first


def _layers(p: Params, phi: str) -> tuple[torch.nn.RNN, torch.nn.Linear]:
    """A fresh nn.RNN (``nonlinearity=phi``) and nn.Linear in p's dtype holding copies of p's
    weights (§1's table)."""
    H, D = p.U.shape
    K = p.V.shape[0]
    # built on the meta device and then given empty storage (what torch.nn.utils.skip_init does,
    # which refuses nn.RNN's *args signature): no initialisation draws from the user's torch RNG
    rnn = torch.nn.RNN(D, H, nonlinearity=phi, dtype=p.U.dtype, device="meta")
    linear = torch.nn.Linear(H, K, dtype=p.U.dtype, device="meta")
    rnn, linear = rnn.to_empty(device=p.U.device), linear.to_empty(device=p.U.device)
    with torch.no_grad():
        rnn.get_parameter("weight_ih_l0").copy_(p.U)  # (H, D)
        rnn.get_parameter("weight_hh_l0").copy_(p.W)  # (H, H)
        rnn.get_parameter("bias_ih_l0").copy_(p.b)  # b = bias_ih + bias_hh
        rnn.get_parameter("bias_hh_l0").zero_()
        linear.weight.copy_(p.V)  # (K, H)
        linear.bias.copy_(p.c)
    return rnn, linear


def _run(rnn: torch.nn.RNN, linear: torch.nn.Linear, x, h0, mask):
    """h (T, B, H) and o (T, B, K) from the layers; x is (T, B, D), the layer's default layout."""
    if mask is None:
        h, _ = rnn(x, h0.unsqueeze(0))  # nn.RNN's h0 is (layers · directions, B, H)
        return h, linear(h)
    order, count = (torch.from_numpy(a).long() for a in unmasked_first(mask.numpy()))
    shorter, _ = rnn(x.gather(0, _rows(order, x)), h0.unsqueeze(0))
    h = torch.cat([h0.unsqueeze(0), shorter]).gather(0, _rows(count, h0.unsqueeze(0)))
    return h, linear(h)


def _rows(index, like):
    """A (T, B) time index broadcast over ``like``'s last axis, for ``gather`` along time."""
    return index.unsqueeze(-1).expand(-1, -1, like.shape[-1])


def _loss_of(o, y):
    """(1.4)–(1.6) by hand: −Σ y · log_softmax(o), exact whatever Σ_k y_k is (erratum E1)."""
    return -(y * torch.log_softmax(o, dim=-1)).sum()


class TorchRNNBackend(LayerBackend):
    """rnnspec backend ``torch_nn_rnn``: torch.nn.RNN + nn.Linear, gradients by torch.autograd."""

    name = "torch_nn_rnn"
    framework_version = f"torch {torch.__version__}"
    capabilities = Capabilities(
        autodiff=True, devices=("cpu",), masks=True, nonlinearities=("tanh", "relu")
    )

    def __init__(self, device: str | None = None):
        super().__init__(device)
        self._arrays = TorchArrays()

    @torch.no_grad()
    def _forward(self, p, x, h0, mask, phi):
        h, o = _run(*_layers(p, phi), x, h0, mask)
        return Forward(h=h, o=o, yhat=torch.softmax(o, dim=-1))

    @torch.no_grad()
    def _loss(self, p, x, y, h0, mask, phi):
        _, o = _run(*_layers(p, phi), x, h0, mask)
        return _loss_of(o, y)

    def _value_and_grad(self, p, x, y, h0, mask, phi):
        rnn, linear = _layers(p, phi)
        h0, x = (a.detach().requires_grad_() for a in (h0, x))  # the caller's stay untouched
        with torch.enable_grad():
            _, o = _run(rnn, linear, x, h0, mask)
            loss = _loss_of(o, y)
            weights = [rnn.get_parameter(n) for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0")]
            wanted = [*weights, linear.weight, linear.bias, h0, x]
            dU, dW, db, dV, dc, dh0, dx = torch.autograd.grad(loss, wanted)
        return loss.detach(), Grads(U=dU, W=dW, b=db, V=dV, c=dc, h0=dh0, x=dx)
