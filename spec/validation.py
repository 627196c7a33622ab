"""The input checks every backend shares, so that bad input gets the same SpecError everywhere.

Only shapes and dtype names are read from the model's arrays; the targets' values are read through
the backend's ``to_numpy`` because class indices and soft-target weights must be checked by value.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from rnnspec.spec.errors import SpecError
from rnnspec.spec.types import Params

FLOAT_DTYPES = ("float32", "float64")


class Dims(NamedTuple):
    """The sizes and dtype that a valid call agrees on."""

    T: int
    B: int
    D: int
    H: int
    K: int
    dtype: str  # "float32" or "float64"
    soft_targets: bool  # y holds (T, B, K) weights rather than (T, B) class indices


def dtype_name(array: Any) -> str:
    """'float32' for numpy.float32, torch.float32, tf.float32, jnp.float32, ..."""
    dtype = getattr(array, "dtype", None)
    name = getattr(dtype, "name", None)
    if not isinstance(name, str):
        name = str(dtype)
    return name.rsplit(".", 1)[-1]


def shape_of(array: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in array.shape)


def _require_array(arg: str, array: Any) -> None:
    if not (hasattr(array, "shape") and hasattr(array, "dtype")):
        raise SpecError(f"{arg}: expected an array, got {type(array).__name__}")


def _check_shape(arg: str, array: Any, symbols: str, expected: tuple[int | None, ...]) -> None:
    """Rank first, then every size that is already fixed (None: free, to be read off this array)."""
    _require_array(arg, array)
    shape = shape_of(array)
    if len(shape) != len(expected):
        raise SpecError(
            f"{arg}: expected rank {len(expected)} with shape {symbols}, "
            f"got rank {len(shape)} with shape {shape}"
        )
    if any(e is not None and e != s for e, s in zip(expected, shape)):
        filled = tuple(s if e is None else e for e, s in zip(expected, shape))
        raise SpecError(f"{arg}: expected shape {symbols} = {filled}, got {shape}")


def _check_float(arg: str, array: Any, dtype: str) -> None:
    got = dtype_name(array)
    if got != dtype:
        raise SpecError(f"{arg}: expected dtype {dtype} (the dtype of x), got {got}")


def validate(
    params: Any,
    x: Any,
    y: Any = None,
    h0: Any = None,
    t: Any = None,
    *,
    to_numpy: Callable[[Any], np.ndarray] = np.asarray,
    is_native: Callable[[Any], bool] | None = None,
) -> Dims:
    """Check one call's arguments and return its sizes; raise SpecError on the first problem.

    ``y`` and ``t`` are checked only when given (forward takes neither). ``to_numpy`` reads the
    targets' values for the range checks; nothing else leaves the backend's device. ``is_native``,
    the backend's own test, rejects arrays of another framework or on another device.
    """
    if not isinstance(params, Params):
        raise SpecError(f"params: expected spec.Params(U, W, b, V, c), got {type(params).__name__}")
    if is_native is not None:
        named = [(f"params.{f}", a) for f, a in zip(Params._fields, params)]
        for arg, array in [*named, ("x", x), ("y", y), ("h0", h0)]:
            if array is not None and not is_native(array):
                raise SpecError(
                    f"{arg}: expected an array of the backend's own framework on its device, "
                    f"got {type(array).__module__}.{type(array).__name__}"
                )

    _check_shape("x", x, "(T, B, D)", (None, None, None))
    T, B, D = shape_of(x)
    if T < 1 or B < 1:
        raise SpecError(f"x: expected shape (T, B, D) with T >= 1 and B >= 1, got {(T, B, D)}")
    dtype = dtype_name(x)
    if dtype not in FLOAT_DTYPES:
        raise SpecError(f"x: expected dtype float32 or float64, got {dtype}")

    _check_shape("params.U", params.U, "(H, D)", (None, D))
    H = shape_of(params.U)[0]
    _check_shape("params.W", params.W, "(H, H)", (H, H))
    _check_shape("params.b", params.b, "(H,)", (H,))
    _check_shape("params.V", params.V, "(K, H)", (None, H))
    K = shape_of(params.V)[0]
    _check_shape("params.c", params.c, "(K,)", (K,))
    for field in Params._fields:
        _check_float(f"params.{field}", getattr(params, field), dtype)

    if h0 is not None:
        _check_shape("h0", h0, "(B, H)", (B, H))
        _check_float("h0", h0, dtype)

    soft = False
    if y is not None:
        soft = _check_targets(y, T, B, K, dtype, to_numpy)

    if t is not None:
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 1 <= t <= T:
            raise SpecError(f"t: expected an integer with 1 <= t <= T = {T}, got {t!r}")

    return Dims(T, B, D, H, K, dtype, soft)


def _check_targets(
    y: Any, T: int, B: int, K: int, dtype: str, to_numpy: Callable[[Any], np.ndarray]
) -> bool:
    """Class indices (T, B) in [0, K), or soft targets (T, B, K) >= 0 in x's dtype; True for soft."""
    _require_array("y", y)
    kind = dtype_name(y)
    if kind.startswith(("int", "uint")):
        _check_shape("y", y, "(T, B) of class indices", (T, B))
        values = to_numpy(y)
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= K:
            raise SpecError(
                f"y: expected class indices in [0, K) = [0, {K}), got values from {low} to {high}"
            )
        return False
    if kind not in FLOAT_DTYPES:
        raise SpecError(
            f"y: expected integer class indices or {dtype} soft targets, got dtype {kind}"
        )
    _check_shape("y", y, "(T, B, K) of soft targets", (T, B, K))
    _check_float("y", y, dtype)
    values = to_numpy(y)
    if not np.isfinite(values).all():
        raise SpecError("y: expected finite soft targets, got NaN or infinity")
    smallest = float(values.min())
    if smallest < 0:
        raise SpecError(f"y: expected non-negative soft targets, got a minimum of {smallest:g}")
    return True
