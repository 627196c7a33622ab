"""Loading the JAX backend leaves the user's JAX configuration alone: with x64 off (JAX's
default), asking for float64 is a SpecError that says how to turn it on, and float32 works."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")

SCRIPT = """
import numpy as np, jax, backends
from rnnspec.spec import SpecError
backend = backends.load("jax")
assert not jax.config.jax_enable_x64, "loading the backend changed jax_enable_x64"
backend.asarray(np.ones(3, np.float32))
try:
    backend.asarray(np.ones(3))
except SpecError as error:
    print(error)
"""


def test_float64_without_x64_is_a_clear_error():
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert 'jax.config.update("jax_enable_x64", True)' in done.stdout
    assert "JAX_ENABLE_X64=1" in done.stdout
