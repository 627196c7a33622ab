"""SPEC.md §1.1: relu′(0) is a convention, and every framework here takes 0. The input that shows it:
a = (0, −0, 1, −1), where the gradient of Σ_i relu(a_i) by the framework's own automatic
differentiation is (0, 0, 1, 0); the built-in backends declare it (Capabilities.relu_prime_at_zero)."""

import numpy as np
import pytest

KINK_INPUT = np.array([0.0, -0.0, 1.0, -1.0])
#: relu′ at KINK_INPUT with relu′(0) = 0
EXPECTED = np.array([0.0, 0.0, 1.0, 0.0])


def _torch():
    torch = pytest.importorskip("torch")
    a = torch.tensor(KINK_INPUT, requires_grad=True)
    (grad,) = torch.autograd.grad(torch.relu(a).sum(), a)
    return grad.numpy()


def _jax():
    jax = pytest.importorskip("jax")
    return np.asarray(jax.grad(lambda a: jax.nn.relu(a).sum())(np.float32(KINK_INPUT)))


def _tensorflow():
    tf = pytest.importorskip("tensorflow")
    a = tf.Variable(KINK_INPUT)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(tf.nn.relu(a))
    return tape.gradient(total, a).numpy()


def _mlx():
    mx = pytest.importorskip("mlx.core")
    return np.array(mx.grad(lambda a: mx.maximum(a, 0).sum())(mx.array(KINK_INPUT, mx.float32)))


@pytest.mark.parametrize(
    "framework, gradient",
    [("torch", _torch), ("jax", _jax), ("tensorflow", _tensorflow), ("mlx", _mlx)],
)
def test_relu_prime_at_zero_is_zero(framework, gradient):
    got = gradient()
    assert np.array_equal(got, EXPECTED), f"{framework}: relu′ at {KINK_INPUT} is {got}"


@pytest.mark.parametrize("name", ["numpy", "torch", "jax", "tensorflow", "mlx"])
def test_built_in_backends_declare_the_convention_their_framework_follows(name):
    from rnnspec import backends

    pytest.importorskip({"numpy": "numpy", "mlx": "mlx.core"}.get(name, name))
    backend = backends.load(name)
    assert "relu" in backend.capabilities.nonlinearities
    assert backend.capabilities.relu_prime_at_zero == 0.0
