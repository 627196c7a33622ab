#!/usr/bin/env bash
# The conformance suite on CUDA: torch and JAX, and TensorFlow where its GPU build is present; and
# torch.nn.RNN itself on cuDNN (the torch_nn_rnn witness of examples/framework-layers, every
# configuration it declares: stacks, both directions, masks, the layer alone), from the checkout.
# Nothing is installed and no network is needed, only the frameworks and pytest, hypothesis, click
# and rich: scripts/stage.py lays the rnnspec namespace out as links, and PYTHONPATH points there.
# Full float32 precision is enforced (TF32 off); the table shows pass/FAIL and the worst error per
# check, then the cross-backend matrix.
# Usage: scripts/gpu-check.sh [JSON_REPORT]   (stopped after 8 minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
staged=$(mktemp -d)
python3 scripts/stage.py "$staged" >/dev/null
export PYTHONPATH="$staged:$PWD/examples/framework-layers${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL=2
report=${1:-${OUT:-/tmp}/rnnspec-gpu.json}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
backends=()
if python3 -c "import torch; assert torch.cuda.is_available(); print('torch', torch.__version__, torch.cuda.get_device_name())" 2>/dev/null; then
    backends+=(--backend torch@cuda --backend rnnspec_layers.torch_rnn:TorchRNNBackend@cuda)
fi
if python3 -c "import jax; d = jax.devices('gpu'); print('jax', jax.__version__, d)" 2>/dev/null; then
    backends+=(--backend jax@gpu)
fi
if python3 -c "import tensorflow as tf; d = tf.config.list_logical_devices('GPU'); assert d; print('tensorflow', tf.__version__, d)" 2>/dev/null; then
    backends+=(--backend tensorflow@GPU:0)
fi
if [ ${#backends[@]} -eq 0 ]; then
    echo "gpu-check: no framework sees a GPU here" >&2
    exit 2
fi
timeout 480 python3 -m rnnspec.cli conform "${backends[@]}" --json "$report" --show-failures 3
