"""The README's Python examples run as written, for every installed backend (switching is one name),
and prints what the README says it prints, each number to its printed digits (tests/printed.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rnnspec import backends
from tests.printed import same_claims, widened

README = Path(__file__).resolve().parent.parent / "README.md"
LOAD = 'be = backends.load("numpy")'


def _examples() -> list[str]:
    """The README's Python examples: the first one, variable-length sequences (masks), and deep
    and bidirectional networks (stacks)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 3, blocks
    for block in blocks:
        assert LOAD in block, "an example loads the backend some other way"
    return blocks


EXAMPLES = {"ids": ["first", "masks", "stacks"], "argvalues": [0, 1, 2]}


@pytest.mark.parametrize("example", **EXAMPLES)
@pytest.mark.parametrize("name", backends.available())
def test_the_example_runs_on_every_backend(name, example, tmp_path):
    block = _examples()[example]
    said = re.search(r"# prints (.*) on every backend", block)
    assert said, "the example does not say what it prints"
    # the examples compute in float64: a backend that declares float32 alone (the Keras wrappers
    # on JAX and torch, examples/framework-layers) computes something else, and is not asked to
    only_float64 = "\nif 'float64' not in be.capabilities.dtypes: raise SystemExit(3)"
    if example == 2:  # networks: a backend that declares one layer in one direction is not asked
        only_float64 += "\nif not be.capabilities.stacks: raise SystemExit(4)"
    code = widened(block.replace(LOAD, f"be = backends.load({name!r}){only_float64}"))
    env = {**os.environ, "JAX_ENABLE_X64": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}  # README: jax x64
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    if done.returncode == 3:
        pytest.skip(f"{name} does not declare float64, the examples' dtype")
    if done.returncode == 4:
        pytest.skip(f"{name} does not declare stacks, the third example's networks")
    assert done.returncode == 0, done.stderr[-3000:]
    assert same_claims(said[1], done.stdout.strip().splitlines()[-1]), (name, done.stdout)


@pytest.mark.parametrize("example", **EXAMPLES)
def test_the_example_names_every_built_in_backend_it_runs_on(example):
    """ "switching is one name": the comment beside the load names every built-in backend."""
    line = next(line for line in _examples()[example].splitlines() if line.startswith(LOAD))
    missing = [name for name in backends.BUILTIN if f'"{name}"' not in line]
    assert not missing, f"the README's example leaves out {missing}: {line}"
