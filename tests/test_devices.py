"""Asking a built-in backend for a device it does not have is a BackendError at load time, never a
silent fallback to the CPU. Runs for each framework installed (all of them in the cross session)."""

import importlib.util

import numpy as np
import pytest

from rnnspec import backends
from rnnspec.conformance.cases import CASES
from rnnspec.spec import BackendError, SpecError

GPU_NAMES = {"torch": "cuda", "jax": "gpu", "tensorflow": "GPU:0", "mlx": "gpu"}
NONSENSE = {
    "numpy": "tpu",
    "torch": "nonsense",
    "jax": "nonsense",
    "tensorflow": "nonsense",
    "mlx": "nonsense",
}


def _gpu_present(name: str) -> bool:
    if name == "torch":
        import torch

        return torch.cuda.is_available()
    if name == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if name == "mlx":
        import mlx.core as mx

        return mx.is_available(mx.gpu)
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


@pytest.mark.parametrize("name", sorted(GPU_NAMES))
def test_missing_gpu_is_an_error(name):
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed")
    if _gpu_present(name):
        pytest.skip(f"{name} sees a GPU here")
    with pytest.raises(BackendError):
        backends.load(name, device=GPU_NAMES[name])


@pytest.mark.parametrize("name", sorted(NONSENSE))
def test_unknown_device_is_an_error(name):
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed")
    with pytest.raises(BackendError):
        backends.load(name, device=NONSENSE[name])


SPELLINGS = ("cpu", "CPU:0", "cuda", "cuda:0", "gpu", "GPU:0", "gpu:1")


@pytest.mark.parametrize("name", sorted(NONSENSE))
def test_every_backend_takes_the_same_device_spellings(name):
    """cpu, cuda[:N] and gpu[:N], in any case, mean the same on every built-in backend: each is
    either opened or refused as absent here, never as a name the backend does not know."""
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed")
    for device in SPELLINGS:
        try:
            backends.load(name, device=device)
        except BackendError as error:
            unknown = "runs on" in str(error)  # parse_device's wording for a name it does not take
            assert not unknown or name == "numpy", (
                f"{name} refuses the spelling {device!r}: {error}"
            )
            assert "cannot run on" in str(error) or name == "numpy", str(error)


def test_mlx_on_a_gpu_refuses_float64(monkeypatch):
    """MLX computes float64 on the CPU only: on a GPU the backend declares float32 alone, and
    float64 is a SpecError from asarray and from every method, never a silent downcast. The GPU is
    faked (none here): its arrays' checks run on the CPU stream."""
    mx = pytest.importorskip("mlx.core")
    from rnnspec.backends.mlx import MlxBackend

    monkeypatch.setattr(MlxBackend, "_visible_devices", lambda self, kind: [f"{kind}:0"])
    gpu = MlxBackend("gpu")
    assert gpu.device == "gpu:0" and gpu.capabilities.dtypes == ("float32",)
    assert MlxBackend("cpu").capabilities.dtypes == ("float32", "float64")
    with pytest.raises(SpecError, match="MLX computes float64 on the CPU only"):
        gpu.asarray(np.zeros(3))
    gpu._device = mx.cpu
    inputs = CASES["basic"].native(MlxBackend("cpu"), "float64")
    refused = (
        r"x: expected dtype float32 \(what the mlx backend computes in on gpu:0\), got float64"
    )
    for method in ("forward", "loss", "gradients", "autodiff_gradients"):
        args = inputs[:2] if method == "forward" else inputs[:3]
        with pytest.raises(SpecError, match=refused):
            getattr(gpu, method)(*args, h0=inputs.h0)
    with pytest.raises(SpecError, match=refused):
        gpu.step_gradients(*inputs[:3], t=1, h0=inputs.h0)
