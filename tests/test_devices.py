"""Asking a built-in backend for a device it does not have is a BackendError at load time, never a
silent fallback to the CPU. Runs for each framework installed (all of them in the cross session)."""

import importlib.util

import pytest

from rnnspec import backends
from rnnspec.spec import BackendError

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
