"""The TBPTT recipe of the PyTorch forum thread "Implementing Truncated Backpropagation Through
Time" (discuss.pytorch.org/t/15500), run as written with autograd: the report that it gives
dx3/dw = 0.2880 where the answer is 0.108 (three steps of x(t) = w x(t−1), x(0) = 0.9, w = 0.2) is
right, and the cause is the recipe's, not autograd's (SPEC.md §5, §10.3): the detached states' .grad is
never zeroed, so a state shared by two windows (k1 < k2) passes an old window's gradient on again.
tests.wrong_backends:stale_state_gradients is that recipe on rnnspec's model."""

import numpy as np
import pytest

from rnnspec.conformance.cases import CASES
from rnnspec.spec import reference_flow, tolerance

torch = pytest.importorskip("torch")


def recipe(step, loss_of, parameters, inputs, start, k1, k2, zero_state_grads=False):
    """The recipe's loop: every k1 steps, backward from that step's loss and then, state by state,
    back through at most k2 steps. Returns each window's parameter gradients."""
    states = [(None, start)]
    updates = []
    for j, inp in enumerate(inputs):
        state = states[-1][1].detach()
        state.requires_grad = True
        output, new_state = step(inp, state)
        states.append((state, new_state))
        while len(states) > k2:
            del states[0]
        if (j + 1) % k1 == 0:
            for p in parameters:  # optimizer.zero_grad(): the parameters only
                p.grad = None
            if zero_state_grads:  # the fix: each window starts its states' gradients afresh
                for old_state, _ in states:
                    if old_state is not None:
                        old_state.grad = None
            loss_of(j, output).backward(retain_graph=k1 < k2)
            for i in range(k2 - 1):
                if states[-i - 2][0] is None:
                    break
                current = states[-i - 1][0].grad
                states[-i - 2][1].backward(current, retain_graph=k1 < k2)
            updates.append([p.grad.detach().clone() for p in parameters])
    return updates


def test_the_reported_numbers():
    w = torch.nn.Parameter(torch.tensor(0.2, dtype=torch.float64))

    def step(_, state):
        new = w * state
        return new, new

    run = [None] * 3
    start = torch.tensor(0.9, dtype=torch.float64)
    as_reported = recipe(step, lambda j, out: out, [w], run, start, k1=1, k2=3)
    fixed = recipe(step, lambda j, out: out, [w], run, start, k1=1, k2=3, zero_state_grads=True)
    assert [round(float(u[0]), 10) for u in as_reported] == [0.9, 0.36, 0.288]
    assert [round(float(u[0]), 10) for u in fixed] == [0.9, 0.36, 0.108]  # 3 w² x(0) = 0.108


@pytest.mark.parametrize("k2", [3, 5])
def test_the_recipe_on_this_model_is_the_wrong_backend_and_the_fix_is_the_spec(k2):
    """With k1 = 1 the recipe's window loss (that of step τ alone) is (10.6)'s; its gradients are
    stale_state_gradients's, and with the states' .grad zeroed they are the reference's."""
    from tests.wrong_backends import stale_state_gradients

    case = CASES["basic"]
    params, x, y, h0 = case.arrays("float64")
    U, W, b, V, c = (torch.nn.Parameter(torch.tensor(a)) for a in params)
    targets = torch.tensor(y)

    def step(x_t, state):
        new = torch.tanh(b + state @ W.T + torch.tensor(x_t) @ U.T)
        return new @ V.T + c, new

    def loss_of(j, logits):
        return torch.nn.functional.cross_entropy(logits, targets[j], reduction="sum")

    start = torch.tensor(h0)
    arguments = ([U, W, b, V, c], list(x), start, 1, k2)
    as_written = recipe(step, loss_of, *arguments)
    fixed = recipe(step, loss_of, *arguments, zero_state_grads=True)
    _, wrong = stale_state_gradients().tbptt_gradients(params, x, y, 1, k2, h0=h0)
    _, right = reference_flow.tbptt_gradients(params, x, y, 1, k2, h0)
    for window, (recipe_grads, fixed_grads) in enumerate(zip(as_written, fixed)):
        for field, got, fix in zip("UWbVc", recipe_grads, fixed_grads):
            for computed, want in ((got, getattr(wrong, field)), (fix, getattr(right, field))):
                error = tolerance.relative_error(computed.numpy(), want[window])
                assert error <= tolerance.bound("float64", case.T), (window, field, error)
    assert not np.allclose(wrong.W, right.W)
