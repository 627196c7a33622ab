"""The backend methods the suite calls, written once: each method's arguments, the tensors of its
result with how to pick each out, and their shapes. Every check calls a backend through
:func:`invoke`, and every reproduction snippet prints the call with :func:`source`."""

from typing import Any

from rnnspec.spec import Grads, Model

METHODS = ("forward", "loss", "gradients", "step_gradients", "autodiff_gradients")
#: the gradient-flow methods (SPEC.md §10), checked by test_flow.py alone
FLOW_METHODS = ("lag_norms", "truncated_gradients", "tbptt_gradients", "jacobian_norms")
#: the integer arguments a reproduction snippet prints as values, in order
INTEGERS = ("t", "k", "k1", "k2")

#: method -> its positional arguments; h0 is always passed by keyword, and so is a mask
ARGUMENTS = {
    "forward": ("params", "x"),
    "loss": ("params", "x", "y"),
    "gradients": ("params", "x", "y"),
    "step_gradients": ("params", "x", "y", "t"),
    "autodiff_gradients": ("params", "x", "y"),
    "lag_norms": ("params", "x", "y"),
    "truncated_gradients": ("params", "x", "y", "k"),
    "tbptt_gradients": ("params", "x", "y", "k1", "k2"),
    "jacobian_norms": ("params", "x"),
    "layer_forward": ("params", "x"),
    "layer_gradients": ("params", "x", "h_grad", "hn_grad"),
}

_GRADIENT_TENSORS = (("L", "[0]"), *((f"Grads.{f}", f"[1].{f}") for f in Grads._fields))

#: method -> (tensor name, expression picking it out of the call's result), in result order
TENSORS = {
    "forward": (("Forward.h", ".h"), ("Forward.o", ".o"), ("Forward.yhat", ".yhat")),
    "loss": (("L", ""),),
    "gradients": _GRADIENT_TENSORS,
    "step_gradients": _GRADIENT_TENSORS,
    "autodiff_gradients": _GRADIENT_TENSORS,
    "lag_norms": tuple((f"LagNorms.{f}", f".{f}") for f in Grads._fields),
    "truncated_gradients": _GRADIENT_TENSORS,
    "tbptt_gradients": (("window losses", "[0]"), *_GRADIENT_TENSORS[1:]),
    "jacobian_norms": tuple(
        (f"JacobianNorms.{f}", f".{f}") for f in ("per_sequence", "mean", "sigma_max_W")
    ),
}


def invoke(
    backend,
    method: str,
    params,
    x,
    y=None,
    h0=None,
    t: int | tuple[int, ...] | None = None,
    mask=None,
    model=None,
    cotangents: tuple = (None, None),
) -> Any:
    """``backend.<method>`` with the arguments it takes among these; ``t`` holds its integer
    arguments (t; k; k1, k2 as a tuple); ``mask`` only when given and ``model`` only when it is
    not the tanh network, so that other calls are the same on every protocol version;
    ``cotangents`` the layer VJP's (h_grad, hn_grad) (SPEC.md §13)."""
    given = {"params": params, "x": x, "y": y, "h_grad": cotangents[0], "hn_grad": cotangents[1]}
    integers = iter(t if isinstance(t, tuple) else (t,))
    args = (next(integers) if a in INTEGERS else given[a] for a in ARGUMENTS[method])
    keywords = {} if mask is None else {"mask": mask}
    if model is not None and model != Model():
        keywords["model"] = model
    return getattr(backend, method)(*args, h0=h0, **keywords)


def source(
    method: str,
    t: int | tuple[int, ...] | None = None,
    masked: bool = False,
    modelled: bool = False,
) -> str:
    """The call as code, for a reproduction snippet: 'backend.step_gradients(params, x, y, 3, h0=h0)';
    ``t`` holds the integer arguments (a tuple where there are several, as k1, k2); ``modelled``:
    the case's Model is passed (a φ other than tanh)."""
    values = iter(t if isinstance(t, tuple) else (t,))
    args = ", ".join(str(next(values)) if a in INTEGERS else a for a in ARGUMENTS[method])
    keywords = (", mask=mask" if masked else "") + (", model=case.model()" if modelled else "")
    return f"backend.{method}({args}, h0=h0{keywords})"


def tensors(method: str, model: Model | None = None) -> tuple[tuple[str, str], ...]:
    """TENSORS[method] for the call's model: a stack's Grads.U, .W, .b one tensor per cell,
    "Grads.U[2]" picked by "[1].U[2]" (SPEC.md §12); the layer's methods (§13) too."""
    if method in LAYER_TENSORS:
        named = LAYER_TENSORS[method]
    else:
        named = TENSORS[method]
    if model is None or not model.stacked:
        return named
    per_cell = {f"Grads.{f}" for f in ("U", "W", "b")}
    return tuple(
        entry
        for name, pick in named
        for entry in (
            [(f"{name}[{i}]", f"{pick}[{i}]") for i in range(model.cells)]
            if name in per_cell
            else [(name, pick)]
        )
    )


#: the layer alone (SPEC.md §13): its outputs, and its VJP's gradients (no V, c)
LAYER_TENSORS = {
    "layer_forward": (("LayerOutputs.h", ".h"), ("LayerOutputs.h_n", ".h_n")),
    "layer_gradients": tuple((f"Grads.{f}", f".{f}") for f in Grads._fields if f not in ("V", "c")),
}


def flatten(method: str, result) -> list:
    """A call's result as the flat list of tensors that ``tensors(method, model)`` names: a
    stack's per-cell tuples spread out, cell by cell."""
    if method in ("forward", "lag_norms", "layer_forward"):
        return list(result)
    if method == "jacobian_norms":
        return list(result[:3])
    if method == "loss":
        return [result]
    if method == "layer_gradients":
        return _spread([g for f, g in zip(Grads._fields, result) if f not in ("V", "c")])
    loss, grads = result
    return [loss, *_spread(list(grads))]


def _spread(values: list) -> list:
    return [v for value in values for v in (value if isinstance(value, tuple | list) else [value])]


def shapes(
    method: str, T: int, B: int, D: int, H: int, K: int, model: Model | None = None
) -> list[tuple[int, ...]]:
    """The shape of every tensor of a call's result (SPEC.md §8, §12), in ``tensors`` order."""
    model = model or Model()
    R, cells = model.directions, model.cells
    if method == "forward":
        return [(T, B, R * H), (T, B, K), (T, B, K)]
    if method == "loss":
        return [()]
    h0: tuple[int, ...]
    if not model.stacked:
        U, W, b, h0 = [(H, D)], [(H, H)], [(H,)], (B, H)
    else:
        U = [(H, D) if i < R else (H, R * H) for i in range(cells)]
        W, b, h0 = [(H, H)] * cells, [(H,)] * cells, (cells, B, H)
    if method == "layer_forward":
        return [(T, B, R * H), h0]
    if method == "layer_gradients":
        return [*U, *W, *b, h0, (T, B, D)]
    return [(), *U, *W, *b, (K, R * H), (K,), h0, (T, B, D)]
