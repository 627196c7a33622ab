"""The torch.nn.RNN witness (examples/framework-layers, ``torch_nn_rnn``) on the devices it declares:
the CPU, and CUDA where torch sees it (cuDNN's kernels; scripts/gpu-check.sh certifies them there),
refused with BackendError, never replaced by the CPU, where it does not; its full precision turns
cuDNN's TF32 off too, which torch's float32 matmul precision alone leaves on."""

import numpy as np
import pytest

from rnnspec.spec import BackendError

torch = pytest.importorskip("torch")
torch_rnn = pytest.importorskip("rnnspec_layers.torch_rnn")


def test_the_cpu_is_the_default():
    backend = torch_rnn.TorchRNNBackend()
    assert backend.device == "cpu" and "cuda" in backend.capabilities.devices
    assert backend.asarray(np.zeros(2), "float32").device.type == "cpu"


@pytest.mark.parametrize("device", ["cuda", "gpu", "cuda:99"])
def test_an_absent_cuda_device_is_refused(device):
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device != "cuda:99" and count:
        pytest.skip(f"torch sees {count} CUDA devices here")
    with pytest.raises(BackendError, match=rf"device={device!r} is not available"):
        torch_rnn.TorchRNNBackend(device=device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")
def test_on_cuda_the_arrays_live_there():
    backend = torch_rnn.TorchRNNBackend(device="cuda")
    array = backend.asarray(np.zeros(2), "float32")
    assert array.is_cuda and backend.is_native(array) and backend.device.startswith("cuda:")
    assert not torch_rnn.TorchRNNBackend().is_native(array)


def test_full_precision_turns_cudnn_tf32_off(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    precision = torch.get_float32_matmul_precision()
    try:
        said = torch_rnn.TorchRNNBackend().enforce_full_precision()
        assert torch.backends.cudnn.allow_tf32 is False and "cudnn.allow_tf32" in said
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision(precision)
