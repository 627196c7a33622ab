"""``keras.layers.SimpleRNN`` + ``keras.layers.Dense`` (Keras 3) as rnnspec backends, one per Keras
backend: ``keras_jax``, ``keras_torch`` and ``keras_tensorflow``, each differentiated by that
backend's own autodiff (``jax.value_and_grad``, ``torch.autograd``, ``tf.GradientTape``).

Keras reads its backend from ``KERAS_BACKEND`` once, when ``keras`` is first imported, so a process
holds Keras on one backend only. Each factory imports Keras with the backend it names (setting
``KERAS_BACKEND`` for the import alone, then giving the environment back as it was), or, where
Keras is already imported, checks that it runs on that backend and raises
``rnnspec.spec.BackendError`` if not. Arrays in and out are the backend framework's own: ``jax.Array``,
``torch.Tensor``, ``tf.Tensor``.

Weights are ported by SPEC.md §1's table: ``SimpleRNN`` ``kernel = Uᵀ`` (D, H),
``recurrent_kernel = Wᵀ``, ``bias = b``; ``Dense`` ``kernel = Vᵀ`` (H, K), ``bias = c``; Keras is
batch-major, so x goes in as (B, T, D) and h0 as ``initial_state`` (B, H). The gradients of the
layers' weights are ported back the same way (∇U = (∇kernel)ᵀ, ...). The loss is written by hand,
−Σ y · log_softmax(o), in the call's dtype: Keras' own cross-entropy back-propagates ŷ − y whatever
Σ_k y_k is (SPEC.md erratum E1) and computes in float32 by default.

The layers are built in the call's dtype (``dtype=`` per layer; the global
``keras.config.set_floatx`` is never touched), with constant initialisers and a fixed ``seed``, so
that no random number generator is drawn from, and run with ``Layer.stateless_call``, Keras 3's way
of calling a layer with given values of its variables: the ported weights enter every call as the
values of the layers' variables, which are never assigned. On torch and tensorflow every call
builds its own pair of layers and runs eagerly, so calls share nothing. On JAX the computations
are ``jax.jit``-compiled once per (φ, dtype, D, H, K) around one pair of layers, which they only read,
as Keras compiles its own stateless calls on JAX (see ``_for``); ``keras_tensorflow_xla`` does the
same with ``tf.function(jit_compile=True)`` in place of ``jax.jit``.

Masks (SPEC.md §9) go to ``SimpleRNN`` as its own ``mask`` (B, T): Keras carries the state over
masked steps, as the spec does, and its output there repeats the last unmasked one, which is h(t);
before a sequence's first unmasked step it outputs zeros where h(t) is h(0) (SPEC.md §9.4), so h
is taken from h(0) there.
"""

import os
import sys
import threading
from typing import Any

from rnnspec.spec import (
    BackendError,
    Capabilities,
    Forward,
    Grads,
    dtype_name,
    shape_of,
)

from ._arrays import JaxArrays, TensorflowArrays, TorchArrays
from ._common import LayerBackend, user_state_kept

_IMPORT = threading.Lock()


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


class KerasSimpleRNNBackend(LayerBackend):
    """rnnspec backend ``keras_<backend>``: keras.layers.SimpleRNN + Dense on one Keras backend.

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
            nonlinearities=("tanh", "relu"),
        )  # fmt: skip
        self._jit = fw.xla if xla else getattr(fw, "jit", None)  # JAX, or XLA (see _for)
        self._compiled: dict = {}
        self._compiling = threading.Lock()

    # the layers

    def _layers(self, phi: str, dtype: str, D: int, H: int, K: int):
        """A fresh SimpleRNN (return_sequences, ``activation=phi``: Keras' own "tanh" or "relu")
        and Dense in ``dtype``, built for D inputs. The
        constant initialisers and the fixed seed (of the cell's dropout generator, unused) keep
        Python's and the framework's random states untouched; the values are replaced per call."""
        layers = self._keras.layers
        rnn = layers.SimpleRNN(
            H,
            activation=phi,
            return_sequences=True,
            kernel_initializer="zeros",
            recurrent_initializer="zeros",
            bias_initializer="zeros",
            seed=0,
            dtype=dtype,
        )
        dense = layers.Dense(K, kernel_initializer="zeros", bias_initializer="zeros", dtype=dtype)
        rnn.build((None, None, D))
        dense.build((None, None, H))
        return rnn, dense

    def _computations(self, phi: str, dtype: str, D: int, H: int, K: int):
        """(forward, loss, value_and_grad), functions of (params, x, [y,] h0), through one pair of
        layers: the ported weights enter as the values of the layers' variables (stateless_call)."""
        ops = self._keras.ops
        rnn, dense = self._layers(phi, dtype, D, H, K)

        def outputs(kernel, recurrent_kernel, bias, dense_kernel, dense_bias, x, h0, mask):
            """h and o, time-major; the layers are batch-major: x goes in as (B, T, D)."""
            given = {
                id(rnn.cell.kernel): kernel,
                id(rnn.cell.recurrent_kernel): recurrent_kernel,
                id(rnn.cell.bias): bias,
                id(dense.kernel): dense_kernel,
                id(dense.bias): dense_bias,
            }
            h, _ = rnn.stateless_call(
                [given[id(v)] for v in rnn.trainable_variables],
                [v.value for v in rnn.non_trainable_variables],  # the (unused) dropout seed
                ops.transpose(x, (1, 0, 2)),
                initial_state=h0,
                mask=None if mask is None else ops.transpose(mask),
            )
            if mask is not None:  # zeros before the first unmasked step, where h(t) = h(0)
                started = ops.cumsum(ops.cast(ops.transpose(mask), "int32"), axis=1) > 0
                h = ops.where(ops.expand_dims(started, -1), h, ops.expand_dims(h0, 1))
            o, _ = dense.stateless_call([given[id(v)] for v in dense.trainable_variables], [], h)
            return ops.transpose(h, (1, 0, 2)), ops.transpose(o, (1, 0, 2))

        def ported(p) -> tuple[Any, Any, Any, Any, Any]:
            """§1's table: kernel = Uᵀ, recurrent_kernel = Wᵀ, bias = b; Dense: Vᵀ, c."""
            return ops.transpose(p.U), ops.transpose(p.W), p.b, ops.transpose(p.V), p.c

        def loss_of(o, y):
            """(1.4)–(1.6) by hand: −Σ y · log_softmax(o), exact whatever Σ_k y_k is (E1)."""
            return -ops.sum(y * ops.log_softmax(o, axis=-1))

        def forward(p, x, h0, mask):
            with self._arrays.no_grad():
                h, o = outputs(*ported(p), x, h0, mask)
                return h, o, ops.softmax(o, axis=-1)

        def loss(p, x, y, h0, mask):
            with self._arrays.no_grad():
                return loss_of(outputs(*ported(p), x, h0, mask)[1], y)

        def value_and_grad(p, x, y, h0, mask):
            value, grads = self._arrays.value_and_grad(
                lambda *args: loss_of(outputs(*args, mask)[1], y), [*ported(p), x, h0]
            )
            kernel, recurrent_kernel, bias, dense_kernel, dense_bias, dx, dh0 = grads
            t = ops.transpose  # the layers' gradients ported back: ∇U = (∇kernel)ᵀ, ...
            return value, Grads(
                U=t(kernel), W=t(recurrent_kernel), b=bias, V=t(dense_kernel), c=dense_bias,
                h0=dh0, x=dx,
            )  # fmt: skip

        return forward, loss, value_and_grad

    def _for(self, p, x, phi):
        """The computations for φ, x's dtype and p's sizes. On torch and tensorflow: a fresh pair of
        layers for every call, run eagerly. On JAX: jax.jit of them, kept per (φ, dtype, D, H, K), as
        Keras itself compiles its stateless calls on JAX; eagerly, each call would compile the
        SimpleRNN's lax.scan anew (0.6–0.8 s) and keep the executable (4 MiB more per call). Under
        XLA (keras_tensorflow_xla): tf.function(jit_compile=True) of them, kept the same way."""
        H, D = shape_of(p.U)
        key = (phi, dtype_name(x), D, H, shape_of(p.V)[0])
        if self._jit is None:
            return self._computations(*key)
        with self._compiling:
            if key not in self._compiled:  # the layers are read, never written: stateless calls
                self._compiled[key] = tuple(self._jit(f) for f in self._computations(*key))
            return self._compiled[key]

    def _forward(self, p, x, h0, mask, phi):
        return Forward(*self._for(p, x, phi)[0](p, x, h0, mask))

    def _loss(self, p, x, y, h0, mask, phi):
        return self._for(p, x, phi)[1](p, x, y, h0, mask)

    def _value_and_grad(self, p, x, y, h0, mask, phi):
        return self._for(p, x, phi)[2](p, x, y, h0, mask)


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
