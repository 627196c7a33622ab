"""Data-parallel gradients over a ``torch.distributed`` process group (SPEC.md §11).

Every rank of the group calls :func:`gradients` with its own shard of the batch (any number of
sequences, none included) and the same parameters; every rank gets the whole batch's loss and
gradients. The shard is computed by the torch backend (validated as any call is), then three
collectives combine the shards: an all-gather of the shard sizes (with a flag for a shard the
backend refused, so that every rank raises instead of waiting for the others forever), one
all-reduce with SUM of the loss and the five parameter gradients packed in one buffer, and one
all-gather of each sequence's ∇h0 and ∇x, padded to the largest shard since the collectives want
equal sizes, then put back in batch order (rank 0's sequences first).
"""

import torch
import torch.distributed as dist

from rnnspec import backends
from rnnspec.spec import Grads, Params, SpecError


def gradients(
    params: Params, x: torch.Tensor, y: torch.Tensor, h0: torch.Tensor | None = None, *,
    backend=None, group=None,
) -> tuple[torch.Tensor, Grads]:  # fmt: skip
    """(L, Grads) of the batch made of every rank's shard, in rank order, on every rank.

    ``x`` is this rank's (T, B_r, D) shard (B_r = 0 allowed), ``y`` and ``h0`` its targets and
    initial states; ``params`` must be the same on every rank. ``backend`` defaults to the torch
    backend on ``x``'s device; ``group`` to the default process group. L and the parameter
    gradients are sums over ranks; ``Grads.h0`` is (B, H) and ``Grads.x`` (T, B, D) for the whole
    batch, B = Σ_r B_r.
    """
    backend = backend or backends.load("torch", str(x.device))
    T, local, D = x.shape
    refused = None
    try:
        loss, grads = backend.gradients(params, x, y, h0) if local else _empty_shard(params, x)
    except SpecError as error:
        refused = error
    shapes = _gather_shapes((local, T, D, refused is not None), x.device, group)
    if refused is not None:
        raise refused
    if any(failed for *_, failed in shapes):
        ranks = [rank for rank, (*_, failed) in enumerate(shapes) if failed]
        raise SpecError(f"x: the shard of rank(s) {ranks} was refused; see the error there")
    if len({(t, d) for _, t, d, _ in shapes}) > 1:
        raise SpecError(f"x: expected every rank's shard to share T and D, got (B_r, T, D) = "
                        f"{[tuple(s[:3]) for s in shapes]}")  # fmt: skip

    summed = torch.cat([loss.reshape(1), *(g.reshape(-1) for g in grads[:5])])
    dist.all_reduce(summed, op=dist.ReduceOp.SUM, group=group)  # (11.2) sums, never a mean
    loss, *params_grads = summed.split([1, *(g.numel() for g in grads[:5])])

    H = params.W.shape[0]
    per_sequence = torch.cat([grads.h0, grads.x.transpose(0, 1).reshape(local, T * D)], dim=1)
    rows = _gather_rows(per_sequence, [size for size, *_ in shapes], group)  # (11.3)
    return loss.reshape(()), Grads._make(
        [
            *(g.reshape(p.shape) for g, p in zip(params_grads, params, strict=True)),
            rows[:, :H],
            rows[:, H:].reshape(-1, T, D).transpose(0, 1).contiguous(),
        ]
    )


def _empty_shard(params: Params, x: torch.Tensor) -> tuple[torch.Tensor, Grads]:
    """A shard with no sequence contributes nothing: zero loss and gradients, no rows."""
    T, _, D = x.shape
    zeros = [torch.zeros_like(p) for p in params]
    H = params.W.shape[0]
    return x.new_zeros(()), Grads._make([*zeros, x.new_zeros((0, H)), x.new_zeros((T, 0, D))])


def _gather_shapes(shape: tuple, device, group) -> list[list[int]]:
    mine = torch.tensor([int(v) for v in shape], dtype=torch.int64, device=device)
    every = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(every, mine, group=group)
    return [s.tolist() for s in every]


def _gather_rows(rows: torch.Tensor, sizes: list[int], group) -> torch.Tensor:
    """Every rank's rows in rank order; the collective wants equal sizes, so pad to the largest."""
    padded = rows.new_zeros((max(sizes), rows.shape[1]))
    padded[: rows.shape[0]] = rows
    every = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(every, padded, group=group)
    return torch.cat([part[:size] for part, size in zip(every, sizes, strict=True)])
