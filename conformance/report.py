"""A pytest plugin that writes one run's results as JSON: each test's outcome, check group, dtype
and worst error / tolerance, with the backend's identity. ``rnnspec conform`` reads it."""

import json
from pathlib import Path

import numpy as np
import pytest

from conformance import SUITE_VERSION, assertions, cross
from spec import PROTOCOL_VERSION

#: test module -> the check group the report shows, in SPEC.md's order.
GROUPS = {
    "test_protocol": "protocol",
    "test_forward": "forward & loss",
    "test_form_a": "form A (per step)",
    "test_form_b": "form B (BPTT)",
    "test_autodiff": "autodiff",
    "test_golden": "golden vectors",
    "test_errata": "errata",
    "test_edge_cases": "edge cases",
    "test_errors": "bad input",
    "test_outputs": "dtype/shape/device",
    "test_properties": "properties",
    "test_reference": "reference (FD)",
}


class JsonReport:
    def __init__(self, path: Path, backend):
        self.path, self.backend = Path(path), backend
        self.items: dict[str, dict] = {}

    def pytest_collection_finish(self, session):
        for item in session.items:
            module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
            params = getattr(getattr(item, "callspec", None), "params", {})
            self.items[item.nodeid] = {
                "id": item.nodeid,
                "group": GROUPS.get(module, module),
                "dtype": params.get("dtype", "any"),
                "outcome": "not run",
            }

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report):
        entry = self.items.get(report.nodeid)
        if entry is None or (report.when != "call" and report.passed):
            return
        if report.failed or report.when == "call" or report.skipped:
            entry["outcome"] = "skipped" if report.skipped else report.outcome
            if report.failed:
                entry["message"] = report.longreprtext[-4000:]
            if report.skipped and isinstance(report.longrepr, tuple):
                entry["message"] = report.longrepr[2]
        ratio = assertions.WORST_RATIO.get(report.nodeid)
        if ratio is not None:
            entry["worst_ratio"] = ratio

    def pytest_sessionfinish(self, session):
        backend = self.backend
        dtypes = session.config.getoption("dtype") or ("float32", "float64")
        for dtype in dtypes:  # outputs on shared inputs, for the cross-backend matrix
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
                    "tests": list(self.items.values()),
                },
                indent=1,
                default=float,
            )
        )
