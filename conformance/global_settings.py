"""The global settings a user owns, framework by framework: Python's, NumPy's, PyTorch's, JAX's,
TensorFlow's and MLX's, each with how to read it and, where it is cheap and harmless, how to set it
to another value; and snapshots of them, to see what a backend changed. The "state" checks
(test_state.py) load and call the backend between two snapshots. A new framework's settings go in
:func:`settings` (docs/adding-a-backend.md, "A built-in backend")."""

import hashlib
import os
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, NamedTuple

import numpy as np


class Setting(NamedTuple):
    """A global setting the user owns; ``set`` and ``other`` where the check may set it otherwise
    (to another value a user may hold, harmless to a correct backend and cheap)."""

    name: str
    get: Callable[[], Any]
    set: Callable[[Any], Any] | None = None
    other: Callable[[Any], Any] | None = None


def _digest(value: Any) -> str:
    data = value if isinstance(value, bytes) else repr(value).encode()
    return "state " + hashlib.sha256(data).hexdigest()[:16]


def _numpy_random_state() -> str:
    kind, keys, *rest = np.random.get_state()  # bytes: an array's repr is cut short
    return _digest(repr((kind, *rest)).encode() + np.asarray(keys).tobytes())


def _environment() -> dict[str, str]:  # values hidden: they may be secrets
    return {k: hashlib.sha256(v.encode()).hexdigest()[:12] for k, v in os.environ.items()}


def _flipped_errors(state: dict) -> dict:
    return {k: "warn" if v == "ignore" else "ignore" for k, v in state.items()}


def settings() -> list[Setting]:
    """The settings of Python, NumPy and each framework already imported (never importing one)."""
    settings = [
        Setting("numpy.geterr()", np.geterr, lambda v: np.seterr(**v), _flipped_errors),
        Setting(
            "numpy.get_printoptions()",
            np.get_printoptions,
            lambda v: np.set_printoptions(**v),
            lambda v: {**v, "precision": v["precision"] + 3, "linewidth": v["linewidth"] + 7},
        ),
        Setting("numpy.random.get_state()", _numpy_random_state),
        Setting("random.getstate()", lambda: _digest(random.getstate())),
        Setting("os.environ", _environment),
    ]
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_default_dtype"):
        fp32 = torch.float32
        settings += [
            Setting(
                "torch.get_default_dtype()",
                torch.get_default_dtype,
                torch.set_default_dtype,
                lambda v: torch.float64 if v == fp32 else fp32,
            ),
            Setting(
                "torch.get_num_threads()",
                torch.get_num_threads,
                torch.set_num_threads,
                lambda v: v + 1,
            ),
            Setting(
                "torch.is_grad_enabled()",
                torch.is_grad_enabled,
                torch.set_grad_enabled,
                lambda v: not v,
            ),
            Setting(
                "torch.get_float32_matmul_precision()",
                torch.get_float32_matmul_precision,
                torch.set_float32_matmul_precision,
                lambda v: "high" if v == "highest" else "highest",
            ),
            # follows the precision above: compared, never set (PyTorch refuses mixed settings)
            Setting(
                "torch.backends.cuda.matmul.allow_tf32",
                lambda: torch.backends.cuda.matmul.allow_tf32,
            ),
            Setting(
                "torch.backends.cudnn.allow_tf32",
                lambda: torch.backends.cudnn.allow_tf32,
                lambda v: setattr(torch.backends.cudnn, "allow_tf32", v),
                lambda v: not v,
            ),
            Setting(
                "torch.are_deterministic_algorithms_enabled()",
                torch.are_deterministic_algorithms_enabled,
            ),
            Setting("torch.is_inference_mode_enabled()", torch.is_inference_mode_enabled),
            Setting("torch.is_anomaly_enabled()", torch.is_anomaly_enabled),
            Setting(
                "torch.random.get_rng_state()",
                lambda: _digest(torch.random.get_rng_state().numpy().tobytes()),
            ),
        ]
    jax = sys.modules.get("jax")
    if jax is not None and hasattr(jax, "config"):
        # Compared, never set: a JAX setting changed recompiles every kernel. Setting one to the
        # value it has is caught by recording_jax_updates instead.
        for flag in (
            "jax_enable_x64",
            "jax_default_device",
            "jax_default_matmul_precision",
            "jax_numpy_rank_promotion",
            "jax_numpy_dtype_promotion",
            "jax_disable_jit",
            "jax_debug_nans",
        ):
            if hasattr(jax.config, flag):
                settings.append(Setting(f"jax.config.{flag}", partial(getattr, jax.config, flag)))
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):
        experimental = tf.config.experimental
        settings += [
            Setting(
                "tf.config.experimental.get_device_policy()",
                experimental.get_device_policy,
                experimental.set_device_policy,
                lambda v: "warn" if v != "warn" else "silent",
            ),
            Setting(
                "tf.config.experimental.tensor_float_32_execution_enabled()",
                experimental.tensor_float_32_execution_enabled,
                experimental.enable_tensor_float_32_execution,
                lambda v: not v,
            ),
            Setting("tf.config.functions_run_eagerly()", tf.config.functions_run_eagerly),
            Setting("tf.executing_eagerly()", tf.executing_eagerly),
            Setting("tf.config.optimizer.get_jit()", tf.config.optimizer.get_jit),
        ]
    mx = sys.modules.get("mlx.core")
    if mx is not None and hasattr(mx, "default_device"):
        settings += [
            Setting("mlx.core.default_device()", mx.default_device),  # one device here: not set
            Setting(
                "mlx.core.default_stream(default_device())",
                lambda: mx.default_stream(mx.default_device()),
            ),
            Setting(
                "mlx.core.get_memory_limit()",
                mx.get_memory_limit,
                mx.set_memory_limit,
                lambda v: v + 2**20,
            ),
            Setting(
                "mlx.core.random.state", lambda: _digest(np.array(mx.random.state[0]).tobytes())
            ),
        ]
    return settings


def read(setting: Setting) -> Any:
    try:
        return setting.get()
    except Exception as error:  # e.g. PyTorch refusing to report a precision set both ways
        return f"<raises {type(error).__name__}: {error}>"


def snapshot() -> dict[str, Any]:
    return {setting.name: read(setting) for setting in settings()}


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs, setting by setting (entry by entry for dicts); frameworks imported between
    the two snapshots are not compared."""
    out = []
    for name in before.keys() & after.keys():
        was, now = before[name], after[name]
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict):
            for key in sorted(was.keys() | now.keys()):
                old, new = was.get(key, "(unset)"), now.get(key, "(unset)")
                if old != new:
                    out.append(f"{name}[{key!r}]: {old!r} -> {new!r}")
        else:
            out.append(f"{name}: {was!r} -> {now!r}")
    return sorted(out)


@contextmanager
def set_otherwise() -> Iterator[None]:
    """Every settable setting set to another value for the block, then back as it was."""
    done = []
    try:
        for setting in settings():
            if setting.set is not None and setting.other is not None:
                try:
                    was = setting.get()
                except Exception:  # unreadable (see read): left as it is
                    continue
                setting.set(setting.other(was))
                done.append((setting, was))
        yield
    finally:
        for setting, was in reversed(done):
            setting.set(was)


@contextmanager
def recording_jax_updates() -> Iterator[list[tuple[str, Any]]]:
    """Every ``jax.config.update(name, value)`` made in the block, the idempotent ones too."""
    updates: list[tuple[str, Any]] = []
    jax = sys.modules.get("jax")
    config = getattr(jax, "config", None)
    if config is None or not hasattr(config, "update"):
        yield updates
        return
    update = config.update

    def recording(name, value, *args, **kwargs):
        updates.append((name, value))
        return update(name, value, *args, **kwargs)

    config.update = recording
    try:
        yield updates
    finally:
        del config.update  # the class's method again
