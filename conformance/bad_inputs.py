"""The suite's catalogue of bad inputs (SPEC.md §7): each an edit of the basic case's arguments
and the start of the SpecError message it must raise. The "bad input" checks call every backend
method on each; the reference's own checks and the docs' list of messages use it too."""

from collections.abc import Callable

import numpy as np

from rnnspec.conformance.cases import CASES

OTHER = {"float32": "float64", "float64": "float32"}


def _soft(case, dtype, K=None):
    return np.full((case.T, case.B, K or case.K), 0.25, dtype)


# fmt: off
def bad_inputs(dtype: str) -> dict[str, tuple[Callable, str]]:
    """name -> (edit of the basic case's (params, x, y, h0, t), the start of the message that
    spec.validate gives for it). The name starts with the argument the input is bad in."""
    case = CASES["basic"]
    T, _B, K = case.T, case.B, case.K

    def with_param(field, edit):
        return lambda p, x, y, h0, t: (p._replace(**{field: edit(getattr(p, field))}), x, y, h0, t)

    def set_y(value):
        def edit(p, x, y, h0, t):
            y = y.copy()
            y[0, 0] = value
            return p, x, y, h0, t

        return edit

    def with_value(arg, index, value):
        """One entry of x, h0 or a parameter set to NaN or infinity, on a copy."""

        def edit(p, x, y, h0, t):
            given = {"x": x, "h0": h0, **{f"params.{f}": a for f, a in zip(p._fields, p)}}
            changed = given[arg].copy()
            changed[index] = value
            if arg.startswith("params."):
                return p._replace(**{arg.removeprefix("params."): changed}), x, y, h0, t
            return p, *(changed if a == arg else v for a, v in (("x", x), ("y", y), ("h0", h0))), t

        return edit

    def soft_with(value):
        def edit(p, x, y, h0, t):
            y = _soft(case, dtype)
            y[0, 0, 0] = value
            return p, x, y, h0, t

        return edit

    return {
        "params not Params": (lambda p, x, y, h0, t: (list(p), x, y, h0, t), "params: expected"),
        "x rank 2": (lambda p, x, y, h0, t: (p, x[0], y, h0, t), "x: expected rank 3"),
        "x integer": (
            lambda p, x, y, h0, t: (p, x.astype(np.int32), y, h0, t),
            "x: expected dtype",
        ),
        "T = 0": (lambda p, x, y, h0, t: (p, x[:0], y[:0], h0, t), "x: expected shape"),
        "B = 0": (lambda p, x, y, h0, t: (p, x[:, :0], y[:, :0], h0[:0], t), "x: expected shape"),
        "U wrong D": (with_param("U", lambda a: a[:, :-1]), "params.U: expected shape (H, D)"),
        "W not square": (with_param("W", lambda a: a[:, :-1]), "params.W: expected shape (H, H)"),
        "b wrong H": (with_param("b", lambda a: a[:-1]), "params.b: expected shape (H,)"),
        "V wrong H": (with_param("V", lambda a: a[:, :-1]), "params.V: expected shape (K, H)"),
        "c wrong K": (with_param("c", lambda a: a[:-1]), "params.c: expected shape (K,)"),
        "W mixed dtype": (
            with_param("W", lambda a: a.astype(OTHER[dtype])),
            "params.W: expected dtype",
        ),
        "h0 wrong B": (lambda p, x, y, h0, t: (p, x, y, h0[:-1], t), "h0: expected shape (B, H)"),
        "h0 rank 1": (lambda p, x, y, h0, t: (p, x, y, h0[0], t), "h0: expected rank 2"),
        "h0 mixed dtype": (
            lambda p, x, y, h0, t: (p, x, y, h0.astype(OTHER[dtype]), t),
            "h0: expected dtype",
        ),
        "y wrong T": (lambda p, x, y, h0, t: (p, x, y[:-1], h0, t), "y: expected shape (T, B)"),
        "y index K": (set_y(K), "y: expected class indices in [0, K)"),
        "y index -1": (set_y(-1), "y: expected class indices in [0, K)"),
        "y soft wrong K": (
            lambda p, x, y, h0, t: (p, x, _soft(case, dtype, K + 1), h0, t),
            "y: expected shape (T, B, K)",
        ),
        "y soft negative": (soft_with(-0.5), "y: expected non-negative"),
        "y soft NaN": (soft_with(np.nan), "y: expected finite"),
        "y soft mixed dtype": (
            lambda p, x, y, h0, t: (p, x, _soft(case, OTHER[dtype]), h0, t),
            "y: expected dtype",
        ),
        **{
            f"{arg} {value}": (with_value(arg, index, value),
                               f"{arg}: expected finite values, got {value} at index {index}")
            for arg, index, value in [
                ("x", (2, 0, 1), np.nan), ("x", (0, 2, 0), np.inf), ("h0", (1, 3), np.nan),
                ("params.U", (0, 1), -np.inf), ("params.W", (3, 2), np.nan),
                ("params.b", (1,), np.nan), ("params.V", (4, 0), np.inf), ("params.c", (2,), np.nan),
            ]
        },
        "U transposed": (with_param("U", lambda a: a.T),
                         "params.U: expected shape (H, D) = (4, 3), got (3, 4): it looks transposed"),
        "V transposed": (with_param("V", lambda a: a.T),
                         "params.V: expected shape (K, H) = (5, 4), got (4, 5): it looks transposed"),
        "y with batch-major x": (
            lambda p, x, y, h0, t: (p, x.swapaxes(0, 1), y, None, t),
            "y: expected shape (T, B) = (3, 5), got (5, 3): x and y agree only with T and B "
            "swapped: x looks batch-major",
        ),
        "x with another D": (
            lambda p, x, y, h0, t: (p, x[..., :2], y, h0, t),
            "params.U: expected shape (H, D) = (4, 2), got (4, 3): x has D = 2 but params.U, "
            "which is (H, D), implies D = 3",
        ),
        "y float class indices": (
            lambda p, x, y, h0, t: (p, x, y.astype(x.dtype), h0, t),
            "y: expected integer class indices of shape (T, B) or",
        ),
        "t = 0": (
            lambda p, x, y, h0, t: (p, x, y, h0, 0),
            "t: expected an integer with 1 <= t <= T",
        ),
        "t = T + 1": (
            lambda p, x, y, h0, t: (p, x, y, h0, T + 1),
            "t: expected an integer with 1 <= t <= T",
        ),
    }
# fmt: on
