"""rnnspec's conformance suite: the checks any Backend must pass, as a pytest plugin.

``pytest --pyargs rnnspec.conformance --backend NAME [--device DEV] [--dtype float32|float64]``
from anywhere once rnnspec is installed (``pytest conformance --backend NAME`` in a checkout), or
``rnnspec conform`` for a report table and a certificate. The suite is versioned with the package:
SUITE_VERSION is rnnspec's own version, and a certificate names it with the protocol version.
"""

from rnnspec import __version__

SUITE_VERSION = __version__
