"""The torch backend's CUDA-graph path, on the CPU: copy in, replay, copy out.

A CUDA graph replays the same kernels on the same buffers, so its one classic bug is a result that
aliases a static buffer and changes at the next call. Here the graph is simulated (replay recomputes
the captured function from the static inputs into the static outputs, in place, as a real replay
does) so that _CapturedGradients' own logic is checked on every machine; on a GPU the conformance
suite's state checks run the real thing (scripts/gpu-check.sh).
"""

import contextlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from rnnspec.backends import torch as torch_backend  # noqa: E402
from rnnspec.spec import Params  # noqa: E402


class SimulatedGraph:
    owner: "torch_backend._CapturedGradients"

    def replay(self):
        loss, grads = torch_backend._fused_gradients(*self.owner._static_arguments())
        static_loss, static_grads = self.owner.outputs
        static_loss.copy_(loss)
        for static, grad in zip(static_grads, grads, strict=True):
            static.copy_(grad)


class NoStream:
    def __init__(self, *args):
        pass

    def wait_stream(self, stream):
        pass

    def wait_event(self, event):
        pass


@pytest.fixture
def simulated_cuda(monkeypatch):
    cuda = torch_backend.torch.cuda
    monkeypatch.setattr(cuda, "CUDAGraph", SimulatedGraph)
    monkeypatch.setattr(cuda, "Event", lambda: type("Event", (), {"record": lambda s, x: None})())
    monkeypatch.setattr(cuda, "Stream", NoStream)
    monkeypatch.setattr(cuda, "current_stream", lambda device=None: NoStream())
    monkeypatch.setattr(cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(cuda, "graph", lambda graph, **options: contextlib.nullcontext())
    init = torch_backend._CapturedGradients.__init__

    def capture(self, *args):
        init(self, *args)
        self.graph.owner = self

    monkeypatch.setattr(torch_backend._CapturedGradients, "__init__", capture)


def problem(seed, T=5, B=3, D=4, H=6, K=3):
    rng = np.random.default_rng(seed)
    p = Params(*(torch.tensor(rng.normal(size=s)) for s in ((H, D), (H, H), (H,), (K, H), (K,))))
    x, h0 = torch.tensor(rng.normal(size=(T, B, D))), torch.tensor(rng.normal(size=(B, H)))
    y = torch.tensor(rng.dirichlet(np.ones(K), size=(T, B)))
    return p, x, y, h0


def test_replayed_results_are_the_callers(simulated_cuda):
    first, second = problem(0), problem(1)
    graph = torch_backend._CapturedGradients(torch.device("cpu"), torch.float64, 5, 3, 4, 6, 3)
    inputs = [a.clone() for a in (*first[0], *first[1:])]
    with torch.no_grad():
        loss, grads = graph(*first)
        expected_loss, expected = torch_backend._fused_gradients(*first)
        graph(*second)  # overwrites every static buffer
    assert torch.equal(loss, expected_loss)
    for got, want in zip(grads, expected, strict=True):
        assert torch.equal(got, want)  # unchanged by the second call: no alias of a static output
    for before, after in zip(inputs, (*first[0], *first[1:]), strict=True):
        assert torch.equal(before, after)  # the caller's arrays untouched
