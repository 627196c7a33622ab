"""What gets installed: one top-level package, `rnnspec`, that imports no framework until a backend
is loaded, that works from any directory whatever folders sit there, and that also runs uninstalled
from the links scripts/stage.py lays out (as scripts/gpu-check.sh does); and golden vectors that
are what the documented command writes from the current reference."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rnnspec.conformance import golden
from rnnspec.spec import tolerance

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("torch", "jax", "tensorflow", "mlx", "cupy")
OLD_NAMES = ("spec", "backends", "conformance", "bench")
RNNSPEC = Path(sys.executable).parent / "rnnspec"  # the console script of this environment


def _python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
    )


def test_imports_load_no_framework(tmp_path):
    code = (
        "import sys, rnnspec.spec, rnnspec.spec.reference, rnnspec.conformance.cases;"
        "from rnnspec import backends; backends.available(); backends.load('numpy');"
        f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])"
    )
    done = _python(code, tmp_path)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("rnnspec-*.whl")
    return built


@pytest.fixture
def installed(wheel, tmp_path) -> Path:
    """The wheel installed, without dependencies, into a folder of its own (for PYTHONPATH)."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), wheel],
        check=True,
        capture_output=True,
    )
    return target


def test_the_wheel_holds_one_top_level_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"rnnspec"}, tops
    for must in ("rnnspec/spec/SPEC.md", "rnnspec/conformance/vectors/basic.npz", "rnnspec/cli.py"):
        assert must in names, must


def test_the_installed_wheel_answers_to_rnnspec_alone(installed, tmp_path):
    target = installed
    here = tmp_path / "elsewhere"
    here.mkdir()
    code = "import rnnspec.backends, rnnspec.conformance.plugin; print(rnnspec.__file__)"
    done = _python(code, here, PYTHONPATH=str(target))
    assert done.returncode == 0 and done.stdout.startswith(str(target)), done.stderr
    for old in OLD_NAMES:
        done = _python(f"import {old}", here, PYTHONPATH=str(target))
        assert "ModuleNotFoundError" in done.stderr, (old, done.stderr)
    report = here / "report.json"  # a certificate names no local path, installed or not
    conform = ["conform", "--backend", "numpy", "--json", str(report), "--", "-k", "test_golden"]
    done = _python(f"from rnnspec.cli import main; main({conform!r})", here, PYTHONPATH=str(target))
    assert report.exists(), done.stdout + done.stderr
    assert str(tmp_path) not in report.read_text() and "/site/" not in report.read_text()
    ids = [t["id"] for t in json.loads(report.read_text())["backends"][0]["tests"]]
    assert ids and all(i.startswith("rnnspec.conformance.test_golden::") for i in ids), ids[:3]


def test_folders_named_like_the_old_packages_shadow_nothing(tmp_path):
    """A backend author's project with spec/, backends/, bench/ and conformance/ folders, and the
    suite run from inside it: those folders are on sys.path and must not matter. Collecting the
    suite imports every module of it and the backend; the checks run are a few (the numpy session
    runs them all)."""
    for name in OLD_NAMES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('junk {name} imported')\n")
    suite = [
        "--pyargs",
        "rnnspec.conformance",
        "--backend",
        "numpy",
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "protocol or golden",
    ]
    pytest_run = subprocess.run(
        [sys.executable, "-m", "pytest", *suite],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert pytest_run.returncode == 0, pytest_run.stdout[-3000:] + pytest_run.stderr[-3000:]
    conform = subprocess.run(
        [str(RNNSPEC), "conform", "--backend", "numpy", "--", "-k", "protocol or golden"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert conform.returncode == 0, conform.stdout[-3000:] + conform.stderr[-3000:]
    assert "junk" not in pytest_run.stdout + conform.stdout


def test_the_staged_namespace_runs_uninstalled(tmp_path):
    """scripts/gpu-check.sh's way: the links of scripts/stage.py on PYTHONPATH, the plugin named
    with -p, nothing installed (the editable install's finder comes after PYTHONPATH)."""
    staged = tmp_path / "staged"
    subprocess.run([sys.executable, ROOT / "scripts" / "stage.py", staged], check=True)
    done = _python(
        "import rnnspec.cli, rnnspec.spec; print(rnnspec.cli.__file__, rnnspec.spec.__file__)",
        tmp_path,
        PYTHONPATH=str(staged),
    )
    assert done.stdout.split() == [
        str(staged / "rnnspec" / "cli.py"),
        str(staged / "rnnspec" / "spec" / "__init__.py"),
    ], done.stdout + done.stderr
    golden_only = ["--backend", "numpy", "--dtype", "float64", "--", "-k", "golden"]
    conform = subprocess.run(
        [sys.executable, "-m", "rnnspec.cli", "conform", *golden_only],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(staged)},
    )
    assert conform.returncode == 0, conform.stdout[-3000:] + conform.stderr[-3000:]
    assert "golden vectors" in conform.stdout


#: κ is a float64 measurement by perturbation (rnnspec.spec.tolerance.condition_numbers): the same
#: code gives the same κ up to rounding in its last digits, far inside this factor.
KAPPA_FACTOR = 1 + 1e-6


def test_golden_vectors_are_current(tmp_path):
    """`rnnspec vectors --into DIR` reproduces every entry of the committed files: inputs and names
    exactly, values within the tolerance policy, condition numbers within KAPPA_FACTOR."""
    golden.write(tmp_path)
    for name in golden.ALL_GOLDEN_CASES:
        committed, fresh = golden.load(name), golden.load(name, tmp_path)
        assert committed.keys() == fresh.keys(), name
        for key, value in committed.items():
            if key.endswith(".names") or key.startswith("input."):
                assert np.array_equal(value, fresh[key]), (name, key)
            elif key.endswith(".kappa"):
                low, high = sorted((float(value), float(fresh[key])))
                assert high <= low * KAPPA_FACTOR or high - low < 1e-12, (name, key, low, high)
            else:
                assert tolerance.ratio(value, fresh[key], "float64", 1) <= 1, (name, key)


def test_vectors_are_rewritten_only_in_a_checkout(installed, tmp_path):
    """An installed package's golden vectors are never rewritten; --into writes anywhere."""
    target = installed
    run = "from rnnspec.cli import main; main()"
    installed = {**os.environ, "PYTHONPATH": str(target)}
    refused = subprocess.run(
        [sys.executable, "-c", run, "vectors"], capture_output=True, text=True, env=installed
    )
    assert refused.returncode != 0 and "--into DIR" in refused.stderr, refused.stderr
    before = (target / "rnnspec" / "conformance" / "vectors" / "basic.npz").read_bytes()
    elsewhere = tmp_path / "fresh"
    done = subprocess.run(
        [sys.executable, "-c", run, "vectors", "--into", str(elsewhere)],
        capture_output=True,
        text=True,
        env=installed,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted(
        f"{name}.npz" for name in golden.ALL_GOLDEN_CASES
    )
    assert (target / "rnnspec" / "conformance" / "vectors" / "basic.npz").read_bytes() == before
