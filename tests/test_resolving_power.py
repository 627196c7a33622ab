"""The suite's resolving power (SPEC.md §6.6): it rejects a backend whose gradients are off by the
smallest relative error the table states, in each dtype, and passes one whose every entry is off by
a few unit roundoffs at random. The backends are tests/scaled_backends.py's."""

import re
from pathlib import Path

import pytest

from tests import resolving_power as script
from tests.printed import agrees

ROOT = Path(__file__).resolve().parent.parent

#: T1 (T = 1) holds the tightest bound on L and on Grads.W in both dtypes (the table's last column).
SHARPEST = "form_b and T1"

#: backend: (dtype, the tensor the failure names), off by the smallest ε the table says is rejected:
#: 1e-5 in float32 (every tensor but Grads.W), 1e-13 in float64 (every tensor)
REJECTED = {"L_e5": ("float32", "L"), "W_e13": ("float64", "Grads.W")}


@pytest.mark.parametrize("name", REJECTED)
def test_suite_rejects_the_stated_error(run_suite, name):
    dtype, tensor = REJECTED[name]
    done = run_suite(f"tests.scaled_backends:{name}", "-k", SHARPEST, dtypes=(dtype,))
    assert done.returncode == 1, f"the suite passed {name} in {dtype}:\n{done.stdout[-2000:]}"
    assert f"AssertionError: gradients -> {tensor} on case T1" in done.stdout, done.stdout[-3000:]


def test_suite_passes_a_few_ulps_at_random(run_suite):
    """Every entry of every tensor off by up to 4 unit roundoffs at random: form B and properties
    here, form A and golden in-process below (the suite's form A takes longer)."""
    done = run_suite("tests.scaled_backends:few_ulps", "-k", "form_b or properties")
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_few_ulps_pass_every_comparison_in_process(dtype):
    passed, worst = script.forms(script.scaled_backends.few_ulps(), dtype, script.inputs(dtype))
    assert passed and worst < 0.1, worst


def _published_rows() -> list[str]:
    spec = (ROOT / "spec" / "SPEC.md").read_text()
    section = spec.split("### 6.6 Resolving power", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if re.match(r"\| float(32|64) \|", line)]


def test_published_table_is_the_measured_one():
    """Every row of SPEC.md §6.6, in-process by the script's checks (those of form A/B, golden and
    the property check): its largest ε passes them all, its smallest ε is rejected by the group the
    row names; by form A/B on the comparison the row names (ties by §6.6's rule), with the bound
    and κ to their printed digits."""
    rows = _published_rows()
    assert len(rows) == len(script.DTYPES) * len(script.scaled_backends.TENSORS)
    arrays = {dtype: script.inputs(dtype) for dtype in script.DTYPES}
    for line in rows:
        dtype, tensor, passed, rejected, by, bound, where = (
            cell.strip() for cell in line.split("|")[1:8]
        )
        k_passed, k_rejected = (int(eps.removeprefix("1e-")) for eps in (passed, rejected))
        good = script.scaled(tensor, k_passed)
        assert script.forms(good, dtype, arrays[dtype])[0], line
        assert script.properties(good, dtype)[0], line
        bad = script.scaled(tensor, k_rejected)
        rejected_by_forms = not script.forms(bad, dtype, arrays[dtype])[0]
        assert rejected_by_forms is (by == script.FORMS), line
        if rejected_by_forms:
            measured = script.tightest(dtype, tensor)
            on, kappa = where.split(", κ = ")
            assert agrees(bound, measured[0]) and on == measured[1], (line, measured)
            assert agrees(kappa, measured[2]), (line, measured)
        else:  # the example is the one Hypothesis shrinks to, which may vary with its version
            passes, message = script.properties(bad, dtype)
            assert not passes, line
            assert script.exceeded(message)[0] < 10.0**-k_rejected, (line, message)


@pytest.mark.parametrize("smaller", ["gradients", "step_gradients"])
def test_a_tie_goes_to_the_first_comparison_in_order(monkeypatch, smaller):
    """§6.6's rule: T1's gradients and its step_gradients t=1 are one computation; whichever of
    the two κ the BLAS makes smaller in its last digits, gradients, the first, is named."""
    real = script.expected

    def nudged(case, method, t):  # ``smaller``'s κ on T1 one part in 10⁹ below the other's
        oracle = real(case, method, t)
        if case.name == "T1" and method == smaller:
            oracle = oracle._replace(kappas=tuple(k * (1 - 1e-9) for k in oracle.kappas))
        return oracle

    monkeypatch.setattr(script, "expected", nudged)
    for tensor in ("W", "x"):
        assert script.tightest("float64", tensor)[1] == "T1, gradients", tensor
