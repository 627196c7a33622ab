"""The input checks every backend shares, so that bad input gets the same SpecError everywhere.

Only shapes and dtype names are read from the model's arrays; the targets' values are read through
the backend's ``to_numpy`` because class indices and soft-target weights must be checked by value.
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from rnnspec.spec.errors import SpecError
from rnnspec.spec.types import NONLINEARITIES, Model, Params

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
    try:
        return _name_of(dtype)
    except TypeError:  # a dtype that cannot be hashed: named afresh
        return _name_of.__wrapped__(dtype)


@functools.cache  # a dtype's name never changes; NumPy's dtype.name is computed at every read
def _name_of(dtype: Any) -> str:
    name = getattr(dtype, "name", None)
    if not isinstance(name, str):
        name = str(dtype)
    return name.rsplit(".", 1)[-1]


def shape_of(array: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in array.shape)


def _require_array(arg: str, array: Any) -> None:
    if not (hasattr(array, "shape") and hasattr(array, "dtype")):
        raise SpecError(f"{arg}: expected an array, got {type(array).__name__}")


def _check_rank(arg: str, array: Any, symbols: str, rank: int) -> tuple[int, ...]:
    _require_array(arg, array)
    shape = shape_of(array)
    if len(shape) != rank:
        raise SpecError(
            f"{arg}: expected rank {rank} with shape {symbols}, got rank {len(shape)} with shape {shape}"
        )
    return shape


def _check_shape(arg: str, array: Any, symbols: str, expected: tuple[int, ...], why) -> None:
    """The array's rank, then its sizes; ``why(shape)`` says which argument implies what."""
    shape = _check_rank(arg, array, symbols, len(expected))
    if shape != expected:
        raise SpecError(f"{arg}: expected shape {symbols} = {expected}, got {shape}: {why(shape)}")


def _disagree(arg: str, symbols: str, expected: tuple, source: dict[str, str]):
    """A ``why`` for _check_shape: 'x has D = 3 but params.U, which is (H, D), implies D = 4'
    for each size that differs; ``source`` names where each expected size was read."""
    names = symbols.strip("()").replace(" ", "").split(",")

    def why(shape: tuple) -> str:
        return "; ".join(
            f"{source[name]} has {name} = {want} but {arg}, which is {symbols}, implies "
            f"{name} = {got}"
            for name, want, got in zip(names, expected, shape)
            if want != got
        )

    return why


def _check_float(arg: str, array: Any, dtype: str) -> None:
    got = dtype_name(array)
    if got != dtype:
        raise SpecError(f"{arg}: expected dtype {dtype} (the dtype of x), got {got}")


def _check_finite(arg: str, array: Any, all_finite: Callable[[Any], bool], to_numpy) -> None:
    """NaN or infinity in an input makes every output NaN, or finite ones that mean nothing."""
    if not all_finite(array):
        values = to_numpy(array)
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise SpecError(f"{arg}: expected finite values, got {values[index]} at index {index}")


def validate(
    params: Any,
    x: Any,
    y: Any = None,
    h0: Any = None,
    t: Any = None,
    *,
    to_numpy: Callable[[Any], np.ndarray] = np.asarray,
    is_native: Callable[[Any], bool] | None = None,
    all_finite: Callable[[Any], bool] | None = None,
    all_finite_of: Callable[[list[Any]], bool] | None = None,
    mask: Any = None,
    model: Any = None,
    head: bool = True,
) -> Dims:
    """Check one call's arguments and return its sizes; raise SpecError on the first problem.

    ``y`` and ``t`` are checked only when given (forward takes neither). ``to_numpy`` reads the
    targets' values for the range checks and, when something is not finite, where. ``is_native``,
    the backend's own test, rejects arrays of another framework or on another device.
    ``all_finite``, the backend's own reduction (one scalar leaves the device), says whether an
    array holds no NaN or infinity; by default its NumPy copy is checked. ``all_finite_of``, where
    given, says it of all the float inputs at once, in one reduction: on a GPU, where every scalar
    that leaves the device waits for the device, one wait per call instead of one per array.
    ``mask``, when given, is a (T, B) boolean array (SPEC.md §9): targets are checked at its
    unmasked steps only. ``model`` (SPEC.md §8) says how many cells params holds (§12);
    ``head=False`` checks the layer alone (§13): params.V and params.c are None, and K is 0.
    """
    if not isinstance(params, Params):
        raise SpecError(
            f"params: expected rnnspec.spec.Params(U, W, b, V, c), got {type(params).__name__}"
        )
    model = validate_model(model)
    _check_cell_tuples(params, model)
    named = [(name, a) for name, a in parameter_arrays(params) if a is not None]
    if is_native is not None:
        for arg, array in [*named, ("x", x), ("y", y), ("h0", h0), ("mask", mask)]:
            if array is not None and not is_native(array):
                raise SpecError(
                    f"{arg}: expected an array of the backend's own framework on its device, "
                    f"got {type(array).__module__}.{type(array).__name__}; convert it with "
                    f"backend.asarray(array)"
                )

    T, B, D = _check_rank("x", x, "(T, B, D)", 3)
    if T < 1 or B < 1:
        raise SpecError(f"x: expected shape (T, B, D) with T >= 1 and B >= 1, got {(T, B, D)}")
    dtype = dtype_name(x)
    if dtype not in FLOAT_DTYPES:
        raise SpecError(f"x: expected dtype float32 or float64, got {dtype}")

    H, K = _check_parameter_shapes(params, D, model, head)
    for arg, array in named:
        _check_float(arg, array, dtype)

    if h0 is not None:
        _check_initial_state(h0, T, B, H, model)
        _check_float("h0", h0, dtype)

    steps = None if mask is None else _check_mask(mask, T, B, to_numpy)

    floats = [("x", x), *named, *([("h0", h0)] if h0 is not None else [])]
    if all_finite_of is None or not all_finite_of([array for _, array in floats]):
        finite = all_finite or (lambda array: bool(np.isfinite(to_numpy(array)).all()))
        for arg, array in floats:  # which one, and where
            _check_finite(arg, array, finite, to_numpy)

    soft = False
    if y is not None:
        soft = _check_targets(y, T, B, K, dtype, to_numpy, steps)

    if t is not None:
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 1 <= t <= T:
            raise SpecError(f"t: expected an integer with 1 <= t <= T = {T}, got {t!r}")

    return Dims(T, B, D, H, K, dtype, soft)


def parameter_arrays(params: Params) -> list[tuple[str, Any]]:
    """Every array of ``params`` with the name its errors use: params.U, or params.U[i] for cell i
    of a stack (SPEC.md §12); V and c may be None (the layer alone, §13)."""
    named = []
    for field, value in zip(Params._fields, params):
        if isinstance(value, tuple | list):
            named += [(f"params.{field}[{i}]", array) for i, array in enumerate(value)]
        else:
            named.append((f"params.{field}", value))
    return named


def _check_cell_tuples(params: Params, model: Model) -> None:
    """U, W and b are arrays for the one-layer model, tuples of one array per cell for a stack."""
    for field in ("U", "W", "b"):
        value = getattr(params, field)
        if model.stacked:
            if not isinstance(value, tuple | list) or len(value) != model.cells:
                got = f"{len(value)} arrays" if isinstance(value, tuple | list) else "one array"
                raise SpecError(
                    f"params.{field}: expected a tuple of layers × directions = {model.layers} × "
                    f"{model.directions} = {model.cells} arrays, one per cell (SPEC.md §12), "
                    f"got {got}"
                )
        elif isinstance(value, tuple | list):
            raise SpecError(
                f"params.{field}: expected an array, got a {type(value).__name__} of "
                f"{len(value)}: a tuple of cells needs a stacked or bidirectional model, "
                "model=rnnspec.spec.Model(layers=..., bidirectional=...) (SPEC.md §12)"
            )


# fmt: off
def _check_parameter_shapes(params: Params, D: int, model: Model, head: bool) -> tuple[int, int]:
    """D from x, H from W (from U if W is not square), K from c (from V if c is not a vector):
    each parameter against the sizes the others imply, and a message naming both sides. A stack
    (SPEC.md §12) is checked cell by cell, H from its first cell, the input size of a cell above
    the first layer being directions·H."""
    if not model.stacked:
        H = _check_cell(params.U, params.W, params.b, D, "", "x")
    else:
        H = _check_cell(params.U[0], params.W[0], params.b[0], D, "[0]", "x")
        for i in range(1, model.cells):
            D_in, source = (D, "x") if i < model.directions else (
                model.directions * H, f"params.W[0]: directions·H = {model.directions}·{H}")
            _check_cell(params.U[i], params.W[i], params.b[i], D_in, f"[{i}]", source, H)
    if not head:
        for field in ("V", "c"):
            given = type(getattr(params, field)).__name__
            if given != "NoneType":
                raise SpecError(f"params.{field}: expected None (the layer alone has no head, "
                                f"SPEC.md §13), got {given}")
        return H, 0
    H_out, symbol = (H, "H") if not model.stacked else (model.directions * H, "directions·H")
    return H, _check_head(params.V, params.c, H_out, symbol)


def _check_cell(U, W, b, D: int, index: str, where_D: str, H: int | None = None) -> int:
    """One cell's U, W and b (SPEC.md §1, §12); returns H, read from W unless given."""
    names = {f: f"params.{f}{index}" for f in "UWb"}
    W_shape = _check_rank(names["W"], W, "(H, H)", 2)
    U_shape = _check_rank(names["U"], U, "(H, D)", 2)
    if H is not None:
        where_H = "params.W[0]"
    elif W_shape[0] == W_shape[1]:
        H, where_H = W_shape[0], names["W"]
    else:
        H, where_H = U_shape[0], names["U"]
    transposed = "it looks transposed ({}, with shape {})"
    _check_shape(
        names["U"], U, "(H, D)", (H, D),
        lambda s: transposed.format("a = b + W h + U x", "(H, D)") if s == (D, H) and D != H
        else _disagree(names["U"], "(H, D)", (H, D), {"H": where_H, "D": where_D})(s),
    )
    _check_shape(
        names["W"], W, "(H, H)", (H, H),
        lambda s: "it must be square" if s[0] != s[1]
        else _disagree(names["W"], "(H, H)", (H, H), {"H": where_H})(s),
    )
    _check_shape(names["b"], b, "(H,)", (H,), _disagree(names["b"], "(H,)", (H,), {"H": where_H}))
    return H


def _check_head(V_array, c_array, H: int, symbol: str) -> int:
    """V (K, H) and c (K,) of the output layer, which reads H = ``symbol`` values; returns K."""
    where_H = "params.W" if symbol == "H" else "the cells (directions·H)"
    shape = f"(K, {symbol})"
    V = _check_rank("params.V", V_array, shape, 2)
    c = shape_of(c_array) if hasattr(c_array, "shape") else ()
    K, where_K = V[0], "params.V"
    if len(c) == 1 and V == (H, c[0]) and c[0] != H:  # V transposed: read K where it is right
        K, where_K = c[0], "params.c"
    _check_shape(
        "params.V", V_array, shape, (K, H),
        lambda s: f"it looks transposed (o = c + V h, with shape {shape})" if s == (H, K) and H != K
        else _disagree("params.V", "(K, H)", (K, H), {"K": where_K, "H": where_H})(s),
    )
    _check_shape("params.c", c_array, "(K,)", (K,), _disagree("params.c", "(K,)", (K,), {"K": where_K}))
    return K
# fmt: on


def _check_initial_state(h0: Any, T: int, B: int, H: int, model: Model) -> None:
    """(B, H), or (cells, B, H) for a stack, cell i's h(0) in row i (SPEC.md §12)."""
    if model.stacked:
        sizes = _disagree("h0", "(cells, B, H)", (model.cells, B, H),
                          {"cells": "model", "B": "x", "H": "params.W[0]"})  # fmt: skip
        _check_shape("h0", h0, "(cells, B, H)", (model.cells, B, H), sizes)
        return
    sizes = _disagree("h0", "(B, H)", (B, H), {"B": "x", "H": "params.W"})
    batch_major = "; if x is batch-major (B, T, D): the spec's x is time-major, (T, B, D)"
    _check_shape(
        "h0", h0, "(B, H)", (B, H),
        lambda s: sizes(s) + (batch_major if s == (T, H) and T != B else ""),
    )  # fmt: skip


def _batch_major_or(arg: str, symbols: str, expected: tuple, source: dict[str, str]):
    """A ``why`` for _check_shape of h0, y or mask, whose expected shape starts with x's (T, B) or B:
    x looks batch-major when the two agree only with T and B swapped; else which sizes differ."""
    T, B = (None, expected[0]) if arg == "h0" else expected[:2]

    def why(shape: tuple) -> str:
        swapped = None if arg == "h0" else (B, T, *expected[2:])
        if swapped is not None and T != B and shape == swapped:
            return (
                f"x and {arg} agree only with T and B swapped: x looks batch-major (B, T, D); "
                "the spec's x is time-major, (T, B, D)"
            )
        return _disagree(arg, symbols, expected, source)(shape)

    return why


def _check_mask(mask: Any, T: int, B: int, to_numpy: Callable[[Any], np.ndarray]) -> np.ndarray:
    """A (T, B) boolean array (SPEC.md §9); returns its values as NumPy, to select the steps whose
    targets are read."""
    _check_shape(
        "mask", mask, "(T, B)", (T, B),
        _batch_major_or("mask", "(T, B)", (T, B), {"T": "x", "B": "x"}),
    )  # fmt: skip
    kind = dtype_name(mask)
    if kind != "bool":
        raise SpecError(
            f"mask: expected dtype bool, got {kind}; lengths give one with "
            "rnnspec.spec.lengths_to_mask(lengths, T)"
        )
    return np.asarray(to_numpy(mask), dtype=bool)


def _check_targets(
    y: Any,
    T: int,
    B: int,
    K: int,
    dtype: str,
    to_numpy: Callable[[Any], np.ndarray],
    steps: np.ndarray | None = None,
) -> bool:
    """Class indices (T, B) in [0, K), or soft targets (T, B, K) >= 0 in x's dtype; True for soft.
    Where ``steps`` (a mask's values) is given, the values are checked at its True steps only:
    a masked step's target is never read (SPEC.md §9)."""
    where = "" if steps is None else " at unmasked steps"
    _require_array("y", y)
    kind = dtype_name(y)
    if kind.startswith(("int", "uint")):
        _check_shape(
            "y", y, "(T, B)", (T, B), _batch_major_or("y", "(T, B)", (T, B), {"T": "x", "B": "x"})
        )
        values = to_numpy(y) if steps is None else to_numpy(y)[steps]
        if values.size == 0:  # every step masked: no target is read
            return False
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= K:
            raise SpecError(
                f"y: expected class indices in [0, K) = [0, {K}){where}, got values from {low} "
                f"to {high}"
            )
        return False
    if kind not in FLOAT_DTYPES:
        raise SpecError(
            f"y: expected integer class indices or {dtype} soft targets, got dtype {kind}"
        )
    if len(shape_of(y)) == 2:
        raise SpecError(
            f"y: expected integer class indices of shape (T, B) or {dtype} soft targets of shape "
            f"(T, B, K), got {kind} of shape {shape_of(y)}: class indices need an integer dtype"
        )
    _check_shape(
        "y",
        y,
        "(T, B, K) of soft targets",
        (T, B, K),
        _batch_major_or("y", "(T, B, K)", (T, B, K), {"T": "x", "B": "x", "K": "params.V"}),
    )
    _check_float("y", y, dtype)
    values = to_numpy(y)
    read = np.ones(values.shape[:2], bool) if steps is None else steps
    not_finite = ~np.isfinite(values) & read[..., None]
    if not_finite.any():
        index = tuple(int(i) for i in np.argwhere(not_finite)[0])
        raise SpecError(f"y: expected finite soft targets, got {values[index]} at index {index}")
    if read.any():
        smallest = float(values[read].min())
        if smallest < 0:
            raise SpecError(
                f"y: expected non-negative soft targets{where}, got a minimum of {smallest:g}"
            )
    return True


def validate_cotangents(
    h_grad: Any,
    hn_grad: Any,
    dims: Dims,
    model: Model,
    is_native: Callable[[Any], bool] | None = None,
    all_finite_of: Callable[[list[Any]], bool] | None = None,
    to_numpy: Callable[[Any], np.ndarray] = np.asarray,
) -> None:
    """The upstream gradients of the layer's VJP (SPEC.md §13): ``h_grad`` (T, B, directions·H)
    for the top layer's states, ``hn_grad`` (B, H), or (cells, B, H) for a stack, for the last
    states, or None; x's dtype, finite, the backend's own arrays."""
    T, B, H = dims.T, dims.B, dims.H
    width = model.directions * H
    final = ("(cells, B, H)", (model.cells, B, H)) if model.stacked else ("(B, H)", (B, H))
    given = [("h_grad", h_grad, "(T, B, directions·H)", (T, B, width))]
    given += [] if hn_grad is None else [("hn_grad", hn_grad, *final)]
    for arg, array, symbols, shape in given:
        if is_native is not None and not is_native(array):
            raise SpecError(
                f"{arg}: expected an array of the backend's own framework on its device, got "
                f"{type(array).__module__}.{type(array).__name__}; convert it with "
                "backend.asarray(array)"
            )
        sources = {"T": "x", "B": "x", "H": "params.W", "cells": "model",
                   "directions·H": "params.W and model"}  # fmt: skip
        _check_shape(arg, array, symbols, shape, _disagree(arg, symbols, shape, sources))
        _check_float(arg, array, dims.dtype)
    arrays = [array for _, array, _, _ in given]
    if all_finite_of is None or not all_finite_of(arrays):
        for arg, array, _, _ in given:
            _check_finite(arg, array, lambda a: bool(np.isfinite(to_numpy(a)).all()), to_numpy)


def validate_declared(model: Any, capabilities: Any, name: str, head: bool = True) -> Model:
    """``model`` as a Model, refused with the same SpecError on every backend where the backend
    called ``name`` does not declare it: a stacked one without ``capabilities.stacks`` (SPEC.md
    §12), the layer alone (``head=False``) without ``capabilities.layer`` (§13)."""
    model = validate_model(model)
    if model.stacked and not getattr(capabilities, "stacks", False):
        raise SpecError(
            f"model: expected one layer in one direction (the {name} backend does not declare "
            f"capabilities.stacks), got layers={model.layers}, bidirectional={model.bidirectional}"
        )
    if not head and not getattr(capabilities, "layer", False):
        raise SpecError(
            f"the {name} backend does not declare capabilities.layer: no layer_forward or "
            "layer_gradients (SPEC.md §13)"
        )
    return model


def validate_length(arg: str, value: Any, minimum: int = 1, bound: str = "") -> int:
    """A truncation length (k, k1, k2, max_lag): an integer ≥ ``minimum``; ``bound`` names where
    the minimum comes from ("k1 = 3") when it is not 1. The same SpecError on every backend."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        at_least = bound or str(minimum)
        raise SpecError(f"{arg}: expected an integer >= {at_least}, got {value!r}")
    return int(value)


def validate_model(model: Any) -> Model:
    """``model`` as a Model (None is ``Model()``), or a SpecError naming what is wrong."""
    if model is None:
        return Model()
    if not isinstance(model, Model):
        raise SpecError(f"model: expected rnnspec.spec.Model or None, got {type(model).__name__}")
    if model.nonlinearity not in NONLINEARITIES:
        known = ", ".join(repr(n) for n in NONLINEARITIES)
        raise SpecError(f"model.nonlinearity: expected one of {known}, got {model.nonlinearity!r}")
    layers = model.layers
    if isinstance(layers, bool) or not isinstance(layers, int | np.integer) or layers < 1:
        raise SpecError(f"model.layers: expected an integer >= 1, got {layers!r}")
    if not isinstance(model.bidirectional, bool | np.bool_):
        raise SpecError(f"model.bidirectional: expected True or False, got {model.bidirectional!r}")
    return model
