"""rnnspec's backend-neutral specification: data types, the Backend protocol, validation, tolerances.

SPEC.md beside this file states the model and its gradients; ``spec.reference`` implements them in
float64 for checking. Importing this package imports NumPy and nothing heavier.
"""

from spec.errors import SpecError
from spec.protocol import PROTOCOL_VERSION, Backend
from spec.types import Array, Forward, Grads, Params
from spec.validation import Dims, dtype_name, shape_of, validate

__all__ = [
    "PROTOCOL_VERSION",
    "Array",
    "Backend",
    "Dims",
    "Forward",
    "Grads",
    "Params",
    "SpecError",
    "dtype_name",
    "shape_of",
    "validate",
]
