"""The pytest plugin of scripts/mutation.py, loaded with `-p mutation_plugin` from the stage:

- RNNSPEC_MUTATION_RECORD=FILE (with RNNSPEC_MUTATION_FILES, the mutated files' real paths joined
  by os.pathsep): record, for every test, the functions of those files it executes and how long it
  took, and write them to FILE as JSON at the end of the session.
- RNNSPEC_MUTATION_SELECT=FILE: run only the tests FILE names (one test id a line), in its order.

A test id is the test module's name and the node id after the path
(`rnnspec.conformance.test_forward::test_forward[basic-float32]`): the same from every stage.

A function is named as mutmut's `contained_by_top_level_function` names it: its top-level
function, or the method of a top-level class (`Class.method`); a nested function, lambda or
comprehension counts as the function it is in. Functions run outside any test (at import, at
collection, at the session's end) are recorded apart, as GLOBAL: a change there can reach every
test. Calls made while a fixture wider than a test is set up are recorded under that fixture and
count for every test that requests it, and the suite's functools caches are cleared before each
test, so that each test's record holds what it would execute alone.
"""

import functools
import json
import os
import sys
import threading

import pytest

RECORD, FILES, SELECT = (
    "RNNSPEC_MUTATION_RECORD",
    "RNNSPEC_MUTATION_FILES",
    "RNNSPEC_MUTATION_SELECT",
)
GLOBAL = "<outside any test>"
#: the exit status of a run whose selection names a test that was not collected (not a kill)
SELECTION_MISMATCH = 9


def test_id(item) -> str:
    module = getattr(item, "module", None)
    if module is None:
        return item.nodeid
    return f"{module.__name__}::{item.nodeid.split('::', 1)[1]}"


def top_level(qualname: str) -> str:
    """The mutmut function a code object belongs to: `f`, `C.m`, `f.<locals>.g` → `f`."""
    outer = qualname.split(".<locals>.", 1)[0]
    return ".".join(outer.split(".")[:2])


class Recorder:
    def __init__(self, path: str, files: list[str]):
        self.path = path
        self.files = {os.path.realpath(f) for f in files}
        self.of_code: dict = {}  # code object -> "file::function", or "" when not traced
        self.real: dict[str, str] = {}
        self.outside: set[str] = set()
        self.current = self.outside
        self.by_test: dict[str, set[str]] = {}
        self.by_fixture: dict[str, set[str]] = {}
        self.seconds: dict[str, float] = {}
        self.order: list[str] = []
        self.of_node: dict[str, str] = {}  # pytest's node id -> test id
        self.caches: list = []

    def trace(self, frame, event, arg):
        code = frame.f_code
        key = self.of_code.get(code)
        if key is None:
            name = code.co_filename
            if name not in self.real:
                self.real[name] = os.path.realpath(name)
            real = self.real[name]
            key = self.of_code[code] = (
                f"{real}::{top_level(code.co_qualname)}" if real in self.files else ""
            )
        if key:
            self.current.add(key)
        # no local trace function: only calls are seen, at the price of a call event each

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config):
        sys.settrace(self.trace)
        threading.settrace(self.trace)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session):
        self.caches = [
            value
            for name, module in sorted(sys.modules.items())
            if name.startswith("rnnspec") and module is not None
            for value in vars(module).values()
            if isinstance(value, functools._lru_cache_wrapper)
        ]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        name = test_id(item)
        for cache in self.caches:
            cache.cache_clear()
        self.order.append(name)
        self.of_node[item.nodeid] = name
        self.current = self.by_test.setdefault(name, set())
        self.seconds[name] = 0.0
        try:
            return (yield)
        finally:
            self.current = self.outside
            self.by_test[name] |= set().union(
                *(self.by_fixture.get(f, set()) for f in item.fixturenames)
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        if fixturedef.scope == "function":
            return (yield)
        outer, self.current = self.current, self.by_fixture.setdefault(fixturedef.argname, set())
        try:
            return (yield)
        finally:
            self.current = outer

    def pytest_runtest_logreport(self, report):
        if report.nodeid in self.of_node:  # setup, call and teardown
            self.seconds[self.of_node[report.nodeid]] += report.duration

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config):
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
        record = {
            GLOBAL: sorted(self.outside),
            "tests": {
                name: {
                    "seconds": round(self.seconds[name], 4),
                    "functions": sorted(self.by_test[name]),
                }
                for name in self.order
            },
        }
        with open(self.path, "w") as out:
            json.dump(record, out, indent=0)


class Selection:
    def __init__(self, path: str):
        with open(path) as selection:
            self.names = [line for line in selection.read().splitlines() if line]

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        by_name = {test_id(item): item for item in items}
        missing = [name for name in self.names if name not in by_name]
        if missing:
            pytest.exit(f"selected but not collected: {missing[:3]}", SELECTION_MISMATCH)
        wanted = set(self.names)
        config.hook.pytest_deselected(items=[i for i in items if test_id(i) not in wanted])
        items[:] = [by_name[name] for name in self.names]


def pytest_configure(config):
    if os.environ.get(RECORD):
        recorder = Recorder(os.environ[RECORD], os.environ[FILES].split(os.pathsep))
        config.pluginmanager.register(recorder, "rnnspec-mutation-record")
        recorder.pytest_configure(config)
    if os.environ.get(SELECT):
        config.pluginmanager.register(Selection(os.environ[SELECT]), "rnnspec-mutation-select")
