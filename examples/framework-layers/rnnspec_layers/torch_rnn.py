"""``torch.nn.RNN`` (``nonlinearity`` tanh or relu, any ``num_layers``, ``bidirectional`` or not,
time-major) + ``torch.nn.Linear`` as an rnnspec backend, differentiated by ``torch.autograd``; and
``torch.nn.RNN`` alone, its backward given any upstream gradient (SPEC.md §13).

Weights are ported by SPEC.md §1's and §12's tables: ``weight_ih_l{l}[_reverse] = U`` of the cell
(H, D_l), ``weight_hh_… = W`` (H, H), ``bias_ih_… = b`` with ``bias_hh_… = 0`` (the cell adds the
two biases, so any split works and each receives the full ∇b), ``Linear.weight = V``
(K, directions·H), ``Linear.bias = c``; ``h0`` goes in as (cells, B, H), (1, B, H) for one cell.
The loss is written by hand, −Σ y · log_softmax(o): exact for soft targets of any row sum.

Masks (SPEC.md §9, §12.2): nn.RNN runs each sequence's unmasked steps as one shorter sequence
(``unmasked_first``), packed for a stack or a reverse direction, and h(t) is gathered back from its
outputs (``_states``).

On a CUDA device (``torch_nn_rnn@cuda``) nn.RNN runs cuDNN's kernels, held to full float32 by
``enforce_full_precision`` (cuDNN's TF32 off too); ``scripts/gpu-check.sh`` certifies it there.

Every call builds its own modules (on the meta device, then ``to_empty``: no random
initialisation, so the user's torch RNG is untouched) and copies the weights into them, so calls
share nothing and may run from several threads at once.
"""

import torch

from rnnspec.spec import BackendError, Capabilities, Forward, Grads, LayerOutputs, Model, Params

from ._arrays import TorchArrays
from ._common import LayerBackend, unmasked_first

#: the one-layer network of SPEC.md §1, which the hooks get when they are given no model
ONE_LAYER = Model()


def _cells(p: Params, model: Model) -> list[tuple]:
    """Each cell's (U, W, b), cell i = l·directions + d (SPEC.md §12)."""
    if not model.stacked:
        return [(p.U, p.W, p.b)]
    return list(zip(p.U, p.W, p.b))


def _suffix(i: int, model: Model) -> str:
    """nn.RNN's name of cell i's weights: "_l1_reverse" for layer 2's reverse direction."""
    return f"_l{i // model.directions}" + ("_reverse" if i % model.directions else "")


def _layers(p: Params, phi: str, model: Model) -> tuple[torch.nn.RNN, torch.nn.Linear | None]:
    """A fresh nn.RNN (``nonlinearity=phi``, the model's layers and directions) and, where p has
    a head, nn.Linear, in p's dtype holding copies of p's weights (§1's and §12's tables)."""
    cells = _cells(p, model)
    H, D = cells[0][0].shape
    U = cells[0][0]
    # built on the meta device and then given empty storage (what torch.nn.utils.skip_init does,
    # which refuses nn.RNN's *args signature): no initialisation draws from the user's torch RNG
    rnn = torch.nn.RNN(D, H, num_layers=model.layers, bidirectional=model.bidirectional,
                       nonlinearity=phi, dtype=U.dtype, device="meta")  # fmt: skip
    rnn = rnn.to_empty(device=U.device)
    linear = None
    if p.V is not None:
        K, width = p.V.shape
        linear = torch.nn.Linear(width, K, dtype=U.dtype, device="meta").to_empty(device=U.device)
    with torch.no_grad():
        for i, (U_i, W_i, b_i) in enumerate(cells):
            rnn.get_parameter("weight_ih" + _suffix(i, model)).copy_(U_i)  # (H, D_l)
            rnn.get_parameter("weight_hh" + _suffix(i, model)).copy_(W_i)  # (H, H)
            rnn.get_parameter("bias_ih" + _suffix(i, model)).copy_(b_i)  # b = bias_ih + bias_hh
            rnn.get_parameter("bias_hh" + _suffix(i, model)).zero_()
        if linear is not None:
            linear.weight.copy_(p.V)  # (K, directions·H)
            linear.bias.copy_(p.c)
    return rnn, linear


def _weights_of(rnn: torch.nn.RNN, model: Model) -> list[list[torch.Tensor]]:
    """[U's, W's, b's] of nn.RNN's parameters, each in cell order."""
    return [
        [rnn.get_parameter(kind + _suffix(i, model)) for i in range(model.cells)]
        for kind in ("weight_ih", "weight_hh", "bias_ih")
    ]


def _states(rnn: torch.nn.RNN, x, h0, mask, model: Model):
    """The top layer's states h (T, B, directions·H) and every cell's last state (cells, B, H);
    h0 is (cells, B, H), nn.RNN's own layout.

    With a mask (SPEC.md §9, §12.2), each sequence's unmasked steps run as one shorter sequence
    (``unmasked_first``). One forward layer is causal, so the steps sorted after them change
    nothing that is read; a stack or a reverse direction reads them, so there the shorter
    sequences are packed (``pack_padded_sequence``), which runs each direction over each
    sequence's own steps. h(t) is then gathered back: the forward state after the sequence's
    first count(t) unmasked steps (h(0) for none), the reverse state from its first unmasked
    step at or after t (its h(0) where none is left). A sequence with no step at all, which
    packing refuses, runs one step that nothing reads: its states are its h(0)."""
    if mask is None:
        return rnn(x, h0)
    host = unmasked_first(mask.cpu().numpy())
    order, count = (torch.from_numpy(a).long().to(x.device) for a in host)
    shorter = x.gather(0, _rows(order, x))
    H = h0.shape[-1]
    if not model.stacked:
        out, _ = rnn(shorter, h0)
        h = torch.cat([h0, out]).gather(0, _rows(count, h0))
        return h, h[-1:]
    lengths = count[-1]
    empty = lengths == 0
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        shorter, lengths.clamp(min=1).cpu(), enforce_sorted=False
    )  # packing takes the lengths on the host, whatever the device
    out, h_n = rnn(packed, h0)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])
    top = model.cells - model.directions  # the top layer's first cell
    halves = [torch.cat([h0[top : top + 1], out[..., :H]]).gather(0, _rows(count, out[..., :H]))]
    if model.bidirectional:  # row k: the reverse state at the k-th unmasked step; then its h(0)
        reverse = torch.cat([out[..., H:], h0[top + 1 : top + 2].expand(1, -1, -1)])
        reverse = reverse.scatter(0, _rows(lengths[None], reverse), h0[top + 1][None])
        halves.append(reverse.gather(0, _rows(count - mask.long(), reverse)))
    h = torch.cat(halves, dim=-1)
    h = torch.where(
        empty[None, :, None], torch.cat([h0[c] for c in range(top, model.cells)], -1), h
    )
    return h, torch.where(empty[None, :, None], h0, h_n)


def _rows(index, like):
    """A (T, B) time index broadcast over ``like``'s last axis, for ``gather`` along time."""
    return index.unsqueeze(-1).expand(-1, -1, like.shape[-1])


def _as_cells(h0, model: Model):
    """rnnspec's h0, (B, H) for one cell, as nn.RNN's (cells, B, H)."""
    return h0 if model.stacked else h0.unsqueeze(0)


def _loss_of(o, y):
    """(1.4)–(1.6) by hand: −Σ y · log_softmax(o), exact whatever Σ_k y_k is (erratum E1)."""
    return -(y * torch.log_softmax(o, dim=-1)).sum()


def _cell_grads(grads: list, model: Model) -> tuple:
    """∇U, ∇W, ∇b as rnnspec's Grads holds them: tuples in cell order for a stack."""
    return tuple(tuple(g) if model.stacked else g[0] for g in grads)


class TorchRNNBackend(LayerBackend):
    """rnnspec backend ``torch_nn_rnn``: torch.nn.RNN + nn.Linear, gradients by torch.autograd;
    stacked and bidirectional networks (nn.RNN's ``num_layers`` and ``bidirectional``), and the
    layer alone, nn.RNN without the head, its backward taking any upstream gradient."""

    name = "torch_nn_rnn"
    framework_version = f"torch {torch.__version__}"
    capabilities = Capabilities(
        autodiff=True, devices=("cpu", "cuda"), masks=True, nonlinearities=("tanh", "relu"),
        stacks=True, layer=True,
    )  # fmt: skip

    def __init__(self, device: str | None = None):
        kind, _, index = str(device or "cpu").lower().partition(":")
        if kind in ("cuda", "gpu"):  # nn.RNN on cuDNN; refused, never replaced, where absent
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if not count or (index and not (index.isdigit() and int(index) < count)):
                raise BackendError(
                    f"{self.name}: device={device!r} is not available (torch sees "
                    f"{count} CUDA device{'' if count == 1 else 's'})"
                )
            self.device = str(
                torch.device("cuda", int(index) if index else torch.cuda.current_device())
            )
        else:
            super().__init__(device)
        self._arrays = TorchArrays(self.device)

    @torch.no_grad()
    def _forward(self, p, x, h0, mask, phi, model=ONE_LAYER):
        rnn, linear = _layers(p, phi, model)
        h, _ = _states(rnn, x, _as_cells(h0, model), mask, model)
        o = linear(h)
        return Forward(h=h, o=o, yhat=torch.softmax(o, dim=-1))

    @torch.no_grad()
    def _loss(self, p, x, y, h0, mask, phi, model=ONE_LAYER):
        rnn, linear = _layers(p, phi, model)
        h, _ = _states(rnn, x, _as_cells(h0, model), mask, model)
        return _loss_of(linear(h), y)

    def _value_and_grad(self, p, x, y, h0, mask, phi, model=ONE_LAYER):
        rnn, linear = _layers(p, phi, model)
        h0, x = (a.detach().requires_grad_() for a in (h0, x))  # the caller's stay untouched
        with torch.enable_grad():
            h, _ = _states(rnn, x, _as_cells(h0, model), mask, model)
            loss = _loss_of(linear(h), y)
            weights = _weights_of(rnn, model)
            wanted = [*(w for kind in weights for w in kind), linear.weight, linear.bias, h0, x]
            found = list(torch.autograd.grad(loss, wanted))
        n = model.cells
        U, W, b = _cell_grads([found[:n], found[n : 2 * n], found[2 * n : 3 * n]], model)
        dV, dc, dh0, dx = found[3 * n :]
        return loss.detach(), Grads(U=U, W=W, b=b, V=dV, c=dc, h0=dh0, x=dx)

    @torch.no_grad()
    def _layer_forward(self, p, x, h0, mask, phi, model):
        rnn, _ = _layers(p, phi, model)
        h, h_n = _states(rnn, x, _as_cells(h0, model), mask, model)
        return LayerOutputs(h=h, h_n=h_n if model.stacked else h_n[0])

    def _layer_vjp(self, p, x, h_grad, hn_grad, h0, mask, phi, model):
        rnn, _ = _layers(p, phi, model)
        h0, x = (a.detach().requires_grad_() for a in (h0, x))
        with torch.enable_grad():
            h, h_n = _states(rnn, x, _as_cells(h0, model), mask, model)
            outputs, upstream = [h], [h_grad]
            if hn_grad is not None:
                outputs.append(h_n)
                upstream.append(_as_cells(hn_grad, model))
            weights = _weights_of(rnn, model)
            wanted = [*(w for kind in weights for w in kind), h0, x]
            found = list(torch.autograd.grad(outputs, wanted, upstream))
        n = model.cells
        U, W, b = _cell_grads([found[:n], found[n : 2 * n], found[2 * n : 3 * n]], model)
        return Grads(U=U, W=W, b=b, V=None, c=None, h0=found[3 * n], x=found[3 * n + 1])
