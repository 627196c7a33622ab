"""The suite run in this process on a backend object (rnnspec.check: a plain function's backend
cannot be named on a command line), with the same report as ``rnnspec conform``'s."""

import json
import tempfile
from pathlib import Path

import pytest

from rnnspec.conformance import certificate
from rnnspec.conformance.plugin import BACKEND, PRECISION, RELOAD


class _Given:
    """Hands the suite this backend instead of loading one by name (--backend)."""

    def __init__(self, backend, reload):
        self.backend, self.reload = backend, reload

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config):
        config.stash[PRECISION] = self.backend.enforce_full_precision()
        config.stash[BACKEND] = self.backend
        config.stash[RELOAD] = self.reload


def run(backend, reload: tuple, dtypes=(), pytest_args=(), show_failures: int = 3) -> dict:
    """Run the whole suite on ``backend``, print what it found as ``rnnspec conform`` does, and
    return the certificate (``certificate["certified"]``). ``reload``: the words and the call that
    make the backend again, for the check that loading it changes no global setting."""
    from rnnspec.cli import console, show  # the printing shared with rnnspec conform

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        args = ["--pyargs", "rnnspec.conformance", "-q", "-p", "no:cacheprovider", "--tb=no"]
        args += ["--report-json", str(path), *(f"--dtype={d}" for d in dtypes), *pytest_args]
        pytest.main(args, plugins=[_Given(backend, reload)])
        if path.exists():
            report = json.loads(path.read_text())
        else:
            report = certificate.error_report(backend.name, "pytest wrote no report (see above)")
    if "tests" in report:
        console.print(f"{certificate.identity(report)}:\n  {report['summary']}", highlight=False)
    document, _ = show([report], [], show_failures)
    return document
