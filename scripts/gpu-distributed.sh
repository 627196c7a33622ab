#!/usr/bin/env bash
# rnnspec.distributed.torch over NCCL on CUDA (SPEC.md §11): 1 rank on GPU 0, then 2 ranks, compared
# with the single-device gradients and the float64 reference (scripts/gpu_distributed.py). Nothing
# is installed and no network is needed: scripts/stage.py lays the rnnspec namespace out as links,
# as scripts/gpu-check.sh does; torchrun rendezvouses on localhost. With one GPU the 2 ranks share
# it, which NCCL refuses ("Duplicate GPU detected"): that run is reported, not counted as a failure.
# Usage: scripts/gpu-distributed.sh     (under a minute on one H100)
set -uo pipefail
cd "$(dirname "$0")/.."
staged=$(mktemp -d)
python3 scripts/stage.py "$staged" >/dev/null
export PYTHONPATH="$staged${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
python3 -c "import torch; assert torch.cuda.is_available(); print('torch', torch.__version__, 'nccl', torch.cuda.nccl.version())" 2>/dev/null \
    || { echo "gpu-distributed: torch sees no GPU here" >&2; exit 2; }
run() { timeout 240 python3 -m torch.distributed.run --standalone --nproc-per-node "$1" scripts/gpu_distributed.py; }
run 1 || exit 1
gpus=$(python3 -c "import torch; print(torch.cuda.device_count())")
run 2 >/tmp/rnnspec-gpu-distributed-2.log 2>&1
status=$?
grep -E "^(nccl|FAIL)" /tmp/rnnspec-gpu-distributed-2.log
if [ $status -eq 0 ]; then
    exit 0
elif grep -q "^FAIL" /tmp/rnnspec-gpu-distributed-2.log; then
    exit 1
elif [ "$gpus" -lt 2 ] && grep -qiE "duplicate gpu|invalid usage" /tmp/rnnspec-gpu-distributed-2.log; then
    echo "2 ranks on 1 GPU: refused by NCCL, which allows one rank per device:"
    grep -m1 -iE "duplicate gpu|invalid usage" /tmp/rnnspec-gpu-distributed-2.log
else
    tail -30 /tmp/rnnspec-gpu-distributed-2.log
    exit 1
fi
