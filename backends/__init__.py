"""Find and load backends by name. No framework is imported until its backend is loaded.

``load("numpy")`` and the other built-in names; a backend another package registers under the
entry-point group ``rnnspec.backends``; or ``load("package.module:factory")`` for any importable
callable that takes ``device`` and returns a Backend.
"""

import importlib
import importlib.util
import json
import shutil
import sys
from importlib.metadata import distributions, entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from rnnspec.spec import Backend, BackendError, protocol_problems

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "BackendError", "available", "import_target", "load"]

ENTRY_POINT_GROUP = "rnnspec.backends"

#: name -> (factory as "module:callable", the framework's import name, the pip extra that installs it)
BUILTIN = {
    "numpy": ("rnnspec.backends.numpy:NumpyBackend", "numpy", "numpy"),
    "torch": ("rnnspec.backends.torch:TorchBackend", "torch", "torch"),
    "jax": ("rnnspec.backends.jax:JaxBackend", "jax", "jax"),
    "tensorflow": ("rnnspec.backends.tensorflow:TensorflowBackend", "tensorflow", "tensorflow"),
    "mlx": ("rnnspec.backends.mlx:MlxBackend", "mlx", "mlx"),
}


def import_target(target: str) -> Any:
    """What ``module:attribute`` names, or a BackendError saying why it cannot be had."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BackendError(f"backend {target!r}: cannot import {module_name!r}: {error}") from error
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise BackendError(f"backend {target!r}: {module_name!r} has no {attribute!r}") from None


#: PyTorch's index of CPU-only wheels: on Linux the package index's torch is a CUDA build
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def nvidia_gpu() -> bool:
    """Whether this machine shows an NVIDIA GPU: its driver, or nvidia-smi."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def install_hint(extra: str) -> str:
    """The command that installs an extra from where rnnspec came from (its folder when pip
    installed it from one, as PEP 610's direct_url.json records; else a checkout's), leading to the
    CPU build on Linux without an NVIDIA GPU, where the package index's torch is a CUDA build of
    several GB and tensorflow-cpu is the smaller wheel."""
    place = ".", " in a checkout of rnnspec"
    for dist in distributions(name="rnnspec"):
        url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
        if url.startswith("file:"):
            place = url2pathname(urlparse(url).path), ""
            break
    folder, where = place
    if not sys.platform.startswith("linux") or extra not in ("torch", "tensorflow"):
        return f"pip install '{folder}[{extra}]'{where}"
    if nvidia_gpu():
        cuda = " (the CUDA build, several GB)" if extra == "torch" else ""
        return f"pip install '{folder}[{extra}]'{where}{cuda}"
    if extra == "tensorflow":
        return f"pip install '{folder}[tensorflow-cpu]'{where} (no NVIDIA GPU here: the CPU build)"
    return (
        f"pip install torch --index-url {TORCH_CPU_INDEX} && pip install '{folder}[torch]'{where}"
        f" (no NVIDIA GPU here: the CPU build; the package index's torch is a CUDA build of "
        f"several GB, what plain `pip install '{folder}[torch]'` fetches where a GPU is wanted)"
    )


def _registered() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load(name: str, device: str | None = None) -> Backend:
    """The backend called ``name`` on ``device`` (its default device when None)."""
    if name in BUILTIN:
        target, framework, extra = BUILTIN[name]
        if importlib.util.find_spec(framework) is None:
            raise BackendError(
                f"backend {name!r} needs {framework}, which is not installed: {install_hint(extra)}"
            )
        factory = import_target(target)
    elif name in (registered := _registered()):
        factory = registered[name].load()
    elif ":" in name:
        factory = import_target(name)
    else:
        known = sorted(set(BUILTIN) | set(_registered()))
        raise BackendError(
            f"unknown backend {name!r}: expected one of {known} or 'package.module:factory'"
        )
    backend = factory(device=device)
    problems = protocol_problems(backend)
    if problems:
        raise BackendError(f"backend {name!r} ({factory!r}): " + "; ".join(problems))
    return backend


def available() -> list[str]:
    """Names of the built-in backends whose framework is installed, then registered ones."""
    builtin = [n for n, (_, fw, _) in BUILTIN.items() if importlib.util.find_spec(fw) is not None]
    return builtin + sorted(set(_registered()) - set(BUILTIN))
