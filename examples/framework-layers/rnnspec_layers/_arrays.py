"""Each framework's arrays, as the wrappers need them: conversions to and from NumPy, whether an
array is the framework's own on the CPU, a finiteness reduction, zeros, one-hot targets and zeros
at masked steps, a no-grad context, and the framework's value-and-gradient of a scalar function.
Each class imports its framework when it is instantiated, never at import.
"""

from contextlib import nullcontext

import numpy as np

from rnnspec.spec import SpecError


class JaxArrays:
    def __init__(self):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.version = f"jax {jax.__version__}"
        self.device = jax.devices("cpu")[0]

    def asarray(self, array, dtype=None):
        array = np.array(array, dtype=dtype, copy=True)
        jax = self.jax
        if array.dtype == np.float64 and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
            raise SpecError(
                "float64 arrays need JAX's x64 mode, which is off: call "
                'jax.config.update("jax_enable_x64", True) at startup or set JAX_ENABLE_X64=1'
            )
        return jax.device_put(array, self.device)

    def to_numpy(self, array):
        return np.array(self.jax.device_get(array), copy=True)

    def is_native(self, array):
        return (
            isinstance(array, self.jax.Array)
            and not isinstance(array, self.jax.core.Tracer)
            and array.devices() == {self.device}
        )

    def all_finite(self, array):
        return bool(self.jnp.isfinite(array).all())

    def zeros(self, x, B, H):
        return self.jnp.zeros_like(x, shape=(B, H))

    def one_hot(self, y, K, dtype):
        return self.jax.nn.one_hot(y, K, dtype=np.dtype(dtype))

    def zero_masked(self, array, mask):
        """``array`` (T, B, ...) with zeros at the steps ``mask`` (T, B) masks."""
        return self.jnp.where(mask.reshape(mask.shape + (1,) * (array.ndim - 2)), array, 0)

    def no_grad(self):
        return nullcontext()

    def value_and_grad(self, fn, args):
        return self.jax.value_and_grad(fn, argnums=tuple(range(len(args))))(*args)

    def jit(self, fn):
        return self.jax.jit(fn)

    def full_precision(self) -> str:
        return "XLA on the CPU computes float32 matmuls in full float32; nothing to change"


class TorchArrays:
    def __init__(self, device: str = "cpu"):
        import torch

        self.torch = torch
        self.version = f"torch {torch.__version__}"
        self.device = torch.device(device)

    def asarray(self, array, dtype=None):
        torch = self.torch
        if dtype is not None and not isinstance(dtype, torch.dtype):
            dtype = getattr(torch, np.dtype(dtype).name)  # "float32", np.float32 -> torch.float32
        return torch.tensor(np.asarray(array, order="C"), dtype=dtype, device=self.device)

    def to_numpy(self, array):
        return array.detach().to("cpu", copy=True).numpy()

    def is_native(self, array):
        return isinstance(array, self.torch.Tensor) and array.device == self.device

    def all_finite(self, array):
        return bool(self.torch.isfinite(array).all())

    def zeros(self, x, B, H):
        return x.new_zeros((B, H))

    def one_hot(self, y, K, dtype):
        torch = self.torch
        return torch.nn.functional.one_hot(y.long(), K).to(getattr(torch, dtype))

    def zero_masked(self, array, mask):
        """``array`` (T, B, ...) with zeros at the steps ``mask`` (T, B) masks."""
        return self.torch.where(mask.reshape(mask.shape + (1,) * (array.ndim - 2)), array, 0)

    def no_grad(self):
        return self.torch.no_grad()

    def value_and_grad(self, fn, args):
        torch = self.torch
        leaves = [a.detach().requires_grad_() for a in args]  # the caller's stay untouched
        with torch.enable_grad():
            loss = fn(*leaves)
            grads = torch.autograd.grad(loss, leaves)
        return loss.detach(), grads

    def full_precision(self) -> str:
        torch = self.torch
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.allow_tf32 = False  # cuDNN's RNN kernels, which the line above misses
        return (
            "torch.set_float32_matmul_precision('highest'), torch.backends.cudnn.allow_tf32 = "
            "False: float32 matmuls and cuDNN RNNs in full float32, not TF32 or bfloat16 passes "
            "(global torch settings)"
        )


class TensorflowArrays:
    def __init__(self):
        import tensorflow as tf

        self.tf = tf
        self.version = f"tensorflow {tf.__version__}"

    def asarray(self, array, dtype=None):
        with self.tf.device("CPU:0"):
            return self.tf.constant(np.array(array, dtype=dtype, copy=True))

    def to_numpy(self, array):
        return np.array(array, copy=True)

    def is_native(self, array):
        tf = self.tf
        return (
            isinstance(array, tf.Tensor)
            and not tf.is_symbolic_tensor(array)
            and array.device.endswith("device:CPU:0")
        )

    def all_finite(self, array):
        return bool(self.tf.reduce_all(self.tf.math.is_finite(array)))

    def zeros(self, x, B, H):
        return self.tf.zeros((B, H), dtype=x.dtype)

    def one_hot(self, y, K, dtype):  # tf.one_hot takes int8/uint8/int32/int64 indices only
        return self.tf.one_hot(self.tf.cast(y, self.tf.int64), K, dtype=dtype)

    def zero_masked(self, array, mask):
        """``array`` (T, B, ...) with zeros at the steps ``mask`` (T, B) masks."""
        tf = self.tf
        steps = tf.reshape(mask, tf.concat([tf.shape(mask), [1] * (array.shape.rank - 2)], 0))
        return tf.where(steps, array, tf.zeros_like(array))

    def no_grad(self):
        return nullcontext()

    def value_and_grad(self, fn, args):
        with self.tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(args)
            loss = fn(*args)
        return loss, tape.gradient(loss, args)

    def xla(self, fn):
        """``fn`` compiled by XLA: traced once per signature, compiled once per shape."""
        return self.tf.function(fn, jit_compile=True, reduce_retracing=True)

    def full_precision(self) -> str:
        return "TensorFlow on the CPU computes float32 matmuls in full float32; nothing to change"


class MlxArrays:
    """MLX arrays on the CPU. MLX is lazy: results are evaluated by the caller (``evaluated``)."""

    def __init__(self):
        import mlx.core as mx

        self.mx = mx
        self.version = f"mlx {mx.__version__}"

    def asarray(self, array, dtype=None):
        array = np.array(array, dtype=dtype, copy=True)
        # by name: mx.array would make float32 of float64 data
        name = "bool_" if array.dtype == np.bool_ else array.dtype.name
        return self.mx.array(array, dtype=getattr(self.mx, name))

    def to_numpy(self, array):
        return np.array(array, copy=True)

    def is_native(self, array):
        return isinstance(array, self.mx.array)

    def all_finite(self, array):
        return bool(self.mx.isfinite(array).all())

    def zeros(self, x, B, H):
        return self.mx.zeros((B, H), dtype=x.dtype)

    def one_hot(self, y, K, dtype):
        mx = self.mx
        return (y[..., None] == mx.arange(K)).astype(getattr(mx, dtype))

    def zero_masked(self, array, mask):
        """``array`` (T, B, ...) with zeros at the steps ``mask`` (T, B) masks."""
        return self.mx.where(mask.reshape(mask.shape + (1,) * (array.ndim - 2)), array, 0)

    def no_grad(self):
        return nullcontext()

    def evaluated(self, *arrays):
        """The arrays, computed now: the work, and any error, happen in the call."""
        self.mx.eval(*arrays)
        return arrays

    def full_precision(self) -> str:
        return "MLX on the CPU computes float32 matmuls in full float32; nothing to change"
