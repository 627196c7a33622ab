"""The "state" checks can fail: the suite rejects each deliberately stateful backend
(tests/stateful_backends.py) by the check made for its bug, with a message that says what changed.
The control, the plain NumPy backend those are built on, passes the same checks."""

import importlib.util

import pytest

STATE = "test_state"  # the state checks' module: -k state would also pick errata's E6

#: backend -> (the check that must fail, what its failure message must say)
STATEFUL = {
    "reused_buffer": (
        "test_results_stay_as_returned",
        ["forward -> Forward.h on case basic", "the returned array changed after a later call"],
    ),
    "flow_reused_buffer": (
        "test_results_stay_as_returned",
        ["tbptt_gradients -> window losses on case basic", "changed after a later call"],
    ),
    "shape_cache": (
        "test_results_independent_of_earlier_calls",
        ["on case basic_seed99", "after the calls forward(basic, float32)", "wrong result"],
    ),
    "dtype_blind_cache": (
        "test_results_independent_of_earlier_calls",
        [", float64, <rnnspec tests.stateful_backends:dtype_blind_cache", "float32)", "bound"],
    ),
    "mask_blind_cache": (
        "test_masked_and_unmasked_calls_do_not_mix",
        ["on case masked_gaps (T=8", "after the calls gradients(masked_gaps_without_mask", "wrong"],
    ),
    "shared_scratch": (
        "test_concurrent_calls_from_threads",
        ["another result when called from thread", "than when called alone"],
    ),
    "global_state": (
        "test_calls_leave_global_settings_alone",
        ["backend.gradients on case basic", "numpy.geterr()['divide']: 'warn' -> 'ignore'"],
    ),
    "mlx_global_state": (
        "test_calls_leave_global_settings_alone",
        ["backend.gradients on case basic", "mlx.core.random.state: 'state "],
    ),
}


@pytest.mark.parametrize("name", STATEFUL)
def test_suite_rejects_stateful(run_suite, name):
    if name.startswith("mlx") and importlib.util.find_spec("mlx") is None:
        pytest.skip("mlx is not installed")
    check, says = STATEFUL[name]
    done = run_suite(f"tests.stateful_backends:{name}", "-k", STATE)
    assert done.returncode == 1, f"the suite passed {name}:\n{done.stdout[-3000:]}"
    assert f"FAILED conformance/test_state.py::{check}[" in done.stdout, done.stdout[-3000:]
    failures = done.stdout.split("AssertionError: ")[1:]
    assert any(all(words in failure for words in says) for failure in failures), (
        says,
        done.stdout[-3000:],
    )


def test_control_passes(run_suite):
    done = run_suite("numpy", "-k", "state")
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout.splitlines()[-1] and "failed" not in done.stdout
