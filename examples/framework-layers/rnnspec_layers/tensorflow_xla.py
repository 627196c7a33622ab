"""TensorFlow's XLA compiler as a witness (``tf_xla_scan``): the model written as a TensorFlow user
writes it, ``tf.scan`` over the steps and the output layer on every state, differentiated by
``tf.GradientTape``, the whole computation in one ``tf.function(jit_compile=True)``: XLA compiles
the scan and its gradient loop, traced once per dtype, φ and mask or none, and compiled by XLA once
per shape. (Keras' SimpleRNN under XLA is ``keras_tensorflow_xla``, rnnspec_layers.keras_rnn.)

Masks (SPEC.md §9) as the spec writes them, in the step: h(t) = m(t) φ(a(t)) + (1 − m(t)) h(t−1),
by ``tf.where``.
"""

from rnnspec.spec import Capabilities, Forward, Grads, Params

from ._arrays import TensorflowArrays
from ._common import LayerBackend, user_state_kept

with user_state_kept():  # importing tensorflow changes os.environ
    import tensorflow as tf

ACTIVATIONS = {"tanh": tf.tanh, "relu": tf.nn.relu}


def _states(p: Params, x, h0, mask, phi: str):
    """h (T, B, H): (1.1)–(1.2) one step per scan iteration; a masked step carries h over (9.1)."""
    activation = ACTIVATIONS[phi]

    def step(h_prev, x_t):
        return activation(p.b + tf.matmul(h_prev, p.W, transpose_b=True)
                          + tf.matmul(x_t, p.U, transpose_b=True))  # fmt: skip

    def masked_step(h_prev, inputs):
        x_t, kept_t = inputs
        return tf.where(kept_t[:, None], step(h_prev, x_t), h_prev)

    if mask is None:
        return tf.scan(step, x, initializer=h0)
    return tf.scan(masked_step, (x, mask), initializer=h0)


def _logits(p: Params, h):
    return tf.einsum("tbh,kh->tbk", h, p.V) + p.c  # (1.3)


def _loss_of(o, y):
    """(1.4)–(1.6): −Σ y · log_softmax(o), exact whatever Σ_k y_k is (erratum E1)."""
    return -tf.reduce_sum(y * tf.nn.log_softmax(o, axis=-1))


@tf.function(jit_compile=True, reduce_retracing=True)
def _forward(p: Params, x, h0, mask, phi: str):
    h = _states(p, x, h0, mask, phi)
    o = _logits(p, h)
    return h, o, tf.nn.softmax(o, axis=-1)


@tf.function(jit_compile=True, reduce_retracing=True)
def _loss(p: Params, x, y, h0, mask, phi: str):
    return _loss_of(_logits(p, _states(p, x, h0, mask, phi)), y)


@tf.function(jit_compile=True, reduce_retracing=True)
def _value_and_grad(p: Params, x, y, h0, mask, phi: str):
    with tf.GradientTape() as tape:
        tape.watch((p, x, h0))
        loss = _loss_of(_logits(p, _states(p, x, h0, mask, phi)), y)
    dp, dx, dh0 = tape.gradient(loss, (p, x, h0))
    return loss, Grads(U=dp.U, W=dp.W, b=dp.b, V=dp.V, c=dp.c, h0=dh0, x=dx)


class TfXlaScanBackend(LayerBackend):
    """rnnspec backend ``tf_xla_scan``: tf.scan and tf.GradientTape under XLA."""

    name = "tf_xla_scan"
    framework_version = f"tensorflow {tf.__version__}"
    capabilities = Capabilities(
        autodiff=True, devices=("cpu",), masks=True, nonlinearities=("tanh", "relu")
    )

    def __init__(self, device: str | None = None):
        super().__init__(device)
        self._arrays = TensorflowArrays()

    def _forward(self, p, x, h0, mask, phi):
        with tf.device("CPU:0"):
            return Forward(*_forward(p, x, h0, mask, phi))

    def _loss(self, p, x, y, h0, mask, phi):
        with tf.device("CPU:0"):
            return _loss(p, x, y, h0, mask, phi)

    def _value_and_grad(self, p, x, y, h0, mask, phi):
        with tf.device("CPU:0"):
            return _value_and_grad(p, x, y, h0, mask, phi)
