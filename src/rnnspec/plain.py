"""Plain functions as backends: BPTT code as people write it, certified by the unchanged suite.

    import rnnspec
    conventions = rnnspec.Conventions(layout="batch-major", weights="row", loss="batch mean")
    rnnspec.check(my_bptt, conventions)

A plain function returns the loss and the gradients it computes, in its own conventions; a
:class:`Conventions` says which. :class:`FunctionBackend` turns one into a NumPy Backend
(SPEC.md §8) generically and exactly: it orders, orients, scales and splits the suite's arrays the
function's way and its results back; masks by running each sequence's unmasked steps alone
(SPEC.md §9.4: that is the masked model); per-step gradients by a target that weighs step t alone,
where the function takes soft targets; a function of one sequence by looping over the batch. What
the function cannot do (soft targets, a given h(0), ∇x, ∇h(0), a forward pass) it declares in its
capabilities, and its certificate says "not checked" for each, never failed and never passed.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rnnspec.spec import (
    NONLINEARITIES,
    PROTOCOL_VERSION,
    BackendError,
    Capabilities,
    Grads,
    Params,
    SpecError,
    validate,
    validate_declared,
)
from rnnspec.spec.protocol import PARAMETER_GRADIENTS

#: the names a function's arguments and results are given by: the model's (SPEC.md §1), "b2" for a
#: second hidden bias (a = b + b2 + W h + U x, as torch.nn.RNN has), "L" for the loss, "_" for a
#: result that is not checked (the last hidden state, a cache)
ARGUMENTS = ("x", "y", "h0", "U", "W", "b", "b2", "V", "c")
RESULTS = ("L", "U", "W", "b", "b2", "V", "c", "h0", "x", "_")
#: what a row-vector convention (a = x·U + h·W + b) holds instead of each weight: its transpose
ROW_WEIGHTS = ("U", "W", "V")


@dataclass(frozen=True)
class Conventions:
    """How a plain function takes the model's arrays and gives back its loss and gradients.

    ``arguments``: the function's positional arguments in order, named from :data:`ARGUMENTS`;
    without "h0" the function starts from h(0) = 0 and takes none; with "b2", two hidden biases.
    ``returns``: its result, as names from :data:`RESULTS`: a tuple (nested as the result is,
    ``("L", ("U", "W", "b", "V", "c"))``) or, for a dict result, a mapping of its keys to names.
    A gradient it does not return (∇h(0), ∇x) is not checked.
    ``layout``: x as (T, B, D) ("time-major") or (B, T, D) ("batch-major"); y, ∇x likewise.
    ``weights``: "column" (a = W h + U x: U is H × D, V is K × H) or "row" (a = x·U + h·W: each
    weight transposed). ``vectors``: b, c and each sequence's h0 as 1-d arrays ("flat") or as
    columns (n, 1) ("column").
    ``loss``: the sum over steps and sequences, or that divided by the batch size ("batch mean")
    or by the number of targets, steps × sequences ("step mean").
    ``targets``: class indices (T, B) only ("classes"), soft targets (T, B, K) only ("soft"), or
    either ("both"). ``inputs``: x(t) as vectors, or as indices into a vocabulary of D words
    ("indices": x is (T, B) integers, and every x(t) the checks give is one-hot).
    ``sequence``: the function takes one sequence (x (T, D), y (T,) or (T, K), h0 (H,)) and
    is called once per sequence. ``dtypes``: the dtypes it computes in, that of its inputs.
    ``nonlinearity``: the φ of h(t) = φ(a(t)) it computes, "tanh" or "relu" (SPEC.md §1.1).
    """

    arguments: tuple[str, ...] = ("x", "y", "h0", "U", "W", "b", "V", "c")
    returns: tuple | Mapping[str, str] = ("L", ("U", "W", "b", "V", "c", "h0", "x"))
    layout: Literal["time-major", "batch-major"] = "time-major"
    weights: Literal["column", "row"] = "column"
    vectors: Literal["flat", "column"] = "flat"
    loss: Literal["sum", "batch mean", "step mean"] = "sum"
    targets: Literal["classes", "soft", "both"] = "both"
    inputs: Literal["vectors", "indices"] = "vectors"
    sequence: bool = False
    dtypes: tuple[str, ...] = ("float32", "float64")
    nonlinearity: str = "tanh"

    def __post_init__(self):
        choices = {
            "layout": ("time-major", "batch-major"),
            "weights": ("column", "row"),
            "vectors": ("flat", "column"),
            "loss": ("sum", "batch mean", "step mean"),
            "targets": ("classes", "soft", "both"),
            "inputs": ("vectors", "indices"),
            "nonlinearity": NONLINEARITIES,
        }
        for field, allowed in choices.items():
            if getattr(self, field) not in allowed:
                raise SpecError(
                    f"conventions.{field}: expected one of {allowed}, got {getattr(self, field)!r}"
                )
        unknown = [a for a in self.arguments if a not in ARGUMENTS]
        missing = [a for a in ("x", "y", "U", "W", "b", "V", "c") if a not in self.arguments]
        if unknown or missing or len(set(self.arguments)) != len(self.arguments):
            raise SpecError(
                f"conventions.arguments: expected each of x, y, U, W, b, V, c once, and h0 or b2 "
                f"where the function takes them, got {self.arguments}"
            )
        names = self.result_names()
        returned = set(names) - {"_"}
        needed = {"L", *PARAMETER_GRADIENTS, *({"b2"} if self.two_biases else set())}
        if (
            [n for n in names if n not in RESULTS]
            or not needed <= returned
            or (len(returned) != len([n for n in names if n != "_"]))
        ):
            raise SpecError(
                f"conventions.returns: expected the names {RESULTS} (L, ∇U, ∇W, ∇b, ∇V, ∇c"
                f"{', ∇b2' if self.two_biases else ''} each once; h0, x where returned; _ for "
                f"anything else), got {self.returns!r}"
            )
        if "h0" in returned and "h0" not in self.arguments:
            raise SpecError("conventions.returns: ∇h0 is returned, but arguments take no h0")

    @property
    def two_biases(self) -> bool:
        return "b2" in self.arguments

    def result_names(self) -> list[str]:
        if isinstance(self.returns, Mapping):
            return list(self.returns.values())
        return list(_leaves(self.returns))

    def capabilities(self) -> Capabilities:
        returned = set(self.result_names())
        return Capabilities(
            autodiff=False,
            dtypes=self.dtypes,
            masks=True,
            forward=False,
            step_gradients=self.targets != "classes",
            soft_targets=self.targets != "classes",
            initial_state="h0" in self.arguments,
            one_hot_inputs=self.inputs == "indices",
            nonlinearities=(self.nonlinearity,),
            gradients=tuple(
                f for f in Grads._fields if f in returned and not (f == "x" and self.one_hot)
            ),
        )

    @property
    def one_hot(self) -> bool:
        return self.inputs == "indices"


def _leaves(structure) -> list:
    if isinstance(structure, str):
        return [structure]
    return [leaf for part in structure for leaf in _leaves(part)]


def _named(structure, result, into: dict) -> None:
    """The result's parts by name, following ``structure`` (nested tuples of names)."""
    if isinstance(structure, str):
        into[structure] = result
        return
    parts = list(result)
    if len(parts) != len(structure):
        raise BackendError(
            f"the function returned {len(parts)} values where its conventions.returns names "
            f"{len(structure)}: {structure!r}"
        )
    for name, part in zip(structure, parts):
        _named(name, part, into)


class FunctionBackend:
    """A NumPy Backend made of a plain function and its :class:`Conventions`; only the methods
    its capabilities declare give results (the others raise BackendError)."""

    protocol_version = PROTOCOL_VERSION
    device = "cpu"

    def __init__(self, function: Callable, conventions: Conventions, name: str | None = None):
        self.function = function
        self.conventions = conventions
        self.name = name or getattr(function, "__qualname__", None) or repr(function)
        self.framework_version = f"numpy {np.__version__}"
        self.capabilities = conventions.capabilities()

    def __repr__(self) -> str:
        return f"<function {self.name} as a backend>"

    def asarray(self, array, dtype=None):
        return np.array(array, dtype=dtype, copy=True)

    def to_numpy(self, array):
        return np.array(array, copy=True)

    def is_native(self, array) -> bool:
        return isinstance(array, np.ndarray)

    def enforce_full_precision(self) -> str:
        return "NumPy: float32 matmuls in full precision"

    # --- the protocol's methods ------------------------------------------------------------

    def forward(self, params, x, h0=None, mask=None, model=None):
        raise BackendError(
            f"{self.name}: a plain function of the loss and gradients has no forward"
        )

    def loss(self, params, x, y, h0=None, mask=None, model=None):
        return self.gradients(params, x, y, h0, mask, model)[0]

    def gradients(self, params, x, y, h0=None, mask=None, model=None):
        self._validate(params, x, y, h0, None, mask, model)
        return self._summed(params, x, y, h0, mask)

    def step_gradients(self, params, x, y, t, h0=None, mask=None, model=None):
        self._validate(params, x, y, h0, t, mask, model)
        if not self.capabilities.step_gradients:
            raise BackendError(f"{self.name} takes class indices only: no per-step gradients")
        K = params.V.shape[0]
        weights = np.zeros((*x.shape[:2], K), x.dtype)
        read = np.ones(x.shape[1], bool) if mask is None else np.asarray(mask)[t - 1]
        if y.ndim == 2:  # a one-hot row at step t alone: L(t) is all the loss there is
            weights[t - 1, np.flatnonzero(read), y[t - 1][read]] = 1
        else:
            weights[t - 1, read] = y[t - 1][read]
        return self._summed(params, x, weights, h0, mask)

    # --- how the suite's arrays become the function's, and its results the suite's -----------

    def _validate(self, params, x, y, h0, t, mask, model):
        model = validate_declared(model, self.capabilities, self.name)  # one layer (SPEC.md §12)
        validate(params, x, y, h0, t, is_native=self.is_native, mask=mask)
        nonlinearity = model.nonlinearity
        if nonlinearity != self.conventions.nonlinearity:
            raise SpecError(
                f"model.nonlinearity: expected {self.conventions.nonlinearity!r} (what "
                f"{self.name} computes: conventions.nonlinearity), got {nonlinearity!r}"
            )
        if h0 is not None and not self.capabilities.initial_state:
            raise BackendError(f"h0: {self.name} starts from h(0) = 0 and takes none")
        if y.ndim == 3 and not self.capabilities.soft_targets:
            raise BackendError(f"y: {self.name} takes class indices (T, B), not soft targets")
        if self.conventions.one_hot and not _one_hot(x if mask is None else x[np.asarray(mask)]):
            raise SpecError(f"x: {self.name} takes word indices: expected one-hot x(t) rows")

    def _summed(self, params, x, y, h0, mask):
        """(L, Grads) of the batch: the function once on it, or once per sequence (a function of
        one sequence, or a mask: each sequence's unmasked steps alone, SPEC.md §9.4)."""
        T, B, _ = x.shape
        if mask is None and not self.conventions.sequence:
            loss, grads = self._call(params, x, y, h0)
            return np.asarray(loss), grads
        loss, grads = None, None
        h0_grads, x_grad = [], np.zeros_like(x)
        for n in range(B):
            steps = np.arange(T) if mask is None else np.flatnonzero(np.asarray(mask)[:, n])
            h0_n = None if h0 is None else h0[n : n + 1]
            if len(steps) == 0:  # no step read: h(t) = h(0) throughout and L = 0
                h0_grads.append(np.zeros((1, params.W.shape[0]), x.dtype))
                continue
            loss_n, grads_n = self._call(params, x[steps, n : n + 1], y[steps, n : n + 1], h0_n)
            if grads_n.x is not None:
                x_grad[steps, n] = grads_n.x[:, 0]
            h0_grads.append(grads_n.h0)
            if loss is None:
                loss, grads = loss_n, grads_n[:5]
            else:
                loss = loss + loss_n
                grads = tuple(g + g_n for g, g_n in zip(grads, grads_n[:5]))
        if loss is None:  # every step of every sequence masked
            loss = x.dtype.type(0)
            grads = tuple(np.zeros_like(p) for p in params)
        returned = self.capabilities.gradients
        U, W, b, V, c = grads
        return np.asarray(loss), Grads(
            U,
            W,
            b,
            V,
            c,
            h0=np.concatenate(h0_grads) if "h0" in returned else None,
            x=x_grad if "x" in returned else None,
        )

    def _call(self, params, x, y, h0):
        """The function on a batch (T, B, ·) in the suite's conventions, its result in them."""
        conventions = self.conventions
        T, B, _ = x.shape
        if conventions.sequence and B != 1:
            losses = [
                self._call(params, x[:, n : n + 1], y[:, n : n + 1], _row(h0, n)) for n in range(B)
            ]
            return _sum_sequences(losses)
        given = self._arguments(params, x, y, h0)
        result = self.function(*(given[a] for a in conventions.arguments))
        named: dict = {}
        if isinstance(conventions.returns, Mapping):
            if not isinstance(result, Mapping):
                raise BackendError(f"{self.name} returned {type(result).__name__}, not a dict")
            named = {name: result[key] for key, name in conventions.returns.items()}
        else:
            _named(tuple(conventions.returns), result, named)
        scale = {"sum": 1, "batch mean": B, "step mean": T * B}[conventions.loss]
        loss = _scaled(named["L"], scale)
        grad = {f: _scaled(named[f], scale) for f in named if f in Grads._fields or f == "b2"}
        for f in ROW_WEIGHTS if conventions.weights == "row" else ():
            grad[f] = np.swapaxes(grad[f], 0, 1)
        for f in ("b", "c", "b2"):
            if f in grad:
                grad[f] = np.reshape(grad[f], (-1,))
        if conventions.two_biases:  # each bias took b / 2: ∇b = ∇b1 = ∇b2, both checked
            grad["b"] = (grad["b"] + grad["b2"]) / 2
        if "h0" in grad:
            grad["h0"] = np.reshape(grad["h0"], (B, -1))
        if "x" in grad:
            grad["x"] = self._suite_layout(
                np.reshape(grad["x"], _layout_shape(conventions, x.shape))
            )
        returned = self.capabilities.gradients
        return loss, Grads(**{f: grad.get(f) if f in returned else None for f in Grads._fields})

    def _arguments(self, params, x, y, h0) -> dict:
        conventions = self.conventions
        given = dict(zip(Params._fields, (np.array(p, copy=True) for p in params)))
        if conventions.weights == "row":
            for f in ROW_WEIGHTS:
                given[f] = np.ascontiguousarray(given[f].T)
        if conventions.two_biases:
            given["b"] = given["b"] / 2  # exact: halving a float changes its exponent alone
            given["b2"] = given["b"].copy()
        if conventions.vectors == "column":
            for f in ("b", "b2", "c"):
                if f in given:
                    given[f] = given[f][:, None]
        H = params.W.shape[0]
        if h0 is None:
            h0 = np.zeros((x.shape[1], H), x.dtype)
        if conventions.one_hot:
            x = np.argmax(x, axis=-1)
        if y.ndim == 2 and conventions.targets == "soft":  # class k as the one-hot e_k, exact
            y = np.eye(params.V.shape[0], dtype=params.V.dtype)[y]
        given["x"], given["y"] = self._own_layout(x), self._own_layout(y)
        given["h0"] = np.array(h0, copy=True)
        if conventions.sequence:  # the batch of one, without its batch axis
            axis = 1 if conventions.layout == "time-major" else 0
            given["x"], given["y"] = (np.take(given[a], 0, axis=axis) for a in ("x", "y"))
            given["h0"] = given["h0"][0]
            if conventions.vectors == "column":
                given["h0"] = given["h0"][:, None]
        return given

    def _own_layout(self, array):
        """A copy in the function's layout: whatever it writes into stays its own."""
        if self.conventions.layout == "batch-major":
            array = np.swapaxes(array, 0, 1)
        return np.array(array, copy=True, order="C")

    def _suite_layout(self, array):
        if self.conventions.layout == "batch-major":
            return np.swapaxes(array, 0, 1)
        return array


def _layout_shape(conventions: Conventions, shape) -> tuple[int, ...]:
    T, B, D = shape
    return (B, T, D) if conventions.layout == "batch-major" else (T, B, D)


def _row(h0, n):
    return None if h0 is None else h0[n : n + 1]


def _sum_sequences(results):
    loss = sum((r[0] for r in results[1:]), results[0][0])
    fields: dict[str, Any] = {}
    for f in Grads._fields:
        parts = [getattr(r[1], f) for r in results]
        if parts[0] is None:
            fields[f] = None
        elif f == "h0":
            fields[f] = np.concatenate(parts)
        elif f == "x":
            fields[f] = np.concatenate(parts, axis=1)
        else:
            fields[f] = sum(parts[1:], parts[0])
    return loss, Grads(**fields)


def _scaled(value, scale: int):
    """A result of a mean convention times what it divided by; the result's own dtype kept, so
    that a float64 result in a float32 run still shows."""
    value = np.asarray(value)
    return value if scale == 1 else value * value.dtype.type(scale)


def _one_hot(x) -> bool:
    x = np.asarray(x)
    return bool(((x == 0) | (x == 1)).all() and (x.sum(axis=-1) == 1).all())


def backend(
    function, conventions: Conventions | None = None, name: str | None = None
) -> FunctionBackend:
    """The Backend the suite checks a plain function through; SpecError for a bad argument."""
    if not callable(function):
        raise SpecError(f"function: expected a callable, got {type(function).__name__}")
    if conventions is None:
        conventions = Conventions()
    if not isinstance(conventions, Conventions):
        raise SpecError(
            f"conventions: expected rnnspec.Conventions, got {type(conventions).__name__}"
        )
    return FunctionBackend(function, conventions, name)


def check(
    function: Callable,
    conventions: Conventions | None = None,
    *,
    dtypes: tuple[str, ...] | None = None,
    name: str | None = None,
    pytest_args: tuple[str, ...] = (),
) -> Any:
    """Run the conformance suite on a plain BPTT function in its conventions; print what it
    says, and return the certificate (rnnspec.conformance.certificate): ``certified`` is whether
    every check in the function's scope passed."""
    from rnnspec.conformance import runner

    checked = backend(function, conventions, name)
    again = (
        "plain.backend(function, conventions)  # yours",
        lambda: backend(function, conventions, name),
    )
    return runner.run(checked, again, dtypes or checked.capabilities.dtypes, pytest_args)
