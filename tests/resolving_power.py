"""The suite's resolving power: the smallest systematic relative error in one tensor that it rejects.

    python3 -m tests.resolving_power            # the table of SPEC.md §6.6 (about a minute)
    python3 -m tests.resolving_power --suite    # and confirm each boundary with the suite itself

from the checkout's root (tests.scaled_backends is a module of the checkout, as --backend names it).

For each dtype and each tensor of a gradients result (L, U, W, b, V, c, h0, x), the backends of
tests/scaled_backends.py return the NumPy backend's results with that one tensor times (1 + ε), for
ε = 1e-1 … 1e-16, and each is put through the suite's checks of those results, in-process:

- form B, form A and golden: ``gradients`` on every named case and ``step_gradients`` for every t
  of the short ones, each by ``rnnspec.conformance.assertions.assert_matches_reference``, the very
  function those checks call, against the same oracle (the golden vectors hold the same reference
  values and κ), for every ε;
- properties: the suite's Hypothesis check itself (``conformance/test_properties.py``, called with
  the backend in place of its fixtures: the same derandomised examples, and shrinking on failure),
  from the largest ε that the first group passes down to the first ε that it passes too.

In-process this takes about a minute, where a pytest run for each of the 256 backends would take
a quarter of an hour; ``--suite`` runs the suite itself (``-k "form_b or form_a or golden or
properties"``) on the two decades either side of each boundary, to confirm that the in-process
checks are the suite's.

Prints a markdown table: per dtype and tensor the largest ε that passes, the smallest that is
rejected, the check group that rejects it and the bound MARGIN·(u + u₆₄)·√T·max(1, κ) that it
exceeds: for form A/B the tightest among the named cases' comparisons (an error of ε relative is
rejected where ε exceeds it, less the backend's own rounding; bounds equal to ``TIE`` relative go
to the first comparison in :func:`comparisons`' order), for properties the bound on the example
Hypothesis reports. Then the worst error / bound of the correct NumPy backend and of
``few_ulps`` (every entry off by up to 4 unit roundoffs at random), which must pass.
"""

import argparse
import contextlib
import io
import re
import subprocess
import sys
import time
from pathlib import Path

from rnnspec import backends
from rnnspec.cli import suite_command
from rnnspec.conformance import test_properties
from rnnspec.conformance.assertions import Call, assert_matches_reference
from rnnspec.conformance.cases import CASES, SHORT
from rnnspec.conformance.oracle import expected
from rnnspec.spec import tolerance
from tests import scaled_backends

ROOT = Path(__file__).resolve().parent.parent
DTYPES = ("float32", "float64")
COMMAND = "python3 -m tests.resolving_power"
#: bounds equal to this relative precision are one bound, named by the first comparison that has
#: it (SPEC.md §6.6): T1's gradients and its step_gradients t=1 are one computation, whose κ
#: differ in the 11th digit with the BLAS, and the table must not depend on which is smaller
TIE = 1e-6
SUITE_K = "form_b or form_a or golden or properties"
HEADER = "| dtype | tensor | largest ε passed | smallest ε rejected | rejected by | bound exceeded | on |"
FORMS, PROPERTIES = "form A/B, golden", "properties"


def comparisons() -> list[tuple[str, object, int | None]]:
    """(method, case, t) of every comparison with the reference in form B, form A and golden."""
    found = [("gradients", case, None) for case in CASES.values()]
    for name in SHORT:
        case = CASES[name]
        found += [("step_gradients", case, t) for t in range(1, case.T + 1)]
    return found


def inputs(dtype: str) -> dict:
    """Every named case's inputs in ``dtype`` (the NumPy backend takes NumPy arrays)."""
    return {name: case.arrays(dtype) for name, case in CASES.items()}


def forms(backend, dtype: str, arrays: dict) -> tuple[bool, float]:
    """Whether ``backend`` passes every form A/B and golden comparison in ``dtype``, and its worst
    error / bound. ``arrays``: :func:`inputs` of ``dtype``."""
    ratios: list[float] = []
    passed = True
    for method, case, t in comparisons():
        params, x, y, h0 = arrays[case.name]
        result = getattr(backend, method)(
            params, x, y, *([t] if t else []), h0=h0, **case.model_argument()
        )
        try:
            assert_matches_reference(result, Call(backend, method, case, dtype, t, ratios.append))
        except AssertionError:
            passed = False
    return passed, max(ratios)


def properties(backend, dtype: str) -> tuple[bool, float | str]:
    """The suite's property check on ``backend`` in ``dtype``: (True, its worst error / bound) or
    (False, the failure's message)."""
    ratios: list[float] = []

    def call(method, case, dtype, t=None):  # the suite's `call` fixture, less its report
        return Call(backend, method, case, dtype, t, ratios.append)

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Hypothesis' "Falsifying example"
            test_properties.test_gradients_match_reference(backend=backend, dtype=dtype, call=call)
    except AssertionError as failure:
        return False, str(failure)
    return True, max(ratios)


def tightest(dtype: str, tensor: str) -> tuple[float, str, float]:
    """The smallest bound that a form A/B comparison puts on ``tensor`` in ``dtype``, where, and its
    κ: of the bounds within ``TIE`` of the smallest, the first in :func:`comparisons`' order."""
    want = "L" if tensor == "L" else f"Grads.{tensor}"
    found = []
    for method, case, t in comparisons():
        if case.finite_only(dtype, want):
            continue
        oracle = expected(case, method, t)
        i = oracle.names.index(want)
        if not oracle.values[i].any():  # an all-zero reference must be matched exactly
            continue
        bound = tolerance.bound(dtype, case.T, oracle.kappas[i])
        where = f"{case.name}, {method}" + (f" t={t}" if t else "")
        found.append((bound, where, oracle.kappas[i]))
    smallest = min(entry[0] for entry in found)
    return next(entry for entry in found if entry[0] <= smallest * (1 + TIE))


def exceeded(message: str) -> tuple[float, str, float]:
    """The bound, the example and its κ of a property check's failure message."""
    head = re.match(r"(\w+) -> \S+ on case random \((.*?), (class indices|soft targets)", message)
    numbers = re.search(r"exceeds the bound (\S+) .*κ = ([^;]+);", message)
    if not (head and numbers):
        raise ValueError(f"not a tolerance failure: {message[:300]}")
    return float(numbers[1]), f"{head[2]}, {head[1]}", float(numbers[2])


def scaled(tensor: str, k: int):
    """The backend with ``tensor`` off by 10^-k (tests.scaled_backends)."""
    return getattr(scaled_backends, scaled_backends.name(tensor, k))()


def sweep() -> dict:
    """{(dtype, tensor): (k passed, k rejected, rejected by, (bound, on, κ), {k: passes form A/B})} for
    ε = 10^-k, and {(dtype, name): [(group, passed, worst)]} for the NumPy backend and few_ulps."""
    table: dict = {}
    for dtype in DTYPES:
        arrays = inputs(dtype)
        for tensor in scaled_backends.TENSORS:
            passes = {
                k: forms(scaled(tensor, k), dtype, arrays)[0] for k in scaled_backends.DECADES
            }
            ok, bad = boundary(passes)
            exceeds = tightest(dtype, tensor)
            by = FORMS
            while ok is not None:
                passed, outcome = properties(scaled(tensor, ok), dtype)
                if passed:
                    break
                bad, by, exceeds = ok, PROPERTIES, exceeded(str(outcome))
                ok = ok + 1 if ok + 1 in passes else None
            table[dtype, tensor] = (ok, bad, by, exceeds, passes)
        correct = (("numpy", backends.load("numpy")), ("few_ulps", scaled_backends.few_ulps()))
        for name, backend in correct:
            table[dtype, name] = [
                (FORMS, *forms(backend, dtype, arrays)),
                (PROPERTIES, *properties(backend, dtype)),
            ]
    return table


def boundary(passes: dict[int, bool]) -> tuple[int | None, int | None]:
    """(k of the largest ε that passes, k of the smallest ε rejected): ε = 10^-k."""
    passed = [k for k, ok in passes.items() if ok]
    rejected = [k for k, ok in passes.items() if not ok]
    return (min(passed) if passed else None), (max(rejected) if rejected else None)


def eps(k: int | None) -> str:
    return "—" if k is None else f"1e-{k}"


def row(dtype: str, tensor: str, passed, rejected, by: str, exceeds: tuple) -> str:
    """A row of the table: ε = 10^-passed passes, 10^-rejected is rejected by ``by``, whose bound
    ``exceeds`` (bound, where, κ) is."""
    bound, where, kappa = exceeds
    cells = (
        dtype,
        tensor,
        eps(passed),
        eps(rejected),
        by,
        f"{bound:.1e}",
        f"{where}, κ = {kappa:.2g}",
    )
    return "| " + " | ".join(cells) + " |"


def markdown(table: dict) -> str:
    lines = [
        f"Made by `{COMMAND}`: one tensor of `gradients` and `step_gradients` times (1 + ε),",
        "every other tensor the NumPy backend's; the suite's form A/B, golden and property checks.",
        "",
        HEADER,
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for dtype in DTYPES:
        for tensor in scaled_backends.TENSORS:
            ok, bad, by, exceeds, passes = table[dtype, tensor]
            first_ok, last_bad = boundary(passes)
            if first_ok is not None and last_bad is not None and first_ok < last_bad:
                notes.append(f"- NOT MONOTONE: {dtype} {tensor}, form A/B, golden: {passes}")
            lines.append(row(dtype, tensor, ok, bad, by, exceeds))
    lines.append("")
    for dtype in DTYPES:
        for name in ("numpy", "few_ulps"):
            for group, passed, worst in table[dtype, name]:
                verdict = f"passes, worst error / bound {worst:.3f}" if passed else "REJECTED"
                lines.append(f"- {name}, {dtype}, {group}: {verdict}")
    return "\n".join(lines + notes)


def confirm_with_suite(table: dict) -> list[str]:
    """Run the suite itself on the decades either side of each boundary; the disagreements."""
    disagreements = []
    for dtype in DTYPES:
        for tensor in scaled_backends.TENSORS:
            ok, bad = table[dtype, tensor][:2]
            for k, should_pass in ((ok, True), (bad, False)):
                if k is None:
                    continue
                name = f"tests.scaled_backends:{scaled_backends.name(tensor, k)}"
                command = suite_command(name, dtypes=(dtype,), pytest_args=("-k", SUITE_K))
                done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
                passed = done.returncode == 0
                print(f"suite: {name} {dtype}: {'passes' if passed else 'rejected'}", flush=True)
                if done.returncode not in (0, 1) or passed != should_pass:
                    disagreements.append(f"{name} {dtype}: {done.stdout[-2000:]}")
    return disagreements


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="store_true", help="confirm boundaries with the suite")
    args = parser.parse_args()
    start = time.perf_counter()
    table = sweep()
    print(markdown(table))
    print(f"\n({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    if args.suite:
        disagreements = confirm_with_suite(table)
        for line in disagreements:
            print("DISAGREES:", line)
        return 1 if disagreements else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
