#!/usr/bin/env bash
# The GPU check of issue 12, run once on a machine with an NVIDIA GPU, from the repository root:
#
#     bash bench/gpu_check.sh            # prints one table; full outputs in $OUT (default /tmp/gpu-check)
#
# It needs python3 with torch (a CUDA build), onnxruntime, onnx, opencv, numpy, scipy, pyyaml, tqdm,
# aiohttp and prometheus-client. What such a machine often lacks (pydantic for the config, PyAV for the
# demo-clip cameras of `bench stream`) can travel as wheels in .whl/ (git-ignored); every wheel there is
# installed into /tmp/site first, so keep one version of each package. To fetch them for Python 3.12 on
# x86-64 Linux, from the repository root (skip the ones .whl/ already holds):
#
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl av==18.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
#       typing-inspection==0.4.5 typing-extensions==4.16.0
#
# (about 37 MiB, 34 of them PyAV's FFmpeg: with the working tree, under the 64 MiB a device call carries).
# The steps run within a 220 s budget (--budget SECONDS). A dry run on any machine, with tiny sizes:
#
#     bash bench/gpu_check.sh --device cpu --quick --budget 900
set -uo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_check: installing the carried wheels failed" >&2; exit 1; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
exec python3 bench/gpu_check.py --out "${OUT:-/tmp/gpu-check}" "$@"
