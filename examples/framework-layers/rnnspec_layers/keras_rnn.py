"""``keras.layers.SimpleRNN`` + ``keras.layers.Dense`` (Keras 3) as rnnspec backends, one per Keras
backend: ``keras_jax``, ``keras_torch`` and ``keras_tensorflow``, each differentiated by that
backend's own autodiff (``jax.value_and_grad``, ``torch.autograd``, ``tf.GradientTape``); stacked
and bidirectional networks (SPEC.md §12) and the layer alone, its vector–Jacobian product for any
upstream gradient (§13).

Keras reads its backend from ``KERAS_BACKEND`` once, when ``keras`` is first imported, so a process
holds Keras on one backend only. Each factory imports Keras with the backend it names (setting
``KERAS_BACKEND`` for the import alone, then giving the environment back as it was), or, where
Keras is already imported, checks that it runs on that backend and raises
``rnnspec.spec.BackendError`` if not. Arrays in and out are the backend framework's own: ``jax.Array``,
``torch.Tensor``, ``tf.Tensor``.

Weights are ported by SPEC.md §1's and §12's tables: each cell's ``SimpleRNN`` ``kernel = Uᵀ``
(D_l, H), ``recurrent_kernel = Wᵀ``, ``bias = b``; ``Dense`` ``kernel = Vᵀ`` (directions·H, K),
``bias = c``. A network is one Keras layer per layer of the model, each reading the one below's
sequence: ``SimpleRNN(return_sequences=True, return_state=True)``, or for a bidirectional model
``Bidirectional`` of it (``merge_mode="concat"``), whose ``forward_layer`` holds the forward cell and
whose ``backward_layer`` (``go_backwards=True``) the reverse one; Keras flips the backward sequence
back into time order before concatenating, [forward; reverse] as (12.3). The initial states go in
per layer as ``initial_state``, ``[forward, backward]`` for ``Bidirectional``, and the last states
h_n (13.2) are the states each layer returns (``return_state``). Keras is batch-major, so x goes in
as (B, T, D). The gradients of the layers' weights are ported back the same way
(∇U = (∇kernel)ᵀ, ...). The loss is written by hand, −Σ y · log_softmax(o), in the call's dtype:
Keras' own cross-entropy back-propagates ŷ − y whatever Σ_k y_k is (SPEC.md erratum E1) and
computes in float32 by default. The layer's VJP is the same autodiff of
Σ ⟨h_grad, h⟩ + Σ ⟨hn_grad, h_n⟩ (13.1).

The layers are built in the call's dtype (``dtype=`` per layer; the global
``keras.config.set_floatx`` is never touched), with constant initialisers and a fixed ``seed``, so
that no random number generator is drawn from, and run with ``Layer.stateless_call``, Keras 3's way
of calling a layer with given values of its variables: the ported weights enter every call as the
values of the layers' variables, which are never assigned. (``Bidirectional`` rebuilds its forward
layer from the layer's config, which omits ``seed``, and ``SeedGenerator(None)`` draws a seed from
Python's ``random``: building one is done with Python's random state put back, see
``_python_random_kept``.) On torch and tensorflow every call builds its own layers and runs
eagerly, so calls share nothing. On JAX the computations are ``jax.jit``-compiled once per
(φ, dtype, D, H, K, layers, directions) around one set of layers, which they only read, as Keras
compiles its own stateless calls on JAX (see ``_for``); ``keras_tensorflow_xla`` does the same
with ``tf.function(jit_compile=True)`` in place of ``jax.jit``.

Masks (SPEC.md §9, §12.2) go to every layer as Keras' own ``mask`` (B, T), and Keras carries each
cell's state over the masked steps, in both directions: its backward layer reverses the sequence
and the mask together, so a right-padded sequence's reverse cell carries its initial state across
the padding and starts at the sequence's last step, as §12.2 defines, on either side of the
padding (checked on every Keras backend; keras#4192's dependence on the padding's side is not
Keras 3's). The states a layer returns are the carried ones, h_n of (13.2). What Keras outputs at a
masked step is not h(t), though: ``SimpleRNN`` repeats its last output, zeros before the first
unmasked step (where h(t) = h(0), SPEC.md §9.4), and ``Bidirectional`` forces
``zero_output_for_mask`` on both its layers, zeros at every masked step. Since a masked step reads
nothing of its input, a layer's outputs there change nothing above it; the top layer's h(t) is then
read at each sequence's unmasked steps (``_carried``): a forward cell's from its last unmasked step
at or before t, a reverse cell's from its first at or after t, the cell's initial state where
there is none.
"""

import os
import random
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from rnnspec.spec import (
    BackendError,
    Capabilities,
    Forward,
    Grads,
    LayerOutputs,
    Model,
    dtype_name,
    shape_of,
)

from ._arrays import JaxArrays, TensorflowArrays, TorchArrays
from ._common import LayerBackend, user_state_kept

_IMPORT = threading.Lock()
_BUILDING = threading.Lock()

#: the one-layer network of SPEC.md §1, which the hooks get when they are given no model
ONE_LAYER = Model()


def _import_keras(wanted: str):
    """Keras on backend ``wanted``; a BackendError if this process already has it on another."""
    with _IMPORT:
        if "keras" not in sys.modules:
            with user_state_kept():  # KERAS_BACKEND, then whatever the imports change, undone
                os.environ["KERAS_BACKEND"] = wanted
                try:
                    import keras
                except ImportError as error:
                    raise BackendError(
                        f"the keras_{wanted} backend needs keras: {error}"
                    ) from error
        import keras

        running = keras.backend.backend()
        if running != wanted:
            raise BackendError(
                f"the keras_{wanted} backend needs Keras on its {wanted!r} backend, but Keras was "
                f"already imported in this process with backend {running!r} (Keras reads "
                f"KERAS_BACKEND once, at its first import, and importing tensorflow imports keras): "
                f"use the keras_{running} backend here, or load keras_{wanted} in a process that "
                f"has imported neither keras nor tensorflow yet, or set KERAS_BACKEND={wanted} "
                f"before either is imported"
            )
        return keras


_FRAMEWORKS: dict[str, Any] = {
    "jax": JaxArrays,
    "torch": TorchArrays,
    "tensorflow": TensorflowArrays,
}


#: the dtypes each Keras backend computes in. Keras 3 (3.15.1 at least) demotes float64 to float32
#: on every backend but TensorFlow: keras.src.backend.common.dtypes.result_type maps float64 to
#: float32 "to be aligned with JAX's default behavior", whatever the layer's dtype, floatx or JAX's
#: x64 mode. A float64 SimpleRNN on torch computes its matmuls in float32 (ops.matmul) and returns
#: float64 arrays holding float32-accurate values; on JAX, ops.tanh returns float32 and lax.scan
#: refuses the float64 carry (TypeError). See README.md, "Findings".
DTYPES = {"jax": ("float32",), "torch": ("float32",), "tensorflow": ("float32", "float64")}


@contextmanager
def _python_random_kept() -> Iterator[None]:
    """Python's random state as it was, after building layers in the block, one block at a time:
    ``Bidirectional`` rebuilds its forward layer (and its backward layer, when not given one) from
    the wrapped layer's config, which has no ``seed`` (``SimpleRNN.get_config`` drops it, Keras
    3.15.1, keras#23657), and ``keras.random.SeedGenerator(None)`` draws its seed with
    ``random.randint``. The lock keeps this module's own builds from undoing each other's
    restores."""
    with _BUILDING:
        state = random.getstate()
        try:
            yield
        finally:
            random.setstate(state)


def _carried(mask: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Where h(t) is read from the top layer's outputs at a masked step (SPEC.md §9.1, §12.2), as
    (B, T, H) int32 indices along time, batch-major like the layers: ``before`` into
    [h(0); outputs], the last unmasked step at or before t (0: none, h(0)); ``after`` into
    [outputs; h(T + 1)], the first unmasked step at or after t (T: none, the reverse cell's
    initial state). At an unmasked step both are the step itself."""
    T, B = mask.shape
    t = np.arange(T)[:, None]
    before = np.maximum.accumulate(np.where(mask, t + 1, 0), axis=0)
    after = np.minimum.accumulate(np.where(mask, t, T)[::-1], axis=0)[::-1]
    return tuple(
        np.ascontiguousarray(np.broadcast_to(a.T[..., None], (B, T, H)), dtype=np.int32)
        for a in (before, after)
    )


def _directions(layer) -> list:
    """The SimpleRNN layers of one Keras layer, in cell order: a Bidirectional's forward_layer
    and backward_layer, or the SimpleRNN itself."""
    if hasattr(layer, "backward_layer"):
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


def _cells(p, model: Model) -> list[tuple]:
    """Each cell's (U, W, b), cell i = l·directions + d (SPEC.md §12)."""
    if not model.stacked:
        return [(p.U, p.W, p.b)]
    return list(zip(p.U, p.W, p.b))


class KerasSimpleRNNBackend(LayerBackend):
    """rnnspec backend ``keras_<backend>``: keras.layers.SimpleRNN + Dense on one Keras backend,
    stacked (one SimpleRNN per layer) and bidirectional (``Bidirectional(SimpleRNN)``) networks,
    and the layer alone.

    ``claim_float64`` declares float64 whatever DTYPES says (as ``dtype="float64"`` layers promise):
    not registered as a backend, only to measure what goes wrong (README.md, "Findings"). ``xla``
    (TensorFlow only) compiles the computations with ``tf.function(jit_compile=True)``, kept per
    key as on JAX: the witness of XLA on Keras' layer, ``keras_tensorflow_xla``.
    """

    def __init__(
        self,
        keras_backend: str,
        device: str | None = None,
        claim_float64: bool = False,
        xla: bool = False,
    ):
        suffix = ("_with_float64" if claim_float64 else "") + ("_xla" if xla else "")
        self.name = f"keras_{keras_backend}{suffix}"
        super().__init__(device)
        self._keras = keras = _import_keras(keras_backend)
        self._arrays = fw = _FRAMEWORKS[keras_backend]()
        self.framework_version = f"keras {keras.__version__} on {fw.version}"
        dtypes = ("float32", "float64") if claim_float64 else DTYPES[keras_backend]
        self.capabilities = Capabilities(
            autodiff=True, devices=("cpu",), dtypes=dtypes, masks=True,
            nonlinearities=("tanh", "relu"), stacks=True, layer=True,
        )  # fmt: skip
        self._jit = fw.xla if xla else getattr(fw, "jit", None)  # JAX, or XLA (see _for)
        self._compiled: dict = {}
        self._compiling = threading.Lock()

    # the layers

    def _layers(self, phi: str, dtype: str, D: int, H: int, K: int | None, model: Model):
        """Fresh recurrent layers, one per layer of the model: SimpleRNN (return_sequences and
        return_state, ``activation=phi``: Keras' own "tanh" or "relu"), wrapped in Bidirectional
        (``merge_mode="concat"``) for a bidirectional model; and Dense where K is given; all in
        ``dtype``, layer 1 built for D inputs and the others for the directions·H below. The
        constant initialisers and the fixed seed (of the cells' dropout generators, unused) keep
        the frameworks' random states untouched, and Python's is put back after Bidirectional;
        the values are replaced per call."""
        layers = self._keras.layers
        width = model.directions * H
        with _python_random_kept():
            rnns = []
            for level in range(model.layers):
                rnn = layers.SimpleRNN(
                    H,
                    activation=phi,
                    return_sequences=True,
                    return_state=True,
                    kernel_initializer="zeros",
                    recurrent_initializer="zeros",
                    bias_initializer="zeros",
                    seed=0,
                    dtype=dtype,
                )
                if model.bidirectional:
                    rnn = layers.Bidirectional(rnn, merge_mode="concat", dtype=dtype)
                rnn.build((None, None, D if level == 0 else width))
                rnns.append(rnn)
            dense = None
            if K is not None:
                dense = layers.Dense(
                    K, kernel_initializer="zeros", bias_initializer="zeros", dtype=dtype
                )
                dense.build((None, None, width))
        return rnns, dense

    def _computations(self, phi: str, dtype: str, D: int, H: int, K: int | None, model: Model):
        """(forward, loss, value_and_grad, layer_forward, layer_vjp), functions of
        (params, x, [y or upstream gradients,] h0, mask, steps), through one set of layers: the
        ported weights enter as the values of the layers' variables (stateless_call). ``steps``
        is ``_carried``'s pair where there is a mask, else None."""
        ops = self._keras.ops
        rnns, dense = self._layers(phi, dtype, D, H, K, model)
        R, n = model.directions, model.cells

        def read(outputs, initial, index, reverse):
            """One direction's h(t), (B, T, H): its outputs at ``index`` (``_carried``), the
            initial state where it points past them, before them for a forward cell."""
            state = ops.expand_dims(initial, 1)
            both = [outputs, state] if reverse else [state, outputs]
            return ops.take_along_axis(ops.concatenate(both, axis=1), index, axis=1)

        def network(cells, x, h0, mask, steps):
            """The top layer's states h (T, B, directions·H), time-major, and every cell's last
            state, in cell order; ``cells`` holds each cell's (kernel, recurrent_kernel, bias)."""
            initial = [h0[i] for i in range(n)] if model.stacked else [h0]
            z = ops.transpose(x, (1, 0, 2))  # the layers are batch-major: (B, T, D)
            mask = None if mask is None else ops.transpose(mask)
            last = []
            for level, rnn in enumerate(rnns):
                given = {}
                for r, simple in enumerate(_directions(rnn)):
                    kernel, recurrent_kernel, bias = cells[level * R + r]
                    given[id(simple.cell.kernel)] = kernel
                    given[id(simple.cell.recurrent_kernel)] = recurrent_kernel
                    given[id(simple.cell.bias)] = bias
                states = initial[level * R : (level + 1) * R]  # Bidirectional's: [fw, bw]
                (z, *final), _ = rnn.stateless_call(
                    [given[id(v)] for v in rnn.trainable_variables],
                    [v.value for v in rnn.non_trainable_variables],  # the (unused) dropout seeds
                    z,
                    initial_state=states if model.bidirectional else states[0],
                    mask=mask,
                )
                last.extend(final)
            if steps is not None:  # h(t) at masked steps: the carried states (see _carried)
                top = initial[n - R :]
                halves = [read(z[..., :H], top[0], steps[0], reverse=False)]
                if model.bidirectional:
                    halves.append(read(z[..., H:], top[1], steps[1], reverse=True))
                z = ops.concatenate(halves, axis=-1) if model.bidirectional else halves[0]
            return ops.transpose(z, (1, 0, 2)), last

        def final_states(last):
            """h_n (13.2): (cells, B, H) for a stack, (B, H) for one cell."""
            return ops.stack(last) if model.stacked else last[0]

        def ported_cells(p) -> list:
            """§1's and §12's tables, per cell: kernel = Uᵀ, recurrent_kernel = Wᵀ, bias = b."""
            t = ops.transpose
            return [w for U, W, b in _cells(p, model) for w in (t(U), t(W), b)]

        def by_cell(flat) -> list[tuple]:
            return [tuple(flat[3 * i : 3 * i + 3]) for i in range(n)]

        def logits(h, dense_kernel, dense_bias):
            given = {id(dense.kernel): dense_kernel, id(dense.bias): dense_bias}
            o, _ = dense.stateless_call([given[id(v)] for v in dense.trainable_variables], [], h)
            return o

        def loss_of(o, y):
            """(1.4)–(1.6) by hand: −Σ y · log_softmax(o), exact whatever Σ_k y_k is (E1)."""
            return -ops.sum(y * ops.log_softmax(o, axis=-1))

        def ported_back(flat) -> tuple:
            """The layers' gradients ported back, ∇U = (∇kernel)ᵀ, ...: tuples for a stack."""
            t = ops.transpose
            cells = by_cell(flat)
            U, W, b = (
                [t(k) for k, _, _ in cells],
                [t(r) for _, r, _ in cells],
                [b for *_, b in cells],
            )
            return tuple(tuple(g) if model.stacked else g[0] for g in (U, W, b))

        def forward(p, x, h0, mask, steps):
            with self._arrays.no_grad():
                h, _ = network(by_cell(ported_cells(p)), x, h0, mask, steps)
                o = logits(h, ops.transpose(p.V), p.c)
                return h, o, ops.softmax(o, axis=-1)

        def loss(p, x, y, h0, mask, steps):
            with self._arrays.no_grad():
                h, _ = network(by_cell(ported_cells(p)), x, h0, mask, steps)
                return loss_of(logits(h, ops.transpose(p.V), p.c), y)

        def value_and_grad(p, x, y, h0, mask, steps):
            def of(*args):
                *flat, dense_kernel, dense_bias, x, h0 = args
                h, _ = network(by_cell(flat), x, h0, mask, steps)
                return loss_of(logits(h, dense_kernel, dense_bias), y)

            args = [*ported_cells(p), ops.transpose(p.V), p.c, x, h0]
            value, grads = self._arrays.value_and_grad(of, args)
            *flat, dense_kernel, dense_bias, dx, dh0 = grads
            U, W, b = ported_back(flat)
            return value, Grads(
                U=U, W=W, b=b, V=ops.transpose(dense_kernel), c=dense_bias, h0=dh0, x=dx
            )

        def layer_forward(p, x, h0, mask, steps):
            with self._arrays.no_grad():
                h, last = network(by_cell(ported_cells(p)), x, h0, mask, steps)
                return h, final_states(last)

        def layer_vjp(p, x, h_grad, hn_grad, h0, mask, steps):
            """(13.1): the autodiff of ℓ = Σ ⟨h_grad, h⟩ + Σ ⟨hn_grad, h_n⟩, whose gradient with
            respect to h and h_n is exactly the upstream gradient."""

            def of(*args):
                *flat, x, h0 = args
                h, last = network(by_cell(flat), x, h0, mask, steps)
                total = ops.sum(h_grad * h)
                if hn_grad is not None:
                    total = total + ops.sum(hn_grad * final_states(last))
                return total

            _, grads = self._arrays.value_and_grad(of, [*ported_cells(p), x, h0])
            *flat, dx, dh0 = grads
            U, W, b = ported_back(flat)
            return Grads(U=U, W=W, b=b, V=None, c=None, h0=dh0, x=dx)

        return forward, loss, value_and_grad, layer_forward, layer_vjp

    def _for(self, p, x, phi, model: Model):
        """The computations for φ, x's dtype, p's sizes and the model's shape. On torch and
        tensorflow: fresh layers for every call, run eagerly. On JAX: jax.jit of them, kept per
        (φ, dtype, D, H, K, layers, directions), as Keras itself compiles its stateless calls on
        JAX; eagerly, each call would compile the SimpleRNN's lax.scan anew (0.6–0.8 s) and keep the
        executable (4 MiB more per call). Under XLA (keras_tensorflow_xla):
        tf.function(jit_compile=True) of them, kept the same way. K is None for the layer alone."""
        H, D = shape_of(_cells(p, model)[0][0])
        K = None if p.V is None else shape_of(p.V)[0]
        key = (phi, dtype_name(x), D, H, K, model)
        if self._jit is None:
            return self._computations(*key)
        with self._compiling:
            if key not in self._compiled:  # the layers are read, never written: stateless calls
                self._compiled[key] = tuple(self._jit(f) for f in self._computations(*key))
            return self._compiled[key]

    def _steps(self, mask, p, model: Model):
        """``_carried``'s indices as the framework's arrays, or None without a mask."""
        if mask is None:
            return None
        H = shape_of(_cells(p, model)[0][0])[0]
        return tuple(self.asarray(a) for a in _carried(self.to_numpy(mask), H))

    def _forward(self, p, x, h0, mask, phi, model=ONE_LAYER):
        steps = self._steps(mask, p, model)
        return Forward(*self._for(p, x, phi, model)[0](p, x, h0, mask, steps))

    def _loss(self, p, x, y, h0, mask, phi, model=ONE_LAYER):
        return self._for(p, x, phi, model)[1](p, x, y, h0, mask, self._steps(mask, p, model))

    def _value_and_grad(self, p, x, y, h0, mask, phi, model=ONE_LAYER):
        return self._for(p, x, phi, model)[2](p, x, y, h0, mask, self._steps(mask, p, model))

    def _layer_forward(self, p, x, h0, mask, phi, model):
        steps = self._steps(mask, p, model)
        return LayerOutputs(*self._for(p, x, phi, model)[3](p, x, h0, mask, steps))

    def _layer_vjp(self, p, x, h_grad, hn_grad, h0, mask, phi, model):
        steps = self._steps(mask, p, model)
        return self._for(p, x, phi, model)[4](p, x, h_grad, hn_grad, h0, mask, steps)


def keras_jax(device: str | None = None) -> KerasSimpleRNNBackend:
    """rnnspec backend ``keras_jax``: Keras on JAX (float64 needs JAX's x64 mode)."""
    return KerasSimpleRNNBackend("jax", device)


def keras_torch(device: str | None = None) -> KerasSimpleRNNBackend:
    """rnnspec backend ``keras_torch``: Keras on PyTorch."""
    return KerasSimpleRNNBackend("torch", device)


def keras_tensorflow(device: str | None = None) -> KerasSimpleRNNBackend:
    """rnnspec backend ``keras_tensorflow``: Keras on TensorFlow."""
    return KerasSimpleRNNBackend("tensorflow", device)


def keras_tensorflow_xla(device: str | None = None) -> KerasSimpleRNNBackend:
    """rnnspec backend ``keras_tensorflow_xla``: Keras on TensorFlow, compiled by XLA."""
    return KerasSimpleRNNBackend("tensorflow", device, xla=True)


def keras_jax_with_float64(device: str | None = None) -> KerasSimpleRNNBackend:
    """keras_jax declaring float64 too, for README.md's findings; not a registered backend."""
    return KerasSimpleRNNBackend("jax", device, claim_float64=True)


def keras_torch_with_float64(device: str | None = None) -> KerasSimpleRNNBackend:
    """keras_torch declaring float64 too, for README.md's findings; not a registered backend."""
    return KerasSimpleRNNBackend("torch", device, claim_float64=True)
