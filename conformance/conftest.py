"""The suite's fixtures: the backend under test, each check's dtype, ``call``, which builds
the record of a backend call that assertions need (and logs each error / tolerance ratio on the
test's report), and ``masks``, which fails a mask check on a backend that declares none. The
options and the backend's loading live in rnnspec.conformance.plugin."""

import pytest

from rnnspec.conformance.assertions import Call
from rnnspec.conformance.plugin import dtypes, load_backend
from rnnspec.conformance.report import WORST_RATIO


def pytest_generate_tests(metafunc):
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", dtypes(metafunc.config))


@pytest.fixture(scope="session")
def backend(pytestconfig):
    return load_backend(pytestconfig)


@pytest.fixture
def call(request, backend):
    """``call(method, case, dtype, t=None)``: a Call on the backend under test."""
    properties = request.node.user_properties
    config = request.config

    def log(ratio: float) -> None:
        worst = max([ratio, *(v for k, v in properties if k == WORST_RATIO)])
        properties[:] = [(k, v) for k, v in properties if k != WORST_RATIO]
        properties.append((WORST_RATIO, worst))

    def make(method: str, case, dtype: str, t: int | None = None) -> Call:
        loaded_as = (config.getoption("backend"), config.getoption("device"))
        return Call(backend, method, case, dtype, t, log=log, loaded_as=loaded_as)

    return make


@pytest.fixture
def masks(backend):
    """Every mask check needs the backend to declare masks; one that does not fails them."""
    if not backend.capabilities.masks:
        pytest.fail(
            f"{backend!r} declares capabilities.masks = False: protocol 2.1 takes mask=None on "
            "every method that takes x (SPEC.md §9); implement it and declare "
            "Capabilities(..., masks=True)",
            pytrace=False,
        )
