"""The benchmark's workloads, conformance cases, their FLOP counts and the targets set on them."""

from typing import Literal, NamedTuple

from rnnspec.conformance.cases import Case

#: timed on each case's own inputs (Case.arrays, Case.mask): W of spectral radius 0.9, a
#: contractive recurrence with tanh unsaturated, as in real training; every value rounded through
#: float32, so that both dtypes see the very same numbers and one float64 reference checks both;
#: the masked workload right-padded, its sequences' lengths cycling T, T − 2 and 1 (SPEC.md §9);
#: the relu workload medium's sizes with h(t) = relu(a(t)) (SPEC.md §1.1), called with its model;
#: the deep and bidirectional workloads medium's sizes in 3 layers, and in 2 bidirectional
#: ones (SPEC.md §12); the tiny workload small's sizes at T = 1 and B = 1, a few products of a
#: few thousand FLOPs: its time is what a call costs beyond its arithmetic (validation, targets,
#: dispatch)
WORKLOADS = {
    w.name: w
    for w in (
        Case("tiny", T=1, B=1, D=32, H=64, K=32),
        Case("small", T=50, B=32, D=32, H=64, K=32),
        Case("medium", T=100, B=64, D=128, H=256, K=128),
        Case("long", T=1000, B=16, D=64, H=128, K=64),
        Case("wide", T=20, B=128, D=512, H=1024, K=512),
        Case("masked", T=100, B=64, D=128, H=256, K=128, padding="right"),
        Case("relu", T=100, B=64, D=128, H=256, K=128, nonlinearity="relu"),
        Case("deep", T=100, B=64, D=128, H=256, K=128, layers=3),
        Case("bidirectional", T=100, B=64, D=128, H=256, K=128, layers=2, bidirectional=True),
    )
}
#: a masked workload -> the one it is a masked copy of
MASKED_OF = {"masked": "medium"}
#: a workload -> the one whose time is its fixed cost (the same sizes at T = 1, B = 1)
FIXED_COST_OF = {"small": "tiny"}
#: the workloads of the speed targets: tiny's time is judged as a share of small's
UNMASKED = tuple(w for w in WORKLOADS if w not in MASKED_OF and w not in FIXED_COST_OF.values())
QUICK = ("tiny", "small", "medium")


def flops(w: Case) -> int:
    """Loss and every gradient: three times the forward's products, 2·T·B·(H·D + H·H + K·H) for
    one layer; for a stack, each cell's H·D_l + H·H (D_l = R·H above the first layer) and the
    head's K·R·H (SPEC.md §12)."""
    R = 2 if w.bidirectional else 1
    cells = sum(
        R * (w.H * (w.D if layer == 0 else R * w.H) + w.H * w.H) for layer in range(w.layers)
    )
    return 6 * w.T * w.B * (cells + w.K * R * w.H)


#: where the gradient-flow methods of SPEC.md §10 are timed, beside the full gradient
FLOW_WORKLOAD = "long"
#: name suffix -> the call on (backend, params, x, y, h0): lag truncation at k = 20, O(T·k) work,
#: and windowed TBPTT(50, 50), O(T·k2/k1) work in k2 sequential steps (SPEC.md §10.2–§10.3)
FLOW_CALLS = {
    "truncated_gradients k=20": lambda b, p, x, y, h0: b.truncated_gradients(p, x, y, 20, h0),
    "tbptt_gradients k1=k2=50": lambda b, p, x, y, h0: b.tbptt_gradients(p, x, y, 50, 50, h0),
}
#: the workload whose peak memory is measured (at T and at T/2, to show it is linear in T)
MEMORY_WORKLOAD = "long"


Of = Literal["each closed form", "the fastest closed form", "each implementation"]


class Target(NamedTuple):
    """A float32 goal on one workload: ``quantity``, a column of report.derive's rows, at most
    ``limit`` (at least, where ``at_least``), for ``of`` the rows: "each closed form", "the fastest
    closed form" or "each implementation"; for ``backends``' rows only, where given."""

    workload: str
    quantity: str
    limit: float
    at_least: bool = False
    of: Of = "each closed form"
    backends: tuple[str, ...] = ()


#: the issue's targets, for the CPU. vs_autodiff: over the fastest autodiff of the closed form's
#: framework (of every other one for a backend without autodiff); vs_nn_rnn: over torch.nn.RNN with
#: autograd; fraction_of_peak: of the framework's 2048² matmul GFLOP/s; memory_exponent:
#: log2(peak(T) / peak(T/2)), 1 where memory is linear in T and 2 where it is quadratic;
#: vs_unmasked: a masked workload's time over the same implementation's on the workload it masks;
#: fixed_share: the closed form's time on the tiny workload (FIXED_COST_OF) over its time on this
#: one, what of a call goes to anything but its arithmetic; validation_share: the share of the call
#: spent checking its inputs and preparing them (SPEC.md §7: the targets as weights, h(0)).
TARGETS = (
    *(Target(w, "vs_autodiff", 0.8) for w in ("small", "medium", "long")),
    Target("wide", "vs_autodiff", 1.0),  # large products dominate both: parity is the goal
    *(Target(w, "vs_nn_rnn", 1.0, backends=("numpy", "torch")) for w in UNMASKED),
    Target("medium", "fraction_of_peak", 0.6, at_least=True, of="the fastest closed form"),
    Target("wide", "fraction_of_peak", 0.8, at_least=True, of="the fastest closed form"),
    Target(MEMORY_WORKLOAD, "memory_exponent", 1.25, of="each implementation"),
    Target("masked", "vs_autodiff", 0.8),
    Target("masked", "vs_unmasked", 1.1),  # the mask costs at most a tenth
    Target("relu", "vs_autodiff", 0.8),  # as for tanh: φ changes no product
    Target("deep", "vs_autodiff", 0.8),  # SPEC.md §12: as for one layer
    Target("bidirectional", "vs_autodiff", 0.8),
    Target("small", "fixed_share", 0.1),  # at most a tenth of a small call beyond its arithmetic
)

#: the targets on a GPU (CUDA, float32, TF32 off), every workload: torch's closed form at or under
#: torch.nn.RNN on cuDNN with autograd; JAX's at or under its own autodiff and within 2× of cuDNN.
GPU_TARGETS = tuple(goal for w in WORKLOADS if w not in FIXED_COST_OF.values() for goal in (
    Target(w, "vs_nn_rnn", 1.0, backends=("torch",)),
    Target(w, "vs_autodiff", 1.0, backends=("jax",)),
    Target(w, "vs_nn_rnn", 2.0, backends=("jax",)),
))  # fmt: skip


def targets_for(device: str | None) -> tuple[Target, ...]:
    """The goals of a run whose backends were loaded on ``device`` (None: each one's default, the
    CPU): the CPU's, or on any other device the GPU's."""
    return TARGETS if device is None or device.lower().startswith("cpu") else GPU_TARGETS
