"""rnnspec's conformance suite: run it against any Backend with ``pytest --pyargs conformance``.

``pytest conformance --backend NAME [--device DEV] [--dtype float32|float64]`` from a checkout, or
``rnnspec conform`` for a report table. SUITE_VERSION names the suite a backend passed.
"""

SUITE_VERSION = "1.0.0"
