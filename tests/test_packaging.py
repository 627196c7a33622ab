"""Importing spec or backends pulls in no deep-learning framework; the golden vectors are what the
documented command writes from the current reference."""

import subprocess
import sys

import numpy as np

from rnnspec.conformance import golden
from rnnspec.spec import tolerance

FRAMEWORKS = ("torch", "jax", "tensorflow", "cupy")


def test_imports_load_no_framework():
    code = (
        "import sys, spec, spec.reference, backends, conformance.cases;"
        "backends.available(); backends.load('numpy');"
        f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_golden_vectors_are_current(tmp_path):
    """`rnnspec vectors` (golden.write) reproduces the committed files from spec.reference."""
    golden.write(tmp_path)
    for name in golden.GOLDEN_CASES:
        committed, fresh = golden.load(name), golden.load(name, tmp_path)
        assert committed.keys() == fresh.keys(), name
        for key, value in committed.items():
            if key.endswith((".names", ".kappa")) or key.startswith("input."):
                assert np.array_equal(value, fresh[key]) or key.endswith(".kappa"), (name, key)
            else:
                assert tolerance.ratio(value, fresh[key], "float64", 1) <= 1, (name, key)
