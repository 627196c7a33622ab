"""A pytest plugin that writes one run's results as JSON: each check's outcome, group, dtype and
worst error / tolerance, with the backend's identity. ``rnnspec conform`` reads it."""

import json
from pathlib import Path

import numpy as np
import pytest

from rnnspec.conformance import SUITE_VERSION, cross
from rnnspec.conformance.plugin import BACKEND, NOT_APPLICABLE, dtypes, is_check
from rnnspec.spec import PROTOCOL_VERSION

#: The check groups, in SPEC.md's order; each check module declares its own with
#: ``pytestmark = pytest.mark.rnnspec_group(...)``.
GROUPS = (
    "protocol",
    "forward & loss",
    "form A (per step)",
    "form B (BPTT)",
    "autodiff",
    "golden vectors",
    "errata",
    "edge cases",
    "bad input",
    "dtype/shape/device",
    "properties",
    "reference (FD)",
)
WORST_RATIO = "rnnspec_worst_ratio"  # the user property conftest's `call` logs


class JsonReport:
    def __init__(self, config):
        self.config = config
        self.path = Path(config.getoption("report_json"))
        self.items: dict[str, dict] = {}

    def pytest_collection_finish(self, session):
        for item in filter(is_check, session.items):
            params = getattr(getattr(item, "callspec", None), "params", {})
            entry = {
                "id": item.nodeid,
                "group": item.get_closest_marker("rnnspec_group").args[0],
                "dtype": params.get("dtype", "any"),
                "outcome": "not run",
            }
            if NOT_APPLICABLE in item.stash:
                entry["outcome"], entry["message"] = "n/a", item.stash[NOT_APPLICABLE]
            self.items[item.nodeid] = entry

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report):
        entry = self.items.get(report.nodeid)
        if entry is None or entry["outcome"] == "n/a" or (report.when != "call" and report.passed):
            return
        if report.failed or report.when == "call" or report.skipped:
            entry["outcome"] = "skipped" if report.skipped else report.outcome
            if report.failed:
                entry["message"] = report.longreprtext[-4000:]
            if report.skipped and isinstance(report.longrepr, tuple):
                entry["message"] = report.longrepr[2]
        for key, value in report.user_properties:
            if key == WORST_RATIO:
                entry["worst_ratio"] = value

    def pytest_sessionfinish(self, session):
        backend = self.config.stash.get(BACKEND, None)
        if backend is None:
            return  # the suite's checks were not collected
        for dtype in dtypes(self.config):  # outputs on shared inputs, for the cross-backend matrix
            try:
                dump = cross.results(backend, dtype)
            except Exception as error:  # a broken backend: its failures are already reported
                dump = {"error": np.array(repr(error))}
            np.savez_compressed(self.path.with_suffix(f".{dtype}.npz"), **dump)
        self.path.write_text(
            json.dumps(
                {
                    "suite_version": SUITE_VERSION,
                    "protocol_version": PROTOCOL_VERSION,
                    "backend": backend.name,
                    "backend_protocol_version": getattr(backend, "protocol_version", None),
                    "framework_version": backend.framework_version,
                    "device": backend.device,
                    "capabilities": {
                        "autodiff": backend.capabilities.autodiff,
                        "devices": list(backend.capabilities.devices),
                        "dtypes": list(backend.capabilities.dtypes),
                    },
                    "tests": list(self.items.values()),
                },
                indent=1,
                default=float,
            )
        )
