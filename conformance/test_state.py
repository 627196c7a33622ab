"""State kept between calls, the bugs fast backends actually have: a returned array must stay what
it was, a call's result must not depend on the calls made before it or at the same time from other
threads, and neither loading nor calling a backend may change the global settings the user owns.
Every method the backend declares is checked, the gradient-flow ones (SPEC.md §10) included, and
masked calls against unmasked ones of the same shapes (SPEC.md §9).

Comparing two results of the same backend. The checks below compare a result with the backend's own
earlier result for the very same call by the tolerance policy, with the tensor's κ from the oracle,
not bit for bit: a correct backend may round identical calls differently (GPU atomics, BLAS blocking
that depends on the thread count or on alignment), and each result is then one of the roundings the
policy allows for that tensor; a reordered reduction moves a result by a small part of that
allowance. What goes beyond it is not rounding but another computation: a stale or foreign result
(a cache, another thread's scratch space) is off by O(1), a float64 result computed in float32 by
~1e-7 against a float64 bound of ~1e-13. The error is measured relative to the first result, which
agrees with the reference to far within the bound, so the policy's scale ‖reference‖ is kept.
The history check also compares every result with the reference: a cache that returns the first
result it saw for some shapes agrees with itself, and only the truth shows it wrong.
"""

import dataclasses
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import pytest

from rnnspec.conformance import global_settings
from rnnspec.conformance.calls import FLOW_METHODS, METHODS, TENSORS, flatten, invoke
from rnnspec.conformance.cases import CASES, MASKED_CASES, Case, Inputs, scoped
from rnnspec.conformance.oracle import expected
from rnnspec.conformance.plugin import RELOAD, checked_dtypes, declared, returned
from rnnspec.spec import tolerance

pytestmark = pytest.mark.rnnspec_group("state")

T_STEP = 2  # the t of every step_gradients call here
#: each method's integer arguments here: t = T_STEP; k = 2 (lags 0 and 1); overlapping windows
INTEGERS: dict[str, int | tuple[int, ...]] = {
    "step_gradients": T_STEP,
    "truncated_gradients": (2,),
    "tbptt_gradients": (2, 3),
}
#: every method; the plugin marks those the backend does not declare not applicable
STATE_METHODS = (*METHODS, *FLOW_METHODS)
BASIC = CASES["basic"]
#: the same shapes, other values
OTHER_VALUES = dataclasses.replace(BASIC, name="basic_seed99", seed=99)
#: x and y shaped as BASIC's but another H: a cache keyed on the data's shapes alone mixes them up.
#: Only the state checks use these shapes, so their first call here is the first in the process.
OTHER_H = dataclasses.replace(BASIC, name="basic_H6", H=6, seed=98)

THREADS = 4
ROUNDS = 10
THREAD_CASES = [
    dataclasses.replace(BASIC, name=f"basic_seed{100 + i}", seed=100 + i) for i in range(THREADS)
]
THREAD_TIMEOUT_S = 120.0  # for the whole threaded schedule; it takes well under a second


# --- calls and their results ----------------------------------------------------------------------


def _call(backend, method: str, inputs: Inputs) -> Any:
    return invoke(backend, method, *inputs, t=INTEGERS.get(method))


def _copies(backend, method: str, result) -> list[Any]:
    """NumPy copies of every tensor of a call's result, taken now (None: not returned)."""
    return [None if a is None else backend.to_numpy(a) for a in flatten(method, result)]


def _names(method: str) -> list[str]:
    return [name for name, _ in TENSORS[method]]


def _label(method: str, case: Case, dtype: str) -> str:
    return f"{method}({case.name}, {dtype})"


def _preview(array: np.ndarray) -> str:
    flat = np.ravel(np.asarray(array, np.float64))[:6]
    return np.array2string(flat, precision=9, separator=", ", max_line_width=200)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _after(history: list[str]) -> str:
    """The calls this check made before, for a message."""
    shown = history if len(history) <= 12 else ["...", *history[-12:]]
    return "after the calls " + ", ".join(shown) if history else "as this check's first call"


def _compare(got, want, dtype, case, kappa, head: str, against: str) -> None:
    """``got`` must be ``want`` (shape, dtype) within the tolerance policy; ``head`` says what."""
    got = np.asarray(got)
    if got.dtype != np.dtype(dtype) or got.shape != np.shape(want):
        raise AssertionError(
            f"{head}: expected {dtype} of shape {np.shape(want)} ({against}), "
            f"got {got.dtype} of shape {got.shape}"
        )
    ratio = tolerance.ratio(got, want, dtype, case.T, kappa)
    if not ratio <= 1.0:
        raise AssertionError(
            f"{head}\n"
            f"  relative difference from {against} {tolerance.relative_error(got, want):.3e} "
            f"exceeds the bound {tolerance.bound(dtype, case.T, kappa):.3e} "
            f"(tolerance policy, κ = {kappa:.3g}; ratio {ratio:.3g})\n"
            f"  {against}: {_preview(want)} ...\n"
            f"  received: {_preview(got)} ..."
        )


def _promoting(config, methods: list[str], dtypes) -> set[tuple[str, str]]:
    """The (method, dtype) whose call on a fresh instance of the backend, its first, returns a
    tensor of another dtype than its inputs': a promotion, which no earlier call caused."""
    fresh = config.stash[RELOAD][1]()
    promoted = set()
    for method, dtype in ((m, d) for m in methods for d in dtypes):
        result = _copies(fresh, method, _call(fresh, method, BASIC.native(fresh, dtype)))
        if any(r is not None and r.dtype != np.dtype(dtype) for r in result):
            promoted.add((method, dtype))
    return promoted


def _check_result(
    backend, method, case, dtype, got: list, history: list[str], promoted=frozenset()
) -> None:
    """Every tensor of a call's result against the reference, saying which calls came before."""
    case = scoped(case, backend)  # as Case.native gave the backend its inputs
    want = expected(case, method, INTEGERS.get(method))
    for name, g, w, kappa in zip(want.names, got, want.values, want.kappas, strict=True):
        if not returned(backend, name):
            continue
        if np.asarray(g).dtype != np.dtype(dtype) and (method, dtype) in promoted:
            raise AssertionError(
                f"{method} -> {name} on case {case.label()}, {dtype}, {backend!r}: "
                f"{np.asarray(g).dtype} for {dtype} inputs, as the first call of a fresh "
                "instance gives too (a dtype promotion, not state; the dtype/shape/device group "
                "reports it too)"
            )
        head = (
            f"{method} -> {name} on case {case.label()}, {dtype}, {backend!r}, {_after(history)}: "
            "wrong result; state left by an earlier call? (a cache keyed on shapes, on shapes "
            "without the dtype or without whether a mask is given, or on array identity returns "
            "another call's result, precision or variant)"
        )
        _compare(g, w, dtype, case, kappa, head, "the reference")


def _other_dtypes(backend, dtype: str, config) -> list[str]:
    """The run's other dtype, where the backend computes in it too."""
    return [d for d in checked_dtypes(config, backend) if d != dtype]


def _overwrite(backend, inputs, values) -> bool:
    """Write ``values`` (NumPy Inputs) into the native ``inputs`` in place, where the framework's
    arrays are mutable (NumPy, PyTorch); False where they are not (JAX, TensorFlow)."""
    pairs = [(a, v) for a, v in zip((*inputs.params, *inputs[1:]), (*values.params, *values[1:]))]
    for native, value in pairs:
        if native is None:
            continue
        try:
            native[...] = backend.asarray(value)
        except (TypeError, ValueError, AttributeError, NotImplementedError):
            return False
        if not np.array_equal(backend.to_numpy(native), value):
            return False
    return True


# --- 1. results stay as returned --------------------------------------------------------------------


@pytest.mark.parametrize("method", STATE_METHODS)
def test_results_stay_as_returned(backend, dtype, method):
    """A returned array changes after a later call (an output buffer reused between calls).

    Every tensor of a result must keep, bit for bit, the value it had when the call returned, while
    every method is called again with other values of the same shapes and dtype.
    """
    result = _call(backend, method, BASIC.native(backend, dtype))
    tensors = flatten(method, result)
    at_return = _copies(backend, method, result)
    others = OTHER_VALUES.native(backend, dtype)
    for later in declared(backend, STATE_METHODS):
        _call(backend, later, others)
        for name, was, tensor in zip(_names(method), at_return, tensors, strict=True):
            if not returned(backend, name):
                continue
            now = backend.to_numpy(tensor)
            if not _same_bits(was, now):
                changed = int(np.count_nonzero(was != now)) if was.shape == now.shape else "all"
                raise AssertionError(
                    f"{method} -> {name} on case {BASIC.label()}, {dtype}, {backend!r}: the "
                    f"returned array changed after a later call, "
                    f"{_label(later, OTHER_VALUES, dtype)} (same shapes, other values): "
                    f"{changed} of {was.size} entries differ (an output buffer reused between "
                    f"calls?)\n"
                    f"  at return: {_preview(was)} ...\n"
                    f"  now:       {_preview(now)} ..."
                )


# --- 2. results do not depend on the calls before ---------------------------------------------------


@pytest.mark.parametrize("method", STATE_METHODS)
def test_results_independent_of_earlier_calls(backend, dtype, method, pytestconfig):
    """A call's result depends on the calls before it (a cache keyed on shapes, on shapes without
    the dtype, or on array identity).

    Call A, then B with other values of the same shapes, A in the other dtype, A's data with another
    H, then A again with new arrays and with the very same arrays: every result matches the
    reference, and A's repeats match A's first result (tolerance policy). Where the framework's
    arrays are mutable, A's arrays rewritten in place with B's values give B's result.
    """
    methods = declared(backend, STATE_METHODS)
    promoted = _promoting(pytestconfig, methods, checked_dtypes(pytestconfig, backend))
    # a dtype whose calls promote fails its own rows: calls in it here would fail this row for it
    others = [
        d
        for d in _other_dtypes(backend, dtype, pytestconfig)
        if not any((m, d) in promoted for m in methods)
    ]
    history: list[str] = []

    def run(m: str, case: Case, d: str, inputs=None) -> list[np.ndarray]:
        inputs = case.native(backend, d) if inputs is None else inputs
        got = _copies(backend, m, _call(backend, m, inputs))
        _check_result(backend, m, case, d, got, history, promoted)
        history.append(_label(m, case, d))
        return got

    a_inputs = BASIC.native(backend, dtype)
    first = run(method, BASIC, dtype, a_inputs)
    for m in methods:  # same shapes and dtype, other values: a shape-keyed cache
        run(m, OTHER_VALUES, dtype)
    for d in others:  # same shapes and values, other dtype: a cache keyed without the dtype
        for m in methods:
            run(m, BASIC, d)
    # fresh shapes, always float32 first: a cache keyed without the dtype gives float64 float32's
    for d in (d for d in ("float32", "float64") if d == dtype or d in others):
        run(method, OTHER_H, d)

    want = expected(scoped(BASIC, backend), method, INTEGERS.get(method))
    for how, inputs in (("new arrays", None), ("the same arrays", a_inputs)):
        since = list(history)
        again = run(method, BASIC, dtype, inputs)
        for name, got, was, kappa in zip(want.names, again, first, want.kappas, strict=True):
            if not returned(backend, name):
                continue
            head = (
                f"{method} -> {name} on case {BASIC.label()}, {dtype}, {backend!r}: the same "
                f"call ({how}) gave another result {_after(since[1:])}"
            )
            _compare(got, was, dtype, BASIC, kappa, head, "its first result")

    values = scoped(OTHER_VALUES, backend).arrays(dtype)
    if _overwrite(backend, a_inputs, values):  # an identity-keyed cache returns A's result
        history.append(f"(A's arrays rewritten in place with {OTHER_VALUES.name}'s values)")
        run(method, OTHER_VALUES, dtype, a_inputs)


#: a masked case, and the same shapes without a mask: compiled work cached on the shapes and the
#: dtype alone, not on whether a mask is given, serves one the other's computation
MASKED = MASKED_CASES["masked_gaps"]
UNMASKED_TWIN = dataclasses.replace(MASKED, name="masked_gaps_without_mask", padding=None)


@pytest.mark.parametrize("method", METHODS)
def test_masked_and_unmasked_calls_do_not_mix(backend, dtype, method, masks):
    """A call with a mask gets the result of one without, or the reverse, when both have the same
    shapes (compiled work cached on shapes and dtype, without whether a mask is given).

    The same method is called without a mask, with one, and both again, every result against the
    reference.
    """
    history: list[str] = []
    plain = UNMASKED_TWIN.native(backend, dtype)
    inputs, mask = MASKED.native(backend, dtype), MASKED.native_mask(backend)
    for _ in range(2):
        for case, args, given in ((UNMASKED_TWIN, plain, None), (MASKED, inputs, mask)):
            result = invoke(backend, method, *args, t=INTEGERS.get(method), mask=given)
            _check_result(backend, method, case, dtype, _copies(backend, method, result), history)
            history.append(_label(method, case, dtype))


# --- 3. threads -------------------------------------------------------------------------------------


def test_concurrent_calls_from_threads(backend, dtype):
    """Calls from several threads at once get wrong results (scratch space kept on the instance).

    4 threads share the backend; each has its own case (same shapes, other values) and makes 10
    calls in lockstep (a barrier before each round), all threads calling the same method in even
    rounds and different methods in odd ones. Every result must match the result of the same call
    made alone (tolerance policy); a schedule that does not finish in time fails as hung.
    """
    methods = declared(backend, STATE_METHODS)
    inputs = [case.native(backend, dtype) for case in THREAD_CASES]
    alone = {
        (i, m): _copies(backend, m, _call(backend, m, inputs[i]))
        for i in range(THREADS)
        for m in methods
    }

    def method_of(i: int, r: int) -> str:
        return methods[(r + (i if r % 2 else 0)) % len(methods)]

    barrier = threading.Barrier(THREADS, timeout=THREAD_TIMEOUT_S)
    results: dict[tuple[int, int], list[np.ndarray]] = {}
    errors: dict[int, tuple[str, BaseException]] = {}
    doing = {i: "starting" for i in range(THREADS)}

    def work(i: int) -> None:
        for r in range(ROUNDS):
            doing[i] = f"waiting for round {r}"
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return  # another thread failed: its error is the one reported
            m = method_of(i, r)
            doing[i] = f"{_label(m, THREAD_CASES[i], dtype)} in round {r}"
            try:
                results[(i, r)] = _copies(backend, m, _call(backend, m, inputs[i]))
            except BaseException as error:
                errors[i] = (doing[i], error)
                barrier.abort()
                return
        doing[i] = "done"

    threads = [
        threading.Thread(target=work, args=(i,), name=f"rnnspec-state-{i}", daemon=True)
        for i in range(THREADS)
    ]
    deadline = time.monotonic() + THREAD_TIMEOUT_S
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [i for i, thread in enumerate(threads) if thread.is_alive()]
    if hung:
        barrier.abort()
        raise AssertionError(
            f"{backend!r}, {dtype}: {len(hung)} of {THREADS} threads calling the backend at once "
            f"still running after {THREAD_TIMEOUT_S:.0f} s (a deadlock?): "
            + "; ".join(f"thread {i}: {doing[i]}" for i in hung)
        )
    for i, (what, error) in sorted(errors.items()):
        raise AssertionError(
            f"{backend!r}: {what}, called from thread {i} while {THREADS - 1} other threads "
            f"called it with other inputs, raised {type(error).__name__}: {error}"
        ) from error
    for (i, r), got in sorted(results.items()):
        m, case = method_of(i, r), THREAD_CASES[i]
        want = expected(scoped(case, backend), m, INTEGERS.get(m))
        together = ", ".join(
            _label(method_of(j, r), THREAD_CASES[j], dtype) for j in range(THREADS) if j != i
        )
        for name, g, w, kappa in zip(want.names, got, alone[(i, m)], want.kappas, strict=True):
            if not returned(backend, name):
                continue
            head = (
                f"{m} -> {name} on case {case.label()}, {dtype}, {backend!r}: another result "
                f"when called from thread {i} in round {r} at the same time as {together} than "
                f"when called alone (state shared between calls on one instance?)"
            )
            _compare(g, w, dtype, case, kappa, head, "the result alone")
    assert len(results) == THREADS * ROUNDS, f"only {len(results)} calls of {THREADS * ROUNDS} ran"


# --- 4. global settings -----------------------------------------------------------------------------


def _assert_leaves_settings_alone(backend, steps: list[tuple[str, Callable[[], Any]]]) -> None:
    """Run the steps with the user's settings as they are, then with them set otherwise (so that a
    step setting a value that is already there is seen too); no step may change any setting."""
    for variant in ("as they were", "set otherwise"):
        with (
            global_settings.set_otherwise() if variant == "set otherwise" else nullcontext(),
            global_settings.recording_jax_updates() as updates,
        ):
            before = global_settings.snapshot()
            for what, step in steps:
                step()
                after = global_settings.snapshot()
                changed = global_settings.changes(before, after) + [
                    f"jax.config.update({name!r}, {value!r}) called" for name, value in updates
                ]
                if changed:
                    raise AssertionError(
                        f"{what} changed global settings the user owns ({backend!r}; the user's "
                        f"settings {variant}):\n  " + "\n  ".join(changed)
                    )


def test_calls_leave_global_settings_alone(backend, dtype):
    """Calling the backend changes global settings the user owns (NumPy's error state and print
    options, the random states, the environment, PyTorch's, JAX's, TensorFlow's and MLX's settings).

    Only the frameworks already imported are looked at. Every method is called on case basic with
    the settings as they are, then again with each one set to another value first.
    """
    held: dict[str, Any] = {}

    def make_inputs():
        held["inputs"] = BASIC.native(backend, dtype)

    def call(method):
        def step():
            result = _call(backend, method, held["inputs"])
            held[method] = flatten(method, result)

        return step

    methods = declared(backend, STATE_METHODS)

    def read_back():
        for method in methods:
            for array in held[method]:
                backend.to_numpy(array)

    steps = [(f"backend.asarray (the inputs of case {BASIC.label()}, {dtype})", make_inputs)]
    steps += [(f"backend.{m} on case {BASIC.label()}, {dtype}", call(m)) for m in methods]
    steps.append((f"backend.to_numpy on the results ({dtype})", read_back))
    _assert_leaves_settings_alone(backend, steps)


def test_loading_leaves_global_settings_alone(backend, pytestconfig):
    """Loading the backend changes global settings the user owns (only enforce_full_precision,
    which the suite calls on purpose, may).

    The backend is loaded again as this run loaded it (by its name and device, or from its plain
    function), with the settings as they are and again with each one set to another value first.
    """
    _assert_leaves_settings_alone(backend, [pytestconfig.stash[RELOAD]])
