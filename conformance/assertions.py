"""Comparisons by the tolerance policy, with failures that say what, where, how far, and how to
reproduce. Each comparison reports its error / tolerance through the call's ``log``, so that the
report can show the worst per check; nothing is kept in this module."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnspec.conformance import cases, diagnosis, golden
from rnnspec.conformance.calls import flatten, invoke, source
from rnnspec.conformance.cases import Case
from rnnspec.conformance.oracle import expected
from rnnspec.conformance.plugin import declared, returned
from rnnspec.spec import Model, tolerance
from rnnspec.spec.validation import shape_of


@dataclass(frozen=True)
class Call:
    """One backend call, enough to print it and to reproduce it."""

    backend: Any  # the Backend under test
    method: str  # one of calls.METHODS
    case: Case
    dtype: str
    t: int | tuple[int, ...] | None = None  # the integer arguments (t; k; k1, k2)
    log: Callable[[float], None] | None = None  # receives every error / tolerance ratio
    loaded_by: str | None = None  # the expression that loads it again (plugin.RELOAD)

    def reproduce(self, pick: str, oracle: str) -> str:
        loaded_by = self.loaded_by or (
            f"backends.load({self.backend.name!r}, device={self.backend.device!r})"
        )
        registry = cases.registry(self.case)
        named = cases.all_cases().get(self.case.name) == self.case
        masked = self.case.padding is not None
        return "\n".join(
            [
                "from rnnspec import backends, plain",
                "from rnnspec.spec import reference, reference_flow",
                f"from rnnspec.conformance.cases import {registry if named else 'Case'}"
                + (", cotangents" if self.method == "layer_gradients" else ""),
                f"case = {registry}[{self.case.name!r}]" if named else f"case = {self.case!r}",
                f"backend = {loaded_by}",
                f"params, x, y, h0 = case.native(backend, {self.dtype!r})",
                *(["mask = case.native_mask(backend)"] if masked else []),
                *self._cotangent_lines("native"),
                f"got = {source(self.method, self.t, masked, self.case.model() != Model())}{pick}",
                f"params, x, y, h0 = case.arrays({self.dtype!r})",
                *(["mask = case.mask()"] if masked else []),
                *self._cotangent_lines("numpy"),
                f"want = {oracle}",
            ]
        )

    def _cotangent_lines(self, kind: str) -> list[str]:
        """For a check of the layer alone (SPEC.md §13): its upstream gradients, as arrays."""
        if not self.method.startswith("layer_"):
            return []
        lines = ["params = params._replace(V=None, c=None)"]
        if self.method == "layer_gradients":
            lines.append(f"h_grad, hn_grad = cotangents(case, {self.t!r}, {self.dtype!r})")
            if kind == "native":
                lines.append("h_grad, hn_grad = (None if a is None else backend.asarray(a) "
                             "for a in (h_grad, hn_grad))")  # fmt: skip
        return lines


def _preview(array: np.ndarray, precision: int = 9, start: int = 0) -> str:
    return np.array2string(
        np.ravel(array)[start : start + 4], precision=precision, separator=", ",
        max_line_width=200,
    )  # fmt: skip


def previews(want: np.ndarray, got: np.ndarray) -> tuple[str, str]:
    """The first values of both, with as many digits as it takes for them to read differently
    (9 at least, 17 at most: float64 round-trips), so that a failure never shows equal numbers;
    from the largest difference, "(from flat index i)", where the first four hardly differ."""
    flat_want, flat_got = np.ravel(want), np.ravel(got)
    start = 0
    if flat_want.shape == flat_got.shape and flat_want.size > 4:
        difference = np.nan_to_num(np.abs(flat_want - flat_got), nan=np.inf)
        if difference[:4].max() < 0.01 * difference.max():
            start = int(np.argmax(difference))
    where = f" (from flat index {start})" if start else ""
    for precision in range(9, 18):
        shown = _preview(want, precision, start), _preview(got, precision, start)
        if shown[0] != shown[1]:
            break
    return shown[0] + where, shown[1] + where


def assert_close(
    got, want, call: Call, what: str, oracle: str, pick: str = "", kappa: float = 1.0
) -> float:
    """``got`` (the backend's array) must match ``want`` (float64 NumPy) by the tolerance policy.

    ``what`` names the tensor (e.g. "Grads.W"), ``oracle`` is the expression that computed
    ``want``, ``pick`` the one that selects ``what`` from the call's result (for the snippet), and
    ``kappa`` the tensor's condition number.
    """
    got_np = call.backend.to_numpy(got)
    want = np.asarray(want, np.float64)
    head = f"{call.method} -> {what} on case {call.case.label()}, {call.dtype}, {call.backend!r}"
    if shape_of(got_np) != want.shape:
        raise AssertionError(f"{head}: expected shape {want.shape}, got {shape_of(got_np)}")
    T = call.case.steps  # N·T for a stack (SPEC.md §12.4)
    steps = "√T" if call.case.layers == 1 else "√(N·T)"
    ratio = tolerance.ratio(got_np, want, call.dtype, T, kappa)
    if call.log is not None:
        call.log(ratio)
    if not ratio <= 1.0:
        shown_want, shown_got = previews(want, got_np)
        found = diagnosis.diagnose(
            call.case, call.method, what, got_np, want, call.dtype, kappa, call.t
        )
        raise AssertionError(
            f"{head}\n"
            f"  relative error {tolerance.relative_error(got_np, want):.3e} exceeds the bound "
            f"{tolerance.bound(call.dtype, T, kappa):.3e} (= MARGIN·(u + u₆₄)·{steps}·max(1, κ), "
            f"κ = {kappa:.3g}{'' if call.case.layers == 1 else f', N·T = {T}'}; ratio {ratio:.3g})\n"
            f"  expected {shown_want} ...\n"
            f"  received {shown_got} ...\n"
            + (f"  diagnosis: {found}\n" if found else "")
            + "  reproduce:\n    "
            + call.reproduce(pick, oracle).replace("\n", "\n    ")
        )
    return ratio


def assert_finite(got, call: Call, what: str) -> None:
    """For ill-conditioned cases in float32: the true value is finite, so must the result be."""
    got_np = call.backend.to_numpy(got)
    if not np.isfinite(got_np).all():
        raise AssertionError(
            f"{call.method} -> {what} on case {call.case.label()}, {call.dtype}, "
            f"{call.backend!r}: NaN or infinity where the true value is finite\n"
            f"  received {_preview(got_np)} ...\n"
            f"  diagnosis: {diagnosis.nonfinite(got_np)}"
        )


def assert_matches_reference(result, call: Call) -> float:
    """Every tensor of a call's result against rnnspec.spec.reference, by the tolerance policy.

    Tensors of ill-conditioned cases (saturated tanh, chaotic recurrences) whose rounding errors are
    amplified beyond what κ measures are held to finiteness only (Case.finite_only, SPEC.md §6.3).
    """
    want = expected(call.case, call.method, call.t)
    worst = 0.0
    for got, name, value, kappa, pick in zip(
        flatten(call.method, result), want.names, want.values, want.kappas, want.picks
    ):
        if not returned(call.backend, name):  # ∇h(0) or ∇x, not declared: not checked
            continue
        if not call.case.finite_only(call.dtype, name):
            oracle = want.expression + pick
            worst = max(worst, assert_close(got, value, call, name, oracle, pick, kappa))
        else:
            assert_finite(got, call, name)
    return worst


def assert_matches_vectors(backend, name: str, case: Case, dtype: str, call) -> None:
    """Every call of the committed golden vectors ``name`` (conformance/vectors/, from
    spec.reference) against their numbers, on the very same inputs, a mask included where they
    have one; ``call`` is the suite's fixture that makes a Call. Finiteness only where
    Case.finite_only says so, as in assert_matches_reference."""
    data = golden.load(name)
    params = golden.params_of(data, lambda array: backend.asarray(array, dtype))
    y = data["input.y"]
    y = backend.asarray(y, dtype if y.ndim == 3 else None)
    x = backend.asarray(data["input.x"], dtype)
    h0 = backend.asarray(data["input.h0"], dtype) if "input.h0" in data else None
    masked = {"mask": backend.asarray(data["input.mask"])} if "input.mask" in data else {}
    calls: list[tuple[str, int | None]] = [(m, None) for m in declared(backend, golden.METHODS)]
    for method in declared(backend, ["step_gradients"]):
        calls += [(method, t) for t in range(1, case.T + 1)]
    for method, t in calls:
        check = call(method, case, dtype, t)
        key = method if t is None else f"{method}.{t}"
        names = [str(n) for n in data[f"{key}.names"]]
        results = flatten(
            method, invoke(backend, method, params, x, y, h0, t, model=case.model(), **masked)
        )
        assert len(results) == len(names), f"{key}: {len(results)} results, golden has {names}"
        for got, tensor in zip(results, names):
            if not returned(backend, tensor):
                continue
            want, kappa = data[f"{key}.{tensor}"], float(data[f"{key}.{tensor}.kappa"])
            if not case.finite_only(dtype, tensor):
                oracle = f"rnnspec.conformance.golden.load({name!r})[{key + '.' + tensor!r}]"
                assert_close(got, want, check, tensor, oracle, kappa=kappa)
            else:
                assert_finite(got, check, tensor)
