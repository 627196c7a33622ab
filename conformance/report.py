"""The suite's reporter, a pytest plugin the suite's conftest registers with ``--report-json``: it
records each check's outcome, group, dtype, message and worst error / tolerance, and at the end of
the run writes them as the JSON report that rnnspec.conformance.certificate builds and judges
(what the run left out, whether it certifies the backend). ``rnnspec conform`` reads it."""

import json
import time
from pathlib import Path

import pytest

from rnnspec.conformance import certificate
from rnnspec.conformance.plugin import (
    BACKEND,
    LOAD_ERROR,
    MESSAGE,
    NOT_APPLICABLE,
    checked_dtypes,
    group_of,
    is_check,
    params_of,
    worst_ratio,
)


def check_id(item) -> str:
    """A check's name without the local path it was collected from:
    'rnnspec.conformance.test_forward::test_loss[float32-basic]'."""
    module = item.module.__name__.rpartition(".")[2]
    return f"rnnspec.conformance.{module}::{item.name}"


def _title(item) -> str:
    """The first line of the check's docstring (an erratum's name, for errata), or its name."""
    doc = (getattr(item, "function", None) and item.function.__doc__) or ""
    return doc.strip().splitlines()[0] if doc.strip() else item.originalname.removeprefix("test_")


class JsonReport:
    def __init__(self, config):
        self.config = config
        self.path = Path(config.getoption("report_json"))
        self.started = time.monotonic()
        self.tests: dict[str, dict] = {}
        self.deselected = 0

    def pytest_deselected(self, items):
        self.deselected += sum(1 for item in items if is_check(item))

    def pytest_collection_finish(self, session):
        for item in filter(is_check, session.items):
            entry = {
                "id": check_id(item),
                "title": _title(item),
                "group": group_of(item),
                "dtype": params_of(item).get("dtype", "any"),
                "outcome": "not run",
            }
            if NOT_APPLICABLE in item.stash:
                entry["outcome"], entry["message"] = "n/a", item.stash[NOT_APPLICABLE]
            self.tests[item.nodeid] = entry

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report):
        entry = self.tests.get(report.nodeid)
        if entry is None or entry["outcome"] == "n/a" or (report.when != "call" and report.passed):
            return
        entry["outcome"] = "skipped" if report.skipped else report.outcome
        if report.failed:  # the assertion's own message, not the traceback into the suite
            crash = getattr(report.longrepr, "reprcrash", None)
            entry["message"] = crash.message if crash else report.longreprtext[-4000:]
            several = next((v for k, v in report.user_properties if k == MESSAGE), None)
            entry["message"] = several or entry["message"]
        if report.skipped and isinstance(report.longrepr, tuple):
            entry["message"] = report.longrepr[2]
        ratio = worst_ratio(report)
        if ratio is not None:
            entry["worst_ratio"] = ratio

    def pytest_sessionfinish(self, session):
        config = self.config
        if LOAD_ERROR in config.stash:
            document = certificate.error_report(
                config.getoption("backend"), config.stash[LOAD_ERROR]
            )
        elif BACKEND in config.stash:
            backend = config.stash[BACKEND]
            selection = certificate.Selection(
                keyword=config.option.keyword,
                markexpr=config.option.markexpr,
                deselected=self.deselected,
                dtypes=checked_dtypes(config, backend),
            )
            duration_s = round(time.monotonic() - self.started, 2)
            tests = list(self.tests.values())
            document = certificate.backend_report(backend, selection, tests, duration_s)
        else:
            return  # the suite's checks were not collected
        self.path.write_text(json.dumps(document, indent=1, default=float))
