"""rnnspec's backend-neutral specification: data types, the Backend protocol, validation, tolerances.

SPEC.md beside this file states the model and its gradients; ``rnnspec.spec.reference`` implements
them in float64 for checking. A backend that lives outside rnnspec imports this package alone.
Importing it imports NumPy and nothing heavier.
"""

from rnnspec.spec.errors import BackendError, SpecError
from rnnspec.spec.masks import lengths_to_mask
from rnnspec.spec.protocol import (
    PROTOCOL_VERSION,
    AutodiffBackend,
    Backend,
    Capabilities,
    GradientFlowBackend,
    LayerBackend,
    protocol_problems,
)
from rnnspec.spec.types import (
    NONLINEARITIES,
    Array,
    Forward,
    Grads,
    JacobianNorms,
    LagNorms,
    LayerOutputs,
    Model,
    Params,
)
from rnnspec.spec.validation import (
    Dims,
    dtype_name,
    shape_of,
    validate,
    validate_cotangents,
    validate_declared,
    validate_model,
)

__all__ = [
    "NONLINEARITIES",
    "PROTOCOL_VERSION",
    "Array",
    "AutodiffBackend",
    "Backend",
    "BackendError",
    "Capabilities",
    "Dims",
    "Forward",
    "GradientFlowBackend",
    "Grads",
    "JacobianNorms",
    "LagNorms",
    "LayerBackend",
    "LayerOutputs",
    "Model",
    "Params",
    "SpecError",
    "dtype_name",
    "lengths_to_mask",
    "protocol_problems",
    "shape_of",
    "validate",
    "validate_cotangents",
    "validate_declared",
    "validate_model",
]
