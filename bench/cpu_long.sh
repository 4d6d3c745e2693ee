#!/bin/bash
# Start, or resume after an interruption, the long CPU run of crowdstream/training/configs/crowd-lite0-cpu-long.yaml
# (issue 25: "resumable CPU runs that span days"). Part C is linked from a camera snapshot folder written by
# bench/camera_finetune.py (stage 18's: runs/camera18/data): its elevated views, degraded photos, texture
# pictures and head-free body crops; never its sharp copies of parts A and B, which the run reads itself.
#   bash bench/cpu_long.sh SNAPSHOTS [OUT]        e.g. bash bench/cpu_long.sh runs/camera18/data
# Runs in the foreground at niceness 10; start it with nohup … & for a sitting, and run it again to resume.
set -euo pipefail
snapshots=$(realpath "${1:?usage: bash bench/cpu_long.sh SNAPSHOTS [OUT]}")
out=${2:-runs/crowd-lite0-cpu-long}
data=${CROWDSTREAM_DATA:?set CROWDSTREAM_DATA to the folder holding shanghaitech/}/shanghaitech
mkdir -p "$out/part-C"
for kind in elevated degraded family tex body; do
    ln -sf "$snapshots"/"$kind"-* "$out/part-C/"
done
args=(-c crowd-lite0-cpu-long --data "A=$data/part_A/train_data" --data "B=$data/part_B/train_data"
      --data "C=$out/part-C" --out "$out/run" --threads 2)
[ -f "$out/run/last.pt" ] && args+=(--resume)
exec nice -n 10 crowdstream train "${args[@]}"
