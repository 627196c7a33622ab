"""The suite's fixtures: the backend under test, each check's dtype, ``call``, which builds
the record of a backend call that assertions need (and keeps each error / tolerance ratio on the
check's report), and ``masks``, which fails a mask check on a backend that declares none; and, with
``--report-json``, the reporter (rnnspec.conformance.report). The options, the groups and the
backend's loading live in rnnspec.conformance.plugin."""

import pytest

from rnnspec.conformance.assertions import Call
from rnnspec.conformance.cases import scoped
from rnnspec.conformance.plugin import (
    RELOAD,
    designed_dtype,
    dtypes,
    has,
    load_backend,
    record_ratio,
)
from rnnspec.conformance.report import JsonReport


def pytest_configure(config):
    # Registered here, not by the plugin: the reporter imports the plugin, and only a run that
    # collects the suite's checks has a report to write.
    if config.getoption("report_json"):
        config.pluginmanager.register(JsonReport(config), "rnnspec-report")


def pytest_generate_tests(metafunc):
    designed = metafunc.definition.get_closest_marker("rnnspec_designed")
    if designed is not None:  # each case in its one dtype of the covering design
        config = metafunc.config
        pairs = [(name, designed_dtype(config, name)) for name in designed.args[0]]
        metafunc.parametrize(("name", "dtype"), pairs, ids=[f"{d}-{n}" for n, d in pairs])
    elif "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", dtypes(metafunc.config))


@pytest.fixture(scope="session")
def backend(pytestconfig):
    return load_backend(pytestconfig)


@pytest.fixture
def call(request, backend):
    """``call(method, case, dtype, t=None)``: a Call on the backend under test."""
    config = request.config

    def make(method: str, case, dtype: str, t: int | tuple[int, ...] | None = None) -> Call:
        loaded_by = config.stash[RELOAD][0]
        log = lambda ratio: record_ratio(request.node, ratio)
        case = scoped(case, backend)  # as Case.native gave the backend its inputs
        return Call(backend, method, case, dtype, t, log=log, loaded_by=loaded_by)

    return make


@pytest.fixture
def masks(backend):
    """Every mask check needs the backend to declare masks; one that does not fails them."""
    if not has(backend, "masks"):
        pytest.fail(
            f"{backend!r} declares capabilities.masks = False: protocol 2.1 takes mask=None on "
            "every method that takes x (SPEC.md §9); implement it and declare "
            "Capabilities(..., masks=True)",
            pytrace=False,
        )
