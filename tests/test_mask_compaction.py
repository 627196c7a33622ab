"""SPEC.md §9.4, "any mask with a layer that has none": the masked model is each sequence's unmasked
steps run alone, in order, from the same h(0), with h(t) the state after the first c(t) of them.
Checked on the float64 reference, every pattern at once: gaps, left and right padding, an empty
sequence and a full one. The framework-layer wrappers (examples/framework-layers) rely on it."""

import numpy as np
import pytest

from rnnspec.spec import Params, reference

T, D, H, K = 9, 3, 4, 5

MASK = np.array(  # (B, T): gaps, left padding, right padding, nothing, everything
    [
        [1, 0, 0, 1, 1, 0, 1, 0, 1],
        [0, 0, 0, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 1, 1, 1],
    ],
    dtype=bool,
).T


def _draw(rng):
    B = MASK.shape[1]
    shapes = [(H, D), (H, H), (H,), (K, H), (K,)]
    params = Params(*(rng.normal(scale=0.7, size=s) for s in shapes))
    return (
        params,
        rng.normal(size=(T, B, D)),
        rng.dirichlet(np.ones(K), size=(T, B)),
        rng.normal(size=(B, H)),
    )


def _alone(params, x, y, h0, n):
    """Sequence n's unmasked steps as a sequence of its own: (h(c) for c = 0..ℓ, L, Grads)."""
    steps = np.flatnonzero(MASK[:, n])
    if steps.size == 0:  # nothing runs: h stays h(0), no loss, no gradient
        return h0[n][None], 0.0, None, steps
    xs, ys, h0s = x[steps, n][:, None], y[steps, n][:, None], h0[n][None]
    h = reference.forward(params, xs, h0s).h[:, 0]
    loss, grads = reference.gradients(params, xs, ys, h0s)
    return np.concatenate([h0[n][None], h]), loss, grads, steps


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_model_is_each_sequence_alone_on_its_unmasked_steps(seed):
    params, x, y, h0 = _draw(np.random.default_rng(seed))
    masked_h = reference.forward(params, x, h0, mask=MASK).h
    masked_loss, masked = reference.gradients(params, x, y, h0, mask=MASK)

    loss, summed = 0.0, {f: np.zeros_like(getattr(params, f)) for f in Params._fields}
    for n in range(MASK.shape[1]):
        states, loss_n, grads, steps = _alone(params, x, y, h0, n)
        count = np.cumsum(MASK[:, n])  # c(t): h(t) is the state after the first c(t) steps
        np.testing.assert_allclose(masked_h[:, n], states[count], rtol=1e-12, atol=1e-14)
        loss += loss_n
        if grads is None:
            assert not masked.h0[n].any() and not masked.x[:, n].any()
            continue
        for field in Params._fields:
            summed[field] += getattr(grads, field)
        np.testing.assert_allclose(masked.h0[n], grads.h0[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(masked.x[steps, n], grads.x[:, 0], rtol=1e-12, atol=1e-14)
        assert not np.delete(masked.x[:, n], steps, axis=0).any()  # exactly zero at masked steps
    np.testing.assert_allclose(masked_loss, loss, rtol=1e-12)
    for field in Params._fields:
        np.testing.assert_allclose(getattr(masked, field), summed[field], rtol=1e-12, atol=1e-14)
