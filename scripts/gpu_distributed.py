"""One rank of scripts/gpu-distributed.sh: rnnspec.distributed.torch over NCCL on CUDA, compared
with the torch backend's single-device gradients on the same GPU and with the float64 reference,
through the tolerance policy (SPEC.md §11.5). Started by torchrun; rank 0 prints the table and
every rank exits 1 on a failed comparison."""

import os
import sys

import torch
import torch.distributed as dist

from rnnspec import backends
from rnnspec.conformance.cases import CASES
from rnnspec.conformance.cross import PAIR_LIMIT
from rnnspec.conformance.oracle import expected
from rnnspec.distributed import shard_sizes
from rnnspec.distributed import torch as distributed
from rnnspec.spec import tolerance

TENSORS = ("L", "U", "W", "b", "V", "c", "h0", "x")

local_rank = int(os.environ["LOCAL_RANK"])
if torch.cuda.is_available():
    backend = backends.load("torch", f"cuda:{local_rank % torch.cuda.device_count()}")
    backend.enforce_full_precision()  # TF32 off: the float32 bound assumes full precision (§6.3)
    torch.cuda.set_device(backend.device)
    dist.init_process_group("nccl")
else:  # a dry run of this script on the CPU, over gloo
    backend = backends.load("torch")
    dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
worst_ref = worst_one = 0.0
for name in ("basic", "soft", "B1", "batch16"):
    case = CASES[name]
    want = expected(case, "gradients")
    for dtype in ("float32", "float64"):
        params, x, y, h0 = case.native(backend, dtype)
        for sizes in (shard_sizes(case.B, world), [0] * (world - 1) + [case.B]):
            mine = slice(sum(sizes[:rank]), sum(sizes[: rank + 1]))
            got = distributed.gradients(
                params, x[:, mine], y[:, mine], None if h0 is None else h0[mine]
            )
            one = backend.gradients(params, x, y, h0)
            for i, tensor in enumerate(TENSORS):
                S = world if i < 6 else 1
                g, o = (backend.to_numpy(v) for v in ((got[0], *got[1])[i], (one[0], *one[1])[i]))
                ref = tolerance.ratio(g, want.values[i], dtype, case.T, want.kappas[i], shards=S)
                pair = tolerance.ratio(g, o, dtype, case.T, want.kappas[i], shards=S)
                worst_ref, worst_one = max(worst_ref, ref), max(worst_one, pair)
                if rank == 0 and (ref > 1 or pair > PAIR_LIMIT):
                    print(f"FAIL {name} {dtype} shards {sizes} {tensor}: {ref:.3g} / {pair:.3g}")
if rank == 0:
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "the CPU"
    print(
        f"{dist.get_backend()}, {world} rank(s) on {where}: worst ratio to the bound "
        f"vs reference {worst_ref:.3f} (pass <= 1), vs one device {worst_one:.3f} (pass <= 2)"
    )
dist.destroy_process_group()
sys.exit(0 if worst_ref <= 1 and worst_one <= PAIR_LIMIT else 1)
