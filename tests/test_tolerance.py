"""The tolerance policy's own arithmetic (spec/tolerance.py)."""

import math

import numpy as np

from rnnspec.spec import tolerance


def test_relative_error_edge_values():
    assert tolerance.relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert tolerance.relative_error(np.ones(3), np.zeros(3)) == math.inf
    assert tolerance.relative_error(np.array([np.nan]), np.array([1.0])) == math.inf
    assert tolerance.relative_error(np.array([np.inf]), np.array([1.0])) == math.inf
    assert tolerance.relative_error(np.array([3.0, 4.0]), np.array([3.0, 0.0])) == 4.0 / 3.0


def test_bound_grows_with_sqrt_T_and_kappa():
    u = tolerance.UNIT_ROUNDOFF["float32"]
    assert tolerance.bound("float32", 1) == tolerance.MARGIN * (
        u + tolerance.UNIT_ROUNDOFF["float64"]
    )
    assert math.isclose(tolerance.bound("float32", 100), 10 * tolerance.bound("float32", 1))
    assert tolerance.bound("float32", 4, kappa=0.5) == tolerance.bound("float32", 4)
    assert tolerance.bound("float32", 4, kappa=3.0) == 3 * tolerance.bound("float32", 4)
    assert tolerance.bound("float64", 1) < tolerance.bound("float32", 1) * 1e-8


def test_a_sum_over_shards_counts_its_combining_additions_as_steps():
    """SPEC.md §11.5: S shards add S − 1 roundings to the T steps; one shard changes nothing."""
    assert tolerance.bound("float32", 5, shards=1) == tolerance.bound("float32", 5)
    assert tolerance.bound("float64", 5, 2.0, shards=4) == tolerance.bound("float64", 8, 2.0)
    assert tolerance.bound("float32", 1, shards=4) == 2 * tolerance.bound("float32", 1)


def test_ratio_rejects_an_error_of_one_percent_and_accepts_roundoff():
    ref = np.linspace(1, 2, 50)
    assert tolerance.ratio(ref * 1.01, ref, "float32", 10) > 1
    assert tolerance.ratio(ref.astype(np.float32), ref, "float32", 1) <= 1
    assert tolerance.ratio(ref.astype(np.float32), ref, "float64", 1) > 1  # float32 is not float64


def test_condition_numbers_see_cancellation():
    x = np.array([1.0, 2.0, 3.0])
    assert math.isclose(tolerance.condition_numbers(lambda a: [a], [x])[0], 1.0, rel_tol=1e-6)
    nearly = np.array([1.0, 1.0 - 1e-6])
    (kappa,) = tolerance.condition_numbers(lambda a: [a[0] - a[1]], [nearly])
    assert kappa > 1e5  # a difference of nearly equal numbers is ill-conditioned
    (fixed,) = tolerance.condition_numbers(lambda a, k: [a * k[0]], [x, np.array([2])])
    assert math.isclose(fixed, 1.0, rel_tol=1e-6)  # integer inputs are not perturbed


def test_fd_bound_scales_with_loss_and_gradient():
    grad = np.ones(4)
    assert tolerance.fd_bound(grad, 0.0) < tolerance.fd_bound(grad, 100.0)
    assert tolerance.fd_bound(2 * grad, 0.0) == 2 * tolerance.fd_bound(grad, 0.0)


def test_a_random_draw_into_saturation_is_judged_as_a_saturated_case():
    """The draw an H100 run's property check made (SPEC.md §6.3): a = −8.45 saturates tanh, and a
    correct float32 backend (NumPy's) is then 30 % off in ∇U, far beyond the bound; such a draw is
    a saturated case, held to finiteness only in float32 and, in float64, in the tensors through D."""
    from rnnspec import backends
    from rnnspec.conformance.cases import random_case
    from rnnspec.spec import reference, tolerance

    draws = iter([1, False, 1, 1, 1, 3, 3, False, 1.0, False, 1])  # T, soft, B, D, H, K, seed,
    #                                                          h0, ρ, relu, t
    case, _ = random_case(*(lambda *bounds: next(draws),) * 3)
    assert (case.T, case.D, case.H, case.seed, case.conditioning) == (1, 1, 1, 3, "saturated")
    assert case.finite_only("float64", "Grads.U") and not case.finite_only("float64", "Grads.V")
    numpy_backend = backends.load("numpy")
    got = numpy_backend.gradients(*case.native(numpy_backend, "float32"))[1].U
    want = reference.gradients(*case.arrays("float32"))[1].U
    assert tolerance.relative_error(got, want) > 100 * tolerance.bound("float32", T=1)
