"""SPEC.md §12–§13 against torch.nn.RNN, an implementation written by others: the reference's
stacked and bidirectional network (cell order, [forward; reverse] concatenation, h_n, the layer's
vector–Jacobian product) is torch's, in float64; and §12.2's reading of a mask in the reverse
direction is, for right padding, what torch's packed sequences compute."""

import numpy as np
import pytest

from rnnspec.spec import Model, Params, lengths_to_mask, reference

torch = pytest.importorskip("torch")

T, B, D, H = 5, 3, 3, 4
CONFIGURATIONS = [(2, True, "tanh"), (3, False, "relu"), (1, True, "tanh"), (2, False, "tanh")]


def _torch_rnn(layers: int, bidirectional: bool, nonlinearity: str, seed: int):
    torch.manual_seed(seed)
    rnn = torch.nn.RNN(D, H, num_layers=layers, bidirectional=bidirectional,
                       nonlinearity=nonlinearity).double()  # fmt: skip
    model = Model(nonlinearity, layers, bidirectional)

    def weight(kind: str, i: int):
        suffix = f"_l{i // model.directions}" + ("_reverse" if i % model.directions else "")
        return getattr(rnn, kind + suffix).detach().numpy()

    cells = range(model.cells)
    U = tuple(weight("weight_ih", i) for i in cells)
    W = tuple(weight("weight_hh", i) for i in cells)
    b = tuple(weight("bias_ih", i) + weight("bias_hh", i) for i in cells)  # torch's two biases
    params = Params(U, W, b, None, None) if model.stacked else Params(U[0], W[0], b[0], None, None)
    return rnn, model, params


def _per_model(array: np.ndarray, model: Model) -> np.ndarray:
    """torch's (cells, B, H) as rnnspec takes it: (B, H) for the one-layer model."""
    return array if model.stacked else array[0]


@pytest.mark.parametrize("layers, bidirectional, nonlinearity", CONFIGURATIONS)
def test_reference_is_torch_nn_rnn(layers, bidirectional, nonlinearity):
    rnn, model, params = _torch_rnn(layers, bidirectional, nonlinearity, seed=layers)
    rng = np.random.default_rng(layers)
    x, h0 = rng.standard_normal((T, B, D)), rng.standard_normal((model.cells, B, H))
    h_grad = rng.standard_normal((T, B, model.directions * H))
    hn_grad = rng.standard_normal((model.cells, B, H))
    x_t, h0_t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out, h_n = rnn(x_t, h0_t)
    ((out * torch.tensor(h_grad)).sum() + (h_n * torch.tensor(hn_grad)).sum()).backward()

    want = reference.layer_forward(params, x, _per_model(h0, model), model=model)
    np.testing.assert_allclose(want.h, out.detach().numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(want.h_n, _per_model(h_n.detach().numpy(), model), atol=1e-13)
    grads = reference.layer_gradients(
        params, x, h_grad, _per_model(hn_grad, model), _per_model(h0, model), model=model
    )
    U = grads.U if model.stacked else (grads.U,)
    W = grads.W if model.stacked else (grads.W,)
    b = grads.b if model.stacked else (grads.b,)
    for i in range(model.cells):
        suffix = f"_l{i // model.directions}" + ("_reverse" if i % model.directions else "")
        np.testing.assert_allclose(U[i], getattr(rnn, "weight_ih" + suffix).grad, atol=1e-12)
        np.testing.assert_allclose(W[i], getattr(rnn, "weight_hh" + suffix).grad, atol=1e-12)
        np.testing.assert_allclose(b[i], getattr(rnn, "bias_hh" + suffix).grad, atol=1e-12)
    np.testing.assert_allclose(grads.h0, _per_model(h0_t.grad.numpy(), model), atol=1e-12)
    np.testing.assert_allclose(grads.x, x_t.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("layers, bidirectional", [(1, True), (2, True)])
def test_right_padding_is_torch_packed_sequences(layers, bidirectional):
    """§12.2: for right padding, a reverse cell that carries its state across the padding is a
    reverse direction started at each sequence's last step: torch's packed sequences."""
    rnn, model, params = _torch_rnn(layers, bidirectional, "tanh", seed=10 + layers)
    rng = np.random.default_rng(layers)
    lengths = np.array([T, 2, 4])
    mask = lengths_to_mask(lengths, T)
    x, h0 = rng.standard_normal((T, B, D)), rng.standard_normal((model.cells, B, H))
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.tensor(x), torch.tensor(lengths), enforce_sorted=False
    )
    out, h_n = rnn(packed, torch.tensor(h0))
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    want = reference.layer_forward(params, x, _per_model(h0, model), mask=mask, model=model)
    np.testing.assert_allclose(
        want.h[mask], out.detach().numpy()[mask], atol=1e-13
    )  # padding: torch's 0
    np.testing.assert_allclose(want.h_n, _per_model(h_n.detach().numpy(), model), atol=1e-13)


def test_a_reverse_direction_over_the_padding_is_not_torch():
    """The check above can fail: the reverse direction run over the padding as if it were data
    (SPEC.md §12.2's wrong reading) differs from torch's packed sequences."""
    rnn, model, params = _torch_rnn(1, True, "tanh", seed=11)
    rng = np.random.default_rng(1)
    lengths = np.array([T, 2, 4])
    x, h0 = rng.standard_normal((T, B, D)), rng.standard_normal((model.cells, B, H))
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.tensor(x), torch.tensor(lengths), enforce_sorted=False
    )
    _, h_n = rnn(packed, torch.tensor(h0))
    unmasked = reference.layer_forward(params, x, h0, model=model)  # every step read, padding too
    assert not np.allclose(unmasked.h_n[1], h_n.detach().numpy()[1], atol=1e-6)
