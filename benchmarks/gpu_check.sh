#!/usr/bin/env bash
# The GPU check: train the `recap` workload (the reference's production
# backbone, batch 1024) for a few steps on one NVIDIA GPU (H100 or H200)
# under keras-masknet's jax and torch backends, and the reference in
# PyTorch eager; assert that the weights, the optimizer state and the
# computation are on the GPU; print samples/s and achieved TFLOP/s in
# float32 and bfloat16 (mixed_bfloat16 / torch.autocast). A few minutes.
#
# The GPU machine has JAX and PyTorch but no TensorFlow and no network, so
# keras, keras-masknet and keras' own dependencies travel as wheels:
#
#   1. Here, with network, from the repository root (fills .whl/, which
#      .gitignore ignores):
#          benchmarks/gpu_check.sh prepare
#   2. There, from a copy of the repository root that holds .whl/:
#          benchmarks/gpu_check.sh            # or: ... run [--steps N]
#      (`--jit-compile` compiles the Keras step: torch.compile on torch.)
#      It installs the wheels with pip --no-index --target /tmp/site, puts
#      /tmp/site on PYTHONPATH and runs benchmarks/gpu_check.py. Copy its
#      output, with the card's name it prints, into docs/benchmarks/.
#
# Dry run of the Python part on a CPU (the figures mean nothing there):
#      python benchmarks/gpu_check.py --allow-cpu --batch 64 --steps 1 \
#          --repeats 1
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# keras' dependencies that the GPU machine may lack (numpy and ml-dtypes
# come with jax there). One version of each: two stop the install.
DEPS="keras==3.15.1 absl-py==2.5.1 rich==15.0.0 markdown-it-py==4.3.0
mdurl==0.1.2 pygments==2.21.0 namex==0.1.0 optree==0.20.0
typing-extensions==4.16.0 h5py==3.14.0 packaging==26.4"

if [[ "${1:-run}" == "prepare" ]]; then
    rm -rf .whl && mkdir -p .whl
    # shellcheck disable=SC2086
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d .whl $DEPS
    "$PYTHON" -m pip wheel -q --no-deps . -w .whl
    ls -1 .whl
    exit 0
fi
[[ "${1:-}" == "run" ]] && shift

if [[ ! -d .whl ]]; then
    echo "no .whl/: run 'benchmarks/gpu_check.sh prepare' first" >&2
    exit 2
fi
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PYTHON" -c "import jax, torch; print('jax', jax.__version__, \
jax.devices(), '| torch', torch.__version__, torch.cuda.is_available())"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
