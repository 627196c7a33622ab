"""Every check can fail: the suite rejects each deliberately wrong backend, and the failure names
the tensor and reproduces. The control (same code, no mistake) passes the same checks."""

import pytest

from rnnspec.conformance.drawn import FLOW_SHAPES, MASKED_SHAPES, shape_id

# seed_commuted_product computes form A, O(T²) matrix powers: the T = 1000 case is left out for time
# (for every backend here, so that each run checks the same cases).
NOT_LONG = "not long"

WRONG = {  # backend: the tensor the form B failure must name first
    "seed_commuted_product": "Grads.U",
    "seed_p_minus_y": "Grads.U",
    "missing_transpose": "Grads.U",
    "h_k_in_place_of_h_k_minus_1": "Grads.W",
}

#: the compiled-path classics (issue: compilers and scan primitives) -> the tensor named first
COMPILED_PATH_CLASSICS = {
    "backward_in_forward_order": "Grads.U",  # δ(k) fed by δ(k − 1): E2 under another name
    "closed_over_W_without_gradient": "Grads.W",  # ∇W = 0, every other gradient right
}


@pytest.mark.parametrize("name", WRONG)
def test_suite_rejects(run_suite, name):
    done = run_suite(f"tests.wrong_backends:{name}", "-x", "-k", NOT_LONG)
    assert done.returncode == 1, f"the suite passed {name}:\n{done.stdout[-2000:]}"
    assert "1 failed" in done.stdout.splitlines()[-1], done.stdout[-2000:]


@pytest.mark.parametrize("name", [*WRONG, *COMPILED_PATH_CLASSICS])
def test_suite_rejects_in_each_form(run_suite, name):
    """Not only the first failure: the mistake shows in form B, in golden vectors and properties."""
    done = run_suite(
        f"tests.wrong_backends:{name}",
        "-k",
        f"(form_b or golden or properties) and {NOT_LONG}",
        dtypes=("float64",),
    )
    assert done.returncode == 1
    for module in ("test_form_b.py", "test_golden.py", "test_properties.py"):
        assert f"FAILED conformance/{module}" in done.stdout, (module, done.stdout[-3000:])
    first_failure = done.stdout.split("AssertionError: ", 1)[1]
    expected = {**WRONG, **COMPILED_PATH_CLASSICS}[name]
    assert first_failure.startswith(f"gradients -> {expected}"), first_failure[:300]
    assert "reproduce:" in first_failure


#: backend -> the relu case form B fails on first, and the tensor it names (SPEC.md §1.1)
WRONG_DERIVATIVES = {
    "relu_derivative_as_tanh": ("relu", "Grads.U"),  # 1 − h² for relu
    "derivative_at_h": ("relu", "Grads.U"),  # φ′(h) for φ′(a): relu′(h ≥ 0) = 1
    "relu_kink_not_as_declared": ("relu_kink", "Grads.b"),  # φ′(0) = 1 computed, 0 declared
}


@pytest.mark.parametrize("name", WRONG_DERIVATIVES)
def test_suite_rejects_a_wrong_relu_derivative(run_suite, name):
    """Each wrong φ′ fails form B on a relu case; the kink convention on relu_kink alone, whose
    a(1) is exactly 0 (the other relu cases keep a(t) away from the kink)."""
    done = run_suite(
        f"tests.wrong_backends:{name}", "-k", "test_form_b and relu", dtypes=("float64",)
    )
    assert done.returncode == 1, done.stdout[-2000:]
    case, tensor = WRONG_DERIVATIVES[name]
    assert f"FAILED conformance/test_form_b.py::test_gradients[float64-{case}]" in done.stdout
    first_failure = done.stdout.split("AssertionError: ", 1)[1]
    assert first_failure.startswith(f"gradients -> {tensor} on case {case} "), first_failure[:300]
    if name == "relu_kink_not_as_declared":
        assert "1 failed, 2 passed" in done.stdout.splitlines()[-1], done.stdout[-1500:]


def test_derivative_at_h_fails_tanh_too(run_suite):
    """1 − tanh(h)² in place of 1 − h² = tanh′(a): a tanh case's form B fails as well."""
    done = run_suite(
        "tests.wrong_backends:derivative_at_h", "-k", "test_form_b and basic", dtypes=("float64",)
    )
    assert done.returncode == 1 and "gradients -> Grads.U on case basic" in done.stdout


def test_a_backend_of_tanh_alone_has_relu_not_applicable(run_suite):
    """relu: n/a, with the reason, never failed and never passed (SPEC.md §8); the reference's
    own relu checks (backend-independent) left out."""
    done = run_suite(
        "tests.wrong_backends:tanh_only",
        "-k",
        "relu and not test_reference",
        "-rs",
        dtypes=("float64",),
    )
    assert done.returncode == 0, done.stdout[-2000:]
    last = done.stdout.splitlines()[-1]
    assert "skipped" in last and "passed" not in last and "failed" not in last, last
    assert "relu: n/a — tests.wrong_backends:tanh_only declares tanh only" in done.stdout


def test_control_passes(run_suite):
    done = run_suite(
        "tests.wrong_backends:control",
        "-k",
        f"(form_b or golden or properties or errata) and {NOT_LONG}",
    )
    assert done.returncode == 0, done.stdout[-3000:]


def test_suite_rejects_a_false_declaration(run_suite):
    done = run_suite("tests.wrong_backends:hidden_autodiff", "-k", "protocol")
    assert done.returncode == 1, done.stdout[-2000:]
    assert "capabilities.autodiff = False, but autodiff_gradients is present" in done.stdout


def test_suite_refuses_a_backend_of_the_old_protocol(run_suite):
    done = run_suite("tests.test_loader:_ProtocolOneBackend", "-k", "protocol")
    assert done.returncode != 0
    assert "declares protocol_version '1.0'" in done.stdout + done.stderr


FLOW_WRONG = {  # backend: the flow checks that must fail, in float64 and float32
    "commuted_lag_product": ("test_lag_norms", "test_truncated_gradients", "test_jacobian_norms"),
    "stale_state_gradients": (
        "test_tbptt_gradients",
        "test_tbptt_window_is_gradients_on_the_window",
    ),
}


#: backend: the mask checks its mistake must fail (between them, every check of test_masks.py)
MASK_MISTAKES = {
    "state_through_padding": ("test_left_padding_is_each_sequence_alone", "all_zero_mask"),
    "state_reset_at_masks": ("test_left_padding_is_each_sequence_alone",),
    "padded_targets_read": ("test_right_padding_is_each_sequence_alone",),
    "masked_missing_transpose": ("test_all_ones_mask_is_no_mask", "test_masked_step_gradients"),
    "mask_not_validated": (
        "test_bad_mask",
        "test_mask_of_another_framework",
        "test_bad_target_at_an_unmasked_step",
    ),
}


@pytest.mark.parametrize("name", FLOW_WRONG)
def test_suite_rejects_wrong_gradient_flow(run_suite, name):
    done = run_suite(f"tests.wrong_backends:{name}", "-k", "test_flow")
    assert done.returncode == 1, done.stdout[-2000:]
    for check in FLOW_WRONG[name]:
        for dtype in ("float32", "float64"):
            assert f"FAILED conformance/test_flow.py::{check}[{dtype}-" in done.stdout, (
                check,
                dtype,
            )
    if name == "stale_state_gradients":  # windows that do not overlap are right even so
        assert "test_tbptt_window_is_gradients_on_the_window[float64-2-2-" not in done.stdout


def test_flow_checks_are_not_applicable_without_the_declaration(run_suite):
    done = run_suite("tests.wrong_backends:no_gradient_flow", "-k", "test_flow", "-rs")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "gradient flow: n/a — tests.wrong_backends:no_gradient_flow declares none" in done.stdout
    assert " passed" not in done.stdout.splitlines()[-1], done.stdout.splitlines()[-1]


@pytest.mark.parametrize("name", MASK_MISTAKES)
def test_suite_rejects_a_wrong_mask(run_suite, name):
    """The mask checks reject the zero-soft-target trick (the state runs on through padding), a
    state reset at masked steps, padded targets that count, a wrong masked recursion and a mask
    not validated: in the reference and golden checks, and in the check named for each."""
    done = run_suite(f"tests.wrong_backends:{name}", "-k", "masks", dtypes=("float64",))
    assert done.returncode == 1, done.stdout[-2000:]
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    for check in (
        *MASK_MISTAKES[name],
        "test_masked_call_matches_reference",
        "test_committed_vectors_with_mask",
    ):
        assert any(check in line for line in failed), (check, done.stdout[-3000:])


def test_suite_fails_a_backend_without_masks(run_suite):
    """Masks are part of protocol 2.1: declaring none fails the mask checks, saying so."""
    done = run_suite("tests.wrong_backends:no_masks", "-k", "masks", dtypes=("float64",))
    assert done.returncode == 1, done.stdout[-2000:]
    assert "passed" not in done.stdout.splitlines()[-1], done.stdout[-2000:]
    assert "declares capabilities.masks = False" in done.stdout


#: group selection (-k) -> the drawn check of that group, and its shapes
DRAWN = {
    "masks": ("test_drawn_masked_calls_match_reference", MASKED_SHAPES),
    "test_flow": ("test_drawn_flow_matches_reference", FLOW_SHAPES),
}
#: backend wrong only where the named cases never look -> (its group, whether the mistake shows on
#: a (T, B, D, H, K) shape, h0 given or not)
SHAPE_MISTAKES = {
    "masked_omitted_h0": ("masks", lambda shape, h0: not h0),
    "mask_in_one_byte": ("masks", lambda shape, h0: shape[0] > 8),
    "square_mask_batch_major": ("masks", lambda shape, h0: shape[0] == shape[1]),
    "depth_below_T_is_full": ("test_flow", lambda shape, h0: shape[0] >= 2),
}


@pytest.mark.parametrize("name", SHAPE_MISTAKES)
def test_suite_rejects_a_mistake_on_other_shapes(run_suite, name):
    """Masked calls with h0 omitted, masks longer than 8 steps, a square mask (T = B), depth
    k = T − 1: the group's drawn check rejects each, where it shows only; every other check of
    the group, on the named cases, passes it."""
    group, shows = SHAPE_MISTAKES[name]
    check, shapes = DRAWN[group]
    done = run_suite(f"tests.wrong_backends:{name}", "-k", group, dtypes=("float64",))
    assert done.returncode == 1, done.stdout[-2000:]
    failed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("FAILED")]

    def where_it_shows(nodeid: str) -> bool:
        params = nodeid.partition("[")[2][:-1] + "-"
        shape = next(shape for shape in shapes if f"{shape_id(shape)}-" in params)
        return f"::{check}[" in nodeid and shows(shape, "-h0_omitted-" not in f"-{params}")

    assert failed, done.stdout[-3000:]
    assert all(where_it_shows(nodeid) for nodeid in failed), (failed, done.stdout[-3000:])


#: the stacked and bidirectional networks' mistakes (SPEC.md §12–§13) -> the check modules that
#: must fail on them (the layer alone's checks see a layer's mistakes without a head)
STACK_MISTAKES = {
    "directions_swapped": ("test_stacks.py", "test_layer.py"),  # [reverse; forward]
    "reverse_h0_from_forward": ("test_stacks.py", "test_layer.py"),
    "reverse_over_padding": ("test_stacks.py", "test_layer.py"),  # the padding read as data
    "no_delta_down": ("test_stacks.py",),  # layer l + 1's δ not sent to layer l
    "final_gradient_ignored": ("test_layer.py",),  # ∂ℓ/∂h_n dropped (pytorch#96416)
}


@pytest.mark.parametrize("name", STACK_MISTAKES)
def test_suite_rejects_a_wrong_network(run_suite, name):
    done = run_suite(f"tests.wrong_backends:{name}", "-k", "stack_call or layer_gradients",
                     dtypes=("float64",))  # fmt: skip
    assert done.returncode == 1, f"the suite passed {name}:\n{done.stdout[-2000:]}"
    for module in STACK_MISTAKES[name]:
        assert f"FAILED conformance/{module}" in done.stdout, (module, done.stdout[-3000:])
    first_failure = done.stdout.split("AssertionError: ", 1)[1]
    assert "reproduce:" in first_failure, first_failure[:2000]
