"""backends.load and backends.available: built-in names, module:factory, entry points, and the
errors a user sees when a name is unknown or its framework is missing."""

import importlib.util
from importlib.metadata import EntryPoint

import pytest

from rnnspec import backends
from rnnspec.backends.numpy import NumpyBackend
from rnnspec.spec import BackendError, Capabilities


def test_builtin_and_module_factory_names():
    assert isinstance(backends.load("numpy"), NumpyBackend)
    assert isinstance(backends.load("rnnspec.backends.numpy:NumpyBackend"), NumpyBackend)
    assert "numpy" in backends.available()


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(BackendError, match=r"unknown backend 'nope': expected one of \[.*'numpy'"):
        backends.load("nope")


def test_missing_framework_names_the_pip_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(BackendError, match=r"needs torch, which is not installed: pip install "):
        backends.load("torch")
    assert "torch" not in backends.available()


@pytest.mark.parametrize("gpu", [False, True])
def test_the_install_hint_leads_to_the_cpu_build_where_linux_has_no_gpu(monkeypatch, gpu):
    """On Linux the package index's torch is a CUDA build of several GB (issue 28: 2.98 GB of
    wheels in a fresh venv): without a GPU the hint installs torch from PyTorch's CPU index first,
    and TensorFlow as tensorflow-cpu; with one, the plain extra, saying that it is the CUDA build."""
    monkeypatch.setattr(backends.sys, "platform", "linux")
    monkeypatch.setattr(backends, "nvidia_gpu", lambda: gpu)
    torch, tensorflow = backends.install_hint("torch"), backends.install_hint("tensorflow")
    cpu_first = f"pip install torch --index-url {backends.TORCH_CPU_INDEX} && pip install '"
    assert torch.startswith(cpu_first) != gpu, torch
    assert ("[tensorflow-cpu]'" in tensorflow) != gpu, tensorflow
    if gpu:
        assert torch.startswith("pip install '") and "[torch]'" in torch and "CUDA" in torch
    assert "CPU" not in backends.install_hint("jax")


def test_the_install_hint_is_the_plain_extra_off_linux(monkeypatch):
    """macOS' and Windows' torch on the package index is a CPU build already."""
    monkeypatch.setattr(backends.sys, "platform", "darwin")
    monkeypatch.setattr(backends, "nvidia_gpu", lambda: False)
    assert backends.install_hint("torch").startswith("pip install '")
    assert "[torch]'" in backends.install_hint("torch")


def test_bad_module_factory_names():
    with pytest.raises(BackendError, match="cannot import 'no_such_module'"):
        backends.load("no_such_module:make")
    with pytest.raises(BackendError, match=r"'rnnspec\.backends\.numpy' has no 'nothing'"):
        backends.load("rnnspec.backends.numpy:nothing")
    with pytest.raises(BackendError, match=r"declares protocol_version None"):
        backends.load("builtins:dict")


def test_entry_point_backends_are_discovered(monkeypatch):
    point = EntryPoint(
        "third_party", "rnnspec.backends.numpy:NumpyBackend", backends.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(backends, "entry_points", lambda group: [point])
    assert "third_party" in backends.available()
    assert isinstance(backends.load("third_party"), NumpyBackend)


def test_a_missing_device_is_an_error_not_a_fallback():
    with pytest.raises(BackendError, match="runs on 'cpu'; got device='cuda'"):
        backends.load("numpy", device="cuda")
    with pytest.raises(BackendError, match=r"cannot run on device='cpu:1': 1 cpu device\(s\)"):
        backends.load("numpy", device="cpu:1")


class _ProtocolOneBackend(NumpyBackend):
    """A backend written for protocol 1.0: no capabilities, NotImplementedError for autodiff."""

    protocol_version = "1.0"


def test_an_old_protocol_backend_is_told_what_to_add():
    with pytest.raises(BackendError) as refused:
        backends.load(f"{__name__}:_ProtocolOneBackend")
    message = str(refused.value)
    needles = ("declares protocol_version '1.0'", "protocol '2.2'", "Capabilities(autodiff=")
    for needle in needles:
        assert needle in message, message


class _Undeclared(NumpyBackend):
    """Declares autodiff it does not have, and a device kind it is not on."""

    capabilities = Capabilities(autodiff=True, devices=("gpu",))


class _ProtocolTwoBackend(NumpyBackend):
    """A backend written for protocol 2.0: no masks."""

    protocol_version = "2.0"


def test_a_protocol_2_0_backend_is_told_to_add_masks():
    with pytest.raises(BackendError) as refused:
        backends.load(f"{__name__}:_ProtocolTwoBackend")
    message = str(refused.value)
    for needle in ("declares protocol_version '2.0'", "mask=None", "capabilities.masks"):
        assert needle in message, message


class _MasksWithoutMask(NumpyBackend):
    """Declares masks, but its forward takes no mask."""

    def forward(self, params, x, h0=None):
        return super().forward(params, x, h0)


def test_masks_declared_without_a_mask_parameter_are_refused():
    with pytest.raises(BackendError) as refused:
        backends.load(f"{__name__}:_MasksWithoutMask")
    assert "declares capabilities.masks but forward takes no mask" in str(refused.value)


def test_a_false_declaration_is_refused():
    with pytest.raises(BackendError) as refused:
        backends.load(f"{__name__}:_Undeclared")
    message = str(refused.value)
    assert "declares capabilities.autodiff but has no autodiff_gradients" in message, message
    assert "device 'cpu' is not of a kind in capabilities.devices ('gpu',)" in message, message
