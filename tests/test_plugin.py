"""The pytest plugin is registered in every pytest run where rnnspec is installed: it must leave
other projects' tests alone, and put the suite's options on plain pytest."""

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
