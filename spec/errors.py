"""The errors of the contract (SPEC.md §7): bad input, and a backend that cannot be had."""


class SpecError(ValueError):
    """Bad input to a backend: the message names the argument, what was expected and what was received.

    Every backend raises it through :func:`rnnspec.spec.validate`, so the same bad call gets the
    same message on NumPy, PyTorch, JAX, TensorFlow, MLX or a third-party backend.
    """


class BackendError(RuntimeError):
    """A backend that cannot be had: unknown, not installed, of another protocol version, or asked
    for a device it does not have (raised at load time: a backend never falls back to another)."""
