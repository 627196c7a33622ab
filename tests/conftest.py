import subprocess
from pathlib import Path

import pytest

from rnnspec.cli import suite_command

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_suite():
    """Run the conformance suite in a fresh process, from the checkout so that `tests.` backends
    import; returns the CompletedProcess."""

    def run(backend: str, *args: str, dtypes=("float32", "float64")):
        command = suite_command(backend, dtypes=dtypes, pytest_args=args)
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)

    return run
