"""Asking a built-in backend for a device it does not have is a BackendError at load time, never a
silent fallback to the CPU. Runs for each framework installed (all of them in the cross session)."""

import importlib.util

import pytest

from rnnspec import backends
from rnnspec.spec import BackendError

GPU_NAMES = {"torch": "cuda", "jax": "gpu", "tensorflow": "GPU:0"}
NONSENSE = {"numpy": "tpu", "torch": "nonsense", "jax": "nonsense", "tensorflow": "nonsense"}


def _gpu_present(name: str) -> bool:
    if name == "torch":
        import torch

        return torch.cuda.is_available()
    if name == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
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
