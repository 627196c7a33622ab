"""A pytest plugin that writes one run's results as JSON: each check's outcome, group, dtype and
worst error / tolerance, what the run left out, and whether it certifies the backend.
``rnnspec conform`` reads it (rnnspec.conformance.certificate renders it)."""

import json
from collections import Counter
from datetime import UTC, datetime
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
    "state",
    "properties",
    "masks",
    "reference (FD)",
    "flow",
)
WORST_RATIO = "rnnspec_worst_ratio"  # the user property conftest's `call` logs


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
        self.items: dict[str, dict] = {}
        self.deselected = 0

    def pytest_deselected(self, items):
        self.deselected += sum(1 for item in items if is_check(item))

    def pytest_collection_finish(self, session):
        for item in filter(is_check, session.items):
            params = getattr(getattr(item, "callspec", None), "params", {})
            entry = {
                "id": check_id(item),
                "title": _title(item),
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
            if report.failed:  # the assertion's own message, not the traceback into the suite
                crash = getattr(report.longrepr, "reprcrash", None)
                entry["message"] = crash.message if crash else report.longreprtext[-4000:]
            if report.skipped and isinstance(report.longrepr, tuple):
                entry["message"] = report.longrepr[2]
        for key, value in report.user_properties:
            if key == WORST_RATIO:
                entry["worst_ratio"] = value

    def left_out(self, backend) -> list[str]:
        """What keeps this run from being the whole suite for the dtypes and device it names."""
        option = self.config.option
        out = []
        if option.keyword:
            out.append(f"-k {option.keyword!r}")
        if option.markexpr:
            out.append(f"-m {option.markexpr!r}")
        if self.deselected:
            out.append(f"{self.deselected} checks deselected")
        unchecked = [d for d in backend.capabilities.dtypes if d not in dtypes(self.config)]
        if unchecked:
            out.append(f"dtype {', '.join(unchecked)} not checked (--dtype)")
        outcomes = Counter(entry["outcome"] for entry in self.items.values())
        if outcomes["not run"]:
            out.append(f"{outcomes['not run']} checks not run (stopped early: -x or --maxfail)")
        if outcomes["skipped"]:
            out.append(f"{outcomes['skipped']} checks skipped")
        groups = {entry["group"] for entry in self.items.values()}
        missing = [group for group in GROUPS if group not in groups]
        if missing and not out:  # e.g. a single check module named on the command line
            out.append(f"groups not collected: {', '.join(missing)}")
        return out

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
        outcomes = Counter(entry["outcome"] for entry in self.items.values())
        left_out = self.left_out(backend)
        failed = outcomes["failed"] + outcomes["error"]
        self.path.write_text(
            json.dumps(
                {
                    "suite_version": SUITE_VERSION,
                    "protocol_version": PROTOCOL_VERSION,
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "backend": backend.name,
                    "backend_protocol_version": getattr(backend, "protocol_version", None),
                    "framework_version": backend.framework_version,
                    "device": backend.device,
                    "dtypes": [d for d in dtypes(self.config) if d in backend.capabilities.dtypes],
                    "capabilities": {
                        "autodiff": backend.capabilities.autodiff,
                        "gradient_flow": getattr(backend.capabilities, "gradient_flow", False),
                        "devices": list(backend.capabilities.devices),
                        "dtypes": list(backend.capabilities.dtypes),
                        "masks": backend.capabilities.masks,
                    },
                    "outcomes": dict(outcomes),
                    "left_out": left_out,
                    "certified": not failed and not left_out and bool(self.items),
                    "tests": list(self.items.values()),
                },
                indent=1,
                default=float,
            )
        )
