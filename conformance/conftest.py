"""Options and fixtures: which backend, device and dtypes the suite checks."""

import os
import platform

import pytest

import backends
from conformance import SUITE_VERSION, assertions
from conformance.report import JsonReport
from spec import PROTOCOL_VERSION

DTYPES = ("float32", "float64")
_backend_key = pytest.StashKey[object]()
_precision_key = pytest.StashKey[str]()


def pytest_addoption(parser):
    group = parser.getgroup("rnnspec conformance")
    group.addoption(
        "--backend",
        default="numpy",
        help="backend to check: a built-in name, an entry-point name, or module:factory",
    )
    group.addoption("--device", default=None, help="device for the backend (its default if unset)")
    group.addoption(
        "--dtype",
        action="append",
        choices=DTYPES,
        help="dtype to check; repeat for several (default: float32 and float64)",
    )
    group.addoption("--report-json", default=None, help="write the results as JSON to this path")


def pytest_configure(config):
    # JAX computes float64 only in its x64 mode, off by default; this is the suite's own process,
    # and the flag must be set before jax is first imported (a user's process is never touched).
    if "float64" in (config.getoption("dtype") or DTYPES):
        os.environ.setdefault("JAX_ENABLE_X64", "1")
    if config.getoption("report_json"):
        report = JsonReport(config.getoption("report_json"), _load(config))
        config.pluginmanager.register(report, "rnnspec-report")


def _load(config):
    if _backend_key not in config.stash:
        assertions.loaded_as = (config.getoption("backend"), config.getoption("device"))
        backend = backends.load(*assertions.loaded_as)
        # The tolerance policy assumes full float32 matmuls; GPUs default to TF32 in most frameworks.
        config.stash[_precision_key] = backend.enforce_full_precision()
        config.stash[_backend_key] = backend
    return config.stash[_backend_key]


def pytest_report_header(config):
    backend = _load(config)
    dtypes = config.getoption("dtype") or DTYPES
    return [
        f"rnnspec conformance suite {SUITE_VERSION} (Backend protocol {PROTOCOL_VERSION})",
        f"backend: {backend.name} ({backend.framework_version}, protocol "
        f"{getattr(backend, 'protocol_version', '?')}) on device {backend.device}",
        f"dtypes: {', '.join(dtypes)}; precision: {config.stash[_precision_key]}",
        f"python {platform.python_version()} on {platform.machine()}",
    ]


def pytest_generate_tests(metafunc):
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", metafunc.config.getoption("dtype") or DTYPES)


@pytest.fixture(scope="session")
def backend(pytestconfig):
    return _load(pytestconfig)


@pytest.fixture(autouse=True)
def _track_worst_ratio(request):
    assertions.current_test = request.node.nodeid
    yield
