"""The conformance suite as a pytest plugin, registered through the ``pytest11`` entry point:

    pytest --pyargs rnnspec.conformance --backend mypkg.mod:factory [--device D] [--dtype float32]

It owns the suite's options, its check groups and what a backend's declared capabilities make
applicable. It adds the options to every pytest run where rnnspec is installed and does nothing
else unless the run collects the suite's checks (the tests marked ``rnnspec_group``): then it loads
the backend once, marks the checks its capabilities rule out as not applicable, prints the header
and, with ``--report-json``, saves the backend's outputs for the cross-backend table. The fixtures
and the JSON reporter (rnnspec.conformance.report) are registered by the suite's conftest.
"""

import os
import platform
from collections.abc import Iterable
from pathlib import Path

import pytest

from rnnspec.conformance.calls import FLOW_METHODS

DTYPES = ("float32", "float64")
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
    "stacks",
    "layer",
)
BACKEND = pytest.StashKey[object]()
#: how the backend was loaded, to load it again: (the call in words, the call)
RELOAD = pytest.StashKey[tuple]()
PRECISION = pytest.StashKey[str]()
#: why the backend could not be loaded, for the report
LOAD_ERROR = pytest.StashKey[str]()
#: on a check the backend's capabilities rule out: why ("autodiff: n/a — numpy has none")
NOT_APPLICABLE = pytest.StashKey[str]()
#: the user property on a check's report that holds its worst error ÷ tolerance
WORST_RATIO = "rnnspec_worst_ratio"
#: the user property that holds a failure's message where pytest's one line says too little
MESSAGE = "rnnspec_message"
#: method -> the capability that declares it; every other method is always declared
NEEDS = {
    "autodiff_gradients": "autodiff",
    **dict.fromkeys(FLOW_METHODS, "gradient_flow"),
    "forward": "forward",
    "step_gradients": "step_gradients",
    "layer_forward": "layer",
    "layer_gradients": "layer",
}
#: capability -> what a check needing it is, for the n/a reason: "soft targets: n/a — ..."
NOT_DECLARED = {
    "autodiff": "autodiff: n/a — {name} has none",
    "gradient_flow": "gradient flow: n/a — {name} declares none",
    "forward": "forward (h, o, ŷ): n/a — {name} returns the loss and gradients only",
    "step_gradients": "form A (per step): n/a — {name} takes no per-step target weights",
    "soft_targets": "soft targets: n/a — {name} takes class indices only",
    "initial_state": "a given h(0): n/a — {name} starts from h(0) = 0",
    "vector_inputs": "inputs x(t) as vectors: n/a — {name} takes word indices",
    "h0_gradient": "∇h(0): n/a — {name} does not return it",
    "x_gradient": "∇x: n/a — {name} does not return it",
    "stacks": "stacked and bidirectional networks: n/a — {name} declares one layer in one direction",
    "layer": "the layer alone (layer_forward, layer_gradients): n/a — {name} declares none",
}


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
    group.addoption(
        "--function",
        default=None,
        help="rnnspec: check a plain BPTT function, module:name, instead of a backend",
    )
    group.addoption(
        "--conventions",
        default=None,
        help="rnnspec: the function's rnnspec.Conventions, module:name (default: the model's own)",
    )


@pytest.hookimpl(trylast=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """A run of the suite from a directory of no pytest project (``pytest --pyargs
    rnnspec.conformance --backend ...`` anywhere, as the README shows) leaves nothing there: no
    .pytest_cache (pytest's cache provider off, as ``-p no:cacheprovider`` does; --lf and --nf
    need a project) and no .hypothesis (Hypothesis' home under the user's cache folder). Within a
    project, pytest and Hypothesis keep their folders as that project configures them."""
    runs_the_suite = "rnnspec.conformance" in args or any(
        arg == "--backend" or arg.startswith("--backend=") for arg in args
    )
    if not runs_the_suite or early_config.inipath is not None:
        return
    early_config.pluginmanager.consider_pluginarg("no:cacheprovider")
    from hypothesis.configuration import set_hypothesis_home_dir

    # its cache of the constants it mines from the source, in the user's cache folder (read here,
    # not at import: this plugin is imported by every pytest run where rnnspec is installed)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    set_hypothesis_home_dir(cache / "rnnspec" / "hypothesis")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "rnnspec_group(name): the conformance report group of an rnnspec check"
    )
    config.addinivalue_line(
        "markers",
        "rnnspec_designed(names): an rnnspec check run on each named case in the one dtype the "
        "covering design gives it (conformance/cases.py, DESIGNED_DTYPES)",
    )
    config.addinivalue_line(
        "markers", "rnnspec_requires(capability): an rnnspec check needing a declared capability"
    )
    config.addinivalue_line(
        "markers",
        "rnnspec_fixed_inputs: an rnnspec check of committed numbers, which no backend's "
        "capabilities can reshape (a given h(0) stays given)",
    )


def dtypes(config) -> tuple[str, ...]:
    """The dtypes the run names (--dtype), the backend's or not."""
    return tuple(config.getoption("dtype") or DTYPES)


def designed_dtype(config, name: str) -> str:
    """The dtype a case of the covering design runs in (cases.DESIGNED_DTYPES): its own where the
    run and the backend have it, else the first dtype they share, so that every configuration is
    checked once in any run (``--dtype float32``, a float32-only backend)."""
    from rnnspec.conformance.cases import DESIGNED_DTYPES

    backend = load_backend(config)
    shared = checked_dtypes(config, backend)
    return DESIGNED_DTYPES[name] if DESIGNED_DTYPES[name] in shared or not shared else shared[0]


def checked_dtypes(config, backend) -> list[str]:
    """The run's dtypes the backend computes in: those its checks and its report cover."""
    return [d for d in dtypes(config) if d in backend.capabilities.dtypes]


def has(backend, capability: str) -> bool:
    """Whether the backend declares a capability: a field of its Capabilities ("autodiff",
    "masks", "soft_targets", ...), or "h0_gradient", "x_gradient": ∇h(0), ∇x returned."""
    capabilities = backend.capabilities
    if capability == "vector_inputs":
        return not getattr(capabilities, "one_hot_inputs", False)
    if capability in ("h0_gradient", "x_gradient"):
        return capability[: -len("_gradient")] in getattr(capabilities, "gradients", ("h0", "x"))
    return bool(getattr(capabilities, capability, False))


def returned(backend, tensor: str) -> bool:
    """Whether a gradient method's result holds this tensor ("Grads.x", "L", ...): ∇h(0) and ∇x
    only where capabilities.gradients names them."""
    field = tensor.removeprefix("Grads.")
    return field not in ("h0", "x") or has(backend, f"{field}_gradient")


def declared(backend, methods: Iterable[str]) -> list[str]:
    """The methods among these that the backend declares, in their order: autodiff_gradients
    with capabilities.autodiff, the gradient-flow ones (SPEC.md §10) with
    capabilities.gradient_flow, every other method always."""
    return [m for m in methods if m not in NEEDS or has(backend, NEEDS[m])]


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
            if config.getoption("function"):
                named = config.getoption("conventions")
                conventions = f"backends.import_target({named!r})" if named else "None"
                what = (
                    f"plain.backend(backends.import_target({config.getoption('function')!r}), "
                    f"{conventions})"
                )
                config.stash[RELOAD] = (what, lambda: _function_backend(config))
            else:
                name, device = config.getoption("backend"), config.getoption("device")
                what = f"backends.load({name!r}, device={device!r})"
                config.stash[RELOAD] = (what, lambda: backends.load(name, device))
            backend = config.stash[RELOAD][1]()
        except BackendError as error:
            config.stash[LOAD_ERROR] = str(error)
            raise pytest.UsageError(f"rnnspec: {error}") from None
        # The tolerance policy assumes full float32 matmuls; GPUs default to TF32 in most frameworks.
        config.stash[PRECISION] = backend.enforce_full_precision()
        config.stash[BACKEND] = backend
    return config.stash[BACKEND]


def _function_backend(config):
    """--function module:name in --conventions module:name, as rnnspec.check takes them."""
    from rnnspec import backends, plain

    function = backends.import_target(config.getoption("function"))
    named = config.getoption("conventions")
    conventions = backends.import_target(named) if named else None
    return plain.backend(function, conventions)


def is_check(item) -> bool:
    """Whether a collected test is one of the suite's checks."""
    return item.get_closest_marker("rnnspec_group") is not None


def group_of(item) -> str:
    return item.get_closest_marker("rnnspec_group").args[0]


def params_of(item) -> dict:
    """A check's parameters: {"dtype": "float32", "method": "gradients", ...}."""
    return getattr(getattr(item, "callspec", None), "params", {})


def not_applicable(item, backend) -> str | None:
    """Why a check does not apply to a backend, by its declared capabilities; None if it does.
    A check needs what its ``rnnspec_requires`` markers name and what its ``method`` needs."""
    params = params_of(item)
    needs = {m.args[0] for m in item.iter_markers("rnnspec_requires")}
    if params.get("method") in NEEDS:
        needs.add(NEEDS[params["method"]])
    case = _named_case(params.get("name"))
    if case is not None and case.soft_targets:
        needs.add("soft_targets")
    if case is not None and case.model().stacked:
        needs.add("stacks")
    if case is not None and item.get_closest_marker("rnnspec_fixed_inputs"):  # not scoped
        needs |= {"initial_state"} if case.h0 else set()
        needs |= {"vector_inputs"} if not case.one_hot_inputs else set()
    for capability, reason in NOT_DECLARED.items():
        if capability in needs and not has(backend, capability):
            return reason.format(name=backend.name)
    declared_phi = tuple(getattr(backend.capabilities, "nonlinearities", ("tanh",)))
    if case is not None and case.nonlinearity not in declared_phi:
        return (
            f"{case.nonlinearity}: n/a — {backend.name} declares {' and '.join(declared_phi)} only"
        )
    dtype = params.get("dtype")
    if dtype is not None and dtype not in backend.capabilities.dtypes:
        return f"{dtype}: n/a — {backend.name} computes in {', '.join(backend.capabilities.dtypes)}"
    return None


def _named_case(name):
    """The named case a check is parametrized by, if any."""
    from rnnspec.conformance.cases import all_cases

    return all_cases().get(name) if isinstance(name, str) else None


def record_ratio(item, ratio: float) -> None:
    """Keep a check's worst error ÷ tolerance on its report (the reporter writes it)."""
    properties = item.user_properties
    worst = max([ratio, *(v for k, v in properties if k == WORST_RATIO)])
    properties[:] = [(k, v) for k, v in properties if k != WORST_RATIO]
    properties.append((WORST_RATIO, worst))


def worst_ratio(report) -> float | None:
    """The worst error ÷ tolerance a check's report holds, if it compared any tensor."""
    return next((v for k, v in report.user_properties if k == WORST_RATIO), None)


def pytest_collection_modifyitems(config, items):
    checks = [item for item in items if is_check(item)]
    if not checks:
        return
    backend = load_backend(config)
    for item in checks:
        if group_of(item) not in GROUPS:
            raise pytest.UsageError(f"{item.nodeid}: unknown rnnspec_group {group_of(item)!r}")
        reason = not_applicable(item, backend)
        if reason is not None:
            item.stash[NOT_APPLICABLE] = reason
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A check that failed several ways at once (Hypothesis's distinct failures, an exception
    group): each failure's own message, with its falsifying example, for the report."""
    report = yield
    error = call.excinfo.value if call.excinfo is not None else None
    if is_check(item) and isinstance(error, BaseExceptionGroup):
        report.user_properties.append((MESSAGE, failures_message(error)))
    return report


def failures_message(group: BaseExceptionGroup) -> str:
    leaves: list[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(group)
    parts = [f"{len(leaves)} distinct failures:"]
    for i, error in enumerate(leaves, 1):
        notes = "\n".join(getattr(error, "__notes__", []))
        parts.append(f"({i}) {type(error).__name__}: {error}" + (f"\n{notes}" if notes else ""))
    return "\n".join(parts)


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


def pytest_sessionfinish(session):
    """With --report-json, the backend's outputs on the cross-backend inputs, beside the report."""
    config = session.config
    path = config.getoption("report_json")
    if path and BACKEND in config.stash:
        from rnnspec.conformance import cross

        backend = config.stash[BACKEND]
        for dtype in checked_dtypes(config, backend):
            cross.save(backend, dtype, path)
