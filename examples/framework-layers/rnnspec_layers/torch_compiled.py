"""PyTorch's compiled and functional paths as witnesses, each the model as a PyTorch user writes it,
differentiated by torch's own machinery through that path:

- ``torch_func``: ``torch.func.grad_and_value`` over the eager model (a Python loop over the steps);
- ``torch_scan_closed_over``: torch's ``scan`` higher-order op carrying h, the weights closed over
  by the step. The weights' gradients are taken as a user training from a fixed h(0) gets them,
  h(0) not requiring grad: the configuration of pytorch#184528 (fixed by PR #185332, in torch
  2.13); ∇h(0) from a second pass, where h(0) requires grad;
- ``torch_scan_carried``: the same op with the weights passed in, as part of the carry, so that
  their gradients flow back through the carries;
- ``torch_compile_loop``: ``torch.compile`` (Inductor, ``fullgraph=True``) of the model written as
  a Python loop, gradients by autograd through the compiled graph (AOTAutograd's backward);
- ``torch_compile_nn_rnn``: ``torch.compile`` of ``torch.nn.RNN`` + ``nn.Linear`` (one pair of
  modules per φ, dtype and size, called by ``torch.func.functional_call`` with the given weights),
  masks as torch_nn_rnn runs them (``unmasked_first``).

The compiled witnesses compile once per shape, dtype, φ and grad mode (``dynamic=False``: each
shape its own graph, as a user's fixed-shape training loop has), with
``fail_on_recompile_limit_hit``, so that a limit reached is an error, never a silent fall back to
eager; the limit is raised for the suite's many shapes, in a ``torch._dynamo.config.patch``
around each call, so that the user's settings stay as they are; ``torch_compile_nn_rnn`` with
``allow_rnn=True``, without which Dynamo runs nn.RNN eagerly (README.md, finding 7). Every witness
but ``torch_func`` enters Dynamo, which is not thread safe, and is called one call at a time per
process (``_DYNAMO``; finding 8).

Masks (SPEC.md §9), but for ``torch_compile_nn_rnn``, as the spec writes them, in the step:
h(t) = m(t) φ(a(t)) + (1 − m(t)) h(t−1), by ``torch.where``.
"""

import threading
from contextlib import nullcontext

import torch
import torch._dynamo
from torch._higher_order_ops.scan import scan

from rnnspec.spec import Capabilities, Forward, Grads, Params

from ._arrays import TorchArrays
from ._common import LayerBackend, unmasked_first

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}
#: compilations a compiled witness may hold per function: the suite's shapes, dtypes, φ and modes
RECOMPILE_LIMIT = 100_000


def _loss_of(o, y):
    """(1.4)–(1.6): −Σ y · log_softmax(o), exact whatever Σ_k y_k is (erratum E1)."""
    return -(y * torch.log_softmax(o, dim=-1)).sum()


def _loop_states(U, W, b, x, h0, mask, phi: str):
    """h (T, B, H) by a Python loop over the steps, (1.1)–(1.2); masked steps carry h (9.1)."""
    activation, h, states = ACTIVATIONS[phi], h0, []
    for t in range(x.shape[0]):
        h_t = activation(b + h @ W.T + x[t] @ U.T)
        h = h_t if mask is None else torch.where(mask[t, :, None], h_t, h)
        states.append(h)
    return torch.stack(states)


def _scan_states_closed_over(U, W, b, x, h0, mask, phi: str):
    """h (T, B, H) by scan, the step closing over U, W, b; x (and the mask) scanned."""
    activation = ACTIVATIONS[phi]

    def step(h_prev, x_t):
        h_t = activation(b + h_prev @ W.T + x_t @ U.T)
        return h_t.clone(), h_t.clone()  # scan's outputs alias neither its inputs nor each other

    def masked_step(h_prev, inputs):
        x_t, kept_t = inputs
        h_t = torch.where(kept_t[:, None], activation(b + h_prev @ W.T + x_t @ U.T), h_prev)
        return h_t.clone(), h_t.clone()

    if mask is None:
        return scan(step, h0, x)[1]
    return scan(masked_step, h0, (x, mask))[1]


def _scan_states_carried(U, W, b, x, h0, mask, phi: str):
    """h (T, B, H) by scan, U, W, b passed in as part of the carry and carried unchanged."""
    activation = ACTIVATIONS[phi]

    def step(carry, inputs):
        h_prev, U, W, b = carry
        x_t, kept_t = inputs
        h_t = torch.where(kept_t[:, None], activation(b + h_prev @ W.T + x_t @ U.T), h_prev)
        return (h_t.clone(), U.clone(), W.clone(), b.clone()), h_t.clone()

    kept = torch.ones(x.shape[:2], dtype=torch.bool) if mask is None else mask
    return scan(step, (h0, U, W, b), (x, kept))[1]


#: Dynamo, which torch.compile and the scan op (it compiles its step) run, is not thread safe
#: (pytorch#118260, #136833; README.md, finding 8): concurrent calls raise, and leave the process's
#: tracing state broken for every later call. The witnesses that enter it take this lock, so that
#: a process calls Dynamo from one thread at a time, as a user calling from threads must.
_DYNAMO = threading.Lock()


class _Witness(LayerBackend):
    """The model's (h, o) by the subclass's ``_outputs(p, x, h0, mask, phi)``; forward and loss
    under no_grad, the loss's value and gradients by ``_differentiated`` (torch.autograd.grad over
    every input); all three one call at a time in the process where ``enters_dynamo``."""

    framework_version = f"torch {torch.__version__}"
    capabilities = Capabilities(
        autodiff=True, devices=("cpu",), masks=True, nonlinearities=("tanh", "relu")
    )
    enters_dynamo = True

    def __init__(self, device: str | None = None):
        super().__init__(device)
        self._arrays = TorchArrays()

    def _one_at_a_time(self):
        return _DYNAMO if self.enters_dynamo else nullcontext()

    @staticmethod
    def _states(U, W, b, x, h0, mask, phi: str):
        """h (T, B, H), by the path the witness is named for."""
        raise NotImplementedError

    def _outputs(self, p: Params, x, h0, mask, phi):
        """h (T, B, H) and o (T, B, K)."""
        h = self._states(p.U, p.W, p.b, x, h0, mask, phi)
        return h, h @ p.V.T + p.c  # (1.3)

    def _forward(self, p, x, h0, mask, phi):
        with self._one_at_a_time(), torch.no_grad():
            h, o = self._outputs(p, x, h0, mask, phi)
        return Forward(h=h, o=o, yhat=torch.softmax(o, dim=-1))

    def _loss(self, p, x, y, h0, mask, phi):
        with self._one_at_a_time(), torch.no_grad():
            return _loss_of(self._outputs(p, x, h0, mask, phi)[1], y)

    def _value_and_grad(self, p, x, y, h0, mask, phi):
        with self._one_at_a_time():
            return self._differentiated(p, x, y, h0, mask, phi)

    def _differentiated(self, p, x, y, h0, mask, phi):
        def loss(U, W, b, V, c, x, h0):
            return _loss_of(self._outputs(Params(U, W, b, V, c), x, h0, mask, phi)[1], y)

        value, (dU, dW, db, dV, dc, dx, dh0) = self._arrays.value_and_grad(loss, [*p, x, h0])
        return value, Grads(U=dU, W=dW, b=db, V=dV, c=dc, h0=dh0, x=dx)


class TorchFuncBackend(_Witness):
    """rnnspec backend ``torch_func``: torch.func.grad_and_value over the eager loop."""

    name = "torch_func"
    enters_dynamo = False  # torch.func transforms the eager code; no compilation
    _states = staticmethod(_loop_states)

    def _differentiated(self, p, x, y, h0, mask, phi):
        def loss(weights, x, h0):
            return _loss_of(self._outputs(Params(*weights), x, h0, mask, phi)[1], y)

        grads, value = torch.func.grad_and_value(loss, argnums=(0, 1, 2))(tuple(p), x, h0)
        (dU, dW, db, dV, dc), dx, dh0 = grads
        return value, Grads(U=dU, W=dW, b=db, V=dV, c=dc, h0=dh0, x=dx)


class TorchScanClosedOverBackend(_Witness):
    """rnnspec backend ``torch_scan_closed_over``: scan, the weights closed over by the step."""

    name = "torch_scan_closed_over"
    _states = staticmethod(_scan_states_closed_over)

    def _differentiated(self, p, x, y, h0, mask, phi):
        """The weights' and x's gradients with h(0) not requiring grad (pytorch#184528), then
        ∇h(0) alone from a second pass."""

        def loss(U, W, b, V, c, x, h0):
            return _loss_of(self._outputs(Params(U, W, b, V, c), x, h0, mask, phi)[1], y)

        value, (dU, dW, db, dV, dc, dx) = self._arrays.value_and_grad(
            lambda *leaves: loss(*leaves, h0.detach()), [*p, x]
        )
        _, (dh0,) = self._arrays.value_and_grad(lambda h0: loss(*p, x, h0), [h0])
        return value, Grads(U=dU, W=dW, b=db, V=dV, c=dc, h0=dh0, x=dx)


class TorchScanCarriedBackend(_Witness):
    """rnnspec backend ``torch_scan_carried``: scan, the weights passed in as part of the carry."""

    name = "torch_scan_carried"
    _states = staticmethod(_scan_states_carried)


def _compiled_call(compiled, *args, **settings):
    """``compiled(*args)`` with the raised recompile limit, reaching which fails, and any other
    Dynamo ``settings`` (module docstring)."""
    with torch._dynamo.config.patch(
        recompile_limit=RECOMPILE_LIMIT,
        accumulated_recompile_limit=RECOMPILE_LIMIT,
        fail_on_recompile_limit_hit=True,
        **settings,
    ):
        return compiled(*args)


def _loop_outputs(U, W, b, V, c, x, h0, mask, phi: str):
    h = _loop_states(U, W, b, x, h0, mask, phi)
    return h, h @ V.T + c


def _nn_rnn_outputs(rnn, linear, U, W, b, V, c, x, h0, order, count):
    """h and o from nn.RNN and nn.Linear given the weights (SPEC.md §1's table, bias_hh = 0); with
    a mask, each sequence's unmasked steps run first (``unmasked_first``'s order and count)."""
    weights = {"weight_ih_l0": U, "weight_hh_l0": W, "bias_ih_l0": b,
               "bias_hh_l0": torch.zeros_like(b)}  # fmt: skip
    if order is not None:
        x = x.gather(0, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    h, _ = torch.func.functional_call(rnn, weights, (x, h0.unsqueeze(0)))
    if order is not None:
        h = torch.cat([h0.unsqueeze(0), h])
        h = h.gather(0, count.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
    return h, torch.func.functional_call(linear, {"weight": V, "bias": c}, (h,))


#: the compiled functions, shared by every instance: torch.compile keeps its graphs per function
COMPILED_LOOP = torch.compile(_loop_outputs, fullgraph=True, dynamic=False)
COMPILED_NN_RNN = torch.compile(_nn_rnn_outputs, fullgraph=True, dynamic=False)


class TorchCompileLoopBackend(_Witness):
    """rnnspec backend ``torch_compile_loop``: torch.compile of the Python loop; autograd."""

    name = "torch_compile_loop"

    def _outputs(self, p, x, h0, mask, phi):
        return _compiled_call(COMPILED_LOOP, *p, x, h0, mask, phi)


class TorchCompileNnRnnBackend(_Witness):
    """rnnspec backend ``torch_compile_nn_rnn``: torch.compile of nn.RNN + nn.Linear; autograd."""

    name = "torch_compile_nn_rnn"

    def __init__(self, device: str | None = None):
        super().__init__(device)
        self._modules: dict = {}
        self._building = threading.Lock()

    def _modules_for(self, p: Params, phi: str):
        """One nn.RNN(nonlinearity=phi) and nn.Linear per (φ, dtype, D, H, K), on the meta device:
        they hold no weights (functional_call gives them), so nothing is initialised or drawn, and
        torch.compile meets the same two modules for every call of one key."""
        (H, D), K = p.U.shape, p.V.shape[0]
        key = (phi, p.U.dtype, D, H, K)
        with self._building:
            if key not in self._modules:
                rnn = torch.nn.RNN(D, H, nonlinearity=phi, dtype=p.U.dtype, device="meta")
                linear = torch.nn.Linear(H, K, dtype=p.U.dtype, device="meta")
                self._modules[key] = rnn, linear
            return self._modules[key]

    def _outputs(self, p, x, h0, mask, phi):
        order = count = None
        if mask is not None:
            order, count = (torch.from_numpy(a).long() for a in unmasked_first(mask.numpy()))
        # Dynamo refuses nn.RNN unless allow_rnn (its "experimental support"): without it the
        # module graph-breaks and runs eagerly, and fullgraph=True makes that an error (gb0014)
        return _compiled_call(
            COMPILED_NN_RNN, *self._modules_for(p, phi), *p, x, h0, order, count, allow_rnn=True
        )
