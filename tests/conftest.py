import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_suite():
    """Run the conformance suite in a fresh process; returns the CompletedProcess."""

    def run(backend: str, *args: str, dtypes=("float32", "float64")):
        command = [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "rnnspec.conformance",
            "-q",
            "-p",
            "no:cacheprovider",
            "--backend",
            backend,
            *args,
        ]
        for dtype in dtypes:
            command += ["--dtype", dtype]
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)

    return run
