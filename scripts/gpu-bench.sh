#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks-gpu.md, on CUDA, float32 with TF32 off: `rnnspec bench`
# for torch and JAX on every workload, then where the time goes (scripts/gpu_profile.py:
# torch.profiler's kernel tables, the input checks apart from the kernels, JAX's loop unrolling
# and T). Installs nothing, needs no network: scripts/stage.py lays the rnnspec namespace out as
# links and PYTHONPATH points there.
# Usage: scripts/gpu-bench.sh [OUTDIR]   (writes gpu.bench.json and profile.txt there; ~4 minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp}}
staged=$(mktemp -d)
python3 scripts/stage.py "$staged" >/dev/null
export PYTHONPATH="$staged${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL=2

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
timeout 170 python3 -m rnnspec.cli bench --device cuda --backend torch --backend jax \
    --dtype float32 --no-memory --max-seconds 4 --json "$out/gpu.bench.json"
timeout 70 python3 scripts/gpu_profile.py --workload small --workload long --repeats 10 \
    > "$out/profile.txt" 2>&1
echo "gpu_profile.py: exit $? ($out/profile.txt)"
