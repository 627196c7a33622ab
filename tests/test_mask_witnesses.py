"""Independent witnesses of SPEC.md §9 (not in the suite): each framework's own masking, loaded with
the same weights (§1's table), against the closed form with a mask. torch: pack_padded_sequence +
nn.RNN + autograd (right padding, the only layout a packed sequence has); Keras: SimpleRNN with a
mask (every pattern). Where a framework's masking means something else, the check pins what it
means instead, on the input that shows it (SPEC.md §9.4)."""

import os

import numpy as np
import pytest

from rnnspec import backends
from rnnspec.conformance.cases import MASKED_CASES
from rnnspec.spec import Grads, reference, tolerance

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _closed_form(case):
    """(L, Grads, h) of the NumPy backend's closed form with the case's mask, float64."""
    numpy = backends.load("numpy")
    params, x, y, h0 = case.arrays("float64")
    mask = case.mask()
    loss, grads = numpy.gradients(params, x, y, h0, mask=mask)
    return loss, grads, numpy.forward(params, x, h0, mask=mask).h


def _assert_agree(case, loss, grads: dict, witness: str):
    want_loss, want, _ = _closed_form(case)
    ratios = {"L": tolerance.ratio(loss, want_loss, "float64", case.T)}
    for field in Grads._fields:
        ratios[field] = tolerance.ratio(grads[field], getattr(want, field), "float64", case.T)
    assert max(ratios.values()) <= 1, (witness, case.label(), ratios)


# --- torch: packed sequences ----------------------------------------------------------------------


def _torch_packed(case):
    """Loss, gradients and padded output of nn.RNN on the packed batch, float64."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    params, x, y, h0 = case.arrays("float64")
    lengths = case.lengths()
    weights = torch.tensor(reference.target_weights(y, case.K, case.mask()))
    rnn = torch.nn.RNN(case.D, case.H, nonlinearity="tanh", dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(params.U))
        rnn.weight_hh_l0.copy_(torch.tensor(params.W))
        rnn.bias_ih_l0.copy_(torch.tensor(params.b))
        rnn.bias_hh_l0.zero_()
    V, c = (torch.tensor(a, requires_grad=True) for a in (params.V, params.c))
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0[None], requires_grad=True)
    packed = pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
    out, h_n = rnn(packed, h0t)
    h, _ = pad_packed_sequence(out, total_length=case.T)  # zeros at the padded steps
    o = h @ V.T + c
    loss = -(weights * torch.log_softmax(o, dim=-1)).sum()  # (9.2): padded rows weigh 0
    loss.backward()
    grads = {
        "U": rnn.weight_ih_l0.grad, "W": rnn.weight_hh_l0.grad, "b": rnn.bias_ih_l0.grad,
        "V": V.grad, "c": c.grad, "h0": h0t.grad[0], "x": xt.grad,
    }  # fmt: skip
    numpy = {k: v.detach().numpy() for k, v in grads.items()}
    return loss.item(), numpy, h.detach().numpy(), h_n.detach().numpy()[0]


def test_torch_packed_sequences_agree_for_right_padding():
    case = MASKED_CASES["masked_right"]
    loss, grads, _, _ = _torch_packed(case)
    _assert_agree(case, loss, grads, "torch pack_padded_sequence + nn.RNN")


def test_torch_packed_output_is_zero_where_the_spec_carries_the_state():
    """§9.4: pad_packed_sequence pads with zeros; §9's h(t) carries h(ℓ) over; h_n is h(T)."""
    case = MASKED_CASES["masked_right"]
    _, _, padded_output, h_n = _torch_packed(case)
    _, _, h = _closed_form(case)
    mask = case.mask()
    assert (padded_output[~mask] == 0).all()
    assert np.allclose(padded_output[mask], h[mask], rtol=0, atol=1e-14)
    assert np.allclose(h_n, h[-1], rtol=0, atol=1e-14)  # the carried state at t = T
    assert not np.allclose(h[~mask], 0)


# --- Keras: SimpleRNN with a mask --------------------------------------------------------------------


def _keras_masked(case):
    """Loss, gradients and output of Keras' SimpleRNN with the case's mask, float64 (TensorFlow)."""
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    params, x, y, h0 = case.arrays("float64")
    mask = case.mask()
    weights = tf.constant(np.transpose(reference.target_weights(y, case.K, mask), (1, 0, 2)))
    rnn = keras.layers.SimpleRNN(case.H, return_sequences=True, dtype="float64")
    dense = keras.layers.Dense(case.K, dtype="float64")
    rnn.build((None, None, case.D))
    dense.build((None, None, case.H))
    rnn.set_weights([params.U.T, params.W.T, params.b])  # §1: kernel = Uᵀ, recurrent = Wᵀ
    dense.set_weights([params.V.T, params.c])
    xb = tf.constant(np.transpose(x, (1, 0, 2)))  # Keras is batch-major
    h0t = tf.constant(h0)
    with tf.GradientTape() as tape:
        tape.watch([xb, h0t])
        h = rnn(xb, mask=tf.constant(mask.T), initial_state=[h0t])
        o = dense(h)
        loss = -tf.reduce_sum(weights * tf.nn.log_softmax(o))  # the mask as sample weights
    variables = [*rnn.trainable_variables, *dense.trainable_variables]
    kernel, recurrent, bias, dense_kernel, dense_bias, dx, dh0 = tape.gradient(
        loss, [*variables, xb, h0t]
    )
    grads = {
        "U": kernel.numpy().T, "W": recurrent.numpy().T, "b": bias.numpy(),
        "V": dense_kernel.numpy().T, "c": dense_bias.numpy(), "h0": dh0.numpy(),
        "x": np.transpose(dx.numpy(), (1, 0, 2)),
    }  # fmt: skip
    return float(loss), grads, np.transpose(h.numpy(), (1, 0, 2))


@pytest.mark.parametrize("name", ["masked_right", "masked_left", "masked_empty", "masked_gaps"])
def test_keras_masking_agrees_for_every_pattern(name):
    case = MASKED_CASES[name]
    loss, grads, _ = _keras_masked(case)
    _assert_agree(case, loss, grads, "keras SimpleRNN with a mask")


def test_keras_output_before_the_first_step_is_zero_not_h0():
    """§9.4: Keras carries the state and repeats the previous output at a masked step, but
    before a sequence's first unmasked step its output is zeros where §9's h(t) is h(0)."""
    case = MASKED_CASES["masked_left"]
    _, _, keras_h = _keras_masked(case)
    _, _, h = _closed_form(case)
    mask = case.mask()
    started = np.maximum.accumulate(mask, axis=0)  # at or after the first unmasked step
    assert np.allclose(keras_h[started], h[started], rtol=0, atol=1e-14)
    assert (keras_h[~started] == 0).all()
    h0 = case.arrays("float64").h0
    assert np.array_equal(h[~started], np.broadcast_to(h0, h.shape)[~started])
    assert not (h[~started] == 0).any()
