"""Test sessions: `nox` runs the default list; `nox -s NAME` one session.

Each backend session installs the project with that backend's extra alone and runs the conformance
suite against it in float32 and float64. CPU sessions pin CPU builds through constraints/cpu.txt so
that no multi-gigabyte CUDA build is pulled onto a CPU machine.
"""

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False
nox.options.sessions = ["lint", "numpy"]

CPU = ("-c", "constraints/cpu.txt")


def conform(session, backend, *args):
    session.run("pytest", "conformance", "--backend", backend, *args, *session.posargs)


@nox.session
def lint(session):
    session.install(*CPU, "-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def numpy(session):
    """The NumPy backend, and the suite's own tests (wrong backends rejected, helpers, CLI)."""
    session.install(*CPU, "-e", ".[numpy,test]")
    conform(session, "numpy")
    session.run("pytest", "tests", *session.posargs)
