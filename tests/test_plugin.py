"""The pytest plugin is registered in every pytest run where rnnspec is installed: it must leave
other projects' tests alone, and put the suite's options on plain pytest."""

import os
import subprocess
import sys

USERS_TESTS = """
import pytest

@pytest.fixture(params=["int8", "int16"])
def dtype(request):
    return request.param

@pytest.fixture
def backend():
    return "mine"

def test_own_fixtures(dtype, backend):
    assert dtype in ("int8", "int16") and backend == "mine"
"""


def _pytest(*args, cwd):
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd)


def test_other_projects_tests_are_left_alone(tmp_path):
    (tmp_path / "test_users.py").write_text(USERS_TESTS)
    done = _pytest("-q", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert "rnnspec conformance suite" not in done.stdout  # no backend loaded, no header


def test_the_options_are_on_plain_pytest(tmp_path):
    done = _pytest("--help", cwd=tmp_path)
    for option in ("--backend", "--device", "--dtype", "--report-json"):
        assert option in done.stdout, option


def _in(folder, *args, home):
    """pytest as a user runs it in ``folder``, pytest's cache provider on, ``home`` as the cache."""
    env = {**os.environ, "XDG_CACHE_HOME": str(home)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=folder, env=env)


def test_the_suite_run_anywhere_leaves_nothing_there(tmp_path):
    """Issue 28: `pytest --pyargs rnnspec.conformance --backend numpy` in a directory of no pytest
    project left .hypothesis/ and .pytest_cache/ there; Hypothesis' files go to the user's cache."""
    anywhere, home = tmp_path / "anywhere", tmp_path / "home"
    anywhere.mkdir()
    done = _in(
        anywhere, "--pyargs", "rnnspec.conformance", "--backend", "numpy", "-k", "properties",
        home=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in anywhere.iterdir()) == []
    assert (home / "rnnspec" / "hypothesis").is_dir()


def test_a_users_own_tests_keep_pytests_cache(tmp_path):
    """Only a run of the suite is kept clean: the user's own tests, with rnnspec installed, get
    pytest's cache as always (--lf works)."""
    (tmp_path / "test_users.py").write_text(USERS_TESTS)
    done = _in(tmp_path, home=tmp_path / "home")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / ".pytest_cache").is_dir()
