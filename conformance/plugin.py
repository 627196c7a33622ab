"""The conformance suite as a pytest plugin, registered through the ``pytest11`` entry point:

    pytest --pyargs rnnspec.conformance --backend mypkg.mod:factory [--device D] [--dtype float32]

It adds the suite's options to every pytest run where rnnspec is installed and does nothing else
unless the run collects the suite's checks (the tests marked ``rnnspec_group``): then it loads the
backend once, marks the checks the backend's declared capabilities make not applicable, prints the
header and, with ``--report-json``, writes the report. The fixtures live in the suite's conftest.
"""

import os
import platform

import pytest

DTYPES = ("float32", "float64")
BACKEND = pytest.StashKey[object]()
PRECISION = pytest.StashKey[str]()
#: on a check the backend's capabilities rule out: why ("autodiff: n/a — numpy has none")
NOT_APPLICABLE = pytest.StashKey[str]()


def pytest_addoption(parser):
    group = parser.getgroup("rnnspec", "rnnspec conformance suite")
    group.addoption(
        "--backend",
        default="numpy",
        help="rnnspec backend to check: a built-in name, an entry-point name, or module:factory",
    )
    group.addoption(
        "--device", default=None, help="rnnspec: the backend's device (its default if unset)"
    )
    group.addoption(
        "--dtype",
        action="append",
        choices=DTYPES,
        help="rnnspec: dtype to check; repeat for several (default: float32 and float64)",
    )
    group.addoption(
        "--report-json", default=None, help="rnnspec: write the suite's results as JSON here"
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "rnnspec_group(name): the conformance report group of an rnnspec check"
    )
    config.addinivalue_line(
        "markers", "rnnspec_requires(capability): an rnnspec check needing a declared capability"
    )
    if config.getoption("report_json"):
        from rnnspec.conformance.report import JsonReport

        config.pluginmanager.register(JsonReport(config), "rnnspec-report")


def dtypes(config) -> tuple[str, ...]:
    return tuple(config.getoption("dtype") or DTYPES)


def load_backend(config):
    """The backend under test, loaded once per run and kept on the config."""
    if BACKEND not in config.stash:
        if "float64" in dtypes(config):
            # JAX computes float64 only in x64 mode, off by default; this is the suite's own
            # process, and the flag must be set before jax is first imported.
            os.environ.setdefault("JAX_ENABLE_X64", "1")
        from rnnspec import backends
        from rnnspec.spec import BackendError

        try:
            backend = backends.load(config.getoption("backend"), config.getoption("device"))
        except BackendError as error:
            raise pytest.UsageError(f"rnnspec: {error}") from None
        # The tolerance policy assumes full float32 matmuls; GPUs default to TF32 in most frameworks.
        config.stash[PRECISION] = backend.enforce_full_precision()
        config.stash[BACKEND] = backend
    return config.stash[BACKEND]


def is_check(item) -> bool:
    """Whether a collected test is one of the suite's checks."""
    return item.get_closest_marker("rnnspec_group") is not None


def not_applicable(item, backend) -> str | None:
    """Why a check does not apply to a backend, by its declared capabilities; None if it does."""
    capabilities = backend.capabilities
    params = getattr(getattr(item, "callspec", None), "params", {})
    needs = {m.args[0] for m in item.iter_markers("rnnspec_requires")}
    if params.get("method") == "autodiff_gradients":
        needs.add("autodiff")
    if "autodiff" in needs and not capabilities.autodiff:
        return f"autodiff: n/a — {backend.name} has none"
    if "gradient_flow" in needs and not getattr(capabilities, "gradient_flow", False):
        return f"gradient flow: n/a — {backend.name} declares none"
    dtype = params.get("dtype")
    if dtype is not None and dtype not in capabilities.dtypes:
        return f"{dtype}: n/a — {backend.name} computes in {', '.join(capabilities.dtypes)}"
    return None


def pytest_collection_modifyitems(config, items):
    from rnnspec.conformance.report import GROUPS

    checks = [item for item in items if is_check(item)]
    if not checks:
        return
    backend = load_backend(config)
    for item in checks:
        group = item.get_closest_marker("rnnspec_group").args[0]
        if group not in GROUPS:
            raise pytest.UsageError(f"{item.nodeid}: unknown rnnspec_group {group!r}")
        reason = not_applicable(item, backend)
        if reason is not None:
            item.stash[NOT_APPLICABLE] = reason
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_report_collectionfinish(config, start_path, items):
    if BACKEND not in config.stash:
        return []
    from rnnspec.conformance import SUITE_VERSION
    from rnnspec.spec import PROTOCOL_VERSION

    backend = config.stash[BACKEND]
    return [
        f"rnnspec conformance suite {SUITE_VERSION} (Backend protocol {PROTOCOL_VERSION})",
        f"backend: {backend.name} ({backend.framework_version}, protocol "
        f"{getattr(backend, 'protocol_version', '?')}) on device {backend.device}; "
        f"{backend.capabilities}",
        f"dtypes: {', '.join(dtypes(config))}; precision: {config.stash[PRECISION]}",
        f"python {platform.python_version()} on {platform.machine()}",
    ]
