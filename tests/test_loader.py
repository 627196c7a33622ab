"""backends.load and backends.available: built-in names, module:factory, entry points, and the
errors a user sees when a name is unknown or its framework is missing."""

import importlib.util
from importlib.metadata import EntryPoint

import pytest

import backends
from backends import BackendError
from backends.numpy import NumpyBackend


def test_builtin_and_module_factory_names():
    assert isinstance(backends.load("numpy"), NumpyBackend)
    assert isinstance(backends.load("backends.numpy:NumpyBackend"), NumpyBackend)
    assert "numpy" in backends.available()


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(BackendError, match=r"unknown backend 'nope': expected one of \[.*'numpy'"):
        backends.load("nope")


def test_missing_framework_names_the_pip_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(
        BackendError, match=r"needs torch, which is not installed: pip install 'rnnspec\[torch\]'"
    ):
        backends.load("torch")
    assert "torch" not in backends.available()


def test_bad_module_factory_names():
    with pytest.raises(BackendError, match="cannot import 'no_such_module'"):
        backends.load("no_such_module:make")
    with pytest.raises(BackendError, match=r"'backends\.numpy' has no 'nothing'"):
        backends.load("backends.numpy:nothing")
    with pytest.raises(BackendError, match=r"did not return a spec\.Backend"):
        backends.load("builtins:dict")


def test_entry_point_backends_are_discovered(monkeypatch):
    point = EntryPoint("third_party", "backends.numpy:NumpyBackend", backends.ENTRY_POINT_GROUP)
    monkeypatch.setattr(backends, "entry_points", lambda group: [point])
    assert "third_party" in backends.available()
    assert isinstance(backends.load("third_party"), NumpyBackend)


def test_a_missing_device_is_an_error_not_a_fallback():
    with pytest.raises(BackendError, match="'cpu' only, got device='cuda'"):
        backends.load("numpy", device="cuda")
