"""rnnspec's conformance suite: the checks any Backend must pass, as a pytest plugin.

``pytest --pyargs rnnspec.conformance --backend NAME [--device DEV] [--dtype float32|float64]``
from anywhere once rnnspec is installed (``pytest conformance --backend NAME`` in a checkout), or
``rnnspec conform`` for a report table. SUITE_VERSION names the suite a backend passed.
"""

SUITE_VERSION = "2.0.0"
