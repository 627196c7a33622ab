"""The one error type every backend raises for bad input."""


class SpecError(ValueError):
    """Bad input to a backend: the message names the argument, what was expected and what was received.

    Every backend raises it through :func:`spec.validation.validate`, so the same bad call gets the
    same message on NumPy, PyTorch, JAX, TensorFlow or a third-party backend.
    """
