"""rnnspec: the vanilla RNN's backpropagation-through-time gradients, specified and certified.

- ``rnnspec.spec``: SPEC.md, the records, the ``Backend`` protocol, validation, the tolerance policy
  and the float64 reference. A third-party backend needs nothing else.
- ``rnnspec.backends``: ``load(name, device)`` and the built-in NumPy, PyTorch, JAX, TensorFlow
  and MLX backends.
- ``rnnspec.conformance``: the conformance suite, a pytest plugin
  (``pytest --pyargs rnnspec.conformance --backend NAME``).
- ``rnnspec.bench``: the benchmark behind ``rnnspec bench``.
- ``rnnspec.scoreboard``: the page ``rnnspec scoreboard`` builds from certificates.
- ``rnnspec.check(fn, rnnspec.Conventions(...))``: the suite on a plain BPTT function in its own
  conventions (rnnspec.plain).

Importing any of them imports NumPy and nothing heavier; a framework is imported when its backend
is loaded.
"""

__version__ = "0.3.0"


def __getattr__(name: str):
    """``check`` and ``Conventions`` from rnnspec.plain, imported when first used: pytest and the
    suite load only for a check."""
    if name in ("check", "Conventions", "FunctionBackend"):
        from rnnspec import plain

        return getattr(plain, name)
    raise AttributeError(f"module 'rnnspec' has no attribute {name!r}")
